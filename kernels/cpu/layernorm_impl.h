// layernorm_impl.h: the body of the LayerNorm ops, written once over REAL (no include guard;
// see common/real.h and layernorm.c).

qt_status FN(qt_cpu_layernorm_fwd)(REAL *out, REAL *mean, REAL *rstd, const REAL *x,
                                   const REAL *w, const REAL *b, int N, int C) {
    const char *op = OPNAME("layernorm_fwd");
    QT_TRY(check_rows(op, "N", N, "C", C));
    QT_TRY(check_ptrs(op, N == 0 || (out && mean && rstd && x && w && b),
                      "out, mean, rstd, x, w and b"));
    const REAL inv_c = (REAL)1 / (REAL)C, eps = (REAL)QT_LAYERNORM_EPS;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *restrict xr = x + (size_t)n * C;
        REAL *restrict o = out + (size_t)n * C;
        REAL s = 0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += xr[c];
        const REAL mu = s * inv_c;
        REAL ss = 0; // two passes: the variance never suffers E[x^2] - mu^2 cancellation
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) {
            const REAL d = xr[c] - mu;
            ss += d * d;
        }
        const REAL rs = (REAL)1 / SQRT(ss * inv_c + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = (xr[c] - mu) * rs * w[c] + b[c];
        mean[n] = mu;
        rstd[n] = rs;
    }
    return QT_OK;
}

qt_status FN(qt_cpu_layernorm_bwd)(REAL *dx, REAL *dw, REAL *db, const REAL *dout,
                                   const REAL *x, const REAL *mean, const REAL *rstd,
                                   const REAL *w, int N, int C) {
    const char *op = OPNAME("layernorm_bwd");
    QT_TRY(check_rows(op, "N", N, "C", C));
    QT_TRY(check_ptrs(op, N == 0 || (dout && x && mean && rstd && (!dx || w)),
                      "dout, x, mean, rstd (and w when dx is wanted)"));
    const REAL inv_c = (REAL)1 / (REAL)C;
    // dx: with xh = (x - mean) rstd and g = dout w,
    //     dx = rstd (g - mean(g) - xh mean(g xh)), row by row.
    if (dx) {
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= PAR_MIN)
        for (int n = 0; n < N; n++) {
            const REAL *restrict xr = x + (size_t)n * C, *restrict dr = dout + (size_t)n * C;
            REAL *restrict dxr = dx + (size_t)n * C;
            const REAL mu = mean[n], rs = rstd[n];
            REAL sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
            for (int c = 0; c < C; c++) {
                const REAL g = dr[c] * w[c];
                sg += g;
                sgx += g * ((xr[c] - mu) * rs);
            }
            const REAL mg = sg * inv_c, mgx = sgx * inv_c;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                const REAL xh = (xr[c] - mu) * rs;
                dxr[c] += rs * (dr[c] * w[c] - mg - xh * mgx);
            }
        }
    }
    // dw = column sums of dout xh, db = column sums of dout (common/colsum.h).
    FN(colsum_norm_acc)(dw, db, dout, x, mean, rstd, N, C);
    return QT_OK;
}

// rmsnorm_impl.h: the body of the RMSNorm ops, written once over REAL (no include guard; see
// common/real.h and rmsnorm.c).

// ---- RMSNorm --------------------------------------------------------------------------------

qt_status FN(qt_cpu_rmsnorm_fwd)(REAL *out, REAL *rstd, const REAL *x, const REAL *w, int N,
                                 int C) {
    const char *op = OPNAME("rmsnorm_fwd");
    QT_TRY(check_rows(op, "N", N, "C", C));
    QT_TRY(check_ptrs(op, N == 0 || (out && rstd && x && w), "out, rstd, x and w"));
    const REAL inv_c = (REAL)1 / (REAL)C, eps = (REAL)QT_RMSNORM_EPS;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *restrict xr = x + (size_t)n * C;
        REAL *restrict o = out + (size_t)n * C;
        REAL ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
        const REAL rs = (REAL)1 / SQRT(ss * inv_c + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = xr[c] * rs * w[c];
        rstd[n] = rs;
    }
    return QT_OK;
}

qt_status FN(qt_cpu_rmsnorm_bwd)(REAL *dx, REAL *dw, const REAL *dout, const REAL *x,
                                 const REAL *rstd, const REAL *w, int N, int C) {
    const char *op = OPNAME("rmsnorm_bwd");
    QT_TRY(check_rows(op, "N", N, "C", C));
    QT_TRY(check_ptrs(op, N == 0 || (!dx && !dw) || (dout && x && rstd && (!dx || w)),
                      "dout, x, rstd (and w when dx is wanted)"));
    const REAL inv_c = (REAL)1 / (REAL)C;
    // dx: with xh = x rstd and g = dout w, dx = rstd (g - xh mean(g xh)), row by row.
    if (dx) {
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= PAR_MIN)
        for (int n = 0; n < N; n++) {
            const REAL *restrict xr = x + (size_t)n * C, *restrict dr = dout + (size_t)n * C;
            REAL *restrict dxr = dx + (size_t)n * C;
            const REAL rs = rstd[n];
            REAL sgx = 0;
#pragma omp simd reduction(+ : sgx)
            for (int c = 0; c < C; c++) sgx += dr[c] * w[c] * (xr[c] * rs);
            const REAL mgx = sgx * inv_c;
#pragma omp simd
            for (int c = 0; c < C; c++) dxr[c] += rs * (dr[c] * w[c] - (xr[c] * rs) * mgx);
        }
    }
    // dw = column sums of dout xh (common/colsum.h).
    if (dw) FN(colsum_norm_acc)(dw, NULL, dout, x, NULL, rstd, N, C);
    return QT_OK;
}

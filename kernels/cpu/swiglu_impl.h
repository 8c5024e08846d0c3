// swiglu_impl.h: the body of the SwiGLU ops, written once over REAL (no include guard; see
// common/real.h and swiglu.c).

// ---- SwiGLU ---------------------------------------------------------------------------------
// silu(a) = a s, s = sigmoid(a) = 1 / (1 + e), e = exp(-a);
// silu'(a) = s + a s (1 - s) = s (1 + a e s) (1 - s as e s: no cancellation for a >> 0).
// EXP never returns inf (argument capped at 88.3), so e s stays finite for a << 0.

qt_status FN(qt_cpu_swiglu_fwd)(REAL *out, const REAL *x, int N, int F) {
    const char *op = OPNAME("swiglu_fwd");
    QT_TRY(check_rows(op, "N", N, "F", F));
    QT_TRY(check_ptrs(op, N == 0 || (out && x), "out and x"));
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)F >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *restrict a = x + (size_t)n * 2 * F, *restrict b = a + F;
        REAL *restrict o = out + (size_t)n * F;
#pragma omp simd
        for (int f = 0; f < F; f++) o[f] = a[f] / ((REAL)1 + EXP(-a[f])) * b[f];
    }
    return QT_OK;
}

qt_status FN(qt_cpu_swiglu_bwd)(REAL *dx, const REAL *dout, const REAL *x, int N, int F) {
    const char *op = OPNAME("swiglu_bwd");
    QT_TRY(check_rows(op, "N", N, "F", F));
    QT_TRY(check_ptrs(op, N == 0 || (dx && dout && x), "dx, dout and x"));
    if (N > 0 && (dx == x || dx == dout))
        return qt_error(QT_ERR_ARG, "%s: dx must not alias x or dout; pass a separate gradient "
                                    "buffer", op);
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)F >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *restrict a = x + (size_t)n * 2 * F, *restrict b = a + F;
        const REAL *restrict g = dout + (size_t)n * F;
        REAL *restrict da = dx + (size_t)n * 2 * F, *restrict db = da + F;
#pragma omp simd
        for (int f = 0; f < F; f++) {
            const REAL e = EXP(-a[f]), s = (REAL)1 / ((REAL)1 + e);
            const REAL silu = a[f] * s, dsilu = s * ((REAL)1 + a[f] * (e * s));
            da[f] += g[f] * b[f] * dsilu;
            db[f] += g[f] * silu;
        }
    }
    return QT_OK;
}

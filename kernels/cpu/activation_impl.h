// activation_impl.h: the body of GELU and ReLU, written once over REAL (no include guard; see
// common/real.h and activation.c).

qt_status FN(qt_cpu_gelu_fwd)(REAL *out, const REAL *x, size_t n) {
    QT_TRY(check_ptrs(OPNAME("gelu_fwd"), n == 0 || (out && x), "out and x"));
    // 0.5 x (1 + tanh(u)) = x sigmoid(2u) = x / (1 + exp(-2u)): one exp, and no cancellation
    // in 1 + tanh(u) for negative x.
#pragma omp parallel for simd schedule(static) if (parallel : n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const REAL xi = x[i];
        const REAL u = (REAL)GELU_K * (xi + (REAL)0.044715 * xi * xi * xi);
        out[i] = xi / ((REAL)1 + EXP((REAL)-2 * u));
    }
    return QT_OK;
}

qt_status FN(qt_cpu_gelu_bwd)(REAL *dx, const REAL *dout, const REAL *x, size_t n) {
    QT_TRY(check_ptrs(OPNAME("gelu_bwd"), n == 0 || (dx && dout && x), "dx, dout and x"));
    // gelu'(x) = s + x s (1 - s) 2 u'(x), s = sigmoid(2u) = 1 / (1 + e), e = exp(-2u),
    // 1 - s = e s, u' = k (1 + 3 * 0.044715 x^2). EXP never returns inf (its argument is
    // capped at 88.3), so e s s is finite (~1e-38 at worst, never inf * 0).
    // dx aliasing dout is the in-place form: dx = dout gelu'(x).
    const int overwrite = dx == dout;
#pragma omp parallel for simd schedule(static) if (parallel : n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const REAL xi = x[i], x2 = xi * xi;
        const REAL u = (REAL)GELU_K * (xi + (REAL)0.044715 * x2 * xi);
        const REAL e = EXP((REAL)-2 * u), s = (REAL)1 / ((REAL)1 + e);
        const REAL du = (REAL)GELU_K * ((REAL)1 + (REAL)(3 * 0.044715) * x2);
        const REAL d = s + xi * ((e * s) * s) * (REAL)2 * du;
        const REAL prev = overwrite ? (REAL)0 : dx[i];
        dx[i] = prev + dout[i] * d;
    }
    return QT_OK;
}

qt_status FN(qt_cpu_relu_fwd)(REAL *out, const REAL *x, size_t n) {
    QT_TRY(check_ptrs(OPNAME("relu_fwd"), n == 0 || (out && x), "out and x"));
#pragma omp parallel for simd schedule(static) if (parallel : n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = x[i] < (REAL)0 ? (REAL)0 : x[i]; // NaN stays NaN
    return QT_OK;
}

qt_status FN(qt_cpu_relu_bwd)(REAL *dx, const REAL *dout, const REAL *x, size_t n) {
    QT_TRY(check_ptrs(OPNAME("relu_bwd"), n == 0 || (dx && dout && x), "dx, dout and x"));
    const int overwrite = dx == dout; // in place: dx = dout [x > 0]
#pragma omp parallel for simd schedule(static) if (parallel : n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const REAL prev = overwrite ? (REAL)0 : dx[i];
        dx[i] = prev + (x[i] > (REAL)0 ? dout[i] : (REAL)0);
    }
    return QT_OK;
}

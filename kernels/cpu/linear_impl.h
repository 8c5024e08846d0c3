// linear_impl.h: the body of the linear ops, written once over REAL (no include guard; see
// common/real.h and linear.c).

qt_status FN(qt_cpu_linear_fwd)(REAL *out, const REAL *x, const REAL *w, const REAL *b, int N,
                                int IC, int OC) {
    QT_TRY(linear_check(OPNAME("linear_fwd"), out && x && w, "out, x and w (only b may be NULL)",
                        N, IC, OC));
    if (N == 0 || OC == 0) return QT_OK;
    if (b) {
        // out starts as the bias rows, then the GEMM adds x w^T onto it (beta = 1)
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)OC >= PAR_MIN)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(REAL));
    }
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1, x, IC, w, IC, b ? 1 : 0, out, OC);
    return QT_OK;
}

qt_status FN(qt_cpu_linear_bwd)(REAL *dx, REAL *dw, REAL *db, const REAL *dout, const REAL *x,
                                const REAL *w, int N, int IC, int OC) {
    QT_TRY(linear_check(OPNAME("linear_bwd"), dout && (!dx || w) && (!dw || x),
                        "dout, w when dx is wanted and x when dw is wanted", N, IC, OC));
    if (N == 0 || OC == 0) return QT_OK;
    if (dx)
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1, dout, OC, w, IC, 1, dx, IC);
    if (dw)
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1, dout, OC, x, IC, 1, dw, IC);
    if (db) FN(colsum_acc)(db, dout, N, OC);
    return QT_OK;
}

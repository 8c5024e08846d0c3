// gate_impl.h: the body of the attention-gate ops, written once over REAL (no include guard;
// see common/real.h and gate.c).

static inline REAL FN(sigmoid)(REAL z) { return (REAL)1 / ((REAL)1 + EXP(-z)); }

static inline REAL FN(dot)(const REAL *restrict a, const REAL *restrict b, int n) {
    REAL s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// y (n) += alpha x (n)
static inline void FN(axpy)(REAL *restrict y, REAL alpha, const REAL *restrict x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

qt_status FN(qt_cpu_gate_fwd)(const qt_gate_shape *g, REAL *gate, REAL *hidden, const REAL *x,
                              const REAL *w1, const REAL *b1, const REAL *w2, const REAL *b2,
                              int N, int C) {
    const char *op = OPNAME("gate_fwd");
    QT_TRY(gate_check(op, g, N, C));
    const int mlp = g->kind == QT_GATE_MLP;
    QT_TRY(check_ptrs(op, N == 0 || (gate && x && w1 && b1 && (!mlp || (hidden && w2 && b2))),
                      mlp ? "gate, x, w1, b1, hidden, w2 and b2" : "gate, x, w1 and b1"));
    const int H = g->n_heads, D = C / H, nh = g->n_hid;
    const int kind = (int)g->kind;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *xn = x + (size_t)n * C;
        for (int h = 0; h < H; h++) {
            REAL z;
            if (kind == QT_GATE_LINEAR) {
                z = b1[h] + FN(dot)(xn + (size_t)h * D, w1 + (size_t)h * D, D);
            } else if (kind == QT_GATE_ALL_HEADS) {
                z = b1[h] + FN(dot)(xn, w1 + (size_t)h * C, C);
            } else {
                REAL *hid = hidden + ((size_t)n * H + h) * nh;
                z = b2[h];
                for (int j = 0; j < nh; j++) {
                    const size_t hj = (size_t)h * nh + j;
                    const REAL v = b1[hj] + FN(dot)(xn + (size_t)h * D, w1 + hj * D, D);
                    hid[j] = v;
                    z += (v > (REAL)0 ? v : (REAL)0) * w2[hj];
                }
            }
            gate[(size_t)n * H + h] = FN(sigmoid)(z);
        }
    }
    return QT_OK;
}

qt_status FN(qt_cpu_gate_bwd)(const qt_gate_shape *g, REAL *dx, REAL *dw1, REAL *db1, REAL *dw2,
                              REAL *db2, const REAL *dgate, const REAL *gate, const REAL *hidden,
                              const REAL *x, const REAL *w1, const REAL *w2, int N, int C) {
    const char *op = OPNAME("gate_bwd");
    QT_TRY(gate_check(op, g, N, C));
    const int mlp = g->kind == QT_GATE_MLP;
    QT_TRY(check_ptrs(op, N == 0 || (dgate && gate && x && w1 && (!mlp || (hidden && w2))),
                      mlp ? "dgate, gate, x, w1, hidden and w2" : "dgate, gate, x and w1"));
    const int H = g->n_heads, D = C / H, nh = g->n_hid;
    const int kind = (int)g->kind;
    const int par = (size_t)N * (size_t)C >= PAR_MIN;
// dz = d loss / d logit = dgate g (1 - g), recomputed where needed (cheap, and no scratch)
#define DZ(n, h) (dgate[(size_t)(n) * H + (h)] * gate[(size_t)(n) * H + (h)] *                   \
                  ((REAL)1 - gate[(size_t)(n) * H + (h)]))
    // dx, one row per iteration
    if (dx) {
#pragma omp parallel for schedule(static) if (par)
        for (int n = 0; n < N; n++) {
            REAL *dxn = dx + (size_t)n * C;
            for (int h = 0; h < H; h++) {
                const REAL dz = DZ(n, h);
                if (kind == QT_GATE_LINEAR) {
                    FN(axpy)(dxn + (size_t)h * D, dz, w1 + (size_t)h * D, D);
                } else if (kind == QT_GATE_ALL_HEADS) {
                    FN(axpy)(dxn, dz, w1 + (size_t)h * C, C);
                } else {
                    const REAL *hid = hidden + ((size_t)n * H + h) * nh;
                    for (int j = 0; j < nh; j++) {
                        const size_t hj = (size_t)h * nh + j;
                        if (hid[j] > (REAL)0)
                            FN(axpy)(dxn + (size_t)h * D, dz * w2[hj], w1 + hj * D, D);
                    }
                }
            }
        }
    }
    // Parameter gradients: one output row of w1 per task (a head, or a head's hidden unit),
    // summing over n in order (deterministic, no two tasks write the same element).
    const int units = kind == QT_GATE_MLP ? H * nh : H;
#pragma omp parallel for schedule(static) if (par)
    for (int u = 0; u < units; u++) {
        const int h = kind == QT_GATE_MLP ? u / nh : u;
        const int len = kind == QT_GATE_ALL_HEADS ? C : D;
        const size_t xoff = kind == QT_GATE_ALL_HEADS ? 0 : (size_t)h * D;
        REAL *dwrow = dw1 ? dw1 + (size_t)u * len : NULL;
        REAL sb = 0, sw2 = 0;
        for (int n = 0; n < N; n++) {
            REAL dz = DZ(n, h), coef = dz;
            if (kind == QT_GATE_MLP) {
                const REAL v = hidden[((size_t)n * H + h) * nh + (u - h * nh)];
                coef = v > (REAL)0 ? dz * w2[u] : (REAL)0;
                sw2 += dz * (v > (REAL)0 ? v : (REAL)0);
            }
            sb += coef;
            if (dwrow) FN(axpy)(dwrow, coef, x + (size_t)n * C + xoff, len);
        }
        if (db1) db1[u] += sb;
        if (kind == QT_GATE_MLP && dw2) dw2[u] += sw2;
    }
    if (kind == QT_GATE_MLP && db2) {
        for (int h = 0; h < H; h++) {
            REAL s = 0;
            for (int n = 0; n < N; n++) s += DZ(n, h);
            db2[h] += s;
        }
    }
#undef DZ
    return QT_OK;
}

qt_status FN(qt_cpu_gate_mul_fwd)(REAL *out, const REAL *gate, const REAL *ctx, int N, int C,
                                  int H) {
    QT_TRY(gate_mul_check(OPNAME("gate_mul_fwd"), out && gate && ctx, "out, gate and ctx", N, C,
                          H));
    const int D = C / H;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        for (int h = 0; h < H; h++) {
            const REAL gv = gate[(size_t)n * H + h];
            const size_t off = (size_t)n * C + (size_t)h * D;
            REAL *o = out + off; // may alias ctx: same element read then written
            const REAL *cx = ctx + off;
#pragma omp simd
            for (int d = 0; d < D; d++) o[d] = gv * cx[d];
        }
    }
    return QT_OK;
}

qt_status FN(qt_cpu_gate_mul_bwd)(REAL *dctx, REAL *dgate, const REAL *dout, const REAL *gate,
                                  const REAL *ctx, int N, int C, int H) {
    QT_TRY(gate_mul_check(OPNAME("gate_mul_bwd"), (!dctx && !dgate) || (dout && gate && ctx),
                          "dout, gate and ctx (dctx and dgate may be NULL)", N, C, H));
    const int D = C / H;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        for (int h = 0; h < H; h++) {
            const size_t off = (size_t)n * C + (size_t)h * D;
            if (dgate) dgate[(size_t)n * H + h] += FN(dot)(dout + off, ctx + off, D);
            if (dctx) FN(axpy)(dctx + off, gate[(size_t)n * H + h], dout + off, D);
        }
    }
    return QT_OK;
}

// crossentropy_impl.h: the body of the fused softmax + cross-entropy ops, written once over
// REAL (no include guard; see common/real.h and crossentropy.c). One row's forward and
// backward are functions of their own, never inlined, so the two ops and fwd_bwd run the same
// machine code per row and agree bit for bit.

// Row z (V), target t: *stat = {m, 1 / S}, *loss.
static QT_NOINLINE void FN(ce_row_fwd)(REAL *loss, REAL *stat, const REAL *z, int t, int V) {
    REAL m = z[0];
#pragma omp simd reduction(max : m)
    for (int j = 1; j < V; j++) m = z[j] > m ? z[j] : m;
    REAL sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) sum += EXP(z[j] - m);
    stat[0] = m;
    stat[1] = (REAL)1 / sum;
    // -log softmax[t] = log(sum exp(z - m)) - (z[t] - m): exact for tiny probabilities
    *loss = t >= 0 ? LOG(sum) - (z[t] - m) : (REAL)0;
}

// Row d (V) += (or = when d == z) dl (exp(z - m) inv - onehot(t)); an ignored row (t < 0)
// gets nothing, or zeros in place.
static QT_NOINLINE void FN(ce_row_bwd)(REAL *d, REAL dl, const REAL *z, const REAL *stat, int t,
                                       int V) {
    const int overwrite = d == z;
    if (t < 0) { // ignored row: no gradient (an in-place buffer must not keep the logits)
        if (overwrite) memset(d, 0, (size_t)V * sizeof(REAL));
        return;
    }
    const REAL m = stat[0], inv = stat[1];
    if (overwrite) {
#pragma omp simd
        for (int j = 0; j < V; j++) d[j] = dl * (EXP(z[j] - m) * inv);
    } else {
#pragma omp simd
        for (int j = 0; j < V; j++) d[j] += dl * (EXP(z[j] - m) * inv);
    }
    d[t] -= dl;
}

qt_status FN(qt_cpu_crossentropy_fwd)(REAL *losses, REAL *stats, const REAL *logits,
                                      const int *targets, int N, int V) {
    QT_TRY(ce_check(OPNAME("crossentropy_fwd"), losses && stats && logits,
                    "losses, stats, logits and targets", targets, N, V));
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V >= PAR_MIN)
    for (int n = 0; n < N; n++)
        FN(ce_row_fwd)(losses + n, stats + 2 * (size_t)n, logits + (size_t)n * V, targets[n], V);
    return QT_OK;
}

qt_status FN(qt_cpu_crossentropy_bwd)(REAL *dlogits, const REAL *dlosses, const REAL *logits,
                                      const REAL *stats, const int *targets, int N, int V) {
    QT_TRY(ce_check(OPNAME("crossentropy_bwd"), dlogits && dlosses && logits && stats,
                    "dlogits, dlosses, logits, stats and targets", targets, N, V));
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V >= PAR_MIN)
    for (int n = 0; n < N; n++)
        FN(ce_row_bwd)(dlogits + (size_t)n * V, dlosses[n], logits + (size_t)n * V,
                       stats + 2 * (size_t)n, targets[n], V);
    return QT_OK;
}

// Each row's forward, then its backward in place while the row is still in cache: one pass
// over the (N, V) logits from memory instead of two.
qt_status FN(qt_cpu_crossentropy_fwd_bwd)(REAL *losses, REAL *stats, REAL *logits,
                                          const REAL *dlosses, const int *targets, int N, int V) {
    QT_TRY(ce_check(OPNAME("crossentropy_fwd_bwd"), losses && stats && logits && dlosses,
                    "losses, stats, logits, dlosses and targets", targets, N, V));
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        REAL *z = logits + (size_t)n * V, *st = stats + 2 * (size_t)n;
        FN(ce_row_fwd)(losses + n, st, z, targets[n], V);
        FN(ce_row_bwd)(z, dlosses[n], z, st, targets[n], V);
    }
    return QT_OK;
}

// crossentropy_impl.h: the body of the fused softmax + cross-entropy ops, written once over
// REAL (no include guard; see common/real.h and crossentropy.c).

qt_status FN(qt_cpu_crossentropy_fwd)(REAL *losses, REAL *stats, const REAL *logits,
                                      const int *targets, int N, int V) {
    QT_TRY(ce_check(OPNAME("crossentropy_fwd"), losses && stats && logits,
                    "losses, stats, logits and targets", targets, N, V));
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *z = logits + (size_t)n * V;
        const int t = targets[n];
        REAL m = z[0];
#pragma omp simd reduction(max : m)
        for (int j = 1; j < V; j++) m = z[j] > m ? z[j] : m;
        REAL sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < V; j++) sum += EXP(z[j] - m);
        stats[2 * (size_t)n] = m;
        stats[2 * (size_t)n + 1] = (REAL)1 / sum;
        // -log softmax[t] = log(sum exp(z - m)) - (z[t] - m): exact for tiny probabilities
        losses[n] = t >= 0 ? LOG(sum) - (z[t] - m) : (REAL)0;
    }
    return QT_OK;
}

qt_status FN(qt_cpu_crossentropy_bwd)(REAL *dlogits, const REAL *dlosses, const REAL *logits,
                                      const REAL *stats, const int *targets, int N, int V) {
    QT_TRY(ce_check(OPNAME("crossentropy_bwd"), dlogits && dlosses && logits && stats,
                    "dlogits, dlosses, logits, stats and targets", targets, N, V));
    const int overwrite = dlogits == logits; // in place: dlogits = dloss (softmax - onehot)
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        REAL *d = dlogits + (size_t)n * V;
        const REAL *z = logits + (size_t)n * V;
        const int t = targets[n];
        if (t < 0) { // ignored row: no gradient (an in-place buffer must not keep the logits)
            if (overwrite) memset(d, 0, (size_t)V * sizeof(REAL));
            continue;
        }
        const REAL dl = dlosses[n], m = stats[2 * (size_t)n], inv = stats[2 * (size_t)n + 1];
        if (overwrite) {
#pragma omp simd
            for (int j = 0; j < V; j++) d[j] = dl * (EXP(z[j] - m) * inv);
        } else {
#pragma omp simd
            for (int j = 0; j < V; j++) d[j] += dl * (EXP(z[j] - m) * inv);
        }
        d[t] -= dl;
    }
    return QT_OK;
}

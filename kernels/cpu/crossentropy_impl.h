// crossentropy_impl.h: the body of the fused softmax + cross-entropy ops, written once over
// REAL (no include guard; see common/real.h and crossentropy.c).

qt_status FN(qt_cpu_crossentropy_fwd)(REAL *losses, REAL *probs, const REAL *logits,
                                      const int *targets, int N, int V) {
    QT_TRY(ce_check(OPNAME("crossentropy_fwd"), losses && probs && logits,
                    "losses, probs, logits and targets", targets, N, V));
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *z = logits + (size_t)n * V; // may alias pr: every read precedes its write
        REAL *pr = probs + (size_t)n * V;
        const int t = targets[n];
        const REAL zt = t >= 0 ? z[t] : (REAL)0;
        REAL m = z[0];
#pragma omp simd reduction(max : m)
        for (int j = 1; j < V; j++) m = z[j] > m ? z[j] : m;
        REAL sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < V; j++) {
            const REAL e = EXP(z[j] - m);
            pr[j] = e;
            sum += e;
        }
        const REAL inv = (REAL)1 / sum;
#pragma omp simd
        for (int j = 0; j < V; j++) pr[j] *= inv;
        // -log softmax[t] = log(sum exp(z - m)) - (z[t] - m): exact for tiny probabilities
        losses[n] = t >= 0 ? LOG(sum) - (zt - m) : (REAL)0;
    }
    return QT_OK;
}

qt_status FN(qt_cpu_crossentropy_bwd)(REAL *dlogits, const REAL *dlosses, const REAL *probs,
                                      const int *targets, int N, int V) {
    QT_TRY(ce_check(OPNAME("crossentropy_bwd"), dlogits && dlosses && probs,
                    "dlogits, dlosses, probs and targets", targets, N, V));
    const int overwrite = dlogits == probs; // in place: dlogits = dloss (probs - onehot)
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        REAL *d = dlogits + (size_t)n * V;
        const REAL *pr = probs + (size_t)n * V;
        const int t = targets[n];
        if (t < 0) { // ignored row: no gradient (an in-place buffer must not keep the probs)
            if (overwrite) memset(d, 0, (size_t)V * sizeof(REAL));
            continue;
        }
        const REAL dl = dlosses[n];
        if (overwrite) {
#pragma omp simd
            for (int j = 0; j < V; j++) d[j] = dl * pr[j];
        } else {
#pragma omp simd
            for (int j = 0; j < V; j++) d[j] += dl * pr[j];
        }
        d[t] -= dl;
    }
    return QT_OK;
}

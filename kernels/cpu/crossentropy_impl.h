// crossentropy_impl.h: the body of the fused softmax + cross-entropy ops, written once over
// REAL (no include guard; see common/real.h and crossentropy.c).

void FN(qt_cpu_crossentropy_fwd)(REAL *losses, REAL *probs, const REAL *logits,
                                 const int *targets, int N, int V) {
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *z = logits + (size_t)n * V; // may alias pr: every read precedes its write
        REAL *pr = probs + (size_t)n * V;
        const int t = targets[n];
        QT_ASSERT(t < V, "crossentropy_fwd: targets[%d] = %d >= V = %d", n, t, V);
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
}

void FN(qt_cpu_crossentropy_bwd)(REAL *dlogits, const REAL *dlosses, const REAL *probs,
                                 const int *targets, int N, int V) {
    const int overwrite = dlogits == probs; // in place: dlogits = dloss (probs - onehot)
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        REAL *d = dlogits + (size_t)n * V;
        const REAL *pr = probs + (size_t)n * V;
        const int t = targets[n];
        QT_ASSERT(t < V, "crossentropy_bwd: targets[%d] = %d >= V = %d", n, t, V);
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
}

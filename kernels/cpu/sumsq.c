// sumsq.c: qt_cpu_sumsq, the sum of squares of a float array accumulated in double (the global
// gradient norm's building block).
// Deterministic whatever the thread count: the array is cut into a number of chunks that
// depends only on n, each chunk summed in order, the chunk sums added in order.
#include "common/real.h"

#include <stddef.h>

#include "common/check.h"
#include "kernels/sumsq.h"

#define SUMSQ_MAX_CHUNKS 256
#define SUMSQ_MIN_CHUNK 8192 // elements: smaller chunks are not worth a task

qt_status qt_cpu_sumsq(double *out, const float *x, size_t n) {
    QT_TRY(check_ptrs("sumsq", out && (n == 0 || x), "out and x"));
    size_t chunks = (n + SUMSQ_MIN_CHUNK - 1) / SUMSQ_MIN_CHUNK;
    if (chunks > SUMSQ_MAX_CHUNKS) chunks = SUMSQ_MAX_CHUNKS;
    if (chunks < 1) chunks = 1;
    const size_t len = (n + chunks - 1) / chunks;
    double part[SUMSQ_MAX_CHUNKS];
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (size_t k = 0; k < chunks; k++) {
        const size_t i0 = k * len, i1 = i0 + len < n ? i0 + len : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * (double)x[i];
        part[k] = s;
    }
    double total = 0.0;
    for (size_t k = 0; k < chunks; k++) total += part[k];
    *out = total;
    return QT_OK;
}

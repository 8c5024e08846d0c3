// dropout.c: qt_cpu_dropout_{fwd,bwd}, inverted dropout with a counter-based mask (float only).
// keep_i = [qt_philox_uniform(seed, stream, i) >= prob] (base/philox.h), so the
// backward, a resumed run and the CUDA kernel all regenerate the same mask from (seed, stream).
// Contract (kernels/dropout.h): out = x keep / (1 - prob) (out may alias x; prob == 0
// copies); dx += dout keep / (1 - prob), or, when dx aliases dout, dx = dout keep / (1 - prob).
// prob == 1 drops everything (out = 0, no gradient) rather than dividing by zero; a prob
// outside [0, 1] (or NaN) is refused.
// One Philox call yields four words: elements go in groups of four, groups in parallel.
#include "common/real.h"

#include <stddef.h>
#include <string.h>

#include "base/philox.h"
#include "common/check.h"
#include "kernels/dropout.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

// y[i] = (overwrite ? 0 : y[i]) + x[i] keep_i s for i in [0, n).
static void dropout_apply(float *y, const float *x, size_t n, float prob, uint64_t seed,
                          uint64_t stream, int overwrite) {
    const float s = prob < 1.0f ? 1.0f / (1.0f - prob) : 0.0f;
    const size_t groups = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t gi = 0; gi < groups; gi++) {
        const qt_u32x4 r = qt_philox_block(seed, stream, gi); // words of elements 4gi .. 4gi+3
        const size_t i0 = gi * 4, cnt = n - i0 < 4 ? n - i0 : 4;
        for (size_t k = 0; k < cnt; k++) {
            const float u = qt_u32_to_uniform(r.v[k]);
            const float v = u >= prob ? x[i0 + k] * s : 0.0f;
            y[i0 + k] = overwrite ? v : y[i0 + k] + v;
        }
    }
}

// The checks both directions make, before anything is written: prob in [0, 1] (1 drops
// everything; NaN, negative and larger values are refused), y and x non-NULL when n > 0.
static qt_status dropout_check(const char *op, const float *y, const float *x, size_t n,
                               float prob, const char *names) {
    if (!(prob >= 0.0f && prob <= 1.0f))
        return qt_error(QT_ERR_ARG,
                        "%s: dropout probability %g is outside [0, 1]; pass one in [0, 1)", op,
                        (double)prob);
    return check_ptrs(op, n == 0 || (y && x), names);
}

qt_status qt_cpu_dropout_fwd(float *out, const float *x, size_t n, float prob, uint64_t seed,
                             uint64_t stream) {
    QT_TRY(dropout_check("dropout_fwd", out, x, n, prob, "out and x"));
    if (prob <= 0.0f) {
        if (out != x && n) memmove(out, x, n * sizeof(float));
        return QT_OK;
    }
    dropout_apply(out, x, n, prob, seed, stream, 1);
    return QT_OK;
}

qt_status qt_cpu_dropout_bwd(float *dx, const float *dout, size_t n, float prob, uint64_t seed,
                             uint64_t stream) {
    QT_TRY(dropout_check("dropout_bwd", dx, dout, n, prob, "dx and dout"));
    if (prob <= 0.0f) {
        if (dx == dout) return QT_OK;
#pragma omp parallel for simd schedule(static) if (parallel : n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) dx[i] += dout[i];
        return QT_OK;
    }
    dropout_apply(dx, dout, n, prob, seed, stream, dx == dout);
    return QT_OK;
}

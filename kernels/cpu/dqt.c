// dqt.c: the CPU reference of direct quantized training (kernels/dqt.h; Zhao et al.
// 2024, PAPERS.md section 7): qt_cpu_dqt_step applies one AdamW step to int8 codes with
// stochastic rounding onto the grid of scale_out, qt_cpu_dqt_dequant expands codes to fp32.
// The per-element math and the stats reduction order are base/dqt_math.h, shared
// with kernels/cuda/dqt.cu (same codes, m, v and stats bit for bit).
// Contract: codes, m, v are updated in place (nothing is written with dry_run); the stats do
// not depend on the number of threads: the chunks' partial sums are combined in the fixed lane
// order of dqt_math.h, whichever thread computed them, so a resumed run reproduces them.
// Work: threads take the stats lanes of the final combine (lane l owns chunks l, l + 256, ...),
// so a tensor of k chunks runs on min(k, 256) threads at most. Philox runs once per 4 elements.
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "base/dqt_math.h"
#include "common/check.h"
#include "kernels/dqt.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

// The fixed tree of dqt_math.h over QT_DQT_LANES partial sums; returns the total.
static double lanes_tree(double *lanes) {
    for (int s = QT_DQT_LANES / 2; s > 0; s /= 2)
        for (int l = 0; l < s; l++) lanes[l] += lanes[l + s];
    return lanes[0];
}

// Chunk [start, end) (start a multiple of QT_DQT_CHUNK): updates codes, m, v unless dry, and
// returns the chunk's sum of |w'| in the lane order of dqt_math.h; *maxc = max |code| before.
static double chunk_step(const qt_dqt_coef *k, uint64_t seed, uint64_t stream, int dry,
                         int8_t *codes, const float *grad, float *m, float *v, size_t start,
                         size_t end, int *maxc) {
    double lanes[QT_DQT_LANES];
    for (int l = 0; l < QT_DQT_LANES; l++) lanes[l] = 0.0;
    int mx = 0;
    // Philox block b >> 2 gives the draws of elements b .. b + 3 (start is a multiple of 4).
    for (size_t b = start; b < end; b += 4) {
        const qt_u32x4 r = qt_philox_block(seed, stream, b >> 2);
        const size_t e = end - b < 4 ? end : b + 4;
        for (size_t i = b; i < e; i++) {
            const int c = codes[i];
            float mi = m[i], vi = v[i], t;
            const float w1 = qt_dqt_update(k, grad[i], c, &mi, &vi, &t);
            const int q = qt_dqt_round(t, qt_u32_to_uniform(r.v[i - b]), k->qmin, k->qmax);
            if (!dry) {
                codes[i] = (int8_t)q;
                m[i] = mi;
                v[i] = vi;
            }
            lanes[(i - start) % QT_DQT_LANES] += (double)fabsf(w1);
            const int a = c < 0 ? -c : c;
            mx = a > mx ? a : mx;
        }
    }
    *maxc = mx;
    return lanes_tree(lanes);
}

qt_status qt_cpu_dqt_step(const qt_dqt_params *dp, int8_t *codes, const float *grad, float *m,
                          float *v, size_t n, qt_dqt_stats *stats) {
    const char *op = "dqt_step";
    QT_TRY(qt_dqt_check(op, dp));
    QT_TRY(check_ptrs(op, n == 0 || (dp->dry_run && !stats) || (codes && grad && m && v),
                      "codes, grad, m and v"));
    if (stats) {
        stats->abs_sum = 0.0;
        stats->max_abs_code = 0;
    }
    if (n == 0 || (dp->dry_run && !stats)) return QT_OK;
    const qt_dqt_coef k = qt_dqt_coef_of(dp);
    const size_t nchunks = (n + QT_DQT_CHUNK - 1) / QT_DQT_CHUNK;
    const int nl = nchunks < QT_DQT_LANES ? (int)nchunks : QT_DQT_LANES;
    double final_lanes[QT_DQT_LANES];
    for (int l = 0; l < QT_DQT_LANES; l++) final_lanes[l] = 0.0;
    int mx = 0;
#pragma omp parallel for schedule(static, 1) reduction(max : mx) if (n >= PAR_MIN)
    for (int l = 0; l < nl; l++) {
        double acc = 0.0;
        for (size_t ck = (size_t)l; ck < nchunks; ck += QT_DQT_LANES) {
            const size_t start = ck * QT_DQT_CHUNK;
            const size_t end = n - start < QT_DQT_CHUNK ? n : start + QT_DQT_CHUNK;
            int cm;
            acc += chunk_step(&k, dp->seed, dp->stream, dp->dry_run, codes, grad, m, v, start,
                              end, &cm);
            mx = cm > mx ? cm : mx;
        }
        final_lanes[l] = acc;
    }
    if (stats) {
        stats->abs_sum = lanes_tree(final_lanes);
        stats->max_abs_code = mx;
    }
    return QT_OK;
}

qt_status qt_cpu_dqt_dequant(float *out, const int8_t *codes, float scale, size_t n) {
    QT_TRY(check_ptrs("dqt_dequant", n == 0 || (out && codes), "out and codes"));
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = qt_quant_dequant(codes[i], scale, 0);
    return QT_OK;
}

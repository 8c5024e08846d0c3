// quant.c: the CPU reference quantizer of kernels/quant.h (PAPERS.md sections 5-9).
// The per-element arithmetic and the absmean reduction order are base/quant_math.h,
// shared with kernels/cuda/quant.cu so that the two agree bit for bit.
// Work: one pass per slice for its range (slices in parallel, so a per-tensor range is one
// thread's work), then one parallel pass over element chunks for the codes.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/quant_math.h"
#include "kernels/quant.h"

#define MSE_CANDIDATES 100
#define PAR_MIN 16384
#define CHUNK 4096 // elements per parallel work item of the code pass

// The tensor seen as R rows of C columns cut in groups of G: slice (r, g) = r * gpr + g.
typedef struct {
    size_t R, C, G, gpr;
} layout;

static layout layout_of(const qt_quant_params *p, size_t rows, size_t cols) {
    layout l;
    if (p->granularity == QT_QUANT_PER_TENSOR) {
        l.R = 1;
        l.C = rows * cols;
        l.G = l.C;
    } else {
        l.R = rows;
        l.C = cols;
        l.G = p->granularity == QT_QUANT_PER_ROW ? cols : p->group_size;
    }
    l.gpr = l.G ? (l.C + l.G - 1) / l.G : 0;
    return l;
}

qt_quant_params qt_quant_params_default(int bits) {
    qt_quant_params p;
    memset(&p, 0, sizeof p);
    p.bits = bits;
    p.symmetric = 1;
    p.granularity = QT_QUANT_PER_TENSOR;
    p.rounding = QT_QUANT_NEAREST;
    p.range = QT_QUANT_RANGE_ABSMAX;
    p.floor = 1e-5f;
    p.eps = 1e-5f;
    p.percentile = 99.999f;
    p.momentum = 0.9f;
    return p;
}

uint64_t qt_quant_stream(uint64_t step, uint64_t tensor_id) {
    return qt_quant_stream_id(step, tensor_id);
}

qt_status qt_quant_check(const qt_quant_params *p, size_t rows, size_t cols,
                         const qt_quant_running *running) {
    if (!p) return qt_error(QT_ERR_ARG, "quant: params are NULL; pass qt_quant_params_default()");
    if (!(p->bits == QT_QUANT_TERNARY || (p->bits >= 2 && p->bits <= 8)))
        return qt_error(QT_ERR_ARG, "quant: bits = %d; use 2..8 or QT_QUANT_TERNARY (1)", p->bits);
    if (p->bits == QT_QUANT_TERNARY && !p->symmetric)
        return qt_error(QT_ERR_ARG, "quant: the ternary grid is symmetric; set symmetric = 1");
    if ((unsigned)p->granularity > QT_QUANT_PER_GROUP)
        return qt_error(QT_ERR_ARG, "quant: granularity %d is not per tensor/row/group",
                        (int)p->granularity);
    if (p->granularity == QT_QUANT_PER_GROUP && p->group_size == 0)
        return qt_error(QT_ERR_ARG, "quant: group_size is 0 for per-group scales; set it > 0");
    if ((unsigned)p->rounding > QT_QUANT_STOCHASTIC)
        return qt_error(QT_ERR_ARG, "quant: rounding %d is not nearest or stochastic",
                        (int)p->rounding);
    if ((unsigned)p->range > QT_QUANT_RANGE_FIXED)
        return qt_error(QT_ERR_ARG, "quant: range method %d is unknown", (int)p->range);
    if (!(p->floor > 0.0f) || isinf(p->floor))
        return qt_error(QT_ERR_ARG, "quant: floor = %g; pass a finite value > 0 (e.g. 1e-5)",
                        (double)p->floor);
    if (p->range == QT_QUANT_RANGE_ABSMEAN && !p->symmetric)
        return qt_error(QT_ERR_ARG, "quant: the absmean range is symmetric; set symmetric = 1");
    if (p->range == QT_QUANT_RANGE_ABSMEAN && !(p->eps >= 0.0f))
        return qt_error(QT_ERR_ARG, "quant: eps = %g; pass eps >= 0", (double)p->eps);
    if (p->range == QT_QUANT_RANGE_PERCENTILE && !(p->percentile > 0.0f && p->percentile <= 100.0f))
        return qt_error(QT_ERR_ARG, "quant: percentile = %g; pass one in (0, 100]",
                        (double)p->percentile);
    if (p->range == QT_QUANT_RANGE_RUNNING) {
        if (p->granularity != QT_QUANT_PER_TENSOR)
            return qt_error(QT_ERR_ARG, "quant: the running min-max range is per tensor only");
        if (!(p->momentum >= 0.0f && p->momentum < 1.0f))
            return qt_error(QT_ERR_ARG, "quant: momentum = %g; pass one in [0, 1)",
                            (double)p->momentum);
        if (!running)
            return qt_error(QT_ERR_ARG, "quant: the running range needs a qt_quant_running state");
    }
    if (p->range == QT_QUANT_RANGE_FIXED) {
        if (p->granularity != QT_QUANT_PER_TENSOR)
            return qt_error(QT_ERR_ARG, "quant: the fixed range is per tensor only");
        if (!running || !running->initialized)
            return qt_error(QT_ERR_ARG, "quant: the fixed range needs an initialized "
                                        "qt_quant_running state; calibrate the range first");
        if (!(running->lo <= running->hi) || isinf(running->lo) || isinf(running->hi))
            return qt_error(QT_ERR_ARG, "quant: fixed range [%g, %g] is not a finite lo <= hi",
                            (double)running->lo, (double)running->hi);
    }
    if (cols && rows > SIZE_MAX / cols)
        return qt_error(QT_ERR_ARG, "quant: rows %zu x cols %zu overflows", rows, cols);
    return QT_OK;
}

int qt_quant_is_s8_gemm_able(const qt_quant_params *p) {
    return p && p->bits == 8 && p->symmetric && p->rounding == QT_QUANT_NEAREST &&
           (p->granularity == QT_QUANT_PER_TENSOR || p->granularity == QT_QUANT_PER_ROW) &&
           (p->range == QT_QUANT_RANGE_ABSMAX || p->range == QT_QUANT_RANGE_ABSMEAN);
}

qt_status qt_quant_check_s8_linear(const char *op, const qt_quant_params *aq,
                                   const qt_quant_params *wq, int N, int IC, int OC) {
    if (!qt_quant_is_s8_gemm_able(aq) || !qt_quant_is_s8_gemm_able(wq))
        return qt_error(QT_ERR_UNSUPPORTED,
                        "%s: the INT8 GEMM needs 8-bit symmetric round-to-nearest quantization "
                        "per tensor or per row (absmax or absmean) of both x and w; got x bits %d "
                        "sym %d rounding %d granularity %d, w bits %d sym %d rounding %d "
                        "granularity %d; use the fake-quant linear for other grids",
                        op, aq ? aq->bits : 0, aq ? aq->symmetric : 0,
                        aq ? (int)aq->rounding : -1, aq ? (int)aq->granularity : -1,
                        wq ? wq->bits : 0, wq ? wq->symmetric : 0, wq ? (int)wq->rounding : -1,
                        wq ? (int)wq->granularity : -1);
    if (N < 0 || OC < 0 || IC < 1)
        return qt_error(QT_ERR_ARG, "%s: shape N %d, IC %d, OC %d; need N, OC >= 0 and IC >= 1",
                        op, N, IC, OC);
    return QT_OK;
}

qt_status qt_quant_check_s8_dx(const char *op, const qt_quant_params *gq, const qt_quant_params *wq,
                               int N, int IC, int OC) {
    if (!qt_quant_is_s8_gemm_able(gq) || !qt_quant_is_s8_gemm_able(wq) ||
        gq->granularity != QT_QUANT_PER_ROW || wq->granularity != QT_QUANT_PER_TENSOR)
        return qt_error(QT_ERR_UNSUPPORTED,
                        "%s: the INT8 dX needs 8-bit symmetric nearest g per token and w per "
                        "tensor; use the fake-quant backward for other grids",
                        op);
    if (N < 1 || IC < 1 || OC < 1)
        return qt_error(QT_ERR_ARG, "%s: shape N %d, IC %d, OC %d; need all >= 1", op, N, IC, OC);
    return QT_OK;
}

size_t qt_quant_num_scales(const qt_quant_params *p, size_t rows, size_t cols) {
    if (!p || (p->granularity == QT_QUANT_PER_GROUP && p->group_size == 0)) return 0;
    if (rows == 0 || cols == 0) return 0;
    const layout l = layout_of(p, rows, cols);
    return l.R * l.gpr;
}

// ---- ranges ---------------------------------------------------------------------------------

static void minmax(const float *x, size_t n, float *lo, float *hi) {
    float a = x[0], b = x[0];
    for (size_t i = 1; i < n; i++) {
        a = fminf(a, x[i]);
        b = fmaxf(b, x[i]);
    }
    *lo = a;
    *hi = b;
}

static float absmax(const float *x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

// mean |x| in quant_math.h's fixed lane/tree order.
static float absmean(const float *x, size_t n) {
    // Row by row over (n / LANES, LANES): every lane still adds its elements in increasing j,
    // so the sums are those of the strided definition, read contiguously.
    double lanes[QT_QUANT_LANES] = {0.0};
    size_t j0 = 0;
    for (; j0 + QT_QUANT_LANES <= n; j0 += QT_QUANT_LANES)
        for (size_t t = 0; t < QT_QUANT_LANES; t++) lanes[t] += (double)fabsf(x[j0 + t]);
    for (size_t t = 0; j0 + t < n; t++) lanes[t] += (double)fabsf(x[j0 + t]);
    for (size_t s = QT_QUANT_LANES / 2; s > 0; s /= 2)
        for (size_t t = 0; t < s; t++) lanes[t] += lanes[t + s];
    return (float)(lanes[0] / (double)n);
}

float qt_cpu_select_kth(float *v, size_t n, size_t k) {
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        const float pivot = v[lo + (hi - lo) / 2];
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            const float t = v[i];
            if (t < pivot) {
                v[i++] = v[lt];
                v[lt++] = t;
            } else if (t > pivot) {
                v[i] = v[--gt];
                v[gt] = t;
            } else {
                i++;
            }
        }
        if (k < lt) hi = lt;
        else if (k >= gt) lo = gt;
        else return pivot;
    }
    return v[k];
}

// Squared error of nearest-rounding fake quant of x under (step, zc).
static double grid_sse(const float *x, size_t n, float step, int zc, int qmin, int qmax) {
    double e = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float d = qt_quant_dequant(qt_quant_code(x[i], step, zc, qmin, qmax, 0, 0.0f),
                                         step, zc);
        e += ((double)d - x[i]) * ((double)d - x[i]);
    }
    return e;
}

// step and zc of the grid over [lo, hi] (asym) or magnitude hi (sym).
static float grid_of(const qt_quant_params *p, float lo, float hi, int *zc) {
    if (p->symmetric) {
        *zc = 0;
        return qt_quant_sym_step(hi, p->floor, p->bits);
    }
    return qt_quant_asym_step(lo, hi, p->floor, p->bits, zc);
}

// The grid of one slice x[0..n); scratch holds n floats (percentile only).
static float slice_grid(const qt_quant_params *p, const float *x, size_t n, float *scratch,
                        int *zc) {
    const int qmin = qt_quant_qmin(p->bits), qmax = qt_quant_qmax(p->bits);
    switch (p->range) {
    case QT_QUANT_RANGE_ABSMEAN:
        *zc = 0;
        return qt_quant_sym_step(absmean(x, n) + p->eps, p->floor, p->bits);
    case QT_QUANT_RANGE_PERCENTILE: {
        // nearest rank: the ceil(p n / 100)-th smallest
        double rank = ceil((double)p->percentile / 100.0 * (double)n);
        size_t k = rank < 1.0 ? 0 : (size_t)rank - 1;
        if (k >= n) k = n - 1;
        if (p->symmetric) {
            for (size_t i = 0; i < n; i++) scratch[i] = fabsf(x[i]);
            return grid_of(p, 0.0f, qt_cpu_select_kth(scratch, n, k), zc);
        }
        memcpy(scratch, x, n * sizeof(float));
        const float hi = qt_cpu_select_kth(scratch, n, k);
        const float lo = qt_cpu_select_kth(scratch, n, n - 1 - k);
        return grid_of(p, lo, hi, zc);
    }
    case QT_QUANT_RANGE_MSE: {
        float lo = 0.0f, hi = 0.0f;
        if (p->symmetric) hi = absmax(x, n);
        else minmax(x, n, &lo, &hi);
        float best_step = 0.0f;
        int best_zc = 0;
        double best = INFINITY;
        for (int k = 1; k <= MSE_CANDIDATES; k++) {
            const float f = (float)k / (float)MSE_CANDIDATES;
            int z;
            // k = 100 is exactly the absmax / min-max grid
            const float s = k == MSE_CANDIDATES ? grid_of(p, lo, hi, &z)
                                                : grid_of(p, lo * f, hi * f, &z);
            const double e = grid_sse(x, n, s, z, qmin, qmax);
            if (e < best || best_step == 0.0f) {
                best = e;
                best_step = s;
                best_zc = z;
            }
        }
        *zc = best_zc;
        return best_step;
    }
    default: { // ABSMAX (RUNNING is resolved by the caller)
        float lo = 0.0f, hi;
        if (p->symmetric) hi = absmax(x, n);
        else minmax(x, n, &lo, &hi);
        return grid_of(p, lo, hi, zc);
    }
    }
}

// Fills scales/zeros (nslices) for x under p; updates the running state.
static qt_status compute_grids(const qt_quant_params *p, qt_quant_running *running,
                               const float *x, layout l, float *scales, int32_t *zeros) {
    if (p->range == QT_QUANT_RANGE_RUNNING || p->range == QT_QUANT_RANGE_FIXED) {
        // FIXED: the calibrated state as given, never updated
        if (p->range == QT_QUANT_RANGE_RUNNING) {
            float lo, hi;
            minmax(x, l.C, &lo, &hi);
            if (!running->initialized) {
                running->lo = lo;
                running->hi = hi;
                running->initialized = 1;
            } else {
                const float m = p->momentum;
                running->lo = m * running->lo + (1.0f - m) * lo;
                running->hi = m * running->hi + (1.0f - m) * hi;
            }
        }
        int z;
        const float mag = fmaxf(fabsf(running->lo), fabsf(running->hi));
        scales[0] = grid_of(p, running->lo, p->symmetric ? mag : running->hi, &z);
        zeros[0] = z;
        return QT_OK;
    }
    // slices in parallel (each is independent); percentile needs a scratch copy per thread
    const size_t ns = l.R * l.gpr;
    const int need_scratch = p->range == QT_QUANT_RANGE_PERCENTILE;
    int oom = 0;
#pragma omp parallel if (ns > 1 && l.R * l.C >= PAR_MIN) reduction(| : oom)
    {
        float *scratch = need_scratch ? malloc(l.G * sizeof(float)) : NULL;
        if (need_scratch && !scratch) oom = 1;
#pragma omp for schedule(dynamic, 1)
        for (size_t s = 0; s < ns; s++) {
            if (need_scratch && !scratch) continue;
            const size_t r = s / l.gpr, c0 = (s % l.gpr) * l.G;
            const size_t n = l.C - c0 < l.G ? l.C - c0 : l.G;
            int z;
            scales[s] = slice_grid(p, x + r * l.C + c0, n, scratch, &z);
            zeros[s] = z;
        }
        free(scratch);
    }
    if (oom)
        return qt_error(QT_ERR_OOM, "quant: no memory for a %zu-float percentile scratch", l.G);
    return QT_OK;
}

// codes and/or fake-quant values of every element, in chunks of CHUNK elements (in parallel);
// within a chunk, runs of one slice share a grid looked up once (no division per element).
static void apply_grids(const qt_quant_params *p, layout l, const float *x, const float *scales,
                        const int32_t *zeros, int8_t *codes, float *out) {
    const int qmin = qt_quant_qmin(p->bits), qmax = qt_quant_qmax(p->bits);
    const int sr = p->rounding == QT_QUANT_STOCHASTIC;
    const size_t n = l.R * l.C, nchunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t k = 0; k < nchunks; k++) {
        const size_t end = n - k * CHUNK < CHUNK ? n : k * CHUNK + CHUNK;
        for (size_t i = k * CHUNK; i < end;) {
            const size_t r = i / l.C, g = (i % l.C) / l.G, s = r * l.gpr + g;
            const size_t c1 = (g + 1) * l.G < l.C ? (g + 1) * l.G : l.C; // end of the slice
            const size_t run_end = r * l.C + c1 < end ? r * l.C + c1 : end;
            const float step = scales[s];
            const int zc = zeros[s];
            for (; i < run_end; i++) {
                const float u = sr ? qt_quant_uniform(p->seed, p->stream, i) : 0.0f;
                const int c = qt_quant_code(x[i], step, zc, qmin, qmax, sr, u);
                if (codes) codes[i] = (int8_t)c;
                if (out) out[i] = qt_quant_dequant(c, step, zc);
            }
        }
    }
}

static qt_status quant_run(const qt_quant_params *p, qt_quant_running *running, int8_t *codes,
                           float *scales, int32_t *zeros, float *out, const float *x,
                           size_t rows, size_t cols) {
    QT_TRY(qt_quant_check(p, rows, cols, running));
    if (rows == 0 || cols == 0) return QT_OK;
    if (!x || (!codes && !out))
        return qt_error(QT_ERR_ARG, "quant: a tensor pointer is NULL for (%zu, %zu)", rows, cols);
    const layout l = layout_of(p, rows, cols);
    const size_t ns = l.R * l.gpr;
    float *own_s = NULL;
    int32_t *own_z = NULL;
    if (!scales) scales = own_s = malloc(ns * sizeof(float));
    if (!zeros) zeros = own_z = malloc(ns * sizeof(int32_t));
    qt_status st = QT_OK;
    if (!scales || !zeros)
        st = qt_error(QT_ERR_OOM, "quant: no memory for %zu scales", ns);
    else
        st = compute_grids(p, running, x, l, scales, zeros);
    if (st == QT_OK) apply_grids(p, l, x, scales, zeros, codes, out);
    free(own_s);
    free(own_z);
    return st;
}

qt_status qt_cpu_quant_fake(const qt_quant_params *p, qt_quant_running *running, float *out,
                            const float *x, size_t rows, size_t cols) {
    return qt_cpu_quant_fake_ws(p, running, out, x, rows, cols, NULL, NULL);
}

qt_status qt_cpu_quant_fake_ws(const qt_quant_params *p, qt_quant_running *running, float *out,
                               const float *x, size_t rows, size_t cols, float *scales,
                               int32_t *zeros) {
    if (!out && rows && cols) return qt_error(QT_ERR_ARG, "quant_fake: out is NULL");
    return quant_run(p, running, NULL, scales, zeros, out, x, rows, cols);
}

qt_status qt_cpu_quant_quantize(const qt_quant_params *p, qt_quant_running *running,
                                int8_t *codes, float *scales, int32_t *zeros, const float *x,
                                size_t rows, size_t cols) {
    if ((!codes || !scales) && rows && cols)
        return qt_error(QT_ERR_ARG, "quant_quantize: codes or scales is NULL");
    if (p && !p->symmetric && !zeros && rows && cols)
        return qt_error(QT_ERR_ARG, "quant_quantize: asymmetric grids need a zeros array");
    return quant_run(p, running, codes, scales, zeros, NULL, x, rows, cols);
}

qt_status qt_cpu_quant_dequantize(const qt_quant_params *p, float *out, const int8_t *codes,
                                  const float *scales, const int32_t *zeros, size_t rows,
                                  size_t cols) {
    QT_TRY(qt_quant_check(p, rows, cols, NULL));
    if (rows == 0 || cols == 0) return QT_OK;
    if (!out || !codes || !scales)
        return qt_error(QT_ERR_ARG, "quant_dequantize: a pointer is NULL for (%zu, %zu)", rows,
                        cols);
    const layout l = layout_of(p, rows, cols);
    const size_t n = l.R * l.C;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const size_t s = (i / l.C) * l.gpr + (i % l.C) / l.G;
        out[i] = qt_quant_dequant(codes[i], scales[s], zeros ? zeros[s] : 0);
    }
    return QT_OK;
}

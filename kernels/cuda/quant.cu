// quant.cu: qt_cuda_quant_{fake,quantize}, the linear b-bit quantizer of kernels/quant.h
// on the device (PAPERS.md section 6 grid and floors, section 8 BitNet absmean, section 9
// stochastic rounding with Philox keyed by (seed, stream, element index)).
// CPU twin: kernels/cpu/quant.c (qt_cpu_quant_{fake,quantize}); both take every per-element
// formula and the absmean reduction order from base/quant_math.h, so codes, scales
// and fake-quant values are bit-identical to the CPU's (fp32 input; fp16/bf16 inputs are read
// as fp32 and fake-quant outputs rounded once to dt).
// Ranges here: ABSMAX and ABSMEAN (the others are host-side, calibration-time methods: use the
// CPU ops on a host copy). Every granularity and both roundings.
// Two kernels: quant_grid_slice_block (one block per slice computes its step and zero point
// into scales/zeros) and quant_apply_elem (one thread per element writes codes or fake values).
// A per-tensor grid is one block scanning the whole tensor: fine for the sizes of a weight or a
// micro-batch of activations, a two-level reduction would pay for larger ones.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include "base/quant_math.h"
#include "kernels/quant.h"

// ---- launch constants ----------------------------------------------------------------------
// The grid kernel's block size IS the absmean lane count of quant_math.h (the reduction order
// the CPU reproduces), so it must stay QT_QUANT_LANES. 256 threads per block for the
// elementwise kernel: Philox (stochastic rounding) dominates, not memory.
#define GRID_THREADS QT_QUANT_LANES
#define APPLY_THREADS 256

// ---- kernels -------------------------------------------------------------------------------

// Thread -> data: block b owns slice b = (row r = b / gpr, group g = b % gpr), elements
// x[r C + g G + j], j in [0, len); thread t visits j = t, t + 256, ... in order (the CPU's lane
// t). Shared memory: the 256 partial sums (double, absmean) or minima/maxima (float, absmax),
// then the fixed tree of quant_math.h (qt_block_tree); thread 0 writes scales[b], zeros[b].
// method: 0 absmax, 1 absmean. Guards: j < len (the last group of a row may be short).
template <typename T>
static __global__ void __launch_bounds__(GRID_THREADS)
    quant_grid_slice_block(const T *x, size_t C, size_t G, size_t gpr, int method,
                           int symmetric, int bits, float floor_, float eps, float *scales,
                           int32_t *zeros) {
    QT_SHARED(double, sh_sum, GRID_THREADS);
    QT_SHARED(float, sh_lo, GRID_THREADS);
    QT_SHARED(float, sh_hi, GRID_THREADS);
    const size_t b = blockIdx.x, r = b / gpr, g = b % gpr;
    const size_t c0 = g * G, len = C - c0 < G ? C - c0 : G;
    const T *xs = x + r * C + c0;
    const unsigned t = threadIdx.x;
    double sum = 0.0;
    float lo = 0.0f, hi = 0.0f;
    if (!symmetric && t < len) lo = hi = qt_to_f32(xs[t]);
    for (size_t j = t; j < len; j += GRID_THREADS) {
        const float v = qt_to_f32(xs[j]);
        if (method == 1) {
            sum += (double)fabsf(v);
        } else if (symmetric) {
            hi = qt_op_max()(hi, fabsf(v));
        } else {
            lo = qt_op_min()(lo, v);
            hi = qt_op_max()(hi, v);
        }
    }
    sh_sum[t] = sum;
    sh_lo[t] = lo;
    sh_hi[t] = hi;
    qt_block_tree<GRID_THREADS>((int)t, [&](int dst, int src) {
        sh_sum[dst] += sh_sum[src];
        if ((size_t)src < len) { // lanes >= len saw no element: leave them out of the min/max
            sh_lo[dst] = qt_op_min()(sh_lo[dst], sh_lo[src]);
            sh_hi[dst] = qt_op_max()(sh_hi[dst], sh_hi[src]);
        }
    });
    if (t != 0) return;
    int zc = 0;
    float step;
    if (method == 1)
        step = qt_quant_sym_step((float)(sh_sum[0] / (double)len) + eps, floor_, bits);
    else if (symmetric)
        step = qt_quant_sym_step(sh_hi[0], floor_, bits);
    else
        step = qt_quant_asym_step(sh_lo[0], sh_hi[0], floor_, bits, &zc);
    scales[b] = step;
    if (zeros) zeros[b] = zc;
}

// Thread -> data: global thread i owns element i of the (R, C) view (slice r * gpr + c / G);
// draws u = qt_quant_uniform(seed, stream, i) = qt_philox_uniform(...) when stochastic (the
// CPU's draw; the word is selected without an array index, so no local memory). Writes
// codes[i] (when codes) and/or out[i] = (code - zc) * step (when out). No shared memory.
// Guard: i < n.
template <typename T>
static __global__ void __launch_bounds__(APPLY_THREADS)
    quant_apply_elem(const T *x, size_t n, size_t C, size_t G, size_t gpr, int qmin, int qmax,
                     int stochastic, uint64_t seed, uint64_t stream, const float *scales,
                     const int32_t *zeros, int8_t *codes, T *out) {
    const size_t i = (size_t)blockIdx.x * APPLY_THREADS + threadIdx.x;
    if (i >= n) return;
    const size_t s = (i / C) * gpr + (i % C) / G;
    const float step = scales[s];
    const int zc = zeros ? zeros[s] : 0;
    const float u = stochastic ? qt_quant_uniform(seed, stream, i) : 0.0f;
    const int c = qt_quant_code(qt_to_f32(x[i]), step, zc, qmin, qmax, stochastic, u);
    if (codes) codes[i] = (int8_t)c;
    if (out) qt_st(out + i, qt_quant_dequant(c, step, zc));
}

// ---- launchers -----------------------------------------------------------------------------

template <typename T>
static void launch(cudaStream_t st, const qt_quant_params *p, const void *x, size_t R, size_t C,
                   size_t G, size_t gpr, float *scales, int32_t *zeros, int8_t *codes,
                   void *out) {
    const int method = p->range == QT_QUANT_RANGE_ABSMEAN ? 1 : 0;
    QT_LAUNCH(quant_grid_slice_block<T>, (unsigned)(R * gpr), GRID_THREADS, 0, st, (const T *)x,
              C, G, gpr, method, p->symmetric, p->bits, p->floor, p->eps, scales, zeros);
    const size_t n = R * C;
    QT_LAUNCH(quant_apply_elem<T>, (unsigned)QT_CEIL_DIV(n, (size_t)APPLY_THREADS),
              APPLY_THREADS, 0, st, (const T *)x, n, C, G, gpr, qt_quant_qmin(p->bits),
              qt_quant_qmax(p->bits), p->rounding == QT_QUANT_STOCHASTIC ? 1 : 0, p->seed,
              p->stream, (const float *)scales, (const int32_t *)zeros, codes, (T *)out);
}

static qt_status quant_run(const char *op, void *stream, int dt, const qt_quant_params *p,
                           int8_t *codes, void *out, float *scales, int32_t *zeros,
                           const void *x, size_t rows, size_t cols) {
    QT_TRY(qt_check_dtype(op, (qt_dtype)dt));
    QT_TRY(qt_quant_check(p, rows, cols, NULL));
    if (p->range != QT_QUANT_RANGE_ABSMAX && p->range != QT_QUANT_RANGE_ABSMEAN)
        return qt_error(QT_ERR_UNSUPPORTED,
                        "%s: range method %d runs on the CPU only; use absmax or absmean here, "
                        "or qt_cpu_quant_* on a host copy",
                        op, (int)p->range);
    if (rows == 0 || cols == 0) return QT_OK;
    QT_TRY(qt_check_tensors(
        op, qt_arg("x", x, (qt_dtype)dt), qt_arg("scales", scales),
        qt_arg("zeros (asymmetric grids)", zeros, p->symmetric ? QT_ARG_OPTIONAL : QT_ARG_REQUIRED),
        qt_arg("codes", codes, QT_ARG_OPTIONAL),
        qt_arg("out", out, (qt_dtype)dt, codes ? QT_ARG_OPTIONAL : QT_ARG_REQUIRED)));
    size_t R = rows, C = cols, G;
    if (p->granularity == QT_QUANT_PER_TENSOR) {
        R = 1;
        C = rows * cols;
        G = C;
    } else {
        G = p->granularity == QT_QUANT_PER_ROW ? cols : p->group_size;
    }
    const size_t gpr = QT_CEIL_DIV(C, G);
    QT_TRY(qt_check_grid(op, R * gpr));
    QT_TRY(qt_check_grid(op, QT_CEIL_DIV(R * C, (size_t)APPLY_THREADS)));
    QT_DTYPE_DISPATCH(dt, launch, (cudaStream_t)stream, p, x, R, C, G, gpr, scales, zeros, codes,
                      out);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_quant_fake(qt_cuda_stream stream, qt_dtype dt,
                                        const qt_quant_params *p, void *out, const void *x,
                                        size_t rows, size_t cols, float *scales,
                                        int32_t *zeros) {
    return quant_run("quant_fake", stream, dt, p, NULL, out, scales, zeros, x, rows, cols);
}

extern "C" qt_status qt_cuda_quant_quantize(qt_cuda_stream stream, qt_dtype dt,
                                            const qt_quant_params *p,
                                            int8_t *codes, float *scales, int32_t *zeros,
                                            const void *x, size_t rows, size_t cols) {
    if (!codes && rows && cols)
        return qt_error(QT_ERR_ARG, "quant_quantize: codes is NULL for (%zu, %zu)", rows, cols);
    return quant_run("quant_quantize", stream, dt, p, codes, NULL, scales, zeros, x, rows, cols);
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// Two kernels per call, n = rows cols elements in ns slices (one fp32 scale, and an int32 zero
// point when zeros is given, each): quant_grid_slice_block reads x (E n) and writes the slices'
// scales (and zero points); 2 flops per element (|x| and the max or sum). quant_apply_elem
// reads x and the scales, writes the int8 codes (n, quantize) or the fake values (E n); per
// element x / step, round, clamp (3), the dequantization (2, fake) and the uniform draw's
// compare (1, stochastic; the Philox draw is integer work).

static void quant_cost(qt_cost *c, qt_dtype dt, const qt_quant_params *p, int codes, int out,
                       int zeros, size_t rows, size_t cols) {
    if (!p || rows == 0 || cols == 0) return;
    if (p->range != QT_QUANT_RANGE_ABSMAX && p->range != QT_QUANT_RANGE_ABSMEAN) return;
    size_t R = rows, C = cols, G;
    if (p->granularity == QT_QUANT_PER_TENSOR) {
        R = 1;
        C = rows * cols;
        G = C;
    } else {
        G = p->granularity == QT_QUANT_PER_ROW ? cols : p->group_size;
    }
    if (G == 0) return;
    const double n = (double)rows * (double)cols, E = (double)qt_dtype_size(dt);
    const double slices = (double)(R * QT_CEIL_DIV(C, G)) * (zeros ? 8 : 4);
    qt_cost_kernel(c, "quant_grid_slice_block", E * n + slices, 2 * n);
    const double per = 3 + (out ? 2 : 0) + (p->rounding == QT_QUANT_STOCHASTIC ? 1 : 0);
    qt_cost_kernel(c, "quant_apply_elem", E * n + slices + (codes ? n : 0) + (out ? E * n : 0),
                   per * n);
}

extern "C" void qt_cuda_quant_fake_cost(qt_cost *c, qt_dtype dt, const qt_quant_params *p,
                                        const void *out, const void *x, size_t rows, size_t cols,
                                        const float *scales, const int32_t *zeros) {
    (void)x, (void)scales;
    quant_cost(c, dt, p, 0, out != NULL, zeros != NULL, rows, cols);
}

extern "C" void qt_cuda_quant_quantize_cost(qt_cost *c, qt_dtype dt, const qt_quant_params *p,
                                            const int8_t *codes, const float *scales,
                                            const int32_t *zeros, const void *x, size_t rows,
                                            size_t cols) {
    (void)scales, (void)x;
    if (!codes) return;
    quant_cost(c, dt, p, 1, 0, zeros != NULL, rows, cols);
}

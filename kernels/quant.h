// kernels/quant.h: quantize-dequantize of a (rows, cols) fp32 tensor onto a b-bit integer grid,
// the building block of quantized training (PAPERS.md sections 5-9).
//
// Grid (base/quant_math.h): codes in [qmin, qmax] = [-2^(b-1), 2^(b-1) - 1] for
// bits 2..8, [-1, 1] for QT_QUANT_TERNARY; dequant = (code - zc) * step per slice, zc = 0 when
// symmetric. Asymmetric grids (unsigned, zero point z in [0, 2^b - 1]) are stored shifted by
// qmin (zc = z + qmin), so every code fits int8 and 0 is exactly representable.
// A slice is the whole tensor (QT_QUANT_PER_TENSOR), a row (QT_QUANT_PER_ROW: an output channel
// of W[out, in], a token of X[tokens, in]) or `group_size` consecutive elements of a row
// (QT_QUANT_PER_GROUP; the last group of a row may be shorter). Slices are numbered row-major:
// slice (r, g) = r * ceil(cols / group) + g; qt_quant_num_scales() counts them.
// Ranges per slice (step = range / qmax, asymmetric: width / (2^b - 1)):
//   ABSMAX      max|x| (asym: [min, max]), floored at `floor` (1e-5 for W/A, PAPERS.md s. 6);
//   ABSMEAN     BitNet/DQT: step = (mean|x| + eps) / qmax; ternary: RoundClip(x/(gamma+eps))
//               (symmetric only);
//   RUNNING     running min-max (per tensor only): lo = m lo + (1 - m) batch_lo, same for hi,
//               the first call initialises; the caller keeps the qt_quant_running state;
//   PERCENTILE  the `percentile`-th percentile (nearest rank) of |x| (asym: of x, both tails);
//   MSE         the best of 100 candidate ranges k/100 * max|x| (asym: k/100 * [min, max]),
//               k = 1..100, by squared error under nearest rounding (PAPERS.md section 5);
//   FIXED       a frozen calibrated range (per tensor only): [lo, hi] of the qt_quant_running
//               state as given (symmetric: max(|lo|, |hi|)), never updated; the state must be
//               initialized (post-training quantization after calibration, PAPERS.md s. 5).
// The floor applies to every range. Rounding: nearest (ties to even) or stochastic,
// q = floor(x/step + u), u = qt_philox_uniform(seed, stream, r * cols + c), unbiased.
// Family files: kernels/cpu/quant.c (the C reference), kernels/cuda/quant.cu, tests/test_quant.c,
// tests/cuda/test_cuda_quant.c, bench/bench_quant.c.
// Errors (as every family): each CPU op returns QT_OK, or QT_ERR_ARG for a bad argument (a size
// out of range, a required tensor NULL, bad params) with qt_last_error() naming the op, the
// value and the fix, before any output is written: a refused call leaves its outputs untouched.
#ifndef QTRAIN_KERNELS_QUANT_H
#define QTRAIN_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// qt_quant_params, qt_quant_running and the enums: base/params.h.

// Defaults: `bits`, symmetric, per tensor, nearest, absmax, floor 1e-5, eps 1e-5,
// percentile 99.999, momentum 0.9, seed 0, stream 0.
qt_quant_params qt_quant_params_default(int bits);

// The stochastic-rounding stream of tensor `tensor_id` at training step `step`
// (qt_stream_id(step, tensor_id, QT_QUANT_STREAM_USE)); pair with the run seed.
uint64_t qt_quant_stream(uint64_t step, uint64_t tensor_id);

// Number of slices (scales, zero points) of a (rows, cols) tensor under p (0 if p is invalid).
size_t qt_quant_num_scales(const qt_quant_params *p, size_t rows, size_t cols);

// 1 when the INT8 GEMM's epilogue (one scale per row of each operand, no zero points) can
// dequantize codes made under p: p non-NULL, 8 bits, symmetric, round-to-nearest, per tensor
// or per row, range ABSMAX or ABSMEAN; else 0.
int qt_quant_is_s8_gemm_able(const qt_quant_params *p);

// The arguments of a backend's linear_s8_fwd (qtrain/backend.h), named by `op` in the error:
// QT_ERR_UNSUPPORTED (naming both grids) unless qt_quant_is_s8_gemm_able(aq) and (wq);
// QT_ERR_ARG unless N, OC >= 0 and IC >= 1.
qt_status qt_quant_check_s8_linear(const char *op, const qt_quant_params *aq,
                                   const qt_quant_params *wq, int N, int IC, int OC);
// The arguments of a backend's linear_s8_dx (SwitchBack's INT8 dX, qtrain/backend.h), named by
// `op` in the error: QT_ERR_UNSUPPORTED unless gq is per row (per token) and wq per tensor, both
// qt_quant_is_s8_gemm_able; QT_ERR_ARG unless N, IC, OC >= 1.
qt_status qt_quant_check_s8_dx(const char *op, const qt_quant_params *gq, const qt_quant_params *wq,
                               int N, int IC, int OC);

// Checks p (and that `running` is given for RUNNING, and given and initialized for FIXED);
// QT_ERR_ARG names the bad field.
qt_status qt_quant_check(const qt_quant_params *p, size_t rows, size_t cols,
                         const qt_quant_running *running);

// out = dequant(quant(x)); x, out: (rows, cols), may alias. running: RUNNING / FIXED state or
// NULL.
qt_status qt_cpu_quant_fake(const qt_quant_params *p, qt_quant_running *running, float *out,
                            const float *x, size_t rows, size_t cols);
// qt_cpu_quant_fake with its per-slice workspace given, so the call allocates nothing (but
// PERCENTILE's per-thread copy of a slice): scales (qt_quant_num_scales) fp32 and zeros (as
// many) int32 receive each slice's step and shifted zero point, as qt_cuda_quant_fake's do.
// Either may be NULL: then allocated for the call.
qt_status qt_cpu_quant_fake_ws(const qt_quant_params *p, qt_quant_running *running, float *out,
                               const float *x, size_t rows, size_t cols, float *scales,
                               int32_t *zeros);

// codes: (rows, cols) int8; scales, zeros: (qt_quant_num_scales) step and shifted zero point
// zc of each slice; zeros may be NULL when symmetric.
qt_status qt_cpu_quant_quantize(const qt_quant_params *p, qt_quant_running *running,
                                int8_t *codes, float *scales, int32_t *zeros, const float *x,
                                size_t rows, size_t cols);

// out = (codes - zc) * scale per slice (zeros NULL: 0); p gives the layout.
qt_status qt_cpu_quant_dequantize(const qt_quant_params *p, float *out, const int8_t *codes,
                                  const float *scales, const int32_t *zeros, size_t rows,
                                  size_t cols);

// The k-th smallest (0-based, k < n) of v[0..n), reordering v: quickselect with a three-way
// partition [lo, lt) < pivot, [lt, gt) == pivot, [gt, hi) > pivot (NaN counts as equal).
// The percentile range's order statistic, also the PTQ calibration's (host/eval/ptq.c).
float qt_cpu_select_kth(float *v, size_t n, size_t k);

// ---- CUDA (kernels/cuda/quant.cu), device pointers, fp32 math
// x and out hold `dt`; ranges ABSMAX and ABSMEAN only, both roundings, every granularity; same
// codes as the CPU (same Philox bits, same reduction order). scales (fp32) and zeros (int32,
// may be NULL when symmetric) are written, one per slice: the fake-quant launcher needs them as
// its workspace too (hence after the CPU op's arguments).
qt_status qt_cuda_quant_fake(qt_cuda_stream s, qt_dtype dt, const qt_quant_params *p, void *out,
                             const void *x, size_t rows, size_t cols, float *scales,
                             int32_t *zeros);
qt_status qt_cuda_quant_quantize(qt_cuda_stream s, qt_dtype dt, const qt_quant_params *p,
                                 int8_t *codes, float *scales, int32_t *zeros, const void *x,
                                 size_t rows, size_t cols);

// Cost model (base/cost.h; counted in kernels/cuda/quant.cu): the launches each launcher above
// makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_quant_fake_cost(qt_cost *c, qt_dtype dt, const qt_quant_params *p, const void *out,
                             const void *x, size_t rows, size_t cols, const float *scales,
                             const int32_t *zeros);
void qt_cuda_quant_quantize_cost(qt_cost *c, qt_dtype dt, const qt_quant_params *p,
                                 const int8_t *codes, const float *scales, const int32_t *zeros,
                                 const void *x, size_t rows, size_t cols);

#ifdef __cplusplus
}
#endif
#endif

// kernels/dqt.h: direct quantized training (DQT, Zhao et al. 2024; PAPERS.md section 7).
//
// A DQT weight exists only as int8 codes q in [qmin, qmax] and one fp32 scale s per tensor:
// w = q * s. There is no full-precision copy. An optimizer step computes, per element,
//   g = grad * grad_scale;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   w  = q * scale_in
//   w' = w - lr (mhat / (sqrt(vhat) + eps) + weight_decay w)      (AdamW, as qt_cpu_adamw_step)
//   q' = clamp(floor(w' / scale_out + u), qmin, qmax),  u = qt_philox_uniform(seed, stream, i)
// i.e. stochastic rounding of the updated value onto the grid of scale_out (unbiased inside
// the range). Evaluated as t = q (scale_in / scale_out) - update / scale_out, rounded up when
// u < t - floor(t) (base/dqt_math.h): equal in exact arithmetic, but a zero update
// with scale_out = scale_in never moves a code, where w' / scale_out computed from q * scale_in
// misses the integer by an ulp for ~12% of (code, scale) pairs. The caller picks scale_out by
// its scale rule (quant.dqt_scale).
// Ternary: qmin = -1, qmax = 1; b bits: qmin = -2^(b-1), qmax = 2^(b-1) - 1.
// Family files: kernels/cpu/dqt.c (the C reference), kernels/cuda/dqt.cu, tests/test_dqt.c,
// tests/cuda/test_cuda_dqt.c, bench/bench_dqt.c.
// Errors (as every family): each CPU op returns QT_OK, or QT_ERR_ARG for a bad argument (a size
// out of range, a required tensor NULL, bad params) with qt_last_error() naming the op, the
// value and the fix, before any output is written: a refused call leaves its outputs untouched.
#ifndef QTRAIN_KERNELS_DQT_H
#define QTRAIN_KERNELS_DQT_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// qt_dqt_params and qt_dqt_stats: base/params.h.

// One DQT step on n elements (CPU reference). codes (n) int8, grad (n) fp32, m, v (n) fp32.
// stats (may be NULL) receives the stats of this call; with dp->dry_run nothing else is
// written (so a scale rule can look at the update before committing to a scale).
qt_status qt_cpu_dqt_step(const qt_dqt_params *dp, int8_t *codes, const float *grad, float *m,
                          float *v, size_t n, qt_dqt_stats *stats);

// out (n) = codes * scale (CPU reference).
qt_status qt_cpu_dqt_dequant(float *out, const int8_t *codes, float scale, size_t n);

// ---- CUDA (kernels/cuda/dqt.cu), device pointers. grad and out hold `dt`; m, v fp32. Same
// codes as the CPU bit for bit (same Philox bits, same float math order).
// stats (host, may be NULL): reduced on the device in the CPU's order into `scratch` (device
// memory of at least qt_cuda_dqt_scratch_bytes(n) bytes, 8-byte aligned) and copied to the
// host; the call then waits for the stream, so the scratch is free for reuse when it returns.
// Without stats, scratch may be NULL, is not touched, and the call does not wait. The launcher
// allocates nothing (keep one scratch per stream, grown to the largest n).
size_t qt_cuda_dqt_scratch_bytes(size_t n);
qt_status qt_cuda_dqt_step(qt_cuda_stream s, qt_dtype dt, const qt_dqt_params *dp, int8_t *codes,
                           const void *grad, float *m, float *v, size_t n, qt_dqt_stats *stats,
                           void *scratch);
qt_status qt_cuda_dqt_dequant(qt_cuda_stream s, qt_dtype dt, void *out, const int8_t *codes,
                              float scale, size_t n);

// Cost model (base/cost.h; counted in kernels/cuda/dqt.cu): the launches each launcher above
// makes for the same arguments (those after the stream), the stats' copies to the host and
// the wait for them included, appended to *c.
void qt_cuda_dqt_step_cost(qt_cost *c, qt_dtype dt, const qt_dqt_params *dp, const int8_t *codes,
                           const void *grad, const float *m, const float *v, size_t n,
                           const qt_dqt_stats *stats, const void *scratch);
void qt_cuda_dqt_dequant_cost(qt_cost *c, qt_dtype dt, const void *out, const int8_t *codes,
                              float scale, size_t n);

#ifdef __cplusplus
}
#endif
#endif

// kernels/crossentropy.h: cross-entropy fused with the softmax over the vocabulary
//
// Family files: kernels/cpu/crossentropy.c (the C reference), kernels/cuda/crossentropy.cu, tests/test_crossentropy.c,
// tests/cuda/test_cuda_crossentropy.c, bench/bench_crossentropy.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_CROSSENTROPY_H
#define QTRAIN_KERNELS_CROSSENTROPY_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// The classifier's loss and its gradient from the logits, with fp32 statistics (no stored
// probabilities: in fp16 most of a large vocabulary's would be subnormal). Per row n, with
// z = logits[n] (V), t = targets[n], m = max_j z_j and S = sum_j exp(z_j - m):
//   forward:  losses[n] = log S - (z_t - m) (= -log softmax(z)_t, exact for tiny
//             probabilities), stats[n] = {m, 1 / S}; logits untouched; rows with t < 0 are
//             ignored: loss 0 (stats still written).
//   backward: dlogits[n] (V) += dlosses[n] (exp(z - m) (1 / S) - onehot(t)) from those stats;
//             ignored rows get nothing. dlogits may alias logits: then it is overwritten with
//             the gradient (ignored rows become 0), the model's in-place classifier.
// stats is (N, 2), fp32 on CUDA (the backend's REAL in the CPU twins).
qt_status qt_cpu_crossentropy_fwd(float *losses, float *stats, const float *logits,
                                  const int *targets, int N, int V);
qt_status qt_cpu_crossentropy_bwd(float *dlogits, const float *dlosses, const float *logits,
                                  const float *stats, const int *targets, int N, int V);
// Both in one op when the gradient's scale is known before the loss (training): the forward,
// then the backward in place, dlogits overwriting the logits (N, V): losses, stats and the
// gradient equal qt_cpu_crossentropy_fwd then qt_cpu_crossentropy_bwd(logits, dlosses, logits,
// ...) bit for bit. One pass over the logits from memory: each row's gradient is computed
// while the row is still in cache.
qt_status qt_cpu_crossentropy_fwd_bwd(float *losses, float *stats, float *logits,
                                      const float *dlosses, const int *targets, int N, int V);
qt_status qt_cpu_crossentropy_fwd_bwd_f64(double *losses, double *stats, double *logits,
                                          const double *dlosses, const int *targets, int N,
                                          int V);
qt_status qt_cpu_crossentropy_fwd_f64(double *losses, double *stats, const double *logits,
                                      const int *targets, int N, int V);
qt_status qt_cpu_crossentropy_bwd_f64(double *dlogits, const double *dlosses,
                                      const double *logits, const double *stats,
                                      const int *targets, int N, int V);

// CUDA (kernels/cuda/crossentropy.cu).
qt_status qt_cuda_crossentropy_fwd(qt_cuda_stream s, qt_dtype dt, float *losses, float *stats,
                                   const void *logits, const int *targets, int N, int V);
qt_status qt_cuda_crossentropy_bwd(qt_cuda_stream s, qt_dtype dt, void *dlogits,
                                   const float *dlosses, const void *logits, const float *stats,
                                   const int *targets, int N, int V);

qt_status qt_cuda_crossentropy_fwd_bwd(qt_cuda_stream s, qt_dtype dt, float *losses,
                                       float *stats, void *logits, const float *dlosses,
                                       const int *targets, int N, int V);

// Cost model (base/cost.h; counted in kernels/cuda/crossentropy.cu): the launches each launcher
// above makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_crossentropy_fwd_cost(qt_cost *c, qt_dtype dt, const float *losses,
                                   const float *stats, const void *logits, const int *targets,
                                   int N, int V);
void qt_cuda_crossentropy_bwd_cost(qt_cost *c, qt_dtype dt, const void *dlogits,
                                   const float *dlosses, const void *logits, const float *stats,
                                   const int *targets, int N, int V);
void qt_cuda_crossentropy_fwd_bwd_cost(qt_cost *c, qt_dtype dt, const float *losses,
                                       const float *stats, const void *logits,
                                       const float *dlosses, const int *targets, int N, int V);

#ifdef __cplusplus
}
#endif
#endif

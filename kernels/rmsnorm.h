// kernels/rmsnorm.h: RMSNorm (LLaMA), forward and backward
//
// PAPERS.md section 6.
// Family files: kernels/cpu/rmsnorm.c (the C reference), kernels/cuda/rmsnorm.cu, tests/test_rmsnorm.c,
// tests/cuda/test_cuda_rmsnorm.c, bench/bench_rmsnorm.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_RMSNORM_H
#define QTRAIN_KERNELS_RMSNORM_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// eps: QT_RMSNORM_EPS (base/params.h).
// out (N, C) = x * rstd * w, rstd (N) = 1 / sqrt(mean over the row of x^2 + QT_RMSNORM_EPS),
// saved for the backward. No mean subtraction, no bias.
qt_status qt_cpu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int N, int C);
// dx (N, C) +=, dw (C) += from dout (N, C); either may be NULL.
qt_status qt_cpu_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *x,
                             const float *rstd, const float *w, int N, int C);
qt_status qt_cpu_rmsnorm_fwd_f64(double *out, double *rstd, const double *x, const double *w, int N,
                                 int C);
qt_status qt_cpu_rmsnorm_bwd_f64(double *dx, double *dw, const double *dout, const double *x,
                                 const double *rstd, const double *w, int N, int C);

// CUDA (kernels/cuda/rmsnorm.cu). rstd is fp32; dw is a fixed-order reduction (deterministic).
qt_status qt_cuda_rmsnorm_fwd(qt_cuda_stream s, qt_dtype dt, void *out, float *rstd,
                              const void *x, const void *w, int N, int C);
qt_status qt_cuda_rmsnorm_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, void *dw,
                              const void *dout, const void *x, const float *rstd, const void *w,
                              int N, int C);

// Cost model (base/cost.h; counted in kernels/cuda/rmsnorm.cu): the launches each launcher
// above makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_rmsnorm_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const float *rstd,
                              const void *x, const void *w, int N, int C);
void qt_cuda_rmsnorm_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dw,
                              const void *dout, const void *x, const float *rstd, const void *w,
                              int N, int C);

#ifdef __cplusplus
}
#endif
#endif

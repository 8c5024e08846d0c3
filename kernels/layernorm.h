// kernels/layernorm.h: LayerNorm, forward and backward
//
// Family files: kernels/cpu/layernorm.c (the C reference), kernels/cuda/layernorm.cu, tests/test_layernorm.c,
// tests/cuda/test_cuda_layernorm.c, bench/bench_layernorm.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_LAYERNORM_H
#define QTRAIN_KERNELS_LAYERNORM_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// eps: QT_LAYERNORM_EPS (base/params.h).
// out (N, C) = (x - mean) * rstd * w + b, biased variance, eps QT_LAYERNORM_EPS.
// mean, rstd (N): saved for the backward.
qt_status qt_cpu_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w,
                               const float *b, int N, int C);
// dx (N, C) +=, dw (C) +=, db (C) += from dout (N, C).
qt_status qt_cpu_layernorm_bwd(float *dx, float *dw, float *db, const float *dout, const float *x,
                               const float *mean, const float *rstd, const float *w, int N, int C);
qt_status qt_cpu_layernorm_fwd_f64(double *out, double *mean, double *rstd, const double *x,
                                   const double *w, const double *b, int N, int C);
qt_status qt_cpu_layernorm_bwd_f64(double *dx, double *dw, double *db, const double *dout,
                                   const double *x, const double *mean, const double *rstd,
                                   const double *w, int N, int C);

// CUDA (kernels/cuda/layernorm.cu), and the residual add fused with the LayerNorm that
// follows: resid = a + b; out = LayerNorm(resid). resid may alias a or b.
qt_status qt_cuda_layernorm_fwd(qt_cuda_stream s, qt_dtype dt, void *out, float *mean,
                                float *rstd, const void *x, const void *w, const void *b, int N,
                                int C);
qt_status qt_cuda_layernorm_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, void *dw, void *db,
                                const void *dout, const void *x, const float *mean,
                                const float *rstd, const void *w, int N, int C);
qt_status qt_cuda_add_layernorm_fwd(qt_cuda_stream s, qt_dtype dt, void *resid, void *out,
                                    float *mean, float *rstd, const void *a, const void *b,
                                    const void *w, const void *bias, int N, int C);

// Cost model (base/cost.h; counted in kernels/cuda/layernorm.cu): the launches each launcher
// above makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_layernorm_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const float *mean,
                                const float *rstd, const void *x, const void *w, const void *b,
                                int N, int C);
void qt_cuda_layernorm_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dw,
                                const void *db, const void *dout, const void *x, const float *mean,
                                const float *rstd, const void *w, int N, int C);
void qt_cuda_add_layernorm_fwd_cost(qt_cost *c, qt_dtype dt, const void *resid, const void *out,
                                    const float *mean, const float *rstd, const void *a,
                                    const void *b, const void *w, const void *bias, int N, int C);

#ifdef __cplusplus
}
#endif
#endif

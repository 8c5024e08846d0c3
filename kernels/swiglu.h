// kernels/swiglu.h: SwiGLU (LLaMA feed-forward gate)
//
// Family files: kernels/cpu/swiglu.c (the C reference), kernels/cuda/swiglu.cu, tests/test_swiglu.c,
// tests/cuda/test_cuda_swiglu.c, bench/bench_swiglu.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_SWIGLU_H
#define QTRAIN_KERNELS_SWIGLU_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// SwiGLU: x (N, 2F) rows are [a | b]; out (N, F) = silu(a) * b, silu(a) = a sigmoid(a).
qt_status qt_cpu_swiglu_fwd(float *out, const float *x, int N, int F);
// dx (N, 2F) += [dout b silu'(a) | dout silu(a)] from dout (N, F). dx must not alias x or dout.
qt_status qt_cpu_swiglu_bwd(float *dx, const float *dout, const float *x, int N, int F);
qt_status qt_cpu_swiglu_fwd_f64(double *out, const double *x, int N, int F);
qt_status qt_cpu_swiglu_bwd_f64(double *dx, const double *dout, const double *x, int N, int F);

// CUDA (kernels/cuda/swiglu.cu). dx must not alias x or dout.
qt_status qt_cuda_swiglu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x, int N,
                             int F);
qt_status qt_cuda_swiglu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                             const void *x, int N, int F);

// Cost model (base/cost.h; counted in kernels/cuda/swiglu.cu): the launches each launcher above
// makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_swiglu_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const void *x, int N, int F);
void qt_cuda_swiglu_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dout,
                             const void *x, int N, int F);

#ifdef __cplusplus
}
#endif
#endif

// kernels/activation.h: the activations: GELU (tanh approximation) and ReLU
//
// Family files: kernels/cpu/activation.c (the C reference), kernels/cuda/activation.cu, tests/test_activation.c,
// tests/cuda/test_cuda_activation.c, bench/bench_activation.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_ACTIVATION_H
#define QTRAIN_KERNELS_ACTIVATION_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). out may alias x.
qt_status qt_cpu_gelu_fwd(float *out, const float *x, size_t n);
// dx (n) += dout * gelu'(x). dx may alias dout: then dx = dout * gelu'(x) (overwritten, the
// in-place form of the same gradient).
qt_status qt_cpu_gelu_bwd(float *dx, const float *dout, const float *x, size_t n);
qt_status qt_cpu_relu_fwd(float *out, const float *x, size_t n);
// dx += dout where x > 0. dx may alias dout: then dx = dout where x > 0, else 0.
qt_status qt_cpu_relu_bwd(float *dx, const float *dout, const float *x, size_t n);
qt_status qt_cpu_gelu_fwd_f64(double *out, const double *x, size_t n);
qt_status qt_cpu_gelu_bwd_f64(double *dx, const double *dout, const double *x, size_t n);
qt_status qt_cpu_relu_fwd_f64(double *out, const double *x, size_t n);
qt_status qt_cpu_relu_bwd_f64(double *dx, const double *dout, const double *x, size_t n);

// CUDA (kernels/cuda/activation.cu).
qt_status qt_cuda_gelu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x, size_t n);
qt_status qt_cuda_gelu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                           const void *x, size_t n);
qt_status qt_cuda_relu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x, size_t n);
qt_status qt_cuda_relu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                           const void *x, size_t n);

// Cost model (base/cost.h; counted in kernels/cuda/activation.cu): the launches each launcher
// above makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_gelu_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const void *x, size_t n);
void qt_cuda_gelu_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dout, const void *x,
                           size_t n);
void qt_cuda_relu_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const void *x, size_t n);
void qt_cuda_relu_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dout, const void *x,
                           size_t n);

#ifdef __cplusplus
}
#endif
#endif

// kernels/sumsq.h: the sum of squares (global gradient norm, overflow check)
//
// Family files: kernels/cpu/sumsq.c (the C reference), kernels/cuda/sumsq.cu, tests/test_sumsq.c,
// tests/cuda/test_cuda_sumsq.c, bench/bench_sumsq.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_SUMSQ_H
#define QTRAIN_KERNELS_SUMSQ_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// *out = sum of squares of x (n), accumulated in double: the global gradient norm's building
// block; not finite when any element is inf or nan (the loss scaler's overflow check).
qt_status qt_cpu_sumsq(double *out, const float *x, size_t n);

// CUDA (kernels/cuda/sumsq.cu): the same sum, deterministic (fixed reduction order), written to
// the host. partials: device scratch of at least qt_cuda_sumsq_scratch_size() doubles.
size_t qt_cuda_sumsq_scratch_size(void);
qt_status qt_cuda_sumsq(qt_cuda_stream s, qt_dtype dt, double *out_host, const void *x, size_t n,
                        double *partials);

// The same sum left on the device, in partials[qt_cuda_sumsq_scratch_size() - 1] (what
// qt_cuda_sumsq copies to the host), with no copy and no wait: the multi-tensor AdamW
// (kernels/adamw.h) reads it there.
qt_status qt_cuda_sumsq_device(qt_cuda_stream s, qt_dtype dt, const void *x, size_t n,
                               double *partials);
void qt_cuda_sumsq_device_cost(qt_cost *c, qt_dtype dt, const void *x, size_t n,
                               const double *partials);
// Cost model (base/cost.h; counted in kernels/cuda/sumsq.cu): the launches qt_cuda_sumsq makes
// for the same arguments (those after the stream), its copy to the host and wait included,
// appended to *c.
void qt_cuda_sumsq_cost(qt_cost *c, qt_dtype dt, const double *out_host, const void *x, size_t n,
                        const double *partials);

#ifdef __cplusplus
}
#endif
#endif

// kernels/adamw.h: one AdamW step (decoupled weight decay, bias corrections)
//
// Parameters: qt_adamw_params (base/params.h).
// Family files: kernels/cpu/adamw.c (the C reference), kernels/cuda/adamw.cu, tests/test_adamw.c,
// tests/cuda/test_cuda_adamw.c, bench/bench_adamw.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_ADAMW_H
#define QTRAIN_KERNELS_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// One AdamW step on n elements: m, v (n) fp32 moments updated in place, param (n) updated.
qt_status qt_cpu_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                            const qt_adamw_params *prm);

// CUDA (kernels/cuda/adamw.cu): AdamW over fp32 master weights (or fp32 params when master is
// NULL and dt is fp32) writing the rounded parameters back.
qt_status qt_cuda_adamw_step(qt_cuda_stream s, qt_dtype dt, void *param, float *master,
                             const void *grad, float *m, float *v, size_t n,
                             const qt_adamw_params *prm);

// Cost model (base/cost.h; counted in kernels/cuda/adamw.cu): the launches qt_cuda_adamw_step
// makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_adamw_step_cost(qt_cost *c, qt_dtype dt, const void *param, const float *master,
                             const void *grad, const float *m, const float *v, size_t n,
                             const qt_adamw_params *prm);

#ifdef __cplusplus
}
#endif
#endif

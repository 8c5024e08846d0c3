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

// ---- multi-tensor AdamW (issue 10 item 2c): every parameter tensor in one launch, the
// unscaling, clipping and skip decided on the device from the gradients' sum of squares
// (qt_adamw_multi_params), so the optimizer step waits for the device once.

// One block's work: up to QT_ADAMW_CHUNK consecutive elements of one tensor. 16 bytes of
// offsets and 8 of size and decay, the same layout in C and CUDA.
#define QT_ADAMW_CHUNK 65536
typedef struct {
    uint64_t param;     // first element in params (and master)
    uint64_t grad;      // first element in grads, m, v
    uint32_t n;         // elements, 1..QT_ADAMW_CHUNK
    float weight_decay; //
} qt_adamw_chunk;

// The chunks of spans (n_spans of them; empty spans make none) into out (may be NULL: count
// only); returns how many there are. Host function.
size_t qt_cuda_adamw_chunks(qt_adamw_chunk *out, const qt_adamw_span *spans, int n_spans);

// AdamW over the chunks (device, n_chunks of qt_cuda_adamw_chunks, n_elems elements in all)
// of params (dt), master (fp32, the params' offsets; NULL only when dt is fp32: params updated
// in place), grads (dt), m, v (fp32, the grads' offsets), with sumsq (device, one double: the
// sum of the squared scaled gradients, qt_cuda_sumsq_device) deciding as
// qt_adamw_multi_params says. Each element's update is qt_cuda_adamw_step's, bit for bit, with
// that grad_scale.
qt_status qt_cuda_adamw_multi(qt_cuda_stream s, qt_dtype dt, void *params, float *master,
                              const void *grads, float *m, float *v, const qt_adamw_chunk *chunks,
                              size_t n_chunks, size_t n_elems, const qt_adamw_multi_params *prm,
                              const double *sumsq);
void qt_cuda_adamw_multi_cost(qt_cost *c, qt_dtype dt, const void *params, const float *master,
                              const void *grads, const float *m, const float *v,
                              const qt_adamw_chunk *chunks, size_t n_chunks, size_t n_elems,
                              const qt_adamw_multi_params *prm, const double *sumsq);

#ifdef __cplusplus
}
#endif
#endif

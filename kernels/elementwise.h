// kernels/elementwise.h: residual add, bias add and its gradient, dtype casts
//
// The CPU backend stores fp32 only, so cast has no CPU twin (its tests round on the host).
// Family files: kernels/cpu/elementwise.c (the C reference), kernels/cuda/elementwise.cu, tests/test_elementwise.c,
// tests/cuda/test_cuda_elementwise.c, bench/bench_elementwise.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_ELEMENTWISE_H
#define QTRAIN_KERNELS_ELEMENTWISE_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (n) = a + b. out may alias a or b.
qt_status qt_cpu_add(float *out, const float *a, const float *b, size_t n);
// out (N, OC) += bias (OC), every row.
qt_status qt_cpu_bias_add(float *out, const float *bias, int N, int OC);
// db (OC) += column sums of dout (N, OC).
qt_status qt_cpu_bias_grad(float *db, const float *dout, int N, int OC);

// CUDA (kernels/cuda/elementwise.cu).
qt_status qt_cuda_add(qt_cuda_stream s, qt_dtype dt, void *out, const void *a, const void *b,
                      size_t n);
// out (N, OC) += bias (OC); db (OC) += column sums of dout (N, OC).
qt_status qt_cuda_bias_add(qt_cuda_stream s, qt_dtype dt, void *out, const void *bias, int N,
                           int OC);
// scratch: NULL (one block per 32 columns, whatever N), or device memory of
// qt_cuda_colsum_scratch_bytes() made ready once by qt_cuda_colsum_scratch_init: then the rows
// are split too, so that narrow sums fill the GPU (common.cuh's qt_colsum_finish). A scratch
// serves one stream at a time; the result does not depend on the GPU, only on whether there
// is a scratch (the summation order).
qt_status qt_cuda_bias_grad(qt_cuda_stream s, qt_dtype dt, void *db, const void *dout, int N,
                            int OC, void *scratch);
// The split column sums' scratch (bias_grad here, LayerNorm's dw/db in layernorm.h): its size
// in bytes, and the one-time preparation of a new one on stream s (its counters zeroed).
size_t qt_cuda_colsum_scratch_bytes(void);
qt_status qt_cuda_colsum_scratch_init(qt_cuda_stream s, void *scratch);
// dst (n, dst_dt) = src (n, src_dt), rounding to nearest even.
qt_status qt_cuda_cast(qt_cuda_stream s, qt_dtype dst_dt, void *dst, qt_dtype src_dt,
                       const void *src, size_t n);

// Cost model (base/cost.h; counted in kernels/cuda/elementwise.cu): the launches each launcher
// above makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_add_cost(qt_cost *c, qt_dtype dt, const void *out, const void *a, const void *b,
                      size_t n);
void qt_cuda_bias_add_cost(qt_cost *c, qt_dtype dt, const void *out, const void *bias, int N,
                           int OC);
void qt_cuda_bias_grad_cost(qt_cost *c, qt_dtype dt, const void *db, const void *dout, int N,
                            int OC, const void *scratch);
void qt_cuda_cast_cost(qt_cost *c, qt_dtype dst_dt, const void *dst, qt_dtype src_dt,
                       const void *src, size_t n);

#ifdef __cplusplus
}
#endif
#endif

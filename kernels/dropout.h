// kernels/dropout.h: inverted dropout with Philox masks (base/philox.h)
//
// Family files: kernels/cpu/dropout.c (the C reference), kernels/cuda/dropout.cu, tests/test_dropout.c,
// tests/cuda/test_cuda_dropout.c, bench/bench_dropout.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_DROPOUT_H
#define QTRAIN_KERNELS_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// Inverted dropout: out = x * keep / (1 - prob), keep = [uniform(seed, stream, i) >= prob],
// uniform from Philox (base/philox.h), so the backward regenerates the mask.
// prob == 0 copies, prob == 1 drops everything; a prob outside [0, 1] is refused. out may
// alias x.
qt_status qt_cpu_dropout_fwd(float *out, const float *x, size_t n, float prob, uint64_t seed,
                             uint64_t stream);
// dx (n) += dout * keep / (1 - prob), same mask as the forward with the same seed and stream.
// dx may alias dout only when it is the sole contribution (then the add is onto zero).
qt_status qt_cpu_dropout_bwd(float *dx, const float *dout, size_t n, float prob, uint64_t seed,
                             uint64_t stream);

// CUDA (kernels/cuda/dropout.cu): the same Philox mask, bit-identical to the CPU's.
qt_status qt_cuda_dropout_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x, size_t n,
                              float prob, uint64_t seed, uint64_t stream);
qt_status qt_cuda_dropout_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                              size_t n, float prob, uint64_t seed, uint64_t stream);

// Cost model (base/cost.h; counted in kernels/cuda/dropout.cu): the launches each launcher
// above makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_dropout_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const void *x, size_t n,
                              float prob, uint64_t seed, uint64_t stream);
void qt_cuda_dropout_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dout, size_t n,
                              float prob, uint64_t seed, uint64_t stream);

#ifdef __cplusplus
}
#endif
#endif

// kernels/rope.h: rotary position embeddings (rotate-half, Hugging Face LLaMA)
//
// Family files: kernels/cpu/rope.c (the C reference), kernels/cuda/rope.cu, tests/test_rope.c,
// tests/cuda/test_cuda_rope.c, bench/bench_rope.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_ROPE_H
#define QTRAIN_KERNELS_ROPE_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// Rotary position embedding ("rotate half", Hugging Face LLaMA), in place on the q and k
// thirds of qkv (B, T, 3C) (the v third is untouched): within each of the H heads of
// D = C / H channels (D even), channel i < D/2 pairs with i + D/2 and
//   (x1, x2) -> (x1 cos a - x2 sin a, x1 sin a + x2 cos a), a = t theta^(-2i/D),
// t the position 0..T-1. The angle and its cos/sin are computed in double, then rounded.
qt_status qt_cpu_rope_fwd(float *qkv, int B, int T, int C, int H, float theta);
// The inverse (= transposed) rotation, in place on the gradient dqkv (B, T, 3C): q and k
// thirds rotated by -a, v third untouched. Not an accumulation: dqkv holds d loss / d
// rope_fwd's output on entry and d loss / d its input on return.
qt_status qt_cpu_rope_bwd(float *dqkv, int B, int T, int C, int H, float theta);
qt_status qt_cpu_rope_fwd_f64(double *qkv, int B, int T, int C, int H, float theta);
qt_status qt_cpu_rope_bwd_f64(double *dqkv, int B, int T, int C, int H, float theta);

// CUDA (kernels/cuda/rope.cu): in place, angles in double, so it matches the CPU to fp32
// rounding; the backward applies the inverse rotation (not an accumulation).
qt_status qt_cuda_rope_fwd(qt_cuda_stream s, qt_dtype dt, void *qkv, int B, int T, int C, int H,
                           float theta);
qt_status qt_cuda_rope_bwd(qt_cuda_stream s, qt_dtype dt, void *dqkv, int B, int T, int C, int H,
                           float theta);

// Cost model (base/cost.h; counted in kernels/cuda/rope.cu): the launches each launcher above
// makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_rope_fwd_cost(qt_cost *c, qt_dtype dt, const void *qkv, int B, int T, int C, int H,
                           float theta);
void qt_cuda_rope_bwd_cost(qt_cost *c, qt_dtype dt, const void *dqkv, int B, int T, int C, int H,
                           float theta);

#ifdef __cplusplus
}
#endif
#endif

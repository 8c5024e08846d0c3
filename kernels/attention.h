// kernels/attention.h: the attention core: scores, softmax variant, context (no projections)
//
// The CPU backend runs it fused (kernels/cpu/attention.c); the CUDA backend composes it from
// the linear family's batched GEMM and softmax_clip (a fused CUDA kernel is issue 9).
// Family files: kernels/cpu/attention.c, tests/test_attention.c, bench/bench_attention.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_ATTENTION_H
#define QTRAIN_KERNELS_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// qkv (B, T, 3C): [q | k | v] per token, head h at channels [h*D, (h+1)*D) of each part.
// lens (B, T): keys attended by query (b, t): t + 1 for causal rows, the sequence length for
//              bidirectional rows (keys are always a prefix).
// p, probs (B, H, T, T): as in qt_cpu_softmax_clip_fwd, saved for the backward.
// ctx (B, T, C): probs @ v per head, heads concatenated.
qt_status qt_cpu_attention_fwd(const qt_softmax_params *prm, float *ctx, float *probs, float *p,
                               const float *qkv, const int *lens, int B, int T, int C, int H);
// dqkv (B, T, 3C) += ..., from dctx (B, T, C). scratch (B, H, T, T) is overwritten.
qt_status qt_cpu_attention_bwd(const qt_softmax_params *prm, float *dqkv, float *scratch,
                               const float *dctx, const float *qkv, const float *probs,
                               const float *p, const int *lens, int B, int T, int C, int H);
qt_status qt_cpu_attention_fwd_f64(const qt_softmax_params *prm, double *ctx, double *probs,
                                   double *p, const double *qkv, const int *lens, int B, int T,
                                   int C, int H);
qt_status qt_cpu_attention_bwd_f64(const qt_softmax_params *prm, double *dqkv, double *scratch,
                                   const double *dctx, const double *qkv, const double *probs,
                                   const double *p, const int *lens, int B, int T, int C, int H);

#ifdef __cplusplus
}
#endif
#endif

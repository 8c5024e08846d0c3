// kernels/attention.h: the attention core: scores, softmax variant, context (no projections)
//
// Two references of one function:
// - qt_cpu_attention_{fwd,bwd}: the materialized core: the (B, H, T, T) probabilities are
//   written and kept for the backward (the test oracle, and the bench's composed path);
// - qt_cpu_attention_flash_{fwd,bwd}: the tiled, memory-efficient algorithm of FLASH_CLIP.md
//   (scores, softmax variant with its sink, context and gate in one op; only Br x Bc tiles
//   exist). The model's one fused attention op on every backend (host/model/model.c's
//   attn_fused); the CUDA kernels (kernels/cuda/attention.cu, below) follow its passes on
//   mma.sync tensor cores. Where a backend declines a shape (CUDA: fp32 storage, head dims other
//   than 64 and 128) the model composes attention from linear's batched GEMM and softmax_clip.
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

#include "base/cost.h"
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

// ---- the fused (flash) attention: FLASH_CLIP.md, the D of its option B
//
// Per (b, h), with S = scale Q K^T over the keys row t attends ([0, lens[b, t]), a prefix),
// a sink logit s0 when ap->sink says so (base/params.h), P = softmax over the keys and the
// sink, the clip map (a_t, c_t) of base/softmax_clip_math.h with N_t = lens[b, t]:
//   Pc = clip(a_t P + c_t, 0, 1) on attended keys, 0 elsewhere (by index);  A = Pc V;
//   O = g * A (g per head or per channel; O = A ungated).
// Forward, per query block of Br rows, streaming over the key blocks of Bc keys it attends:
//   vanilla: one pass, online softmax (running max m and sum l; A rescaled), L = m + log l;
//   clipped, NCS: pass 1 computes m, l, hence L = m + log l (no V); pass 2 recomputes S,
//   P = exp(S - L), Z = a P + c, Pc = clip(Z), M = [0 <= Z <= 1] and accumulates
//   [A; R] += [Pc; M P] V_j in one GEMM of the two stacked tiles (R = (M P) V).
//   Saved: L (lse), A (ctx), and R for the clipped variants. (The clip is not linear in the
//   running normalizer, so one pass cannot work: FLASH_CLIP.md section 1.)
// Backward (FLASH_CLIP.md section 2, D by option B, the identity D_t = a_t dA_t . R_t; vanilla:
// D_t = dA_t . A_t, R = A):
//   B0 per row: dA = g dO; dg += dO . A (per head) or dO * A (per channel); D_t; with a learned
//      sink, dsink_h -= p0_t D_t, p0_t = exp(s0 - L_t);
//   B2 per key block j (dK_j, dV_j accumulated in the workspace, written once), per query
//      block i attending it: S again (the same GEMM as the forward's: bit-identical),
//      P = exp(S - L), Pc, M; dV_j += Pc^T dA_i; dPc = dA_i V_j^T;
//      dS = P (a M dPc - D); dK_j += scale dS^T Q_i; dQ_i += scale dS K_j.
// Why option B and not A (an extra backward pass over the key blocks): it costs 9 matmul
// units of T x T x D instead of 10 (forward 4, backward 5), one exp per score in the backward
// instead of two, and no pass the CUDA backward must add to FlashAttention-2's; its price is R,
// one (B, T, C) fp32 tensor per layer for the clipped variants only, the size of the context
// itself and nothing next to the (B, H, T, T) buffers the op removes (inference skips it).
// FlashAttention-2's shortcut D = rowsum(dO * O) is wrong under a clip (tests/test_attention.c
// shows its dQ failing).
// Work is one OpenMP task per (b, h); tiles are GEMMs of at most 2^18 multiply-adds each
// (single-threaded OpenBLAS calls, as in the core above). A task's results do not depend on the
// thread count.
//
// Shapes: qkv (B, T, 3C) as above; lens (B, T) as above (each in [1, T]);
//   gate (N, H) for QT_ATTN_GATE_HEAD, (N, C) for _CHANNEL, NULL ungated (N = B T);
//   sink (H): the logits of QT_SINK_LEARNED (NULL otherwise);
//   ctx (B, T, C): A; out (B, T, C): O = g A (gated only; NULL ungated, where O = A = ctx);
//   lse (B, H, T): L_t, the log of the row's softmax denominator (sink included);
//   R (B, T, C): (M P) V per head, for the clipped and NCS softmax (NULL for vanilla, and for a
//   forward no backward follows);
//   nzero (B, H): the attended probabilities Pc that are exactly 0 (what clipping produces;
//   vanilla: the exponentials that underflow, none in float), counted; NULL skips it;
//   ws: scratch of at least qt_cpu_attention_flash_ws_bytes(ap, B, T, C, H, threads) bytes,
//   aligned to the element type, overwritten: the op runs on as many threads (at most
//   omp_get_max_threads()) as it holds workspace for, and refuses less than one thread's.
// The forward overwrites ctx, out, lse, R, nzero; the backward adds into dqkv (B, T, 3C), dgate (as
// gate; NULL skips it) and dsink (H; learned sink only, NULL skips it), from dout (B, T, C) = dO.
size_t qt_cpu_attention_flash_ws_bytes(const qt_attn_params *ap, int B, int T, int C, int H,
                                       int threads);
qt_status qt_cpu_attention_flash_fwd(const qt_attn_params *ap, float *out, float *ctx, float *lse,
                                     float *R, int64_t *nzero, const float *qkv, const float *gate,
                                     const float *sink, const int *lens, int B, int T, int C, int H,
                                     void *ws, size_t ws_bytes);
qt_status qt_cpu_attention_flash_bwd(const qt_attn_params *ap, float *dqkv, float *dgate,
                                     float *dsink, const float *dout, const float *qkv,
                                     const float *ctx, const float *lse, const float *R,
                                     const float *gate, const float *sink, const int *lens, int B,
                                     int T, int C, int H, void *ws, size_t ws_bytes);
size_t qt_cpu_attention_flash_ws_bytes_f64(const qt_attn_params *ap, int B, int T, int C, int H,
                                           int threads);
qt_status qt_cpu_attention_flash_fwd_f64(const qt_attn_params *ap, double *out, double *ctx,
                                         double *lse, double *R, int64_t *nzero, const double *qkv,
                                         const double *gate, const double *sink, const int *lens,
                                         int B, int T, int C, int H, void *ws, size_t ws_bytes);
qt_status qt_cpu_attention_flash_bwd_f64(const qt_attn_params *ap, double *dqkv, double *dgate,
                                         double *dsink, const double *dout, const double *qkv,
                                         const double *ctx, const double *lse, const double *R,
                                         const double *gate, const double *sink, const int *lens,
                                         int B, int T, int C, int H, void *ws, size_t ws_bytes);

// CUDA (kernels/cuda/attention.cu): the forward on tensor cores (mma m16n8k16), fp16 and bf16
// storage, head dims 64 and 128 (qt_cuda_attention_flash_supported: 1 when the kernel exists for
// dt and D, else the caller composes attention). qkv, ctx, out, sink of dt; lse, R, gate fp32;
// nzero (B, H) int64 (NULL skips it). Same contract and refusals as the CPU op (no workspace).
int qt_cuda_attention_flash_supported(qt_dtype dt, int head_dim);
qt_status qt_cuda_attention_flash_fwd(qt_cuda_stream s, qt_dtype dt, const qt_attn_params *ap,
                                      void *out, void *ctx, float *lse, float *R, int64_t *nzero,
                                      const void *qkv, const float *gate, const void *sink,
                                      const int *lens, int B, int T, int C, int H);

// The backward adds into dqkv (dt), dgate (fp32) and dsink (dt, learned sink); ws (256-byte
// aligned) of at least qt_cuda_attention_flash_ws_bytes bytes is overwritten. Deterministic.
size_t qt_cuda_attention_flash_ws_bytes(qt_dtype dt, int B, int T, int C, int H);
qt_status qt_cuda_attention_flash_bwd(qt_cuda_stream s, qt_dtype dt, const qt_attn_params *ap,
                                      void *dqkv, float *dgate, void *dsink, const void *dout,
                                      const void *qkv, const void *ctx, const float *lse,
                                      const float *R, const float *gate, const void *sink,
                                      const int *lens, int B, int T, int C, int H, void *ws,
                                      size_t ws_bytes);

// Cost model (base/cost.h; counted in kernels/cuda/attention.cu): the launches the launchers
// above make, appended to *c (causal rows assumed: lens lie in device memory). has_R: the
// forward writes R.
void qt_cuda_attention_flash_fwd_cost(qt_cost *c, qt_dtype dt, const qt_attn_params *ap,
                                      int has_R, int B, int T, int C, int H);
void qt_cuda_attention_flash_bwd_cost(qt_cost *c, qt_dtype dt, const qt_attn_params *ap, int B,
                                      int T, int C, int H);

#ifdef __cplusplus
}
#endif
#endif

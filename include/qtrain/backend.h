// qtrain/backend.h: the interface a compute backend (cpu, cuda) implements.
//
// The host runtime (model, trainer, optimizer, evaluation) exists once and runs every op
// through a qt_backend. A backend is a table of function pointers plus an opaque context;
// a NULL entry means "this backend cannot do that", and qt_backend_check() names the first
// missing entry, so support is read off the table, never a second switch.
// Pointers passed to the ops are backend memory (from alloc); shapes and semantics are those
// of the matching qt_cpu_* op of its family (kernels/<family>.h), in the same argument order,
// after `ctx`; the parameter types are base/params.h's (qt_gemm_desc: the linear family's
// batched GEMM).
#ifndef QTRAIN_BACKEND_H
#define QTRAIN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qt_backend_ops {
    // ---- memory (bytes)
    qt_status (*alloc)(void *ctx, void **ptr, size_t bytes);
    void (*free)(void *ctx, void *ptr);
    qt_status (*zero)(void *ctx, void *ptr, size_t bytes);
    qt_status (*to_host)(void *ctx, void *dst_host, const void *src, size_t bytes);
    qt_status (*to_device)(void *ctx, void *dst, const void *src_host, size_t bytes);
    // n elements of the backend's dtype <-> fp32 on the host, converting on the way.
    qt_status (*to_host_f32)(void *ctx, float *dst_host, const void *src, size_t n);
    qt_status (*to_device_f32)(void *ctx, void *dst, const float *src_host, size_t n);
    qt_status (*sync)(void *ctx);
    // Releases the context (optional: NULL when there is none).
    void (*destroy)(void *ctx);

    // ---- ops. `void *` tensors hold the backend's dtype, `float *` ones are always fp32
    // (LayerNorm statistics, saved softmax, gate values, losses, optimizer state).
    qt_status (*gemm)(void *ctx, const qt_gemm_desc *d, const void *A, const void *B, void *C);
    qt_status (*linear_fwd)(void *ctx, void *out, const void *x, const void *w, const void *b,
                            int N, int IC, int OC);
    qt_status (*linear_bwd)(void *ctx, void *dx, void *dw, void *db, const void *dout,
                            const void *x, const void *w, int N, int IC, int OC);
    // A linear and the activation after it as one op (qt_cpu_linear_act_fwd / _dx; on CUDA
    // the GEMM's epilogue): forward pre = x w^T + b, out = act(pre), pre written where given
    // (GELU must give it; ReLU may pass NULL); backward to the linear's input through the
    // activation before it, dx (N, IC) = act'(saved) * (dout w), overwritten, saved = GELU's pre
    // or ReLU's output. Optional: where NULL the model composes linear_fwd, gemm and the
    // activation ops (host/model/model.c, act_fused).
    qt_status (*linear_act_fwd)(void *ctx, qt_linear_act act, void *out, void *pre,
                                const void *x, const void *w, const void *b, int N, int IC,
                                int OC);
    qt_status (*linear_act_dx)(void *ctx, qt_linear_act act, void *dx, const void *dout,
                               const void *w, const void *saved, int N, int IC, int OC);
    // The fused attention op (qt_cpu_attention_flash_fwd/bwd, FLASH_CLIP.md): scores, softmax
    // variant with its sink, context and gate in one op, with no (B, H, T, T) buffer. Optional:
    // where it is NULL, and for the cases it declines (attention dropout, PTQ's hooks on the
    // probabilities), the model composes attention from gemm, softmax_clip[_sink], dropout and
    // gate_mul (host/model/model.c, attn_fused: the one place that decides). The backend
    // provides the op's workspace. lse (B, H, T), R (B, T, C), gate (N, H or C) are fp32; sink
    // and dsink (H) the backend's dtype (parameters); nzero (B, H) counts the attended
    // probabilities that are exactly 0 (NULL skips it).
    qt_status (*attention_flash_fwd)(void *ctx, const qt_attn_params *ap, void *out, void *ctxv,
                                     float *lse, float *R, int64_t *nzero, const void *qkv,
                                     const float *gate, const void *sink, const int *lens, int B,
                                     int T, int C, int H);
    qt_status (*attention_flash_bwd)(void *ctx, const qt_attn_params *ap, void *dqkv, float *dgate,
                                     void *dsink, const void *dout, const void *qkv,
                                     const void *ctxv, const float *lse, const float *R,
                                     const float *gate, const void *sink, const int *lens, int B,
                                     int T, int C, int H);
    // Optional: 1 when the fused op runs this shape (head dim C / H) on this backend; NULL:
    // always. Where it answers 0 the model composes attention (attn_fused), with one notice.
    int (*attention_flash_supports)(void *ctx, const qt_attn_params *ap, int C, int H);
    qt_status (*softmax_clip_fwd)(void *ctx, const qt_softmax_params *prm, void *probs, float *p,
                                  const void *scores, const int *lens, int rows, int cols);
    qt_status (*softmax_clip_bwd)(void *ctx, const qt_softmax_params *prm, void *dscores,
                                  const void *dprobs, const float *p, const int *lens, int rows,
                                  int cols);
    // The sink variants of softmax_clip (qt_cpu_softmax_clip_sink_*: off-by-one softmax, a
    // learned logit per head). Optional: attn.sink needs them (the composed path); logits and
    // dlogits (H) are parameters, the backend's dtype.
    qt_status (*softmax_clip_sink_fwd)(void *ctx, const qt_softmax_params *prm, qt_sink_kind sink,
                                       void *probs, float *p, const void *scores, const int *lens,
                                       const void *logits, int rows, int cols, int H,
                                       int head_rows);
    qt_status (*softmax_clip_sink_bwd)(void *ctx, const qt_softmax_params *prm, qt_sink_kind sink,
                                       void *dscores, void *dlogits, const void *dprobs,
                                       const float *p, const int *lens, int rows, int cols, int H,
                                       int head_rows);
    qt_status (*gate_fwd)(void *ctx, const qt_gate_shape *g, float *gate, float *hidden,
                          const void *x, const void *w1, const void *b1, const void *w2,
                          const void *b2, int N, int C);
    qt_status (*gate_bwd)(void *ctx, const qt_gate_shape *g, void *dx, void *dw1, void *db1,
                          void *dw2, void *db2, const float *dgate, const float *gate,
                          const float *hidden, const void *x, const void *w1, const void *w2,
                          int N, int C);
    qt_status (*gate_mul_fwd)(void *ctx, void *out, const float *gate, const void *ctxv, int N,
                              int C, int H);
    qt_status (*gate_mul_bwd)(void *ctx, void *dctx, float *dgate, const void *dout,
                              const float *gate, const void *ctxv, int N, int C, int H);
    qt_status (*layernorm_fwd)(void *ctx, void *out, float *mean, float *rstd, const void *x,
                               const void *w, const void *b, int N, int C);
    qt_status (*layernorm_bwd)(void *ctx, void *dx, void *dw, void *db, const void *dout,
                               const void *x, const float *mean, const float *rstd,
                               const void *w, int N, int C);
    // A block's residual connection fused with the LayerNorm after it
    // (qt_cpu_layernorm_residual_{fwd,bwd}: resid = x + dropout(branch), out = LayerNorm(resid);
    // backward dx += LayerNorm's dx, dbranch = dropout's backward of dx). Optional: where it is
    // NULL the model composes dropout, add and layernorm (host/model/model.c, residual_fused).
    qt_status (*layernorm_residual_fwd)(void *ctx, void *resid, void *out, float *mean,
                                        float *rstd, const void *x, const void *branch,
                                        const void *w, const void *b, int N, int C, float prob,
                                        uint64_t seed, uint64_t stream);
    qt_status (*layernorm_residual_bwd)(void *ctx, void *dx, void *dbranch, void *dw, void *db,
                                        const void *dout, const void *x, const float *mean,
                                        const float *rstd, const void *w, int N, int C,
                                        float prob, uint64_t seed, uint64_t stream);
    qt_status (*gelu_fwd)(void *ctx, void *out, const void *x, size_t n);
    qt_status (*gelu_bwd)(void *ctx, void *dx, const void *dout, const void *x, size_t n);
    qt_status (*relu_fwd)(void *ctx, void *out, const void *x, size_t n);
    qt_status (*relu_bwd)(void *ctx, void *dx, const void *dout, const void *x, size_t n);
    qt_status (*embedding_fwd)(void *ctx, void *out, const int *tokens, const void *wte,
                               const void *wpe, int B, int T, int C);
    qt_status (*embedding_bwd)(void *ctx, void *dwte, void *dwpe, const void *dout,
                               const int *tokens, int B, int T, int C);
    // The backward from the batch's token buckets (qt_embedding_buckets, built on the host;
    // order, start, token in backend memory): no scan of the batch per token. Optional: where
    // it is NULL the model runs embedding_bwd.
    qt_status (*embedding_bwd_sorted)(void *ctx, void *dwte, void *dwpe, const void *dout,
                                      const int *order, const int *start, const int *token,
                                      int n_buckets, int B, int T, int C);
    qt_status (*add)(void *ctx, void *out, const void *a, const void *b, size_t n);
    qt_status (*dropout_fwd)(void *ctx, void *out, const void *x, size_t n, float prob,
                             uint64_t seed, uint64_t stream);
    qt_status (*dropout_bwd)(void *ctx, void *dx, const void *dout, size_t n, float prob,
                             uint64_t seed, uint64_t stream);
    // The classifier (kernels/crossentropy.h): losses (N) and stats (N, 2) = {max, 1 / sum exp}
    // per row from the logits, which the forward leaves; the backward recomputes the
    // probabilities from them (dlogits may alias logits: in place).
    qt_status (*crossentropy_fwd)(void *ctx, float *losses, float *stats, const void *logits,
                                  const int *targets, int N, int V);
    qt_status (*crossentropy_bwd)(void *ctx, void *dlogits, const float *dlosses,
                                  const void *logits, const float *stats, const int *targets,
                                  int N, int V);
    // Both in one op for a training step (qt_cpu_crossentropy_fwd_bwd): the forward, then the
    // backward in place over the logits for dlosses given up front. Optional: where NULL the
    // model runs the two (host/model/model.c, model_forward).
    qt_status (*crossentropy_fwd_bwd)(void *ctx, float *losses, float *stats, void *logits,
                                      const float *dlosses, const int *targets, int N, int V);
    // AdamW on n elements. master == NULL: `param` is itself fp32 and is updated in place.
    // Otherwise master (n, fp32) is updated and rounded into `param` (the backend's dtype).
    qt_status (*adamw_step)(void *ctx, void *param, float *master, const void *grad, float *m,
                            float *v, size_t n, const qt_adamw_params *prm);
    // *out = sum of squares of x (n, the backend's dtype), accumulated in double, on the host.
    // Not finite when any element is inf or nan: the loss scaler's overflow check.
    qt_status (*sumsq)(void *ctx, double *out, const void *x, size_t n);
    // One AdamW step over every span (one per parameter tensor) with the gradients' global
    // norm taken on the device: unscaling, clipping and the skip of a non-finite norm as
    // qt_adamw_multi_params (base/params.h) says, which is what qt_optimizer_update decides on
    // the host. grads (n_grads, the backend's dtype) is the whole arena the norm covers;
    // params and master (fp32; NULL when params are fp32) at the spans' param offsets, grads,
    // m, v (fp32) at their grad offsets. *sumsq_host = the scaled gradients' sum of squares,
    // the step's one wait for the device. Optional: where it is NULL, the optimizer calls sumsq
    // and then adamw_step per tensor.
    qt_status (*adamw_multi)(void *ctx, void *params, float *master, const void *grads, float *m,
                             float *v, size_t n_grads, const qt_adamw_span *spans, int n_spans,
                             const qt_adamw_multi_params *prm, double *sumsq_host);

    // ---- LLaMA family (optional: required only by configs that use them; model init
    // names a missing one). Shapes and semantics of the qt_cpu_* twins in kernels/<family>.h.
    // RMSNorm: out (N, C) = x * rstd * w, rstd (N, fp32) = 1 / sqrt(mean(x^2) + eps).
    qt_status (*rmsnorm_fwd)(void *ctx, void *out, float *rstd, const void *x, const void *w,
                             int N, int C);
    // dx (N, C) +=, dw (C) +=.
    qt_status (*rmsnorm_bwd)(void *ctx, void *dx, void *dw, const void *dout, const void *x,
                             const float *rstd, const void *w, int N, int C);
    // Rotary embedding, in place on the q and k thirds of qkv (B, T, 3C) (v untouched), H
    // heads of D = C/H, position = t; bwd applies the inverse rotation to dqkv in place.
    qt_status (*rope_fwd)(void *ctx, void *qkv, int B, int T, int C, int H, float theta);
    qt_status (*rope_bwd)(void *ctx, void *dqkv, int B, int T, int C, int H, float theta);
    // SwiGLU: x (N, 2F) rows are [a | b]; out (N, F) = silu(a) * b. dx (N, 2F) +=.
    qt_status (*swiglu_fwd)(void *ctx, void *out, const void *x, int N, int F);
    qt_status (*swiglu_bwd)(void *ctx, void *dx, const void *dout, const void *x, int N, int F);

    // ---- quantized training (optional: required only when quant.mode != none)
    // out = dequant(quant(x)) of a (rows, cols) tensor of dtype `dt` (the backend's dtype or
    // fp32 for optimizer state); p's range is ABSMAX or ABSMEAN (kernels/quant.h). May alias.
    qt_status (*quant_fake)(void *ctx, qt_dtype dt, const qt_quant_params *p, void *out,
                            const void *x, size_t rows, size_t cols);
    // W8A8 linear through the INT8 GEMM: out (N, OC) = Qa(x) Qw(w)^T + b, x and w quantized to
    // int8 codes with aq (per tensor or per row = token) and wq (per tensor or per row =
    // channel), both symmetric 8-bit nearest; int32 accumulation, dequantized in the epilogue.
    // Equals linear_fwd on quant_fake'd inputs up to fp rounding. Optional (NULL: the model
    // uses the fake-quant path).
    qt_status (*linear_s8_fwd)(void *ctx, void *out, const void *x, const void *w, const void *b,
                               int N, int IC, int OC, const qt_quant_params *aq,
                               const qt_quant_params *wq);
    // SwitchBack's dX on the INT8 GEMM: dx (N, IC) += Qg(g) (N, OC) Qw(w) (OC, IC), g per
    // token (per row) and w per tensor, both 8-bit symmetric absmax nearest (a per-channel w
    // scale would sit inside the sum over OC). Equals linear_bwd's dx on quant_fake'd inputs
    // up to fp rounding. Optional (NULL: the fake-quant path).
    qt_status (*linear_s8_dx)(void *ctx, void *dx, const void *g, const void *w, int N, int IC,
                              int OC, const qt_quant_params *gq, const qt_quant_params *wq);
    // DQT (kernels/dqt.h): weights stored only as int8 codes with a per-tensor scale.
    // out (n, the backend's dtype) = codes * scale.
    qt_status (*dqt_dequant)(void *ctx, void *out, const int8_t *codes, float scale, size_t n);
    // One AdamW step applied directly to the codes (qt_cpu_dqt_step); stats may be NULL.
    qt_status (*dqt_step)(void *ctx, const qt_dqt_params *dp, int8_t *codes, const void *grad,
                          float *m, float *v, size_t n, qt_dqt_stats *stats);
} qt_backend_ops;

typedef struct qt_backend {
    const qt_backend_ops *ops;
    void *ctx;        // owned by the backend; freed by qt_backend_free
    const char *name; // "cpu", "cuda"
    qt_dtype dtype;   // storage of parameters, gradients and activations
    int threads;      // CPU threads in use (informational)
} qt_backend;

// The CPU backend: the reference ops of kernels/<family>.h with OpenMP and OpenBLAS on
// `threads` threads (0: every core). Its context (a workspace) is freed by qt_backend_free.
qt_status qt_backend_cpu_init(qt_backend *be, int threads);
// The CPU backend's workspace, where its quantized ops keep their temporary buffers (the INT8
// linear's codes, scales and packed panels; fake quantization's per-slice grids) instead of
// allocating per call. It grows to the largest request and is kept until qt_backend_free, so
// once a training step has run it no longer grows. *bytes: its size (the high-water mark);
// *grows: how many times it grew (either may be NULL). QT_ERR_ARG for another backend.
qt_status qt_backend_cpu_workspace(const qt_backend *be, size_t *bytes, size_t *grows);

// The CUDA backend (host/backends/backend_cuda.c; built where the CUDA toolkit is): device
// `device` with parameters, gradients and activations in `dt`. In the emulated build
// (tests/cuemu) this runs on the CPU. QT_ERR_CUDA naming the failing call when no usable
// device exists.
qt_status qt_backend_cuda_init(qt_backend *be, int device, qt_dtype dt);
// Number of usable CUDA devices (0 when there is no driver or no GPU); never fails.
int qt_cuda_device_count(void);
// The CUDA backend's stream (a cudaStream_t): every op of `be` is issued on it, so other CUDA
// work (the NCCL communicator's, qtrain/dist.h) can be ordered after it with events. NULL for
// another backend.
void *qt_backend_cuda_stream(const qt_backend *be);
void qt_backend_free(qt_backend *be);

// QT_OK if every op the runtime calls is present; else QT_ERR_UNSUPPORTED naming the first
// missing entry.
qt_status qt_backend_check(const qt_backend *be);

#ifdef __cplusplus
}
#endif
#endif

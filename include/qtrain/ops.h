// qtrain/ops.h: the CPU reference ops on plain arrays, forward and backward.
//
// These are the oracle for every CUDA kernel and the ops the CPU backend trains with.
// Conventions, for every function below:
//   - arrays are dense, row-major, and the shapes are given in the comments (elements);
//   - a forward writes (overwrites) its outputs; a backward ADDS (+=) into every gradient it
//     writes, so the caller zeroes gradients once per step and residual branches sum for free;
//   - outputs never alias inputs unless the comment says so;
//   - each op exists in float (the trainer) and as an `_f64` double twin with the same code
//     (gradient checks against finite differences need double); float ops accumulate
//     reductions in float unless stated.
// Letters: N rows (tokens, B*T), C channels, H heads, D = C / H head dim, V vocabulary,
// IC/OC linear input/output channels.
#ifndef QTRAIN_OPS_H
#define QTRAIN_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------
// Attention softmax variants (PAPERS.md sections 1-2)

typedef enum {
    QT_SOFTMAX_VANILLA = 0, // softmax
    QT_SOFTMAX_CLIPPED = 1, // clip((zeta - gamma) softmax + gamma, 0, 1)
    QT_SOFTMAX_NCS = 2,     // length-normalized clipped softmax
} qt_softmax_kind;

typedef struct {
    qt_softmax_kind kind;
    float scale;       // multiplies the raw scores first (1/sqrt(D) in attention)
    float gamma, zeta; // clipped: gamma <= 0, zeta >= 1
    float eta, beta;   // NCS: eta >= 1 typical (code default 1.03), beta (default 1.0)
} qt_softmax_params;

// Row r attends columns [0, lens[r]) (1 <= lens[r] <= cols); the other columns are masked.
// p     (rows, cols): plain softmax of scale*scores over the attended columns, 0 elsewhere;
//                     saved for the backward.
// probs (rows, cols): clip(a p + c, 0, 1) on the attended columns, exactly 0 elsewhere.
// scores (rows, cols): raw scores. lens (rows).
void qt_cpu_softmax_clip_fwd(const qt_softmax_params *prm, float *probs, float *p,
                             const float *scores, const int *lens, int rows, int cols);
// dscores (rows, cols) += d loss / d scores (including `scale`), from dprobs (rows, cols)
// and the p the forward saved. Masked columns get nothing.
void qt_cpu_softmax_clip_bwd(const qt_softmax_params *prm, float *dscores, const float *dprobs,
                             const float *p, const int *lens, int rows, int cols);
void qt_cpu_softmax_clip_fwd_f64(const qt_softmax_params *prm, double *probs, double *p,
                                 const double *scores, const int *lens, int rows, int cols);
void qt_cpu_softmax_clip_bwd_f64(const qt_softmax_params *prm, double *dscores,
                                 const double *dprobs, const double *p, const int *lens, int rows,
                                 int cols);

// ---------------------------------------------------------------------------------------
// Attention core: scores, softmax variant, context (no projections)

// qkv (B, T, 3C): [q | k | v] per token, head h at channels [h*D, (h+1)*D) of each part.
// lens (B, T): keys attended by query (b, t): t + 1 for causal rows, the sequence length for
//              bidirectional rows (keys are always a prefix).
// p, probs (B, H, T, T): as in qt_cpu_softmax_clip_fwd, saved for the backward.
// ctx (B, T, C): probs @ v per head, heads concatenated.
void qt_cpu_attention_fwd(const qt_softmax_params *prm, float *ctx, float *probs, float *p,
                          const float *qkv, const int *lens, int B, int T, int C, int H);
// dqkv (B, T, 3C) += ..., from dctx (B, T, C). scratch (B, H, T, T) is overwritten.
void qt_cpu_attention_bwd(const qt_softmax_params *prm, float *dqkv, float *scratch,
                          const float *dctx, const float *qkv, const float *probs,
                          const float *p, const int *lens, int B, int T, int C, int H);
void qt_cpu_attention_fwd_f64(const qt_softmax_params *prm, double *ctx, double *probs,
                              double *p, const double *qkv, const int *lens, int B, int T, int C,
                              int H);
void qt_cpu_attention_bwd_f64(const qt_softmax_params *prm, double *dqkv, double *scratch,
                              const double *dctx, const double *qkv, const double *probs,
                              const double *p, const int *lens, int B, int T, int C, int H);

// ---------------------------------------------------------------------------------------
// Attention gate (PAPERS.md section 3): out_h = sigmoid(G_h(x_h)) * ctx_h

typedef enum {
    QT_GATE_NONE = 0,
    QT_GATE_LINEAR = 1,    // per head: Linear(D -> 1) on x_h
    QT_GATE_MLP = 2,       // per head: Linear(D -> n_hid) -> ReLU -> Linear(n_hid -> 1) on x_h
    QT_GATE_ALL_HEADS = 3, // Linear(C -> H) on the whole x
} qt_gate_kind;

typedef struct {
    qt_gate_kind kind;
    int n_heads; // H
    int n_hid;   // MLP hidden width (QT_GATE_MLP only)
} qt_gate_shape;

// Parameter tensors by kind (w2, b2 only for MLP; pass NULL otherwise):
//   linear:    w1 (H, D),        b1 (H)
//   mlp:       w1 (H, n_hid, D), b1 (H, n_hid), w2 (H, n_hid), b2 (H)
//   all heads: w1 (H, C),        b1 (H)
// The bias that sets the initial gate value (logit(pi_init)) is b1, or b2 for the MLP.
// gate (N, H): sigmoid of the gate logits. hidden (N, H, n_hid): the MLP's pre-ReLU hidden
// layer saved for the backward (NULL for the other kinds). x (N, C).
void qt_cpu_gate_fwd(const qt_gate_shape *g, float *gate, float *hidden, const float *x,
                     const float *w1, const float *b1, const float *w2, const float *b2, int N,
                     int C);
// From dgate (N, H): dx (N, C) +=, dw1, db1, dw2, db2 += (NULL where the kind has none).
void qt_cpu_gate_bwd(const qt_gate_shape *g, float *dx, float *dw1, float *db1, float *dw2,
                     float *db2, const float *dgate, const float *gate, const float *hidden,
                     const float *x, const float *w1, const float *w2, int N, int C);
// out (N, C) = gate[n, h] * ctx[n, c] for c in head h. out may alias ctx.
void qt_cpu_gate_mul_fwd(float *out, const float *gate, const float *ctx, int N, int C, int H);
// dctx (N, C) += gate * dout; dgate (N, H) += sum over the head's channels of dout * ctx.
void qt_cpu_gate_mul_bwd(float *dctx, float *dgate, const float *dout, const float *gate,
                         const float *ctx, int N, int C, int H);
void qt_cpu_gate_fwd_f64(const qt_gate_shape *g, double *gate, double *hidden, const double *x,
                         const double *w1, const double *b1, const double *w2, const double *b2,
                         int N, int C);
void qt_cpu_gate_bwd_f64(const qt_gate_shape *g, double *dx, double *dw1, double *db1,
                         double *dw2, double *db2, const double *dgate, const double *gate,
                         const double *hidden, const double *x, const double *w1,
                         const double *w2, int N, int C);
void qt_cpu_gate_mul_fwd_f64(double *out, const double *gate, const double *ctx, int N, int C,
                             int H);
void qt_cpu_gate_mul_bwd_f64(double *dctx, double *dgate, const double *dout, const double *gate,
                             const double *ctx, int N, int C, int H);

// ---------------------------------------------------------------------------------------
// One whole attention layer, as the model runs it (pre-LN: x is the LayerNorm output):
//   qkv = x Wqkv^T + bqkv; ctx = attention(qkv); ctx = gate(x) * ctx (if gated);
//   out = ctx Wo^T + bo

typedef struct {
    int B, T, C, H;
    qt_softmax_params softmax;
    qt_gate_shape gate; // kind QT_GATE_NONE for an ungated layer
} qt_attention_layer_shape;

typedef struct {
    const float *qkv_w;  // (3C, C)
    const float *qkv_b;  // (3C)
    const float *proj_w; // (C, C)
    const float *proj_b; // (C)
    const float *gate_w1, *gate_b1, *gate_w2, *gate_b2; // see qt_cpu_gate_fwd
} qt_attention_layer_params;

typedef struct {
    float *qkv_w, *qkv_b, *proj_w, *proj_b;
    float *gate_w1, *gate_b1, *gate_w2, *gate_b2;
} qt_attention_layer_grads;

// Activations the forward saves for the backward; the caller allocates them with the
// sizes from qt_attention_layer_act_sizes (elements, in the order of the fields).
typedef struct {
    float *qkv;    // (B, T, 3C)
    float *p;      // (B, H, T, T)
    float *probs;  // (B, H, T, T)
    float *ctx;    // (B, T, C) pre-gate context
    float *gate;   // (B, T, H)         gated only
    float *hidden; // (B, T, H, n_hid)  MLP gate only
    float *gated;  // (B, T, C) gate * ctx, the out projection's input (gated only)
} qt_attention_layer_acts;
void qt_attention_layer_act_sizes(const qt_attention_layer_shape *s, size_t sizes[7]);

// out (B, T, C) from x (B, T, C); lens (B, T) as in qt_cpu_attention_fwd.
void qt_cpu_attention_layer_fwd(const qt_attention_layer_shape *s,
                                const qt_attention_layer_params *w, qt_attention_layer_acts *a,
                                float *out, const float *x, const int *lens);
// dx (B, T, C) += ..., grads += ..., from dout (B, T, C). scratch: (B, H, T, T) + 4 (B, T, C)
// elements, overwritten.
void qt_cpu_attention_layer_bwd(const qt_attention_layer_shape *s,
                                const qt_attention_layer_params *w,
                                const qt_attention_layer_acts *a, qt_attention_layer_grads *g,
                                float *dx, float *scratch, const float *dout, const float *x,
                                const int *lens);

// ---------------------------------------------------------------------------------------
// Linear, LayerNorm, activations, embeddings, residual

// out (N, OC) = x (N, IC) w^T + b; w (OC, IC), b (OC) or NULL.
void qt_cpu_linear_fwd(float *out, const float *x, const float *w, const float *b, int N, int IC,
                       int OC);
// dx (N, IC) += dout w; dw (OC, IC) += dout^T x; db (OC) += column sums of dout.
// dx and db may be NULL (not needed / no bias).
void qt_cpu_linear_bwd(float *dx, float *dw, float *db, const float *dout, const float *x,
                       const float *w, int N, int IC, int OC);
void qt_cpu_linear_fwd_f64(double *out, const double *x, const double *w, const double *b, int N,
                           int IC, int OC);
void qt_cpu_linear_bwd_f64(double *dx, double *dw, double *db, const double *dout,
                           const double *x, const double *w, int N, int IC, int OC);

#define QT_LAYERNORM_EPS 1e-5f
// out (N, C) = (x - mean) * rstd * w + b, biased variance, eps QT_LAYERNORM_EPS.
// mean, rstd (N): saved for the backward.
void qt_cpu_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int N, int C);
// dx (N, C) +=, dw (C) +=, db (C) += from dout (N, C).
void qt_cpu_layernorm_bwd(float *dx, float *dw, float *db, const float *dout, const float *x,
                          const float *mean, const float *rstd, const float *w, int N, int C);
void qt_cpu_layernorm_fwd_f64(double *out, double *mean, double *rstd, const double *x,
                              const double *w, const double *b, int N, int C);
void qt_cpu_layernorm_bwd_f64(double *dx, double *dw, double *db, const double *dout,
                              const double *x, const double *mean, const double *rstd,
                              const double *w, int N, int C);

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). out may alias x.
void qt_cpu_gelu_fwd(float *out, const float *x, size_t n);
// dx (n) += dout * gelu'(x). dx may alias dout: then dx = dout * gelu'(x) (overwritten, the
// in-place form of the same gradient).
void qt_cpu_gelu_bwd(float *dx, const float *dout, const float *x, size_t n);
void qt_cpu_relu_fwd(float *out, const float *x, size_t n);
// dx += dout where x > 0. dx may alias dout: then dx = dout where x > 0, else 0.
void qt_cpu_relu_bwd(float *dx, const float *dout, const float *x, size_t n);
void qt_cpu_gelu_fwd_f64(double *out, const double *x, size_t n);
void qt_cpu_gelu_bwd_f64(double *dx, const double *dout, const double *x, size_t n);
void qt_cpu_relu_fwd_f64(double *out, const double *x, size_t n);
void qt_cpu_relu_bwd_f64(double *dx, const double *dout, const double *x, size_t n);

// out (B, T, C) = wte[tokens[b, t]] + wpe[t]; tokens (B, T) in [0, V), wte (V, C), wpe (maxT, C).
// wpe == NULL: no position embedding, out = wte[tokens[b, t]] (LLaMA: positions come from RoPE).
void qt_cpu_embedding_fwd(float *out, const int *tokens, const float *wte, const float *wpe,
                          int B, int T, int C);
// dwte (V, C) +=, dwpe (maxT, C) += from dout (B, T, C). dwpe may be NULL.
void qt_cpu_embedding_bwd(float *dwte, float *dwpe, const float *dout, const int *tokens, int B,
                          int T, int C);

// out (n) = a + b. out may alias a or b.
void qt_cpu_add(float *out, const float *a, const float *b, size_t n);

// Inverted dropout: out = x * keep / (1 - prob), keep = [uniform(seed, stream, i) >= prob],
// uniform from Philox (kernels/common/philox.h), so the backward regenerates the mask.
// prob == 0 copies. out may alias x.
void qt_cpu_dropout_fwd(float *out, const float *x, size_t n, float prob, uint64_t seed,
                        uint64_t stream);
// dx (n) += dout * keep / (1 - prob), same mask as the forward with the same seed and stream.
// dx may alias dout only when it is the sole contribution (then the add is onto zero).
void qt_cpu_dropout_bwd(float *dx, const float *dout, size_t n, float prob, uint64_t seed,
                        uint64_t stream);

// ---------------------------------------------------------------------------------------
// Loss and optimizer

// losses (N) = -log softmax(logits[n])[targets[n]]; probs (N, V) = softmax(logits), which may
// alias logits. Rows with targets[n] < 0 are ignored: loss 0 (probs still written).
void qt_cpu_crossentropy_fwd(float *losses, float *probs, const float *logits,
                             const int *targets, int N, int V);
// dlogits (N, V) += dlosses[n] * (probs - onehot(targets[n])); ignored rows get nothing.
// dlogits may alias probs: then it is overwritten with the gradient (ignored rows become 0).
void qt_cpu_crossentropy_bwd(float *dlogits, const float *dlosses, const float *probs,
                             const int *targets, int N, int V);
void qt_cpu_crossentropy_fwd_f64(double *losses, double *probs, const double *logits,
                                 const int *targets, int N, int V);
void qt_cpu_crossentropy_bwd_f64(double *dlogits, const double *dlosses, const double *probs,
                                 const int *targets, int N, int V);

typedef struct {
    float lr;
    float beta1, beta2, eps;
    float weight_decay; // decoupled: param -= lr * weight_decay * param
    int step;           // 1-based, for the bias corrections
    float grad_scale;   // multiplies every gradient first (clipping, loss-scale undo)
} qt_adamw_params;

// One AdamW step on n elements: m, v (n) fp32 moments updated in place, param (n) updated.
void qt_cpu_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                       const qt_adamw_params *prm);

// Sum of squares of x (n), accumulated in double: the global gradient norm's building block.
double qt_cpu_sumsq(const float *x, size_t n);

// ---------------------------------------------------------------------------------------
// LLaMA family (llama part: kernels/cpu/llama_ops.c): RMSNorm, rotary embeddings, SwiGLU

#define QT_RMSNORM_EPS 1e-5f
// out (N, C) = x * rstd * w, rstd (N) = 1 / sqrt(mean over the row of x^2 + QT_RMSNORM_EPS),
// saved for the backward. No mean subtraction, no bias.
void qt_cpu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int N, int C);
// dx (N, C) +=, dw (C) += from dout (N, C); either may be NULL.
void qt_cpu_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *x,
                        const float *rstd, const float *w, int N, int C);
// Rotary position embedding ("rotate half", Hugging Face LLaMA), in place on the q and k
// thirds of qkv (B, T, 3C) (the v third is untouched): within each of the H heads of
// D = C / H channels (D even), channel i < D/2 pairs with i + D/2 and
//   (x1, x2) -> (x1 cos a - x2 sin a, x1 sin a + x2 cos a), a = t theta^(-2i/D),
// t the position 0..T-1. The angle and its cos/sin are computed in double, then rounded.
void qt_cpu_rope_fwd(float *qkv, int B, int T, int C, int H, float theta);
// The inverse (= transposed) rotation, in place on the gradient dqkv (B, T, 3C): q and k
// thirds rotated by -a, v third untouched. Not an accumulation: dqkv holds d loss / d
// rope_fwd's output on entry and d loss / d its input on return.
void qt_cpu_rope_bwd(float *dqkv, int B, int T, int C, int H, float theta);
// SwiGLU: x (N, 2F) rows are [a | b]; out (N, F) = silu(a) * b, silu(a) = a sigmoid(a).
void qt_cpu_swiglu_fwd(float *out, const float *x, int N, int F);
// dx (N, 2F) += [dout b silu'(a) | dout silu(a)] from dout (N, F). dx must not alias x or dout.
void qt_cpu_swiglu_bwd(float *dx, const float *dout, const float *x, int N, int F);
void qt_cpu_rmsnorm_fwd_f64(double *out, double *rstd, const double *x, const double *w, int N,
                            int C);
void qt_cpu_rmsnorm_bwd_f64(double *dx, double *dw, const double *dout, const double *x,
                            const double *rstd, const double *w, int N, int C);
void qt_cpu_rope_fwd_f64(double *qkv, int B, int T, int C, int H, float theta);
void qt_cpu_rope_bwd_f64(double *dqkv, int B, int T, int C, int H, float theta);
void qt_cpu_swiglu_fwd_f64(double *out, const double *x, int N, int F);
void qt_cpu_swiglu_bwd_f64(double *dx, const double *dout, const double *x, int N, int F);
// ---- end of the llama part

#ifdef __cplusplus
}
#endif
#endif

// qtrain/model.h: a decoder-only causal LM (OPT/GPT style, pre-LN) or a masked-LM encoder
// (BERT, model.arch = bert), its parameters, activations, forward and backward, on any qt_backend.
//
// Per layer:  h = x + drop(Attn(LN1(x)));  y = h + drop(FC2(act(FC1(LN2(h)))))
// with Attn the (optionally gated) attention of kernels/attention.h and the softmax variant of the
// config. Then LN_f and the LM head (tied to the token embedding or its own matrix).
// Attention runs as one fused op (the backend's attention_flash_*: no (B, H, T, T) buffer)
// wherever the backend has it, except for attention dropout in training and PTQ's hooks, which
// compose it from gemm, softmax_clip and dropout; model.c's attn_fused decides.
//
// The encoder (model.arch = bert; its data: qtrain/mlm.h): embeddings wte[tok] + wpe[t] +
// wtt[type]; bidirectional attention where query (b, t) attends the keys [0, len_b) of its
// sequence (padding keys get exactly zero probability and gradient, and NCS's N is len_b); blocks
//   pre-LN  (model.norm_position = pre):  as above, then LN_f;
//   post-LN (post, BERT): x = LN_e(embeddings); h = LN1(x + drop(Attn(x)));
//                         y = LN2(h + drop(FC2(act(FC1(h))))), no final norm;
// then the MLM head: logits = LN_m(gelu(dense(y))) wte^T + b_m (decoder tied to the token
// embedding, its own bias), and the cross-entropy on the chosen tokens only (targets >= 0).
// Each batch's lengths and token types are set with qt_model_set_encoder_batch.
// Parameters are named tensors in one arena (the table drives init, weight decay groups and
// checkpoints); gradients mirror them; activations live in a second arena sized for the
// (B, T) given at init, and any T' <= T can be run.
#ifndef QTRAIN_MODEL_H
#define QTRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "qtrain/backend.h"
#include "qtrain/config.h"

typedef enum {
    QT_TENSOR_MATRIX = 0, // linear and embedding weights: weight decay on
    QT_TENSOR_BIAS,       // biases: no weight decay
    QT_TENSOR_NORM,       // norm gains: decay only with train.decay_norm_weights
} qt_tensor_kind;

typedef struct {
    char name[64];       // Hugging Face OPT-style name ("decoder.layers.0.fc1.weight")
    size_t offset;       // elements from the start of the gradient arena (and the optimizer's
                         // moments): every tensor has a float gradient
    size_t param_offset; // elements from the start of the float parameter arena (== offset
                         // unless DQT tensors precede it); unused when `quantized`
    size_t code_offset;  // bytes from the start of the int8 code arena (`quantized` only)
    int quantized;       // 1: stored only as int8 codes * code_scales[i] (quant.mode = dqt)
    size_t numel;
    int ndim;
    int shape[3];
    qt_tensor_kind kind;
} qt_tensor_info;

// Parameter views: the backend's dtype (void *), addressed with QT_AT.
typedef struct {
    void *ln1_w, *ln1_b;       // (C), (C)
    void *qkv_w, *qkv_b;       // (3C, C), (3C)
    void *proj_w, *proj_b;     // (C, C), (C)
    void *gate_w1, *gate_b1;   // see qt_cpu_gate_fwd; NULL when ungated
    void *gate_w2, *gate_b2;   // MLP gate only
    void *sink;                // (H) learned sink logits (attn.sink = learned), else NULL
    void *ln2_w, *ln2_b;       // (C), (C)
    void *fc_w, *fc_b;         // (F, C), (F)
    void *fc2_w, *fc2_b;       // (C, F), (C)
} qt_layer_params;            // biases NULL when model.bias = 0

typedef struct {
    void *wte;            // (V, C)
    void *wpe;            // (maxT, C)
    void *wtt;            // (QT_MLM_TOKEN_TYPES, C) token-type embeddings (encoder only)
    void *emb_ln_w, *emb_ln_b; // (C) the embeddings' LayerNorm (post-LN encoder only)
    void *lnf_w, *lnf_b;  // (C) final norm (absent in the post-LN encoder)
    void *mlm_dense_w, *mlm_dense_b; // (C, C), (C) MLM head transform (encoder only)
    void *mlm_ln_w, *mlm_ln_b;       // (C) its LayerNorm
    void *mlm_bias;       // (V) the MLM decoder's bias (its weight is wte)
    void *head;           // (V, C): wte when tied
    qt_layer_params *layers; // (L)
} qt_model_params;

// A norm's output and the fp32 statistics its backward reads (RMSNorm leaves mean unused).
typedef struct {
    void *y;            // (N, C), the backend's dtype
    float *mean, *rstd; // (N), (N)
} qt_norm_acts;

// Activations saved for the backward. `void *`: the backend's dtype; `float *`: fp32.
typedef struct {
    qt_norm_acts ln1;           // attention-side norm of the layer's input
    void *qkv;                  // (N, 3C)
    // The composed path's (B, H, T, T) buffers (NULL until it first runs, when the model can
    // run fused: qt_model.tt_arena):
    float *p;                   // (B, H, T, T) plain softmax (fp32: the clip mask is
                                // recomputed from it in the backward and must not drift)
    void *probs;                // (B, H, T, T) clipped probabilities
    void *probs_drop;           // (B, H, T, T) after attention dropout (NULL if none)
    // The fused op's saved state (NULL when the backend has no fused op):
    float *lse;                 // (B, H, T) log of each row's softmax denominator
    float *R;                   // (N, C) (M P) V, FLASH_CLIP.md option B (clipped, NCS only)
    int64_t *nzero;             // (B, H) attended probabilities that are exactly 0
    void *ctx;                  // (N, C) pre-gate context
    float *gate, *gate_hidden;  // (N, G), (N, H, n_hid): G = gate_cols
    void *gated;                // (N, C) gate * ctx
    void *attn_out;             // (N, C) out_proj output
    void *resid1;               // (N, C) x + drop(attn_out)
    qt_norm_acts ln2;           // FFN-side norm of resid1
    void *fc, *fc_act;          // (N, F1), (N, F): pre- and post-activation (F1 = 2F SwiGLU)
    void *ffn_out;              // (N, C) fc2 output
    void *resid2;               // (N, C) the layer's output
} qt_layer_acts;

// Activation sites of the forward, in order (PAPERS.md section 5's quantized tensors).
typedef enum {
    QT_SITE_EMBED = 0, // (N, C) token (+ position) embeddings, after dropout; layer -1
    QT_SITE_LN1,       // (N, C) output of the attention-side norm
    QT_SITE_QKV,       // (N, 3C) q/k/v projections' outputs (after RoPE when used)
    QT_SITE_SCORES,    // (B*H*T, T) Q K^T, before scaling and softmax
    QT_SITE_PROBS,     // (B*H*T, T) softmax (variant) output
    QT_SITE_CTX,       // (N, C) P V, before the gate
    QT_SITE_ATTN_OUT,  // (N, C) out_proj output
    QT_SITE_RESID1,    // (N, C) x + attention branch
    QT_SITE_LN2,       // (N, C) output of the FFN-side norm
    QT_SITE_FC_ACT,    // (N, F) fc1 output after the activation (SwiGLU: its product)
    QT_SITE_FFN_OUT,   // (N, C) fc2 output
    QT_SITE_RESID2,    // (N, C) resid1 + FFN branch: the layer's output
    QT_SITE_LNF,       // (N, C) final norm output (the LM head's input); layer -1
    QT_SITE_COUNT
} qt_site;

// The linear layers of a block.
typedef enum { QT_LINEAR_QKV = 0, QT_LINEAR_PROJ, QT_LINEAR_FC1, QT_LINEAR_FC2, QT_LINEAR_COUNT } qt_linear_id;

struct qt_model;
// Observers of the forward pass (post-training quantization: calibration, fake quantization,
// the INT8 path). With hooks set the model runs the composed attention path so that every
// site exists. Both callbacks may be NULL.
typedef struct {
    // Called on each site's tensor (backend memory, the backend's dtype, rows x cols) right
    // after it is computed; may rewrite it in place. layer is -1 for EMBED and LNF.
    qt_status (*activation)(void *user, struct qt_model *m, int layer, qt_site site, void *x,
                            size_t rows, size_t cols);
    // Offered every block linear's forward first: out (N, OC) = x (N, IC) w (OC, IC)^T + b
    // (b may be NULL). Set *handled = 1 after writing out; 0 leaves it to the model.
    qt_status (*linear)(void *user, struct qt_model *m, int layer, qt_linear_id which, void *out,
                        const void *x, const void *w, const void *b, int N, int IC, int OC,
                        int *handled);
    void *user;
} qt_model_hooks;

typedef struct qt_model {
    qt_config cfg;
    qt_backend *be;
    int B, T; // allocated batch and sequence length
    int n_tensors;
    qt_tensor_info *tensors;
    size_t n_params;       // elements of the gradient arena (every tensor, padded)
    size_t n_float_params; // elements of the float parameter arena (tensors not quantized)
    size_t es;             // bytes per element of the backend's dtype
    void *params, *grads;  // backend memory, the backend's dtype: (n_float_params), (n_params)
    qt_model_params p, g;  // views into params (DQT weights: into codes, int8) and grads
    // DQT (quant.mode = dqt): the block linears' weights as int8 codes, one scale per tensor.
    int8_t *codes;         // backend memory, (n_code_bytes)
    size_t n_code_bytes;
    float *code_scales;    // host, (n_tensors): w = code * code_scales[i]; 0 when not quantized
    int (*linear_tensor)[QT_LINEAR_COUNT]; // (L): tensor index of each block linear's weight
    // quantized training scratch (quant.mode != none), the backend's dtype
    void *q_w;             // (max OC * IC) one quantized weight
    void *q_x, *q_g;       // (N, max IC), (N, max OC) quantized linear input, output gradient
    // activations, backend memory
    void *act_arena;
    size_t act_bytes;
    qt_layer_acts *acts;             // (L)
    void *encoded;                   // (N, C) embeddings after dropout
    qt_norm_acts lnf;                // final norm (the LM head's input)
    // encoder (model.arch = bert) only:
    void *emb_sum;                   // (N, C) wte + wpe + wtt, LN_e's input (post-LN)
    qt_norm_acts emb_ln;             // LN_e's statistics (post-LN; its output is `encoded`)
    void *mlm_h, *mlm_act;           // (N, C) MLM dense output, after GELU
    qt_norm_acts mlm_ln;             // (N, C) MLM LayerNorm (the decoder's input)
    int *types;                      // (B, T) backend memory: token types
    int *qlens;                      // (B, T) backend memory: keys of each query (fused op)
    int *host_seq_lens;              // (B) host: the batch's lengths (qt_model_set_encoder_batch)
    int *host_types;                 // (B, T) host: its token types
    int enc_B, enc_T;                // shape of the batch set (0: none)
    void *logits;                    // (N, V); dlogits (in place) after the backward
    float *losses;                   // (N)
    float *ce_stats;                 // (N, 2): the classifier's {max, 1 / sum exp} per row
    float *dlosses;                  // (N)
    // backward scratch, reused by every layer
    void *d_resid, *d_ln, *d_qkv, *d_ctx, *d_gated, *d_branch; // (N, C) or (N, 3C)
    float *d_gate;                                             // (N, G)
    void *d_probs, *d_scores, *d_probs_pre;                    // (B, H, T, T), composed path
    // The composed path's (B, H, T, T) buffers when the model can run fused: allocated on its
    // first use (PTQ's hooks), else NULL; with no fused op (or attention dropout) they are in
    // act_arena from the start.
    void *tt_arena;
    size_t tt_bytes;
    int gate_cols; // gate values per token: H, C (elementwise), 0
    void *d_fc, *d_fc_act;                                   // (N, F)
    int *inputs, *targets;                   // (B, T) backend memory
    // The last training forward's token buckets (qt_embedding_buckets) for the sorted
    // embedding backward, in backend memory after the targets: order (B T), start (B T + 1),
    // token (B T); n_buckets < 0: none (the backend has no sorted backward, or no targets).
    int *bucket_order, *bucket_start, *bucket_token;
    int n_buckets;
    int *lens;                               // (B, H, T) keys per attention row
    int lens_T;                              // the T `lens` was built for
    // host staging, allocated at init like the arenas: a step allocates nothing
    float *host_losses;                      // (B, T) the losses, then their gradients
    int *host_lens;                          // (B, H, T) `lens` before its copy to the backend
    int *host_tokens; // inputs, targets (B T each), the buckets (3 B T + 1): staged for one
                      // copy; then the bucket sort's scratch (2 B T)
    void *zeros_c;                           // (C) stand-in for absent norm biases
    int training;                            // dropout on
    int fwd_B, fwd_T, fwd_count;             // shape and target count of the last forward
    int fwd_fused;                           // 1: the last forward ran the fused op
    int dlogits_ready;    // 1: the last forward (qt_model_forward_train) left the gradient
    float dlogits_scale;  //    of the logits in their place, for this loss scale
    uint64_t dropout_stream;                 // distinct per micro-step (set by the trainer)
    const qt_model_hooks *hooks;             // forward observers (NULL: none)
    // Called during the backward each time a suffix of the gradient arena is final: every
    // gradient at elements >= offset holds its complete value for this backward (the arena is
    // laid out embeddings, blocks 0..L-1, final norm, head, and the backward completes it from
    // the end: after the final norm, after each block, after the embeddings with offset 0).
    // NULL: none. Data-parallel training issues its gradient buckets from it (qtrain/dist.h);
    // the model does not know what the callback does.
    qt_status (*grads_ready)(void *user, size_t offset);
    void *grads_ready_user;
} qt_model;

// Builds the parameter table and allocates parameters, gradients and activations for
// micro-batches of B sequences of up to T tokens, then initialises the parameters from
// cfg.seed. `be` must outlive the model.
qt_status qt_model_init(qt_model *m, const qt_config *cfg, qt_backend *be, int B, int T);
void qt_model_free(qt_model *m);

// Forward over inputs (B', T') with B' <= B, T' <= T, host arrays. targets may be NULL (no
// loss). On return *mean_loss is the mean over tokens with target >= 0 (if targets given).
qt_status qt_model_forward(qt_model *m, const int *inputs, const int *targets, int B, int T,
                           float *mean_loss);
// The forward of a training micro-step: qt_model_forward with the classifier's backward for
// loss_scale done in the same op (one pass over the (N, V) logits instead of two, where the
// backend has crossentropy_fwd_bwd). The logits then hold their gradient; the
// qt_model_backward that follows must pass the same loss_scale (QT_ERR_ARG otherwise).
qt_status qt_model_forward_train(qt_model *m, const int *inputs, const int *targets, int B,
                                 int T, float *mean_loss, float loss_scale);

// The encoder's (model.arch = bert) per-batch inputs besides the tokens, for the forwards that
// follow (of shape B x T exactly): lens (B) the real tokens of each sequence, in [1, T] (the
// rest is padding, attended by no query), types (B, T) token types in [0, QT_MLM_TOKEN_TYPES).
// Host arrays, copied. QT_ERR_ARG for a decoder or a value out of range.
qt_status qt_model_set_encoder_batch(qt_model *m, const int *lens, const int *types, int B, int T);

// Backward of the last forward (which must have had targets): grads += d(loss_scale *
// mean loss)/d params. The caller zeroes grads (qt_model_zero_grad) once per optimizer step.
qt_status qt_model_backward(qt_model *m, float loss_scale);
qt_status qt_model_zero_grad(qt_model *m);

// Storage of the model's state in bytes, for the memory report.
typedef struct {
    size_t n_weights;          // parameters (tied head counted once)
    size_t n_quantized;        // of which stored as int8 codes (DQT)
    size_t float_param_bytes;  // the float parameter arena
    size_t code_bytes;         // int8 codes + the per-tensor fp32 scales
    size_t grad_bytes;         // the gradient arena
    size_t act_bytes;          // activations and scratch (the composed path's too, once made)
    size_t attn_tt_bytes;      // of which the (B, H, T, T) buffers (0 while attention is fused)
} qt_model_memory;
void qt_model_memory_report(const qt_model *m, qt_model_memory *out);

// Of the last forward, layer `layer`: the attended attention probabilities (causal: B H T(T+1)/2;
// encoder: H T sum_b len_b)
// and how many of them are exactly 0 (what clipping produces), from the fused op's counts or
// the composed path's probabilities.
qt_status qt_model_zero_probs(const qt_model *m, int layer, long long *zeros, long long *attended);

// Index of a tensor by name, or -1.
int qt_model_find_tensor(const qt_model *m, const char *name);

// Total parameters (tied head counted once).
size_t qt_model_num_params(const qt_model *m);

// Training FLOPs per token for the config at sequence length T (6N + attention), for
// reporting achieved GFLOP/s.
double qt_model_flops_per_token(const qt_config *cfg, int T);

#endif

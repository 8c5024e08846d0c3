// qtrain/config.h: everything a run is made of, as one flat struct.
//
// A config file is lines of `key = value` (# starts a comment); `--set key=value` on the
// command line overrides a file value. Keys are the dotted names in the comments below
// ("model.n_layer"). Unknown keys and impossible values are errors naming the key.
// qt_config_defaults() gives the values used when neither file nor --set names a key.
#ifndef QTRAIN_CONFIG_H
#define QTRAIN_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "base/params.h"
#include "base/status.h"

// OPT: LayerNorm, learned positions, GELU/ReLU MLP, biases. LLaMA: RMSNorm, RoPE, SwiGLU, no
// biases, untied head (checked by qt_config_validate; the parts are separate keys). BERT: the
// bidirectional encoder with padding masks, token-type embeddings and the masked-LM head and
// loss (model.loss = mlm; model.norm_position = post is BERT's post-LN, pre the pre-LN block).
typedef enum { QT_ARCH_OPT = 0, QT_ARCH_LLAMA, QT_ARCH_BERT } qt_arch;
typedef enum { QT_ACT_GELU = 0, QT_ACT_RELU, QT_ACT_SWIGLU } qt_activation;
typedef enum { QT_NORM_LAYERNORM = 0, QT_NORM_RMSNORM } qt_norm;
typedef enum { QT_POS_LEARNED = 0, QT_POS_ROPE } qt_pos;
// clm: next-token prediction (decoders); mlm: the masked-LM loss on the chosen tokens (BERT).
typedef enum { QT_LOSS_CLM = 0, QT_LOSS_MLM } qt_loss;
// Where a block's norms sit: pre (x + f(LN(x)), then a final norm) or post (LN(x + f(x)), BERT).
typedef enum { QT_NORM_PRE = 0, QT_NORM_POST } qt_norm_position;
typedef enum { QT_SCHED_LINEAR = 0, QT_SCHED_COSINE, QT_SCHED_CONSTANT } qt_sched;
// Storage of parameters, gradients and activations: auto = fp32 on the CPU, fp16 on CUDA.
typedef enum { QT_PRECISION_AUTO = 0, QT_PRECISION_FP32, QT_PRECISION_FP16, QT_PRECISION_BF16 } qt_precision;

// Quantized training (PAPERS.md sections 6-8), applied to the linear layers of every block
// (qkv, out_proj, fc1, fc2); embeddings, the LM head, norms and the attention gate stay in
// full precision.
//   none    plain training;
//   qat     fake quantization (quantize-dequantize) of weights, linear inputs, output gradients
//           and Adam's m and v, each by its quant.<w|a|g|m|v>_* keys (bits 0: off), with the
//           straight-through estimator; quant.backward places the quantized gradient;
//   bitnet  BitNet b1.58: absmean ternary weights per tensor, 8-bit per-token absmax inputs,
//           STE, latent fp32 weights (the quant.w_* and quant.a_* keys are not used);
//   dqt     direct quantized training: the weights exist only as int8 codes (quant.dqt_bits)
//           with a per-tensor scale, updated by AdamW + stochastic rounding (kernels/dqt.h);
//           inputs 8-bit per-token absmax as BitLinear.
typedef enum { QT_QMODE_NONE = 0, QT_QMODE_QAT, QT_QMODE_BITNET, QT_QMODE_DQT } qt_quant_mode;
// Which backward product takes the quantized output gradient G_q (quant.g_bits > 0):
// dw: dW = G_q^T X, dX = G W (Chitsaz et al.'s default); dx: dX = G_q W, dW = G^T X (SwitchBack).
typedef enum { QT_QBWD_DW = 0, QT_QBWD_DX } qt_quant_backward;
// DQT's scale after each step: fixed (the init scale forever), absmax_pre (max |w| before the
// step / qmax: Zhao et al.'s code; the range can only shrink), absmean (mean |w'| of the
// updated values / qmax, from a dry-run pass, BitNet's rule).
typedef enum { QT_DQT_SCALE_FIXED = 0, QT_DQT_SCALE_ABSMAX_PRE, QT_DQT_SCALE_ABSMEAN } qt_dqt_scale;

// One fake quantizer of qat (keys quant.<role>_bits, _granularity, _group, _rounding,
// _symmetric, _range).
typedef struct {
    int bits;                         // 0: off; 1: ternary; 2..8
    qt_quant_granularity granularity; // tensor | row (W: output channel; A, G: token) | group
    int group;                        // elements per group (granularity = group)
    qt_quant_rounding rounding;       // nearest | stochastic
    int symmetric;                    // 1: signed grid; 0: with a zero point
    qt_quant_range range;             // absmax | absmean
} qt_quant_spec;

typedef struct {
    // ---- model.*
    qt_arch arch;              // model.arch: opt | llama | bert
    int n_layer;               // model.n_layer
    int d_model;               // model.d_model (C)
    int n_head;                // model.n_head (H, divides d_model)
    int d_ff;                  // model.d_ff
    int max_seq_len;           // model.max_seq_len (T <= this; learned positions' table size)
    int vocab_size;            // model.vocab_size (<= 65536: shards hold uint16 tokens)
    qt_activation activation;  // model.activation: gelu | relu | swiglu (fc1 is then (2F, C))
    qt_norm norm;              // model.norm: layernorm | rmsnorm
    qt_pos pos;                // model.pos: learned | rope
    float rope_theta;          // model.rope_theta: RoPE base (10000)
    qt_loss loss;              // model.loss: clm | mlm (mlm exactly with model.arch = bert)
    qt_norm_position norm_position; // model.norm_position: pre | post (post: bert only)
    int tie_embeddings;        // model.tie_embeddings: 0 | 1
    int bias;                  // model.bias: 0 | 1 (linear and norm biases)
    float init_std;            // model.init_std: N(0, init_std) init
    float dropout;             // model.dropout: embeddings, attention probs, residual branches
    float attn_dropout;        // model.attn_dropout: attention probabilities (-1: = dropout)

    // ---- attn.*
    qt_softmax_kind softmax;   // attn.softmax: vanilla | clipped | ncs
    float gamma;               // attn.gamma (clipped, <= 0)
    float zeta;                // attn.zeta (clipped, >= 1)
    float alpha;               // attn.alpha (clipped: if > 0, gamma = -alpha / max_seq_len)
    float eta;                 // attn.eta (ncs)
    float beta;                // attn.beta (ncs)
    qt_gate_kind gate;         // attn.gate: none | linear | mlp | all_heads | elementwise
    int gate_n_hid;            // attn.gate_n_hid (mlp gate hidden width; 0: d_head / 4)
    float gate_pi_init;        // attn.gate_pi_init: initial gate value, in (0, 1)
    qt_sink_kind sink;         // attn.sink: none | off_by_one | learned (a logit per head)

    // ---- train.*
    int batch_size;            // train.batch_size (B, sequences per micro-batch)
    int seq_len;               // train.seq_len (T <= model.max_seq_len)
    int grad_accum;            // train.grad_accum: micro-batches per optimizer step
    int max_steps;             // train.max_steps: optimizer steps
    float lr;                  // train.lr: peak learning rate
    float min_lr;              // train.min_lr: floor of the decay
    int warmup_steps;          // train.warmup_steps: linear warmup from 0
    qt_sched schedule;         // train.schedule: linear | cosine | constant
    float beta1, beta2, eps;   // train.beta1, train.beta2, train.eps
    float weight_decay;        // train.weight_decay
    int decay_norm_weights;    // train.decay_norm_weights: 1 decays LayerNorm gains (OPT)
    float grad_clip;           // train.grad_clip: global norm (0: off)
    uint64_t seed;             // train.seed: every random draw derives from it
    int threads;               // train.threads: OpenMP threads (0: all cores)
    int log_every;             // train.log_every: steps between training lines
    int eval_every;            // train.eval_every: steps between evaluations (0: only at end)
    int eval_batches;          // train.eval_batches: validation batches per evaluation
    int ckpt_every;            // train.ckpt_every: steps between checkpoints (0: only at end)
    qt_precision precision;    // train.precision: auto | fp32 | fp16 | bf16
    // Dynamic loss scaling (fp16 only; bf16 and fp32 train unscaled):
    float loss_scale_init;     // train.loss_scale_init: first scale (65536 = 2^16)
    int loss_scale_window;     // train.loss_scale_window: clean steps before the scale grows
    float loss_scale_growth;   // train.loss_scale_growth: factor after a clean window (2)
    float loss_scale_backoff;  // train.loss_scale_backoff: factor on inf/nan (0.5); the step
                               // is then skipped

    // ---- quant.*
    qt_quant_mode quant_mode;  // quant.mode: none | qat | bitnet | dqt
    qt_quant_spec q_w, q_a;    // quant.w_*, quant.a_*: weights, linear inputs (qat)
    qt_quant_spec q_g;         // quant.g_*: output gradients of the linears (qat)
    qt_quant_spec q_m, q_v;    // quant.m_*, quant.v_*: Adam moments, at each step's start (qat)
    qt_quant_backward q_backward; // quant.backward: dw | dx
    int q_int8_gemm;           // quant.int8_gemm: 1 runs 8-bit symmetric W x A forwards through
                               // the INT8 GEMM where the backend has one
    int dqt_bits;              // quant.dqt_bits: 1 (ternary) .. 8
    qt_dqt_scale dqt_scale;    // quant.dqt_scale: fixed | absmax_pre | absmean

    // ---- data.*
    char data_dir[512];        // data.dir: holds tokenizer.bin, train_*.bin, val_*.bin
    float mlm_prob;            // data.mlm_prob: share of a sequence's tokens the MLM chooses

    // ---- dist.* (data-parallel training, qtrain/dist.h; no effect on one process)
    float dist_bucket_mb; // dist.bucket_mb: gradient bucket size in MiB (0: one bucket)
    int dist_zero;        // dist.zero: 1 shards AdamW moments (and fp32 masters) (ZeRO-1)
    float dist_timeout_s; // dist.timeout_s: a collective not done after this long ends
                          // the run, naming the ranks that do not answer
} qt_config;

void qt_config_defaults(qt_config *cfg);

// Applies one `key=value` (or `key = value`) assignment. `origin` ("configs/tiny.conf:12",
// "--set") is named in the error for an unknown key or an unparsable value.
qt_status qt_config_set(qt_config *cfg, const char *assignment, const char *origin);

// Applies the text of a config file, text[0, len): `key = value` lines, each through
// qt_config_set; `#` starts a comment except inside a "..." value; blank lines are skipped; a
// key set twice is an error; lines have no length limit; a NUL byte is an error. All or
// nothing: on any error *cfg is unchanged. Errors name `source` and the line
// ("configs/tiny.conf:12: ..."). The one parser of config text: qt_config_load reads files
// through it, and the trainer the config stored in a checkpoint.
qt_status qt_config_parse(qt_config *cfg, const char *text, size_t len, const char *source);

// Reads a config file through qt_config_parse (on error *cfg is unchanged).
qt_status qt_config_load(qt_config *cfg, const char *path);

// Checks the relations between values (heads divide d_model, gamma <= 0, zeta >= 1, ...).
// Call after all files and overrides are applied.
qt_status qt_config_validate(const qt_config *cfg);

// Writes every key with its value, in a form qt_config_load reads back.
qt_status qt_config_write(const qt_config *cfg, FILE *out);

// The effective gamma of clipped softmax (alpha > 0 wins: -alpha / max_seq_len).
float qt_config_gamma(const qt_config *cfg);

// The storage dtype train.precision asks for; auto is `auto_dtype`, the backend's own choice
// (fp32 on the CPU, fp16 on CUDA).
qt_dtype qt_config_precision_dtype(qt_precision precision, qt_dtype auto_dtype);

#endif

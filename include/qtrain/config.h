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

#include "qtrain/ops.h"
#include "qtrain/status.h"

typedef enum { QT_ARCH_OPT = 0 } qt_arch;          // room for QT_ARCH_BERT, QT_ARCH_LLAMA
typedef enum { QT_ACT_GELU = 0, QT_ACT_RELU } qt_activation;
typedef enum { QT_NORM_LAYERNORM = 0 } qt_norm;    // room for QT_NORM_RMSNORM
typedef enum { QT_POS_LEARNED = 0 } qt_pos;        // room for QT_POS_ROPE
typedef enum { QT_LOSS_CLM = 0 } qt_loss;          // room for QT_LOSS_MLM
typedef enum { QT_SCHED_LINEAR = 0, QT_SCHED_COSINE, QT_SCHED_CONSTANT } qt_sched;
// Storage of parameters, gradients and activations: auto = fp32 on the CPU, fp16 on CUDA.
typedef enum { QT_PRECISION_AUTO = 0, QT_PRECISION_FP32, QT_PRECISION_FP16, QT_PRECISION_BF16 } qt_precision;

typedef struct {
    // ---- model.*
    qt_arch arch;              // model.arch: opt
    int n_layer;               // model.n_layer
    int d_model;               // model.d_model (C)
    int n_head;                // model.n_head (H, divides d_model)
    int d_ff;                  // model.d_ff
    int max_seq_len;           // model.max_seq_len (positions learned; T <= this)
    int vocab_size;            // model.vocab_size (<= 65536: shards hold uint16 tokens)
    qt_activation activation;  // model.activation: gelu | relu
    qt_norm norm;              // model.norm: layernorm
    qt_pos pos;                // model.pos: learned
    qt_loss loss;              // model.loss: clm
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
    qt_gate_kind gate;         // attn.gate: none | linear | mlp | all_heads
    int gate_n_hid;            // attn.gate_n_hid (mlp gate hidden width; 0: d_head / 4)
    float gate_pi_init;        // attn.gate_pi_init: initial gate value, in (0, 1)

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

    // ---- data.*
    char data_dir[512];        // data.dir: holds tokenizer.bin, train_*.bin, val_*.bin
} qt_config;

void qt_config_defaults(qt_config *cfg);

// Applies one `key=value` (or `key = value`) assignment. `origin` ("configs/tiny.conf:12",
// "--set") is named in the error for an unknown key or an unparsable value.
qt_status qt_config_set(qt_config *cfg, const char *assignment, const char *origin);

// Reads a config file: applies each line with qt_config_set.
qt_status qt_config_load(qt_config *cfg, const char *path);

// Checks the relations between values (heads divide d_model, gamma <= 0, zeta >= 1, ...).
// Call after all files and overrides are applied.
qt_status qt_config_validate(const qt_config *cfg);

// Writes every key with its value, in a form qt_config_load reads back.
qt_status qt_config_write(const qt_config *cfg, FILE *out);

// The effective gamma of clipped softmax (alpha > 0 wins: -alpha / max_seq_len).
float qt_config_gamma(const qt_config *cfg);

#endif

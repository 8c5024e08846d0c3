// base/params.h: the parameter types of the op families, shared by their CPU references
// (kernels/cpu), CUDA kernels (kernels/cuda), the shared math (base/) and the runtime.
//
// Part of the bottom layer: depends on nothing of qtrain's. Each family's header
// (kernels/<family>.h) documents the ops that take these; the sections below are named by
// family.
#ifndef QTRAIN_BASE_PARAMS_H
#define QTRAIN_BASE_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- the CUDA launcher convention
//
// Every family declares its CUDA launchers next to its CPU reference, in kernels/<family>.h:
//     qt_status qt_cuda_<family>_<op>(qt_cuda_stream s, qt_dtype dt, <the CPU op's arguments,
//                                     in its order>, <CUDA-only extras: workspace, options>)
// `dt` (base/dtype.h) is the storage type of the op's `void *` tensors; it is absent when the
// op has none. Device pointers throughout; the launcher checks its arguments (QT_ERR_ARG
// naming the op) and the launch (QT_ERR_CUDA), and never allocates.
typedef void *qt_cuda_stream; // a cudaStream_t (NULL: the default stream)

// ---- softmax_clip (PAPERS.md sections 1-2)

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

// ---- gate (PAPERS.md section 3)

typedef enum {
    QT_GATE_NONE = 0,
    QT_GATE_LINEAR = 1,    // per head: Linear(D -> 1) on x_h
    QT_GATE_MLP = 2,       // per head: Linear(D -> n_hid) -> ReLU -> Linear(n_hid -> 1) on x_h
    QT_GATE_ALL_HEADS = 3, // Linear(C -> H) on the whole x
    // Qwen's elementwise gate (Qiu et al. 2025): Linear(C -> C) on the whole x, one gate per
    // channel. A config value only: it is the all-heads gate with n_heads = C (the model passes
    // that shape; the gate kernels take kinds 1-3).
    QT_GATE_ELEMENTWISE = 4,
} qt_gate_kind;

typedef struct {
    qt_gate_kind kind;
    int n_heads; // H (all heads: the number of gate values per token, any divisor of C)
    int n_hid;   // MLP hidden width (QT_GATE_MLP only)
} qt_gate_shape;

// ---- softmax sinks (the 2025 outlier-free variants; README "Attention variants")
//
// A sink is a virtual key with logit s0 and a zero value in every row's softmax:
//   p_j = exp(x_j) / (exp(s0) + sum_k exp(x_k)),  x = scale * scores,
// so a row's probabilities sum to 1 - p0 (p0 = exp(s0) / (exp(s0) + sum_k exp(x_k))) and a
// head can attend to nothing without pushing its logits apart. The clip map
// (softmax_clip_math.h) then applies to p as without a sink; N counts the real keys.
typedef enum {
    QT_SINK_NONE = 0,    // plain softmax
    QT_SINK_ZERO = 1,    // off-by-one softmax ("softmax1"): s0 = 0, fixed
    QT_SINK_LEARNED = 2, // s0 = a learned logit per head
} qt_sink_kind;

// ---- attention: the fused (flash) op of kernels/attention.h (FLASH_CLIP.md)

// The gate the fused op applies to its output, O = g * A (FLASH_CLIP.md section 2).
typedef enum {
    QT_ATTN_GATE_NONE = 0,
    QT_ATTN_GATE_HEAD = 1,    // g (N, H): one value per token and head (linear, mlp, all_heads)
    QT_ATTN_GATE_CHANNEL = 2, // g (N, C): one per token and channel (Qwen's elementwise gate)
} qt_attn_gate;

typedef struct {
    qt_softmax_params sm; // the softmax variant and the score scale (1/sqrt(D))
    qt_sink_kind sink;    // QT_SINK_LEARNED: the op reads one logit per head
    qt_attn_gate gate;    //
    int br, bc;           // a tile's query rows and key columns; 0: QT_ATTN_TILE. The forward
                          // and the backward must use the same tiles (FLASH_CLIP.md section 3:
                          // the scores are recomputed bit for bit)
} qt_attn_params;
#define QT_ATTN_TILE 64

// ---- layernorm, rmsnorm

#define QT_LAYERNORM_EPS 1e-5f
#define QT_RMSNORM_EPS 1e-5f

// ---- linear: the batched GEMM

// A batched row-major GEMM: for i in [0, batch):
//   C_i (M, N) = alpha * op(A_i) op(B_i) + beta * C_i,  op(X) = X or X^T
// where X_i = X + (i / inner) * x_outer + (i % inner) * x_inner (elements). Two-level
// batching addresses (batch, head) slices of a (B, T, 3C) tensor without a permute.
typedef struct {
    int trans_a, trans_b;
    int M, N, K;
    float alpha, beta;
    int lda, ldb, ldc;
    int batch, inner; // inner >= 1 divides batch
    int64_t a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;
} qt_gemm_desc;

// The activation a linear layer may apply to its output in the same op (linear_act_fwd,
// linear_act_dx; the GEMM's epilogue on CUDA): pre = x w^T + b, out = act(pre).
typedef enum { QT_LINEAR_ACT_GELU = 1, QT_LINEAR_ACT_RELU = 2 } qt_linear_act;

// ---- adamw

typedef struct {
    float lr;
    float beta1, beta2, eps;
    float weight_decay; // decoupled: param -= lr * weight_decay * param
    int step;           // 1-based, for the bias corrections
    float grad_scale;   // multiplies every gradient first (clipping, loss-scale undo)
} qt_adamw_params;

// The multi-tensor AdamW step (the CUDA backend's adamw_multi, qt_cuda_adamw_multi): one span
// per parameter tensor, in elements.
typedef struct {
    size_t param;       // first element in the parameter arena (and in the fp32 masters)
    size_t grad;        // first element in the gradient arena (and in the moments m, v)
    size_t n;           // elements
    float weight_decay; // the tensor's decoupled weight decay
} qt_adamw_span;

// Its step: the gradient norm is taken on the device, so the unscaling, the clipping and the
// decision to skip happen there, as qt_optimizer_update decides them on the host:
//   norm = sqrt(sum of grad^2) / loss_scale (double); not finite: nothing is updated;
//   grad_scale = 1 / loss_scale, or (float)(grad_clip / (norm + 1e-6)) / loss_scale when
//   grad_clip > 0 and norm > grad_clip.
typedef struct {
    float lr;
    float beta1, beta2, eps;
    int step;         // 1-based: the step this update makes when it is applied
    float loss_scale; // the gradients hold loss_scale times the true ones (1: no scaling)
    float grad_clip;  // > 0: clip the true gradients to this global norm
} qt_adamw_multi_params;

// ---- quant (PAPERS.md sections 5-9; the grid and ranges: kernels/quant.h)

#define QT_QUANT_TERNARY 1 // bits value of the ternary grid {-1, 0, 1} (BitNet b1.58)

typedef enum { QT_QUANT_PER_TENSOR, QT_QUANT_PER_ROW, QT_QUANT_PER_GROUP } qt_quant_granularity;
typedef enum { QT_QUANT_NEAREST, QT_QUANT_STOCHASTIC } qt_quant_rounding;
typedef enum {
    QT_QUANT_RANGE_ABSMAX,
    QT_QUANT_RANGE_ABSMEAN,
    QT_QUANT_RANGE_RUNNING,
    QT_QUANT_RANGE_PERCENTILE,
    QT_QUANT_RANGE_MSE,
    QT_QUANT_RANGE_FIXED,
} qt_quant_range;

typedef struct {
    int bits;                         // 2..8, or QT_QUANT_TERNARY
    int symmetric;                    // 1: signed, zero point 0; 0: unsigned with zero point
    qt_quant_granularity granularity; //
    size_t group_size;                // elements per group (QT_QUANT_PER_GROUP only)
    qt_quant_rounding rounding;       //
    qt_quant_range range;             //
    float floor;                      // smallest range (width when asymmetric), > 0
    float eps;                        // ABSMEAN: added to mean|x| (BitNet's eps)
    float percentile;                 // PERCENTILE: in (0, 100], e.g. 99.999
    float momentum;                   // RUNNING: weight of the previous range, in [0, 1)
    uint64_t seed, stream;            // STOCHASTIC: Philox key and stream (qt_quant_stream)
} qt_quant_params;

// State of QT_QUANT_RANGE_RUNNING, kept by the caller; zero-initialise before the first call.
// QT_QUANT_RANGE_FIXED reads it (initialized = 1 with lo <= hi) and leaves it unchanged.
typedef struct {
    float lo, hi;
    int initialized;
} qt_quant_running;

// ---- dqt (PAPERS.md section 7; the update rule: kernels/dqt.h)

typedef struct {
    qt_adamw_params adam;        // lr, betas, eps, weight_decay, step (1-based), grad_scale
    float scale_in;              // s of the current codes
    float scale_out;             // s of the codes written (equal to scale_in for a fixed scale)
    int qmin, qmax;              // the grid: [-1, 1] ternary, [-2^(b-1), 2^(b-1) - 1] b-bit
    uint64_t seed, stream;       // stochastic rounding (qt_quant_stream(step, tensor id))
    int dry_run;                 // 1: compute the stats only; codes, m and v are not written
} qt_dqt_params;

typedef struct {
    double abs_sum;   // sum over elements of |w'| (the updated value before rounding)
    int max_abs_code; // max |q| of the codes before the step
} qt_dqt_stats;

#ifdef __cplusplus
}
#endif
#endif

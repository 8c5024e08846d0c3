// qtrain/ptq.h: post-training quantization (PTQ) evaluation, W8A8 and its W4A8 / W6A6 variants
// (PAPERS.md section 5, Bondarenko et al.): the perplexity of a trained model with its weights
// and activations quantized, next to its full-precision perplexity, through fake quantization
// and through the true INT8 GEMM.
//
// What is quantized:
//   weights      symmetric signed per tensor at weight_bits, range absmax (step = max|w| / qmax)
//                or the MSE-best of 100 candidate ranges; written in place into the model's
//                parameters (an eval-only model; qt_ptq_evaluate restores them before it
//                returns): every linear and embedding matrix and every norm gain; biases never;
//                the LM head stays full precision. With tied embeddings the LM head and the
//                token embedding are one tensor: it stays full precision and the embedding
//                site's output (QT_SITE_EMBED) is quantized instead (qt_ptq_result.head_tied).
//   activations  asymmetric unsigned per tensor at act_bits, every site of qtrain/model.h
//                (norm outputs, q/k/v outputs, Q K^T, softmax output, P V, out_proj output, both
//                residual sums, fc1 output after the activation, fc2 output, final norm
//                output; the embedding output only when tied, see above), plus the input of
//                every block linear (which is a site, except the gated context of gated
//                attention, which gets its own range). Ranges are calibrated once on
//                calib_batches training batches, then frozen (QT_QUANT_RANGE_FIXED):
//                  running min-max: lo = m lo + (1 - m) batch_min (same for hi), m = 0.9, the
//                    first batch initialises;
//                  percentile: per batch the nearest-rank `percentile`-th percentile of each
//                    tail (lo at 100 - p, hi at p), combined over batches by the same running
//                    average. The range always includes 0 (kernels/quant.h's asymmetric grid).
//                Calibration observes full-precision activations (weights already quantized);
//                for Q K^T and the softmax output only the causal entries (key <= query)
//                count, the ones the model uses.
//
// The two quantized paths (both with the same weights and frozen ranges, so they differ only
// by float rounding):
//   fake  every site fake-quantized in place; every block linear's input fake-quantized with
//         its range, then the backend's float linear;
//   int8  the same, except that every block linear runs as the integer GEMM of the input's
//         asymmetric codes and the weight's int8 codes, the zero point removed and the scales
//         applied in the epilogue (qt_cpu_linear_s8_zp), through qt_model_hooks.linear.
// Any backend works: site tensors are copied to the host (to_host_f32 / to_device_f32) unless
// the backend is the CPU one in fp32, where they are quantized in place.
#ifndef QTRAIN_PTQ_H
#define QTRAIN_PTQ_H

#include "qtrain/data.h"
#include "qtrain/model.h"
#include "qtrain/names.h"
#include "base/params.h"

#define QT_PTQ_DEFAULT_CALIB_BATCHES 16
// The range methods PTQ takes, as subsets of qt_quant_range_names (qtrain/names.h): weights
// absmax | mse, activations minmax (running min-max) | percentile.
#define QT_PTQ_WEIGHT_RANGES (QT_NAME_BIT(QT_QUANT_RANGE_ABSMAX) | QT_NAME_BIT(QT_QUANT_RANGE_MSE))
#define QT_PTQ_ACT_RANGES                                                                          \
    (QT_NAME_BIT(QT_QUANT_RANGE_RUNNING) | QT_NAME_BIT(QT_QUANT_RANGE_PERCENTILE))

typedef struct {
    int weight_bits;             // 2..8 (presets: 8, 4, 6)
    int act_bits;                // 2..8 (presets: 8, 8, 6)
    qt_quant_range weight_range; // QT_PTQ_WEIGHT_RANGES: QT_QUANT_RANGE_ABSMAX or _MSE
    qt_quant_range act_range;    // QT_PTQ_ACT_RANGES: QT_QUANT_RANGE_RUNNING (min-max) or
                                 // QT_QUANT_RANGE_PERCENTILE
    float momentum;              // weight of the previous range over batches, in [0, 1) (0.9)
    float percentile;            // percentile ranges, in (50, 100] (99.999)
    int calib_batches;           // training batches to calibrate on, >= 1 (16)
    int eval_batches;            // validation batches per evaluation, >= 1
    int int8_path;               // 1: also evaluate through the INT8 GEMM (default 1)
    // Optional progress report (NULL: none): phase is "fp", "calibrate", "fake" or "int8";
    // called with done = 0 when a phase starts and, while calibrating, after every batch.
    void (*progress)(void *user, const char *phase, int done, int total);
    void *progress_user;
} qt_ptq_config;

typedef struct {
    double fp_loss, fp_ppl;     // plain evaluation (qt_evaluate, no hooks)
    double fake_loss, fake_ppl; // fake-quantized
    double int8_loss, int8_ppl; // INT8 GEMM path (NAN when int8_path = 0)
    double int8_vs_fake;        // |int8_ppl - fake_ppl| / fake_ppl (NAN when int8_path = 0)
    long long tokens;           // validation tokens per evaluation
    int weight_tensors;         // parameter tensors quantized in place
    int act_ranges;             // activation ranges calibrated (sites and linear inputs)
    int head_tied;              // 1: the token embedding is the LM head (kept full precision)
    const char *int8_gemm;      // the INT8 GEMM path used ("avx2", "portable"), or NULL
    long long int8_linears;     // block-linear forwards the INT8 GEMM ran (0 without int8)
} qt_ptq_result;

// W8A8, absmax weights, running min-max activations (momentum 0.9), 16 calibration batches,
// 1 evaluation batch, the INT8 path on, no progress.
qt_ptq_config qt_ptq_config_default(void);

// Sets weight_bits and act_bits from a preset name: "w8a8", "w4a8" or "w6a6" (QT_ERR_ARG
// naming the choices otherwise); other fields unchanged.
qt_status qt_ptq_config_preset(qt_ptq_config *c, const char *name);

// QT_ERR_ARG naming the first bad field and its allowed values.
qt_status qt_ptq_check(const qt_ptq_config *c);

// Evaluates `m` (its parameters as loaded) in full precision, then quantized as described
// above: calibrates on `calib` (rewound first; e.g. the training split with the same B, T as
// the model), evaluates `val` (rewound by qt_evaluate) on both paths, and fills *out. The
// parameters, m->hooks and m->training are restored before returning, on error too.
qt_status qt_ptq_evaluate(qt_model *m, qt_dataloader *calib, qt_dataloader *val,
                          const qt_ptq_config *c, qt_ptq_result *out);

#endif

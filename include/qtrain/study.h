// qtrain/study.h: `qtrain study`: train a list of attention variants on the same data, seeds
// and budget, evaluate every run (perplexity, outlier metrics, per-layer statistics, W8A8
// post-training quantization fake-quantized and through the INT8 GEMM), and report them side
// by side (README "Studies").
//
// Everything goes under out_dir:
//   runs/<variant>-s<i>/   one training run per variant and seed index i (0 .. seeds - 1):
//                          the trainer's config.conf, metrics.jsonl and ckpt.bin, and
//                          eval.json, the study's evaluation of the finished run
//   results.md             the markdown table: mean and spread (sample standard deviation)
//                          over seeds per variant, and the per-layer infinity norms
//   metrics.json           every run's evaluation and training series, and the aggregates
//   plots/                 the PNG plots (gnuplot), with their data and script
//
// Resuming: a run whose eval.json exists is finished and is neither retrained nor evaluated
// again; a run with a checkpoint before train.max_steps resumes from it; a run at
// train.max_steps is only evaluated. A run directory made from another config is refused.
// SIGINT / SIGTERM stop the study after the current step (its checkpoint written) or phase;
// running the same command again completes it.
#ifndef QTRAIN_STUDY_H
#define QTRAIN_STUDY_H

#include <stddef.h>

#include "qtrain/backend.h"
#include "qtrain/config.h"

// One variant: a name and the config assignments that make it. Every variant sets all the
// attention keys it does not use back to their plain values (attn.softmax = vanilla,
// attn.gate = none, attn.sink = none), so that the variant, not the base config, decides the
// attention; --set assignments come after the variant and win.
typedef struct {
    const char *name;           // "vanilla", "clipped", ...
    const char *assignments[8]; // `key=value`, NULL-terminated
    const char *what;           // one line for --help and the report
} qt_study_variant;

// The variant table, in order, and its size.
extern const qt_study_variant qt_study_variants[];
extern const int qt_study_n_variants;

// The variant called `name`, or NULL.
const qt_study_variant *qt_study_variant_find(const char *name);
// "vanilla, clipped, ncs, ..." into buf (n bytes).
void qt_study_variant_names(char *buf, size_t n);
// Applies the variant's assignments to cfg (origin "variant <name>" in errors).
qt_status qt_study_variant_apply(qt_config *cfg, const qt_study_variant *v);

typedef struct {
    const char *config_path;  // base config file, or NULL for the built-in defaults
    const char *const *sets;  // (n_sets) `key=value` applied after the variant
    int n_sets;
    const char *const *variants; // (n_variants) variant names, each in qt_study_variants
    int n_variants;
    int seeds;                // runs per variant; seed index i trains with train.seed + i
    const char *out_dir;
    int eval_batches;         // validation batches per evaluation; 0: train.eval_batches
    int calib_batches;        // training batches calibrating W8A8's activation ranges (>= 1)
    int plots;                // 1: draw the PNG plots with gnuplot (its absence is an error)
    int quiet;                // no progress lines
    qt_backend *train_be;     // where the runs train
    qt_backend *eval_be;      // where they are evaluated, fp32 (may be train_be)
    int *stop_signal;         // out: SIGINT / SIGTERM when a signal stopped the study, else 0
} qt_study_opts;

// Checks every variant name and resolves every run's config before anything is written; a
// bad name is QT_ERR_ARG naming the valid ones. Then trains, evaluates and reports as above.
qt_status qt_study_run(const qt_study_opts *opts);

#endif

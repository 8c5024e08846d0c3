// study_internal.h: what the parts of `qtrain study` share (qtrain/study.h): one run's plan and
// results, the histogram binning, and the phases: evaluate a run (run_eval.c), read a run's
// training series (series.c), write the report (report.c) and draw the plots (plots.c).
#ifndef QTRAIN_HOST_STUDY_INTERNAL_H
#define QTRAIN_HOST_STUDY_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "qtrain/evaluate.h"
#include "qtrain/study.h"

// Histogram of a layer's output values on a fixed, data-independent grid, so that runs compare
// bin for bin: per sign, HIST_BINS_PER_OCTAVE bins per octave of |x| from 2^HIST_MIN_EXP to
// 2^HIST_MAX_EXP (larger |x| fall in the last bin), and one middle bin for |x| < 2^HIST_MIN_EXP.
// Bin index: HIST_HALF for the middle, HIST_HALF + 1 + k for x > 0 in octave-bin k, HIST_HALF
// - 1 - k for x < 0.
#define HIST_BINS_PER_OCTAVE 4
#define HIST_MIN_EXP (-8)
#define HIST_MAX_EXP 12
#define HIST_HALF ((HIST_MAX_EXP - HIST_MIN_EXP) * HIST_BINS_PER_OCTAVE)
#define HIST_BINS (2 * HIST_HALF + 1)

// The bin of x, and the bounds [lo, hi) of bin i.
int study_hist_bin(float x);
void study_hist_bounds(int i, double *lo, double *hi);

typedef struct {
    int step;
    double loss;
} study_train_point;

typedef struct {
    int step;
    double val_loss, max_inf_norm, avg_kurtosis;
} study_eval_point;

typedef struct {
    const qt_study_variant *variant;
    int seed_index;
    qt_config cfg;      // resolved: base config, variant, --set, seed
    char name[160];     // "<variant>-s<i>"
    char dir[1200];     // <out>/runs/<name>
    // ---- the evaluation of the finished run (eval.json)
    int evaluated;
    qt_eval_result eval;                    // FP: loss, perplexity, outlier metrics, layers
    double fp_ppl, fake_ppl, int8_ppl;      // W8A8 post-training quantization
    char int8_gemm[32];                     // the INT8 GEMM path that ran
    long long *hist;                        // (n_layer, HIST_BINS) layer output values
    double eval_seconds;
    // ---- over training (metrics.jsonl)
    study_train_point *train;
    int n_train;
    study_eval_point *evals;
    int n_evals;
    double train_seconds; // training time: the last elapsed_s of each session, summed
} study_run;

void study_run_free_results(study_run *r);

// Evaluates the finished run r (its ckpt.bin) on be: the FP evaluation, the layer-output
// histograms, W8A8 PTQ; writes r->dir/eval.json atomically and fills r's results.
qt_status study_eval_run(study_run *r, qt_backend *be, int eval_batches, int calib_batches,
                         int quiet);
// Reads r->dir/eval.json into r's results (r->evaluated = 1); QT_ERR_IO when it is missing.
qt_status study_read_eval(study_run *r);
// Reads the training and evaluation lines of r->dir/metrics.jsonl.
qt_status study_read_series(study_run *r);

typedef struct {
    const char *out_dir;
    const char *config_label; // the base config's path, or "built-in defaults"
    study_run *runs;          // (n_variants * seeds), variant-major
    int n_variants, seeds;
    int best;                 // index of the best variant (lowest mean max inf-norm) other
                              // than the reference, -1 when there is none
    int reference;            // index of vanilla (else variant 0)
    int hist_layer;           // the layer whose output histogram is drawn
} study_report;

// Chooses best, reference and hist_layer; writes results.md and metrics.json (atomically).
qt_status study_write_report(study_report *rep, FILE *table_out);
// Writes plots/ (data, study.gp) and runs gnuplot on it. A missing gnuplot is QT_ERR_UNSUPPORTED
// saying what to install.
qt_status study_draw_plots(const study_report *rep, int quiet);

// Writes the text in buf[0, len) to path atomically.
qt_status study_write_text(const char *path, const char *buf, size_t len);

#endif

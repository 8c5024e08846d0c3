// qtrain/evaluate.h: validation loss and the outlier metrics (PAPERS.md section 4).
//
// For every validation sequence (a (T, C) slice) of each measured tensor: the infinity norm
// max|x| and the kurtosis mean((x - mu)^4) / (std^4 + 1e-6) with std unbiased (not excess:
// a Gaussian gives ~3). Both are averaged over the validation sequences per module.
// max_inf_norm: the max over the measured modules of the averaged inf norm: the layer outputs
// (residual stream) of a pre-LN model; the layer, attention and FFN outputs of a post-LN one.
// avg_kurtosis: the mean over all measured modules (layer output, out_proj output, fc2
// output of every layer) of the averaged kurtosis.
#ifndef QTRAIN_EVALUATE_H
#define QTRAIN_EVALUATE_H

#include <stdio.h>

#include "qtrain/data.h"
#include "qtrain/model.h"

typedef struct {
    double inf_norm_out, kurtosis_out;   // layer output (residual stream)
    double inf_norm_attn, kurtosis_attn; // attention out_proj output
    double inf_norm_ffn, kurtosis_ffn;   // fc2 output
    double zero_frac; // share of attended attention probabilities that are exactly 0
    double gate_mean; // mean gate value (gated attention), NAN when ungated
} qt_layer_metrics;

typedef struct {
    double val_loss, val_ppl;
    double max_inf_norm, avg_kurtosis;
    long long tokens; // validation tokens scored
    int n_layer;
    qt_layer_metrics *layers; // (n_layer)
} qt_eval_result;

// A layer's inf-norm under max_inf_norm's rule: its output's in a pre-LN model; the largest of
// its output's, attention output's and FFN output's in a post-LN one.
double qt_layer_inf_norm(const qt_layer_metrics *lm, qt_norm_position norm_position);

// Per-sample statistics of x (n values): max|x| and kurtosis as defined above.
void qt_outlier_stats(const float *x, size_t n, double *inf_norm, double *kurtosis);

// Runs `batches` validation batches (from the loader's start) with dropout off and fills
// `out` (which the caller frees with qt_eval_result_free). Restores model->training.
qt_status qt_evaluate(qt_model *model, qt_dataloader *val, int batches, qt_eval_result *out);
void qt_eval_result_free(qt_eval_result *r);

// One JSON object (no newline) with step, val_loss, val_ppl, max_inf_norm, avg_kurtosis and
// the per-layer metrics.
void qt_eval_write_json(const qt_eval_result *r, int step, FILE *f);
// A human-readable table of the same.
void qt_eval_print(const qt_eval_result *r, FILE *f);

#endif

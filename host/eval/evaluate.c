// evaluate.c: validation loss and outlier metrics; see qtrain/evaluate.h for definitions.
#include "qtrain/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void qt_outlier_stats(const float *x, size_t n, double *inf_norm, double *kurtosis) {
    double sum = 0.0, amax = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        double a = fabs((double)x[i]);
        if (a > amax) amax = a;
    }
    double mu = n ? sum / (double)n : 0.0;
    double m2 = 0.0, m4 = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - mu, d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
    }
    double var_unbiased = n > 1 ? m2 / (double)(n - 1) : 0.0;
    *inf_norm = amax;
    *kurtosis = n ? (m4 / (double)n) / (var_unbiased * var_unbiased + 1e-6) : 0.0;
}

// Adds each sequence's stats of a (B, T, C) device tensor to the running sums: over its (T x C)
// values, or for the encoder over its (len_b x C) real tokens (lens (B); NULL: all T).
static qt_status accumulate_stats(const qt_model *m, const void *dev, float *host, int B, int T,
                                  const int *lens, double *inf_sum, double *kurt_sum) {
    size_t TC = (size_t)T * m->cfg.d_model;
    QT_TRY(m->be->ops->to_host_f32(m->be->ctx, host, dev, (size_t)B * TC));
    for (int b = 0; b < B; b++) {
        double inf, kurt;
        const size_t n = lens ? (size_t)lens[b] * m->cfg.d_model : TC;
        qt_outlier_stats(host + (size_t)b * TC, n, &inf, &kurt);
        *inf_sum += inf;
        *kurt_sum += kurt;
    }
    return QT_OK;
}

// PAPERS.md section 4: the max over the measured modules. In a pre-LN model that is the layer
// outputs (the residual stream, OPT's figure: the branches add into it); in a post-LN encoder
// the layer output is a LayerNorm's, bounded by its gain, and BERT's outliers show in the
// branch outputs that feed it (the FFN's above all), so all three.
double qt_layer_inf_norm(const qt_layer_metrics *lm, qt_norm_position norm_position) {
    if (norm_position != QT_NORM_POST) return lm->inf_norm_out;
    return fmax(lm->inf_norm_out, fmax(lm->inf_norm_attn, lm->inf_norm_ffn));
}

qt_status qt_evaluate(qt_model *m, qt_dataloader *val, int batches, qt_eval_result *out) {
    memset(out, 0, sizeof *out);
    int L = m->cfg.n_layer, B = m->B, T = m->T;
    if (batches < 1) return qt_error(QT_ERR_ARG, "eval batches = %d must be >= 1", batches);
    size_t N = (size_t)B * T;
    size_t host_floats = N * (size_t)m->cfg.d_model; // also holds the (N, H or C) gate values
    const int G = m->gate_cols;
    int *inputs = malloc(N * sizeof(int)), *targets = malloc(N * sizeof(int));
    float *host = malloc(host_floats * sizeof(float));
    out->layers = calloc((size_t)L, sizeof(qt_layer_metrics));
    out->n_layer = L;
    long long *zeros = calloc((size_t)L, sizeof(long long));
    long long *attended = calloc((size_t)L, sizeof(long long));
    double *gate_sum = calloc((size_t)L, sizeof(double));
    qt_status st = QT_OK;
    if (!inputs || !targets || !host || !out->layers || !zeros || !attended || !gate_sum) {
        st = qt_error(QT_ERR_OOM, "cannot allocate evaluation buffers");
        goto out;
    }
    int was_training = m->training;
    m->training = 0;
    qt_dataloader_rewind(val);
    double loss_sum = 0.0;
    long long samples = 0;
    for (int bi = 0; bi < batches && st == QT_OK; bi++) {
        st = qt_dataloader_next(val, inputs, targets);
        const int *lens = qt_dataloader_lens(val); // the encoder's; NULL for a decoder
        if (st == QT_OK && m->cfg.arch == QT_ARCH_BERT)
            st = qt_model_set_encoder_batch(m, lens, qt_dataloader_types(val), B, T);
        if (st != QT_OK) break;
        float loss = 0.0f;
        st = qt_model_forward(m, inputs, targets, B, T, &loss);
        if (st != QT_OK) break;
        loss_sum += loss * (double)m->fwd_count;
        out->tokens += m->fwd_count;
        samples += B;
        for (int l = 0; l < L && st == QT_OK; l++) {
            const qt_layer_acts *a = &m->acts[l];
            qt_layer_metrics *lm = &out->layers[l];
            // the layer's output: resid2, or LN2(resid2) in a post-LN encoder
            const void *out = m->cfg.norm_position == QT_NORM_POST ? a->ln2.y : a->resid2;
            st = accumulate_stats(m, out, host, B, T, lens, &lm->inf_norm_out,
                                  &lm->kurtosis_out);
            if (st == QT_OK)
                st = accumulate_stats(m, a->attn_out, host, B, T, lens, &lm->inf_norm_attn,
                                      &lm->kurtosis_attn);
            if (st == QT_OK)
                st = accumulate_stats(m, a->ffn_out, host, B, T, lens, &lm->inf_norm_ffn,
                                      &lm->kurtosis_ffn);
            long long z = 0, att = 0; // the attended probabilities exactly 0 (clipping)
            if (st == QT_OK) st = qt_model_zero_probs(m, l, &z, &att);
            zeros[l] += z;
            attended[l] += att;
            if (st == QT_OK && a->gate) {
                st = m->be->ops->to_host(m->be->ctx, host, a->gate, N * G * sizeof(float));
                for (size_t i = 0; st == QT_OK && i < N * G; i++)
                    gate_sum[l] += host[i];
            }
        }
    }
    m->training = was_training;
    if (st != QT_OK) goto out;
    out->val_loss = out->tokens ? loss_sum / (double)out->tokens : 0.0;
    out->val_ppl = exp(out->val_loss);
    double kurt_total = 0.0;
    for (int l = 0; l < L; l++) {
        qt_layer_metrics *lm = &out->layers[l];
        lm->inf_norm_out /= (double)samples;
        lm->kurtosis_out /= (double)samples;
        lm->inf_norm_attn /= (double)samples;
        lm->kurtosis_attn /= (double)samples;
        lm->inf_norm_ffn /= (double)samples;
        lm->kurtosis_ffn /= (double)samples;
        lm->zero_frac = attended[l] ? (double)zeros[l] / (double)attended[l] : 0.0;
        lm->gate_mean = m->acts[l].gate ? gate_sum[l] / ((double)batches * (double)N * G) : NAN;
        const double layer_max = qt_layer_inf_norm(lm, m->cfg.norm_position);
        if (layer_max > out->max_inf_norm) out->max_inf_norm = layer_max;
        kurt_total += lm->kurtosis_out + lm->kurtosis_attn + lm->kurtosis_ffn;
    }
    out->avg_kurtosis = L ? kurt_total / (3.0 * L) : 0.0;
out:
    free(inputs);
    free(targets);
    free(host);
    free(zeros);
    free(attended);
    free(gate_sum);
    if (st != QT_OK) qt_eval_result_free(out);
    return st;
}

void qt_eval_result_free(qt_eval_result *r) {
    free(r->layers);
    r->layers = NULL;
    r->n_layer = 0;
}

// JSON has no NaN: an absent value is written as null.
static void json_number(FILE *f, double x) {
    if (isfinite(x))
        fprintf(f, "%.6g", x);
    else
        fputs("null", f);
}

void qt_eval_write_json(const qt_eval_result *r, int step, FILE *f) {
    fprintf(f, "{\"type\":\"eval\",\"step\":%d,\"val_loss\":", step);
    json_number(f, r->val_loss);
    fputs(",\"val_ppl\":", f);
    json_number(f, r->val_ppl);
    fputs(",\"max_inf_norm\":", f);
    json_number(f, r->max_inf_norm);
    fputs(",\"avg_kurtosis\":", f);
    json_number(f, r->avg_kurtosis);
    fprintf(f, ",\"tokens\":%lld,\"layers\":[", r->tokens);
    for (int l = 0; l < r->n_layer; l++) {
        const qt_layer_metrics *lm = &r->layers[l];
        const char *keys[] = {"inf_norm_out", "kurtosis_out", "inf_norm_attn", "kurtosis_attn",
                              "inf_norm_ffn", "kurtosis_ffn", "zero_frac",    "gate_mean"};
        double vals[] = {lm->inf_norm_out, lm->kurtosis_out, lm->inf_norm_attn, lm->kurtosis_attn,
                         lm->inf_norm_ffn, lm->kurtosis_ffn, lm->zero_frac,     lm->gate_mean};
        fprintf(f, "%s{\"layer\":%d", l ? "," : "", l);
        for (int k = 0; k < 8; k++) {
            fprintf(f, ",\"%s\":", keys[k]);
            json_number(f, vals[k]);
        }
        fputc('}', f);
    }
    fputs("]}", f);
}

void qt_eval_print(const qt_eval_result *r, FILE *f) {
    fprintf(f, "val_loss %.4f | val_ppl %.2f | max_inf_norm %.2f | avg_kurtosis %.2f (%lld tokens)\n",
            r->val_loss, r->val_ppl, r->max_inf_norm, r->avg_kurtosis, r->tokens);
    fprintf(f, "layer | inf_norm out  attn   ffn | kurtosis out   attn    ffn | zero_frac | gate_mean\n");
    for (int l = 0; l < r->n_layer; l++) {
        const qt_layer_metrics *lm = &r->layers[l];
        fprintf(f, "%5d | %8.2f %6.2f %6.2f | %12.2f %6.2f %6.2f | %9.4f | ", l, lm->inf_norm_out,
                lm->inf_norm_attn, lm->inf_norm_ffn, lm->kurtosis_out, lm->kurtosis_attn,
                lm->kurtosis_ffn, lm->zero_frac);
        if (isnan(lm->gate_mean))
            fprintf(f, "        -\n");
        else
            fprintf(f, "%9.4f\n", lm->gate_mean);
    }
}

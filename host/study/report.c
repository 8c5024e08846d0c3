// report.c: the study's report: results.md (the table of mean and spread over seeds per
// variant, and the per-layer infinity norms) and metrics.json (every run's evaluation and
// training series, the aggregates), both written atomically. The spread is the sample
// standard deviation over the seeds (n - 1 in the denominator); with one seed there is none.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/io/json.h"
#include "qtrain/names.h"
#include "study_internal.h"

typedef struct {
    const char *key;   // in metrics.json
    const char *label; // the table's column
    const char *fmt;   // one value
    double (*get)(const study_run *r);
} metric;

static double val_loss(const study_run *r) { return r->eval.val_loss; }
static double val_ppl(const study_run *r) { return r->eval.val_ppl; }
static double max_inf_norm(const study_run *r) { return r->eval.max_inf_norm; }
static double avg_kurtosis(const study_run *r) { return r->eval.avg_kurtosis; }
static double fake_ppl(const study_run *r) { return r->fake_ppl; }
static double int8_ppl(const study_run *r) { return r->int8_ppl; }
// How much W8A8 through the INT8 GEMM costs over the same run's full precision, in percent.
static double int8_cost(const study_run *r) { return 100.0 * (r->int8_ppl - r->fp_ppl) / r->fp_ppl; }

static const metric metrics[] = {
    {"val_loss", "val loss", "%.4f", val_loss},
    {"val_ppl", "val ppl", "%.2f", val_ppl},
    {"max_inf_norm", "max inf-norm", "%.2f", max_inf_norm},
    {"avg_kurtosis", "avg kurtosis", "%.2f", avg_kurtosis},
    {"w8a8_fake_ppl", "W8A8 ppl (fake-quant)", "%.2f", fake_ppl},
    {"w8a8_int8_ppl", "W8A8 ppl (INT8 GEMM)", "%.2f", int8_ppl},
    {"w8a8_int8_vs_fp_pct", "INT8 vs FP ppl (%)", "%+.2f", int8_cost},
};
#define N_METRICS ((int)(sizeof metrics / sizeof metrics[0]))

// Mean and sample standard deviation (NAN for one value) of get() over variant v's runs.
static void mean_sd(const study_report *rep, int v, double (*get)(const study_run *),
                    double *mean, double *sd) {
    int n = rep->seeds;
    double sum = 0.0, sq = 0.0;
    for (int s = 0; s < n; s++) sum += get(&rep->runs[v * n + s]);
    *mean = sum / n;
    for (int s = 0; s < n; s++) {
        double d = get(&rep->runs[v * n + s]) - *mean;
        sq += d * d;
    }
    *sd = n > 1 ? sqrt(sq / (n - 1)) : NAN;
}

static double layer_inf_norm_mean(const study_report *rep, int v, int l) {
    double sum = 0.0;
    for (int s = 0; s < rep->seeds; s++) {
        const study_run *r = &rep->runs[v * rep->seeds + s];
        sum += qt_layer_inf_norm(&r->eval.layers[l], r->cfg.norm_position);
    }
    return sum / rep->seeds;
}

static void choose(study_report *rep) {
    rep->reference = 0;
    for (int v = 0; v < rep->n_variants; v++)
        if (strcmp(rep->runs[v * rep->seeds].variant->name, "vanilla") == 0) rep->reference = v;
    rep->best = -1;
    double best = INFINITY, mean, sd;
    for (int v = 0; v < rep->n_variants; v++) {
        if (v == rep->reference) continue;
        mean_sd(rep, v, max_inf_norm, &mean, &sd);
        if (mean < best) {
            best = mean;
            rep->best = v;
        }
    }
    // The layer where the reference's outliers are largest: there the variants differ most.
    const study_run *ref = &rep->runs[rep->reference * rep->seeds];
    rep->hist_layer = 0;
    const qt_norm_position np = ref->cfg.norm_position;
    for (int l = 1; l < ref->eval.n_layer; l++)
        if (qt_layer_inf_norm(&ref->eval.layers[l], np) >
            qt_layer_inf_norm(&ref->eval.layers[rep->hist_layer], np))
            rep->hist_layer = l;
}

static void cell(FILE *f, const char *fmt, double mean, double sd) {
    fputs(" ", f);
    if (isnan(mean)) { // not measured (the W8A8 columns of a run trained quantized)
        fputs("n/a |", f);
        return;
    }
    fprintf(f, fmt, mean);
    if (isfinite(sd)) {
        // A spread has no sign: "%+.2f" becomes "%.2f".
        char plain[16];
        snprintf(plain, sizeof plain, "%%%s", fmt[1] == '+' ? fmt + 2 : fmt + 1);
        fputs(" ± ", f);
        fprintf(f, plain, sd);
    }
    fputs(" |", f);
}

static void write_markdown(const study_report *rep, FILE *f) {
    const study_run *r0 = &rep->runs[0];
    const qt_config *c = &r0->cfg;
    long long tokens = (long long)c->max_steps * c->batch_size * c->seq_len * c->grad_accum;
    fprintf(f, "# qtrain study\n\n");
    fprintf(f, "Base config: %s. Each run: %d steps of %d x %d tokens (x %d accumulation), %lld "
            "training tokens, data %s. Seeds: train.seed %llu to %llu.\n",
            rep->config_label, c->max_steps, c->batch_size, c->seq_len, c->grad_accum, tokens,
            c->data_dir, (unsigned long long)(c->seed - (uint64_t)r0->seed_index),
            (unsigned long long)(c->seed - (uint64_t)r0->seed_index + (uint64_t)rep->seeds - 1));
    if (c->quant_mode != QT_QMODE_NONE)
        fprintf(f, "Evaluation: %lld validation tokens per run. Trained quantized (quant.mode = "
                "%s): the model's own forward quantizes, so val ppl is the quantized model's; "
                "W8A8 post-training quantization does not apply (n/a).\n\n",
                r0->eval.tokens, qt_name(&qt_quant_mode_names, c->quant_mode));
    else
        fprintf(f, "Evaluation: %lld validation tokens per run; W8A8 post-training quantization "
                "(weights symmetric per tensor, activations asymmetric per tensor, running "
                "min-max ranges), fake-quantized and through the INT8 GEMM (%s).\n\n",
                r0->eval.tokens, r0->int8_gemm[0] ? r0->int8_gemm : "-");
    if (rep->seeds > 1)
        fprintf(f, "Mean ± sample standard deviation over %d seeds.\n\n", rep->seeds);
    else
        fprintf(f, "One seed per variant: no spread.\n\n");
    fputs("| variant | seeds |", f);
    for (int k = 0; k < N_METRICS; k++) fprintf(f, " %s |", metrics[k].label);
    fputs("\n|---|---|", f);
    for (int k = 0; k < N_METRICS; k++) fputs("---|", f);
    fputc('\n', f);
    for (int v = 0; v < rep->n_variants; v++) {
        fprintf(f, "| %s | %d |", rep->runs[v * rep->seeds].variant->name, rep->seeds);
        for (int k = 0; k < N_METRICS; k++) {
            double mean, sd;
            mean_sd(rep, v, metrics[k].get, &mean, &sd);
            cell(f, metrics[k].fmt, mean, sd);
        }
        fputc('\n', f);
    }
    int L = r0->eval.n_layer;
    if (r0->cfg.norm_position == QT_NORM_POST)
        fputs("\nInfinity norm of each layer (the largest of its output's, its attention output's "
              "and its FFN output's: a post-LN layer's output is a LayerNorm's), mean over "
              "seeds:\n\n| variant |", f);
    else
        fputs("\nInfinity norm of each layer's output (the residual stream), mean over seeds:"
              "\n\n| variant |", f);
    for (int l = 0; l < L; l++) fprintf(f, " layer %d |", l);
    fputs("\n|---|", f);
    for (int l = 0; l < L; l++) fputs("---|", f);
    fputc('\n', f);
    for (int v = 0; v < rep->n_variants; v++) {
        fprintf(f, "| %s |", rep->runs[v * rep->seeds].variant->name);
        for (int l = 0; l < L; l++) fprintf(f, " %.2f |", layer_inf_norm_mean(rep, v, l));
        fputc('\n', f);
    }
    fputc('\n', f);
    if (rep->best >= 0)
        fprintf(f, "Lowest mean max inf-norm other than %s: **%s**. ",
                rep->runs[rep->reference * rep->seeds].variant->name,
                rep->runs[rep->best * rep->seeds].variant->name);
    fprintf(f, "Plots: plots/loss.png (training and validation loss), plots/outliers.png (max "
            "inf-norm and average kurtosis over training), plots/layer_inf_norm.png, "
            "plots/hist.png (layer %d's %s values, seed 0).\n\nVariants:\n\n", rep->hist_layer,
            r0->cfg.norm_position == QT_NORM_POST ? "FFN output" : "output");
    for (int v = 0; v < rep->n_variants; v++) {
        const qt_study_variant *var = rep->runs[v * rep->seeds].variant;
        fprintf(f, "- %s: %s (", var->name, var->what);
        for (int a = 0; var->assignments[a]; a++) fprintf(f, "%s%s", a ? ", " : "", var->assignments[a]);
        fputs(")\n", f);
    }
}

static void json_number(FILE *f, double x) {
    if (isfinite(x))
        fprintf(f, "%.9g", x);
    else
        fputs("null", f);
}

static void json_string(FILE *f, const char *s) { qt_json_write_string(f, s, strlen(s)); }

static void write_json(const study_report *rep, FILE *f) {
    fputs("{\"study\":{\"config\":", f);
    json_string(f, rep->config_label);
    fprintf(f, ",\"seeds\":%d,\"steps\":%d,\"variants\":[", rep->seeds, rep->runs[0].cfg.max_steps);
    for (int v = 0; v < rep->n_variants; v++)
        fprintf(f, "%s\"%s\"", v ? "," : "", rep->runs[v * rep->seeds].variant->name);
    fprintf(f, "],\"reference\":\"%s\",\"best\":", rep->runs[rep->reference * rep->seeds].variant->name);
    if (rep->best >= 0)
        fprintf(f, "\"%s\"", rep->runs[rep->best * rep->seeds].variant->name);
    else
        fputs("null", f);
    fprintf(f, ",\"hist_layer\":%d},\n\"variants\":[", rep->hist_layer);
    for (int v = 0; v < rep->n_variants; v++) {
        fprintf(f, "%s{\"name\":\"%s\",\"seeds\":%d", v ? ",\n" : "",
                rep->runs[v * rep->seeds].variant->name, rep->seeds);
        for (int pass = 0; pass < 2; pass++) {
            fprintf(f, ",\"%s\":{", pass ? "std" : "mean");
            for (int k = 0; k < N_METRICS; k++) {
                double mean, sd;
                mean_sd(rep, v, metrics[k].get, &mean, &sd);
                fprintf(f, "%s\"%s\":", k ? "," : "", metrics[k].key);
                json_number(f, pass ? sd : mean);
            }
            fputc('}', f);
        }
        fputs(",\"layer_inf_norm_out\":[", f);
        for (int l = 0; l < rep->runs[0].eval.n_layer; l++) {
            if (l) fputc(',', f);
            json_number(f, layer_inf_norm_mean(rep, v, l));
        }
        fputs("]}", f);
    }
    fputs("],\n\"runs\":[", f);
    int n_runs = rep->n_variants * rep->seeds;
    for (int i = 0; i < n_runs; i++) {
        const study_run *r = &rep->runs[i];
        fprintf(f, "%s{\"name\":\"%s\",\"variant\":\"%s\",\"seed\":%llu,\"dir\":", i ? ",\n" : "",
                r->name, r->variant->name, (unsigned long long)r->cfg.seed);
        json_string(f, r->dir);
        for (int k = 0; k < N_METRICS; k++) {
            fprintf(f, ",\"%s\":", metrics[k].key);
            json_number(f, metrics[k].get(r));
        }
        fputs(",\"w8a8_fp_ppl\":", f);
        json_number(f, r->fp_ppl);
        fprintf(f, ",\"int8_gemm\":\"%s\",\"train_seconds\":", r->int8_gemm);
        json_number(f, r->train_seconds);
        fputs(",\"eval_seconds\":", f);
        json_number(f, r->eval_seconds);
        fputs(",\"final\":", f);
        qt_eval_write_json(&r->eval, r->cfg.max_steps, f);
        fputs(",\"train\":[", f);
        for (int t = 0; t < r->n_train; t++) {
            fprintf(f, "%s[%d,", t ? "," : "", r->train[t].step);
            json_number(f, r->train[t].loss);
            fputc(']', f);
        }
        fputs("],\"evals\":[", f);
        for (int t = 0; t < r->n_evals; t++) {
            const study_eval_point *p = &r->evals[t];
            fprintf(f, "%s[%d,", t ? "," : "", p->step);
            json_number(f, p->val_loss);
            fputc(',', f);
            json_number(f, p->max_inf_norm);
            fputc(',', f);
            json_number(f, p->avg_kurtosis);
            fputc(']', f);
        }
        fputs("]}", f);
    }
    fputs("],\n\"series_columns\":{\"train\":[\"step\",\"loss\"],\"evals\":[\"step\",\"val_loss\","
          "\"max_inf_norm\",\"avg_kurtosis\"]}}\n", f);
}

// Formats with `write` into out_dir/name, atomically.
static qt_status write_file(const study_report *rep, const char *name,
                            void (*write)(const study_report *, FILE *), FILE *echo) {
    char *text = NULL, path[1200];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return qt_error(QT_ERR_OOM, "cannot allocate %s", name);
    write(rep, f);
    if (fclose(f) != 0) {
        free(text);
        return qt_error(QT_ERR_OOM, "cannot format %s", name);
    }
    snprintf(path, sizeof path, "%s/%s", rep->out_dir, name);
    qt_status st = study_write_text(path, text, len);
    if (st == QT_OK && echo) fwrite(text, 1, len, echo);
    free(text);
    return st;
}

qt_status study_write_report(study_report *rep, FILE *table_out) {
    choose(rep);
    QT_TRY(write_file(rep, "results.md", write_markdown, table_out));
    return write_file(rep, "metrics.json", write_json, NULL);
}

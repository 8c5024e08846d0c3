// run_eval.c: the study's evaluation of one finished run, written to <run>/eval.json and read
// back from it: the full-precision evaluation (qtrain/evaluate.h: loss, perplexity, max
// inf-norm, average kurtosis, per-layer statistics), the histogram of every layer's output
// values on the fixed grid of study_internal.h, and W8A8 post-training quantization
// (qtrain/ptq.h: FP, fake-quantized and INT8-GEMM perplexity). Everything in fp32. A run
// trained quantized (quant.mode qat, bitnet, dqt) has no post-training step: its own forward
// quantizes, so its perplexity is the quantized model's, and the W8A8 entries are null.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/io/clock.h"
#include "host/io/file.h"
#include "host/io/json.h"
#include "qtrain/names.h"
#include "qtrain/ptq.h"
#include "qtrain/trainer.h"
#include "study_internal.h"

int study_hist_bin(float x) {
    double a = fabs((double)x);
    if (!(a >= ldexp(1.0, HIST_MIN_EXP))) return HIST_HALF; // also NaN: never silently lost
    int k = (int)floor((log2(a) - HIST_MIN_EXP) * HIST_BINS_PER_OCTAVE);
    if (k >= HIST_HALF) k = HIST_HALF - 1;
    if (k < 0) k = 0;
    return x > 0 ? HIST_HALF + 1 + k : HIST_HALF - 1 - k;
}

void study_hist_bounds(int i, double *lo, double *hi) {
    if (i == HIST_HALF) {
        *lo = -ldexp(1.0, HIST_MIN_EXP);
        *hi = ldexp(1.0, HIST_MIN_EXP);
        return;
    }
    int k = i > HIST_HALF ? i - HIST_HALF - 1 : HIST_HALF - 1 - i;
    double a = exp2(HIST_MIN_EXP + (double)k / HIST_BINS_PER_OCTAVE);
    double b = exp2(HIST_MIN_EXP + (double)(k + 1) / HIST_BINS_PER_OCTAVE);
    *lo = i > HIST_HALF ? a : -b;
    *hi = i > HIST_HALF ? b : -a;
}

// The layer outputs (B, T, C) of `batches` validation batches, binned per layer into
// hist (L, HIST_BINS). Dropout off, as in qt_evaluate. A post-LN encoder's layer output is a
// LayerNorm's, bounded by its gain; there the FFN output that feeds it is binned instead, the
// module where its outliers show (qt_evaluate's max inf-norm), over the real tokens only.
static qt_status layer_histograms(qt_model *m, qt_dataloader *val, int batches, long long *hist) {
    int B = m->B, T = m->T, C = m->cfg.d_model, L = m->cfg.n_layer;
    size_t N = (size_t)B * T;
    int *inputs = malloc(N * sizeof(int)), *targets = malloc(N * sizeof(int));
    float *host = malloc(N * (size_t)C * sizeof(float));
    qt_status st = inputs && targets && host
                       ? QT_OK
                       : qt_error(QT_ERR_OOM, "cannot allocate the histogram buffers");
    int was_training = m->training;
    m->training = 0;
    qt_dataloader_rewind(val);
    for (int b = 0; st == QT_OK && b < batches; b++) {
        st = qt_dataloader_next(val, inputs, targets);
        const int *lens = qt_dataloader_lens(val); // the encoder's; NULL for a decoder
        if (st == QT_OK && m->cfg.arch == QT_ARCH_BERT)
            st = qt_model_set_encoder_batch(m, lens, qt_dataloader_types(val), B, T);
        float loss = 0.0f;
        if (st == QT_OK) st = qt_model_forward(m, inputs, NULL, B, T, &loss);
        const int post_ln = m->cfg.norm_position == QT_NORM_POST;
        for (int l = 0; st == QT_OK && l < L; l++) {
            const void *x = post_ln ? m->acts[l].ffn_out : m->acts[l].resid2;
            st = m->be->ops->to_host_f32(m->be->ctx, host, x, N * (size_t)C);
            long long *h = hist + (size_t)l * HIST_BINS;
            for (int b = 0; st == QT_OK && b < B; b++) {
                const float *row = host + (size_t)b * T * C;
                const size_t n = (size_t)(lens ? lens[b] : T) * (size_t)C;
                for (size_t i = 0; i < n; i++) h[study_hist_bin(row[i])]++;
            }
        }
    }
    m->training = was_training;
    free(inputs);
    free(targets);
    free(host);
    return st;
}

static void json_number(FILE *f, double x) {
    if (isfinite(x))
        fprintf(f, "%.9g", x);
    else
        fputs("null", f);
}

static qt_status write_eval_json(const study_run *r, int eval_batches, int calib_batches) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return qt_error(QT_ERR_OOM, "cannot allocate %s/eval.json", r->dir);
    fprintf(f, "{\"run\":\"%s\",\"variant\":\"%s\",\"seed\":%llu,\"steps\":%d,", r->name,
            r->variant->name, (unsigned long long)r->cfg.seed, r->cfg.max_steps);
    fprintf(f, "\"eval_batches\":%d,\"calib_batches\":%d,\"eval_seconds\":%.3f,\"eval\":",
            eval_batches, calib_batches, r->eval_seconds);
    qt_eval_write_json(&r->eval, r->cfg.max_steps, f);
    fprintf(f, ",\"ptq\":{\"quant\":\"%s\",\"fp_ppl\":",
            r->cfg.quant_mode == QT_QMODE_NONE ? "w8a8" : "none: trained quantized");
    json_number(f, r->fp_ppl);
    fputs(",\"fake_ppl\":", f);
    json_number(f, r->fake_ppl);
    fputs(",\"int8_ppl\":", f);
    json_number(f, r->int8_ppl);
    fprintf(f, ",\"int8_gemm\":\"%s\"},", r->int8_gemm);
    fprintf(f, "\"hist\":{\"bins_per_octave\":%d,\"min_exp\":%d,\"max_exp\":%d,\"layers\":[",
            HIST_BINS_PER_OCTAVE, HIST_MIN_EXP, HIST_MAX_EXP);
    for (int l = 0; l < r->eval.n_layer; l++) {
        fputs(l ? ",[" : "[", f);
        for (int i = 0; i < HIST_BINS; i++)
            fprintf(f, "%s%lld", i ? "," : "", r->hist[(size_t)l * HIST_BINS + i]);
        fputc(']', f);
    }
    fputs("]}}\n", f);
    if (fclose(f) != 0) {
        free(text);
        return qt_error(QT_ERR_OOM, "cannot format %s/eval.json", r->dir);
    }
    char path[1300];
    snprintf(path, sizeof path, "%s/eval.json", r->dir);
    qt_status st = study_write_text(path, text, len);
    free(text);
    return st;
}

qt_status study_eval_run(study_run *r, qt_backend *be, int eval_batches, int calib_batches,
                         int quiet) {
    double t0 = qt_clock_seconds();
    study_run_free_results(r);
    qt_config cfg = r->cfg;
    cfg.precision = QT_PRECISION_FP32;
    char ckpt[1300];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.bin", r->dir);
    // trained quantized: the forward already quantizes, and PTQ takes full-precision models
    const int trained_quantized = cfg.quant_mode != QT_QMODE_NONE;
    if (!quiet && trained_quantized)
        fprintf(stderr, "qtrain: study: evaluating %s (%d validation batches; quant.mode = %s: "
                "its forward is the quantized evaluation, no W8A8 post-training step)\n",
                r->name, eval_batches, qt_name(&qt_quant_mode_names, cfg.quant_mode));
    else if (!quiet)
        fprintf(stderr, "qtrain: study: evaluating %s (%d validation batches, W8A8 calibrated "
                "on %d training batches)\n", r->name, eval_batches, calib_batches);
    qt_model model;
    qt_dataloader *val = NULL, *calib = NULL;
    QT_TRY(qt_model_init(&model, &cfg, be, cfg.batch_size, cfg.seq_len));
    qt_status st = qt_train_state_load(ckpt, &model, NULL, NULL);
    if (st == QT_OK)
        st = qt_dataloader_open_for(&val, &cfg, "val", 0); // masked-LM for an encoder
    if (st == QT_OK) st = qt_dataloader_open_for(&calib, &cfg, "train", 0);
    if (st == QT_OK) st = qt_evaluate(&model, val, eval_batches, &r->eval);
    if (st == QT_OK) {
        r->hist = calloc((size_t)cfg.n_layer * HIST_BINS, sizeof *r->hist);
        st = r->hist ? layer_histograms(&model, val, eval_batches, r->hist)
                     : qt_error(QT_ERR_OOM, "cannot allocate the histograms");
    }
    qt_ptq_result pr = {.fp_ppl = r->eval.val_ppl, .fake_ppl = NAN, .int8_ppl = NAN};
    if (st == QT_OK && trained_quantized) {
        pr.fp_ppl = r->eval.val_ppl; // the run's own (quantized) forward
    } else if (st == QT_OK) {
        qt_ptq_config pc = qt_ptq_config_default();
        pc.calib_batches = calib_batches;
        pc.eval_batches = eval_batches;
        st = qt_ptq_evaluate(&model, calib, val, &pc, &pr);
    }
    if (st == QT_OK) {
        r->fp_ppl = pr.fp_ppl;
        r->fake_ppl = pr.fake_ppl;
        r->int8_ppl = pr.int8_ppl;
        snprintf(r->int8_gemm, sizeof r->int8_gemm, "%s", pr.int8_gemm ? pr.int8_gemm : "");
        r->eval_seconds = qt_clock_seconds() - t0;
        st = write_eval_json(r, eval_batches, calib_batches);
    }
    // The file is the one source of the run's results: what a later session reads back is
    // what this one reports, to the digit.
    if (st == QT_OK) st = study_read_eval(r);
    if (val) qt_dataloader_free(val);
    if (calib) qt_dataloader_free(calib);
    qt_model_free(&model);
    if (st != QT_OK) study_run_free_results(r);
    return st;
}

// ---- reading eval.json back ----------------------------------------------------------------

static qt_status need(const qt_json *obj, const char *key, qt_json_type type, const char *path,
                      const qt_json **out) {
    *out = qt_json_get(obj, key);
    if (!*out || ((*out)->type != type && !(type == QT_JSON_NUMBER && (*out)->type == QT_JSON_NULL)))
        return qt_error(QT_ERR_FORMAT, "%s: \"%s\" is missing or not a %s", path, key,
                        qt_json_type_name(type));
    return QT_OK;
}

static qt_status number(const qt_json *obj, const char *key, const char *path, double *x) {
    const qt_json *v;
    QT_TRY(need(obj, key, QT_JSON_NUMBER, path, &v));
    *x = v->type == QT_JSON_NULL ? NAN : v->number;
    return QT_OK;
}

static qt_status parse_eval(study_run *r, const qt_json *root, const char *path) {
    const qt_json *ev, *ptq, *hist, *layers, *hl, *s;
    double x;
    QT_TRY(need(root, "eval", QT_JSON_OBJECT, path, &ev));
    QT_TRY(need(root, "ptq", QT_JSON_OBJECT, path, &ptq));
    QT_TRY(need(root, "hist", QT_JSON_OBJECT, path, &hist));
    QT_TRY(number(root, "eval_seconds", path, &r->eval_seconds));
    QT_TRY(number(ev, "val_loss", path, &r->eval.val_loss));
    QT_TRY(number(ev, "val_ppl", path, &r->eval.val_ppl));
    QT_TRY(number(ev, "max_inf_norm", path, &r->eval.max_inf_norm));
    QT_TRY(number(ev, "avg_kurtosis", path, &r->eval.avg_kurtosis));
    QT_TRY(number(ev, "tokens", path, &x));
    r->eval.tokens = (long long)x;
    QT_TRY(number(ptq, "fp_ppl", path, &r->fp_ppl));
    QT_TRY(number(ptq, "fake_ppl", path, &r->fake_ppl));
    QT_TRY(number(ptq, "int8_ppl", path, &r->int8_ppl));
    QT_TRY(need(ptq, "int8_gemm", QT_JSON_STRING, path, &s));
    snprintf(r->int8_gemm, sizeof r->int8_gemm, "%s", s->str);
    QT_TRY(need(ev, "layers", QT_JSON_ARRAY, path, &layers));
    int L = r->cfg.n_layer;
    if (layers->n != L)
        return qt_error(QT_ERR_FORMAT, "%s: %d layers, the run's config has %d", path, layers->n, L);
    r->eval.layers = calloc((size_t)L, sizeof *r->eval.layers);
    r->hist = calloc((size_t)L * HIST_BINS, sizeof *r->hist);
    if (!r->eval.layers || !r->hist) return qt_error(QT_ERR_OOM, "cannot allocate %s", path);
    r->eval.n_layer = L;
    for (int l = 0; l < L; l++) {
        const qt_json *o = &layers->items[l];
        qt_layer_metrics *m = &r->eval.layers[l];
        QT_TRY(number(o, "inf_norm_out", path, &m->inf_norm_out));
        QT_TRY(number(o, "kurtosis_out", path, &m->kurtosis_out));
        QT_TRY(number(o, "inf_norm_attn", path, &m->inf_norm_attn));
        QT_TRY(number(o, "kurtosis_attn", path, &m->kurtosis_attn));
        QT_TRY(number(o, "inf_norm_ffn", path, &m->inf_norm_ffn));
        QT_TRY(number(o, "kurtosis_ffn", path, &m->kurtosis_ffn));
        QT_TRY(number(o, "zero_frac", path, &m->zero_frac));
        QT_TRY(number(o, "gate_mean", path, &m->gate_mean));
    }
    double bpo, lo, hi;
    QT_TRY(number(hist, "bins_per_octave", path, &bpo));
    QT_TRY(number(hist, "min_exp", path, &lo));
    QT_TRY(number(hist, "max_exp", path, &hi));
    if (bpo != HIST_BINS_PER_OCTAVE || lo != HIST_MIN_EXP || hi != HIST_MAX_EXP)
        return qt_error(QT_ERR_FORMAT, "%s: its histogram grid is not this qtrain's", path);
    QT_TRY(need(hist, "layers", QT_JSON_ARRAY, path, &hl));
    if (hl->n != L) return qt_error(QT_ERR_FORMAT, "%s: %d histograms for %d layers", path, hl->n, L);
    for (int l = 0; l < L; l++) {
        const qt_json *a = &hl->items[l];
        if (a->type != QT_JSON_ARRAY || a->n != HIST_BINS)
            return qt_error(QT_ERR_FORMAT, "%s: histogram %d is not %d counts", path, l, HIST_BINS);
        for (int i = 0; i < HIST_BINS; i++) {
            if (a->items[i].type != QT_JSON_NUMBER || !a->items[i].is_uint)
                return qt_error(QT_ERR_FORMAT, "%s: histogram %d bin %d is not a count", path, l, i);
            r->hist[(size_t)l * HIST_BINS + i] = (long long)a->items[i].uint;
        }
    }
    return QT_OK;
}

qt_status study_read_eval(study_run *r) {
    study_run_free_results(r);
    char path[1300];
    snprintf(path, sizeof path, "%s/eval.json", r->dir);
    uint8_t *text = NULL;
    size_t len = 0;
    QT_TRY(qt_io_read_file(path, "study evaluation", NULL, (size_t)64 << 20, &text, &len));
    qt_json *root = NULL;
    qt_status st = qt_json_parse((const char *)text, len, path, &root);
    if (st == QT_OK) st = parse_eval(r, root, path);
    qt_json_free(root);
    free(text);
    if (st == QT_OK)
        r->evaluated = 1;
    else
        study_run_free_results(r);
    return st;
}

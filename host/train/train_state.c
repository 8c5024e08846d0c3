// train_state.c: training checkpoints on top of the tensor container (qtrain/checkpoint.h).
//
// Entries: "qtrain.meta" u64[4] = {format 1, step, data epoch, data index};
// "qtrain.config" u8[] = the resolved config text (qt_config_write);
// one f32 entry per parameter tensor under its model name; a DQT tensor instead has an i8
// entry of its codes under its name and an f32[1] entry "<name>.scale";
// "optimizer.m", "optimizer.v" f32[n_params] = the AdamW moments, whole arenas;
// "qtrain.loss_scaler" f64[3] = {scale, clean steps, skipped steps};
// "qtrain.tokenizer" u64[2] = {FNV-1a 64 checksum, vocabulary size} of the tokenizer that made
// the training shards (qtrain/tokenizer.h), absent when unknown.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/checkpoint.h"
#include "qtrain/trainer.h"

#define TRAIN_STATE_FORMAT 1

static qt_status config_text(const qt_config *cfg, char **text, size_t *len) {
    FILE *f = open_memstream(text, len);
    if (!f) return qt_error(QT_ERR_OOM, "cannot allocate the config text");
    qt_status st = qt_config_write(cfg, f);
    fclose(f);
    if (st != QT_OK) free(*text);
    return st;
}

// n fp32 values from backend memory; `dev` holds the backend's dtype when `convert`.
static qt_status device_to_host_copy(const qt_model *model, const void *dev, size_t n,
                                     int convert, float **host) {
    *host = malloc(n * sizeof(float) + 1);
    if (!*host) return qt_error(QT_ERR_OOM, "cannot allocate %zu floats for a checkpoint", n);
    const qt_backend *be = model->be;
    qt_status st = convert ? be->ops->to_host_f32(be->ctx, *host, dev, n)
                           : be->ops->to_host(be->ctx, *host, dev, n * sizeof(float));
    if (st != QT_OK) free(*host);
    return st;
}

qt_status qt_train_state_save(const char *path, const qt_model *model, const qt_optimizer *opt,
                              const qt_train_progress *progress) {
    uint64_t meta[4] = {TRAIN_STATE_FORMAT, (uint64_t)progress->step, progress->data_epoch,
                        progress->data_index};
    double scaler[3] = {progress->loss_scale, progress->loss_scale_clean_steps,
                        progress->skipped_steps};
    char *text = NULL;
    size_t text_len = 0;
    QT_TRY(config_text(&model->cfg, &text, &text_len));
    float *params = NULL, *m = NULL, *v = NULL;
    int8_t *codes = NULL;
    uint64_t tok[2] = {progress->tokenizer.checksum, (uint64_t)progress->tokenizer.vocab_size};
    char(*scale_names)[80] = calloc((size_t)model->n_tensors, sizeof *scale_names);
    qt_ckpt_entry *entries = calloc((size_t)2 * model->n_tensors + 6, sizeof *entries);
    qt_status st = entries && scale_names ? QT_OK
                                          : qt_error(QT_ERR_OOM, "cannot allocate checkpoint index");
    // The fp32 master weights when there are any: the parameters are their rounding.
    if (st == QT_OK && opt && opt->master)
        st = device_to_host_copy(model, opt->master, model->n_float_params, 0, &params);
    else if (st == QT_OK)
        st = device_to_host_copy(model, model->params, model->n_float_params, 1, &params);
    if (st == QT_OK && model->n_code_bytes) {
        codes = malloc(model->n_code_bytes);
        st = codes ? model->be->ops->to_host(model->be->ctx, codes, model->codes,
                                             model->n_code_bytes)
                   : qt_error(QT_ERR_OOM, "cannot allocate %zu bytes", model->n_code_bytes);
    }
    if (st == QT_OK && opt) st = device_to_host_copy(model, opt->m, model->n_params, 0, &m);
    if (st == QT_OK && opt) st = device_to_host_copy(model, opt->v, model->n_params, 0, &v);
    if (st == QT_OK) {
        int n = 0;
        entries[n++] = (qt_ckpt_entry){"qtrain.meta", QT_CKPT_U64, 1, {4}, meta};
        entries[n++] = (qt_ckpt_entry){"qtrain.config", QT_CKPT_U8, 1, {(int64_t)text_len}, text};
        entries[n++] = (qt_ckpt_entry){"qtrain.loss_scaler", QT_CKPT_F64, 1, {3}, scaler};
        if (progress->tokenizer.vocab_size)
            entries[n++] = (qt_ckpt_entry){"qtrain.tokenizer", QT_CKPT_U64, 1, {2}, tok};
        for (int i = 0; i < model->n_tensors; i++) {
            const qt_tensor_info *t = &model->tensors[i];
            qt_ckpt_entry *e = &entries[n++];
            e->name = t->name;
            e->dtype = t->quantized ? QT_CKPT_I8 : QT_CKPT_F32;
            e->ndim = t->ndim;
            for (int d = 0; d < t->ndim; d++) e->shape[d] = t->shape[d];
            e->data = t->quantized ? (void *)(codes + t->code_offset)
                                   : (void *)(params + t->param_offset);
            if (t->quantized) {
                snprintf(scale_names[i], sizeof scale_names[i], "%s.scale", t->name);
                entries[n++] = (qt_ckpt_entry){scale_names[i], QT_CKPT_F32, 1, {1},
                                               &model->code_scales[i]};
            }
        }
        if (opt) {
            entries[n++] = (qt_ckpt_entry){"optimizer.m", QT_CKPT_F32, 1,
                                           {(int64_t)model->n_params}, m};
            entries[n++] = (qt_ckpt_entry){"optimizer.v", QT_CKPT_F32, 1,
                                           {(int64_t)model->n_params}, v};
        }
        st = qt_ckpt_write(path, entries, n);
    }
    free(entries);
    free(scale_names);
    free(codes);
    free(params);
    free(m);
    free(v);
    free(text);
    return st;
}

// The config text stored in a checkpoint, over the defaults, through the config module's
// parser (the same as for config files), then validated.
static qt_status parse_config_text(const char *path, const char *text, size_t len,
                                   qt_config *cfg) {
    qt_config_defaults(cfg);
    size_t n = strlen(path) + 32;
    char *source = malloc(n);
    if (!source) return qt_error(QT_ERR_OOM, "cannot allocate a message for %s", path);
    snprintf(source, n, "%s (stored config)", path);
    qt_status st = qt_config_parse(cfg, text, len, source);
    free(source);
    return st == QT_OK ? qt_config_validate(cfg) : st;
}

// The "qtrain.tokenizer" entry: *tok, or vocab_size 0 when the checkpoint has none.
static qt_status read_tokenizer_id(const qt_ckpt *ck, const char *path, qt_tokenizer_id *tok) {
    tok->checksum = 0;
    tok->vocab_size = 0;
    if (!qt_ckpt_find(ck, "qtrain.tokenizer")) return QT_OK;
    uint64_t v[2];
    QT_TRY(qt_ckpt_get(ck, "qtrain.tokenizer", QT_CKPT_U64, 2, v));
    if (v[1] < 257 || v[1] > QT_TOKENIZER_MAX_VOCAB)
        return qt_error(QT_ERR_FORMAT,
                        "%s: qtrain.tokenizer names a vocabulary of %llu tokens, "
                        "outside 257..%d; the file is corrupt",
                        path, (unsigned long long)v[1], QT_TOKENIZER_MAX_VOCAB);
    tok->checksum = v[0];
    tok->vocab_size = (int)v[1];
    return QT_OK;
}

qt_status qt_train_state_read_info(const char *path, qt_config *cfg, qt_tokenizer_id *tok) {
    qt_ckpt *ck = NULL;
    QT_TRY(qt_ckpt_read(path, &ck));
    const qt_ckpt_entry *e = qt_ckpt_find(ck, "qtrain.config");
    qt_status st;
    if (!e || e->dtype != QT_CKPT_U8 || e->ndim != 1)
        st = qt_error(QT_ERR_FORMAT, "%s has no stored config: not a qtrain training checkpoint",
                      path);
    else
        st = parse_config_text(path, e->data, (size_t)e->shape[0], cfg);
    if (st == QT_OK && tok) st = read_tokenizer_id(ck, path, tok);
    qt_ckpt_free(ck);
    return st;
}

qt_status qt_train_state_read_config(const char *path, qt_config *cfg) {
    return qt_train_state_read_info(path, cfg, NULL);
}

qt_status qt_train_state_load(const char *path, qt_model *model, qt_optimizer *opt,
                              qt_train_progress *progress) {
    qt_ckpt *ck = NULL;
    QT_TRY(qt_ckpt_read(path, &ck));
    qt_status st = QT_OK;
    uint64_t meta[4] = {0};
    float *host = malloc(model->n_params * sizeof(float) + 1);
    int8_t *codes = malloc(model->n_code_bytes + 1);
    float *scales = calloc((size_t)model->n_tensors, sizeof(float));
    if (!host || !codes || !scales)
        st = qt_error(QT_ERR_OOM, "cannot allocate %zu floats", model->n_params);
    if (st == QT_OK) st = qt_ckpt_get(ck, "qtrain.meta", QT_CKPT_U64, 4, meta);
    if (st == QT_OK && meta[0] != TRAIN_STATE_FORMAT)
        st = qt_error(QT_ERR_FORMAT, "%s: training state format %llu, this qtrain reads %d", path,
                      (unsigned long long)meta[0], TRAIN_STATE_FORMAT);
    if (st == QT_OK) memset(host, 0, model->n_params * sizeof(float));
    char scale_name[96];
    for (int i = 0; st == QT_OK && i < model->n_tensors; i++) {
        const qt_tensor_info *t = &model->tensors[i];
        if (!t->quantized) {
            st = qt_ckpt_get(ck, t->name, QT_CKPT_F32, t->numel, host + t->param_offset);
            continue;
        }
        // A DQT run resumes from codes only: a float checkpoint of the same model is refused
        // by the dtype check (its weights are not on the grid).
        st = qt_ckpt_get(ck, t->name, QT_CKPT_I8, t->numel, codes + t->code_offset);
        snprintf(scale_name, sizeof scale_name, "%s.scale", t->name);
        if (st == QT_OK) st = qt_ckpt_get(ck, scale_name, QT_CKPT_F32, 1, &scales[i]);
        if (st == QT_OK && !(scales[i] > 0.0f && isfinite(scales[i])))
            st = qt_error(QT_ERR_FORMAT, "%s: %s = %g is not a positive scale", path, scale_name,
                          (double)scales[i]);
    }
    if (st == QT_OK && model->n_float_params)
        st = model->be->ops->to_device_f32(model->be->ctx, model->params, host,
                                           model->n_float_params);
    if (st == QT_OK && model->n_code_bytes)
        st = model->be->ops->to_device(model->be->ctx, model->codes, codes, model->n_code_bytes);
    if (st == QT_OK)
        memcpy(model->code_scales, scales, (size_t)model->n_tensors * sizeof(float));
    if (st == QT_OK && opt && opt->master)
        st = model->be->ops->to_device(model->be->ctx, opt->master, host,
                                       model->n_float_params * sizeof(float));
    if (opt) {
        if (st == QT_OK) st = qt_ckpt_get(ck, "optimizer.m", QT_CKPT_F32, model->n_params, host);
        if (st == QT_OK)
            st = model->be->ops->to_device(model->be->ctx, opt->m, host,
                                           model->n_params * sizeof(float));
        if (st == QT_OK) st = qt_ckpt_get(ck, "optimizer.v", QT_CKPT_F32, model->n_params, host);
        if (st == QT_OK)
            st = model->be->ops->to_device(model->be->ctx, opt->v, host,
                                           model->n_params * sizeof(float));
        if (st == QT_OK) opt->step = (int)meta[1];
    }
    if (st == QT_OK && progress) {
        memset(progress, 0, sizeof *progress);
        progress->step = (int)meta[1];
        progress->data_epoch = meta[2];
        progress->data_index = meta[3];
        st = read_tokenizer_id(ck, path, &progress->tokenizer);
        double scaler[3];
        if (st == QT_OK && qt_ckpt_find(ck, "qtrain.loss_scaler") &&
            qt_ckpt_get(ck, "qtrain.loss_scaler", QT_CKPT_F64, 3, scaler) == QT_OK) {
            progress->loss_scale = scaler[0];
            progress->loss_scale_clean_steps = scaler[1];
            progress->skipped_steps = scaler[2];
        }
    }
    free(host);
    free(codes);
    free(scales);
    qt_ckpt_free(ck);
    return st;
}

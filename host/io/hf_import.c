// hf_import.c: a directory written by qt_hf_export back into a checkpoint (qtrain/hf.h).
//
// The config comes from config.json's "qtrain"."config" (read by qt_config_load, the one parser
// of config text), the parameter table from a model of that config (CPU backend, one token),
// the parameters from model.safetensors through the same mapping as the export (hf_map.h),
// concatenating split rows and dropping OPT's two position rows. With qtrain_state.safetensors
// the checkpoint is rebuilt entry by entry in the exported order, so it is the exported file
// byte for byte; without it, qt_train_state_save writes a checkpoint at step 0 with zero AdamW
// moments (a fresh optimizer: --resume then trains the weights from the first step).
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/io/file.h"
#include "host/io/hf_map.h"
#include "host/io/json.h"
#include "qtrain/checkpoint.h"
#include "qtrain/hf.h"
#include "qtrain/safetensors.h"
#include "qtrain/trainer.h"

#define MAX_CONFIG_JSON (64u << 20)

// Config text -> cfg through a temporary file read by qt_config_load; errors name `what`.
static qt_status config_from_text(const char *text, size_t len, const char *what, qt_config *cfg) {
    const char *tmpdir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/qtrain-import-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return qt_error(QT_ERR_IO,
                        "cannot create a temporary file %s for the stored config: %s; "
                        "set TMPDIR to a writable directory",
                        path, strerror(errno));
    int bad = qt_io_write_all(fd, text, len) != 0;
    bad |= close(fd) != 0;
    qt_status st = bad ? qt_error(QT_ERR_IO, "cannot write %s: %s", path, strerror(errno)) : QT_OK;
    if (st == QT_OK) {
        qt_config_defaults(cfg);
        st = qt_config_load(cfg, path);
        if (st == QT_OK) st = qt_config_validate(cfg);
        if (st != QT_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", qt_last_error());
            st = qt_error(st, "%s: the stored qtrain config is invalid: %s", what, msg);
        }
    }
    unlink(path);
    return st;
}

// The run's config from config.json's "qtrain" object.
static qt_status read_config_json(const char *dir, qt_config *cfg) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    uint8_t *buf = NULL;
    size_t len = 0;
    QT_TRY(qt_io_read_file(path, "config.json", "the directory must be written by qtrain export",
                           MAX_CONFIG_JSON, &buf, &len));
    qt_json *root = NULL;
    qt_status st = qt_json_parse((const char *)buf, len, path, &root);
    free(buf);
    if (st != QT_OK) return st;
    const qt_json *q = qt_json_get(root, "qtrain");
    const qt_json *fmt = qt_json_get(q, "format"), *text = qt_json_get(q, "config");
    const qt_json *type = qt_json_get(root, "model_type");
    if (!q || q->type != QT_JSON_OBJECT) {
        st = qt_error(QT_ERR_FORMAT,
                      "%s has no \"qtrain\" object: qtrain import reads the "
                      "directories that qtrain export writes",
                      path);
    } else if (!fmt || fmt->type != QT_JSON_NUMBER || !fmt->is_uint || fmt->uint != QT_HF_FORMAT) {
        st = qt_error(QT_ERR_FORMAT,
                      "%s: qtrain.format is not %d, the version this qtrain "
                      "reads",
                      path, QT_HF_FORMAT);
    } else if (!text || text->type != QT_JSON_STRING) {
        st = qt_error(QT_ERR_FORMAT, "%s: qtrain.config (the run's config text) is missing", path);
    } else {
        st = config_from_text(text->str, text->len, path, cfg);
    }
    const char *want = st == QT_OK ? qt_hf_model_type(cfg) : "";
    if (st == QT_OK && (!type || type->type != QT_JSON_STRING || strcmp(type->str, want) != 0))
        st =
            qt_error(QT_ERR_FORMAT,
                     "%s: model_type is %s%s%s but the stored config makes it \"%s\": the "
                     "file was edited",
                     path, type && type->str ? "\"" : "", type && type->str ? type->str : "missing",
                     type && type->str ? "\"" : "", want);
    qt_json_free(root);
    return st;
}

// The model's parameters gathered from model.safetensors: the float arena, the codes, the
// scales, as the model lays them out.
typedef struct {
    float *host;   // (n_float_params)
    int8_t *codes; // (n_code_bytes)
    float *scales; // (n_tensors)
} gathered;

static qt_status gather(const qt_model *m, const qt_st_file *sf, const char *path, gathered *g) {
    const qt_config *cfg = &m->cfg;
    const int n_file = qt_st_count(sf);
    char *used = calloc((size_t)n_file + 1, 1);
    g->host = calloc(m->n_float_params + 1, sizeof(float));
    g->codes = calloc(m->n_code_bytes + 1, 1);
    g->scales = calloc((size_t)m->n_tensors + 1, sizeof(float));
    if (!used || !g->host || !g->codes || !g->scales) {
        free(used);
        return qt_error(QT_ERR_OOM, "out of memory importing %s", path);
    }
    qt_status st = QT_OK;
    for (int i = 0; st == QT_OK && i < m->n_tensors; i++) {
        const qt_tensor_info *t = &m->tensors[i];
        qt_hf_piece pc[QT_HF_MAX_PIECES];
        int n = 0;
        st = qt_hf_pieces(cfg, t->name, t->shape[0], pc, &n);
        const qt_st_dtype want = t->quantized ? QT_ST_I8 : QT_ST_F32;
        const size_t es = t->quantized ? 1 : sizeof(float);
        const size_t row_bytes = t->numel / (size_t)t->shape[0] * es;
        char *dst = t->quantized ? (char *)(g->codes + t->code_offset)
                                 : (char *)(g->host + t->param_offset);
        for (int k = 0; st == QT_OK && k < n; k++) {
            const qt_st_tensor *h = qt_st_find(sf, pc[k].name);
            int ok = h && h->dtype == want && h->ndim == t->ndim &&
                     h->shape[0] == pc[k].rows + pc[k].pad_rows;
            for (int d = 1; ok && d < t->ndim; d++)
                ok = h->shape[d] == t->shape[d];
            if (!ok) {
                char shape[96];
                int w = snprintf(shape, sizeof shape, "[%lld",
                                 (long long)(pc[k].rows + pc[k].pad_rows));
                for (int d = 1; d < t->ndim && w < (int)sizeof shape; d++)
                    w += snprintf(shape + w, sizeof shape - (size_t)w, ", %d", t->shape[d]);
                if (w < (int)sizeof shape) snprintf(shape + w, sizeof shape - (size_t)w, "]");
                st = qt_error(QT_ERR_FORMAT,
                              "%s: tensor %s is %s; the config's model needs %s "
                              "of shape %s (for %s)",
                              path, pc[k].name, h ? "of another dtype or shape" : "missing",
                              qt_st_dtype_name(want), shape, t->name);
                break;
            }
            used[h - qt_st_at(sf, 0)] = 1;
            memcpy(dst + (size_t)pc[k].row0 * row_bytes,
                   (const char *)h->data + (size_t)pc[k].pad_rows * row_bytes,
                   (size_t)pc[k].rows * row_bytes);
        }
        for (int k = 0; st == QT_OK && t->quantized && k < n; k++) {
            char name[QT_HF_NAME + 8];
            if (snprintf(name, sizeof name, "%s_scale", pc[k].name) >= (int)sizeof name) {
                st = qt_error(QT_ERR_INTERNAL, "tensor name %s too long", pc[k].name);
                break;
            }
            const qt_st_tensor *h = qt_st_find(sf, name);
            if (!h || h->dtype != QT_ST_F32 || h->ndim != 1 || h->shape[0] != 1) {
                st = qt_error(QT_ERR_FORMAT, "%s: DQT scale %s is %s (expected F32 [1])", path,
                              name, h ? "of another dtype or shape" : "missing");
                break;
            }
            used[h - qt_st_at(sf, 0)] = 1;
            float s;
            memcpy(&s, h->data, sizeof s);
            if (k == 0) {
                g->scales[i] = s;
                if (!(s > 0.0f && isfinite(s)))
                    st = qt_error(QT_ERR_FORMAT, "%s: %s = %g is not a positive scale", path, name,
                                  (double)s);
            } else if (memcmp(&s, &g->scales[i], sizeof s) != 0) {
                st = qt_error(QT_ERR_FORMAT,
                              "%s: %s = %g differs from %s_scale = %g, but "
                              "qtrain's fused %s has one scale",
                              path, name, (double)s, pc[0].name, (double)g->scales[i], t->name);
            }
        }
    }
    // The tensors transformers needs and qtrain has no room for must be what export wrote.
    int n_zero = qt_hf_zero_tensors(cfg, NULL, 0);
    char(*zn)[QT_HF_NAME] = n_zero ? calloc((size_t)n_zero, sizeof *zn) : NULL;
    if (st == QT_OK && n_zero && !zn) st = qt_error(QT_ERR_OOM, "out of memory");
    if (st == QT_OK && n_zero) qt_hf_zero_tensors(cfg, zn, n_zero);
    for (int k = 0; st == QT_OK && k < n_zero; k++) {
        const qt_st_tensor *h = qt_st_find(sf, zn[k]);
        if (!h) continue;
        used[h - qt_st_at(sf, 0)] = 1;
        int zero = h->dtype == QT_ST_F32 && h->ndim == 1 && h->shape[0] == cfg->d_model;
        for (int64_t j = 0; zero && j < h->shape[0]; j++) {
            float x;
            memcpy(&x, (const char *)h->data + 4 * j, 4);
            zero = x == 0.0f;
        }
        if (!zero)
            st = qt_error(QT_ERR_FORMAT,
                          "%s: %s is not F32 [%d] zeros, but the config has "
                          "model.bias = 0 (no LayerNorm biases)",
                          path, zn[k], cfg->d_model);
    }
    free(zn);
    for (int k = 0; st == QT_OK && k < n_file; k++)
        if (!used[k])
            st = qt_error(QT_ERR_FORMAT,
                          "%s: tensor %s is not part of the config's model; the "
                          "directory mixes two models",
                          path, qt_st_at(sf, k)->name);
    free(used);
    return st;
}

static void gathered_free(gathered *g) {
    free(g->host);
    free(g->codes);
    free(g->scales);
}

// The checkpoint dtype of a safetensors dtype, or -1 when checkpoints have none.
static int ckpt_dtype(qt_st_dtype d) {
    switch (d) {
    case QT_ST_F32:
        return QT_CKPT_F32;
    case QT_ST_I32:
        return QT_CKPT_I32;
    case QT_ST_U8:
        return QT_CKPT_U8;
    case QT_ST_U64:
        return QT_CKPT_U64;
    case QT_ST_F64:
        return QT_CKPT_F64;
    case QT_ST_I8:
        return QT_CKPT_I8;
    default:
        return -1;
    }
}

// The whole checkpoint again: every entry in the exported order, parameters from g, the rest
// from the state file.
static qt_status write_full(const qt_model *m, const gathered *g, const char *state_path,
                            const char *out, int *step) {
    qt_st_file *sf = NULL;
    QT_TRY(qt_st_read(state_path, &sf));
    const char *order_text = qt_st_meta(sf, "qtrain.entries");
    qt_json *order = NULL;
    qt_status st = order_text ? qt_json_parse(order_text, strlen(order_text),
                                              "qtrain_state.safetensors qtrain.entries", &order)
                              : qt_error(QT_ERR_FORMAT,
                                         "%s has no qtrain.entries metadata (the "
                                         "checkpoint's entry order)",
                                         state_path);
    if (st == QT_OK && order->type != QT_JSON_ARRAY)
        st = qt_error(QT_ERR_FORMAT, "%s: qtrain.entries is not an array", state_path);
    const int n = st == QT_OK ? order->n : 0;
    qt_ckpt_entry *e = calloc((size_t)n + 1, sizeof *e);
    char *used = calloc((size_t)qt_st_count(sf) + 1, 1);
    char *param_seen = calloc(2 * (size_t)m->n_tensors + 1, 1);
    if (st == QT_OK && (!e || !used || !param_seen)) st = qt_error(QT_ERR_OOM, "out of memory");
    for (int k = 0; st == QT_OK && k < n; k++) {
        const qt_json *it = &order->items[k];
        if (it->type != QT_JSON_STRING || strlen(it->str) != it->len) {
            st = qt_error(QT_ERR_FORMAT, "%s: qtrain.entries[%d] is not a name", state_path, k);
            break;
        }
        const char *name = it->str;
        e[k].name = name;
        int i = qt_model_find_tensor(m, name);
        if (i >= 0) {
            const qt_tensor_info *t = &m->tensors[i];
            e[k].dtype = t->quantized ? QT_CKPT_I8 : QT_CKPT_F32;
            e[k].ndim = t->ndim;
            for (int d = 0; d < t->ndim; d++)
                e[k].shape[d] = t->shape[d];
            e[k].data = t->quantized ? (const void *)(g->codes + t->code_offset)
                                     : (const void *)(g->host + t->param_offset);
            param_seen[2 * i] = 1;
            continue;
        }
        size_t len = strlen(name);
        if (len > 6 && strcmp(name + len - 6, ".scale") == 0) {
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(len - 6), name);
            i = qt_model_find_tensor(m, base);
            if (i >= 0 && m->tensors[i].quantized) {
                e[k] = (qt_ckpt_entry){name, QT_CKPT_F32, 1, {1}, &g->scales[i]};
                param_seen[2 * i + 1] = 1;
                continue;
            }
        }
        const qt_st_tensor *s = qt_st_find(sf, name);
        int dt = s ? ckpt_dtype(s->dtype) : -1;
        if (!s || dt < 0 || s->ndim > 4) {
            st = qt_error(QT_ERR_FORMAT, "%s: entry %s %s", state_path, name,
                          !s ? "is missing" : "has a dtype or rank checkpoints cannot hold");
            break;
        }
        used[s - qt_st_at(sf, 0)] = 1;
        e[k].dtype = (qt_ckpt_dtype)dt;
        e[k].ndim = s->ndim;
        for (int d = 0; d < s->ndim; d++)
            e[k].shape[d] = s->shape[d];
        e[k].data = s->data;
        if (strcmp(name, "qtrain.meta") == 0 && dt == QT_CKPT_U64 && s->ndim == 1 &&
            s->shape[0] >= 2) {
            uint64_t meta[2];
            memcpy(meta, s->data, sizeof meta);
            *step = (int)meta[1];
        }
    }
    for (int i = 0; st == QT_OK && i < m->n_tensors; i++)
        if (!param_seen[2 * i] || (m->tensors[i].quantized && !param_seen[2 * i + 1]))
            st = qt_error(QT_ERR_FORMAT, "%s: qtrain.entries lacks parameter %s%s", state_path,
                          m->tensors[i].name, param_seen[2 * i] ? ".scale" : "");
    for (int k = 0; st == QT_OK && k < qt_st_count(sf); k++)
        if (!used[k])
            st = qt_error(QT_ERR_FORMAT, "%s: tensor %s is not in qtrain.entries", state_path,
                          qt_st_at(sf, k)->name);
    if (st == QT_OK) st = qt_ckpt_write(out, e, n);
    free(e);
    free(used);
    free(param_seen);
    qt_json_free(order);
    qt_st_free(sf);
    return st;
}

// A checkpoint at step 0 with a fresh optimizer, written by the trainer's own writer.
static qt_status write_fresh(qt_model *m, const gathered *g, const char *out) {
    const qt_backend *be = m->be;
    if (m->n_float_params)
        QT_TRY(be->ops->to_device_f32(be->ctx, m->params, g->host, m->n_float_params));
    if (m->n_code_bytes) QT_TRY(be->ops->to_device(be->ctx, m->codes, g->codes, m->n_code_bytes));
    memcpy(m->code_scales, g->scales, (size_t)m->n_tensors * sizeof(float));
    qt_optimizer opt;
    QT_TRY(qt_optimizer_init(&opt, m));
    qt_train_progress progress;
    memset(&progress, 0, sizeof progress);
    qt_status st = qt_train_state_save(out, m, &opt, &progress);
    qt_optimizer_free(&opt, m);
    return st;
}

qt_status qt_hf_import(const char *dir, const char *out, qt_hf_import_report *report) {
    if (!dir || !out) return qt_error(QT_ERR_ARG, "qt_hf_import: NULL argument");
    qt_config cfg;
    QT_TRY(read_config_json(dir, &cfg));
    qt_backend be;
    qt_model model;
    QT_TRY(qt_backend_cpu_init(&be, 1));
    qt_status st = qt_model_init(&model, &cfg, &be, 1, 1);
    if (st != QT_OK) {
        qt_backend_free(&be);
        return st;
    }
    char path[4096], state_path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, QT_HF_MODEL_FILE);
    snprintf(state_path, sizeof state_path, "%s/%s", dir, QT_HF_STATE_FILE);
    qt_st_file *sf = NULL;
    gathered g = {0};
    qt_hf_import_report rep = {0};
    st = qt_st_read(path, &sf);
    if (st == QT_OK) st = gather(&model, sf, path, &g);
    struct stat sb;
    rep.full = stat(state_path, &sb) == 0;
    if (st == QT_OK && rep.full) st = write_full(&model, &g, state_path, out, &rep.step);
    if (st == QT_OK && !rep.full) st = write_fresh(&model, &g, out);
    rep.n_tensors = model.n_tensors;
    if (st == QT_OK && report) *report = rep;
    gathered_free(&g);
    qt_st_free(sf);
    qt_model_free(&model);
    qt_backend_free(&be);
    return st;
}

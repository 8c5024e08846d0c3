// hf_export.c: a checkpoint as a Hugging Face transformers directory (qtrain/hf.h).
//
// The parameter table comes from a model of the checkpoint's config (built on the CPU backend
// for one token, its parameters never used): it says which checkpoint entries are parameters,
// their shapes and which are DQT codes. Every other entry is training state and goes, with the
// entry order, into qtrain_state.safetensors. Tensors are written straight from the
// checkpoint's read-only mapping (a row split is a pointer into it); only OPT's padded
// position table is copied.
#include <errno.h>
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

// The checkpoint dtype as a safetensors dtype (every checkpoint dtype has one).
static qt_st_dtype st_dtype(qt_ckpt_dtype d) {
    switch (d) {
    case QT_CKPT_F32:
        return QT_ST_F32;
    case QT_CKPT_I32:
        return QT_ST_I32;
    case QT_CKPT_U8:
        return QT_ST_U8;
    case QT_CKPT_U64:
        return QT_ST_U64;
    case QT_CKPT_F64:
        return QT_ST_F64;
    case QT_CKPT_I8:
        return QT_ST_I8;
    }
    return QT_ST_DTYPE_COUNT;
}

// What an export builds before writing: the tensors of model.safetensors (names and buffers
// owned here) and of qtrain_state.safetensors.
typedef struct {
    qt_st_tensor *model;       // (n_model)
    char (*names)[QT_HF_NAME]; // (n_model) the names model[i].name points to
    int n_model, cap_model;
    void **owned; // buffers to free (padded position tables, zeros)
    int n_owned;
    qt_st_tensor *state; // (n_state) names point into the checkpoint
    int n_state;
    char *order; // JSON array of every checkpoint entry name, in file order
} export_plan;

static void plan_free(export_plan *p) {
    for (int i = 0; i < p->n_owned; i++)
        free(p->owned[i]);
    free(p->owned);
    free(p->model);
    free(p->names);
    free(p->state);
    free(p->order);
}

static qt_st_tensor *add_model(export_plan *p, const char *name) {
    qt_st_tensor *t = &p->model[p->n_model];
    snprintf(p->names[p->n_model], QT_HF_NAME, "%s", name);
    memset(t, 0, sizeof *t);
    t->name = p->names[p->n_model];
    p->n_model++;
    return t;
}

// The pieces of checkpoint entry e (a parameter; `scale`: its DQT scale, repeated per piece).
static qt_status plan_param(export_plan *p, const qt_config *cfg, const qt_ckpt_entry *e,
                            const qt_ckpt_entry *scale) {
    qt_hf_piece pc[QT_HF_MAX_PIECES];
    int n = 0;
    QT_TRY(qt_hf_pieces(cfg, e->name, e->ndim > 0 ? e->shape[0] : 1, pc, &n));
    size_t row_bytes = qt_ckpt_dtype_size(e->dtype);
    for (int d = 1; d < e->ndim; d++)
        row_bytes *= (size_t)e->shape[d];
    for (int k = 0; k < n; k++) {
        qt_st_tensor *t = add_model(p, pc[k].name);
        t->dtype = st_dtype(e->dtype);
        t->ndim = e->ndim;
        for (int d = 0; d < e->ndim; d++)
            t->shape[d] = e->shape[d];
        if (e->ndim > 0) t->shape[0] = pc[k].rows + pc[k].pad_rows;
        const char *src = (const char *)e->data + (size_t)pc[k].row0 * row_bytes;
        if (pc[k].pad_rows == 0) {
            t->data = src;
        } else {
            size_t pad = (size_t)pc[k].pad_rows * row_bytes, body = (size_t)pc[k].rows * row_bytes;
            char *buf = calloc(1, pad + body + 1);
            if (!buf) return qt_error(QT_ERR_OOM, "out of memory padding %s", e->name);
            memcpy(buf + pad, src, body);
            p->owned[p->n_owned++] = buf;
            t->data = buf;
        }
        if (scale) {
            char name[QT_HF_NAME + 8];
            if (snprintf(name, sizeof name, "%s_scale", pc[k].name) >= (int)sizeof name)
                return qt_error(QT_ERR_INTERNAL, "tensor name %s too long", pc[k].name);
            qt_st_tensor *s = add_model(p, name);
            s->dtype = QT_ST_F32;
            s->ndim = 1;
            s->shape[0] = 1;
            s->data = scale->data;
        }
    }
    return QT_OK;
}

// The plan of ckpt under model's parameter table.
static qt_status make_plan(export_plan *p, const char *path, const qt_ckpt *ck,
                           const qt_model *model) {
    const qt_config *cfg = &model->cfg;
    const int n_entries = qt_ckpt_count(ck);
    const int n_zero = qt_hf_zero_tensors(cfg, NULL, 0);
    p->cap_model = 2 * QT_HF_MAX_PIECES * model->n_tensors + n_zero;
    p->model = calloc((size_t)p->cap_model + 1, sizeof *p->model);
    p->names = calloc((size_t)p->cap_model + 1, sizeof *p->names);
    p->owned = calloc((size_t)model->n_tensors + 2, sizeof *p->owned);
    p->state = calloc((size_t)n_entries + 1, sizeof *p->state);
    char *is_param = calloc((size_t)n_entries + 1, 1);
    if (!p->model || !p->names || !p->owned || !p->state || !is_param) {
        free(is_param);
        return qt_error(QT_ERR_OOM, "out of memory planning the export of %s", path);
    }
    qt_status st = QT_OK;
    char scale_name[96];
    for (int i = 0; st == QT_OK && i < model->n_tensors; i++) {
        const qt_tensor_info *t = &model->tensors[i];
        const qt_ckpt_entry *e = qt_ckpt_find(ck, t->name);
        qt_ckpt_dtype want = t->quantized ? QT_CKPT_I8 : QT_CKPT_F32;
        int same = e && e->dtype == want && e->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = e->shape[d] == t->shape[d];
        if (!same) {
            st = qt_error(QT_ERR_FORMAT,
                          "%s: tensor %s is %s, but the checkpoint's config "
                          "needs %s of %d dims; the checkpoint is inconsistent",
                          path, t->name, e ? "of another dtype or shape" : "missing",
                          qt_ckpt_dtype_name(want), t->ndim);
            break;
        }
        const qt_ckpt_entry *scale = NULL;
        if (t->quantized) {
            snprintf(scale_name, sizeof scale_name, "%s.scale", t->name);
            scale = qt_ckpt_find(ck, scale_name);
            if (!scale || scale->dtype != QT_CKPT_F32 || qt_ckpt_entry_numel(scale) != 1) {
                st = qt_error(QT_ERR_FORMAT, "%s: DQT tensor %s has no f32 scale %s", path, t->name,
                              scale_name);
                break;
            }
        }
        for (int k = 0; k < n_entries; k++) {
            const char *name = qt_ckpt_entry_at(ck, k)->name;
            if (strcmp(name, t->name) == 0 || (scale && strcmp(name, scale_name) == 0))
                is_param[k] = 1;
        }
        st = plan_param(p, cfg, e, scale);
    }
    if (st == QT_OK && n_zero > 0) {
        char(*zn)[QT_HF_NAME] = calloc((size_t)n_zero, sizeof *zn);
        float *zeros = calloc((size_t)cfg->d_model, sizeof(float));
        if (!zn || !zeros) {
            free(zn);
            free(zeros);
            st = qt_error(QT_ERR_OOM, "out of memory");
        } else {
            p->owned[p->n_owned++] = zeros;
            qt_hf_zero_tensors(cfg, zn, n_zero);
            for (int k = 0; k < n_zero; k++) {
                qt_st_tensor *t = add_model(p, zn[k]);
                t->dtype = QT_ST_F32;
                t->ndim = 1;
                t->shape[0] = cfg->d_model;
                t->data = zeros;
            }
            free(zn);
        }
    }
    // The training state, and the order of every entry for the import.
    size_t order_len = 0;
    FILE *f = st == QT_OK ? open_memstream(&p->order, &order_len) : NULL;
    if (st == QT_OK && !f) st = qt_error(QT_ERR_OOM, "out of memory");
    if (f) {
        fputc('[', f);
        for (int k = 0; k < n_entries; k++) {
            const qt_ckpt_entry *e = qt_ckpt_entry_at(ck, k);
            if (k) fputc(',', f);
            qt_json_write_string(f, e->name, strlen(e->name));
            if (is_param[k]) continue;
            qt_st_tensor *t = &p->state[p->n_state++];
            t->name = e->name;
            t->dtype = st_dtype(e->dtype);
            t->ndim = e->ndim;
            for (int d = 0; d < e->ndim; d++)
                t->shape[d] = e->shape[d];
            t->data = e->data;
        }
        fputc(']', f);
        if (ferror(f)) st = qt_error(QT_ERR_OOM, "out of memory");
        fclose(f);
    }
    free(is_param);
    return st;
}

// The files an export may write, relative to its directory.
static const char *const export_files[] = {QT_HF_MODEL_FILE, QT_HF_STATE_FILE, "config.json",
                                           "tokenizer.json", "tokenizer_config.json"};
enum { F_MODEL, F_STATE, F_CONFIG, F_TOKENIZER, F_TOKENIZER_CONFIG, F_COUNT };

static void file_path(char *out, size_t cap, const char *dir, int which) {
    snprintf(out, cap, "%s/%s", dir, export_files[which]);
}

static qt_status remove_stale(const char *dir, int which) {
    char path[4096];
    file_path(path, sizeof path, dir, which);
    if (unlink(path) != 0 && errno != ENOENT)
        return qt_error(QT_ERR_IO, "cannot remove %s, left by an earlier export: %s", path,
                        strerror(errno));
    return QT_OK;
}

static qt_status write_text_file(const char *path, const char *text, size_t len) {
    qt_io_atomic a;
    QT_TRY(qt_io_atomic_begin(&a, path, "export file"));
    QT_TRY(qt_io_atomic_write(&a, text, len));
    return qt_io_atomic_commit(&a);
}

// The tokenizer to export: opts->tokenizer, or the run's when it exists (NULL: none, with a
// note in the report).
static qt_status load_tokenizer(const qt_hf_export_opts *opts, const qt_config *cfg,
                                qt_tokenizer **tok, qt_hf_export_report *r) {
    *tok = NULL;
    char path[600];
    const char *p = opts ? opts->tokenizer : NULL;
    if (!p) {
        snprintf(path, sizeof path, "%s/tokenizer.bin", cfg->data_dir);
        struct stat sb;
        if (stat(path, &sb) != 0) {
            snprintf(r->tokenizer_note, sizeof r->tokenizer_note,
                     "no tokenizer exported: the run's %.400s is not there; pass --tokenizer "
                     "FILE",
                     path);
            return QT_OK;
        }
        p = path;
    }
    QT_TRY(qt_tokenizer_load(tok, p));
    if (qt_tokenizer_vocab_size(*tok) > cfg->vocab_size) {
        int v = qt_tokenizer_vocab_size(*tok);
        qt_tokenizer_free(*tok);
        *tok = NULL;
        return qt_error(QT_ERR_ARG,
                        "tokenizer %s has %d tokens but the model only %d; pass the "
                        "run's tokenizer with --tokenizer",
                        p, v, cfg->vocab_size);
    }
    return QT_OK;
}

qt_status qt_hf_export(const char *ckpt, const char *dir, const qt_hf_export_opts *opts,
                       qt_hf_export_report *report) {
    if (!ckpt || !dir) return qt_error(QT_ERR_ARG, "qt_hf_export: NULL argument");
    qt_hf_export_report rep;
    memset(&rep, 0, sizeof rep);
    const int weights_only = opts && opts->weights_only;
    qt_config cfg;
    QT_TRY(qt_train_state_read_config(ckpt, &cfg));
    if (cfg.arch == QT_ARCH_BERT)
        return qt_error(QT_ERR_ARG, "%s is a masked-LM encoder (model.arch = bert), whose fused "
                        "qkv and token-type layout has no Hugging Face mapping yet; export takes "
                        "the decoders (model.arch = opt or llama)", ckpt);
    qt_ckpt *ck = NULL;
    QT_TRY(qt_ckpt_read(ckpt, &ck));
    const qt_ckpt_entry *text = qt_ckpt_find(ck, "qtrain.config");
    qt_backend be;
    qt_model model;
    export_plan plan;
    memset(&plan, 0, sizeof plan);
    qt_tokenizer *tok = NULL;
    char *cfg_json = NULL;
    size_t cfg_len = 0;
    int have_be = 0, have_model = 0, written[F_COUNT] = {0}, made_dir = 0;
    qt_status st = text ? QT_OK : qt_error(QT_ERR_FORMAT, "%s has no qtrain.config", ckpt);
    if (st == QT_OK) st = qt_backend_cpu_init(&be, 1);
    have_be = st == QT_OK;
    if (st == QT_OK) st = qt_model_init(&model, &cfg, &be, 1, 1);
    have_model = st == QT_OK;
    if (st == QT_OK) st = make_plan(&plan, ckpt, ck, &model);
    if (st == QT_OK) st = load_tokenizer(opts, &cfg, &tok, &rep);
    if (st == QT_OK)
        st = qt_hf_config_json(&cfg, text->data, (size_t)text->shape[0], !weights_only, &cfg_json,
                               &cfg_len);
    // Everything is checked; now the files.
    struct stat sb;
    made_dir = st == QT_OK && stat(dir, &sb) != 0;
    if (st == QT_OK) st = qt_io_make_dirs(dir, 0755, "--out directory");
    char path[4096];
    if (st == QT_OK) {
        const char *keys[2] = {"format", "qtrain.format"};
        const char *vals[2] = {"pt", "1"};
        file_path(path, sizeof path, dir, F_MODEL);
        st = qt_st_write(path, plan.model, plan.n_model, keys, vals, 2);
        written[F_MODEL] = st == QT_OK;
    }
    if (st == QT_OK && !weights_only) {
        const char *keys[3] = {"format", "qtrain.format", "qtrain.entries"};
        const char *vals[3] = {"qtrain", "1", plan.order};
        file_path(path, sizeof path, dir, F_STATE);
        st = qt_st_write(path, plan.state, plan.n_state, keys, vals, 3);
        written[F_STATE] = st == QT_OK;
    } else if (st == QT_OK) {
        st = remove_stale(dir, F_STATE);
    }
    if (st == QT_OK) {
        file_path(path, sizeof path, dir, F_CONFIG);
        st = write_text_file(path, cfg_json, cfg_len);
        written[F_CONFIG] = st == QT_OK;
    }
    if (st == QT_OK && tok) {
        int dups = 0;
        st = qt_hf_write_tokenizer(tok, cfg.max_seq_len, dir, &dups);
        written[F_TOKENIZER] = written[F_TOKENIZER_CONFIG] = st == QT_OK;
        rep.tokenizer = st == QT_OK;
        if (dups)
            snprintf(rep.tokenizer_note, sizeof rep.tokenizer_note,
                     "%d tokens repeat the bytes of an earlier token; tokenizer.json names only "
                     "the first, so transformers may encode some words differently",
                     dups);
    } else if (st == QT_OK) {
        st = remove_stale(dir, F_TOKENIZER);
        if (st == QT_OK) st = remove_stale(dir, F_TOKENIZER_CONFIG);
    }
    if (st != QT_OK) {
        // Leave no half export: remove what this call wrote (and the directory it made).
        for (int i = 0; i < F_COUNT; i++)
            if (written[i]) {
                file_path(path, sizeof path, dir, i);
                unlink(path);
            }
        if (made_dir) rmdir(dir);
    } else {
        rep.runs_in_transformers =
            qt_hf_runs_in_transformers(&cfg, rep.why_not, sizeof rep.why_not);
        rep.architecture = qt_hf_architecture(&cfg);
        rep.n_tensors = plan.n_model;
        rep.n_state = weights_only ? 0 : plan.n_state;
        if (report) *report = rep;
    }
    free(cfg_json);
    qt_tokenizer_free(tok);
    plan_free(&plan);
    if (have_model) qt_model_free(&model);
    if (have_be) qt_backend_free(&be);
    qt_ckpt_free(ck);
    return st;
}

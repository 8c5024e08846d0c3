// ptq.c: post-training quantization evaluation (W8A8 and variants), qtrain/ptq.h; the method is
// PAPERS.md section 5. The model is observed and rewritten through qt_model_hooks: the
// activation hook calibrates or fake-quantizes each site in place, the linear hook quantizes
// each block linear's input with its own frozen range and runs the float linear (fake path)
// or the zero-point INT8 GEMM (int8 path).
#include "qtrain/ptq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/quant.h"
#include "qtrain/evaluate.h"
#include "qtrain/names.h"
#include "kernels/int8_gemm.h"

enum { MODE_CALIB = 0, MODE_FAKE, MODE_INT8 };

// Names for messages, in qt_site / qt_linear_id order.
static const char *const site_names[QT_SITE_COUNT] = {
    "embedding output", "ln1 output",  "q/k/v output",    "Q K^T",
    "softmax output",   "P V",         "out_proj output", "first residual sum",
    "ln2 output",       "fc1 output",  "fc2 output",      "second residual sum",
    "final norm output"};
static const char *const linear_names[QT_LINEAR_COUNT] = {"qkv_proj", "out_proj", "fc1", "fc2"};

typedef struct {
    qt_model *m;
    const qt_ptq_config *c;
    int mode;
    int direct; // CPU backend in fp32: backend tensors are host fp32 arrays
    int L;
    int embed_site; // 1: QT_SITE_EMBED is quantized (tied embeddings)
    qt_quant_running *site_rng; // ((L + 1) * QT_SITE_COUNT): [(layer + 1) * COUNT + site]
    qt_quant_running *lin_rng;  // (L * QT_LINEAR_COUNT): input range of each block linear
    int8_t *wcodes;             // (n_float_params) weight codes at each tensor's param_offset
    float *wstep;               // (n_tensors) weight step (0: tensor not quantized)
    int32_t **rowsum;           // (n_tensors) row sums of 2-D weight codes, made on first use
    // host scratch, grown on demand
    float *hx, *hq, *hout, *hbias, *bscale, *ascale;
    size_t hx_n, hq_n, hout_n, hbias_n, bscale_n, ascale_n;
    int32_t *azero;
    size_t azero_n;
    int8_t *acodes;
    size_t acodes_n;
    long long int8_linears; // INT8 GEMM calls
    void *dq; // backend scratch for the fake path's quantized input (non-direct backends)
    size_t dq_bytes;
} ptq_state;

// ---- helpers -------------------------------------------------------------------------------

static qt_status grow(void **buf, size_t *cap, size_t n, size_t size) {
    if (n <= *cap) return QT_OK;
    void *p = realloc(*buf, n * size);
    if (!p) return qt_error(QT_ERR_OOM, "ptq: no memory for a %zu-element scratch buffer", n);
    *buf = p;
    *cap = n;
    return QT_OK;
}
#define GROW(s, field, n) grow((void **)&(s)->field, &(s)->field##_n, (n), sizeof *(s)->field)

static qt_quant_params act_params(const ptq_state *s) {
    qt_quant_params p = qt_quant_params_default(s->c->act_bits);
    p.symmetric = 0;
    p.range = QT_QUANT_RANGE_FIXED;
    return p;
}

// Host fp32 view of a backend tensor: the tensor itself (direct) or a copy in s->hx.
static qt_status host_view(ptq_state *s, float **h, const void *x, size_t n) {
    if (s->direct) {
        *h = (float *)x;
        return QT_OK;
    }
    QT_TRY(GROW(s, hx, n));
    QT_TRY(s->m->be->ops->to_host_f32(s->m->be->ctx, s->hx, x, n));
    *h = s->hx;
    return QT_OK;
}

// One calibration batch of x (rows, cols) into the running range r. causal: only entries
// (row, j) with j <= row % cols count (Q K^T and softmax rows of (B*H*T, T)).
static qt_status calibrate(ptq_state *s, qt_quant_running *r, const float *x, size_t rows,
                           size_t cols, int causal) {
    float lo = INFINITY, hi = -INFINITY;
    if (s->c->act_range == QT_QUANT_RANGE_PERCENTILE) {
        size_t n = 0;
        QT_TRY(GROW(s, hq, rows * cols));
        for (size_t i = 0; i < rows; i++) {
            const size_t len = causal ? i % cols + 1 : cols;
            memcpy(s->hq + n, x + i * cols, len * sizeof(float));
            n += len;
        }
        // nearest rank, both tails: hi = ceil(p n / 100)-th smallest, lo its mirror
        double rank = ceil((double)s->c->percentile / 100.0 * (double)n);
        size_t k = rank < 1.0 ? 0 : (size_t)rank - 1;
        if (k >= n) k = n - 1;
        hi = qt_cpu_select_kth(s->hq, n, k);
        lo = qt_cpu_select_kth(s->hq, n, n - 1 - k);
    } else {
        for (size_t i = 0; i < rows; i++) {
            const float *row = x + i * cols;
            const size_t len = causal ? i % cols + 1 : cols;
            for (size_t j = 0; j < len; j++) {
                lo = fminf(lo, row[j]);
                hi = fmaxf(hi, row[j]);
            }
        }
    }
    if (!(lo <= hi) || isinf(lo) || isinf(hi))
        return qt_error(QT_ERR_ARG, "ptq: calibration saw a non-finite activation range "
                        "[%g, %g]; the model's activations overflow or are NaN",
                        (double)lo, (double)hi);
    if (!r->initialized) {
        r->lo = lo;
        r->hi = hi;
        r->initialized = 1;
    } else {
        const float mo = s->c->momentum;
        r->lo = mo * r->lo + (1.0f - mo) * lo;
        r->hi = mo * r->hi + (1.0f - mo) * hi;
    }
    return QT_OK;
}

// ---- hooks ---------------------------------------------------------------------------------

static qt_status on_activation(void *user, qt_model *m, int layer, qt_site site, void *x,
                               size_t rows, size_t cols) {
    ptq_state *s = user;
    if (layer < -1 || layer >= s->L || (unsigned)site >= QT_SITE_COUNT)
        return qt_error(QT_ERR_INTERNAL, "ptq: site %d of layer %d is outside the model's %d "
                        "layers", (int)site, layer, s->L);
    if (site == QT_SITE_EMBED && !s->embed_site) return QT_OK;
    qt_quant_running *r = &s->site_rng[(size_t)(layer + 1) * QT_SITE_COUNT + site];
    const size_t n = rows * cols;
    float *h;
    QT_TRY(host_view(s, &h, x, n));
    if (s->mode == MODE_CALIB)
        return calibrate(s, r, h, rows, cols, site == QT_SITE_SCORES || site == QT_SITE_PROBS);
    if (!r->initialized)
        return qt_error(QT_ERR_INTERNAL, "ptq: the %s of layer %d was never seen while "
                        "calibrating", site_names[site], layer);
    const qt_quant_params p = act_params(s);
    QT_TRY(qt_cpu_quant_fake(&p, r, h, h, rows, cols));
    if (!s->direct) QT_TRY(m->be->ops->to_device_f32(m->be->ctx, x, h, n));
    return QT_OK;
}

// Index of the parameter tensor that starts at w, or -1.
static int tensor_at(const qt_model *m, const void *w) {
    const char *base = m->params, *p = w;
    if (!w || p < base || p >= base + m->n_float_params * m->es) return -1;
    const size_t off = (size_t)(p - base) / m->es;
    for (int i = 0; i < m->n_tensors; i++)
        if (!m->tensors[i].quantized && m->tensors[i].param_offset == off) return i;
    return -1;
}

// out (N, OC) = int8 GEMM of x's asymmetric codes and w's codes, zero point and scales in the
// epilogue; out is written through the host (direct: in place).
static qt_status linear_int8(ptq_state *s, int layer, qt_linear_id which, void *out,
                             const void *x, const void *w, const void *b, int N, int IC, int OC,
                             qt_quant_running *r) {
    qt_model *m = s->m;
    const int ti = m->linear_tensor ? m->linear_tensor[layer][which] : tensor_at(m, w);
    if (ti < 0 || tensor_at(m, w) != ti || s->wstep[ti] == 0.0f || m->tensors[ti].ndim != 2 ||
        m->tensors[ti].shape[0] != OC || m->tensors[ti].shape[1] != IC)
        return qt_error(QT_ERR_UNSUPPORTED,
                        "ptq: the %s weight of layer %d is not a quantized (%d, %d) parameter "
                        "of the model; the INT8 path needs the model's own weights",
                        linear_names[which], layer, OC, IC);
    if (IC > QT_INT8_GEMM_ZP_MAX_K)
        return qt_error(QT_ERR_UNSUPPORTED, "ptq: linear input width %d exceeds the INT8 GEMM's "
                        "%d; evaluate with the fake path only", IC, QT_INT8_GEMM_ZP_MAX_K);
    const qt_tensor_info *t = &m->tensors[ti];
    if (!s->rowsum[ti]) {
        s->rowsum[ti] = malloc((size_t)OC * sizeof(int32_t));
        if (!s->rowsum[ti]) return qt_error(QT_ERR_OOM, "ptq: no memory for %d row sums", OC);
        QT_TRY(qt_cpu_s8_row_sums(s->rowsum[ti], s->wcodes + t->param_offset, OC, IC));
    }
    const size_t nx = (size_t)N * IC, nout = (size_t)N * OC;
    QT_TRY(GROW(s, acodes, nx));
    QT_TRY(GROW(s, ascale, (size_t)N));
    QT_TRY(GROW(s, azero, (size_t)N));
    QT_TRY(GROW(s, bscale, (size_t)OC));
    float *hx;
    QT_TRY(host_view(s, &hx, x, nx));
    const qt_quant_params p = act_params(s);
    float step;
    int32_t zc;
    QT_TRY(qt_cpu_quant_quantize(&p, r, s->acodes, &step, &zc, hx, (size_t)N, (size_t)IC));
    for (int i = 0; i < N; i++) {
        s->ascale[i] = step;
        s->azero[i] = zc;
    }
    for (int i = 0; i < OC; i++) s->bscale[i] = s->wstep[ti];
    const float *hb = NULL;
    float *hout = out;
    if (!s->direct) {
        if (b) {
            QT_TRY(GROW(s, hbias, (size_t)OC));
            QT_TRY(m->be->ops->to_host_f32(m->be->ctx, s->hbias, b, (size_t)OC));
            hb = s->hbias;
        }
        QT_TRY(GROW(s, hout, nout));
        hout = s->hout;
    } else {
        hb = b;
    }
    QT_TRY(qt_cpu_linear_s8_zp(hout, s->acodes, s->ascale, s->azero,
                               s->wcodes + t->param_offset, s->bscale, s->rowsum[ti], hb, N, OC,
                               IC));
    if (!s->direct) QT_TRY(m->be->ops->to_device_f32(m->be->ctx, out, hout, nout));
    s->int8_linears++;
    return QT_OK;
}

// out = backend float linear of x fake-quantized with the input range r.
static qt_status linear_fake(ptq_state *s, void *out, const void *x, const void *w,
                             const void *b, int N, int IC, int OC, qt_quant_running *r) {
    qt_model *m = s->m;
    const size_t nx = (size_t)N * IC;
    float *hx;
    QT_TRY(host_view(s, &hx, x, nx));
    QT_TRY(GROW(s, hq, nx));
    const qt_quant_params p = act_params(s);
    QT_TRY(qt_cpu_quant_fake(&p, r, s->hq, hx, (size_t)N, (size_t)IC));
    const void *xq = s->hq;
    if (!s->direct) {
        const size_t bytes = nx * m->es;
        if (bytes > s->dq_bytes) {
            if (s->dq) m->be->ops->free(m->be->ctx, s->dq);
            s->dq = NULL;
            s->dq_bytes = 0;
            QT_TRY(m->be->ops->alloc(m->be->ctx, &s->dq, bytes));
            s->dq_bytes = bytes;
        }
        QT_TRY(m->be->ops->to_device_f32(m->be->ctx, s->dq, s->hq, nx));
        xq = s->dq;
    }
    return m->be->ops->linear_fwd(m->be->ctx, out, xq, w, b, N, IC, OC);
}

static qt_status on_linear(void *user, qt_model *m, int layer, qt_linear_id which, void *out,
                           const void *x, const void *w, const void *b, int N, int IC, int OC,
                           int *handled) {
    ptq_state *s = user;
    *handled = 0;
    if (layer < 0 || layer >= s->L || (unsigned)which >= QT_LINEAR_COUNT)
        return qt_error(QT_ERR_INTERNAL, "ptq: linear %d of layer %d is outside the model's %d "
                        "layers", (int)which, layer, s->L);
    qt_quant_running *r = &s->lin_rng[(size_t)layer * QT_LINEAR_COUNT + which];
    if (s->mode == MODE_CALIB) {
        float *hx;
        QT_TRY(host_view(s, &hx, x, (size_t)N * IC));
        return calibrate(s, r, hx, (size_t)N, (size_t)IC, 0);
    }
    (void)m;
    if (!r->initialized)
        return qt_error(QT_ERR_INTERNAL, "ptq: the %s input of layer %d was never seen while "
                        "calibrating", linear_names[which], layer);
    if (s->mode == MODE_INT8)
        QT_TRY(linear_int8(s, layer, which, out, x, w, b, N, IC, OC, r));
    else
        QT_TRY(linear_fake(s, out, x, w, b, N, IC, OC, r));
    *handled = 1;
    return QT_OK;
}

// ---- weights -------------------------------------------------------------------------------

// Quantizes every weight tensor (qtrain/ptq.h) of `host` (n_float_params fp32, the
// parameters) in place, keeping the codes and steps, then writes the parameters to the model.
static qt_status quantize_weights(ptq_state *s, float *host, int *count) {
    qt_model *m = s->m;
    const int head = tensor_at(m, m->p.head);
    qt_quant_params p = qt_quant_params_default(s->c->weight_bits);
    p.range = s->c->weight_range;
    *count = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const qt_tensor_info *t = &m->tensors[i];
        if (t->kind == QT_TENSOR_BIAS || i == head) continue;
        float *w = host + t->param_offset;
        int8_t *codes = s->wcodes + t->param_offset;
        float step;
        QT_TRY(qt_cpu_quant_quantize(&p, NULL, codes, &step, NULL, w, 1, t->numel));
        QT_TRY(qt_cpu_quant_dequantize(&p, w, codes, &step, NULL, 1, t->numel));
        s->wstep[i] = step;
        (*count)++;
    }
    return m->be->ops->to_device_f32(m->be->ctx, m->params, host, m->n_float_params);
}

// ---- public --------------------------------------------------------------------------------

qt_ptq_config qt_ptq_config_default(void) {
    qt_ptq_config c;
    memset(&c, 0, sizeof c);
    c.weight_bits = 8;
    c.act_bits = 8;
    c.weight_range = QT_QUANT_RANGE_ABSMAX;
    c.act_range = QT_QUANT_RANGE_RUNNING;
    c.momentum = 0.9f;
    c.percentile = 99.999f;
    c.calib_batches = QT_PTQ_DEFAULT_CALIB_BATCHES;
    c.eval_batches = 1;
    c.int8_path = 1;
    return c;
}

qt_status qt_ptq_config_preset(qt_ptq_config *c, const char *name) {
    static const struct {
        const char *name;
        int w, a;
    } presets[] = {{"w8a8", 8, 8}, {"w4a8", 4, 8}, {"w6a6", 6, 6}};
    for (size_t i = 0; name && i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(name, presets[i].name) == 0) {
            c->weight_bits = presets[i].w;
            c->act_bits = presets[i].a;
            return QT_OK;
        }
    return qt_error(QT_ERR_ARG, "ptq: quantization '%s' is unknown; use w8a8, w4a8 or w6a6",
                    name ? name : "(null)");
}

qt_status qt_ptq_check(const qt_ptq_config *c) {
    if (!c) return qt_error(QT_ERR_ARG, "ptq: config is NULL; pass qt_ptq_config_default()");
    if (c->weight_bits < 2 || c->weight_bits > 8)
        return qt_error(QT_ERR_ARG, "ptq: weight bits = %d; use 2..8 (e.g. 8, 6 or 4)",
                        c->weight_bits);
    if (c->act_bits < 2 || c->act_bits > 8)
        return qt_error(QT_ERR_ARG, "ptq: activation bits = %d; use 2..8 (e.g. 8 or 6)",
                        c->act_bits);
    char names[64];
    if (!qt_names_allow(QT_PTQ_WEIGHT_RANGES, (int)c->weight_range)) {
        qt_names_join(&qt_quant_range_names, QT_PTQ_WEIGHT_RANGES, " or ", names, sizeof names);
        return qt_error(QT_ERR_ARG, "ptq: weight range method %d; use %s", (int)c->weight_range,
                        names);
    }
    if (!qt_names_allow(QT_PTQ_ACT_RANGES, (int)c->act_range)) {
        qt_names_join(&qt_quant_range_names, QT_PTQ_ACT_RANGES, " or ", names, sizeof names);
        return qt_error(QT_ERR_ARG, "ptq: activation range method %d; use %s (running min-max)",
                        (int)c->act_range, names);
    }
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return qt_error(QT_ERR_ARG, "ptq: momentum = %g; use one in [0, 1) (e.g. 0.9)",
                        (double)c->momentum);
    if (c->act_range == QT_QUANT_RANGE_PERCENTILE &&
        !(c->percentile > 50.0f && c->percentile <= 100.0f))
        return qt_error(QT_ERR_ARG, "ptq: percentile = %g; use one in (50, 100] (e.g. 99.999)",
                        (double)c->percentile);
    if (c->calib_batches < 1)
        return qt_error(QT_ERR_ARG, "ptq: %d calibration batches; calibrate on at least 1 "
                        "(default %d)", c->calib_batches, QT_PTQ_DEFAULT_CALIB_BATCHES);
    if (c->eval_batches < 1)
        return qt_error(QT_ERR_ARG, "ptq: %d evaluation batches; use at least 1",
                        c->eval_batches);
    return QT_OK;
}

static void progress(const qt_ptq_config *c, const char *phase, int done, int total) {
    if (c->progress) c->progress(c->progress_user, phase, done, total);
}

qt_status qt_ptq_evaluate(qt_model *m, qt_dataloader *calib, qt_dataloader *val,
                          const qt_ptq_config *c, qt_ptq_result *out) {
    memset(out, 0, sizeof *out);
    out->int8_loss = out->int8_ppl = out->int8_vs_fake = NAN;
    QT_TRY(qt_ptq_check(c));
    if (!m || !calib || !val)
        return qt_error(QT_ERR_ARG, "ptq: model, calibration or validation loader is NULL");
    if (m->cfg.quant_mode != QT_QMODE_NONE)
        return qt_error(QT_ERR_UNSUPPORTED,
                        "ptq: the model was trained with quant.mode = %s, whose forward already "
                        "quantizes the block linears; post-training quantization evaluates "
                        "full-precision models (quant.mode = none)",
                        qt_name(&qt_quant_mode_names, m->cfg.quant_mode));
    const int L = m->cfg.n_layer, B = m->B, T = m->T;
    const size_t N = (size_t)B * T;
    const qt_model_hooks *old_hooks = m->hooks;
    const int was_training = m->training;
    qt_eval_result r;
    qt_status st = QT_OK;
    ptq_state s;
    qt_model_hooks hooks = {.activation = on_activation, .linear = on_linear, .user = &s};

    // 1. Full precision: plain evaluation, before anything is touched.
    progress(c, "fp", 0, c->eval_batches);
    QT_TRY(qt_evaluate(m, val, c->eval_batches, &r));
    out->fp_loss = r.val_loss;
    out->fp_ppl = r.val_ppl;
    out->tokens = r.tokens;
    qt_eval_result_free(&r);

    memset(&s, 0, sizeof s);
    s.m = m;
    s.c = c;
    s.L = L;
    s.direct = strcmp(m->be->name, "cpu") == 0 && m->be->dtype == QT_DTYPE_F32;
    out->head_tied = m->p.head == m->p.wte;
    s.embed_site = out->head_tied;
    float *backup = malloc(m->n_float_params * sizeof(float)), *work = NULL;
    int *inputs = malloc(N * sizeof(int)), *targets = malloc(N * sizeof(int));
    s.site_rng = calloc((size_t)(L + 1) * QT_SITE_COUNT, sizeof(qt_quant_running));
    s.lin_rng = calloc((size_t)L * QT_LINEAR_COUNT, sizeof(qt_quant_running));
    s.wcodes = malloc(m->n_float_params);
    s.wstep = calloc((size_t)m->n_tensors, sizeof(float));
    s.rowsum = calloc((size_t)m->n_tensors, sizeof(int32_t *));
    work = malloc(m->n_float_params * sizeof(float));
    int saved = 0;
    if (!backup || !work || !inputs || !targets || !s.site_rng || !s.lin_rng || !s.wcodes ||
        !s.wstep || !s.rowsum) {
        st = qt_error(QT_ERR_OOM, "ptq: no memory for the %zu-parameter copies and ranges",
                      m->n_float_params);
        goto out;
    }
    st = m->be->ops->to_host_f32(m->be->ctx, backup, m->params, m->n_float_params);
    if (st != QT_OK) goto out;
    saved = 1;

    // 2. Weights, in place.
    memcpy(work, backup, m->n_float_params * sizeof(float));
    st = quantize_weights(&s, work, &out->weight_tensors);
    if (st != QT_OK) goto out;

    // 3. Calibration on full-precision activations.
    m->hooks = &hooks;
    m->training = 0;
    s.mode = MODE_CALIB;
    qt_dataloader_rewind(calib);
    progress(c, "calibrate", 0, c->calib_batches);
    for (int i = 0; i < c->calib_batches && st == QT_OK; i++) {
        st = qt_dataloader_next(calib, inputs, targets);
        if (st == QT_OK && m->cfg.arch == QT_ARCH_BERT)
            st = qt_model_set_encoder_batch(m, qt_dataloader_lens(calib),
                                            qt_dataloader_types(calib), B, T);
        if (st == QT_OK) st = qt_model_forward(m, inputs, NULL, B, T, NULL);
        if (st == QT_OK) progress(c, "calibrate", i + 1, c->calib_batches);
    }
    if (st != QT_OK) goto out;
    for (size_t i = 0; i < (size_t)(L + 1) * QT_SITE_COUNT; i++)
        out->act_ranges += s.site_rng[i].initialized;
    for (size_t i = 0; i < (size_t)L * QT_LINEAR_COUNT; i++)
        out->act_ranges += s.lin_rng[i].initialized;

    // 4. Fake-quantized, then 5. the INT8 path, on the same ranges.
    s.mode = MODE_FAKE;
    progress(c, "fake", 0, c->eval_batches);
    st = qt_evaluate(m, val, c->eval_batches, &r);
    if (st != QT_OK) goto out;
    out->fake_loss = r.val_loss;
    out->fake_ppl = r.val_ppl;
    qt_eval_result_free(&r);
    if (c->int8_path) {
        s.mode = MODE_INT8;
        out->int8_gemm = qt_cpu_gemm_s8_path();
        progress(c, "int8", 0, c->eval_batches);
        st = qt_evaluate(m, val, c->eval_batches, &r);
        if (st != QT_OK) goto out;
        out->int8_loss = r.val_loss;
        out->int8_ppl = r.val_ppl;
        out->int8_vs_fake = fabs(out->int8_ppl - out->fake_ppl) / out->fake_ppl;
        out->int8_linears = s.int8_linears;
        qt_eval_result_free(&r);
    }
out:
    m->hooks = old_hooks;
    m->training = was_training;
    if (saved) {
        qt_status rs =
            m->be->ops->to_device_f32(m->be->ctx, m->params, backup, m->n_float_params);
        if (st == QT_OK) st = rs;
    }
    if (s.dq) m->be->ops->free(m->be->ctx, s.dq);
    if (s.rowsum)
        for (int i = 0; i < m->n_tensors; i++) free(s.rowsum[i]);
    free(s.rowsum);
    free(s.wstep);
    free(s.wcodes);
    free(s.site_rng);
    free(s.lin_rng);
    free(s.hx);
    free(s.hq);
    free(s.hout);
    free(s.hbias);
    free(s.bscale);
    free(s.ascale);
    free(s.azero);
    free(s.acodes);
    free(backup);
    free(work);
    free(inputs);
    free(targets);
    return st;
}

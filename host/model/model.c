// model.c: parameter table, allocation, init, forward and backward of the OPT-style LM and
// of the BERT-style masked-LM encoder (qtrain/model.h).
//
// Shapes: B batch, T sequence, C d_model, H heads, D = C/H, F d_ff, V vocabulary, L layers,
// N = B*T tokens. Everything runs through the backend's op table (qtrain/backend.h), so the
// same schedule drives the CPU and, later, the CUDA backend.
#include "qtrain/model.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/philox.h"
#include "kernels/embedding.h"
#include "qlinear.h"
#include "qtrain/mlm.h"

#define BE (m->be->ops)
#define CTX (m->be->ctx)
// Element `n` of a tensor in the backend's dtype.
#define AT(p, n) QT_AT(p, m->es, n)

// ---- parameter table --------------------------------------------------------------------
//
// Every parameter tensor of a config is named once, in tensor_specs: its Hugging Face name,
// kind, shape and the view field that points at it. build_table lays the table out from the
// specs; point_params points the views (params and grads) by zipping the same specs with the
// table, and plan_storage finds the block linears through their view fields.

// One parameter tensor: `view` is the offset of its pointer in qt_model_params (layer < 0) or
// in layer `layer`'s qt_layer_params.
typedef struct {
    char name[64];
    qt_tensor_kind kind;
    int ndim, shape[3];
    int layer;
    size_t view;
} tensor_spec;

#define MODEL_VIEW(field) offsetof(qt_model_params, field)
#define LAYER_VIEW(field) offsetof(qt_layer_params, field)
// The views of the block linears' weights, in qt_linear_id order.
static const size_t linear_views[QT_LINEAR_COUNT] = {LAYER_VIEW(qkv_w), LAYER_VIEW(proj_w),
                                                     LAYER_VIEW(fc_w), LAYER_VIEW(fc2_w)};

typedef struct {
    tensor_spec *s; // (cap), NULL: only count
    int n, cap;
    const char *block_prefix; // "decoder.layers." or the encoder's "bert.encoder.layer."
} spec_list;

// Appends one spec; a block's tensor (layer >= 0) is named <block_prefix><layer>.<name>.
static void spec_add(spec_list *sl, int layer, size_t view, qt_tensor_kind kind, int ndim, int d0,
                     int d1, int d2, const char *name) {
    if (sl->s && sl->n < sl->cap) {
        tensor_spec *t = &sl->s[sl->n];
        if (layer >= 0)
            snprintf(t->name, sizeof t->name, "%s%d.%s", sl->block_prefix, layer, name);
        else
            snprintf(t->name, sizeof t->name, "%s", name);
        t->kind = kind;
        t->ndim = ndim;
        t->shape[0] = d0;
        t->shape[1] = d1;
        t->shape[2] = d2;
        t->layer = layer;
        t->view = view;
    }
    sl->n++;
}

static int gate_hidden(const qt_config *cfg) {
    int D = cfg->d_model / cfg->n_head;
    if (cfg->gate_n_hid > 0) return cfg->gate_n_hid;
    return D / 4 > 0 ? D / 4 : 1;
}

// fc1's output width: SwiGLU stacks the gate and up projections, (2F, C), rows [gate | up].
static int fc1_width(const qt_config *cfg) {
    return cfg->activation == QT_ACT_SWIGLU ? 2 * cfg->d_ff : cfg->d_ff;
}

static float attn_dropout_prob(const qt_config *cfg) {
    return cfg->attn_dropout >= 0 ? cfg->attn_dropout : cfg->dropout;
}

// Gate values per token: one per head, one per channel for the elementwise gate, 0 ungated.
static int gate_cols(const qt_config *cfg) {
    if (cfg->gate == QT_GATE_NONE) return 0;
    return cfg->gate == QT_GATE_ELEMENTWISE ? cfg->d_model : cfg->n_head;
}

// The config's tensors in table order into sl (with sl->s NULL: counts them).
static void tensor_specs(const qt_config *cfg, spec_list *sl) {
    int C = cfg->d_model, F = cfg->d_ff, V = cfg->vocab_size, H = cfg->n_head, D = C / H;
    int F1 = fc1_width(cfg);
    int norm_bias = cfg->bias && cfg->norm == QT_NORM_LAYERNORM;
    const qt_tensor_kind MAT = QT_TENSOR_MATRIX, BIAS = QT_TENSOR_BIAS, NORM = QT_TENSOR_NORM;
    const int encoder = cfg->arch == QT_ARCH_BERT, post = cfg->norm_position == QT_NORM_POST;
    sl->block_prefix = encoder ? "bert.encoder.layer." : "decoder.layers.";
    if (encoder) {
        // Hugging Face BERT's names outside the blocks; the blocks keep qtrain's names.
        spec_add(sl, -1, MODEL_VIEW(wte), MAT, 2, V, C, 0,
                 "bert.embeddings.word_embeddings.weight");
        spec_add(sl, -1, MODEL_VIEW(wpe), MAT, 2, cfg->max_seq_len, C, 0,
                 "bert.embeddings.position_embeddings.weight");
        spec_add(sl, -1, MODEL_VIEW(wtt), MAT, 2, QT_MLM_TOKEN_TYPES, C, 0,
                 "bert.embeddings.token_type_embeddings.weight");
        if (post) {
            spec_add(sl, -1, MODEL_VIEW(emb_ln_w), NORM, 1, C, 0, 0,
                     "bert.embeddings.LayerNorm.weight");
            if (norm_bias)
                spec_add(sl, -1, MODEL_VIEW(emb_ln_b), BIAS, 1, C, 0, 0,
                         "bert.embeddings.LayerNorm.bias");
        }
    } else {
        spec_add(sl, -1, MODEL_VIEW(wte), MAT, 2, V, C, 0, "decoder.embed_tokens.weight");
        if (cfg->pos == QT_POS_LEARNED)
            spec_add(sl, -1, MODEL_VIEW(wpe), MAT, 2, cfg->max_seq_len, C, 0,
                     "decoder.embed_positions.weight");
    }
    for (int l = 0; l < cfg->n_layer; l++) {
        spec_add(sl, l, LAYER_VIEW(ln1_w), NORM, 1, C, 0, 0, "self_attn_layer_norm.weight");
        if (norm_bias)
            spec_add(sl, l, LAYER_VIEW(ln1_b), BIAS, 1, C, 0, 0, "self_attn_layer_norm.bias");
        spec_add(sl, l, LAYER_VIEW(qkv_w), MAT, 2, 3 * C, C, 0, "self_attn.qkv_proj.weight");
        if (cfg->bias)
            spec_add(sl, l, LAYER_VIEW(qkv_b), BIAS, 1, 3 * C, 0, 0, "self_attn.qkv_proj.bias");
        spec_add(sl, l, LAYER_VIEW(proj_w), MAT, 2, C, C, 0, "self_attn.out_proj.weight");
        if (cfg->bias)
            spec_add(sl, l, LAYER_VIEW(proj_b), BIAS, 1, C, 0, 0, "self_attn.out_proj.bias");
        switch (cfg->gate) {
        case QT_GATE_NONE: break;
        case QT_GATE_LINEAR:
        case QT_GATE_ALL_HEADS:
        case QT_GATE_ELEMENTWISE: {
            // linear: (H, D) on each head's slice; all_heads: (H, C) on the whole x;
            // elementwise: (C, C) on the whole x, one gate per channel
            int G = cfg->gate == QT_GATE_ELEMENTWISE ? C : H;
            spec_add(sl, l, LAYER_VIEW(gate_w1), MAT, 2, G, cfg->gate == QT_GATE_LINEAR ? D : C, 0,
                     "self_attn.gate.weight");
            spec_add(sl, l, LAYER_VIEW(gate_b1), BIAS, 1, G, 0, 0, "self_attn.gate.bias");
            break;
        }
        case QT_GATE_MLP: {
            int nh = gate_hidden(cfg);
            spec_add(sl, l, LAYER_VIEW(gate_w1), MAT, 3, H, nh, D, "self_attn.gate.fc1.weight");
            spec_add(sl, l, LAYER_VIEW(gate_b1), BIAS, 2, H, nh, 0, "self_attn.gate.fc1.bias");
            spec_add(sl, l, LAYER_VIEW(gate_w2), MAT, 2, H, nh, 0, "self_attn.gate.fc2.weight");
            spec_add(sl, l, LAYER_VIEW(gate_b2), BIAS, 1, H, 0, 0, "self_attn.gate.fc2.bias");
            break;
        }
        }
        if (cfg->sink == QT_SINK_LEARNED)
            spec_add(sl, l, LAYER_VIEW(sink), BIAS, 1, H, 0, 0, "self_attn.sinks");
        spec_add(sl, l, LAYER_VIEW(ln2_w), NORM, 1, C, 0, 0, "final_layer_norm.weight");
        if (norm_bias)
            spec_add(sl, l, LAYER_VIEW(ln2_b), BIAS, 1, C, 0, 0, "final_layer_norm.bias");
        spec_add(sl, l, LAYER_VIEW(fc_w), MAT, 2, F1, C, 0, "fc1.weight");
        if (cfg->bias) spec_add(sl, l, LAYER_VIEW(fc_b), BIAS, 1, F1, 0, 0, "fc1.bias");
        spec_add(sl, l, LAYER_VIEW(fc2_w), MAT, 2, C, F, 0, "fc2.weight");
        if (cfg->bias) spec_add(sl, l, LAYER_VIEW(fc2_b), BIAS, 1, C, 0, 0, "fc2.bias");
    }
    if (encoder) {
        if (!post) {
            spec_add(sl, -1, MODEL_VIEW(lnf_w), NORM, 1, C, 0, 0,
                     "bert.encoder.final_layer_norm.weight");
            if (norm_bias)
                spec_add(sl, -1, MODEL_VIEW(lnf_b), BIAS, 1, C, 0, 0,
                         "bert.encoder.final_layer_norm.bias");
        }
        spec_add(sl, -1, MODEL_VIEW(mlm_dense_w), MAT, 2, C, C, 0,
                 "cls.predictions.transform.dense.weight");
        if (cfg->bias)
            spec_add(sl, -1, MODEL_VIEW(mlm_dense_b), BIAS, 1, C, 0, 0,
                     "cls.predictions.transform.dense.bias");
        spec_add(sl, -1, MODEL_VIEW(mlm_ln_w), NORM, 1, C, 0, 0,
                 "cls.predictions.transform.LayerNorm.weight");
        if (norm_bias)
            spec_add(sl, -1, MODEL_VIEW(mlm_ln_b), BIAS, 1, C, 0, 0,
                     "cls.predictions.transform.LayerNorm.bias");
        // The decoder's bias exists even with model.bias = 0: it is the MLM head's own.
        spec_add(sl, -1, MODEL_VIEW(mlm_bias), BIAS, 1, V, 0, 0, "cls.predictions.bias");
        return; // the decoder's weight is wte (validated: model.tie_embeddings = 1)
    }
    spec_add(sl, -1, MODEL_VIEW(lnf_w), NORM, 1, C, 0, 0, "decoder.final_layer_norm.weight");
    if (norm_bias)
        spec_add(sl, -1, MODEL_VIEW(lnf_b), BIAS, 1, C, 0, 0, "decoder.final_layer_norm.bias");
    if (!cfg->tie_embeddings) spec_add(sl, -1, MODEL_VIEW(head), MAT, 2, V, C, 0, "lm_head.weight");
}

// The config's specs, malloc'd, in *out (*n of them).
static qt_status make_specs(const qt_config *cfg, tensor_spec **out, int *n) {
    spec_list sl = {NULL, 0, 0, NULL};
    tensor_specs(cfg, &sl);
    sl.s = malloc((size_t)sl.n * sizeof *sl.s);
    if (!sl.s) return qt_error(QT_ERR_OOM, "cannot allocate the parameter table");
    sl.cap = sl.n;
    sl.n = 0;
    tensor_specs(cfg, &sl);
    *out = sl.s;
    *n = sl.n;
    return QT_OK;
}

// Lays the table out: every tensor 16-float (64-byte) aligned in the gradient arena.
static qt_status build_table(qt_model *m) {
    tensor_spec *specs;
    int n;
    QT_TRY(make_specs(&m->cfg, &specs, &n));
    m->tensors = calloc((size_t)n, sizeof *m->tensors);
    if (!m->tensors) {
        free(specs);
        return qt_error(QT_ERR_OOM, "cannot allocate the parameter table");
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        qt_tensor_info *ti = &m->tensors[i];
        const tensor_spec *s = &specs[i];
        snprintf(ti->name, sizeof ti->name, "%s", s->name);
        ti->kind = s->kind;
        ti->ndim = s->ndim;
        memcpy(ti->shape, s->shape, sizeof ti->shape);
        ti->numel = (size_t)s->shape[0] * (s->ndim > 1 ? (size_t)s->shape[1] : 1) *
                    (s->ndim > 2 ? (size_t)s->shape[2] : 1);
        ti->offset = total;
        total += (ti->numel + 15) / 16 * 16;
    }
    free(specs);
    m->n_tensors = n;
    m->n_params = total;
    return QT_OK;
}

int qt_model_find_tensor(const qt_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

// The address of tensor i in the parameter arena (params = 1: the float arena, or the code
// arena for a DQT tensor) or in the gradient arena `base` (params = 0).
static void *tensor_at(const qt_model *m, void *base, int i, int params) {
    const qt_tensor_info *t = &m->tensors[i];
    if (!params) return QT_AT(base, m->es, t->offset);
    if (t->quantized) return m->codes + t->code_offset;
    return QT_AT(base, m->es, t->param_offset);
}

// The view field that points at tensor spec s.
static void **view_of(qt_model_params *views, const tensor_spec *s) {
    char *owner = s->layer < 0 ? (char *)views : (char *)&views->layers[s->layer];
    return (void **)(owner + s->view);
}

// Points `views` (zeroed, with its layers) into `base`; absent tensors stay NULL, and a tied
// head is the token embedding.
static qt_status point_params(const qt_model *m, void *base, qt_model_params *views, int params) {
    tensor_spec *specs;
    int n;
    QT_TRY(make_specs(&m->cfg, &specs, &n));
    for (int i = 0; i < n; i++)
        *view_of(views, &specs[i]) = tensor_at(m, base, i, params);
    if (!views->head) views->head = views->wte;
    free(specs);
    return QT_OK;
}

// ---- initialisation ---------------------------------------------------------------------

// A standard normal draw for element i of tensor `tensor_id` (Box-Muller on two Philox
// uniforms), so init depends only on (seed, tensor, element).
static float init_normal(uint64_t seed, uint64_t tensor_id, size_t i) {
    uint64_t stream = qt_stream_id(0x1417, tensor_id, 0);
    float u1 = qt_philox_uniform(seed, stream, 2 * (uint64_t)i);
    float u2 = qt_philox_uniform(seed, stream, 2 * (uint64_t)i + 1);
    return sqrtf(-2.0f * logf(1.0f - u1)) * cosf(6.28318530718f * u2);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static qt_status init_params(qt_model *m) {
    const qt_config *cfg = &m->cfg;
    float *host = malloc(m->n_params * sizeof(float));
    if (!host) return qt_error(QT_ERR_OOM, "cannot allocate %zu floats for init", m->n_params);
    memset(host, 0, m->n_params * sizeof(float));
    // Residual projections (out_proj, fc2) get std / sqrt(2L) (GPT-2's scaled init).
    float resid_std = cfg->init_std / sqrtf(2.0f * (float)cfg->n_layer);
    float pi = cfg->gate_pi_init;
    float gate_bias = logf(pi / (1.0f - pi));
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const qt_tensor_info *t = &m->tensors[ti];
        float *w = host + t->offset;
        if (t->kind == QT_TENSOR_NORM) {
            for (size_t i = 0; i < t->numel; i++) w[i] = 1.0f;
        } else if (t->kind == QT_TENSOR_BIAS) {
            // The bias that sets the gate's initial value: the gate's last layer.
            int is_gate_out = ends_with(t->name, "self_attn.gate.bias") ||
                              ends_with(t->name, "self_attn.gate.fc2.bias");
            for (size_t i = 0; i < t->numel; i++) w[i] = is_gate_out ? gate_bias : 0.0f;
        } else {
            int resid = ends_with(t->name, "out_proj.weight") || ends_with(t->name, "fc2.weight");
            float std = resid ? resid_std : cfg->init_std;
            for (size_t i = 0; i < t->numel; i++) w[i] = std * init_normal(cfg->seed, ti, i);
        }
    }
    // The float arena holds the tensors that are not quantized, at their param_offset; DQT
    // tensors go onto their grid: s = mean|W| / qmax, q = clamp(round(W / s)) (PAPERS.md s. 7).
    float *fp = m->n_float_params ? calloc(m->n_float_params, sizeof(float)) : NULL;
    int8_t *codes = m->n_code_bytes ? calloc(m->n_code_bytes, 1) : NULL;
    qt_status st = QT_OK;
    if ((m->n_float_params && !fp) || (m->n_code_bytes && !codes))
        st = qt_error(QT_ERR_OOM, "cannot allocate the initial parameters");
    int qmin = 0, qmax = 0;
    if (cfg->quant_mode == QT_QMODE_DQT) qt_dqt_grid(cfg, &qmin, &qmax);
    for (int ti = 0; st == QT_OK && ti < m->n_tensors; ti++) {
        const qt_tensor_info *t = &m->tensors[ti];
        const float *w = host + t->offset;
        if (!t->quantized) {
            memcpy(fp + t->param_offset, w, t->numel * sizeof(float));
            continue;
        }
        double abs_sum = 0.0;
        for (size_t i = 0; i < t->numel; i++) abs_sum += fabs((double)w[i]);
        float scale = (float)(abs_sum / (double)t->numel) / (float)qmax;
        if (!(scale > 1e-12f)) scale = 1e-12f;
        m->code_scales[ti] = scale;
        for (size_t i = 0; i < t->numel; i++) {
            float q = rintf(w[i] / scale);
            q = q < (float)qmin ? (float)qmin : q > (float)qmax ? (float)qmax : q;
            codes[t->code_offset + i] = (int8_t)q;
        }
    }
    free(host);
    if (st == QT_OK && m->n_float_params)
        st = BE->to_device_f32(CTX, m->params, fp, m->n_float_params);
    if (st == QT_OK && m->n_code_bytes) st = BE->to_device(CTX, m->codes, codes, m->n_code_bytes);
    free(fp);
    free(codes);
    return st;
}

// DQT stores the block linears' weights as codes; every other tensor stays float. Lays out
// the float arena (param_offset) and the code arena (code_offset) and finds the linears.
static qt_status plan_storage(qt_model *m) {
    const qt_config *cfg = &m->cfg;
    m->linear_tensor = calloc((size_t)cfg->n_layer, sizeof *m->linear_tensor);
    m->code_scales = calloc((size_t)m->n_tensors, sizeof(float));
    if (!m->linear_tensor || !m->code_scales)
        return qt_error(QT_ERR_OOM, "cannot allocate the storage plan");
    tensor_spec *specs;
    int n;
    QT_TRY(make_specs(cfg, &specs, &n));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < QT_LINEAR_COUNT; k++)
            if (specs[i].layer >= 0 && specs[i].view == linear_views[k]) {
                m->linear_tensor[specs[i].layer][k] = i;
                if (cfg->quant_mode == QT_QMODE_DQT) m->tensors[i].quantized = 1;
            }
    free(specs);
    size_t fl = 0, codes = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        qt_tensor_info *t = &m->tensors[i];
        if (t->quantized) {
            t->code_offset = codes;
            codes += (t->numel + 63) / 64 * 64;
        } else {
            t->param_offset = fl;
            fl += (t->numel + 15) / 16 * 16;
        }
    }
    m->n_float_params = fl;
    m->n_code_bytes = codes;
    return QT_OK;
}

static qt_softmax_params softmax_params(const qt_config *cfg) {
    qt_softmax_params sp = {
        .kind = cfg->softmax,
        .scale = 1.0f / sqrtf((float)(cfg->d_model / cfg->n_head)),
        .gamma = qt_config_gamma(cfg),
        .zeta = cfg->zeta,
        .eta = cfg->eta,
        .beta = cfg->beta,
    };
    return sp;
}

// The fused op's parameters for cfg: the softmax variant, the sink, the gate's kind.
static qt_attn_params attn_params_of(const qt_config *cfg) {
    const int elementwise = cfg->gate == QT_GATE_ELEMENTWISE;
    return (qt_attn_params){
        .sm = softmax_params(cfg),
        .sink = cfg->sink,
        .gate = cfg->gate == QT_GATE_NONE ? QT_ATTN_GATE_NONE
                : elementwise             ? QT_ATTN_GATE_CHANNEL
                                          : QT_ATTN_GATE_HEAD,
    };
}

// ---- attention: fused or composed ---------------------------------------------------------

// The one place that decides how a pass runs attention: the backend's fused op
// (attention_flash_*: scores, softmax variant, sink, context and gate, no (B, H, T, T)
// buffer), unless the backend has none, attention dropout is on (the fused op keeps no
// probabilities to drop), or hooks observe the forward (PTQ reads and rewrites the scores and
// probabilities, which only the composed path materializes). The composed path (gemm,
// softmax_clip[_sink], dropout, gemm, gate_mul) is otherwise the test oracle.
// A backend may decline a shape (attention_flash_supports: the CUDA kernels have head dims 64
// and 128, fp16 and bf16 only); the model then composes, and says so once.
static int attn_backend_fuses(const qt_backend *be, const qt_attn_params *ap, int C, int H) {
    if (!be->ops->attention_flash_fwd || !be->ops->attention_flash_bwd) return 0;
    if (!be->ops->attention_flash_supports || be->ops->attention_flash_supports(be->ctx, ap, C, H))
        return 1;
    static int told;
    if (!told) {
        told = 1;
        fprintf(stderr, "qtrain: the %s backend's fused attention declines head dim %d; "
                        "composing attention from gemm and softmax_clip\n",
                be->name ? be->name : "this", C / H);
    }
    return 0;
}

// ---- activations --------------------------------------------------------------------------

typedef struct {
    void **slot;
    size_t bytes;
} act_request;

// The optional ops this config needs, named when the backend lacks one.
static qt_status check_backend_ops(const qt_model *m) {
    const qt_config *cfg = &m->cfg;
    const qt_backend_ops *o = m->be->ops;
    struct {
        int needed;
        const void *fn;
        const char *name, *why;
    } need[] = {
        {cfg->norm == QT_NORM_RMSNORM, (const void *)o->rmsnorm_fwd, "rmsnorm_fwd", "model.norm = rmsnorm"},
        {cfg->norm == QT_NORM_RMSNORM, (const void *)o->rmsnorm_bwd, "rmsnorm_bwd", "model.norm = rmsnorm"},
        {cfg->pos == QT_POS_ROPE, (const void *)o->rope_fwd, "rope_fwd", "model.pos = rope"},
        {cfg->pos == QT_POS_ROPE, (const void *)o->rope_bwd, "rope_bwd", "model.pos = rope"},
        {cfg->activation == QT_ACT_SWIGLU, (const void *)o->swiglu_fwd, "swiglu_fwd", "model.activation = swiglu"},
        {cfg->activation == QT_ACT_SWIGLU, (const void *)o->swiglu_bwd, "swiglu_bwd", "model.activation = swiglu"},
        {cfg->sink != QT_SINK_NONE, (const void *)o->softmax_clip_sink_fwd,
         "softmax_clip_sink_fwd", "attn.sink"},
        {cfg->sink != QT_SINK_NONE, (const void *)o->softmax_clip_sink_bwd,
         "softmax_clip_sink_bwd", "attn.sink"},
        {cfg->quant_mode != QT_QMODE_NONE, (const void *)o->quant_fake, "quant_fake", "quant.mode"},
        {cfg->quant_mode == QT_QMODE_DQT, (const void *)o->dqt_dequant, "dqt_dequant", "quant.mode = dqt"},
        {cfg->quant_mode == QT_QMODE_DQT, (const void *)o->dqt_step, "dqt_step", "quant.mode = dqt"},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (need[i].needed && !need[i].fn)
            return qt_error(QT_ERR_UNSUPPORTED, "backend '%s' lacks op '%s', which %s needs",
                            m->be->name, need[i].name, need[i].why);
    return QT_OK;
}

qt_status qt_model_init(qt_model *m, const qt_config *cfg, qt_backend *be, int B, int T) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    m->B = B;
    m->T = T;
    m->es = qt_dtype_size(be->dtype);
    QT_TRY(qt_config_validate(cfg));
    QT_TRY(qt_backend_check(be));
    if (B < 1 || T < 1 || T > cfg->max_seq_len)
        return qt_error(QT_ERR_ARG, "model: batch %d x sequence %d invalid (max_seq_len %d)", B,
                        T, cfg->max_seq_len);
    qt_status st = build_table(m);
    if (st == QT_OK) st = plan_storage(m);
    if (st == QT_OK) st = check_backend_ops(m);
    if (st != QT_OK) {
        qt_model_free(m);
        return st;
    }
    int L = cfg->n_layer, C = cfg->d_model, H = cfg->n_head, F = cfg->d_ff, V = cfg->vocab_size;
    int F1 = fc1_width(cfg);
    size_t N = (size_t)B * T, BHTT = (size_t)B * H * T * T;
    int nh = cfg->gate == QT_GATE_MLP ? gate_hidden(cfg) : 0;
    int gated = cfg->gate != QT_GATE_NONE, G = gate_cols(cfg);
    float attn_drop = attn_dropout_prob(cfg);
    m->gate_cols = G;
    // The fused op's state exists where the backend runs the op for this shape; the composed
    // path's (B, H, T, T) buffers from the start only where training will compose (no fused
    // op or a declined shape, or attention dropout), otherwise on first use
    // (attn_ensure_composed).
    const qt_attn_params ap = attn_params_of(cfg);
    const int fusable = attn_backend_fuses(be, &ap, C, H);
    const int compose = !fusable || attn_drop > 0;
    const int keep_R = cfg->softmax != QT_SOFTMAX_VANILLA;

    m->p.layers = calloc((size_t)L, sizeof(qt_layer_params));
    m->g.layers = calloc((size_t)L, sizeof(qt_layer_params));
    m->acts = calloc((size_t)L, sizeof(qt_layer_acts));
    if (!m->p.layers || !m->g.layers || !m->acts) {
        qt_model_free(m);
        return qt_error(QT_ERR_OOM, "cannot allocate the model's layer tables");
    }
    st = be->ops->alloc(be->ctx, &m->params, (m->n_float_params ? m->n_float_params : 1) * m->es);
    if (st == QT_OK) st = be->ops->alloc(be->ctx, &m->grads, m->n_params * m->es);
    if (st == QT_OK && m->n_code_bytes)
        st = be->ops->alloc(be->ctx, (void **)&m->codes, m->n_code_bytes);
    if (st != QT_OK) {
        qt_model_free(m);
        return st;
    }
    st = point_params(m, m->params, &m->p, 1);
    if (st == QT_OK) st = point_params(m, m->grads, &m->g, 0);
    if (st != QT_OK) {
        qt_model_free(m);
        return st;
    }

    // Every activation buffer, carved from one arena in one pass.
    act_request *req = malloc(sizeof(act_request) * (size_t)(56 + 28 * L));
    if (!req) {
        qt_model_free(m);
        return qt_error(QT_ERR_OOM, "cannot allocate the activation plan");
    }
    int nreq = 0;
    // REQ: the backend's dtype; REQF: fp32; REQI: int32.
#define REQ(ptr, count) (req[nreq++] = (act_request){(void **)&(ptr), (count) * m->es})
#define REQF(ptr, count) (req[nreq++] = (act_request){(void **)&(ptr), (count) * sizeof(float)})
#define REQI(ptr, count) (req[nreq++] = (act_request){(void **)&(ptr), (count) * sizeof(int)})
#define REQB(ptr, bytes) (req[nreq++] = (act_request){(void **)&(ptr), (bytes)})
#define REQ_NORM(n) (REQ((n).y, N * C), REQF((n).mean, N), REQF((n).rstd, N))
    for (int l = 0; l < L; l++) {
        qt_layer_acts *a = &m->acts[l];
        REQ_NORM(a->ln1);
        REQ(a->qkv, N * 3 * C);
        if (compose) {
            REQF(a->p, BHTT);
            REQ(a->probs, BHTT);
            if (attn_drop > 0) REQ(a->probs_drop, BHTT);
        }
        if (fusable) {
            REQF(a->lse, (size_t)B * H * T);
            if (keep_R) REQF(a->R, N * C);
            REQB(a->nzero, (size_t)B * H * sizeof(int64_t));
        }
        REQ(a->ctx, N * C);
        if (gated) {
            REQF(a->gate, N * G);
            if (nh) REQF(a->gate_hidden, N * H * nh);
            REQ(a->gated, N * C);
        }
        REQ(a->attn_out, N * C);
        REQ(a->resid1, N * C);
        REQ_NORM(a->ln2);
        REQ(a->fc, N * F1);
        REQ(a->fc_act, N * F);
        REQ(a->ffn_out, N * C);
        REQ(a->resid2, N * C);
    }
    REQ(m->encoded, N * C);
    REQ_NORM(m->lnf);
    REQ(m->logits, N * V);
    REQF(m->losses, N);
    REQF(m->ce_stats, 2 * N);
    REQF(m->dlosses, N);
    REQ(m->d_resid, N * C);
    REQ(m->d_ln, N * C);
    REQ(m->d_qkv, N * 3 * C);
    REQ(m->d_ctx, N * C);
    REQ(m->d_gated, N * C);
    REQF(m->d_gate, N * (G > 0 ? G : 1));
    REQ(m->d_branch, N * C);
    if (compose) {
        REQ(m->d_probs, BHTT);
        REQ(m->d_scores, BHTT);
        if (attn_drop > 0) REQ(m->d_probs_pre, BHTT);
    }
    // d fc: GELU's and ReLU's backward runs in place on d_fc_act (overwriting: no memset);
    // SwiGLU's input is twice as wide and gets its own buffer
    if (cfg->activation == QT_ACT_SWIGLU) REQ(m->d_fc, N * F1);
    REQ(m->d_fc_act, N * F);
    if (cfg->quant_mode != QT_QMODE_NONE) {
        size_t max_in = (size_t)(C > F ? C : F), max_out = (size_t)(3 * C > F1 ? 3 * C : F1);
        if ((size_t)C > max_out) max_out = (size_t)C;
        size_t max_w = (size_t)3 * C * C;
        if ((size_t)F1 * C > max_w) max_w = (size_t)F1 * C;
        REQ(m->q_w, max_w);
        REQ(m->q_x, N * max_in);
        REQ(m->q_g, N * max_out);
    }
    REQ(m->zeros_c, C);
    // inputs (N), the targets (N), then the token buckets (order N, start N + 1, token N):
    // one copy uploads them all
    REQI(m->inputs, 5 * N + 1);
    REQI(m->lens, (size_t)B * H * T);
    if (cfg->arch == QT_ARCH_BERT) { // after the decoder's buffers, which keep their layout
        if (cfg->norm_position == QT_NORM_POST) {
            REQ(m->emb_sum, N * C);
            REQF(m->emb_ln.mean, N);
            REQF(m->emb_ln.rstd, N);
        }
        REQ(m->mlm_h, N * C);
        REQ(m->mlm_act, N * C);
        REQ_NORM(m->mlm_ln);
        REQI(m->types, N);
        REQI(m->qlens, N);
    }
#undef REQ
#undef REQF
#undef REQI
#undef REQB
#undef REQ_NORM
    // Every buffer starts on a 64-byte boundary.
    size_t total = 0;
    for (int i = 0; i < nreq; i++) total += (req[i].bytes + 63) / 64 * 64;
    m->act_bytes = total;
    st = be->ops->alloc(be->ctx, &m->act_arena, total);
    if (st == QT_OK) st = be->ops->zero(be->ctx, m->act_arena, total);
    if (st != QT_OK) {
        free(req);
        qt_model_free(m);
        return st;
    }
    size_t off = 0;
    for (int i = 0; i < nreq; i++) {
        *req[i].slot = (char *)m->act_arena + off;
        off += (req[i].bytes + 63) / 64 * 64;
    }
    free(req);
    m->targets = m->inputs + N;
    m->bucket_order = m->inputs + 2 * N;
    m->bucket_start = m->bucket_order + N;
    m->bucket_token = m->bucket_start + N + 1;
    m->n_buckets = -1;
    m->lens_T = 0;
    // Host staging of the per-step copies (losses, their gradients, attention lengths).
    m->host_losses = malloc(N * sizeof(float));
    m->host_lens = malloc((size_t)B * H * T * sizeof(int));
    // zeros: what a shorter batch's gap uploads; 2 N more: the bucket sort's scratch
    m->host_tokens = calloc(7 * N + 1, sizeof(int));
    if (cfg->arch == QT_ARCH_BERT) {
        m->host_seq_lens = malloc((size_t)B * sizeof(int));
        m->host_types = malloc(N * sizeof(int));
    }
    if (!m->host_losses || !m->host_lens || !m->host_tokens ||
        (cfg->arch == QT_ARCH_BERT && (!m->host_seq_lens || !m->host_types))) {
        qt_model_free(m);
        return qt_error(QT_ERR_OOM, "cannot allocate the model's host staging");
    }
    st = init_params(m);
    if (st == QT_OK) st = qt_model_zero_grad(m);
    if (st != QT_OK) qt_model_free(m);
    return st;
}

void qt_model_free(qt_model *m) {
    if (m->be && m->be->ops) {
        if (m->params) m->be->ops->free(m->be->ctx, m->params);
        if (m->grads) m->be->ops->free(m->be->ctx, m->grads);
        if (m->act_arena) m->be->ops->free(m->be->ctx, m->act_arena);
        if (m->tt_arena) m->be->ops->free(m->be->ctx, m->tt_arena);
        if (m->codes) m->be->ops->free(m->be->ctx, m->codes);
    }
    free(m->tensors);
    free(m->code_scales);
    free(m->linear_tensor);
    free(m->p.layers);
    free(m->g.layers);
    free(m->acts);
    free(m->host_losses);
    free(m->host_lens);
    free(m->host_tokens);
    free(m->host_seq_lens);
    free(m->host_types);
    memset(m, 0, sizeof *m);
}

qt_status qt_model_zero_grad(qt_model *m) {
    return BE->zero(CTX, m->grads, m->n_params * m->es);
}

size_t qt_model_num_params(const qt_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->n_tensors; i++) n += m->tensors[i].numel;
    return n;
}

void qt_model_memory_report(const qt_model *m, qt_model_memory *out) {
    memset(out, 0, sizeof *out);
    out->n_weights = qt_model_num_params(m);
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].quantized) {
            out->n_quantized += m->tensors[i].numel;
            out->code_bytes += sizeof(float); // its scale
        }
    out->code_bytes += m->n_code_bytes;
    out->float_param_bytes = m->n_float_params * m->es;
    out->grad_bytes = m->n_params * m->es;
    out->act_bytes = m->act_bytes + m->tt_bytes;
    // the (B, H, T, T) buffers, wherever they are
    const size_t BHTT = (size_t)m->B * m->cfg.n_head * m->T * m->T;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const qt_layer_acts *a = &m->acts[l];
        out->attn_tt_bytes += (a->p ? BHTT * sizeof(float) : 0) + (a->probs ? BHTT * m->es : 0) +
                              (a->probs_drop ? BHTT * m->es : 0);
    }
    out->attn_tt_bytes += (m->d_probs ? BHTT * m->es : 0) + (m->d_scores ? BHTT * m->es : 0) +
                          (m->d_probs_pre ? BHTT * m->es : 0);
}

double qt_model_flops_per_token(const qt_config *cfg, int T) {
    double C = cfg->d_model, F = cfg->d_ff, L = cfg->n_layer, V = cfg->vocab_size;
    // Matmul parameters: per layer qkv (3C^2) + out_proj (C^2) + fc1, fc2 (2CF); head VC.
    double ffn = cfg->activation == QT_ACT_SWIGLU ? 3.0 : 2.0; // SwiGLU: gate, up, down
    double matmul_params = L * (4.0 * C * C + ffn * C * F) + V * C;
    if (cfg->arch == QT_ARCH_BERT) matmul_params += C * C; // the MLM head's dense
    // Attention: QK^T and PV, each 2*T*C per token forward (full T x T, as computed).
    double attn = L * 2.0 * 2.0 * T * C;
    return 6.0 * matmul_params + 3.0 * attn;
}

// ---- forward -----------------------------------------------------------------------------

static qt_status ensure_lens(qt_model *m, int T) {
    if (m->cfg.arch == QT_ARCH_BERT) {
        // Bidirectional: every query of sequence b attends its len_b real keys. The batch's
        // lengths change every step, so both layouts are rebuilt each forward: (B, H, T) rows
        // for softmax_clip, (B, T) queries for the fused op.
        const int B = m->enc_B, H = m->cfg.n_head;
        for (int b = 0; b < B; b++)
            for (int r = 0; r < H * T; r++)
                m->host_lens[(size_t)b * H * T + r] = m->host_seq_lens[b];
        QT_TRY(BE->to_device(CTX, m->lens, m->host_lens, (size_t)B * H * T * sizeof(int)));
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) m->host_lens[(size_t)b * T + t] = m->host_seq_lens[b];
        QT_TRY(BE->to_device(CTX, m->qlens, m->host_lens, (size_t)B * T * sizeof(int)));
        m->lens_T = 0;
        return QT_OK;
    }
    if (m->lens_T == T) return QT_OK;
    int rows = m->B * m->cfg.n_head * T;
    // Causal: query row t attends keys [0, t].
    for (int r = 0; r < rows; r++) m->host_lens[r] = r % T + 1;
    QT_TRY(BE->to_device(CTX, m->lens, m->host_lens, (size_t)rows * sizeof(int)));
    m->lens_T = T;
    return QT_OK;
}

// What the forward and the backward of a pass share beyond the shapes.
typedef struct {
    float drop, attn_drop; // dropout probabilities: the config's while training, else 0
    qt_softmax_params sp;  // the softmax variant
    qt_sink_kind sink;     // its sink (attn.sink)
    qt_gate_shape gs;      // the gate function (kind QT_GATE_NONE: ungated; the elementwise
                           // gate is all_heads with n_heads = C)
    int gate_cols;         // gate values per token (gate_mul's H): H, C (elementwise), 0
    qt_attn_params ap;     // the fused op's params: sp, sink, gate, default tiles
} pass_params;

static pass_params pass_params_of(const qt_model *m) {
    const qt_config *cfg = &m->cfg;
    const int elementwise = cfg->gate == QT_GATE_ELEMENTWISE;
    pass_params pp = {
        .drop = m->training ? cfg->dropout : 0.0f,
        .attn_drop = m->training ? attn_dropout_prob(cfg) : 0.0f,
        .sp = softmax_params(cfg),
        .sink = cfg->sink,
        .gs = {elementwise ? QT_GATE_ALL_HEADS : cfg->gate,
               elementwise ? cfg->d_model : cfg->n_head,
               cfg->gate == QT_GATE_MLP ? gate_hidden(cfg) : 0},
        .gate_cols = gate_cols(cfg),
    };
    pp.ap = attn_params_of(cfg);
    return pp;
}

static int attn_fused(const qt_model *m, const pass_params *pp) {
    return attn_backend_fuses(m->be, &pp->ap, m->cfg.d_model, m->cfg.n_head) &&
           pp->attn_drop == 0 && !m->hooks;
}

// The composed path's (B, H, T, T) buffers, made by its first pass in a model that could run
// fused (qt_model_init left them out): one allocation, kept until qt_model_free.
static qt_status attn_ensure_composed(qt_model *m) {
    if (m->acts[0].probs) return QT_OK;
    const int L = m->cfg.n_layer;
    const size_t BHTT = (size_t)m->B * m->cfg.n_head * m->T * m->T;
    const size_t pf = (BHTT * sizeof(float) + 63) / 64 * 64, pe = (BHTT * m->es + 63) / 64 * 64;
    const size_t bytes = (size_t)L * (pf + pe) + 2 * pe;
    QT_TRY(BE->alloc(CTX, &m->tt_arena, bytes));
    m->tt_bytes = bytes;
    char *at = m->tt_arena;
    for (int l = 0; l < L; l++, at += pf + pe) {
        m->acts[l].p = (float *)at;
        m->acts[l].probs = at + pf;
    }
    m->d_probs = at;
    m->d_scores = at + pe;
    return QT_OK;
}

qt_status qt_model_zero_probs(const qt_model *m, int layer, long long *zeros, long long *attended) {
    const int B = m->fwd_B, T = m->fwd_T, H = m->cfg.n_head;
    if (layer < 0 || layer >= m->cfg.n_layer || B == 0)
        return qt_error(QT_ERR_ARG, "zero_probs: layer %d of %d, after %s", layer, m->cfg.n_layer,
                        B ? "a forward" : "no forward; run one first");
    const qt_layer_acts *a = &m->acts[layer];
    const int encoder = m->cfg.arch == QT_ARCH_BERT;
    *zeros = 0;
    *attended = (long long)B * H * T * (T + 1) / 2; // causal: row t attends t + 1 keys
    if (encoder) { // every row of sequence b attends len_b keys
        *attended = 0;
        for (int b = 0; b < B; b++) *attended += (long long)H * T * m->host_seq_lens[b];
    }
    if (m->fwd_fused) {
        int64_t n[256];
        for (int i0 = 0; i0 < B * H; i0 += 256) {
            const int k = B * H - i0 < 256 ? B * H - i0 : 256;
            QT_TRY(BE->to_host(CTX, n, a->nzero + i0, (size_t)k * sizeof(int64_t)));
            for (int i = 0; i < k; i++)
                *zeros += n[i];
        }
        return QT_OK;
    }
    // The composed probabilities, one (T, T) slice at a time through the host.
    float *row = malloc((size_t)T * T * sizeof(float));
    if (!row) return qt_error(QT_ERR_OOM, "zero_probs: no memory for a %d x %d slice", T, T);
    qt_status st = QT_OK;
    for (int bh = 0; bh < B * H && st == QT_OK; bh++) {
        st = BE->to_host_f32(CTX, row, AT(a->probs, (size_t)bh * T * T), (size_t)T * T);
        const int keys_of_all = encoder ? m->host_seq_lens[bh / H] : 0;
        for (int t = 0; st == QT_OK && t < T; t++)
            for (int j = 0; j < (encoder ? keys_of_all : t + 1); j++)
                *zeros += row[(size_t)t * T + j] == 0.0f;
    }
    free(row);
    return st;
}

// Dropout stream for site `site` of layer `layer` in the current micro-step.
static uint64_t drop_stream(const qt_model *m, int layer, int site) {
    return qt_stream_id(m->dropout_stream, (uint64_t)layer + 1, (uint64_t)site);
}

enum { SITE_EMBED = 0, SITE_ATTN_PROBS, SITE_ATTN_RESID, SITE_FFN_RESID };

// The batched GEMMs of attention address (b, h) slices of (B, T, 3C) and (B, H, T, T).
static qt_gemm_desc attn_desc(int trans_a, int trans_b, int M, int N, int K, float beta, int lda,
                              int64_t a_outer, int64_t a_inner, int ldb, int64_t b_outer,
                              int64_t b_inner, int ldc, int64_t c_outer, int64_t c_inner, int B,
                              int H) {
    qt_gemm_desc d = {
        .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K, .alpha = 1.0f,
        .beta = beta, .lda = lda, .ldb = ldb, .ldc = ldc, .batch = B * H, .inner = H,
        .a_outer = a_outer, .a_inner = a_inner, .b_outer = b_outer, .b_inner = b_inner,
        .c_outer = c_outer, .c_inner = c_inner,
    };
    return d;
}

// The block's norm (LayerNorm or RMSNorm; RMSNorm has no mean and no bias): n = norm(x).
static qt_status norm_fwd(qt_model *m, const qt_norm_acts *n, const void *x, const void *w,
                          const void *b, int N, int C) {
    if (m->cfg.norm == QT_NORM_RMSNORM) return BE->rmsnorm_fwd(CTX, n->y, n->rstd, x, w, N, C);
    return BE->layernorm_fwd(CTX, n->y, n->mean, n->rstd, x, w, b ? b : m->zeros_c, N, C);
}

// dx +=, dw +=, db += for n = norm(x) (db: the norm's bias gradient, or a dead scratch when it
// has none).
static qt_status norm_bwd(qt_model *m, void *dx, void *dw, void *db, const void *dout,
                          const void *x, const qt_norm_acts *n, const void *w, int N, int C) {
    if (m->cfg.norm == QT_NORM_RMSNORM)
        return BE->rmsnorm_bwd(CTX, dx, dw, dout, x, n->rstd, w, N, C);
    return BE->layernorm_bwd(CTX, dx, dw, db, dout, x, n->mean, n->rstd, w, N, C);
}

// out = x + drop(branch): a block branch's residual connection.
static qt_status residual_fwd(qt_model *m, void *out, const void *branch, const void *x, size_t n,
                              float drop, uint64_t stream) {
    if (drop <= 0) return BE->add(CTX, out, branch, x, n);
    QT_TRY(BE->dropout_fwd(CTX, out, branch, n, drop, m->cfg.seed, stream));
    return BE->add(CTX, out, out, x, n);
}

// Offers a site's tensor to the activation hook (PTQ calibration and fake quantization).
static qt_status site(qt_model *m, int layer, qt_site which, void *x, size_t rows, size_t cols) {
    if (!m->hooks || !m->hooks->activation) return QT_OK;
    return m->hooks->activation(m->hooks->user, m, layer, which, x, rows, cols);
}

// A block's residual connection and the LayerNorm after it run as one op
// (layernorm_residual_{fwd,bwd}) where the backend has it, the norm is a LayerNorm, and no
// activation hook is set (a hook may read or change the residual sum before the norm reads
// it). The one place that decides; elsewhere dropout, add and the norm run one by one.
static int residual_fused(const qt_model *m) {
    return BE->layernorm_residual_fwd && BE->layernorm_residual_bwd &&
           m->cfg.norm == QT_NORM_LAYERNORM && !(m->hooks && m->hooks->activation);
}

// out = x + drop(branch) (offered to the hook as `resid_site`), then n = norm(out) with the
// norm's w, b: one launch where residual_fused allows, else dropout, add and the norm.
static qt_status residual_norm_fwd(qt_model *m, int layer, qt_site resid_site, void *out,
                                   const void *branch, const void *x, const qt_norm_acts *n,
                                   const void *w, const void *b, int N, int C, float drop,
                                   uint64_t stream) {
    if (residual_fused(m))
        return BE->layernorm_residual_fwd(CTX, out, n->y, n->mean, n->rstd, x, branch, w,
                                          b ? b : m->zeros_c, N, C, drop, m->cfg.seed, stream);
    QT_TRY(residual_fwd(m, out, branch, x, (size_t)N * C, drop, stream));
    QT_TRY(site(m, layer, resid_site, out, N, C));
    return norm_fwd(m, n, out, w, b, N, C);
}

// The FFN's first linear and its activation as one backend op (linear_act_fwd / _dx; on CUDA
// the GEMM's epilogue): GELU or ReLU, unquantized, without hooks (they see each linear and
// site alone). ReLU then keeps no pre-activation: its backward reads fc_act, which is > 0
// exactly where fc is.
static int act_fused(const qt_model *m) {
    return BE->linear_act_fwd && BE->linear_act_dx && m->cfg.quant_mode == QT_QMODE_NONE &&
           !m->hooks && (m->cfg.activation == QT_ACT_GELU || m->cfg.activation == QT_ACT_RELU);
}
static qt_linear_act fused_act(const qt_model *m) {
    return m->cfg.activation == QT_ACT_GELU ? QT_LINEAR_ACT_GELU : QT_LINEAR_ACT_RELU;
}

// The MLP activation: fc (N, F1) -> fc_act (N, F); SwiGLU halves the width.
static qt_status act_fwd(qt_model *m, void *out, const void *x, int N, int F) {
    switch (m->cfg.activation) {
    case QT_ACT_GELU: return BE->gelu_fwd(CTX, out, x, (size_t)N * F);
    case QT_ACT_RELU: return BE->relu_fwd(CTX, out, x, (size_t)N * F);
    case QT_ACT_SWIGLU: return BE->swiglu_fwd(CTX, out, x, N, F);
    }
    return qt_error(QT_ERR_ARG, "unknown activation %d", (int)m->cfg.activation);
}

static qt_status act_bwd(qt_model *m, void *dx, const void *dout, const void *x, int N, int F) {
    switch (m->cfg.activation) {
    case QT_ACT_GELU: return BE->gelu_bwd(CTX, dx, dout, x, (size_t)N * F);
    case QT_ACT_RELU: return BE->relu_bwd(CTX, dx, dout, x, (size_t)N * F);
    case QT_ACT_SWIGLU: return BE->swiglu_bwd(CTX, dx, dout, x, N, F);
    }
    return qt_error(QT_ERR_ARG, "unknown activation %d", (int)m->cfg.activation);
}

// The forward of a block linear: out (N, OC) = x (N, IC) w (OC, IC)^T + b.
static qt_status block_linear_fwd(qt_model *m, int layer, qt_linear_id which, void *out,
                                  const void *x, const void *w, const void *b, int N, int IC,
                                  int OC) {
    if (m->hooks && m->hooks->linear) {
        int handled = 0;
        QT_TRY(m->hooks->linear(m->hooks->user, m, layer, which, out, x, w, b, N, IC, OC,
                                &handled));
        if (handled) return QT_OK;
    }
    return qt_qlinear_fwd(m, layer, which, out, x, w, b, N, IC, OC);
}

qt_status qt_model_set_encoder_batch(qt_model *m, const int *lens, const int *types, int B,
                                     int T) {
    if (m->cfg.arch != QT_ARCH_BERT)
        return qt_error(QT_ERR_ARG, "set_encoder_batch: model.arch = %s is a decoder; sequence "
                        "lengths and token types are the encoder's (model.arch = bert)",
                        m->cfg.arch == QT_ARCH_LLAMA ? "llama" : "opt");
    if (!lens || !types || B < 1 || B > m->B || T < 1 || T > m->T)
        return qt_error(QT_ERR_ARG, "set_encoder_batch: batch %d x %d (allocated %d x %d) with "
                        "lens %s and types %s", B, T, m->B, m->T, lens ? "given" : "NULL",
                        types ? "given" : "NULL");
    for (int b = 0; b < B; b++)
        if (lens[b] < 1 || lens[b] > T)
            return qt_error(QT_ERR_ARG, "set_encoder_batch: sequence %d has length %d, outside "
                            "[1, %d]: a sequence holds at least its [CLS] and at most T tokens",
                            b, lens[b], T);
    for (int i = 0; i < B * T; i++)
        if (types[i] < 0 || types[i] >= QT_MLM_TOKEN_TYPES)
            return qt_error(QT_ERR_ARG, "set_encoder_batch: token type %d at position %d is "
                            "outside [0, %d)", types[i], i, QT_MLM_TOKEN_TYPES);
    memcpy(m->host_seq_lens, lens, (size_t)B * sizeof(int));
    memcpy(m->host_types, types, (size_t)B * T * sizeof(int));
    m->enc_B = B;
    m->enc_T = T;
    return QT_OK;
}

// The encoder's embeddings into m->encoded (before dropout): wte[tok] + wpe[t] + wtt[type], then
// LN_e when post-LN (its input kept in emb_sum for the backward). d_branch is scratch here.
static qt_status encoder_embed(qt_model *m, int B, int T, int C) {
    const int post = m->cfg.norm_position == QT_NORM_POST;
    const size_t NC = (size_t)B * T * C;
    void *sum = post ? m->emb_sum : m->encoded;
    QT_TRY(BE->embedding_fwd(CTX, sum, m->inputs, m->p.wte, m->p.wpe, B, T, C));
    QT_TRY(BE->embedding_fwd(CTX, m->d_branch, m->types, m->p.wtt, NULL, B, T, C));
    QT_TRY(BE->add(CTX, sum, sum, m->d_branch, NC));
    if (post) // LN_e writes the block input directly (its backward reads emb_sum, not y)
        QT_TRY(BE->layernorm_fwd(CTX, m->encoded, m->emb_ln.mean, m->emb_ln.rstd, m->emb_sum,
                                 m->p.emb_ln_w, m->p.emb_ln_b ? m->p.emb_ln_b : m->zeros_c,
                                 B * T, C));
    return QT_OK;
}

// dlosses (N) = d (loss_scale * mean loss) / d loss_n = loss_scale / count for every row (the
// classifier gives ignored rows nothing), staged through host_losses.
static qt_status upload_dlosses(qt_model *m, int N, int count, float loss_scale) {
    float *dl = m->host_losses;
    for (int i = 0; i < N; i++) dl[i] = count ? loss_scale / (float)count : 0.0f;
    return BE->to_device(CTX, m->dlosses, dl, (size_t)N * sizeof(float));
}

// The forward; with train_scale (the loss scale of the backward to follow) the classifier's
// backward runs in the same op where the backend has it (crossentropy_fwd_bwd): the gradient
// then overwrites the logits, and qt_model_backward takes it from there.
static qt_status model_forward(qt_model *m, const int *inputs, const int *targets, int B, int T,
                               float *mean_loss, const float *train_scale) {
    const qt_config *cfg = &m->cfg;
    m->dlogits_ready = 0;
    if (B < 1 || B > m->B || T < 1 || T > m->T)
        return qt_error(QT_ERR_ARG, "forward: batch %d x %d exceeds the allocated %d x %d", B, T,
                        m->B, m->T);
    int L = cfg->n_layer, C = cfg->d_model, H = cfg->n_head, D = C / H, F = cfg->d_ff;
    int V = cfg->vocab_size, N = B * T;
    for (int i = 0; i < N; i++)
        if (inputs[i] < 0 || inputs[i] >= V || (targets && targets[i] >= V))
            return qt_error(QT_ERR_ARG, "token %d at position %d is outside the vocabulary of %d",
                            inputs[i] < 0 || inputs[i] >= V ? inputs[i] : targets[i], i, V);
    const int encoder = cfg->arch == QT_ARCH_BERT, post = cfg->norm_position == QT_NORM_POST;
    if (encoder && (m->enc_B != B || m->enc_T != T))
        return qt_error(QT_ERR_ARG, "forward: the encoder's batch is %d x %d but its lengths and "
                        "token types were set for %d x %d; call qt_model_set_encoder_batch first",
                        B, T, m->enc_B, m->enc_T);
    QT_TRY(ensure_lens(m, T));
    // One copy (one wait) for both: staged as [inputs (N) | gap | targets (N)] like the
    // device's [inputs (m->B T) | targets], the targets at offset m->B T.
    // A training forward also stages the token buckets of the sorted embedding backward, after
    // the targets at the device's offsets (order at 2 cap, start at 3 cap, token at 4 cap + 1).
    const size_t cap = (size_t)m->B * (size_t)m->T;
    memcpy(m->host_tokens, inputs, (size_t)N * sizeof(int));
    if (targets) memcpy(m->host_tokens + cap, targets, (size_t)N * sizeof(int));
    size_t upload = targets ? cap + (size_t)N : (size_t)N;
    m->n_buckets = -1;
    if (targets && BE->embedding_bwd_sorted) {
        int *order = m->host_tokens + 2 * cap, *start = order + cap, *token = start + cap + 1;
        QT_TRY(qt_embedding_buckets(order, start, token, &m->n_buckets, inputs, N,
                                    token + cap));
        upload = 4 * cap + 1 + (size_t)m->n_buckets;
    }
    QT_TRY(BE->to_device(CTX, m->inputs, m->host_tokens, upload * sizeof(int)));
    if (encoder) QT_TRY(BE->to_device(CTX, m->types, m->host_types, (size_t)N * sizeof(int)));
    const pass_params pp = pass_params_of(m);
    const int fused = attn_fused(m, &pp), gated = pp.gs.kind != QT_GATE_NONE;
    // the fused op's (B, T) keys per query: causal lens are the first B*T of the (B, H, T) rows
    const int *qlens = encoder ? m->qlens : m->lens;
    if (!fused) QT_TRY(attn_ensure_composed(m));
    int F1 = fc1_width(cfg);
    int64_t TT = (int64_t)T * T, T3C = (int64_t)T * 3 * C;

    if (encoder) QT_TRY(encoder_embed(m, B, T, C));
    else QT_TRY(BE->embedding_fwd(CTX, m->encoded, m->inputs, m->p.wte, m->p.wpe, B, T, C));
    if (pp.drop > 0)
        QT_TRY(BE->dropout_fwd(CTX, m->encoded, m->encoded, (size_t)N * C, pp.drop, cfg->seed,
                               drop_stream(m, 0, SITE_EMBED)));
    QT_TRY(site(m, -1, QT_SITE_EMBED, m->encoded, N, C));
    const void *x = m->encoded;
    for (int l = 0; l < L; l++) {
        const qt_layer_params *w = &m->p.layers[l];
        qt_layer_acts *a = &m->acts[l];
        // pre-LN: the branches read LN1(x) and LN2(resid1); post-LN: x and LN1(resid1), and
        // the layer's output is LN2(resid2). Pre-LN's LN1 of layers after the first is taken
        // with the previous layer's FFN residual (residual_norm_fwd).
        if (!post) {
            if (l == 0) QT_TRY(norm_fwd(m, &a->ln1, x, w->ln1_w, w->ln1_b, N, C));
            QT_TRY(site(m, l, QT_SITE_LN1, a->ln1.y, N, C));
        }
        const void *attn_in = post ? x : a->ln1.y;
        QT_TRY(block_linear_fwd(m, l, QT_LINEAR_QKV, a->qkv, attn_in, w->qkv_w, w->qkv_b, N, C,
                                3 * C));
        if (cfg->pos == QT_POS_ROPE) QT_TRY(BE->rope_fwd(CTX, a->qkv, B, T, C, H, cfg->rope_theta));
        QT_TRY(site(m, l, QT_SITE_QKV, a->qkv, N, 3 * C));
        if (gated)
            QT_TRY(BE->gate_fwd(CTX, &pp.gs, a->gate, a->gate_hidden, attn_in, w->gate_w1,
                                w->gate_b1, w->gate_w2, w->gate_b2, N, C));
        if (fused) {
            // Causal lens depend only on t, so the first B*T entries of the (B, H, T) row
            // lengths are the (B, T) per-query lengths the fused op takes.
            QT_TRY(BE->attention_flash_fwd(CTX, &pp.ap, gated ? a->gated : NULL, a->ctx, a->lse,
                                           a->R, a->nzero, a->qkv, a->gate, w->sink, qlens, B, T,
                                           C, H));
        } else {
            // scores (B, H, T, T) = Q K^T per head, into `probs` (overwritten by the softmax)
            qt_gemm_desc qk = attn_desc(0, 1, T, T, D, 0.0f, 3 * C, T3C, D, 3 * C, T3C, D, T,
                                        H * TT, TT, B, H);
            QT_TRY(BE->gemm(CTX, &qk, a->qkv, AT(a->qkv, C), a->probs));
            QT_TRY(site(m, l, QT_SITE_SCORES, a->probs, (size_t)B * H * T, T));
            if (pp.sink != QT_SINK_NONE)
                QT_TRY(BE->softmax_clip_sink_fwd(CTX, &pp.sp, pp.sink, a->probs, a->p, a->probs,
                                                 m->lens, w->sink, B * H * T, T, H, T));
            else
                QT_TRY(BE->softmax_clip_fwd(CTX, &pp.sp, a->probs, a->p, a->probs, m->lens,
                                            B * H * T, T));
            QT_TRY(site(m, l, QT_SITE_PROBS, a->probs, (size_t)B * H * T, T));
            const void *pv_probs = a->probs;
            if (pp.attn_drop > 0) {
                QT_TRY(BE->dropout_fwd(CTX, a->probs_drop, a->probs, (size_t)B * H * TT,
                                       pp.attn_drop, cfg->seed,
                                       drop_stream(m, l, SITE_ATTN_PROBS)));
                pv_probs = a->probs_drop;
            }
            // ctx (B, T, C): head h's (T, D) slice = probs (T, T) @ V (T, D)
            qt_gemm_desc pv = attn_desc(0, 0, T, D, T, 0.0f, T, H * TT, TT, 3 * C, T3C, D, C,
                                        (int64_t)T * C, D, B, H);
            QT_TRY(BE->gemm(CTX, &pv, pv_probs, AT(a->qkv, 2 * C), a->ctx));
            QT_TRY(site(m, l, QT_SITE_CTX, a->ctx, N, C));
            if (gated) QT_TRY(BE->gate_mul_fwd(CTX, a->gated, a->gate, a->ctx, N, C, pp.gate_cols));
        }
        const void *proj_in = gated ? a->gated : a->ctx;
        QT_TRY(block_linear_fwd(m, l, QT_LINEAR_PROJ, a->attn_out, proj_in, w->proj_w, w->proj_b,
                                N, C, C));
        QT_TRY(site(m, l, QT_SITE_ATTN_OUT, a->attn_out, N, C));
        qt_norm_acts *ffn_norm = post ? &a->ln1 : &a->ln2;
        const void *ffn_norm_w = post ? w->ln1_w : w->ln2_w;
        const void *ffn_norm_b = post ? w->ln1_b : w->ln2_b;
        QT_TRY(residual_norm_fwd(m, l, QT_SITE_RESID1, a->resid1, a->attn_out, x, ffn_norm,
                                 ffn_norm_w, ffn_norm_b, N, C, pp.drop,
                                 drop_stream(m, l, SITE_ATTN_RESID)));
        QT_TRY(site(m, l, post ? QT_SITE_LN1 : QT_SITE_LN2, ffn_norm->y, N, C));
        if (act_fused(m)) {
            const int gelu = fused_act(m) == QT_LINEAR_ACT_GELU;
            QT_TRY(BE->linear_act_fwd(CTX, fused_act(m), a->fc_act, gelu ? a->fc : NULL,
                                      ffn_norm->y, w->fc_w, w->fc_b, N, C, F));
        } else {
            QT_TRY(block_linear_fwd(m, l, QT_LINEAR_FC1, a->fc, ffn_norm->y, w->fc_w, w->fc_b, N,
                                    C, F1));
            QT_TRY(act_fwd(m, a->fc_act, a->fc, N, F));
        }
        QT_TRY(site(m, l, QT_SITE_FC_ACT, a->fc_act, N, F));
        QT_TRY(block_linear_fwd(m, l, QT_LINEAR_FC2, a->ffn_out, a->fc_act, w->fc2_w, w->fc2_b, N,
                                F, C));
        QT_TRY(site(m, l, QT_SITE_FFN_OUT, a->ffn_out, N, C));
        // the norm after the FFN residual: post-LN's LN2, else the next layer's LN1 or the
        // final norm
        const int last = l + 1 == L;
        const qt_layer_params *wn = last ? NULL : &m->p.layers[l + 1];
        qt_norm_acts *next_norm = post ? &a->ln2 : last ? &m->lnf : &m->acts[l + 1].ln1;
        const void *next_w = post ? w->ln2_w : last ? m->p.lnf_w : wn->ln1_w;
        const void *next_b = post ? w->ln2_b : last ? m->p.lnf_b : wn->ln1_b;
        QT_TRY(residual_norm_fwd(m, l, QT_SITE_RESID2, a->resid2, a->ffn_out,
                                 post ? a->ln1.y : a->resid1, next_norm, next_w, next_b, N, C,
                                 pp.drop, drop_stream(m, l, SITE_FFN_RESID)));
        if (post) QT_TRY(site(m, l, QT_SITE_LN2, a->ln2.y, N, C));
        x = post ? a->ln2.y : a->resid2;
    }
    if (!post) {
        // the final norm (taken with the last FFN residual when there is a layer)
        if (L == 0) QT_TRY(norm_fwd(m, &m->lnf, x, m->p.lnf_w, m->p.lnf_b, N, C));
        QT_TRY(site(m, -1, QT_SITE_LNF, m->lnf.y, N, C));
        x = m->lnf.y;
    }
    if (encoder) {
        // the MLM head: logits = LN_m(gelu(dense(x))) wte^T + b_m
        QT_TRY(BE->linear_fwd(CTX, m->mlm_h, x, m->p.mlm_dense_w, m->p.mlm_dense_b, N, C, C));
        QT_TRY(BE->gelu_fwd(CTX, m->mlm_act, m->mlm_h, (size_t)N * C));
        QT_TRY(norm_fwd(m, &m->mlm_ln, m->mlm_act, m->p.mlm_ln_w, m->p.mlm_ln_b, N, C));
        QT_TRY(BE->linear_fwd(CTX, m->logits, m->mlm_ln.y, m->p.wte, m->p.mlm_bias, N, C, V));
    } else {
        QT_TRY(BE->linear_fwd(CTX, m->logits, m->lnf.y, m->p.head, NULL, N, C, V));
    }
    m->fwd_fused = fused;
    if (!targets) return QT_OK;
    int count = 0;
    for (int i = 0; i < N; i++) count += targets[i] >= 0;
    if (train_scale && BE->crossentropy_fwd_bwd) {
        QT_TRY(upload_dlosses(m, N, count, *train_scale));
        QT_TRY(BE->crossentropy_fwd_bwd(CTX, m->losses, m->ce_stats, m->logits, m->dlosses,
                                        m->targets, N, V));
        m->dlogits_ready = 1;
        m->dlogits_scale = *train_scale;
    } else {
        QT_TRY(BE->crossentropy_fwd(CTX, m->losses, m->ce_stats, m->logits, m->targets, N, V));
    }
    const float *losses = m->host_losses;
    QT_TRY(BE->to_host(CTX, m->host_losses, m->losses, (size_t)N * sizeof(float)));
    double sum = 0.0;
    for (int i = 0; i < N; i++)
        if (targets[i] >= 0) sum += losses[i];
    m->fwd_B = B;
    m->fwd_T = T;
    m->fwd_count = count;
    if (mean_loss) *mean_loss = count ? (float)(sum / count) : 0.0f;
    return QT_OK;
}

qt_status qt_model_forward(qt_model *m, const int *inputs, const int *targets, int B, int T,
                           float *mean_loss) {
    return model_forward(m, inputs, targets, B, T, mean_loss, NULL);
}

qt_status qt_model_forward_train(qt_model *m, const int *inputs, const int *targets, int B,
                                 int T, float *mean_loss, float loss_scale) {
    if (!targets)
        return qt_error(QT_ERR_ARG, "forward_train: no targets; a training forward needs them");
    return model_forward(m, inputs, targets, B, T, mean_loss, &loss_scale);
}

// ---- backward ----------------------------------------------------------------------------

// d_out of a dropout site: with dropout on, `scratch` = mask-scaled copy of `d`; with it off,
// `d` itself (no copy). The copy is the forward's op on d (the same mask and scale, written
// rather than added to a zeroed buffer: the same values, no memset).
static qt_status dropout_grad(qt_model *m, const void **out, void *scratch, const void *d,
                              size_t n, float prob, uint64_t stream) {
    if (prob <= 0) {
        *out = d;
        return QT_OK;
    }
    QT_TRY(BE->dropout_fwd(CTX, scratch, d, n, prob, m->cfg.seed, stream));
    *out = scratch;
    return QT_OK;
}

// The backward of a residual's norm n = norm(x) (x = the residual sum) with the dropped branch
// that fed the residual: dx +=, dw +=, db += the norm's backward (db NULL when the norm has no
// bias), then *d_branch = the branch's gradient, dropout's backward of the updated dx into
// `scratch` (dx itself when dropout is off). One launch for the dx part where residual_fused
// allows and dropout is on.
static qt_status norm_residual_bwd(qt_model *m, const void **d_branch, void *scratch, void *dx,
                                   void *dw, void *db, const void *dout, const void *x,
                                   const qt_norm_acts *n, const void *w, int N, int C,
                                   float prob, uint64_t stream) {
    if (prob > 0 && residual_fused(m)) {
        QT_TRY(BE->layernorm_residual_bwd(CTX, dx, scratch, dw, db, dout, x, n->mean, n->rstd, w,
                                          N, C, prob, m->cfg.seed, stream));
        *d_branch = scratch;
        return QT_OK;
    }
    // an absent bias's gradient lands in `scratch`, dead until dropout_grad writes it
    QT_TRY(norm_bwd(m, dx, dw, db ? db : scratch, dout, x, n, w, N, C));
    return dropout_grad(m, d_branch, scratch, dx, (size_t)N * C, prob, stream);
}

// Reports that every gradient from the one at `first` (a view into the gradient arena) to the
// end of the arena is final (qt_model.grads_ready).
static qt_status grads_ready(qt_model *m, const void *first) {
    if (!m->grads_ready) return QT_OK;
    size_t offset = (size_t)((const char *)first - (const char *)m->grads) / m->es;
    return m->grads_ready(m->grads_ready_user, offset);
}

qt_status qt_model_backward(qt_model *m, float loss_scale) {
    const qt_config *cfg = &m->cfg;
    int B = m->fwd_B, T = m->fwd_T;
    if (B == 0) return qt_error(QT_ERR_ARG, "backward without a forward with targets");
    int L = cfg->n_layer, C = cfg->d_model, H = cfg->n_head, D = C / H, F = cfg->d_ff;
    int V = cfg->vocab_size, N = B * T;
    const pass_params pp = pass_params_of(m);
    int F1 = fc1_width(cfg);
    int64_t TT = (int64_t)T * T, T3C = (int64_t)T * 3 * C;
    size_t NC = (size_t)N * C;

    const int encoder = cfg->arch == QT_ARCH_BERT, post = cfg->norm_position == QT_NORM_POST;
    // LM head: dlogits overwrite the logits in place (already, after qt_model_forward_train).
    if (m->dlogits_ready) {
        if (loss_scale != m->dlogits_scale)
            return qt_error(QT_ERR_ARG, "backward: loss scale %g, but the training forward "
                            "computed the classifier's gradient for %g", (double)loss_scale,
                            (double)m->dlogits_scale);
        m->dlogits_ready = 0;
    } else {
        QT_TRY(upload_dlosses(m, N, m->fwd_count, loss_scale));
        QT_TRY(BE->crossentropy_bwd(CTX, m->logits, m->dlosses, m->logits, m->ce_stats,
                                    m->targets, N, V));
    }
    if (encoder) {
        // the MLM head, back to d x_head (the final norm's output, or the last block's output
        // when post-LN) in d_ln; d_ctx and d_gated are free scratch here
        const void *x_head = post ? (L > 0 ? m->acts[L - 1].ln2.y : m->encoded) : m->lnf.y;
        QT_TRY(BE->zero(CTX, m->d_ln, NC * m->es));
        QT_TRY(BE->linear_bwd(CTX, m->d_ln, m->g.wte, m->g.mlm_bias, m->logits, m->mlm_ln.y,
                              m->p.wte, N, C, V));
        QT_TRY(BE->zero(CTX, m->d_ctx, NC * m->es));
        QT_TRY(norm_bwd(m, m->d_ctx, m->g.mlm_ln_w, m->g.mlm_ln_b ? m->g.mlm_ln_b : m->d_branch,
                        m->d_ln, m->mlm_act, &m->mlm_ln, m->p.mlm_ln_w, N, C));
        QT_TRY(BE->zero(CTX, m->d_gated, NC * m->es));
        QT_TRY(BE->gelu_bwd(CTX, m->d_gated, m->d_ctx, m->mlm_h, NC));
        QT_TRY(BE->zero(CTX, m->d_ln, NC * m->es));
        QT_TRY(BE->linear_bwd(CTX, m->d_ln, m->g.mlm_dense_w,
                              m->g.mlm_dense_b ? m->g.mlm_dense_b : NULL, m->d_gated, x_head,
                              m->p.mlm_dense_w, N, C, C));
    } else {
        // d_ln (N, C) = dlogits (N, V) head (V, C), beta 0: overwritten, no memset (the head is
        // never quantized); head's gradient += dlogits^T lnf.y
        const qt_gemm_desc dhead = {.M = N, .N = C, .K = V, .alpha = 1.0f, .beta = 0.0f, .lda = V,
                                    .ldb = C, .ldc = C, .batch = 1, .inner = 1};
        QT_TRY(BE->gemm(CTX, &dhead, m->logits, m->p.head, m->d_ln));
        QT_TRY(BE->linear_bwd(CTX, NULL, m->g.head, NULL, m->logits, m->lnf.y, m->p.head, N, C, V));
    }
    QT_TRY(BE->zero(CTX, m->d_resid, NC * m->es));
    // pre-LN: the gradient of the branch that fed the residual whose norm was just taken
    // backward (the last layer's FFN output, or the embedding when there is no layer)
    const void *d_fed = NULL;
    if (post) {
        // d of the last block's output is d x_head itself
        QT_TRY(BE->add(CTX, m->d_resid, m->d_resid, m->d_ln, NC));
        QT_TRY(grads_ready(m, m->g.mlm_dense_w));
    } else {
        const void *x_last = L > 0 ? m->acts[L - 1].resid2 : m->encoded;
        QT_TRY(norm_residual_bwd(m, &d_fed, m->d_branch, m->d_resid, m->g.lnf_w, m->g.lnf_b,
                                 m->d_ln, x_last, &m->lnf, m->p.lnf_w, N, C, pp.drop,
                                 L > 0 ? drop_stream(m, L - 1, SITE_FFN_RESID)
                                       : drop_stream(m, 0, SITE_EMBED)));
        // The final norm and an untied head (after it in the arena) are final; a tied head is
        // the token embedding, at offset 0, final only after the embedding backward.
        QT_TRY(grads_ready(m, m->g.lnf_w));
    }

    for (int l = L - 1; l >= 0; l--) {
        const qt_layer_params *w = &m->p.layers[l];
        qt_layer_params *gw = &m->g.layers[l];
        const qt_layer_acts *a = &m->acts[l];
        const void *x = l == 0 ? m->encoded : post ? m->acts[l - 1].ln2.y : m->acts[l - 1].resid2;
        // Absent norm biases (model.bias = 0): their gradient lands in a scratch buffer whose
        // contents are dead at that point and never read.
        void *ln_db_sink = m->d_branch;

        if (post) {
            // y = LN2(resid2): d_resid becomes d resid2
            QT_TRY(BE->zero(CTX, m->d_ln, NC * m->es));
            QT_TRY(norm_bwd(m, m->d_ln, gw->ln2_w, gw->ln2_b ? gw->ln2_b : ln_db_sink, m->d_resid,
                            a->resid2, &a->ln2, w->ln2_w, N, C));
            QT_TRY(BE->zero(CTX, m->d_resid, NC * m->es));
            QT_TRY(BE->add(CTX, m->d_resid, m->d_resid, m->d_ln, NC));
        }
        // ---- FFN branch: resid2 = h + drop(fc2(act(fc1(h)))), h = ln2(resid1) (pre-LN) or
        // ln1(resid1) (post-LN, where h itself is the residual)
        const qt_norm_acts *ffn_norm = post ? &a->ln1 : &a->ln2;
        const void *d_attn;
        const void *d_ffn = d_fed; // pre-LN: from the norm backward after this residual
        if (post)
            QT_TRY(dropout_grad(m, &d_ffn, m->d_branch, m->d_resid, NC, pp.drop,
                                drop_stream(m, l, SITE_FFN_RESID)));
        // d fc (N, F1): in place over d_fc_act (the in-place form overwrites), except SwiGLU's
        void *d_fc = m->d_fc_act;
        if (act_fused(m)) {
            // d fc = act'(fc) * (d_ffn fc2_w) in one op (DGELU's epilogue on CUDA), then fc2's
            // dw and db
            const int gelu = fused_act(m) == QT_LINEAR_ACT_GELU;
            QT_TRY(BE->linear_act_dx(CTX, fused_act(m), d_fc, d_ffn, w->fc2_w,
                                     gelu ? a->fc : a->fc_act, N, F, C));
            QT_TRY(BE->linear_bwd(CTX, NULL, gw->fc2_w, gw->fc2_b, d_ffn, a->fc_act, w->fc2_w, N,
                                  F, C));
        } else {
            QT_TRY(qt_qlinear_bwd_set(m, l, QT_LINEAR_FC2, m->d_fc_act, gw->fc2_w, gw->fc2_b,
                                      d_ffn, a->fc_act, w->fc2_w, N, F, C));
            if (cfg->activation == QT_ACT_SWIGLU) {
                d_fc = m->d_fc;
                QT_TRY(BE->zero(CTX, d_fc, (size_t)N * F1 * m->es));
            }
            QT_TRY(act_bwd(m, d_fc, m->d_fc_act, a->fc, N, F));
        }
        if (post) {
            // d h = d resid2 (the residual) + fc1's dx, in d_ln
            QT_TRY(BE->zero(CTX, m->d_ln, NC * m->es));
            QT_TRY(BE->add(CTX, m->d_ln, m->d_ln, m->d_resid, NC));
            QT_TRY(qt_qlinear_bwd(m, l, QT_LINEAR_FC1, m->d_ln, gw->fc_w, gw->fc_b, d_fc,
                                  ffn_norm->y, w->fc_w, N, C, F1));
            QT_TRY(BE->zero(CTX, m->d_resid, NC * m->es));
            QT_TRY(norm_residual_bwd(m, &d_attn, m->d_branch, m->d_resid, gw->ln1_w, gw->ln1_b,
                                     m->d_ln, a->resid1, &a->ln1, w->ln1_w, N, C, pp.drop,
                                     drop_stream(m, l, SITE_ATTN_RESID)));
        } else {
            QT_TRY(qt_qlinear_bwd_set(m, l, QT_LINEAR_FC1, m->d_ln, gw->fc_w, gw->fc_b, d_fc,
                                      ffn_norm->y, w->fc_w, N, C, F1));
            QT_TRY(norm_residual_bwd(m, &d_attn, m->d_branch, m->d_resid, gw->ln2_w, gw->ln2_b,
                                     m->d_ln, a->resid1, &a->ln2, w->ln2_w, N, C, pp.drop,
                                     drop_stream(m, l, SITE_ATTN_RESID)));
        }
        // d_resid is now d resid1, and d_attn the gradient of the attention branch's output.
        const void *attn_in = post ? x : a->ln1.y;

        // ---- attention branch: resid1 = x + drop(out_proj(gate * attention(ln1(x))))
        const void *proj_in = pp.gs.kind != QT_GATE_NONE ? a->gated : a->ctx;
        QT_TRY(qt_qlinear_bwd_set(m, l, QT_LINEAR_PROJ, m->d_gated, gw->proj_w, gw->proj_b,
                                  d_attn, proj_in, w->proj_w, N, C, C));
        const void *d_ctx = m->d_gated;
        const int gated = pp.gs.kind != QT_GATE_NONE;
        // The gate's backward adds into d_ln before the QKV linear does: zero it first then.
        if (gated) QT_TRY(BE->zero(CTX, m->d_ln, NC * m->es));
        const size_t gate_bytes = (size_t)N * pp.gate_cols * sizeof(float);
        if (m->fwd_fused) {
            // the fused op: dqkv, dgate (dO . A) and dsink from d gated = dO
            QT_TRY(BE->zero(CTX, m->d_qkv, (size_t)N * 3 * C * m->es));
            if (gated) QT_TRY(BE->zero(CTX, m->d_gate, gate_bytes));
            QT_TRY(BE->attention_flash_bwd(CTX, &pp.ap, m->d_qkv, gated ? m->d_gate : NULL,
                                           gw->sink, m->d_gated, a->qkv, a->ctx, a->lse, a->R,
                                           a->gate, w->sink, encoder ? m->qlens : m->lens, B, T,
                                           C, H));
            if (gated)
                QT_TRY(BE->gate_bwd(CTX, &pp.gs, m->d_ln, gw->gate_w1, gw->gate_b1, gw->gate_w2,
                                    gw->gate_b2, m->d_gate, a->gate, a->gate_hidden, attn_in,
                                    w->gate_w1, w->gate_w2, N, C));
        } else {
            if (gated) {
                QT_TRY(BE->zero(CTX, m->d_ctx, NC * m->es));
                QT_TRY(BE->zero(CTX, m->d_gate, gate_bytes));
                QT_TRY(BE->gate_mul_bwd(CTX, m->d_ctx, m->d_gate, m->d_gated, a->gate, a->ctx, N, C,
                                        pp.gate_cols));
                QT_TRY(BE->gate_bwd(CTX, &pp.gs, m->d_ln, gw->gate_w1, gw->gate_b1, gw->gate_w2,
                                    gw->gate_b2, m->d_gate, a->gate, a->gate_hidden, attn_in,
                                    w->gate_w1, w->gate_w2, N, C));
                d_ctx = m->d_ctx;
            }
            // the composed attention core; dV, dQ and dK each write (beta 0) one whole third of
            // d_qkv (B, T, 3C): no memset
            const void *pv_probs = pp.attn_drop > 0 ? a->probs_drop : a->probs;
            // d_probs (T, T) = d_ctx_h (T, D) @ V_h^T
            qt_gemm_desc dp = attn_desc(0, 1, T, T, D, 0.0f, C, (int64_t)T * C, D, 3 * C, T3C, D,
                                        T, H * TT, TT, B, H);
            QT_TRY(BE->gemm(CTX, &dp, d_ctx, AT(a->qkv, 2 * C), m->d_probs));
            // dV_h (T, D) = probs^T (T, T) @ d_ctx_h (T, D)
            qt_gemm_desc dv = attn_desc(1, 0, T, D, T, 0.0f, T, H * TT, TT, C, (int64_t)T * C, D,
                                        3 * C, T3C, D, B, H);
            QT_TRY(BE->gemm(CTX, &dv, pv_probs, d_ctx, AT(m->d_qkv, 2 * C)));
            const void *d_probs = m->d_probs;
            if (pp.attn_drop > 0) {
                QT_TRY(dropout_grad(m, &d_probs, m->d_probs_pre, m->d_probs, (size_t)B * H * TT,
                                    pp.attn_drop, drop_stream(m, l, SITE_ATTN_PROBS)));
            }
            QT_TRY(BE->zero(CTX, m->d_scores, (size_t)B * H * TT * m->es));
            if (pp.sink != QT_SINK_NONE)
                QT_TRY(BE->softmax_clip_sink_bwd(CTX, &pp.sp, pp.sink, m->d_scores, gw->sink,
                                                 d_probs, a->p, m->lens, B * H * T, T, H, T));
            else
                QT_TRY(BE->softmax_clip_bwd(CTX, &pp.sp, m->d_scores, d_probs, a->p, m->lens,
                                            B * H * T, T));
            // dQ_h = dS (T, T) @ K_h (T, D);  dK_h = dS^T @ Q_h
            qt_gemm_desc dq = attn_desc(0, 0, T, D, T, 0.0f, T, H * TT, TT, 3 * C, T3C, D, 3 * C,
                                        T3C, D, B, H);
            QT_TRY(BE->gemm(CTX, &dq, m->d_scores, AT(a->qkv, C), m->d_qkv));
            qt_gemm_desc dk = attn_desc(1, 0, T, D, T, 0.0f, T, H * TT, TT, 3 * C, T3C, D, 3 * C,
                                        T3C, D, B, H);
            QT_TRY(BE->gemm(CTX, &dk, m->d_scores, a->qkv, AT(m->d_qkv, C)));
        }
        if (cfg->pos == QT_POS_ROPE)
            QT_TRY(BE->rope_bwd(CTX, m->d_qkv, B, T, C, H, cfg->rope_theta));
        if (gated)
            QT_TRY(qt_qlinear_bwd(m, l, QT_LINEAR_QKV, m->d_ln, gw->qkv_w, gw->qkv_b, m->d_qkv,
                                  attn_in, w->qkv_w, N, C, 3 * C));
        else
            QT_TRY(qt_qlinear_bwd_set(m, l, QT_LINEAR_QKV, m->d_ln, gw->qkv_w, gw->qkv_b,
                                      m->d_qkv, attn_in, w->qkv_w, N, C, 3 * C));
        if (post) // the branch read x itself: d x = d resid1 + the branch's dx
            QT_TRY(BE->add(CTX, m->d_resid, m->d_resid, m->d_ln, NC));
        else // x = the previous layer's FFN residual (or the embedding): its branch's gradient
            QT_TRY(norm_residual_bwd(m, &d_fed, m->d_branch, m->d_resid, gw->ln1_w, gw->ln1_b,
                                     m->d_ln, x, &a->ln1, w->ln1_w, N, C, pp.drop,
                                     l > 0 ? drop_stream(m, l - 1, SITE_FFN_RESID)
                                           : drop_stream(m, 0, SITE_EMBED)));
        // d_resid is now d x. Block l's tensors (ln1 first in the arena) are final.
        QT_TRY(grads_ready(m, gw->ln1_w));
    }
    const void *d_emb = d_fed;
    if (post)
        QT_TRY(dropout_grad(m, &d_emb, m->d_branch, m->d_resid, NC, pp.drop,
                            drop_stream(m, 0, SITE_EMBED)));
    if (encoder && post) {
        // encoded = LN_e(emb_sum): d emb_sum into d_ln
        QT_TRY(BE->zero(CTX, m->d_ln, NC * m->es));
        QT_TRY(BE->layernorm_bwd(CTX, m->d_ln, m->g.emb_ln_w,
                                 m->g.emb_ln_b ? m->g.emb_ln_b : m->d_ctx, d_emb, m->emb_sum,
                                 m->emb_ln.mean, m->emb_ln.rstd, m->p.emb_ln_w, N, C));
        d_emb = m->d_ln;
    }
    if (m->n_buckets > 0)
        QT_TRY(BE->embedding_bwd_sorted(CTX, m->g.wte, m->g.wpe, d_emb, m->bucket_order,
                                        m->bucket_start, m->bucket_token, m->n_buckets, B, T,
                                        C));
    else
        QT_TRY(BE->embedding_bwd(CTX, m->g.wte, m->g.wpe, d_emb, m->inputs, B, T, C));
    if (encoder) QT_TRY(BE->embedding_bwd(CTX, m->g.wtt, NULL, d_emb, m->types, B, T, C));
    return grads_ready(m, m->grads);
}

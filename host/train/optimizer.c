// optimizer.c: AdamW over the parameter table, the lr schedule, gradient clipping.
#include "qtrain/optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/quant.h"
#include "host/model/qlinear.h"

static float tensor_weight_decay(const qt_config *cfg, qt_tensor_kind kind) {
    switch (kind) {
    case QT_TENSOR_MATRIX: return cfg->weight_decay;
    case QT_TENSOR_NORM: return cfg->decay_norm_weights ? cfg->weight_decay : 0.0f;
    case QT_TENSOR_BIAS: return 0.0f;
    }
    return 0.0f;
}

// The spans of the backend's multi-tensor step (qt_optimizer.spans), or none (spans stay NULL)
// where the step must go tensor by tensor: no adamw_multi, DQT codes (their own update), or
// quantized Adam moments (quantize_moments runs per tensor before the update).
static qt_status optimizer_spans(qt_optimizer *opt, const qt_model *model) {
    const qt_config *cfg = &model->cfg;
    qt_quant_params p;
    if (!model->be->ops->adamw_multi || model->n_float_params != model->n_params ||
        qt_qlinear_moment_quant(cfg, 'm', &p) || qt_qlinear_moment_quant(cfg, 'v', &p))
        return QT_OK;
    for (int i = 0; i < model->n_tensors; i++)
        if (model->tensors[i].quantized) return QT_OK;
    const size_t n = model->n_tensors > 0 ? (size_t)model->n_tensors : 1;
    opt->spans = calloc(n, sizeof *opt->spans);
    if (!opt->spans)
        return qt_error(QT_ERR_OOM, "cannot allocate the optimizer's %d tensor spans",
                        model->n_tensors);
    for (int i = 0; i < model->n_tensors; i++) {
        const qt_tensor_info *t = &model->tensors[i];
        qt_adamw_span *s = &opt->spans[opt->n_spans++];
        s->param = t->param_offset; // the masters cover [0, n_float_params) like the params
        s->grad = t->offset;        // the moments cover [0, n_params) like the gradients
        s->n = t->numel;
        s->weight_decay = tensor_weight_decay(cfg, t->kind);
    }
    return QT_OK;
}

// The moments of elements [lo, hi) and, for fp16/bf16 parameters, the fp32 masters of the
// float parameters [plo, phi) (the whole float arena, or the shard).
static qt_status optimizer_alloc(qt_optimizer *opt, const qt_model *model, size_t lo, size_t hi,
                                 size_t plo, size_t phi) {
    memset(opt, 0, sizeof *opt);
    opt->lo = lo;
    opt->hi = hi;
    const qt_backend *be = model->be;
    // A rank whose shard is empty still gets a valid pointer (one float).
    size_t bytes = (hi > lo ? hi - lo : 1) * sizeof(float);
    QT_TRY(be->ops->alloc(be->ctx, (void **)&opt->m, bytes));
    qt_status st = be->ops->alloc(be->ctx, (void **)&opt->v, bytes);
    if (st == QT_OK) st = be->ops->zero(be->ctx, opt->m, bytes);
    if (st == QT_OK) st = be->ops->zero(be->ctx, opt->v, bytes);
    if (st == QT_OK && be->dtype != QT_DTYPE_F32 && phi > plo) {
        // fp32 master weights of the float parameters (DQT codes have none), initialised from
        // the (already rounded) parameters.
        size_t mbytes = (phi - plo) * sizeof(float);
        st = be->ops->alloc(be->ctx, (void **)&opt->master, mbytes);
        float *host = st == QT_OK ? malloc(mbytes) : NULL;
        if (st == QT_OK && !host) st = qt_error(QT_ERR_OOM, "cannot allocate %zu bytes", mbytes);
        if (st == QT_OK)
            st = be->ops->to_host_f32(be->ctx, host, QT_AT(model->params, model->es, plo),
                                      phi - plo);
        if (st == QT_OK) st = be->ops->to_device(be->ctx, opt->master, host, mbytes);
        free(host);
    }
    if (st != QT_OK) qt_optimizer_free(opt, model);
    return st;
}

qt_status qt_optimizer_init(qt_optimizer *opt, const qt_model *model) {
    QT_TRY(optimizer_alloc(opt, model, 0, model->n_params, 0, model->n_float_params));
    qt_status st = optimizer_spans(opt, model);
    if (st != QT_OK) qt_optimizer_free(opt, model);
    return st;
}

qt_status qt_optimizer_init_shard(qt_optimizer *opt, const qt_model *model, size_t lo, size_t hi) {
    const qt_config *cfg = &model->cfg;
    if (lo > hi || hi > model->n_params)
        return qt_error(QT_ERR_ARG, "optimizer shard [%zu, %zu) outside the %zu gradients", lo, hi,
                        model->n_params);
    if (model->n_float_params != model->n_params)
        return qt_error(QT_ERR_ARG,
                        "dist.zero = 1 shards the parameter arena like the "
                        "gradients, but quant.mode = dqt keeps block weights as int8 codes "
                        "outside it; use dist.zero = 0 with DQT");
    if (cfg->quant_mode == QT_QMODE_QAT && (cfg->q_m.bits > 0 || cfg->q_v.bits > 0))
        return qt_error(QT_ERR_ARG, "dist.zero = 1 splits tensors across ranks, but quant.m_bits "
                                    "/ quant.v_bits quantize Adam's moments per whole tensor; use "
                                    "dist.zero = 0 or quant.m_bits = quant.v_bits = 0");
    QT_TRY(optimizer_alloc(opt, model, lo, hi, lo, hi));
    opt->sharded = 1;
    return QT_OK;
}

void qt_optimizer_free(qt_optimizer *opt, const qt_model *model) {
    const qt_backend *be = model->be;
    if (be && be->ops) {
        if (opt->m) be->ops->free(be->ctx, opt->m);
        if (opt->v) be->ops->free(be->ctx, opt->v);
        if (opt->master) be->ops->free(be->ctx, opt->master);
    }
    free(opt->spans);
    memset(opt, 0, sizeof *opt);
}

float qt_lr_at(const qt_config *cfg, int step) {
    if (cfg->warmup_steps > 0 && step < cfg->warmup_steps)
        return cfg->lr * (float)(step + 1) / (float)cfg->warmup_steps;
    if (cfg->schedule == QT_SCHED_CONSTANT) return cfg->lr;
    int decay_steps = cfg->max_steps - cfg->warmup_steps;
    if (decay_steps <= 0) return cfg->lr;
    double progress = (double)(step - cfg->warmup_steps) / (double)decay_steps;
    if (progress > 1.0) progress = 1.0;
    double frac = cfg->schedule == QT_SCHED_COSINE ? 0.5 * (1.0 + cos(3.14159265358979323846 * progress))
                                                   : 1.0 - progress;
    return (float)(cfg->min_lr + (cfg->lr - cfg->min_lr) * frac);
}

qt_status qt_grad_norm(const qt_model *model, double *norm) {
    double sumsq = 0.0;
    QT_TRY(model->be->ops->sumsq(model->be->ctx, &sumsq, model->grads, model->n_params));
    *norm = sqrt(sumsq);
    return QT_OK;
}


// qat with quant.m_* / quant.v_*: Adam's moments are quantized and dequantized at the start of
// each step (Chitsaz et al.), per tensor, per row of the tensor's first dimension, or in groups.
static qt_status quantize_moments(qt_optimizer *opt, const qt_model *model,
                                  const qt_tensor_info *t, int tensor_index) {
    const qt_backend *be = model->be;
    size_t rows = t->ndim > 1 ? (size_t)t->shape[0] : 1, cols = t->numel / rows;
    float *state[2] = {opt->m + t->offset, opt->v + t->offset};
    const char roles[2] = {'m', 'v'};
    for (int k = 0; k < 2; k++) {
        qt_quant_params p;
        if (!qt_qlinear_moment_quant(&model->cfg, roles[k], &p)) continue;
        p.stream = qt_quant_stream((uint64_t)opt->step, ((uint64_t)tensor_index << 1) | (uint64_t)k);
        QT_TRY(be->ops->quant_fake(be->ctx, QT_DTYPE_F32, &p, state[k], state[k], rows, cols));
    }
    return QT_OK;
}

// DQT: AdamW straight onto the int8 codes (kernels/dqt.h) with the configured scale rule:
// fixed keeps the init scale; absmax_pre takes max|w| before the step (Zhao et al.'s code);
// absmean takes mean|w'| of the updated values, from a dry-run pass over the same update.
static qt_status dqt_tensor_step(qt_optimizer *opt, qt_model *model, int tensor_index,
                                 const qt_adamw_params *prm) {
    const qt_config *cfg = &model->cfg;
    const qt_backend *be = model->be;
    const qt_tensor_info *t = &model->tensors[tensor_index];
    qt_dqt_params dp = {.adam = *prm, .seed = cfg->seed};
    qt_dqt_grid(cfg, &dp.qmin, &dp.qmax);
    dp.stream = qt_quant_stream((uint64_t)opt->step, (uint64_t)tensor_index);
    dp.scale_in = dp.scale_out = model->code_scales[tensor_index];
    int8_t *codes = model->codes + t->code_offset;
    const void *grad = QT_AT(model->grads, model->es, t->offset);
    float *m = opt->m + t->offset, *v = opt->v + t->offset;
    if (cfg->dqt_scale != QT_DQT_SCALE_FIXED) {
        qt_dqt_stats stats;
        dp.dry_run = 1;
        QT_TRY(be->ops->dqt_step(be->ctx, &dp, codes, grad, m, v, t->numel, &stats));
        dp.dry_run = 0;
        float next = cfg->dqt_scale == QT_DQT_SCALE_ABSMAX_PRE
                         ? (float)stats.max_abs_code * dp.scale_in / (float)dp.qmax
                         : (float)(stats.abs_sum / (double)t->numel) / (float)dp.qmax;
        // An all-zero tensor keeps its scale: a zero scale could never grow back.
        if (next > 1e-12f && isfinite(next)) dp.scale_out = next;
    }
    QT_TRY(be->ops->dqt_step(be->ctx, &dp, codes, grad, m, v, t->numel, NULL));
    model->code_scales[tensor_index] = dp.scale_out;
    return QT_OK;
}

// A non-finite true gradient norm: a skipped step under fp16 loss scaling, else divergence.
static qt_status nonfinite_norm(const qt_optimizer *opt, float loss_scale, double norm,
                                int *skipped) {
    if (loss_scale > 1.0f) {
        if (skipped) *skipped = 1;
        return QT_OK;
    }
    return qt_error(QT_ERR_ARG,
                    "the gradient norm is %g at step %d: training diverged; lower "
                    "train.lr or raise train.warmup_steps",
                    norm, opt->step + 1);
}

qt_status qt_optimizer_step(qt_optimizer *opt, qt_model *model, float lr, float loss_scale,
                            double *grad_norm, int *skipped) {
    if (opt->spans) {
        // The backend decides the skip and the clipping from the norm on the device (as
        // qt_optimizer_update below does on the host) and hands the norm back.
        const qt_config *cfg = &model->cfg;
        const qt_backend *be = model->be;
        qt_adamw_multi_params prm = {
            .lr = lr, .beta1 = cfg->beta1, .beta2 = cfg->beta2, .eps = cfg->eps,
            .step = opt->step + 1, .loss_scale = loss_scale, .grad_clip = cfg->grad_clip,
        };
        double sumsq = 0.0;
        QT_TRY(be->ops->adamw_multi(be->ctx, model->params, opt->master, model->grads, opt->m,
                                    opt->v, model->n_params, opt->spans, opt->n_spans, &prm,
                                    &sumsq));
        const double norm = sqrt(sumsq) / loss_scale;
        if (grad_norm) *grad_norm = norm;
        if (skipped) *skipped = 0;
        if (!isfinite(norm)) return nonfinite_norm(opt, loss_scale, norm, skipped);
        opt->step++;
        return QT_OK;
    }
    double norm = 0.0;
    QT_TRY(qt_grad_norm(model, &norm));
    return qt_optimizer_update(opt, model, lr, loss_scale, norm, grad_norm, skipped);
}

qt_status qt_optimizer_update(qt_optimizer *opt, qt_model *model, float lr, float loss_scale,
                              double norm, double *grad_norm, int *skipped) {
    const qt_config *cfg = &model->cfg;
    const qt_backend *be = model->be;
    norm /= loss_scale;
    if (grad_norm) *grad_norm = norm;
    if (skipped) *skipped = 0;
    if (!isfinite(norm)) return nonfinite_norm(opt, loss_scale, norm, skipped);
    float scale = 1.0f / loss_scale;
    if (cfg->grad_clip > 0 && norm > cfg->grad_clip)
        scale = (float)(cfg->grad_clip / (norm + 1e-6)) / loss_scale;
    opt->step++;
    qt_adamw_params prm = {
        .lr = lr, .beta1 = cfg->beta1, .beta2 = cfg->beta2, .eps = cfg->eps,
        .step = opt->step, .grad_scale = scale,
    };
    for (int i = 0; i < model->n_tensors; i++) {
        const qt_tensor_info *t = &model->tensors[i];
        prm.weight_decay = tensor_weight_decay(cfg, t->kind);
        if (!opt->sharded) {
            QT_TRY(quantize_moments(opt, model, t, i));
            if (t->quantized) {
                QT_TRY(dqt_tensor_step(opt, model, i, &prm));
                continue;
            }
        }
        // The part of the tensor in [lo, hi) (all of it unsharded); AdamW is elementwise, so
        // a shard may cut a tensor anywhere. Sharded, the parameter arena is laid out like the
        // gradients and the masters hold [lo, hi) too.
        size_t b = t->offset > opt->lo ? t->offset : opt->lo;
        size_t e = t->offset + t->numel < opt->hi ? t->offset + t->numel : opt->hi;
        if (b >= e) continue;
        size_t p = t->param_offset + (b - t->offset);
        size_t mlo = opt->sharded ? opt->lo : 0;
        QT_TRY(be->ops->adamw_step(be->ctx, QT_AT(model->params, model->es, p),
                                   opt->master ? opt->master + (p - mlo) : NULL,
                                   QT_AT(model->grads, model->es, b), opt->m + (b - opt->lo),
                                   opt->v + (b - opt->lo), e - b, &prm));
    }
    return QT_OK;
}

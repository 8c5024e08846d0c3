// bench/step_run.c: one training step on a CUDA backend with its launch records, for `qtrain
// bench step` and tests/cuda/test_cuda_cost_model.c (bench/step.h). The step is the trainer's
// (host/train/trainer.c, train_loop): zero the gradients, grad_accum forward and backward passes
// with the loss scaled, then the optimizer step (gradient norm, clipping, AdamW) and the loss
// scaler's update; only the data loader is replaced, by synthetic tokens (uniform over the
// vocabulary: the launches do not depend on the token values).
#include "bench/step.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qtrain/loss_scaler.h"
#include "qtrain/model.h"
#include "qtrain/optimizer.h"

typedef struct {
    const qt_config *cfg;
    qt_backend *be;
    qt_model model;
    qt_optimizer opt;
    qt_loss_scaler scaler;
    int *inputs, *targets; // (B, T) host
    int step;
} runner;

static size_t record_count(const qt_backend *be) {
    size_t n = 0;
    (void)qt_backend_cuda_records(be, &n);
    return n;
}

// One step as train_loop makes it; marks (may be NULL) gets the record counts after the
// gradients are zeroed and after the last micro-step.
static qt_status train_step(runner *r, size_t marks[2]) {
    const qt_config *cfg = r->cfg;
    QT_TRY(qt_model_zero_grad(&r->model));
    if (marks) marks[0] = record_count(r->be);
    for (int micro = 0; micro < cfg->grad_accum; micro++) {
        r->model.dropout_stream = (uint64_t)r->step * (uint64_t)cfg->grad_accum + (uint64_t)micro;
        float loss = 0.0f;
        const float scale = r->scaler.scale / (float)cfg->grad_accum; // as the trainer
        QT_TRY(qt_model_forward_train(&r->model, r->inputs, r->targets, cfg->batch_size,
                                      cfg->seq_len, &loss, scale));
        QT_TRY(qt_model_backward(&r->model, scale));
    }
    if (marks) marks[1] = record_count(r->be);
    double norm = 0.0;
    int skipped = 0;
    QT_TRY(qt_optimizer_step(&r->opt, &r->model, qt_lr_at(cfg, r->step), r->scaler.scale, &norm,
                             &skipped));
    qt_loss_scaler_update(&r->scaler, skipped);
    r->step++;
    return QT_OK;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

qt_status qt_step_run(qt_backend *be, const qt_config *cfg, int warmup, int timed,
                      qt_step_trace *t) {
    memset(t, 0, sizeof *t);
    QT_TRY(qt_config_validate(cfg));
    if (warmup < 0 || timed < 0)
        return qt_error(QT_ERR_ARG, "bench step: warmup %d, timed %d steps; need >= 0", warmup,
                        timed);
    if (qt_config_precision_dtype(cfg->precision, be->dtype) != be->dtype)
        return qt_error(QT_ERR_ARG,
                        "bench step: train.precision does not match the backend's "
                        "%s; open the backend for that precision",
                        qt_dtype_name(be->dtype));
    QT_TRY(qt_backend_cuda_record(be, 0));
    runner r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.be = be;
    const int B = cfg->batch_size, T = cfg->seq_len;
    const size_t bt = (size_t)B * (size_t)T;
    int have_model = 0, have_opt = 0;
    qt_status st = QT_OK;
    qt_loss_scaler_init(&r.scaler, cfg, be->dtype);
    r.inputs = malloc(bt * sizeof *r.inputs);
    r.targets = malloc(bt * sizeof *r.targets);
    if (!r.inputs || !r.targets) st = qt_error(QT_ERR_OOM, "bench step: cannot allocate a batch");
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; st == QT_OK && i < bt; i++) { // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.inputs[i] = (int)(x % (uint64_t)cfg->vocab_size);
    }
    for (size_t i = 0; st == QT_OK && i < bt; i++)
        r.targets[i] = r.inputs[(i + 1) % bt];
    if (st == QT_OK) st = qt_model_init(&r.model, cfg, be, B, T);
    have_model = st == QT_OK;
    if (st == QT_OK && cfg->arch == QT_ARCH_BERT) {
        // the encoder's batch: full sequences of type 0 (the launches do not depend on them)
        int *lens = calloc((size_t)B, sizeof *lens), *types = calloc(bt, sizeof *types);
        for (int b = 0; lens && b < B; b++) lens[b] = T;
        st = lens && types ? qt_model_set_encoder_batch(&r.model, lens, types, B, T)
                           : qt_error(QT_ERR_OOM, "bench step: cannot allocate a batch");
        free(lens);
        free(types);
    }
    if (st == QT_OK) st = qt_optimizer_init(&r.opt, &r.model);
    have_opt = st == QT_OK;
    if (st == QT_OK) r.model.training = 1;
    for (int i = 0; st == QT_OK && i < warmup; i++)
        st = train_step(&r, NULL);
    size_t marks[2] = {0, 0};
    if (st == QT_OK) {
        qt_backend_cuda_records_clear(be);
        st = qt_backend_cuda_record(be, 1);
    }
    if (st == QT_OK) st = train_step(&r, marks);
    if (st == QT_OK) st = qt_backend_cuda_record(be, 0);
    if (st == QT_OK && timed > 0) {
        double ms = 0.0, w0 = now_ms();
        st = qt_backend_cuda_timer_start(be);
        for (int i = 0; st == QT_OK && i < timed; i++)
            st = train_step(&r, NULL);
        if (st == QT_OK) st = qt_backend_cuda_timer_stop(be, &ms);
        if (st == QT_OK) {
            t->measured_ms = ms / timed;
            t->wall_ms = (now_ms() - w0) / timed;
            t->timed_steps = timed;
        }
    }
    if (st == QT_OK) {
        t->r = qt_backend_cuda_records(be, &t->n);
        t->micro_begin = marks[0];
        t->micro_end = marks[1];
        t->micro_steps = cfg->grad_accum;
        t->tokens = (double)bt * cfg->grad_accum;
        t->params = (double)qt_model_num_params(&r.model);
        t->flops_per_token =
            6.0 * t->params + 6.0 * cfg->n_layer * (double)cfg->d_model * (double)T;
    }
    if (have_opt) qt_optimizer_free(&r.opt, &r.model);
    if (have_model) qt_model_free(&r.model);
    free(r.inputs);
    free(r.targets);
    return st;
}

// trainer.c: the training loop: data, forward/backward with gradient accumulation, AdamW,
// progress lines, metrics.jsonl, evaluation with outlier metrics, checkpoints, resume.
#include "qtrain/trainer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/io/file.h"
#include "qtrain/data.h"
#include "qtrain/evaluate.h"
#include "qtrain/names.h"

static volatile sig_atomic_t stop_requested = 0;
static void on_stop_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_duration(double seconds, char *buf, size_t len) {
    long s = seconds > 0 ? (long)(seconds + 0.5) : 0;
    if (s >= 3600)
        snprintf(buf, len, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else
        snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
}

// The run directory, created with its parents: every path in it must fit the buffers below.
static qt_status make_run_dir(const char *path) {
    if (strlen(path) > 1023)
        return qt_error(QT_ERR_ARG, "--out %s is longer than 1023 bytes; use a shorter path", path);
    return qt_io_make_dirs(path, 0777, "--out directory");
}

static qt_status write_config_file(const qt_config *cfg, const char *dir) {
    char path[1200], tmp[1300];
    snprintf(path, sizeof path, "%s/config.conf", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return qt_error(QT_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    qt_status st = qt_config_write(cfg, f);
    if (fclose(f) != 0 && st == QT_OK) st = qt_error(QT_ERR_IO, "cannot write %s", tmp);
    if (st == QT_OK && rename(tmp, path) != 0)
        st = qt_error(QT_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st != QT_OK) remove(tmp);
    return st;
}

typedef struct {
    const qt_config *cfg;
    const qt_train_opts *opts;
    qt_backend own_be; // the CPU backend when the caller passes none
    qt_backend *be;
    qt_loss_scaler scaler;
    qt_model model;
    qt_optimizer opt;
    qt_dataloader *train, *val;
    FILE *metrics;
    char ckpt_path[1200];
    int *inputs, *targets;
} trainer;

static qt_status save_checkpoint(trainer *t, int step) {
    qt_data_pos pos = qt_dataloader_tell(t->train);
    qt_train_progress progress = {step,
                                  pos.epoch,
                                  pos.index,
                                  t->scaler.scale,
                                  t->scaler.clean_steps,
                                  (double)t->scaler.skipped};
    return qt_train_state_save(t->ckpt_path, &t->model, &t->opt, &progress);
}

static qt_status run_eval(trainer *t, int step) {
    qt_eval_result r;
    QT_TRY(qt_evaluate(&t->model, t->val, t->cfg->eval_batches, &r));
    qt_eval_write_json(&r, step, t->metrics);
    fputc('\n', t->metrics);
    fflush(t->metrics);
    if (!t->opts->quiet) {
        fprintf(stderr, "eval @ step %d: ", step);
        qt_eval_print(&r, stderr);
    }
    qt_eval_result_free(&r);
    return QT_OK;
}

static qt_status train_loop(trainer *t, int start_step) {
    const qt_config *cfg = t->cfg;
    int B = cfg->batch_size, T = cfg->seq_len;
    double tokens_per_step = (double)B * T * cfg->grad_accum;
    double flops_per_token = qt_model_flops_per_token(cfg, T);
    double t_start = now_seconds(), t_log = t_start;
    int steps_since_log = 0;
    double loss_since_log = 0.0;
    int end_step = cfg->max_steps;
    if (t->opts->stop_at_step > 0 && t->opts->stop_at_step < end_step)
        end_step = t->opts->stop_at_step;
    int step = start_step;
    while (step < end_step && !stop_requested) {
        QT_TRY(qt_model_zero_grad(&t->model));
        double step_loss = 0.0;
        for (int micro = 0; micro < cfg->grad_accum; micro++) {
            QT_TRY(qt_dataloader_next(t->train, t->inputs, t->targets));
            // Dropout masks depend only on (seed, step, micro-batch, layer, site).
            t->model.dropout_stream = (uint64_t)step * (uint64_t)cfg->grad_accum + (uint64_t)micro;
            float loss = 0.0f;
            QT_TRY(qt_model_forward(&t->model, t->inputs, t->targets, B, T, &loss));
            QT_TRY(qt_model_backward(&t->model, t->scaler.scale / (float)cfg->grad_accum));
            step_loss += loss;
        }
        step_loss /= cfg->grad_accum;
        float lr = qt_lr_at(cfg, step);
        double grad_norm = 0.0;
        int skipped = 0;
        float used_scale = t->scaler.scale;
        QT_TRY(qt_optimizer_step(&t->opt, &t->model, lr, used_scale, &grad_norm, &skipped));
        qt_loss_scaler_update(&t->scaler, skipped);
        // A skipped step still consumed its batch and counts as a step of the schedule, so
        // that data order and learning rate stay tied to the step number (as in AMP).
        step++;
        steps_since_log++;
        loss_since_log += step_loss;
        int last = step == end_step || stop_requested;
        if (step % cfg->log_every == 0 || last || step == start_step + 1) {
            double now = now_seconds();
            double tok_s = tokens_per_step * steps_since_log / (now - t_log);
            double eta = (double)(end_step - step) * tokens_per_step / tok_s;
            fprintf(t->metrics,
                    "{\"type\":\"train\",\"step\":%d,\"loss\":%.9g,\"lr\":%.6g,\"grad_norm\":%.6g,"
                    "\"tokens_per_s\":%.1f,\"gflops\":%.2f,\"elapsed_s\":%.2f,"
                    "\"loss_scale\":%.9g,\"skipped_steps\":%lld}\n",
                    step, step_loss, lr, isfinite(grad_norm) ? grad_norm : -1.0, tok_s,
                    tok_s * flops_per_token * 1e-9, now - t_start, used_scale,
                    t->scaler.skipped);
            fflush(t->metrics);
            if (!t->opts->quiet) {
                char eta_s[32];
                format_duration(eta, eta_s, sizeof eta_s);
                char scale_s[64] = "";
                if (t->scaler.enabled)
                    snprintf(scale_s, sizeof scale_s, " | scale %g, %lld skipped", used_scale,
                             t->scaler.skipped);
                fprintf(stderr,
                        "step %5d/%d | loss %.4f | lr %.2e | grad_norm %.3f | %.0f tok/s | "
                        "%.1f GFLOP/s | ETA %s%s\n",
                        step, cfg->max_steps, loss_since_log / steps_since_log, lr, grad_norm,
                        tok_s, tok_s * flops_per_token * 1e-9, eta_s, scale_s);
            }
            t_log = now;
            steps_since_log = 0;
            loss_since_log = 0.0;
        }
        int eval_due = (cfg->eval_every > 0 && step % cfg->eval_every == 0) || step == cfg->max_steps;
        if (eval_due) QT_TRY(run_eval(t, step));
        int ckpt_due = (cfg->ckpt_every > 0 && step % cfg->ckpt_every == 0) || last;
        if (ckpt_due) QT_TRY(save_checkpoint(t, step));
    }
    if (stop_requested && !t->opts->quiet)
        fprintf(stderr, "qtrain: stopped by signal after step %d; checkpoint %s\n", step,
                t->ckpt_path);
    return QT_OK;
}

// Where the bytes of the model's state live: printed at the start and logged as the first
// metrics line ({"memory": ...}); DQT's point is the bytes per quantized weight.
static void report_memory(const qt_model *m, const qt_optimizer *opt, FILE *metrics, int quiet) {
    const char *mode = qt_name(&qt_quant_mode_names, m->cfg.quant_mode);
    qt_model_memory mem;
    qt_model_memory_report(m, &mem);
    size_t state_bytes = 2 * m->n_params * sizeof(float);
    size_t master_bytes = opt->master ? m->n_float_params * sizeof(float) : 0;
    double per_q = mem.n_quantized ? (double)mem.code_bytes / (double)mem.n_quantized : 0.0;
    double mib = 1024.0 * 1024.0;
    if (metrics)
        fprintf(
            metrics,
            "{\"memory\": {\"quant_mode\": \"%s\", \"weights\": %zu, \"quantized_weights\": %zu, "
            "\"code_bytes\": %zu, \"bytes_per_quantized_weight\": %.4f, "
            "\"float_param_bytes\": %zu, \"grad_bytes\": %zu, \"adam_state_bytes\": %zu, "
            "\"master_bytes\": %zu, \"activation_bytes\": %zu, \"attention_tt_bytes\": %zu}}\n",
            mode, mem.n_weights, mem.n_quantized, mem.code_bytes, per_q, mem.float_param_bytes,
            mem.grad_bytes, state_bytes, master_bytes, mem.act_bytes, mem.attn_tt_bytes);
    if (quiet) return;
    if (mem.n_quantized)
        fprintf(stderr,
                "qtrain: quant %s | %zu weights as int8 codes: %.4f bytes/weight (codes + one fp32 "
                "scale per tensor), no float copy | %zu float weights: %.2f MiB\n",
                mode, mem.n_quantized, per_q,
                mem.n_weights - mem.n_quantized, (double)mem.float_param_bytes / mib);
    else if (m->cfg.quant_mode != QT_QMODE_NONE)
        fprintf(stderr, "qtrain: quant %s (fake quantization of the block linears)\n", mode);
    fprintf(
        stderr,
        "qtrain: memory: params %.2f MiB, codes %.2f MiB, grads %.2f MiB, Adam m+v %.2f MiB, "
        "masters %.2f MiB, activations %.2f MiB (attention %s: (B, H, T, T) buffers %.2f MiB)\n",
        (double)mem.float_param_bytes / mib, (double)mem.code_bytes / mib,
        (double)mem.grad_bytes / mib, (double)state_bytes / mib, (double)master_bytes / mib,
        (double)mem.act_bytes / mib, mem.attn_tt_bytes ? "composed" : "fused",
        (double)mem.attn_tt_bytes / mib);
}

qt_status qt_train(const qt_config *cfg, const qt_train_opts *opts) {
    QT_TRY(qt_config_validate(cfg));
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.opts = opts;
    snprintf(t.ckpt_path, sizeof t.ckpt_path, "%s/ckpt.bin", opts->out_dir);
    int B = cfg->batch_size, T = cfg->seq_len, start_step = 0;
    qt_status st = QT_OK;
    t.be = opts->backend;
    if (!t.be) {
        st = qt_backend_cpu_init(&t.own_be, cfg->threads);
        t.be = &t.own_be;
    }
    int have_model = 0, have_opt = 0;
    if (st == QT_OK && qt_config_precision_dtype(cfg->precision, t.be->dtype) != t.be->dtype)
        st = qt_error(QT_ERR_ARG,
                      "train.precision = %s, but the %s backend was opened for %s; open the "
                      "backend for that precision or set train.precision=auto",
                      qt_name(&qt_precision_names, cfg->precision), t.be->name,
                      qt_dtype_name(t.be->dtype));
    if (st == QT_OK) qt_loss_scaler_init(&t.scaler, cfg, t.be->dtype);
    if (st == QT_OK) st = qt_model_init(&t.model, cfg, t.be, B, T);
    have_model = st == QT_OK;
    if (st == QT_OK) st = qt_optimizer_init(&t.opt, &t.model);
    have_opt = st == QT_OK;
    if (st == QT_OK) st = qt_dataloader_open(&t.train, cfg->data_dir, "train", B, T,
                                             cfg->vocab_size, cfg->seed, 1);
    if (st == QT_OK) st = qt_dataloader_open(&t.val, cfg->data_dir, "val", B, T,
                                             cfg->vocab_size, cfg->seed, 0);
    if (st == QT_OK) {
        t.inputs = malloc((size_t)B * T * sizeof(int));
        t.targets = malloc((size_t)B * T * sizeof(int));
        if (!t.inputs || !t.targets) st = qt_error(QT_ERR_OOM, "cannot allocate a batch");
    }
    if (st == QT_OK && opts->resume_from) {
        qt_train_progress progress;
        st = qt_train_state_load(opts->resume_from, &t.model, &t.opt, &progress);
        if (st == QT_OK)
            st = qt_dataloader_seek(t.train, (qt_data_pos){progress.data_epoch, progress.data_index});
        if (st == QT_OK && t.scaler.enabled && progress.loss_scale > 0) {
            t.scaler.scale = (float)progress.loss_scale;
            t.scaler.clean_steps = (int)progress.loss_scale_clean_steps;
            t.scaler.skipped = (long long)progress.skipped_steps;
        }
        start_step = progress.step;
        if (st == QT_OK && start_step >= cfg->max_steps)
            st = qt_error(QT_ERR_ARG,
                          "%s is at step %d, and train.max_steps is %d: nothing to do; raise "
                          "it with --set train.max_steps=N",
                          opts->resume_from, start_step, cfg->max_steps);
    }
    // The output directory appears only once everything it will describe has loaded, so a
    // rejected run leaves nothing behind.
    if (st == QT_OK) st = make_run_dir(opts->out_dir);
    if (st == QT_OK) st = write_config_file(cfg, opts->out_dir);
    if (st == QT_OK) {
        char path[1200];
        snprintf(path, sizeof path, "%s/metrics.jsonl", opts->out_dir);
        // A resumed run appends to the log of the run it continues.
        t.metrics = fopen(path, opts->resume_from ? "a" : "w");
        if (!t.metrics) st = qt_error(QT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    if (st == QT_OK && !opts->quiet) {
        fprintf(stderr,
                "qtrain: %zu parameters | %d layers d_model %d heads %d d_ff %d | softmax %s | "
                "gate %s | %s backend (%s), %d threads | train %llu tokens, val %llu tokens%s\n",
                qt_model_num_params(&t.model), cfg->n_layer, cfg->d_model, cfg->n_head, cfg->d_ff,
                qt_name(&qt_softmax_names, cfg->softmax), qt_name(&qt_gate_names, cfg->gate),
                t.be->name, qt_dtype_name(t.be->dtype), t.be->threads,
                (unsigned long long)qt_dataloader_num_tokens(t.train),
                (unsigned long long)qt_dataloader_num_tokens(t.val),
                opts->resume_from ? " | resumed" : "");
    }
    if (st == QT_OK) report_memory(&t.model, &t.opt, t.metrics, opts->quiet);
    if (st == QT_OK) {
        t.model.training = 1;
        stop_requested = 0;
        struct sigaction sa, old_int, old_term;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        st = train_loop(&t, start_step);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    if (t.metrics) fclose(t.metrics);
    free(t.inputs);
    free(t.targets);
    if (t.train) qt_dataloader_free(t.train);
    if (t.val) qt_dataloader_free(t.val);
    if (have_opt) qt_optimizer_free(&t.opt, &t.model);
    if (have_model) qt_model_free(&t.model);
    if (t.be == &t.own_be) qt_backend_free(&t.own_be);
    return st;
}

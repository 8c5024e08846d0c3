// trainer.c: the training loop: data, forward/backward with gradient accumulation, AdamW,
// progress lines, metrics.jsonl, evaluation with outlier metrics, checkpoints, resume.
// Data-parallel (opts->comm with more than one rank): every rank runs this loop on its slice
// of each global batch (data_parallel.c); rank 0 alone prints, logs and writes.
#include "qtrain/trainer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data_parallel.h"
#include "host/io/clock.h"
#include "host/io/file.h"
#include "qtrain/data.h"
#include "qtrain/evaluate.h"
#include "qtrain/names.h"

// The signal (SIGINT, SIGTERM) that asked the run to stop, 0 while none has.
static volatile sig_atomic_t stop_requested = 0;
static void on_stop_signal(int sig) { stop_requested = sig; }

// The run directory, created with its parents: every path in it must fit the buffers below.
static qt_status make_run_dir(const char *path) {
    if (strlen(path) > 1023)
        return qt_error(QT_ERR_ARG, "--out %s is longer than 1023 bytes; use a shorter path", path);
    return qt_io_make_dirs(path, 0777, "--out directory");
}

// Killed runs leave `ckpt.bin.tmp.<pid>` (as large as a checkpoint) behind: remove those of
// dead processes (host/io/file.h), never a live one's.
static qt_status remove_stale_temps(const char *dir, int quiet) {
    int removed = 0;
    uint64_t bytes = 0;
    QT_TRY(qt_io_remove_stale_temps(dir, &removed, &bytes));
    if (removed && !quiet)
        fprintf(stderr, "qtrain: removed %d temporary file%s of killed runs from %s (%.1f MiB)\n",
                removed, removed == 1 ? "" : "s", dir, (double)bytes / (1024.0 * 1024.0));
    return QT_OK;
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

// A resumed run redoes the steps after its checkpoint, which a killed run may have logged
// already: metrics.jsonl is cut back to the checkpoint's step (atomically: a temporary file
// renamed over it), so that readers get one line per step. Kept: lines without a step (the
// memory line) and lines of steps <= `step`; an unfinished last line (no newline) goes.
// *has_memory says whether a {"memory": ...} line remains.
static qt_status truncate_metrics(const char *path, int step, int *has_memory) {
    *has_memory = 0;
    if (access(path, F_OK) != 0) return QT_OK;
    uint8_t *text = NULL;
    size_t len = 0;
    QT_TRY(qt_io_read_file(path, "metrics log", NULL, SIZE_MAX - 1, &text, &len));
    char *out = malloc(len + 1);
    if (!out) {
        free(text);
        return qt_error(QT_ERR_OOM, "cannot allocate %zu bytes to rewrite %s", len, path);
    }
    size_t kept = 0;
    for (size_t start = 0; start < len;) {
        const char *line = (const char *)text + start;
        const char *nl = memchr(line, '\n', len - start);
        if (!nl) break; // cut mid-write by the kill
        size_t n = (size_t)(nl - line) + 1;
        start += n;
        // Lines are NUL-free text: strstr stops at the newline's successor at worst.
        const char *s = strstr(line, "\"step\":");
        int keep = !s || s > nl || atol(s + 7) <= step;
        if (keep) {
            if (strncmp(line, "{\"memory\"", 9) == 0) *has_memory = 1;
            memcpy(out + kept, line, n);
            kept += n;
        }
    }
    qt_status st = QT_OK;
    if (kept != len) {
        const void *bufs[1] = {out};
        size_t lens[1] = {kept};
        st = qt_data_write_atomic(path, bufs, lens, 1);
    }
    free(out);
    free(text);
    return st;
}

// The message of a failed allocation whose size the model's shape drives, naming those keys.
static qt_status model_too_large(const qt_config *cfg, const char *what) {
    char first[512];
    snprintf(first, sizeof first, "%s", qt_last_error());
    return qt_error(QT_ERR_OOM,
                    "%s: the model (model.n_layer %d, model.d_model %d, model.d_ff %d, "
                    "model.vocab_size %d) and %s do not fit; lower model.d_model, model.n_layer "
                    "or model.d_ff",
                    first, cfg->n_layer, cfg->d_model, cfg->d_ff, cfg->vocab_size, what);
}

// qt_model_init at (train.batch_size, train.seq_len). When memory runs out, the message says
// which keys drive the size that failed: if the model fits for one token (B = T = 1, tried
// then freed), the activations of B x T did not, else the parameters did.
static qt_status init_model(qt_model *model, const qt_config *cfg, qt_backend *be) {
    int B = cfg->batch_size, T = cfg->seq_len;
    qt_status st = qt_model_init(model, cfg, be, B, T);
    if (st != QT_ERR_OOM) return st;
    char first[512];
    snprintf(first, sizeof first, "%s", qt_last_error());
    qt_model probe;
    if (B * (long long)T > 1 && qt_model_init(&probe, cfg, be, 1, 1) == QT_OK) {
        qt_model_free(&probe);
        return qt_error(QT_ERR_OOM,
                        "%s: the activations of train.batch_size x train.seq_len = %d x %d "
                        "tokens do not fit; lower train.batch_size (train.grad_accum keeps the "
                        "tokens per step) or train.seq_len",
                        first, B, T);
    }
    qt_error(QT_ERR_OOM, "%s", first);
    return model_too_large(cfg, "its gradients");
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
    int stopped_by;            // the signal that stopped the loop before its last step, else 0
    qt_tokenizer_id tokenizer; // recorded in checkpoints: what made the shards trained on
    qt_comm *comm; // opts->comm, or own_comm: one process
    qt_comm own_comm;
    int dp;            // more than one rank: the data-parallel path
    qt_grad_sync sync; // dp only
    int quiet;         // no progress lines: opts->quiet, or a rank other than 0
} trainer;

static qt_status save_checkpoint(trainer *t, int step) {
    qt_data_pos pos = qt_dataloader_tell(t->train);
    qt_train_progress progress = {step,
                                  pos.epoch,
                                  pos.index,
                                  t->scaler.scale,
                                  t->scaler.clean_steps,
                                  (double)t->scaler.skipped,
                                  t->tokenizer};
    if (t->dp) return qt_dp_save(t->ckpt_path, &t->sync, &t->model, &t->opt, &progress);
    return qt_train_state_save(t->ckpt_path, &t->model, &t->opt, &progress);
}

static qt_status run_eval(trainer *t, int step) {
    qt_eval_result r;
    // Every rank evaluates (the same parameters and batches, so no rank waits on another);
    // rank 0 alone writes.
    QT_TRY(qt_evaluate(&t->model, t->val, t->cfg->eval_batches, &r));
    if (t->metrics) {
        qt_eval_write_json(&r, step, t->metrics);
        fputc('\n', t->metrics);
        fflush(t->metrics);
    }
    if (!t->quiet) {
        fprintf(stderr, "eval @ step %d: ", step);
        qt_eval_print(&r, stderr);
    }
    qt_eval_result_free(&r);
    return QT_OK;
}

static qt_status train_loop(trainer *t, int start_step) {
    const qt_config *cfg = t->cfg;
    int B = cfg->batch_size, T = cfg->seq_len;
    const uint64_t ranks = (uint64_t)t->comm->size, rank = (uint64_t)t->comm->rank;
    double tokens_per_step = (double)B * T * cfg->grad_accum * (double)ranks;
    double flops_per_token = qt_model_flops_per_token(cfg, T);
    double t_start = qt_clock_seconds(), t_log = t_start;
    int steps_since_log = 0;
    double loss_since_log = 0.0;
    int end_step = cfg->max_steps;
    if (t->opts->stop_at_step > 0 && t->opts->stop_at_step < end_step)
        end_step = t->opts->stop_at_step;
    // The signal is read once per step, where the step decides on its checkpoint: one that
    // arrives later stops the loop after the next step, which then writes the checkpoint.
    // Data-parallel, the ranks agree on it (qt_dp_step), so every rank stops after one step.
    int step = start_step, stop = 0;
    while (step < end_step && !stop) {
        t->comm->step = (uint64_t)step + 1;
        QT_TRY(qt_model_zero_grad(&t->model));
        double step_loss = 0.0;
        for (int micro = 0; micro < cfg->grad_accum; micro++) {
            QT_TRY(qt_dp_next_batch(t->train, t->comm, B, t->inputs, t->targets));
            if (cfg->arch == QT_ARCH_BERT)
                QT_TRY(qt_model_set_encoder_batch(&t->model, qt_dataloader_lens(t->train),
                                                  qt_dataloader_types(t->train), B, T));
            // Dropout masks depend only on (seed, step, micro-batch, rank, layer, site).
            t->model.dropout_stream =
                ((uint64_t)step * (uint64_t)cfg->grad_accum + (uint64_t)micro) * ranks + rank;
            float loss = 0.0f;
            // The classifier's backward runs in the forward's op: the loss scale is known.
            const float scale = t->scaler.scale / (float)cfg->grad_accum;
            QT_TRY(qt_model_forward_train(&t->model, t->inputs, t->targets, B, T, &loss, scale));
            // The last micro-batch's backward completes the gradients: reduce them as it goes.
            if (t->dp && micro == cfg->grad_accum - 1) qt_grad_sync_arm(&t->sync);
            QT_TRY(qt_model_backward(&t->model, scale));
            step_loss += loss;
        }
        step_loss /= cfg->grad_accum;
        float lr = qt_lr_at(cfg, step);
        double grad_norm = 0.0;
        int skipped = 0;
        float used_scale = t->scaler.scale;
        if (t->dp) {
            stop = stop_requested;
            QT_TRY(qt_dp_step(&t->sync, &t->opt, &t->model, lr, used_scale, &grad_norm, &skipped,
                              &step_loss, &stop));
        } else {
            QT_TRY(qt_optimizer_step(&t->opt, &t->model, lr, used_scale, &grad_norm, &skipped));
            stop = stop_requested;
        }
        qt_loss_scaler_update(&t->scaler, skipped);
        // A skipped step still consumed its batch and counts as a step of the schedule, so
        // that data order and learning rate stay tied to the step number (as in AMP).
        step++;
        if (t->opts->on_step)
            QT_TRY(t->opts->on_step(t->opts->on_step_user, step, &t->model, &t->opt));
        steps_since_log++;
        loss_since_log += step_loss;
        int last = step == end_step || stop;
        if (t->metrics && (step % cfg->log_every == 0 || last || step == start_step + 1)) {
            double now = qt_clock_seconds();
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
            if (!t->quiet) {
                char eta_s[32];
                qt_format_duration(eta, eta_s, sizeof eta_s);
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
    if (stop && step < end_step) {
        t->stopped_by = stop;
        if (!t->quiet)
            fprintf(stderr, "qtrain: stopped by %s after step %d; checkpoint %s\n",
                    stop == SIGINT ? "SIGINT" : "SIGTERM", step, t->ckpt_path);
    }
    return QT_OK;
}

// Where the bytes of the model's state live: printed at the start and logged as the first
// metrics line ({"memory": ...}); DQT's point is the bytes per quantized weight. The bytes
// are this process's; data-parallel, the line adds the world size and the optimizer state
// of all ranks together (with ZeRO-1 each rank holds its shard: total / N, + padding).
static void report_memory(const qt_model *m, const qt_optimizer *opt, FILE *metrics, int quiet,
                          const qt_comm *comm) {
    const char *mode = qt_name(&qt_quant_mode_names, m->cfg.quant_mode);
    qt_model_memory mem;
    qt_model_memory_report(m, &mem);
    size_t own = opt->hi - opt->lo;
    size_t state_bytes = 2 * own * sizeof(float);
    size_t master_bytes =
        opt->master ? (opt->sharded ? own : m->n_float_params) * sizeof(float) : 0;
    size_t state_total = 2 * m->n_params * sizeof(float);
    size_t master_total = opt->master ? m->n_float_params * sizeof(float) : 0;
    char dist[256] = "";
    if (comm->size > 1)
        snprintf(dist, sizeof dist,
                 ", \"world_size\": %d, \"zero\": %d, \"adam_state_bytes_total\": %zu, "
                 "\"master_bytes_total\": %zu",
                 comm->size, opt->sharded, state_total, master_total);
    double per_q = mem.n_quantized ? (double)mem.code_bytes / (double)mem.n_quantized : 0.0;
    double mib = 1024.0 * 1024.0;
    if (metrics)
        fprintf(
            metrics,
            "{\"memory\": {\"quant_mode\": \"%s\", \"weights\": %zu, \"quantized_weights\": %zu, "
            "\"code_bytes\": %zu, \"bytes_per_quantized_weight\": %.4f, "
            "\"float_param_bytes\": %zu, \"grad_bytes\": %zu, \"adam_state_bytes\": %zu, "
            "\"master_bytes\": %zu, \"activation_bytes\": %zu, \"attention_tt_bytes\": %zu%s}}\n",
            mode, mem.n_weights, mem.n_quantized, mem.code_bytes, per_q, mem.float_param_bytes,
            mem.grad_bytes, state_bytes, master_bytes, mem.act_bytes, mem.attn_tt_bytes, dist);
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
    if (comm->size > 1)
        fprintf(stderr,
                "qtrain: data-parallel over %d ranks, per rank: Adam m+v %.2f MiB and masters "
                "%.2f MiB%s (all ranks' optimizer state: %.2f MiB)\n",
                comm->size, (double)state_bytes / mib, (double)master_bytes / mib,
                opt->sharded ? " = total / N (+ padding), ZeRO-1" : ", replicated",
                (double)(state_total + master_total) / mib * (opt->sharded ? 1.0 : comm->size));
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
    t.comm = opts->comm;
    if (!t.comm) {
        qt_comm_single_init(&t.own_comm);
        t.comm = &t.own_comm;
    }
    t.comm->timeout_s = cfg->dist_timeout_s;
    t.dp = t.comm->size > 1;
    int rank0 = t.comm->rank == 0, have_sync = 0;
    t.quiet = opts->quiet || !rank0;
    // Ranks reach the setup's agreements at different times (data opened, checkpoint read).
    double slow = 10.0 * t.comm->timeout_s;
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
    if (st == QT_OK) st = init_model(&t.model, cfg, t.be);
    have_model = st == QT_OK;
    if (st == QT_OK && t.dp) {
        st = qt_grad_sync_init(&t.sync, t.comm, &t.model,
                               (size_t)((double)cfg->dist_bucket_mb * 1048576.0), cfg->dist_zero);
        have_sync = st == QT_OK;
    }
    // Data-parallel: every rank starts from rank 0's parameters.
    if (t.dp) st = qt_comm_agree(t.comm, st, slow, "to build the model");
    if (st == QT_OK) st = qt_dp_broadcast_params(t.comm, &t.model);
    if (st == QT_OK) {
        st = qt_dp_optimizer_init(&t.opt, &t.model, have_sync ? &t.sync : NULL);
        if (st == QT_ERR_OOM) st = model_too_large(cfg, "its optimizer state (AdamW's m and v)");
    }
    have_opt = st == QT_OK;
    if (st == QT_OK) st = qt_dataloader_open_for(&t.train, cfg, "train", 1);
    if (st == QT_OK) st = qt_dataloader_open_for(&t.val, cfg, "val", 0);
    if (st == QT_OK) {
        t.inputs = malloc((size_t)B * T * sizeof(int));
        t.targets = malloc((size_t)B * T * sizeof(int));
        if (!t.inputs || !t.targets) st = qt_error(QT_ERR_OOM, "cannot allocate a batch");
    }
    // The tokenizer of the shards (unknown for shards made by other tools): recorded in the
    // checkpoints, and on resume checked against the one the checkpoint records.
    qt_tokenizer_id data_tok = {0, 0};
    if (st == QT_OK) st = qt_data_tokenizer_id(cfg->data_dir, &data_tok);
    t.tokenizer = data_tok;
    if (st == QT_OK && !data_tok.vocab_size && !opts->resume_from && !t.quiet)
        fprintf(stderr,
                "qtrain: note: no tokenizer is recorded for the shards in %s (no "
                "prepare.json naming one); the checkpoint will record none\n",
                cfg->data_dir);
    if (st == QT_OK && opts->resume_from) {
        qt_train_progress progress;
        st = qt_dp_load(opts->resume_from, have_sync ? &t.sync : NULL, &t.model, &t.opt, &progress);
        if (st == QT_OK) {
            char what[700], note[2048];
            snprintf(what, sizeof what, "the shards in %s", cfg->data_dir);
            st = qt_tokenizer_id_check(progress.tokenizer, opts->resume_from, data_tok, what,
                                       "resume on the shards the run trained on (data.dir)",
                                       opts->allow_tokenizer_mismatch, note, sizeof note);
            if (note[0] && !t.quiet) fprintf(stderr, "%s\n", note);
            if (!data_tok.vocab_size) t.tokenizer = progress.tokenizer;
        }
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
    if (t.dp) st = qt_comm_agree(t.comm, st, slow, "to open the data or the checkpoint");
    // The output directory appears only once everything it will describe has loaded, so a
    // rejected run leaves nothing behind. Rank 0 alone writes in it.
    if (st == QT_OK && rank0) st = make_run_dir(opts->out_dir);
    if (st == QT_OK && rank0) st = remove_stale_temps(opts->out_dir, t.quiet);
    if (st == QT_OK && rank0) st = write_config_file(cfg, opts->out_dir);
    int log_memory = 1;
    if (st == QT_OK && rank0) {
        char path[1200];
        snprintf(path, sizeof path, "%s/metrics.jsonl", opts->out_dir);
        // A resumed run appends to the log of the run it continues, from its checkpoint's step.
        int has_memory = 0;
        if (opts->resume_from) st = truncate_metrics(path, start_step, &has_memory);
        log_memory = !has_memory;
        if (st == QT_OK) t.metrics = fopen(path, opts->resume_from ? "a" : "w");
        if (st == QT_OK && !t.metrics)
            st = qt_error(QT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    if (t.dp) st = qt_comm_agree(t.comm, st, slow, "to create the run directory");
    if (st == QT_OK && !t.quiet) {
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
    if (st == QT_OK && t.dp && !t.quiet)
        fprintf(
            stderr,
            "qtrain: data-parallel: %d ranks (%s) x batch %d x accumulation %d = %d sequences "
            "per step | gradient buckets of %g MiB (%d) | ZeRO-1 %s | collective timeout %g s\n",
            t.comm->size, t.comm->name, B, cfg->grad_accum, t.comm->size * B * cfg->grad_accum,
            (double)cfg->dist_bucket_mb, t.sync.n_buckets, t.sync.zero ? "on" : "off",
            t.comm->timeout_s);
    if (st == QT_OK) report_memory(&t.model, &t.opt, log_memory ? t.metrics : NULL, t.quiet, t.comm);
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
    if (opts->stop_signal) *opts->stop_signal = st == QT_OK ? t.stopped_by : 0;
    if (t.metrics) fclose(t.metrics);
    free(t.inputs);
    free(t.targets);
    if (t.train) qt_dataloader_free(t.train);
    if (t.val) qt_dataloader_free(t.val);
    if (have_opt) qt_optimizer_free(&t.opt, &t.model);
    if (have_sync) qt_grad_sync_free(&t.sync);
    if (have_model) qt_model_free(&t.model);
    if (t.comm == &t.own_comm) qt_comm_free(&t.own_comm);
    if (t.be == &t.own_be) qt_backend_free(&t.own_be);
    return st;
}

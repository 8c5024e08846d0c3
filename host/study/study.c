// study.c: `qtrain study` (qtrain/study.h): plan the runs (variant x seed), find where each
// stands (finished, checkpointed, new), train and evaluate what is left with progress and an
// ETA over the whole study, stop cleanly on SIGINT / SIGTERM, then write the report and plots.
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "host/io/clock.h"
#include "host/io/file.h"
#include "qtrain/checkpoint.h"
#include "qtrain/data.h"
#include "qtrain/study.h"
#include "qtrain/trainer.h"
#include "study_internal.h"

// The signal that asked the study to stop outside a training step (the trainer catches those
// that arrive during its loop and reports them itself), 0 while none has.
static volatile sig_atomic_t stop_requested = 0;
static void on_stop_signal(int sig) { stop_requested = sig; }

void study_run_free_results(study_run *r) {
    qt_eval_result_free(&r->eval);
    free(r->hist);
    free(r->train);
    free(r->evals);
    r->hist = NULL;
    r->train = NULL;
    r->evals = NULL;
    r->n_train = r->n_evals = 0;
    r->evaluated = 0;
}

qt_status study_write_text(const char *path, const char *buf, size_t len) {
    const void *bufs[1] = {buf};
    size_t lens[1] = {len};
    return qt_data_write_atomic(path, bufs, lens, 1);
}

// ---- planning ----------------------------------------------------------------------------

// The resolved config of one run: defaults < --config < variant < --set, seed + index; a
// checkpoint every evaluation when the config asks for none (an interrupted run then resumes
// from its last evaluation even when it was killed without a chance to checkpoint).
static qt_status resolve_config(const qt_study_opts *o, const qt_config *base,
                                const qt_study_variant *v, int seed_index, qt_config *cfg) {
    *cfg = *base;
    QT_TRY(qt_study_variant_apply(cfg, v));
    for (int s = 0; s < o->n_sets; s++) QT_TRY(qt_config_set(cfg, o->sets[s], "--set"));
    cfg->seed += (uint64_t)seed_index;
    if (cfg->ckpt_every == 0 && cfg->eval_every > 0) cfg->ckpt_every = cfg->eval_every;
    qt_status st = qt_config_validate(cfg);
    if (st != QT_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", qt_last_error());
        return qt_error(st, "variant %s: %s", v->name, msg);
    }
    return QT_OK;
}

static qt_status config_text(const qt_config *cfg, char **text, size_t *len) {
    FILE *f = open_memstream(text, len);
    if (!f) return qt_error(QT_ERR_OOM, "cannot allocate a config text");
    qt_status st = qt_config_write(cfg, f);
    fclose(f);
    if (st != QT_OK) free(*text);
    return st;
}

// A config line without its comment and with runs of spaces collapsed: "key = value".
static void plain_line(const char *s, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && s[i] != '#' && k + 1 < cap; i++)
        if (s[i] != ' ' || (k > 0 && out[k - 1] != ' ')) out[k++] = s[i];
    while (k > 0 && out[k - 1] == ' ') k--;
    out[k] = '\0';
}

// The first line where two config texts differ, into line (n bytes); 0 when they are equal.
static int first_difference(const char *a, const char *b, char *line, size_t n) {
    while (*a || *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la) != 0) {
            char pa[200], pb[200];
            plain_line(a, la, pa, sizeof pa);
            plain_line(b, lb, pb, sizeof pb);
            snprintf(line, n, "%s here, %s in the run", pa, pb);
            return 1;
        }
        a += la + (ea ? 1 : 0);
        b += lb + (eb ? 1 : 0);
    }
    return 0;
}

// The optimizer steps a training checkpoint records.
static qt_status checkpoint_step(const char *path, int *step) {
    qt_ckpt *ck = NULL;
    QT_TRY(qt_ckpt_read(path, &ck));
    uint64_t meta[4] = {0};
    qt_status st = qt_ckpt_get(ck, "qtrain.meta", QT_CKPT_U64, 4, meta);
    qt_ckpt_free(ck);
    *step = (int)meta[1];
    return st;
}

// A run directory that holds a checkpoint must have been made by the same config: a study
// rerun with other --set values would otherwise mix two experiments in one table.
static qt_status check_same_config(const study_run *r, const char *ckpt) {
    qt_config stored;
    QT_TRY(qt_train_state_read_config(ckpt, &stored));
    char *want = NULL, *have = NULL;
    size_t wl = 0, hl = 0;
    QT_TRY(config_text(&r->cfg, &want, &wl));
    qt_status st = config_text(&stored, &have, &hl);
    char diff[512];
    if (st == QT_OK && first_difference(want, have, diff, sizeof diff))
        st = qt_error(QT_ERR_ARG,
                      "%s was trained with another config (%s); use another --out, or remove "
                      "that run directory to train it again",
                      r->dir, diff);
    free(want);
    free(have);
    return st;
}

// ---- progress over the whole study -------------------------------------------------------

typedef struct {
    const qt_study_opts *o;
    int n_runs, run_number;   // run_number: 1-based, of the run training now
    const study_run *run;
    long long steps_total;    // every run's steps
    long long steps_done;     // done, in earlier sessions or this one
    long long steps_session;  // trained in this session
    double train_seconds;     // spent training in this session
    double step_mark;         // when the previous step of this run ended
    int evals_left;           // runs still to evaluate
    int evals_done;           // evaluated in this session
    double eval_seconds;      // spent evaluating in this session
    int forwarded;            // the study's stop signal was passed on to the trainer
} study_progress;

// Remaining time: the steps left at this session's step rate, plus the evaluations left at
// this session's mean evaluation time (unknown before the first: *evals_unknown).
static double eta_seconds(const study_progress *p, int *evals_unknown) {
    double eta = 0.0;
    if (p->steps_session > 0)
        eta += (double)(p->steps_total - p->steps_done) * p->train_seconds /
               (double)p->steps_session;
    *evals_unknown = p->evals_left > 0 && p->evals_done == 0;
    if (p->evals_done > 0) eta += p->evals_left * p->eval_seconds / p->evals_done;
    return eta;
}

static qt_status on_step(void *user, int step, const qt_model *model, const qt_optimizer *opt) {
    (void)model, (void)opt;
    study_progress *p = user;
    // A signal that came while the trainer was still setting up reached the study's handler,
    // not the trainer's (installed only for its loop): pass it on, so that the run stops
    // after its next step with its checkpoint rather than at its end.
    if (stop_requested && !p->forwarded) {
        p->forwarded = 1;
        raise(stop_requested);
    }
    double now = qt_clock_seconds();
    p->train_seconds += now - p->step_mark;
    p->step_mark = now;
    p->steps_session++;
    p->steps_done++;
    const qt_config *cfg = &p->run->cfg;
    if (p->o->quiet || (step % cfg->log_every != 0 && step != cfg->max_steps)) return QT_OK;
    int unknown = 0;
    char eta[32];
    qt_format_duration(eta_seconds(p, &unknown), eta, sizeof eta);
    double tokens = (double)cfg->batch_size * cfg->seq_len * cfg->grad_accum;
    fprintf(stderr,
            "qtrain: study run %d/%d %s | step %d/%d | %.0f tok/s | study %.0f%% | ETA %s%s\n",
            p->run_number, p->n_runs, p->run->name, step, cfg->max_steps,
            tokens * (double)p->steps_session / p->train_seconds,
            100.0 * (double)p->steps_done / (double)p->steps_total, eta,
            unknown ? " + evaluations" : "");
    return QT_OK;
}

// ---- one run -----------------------------------------------------------------------------

typedef enum { RUN_NEW = 0, RUN_PARTIAL, RUN_TRAINED, RUN_EVALUATED } run_state;

static qt_status run_state_of(study_run *r, run_state *state, int *step) {
    char ckpt[1300], eval[1300];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.bin", r->dir);
    snprintf(eval, sizeof eval, "%s/eval.json", r->dir);
    *step = 0;
    *state = RUN_NEW;
    if (access(ckpt, F_OK) != 0) return QT_OK;
    QT_TRY(check_same_config(r, ckpt));
    QT_TRY(checkpoint_step(ckpt, step));
    if (*step < r->cfg.max_steps) {
        *state = RUN_PARTIAL;
        return QT_OK;
    }
    *state = RUN_TRAINED;
    if (access(eval, F_OK) != 0) return QT_OK;
    if (study_read_eval(r) == QT_OK) {
        *state = RUN_EVALUATED;
        return QT_OK;
    }
    // An unreadable evaluation (cut by a crash before its atomic rename cannot be; edited by
    // hand can) is done again rather than trusted.
    fprintf(stderr, "qtrain: study: %s is unreadable (%s); evaluating %s again\n", eval,
            qt_last_error(), r->name);
    return QT_OK;
}

static qt_status train_run(study_run *r, int resume_step, study_progress *p, int *signal_out) {
    char ckpt[1300];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.bin", r->dir);
    if (!p->o->quiet) {
        if (resume_step > 0)
            fprintf(stderr, "qtrain: study run %d/%d %s: resuming from %s at step %d of %d\n",
                    p->run_number, p->n_runs, r->name, ckpt, resume_step, r->cfg.max_steps);
        else
            fprintf(stderr, "qtrain: study run %d/%d %s: training %d steps (%s)\n",
                    p->run_number, p->n_runs, r->name, r->cfg.max_steps, r->variant->what);
    }
    int sig = 0;
    p->run = r;
    p->forwarded = 0;
    p->step_mark = qt_clock_seconds();
    qt_train_opts to = {.backend = p->o->train_be,
                        .out_dir = r->dir,
                        .resume_from = resume_step > 0 ? ckpt : NULL,
                        .quiet = 1,
                        .stop_signal = &sig,
                        .on_step = on_step,
                        .on_step_user = p};
    QT_TRY(qt_train(&r->cfg, &to));
    *signal_out = sig;
    return QT_OK;
}

// Exclusive use of the study directory: a second `qtrain study` on it would train the same
// runs twice and race on their files. The lock goes with the process.
static qt_status lock_study_dir(const char *out_dir, int *fd) {
    char path[1200];
    snprintf(path, sizeof path, "%s/.study.lock", out_dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return qt_error(QT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        close(*fd);
        *fd = -1;
        return qt_error(QT_ERR_IO,
                        "another qtrain study is running in %s; wait for it or use another --out",
                        out_dir);
    }
    return QT_OK;
}

static void stopped_message(const qt_study_opts *o, int sig, const char *where) {
    if (o->stop_signal) *o->stop_signal = sig;
    fprintf(stderr,
            "qtrain: study stopped by %s %s; run the same command again to continue (finished "
            "runs are not retrained)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", where);
}

static qt_status run_study(const qt_study_opts *o, study_run *runs, int n_runs,
                           const char *config_label) {
    study_progress p;
    memset(&p, 0, sizeof p);
    p.o = o;
    p.n_runs = n_runs;
    run_state *states = calloc((size_t)n_runs, sizeof *states);
    int *steps = calloc((size_t)n_runs, sizeof *steps);
    qt_status st = states && steps ? QT_OK : qt_error(QT_ERR_OOM, "cannot allocate the plan");
    // Where every run stands, before any work: the ETA covers the whole study.
    int finished = 0;
    for (int i = 0; st == QT_OK && i < n_runs; i++) {
        st = run_state_of(&runs[i], &states[i], &steps[i]);
        if (st != QT_OK) break;
        p.steps_total += runs[i].cfg.max_steps;
        p.steps_done += states[i] >= RUN_TRAINED ? runs[i].cfg.max_steps : steps[i];
        p.evals_left += states[i] != RUN_EVALUATED;
        finished += states[i] == RUN_EVALUATED;
    }
    if (st == QT_OK && !o->quiet)
        fprintf(stderr,
                "qtrain: study of %d runs (%d variant%s x %d seed%s) in %s: %d finished earlier, "
                "%lld of %lld training steps done\n",
                n_runs, o->n_variants, o->n_variants > 1 ? "s" : "", o->seeds,
                o->seeds > 1 ? "s" : "", o->out_dir, finished, p.steps_done,
                p.steps_total);
    for (int i = 0; st == QT_OK && i < n_runs; i++) {
        study_run *r = &runs[i];
        p.run_number = i + 1;
        if (states[i] == RUN_EVALUATED) {
            if (!o->quiet)
                fprintf(stderr, "qtrain: study run %d/%d %s: finished earlier (%s/eval.json), "
                        "not retrained\n", i + 1, n_runs, r->name, r->dir);
            continue;
        }
        if (stop_requested) break;
        if (states[i] != RUN_TRAINED) {
            int sig = 0;
            st = train_run(r, steps[i], &p, &sig);
            if (st != QT_OK) break;
            if (sig) {
                char where[300];
                snprintf(where, sizeof where, "during run %s (its checkpoint is written)", r->name);
                stopped_message(o, sig, where);
                break;
            }
        } else if (!o->quiet) {
            fprintf(stderr, "qtrain: study run %d/%d %s: trained earlier (step %d), evaluating\n",
                    i + 1, n_runs, r->name, steps[i]);
        }
        if (stop_requested) break;
        double t0 = qt_clock_seconds();
        st = study_eval_run(r, o->eval_be, o->eval_batches ? o->eval_batches
                                                           : r->cfg.eval_batches,
                            o->calib_batches, o->quiet);
        if (st != QT_OK) break;
        p.eval_seconds += qt_clock_seconds() - t0;
        p.evals_done++;
        p.evals_left--;
        if (!o->quiet) {
            int unknown = 0;
            char eta[32];
            qt_format_duration(eta_seconds(&p, &unknown), eta, sizeof eta);
            char w8a8[64] = "W8A8 n/a (trained quantized)";
            if (!isnan(r->int8_ppl))
                snprintf(w8a8, sizeof w8a8, "W8A8 ppl %.2f fake, %.2f INT8", r->fake_ppl,
                         r->int8_ppl);
            fprintf(stderr,
                    "qtrain: study run %d/%d %s: val_loss %.4f | ppl %.2f | max_inf_norm %.2f | "
                    "avg_kurtosis %.2f | %s | study ETA %s\n",
                    i + 1, n_runs, r->name, r->eval.val_loss, r->eval.val_ppl,
                    r->eval.max_inf_norm, r->eval.avg_kurtosis, w8a8, eta);
        }
    }
    if (st == QT_OK && stop_requested && !(o->stop_signal && *o->stop_signal))
        stopped_message(o, stop_requested, "between phases");
    if (st != QT_OK || (o->stop_signal && *o->stop_signal)) goto out;
    for (int i = 0; st == QT_OK && i < n_runs; i++) st = study_read_series(&runs[i]);
    if (st != QT_OK) goto out;
    study_report rep = {.out_dir = o->out_dir,
                        .config_label = config_label,
                        .runs = runs,
                        .n_variants = o->n_variants,
                        .seeds = o->seeds};
    st = study_write_report(&rep, stdout);
    if (st == QT_OK && o->plots) st = study_draw_plots(&rep, o->quiet);
    // Ctrl-C reaches gnuplot too, which then fails: that is a stop, not an error.
    if (st != QT_OK && stop_requested) {
        stopped_message(o, stop_requested, "while drawing the plots");
        st = QT_OK;
    }
    if (st == QT_OK && !o->quiet && !stop_requested)
        fprintf(stderr, "qtrain: study done: %s/results.md, %s/metrics.json%s\n", o->out_dir,
                o->out_dir, o->plots ? ", plots/*.png" : " (no plots: --no-plots)");
out:
    free(states);
    free(steps);
    return st;
}

qt_status qt_study_run(const qt_study_opts *o) {
    if (o->stop_signal) *o->stop_signal = 0;
    char names[512];
    qt_study_variant_names(names, sizeof names);
    if (o->n_variants < 1)
        return qt_error(QT_ERR_ARG, "--variants names no variant; choose from %s", names);
    if (o->seeds < 1) return qt_error(QT_ERR_ARG, "--seeds %d must be >= 1", o->seeds);
    if (o->calib_batches < 1)
        return qt_error(QT_ERR_ARG, "--calib-batches %d must be >= 1", o->calib_batches);
    if (!o->out_dir || !o->out_dir[0])
        return qt_error(QT_ERR_ARG, "--out is required: the study's directory");
    if (strlen(o->out_dir) > 700)
        return qt_error(QT_ERR_ARG, "--out %s is longer than 700 bytes; use a shorter path",
                        o->out_dir);
    const qt_study_variant **vs = calloc((size_t)o->n_variants, sizeof *vs);
    if (!vs) return qt_error(QT_ERR_OOM, "cannot allocate the variant list");
    qt_status st = QT_OK;
    for (int i = 0; st == QT_OK && i < o->n_variants; i++) {
        vs[i] = qt_study_variant_find(o->variants[i]);
        if (!vs[i])
            st = qt_error(QT_ERR_ARG, "--variants: '%s' is not a variant; the variants are %s",
                          o->variants[i], names);
        for (int j = 0; st == QT_OK && j < i; j++)
            if (vs[j] == vs[i])
                st = qt_error(QT_ERR_ARG, "--variants names %s twice; name each variant once",
                              vs[i]->name);
    }
    qt_config base;
    qt_config_defaults(&base);
    if (st == QT_OK && o->config_path) st = qt_config_load(&base, o->config_path);
    int n_runs = o->n_variants * o->seeds;
    study_run *runs = st == QT_OK ? calloc((size_t)n_runs, sizeof *runs) : NULL;
    if (st == QT_OK && !runs) st = qt_error(QT_ERR_OOM, "cannot allocate %d runs", n_runs);
    for (int v = 0; st == QT_OK && v < o->n_variants; v++)
        for (int s = 0; st == QT_OK && s < o->seeds; s++) {
            study_run *r = &runs[v * o->seeds + s];
            r->variant = vs[v];
            r->seed_index = s;
            snprintf(r->name, sizeof r->name, "%s-s%d", vs[v]->name, s);
            snprintf(r->dir, sizeof r->dir, "%s/runs/%s", o->out_dir, r->name);
            st = resolve_config(o, &base, vs[v], s, &r->cfg);
        }
    // The data must be there before the study directory is: a rejected study leaves nothing.
    if (st == QT_OK) {
        qt_dataloader *dl = NULL;
        const qt_config *c = &runs[0].cfg;
        st = qt_dataloader_open(&dl, c->data_dir, "train", c->batch_size, c->seq_len,
                                c->vocab_size, c->seed, 0);
        if (dl) qt_dataloader_free(dl);
    }
    if (st == QT_OK) st = qt_io_check_dir_creatable(o->out_dir, "--out directory");
    char runs_dir[1200];
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", o->out_dir);
    if (st == QT_OK) st = qt_io_make_dirs(runs_dir, 0777, "--out directory");
    int lock_fd = -1;
    if (st == QT_OK) st = lock_study_dir(o->out_dir, &lock_fd);
    if (st == QT_OK) {
        stop_requested = 0;
        struct sigaction sa, old_int, old_term;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        st = run_study(o, runs, n_runs, o->config_path ? o->config_path : "built-in defaults");
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    if (lock_fd >= 0) close(lock_fd);
    for (int i = 0; runs && i < n_runs; i++) study_run_free_results(&runs[i]);
    free(runs);
    free(vs);
    return st;
}

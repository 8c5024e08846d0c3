// test_dist_mpi.c: data-parallel training on the CPU backend over MPI, run by CTest as
// `mpirun -np 2 test_dist_mpi` (label mpi). Every case runs on both ranks; results that only
// rank 0 can see (its metrics.jsonl) are turned into one verdict shared by both ranks, so that
// a failure fails both and no rank is left waiting in a collective.
//
// What is checked:
// - 2 ranks with micro-batch B train like 1 rank with 2B: the losses agree within a bound
//   (below), and after every step the parameters are bit-identical on both ranks;
// - ZeRO-1 on and off give bit-identical losses and checkpoints, and each rank holds half of
//   the optimizer state (+ the 16-element padding of the shard boundary);
// - gradient buckets are handed to MPI while the backward still runs, each one only once
//   every gradient in it is final, and the training does not depend on the bucket size;
// - a 2-rank run stopped and resumed equals the uninterrupted 2-rank run bit for bit (ZeRO-1
//   on, so the shards are gathered into the checkpoint and scattered back), and a 2-rank
//   checkpoint resumed on 1 rank with the same global batch continues the same training.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/checkpoint.h"
#include "qtrain/data.h"
#include "qtrain/dist.h"
#include "qtrain/trainer.h"
#include "mpi_testutil.h"
#include "testutil.h"

#define STEPS 6

static qt_comm comm; // MPI_COMM_WORLD, 2 ranks
static char data_dir[512];

// ---- helpers -----------------------------------------------------------------------------

typedef qt_verdict verdict;
typedef qt_step_check step_check;
#define fail_case qt_verdict_fail

static void agree(verdict *v) { qt_verdict_agree(&comm, v); }

static void tiny_config(qt_config *cfg) {
    qt_mpi_test_data(&comm, data_dir, sizeof data_dir);
    qt_config_defaults(cfg);
    const char *sets[] = {"model.n_layer=2",   "model.d_model=32",     "model.n_head=2",
                          "model.d_ff=64",     "model.max_seq_len=16", "model.vocab_size=257",
                          "model.dropout=0",   "train.batch_size=2",   "train.seq_len=16",
                          "train.max_steps=6", "train.warmup_steps=2", "train.lr=3e-3",
                          "train.log_every=1", "train.eval_every=0",   "train.eval_batches=1",
                          "train.threads=1",   "attn.softmax=clipped", "attn.gamma=-0.03",
                          "attn.gate=linear",  "dist.timeout_s=30",    "dist.bucket_mb=0.004"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        ck_assert_int_eq(qt_config_set(cfg, sets[i], "test"), QT_OK);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", data_dir);
}

static int read_losses(const char *run_dir, double *losses, int max_steps) {
    return qt_mpi_test_losses(run_dir, losses, NULL, NULL, max_steps);
}
#define read_memory_line qt_mpi_test_memory_line
#define json_size qt_mpi_test_json_size

// Trains cfg into dir on both ranks (comm) or, with single, on rank 0 alone (rank 1 waits).
static void train(verdict *v, const qt_config *cfg, const char *dir, int single, const char *resume,
                  int stop_at, step_check *sc) {
    qt_status st = QT_OK;
    if (!single || comm.rank == 0) {
        qt_train_opts o = {.comm = single ? NULL : &comm,
                           .out_dir = dir,
                           .resume_from = resume,
                           .stop_at_step = stop_at,
                           .quiet = 1};
        if (sc && !single) {
            sc->v = v;
            sc->comm = &comm;
            o.on_step = qt_mpi_test_on_step;
            o.on_step_user = sc;
        }
        st = qt_train(cfg, &o);
        if (st != QT_OK) fail_case(v, "training %s: %s", dir, qt_last_error());
    }
    ck_assert_msg(qt_comm_barrier(&comm, 300.0, "the test's barrier") == QT_OK, "%s",
                  qt_last_error());
}

static void shared_tmpdir(char *out, size_t cap, const char *tag) {
    qt_mpi_test_tmpdir(&comm, out, cap, tag);
}

static int read_tensor(const char *ckpt, const char *name, float *out, size_t n) {
    qt_ckpt *ck = NULL;
    if (qt_ckpt_read(ckpt, &ck) != QT_OK) return 0;
    int ok = qt_ckpt_get(ck, name, QT_CKPT_F32, n, out) == QT_OK;
    qt_ckpt_free(ck);
    return ok;
}

// Rank 0: the named checkpoint entries of two runs are bit-identical.
static void same_checkpoint(verdict *v, const char *dir_a, const char *dir_b, size_t n_params) {
    if (comm.rank != 0) return;
    const char *names[] = {"decoder.embed_tokens.weight", "decoder.layers.1.fc2.weight",
                           "optimizer.m", "optimizer.v"};
    size_t sizes[] = {257 * 32, 32 * 64, n_params, n_params};
    for (int k = 0; k < 4; k++) {
        float *a = malloc(sizes[k] * sizeof(float)), *b = malloc(sizes[k] * sizeof(float));
        char pa[1200], pb[1200];
        snprintf(pa, sizeof pa, "%s/ckpt.bin", dir_a);
        snprintf(pb, sizeof pb, "%s/ckpt.bin", dir_b);
        if (!read_tensor(pa, names[k], a, sizes[k]) || !read_tensor(pb, names[k], b, sizes[k]))
            fail_case(v, "cannot read %s from %s or %s: %s", names[k], pa, pb, qt_last_error());
        else if (memcmp(a, b, sizes[k] * sizeof(float)) != 0)
            fail_case(v, "checkpoint entry %s differs between %s and %s", names[k], dir_a, dir_b);
        free(a);
        free(b);
    }
}

// ---- cases -------------------------------------------------------------------------------

// The bound: both runs start from the same parameters and read the same 4 windows per step,
// so step 1's loss differs only in how it is averaged (two means of 32 tokens vs one of 64,
// each rounded to float: ~1e-7 relative). The gradients then differ only in the summation
// order of the 64 tokens' contributions (fp32 GEMM reductions over 32 vs 64 rows), a few ulps
// relative, and AdamW's normalized update carries that into the weights; over 6 steps at lr
// 3e-3 the losses stay within 1e-5 relative (measured: a few 1e-7; bound with 10-100x slack).
#define MATCH_RTOL 1e-5

START_TEST(test_two_ranks_match_one_rank_of_double_batch) {
    verdict v = {0};
    char dir[600], two[700], one[700];
    shared_tmpdir(dir, sizeof dir, "dp-match");
    snprintf(two, sizeof two, "%s/two", dir);
    snprintf(one, sizeof one, "%s/one", dir);
    qt_config cfg;
    tiny_config(&cfg);
    step_check sc = {0};
    train(&v, &cfg, two, 0, NULL, 0, &sc);
    if (sc.steps != STEPS) fail_case(&v, "the step observer saw %d steps, not %d", sc.steps, STEPS);
    qt_config big = cfg;
    big.batch_size = 2 * cfg.batch_size;
    train(&v, &big, one, 1, NULL, 0, NULL);
    if (comm.rank == 0) {
        double a[STEPS] = {0}, b[STEPS] = {0};
        if (read_losses(two, a, STEPS) != STEPS || read_losses(one, b, STEPS) != STEPS)
            fail_case(&v, "missing training lines in %s or %s", two, one);
        double worst = 0.0;
        for (int i = 0; i < STEPS; i++) {
            double rel = fabs(a[i] - b[i]) / fabs(b[i]);
            if (!(rel <= MATCH_RTOL))
                fail_case(&v,
                          "step %d: loss %.9g on 2 ranks x B=2 vs %.9g on 1 rank x B=4 "
                          "(relative %.3g > %.0e)",
                          i + 1, a[i], b[i], rel, MATCH_RTOL);
            if (rel > worst) worst = rel;
        }
        printf("test_dist_mpi: 2 ranks x 2 vs 1 rank x 4: largest relative loss difference over "
               "%d steps %.3g (bound %.0e); first loss %.9g vs %.9g\n",
               STEPS, worst, MATCH_RTOL, a[0], b[0]);
        qt_test_rmtree(dir);
    }
    agree(&v);
}
END_TEST

START_TEST(test_zero1_matches_replicated_optimizer) {
    verdict v = {0};
    char dir[600], off[700], on[700];
    shared_tmpdir(dir, sizeof dir, "dp-zero");
    snprintf(off, sizeof off, "%s/off", dir);
    snprintf(on, sizeof on, "%s/on", dir);
    qt_config cfg;
    tiny_config(&cfg);
    step_check s_off = {0}, s_on = {0};
    train(&v, &cfg, off, 0, NULL, 0, &s_off);
    cfg.dist_zero = 1;
    train(&v, &cfg, on, 0, NULL, 0, &s_on);
    // This rank's shard: [rank S, (rank + 1) S) with S = n / 2 rounded up to 16 elements.
    size_t n = s_on.n_params, S = (n / 2 + 15) / 16 * 16;
    size_t want_lo = comm.rank ? S : 0, want_hi = comm.rank ? n : S;
    if (s_off.sharded || s_off.opt_lo != 0 || s_off.opt_hi != n)
        fail_case(&v, "ZeRO off: the optimizer holds [%zu, %zu), not all %zu", s_off.opt_lo,
                  s_off.opt_hi, n);
    if (!s_on.sharded || s_on.opt_lo != want_lo || s_on.opt_hi != want_hi)
        fail_case(&v, "ZeRO-1: rank %d holds [%zu, %zu) of %zu, not [%zu, %zu)", comm.rank,
                  s_on.opt_lo, s_on.opt_hi, n, want_lo, want_hi);
    // Per rank: total / 2, plus at most the 15 elements that round the boundary to 16.
    size_t own = s_on.opt_hi - s_on.opt_lo;
    if (2 * own > n + 2 * 15)
        fail_case(&v, "ZeRO-1: rank %d holds %zu of %zu elements", comm.rank, own, n);
    if (comm.rank == 0) {
        double a[STEPS] = {0}, b[STEPS] = {0};
        if (read_losses(off, a, STEPS) != STEPS || read_losses(on, b, STEPS) != STEPS)
            fail_case(&v, "missing training lines in %s or %s", off, on);
        // Bit-identical: the same 2-rank sums (a + b in either order), the same elementwise
        // AdamW; only the norm's double sum is split at the shard boundary, and its rounding
        // reaches neither the clip factor's float nor the skip decision here.
        for (int i = 0; i < STEPS; i++)
            if (a[i] != b[i])
                fail_case(&v, "step %d: loss %.9g with ZeRO-1 off vs %.9g on", i + 1, a[i], b[i]);
        same_checkpoint(&v, off, on, n);
        char line[4096];
        read_memory_line(on, line, sizeof line);
        size_t state = json_size(line, "adam_state_bytes");
        size_t total = json_size(line, "adam_state_bytes_total");
        if (!strstr(line, "\"world_size\": 2") || !strstr(line, "\"zero\": 1") ||
            state != 2 * own * sizeof(float) || total != 2 * n * sizeof(float))
            fail_case(&v,
                      "memory line of the ZeRO-1 run: want world_size 2, zero 1, "
                      "adam_state_bytes %zu of adam_state_bytes_total %zu; got: %s",
                      2 * own * sizeof(float), 2 * n * sizeof(float), line);
        printf("test_dist_mpi: ZeRO-1: rank 0 holds %zu of %zu optimizer elements (%.4f of the "
               "total); losses and checkpoints bit-identical to ZeRO off\n",
               own, n, (double)own / (double)n);
        qt_test_rmtree(dir);
    }
    agree(&v);
}
END_TEST

// ---- buckets: issue order against the backward ------------------------------------------

// A CPU backend whose backward ops are recorded: the events of one backward, in order.
enum { EV_BWD = 100 };
typedef struct {
    int kind[4096];
    size_t arg[4096];
    int n;
} event_log;

static event_log *log_of_ops; // the backend wrappers below have no user pointer
static qt_backend_ops traced_ops;
static const qt_backend_ops *cpu_ops;

static void log_event(event_log *lg, int kind, size_t arg) {
    if (lg && lg->n < 4096) {
        lg->kind[lg->n] = kind;
        lg->arg[lg->n] = arg;
        lg->n++;
    }
}

static qt_status t_linear_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout,
                              const void *x, const void *w, int N, int IC, int OC) {
    log_event(log_of_ops, EV_BWD, 0);
    return cpu_ops->linear_bwd(ctx, dx, dw, db, dout, x, w, N, IC, OC);
}
static qt_status t_layernorm_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout,
                                 const void *x, const float *mean, const float *rstd, const void *w,
                                 int N, int C) {
    log_event(log_of_ops, EV_BWD, 1);
    return cpu_ops->layernorm_bwd(ctx, dx, dw, db, dout, x, mean, rstd, w, N, C);
}
static qt_status t_embedding_bwd(void *ctx, void *dwte, void *dwpe, const void *dout,
                                 const int *tokens, int B, int T, int C) {
    log_event(log_of_ops, EV_BWD, 2);
    return cpu_ops->embedding_bwd(ctx, dwte, dwpe, dout, tokens, B, T, C);
}

typedef struct {
    event_log log;
    const float *final_grads; // this rank's local gradients of the same backward, unsynced
    const float *grads;       // the arena being synced
    const qt_grad_sync *sync;
    verdict *v;
} sync_record;

static void on_sync_event(void *user, qt_sync_event ev, size_t arg) {
    sync_record *r = user;
    log_event(&r->log, (int)ev, arg);
    if (ev != QT_SYNC_EV_ISSUE) return;
    // Handed to MPI: every gradient in the bucket must already hold its final local value.
    const qt_grad_bucket *b = &r->sync->buckets[arg];
    if (memcmp(r->grads + b->begin, r->final_grads + b->begin,
               (b->end - b->begin) * sizeof(float)) != 0)
        fail_case(r->v, "bucket %zu [%zu, %zu) was issued before its gradients were final", arg,
                  b->begin, b->end);
}

START_TEST(test_buckets_overlap_the_backward) {
    verdict v = {0};
    qt_config cfg;
    tiny_config(&cfg);
    cfg.n_layer = 3;
    cfg.tie_embeddings = 0;
    qt_backend be;
    ck_assert(qt_backend_cpu_init(&be, 1) == QT_OK);
    cpu_ops = be.ops;
    traced_ops = *be.ops;
    traced_ops.linear_bwd = t_linear_bwd;
    traced_ops.layernorm_bwd = t_layernorm_bwd;
    traced_ops.embedding_bwd = t_embedding_bwd;
    be.ops = &traced_ops;
    qt_model m;
    ck_assert_msg(qt_model_init(&m, &cfg, &be, 2, 16) == QT_OK, "%s", qt_last_error());
    int in[32], tg[32];
    for (int i = 0; i < 32; i++) {
        in[i] = (7 * i + 3 * comm.rank) % 257;
        tg[i] = (11 * i + 5 * comm.rank + 1) % 257;
    }
    // This rank's local gradients, unsynced: what each bucket must hold when it is issued.
    float *final = malloc(m.n_params * sizeof(float));
    float loss;
    ck_assert(qt_model_zero_grad(&m) == QT_OK);
    ck_assert(qt_model_forward(&m, in, tg, 2, 16, &loss) == QT_OK);
    ck_assert(qt_model_backward(&m, 1.0f) == QT_OK);
    memcpy(final, m.grads, m.n_params * sizeof(float));

    sync_record *rec = calloc(1, sizeof *rec);
    qt_grad_sync s;
    // About 4 KiB buckets: many per block of this model.
    ck_assert_msg(qt_grad_sync_init(&s, &comm, &m, 4096, 0) == QT_OK, "%s", qt_last_error());
    rec->final_grads = final;
    rec->grads = m.grads;
    rec->sync = &s;
    rec->v = &v;
    s.trace = on_sync_event;
    s.trace_user = rec;
    log_of_ops = &rec->log;
    ck_assert(qt_model_zero_grad(&m) == QT_OK);
    ck_assert(qt_model_forward(&m, in, tg, 2, 16, &loss) == QT_OK);
    qt_grad_sync_arm(&s);
    qt_status st = qt_model_backward(&m, 1.0f);
    log_of_ops = NULL;
    if (st == QT_OK) st = qt_grad_sync_finish(&s);
    if (st != QT_OK) fail_case(&v, "backward with buckets: %s", qt_last_error());

    // The order: issues interleave with backward ops, in falling arena order, each once.
    event_log *lg = &rec->log;
    int last_bwd = -1, issues = 0, issues_before_last_bwd = 0, waits = 0;
    for (int i = 0; i < lg->n; i++)
        if (lg->kind[i] == EV_BWD) last_bwd = i;
    size_t prev_begin = (size_t)-1;
    for (int i = 0; i < lg->n; i++) {
        if (lg->kind[i] == QT_SYNC_EV_ISSUE) {
            const qt_grad_bucket *b = &s.buckets[lg->arg[i]];
            if ((int)lg->arg[i] != issues)
                fail_case(&v, "bucket %zu issued out of order", lg->arg[i]);
            if (b->begin >= prev_begin)
                fail_case(&v, "bucket %zu does not lie below the previous one", lg->arg[i]);
            prev_begin = b->begin;
            issues++;
            if (i < last_bwd) issues_before_last_bwd++;
        } else if (lg->kind[i] == QT_SYNC_EV_WAIT) {
            waits++;
            if (i < last_bwd) fail_case(&v, "a bucket was waited for before the backward ended");
        }
    }
    if (issues != s.n_buckets || waits != s.n_buckets)
        fail_case(&v, "%d buckets, %d issued, %d waited", s.n_buckets, issues, waits);
    // Only the embeddings' buckets (the arena's first elements, final last) wait for the end.
    if (issues_before_last_bwd < s.n_buckets / 2)
        fail_case(&v, "only %d of %d buckets were issued before the backward's last op",
                  issues_before_last_bwd, s.n_buckets);
    if (comm.rank == 0) {
        printf("test_dist_mpi: %d buckets of <= 4 KiB, %d issued while the backward ran:",
               s.n_buckets, issues_before_last_bwd);
        for (int i = 0; i < lg->n && i < 60; i++)
            printf(" %s", lg->kind[i] == EV_BWD             ? "B"
                          : lg->kind[i] == QT_SYNC_EV_ISSUE ? "I"
                          : lg->kind[i] == QT_SYNC_EV_WAIT  ? "W"
                                                            : "r");
        printf("%s\n", lg->n > 60 ? " ..." : "");
    }
    // The averaged gradients: (mine + the other's) / 2; check against a plain all-reduce.
    float *avg = malloc(m.n_params * sizeof(float));
    memcpy(avg, final, m.n_params * sizeof(float));
    ck_assert(qt_comm_allreduce(&comm, avg, m.n_params, QT_DTYPE_F32, QT_DIST_AVG, NULL) == QT_OK);
    if (memcmp(avg, m.grads, m.n_params * sizeof(float)) != 0)
        fail_case(&v, "the bucketed gradients differ from one all-reduce of the whole arena");
    free(avg);
    qt_grad_sync_free(&s);
    free(rec);
    free(final);
    qt_model_free(&m);
    be.ops = cpu_ops;
    qt_backend_free(&be);
    agree(&v);
}
END_TEST

START_TEST(test_bucket_size_does_not_change_training) {
    verdict v = {0};
    char dir[600], runs[3][700];
    shared_tmpdir(dir, sizeof dir, "dp-buckets");
    const char *sizes[3] = {"dist.bucket_mb=0", "dist.bucket_mb=0.001", "dist.bucket_mb=25"};
    double losses[3][STEPS] = {{0}};
    size_t n = 0;
    for (int k = 0; k < 3; k++) {
        qt_config cfg;
        tiny_config(&cfg);
        ck_assert(qt_config_set(&cfg, sizes[k], "test") == QT_OK);
        snprintf(runs[k], sizeof runs[k], "%s/run%d", dir, k);
        step_check sc = {0};
        train(&v, &cfg, runs[k], 0, NULL, 0, &sc);
        n = sc.n_params;
        if (comm.rank == 0 && read_losses(runs[k], losses[k], STEPS) != STEPS)
            fail_case(&v, "missing training lines in %s", runs[k]);
    }
    if (comm.rank == 0) {
        for (int k = 1; k < 3; k++) {
            for (int i = 0; i < STEPS; i++)
                if (losses[k][i] != losses[0][i])
                    fail_case(&v, "step %d: loss %.9g with %s vs %.9g with %s", i + 1, losses[k][i],
                              sizes[k], losses[0][i], sizes[0]);
            same_checkpoint(&v, runs[0], runs[k], n);
        }
        qt_test_rmtree(dir);
    }
    agree(&v);
}
END_TEST

START_TEST(test_resume_of_two_ranks_is_bit_exact) {
    verdict v = {0};
    char dir[600], full[700], part[700], ckpt[800], one[700];
    shared_tmpdir(dir, sizeof dir, "dp-resume");
    snprintf(full, sizeof full, "%s/full", dir);
    snprintf(part, sizeof part, "%s/part", dir);
    snprintf(one, sizeof one, "%s/one", dir);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.bin", part);
    qt_config cfg;
    tiny_config(&cfg);
    cfg.dist_zero = 1;
    step_check sc = {0};
    train(&v, &cfg, full, 0, NULL, 0, &sc);
    train(&v, &cfg, part, 0, NULL, 3, NULL);
    // A copy of the 3-step checkpoint for the 1-rank continuation below.
    char cmd[3000];
    if (comm.rank == 0) {
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/ckpt3.bin'", one, ckpt, one);
        if (system(cmd) != 0) fail_case(&v, "cannot copy %s", ckpt);
    }
    train(&v, &cfg, part, 0, ckpt, 0, NULL);
    // The same checkpoint on 1 rank with the same global batch (2 x 2 = 4 sequences): the
    // data position re-splits, and the run continues the same training.
    qt_config big = cfg;
    big.batch_size = 4;
    char ckpt3[800];
    snprintf(ckpt3, sizeof ckpt3, "%s/ckpt3.bin", one);
    train(&v, &big, one, 1, ckpt3, 0, NULL);
    if (comm.rank == 0) {
        double a[STEPS] = {0}, b[STEPS] = {0}, c[STEPS] = {0};
        if (read_losses(full, a, STEPS) != STEPS || read_losses(part, b, STEPS) != STEPS)
            fail_case(&v, "missing training lines in %s or %s", full, part);
        for (int i = 0; i < STEPS; i++)
            if (a[i] != b[i])
                fail_case(&v, "step %d: loss %.9g uninterrupted vs %.9g resumed (2 ranks, ZeRO-1)",
                          i + 1, a[i], b[i]);
        same_checkpoint(&v, full, part, sc.n_params);
        if (read_losses(one, c, STEPS) != STEPS - 3)
            fail_case(&v, "the 1-rank continuation logged no steps 4..%d", STEPS);
        for (int i = 3; i < STEPS; i++)
            if (!(fabs(c[i] - a[i]) <= MATCH_RTOL * fabs(a[i])))
                fail_case(&v, "step %d: loss %.9g resumed on 1 rank x 4 vs %.9g on 2 ranks x 2",
                          i + 1, c[i], a[i]);
        qt_test_rmtree(dir);
    }
    agree(&v);
}
END_TEST

int main(void) {
    if (qt_comm_mpi_init(&comm, 60.0) != QT_OK) {
        fprintf(stderr, "test_dist_mpi: %s\n", qt_last_error());
        return 1;
    }
    if (comm.size != 2) {
        fprintf(stderr, "test_dist_mpi: run under mpirun -np 2 (world size is %d)\n", comm.size);
        qt_comm_free(&comm);
        return 1;
    }
    Suite *s = suite_create("dist_mpi");
    TCase *tc = tcase_create("two_ranks");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_two_ranks_match_one_rank_of_double_batch);
    tcase_add_test(tc, test_zero1_matches_replicated_optimizer);
    tcase_add_test(tc, test_buckets_overlap_the_backward);
    tcase_add_test(tc, test_bucket_size_does_not_change_training);
    tcase_add_test(tc, test_resume_of_two_ranks_is_bit_exact);
    suite_add_tcase(s, tc);
    SRunner *runner = srunner_create(s);
    srunner_set_fork_status(runner, CK_NOFORK);
    srunner_run_all(runner, comm.rank == 0 ? CK_NORMAL : CK_SILENT);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    // Both ranks report the same count (each case ends in a shared verdict).
    if (comm.rank == 0 && data_dir[0]) qt_test_rmtree(data_dir);
    qt_comm_free(&comm);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

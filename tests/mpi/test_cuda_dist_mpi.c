// test_cuda_dist_mpi.c: data-parallel training on the CUDA backend, in the emulated build,
// run by CTest under mpirun -np 2 and -np 3 (labels mpi, emu). Each rank is a process with its
// own emulated device; the NCCL communicator (host/dist/comm_nccl.c, emulated) issues every
// collective on its communication stream after an event of the backend's stream and reduces
// on the CPU through MPI. Checked, for N = 2 and 3 ranks:
// - fp32: N ranks with micro-batch B train like 1 rank with N x B (losses within the bound of
//   tests/mpi/test_dist_mpi.c), the parameters bit-identical on every rank after every step;
//   ZeRO-1 on gives the same losses as off, each rank holding 1/N of the optimizer state;
// - fp16 (fp32 masters, ZeRO-1, loss scaling): an inf injected into one gradient of the last
//   rank only, at step 3, makes every rank skip that step (parameters unchanged, the
//   optimizer's step count not advanced) and halve the loss scale, and training goes on with
//   the parameters still identical on every rank.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_testutil.h"
#include "qtrain/backend.h"
#include "qtrain/dist.h"
#include "qtrain/trainer.h"
#include "testutil.h"

#define STEPS 5
// As in tests/mpi/test_dist_mpi.c: the same windows and parameters; only the order of the
// float sums over tokens (and over ranks) differs.
#define MATCH_RTOL 1e-5

static qt_comm mpi; // MPI_COMM_WORLD: the bootstrap and the emulated transport
static char data_dir[512];

static void tiny_config(qt_config *cfg, const char *precision) {
    qt_mpi_test_data(&mpi, data_dir, sizeof data_dir);
    qt_config_defaults(cfg);
    const char *sets[] = {
        "model.n_layer=2",     "model.d_model=32",          "model.n_head=2",
        "model.d_ff=64",       "model.max_seq_len=16",      "model.vocab_size=257",
        "model.dropout=0",     "train.batch_size=2",        "train.seq_len=16",
        "train.max_steps=5",   "train.warmup_steps=1",      "train.lr=3e-3",
        "train.log_every=1",   "train.eval_every=0",        "train.eval_batches=1",
        "train.threads=1",     "attn.gate=linear",          "dist.timeout_s=60",
        "dist.bucket_mb=0.01", "train.loss_scale_init=1024"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        ck_assert_int_eq(qt_config_set(cfg, sets[i], "test"), QT_OK);
    char p[64];
    snprintf(p, sizeof p, "train.precision=%s", precision);
    ck_assert_int_eq(qt_config_set(cfg, p, "test"), QT_OK);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", data_dir);
}

// ---- the injection: an inf in one gradient of this rank's n-th backward ---------------------

static qt_backend_ops poisoned_ops;
static const qt_backend_ops *cuda_ops;
static int poison_at, embedding_calls;

static qt_status poison_if_due(void *ctx, void *dwte) {
    if (++embedding_calls == poison_at) {
        const float inf = INFINITY;
        QT_TRY(cuda_ops->to_device_f32(ctx, dwte, &inf, 1)); // dwte[0] = inf, in fp16
    }
    return QT_OK;
}

static qt_status poisoned_embedding_bwd(void *ctx, void *dwte, void *dwpe, const void *dout,
                                        const int *tokens, int B, int T, int C) {
    QT_TRY(cuda_ops->embedding_bwd(ctx, dwte, dwpe, dout, tokens, B, T, C));
    return poison_if_due(ctx, dwte);
}

// The model runs this one where the backend has it (the CUDA backend does): the injection
// must follow, or no step overflows and the test checks nothing.
static qt_status poisoned_embedding_bwd_sorted(void *ctx, void *dwte, void *dwpe,
                                               const void *dout, const int *order,
                                               const int *start, const int *token,
                                               int n_buckets, int B, int T, int C) {
    QT_TRY(cuda_ops->embedding_bwd_sorted(ctx, dwte, dwpe, dout, order, start, token, n_buckets,
                                          B, T, C));
    return poison_if_due(ctx, dwte);
}

// Trains cfg into dir on every rank (or, single, on rank 0 alone while the others wait) on the
// emulated CUDA backend; poison > 0 injects the inf into the last rank's poison-th backward.
static void train(qt_verdict *v, const qt_config *cfg, const char *dir, int single, int poison,
                  qt_step_check *sc) {
    qt_status st = QT_OK;
    if (!single || mpi.rank == 0) {
        qt_backend be;
        qt_dtype dt = qt_config_precision_dtype(cfg->precision, QT_DTYPE_F16);
        st = qt_backend_cuda_init(&be, 0, dt);
        if (st == QT_OK && poison && mpi.rank == mpi.size - 1) {
            cuda_ops = be.ops;
            poisoned_ops = *be.ops;
            poisoned_ops.embedding_bwd = poisoned_embedding_bwd;
            if (be.ops->embedding_bwd_sorted)
                poisoned_ops.embedding_bwd_sorted = poisoned_embedding_bwd_sorted;
            be.ops = &poisoned_ops;
            poison_at = poison;
            embedding_calls = 0;
        }
        qt_comm nccl;
        int have_nccl = 0;
        if (st == QT_OK && !single) {
            qt_dist_launch l = {.kind = QT_LAUNCH_MPI,
                                .rank = mpi.rank,
                                .size = mpi.size,
                                .local_rank = 0,
                                .local_size = 1,
                                .has_pmi = 1};
            st = qt_comm_nccl_init(&nccl, &be, &l, &mpi, cfg->dist_timeout_s);
            have_nccl = st == QT_OK;
        }
        // No rank starts training unless every rank could set up.
        if (!single) st = qt_comm_agree(&mpi, st, 600.0, "to open the backend");
        if (st == QT_OK) {
            qt_train_opts o = {
                .backend = &be, .comm = single ? NULL : &nccl, .out_dir = dir, .quiet = 1};
            if (sc && !single) {
                sc->v = v;
                sc->comm = &nccl;
                o.on_step = qt_mpi_test_on_step;
                o.on_step_user = sc;
            }
            st = qt_train(cfg, &o);
        }
        if (st != QT_OK) {
            // Said at once too: a rank that fails may leave the others waiting.
            fprintf(stderr, "test_cuda_dist_mpi: rank %d: training %s: %s\n", mpi.rank, dir,
                    qt_last_error());
            qt_verdict_fail(v, "training %s: %s", dir, qt_last_error());
        }
        if (have_nccl) qt_comm_free(&nccl);
        if (be.ops == &poisoned_ops) be.ops = cuda_ops;
        if (be.ops) qt_backend_free(&be);
    }
    ck_assert_msg(qt_comm_barrier(&mpi, 600.0, "the test's barrier") == QT_OK, "%s",
                  qt_last_error());
}

START_TEST(test_fp32_ranks_match_one_rank) {
    qt_verdict v = {0};
    char dir[600], dp[700], one[700], zero[700];
    qt_mpi_test_tmpdir(&mpi, dir, sizeof dir, "cuda-dp");
    snprintf(dp, sizeof dp, "%s/dp", dir);
    snprintf(one, sizeof one, "%s/one", dir);
    snprintf(zero, sizeof zero, "%s/zero", dir);
    qt_config cfg;
    tiny_config(&cfg, "fp32");
    qt_step_check sc = {0}, sz = {0};
    train(&v, &cfg, dp, 0, 0, &sc);
    if (sc.steps != STEPS) qt_verdict_fail(&v, "%d steps observed, not %d", sc.steps, STEPS);
    qt_config big = cfg;
    big.batch_size = cfg.batch_size * mpi.size;
    train(&v, &big, one, 1, 0, NULL);
    qt_config z = cfg;
    z.dist_zero = 1;
    train(&v, &z, zero, 0, 0, &sz);
    // ZeRO-1: this rank's shard of the optimizer state is 1/N of it (+ 16-element rounding).
    size_t n = sz.n_params, own = sz.opt_hi - sz.opt_lo;
    if (!sz.sharded || (double)own > (double)n / mpi.size + 16.0)
        qt_verdict_fail(&v, "ZeRO-1: rank %d holds %zu of %zu optimizer elements", mpi.rank, own,
                        n);
    if (mpi.rank == 0) {
        double a[STEPS] = {0}, b[STEPS] = {0}, c[STEPS] = {0};
        if (qt_mpi_test_losses(dp, a, NULL, NULL, STEPS) != STEPS ||
            qt_mpi_test_losses(one, b, NULL, NULL, STEPS) != STEPS ||
            qt_mpi_test_losses(zero, c, NULL, NULL, STEPS) != STEPS)
            qt_verdict_fail(&v, "missing training lines under %s", dir);
        double worst = 0.0, worst_zero = 0.0;
        for (int i = 0; i < STEPS; i++) {
            double rel = fabs(a[i] - b[i]) / fabs(b[i]), rz = fabs(c[i] - a[i]) / fabs(a[i]);
            if (!(rel <= MATCH_RTOL))
                qt_verdict_fail(&v, "step %d: loss %.9g on %d ranks x 2 vs %.9g on 1 rank x %d",
                                i + 1, a[i], mpi.size, b[i], 2 * mpi.size);
            if (!(rz <= MATCH_RTOL))
                qt_verdict_fail(&v, "step %d: loss %.9g with ZeRO-1 vs %.9g without", i + 1, c[i],
                                a[i]);
            worst = rel > worst ? rel : worst;
            worst_zero = rz > worst_zero ? rz : worst_zero;
        }
        printf("test_cuda_dist_mpi: emulated CUDA fp32, %d ranks x 2 vs 1 rank x %d: largest "
               "relative loss difference %.3g; ZeRO-1 vs off %.3g (bound %.0e); rank 0 holds "
               "%zu of %zu optimizer elements\n",
               mpi.size, 2 * mpi.size, worst, worst_zero, MATCH_RTOL, own, n);
        qt_test_rmtree(dir);
    }
    qt_verdict_agree(&mpi, &v);
}
END_TEST

START_TEST(test_fp16_overflow_on_one_rank_skips_everywhere) {
    qt_verdict v = {0};
    char dir[600], run[700];
    qt_mpi_test_tmpdir(&mpi, dir, sizeof dir, "cuda-dp16");
    snprintf(run, sizeof run, "%s/run", dir);
    qt_config cfg;
    tiny_config(&cfg, "fp16");
    cfg.dist_zero = 1; // the fp32 masters are sharded too
    qt_step_check sc = {0};
    const int bad = 3;
    train(&v, &cfg, run, 0, bad, &sc);
    if (sc.steps != STEPS) qt_verdict_fail(&v, "%d steps observed, not %d", sc.steps, STEPS);
    // On every rank: the optimizer did not count step 3, and it left the parameters as step 2
    // did; the steps around it moved them.
    for (int i = 0; i < STEPS; i++) {
        int want = i + 1 < bad ? i + 1 : i;
        if (sc.opt_step[i] != want)
            qt_verdict_fail(&v, "rank %d: after step %d the optimizer counts %d steps, not %d",
                            mpi.rank, i + 1, sc.opt_step[i], want);
    }
    if (sc.hash[bad - 1] != sc.hash[bad - 2])
        qt_verdict_fail(&v, "rank %d: the skipped step %d changed the parameters", mpi.rank, bad);
    if (sc.hash[bad] == sc.hash[bad - 1] || sc.hash[1] == sc.hash[0])
        qt_verdict_fail(&v, "rank %d: a step after or before the skip left the parameters",
                        mpi.rank);
    if (mpi.rank == 0) {
        double loss[STEPS], scale[STEPS], skipped[STEPS];
        if (qt_mpi_test_losses(run, loss, scale, skipped, STEPS) != STEPS)
            qt_verdict_fail(&v, "missing training lines in %s", run);
        // The line of step s shows the scale that step used and the skips so far.
        for (int i = 0; i < STEPS; i++) {
            double want_scale = i + 1 <= bad ? 1024.0 : 512.0;
            double want_skips = i + 1 < bad ? 0.0 : 1.0;
            if (scale[i] != want_scale || skipped[i] != want_skips)
                qt_verdict_fail(&v, "step %d: loss_scale %g and skipped_steps %g, want %g and %g",
                                i + 1, scale[i], skipped[i], want_scale, want_skips);
        }
        if (!v.failed) // the line says what was checked, so only when it held on this rank
            printf("test_cuda_dist_mpi: emulated CUDA fp16, %d ranks, ZeRO-1: an inf on rank %d "
                   "at step %d: every rank skipped it, scale 1024 -> 512, losses %.4f %.4f "
                   "[%.4f] %.4f %.4f\n",
                   mpi.size, mpi.size - 1, bad, loss[0], loss[1], loss[2], loss[3], loss[4]);
        qt_test_rmtree(dir);
    }
    qt_verdict_agree(&mpi, &v);
}
END_TEST

int main(void) {
    if (qt_comm_mpi_init(&mpi, 120.0) != QT_OK) {
        fprintf(stderr, "test_cuda_dist_mpi: %s\n", qt_last_error());
        return 1;
    }
    if (mpi.size < 2) {
        fprintf(stderr, "test_cuda_dist_mpi: run under mpirun -np 2 or more\n");
        qt_comm_free(&mpi);
        return 1;
    }
    Suite *s = suite_create("cuda_dist_mpi");
    TCase *tc = tcase_create("ranks");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_fp32_ranks_match_one_rank);
    tcase_add_test(tc, test_fp16_overflow_on_one_rank_skips_everywhere);
    suite_add_tcase(s, tc);
    SRunner *runner = srunner_create(s);
    srunner_set_fork_status(runner, CK_NOFORK);
    srunner_run_all(runner, mpi.rank == 0 ? CK_NORMAL : CK_SILENT);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    if (mpi.rank == 0 && data_dir[0]) qt_test_rmtree(data_dir);
    qt_comm_free(&mpi);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

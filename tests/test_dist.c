// test_dist.c: data-parallel training's single-process parts (qtrain/dist.h), without MPI:
// launch detection for each launcher and its errors, the world-of-one communicator, the
// fp16/bf16 conversions of the host reductions, the shard ranges, the gradient buckets' plan,
// the model's gradient frontier (qt_model.grads_ready: what the buckets rely on), the
// rendezvous of the NCCL id without MPI (a file, TCP; ranks as forked processes), the sharded
// optimizer against the whole one, and the data split across ranks. The collectives
// themselves run under mpirun in tests/mpi/test_dist_mpi.c.
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist/dist_internal.h"
#include "qtrain/data.h"
#include "qtrain/dist.h"
#include "qtrain/model.h"
#include "qtrain/optimizer.h"
#include "testutil.h"
#include "train/data_parallel.h"

// ---- launch detection ----------------------------------------------------------------------

static const char *const *fake_env; // NULL-terminated name, value pairs
static const char *fake_get(const char *name) {
    for (int i = 0; fake_env[i]; i += 2)
        if (strcmp(fake_env[i], name) == 0) return fake_env[i + 1];
    return NULL;
}

static qt_status detect(qt_dist_launch *l, const char *const *env) {
    fake_env = env;
    return qt_dist_launch_detect(l, fake_get);
}

START_TEST(test_launch_detection) {
    qt_dist_launch l;
    const char *none[] = {"HOME", "/root", NULL};
    ck_assert_int_eq(detect(&l, none), QT_OK);
    ck_assert_int_eq(l.kind, QT_LAUNCH_NONE);
    ck_assert(l.rank == 0 && l.size == 1 && l.local_rank == 0);

    const char *ompi[] = {"OMPI_COMM_WORLD_RANK",
                          "3",
                          "OMPI_COMM_WORLD_SIZE",
                          "4",
                          "OMPI_COMM_WORLD_LOCAL_RANK",
                          "1",
                          "OMPI_COMM_WORLD_LOCAL_SIZE",
                          "2",
                          NULL};
    ck_assert_int_eq(detect(&l, ompi), QT_OK);
    ck_assert_int_eq(l.kind, QT_LAUNCH_MPI);
    ck_assert(l.rank == 3 && l.size == 4 && l.local_rank == 1 && l.local_size == 2 && l.has_pmi);

    // srun: the step's task count; with PMIx an MPI process manager is there.
    const char *srun[] = {"SLURM_PROCID",
                          "5",
                          "SLURM_STEP_NUM_TASKS",
                          "8",
                          "SLURM_LOCALID",
                          "1",
                          "SLURM_STEP_TASKS_PER_NODE",
                          "4(x2)",
                          "SLURM_JOB_ID",
                          "77",
                          "SLURM_STEP_ID",
                          "0",
                          "SLURM_NTASKS",
                          "8",
                          "PMIX_RANK",
                          "5",
                          NULL};
    ck_assert_int_eq(detect(&l, srun), QT_OK);
    ck_assert_int_eq(l.kind, QT_LAUNCH_SLURM);
    ck_assert(l.rank == 5 && l.size == 8 && l.local_rank == 1 && l.local_size == 4 && l.has_pmi);
    ck_assert_str_eq(l.job_tag, "slurm-77.0");
    // The batch script itself (no srun): one process, even though Slurm set SLURM_NTASKS.
    const char *batch[] = {"SLURM_PROCID", "0", "SLURM_NTASKS", "8", "SLURM_JOB_ID", "77", NULL};
    ck_assert_int_eq(detect(&l, batch), QT_OK);
    ck_assert_int_eq(l.kind, QT_LAUNCH_NONE);
    ck_assert_int_eq(l.size, 1);

    const char *torch[] = {"RANK",
                           "2",
                           "WORLD_SIZE",
                           "4",
                           "LOCAL_RANK",
                           "0",
                           "LOCAL_WORLD_SIZE",
                           "2",
                           "MASTER_ADDR",
                           "node7",
                           "MASTER_PORT",
                           "29500",
                           "QT_RDZV_FILE",
                           "/shared/rdzv",
                           "QT_RDZV_TAG",
                           "run-9",
                           NULL};
    ck_assert_int_eq(detect(&l, torch), QT_OK);
    ck_assert_int_eq(l.kind, QT_LAUNCH_TORCHRUN);
    ck_assert(l.rank == 2 && l.size == 4 && l.local_rank == 0 && l.local_size == 2 && !l.has_pmi);
    ck_assert_str_eq(l.master_addr, "node7");
    ck_assert_int_eq(l.master_port, 29500);
    ck_assert_int_eq(l.rdzv_port, 29500);
    ck_assert_str_eq(l.rdzv_file, "/shared/rdzv");
    ck_assert_str_eq(l.job_tag, "run-9");
    char desc[256];
    qt_dist_launch_describe(&l, desc, sizeof desc);
    ck_assert_msg(strstr(desc, "rank 2 of 4") != NULL, "%s", desc);

    // Errors name the variable and its value.
    struct {
        const char *env[9];
        const char *needle;
    } bad[] = {
        {{"RANK", "3", "WORLD_SIZE", "2", NULL}, "RANK=3"},
        {{"RANK", "0", "WORLD_SIZE", "two", NULL}, "WORLD_SIZE=two"},
        {{"RANK", "1", NULL}, "WORLD_SIZE is not"},
        {{"WORLD_SIZE", "2", "RANK", "0", "MASTER_PORT", "70000", NULL}, "MASTER_PORT=70000"},
        {{"OMPI_COMM_WORLD_RANK", "-1", "OMPI_COMM_WORLD_SIZE", "2", NULL}, "OMPI_COMM_WORLD_RANK"},
        {{"SLURM_PROCID", "9", "SLURM_STEP_NUM_TASKS", "4", NULL}, "SLURM_PROCID=9"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(detect(&l, bad[i].env), QT_ERR_ARG);
        ck_assert_msg(strstr(qt_last_error(), bad[i].needle) != NULL, "case %zu: %s", i,
                      qt_last_error());
    }
}
END_TEST

// ---- rendezvous without MPI -------------------------------------------------------------------

// A port that was free a moment ago (bound to port 0, then released).
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    ck_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

// Ranks 1..size-1 as child processes (each exits 0 when it received rank 0's blob) while this
// process is rank 0; way 0: the file, 1: TCP. Returns how many children failed.
static int rendezvous_ranks(int way, const char *where, int port, int size, int start_late) {
    unsigned char blob[128];
    for (int i = 0; i < 128; i++)
        blob[i] = (unsigned char)(i * 37 + 11);
    pid_t kids[8];
    for (int r = 1; r < size; r++) {
        kids[r] = fork();
        ck_assert(kids[r] >= 0);
        if (kids[r] == 0) {
            unsigned char got[128] = {0};
            qt_status st = way == 0
                               ? qt_rdzv_file(where, "job-7", r, size, got, 128, 20.0)
                               : qt_rdzv_tcp("127.0.0.1", port, "job-7", r, size, got, 128, 20.0);
            _exit(st == QT_OK && memcmp(got, blob, 128) == 0 ? 0 : 1);
        }
    }
    if (start_late) sleep(1); // the others are already waiting (polling, or retrying connect)
    qt_status st = way == 0 ? qt_rdzv_file(where, "job-7", 0, size, blob, 128, 20.0)
                            : qt_rdzv_tcp(NULL, port, "job-7", 0, size, blob, 128, 20.0);
    ck_assert_msg(st == QT_OK, "rank 0: %s", qt_last_error());
    int failed = 0;
    for (int r = 1; r < size; r++) {
        int status = 0;
        ck_assert(waitpid(kids[r], &status, 0) == kids[r]);
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    return failed;
}

START_TEST(test_rendezvous_without_mpi) {
    char *dir = qt_test_tmpdir("rdzv");
    char path[600];
    snprintf(path, sizeof path, "%s/nccl-id", dir);
    // A file an earlier job left (another tag) is never read as this job's.
    unsigned char stale[128] = {0};
    ck_assert(qt_rdzv_file(path, "job-6", 0, 3, stale, 128, 1.0) == QT_OK);
    ck_assert_int_eq(rendezvous_ranks(0, path, 0, 3, 1), 0);
    ck_assert_int_eq(rendezvous_ranks(1, NULL, free_port(), 4, 1), 0);
    // Without rank 0, a rank gives up after its timeout, naming what it waited for.
    remove(path);
    unsigned char got[128];
    ck_assert_int_eq(qt_rdzv_file(path, "job-8", 1, 2, got, 128, 0.3), QT_ERR_COMM);
    ck_assert_msg(strstr(qt_last_error(), path) != NULL, "%s", qt_last_error());
    ck_assert_int_eq(qt_rdzv_tcp("127.0.0.1", free_port(), "job-8", 1, 2, got, 128, 0.3),
                     QT_ERR_COMM);
    ck_assert_msg(strstr(qt_last_error(), "127.0.0.1") != NULL, "%s", qt_last_error());
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

// ---- the world of one ----------------------------------------------------------------------

START_TEST(test_single_communicator_is_the_identity) {
    qt_comm c;
    ck_assert_int_eq(qt_comm_single_init(&c), QT_OK);
    ck_assert(c.rank == 0 && c.size == 1);
    float x[5] = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f}, y[5];
    memcpy(y, x, sizeof x);
    qt_dist_req req = 123;
    ck_assert_int_eq(qt_comm_allreduce(&c, y, 5, QT_DTYPE_F32, QT_DIST_AVG, &req), QT_OK);
    ck_assert_int_eq(req, -1);
    ck_assert_int_eq(qt_comm_wait(&c, req, "test"), QT_OK);
    size_t counts[1] = {5};
    ck_assert_int_eq(qt_comm_reduce_scatter(&c, y, counts, QT_DTYPE_F32, QT_DIST_SUM, NULL), QT_OK);
    ck_assert_int_eq(qt_comm_allgather(&c, y, counts, QT_DTYPE_F32, NULL), QT_OK);
    double d[2] = {2.5, -1.0};
    ck_assert_int_eq(qt_comm_allreduce_host(&c, d, 2, QT_DIST_SUM), QT_OK);
    ck_assert(memcmp(x, y, sizeof x) == 0 && d[0] == 2.5 && d[1] == -1.0);
    ck_assert_int_eq(c.n_collectives, 0); // a world of one runs no collective
    // agree passes the local status through.
    ck_assert_int_eq(qt_comm_agree(&c, QT_OK, 1.0, "test"), QT_OK);
    qt_error(QT_ERR_IO, "disk full");
    ck_assert_int_eq(qt_comm_agree(&c, QT_ERR_IO, 1.0, "test"), QT_ERR_IO);
    // Arguments are checked before the world-of-one shortcut.
    ck_assert_int_eq(qt_comm_allreduce(&c, NULL, 3, QT_DTYPE_F32, QT_DIST_SUM, NULL), QT_ERR_ARG);
    ck_assert_int_eq(qt_comm_allreduce(&c, y, 3, (qt_dtype)7, QT_DIST_SUM, NULL), QT_ERR_ARG);
    ck_assert_int_eq(qt_comm_reduce_scatter(&c, y, counts, QT_DTYPE_F32, QT_DIST_MAX, NULL),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_comm_broadcast(&c, y, 4, 1, 1), QT_ERR_ARG);
    ck_assert_int_eq(qt_comm_allreduce(NULL, y, 3, QT_DTYPE_F32, QT_DIST_SUM, NULL), QT_ERR_ARG);
    qt_comm_free(&c);
}
END_TEST

// ---- fp16 / bf16 -----------------------------------------------------------------------------

START_TEST(test_half_conversions) {
    struct {
        uint16_t h;
        float f;
    } f16[] = {{0x3c00, 1.0f},
               {0xc000, -2.0f},
               {0x7bff, 65504.0f},
               {0x0400, 6.103515625e-05f},
               {0x0001, 5.9604644775390625e-08f},
               {0x0000, 0.0f},
               {0x8000, -0.0f},
               {0x7c00, INFINITY},
               {0x3555, 0.333251953125f}};
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++) {
        ck_assert_msg(qt_dist_f16_to_f32(f16[i].h) == f16[i].f, "f16 %04x", f16[i].h);
        ck_assert_msg(qt_dist_f32_to_f16(f16[i].f) == f16[i].h, "f32 %g", (double)f16[i].f);
    }
    // Every finite half survives the round trip; nan stays nan.
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qt_dist_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            ck_assert(isnan(qt_dist_f16_to_f32(qt_dist_f32_to_f16(f))));
            continue;
        }
        ck_assert_msg(qt_dist_f32_to_f16(f) == h, "half %04x -> %g -> %04x", h, (double)f,
                      qt_dist_f32_to_f16(f));
    }
    // Round to nearest even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
    ck_assert_uint_eq(qt_dist_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    ck_assert_uint_eq(qt_dist_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    ck_assert_uint_eq(qt_dist_f32_to_f16(65520.0f), 0x7c00); // past the largest half: inf
    ck_assert_uint_eq(qt_dist_f32_to_f16(0x1p-25f), 0x0000); // half of the smallest: to even
    ck_assert_uint_eq(qt_dist_f32_to_f16(0x1.8p-25f), 0x0001);
    // bf16: the top half of the float, rounded to nearest even.
    ck_assert_uint_eq(qt_dist_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(qt_dist_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80); // tie: even
    ck_assert_uint_eq(qt_dist_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    ck_assert(qt_dist_bf16_to_f32(0xc0a0) == -5.0f);
    ck_assert(isnan(qt_dist_bf16_to_f32(qt_dist_f32_to_bf16(NAN))));
    // Reductions: fp16 sums in fp32 and rounds once; AVG is the scaled SUM.
    uint16_t a[2] = {qt_dist_f32_to_f16(1.0f), qt_dist_f32_to_f16(2048.0f)};
    uint16_t b[2] = {qt_dist_f32_to_f16(0.5f), qt_dist_f32_to_f16(1.0f)};
    qt_dist_reduce_into(a, b, 2, QT_DTYPE_F16, QT_DIST_SUM);
    ck_assert(qt_dist_f16_to_f32(a[0]) == 1.5f);
    ck_assert(qt_dist_f16_to_f32(a[1]) == 2048.0f); // 2049 is not a half: ties to even
    qt_dist_scale(a, 2, QT_DTYPE_F16, 0.5f);
    ck_assert(qt_dist_f16_to_f32(a[0]) == 0.75f);
    float m[3] = {1.0f, -4.0f, 2.0f}, n[3] = {3.0f, -5.0f, NAN};
    qt_dist_reduce_into(m, n, 3, QT_DTYPE_F32, QT_DIST_MAX);
    ck_assert(m[0] == 3.0f && m[1] == -4.0f && isnan(m[2])); // an inf/nan is never lost
}
END_TEST

// ---- shards and buckets ----------------------------------------------------------------------

START_TEST(test_shard_ranges_tile_the_arena) {
    size_t ns[] = {16, 160, 25984, 1000000, 48};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        for (int N = 1; N <= 7; N++) {
            size_t prev = 0;
            for (int r = 0; r < N; r++) {
                size_t lo, hi;
                qt_dist_shard_range(ns[k], N, r, &lo, &hi);
                ck_assert_msg(lo == prev && hi >= lo && hi <= ns[k], "n %zu N %d r %d", ns[k], N,
                              r);
                ck_assert_msg(lo % 16 == 0 || lo == ns[k], "shard start %zu not 16-aligned", lo);
                // At most ceil(n / N) rounded up to 16.
                ck_assert(hi - lo <= (ns[k] / N + 16) / 16 * 16 + 16);
                prev = hi;
            }
            ck_assert_uint_eq(prev, ns[k]);
        }
    }
}
END_TEST

static void small_config(qt_config *cfg, const char *const *sets) {
    qt_config_defaults(cfg);
    const char *base[] = {"model.n_layer=3", "model.d_model=32",     "model.n_head=2",
                          "model.d_ff=64",   "model.max_seq_len=16", "model.vocab_size=257",
                          "train.threads=1", "train.seq_len=16",     NULL};
    for (int i = 0; base[i]; i++)
        ck_assert_int_eq(qt_config_set(cfg, base[i], "test"), QT_OK);
    for (int i = 0; sets && sets[i]; i++)
        ck_assert_msg(qt_config_set(cfg, sets[i], "test") == QT_OK, "%s", qt_last_error());
}

START_TEST(test_bucket_plan) {
    qt_config cfg;
    small_config(&cfg, NULL);
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 1), QT_OK);
    qt_model m;
    ck_assert_msg(qt_model_init(&m, &cfg, &be, 2, 16) == QT_OK, "%s", qt_last_error());
    qt_comm c;
    qt_comm_single_init(&c);
    size_t caps[] = {0, 64, 4096, 100000, (size_t)1 << 30};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        qt_grad_sync s;
        ck_assert_int_eq(qt_grad_sync_init(&s, &c, &m, caps[k], 1), QT_OK);
        ck_assert_int_eq(s.zero, 0); // ZeRO needs more than one rank
        ck_assert(s.lo == 0 && s.hi == m.n_params);
        // Contiguous from the end down to 0, each at most the cap (16-element units), aligned.
        size_t end = m.n_params, cap_el = caps[k] / sizeof(float);
        for (int b = 0; b < s.n_buckets; b++) {
            ck_assert_uint_eq(s.buckets[b].end, end);
            ck_assert(s.buckets[b].begin < s.buckets[b].end && s.buckets[b].begin % 16 == 0);
            if (caps[k] && cap_el >= 16) ck_assert(s.buckets[b].end - s.buckets[b].begin <= cap_el);
            end = s.buckets[b].begin;
        }
        ck_assert_uint_eq(end, 0);
        if (caps[k] == 0) ck_assert_int_eq(s.n_buckets, 1);
        qt_grad_sync_free(&s);
    }
    qt_comm_free(&c);
    qt_model_free(&m);
    qt_backend_free(&be);
}
END_TEST

// The frontier the backward reports: falling to 0, and every gradient at or above it final.
typedef struct {
    qt_model *m;
    size_t offsets[64];
    float *snap[64]; // grads[offset, n) at the call
    int n;
} frontier_log;

static qt_status record_frontier(void *user, size_t offset) {
    frontier_log *f = user;
    ck_assert(f->n < 64);
    size_t len = f->m->n_params - offset;
    f->snap[f->n] = malloc((len ? len : 1) * sizeof(float));
    memcpy(f->snap[f->n], (float *)f->m->grads + offset, len * sizeof(float));
    f->offsets[f->n++] = offset;
    return QT_OK;
}

START_TEST(test_grads_ready_frontier) {
    const char *const variants[][8] = {
        {NULL},
        {"model.tie_embeddings=0", "attn.gate=mlp", NULL},
        {"model.arch=llama", "model.norm=rmsnorm", "model.pos=rope", "model.activation=swiglu",
         "model.bias=0", "model.tie_embeddings=0", NULL},
        {"model.dropout=0.1", "attn.softmax=ncs", "attn.gate=linear", NULL},
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        qt_config cfg;
        small_config(&cfg, variants[v]);
        qt_backend be;
        ck_assert_int_eq(qt_backend_cpu_init(&be, 1), QT_OK);
        qt_model m;
        ck_assert_msg(qt_model_init(&m, &cfg, &be, 2, 16) == QT_OK, "%s", qt_last_error());
        m.training = 1;
        int in[32], tg[32];
        for (int i = 0; i < 32; i++)
            in[i] = (7 * i + 1) % 257, tg[i] = (11 * i + 3) % 257;
        frontier_log f = {.m = &m};
        m.grads_ready = record_frontier;
        m.grads_ready_user = &f;
        float loss;
        ck_assert(qt_model_zero_grad(&m) == QT_OK);
        ck_assert(qt_model_forward(&m, in, tg, 2, 16, &loss) == QT_OK);
        ck_assert(qt_model_backward(&m, 1.0f) == QT_OK);
        // Once per block, after the final norm, after the embeddings.
        ck_assert_int_eq(f.n, cfg.n_layer + 2);
        ck_assert_uint_eq(f.offsets[f.n - 1], 0);
        for (int i = 0; i < f.n; i++) {
            if (i) ck_assert_msg(f.offsets[i] < f.offsets[i - 1], "variant %zu: frontier rose", v);
            size_t len = m.n_params - f.offsets[i];
            ck_assert_msg(memcmp(f.snap[i], (float *)m.grads + f.offsets[i], len * sizeof(float)) ==
                              0,
                          "variant %zu: a gradient at or above the frontier %zu (report %d) "
                          "changed after it was reported final",
                          v, f.offsets[i], i);
            free(f.snap[i]);
        }
        qt_model_free(&m);
        qt_backend_free(&be);
    }
}
END_TEST

// ---- the sharded optimizer -------------------------------------------------------------------

START_TEST(test_sharded_optimizer_matches_whole) {
    qt_config cfg;
    small_config(&cfg, NULL);
    qt_backend be;
    ck_assert_int_eq(qt_backend_cpu_init(&be, 1), QT_OK);
    qt_model a, b;
    ck_assert(qt_model_init(&a, &cfg, &be, 2, 16) == QT_OK);
    ck_assert(qt_model_init(&b, &cfg, &be, 2, 16) == QT_OK);
    size_t n = a.n_params;
    float *g = a.grads;
    for (size_t i = 0; i < n; i++)
        g[i] = (float)sin(0.37 * (double)i) * 0.01f;
    memcpy(b.grads, a.grads, n * sizeof(float));
    qt_optimizer whole, shard[3];
    ck_assert(qt_optimizer_init(&whole, &a) == QT_OK);
    double norm = 0;
    ck_assert(qt_grad_norm(&a, &norm) == QT_OK);
    for (int step = 0; step < 3; step++) {
        int skipped;
        ck_assert(qt_optimizer_update(&whole, &a, 1e-3f, 1.0f, norm, NULL, &skipped) == QT_OK);
    }
    // Three shards of b, each updated on its range only: together, the whole update, bit for bit.
    for (int r = 0; r < 3; r++) {
        size_t lo, hi;
        qt_dist_shard_range(n, 3, r, &lo, &hi);
        ck_assert(qt_optimizer_init_shard(&shard[r], &b, lo, hi) == QT_OK);
        ck_assert(shard[r].sharded && shard[r].lo == lo && shard[r].hi == hi);
    }
    for (int step = 0; step < 3; step++)
        for (int r = 0; r < 3; r++) {
            int skipped;
            ck_assert(qt_optimizer_update(&shard[r], &b, 1e-3f, 1.0f, norm, NULL, &skipped) ==
                      QT_OK);
        }
    ck_assert_msg(memcmp(a.params, b.params, n * sizeof(float)) == 0,
                  "three shards' updates differ from the whole optimizer's");
    for (int r = 0; r < 3; r++) {
        ck_assert(memcmp(shard[r].m, whole.m + shard[r].lo,
                         (shard[r].hi - shard[r].lo) * sizeof(float)) == 0);
        qt_optimizer_free(&shard[r], &b);
    }
    qt_optimizer_free(&whole, &a);
    qt_model_free(&a);
    qt_model_free(&b);
    // Refused where a step needs whole tensors.
    const char *const dqt[] = {"quant.mode=dqt", NULL};
    const char *const qm[] = {"quant.mode=qat", "quant.m_bits=8", NULL};
    const char *const *refused[] = {dqt, qm};
    for (int k = 0; k < 2; k++) {
        small_config(&cfg, refused[k]);
        qt_model m;
        ck_assert_msg(qt_model_init(&m, &cfg, &be, 2, 16) == QT_OK, "%s", qt_last_error());
        qt_optimizer o;
        ck_assert_int_eq(qt_optimizer_init_shard(&o, &m, 0, 16), QT_ERR_ARG);
        ck_assert_msg(strstr(qt_last_error(), "dist.zero") != NULL, "%s", qt_last_error());
        qt_model_free(&m);
    }
    qt_backend_free(&be);
}
END_TEST

// ---- the data split ---------------------------------------------------------------------------

START_TEST(test_ranks_read_disjoint_slices_of_the_global_batch) {
    char *dir = qt_test_tmpdir("dist-data");
    qt_test_write_synthetic_shards(dir);
    const int B = 3, T = 16, N = 3;
    // One loader of N x B: the global batches. N loaders of B, one per (fake) rank.
    qt_dataloader *global, *rank[3];
    ck_assert(qt_dataloader_open(&global, dir, "train", N * B, T, 257, 7, 1) == QT_OK);
    for (int r = 0; r < N; r++)
        ck_assert(qt_dataloader_open(&rank[r], dir, "train", B, T, 257, 7, 1) == QT_OK);
    int gin[9 * 16], gtg[9 * 16], in[3 * 16], tg[3 * 16];
    // Enough batches to cross an epoch boundary (the split has 999 windows of 16).
    uint64_t steps = qt_dataloader_num_windows(global) / (uint64_t)(N * B) + 3;
    for (uint64_t s = 0; s < steps; s++) {
        ck_assert(qt_dataloader_next(global, gin, gtg) == QT_OK);
        for (int r = 0; r < N; r++) {
            qt_comm c;
            qt_comm_single_init(&c);
            c.rank = r; // a rank's view; qt_dp_next_batch only reads rank and size
            c.size = N;
            ck_assert(qt_dp_next_batch(rank[r], &c, B, in, tg) == QT_OK);
            ck_assert_msg(memcmp(in, gin + r * B * T, sizeof in) == 0 &&
                              memcmp(tg, gtg + r * B * T, sizeof tg) == 0,
                          "batch %llu: rank %d's slice differs", (unsigned long long)s, r);
            qt_data_pos p = qt_dataloader_tell(rank[r]), q = qt_dataloader_tell(global);
            ck_assert(p.epoch == q.epoch && p.index == q.index); // the position is global
        }
    }
    ck_assert(qt_dataloader_tell(global).epoch >= 1);
    for (int r = 0; r < N; r++)
        qt_dataloader_free(rank[r]);
    qt_dataloader_free(global);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_launch_detection);
    tcase_add_test(tc, test_rendezvous_without_mpi);
    tcase_add_test(tc, test_single_communicator_is_the_identity);
    tcase_add_test(tc, test_half_conversions);
    tcase_add_test(tc, test_shard_ranges_tile_the_arena);
    tcase_add_test(tc, test_bucket_plan);
    tcase_add_test(tc, test_grads_ready_frontier);
    tcase_add_test(tc, test_sharded_optimizer_matches_whole);
    tcase_add_test(tc, test_ranks_read_disjoint_slices_of_the_global_batch);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

// bench_dist.c: the cost of data-parallel training on the CPU, measured in one run:
//
//   mpirun -np 2 --bind-to core build/bench_dist [--config configs/default.conf] [--steps 10]
//          [--warmup 2] [--set key=value]...
//
// Rank 0 first trains alone (1 rank x 1 thread, micro-batch B) while rank 1 waits; then both
// train together (2 ranks x 1 thread, B each: twice the tokens per step), with the gradients
// all-reduced in buckets (dist.bucket_mb) and, in a third row, with ZeRO-1. Printed per row:
// milliseconds per step (median over the timed steps, after the warmup), tokens per second,
// the ratio of the step time to the 1-rank step (the data-parallel overhead: 1.00 would be
// perfect weak scaling), the scaling efficiency (1-rank time / 2-rank time), and the bytes
// each rank hands to collectives per step with what a ring algorithm moves over the wire per
// rank (all-reduce 2 (N-1)/N of it; reduce-scatter and all-gather (N-1)/N each), and the
// mean milliseconds per step rank 0 spent in communicator calls (issuing and waiting: the
// communication the backward did not hide).
// Not a family benchmark (bench/bench_<family>.c): an end-to-end program like bench_train,
// built only with MPI (cmake/dist.cmake).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qtrain/dist.h"
#include "qtrain/trainer.h"

#define MAX_STEPS 256

typedef struct {
    double t[MAX_STEPS + 1];          // time when step i was done (t[0]: unused)
    uint64_t bytes[MAX_STEPS + 1][3]; // the communicator's byte counters then
    double comm_s[MAX_STEPS + 1];     // and its seconds
    int n;
    const qt_comm *comm; // NULL: one process
} stamps;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static qt_status on_step(void *user, int step, const qt_model *m, const qt_optimizer *opt) {
    (void)m, (void)opt;
    stamps *s = user;
    if (step > MAX_STEPS) return QT_OK;
    s->t[step] = now_s();
    if (s->comm) {
        s->bytes[step][0] = s->comm->bytes_allreduce;
        s->bytes[step][1] = s->comm->bytes_reduce_scatter;
        s->bytes[step][2] = s->comm->bytes_allgather;
        s->comm_s[step] = s->comm->seconds;
    }
    s->n = step;
    return QT_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Median seconds per step over steps warmup+1 .. n (step warmup+1 is timed from the end of
// step warmup).
static double median_step(const stamps *s, int warmup) {
    double d[MAX_STEPS];
    int k = 0;
    for (int i = warmup + 1; i <= s->n; i++)
        d[k++] = s->t[i] - s->t[i - 1];
    if (k == 0) return 0.0;
    qsort(d, (size_t)k, sizeof d[0], cmp_double);
    return k % 2 ? d[k / 2] : 0.5 * (d[k / 2 - 1] + d[k / 2]);
}

static int usage(void) {
    fprintf(stderr, "usage: mpirun -np 2 bench_dist [--config FILE] [--steps N] [--warmup N] "
                    "[--set key=value]...\n");
    return 2;
}

// One training of cfg into dir: on this rank alone (single, rank 0; rank 1 waits) or on both.
static qt_status run(qt_comm *comm, const qt_config *cfg, const char *dir, int single, stamps *s) {
    memset(s, 0, sizeof *s);
    s->comm = single ? NULL : comm;
    qt_status st = QT_OK;
    if (!single || comm->rank == 0) {
        qt_train_opts o = {.comm = single ? NULL : comm,
                           .out_dir = dir,
                           .quiet = 1,
                           .on_step = on_step,
                           .on_step_user = s};
        st = qt_train(cfg, &o);
    }
    st = qt_comm_agree(comm, st, 3600.0, "the benchmark run");
    return st;
}

int main(int argc, char **argv) {
    const char *config = "configs/default.conf";
    int steps = 10, warmup = 2;
    const char *sets[64];
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        if (strcmp(argv[i], "--config") == 0)
            config = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0)
            steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0)
            warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "--set") == 0 && n_sets < 64)
            sets[n_sets++] = argv[++i];
        else
            return usage();
    }
    if (steps < 1 || warmup < 0 || steps + warmup > MAX_STEPS) return usage();
    qt_comm comm;
    if (qt_comm_mpi_init(&comm, 600.0) != QT_OK) {
        fprintf(stderr, "bench_dist: %s\n", qt_last_error());
        return 1;
    }
    if (comm.size != 2) {
        fprintf(stderr, "bench_dist: run under mpirun -np 2 (world size %d)\n", comm.size);
        qt_comm_free(&comm);
        return 2;
    }
    qt_config cfg;
    qt_config_defaults(&cfg);
    qt_status st = qt_config_load(&cfg, config);
    for (int i = 0; i < n_sets && st == QT_OK; i++)
        st = qt_config_set(&cfg, sets[i], "--set");
    cfg.threads = 1;
    cfg.max_steps = steps + warmup;
    cfg.eval_every = 0;
    cfg.eval_batches = 1;
    cfg.ckpt_every = 0;
    cfg.log_every = 1000000;
    if (st == QT_OK) st = qt_config_validate(&cfg);
    char dir[256] = "";
    if (st == QT_OK && comm.rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/qtrain-bench-dist-XXXXXX");
        if (!mkdtemp(dir)) st = qt_error(QT_ERR_IO, "cannot create %s", dir);
    }
    st = qt_comm_agree(&comm, st, 600.0, "to set up");
    if (st == QT_OK) st = qt_comm_broadcast(&comm, dir, sizeof dir, 0, 1);
    if (st != QT_OK) {
        fprintf(stderr, "bench_dist: rank %d: %s\n", comm.rank, qt_last_error());
        qt_comm_abort(&comm, 1);
        return 1;
    }
    const char *names[3] = {"1 rank x 1 thread", "2 ranks x 1 thread", "2 ranks, ZeRO-1"};
    stamps *s = calloc(3, sizeof *s);
    char out[400];
    for (int k = 0; k < 3 && st == QT_OK; k++) {
        qt_config c = cfg;
        c.dist_zero = k == 2;
        snprintf(out, sizeof out, "%s/run%d", dir, k);
        st = run(&comm, &c, out, k == 0, &s[k]);
    }
    if (st != QT_OK) {
        fprintf(stderr, "bench_dist: rank %d: %s\n", comm.rank, qt_last_error());
        qt_comm_abort(&comm, 1);
        return 1;
    }
    if (comm.rank == 0) {
        double base = median_step(&s[0], warmup);
        double tokens = (double)cfg.batch_size * cfg.seq_len * cfg.grad_accum;
        printf("bench_dist: %s, B %d x T %d x accumulation %d per rank, dist.bucket_mb %g, "
               "%d timed steps after %d warmup (median)\n",
               config, cfg.batch_size, cfg.seq_len, cfg.grad_accum, (double)cfg.dist_bucket_mb,
               steps, warmup);
        printf("%-20s %10s %10s %12s %10s %12s %14s %14s\n", "run", "ms/step", "tokens/s",
               "step ratio", "efficiency", "comm ms", "bytes/step", "ring wire/rank");
        for (int k = 0; k < 3; k++) {
            double t = median_step(&s[k], warmup);
            int ranks = k == 0 ? 1 : 2;
            double payload = 0.0, wire = 0.0, comm_ms = 0.0;
            if (k > 0) {
                comm_ms =
                    1e3 * (s[k].comm_s[s[k].n] - s[k].comm_s[warmup]) / (double)(s[k].n - warmup);
                double d[3];
                for (int j = 0; j < 3; j++)
                    d[j] = (double)(s[k].bytes[s[k].n][j] - s[k].bytes[warmup][j]) /
                           (double)(s[k].n - warmup);
                payload = d[0] + d[1] + d[2];
                wire =
                    2.0 * (ranks - 1) / ranks * d[0] + (double)(ranks - 1) / ranks * (d[1] + d[2]);
            }
            printf("%-20s %10.1f %10.0f %11.3fx %10.3f %12.1f %14.0f %14.0f\n", names[k], 1e3 * t,
                   ranks * tokens / t, t / base, base / t, comm_ms, payload, wire);
        }
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "bench_dist: could not remove %s\n", dir);
    }
    free(s);
    qt_comm_free(&comm);
    return 0;
}

// mpi_testutil.h: helpers of the tests that run under mpirun (tests/mpi): a verdict every
// rank shares, the synthetic data every rank reads, metrics.jsonl readers, and an optimizer-
// step observer that checks the parameters are bit-identical on every rank.
#ifndef QTRAIN_TESTS_MPI_TESTUTIL_H
#define QTRAIN_TESTS_MPI_TESTUTIL_H

#include <stddef.h>

#include "qtrain/dist.h"
#include "qtrain/trainer.h"

// A case's result shared by all ranks: every rank ends a case with the same pass/fail (so no
// rank is left waiting in a collective), carrying the lowest failing rank's first message.
typedef struct {
    int failed;
    char msg[512];
} qt_verdict;

void qt_verdict_fail(qt_verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// All ranks: fails the running Check case on every rank if any rank failed.
void qt_verdict_agree(qt_comm *c, qt_verdict *v);

// Synthetic shards (tests/testutil.c) made by rank 0 once, into a directory whose path every
// rank receives in dir (cap bytes); a no-op once dir is set.
void qt_mpi_test_data(qt_comm *c, char *dir, size_t cap);
// A fresh temporary directory made by rank 0, its path shared.
void qt_mpi_test_tmpdir(qt_comm *c, char *out, size_t cap, const char *tag);

// The train losses of run_dir/metrics.jsonl by step (1-based) into losses (max_steps), and
// those lines' loss_scale and skipped_steps when the pointers are not NULL; -1 without a file,
// else the count of lines found.
int qt_mpi_test_losses(const char *run_dir, double *losses, double *scales, double *skipped,
                       int max_steps);
// The first line of run_dir/metrics.jsonl (the memory report) into line.
void qt_mpi_test_memory_line(const char *run_dir, char *line, size_t cap);
// The unsigned integer after "key": in line, or (size_t)-1.
size_t qt_mpi_test_json_size(const char *line, const char *key);

// The observer of qt_train_opts.on_step: after every step, the parameters' hash (the raw
// bytes of the arena, in the backend's dtype) must be the same on every rank; records the
// optimizer's shard and step and the hash of each step.
typedef struct {
    qt_comm *comm;
    qt_verdict *v;
    int steps;
    size_t opt_lo, opt_hi, n_params;
    int sharded;
    int opt_step[64];            // the optimizer's own count after each step (skips not counted)
    unsigned long long hash[64]; // of the parameters after each step
} qt_step_check;
qt_status qt_mpi_test_on_step(void *user, int step, const qt_model *m, const qt_optimizer *opt);

#endif

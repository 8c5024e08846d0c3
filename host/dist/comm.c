// comm.c: the communicator wrappers (argument checks, byte counts, the world-of-one shortcut)
// and the single-process communicator; the interface is in qtrain/dist.h.
//
// A world of size 1 never reaches an implementation: every reduction of one rank is the
// identity (SUM, AVG and MAX alike), so a run without a launcher executes no collective and
// no extra arithmetic, and trains bit for bit as it did before this module existed.
#include "qtrain/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Runs `call` (an implementation's collective) and adds its time to c->seconds.
#define TIMED(c, call)                                                                             \
    do {                                                                                           \
        double t0_ = now_s();                                                                      \
        qt_status st_ = (call);                                                                    \
        (c)->seconds += now_s() - t0_;                                                             \
        return st_;                                                                                \
    } while (0)

static qt_status check_comm(const qt_comm *c, const char *call) {
    if (!c || !c->ops)
        return qt_error(QT_ERR_ARG, "%s: no communicator (NULL); open one with qt_comm_*_init",
                        call);
    return QT_OK;
}

static qt_status check_dtype(qt_dtype dt, const char *call) {
    if (dt != QT_DTYPE_F32 && dt != QT_DTYPE_F16 && dt != QT_DTYPE_BF16)
        return qt_error(QT_ERR_ARG, "%s: dtype %d is not fp32, fp16 or bf16", call, (int)dt);
    return QT_OK;
}

static size_t sum_counts(const qt_comm *c, const size_t *counts) {
    size_t total = 0;
    for (int r = 0; r < c->size; r++)
        total += counts[r];
    return total;
}

qt_status qt_comm_allreduce(qt_comm *c, void *buf, size_t n, qt_dtype dt, qt_dist_op op,
                            qt_dist_req *req) {
    QT_TRY(check_comm(c, "allreduce"));
    QT_TRY(check_dtype(dt, "allreduce"));
    if (req) *req = -1;
    if (!buf && n) return qt_error(QT_ERR_ARG, "allreduce: NULL buffer of %zu elements", n);
    if (c->size == 1 || n == 0) return QT_OK;
    c->bytes_allreduce += n * qt_dtype_size(dt);
    c->n_collectives++;
    TIMED(c, c->ops->allreduce(c, buf, n, dt, op, req));
}

qt_status qt_comm_reduce_scatter(qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                                 qt_dist_op op, qt_dist_req *req) {
    QT_TRY(check_comm(c, "reduce_scatter"));
    QT_TRY(check_dtype(dt, "reduce_scatter"));
    if (req) *req = -1;
    if (!counts) return qt_error(QT_ERR_ARG, "reduce_scatter: NULL counts");
    if (op == QT_DIST_MAX)
        return qt_error(QT_ERR_ARG, "reduce_scatter: MAX is not a gradient reduction; use SUM "
                                    "or AVG");
    size_t n = sum_counts(c, counts);
    if (!buf && n) return qt_error(QT_ERR_ARG, "reduce_scatter: NULL buffer of %zu elements", n);
    if (c->size == 1 || n == 0) return QT_OK;
    c->bytes_reduce_scatter += n * qt_dtype_size(dt);
    c->n_collectives++;
    TIMED(c, c->ops->reduce_scatter(c, buf, counts, dt, op, req));
}

qt_status qt_comm_allgather(qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                            qt_dist_req *req) {
    QT_TRY(check_comm(c, "allgather"));
    QT_TRY(check_dtype(dt, "allgather"));
    if (req) *req = -1;
    if (!counts) return qt_error(QT_ERR_ARG, "allgather: NULL counts");
    size_t n = sum_counts(c, counts);
    if (!buf && n) return qt_error(QT_ERR_ARG, "allgather: NULL buffer of %zu elements", n);
    if (c->size == 1 || n == 0) return QT_OK;
    c->bytes_allgather += n * qt_dtype_size(dt);
    c->n_collectives++;
    TIMED(c, c->ops->allgather(c, buf, counts, dt, req));
}

qt_status qt_comm_broadcast(qt_comm *c, void *buf, size_t bytes, int root, int host) {
    QT_TRY(check_comm(c, "broadcast"));
    if (root < 0 || root >= c->size)
        return qt_error(QT_ERR_ARG, "broadcast: root %d is not a rank of a world of %d", root,
                        c->size);
    if (!buf && bytes) return qt_error(QT_ERR_ARG, "broadcast: NULL buffer of %zu bytes", bytes);
    if (c->size == 1 || bytes == 0) return QT_OK;
    c->n_collectives++;
    TIMED(c, c->ops->broadcast(c, buf, bytes, root, host));
}

qt_status qt_comm_wait(qt_comm *c, qt_dist_req req, const char *what) {
    QT_TRY(check_comm(c, "wait"));
    if (req < 0) return QT_OK; // a collective of a world of one, done at issue
    TIMED(c, c->ops->wait(c, req, what ? what : "a collective"));
}

qt_status qt_comm_progress(qt_comm *c) {
    QT_TRY(check_comm(c, "progress"));
    if (c->size == 1 || !c->ops->progress) return QT_OK;
    TIMED(c, c->ops->progress(c));
}

qt_status qt_comm_allreduce_host(qt_comm *c, double *x, size_t n, qt_dist_op op) {
    QT_TRY(check_comm(c, "allreduce_host"));
    if (!x && n) return qt_error(QT_ERR_ARG, "allreduce_host: NULL buffer of %zu values", n);
    if (c->size == 1 || n == 0) return QT_OK;
    c->n_collectives++;
    TIMED(c, c->ops->allreduce_host(c, x, n, op));
}

qt_status qt_comm_allgather_host(qt_comm *c, double *x, size_t n) {
    QT_TRY(check_comm(c, "allgather_host"));
    if (!x && n) return qt_error(QT_ERR_ARG, "allgather_host: NULL buffer of %zu values", n);
    if (c->size == 1 || n == 0) return QT_OK;
    c->n_collectives++;
    TIMED(c, c->ops->allgather_host(c, x, n));
}

qt_status qt_comm_barrier(qt_comm *c, double timeout_s, const char *what) {
    QT_TRY(check_comm(c, "barrier"));
    if (c->size == 1) return QT_OK;
    TIMED(c, c->ops->barrier(c, timeout_s, what ? what : "a barrier"));
}

void qt_comm_abort(qt_comm *c, int code) {
    if (c && c->ops && c->size > 1 && c->ops->abort) c->ops->abort(c, code);
}

qt_status qt_comm_agree(qt_comm *c, qt_status st, double timeout_s, const char *what) {
    QT_TRY(check_comm(c, "agree"));
    if (c->size == 1) return st;
    // The local message survives the collective below (which may record its own on failure).
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", qt_last_error());
    qt_status bst = qt_comm_barrier(c, timeout_s, what);
    if (bst != QT_OK) return bst;
    // x = the lowest failed rank (or size when none): MAX of (size - failed rank).
    double x = st != QT_OK ? (double)(c->size - c->rank) : 0.0;
    qt_status ast = qt_comm_allreduce_host(c, &x, 1, QT_DIST_MAX);
    if (ast != QT_OK) return ast;
    if (st != QT_OK) return qt_error(st, "%s", msg);
    if (x > 0)
        return qt_error(QT_ERR_COMM,
                        "rank %d failed %s (its own message says why); every "
                        "rank stops",
                        c->size - (int)x, what);
    return QT_OK;
}

void qt_comm_free(qt_comm *c) {
    if (!c) return;
    if (c->ops && c->ops->destroy) c->ops->destroy(c);
    memset(c, 0, sizeof *c);
}

// ---- the single process ------------------------------------------------------------------
// Never called through the wrappers (size 1 returns first); present so that the table is
// complete and a caller that bypasses the wrappers still gets the identity.

static qt_status single_allreduce(qt_comm *c, void *buf, size_t n, qt_dtype dt, qt_dist_op op,
                                  qt_dist_req *req) {
    (void)c, (void)buf, (void)n, (void)dt, (void)op;
    if (req) *req = -1;
    return QT_OK;
}

static qt_status single_reduce_scatter(qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                                       qt_dist_op op, qt_dist_req *req) {
    (void)c, (void)buf, (void)counts, (void)dt, (void)op;
    if (req) *req = -1;
    return QT_OK;
}

static qt_status single_allgather(qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                                  qt_dist_req *req) {
    (void)c, (void)buf, (void)counts, (void)dt;
    if (req) *req = -1;
    return QT_OK;
}

static qt_status single_broadcast(qt_comm *c, void *buf, size_t bytes, int root, int host) {
    (void)c, (void)buf, (void)bytes, (void)root, (void)host;
    return QT_OK;
}

static qt_status single_wait(qt_comm *c, qt_dist_req req, const char *what) {
    (void)c, (void)req, (void)what;
    return QT_OK;
}

static qt_status single_host(qt_comm *c, double *x, size_t n, qt_dist_op op) {
    (void)c, (void)x, (void)n, (void)op;
    return QT_OK;
}

static qt_status single_gather_host(qt_comm *c, double *x, size_t n) {
    (void)c, (void)x, (void)n;
    return QT_OK;
}

static qt_status single_barrier(qt_comm *c, double timeout_s, const char *what) {
    (void)c, (void)timeout_s, (void)what;
    return QT_OK;
}

static void single_abort(qt_comm *c, int code) {
    (void)c;
    exit(code);
}

static const qt_comm_ops single_ops = {
    .allreduce = single_allreduce,
    .reduce_scatter = single_reduce_scatter,
    .allgather = single_allgather,
    .broadcast = single_broadcast,
    .wait = single_wait,
    .progress = NULL,
    .allreduce_host = single_host,
    .allgather_host = single_gather_host,
    .barrier = single_barrier,
    .abort = single_abort,
    .destroy = NULL,
};

qt_status qt_comm_single_init(qt_comm *c) {
    if (!c) return qt_error(QT_ERR_ARG, "qt_comm_single_init: NULL communicator");
    memset(c, 0, sizeof *c);
    c->ops = &single_ops;
    c->name = "single";
    c->rank = 0;
    c->size = 1;
    c->timeout_s = 60.0;
    return QT_OK;
}

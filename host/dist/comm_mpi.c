// comm_mpi.c: the MPI communicator (qtrain/dist.h), built only where CMake finds MPI.
//
// Collectives: MPI_Iallreduce, MPI_Ireduce_scatter, MPI_Iallgatherv and MPI_Ibcast on a
// duplicate of MPI_COMM_WORLD, in place, in the training dtype (MPI_FLOAT; fp16 and bf16 as
// MPI_UINT16_T with user-defined ops that add in fp32 and round once per combination). AVG is
// the SUM scaled by 1/N once it completes. Every MPI call is checked: a failure records the
// call, the rank, MPI's message and what to do, as QT_ERR_COMM.
//
// Waits, and why they are bounded: Open MPI progresses non-blocking collectives only inside
// MPI calls, so a wait polls MPI_Test (yielding the core between polls once it has spun a
// while). When a collective has not completed after the communicator's timeout
// (dist.timeout_s), some rank is gone or stuck: without an extra thread or a transport of our
// own, the waiting rank pings every other rank on a second duplicate of MPI_COMM_WORLD and
// collects the answers for PING_WINDOW_S seconds; every rank answers pings in its own wait
// loops (which is where a healthy rank is when a collective hangs). The ranks that do not
// answer are named as lost, and the caller ends the job (qt_comm_abort: MPI_Abort). With
// mpirun's default (kill the job when a process dies) the launcher usually ends the survivors
// first and names the dead rank itself; the timeout is what bounds everything else (a hung
// rank, `mpirun --enable-recovery`, a launcher that keeps survivors alive).
#include <mpi.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist_internal.h"
#include "qtrain/dist.h"

// How long a rank that timed out waits for the others' answers to its ping.
#define PING_WINDOW_S 5.0
// Polls of MPI_Test before a wait starts sleeping between polls, and that sleep.
#define WAIT_SPINS 2000
#define WAIT_SLEEP_NS 50000L
// Point-to-point tags of the control communicator.
#define TAG_PING 1
#define TAG_PONG 2

enum { KIND_ALLREDUCE, KIND_REDUCE_SCATTER, KIND_ALLGATHER };

typedef struct {
    MPI_Request req;
    int active, done; // issued; MPI_Test reported it complete (post-processing pending)
    int kind;
    void *buf;
    qt_dtype dt;
    qt_dist_op op;
    size_t n;               // elements the post-processing touches
    size_t own_offset;      // reduce-scatter: where this rank's slice goes (elements)
    int *icounts, *idispls; // (size) MPI's int counts and displacements
} mpi_slot;

typedef struct {
    MPI_Comm comm;             // collectives
    MPI_Comm ctl;              // pings and pongs
    int initialized_here;      // we called MPI_Init_thread (and will finalize)
    MPI_Op sum16[2], max16[2]; // user ops for fp16 [0] and bf16 [1]
    mpi_slot *slots;
    int n_slots;
    int ping_out, pong_out, ping_in; // message buffers (the payload is the sender's rank)
} mpi_ctx;

static qt_status mpi_fail(const qt_comm *c, int rc, const char *call, const char *what) {
    char msg[MPI_MAX_ERROR_STRING + 1] = "";
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", rc);
    msg[len > 0 && len <= MPI_MAX_ERROR_STRING ? len : 0] = '\0';
    return qt_error(QT_ERR_COMM,
                    "rank %d of %d: %s failed during %s: %s; a peer rank may have "
                    "died or the network failed: check the other ranks' messages and the "
                    "launcher's",
                    c->rank, c->size, call, what, msg);
}

#define QT_CHECK_MPI(c, call, what)                                                                \
    do {                                                                                           \
        int qt_mpi_rc_ = (call);                                                                   \
        if (qt_mpi_rc_ != MPI_SUCCESS) return mpi_fail((c), qt_mpi_rc_, #call, (what));            \
    } while (0)

// ---- fp16 / bf16 user ops ----------------------------------------------------------------

static void op_sum_f16(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    qt_dist_reduce_into(inout, in, (size_t)*len, QT_DTYPE_F16, QT_DIST_SUM);
}
static void op_sum_bf16(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    qt_dist_reduce_into(inout, in, (size_t)*len, QT_DTYPE_BF16, QT_DIST_SUM);
}
static void op_max_f16(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    qt_dist_reduce_into(inout, in, (size_t)*len, QT_DTYPE_F16, QT_DIST_MAX);
}
static void op_max_bf16(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    qt_dist_reduce_into(inout, in, (size_t)*len, QT_DTYPE_BF16, QT_DIST_MAX);
}

static MPI_Datatype mpi_type(qt_dtype dt) { return dt == QT_DTYPE_F32 ? MPI_FLOAT : MPI_UINT16_T; }

static MPI_Op mpi_op(const mpi_ctx *x, qt_dtype dt, qt_dist_op op) {
    if (dt == QT_DTYPE_F32) return op == QT_DIST_MAX ? MPI_MAX : MPI_SUM;
    int k = dt == QT_DTYPE_F16 ? 0 : 1;
    return op == QT_DIST_MAX ? x->max16[k] : x->sum16[k];
}

// ---- pings: naming the ranks that are gone -----------------------------------------------

// Answers every ping that has arrived (the sender waits for it to name lost ranks).
static void serve_pings(qt_comm *c) {
    mpi_ctx *x = c->ctx;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_PING, x->ctl, &flag, &st) != MPI_SUCCESS || !flag)
            return;
        if (MPI_Recv(&x->ping_in, 1, MPI_INT, st.MPI_SOURCE, TAG_PING, x->ctl, MPI_STATUS_IGNORE) !=
            MPI_SUCCESS)
            return;
        MPI_Request r;
        if (MPI_Isend(&x->pong_out, 1, MPI_INT, st.MPI_SOURCE, TAG_PONG, x->ctl, &r) == MPI_SUCCESS)
            MPI_Request_free(&r);
    }
}

static void sleep_ns(long ns) {
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

// After `what` timed out: which ranks answer a ping within PING_WINDOW_S? Records the error.
static qt_status timed_out(qt_comm *c, const char *what, double waited) {
    mpi_ctx *x = c->ctx;
    int N = c->size;
    MPI_Request *rreq = calloc((size_t)N, sizeof *rreq);
    int *pong = calloc((size_t)N, sizeof *pong), *answered = calloc((size_t)N, sizeof *answered);
    if (!rreq || !pong || !answered) {
        free(rreq), free(pong), free(answered);
        return qt_error(QT_ERR_COMM,
                        "rank %d: %s did not complete within %.0f s (and no memory "
                        "was left to find out which rank is lost)",
                        c->rank, what, waited);
    }
    for (int p = 0; p < N; p++) {
        rreq[p] = MPI_REQUEST_NULL;
        if (p == c->rank) continue;
        MPI_Request s;
        if (MPI_Isend(&x->ping_out, 1, MPI_INT, p, TAG_PING, x->ctl, &s) == MPI_SUCCESS)
            MPI_Request_free(&s);
        MPI_Irecv(&pong[p], 1, MPI_INT, p, TAG_PONG, x->ctl, &rreq[p]);
    }
    double t0 = MPI_Wtime();
    int missing = N - 1;
    while (missing > 0 && MPI_Wtime() - t0 < PING_WINDOW_S) {
        for (int p = 0; p < N; p++) {
            if (p == c->rank || answered[p] || rreq[p] == MPI_REQUEST_NULL) continue;
            int flag = 0;
            if (MPI_Test(&rreq[p], &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag) {
                answered[p] = 1;
                missing--;
            }
        }
        serve_pings(c);
        sleep_ns(1000000L);
    }
    char lost[512] = "";
    size_t at = 0;
    int n_lost = 0;
    for (int p = 0; p < N; p++) {
        if (p == c->rank || answered[p]) continue;
        if (rreq[p] != MPI_REQUEST_NULL) {
            MPI_Cancel(&rreq[p]);
            MPI_Request_free(&rreq[p]);
        }
        if (at + 16 < sizeof lost)
            at += (size_t)snprintf(lost + at, sizeof lost - at, "%s%d", n_lost ? ", " : "", p);
        n_lost++;
    }
    free(rreq), free(pong), free(answered);
    if (n_lost)
        return qt_error(QT_ERR_COMM,
                        "rank %d of %d: %s did not complete within %.0f s (dist.timeout_s): "
                        "rank%s %s lost (no answer within %.0f s: crashed, killed, hung or "
                        "unreachable); the job stops. If a rank is only slower, raise "
                        "dist.timeout_s",
                        c->rank, N, what, waited, n_lost > 1 ? "s" : "", lost, PING_WINDOW_S);
    return qt_error(QT_ERR_COMM,
                    "rank %d of %d: %s did not complete within %.0f s (dist.timeout_s), yet "
                    "every rank answers: the ranks are in different collectives (a bug: report "
                    "it) or one is much slower; the job stops. If a rank is only slower, raise "
                    "dist.timeout_s",
                    c->rank, N, what, waited);
}

// Completes r within timeout_s, answering pings meanwhile.
static qt_status wait_request(qt_comm *c, MPI_Request *r, const char *what, double timeout_s) {
    double t0 = MPI_Wtime();
    for (unsigned spins = 0;; spins++) {
        int done = 0;
        QT_CHECK_MPI(c, MPI_Test(r, &done, MPI_STATUS_IGNORE), what);
        if (done) return QT_OK;
        if ((spins & 63) == 0) {
            serve_pings(c);
            double waited = MPI_Wtime() - t0;
            if (waited > timeout_s) return timed_out(c, what, waited);
        }
        if (spins > WAIT_SPINS) sleep_ns(WAIT_SLEEP_NS);
    }
}

// ---- request slots -------------------------------------------------------------------------

static qt_status get_slot(qt_comm *c, qt_dist_req *id) {
    mpi_ctx *x = c->ctx;
    for (int i = 0; i < x->n_slots; i++)
        if (!x->slots[i].active) {
            *id = i;
            return QT_OK;
        }
    int n = x->n_slots ? 2 * x->n_slots : 16;
    mpi_slot *s = realloc(x->slots, (size_t)n * sizeof *s);
    if (!s) return qt_error(QT_ERR_OOM, "rank %d: cannot grow the request table", c->rank);
    memset(s + x->n_slots, 0, (size_t)(n - x->n_slots) * sizeof *s);
    for (int i = x->n_slots; i < n; i++) {
        s[i].icounts = calloc((size_t)c->size, sizeof(int));
        s[i].idispls = calloc((size_t)c->size, sizeof(int));
        if (!s[i].icounts || !s[i].idispls) {
            x->slots = s;
            x->n_slots = i + 1;
            return qt_error(QT_ERR_OOM, "rank %d: cannot grow the request table", c->rank);
        }
    }
    *id = x->n_slots;
    x->slots = s;
    x->n_slots = n;
    return QT_OK;
}

// MPI's counts are int: the displacements of `counts` and their sum must fit.
static qt_status int_counts(qt_comm *c, const size_t *counts, mpi_slot *s, const char *call) {
    size_t at = 0;
    for (int r = 0; r < c->size; r++) {
        if (counts[r] > INT_MAX || at > INT_MAX)
            return qt_error(QT_ERR_ARG,
                            "rank %d: %s of more than 2^31 - 1 elements: MPI counts "
                            "are int; use smaller dist.bucket_mb or more ranks",
                            c->rank, call);
        s->icounts[r] = (int)counts[r];
        s->idispls[r] = (int)at;
        at += counts[r];
    }
    return QT_OK;
}

// Issues through `start` into a fresh slot, waits when req is NULL.
static qt_status finish_issue(qt_comm *c, qt_dist_req id, qt_dist_req *req, const char *what);

static qt_status post_process(qt_comm *c, mpi_slot *s) {
    size_t es = qt_dtype_size(s->dt);
    if (s->kind == KIND_REDUCE_SCATTER && s->own_offset)
        memmove((char *)s->buf + s->own_offset * es, s->buf, s->n * es);
    if (s->kind != KIND_ALLGATHER && s->op == QT_DIST_AVG)
        qt_dist_scale((char *)s->buf + (s->kind == KIND_REDUCE_SCATTER ? s->own_offset * es : 0),
                      s->n, s->dt, 1.0f / (float)c->size);
    return QT_OK;
}

static qt_status mpi_wait(qt_comm *c, qt_dist_req id, const char *what) {
    mpi_ctx *x = c->ctx;
    if (id < 0 || id >= x->n_slots || !x->slots[id].active)
        return qt_error(QT_ERR_INTERNAL, "rank %d: wait on request %d, which is not in flight",
                        c->rank, id);
    mpi_slot *s = &x->slots[id];
    qt_status st = s->done ? QT_OK : wait_request(c, &s->req, what, c->timeout_s);
    if (st == QT_OK) st = post_process(c, s);
    s->active = 0;
    s->done = 0;
    return st;
}

static qt_status finish_issue(qt_comm *c, qt_dist_req id, qt_dist_req *req, const char *what) {
    mpi_ctx *x = c->ctx;
    x->slots[id].active = 1;
    x->slots[id].done = 0;
    if (req) {
        *req = id;
        return QT_OK;
    }
    return mpi_wait(c, id, what);
}

static qt_status mpi_progress(qt_comm *c) {
    mpi_ctx *x = c->ctx;
    for (int i = 0; i < x->n_slots; i++) {
        mpi_slot *s = &x->slots[i];
        if (!s->active || s->done) continue;
        int flag = 0;
        QT_CHECK_MPI(c, MPI_Test(&s->req, &flag, MPI_STATUS_IGNORE), "progress");
        s->done = flag;
    }
    serve_pings(c);
    return QT_OK;
}

// ---- collectives -----------------------------------------------------------------------------

static qt_status mpi_allreduce(qt_comm *c, void *buf, size_t n, qt_dtype dt, qt_dist_op op,
                               qt_dist_req *req) {
    mpi_ctx *x = c->ctx;
    if (n > INT_MAX)
        return qt_error(QT_ERR_ARG,
                        "rank %d: all-reduce of %zu elements: MPI counts are int; "
                        "use a smaller dist.bucket_mb",
                        c->rank, n);
    qt_dist_req id;
    QT_TRY(get_slot(c, &id));
    mpi_slot *s = &x->slots[id];
    s->kind = KIND_ALLREDUCE;
    s->buf = buf, s->dt = dt, s->op = op, s->n = n, s->own_offset = 0;
    QT_CHECK_MPI(c,
                 MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, mpi_type(dt), mpi_op(x, dt, op), x->comm,
                                &s->req),
                 "an all-reduce");
    return finish_issue(c, id, req, "an all-reduce");
}

static qt_status mpi_reduce_scatter(qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                                    qt_dist_op op, qt_dist_req *req) {
    mpi_ctx *x = c->ctx;
    qt_dist_req id;
    QT_TRY(get_slot(c, &id));
    mpi_slot *s = &x->slots[id];
    QT_TRY(int_counts(c, counts, s, "reduce-scatter"));
    s->kind = KIND_REDUCE_SCATTER;
    s->buf = buf, s->dt = dt, s->op = op;
    s->n = counts[c->rank];
    s->own_offset = (size_t)s->idispls[c->rank];
    // In place, MPI takes the input from buf and leaves this rank's result at its start;
    // post_process moves it to the rank's slice.
    QT_CHECK_MPI(c,
                 MPI_Ireduce_scatter(MPI_IN_PLACE, buf, s->icounts, mpi_type(dt), mpi_op(x, dt, op),
                                     x->comm, &s->req),
                 "a reduce-scatter");
    return finish_issue(c, id, req, "a reduce-scatter");
}

static qt_status mpi_allgather(qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                               qt_dist_req *req) {
    mpi_ctx *x = c->ctx;
    qt_dist_req id;
    QT_TRY(get_slot(c, &id));
    mpi_slot *s = &x->slots[id];
    QT_TRY(int_counts(c, counts, s, "all-gather"));
    s->kind = KIND_ALLGATHER;
    s->buf = buf, s->dt = dt, s->op = QT_DIST_SUM, s->n = 0, s->own_offset = 0;
    QT_CHECK_MPI(c,
                 MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, s->icounts, s->idispls,
                                 mpi_type(dt), x->comm, &s->req),
                 "an all-gather");
    return finish_issue(c, id, req, "an all-gather");
}

static qt_status mpi_broadcast(qt_comm *c, void *buf, size_t bytes, int root, int host) {
    (void)host; // MPI reads host memory either way (the CPU backend's memory is the host's)
    mpi_ctx *x = c->ctx;
    // In pieces of at most 1 GiB (MPI counts are int).
    for (size_t at = 0; at < bytes;) {
        size_t n = bytes - at < ((size_t)1 << 30) ? bytes - at : ((size_t)1 << 30);
        MPI_Request r;
        QT_CHECK_MPI(c, MPI_Ibcast((char *)buf + at, (int)n, MPI_BYTE, root, x->comm, &r),
                     "a broadcast");
        QT_TRY(wait_request(c, &r, "a broadcast of the parameters", c->timeout_s));
        at += n;
    }
    return QT_OK;
}

static qt_status mpi_allreduce_host(qt_comm *c, double *v, size_t n, qt_dist_op op) {
    mpi_ctx *x = c->ctx;
    MPI_Request r;
    QT_CHECK_MPI(c,
                 MPI_Iallreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE,
                                op == QT_DIST_MAX ? MPI_MAX : MPI_SUM, x->comm, &r),
                 "an all-reduce of the step's loss");
    char what[96];
    snprintf(what, sizeof what, "the all-reduce of the loss (step %llu)",
             (unsigned long long)c->step);
    QT_TRY(wait_request(c, &r, what, c->timeout_s));
    if (op == QT_DIST_AVG)
        for (size_t i = 0; i < n; i++)
            v[i] /= (double)c->size;
    return QT_OK;
}

static qt_status mpi_allgather_host(qt_comm *c, double *v, size_t n) {
    mpi_ctx *x = c->ctx;
    MPI_Request r;
    QT_CHECK_MPI(
        c, MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, v, (int)n, MPI_DOUBLE, x->comm, &r),
        "an all-gather of partial norms");
    char what[96];
    snprintf(what, sizeof what, "the all-gather of the gradient norm (step %llu)",
             (unsigned long long)c->step);
    return wait_request(c, &r, what, c->timeout_s);
}

static qt_status mpi_barrier(qt_comm *c, double timeout_s, const char *what) {
    mpi_ctx *x = c->ctx;
    MPI_Request r;
    QT_CHECK_MPI(c, MPI_Ibarrier(x->comm, &r), what);
    return wait_request(c, &r, what, timeout_s > 0 ? timeout_s : c->timeout_s);
}

static void mpi_abort(qt_comm *c, int code) {
    (void)c;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); // MPI_Abort does not return; in case it does
}

static void mpi_destroy(qt_comm *c) {
    mpi_ctx *x = c->ctx;
    if (!x) return;
    for (int i = 0; i < x->n_slots; i++) {
        free(x->slots[i].icounts);
        free(x->slots[i].idispls);
    }
    free(x->slots);
    for (int k = 0; k < 2; k++) {
        if (x->sum16[k] != MPI_OP_NULL) MPI_Op_free(&x->sum16[k]);
        if (x->max16[k] != MPI_OP_NULL) MPI_Op_free(&x->max16[k]);
    }
    if (x->ctl != MPI_COMM_NULL) MPI_Comm_free(&x->ctl);
    if (x->comm != MPI_COMM_NULL) MPI_Comm_free(&x->comm);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (x->initialized_here && !finalized) MPI_Finalize();
    free(x);
    c->ctx = NULL;
}

static const qt_comm_ops mpi_ops = {
    .allreduce = mpi_allreduce,
    .reduce_scatter = mpi_reduce_scatter,
    .allgather = mpi_allgather,
    .broadcast = mpi_broadcast,
    .wait = mpi_wait,
    .progress = mpi_progress,
    .allreduce_host = mpi_allreduce_host,
    .allgather_host = mpi_allgather_host,
    .barrier = mpi_barrier,
    .abort = mpi_abort,
    .destroy = mpi_destroy,
};

qt_status qt_comm_mpi_init(qt_comm *c, double timeout_s) {
    if (!c) return qt_error(QT_ERR_ARG, "qt_comm_mpi_init: NULL communicator");
    memset(c, 0, sizeof *c);
    mpi_ctx *x = calloc(1, sizeof *x);
    if (!x) return qt_error(QT_ERR_OOM, "cannot allocate the MPI communicator");
    x->comm = x->ctl = MPI_COMM_NULL;
    for (int k = 0; k < 2; k++)
        x->sum16[k] = x->max16[k] = MPI_OP_NULL;
    c->ops = &mpi_ops;
    c->ctx = x;
    c->name = "mpi";
    c->timeout_s = timeout_s > 0 ? timeout_s : 60.0;
    c->rank = 0;
    c->size = 1;
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            free(x);
            memset(c, 0, sizeof *c);
            return qt_error(QT_ERR_COMM,
                            "MPI_Init_thread failed (code %d): launch with mpirun "
                            "(or srun --mpi=pmix) where MPI is installed",
                            rc);
        }
        x->initialized_here = 1;
    }
    qt_status st = QT_OK;
    // Errors come back as codes (checked), not as MPI's default abort.
    if (MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
        MPI_Comm_dup(MPI_COMM_WORLD, &x->comm) != MPI_SUCCESS ||
        MPI_Comm_dup(MPI_COMM_WORLD, &x->ctl) != MPI_SUCCESS)
        st = qt_error(QT_ERR_COMM, "cannot set up MPI_COMM_WORLD's duplicates; check the MPI "
                                   "installation (mpirun --version)");
    if (st == QT_OK) {
        MPI_Comm_set_errhandler(x->comm, MPI_ERRORS_RETURN);
        MPI_Comm_set_errhandler(x->ctl, MPI_ERRORS_RETURN);
        MPI_Comm_rank(x->comm, &c->rank);
        MPI_Comm_size(x->comm, &c->size);
        x->ping_out = x->pong_out = c->rank;
        // Local rank: the ranks sharing this node (MPI-3 shared-memory split).
        MPI_Comm node;
        if (MPI_Comm_split_type(x->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) ==
            MPI_SUCCESS) {
            MPI_Comm_rank(node, &c->local_rank);
            MPI_Comm_free(&node);
        }
        MPI_User_function *fns[2][2] = {{op_sum_f16, op_max_f16}, {op_sum_bf16, op_max_bf16}};
        for (int k = 0; k < 2 && st == QT_OK; k++)
            if (MPI_Op_create(fns[k][0], 1, &x->sum16[k]) != MPI_SUCCESS ||
                MPI_Op_create(fns[k][1], 1, &x->max16[k]) != MPI_SUCCESS)
                st = qt_error(QT_ERR_COMM, "MPI_Op_create failed for the 16-bit reductions");
    }
    if (st != QT_OK) qt_comm_free(c);
    return st;
}

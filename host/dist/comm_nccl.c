// comm_nccl.c: the CUDA communicator (qtrain/dist.h) for the CUDA backend. Collectives run on
// device memory in the training dtype, on a communication stream of their own: issuing one
// records an event on the backend's stream and makes the communication stream wait for it, so
// the collective starts once the kernels queued before it (the bucket's gradients) are done,
// while the backward's next kernels run; waiting makes the backend's stream wait for the
// collective's own event, so the host never synchronizes in between. A wait also polls that
// event from the host against dist.timeout_s: the optimizer needs the gradients' norm on the
// host right after anyway, and a rank that died must not hang the others.
//
// Two builds of this file:
//  - real (QT_HAVE_NCCL: the toolkit and libnccl): one NCCL communicator, created non-blocking
//    (ncclCommInitRankConfig with blocking = 0) so that no host thread ever blocks inside NCCL:
//    every call is settled by polling ncclCommGetAsyncError against the timeout, and a timeout
//    or an asynchronous error aborts the communicator (ncclCommAbort) and names the call and
//    the rank. Unequal shards (the last ZeRO-1 shard is shorter) are reduce-scattered as a
//    group of ncclReduce and all-gathered as a group of ncclBroadcast, one per owner. The NCCL
//    id travels over the bootstrap communicator (MPI, under mpirun or srun --mpi=pmix) or a
//    shared-file rendezvous (QT_RDZV_FILE, e.g. srun without PMI, torchrun-style launches).
//  - emulated (QT_CUEMU, tests/cuemu): NCCL cannot run without a driver (DESIGN.md), so the
//    same streams and events surround a host transport (the MPI communicator) that reduces on
//    the CPU: the emulator's device memory is host memory and every emulated operation has
//    completed when its call returns. CI runs the CUDA data-parallel path this way.
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifndef QT_CUEMU
#include <nccl.h>
#endif

#include "base/cuda_check.h"
#include "dist_internal.h"
#include "qtrain/backend.h"
#include "qtrain/dist.h"

// The NCCL id rendezvous waits longer than a collective: ranks start at different times.
#define RDZV_MIN_WAIT_S 300.0

typedef struct {
    cudaEvent_t ready; // recorded on the backend's stream when the collective is issued
    cudaEvent_t done;  // recorded on the communication stream after it
    int active;
    qt_dist_req inner; // emulated: the host transport's request
} nccl_slot;

typedef struct {
    cudaStream_t compute; // the backend's stream
    cudaStream_t stream;  // the collectives'
    qt_comm *host;        // the bootstrap (and, emulated, the transport); not owned
    nccl_slot *slots;
    int n_slots;
    void *scratch; // device memory for host values (broadcast of host memory, scalars)
    size_t scratch_bytes;
#ifndef QT_CUEMU
    ncclComm_t nccl;
    int aborted;
#endif
} nccl_ctx;

#ifndef QT_CUEMU
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(void) {
    struct timespec ts = {0, 100000L};
    nanosleep(&ts, NULL);
}

// ---- the real build: NCCL calls, settled and checked ---------------------------------------

static ncclDataType_t nccl_type(qt_dtype dt) {
    return dt == QT_DTYPE_F32 ? ncclFloat32 : dt == QT_DTYPE_F16 ? ncclFloat16 : ncclBfloat16;
}

static ncclRedOp_t nccl_op(qt_dist_op op) {
    return op == QT_DIST_AVG ? ncclAvg : op == QT_DIST_MAX ? ncclMax : ncclSum;
}

static void nccl_abort(qt_comm *c) {
    nccl_ctx *x = c->ctx;
    if (x->nccl && !x->aborted) {
        ncclCommAbort(x->nccl);
        x->aborted = 1;
    }
}

// After `what` timed out: the bootstrap communicator (MPI) names the ranks that do not answer;
// NCCL itself cannot. The NCCL communicator is aborted either way.
static qt_status nccl_timeout(qt_comm *c, const char *what, double waited) {
    nccl_ctx *x = c->ctx;
    nccl_abort(c);
    if (x->host && x->host->size == c->size) {
        qt_status st = qt_comm_barrier(x->host, 1.0, what);
        if (st != QT_OK) return st; // names the lost ranks
    }
    return qt_error(QT_ERR_COMM,
                    "rank %d of %d: %s did not complete within %.0f s (dist.timeout_s); the NCCL "
                    "communicator was aborted. A rank has died or hangs: its own log or the "
                    "launcher's names it; if it is only slower, raise dist.timeout_s",
                    c->rank, c->size, what, waited);
}

// A call's result, settled: ncclInProgress (a non-blocking communicator) is polled until it
// resolves or the timeout passes. Failures name the call, the rank and what to do.
static qt_status nccl_settle(qt_comm *c, ncclResult_t r, const char *call, const char *what) {
    nccl_ctx *x = c->ctx;
    double t0 = now_s();
    while (r == ncclInProgress) {
        if (now_s() - t0 > c->timeout_s) return nccl_timeout(c, what, now_s() - t0);
        nap();
        if (ncclCommGetAsyncError(x->nccl, &r) != ncclSuccess) break;
    }
    if (r == ncclSuccess) return QT_OK;
    const char *detail = x->nccl ? ncclGetLastError(x->nccl) : "";
    nccl_abort(c);
    return qt_error(QT_ERR_COMM,
                    "rank %d of %d: %s failed during %s: %s%s%s; the NCCL communicator was "
                    "aborted. Check the other ranks' messages; NCCL_DEBUG=WARN shows more",
                    c->rank, c->size, call, what, ncclGetErrorString(r), *detail ? ": " : "",
                    detail);
}

#define QT_CHECK_NCCL(c, call, what) QT_TRY(nccl_settle((c), (call), #call, (what)))

// Polls event `ev` (on the communication stream) against the timeout, watching the NCCL
// communicator's asynchronous error state meanwhile.
static qt_status poll_event(qt_comm *c, cudaEvent_t ev, const char *what, double timeout_s) {
    nccl_ctx *x = c->ctx;
    double t0 = now_s();
    for (unsigned spins = 0;; spins++) {
        cudaError_t e = cudaEventQuery(ev);
        if (e == cudaSuccess) return QT_OK;
        if (e != cudaErrorNotReady) QT_CHECK_CUDA(e);
        // "Not ready" is an answer, not an error: never leave it for the next launch check.
        if (cudaPeekAtLastError() == cudaErrorNotReady) (void)cudaGetLastError();
        if ((spins & 255) == 0) {
            ncclResult_t r = ncclSuccess;
            if (ncclCommGetAsyncError(x->nccl, &r) != ncclSuccess ||
                (r != ncclSuccess && r != ncclInProgress))
                return nccl_settle(c, r, "ncclCommGetAsyncError", what);
            double waited = now_s() - t0;
            if (waited > timeout_s) return nccl_timeout(c, what, waited);
        }
        if (spins > 1000) nap();
    }
}

#else // QT_CUEMU

static qt_status poll_event(qt_comm *c, cudaEvent_t ev, const char *what, double timeout_s) {
    (void)c, (void)what, (void)timeout_s;
    QT_CHECK_CUDA(cudaEventSynchronize(ev)); // an emulated operation is complete at return
    return QT_OK;
}

#endif

// ---- requests --------------------------------------------------------------------------------

static qt_status get_slot(qt_comm *c, qt_dist_req *id) {
    nccl_ctx *x = c->ctx;
    for (int i = 0; i < x->n_slots; i++)
        if (!x->slots[i].active) {
            *id = i;
            return QT_OK;
        }
    int first = x->n_slots, n = first ? 2 * first : 16;
    nccl_slot *s = realloc(x->slots, (size_t)n * sizeof *s);
    if (!s) return qt_error(QT_ERR_OOM, "rank %d: cannot grow the request table", c->rank);
    x->slots = s;
    for (int i = first; i < n; i++) {
        memset(&s[i], 0, sizeof s[i]);
        QT_CHECK_CUDA(cudaEventCreateWithFlags(&s[i].ready, cudaEventDisableTiming));
        QT_CHECK_CUDA(cudaEventCreateWithFlags(&s[i].done, cudaEventDisableTiming));
        x->n_slots = i + 1;
    }
    *id = first;
    return QT_OK;
}

// The communication stream waits for the backend's work queued so far.
static qt_status begin(qt_comm *c, nccl_slot *s) {
    nccl_ctx *x = c->ctx;
    QT_CHECK_CUDA(cudaEventRecord(s->ready, x->compute));
    QT_CHECK_CUDA(cudaStreamWaitEvent(x->stream, s->ready, 0));
    s->inner = -1;
    return QT_OK;
}

static qt_status finish_issue(qt_comm *c, qt_dist_req id, qt_dist_req *req, const char *what);

static qt_status nccl_wait(qt_comm *c, qt_dist_req id, const char *what) {
    nccl_ctx *x = c->ctx;
    if (id < 0 || id >= x->n_slots || !x->slots[id].active)
        return qt_error(QT_ERR_INTERNAL, "rank %d: wait on request %d, which is not in flight",
                        c->rank, id);
    nccl_slot *s = &x->slots[id];
    s->active = 0;
#ifdef QT_CUEMU
    QT_TRY(qt_comm_wait(x->host, s->inner, what));
#endif
    QT_TRY(poll_event(c, s->done, what, c->timeout_s));
    // Later kernels of the backend read the reduced buffer: order them after it (on a GPU
    // this is what matters; the host poll above is the watchdog).
    QT_CHECK_CUDA(cudaStreamWaitEvent(x->compute, s->done, 0));
    return QT_OK;
}

static qt_status finish_issue(qt_comm *c, qt_dist_req id, qt_dist_req *req, const char *what) {
    nccl_ctx *x = c->ctx;
    nccl_slot *s = &x->slots[id];
    QT_CHECK_CUDA(cudaEventRecord(s->done, x->stream));
    s->active = 1;
    if (req) {
        *req = id;
        return QT_OK;
    }
    return nccl_wait(c, id, what);
}

// ---- collectives -----------------------------------------------------------------------------

#ifndef QT_CUEMU
static int equal_counts(const qt_comm *c, const size_t *counts) {
    for (int r = 1; r < c->size; r++)
        if (counts[r] != counts[0]) return 0;
    return 1;
}

static size_t displ(const size_t *counts, int r) {
    size_t at = 0;
    for (int i = 0; i < r; i++)
        at += counts[i];
    return at;
}
#endif

static qt_status nccl_allreduce(qt_comm *c, void *buf, size_t n, qt_dtype dt, qt_dist_op op,
                                qt_dist_req *req) {
    nccl_ctx *x = c->ctx;
    qt_dist_req id;
    QT_TRY(get_slot(c, &id));
    nccl_slot *s = &x->slots[id];
    QT_TRY(begin(c, s));
#ifdef QT_CUEMU
    QT_TRY(qt_comm_allreduce(x->host, buf, n, dt, op, &s->inner));
#else
    QT_CHECK_NCCL(c, ncclAllReduce(buf, buf, n, nccl_type(dt), nccl_op(op), x->nccl, x->stream),
                  "an all-reduce");
#endif
    return finish_issue(c, id, req, "an all-reduce");
}

static qt_status nccl_reduce_scatter(qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                                     qt_dist_op op, qt_dist_req *req) {
    nccl_ctx *x = c->ctx;
    qt_dist_req id;
    QT_TRY(get_slot(c, &id));
    nccl_slot *s = &x->slots[id];
    QT_TRY(begin(c, s));
#ifdef QT_CUEMU
    QT_TRY(qt_comm_reduce_scatter(x->host, buf, counts, dt, op, &s->inner));
#else
    size_t es = qt_dtype_size(dt);
    if (equal_counts(c, counts)) {
        // In place: NCCL's receive buffer is this rank's slice of the send buffer.
        QT_CHECK_NCCL(c,
                      ncclReduceScatter(buf, (char *)buf + displ(counts, c->rank) * es, counts[0],
                                        nccl_type(dt), nccl_op(op), x->nccl, x->stream),
                      "a reduce-scatter");
    } else {
        QT_CHECK_NCCL(c, ncclGroupStart(), "a reduce-scatter");
        for (int r = 0; r < c->size; r++) {
            if (!counts[r]) continue;
            void *p = (char *)buf + displ(counts, r) * es;
            ncclResult_t e =
                ncclReduce(p, p, counts[r], nccl_type(dt), nccl_op(op), r, x->nccl, x->stream);
            if (e != ncclSuccess && e != ncclInProgress)
                QT_CHECK_NCCL(c, e, "a reduce-scatter (ncclReduce to one owner)");
        }
        QT_CHECK_NCCL(c, ncclGroupEnd(), "a reduce-scatter");
    }
#endif
    return finish_issue(c, id, req, "a reduce-scatter");
}

static qt_status nccl_allgather(qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                                qt_dist_req *req) {
    nccl_ctx *x = c->ctx;
    qt_dist_req id;
    QT_TRY(get_slot(c, &id));
    nccl_slot *s = &x->slots[id];
    QT_TRY(begin(c, s));
#ifdef QT_CUEMU
    QT_TRY(qt_comm_allgather(x->host, buf, counts, dt, &s->inner));
#else
    size_t es = qt_dtype_size(dt);
    if (equal_counts(c, counts)) {
        QT_CHECK_NCCL(c,
                      ncclAllGather((char *)buf + displ(counts, c->rank) * es, buf, counts[0],
                                    nccl_type(dt), x->nccl, x->stream),
                      "an all-gather");
    } else {
        QT_CHECK_NCCL(c, ncclGroupStart(), "an all-gather");
        for (int r = 0; r < c->size; r++) {
            if (!counts[r]) continue;
            void *p = (char *)buf + displ(counts, r) * es;
            ncclResult_t e = ncclBroadcast(p, p, counts[r], nccl_type(dt), r, x->nccl, x->stream);
            if (e != ncclSuccess && e != ncclInProgress)
                QT_CHECK_NCCL(c, e, "an all-gather (ncclBroadcast from one owner)");
        }
        QT_CHECK_NCCL(c, ncclGroupEnd(), "an all-gather");
    }
#endif
    return finish_issue(c, id, req, "an all-gather");
}

#ifndef QT_CUEMU
// Device scratch of at least `bytes` (host values travel through it).
static qt_status scratch(qt_comm *c, size_t bytes) {
    nccl_ctx *x = c->ctx;
    if (x->scratch_bytes >= bytes) return QT_OK;
    if (x->scratch) QT_CHECK_CUDA(cudaFree(x->scratch));
    x->scratch = NULL;
    x->scratch_bytes = 0;
    QT_CHECK_CUDA(cudaMalloc(&x->scratch, bytes));
    x->scratch_bytes = bytes;
    return QT_OK;
}

// host -> scratch -> (call) -> host, on the communication stream, polled against the timeout.
static qt_status host_roundtrip(qt_comm *c, void *host, size_t in_bytes, size_t out_bytes,
                                size_t in_offset, const char *what,
                                qt_status (*call)(qt_comm *, void *arg), void *arg) {
    nccl_ctx *x = c->ctx;
    QT_TRY(scratch(c, out_bytes));
    QT_CHECK_CUDA(cudaMemcpyAsync((char *)x->scratch + in_offset, (char *)host + in_offset,
                                  in_bytes, cudaMemcpyHostToDevice, x->stream));
    QT_TRY(call(c, arg));
    QT_CHECK_CUDA(cudaMemcpyAsync(host, x->scratch, out_bytes, cudaMemcpyDeviceToHost, x->stream));
    qt_dist_req id;
    QT_TRY(get_slot(c, &id));
    QT_CHECK_CUDA(cudaEventRecord(x->slots[id].done, x->stream));
    return poll_event(c, x->slots[id].done, what, c->timeout_s);
}

typedef struct {
    size_t n;
    int root;
    ncclRedOp_t op;
} host_args;

static qt_status call_bcast(qt_comm *c, void *arg) {
    nccl_ctx *x = c->ctx;
    host_args *a = arg;
    QT_CHECK_NCCL(
        c, ncclBroadcast(x->scratch, x->scratch, a->n, ncclUint8, a->root, x->nccl, x->stream),
        "a broadcast");
    return QT_OK;
}

static qt_status call_allreduce_f64(qt_comm *c, void *arg) {
    nccl_ctx *x = c->ctx;
    host_args *a = arg;
    QT_CHECK_NCCL(
        c, ncclAllReduce(x->scratch, x->scratch, a->n, ncclFloat64, a->op, x->nccl, x->stream),
        "an all-reduce of host values");
    return QT_OK;
}

static qt_status call_allgather_f64(qt_comm *c, void *arg) {
    nccl_ctx *x = c->ctx;
    host_args *a = arg;
    QT_CHECK_NCCL(c,
                  ncclAllGather((double *)x->scratch + (size_t)c->rank * a->n, x->scratch, a->n,
                                ncclFloat64, x->nccl, x->stream),
                  "an all-gather of host values");
    return QT_OK;
}
#endif

static qt_status nccl_broadcast(qt_comm *c, void *buf, size_t bytes, int root, int host) {
    nccl_ctx *x = c->ctx;
#ifdef QT_CUEMU
    (void)host; // emulated device memory is host memory
    return qt_comm_broadcast(x->host, buf, bytes, root, 1);
#else
    host_args a = {bytes, root, ncclSum};
    if (host) return host_roundtrip(c, buf, bytes, bytes, 0, "a broadcast", call_bcast, &a);
    qt_dist_req id;
    QT_TRY(get_slot(c, &id));
    QT_TRY(begin(c, &x->slots[id]));
    QT_CHECK_NCCL(c, ncclBroadcast(buf, buf, bytes, ncclUint8, root, x->nccl, x->stream),
                  "a broadcast of the parameters");
    return finish_issue(c, id, NULL, "a broadcast of the parameters");
#endif
}

static qt_status nccl_allreduce_host(qt_comm *c, double *v, size_t n, qt_dist_op op) {
#ifdef QT_CUEMU
    nccl_ctx *x = c->ctx;
    x->host->step = c->step;
    return qt_comm_allreduce_host(x->host, v, n, op);
#else
    host_args a = {n, 0, nccl_op(op)};
    char what[96];
    snprintf(what, sizeof what, "the all-reduce of the loss (step %llu)",
             (unsigned long long)c->step);
    return host_roundtrip(c, v, n * sizeof(double), n * sizeof(double), 0, what, call_allreduce_f64,
                          &a);
#endif
}

static qt_status nccl_allgather_host(qt_comm *c, double *v, size_t n) {
#ifdef QT_CUEMU
    nccl_ctx *x = c->ctx;
    x->host->step = c->step;
    return qt_comm_allgather_host(x->host, v, n);
#else
    host_args a = {n, 0, ncclSum};
    size_t row = n * sizeof(double);
    return host_roundtrip(c, v, row, (size_t)c->size * row, (size_t)c->rank * row,
                          "an all-gather of partial norms", call_allgather_f64, &a);
#endif
}

static qt_status nccl_barrier(qt_comm *c, double timeout_s, const char *what) {
    nccl_ctx *x = c->ctx;
#ifdef QT_CUEMU
    return qt_comm_barrier(x->host, timeout_s, what);
#else
    // One float all-reduced on the device, polled with this barrier's own timeout.
    QT_TRY(scratch(c, sizeof(double)));
    QT_CHECK_NCCL(
        c, ncclAllReduce(x->scratch, x->scratch, 1, ncclFloat32, ncclSum, x->nccl, x->stream),
        what);
    qt_dist_req id;
    QT_TRY(get_slot(c, &id));
    QT_CHECK_CUDA(cudaEventRecord(x->slots[id].done, x->stream));
    return poll_event(c, x->slots[id].done, what, timeout_s > 0 ? timeout_s : c->timeout_s);
#endif
}

static qt_status nccl_progress(qt_comm *c) {
#ifdef QT_CUEMU
    nccl_ctx *x = c->ctx;
    return qt_comm_progress(x->host);
#else
    (void)c; // NCCL progresses on the device by itself
    return QT_OK;
#endif
}

static void nccl_abort_job(qt_comm *c, int code) {
    nccl_ctx *x = c->ctx;
#ifndef QT_CUEMU
    nccl_abort(c);
#endif
    if (x && x->host && x->host->size > 1) qt_comm_abort(x->host, code);
    fflush(stderr);
    exit(code);
}

static void nccl_destroy(qt_comm *c) {
    nccl_ctx *x = c->ctx;
    if (!x) return;
#ifndef QT_CUEMU
    if (x->nccl) {
        if (x->aborted) {
            // ncclCommAbort released it.
        } else {
            // Finalize flushes pending work (polled: the communicator is non-blocking).
            ncclResult_t r = ncclCommFinalize(x->nccl);
            double t0 = now_s();
            while (r == ncclInProgress && now_s() - t0 < c->timeout_s) {
                nap();
                if (ncclCommGetAsyncError(x->nccl, &r) != ncclSuccess) break;
            }
            if (r == ncclSuccess)
                ncclCommDestroy(x->nccl);
            else
                ncclCommAbort(x->nccl);
        }
    }
#endif
    for (int i = 0; i < x->n_slots; i++) {
        cudaEventDestroy(x->slots[i].ready);
        cudaEventDestroy(x->slots[i].done);
    }
    free(x->slots);
    if (x->scratch) cudaFree(x->scratch);
    if (x->stream) cudaStreamDestroy(x->stream);
    free(x);
    c->ctx = NULL;
}

static const qt_comm_ops nccl_ops = {
    .allreduce = nccl_allreduce,
    .reduce_scatter = nccl_reduce_scatter,
    .allgather = nccl_allgather,
    .broadcast = nccl_broadcast,
    .wait = nccl_wait,
    .progress = nccl_progress,
    .allreduce_host = nccl_allreduce_host,
    .allgather_host = nccl_allgather_host,
    .barrier = nccl_barrier,
    .abort = nccl_abort_job,
    .destroy = nccl_destroy,
};

qt_status qt_comm_nccl_init(qt_comm *c, qt_backend *be, const qt_dist_launch *l, qt_comm *bootstrap,
                            double timeout_s) {
    if (!c || !be || !l) return qt_error(QT_ERR_ARG, "qt_comm_nccl_init: NULL argument");
    memset(c, 0, sizeof *c);
    void *compute = qt_backend_cuda_stream(be);
    if (!compute)
        return qt_error(QT_ERR_ARG, "the NCCL communicator needs the CUDA backend, not %s",
                        be->name);
    if (bootstrap && (bootstrap->size != l->size || bootstrap->rank != l->rank))
        return qt_error(QT_ERR_ARG,
                        "the bootstrap communicator is rank %d of %d, the launch "
                        "rank %d of %d",
                        bootstrap->rank, bootstrap->size, l->rank, l->size);
#ifdef QT_CUEMU
    if (!bootstrap)
        return qt_error(QT_ERR_UNSUPPORTED, "the emulated NCCL communicator reduces through "
                                            "MPI: launch with mpirun");
#endif
    nccl_ctx *x = calloc(1, sizeof *x);
    if (!x) return qt_error(QT_ERR_OOM, "cannot allocate the NCCL communicator");
    c->ops = &nccl_ops;
    c->ctx = x;
    c->name = "nccl";
    c->rank = l->rank;
    c->size = l->size;
    c->local_rank = l->local_rank;
    c->device_memory = 1;
    c->timeout_s = timeout_s > 0 ? timeout_s : 60.0;
    x->compute = (cudaStream_t)compute;
    x->host = bootstrap;
    qt_status st = QT_OK;
    cudaError_t ce = cudaStreamCreateWithFlags(&x->stream, cudaStreamNonBlocking);
    if (ce != cudaSuccess)
        st = qt_error(QT_ERR_CUDA, "rank %d: cudaStreamCreateWithFlags failed: %s", c->rank,
                      cudaGetErrorString(ce));
#ifdef QT_CUEMU
    if (st == QT_OK) c->name = "nccl (emulated over mpi)";
#else
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (st == QT_OK && c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess)
            st = qt_error(QT_ERR_COMM,
                          "rank 0: ncclGetUniqueId failed: %s; check the network "
                          "interfaces NCCL may use (NCCL_SOCKET_IFNAME)",
                          ncclGetErrorString(r));
    }
    double rdzv = timeout_s > RDZV_MIN_WAIT_S ? timeout_s : RDZV_MIN_WAIT_S;
    if (bootstrap) {
        // Every rank reaches the broadcast, rank 0 with its status.
        st = qt_comm_agree(bootstrap, st, rdzv, "to create the NCCL id");
        if (st == QT_OK) st = qt_comm_broadcast(bootstrap, &id, sizeof id, 0, 1);
    } else if (st == QT_OK) {
        // Without MPI: a file every rank sees, else TCP to rank 0 (dist_internal.h).
        if (l->rdzv_file[0])
            st = qt_rdzv_file(l->rdzv_file, l->job_tag, l->rank, l->size, &id, sizeof id, rdzv);
        else if (l->master_addr[0] && l->rdzv_port)
            st = qt_rdzv_tcp(l->master_addr, l->rdzv_port, l->job_tag, l->rank, l->size, &id,
                             sizeof id, rdzv);
        else
            st = qt_error(QT_ERR_UNSUPPORTED,
                          "rank %d of %d: without MPI the NCCL id needs a rendezvous: set "
                          "QT_RDZV_FILE to a path every rank sees, or MASTER_ADDR and "
                          "MASTER_PORT (or QT_RDZV_PORT) to a free port on rank 0's machine; or "
                          "launch with mpirun / srun --mpi=pmix",
                          l->rank, l->size);
    }
    if (st == QT_OK) {
        ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
        config.blocking = 0;
        ncclResult_t r = ncclCommInitRankConfig(&x->nccl, c->size, id, c->rank, &config);
        // Creation may outlast a collective: every rank has to arrive.
        double keep = c->timeout_s;
        c->timeout_s = rdzv;
        st = nccl_settle(c, r, "ncclCommInitRankConfig", "creating the NCCL communicator");
        c->timeout_s = keep;
    }
    if (st == QT_OK && !bootstrap && c->rank == 0 && l->rdzv_file[0]) remove(l->rdzv_file);
#endif
    if (st != QT_OK) qt_comm_free(c);
    return st;
}

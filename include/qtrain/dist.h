// qtrain/dist.h: data-parallel training: how a process learns its rank (the launch), the
// communicator interface its collectives go through (MPI, NCCL, or the single process), and
// the gradient synchronizer that reduces gradients in buckets while the backward runs, with
// ZeRO-1 shards of the optimizer state.
//
// One process per device. Every rank holds the whole model and reads its own slice of every
// global batch (global batch = N x train.batch_size x train.grad_accum sequences); after the
// backward the gradients are averaged across ranks, so every rank takes the same optimizer
// step and the parameters stay bit-identical. The runtime talks to a qt_comm the way it talks
// to a qt_backend: a table of function pointers plus a context; the model never sees it (it
// only reports, through qt_model.grads_ready, which gradients are final).
//
// Collectives run on buffers of the backend the communicator was opened for (host memory for
// the CPU backend and MPI, device memory for CUDA and NCCL), in the training dtype. Every wait
// is bounded by the communicator's timeout: a rank that crashed, was killed or hangs makes the
// others fail with QT_ERR_COMM naming it, never a silent hang.
#ifndef QTRAIN_DIST_H
#define QTRAIN_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- launch --------------------------------------------------------------------------------

typedef enum {
    QT_LAUNCH_NONE = 0, // no launcher variables: one process, exactly as without this module
    QT_LAUNCH_MPI,      // mpirun / mpiexec (OMPI_COMM_WORLD_*, or PMI_RANK/PMI_SIZE)
    QT_LAUNCH_SLURM,    // srun (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID)
    QT_LAUNCH_TORCHRUN, // RANK, WORLD_SIZE, LOCAL_RANK (torchrun and other launchers)
} qt_launch_kind;

typedef struct {
    qt_launch_kind kind;
    int rank, size;             // this process among all: 0 <= rank < size
    int local_rank, local_size; // among the processes of this machine; the CUDA device index
    int has_pmi;                // an MPI process manager is present (mpirun, srun --mpi=pmix),
                                // so MPI_Init can join the job
    char master_addr[256];      // MASTER_ADDR (torchrun); "" when unset
    int master_port;            // MASTER_PORT; 0 when unset
    int rdzv_port;              // the TCP rendezvous of the NCCL id: QT_RDZV_PORT, else
                                // MASTER_PORT (torchrun's own store holds MASTER_PORT: set
                                // QT_RDZV_PORT there); 0 when neither is set
    char rdzv_file[1024];       // QT_RDZV_FILE: a path on a filesystem every rank sees, for the
                                // shared-file rendezvous of the NCCL id; "" when unset
    char job_tag[128];          // tags the rendezvous file so a stale one is never read:
                                // SLURM_JOB_ID.SLURM_STEP_ID, TORCHELASTIC_RUN_ID or QT_RDZV_TAG
} qt_dist_launch;

// Reads the launcher's environment through `get` (getenv, or a table in the tests), in this
// order: Open MPI's OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE} or MPICH's
// PMI_{RANK,SIZE} (+ MPI_LOCALRANKID); else Slurm's SLURM_PROCID with SLURM_STEP_NUM_TASKS
// (set by srun, not in the batch script itself), SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE;
// else RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT. None of them:
// QT_LAUNCH_NONE, rank 0 of 1. QT_ERR_ARG naming the variable for a value that does not parse
// or is out of range (RANK=3 with WORLD_SIZE=2).
qt_status qt_dist_launch_detect(qt_dist_launch *l, const char *(*get)(const char *name));
// A one-line description ("mpirun: rank 1 of 2, local rank 1").
void qt_dist_launch_describe(const qt_dist_launch *l, char *buf, size_t len);

// ---- the communicator ----------------------------------------------------------------------

typedef enum { QT_DIST_SUM = 0, QT_DIST_AVG, QT_DIST_MAX } qt_dist_op;

// A non-blocking collective in flight: an index into the communicator's table.
typedef int qt_dist_req;

struct qt_comm;

// Every member is required unless it says optional. Sizes are elements of `dt`; `counts` has
// one entry per rank, and rank r's slice of buf starts at the sum of counts[0..r).
typedef struct qt_comm_ops {
    // In place on buf (n). req == NULL: blocking; else non-blocking, *req until comm_wait, and
    // buf must not be touched before.
    qt_status (*allreduce)(struct qt_comm *c, void *buf, size_t n, qt_dtype dt, qt_dist_op op,
                           qt_dist_req *req);
    // buf (sum(counts)) holds every rank's contribution; on completion this rank's slice holds
    // the reduction (op SUM or AVG) of that slice over all ranks; the other slices are undefined.
    qt_status (*reduce_scatter)(struct qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                                qt_dist_op op, qt_dist_req *req);
    // buf (sum(counts)): on entry this rank's slice holds its data; on completion every slice
    // holds its owner's.
    qt_status (*allgather)(struct qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                           qt_dist_req *req);
    // Blocking: bytes of backend memory (host memory when `host`) from `root` to every rank.
    qt_status (*broadcast)(struct qt_comm *c, void *buf, size_t bytes, int root, int host);
    // Completes req within the timeout; `what` ("allreduce of gradient bucket 3") names it in
    // the error. A req is waited exactly once.
    qt_status (*wait)(struct qt_comm *c, qt_dist_req req, const char *what);
    // Optional: lets the transport progress the collectives in flight without waiting (MPI
    // progresses non-blocking collectives only inside its calls).
    qt_status (*progress)(struct qt_comm *c);
    // Blocking, host memory: n doubles reduced (losses, flags), or gathered: x (size, n) in
    // rank order with this rank's row filled on entry.
    qt_status (*allreduce_host)(struct qt_comm *c, double *x, size_t n, qt_dist_op op);
    qt_status (*allgather_host)(struct qt_comm *c, double *x, size_t n);
    // Every rank arrives, waiting at most timeout_s (<= 0: the communicator's timeout).
    qt_status (*barrier)(struct qt_comm *c, double timeout_s, const char *what);
    // Ends every rank of the job with exit status `code` (after the caller printed why); does
    // not return. Used after an error, so that no rank is left waiting for this one.
    void (*abort)(struct qt_comm *c, int code);
    // Releases the context (a clean shutdown: every rank calls it).
    void (*destroy)(struct qt_comm *c);
} qt_comm_ops;

typedef struct qt_comm {
    const qt_comm_ops *ops;
    void *ctx;        // owned by the implementation
    const char *name; // "single", "mpi", "nccl", "threads"
    int rank, size, local_rank;
    int device_memory; // 1: collectives take CUDA device memory (NCCL); 0: host memory
    double timeout_s;  // a collective not done after this long fails (dist.timeout_s)
    uint64_t step;     // the trainer's step, named in timeout messages
    // Payload bytes handed to collectives so far (what each rank contributes; a ring algorithm
    // moves 2 (N-1)/N of it per rank for an all-reduce, (N-1)/N for a reduce-scatter or an
    // all-gather). Counted by the wrappers below.
    uint64_t bytes_allreduce, bytes_reduce_scatter, bytes_allgather, n_collectives;
    // Seconds spent inside the wrappers below (issuing, and blocked in waits): the
    // communication the computation did not hide.
    double seconds;
} qt_comm;

// World size 1: every collective is the identity (AVG and SUM of one rank), a wait returns at
// once. What a run without a launcher uses.
qt_status qt_comm_single_init(qt_comm *c);
// MPI (host/dist/comm_mpi.c, built only where CMake finds MPI, which defines QT_HAVE_MPI):
// MPI_Init_thread on first use (it joins the job of mpirun or srun), MPI_COMM_WORLD with
// MPI_ERRORS_RETURN, every collective non-blocking and waited by polling against timeout_s.
// Host memory (the CPU backend), any dtype (fp16 and bf16 sum in fp32 and round once).
qt_status qt_comm_mpi_init(qt_comm *c, double timeout_s);
// NCCL (host/dist/comm_nccl.c, built where the CUDA toolkit and libnccl are found, which
// defines QT_HAVE_NCCL for the program): collectives on the CUDA backend `be`'s device memory,
// on a communication stream ordered after be's stream by events. The NCCL id travels through
// `bootstrap` (an open MPI communicator over the same ranks) or, when it is NULL, the
// shared-file rendezvous l->rdzv_file, else a TCP rendezvous at l->master_addr:l->rdzv_port,
// tagged with l->job_tag. The emulated build (tests/cuemu)
// compiles the same file with the reductions done on the CPU by `bootstrap` (required there).
// be and bootstrap must outlive c; free c first.
struct qt_backend;
qt_status qt_comm_nccl_init(qt_comm *c, struct qt_backend *be, const qt_dist_launch *l,
                            qt_comm *bootstrap, double timeout_s);
void qt_comm_free(qt_comm *c);

// The wrappers check their arguments (QT_ERR_ARG naming the call) and count bytes; a world of
// size 1 returns before calling the implementation, so a single process runs no collective.
qt_status qt_comm_allreduce(qt_comm *c, void *buf, size_t n, qt_dtype dt, qt_dist_op op,
                            qt_dist_req *req);
qt_status qt_comm_reduce_scatter(qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                                 qt_dist_op op, qt_dist_req *req);
qt_status qt_comm_allgather(qt_comm *c, void *buf, const size_t *counts, qt_dtype dt,
                            qt_dist_req *req);
qt_status qt_comm_broadcast(qt_comm *c, void *buf, size_t bytes, int root, int host);
qt_status qt_comm_wait(qt_comm *c, qt_dist_req req, const char *what);
qt_status qt_comm_progress(qt_comm *c);
qt_status qt_comm_allreduce_host(qt_comm *c, double *x, size_t n, qt_dist_op op);
qt_status qt_comm_allgather_host(qt_comm *c, double *x, size_t n);
qt_status qt_comm_barrier(qt_comm *c, double timeout_s, const char *what);
void qt_comm_abort(qt_comm *c, int code);
// After a local result `st` of a phase every rank runs (setup, a checkpoint): QT_OK if every
// rank succeeded; else the local error unchanged, or on the ranks that succeeded QT_ERR_COMM
// "rank R failed <what> (its own message says why)". Waits at most timeout_s.
qt_status qt_comm_agree(qt_comm *c, qt_status st, double timeout_s, const char *what);

// ---- the gradient synchronizer -------------------------------------------------------------
//
// The gradient arena is reduced in buckets: contiguous element ranges of at most bucket_bytes,
// cut from the end of the arena, because the backward completes the gradients from the end
// (qt_model.grads_ready reports a falling frontier). A bucket is issued, non-blocking, as soon
// as the frontier passes its start, so its reduction runs while the backward computes the
// layers below. Unsharded: each bucket is all-reduced (AVG). ZeRO-1: the arena is cut into N
// contiguous shards (rank r owns [r S, (r + 1) S), S a multiple of 16 elements, the last one
// shorter) and each bucket is reduce-scattered along the shard boundaries, so that each rank
// ends with the averaged gradients of its shard only; the optimizer updates that shard and
// qt_grad_sync_gather_params all-gathers the parameters.

// One recorded event of a backward (tests and the benchmark): what happened, in order.
typedef enum { QT_SYNC_EV_READY = 0, QT_SYNC_EV_ISSUE, QT_SYNC_EV_WAIT } qt_sync_event;

typedef struct {
    size_t begin, end; // elements of the gradient arena
    qt_dist_req req;
    int issued;
} qt_grad_bucket;

struct qt_model;

typedef struct qt_grad_sync {
    qt_comm *comm;
    struct qt_model *model;
    int zero;                // 1: ZeRO-1 shards
    size_t n;                // elements of the gradient arena (the model's n_params)
    size_t shard;            // S: elements per shard (zero); n when unsharded
    size_t lo, hi;           // this rank's shard [lo, hi); [0, n) when unsharded
    size_t *shard_counts;    // (size) elements of each rank's shard
    size_t *counts;          // (size) scratch: one bucket's reduce-scatter counts
    qt_grad_bucket *buckets; // (n_buckets) in issue order: buckets[0] ends at n
    int n_buckets, next;     // next: the first bucket not issued yet
    int armed;               // a backward is running with the hook set
    char what[96];           // scratch for a wait's name
    // Optional recorder: called on each READY (arg: the frontier), ISSUE and WAIT (arg: the
    // bucket index).
    void (*trace)(void *user, qt_sync_event ev, size_t arg);
    void *trace_user;
} qt_grad_sync;

// Plans the buckets (bucket_bytes 0: one bucket) and, with zero, the shards. comm and model
// must outlive it. QT_ERR_ARG for zero on a model whose parameter arena is not laid out like
// its gradient arena (DQT codes).
qt_status qt_grad_sync_init(qt_grad_sync *s, qt_comm *comm, struct qt_model *model,
                            size_t bucket_bytes, int zero);
void qt_grad_sync_free(qt_grad_sync *s);
// Arms the model's grads_ready hook for the next backward (the last micro-batch of a step:
// the earlier ones only accumulate).
void qt_grad_sync_arm(qt_grad_sync *s);
// After that backward: issues what is left, waits for every bucket, disarms the hook. On
// return the gradients are averaged over the ranks (all of them, or this rank's shard).
qt_status qt_grad_sync_finish(qt_grad_sync *s);
// The global L2 norm of the averaged gradients: the same value on every rank. Unsharded, the
// norm of the whole arena (as qt_grad_norm); ZeRO-1, each rank's shard sum of squares,
// gathered and summed in rank order.
qt_status qt_grad_sync_norm(qt_grad_sync *s, double *norm);
// ZeRO-1, after the optimizer updated this rank's shard: every rank receives every shard of
// the parameters. Unsharded: nothing to do.
qt_status qt_grad_sync_gather_params(qt_grad_sync *s);
// The model's grads_ready callback (what qt_grad_sync_arm installs).
qt_status qt_grad_sync_on_ready(void *sync, size_t offset);

// The shard of rank `rank` when `n` elements are split over `size` ranks: [*lo, *hi).
void qt_dist_shard_range(size_t n, int size, int rank, size_t *lo, size_t *hi);

#ifdef __cplusplus
}
#endif
#endif

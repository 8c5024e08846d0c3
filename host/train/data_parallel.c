// data_parallel.c: the trainer's data-parallel steps; see data_parallel.h and qtrain/dist.h.
//
// Data: a global micro-batch is N x B consecutive windows of the epoch's order (the order
// does not depend on B, qtrain/data.h), rank r takes the r-th B of them, so N ranks of B read
// exactly the windows one process of N x B reads, and the saved position is the global one.
// Checkpoints: one file, written by rank 0 with whole (gathered) optimizer arenas, the same
// file whatever N and whether ZeRO-1 was on; resuming on any N loads it whole and keeps the
// shard (ZeRO-1) or all of it.
#include "data_parallel.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A checkpoint's write and the all-gathers before it take longer than a step's collectives.
#define DP_SLOW_PHASE_FACTOR 10.0

static qt_data_pos advance(qt_data_pos p, uint64_t k, uint64_t windows) {
    uint64_t i = p.index + k;
    p.epoch += i / windows;
    p.index = i % windows;
    return p;
}

qt_status qt_dp_next_batch(qt_dataloader *dl, const qt_comm *c, int B, int *inputs, int *targets) {
    if (!c || c->size == 1) return qt_dataloader_next(dl, inputs, targets);
    uint64_t W = qt_dataloader_num_windows(dl);
    qt_data_pos start = qt_dataloader_tell(dl);
    QT_TRY(qt_dataloader_seek(dl, advance(start, (uint64_t)c->rank * (uint64_t)B, W)));
    QT_TRY(qt_dataloader_next(dl, inputs, targets));
    return qt_dataloader_seek(dl, advance(start, (uint64_t)c->size * (uint64_t)B, W));
}

qt_status qt_dp_optimizer_init(qt_optimizer *opt, const qt_model *m, const qt_grad_sync *s) {
    if (!s || !s->zero) return qt_optimizer_init(opt, m);
    return qt_optimizer_init_shard(opt, m, s->lo, s->hi);
}

qt_status qt_dp_broadcast_params(qt_comm *c, qt_model *m) {
    if (c->size == 1) return QT_OK;
    if (m->n_float_params) QT_TRY(qt_comm_broadcast(c, m->params, m->n_float_params * m->es, 0, 0));
    if (m->n_code_bytes) {
        QT_TRY(qt_comm_broadcast(c, m->codes, m->n_code_bytes, 0, 0));
        QT_TRY(qt_comm_broadcast(c, m->code_scales, (size_t)m->n_tensors * sizeof(float), 0, 1));
    }
    return QT_OK;
}

// dst[at .. at + n) = src[0 .. n), fp32 backend memory, staged through the host (the backend
// has no device-to-device copy; this runs at checkpoints only).
static qt_status copy_f32(const qt_backend *be, float *dst, size_t at, const float *src, size_t n,
                          float *host) {
    if (n == 0) return QT_OK;
    QT_TRY(be->ops->to_host(be->ctx, host, src, n * sizeof(float)));
    return be->ops->to_device(be->ctx, dst + at, host, n * sizeof(float));
}

// full (whole arenas) = every rank's shard of opt, gathered. full is allocated here.
static qt_status gather_optimizer(qt_grad_sync *s, const qt_model *m, const qt_optimizer *opt,
                                  qt_optimizer *full) {
    const qt_backend *be = m->be;
    size_t n = s->n, own = s->hi - s->lo;
    memset(full, 0, sizeof *full);
    full->lo = 0;
    full->hi = n;
    full->step = opt->step;
    float *host = malloc((own ? own : 1) * sizeof(float));
    if (!host) return qt_error(QT_ERR_OOM, "cannot allocate %zu floats for the checkpoint", own);
    qt_status st = be->ops->alloc(be->ctx, (void **)&full->m, n * sizeof(float));
    if (st == QT_OK) st = be->ops->alloc(be->ctx, (void **)&full->v, n * sizeof(float));
    if (st == QT_OK && opt->master)
        st = be->ops->alloc(be->ctx, (void **)&full->master, n * sizeof(float));
    float *parts[3][2] = {{full->m, opt->m}, {full->v, opt->v}, {full->master, opt->master}};
    for (int k = 0; k < 3 && st == QT_OK; k++) {
        if (!parts[k][0]) continue;
        st = copy_f32(be, parts[k][0], s->lo, parts[k][1], own, host);
        if (st == QT_OK)
            st = qt_comm_allgather(s->comm, parts[k][0], s->shard_counts, QT_DTYPE_F32, NULL);
    }
    free(host);
    if (st != QT_OK) qt_optimizer_free(full, m);
    return st;
}

qt_status qt_dp_save(const char *path, qt_grad_sync *s, qt_model *m, const qt_optimizer *opt,
                     const qt_train_progress *progress) {
    qt_comm *c = s->comm;
    double slow = DP_SLOW_PHASE_FACTOR * c->timeout_s;
    qt_optimizer full;
    const qt_optimizer *whole = opt;
    qt_status st = QT_OK;
    if (s->zero) {
        st = gather_optimizer(s, m, opt, &full);
        whole = &full;
    }
    // Every rank took part in the gathers; only rank 0 writes.
    if (st == QT_OK && c->rank == 0) st = qt_train_state_save(path, m, whole, progress);
    if (s->zero && whole == &full && full.m) qt_optimizer_free(&full, m);
    return qt_comm_agree(c, st, slow, "to write the checkpoint");
}

qt_status qt_dp_load(const char *path, const qt_grad_sync *s, qt_model *m, qt_optimizer *opt,
                     qt_train_progress *progress) {
    if (!s || !s->zero) return qt_train_state_load(path, m, opt, progress);
    // The file holds whole arenas: load them, keep this rank's shard.
    qt_optimizer full;
    QT_TRY(qt_optimizer_init(&full, m));
    qt_status st = qt_train_state_load(path, m, &full, progress);
    size_t own = s->hi - s->lo;
    float *host = malloc((own ? own : 1) * sizeof(float));
    if (st == QT_OK && !host) st = qt_error(QT_ERR_OOM, "cannot allocate %zu floats", own);
    const qt_backend *be = m->be;
    float *parts[3][2] = {{opt->m, full.m}, {opt->v, full.v}, {opt->master, full.master}};
    for (int k = 0; k < 3 && st == QT_OK; k++) {
        if (!parts[k][0] || !parts[k][1] || own == 0) continue;
        st = be->ops->to_host(be->ctx, host, parts[k][1] + s->lo, own * sizeof(float));
        if (st == QT_OK) st = be->ops->to_device(be->ctx, parts[k][0], host, own * sizeof(float));
    }
    if (st == QT_OK) opt->step = full.step;
    free(host);
    qt_optimizer_free(&full, m);
    return st;
}

qt_status qt_dp_step(qt_grad_sync *s, qt_optimizer *opt, qt_model *m, float lr, float loss_scale,
                     double *grad_norm, int *skipped, double *step_loss, int *stop) {
    qt_comm *c = s->comm;
    QT_TRY(qt_grad_sync_finish(s));
    // The norm, hence the fp16 overflow decision and the clip factor, is the same on every
    // rank: every rank skips the step or none does.
    double norm = 0.0;
    QT_TRY(qt_grad_sync_norm(s, &norm));
    QT_TRY(qt_optimizer_update(opt, m, lr, loss_scale, norm, grad_norm, skipped));
    // Gathered even after a skip (the shards are then unchanged): every rank issues the same
    // collectives whatever it decided locally, so the ranks can never fall out of step.
    QT_TRY(qt_grad_sync_gather_params(s));
    // One small all-reduce: the mean loss for the log and whether any rank got SIGINT or
    // SIGTERM, so that every rank stops after the same step and exits with the same status
    // (SIGTERM wins when ranks got different signals).
    double x[3] = {*step_loss, *stop == SIGINT ? 1.0 : 0.0, *stop && *stop != SIGINT ? 1.0 : 0.0};
    QT_TRY(qt_comm_allreduce_host(c, x, 3, QT_DIST_SUM));
    *step_loss = x[0] / (double)c->size;
    *stop = x[2] > 0.0 ? SIGTERM : x[1] > 0.0 ? SIGINT : 0;
    return QT_OK;
}

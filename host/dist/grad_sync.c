// grad_sync.c: gradient buckets issued during the backward, ZeRO-1 shards, the global norm;
// the contract is in qtrain/dist.h (the gradient synchronizer).
//
// Why buckets from the end: the model's gradient arena is laid out in table order (embeddings,
// blocks 0..L-1, final norm, LM head) and the backward completes it from the end (head and
// final norm first, then block L-1 down to 0, the embeddings last), reporting the falling
// frontier through qt_model.grads_ready. A bucket [begin, end) is final once the frontier is
// at or below `begin`; issuing it then lets its reduction overlap the backward of the blocks
// below (PyTorch DDP's reverse-order buckets; llm.c reduces per layer the same way).
//
// Why contiguous shards for ZeRO-1: rank r updates elements [r S, (r + 1) S) of the arena,
// so its AdamW moments (and fp32 masters) are one slice, its all-gather one call, and the
// checkpoint gathers whole slices. A bucket crosses at most a few shard boundaries; its
// reduce-scatter counts are its intersections with the shards, in rank order.
#include "qtrain/dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/model.h"

// Shards and buckets start on 16-element (64-byte for fp32) boundaries, as the tensors do.
#define SYNC_ALIGN 16

void qt_dist_shard_range(size_t n, int size, int rank, size_t *lo, size_t *hi) {
    size_t s = QT_CEIL_DIV(n, (size_t)size);
    s = QT_CEIL_DIV(s, SYNC_ALIGN) * SYNC_ALIGN;
    size_t a = (size_t)rank * s, b = a + s;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

static void trace(qt_grad_sync *s, qt_sync_event ev, size_t arg) {
    if (s->trace) s->trace(s->trace_user, ev, arg);
}

qt_status qt_grad_sync_init(qt_grad_sync *s, qt_comm *comm, struct qt_model *model,
                            size_t bucket_bytes, int zero) {
    if (!s || !comm || !model) return qt_error(QT_ERR_ARG, "qt_grad_sync_init: NULL argument");
    memset(s, 0, sizeof *s);
    s->comm = comm;
    s->model = model;
    s->zero = zero && comm->size > 1;
    s->n = model->n_params;
    if (s->zero && model->n_float_params != model->n_params)
        return qt_error(QT_ERR_ARG,
                        "dist.zero = 1 shards the parameter arena like the gradient "
                        "arena, but quant.mode = dqt keeps its block weights as int8 codes "
                        "outside it; use dist.zero = 0 with DQT");
    int N = comm->size;
    s->shard_counts = calloc((size_t)N, sizeof *s->shard_counts);
    s->counts = calloc((size_t)N, sizeof *s->counts);
    if (!s->shard_counts || !s->counts) {
        qt_grad_sync_free(s);
        return qt_error(QT_ERR_OOM, "cannot allocate the shard table of %d ranks", N);
    }
    if (s->zero) {
        for (int r = 0; r < N; r++) {
            size_t a, b;
            qt_dist_shard_range(s->n, N, r, &a, &b);
            s->shard_counts[r] = b - a;
        }
        qt_dist_shard_range(s->n, N, comm->rank, &s->lo, &s->hi);
        s->shard = s->shard_counts[0];
    } else {
        s->lo = 0;
        s->hi = s->n;
        s->shard = s->n;
    }
    // Buckets of `cap` elements from the end; n is a multiple of 16 (every tensor is padded).
    size_t cap = bucket_bytes / model->es;
    cap = cap / SYNC_ALIGN * SYNC_ALIGN;
    if (bucket_bytes == 0 || cap >= s->n) cap = s->n;
    if (cap < SYNC_ALIGN) cap = SYNC_ALIGN;
    s->n_buckets = s->n ? (int)QT_CEIL_DIV(s->n, cap) : 0;
    s->buckets = calloc((size_t)(s->n_buckets ? s->n_buckets : 1), sizeof *s->buckets);
    if (!s->buckets) {
        qt_grad_sync_free(s);
        return qt_error(QT_ERR_OOM, "cannot allocate %d gradient buckets", s->n_buckets);
    }
    size_t end = s->n;
    for (int b = 0; b < s->n_buckets; b++) {
        s->buckets[b].end = end;
        s->buckets[b].begin = end > cap ? end - cap : 0;
        s->buckets[b].req = -1;
        end = s->buckets[b].begin;
    }
    return QT_OK;
}

void qt_grad_sync_free(qt_grad_sync *s) {
    if (!s) return;
    if (s->model && s->armed) {
        s->model->grads_ready = NULL;
        s->model->grads_ready_user = NULL;
    }
    free(s->shard_counts);
    free(s->counts);
    free(s->buckets);
    memset(s, 0, sizeof *s);
}

void qt_grad_sync_arm(qt_grad_sync *s) {
    s->next = 0;
    for (int b = 0; b < s->n_buckets; b++) {
        s->buckets[b].issued = 0;
        s->buckets[b].req = -1;
    }
    s->armed = 1;
    s->model->grads_ready = qt_grad_sync_on_ready;
    s->model->grads_ready_user = s;
}

static qt_status issue(qt_grad_sync *s, int b) {
    qt_grad_bucket *bk = &s->buckets[b];
    qt_model *m = s->model;
    void *base = QT_AT(m->grads, m->es, bk->begin);
    qt_dtype dt = m->be->dtype;
    qt_status st;
    // Recorded before the call: the recorder may read the bucket as it is handed over.
    trace(s, QT_SYNC_EV_ISSUE, (size_t)b);
    if (!s->zero) {
        st = qt_comm_allreduce(s->comm, base, bk->end - bk->begin, dt, QT_DIST_AVG, &bk->req);
    } else {
        // This bucket's intersection with each rank's shard: contiguous, in rank order.
        for (int r = 0; r < s->comm->size; r++) {
            size_t a = (size_t)r * s->shard, z = a + s->shard_counts[r];
            size_t lo = a > bk->begin ? a : bk->begin, hi = z < bk->end ? z : bk->end;
            s->counts[r] = hi > lo ? hi - lo : 0;
        }
        st = qt_comm_reduce_scatter(s->comm, base, s->counts, dt, QT_DIST_AVG, &bk->req);
    }
    if (st != QT_OK) return st;
    bk->issued = 1;
    return QT_OK;
}

qt_status qt_grad_sync_on_ready(void *sync, size_t offset) {
    qt_grad_sync *s = sync;
    trace(s, QT_SYNC_EV_READY, offset);
    while (s->next < s->n_buckets && s->buckets[s->next].begin >= offset) {
        QT_TRY(issue(s, s->next));
        s->next++;
    }
    return qt_comm_progress(s->comm);
}

qt_status qt_grad_sync_finish(qt_grad_sync *s) {
    qt_status st = QT_OK;
    if (s->armed) {
        // A backward reports the frontier 0 last; issue anything left in case it did not.
        while (st == QT_OK && s->next < s->n_buckets)
            st = issue(s, s->next++);
    }
    for (int b = 0; b < s->n_buckets; b++) {
        qt_grad_bucket *bk = &s->buckets[b];
        if (!bk->issued) continue;
        snprintf(s->what, sizeof s->what, "%s of gradient bucket %d of %d (step %llu)",
                 s->zero ? "reduce-scatter" : "all-reduce", b, s->n_buckets,
                 (unsigned long long)s->comm->step);
        qt_status w = qt_comm_wait(s->comm, bk->req, s->what);
        bk->issued = 0;
        bk->req = -1;
        if (st == QT_OK) st = w;
        if (w == QT_OK) trace(s, QT_SYNC_EV_WAIT, (size_t)b);
    }
    s->armed = 0;
    s->model->grads_ready = NULL;
    s->model->grads_ready_user = NULL;
    return st;
}

qt_status qt_grad_sync_norm(qt_grad_sync *s, double *norm) {
    qt_model *m = s->model;
    const qt_backend *be = m->be;
    if (!s->zero) {
        // The whole averaged arena, as qt_grad_norm computes it: identical on every rank.
        double sumsq = 0.0;
        QT_TRY(be->ops->sumsq(be->ctx, &sumsq, m->grads, m->n_params));
        *norm = sqrt(sumsq);
        return QT_OK;
    }
    int N = s->comm->size;
    double *all = calloc((size_t)N, sizeof *all);
    if (!all) return qt_error(QT_ERR_OOM, "cannot allocate %d partial norms", N);
    qt_status st = QT_OK;
    if (s->hi > s->lo)
        st = be->ops->sumsq(be->ctx, &all[s->comm->rank], QT_AT(m->grads, m->es, s->lo),
                            s->hi - s->lo);
    if (st == QT_OK) st = qt_comm_allgather_host(s->comm, all, 1);
    double sum = 0.0;
    for (int r = 0; r < N; r++)
        sum += all[r]; // rank order: the same bits on every rank
    free(all);
    if (st == QT_OK) *norm = sqrt(sum);
    return st;
}

qt_status qt_grad_sync_gather_params(qt_grad_sync *s) {
    if (!s->zero) return QT_OK;
    qt_model *m = s->model;
    return qt_comm_allgather(s->comm, m->params, s->shard_counts, m->be->dtype, NULL);
}

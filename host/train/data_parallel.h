// data_parallel.h: the trainer's data-parallel steps (host/train/data_parallel.c), kept out of
// trainer.c so that its single-process path reads as before: each function here is the plain
// single-process operation when the world has one rank.
#ifndef QTRAIN_HOST_TRAIN_DATA_PARALLEL_H
#define QTRAIN_HOST_TRAIN_DATA_PARALLEL_H

#include "qtrain/data.h"
#include "qtrain/dist.h"
#include "qtrain/optimizer.h"
#include "qtrain/trainer.h"

// The next micro-batch of this rank: the global micro-batch is the next size x B windows of
// the epoch order; rank r reads windows [r B, (r + 1) B) of it, and every rank's position
// moves past all size x B, so the position is global (a checkpoint does not depend on N).
// One rank: qt_dataloader_next.
qt_status qt_dp_next_batch(qt_dataloader *dl, const qt_comm *c, int B, int *inputs, int *targets);

// The optimizer for this rank: the whole state, or the ZeRO-1 shard of s (s may be NULL).
qt_status qt_dp_optimizer_init(qt_optimizer *opt, const qt_model *m, const qt_grad_sync *s);

// Every rank receives rank 0's parameters (float arena, DQT codes and scales).
qt_status qt_dp_broadcast_params(qt_comm *c, qt_model *m);

// Writes the checkpoint once: with ZeRO-1 the shards of the moments (and masters) are first
// gathered into whole arenas, so the file is the one a single process writes; rank 0 writes
// it atomically; every rank returns the same status (a failed write stops every rank).
qt_status qt_dp_save(const char *path, qt_grad_sync *s, qt_model *m, const qt_optimizer *opt,
                     const qt_train_progress *progress);

// Loads a checkpoint into this rank's (possibly sharded) optimizer.
qt_status qt_dp_load(const char *path, const qt_grad_sync *s, qt_model *m, qt_optimizer *opt,
                     qt_train_progress *progress);

// After the backward of a step's last micro-batch: waits for the gradient buckets, computes
// the global norm, updates (this rank's shard of) the parameters and gathers them. Then agrees
// on the step's mean loss over the ranks and on *stop: in, this rank's signal (SIGINT, SIGTERM or 0);
// out, the agreed one (SIGTERM if any rank got it, else SIGINT if any, else 0).
qt_status qt_dp_step(qt_grad_sync *s, qt_optimizer *opt, qt_model *m, float lr, float loss_scale,
                     double *grad_norm, int *skipped, double *step_loss, int *stop);

#endif

// qtrain/optimizer.h: AdamW over a model's parameter arena, the learning-rate schedule and
// global gradient-norm clipping.
//
// Weight decay groups come from the parameter table: matrices (linear and embedding weights)
// decay; biases never; norm gains only with train.decay_norm_weights (the OPT recipe).
#ifndef QTRAIN_OPTIMIZER_H
#define QTRAIN_OPTIMIZER_H

#include "qtrain/model.h"

typedef struct {
    float *m, *v;   // (hi - lo) fp32 moments of gradient-arena elements [lo, hi), backend memory
    float *master;  // (n_float_params, or hi - lo when sharded) fp32 master weights when the
                    // backend stores parameters in fp16/bf16; NULL when they are fp32 themselves
    int step;       // optimizer steps taken so far (skipped steps not counted)
    size_t lo, hi;  // the gradient-arena elements this optimizer updates: [0, n_params), or one
                    // ZeRO-1 shard (qtrain/dist.h), where element i's state is at index i - lo
    int sharded;    // 1: [lo, hi) is a shard (the parameter arena is laid out like the gradients)
    // The tensors of the backend's multi-tensor step (its adamw_multi, where it has one, for
    // whole, unquantized float tensors with unquantized moments): one span per tensor, host
    // memory made at init; NULL where the step goes tensor by tensor.
    qt_adamw_span *spans; // (n_spans)
    int n_spans;
} qt_optimizer;

qt_status qt_optimizer_init(qt_optimizer *opt, const qt_model *model);
// The state of elements [lo, hi) of the gradient arena only (ZeRO-1). Refused (QT_ERR_ARG,
// naming the key) where a step needs whole tensors: DQT codes, quantized Adam moments.
qt_status qt_optimizer_init_shard(qt_optimizer *opt, const qt_model *model, size_t lo, size_t hi);
void qt_optimizer_free(qt_optimizer *opt, const qt_model *model);

// Learning rate for optimizer step `step` (0-based): linear warmup from 0 over warmup_steps,
// then linear or cosine decay to min_lr at max_steps (or constant).
float qt_lr_at(const qt_config *cfg, int step);

// Global L2 norm of the gradients (double accumulation).
qt_status qt_grad_norm(const qt_model *model, double *norm);

// One AdamW step with learning rate `lr` on the model's accumulated gradients, which hold
// loss_scale times the true gradients. They are unscaled and clipped to global norm
// cfg.grad_clip (when > 0) inside the update. *grad_norm gets the true pre-clip norm.
// A non-finite norm with loss_scale > 1 (fp16 loss scaling) skips the step: *skipped = 1 and
// nothing changes. With loss_scale == 1 it is an error: training diverged. Where the backend
// has adamw_multi (the CUDA backend), the norm, the clipping and the skip are decided on the
// device in the same update and the step waits for the device once.
qt_status qt_optimizer_step(qt_optimizer *opt, qt_model *model, float lr, float loss_scale,
                            double *grad_norm, int *skipped);
// qt_optimizer_step with the gradients' global norm given (`norm`: of the scaled gradients,
// as qt_grad_norm returns it): data-parallel training computes it across ranks. Updates
// elements [lo, hi) only.
qt_status qt_optimizer_update(qt_optimizer *opt, qt_model *model, float lr, float loss_scale,
                              double norm, double *grad_norm, int *skipped);

#endif

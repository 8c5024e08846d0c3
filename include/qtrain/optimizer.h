// qtrain/optimizer.h: AdamW over a model's parameter arena, the learning-rate schedule and
// global gradient-norm clipping.
//
// Weight decay groups come from the parameter table: matrices (linear and embedding weights)
// decay; biases never; norm gains only with train.decay_norm_weights (the OPT recipe).
#ifndef QTRAIN_OPTIMIZER_H
#define QTRAIN_OPTIMIZER_H

#include "qtrain/model.h"

typedef struct {
    float *m, *v; // (n_params) fp32 moments, backend memory
    int step;     // optimizer steps taken so far
} qt_optimizer;

qt_status qt_optimizer_init(qt_optimizer *opt, const qt_model *model);
void qt_optimizer_free(qt_optimizer *opt, const qt_model *model);

// Learning rate for optimizer step `step` (0-based): linear warmup from 0 over warmup_steps,
// then linear or cosine decay to min_lr at max_steps (or constant).
float qt_lr_at(const qt_config *cfg, int step);

// Global L2 norm of the gradients (double accumulation).
qt_status qt_grad_norm(const qt_model *model, double *norm);

// One AdamW step with learning rate `lr` on the model's accumulated gradients, clipped to
// global norm cfg.grad_clip when that is > 0. *grad_norm gets the pre-clip norm.
qt_status qt_optimizer_step(qt_optimizer *opt, qt_model *model, float lr, double *grad_norm);

#endif

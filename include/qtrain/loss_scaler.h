// qtrain/loss_scaler.h: dynamic loss scaling for fp16 training.
//
// The loss is multiplied by `scale` before the backward so small fp16 gradients do not flush
// to zero; the optimizer divides it out. A step whose gradients hold inf or nan is skipped
// (weights and optimizer state untouched) and the scale is multiplied by `backoff` (0.5);
// after `window` (2000) clean steps in a row it is multiplied by `growth` (2). Disabled
// (scale 1, nothing skipped) for fp32 and bf16, whose range needs no scaling.
#ifndef QTRAIN_LOSS_SCALER_H
#define QTRAIN_LOSS_SCALER_H

#include "qtrain/config.h"
#include "base/dtype.h"

typedef struct {
    int enabled;
    float scale;
    int clean_steps;       // clean steps since the last change
    long long skipped;     // steps skipped so far
    int window;
    float growth, backoff;
} qt_loss_scaler;

void qt_loss_scaler_init(qt_loss_scaler *ls, const qt_config *cfg, qt_dtype dt);
// After an optimizer step: overflow = 1 if it was skipped for inf/nan gradients.
void qt_loss_scaler_update(qt_loss_scaler *ls, int overflow);

#endif

// loss_scaler.c: dynamic loss scaling; see qtrain/loss_scaler.h.
#include "qtrain/loss_scaler.h"

#include <string.h>

void qt_loss_scaler_init(qt_loss_scaler *ls, const qt_config *cfg, qt_dtype dt) {
    memset(ls, 0, sizeof *ls);
    ls->enabled = dt == QT_DTYPE_F16;
    ls->scale = ls->enabled ? cfg->loss_scale_init : 1.0f;
    ls->window = cfg->loss_scale_window;
    ls->growth = cfg->loss_scale_growth;
    ls->backoff = cfg->loss_scale_backoff;
}

void qt_loss_scaler_update(qt_loss_scaler *ls, int overflow) {
    if (!ls->enabled) return;
    if (overflow) {
        ls->skipped++;
        ls->clean_steps = 0;
        ls->scale *= ls->backoff;
        // Below 1 the scale would shrink gradients: the run has diverged rather than overflowed.
        if (ls->scale < 1.0f) ls->scale = 1.0f;
        return;
    }
    if (++ls->clean_steps >= ls->window) {
        ls->clean_steps = 0;
        // fp32 holds any scale; 2^24 keeps scaled fp16 losses finite for ln V <= 11.
        ls->scale = ls->scale * ls->growth > 16777216.0f ? 16777216.0f : ls->scale * ls->growth;
    }
}

// base/params_check.h: the checks of the op parameter types (base/params.h) that the CPU
// references (kernels/cpu) and the CUDA launchers (kernels/cuda) share, so both twins refuse the
// same parameters with the same message (the error contract of kernels/<family>.h).
//
// Each returns QT_OK, or records QT_ERR_ARG naming the op, the bad value and the fix. Part of
// the bottom layer; C and C++ (the CUDA launchers). The enums are read as the ints a C caller
// may have stored in them (memcpy: loading an out-of-range value as a C++ enum is undefined).
#ifndef QTRAIN_BASE_PARAMS_CHECK_H
#define QTRAIN_BASE_PARAMS_CHECK_H

#include <math.h>
#include <string.h>

#include "params.h"
#include "status.h"

// The int stored in an enum field (4 bytes, as every enum of base/params.h).
#define QT_ENUM_RAW(field) qt_enum_raw_(&(field), sizeof(field))
static inline int qt_enum_raw_(const void *p, size_t n) {
    int v = 0;
    memcpy(&v, p, n < sizeof v ? n : sizeof v);
    return v;
}

// The softmax variant's parameters, as the config validates them (host/config/config.c): a
// known kind, a finite scale; clipped: finite gamma <= 0 and zeta >= 1; NCS: finite eta > 0 and
// beta with 2 eta > beta (the stretch (N eta - beta) / (N - 1) positive for every N >= 2).
static inline qt_status qt_check_softmax_params(const char *op, const qt_softmax_params *prm) {
    if (!prm) return qt_error(QT_ERR_ARG, "%s: softmax params are NULL; pass one", op);
    const int kind = QT_ENUM_RAW(prm->kind);
    if (kind != QT_SOFTMAX_VANILLA && kind != QT_SOFTMAX_CLIPPED && kind != QT_SOFTMAX_NCS)
        return qt_error(QT_ERR_ARG,
                        "%s: softmax kind %d is not vanilla (0), clipped (1) or ncs (2)", op,
                        kind);
    if (!isfinite(prm->scale))
        return qt_error(QT_ERR_ARG, "%s: scale = %g; pass a finite score scale (1/sqrt(D))", op,
                        (double)prm->scale);
    if (kind == QT_SOFTMAX_CLIPPED &&
        !(isfinite(prm->gamma) && isfinite(prm->zeta) && prm->gamma <= 0.0f &&
          prm->zeta >= 1.0f))
        return qt_error(QT_ERR_ARG,
                        "%s: clipped softmax with gamma = %g, zeta = %g; need finite gamma <= 0 "
                        "and zeta >= 1",
                        op, (double)prm->gamma, (double)prm->zeta);
    if (kind == QT_SOFTMAX_NCS &&
        !(isfinite(prm->eta) && isfinite(prm->beta) && prm->eta > 0.0f &&
          2.0 * (double)prm->eta > (double)prm->beta))
        return qt_error(QT_ERR_ARG,
                        "%s: ncs softmax with eta = %g, beta = %g; need finite eta > 0 and "
                        "beta < 2 eta",
                        op, (double)prm->eta, (double)prm->beta);
    return QT_OK;
}

// The fused attention op's parameters: the softmax's (above), a known sink kind and gate mode,
// tiles br, bc >= 0 (0: QT_ATTN_TILE).
static inline qt_status qt_check_attn_params(const char *op, const qt_attn_params *ap) {
    if (!ap) return qt_error(QT_ERR_ARG, "%s: attention params are NULL; pass one", op);
    QT_TRY(qt_check_softmax_params(op, &ap->sm));
    const int sink = QT_ENUM_RAW(ap->sink), gate = QT_ENUM_RAW(ap->gate);
    if (sink < QT_SINK_NONE || sink > QT_SINK_LEARNED)
        return qt_error(QT_ERR_ARG, "%s: sink kind %d is not none (0), zero (1) or learned (2)", op,
                        sink);
    if (gate < QT_ATTN_GATE_NONE || gate > QT_ATTN_GATE_CHANNEL)
        return qt_error(QT_ERR_ARG, "%s: gate mode %d is not none (0), head (1) or channel (2)", op,
                        gate);
    if (ap->br < 0 || ap->bc < 0)
        return qt_error(QT_ERR_ARG, "%s: tile %d x %d; pass br, bc >= 1 (or 0: %d)", op, ap->br,
                        ap->bc, QT_ATTN_TILE);
    return QT_OK;
}

#endif

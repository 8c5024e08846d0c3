// qlinear.c: the linear layers of the blocks under quantized training (PAPERS.md sections 6-8).
//
//   qat     Y = Q_a(X) Q_w(W)^T + b with the quant.w_* / quant.a_* quantizers; backward with
//           the straight-through estimator: G_q = Q_g(G) feeds dW (dW = G_q^T Q_a(X),
//           dX = G Q_w(W)) or, with quant.backward = dx, dX (dX = G_q Q_w(W), dW = G^T Q_a(X),
//           SwitchBack); db = colsum(G) either way.
//   bitnet  qat with Q_w = absmean ternary per tensor, Q_a = 8-bit per-token absmax, no G_q.
//   dqt     W = codes * scale (dequantized into one matrix of scratch for this GEMM only), Q_a
//           as bitnet; dW is the gradient the optimizer applies to the codes (kernels/dqt.h).
// Nothing quantized is saved for the backward: Q_w(W) and Q_a(X) are recomputed there from the
// saved X with the same stochastic-rounding streams, so they are bit-identical to the forward's.
// When W and X are both 8-bit symmetric absmax per tensor/row with nearest rounding and the
// backend has linear_s8_fwd (quant.int8_gemm = 1), the qat forward runs on the INT8 GEMM; so
// does SwitchBack's dX = G_q W_q when G is 8-bit per token and W 8-bit per tensor.
#include "kernels/quant.h"
#include "qlinear.h"

#include <string.h>

#define BE (m->be->ops)
#define CTX (m->be->ctx)

// Range floors of Chitsaz et al. (PAPERS.md section 6).
#define FLOOR_WA 1e-5f
#define FLOOR_G 1e-9f
#define FLOOR_STATE 1e-8f

enum { ROLE_W = 0, ROLE_A, ROLE_G };

static qt_quant_params from_spec(const qt_quant_spec *s, float floor) {
    qt_quant_params p = qt_quant_params_default(s->bits);
    p.symmetric = s->symmetric;
    p.granularity = s->granularity;
    p.group_size = (size_t)s->group;
    p.rounding = s->rounding;
    p.range = s->range;
    p.floor = floor;
    return p;
}

// BitLinear's input quantizer (BitNet b1.58 and DQT): 8-bit per-token absmax.
static qt_quant_params per_token_8bit(void) {
    qt_quant_params p = qt_quant_params_default(8);
    p.granularity = QT_QUANT_PER_ROW;
    p.floor = FLOOR_WA;
    return p;
}

// The quantizer of `role` for this config; 0 when that role is not quantized. The stream makes
// stochastic rounding distinct per micro-step, layer, linear and role, and equal between the
// forward and the backward of one micro-step.
static int quantizer(const qt_model *m, int layer, qt_linear_id which, int role,
                     qt_quant_params *p) {
    const qt_config *cfg = &m->cfg;
    switch (cfg->quant_mode) {
    case QT_QMODE_NONE: return 0;
    case QT_QMODE_QAT: {
        const qt_quant_spec *s = role == ROLE_W ? &cfg->q_w : role == ROLE_A ? &cfg->q_a : &cfg->q_g;
        if (s->bits == 0) return 0;
        *p = from_spec(s, role == ROLE_G ? FLOOR_G : FLOOR_WA);
        break;
    }
    case QT_QMODE_BITNET:
        if (role == ROLE_G) return 0;
        if (role == ROLE_A) {
            *p = per_token_8bit();
        } else {
            *p = qt_quant_params_default(QT_QUANT_TERNARY);
            p->range = QT_QUANT_RANGE_ABSMEAN;
            p->floor = FLOOR_WA;
        }
        break;
    case QT_QMODE_DQT:
        if (role != ROLE_A) return 0; // W is already on its grid; G stays float
        *p = per_token_8bit();
        break;
    }
    uint64_t tensor_id = ((uint64_t)(layer + 1) << 8) | ((uint64_t)which << 2) | (uint64_t)role;
    p->seed = cfg->seed;
    p->stream = qt_quant_stream(m->dropout_stream, tensor_id);
    return 1;
}

// A grid the backends' INT8 GEMM takes (qt_quant_is_s8_gemm_able), narrowed to absmax: the
// quantized linears send only absmax grids to it.
static int is_int8_gemm_able(const qt_quant_params *p) {
    return qt_quant_is_s8_gemm_able(p) && p->range == QT_QUANT_RANGE_ABSMAX;
}

// The float weight this linear multiplies by: Q_w(w), the dequantized DQT codes, or w itself.
static qt_status weight_operand(qt_model *m, int layer, qt_linear_id which, const void *w,
                                int IC, int OC, const void **wf) {
    size_t n = (size_t)OC * IC;
    if (m->cfg.quant_mode == QT_QMODE_DQT) {
        int ti = m->linear_tensor[layer][which];
        QT_TRY(BE->dqt_dequant(CTX, m->q_w, (const int8_t *)w, m->code_scales[ti], n));
        *wf = m->q_w;
        return QT_OK;
    }
    qt_quant_params p;
    if (!quantizer(m, layer, which, ROLE_W, &p)) {
        *wf = w;
        return QT_OK;
    }
    QT_TRY(BE->quant_fake(CTX, m->be->dtype, &p, m->q_w, w, (size_t)OC, (size_t)IC));
    *wf = m->q_w;
    return QT_OK;
}

static qt_status input_operand(qt_model *m, int layer, qt_linear_id which, const void *x, int N,
                               int IC, const void **xf) {
    qt_quant_params p;
    if (!quantizer(m, layer, which, ROLE_A, &p)) {
        *xf = x;
        return QT_OK;
    }
    QT_TRY(BE->quant_fake(CTX, m->be->dtype, &p, m->q_x, x, (size_t)N, (size_t)IC));
    *xf = m->q_x;
    return QT_OK;
}

qt_status qt_qlinear_fwd(qt_model *m, int layer, qt_linear_id which, void *out, const void *x,
                         const void *w, const void *b, int N, int IC, int OC) {
    if (m->cfg.quant_mode == QT_QMODE_NONE) return BE->linear_fwd(CTX, out, x, w, b, N, IC, OC);
    qt_quant_params wp, ap;
    if (m->cfg.quant_mode == QT_QMODE_QAT && m->cfg.q_int8_gemm && BE->linear_s8_fwd &&
        quantizer(m, layer, which, ROLE_W, &wp) && quantizer(m, layer, which, ROLE_A, &ap) &&
        is_int8_gemm_able(&wp) && is_int8_gemm_able(&ap))
        return BE->linear_s8_fwd(CTX, out, x, w, b, N, IC, OC, &ap, &wp);
    const void *wf, *xf;
    QT_TRY(weight_operand(m, layer, which, w, IC, OC, &wf));
    QT_TRY(input_operand(m, layer, which, x, N, IC, &xf));
    return BE->linear_fwd(CTX, out, xf, wf, b, N, IC, OC);
}

qt_status qt_qlinear_bwd(qt_model *m, int layer, qt_linear_id which, void *dx, void *dw, void *db,
                         const void *dout, const void *x, const void *w, int N, int IC, int OC) {
    if (m->cfg.quant_mode == QT_QMODE_NONE)
        return BE->linear_bwd(CTX, dx, dw, db, dout, x, w, N, IC, OC);
    const void *wf, *xf;
    QT_TRY(weight_operand(m, layer, which, w, IC, OC, &wf));
    QT_TRY(input_operand(m, layer, which, x, N, IC, &xf));
    qt_quant_params gp;
    if (!quantizer(m, layer, which, ROLE_G, &gp))
        return BE->linear_bwd(CTX, dx, dw, db, dout, xf, wf, N, IC, OC);
    QT_TRY(BE->quant_fake(CTX, m->be->dtype, &gp, m->q_g, dout, (size_t)N, (size_t)OC));
    if (m->cfg.q_backward == QT_QBWD_DW) {
        QT_TRY(BE->linear_bwd(CTX, NULL, dw, NULL, m->q_g, xf, wf, N, IC, OC));
        return BE->linear_bwd(CTX, dx, NULL, db, dout, xf, wf, N, IC, OC);
    }
    // SwitchBack: dX = G_q W_q, on the INT8 GEMM when both grids allow it.
    qt_quant_params wp;
    if (dx && m->cfg.q_int8_gemm && BE->linear_s8_dx && is_int8_gemm_able(&gp) &&
        gp.granularity == QT_QUANT_PER_ROW && quantizer(m, layer, which, ROLE_W, &wp) &&
        is_int8_gemm_able(&wp) && wp.granularity == QT_QUANT_PER_TENSOR)
        QT_TRY(BE->linear_s8_dx(CTX, dx, dout, w, N, IC, OC, &gp, &wp));
    else
        QT_TRY(BE->linear_bwd(CTX, dx, NULL, NULL, m->q_g, xf, wf, N, IC, OC));
    return BE->linear_bwd(CTX, NULL, dw, db, dout, xf, wf, N, IC, OC);
}

qt_status qt_qlinear_bwd_set(qt_model *m, int layer, qt_linear_id which, void *dx, void *dw,
                             void *db, const void *dout, const void *x, const void *w, int N,
                             int IC, int OC) {
    if (dx && m->cfg.quant_mode == QT_QMODE_NONE && N > 0 && OC > 0) {
        // dx (N, IC) = dout (N, OC) w (OC, IC) with beta 0: no memset, no read of dx
        const qt_gemm_desc d = {.M = N, .N = IC, .K = OC, .alpha = 1.0f, .beta = 0.0f,
                                .lda = OC, .ldb = IC, .ldc = IC, .batch = 1, .inner = 1};
        QT_TRY(BE->gemm(CTX, &d, dout, w, dx));
        return BE->linear_bwd(CTX, NULL, dw, db, dout, x, w, N, IC, OC);
    }
    if (dx) QT_TRY(BE->zero(CTX, dx, (size_t)N * (size_t)IC * m->es));
    return qt_qlinear_bwd(m, layer, which, dx, dw, db, dout, x, w, N, IC, OC);
}

int qt_qlinear_moment_quant(const qt_config *cfg, char role, qt_quant_params *p) {
    if (cfg->quant_mode != QT_QMODE_QAT) return 0;
    const qt_quant_spec *s = role == 'm' ? &cfg->q_m : &cfg->q_v;
    if (s->bits == 0) return 0;
    *p = from_spec(s, FLOOR_STATE);
    p->seed = cfg->seed;
    return 1;
}

void qt_dqt_grid(const qt_config *cfg, int *qmin, int *qmax) {
    if (cfg->dqt_bits == QT_QUANT_TERNARY) {
        *qmin = -1;
        *qmax = 1;
    } else {
        *qmin = -(1 << (cfg->dqt_bits - 1));
        *qmax = (1 << (cfg->dqt_bits - 1)) - 1;
    }
}

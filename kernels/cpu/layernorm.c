// layernorm.c: qt_cpu_layernorm_{fwd,bwd}[_f64], LayerNorm over the last dimension (biased
// variance, eps QT_LAYERNORM_EPS, the same eps value in float and double).
// Contract (kernels/layernorm.h): the forward overwrites out, mean, rstd; the backward adds
// into dx, dw, db (each may be NULL). Rows run in parallel, the dw/db reductions per column
// block. The body is layernorm_impl.h, instantiated for float and double. The residual ops
// (float only) are at the end: the composition of dropout, add and LayerNorm they fuse.
#include "common/real.h"

#include "base/philox.h"
#include "base/status.h"
#include "common/check.h"
#include "kernels/layernorm.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384
// Columns per task in the dw/db reduction.
#define COLSUM_BLOCK 64

#include "common/colsum.h"
#include "layernorm_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "common/colsum.h"
#include "layernorm_impl.h"

// The dropout probability the residual ops accept: [0, 1] (qt_cpu_dropout_fwd's rule).
static qt_status check_prob(const char *op, float prob) {
    if (!(prob >= 0.0f && prob <= 1.0f))
        return qt_error(QT_ERR_ARG,
                        "%s: dropout probability %g is outside [0, 1]; pass one in [0, 1)", op,
                        (double)prob);
    return QT_OK;
}

// y[i] = drop(v)[i] = keep_i v[i] / (1 - prob) (0 when dropped, a dropped inf too; v[i] when
// prob is 0) for i in [0, n), plus x[i] when x is given, each rounded once: dropout's
// product, then the sum, as the composed ops round them. One Philox block per group of four
// elements (dropout.c's grouping: the same mask, a quarter of the draws).
static void drop_apply(float *y, const float *v, const float *x, size_t n, float prob,
                       uint64_t seed, uint64_t stream) {
    const float s = prob < 1.0f ? 1.0f / (1.0f - prob) : 0.0f;
    const size_t groups = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t gi = 0; gi < groups; gi++) {
        const size_t i0 = gi * 4, cnt = n - i0 < 4 ? n - i0 : 4;
        qt_u32x4 r = {{0u, 0u, 0u, 0u}};
        if (prob > 0.0f) r = qt_philox_block(seed, stream, gi);
        for (size_t k = 0; k < cnt; k++) {
            const size_t i = i0 + k;
            const int keep = prob <= 0.0f || qt_u32_to_uniform(r.v[k]) >= prob;
            const float d = prob <= 0.0f ? v[i] : keep ? v[i] * s : 0.0f;
            y[i] = x ? x[i] + d : d;
        }
    }
}

qt_status qt_cpu_layernorm_residual_fwd(float *resid, float *out, float *mean, float *rstd,
                                        const float *x, const float *branch, const float *w,
                                        const float *b, int N, int C, float prob, uint64_t seed,
                                        uint64_t stream) {
    const char *op = "layernorm_residual_fwd";
    QT_TRY(check_rows(op, "N", N, "C", C));
    QT_TRY(check_prob(op, prob));
    QT_TRY(check_ptrs(op, N == 0 || (resid && out && mean && rstd && x && branch && w && b),
                      "resid, out, mean, rstd, x, branch, w and b"));
    if (out == resid || out == x || out == branch)
        return qt_error(QT_ERR_ARG, "%s: out must not alias resid, x or branch (only resid may "
                        "alias x or branch); pass a separate output buffer", op);
    drop_apply(resid, branch, x, (size_t)N * (size_t)C, prob, seed, stream);
    return qt_cpu_layernorm_fwd(out, mean, rstd, resid, w, b, N, C);
}

qt_status qt_cpu_layernorm_residual_bwd(float *dx, float *dbranch, float *dw, float *db,
                                        const float *dout, const float *x, const float *mean,
                                        const float *rstd, const float *w, int N, int C,
                                        float prob, uint64_t seed, uint64_t stream) {
    const char *op = "layernorm_residual_bwd";
    QT_TRY(check_rows(op, "N", N, "C", C));
    QT_TRY(check_prob(op, prob));
    QT_TRY(check_ptrs(op, N == 0 || (dx && dbranch && dout && x && mean && rstd && w),
                      "dx, dbranch, dout, x, mean, rstd and w"));
    if (dbranch == dx || dbranch == dout || dbranch == x)
        return qt_error(QT_ERR_ARG, "%s: dbranch must not alias dx, dout or x; pass a separate "
                        "buffer", op);
    QT_TRY(qt_cpu_layernorm_bwd(dx, dw, db, dout, x, mean, rstd, w, N, C));
    drop_apply(dbranch, dx, NULL, (size_t)N * (size_t)C, prob, seed, stream);
    return QT_OK;
}

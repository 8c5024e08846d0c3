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

// keep_i / (1 - prob) for element i: dropout's scale when kept, else 0 (prob 0: always 1,
// an exact product).
static inline float drop_scale(float prob, float s, uint64_t seed, uint64_t stream, size_t i) {
    if (prob <= 0.0f) return 1.0f;
    return qt_philox_uniform(seed, stream, i) >= prob ? s : 0.0f;
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
    const size_t n = (size_t)N * (size_t)C;
    const float s = prob < 1.0f ? 1.0f / (1.0f - prob) : 0.0f;
    // dropout's product, then the add: each rounded once, as the composed ops round them
#pragma omp parallel for simd schedule(static) if (parallel : n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float k = drop_scale(prob, s, seed, stream, i);
        const float v = k != 0.0f ? branch[i] * k : 0.0f; // a dropped inf stays 0
        resid[i] = x[i] + v;
    }
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
    const size_t n = (size_t)N * (size_t)C;
    const float s = prob < 1.0f ? 1.0f / (1.0f - prob) : 0.0f;
#pragma omp parallel for simd schedule(static) if (parallel : n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float k = drop_scale(prob, s, seed, stream, i);
        dbranch[i] = k != 0.0f ? dx[i] * k : 0.0f;
    }
    return QT_OK;
}

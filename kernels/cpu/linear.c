// linear.c: qt_cpu_linear_{fwd,bwd}[_f64], out = x w^T + b and its gradients, through BLAS
// (OpenBLAS threads the GEMMs over the OpenMP pool), and qt_cpu_gemm, the batched GEMM of
// qt_gemm_desc that the attention is composed from (the CUDA backend's route; tests).
// Contract (kernels/linear.h): the forward overwrites out; the backward adds into dx, dw,
// db (dx and db may be NULL). The body is linear_impl.h, instantiated for float and double.
#include "common/real.h"

#include "base/status.h"
#include "common/check.h"
#include "kernels/activation.h"
#include "kernels/linear.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

// The shape of a linear layer (N, OC >= 0, IC >= 1: BLAS needs a leading dimension >= 1) and,
// when there is work, its pointers (ok, names: check_ptrs).
static qt_status linear_check(const char *op, int ok, const char *names, int N, int IC, int OC) {
    if (N < 0 || IC < 1 || OC < 0)
        return qt_error(QT_ERR_ARG, "%s: N = %d, IC = %d, OC = %d; need N, OC >= 0 and IC >= 1",
                        op, N, IC, OC);
    return check_ptrs(op, N == 0 || OC == 0 || ok, names);
}

#include "common/colsum.h"
#include "linear_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "common/colsum.h"
#include "linear_impl.h"

// ---- a linear layer with its activation (float only): the composition the CUDA epilogues
// fuse, rounding for rounding what the model composes from linear_fwd, gemm and the activation
// ops.

static qt_status act_check(const char *op, qt_linear_act act) {
    if (act != QT_LINEAR_ACT_GELU && act != QT_LINEAR_ACT_RELU)
        return qt_error(QT_ERR_ARG, "%s: activation %d is neither GELU (%d) nor ReLU (%d)", op,
                        (int)act, (int)QT_LINEAR_ACT_GELU, (int)QT_LINEAR_ACT_RELU);
    return QT_OK;
}

qt_status qt_cpu_linear_act_fwd(qt_linear_act act, float *out, float *pre, const float *x,
                                const float *w, const float *b, int N, int IC, int OC) {
    QT_TRY(act_check("linear_act_fwd", act));
    if (act == QT_LINEAR_ACT_GELU && !pre && N > 0 && OC > 0)
        return qt_error(QT_ERR_ARG, "linear_act_fwd: GELU needs pre, its backward's input");
    float *lin = pre ? pre : out; // ReLU without pre: in place over out
    QT_TRY(qt_cpu_linear_fwd(lin, x, w, b, N, IC, OC));
    const size_t n = (size_t)N * (size_t)OC;
    return act == QT_LINEAR_ACT_GELU ? qt_cpu_gelu_fwd(out, lin, n) : qt_cpu_relu_fwd(out, lin, n);
}

qt_status qt_cpu_linear_act_dx(qt_linear_act act, float *dx, const float *dout, const float *w,
                               const float *saved, int N, int IC, int OC) {
    QT_TRY(act_check("linear_act_dx", act));
    if (N < 0 || IC < 1 || OC < 1)
        return qt_error(QT_ERR_ARG, "linear_act_dx: N = %d, IC = %d, OC = %d; need N >= 0 and "
                        "IC, OC >= 1", N, IC, OC);
    QT_TRY(check_ptrs("linear_act_dx", N == 0 || (dx && dout && w && saved),
                      "dx, dout, w and saved"));
    if (N == 0) return QT_OK;
    const qt_gemm_desc d = qt_gemm_desc_single(0, 0, N, IC, OC, 0.0f, OC, IC, IC);
    QT_TRY(qt_cpu_gemm(&d, dout, w, dx));
    const size_t n = (size_t)N * (size_t)IC;
    // dx aliases the backward's dout: the in-place form overwrites
    return act == QT_LINEAR_ACT_GELU ? qt_cpu_gelu_bwd(dx, dx, saved, n)
                                     : qt_cpu_relu_bwd(dx, dx, saved, n);
}

// ---- the batched GEMM (float only) ----------------------------------------------------------

static void gemm_one(const qt_gemm_desc *d, const float *A, const float *B, float *C) {
    cblas_sgemm(CblasRowMajor, d->trans_a ? CblasTrans : CblasNoTrans,
                d->trans_b ? CblasTrans : CblasNoTrans, d->M, d->N, d->K, d->alpha, A, d->lda, B,
                d->ldb, d->beta, C, d->ldc);
}

qt_gemm_desc qt_gemm_desc_single(int trans_a, int trans_b, int M, int N, int K, float beta, int lda,
                                 int ldb, int ldc) {
    return (qt_gemm_desc){.trans_a = trans_a,
                          .trans_b = trans_b,
                          .M = M,
                          .N = N,
                          .K = K,
                          .alpha = 1.0f,
                          .beta = beta,
                          .lda = lda,
                          .ldb = ldb,
                          .ldc = ldc,
                          .batch = 1,
                          .inner = 1};
}

// The batch runs in parallel with single-threaded sgemm calls (OpenBLAS's OpenMP build runs
// sequentially inside a parallel region); a single GEMM gets OpenBLAS's threads.
qt_status qt_cpu_gemm(const qt_gemm_desc *d, const float *A, const float *B, float *C) {
    if (!d) return qt_error(QT_ERR_ARG, "gemm: the descriptor is NULL; pass a qt_gemm_desc");
    if (d->M < 1 || d->N < 1 || d->K < 1)
        return qt_error(QT_ERR_ARG, "gemm: M %d, N %d, K %d; need all >= 1", d->M, d->N, d->K);
    if (d->batch < 1 || d->inner < 1 || d->batch % d->inner != 0)
        return qt_error(QT_ERR_ARG, "gemm: batch %d is not a multiple of inner %d", d->batch,
                        d->inner);
    // Row-major storage: A is (M, K), or (K, M) when transposed; B (K, N) or (N, K).
    const int a_cols = d->trans_a ? d->M : d->K, b_cols = d->trans_b ? d->K : d->N;
    if (d->lda < a_cols || d->ldb < b_cols || d->ldc < d->N)
        return qt_error(QT_ERR_ARG,
                        "gemm: leading dimensions lda %d, ldb %d, ldc %d are below the row "
                        "lengths %d, %d, %d; pass ld >= the row length",
                        d->lda, d->ldb, d->ldc, a_cols, b_cols, d->N);
    QT_TRY(check_ptrs("gemm", A && B && C, "A, B and C"));
    if (d->batch == 1) {
        gemm_one(d, A, B, C);
        return QT_OK;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < d->batch; i++) {
        int64_t o = i / d->inner, in = i % d->inner;
        gemm_one(d, A + o * d->a_outer + in * d->a_inner, B + o * d->b_outer + in * d->b_inner,
                 C + o * d->c_outer + in * d->c_inner);
    }
    return QT_OK;
}

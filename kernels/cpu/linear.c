// linear.c: qt_cpu_linear_{fwd,bwd}[_f64], out = x w^T + b and its gradients, through BLAS
// (OpenBLAS threads the GEMMs over the OpenMP pool), and qt_cpu_gemm, the batched GEMM of
// qt_gemm_desc that the attention is composed from (the CUDA backend's route; tests).
// Contract (kernels/linear.h): the forward overwrites out; the backward adds into dx, dw,
// db (dx and db may be NULL). The body is linear_impl.h, instantiated for float and double.
#include "common/real.h"

#include <string.h>

#include "base/status.h"
#include "kernels/linear.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

#include "common/colsum.h"
#include "linear_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "common/colsum.h"
#include "linear_impl.h"

// ---- the batched GEMM (float only) ----------------------------------------------------------

static void gemm_one(const qt_gemm_desc *d, const float *A, const float *B, float *C) {
    cblas_sgemm(CblasRowMajor, d->trans_a ? CblasTrans : CblasNoTrans,
                d->trans_b ? CblasTrans : CblasNoTrans, d->M, d->N, d->K, d->alpha, A, d->lda, B,
                d->ldb, d->beta, C, d->ldc);
}

// The batch runs in parallel with single-threaded sgemm calls (OpenBLAS's OpenMP build runs
// sequentially inside a parallel region); a single GEMM gets OpenBLAS's threads.
qt_status qt_cpu_gemm(const qt_gemm_desc *d, const float *A, const float *B, float *C) {
    if (d->batch < 1 || d->inner < 1 || d->batch % d->inner != 0)
        return qt_error(QT_ERR_ARG, "gemm: batch %d is not a multiple of inner %d", d->batch,
                        d->inner);
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

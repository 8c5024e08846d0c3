// elementwise.c: qt_cpu_add (out = a + b, the residual sums), qt_cpu_bias_add and
// qt_cpu_bias_grad (the bias of a linear layer and its gradient: the CUDA backend runs them as
// separate kernels, the CPU's linear folds them into its own loops). Float only.
// Contract (kernels/elementwise.h): add overwrites out (which may alias a or b: same-index
// read then write); bias_add adds in place; bias_grad adds column sums into db.
// Element-parallel, vectorized; the column sums are deterministic (common/colsum.h).
#include "common/real.h"

#include <stddef.h>

#include "common/check.h"
#include "kernels/elementwise.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 32768

#include "common/colsum.h"

qt_status qt_cpu_add(float *out, const float *a, const float *b, size_t n) {
    QT_TRY(check_ptrs("add", n == 0 || (out && a && b), "out, a and b"));
#pragma omp parallel for simd schedule(static) if (parallel : n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return QT_OK;
}

qt_status qt_cpu_bias_add(float *out, const float *bias, int N, int OC) {
    QT_TRY(check_rows("bias_add", "N", N, "OC", OC));
    QT_TRY(check_ptrs("bias_add", N == 0 || (out && bias), "out and bias"));
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)OC >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *restrict row = out + (size_t)n * OC;
#pragma omp simd
        for (int c = 0; c < OC; c++) row[c] += bias[c];
    }
    return QT_OK;
}

qt_status qt_cpu_bias_grad(float *db, const float *dout, int N, int OC) {
    QT_TRY(check_rows("bias_grad", "N", N, "OC", OC));
    QT_TRY(check_ptrs("bias_grad", N == 0 || (db && dout), "db and dout"));
    if (N == 0) return QT_OK; // no rows: nothing to add (as the CUDA twin)
    colsum_acc(db, dout, N, OC);
    return QT_OK;
}

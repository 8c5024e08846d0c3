// common/colsum.h: column sums of a row-major matrix, added into a vector (no include guard; see
// common/real.h): the bias gradients of the linear and elementwise families, and the weight and
// bias gradients of the layernorm and rmsnorm backward.
#include <stddef.h>

#ifndef COLSUM_BLOCK
// Columns per task: the task's partial sums stay in registers/L1 while it streams the rows.
#define COLSUM_BLOCK 64
#endif

// A norm backward's parameter gradients, added in:
//   dw (cols) += column sums of dout * xh,  xh[n] = (x[n] - mean[n]) rstd[n]
//   db (cols) += column sums of dout
// dout, x (rows, cols); mean, rstd (rows). mean NULL: xh[n] = x[n] rstd[n] (RMSNorm; x - 0 is x
// exactly, so the bits are those of x rstd). x NULL: db alone, a plain column sum (dw, mean and
// rstd unused). dw or db NULL: that sum is not added. Deterministic: each column is summed over
// the rows in order by one thread, whatever the thread count.
static inline void FN(colsum_norm_acc)(REAL *dw, REAL *db, const REAL *dout, const REAL *x,
                                       const REAL *mean, const REAL *rstd, int rows, int cols) {
    const int nblk = (cols + COLSUM_BLOCK - 1) / COLSUM_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)cols >= PAR_MIN && nblk > 1)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * COLSUM_BLOCK;
        const int w = cols - c0 < COLSUM_BLOCK ? cols - c0 : COLSUM_BLOCK;
        REAL aw[COLSUM_BLOCK] = {0}, ab[COLSUM_BLOCK] = {0};
        for (int n = 0; n < rows; n++) {
            const REAL *restrict dr = dout + (size_t)n * cols + c0;
            if (!x) {
#pragma omp simd
                for (int j = 0; j < w; j++) ab[j] += dr[j];
                continue;
            }
            const REAL *restrict xr = x + (size_t)n * cols + c0;
            const REAL mu = mean ? mean[n] : (REAL)0, rs = rstd[n];
#pragma omp simd
            for (int j = 0; j < w; j++) {
                aw[j] += dr[j] * ((xr[j] - mu) * rs);
                ab[j] += dr[j];
            }
        }
        for (int j = 0; j < w; j++) {
            if (dw) dw[c0 + j] += aw[j];
            if (db) db[c0 + j] += ab[j];
        }
    }
}

// out (cols) += column sums of a (rows, cols).
static inline void FN(colsum_acc)(REAL *out, const REAL *a, int rows, int cols) {
    FN(colsum_norm_acc)(NULL, out, a, NULL, NULL, NULL, rows, cols);
}

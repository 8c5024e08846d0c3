// common/colsum.h: column sums of a row-major matrix, added into a vector (no include guard; see
// common/real.h). Used by the linear and layernorm backward for bias-style reductions.
#ifndef COLSUM_BLOCK
// Columns per task: the task's partial sums stay in registers/L1 while it streams the rows.
#define COLSUM_BLOCK 64
#endif

// out (cols) += column sums of a (rows, cols). Deterministic: each column is summed over the
// rows in order by one thread, whatever the thread count.
static inline void FN(colsum_acc)(REAL *restrict out, const REAL *restrict a, int rows,
                                  int cols) {
    const int nblk = (cols + COLSUM_BLOCK - 1) / COLSUM_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)cols >= PAR_MIN && nblk > 1)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * COLSUM_BLOCK;
        const int w = cols - c0 < COLSUM_BLOCK ? cols - c0 : COLSUM_BLOCK;
        REAL acc[COLSUM_BLOCK] = {0};
        for (int n = 0; n < rows; n++) {
            const REAL *row = a + (size_t)n * cols + c0;
#pragma omp simd
            for (int j = 0; j < w; j++) acc[j] += row[j];
        }
        for (int j = 0; j < w; j++) out[c0 + j] += acc[j];
    }
}

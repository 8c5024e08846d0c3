// attention_impl.h: the body of the attention core, written once over REAL (no include guard;
// see common/real.h and attention.c).

#include "common/softmax_row.h"

// C (M, N) = op(A) op(B) + beta C through GEMM, cut into pieces of at most ATT_GEMM_MAX_MNK
// multiply-adds (see attention.c) by halving the larger of M and N (independent blocks of C).
static void FN(gemm_small)(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
                           const REAL *A, int lda, const REAL *B, int ldb, REAL beta, REAL *C,
                           int ldc) {
    if (M <= 0 || N <= 0) return;
    if ((double)M * N * K <= ATT_GEMM_MAX_MNK || (M == 1 && N == 1)) {
        GEMM(CblasRowMajor, ta, tb, M, N, K, 1, A, lda, B, ldb, beta, C, ldc);
    } else if (M >= N) {
        const int h = M / 2; // rows of C: rows of op(A)
        const REAL *A2 = ta == CblasNoTrans ? A + (size_t)h * lda : A + h;
        FN(gemm_small)(ta, tb, h, N, K, A, lda, B, ldb, beta, C, ldc);
        FN(gemm_small)(ta, tb, M - h, N, K, A2, lda, B, ldb, beta, C + (size_t)h * ldc, ldc);
    } else {
        const int h = N / 2; // columns of C: columns of op(B)
        const REAL *B2 = tb == CblasNoTrans ? B + h : B + (size_t)h * ldb;
        FN(gemm_small)(ta, tb, M, h, K, A, lda, B, ldb, beta, C, ldc);
        FN(gemm_small)(ta, tb, M, N - h, K, A, lda, B2, ldb, beta, C + h, ldc);
    }
}

// The most keys any row of [r0, r1) attends: the GEMMs of that row block stop there (the
// columns past a row's own length are masked: zero in probs, zeroed in dscores). lens was
// checked to lie in [1, T] before.
static inline int FN(block_keys)(const int *lens, int r0, int r1) {
    int kmax = 0;
    for (int r = r0; r < r1; r++) kmax = lens[r] > kmax ? lens[r] : kmax;
    return kmax;
}

qt_status FN(qt_cpu_attention_fwd)(const qt_softmax_params *prm, REAL *ctx, REAL *probs,
                                   REAL *p, const REAL *qkv, const int *lens, int B, int T, int C,
                                   int H) {
    const char *op = OPNAME("attention_fwd");
    QT_TRY(check_heads(op, C, "H", H));
    QT_TRY(check_softmax_rows(op, prm, "B", B, "T", T, ctx && probs && p && qkv,
                              "ctx, probs, p, qkv and lens", lens, (size_t)B * (size_t)T));
    const int D = C / H, C3 = 3 * C;
    // One (b, h) pair per task; its GEMMs stay single-threaded (gemm_small, attention.c).
#pragma omp parallel for schedule(dynamic, 1) if (B * H > 1)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const REAL *q = qkv + (size_t)b * T * C3 + (size_t)h * D; // (T, D), row stride 3C
        const REAL *k = q + C, *v = q + 2 * C;
        const size_t tt = (size_t)bh * T * T;
        REAL *pr = probs + tt, *pp = p + tt; // (T, T)
        REAL *o = ctx + (size_t)b * T * C + (size_t)h * D; // (T, D), row stride C
        const int *len = lens + (size_t)b * T;
        for (int r0 = 0; r0 < T; r0 += ATT_ROW_BLOCK) {
            const int r1 = r0 + ATT_ROW_BLOCK < T ? r0 + ATT_ROW_BLOCK : T, m = r1 - r0;
            const int kmax = FN(block_keys)(len, r0, r1);
            // raw scores of the block, into probs: (m, kmax) = q[r0:r1] k[:kmax]^T
            FN(gemm_small)(CblasNoTrans, CblasTrans, m, kmax, D, q + (size_t)r0 * C3, C3, k, C3, 0,
                           pr + (size_t)r0 * T, T);
            for (int r = r0; r < r1; r++) {
                FN(softmax_clip_row_fwd)(prm, pr + (size_t)r * T, pp + (size_t)r * T,
                                         pr + (size_t)r * T, len[r], T);
            }
            // ctx[r0:r1] (m, D) = probs[r0:r1, :kmax] v[:kmax]
            FN(gemm_small)(CblasNoTrans, CblasNoTrans, m, D, kmax, pr + (size_t)r0 * T, T, v, C3,
                           0, o + (size_t)r0 * C, C);
        }
    }
    return QT_OK;
}

qt_status FN(qt_cpu_attention_bwd)(const qt_softmax_params *prm, REAL *dqkv, REAL *scratch,
                                   const REAL *dctx, const REAL *qkv, const REAL *probs,
                                   const REAL *p, const int *lens, int B, int T, int C, int H) {
    const char *op = OPNAME("attention_bwd");
    QT_TRY(check_heads(op, C, "H", H));
    QT_TRY(check_softmax_rows(op, prm, "B", B, "T", T,
                              dqkv && scratch && dctx && qkv && probs && p,
                              "dqkv, scratch, dctx, qkv, probs, p and lens", lens,
                              (size_t)B * (size_t)T));
    const int D = C / H, C3 = 3 * C;
#pragma omp parallel for schedule(dynamic, 1) if (B * H > 1)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const size_t qoff = (size_t)b * T * C3 + (size_t)h * D;
        const REAL *q = qkv + qoff, *k = q + C, *v = q + 2 * C; // (T, D), row stride 3C
        REAL *dq = dqkv + qoff, *dk = dq + C, *dv = dq + 2 * C;
        const size_t tt = (size_t)bh * T * T;
        const REAL *pr = probs + tt, *pp = p + tt; // (T, T)
        REAL *ds = scratch + tt;                   // (T, T): dprobs, then dscores
        const REAL *dO = dctx + (size_t)b * T * C + (size_t)h * D; // (T, D), row stride C
        const int *len = lens + (size_t)b * T;
        for (int r0 = 0; r0 < T; r0 += ATT_ROW_BLOCK) {
            const int r1 = r0 + ATT_ROW_BLOCK < T ? r0 + ATT_ROW_BLOCK : T, m = r1 - r0;
            const int kmax = FN(block_keys)(len, r0, r1);
            REAL *dsb = ds + (size_t)r0 * T;
            const REAL *prb = pr + (size_t)r0 * T;
            // dprobs (m, kmax) = dctx[r0:r1] v[:kmax]^T
            FN(gemm_small)(CblasNoTrans, CblasTrans, m, kmax, D, dO + (size_t)r0 * C, C, v, C3, 0,
                           dsb, T);
            // dv[:kmax] += probs[r0:r1, :kmax]^T dctx[r0:r1]
            FN(gemm_small)(CblasTrans, CblasNoTrans, kmax, D, m, prb, T, dO + (size_t)r0 * C, C, 1,
                           dv, C3);
            for (int r = r0; r < r1; r++) {
                FN(softmax_clip_row_bwd_inplace)(prm, ds + (size_t)r * T, pp + (size_t)r * T,
                                                 len[r], kmax);
            }
            // dq[r0:r1] += dscores (m, kmax) k[:kmax]; dk[:kmax] += dscores^T q[r0:r1]
            FN(gemm_small)(CblasNoTrans, CblasNoTrans, m, D, kmax, dsb, T, k, C3, 1,
                           dq + (size_t)r0 * C3, C3);
            FN(gemm_small)(CblasTrans, CblasNoTrans, kmax, D, m, dsb, T, q + (size_t)r0 * C3, C3, 1,
                           dk, C3);
        }
    }
    return QT_OK;
}

// attention_impl.h: the body of the attention core, written once over REAL (no include guard;
// see common/real.h and attention.c).

#include "common/softmax_row.h"

// C (M, N) = alpha op(A) op(B) + beta C through GEMM, cut into pieces of at most
// ATT_GEMM_MAX_MNK multiply-adds (see attention.c) by halving the larger of M and N
// (independent blocks of C: the sum over K of each element is never split).
static void FN(gemm_small)(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, REAL alpha,
                           const REAL *A, int lda, const REAL *B, int ldb, REAL beta, REAL *C,
                           int ldc) {
    if (M <= 0 || N <= 0) return;
    if ((double)M * N * K <= ATT_GEMM_MAX_MNK || (M == 1 && N == 1)) {
        GEMM(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else if (M >= N) {
        const int h = M / 2; // rows of C: rows of op(A)
        const REAL *A2 = ta == CblasNoTrans ? A + (size_t)h * lda : A + h;
        FN(gemm_small)(ta, tb, h, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        FN(gemm_small)(ta, tb, M - h, N, K, alpha, A2, lda, B, ldb, beta, C + (size_t)h * ldc, ldc);
    } else {
        const int h = N / 2; // columns of C: columns of op(B)
        const REAL *B2 = tb == CblasNoTrans ? B + h : B + (size_t)h * ldb;
        FN(gemm_small)(ta, tb, M, h, K, alpha, A, lda, B, ldb, beta, C, ldc);
        FN(gemm_small)(ta, tb, M, N - h, K, alpha, A, lda, B2, ldb, beta, C + h, ldc);
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
            FN(gemm_small)(CblasNoTrans, CblasTrans, m, kmax, D, 1, q + (size_t)r0 * C3, C3, k, C3,
                           0, pr + (size_t)r0 * T, T);
            for (int r = r0; r < r1; r++) {
                FN(softmax_clip_row_fwd)(prm, pr + (size_t)r * T, pp + (size_t)r * T,
                                         pr + (size_t)r * T, len[r], T);
            }
            // ctx[r0:r1] (m, D) = probs[r0:r1, :kmax] v[:kmax]
            FN(gemm_small)(CblasNoTrans, CblasNoTrans, m, D, kmax, 1, pr + (size_t)r0 * T, T, v, C3,
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
            FN(gemm_small)(CblasNoTrans, CblasTrans, m, kmax, D, 1, dO + (size_t)r0 * C, C, v, C3,
                           0, dsb, T);
            // dv[:kmax] += probs[r0:r1, :kmax]^T dctx[r0:r1]
            FN(gemm_small)(CblasTrans, CblasNoTrans, kmax, D, m, 1, prb, T, dO + (size_t)r0 * C, C,
                           1, dv, C3);
            for (int r = r0; r < r1; r++) {
                FN(softmax_clip_row_bwd_inplace)(prm, ds + (size_t)r * T, pp + (size_t)r * T,
                                                 len[r], kmax);
            }
            // dq[r0:r1] += dscores (m, kmax) k[:kmax]; dk[:kmax] += dscores^T q[r0:r1]
            FN(gemm_small)(CblasNoTrans, CblasNoTrans, m, D, kmax, 1, dsb, T, k, C3, 1,
                           dq + (size_t)r0 * C3, C3);
            FN(gemm_small)(CblasTrans, CblasNoTrans, kmax, D, m, 1, dsb, T, q + (size_t)r0 * C3, C3,
                           1, dk, C3);
        }
    }
    return QT_OK;
}

// ---- the fused (flash) attention (kernels/attention.h, FLASH_CLIP.md) ---------------------
//
// One task per (b, h), on its thread's slice of the workspace. Tiles: the query block
// [r0, r0 + m) (m <= br) and the key block [j0, j0 + n), n <= bc, where the block's keys stop at
// kmax, the longest length among its rows (so causal blocks skip the masked triangle). The
// scores of a tile always come from FN(flash_scores) with the same arguments, hence the same
// bits in every pass (the clip masks M of the forward and the backward agree).

// A task's workspace (elements); each piece starts on a 16-element boundary.
typedef struct {
    REAL *S;    // (br, bc): scores; the backward keeps P there
    REAL *PP;   // (2 br, bc): forward [Pc; M P] (m rows each), or vanilla's exp(S - m);
                //             backward Pc (first br rows) and dPc -> dS (next br rows)
    REAL *acc;  // (2 br, D): forward [A; R] (m rows each); backward the tile of dA = g dO
    REAL *dkv;  // (2 bc, D): backward dK_j, then dV_j
    REAL *row;  // (5 br): forward m, l, L, a, c of the block's rows
    REAL *trow; // (3 T): backward a, c, D of the task's rows
} FN(flash_ws);

static inline size_t FN(flash_round)(size_t n) { return (n + 15) / 16 * 16; }

// The elements of one thread's workspace, and its pieces at `base`.
static size_t FN(flash_thread_elems)(int br, int bc, int D, int T) {
    const size_t r = (size_t)br, c = (size_t)bc, d = (size_t)D;
    return FN(flash_round)(r * c) + FN(flash_round)(2 * r * c) + FN(flash_round)(2 * r * d) +
           FN(flash_round)(2 * c * d) + FN(flash_round)(5 * r) + FN(flash_round)(3 * (size_t)T);
}
static FN(flash_ws) FN(flash_ws_at)(REAL *base, int br, int bc, int D) {
    const size_t r = (size_t)br, c = (size_t)bc, d = (size_t)D;
    FN(flash_ws) w;
    w.S = base;
    w.PP = w.S + FN(flash_round)(r * c);
    w.acc = w.PP + FN(flash_round)(2 * r * c);
    w.dkv = w.acc + FN(flash_round)(2 * r * d);
    w.row = w.dkv + FN(flash_round)(2 * c * d);
    w.trow = w.row + FN(flash_round)(5 * r);
    return w;
}

// Workspace bytes for `threads` threads: the B H dsink partials, then one slice per thread.
// Shapes are sanitized (a bad shape is refused by the op itself).
size_t FN(qt_cpu_attention_flash_ws_bytes)(const qt_attn_params *ap, int B, int T, int C, int H,
                                           int threads) {
    B = B > 0 ? B : 1;
    T = T > 0 ? T : 1;
    H = H > 0 ? H : 1;
    const int D = C / H > 0 ? C / H : 1;
    const int br = ap && ap->br > 0 ? ap->br : QT_ATTN_TILE;
    const int bc = ap && ap->bc > 0 ? ap->bc : QT_ATTN_TILE;
    const size_t shared = FN(flash_round)((size_t)B * (size_t)H);
    return (shared + (size_t)(threads > 0 ? threads : 1) * FN(flash_thread_elems)(br, bc, D, T)) *
           sizeof(REAL);
}

// The checks both directions share, before any pointer: the params and the shape.
static qt_status FN(flash_check)(const char *op, const qt_attn_params *ap, int B, int T, int C,
                                 int H) {
    QT_TRY(qt_check_attn_params(op, ap)); // base/params_check.h: the CUDA launchers' too
    QT_TRY(check_heads(op, C, "H", H));
    return check_rows(op, "B", B, "T", T);
}

// The threads the workspace holds (at least one, at most omp_get_max_threads()).
static qt_status FN(flash_threads)(const char *op, const qt_attn_params *ap, int B, int T, int C,
                                   int H, const void *ws, size_t ws_bytes, int *nt) {
    const size_t one = FN(qt_cpu_attention_flash_ws_bytes)(ap, B, T, C, H, 1);
    const size_t two = FN(qt_cpu_attention_flash_ws_bytes)(ap, B, T, C, H, 2);
    if (!ws || (uintptr_t)ws % sizeof(REAL) != 0 || ws_bytes < one)
        return qt_error(QT_ERR_ARG,
                        "%s: workspace %p of %zu bytes; pass one aligned to %zu bytes of at least "
                        "%zu (qt_cpu_attention_flash_ws_bytes for 1 thread)",
                        op, ws, ws_bytes, sizeof(REAL), one);
    const size_t fit = 1 + (ws_bytes - one) / (two - one);
    const int max = omp_get_max_threads();
    *nt = fit < (size_t)max ? (int)fit : max;
    return QT_OK;
}

// The tile's scores S (m, n) = scale Q[r0:r0+m] K[j0:j0+n]^T (row stride bc).
static inline void FN(flash_scores)(REAL *S, int bc, const REAL *q, const REAL *k, int C3, int r0,
                                    int m, int j0, int n, int D, REAL scale) {
    FN(gemm_small)(CblasNoTrans, CblasTrans, m, n, D, scale, q + (size_t)r0 * C3, C3,
                   k + (size_t)j0 * C3, C3, 0, S, bc);
}

// The online softmax step of one row over its na >= 1 attended scores s: the running max *m
// and sum *l move on; e (when not NULL) gets exp(s - m) on the first na of n columns and 0 on
// the rest. Returns the old state's rescale factor exp(m_old - m_new) (0 from -inf).
static inline REAL FN(flash_online)(const REAL *s, int na, REAL *m, REAL *l, REAL *e, int n) {
    REAL mx = *m;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < na; j++)
        mx = s[j] > mx ? s[j] : mx;
    const REAL alpha = *m == (REAL)-INFINITY ? (REAL)0 : EXP(*m - mx);
    REAL sum = 0;
    if (e) {
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < na; j++) {
            const REAL x = EXP(s[j] - mx);
            e[j] = x;
            sum += x;
        }
        for (int j = na; j < n; j++)
            e[j] = 0;
    } else {
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < na; j++)
            sum += EXP(s[j] - mx);
    }
    *l = *l * alpha + sum;
    *m = mx;
    return alpha;
}

// One row of a tile from P = exp(s - L): pc = clip(a P + c, 0, 1) and mp = M P on the first na
// (attended) of n columns, zeros on the rest (by index: c > 0 maps P = 0 above 0). Returns the
// attended pc that are exactly 0.
static inline int FN(flash_clip_row)(const REAL *s, REAL *restrict pc, REAL *restrict mp, int n,
                                     int na, REAL L, REAL a, REAL c) {
    int zeros = 0;
#pragma omp simd reduction(+ : zeros)
    for (int j = 0; j < n; j++) {
        const REAL P = EXP(s[j] - L);
        const REAL z = FN(clip_arg)(a, P, c);
        const REAL y = z < (REAL)0 ? (REAL)0 : z > (REAL)1 ? (REAL)1 : z;
        const int att = j < na, lin = (z >= (REAL)0) & (z <= (REAL)1);
        pc[j] = att ? y : (REAL)0;
        mp[j] = att & lin ? P : (REAL)0;
        zeros += att & (y == (REAL)0);
    }
    return zeros;
}

static void FN(flash_fwd_task)(const qt_attn_params *ap, const FN(flash_ws) * w, int b, int h,
                               REAL *out, REAL *ctx, REAL *lse, REAL *R, int64_t *nzero,
                               const REAL *qkv, const REAL *gate, const REAL *sink, const int *lens,
                               int T, int C, int H) {
    const int D = C / H, C3 = 3 * C;
    const int br = ap->br > 0 ? ap->br : QT_ATTN_TILE, bc = ap->bc > 0 ? ap->bc : QT_ATTN_TILE;
    const int two_pass = ap->sm.kind != QT_SOFTMAX_VANILLA, has_sink = ap->sink != QT_SINK_NONE;
    const REAL scale = (REAL)ap->sm.scale;
    const REAL s0 = ap->sink == QT_SINK_LEARNED ? sink[h] : (REAL)0;
    const REAL *q = qkv + (size_t)b * T * C3 + (size_t)h * D, *k = q + C, *v = q + 2 * C;
    const int *len = lens + (size_t)b * T;
    REAL *rm = w->row, *rl = rm + br, *rL = rl + br, *ra = rL + br, *rc = ra + br;
    int64_t zeros = 0;
    for (int r0 = 0; r0 < T; r0 += br) {
        const int m = r0 + br < T ? br : T - r0, kmax = FN(block_keys)(len, r0, r0 + m);
        for (int i = 0; i < m; i++) {
            const FN(clip_map) cm = FN(clip_map_of)(&ap->sm, len[r0 + i]);
            rm[i] = has_sink ? s0 : (REAL)-INFINITY; // the sink's logit is the first "key"
            rl[i] = has_sink ? (REAL)1 : (REAL)0;
            ra[i] = cm.a;
            rc[i] = cm.c;
        }
        if (two_pass) {
            // pass 1: the row statistics, then L
            for (int j0 = 0; j0 < kmax; j0 += bc) {
                const int n = j0 + bc < kmax ? bc : kmax - j0;
                FN(flash_scores)(w->S, bc, q, k, C3, r0, m, j0, n, D, scale);
                for (int i = 0; i < m; i++) {
                    const int na = len[r0 + i] - j0 < n ? len[r0 + i] - j0 : n;
                    if (na > 0)
                        FN(flash_online)(w->S + (size_t)i * bc, na, &rm[i], &rl[i], NULL, n);
                }
            }
            for (int i = 0; i < m; i++)
                rL[i] = rm[i] + LOG(rl[i]);
            // pass 2: [A; R] += [Pc; M P] V_j (R's half only when R is kept)
            const int rows = R ? 2 * m : m;
            memset(w->acc, 0, (size_t)rows * D * sizeof(REAL));
            for (int j0 = 0; j0 < kmax; j0 += bc) {
                const int n = j0 + bc < kmax ? bc : kmax - j0;
                FN(flash_scores)(w->S, bc, q, k, C3, r0, m, j0, n, D, scale);
                for (int i = 0; i < m; i++) {
                    const int na = len[r0 + i] - j0 < n ? len[r0 + i] - j0 : n;
                    zeros += FN(flash_clip_row)(w->S + (size_t)i * bc, w->PP + (size_t)i * bc,
                                                w->PP + (size_t)(m + i) * bc, n, na, rL[i], ra[i],
                                                rc[i]);
                }
                FN(gemm_small)(CblasNoTrans, CblasNoTrans, rows, D, n, 1, w->PP, bc,
                               v + (size_t)j0 * C3, C3, 1, w->acc, D);
            }
        } else {
            // vanilla: one pass, A rescaled as the running max moves, normalized at the end
            memset(w->acc, 0, (size_t)m * D * sizeof(REAL));
            for (int j0 = 0; j0 < kmax; j0 += bc) {
                const int n = j0 + bc < kmax ? bc : kmax - j0;
                FN(flash_scores)(w->S, bc, q, k, C3, r0, m, j0, n, D, scale);
                for (int i = 0; i < m; i++) {
                    const int na = len[r0 + i] - j0 < n ? len[r0 + i] - j0 : n;
                    REAL *e = w->PP + (size_t)i * bc;
                    if (na <= 0) {
                        for (int j = 0; j < n; j++)
                            e[j] = 0;
                        continue;
                    }
                    const REAL alpha =
                        FN(flash_online)(w->S + (size_t)i * bc, na, &rm[i], &rl[i], e, n);
                    for (int j = 0; j < na; j++)
                        zeros += e[j] == (REAL)0;
                    if (alpha != (REAL)1) {
                        REAL *ai = w->acc + (size_t)i * D;
#pragma omp simd
                        for (int d = 0; d < D; d++)
                            ai[d] *= alpha;
                    }
                }
                FN(gemm_small)(CblasNoTrans, CblasNoTrans, m, D, n, 1, w->PP, bc,
                               v + (size_t)j0 * C3, C3, 1, w->acc, D);
            }
            for (int i = 0; i < m; i++) {
                const REAL inv = (REAL)1 / rl[i];
                REAL *ai = w->acc + (size_t)i * D;
#pragma omp simd
                for (int d = 0; d < D; d++)
                    ai[d] *= inv;
                rL[i] = rm[i] + LOG(rl[i]);
            }
        }
        // emit L, A, R and O = g A
        for (int i = 0; i < m; i++) {
            const int t = r0 + i;
            const size_t off = ((size_t)b * T + t) * C + (size_t)h * D;
            const REAL *ai = w->acc + (size_t)i * D;
            lse[((size_t)b * H + h) * T + t] = rL[i];
            memcpy(ctx + off, ai, (size_t)D * sizeof(REAL));
            if (two_pass && R)
                memcpy(R + off, w->acc + (size_t)(m + i) * D, (size_t)D * sizeof(REAL));
            if (ap->gate == QT_ATTN_GATE_HEAD) {
                const REAL g = gate[((size_t)b * T + t) * H + h];
#pragma omp simd
                for (int d = 0; d < D; d++)
                    out[off + d] = g * ai[d];
            } else if (ap->gate == QT_ATTN_GATE_CHANNEL) {
#pragma omp simd
                for (int d = 0; d < D; d++)
                    out[off + d] = gate[off + d] * ai[d];
            }
        }
    }
    if (nzero) nzero[(size_t)b * H + h] = zeros;
}

qt_status FN(qt_cpu_attention_flash_fwd)(const qt_attn_params *ap, REAL *out, REAL *ctx, REAL *lse,
                                         REAL *R, int64_t *nzero, const REAL *qkv, const REAL *gate,
                                         const REAL *sink, const int *lens, int B, int T, int C,
                                         int H, void *ws, size_t ws_bytes) {
    const char *op = OPNAME("attention_flash_fwd");
    QT_TRY(FN(flash_check)(op, ap, B, T, C, H));
    if (B == 0) return QT_OK;
    const int gated = ap->gate != QT_ATTN_GATE_NONE, learned = ap->sink == QT_SINK_LEARNED;
    QT_TRY(check_ptrs(op,
                      ctx && lse && qkv && lens && (!gated || (out && gate)) && (!learned || sink),
                      "ctx, lse, qkv, lens, out and gate (gated), sink (learned sink)"));
    QT_TRY(check_lens(op, lens, (size_t)B * (size_t)T, T));
    int nt = 1;
    QT_TRY(FN(flash_threads)(op, ap, B, T, C, H, ws, ws_bytes, &nt));
    const int D = C / H;
    const int br = ap->br > 0 ? ap->br : QT_ATTN_TILE, bc = ap->bc > 0 ? ap->bc : QT_ATTN_TILE;
    REAL *slices = (REAL *)ws + FN(flash_round)((size_t)B * (size_t)H);
    const size_t per = FN(flash_thread_elems)(br, bc, D, T);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && B * H > 1)
    for (int bh = 0; bh < B * H; bh++) {
        const FN(flash_ws) w =
            FN(flash_ws_at)(slices + (size_t)omp_get_thread_num() * per, br, bc, D);
        FN(flash_fwd_task)(ap, &w, bh / H, bh % H, out, ctx, lse, R, nzero, qkv, gate, sink, lens,
                           T, C, H);
    }
    return QT_OK;
}

// One row of the backward's tile: s holds the scores on entry and P = exp(s - L) (attended,
// else 0) on exit; pc = clip(a P + c, 0, 1) (attended, else 0).
static inline void FN(flash_bwd_probs)(REAL *restrict s, REAL *restrict pc, int n, int na, REAL L,
                                       REAL a, REAL c) {
#pragma omp simd
    for (int j = 0; j < n; j++) {
        const REAL P = EXP(s[j] - L);
        const REAL z = FN(clip_arg)(a, P, c);
        const REAL y = z < (REAL)0 ? (REAL)0 : z > (REAL)1 ? (REAL)1 : z;
        const int att = j < na;
        s[j] = att ? P : (REAL)0;
        pc[j] = att ? y : (REAL)0;
    }
}

// In place: d holds dPc on entry, dS = P (a M dPc - D) on exit (attended, else 0); p = P.
static inline void FN(flash_bwd_ds)(REAL *restrict d, const REAL *restrict p, int n, int na, REAL a,
                                    REAL c, REAL Dt) {
#pragma omp simd
    for (int j = 0; j < n; j++) {
        const REAL g = FN(clip_grad)(a, p[j], c, d[j]);
        d[j] = j < na ? p[j] * (g - Dt) : (REAL)0;
    }
}

static void FN(flash_bwd_task)(const qt_attn_params *ap, const FN(flash_ws) * w, int b, int h,
                               REAL *dqkv, REAL *dgate, REAL *dsink_part, const REAL *dout,
                               const REAL *qkv, const REAL *ctx, const REAL *lse, const REAL *R,
                               const REAL *gate, const REAL *sink, const int *lens, int T, int C,
                               int H) {
    const int D = C / H, C3 = 3 * C;
    const int br = ap->br > 0 ? ap->br : QT_ATTN_TILE, bc = ap->bc > 0 ? ap->bc : QT_ATTN_TILE;
    const int vanilla = ap->sm.kind == QT_SOFTMAX_VANILLA;
    const qt_attn_gate gm = ap->gate;
    const REAL scale = (REAL)ap->sm.scale;
    const size_t qoff = (size_t)b * T * C3 + (size_t)h * D;
    const REAL *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
    REAL *dq = dqkv + qoff, *dk = dq + C, *dv = dq + 2 * C;
    const int *len = lens + (size_t)b * T;
    const REAL *L = lse + ((size_t)b * H + h) * T;
    REAL *ta = w->trow, *tc = ta + T, *tD = tc + T;

    // B0, per row: the clip map, dg = dO . A, D = a dA . R (vanilla: dA . A), the sink's grad
    REAL part = 0;
    for (int t = 0; t < T; t++) {
        const FN(clip_map) cm = FN(clip_map_of)(&ap->sm, len[t]);
        ta[t] = cm.a;
        tc[t] = cm.c;
        const size_t off = ((size_t)b * T + t) * C + (size_t)h * D;
        const REAL *dO = dout + off, *A = ctx + off, *X = vanilla ? A : R + off;
        REAL dd = 0;
        if (gm == QT_ATTN_GATE_HEAD) {
            const size_t gi = ((size_t)b * T + t) * H + h;
            const REAL g = gate[gi];
            REAL dg = 0;
#pragma omp simd reduction(+ : dd, dg)
            for (int d = 0; d < D; d++) {
                dd += g * dO[d] * X[d];
                dg += dO[d] * A[d];
            }
            if (dgate) dgate[gi] += dg;
        } else if (gm == QT_ATTN_GATE_CHANNEL) {
#pragma omp simd reduction(+ : dd)
            for (int d = 0; d < D; d++)
                dd += gate[off + d] * dO[d] * X[d];
            if (dgate) {
#pragma omp simd
                for (int d = 0; d < D; d++)
                    dgate[off + d] += dO[d] * A[d];
            }
        } else {
#pragma omp simd reduction(+ : dd)
            for (int d = 0; d < D; d++)
                dd += dO[d] * X[d];
        }
        tD[t] = vanilla ? dd : cm.a * dd;
        if (ap->sink == QT_SINK_LEARNED) part -= EXP(sink[h] - L[t]) * tD[t];
    }
    *dsink_part = part;

    // B2: per key block, dK_j and dV_j in the workspace; per query block attending it, the tile
    const int kall = FN(block_keys)(len, 0, T);
    REAL *dK = w->dkv, *dV = w->dkv + (size_t)bc * D, *Pc = w->PP, *dS = w->PP + (size_t)br * bc;
    for (int j0 = 0; j0 < kall; j0 += bc) {
        const int nj = j0 + bc < kall ? bc : kall - j0;
        memset(dK, 0, (size_t)nj * D * sizeof(REAL));
        memset(dV, 0, (size_t)nj * D * sizeof(REAL));
        for (int r0 = 0; r0 < T; r0 += br) {
            const int m = r0 + br < T ? br : T - r0, kmax = FN(block_keys)(len, r0, r0 + m);
            if (kmax <= j0) continue;
            const int n = j0 + bc < kmax ? bc : kmax - j0;
            FN(flash_scores)(w->S, bc, q, k, C3, r0, m, j0, n, D, scale);
            // dA = g dO of the block (ungated: dO itself, in place)
            const REAL *dA = dout + ((size_t)b * T + r0) * C + (size_t)h * D;
            int ldA = C;
            if (gm != QT_ATTN_GATE_NONE) {
                for (int i = 0; i < m; i++) {
                    const size_t off = ((size_t)b * T + r0 + i) * C + (size_t)h * D;
                    REAL *di = w->acc + (size_t)i * D;
                    if (gm == QT_ATTN_GATE_HEAD) {
                        const REAL g = gate[((size_t)b * T + r0 + i) * H + h];
#pragma omp simd
                        for (int d = 0; d < D; d++)
                            di[d] = g * dout[off + d];
                    } else {
#pragma omp simd
                        for (int d = 0; d < D; d++)
                            di[d] = gate[off + d] * dout[off + d];
                    }
                }
                dA = w->acc;
                ldA = D;
            }
            for (int i = 0; i < m; i++) {
                const int t = r0 + i, na = len[t] - j0 < n ? len[t] - j0 : n;
                FN(flash_bwd_probs)(w->S + (size_t)i * bc, Pc + (size_t)i * bc, n, na, L[t], ta[t],
                                    tc[t]);
            }
            // dV_j += Pc^T dA;  dPc = dA V_j^T
            FN(gemm_small)(CblasTrans, CblasNoTrans, n, D, m, 1, Pc, bc, dA, ldA, 1, dV, D);
            FN(gemm_small)(CblasNoTrans, CblasTrans, m, n, D, 1, dA, ldA, v + (size_t)j0 * C3, C3,
                           0, dS, bc);
            for (int i = 0; i < m; i++) {
                const int t = r0 + i, na = len[t] - j0 < n ? len[t] - j0 : n;
                FN(flash_bwd_ds)(dS + (size_t)i * bc, w->S + (size_t)i * bc, n, na, ta[t], tc[t],
                                 tD[t]);
            }
            // dK_j += scale dS^T Q_i;  dQ_i += scale dS K_j
            FN(gemm_small)(CblasTrans, CblasNoTrans, n, D, m, scale, dS, bc, q + (size_t)r0 * C3,
                           C3, 1, dK, D);
            FN(gemm_small)(CblasNoTrans, CblasNoTrans, m, D, n, scale, dS, bc, k + (size_t)j0 * C3,
                           C3, 1, dq + (size_t)r0 * C3, C3);
        }
        for (int j = 0; j < nj; j++) {
            REAL *dkj = dk + (size_t)(j0 + j) * C3, *dvj = dv + (size_t)(j0 + j) * C3;
            const REAL *sk = dK + (size_t)j * D, *sv = dV + (size_t)j * D;
#pragma omp simd
            for (int d = 0; d < D; d++) {
                dkj[d] += sk[d];
                dvj[d] += sv[d];
            }
        }
    }
}

qt_status FN(qt_cpu_attention_flash_bwd)(const qt_attn_params *ap, REAL *dqkv, REAL *dgate,
                                         REAL *dsink, const REAL *dout, const REAL *qkv,
                                         const REAL *ctx, const REAL *lse, const REAL *R,
                                         const REAL *gate, const REAL *sink, const int *lens, int B,
                                         int T, int C, int H, void *ws, size_t ws_bytes) {
    const char *op = OPNAME("attention_flash_bwd");
    QT_TRY(FN(flash_check)(op, ap, B, T, C, H));
    if (B == 0) return QT_OK;
    const int gated = ap->gate != QT_ATTN_GATE_NONE, learned = ap->sink == QT_SINK_LEARNED;
    const int vanilla = ap->sm.kind == QT_SOFTMAX_VANILLA;
    QT_TRY(check_ptrs(op,
                      dqkv && dout && qkv && ctx && lse && lens && (vanilla || R) &&
                          (!gated || gate) && (!learned || sink),
                      "dqkv, dout, qkv, ctx, lse, lens, R (clipped, ncs), gate (gated), sink "
                      "(learned sink)"));
    QT_TRY(check_lens(op, lens, (size_t)B * (size_t)T, T));
    int nt = 1;
    QT_TRY(FN(flash_threads)(op, ap, B, T, C, H, ws, ws_bytes, &nt));
    const int D = C / H;
    const int br = ap->br > 0 ? ap->br : QT_ATTN_TILE, bc = ap->bc > 0 ? ap->bc : QT_ATTN_TILE;
    REAL *parts = ws; // (B, H) each task's share of dsink
    REAL *slices = parts + FN(flash_round)((size_t)B * (size_t)H);
    const size_t per = FN(flash_thread_elems)(br, bc, D, T);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && B * H > 1)
    for (int bh = 0; bh < B * H; bh++) {
        const FN(flash_ws) w =
            FN(flash_ws_at)(slices + (size_t)omp_get_thread_num() * per, br, bc, D);
        FN(flash_bwd_task)(ap, &w, bh / H, bh % H, dqkv, dgate, parts + bh, dout, qkv, ctx, lse, R,
                           gate, sink, lens, T, C, H);
    }
    // dsink: the tasks' shares in a fixed order (b ascending), whatever thread ran them
    if (learned && dsink)
        for (int h = 0; h < H; h++) {
            REAL s = 0;
            for (int b = 0; b < B; b++)
                s += parts[(size_t)b * H + h];
            dsink[h] += s;
        }
    return QT_OK;
}

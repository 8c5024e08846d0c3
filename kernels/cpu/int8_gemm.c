// int8_gemm.c: INT8 GEMM C = A B^T (int8 x int8 -> int32, exact) and the W8A8 linear layer with
// the dequantization fused in the epilogue (PAPERS.md section 5); API in kernels/int8_gemm.h.
//
// Three paths, picked at run time (qt_cpu_gemm_s8_set_path, QT_INT8_GEMM, else the best one
// this CPU supports: avx512vnni, then avx2, then portable):
//   portable    plain loops, one int32 dot product per output; the reference the others match.
//   avx2        A and B packed once per call into int16 pair panels (sign-extended with
//               vpmovsxbw while packing, not in the inner loop), then 4 x 24 register tiles:
//               a broadcast pair of A int16s times 8 pairs of B int16s with vpmaddwd, which sums
//               the two products into int32. |a b| <= 2^14, so a pair sum <= 2^15 and nothing
//               saturates: the result is exact, unlike vpmaddubsw (u8 x s8 with int16
//               saturation). Padding rows, columns and the odd k are zero; the edge tiles go
//               through the same kernel and store only their valid part.
//   avx512vnni  vpdpbusd (4 u8 x s8 products into an int32 lane) on 8 x 48 zmm tiles: B offset
//               to unsigned (+128) in its packed panels, A read in place, and the offset taken
//               back out exactly per row (see the section's comment).
// All overwrite their output with the same epilogue (store(); the vector paths run the same
// operations in the same order on full tiles, and C11 mode contracts none of them into an FMA),
// so every path gives the same floats: out = ((float)c * a_scale[m]) * b_scale[n] + bias[n],
// where the zero-point variant first removes the activation zero point in int32:
// c -= a_zero[m] * b_rowsum[n] (exact for K <= QT_INT8_GEMM_ZP_MAX_K: the true result and
// both terms fit int32).
// Exactness bound: every partial sum of the true product is at most K * 2^14 in magnitude,
// below 2^31 for K <= QT_INT8_GEMM_MAX_K; larger K is refused rather than wrapped.
#include "kernels/int8_gemm.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QT_INT8_X86 1
#else
#define QT_INT8_X86 0
#endif

// ---- epilogue ------------------------------------------------------------------------------

// Where a tile's results go: int32 C, or dequantized float out.
typedef struct {
    int32_t *C;           // (M, N) or NULL when out is set
    float *out;           // (M, N) or NULL when C is set
    const float *a_scale; // (M) per-token scale (with out)
    const float *b_scale; // (N) per-channel scale (with out)
    const float *bias;    // (N) or NULL
    const int32_t *a_zero;   // (M) shifted activation zero points, or NULL (symmetric)
    const int32_t *b_rowsum; // (N) sum_k B[n][k] (with a_zero)
    int N;                // row stride of C / out
} epilogue;

static inline void store(const epilogue *e, int m, int n, int32_t c) {
    size_t i = (size_t)m * (size_t)e->N + (size_t)n;
    if (e->a_zero) c -= e->a_zero[m] * e->b_rowsum[n];
    if (e->out) {
        float v = (float)c * e->a_scale[m] * e->b_scale[n];
        if (e->bias) v += e->bias[n];
        e->out[i] = v;
    } else {
        e->C[i] = c;
    }
}

// ---- portable ------------------------------------------------------------------------------

static void gemm_portable(const epilogue *e, const int8_t *A, const int8_t *B, int M, int N,
                          int K) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const int8_t *a = A + (size_t)m * (size_t)K; // (K)
        for (int n = 0; n < N; n++) {
            const int8_t *b = B + (size_t)n * (size_t)K; // (K)
            int32_t acc = 0;
            for (int k = 0; k < K; k++) acc += (int32_t)a[k] * (int32_t)b[k];
            store(e, m, n, acc);
        }
    }
}

// ---- the tile grid of the vector paths ---------------------------------------------------

#if QT_INT8_X86
// The (M, N) output in MR x NR tiles: row panel i holds rows [i MR, i MR + MR), column panel j
// columns [j NR, j NR + NR), the last of each clipped to M, N. The tiles are grouped into tasks,
// (column block, row block) pairs handed out dynamically (the machine is shared; a thread that
// loses its core does not hold up the rest), column block major so both threads share a hot
// block. Column blocks have equal size (at most nc_panels panels each), so no block is a small
// remainder; a row block is mc rows.
typedef struct {
    int m_pan, n_pan; // row panels, column panels
    int nb_pan, n_nb; // column panels per column block, column blocks
    int mc_pan, n_mb; // row panels per row block, row blocks
} tile_grid;

static tile_grid tile_grid_of(int M, int N, int mr, int nr, int nc_panels, int mc) {
    tile_grid g = {.m_pan = QT_CEIL_DIV(M, mr), .n_pan = QT_CEIL_DIV(N, nr), .mc_pan = mc / mr};
    g.n_nb = QT_CEIL_DIV(g.n_pan, nc_panels);
    g.nb_pan = QT_CEIL_DIV(g.n_pan, g.n_nb);
    g.n_mb = QT_CEIL_DIV(g.m_pan, g.mc_pan);
    return g;
}

// A path's two phases, on its own job (ctx): prep(ctx, i) packs item i (a panel, a row sum);
// tile(ctx, i, j) runs the micro-kernel on tile (row panel i, column panel j) and stores it
// through the epilogue. Each path's micro-kernel and store are inlined into its tile function;
// one indirect call per tile (hundreds of micro-kernel iterations) costs nothing measurable.
typedef void (*prep_fn)(void *ctx, int i);
typedef void (*tile_fn)(void *ctx, int i, int j);

// prep for every i in [0, n_prep) (static schedule), then, once every item is done, tile for
// every tile of g, by tasks.
static void run_grid(const tile_grid *g, int n_prep, prep_fn prep, tile_fn tile, void *ctx) {
    const long n_tasks = (long)g->n_nb * (long)g->n_mb;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int i = 0; i < n_prep; i++) {
            prep(ctx, i);
        }
        // (implicit barrier: every item is complete)
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < n_tasks; t++) {
            const int nb = (int)(t / g->n_mb), mb = (int)(t % g->n_mb);
            const int j_end = (nb + 1) * g->nb_pan < g->n_pan ? (nb + 1) * g->nb_pan : g->n_pan;
            const int i_end = (mb + 1) * g->mc_pan < g->m_pan ? (mb + 1) * g->mc_pan : g->m_pan;
            for (int j = nb * g->nb_pan; j < j_end; j++)
                for (int i = mb * g->mc_pan; i < i_end; i++)
                    tile(ctx, i, j);
        }
    }
}

// The valid rows (columns) of panel i of `size` per panel over an extent of n.
static inline int panel_extent(int n, int i, int size) {
    return n - i * size < size ? n - i * size : size;
}
#endif

// ---- avx2 ----------------------------------------------------------------------------------

#if QT_INT8_X86
// Both operands are packed once per call into int16 pair panels, so the inner loop streams
// contiguous, aligned memory and never widens:
//   A panel (MR rows):  for each k pair p, MR int32 words, word i = (A[i][2p], A[i][2p+1]) as
//                       two int16 (little-endian: low half is the even k).
//   B panel (NR cols):  for each k pair p, NR int32 words, word j = (B[j][2p], B[j][2p+1]).
// Rows past M, columns past N and the odd k past K are zero. The micro-kernel broadcasts one A
// word (vpbroadcastd) and vpmaddwd's it with 8 B words: each int32 lane gets a[2p] b[2p] +
// a[2p+1] b[2p+1], both products at most 2^14, so a lane never saturates and the sum is exact.
// An MR x NR tile keeps 12 int32 accumulators (4 rows x 3 vectors of 8 columns), 3 B vectors
// and 1 broadcast A word in the 16 ymm registers, so each loaded B vector is used 4 times and
// each A word 3 times.
#define AVX2_MR 4
#define AVX2_NR 24
// Columns per block: a block of B (NC x K int16, 96 KiB at K = 256) stays in L2 while one
// row block of A passes it; each B micro-panel (NR x K) is reused over MC rows from L1.
#define AVX2_NC_PANELS 8
#define AVX2_MC 64

// Packs rows r0.. (mr <= 4 valid, the rest zero) of X (rows of length K) into an MR-wide
// pair panel of kp pairs: dst[p * 4 + i]. 16 k at a time with a 4x8 transpose of int32 words.
__attribute__((target("avx2"))) static void pack_a_avx2(int32_t *dst, const int8_t *X, int K,
                                                        int kp, int mr) {
    int p = 0;
    if (mr == AVX2_MR) {
        const int8_t *x0 = X, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
        for (; 2 * p + 16 <= K; p += 8) {
            int k = 2 * p;
            __m256i r0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x0 + k)));
            __m256i r1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x1 + k)));
            __m256i r2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x2 + k)));
            __m256i r3 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x3 + k)));
            // rN lane j holds pair j of row N (pairs 0-3 low half, 4-7 high half).
            __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpacklo_epi32(r2, r3);
            __m256i t2 = _mm256_unpackhi_epi32(r0, r1), t3 = _mm256_unpackhi_epi32(r2, r3);
            __m256i u0 = _mm256_unpacklo_epi64(t0, t1); // pair 0 | pair 4
            __m256i u1 = _mm256_unpackhi_epi64(t0, t1); // pair 1 | pair 5
            __m256i u2 = _mm256_unpacklo_epi64(t2, t3); // pair 2 | pair 6
            __m256i u3 = _mm256_unpackhi_epi64(t2, t3); // pair 3 | pair 7
            __m256i *d = (__m256i *)(dst + (size_t)p * AVX2_MR); // 16-byte aligned
            _mm256_storeu_si256(d + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
            _mm256_storeu_si256(d + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
            _mm256_storeu_si256(d + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
            _mm256_storeu_si256(d + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
        }
    }
    for (; p < kp; p++)
        for (int i = 0; i < AVX2_MR; i++) {
            int k = 2 * p;
            const int8_t *x = X + (size_t)i * (size_t)K;
            uint16_t lo = i < mr ? (uint16_t)(int16_t)x[k] : 0;
            uint16_t hi = i < mr && k + 1 < K ? (uint16_t)(int16_t)x[k + 1] : 0;
            dst[(size_t)p * AVX2_MR + i] = (int32_t)((uint32_t)lo | ((uint32_t)hi << 16));
        }
}

// Packs rows c0.. (nr <= 24 valid, the rest zero) of B into an NR-wide pair panel of kp
// pairs: dst[p * 24 + j]. Full groups of 8 rows, 16 k at a time, with an 8x8 transpose.
__attribute__((target("avx2"))) static void pack_b_avx2(int32_t *dst, const int8_t *X, int K,
                                                        int kp, int nr) {
    int kv = 0; // pairs [0, kv) of the full 8-row groups done in vector code
    for (int g = 0; g + 8 <= nr; g += 8) {
        const int8_t *x = X + (size_t)g * (size_t)K;
        int p = 0;
        for (; 2 * p + 16 <= K; p += 8) {
            int k = 2 * p;
            __m256i r[8];
            for (int i = 0; i < 8; i++)
                r[i] = _mm256_cvtepi8_epi16(
                    _mm_loadu_si128((const __m128i *)(x + (size_t)i * (size_t)K + k)));
            __m256i u[8]; // u[h * 4 + q]: rows 4h..4h+3, pair q | pair q + 4
            for (int h = 0; h < 2; h++) {
                __m256i t0 = _mm256_unpacklo_epi32(r[4 * h], r[4 * h + 1]);
                __m256i t1 = _mm256_unpacklo_epi32(r[4 * h + 2], r[4 * h + 3]);
                __m256i t2 = _mm256_unpackhi_epi32(r[4 * h], r[4 * h + 1]);
                __m256i t3 = _mm256_unpackhi_epi32(r[4 * h + 2], r[4 * h + 3]);
                u[4 * h + 0] = _mm256_unpacklo_epi64(t0, t1);
                u[4 * h + 1] = _mm256_unpackhi_epi64(t0, t1);
                u[4 * h + 2] = _mm256_unpacklo_epi64(t2, t3);
                u[4 * h + 3] = _mm256_unpackhi_epi64(t2, t3);
            }
            for (int q = 0; q < 4; q++) {
                __m256i lo = _mm256_permute2x128_si256(u[q], u[4 + q], 0x20); // pair q
                __m256i hi = _mm256_permute2x128_si256(u[q], u[4 + q], 0x31); // pair q + 4
                _mm256_store_si256((__m256i *)(dst + (size_t)(p + q) * AVX2_NR + g), lo);
                _mm256_store_si256((__m256i *)(dst + (size_t)(p + q + 4) * AVX2_NR + g), hi);
            }
        }
        kv = p;
    }
    int gv = nr / 8 * 8; // rows [0, gv) have pairs [0, kv) done
    for (int p = 0; p < kp; p++)
        for (int j = p < kv ? gv : 0; j < AVX2_NR; j++) {
            int k = 2 * p;
            const int8_t *x = X + (size_t)j * (size_t)K;
            uint16_t lo = j < nr ? (uint16_t)(int16_t)x[k] : 0;
            uint16_t hi = j < nr && k + 1 < K ? (uint16_t)(int16_t)x[k + 1] : 0;
            dst[(size_t)p * AVX2_NR + j] = (int32_t)((uint32_t)lo | ((uint32_t)hi << 16));
        }
}

// int32 words of the packed A panels, rounded up to whole 32-byte vectors.
static size_t avx2_a_words(int M, int K) {
    size_t kp = (size_t)(K + 1) / 2;
    return ((size_t)QT_CEIL_DIV(M, AVX2_MR) * kp * AVX2_MR + 7) / 8 * 8;
}

// tile (MR, NR) int32 = A panel (kp pairs) x B panel (kp pairs)^T.
#define MAC(acc, x, y) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y))
__attribute__((target("avx2"))) static void kernel_avx2(int32_t *tile, const int32_t *ap,
                                                        const int32_t *bp, int kp) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c10 = c00, c11 = c00,
            c12 = c00, c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    for (int p = 0; p < kp; p++) {
        __m256i y0 = _mm256_load_si256((const __m256i *)bp);
        __m256i y1 = _mm256_load_si256((const __m256i *)(bp + 8));
        __m256i y2 = _mm256_load_si256((const __m256i *)(bp + 16));
        __m256i x = _mm256_set1_epi32(ap[0]);
        MAC(c00, x, y0);
        MAC(c01, x, y1);
        MAC(c02, x, y2);
        x = _mm256_set1_epi32(ap[1]);
        MAC(c10, x, y0);
        MAC(c11, x, y1);
        MAC(c12, x, y2);
        x = _mm256_set1_epi32(ap[2]);
        MAC(c20, x, y0);
        MAC(c21, x, y1);
        MAC(c22, x, y2);
        x = _mm256_set1_epi32(ap[3]);
        MAC(c30, x, y0);
        MAC(c31, x, y1);
        MAC(c32, x, y2);
        ap += AVX2_MR;
        bp += AVX2_NR;
    }
    __m256i *t = (__m256i *)tile;
    _mm256_store_si256(t + 0, c00);
    _mm256_store_si256(t + 1, c01);
    _mm256_store_si256(t + 2, c02);
    _mm256_store_si256(t + 3, c10);
    _mm256_store_si256(t + 4, c11);
    _mm256_store_si256(t + 5, c12);
    _mm256_store_si256(t + 6, c20);
    _mm256_store_si256(t + 7, c21);
    _mm256_store_si256(t + 8, c22);
    _mm256_store_si256(t + 9, c30);
    _mm256_store_si256(t + 10, c31);
    _mm256_store_si256(t + 11, c32);
}
#undef MAC

// The epilogue of a tile (MR, NR) at (m0, n0): vector code for full tiles, the same float
// operations in the same order as store() (mul, mul, add; C11 contracts nothing into FMA), so
// the floats are identical; store() itself on the edges.
__attribute__((target("avx2"))) static void tile_store_avx2(const epilogue *e,
                                                            const int32_t *tile, int m0, int n0,
                                                            int mr, int nr) {
    if (mr < AVX2_MR || nr < AVX2_NR) {
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) store(e, m0 + i, n0 + j, tile[i * AVX2_NR + j]);
        return;
    }
    for (int i = 0; i < AVX2_MR; i++) {
        int m = m0 + i;
        size_t row = (size_t)m * (size_t)e->N + (size_t)n0;
        __m256i az = _mm256_set1_epi32(e->a_zero ? e->a_zero[m] : 0);
        __m256 as = _mm256_set1_ps(e->out ? e->a_scale[m] : 0.0f);
        for (int v = 0; v < AVX2_NR / 8; v++) {
            int n = n0 + 8 * v;
            __m256i c = _mm256_load_si256((const __m256i *)(tile + i * AVX2_NR + 8 * v));
            if (e->a_zero)
                c = _mm256_sub_epi32(
                    c, _mm256_mullo_epi32(
                           az, _mm256_loadu_si256((const __m256i *)(e->b_rowsum + n))));
            if (e->out) {
                __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(c), as);
                f = _mm256_mul_ps(f, _mm256_loadu_ps(e->b_scale + n));
                if (e->bias) f = _mm256_add_ps(f, _mm256_loadu_ps(e->bias + n));
                _mm256_storeu_ps(e->out + row + 8 * v, f);
            } else {
                _mm256_storeu_si256((__m256i *)(e->C + row + 8 * v), c);
            }
        }
    }
}

// gemm_avx2's job: the epilogue, the operands and the packed panels.
typedef struct {
    const epilogue *e;
    const int8_t *A, *B; // (M, K), (N, K)
    int M, N, K, kp;     // kp: k pairs per panel row
    int32_t *Ap, *Bp;    // (m_pan, kp, MR), (n_pan, kp, NR)
    int m_pan;
} avx2_job;

// Item i < m_pan packs A's row panel i, the others B's column panel i - m_pan.
__attribute__((target("avx2"))) static void avx2_prep(void *ctx, int i) {
    const avx2_job *w = ctx;
    if (i < w->m_pan) {
        pack_a_avx2(w->Ap + (size_t)i * (size_t)w->kp * AVX2_MR,
                    w->A + (size_t)i * AVX2_MR * (size_t)w->K, w->K, w->kp,
                    panel_extent(w->M, i, AVX2_MR));
    } else {
        const int j = i - w->m_pan;
        pack_b_avx2(w->Bp + (size_t)j * (size_t)w->kp * AVX2_NR,
                    w->B + (size_t)j * AVX2_NR * (size_t)w->K, w->K, w->kp,
                    panel_extent(w->N, j, AVX2_NR));
    }
}

__attribute__((target("avx2"))) static void avx2_tile(void *ctx, int i, int j) {
    const avx2_job *w = ctx;
    _Alignas(32) int32_t tile[AVX2_MR * AVX2_NR];
    kernel_avx2(tile, w->Ap + (size_t)i * (size_t)w->kp * AVX2_MR,
                w->Bp + (size_t)j * (size_t)w->kp * AVX2_NR, w->kp);
    tile_store_avx2(w->e, tile, i * AVX2_MR, j * AVX2_NR, panel_extent(w->M, i, AVX2_MR),
                    panel_extent(w->N, j, AVX2_NR));
}

// Packs A and B (pk: the buffer, kp pairs per row), then runs the tiles (run_grid).
static void gemm_avx2(const epilogue *e, const int8_t *A, const int8_t *B, int M, int N, int K,
                      int32_t *pk) {
    const tile_grid g = tile_grid_of(M, N, AVX2_MR, AVX2_NR, AVX2_NC_PANELS, AVX2_MC);
    // Bp is 32-byte aligned like pk: every B vector load is aligned.
    avx2_job w = {.e = e,
                  .A = A,
                  .B = B,
                  .M = M,
                  .N = N,
                  .K = K,
                  .kp = (K + 1) / 2,
                  .Ap = pk,
                  .Bp = pk + avx2_a_words(M, K),
                  .m_pan = g.m_pan};
    run_grid(&g, g.m_pan + g.n_pan, avx2_prep, avx2_tile, &w);
}

// Bytes of the packed panels gemm_avx2 needs.
static size_t avx2_pack_bytes(int M, int N, int K) {
    size_t kp = (size_t)(K + 1) / 2;
    return (avx2_a_words(M, K) + (size_t)QT_CEIL_DIV(N, AVX2_NR) * kp * AVX2_NR) *
           sizeof(int32_t);
}
#endif

// ---- avx512vnni ----------------------------------------------------------------------------

#if QT_INT8_X86
// vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the 4 products to an int32
// lane (no saturation: the lane wraps modulo 2^32). Both operands here are signed, so B is
// offset to unsigned, B' = B + 128 (u8), and the offset is taken back out exactly:
//     sum_k A[m][k] B'[n][k] = (A B^T)[m][n] + 128 rowsum(A)[m].
// Every product is at most 255 * 128 in magnitude, so the wrapped int32 lane holds the left
// side modulo 2^32; the true result fits int32 (K <= QT_INT8_GEMM_MAX_K), so subtracting
// 128 rowsum(A)[m] modulo 2^32 gives it exactly, whatever the intermediate wrapping.
// A is read in place (row-major, 4 bytes = one k quad per broadcast), so only B is packed:
//   B panel (NR cols): for each k quad q, NR int32 words, word j = B'[j][4q .. 4q+3].
// The quads past K (K % 4 != 0) are padded with B' = 0, which zeroes their products whatever A
// holds there; A's tail quad is copied into a zero-padded word instead of being read past
// the row. Rows past M read the last row (their results are dropped); columns past N are
// zero. An MR x NR tile keeps 24 int32 accumulators (8 rows x 3 vectors of 16 columns), 3 B
// vectors and a broadcast A word in the 32 zmm registers.
#define VNNI_MR 8
#define VNNI_NR 48
#define VNNI_NC_PANELS 8
#define VNNI_MC 64

// Packs rows c0.. (nr <= NR valid, the rest zero) of B (rows of length K) into an NR-wide
// quad panel of kq quads: dst[q * NR + j] = B'[j][4q..4q+3]. Full groups of 8 rows, 8 quads at
// a time, with an 8x8 transpose of int32 words.
__attribute__((target("avx2"))) static void pack_b_vnni(int32_t *dst, const int8_t *X, int K,
                                                        int kq, int nr) {
    const __m256i offset = _mm256_set1_epi8((char)0x80); // x ^ 0x80 = x + 128 as a u8
    const int kfull = K / 4;                              // quads with 4 valid bytes
    int qv = 0; // quads [0, qv) of the full 8-row groups done in vector code
    for (int g = 0; g + 8 <= nr; g += 8) {
        const int8_t *x = X + (size_t)g * (size_t)K;
        int q = 0;
        for (; q + 8 <= kfull; q += 8) {
            __m256i r[8];
            for (int i = 0; i < 8; i++)
                r[i] = _mm256_xor_si256(
                    _mm256_loadu_si256((const __m256i *)(x + (size_t)i * (size_t)K + 4 * q)),
                    offset);
            // 8x8 transpose of int32 words: r[i] word t -> out[t] word i.
            __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
            __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
            __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
            __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
            __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
            __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
            __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
            __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
            __m256i o[8] = {_mm256_permute2x128_si256(u0, u4, 0x20),
                            _mm256_permute2x128_si256(u1, u5, 0x20),
                            _mm256_permute2x128_si256(u2, u6, 0x20),
                            _mm256_permute2x128_si256(u3, u7, 0x20),
                            _mm256_permute2x128_si256(u0, u4, 0x31),
                            _mm256_permute2x128_si256(u1, u5, 0x31),
                            _mm256_permute2x128_si256(u2, u6, 0x31),
                            _mm256_permute2x128_si256(u3, u7, 0x31)};
            for (int t = 0; t < 8; t++)
                _mm256_store_si256((__m256i *)(dst + (size_t)(q + t) * VNNI_NR + g), o[t]);
        }
        qv = q;
    }
    const int gv = nr / 8 * 8; // rows [0, gv) have quads [0, qv) done
    for (int q = 0; q < kq; q++)
        for (int j = q < qv ? gv : 0; j < VNNI_NR; j++) {
            uint32_t w = 0;
            for (int t = 0; t < 4; t++) {
                int k = 4 * q + t;
                uint8_t b = j < nr && k < K ? (uint8_t)(X[(size_t)j * (size_t)K + k] ^ 0x80) : 0;
                w |= (uint32_t)b << (8 * t);
            }
            dst[(size_t)q * VNNI_NR + j] = (int32_t)w;
        }
}

// tile (MR, NR) int32 = sum over the quads of A rows a[i] (read in place: kfull full quads,
// then, when K % 4 != 0, the row's zero-padded `tail` word) times the B' panel's quads.
// Written out register by register: 24 named accumulators stay in zmm registers (an array
// indexed in a loop would live in memory).
#define DP(acc, x, y) acc = _mm512_dpbusd_epi32(acc, y, x) // y: B' (u8), x: A (s8)
#define ROW(i, w)                                                                             \
    do {                                                                                      \
        __m512i x_ = _mm512_set1_epi32(w);                                                    \
        DP(c##i##0, x_, y0);                                                                  \
        DP(c##i##1, x_, y1);                                                                  \
        DP(c##i##2, x_, y2);                                                                  \
    } while (0)
#define LOADB()                                                                               \
    __m512i y0 = _mm512_loadu_si512((const void *)bp);                                         \
    __m512i y1 = _mm512_loadu_si512((const void *)(bp + 16));                                  \
    __m512i y2 = _mm512_loadu_si512((const void *)(bp + 32))
static inline int32_t load_word(const int8_t *p) {
    int32_t w;
    memcpy(&w, p, 4);
    return w;
}
__attribute__((target("avx512f,avx512vnni"))) static void
kernel_vnni(int32_t *tile, const int8_t *const a[VNNI_MR], const int32_t *tail,
            const int32_t *bp, int kfull, int kq) {
    const __m512i z = _mm512_setzero_si512();
    __m512i c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z, c22 = z;
    __m512i c30 = z, c31 = z, c32 = z, c40 = z, c41 = z, c42 = z, c50 = z, c51 = z, c52 = z;
    __m512i c60 = z, c61 = z, c62 = z, c70 = z, c71 = z, c72 = z;
    const int8_t *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5],
                 *a6 = a[6], *a7 = a[7];
    for (int q = 0; q < kfull; q++) {
        const size_t o = 4 * (size_t)q;
        LOADB();
        ROW(0, load_word(a0 + o));
        ROW(1, load_word(a1 + o));
        ROW(2, load_word(a2 + o));
        ROW(3, load_word(a3 + o));
        ROW(4, load_word(a4 + o));
        ROW(5, load_word(a5 + o));
        ROW(6, load_word(a6 + o));
        ROW(7, load_word(a7 + o));
        bp += VNNI_NR;
    }
    if (kq > kfull) {
        LOADB();
        ROW(0, tail[0]);
        ROW(1, tail[1]);
        ROW(2, tail[2]);
        ROW(3, tail[3]);
        ROW(4, tail[4]);
        ROW(5, tail[5]);
        ROW(6, tail[6]);
        ROW(7, tail[7]);
    }
    __m512i *t = (__m512i *)tile;
    const __m512i out[VNNI_MR * 3] = {c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32,
                                      c40, c41, c42, c50, c51, c52, c60, c61, c62, c70, c71, c72};
    for (int v = 0; v < VNNI_MR * 3; v++) _mm512_store_si512(t + v, out[v]);
}
#undef LOADB
#undef ROW
#undef DP

// The epilogue of a tile (MR, NR) at (m0, n0): first the offset's correction, c - 128
// rowsum(A)[m] (int32, wrapping like the lanes), then store()'s operations in store()'s order
// (the zero point, then mul, mul, add; nothing contracted into an FMA), 16 columns at a time
// on full tiles and through store() itself on the edges: the same floats as every path.
__attribute__((target("avx512f"))) static void tile_store_vnni(const epilogue *e,
                                                               const int32_t *tile,
                                                               const int32_t *a_sum, int m0,
                                                               int n0, int mr, int nr) {
    if (mr < VNNI_MR || nr < VNNI_NR) {
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++)
                store(e, m0 + i, n0 + j,
                      (int32_t)((uint32_t)tile[i * VNNI_NR + j] - 128u * (uint32_t)a_sum[i]));
        return;
    }
    for (int i = 0; i < VNNI_MR; i++) {
        int m = m0 + i;
        size_t row = (size_t)m * (size_t)e->N + (size_t)n0;
        __m512i off = _mm512_set1_epi32((int32_t)(128u * (uint32_t)a_sum[i]));
        __m512i az = _mm512_set1_epi32(e->a_zero ? e->a_zero[m] : 0);
        __m512 as = _mm512_set1_ps(e->out ? e->a_scale[m] : 0.0f);
        for (int v = 0; v < VNNI_NR / 16; v++) {
            int n = n0 + 16 * v;
            __m512i c = _mm512_sub_epi32(
                _mm512_load_si512((const void *)(tile + i * VNNI_NR + 16 * v)), off);
            if (e->a_zero)
                c = _mm512_sub_epi32(
                    c, _mm512_mullo_epi32(az, _mm512_loadu_si512((const void *)(e->b_rowsum + n))));
            if (e->out) {
                __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(c), as);
                f = _mm512_mul_ps(f, _mm512_loadu_ps(e->b_scale + n));
                if (e->bias) f = _mm512_add_ps(f, _mm512_loadu_ps(e->bias + n));
                _mm512_storeu_ps(e->out + row + 16 * v, f);
            } else {
                _mm512_storeu_si512((void *)(e->C + row + 16 * v), c);
            }
        }
    }
}

// gemm_vnni's job: the epilogue, the operands, the packed B panels and A's row sums.
typedef struct {
    const epilogue *e;
    const int8_t *A, *B;    // (M, K), (N, K)
    int M, N, K, kq, kfull; // kq: k quads per panel row; kfull: quads with 4 valid bytes
    int32_t *Bp;            // (n_pan, kq, NR), 32-byte aligned
    int32_t *a_sum;         // (M)
    int n_pan;
} vnni_job;

// Item i < n_pan packs B's column panel i, the others sum A's row i - n_pan.
__attribute__((target("avx2"))) static void vnni_prep(void *ctx, int i) {
    const vnni_job *w = ctx;
    if (i < w->n_pan) {
        pack_b_vnni(w->Bp + (size_t)i * (size_t)w->kq * VNNI_NR,
                    w->B + (size_t)i * VNNI_NR * (size_t)w->K, w->K, w->kq,
                    panel_extent(w->N, i, VNNI_NR));
    } else {
        const int8_t *a = w->A + (size_t)(i - w->n_pan) * (size_t)w->K; // (K)
        int32_t s = 0;
        for (int k = 0; k < w->K; k++)
            s += a[k];
        w->a_sum[i - w->n_pan] = s;
    }
}

__attribute__((target("avx2,avx512f,avx512vnni"))) static void vnni_tile(void *ctx, int i, int j) {
    const vnni_job *w = ctx;
    _Alignas(64) int32_t tile[VNNI_MR * VNNI_NR];
    const int m0 = i * VNNI_MR, mr = panel_extent(w->M, i, VNNI_MR), K = w->K, kfull = w->kfull;
    const int8_t *rows[VNNI_MR];
    int32_t tail[VNNI_MR];
    for (int r = 0; r < VNNI_MR; r++) {
        rows[r] = w->A + (size_t)(m0 + (r < mr ? r : mr - 1)) * (size_t)K;
        uint32_t t = 0;
        for (int k = 4 * kfull; k < K; k++)
            t |= (uint32_t)(uint8_t)rows[r][k] << (8 * (k - 4 * kfull));
        tail[r] = (int32_t)t;
    }
    kernel_vnni(tile, rows, tail, w->Bp + (size_t)j * (size_t)w->kq * VNNI_NR, kfull, w->kq);
    tile_store_vnni(w->e, tile, w->a_sum + m0, m0, j * VNNI_NR, mr, panel_extent(w->N, j, VNNI_NR));
}

// Packs B, sums A's rows, then runs the tiles (run_grid). pk: the B panels (vnni_pack_bytes)
// then the M row sums.
static void gemm_vnni(const epilogue *e, const int8_t *A, const int8_t *B, int M, int N, int K,
                      int32_t *pk) {
    const tile_grid g = tile_grid_of(M, N, VNNI_MR, VNNI_NR, VNNI_NC_PANELS, VNNI_MC);
    const int kq = QT_CEIL_DIV(K, 4);
    vnni_job w = {.e = e,
                  .A = A,
                  .B = B,
                  .M = M,
                  .N = N,
                  .K = K,
                  .kq = kq,
                  .kfull = K / 4,
                  .Bp = pk,
                  .a_sum = pk + (size_t)g.n_pan * (size_t)kq * VNNI_NR,
                  .n_pan = g.n_pan};
    run_grid(&g, g.n_pan + M, vnni_prep, vnni_tile, &w);
}

// Bytes gemm_vnni needs: the B panels, then the row sums of A; a multiple of 64 (so an
// aligned_alloc of exactly this size is valid).
static size_t vnni_pack_bytes(int M, int N, int K) {
    const size_t words = (size_t)QT_CEIL_DIV(N, VNNI_NR) * (size_t)QT_CEIL_DIV(K, 4) * VNNI_NR;
    return ((words + (size_t)M) * sizeof(int32_t) + 63) / 64 * 64;
}
#endif

// ---- dispatch ------------------------------------------------------------------------------

enum {
    PATH_UNRESOLVED = -2,
    PATH_BAD = -1,
    PATH_PORTABLE = 0,
    PATH_AVX2 = 1,
    PATH_AVX512VNNI = 2,
    PATH_COUNT
};

static const char *const path_names[PATH_COUNT] = {"portable", "avx2", "avx512vnni"};

// The selected path; PATH_UNRESOLVED until the first call reads QT_INT8_GEMM.
static _Atomic int g_path = PATH_UNRESOLVED;

static int path_index(const char *name) {
    for (int p = 0; p < PATH_COUNT; p++)
        if (strcmp(name, path_names[p]) == 0) return p;
    return PATH_BAD;
}

static int cpu_supports(int p) {
    if (p == PATH_PORTABLE) return 1;
#if QT_INT8_X86
    __builtin_cpu_init();
    if (p == PATH_AVX2) return __builtin_cpu_supports("avx2") ? 1 : 0;
    if (p == PATH_AVX512VNNI)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
                       __builtin_cpu_supports("avx512vnni")
                   ? 1
                   : 0;
#endif
    return 0;
}

static int best_path(void) {
    if (cpu_supports(PATH_AVX512VNNI)) return PATH_AVX512VNNI;
    return cpu_supports(PATH_AVX2) ? PATH_AVX2 : PATH_PORTABLE;
}

static int resolve_path(void) {
    int p = atomic_load(&g_path);
    if (p != PATH_UNRESOLVED) return p;
    const char *env = getenv("QT_INT8_GEMM");
    if (env && *env) {
        p = path_index(env);
        if (p != PATH_BAD && !cpu_supports(p)) p = PATH_BAD;
    } else {
        p = best_path();
    }
    atomic_store(&g_path, p);
    return p;
}

int qt_cpu_gemm_s8_path_supported(const char *name) {
    if (!name) return 0;
    int p = path_index(name);
    return p != PATH_BAD && cpu_supports(p);
}

qt_status qt_cpu_gemm_s8_set_path(const char *name) {
    if (!name) {
        atomic_store(&g_path, PATH_UNRESOLVED);
        return QT_OK;
    }
    int p = path_index(name);
    if (p == PATH_BAD)
        return qt_error(QT_ERR_ARG,
                        "int8 gemm: unknown path '%s'; use portable, avx2 or avx512vnni", name);
    if (!cpu_supports(p))
        return qt_error(QT_ERR_UNSUPPORTED,
                        "int8 gemm: path '%s' is not supported by this CPU; use portable", name);
    atomic_store(&g_path, p);
    return QT_OK;
}

const char *qt_cpu_gemm_s8_path(void) {
    int p = resolve_path();
    return p >= 0 ? path_names[p] : "unsupported";
}

// The GEMM of e on the selected path. scratch (scratch_bytes, 32-byte aligned) holds the avx2
// path's packed panels; NULL: allocated for this call.
static qt_status run(const epilogue *e, const int8_t *A, const int8_t *B, int M, int N, int K,
                     const char *op, void *scratch, size_t scratch_bytes) {
    if (!A || !B)
        return qt_error(QT_ERR_ARG, "%s: A or B is NULL; pass the (M, K) and (N, K) int8 inputs",
                        op);
    if (M < 1 || N < 1 || K < 1)
        return qt_error(QT_ERR_ARG, "%s: M = %d, N = %d, K = %d; all must be >= 1", op, M, N, K);
    if (K > QT_INT8_GEMM_MAX_K)
        return qt_error(QT_ERR_ARG,
                        "%s: K = %d could overflow the int32 accumulator; split K into chunks "
                        "of at most %d",
                        op, K, QT_INT8_GEMM_MAX_K);
    int p = resolve_path();
    switch (p) {
    case PATH_PORTABLE:
        gemm_portable(e, A, B, M, N, K);
        return QT_OK;
#if QT_INT8_X86
    case PATH_AVX2:
    case PATH_AVX512VNNI: {
        const size_t bytes = p == PATH_AVX2 ? avx2_pack_bytes(M, N, K) : vnni_pack_bytes(M, N, K);
        if (scratch && (scratch_bytes < bytes || (uintptr_t)scratch % 32 != 0))
            return qt_error(QT_ERR_ARG,
                            "%s: scratch of %zu bytes at %p; the %s path needs %zu bytes, "
                            "32-byte aligned, for M = %d, N = %d, K = %d "
                            "(qt_cpu_gemm_s8_scratch_bytes)",
                            op, scratch_bytes, scratch, path_names[p], bytes, M, N, K);
        int32_t *pk = scratch ? scratch : aligned_alloc(32, bytes);
        if (!pk)
            return qt_error(QT_ERR_OOM, "%s: cannot allocate %zu bytes of packed panels for "
                                        "M = %d, N = %d, K = %d; use smaller chunks",
                            op, bytes, M, N, K);
        if (p == PATH_AVX2)
            gemm_avx2(e, A, B, M, N, K, pk);
        else
            gemm_vnni(e, A, B, M, N, K, pk);
        if (!scratch) free(pk);
        return QT_OK;
    }
#endif
    default: {
        const char *env = getenv("QT_INT8_GEMM");
        return qt_error(QT_ERR_UNSUPPORTED,
                        "%s: QT_INT8_GEMM=%s is not a path this CPU and build support; "
                        "unset it or use portable%s",
                        op, env ? env : "(unset)",
                        cpu_supports(PATH_AVX512VNNI) ? ", avx2 or avx512vnni"
                        : cpu_supports(PATH_AVX2)     ? " or avx2"
                                                      : "");
    }
    }
}

qt_status qt_cpu_gemm_s8s32(int32_t *C, const int8_t *A, const int8_t *B, int M, int N, int K) {
    if (!C)
        return qt_error(QT_ERR_ARG, "qt_cpu_gemm_s8s32: C is NULL; pass an (M, N) int32 buffer");
    epilogue e = {.C = C, .N = N};
    return run(&e, A, B, M, N, K, "qt_cpu_gemm_s8s32", NULL, 0);
}

qt_status qt_cpu_linear_s8(float *out, const int8_t *A, const float *a_scale, const int8_t *B,
                           const float *b_scale, const float *bias, int M, int N, int K) {
    return qt_cpu_linear_s8_ws(out, A, a_scale, B, b_scale, bias, M, N, K, NULL, 0);
}

qt_status qt_cpu_linear_s8_ws(float *out, const int8_t *A, const float *a_scale, const int8_t *B,
                              const float *b_scale, const float *bias, int M, int N, int K,
                              void *scratch, size_t scratch_bytes) {
    if (!out || !a_scale || !b_scale)
        return qt_error(QT_ERR_ARG,
                        "qt_cpu_linear_s8: out, a_scale or b_scale is NULL; pass (M, N), (M) and "
                        "(N) float buffers (only bias may be NULL)");
    epilogue e = {.out = out, .a_scale = a_scale, .b_scale = b_scale, .bias = bias, .N = N};
    return run(&e, A, B, M, N, K, "qt_cpu_linear_s8", scratch, scratch_bytes);
}

size_t qt_cpu_gemm_s8_scratch_bytes(int M, int N, int K) {
#if QT_INT8_X86
    if (M >= 1 && N >= 1 && K >= 1) {
        const int p = resolve_path();
        if (p == PATH_AVX2) return avx2_pack_bytes(M, N, K);
        if (p == PATH_AVX512VNNI) return vnni_pack_bytes(M, N, K);
    }
#else
    (void)M, (void)N, (void)K;
#endif
    return 0;
}

qt_status qt_cpu_s8_row_sums(int32_t *sums, const int8_t *B, int N, int K) {
    if (!sums || !B)
        return qt_error(QT_ERR_ARG, "qt_cpu_s8_row_sums: sums or B is NULL; pass (N) int32 and "
                                    "(N, K) int8 buffers");
    if (N < 1 || K < 1 || K > QT_INT8_GEMM_MAX_K)
        return qt_error(QT_ERR_ARG, "qt_cpu_s8_row_sums: N = %d, K = %d; need N >= 1 and "
                                    "1 <= K <= %d",
                        N, K, QT_INT8_GEMM_MAX_K);
    for (int n = 0; n < N; n++) {
        const int8_t *b = B + (size_t)n * (size_t)K; // (K)
        int32_t s = 0;
        for (int k = 0; k < K; k++) s += b[k];
        sums[n] = s;
    }
    return QT_OK;
}

qt_status qt_cpu_linear_s8_zp(float *out, const int8_t *A, const float *a_scale,
                              const int32_t *a_zero, const int8_t *B, const float *b_scale,
                              const int32_t *b_rowsum, const float *bias, int M, int N, int K) {
    if (!out || !a_scale || !a_zero || !b_scale || !b_rowsum)
        return qt_error(QT_ERR_ARG,
                        "qt_cpu_linear_s8_zp: out, a_scale, a_zero, b_scale or b_rowsum is NULL; "
                        "pass (M, N), (M), (M), (N) and (N) buffers (only bias may be NULL)");
    if (K > QT_INT8_GEMM_ZP_MAX_K)
        return qt_error(QT_ERR_ARG,
                        "qt_cpu_linear_s8_zp: K = %d could overflow the int32 zero-point "
                        "correction; split K into chunks of at most %d",
                        K, QT_INT8_GEMM_ZP_MAX_K);
    epilogue e = {.out = out, .a_scale = a_scale, .b_scale = b_scale, .bias = bias,
                  .a_zero = a_zero, .b_rowsum = b_rowsum, .N = N};
    return run(&e, A, B, M, N, K, "qt_cpu_linear_s8_zp", NULL, 0);
}

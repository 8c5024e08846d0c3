// int8_gemm.c: INT8 GEMM C = A B^T (int8 x int8 -> int32, exact) and the W8A8 linear layer with
// the dequantization fused in the epilogue (PAPERS.md section 5); API in qtrain/int8_gemm.h.
//
// Two paths, picked at run time (qt_cpu_gemm_s8_set_path, QT_INT8_GEMM, else the best one):
//   portable  plain loops, one int32 dot product per output; the reference the others match.
//   avx2      4x3 register tiles of A rows x B rows, 16 k at a time: each int8 vector is
//             sign-extended to int16 (vpmovsxbw) and vpmaddwd sums adjacent products into
//             int32. |a b| <= 2^14, so a pair sum <= 2^15 and nothing saturates: the result is
//             exact, unlike vpmaddubsw (u8 x s8 with int16 saturation). The k tail (K % 16) is
//             summed in scalar code; M and N tails use the same tile with fewer rows.
// Both overwrite their output; the epilogue (store) is shared, so every path gives the same
// floats: out = ((float)c * a_scale[m]) * b_scale[n] + bias[n], where the zero-point variant
// first removes the activation zero point in int32: c -= a_zero[m] * b_rowsum[n] (exact for
// K <= QT_INT8_GEMM_ZP_MAX_K: the true result and both terms fit int32).
// Exactness bound: every partial sum is at most K * 2^14 in magnitude, below 2^31 for
// K <= QT_INT8_GEMM_MAX_K; larger K is refused rather than wrapped.
#include "qtrain/int8_gemm.h"

#include <stdatomic.h>
#include <stddef.h>
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

// ---- avx2 ----------------------------------------------------------------------------------

#if QT_INT8_X86
// Tile of MR rows of A by NR rows of B: 12 accumulators + 3 B vectors + 1 A vector fill the 16
// ymm registers.
#define AVX2_MR 4
#define AVX2_NR 3
// Rows of B per column block: 96 * K bytes (96 KiB at K = 1024) stays in L2 while every row of
// A streams past it.
#define AVX2_NB 96

__attribute__((target("avx2"))) static inline int32_t hsum_epi32_avx2(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_hadd_epi32(s, s);
    s = _mm_hadd_epi32(s, s);
    return _mm_cvtsi128_si32(s);
}

// One mr x nr tile (mr <= 4, nr <= 3) at (m0, n0), for the edges of C.
__attribute__((target("avx2"), noinline)) static void
tile_avx2(const epilogue *e, const int8_t *A, const int8_t *B, int K, int m0, int n0, int mr,
          int nr) {
    __m256i acc[AVX2_MR][AVX2_NR];
    for (int i = 0; i < AVX2_MR; i++)
        for (int j = 0; j < AVX2_NR; j++) acc[i][j] = _mm256_setzero_si256();
    const int8_t *a = A + (size_t)m0 * (size_t)K; // (mr, K)
    const int8_t *b = B + (size_t)n0 * (size_t)K; // (nr, K)
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256i bv[AVX2_NR];
        for (int j = 0; j < nr; j++)
            bv[j] = _mm256_cvtepi8_epi16(
                _mm_loadu_si128((const __m128i *)(b + (size_t)j * (size_t)K + k)));
        for (int i = 0; i < mr; i++) {
            __m256i av = _mm256_cvtepi8_epi16(
                _mm_loadu_si128((const __m128i *)(a + (size_t)i * (size_t)K + k)));
            for (int j = 0; j < nr; j++)
                acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(av, bv[j]));
        }
    }
    for (int i = 0; i < mr; i++) {
        const int8_t *ai = a + (size_t)i * (size_t)K;
        for (int j = 0; j < nr; j++) {
            const int8_t *bj = b + (size_t)j * (size_t)K;
            int32_t s = hsum_epi32_avx2(acc[i][j]);
            for (int kk = k; kk < K; kk++) s += (int32_t)ai[kk] * (int32_t)bj[kk];
            store(e, m0 + i, n0 + j, s);
        }
    }
}

// The full 4x3 tile written out: GCC at -O2 does not unroll tile_avx2's loops completely, and
// then keeps the accumulators on the stack (measured 3x slower).
#define LOAD_S16(p) _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p)))
#define MAC(acc, x, y) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y))
__attribute__((target("avx2"))) static void tile_avx2_full(const epilogue *e, const int8_t *A,
                                                           const int8_t *B, int K, int m0,
                                                           int n0) {
    const int8_t *a0 = A + (size_t)m0 * (size_t)K, *a1 = a0 + K, *a2 = a1 + K, *a3 = a2 + K;
    const int8_t *b0 = B + (size_t)n0 * (size_t)K, *b1 = b0 + K, *b2 = b1 + K;
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c10 = c00, c11 = c00,
            c12 = c00, c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256i y0 = LOAD_S16(b0 + k), y1 = LOAD_S16(b1 + k), y2 = LOAD_S16(b2 + k);
        __m256i x = LOAD_S16(a0 + k);
        MAC(c00, x, y0);
        MAC(c01, x, y1);
        MAC(c02, x, y2);
        x = LOAD_S16(a1 + k);
        MAC(c10, x, y0);
        MAC(c11, x, y1);
        MAC(c12, x, y2);
        x = LOAD_S16(a2 + k);
        MAC(c20, x, y0);
        MAC(c21, x, y1);
        MAC(c22, x, y2);
        x = LOAD_S16(a3 + k);
        MAC(c30, x, y0);
        MAC(c31, x, y1);
        MAC(c32, x, y2);
    }
    const __m256i acc[AVX2_MR][AVX2_NR] = {
        {c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32}};
    const int8_t *ar[AVX2_MR] = {a0, a1, a2, a3}, *br[AVX2_NR] = {b0, b1, b2};
    for (int i = 0; i < AVX2_MR; i++)
        for (int j = 0; j < AVX2_NR; j++) {
            int32_t s = hsum_epi32_avx2(acc[i][j]);
            for (int kk = k; kk < K; kk++) s += (int32_t)ar[i][kk] * (int32_t)br[j][kk];
            store(e, m0 + i, n0 + j, s);
        }
}
#undef MAC
#undef LOAD_S16

__attribute__((target("avx2"))) static void gemm_avx2(const epilogue *e, const int8_t *A,
                                                      const int8_t *B, int M, int N, int K) {
    int n_nb = QT_CEIL_DIV(N, AVX2_NB);
    int n_mt = QT_CEIL_DIV(M, AVX2_MR);
    long n_tasks = (long)n_nb * (long)n_mt;
    // Task t = (column block t / n_mt, row tile t % n_mt): a static schedule hands each thread
    // a contiguous run, so a thread keeps one block of B hot while A streams.
#pragma omp parallel for schedule(static)
    for (long t = 0; t < n_tasks; t++) {
        int nb = (int)(t / n_mt);
        int m0 = (int)(t % n_mt) * AVX2_MR;
        int mr = M - m0 < AVX2_MR ? M - m0 : AVX2_MR;
        int n_end = (nb + 1) * AVX2_NB < N ? (nb + 1) * AVX2_NB : N;
        for (int n0 = nb * AVX2_NB; n0 < n_end; n0 += AVX2_NR) {
            int nr = n_end - n0 < AVX2_NR ? n_end - n0 : AVX2_NR;
            if (mr == AVX2_MR && nr == AVX2_NR)
                tile_avx2_full(e, A, B, K, m0, n0);
            else
                tile_avx2(e, A, B, K, m0, n0, mr, nr); // M % 4, N % 3 edges
        }
    }
}
#endif

// ---- dispatch ------------------------------------------------------------------------------

enum { PATH_UNRESOLVED = -2, PATH_BAD = -1, PATH_PORTABLE = 0, PATH_AVX2 = 1, PATH_COUNT };

static const char *const path_names[PATH_COUNT] = {"portable", "avx2"};

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
#endif
    return 0;
}

static int best_path(void) { return cpu_supports(PATH_AVX2) ? PATH_AVX2 : PATH_PORTABLE; }

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
        return qt_error(QT_ERR_ARG, "int8 gemm: unknown path '%s'; use portable or avx2", name);
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

static qt_status run(const epilogue *e, const int8_t *A, const int8_t *B, int M, int N, int K,
                     const char *op) {
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
        gemm_avx2(e, A, B, M, N, K);
        return QT_OK;
#endif
    default: {
        const char *env = getenv("QT_INT8_GEMM");
        return qt_error(QT_ERR_UNSUPPORTED,
                        "%s: QT_INT8_GEMM=%s is not a path this CPU and build support; "
                        "unset it or use portable%s",
                        op, env ? env : "(unset)", cpu_supports(PATH_AVX2) ? " or avx2" : "");
    }
    }
}

qt_status qt_cpu_gemm_s8s32(int32_t *C, const int8_t *A, const int8_t *B, int M, int N, int K) {
    if (!C)
        return qt_error(QT_ERR_ARG, "qt_cpu_gemm_s8s32: C is NULL; pass an (M, N) int32 buffer");
    epilogue e = {.C = C, .N = N};
    return run(&e, A, B, M, N, K, "qt_cpu_gemm_s8s32");
}

qt_status qt_cpu_linear_s8(float *out, const int8_t *A, const float *a_scale, const int8_t *B,
                           const float *b_scale, const float *bias, int M, int N, int K) {
    if (!out || !a_scale || !b_scale)
        return qt_error(QT_ERR_ARG,
                        "qt_cpu_linear_s8: out, a_scale or b_scale is NULL; pass (M, N), (M) and "
                        "(N) float buffers (only bias may be NULL)");
    epilogue e = {.out = out, .a_scale = a_scale, .b_scale = b_scale, .bias = bias, .N = N};
    return run(&e, A, B, M, N, K, "qt_cpu_linear_s8");
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
    return run(&e, A, B, M, N, K, "qt_cpu_linear_s8_zp");
}

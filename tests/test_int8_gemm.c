// test_int8_gemm.c: the INT8 GEMM qt_cpu_gemm_s8s32 and the fused W8A8 linear qt_cpu_linear_s8
// (kernels/cpu/int8_gemm.c, PAPERS.md section 5), on every path this CPU supports.
//
// - int32 results bit-exact against a naive int64 reference on random int8 inputs with odd M,
//   N, K (1, 3, 17, 33, 255, 257, 1023, ...), outputs poisoned and a guard band after C checked;
// - extreme values (-128 and 127 everywhere) with K = 2^16 and K = QT_INT8_GEMM_MAX_K: no
//   overflow, results known in closed form;
// - the fused epilogue against a double reference: |got - want| <= 4 eps_f32 (|c as bs| + |bias|)
//   per element (NaN fails), and identical floats on every path;
// - the zero-point linear qt_cpu_linear_s8_zp (asymmetric activations): the int32 correction
//   A B^T - zc rowsum(B) bit-exact against sum (a - zc) b in int64, the epilogue bit-exact
//   against the same float formula (C11: no FMA contraction), at K = QT_INT8_GEMM_ZP_MAX_K
//   with extreme codes (no overflow), and equal to the float GEMM of the dequantized values;
// - bad arguments (K < 1, K too large, NULL) and path selection (QT_INT8_GEMM, set_path).
// A path this CPU lacks is reported as SKIPPED on stdout and never counts as passed.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/int8_gemm.h"
#include "expect_error.h"
#include "testutil.h"

static const char *const paths[] = {"portable", "avx2", "avx512vnni"};
#define N_PATHS ((int)(sizeof(paths) / sizeof(paths[0])))
#define GUARD 64
#define POISON_I32 ((int32_t)0x5EADBEEF)

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_s8(int8_t *x, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) x[i] = (int8_t)(int)(splitmix(&s) & 0xFF);
    // (int8_t) of 0..255 maps 128..255 onto -128..-1 (two's complement, implementation-defined
    // but what every target qtrain builds on does); force both extremes to appear.
    if (n >= 2) {
        x[0] = -128;
        x[n - 1] = 127;
    }
}

static void ref_gemm(int64_t *C, const int8_t *A, const int8_t *B, int M, int N, int K) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t acc = 0;
            for (int k = 0; k < K; k++)
                acc += (int64_t)A[(size_t)m * K + k] * (int64_t)B[(size_t)n * K + k];
            C[(size_t)m * N + n] = acc;
        }
}

// Selects path p; returns 0 (after printing a note) when this CPU lacks it.
static int use_path(int p) {
    if (!qt_cpu_gemm_s8_path_supported(paths[p])) {
        printf("int8_gemm: path %s SKIPPED (not supported by this CPU)\n", paths[p]);
        return 0;
    }
    ck_assert_msg(qt_cpu_gemm_s8_set_path(paths[p]) == QT_OK, "set_path(%s): %s", paths[p],
                  qt_last_error());
    ck_assert_str_eq(qt_cpu_gemm_s8_path(), paths[p]);
    return 1;
}

static const int shapes[][3] = {
    {1, 1, 1},     {1, 3, 17},     {3, 1, 33},    {3, 17, 1},   {17, 33, 255}, {4, 3, 16},
    {5, 7, 31},    {33, 17, 257},  {8, 6, 32},    {255, 3, 17}, {3, 257, 33},  {17, 33, 1023},
    {65, 97, 100}, {257, 255, 63}, {2, 193, 1023},
    // avx512vnni's 8 x 48 tiles: full tiles, then one more row, column and k on each side
    {16, 96, 64},  {9, 49, 130},   {24, 144, 259}, {7, 47, 3}};
#define N_SHAPES ((int)(sizeof(shapes) / sizeof(shapes[0])))

START_TEST(test_exact_random) {
    int p = _i;
    if (!use_path(p)) return;
    for (int s = 0; s < N_SHAPES; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        uint64_t seed = 1000 + (uint64_t)s;
        int8_t *A = malloc((size_t)M * K), *B = malloc((size_t)N * K);
        int32_t *C = malloc(((size_t)M * N + GUARD) * sizeof(int32_t));
        int64_t *R = malloc((size_t)M * N * sizeof(int64_t));
        ck_assert(A && B && C && R);
        fill_s8(A, (size_t)M * K, seed);
        fill_s8(B, (size_t)N * K, seed ^ 0xABCDEFull);
        for (size_t i = 0; i < (size_t)M * N + GUARD; i++) C[i] = POISON_I32;
        ref_gemm(R, A, B, M, N, K);
        qt_status st = qt_cpu_gemm_s8s32(C, A, B, M, N, K);
        ck_assert_msg(st == QT_OK, "int8_gemm %s M=%d N=%d K=%d: %s", paths[p], M, N, K,
                      qt_last_error());
        for (size_t i = 0; i < (size_t)M * N; i++)
            ck_assert_msg((int64_t)C[i] == R[i],
                          "int8_gemm %s M=%d N=%d K=%d seed=%llu: C[%zu] = %d, want %lld",
                          paths[p], M, N, K, (unsigned long long)seed, i, C[i], (long long)R[i]);
        for (size_t i = (size_t)M * N; i < (size_t)M * N + GUARD; i++)
            ck_assert_msg(C[i] == POISON_I32, "int8_gemm %s M=%d N=%d K=%d: wrote past C at %zu",
                          paths[p], M, N, K, i);
        free(A);
        free(B);
        free(C);
        free(R);
    }
    qt_cpu_gemm_s8_set_path(NULL);
}
END_TEST

// Rows of A are all -128 or all 127, rows of B likewise, so C[m][n] = K * a_m * b_n exactly.
static void check_extreme(int p, int K) {
    enum { M = 3, N = 5 };
    const int8_t av[M] = {-128, 127, -128}, bv[N] = {-128, 127, 127, -128, -128};
    int8_t *A = malloc((size_t)M * K), *B = malloc((size_t)N * K);
    int32_t C[M * N];
    ck_assert(A && B);
    for (int m = 0; m < M; m++) memset(A + (size_t)m * K, (unsigned char)av[m], (size_t)K);
    for (int n = 0; n < N; n++) memset(B + (size_t)n * K, (unsigned char)bv[n], (size_t)K);
    ck_assert_msg(qt_cpu_gemm_s8s32(C, A, B, M, N, K) == QT_OK, "%s", qt_last_error());
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t want = (int64_t)K * av[m] * bv[n];
            ck_assert_msg((int64_t)C[m * N + n] == want,
                          "int8_gemm %s extreme K=%d: C[%d][%d] = %d, want %lld", paths[p], K,
                          m, n, C[m * N + n], (long long)want);
        }
    free(A);
    free(B);
}

START_TEST(test_extreme_values) {
    int p = _i;
    if (!use_path(p)) return;
    check_extreme(p, 1 << 16);
    check_extreme(p, QT_INT8_GEMM_MAX_K); // 2^14 * K = 2^31 - 16384: the int32 limit
    check_extreme(p, 33);
    qt_cpu_gemm_s8_set_path(NULL);
}
END_TEST

static const int lin_shapes[][3] = {{1, 1, 1}, {3, 17, 33}, {17, 33, 255}, {33, 7, 1023}};
#define N_LIN ((int)(sizeof(lin_shapes) / sizeof(lin_shapes[0])))

START_TEST(test_linear_epilogue) {
    for (int s = 0; s < N_LIN; s++) {
        int M = lin_shapes[s][0], N = lin_shapes[s][1], K = lin_shapes[s][2];
        uint64_t seed = 77 + (uint64_t)s;
        size_t mn = (size_t)M * N;
        int8_t *A = malloc((size_t)M * K), *B = malloc((size_t)N * K);
        float *as = malloc(M * sizeof(float)), *bs = malloc(N * sizeof(float));
        float *bias = malloc(N * sizeof(float)), *out = malloc((mn + GUARD) * sizeof(float));
        float *first = malloc(mn * sizeof(float));
        int64_t *R = malloc(mn * sizeof(int64_t));
        ck_assert(A && B && as && bs && bias && out && first && R);
        fill_s8(A, (size_t)M * K, seed);
        fill_s8(B, (size_t)N * K, seed + 1);
        qt_test_fill_uniform(as, M, 1e-3f, 0.1f, seed + 2);
        qt_test_fill_uniform(bs, N, 1e-4f, 0.02f, seed + 3);
        qt_test_fill_uniform(bias, N, -2.0f, 2.0f, seed + 4);
        ref_gemm(R, A, B, M, N, K);
        int first_path = -1;
        for (int p = 0; p < N_PATHS; p++) {
            if (!use_path(p)) continue;
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const float *bb = with_bias ? bias : NULL;
                qt_test_poison(out, mn + GUARD);
                qt_status st = qt_cpu_linear_s8(out, A, as, B, bs, bb, M, N, K);
                ck_assert_msg(st == QT_OK, "%s", qt_last_error());
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        size_t i = (size_t)m * N + n;
                        double prod = (double)R[i] * as[m] * bs[n];
                        double b = bb ? bb[n] : 0.0;
                        double tol = 4.0 * 0x1p-24 * (fabs(prod) + fabs(b));
                        double err = fabs((double)out[i] - (prod + b));
                        ck_assert_msg(err <= tol,
                                      "int8 linear %s bias=%d M=%d N=%d K=%d seed=%llu: "
                                      "out[%d][%d] = %.9g, want %.9g",
                                      paths[p], with_bias, M, N, K, (unsigned long long)seed, m,
                                      n, out[i], prod + b);
                    }
                for (size_t i = mn; i < mn + GUARD; i++)
                    ck_assert_msg(isnan(out[i]), "int8 linear %s: wrote past out at %zu",
                                  paths[p], i);
                if (!with_bias) continue;
                if (first_path < 0) {
                    memcpy(first, out, mn * sizeof(float));
                    first_path = p;
                } else {
                    ck_assert_msg(memcmp(first, out, mn * sizeof(float)) == 0,
                                  "int8 linear M=%d N=%d K=%d: paths %s and %s differ", M, N, K,
                                  paths[first_path], paths[p]);
                }
            }
        }
        free(A);
        free(B);
        free(as);
        free(bs);
        free(bias);
        free(out);
        free(first);
        free(R);
    }
    qt_cpu_gemm_s8_set_path(NULL);
}
END_TEST

// Zero points: sum_k (A[m][k] - zc[m]) B[n][k] in int64, the reference of the _zp epilogue.
static void ref_gemm_zp(int64_t *C, const int8_t *A, const int32_t *zc, const int8_t *B, int M,
                        int N, int K) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t acc = 0;
            for (int k = 0; k < K; k++)
                acc += ((int64_t)A[(size_t)m * K + k] - zc[m]) * (int64_t)B[(size_t)n * K + k];
            C[(size_t)m * N + n] = acc;
        }
}

static const int zp_shapes[][3] = {{1, 1, 1},   {3, 17, 33},  {17, 33, 255}, {5, 7, 31},
                                   {4, 3, 16},  {33, 7, 257}, {2, 193, 63},  {65, 9, 100}};
#define N_ZP ((int)(sizeof(zp_shapes) / sizeof(zp_shapes[0])))

START_TEST(test_linear_zero_point) {
    int p = _i;
    if (!use_path(p)) return;
    for (int s = 0; s < N_ZP; s++) {
        int M = zp_shapes[s][0], N = zp_shapes[s][1], K = zp_shapes[s][2];
        uint64_t seed = 500 + (uint64_t)s;
        size_t mn = (size_t)M * N;
        int8_t *A = malloc((size_t)M * K), *B = malloc((size_t)N * K);
        int32_t *zc = malloc(M * sizeof(int32_t)), *rs = malloc(N * sizeof(int32_t));
        float *as = malloc(M * sizeof(float)), *bs = malloc(N * sizeof(float));
        float *ones_m = malloc(M * sizeof(float)), *ones_n = malloc(N * sizeof(float));
        float *bias = malloc(N * sizeof(float)), *out = malloc((mn + GUARD) * sizeof(float));
        int64_t *R = malloc(mn * sizeof(int64_t));
        int8_t zc8[65];
        ck_assert(A && B && zc && rs && as && bs && ones_m && ones_n && bias && out && R);
        fill_s8(A, (size_t)M * K, seed);
        fill_s8(B, (size_t)N * K, seed + 1);
        fill_s8(zc8, (size_t)M, seed + 2); // every shifted zero point in [-128, 127]
        for (int m = 0; m < M; m++) {
            zc[m] = zc8[m];
            ones_m[m] = 1.0f;
        }
        for (int n = 0; n < N; n++) ones_n[n] = 1.0f;
        qt_test_fill_uniform(as, M, 1e-3f, 0.1f, seed + 3);
        qt_test_fill_uniform(bs, N, 1e-4f, 0.02f, seed + 4);
        qt_test_fill_uniform(bias, N, -2.0f, 2.0f, seed + 5);
        ck_assert_int_eq(qt_cpu_s8_row_sums(rs, B, N, K), QT_OK);
        for (int n = 0; n < N; n++) {
            int32_t want = 0;
            for (int k = 0; k < K; k++) want += B[(size_t)n * K + k];
            ck_assert_msg(rs[n] == want, "row_sums N=%d K=%d: sums[%d] = %d, want %d", N, K, n,
                          rs[n], want);
        }
        ref_gemm_zp(R, A, zc, B, M, N, K);
        // unit scales, no bias: out is the corrected int32 itself (|R| < 2^24 here: exact)
        qt_test_poison(out, mn + GUARD);
        qt_status st = qt_cpu_linear_s8_zp(out, A, ones_m, zc, B, ones_n, rs, NULL, M, N, K);
        ck_assert_msg(st == QT_OK, "%s", qt_last_error());
        for (size_t i = 0; i < mn; i++) {
            ck_assert_msg(llabs(R[i]) < (1 << 24), "test bug: |R| too large for exact floats");
            ck_assert_msg(out[i] == (float)R[i],
                          "int8 linear_zp %s M=%d N=%d K=%d seed=%llu: int part [%zu] = %.1f, "
                          "want %lld",
                          paths[p], M, N, K, (unsigned long long)seed, i, (double)out[i],
                          (long long)R[i]);
        }
        for (size_t i = mn; i < mn + GUARD; i++)
            ck_assert_msg(isnan(out[i]), "int8 linear_zp %s: wrote past out at %zu", paths[p], i);
        // scales and bias: bit-exact against the documented float order, and within fp
        // rounding of the float GEMM of the dequantized values
        st = qt_cpu_linear_s8_zp(out, A, as, zc, B, bs, rs, bias, M, N, K);
        ck_assert_msg(st == QT_OK, "%s", qt_last_error());
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                size_t i = (size_t)m * N + n;
                float want = (float)R[i] * as[m] * bs[n] + bias[n];
                ck_assert_msg(memcmp(&out[i], &want, sizeof want) == 0,
                              "int8 linear_zp %s M=%d N=%d K=%d seed=%llu: out[%d][%d] = %.9g, "
                              "want %.9g",
                              paths[p], M, N, K, (unsigned long long)seed, m, n, out[i], want);
                double deq = 0.0, mag = 0.0;
                for (int k = 0; k < K; k++) {
                    double t = ((double)A[(size_t)m * K + k] - zc[m]) * as[m] *
                               ((double)B[(size_t)n * K + k] * bs[n]);
                    deq += t;
                    mag += fabs(t);
                }
                double err = fabs((double)out[i] - (deq + bias[n]));
                ck_assert_msg(err <= 4.0 * 0x1p-24 * (mag + fabs(bias[n])),
                              "int8 linear_zp %s M=%d N=%d K=%d: out[%d][%d] = %.9g, dequantized "
                              "float GEMM %.9g",
                              paths[p], M, N, K, m, n, out[i], deq + bias[n]);
            }
        free(A);
        free(B);
        free(zc);
        free(rs);
        free(as);
        free(bs);
        free(ones_m);
        free(ones_n);
        free(bias);
        free(out);
        free(R);
    }
    qt_cpu_gemm_s8_set_path(NULL);
}
END_TEST

// The largest K with the largest terms: (127 - (-128)) * -128 = -32640 per k, and the other
// signs; the corrected results are multiples of 2^7 below 2^31, exact in float.
START_TEST(test_linear_zero_point_extreme) {
    int p = _i;
    if (!use_path(p)) return;
    enum { M = 3, N = 2 };
    const int K = QT_INT8_GEMM_ZP_MAX_K;
    const int8_t av[M] = {127, -128, 127}, bv[N] = {-128, 127};
    const int32_t zc[M] = {-128, 127, 127};
    int8_t *A = malloc((size_t)M * K), *B = malloc((size_t)N * K);
    int32_t rs[N];
    float one[M] = {1.0f, 1.0f, 1.0f}, out[M * N];
    ck_assert(A && B);
    for (int m = 0; m < M; m++) memset(A + (size_t)m * K, (unsigned char)av[m], (size_t)K);
    for (int n = 0; n < N; n++) memset(B + (size_t)n * K, (unsigned char)bv[n], (size_t)K);
    ck_assert_int_eq(qt_cpu_s8_row_sums(rs, B, N, K), QT_OK);
    ck_assert_msg(qt_cpu_linear_s8_zp(out, A, one, zc, B, one, rs, NULL, M, N, K) == QT_OK, "%s",
                  qt_last_error());
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t want = (int64_t)K * ((int64_t)av[m] - zc[m]) * bv[n];
            ck_assert_msg(out[m * N + n] == (float)want,
                          "int8 linear_zp %s extreme K=%d: out[%d][%d] = %.1f, want %lld",
                          paths[p], K, m, n, (double)out[m * N + n], (long long)want);
        }
    ck_assert_int_eq(qt_cpu_linear_s8_zp(out, A, one, zc, B, one, rs, NULL, 1, 1, K + 1),
                     QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "zero-point") != NULL, "message: %s", qt_last_error());
    free(A);
    free(B);
    qt_cpu_gemm_s8_set_path(NULL);
}
END_TEST

// qt_cpu_linear_s8_ws, the linear with its packed panels in a caller's scratch, gives the
// floats of qt_cpu_linear_s8 bit for bit on each path; the path's scratch size is 0 on the
// portable path; a scratch below qt_cpu_gemm_s8_scratch_bytes or misaligned is refused
// (QT_ERR_ARG naming the op) before out is written.
START_TEST(test_linear_scratch) {
    int p = _i;
    if (!use_path(p)) return;
    const int M = 33, N = 17, K = 257;
    int8_t *A = malloc((size_t)M * K), *B = malloc((size_t)N * K);
    fill_s8(A, (size_t)M * K, 71);
    fill_s8(B, (size_t)N * K, 72);
    float *as = qt_test_falloc(M), *bs = qt_test_falloc(N), *bias = qt_test_falloc(N);
    qt_test_fill_uniform(as, M, 1e-3f, 2e-2f, 73);
    qt_test_fill_uniform(bs, N, 1e-3f, 2e-2f, 74);
    qt_test_fill_uniform(bias, N, -1.0f, 1.0f, 75);
    const size_t nout = (size_t)M * N, bytes = qt_cpu_gemm_s8_scratch_bytes(M, N, K);
    ck_assert_msg((bytes == 0) == (p == 0), "path %s: scratch %zu bytes", paths[p], bytes);
    ck_assert_uint_eq(qt_cpu_gemm_s8_scratch_bytes(0, N, K), 0);
    void *scratch = aligned_alloc(64, (bytes + 64 + 63) / 64 * 64); // a size aligned_alloc takes
    float *want = qt_test_falloc(nout), *got = qt_test_guarded(nout * sizeof(float));
    QT_EXPECT_OK(qt_cpu_linear_s8(want, A, as, B, bs, bias, M, N, K));
    if (bytes) {
        QT_EXPECT_REFUSED(qt_cpu_linear_s8_ws(got, A, as, B, bs, bias, M, N, K, scratch, bytes - 1),
                          "qt_cpu_linear_s8", qt_test_untouched(got, nout * sizeof(float)));
        QT_EXPECT_REFUSED(
            qt_cpu_linear_s8_ws(got, A, as, B, bs, bias, M, N, K, (char *)scratch + 4, bytes),
            "qt_cpu_linear_s8", qt_test_untouched(got, nout * sizeof(float)));
    }
    QT_EXPECT_OK(qt_cpu_linear_s8_ws(got, A, as, B, bs, bias, M, N, K, scratch, bytes));
    ck_assert_msg(memcmp(got, want, nout * sizeof(float)) == 0,
                  "path %s: the scratch linear differs from qt_cpu_linear_s8", paths[p]);
    QT_TEST_FREE_ALL(A, B, as, bs, bias, scratch, want, got);
    QT_EXPECT_OK(qt_cpu_gemm_s8_set_path(NULL));
}
END_TEST

START_TEST(test_bad_arguments) {
    int8_t A[4] = {1, 2, 3, 4}, B[4] = {1, 2, 3, 4};
    int32_t C[4];
    float out[4], sc[2] = {1.0f, 1.0f};
    memset(C, QT_TEST_GUARD, sizeof C); // a refused call writes nothing (expect_error.h)
    memset(out, QT_TEST_GUARD, sizeof out);
    ck_assert_int_eq(qt_cpu_gemm_s8s32(C, A, B, 2, 2, 0), QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "K = 0") != NULL, "message: %s", qt_last_error());
    ck_assert_int_eq(qt_cpu_gemm_s8s32(C, A, B, 0, 2, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_gemm_s8s32(C, A, B, 2, -1, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_gemm_s8s32(C, A, B, 1, 1, QT_INT8_GEMM_MAX_K + 1), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_gemm_s8s32(NULL, A, B, 2, 2, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_gemm_s8s32(C, NULL, B, 2, 2, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_gemm_s8s32(C, A, NULL, 2, 2, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_linear_s8(NULL, A, sc, B, sc, NULL, 2, 2, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_linear_s8(out, A, NULL, B, sc, NULL, 2, 2, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_linear_s8(out, A, sc, B, NULL, NULL, 2, 2, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_linear_s8(out, A, sc, B, sc, NULL, 2, 2, 0), QT_ERR_ARG);
    ck_assert_msg(qt_test_untouched(C, sizeof C) && qt_test_untouched(out, sizeof out),
                  "a refused INT8 GEMM wrote its output");
    ck_assert_int_eq(qt_cpu_linear_s8(out, A, sc, B, sc, NULL, 2, 2, 2), QT_OK);
    // 1*1 + 2*2 = 5, 1*3 + 2*4 = 11, 3*3 + 4*4 = 25
    ck_assert(out[0] == 5.0f && out[1] == 11.0f && out[2] == 11.0f && out[3] == 25.0f);
    int32_t zc[2] = {1, -1}, rs[2];
    ck_assert_int_eq(qt_cpu_s8_row_sums(NULL, B, 2, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_s8_row_sums(rs, B, 2, 0), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_s8_row_sums(rs, B, 2, 2), QT_OK);
    ck_assert_int_eq(qt_cpu_linear_s8_zp(out, A, sc, NULL, B, sc, rs, NULL, 2, 2, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_linear_s8_zp(out, A, sc, zc, B, sc, NULL, NULL, 2, 2, 2), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_linear_s8_zp(out, A, sc, zc, B, sc, rs, NULL, 2, 2, 0), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_linear_s8_zp(out, A, sc, zc, B, sc, rs, NULL, 2, 2, 2), QT_OK);
    // (1-1)*1 + (2-1)*2 = 2, (1-1)*3 + (2-1)*4 = 4, (3+1)*1 + (4+1)*2 = 14, (3+1)*3 + (4+1)*4 = 32
    ck_assert(out[0] == 2.0f && out[1] == 4.0f && out[2] == 14.0f && out[3] == 32.0f);
}
END_TEST

START_TEST(test_path_selection) {
    int8_t A[2] = {3, -4}, B[2] = {5, 6};
    int32_t C[1];
    ck_assert_int_eq(qt_cpu_gemm_s8_set_path("bogus"), QT_ERR_ARG);
    ck_assert_int_eq(qt_cpu_gemm_s8_path_supported("portable"), 1);
    ck_assert_int_eq(qt_cpu_gemm_s8_path_supported("bogus"), 0);
    ck_assert_int_eq(qt_cpu_gemm_s8_path_supported(NULL), 0);

    setenv("QT_INT8_GEMM", "bogus", 1);
    qt_cpu_gemm_s8_set_path(NULL);
    ck_assert_str_eq(qt_cpu_gemm_s8_path(), "unsupported");
    ck_assert_int_eq(qt_cpu_gemm_s8s32(C, A, B, 1, 1, 2), QT_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(qt_last_error(), "QT_INT8_GEMM=bogus") != NULL, "message: %s",
                  qt_last_error());

    for (int p = 0; p < N_PATHS; p++) {
        setenv("QT_INT8_GEMM", paths[p], 1);
        qt_cpu_gemm_s8_set_path(NULL);
        if (qt_cpu_gemm_s8_path_supported(paths[p])) {
            ck_assert_str_eq(qt_cpu_gemm_s8_path(), paths[p]);
            C[0] = 0;
            ck_assert_int_eq(qt_cpu_gemm_s8s32(C, A, B, 1, 1, 2), QT_OK);
            ck_assert_int_eq(C[0], 3 * 5 - 4 * 6);
        } else {
            printf("int8_gemm: QT_INT8_GEMM=%s SKIPPED (not supported by this CPU)\n", paths[p]);
            ck_assert_str_eq(qt_cpu_gemm_s8_path(), "unsupported");
            ck_assert_int_eq(qt_cpu_gemm_s8s32(C, A, B, 1, 1, 2), QT_ERR_UNSUPPORTED);
            ck_assert_int_eq(qt_cpu_gemm_s8_set_path(paths[p]), QT_ERR_UNSUPPORTED);
        }
    }
    unsetenv("QT_INT8_GEMM");
    qt_cpu_gemm_s8_set_path(NULL);
    ck_assert(qt_cpu_gemm_s8_path_supported(qt_cpu_gemm_s8_path()));
}
END_TEST

static Suite *int8_gemm_suite(void) {
    Suite *s = suite_create("int8_gemm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_exact_random, 0, N_PATHS);
    tcase_add_loop_test(tc, test_extreme_values, 0, N_PATHS);
    tcase_add_test(tc, test_linear_epilogue);
    tcase_add_loop_test(tc, test_linear_zero_point, 0, N_PATHS);
    tcase_add_loop_test(tc, test_linear_zero_point_extreme, 0, N_PATHS);
    tcase_add_loop_test(tc, test_linear_scratch, 0, N_PATHS);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_path_selection);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(int8_gemm_suite()); }

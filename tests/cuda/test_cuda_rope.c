// test_cuda_rope.c: kernels/cuda/rope.cu against the CPU reference (qt_cpu_rope_*,
// kernels/rope.h) on random inputs of odd shapes, in fp32, fp16 and bf16, with guard bands
// checked.
// Inputs are rounded to the dtype first, so the reference sees exactly what the kernel reads;
// what remains is the fp32 summation order, FMA contraction and the final rounding to the dtype.
// Tolerances (err <= atol + rtol |ref|): qt_ct_tolerance (fp32 1e-6 + 1e-5 relative; fp16
// 1e-3 + 4e-3; bf16 1e-2 + 3e-2), plus an ulp of RoPE's fp32 cos/sin (both sides round
// the same double angle). Values are sums of two products of size ~2 that may cancel: atol is
// scaled by 2.
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/rope.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
// RoPE (B, T, C, H): D = 2 (one pair), D = 6, D = 66 (33 pairs: a partial warp), T D/2 not a
// multiple of the 128-thread block, several blocks of (t, pair), B > 1.
static const int ROPE_SHAPES[][4] = {{1, 1, 2, 1},  {2, 5, 6, 1},   {3, 7, 12, 2},
                                     {2, 9, 132, 2}, {1, 70, 24, 3}, {4, 33, 40, 5}};
#define ROPE_NSHAPES ((int)(sizeof ROPE_SHAPES / sizeof ROPE_SHAPES[0]))

static void free_host(float **p, size_t n) {
    for (size_t i = 0; i < n; i++) free(p[i]);
}

// ---- RoPE -----------------------------------------------------------------------------------

static void check_rope(qt_dtype dt, int B, int T, int C, int H, float theta, uint64_t seed) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    atol *= 2.0;
    const size_t n = (size_t)B * T * 3 * C;
    float *x = qt_ct_rand_rounded(dt, n, -2.0f, 2.0f, seed);
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    memcpy(want, x, n * sizeof *want);
    qt_cpu_rope_fwd(want, B, T, C, H, theta);
    void *d = qt_ct_upload(dt, x, n);
    qt_status st = qt_cuda_rope_fwd(NULL, dt, d, B, T, C, H, theta);
    ck_assert_msg(st == QT_OK, "rope_fwd %s B=%d T=%d C=%d H=%d: %s", qt_dtype_name(dt), B, T, C,
                  H, qt_last_error());
    qt_ct_download(dt, got, d, n);
    double e = qt_test_max_err(got, want, n, atol, rtol);
    ck_assert_msg(e <= 1.0, "rope_fwd %s B=%d T=%d C=%d H=%d theta=%g seed=%llu: err %g",
                  qt_dtype_name(dt), B, T, C, H, (double)theta, (unsigned long long)seed, e);
    for (size_t r = 0; r < (size_t)B * T; r++) { // v untouched, t = 0 the identity
        const size_t row = r * 3 * (size_t)C;
        const size_t len = (r % (size_t)T == 0 ? 3 : 1) * (size_t)C;
        const size_t off = r % (size_t)T == 0 ? row : row + 2 * (size_t)C;
        ck_assert_msg(memcmp(got + off, x + off, len * sizeof *got) == 0,
                      "rope_fwd %s B=%d T=%d C=%d H=%d: row %zu changed v (or t = 0)",
                      qt_dtype_name(dt), B, T, C, H, r);
    }
    ck_assert_msg(qt_ct_guard_ok(dt, d, n), "rope_fwd %s: guard band overwritten",
                  qt_dtype_name(dt));
    // backward: on a fresh gradient, against the CPU's inverse rotation
    float *g = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, seed + 1);
    void *dg = qt_ct_upload(dt, g, n);
    qt_cpu_rope_bwd(g, B, T, C, H, theta);
    st = qt_cuda_rope_bwd(NULL, dt, dg, B, T, C, H, theta);
    ck_assert_msg(st == QT_OK, "rope_bwd %s B=%d T=%d C=%d H=%d: %s", qt_dtype_name(dt), B, T, C,
                  H, qt_last_error());
    e = qt_ct_dev_err(dt, dg, g, n, atol, rtol);
    ck_assert_msg(e <= 1.0, "rope_bwd %s B=%d T=%d C=%d H=%d theta=%g seed=%llu: err %g",
                  qt_dtype_name(dt), B, T, C, H, (double)theta, (unsigned long long)seed, e);
    ck_assert_msg(qt_ct_guard_ok(dt, dg, n), "rope_bwd %s: guard band overwritten",
                  qt_dtype_name(dt));
    // the backward undoes the forward (fp32 storage only: no intermediate rounding)
    if (dt == QT_DTYPE_F32) {
        ck_assert_int_eq(qt_cuda_rope_bwd(NULL, dt, d, B, T, C, H, theta), QT_OK);
        e = qt_ct_dev_err(dt, d, x, n, 2e-6, 0.0);
        ck_assert_msg(e <= 1.0, "rope_bwd(rope_fwd(x)) != x B=%d T=%d C=%d H=%d: err %g", B, T,
                      C, H, e);
    }
    qt_ct_free(d);
    qt_ct_free(dg);
    float *hb[] = {x, want, got, g};
    free_host(hb, 4);
}

START_TEST(test_rope) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < ROPE_NSHAPES; s++)
            check_rope(DTYPES[d], ROPE_SHAPES[s][0], ROPE_SHAPES[s][1], ROPE_SHAPES[s][2],
                       ROPE_SHAPES[s][3], 10000.0f, 500 + 10 * (uint64_t)s + (uint64_t)d);
    // long positions (angles up to ~1000 rad: the double angle keeps CPU and GPU together),
    // another theta
    check_rope(QT_DTYPE_F32, 1, 1000, 8, 1, 10000.0f, 590);
    check_rope(QT_DTYPE_F32, 2, 17, 20, 2, 500000.0f, 591);
}
END_TEST

// ---- bad arguments --------------------------------------------------------------------------

START_TEST(test_rope_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 256);
    char *c = buf;
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_F32, buf, 1, 2, 6, 2, 10000.0f),
                     QT_ERR_ARG); // D = 3 is odd
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "rope_fwd"));
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "odd"));
    ck_assert_int_eq(qt_cuda_rope_bwd(NULL, QT_DTYPE_F32, buf, 1, 2, 8, 3, 10000.0f),
                     QT_ERR_ARG); // C not a multiple of H
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "rope_bwd"));
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_F32, buf, 1, 2, 8, 2, 0.0f), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_F32, NULL, 1, 2, 8, 2, 1e4f), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_BF16, c + 1, 1, 2, 8, 2, 1e4f), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_F32, buf, 0, 2, 8, 2, 1e4f), QT_OK);
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, (qt_dtype)9, buf, 1, 2, 8, 2, 1e4f), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_F32, buf, 1, 0x7fffffff, 8192, 1, 1e4f),
                     QT_ERR_ARG); // more (t, pair) threads than one grid holds
    qt_ct_free(buf);
}
END_TEST

static Suite *cuda_rope_suite(void) {
    Suite *s = suite_create("cuda_rope");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_rope_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(cuda_rope_suite());
}

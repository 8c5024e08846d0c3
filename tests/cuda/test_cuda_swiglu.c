// test_cuda_swiglu.c: kernels/cuda/swiglu.cu against the CPU reference (qt_cpu_swiglu_*,
// kernels/swiglu.h) on random inputs of odd shapes, in fp32, fp16 and bf16, with outputs
// poisoned (NaN), gradients pre-filled (the backward must add) and guard bands checked.
// Inputs are rounded to the dtype first, so the reference sees exactly what the kernel reads;
// what remains is the fp32 summation order, FMA contraction and the final rounding to the dtype.
// Tolerances (err <= atol + rtol |ref|): qt_ct_tolerance (fp32 1e-6 + 1e-5 relative; fp16
// 1e-3 + 4e-3; bf16 1e-2 + 3e-2). The terms grow like |x|^2 (x in [-hi, hi)) and dx adds them
// to a pre-filled gradient, where they may cancel: atol is scaled by max(1, hi^2).
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/swiglu.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
// SwiGLU (N, F): one element, around the warp and block sizes.
static const int SW_SHAPES[][2] = {{1, 1}, {3, 31}, {5, 33}, {7, 257}, {33, 95}};
#define SW_NSHAPES ((int)(sizeof SW_SHAPES / sizeof SW_SHAPES[0]))

static void free_dev(void **p, size_t n) {
    for (size_t i = 0; i < n; i++) qt_ct_free(p[i]);
}
static void free_host(float **p, size_t n) {
    for (size_t i = 0; i < n; i++) free(p[i]);
}

// ---- SwiGLU ---------------------------------------------------------------------------------

static void check_swiglu(qt_dtype dt, int N, int F, float lo, float hi, uint64_t seed) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    const size_t nx = (size_t)N * 2 * F, no = (size_t)N * F;
    float *x = qt_ct_rand_rounded(dt, nx, lo, hi, seed);
    float *gout = qt_ct_rand_rounded(dt, no, -1.0f, 1.0f, seed + 1);
    float *gx = qt_ct_rand_rounded(dt, nx, -1.0f, 1.0f, seed + 2); // pre-filled: the backward adds
    float *out = malloc(no * sizeof *out);
    qt_cpu_swiglu_fwd(out, x, N, F);
    void *dxv = qt_ct_upload(dt, x, nx), *dout = qt_ct_alloc(dt, no);
    void *dgout = qt_ct_upload(dt, gout, no), *dgx = qt_ct_upload(dt, gx, nx);
    qt_status st = qt_cuda_swiglu_fwd(NULL, dt, dout, dxv, N, F);
    ck_assert_msg(st == QT_OK, "swiglu_fwd %s N=%d F=%d: %s", qt_dtype_name(dt), N, F,
                  qt_last_error());
    // |out| grows with |x|^2: scale atol with the input range
    const double scale = fmax(1.0, (double)hi * hi);
    double e = qt_ct_dev_err(dt, dout, out, no, atol * scale, rtol);
    ck_assert_msg(e <= 1.0, "swiglu_fwd %s N=%d F=%d x in [%g, %g) seed=%llu: err %g",
                  qt_dtype_name(dt), N, F, (double)lo, (double)hi, (unsigned long long)seed, e);
    qt_cpu_swiglu_bwd(gx, gout, x, N, F);
    st = qt_cuda_swiglu_bwd(NULL, dt, dgx, dgout, dxv, N, F);
    ck_assert_msg(st == QT_OK, "swiglu_bwd %s N=%d F=%d: %s", qt_dtype_name(dt), N, F,
                  qt_last_error());
    e = qt_ct_dev_err(dt, dgx, gx, nx, atol * scale, rtol);
    ck_assert_msg(e <= 1.0, "swiglu_bwd %s N=%d F=%d x in [%g, %g) seed=%llu: err %g",
                  qt_dtype_name(dt), N, F, (double)lo, (double)hi, (unsigned long long)seed, e);
    ck_assert_msg(qt_ct_guard_ok(dt, dout, no) && qt_ct_guard_ok(dt, dgx, nx),
                  "swiglu %s N=%d F=%d: guard band overwritten", qt_dtype_name(dt), N, F);
    void *bufs[] = {dxv, dout, dgout, dgx};
    free_dev(bufs, 4);
    float *hb[] = {x, gout, gx, out};
    free_host(hb, 4);
}

START_TEST(test_swiglu) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < SW_NSHAPES; s++)
            check_swiglu(DTYPES[d], SW_SHAPES[s][0], SW_SHAPES[s][1], -4.0f, 4.0f,
                         700 + 10 * (uint64_t)s + (uint64_t)d);
    // large |a|: exp's argument capped on both sides, everything finite
    check_swiglu(QT_DTYPE_F32, 5, 33, -100.0f, 100.0f, 790);
    check_swiglu(QT_DTYPE_BF16, 5, 33, -100.0f, 100.0f, 791);
}
END_TEST

// ---- bad arguments --------------------------------------------------------------------------

START_TEST(test_swiglu_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 256);
    char *c = buf;
    ck_assert_int_eq(qt_cuda_swiglu_fwd(NULL, QT_DTYPE_F32, buf, buf, 2, 0), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "swiglu_fwd"));
    ck_assert_int_eq(qt_cuda_swiglu_fwd(NULL, QT_DTYPE_F32, NULL, buf, 2, 3), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_swiglu_fwd(NULL, (qt_dtype)9, buf, buf, 2, 3), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_swiglu_fwd(NULL, QT_DTYPE_F16, c + 1, buf, 2, 3), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_swiglu_bwd(NULL, QT_DTYPE_F32, buf, NULL, buf, 2, 3), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_swiglu_bwd(NULL, QT_DTYPE_F32, buf, c + 64, buf, 2, 3),
                     QT_ERR_ARG); // dx aliases x
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "swiglu_bwd"));
    ck_assert_int_eq(qt_cuda_swiglu_bwd(NULL, QT_DTYPE_F16, c + 1, c + 64, buf, 2, 3),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_swiglu_bwd(NULL, QT_DTYPE_F16, buf, c + 64, c + 128, 0, 3), QT_OK);
    qt_ct_free(buf);
}
END_TEST

static Suite *cuda_swiglu_suite(void) {
    Suite *s = suite_create("cuda_swiglu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_swiglu_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(cuda_swiglu_suite());
}

// test_cuda_activation.c: kernels/cuda/activation.cu (GELU, ReLU) against the CPU reference
// (kernels/activation.h) on odd sizes, in fp32, fp16 and bf16, with outputs poisoned (NaN) and
// guard bands checked. Inputs are rounded to the dtype first, so the reference sees exactly
// what the kernel reads. Tolerances (err <= atol + rtol |ref|): qt_ct_tolerance (fp32 1e-6 +
// 1e-5 relative; fp16 1e-3 + 4e-3; bf16 1e-2 + 3e-2); ReLU is exact: compared bit for bit (as
// floats, NaN matching NaN).
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/activation.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
static const size_t SIZES[] = {1, 31, 33, 257, 1027};
#define NSIZES ((int)(sizeof SIZES / sizeof SIZES[0]))
// elementwise.cu's grid cap (EW_MAX_BLOCKS * EW_THREADS) plus a bit: the grid-stride loop runs
// a second round.

// ---- GELU, ReLU -----------------------------------------------------------------------------

typedef enum { ACT_GELU, ACT_RELU } act_kind;

static const char *act_name(act_kind k) { return k == ACT_GELU ? "gelu" : "relu"; }

// x: uniform in [-6, 6), with a few special points: 0, large magnitudes (exp's cap) and, for
// ReLU, exact zeros and -0.
static float *act_inputs(qt_dtype dt, size_t n, uint64_t seed) {
    float *x = qt_ct_rand_rounded(dt, n, -6.0f, 6.0f, seed);
    static const float special[] = {0.0f, -0.0f, 30.0f, -30.0f, 100.0f, -100.0f, 1e-3f};
    for (size_t i = 0; i < n && i < sizeof special / sizeof special[0]; i++)
        x[n - 1 - i] = qt_ct_round(dt, special[i]);
    return x;
}

// alias: forward out aliases x; backward dx aliases dout (overwrite form).
static void check_act(act_kind k, qt_dtype dt, size_t n, int alias, uint64_t seed) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    float *x = act_inputs(dt, n, seed);
    float *dout = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, seed + 1);
    float *dx = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, seed + 2); // pre-filled gradient
    float *out = malloc(n * sizeof *out);
    // reference
    if (k == ACT_GELU)
        qt_cpu_gelu_fwd(out, x, n);
    else
        qt_cpu_relu_fwd(out, x, n);
    float *ref_dx = malloc(n * sizeof *ref_dx);
    if (alias)
        memcpy(ref_dx, dout, n * sizeof *ref_dx);
    else
        memcpy(ref_dx, dx, n * sizeof *ref_dx);
    if (k == ACT_GELU)
        qt_cpu_gelu_bwd(ref_dx, alias ? ref_dx : dout, x, n);
    else
        qt_cpu_relu_bwd(ref_dx, alias ? ref_dx : dout, x, n);

    // forward
    void *d_x = qt_ct_upload(dt, x, n);
    void *d_out = alias ? d_x : qt_ct_alloc(dt, n);
    qt_status st = k == ACT_GELU ? qt_cuda_gelu_fwd(NULL, dt, d_out, d_x, n)
                                 : qt_cuda_relu_fwd(NULL, dt, d_out, d_x, n);
    ck_assert_msg(st == QT_OK, "%s_fwd %s n=%zu: %s", act_name(k), qt_dtype_name(dt), n,
                  qt_last_error());
    const double ef = qt_ct_dev_err(dt, d_out, out, n, atol, rtol);
    ck_assert_msg(ef <= 1.0, "%s_fwd %s n=%zu alias=%d seed=%llu: err %g", act_name(k),
                  qt_dtype_name(dt), n, alias, (unsigned long long)seed, ef);
    ck_assert_msg(qt_ct_guard_ok(dt, d_out, n), "%s_fwd %s n=%zu: guard band overwritten",
                  act_name(k), qt_dtype_name(dt), n);
    if (!alias) qt_ct_free(d_out);
    qt_ct_free(d_x);

    // backward
    d_x = qt_ct_upload(dt, x, n);
    void *d_dout = qt_ct_upload(dt, dout, n);
    void *d_dx = alias ? d_dout : qt_ct_upload(dt, dx, n);
    st = k == ACT_GELU ? qt_cuda_gelu_bwd(NULL, dt, d_dx, d_dout, d_x, n)
                       : qt_cuda_relu_bwd(NULL, dt, d_dx, d_dout, d_x, n);
    ck_assert_msg(st == QT_OK, "%s_bwd %s n=%zu: %s", act_name(k), qt_dtype_name(dt), n,
                  qt_last_error());
    const double eb = qt_ct_dev_err(dt, d_dx, ref_dx, n, atol, rtol);
    ck_assert_msg(eb <= 1.0, "%s_bwd %s n=%zu alias=%d seed=%llu: err %g", act_name(k),
                  qt_dtype_name(dt), n, alias, (unsigned long long)seed, eb);
    ck_assert_msg(qt_ct_guard_ok(dt, d_dx, n), "%s_bwd %s n=%zu: guard band overwritten",
                  act_name(k), qt_dtype_name(dt), n);
    if (!alias) qt_ct_free(d_dx);
    qt_ct_free(d_dout);
    qt_ct_free(d_x);
    free(x);
    free(dout);
    free(dx);
    free(out);
    free(ref_dx);
}

START_TEST(test_gelu) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSIZES; s++)
            for (int alias = 0; alias < 2; alias++)
                check_act(ACT_GELU, DTYPES[d], SIZES[s], alias,
                          1000 + 10 * (uint64_t)s + 3 * (uint64_t)d + (uint64_t)alias);
}
END_TEST

START_TEST(test_relu) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSIZES; s++)
            for (int alias = 0; alias < 2; alias++)
                check_act(ACT_RELU, DTYPES[d], SIZES[s], alias,
                          2000 + 10 * (uint64_t)s + 3 * (uint64_t)d + (uint64_t)alias);
}
END_TEST

// ---- bad arguments --------------------------------------------------------------------------

START_TEST(test_activation_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    ck_assert_int_eq(qt_cuda_gelu_fwd(NULL, (qt_dtype)9, buf, buf, 4), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "gelu_fwd"));
    ck_assert_int_eq(qt_cuda_relu_bwd(NULL, QT_DTYPE_F16, buf, NULL, buf, 4), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "relu_bwd"));
    // n == 0 and N == 0 are no-ops
    ck_assert_int_eq(qt_cuda_gelu_bwd(NULL, QT_DTYPE_BF16, buf, buf, buf, 0), QT_OK);
    qt_ct_free(buf);
}
END_TEST

static Suite *cuda_activation_suite(void) {
    Suite *s = suite_create("cuda_activation");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gelu);
    tcase_add_test(tc, test_relu);
    tcase_add_test(tc, test_activation_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(cuda_activation_suite());
}

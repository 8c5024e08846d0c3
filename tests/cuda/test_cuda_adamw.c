// test_cuda_adamw.c: kernels/cuda/adamw.cu against the CPU reference (qt_cpu_adamw_step,
// kernels/adamw.h) on odd sizes, in fp32, fp16 and bf16, with guard bands checked.
// Tolerances: AdamW over several steps in fp32 within 1e-6 relative. The moments round exactly
// as on the CPU (the kernel's _rn operations are never contracted into an fma, nor is the ISO C
// reference, nor the emulated build, compiled with -ffp-contract=off), so m and v get no
// absolute term (they are in fact bit-identical). The weights get 1e-6 of the update's size
// (about lr = 1e-2) absolute for values near zero: the CPU's vsqrtf is within 1 ulp of sqrt,
// so the update may differ in its last bit or two. With master weights the master follows the
// same bounds and the parameter must equal the master rounded to the dtype, bit for bit.
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/adamw.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
static const size_t SIZES[] = {1, 31, 33, 257, 1027};
#define NSIZES ((int)(sizeof SIZES / sizeof SIZES[0]))
#define NSTEPS 4
#define ADAM_RTOL 1e-6
#define ADAM_ATOL 1e-8  // weights: 1e-6 lr

static qt_adamw_params adam_params(int step) {
    qt_adamw_params p = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                         .weight_decay = 0.1f, .step = step, .grad_scale = 0.5f};
    return p;
}

// ---- AdamW ----------------------------------------------------------------------------------

// use_master: master weights (fp32) updated and param written as their rounding to dt;
// otherwise dt is fp32 and param is updated in place.
static void check_adamw(qt_dtype dt, size_t n, int use_master, uint64_t seed) {
    float *w = qt_ct_rand_rounded(QT_DTYPE_F32, n, -1.0f, 1.0f, seed); // fp32 weights (reference)
    float *m = qt_ct_rand_rounded(QT_DTYPE_F32, n, -0.1f, 0.1f, seed + 1);
    float *v = qt_ct_rand_rounded(QT_DTYPE_F32, n, 0.0f, 0.01f, seed + 2);
    float *p0 = malloc(n * sizeof *p0);
    for (size_t i = 0; i < n; i++) p0[i] = qt_ct_round(dt, w[i]);
    void *d_param = qt_ct_upload(dt, use_master ? p0 : w, n);
    void *d_master = use_master ? qt_ct_upload(QT_DTYPE_F32, w, n) : NULL;
    void *d_m = qt_ct_upload(QT_DTYPE_F32, m, n), *d_v = qt_ct_upload(QT_DTYPE_F32, v, n);
    for (int step = 1; step <= NSTEPS; step++) {
        const qt_adamw_params prm = adam_params(step);
        // gradients as dt holds them; a few zeros (v may then decay towards 0)
        float *g = qt_ct_rand_rounded(dt, n, -2.0f, 2.0f, seed + 10 * (uint64_t)step);
        if (n > 3) g[n / 2] = 0.0f;
        void *d_g = qt_ct_upload(dt, g, n);
        qt_status st = qt_cuda_adamw_step(NULL, dt, d_param, d_master, d_g, d_m, d_v, n, &prm);
        ck_assert_msg(st == QT_OK, "adamw %s n=%zu master=%d step %d: %s", qt_dtype_name(dt), n,
                      use_master, step, qt_last_error());
        qt_cpu_adamw_step(w, g, m, v, n, &prm);
        const double em = qt_ct_dev_err(QT_DTYPE_F32, d_m, m, n, 0.0, ADAM_RTOL);
        const double ev = qt_ct_dev_err(QT_DTYPE_F32, d_v, v, n, 0.0, ADAM_RTOL);
        const double ew = qt_ct_dev_err(QT_DTYPE_F32, use_master ? d_master : d_param, w, n,
                                        ADAM_ATOL, ADAM_RTOL);
        ck_assert_msg(em <= 1.0 && ev <= 1.0 && ew <= 1.0,
                      "adamw %s n=%zu master=%d seed=%llu step %d: err m %g v %g weights %g",
                      qt_dtype_name(dt), n, use_master, (unsigned long long)seed, step, em, ev,
                      ew);
        if (use_master) { // param == master rounded to dt, bit for bit
            float *pm = qt_ct_download_new(QT_DTYPE_F32, d_master, n);
            float *pp = qt_ct_download_new(dt, d_param, n);
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(pp[i] == qt_ct_round(dt, pm[i]),
                              "adamw %s n=%zu step %d: param[%zu] = %a, master %a rounds to %a",
                              qt_dtype_name(dt), n, step, i, (double)pp[i], (double)pm[i],
                              (double)qt_ct_round(dt, pm[i]));
            free(pm);
            free(pp);
        }
        qt_ct_free(d_g);
        free(g);
    }
    ck_assert_msg(qt_ct_guard_ok(dt, d_param, n) && qt_ct_guard_ok(QT_DTYPE_F32, d_m, n) &&
                      qt_ct_guard_ok(QT_DTYPE_F32, d_v, n) &&
                      (!d_master || qt_ct_guard_ok(QT_DTYPE_F32, d_master, n)),
                  "adamw %s n=%zu master=%d: guard band overwritten", qt_dtype_name(dt), n,
                  use_master);
    qt_ct_free(d_param);
    qt_ct_free(d_master);
    qt_ct_free(d_m);
    qt_ct_free(d_v);
    free(w);
    free(m);
    free(v);
    free(p0);
}

START_TEST(test_adamw_fp32_in_place) {
    for (int s = 0; s < NSIZES; s++) check_adamw(QT_DTYPE_F32, SIZES[s], 0, 100 + (uint64_t)s);
}
END_TEST

START_TEST(test_adamw_master) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSIZES; s++)
            check_adamw(DTYPES[d], SIZES[s], 1, 200 + 10 * (uint64_t)s + (uint64_t)d);
}
END_TEST

START_TEST(test_adamw_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    float *f = buf;
    qt_adamw_params prm = adam_params(1);
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F16, buf, NULL, buf, f, f, 8, &prm),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "master"));
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "adamw_step"));
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_BF16, buf, NULL, buf, f, f, 0, &prm),
                     QT_ERR_ARG); // rejected even when empty
    prm.step = 0;
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, 8, &prm),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "step"));
    prm.step = 1;
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, 8, NULL),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, (qt_dtype)4, buf, f, buf, f, f, 8, &prm),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F32, buf, NULL, NULL, f, f, 8, &prm),
                     QT_ERR_ARG);
    float *misaligned = (float *)((char *)f + 2);
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F32, buf, NULL, buf, f, misaligned, 8, &prm),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_adamw_step(NULL, QT_DTYPE_F32, buf, NULL, buf, f, f, 0, &prm),
                     QT_OK);
    qt_ct_free(buf);
}
END_TEST

static Suite *cuda_adamw_suite(void) {
    Suite *s = suite_create("cuda_adamw");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_adamw_fp32_in_place);
    tcase_add_test(tc, test_adamw_master);
    tcase_add_test(tc, test_adamw_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(cuda_adamw_suite());
}

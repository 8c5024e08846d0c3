// test_cuda_adamw.c: kernels/cuda/adamw.cu (AdamW step, sum of squares) against the CPU
// reference (qt_cpu_adamw_step, qt_cpu_sumsq) on odd sizes, in fp32, fp16 and bf16, with
// guard bands checked.
// Tolerances: AdamW over several steps in fp32 within 1e-6 relative. The moments round exactly
// as on the CPU (the kernel's _rn operations are never contracted into an fma, nor is the ISO C
// reference, nor the emulated build, compiled with -ffp-contract=off), so m and v get no
// absolute term (they are in fact bit-identical). The weights get 1e-6 of the update's size
// (about lr = 1e-2) absolute for values near zero: the CPU's vsqrtf is within 1 ulp of sqrt,
// so the update may differ in its last bit or two. With master weights the master follows the
// same bounds and the parameter must equal the master rounded to the dtype, bit for bit. The
// sum of squares (double) within 1e-12 relative (only the summation order differs); any inf or
// NaN in the input must give a non-finite sum (the loss scaler's overflow check).
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "qtrain/cuda_ops.h"
#include "qtrain/ops.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
static const size_t SIZES[] = {1, 31, 33, 257, 1027};
#define NSIZES ((int)(sizeof SIZES / sizeof SIZES[0]))
#define NSTEPS 4
#define ADAM_RTOL 1e-6
#define ADAM_ATOL 1e-8  // weights: 1e-6 lr
#define SUMSQ_RTOL 1e-12

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

// ---- sum of squares -------------------------------------------------------------------------

// Device scratch for qt_cuda_sumsq with a guard band (allocated as fp32 pairs).
static double *alloc_partials(void) {
    return qt_ct_alloc(QT_DTYPE_F32, 2 * qt_cuda_sumsq_scratch_size());
}
static int partials_guard_ok(const double *p) {
    return qt_ct_guard_ok(QT_DTYPE_F32, p, 2 * qt_cuda_sumsq_scratch_size());
}

static double dev_sumsq(qt_dtype dt, const void *x, size_t n, double *partials) {
    double out = -1.0;
    qt_status st = qt_cuda_sumsq(NULL, dt, &out, x, n, partials);
    ck_assert_msg(st == QT_OK, "sumsq %s n=%zu: %s", qt_dtype_name(dt), n, qt_last_error());
    return out;
}

START_TEST(test_sumsq) {
    // 4097: just past one stage-1 block; 100003: many blocks; 4194304 + 11: past the block cap
    // (1024 blocks of 4096), so the stage-1 threads loop.
    static const size_t sizes[] = {1, 31, 33, 1027, 4097, 100003, 4194304 + 11};
    ck_assert_uint_ge(qt_cuda_sumsq_scratch_size(), 2);
    double *partials = alloc_partials();
    for (int d = 0; d < 3; d++) {
        const qt_dtype dt = DTYPES[d];
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            const size_t n = sizes[s];
            if (n > 200000 && dt != QT_DTYPE_F16) continue; // one dtype is enough for the big one
            const uint64_t seed = 300 + 10 * (uint64_t)s + (uint64_t)d;
            float *x = qt_ct_rand_rounded(dt, n, -3.0f, 3.0f, seed);
            void *dx = qt_ct_upload(dt, x, n);
            const double want = qt_cpu_sumsq(x, n), got = dev_sumsq(dt, dx, n, partials);
            ck_assert_msg(fabs(got - want) <= SUMSQ_RTOL * want,
                          "sumsq %s n=%zu seed=%llu: got %.17g want %.17g", qt_dtype_name(dt),
                          n, (unsigned long long)seed, got, want);
            // deterministic: the same bits again
            const double again = dev_sumsq(dt, dx, n, partials);
            ck_assert_msg(memcmp(&got, &again, sizeof got) == 0,
                          "sumsq %s n=%zu: two runs differ (%.17g, %.17g)", qt_dtype_name(dt), n,
                          got, again);
            qt_ct_free(dx);
            free(x);
        }
    }
    ck_assert(partials_guard_ok(partials));
    // n == 0: zero, no launch
    double out = -1.0;
    ck_assert_int_eq(qt_cuda_sumsq(NULL, QT_DTYPE_F32, &out, NULL, 0, partials), QT_OK);
    ck_assert(out == 0.0);
    qt_ct_free(partials);
}
END_TEST

// An inf, a -inf or a NaN anywhere (first, last, mid-array, in one block or several) gives a
// non-finite sum: inf for infinities, NaN when a NaN is present.
START_TEST(test_sumsq_non_finite) {
    const size_t n = 100003;
    double *partials = alloc_partials();
    for (int d = 0; d < 3; d++) {
        const qt_dtype dt = DTYPES[d];
        const size_t where[] = {0, n - 1, 4096 * 7 + 5};
        for (int k = 0; k < 3; k++) {
            for (int kind = 0; kind < 4; kind++) { // inf, -inf, NaN, inf and NaN
                float *x = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, 400 + (uint64_t)d);
                const size_t i = where[k], j = where[(k + 1) % 3];
                x[i] = kind == 0 ? INFINITY : kind == 1 ? -INFINITY : NAN;
                if (kind == 3) {
                    x[i] = INFINITY;
                    x[j] = NAN;
                }
                void *dx = qt_ct_upload(dt, x, n);
                const double got = dev_sumsq(dt, dx, n, partials);
                if (kind <= 1)
                    ck_assert_msg(isinf(got) && got > 0,
                                  "sumsq %s n=%zu: %s at %zu gives %g, want +inf",
                                  qt_dtype_name(dt), n, kind ? "-inf" : "inf", i, got);
                else
                    ck_assert_msg(isnan(got), "sumsq %s n=%zu: NaN at %zu gives %g, want NaN",
                                  qt_dtype_name(dt), n, kind == 3 ? j : i, got);
                qt_ct_free(dx);
                free(x);
            }
        }
    }
    // fp16 overflow: a finite fp32 value past 65504 is stored as inf, which the check catches
    {
        float x[3] = {1.0f, 70000.0f, 2.0f};
        void *dx = qt_ct_upload(QT_DTYPE_F16, x, 3);
        ck_assert(isinf(dev_sumsq(QT_DTYPE_F16, dx, 3, partials)));
        qt_ct_free(dx);
    }
    ck_assert(partials_guard_ok(partials));
    qt_ct_free(partials);
}
END_TEST

START_TEST(test_sumsq_bad_args) {
    double out;
    double *partials = alloc_partials();
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 8);
    ck_assert_int_eq(qt_cuda_sumsq(NULL, QT_DTYPE_F32, &out, buf, 8, NULL), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "qt_cuda_sumsq_scratch_size"));
    ck_assert_int_eq(qt_cuda_sumsq(NULL, QT_DTYPE_F32, NULL, buf, 8, partials), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_sumsq(NULL, (qt_dtype)3, &out, buf, 8, partials), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_sumsq(NULL, QT_DTYPE_F32, &out, (char *)buf + 2, 4, partials),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "sumsq"));
    qt_ct_free(buf);
    qt_ct_free(partials);
}
END_TEST

static Suite *adamw_suite(void) {
    Suite *s = suite_create("cuda_adamw");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_adamw_fp32_in_place);
    tcase_add_test(tc, test_adamw_master);
    tcase_add_test(tc, test_adamw_bad_args);
    tcase_add_test(tc, test_sumsq);
    tcase_add_test(tc, test_sumsq_non_finite);
    tcase_add_test(tc, test_sumsq_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(adamw_suite());
}

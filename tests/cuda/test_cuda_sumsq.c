// test_cuda_sumsq.c: kernels/cuda/sumsq.cu against the CPU reference (qt_cpu_sumsq,
// kernels/sumsq.h) on odd sizes, in fp32, fp16 and bf16, with guard bands checked: the sum of
// squares (double) within 1e-12 relative (only the summation order differs); any inf or NaN in
// the input must give a non-finite sum (the loss scaler's overflow check).
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/sumsq.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
#define SUMSQ_RTOL 1e-12

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
            double want = NAN;
            ck_assert_int_eq(qt_cpu_sumsq(&want, x, n), QT_OK);
            const double got = dev_sumsq(dt, dx, n, partials);
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

static Suite *cuda_sumsq_suite(void) {
    Suite *s = suite_create("cuda_sumsq");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sumsq);
    tcase_add_test(tc, test_sumsq_non_finite);
    tcase_add_test(tc, test_sumsq_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(cuda_sumsq_suite());
}

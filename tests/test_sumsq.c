// test_sumsq.c: the sum-of-squares CPU reference (kernels/sumsq.h) against a long-double sum,
// and its determinism.
#include <math.h>
#include <stdlib.h>

#include "kernels/sumsq.h"
#include "expect_error.h"
#include "testutil.h"

// ---- sumsq ----------------------------------------------------------------------------------
START_TEST(test_sumsq) {
    const size_t sizes[4] = {0, 1, 33, 3000017};
    for (int s = 0; s < 4; s++) {
        size_t n = sizes[s];
        float *x = qt_test_falloc(n);
        qt_test_fill_uniform(x, n, -2, 2, 140 + s);
        long double want = 0.0L;
        for (size_t i = 0; i < n; i++) want += (long double)x[i] * x[i];
        double got = NAN, again = NAN;
        ck_assert_int_eq(qt_cpu_sumsq(&got, x, n), QT_OK);
        ck_assert_msg(fabs(got - (double)want) <= 1e-13 * (double)want,
                      "sumsq n %zu: %.17g, want %.17Lg", n, got, want);
        ck_assert_int_eq(qt_cpu_sumsq(&again, x, n), QT_OK);
        ck_assert_msg(got == again, "sumsq n %zu not deterministic", n);
        free(x);
    }
}
END_TEST

// The error contract (kernels/sumsq.h): a NULL out, or a NULL x with n > 0, is refused, naming
// the op, before *out is written.
START_TEST(test_sumsq_bad_args) {
    const float x[3] = {1.0f, 2.0f, 3.0f};
    double *out = qt_test_guarded(sizeof(double));
    QT_EXPECT_REFUSED(qt_cpu_sumsq(out, NULL, 3), "sumsq", qt_test_untouched(out, sizeof *out));
    QT_EXPECT_REFUSED(qt_cpu_sumsq(NULL, x, 3), "sumsq", 1);
    QT_EXPECT_OK(qt_cpu_sumsq(out, NULL, 0));
    ck_assert(*out == 0.0);
    free(out);
}
END_TEST

static Suite *sumsq_suite(void) {
    Suite *s = suite_create("sumsq");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sumsq);
    tcase_add_test(tc, test_sumsq_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(sumsq_suite()); }

// test_sumsq.c: the sum-of-squares CPU reference (kernels/sumsq.h) against a long-double sum,
// and its determinism.
#include <math.h>
#include <stdlib.h>

#include "kernels/sumsq.h"
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

static Suite *sumsq_suite(void) {
    Suite *s = suite_create("sumsq");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sumsq);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(sumsq_suite()); }

// test_dropout.c: the dropout family's CPU reference (kernels/dropout.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/philox.h"
#include "kernels/dropout.h"
#include "expect_error.h"
#include "testutil.h"

// ---- dropout --------------------------------------------------------------------------------

START_TEST(test_dropout) {
    const size_t n = 100003;
    const float prob = 0.3f;
    float *x = qt_test_falloc(n), *o1 = qt_test_falloc(n), *o2 = qt_test_falloc(n),
          *dx = qt_test_falloc(n), *dout = qt_test_falloc(n);
    qt_test_fill_uniform(x, n, 0.5f, 1.5f, 100); // nonzero, so a zero output means dropped
    qt_test_fill_uniform(dout, n, 0.5f, 1.5f, 101);
    qt_test_poison(o1, n);
    QT_EXPECT_OK(qt_cpu_dropout_fwd(o1, x, n, prob, 7, 42));
    QT_EXPECT_OK(qt_cpu_dropout_fwd(o2, x, n, prob, 7, 42));
    ck_assert_msg(memcmp(o1, o2, n * sizeof(float)) == 0, "dropout mask not reproducible");
    size_t kept = 0;
    const float s = 1.0f / (1.0f - prob);
    for (size_t i = 0; i < n; i++) {
        int keep = qt_philox_uniform(7, 42, i) >= prob;
        ck_assert_msg(o1[i] == (keep ? x[i] * s : 0.0f), "dropout_fwd element %zu", i);
        kept += keep;
    }
    // keep rate: binomial(n, 0.7), 5 standard deviations
    double mean = n * (1.0 - prob), sd = sqrt(n * prob * (1.0 - prob));
    ck_assert_msg(fabs(kept - mean) <= 5 * sd, "dropout kept %zu of %zu (expected %g +- %g)", kept,
                  n, mean, 5 * sd);
    // another stream gives another mask
    QT_EXPECT_OK(qt_cpu_dropout_fwd(o2, x, n, prob, 7, 43));
    ck_assert(memcmp(o1, o2, n * sizeof(float)) != 0);
    // the backward uses the same mask, and adds
    qt_test_fill_uniform(dx, n, -1, 1, 102);
    memcpy(o2, dx, n * sizeof(float));
    QT_EXPECT_OK(qt_cpu_dropout_bwd(dx, dout, n, prob, 7, 42));
    for (size_t i = 0; i < n; i++) {
        float want = o2[i] + (o1[i] != 0.0f ? dout[i] * s : 0.0f);
        ck_assert_msg(dx[i] == want, "dropout_bwd element %zu: %g, want %g", i, dx[i], want);
    }
    // in place: dx aliasing dout gets dout keep / (1 - p)
    memcpy(o2, dout, n * sizeof(float));
    QT_EXPECT_OK(qt_cpu_dropout_bwd(o2, o2, n, prob, 7, 42));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(o2[i] == (o1[i] != 0.0f ? dout[i] * s : 0.0f), "dropout_bwd in place %zu",
                      i);
    // prob 0 is the identity (copy, and in place), its backward a plain add
    qt_test_poison(o2, n);
    QT_EXPECT_OK(qt_cpu_dropout_fwd(o2, x, n, 0.0f, 7, 42));
    ck_assert(memcmp(o2, x, n * sizeof(float)) == 0);
    QT_EXPECT_OK(qt_cpu_dropout_fwd(o2, o2, n, 0.0f, 7, 42));
    ck_assert(memcmp(o2, x, n * sizeof(float)) == 0);
    memset(dx, 0, n * sizeof(float));
    QT_EXPECT_OK(qt_cpu_dropout_bwd(dx, dout, n, 0.0f, 7, 42));
    ck_assert(memcmp(dx, dout, n * sizeof(float)) == 0);
    // odd sizes: the tail after the last full group of four, and out aliasing x
    for (size_t m = 1; m <= 7; m++) {
        float a[7], b[7];
        memcpy(a, x, m * sizeof(float));
        QT_EXPECT_OK(qt_cpu_dropout_fwd(b, x, m, prob, 9, 1));
        QT_EXPECT_OK(qt_cpu_dropout_fwd(a, a, m, prob, 9, 1));
        for (size_t i = 0; i < m; i++) {
            float want = qt_philox_uniform(9, 1, i) >= prob ? x[i] * s : 0.0f;
            ck_assert_msg(a[i] == want && b[i] == want, "dropout n %zu element %zu", m, i);
        }
    }
    free(x);
    free(o1);
    free(o2);
    free(dx);
    free(dout);
}
END_TEST

// The error contract (kernels/dropout.h): a probability outside [0, 1] (NaN included) or a
// NULL tensor with n > 0 is refused, naming the op, before anything is written; prob = 1 stays
// valid (everything dropped).
START_TEST(test_dropout_bad_args) {
    enum { n = 9 };
    const size_t nb = n * sizeof(float);
    float x[n];
    qt_test_fill_uniform(x, n, 0.5f, 1.5f, 103);
    float *out = qt_test_guarded(nb), *dx = qt_test_guarded(nb);
    const float bad[] = {NAN, -0.1f, 1.5f, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        QT_EXPECT_REFUSED(qt_cpu_dropout_fwd(out, x, n, bad[i], 7, 42), "dropout_fwd",
                          qt_test_untouched(out, nb));
        QT_EXPECT_REFUSED(qt_cpu_dropout_bwd(dx, x, n, bad[i], 7, 42), "dropout_bwd",
                          qt_test_untouched(dx, nb));
    }
    QT_EXPECT_REFUSED(qt_cpu_dropout_fwd(out, NULL, n, 0.0f, 7, 42), "dropout_fwd",
                      qt_test_untouched(out, nb));
    QT_EXPECT_REFUSED(qt_cpu_dropout_bwd(dx, NULL, n, 0.3f, 7, 42), "dropout_bwd",
                      qt_test_untouched(dx, nb));
    QT_EXPECT_OK(qt_cpu_dropout_fwd(out, x, n, 1.0f, 7, 42));
    for (int i = 0; i < n; i++)
        ck_assert_msg(out[i] == 0.0f, "prob 1: out[%d] = %g", i, out[i]);
    QT_EXPECT_OK(qt_cpu_dropout_fwd(NULL, NULL, 0, 0.5f, 7, 42));
    QT_TEST_FREE_ALL(out, dx);
}
END_TEST

static Suite *dropout_suite(void) {
    Suite *s = suite_create("dropout");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_dropout);
    tcase_add_test(tc, test_dropout_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(dropout_suite()); }

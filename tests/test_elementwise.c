// test_elementwise.c: the elementwise family's CPU reference (kernels/elementwise.h): the
// residual add, the bias add and the bias gradient, compared with direct loops.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/elementwise.h"
#include "expect_error.h"
#include "testutil.h"

// ---- add ------------------------------------------------------------------------------------
START_TEST(test_add) {
    const size_t n = 70001;
    float *a = qt_test_falloc(n), *b = qt_test_falloc(n), *o = qt_test_falloc(n);
    qt_test_fill_uniform(a, n, -1, 1, 90);
    qt_test_fill_uniform(b, n, -1, 1, 91);
    qt_test_poison(o, n);
    QT_EXPECT_OK(qt_cpu_add(o, a, b, n));
    for (size_t i = 0; i < n; i++) ck_assert(o[i] == a[i] + b[i]);
    QT_EXPECT_OK(qt_cpu_add(a, a, b, n)); // out aliases a
    ck_assert(memcmp(a, o, n * sizeof(float)) == 0);
    free(a);
    free(b);
    free(o);
}
END_TEST

// ---- bias add, bias gradient ------------------------------------------------------------------
// Odd shapes around the column block of common/colsum.h (64) and the parallel threshold; the
// gradient is accumulated onto a random start and compared with a row-ordered double sum.
START_TEST(test_bias) {
    const int shapes[][2] = {{1, 1}, {3, 63}, {5, 65}, {130, 257}, {2049, 33}};
    for (int k = 0; k < 5; k++) {
        const int N = shapes[k][0], OC = shapes[k][1];
        const size_t n = (size_t)N * OC;
        float *x = qt_test_falloc(n), *out = qt_test_falloc(n), *bias = qt_test_falloc(OC);
        float *db = qt_test_falloc(OC), *start = qt_test_falloc(OC);
        qt_test_fill_uniform(x, n, -1, 1, 300 + k);
        qt_test_fill_uniform(bias, OC, -1, 1, 310 + k);
        qt_test_fill_uniform(start, OC, -1, 1, 320 + k);
        memcpy(out, x, n * sizeof(float));
        QT_EXPECT_OK(qt_cpu_bias_add(out, bias, N, OC));
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(out[i] == x[i] + bias[i % OC], "bias_add (%d, %d) element %zu", N, OC, i);
        memcpy(db, start, OC * sizeof(float));
        QT_EXPECT_OK(qt_cpu_bias_grad(db, x, N, OC));
        for (int c = 0; c < OC; c++) {
            double want = 0.0;
            for (int r = 0; r < N; r++) want += x[(size_t)r * OC + c];
            const double got = (double)db[c] - (double)start[c];
            ck_assert_msg(fabs(got - want) <= 1e-5 * (1.0 + sqrt((double)N)),
                          "bias_grad (%d, %d) column %d: %g, want %g", N, OC, c, got, want);
        }
        QT_TEST_FREE_ALL(x, out, bias, db, start);
    }
}
END_TEST

// The error contract (kernels/elementwise.h): a bad shape (N < 0, OC < 1) or a NULL tensor
// with work to do is refused, naming the op, before anything is written.
START_TEST(test_elementwise_bad_args) {
    enum { N = 3, OC = 4 };
    const size_t nb = (size_t)N * OC * sizeof(float);
    float a[N * OC], bias[OC];
    qt_test_fill_uniform(a, (size_t)N * OC, -1.0f, 1.0f, 92);
    qt_test_fill_uniform(bias, OC, -1.0f, 1.0f, 93);
    float *out = qt_test_guarded(nb), *db = qt_test_guarded(OC * sizeof(float));
    QT_EXPECT_REFUSED(qt_cpu_add(out, a, NULL, (size_t)N * OC), "add", qt_test_untouched(out, nb));
    QT_EXPECT_REFUSED(qt_cpu_bias_add(out, bias, -1, OC), "bias_add", qt_test_untouched(out, nb));
    QT_EXPECT_REFUSED(qt_cpu_bias_add(out, bias, N, 0), "bias_add", qt_test_untouched(out, nb));
    QT_EXPECT_REFUSED(qt_cpu_bias_add(out, NULL, N, OC), "bias_add", qt_test_untouched(out, nb));
    QT_EXPECT_REFUSED(qt_cpu_bias_grad(db, a, N, -2), "bias_grad",
                      qt_test_untouched(db, OC * sizeof(float)));
    QT_EXPECT_REFUSED(qt_cpu_bias_grad(db, NULL, N, OC), "bias_grad",
                      qt_test_untouched(db, OC * sizeof(float)));
    QT_EXPECT_OK(qt_cpu_add(NULL, NULL, NULL, 0));
    QT_EXPECT_OK(qt_cpu_bias_grad(NULL, NULL, 0, OC));
    QT_TEST_FREE_ALL(out, db);
}
END_TEST

static Suite *elementwise_suite(void) {
    Suite *s = suite_create("elementwise");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_add);
    tcase_add_test(tc, test_bias);
    tcase_add_test(tc, test_elementwise_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(elementwise_suite()); }

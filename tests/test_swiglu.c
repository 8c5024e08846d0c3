// test_swiglu.c: the SwiGLU CPU reference (kernels/swiglu.h) against finite differences and
// float against double.
//
// Gradient checks run in double against central finite differences (step 1e-6) of a scalar
// loss L = sum wout * output. Error norm, per gradient tensor:
//     err = max_i |analytic_i - fd_i| / max(max_i |fd_i|, 1e-30),  pass when err <= 1e-6
// (NaN fails). Accumulating backwards start from random gradients that the test subtracts
// afterwards, so a backward that overwrites instead of adding fails.
// Float against double: the same (float-representable) inputs, float outputs poisoned with
// NaN, odd sizes; per element |float - double| <= rtol (max |double| + |double|), rtol 1e-5.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/swiglu.h"
#include "expect_error.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6
#define FV_RTOL 1e-5

// ---- SwiGLU ---------------------------------------------------------------------------------

typedef struct {
    int N, F;
    double *x;
    const double *wout;
    double *out;
} swiglu_ctx;

static double swiglu_loss(void *v) {
    swiglu_ctx *c = v;
    QT_EXPECT_OK(qt_cpu_swiglu_fwd_f64(c->out, c->x, c->N, c->F));
    return qt_test_ddot(c->out, c->wout, (size_t)c->N * c->F);
}

START_TEST(test_swiglu_fd) {
    const int shapes[][2] = {{3, 7}, {1, 1}, {5, 33}};
    for (int s = 0; s < 3; s++) {
        const int N = shapes[s][0], F = shapes[s][1];
        const size_t nx = (size_t)N * 2 * F, no = (size_t)N * F;
        const uint64_t seed = 70 + 10 * (uint64_t)s;
        double *wout = qt_test_drand(no, -1, 1, seed);
        swiglu_ctx c = {N, F, qt_test_drand(nx, -4, 4, seed + 1), wout, qt_test_dalloc(no)};
        swiglu_loss(&c);
        for (size_t i = 0; i < no; i++) { // the definition
            const double a = c.x[(i / F) * 2 * F + i % F], b = c.x[(i / F) * 2 * F + F + i % F];
            const double want = a / (1.0 + exp(-a)) * b;
            ck_assert_msg(fabs(c.out[i] - want) <= 1e-14 * (1.0 + fabs(want)),
                          "swiglu_fwd_f64 N %d F %d [%zu]: %g want %g", N, F, i, c.out[i], want);
        }
        double *dx0 = qt_test_drand(nx, -1, 1, seed + 2), *dx = qt_test_dcopy(dx0, nx);
        QT_EXPECT_OK(qt_cpu_swiglu_bwd_f64(dx, wout, c.x, N, F));
        char what[64];
        snprintf(what, sizeof what, "swiglu_bwd_f64 dx N %d F %d", N, F);
        qt_test_check_grad(swiglu_loss, &c, c.x, nx, dx, dx0, FD_H, FD_TOL, what);
        QT_TEST_FREE_ALL(wout, c.x, c.out, dx0, dx);
    }
}
END_TEST

static void check_swiglu_float(int N, int F, double lo, double hi, uint64_t seed) {
    const size_t nx = (size_t)N * 2 * F, no = (size_t)N * F;
    double *xd = qt_test_drand(nx, lo, hi, seed), *god = qt_test_drand(no, -1, 1, seed + 1);
    double *dxd = qt_test_drand(nx, -1, 1, seed + 2), *od = qt_test_dalloc(no);
    float *xf = qt_test_to_float(xd, nx), *gof = qt_test_to_float(god, no);
    float *dxf = qt_test_to_float(dxd, nx), *of = qt_test_falloc(no);
    qt_test_poison(of, no);
    QT_EXPECT_OK(qt_cpu_swiglu_fwd(of, xf, N, F));
    QT_EXPECT_OK(qt_cpu_swiglu_fwd_f64(od, xd, N, F));
    double e1 = qt_test_float_vs_double(of, od, no, FV_RTOL);
    QT_EXPECT_OK(qt_cpu_swiglu_bwd(dxf, gof, xf, N, F));
    QT_EXPECT_OK(qt_cpu_swiglu_bwd_f64(dxd, god, xd, N, F));
    double e2 = qt_test_float_vs_double(dxf, dxd, nx, FV_RTOL);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0,
                  "swiglu float/double N %d F %d x in [%g, %g): out %g dx %g", N, F, lo, hi, e1,
                  e2);
    QT_TEST_FREE_ALL(xd, god, dxd, od, xf, gof, dxf, of);
}

START_TEST(test_swiglu_float_vs_double) {
    check_swiglu_float(1, 1, -3, 3, 80);
    check_swiglu_float(31, 33, -6, 6, 81);
    check_swiglu_float(257, 129, -4, 4, 82);     // parallel rows
    check_swiglu_float(9, 17, -200, 200, 83);    // exp's argument capped: finite, no NaN
}
END_TEST

// The error contract (kernels/swiglu.h): N < 0, F < 1, a NULL tensor or a dx that aliases x
// or dout is refused, naming the op, before anything is written.
START_TEST(test_swiglu_bad_args) {
    enum { N = 3, F = 4 };
    float x[N * 2 * F], dout[N * F];
    qt_test_fill_uniform(x, N * 2 * F, -1.0f, 1.0f, 51);
    qt_test_fill_uniform(dout, N * F, -1.0f, 1.0f, 52);
    float *out = qt_test_guarded(sizeof dout), *dx = qt_test_guarded(sizeof x);
    QT_EXPECT_REFUSED(qt_cpu_swiglu_fwd(out, x, N, 0), "swiglu_fwd",
                      qt_test_untouched(out, sizeof dout));
    QT_EXPECT_REFUSED(qt_cpu_swiglu_fwd(out, x, -1, F), "swiglu_fwd",
                      qt_test_untouched(out, sizeof dout));
    QT_EXPECT_REFUSED(qt_cpu_swiglu_fwd(out, NULL, N, F), "swiglu_fwd",
                      qt_test_untouched(out, sizeof dout));
    QT_EXPECT_REFUSED(qt_cpu_swiglu_bwd(dx, NULL, x, N, F), "swiglu_bwd",
                      qt_test_untouched(dx, sizeof x));
    float *xc = qt_test_guarded(sizeof x);
    QT_EXPECT_REFUSED(qt_cpu_swiglu_bwd(xc, dout, xc, N, F), "swiglu_bwd",
                      qt_test_untouched(xc, sizeof x)); // dx aliases x
    double *od = qt_test_guarded(sizeof dout * 2);
    QT_EXPECT_REFUSED(qt_cpu_swiglu_fwd_f64(od, NULL, N, F), "swiglu_fwd_f64",
                      qt_test_untouched(od, sizeof dout * 2));
    QT_EXPECT_OK(qt_cpu_swiglu_fwd(NULL, NULL, 0, F));
    QT_TEST_FREE_ALL(out, dx, xc, od);
}
END_TEST

static Suite *swiglu_suite(void) {
    Suite *s = suite_create("swiglu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_swiglu_fd);
    tcase_add_test(tc, test_swiglu_float_vs_double);
    tcase_add_test(tc, test_swiglu_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(swiglu_suite()); }

// test_rmsnorm.c: the RMSNorm CPU reference (kernels/rmsnorm.h) against finite differences
// and float against double.
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
#include <string.h>

#include "kernels/rmsnorm.h"
#include "expect_error.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6
#define FV_RTOL 1e-5

// ---- RMSNorm --------------------------------------------------------------------------------

typedef struct {
    int N, C;
    double *x, *w;
    const double *wout;
    double *out, *rstd;
} rms_ctx;

static double rms_loss(void *v) {
    rms_ctx *c = v;
    QT_EXPECT_OK(qt_cpu_rmsnorm_fwd_f64(c->out, c->rstd, c->x, c->w, c->N, c->C));
    return qt_test_ddot(c->out, c->wout, (size_t)c->N * c->C);
}

static void check_rmsnorm_fd(int N, int C, uint64_t seed) {
    const size_t n = (size_t)N * C;
    double *wout = qt_test_drand(n, -1, 1, seed);
    rms_ctx c = {N, C, qt_test_drand(n, -2, 2, seed + 1), qt_test_drand(C, 0.5, 1.5, seed + 2),
                 wout, qt_test_dalloc(n), qt_test_dalloc(N)};
    rms_loss(&c);
    // rstd and out as defined: 1 / sqrt(mean(x^2) + eps), out = x rstd w
    for (int r = 0; r < N; r++) {
        double ms = 0;
        for (int j = 0; j < C; j++) ms += c.x[r * C + j] * c.x[r * C + j] / C;
        const double rs = 1.0 / sqrt(ms + (double)QT_RMSNORM_EPS);
        ck_assert_msg(fabs(c.rstd[r] - rs) <= 1e-12 * rs,
                      "rmsnorm_fwd_f64 N %d C %d row %d: rstd %.17g want %.17g", N, C, r,
                      c.rstd[r], rs);
        for (int j = 0; j < C; j++)
            ck_assert_msg(fabs(c.out[r * C + j] - c.x[r * C + j] * rs * c.w[j]) <= 1e-12,
                          "rmsnorm_fwd_f64 N %d C %d (%d, %d): out %g", N, C, r, j,
                          c.out[r * C + j]);
    }
    double *dx0 = qt_test_drand(n, -1, 1, seed + 3), *dw0 = qt_test_drand(C, -1, 1, seed + 4);
    double *dx = qt_test_dcopy(dx0, n), *dw = qt_test_dcopy(dw0, C);
    QT_EXPECT_OK(qt_cpu_rmsnorm_bwd_f64(dx, dw, wout, c.x, c.rstd, c.w, N, C));
    char what[96];
    snprintf(what, sizeof what, "rmsnorm_bwd_f64 dx N %d C %d seed %llu", N, C,
             (unsigned long long)seed);
    qt_test_check_grad(rms_loss, &c, c.x, n, dx, dx0, FD_H, FD_TOL, what);
    snprintf(what, sizeof what, "rmsnorm_bwd_f64 dw N %d C %d seed %llu", N, C,
             (unsigned long long)seed);
    qt_test_check_grad(rms_loss, &c, c.w, C, dw, dw0, FD_H, FD_TOL, what);
    // each gradient alone: the same values, the NULL one untouched
    double *dx2 = qt_test_dcopy(dx0, n), *dw2 = qt_test_dcopy(dw0, C);
    rms_loss(&c);
    QT_EXPECT_OK(qt_cpu_rmsnorm_bwd_f64(dx2, NULL, wout, c.x, c.rstd, c.w, N, C));
    QT_EXPECT_OK(qt_cpu_rmsnorm_bwd_f64(NULL, dw2, wout, c.x, c.rstd, c.w, N, C));
    for (size_t i = 0; i < n; i++) ck_assert_msg(dx2[i] == dx[i], "rmsnorm_bwd dx alone [%zu]", i);
    for (int i = 0; i < C; i++) ck_assert_msg(dw2[i] == dw[i], "rmsnorm_bwd dw alone [%d]", i);
    QT_TEST_FREE_ALL(wout, c.x, c.w, c.out, c.rstd, dx0, dw0, dx, dw, dx2, dw2);
}

START_TEST(test_rmsnorm_fd) {
    check_rmsnorm_fd(4, 9, 20);
    check_rmsnorm_fd(1, 3, 21); // (C = 1 has an eps-sized dx that finite differences can't
                                // resolve to 1e-6: its float path is checked below)
    check_rmsnorm_fd(3, 70, 22); // more than one dw column block
}
END_TEST

static void check_rmsnorm_float(int N, int C, uint64_t seed) {
    const size_t n = (size_t)N * C;
    double *xd = qt_test_drand(n, -3, 5, seed), *wd = qt_test_drand(C, 0.5, 1.5, seed + 1);
    double *god = qt_test_drand(n, -1, 1, seed + 2), *dxd = qt_test_drand(n, -1, 1, seed + 3);
    double *dwd = qt_test_drand(C, -1, 1, seed + 4), *od = qt_test_dalloc(n),
           *rd = qt_test_dalloc(N);
    float *xf = qt_test_to_float(xd, n), *wf = qt_test_to_float(wd, C);
    float *gof = qt_test_to_float(god, n), *dxf = qt_test_to_float(dxd, n);
    float *dwf = qt_test_to_float(dwd, C), *of = qt_test_falloc(n), *rf = qt_test_falloc(N);
    qt_test_poison(of, n);
    qt_test_poison(rf, N);
    QT_EXPECT_OK(qt_cpu_rmsnorm_fwd(of, rf, xf, wf, N, C));
    QT_EXPECT_OK(qt_cpu_rmsnorm_fwd_f64(od, rd, xd, wd, N, C));
    double e1 = qt_test_float_vs_double(of, od, n, FV_RTOL),
           e2 = qt_test_float_vs_double(rf, rd, N, FV_RTOL);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0, "rmsnorm_fwd float/double N %d C %d: out %g rstd %g",
                  N, C, e1, e2);
    QT_EXPECT_OK(qt_cpu_rmsnorm_bwd(dxf, dwf, gof, xf, rf, wf, N, C));
    QT_EXPECT_OK(qt_cpu_rmsnorm_bwd_f64(dxd, dwd, god, xd, rd, wd, N, C));
    e1 = qt_test_float_vs_double(dxf, dxd, n, FV_RTOL);
    e2 = qt_test_float_vs_double(dwf, dwd, C, FV_RTOL);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0, "rmsnorm_bwd float/double N %d C %d: dx %g dw %g", N,
                  C, e1, e2);
    // deterministic: a second run from the same start gives the same bits
    double *dxd2 = qt_test_drand(n, -1, 1, seed + 3), *dwd2 = qt_test_drand(C, -1, 1, seed + 4);
    float *dxf2 = qt_test_to_float(dxd2, n), *dwf2 = qt_test_to_float(dwd2, C);
    QT_EXPECT_OK(qt_cpu_rmsnorm_bwd(dxf2, dwf2, gof, xf, rf, wf, N, C));
    ck_assert_msg(memcmp(dxf2, dxf, n * sizeof(float)) == 0 &&
                      memcmp(dwf2, dwf, C * sizeof(float)) == 0,
                  "rmsnorm_bwd N %d C %d not deterministic", N, C);
    QT_TEST_FREE_ALL(xd, wd, god, dxd, dwd, od, rd, xf, wf, gof, dxf, dwf, of, rf, dxd2, dwd2, dxf2, dwf2);
}

START_TEST(test_rmsnorm_float_vs_double) {
    check_rmsnorm_float(1, 1, 30);
    check_rmsnorm_float(31, 33, 31);
    check_rmsnorm_float(1027, 129, 32); // parallel rows and column blocks
}
END_TEST

// The error contract (kernels/rmsnorm.h): N < 0, C < 1 or a NULL required tensor is refused,
// naming the op, before out, rstd (forward) or dx, dw (backward) is written.
START_TEST(test_rmsnorm_bad_args) {
    enum { N = 3, C = 5 };
    const size_t nb = (size_t)N * C * 4;
    float x[N * C], w[C];
    qt_test_fill_uniform(x, N * C, -1.0f, 1.0f, 36);
    qt_test_fill_uniform(w, C, 0.5f, 1.5f, 37);
    float *out = qt_test_guarded(nb), *rstd = qt_test_guarded(N * 4);
#define UNTOUCHED (qt_test_untouched(out, nb) && qt_test_untouched(rstd, N * 4))
    QT_EXPECT_REFUSED(qt_cpu_rmsnorm_fwd(out, rstd, x, w, N, 0), "rmsnorm_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_rmsnorm_fwd(out, rstd, x, w, -2, C), "rmsnorm_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_rmsnorm_fwd(out, rstd, x, NULL, N, C), "rmsnorm_fwd", UNTOUCHED);
#undef UNTOUCHED
    float *rv = qt_test_falloc(N), *ov = qt_test_falloc((size_t)N * C);
    QT_EXPECT_OK(qt_cpu_rmsnorm_fwd(ov, rv, x, w, N, C));
    float *dx = qt_test_guarded(nb), *dw = qt_test_guarded(C * 4);
#define UNTOUCHED (qt_test_untouched(dx, nb) && qt_test_untouched(dw, C * 4))
    QT_EXPECT_REFUSED(qt_cpu_rmsnorm_bwd(dx, dw, x, x, rv, NULL, N, C), "rmsnorm_bwd",
                      UNTOUCHED); // dx needs w
    QT_EXPECT_REFUSED(qt_cpu_rmsnorm_bwd(dx, dw, x, x, NULL, w, N, C), "rmsnorm_bwd", UNTOUCHED);
#undef UNTOUCHED
    double *od = qt_test_guarded((size_t)N * C * 8);
    QT_EXPECT_REFUSED(qt_cpu_rmsnorm_fwd_f64(od, NULL, NULL, NULL, N, -1), "rmsnorm_fwd_f64",
                      qt_test_untouched(od, (size_t)N * C * 8));
    QT_EXPECT_OK(qt_cpu_rmsnorm_fwd(NULL, NULL, NULL, NULL, 0, C));
    QT_TEST_FREE_ALL(out, rstd, rv, ov, dx, dw, od);
}
END_TEST

static Suite *rmsnorm_suite(void) {
    Suite *s = suite_create("rmsnorm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rmsnorm_fd);
    tcase_add_test(tc, test_rmsnorm_float_vs_double);
    tcase_add_test(tc, test_rmsnorm_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(rmsnorm_suite()); }

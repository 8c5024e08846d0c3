// test_layernorm.c: the LayerNorm CPU reference (kernels/layernorm.h) against finite
// differences and float against double.
//
// Gradient checks run in double against central finite differences (step 1e-6) of a scalar
// loss L = sum wout * output. Error norm, per gradient tensor:
//     err = max_i |analytic_i - fd_i| / max(max_i |fd_i|, 1e-30),  pass when err <= 1e-6
// (NaN fails). Backward outputs start from random values that the test subtracts afterwards,
// so a backward that overwrites instead of adding fails.
// Float against double: the same (float-representable) inputs, float outputs poisoned with
// NaN, odd sizes; per element |float - double| <= rtol (max |double| + |double|), rtol 1e-5.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/layernorm.h"
#include "expect_error.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6

// ---- LayerNorm ------------------------------------------------------------------------------

typedef struct {
    int N, C;
    double *x, *w, *b;
    const double *wout;
    double *out, *mean, *rstd;
} ln_ctx;

static double ln_loss(void *v) {
    ln_ctx *c = v;
    QT_EXPECT_OK(qt_cpu_layernorm_fwd_f64(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C));
    return qt_test_ddot(c->out, c->wout, (size_t)c->N * c->C);
}

START_TEST(test_layernorm_fd) {
    const int N = 4, C = 9;
    size_t n = (size_t)N * C;
    double *wout = qt_test_drand(n, -1, 1, 23);
    ln_ctx c = {N,
                C,
                qt_test_drand(n, -2, 2, 20),
                qt_test_drand(C, 0.5, 1.5, 21),
                qt_test_drand(C, -1, 1, 22),
                wout,
                qt_test_dalloc(n),
                qt_test_dalloc(N),
                qt_test_dalloc(N)};
    ln_loss(&c);
    // mean and rstd as defined: biased variance, eps 1e-5f
    for (int r = 0; r < N; r++) {
        double m = 0, v = 0;
        for (int j = 0; j < C; j++) m += c.x[r * C + j] / C;
        for (int j = 0; j < C; j++) v += (c.x[r * C + j] - m) * (c.x[r * C + j] - m) / C;
        ck_assert_msg(fabs(c.mean[r] - m) <= 1e-14 &&
                          fabs(c.rstd[r] - 1.0 / sqrt(v + (double)QT_LAYERNORM_EPS)) <= 1e-12,
                      "layernorm_fwd_f64 row %d: mean %g rstd %g", r, c.mean[r], c.rstd[r]);
    }
    double *dx0 = qt_test_drand(n, -1, 1, 24), *dw0 = qt_test_drand(C, -1, 1, 25),
           *db0 = qt_test_drand(C, -1, 1, 26);
    double *dx = qt_test_dcopy(dx0, n), *dw = qt_test_dcopy(dw0, C), *db = qt_test_dcopy(db0, C);
    QT_EXPECT_OK(qt_cpu_layernorm_bwd_f64(dx, dw, db, wout, c.x, c.mean, c.rstd, c.w, N, C));
    qt_test_check_grad(ln_loss, &c, c.x, n, dx, dx0, FD_H, FD_TOL, "layernorm_bwd_f64 dx");
    qt_test_check_grad(ln_loss, &c, c.w, C, dw, dw0, FD_H, FD_TOL, "layernorm_bwd_f64 dw");
    qt_test_check_grad(ln_loss, &c, c.b, C, db, db0, FD_H, FD_TOL, "layernorm_bwd_f64 db");
    free(wout);
    free(c.x);
    free(c.w);
    free(c.b);
    free(c.out);
    free(c.mean);
    free(c.rstd);
    free(dx0);
    free(dw0);
    free(db0);
    free(dx);
    free(dw);
    free(db);
}
END_TEST

static void check_layernorm_float(int N, int C, uint64_t seed) {
    size_t n = (size_t)N * C;
    double *xd = qt_test_drand(n, -3, 5, seed), *wd = qt_test_drand(C, 0.5, 1.5, seed + 1);
    double *bd = qt_test_drand(C, -1, 1, seed + 2), *god = qt_test_drand(n, -1, 1, seed + 3);
    double *dxd = qt_test_drand(n, -1, 1, seed + 4), *dwd = qt_test_drand(C, -1, 1, seed + 5);
    double *dbd = qt_test_drand(C, -1, 1, seed + 6), *od = qt_test_dalloc(n),
           *md = qt_test_dalloc(N), *rd = qt_test_dalloc(N);
    float *xf = qt_test_to_float(xd, n), *wf = qt_test_to_float(wd, C),
          *bf = qt_test_to_float(bd, C);
    float *gof = qt_test_to_float(god, n), *dxf = qt_test_to_float(dxd, n),
          *dwf = qt_test_to_float(dwd, C);
    float *dbf = qt_test_to_float(dbd, C), *of = qt_test_falloc(n), *mf = qt_test_falloc(N),
          *rf = qt_test_falloc(N);
    qt_test_poison(of, n);
    qt_test_poison(mf, N);
    qt_test_poison(rf, N);
    QT_EXPECT_OK(qt_cpu_layernorm_fwd(of, mf, rf, xf, wf, bf, N, C));
    QT_EXPECT_OK(qt_cpu_layernorm_fwd_f64(od, md, rd, xd, wd, bd, N, C));
    double e1 = qt_test_float_vs_double(of, od, n, 1e-5),
           e2 = qt_test_float_vs_double(mf, md, N, 1e-5),
           e3 = qt_test_float_vs_double(rf, rd, N, 1e-5);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0 && e3 <= 1.0,
                  "layernorm_fwd float/double N %d C %d: out %g mean %g rstd %g", N, C, e1, e2, e3);
    QT_EXPECT_OK(qt_cpu_layernorm_bwd(dxf, dwf, dbf, gof, xf, mf, rf, wf, N, C));
    QT_EXPECT_OK(qt_cpu_layernorm_bwd_f64(dxd, dwd, dbd, god, xd, md, rd, wd, N, C));
    e1 = qt_test_float_vs_double(dxf, dxd, n, 1e-5);
    e2 = qt_test_float_vs_double(dwf, dwd, C, 1e-5);
    e3 = qt_test_float_vs_double(dbf, dbd, C, 1e-5);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0 && e3 <= 1.0,
                  "layernorm_bwd float/double N %d C %d: dx %g dw %g db %g", N, C, e1, e2, e3);
    free(xd);
    free(wd);
    free(bd);
    free(god);
    free(dxd);
    free(dwd);
    free(dbd);
    free(od);
    free(md);
    free(rd);
    free(xf);
    free(wf);
    free(bf);
    free(gof);
    free(dxf);
    free(dwf);
    free(dbf);
    free(of);
    free(mf);
    free(rf);
}

START_TEST(test_layernorm_float_vs_double) {
    check_layernorm_float(1, 1, 30);
    check_layernorm_float(31, 33, 31);
    check_layernorm_float(1027, 129, 32);
}
END_TEST

// The error contract (kernels/layernorm.h): N < 0, C < 1 or a NULL required tensor is
// refused, naming the op, before out, mean, rstd (forward) or dx, dw, db (backward) is written.
START_TEST(test_layernorm_bad_args) {
    enum { N = 3, C = 5 };
    const size_t nb = (size_t)N * C * 4;
    float x[N * C], w[C], b[C];
    qt_test_fill_uniform(x, N * C, -1.0f, 1.0f, 33);
    qt_test_fill_uniform(w, C, 0.5f, 1.5f, 34);
    qt_test_fill_uniform(b, C, -1.0f, 1.0f, 35);
    float *out = qt_test_guarded(nb), *mean = qt_test_guarded(N * 4),
          *rstd = qt_test_guarded(N * 4);
#define UNTOUCHED                                                                                  \
    (qt_test_untouched(out, nb) && qt_test_untouched(mean, N * 4) && qt_test_untouched(rstd, N * 4))
    QT_EXPECT_REFUSED(qt_cpu_layernorm_fwd(out, mean, rstd, x, w, b, -1, C), "layernorm_fwd",
                      UNTOUCHED);
    ck_assert_msg(strstr(qt_last_error(), "N = -1"), "%s", qt_last_error());
    QT_EXPECT_REFUSED(qt_cpu_layernorm_fwd(out, mean, rstd, x, w, b, N, 0), "layernorm_fwd",
                      UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_layernorm_fwd(out, mean, rstd, x, w, NULL, N, C), "layernorm_fwd",
                      UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_layernorm_fwd(out, NULL, rstd, x, w, b, N, C), "layernorm_fwd",
                      UNTOUCHED);
#undef UNTOUCHED
    float *mv = qt_test_falloc(N), *rv = qt_test_falloc(N), *ov = qt_test_falloc((size_t)N * C);
    QT_EXPECT_OK(qt_cpu_layernorm_fwd(ov, mv, rv, x, w, b, N, C));
    float *dx = qt_test_guarded(nb), *dw = qt_test_guarded(C * 4), *db = qt_test_guarded(C * 4);
#define UNTOUCHED                                                                                  \
    (qt_test_untouched(dx, nb) && qt_test_untouched(dw, C * 4) && qt_test_untouched(db, C * 4))
    QT_EXPECT_REFUSED(qt_cpu_layernorm_bwd(dx, dw, db, x, x, mv, rv, NULL, N, C), "layernorm_bwd",
                      UNTOUCHED); // dx needs w
    QT_EXPECT_REFUSED(qt_cpu_layernorm_bwd(dx, dw, db, x, x, mv, NULL, w, N, C), "layernorm_bwd",
                      UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_layernorm_bwd(dx, dw, db, x, x, mv, rv, w, N, -4), "layernorm_bwd",
                      UNTOUCHED);
#undef UNTOUCHED
    double *od = qt_test_guarded((size_t)N * C * 8);
    QT_EXPECT_REFUSED(qt_cpu_layernorm_fwd_f64(od, NULL, NULL, NULL, NULL, NULL, N, C),
                      "layernorm_fwd_f64", qt_test_untouched(od, (size_t)N * C * 8));
    QT_EXPECT_OK(qt_cpu_layernorm_fwd(NULL, NULL, NULL, NULL, NULL, NULL, 0, C));
    QT_TEST_FREE_ALL(out, mean, rstd, mv, rv, ov, dx, dw, db, od);
}
END_TEST

// The residual ops are the composition they fuse, bit for bit: dropout_fwd, add, layernorm_fwd
// (forward) and layernorm_bwd, dropout's backward of dx (backward), with the same mask; at
// prob 0 the sum is a plain add. Odd shapes so the Philox groups of four straddle rows.
static void check_residual_composition(int N, int C, float prob, uint64_t seed) {
    const size_t n = (size_t)N * C;
    const uint64_t dseed = seed + 1000, stream = seed + 2000;
    float *x = qt_test_falloc(n), *br = qt_test_falloc(n), *w = qt_test_falloc(C);
    float *b = qt_test_falloc(C), *dout = qt_test_falloc(n), *dx0 = qt_test_falloc(n);
    qt_test_fill_uniform(x, n, -2.0f, 2.0f, seed);
    qt_test_fill_uniform(br, n, -1.0f, 3.0f, seed + 1);
    qt_test_fill_uniform(w, C, 0.5f, 1.5f, seed + 2);
    qt_test_fill_uniform(b, C, -0.5f, 0.5f, seed + 3);
    qt_test_fill_uniform(dout, n, -1.0f, 1.0f, seed + 4);
    qt_test_fill_uniform(dx0, n, -1.0f, 1.0f, seed + 5);
    // composed
    float *r1 = qt_test_falloc(n), *o1 = qt_test_falloc(n), *m1 = qt_test_falloc(N);
    float *s1 = qt_test_falloc(N);
    QT_EXPECT_OK(qt_cpu_dropout_fwd(r1, br, n, prob, dseed, stream));
    QT_EXPECT_OK(qt_cpu_add(r1, r1, x, n));
    QT_EXPECT_OK(qt_cpu_layernorm_fwd(o1, m1, s1, r1, w, b, N, C));
    float *dx1 = qt_test_falloc(n), *dbr1 = qt_test_falloc(n), *dw1 = qt_test_falloc(C);
    float *db1 = qt_test_falloc(C);
    memcpy(dx1, dx0, n * sizeof *dx1);
    memset(dw1, 0, C * sizeof *dw1);
    memset(db1, 0, C * sizeof *db1);
    QT_EXPECT_OK(qt_cpu_layernorm_bwd(dx1, dw1, db1, dout, r1, m1, s1, w, N, C));
    QT_EXPECT_OK(qt_cpu_dropout_fwd(dbr1, dx1, n, prob, dseed, stream));
    // fused (resid written over x: the aliasing the header allows)
    float *r2 = qt_test_falloc(n), *o2 = qt_test_falloc(n), *m2 = qt_test_falloc(N);
    float *s2 = qt_test_falloc(N);
    memcpy(r2, x, n * sizeof *r2);
    QT_EXPECT_OK(qt_cpu_layernorm_residual_fwd(r2, o2, m2, s2, r2, br, w, b, N, C, prob, dseed,
                                               stream));
    float *dx2 = qt_test_falloc(n), *dbr2 = qt_test_falloc(n), *dw2 = qt_test_falloc(C);
    float *db2 = qt_test_falloc(C);
    memcpy(dx2, dx0, n * sizeof *dx2);
    memset(dw2, 0, C * sizeof *dw2);
    memset(db2, 0, C * sizeof *db2);
    QT_EXPECT_OK(qt_cpu_layernorm_residual_bwd(dx2, dbr2, dw2, db2, dout, r2, m2, s2, w, N, C,
                                               prob, dseed, stream));
    ck_assert_msg(!memcmp(r1, r2, n * 4) && !memcmp(o1, o2, n * 4) && !memcmp(m1, m2, N * 4) &&
                      !memcmp(s1, s2, N * 4),
                  "layernorm_residual_fwd N=%d C=%d p=%g differs from dropout + add + layernorm",
                  N, C, (double)prob);
    ck_assert_msg(!memcmp(dx1, dx2, n * 4) && !memcmp(dbr1, dbr2, n * 4) &&
                      !memcmp(dw1, dw2, C * 4) && !memcmp(db1, db2, C * 4),
                  "layernorm_residual_bwd N=%d C=%d p=%g differs from layernorm_bwd + dropout", N,
                  C, (double)prob);
    if (prob > 0.0f && prob < 1.0f && n >= 64) { // the mask is drawn: some kept, some dropped
        size_t dropped = 0;
        for (size_t i = 0; i < n; i++) dropped += r2[i] == x[i] && br[i] != 0.0f;
        ck_assert_msg(dropped > 0 && dropped < n, "N=%d C=%d p=%g: %zu of %zu dropped", N, C,
                      (double)prob, dropped, n);
    }
    QT_TEST_FREE_ALL(x, br, w, b, dout, dx0, r1, o1, m1, s1, dx1, dbr1, dw1, db1);
    QT_TEST_FREE_ALL(r2, o2, m2, s2, dx2, dbr2, dw2, db2);
}

START_TEST(test_layernorm_residual_is_composition) {
    const int shapes[][2] = {{1, 1}, {3, 7}, {5, 33}, {17, 130}};
    for (int s = 0; s < 4; s++)
        for (int p = 0; p < 3; p++)
            check_residual_composition(shapes[s][0], shapes[s][1], p == 0 ? 0.0f : p == 1 ? 0.1f
                                                                                          : 0.5f,
                                       40 + 3 * (uint64_t)s + (uint64_t)p);
    check_residual_composition(4, 9, 1.0f, 77); // all dropped
}
END_TEST

// The residual ops' refusals: a bad probability, out or dbranch aliasing an input; nothing
// written.
START_TEST(test_layernorm_residual_bad_args) {
    enum { N = 2, C = 5 };
    const size_t nb = (size_t)N * C * 4;
    float x[N * C], w[C], b[C];
    qt_test_fill_uniform(x, N * C, -1.0f, 1.0f, 36);
    qt_test_fill_uniform(w, C, 0.5f, 1.5f, 37);
    qt_test_fill_uniform(b, C, -1.0f, 1.0f, 38);
    float *resid = qt_test_guarded(nb), *out = qt_test_guarded(nb), *mean = qt_test_guarded(N * 4),
          *rstd = qt_test_guarded(N * 4);
#define UNTOUCHED (qt_test_untouched(resid, nb) && qt_test_untouched(out, nb))
    QT_EXPECT_REFUSED(qt_cpu_layernorm_residual_fwd(resid, out, mean, rstd, x, x, w, b, N, C,
                                                    1.5f, 1, 2),
                      "layernorm_residual_fwd", UNTOUCHED);
    ck_assert_msg(strstr(qt_last_error(), "outside [0, 1]"), "%s", qt_last_error());
    QT_EXPECT_REFUSED(qt_cpu_layernorm_residual_fwd(resid, out, mean, rstd, x, x, w, b, N, C,
                                                    NAN, 1, 2),
                      "layernorm_residual_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_layernorm_residual_fwd(resid, resid, mean, rstd, x, x, w, b, N, C,
                                                    0.1f, 1, 2),
                      "layernorm_residual_fwd", qt_test_untouched(resid, nb));
    QT_EXPECT_REFUSED(qt_cpu_layernorm_residual_fwd(resid, out, mean, rstd, x, x, w, NULL, N, C,
                                                    0.1f, 1, 2),
                      "layernorm_residual_fwd", UNTOUCHED);
#undef UNTOUCHED
    QT_EXPECT_REFUSED(qt_cpu_layernorm_residual_bwd(out, out, NULL, NULL, x, x, mean, rstd, w, N,
                                                    C, 0.1f, 1, 2),
                      "layernorm_residual_bwd", qt_test_untouched(out, nb)); // dbranch is dx
    ck_assert_msg(strstr(qt_last_error(), "dbranch"), "%s", qt_last_error());
    QT_TEST_FREE_ALL(resid, out, mean, rstd);
}
END_TEST

static Suite *layernorm_suite(void) {
    Suite *s = suite_create("layernorm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_layernorm_fd);
    tcase_add_test(tc, test_layernorm_float_vs_double);
    tcase_add_test(tc, test_layernorm_bad_args);
    tcase_add_test(tc, test_layernorm_residual_is_composition);
    tcase_add_test(tc, test_layernorm_residual_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(layernorm_suite()); }

// test_linear.c: the linear family's CPU reference (kernels/linear.h): qt_cpu_linear_{fwd,bwd}
// against finite differences and float against double.
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

#include "kernels/linear.h"
#include "expect_error.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6

// ---- linear ---------------------------------------------------------------------------------

typedef struct {
    int N, IC, OC;
    double *x, *w, *b;
    const double *wout;
    double *out;
} lin_ctx;

static double lin_loss(void *v) {
    lin_ctx *c = v;
    QT_EXPECT_OK(qt_cpu_linear_fwd_f64(c->out, c->x, c->w, c->b, c->N, c->IC, c->OC));
    return qt_test_ddot(c->out, c->wout, (size_t)c->N * c->OC);
}

START_TEST(test_linear_fd) {
    const int N = 5, IC = 7, OC = 6;
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        lin_ctx c = {N, IC, OC, qt_test_drand((size_t)N * IC, -1, 1, 1), NULL, NULL, NULL,
                     qt_test_dalloc((size_t)N * OC)};
        c.w = qt_test_drand((size_t)OC * IC, -1, 1, 2);
        if (with_bias) c.b = qt_test_drand(OC, -1, 1, 3);
        double *wout = qt_test_drand((size_t)N * OC, -1, 1, 4);
        c.wout = wout;
        double *dx0 = qt_test_drand((size_t)N * IC, -1, 1, 5),
               *dw0 = qt_test_drand((size_t)OC * IC, -1, 1, 6);
        double *db0 = qt_test_drand(OC, -1, 1, 7);
        double *dx = qt_test_dcopy(dx0, (size_t)N * IC), *dw = qt_test_dcopy(dw0, (size_t)OC * IC),
               *db = qt_test_dcopy(db0, OC);
        QT_EXPECT_OK(
            qt_cpu_linear_bwd_f64(dx, dw, with_bias ? db : NULL, wout, c.x, c.w, N, IC, OC));
        qt_test_check_grad(lin_loss, &c, c.x, (size_t)N * IC, dx, dx0, FD_H, FD_TOL,
                           "linear_bwd_f64 dx");
        qt_test_check_grad(lin_loss, &c, c.w, (size_t)OC * IC, dw, dw0, FD_H, FD_TOL,
                           "linear_bwd_f64 dw");
        if (with_bias)
            qt_test_check_grad(lin_loss, &c, c.b, OC, db, db0, FD_H, FD_TOL, "linear_bwd_f64 db");
        else
            for (int i = 0; i < OC; i++) ck_assert(db[i] == db0[i]);
        // dx = NULL: only dw, db
        double *dw2 = qt_test_dcopy(dw0, (size_t)OC * IC);
        QT_EXPECT_OK(qt_cpu_linear_bwd_f64(NULL, dw2, NULL, wout, c.x, c.w, N, IC, OC));
        for (int i = 0; i < OC * IC; i++) ck_assert(dw2[i] == dw[i]);
        free(c.x);
        free(c.w);
        free(c.b);
        free(c.out);
        free(wout);
        free(dx0);
        free(dw0);
        free(db0);
        free(dx);
        free(dw);
        free(db);
        free(dw2);
    }
}
END_TEST

static void check_linear_float(int N, int IC, int OC, uint64_t seed) {
    size_t nx = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    double *xd = qt_test_drand(nx, -1, 1, seed), *wd = qt_test_drand(nw, -1, 1, seed + 1);
    double *bd = qt_test_drand(OC, -1, 1, seed + 2), *god = qt_test_drand(no, -1, 1, seed + 3);
    double *dxd = qt_test_drand(nx, -1, 1, seed + 4), *dwd = qt_test_drand(nw, -1, 1, seed + 5);
    double *dbd = qt_test_drand(OC, -1, 1, seed + 6), *od = qt_test_dalloc(no);
    float *xf = qt_test_to_float(xd, nx), *wf = qt_test_to_float(wd, nw),
          *bf = qt_test_to_float(bd, OC);
    float *gof = qt_test_to_float(god, no), *dxf = qt_test_to_float(dxd, nx),
          *dwf = qt_test_to_float(dwd, nw);
    float *dbf = qt_test_to_float(dbd, OC), *of = qt_test_falloc(no);
    qt_test_poison(of, no);
    QT_EXPECT_OK(qt_cpu_linear_fwd(of, xf, wf, bf, N, IC, OC));
    QT_EXPECT_OK(qt_cpu_linear_fwd_f64(od, xd, wd, bd, N, IC, OC));
    double e = qt_test_float_vs_double(of, od, no, 1e-5);
    ck_assert_msg(e <= 1.0, "linear_fwd float/double N %d IC %d OC %d: %g", N, IC, OC, e);
    QT_EXPECT_OK(qt_cpu_linear_bwd(dxf, dwf, dbf, gof, xf, wf, N, IC, OC));
    QT_EXPECT_OK(qt_cpu_linear_bwd_f64(dxd, dwd, dbd, god, xd, wd, N, IC, OC));
    double e1 = qt_test_float_vs_double(dxf, dxd, nx, 1e-5),
           e2 = qt_test_float_vs_double(dwf, dwd, nw, 1e-5);
    double e3 = qt_test_float_vs_double(dbf, dbd, OC, 1e-5);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0 && e3 <= 1.0,
                  "linear_bwd float/double N %d IC %d OC %d: dx %g dw %g db %g", N, IC, OC, e1, e2,
                  e3);
    free(xd);
    free(wd);
    free(bd);
    free(god);
    free(dxd);
    free(dwd);
    free(dbd);
    free(od);
    free(xf);
    free(wf);
    free(bf);
    free(gof);
    free(dxf);
    free(dwf);
    free(dbf);
    free(of);
}

START_TEST(test_linear_float_vs_double) {
    check_linear_float(1, 1, 1, 10);
    check_linear_float(31, 33, 65, 11);
    check_linear_float(257, 31, 129, 12); // parallel bias and column-sum paths
}
END_TEST

// The error contract (kernels/linear.h): N < 0, IC < 1, OC < 0 or a NULL required tensor is
// refused, naming the op, before out (forward) or dx, dw, db (backward) is written; N = 0 or
// OC = 0 is an empty layer that needs no tensors.
START_TEST(test_linear_bad_args) {
    enum { N = 3, IC = 4, OC = 5 };
    float x[N * IC], w[OC * IC], b[OC], dout[N * OC];
    qt_test_fill_uniform(x, N * IC, -1.0f, 1.0f, 41);
    qt_test_fill_uniform(w, OC * IC, -1.0f, 1.0f, 42);
    qt_test_fill_uniform(b, OC, -1.0f, 1.0f, 43);
    qt_test_fill_uniform(dout, N * OC, -1.0f, 1.0f, 44);
    float *out = qt_test_guarded(sizeof dout);
    QT_EXPECT_REFUSED(qt_cpu_linear_fwd(out, x, w, b, -1, IC, OC), "linear_fwd",
                      qt_test_untouched(out, sizeof dout));
    ck_assert_msg(strstr(qt_last_error(), "N = -1"), "%s", qt_last_error());
    QT_EXPECT_REFUSED(qt_cpu_linear_fwd(out, x, w, b, N, 0, OC), "linear_fwd",
                      qt_test_untouched(out, sizeof dout));
    QT_EXPECT_REFUSED(qt_cpu_linear_fwd(out, x, w, b, N, IC, -5), "linear_fwd",
                      qt_test_untouched(out, sizeof dout));
    QT_EXPECT_REFUSED(qt_cpu_linear_fwd(out, x, NULL, b, N, IC, OC), "linear_fwd",
                      qt_test_untouched(out, sizeof dout));
    float *dx = qt_test_guarded(sizeof x), *dw = qt_test_guarded(sizeof w),
          *db = qt_test_guarded(sizeof b);
#define UNTOUCHED                                                                                  \
    (qt_test_untouched(dx, sizeof x) && qt_test_untouched(dw, sizeof w) &&                         \
     qt_test_untouched(db, sizeof b))
    QT_EXPECT_REFUSED(qt_cpu_linear_bwd(dx, dw, db, dout, NULL, w, N, IC, OC), "linear_bwd",
                      UNTOUCHED); // dw needs x
    QT_EXPECT_REFUSED(qt_cpu_linear_bwd(dx, dw, db, dout, x, NULL, N, IC, OC), "linear_bwd",
                      UNTOUCHED); // dx needs w
    QT_EXPECT_REFUSED(qt_cpu_linear_bwd(dx, dw, db, NULL, x, w, N, IC, OC), "linear_bwd",
                      UNTOUCHED);
#undef UNTOUCHED
    double *od = qt_test_guarded(N * OC * 8);
    QT_EXPECT_REFUSED(qt_cpu_linear_fwd_f64(od, NULL, NULL, NULL, N, IC, OC), "linear_fwd_f64",
                      qt_test_untouched(od, N * OC * 8));
    QT_EXPECT_OK(qt_cpu_linear_fwd(NULL, NULL, NULL, NULL, 0, IC, OC));
    QT_EXPECT_OK(qt_cpu_linear_bwd(NULL, NULL, NULL, NULL, NULL, NULL, N, IC, 0));
    QT_TEST_FREE_ALL(out, dx, dw, db, od);
}
END_TEST

// qt_cpu_gemm refuses what the CUDA twin refuses: sizes below 1, a batch that is not a
// multiple of `inner`, leading dimensions below the row lengths, NULL matrices.
START_TEST(test_gemm_bad_args) {
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1};
    float *C = qt_test_guarded(4 * sizeof(float));
    const qt_gemm_desc ok = {.M = 2,
                             .N = 2,
                             .K = 3,
                             .alpha = 1,
                             .beta = 0,
                             .lda = 3,
                             .ldb = 2,
                             .ldc = 2,
                             .batch = 1,
                             .inner = 1};
    qt_gemm_desc d = ok;
    d.K = 0;
    QT_EXPECT_REFUSED(qt_cpu_gemm(&d, A, B, C), "gemm", qt_test_untouched(C, 16));
    d = ok;
    d.lda = 2;
    QT_EXPECT_REFUSED(qt_cpu_gemm(&d, A, B, C), "gemm", qt_test_untouched(C, 16));
    d = ok;
    d.batch = 3;
    d.inner = 2;
    QT_EXPECT_REFUSED(qt_cpu_gemm(&d, A, B, C), "gemm", qt_test_untouched(C, 16));
    QT_EXPECT_REFUSED(qt_cpu_gemm(&ok, A, NULL, C), "gemm", qt_test_untouched(C, 16));
    QT_EXPECT_REFUSED(qt_cpu_gemm(NULL, A, B, C), "gemm", qt_test_untouched(C, 16));
    QT_EXPECT_OK(qt_cpu_gemm(&ok, A, B, C)); // (2, 3) (3, 2)
    const float want[4] = {1 + 3, 2 + 3, 4 + 6, 5 + 6};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(C[i] == want[i], "gemm C[%d] = %g", i, C[i]);
    free(C);
}
END_TEST

static Suite *linear_suite(void) {
    Suite *s = suite_create("linear");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_linear_fd);
    tcase_add_test(tc, test_linear_float_vs_double);
    tcase_add_test(tc, test_linear_bad_args);
    tcase_add_test(tc, test_gemm_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(linear_suite()); }

// test_activation.c: GELU and ReLU, the activation family's CPU reference
// (kernels/activation.h), against finite differences and float against double.
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

#include "kernels/activation.h"
#include "expect_error.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6

// ---- GELU, ReLU -----------------------------------------------------------------------------

typedef struct {
    int gelu;
    size_t n;
    double *x;
    const double *wout;
    double *out;
} act_ctx;

static double act_loss(void *v) {
    act_ctx *c = v;
    if (c->gelu)
        QT_EXPECT_OK(qt_cpu_gelu_fwd_f64(c->out, c->x, c->n));
    else
        QT_EXPECT_OK(qt_cpu_relu_fwd_f64(c->out, c->x, c->n));
    return qt_test_ddot(c->out, c->wout, c->n);
}

static double gelu_ref(double x) {
    const double k = 0.7978845608028654; // sqrt(2 / pi)
    return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

START_TEST(test_activation_fd) {
    const size_t n = 41;
    for (int gelu = 0; gelu < 2; gelu++) {
        double *wout = qt_test_drand(n, -1, 1, 41);
        act_ctx c = {gelu, n, qt_test_drand(n, -6, 6, 40), wout, qt_test_dalloc(n)};
        c.x[0] = -30.0; // far tails
        c.x[1] = 30.0;
        act_loss(&c);
        if (gelu)
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(fabs(c.out[i] - gelu_ref(c.x[i])) <= 1e-14 * (1 + fabs(c.x[i])),
                              "gelu_fwd_f64(%g) = %.17g, tanh form %.17g", c.x[i], c.out[i],
                              gelu_ref(c.x[i]));
        double *d0 = qt_test_drand(n, -1, 1, 42), *d = qt_test_dcopy(d0, n);
        if (gelu)
            QT_EXPECT_OK(qt_cpu_gelu_bwd_f64(d, wout, c.x, n));
        else
            QT_EXPECT_OK(qt_cpu_relu_bwd_f64(d, wout, c.x, n));
        qt_test_check_grad(act_loss, &c, c.x, n, d, d0, FD_H, FD_TOL,
                           gelu ? "gelu_bwd_f64" : "relu_bwd_f64");
        // dx aliasing dout is the in-place form: dx = dout f'(x)
        double *inpl = qt_test_dcopy(wout, n), *z = qt_test_dalloc(n);
        for (size_t i = 0; i < n; i++) z[i] = 0.0;
        if (gelu) {
            QT_EXPECT_OK(qt_cpu_gelu_bwd_f64(inpl, inpl, c.x, n));
            QT_EXPECT_OK(qt_cpu_gelu_bwd_f64(z, wout, c.x, n));
        } else {
            QT_EXPECT_OK(qt_cpu_relu_bwd_f64(inpl, inpl, c.x, n));
            QT_EXPECT_OK(qt_cpu_relu_bwd_f64(z, wout, c.x, n));
        }
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(inpl[i] == z[i], "%s_bwd in place differs at %zu", gelu ? "gelu" : "relu",
                          i);
        free(wout);
        free(c.x);
        free(c.out);
        free(d0);
        free(d);
        free(inpl);
        free(z);
    }
}
END_TEST

START_TEST(test_activation_float_vs_double) {
    const size_t sizes[3] = {1, 33, 100003};
    for (int gelu = 0; gelu < 2; gelu++) {
        for (int s = 0; s < 3; s++) {
            size_t n = sizes[s];
            double *xd = qt_test_drand(n, -8, 8, 50 + s), *gd = qt_test_drand(n, -1, 1, 60 + s);
            double *dd = qt_test_drand(n, -1, 1, 70 + s), *od = qt_test_dalloc(n);
            float *xf = qt_test_to_float(xd, n), *gf = qt_test_to_float(gd, n),
                  *df = qt_test_to_float(dd, n);
            float *of = qt_test_falloc(n);
            qt_test_poison(of, n);
            if (gelu) {
                QT_EXPECT_OK(qt_cpu_gelu_fwd(of, xf, n));
                QT_EXPECT_OK(qt_cpu_gelu_fwd_f64(od, xd, n));
                QT_EXPECT_OK(qt_cpu_gelu_bwd(df, gf, xf, n));
                QT_EXPECT_OK(qt_cpu_gelu_bwd_f64(dd, gd, xd, n));
            } else {
                QT_EXPECT_OK(qt_cpu_relu_fwd(of, xf, n));
                QT_EXPECT_OK(qt_cpu_relu_fwd_f64(od, xd, n));
                QT_EXPECT_OK(qt_cpu_relu_bwd(df, gf, xf, n));
                QT_EXPECT_OK(qt_cpu_relu_bwd_f64(dd, gd, xd, n));
            }
            // element-wise ops: relative to each element (1e-5) plus a tiny absolute floor
            double e1 = 0.0, e2 = 0.0;
            for (size_t i = 0; i < n; i++) {
                double a = fabs(of[i] - od[i]) / (1e-5 * fabs(od[i]) + 1e-12);
                double b = fabs(df[i] - dd[i]) / (1e-5 * fabs(dd[i]) + 1e-7);
                if (!(a <= e1)) e1 = isnan(a) ? INFINITY : a;
                if (!(b <= e2)) e2 = isnan(b) ? INFINITY : b;
            }
            ck_assert_msg(e1 <= 1.0 && e2 <= 1.0, "%s float/double n %zu: fwd %g bwd %g",
                          gelu ? "gelu" : "relu", n, e1, e2);
            // out may alias x
            float *inpl = qt_test_falloc(n);
            memcpy(inpl, xf, n * sizeof(float));
            if (gelu)
                QT_EXPECT_OK(qt_cpu_gelu_fwd(inpl, inpl, n));
            else
                QT_EXPECT_OK(qt_cpu_relu_fwd(inpl, inpl, n));
            ck_assert(memcmp(inpl, of, n * sizeof(float)) == 0);
            free(xd);
            free(gd);
            free(dd);
            free(od);
            free(xf);
            free(gf);
            free(df);
            free(of);
            free(inpl);
        }
    }
    // the float GELU stays finite and exact-limit in the far tails
    float x[4] = {-1e6f, -100.0f, 100.0f, 1e6f}, o[4], d[4] = {0, 0, 0, 0}, one[4] = {1, 1, 1, 1};
    QT_EXPECT_OK(qt_cpu_gelu_fwd(o, x, 4));
    QT_EXPECT_OK(qt_cpu_gelu_bwd(d, one, x, 4));
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(isfinite(o[i]) && isfinite(d[i]), "gelu(%g) = %g, gelu' = %g", x[i], o[i],
                      d[i]);
        ck_assert_msg(fabsf(o[i] - (x[i] > 0 ? x[i] : 0.0f)) <= 1e-6f * fabsf(x[i]) &&
                          fabsf(d[i] - (x[i] > 0 ? 1.0f : 0.0f)) <= 1e-6f,
                      "gelu tail at %g: %g, %g", x[i], o[i], d[i]);
    }
}
END_TEST

// The error contract (kernels/activation.h): with n > 0 a NULL tensor is refused, naming the
// op, before anything is written; n = 0 needs no tensors.
START_TEST(test_activation_bad_args) {
    enum { n = 5 };
    const size_t nb = n * sizeof(float);
    const float x[n] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f};
    float *out = qt_test_guarded(nb), *dx = qt_test_guarded(nb);
    QT_EXPECT_REFUSED(qt_cpu_gelu_fwd(out, NULL, n), "gelu_fwd", qt_test_untouched(out, nb));
    QT_EXPECT_REFUSED(qt_cpu_gelu_fwd(NULL, x, n), "gelu_fwd", 1);
    QT_EXPECT_REFUSED(qt_cpu_gelu_bwd(dx, x, NULL, n), "gelu_bwd", qt_test_untouched(dx, nb));
    QT_EXPECT_REFUSED(qt_cpu_gelu_bwd(dx, NULL, x, n), "gelu_bwd", qt_test_untouched(dx, nb));
    QT_EXPECT_REFUSED(qt_cpu_relu_fwd(out, NULL, n), "relu_fwd", qt_test_untouched(out, nb));
    QT_EXPECT_REFUSED(qt_cpu_relu_bwd(dx, x, NULL, n), "relu_bwd", qt_test_untouched(dx, nb));
    const double xd[n] = {-1.0, -0.5, 0.0, 0.5, 1.0};
    double *outd = qt_test_guarded(n * sizeof(double));
    QT_EXPECT_REFUSED(qt_cpu_gelu_fwd_f64(outd, NULL, n), "gelu_fwd_f64",
                      qt_test_untouched(outd, n * sizeof(double)));
    QT_EXPECT_REFUSED(qt_cpu_relu_bwd_f64(outd, xd, NULL, n), "relu_bwd_f64",
                      qt_test_untouched(outd, n * sizeof(double)));
    QT_EXPECT_OK(qt_cpu_gelu_fwd(NULL, NULL, 0));
    QT_EXPECT_OK(qt_cpu_relu_bwd(NULL, NULL, NULL, 0));
    QT_TEST_FREE_ALL(out, dx, outd);
}
END_TEST

static Suite *activation_suite(void) {
    Suite *s = suite_create("activation");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_activation_fd);
    tcase_add_test(tc, test_activation_float_vs_double);
    tcase_add_test(tc, test_activation_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(activation_suite()); }

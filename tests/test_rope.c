// test_rope.c: the RoPE CPU reference (kernels/rope.h) against finite differences and float
// against double.
//
// Gradient checks run in double against central finite differences (step 1e-6) of a scalar
// loss L = sum wout * output. Error norm, per gradient tensor:
//     err = max_i |analytic_i - fd_i| / max(max_i |fd_i|, 1e-30),  pass when err <= 1e-6
// (NaN fails). Accumulating backwards start from random gradients that the test subtracts
// afterwards, so a backward that overwrites instead of adding fails.
// Float against double: the same (float-representable) inputs, float outputs poisoned with
// NaN, odd sizes; per element |float - double| <= rtol (max |double| + |double|), rtol 1e-5.
// Properties: t = 0 is the identity and v is untouched (bit for bit), the backward undoes the
// forward (float 1e-6, double 1e-13 of the largest element), and the rotation equals the
// textbook formula with pow() angles (1e-12 in double).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rope.h"
#include "expect_error.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6
#define FV_RTOL 1e-5

// ---- RoPE -----------------------------------------------------------------------------------

typedef struct {
    int B, T, C, H;
    float theta;
    double *x;
    const double *wout;
    double *y;
} rope_ctx;

static double rope_loss(void *v) {
    rope_ctx *c = v;
    const size_t n = (size_t)c->B * c->T * 3 * c->C;
    memcpy(c->y, c->x, n * sizeof(double));
    QT_EXPECT_OK(qt_cpu_rope_fwd_f64(c->y, c->B, c->T, c->C, c->H, c->theta));
    return qt_test_ddot(c->y, c->wout, n);
}

static void check_rope_fd(int B, int T, int C, int H, float theta, uint64_t seed) {
    const size_t n = (size_t)B * T * 3 * C;
    double *wout = qt_test_drand(n, -1, 1, seed);
    rope_ctx c = {B, T, C, H, theta, qt_test_drand(n, -2, 2, seed + 1), wout, qt_test_dalloc(n)};
    double *g = qt_test_dcopy(wout, n);
    QT_EXPECT_OK(qt_cpu_rope_bwd_f64(g, B, T, C, H, theta)); // in place: dL/dy -> dL/dx
    char what[96];
    snprintf(what, sizeof what, "rope_bwd_f64 B %d T %d C %d H %d theta %g", B, T, C, H,
             (double)theta);
    qt_test_check_grad(rope_loss, &c, c.x, n, g, NULL, FD_H, FD_TOL, what);
    QT_TEST_FREE_ALL(wout, c.x, c.y, g);
}

START_TEST(test_rope_fd) {
    check_rope_fd(2, 5, 6, 1, 10000.0f, 40); // D = 6: three pairs
    check_rope_fd(1, 7, 12, 3, 100.0f, 41);  // D = 4
    check_rope_fd(3, 3, 2, 1, 10000.0f, 42); // D = 2: a single pair
}
END_TEST

// The textbook rotation, independently: angle t * pow(theta, -2i / D).
static void rope_direct(double *qkv, int B, int T, int C, int H, double theta) {
    const int D = C / H, half = D / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int part = 0; part < 2; part++)
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < half; i++) {
                        double *p = qkv + ((size_t)b * T + t) * 3 * C + (size_t)part * C +
                                    (size_t)h * D + i;
                        const double a = t * pow(theta, -2.0 * i / D);
                        const double x1 = p[0], x2 = p[half];
                        p[0] = x1 * cos(a) - x2 * sin(a);
                        p[half] = x1 * sin(a) + x2 * cos(a);
                    }
}

static void check_rope_props(int B, int T, int C, int H, float theta, uint64_t seed) {
    const size_t n = (size_t)B * T * 3 * C;
    double *xd = qt_test_drand(n, -2, 2, seed);
    float *xf = qt_test_to_float(xd, n);
    double *yd = qt_test_dcopy(xd, n), *want = qt_test_dcopy(xd, n);
    float *yf = qt_test_falloc(n);
    memcpy(yf, xf, n * sizeof(float));
    QT_EXPECT_OK(qt_cpu_rope_fwd_f64(yd, B, T, C, H, theta));
    QT_EXPECT_OK(qt_cpu_rope_fwd(yf, B, T, C, H, theta));
    rope_direct(want, B, T, C, H, theta);
    double ed = qt_test_max_err_f64(yd, want, n, 1e-12, 0.0);
    ck_assert_msg(ed <= 1.0, "rope_fwd_f64 vs pow() formula B %d T %d C %d H %d: err %g", B, T,
                  C, H, ed);
    double ef = qt_test_float_vs_double(yf, yd, n, FV_RTOL);
    ck_assert_msg(ef <= 1.0, "rope_fwd float/double B %d T %d C %d H %d: %g", B, T, C, H, ef);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const size_t row = ((size_t)b * T + t) * 3 * C;
            // v third: untouched, bit for bit
            ck_assert_msg(memcmp(yf + row + 2 * (size_t)C, xf + row + 2 * (size_t)C,
                                 C * sizeof(float)) == 0 &&
                              memcmp(yd + row + 2 * (size_t)C, xd + row + 2 * (size_t)C,
                                     C * sizeof(double)) == 0,
                          "rope_fwd touched v at (b %d, t %d), C %d H %d", b, t, C, H);
            // t = 0: the identity (cos 0 = 1, sin 0 = 0 exactly)
            if (t == 0)
                ck_assert_msg(memcmp(yf + row, xf + row, 3 * C * sizeof(float)) == 0 &&
                                  memcmp(yd + row, xd + row, 3 * C * sizeof(double)) == 0,
                              "rope_fwd is not the identity at t = 0 (b %d), C %d H %d", b, C, H);
        }
    // the backward undoes the forward
    QT_EXPECT_OK(qt_cpu_rope_bwd_f64(yd, B, T, C, H, theta));
    QT_EXPECT_OK(qt_cpu_rope_bwd(yf, B, T, C, H, theta));
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(xd[i]));
    double erd = qt_test_max_err_f64(yd, xd, n, 1e-13 * mx, 0.0);
    double erf = qt_test_max_err(yf, xf, n, 1e-6 * mx, 0.0);
    ck_assert_msg(erd <= 1.0 && erf <= 1.0,
                  "rope_bwd(rope_fwd(x)) != x B %d T %d C %d H %d: double %g float %g", B, T, C,
                  H, erd, erf);
    QT_TEST_FREE_ALL(xd, xf, yd, want, yf);
}

START_TEST(test_rope_properties) {
    check_rope_props(1, 1, 2, 1, 10000.0f, 50);
    check_rope_props(3, 7, 6, 3, 10000.0f, 51);
    check_rope_props(2, 33, 30, 5, 500000.0f, 52); // D = 6, LLaMA-3's theta
    check_rope_props(2, 5, 260, 2, 10000.0f, 53);  // D = 130: more pairs than the cos/sin table
    check_rope_props(4, 129, 64, 2, 10000.0f, 54); // parallel over t
}
END_TEST

// Float and double backward on the same gradient (the forward is covered above).
START_TEST(test_rope_bwd_float_vs_double) {
    const int B = 3, T = 65, C = 40, H = 4;
    const size_t n = (size_t)B * T * 3 * C;
    double *gd = qt_test_drand(n, -1, 1, 60);
    float *gf = qt_test_to_float(gd, n);
    QT_EXPECT_OK(qt_cpu_rope_bwd_f64(gd, B, T, C, H, 10000.0f));
    QT_EXPECT_OK(qt_cpu_rope_bwd(gf, B, T, C, H, 10000.0f));
    double e = qt_test_float_vs_double(gf, gd, n, FV_RTOL);
    ck_assert_msg(e <= 1.0, "rope_bwd float/double B %d T %d C %d H %d: %g", B, T, C, H, e);
    QT_TEST_FREE_ALL(gd, gf);
}
END_TEST

// The error contract (kernels/rope.h): C not a multiple of H, an odd head dim, theta not
// finite and > 0, a negative B or T, or a NULL tensor is refused, naming the op, before the
// tensor is rotated.
START_TEST(test_rope_bad_args) {
    enum { B = 2, T = 3, C = 8, H = 2 };
    const size_t nb = (size_t)B * T * 3 * C * sizeof(float);
    float *qkv = qt_test_guarded(nb);
    QT_EXPECT_REFUSED(qt_cpu_rope_fwd(qkv, B, T, C, 3, 10000.0f), "rope_fwd",
                      qt_test_untouched(qkv, nb)); // C % H != 0
    QT_EXPECT_REFUSED(qt_cpu_rope_fwd(qkv, B, T, C, 8, 10000.0f), "rope_fwd",
                      qt_test_untouched(qkv, nb)); // D = 1 is odd
    ck_assert_msg(strstr(qt_last_error(), "D = C / H = 1 is odd"), "%s", qt_last_error());
    QT_EXPECT_REFUSED(qt_cpu_rope_fwd(qkv, B, T, C, H, 0.0f), "rope_fwd",
                      qt_test_untouched(qkv, nb));
    QT_EXPECT_REFUSED(qt_cpu_rope_bwd(qkv, B, T, C, H, -1.0f), "rope_bwd",
                      qt_test_untouched(qkv, nb));
    QT_EXPECT_REFUSED(qt_cpu_rope_bwd(qkv, B, T, C, H, INFINITY), "rope_bwd",
                      qt_test_untouched(qkv, nb));
    QT_EXPECT_REFUSED(qt_cpu_rope_bwd(qkv, B, -1, C, H, 10000.0f), "rope_bwd",
                      qt_test_untouched(qkv, nb));
    QT_EXPECT_REFUSED(qt_cpu_rope_fwd(NULL, B, T, C, H, 10000.0f), "rope_fwd", 1);
    double *qd = qt_test_guarded(nb * 2);
    QT_EXPECT_REFUSED(qt_cpu_rope_fwd_f64(qd, B, T, C, H, NAN), "rope_fwd_f64",
                      qt_test_untouched(qd, nb * 2));
    QT_EXPECT_OK(qt_cpu_rope_fwd(NULL, 0, T, C, H, 10000.0f));
    QT_TEST_FREE_ALL(qkv, qd);
}
END_TEST

static Suite *rope_suite(void) {
    Suite *s = suite_create("rope");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rope_fd);
    tcase_add_test(tc, test_rope_properties);
    tcase_add_test(tc, test_rope_bwd_float_vs_double);
    tcase_add_test(tc, test_rope_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(rope_suite()); }

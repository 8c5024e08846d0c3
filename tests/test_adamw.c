// test_adamw.c: the AdamW CPU reference (kernels/adamw.h) against a direct double loop, and
// vsqrtf (kernels/cpu/common/vmath.h), the sqrt it uses.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/common/vmath.h"
#include "kernels/adamw.h"
#include "expect_error.h"
#include "testutil.h"

// ---- AdamW, sumsq -----------------------------------------------------------------------------

START_TEST(test_adamw) {
    const size_t n = 37;
    float p[37], g[37], m[37], v[37];
    qt_test_fill_uniform(p, n, -1, 1, 130);
    qt_test_fill_uniform(g, n, -2, 2, 131);
    qt_test_fill_uniform(m, n, -0.1f, 0.1f, 132);
    qt_test_fill_uniform(v, n, 0.0f, 0.01f, 133);
    qt_adamw_params prm = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                           .weight_decay = 0.1f, .step = 3, .grad_scale = 0.5f};
    double pw[37], mw[37], vw[37], mscale[37], vscale[37];
    for (size_t i = 0; i < n; i++) { // the hand computation, in double
        double b1 = prm.beta1, b2 = prm.beta2, gi = (double)g[i] * prm.grad_scale;
        mw[i] = b1 * m[i] + (1 - b1) * gi;
        vw[i] = b2 * v[i] + (1 - b2) * gi * gi;
        mscale[i] = fabs(b1 * m[i]) + fabs((1 - b1) * gi); // float rounding scales with these
        vscale[i] = fabs(b2 * v[i]) + fabs((1 - b2) * gi * gi);
        double mh = mw[i] / (1 - pow(b1, 3)), vh = vw[i] / (1 - pow(b2, 3));
        pw[i] = p[i] - (double)prm.lr * (mh / (sqrt(vh) + prm.eps) + prm.weight_decay * p[i]);
    }
    QT_EXPECT_OK(qt_cpu_adamw_step(p, g, m, v, n, &prm));
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(fabs(m[i] - mw[i]) <= 1e-6 * mscale[i] &&
                          fabs(v[i] - vw[i]) <= 1e-6 * vscale[i],
                      "adamw moments at %zu: m %g (%g) v %g (%g)", i, m[i], mw[i], v[i], vw[i]);
        ck_assert_msg(fabs(p[i] - pw[i]) <= 1e-7 + 1e-6 * fabs(pw[i]),
                      "adamw param at %zu: %.9g, want %.9g", i, p[i], pw[i]);
    }
    // step 1 from zero moments moves each parameter by about lr sign(g) (plus decay)
    float p1[4] = {1, 1, 1, 1}, g1[4] = {0.3f, -2.0f, 5.0f, -1e-3f}, m1[4] = {0}, v1[4] = {0};
    qt_adamw_params one = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-12f,
                           .weight_decay = 0.0f, .step = 1, .grad_scale = 1.0f};
    QT_EXPECT_OK(qt_cpu_adamw_step(p1, g1, m1, v1, 4, &one));
    for (int i = 0; i < 4; i++)
        ck_assert_msg(fabsf(p1[i] - (1.0f - 0.01f * (g1[i] > 0 ? 1.0f : -1.0f))) <= 1e-6f,
                      "adamw step 1 at %d: %g", i, p1[i]);
    // a large array (parallel path) equals the same update done in small pieces
    const size_t big = 100003;
    float *pa = qt_test_falloc(big), *ga = qt_test_falloc(big), *ma = qt_test_falloc(big),
          *va = qt_test_falloc(big);
    float *pb = qt_test_falloc(big), *mb = qt_test_falloc(big), *vb = qt_test_falloc(big);
    qt_test_fill_uniform(pa, big, -1, 1, 134);
    qt_test_fill_uniform(ga, big, -1, 1, 135);
    qt_test_fill_uniform(ma, big, -0.1f, 0.1f, 136);
    qt_test_fill_uniform(va, big, 0, 0.01f, 137);
    memcpy(pb, pa, big * sizeof(float));
    memcpy(mb, ma, big * sizeof(float));
    memcpy(vb, va, big * sizeof(float));
    QT_EXPECT_OK(qt_cpu_adamw_step(pa, ga, ma, va, big, &prm));
    for (size_t i = 0; i < big; i += 1000) {
        size_t len = big - i < 1000 ? big - i : 1000;
        QT_EXPECT_OK(qt_cpu_adamw_step(pb + i, ga + i, mb + i, vb + i, len, &prm));
    }
    ck_assert(memcmp(pa, pb, big * sizeof(float)) == 0);
    ck_assert(memcmp(ma, mb, big * sizeof(float)) == 0);
    ck_assert(memcmp(va, vb, big * sizeof(float)) == 0);
    free(pa);
    free(ga);
    free(ma);
    free(va);
    free(pb);
    free(mb);
    free(vb);
}
END_TEST

// vsqrtf, AdamW's vectorizable sqrt: within 1 ulp of the correctly rounded sqrt over the
// normal floats (sampled), sqrt(0) = 0, exact squares exact enough to round back.
START_TEST(test_vsqrtf) {
    double worst = 0.0;
    float at = 0.0f;
    for (uint32_t b = 0x00800000u; b < 0x7f800000u; b += 997) {
        float v;
        memcpy(&v, &b, sizeof v);
        double want = sqrt((double)v);
        float fw = (float)want;
        double ulp = (double)nextafterf(fw, INFINITY) - (double)fw;
        double e = fabs((double)vsqrtf(v) - want) / ulp;
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            at = v;
        }
    }
    ck_assert_msg(worst <= 1.0, "vsqrtf: %g ulp at %g", worst, at);
    ck_assert(vsqrtf(0.0f) == 0.0f);
    for (int k = 1; k < 1000; k++)
        ck_assert_msg(fabsf(vsqrtf((float)(k * k)) - (float)k) <= 1e-6f * k, "vsqrtf(%d^2)", k);
}
END_TEST

// The error contract (kernels/adamw.h): no params, a step below 1 (steps are 1-based: the
// bias corrections divide by 1 - beta^step) or a NULL tensor with n > 0 is refused, naming the
// op, before param, m or v is written.
START_TEST(test_adamw_bad_args) {
    enum { n = 4 };
    const size_t nb = n * sizeof(float);
    const float grad[n] = {0.1f, -0.2f, 0.3f, -0.4f};
    float *param = qt_test_guarded(nb), *m = qt_test_guarded(nb), *v = qt_test_guarded(nb);
    qt_adamw_params prm = {.lr = 1e-3f,
                           .beta1 = 0.9f,
                           .beta2 = 0.95f,
                           .eps = 1e-8f,
                           .weight_decay = 0.1f,
                           .step = 0,
                           .grad_scale = 1.0f};
#define UNTOUCHED                                                                                  \
    (qt_test_untouched(param, nb) && qt_test_untouched(m, nb) && qt_test_untouched(v, nb))
    QT_EXPECT_REFUSED(qt_cpu_adamw_step(param, grad, m, v, n, &prm), "adamw_step", UNTOUCHED);
    ck_assert_msg(strstr(qt_last_error(), "step = 0"), "%s", qt_last_error());
    prm.step = 1;
    QT_EXPECT_REFUSED(qt_cpu_adamw_step(param, grad, m, v, n, NULL), "adamw_step", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_adamw_step(param, NULL, m, v, n, &prm), "adamw_step", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_adamw_step(param, grad, m, NULL, n, &prm), "adamw_step", UNTOUCHED);
#undef UNTOUCHED
    QT_EXPECT_OK(qt_cpu_adamw_step(NULL, NULL, NULL, NULL, 0, &prm));
    QT_TEST_FREE_ALL(param, m, v);
}
END_TEST

static Suite *adamw_suite(void) {
    Suite *s = suite_create("adamw");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_adamw);
    tcase_add_test(tc, test_vsqrtf);
    tcase_add_test(tc, test_adamw_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(adamw_suite()); }

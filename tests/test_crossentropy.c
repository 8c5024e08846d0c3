// test_crossentropy.c: the cross-entropy CPU reference (kernels/crossentropy.h) against
// finite differences and float against double.
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

#include "kernels/crossentropy.h"
#include "expect_error.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6

// ---- cross-entropy --------------------------------------------------------------------------

typedef struct {
    int N, V;
    double *logits;
    const int *targets;
    const double *dloss;
    double *losses, *probs;
} ce_ctx;

static double ce_loss(void *v) {
    ce_ctx *c = v;
    QT_EXPECT_OK(
        qt_cpu_crossentropy_fwd_f64(c->losses, c->probs, c->logits, c->targets, c->N, c->V));
    return qt_test_ddot(c->losses, c->dloss, c->N);
}

START_TEST(test_crossentropy_fd) {
    const int N = 5, V = 7;
    const int targets[5] = {3, -1, 0, 6, 2}; // row 1 ignored
    double *dloss = qt_test_drand(N, 0.2, 1.5, 111);
    ce_ctx c = {N, V, qt_test_drand((size_t)N * V, -3, 3, 110), targets, dloss, qt_test_dalloc(N),
                qt_test_dalloc((size_t)N * V)};
    ce_loss(&c);
    for (int n = 0; n < N; n++) {
        double m = -INFINITY, s = 0.0;
        for (int j = 0; j < V; j++) m = fmax(m, c.logits[n * V + j]);
        for (int j = 0; j < V; j++) s += exp(c.logits[n * V + j] - m);
        double want = targets[n] < 0 ? 0.0 : m + log(s) - c.logits[n * V + targets[n]];
        ck_assert_msg(fabs(c.losses[n] - want) <= 1e-14, "crossentropy_fwd_f64 row %d: %g vs %g",
                      n, c.losses[n], want);
        for (int j = 0; j < V; j++)
            ck_assert_msg(fabs(c.probs[n * V + j] - exp(c.logits[n * V + j] - m) / s) <= 1e-15,
                          "crossentropy probs row %d col %d", n, j);
    }
    double *d0 = qt_test_drand((size_t)N * V, -1, 1, 112), *d = qt_test_dcopy(d0, (size_t)N * V);
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd_f64(d, dloss, c.probs, targets, N, V));
    for (int j = 0; j < V; j++) ck_assert(d[V + j] == d0[V + j]); // ignored row untouched
    qt_test_check_grad(ce_loss, &c, c.logits, (size_t)N * V, d, d0, FD_H, FD_TOL,
                       "crossentropy_bwd_f64 dlogits");
    // in place: dlogits aliasing probs is overwritten; the ignored row becomes 0
    double *inpl = qt_test_dcopy(c.probs, (size_t)N * V), *z = qt_test_dalloc((size_t)N * V);
    for (int i = 0; i < N * V; i++) z[i] = 0.0;
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd_f64(inpl, dloss, inpl, targets, N, V));
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd_f64(z, dloss, c.probs, targets, N, V));
    for (int i = 0; i < N * V; i++)
        ck_assert_msg(inpl[i] == z[i], "crossentropy_bwd in place differs at %d", i);
    free(dloss);
    free(c.logits);
    free(c.losses);
    free(c.probs);
    free(d0);
    free(d);
    free(inpl);
    free(z);
}
END_TEST

static void check_ce_float(int N, int V, uint64_t seed) {
    size_t n = (size_t)N * V;
    int *targets = malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) targets[i] = i % 5 == 4 ? -1 : (int)((i * 2654435761u) % V);
    double *zd = qt_test_drand(n, -8, 8, seed), *dld = qt_test_drand(N, 0, 1, seed + 1);
    double *dd = qt_test_drand(n, -1, 1, seed + 2), *ld = qt_test_dalloc(N),
           *pd = qt_test_dalloc(n);
    float *zf = qt_test_to_float(zd, n), *dlf = qt_test_to_float(dld, N),
          *df = qt_test_to_float(dd, n);
    float *lf = qt_test_falloc(N), *pf = qt_test_falloc(n);
    qt_test_poison(lf, N);
    qt_test_poison(pf, n);
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd(lf, pf, zf, targets, N, V));
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd_f64(ld, pd, zd, targets, N, V));
    double e1 = qt_test_float_vs_double(lf, ld, N, 1e-5),
           e2 = qt_test_float_vs_double(pf, pd, n, 1e-5);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0,
                  "crossentropy_fwd float/double N %d V %d: losses %g probs %g", N, V, e1, e2);
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd(df, dlf, pf, targets, N, V));
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd_f64(dd, dld, pd, targets, N, V));
    double e3 = qt_test_float_vs_double(df, dd, n, 1e-5);
    ck_assert_msg(e3 <= 1.0, "crossentropy_bwd float/double N %d V %d: %g", N, V, e3);
    // probs may alias logits
    float *inpl = qt_test_falloc(n), *l2 = qt_test_falloc(N);
    memcpy(inpl, zf, n * sizeof(float));
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd(l2, inpl, inpl, targets, N, V));
    ck_assert(memcmp(inpl, pf, n * sizeof(float)) == 0 && memcmp(l2, lf, N * sizeof(float)) == 0);
    free(targets);
    free(zd);
    free(dld);
    free(dd);
    free(ld);
    free(pd);
    free(zf);
    free(dlf);
    free(df);
    free(lf);
    free(pf);
    free(inpl);
    free(l2);
}

START_TEST(test_crossentropy_float_vs_double) {
    check_ce_float(1, 1, 120);
    check_ce_float(31, 33, 121);
    check_ce_float(67, 4097, 122);
}
END_TEST

// The error contract (kernels/crossentropy.h): a bad shape, a NULL tensor or a target at or
// beyond V is refused, naming the op, before losses, probs or dlogits is written; negative
// targets stay valid (ignored rows).
START_TEST(test_crossentropy_bad_args) {
    enum { N = 3, V = 5 };
    const size_t nv = (size_t)N * V;
    float *logits = qt_test_falloc(nv), *dl = qt_test_falloc(N);
    qt_test_fill_uniform(logits, nv, -2.0f, 2.0f, 81);
    qt_test_fill_uniform(dl, N, 0.5f, 1.0f, 82);
    float *losses = qt_test_guarded(N * 4), *probs = qt_test_guarded(nv * 4),
          *dlogits = qt_test_guarded(nv * 4);
    int targets[N] = {0, -1, V};
#define UNTOUCHED (qt_test_untouched(losses, N * 4) && qt_test_untouched(probs, nv * 4))
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(losses, probs, logits, targets, N, V),
                      "crossentropy_fwd", UNTOUCHED);
    ck_assert_msg(strstr(qt_last_error(), "targets[2] = 5"), "%s", qt_last_error());
    targets[2] = 4;
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(losses, probs, logits, targets, N, 0),
                      "crossentropy_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(losses, probs, logits, targets, -1, V),
                      "crossentropy_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(losses, probs, logits, NULL, N, V),
                      "crossentropy_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(NULL, probs, logits, targets, N, V),
                      "crossentropy_fwd", UNTOUCHED);
#undef UNTOUCHED
    float *pr = qt_test_falloc(nv), *ls = qt_test_falloc(N);
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd(ls, pr, logits, targets, N, V));
    targets[0] = 7;
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_bwd(dlogits, dl, pr, targets, N, V), "crossentropy_bwd",
                      qt_test_untouched(dlogits, nv * 4));
    targets[0] = 0;
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_bwd(dlogits, NULL, pr, targets, N, V), "crossentropy_bwd",
                      qt_test_untouched(dlogits, nv * 4));
    double *ld = qt_test_dalloc(nv), *lossd = qt_test_guarded(N * 8),
           *prd = qt_test_guarded(nv * 8);
    for (size_t i = 0; i < nv; i++)
        ld[i] = logits[i];
    targets[1] = V;
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd_f64(lossd, prd, ld, targets, N, V),
                      "crossentropy_fwd_f64",
                      qt_test_untouched(lossd, N * 8) && qt_test_untouched(prd, nv * 8));
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd(NULL, NULL, NULL, NULL, 0, V));
    QT_TEST_FREE_ALL(logits, dl, losses, probs, dlogits, pr, ls, ld, lossd, prd);
}
END_TEST

static Suite *crossentropy_suite(void) {
    Suite *s = suite_create("crossentropy");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crossentropy_fd);
    tcase_add_test(tc, test_crossentropy_float_vs_double);
    tcase_add_test(tc, test_crossentropy_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(crossentropy_suite()); }

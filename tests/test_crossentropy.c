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
    double *losses, *stats;
} ce_ctx;

static double ce_loss(void *v) {
    ce_ctx *c = v;
    QT_EXPECT_OK(
        qt_cpu_crossentropy_fwd_f64(c->losses, c->stats, c->logits, c->targets, c->N, c->V));
    return qt_test_ddot(c->losses, c->dloss, c->N);
}

START_TEST(test_crossentropy_fd) {
    const int N = 5, V = 7;
    const int targets[5] = {3, -1, 0, 6, 2}; // row 1 ignored
    double *dloss = qt_test_drand(N, 0.2, 1.5, 111);
    ce_ctx c = {N, V, qt_test_drand((size_t)N * V, -3, 3, 110), targets, dloss, qt_test_dalloc(N),
                qt_test_dalloc(2 * (size_t)N)};
    double *z0 = qt_test_dcopy(c.logits, (size_t)N * V);
    ce_loss(&c);
    for (int i = 0; i < N * V; i++) ck_assert(c.logits[i] == z0[i]); // the forward only reads
    for (int n = 0; n < N; n++) {
        double m = -INFINITY, s = 0.0;
        for (int j = 0; j < V; j++) m = fmax(m, c.logits[n * V + j]);
        for (int j = 0; j < V; j++) s += exp(c.logits[n * V + j] - m);
        double want = targets[n] < 0 ? 0.0 : m + log(s) - c.logits[n * V + targets[n]];
        ck_assert_msg(fabs(c.losses[n] - want) <= 1e-14, "crossentropy_fwd_f64 row %d: %g vs %g",
                      n, c.losses[n], want);
        ck_assert_msg(c.stats[2 * n] == m && fabs(c.stats[2 * n + 1] * s - 1.0) <= 1e-15,
                      "crossentropy stats row %d: {%g, %g} vs {%g, 1 / %g}", n, c.stats[2 * n],
                      c.stats[2 * n + 1], m, s);
    }
    double *d0 = qt_test_drand((size_t)N * V, -1, 1, 112), *d = qt_test_dcopy(d0, (size_t)N * V);
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd_f64(d, dloss, c.logits, c.stats, targets, N, V));
    for (int j = 0; j < V; j++) ck_assert(d[V + j] == d0[V + j]); // ignored row untouched
    qt_test_check_grad(ce_loss, &c, c.logits, (size_t)N * V, d, d0, FD_H, FD_TOL,
                       "crossentropy_bwd_f64 dlogits");
    // in place: dlogits aliasing logits is overwritten; the ignored row becomes 0
    ce_loss(&c); // the stats of the unperturbed logits again
    double *inpl = qt_test_dcopy(c.logits, (size_t)N * V), *z = qt_test_dalloc((size_t)N * V);
    for (int i = 0; i < N * V; i++) z[i] = 0.0;
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd_f64(inpl, dloss, inpl, c.stats, targets, N, V));
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd_f64(z, dloss, c.logits, c.stats, targets, N, V));
    for (int i = 0; i < N * V; i++)
        ck_assert_msg(inpl[i] == z[i], "crossentropy_bwd in place differs at %d", i);
    QT_TEST_FREE_ALL(dloss, c.logits, c.losses, c.stats, z0, d0, d, inpl, z);
}
END_TEST

// Extreme rows: a target e^200 times less likely than each of the other 8 entries gets loss
// 200 + log 8 (exact: no probability is formed) and gradient exactly -dloss (its probability
// rounds to 0), the others dloss / 8; logits near 1e4 (exp would overflow without the max)
// give the loss of their differences and a finite gradient.
START_TEST(test_crossentropy_extreme_logits) {
    enum { N = 2, V = 9 };
    float z[N * V], stats[2 * N], losses[N], d[N * V];
    const int targets[N] = {0, 4};
    const float dl[N] = {1.0f, 0.5f};
    double sum1 = 0.0;
    for (int j = 0; j < V; j++) {
        z[j] = j == 0 ? -200.0f : 0.0f;
        z[V + j] = 1.0e4f + (float)j;
        sum1 += exp(j - 8.0);
    }
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd(losses, stats, z, targets, N, V));
    const double want0 = 200.0 + log(8.0), want1 = log(sum1) + 8.0 - 4.0;
    ck_assert_msg(fabs(losses[0] - want0) <= 1e-6 * want0, "loss %g, want %g", losses[0], want0);
    ck_assert_msg(fabs(losses[1] - want1) <= 1e-5, "loss %g, want %g", losses[1], want1);
    memset(d, 0, sizeof d);
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd(d, dl, z, stats, targets, N, V));
    for (int i = 0; i < N * V; i++) ck_assert_msg(isfinite(d[i]), "dlogits[%d] = %g", i, d[i]);
    ck_assert_msg(d[0] == -1.0f, "the target's gradient %g, want -1 (its probability ~0)", d[0]);
    ck_assert_msg(fabsf(d[1] - 0.125f) <= 1e-7f, "dlogits[1] = %g, want 1/8", d[1]);
    ck_assert_msg(fabs(d[V + 8] - 0.5 * exp(0.0) / sum1) <= 1e-6, "dlogits[V + 8] = %g", d[V + 8]);
}
END_TEST

static void check_ce_float(int N, int V, uint64_t seed) {
    size_t n = (size_t)N * V;
    int *targets = malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) targets[i] = i % 5 == 4 ? -1 : (int)((i * 2654435761u) % V);
    double *zd = qt_test_drand(n, -8, 8, seed), *dld = qt_test_drand(N, 0, 1, seed + 1);
    double *dd = qt_test_drand(n, -1, 1, seed + 2), *ld = qt_test_dalloc(N),
           *sd = qt_test_dalloc(2 * (size_t)N);
    float *zf = qt_test_to_float(zd, n), *dlf = qt_test_to_float(dld, N),
          *df = qt_test_to_float(dd, n);
    float *lf = qt_test_falloc(N), *sf = qt_test_falloc(2 * (size_t)N);
    qt_test_poison(lf, N);
    qt_test_poison(sf, 2 * (size_t)N);
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd(lf, sf, zf, targets, N, V));
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd_f64(ld, sd, zd, targets, N, V));
    double e1 = qt_test_float_vs_double(lf, ld, N, 1e-5),
           e2 = qt_test_float_vs_double(sf, sd, 2 * (size_t)N, 1e-5);
    ck_assert_msg(e1 <= 1.0 && e2 <= 1.0,
                  "crossentropy_fwd float/double N %d V %d: losses %g stats %g", N, V, e1, e2);
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd(df, dlf, zf, sf, targets, N, V));
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd_f64(dd, dld, zd, sd, targets, N, V));
    double e3 = qt_test_float_vs_double(df, dd, n, 1e-5);
    ck_assert_msg(e3 <= 1.0, "crossentropy_bwd float/double N %d V %d: %g", N, V, e3);
    QT_TEST_FREE_ALL(targets, zd, dld, dd, ld, sd, zf, dlf, df, lf, sf);
}

START_TEST(test_crossentropy_float_vs_double) {
    check_ce_float(1, 1, 120);
    check_ce_float(31, 33, 121);
    check_ce_float(67, 4097, 122);
}
END_TEST

// The error contract (kernels/crossentropy.h): a bad shape, a NULL tensor or a target at or
// beyond V is refused, naming the op, before losses, stats or dlogits is written; negative
// targets stay valid (ignored rows).
START_TEST(test_crossentropy_bad_args) {
    enum { N = 3, V = 5 };
    const size_t nv = (size_t)N * V;
    float *logits = qt_test_falloc(nv), *dl = qt_test_falloc(N);
    qt_test_fill_uniform(logits, nv, -2.0f, 2.0f, 81);
    qt_test_fill_uniform(dl, N, 0.5f, 1.0f, 82);
    float *losses = qt_test_guarded(N * 4), *stats = qt_test_guarded(2 * N * 4),
          *dlogits = qt_test_guarded(nv * 4);
    int targets[N] = {0, -1, V};
#define UNTOUCHED (qt_test_untouched(losses, N * 4) && qt_test_untouched(stats, 2 * N * 4))
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(losses, stats, logits, targets, N, V),
                      "crossentropy_fwd", UNTOUCHED);
    ck_assert_msg(strstr(qt_last_error(), "targets[2] = 5"), "%s", qt_last_error());
    targets[2] = 4;
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(losses, stats, logits, targets, N, 0),
                      "crossentropy_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(losses, stats, logits, targets, -1, V),
                      "crossentropy_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(losses, stats, logits, NULL, N, V),
                      "crossentropy_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(NULL, stats, logits, targets, N, V),
                      "crossentropy_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd(losses, NULL, logits, targets, N, V),
                      "crossentropy_fwd", UNTOUCHED);
#undef UNTOUCHED
    float *st = qt_test_falloc(2 * (size_t)N), *ls = qt_test_falloc(N);
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd(ls, st, logits, targets, N, V));
    targets[0] = 7;
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_bwd(dlogits, dl, logits, st, targets, N, V),
                      "crossentropy_bwd", qt_test_untouched(dlogits, nv * 4));
    targets[0] = 0;
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_bwd(dlogits, NULL, logits, st, targets, N, V),
                      "crossentropy_bwd", qt_test_untouched(dlogits, nv * 4));
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_bwd(dlogits, dl, logits, NULL, targets, N, V),
                      "crossentropy_bwd", qt_test_untouched(dlogits, nv * 4));
    double *ld = qt_test_dalloc(nv), *lossd = qt_test_guarded(N * 8),
           *sd = qt_test_guarded(2 * N * 8);
    for (size_t i = 0; i < nv; i++)
        ld[i] = logits[i];
    targets[1] = V;
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd_f64(lossd, sd, ld, targets, N, V),
                      "crossentropy_fwd_f64",
                      qt_test_untouched(lossd, N * 8) && qt_test_untouched(sd, 2 * N * 8));
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd(NULL, NULL, NULL, NULL, 0, V));
    QT_TEST_FREE_ALL(logits, dl, losses, stats, dlogits, st, ls, ld, lossd, sd);
}
END_TEST

// Both in one op: the forward then the aliased backward, bit for bit (ignored rows zeroed),
// float and double; a bad target or a NULL dlosses is refused before anything is written.
START_TEST(test_crossentropy_fwd_bwd) {
    enum { N = 6, V = 37 };
    const size_t nv = (size_t)N * V;
    float *logits = qt_test_falloc(nv), *dl = qt_test_falloc(N), *ref = qt_test_falloc(nv);
    float *ref_loss = qt_test_falloc(N), *ref_st = qt_test_falloc(2 * N);
    float *loss = qt_test_falloc(N), *st = qt_test_falloc(2 * N), *got = qt_test_falloc(nv);
    qt_test_fill_uniform(logits, nv, -6.0f, 6.0f, 91);
    qt_test_fill_uniform(dl, N, 0.1f, 1.0f, 92);
    int targets[N] = {0, V - 1, -1, 5, 17, -1};
    memcpy(ref, logits, nv * sizeof(float));
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd(ref_loss, ref_st, ref, targets, N, V));
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd(ref, dl, ref, ref_st, targets, N, V));
    memcpy(got, logits, nv * sizeof(float));
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd_bwd(loss, st, got, dl, targets, N, V));
    ck_assert(memcmp(loss, ref_loss, N * sizeof(float)) == 0);
    ck_assert(memcmp(st, ref_st, 2 * N * sizeof(float)) == 0);
    ck_assert(memcmp(got, ref, nv * sizeof(float)) == 0);
    for (int j = 0; j < V; j++) ck_assert(got[2 * V + j] == 0.0f && got[5 * V + j] == 0.0f);
    float *gl = qt_test_guarded(N * 4), *gs = qt_test_guarded(2 * N * 4);
    float *gz = qt_test_guarded(nv * 4);
    memcpy(gz, logits, nv * sizeof(float));
#define UNTOUCHED                                                                                  \
    (qt_test_untouched(gl, N * 4) && qt_test_untouched(gs, 2 * N * 4) &&                          \
     memcmp(gz, logits, nv * sizeof(float)) == 0)
    targets[3] = V;
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd_bwd(gl, gs, gz, dl, targets, N, V),
                      "crossentropy_fwd_bwd", UNTOUCHED);
    targets[3] = 5;
    QT_EXPECT_REFUSED(qt_cpu_crossentropy_fwd_bwd(gl, gs, gz, NULL, targets, N, V),
                      "crossentropy_fwd_bwd", UNTOUCHED);
#undef UNTOUCHED
    // the double twin: the same agreement with its own forward and aliased backward
    double *zd = qt_test_dalloc(nv), *refd = qt_test_dalloc(nv), *gotd = qt_test_dalloc(nv);
    double *dld = qt_test_dalloc(N), *ref_lossd = qt_test_dalloc(N), *lossd = qt_test_dalloc(N);
    double *ref_std = qt_test_dalloc(2 * N), *std_ = qt_test_dalloc(2 * N);
    for (size_t i = 0; i < nv; i++) zd[i] = refd[i] = gotd[i] = logits[i];
    for (int n = 0; n < N; n++) dld[n] = dl[n];
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd_f64(ref_lossd, ref_std, refd, targets, N, V));
    QT_EXPECT_OK(qt_cpu_crossentropy_bwd_f64(refd, dld, refd, ref_std, targets, N, V));
    QT_EXPECT_OK(qt_cpu_crossentropy_fwd_bwd_f64(lossd, std_, gotd, dld, targets, N, V));
    ck_assert(memcmp(lossd, ref_lossd, N * sizeof(double)) == 0);
    ck_assert(memcmp(std_, ref_std, 2 * N * sizeof(double)) == 0);
    ck_assert(memcmp(gotd, refd, nv * sizeof(double)) == 0);
    ck_assert(memcmp(gotd, zd, nv * sizeof(double)) != 0); // the gradient replaced the logits
    QT_TEST_FREE_ALL(logits, dl, ref, ref_loss, ref_st, loss, st, got, gl, gs, gz, zd, refd, gotd,
                     dld, ref_lossd, lossd, ref_std, std_);
}
END_TEST

static Suite *crossentropy_suite(void) {
    Suite *s = suite_create("crossentropy");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crossentropy_fd);
    tcase_add_test(tc, test_crossentropy_extreme_logits);
    tcase_add_test(tc, test_crossentropy_float_vs_double);
    tcase_add_test(tc, test_crossentropy_bad_args);
    tcase_add_test(tc, test_crossentropy_fwd_bwd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(crossentropy_suite()); }

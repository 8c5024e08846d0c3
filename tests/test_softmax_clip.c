// test_ops_softmax.c: the softmax variants qt_cpu_softmax_clip_{fwd,bwd}[_f64] (vanilla,
// clipped, NCS; PAPERS.md sections 1-2).
//
// Gradient checks run in double against central finite differences of the scalar loss
// L = sum_ij wout_ij probs_ij. Error norm, per gradient tensor:
//     err = max_i |analytic_i - fd_i| / max(max_i |fd_i|, 1e-30)
// and a check passes when err <= 1e-6 (NaN fails). Backward outputs start from random values
// (the backward must ADD into them) and the test subtracts those before comparing.
// At the clip boundaries (a p + c exactly 0 or 1) the loss has a kink, so the central
// difference is meaningless there: those cases compare the gradient with the formula
// evaluated directly (mask inclusive, as torch.clip) and with one-sided differences taken from
// the unclipped side; an exclusive mask fails both.
// Float runs are compared with the double ones on odd sizes, outputs poisoned with NaN.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/common/vmath.h"
#include "kernels/softmax_clip.h"
#include "expect_error.h"
#include "testutil.h"

#define FD_TOL 1e-6
#define FD_H 1e-6

static qt_softmax_params make_params(qt_softmax_kind kind, double scale) {
    qt_softmax_params p = {.kind = kind, .scale = (float)scale, .gamma = 0.0f, .zeta = 1.0f,
                           .eta = 1.0f, .beta = 1.0f};
    if (kind == QT_SOFTMAX_CLIPPED) {
        p.gamma = -0.2f; // strong enough that random rows clip at both ends
        p.zeta = 1.3f;
    } else if (kind == QT_SOFTMAX_NCS) {
        p.eta = 1.03f; // the reference code's defaults
        p.beta = 1.0f;
    }
    return p;
}

static const char *kind_name(qt_softmax_kind k) {
    return k == QT_SOFTMAX_VANILLA ? "vanilla" : k == QT_SOFTMAX_CLIPPED ? "clipped" : "ncs";
}

// ---- finite differences ----------------------------------------------------------------

typedef struct {
    const qt_softmax_params *prm;
    const int *lens;
    int rows, cols;
    const double *wout; // (rows, cols)
    double *probs, *p;  // (rows, cols) work space
    const double *x;    // (rows, cols) the scores sm_loss_at_x reads
} sm_loss_ctx;

static double sm_loss(const sm_loss_ctx *c, const double *scores) {
    QT_EXPECT_OK(
        qt_cpu_softmax_clip_fwd_f64(c->prm, c->probs, c->p, scores, c->lens, c->rows, c->cols));
    double s = 0.0;
    for (int i = 0; i < c->rows * c->cols; i++) s += c->wout[i] * c->probs[i];
    return s;
}

// sm_loss at c->x, for qt_test_fd_grad.
static double sm_loss_at_x(void *v) {
    const sm_loss_ctx *c = v;
    return sm_loss(c, c->x);
}

// Analytic dscores (accumulated onto a random start, start subtracted) and the central FD.
static void sm_grads(const qt_softmax_params *prm, const double *scores, const int *lens,
                     int rows, int cols, const double *wout, double *an, double *fd,
                     uint64_t seed) {
    size_t n = (size_t)rows * cols;
    double *probs = malloc(n * sizeof(double)), *p = malloc(n * sizeof(double));
    double *start = malloc(n * sizeof(double)), *x = malloc(n * sizeof(double));
    qt_test_fill_uniform_f64(start, n, -1.0, 1.0, seed ^ 0x5157);
    memcpy(an, start, n * sizeof(double));
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd_f64(prm, probs, p, scores, lens, rows, cols));
    QT_EXPECT_OK(qt_cpu_softmax_clip_bwd_f64(prm, an, wout, p, lens, rows, cols));
    for (int r = 0; r < rows; r++) {
        for (int j = 0; j < cols; j++) {
            size_t i = (size_t)r * cols + j;
            if (j >= lens[r]) {
                ck_assert_msg(an[i] == start[i],
                              "softmax_clip_bwd_f64 %s: masked column (%d, %d) written, seed %llu",
                              kind_name(prm->kind), r, j, (unsigned long long)seed);
            }
            an[i] -= start[i];
        }
    }
    sm_loss_ctx c = {prm, lens, rows, cols, wout, probs, p, x};
    memcpy(x, scores, n * sizeof(double));
    qt_test_fd_grad(sm_loss_at_x, &c, x, n, FD_H, fd);
    free(probs);
    free(p);
    free(start);
    free(x);
}

// One FD case: random scores in [-4, 4], lens from a pattern with rows of N = 1.
static void check_fd_case(qt_softmax_kind kind, int rows, int cols, uint64_t seed) {
    qt_softmax_params prm = make_params(kind, 0.7);
    size_t n = (size_t)rows * cols;
    double *scores = malloc(n * sizeof(double)), *wout = malloc(n * sizeof(double));
    double *an = malloc(n * sizeof(double)), *fd = malloc(n * sizeof(double));
    double *probs = malloc(n * sizeof(double)), *p = malloc(n * sizeof(double));
    int *lens = malloc((size_t)rows * sizeof(int));
    qt_test_fill_uniform_f64(scores, n, -4.0, 4.0, seed);
    qt_test_fill_uniform_f64(wout, n, -1.0, 1.0, seed + 1);
    for (int r = 0; r < rows; r++) lens[r] = r % 3 == 0 ? 1 : 1 + (r * 5 + 2) % cols;
    sm_grads(&prm, scores, lens, rows, cols, wout, an, fd, seed);
    double err = qt_test_rel_err_f64(an, fd, n);
    ck_assert_msg(err <= FD_TOL, "softmax_clip_bwd_f64 %s rows %d cols %d seed %llu: err %g",
                  kind_name(kind), rows, cols, (unsigned long long)seed, err);
    if (kind == QT_SOFTMAX_CLIPPED) {
        // the case must exercise both clip ends, or it proves nothing about them
        QT_EXPECT_OK(qt_cpu_softmax_clip_fwd_f64(&prm, probs, p, scores, lens, rows, cols));
        int lo = 0, hi = 0;
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < lens[r]; j++) {
                lo += probs[(size_t)r * cols + j] == 0.0;
                hi += lens[r] > 1 && probs[(size_t)r * cols + j] == 1.0;
            }
        }
        ck_assert_msg(lo > 0 && hi > 0, "clipped case seed %llu clips %d low, %d high",
                      (unsigned long long)seed, lo, hi);
    }
    free(scores);
    free(wout);
    free(an);
    free(fd);
    free(probs);
    free(p);
    free(lens);
}

START_TEST(test_fd_vanilla) {
    check_fd_case(QT_SOFTMAX_VANILLA, 9, 7, 11);
    check_fd_case(QT_SOFTMAX_VANILLA, 4, 1, 12);
}
END_TEST

START_TEST(test_fd_clipped) {
    check_fd_case(QT_SOFTMAX_CLIPPED, 9, 7, 21);
    check_fd_case(QT_SOFTMAX_CLIPPED, 12, 5, 22);
}
END_TEST

START_TEST(test_fd_ncs) {
    check_fd_case(QT_SOFTMAX_NCS, 9, 7, 31);
    check_fd_case(QT_SOFTMAX_NCS, 12, 5, 32);
    // beta > eta: c > 0, the masked columns must still get (and pass) nothing
    qt_softmax_params prm = {.kind = QT_SOFTMAX_NCS, .scale = 1.3f, .eta = 0.9f, .beta = 1.4f};
    enum { R = 6, K = 6 };
    double scores[R * K], wout[R * K], an[R * K], fd[R * K];
    int lens[R] = {1, 2, 3, 6, 4, 5};
    qt_test_fill_uniform_f64(scores, R * K, -2.0, 2.0, 33);
    qt_test_fill_uniform_f64(wout, R * K, -1.0, 1.0, 34);
    sm_grads(&prm, scores, lens, R, K, wout, an, fd, 33);
    double err = qt_test_rel_err_f64(an, fd, R * K);
    ck_assert_msg(err <= FD_TOL, "softmax_clip_bwd_f64 ncs eta 0.9 beta 1.4: err %g", err);
}
END_TEST

// ---- the clip boundaries ------------------------------------------------------------------

// The inclusive formula, written out independently of the library.
static void formula_grad(double a, double c, double scale, const double *p, const double *dprobs,
                         int n, double *ds) {
    double g[16], dot = 0.0;
    for (int j = 0; j < n; j++) {
        double y = a * p[j] + c;
        g[j] = (y >= 0.0 && y <= 1.0) ? a * dprobs[j] : 0.0;
        dot += p[j] * g[j];
    }
    for (int j = 0; j < n; j++) ds[j] = scale * p[j] * (g[j] - dot);
}

// One-sided second-order difference of the loss along +dir * e_j (dir = +1 or -1).
static double one_sided(const qt_softmax_params *prm, const double *scores, const int *lens,
                        int cols, const double *wout, int j, int dir) {
    double x[16], probs[16], p[16];
    memcpy(x, scores, (size_t)cols * sizeof(double));
    sm_loss_ctx c = {prm, lens, 1, cols, wout, probs, p, x};
    const double h = 1e-6;
    double f0 = sm_loss(&c, x);
    x[j] = scores[j] + dir * h;
    double f1 = sm_loss(&c, x);
    x[j] = scores[j] + dir * 2 * h;
    double f2 = sm_loss(&c, x);
    return dir * (-3 * f0 + 4 * f1 - f2) / (2 * h);
}

// a = 2, c = -0.5 (clipped: zeta 1.5, gamma -0.5; NCS at N = 2: eta 1.5, beta 1): the row
// p = (0.25, 0.75) sits exactly on both clip ends (2 * 0.25 - 0.5 = 0, 2 * 0.75 - 0.5 = 1).
START_TEST(test_boundary_inclusive) {
    qt_softmax_params cl = {.kind = QT_SOFTMAX_CLIPPED, .scale = 1.0f, .gamma = -0.5f,
                            .zeta = 1.5f};
    qt_softmax_params ncs = {.kind = QT_SOFTMAX_NCS, .scale = 1.0f, .eta = 1.5f, .beta = 1.0f};
    const qt_softmax_params *prms[2] = {&cl, &ncs};
    for (int k = 0; k < 2; k++) {
        const qt_softmax_params *prm = prms[k];
        // N = 2, both elements on a boundary
        {
            const int lens[1] = {2};
            const double p[2] = {0.25, 0.75}, dprobs[2] = {0.8, -0.3};
            const double scores[2] = {0.0, log(3.0)}; // softmax = (0.25, 0.75)
            double ds[2] = {0.0, 0.0}, want[2];
            QT_EXPECT_OK(qt_cpu_softmax_clip_bwd_f64(prm, ds, dprobs, p, lens, 1, 2));
            formula_grad(2.0, -0.5, 1.0, p, dprobs, 2, want);
            ck_assert_msg(fabs(want[0]) > 0.1, "boundary case degenerate");
            double err = qt_test_rel_err_f64(ds, want, 2);
            ck_assert_msg(err <= 1e-15, "%s N=2 boundary: grad (%g, %g) formula (%g, %g)",
                          kind_name(prm->kind), ds[0], ds[1], want[0], want[1]);
            // from the unclipped side: raising s0 (or lowering s1) moves both inside
            double fd[2] = {one_sided(prm, scores, lens, 2, dprobs, 0, +1),
                            one_sided(prm, scores, lens, 2, dprobs, 1, -1)};
            err = qt_test_rel_err_f64(ds, fd, 2);
            ck_assert_msg(err <= 1e-6, "%s N=2 boundary: grad (%g, %g) one-sided fd (%g, %g)",
                          kind_name(prm->kind), ds[0], ds[1], fd[0], fd[1]);
        }
    }
    // clipped, N = 4: p = (0.25, 0.5, 0.125, 0.125): y = (0, 0.5, -0.25, -0.25), element 0 on
    // the lower boundary, 2 and 3 clipped, 1 inside
    {
        const int lens[1] = {4};
        const double p[4] = {0.25, 0.5, 0.125, 0.125}, dprobs[4] = {0.9, -0.4, 0.7, 0.2};
        const double scores[4] = {log(2.0), log(4.0), 0.0, 0.0};
        double ds[4] = {0}, want[4];
        QT_EXPECT_OK(qt_cpu_softmax_clip_bwd_f64(&cl, ds, dprobs, p, lens, 1, 4));
        formula_grad(2.0, -0.5, 1.0, p, dprobs, 4, want);
        double err = qt_test_rel_err_f64(ds, want, 4);
        ck_assert_msg(err <= 1e-15, "clipped N=4 boundary: grad vs formula err %g", err);
        // raising s0 raises p0 (inside) and lowers the rest (1 stays inside, 2, 3 clipped)
        double fd0 = one_sided(&cl, scores, lens, 4, dprobs, 0, +1);
        ck_assert_msg(fabs(ds[0] - fd0) <= 1e-6 * fabs(fd0) && fabs(fd0) > 0.1,
                      "clipped N=4 boundary: ds0 %g one-sided fd %g", ds[0], fd0);
    }
    // the float op on the same exact inputs
    {
        const int lens[1] = {2};
        const float p[2] = {0.25f, 0.75f}, dprobs[2] = {0.8f, -0.3f};
        float ds[2] = {0.0f, 0.0f};
        QT_EXPECT_OK(qt_cpu_softmax_clip_bwd(&cl, ds, dprobs, p, lens, 1, 2));
        double pd[2] = {0.25, 0.75}, dd[2] = {0.8f, -0.3f}, want[2];
        formula_grad(2.0, -0.5, 1.0, pd, dd, 2, want);
        for (int j = 0; j < 2; j++)
            ck_assert_msg(fabs(ds[j] - want[j]) <= 1e-6, "float boundary: ds[%d] %g want %g", j,
                          ds[j], want[j]);
    }
}
END_TEST

// ---- properties ---------------------------------------------------------------------------

// clipped with gamma = 0, zeta = 1 is softmax, bit for bit (float and double)
START_TEST(test_clipped_identity_is_softmax) {
    enum { R = 7, K = 33 };
    float s[R * K], pv[R * K], prv[R * K], pc[R * K], prc[R * K];
    double sd[R * K], pvd[R * K], prvd[R * K], pcd[R * K], prcd[R * K];
    int lens[R] = {1, 5, 33, 17, 2, 32, 9};
    qt_test_fill_uniform(s, R * K, -6.0f, 6.0f, 41);
    for (int i = 0; i < R * K; i++) sd[i] = s[i];
    qt_softmax_params v = {.kind = QT_SOFTMAX_VANILLA, .scale = 0.125f};
    qt_softmax_params c = {.kind = QT_SOFTMAX_CLIPPED, .scale = 0.125f, .gamma = 0.0f,
                           .zeta = 1.0f};
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd(&v, prv, pv, s, lens, R, K));
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd(&c, prc, pc, s, lens, R, K));
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd_f64(&v, prvd, pvd, sd, lens, R, K));
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd_f64(&c, prcd, pcd, sd, lens, R, K));
    for (int i = 0; i < R * K; i++) {
        ck_assert_msg(prc[i] == prv[i] && prc[i] == pv[i], "float clipped(0,1) != softmax at %d",
                      i);
        ck_assert_msg(prcd[i] == prvd[i] && prcd[i] == pvd[i],
                      "double clipped(0,1) != softmax at %d", i);
    }
}
END_TEST

// NCS: N = 1 is softmax; a uniform row maps to beta / N; a one-hot row to min(eta, 1) at the
// hot key and (beta - eta) / (N - 1) clipped at 0 elsewhere; masked columns exactly 0 even
// when beta > eta makes c > 0.
START_TEST(test_ncs_properties) {
    enum { K = 8 };
    const float etas[3] = {0.9f, 1.0f, 1.03f}, betas[3] = {1.0f, 0.95f, 1.0f};
    for (int e = 0; e < 3; e++) {
        qt_softmax_params prm = {.kind = QT_SOFTMAX_NCS, .scale = 0.5f, .eta = etas[e],
                                 .beta = betas[e]};
        for (int n = 1; n <= K; n++) {
            double uni[K], hot[K], pr[K], p[K];
            int lens[1] = {n};
            for (int j = 0; j < K; j++) {
                uni[j] = 0.7;
                hot[j] = j == 2 % n ? 2000.0 : -1.0;
            }
            QT_EXPECT_OK(qt_cpu_softmax_clip_fwd_f64(&prm, pr, p, uni, lens, 1, K));
            for (int j = 0; j < K; j++) {
                double want = j < n ? (n == 1 ? 1.0 : (double)prm.beta / n) : 0.0;
                if (want > 1.0) want = 1.0;
                ck_assert_msg(fabs(pr[j] - want) <= 1e-12 && (j < n || pr[j] == 0.0),
                              "ncs eta %g beta %g uniform N=%d: probs[%d] = %.17g, want %.17g",
                              prm.eta, prm.beta, n, j, pr[j], want);
            }
            QT_EXPECT_OK(qt_cpu_softmax_clip_fwd_f64(&prm, pr, p, hot, lens, 1, K));
            for (int j = 0; j < K; j++) {
                double want;
                if (j >= n) want = 0.0;
                else if (n == 1) want = 1.0;
                else if (j == 2 % n) want = fmin((double)prm.eta, 1.0);
                else want = fmax(((double)prm.beta - prm.eta) / (n - 1), 0.0);
                ck_assert_msg(fabs(pr[j] - want) <= 1e-12 && (j < n || pr[j] == 0.0),
                              "ncs eta %g beta %g one-hot N=%d: probs[%d] = %.17g, want %.17g",
                              prm.eta, prm.beta, n, j, pr[j], want);
            }
        }
    }
    // N = 1 rows equal softmax rows (p = 1 at column 0), in float too
    qt_softmax_params ncs = {.kind = QT_SOFTMAX_NCS, .scale = 1.0f, .eta = 1.03f, .beta = 1.0f};
    qt_softmax_params van = {.kind = QT_SOFTMAX_VANILLA, .scale = 1.0f};
    float s[3 * K], a[3 * K], b[3 * K], pa[3 * K], pb[3 * K];
    int lens[3] = {1, 1, 1};
    qt_test_fill_uniform(s, 3 * K, -3.0f, 3.0f, 51);
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd(&ncs, a, pa, s, lens, 3, K));
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd(&van, b, pb, s, lens, 3, K));
    for (int i = 0; i < 3 * K; i++)
        ck_assert_msg(a[i] == b[i] && a[i] == (i % K == 0 ? 1.0f : 0.0f),
                      "ncs N=1 != softmax at %d: %g vs %g", i, a[i], b[i]);
}
END_TEST

// ---- float against double ---------------------------------------------------------------

static void check_float_vs_double(qt_softmax_kind kind, int rows, int cols, uint64_t seed) {
    qt_softmax_params prm = make_params(kind, 0.37);
    size_t n = (size_t)rows * cols;
    float *s = malloc(n * sizeof(float)), *pr = malloc(n * sizeof(float));
    float *p = malloc(n * sizeof(float)), *dpr = malloc(n * sizeof(float));
    float *ds = malloc(n * sizeof(float));
    double *sd = malloc(n * sizeof(double)), *prd = malloc(n * sizeof(double));
    double *pd = malloc(n * sizeof(double)), *dprd = malloc(n * sizeof(double));
    double *dsd = malloc(n * sizeof(double));
    float *want = malloc(n * sizeof(float));
    int *lens = malloc((size_t)rows * sizeof(int));
    qt_test_fill_uniform(s, n, -5.0f, 5.0f, seed);
    qt_test_fill_uniform(dpr, n, -1.0f, 1.0f, seed + 1);
    qt_test_fill_uniform(ds, n, -1.0f, 1.0f, seed + 2);
    for (size_t i = 0; i < n; i++) {
        sd[i] = s[i];
        dprd[i] = dpr[i];
        dsd[i] = ds[i];
    }
    for (int r = 0; r < rows; r++) lens[r] = 1 + (int)((r * 7919u + seed) % (unsigned)cols);
    qt_test_poison(pr, n);
    qt_test_poison(p, n);
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd(&prm, pr, p, s, lens, rows, cols));
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd_f64(&prm, prd, pd, sd, lens, rows, cols));
    for (size_t i = 0; i < n; i++) want[i] = (float)prd[i];
    double err = qt_test_max_err(pr, want, n, 1e-6, 1e-5);
    ck_assert_msg(err <= 1.0, "softmax_clip_fwd float/double %s rows %d cols %d seed %llu: %g",
                  kind_name(kind), rows, cols, (unsigned long long)seed, err);
    for (size_t i = 0; i < n; i++) want[i] = (float)pd[i];
    err = qt_test_max_err(p, want, n, 1e-6, 1e-5);
    ck_assert_msg(err <= 1.0, "softmax_clip_fwd p float/double %s rows %d cols %d: %g",
                  kind_name(kind), rows, cols, err);
    // the backward from each precision's own saved p
    QT_EXPECT_OK(qt_cpu_softmax_clip_bwd(&prm, ds, dpr, p, lens, rows, cols));
    QT_EXPECT_OK(qt_cpu_softmax_clip_bwd_f64(&prm, dsd, dprd, pd, lens, rows, cols));
    for (size_t i = 0; i < n; i++) want[i] = (float)dsd[i];
    err = qt_test_max_err(ds, want, n, 1e-6, 1e-5);
    ck_assert_msg(err <= 1.0, "softmax_clip_bwd float/double %s rows %d cols %d seed %llu: %g",
                  kind_name(kind), rows, cols, (unsigned long long)seed, err);
    free(s);
    free(pr);
    free(p);
    free(dpr);
    free(ds);
    free(sd);
    free(prd);
    free(pd);
    free(dprd);
    free(dsd);
    free(want);
    free(lens);
}

START_TEST(test_float_vs_double) {
    const int sizes[4][2] = {{1, 1}, {31, 33}, {33, 31}, {130, 129}};
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 4; s++)
            check_float_vs_double((qt_softmax_kind)k, sizes[s][0], sizes[s][1], 61 + s);
}
END_TEST

// Large scores (|scale * s| up to 1e4): the max-subtraction keeps everything finite.
START_TEST(test_large_scores_finite) {
    enum { R = 3, K = 31 };
    float s[R * K], pr[R * K], p[R * K];
    int lens[R] = {31, 20, 1};
    qt_test_fill_uniform(s, R * K, -1e4f, 1e4f, 71);
    for (int k = 0; k < 3; k++) {
        qt_softmax_params prm = make_params((qt_softmax_kind)k, 1.0);
        QT_EXPECT_OK(qt_cpu_softmax_clip_fwd(&prm, pr, p, s, lens, R, K));
        for (int r = 0; r < R; r++) {
            double sum = 0.0;
            for (int j = 0; j < K; j++) {
                ck_assert_msg(isfinite(pr[r * K + j]) && isfinite(p[r * K + j]),
                              "%s: non-finite at (%d, %d)", kind_name(prm.kind), r, j);
                sum += p[r * K + j];
            }
            ck_assert_msg(fabs(sum - 1.0) <= 1e-5, "%s: row %d p sums to %g", kind_name(prm.kind),
                          r, sum);
        }
    }
}
END_TEST

// vexpf, the float exp behind the float softmax, cross-entropy and GELU: within 1 ulp of the
// exact exp over [-87, 88.3] (sampled densely), exp(0) = 1 exactly, clamped tails, NaN kept.
START_TEST(test_vexpf_accuracy) {
    const int n = 400000;
    double worst = 0.0, at = 0.0;
    for (int i = 0; i <= n; i++) {
        float x = (float)(-87.0 + (88.3 + 87.0) * i / n);
        double want = exp((double)x);
        float got = vexpf(x);
        float fw = (float)want;
        double ulp = (double)nextafterf(fw, INFINITY) - (double)fw;
        double e = fabs((double)got - want) / ulp;
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            at = x;
        }
    }
    ck_assert_msg(worst <= 1.0, "vexpf: %g ulp at x = %.9g", worst, at);
    ck_assert(vexpf(0.0f) == 1.0f);
    float lo = vexpf(-INFINITY), lo2 = vexpf(-1000.0f), hi = vexpf(INFINITY);
    ck_assert_msg(lo >= 0.0f && lo < 1e-37f && lo2 == lo, "vexpf(-inf) = %g", lo);
    ck_assert_msg(isfinite(hi) && hi > 1e38f, "vexpf(inf) = %g", hi);
    ck_assert(isnan(vexpf(NAN)));
}
END_TEST

// The error contract (kernels/softmax_clip.h): bad params (kind, scale, clipped gamma > 0 or
// zeta < 1, NCS eta <= 0 or beta >= 2 eta), a bad shape, a length outside [1, cols] or a NULL
// tensor is refused, naming the op, before probs, p (forward) or dscores (backward) is written.
START_TEST(test_softmax_clip_bad_args) {
    enum { rows = 3, cols = 4 };
    const size_t nb = (size_t)rows * cols * sizeof(float);
    float scores[rows * cols];
    qt_test_fill_uniform(scores, rows * cols, -2.0f, 2.0f, 61);
    float *probs = qt_test_guarded(nb), *p = qt_test_guarded(nb);
    int lens[rows] = {1, 4, 2};
    const qt_softmax_params clipped = make_params(QT_SOFTMAX_CLIPPED, 0.5),
                            ncs = make_params(QT_SOFTMAX_NCS, 0.5);
    qt_softmax_params bad[6] = {clipped, clipped, clipped, ncs, ncs, clipped};
    bad[0].kind = (qt_softmax_kind)3;
    bad[1].gamma = 0.25f;
    bad[2].zeta = 0.5f;
    bad[3].eta = 0.0f;
    bad[4].beta = 2.0f * ncs.eta;
    bad[5].scale = INFINITY;
#define UNTOUCHED (qt_test_untouched(probs, nb) && qt_test_untouched(p, nb))
    for (int i = 0; i < 6; i++)
        QT_EXPECT_REFUSED(qt_cpu_softmax_clip_fwd(&bad[i], probs, p, scores, lens, rows, cols),
                          "softmax_clip_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_softmax_clip_fwd(NULL, probs, p, scores, lens, rows, cols),
                      "softmax_clip_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_softmax_clip_fwd(&clipped, probs, p, scores, lens, rows, 0),
                      "softmax_clip_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_softmax_clip_fwd(&clipped, probs, p, scores, NULL, rows, cols),
                      "softmax_clip_fwd", UNTOUCHED);
    lens[2] = cols + 1; // the last row: every earlier row was fine, and must stay unwritten
    QT_EXPECT_REFUSED(qt_cpu_softmax_clip_fwd(&clipped, probs, p, scores, lens, rows, cols),
                      "softmax_clip_fwd", UNTOUCHED);
    ck_assert_msg(strstr(qt_last_error(), "lens[2] = 5 is outside [1, 4]"), "%s", qt_last_error());
#undef UNTOUCHED
    lens[2] = 2;
    float *pv = qt_test_falloc((size_t)rows * cols), *prv = qt_test_falloc((size_t)rows * cols);
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd(&clipped, prv, pv, scores, lens, rows, cols));
    float *ds = qt_test_guarded(nb);
    lens[1] = 0;
    QT_EXPECT_REFUSED(qt_cpu_softmax_clip_bwd(&clipped, ds, scores, pv, lens, rows, cols),
                      "softmax_clip_bwd", qt_test_untouched(ds, nb));
    lens[1] = 4;
    QT_EXPECT_REFUSED(qt_cpu_softmax_clip_bwd(&bad[3], ds, scores, pv, lens, rows, cols),
                      "softmax_clip_bwd", qt_test_untouched(ds, nb));
    QT_EXPECT_REFUSED(qt_cpu_softmax_clip_bwd(&clipped, ds, NULL, pv, lens, rows, cols),
                      "softmax_clip_bwd", qt_test_untouched(ds, nb));
    double sd[rows * cols] = {0};
    double *prd = qt_test_guarded(nb * 2), *pd = qt_test_guarded(nb * 2);
    QT_EXPECT_REFUSED(qt_cpu_softmax_clip_fwd_f64(&bad[1], prd, pd, sd, lens, rows, cols),
                      "softmax_clip_fwd_f64",
                      qt_test_untouched(prd, nb * 2) && qt_test_untouched(pd, nb * 2));
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd(&ncs, NULL, NULL, NULL, NULL, 0, cols));
    QT_TEST_FREE_ALL(probs, p, pv, prv, ds, prd, pd);
}
END_TEST

// ---- the sink variants: off-by-one softmax and a learned sink logit per head --------------
//
// qt_cpu_softmax_clip_sink_{fwd,bwd}[_f64]: rows (G, H, head_rows), row r of head
// (r / head_rows) % H; p_j = exp(x_j) / (exp(s0) + sum_k exp(x_k)), x = scale * scores.

typedef struct {
    const qt_softmax_params *prm;
    qt_sink_kind sink;
    const int *lens;
    int rows, cols, H, hr;
    const double *wout;
    double *probs, *p, *x, *logits;
} sink_ctx;

static double sink_loss(void *v) {
    const sink_ctx *c = v;
    QT_EXPECT_OK(qt_cpu_softmax_clip_sink_fwd_f64(c->prm, c->sink, c->probs, c->p, c->x, c->lens,
                                                  c->logits, c->rows, c->cols, c->H, c->hr));
    double s = 0.0;
    for (int i = 0; i < c->rows * c->cols; i++)
        s += c->wout[i] * c->probs[i];
    return s;
}

// Finite differences of every variant with each sink, with respect to the scores and the
// logits (rows of N = 1 included; 12 rows = 2 groups x 3 heads x 2 rows).
START_TEST(test_sink_fd) {
    enum { R = 12, K = 6, H = 3, HR = 2 };
    for (int k = 0; k < 3; k++)
        for (int sk = QT_SINK_ZERO; sk <= QT_SINK_LEARNED; sk++) {
            qt_softmax_params prm = make_params((qt_softmax_kind)k, 0.8);
            if (k == QT_SOFTMAX_NCS) { // both ends clipped on random rows
                prm.eta = 1.2f;
                prm.beta = 0.5f;
            }
            const uint64_t seed = 500 + 10 * (uint64_t)k + (uint64_t)sk;
            double x[R * K], wout[R * K], probs[R * K], p[R * K], logits[H], an[R * K],
                dl[H] = {0.3, -0.2, 0.1}, fd[R * K], fdl[H];
            int lens[R];
            for (int r = 0; r < R; r++)
                lens[r] = r % 4 == 0 ? 1 : 1 + (r * 5 + 2) % K;
            qt_test_fill_uniform_f64(x, R * K, -4.0, 4.0, seed);
            qt_test_fill_uniform_f64(wout, R * K, -1.0, 1.0, seed + 1);
            qt_test_fill_uniform_f64(logits, H, -2.0, 2.0, seed + 2);
            qt_test_fill_uniform_f64(an, R * K, -1.0, 1.0, seed + 3);
            double start[R * K], lstart[H];
            memcpy(start, an, sizeof an);
            memcpy(lstart, dl, sizeof dl);
            sink_ctx c = {&prm, (qt_sink_kind)sk, lens, R, K, H, HR, wout, probs, p, x, logits};
            sink_loss(&c);
            QT_EXPECT_OK(qt_cpu_softmax_clip_sink_bwd_f64(&prm, (qt_sink_kind)sk, an, dl, wout, p,
                                                          lens, R, K, H, HR));
            for (int i = 0; i < R * K; i++)
                an[i] -= start[i];
            for (int h = 0; h < H; h++)
                dl[h] -= lstart[h];
            qt_test_fd_grad(sink_loss, &c, x, R * K, FD_H, fd);
            double e = qt_test_rel_err_f64(an, fd, R * K);
            ck_assert_msg(e <= FD_TOL, "softmax_clip_sink_bwd_f64 %s sink %d: dscores err %g",
                          kind_name(prm.kind), sk, e);
            if (sk == QT_SINK_LEARNED) {
                qt_test_fd_grad(sink_loss, &c, logits, H, FD_H, fdl);
                e = qt_test_rel_err_f64(dl, fdl, H);
                ck_assert_msg(e <= FD_TOL, "softmax_clip_sink_bwd_f64 %s: dlogits err %g",
                              kind_name(prm.kind), e);
            } else {
                for (int h = 0; h < H; h++)
                    ck_assert(dl[h] == 0.0); // no logits: untouched
            }
        }
}
END_TEST

// Properties from the definition:
// - p sums to 1 - p0 with p0 = exp(s0) / (exp(s0) + sum exp(x)) (written out here);
// - off-by-one = a learned sink of logit 0, bit for bit;
// - a very negative sink logit (-200) is the plain softmax, bit for bit (exp(-200 - m) vanishes
//   next to the sum in double), for every variant;
// - off-by-one with very negative scores (x <= -40): every probability < 1e-17, the row
//   attends to nothing (vanilla), and its gradient vanishes with it;
// - off-by-one with one dominant score (x = 40): p ~ the plain softmax (1e-17).
START_TEST(test_sink_properties) {
    enum { R = 6, K = 7, H = 2, HR = 3 };
    double x[R * K], probs[R * K], p[R * K], probs2[R * K], p2[R * K];
    int lens[R] = {1, 3, 7, 2, 5, 7};
    qt_test_fill_uniform_f64(x, R * K, -3.0, 3.0, 601);
    const double zero[H] = {0.0, 0.0}, neg[H] = {-200.0, -200.0}, lg[H] = {0.7, -1.3};
    for (int k = 0; k < 3; k++) {
        const qt_softmax_params prm = make_params((qt_softmax_kind)k, 1.0);
        QT_EXPECT_OK(qt_cpu_softmax_clip_sink_fwd_f64(&prm, QT_SINK_LEARNED, probs, p, x, lens, lg,
                                                      R, K, H, HR));
        for (int r = 0; r < R; r++) {
            const double s0 = lg[(r / HR) % H];
            double z = exp(s0), sum = 0.0;
            for (int j = 0; j < lens[r]; j++)
                z += exp(x[r * K + j]);
            for (int j = 0; j < lens[r]; j++)
                sum += p[r * K + j];
            ck_assert_msg(fabs(sum - (1.0 - exp(s0) / z)) <= 1e-14,
                          "%s sink: row %d sums to %.17g, want 1 - p0 = %.17g", kind_name(k), r,
                          sum, 1.0 - exp(s0) / z);
        }
        QT_EXPECT_OK(qt_cpu_softmax_clip_sink_fwd_f64(&prm, QT_SINK_ZERO, probs, p, x, lens, NULL,
                                                      R, K, H, HR));
        QT_EXPECT_OK(qt_cpu_softmax_clip_sink_fwd_f64(&prm, QT_SINK_LEARNED, probs2, p2, x, lens,
                                                      zero, R, K, H, HR));
        ck_assert_msg(!memcmp(probs, probs2, sizeof probs) && !memcmp(p, p2, sizeof p),
                      "%s: off-by-one differs from a learned sink at 0", kind_name(k));
        QT_EXPECT_OK(qt_cpu_softmax_clip_sink_fwd_f64(&prm, QT_SINK_LEARNED, probs, p, x, lens, neg,
                                                      R, K, H, HR));
        QT_EXPECT_OK(qt_cpu_softmax_clip_fwd_f64(&prm, probs2, p2, x, lens, R, K));
        ck_assert_msg(!memcmp(probs, probs2, sizeof probs) && !memcmp(p, p2, sizeof p),
                      "%s: a sink at -200 is not the plain softmax", kind_name(k));
    }
    // off-by-one, every score very negative: attends to nothing
    const qt_softmax_params van = make_params(QT_SOFTMAX_VANILLA, 1.0);
    double lo[R * K], d[R * K], dprobs[R * K];
    qt_test_fill_uniform_f64(lo, R * K, -60.0, -40.0, 602);
    qt_test_fill_uniform_f64(dprobs, R * K, -1.0, 1.0, 603);
    memset(d, 0, sizeof d);
    QT_EXPECT_OK(qt_cpu_softmax_clip_sink_fwd_f64(&van, QT_SINK_ZERO, probs, p, lo, lens, NULL, R,
                                                  K, H, HR));
    QT_EXPECT_OK(qt_cpu_softmax_clip_sink_bwd_f64(&van, QT_SINK_ZERO, d, NULL, dprobs, p, lens, R,
                                                  K, H, HR));
    for (int i = 0; i < R * K; i++)
        ck_assert_msg(probs[i] < 1e-17 && fabs(d[i]) < 1e-16,
                      "off-by-one, scores <= -40: prob %g, grad %g at %d", probs[i], d[i], i);
    // off-by-one, one dominant score per row: the plain softmax
    for (int r = 0; r < R; r++)
        lo[r * K] = 40.0;
    QT_EXPECT_OK(qt_cpu_softmax_clip_sink_fwd_f64(&van, QT_SINK_ZERO, probs, p, lo, lens, NULL, R,
                                                  K, H, HR));
    QT_EXPECT_OK(qt_cpu_softmax_clip_fwd_f64(&van, probs2, p2, lo, lens, R, K));
    ck_assert_msg(qt_test_max_err_f64(probs, probs2, R * K, 1e-17, 0) <= 1,
                  "off-by-one with a dominant score is not the plain softmax");
}
END_TEST

// Float against double (the sink variants, odd sizes, outputs poisoned), and the error
// contract of the sink entry points.
START_TEST(test_sink_float_and_bad_args) {
    enum { R = 40, K = 33, H = 4, HR = 5 };
    const size_t n = (size_t)R * K;
    double *xd = qt_test_drand(n, -3, 3, 611), *wd = qt_test_drand(n, -1, 1, 612);
    double lgd[H] = {0.5, -0.5, 1.5, -2.0};
    float *xf = qt_test_to_float(xd, n), *wf = qt_test_to_float(wd, n), lgf[H];
    for (int h = 0; h < H; h++)
        lgf[h] = (float)lgd[h];
    int lens[R];
    for (int r = 0; r < R; r++)
        lens[r] = 1 + (r * 7) % K;
    double *prd = qt_test_dalloc(n), *pd = qt_test_dalloc(n), *dsd = calloc(n, sizeof(double));
    float *prf = qt_test_falloc(n), *pf = qt_test_falloc(n), *dsf = calloc(n, sizeof(float));
    for (int k = 0; k < 3; k++) {
        const qt_softmax_params prm = make_params((qt_softmax_kind)k, 0.9);
        double dld[H] = {0};
        float dlf[H] = {0};
        qt_test_poison(prf, n);
        qt_test_poison(pf, n);
        QT_EXPECT_OK(qt_cpu_softmax_clip_sink_fwd(&prm, QT_SINK_LEARNED, prf, pf, xf, lens, lgf, R,
                                                  K, H, HR));
        QT_EXPECT_OK(qt_cpu_softmax_clip_sink_fwd_f64(&prm, QT_SINK_LEARNED, prd, pd, xd, lens, lgd,
                                                      R, K, H, HR));
        QT_EXPECT_OK(qt_cpu_softmax_clip_sink_bwd(&prm, QT_SINK_LEARNED, dsf, dlf, wf, pf, lens, R,
                                                  K, H, HR));
        QT_EXPECT_OK(qt_cpu_softmax_clip_sink_bwd_f64(&prm, QT_SINK_LEARNED, dsd, dld, wd, pd, lens,
                                                      R, K, H, HR));
        double dlw[H];
        float dlg[H];
        for (int h = 0; h < H; h++) {
            dlw[h] = dld[h];
            dlg[h] = dlf[h];
        }
        const double e[4] = {
            qt_test_float_vs_double(prf, prd, n, 1e-5), qt_test_float_vs_double(pf, pd, n, 1e-5),
            qt_test_float_vs_double(dsf, dsd, n, 1e-5), qt_test_float_vs_double(dlg, dlw, H, 1e-5)};
        ck_assert_msg(e[0] <= 1 && e[1] <= 1 && e[2] <= 1 && e[3] <= 1,
                      "softmax_clip_sink %s float vs double: probs %g p %g dscores %g dlogits %g",
                      kind_name(k), e[0], e[1], e[2], e[3]);
    }
    const qt_softmax_params prm = make_params(QT_SOFTMAX_CLIPPED, 1.0);
    const size_t nb = n * sizeof(float);
    float *gp = qt_test_guarded(nb), *gq = qt_test_guarded(nb);
#define UNTOUCHED (qt_test_untouched(gp, nb) && qt_test_untouched(gq, nb))
    QT_EXPECT_REFUSED(
        qt_cpu_softmax_clip_sink_fwd(&prm, QT_SINK_LEARNED, gp, gq, xf, lens, NULL, R, K, H, HR),
        "softmax_clip_sink_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(
        qt_cpu_softmax_clip_sink_fwd(&prm, (qt_sink_kind)5, gp, gq, xf, lens, lgf, R, K, H, HR),
        "softmax_clip_sink_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(
        qt_cpu_softmax_clip_sink_fwd(&prm, QT_SINK_ZERO, gp, gq, xf, lens, NULL, R, K, 0, HR),
        "softmax_clip_sink_fwd", UNTOUCHED);
    QT_EXPECT_REFUSED(
        qt_cpu_softmax_clip_sink_bwd(&prm, QT_SINK_ZERO, gp, NULL, wf, pf, lens, R, K, H, 0),
        "softmax_clip_sink_bwd", UNTOUCHED);
#undef UNTOUCHED
    QT_TEST_FREE_ALL(xd, wd, xf, wf, prd, pd, dsd, prf, pf, dsf, gp, gq);
}
END_TEST

static Suite *softmax_suite(void) {
    Suite *s = suite_create("ops_softmax");
    TCase *tc = tcase_create("softmax_clip");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fd_vanilla);
    tcase_add_test(tc, test_fd_clipped);
    tcase_add_test(tc, test_fd_ncs);
    tcase_add_test(tc, test_boundary_inclusive);
    tcase_add_test(tc, test_clipped_identity_is_softmax);
    tcase_add_test(tc, test_ncs_properties);
    tcase_add_test(tc, test_float_vs_double);
    tcase_add_test(tc, test_large_scores_finite);
    tcase_add_test(tc, test_vexpf_accuracy);
    tcase_add_test(tc, test_softmax_clip_bad_args);
    tcase_add_test(tc, test_sink_fd);
    tcase_add_test(tc, test_sink_properties);
    tcase_add_test(tc, test_sink_float_and_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qt_test_run_suite(softmax_suite()); }

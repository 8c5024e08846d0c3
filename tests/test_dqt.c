// test_dqt.c: the CPU reference of direct quantized training (kernels/cpu/dqt.c,
// kernels/dqt.h) against its definition and the properties DQT relies on:
//   - codes stay on the grid [qmin, qmax] and land on one of the two grid points around
//     t = w'/scale_out, w' from an independent double-precision AdamW (ternary, 4 and 8 bits);
//   - lr = 0, weight decay 0 and scale_out = scale_in leave every code unchanged;
//   - stochastic rounding is unbiased: over 400 streams the mean code of each element is within
//     5 standard errors of t, and the sum of all deviations within 3 standard errors;
//   - dry_run writes nothing (buffers compared byte for byte) and reports the real call's stats;
//   - the same inputs give the same bytes and stats, on 1 or 2 threads, with > 256 chunks;
//   - codes clamp at both ends of the range;
//   - m and v equal qt_cpu_adamw_step's bit for bit on the same gradients, over 3 steps;
//   - the stats are sum |w'| (within 1e-6 of the double reference) and max |code| before;
//   - dequant is code * scale exactly.
// Shapes, grids and seeds are named in every failure message.
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dqt.h"
#include "kernels/adamw.h"
#include "expect_error.h"
#include "testutil.h"

typedef struct {
    int qmin, qmax;
    const char *name;
} grid;
static const grid GRIDS[] = {{-1, 1, "ternary"}, {-8, 7, "4-bit"}, {-128, 127, "8-bit"}};
#define N_GRIDS ((int)(sizeof GRIDS / sizeof GRIDS[0]))
static const size_t SIZES[] = {1, 31, 4096 + 33, 3 * 4096 + 77};
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

// One tensor's state: codes, gradient and moments.
typedef struct {
    size_t n;
    int8_t *codes;
    float *grad, *m, *v;
} state;

static state state_new(size_t n, int cmin, int cmax, uint64_t seed) {
    state s;
    s.n = n;
    s.codes = malloc(n ? n : 1);
    s.grad = qt_test_falloc(n);
    s.m = qt_test_falloc(n);
    s.v = qt_test_falloc(n);
    ck_assert_ptr_nonnull(s.codes);
    float *u = qt_test_falloc(n);
    qt_test_fill_uniform(u, n, 0.0f, 1.0f, seed);
    for (size_t i = 0; i < n; i++) {
        int c = cmin + (int)(u[i] * (float)(cmax - cmin + 1));
        s.codes[i] = (int8_t)(c > cmax ? cmax : c);
    }
    free(u);
    qt_test_fill_uniform(s.grad, n, -1.0f, 1.0f, seed + 1);
    qt_test_fill_uniform(s.m, n, -0.1f, 0.1f, seed + 2);
    qt_test_fill_uniform(s.v, n, 0.0f, 0.01f, seed + 3);
    return s;
}

static state state_copy(const state *a) {
    state s = *a;
    const size_t n = a->n;
    s.codes = malloc(n ? n : 1);
    s.grad = qt_test_falloc(n);
    s.m = qt_test_falloc(n);
    s.v = qt_test_falloc(n);
    memcpy(s.codes, a->codes, n);
    memcpy(s.grad, a->grad, n * sizeof(float));
    memcpy(s.m, a->m, n * sizeof(float));
    memcpy(s.v, a->v, n * sizeof(float));
    return s;
}

static int state_equal(const state *a, const state *b) {
    const size_t n = a->n;
    return memcmp(a->codes, b->codes, n) == 0 && memcmp(a->m, b->m, n * sizeof(float)) == 0 &&
           memcmp(a->v, b->v, n * sizeof(float)) == 0;
}

static void state_free(state *s) {
    free(s->codes);
    free(s->grad);
    free(s->m);
    free(s->v);
}

static qt_dqt_params params(const grid *g, float scale, float lr, uint64_t stream) {
    qt_dqt_params dp;
    memset(&dp, 0, sizeof dp);
    dp.adam.lr = lr;
    dp.adam.beta1 = 0.9f;
    dp.adam.beta2 = 0.95f;
    dp.adam.eps = 1e-8f;
    dp.adam.weight_decay = 0.1f;
    dp.adam.step = 3;
    dp.adam.grad_scale = 0.5f;
    dp.scale_in = scale;
    dp.scale_out = scale;
    dp.qmin = g->qmin;
    dp.qmax = g->qmax;
    dp.seed = 0x5eedull;
    dp.stream = stream;
    return dp;
}

// t = w'/scale_out of element i before the step, and w' itself, in double (an AdamW written
// independently of the library).
static double ref_t(const qt_dqt_params *dp, const state *s, size_t i, double *wnew) {
    const qt_adamw_params *a = &dp->adam;
    const double b1 = a->beta1, b2 = a->beta2;
    const double g = (double)s->grad[i] * a->grad_scale;
    const double m = b1 * s->m[i] + (1.0 - b1) * g, v = b2 * s->v[i] + (1.0 - b2) * g * g;
    const double mhat = m / (1.0 - pow(b1, a->step)), vhat = v / (1.0 - pow(b2, a->step));
    const double w = (double)s->codes[i] * dp->scale_in;
    const double w1 = w - (double)a->lr * (mhat / (sqrt(vhat) + a->eps) +
                                           (double)a->weight_decay * w);
    if (wnew) *wnew = w1;
    return w1 / dp->scale_out;
}

static int clampi(int x, int lo, int hi) { return x < lo ? lo : x > hi ? hi : x; }

START_TEST(test_grid_and_neighbours) {
    // lr of about 0.7 codes per step (Adam's step is ~1 in units of lr), 8 codes for the
    // far-out case, which pushes many values past the range ends
    const float lrs[] = {0.7f, 8.0f};
    for (int gi = 0; gi < N_GRIDS; gi++)
        for (int si = 0; si < N_SIZES; si++)
            for (int li = 0; li < 2; li++) {
                const grid *g = &GRIDS[gi];
                const size_t n = SIZES[si];
                const float scale = 0.0371f;
                const uint64_t seed = 100 + (uint64_t)(gi * 10 + si);
                state s = state_new(n, g->qmin, g->qmax, seed);
                state r = state_copy(&s);
                qt_dqt_params dp = params(g, scale, lrs[li] * scale, 7);
                dp.scale_out = scale * 1.25f;
                qt_dqt_stats st;
                QT_EXPECT_OK(qt_cpu_dqt_step(&dp, r.codes, r.grad, r.m, r.v, n, &st));
                double sum = 0.0;
                int mx = 0;
                for (size_t i = 0; i < n; i++) {
                    double w1;
                    const double t = ref_t(&dp, &s, i, &w1);
                    sum += fabs(w1);
                    mx = abs(s.codes[i]) > mx ? abs(s.codes[i]) : mx;
                    const int c = r.codes[i];
                    const int lo = clampi((int)floor(t - 1e-4), g->qmin, g->qmax);
                    const int hi = clampi((int)ceil(t + 1e-4), g->qmin, g->qmax);
                    ck_assert_msg(c >= g->qmin && c <= g->qmax && c >= lo && c <= hi,
                                  "%s n %zu lr %g seed %llu: element %zu code %d, t = %.6f "
                                  "(allowed [%d, %d])",
                                  g->name, n, (double)dp.adam.lr, (unsigned long long)seed, i, c,
                                  t, lo, hi);
                }
                const double err = fabs(st.abs_sum - sum) / (sum > 0 ? sum : 1.0);
                ck_assert_msg(err <= 1e-6, "%s n %zu seed %llu: abs_sum %.9g, reference %.9g",
                              g->name, n, (unsigned long long)seed, st.abs_sum, sum);
                ck_assert_msg(st.max_abs_code == mx, "%s n %zu: max_abs_code %d, reference %d",
                              g->name, n, st.max_abs_code, mx);
                state_free(&s);
                state_free(&r);
            }
}
END_TEST

START_TEST(test_zero_lr_keeps_codes) {
    const float scales[] = {0.0371f, 1.0f / 3.0f, 1e-3f, 7.77f};
    const size_t n = 20000;
    for (int gi = 0; gi < N_GRIDS; gi++)
        for (int k = 0; k < 4; k++) {
            const grid *g = &GRIDS[gi];
            state s = state_new(n, g->qmin, g->qmax, 300 + (uint64_t)(gi * 4 + k));
            state r = state_copy(&s);
            qt_dqt_params dp = params(g, scales[k], 0.0f, 11);
            dp.adam.weight_decay = 0.0f;
            QT_EXPECT_OK(qt_cpu_dqt_step(&dp, r.codes, r.grad, r.m, r.v, n, NULL));
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(r.codes[i] == s.codes[i],
                              "%s scale %g lr 0: element %zu moved from %d to %d", g->name,
                              (double)scales[k], i, s.codes[i], r.codes[i]);
            state_free(&s);
            state_free(&r);
        }
}
END_TEST

START_TEST(test_unbiased) {
    // 8-bit codes in [-100, 100], updates of up to ~1.5 codes: no clamping anywhere.
    const grid g = {-128, 127, "8-bit"};
    const size_t n = 1024;
    const int K = 400;
    const float ratios[] = {1.0f, 1.3f};
    for (int ri = 0; ri < 2; ri++) {
        const uint64_t seed = 500 + (uint64_t)ri;
        state s = state_new(n, -100, 100, seed);
        qt_dqt_params dp = params(&g, 0.02f, 0.02f * 1.5f, 0);
        dp.scale_out = dp.scale_in * ratios[ri];
        double *t = qt_test_dalloc(n), *sum = qt_test_dalloc(n);
        for (size_t i = 0; i < n; i++) {
            t[i] = ref_t(&dp, &s, i, NULL);
            sum[i] = 0.0;
        }
        for (int k = 0; k < K; k++) {
            state r = state_copy(&s);
            dp.stream = 1000 + (uint64_t)k;
            QT_EXPECT_OK(qt_cpu_dqt_step(&dp, r.codes, r.grad, r.m, r.v, n, NULL));
            for (size_t i = 0; i < n; i++) sum[i] += r.codes[i];
            state_free(&r);
        }
        double dev = 0.0, var = 0.0;
        for (size_t i = 0; i < n; i++) {
            const double f = t[i] - floor(t[i]), mean = sum[i] / K;
            const double se = sqrt(f * (1.0 - f) / K);
            ck_assert_msg(fabs(mean - t[i]) <= 5.0 * se + 1e-5,
                          "ratio %g seed %llu: element %zu mean code %.4f over %d streams, "
                          "t = %.4f (se %.4f)",
                          (double)ratios[ri], (unsigned long long)seed, i, mean, K, t[i], se);
            dev += sum[i] - K * t[i];
            var += K * f * (1.0 - f);
        }
        const double z = dev / sqrt(var);
        ck_assert_msg(fabs(z) <= 3.0, "ratio %g seed %llu: total deviation %.2f standard errors",
                      (double)ratios[ri], (unsigned long long)seed, z);
        free(t);
        free(sum);
        state_free(&s);
    }
}
END_TEST

START_TEST(test_dry_run) {
    for (int gi = 0; gi < N_GRIDS; gi++)
        for (int si = 0; si < N_SIZES; si++) {
            const grid *g = &GRIDS[gi];
            const size_t n = SIZES[si];
            state s = state_new(n, g->qmin, g->qmax, 700 + (uint64_t)(gi * 10 + si));
            state d = state_copy(&s), r = state_copy(&s);
            qt_dqt_params dp = params(g, 0.05f, 0.05f, 3);
            dp.dry_run = 1;
            qt_dqt_stats sd, sr;
            QT_EXPECT_OK(qt_cpu_dqt_step(&dp, d.codes, d.grad, d.m, d.v, n, &sd));
            ck_assert_msg(state_equal(&d, &s), "%s n %zu: dry_run wrote codes, m or v", g->name,
                          n);
            QT_EXPECT_OK(
                qt_cpu_dqt_step(&dp, d.codes, d.grad, d.m, d.v, n, NULL)); // no stats: a no-op
            ck_assert_msg(state_equal(&d, &s), "%s n %zu: dry_run without stats wrote", g->name,
                          n);
            dp.dry_run = 0;
            QT_EXPECT_OK(qt_cpu_dqt_step(&dp, r.codes, r.grad, r.m, r.v, n, &sr));
            ck_assert_msg(sd.abs_sum == sr.abs_sum && sd.max_abs_code == sr.max_abs_code,
                          "%s n %zu: dry_run stats (%.17g, %d) differ from the step's (%.17g, %d)",
                          g->name, n, sd.abs_sum, sd.max_abs_code, sr.abs_sum, sr.max_abs_code);
            ck_assert_msg(!state_equal(&r, &s), "%s n %zu: the real step changed nothing",
                          g->name, n);
            state_free(&s);
            state_free(&d);
            state_free(&r);
        }
}
END_TEST

// More than 256 chunks (the stats' second level wraps around its lanes), 1 and 2 threads.
START_TEST(test_deterministic_across_threads) {
    const grid *g = &GRIDS[2];
    const size_t n = 300 * 4096 + 123;
    const int saved = omp_get_max_threads();
    state s = state_new(n, g->qmin, g->qmax, 900);
    qt_dqt_params dp = params(g, 0.01f, 0.01f, 5);
    state a = state_copy(&s), b = state_copy(&s), c = state_copy(&s);
    qt_dqt_stats sa, sb, sc;
    omp_set_num_threads(1);
    QT_EXPECT_OK(qt_cpu_dqt_step(&dp, a.codes, a.grad, a.m, a.v, n, &sa));
    omp_set_num_threads(2);
    QT_EXPECT_OK(qt_cpu_dqt_step(&dp, b.codes, b.grad, b.m, b.v, n, &sb));
    QT_EXPECT_OK(qt_cpu_dqt_step(&dp, c.codes, c.grad, c.m, c.v, n, &sc));
    omp_set_num_threads(saved);
    ck_assert_msg(state_equal(&a, &b) && state_equal(&b, &c),
                  "n %zu: 1 and 2 threads (or two runs) wrote different codes, m or v", n);
    ck_assert_msg(sa.abs_sum == sb.abs_sum && sb.abs_sum == sc.abs_sum &&
                      sa.max_abs_code == sb.max_abs_code,
                  "n %zu: stats differ: %.17g (1 thread), %.17g, %.17g (2 threads)", n,
                  sa.abs_sum, sb.abs_sum, sc.abs_sum);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double w1;
        ref_t(&dp, &s, i, &w1);
        sum += fabs(w1);
    }
    ck_assert_msg(fabs(sa.abs_sum - sum) <= 1e-6 * sum, "n %zu: abs_sum %.12g, reference %.12g",
                  n, sa.abs_sum, sum);
    ck_assert_int_eq(sa.max_abs_code, 128);
    state_free(&s);
    state_free(&a);
    state_free(&b);
    state_free(&c);
}
END_TEST

START_TEST(test_clamp_at_range_ends) {
    for (int gi = 0; gi < N_GRIDS; gi++) {
        const grid *g = &GRIDS[gi];
        const size_t n = 513;
        state s = state_new(n, g->qmin, g->qmax, 1100 + (uint64_t)gi);
        // the first half at qmax with negative gradients (w grows), the rest at qmin with
        // positive ones; moments 0, so the step is lr * sign(g) / (1 + tiny) per element:
        // 3 codes past either end
        for (size_t i = 0; i < n; i++) {
            const int top = i < n / 2;
            s.codes[i] = (int8_t)(top ? g->qmax : g->qmin);
            s.grad[i] = top ? -fabsf(s.grad[i]) - 0.1f : fabsf(s.grad[i]) + 0.1f;
            s.m[i] = 0.0f;
            s.v[i] = 0.0f;
        }
        qt_dqt_params dp = params(g, 0.5f, 1.5f, 13);
        dp.adam.step = 1;
        dp.adam.weight_decay = 0.0f;
        qt_dqt_stats st;
        QT_EXPECT_OK(qt_cpu_dqt_step(&dp, s.codes, s.grad, s.m, s.v, n, &st));
        for (size_t i = 0; i < n; i++) {
            const int want = i < n / 2 ? g->qmax : g->qmin;
            ck_assert_msg(s.codes[i] == want, "%s: element %zu is %d, want the clamp %d",
                          g->name, i, s.codes[i], want);
        }
        ck_assert_int_eq(st.max_abs_code, -g->qmin);
        state_free(&s);
    }
}
END_TEST

START_TEST(test_moments_match_adamw) {
    // 40000 elements: adamw.c's parallel simd path
    const size_t sizes[] = {1, 33, 40000};
    for (int si = 0; si < 3; si++) {
        const size_t n = sizes[si];
        const grid *g = &GRIDS[1];
        state s = state_new(n, g->qmin, g->qmax, 1200 + (uint64_t)si);
        float *param = qt_test_falloc(n), *m = qt_test_falloc(n), *v = qt_test_falloc(n);
        memcpy(m, s.m, n * sizeof(float));
        memcpy(v, s.v, n * sizeof(float));
        for (int step = 1; step <= 3; step++) {
            qt_dqt_params dp = params(g, 0.1f, 0.05f, (uint64_t)step);
            dp.adam.step = step;
            for (size_t i = 0; i < n; i++) param[i] = (float)s.codes[i] * dp.scale_in;
            qt_test_fill_uniform(s.grad, n, -2.0f, 2.0f, 1300 + (uint64_t)(si * 10 + step));
            QT_EXPECT_OK(qt_cpu_adamw_step(param, s.grad, m, v, n, &dp.adam));
            QT_EXPECT_OK(qt_cpu_dqt_step(&dp, s.codes, s.grad, s.m, s.v, n, NULL));
            ck_assert_msg(memcmp(m, s.m, n * sizeof(float)) == 0 &&
                              memcmp(v, s.v, n * sizeof(float)) == 0,
                          "n %zu step %d: m or v differ from qt_cpu_adamw_step's", n, step);
        }
        free(param);
        free(m);
        free(v);
        state_free(&s);
    }
}
END_TEST

START_TEST(test_dequant) {
    const size_t n = 1027;
    int8_t *codes = malloc(n);
    float *out = qt_test_falloc(n);
    for (size_t i = 0; i < n; i++) codes[i] = (int8_t)((int)(i * 37 % 256) - 128);
    qt_test_poison(out, n);
    QT_EXPECT_OK(qt_cpu_dqt_dequant(out, codes, 0.0371f, n));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(out[i] == (float)codes[i] * 0.0371f, "dequant n %zu: element %zu is %g",
                      n, i, (double)out[i]);
    free(codes);
    free(out);
}
END_TEST

// The error contract (kernels/dqt.h): bad params (no params, step < 1, a grid that is not an
// int8 range, a scale that is not finite and > 0) or a NULL tensor is refused, naming the op,
// before codes, m, v or stats is written.
START_TEST(test_dqt_bad_args) {
    enum { n = 37 };
    const grid *g = &GRIDS[0];
    float grad[n];
    qt_test_fill_uniform(grad, n, -1.0f, 1.0f, 91);
    int8_t *codes = qt_test_guarded(n);
    float *m = qt_test_guarded(n * 4), *v = qt_test_guarded(n * 4);
    qt_dqt_stats *stats = qt_test_guarded(sizeof *stats);
#define UNTOUCHED                                                                                  \
    (qt_test_untouched(codes, n) && qt_test_untouched(m, n * 4) && qt_test_untouched(v, n * 4) &&  \
     qt_test_untouched(stats, sizeof *stats))
    qt_dqt_params dp = params(g, 0.05f, 1e-2f, 1);
    QT_EXPECT_REFUSED(qt_cpu_dqt_step(NULL, codes, grad, m, v, n, stats), "dqt_step", UNTOUCHED);
    dp.adam.step = 0;
    QT_EXPECT_REFUSED(qt_cpu_dqt_step(&dp, codes, grad, m, v, n, stats), "dqt_step", UNTOUCHED);
    dp = params(g, 0.05f, 1e-2f, 1);
    dp.qmin = 2; // above qmax
    QT_EXPECT_REFUSED(qt_cpu_dqt_step(&dp, codes, grad, m, v, n, stats), "dqt_step", UNTOUCHED);
    dp = params(g, 0.0f, 1e-2f, 1);
    QT_EXPECT_REFUSED(qt_cpu_dqt_step(&dp, codes, grad, m, v, n, stats), "dqt_step", UNTOUCHED);
    dp = params(g, 0.05f, 1e-2f, 1);
    QT_EXPECT_REFUSED(qt_cpu_dqt_step(&dp, codes, NULL, m, v, n, stats), "dqt_step", UNTOUCHED);
    dp.dry_run = 1; // a dry run with stats reads every tensor too
    QT_EXPECT_REFUSED(qt_cpu_dqt_step(&dp, codes, grad, m, NULL, n, stats), "dqt_step", UNTOUCHED);
#undef UNTOUCHED
    float *out = qt_test_guarded(n * 4);
    QT_EXPECT_REFUSED(qt_cpu_dqt_dequant(out, NULL, 0.5f, n), "dqt_dequant",
                      qt_test_untouched(out, n * 4));
    QT_EXPECT_OK(qt_cpu_dqt_dequant(NULL, NULL, 0.5f, 0));
    QT_EXPECT_OK(qt_cpu_dqt_step(&dp, NULL, NULL, NULL, NULL, 0, NULL));
    QT_TEST_FREE_ALL(codes, m, v, stats, out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("dqt");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_grid_and_neighbours);
    tcase_add_test(tc, test_zero_lr_keeps_codes);
    tcase_add_test(tc, test_unbiased);
    tcase_add_test(tc, test_dry_run);
    tcase_add_test(tc, test_deterministic_across_threads);
    tcase_add_test(tc, test_clamp_at_range_ends);
    tcase_add_test(tc, test_moments_match_adamw);
    tcase_add_test(tc, test_dequant);
    tcase_add_test(tc, test_dqt_bad_args);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

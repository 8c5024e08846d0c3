// test_backend_quant.c: the CPU backend's quantized-training entries (host/backends/backend_cpu.c,
// contract in include/qtrain/backend.h) against the library calls they stand for:
//   - quant_fake equals qt_cpu_quant_fake bit for bit (ternary, 4 and 8 bits; per tensor, row,
//     group; nearest and stochastic; absmax and absmean; asymmetric); non-fp32 dtypes and the
//     stateful ranges (running, fixed) are refused;
//   - linear_s8_fwd equals linear_fwd on qt_cpu_quant_fake'd x and w within fp rounding:
//     |out - ref| <= 1e-5 (sum_k |xq_k wq_k| + |b|) per element (the int8 path sums exactly,
//     the float GEMM rounds each of K terms), for odd shapes, per tensor and per row, with and
//     without bias; anything but 8-bit symmetric nearest per tensor / per row is refused;
//   - dqt_dequant and dqt_step equal qt_cpu_dqt_dequant / qt_cpu_dqt_step bit for bit, and bad
//     DQT params return QT_ERR_ARG instead of aborting.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtrain/backend.h"
#include "kernels/dqt.h"
#include "kernels/linear.h"
#include "kernels/quant.h"
#include "expect_error.h"
#include "testutil.h"

static qt_backend cpu_backend(void) {
    qt_backend be;
    ck_assert_msg(qt_backend_cpu_init(&be, 0) == QT_OK, "cpu init: %s", qt_last_error());
    return be;
}

START_TEST(test_quant_fake_equals_library) {
    qt_backend be = cpu_backend();
    const int bits[] = {QT_QUANT_TERNARY, 4, 8};
    const size_t shapes[][2] = {{1, 1}, {5, 33}, {3, 1027}};
    int count = 0;
    for (int bi = 0; bi < 3; bi++)
        for (int gran = 0; gran < 3; gran++)
            for (int mode = 0; mode < 4; mode++) {
                qt_quant_params p = qt_quant_params_default(bits[bi]);
                p.granularity = (qt_quant_granularity)gran;
                p.group_size = 16;
                p.rounding = mode & 1 ? QT_QUANT_STOCHASTIC : QT_QUANT_NEAREST;
                p.range = mode & 2 ? QT_QUANT_RANGE_ABSMEAN : QT_QUANT_RANGE_ABSMAX;
                if (bits[bi] != QT_QUANT_TERNARY && mode == 0) p.symmetric = 0;
                p.seed = 77;
                p.stream = qt_quant_stream(3, (uint64_t)count);
                const size_t *sh = shapes[count % 3];
                const size_t n = sh[0] * sh[1];
                float *x = qt_test_falloc(n), *ref = qt_test_falloc(n), *got = qt_test_falloc(n);
                qt_test_fill_uniform(x, n, -2.0f, 3.0f, 40 + (uint64_t)count);
                qt_test_poison(got, n);
                ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, ref, x, sh[0], sh[1]), QT_OK);
                ck_assert_msg(be.ops->quant_fake(be.ctx, QT_DTYPE_F32, &p, got, x, sh[0],
                                                 sh[1]) == QT_OK,
                              "quant_fake: %s", qt_last_error());
                ck_assert_msg(memcmp(got, ref, n * sizeof(float)) == 0,
                              "quant_fake bits %d gran %d mode %d (%zu, %zu): differs from "
                              "qt_cpu_quant_fake",
                              bits[bi], gran, mode, sh[0], sh[1]);
                free(x);
                free(ref);
                free(got);
                count++;
            }
    float x[4] = {1, 2, 3, 4}, out[4];
    qt_quant_params p = qt_quant_params_default(8);
    ck_assert_int_eq(be.ops->quant_fake(be.ctx, QT_DTYPE_BF16, &p, out, x, 1, 4), QT_ERR_ARG);
    p.range = QT_QUANT_RANGE_RUNNING;
    ck_assert_int_eq(be.ops->quant_fake(be.ctx, QT_DTYPE_F32, &p, out, x, 1, 4), QT_ERR_ARG);
    p.range = QT_QUANT_RANGE_FIXED;
    ck_assert_int_eq(be.ops->quant_fake(be.ctx, QT_DTYPE_F32, &p, out, x, 1, 4), QT_ERR_ARG);
    qt_backend_free(&be);
}
END_TEST

// out vs linear_fwd on fake-quantized x and w; returns the worst err / tol.
static double s8_case(qt_backend *be, int N, int IC, int OC, int xrow, int wrow, int bias,
                      uint64_t seed) {
    qt_quant_params aq = qt_quant_params_default(8), wq = qt_quant_params_default(8);
    aq.granularity = xrow ? QT_QUANT_PER_ROW : QT_QUANT_PER_TENSOR;
    wq.granularity = wrow ? QT_QUANT_PER_ROW : QT_QUANT_PER_TENSOR;
    const size_t nx = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    float *x = qt_test_falloc(nx), *w = qt_test_falloc(nw), *b = qt_test_falloc((size_t)OC);
    float *xq = qt_test_falloc(nx), *wq_ = qt_test_falloc(nw);
    float *out = qt_test_falloc(no), *ref = qt_test_falloc(no);
    qt_test_fill_uniform(x, nx, -2.0f, 2.0f, seed);
    qt_test_fill_uniform(w, nw, -0.5f, 0.5f, seed + 1);
    qt_test_fill_uniform(b, (size_t)OC, -1.0f, 1.0f, seed + 2);
    // rows of different magnitude, so per-row scales differ from the per-tensor one
    for (int r = 0; r < N; r++)
        for (int k = 0; k < IC; k++) x[(size_t)r * IC + k] *= 1.0f + (float)(r % 3);
    ck_assert_int_eq(qt_cpu_quant_fake(&aq, NULL, xq, x, (size_t)N, (size_t)IC), QT_OK);
    ck_assert_int_eq(qt_cpu_quant_fake(&wq, NULL, wq_, w, (size_t)OC, (size_t)IC), QT_OK);
    QT_EXPECT_OK(qt_cpu_linear_fwd(ref, xq, wq_, bias ? b : NULL, N, IC, OC));
    qt_test_poison(out, no);
    ck_assert_msg(be->ops->linear_s8_fwd(be->ctx, out, x, w, bias ? b : NULL, N, IC, OC, &aq,
                                         &wq) == QT_OK,
                  "linear_s8_fwd (%d, %d, %d): %s", N, IC, OC, qt_last_error());
    double worst = 0.0;
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) {
            double mag = bias ? fabs(b[o]) : 0.0;
            for (int k = 0; k < IC; k++)
                mag += fabs((double)xq[(size_t)r * IC + k] * wq_[(size_t)o * IC + k]);
            const double err = fabs((double)out[(size_t)r * OC + o] - ref[(size_t)r * OC + o]);
            const double e = err / (1e-5 * mag + 1e-30);
            worst = !(e <= worst) ? e : worst; // NaN stays
        }
    free(x);
    free(w);
    free(b);
    free(xq);
    free(wq_);
    free(out);
    free(ref);
    return worst;
}

START_TEST(test_linear_s8_matches_fake_quant) {
    qt_backend be = cpu_backend();
    const int shapes[][3] = {{1, 1, 1}, {3, 31, 5}, {7, 33, 17}, {5, 257, 13}, {17, 64, 33}};
    for (int si = 0; si < 5; si++)
        for (int mode = 0; mode < 8; mode++) {
            const int *s = shapes[si];
            const int xrow = mode & 1, wrow = (mode >> 1) & 1, bias = (mode >> 2) & 1;
            const uint64_t seed = 100 + (uint64_t)(si * 8 + mode);
            const double e = s8_case(&be, s[0], s[1], s[2], xrow, wrow, bias, seed);
            ck_assert_msg(e <= 1.0,
                          "linear_s8_fwd (N %d, IC %d, OC %d) x per-%s w per-%s bias %d seed "
                          "%llu: err/tol %.3g",
                          s[0], s[1], s[2], xrow ? "row" : "tensor", wrow ? "row" : "tensor",
                          bias, (unsigned long long)seed, e);
        }
    qt_backend_free(&be);
}
END_TEST

START_TEST(test_linear_s8_refusals) {
    qt_backend be = cpu_backend();
    float x[6] = {1, 2, 3, 4, 5, 6}, w[6] = {1, -1, 2, 0, 1, 3}, out[4];
    const qt_quant_params good = qt_quant_params_default(8);
    qt_quant_params bad[5];
    for (int i = 0; i < 5; i++) bad[i] = good;
    bad[0].bits = 4;
    bad[1].symmetric = 0;
    bad[2].rounding = QT_QUANT_STOCHASTIC;
    bad[3].granularity = QT_QUANT_PER_GROUP;
    bad[3].group_size = 2;
    bad[4].range = QT_QUANT_RANGE_MSE;
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(be.ops->linear_s8_fwd(be.ctx, out, x, w, NULL, 2, 3, 2, &bad[i], &good) ==
                          QT_ERR_UNSUPPORTED,
                      "activation grid %d accepted", i);
        ck_assert_msg(be.ops->linear_s8_fwd(be.ctx, out, x, w, NULL, 2, 3, 2, &good, &bad[i]) ==
                          QT_ERR_UNSUPPORTED,
                      "weight grid %d accepted", i);
    }
    ck_assert_int_eq(be.ops->linear_s8_fwd(be.ctx, out, x, w, NULL, 2, 3, 2, NULL, &good),
                     QT_ERR_UNSUPPORTED);
    ck_assert_int_eq(be.ops->linear_s8_fwd(be.ctx, out, x, w, NULL, 2, 0, 2, &good, &good),
                     QT_ERR_ARG);
    ck_assert_int_eq(be.ops->linear_s8_fwd(be.ctx, out, x, w, NULL, 0, 3, 2, &good, &good),
                     QT_OK);
    qt_backend_free(&be);
}
END_TEST

static qt_dqt_params dqt_params(void) {
    qt_dqt_params dp;
    memset(&dp, 0, sizeof dp);
    dp.adam.lr = 0.02f;
    dp.adam.beta1 = 0.9f;
    dp.adam.beta2 = 0.95f;
    dp.adam.eps = 1e-8f;
    dp.adam.weight_decay = 0.1f;
    dp.adam.step = 2;
    dp.adam.grad_scale = 1.0f;
    dp.scale_in = 0.03f;
    dp.scale_out = 0.031f;
    dp.qmin = -1;
    dp.qmax = 1;
    dp.seed = 9;
    dp.stream = 4;
    return dp;
}

START_TEST(test_dqt_entries_equal_library) {
    qt_backend be = cpu_backend();
    const size_t n = 5000;
    int8_t *c1 = malloc(n), *c2 = malloc(n);
    float *g = qt_test_falloc(n), *m1 = qt_test_falloc(n), *v1 = qt_test_falloc(n);
    float *m2 = qt_test_falloc(n), *v2 = qt_test_falloc(n);
    float *o1 = qt_test_falloc(n), *o2 = qt_test_falloc(n);
    qt_test_fill_uniform(g, n, -1.0f, 1.0f, 5);
    qt_test_fill_uniform(m1, n, -0.1f, 0.1f, 6);
    qt_test_fill_uniform(v1, n, 0.0f, 0.01f, 7);
    for (size_t i = 0; i < n; i++) c1[i] = (int8_t)((int)(i % 3) - 1);
    memcpy(c2, c1, n);
    memcpy(m2, m1, n * sizeof(float));
    memcpy(v2, v1, n * sizeof(float));
    const qt_dqt_params dp = dqt_params();
    qt_dqt_stats s1, s2;
    QT_EXPECT_OK(qt_cpu_dqt_step(&dp, c1, g, m1, v1, n, &s1));
    ck_assert_msg(be.ops->dqt_step(be.ctx, &dp, c2, g, m2, v2, n, &s2) == QT_OK, "dqt_step: %s",
                  qt_last_error());
    ck_assert_msg(memcmp(c1, c2, n) == 0 && memcmp(m1, m2, n * sizeof(float)) == 0 &&
                      memcmp(v1, v2, n * sizeof(float)) == 0 && s1.abs_sum == s2.abs_sum &&
                      s1.max_abs_code == s2.max_abs_code,
                  "backend dqt_step differs from qt_cpu_dqt_step (n %zu)", n);
    qt_test_poison(o2, n);
    QT_EXPECT_OK(qt_cpu_dqt_dequant(o1, c1, 0.031f, n));
    ck_assert_int_eq(be.ops->dqt_dequant(be.ctx, o2, c2, 0.031f, n), QT_OK);
    ck_assert_msg(memcmp(o1, o2, n * sizeof(float)) == 0, "backend dqt_dequant differs");

    // bad params: an error, not an abort
    qt_dqt_params bad = dp;
    bad.adam.step = 0;
    ck_assert_int_eq(be.ops->dqt_step(be.ctx, &bad, c2, g, m2, v2, n, NULL), QT_ERR_ARG);
    bad = dp;
    bad.qmin = 1;
    ck_assert_int_eq(be.ops->dqt_step(be.ctx, &bad, c2, g, m2, v2, n, NULL), QT_ERR_ARG);
    bad = dp;
    bad.qmax = 128;
    ck_assert_int_eq(be.ops->dqt_step(be.ctx, &bad, c2, g, m2, v2, n, NULL), QT_ERR_ARG);
    bad = dp;
    bad.scale_out = 0.0f;
    ck_assert_int_eq(be.ops->dqt_step(be.ctx, &bad, c2, g, m2, v2, n, NULL), QT_ERR_ARG);
    bad = dp;
    bad.scale_in = NAN;
    ck_assert_int_eq(be.ops->dqt_step(be.ctx, &bad, c2, g, m2, v2, n, NULL), QT_ERR_ARG);
    ck_assert_int_eq(be.ops->dqt_step(be.ctx, NULL, c2, g, m2, v2, n, NULL), QT_ERR_ARG);
    ck_assert_int_eq(be.ops->dqt_step(be.ctx, &dp, NULL, g, m2, v2, n, NULL), QT_ERR_ARG);
    ck_assert_msg(memcmp(c1, c2, n) == 0, "a refused dqt_step wrote codes");
    s2.abs_sum = 1.0;
    s2.max_abs_code = 3;
    ck_assert_int_eq(be.ops->dqt_step(be.ctx, &dp, NULL, NULL, NULL, NULL, 0, &s2), QT_OK);
    ck_assert_msg(s2.abs_sum == 0.0 && s2.max_abs_code == 0, "n = 0: stats not zeroed");
    free(c1);
    free(c2);
    free(g);
    free(m1);
    free(v1);
    free(m2);
    free(v2);
    free(o1);
    free(o2);
    qt_backend_free(&be);
}
END_TEST

int main(void) {
    Suite *s = suite_create("backend_quant");
    TCase *tc = tcase_create("cpu");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_quant_fake_equals_library);
    tcase_add_test(tc, test_linear_s8_matches_fake_quant);
    tcase_add_test(tc, test_linear_s8_refusals);
    tcase_add_test(tc, test_dqt_entries_equal_library);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

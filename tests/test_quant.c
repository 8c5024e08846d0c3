// test_quant.c: the CPU quantizer (kernels/cpu/quant.c, kernels/quant.h) against the
// properties of PAPERS.md sections 5-9: nearest rounding lands on the grid and is idempotent,
// stochastic rounding is unbiased, per-row/per-group scales are absmax / Qp, asymmetric grids
// cover [min, max] with 0 exact, ternary absmean is BitNet's formula, the MSE search never
// loses to absmax, the percentile and running ranges follow their definitions, and
// dequantize(quantize(x)) is the fake quant bit for bit. Shapes and seeds are in the messages.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/quant_math.h"
#include "kernels/quant.h"
#include "expect_error.h"
#include "testutil.h"

static const int BITS[] = {QT_QUANT_TERNARY, 2, 3, 4, 5, 6, 7, 8};
#define N_BITS (int)(sizeof BITS / sizeof BITS[0])

static const qt_quant_granularity GRANS[] = {QT_QUANT_PER_TENSOR, QT_QUANT_PER_ROW,
                                             QT_QUANT_PER_GROUP};

// Slice of element (r, c) under p for a (rows, cols) tensor (the header's numbering).
static size_t slice_of(const qt_quant_params *p, size_t rows, size_t cols, size_t r, size_t c) {
    (void)rows;
    if (p->granularity == QT_QUANT_PER_TENSOR) return 0;
    if (p->granularity == QT_QUANT_PER_ROW) return r;
    const size_t gpr = (cols + p->group_size - 1) / p->group_size;
    return r * gpr + c / p->group_size;
}

static double sse(const float *a, const float *b, size_t n) {
    double e = 0.0;
    for (size_t i = 0; i < n; i++) e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return e;
}

// Nearest rounding: every output is (k) * step with k + zc an integer code in [qmin, qmax];
// requantizing the codes' values on the same grid gives the same codes (idempotent); and
// dequantize(quantize(x)) equals the fake quant bit for bit.
START_TEST(test_nearest_on_grid_idempotent) {
    const size_t rows = 7, cols = 37, n = rows * cols;
    float *x = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    float *deq = malloc(n * sizeof(float)), *scales = malloc(n * sizeof(float));
    int32_t *zeros = malloc(n * sizeof(int32_t));
    int8_t *codes = malloc(n);
    for (int bi = 0; bi < N_BITS; bi++)
        for (int sym = 0; sym <= 1; sym++)
            for (int gi = 0; gi < 3; gi++)
                for (int rnd = 0; rnd <= 1; rnd++) {
                    const int bits = BITS[bi];
                    if (bits == QT_QUANT_TERNARY && !sym) continue;
                    qt_quant_params p = qt_quant_params_default(bits);
                    p.symmetric = sym;
                    p.granularity = GRANS[gi];
                    p.group_size = 8;
                    p.rounding = rnd ? QT_QUANT_STOCHASTIC : QT_QUANT_NEAREST;
                    p.seed = 0x1234567890ull;
                    p.stream = qt_quant_stream(3, 11);
                    const uint64_t seed = 100u + (uint64_t)(bi * 10 + sym * 3 + gi);
                    qt_test_fill_uniform(x, n, sym ? -2.0f : -0.7f, 3.0f, seed);
                    qt_test_poison(out, n);
                    ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, out, x, rows, cols), QT_OK);
                    ck_assert_int_eq(
                        qt_cpu_quant_quantize(&p, NULL, codes, scales, zeros, x, rows, cols),
                        QT_OK);
                    ck_assert_int_eq(
                        qt_cpu_quant_dequantize(&p, deq, codes, scales, zeros, rows, cols),
                        QT_OK);
                    ck_assert_msg(memcmp(out, deq, n * sizeof(float)) == 0,
                                  "bits %d sym %d gran %d rnd %d seed %llu: dequantize(quantize)"
                                  " differs from fake quant",
                                  bits, sym, gi, rnd, (unsigned long long)seed);
                    const int qmin = qt_quant_qmin(bits), qmax = qt_quant_qmax(bits);
                    for (size_t r = 0; r < rows; r++)
                        for (size_t c = 0; c < cols; c++) {
                            const size_t i = r * cols + c, s = slice_of(&p, rows, cols, r, c);
                            const double k = (double)out[i] / scales[s];
                            const int zc = zeros[s];
                            ck_assert_msg(fabs(k - rint(k)) <= 1e-4 && rint(k) + zc >= qmin &&
                                              rint(k) + zc <= qmax && codes[i] - zc == rint(k),
                                          "bits %d sym %d gran %d rnd %d seed %llu (%zu, %zu): "
                                          "out/step = %.7g (zc %d) is not a code",
                                          bits, sym, gi, rnd, (unsigned long long)seed, r, c, k,
                                          zc);
                            // idempotent on the same grid
                            const int again = qt_quant_code(out[i], scales[s], zc, qmin, qmax,
                                                            0, 0.0f);
                            ck_assert_msg(again == codes[i],
                                          "bits %d sym %d gran %d seed %llu (%zu, %zu): code %d "
                                          "requantizes to %d",
                                          bits, sym, gi, (unsigned long long)seed, r, c,
                                          codes[i], again);
                        }
                    if (sym && !rnd) { // a fresh absmax grid on out: the same values
                        ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, deq, out, rows, cols),
                                         QT_OK);
                        double err = qt_test_max_err(deq, out, n, 1e-12, 1e-6);
                        ck_assert_msg(err <= 1.0,
                                      "bits %d gran %d seed %llu: fake(fake(x)) != fake(x), "
                                      "err %g",
                                      bits, gi, (unsigned long long)seed, err);
                    }
                }
    free(x);
    free(out);
    free(deq);
    free(scales);
    free(zeros);
    free(codes);
}
END_TEST

// E[SR(x)] = x: for each bit width, the mean of N draws (streams qt_quant_stream(k, 7)) of
// SR(x) is within 3 standard errors of x, for x at several fractions of the step.
START_TEST(test_stochastic_unbiased) {
    enum { NX = 9, DRAWS = 4000 };
    const float xs[NX] = {1.0f, 0.0f, 0.013f, -0.21f, 0.377f, -0.5f, 0.61f, -0.9899f, 0.25f};
    float out[NX];
    for (int bi = 0; bi < N_BITS; bi++) {
        qt_quant_params p = qt_quant_params_default(BITS[bi]);
        p.rounding = QT_QUANT_STOCHASTIC;
        p.seed = 0xFEEDFACECAFEull;
        double sum[NX] = {0}, sum2[NX] = {0};
        for (int k = 0; k < DRAWS; k++) {
            p.stream = qt_quant_stream((uint64_t)k, 7);
            ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, out, xs, 1, NX), QT_OK);
            for (int j = 0; j < NX; j++) {
                sum[j] += out[j];
                sum2[j] += (double)out[j] * out[j];
            }
        }
        for (int j = 0; j < NX; j++) {
            const double mean = sum[j] / DRAWS;
            const double var = sum2[j] / DRAWS - mean * mean;
            const double se = sqrt(var > 0 ? var / (DRAWS - 1) : 0.0);
            ck_assert_msg(fabs(mean - xs[j]) <= 3.0 * se + 1e-6,
                          "bits %d x %g: mean of %d SR draws %.7g, 3 SE = %.3g", BITS[bi],
                          (double)xs[j], DRAWS, mean, 3 * se);
        }
    }
}
END_TEST

// Per-row and per-group scales are exactly max(absmax, floor) / Qp of their slice (a zero row
// takes the floor); per-tensor likewise.
START_TEST(test_scales_absmax) {
    const size_t rows = 5, cols = 29, n = rows * cols;
    float x[5 * 29], scales[5 * 29];
    int8_t codes[5 * 29];
    qt_test_fill_uniform(x, n, -4.0f, 4.0f, 77);
    for (size_t c = 0; c < cols; c++) x[2 * cols + c] = 0.0f; // a zero row
    for (int bi = 0; bi < N_BITS; bi++)
        for (int gi = 0; gi < 3; gi++) {
            qt_quant_params p = qt_quant_params_default(BITS[bi]);
            p.granularity = GRANS[gi];
            p.group_size = 6;
            const size_t ns = qt_quant_num_scales(&p, rows, cols);
            ck_assert_uint_eq(ns, gi == 0 ? 1 : gi == 1 ? rows : rows * 5);
            ck_assert_int_eq(qt_cpu_quant_quantize(&p, NULL, codes, scales, NULL, x, rows, cols),
                             QT_OK);
            float want[5 * 29];
            for (size_t s = 0; s < ns; s++) want[s] = 0.0f;
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < cols; c++) {
                    const size_t s = slice_of(&p, rows, cols, r, c);
                    want[s] = fmaxf(want[s], fabsf(x[r * cols + c]));
                }
            for (size_t s = 0; s < ns; s++) {
                const float w = fmaxf(want[s], 1e-5f) / (float)qt_quant_qmax(BITS[bi]);
                ck_assert_msg(scales[s] == w, "bits %d gran %d (5, 29) slice %zu: scale %.9g, "
                              "want absmax/Qp %.9g", BITS[bi], gi, s, scales[s], w);
            }
        }
}
END_TEST

// Asymmetric: the grid covers [min, max] (every x within step/2 of its value), 0 maps to 0
// exactly, and codes span [qmin, qmax] with the zero point inside.
START_TEST(test_asymmetric_covers_range) {
    const size_t rows = 4, cols = 50, n = rows * cols;
    float x[200], out[200], scales[200];
    int32_t zeros[200];
    int8_t codes[200];
    const float ranges[3][2] = {{0.3f, 2.7f}, {-3.0f, 1.2f}, {-5.0f, -0.5f}};
    for (int ri = 0; ri < 3; ri++)
        for (int bits = 2; bits <= 8; bits++)
            for (int gi = 0; gi < 3; gi++) {
                qt_quant_params p = qt_quant_params_default(bits);
                p.symmetric = 0;
                p.granularity = GRANS[gi];
                p.group_size = 16;
                qt_test_fill_uniform(x, n, ranges[ri][0], ranges[ri][1], 5u + (uint64_t)ri);
                x[17] = 0.0f;
                ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, out, x, rows, cols), QT_OK);
                ck_assert_int_eq(
                    qt_cpu_quant_quantize(&p, NULL, codes, scales, zeros, x, rows, cols), QT_OK);
                ck_assert_msg(out[17] == 0.0f, "bits %d range %d gran %d: 0 -> %g", bits, ri, gi,
                              (double)out[17]);
                for (size_t r = 0; r < rows; r++)
                    for (size_t c = 0; c < cols; c++) {
                        const size_t i = r * cols + c, s = slice_of(&p, rows, cols, r, c);
                        const double e = fabs((double)out[i] - x[i]);
                        ck_assert_msg(e <= 0.5 * scales[s] * (1 + 1e-4),
                                      "bits %d range %d gran %d (%zu, %zu): |%g - %g| > step/2 "
                                      "%g",
                                      bits, ri, gi, r, c, (double)out[i], (double)x[i],
                                      0.5 * scales[s]);
                        ck_assert(zeros[s] >= qt_quant_qmin(bits) &&
                                  zeros[s] <= qt_quant_qmax(bits));
                    }
            }
}
END_TEST

// Ternary absmean is BitNet b1.58: gamma = mean|W|, W~ = RoundClip(W / (gamma + eps), -1, 1),
// dequantized W~ (gamma + eps); per tensor and per row.
START_TEST(test_ternary_absmean_bitnet) {
    const size_t rows = 6, cols = 41, n = rows * cols;
    float w[246], out[246], scales[246];
    int8_t codes[246];
    qt_test_fill_uniform(w, n, -0.05f, 0.05f, 31);
    for (int gi = 0; gi < 2; gi++) {
        qt_quant_params p = qt_quant_params_default(QT_QUANT_TERNARY);
        p.range = QT_QUANT_RANGE_ABSMEAN;
        p.granularity = GRANS[gi];
        ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, out, w, rows, cols), QT_OK);
        ck_assert_int_eq(qt_cpu_quant_quantize(&p, NULL, codes, scales, NULL, w, rows, cols),
                         QT_OK);
        const size_t nr = gi == 0 ? 1 : rows, len = n / nr;
        for (size_t r = 0; r < nr; r++) {
            double gamma = 0.0;
            for (size_t j = 0; j < len; j++) gamma += fabs(w[r * len + j]);
            gamma /= (double)len;
            const double s = gamma + 1e-5;
            ck_assert_msg(fabs(scales[r] - s) <= 1e-6 * s,
                          "gran %d (6, 41) slice %zu: scale %.9g, want gamma + eps %.9g", gi, r,
                          (double)scales[r], s);
            for (size_t j = 0; j < len; j++) {
                double q = rint(w[r * len + j] / s);
                q = q < -1 ? -1 : q > 1 ? 1 : q;
                ck_assert_msg(codes[r * len + j] == (int)q &&
                                  fabs(out[r * len + j] - q * s) <= 1e-6 * s,
                              "gran %d element %zu: code %d out %g, want %g (%g)", gi,
                              r * len + j, codes[r * len + j], (double)out[r * len + j], q,
                              q * s);
            }
        }
    }
}
END_TEST

// The MSE grid search never has a larger squared error than absmax (its 100th candidate), and
// with an outlier at 4 bits it is strictly better.
START_TEST(test_mse_beats_absmax) {
    const size_t rows = 3, cols = 200, n = rows * cols;
    float x[600], a[600], m[600];
    for (int bits = 2; bits <= 8; bits += 2)
        for (int sym = 0; sym <= 1; sym++)
            for (int gi = 0; gi < 3; gi++) {
                qt_test_fill_uniform(x, n, -1.0f, 1.0f, 900u + (uint64_t)bits);
                for (size_t i = 0; i < n; i++) x[i] = x[i] * x[i] * x[i]; // heavier centre
                x[5] = 12.0f;                                                // an outlier
                qt_quant_params p = qt_quant_params_default(bits);
                p.symmetric = sym;
                p.granularity = GRANS[gi];
                p.group_size = 64;
                ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, a, x, rows, cols), QT_OK);
                p.range = QT_QUANT_RANGE_MSE;
                ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, m, x, rows, cols), QT_OK);
                const double ea = sse(a, x, n), em = sse(m, x, n);
                ck_assert_msg(em <= ea, "bits %d sym %d gran %d (3, 200): MSE search error %g > "
                              "absmax error %g", bits, sym, gi, em, ea);
                if (bits == 4)
                    ck_assert_msg(em < ea, "bits 4 sym %d gran %d: MSE search %g not "
                                  "below absmax %g with an outlier", sym, gi, em, ea);
            }
}
END_TEST

// Percentile: nearest rank of |x| (symmetric) or both tails (asymmetric).
START_TEST(test_percentile) {
    enum { N = 1000 };
    float x[N], scales[1];
    int32_t zeros[1];
    int8_t codes[N];
    for (int i = 0; i < N; i++) x[i] = (float)((i * 379) % N + 1) * ((i & 1) ? -1.0f : 1.0f);
    qt_quant_params p = qt_quant_params_default(8);
    p.range = QT_QUANT_RANGE_PERCENTILE;
    p.percentile = 90.0f; // |x| = 1..1000: the 900th smallest is 900
    ck_assert_int_eq(qt_cpu_quant_quantize(&p, NULL, codes, scales, zeros, x, 1, N), QT_OK);
    ck_assert_msg(scales[0] == 900.0f / 127.0f, "percentile 90 of 1..1000: scale %.9g",
                  (double)scales[0]);
    p.percentile = 100.0f;
    ck_assert_int_eq(qt_cpu_quant_quantize(&p, NULL, codes, scales, zeros, x, 1, N), QT_OK);
    ck_assert(scales[0] == 1000.0f / 127.0f);
    // asymmetric on x = 1..1000 (all positive): hi = 900, lo widened to 0
    for (int i = 0; i < N; i++) x[i] = fabsf(x[i]);
    p.symmetric = 0;
    p.percentile = 90.0f;
    ck_assert_int_eq(qt_cpu_quant_quantize(&p, NULL, codes, scales, zeros, x, 1, N), QT_OK);
    ck_assert_msg(scales[0] == 900.0f / 255.0f && zeros[0] == -128,
                  "asym percentile: scale %.9g zc %d", (double)scales[0], zeros[0]);
}
END_TEST

// Running min-max: the first call initialises, later ones blend with momentum 0.9.
START_TEST(test_running_minmax) {
    float x[4] = {-1.0f, 2.0f, 0.5f, 0.0f}, y[4] = {-3.0f, 1.0f, 0.0f, 0.25f}, out[4];
    float scales[1];
    int32_t zeros[1];
    int8_t codes[4];
    qt_quant_params p = qt_quant_params_default(8);
    p.symmetric = 0;
    p.range = QT_QUANT_RANGE_RUNNING;
    qt_quant_running st = {0};
    ck_assert_int_eq(qt_cpu_quant_fake(&p, &st, out, x, 2, 2), QT_OK);
    ck_assert(st.initialized && st.lo == -1.0f && st.hi == 2.0f);
    ck_assert_int_eq(qt_cpu_quant_quantize(&p, &st, codes, scales, zeros, y, 2, 2), QT_OK);
    const float lo = 0.9f * -1.0f + 0.1f * -3.0f, hi = 0.9f * 2.0f + 0.1f * 1.0f;
    ck_assert_msg(st.lo == lo && st.hi == hi, "running: lo %g hi %g, want %g %g", (double)st.lo,
                  (double)st.hi, (double)lo, (double)hi);
    int zc;
    const float step = qt_quant_asym_step(lo, hi, 1e-5f, 8, &zc);
    ck_assert(scales[0] == step && zeros[0] == zc);
    ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, out, x, 2, 2), QT_ERR_ARG); // no state
}
END_TEST

// Fixed range: the calibrated state is used as given and never updated; it equals the grid
// of the same [lo, hi] (asym) or max(|lo|, |hi|) (sym); values outside it clamp; an absent or
// uninitialized state is an error naming the fix.
START_TEST(test_fixed_range) {
    float x[6] = {-4.0f, 2.0f, 0.5f, 0.0f, 9.0f, -0.3f}, out[6], scales[1];
    int32_t zeros[1];
    int8_t codes[6];
    const int bits_list[2] = {8, 6};
    for (int bi = 0; bi < 2; bi++)
        for (int sym = 0; sym <= 1; sym++) {
            const int bits = bits_list[bi];
            qt_quant_params p = qt_quant_params_default(bits);
            p.symmetric = sym;
            p.range = QT_QUANT_RANGE_FIXED;
            qt_quant_running st = {.lo = -1.5f, .hi = 3.0f, .initialized = 1};
            ck_assert_int_eq(qt_cpu_quant_quantize(&p, &st, codes, scales, zeros, x, 2, 3),
                             QT_OK);
            ck_assert_msg(st.lo == -1.5f && st.hi == 3.0f && st.initialized == 1,
                          "fixed bits %d sym %d: state changed to [%g, %g]", bits, sym,
                          (double)st.lo, (double)st.hi);
            int zc = 0;
            const float step = sym ? qt_quant_sym_step(3.0f, 1e-5f, bits)
                                   : qt_quant_asym_step(-1.5f, 3.0f, 1e-5f, bits, &zc);
            ck_assert_msg(scales[0] == step && zeros[0] == zc,
                          "fixed bits %d sym %d: step %.9g zc %d, want %.9g %d", bits, sym,
                          (double)scales[0], zeros[0], (double)step, zc);
            const int qmin = qt_quant_qmin(bits), qmax = qt_quant_qmax(bits);
            ck_assert_int_eq(qt_cpu_quant_fake(&p, &st, out, x, 2, 3), QT_OK);
            for (int i = 0; i < 6; i++) {
                const int want = qt_quant_code(x[i], step, zc, qmin, qmax, 0, 0.0f);
                ck_assert_msg(codes[i] == want && out[i] == qt_quant_dequant(want, step, zc),
                              "fixed bits %d sym %d element %d: code %d out %g, want %d", bits,
                              sym, i, codes[i], (double)out[i], want);
            }
            // 9 is outside [-1.5, 3]: clamps to the top code
            ck_assert_int_eq(codes[4], qmax);
            // a second tensor with another range leaves the grid unchanged
            float y[2] = {-100.0f, 100.0f};
            ck_assert_int_eq(qt_cpu_quant_quantize(&p, &st, codes, scales, zeros, y, 1, 2),
                             QT_OK);
            ck_assert(scales[0] == step && zeros[0] == zc && st.lo == -1.5f && st.hi == 3.0f);
        }
    qt_quant_params p = qt_quant_params_default(8);
    p.symmetric = 0;
    p.range = QT_QUANT_RANGE_FIXED;
    ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, out, x, 2, 3), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "calibrate"));
    qt_quant_running fresh = {0};
    ck_assert_int_eq(qt_cpu_quant_fake(&p, &fresh, out, x, 2, 3), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "initialized"));
    qt_quant_running bad = {.lo = 2.0f, .hi = 1.0f, .initialized = 1};
    ck_assert_int_eq(qt_cpu_quant_fake(&p, &bad, out, x, 2, 3), QT_ERR_ARG);
    qt_quant_running ok = {.lo = -1.0f, .hi = 1.0f, .initialized = 1};
    p.granularity = QT_QUANT_PER_ROW;
    ck_assert_int_eq(qt_cpu_quant_fake(&p, &ok, out, x, 2, 3), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "per tensor"));
}
END_TEST

// A tensor large enough for the parallel, chunked code pass (runs of a slice crossing chunk
// boundaries): every code equals the per-element formula on the returned grid.
START_TEST(test_large_matches_elementwise) {
    const size_t rows = 5, cols = 4001, n = rows * cols;
    float *x = malloc(n * sizeof(float)), *scales = malloc(n * sizeof(float));
    int32_t *zeros = malloc(n * sizeof(int32_t));
    int8_t *codes = malloc(n);
    qt_test_fill_uniform(x, n, -1.0f, 3.0f, 4242);
    for (int gi = 0; gi < 3; gi++) {
        qt_quant_params p = qt_quant_params_default(6);
        p.symmetric = gi != 1;
        p.granularity = GRANS[gi];
        p.group_size = 7;
        p.rounding = QT_QUANT_STOCHASTIC;
        p.seed = 99;
        p.stream = qt_quant_stream(1, 2);
        ck_assert_int_eq(qt_cpu_quant_quantize(&p, NULL, codes, scales, zeros, x, rows, cols),
                         QT_OK);
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) {
                const size_t i = r * cols + c, s = slice_of(&p, rows, cols, r, c);
                const int want = qt_quant_code(x[i], scales[s], zeros[s], -32, 31, 1,
                                               qt_philox_uniform(99, p.stream, i));
                ck_assert_msg(codes[i] == want, "gran %d (5, 4001) group 7 element %zu: code %d, "
                              "want %d", gi, i, codes[i], want);
            }
    }
    free(x);
    free(scales);
    free(zeros);
    free(codes);
}
END_TEST

// qt_quant_uniform (registers-only word select) draws qt_philox_uniform's bits exactly.
START_TEST(test_uniform_is_philox) {
    for (uint64_t i = 0; i < 4099; i++) {
        const uint64_t seed = 0x9E3779B97F4A7C15ull * (i % 5), stream = qt_quant_stream(i % 3, 9);
        const uint64_t idx = i * 0x10001ull + (i % 7);
        ck_assert_msg(qt_quant_uniform(seed, stream, idx) == qt_philox_uniform(seed, stream, idx),
                      "index %llu: qt_quant_uniform differs from qt_philox_uniform",
                      (unsigned long long)idx);
    }
}
END_TEST

// The INT8 GEMM's epilogue takes one scale per row of each operand and no zero point: 8-bit,
// symmetric, nearest, per tensor or per row, absmax or absmean; anything else is refused.
START_TEST(test_s8_gemm_able) {
    qt_quant_params p = qt_quant_params_default(8);
    ck_assert(qt_quant_is_s8_gemm_able(&p));
    p.granularity = QT_QUANT_PER_ROW;
    p.range = QT_QUANT_RANGE_ABSMEAN;
    ck_assert(qt_quant_is_s8_gemm_able(&p));
    ck_assert(!qt_quant_is_s8_gemm_able(NULL));
    qt_quant_params bad[6];
    for (int i = 0; i < 6; i++) bad[i] = qt_quant_params_default(8);
    bad[0].bits = 7;
    bad[1].bits = QT_QUANT_TERNARY;
    bad[2].symmetric = 0;
    bad[3].rounding = QT_QUANT_STOCHASTIC;
    bad[4].granularity = QT_QUANT_PER_GROUP;
    bad[4].group_size = 32;
    bad[5].range = QT_QUANT_RANGE_MSE;
    for (int i = 0; i < 6; i++)
        ck_assert_msg(!qt_quant_is_s8_gemm_able(&bad[i]), "case %d accepted", i);
}
END_TEST

// SwitchBack's INT8 dX takes G per token and W per tensor, both 8-bit symmetric nearest: the
// check both backends run names the op and refuses every other pair, and empty shapes.
START_TEST(test_s8_dx_check) {
    qt_quant_params g = qt_quant_params_default(8), w = qt_quant_params_default(8);
    g.granularity = QT_QUANT_PER_ROW;
    ck_assert_int_eq(qt_quant_check_s8_dx("dx op", &g, &w, 3, 5, 7), QT_OK);
    qt_quant_params w_row = w, g_tensor = g, g_sr = g;
    w_row.granularity = QT_QUANT_PER_ROW; // a per-channel W scale would sit inside the sum
    g_tensor.granularity = QT_QUANT_PER_TENSOR;
    g_sr.rounding = QT_QUANT_STOCHASTIC;
    ck_assert_int_eq(qt_quant_check_s8_dx("dx op", &g, &w_row, 3, 5, 7), QT_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "dx op"));
    ck_assert_int_eq(qt_quant_check_s8_dx("dx op", &g_tensor, &w, 3, 5, 7), QT_ERR_UNSUPPORTED);
    ck_assert_int_eq(qt_quant_check_s8_dx("dx op", &g_sr, &w, 3, 5, 7), QT_ERR_UNSUPPORTED);
    ck_assert_int_eq(qt_quant_check_s8_dx("dx op", NULL, &w, 3, 5, 7), QT_ERR_UNSUPPORTED);
    ck_assert_int_eq(qt_quant_check_s8_dx("dx op", &g, &w, 0, 5, 7), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "dx op"));
    ck_assert_int_eq(qt_quant_check_s8_dx("dx op", &g, &w, 3, 0, 7), QT_ERR_ARG);
    ck_assert_int_eq(qt_quant_check_s8_dx("dx op", &g, &w, 3, 5, -1), QT_ERR_ARG);
}
END_TEST

START_TEST(test_bad_args) {
    float x[4] = {0};
    float *out = qt_test_guarded(sizeof x);
#define UNTOUCHED qt_test_untouched(out, sizeof x)
    qt_quant_params p = qt_quant_params_default(9);
    QT_EXPECT_REFUSED(qt_cpu_quant_fake(&p, NULL, out, x, 2, 2), "bits", UNTOUCHED);
    p = qt_quant_params_default(4);
    p.granularity = QT_QUANT_PER_GROUP;
    QT_EXPECT_REFUSED(qt_cpu_quant_fake(&p, NULL, out, x, 2, 2), "group_size", UNTOUCHED);
    p = qt_quant_params_default(QT_QUANT_TERNARY);
    p.symmetric = 0;
    QT_EXPECT_REFUSED(qt_cpu_quant_fake(&p, NULL, out, x, 2, 2), "quant", UNTOUCHED);
    p = qt_quant_params_default(4);
    p.floor = 0.0f;
    QT_EXPECT_REFUSED(qt_cpu_quant_fake(&p, NULL, out, x, 2, 2), "quant", UNTOUCHED);
    p = qt_quant_params_default(4);
    p.symmetric = 0;
    p.range = QT_QUANT_RANGE_ABSMEAN;
    QT_EXPECT_REFUSED(qt_cpu_quant_fake(&p, NULL, out, x, 2, 2), "quant", UNTOUCHED);
    p = qt_quant_params_default(4);
    QT_EXPECT_REFUSED(qt_cpu_quant_fake(&p, NULL, out, NULL, 2, 2), "quant", UNTOUCHED);
    QT_EXPECT_REFUSED(qt_cpu_quant_fake(NULL, NULL, out, x, 2, 2), "quant", UNTOUCHED);
#undef UNTOUCHED
    ck_assert_int_eq(qt_cpu_quant_fake(&p, NULL, out, x, 0, 2), QT_OK); // empty: nothing
    free(out);
}
END_TEST

// qt_cpu_quant_fake_ws (the per-slice grids in the caller's scratch) gives the values of
// qt_cpu_quant_fake bit for bit, and leaves in its scratch the steps and zero points that
// qt_cpu_quant_quantize computes, for every granularity, both roundings and an asymmetric grid.
START_TEST(test_fake_scratch_equals_fake) {
    const size_t rows = 7, cols = 45, n = rows * cols;
    float *x = qt_test_falloc(n), *want = qt_test_falloc(n), *got = qt_test_falloc(n);
    qt_test_fill_uniform(x, n, -3.0f, 2.0f, 77);
    for (int gran = 0; gran < 3; gran++)
        for (int mode = 0; mode < 3; mode++) {
            qt_quant_params p = qt_quant_params_default(mode == 2 ? 6 : 4);
            p.granularity = (qt_quant_granularity)gran;
            p.group_size = 16;
            p.rounding = mode == 1 ? QT_QUANT_STOCHASTIC : QT_QUANT_NEAREST;
            p.symmetric = mode != 2;
            p.seed = 5;
            p.stream = 9;
            const size_t ns = qt_quant_num_scales(&p, rows, cols);
            float *sc = qt_test_falloc(ns), *sq = qt_test_falloc(ns);
            int32_t *zc = malloc(ns * sizeof(int32_t)), *zq = malloc(ns * sizeof(int32_t));
            int8_t *codes = malloc(n);
            QT_EXPECT_OK(qt_cpu_quant_fake(&p, NULL, want, x, rows, cols));
            qt_test_poison(got, n);
            QT_EXPECT_OK(qt_cpu_quant_fake_ws(&p, NULL, got, x, rows, cols, sc, zc));
            QT_EXPECT_OK(qt_cpu_quant_quantize(&p, NULL, codes, sq, zq, x, rows, cols));
            ck_assert_msg(memcmp(got, want, n * sizeof(float)) == 0 &&
                              memcmp(sc, sq, ns * sizeof(float)) == 0 &&
                              memcmp(zc, zq, ns * sizeof(int32_t)) == 0,
                          "quant_fake_ws granularity %d mode %d differs from quant_fake", gran,
                          mode);
            QT_TEST_FREE_ALL(sc, sq, zc, zq, codes);
        }
    QT_TEST_FREE_ALL(x, want, got);
}
END_TEST

int main(void) {
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_nearest_on_grid_idempotent);
    tcase_add_test(tc, test_stochastic_unbiased);
    tcase_add_test(tc, test_scales_absmax);
    tcase_add_test(tc, test_asymmetric_covers_range);
    tcase_add_test(tc, test_ternary_absmean_bitnet);
    tcase_add_test(tc, test_mse_beats_absmax);
    tcase_add_test(tc, test_percentile);
    tcase_add_test(tc, test_running_minmax);
    tcase_add_test(tc, test_fixed_range);
    tcase_add_test(tc, test_large_matches_elementwise);
    tcase_add_test(tc, test_uniform_is_philox);
    tcase_add_test(tc, test_s8_gemm_able);
    tcase_add_test(tc, test_s8_dx_check);
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_fake_scratch_equals_fake);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

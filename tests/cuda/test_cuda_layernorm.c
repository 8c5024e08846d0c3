// test_cuda_layernorm.c: kernels/cuda/layernorm.cu against the CPU reference
// (qt_cpu_layernorm_{fwd,bwd}, qt_cpu_layernorm_residual_{fwd,bwd}) on random inputs of odd
// shapes, in fp32, fp16 and bf16, with outputs poisoned (NaN) and guard bands checked.
// Inputs are rounded to the dtype first, so the reference sees exactly what the kernel reads;
// the remaining differences are the fp32 summation order and the final rounding to the dtype.
// Tolerances (err <= atol + rtol |ref|): qt_ct_tolerance (fp32 1e-6 + 1e-5 relative; fp16
// 1e-3 + 4e-3; bf16 1e-2 + 3e-2); the fp32 statistics (mean, rstd) of fp16/bf16 inputs use the
// fp32 tolerance, being fp32 math on exact inputs. The fp32 LayerNorm output sums terms of size
// up to ~5 ((x - mean) rstd w and b), whose roundings a 1e-6 floor barely covers where they
// cancel: its atol is OUT_ATOL_F32. The dw/db column sums over rows get atol scaled by sqrt(N)
// (sums of N random-sign terms of size ~1). The dw/db sums run without a scratch (one block per
// 32 columns) and with one (the rows split into slices, common.cuh's qt_colsum_finish): shapes
// of 300 x 45 (4 slices) and 1000 x 70 (15 slices), within the same tolerances.
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_testutil.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/layernorm.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
// (N, C): single row and column, below, above and far from the warp size, several blocks of
// rows with a partial last block.
static const int SHAPES[][2] = {{1, 1}, {1, 31}, {3, 33}, {5, 1027}, {33, 64}, {7, 32}, {70, 95}};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))
#define OUT_ATOL_F32 4e-6

// The split column sums' scratch, made once: NULL unless `split`.
static void *colsum_scratch(int split) {
    static void *scratch;
    if (!split) return NULL;
    if (!scratch) {
        ck_assert_int_eq(cudaMalloc(&scratch, qt_cuda_colsum_scratch_bytes()), cudaSuccess);
        ck_assert_int_eq(qt_cuda_colsum_scratch_init(NULL, scratch), QT_OK);
    }
    return scratch;
}

START_TEST(test_layernorm_fwd) {
    for (int d = 0; d < 3; d++) {
        const qt_dtype dt = DTYPES[d];
        double atol, rtol, fatol, frtol;
        qt_ct_tolerance(dt, &atol, &rtol);
        qt_ct_tolerance(QT_DTYPE_F32, &fatol, &frtol);
        if (dt == QT_DTYPE_F32) atol = OUT_ATOL_F32;
        for (int s = 0; s < NSHAPES; s++) {
            const int N = SHAPES[s][0], C = SHAPES[s][1];
            const uint64_t seed = 100 + 10 * (uint64_t)s + (uint64_t)d;
            const size_t nc = (size_t)N * C;
            // an offset mean: the two-pass variance must not cancel
            float *x = qt_ct_rand_rounded(dt, nc, 1.0f, 5.0f, seed);
            float *w = qt_ct_rand_rounded(dt, C, 0.5f, 1.5f, seed + 1);
            float *b = qt_ct_rand_rounded(dt, C, -0.5f, 0.5f, seed + 2);
            float *out = malloc(nc * sizeof *out), *mean = malloc(N * sizeof *mean);
            float *rstd = malloc(N * sizeof *rstd);
            qt_cpu_layernorm_fwd(out, mean, rstd, x, w, b, N, C);

            void *dx = qt_ct_upload(dt, x, nc), *dw = qt_ct_upload(dt, w, C);
            void *db = qt_ct_upload(dt, b, C), *dout = qt_ct_alloc(dt, nc);
            void *dmean = qt_ct_alloc(QT_DTYPE_F32, N), *drstd = qt_ct_alloc(QT_DTYPE_F32, N);
            qt_status st = qt_cuda_layernorm_fwd(NULL, dt, dout, dmean, drstd, dx, dw, db, N, C);
            ck_assert_msg(st == QT_OK, "layernorm_fwd %s N=%d C=%d: %s", qt_dtype_name(dt), N, C,
                          qt_last_error());
            const double eo = qt_ct_dev_err(dt, dout, out, nc, atol, rtol);
            const double em = qt_ct_dev_err(QT_DTYPE_F32, dmean, mean, N, fatol, frtol);
            const double er = qt_ct_dev_err(QT_DTYPE_F32, drstd, rstd, N, fatol, frtol);
            ck_assert_msg(eo <= 1.0 && em <= 1.0 && er <= 1.0,
                          "layernorm_fwd %s N=%d C=%d seed=%llu: err out %g mean %g rstd %g",
                          qt_dtype_name(dt), N, C, (unsigned long long)seed, eo, em, er);
            ck_assert_msg(qt_ct_guard_ok(dt, dout, nc) && qt_ct_guard_ok(QT_DTYPE_F32, dmean, N) &&
                              qt_ct_guard_ok(QT_DTYPE_F32, drstd, N),
                          "layernorm_fwd %s N=%d C=%d: guard band overwritten", qt_dtype_name(dt),
                          N, C);
            qt_ct_free(dx);
            qt_ct_free(dw);
            qt_ct_free(db);
            qt_ct_free(dout);
            qt_ct_free(dmean);
            qt_ct_free(drstd);
            free(x);
            free(w);
            free(b);
            free(out);
            free(mean);
            free(rstd);
        }
    }
}
END_TEST

// layernorm_residual_fwd against qt_cpu_layernorm_residual_fwd. alias: 0 separate resid,
// 1 resid is x, 2 resid is branch. With prob > 0 a wrong mask moves resid by a whole branch
// value (~1), far outside the tolerances.
static void check_residual_fwd(qt_dtype dt, int N, int C, int alias, float prob, uint64_t seed) {
    double atol, rtol, fatol, frtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    qt_ct_tolerance(QT_DTYPE_F32, &fatol, &frtol);
    if (dt == QT_DTYPE_F32) atol = OUT_ATOL_F32;
    const size_t nc = (size_t)N * C;
    const uint64_t dseed = seed * 7 + 1, stream = seed + 11;
    float *x = qt_ct_rand_rounded(dt, nc, -2.0f, 2.0f, seed);
    float *br = qt_ct_rand_rounded(dt, nc, 0.0f, 3.0f, seed + 1);
    float *w = qt_ct_rand_rounded(dt, C, 0.5f, 1.5f, seed + 2);
    float *bias = qt_ct_rand_rounded(dt, C, -0.5f, 0.5f, seed + 3);
    float *resid = malloc(nc * sizeof *resid), *out = malloc(nc * sizeof *out);
    float *mean = malloc(N * sizeof *mean), *rstd = malloc(N * sizeof *rstd);
    // The reference: the composed ops with their dtype storage, which the kernel reproduces:
    // drop(branch) stored (rounded), x added and stored (rounded), the LayerNorm of that.
    // (test_layernorm checks that the CPU's fused op is this composition in fp32.)
    ck_assert_int_eq(qt_cpu_dropout_fwd(resid, br, nc, prob, dseed, stream), QT_OK);
    for (size_t i = 0; i < nc; i++)
        resid[i] = qt_ct_round(dt, qt_ct_round(dt, resid[i]) + x[i]);
    qt_cpu_layernorm_fwd(out, mean, rstd, resid, w, bias, N, C);

    void *dxv = qt_ct_upload(dt, x, nc), *dbr = qt_ct_upload(dt, br, nc);
    void *dw = qt_ct_upload(dt, w, C), *dbias = qt_ct_upload(dt, bias, C);
    void *dres = alias == 1 ? dxv : alias == 2 ? dbr : qt_ct_alloc(dt, nc);
    void *dout = qt_ct_alloc(dt, nc);
    void *dmean = qt_ct_alloc(QT_DTYPE_F32, N), *drstd = qt_ct_alloc(QT_DTYPE_F32, N);
    qt_status st = qt_cuda_layernorm_residual_fwd(NULL, dt, dres, dout, dmean, drstd, dxv, dbr,
                                                  dw, dbias, N, C, prob, dseed, stream);
    ck_assert_msg(st == QT_OK, "layernorm_residual_fwd %s N=%d C=%d alias=%d p=%g: %s",
                  qt_dtype_name(dt), N, C, alias, (double)prob, qt_last_error());
    // resid: the same roundings of the same values: equal up to the fp32 tolerance
    const double ers = qt_ct_dev_err(dt, dres, resid, nc, fatol, frtol);
    const double eo = qt_ct_dev_err(dt, dout, out, nc, atol, rtol);
    const double em = qt_ct_dev_err(QT_DTYPE_F32, dmean, mean, N, fatol, frtol);
    const double er = qt_ct_dev_err(QT_DTYPE_F32, drstd, rstd, N, fatol, frtol);
    ck_assert_msg(ers <= 1.0 && eo <= 1.0 && em <= 1.0 && er <= 1.0,
                  "layernorm_residual_fwd %s N=%d C=%d alias=%d p=%g seed=%llu: err resid %g "
                  "out %g mean %g rstd %g",
                  qt_dtype_name(dt), N, C, alias, (double)prob, (unsigned long long)seed, ers, eo,
                  em, er);
    ck_assert_msg(qt_ct_guard_ok(dt, dres, nc) && qt_ct_guard_ok(dt, dout, nc) &&
                      qt_ct_guard_ok(QT_DTYPE_F32, dmean, N) &&
                      qt_ct_guard_ok(QT_DTYPE_F32, drstd, N),
                  "layernorm_residual_fwd %s N=%d C=%d alias=%d: guard band overwritten",
                  qt_dtype_name(dt), N, C, alias);
    if (alias == 0) qt_ct_free(dres);
    void *bufs[] = {dxv, dbr, dw, dbias, dout, dmean, drstd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qt_ct_free(bufs[i]);
    float *hb[] = {x, br, w, bias, resid, out, mean, rstd};
    for (size_t i = 0; i < sizeof hb / sizeof hb[0]; i++) free(hb[i]);
}

START_TEST(test_layernorm_residual_fwd) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSHAPES; s++)
            for (int p = 0; p < 2; p++)
                check_residual_fwd(DTYPES[d], SHAPES[s][0], SHAPES[s][1], s % 3,
                                   p ? 0.25f : 0.0f, 200 + 10 * (uint64_t)s + (uint64_t)d);
    // every alias mode on one shape with a partial warp and a partial block of rows
    for (int alias = 0; alias < 3; alias++)
        check_residual_fwd(QT_DTYPE_F16, 5, 33, alias, 0.1f, 299);
    check_residual_fwd(QT_DTYPE_F32, 3, 17, 0, 1.0f, 298); // everything dropped: resid = x
}
END_TEST

// layernorm_residual_bwd against qt_cpu_layernorm_residual_bwd: dx (pre-filled, added to),
// dbranch (poisoned, written), dw and db when `with_dwdb` (else NULL).
static void check_residual_bwd(qt_dtype dt, int N, int C, float prob, int with_dwdb,
                               uint64_t seed, int split) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    const size_t nc = (size_t)N * C;
    const uint64_t dseed = seed * 5 + 3, stream = seed + 17;
    float *x = qt_ct_rand_rounded(dt, nc, -1.0f, 3.0f, seed);
    float *w = qt_ct_rand_rounded(dt, C, 0.5f, 1.5f, seed + 1);
    float *b = qt_ct_rand_rounded(dt, C, -0.5f, 0.5f, seed + 2);
    float *dout = qt_ct_rand_rounded(dt, nc, -1.0f, 1.0f, seed + 3);
    float *gx = qt_ct_rand_rounded(dt, nc, -1.0f, 1.0f, seed + 4);
    float *gw = qt_ct_rand_rounded(dt, C, -1.0f, 1.0f, seed + 5);
    float *gb = qt_ct_rand_rounded(dt, C, -1.0f, 1.0f, seed + 6);
    float *gbr = malloc(nc * sizeof *gbr), *out = malloc(nc * sizeof *out);
    float *mean = malloc(N * sizeof *mean), *rstd = malloc(N * sizeof *rstd);
    qt_cpu_layernorm_fwd(out, mean, rstd, x, w, b, N, C);

    void *ddx = qt_ct_upload(dt, gx, nc), *ddw = qt_ct_upload(dt, gw, C);
    void *ddb = qt_ct_upload(dt, gb, C), *ddout = qt_ct_upload(dt, dout, nc);
    void *dxv = qt_ct_upload(dt, x, nc), *dwv = qt_ct_upload(dt, w, C);
    void *ddbr = qt_ct_alloc(dt, nc);
    void *dmean = qt_ct_upload(QT_DTYPE_F32, mean, N);
    void *drstd = qt_ct_upload(QT_DTYPE_F32, rstd, N);
    ck_assert_int_eq(qt_cpu_layernorm_residual_bwd(gx, gbr, with_dwdb ? gw : NULL,
                                                   with_dwdb ? gb : NULL, dout, x, mean, rstd, w,
                                                   N, C, prob, dseed, stream),
                     QT_OK);
    qt_status st = qt_cuda_layernorm_residual_bwd(NULL, dt, ddx, ddbr, with_dwdb ? ddw : NULL,
                                                  with_dwdb ? ddb : NULL, ddout, dxv, dmean,
                                                  drstd, dwv, N, C, prob, dseed, stream,
                                                  colsum_scratch(split));
    ck_assert_msg(st == QT_OK, "layernorm_residual_bwd %s N=%d C=%d p=%g: %s", qt_dtype_name(dt),
                  N, C, (double)prob, qt_last_error());
    // as check_layernorm_bwd; dbranch is dx scaled by up to 1 / (1 - prob)
    const double catol = atol * sqrt((double)N), s = prob < 1.0f ? 1.0 / (1.0 - prob) : 1.0;
    double max_rstd = 1.0;
    for (int n = 0; n < N; n++) max_rstd = rstd[n] > max_rstd ? rstd[n] : max_rstd;
    const double ex = qt_ct_dev_err(dt, ddx, gx, nc, atol * max_rstd, rtol);
    const double ebr = qt_ct_dev_err(dt, ddbr, gbr, nc, atol * max_rstd * s, rtol);
    const double ew = qt_ct_dev_err(dt, ddw, gw, C, catol, rtol);
    const double eb = qt_ct_dev_err(dt, ddb, gb, C, catol, rtol);
    ck_assert_msg(ex <= 1.0 && ebr <= 1.0 && ew <= 1.0 && eb <= 1.0,
                  "layernorm_residual_bwd %s N=%d C=%d p=%g seed=%llu: err dx %g dbranch %g dw "
                  "%g db %g",
                  qt_dtype_name(dt), N, C, (double)prob, (unsigned long long)seed, ex, ebr, ew,
                  eb);
    ck_assert_msg(qt_ct_guard_ok(dt, ddx, nc) && qt_ct_guard_ok(dt, ddbr, nc) &&
                      qt_ct_guard_ok(dt, ddw, C) && qt_ct_guard_ok(dt, ddb, C),
                  "layernorm_residual_bwd %s N=%d C=%d: guard band overwritten",
                  qt_dtype_name(dt), N, C);
    void *bufs[] = {ddx, ddw, ddb, ddout, dxv, dwv, ddbr, dmean, drstd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qt_ct_free(bufs[i]);
    float *hb[] = {x, w, b, dout, gx, gw, gb, gbr, out, mean, rstd};
    for (size_t i = 0; i < sizeof hb / sizeof hb[0]; i++) free(hb[i]);
}

START_TEST(test_layernorm_residual_bwd) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSHAPES; s++)
            check_residual_bwd(DTYPES[d], SHAPES[s][0], SHAPES[s][1], s % 2 ? 0.2f : 0.0f,
                               s % 3 != 1, 500 + 10 * (uint64_t)s + (uint64_t)d, 0);
    for (int split = 0; split < 2; split++) {
        check_residual_bwd(QT_DTYPE_BF16, 300, 45, 0.1f, 1, 591, split);
        check_residual_bwd(QT_DTYPE_F16, 1000, 70, 0.0f, 1, 592, split);
    }
}
END_TEST

// which: bit 0 dx, bit 1 dw, bit 2 db wanted (the others passed as NULL).
static void check_layernorm_bwd(qt_dtype dt, int N, int C, int which, uint64_t seed,
                                int split) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    const size_t nc = (size_t)N * C;
    float *x = qt_ct_rand_rounded(dt, nc, -1.0f, 3.0f, seed);
    float *w = qt_ct_rand_rounded(dt, C, 0.5f, 1.5f, seed + 1);
    float *b = qt_ct_rand_rounded(dt, C, -0.5f, 0.5f, seed + 2);
    float *dout = qt_ct_rand_rounded(dt, nc, -1.0f, 1.0f, seed + 3);
    // pre-filled gradients: the backward must add to them
    float *gx = qt_ct_rand_rounded(dt, nc, -1.0f, 1.0f, seed + 4);
    float *gw = qt_ct_rand_rounded(dt, C, -1.0f, 1.0f, seed + 5);
    float *gb = qt_ct_rand_rounded(dt, C, -1.0f, 1.0f, seed + 6);
    float *out = malloc(nc * sizeof *out), *mean = malloc(N * sizeof *mean);
    float *rstd = malloc(N * sizeof *rstd);
    qt_cpu_layernorm_fwd(out, mean, rstd, x, w, b, N, C);

    void *ddx = qt_ct_upload(dt, gx, nc), *ddw = qt_ct_upload(dt, gw, C);
    void *ddb = qt_ct_upload(dt, gb, C), *ddout = qt_ct_upload(dt, dout, nc);
    void *dxv = qt_ct_upload(dt, x, nc), *dwv = qt_ct_upload(dt, w, C);
    void *dmean = qt_ct_upload(QT_DTYPE_F32, mean, N);
    void *drstd = qt_ct_upload(QT_DTYPE_F32, rstd, N);
    qt_cpu_layernorm_bwd(which & 1 ? gx : NULL, which & 2 ? gw : NULL, which & 4 ? gb : NULL,
                         dout, x, mean, rstd, w, N, C);
    qt_status st = qt_cuda_layernorm_bwd(NULL, dt, which & 1 ? ddx : NULL,
                                         which & 2 ? ddw : NULL, which & 4 ? ddb : NULL, ddout,
                                         dxv, dmean, drstd, dwv, N, C, colsum_scratch(split));
    ck_assert_msg(st == QT_OK, "layernorm_bwd %s N=%d C=%d: %s", qt_dtype_name(dt), N, C,
                  qt_last_error());
    // A column sum of N terms of size ~1 rounds like a value of size ~sqrt(N). dx is rstd times
    // a difference of terms of size ~|dout w| that may cancel (exactly, for a constant row): its
    // rounding error scales with rstd (1/sqrt(eps) = 316 when C = 1).
    const double catol = atol * sqrt((double)N);
    double max_rstd = 1.0;
    for (int n = 0; n < N; n++) max_rstd = rstd[n] > max_rstd ? rstd[n] : max_rstd;
    const double ex = qt_ct_dev_err(dt, ddx, gx, nc, atol * max_rstd, rtol);
    const double ew = qt_ct_dev_err(dt, ddw, gw, C, catol, rtol);
    const double eb = qt_ct_dev_err(dt, ddb, gb, C, catol, rtol);
    ck_assert_msg(ex <= 1.0 && ew <= 1.0 && eb <= 1.0,
                  "layernorm_bwd %s N=%d C=%d which=%d seed=%llu: err dx %g dw %g db %g",
                  qt_dtype_name(dt), N, C, which, (unsigned long long)seed, ex, ew, eb);
    ck_assert_msg(qt_ct_guard_ok(dt, ddx, nc) && qt_ct_guard_ok(dt, ddw, C) &&
                      qt_ct_guard_ok(dt, ddb, C),
                  "layernorm_bwd %s N=%d C=%d: guard band overwritten", qt_dtype_name(dt), N, C);
    void *bufs[] = {ddx, ddw, ddb, ddout, dxv, dwv, dmean, drstd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qt_ct_free(bufs[i]);
    float *hb[] = {x, w, b, dout, gx, gw, gb, out, mean, rstd};
    for (size_t i = 0; i < sizeof hb / sizeof hb[0]; i++) free(hb[i]);
}

START_TEST(test_layernorm_bwd) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSHAPES; s++)
            check_layernorm_bwd(DTYPES[d], SHAPES[s][0], SHAPES[s][1], 7,
                                300 + 10 * (uint64_t)s + (uint64_t)d, 0);
    // more rows than the dw/db kernel's row lanes, a partial column block; then the rows split
    for (int split = 0; split < 2; split++) {
        check_layernorm_bwd(QT_DTYPE_F32, 300, 45, 7, 391, split);
        check_layernorm_bwd(QT_DTYPE_BF16, 300, 45, 7, 392, split);
        check_layernorm_bwd(QT_DTYPE_F32, 1000, 70, 7, 393, split);
        check_layernorm_bwd(QT_DTYPE_F16, 1000, 70, 6, 394, split); // dw and db only
        check_layernorm_bwd(QT_DTYPE_F32, 1000, 70, 2, 395, split); // dw alone
    }
    // optional gradients: each alone (the others NULL stay untouched)
    for (int which = 1; which <= 4; which <<= 1)
        check_layernorm_bwd(QT_DTYPE_F32, 9, 37, which, 396 + (uint64_t)which, 0);
}
END_TEST

START_TEST(test_layernorm_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    float *f = buf;
    ck_assert_int_eq(qt_cuda_layernorm_fwd(NULL, QT_DTYPE_F32, buf, f, f, buf, buf, buf, 2, 0),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "layernorm_fwd"));
    ck_assert_int_eq(qt_cuda_layernorm_fwd(NULL, (qt_dtype)7, buf, f, f, buf, buf, buf, 2, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_layernorm_fwd(NULL, QT_DTYPE_F32, buf, f, f, NULL, buf, buf, 2, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_layernorm_bwd(NULL, QT_DTYPE_F16, buf, buf, buf, buf, buf, f, f,
                                           buf, -1, 4, NULL),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "layernorm_bwd"));
    ck_assert_int_eq(qt_cuda_layernorm_bwd(NULL, QT_DTYPE_F16, (char *)buf + 1, NULL, NULL, buf,
                                           buf, f, f, buf, 2, 4, NULL),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_layernorm_residual_fwd(NULL, QT_DTYPE_F32, buf, buf, f, f, buf,
                                                    buf, buf, buf, 2, 4, 0.1f, 1, 2),
                     QT_ERR_ARG); // out aliases resid
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "layernorm_residual_fwd"));
    ck_assert_int_eq(qt_cuda_layernorm_residual_bwd(NULL, QT_DTYPE_F32, buf, buf, NULL, NULL,
                                                    (char *)buf + 64, buf, f, f, buf, 2, 4, 0.1f,
                                                    1, 2, NULL),
                     QT_ERR_ARG); // dbranch aliases dx
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "dbranch"));
    char *c = buf;
    ck_assert_int_eq(qt_cuda_layernorm_fwd(NULL, QT_DTYPE_F32, c + 2, f, f, buf, buf, buf, 2, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_layernorm_residual_fwd(NULL, QT_DTYPE_F16, buf, c + 64, f, f, buf,
                                                    buf, buf, buf, 2, 0, 0.0f, 1, 2),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_layernorm_residual_fwd(NULL, QT_DTYPE_F16, buf, c + 64, f, f, buf,
                                                    buf, buf, NULL, 2, 4, 0.0f, 1, 2),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_layernorm_residual_fwd(NULL, QT_DTYPE_F16, buf, c + 65, f, f, buf,
                                                    buf, buf, buf, 2, 4, 0.0f, 1, 2),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_layernorm_residual_fwd(NULL, QT_DTYPE_F16, buf, c + 64, f, f, buf,
                                                    buf, buf, buf, 2, 4, 1.5f, 1, 2),
                     QT_ERR_ARG); // dropout probability outside [0, 1]
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "outside [0, 1]"));
    ck_assert_int_eq(qt_cuda_layernorm_bwd(NULL, QT_DTYPE_F32, buf, NULL, NULL, NULL, buf, f, f,
                                           buf, 2, 4, NULL),
                     QT_ERR_ARG);
    // N = 0 is a no-op that touches nothing
    ck_assert_int_eq(qt_cuda_layernorm_fwd(NULL, QT_DTYPE_F32, buf, f, f, buf, buf, buf, 0, 4),
                     QT_OK);
    qt_ct_free(buf);
}
END_TEST

static Suite *layernorm_suite(void) {
    Suite *s = suite_create("cuda_layernorm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_layernorm_fwd);
    tcase_add_test(tc, test_layernorm_residual_fwd);
    tcase_add_test(tc, test_layernorm_residual_bwd);
    tcase_add_test(tc, test_layernorm_bwd);
    tcase_add_test(tc, test_layernorm_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(layernorm_suite());
}

// test_cuda_layernorm.c: kernels/cuda/layernorm.cu against the CPU reference
// (qt_cpu_layernorm_{fwd,bwd}, qt_cpu_add) on random inputs of odd shapes, in fp32, fp16 and
// bf16, with outputs poisoned (NaN) and guard bands checked.
// Inputs are rounded to the dtype first, so the reference sees exactly what the kernel reads;
// the remaining differences are the fp32 summation order and the final rounding to the dtype.
// Tolerances (err <= atol + rtol |ref|): qt_ct_tolerance (fp32 1e-6 + 1e-5 relative; fp16
// 1e-3 + 4e-3; bf16 1e-2 + 3e-2); the fp32 statistics (mean, rstd) of fp16/bf16 inputs use the
// fp32 tolerance, being fp32 math on exact inputs. The fp32 LayerNorm output sums terms of size
// up to ~5 ((x - mean) rstd w and b), whose roundings a 1e-6 floor barely covers where they
// cancel: its atol is OUT_ATOL_F32. The dw/db column sums over rows get atol scaled by sqrt(N)
// (sums of N random-sign terms of size ~1).
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/elementwise.h"
#include "kernels/layernorm.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
// (N, C): single row and column, below, above and far from the warp size, several blocks of
// rows with a partial last block.
static const int SHAPES[][2] = {{1, 1}, {1, 31}, {3, 33}, {5, 1027}, {33, 64}, {7, 32}, {70, 95}};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))
#define OUT_ATOL_F32 4e-6

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

// alias: 0 separate resid, 1 resid is a, 2 resid is b.
static void check_add_layernorm(qt_dtype dt, int N, int C, int alias, uint64_t seed) {
    double atol, rtol, fatol, frtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    qt_ct_tolerance(QT_DTYPE_F32, &fatol, &frtol);
    if (dt == QT_DTYPE_F32) atol = OUT_ATOL_F32;
    const size_t nc = (size_t)N * C;
    float *a = qt_ct_rand_rounded(dt, nc, -2.0f, 2.0f, seed);
    float *b = qt_ct_rand_rounded(dt, nc, 0.0f, 3.0f, seed + 1);
    float *w = qt_ct_rand_rounded(dt, C, 0.5f, 1.5f, seed + 2);
    float *bias = qt_ct_rand_rounded(dt, C, -0.5f, 0.5f, seed + 3);
    float *resid = malloc(nc * sizeof *resid), *out = malloc(nc * sizeof *out);
    float *mean = malloc(N * sizeof *mean), *rstd = malloc(N * sizeof *rstd);
    qt_cpu_add(resid, a, b, nc);
    for (size_t i = 0; i < nc; i++) resid[i] = qt_ct_round(dt, resid[i]); // as stored
    qt_cpu_layernorm_fwd(out, mean, rstd, resid, w, bias, N, C);

    void *da = qt_ct_upload(dt, a, nc), *db = qt_ct_upload(dt, b, nc);
    void *dw = qt_ct_upload(dt, w, C), *dbias = qt_ct_upload(dt, bias, C);
    void *dres = alias == 1 ? da : alias == 2 ? db : qt_ct_alloc(dt, nc);
    void *dout = qt_ct_alloc(dt, nc);
    void *dmean = qt_ct_alloc(QT_DTYPE_F32, N), *drstd = qt_ct_alloc(QT_DTYPE_F32, N);
    qt_status st = qt_cuda_add_layernorm_fwd(NULL, dt, dres, dout, dmean, drstd, da, db, dw,
                                             dbias, N, C);
    ck_assert_msg(st == QT_OK, "add_layernorm_fwd %s N=%d C=%d alias=%d: %s", qt_dtype_name(dt),
                  N, C, alias, qt_last_error());
    const double ers = qt_ct_dev_err(dt, dres, resid, nc, fatol, frtol); // a + b: one rounding
    const double eo = qt_ct_dev_err(dt, dout, out, nc, atol, rtol);
    const double em = qt_ct_dev_err(QT_DTYPE_F32, dmean, mean, N, fatol, frtol);
    const double er = qt_ct_dev_err(QT_DTYPE_F32, drstd, rstd, N, fatol, frtol);
    ck_assert_msg(ers <= 1.0 && eo <= 1.0 && em <= 1.0 && er <= 1.0,
                  "add_layernorm_fwd %s N=%d C=%d alias=%d seed=%llu: err resid %g out %g "
                  "mean %g rstd %g",
                  qt_dtype_name(dt), N, C, alias, (unsigned long long)seed, ers, eo, em, er);
    ck_assert_msg(qt_ct_guard_ok(dt, dres, nc) && qt_ct_guard_ok(dt, dout, nc) &&
                      qt_ct_guard_ok(QT_DTYPE_F32, dmean, N) &&
                      qt_ct_guard_ok(QT_DTYPE_F32, drstd, N),
                  "add_layernorm_fwd %s N=%d C=%d alias=%d: guard band overwritten",
                  qt_dtype_name(dt), N, C, alias);
    if (alias == 0) qt_ct_free(dres);
    qt_ct_free(da);
    qt_ct_free(db);
    qt_ct_free(dw);
    qt_ct_free(dbias);
    qt_ct_free(dout);
    qt_ct_free(dmean);
    qt_ct_free(drstd);
    free(a);
    free(b);
    free(w);
    free(bias);
    free(resid);
    free(out);
    free(mean);
    free(rstd);
}

START_TEST(test_add_layernorm_fwd) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSHAPES; s++)
            check_add_layernorm(DTYPES[d], SHAPES[s][0], SHAPES[s][1], s % 3,
                                200 + 10 * (uint64_t)s + (uint64_t)d);
    // every alias mode on one shape with a partial warp and a partial block of rows
    for (int alias = 0; alias < 3; alias++) check_add_layernorm(QT_DTYPE_F16, 5, 33, alias, 299);
}
END_TEST

// which: bit 0 dx, bit 1 dw, bit 2 db wanted (the others passed as NULL).
static void check_layernorm_bwd(qt_dtype dt, int N, int C, int which, uint64_t seed) {
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
                                         dxv, dmean, drstd, dwv, N, C);
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
                                300 + 10 * (uint64_t)s + (uint64_t)d);
    // more rows than the dw/db kernel's row lanes, a partial column block
    check_layernorm_bwd(QT_DTYPE_F32, 300, 45, 7, 391);
    check_layernorm_bwd(QT_DTYPE_BF16, 300, 45, 7, 392);
    // optional gradients: each alone (the others NULL stay untouched)
    for (int which = 1; which <= 4; which <<= 1)
        check_layernorm_bwd(QT_DTYPE_F32, 9, 37, which, 393 + (uint64_t)which);
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
                                           buf, -1, 4),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "layernorm_bwd"));
    ck_assert_int_eq(qt_cuda_layernorm_bwd(NULL, QT_DTYPE_F16, (char *)buf + 1, NULL, NULL, buf,
                                           buf, f, f, buf, 2, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_add_layernorm_fwd(NULL, QT_DTYPE_F32, buf, buf, f, f, buf, buf, buf,
                                               buf, 2, 4),
                     QT_ERR_ARG); // out aliases resid
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "add_layernorm_fwd"));
    char *c = buf;
    ck_assert_int_eq(qt_cuda_layernorm_fwd(NULL, QT_DTYPE_F32, c + 2, f, f, buf, buf, buf, 2, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_add_layernorm_fwd(NULL, QT_DTYPE_F16, buf, c + 64, f, f, buf, buf,
                                               buf, buf, 2, 0),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_add_layernorm_fwd(NULL, QT_DTYPE_F16, buf, c + 64, f, f, buf, buf,
                                               buf, NULL, 2, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_add_layernorm_fwd(NULL, QT_DTYPE_F16, buf, c + 65, f, f, buf, buf,
                                               buf, buf, 2, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_layernorm_bwd(NULL, QT_DTYPE_F32, buf, NULL, NULL, NULL, buf, f, f,
                                           buf, 2, 4),
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
    tcase_add_test(tc, test_add_layernorm_fwd);
    tcase_add_test(tc, test_layernorm_bwd);
    tcase_add_test(tc, test_layernorm_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(layernorm_suite());
}

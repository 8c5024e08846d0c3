// test_cuda_rmsnorm.c: kernels/cuda/rmsnorm.cu against the CPU reference (qt_cpu_rmsnorm_*,
// kernels/rmsnorm.h) on random inputs of odd shapes, in fp32, fp16 and bf16, with outputs
// poisoned (NaN), gradients pre-filled (the backward must add) and guard bands checked.
// Inputs are rounded to the dtype first, so the reference sees exactly what the kernel reads;
// what remains is the fp32 summation order, FMA contraction and the final rounding to the dtype.
// Tolerances (err <= atol + rtol |ref|): qt_ct_tolerance (fp32 1e-6 + 1e-5 relative; fp16
// 1e-3 + 4e-3; bf16 1e-2 + 3e-2); rstd (fp32 math on exact inputs) uses the fp32 tolerance in
// every dtype. dx is rstd times a difference that cancels for C = 1 (atol scaled by the largest
// rstd), dw a column sum of N terms of size ~1 (atol scaled by sqrt(N)).
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/rmsnorm.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
// RMSNorm (N, C): single row and column, around the warp size, several row blocks with a
// partial last one, more rows than the dw kernel's row lanes.
static const int RMS_SHAPES[][2] = {{1, 1}, {1, 31}, {3, 33}, {5, 1027}, {33, 64}, {70, 95}};
#define RMS_NSHAPES ((int)(sizeof RMS_SHAPES / sizeof RMS_SHAPES[0]))

static void free_dev(void **p, size_t n) {
    for (size_t i = 0; i < n; i++) qt_ct_free(p[i]);
}
static void free_host(float **p, size_t n) {
    for (size_t i = 0; i < n; i++) free(p[i]);
}

// ---- RMSNorm --------------------------------------------------------------------------------

START_TEST(test_rmsnorm_fwd) {
    for (int d = 0; d < 3; d++) {
        const qt_dtype dt = DTYPES[d];
        double atol, rtol, fatol, frtol;
        qt_ct_tolerance(dt, &atol, &rtol);
        qt_ct_tolerance(QT_DTYPE_F32, &fatol, &frtol);
        for (int s = 0; s < RMS_NSHAPES; s++) {
            const int N = RMS_SHAPES[s][0], C = RMS_SHAPES[s][1];
            const uint64_t seed = 100 + 10 * (uint64_t)s + (uint64_t)d;
            const size_t nc = (size_t)N * C;
            float *x = qt_ct_rand_rounded(dt, nc, -2.0f, 3.0f, seed);
            float *w = qt_ct_rand_rounded(dt, C, 0.5f, 1.5f, seed + 1);
            float *out = malloc(nc * sizeof *out), *rstd = malloc(N * sizeof *rstd);
            qt_cpu_rmsnorm_fwd(out, rstd, x, w, N, C);
            void *dx = qt_ct_upload(dt, x, nc), *dw = qt_ct_upload(dt, w, C);
            void *dout = qt_ct_alloc(dt, nc), *drstd = qt_ct_alloc(QT_DTYPE_F32, N);
            qt_status st = qt_cuda_rmsnorm_fwd(NULL, dt, dout, drstd, dx, dw, N, C);
            ck_assert_msg(st == QT_OK, "rmsnorm_fwd %s N=%d C=%d: %s", qt_dtype_name(dt), N, C,
                          qt_last_error());
            const double eo = qt_ct_dev_err(dt, dout, out, nc, atol, rtol);
            const double er = qt_ct_dev_err(QT_DTYPE_F32, drstd, rstd, N, fatol, frtol);
            ck_assert_msg(eo <= 1.0 && er <= 1.0,
                          "rmsnorm_fwd %s N=%d C=%d seed=%llu: err out %g rstd %g",
                          qt_dtype_name(dt), N, C, (unsigned long long)seed, eo, er);
            ck_assert_msg(qt_ct_guard_ok(dt, dout, nc) && qt_ct_guard_ok(QT_DTYPE_F32, drstd, N),
                          "rmsnorm_fwd %s N=%d C=%d: guard band overwritten", qt_dtype_name(dt),
                          N, C);
            void *bufs[] = {dx, dw, dout, drstd};
            free_dev(bufs, 4);
            float *hb[] = {x, w, out, rstd};
            free_host(hb, 4);
        }
    }
}
END_TEST

// which: bit 0 dx, bit 1 dw wanted (the other passed as NULL and left untouched).
static void check_rmsnorm_bwd(qt_dtype dt, int N, int C, int which, uint64_t seed) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    const size_t nc = (size_t)N * C;
    float *x = qt_ct_rand_rounded(dt, nc, -2.0f, 3.0f, seed);
    float *w = qt_ct_rand_rounded(dt, C, 0.5f, 1.5f, seed + 1);
    float *dout = qt_ct_rand_rounded(dt, nc, -1.0f, 1.0f, seed + 2);
    float *gx = qt_ct_rand_rounded(dt, nc, -1.0f, 1.0f, seed + 3); // pre-filled: the backward adds
    float *gw = qt_ct_rand_rounded(dt, C, -1.0f, 1.0f, seed + 4);
    float *out = malloc(nc * sizeof *out), *rstd = malloc(N * sizeof *rstd);
    qt_cpu_rmsnorm_fwd(out, rstd, x, w, N, C);

    void *ddx = qt_ct_upload(dt, gx, nc), *ddw = qt_ct_upload(dt, gw, C);
    void *ddout = qt_ct_upload(dt, dout, nc), *dxv = qt_ct_upload(dt, x, nc);
    void *dwv = qt_ct_upload(dt, w, C), *drstd = qt_ct_upload(QT_DTYPE_F32, rstd, N);
    qt_cpu_rmsnorm_bwd(which & 1 ? gx : NULL, which & 2 ? gw : NULL, dout, x, rstd, w, N, C);
    qt_status st = qt_cuda_rmsnorm_bwd(NULL, dt, which & 1 ? ddx : NULL, which & 2 ? ddw : NULL,
                                       ddout, dxv, drstd, dwv, N, C);
    ck_assert_msg(st == QT_OK, "rmsnorm_bwd %s N=%d C=%d: %s", qt_dtype_name(dt), N, C,
                  qt_last_error());
    double max_rstd = 1.0;
    for (int n = 0; n < N; n++) max_rstd = rstd[n] > max_rstd ? rstd[n] : max_rstd;
    const double ex = qt_ct_dev_err(dt, ddx, gx, nc, atol * max_rstd, rtol);
    const double ew = qt_ct_dev_err(dt, ddw, gw, C, atol * sqrt((double)N), rtol);
    ck_assert_msg(ex <= 1.0 && ew <= 1.0,
                  "rmsnorm_bwd %s N=%d C=%d which=%d seed=%llu: err dx %g dw %g",
                  qt_dtype_name(dt), N, C, which, (unsigned long long)seed, ex, ew);
    ck_assert_msg(qt_ct_guard_ok(dt, ddx, nc) && qt_ct_guard_ok(dt, ddw, C),
                  "rmsnorm_bwd %s N=%d C=%d: guard band overwritten", qt_dtype_name(dt), N, C);
    if (which == 3) { // determinism: two runs from the same start give the same bits
        float *gw0 = qt_ct_rand_rounded(dt, C, -1.0f, 1.0f, seed + 4);
        float *w1 = malloc(C * sizeof *w1), *w2 = malloc(C * sizeof *w2);
        void *r1 = qt_ct_upload(dt, gw0, C), *r2 = qt_ct_upload(dt, gw0, C);
        ck_assert_int_eq(qt_cuda_rmsnorm_bwd(NULL, dt, NULL, r1, ddout, dxv, drstd, dwv, N, C),
                         QT_OK);
        ck_assert_int_eq(qt_cuda_rmsnorm_bwd(NULL, dt, NULL, r2, ddout, dxv, drstd, dwv, N, C),
                         QT_OK);
        qt_ct_download(dt, w1, r1, C);
        qt_ct_download(dt, w2, r2, C);
        ck_assert_msg(memcmp(w1, w2, C * sizeof *w1) == 0,
                      "rmsnorm_bwd %s N=%d C=%d: dw differs between two runs", qt_dtype_name(dt),
                      N, C);
        qt_ct_free(r1);
        qt_ct_free(r2);
        free(w1);
        free(w2);
        free(gw0);
    }
    void *bufs[] = {ddx, ddw, ddout, dxv, dwv, drstd};
    free_dev(bufs, 6);
    float *hb[] = {x, w, dout, gx, gw, out, rstd};
    free_host(hb, 7);
}

START_TEST(test_rmsnorm_bwd) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < RMS_NSHAPES; s++)
            check_rmsnorm_bwd(DTYPES[d], RMS_SHAPES[s][0], RMS_SHAPES[s][1], 3,
                              300 + 10 * (uint64_t)s + (uint64_t)d);
    check_rmsnorm_bwd(QT_DTYPE_F32, 300, 45, 3, 391); // many rows per row lane
    check_rmsnorm_bwd(QT_DTYPE_BF16, 300, 45, 3, 392);
    check_rmsnorm_bwd(QT_DTYPE_F32, 9, 37, 1, 393); // dx alone (dw untouched)
    check_rmsnorm_bwd(QT_DTYPE_F16, 9, 37, 2, 394); // dw alone (dx untouched)
}
END_TEST

// ---- bad arguments --------------------------------------------------------------------------

START_TEST(test_rmsnorm_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 256);
    float *f = buf;
    char *c = buf;
    ck_assert_int_eq(qt_cuda_rmsnorm_fwd(NULL, QT_DTYPE_F32, buf, f, buf, buf, 2, 0), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "rmsnorm_fwd"));
    ck_assert_int_eq(qt_cuda_rmsnorm_fwd(NULL, (qt_dtype)7, buf, f, buf, buf, 2, 4), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rmsnorm_fwd(NULL, QT_DTYPE_F32, buf, f, NULL, buf, 2, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rmsnorm_fwd(NULL, QT_DTYPE_F16, c + 1, f, buf, buf, 2, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rmsnorm_bwd(NULL, QT_DTYPE_F16, buf, buf, buf, buf, f, buf, -1, 4),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "rmsnorm_bwd"));
    ck_assert_int_eq(qt_cuda_rmsnorm_bwd(NULL, QT_DTYPE_F32, buf, NULL, buf, buf, f, NULL, 2, 4),
                     QT_ERR_ARG); // dx wanted without w
    ck_assert_int_eq(qt_cuda_rmsnorm_bwd(NULL, QT_DTYPE_F32, NULL, NULL, buf, buf, f, buf, 2, 4),
                     QT_OK); // nothing wanted
    qt_ct_free(buf);
}
END_TEST

static Suite *cuda_rmsnorm_suite(void) {
    Suite *s = suite_create("cuda_rmsnorm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rmsnorm_fwd);
    tcase_add_test(tc, test_rmsnorm_bwd);
    tcase_add_test(tc, test_rmsnorm_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(cuda_rmsnorm_suite());
}

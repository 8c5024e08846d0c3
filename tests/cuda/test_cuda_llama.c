// test_cuda_llama.c: kernels/cuda/rmsnorm.cu, rope.cu and swiglu.cu against the CPU reference
// (qt_cpu_rmsnorm_*, qt_cpu_rope_*, qt_cpu_swiglu_*) on random inputs of odd shapes, in fp32,
// fp16 and bf16, with outputs poisoned (NaN), gradients pre-filled (the backwards must add)
// and guard bands checked.
// Inputs are rounded to the dtype first, so the reference sees exactly what the kernel reads;
// what remains is the fp32 summation order, FMA contraction, an ulp of RoPE's fp32 cos/sin
// (both sides round the same double angle) and the final rounding to the dtype.
// Tolerances (err <= atol + rtol |ref|): qt_ct_tolerance (fp32 1e-6 + 1e-5 relative; fp16
// 1e-3 + 4e-3; bf16 1e-2 + 3e-2); rstd (fp32 math on exact inputs) uses the fp32 tolerance in
// every dtype. RMSNorm's dx is rstd times a difference that cancels for C = 1 (atol scaled by
// the largest rstd), its dw a column sum of N terms of size ~1 (atol scaled by sqrt(N)). RoPE
// values are sums of two products of size ~2 that may cancel: atol is scaled by 2. SwiGLU's
// terms grow like |x|^2 (x in [-hi, hi)) and dx adds them to a pre-filled gradient, where they
// may cancel: atol is scaled by max(1, hi^2).
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "qtrain/cuda_ops.h"
#include "qtrain/ops.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
// RMSNorm (N, C): single row and column, around the warp size, several row blocks with a
// partial last one, more rows than the dw kernel's row lanes.
static const int RMS_SHAPES[][2] = {{1, 1}, {1, 31}, {3, 33}, {5, 1027}, {33, 64}, {70, 95}};
#define RMS_NSHAPES ((int)(sizeof RMS_SHAPES / sizeof RMS_SHAPES[0]))
// RoPE (B, T, C, H): D = 2 (one pair), D = 6, D = 66 (33 pairs: a partial warp), T D/2 not a
// multiple of the 128-thread block, several blocks of (t, pair), B > 1.
static const int ROPE_SHAPES[][4] = {{1, 1, 2, 1},  {2, 5, 6, 1},   {3, 7, 12, 2},
                                     {2, 9, 132, 2}, {1, 70, 24, 3}, {4, 33, 40, 5}};
#define ROPE_NSHAPES ((int)(sizeof ROPE_SHAPES / sizeof ROPE_SHAPES[0]))
// SwiGLU (N, F): one element, around the warp and block sizes.
static const int SW_SHAPES[][2] = {{1, 1}, {3, 31}, {5, 33}, {7, 257}, {33, 95}};
#define SW_NSHAPES ((int)(sizeof SW_SHAPES / sizeof SW_SHAPES[0]))

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

// ---- RoPE -----------------------------------------------------------------------------------

static void check_rope(qt_dtype dt, int B, int T, int C, int H, float theta, uint64_t seed) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    atol *= 2.0;
    const size_t n = (size_t)B * T * 3 * C;
    float *x = qt_ct_rand_rounded(dt, n, -2.0f, 2.0f, seed);
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    memcpy(want, x, n * sizeof *want);
    qt_cpu_rope_fwd(want, B, T, C, H, theta);
    void *d = qt_ct_upload(dt, x, n);
    qt_status st = qt_cuda_rope_fwd(NULL, dt, d, B, T, C, H, theta);
    ck_assert_msg(st == QT_OK, "rope_fwd %s B=%d T=%d C=%d H=%d: %s", qt_dtype_name(dt), B, T, C,
                  H, qt_last_error());
    qt_ct_download(dt, got, d, n);
    double e = qt_test_max_err(got, want, n, atol, rtol);
    ck_assert_msg(e <= 1.0, "rope_fwd %s B=%d T=%d C=%d H=%d theta=%g seed=%llu: err %g",
                  qt_dtype_name(dt), B, T, C, H, (double)theta, (unsigned long long)seed, e);
    for (size_t r = 0; r < (size_t)B * T; r++) { // v untouched, t = 0 the identity
        const size_t row = r * 3 * (size_t)C;
        const size_t len = (r % (size_t)T == 0 ? 3 : 1) * (size_t)C;
        const size_t off = r % (size_t)T == 0 ? row : row + 2 * (size_t)C;
        ck_assert_msg(memcmp(got + off, x + off, len * sizeof *got) == 0,
                      "rope_fwd %s B=%d T=%d C=%d H=%d: row %zu changed v (or t = 0)",
                      qt_dtype_name(dt), B, T, C, H, r);
    }
    ck_assert_msg(qt_ct_guard_ok(dt, d, n), "rope_fwd %s: guard band overwritten",
                  qt_dtype_name(dt));
    // backward: on a fresh gradient, against the CPU's inverse rotation
    float *g = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, seed + 1);
    void *dg = qt_ct_upload(dt, g, n);
    qt_cpu_rope_bwd(g, B, T, C, H, theta);
    st = qt_cuda_rope_bwd(NULL, dt, dg, B, T, C, H, theta);
    ck_assert_msg(st == QT_OK, "rope_bwd %s B=%d T=%d C=%d H=%d: %s", qt_dtype_name(dt), B, T, C,
                  H, qt_last_error());
    e = qt_ct_dev_err(dt, dg, g, n, atol, rtol);
    ck_assert_msg(e <= 1.0, "rope_bwd %s B=%d T=%d C=%d H=%d theta=%g seed=%llu: err %g",
                  qt_dtype_name(dt), B, T, C, H, (double)theta, (unsigned long long)seed, e);
    ck_assert_msg(qt_ct_guard_ok(dt, dg, n), "rope_bwd %s: guard band overwritten",
                  qt_dtype_name(dt));
    // the backward undoes the forward (fp32 storage only: no intermediate rounding)
    if (dt == QT_DTYPE_F32) {
        ck_assert_int_eq(qt_cuda_rope_bwd(NULL, dt, d, B, T, C, H, theta), QT_OK);
        e = qt_ct_dev_err(dt, d, x, n, 2e-6, 0.0);
        ck_assert_msg(e <= 1.0, "rope_bwd(rope_fwd(x)) != x B=%d T=%d C=%d H=%d: err %g", B, T,
                      C, H, e);
    }
    qt_ct_free(d);
    qt_ct_free(dg);
    float *hb[] = {x, want, got, g};
    free_host(hb, 4);
}

START_TEST(test_rope) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < ROPE_NSHAPES; s++)
            check_rope(DTYPES[d], ROPE_SHAPES[s][0], ROPE_SHAPES[s][1], ROPE_SHAPES[s][2],
                       ROPE_SHAPES[s][3], 10000.0f, 500 + 10 * (uint64_t)s + (uint64_t)d);
    // long positions (angles up to ~1000 rad: the double angle keeps CPU and GPU together),
    // another theta
    check_rope(QT_DTYPE_F32, 1, 1000, 8, 1, 10000.0f, 590);
    check_rope(QT_DTYPE_F32, 2, 17, 20, 2, 500000.0f, 591);
}
END_TEST

// ---- SwiGLU ---------------------------------------------------------------------------------

static void check_swiglu(qt_dtype dt, int N, int F, float lo, float hi, uint64_t seed) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    const size_t nx = (size_t)N * 2 * F, no = (size_t)N * F;
    float *x = qt_ct_rand_rounded(dt, nx, lo, hi, seed);
    float *gout = qt_ct_rand_rounded(dt, no, -1.0f, 1.0f, seed + 1);
    float *gx = qt_ct_rand_rounded(dt, nx, -1.0f, 1.0f, seed + 2); // pre-filled: the backward adds
    float *out = malloc(no * sizeof *out);
    qt_cpu_swiglu_fwd(out, x, N, F);
    void *dxv = qt_ct_upload(dt, x, nx), *dout = qt_ct_alloc(dt, no);
    void *dgout = qt_ct_upload(dt, gout, no), *dgx = qt_ct_upload(dt, gx, nx);
    qt_status st = qt_cuda_swiglu_fwd(NULL, dt, dout, dxv, N, F);
    ck_assert_msg(st == QT_OK, "swiglu_fwd %s N=%d F=%d: %s", qt_dtype_name(dt), N, F,
                  qt_last_error());
    // |out| grows with |x|^2: scale atol with the input range
    const double scale = fmax(1.0, (double)hi * hi);
    double e = qt_ct_dev_err(dt, dout, out, no, atol * scale, rtol);
    ck_assert_msg(e <= 1.0, "swiglu_fwd %s N=%d F=%d x in [%g, %g) seed=%llu: err %g",
                  qt_dtype_name(dt), N, F, (double)lo, (double)hi, (unsigned long long)seed, e);
    qt_cpu_swiglu_bwd(gx, gout, x, N, F);
    st = qt_cuda_swiglu_bwd(NULL, dt, dgx, dgout, dxv, N, F);
    ck_assert_msg(st == QT_OK, "swiglu_bwd %s N=%d F=%d: %s", qt_dtype_name(dt), N, F,
                  qt_last_error());
    e = qt_ct_dev_err(dt, dgx, gx, nx, atol * scale, rtol);
    ck_assert_msg(e <= 1.0, "swiglu_bwd %s N=%d F=%d x in [%g, %g) seed=%llu: err %g",
                  qt_dtype_name(dt), N, F, (double)lo, (double)hi, (unsigned long long)seed, e);
    ck_assert_msg(qt_ct_guard_ok(dt, dout, no) && qt_ct_guard_ok(dt, dgx, nx),
                  "swiglu %s N=%d F=%d: guard band overwritten", qt_dtype_name(dt), N, F);
    void *bufs[] = {dxv, dout, dgout, dgx};
    free_dev(bufs, 4);
    float *hb[] = {x, gout, gx, out};
    free_host(hb, 4);
}

START_TEST(test_swiglu) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < SW_NSHAPES; s++)
            check_swiglu(DTYPES[d], SW_SHAPES[s][0], SW_SHAPES[s][1], -4.0f, 4.0f,
                         700 + 10 * (uint64_t)s + (uint64_t)d);
    // large |a|: exp's argument capped on both sides, everything finite
    check_swiglu(QT_DTYPE_F32, 5, 33, -100.0f, 100.0f, 790);
    check_swiglu(QT_DTYPE_BF16, 5, 33, -100.0f, 100.0f, 791);
}
END_TEST

// ---- bad arguments --------------------------------------------------------------------------

START_TEST(test_llama_bad_args) {
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
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_F32, buf, 1, 2, 6, 2, 10000.0f),
                     QT_ERR_ARG); // D = 3 is odd
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "rope_fwd"));
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "odd"));
    ck_assert_int_eq(qt_cuda_rope_bwd(NULL, QT_DTYPE_F32, buf, 1, 2, 8, 3, 10000.0f),
                     QT_ERR_ARG); // C not a multiple of H
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "rope_bwd"));
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_F32, buf, 1, 2, 8, 2, 0.0f), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_F32, NULL, 1, 2, 8, 2, 1e4f), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_BF16, c + 1, 1, 2, 8, 2, 1e4f), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_F32, buf, 0, 2, 8, 2, 1e4f), QT_OK);
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, (qt_dtype)9, buf, 1, 2, 8, 2, 1e4f), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_rope_fwd(NULL, QT_DTYPE_F32, buf, 1, 0x7fffffff, 8192, 1, 1e4f),
                     QT_ERR_ARG); // more (t, pair) threads than one grid holds
    ck_assert_int_eq(qt_cuda_swiglu_fwd(NULL, QT_DTYPE_F32, buf, buf, 2, 0), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "swiglu_fwd"));
    ck_assert_int_eq(qt_cuda_swiglu_fwd(NULL, QT_DTYPE_F32, NULL, buf, 2, 3), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_swiglu_fwd(NULL, (qt_dtype)9, buf, buf, 2, 3), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_swiglu_fwd(NULL, QT_DTYPE_F16, c + 1, buf, 2, 3), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_swiglu_bwd(NULL, QT_DTYPE_F32, buf, NULL, buf, 2, 3), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_swiglu_bwd(NULL, QT_DTYPE_F32, buf, c + 64, buf, 2, 3),
                     QT_ERR_ARG); // dx aliases x
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "swiglu_bwd"));
    ck_assert_int_eq(qt_cuda_swiglu_bwd(NULL, QT_DTYPE_F16, c + 1, c + 64, buf, 2, 3),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_swiglu_bwd(NULL, QT_DTYPE_F16, buf, c + 64, c + 128, 0, 3), QT_OK);
    qt_ct_free(buf);
}
END_TEST

static Suite *llama_suite(void) {
    Suite *s = suite_create("cuda_llama");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rmsnorm_fwd);
    tcase_add_test(tc, test_rmsnorm_bwd);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_llama_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(llama_suite());
}

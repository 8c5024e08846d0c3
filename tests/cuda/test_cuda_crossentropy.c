// test_cuda_crossentropy.c: qt_cuda_crossentropy_{fwd,bwd} (kernels/cuda/crossentropy.cu)
// against the CPU's qt_cpu_crossentropy_{fwd,bwd} (kernels/cpu/crossentropy.c).
//
// Random logits rounded to the dtype (the reference runs in fp32 on exactly what the kernel
// reads), targets mixing 0, V - 1, random and ignored (-1) rows, a row of large logits (+-80)
// and a peaked row (loss ~ 0); V not a multiple of the warp or the 256-thread block (column by
// column) and V a multiple of 8 (128-bit chunks). Outputs poisoned (NaN), guard bands checked.
// Tolerances, err <= atol + rtol |ref| (NaN fails):
//   losses (fp32 in every dtype): atol 1e-5, rtol 1e-5 (log S - (z_t - m): the absolute error
//                                 of log S is what bounds it);
//   stats {max, 1 / S} (fp32): the max exactly, 1 / S within 1e-5 relative (summation order);
//   dlogits: qt_ct_tolerance(dt) (fp32 1e-6 + 1e-5 |ref|, fp16 1e-3 + 4e-3 |ref|,
//            bf16 1e-2 + 3e-2 |ref|).
// The backward runs on the kernel's stats, adds into random dlogits, and, aliased (dlogits ==
// logits), overwrites them with ignored rows zeroed. A last case asserts the reason the op has
// no probabilities buffer: with a 50k-like vocabulary in fp16, each gradient element is one
// rounding of the fp32 value, where a stored fp16 probability (subnormal) is not.
// qt_cuda_crossentropy_fwd_bwd (both in one launch) must equal the forward then the aliased
// backward bit for bit, on every case.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_testutil.h"
#include "kernels/crossentropy.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
static const int SHAPES[][2] = {{1, 1}, {3, 2},   {5, 31},   {4, 33},  {6, 257},
                                {5, 1027}, {3, 4099}, {5, 264}, {3, 4096}};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static void round_to(qt_dtype dt, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = qt_ct_round(dt, x[i]);
}

static int *upload_ints(const int *x, int n) {
    int *d = NULL;
    ck_assert_int_eq(cudaMalloc((void **)&d, (size_t)n * sizeof(int) + 4), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(d, x, (size_t)n * sizeof(int), cudaMemcpyHostToDevice),
                     cudaSuccess);
    return d;
}

static void check_case(qt_dtype dt, int N, int V, uint64_t seed) {
    const size_t n = (size_t)N * V;
    char tag[128];
    snprintf(tag, sizeof tag, "crossentropy %s (N %d, V %d) seed %llu", qt_dtype_name(dt), N, V,
             (unsigned long long)seed);
    float *logits = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    float *dl0 = malloc(n * sizeof(float)), *ref_dl = malloc(n * sizeof(float));
    float *ref_loss = malloc((size_t)N * sizeof(float)), *got_loss = malloc((size_t)N * 4);
    float *ref_stats = malloc((size_t)N * 8), *got_stats = malloc((size_t)N * 8);
    float *dlosses = malloc((size_t)N * sizeof(float));
    int *targets = malloc((size_t)N * sizeof(int));
    qt_test_fill_uniform(logits, n, -8.0f, 8.0f, seed);
    qt_test_fill_uniform(dl0, n, -1.0f, 1.0f, seed + 1);
    qt_test_fill_uniform(dlosses, (size_t)N, 0.1f, 1.0f, seed + 2);
    for (int r = 0; r < N; r++) {
        targets[r] = r % 4 == 0 ? 0 : r % 4 == 1 ? V - 1 : r % 4 == 2 ? -1 : (r * 7919) % V;
        if (r == 3 % N && V > 1) // large logits: exp must not overflow
            for (int j = 0; j < V; j++) logits[(size_t)r * V + j] *= 10.0f;
        if (r == 4 % N) logits[(size_t)r * V + targets[r] % V] += 40.0f; // peaked: loss ~ 0
    }
    round_to(dt, logits, n);
    round_to(dt, dl0, n);

    qt_cpu_crossentropy_fwd(ref_loss, ref_stats, logits, targets, N, V);
    void *d_logits = qt_ct_upload(dt, logits, n);
    float *d_loss = qt_ct_alloc(QT_DTYPE_F32, (size_t)N);
    float *d_stats = qt_ct_alloc(QT_DTYPE_F32, 2 * (size_t)N);
    int *d_targets = upload_ints(targets, N);
    qt_status s = qt_cuda_crossentropy_fwd(NULL, dt, d_loss, d_stats, d_logits, d_targets, N, V);
    ck_assert_msg(s == QT_OK, "%s: fwd returned %d: %s", tag, (int)s, qt_last_error());
    qt_ct_download(QT_DTYPE_F32, got_loss, d_loss, (size_t)N);
    qt_ct_download(QT_DTYPE_F32, got_stats, d_stats, 2 * (size_t)N);
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    double e = qt_test_max_err(got_loss, ref_loss, (size_t)N, 1e-5, 1e-5);
    ck_assert_msg(e <= 1.0, "%s: loss error %g x tolerance", tag, e);
    for (int r = 0; r < N; r++) {
        if (targets[r] < 0)
            ck_assert_msg(got_loss[r] == 0.0f, "%s: ignored row %d loss %g", tag, r, got_loss[r]);
        ck_assert_msg(got_stats[2 * r] == ref_stats[2 * r], "%s: row %d max %g vs %g", tag, r,
                      got_stats[2 * r], ref_stats[2 * r]);
        ck_assert_msg(fabsf(got_stats[2 * r + 1] - ref_stats[2 * r + 1]) <=
                          1e-5f * ref_stats[2 * r + 1],
                      "%s: row %d 1/S %g vs %g", tag, r, got_stats[2 * r + 1],
                      ref_stats[2 * r + 1]);
    }
    ck_assert_msg(qt_ct_guard_ok(QT_DTYPE_F32, d_stats, 2 * (size_t)N) &&
                      qt_ct_guard_ok(QT_DTYPE_F32, d_loss, N),
                  "%s: fwd wrote past the end of stats or losses", tag);
    qt_ct_download(dt, got, d_logits, n);
    ck_assert_msg(memcmp(got, logits, n * sizeof(float)) == 0, "%s: fwd changed the logits",
                  tag);

    // backward, accumulating, on the kernel's stats
    float *d_dlosses = qt_ct_upload(QT_DTYPE_F32, dlosses, (size_t)N);
    void *d_dl = qt_ct_upload(dt, dl0, n);
    memcpy(ref_dl, dl0, n * sizeof(float));
    qt_cpu_crossentropy_bwd(ref_dl, dlosses, logits, got_stats, targets, N, V);
    s = qt_cuda_crossentropy_bwd(NULL, dt, d_dl, d_dlosses, d_logits, d_stats, d_targets, N, V);
    ck_assert_msg(s == QT_OK, "%s: bwd returned %d: %s", tag, (int)s, qt_last_error());
    qt_ct_download(dt, got, d_dl, n);
    e = qt_test_max_err(got, ref_dl, n, atol, rtol);
    ck_assert_msg(e <= 1.0, "%s: dlogits error %g x tolerance", tag, e);
    for (int r = 0; r < N; r++)
        if (targets[r] < 0)
            ck_assert_msg(memcmp(got + (size_t)r * V, dl0 + (size_t)r * V, V * sizeof(float)) == 0,
                          "%s: bwd touched ignored row %d", tag, r);
    ck_assert_msg(qt_ct_guard_ok(dt, d_dl, n), "%s: bwd wrote past the end of dlogits", tag);

    // backward aliased: dlogits == logits is overwritten
    memcpy(ref_dl, logits, n * sizeof(float));
    qt_cpu_crossentropy_bwd(ref_dl, dlosses, ref_dl, got_stats, targets, N, V);
    s = qt_cuda_crossentropy_bwd(NULL, dt, d_logits, d_dlosses, d_logits, d_stats, d_targets, N,
                                 V);
    ck_assert_msg(s == QT_OK, "%s: aliased bwd returned %d", tag, (int)s);
    qt_ct_download(dt, got, d_logits, n);
    e = qt_test_max_err(got, ref_dl, n, atol, rtol);
    ck_assert_msg(e <= 1.0, "%s: aliased dlogits error %g x tolerance", tag, e);
    for (int r = 0; r < N; r++)
        for (int j = 0; targets[r] < 0 && j < V; j++)
            ck_assert_msg(got[(size_t)r * V + j] == 0.0f, "%s: aliased ignored row %d not 0", tag,
                          r);
    ck_assert_msg(qt_ct_guard_ok(dt, d_logits, n), "%s: aliased bwd wrote past the end", tag);

    // both in one launch: the two kernels' losses, stats and in-place gradient, bit for bit
    void *d_fused = qt_ct_upload(dt, logits, n);
    float *d_loss2 = qt_ct_alloc(QT_DTYPE_F32, (size_t)N);
    float *d_stats2 = qt_ct_alloc(QT_DTYPE_F32, 2 * (size_t)N);
    s = qt_cuda_crossentropy_fwd_bwd(NULL, dt, d_loss2, d_stats2, d_fused, d_dlosses, d_targets,
                                     N, V);
    ck_assert_msg(s == QT_OK, "%s: fwd_bwd returned %d: %s", tag, (int)s, qt_last_error());
    float *fused = malloc(n * sizeof(float)), *loss2 = malloc((size_t)N * 4);
    float *stats2 = malloc((size_t)N * 8);
    qt_ct_download(dt, fused, d_fused, n);
    qt_ct_download(QT_DTYPE_F32, loss2, d_loss2, (size_t)N);
    qt_ct_download(QT_DTYPE_F32, stats2, d_stats2, 2 * (size_t)N);
    ck_assert_msg(memcmp(loss2, got_loss, (size_t)N * 4) == 0 &&
                      memcmp(stats2, got_stats, (size_t)N * 8) == 0,
                  "%s: fwd_bwd's losses or stats differ from the forward's", tag);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(memcmp(&fused[i], &got[i], sizeof(float)) == 0,
                      "%s: fwd_bwd's gradient [%zu] %.9g, the two kernels' %.9g", tag, i,
                      (double)fused[i], (double)got[i]);
    ck_assert_msg(qt_ct_guard_ok(dt, d_fused, n) && qt_ct_guard_ok(QT_DTYPE_F32, d_loss2, N) &&
                      qt_ct_guard_ok(QT_DTYPE_F32, d_stats2, 2 * (size_t)N),
                  "%s: fwd_bwd wrote past an end", tag);
    qt_ct_free(d_fused);
    qt_ct_free(d_loss2);
    qt_ct_free(d_stats2);
    QT_TEST_FREE_ALL(fused, loss2, stats2);

    qt_ct_free(d_logits);
    qt_ct_free(d_loss);
    qt_ct_free(d_stats);
    qt_ct_free(d_dlosses);
    qt_ct_free(d_dl);
    cudaFree(d_targets);
    QT_TEST_FREE_ALL(logits, got, dl0, ref_dl, ref_loss, got_loss, ref_stats, got_stats, dlosses,
                     targets);
}

START_TEST(test_vs_cpu) {
    // _i: dtype
    for (int sh = 0; sh < N_SHAPES; sh++)
        check_case(DTYPES[_i], SHAPES[sh][0], SHAPES[sh][1], 500u + (uint64_t)sh);
}
END_TEST

// A target >= V is a caller bug the CPU refuses: the kernel reports it as a NaN loss and a NaN
// gradient row rather than reading out of bounds; the other rows are unaffected.
START_TEST(test_bad_target_is_nan) {
    const int N = 2, V = 3, targets[2] = {1, 3};
    const float logits[6] = {0.5f, 1.0f, -1.0f, 0.0f, 0.0f, 0.0f}, dlosses[2] = {1.0f, 1.0f};
    void *d_logits = qt_ct_upload(QT_DTYPE_F32, logits, 6);
    float *d_stats = qt_ct_alloc(QT_DTYPE_F32, 4);
    float *d_loss = qt_ct_alloc(QT_DTYPE_F32, 2);
    float *d_dlosses = qt_ct_upload(QT_DTYPE_F32, dlosses, 2);
    float zeros[6] = {0}, loss[2], d[6];
    void *d_d = qt_ct_upload(QT_DTYPE_F32, zeros, 6);
    int *d_targets = upload_ints(targets, N);
    ck_assert_int_eq(
        qt_cuda_crossentropy_fwd(NULL, QT_DTYPE_F32, d_loss, d_stats, d_logits, d_targets, N, V),
        QT_OK);
    ck_assert_int_eq(qt_cuda_crossentropy_bwd(NULL, QT_DTYPE_F32, d_d, d_dlosses, d_logits,
                                              d_stats, d_targets, N, V),
                     QT_OK);
    qt_ct_download(QT_DTYPE_F32, loss, d_loss, 2);
    qt_ct_download(QT_DTYPE_F32, d, d_d, 6);
    ck_assert_msg(isfinite(loss[0]) && isnan(loss[1]), "losses %g %g", loss[0], loss[1]);
    for (int j = 0; j < 3; j++) ck_assert(isfinite(d[j]) && isnan(d[3 + j]));
    qt_ct_free(d_logits);
    qt_ct_free(d_stats);
    qt_ct_free(d_loss);
    qt_ct_free(d_dlosses);
    qt_ct_free(d_d);
    cudaFree(d_targets);
}
END_TEST

// Why there is no probabilities buffer. One fp16 row of V = 50272 logits in [-1, 1]: every
// probability is about 2e-5, below fp16's smallest normal (6.1e-5), so a stored fp16 probability
// keeps 8 bits or fewer. With the loss scaler's dloss = 1024 / 8, each exact gradient element
// is a normal fp16 number, and the kernel must deliver it with one rounding of the fp32 value:
// relative error <= 2^-11 (plus fp32 noise, 1e-6). The old schedule, the probability rounded to
// fp16 first and then scaled, is computed here too and must exceed that bound, so this check
// can tell the two apart.
START_TEST(test_fp16_gradient_rounded_once) {
    const int V = 50272, t = 123;
    const float dloss = 1024.0f / 8.0f;
    float *z = malloc((size_t)V * sizeof(float)), *got = malloc((size_t)V * sizeof(float));
    qt_test_fill_uniform(z, (size_t)V, -1.0f, 1.0f, 71);
    round_to(QT_DTYPE_F16, z, (size_t)V);
    void *d_z = qt_ct_upload(QT_DTYPE_F16, z, (size_t)V);
    float *d_stats = qt_ct_alloc(QT_DTYPE_F32, 2), *d_loss = qt_ct_alloc(QT_DTYPE_F32, 1);
    float *d_dloss = qt_ct_upload(QT_DTYPE_F32, &dloss, 1), stats[2];
    int *d_t = upload_ints(&t, 1);
    ck_assert_int_eq(
        qt_cuda_crossentropy_fwd(NULL, QT_DTYPE_F16, d_loss, d_stats, d_z, d_t, 1, V), QT_OK);
    ck_assert_int_eq(qt_cuda_crossentropy_bwd(NULL, QT_DTYPE_F16, d_z, d_dloss, d_z, d_stats,
                                              d_t, 1, V),
                     QT_OK);
    qt_ct_download(QT_DTYPE_F16, got, d_z, (size_t)V);
    qt_ct_download(QT_DTYPE_F32, stats, d_stats, 2);
    double mx = z[0], sum = 0.0, worst = 0.0, worst_old = 0.0, pmax = 0.0;
    for (int j = 1; j < V; j++) mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < V; j++) sum += exp((double)z[j] - mx);
    for (int j = 0; j < V; j++) {
        const double p = exp((double)z[j] - mx) / sum, want = dloss * (p - (j == t));
        const double old = qt_ct_round(QT_DTYPE_F16,
                                       (float)(dloss * qt_ct_round(QT_DTYPE_F16, (float)p) -
                                               (j == t ? dloss : 0.0f)));
        worst = fmax(worst, fabs(got[j] - want) / fabs(want));
        worst_old = fmax(worst_old, fabs(old - want) / fabs(want));
        pmax = fmax(pmax, p);
    }
    printf("test_cuda_crossentropy: fp16, V %d, largest probability %.3g: gradient relative "
           "error %.3g (bound %.3g); through an fp16 probability it would be %.3g\n",
           V, pmax, worst, 1.0 / 2048 + 1e-6, worst_old);
    ck_assert_msg(pmax < 6.1e-5, "the row is meant to have only subnormal fp16 probabilities");
    ck_assert_msg(worst <= 1.0 / 2048 + 1e-6, "fp16 dlogits relative error %g > 2^-11", worst);
    ck_assert_msg(worst_old > 1.0 / 2048 + 1e-6,
                  "the fp16-probability schedule (%g) would pass this check too", worst_old);
    qt_ct_free(d_z);
    qt_ct_free(d_stats);
    qt_ct_free(d_loss);
    qt_ct_free(d_dloss);
    cudaFree(d_t);
    free(z);
    free(got);
}
END_TEST

START_TEST(test_bad_args) {
    float x = 0.0f;
    int t = 0;
    ck_assert_int_eq(qt_cuda_crossentropy_fwd(NULL, QT_DTYPE_F32, &x, &x, &x, &t, 1, 0),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "crossentropy_fwd"));
    ck_assert_int_eq(qt_cuda_crossentropy_bwd(NULL, (qt_dtype)3, &x, &x, &x, &x, &t, 1, 1),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "crossentropy_bwd"));
    ck_assert_int_eq(qt_cuda_crossentropy_bwd(NULL, QT_DTYPE_F32, &x, &x, &x, &x, NULL, 1, 1),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_crossentropy_bwd(NULL, QT_DTYPE_F32, &x, &x, &x, NULL, &t, 1, 1),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_crossentropy_fwd(NULL, QT_DTYPE_F32, &x, NULL, &x, &t, 1, 1),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_crossentropy_fwd(NULL, QT_DTYPE_F32, &x, &x, &x, &t, -1, 1),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_crossentropy_fwd(NULL, QT_DTYPE_F32, NULL, NULL, NULL, NULL, 0, 5),
                     QT_OK);
}
END_TEST

static Suite *crossentropy_suite(void) {
    Suite *s = suite_create("cuda_crossentropy");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_vs_cpu, 0, 3);
    tcase_add_test(tc, test_bad_target_is_nan);
    tcase_add_test(tc, test_fp16_gradient_rounded_once);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(crossentropy_suite());
}

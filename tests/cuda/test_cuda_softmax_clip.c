// test_cuda_softmax_clip.c: qt_cuda_softmax_clip_{fwd,bwd} (kernels/cuda/softmax_clip.cu)
// against the CPU reference qt_cpu_softmax_clip_{fwd,bwd} (kernels/cpu/softmax_clip.c).
//
// Every case: random scores rounded to the dtype (the reference runs in fp32 on exactly the
// values the kernel reads), lens mixing 1, cols and random lengths, outputs poisoned (NaN) and
// guard bands checked after every buffer. The backward adds into a random dscores and runs on
// the p the kernel saved (so both sides clip the same values); masked columns must keep their
// start bits. Tolerances, err <= atol + rtol |ref| (NaN fails):
//   p (always fp32): atol 1e-6, rtol 1e-5;
//   probs, dscores: qt_ct_tolerance(dt) (fp32 1e-6 + 1e-5 |ref|, fp16 1e-3 + 4e-3 |ref|,
//                   bf16 1e-2 + 3e-2 |ref|): one rounding to dt of an fp32 result.
// The clip boundaries are hit exactly (a p + c = 0 and = 1 with p = 1/2 from two equal scores):
// the gradient must pass there (inclusive mask), as the formula evaluated by hand says.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_testutil.h"
#include "kernels/softmax_clip.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};

static const char *kind_name(qt_softmax_kind k) {
    return k == QT_SOFTMAX_VANILLA ? "vanilla" : k == QT_SOFTMAX_CLIPPED ? "clipped" : "ncs";
}

static qt_softmax_params make_params(qt_softmax_kind kind, float scale, int variant) {
    qt_softmax_params p = {.kind = kind, .scale = scale, .gamma = 0.0f, .zeta = 1.0f,
                           .eta = 1.0f, .beta = 1.0f};
    if (kind == QT_SOFTMAX_CLIPPED) {
        p.gamma = -0.2f; // clips at both ends on random rows
        p.zeta = 1.3f;
    } else if (kind == QT_SOFTMAX_NCS) {
        p.eta = 1.03f;
        p.beta = variant ? 1.2f : 1.0f; // beta > eta: c > 0, masked columns must stay 0
    }
    return p;
}

static void round_to(qt_dtype dt, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = qt_ct_round(dt, x[i]);
}

// Forward and backward of one (dtype, kind, shape, seed) case against the CPU.
static void check_case(qt_dtype dt, const qt_softmax_params *prm, int rows, int cols,
                       uint64_t seed) {
    const size_t n = (size_t)rows * cols;
    char tag[160];
    snprintf(tag, sizeof tag, "softmax_clip %s %s (rows %d, cols %d) seed %llu",
             qt_dtype_name(dt), kind_name(prm->kind), rows, cols, (unsigned long long)seed);
    float *scores = malloc(n * sizeof(float)), *dprobs = malloc(n * sizeof(float));
    float *ds0 = malloc(n * sizeof(float)), *ref_probs = malloc(n * sizeof(float));
    float *ref_p = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    float *got_p = malloc(n * sizeof(float)), *ref_ds = malloc(n * sizeof(float));
    int *lens = malloc((size_t)rows * sizeof(int));
    qt_test_fill_uniform(scores, n, -6.0f, 6.0f, seed);
    qt_test_fill_uniform(dprobs, n, -1.0f, 1.0f, seed + 1);
    qt_test_fill_uniform(ds0, n, -1.0f, 1.0f, seed + 2);
    round_to(dt, scores, n);
    round_to(dt, dprobs, n);
    round_to(dt, ds0, n);
    uint64_t st = seed * 0x9E3779B97F4A7C15ull + 7;
    for (int r = 0; r < rows; r++) { // 1, cols, then random lengths
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        lens[r] = r % 5 == 0 ? 1 : r % 5 == 1 ? cols : 1 + (int)((st >> 33) % (uint64_t)cols);
    }

    qt_cpu_softmax_clip_fwd(prm, ref_probs, ref_p, scores, lens, rows, cols);
    round_to(dt, ref_probs, n);

    void *d_scores = qt_ct_upload(dt, scores, n), *d_probs = qt_ct_alloc(dt, n);
    float *d_p = qt_ct_alloc(QT_DTYPE_F32, n);
    int *d_lens = NULL;
    ck_assert_int_eq(cudaMalloc((void **)&d_lens, (size_t)rows * sizeof(int)), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(d_lens, lens, (size_t)rows * sizeof(int), cudaMemcpyHostToDevice),
                     cudaSuccess);
    qt_status s = qt_cuda_softmax_clip_fwd(NULL, dt, prm, d_probs, d_p, d_scores, d_lens, rows,
                                           cols);
    ck_assert_msg(s == QT_OK, "%s: fwd returned %d: %s", tag, (int)s, qt_last_error());
    qt_ct_download(QT_DTYPE_F32, got_p, d_p, n);
    qt_ct_download(dt, got, d_probs, n);
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    double e_p = qt_test_max_err(got_p, ref_p, n, 1e-6, 1e-5);
    double e_probs = qt_test_max_err(got, ref_probs, n, atol, rtol);
    ck_assert_msg(e_p <= 1.0, "%s: p error %g x tolerance", tag, e_p);
    ck_assert_msg(e_probs <= 1.0, "%s: probs error %g x tolerance", tag, e_probs);
    for (int r = 0; r < rows; r++)
        for (int j = lens[r]; j < cols; j++) {
            size_t i = (size_t)r * cols + j;
            ck_assert_msg(got_p[i] == 0.0f && got[i] == 0.0f,
                          "%s: masked (row %d, col %d) is p %g, probs %g, not 0", tag, r, j,
                          got_p[i], got[i]);
        }
    ck_assert_msg(qt_ct_guard_ok(dt, d_probs, n) && qt_ct_guard_ok(QT_DTYPE_F32, d_p, n),
                  "%s: fwd wrote past the end of probs or p", tag);

    // backward on the kernel's own p; reference: ds0 + bwd(dprobs, p) in fp32
    memcpy(ref_ds, ds0, n * sizeof(float));
    qt_cpu_softmax_clip_bwd(prm, ref_ds, dprobs, got_p, lens, rows, cols);
    void *d_dprobs = qt_ct_upload(dt, dprobs, n), *d_ds = qt_ct_upload(dt, ds0, n);
    s = qt_cuda_softmax_clip_bwd(NULL, dt, prm, d_ds, d_dprobs, d_p, d_lens, rows, cols);
    ck_assert_msg(s == QT_OK, "%s: bwd returned %d: %s", tag, (int)s, qt_last_error());
    qt_ct_download(dt, got, d_ds, n);
    double e_ds = qt_test_max_err(got, ref_ds, n, atol, rtol);
    ck_assert_msg(e_ds <= 1.0, "%s: dscores error %g x tolerance", tag, e_ds);
    for (int r = 0; r < rows; r++)
        for (int j = lens[r]; j < cols; j++) {
            size_t i = (size_t)r * cols + j;
            ck_assert_msg(memcmp(&got[i], &ds0[i], sizeof(float)) == 0,
                          "%s: bwd touched masked (row %d, col %d): %g, was %g", tag, r, j,
                          got[i], ds0[i]);
        }
    ck_assert_msg(qt_ct_guard_ok(dt, d_ds, n), "%s: bwd wrote past the end of dscores", tag);

    qt_ct_free(d_scores);
    qt_ct_free(d_probs);
    qt_ct_free(d_p);
    qt_ct_free(d_dprobs);
    qt_ct_free(d_ds);
    cudaFree(d_lens);
    free(scores);
    free(dprobs);
    free(ds0);
    free(ref_probs);
    free(ref_p);
    free(got);
    free(got_p);
    free(ref_ds);
    free(lens);
}

// Odd shapes: not multiples of the warp (32) or of the block (4 rows), single-column rows,
// rows longer than a warp's stride many times over.
static const int SHAPES[][2] = {{1, 1}, {7, 31}, {33, 33}, {5, 1027}, {9, 64}, {6, 3}, {11, 40}, {5, 264}};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

START_TEST(test_fwd_bwd_vs_cpu) {
    // _i: dtype
    const qt_dtype dt = DTYPES[_i];
    const qt_softmax_kind kinds[3] = {QT_SOFTMAX_VANILLA, QT_SOFTMAX_CLIPPED, QT_SOFTMAX_NCS};
    for (int k = 0; k < 3; k++)
        for (int sh = 0; sh < N_SHAPES; sh++) {
            qt_softmax_params prm = make_params(kinds[k], 0.37f, sh & 1);
            check_case(dt, &prm, SHAPES[sh][0], SHAPES[sh][1],
                       1000u + 100u * (uint64_t)k + (uint64_t)sh);
        }
}
END_TEST

// Two equal attended scores give p = 1/2 exactly; (gamma, zeta) = (-1, 1) puts a p + c at 0,
// (-0.5, 2.5) at 1. The inclusive mask passes the gradient there:
//   dscores_j = scale p_j (g_j - (g_0 + g_1) / 2), g_j = a dprobs_j.
START_TEST(test_clip_boundaries_inclusive) {
    const qt_dtype dt = DTYPES[_i];
    const float gz[2][2] = {{-1.0f, 1.0f}, {-0.5f, 2.5f}};
    const float want_probs[2] = {0.0f, 1.0f};
    const int rows = 3, cols = 5;
    const float scale = 0.37f; // scale * score is inexact: both passes must round it alike
    // rows: two equal attended scores; the same with a masked third; n = 1
    const float scores[15] = {0.75f, 0.75f, 9.0f, 9.0f, 9.0f, -2.0f, -2.0f, 3.0f,
                              1.0f,  1.0f,  4.0f, 8.0f, -3.0f, 2.0f, 2.0f};
    const int lens[3] = {2, 2, 1};
    const float dprobs[15] = {0.5f, -0.25f, 1.0f, 1.0f, 1.0f, 0.125f, 0.75f, 1.0f,
                              1.0f, 1.0f,   0.5f, 1.0f, 1.0f, 1.0f,   1.0f};
    for (int b = 0; b < 2; b++) {
        qt_softmax_params prm = {.kind = QT_SOFTMAX_CLIPPED, .scale = scale, .gamma = gz[b][0],
                                 .zeta = gz[b][1], .eta = 1.0f, .beta = 1.0f};
        const float a = gz[b][1] - gz[b][0];
        void *d_scores = qt_ct_upload(dt, scores, 15), *d_probs = qt_ct_alloc(dt, 15);
        float *d_p = qt_ct_alloc(QT_DTYPE_F32, 15);
        float zeros[15] = {0};
        void *d_ds = qt_ct_upload(dt, zeros, 15), *d_dprobs = qt_ct_upload(dt, dprobs, 15);
        int *d_lens = NULL;
        ck_assert_int_eq(cudaMalloc((void **)&d_lens, sizeof lens), cudaSuccess);
        ck_assert_int_eq(cudaMemcpy(d_lens, lens, sizeof lens, cudaMemcpyHostToDevice),
                         cudaSuccess);
        ck_assert_int_eq(qt_cuda_softmax_clip_fwd(NULL, dt, &prm, d_probs, d_p, d_scores, d_lens,
                                                  rows, cols),
                         QT_OK);
        ck_assert_int_eq(qt_cuda_softmax_clip_bwd(NULL, dt, &prm, d_ds, d_dprobs, d_p, d_lens,
                                                  rows, cols),
                         QT_OK);
        float p[15], probs[15], ds[15];
        qt_ct_download(QT_DTYPE_F32, p, d_p, 15);
        qt_ct_download(dt, probs, d_probs, 15);
        qt_ct_download(dt, ds, d_ds, 15);
        for (int r = 0; r < 2; r++) {
            const float *g = dprobs + r * cols;
            for (int j = 0; j < 2; j++) {
                const int i = r * cols + j;
                ck_assert_msg(p[i] == 0.5f, "boundary %s: p[%d] = %.9g, not 1/2",
                              qt_dtype_name(dt), i, p[i]);
                ck_assert_msg(probs[i] == want_probs[b], "boundary %s gamma %g: probs[%d] = %g",
                              qt_dtype_name(dt), gz[b][0], i, probs[i]);
                const double want = scale * 0.5 * (a * g[j] - a * (g[0] + g[1]) / 2.0);
                ck_assert_msg(want != 0.0 && fabs(ds[i] - want) <= 1e-2 * fabs(want),
                              "boundary %s gamma %g: dscores[%d] = %g, want %g (inclusive mask)",
                              qt_dtype_name(dt), gz[b][0], i, ds[i], want);
            }
        }
        // n = 1: p = 1 and probs = clip(a + c) = clip(zeta); the gradient of a 1-key row is 0
        ck_assert_msg(p[10] == 1.0f && ds[10] == 0.0f, "boundary %s: n = 1 row p %g, ds %g",
                      qt_dtype_name(dt), p[10], ds[10]);
        ck_assert_msg(probs[10] == 1.0f, "boundary %s: n = 1 row probs %g", qt_dtype_name(dt),
                      probs[10]);
        qt_ct_free(d_scores);
        qt_ct_free(d_probs);
        qt_ct_free(d_p);
        qt_ct_free(d_ds);
        qt_ct_free(d_dprobs);
        cudaFree(d_lens);
    }
}
END_TEST

// probs == scores (in place) gives what the out-of-place call gives.
START_TEST(test_fwd_in_place) {
    const qt_dtype dt = DTYPES[_i];
    const int rows = 11, cols = 45;
    const size_t n = (size_t)rows * cols;
    float scores[11 * 45], a[11 * 45], b[11 * 45];
    int lens[11];
    qt_test_fill_uniform(scores, n, -3.0f, 3.0f, 77);
    for (int r = 0; r < rows; r++) lens[r] = 1 + (r * 7) % cols;
    qt_softmax_params prm = make_params(QT_SOFTMAX_NCS, 0.5f, 1);
    int *d_lens = NULL;
    ck_assert_int_eq(cudaMalloc((void **)&d_lens, sizeof lens), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(d_lens, lens, sizeof lens, cudaMemcpyHostToDevice), cudaSuccess);
    void *d_x = qt_ct_upload(dt, scores, n), *d_y = qt_ct_alloc(dt, n);
    float *d_p = qt_ct_alloc(QT_DTYPE_F32, n);
    ck_assert_int_eq(qt_cuda_softmax_clip_fwd(NULL, dt, &prm, d_y, d_p, d_x, d_lens, rows, cols),
                     QT_OK);
    ck_assert_int_eq(qt_cuda_softmax_clip_fwd(NULL, dt, &prm, d_x, d_p, d_x, d_lens, rows, cols),
                     QT_OK);
    qt_ct_download(dt, a, d_y, n);
    qt_ct_download(dt, b, d_x, n);
    ck_assert_msg(memcmp(a, b, sizeof a) == 0, "softmax_clip %s in place differs",
                  qt_dtype_name(dt));
    qt_ct_free(d_x);
    qt_ct_free(d_y);
    qt_ct_free(d_p);
    cudaFree(d_lens);
}
END_TEST

// A row whose lens is outside [1, cols] comes out NaN (never an out-of-bounds read); others fine.
START_TEST(test_bad_lens_row_is_nan) {
    const int rows = 3, cols = 4;
    const float scores[12] = {1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4};
    const int lens[3] = {2, 0, 5};
    qt_softmax_params prm = make_params(QT_SOFTMAX_VANILLA, 1.0f, 0);
    int *d_lens = NULL;
    ck_assert_int_eq(cudaMalloc((void **)&d_lens, sizeof lens), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(d_lens, lens, sizeof lens, cudaMemcpyHostToDevice), cudaSuccess);
    void *d_x = qt_ct_upload(QT_DTYPE_F32, scores, 12), *d_y = qt_ct_alloc(QT_DTYPE_F32, 12);
    float *d_p = qt_ct_alloc(QT_DTYPE_F32, 12);
    ck_assert_int_eq(
        qt_cuda_softmax_clip_fwd(NULL, QT_DTYPE_F32, &prm, d_y, d_p, d_x, d_lens, rows, cols),
        QT_OK);
    float y[12], p[12];
    qt_ct_download(QT_DTYPE_F32, y, d_y, 12);
    qt_ct_download(QT_DTYPE_F32, p, d_p, 12);
    ck_assert(fabsf(y[0] + y[1] - 1.0f) <= 1e-6f && y[2] == 0.0f && y[3] == 0.0f);
    for (int j = 4; j < 12; j++)
        ck_assert_msg(isnan(y[j]) && isnan(p[j]), "bad lens: element %d is %g, not NaN", j, y[j]);
    qt_ct_free(d_x);
    qt_ct_free(d_y);
    qt_ct_free(d_p);
    cudaFree(d_lens);
}
END_TEST

START_TEST(test_bad_args) {
    qt_softmax_params prm = make_params(QT_SOFTMAX_VANILLA, 1.0f, 0);
    float x = 0.0f;
    int len = 1;
    ck_assert_int_eq(qt_cuda_softmax_clip_fwd(NULL, QT_DTYPE_F32, NULL, &x, &x, &x, &len, 1, 1),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "softmax_clip_fwd"));
    prm.kind = (qt_softmax_kind)7;
    ck_assert_int_eq(qt_cuda_softmax_clip_bwd(NULL, QT_DTYPE_F32, &prm, &x, &x, &x, &len, 1, 1),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "softmax_clip_bwd"));
    // the CPU op's parameter checks (base/params_check.h): a positive gamma, a bad NCS stretch
    prm = make_params(QT_SOFTMAX_CLIPPED, 1.0f, 0);
    prm.gamma = 0.5f;
    ck_assert_int_eq(qt_cuda_softmax_clip_fwd(NULL, QT_DTYPE_F32, &prm, &x, &x, &x, &len, 1, 1),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "gamma"));
    prm = make_params(QT_SOFTMAX_NCS, 1.0f, 0);
    prm.eta = 1.0f;
    prm.beta = 2.5f;
    ck_assert_int_eq(qt_cuda_softmax_clip_bwd(NULL, QT_DTYPE_F32, &prm, &x, &x, &x, &len, 1, 1),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "beta < 2 eta"));
    prm = make_params(QT_SOFTMAX_VANILLA, 1.0f, 0);
    ck_assert_int_eq(qt_cuda_softmax_clip_fwd(NULL, QT_DTYPE_F32, &prm, &x, &x, &x, &len, 1, 0),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_softmax_clip_fwd(NULL, (qt_dtype)9, &prm, &x, &x, &x, &len, 1, 1),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_softmax_clip_fwd(NULL, QT_DTYPE_F32, &prm, NULL, &x, &x, &len, 1, 1),
                     QT_ERR_ARG);
    // no rows: nothing to do, nothing dereferenced
    ck_assert_int_eq(qt_cuda_softmax_clip_fwd(NULL, QT_DTYPE_F32, &prm, NULL, NULL, NULL, NULL, 0,
                                              8),
                     QT_OK);
}
END_TEST

static Suite *softmax_clip_suite(void) {
    Suite *s = suite_create("cuda_softmax_clip");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_fwd_bwd_vs_cpu, 0, 3);
    tcase_add_loop_test(tc, test_clip_boundaries_inclusive, 0, 3);
    tcase_add_loop_test(tc, test_fwd_in_place, 0, 3);
    tcase_add_test(tc, test_bad_lens_row_is_nan);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(softmax_clip_suite());
}

// test_cuda_dropout.c: qt_cuda_dropout_{fwd,bwd} (kernels/cuda/dropout.cu) against the CPU's
// qt_cpu_dropout_{fwd,bwd} (kernels/cpu/dropout.c) and against the Philox draw itself.
//
// The mask must be the CPU's bit for bit: with inputs that are never 0, an element is dropped
// exactly where the output is 0, and that set must equal {i : qt_philox_uniform(seed, stream,
// i) < prob}. The values are exact too, in every dtype: the kernel rounds x s (and the
// backward's sum) once in fp32 like the CPU, then once to dt, so the comparison with the CPU op
// run on the dt-rounded inputs and rounded to dt is by bits (tolerance 0).
// Sizes cover tails of the 4-element Philox groups and of the 256-thread block (1, 2, 3, 5, 31,
// 33, 1027, 4099); seeds and streams use both 32-bit halves. Outputs poisoned, guards checked.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_testutil.h"
#include "base/philox.h"
#include "kernels/dropout.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
static const size_t SIZES[] = {1, 2, 3, 5, 31, 33, 1027, 4099};
#define N_SIZES (sizeof SIZES / sizeof SIZES[0])
static const float PROBS[] = {0.0f, 0.1f, 0.5f, 0.9f, 1.0f};
#define N_PROBS (sizeof PROBS / sizeof PROBS[0])

// Values in +-[0.25, 2): never 0, so 0 in an output means dropped.
static void fill_nonzero(qt_dtype dt, float *x, size_t n, uint64_t seed) {
    qt_test_fill_uniform(x, n, 0.25f, 2.0f, seed);
    for (size_t i = 0; i < n; i++) x[i] = qt_ct_round(dt, (i * 7) % 3 == 1 ? -x[i] : x[i]);
}

static void round_to(qt_dtype dt, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = qt_ct_round(dt, x[i]);
}

// Index of the first element whose bits differ, or n.
static size_t first_diff(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) return i;
    return n;
}

static void check_case(qt_dtype dt, size_t n, float prob, uint64_t seed, uint64_t stream) {
    char tag[160];
    snprintf(tag, sizeof tag, "dropout %s n %zu prob %g seed %#llx stream %#llx",
             qt_dtype_name(dt), n, prob, (unsigned long long)seed, (unsigned long long)stream);
    float *x = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
    float *got = malloc(n * sizeof(float)), *dx0 = malloc(n * sizeof(float));
    fill_nonzero(dt, x, n, seed ^ 0xABCD);
    qt_test_fill_uniform(dx0, n, -1.0f, 1.0f, seed ^ 0x1234);
    round_to(dt, dx0, n);

    // forward, out of place
    qt_cpu_dropout_fwd(ref, x, n, prob, seed, stream);
    round_to(dt, ref, n);
    void *d_x = qt_ct_upload(dt, x, n), *d_out = qt_ct_alloc(dt, n);
    qt_status s = qt_cuda_dropout_fwd(NULL, dt, d_out, d_x, n, prob, seed, stream);
    ck_assert_msg(s == QT_OK, "%s: fwd returned %d: %s", tag, (int)s, qt_last_error());
    qt_ct_download(dt, got, d_out, n);
    for (size_t i = 0; i < n; i++) {
        const int dropped = qt_philox_uniform(seed, stream, i) < prob;
        ck_assert_msg((got[i] == 0.0f) == dropped, "%s: element %zu %s, Philox says %s", tag, i,
                      got[i] == 0.0f ? "dropped" : "kept", dropped ? "drop" : "keep");
    }
    size_t d = first_diff(got, ref, n);
    ck_assert_msg(d == n, "%s: fwd element %zu is %.9g, CPU %.9g", tag, d, got[d], ref[d]);
    ck_assert_msg(qt_ct_guard_ok(dt, d_out, n), "%s: fwd wrote past the end", tag);

    // forward in place
    s = qt_cuda_dropout_fwd(NULL, dt, d_x, d_x, n, prob, seed, stream);
    ck_assert_msg(s == QT_OK, "%s: in-place fwd returned %d", tag, (int)s);
    qt_ct_download(dt, got, d_x, n);
    d = first_diff(got, ref, n);
    ck_assert_msg(d == n, "%s: in-place fwd element %zu is %.9g, CPU %.9g", tag, d, got[d],
                  ref[d]);

    // backward, accumulating into dx0: dout is x
    memcpy(ref, dx0, n * sizeof(float));
    qt_cpu_dropout_bwd(ref, x, n, prob, seed, stream);
    round_to(dt, ref, n);
    void *d_dout = qt_ct_upload(dt, x, n), *d_dx = qt_ct_upload(dt, dx0, n);
    s = qt_cuda_dropout_bwd(NULL, dt, d_dx, d_dout, n, prob, seed, stream);
    ck_assert_msg(s == QT_OK, "%s: bwd returned %d: %s", tag, (int)s, qt_last_error());
    qt_ct_download(dt, got, d_dx, n);
    d = first_diff(got, ref, n);
    ck_assert_msg(d == n, "%s: bwd element %zu is %.9g, CPU %.9g", tag, d, got[d], ref[d]);
    ck_assert_msg(qt_ct_guard_ok(dt, d_dx, n), "%s: bwd wrote past the end", tag);

    // backward aliased (dx == dout): overwritten with the masked, scaled dout
    memcpy(ref, x, n * sizeof(float));
    qt_cpu_dropout_bwd(ref, ref, n, prob, seed, stream);
    round_to(dt, ref, n);
    s = qt_cuda_dropout_bwd(NULL, dt, d_dout, d_dout, n, prob, seed, stream);
    ck_assert_msg(s == QT_OK, "%s: aliased bwd returned %d", tag, (int)s);
    qt_ct_download(dt, got, d_dout, n);
    d = first_diff(got, ref, n);
    ck_assert_msg(d == n, "%s: aliased bwd element %zu is %.9g, CPU %.9g", tag, d, got[d],
                  ref[d]);

    qt_ct_free(d_x);
    qt_ct_free(d_out);
    qt_ct_free(d_dout);
    qt_ct_free(d_dx);
    free(x);
    free(ref);
    free(got);
    free(dx0);
}

START_TEST(test_vs_cpu_bitwise) {
    // _i: dtype
    for (size_t si = 0; si < N_SIZES; si++)
        for (size_t pi = 0; pi < N_PROBS; pi++) {
            const uint64_t seed = 0x1234567890ABCDEFull + si * 31 + pi;
            const uint64_t stream = qt_stream_id(si, pi, (uint64_t)_i); // high bits set
            check_case(DTYPES[_i], SIZES[si], PROBS[pi], seed, stream);
        }
}
END_TEST

// The drop rate is prob (a property of the mask, not of the CPU code): 4099 x 8 draws at 0.3.
START_TEST(test_drop_rate) {
    const size_t n = 4099;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    void *d_x = qt_ct_upload(QT_DTYPE_F32, x, n), *d_y = qt_ct_alloc(QT_DTYPE_F32, n);
    size_t dropped = 0;
    for (uint64_t stream = 0; stream < 8; stream++) {
        ck_assert_int_eq(qt_cuda_dropout_fwd(NULL, QT_DTYPE_F32, d_y, d_x, n, 0.3f, 42, stream),
                         QT_OK);
        qt_ct_download(QT_DTYPE_F32, y, d_y, n);
        for (size_t i = 0; i < n; i++) dropped += y[i] == 0.0f;
    }
    const double rate = (double)dropped / (double)(8 * n);
    // binomial sd = sqrt(0.3 * 0.7 / 32792) = 0.0025: 5 sd
    ck_assert_msg(fabs(rate - 0.3) <= 0.0127, "dropout rate %g, want 0.3", rate);
    qt_ct_free(d_x);
    qt_ct_free(d_y);
    free(x);
    free(y);
}
END_TEST

START_TEST(test_bad_args) {
    float v = 1.0f;
    ck_assert_int_eq(qt_cuda_dropout_fwd(NULL, (qt_dtype)5, &v, &v, 1, 0.1f, 1, 1), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "dropout_fwd"));
    ck_assert_int_eq(qt_cuda_dropout_bwd(NULL, QT_DTYPE_F32, &v, &v, 1, NAN, 1, 1), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "dropout_bwd"));
    ck_assert_int_eq(qt_cuda_dropout_fwd(NULL, QT_DTYPE_F32, NULL, &v, 1, 0.1f, 1, 1), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_dropout_fwd(NULL, QT_DTYPE_F32, NULL, NULL, 0, 0.1f, 1, 1), QT_OK);
    // more blocks than one launch takes: refused before anything is read
    ck_assert_int_eq(qt_cuda_dropout_fwd(NULL, QT_DTYPE_F32, &v, &v, (size_t)1 << 45, 0.1f, 1, 1),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "split"));
}
END_TEST

static Suite *dropout_suite(void) {
    Suite *s = suite_create("cuda_dropout");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_vs_cpu_bitwise, 0, 3);
    tcase_add_test(tc, test_drop_rate);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(dropout_suite());
}

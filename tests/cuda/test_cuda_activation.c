// test_cuda_activation.c: kernels/cuda/activation.cu (GELU, ReLU) against the CPU reference
// (kernels/activation.h) on odd sizes, in fp32, fp16 and bf16, with outputs poisoned (NaN) and
// guard bands checked. Inputs are rounded to the dtype first, so the reference sees exactly
// what the kernel reads. Tolerances (err <= atol + rtol |ref|): qt_ct_tolerance (fp32 1e-6 +
// 1e-5 relative; fp16 1e-3 + 4e-3; bf16 1e-2 + 3e-2); ReLU is exact: compared bit for bit (as
// floats, NaN matching NaN).
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_testutil.h"
#include "kernels/activation.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
static const size_t SIZES[] = {1, 31, 33, 257, 1027};
#define NSIZES ((int)(sizeof SIZES / sizeof SIZES[0]))
// elementwise.cu's grid cap (EW_MAX_BLOCKS * EW_THREADS) plus a bit: the grid-stride loop runs
// a second round.

// ---- GELU, ReLU -----------------------------------------------------------------------------

typedef enum { ACT_GELU, ACT_RELU } act_kind;

static const char *act_name(act_kind k) { return k == ACT_GELU ? "gelu" : "relu"; }

// x: uniform in [-6, 6), with a few special points: 0, large magnitudes (exp's cap) and, for
// ReLU, exact zeros and -0.
static float *act_inputs(qt_dtype dt, size_t n, uint64_t seed) {
    float *x = qt_ct_rand_rounded(dt, n, -6.0f, 6.0f, seed);
    static const float special[] = {0.0f, -0.0f, 30.0f, -30.0f, 100.0f, -100.0f, 1e-3f};
    for (size_t i = 0; i < n && i < sizeof special / sizeof special[0]; i++)
        x[n - 1 - i] = qt_ct_round(dt, special[i]);
    return x;
}

// alias: forward out aliases x; backward dx aliases dout (overwrite form).
static void check_act(act_kind k, qt_dtype dt, size_t n, int alias, uint64_t seed) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    float *x = act_inputs(dt, n, seed);
    float *dout = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, seed + 1);
    float *dx = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, seed + 2); // pre-filled gradient
    float *out = malloc(n * sizeof *out);
    // reference
    if (k == ACT_GELU)
        qt_cpu_gelu_fwd(out, x, n);
    else
        qt_cpu_relu_fwd(out, x, n);
    float *ref_dx = malloc(n * sizeof *ref_dx);
    if (alias)
        memcpy(ref_dx, dout, n * sizeof *ref_dx);
    else
        memcpy(ref_dx, dx, n * sizeof *ref_dx);
    if (k == ACT_GELU)
        qt_cpu_gelu_bwd(ref_dx, alias ? ref_dx : dout, x, n);
    else
        qt_cpu_relu_bwd(ref_dx, alias ? ref_dx : dout, x, n);

    // forward
    void *d_x = qt_ct_upload(dt, x, n);
    void *d_out = alias ? d_x : qt_ct_alloc(dt, n);
    qt_status st = k == ACT_GELU ? qt_cuda_gelu_fwd(NULL, dt, d_out, d_x, n)
                                 : qt_cuda_relu_fwd(NULL, dt, d_out, d_x, n);
    ck_assert_msg(st == QT_OK, "%s_fwd %s n=%zu: %s", act_name(k), qt_dtype_name(dt), n,
                  qt_last_error());
    const double ef = qt_ct_dev_err(dt, d_out, out, n, atol, rtol);
    ck_assert_msg(ef <= 1.0, "%s_fwd %s n=%zu alias=%d seed=%llu: err %g", act_name(k),
                  qt_dtype_name(dt), n, alias, (unsigned long long)seed, ef);
    ck_assert_msg(qt_ct_guard_ok(dt, d_out, n), "%s_fwd %s n=%zu: guard band overwritten",
                  act_name(k), qt_dtype_name(dt), n);
    if (!alias) qt_ct_free(d_out);
    qt_ct_free(d_x);

    // backward
    d_x = qt_ct_upload(dt, x, n);
    void *d_dout = qt_ct_upload(dt, dout, n);
    void *d_dx = alias ? d_dout : qt_ct_upload(dt, dx, n);
    st = k == ACT_GELU ? qt_cuda_gelu_bwd(NULL, dt, d_dx, d_dout, d_x, n)
                       : qt_cuda_relu_bwd(NULL, dt, d_dx, d_dout, d_x, n);
    ck_assert_msg(st == QT_OK, "%s_bwd %s n=%zu: %s", act_name(k), qt_dtype_name(dt), n,
                  qt_last_error());
    const double eb = qt_ct_dev_err(dt, d_dx, ref_dx, n, atol, rtol);
    ck_assert_msg(eb <= 1.0, "%s_bwd %s n=%zu alias=%d seed=%llu: err %g", act_name(k),
                  qt_dtype_name(dt), n, alias, (unsigned long long)seed, eb);
    ck_assert_msg(qt_ct_guard_ok(dt, d_dx, n), "%s_bwd %s n=%zu: guard band overwritten",
                  act_name(k), qt_dtype_name(dt), n);
    if (!alias) qt_ct_free(d_dx);
    qt_ct_free(d_dout);
    qt_ct_free(d_x);
    free(x);
    free(dout);
    free(dx);
    free(out);
    free(ref_dx);
}

START_TEST(test_gelu) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSIZES; s++)
            for (int alias = 0; alias < 2; alias++)
                check_act(ACT_GELU, DTYPES[d], SIZES[s], alias,
                          1000 + 10 * (uint64_t)s + 3 * (uint64_t)d + (uint64_t)alias);
}
END_TEST

START_TEST(test_relu) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSIZES; s++)
            for (int alias = 0; alias < 2; alias++)
                check_act(ACT_RELU, DTYPES[d], SIZES[s], alias,
                          2000 + 10 * (uint64_t)s + 3 * (uint64_t)d + (uint64_t)alias);
}
END_TEST

// ---- vector and scalar paths ----------------------------------------------------------------
// The kernels move 16-byte chunks when every pointer is 16-byte aligned (cudaMalloc memory: the
// vector path, an odd n leaving a scalar tail) and single elements when one is not (a pointer
// one element into its allocation: the scalar path). Both paths compute each element the same
// way, so they must agree bit for bit (and with the CPU within the tolerances above), writing
// nothing outside [0, n): the element before a shifted tensor holds a sentinel, and the guard
// band after it is checked.
#define SENTINEL 7.0f

// A device copy of host (n values of dt) starting `shift` (0 or 1) elements into its
// allocation, the element before it SENTINEL. Free with free_shifted.
static void *upload_shifted(qt_dtype dt, const float *host, size_t n, int shift) {
    float *tmp = malloc((n + 1) * sizeof *tmp);
    tmp[0] = SENTINEL;
    memcpy(tmp + 1, host, n * sizeof *tmp);
    char *base = qt_ct_upload(dt, shift ? tmp : tmp + 1, n + (size_t)shift);
    free(tmp);
    return base + (size_t)shift * qt_dtype_size(dt);
}

static int shifted_ok(qt_dtype dt, const void *dev, size_t n, int shift) {
    float before = SENTINEL;
    if (shift) qt_ct_download(dt, &before, (const char *)dev - qt_dtype_size(dt), 1);
    return before == SENTINEL && qt_ct_guard_ok(dt, dev, n);
}

static void free_shifted(qt_dtype dt, void *dev, int shift) {
    qt_ct_free((char *)dev - (size_t)shift * qt_dtype_size(dt));
}

// 1 if a and b hold the same floats (NaN matching NaN, zeros by sign).
static int same_bits(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(isnan(a[i]) && isnan(b[i])) && (!(a[i] == b[i]) || signbit(a[i]) != signbit(b[i])))
            return 0;
    return 1;
}

// Shifts of (output, x, dout); the first, all aligned, is the vector path the others (scalar)
// are compared with. mode 0: forward; 1: backward adding into dx; 2: backward in place (dx is
// dout, so its shift is dout's).
static const int SHIFTS[][3] = {{0, 0, 0}, {1, 1, 1}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
#define NSHIFTS ((int)(sizeof SHIFTS / sizeof SHIFTS[0]))

static float *run_shifted(act_kind k, int mode, qt_dtype dt, const float *x, const float *dout,
                          const float *dx, size_t n, const int *sh) {
    void *d_x = upload_shifted(dt, x, n, sh[1]), *d_g = upload_shifted(dt, dout, n, sh[2]);
    const int so = mode == 2 ? sh[2] : sh[0];
    void *d_o = mode == 2 ? d_g : upload_shifted(dt, dx, n, so);
    qt_status st;
    if (mode == 0)
        st = k == ACT_GELU ? qt_cuda_gelu_fwd(NULL, dt, d_o, d_x, n)
                           : qt_cuda_relu_fwd(NULL, dt, d_o, d_x, n);
    else
        st = k == ACT_GELU ? qt_cuda_gelu_bwd(NULL, dt, d_o, d_g, d_x, n)
                           : qt_cuda_relu_bwd(NULL, dt, d_o, d_g, d_x, n);
    ck_assert_msg(st == QT_OK, "%s mode %d %s n=%zu: %s", act_name(k), mode, qt_dtype_name(dt), n,
                  qt_last_error());
    float *got = qt_ct_download_new(dt, d_o, n);
    ck_assert_msg(shifted_ok(dt, d_o, n, so) && shifted_ok(dt, d_x, n, sh[1]) &&
                      shifted_ok(dt, d_g, n, sh[2]),
                  "%s mode %d %s n=%zu shifts (%d,%d,%d): wrote outside [0, n)", act_name(k), mode,
                  qt_dtype_name(dt), n, sh[0], sh[1], sh[2]);
    if (mode != 2) free_shifted(dt, d_o, so);
    free_shifted(dt, d_x, sh[1]);
    free_shifted(dt, d_g, sh[2]);
    return got;
}

START_TEST(test_act_vector_and_scalar_paths) {
    static const size_t ns[] = {3, 37, 1027};
    for (int k = 0; k < 2; k++)
        for (int d = 0; d < 3; d++)
            for (int z = 0; z < 3; z++)
                for (int mode = 0; mode < 3; mode++) {
                    const qt_dtype dt = DTYPES[d];
                    const size_t n = ns[z];
                    const uint64_t seed =
                        7000 + 100 * (uint64_t)(3 * k + d) + 10 * (uint64_t)z + (uint64_t)mode;
                    double atol, rtol;
                    qt_ct_tolerance(dt, &atol, &rtol);
                    float *x = act_inputs(dt, n, seed);
                    float *dout = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, seed + 1);
                    float *dx = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, seed + 2);
                    float *ref = malloc(n * sizeof *ref);
                    memcpy(ref, mode == 2 ? dout : dx, n * sizeof *ref);
                    if (mode == 0)
                        (k == ACT_GELU ? qt_cpu_gelu_fwd : qt_cpu_relu_fwd)(ref, x, n);
                    else
                        (k == ACT_GELU ? qt_cpu_gelu_bwd
                                       : qt_cpu_relu_bwd)(ref, mode == 2 ? ref : dout, x, n);
                    float *vec = run_shifted((act_kind)k, mode, dt, x, dout, dx, n, SHIFTS[0]);
                    const double e = qt_test_max_err(vec, ref, n, atol, rtol);
                    ck_assert_msg(e <= 1.0, "%s mode %d %s n=%zu seed=%llu: err %g",
                                  act_name((act_kind)k), mode, qt_dtype_name(dt), n,
                                  (unsigned long long)seed, e);
                    for (int s = 1; s < NSHIFTS; s++) {
                        float *sc = run_shifted((act_kind)k, mode, dt, x, dout, dx, n, SHIFTS[s]);
                        ck_assert_msg(same_bits(sc, vec, n),
                                      "%s mode %d %s n=%zu shifts (%d,%d,%d) seed=%llu: the "
                                      "scalar path differs from the vector path",
                                      act_name((act_kind)k), mode, qt_dtype_name(dt), n,
                                      SHIFTS[s][0], SHIFTS[s][1], SHIFTS[s][2],
                                      (unsigned long long)seed);
                        free(sc);
                    }
                    free(vec);
                    free(x);
                    free(dout);
                    free(dx);
                    free(ref);
                }
}
END_TEST

// ---- bad arguments --------------------------------------------------------------------------

START_TEST(test_activation_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    ck_assert_int_eq(qt_cuda_gelu_fwd(NULL, (qt_dtype)9, buf, buf, 4), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "gelu_fwd"));
    ck_assert_int_eq(qt_cuda_relu_bwd(NULL, QT_DTYPE_F16, buf, NULL, buf, 4), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "relu_bwd"));
    // n == 0 and N == 0 are no-ops
    ck_assert_int_eq(qt_cuda_gelu_bwd(NULL, QT_DTYPE_BF16, buf, buf, buf, 0), QT_OK);
    qt_ct_free(buf);
}
END_TEST

static Suite *cuda_activation_suite(void) {
    Suite *s = suite_create("cuda_activation");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gelu);
    tcase_add_test(tc, test_relu);
    tcase_add_test(tc, test_act_vector_and_scalar_paths);
    tcase_add_test(tc, test_activation_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(cuda_activation_suite());
}

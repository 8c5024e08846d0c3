// test_cuda_elementwise.c: kernels/cuda/elementwise.cu (add, bias add, bias gradient, casts)
// against the CPU reference ops (kernels/elementwise.h, kernels/linear.h) and cuda_testutil.c's
// conversions, on odd sizes, in fp32, fp16 and bf16, with outputs poisoned (NaN) and guard
// bands checked. Inputs are rounded to the dtype first, so the reference sees exactly what the
// kernel reads. Tolerances (err <= atol + rtol |ref|): qt_ct_tolerance (fp32 1e-6 + 1e-5
// relative; fp16 1e-3 + 4e-3; bf16 1e-2 + 3e-2); the bias column sums get atol scaled by
// sqrt(N) (sums of N random-sign terms of size ~1). Casts and add are exact: compared bit for
// bit (as floats, NaN matching NaN).
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_testutil.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "testutil.h"

static const qt_dtype DTYPES[3] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
static const size_t SIZES[] = {1, 31, 33, 257, 1027};
#define NSIZES ((int)(sizeof SIZES / sizeof SIZES[0]))
// elementwise.cu's grid cap (EW_MAX_BLOCKS * EW_THREADS) plus a bit: the grid-stride loop runs
// a second round.
#define BIG_N (8192u * 256u + 37u)

// Index of the first element where dev differs from want (NaN equal to NaN), or n.
static size_t dev_mismatch(qt_dtype dt, const void *dev, const float *want, size_t n) {
    float *got = qt_ct_download_new(dt, dev, n);
    size_t i = 0;
    for (; i < n; i++) {
        if (isnan(got[i]) && isnan(want[i])) continue;
        if (!(got[i] == want[i]) || signbit(got[i]) != signbit(want[i])) break;
    }
    free(got);
    return i;
}

// ---- add, bias add, bias grad ---------------------------------------------------------------

// alias: 0 none, 1 out is a, 2 out is b.
static void check_add(qt_dtype dt, size_t n, int alias, uint64_t seed) {
    float *a = qt_ct_rand_rounded(dt, n, -3.0f, 3.0f, seed);
    float *b = qt_ct_rand_rounded(dt, n, -3.0f, 3.0f, seed + 1);
    float *ref = malloc(n * sizeof *ref);
    qt_cpu_add(ref, a, b, n);
    for (size_t i = 0; i < n; i++) ref[i] = qt_ct_round(dt, ref[i]); // one rounding: exact
    void *da = qt_ct_upload(dt, a, n), *db = qt_ct_upload(dt, b, n);
    void *dout = alias == 1 ? da : alias == 2 ? db : qt_ct_alloc(dt, n);
    qt_status st = qt_cuda_add(NULL, dt, dout, da, db, n);
    ck_assert_msg(st == QT_OK, "add %s n=%zu: %s", qt_dtype_name(dt), n, qt_last_error());
    const size_t bad = dev_mismatch(dt, dout, ref, n);
    ck_assert_msg(bad == n, "add %s n=%zu alias=%d seed=%llu: element %zu differs",
                  qt_dtype_name(dt), n, alias, (unsigned long long)seed, bad);
    ck_assert_msg(qt_ct_guard_ok(dt, dout, n), "add %s n=%zu: guard band overwritten",
                  qt_dtype_name(dt), n);
    if (alias == 0) qt_ct_free(dout);
    qt_ct_free(da);
    qt_ct_free(db);
    free(a);
    free(b);
    free(ref);
}

START_TEST(test_add) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NSIZES; s++)
            check_add(DTYPES[d], SIZES[s], s % 3, 3000 + 10 * (uint64_t)s + (uint64_t)d);
    for (int alias = 0; alias < 3; alias++) check_add(QT_DTYPE_BF16, 33, alias, 3100);
    check_add(QT_DTYPE_F16, BIG_N, 0, 3101); // more elements than threads: grid-stride
}
END_TEST

static const int BIAS_SHAPES[][2] = {{1, 1}, {1, 31}, {3, 33}, {17, 1}, {5, 1027}, {300, 45}};
#define NBIAS ((int)(sizeof BIAS_SHAPES / sizeof BIAS_SHAPES[0]))

static void check_bias(qt_dtype dt, int N, int OC, uint64_t seed) {
    double atol, rtol;
    qt_ct_tolerance(dt, &atol, &rtol);
    const size_t n = (size_t)N * OC;
    float *out = qt_ct_rand_rounded(dt, n, -2.0f, 2.0f, seed);
    float *bias = qt_ct_rand_rounded(dt, OC, -2.0f, 2.0f, seed + 1);
    float *dout = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, seed + 2);
    float *db = qt_ct_rand_rounded(dt, OC, -1.0f, 1.0f, seed + 3); // pre-filled gradient
    void *d_out = qt_ct_upload(dt, out, n), *d_bias = qt_ct_upload(dt, bias, OC);
    void *d_dout = qt_ct_upload(dt, dout, n), *d_db = qt_ct_upload(dt, db, OC);
    // references: out += bias per row (one rounding: exact); db += column sums in row order
    for (int r = 0; r < N; r++)
        for (int c = 0; c < OC; c++)
            out[(size_t)r * OC + c] = qt_ct_round(dt, out[(size_t)r * OC + c] + bias[c]);
    for (int c = 0; c < OC; c++) {
        float s = 0.0f;
        for (int r = 0; r < N; r++) s += dout[(size_t)r * OC + c];
        db[c] += s;
    }
    qt_status st = qt_cuda_bias_add(NULL, dt, d_out, d_bias, N, OC);
    ck_assert_msg(st == QT_OK, "bias_add %s N=%d OC=%d: %s", qt_dtype_name(dt), N, OC,
                  qt_last_error());
    st = qt_cuda_bias_grad(NULL, dt, d_db, d_dout, N, OC, NULL);
    ck_assert_msg(st == QT_OK, "bias_grad %s N=%d OC=%d: %s", qt_dtype_name(dt), N, OC,
                  qt_last_error());
    const size_t bad = dev_mismatch(dt, d_out, out, n);
    ck_assert_msg(bad == n, "bias_add %s N=%d OC=%d seed=%llu: element %zu differs",
                  qt_dtype_name(dt), N, OC, (unsigned long long)seed, bad);
    const double e = qt_ct_dev_err(dt, d_db, db, OC, atol * sqrt((double)N), rtol);
    ck_assert_msg(e <= 1.0, "bias_grad %s N=%d OC=%d seed=%llu: err %g", qt_dtype_name(dt), N,
                  OC, (unsigned long long)seed, e);
    ck_assert_msg(qt_ct_guard_ok(dt, d_out, n) && qt_ct_guard_ok(dt, d_db, OC),
                  "bias %s N=%d OC=%d: guard band overwritten", qt_dtype_name(dt), N, OC);
    qt_ct_free(d_out);
    qt_ct_free(d_bias);
    qt_ct_free(d_dout);
    qt_ct_free(d_db);
    free(out);
    free(bias);
    free(dout);
    free(db);
}

START_TEST(test_bias) {
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < NBIAS; s++)
            check_bias(DTYPES[d], BIAS_SHAPES[s][0], BIAS_SHAPES[s][1],
                       4000 + 10 * (uint64_t)s + (uint64_t)d);
}
END_TEST

// ---- bias_grad split over the rows (a scratch given) ---------------------------------------

// The slices of common.cuh's qt_colsum_splits for K outputs in blocks of 32 columns: its
// documented rule (264 blocks wanted, >= 64 rows a slice, 2^20 partials), restated here.
static int expected_splits(int N, int C, int K) {
    const int groups = (C + 31) / 32;
    if (groups >= 264) return 1;
    int s = (264 + groups - 1) / groups;
    if (s > N / 64) s = N / 64;
    if ((size_t)s > ((size_t)1 << 20) / ((size_t)C * K)) s = (int)(((size_t)1 << 20) / ((size_t)C * K));
    return s < 2 ? 1 : s;
}

// The column sum of dout (N, C) at column c in the kernel's documented order: per slice, 16
// lanes each over rows r0 + lane, r0 + lane + 16, ..., a halving tree over the lanes; then the
// slices in order. fp32, exactly what the fp32 kernel must produce bit for bit.
static float split_colsum(const float *dout, int N, int C, int c, int S) {
    float total = 0.0f;
    const int per = (N + S - 1) / S;
    for (int s = 0; s < S; s++) {
        const int r0 = s * per < N ? s * per : N, r1 = r0 + per < N ? r0 + per : N;
        float lane[16] = {0};
        for (int l = 0; l < 16; l++)
            for (int n = r0 + l; n < r1; n += 16) lane[l] += dout[(size_t)n * C + c];
        for (int st = 8; st > 0; st /= 2)
            for (int l = 0; l < st; l++) lane[l] += lane[l + st];
        total += lane[0];
    }
    return total;
}

// With a scratch, bias_grad splits the rows (shapes with 1, 2, 4, 15 and 132 slices): in fp32
// its result equals the documented order bit for bit (so the last block did add every slice,
// in order), repeated launches on one scratch agree bit for bit (the counters come back to 0),
// and fp16/bf16 stay within the tolerance of the CPU's column sums.
START_TEST(test_bias_grad_split) {
    static const int shapes[][2] = {{300, 45}, {1000, 70}, {129, 1027}, {8448, 40}, {63, 33},
                                    {640, 8000}};
    void *scratch = NULL;
    ck_assert_int_eq(cudaMalloc(&scratch, qt_cuda_colsum_scratch_bytes()), cudaSuccess);
    ck_assert_int_eq(qt_cuda_colsum_scratch_init(NULL, scratch), QT_OK);
    int seen_split = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int N = shapes[i][0], OC = shapes[i][1], S = expected_splits(N, OC, 1);
        seen_split |= S > 1;
        const size_t n = (size_t)N * OC;
        for (int d = 0; d < 3; d++) {
            const qt_dtype dt = DTYPES[d];
            float *dout = qt_ct_rand_rounded(dt, n, -1.0f, 1.0f, 4200 + i);
            float *db = qt_ct_rand_rounded(dt, OC, -1.0f, 1.0f, 4300 + i);
            float *want = malloc((size_t)OC * sizeof *want), *got[2];
            void *d_dout = qt_ct_upload(dt, dout, n), *d_db[2];
            for (int r = 0; r < 2; r++) {
                d_db[r] = qt_ct_upload(dt, db, OC);
                ck_assert_int_eq(qt_cuda_bias_grad(NULL, dt, d_db[r], d_dout, N, OC, scratch),
                                 QT_OK);
                got[r] = malloc((size_t)OC * sizeof(float));
                qt_ct_download(dt, got[r], d_db[r], OC);
                ck_assert_msg(qt_ct_guard_ok(dt, d_db[r], OC), "bias_grad split: guard band");
            }
            ck_assert_msg(memcmp(got[0], got[1], (size_t)OC * sizeof(float)) == 0,
                          "bias_grad split %s N=%d OC=%d: two launches differ", qt_dtype_name(dt),
                          N, OC);
            if (dt == QT_DTYPE_F32) {
                for (int c = 0; c < OC; c++) {
                    want[c] = db[c] + split_colsum(dout, N, OC, c, S);
                    ck_assert_msg(got[0][c] == want[c],
                                  "bias_grad split fp32 N=%d OC=%d S=%d: column %d is %.9g, the "
                                  "documented order gives %.9g",
                                  N, OC, S, c, got[0][c], want[c]);
                }
            } else {
                double atol, rtol;
                qt_ct_tolerance(dt, &atol, &rtol);
                for (int c = 0; c < OC; c++) {
                    double s = db[c];
                    for (int r = 0; r < N; r++) s += dout[(size_t)r * OC + c];
                    want[c] = (float)s;
                }
                const double e =
                    qt_ct_dev_err(dt, d_db[0], want, OC, atol * sqrt((double)N), rtol);
                ck_assert_msg(e <= 1.0, "bias_grad split %s N=%d OC=%d: err %g",
                              qt_dtype_name(dt), N, OC, e);
            }
            for (int r = 0; r < 2; r++) {
                qt_ct_free(d_db[r]);
                free(got[r]);
            }
            qt_ct_free(d_dout);
            free(dout);
            free(db);
            free(want);
        }
    }
    ck_assert_msg(seen_split, "no shape here splits the rows");
    printf("test_cuda_elementwise: bias_grad split into %d, %d, %d, %d, %d and %d row slices: "
           "fp32 bit for bit in the documented order, repeat launches identical\n",
           expected_splits(300, 45, 1), expected_splits(1000, 70, 1),
           expected_splits(129, 1027, 1), expected_splits(8448, 40, 1),
           expected_splits(63, 33, 1), expected_splits(640, 8000, 1));
    cudaFree(scratch);
}
END_TEST

// bias_grad matches the CPU linear backward's db (the op it replaces on the GPU).
START_TEST(test_bias_grad_matches_linear_bwd) {
    const int N = 37, IC = 3, OC = 70;
    double atol, rtol;
    qt_ct_tolerance(QT_DTYPE_F32, &atol, &rtol);
    float *dout = qt_ct_rand_rounded(QT_DTYPE_F32, (size_t)N * OC, -1.0f, 1.0f, 4100);
    float *x = qt_ct_rand_rounded(QT_DTYPE_F32, (size_t)N * IC, -1.0f, 1.0f, 4101);
    float *w = qt_ct_rand_rounded(QT_DTYPE_F32, (size_t)OC * IC, -1.0f, 1.0f, 4102);
    float *dw = calloc((size_t)OC * IC, sizeof *dw);
    float *db = qt_ct_rand_rounded(QT_DTYPE_F32, OC, -1.0f, 1.0f, 4103);
    void *d_db = qt_ct_upload(QT_DTYPE_F32, db, OC);
    void *d_dout = qt_ct_upload(QT_DTYPE_F32, dout, (size_t)N * OC);
    qt_cpu_linear_bwd(NULL, dw, db, dout, x, w, N, IC, OC);
    ck_assert_int_eq(qt_cuda_bias_grad(NULL, QT_DTYPE_F32, d_db, d_dout, N, OC, NULL), QT_OK);
    const double e = qt_ct_dev_err(QT_DTYPE_F32, d_db, db, OC, atol * sqrt((double)N), rtol);
    ck_assert_msg(e <= 1.0, "bias_grad vs linear_bwd fp32 N=%d OC=%d: err %g", N, OC, e);
    qt_ct_free(d_db);
    qt_ct_free(d_dout);
    free(dout);
    free(x);
    free(w);
    free(dw);
    free(db);
}
END_TEST

// ---- casts ----------------------------------------------------------------------------------

// fp32 values that probe the roundings: random magnitudes from 2^-30 to 2^20 of both signs,
// then specials: signed zeros, infinities, NaN, fp16's largest finite value and the overflow
// boundary (65520 rounds to inf, 65519 to 65504), fp16 subnormals and the underflow boundary,
// ties to even in fp16 (1 + 2^-11, 1 + 3 2^-11) and bf16 (1 + 2^-8, 1 + 3 2^-8), and bf16's
// overflow (3.4e38 rounds to inf).
static float *cast_inputs(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof *x), *u = malloc(n * sizeof *u);
    qt_test_fill_uniform(u, n, 0.0f, 1.0f, seed);
    for (size_t i = 0; i < n; i++) {
        const float mag = ldexpf(1.0f + u[i], (int)(i * 7919 % 51) - 30);
        x[i] = (i & 1) ? -mag : mag;
    }
    const float special[] = {0.0f,
                             -0.0f,
                             INFINITY,
                             -INFINITY,
                             NAN,
                             65504.0f,
                             65520.0f,
                             65519.0f,
                             -65520.0f,
                             ldexpf(1.0f, -24),
                             ldexpf(1.0f, -25),
                             ldexpf(1.5f, -25),
                             ldexpf(3.0f, -24),
                             ldexpf(1.0f, -14),
                             1.0f + ldexpf(1.0f, -11),
                             1.0f + 3.0f * ldexpf(1.0f, -11),
                             1.0f + ldexpf(1.0f, -8),
                             1.0f + 3.0f * ldexpf(1.0f, -8),
                             3.4e38f,
                             -3.4e38f,
                             ldexpf(1.0f, -130)};
    const size_t ns = sizeof special / sizeof special[0];
    for (size_t i = 0; i < ns && i < n; i++) x[i] = special[i];
    free(u);
    return x;
}

// dst_dt <- src_dt on values already representable in src_dt; expected is the host rounding.
static void check_cast(qt_dtype dst_dt, qt_dtype src_dt, size_t n, int in_place, uint64_t seed) {
    float *x = cast_inputs(n, seed);
    for (size_t i = 0; i < n; i++) x[i] = qt_ct_round(src_dt, x[i]); // what src holds
    float *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) want[i] = qt_ct_round(dst_dt, x[i]);
    void *d_src = qt_ct_upload(src_dt, x, n);
    void *d_dst = in_place ? d_src : qt_ct_alloc(dst_dt, n);
    qt_status st = qt_cuda_cast(NULL, dst_dt, d_dst, src_dt, d_src, n);
    ck_assert_msg(st == QT_OK, "cast %s <- %s n=%zu: %s", qt_dtype_name(dst_dt),
                  qt_dtype_name(src_dt), n, qt_last_error());
    const size_t bad = dev_mismatch(dst_dt, d_dst, want, n);
    if (bad < n) {
        float got;
        qt_ct_download(dst_dt, &got, (const char *)d_dst + bad * qt_dtype_size(dst_dt), 1);
        ck_abort_msg("cast %s <- %s n=%zu in_place=%d seed=%llu: element %zu: %a -> %a, want %a",
                     qt_dtype_name(dst_dt), qt_dtype_name(src_dt), n, in_place,
                     (unsigned long long)seed, bad, (double)x[bad], (double)got,
                     (double)want[bad]);
    }
    ck_assert_msg(qt_ct_guard_ok(dst_dt, d_dst, n), "cast %s <- %s n=%zu: guard band overwritten",
                  qt_dtype_name(dst_dt), qt_dtype_name(src_dt), n);
    if (!in_place) qt_ct_free(d_dst);
    qt_ct_free(d_src);
    free(x);
    free(want);
}

START_TEST(test_cast_all_pairs) {
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int s = 0; s < NSIZES; s++)
                check_cast(DTYPES[a], DTYPES[b], SIZES[s], 0,
                           5000 + 10 * (uint64_t)s + 3 * (uint64_t)a + (uint64_t)b);
    // in place between the two 16-bit types, and the no-op same-type in-place cast
    check_cast(QT_DTYPE_BF16, QT_DTYPE_F16, 1027, 1, 5100);
    check_cast(QT_DTYPE_F16, QT_DTYPE_BF16, 1027, 1, 5101);
    check_cast(QT_DTYPE_F16, QT_DTYPE_F16, 33, 1, 5102);
}
END_TEST

// fp32 -> dt -> fp32 on the device equals cuda_testutil's host rounding, and a second round
// trip changes nothing (rounding is idempotent).
START_TEST(test_cast_round_trip) {
    const size_t n = 1027;
    for (int d = 1; d < 3; d++) {
        const qt_dtype dt = DTYPES[d];
        float *x = cast_inputs(n, 5200 + (uint64_t)d);
        float *want = malloc(n * sizeof *want);
        for (size_t i = 0; i < n; i++) want[i] = qt_ct_round(dt, x[i]);
        void *d_x = qt_ct_upload(QT_DTYPE_F32, x, n), *d_h = qt_ct_alloc(dt, n);
        void *d_back = qt_ct_alloc(QT_DTYPE_F32, n);
        for (int round = 0; round < 2; round++) {
            ck_assert_int_eq(qt_cuda_cast(NULL, dt, d_h, QT_DTYPE_F32, round ? d_back : d_x, n),
                             QT_OK);
            ck_assert_int_eq(qt_cuda_cast(NULL, QT_DTYPE_F32, d_back, dt, d_h, n), QT_OK);
            const size_t bad = dev_mismatch(QT_DTYPE_F32, d_back, want, n);
            ck_assert_msg(bad == n, "cast round trip fp32 -> %s -> fp32 round %d: element %zu "
                                    "(%a) differs", qt_dtype_name(dt), round, bad,
                          bad < n ? (double)x[bad] : 0.0);
        }
        ck_assert(qt_ct_guard_ok(dt, d_h, n) && qt_ct_guard_ok(QT_DTYPE_F32, d_back, n));
        qt_ct_free(d_x);
        qt_ct_free(d_h);
        qt_ct_free(d_back);
        free(x);
        free(want);
    }
}
END_TEST

// ---- vector and scalar paths ----------------------------------------------------------------
// add, bias_add and cast move 16-byte chunks when every pointer is 16-byte aligned (cudaMalloc
// memory: the vector path, an odd n leaving a scalar tail) and single elements when one is not
// (a pointer one element into its allocation: the scalar path). Both paths must give the CPU
// reference's bits and write nothing outside [0, n): the element before a shifted tensor holds
// a sentinel, and the guard band after it is checked.
#define SENTINEL 7.0f

// A device copy of host (n values, representable in dt) starting `shift` (0 or 1) elements into
// its allocation, the element before it SENTINEL. Free with free_shifted.
static void *upload_shifted(qt_dtype dt, const float *host, size_t n, int shift) {
    float *tmp = malloc((n + 1) * sizeof *tmp);
    tmp[0] = SENTINEL;
    memcpy(tmp + 1, host, n * sizeof *tmp);
    char *base = qt_ct_upload(dt, shift ? tmp : tmp + 1, n + (size_t)shift);
    free(tmp);
    return base + (size_t)shift * qt_dtype_size(dt);
}

// 1 if the element before a shifted tensor still holds SENTINEL and its guard band is intact.
static int shifted_ok(qt_dtype dt, const void *dev, size_t n, int shift) {
    float before = SENTINEL;
    if (shift) qt_ct_download(dt, &before, (const char *)dev - qt_dtype_size(dt), 1);
    return before == SENTINEL && qt_ct_guard_ok(dt, dev, n);
}

static void free_shifted(qt_dtype dt, void *dev, int shift) {
    qt_ct_free((char *)dev - (size_t)shift * qt_dtype_size(dt));
}

// Shifts of (out, a, b): all aligned (vector path), all shifted, only one shifted (scalar).
static const int SHIFTS[][3] = {{0, 0, 0}, {1, 1, 1}, {0, 1, 0}, {0, 0, 1}, {1, 0, 0}};
#define NSHIFTS ((int)(sizeof SHIFTS / sizeof SHIFTS[0]))
static const size_t ODD_SIZES[] = {3, 37, 1027};

START_TEST(test_add_vector_and_scalar_paths) {
    for (int d = 0; d < 3; d++)
        for (int z = 0; z < 3; z++)
            for (int sh = 0; sh < NSHIFTS; sh++) {
                const qt_dtype dt = DTYPES[d];
                const size_t n = ODD_SIZES[z];
                const int *so = SHIFTS[sh];
                const uint64_t seed = 6000 + 100 * (uint64_t)d + 10 * (uint64_t)z + (uint64_t)sh;
                float *a = qt_ct_rand_rounded(dt, n, -3.0f, 3.0f, seed);
                float *b = qt_ct_rand_rounded(dt, n, -3.0f, 3.0f, seed + 1);
                float *ref = malloc(n * sizeof *ref);
                qt_cpu_add(ref, a, b, n);
                for (size_t i = 0; i < n; i++)
                    ref[i] = qt_ct_round(dt, ref[i]);
                float *poison = malloc(n * sizeof *poison);
                for (size_t i = 0; i < n; i++)
                    poison[i] = NAN;
                void *da = upload_shifted(dt, a, n, so[1]), *db = upload_shifted(dt, b, n, so[2]);
                void *dout = upload_shifted(dt, poison, n, so[0]);
                ck_assert_int_eq(qt_cuda_add(NULL, dt, dout, da, db, n), QT_OK);
                const size_t bad = dev_mismatch(dt, dout, ref, n);
                ck_assert_msg(bad == n,
                              "add %s n=%zu shifts (%d,%d,%d) seed=%llu: element %zu "
                              "differs",
                              qt_dtype_name(dt), n, so[0], so[1], so[2], (unsigned long long)seed,
                              bad);
                ck_assert_msg(shifted_ok(dt, dout, n, so[0]) && shifted_ok(dt, da, n, so[1]) &&
                                  shifted_ok(dt, db, n, so[2]),
                              "add %s n=%zu shifts (%d,%d,%d): wrote outside [0, n)",
                              qt_dtype_name(dt), n, so[0], so[1], so[2]);
                free_shifted(dt, dout, so[0]);
                free_shifted(dt, da, so[1]);
                free_shifted(dt, db, so[2]);
                free(a);
                free(b);
                free(ref);
                free(poison);
            }
}
END_TEST

// bias_add's vector path also needs OC a multiple of the chunk (4 fp32, 8 fp16/bf16): OC 64
// takes it with aligned pointers, OC 33 never does; N odd.
START_TEST(test_bias_add_vector_and_scalar_paths) {
    static const int OCS[] = {64, 33};
    for (int d = 0; d < 3; d++)
        for (int o = 0; o < 2; o++)
            for (int sh = 0; sh < 3; sh++) {
                const qt_dtype dt = DTYPES[d];
                const int N = 17, OC = OCS[o], so = SHIFTS[sh][0], sb = SHIFTS[sh][1];
                const size_t n = (size_t)N * OC;
                const uint64_t seed = 6500 + 100 * (uint64_t)d + 10 * (uint64_t)o + (uint64_t)sh;
                float *out = qt_ct_rand_rounded(dt, n, -2.0f, 2.0f, seed);
                float *bias = qt_ct_rand_rounded(dt, OC, -2.0f, 2.0f, seed + 1);
                void *d_out = upload_shifted(dt, out, n, so);
                void *d_bias = upload_shifted(dt, bias, OC, sb);
                for (int r = 0; r < N; r++)
                    for (int c = 0; c < OC; c++)
                        out[(size_t)r * OC + c] =
                            qt_ct_round(dt, out[(size_t)r * OC + c] + bias[c]);
                ck_assert_int_eq(qt_cuda_bias_add(NULL, dt, d_out, d_bias, N, OC), QT_OK);
                const size_t bad = dev_mismatch(dt, d_out, out, n);
                ck_assert_msg(bad == n,
                              "bias_add %s N=%d OC=%d shifts (%d,%d) seed=%llu: "
                              "element %zu differs",
                              qt_dtype_name(dt), N, OC, so, sb, (unsigned long long)seed, bad);
                ck_assert_msg(shifted_ok(dt, d_out, n, so) && shifted_ok(dt, d_bias, OC, sb),
                              "bias_add %s N=%d OC=%d shifts (%d,%d): wrote outside [0, n)",
                              qt_dtype_name(dt), N, OC, so, sb);
                free_shifted(dt, d_out, so);
                free_shifted(dt, d_bias, sb);
                free(out);
                free(bias);
            }
}
END_TEST

// Every dtype pair: fp32 <-> 16-bit casts move 32 bytes of fp32 per 16 of the 16-bit type.
START_TEST(test_cast_vector_and_scalar_paths) {
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int sh = 0; sh < 3; sh++) {
                const qt_dtype dst_dt = DTYPES[a], src_dt = DTYPES[b];
                const size_t n = 1027;
                const int sd = SHIFTS[sh][0], ss = SHIFTS[sh][1];
                const uint64_t seed = 6800 + 10 * (uint64_t)(3 * a + b) + (uint64_t)sh;
                float *x = cast_inputs(n, seed);
                for (size_t i = 0; i < n; i++)
                    x[i] = qt_ct_round(src_dt, x[i]);
                float *want = malloc(n * sizeof *want), *poison = malloc(n * sizeof *poison);
                for (size_t i = 0; i < n; i++) {
                    want[i] = qt_ct_round(dst_dt, x[i]);
                    poison[i] = NAN;
                }
                void *d_src = upload_shifted(src_dt, x, n, ss);
                void *d_dst = upload_shifted(dst_dt, poison, n, sd);
                ck_assert_int_eq(qt_cuda_cast(NULL, dst_dt, d_dst, src_dt, d_src, n), QT_OK);
                const size_t bad = dev_mismatch(dst_dt, d_dst, want, n);
                ck_assert_msg(bad == n,
                              "cast %s <- %s n=%zu shifts (%d,%d) seed=%llu: element "
                              "%zu differs",
                              qt_dtype_name(dst_dt), qt_dtype_name(src_dt), n, sd, ss,
                              (unsigned long long)seed, bad);
                ck_assert_msg(shifted_ok(dst_dt, d_dst, n, sd) && shifted_ok(src_dt, d_src, n, ss),
                              "cast %s <- %s n=%zu shifts (%d,%d): wrote outside [0, n)",
                              qt_dtype_name(dst_dt), qt_dtype_name(src_dt), n, sd, ss);
                free_shifted(dst_dt, d_dst, sd);
                free_shifted(src_dt, d_src, ss);
                free(x);
                free(want);
                free(poison);
            }
}
END_TEST

// ---- bad arguments --------------------------------------------------------------------------

START_TEST(test_elementwise_bad_args) {
    void *buf = qt_ct_alloc(QT_DTYPE_F32, 64);
    char *c = buf;
    ck_assert_int_eq(qt_cuda_add(NULL, QT_DTYPE_F32, c + 2, buf, buf, 4), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "aligned"));
    ck_assert_int_eq(qt_cuda_bias_add(NULL, QT_DTYPE_F32, buf, buf, 2, 0), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_bias_grad(NULL, QT_DTYPE_F32, buf, buf, -1, 3, NULL), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "bias_grad"));
    // overlapping casts between sizes, or shifted
    ck_assert_int_eq(qt_cuda_cast(NULL, QT_DTYPE_F16, buf, QT_DTYPE_F32, buf, 8), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "overlap"));
    ck_assert_int_eq(qt_cuda_cast(NULL, QT_DTYPE_F16, c + 2, QT_DTYPE_BF16, buf, 8), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_cast(NULL, QT_DTYPE_F16, buf, (qt_dtype)3, c + 64, 8), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_bias_grad(NULL, QT_DTYPE_BF16, buf, buf, 0, 3, NULL), QT_OK);
    qt_ct_free(buf);
}
END_TEST

static Suite *cuda_elementwise_suite(void) {
    Suite *s = suite_create("cuda_elementwise");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_add);
    tcase_add_test(tc, test_bias);
    tcase_add_test(tc, test_bias_grad_split);
    tcase_add_test(tc, test_bias_grad_matches_linear_bwd);
    tcase_add_test(tc, test_cast_all_pairs);
    tcase_add_test(tc, test_cast_round_trip);
    tcase_add_test(tc, test_add_vector_and_scalar_paths);
    tcase_add_test(tc, test_bias_add_vector_and_scalar_paths);
    tcase_add_test(tc, test_cast_vector_and_scalar_paths);
    tcase_add_test(tc, test_elementwise_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    qt_ct_require_device();
    return qt_test_run_suite(cuda_elementwise_suite());
}

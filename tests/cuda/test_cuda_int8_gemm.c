// test_cuda_int8_gemm.c: the CUDA INT8 GEMM (kernels/cuda/int8_gemm.cu) against the CPU
// reference (kernels/cpu/int8_gemm.c), and the CUDA backend's linear_s8_fwd against the float
// linear layer on fake-quantized inputs.
//
//   gemm      qt_cuda_gemm_s8s32, both implementations, int32 bit-exact vs qt_cpu_gemm_s8s32 on
//             odd M, N, K (K not a multiple of 32, 16 or 4 too), random int8 with -128 and 127
//             forced in, output poisoned beforehand, a guard band after it checked, and A/B at
//             odd byte offsets (the mma kernel's byte path; cuBLASLt's padding for alignment).
//   linear    qt_cuda_linear_s8(_ex) for fp32/fp16/bf16 outputs, with and without bias, per-row
//             and per-tensor scales, vs qt_cpu_linear_s8 (bias rounded to dt) rounded once to
//             dt: bit-exact, since both compute ((float)acc * sa) * sb + bias with separately
//             rounded operations (the ISO C CPU build does not contract them; the kernels use
//             __fmul_rn/__fadd_rn).
//   backend   linear_s8_fwd (host/backends/backend_cuda.c) vs the float linear on
//             qt_cpu_quant_fake'd x and w (per-token or per-tensor x, per-channel or
//             per-tensor w), within fp rounding of the K-term sum; refusal of anything but
//             8-bit symmetric nearest.
//   transpose qt_cuda_transpose_s8 byte-exact on odd shapes and byte offsets, output poisoned,
//             guard band checked; bad arguments.
//   s8 dX     linear_s8_dx (SwitchBack's dX) vs the CPU backend's on the same dt-rounded inputs,
//             accumulating onto a nonzero dx, both implementations, fp32/fp16/bf16 within the
//             dtype's rounding; refusal of other grids, leaving dx unchanged.
// In the emulated build cuBLASLt does not run: its call is replaced by a CPU loop with
// cuBLASLt's column-major TN semantics on the same arguments (int8_gemm.cu), so the cuBLASLt
// cases here check the transposes, leading dimensions, padding and epilogue kernel, not
// cuBLASLt itself; on a GPU (the _gpu test) they run the real library.
// The mma cases do exercise the fragment mapping and the cp.async pipeline under the emulator:
// the CTests test_cuda_int8_gemm_mutation1 (A registers a[1] <-> a[2] swapped after ldmatrix)
// and _mutation2 (one cp.async wait_group too few) build this suite on a mutated kernel and
// pass only when it reports a wrong int32 (cmake/cuda.cmake).
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_testutil.h"
#include "qtrain/backend.h"
#include "kernels/int8_gemm.h"
#include "kernels/quant.h"
#include "testutil.h"

// (M, N, K): 1x1x1; odd everything; K % 32 != 0, K % 16 == 0 (the mma kernel's cp.async path
// with M, N edges), K % 4 != 0 (cuBLASLt padding), K = 4 (shorter than one mma k-step); then
// several 128x128 tiles each way (a partial last tile) with more 64-byte k stages than the
// pipeline's 4, so stages are reused: cp.async (K = 400) and the synchronous path (K = 333).
static const int SHAPES[][3] = {{1, 1, 1},     {17, 33, 65}, {70, 23, 129}, {5, 7, 3},
                                {33, 9, 100},   {65, 70, 48}, {3, 130, 4},  {64, 64, 64},
                                {130, 257, 400}, {200, 129, 333}};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))
static const qt_cuda_int8_impl IMPLS[] = {QT_CUDA_INT8_MMA, QT_CUDA_INT8_CUBLASLT};
#define N_IMPLS 2
#if defined(__SANITIZE_THREAD__)
#define SANITIZED_TSAN 1
#else
#define SANITIZED_TSAN 0
#endif
#define GUARD 64 // int32 or int8 elements of guard band after each device output

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// n random int8 in [-128, 127] with the extremes forced in at fixed places.
static int8_t *rand_s8(size_t n, uint64_t seed) {
    int8_t *x = malloc(n ? n : 1);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) x[i] = (int8_t)(rng_next(&s) >> 56);
    if (n > 0) x[0] = -128;
    if (n > 2) x[n / 2] = 127;
    if (n > 3) x[n - 1] = -128;
    return x;
}

// A device copy of host bytes at byte offset `off` (0 or odd) inside a larger allocation.
static void *dev_copy(const void *host, size_t bytes, size_t off, void **base) {
    ck_assert_int_eq(cudaMalloc(base, bytes + off + 16), cudaSuccess);
    ck_assert_int_eq(cudaMemset(*base, 0x5A, bytes + off + 16), cudaSuccess);
    char *p = (char *)*base + off;
    ck_assert_int_eq(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice), cudaSuccess);
    return p;
}

// ---- gemm: int32 bit-exact ------------------------------------------------------------------

// off: byte offset of A and B; c_off: int32 offset of C (1: its column pairs are not 8-byte
// aligned, so the mma epilogue must store them one by one).
static void check_gemm_at(qt_cuda_int8_impl impl, int M, int N, int K, size_t off, size_t c_off,
                          uint64_t seed) {
    char tag[160];
    snprintf(tag, sizeof tag, "gemm %s M %d N %d K %d offset %zu seed %llu c_off %zu",
             qt_cuda_int8_impl_name(impl), M, N, K, off, (unsigned long long)seed, c_off);
    size_t mk = (size_t)M * K, nk = (size_t)N * K, mn = (size_t)M * N;
    int8_t *A = rand_s8(mk, seed), *B = rand_s8(nk, seed + 1000);
    int32_t *ref = malloc(mn * sizeof(int32_t)), *got = malloc((mn + GUARD) * sizeof(int32_t));
    ck_assert_int_eq(qt_cpu_gemm_s8s32(ref, A, B, M, N, K), QT_OK);
    void *abase, *bbase;
    int8_t *dA = dev_copy(A, mk, off, &abase), *dB = dev_copy(B, nk, off, &bbase);
    int32_t *cbase = NULL;
    ck_assert_int_eq(cudaMalloc((void **)&cbase, (mn + GUARD + c_off) * sizeof(int32_t)),
                     cudaSuccess);
    ck_assert_int_eq(cudaMemset(cbase, 0xAB, (mn + GUARD + c_off) * sizeof(int32_t)),
                     cudaSuccess);
    int32_t *dC = cbase + c_off;
    qt_status st = qt_cuda_gemm_s8s32(NULL, dC, dA, dB, M, N, K, impl);
    ck_assert_msg(st == QT_OK, "%s: failed: %s", tag, qt_last_error());
    ck_assert_int_eq(cudaDeviceSynchronize(), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(got, dC, (mn + GUARD) * sizeof(int32_t), cudaMemcpyDeviceToHost),
                     cudaSuccess);
    for (size_t i = 0; i < mn; i++)
        ck_assert_msg(got[i] == ref[i], "%s: C[%zu][%zu] = %d, want %d", tag, i / (size_t)N,
                      i % (size_t)N, got[i], ref[i]);
    for (size_t i = mn; i < mn + GUARD; i++)
        ck_assert_msg((uint32_t)got[i] == 0xABABABABu, "%s: wrote past C at %zu", tag, i);
    cudaFree(abase);
    cudaFree(bbase);
    cudaFree(cbase);
    free(A);
    free(B);
    free(ref);
    free(got);
}

static void check_gemm(qt_cuda_int8_impl impl, int M, int N, int K, size_t off, uint64_t seed) {
    check_gemm_at(impl, M, N, K, off, 0, seed);
}

START_TEST(test_gemm_exact) {
    qt_cuda_int8_impl impl = IMPLS[_i % N_IMPLS];
    for (int s = 0; s < N_SHAPES; s++) {
        const int *sh = SHAPES[s];
        check_gemm(impl, sh[0], sh[1], sh[2], 0, 11 + (uint64_t)s);
    }
    // odd byte offsets: unaligned rows even where K % 16 == 0
    check_gemm(impl, 65, 70, 48, 1, 97);
    check_gemm(impl, 17, 33, 64, 3, 98);
    // C one int32 off 8-byte alignment with N even: no column-pair stores
    check_gemm_at(impl, 33, 66, 64, 0, 1, 99);
}
END_TEST

// ---- linear: the fused epilogue ----------------------------------------------------------------

static void check_linear(qt_cuda_int8_impl impl, qt_dtype dt, int M, int N, int K, int with_bias,
                         int a_per_row, int b_per_row, uint64_t seed) {
    char tag[200];
    snprintf(tag, sizeof tag,
             "linear %s %s M %d N %d K %d bias %d a_per_row %d b_per_row %d seed %llu",
             qt_cuda_int8_impl_name(impl), qt_dtype_name(dt), M, N, K, with_bias, a_per_row,
             b_per_row, (unsigned long long)seed);
    size_t mk = (size_t)M * K, nk = (size_t)N * K, mn = (size_t)M * N;
    int8_t *A = rand_s8(mk, seed), *B = rand_s8(nk, seed + 7);
    float *as = malloc((size_t)M * sizeof(float)), *bs = malloc((size_t)N * sizeof(float));
    float *bias = malloc((size_t)N * sizeof(float)), *ref = malloc(mn * sizeof(float));
    float *got = malloc(mn * sizeof(float));
    qt_test_fill_uniform(as, (size_t)M, 1e-4f, 3e-2f, seed + 1);
    qt_test_fill_uniform(bs, (size_t)N, 1e-4f, 3e-2f, seed + 2);
    qt_test_fill_uniform(bias, (size_t)N, -2.0f, 2.0f, seed + 3);
    if (!a_per_row)
        for (int m = 1; m < M; m++) as[m] = as[0];
    if (!b_per_row)
        for (int n = 1; n < N; n++) bs[n] = bs[0];
    for (int n = 0; n < N; n++) bias[n] = qt_ct_round(dt, bias[n]);
    ck_assert_int_eq(qt_cpu_linear_s8(ref, A, as, B, bs, with_bias ? bias : NULL, M, N, K), QT_OK);
    for (size_t i = 0; i < mn; i++) ref[i] = qt_ct_round(dt, ref[i]);

    void *abase, *bbase;
    int8_t *dA = dev_copy(A, mk, 0, &abase), *dB = dev_copy(B, nk, 0, &bbase);
    float *das = qt_ct_upload(QT_DTYPE_F32, as, (size_t)M);
    float *dbs = qt_ct_upload(QT_DTYPE_F32, bs, (size_t)N);
    void *dbias = qt_ct_upload(dt, bias, (size_t)N), *dout = qt_ct_alloc(dt, mn);
    qt_status st;
    if (a_per_row && b_per_row)
        st = qt_cuda_linear_s8(NULL, dt, dout, dA, das, dB, dbs, with_bias ? dbias : NULL, M, N, K, impl);
    else
        st = qt_cuda_linear_s8_ex(NULL, dt, dout, dA, das, a_per_row, dB, dbs, b_per_row, with_bias ? dbias : NULL, M, N, K, impl);
    ck_assert_msg(st == QT_OK, "%s: failed: %s", tag, qt_last_error());
    ck_assert_int_eq(cudaDeviceSynchronize(), cudaSuccess);
    qt_ct_download(dt, got, dout, mn);
    for (size_t i = 0; i < mn; i++)
        ck_assert_msg(memcmp(&got[i], &ref[i], sizeof(float)) == 0,
                      "%s: out[%zu][%zu] = %.9g, want %.9g", tag, i / (size_t)N, i % (size_t)N,
                      (double)got[i], (double)ref[i]);
    ck_assert_msg(qt_ct_guard_ok(dt, dout, mn), "%s: wrote past out", tag);
    cudaFree(abase);
    cudaFree(bbase);
    qt_ct_free(das);
    qt_ct_free(dbs);
    qt_ct_free(dbias);
    qt_ct_free(dout);
    free(A);
    free(B);
    free(as);
    free(bs);
    free(bias);
    free(ref);
    free(got);
}

START_TEST(test_linear_epilogue) {
    qt_cuda_int8_impl impl = IMPLS[_i % N_IMPLS];
    const qt_dtype dts[] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        check_linear(impl, dts[d], 1, 1, 1, 1, 1, 1, 40 + (uint64_t)d);
        check_linear(impl, dts[d], 17, 33, 65, 1, 1, 1, 50 + (uint64_t)d);
        check_linear(impl, dts[d], 70, 23, 129, 0, 1, 1, 60 + (uint64_t)d);
        check_linear(impl, dts[d], 33, 9, 100, 1, 0, 1, 70 + (uint64_t)d);
        check_linear(impl, dts[d], 5, 70, 48, 1, 1, 0, 80 + (uint64_t)d);
        // several tiles and stages on the cp.async path: N even (column-pair stores) and odd;
        // under TSan (~10x slower) for fp32 only: the pipeline is the same for every dtype
        if (SANITIZED_TSAN && d > 0) continue;
        check_linear(impl, dts[d], 130, 258, 272, 1, 1, 1, 90 + (uint64_t)d);
        check_linear(impl, dts[d], 129, 131, 208, 0, 1, 0, 100 + (uint64_t)d);
    }
}
END_TEST

// ---- the flag and bad arguments ------------------------------------------------------------------

START_TEST(test_flag_and_bad_args) {
    const char *saved = getenv("QT_CUDA_INT8");
    char *keep = saved ? strdup(saved) : NULL;
    unsetenv("QT_CUDA_INT8");
    ck_assert_int_eq(qt_cuda_int8_default_impl(), QT_CUDA_INT8_MMA);
    setenv("QT_CUDA_INT8", "cublaslt", 1);
    ck_assert_int_eq(qt_cuda_int8_default_impl(), QT_CUDA_INT8_CUBLASLT);
    setenv("QT_CUDA_INT8", "mma", 1);
    ck_assert_int_eq(qt_cuda_int8_default_impl(), QT_CUDA_INT8_MMA);
    setenv("QT_CUDA_INT8", "tensorcore", 1);
    ck_assert_int_eq(qt_cuda_int8_default_impl(), QT_CUDA_INT8_INVALID);

    int8_t *dA = NULL;
    int32_t *dC = NULL;
    ck_assert_int_eq(cudaMalloc((void **)&dA, 64), cudaSuccess);
    ck_assert_int_eq(cudaMalloc((void **)&dC, 64 * sizeof(int32_t)), cudaSuccess);
    ck_assert_int_eq(cudaMemset(dA, 1, 64), cudaSuccess);
    // a bad flag fails DEFAULT calls, naming the variable
    ck_assert_int_eq(qt_cuda_gemm_s8s32(NULL, dC, dA, dA, 2, 2, 2, QT_CUDA_INT8_DEFAULT),
                     QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "QT_CUDA_INT8"));
    // DEFAULT follows the flag
    setenv("QT_CUDA_INT8", "cublaslt", 1);
    ck_assert_int_eq(qt_cuda_gemm_s8s32(NULL, dC, dA, dA, 2, 2, 2, QT_CUDA_INT8_DEFAULT), QT_OK);
    int32_t c[4];
    ck_assert_int_eq(cudaMemcpy(c, dC, sizeof c, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(c[i], 2);
    if (keep) {
        setenv("QT_CUDA_INT8", keep, 1);
        free(keep);
    } else {
        unsetenv("QT_CUDA_INT8");
    }

    for (int i = 0; i < N_IMPLS; i++) {
        qt_cuda_int8_impl im = IMPLS[i];
        ck_assert_int_eq(qt_cuda_gemm_s8s32(NULL, dC, dA, dA, 0, 2, 2, im), QT_ERR_ARG);
        ck_assert_int_eq(qt_cuda_gemm_s8s32(NULL, dC, dA, dA, 2, 2, 0, im), QT_ERR_ARG);
        ck_assert_int_eq(qt_cuda_gemm_s8s32(NULL, dC, dA, dA, 2, 2, QT_INT8_GEMM_MAX_K + 1, im),
                         QT_ERR_ARG);
        ck_assert_int_eq(qt_cuda_gemm_s8s32(NULL, NULL, dA, dA, 2, 2, 2, im), QT_ERR_ARG);
        ck_assert_int_eq(qt_cuda_linear_s8(NULL, 7, dC, dA, (float *)dC, dA, (float *)dC, NULL, 2, 2, 2, im),
                         QT_ERR_ARG);
        ck_assert_int_eq(qt_cuda_linear_s8(NULL, QT_DTYPE_F32, dC, dA, NULL, dA, (float *)dC, NULL, 2, 2, 2, im),
                         QT_ERR_ARG);
    }
    // more tiles than a grid can hold (2^23 x 2^23; checked before any pointer is used)
    ck_assert_int_eq(qt_cuda_gemm_s8s32(NULL, dC, dA, dA, 1 << 30, 1 << 30, 2, QT_CUDA_INT8_MMA),
                     QT_ERR_ARG);
    ck_assert_str_eq(qt_cuda_int8_impl_name(QT_CUDA_INT8_MMA), "mma");
    ck_assert_str_eq(qt_cuda_int8_impl_name(QT_CUDA_INT8_CUBLASLT), "cublaslt");
    ck_assert_str_eq(qt_cuda_int8_impl_name(QT_CUDA_INT8_DEFAULT), "default");
    ck_assert_str_eq(qt_cuda_int8_impl_name(QT_CUDA_INT8_INVALID), "invalid");
    // (3 stays inside the enum's value range: C++ code may not even load a value outside it)
    ck_assert_int_eq(qt_cuda_gemm_s8s32(NULL, dC, dA, dA, 2, 2, 2, (qt_cuda_int8_impl)3),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_gemm_s8s32(NULL, dC, dA, dA, 2, 2, 2, QT_CUDA_INT8_INVALID),
                     QT_ERR_ARG);
    cudaFree(dA);
    cudaFree(dC);
}
END_TEST

// ---- the backend's linear_s8_fwd ---------------------------------------------------------------

// out (N, OC) = fq(x) fq(w)^T + b in double, and the scale of its terms for the tolerance.
static void ref_linear(double *out, double *mag, const float *xq, const float *wq,
                       const float *b, int N, int IC, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0, a = b ? fabs(b[o]) : 0.0;
            for (int k = 0; k < IC; k++) {
                double p = (double)xq[(size_t)n * IC + k] * wq[(size_t)o * IC + k];
                s += p;
                a += fabs(p);
            }
            out[(size_t)n * OC + o] = s;
            mag[(size_t)n * OC + o] = a;
        }
}

static void check_backend(qt_dtype dt, qt_quant_granularity ag, qt_quant_granularity wg,
                          int with_bias, int N, int IC, int OC, uint64_t seed) {
    char tag[200];
    snprintf(tag, sizeof tag, "backend linear_s8_fwd %s x gran %d w gran %d bias %d N %d IC %d "
             "OC %d seed %llu", qt_dtype_name(dt), (int)ag, (int)wg, with_bias, N, IC, OC,
             (unsigned long long)seed);
    qt_backend be;
    ck_assert_int_eq(qt_backend_cuda_init(&be, 0, dt), QT_OK);
    ck_assert_ptr_nonnull(be.ops->linear_s8_fwd);
    size_t nx = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float));
    float *b = malloc((size_t)OC * sizeof(float)), *got = malloc(no * sizeof(float));
    double *ref = malloc(no * sizeof(double)), *mag = malloc(no * sizeof(double));
    qt_test_fill_uniform(x, nx, -3.0f, 3.0f, seed);
    qt_test_fill_uniform(w, nw, -0.2f, 0.2f, seed + 1);
    qt_test_fill_uniform(b, (size_t)OC, -1.0f, 1.0f, seed + 2);
    for (size_t i = 0; i < nx; i++) x[i] = qt_ct_round(dt, x[i]);
    for (size_t i = 0; i < nw; i++) w[i] = qt_ct_round(dt, w[i]);
    for (int o = 0; o < OC; o++) b[o] = qt_ct_round(dt, b[o]);
    if (N > 2) x[IC + 1] = 0.0f; // a zero and a lone extreme in a token
    qt_quant_params aq = qt_quant_params_default(8), wq = qt_quant_params_default(8);
    aq.granularity = ag;
    wq.granularity = wg;
    float *xq = malloc(nx * sizeof(float)), *wqv = malloc(nw * sizeof(float));
    ck_assert_int_eq(qt_cpu_quant_fake(&aq, NULL, xq, x, (size_t)N, (size_t)IC), QT_OK);
    ck_assert_int_eq(qt_cpu_quant_fake(&wq, NULL, wqv, w, (size_t)OC, (size_t)IC), QT_OK);
    ref_linear(ref, mag, xq, wqv, with_bias ? b : NULL, N, IC, OC);

    void *dx, *dw, *db, *dout;
    size_t es = qt_dtype_size(dt);
    ck_assert_int_eq(be.ops->alloc(be.ctx, &dx, nx * es), QT_OK);
    ck_assert_int_eq(be.ops->alloc(be.ctx, &dw, nw * es), QT_OK);
    ck_assert_int_eq(be.ops->alloc(be.ctx, &db, (size_t)OC * es), QT_OK);
    ck_assert_int_eq(be.ops->alloc(be.ctx, &dout, no * es), QT_OK);
    ck_assert_int_eq(be.ops->to_device_f32(be.ctx, dx, x, nx), QT_OK);
    ck_assert_int_eq(be.ops->to_device_f32(be.ctx, dw, w, nw), QT_OK);
    ck_assert_int_eq(be.ops->to_device_f32(be.ctx, db, b, (size_t)OC), QT_OK);
    ck_assert_int_eq(cudaMemset(dout, 0xFF, no * es), cudaSuccess); // NaN in every dtype
    qt_status st = be.ops->linear_s8_fwd(be.ctx, dout, dx, dw, with_bias ? db : NULL, N, IC, OC,
                                         &aq, &wq);
    ck_assert_msg(st == QT_OK, "%s: failed: %s", tag, qt_last_error());
    ck_assert_int_eq(be.ops->to_host_f32(be.ctx, got, dout, no), QT_OK);
    // fp32: the int path sums exactly and rounds the product of scales twice; the reference is
    // double: a few fp32 ulps of the terms' magnitude. fp16/bf16 add the output's rounding.
    double rtol = dt == QT_DTYPE_F32 ? 0.0 : dt == QT_DTYPE_F16 ? 1.0 / 1024 : 1.0 / 128;
    for (size_t i = 0; i < no; i++) {
        double err = fabs((double)got[i] - ref[i]);
        double tol = 1e-6 * mag[i] + rtol * fabs(ref[i]) + 1e-30;
        ck_assert_msg(err <= tol, "%s: out[%zu][%zu] = %.9g, want %.9g (err %.3g > tol %.3g)",
                      tag, i / (size_t)OC, i % (size_t)OC, (double)got[i], ref[i], err, tol);
    }

    // anything but 8-bit symmetric nearest per-tensor / per-row is refused
    qt_quant_params bad = aq;
    bad.bits = 4;
    ck_assert_int_eq(be.ops->linear_s8_fwd(be.ctx, dout, dx, dw, NULL, N, IC, OC, &bad, &wq),
                     QT_ERR_UNSUPPORTED);
    bad = wq;
    bad.symmetric = 0;
    ck_assert_int_eq(be.ops->linear_s8_fwd(be.ctx, dout, dx, dw, NULL, N, IC, OC, &aq, &bad),
                     QT_ERR_UNSUPPORTED);
    bad = aq;
    bad.rounding = QT_QUANT_STOCHASTIC;
    ck_assert_int_eq(be.ops->linear_s8_fwd(be.ctx, dout, dx, dw, NULL, N, IC, OC, &bad, &wq),
                     QT_ERR_UNSUPPORTED);
    bad = wq;
    bad.granularity = QT_QUANT_PER_GROUP;
    bad.group_size = 8;
    ck_assert_int_eq(be.ops->linear_s8_fwd(be.ctx, dout, dx, dw, NULL, N, IC, OC, &aq, &bad),
                     QT_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "linear_s8"));

    be.ops->free(be.ctx, dx);
    be.ops->free(be.ctx, dw);
    be.ops->free(be.ctx, db);
    be.ops->free(be.ctx, dout);
    qt_backend_free(&be);
    free(x);
    free(w);
    free(b);
    free(got);
    free(ref);
    free(mag);
    free(xq);
    free(wqv);
}

START_TEST(test_backend_linear_s8) {
    const qt_dtype dts[] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
    qt_dtype dt = dts[_i % 3];
    check_backend(dt, QT_QUANT_PER_ROW, QT_QUANT_PER_ROW, 1, 37, 70, 29, 300 + (uint64_t)_i);
    check_backend(dt, QT_QUANT_PER_TENSOR, QT_QUANT_PER_ROW, 0, 9, 33, 65, 310 + (uint64_t)_i);
    check_backend(dt, QT_QUANT_PER_ROW, QT_QUANT_PER_TENSOR, 1, 1, 1, 1, 320 + (uint64_t)_i);
    check_backend(dt, QT_QUANT_PER_TENSOR, QT_QUANT_PER_TENSOR, 1, 20, 64, 17,
                  330 + (uint64_t)_i);
}
END_TEST

// ---- s8dx part: qt_cuda_transpose_s8 and the backend's linear_s8_dx -------------------------

// out (cols, rows) = in^T byte-exact, output poisoned beforehand and a guard band after it.
static void check_transpose(int rows, int cols, size_t off, uint64_t seed) {
    char tag[120];
    snprintf(tag, sizeof tag, "transpose rows %d cols %d offset %zu seed %llu", rows, cols, off,
             (unsigned long long)seed);
    const size_t n = (size_t)rows * (size_t)cols;
    int8_t *in = rand_s8(n, seed), *got = malloc(n + GUARD);
    void *ibase, *obase;
    int8_t *din = dev_copy(in, n, off, &ibase);
    ck_assert_int_eq(cudaMalloc(&obase, n + off + GUARD), cudaSuccess);
    ck_assert_int_eq(cudaMemset(obase, 0x5A, n + off + GUARD), cudaSuccess);
    int8_t *dout = (int8_t *)obase + off;
    qt_status st = qt_cuda_transpose_s8(NULL, dout, din, rows, cols);
    ck_assert_msg(st == QT_OK, "%s: failed: %s", tag, qt_last_error());
    ck_assert_int_eq(cudaDeviceSynchronize(), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(got, dout, n + GUARD, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int c = 0; c < cols; c++)
        for (int r = 0; r < rows; r++)
            ck_assert_msg(got[(size_t)c * rows + r] == in[(size_t)r * cols + c],
                          "%s: out[%d][%d] = %d, want in[%d][%d] = %d", tag, c, r,
                          got[(size_t)c * rows + r], r, c, in[(size_t)r * cols + c]);
    for (size_t i = n; i < n + GUARD; i++)
        ck_assert_msg((uint8_t)got[i] == 0x5A, "%s: wrote past out at %zu", tag, i);
    cudaFree(ibase);
    cudaFree(obase);
    free(in);
    free(got);
}

START_TEST(test_transpose_s8) {
    // single element, below / above one 32 x 32 tile, rows and columns not multiples of 32 or
    // 8, one row, one column, exact tiles, and more tiles than one wave of a small grid
    static const int TSHAPES[][2] = {{1, 1},  {31, 33}, {33, 31}, {70, 129}, {1, 100},
                                     {100, 1}, {64, 32}, {3, 1027}, {257, 65}};
    for (int i = 0; i < (int)(sizeof TSHAPES / sizeof TSHAPES[0]); i++)
        check_transpose(TSHAPES[i][0], TSHAPES[i][1], 0, 500 + (uint64_t)i);
    check_transpose(45, 77, 3, 520); // odd byte offsets of in and out

    int8_t *d = NULL;
    ck_assert_int_eq(cudaMalloc((void **)&d, 64), cudaSuccess);
    ck_assert_int_eq(qt_cuda_transpose_s8(NULL, d, d + 32, -1, 4), QT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "qt_cuda_transpose_s8"));
    ck_assert_int_eq(qt_cuda_transpose_s8(NULL, d, d + 32, 4, -1), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_transpose_s8(NULL, NULL, d, 4, 4), QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_transpose_s8(NULL, d, NULL, 4, 4), QT_ERR_ARG);
    // empty: nothing to do, even with NULL pointers
    ck_assert_int_eq(qt_cuda_transpose_s8(NULL, NULL, NULL, 0, 5), QT_OK);
    ck_assert_int_eq(qt_cuda_transpose_s8(NULL, NULL, NULL, 5, 0), QT_OK);
    cudaFree(d);
}
END_TEST

// The CUDA backend's linear_s8_dx vs the CPU backend's (cpu_linear_s8_dx) on the same
// dt-rounded g, w and initial dx: both quantize to the same codes and scales and sum exactly in
// int32, and the epilogue ((float)acc * gs[n]) * ws is the same fp32 arithmetic; the CUDA
// backend then rounds the product to dt and the sum dx + product to dt again. Tolerance:
// fp32 a few ulps of |dx0| + |product|; fp16/bf16 one unit roundoff (2^-11, 2^-8) of the
// product and one of the result, plus fp16's subnormal spacing.
static void check_s8_dx(qt_dtype dt, int N, int IC, int OC, uint64_t seed) {
    char tag[200];
    snprintf(tag, sizeof tag, "backend linear_s8_dx %s (%s) N %d IC %d OC %d seed %llu",
             qt_dtype_name(dt), qt_cuda_int8_impl_name(qt_cuda_int8_default_impl()), N, IC, OC,
             (unsigned long long)seed);
    qt_backend cpu, be;
    ck_assert_int_eq(qt_backend_cpu_init(&cpu, 1), QT_OK);
    ck_assert_ptr_nonnull(cpu.ops->linear_s8_dx);
    ck_assert_int_eq(qt_backend_cuda_init(&be, 0, dt), QT_OK);
    ck_assert_ptr_nonnull(be.ops->linear_s8_dx);
    const size_t ng = (size_t)N * OC, nw = (size_t)OC * IC, nx = (size_t)N * IC;
    float *g = malloc(ng * sizeof(float)), *w = malloc(nw * sizeof(float));
    float *dx0 = malloc(nx * sizeof(float)), *ref = malloc(nx * sizeof(float));
    float *prod = calloc(nx, sizeof(float)), *got = malloc(nx * sizeof(float));
    qt_test_fill_uniform(g, ng, -2e-3f, 2e-3f, seed);
    qt_test_fill_uniform(w, nw, -0.1f, 0.1f, seed + 1);
    qt_test_fill_uniform(dx0, nx, -1e-3f, 1e-3f, seed + 2);
    if (N > 2) g[OC + OC / 2] = 0.05f; // a lone extreme in a token
    if (N > 3)
        for (int o = 0; o < OC; o++) g[3 * (size_t)OC + o] = 0.0f; // an all-zero token
    for (size_t i = 0; i < ng; i++) g[i] = qt_ct_round(dt, g[i]);
    for (size_t i = 0; i < nw; i++) w[i] = qt_ct_round(dt, w[i]);
    for (size_t i = 0; i < nx; i++) dx0[i] = qt_ct_round(dt, dx0[i]);
    memcpy(ref, dx0, nx * sizeof(float));
    qt_quant_params gq = qt_quant_params_default(8), wq = qt_quant_params_default(8);
    gq.granularity = QT_QUANT_PER_ROW;
    wq.granularity = QT_QUANT_PER_TENSOR;
    ck_assert_msg(cpu.ops->linear_s8_dx(cpu.ctx, ref, g, w, N, IC, OC, &gq, &wq) == QT_OK, "%s: "
                  "cpu: %s", tag, qt_last_error());
    ck_assert_int_eq(cpu.ops->linear_s8_dx(cpu.ctx, prod, g, w, N, IC, OC, &gq, &wq), QT_OK);

    void *dg = qt_ct_upload(dt, g, ng), *dw = qt_ct_upload(dt, w, nw);
    void *ddx = qt_ct_upload(dt, dx0, nx);
    qt_status st = be.ops->linear_s8_dx(be.ctx, ddx, dg, dw, N, IC, OC, &gq, &wq);
    ck_assert_msg(st == QT_OK, "%s: failed: %s", tag, qt_last_error());
    ck_assert_int_eq(be.ops->sync(be.ctx), QT_OK);
    qt_ct_download(dt, got, ddx, nx);
    const double u = dt == QT_DTYPE_F32 ? 4.0 / (1 << 24) : dt == QT_DTYPE_F16 ? 1.0 / 2048
                                                                               : 1.0 / 256;
    const double tiny = dt == QT_DTYPE_F16 ? 1.2e-7 : 1e-30;
    double worst = 0;
    for (size_t i = 0; i < nx; i++) {
        const double err = fabs((double)got[i] - ref[i]);
        const double tol = u * (fabs(prod[i]) + fabs(ref[i]) + fabs(dx0[i])) + tiny;
        ck_assert_msg(err <= tol, "%s: dx[%zu][%zu] = %.9g, want %.9g (dx0 %.9g, product %.9g; "
                      "err %.3g > tol %.3g)", tag, i / (size_t)IC, i % (size_t)IC,
                      (double)got[i], (double)ref[i], (double)dx0[i], (double)prod[i], err, tol);
        if (err / tol > worst) worst = err / tol;
    }
    ck_assert_msg(qt_ct_guard_ok(dt, ddx, nx), "%s: wrote past dx", tag);
    ck_assert_msg(worst < 1.0, "%s: worst err/tol %g", tag, worst);

    // other grids are refused (like the CPU backend), before dx is touched
    qt_ct_free(ddx);
    ddx = qt_ct_upload(dt, dx0, nx);
    qt_quant_params bad = gq;
    bad.granularity = QT_QUANT_PER_TENSOR;
    ck_assert_int_eq(be.ops->linear_s8_dx(be.ctx, ddx, dg, dw, N, IC, OC, &bad, &wq),
                     QT_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(qt_last_error(), "linear_s8_dx"));
    ck_assert_int_eq(cpu.ops->linear_s8_dx(cpu.ctx, ref, g, w, N, IC, OC, &bad, &wq),
                     QT_ERR_UNSUPPORTED);
    bad = wq;
    bad.granularity = QT_QUANT_PER_ROW;
    ck_assert_int_eq(be.ops->linear_s8_dx(be.ctx, ddx, dg, dw, N, IC, OC, &gq, &bad),
                     QT_ERR_UNSUPPORTED);
    ck_assert_int_eq(cpu.ops->linear_s8_dx(cpu.ctx, ref, g, w, N, IC, OC, &gq, &bad),
                     QT_ERR_UNSUPPORTED);
    bad = gq;
    bad.bits = 4;
    ck_assert_int_eq(be.ops->linear_s8_dx(be.ctx, ddx, dg, dw, N, IC, OC, &bad, &wq),
                     QT_ERR_UNSUPPORTED);
    bad = wq;
    bad.symmetric = 0;
    ck_assert_int_eq(be.ops->linear_s8_dx(be.ctx, ddx, dg, dw, N, IC, OC, &gq, &bad),
                     QT_ERR_UNSUPPORTED);
    bad = gq;
    bad.rounding = QT_QUANT_STOCHASTIC;
    ck_assert_int_eq(be.ops->linear_s8_dx(be.ctx, ddx, dg, dw, N, IC, OC, &bad, &wq),
                     QT_ERR_UNSUPPORTED);
    ck_assert_int_eq(be.ops->linear_s8_dx(be.ctx, ddx, dg, dw, N, IC, OC, NULL, &wq),
                     QT_ERR_UNSUPPORTED);
    ck_assert_int_eq(be.ops->linear_s8_dx(be.ctx, ddx, dg, dw, 0, IC, OC, &gq, &wq), QT_ERR_ARG);
    ck_assert_int_eq(be.ops->linear_s8_dx(be.ctx, ddx, dg, dw, N, IC, -1, &gq, &wq), QT_ERR_ARG);
    ck_assert_int_eq(be.ops->sync(be.ctx), QT_OK);
    qt_ct_download(dt, got, ddx, nx);
    ck_assert_msg(memcmp(got, dx0, nx * sizeof(float)) == 0, "%s: a refused call changed dx",
                  tag);

    qt_ct_free(dg);
    qt_ct_free(dw);
    qt_ct_free(ddx);
    qt_backend_free(&be);
    qt_backend_free(&cpu);
    free(g);
    free(w);
    free(dx0);
    free(ref);
    free(prod);
    free(got);
}

// _i: dtype (fp32, fp16, bf16) x implementation picked through QT_CUDA_INT8 (mma, cublaslt).
START_TEST(test_backend_linear_s8_dx) {
    const qt_dtype dts[] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_BF16};
    const qt_dtype dt = dts[_i % 3];
    const char *saved = getenv("QT_CUDA_INT8");
    char *keep = saved ? strdup(saved) : NULL;
    setenv("QT_CUDA_INT8", _i < 3 ? "mma" : "cublaslt", 1);
    const uint64_t seed = 600 + 10 * (uint64_t)_i;
    // growing shapes (the workspace grows between calls): one element; odd N, IC, OC none a
    // multiple of 4, 8 or 32; OC (the GEMM's K) above one k-stage; IC above one column tile
    check_s8_dx(dt, 1, 1, 1, seed);
    check_s8_dx(dt, 9, 33, 65, seed + 1);
    check_s8_dx(dt, 37, 70, 29, seed + 2);
    check_s8_dx(dt, 20, 130, 17, seed + 3);
    if (keep) {
        setenv("QT_CUDA_INT8", keep, 1);
        free(keep);
    } else {
        unsetenv("QT_CUDA_INT8");
    }
}
END_TEST
// ---- end of the s8dx part

static void release_lt(void) { qt_cuda_int8_release(); }

int main(void) {
    qt_ct_require_device();
    Suite *s = suite_create("cuda_int8_gemm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, NULL, release_lt);
    tcase_add_loop_test(tc, test_gemm_exact, 0, N_IMPLS);
    tcase_add_loop_test(tc, test_linear_epilogue, 0, N_IMPLS);
    tcase_add_test(tc, test_flag_and_bad_args);
    tcase_add_loop_test(tc, test_backend_linear_s8, 0, 3);
    tcase_add_test(tc, test_transpose_s8);                // s8dx part
    tcase_add_loop_test(tc, test_backend_linear_s8_dx, 0, 6); // s8dx part
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

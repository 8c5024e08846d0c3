// cuda_testutil.c: see cuda_testutil.h. Uses only the CUDA runtime's C API, so it links with
// libcudart or with the emulator's runtime (tests/cuemu/cuemu_cudart.cpp).
#include "cuda_testutil.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h" // qt_test_fill_uniform, qt_test_max_err (libqt_testutil)

#define GUARD_BYTES 256
#define GUARD_BYTE 0x5A

// The emulated build (QT_CUEMU) always has its CPU device: nothing to check, never a skip.
void qt_ct_require_device(void) {
#if !defined(QT_CUEMU)
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        printf("skipped: no usable CUDA device (%s)\n",
               err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0");
        exit(QT_CT_SKIP);
    }
    // Check runs each case in a forked child by default, and a CUDA context does not survive a
    // fork: the call above has initialised the driver, so every child would fail with
    // "initialization error". Run the cases in this process instead.
    setenv("CK_FORK", "no", 1);
#endif
}

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t qt_ct_f32_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    if (isnan(x)) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
float qt_ct_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t qt_ct_f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t au = u & 0x7FFFFFFF;
    if (au > 0x7F800000) return sign | 0x7E00; // NaN
    if (au >= 0x477FF000) return sign | 0x7C00; // rounds to >= 65520: inf
    if (au < 0x33000001) return sign;           // < 2^-25 (half of the smallest subnormal)
    int exp = (int)(au >> 23);
    uint32_t mant = (au & 0x7FFFFF) | 0x800000;
    if (exp < 113) { // subnormal half: value = mant * 2^(exp-150); unit 2^-24
        int shift = 126 - exp; // bits to drop from the 24-bit mantissa to reach units of 2^-24
        uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t q = ((uint32_t)(exp - 112) << 10) | ((mant >> 13) & 0x3FF);
    uint32_t rem = mant & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
    return sign | (uint16_t)q;
}

float qt_ct_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    int exp = (h >> 10) & 0x1F;
    uint32_t mant = h & 0x3FF;
    if (exp == 0x1F) return bits_f32(sign | 0x7F800000 | (mant << 13));
    if (exp == 0) {
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((uint32_t)(exp + 112) << 23) | (mant << 13));
}

float qt_ct_round(qt_dtype dt, float x) {
    switch (dt) {
    case QT_DTYPE_F16: return qt_ct_f16_to_f32(qt_ct_f32_to_f16(x));
    case QT_DTYPE_BF16: return qt_ct_bf16_to_f32(qt_ct_f32_to_bf16(x));
    default: return x;
    }
}

static void check(cudaError_t err, const char *what) {
    if (err != cudaSuccess) {
        fprintf(stderr, "cuda_testutil: %s failed: %s\n", what, cudaGetErrorString(err));
        abort();
    }
}

void *qt_ct_alloc(qt_dtype dt, size_t n) {
    size_t bytes = n * qt_dtype_size(dt);
    void *dev = NULL;
    check(cudaMalloc(&dev, bytes + GUARD_BYTES), "cudaMalloc");
    check(cudaMemset(dev, 0xFF, bytes), "cudaMemset (poison)");
    check(cudaMemset((char *)dev + bytes, GUARD_BYTE, GUARD_BYTES), "cudaMemset (guard)");
    return dev;
}

void *qt_ct_upload(qt_dtype dt, const float *host, size_t n) {
    void *dev = qt_ct_alloc(dt, n);
    size_t es = qt_dtype_size(dt);
    void *tmp = malloc(n * es + 1);
    for (size_t i = 0; i < n; i++) {
        if (dt == QT_DTYPE_F32)
            ((float *)tmp)[i] = host[i];
        else if (dt == QT_DTYPE_F16)
            ((uint16_t *)tmp)[i] = qt_ct_f32_to_f16(host[i]);
        else
            ((uint16_t *)tmp)[i] = qt_ct_f32_to_bf16(host[i]);
    }
    check(cudaMemcpy(dev, tmp, n * es, cudaMemcpyHostToDevice), "cudaMemcpy (upload)");
    free(tmp);
    return dev;
}

void qt_ct_download(qt_dtype dt, float *host, const void *dev, size_t n) {
    size_t es = qt_dtype_size(dt);
    void *tmp = malloc(n * es + 1);
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    check(cudaMemcpy(tmp, dev, n * es, cudaMemcpyDeviceToHost), "cudaMemcpy (download)");
    for (size_t i = 0; i < n; i++) {
        if (dt == QT_DTYPE_F32)
            host[i] = ((float *)tmp)[i];
        else if (dt == QT_DTYPE_F16)
            host[i] = qt_ct_f16_to_f32(((uint16_t *)tmp)[i]);
        else
            host[i] = qt_ct_bf16_to_f32(((uint16_t *)tmp)[i]);
    }
    free(tmp);
}

int qt_ct_guard_ok(qt_dtype dt, const void *dev, size_t n) {
    unsigned char guard[GUARD_BYTES];
    check(cudaMemcpy(guard, (const char *)dev + n * qt_dtype_size(dt), GUARD_BYTES,
                     cudaMemcpyDeviceToHost),
          "cudaMemcpy (guard)");
    for (int i = 0; i < GUARD_BYTES; i++)
        if (guard[i] != GUARD_BYTE) return 0;
    return 1;
}

void qt_ct_free(void *dev) {
    if (dev) check(cudaFree(dev), "cudaFree");
}

void qt_ct_tolerance(qt_dtype dt, double *atol, double *rtol) {
    switch (dt) {
    case QT_DTYPE_F16:
        *atol = 1e-3;
        *rtol = 4e-3; // 2^-11 unit roundoff, a few roundings deep
        break;
    case QT_DTYPE_BF16:
        *atol = 1e-2;
        *rtol = 3e-2; // 2^-8 unit roundoff
        break;
    default:
        *atol = 1e-6;
        *rtol = 1e-5;
    }
}

float *qt_ct_rand_rounded(qt_dtype dt, size_t n, float lo, float hi, uint64_t seed) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    qt_test_fill_uniform(x, n, lo, hi, seed);
    for (size_t i = 0; i < n; i++) x[i] = qt_ct_round(dt, x[i]);
    return x;
}

float *qt_ct_download_new(qt_dtype dt, const void *dev, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    ck_assert_ptr_nonnull(h);
    qt_ct_download(dt, h, dev, n);
    return h;
}

double qt_ct_dev_err(qt_dtype dt, const void *dev, const float *want, size_t n, double atol,
                     double rtol) {
    float *got = qt_ct_download_new(dt, dev, n);
    double e = qt_test_max_err(got, want, n, atol, rtol);
    free(got);
    return e;
}

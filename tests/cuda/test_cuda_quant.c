// test_cuda_quant.c: qt_cuda_quant_{fake,quantize} (kernels/cuda/quant.cu) against the CPU
// reference qt_cpu_quant_{fake,quantize} (kernels/cpu/quant.c), bit for bit.
//
// Both sides take the per-element math and the absmean reduction order from
// base/quant_math.h and stochastic rounding draws qt_philox_uniform(seed, stream, i),
// so codes, scales, zero points and fake-quant values must be identical (tolerance 0), in every
// supported mode: bits {ternary, 4, 8}, symmetric or asymmetric, absmax or absmean, per
// tensor/row/group, nearest or stochastic. fp16/bf16 inputs: the CPU runs on the dt-rounded
// inputs and its fake-quant output is rounded once to dt. Shapes are odd (1x1, 3x31, 5x33,
// 1x1027; groups of 8 or 16 in the short rows, 100 in the long one, the last group short);
// outputs are poisoned beforehand and guard bands checked after. Under TSan the suite takes
// ~20 s on 2 shared cores (the 256-thread grid blocks dominate).
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_testutil.h"
#include "kernels/quant.h"
#include "testutil.h"

static const size_t SHAPES[][2] = {{1, 1}, {3, 31}, {5, 33}, {1, 1027}};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])

static void *dev_poisoned(size_t bytes) {
    void *d = NULL;
    ck_assert_int_eq(cudaMalloc(&d, bytes ? bytes : 1), cudaSuccess);
    ck_assert_int_eq(cudaMemset(d, 0xAB, bytes ? bytes : 1), cudaSuccess);
    return d;
}

static void check_case(qt_dtype dt, const qt_quant_params *pm, size_t rows, size_t cols,
                       uint64_t seed) {
    // long rows get groups of 100 (11 per 1027-row, the last short): fewer 256-thread grid
    // blocks, which is what the sanitizer runs pay for
    qt_quant_params q = *pm;
    if (cols > 100) q.group_size = 100;
    const qt_quant_params *p = &q;
    char tag[200];
    snprintf(tag, sizeof tag,
             "quant %s bits %d sym %d gran %d group %zu range %d rnd %d (%zu, %zu) seed %llu",
             qt_dtype_name(dt), p->bits, p->symmetric, (int)p->granularity, p->group_size,
             (int)p->range, (int)p->rounding, rows, cols, (unsigned long long)seed);
    const size_t n = rows * cols, ns = qt_quant_num_scales(p, rows, cols);
    float *x = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
    float *got = malloc(n * sizeof(float)), *rs = malloc(ns * sizeof(float));
    float *gs = malloc(ns * sizeof(float));
    int32_t *rz = malloc(ns * sizeof(int32_t)), *gz = malloc(ns * sizeof(int32_t));
    int8_t *rc = malloc(n), *gc = malloc(n);
    qt_test_fill_uniform(x, n, p->symmetric ? -3.0f : -0.5f, 2.0f, seed);
    for (size_t i = 0; i < n; i++) x[i] = qt_ct_round(dt, x[i]);

    // fake quant
    ck_assert_int_eq(qt_cpu_quant_fake(p, NULL, ref, x, rows, cols), QT_OK);
    for (size_t i = 0; i < n; i++) ref[i] = qt_ct_round(dt, ref[i]);
    void *dx = qt_ct_upload(dt, x, n), *dout = qt_ct_alloc(dt, n);
    float *dscale = qt_ct_alloc(QT_DTYPE_F32, ns);
    int32_t *dzero = dev_poisoned(ns * sizeof(int32_t));
    int8_t *dcode = dev_poisoned(n);
    qt_status st = qt_cuda_quant_fake(NULL, dt, p, dout, dx, rows, cols, dscale, p->symmetric ? NULL : dzero);
    ck_assert_msg(st == QT_OK, "%s: fake failed: %s", tag, qt_last_error());
    qt_ct_download(dt, got, dout, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(memcmp(&got[i], &ref[i], sizeof(float)) == 0,
                      "%s: fake element %zu: got %.9g want %.9g", tag, i, (double)got[i],
                      (double)ref[i]);
    ck_assert_msg(qt_ct_guard_ok(dt, dout, n), "%s: fake wrote past out", tag);

    // quantize to codes + scales + zero points
    ck_assert_int_eq(qt_cpu_quant_quantize(p, NULL, rc, rs, rz, x, rows, cols), QT_OK);
    st = qt_cuda_quant_quantize(NULL, dt, p, dcode, dscale, dzero, dx, rows, cols);
    ck_assert_msg(st == QT_OK, "%s: quantize failed: %s", tag, qt_last_error());
    ck_assert_int_eq(cudaMemcpy(gc, dcode, n, cudaMemcpyDeviceToHost), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(gz, dzero, ns * sizeof(int32_t), cudaMemcpyDeviceToHost),
                     cudaSuccess);
    qt_ct_download(QT_DTYPE_F32, gs, dscale, ns);
    for (size_t s = 0; s < ns; s++)
        ck_assert_msg(memcmp(&gs[s], &rs[s], sizeof(float)) == 0 && gz[s] == rz[s],
                      "%s: slice %zu: scale %.9g zc %d, want %.9g %d", tag, s, (double)gs[s],
                      gz[s], (double)rs[s], rz[s]);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(gc[i] == rc[i], "%s: code %zu: got %d want %d", tag, i, gc[i], rc[i]);
    ck_assert_msg(qt_ct_guard_ok(QT_DTYPE_F32, dscale, ns), "%s: wrote past scales", tag);

    qt_ct_free(dx);
    qt_ct_free(dout);
    qt_ct_free(dscale);
    cudaFree(dzero);
    cudaFree(dcode);
    free(x);
    free(ref);
    free(got);
    free(rs);
    free(gs);
    free(rz);
    free(gz);
    free(rc);
    free(gc);
}

// Loop index -> bit width; each mode runs in fp32 on 1x1027 and on one small shape in
// rotation, and in fp16 or bf16 on another small shape.
static const int BITS[] = {QT_QUANT_TERNARY, 4, 8};

START_TEST(test_vs_cpu_bitwise) {
    const int bits = BITS[_i];
    int count = 0;
    for (int sym = 1; sym >= 0; sym--)
        for (int range = 0; range <= 1; range++)
            for (int gran = 0; gran < 3; gran++)
                for (int rnd = 0; rnd <= 1; rnd++) {
                    if (!sym && (bits == QT_QUANT_TERNARY || range == 1)) continue;
                    qt_quant_params p = qt_quant_params_default(bits);
                    p.symmetric = sym;
                    p.range = range ? QT_QUANT_RANGE_ABSMEAN : QT_QUANT_RANGE_ABSMAX;
                    p.granularity = (qt_quant_granularity)gran;
                    p.group_size = rnd ? 8 : 16;
                    p.rounding = rnd ? QT_QUANT_STOCHASTIC : QT_QUANT_NEAREST;
                    p.seed = 0x0123456789ABCDEFull;
                    p.stream = qt_quant_stream(42, (uint64_t)(count + 1));
                    // the large shape always, one of the small ones in rotation (the
                    // sanitizer runs are 5-40x slower than the emulator alone)
                    const size_t small = (size_t)count % (N_SHAPES - 1), big = N_SHAPES - 1;
                    check_case(QT_DTYPE_F32, &p, SHAPES[small][0], SHAPES[small][1],
                               (uint64_t)(1000 * _i + 10 * count));
                    check_case(QT_DTYPE_F32, &p, SHAPES[big][0], SHAPES[big][1],
                               (uint64_t)(1000 * _i + 10 * count + 1));
                    const qt_dtype dt = count & 1 ? QT_DTYPE_BF16 : QT_DTYPE_F16;
                    const size_t hs = ((size_t)count + 1) % (N_SHAPES - 1);
                    check_case(dt, &p, SHAPES[hs][0], SHAPES[hs][1],
                               (uint64_t)(7000 + 10 * count));
                    count++;
                }
}
END_TEST

START_TEST(test_bad_args) {
    qt_quant_params p = qt_quant_params_default(8);
    float *d = qt_ct_alloc(QT_DTYPE_F32, 8);
    int8_t *c = dev_poisoned(8);
    ck_assert_int_eq(qt_cuda_quant_fake(NULL, QT_DTYPE_F32, &p, d, d, 2, 4, NULL, NULL),
                     QT_ERR_ARG);
    p.range = QT_QUANT_RANGE_MSE;
    ck_assert_int_eq(qt_cuda_quant_fake(NULL, QT_DTYPE_F32, &p, d, d, 2, 4, d, NULL),
                     QT_ERR_UNSUPPORTED);
    p = qt_quant_params_default(8);
    p.symmetric = 0;
    ck_assert_int_eq(qt_cuda_quant_quantize(NULL, QT_DTYPE_F32, &p, c, d, NULL, d, 2, 4),
                     QT_ERR_ARG); // asymmetric without zeros
    ck_assert_int_eq(qt_cuda_quant_quantize(NULL, 99, &p, c, d, NULL, d, 2, 4), QT_ERR_ARG);
    p.bits = 0;
    ck_assert_int_eq(qt_cuda_quant_quantize(NULL, QT_DTYPE_F32, &p, c, d, NULL, d, 2, 4),
                     QT_ERR_ARG);
    p = qt_quant_params_default(8);
    ck_assert_int_eq(qt_cuda_quant_quantize(NULL, QT_DTYPE_F32, &p, NULL, d, NULL, d, 2, 4),
                     QT_ERR_ARG);
    ck_assert_int_eq(qt_cuda_quant_quantize(NULL, QT_DTYPE_F32, &p, c, d, NULL, d, 0, 4), QT_OK);
    qt_ct_free(d);
    cudaFree(c);
}
END_TEST

int main(void) {
    qt_ct_require_device();
    Suite *s = suite_create("cuda_quant");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_vs_cpu_bitwise, 0, 3);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

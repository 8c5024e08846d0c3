// test_cuemu_capi.c: C code drives emulated CUDA like the CUDA backend will (Check suite
// "cuemu_capi").
//
// A C11 translation unit includes the real <cuda_runtime.h>, calls cudaMalloc/cudaMemcpy (the
// emulator's definitions, C linkage) and a C-callable launcher compiled from a .cu file, and
// links without libcudart: the shape of the emulated CUDA backend.
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include <cuda_runtime.h>

#include "cuemu_test_kernels.h"

START_TEST(test_c_launcher) {
    enum { nblocks = 4, per_block = 300 };
    float h[nblocks * per_block], out[nblocks];
    for (int i = 0; i < nblocks * per_block; i++) h[i] = (float)(i % 7) - 3.0f;
    float *dx = NULL, *dout = NULL;
    ck_assert_int_eq(cudaMalloc((void **)&dx, sizeof h), cudaSuccess);
    ck_assert_int_eq(cudaMalloc((void **)&dout, sizeof out), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(dx, h, sizeof h, cudaMemcpyHostToDevice), cudaSuccess);
    ck_assert_int_eq(cuemu_test_block_sum(dx, dout, nblocks, per_block, 64), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int b = 0; b < nblocks; b++) {
        double ref = 0.0;
        for (int i = 0; i < per_block; i++) ref += h[b * per_block + i];
        ck_assert_msg(fabs(out[b] - ref) <= 1e-3, "block_sum from C, block %d: got %g want %g", b,
                      out[b], ref);
    }
    ck_assert_int_eq(cudaFree(dx), cudaSuccess);
    ck_assert_int_eq(cudaFree(dout), cudaSuccess);
    ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
}
END_TEST

START_TEST(test_c_launch_error) {
    dim3 grid = {1, 1, 1}, block = {2048, 1, 1};
    ck_assert_int_eq(cuemu_test_empty(grid, block, 0), cudaErrorInvalidConfiguration);
    ck_assert_str_eq(cudaGetErrorName(cudaErrorInvalidConfiguration), "cudaErrorInvalidConfiguration");
}
END_TEST

int main(void) {
    Suite *s = suite_create("cuemu_capi");
    TCase *tc = tcase_create("c");
    tcase_add_test(tc, test_c_launcher);
    tcase_add_test(tc, test_c_launch_error);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

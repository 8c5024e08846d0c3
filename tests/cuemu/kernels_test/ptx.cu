// ptx.cu: the sm_80 PTX wrappers of kernels/cuda/common.cuh (ldmatrix, cp.async) on the
// emulator's twins, for test_cuemu.cpp. nvcc compiles this file too (cuemu_nvcc_ptx), so the
// wrappers' inline PTX is checked to assemble for sm_80.
#include "qt_cuda_compat.h"

#include "kernels/cuda/common.cuh"

#include "cuemu_test_kernels.h"

// One warp. Shared memory holds 4 matrices of 8 rows x 8 uint16 (src (4, 8, 8)), row r of
// matrix i at byte 48 (8 i + r): a pitch of 48, so the twin must follow the given addresses.
// Lane l gives the address of row l % 8 of matrix l / 8. out (32 lanes, 14 words): x1, x2, x4,
// x1.trans, x2.trans, x4.trans, in that order.
static __global__ void ldmatrix_all(const uint16_t *src, uint32_t *out) {
    QT_DYNAMIC_SHARED(uint16_t, tile); // 32 rows of 48 bytes (16-byte aligned)
    const int lane = (int)threadIdx.x;
    for (int i = lane; i < 4 * 64; i += 32) tile[(i / 8) * 24 + i % 8] = src[i];
    __syncthreads();
    const void *row = &tile[lane * 24];
    uint32_t *o = out + 14 * lane;
    uint32_t d1[1], d2[2], d4[4];
    qt_ldmatrix_x1(d1, row);
    qt_ldmatrix_x2(d2, row);
    qt_ldmatrix_x4(d4, row);
    o[0] = d1[0];
    o[1] = d2[0];
    o[2] = d2[1];
    for (int i = 0; i < 4; i++) o[3 + i] = d4[i];
    qt_ldmatrix_x1_trans(d1, row);
    qt_ldmatrix_x2_trans(d2, row);
    qt_ldmatrix_x4_trans(d4, row);
    o[7] = d1[0];
    o[8] = d2[0];
    o[9] = d2[1];
    for (int i = 0; i < 4; i++) o[10 + i] = d4[i];
}

extern "C" cudaError_t cuemu_test_ldmatrix(const uint16_t *src, uint32_t *out) {
    QT_LAUNCH(ldmatrix_all, 1, 32, 32 * 48, nullptr, src, out);
    return cudaGetLastError();
}

// What each thread t of one warp sees of its own cp.async copies (the emulator's model: a copy
// lands when a wait covering its group runs, its destination poisoned until then; on a GPU the
// "before" observations are undefined). src: (32, 16) bytes. out (32, 96) bytes, per thread:
//   [0, 16)   16 bytes (cg, group 0) before any wait
//   [16, 32)  the same after wait_group 2
//   [32, 40)  8 bytes (ca, src-size 5, group 1) after wait_group 2
//   [40, 48)  the same after wait_group 1
//   [48, 52)  4 bytes (ca, src-size 0, group 2) after wait_group 0
//   [52, 68)  16 bytes (cg, never committed) after wait_group 0
//   [68, 84)  the same after wait_all (commit + wait_group 0)
static __global__ void cp_async_groups(const unsigned char *src, unsigned char *out) {
    QT_DYNAMIC_SHARED(unsigned char, smem);
    const int t = (int)threadIdx.x;
    unsigned char *s0 = smem + 16 * t, *s1 = smem + 512 + 8 * t, *s2 = smem + 768 + 4 * t;
    unsigned char *s3 = smem + 1024 + 16 * t, *o = out + 96 * t;
    const unsigned char *g = src + 16 * t;
    qt_cp_async_cg16(s0, g, 16);
    qt_cp_async_commit();
    qt_cp_async_ca<8>(s1, g, 5);
    qt_cp_async_commit();
    qt_cp_async_ca<4>(s2, g, 0);
    qt_cp_async_commit();
    for (int i = 0; i < 16; i++) o[i] = s0[i];
    qt_cp_async_wait<2>();
    for (int i = 0; i < 16; i++) o[16 + i] = s0[i];
    for (int i = 0; i < 8; i++) o[32 + i] = s1[i];
    qt_cp_async_wait<1>();
    for (int i = 0; i < 8; i++) o[40 + i] = s1[i];
    qt_cp_async_cg16(s3, g, 16);
    qt_cp_async_wait<0>();
    for (int i = 0; i < 4; i++) o[48 + i] = s2[i];
    for (int i = 0; i < 16; i++) o[52 + i] = s3[i];
    qt_cp_async_commit();
    qt_cp_async_wait<0>();
    for (int i = 0; i < 16; i++) o[68 + i] = s3[i];
}

extern "C" cudaError_t cuemu_test_cp_async(const unsigned char *src, unsigned char *out) {
    QT_LAUNCH(cp_async_groups, 1, 32, 1536, nullptr, src, out);
    return cudaGetLastError();
}

// int8_gemm.cu: INT8 GEMM C = A B^T (int8 x int8 -> int32, exact) and the W8A8 linear layer
// with the dequantization fused in the epilogue (PAPERS.md section 5); API and contract in
// kernels/int8_gemm.h. CPU twin: kernels/cpu/int8_gemm.c (qt_cpu_gemm_s8s32,
// qt_cpu_linear_s8): the same int32 results and the same epilogue floats,
//     out = ((float)acc * a_scale[m]) * b_scale[n] + bias[n]
// with every product and sum rounded separately (__fmul_rn/__fadd_rn: nvcc may not contract
// them into an FMA), then rounded once to the output dtype.
//
// Two implementations:
//   mma       int8_gemm_mma_tile: a 128x128 output tile per block of 4 warps (2 x 2), each warp
//             a 64x64 tile of 4 x 8 mma.sync.m16n8k32 .s8 fragments. K runs in 64-byte stages
//             through a 4-stage cp.async pipeline in shared memory (64 KiB, dynamic): while the
//             warps compute stage kt, the copies of stages kt+1 .. kt+3 are in flight; one
//             __syncthreads per stage. Fragments come from shared memory by ldmatrix.x4 over an
//             XOR-swizzled layout without bank conflicts (see SWIZZLE below). The epilogue
//             writes int32 or dequantized dt straight from the accumulators, two adjacent
//             columns per store. Edges: rows past M or N and k past K are copied as zeros
//             (cp.async's src-size 0), a zero adds nothing to a dot product, and outputs
//             outside (M, N) are not written. K % 16 != 0 or 16-byte-misaligned A/B (cp.async
//             needs 16-byte-aligned sources): the same kernel with synchronous byte loads into
//             the same stages (ASYNC = false).
//   cublaslt  cublasLtMatmul (COMPUTE_32I, int32 alpha/beta, A/B CUDA_R_8I, C CUDA_R_32I, TN),
//             operands padded to cuBLASLt's multiples of 4 in a library-owned workspace when
//             needed, then int8_dequant_elem for the linear.
//
// The tensor-core instruction (PTX ISA, "Matrix Fragments for mma.m16n8k32", .s8):
// with g = lane >> 2 (groupID) and t = lane % 4 (threadID_in_group), each lane holds
//   A (16 x 32, row): 4 .b32 registers of 4 int8 each, low byte first:
//       a[0]: row g,   k = 4t .. 4t+3        a[1]: row g+8, k = 4t .. 4t+3
//       a[2]: row g,   k = 16+4t .. 16+4t+3  a[3]: row g+8, k = 16+4t .. 16+4t+3
//   B (32 x 8, col): 2 .b32 registers: b[0]: column g, k = 4t .. 4t+3; b[1]: k = 16+4t ..
//   C/D (16 x 8): 4 int32: d[0] (g, 2t), d[1] (g, 2t+1), d[2] (g+8, 2t), d[3] (g+8, 2t+1).
// ldmatrix.x4 (common.cuh) hands lane l the 4 bytes 4 (l % 4) .. of row l / 4 of each of four
// 8-row x 16-byte matrices, whose row addresses lanes 0-7, 8-15, 16-23, 24-31 give: with int8
// data, exactly the register layout above when the four matrices are A's (rows 0-7, k 0-15),
// (rows 8-15, k 0-15), (rows 0-7, k 16-31), (rows 8-15, k 16-31), or two B fragments' (n 0-7,
// k 0-15), (n 0-7, k 16-31), (n 8-15, k 0-15), (n 8-15, k 16-31). So no .trans is needed: A and
// B are both K-contiguous (the TN layout).
// On the GPU mma_s8_m16n8k32 is that instruction in inline PTX. In the emulator (QT_CUEMU) it
// is a CPU twin that implements the same layout: each lane gathers the A rows and B columns of
// its four outputs from the lanes that hold them (through a per-warp exchange area between two
// __syncwarp) and sums the products, so a fragment the kernel loads into the wrong register
// gives wrong results here as on the GPU.
// The ldmatrix and cp.async twins (tests/cuemu/cuemu.h) likewise follow the PTX definitions;
// the cp.async twin lands a copy only when a wait_group covering it runs, so a missing wait
// reads poison.
//
// Mutations (tests only; cmake/cuda.cmake builds them for the CTests that expect a failure):
// QT_INT8_GEMM_MUTATION = 1 swaps the A registers a[1] and a[2] after ldmatrix; = 2 waits for
// one cp.async group too few (the stage being computed may not have landed).

#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/int8_gemm.h"
#include "base/dtype.h"

#if !QT_CUDA_EMULATED
#include <cublasLt.h>
#endif

// ---- tile constants -------------------------------------------------------------------------
#define MMA_THREADS 128 // 4 warps: 2 along M x 2 along N
#define TILE_M 128      // rows of A (and C) per block
#define TILE_N 128      // rows of B (columns of C) per block
#define TILE_K 64       // k bytes per pipeline stage: two mma k-steps of 32
#define STAGES 4        // pipeline depth: STAGES - 1 stages in flight while one is computed
#define WARP_M 64       // per warp: 4 fragments of 16 rows
#define WARP_N 64       // per warp: 8 fragments of 8 columns
#define GROUP_M 8       // block raster: 8 tile-rows share the B tiles they read (L2 reuse)
// One stage: A (TILE_M rows x 64 bytes) then B (TILE_N rows x 64 bytes), 16 KiB.
#define STAGE_A_BYTES (TILE_M * TILE_K)
#define STAGE_BYTES ((TILE_M + TILE_N) * TILE_K)
#define SMEM_BYTES (STAGES * STAGE_BYTES) // 65536: over 48 KiB, opted in per kernel
// SWIZZLE: a tile's 64-byte rows are stored in pairs as 128-byte lines; 16-byte chunk c of row
// r goes to slot ((r & 1) * 4 + c) ^ ((r >> 1) & 7) of line r >> 1. An ldmatrix phase reads one
// chunk column of 8 consecutive rows (4 lines, both halves): slots {c, 4 + c} ^ {0..3} or
// ^ {4..7}: 8 distinct 16-byte slots = all 32 banks once. A quarter warp of cp.async writes the
// 8 chunks of one line: 8 distinct slots too. Adding 16 rows (or any multiple of 16) adds 1024
// bytes and keeps the XOR, so per-thread offsets are computed once and stepped.
#define ELEM_THREADS 256
#define ELEM_MAX_BLOCKS 65535
#ifndef QT_INT8_GEMM_MUTATION
#define QT_INT8_GEMM_MUTATION 0
#endif
// Full unrolling of the fixed-trip loops (QT_UNROLL) keeps the fragments and accumulators in
// registers (a dynamically indexed local array would be local memory, which the ptxas check
// refuses).

static __device__ __forceinline__ int swizzle_off(int r, int c) {
    return (r >> 1) * 128 + ((((r & 1) << 2) | c) ^ ((r >> 1) & 7)) * 16;
}

// ---- the tensor-core instruction --------------------------------------------------------------

#if QT_CUDA_EMULATED
// Sum over the 4 byte lanes of x and y of int8 x int8 products.
static __device__ __forceinline__ int dot4_s8(uint32_t x, uint32_t y) {
    int s = 0;
    for (int j = 0; j < 4; j++)
        s += (int)(int8_t)(uint8_t)(x >> (8 * j)) * (int)(int8_t)(uint8_t)(y >> (8 * j));
    return s;
}
#endif

// d (4 int32) += A (16x32 fragment a) * B (32x8 fragment b), the layout in the file header.
// Every lane of the warp must call it together (it is a warp-wide instruction).
static __device__ __forceinline__ void mma_s8_m16n8k32(int (&d)[4], const uint32_t (&a)[4],
                                                       const uint32_t (&b)[2]) {
#if QT_CUDA_EMULATED
    // CPU twin: lane (g, t) computes its outputs (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1).
    // Row g of A is spread over lanes 4g + s (s < 4): a[0] holds k = 4s.., a[2] k = 16+4s..;
    // row g+8 likewise in a[1], a[3]. Column n of B is spread over lanes 4n + s: b[0] holds
    // k = 4s.., b[1] k = 16+4s... The lanes publish their registers in an exchange area per
    // warp, meet at __syncwarp, read the registers of the lanes that hold their rows and
    // columns, and meet again before the area can be rewritten. The area is per worker thread
    // (a worker runs one block at a time, and all lanes of a warp run on it): 2 collectives per
    // mma instead of the 32 shuffles of a register-by-register gather.
    static thread_local uint32_t xa[32][32][4], xb[32][32][2];
    const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const int lane = (int)(tid & 31u), warp = (int)(tid >> 5), g = lane >> 2, t = lane & 3;
    for (int r = 0; r < 4; r++) xa[warp][lane][r] = a[r];
    xb[warp][lane][0] = b[0];
    xb[warp][lane][1] = b[1];
    __syncwarp();
    for (int s = 0; s < 4; s++) {
        const uint32_t *ra = xa[warp][4 * g + s];           // row g: [0], [2]; row g+8: [1], [3]
        const uint32_t *c0 = xb[warp][4 * (2 * t) + s];     // column 2t
        const uint32_t *c1 = xb[warp][4 * (2 * t + 1) + s]; // column 2t+1
        d[0] += dot4_s8(ra[0], c0[0]) + dot4_s8(ra[2], c0[1]);
        d[1] += dot4_s8(ra[0], c1[0]) + dot4_s8(ra[2], c1[1]);
        d[2] += dot4_s8(ra[1], c0[0]) + dot4_s8(ra[3], c0[1]);
        d[3] += dot4_s8(ra[1], c1[0]) + dot4_s8(ra[3], c1[1]);
    }
    __syncwarp();
#else
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// ---- epilogue (shared by both implementations) ----------------------------------------------

// Scales and bias of the dequantizing epilogue; a_step/b_step are 1 (per row) or 0 (one scale).
struct dequant_args {
    const float *a_scale;
    const float *b_scale;
    const void *bias; // (N) of the output dtype, or NULL
    int a_step, b_step;
};

static __device__ __forceinline__ void epilogue_store(int32_t *C, size_t i, int m, int n,
                                                      int acc, const dequant_args &e) {
    (void)m;
    (void)n;
    (void)e;
    C[i] = acc;
}

template <typename T>
static __device__ __forceinline__ void epilogue_store(T *out, size_t i, int m, int n, int acc,
                                                      const dequant_args &e) {
    float v = __fmul_rn(__fmul_rn(__int2float_rn(acc), e.a_scale[(size_t)m * e.a_step]),
                        e.b_scale[(size_t)n * e.b_step]);
    if (e.bias) v = __fadd_rn(v, qt_ld((const T *)e.bias + n));
    qt_st(out + i, v);
}

// ---- mma kernel ---------------------------------------------------------------------------------

// 4 bytes p[k .. k+3] packed low byte first, bytes at k + j >= K read as 0.
static __device__ __forceinline__ uint32_t pack4_s8(const int8_t *p, int k, int K) {
    uint32_t w = 0;
    QT_UNROLL
    for (int j = 0; j < 4; j++)
        if (k + j < K) w |= (uint32_t)(uint8_t)p[k + j] << (8 * j);
    return w;
}

// One 16-byte chunk of a tile into shared memory: row `row` of X (rows, K), bytes k .. k+15,
// zero outside X. ASYNC (K % 16 == 0, X 16-byte aligned: a chunk is wholly inside or outside
// in k): cp.async.cg with src-size 16 or 0 (a zero-filled chunk reads nothing; its source is
// X itself, a valid address). Otherwise byte loads and a 16-byte shared store, synchronous.
template <bool ASYNC>
static __device__ __forceinline__ void copy_chunk(char *dst, const int8_t *X, int rows, int K,
                                                  int row, int k) {
    const bool in = row < rows && k < K;
    const int8_t *p = X + (size_t)row * (size_t)K;
    if (ASYNC) {
        qt_cp_async_cg16(dst, in ? (const void *)(p + k) : (const void *)X, in ? 16 : 0);
        return;
    }
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (in) {
        v.x = pack4_s8(p, k, K);
        v.y = pack4_s8(p, k + 4, K);
        v.z = pack4_s8(p, k + 8, K);
        v.w = pack4_s8(p, k + 12, K);
    }
#if QT_CUDA_EMULATED
    memcpy(dst, &v, sizeof v);
#else
    *reinterpret_cast<uint4 *>(dst) = v; // 16-byte aligned: swizzle_off is a multiple of 16
#endif
}

// Two adjacent outputs out[i], out[i + 1] (i even, out + i 2-element aligned) in one store.
// The emulator traps on a misaligned pair, as the GPU faults on a misaligned vector store.
template <typename T> static __device__ __forceinline__ void check_pair(const T *p) {
#if QT_CUDA_EMULATED
    if ((uintptr_t)p % (2 * sizeof(T)) != 0) __trap();
#else
    (void)p;
#endif
}
static __device__ __forceinline__ void store_pair(int32_t *p, int v0, int v1) {
    check_pair(p);
    *reinterpret_cast<int2 *>(p) = make_int2(v0, v1);
}
static __device__ __forceinline__ void store_pair(float *p, float v0, float v1) {
    check_pair(p);
    *reinterpret_cast<float2 *>(p) = make_float2(v0, v1);
}
static __device__ __forceinline__ void store_pair(__half *p, float v0, float v1) {
    check_pair(p);
    *reinterpret_cast<__half2 *>(p) = __halves2half2(__float2half_rn(v0), __float2half_rn(v1));
}
static __device__ __forceinline__ void store_pair(__nv_bfloat16 *p, float v0, float v1) {
    check_pair(p);
    *reinterpret_cast<__nv_bfloat162 *>(p) =
        __halves2bfloat162(__float2bfloat16_rn(v0), __float2bfloat16_rn(v1));
}

// Columns n, n+1 of row m from accumulators v0, v1: int32 as is, or dequantized as
// epilogue_store does (the same operations in the same order, so the same bits). pair: both
// columns exist and the pair store is aligned; else the columns < N are stored one by one.
static __device__ __forceinline__ void epilogue_pair(int32_t *out, int m, int n, int N, int v0,
                                                     int v1, bool pair, const dequant_args &e) {
    (void)e;
    int32_t *p = out + (size_t)m * (size_t)N + n;
    if (pair) {
        store_pair(p, v0, v1);
    } else {
        if (n < N) p[0] = v0;
        if (n + 1 < N) p[1] = v1;
    }
}

template <typename T>
static __device__ __forceinline__ void epilogue_pair(T *out, int m, int n, int N, int v0, int v1,
                                                     bool pair, const dequant_args &e) {
    const float sa = e.a_scale[(size_t)m * e.a_step];
    T *p = out + (size_t)m * (size_t)N + n;
    if (pair) {
        const float sb0 = e.b_scale[(size_t)n * e.b_step];
        const float sb1 = e.b_scale[(size_t)(n + 1) * e.b_step];
        float f0 = __fmul_rn(__fmul_rn(__int2float_rn(v0), sa), sb0);
        float f1 = __fmul_rn(__fmul_rn(__int2float_rn(v1), sa), sb1);
        if (e.bias) {
            f0 = __fadd_rn(f0, qt_ld((const T *)e.bias + n));
            f1 = __fadd_rn(f1, qt_ld((const T *)e.bias + n + 1));
        }
        store_pair(p, f0, f1);
        return;
    }
    if (n < N) epilogue_store(out, (size_t)m * (size_t)N + n, m, n, v0, e);
    if (n + 1 < N) epilogue_store(out, (size_t)m * (size_t)N + n + 1, m, n + 1, v1, e);
}

// out (M, N) = epilogue(A (M, K) B (N, K)^T), T = int32_t (raw C) or float/__half/
// __nv_bfloat16 (dequantized).
// Grid: tiles_m * tiles_n blocks in x, rastered in groups of GROUP_M tile-rows: block b is
// tile (tm, tn) with group = b / (GROUP_M tiles_n), tm = group GROUP_M + (b' % rows_in_group),
// tn = b' / rows_in_group (b' = b % (GROUP_M tiles_n)), so the blocks running together share
// A rows and B columns in L2. Block: 128 threads = 4 warps; warp w owns rows 64 (w >> 1) ..
// +63 and columns 64 (w & 1) .. +63 of the block's 128x128 tile.
// Shared memory (dynamic, SMEM_BYTES): STAGES stages of [A tile (128 x 64 bytes), B tile
// (128 x 64 bytes)], each SWIZZLEd. Copies: thread i moves 16-byte chunks i + 128 j (j < 4) of
// each tile: row (i >> 2) + 32 j, chunk column i & 3.
// Pipeline (k tile kt = bytes 64 kt .. of K, KT tiles): the prologue issues tiles 0..STAGES-2,
// one commit group each; iteration kt waits until tile kt's group has landed (at most
// STAGES - 2 newer groups pending), __syncthreads (every thread's copies of tile kt are
// visible, and every warp is done reading stage (kt - 1) % STAGES), issues tile kt + STAGES - 1
// into that freed stage (an empty group past the end), then computes stage kt % STAGES.
// vec_out: N even and out 2-element aligned, so column pairs (2t, 2t+1) store as one.
template <typename T, bool ASYNC>
static __global__ void __launch_bounds__(MMA_THREADS, 2)
    int8_gemm_mma_tile(T *out, const int8_t *A, const int8_t *B, int M, int N, int K,
                       int tiles_m, int tiles_n, int vec_out, dequant_args e) {
    QT_DYNAMIC_SHARED(char, smem);
    const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;

    // block raster (see above)
    const int per_group = GROUP_M * tiles_n, bid = (int)blockIdx.x;
    const int first_m = (bid / per_group) * GROUP_M;
    const int rows_in_group = min(tiles_m - first_m, GROUP_M);
    const int tm = first_m + (bid % per_group) % rows_in_group;
    const int tn = (bid % per_group) / rows_in_group;
    const int m0 = tm * TILE_M, n0 = tn * TILE_N;
    const int wm = (warp >> 1) * WARP_M, wn = (warp & 1) * WARP_N;

    int acc[4][8][4];
    QT_UNROLL
    for (int mi = 0; mi < 4; mi++)
        QT_UNROLL
        for (int ni = 0; ni < 8; ni++)
            QT_UNROLL
            for (int r = 0; r < 4; r++) acc[mi][ni][r] = 0;

    // copies: chunk rows cr + 32 j, chunk column cc; shared offset st_off + 2048 j
    const int cr = tid >> 2, cc = tid & 3;
    const int st_off = swizzle_off(cr, cc);
    // ldmatrix row addresses of this lane, per k-step kk (chunk column 2 kk + ...):
    //   A: row wm + (lane & 7) + 8 ((lane >> 3) & 1) (+ 16 mi), chunk 2 kk + (lane >> 4)
    //   B: row wn + (lane & 7) + 8 (lane >> 4) (+ 16 p), chunk 2 kk + ((lane >> 3) & 1)
    const int ar = wm + (lane & 7) + 8 * ((lane >> 3) & 1), ac = lane >> 4;
    const int br = wn + (lane & 7) + 8 * (lane >> 4), bc = (lane >> 3) & 1;
    const int a_off0 = swizzle_off(ar, ac), a_off1 = swizzle_off(ar, 2 + ac);
    const int b_off0 = STAGE_A_BYTES + swizzle_off(br, bc);
    const int b_off1 = STAGE_A_BYTES + swizzle_off(br, 2 + bc);

    const int KT = (K + TILE_K - 1) / TILE_K;
    // Issues the copies of k tile `kt` into stage `s`.
    auto load_stage = [&](int s, int kt) {
        char *sa = smem + s * STAGE_BYTES + st_off;
        char *sb = sa + STAGE_A_BYTES;
        const int k = kt * TILE_K + cc * 16;
        QT_UNROLL
        for (int j = 0; j < 4; j++) {
            copy_chunk<ASYNC>(sa + 2048 * j, A, M, K, m0 + cr + 32 * j, k);
            copy_chunk<ASYNC>(sb + 2048 * j, B, N, K, n0 + cr + 32 * j, k);
        }
    };

    QT_UNROLL
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < KT) load_stage(s, s);
        qt_cp_async_commit();
    }

    for (int kt = 0; kt < KT; kt++) {
#if QT_INT8_GEMM_MUTATION == 2
        qt_cp_async_wait<STAGES - 1>(); // mutation: one group too few
#else
        qt_cp_async_wait<STAGES - 2>(); // tile kt has landed (this thread's copies)
#endif
        __syncthreads(); // ... everyone's; and stage (kt - 1) % STAGES is free
        const int next = kt + STAGES - 1;
        if (next < KT) load_stage(next % STAGES, next);
        qt_cp_async_commit();

        const char *st = smem + (kt % STAGES) * STAGE_BYTES;
        QT_UNROLL
        for (int kk = 0; kk < TILE_K / 32; kk++) {
            uint32_t af[4][4], bf[8][2];
            const char *pa = st + (kk ? a_off1 : a_off0);
            const char *pb = st + (kk ? b_off1 : b_off0);
            QT_UNROLL
            for (int mi = 0; mi < 4; mi++) {
                qt_ldmatrix_x4(af[mi], pa + 1024 * mi);
#if QT_INT8_GEMM_MUTATION == 1
                const uint32_t swap = af[mi][1]; // mutation: a[1] <-> a[2]
                af[mi][1] = af[mi][2];
                af[mi][2] = swap;
#endif
            }
            QT_UNROLL
            for (int p = 0; p < 4; p++) {
                uint32_t d[4];
                qt_ldmatrix_x4(d, pb + 1024 * p);
                bf[2 * p][0] = d[0];
                bf[2 * p][1] = d[1];
                bf[2 * p + 1][0] = d[2];
                bf[2 * p + 1][1] = d[3];
            }
            QT_UNROLL
            for (int mi = 0; mi < 4; mi++)
                QT_UNROLL
                for (int ni = 0; ni < 8; ni++) mma_s8_m16n8k32(acc[mi][ni], af[mi], bf[ni]);
        }
    }
    qt_cp_async_wait<0>(); // only empty groups remain; none in flight at exit

    // d[r]: row g + 8 (r >> 1), column 2t + (r & 1) of fragment (mi, ni)
    QT_UNROLL
    for (int mi = 0; mi < 4; mi++)
        QT_UNROLL
        for (int h = 0; h < 2; h++) {
            const int m = m0 + wm + mi * 16 + g + 8 * h;
            if (m >= M) continue;
            QT_UNROLL
            for (int ni = 0; ni < 8; ni++) {
                const int n = n0 + wn + ni * 8 + 2 * t;
                if (n >= N) continue;
                epilogue_pair(out, m, n, N, acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1],
                              vec_out && n + 1 < N, e);
            }
        }
}

// ---- elementwise kernels of the cuBLASLt path -------------------------------------------------

// dst (rows_p, K_p) = src (rows, K) zero-padded; one thread per destination byte, grid-stride.
static __global__ void __launch_bounds__(ELEM_THREADS)
    int8_pad_elem(int8_t *dst, const int8_t *src, int rows, int K, int rows_p, int K_p) {
    const size_t n = (size_t)rows_p * (size_t)K_p;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / (size_t)K_p), k = (int)(i % (size_t)K_p);
        dst[i] = (r < rows && k < K) ? src[(size_t)r * (size_t)K + k] : (int8_t)0;
    }
}

// out (M, N) = epilogue(C (M, ldc) int32); one thread per output, grid-stride. T = int32_t
// copies (the unpadding of qt_cuda_gemm_s8s32).
template <typename T>
static __global__ void __launch_bounds__(ELEM_THREADS)
    int8_dequant_elem(T *out, const int32_t *C, int ldc, int M, int N, dequant_args e) {
    const size_t n_out = (size_t)M * (size_t)N;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_out;
         i += (size_t)gridDim.x * blockDim.x) {
        const int m = (int)(i / (size_t)N), n = (int)(i % (size_t)N);
        epilogue_store(out, i, m, n, C[(size_t)m * (size_t)ldc + n], e);
    }
}

static unsigned elem_blocks(size_t n) { return qt_grid_blocks(n, ELEM_THREADS, ELEM_MAX_BLOCKS); }

// ---- launchers: common checks -----------------------------------------------------------------

extern "C" qt_cuda_int8_impl qt_cuda_int8_default_impl(void) {
    const char *v = getenv("QT_CUDA_INT8");
    if (!v || !*v || strcmp(v, "mma") == 0) return QT_CUDA_INT8_MMA;
    if (strcmp(v, "cublaslt") == 0) return QT_CUDA_INT8_CUBLASLT;
    return QT_CUDA_INT8_INVALID;
}

extern "C" const char *qt_cuda_int8_impl_name(qt_cuda_int8_impl impl) {
    switch (impl) {
    case QT_CUDA_INT8_MMA: return "mma";
    case QT_CUDA_INT8_CUBLASLT: return "cublaslt";
    case QT_CUDA_INT8_DEFAULT: return "default";
    default: return "invalid";
    }
}

static qt_status resolve_impl(const char *op, qt_cuda_int8_impl *impl) {
    if (*impl == QT_CUDA_INT8_DEFAULT) {
        *impl = qt_cuda_int8_default_impl();
        if (*impl == QT_CUDA_INT8_INVALID)
            return qt_error(QT_ERR_ARG, "%s: QT_CUDA_INT8=%s is not an INT8 GEMM; use "
                            "QT_CUDA_INT8=mma or QT_CUDA_INT8=cublaslt", op,
                            getenv("QT_CUDA_INT8"));
    }
    if (*impl != QT_CUDA_INT8_MMA && *impl != QT_CUDA_INT8_CUBLASLT)
        return qt_error(QT_ERR_ARG, "%s: impl %d is not QT_CUDA_INT8_MMA, _CUBLASLT or _DEFAULT",
                        op, (int)*impl);
    return QT_OK;
}

// Tiles of the mma kernel's grid (one block each, in gridDim.x).
static long long mma_tiles(int M, int N) {
    return (long long)((M + TILE_M - 1) / TILE_M) * (long long)((N + TILE_N - 1) / TILE_N);
}

static qt_status check_shape(const char *op, int M, int N, int K) {
    if (M < 1 || N < 1 || K < 1)
        return qt_error(QT_ERR_ARG, "%s: M %d, N %d, K %d must all be >= 1", op, M, N, K);
    if (K > QT_INT8_GEMM_MAX_K)
        return qt_error(QT_ERR_ARG, "%s: K %d exceeds %d, beyond which int32 sums could "
                        "overflow; split K", op, K, QT_INT8_GEMM_MAX_K);
    if (mma_tiles(M, N) > 2147483647ll)
        return qt_error(QT_ERR_ARG, "%s: M %d x N %d makes %lld tiles of %dx%d, over the grid's "
                        "2^31 - 1 blocks; split the rows", op, M, N, mma_tiles(M, N), TILE_M,
                        TILE_N);
    return QT_OK;
}

// The mma kernel for (T, ASYNC), its shared memory opted in above 48 KiB.
template <typename T, bool ASYNC>
static qt_status launch_mma_kernel(cudaStream_t s, T *out, const int8_t *A, const int8_t *B,
                                   int M, int N, int K, int vec_out, const dequant_args &e) {
    QT_CHECK_CUDA(cudaFuncSetAttribute(int8_gemm_mma_tile<T, ASYNC>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
    const int tiles_m = (M + TILE_M - 1) / TILE_M, tiles_n = (N + TILE_N - 1) / TILE_N;
    QT_LAUNCH(int8_gemm_mma_tile<T, ASYNC>, (unsigned)mma_tiles(M, N), MMA_THREADS,
              SMEM_BYTES, s, out, A, B, M, N, K, tiles_m, tiles_n, vec_out, e);
    QT_CHECK_LAUNCH("int8_gemm_mma_tile");
    return QT_OK;
}

// ASYNC (cp.async) when every 16-byte chunk of A and B is 16-byte aligned; vec_out when column
// pairs of out are aligned.
template <typename T>
static qt_status launch_mma(cudaStream_t s, T *out, const int8_t *A, const int8_t *B, int M,
                            int N, int K, const dequant_args &e) {
    const int async = K % 16 == 0 && ((uintptr_t)A % 16) == 0 && ((uintptr_t)B % 16) == 0;
    const int vec_out = N % 2 == 0 && ((uintptr_t)out % (2 * sizeof(T))) == 0;
    if (async) return launch_mma_kernel<T, true>(s, out, A, B, M, N, K, vec_out, e);
    return launch_mma_kernel<T, false>(s, out, A, B, M, N, K, vec_out, e);
}

template <typename T>
static qt_status launch_dequant(cudaStream_t s, T *out, const int32_t *C, int ldc, int M, int N,
                                const dequant_args &e) {
    QT_LAUNCH(int8_dequant_elem<T>, elem_blocks((size_t)M * (size_t)N), ELEM_THREADS, 0, s, out,
              C, ldc, M, N, e);
    QT_CHECK_LAUNCH("int8_dequant_elem");
    return QT_OK;
}

// The epilogue for output dtype dt: out typed as dt's storage type (qt_dtype_dispatch).
static qt_status launch_mma_dt(cudaStream_t s, int dt, void *out, const int8_t *A,
                               const int8_t *B, int M, int N, int K, const dequant_args &e) {
    return qt_dtype_dispatch((qt_dtype)dt, [&](auto t) {
        return launch_mma(s, (typename decltype(t)::type *)out, A, B, M, N, K, e);
    });
}

static qt_status launch_dequant_dt(cudaStream_t s, int dt, void *out, const int32_t *C, int ldc,
                                   int M, int N, const dequant_args &e) {
    return qt_dtype_dispatch((qt_dtype)dt, [&](auto t) {
        return launch_dequant(s, (typename decltype(t)::type *)out, C, ldc, M, N, e);
    });
}

// ---- the cuBLASLt path ------------------------------------------------------------------------
// One process-wide state behind a mutex: the handle, the device workspace (cuBLASLt's own
// scratch, then the padded operands and the int32 result), the stream that last used it, and
// the algorithms chosen per shape.

#define LT_SCRATCH_BYTES ((size_t)(QT_CUDA_EMULATED ? 0 : 4 << 20)) // cuBLASLt's workspace
#define LT_CACHE 16

typedef struct {
    int m, n, k, ldc;           // column-major problem: m = N4, n = M, k = K4
    uint32_t align_a, align_b, align_c; // bytes
} lt_key;

typedef struct {
    pthread_mutex_t mu;
    void *ws; // device: LT_SCRATCH_BYTES, then padded A, padded B, int32 C
    size_t ws_bytes;
    cudaStream_t owner; // the stream of the last call (valid when has_owner)
    int has_owner;
#if !QT_CUDA_EMULATED
    cublasLtHandle_t lt;
    lt_key keys[LT_CACHE];
    cublasLtMatmulAlgo_t algos[LT_CACHE];
    int n_cached, next_evict;
#endif
} lt_state;

static lt_state g_lt = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0
#if !QT_CUDA_EMULATED
                        , NULL, {}, {}, 0, 0
#endif
};

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

// Makes the workspace at least `bytes` (caller holds the mutex) and waits for its previous
// stream when `s` differs.
static qt_status lt_acquire(cudaStream_t s, size_t bytes) {
    if (g_lt.has_owner && g_lt.owner != s) QT_CHECK_CUDA(cudaStreamSynchronize(g_lt.owner));
    if (g_lt.ws_bytes < bytes) {
        if (g_lt.ws) {
            if (g_lt.has_owner) QT_CHECK_CUDA(cudaStreamSynchronize(g_lt.owner));
            QT_CHECK_CUDA(cudaFree(g_lt.ws));
            g_lt.ws = NULL;
            g_lt.ws_bytes = 0;
        }
        cudaError_t err = cudaMalloc(&g_lt.ws, bytes);
        if (err != cudaSuccess) {
            g_lt.ws = NULL;
            return qt_error(err == cudaErrorMemoryAllocation ? QT_ERR_OOM : QT_ERR_CUDA,
                            "qt_cuda int8 cuBLASLt: cudaMalloc(%zu bytes of workspace) failed at "
                            "%s:%d: %s; use QT_CUDA_INT8=mma, which needs none", bytes, __FILE__,
                            __LINE__, cudaGetErrorString(err));
        }
        g_lt.ws_bytes = bytes;
    }
#if !QT_CUDA_EMULATED
    if (!g_lt.lt) {
        cublasStatus_t r = cublasLtCreate(&g_lt.lt);
        if (r != CUBLAS_STATUS_SUCCESS) {
            g_lt.lt = NULL;
            return qt_error(QT_ERR_CUDA, "cublasLtCreate failed at %s:%d: %s", __FILE__,
                            __LINE__, cublasLtGetStatusString(r));
        }
    }
#endif
    g_lt.owner = s;
    g_lt.has_owner = 1;
    return QT_OK;
}

#if QT_CUDA_EMULATED
// The emulated stand-in for the cublasLtMatmul call below, with cuBLASLt's column-major
// semantics for transa = T, transb = N on the same arguments:
//   c[i + j ldc] = sum_p a[p + i lda] * b[p + j ldb],  i < m, j < n, p < k.
// Device memory is host memory here, and every emulated launch before it has completed.
static qt_status lt_matmul_s8(cudaStream_t s, int m, int n, int k, const int8_t *a, int lda,
                              const int8_t *b, int ldb, int32_t *c, int ldc) {
    (void)s;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            const int8_t *ai = a + (size_t)i * (size_t)lda, *bj = b + (size_t)j * (size_t)ldb;
            int32_t acc = 0;
            for (int p = 0; p < k; p++) acc += (int32_t)ai[p] * (int32_t)bj[p];
            c[(size_t)i + (size_t)j * (size_t)ldc] = acc;
        }
    return QT_OK;
}
#else

static uint32_t align_of(uintptr_t p) {
    uint32_t a = 256;
    while (a > 1 && (p & (a - 1))) a >>= 1;
    return a;
}

// Column-major C (m, n; ldc) = a^T b with a stored (k, m; lda) and b stored (k, n; ldb), int8
// in, int32 out: cuBLASLt's "TN" int8 GEMM. Caller holds the mutex (algorithm cache).
static qt_status lt_matmul_s8(cudaStream_t s, int m, int n, int k, const int8_t *a, int lda,
                              const int8_t *b, int ldb, int32_t *c, int ldc) {
    qt_status st = QT_OK;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
    const int32_t alpha = 1, beta = 0;
    lt_key key;
    memset(&key, 0, sizeof key);
    key.m = m;
    key.n = n;
    key.k = k;
    key.ldc = ldc;
    key.align_a = align_of((uintptr_t)a | (uintptr_t)lda);
    key.align_b = align_of((uintptr_t)b | (uintptr_t)ldb);
    key.align_c = align_of((uintptr_t)c | (uintptr_t)ldc * 4u);
    int slot = -1;
    QT_CHECK_CUBLASLT(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32I, CUDA_R_32I));
    QT_CHECK_CUBLASLT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof op_t));
    QT_CHECK_CUBLASLT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof op_n));
    QT_CHECK_CUBLASLT(cublasLtMatrixLayoutCreate(&la, CUDA_R_8I, (uint64_t)k, (uint64_t)m, lda));
    QT_CHECK_CUBLASLT(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8I, (uint64_t)k, (uint64_t)n, ldb));
    QT_CHECK_CUBLASLT(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32I, (uint64_t)m, (uint64_t)n, ldc));
    for (int i = 0; i < g_lt.n_cached; i++)
        if (memcmp(&g_lt.keys[i], &key, sizeof key) == 0) slot = i;
    if (slot < 0) {
        cublasLtMatmulHeuristicResult_t result;
        int found = 0;
        uint64_t ws = LT_SCRATCH_BYTES;
        QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceCreate(&pref));
        QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
        QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.align_a, sizeof key.align_a));
        QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.align_b, sizeof key.align_b));
        QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.align_c, sizeof key.align_c));
        QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.align_c, sizeof key.align_c));
        QT_CHECK_CUBLASLT(cublasLtMatmulAlgoGetHeuristic(g_lt.lt, op, la, lb, lc, lc, pref, 1, &result,
                                                &found));
        if (found < 1) {
            st = qt_error(QT_ERR_CUDA, "qt_cuda int8 cuBLASLt: no int8 algorithm for m %d n %d "
                          "k %d (column-major TN, ldc %d); use QT_CUDA_INT8=mma", m, n, k, ldc);
            goto out;
        }
        if (g_lt.n_cached < LT_CACHE) {
            slot = g_lt.n_cached++;
        } else {
            slot = g_lt.next_evict;
            g_lt.next_evict = (g_lt.next_evict + 1) % LT_CACHE;
        }
        g_lt.keys[slot] = key;
        g_lt.algos[slot] = result.algo;
    }
    QT_CHECK_CUBLASLT(cublasLtMatmul(g_lt.lt, op, &alpha, a, la, b, lb, &beta, c, lc, c, lc,
                            &g_lt.algos[slot], g_lt.ws, LT_SCRATCH_BYTES, s));
out:
    if (pref) (void)cublasLtMatmulPreferenceDestroy(pref);
    if (lc) (void)cublasLtMatrixLayoutDestroy(lc);
    if (lb) (void)cublasLtMatrixLayoutDestroy(lb);
    if (la) (void)cublasLtMatrixLayoutDestroy(la);
    if (op) (void)cublasLtMatmulDescDestroy(op);
    return st;
}
#endif

static qt_status launch_pad(cudaStream_t s, int8_t *dst, const int8_t *src, int rows, int K,
                            int rows_p, int K_p) {
    QT_LAUNCH(int8_pad_elem, elem_blocks((size_t)rows_p * (size_t)K_p), ELEM_THREADS, 0, s, dst,
              src, rows, K, rows_p, K_p);
    QT_CHECK_LAUNCH("int8_pad_elem");
    return QT_OK;
}

// The cuBLASLt GEMM with either C written directly (C != NULL, raw int32) or the dequantizing
// epilogue into out of dtype dt. Row-major C (M, N) = A B^T is column-major C^T (N, M) =
// B_cm^T A_cm, where B's storage read column-major is B_cm (K, N) and A's is A_cm (K, M): so
// cuBLASLt's a = B (transa T, lda K), b = A (transb N, ldb K), c = C (ldc N), m = N, n = M.
// Its int8 kernels want m, k and the leading dimensions to be multiples of 4 and 16-byte
// aligned operands: A and B are copied zero-padded to K4 = K rounded up to 4 (and B to N4 rows)
// when they are not, and C goes through the workspace with ldc = N4.
static qt_status lt_run(cudaStream_t s, int32_t *C, int dt, void *out, const int8_t *A,
                        const int8_t *B, int M, int N, int K, const dequant_args *e) {
    const int K4 = (int)round_up((size_t)K, 4), N4 = (int)round_up((size_t)N, 4);
    const int pad_a = K4 != K || ((uintptr_t)A % 16) != 0;
    const int pad_b = K4 != K || N4 != N || ((uintptr_t)B % 16) != 0;
    const int c_ws = !C || N4 != N || ((uintptr_t)C % 16) != 0;
    size_t off_a = LT_SCRATCH_BYTES;
    size_t off_b = off_a + (pad_a ? round_up((size_t)M * (size_t)K4, 256) : 0);
    size_t off_c = off_b + (pad_b ? round_up((size_t)N4 * (size_t)K4, 256) : 0);
    size_t total = off_c + (c_ws ? (size_t)M * (size_t)N4 * sizeof(int32_t) : 0);
    if (total == 0) total = 256;
    qt_status st = QT_OK;
    pthread_mutex_lock(&g_lt.mu);
    st = lt_acquire(s, total);
    if (st == QT_OK) {
        char *ws = (char *)g_lt.ws;
        const int8_t *a = pad_a ? (const int8_t *)(ws + off_a) : A;
        const int8_t *b = pad_b ? (const int8_t *)(ws + off_b) : B;
        int32_t *c = c_ws ? (int32_t *)(ws + off_c) : C;
        const int ldc = c_ws ? N4 : N;
        if (pad_a) st = launch_pad(s, (int8_t *)(ws + off_a), A, M, K, M, K4);
        if (st == QT_OK && pad_b) st = launch_pad(s, (int8_t *)(ws + off_b), B, N, K, N4, K4);
        if (st == QT_OK)
            st = lt_matmul_s8(s, pad_b ? N4 : N, M, pad_a || pad_b ? K4 : K, b,
                              pad_b ? K4 : K, a, pad_a ? K4 : K, c, ldc);
        if (st == QT_OK && C && c_ws) st = launch_dequant(s, C, c, ldc, M, N, dequant_args());
        if (st == QT_OK && !C) st = launch_dequant_dt(s, dt, out, c, ldc, M, N, *e);
    }
    pthread_mutex_unlock(&g_lt.mu);
    return st;
}

// ---- public launchers -----------------------------------------------------------------------

extern "C" qt_status qt_cuda_gemm_s8s32(qt_cuda_stream stream, int32_t *C, const int8_t *A,
                                        const int8_t *B, int M, int N, int K,
                                        qt_cuda_int8_impl impl) {
    static const char op[] = "qt_cuda_gemm_s8s32";
    QT_TRY(resolve_impl(op, &impl));
    QT_TRY(check_shape(op, M, N, K));
    QT_TRY(
        qt_check_tensors(op, qt_arg("C (M, N)", C), qt_arg("A (M, K)", A), qt_arg("B (N, K)", B)));
    cudaStream_t s = (cudaStream_t)stream;
    if (impl == QT_CUDA_INT8_MMA) return launch_mma(s, C, A, B, M, N, K, dequant_args());
    return lt_run(s, C, 0, NULL, A, B, M, N, K, NULL);
}

extern "C" qt_status qt_cuda_linear_s8_ex(qt_cuda_stream stream, qt_dtype dt, void *out,
                                          const int8_t *A, const float *a_scale, int a_per_row,
                                          const int8_t *B, const float *b_scale, int b_per_row,
                                          const void *bias, int M, int N, int K,
                                          qt_cuda_int8_impl impl) {
    static const char op[] = "qt_cuda_linear_s8";
    QT_TRY(resolve_impl(op, &impl));
    QT_TRY(check_shape(op, M, N, K));
    QT_TRY(qt_check_dtype(op, dt));
    QT_TRY(qt_check_tensors(op, qt_arg("out (M, N)", out, dt), qt_arg("A (M, K)", A),
                            qt_arg("a_scale (M or 1)", a_scale), qt_arg("B (N, K)", B),
                            qt_arg("b_scale (N or 1)", b_scale),
                            qt_arg("bias (N)", bias, dt, QT_ARG_OPTIONAL)));
    dequant_args e;
    e.a_scale = a_scale;
    e.b_scale = b_scale;
    e.bias = bias;
    e.a_step = a_per_row ? 1 : 0;
    e.b_step = b_per_row ? 1 : 0;
    cudaStream_t s = (cudaStream_t)stream;
    if (impl == QT_CUDA_INT8_MMA) return launch_mma_dt(s, dt, out, A, B, M, N, K, e);
    return lt_run(s, NULL, dt, out, A, B, M, N, K, &e);
}

extern "C" qt_status qt_cuda_linear_s8(qt_cuda_stream stream, qt_dtype dt, void *out,
                                       const int8_t *A, const float *a_scale, const int8_t *B,
                                       const float *b_scale, const void *bias, int M, int N,
                                       int K, qt_cuda_int8_impl impl) {
    return qt_cuda_linear_s8_ex(stream, dt, out, A, a_scale, 1, B, b_scale, 1, bias, M, N, K,
                                impl);
}

extern "C" void qt_cuda_int8_release(void) {
    pthread_mutex_lock(&g_lt.mu);
    // Teardown cannot report: each release is attempted whatever the others return.
    if (g_lt.has_owner) (void)cudaStreamSynchronize(g_lt.owner);
    if (g_lt.ws) (void)cudaFree(g_lt.ws);
    g_lt.ws = NULL;
    g_lt.ws_bytes = 0;
    g_lt.has_owner = 0;
#if !QT_CUDA_EMULATED
    if (g_lt.lt) (void)cublasLtDestroy(g_lt.lt);
    g_lt.lt = NULL;
    g_lt.n_cached = 0;
    g_lt.next_evict = 0;
#endif
    pthread_mutex_unlock(&g_lt.mu);
}

// ---- int8 transpose (s8dx part): the weight codes (OC, IC) -> (IC, OC) for SwitchBack's dX,
// which runs the TN GEMM with B = Qw(w)^T (host/backends/backend_cuda.c, cuda_linear_s8_dx).

#define TR_TILE 32 // a TR_TILE x TR_TILE tile of `in` per block iteration
#define TR_ROWS 8  // threadIdx.y extent: each thread moves TR_TILE / TR_ROWS = 4 bytes each way
#define TR_MAX_BLOCKS 65535

// out (cols, rows) = in (rows, cols)^T. Block (TR_TILE, TR_ROWS) threads; blocks stride over
// the tiles (tile t: rows r0 = (t / tiles_c) * 32 .., columns c0 = (t % tiles_c) * 32 ..).
// Load: thread (x, y) reads in[r0 + y + j][c0 + x] (consecutive bytes along a warp) into
// tile[y + j][x]; store: it writes out[c0 + y + j][r0 + x] = tile[x][y + j] (consecutive along
// the warp again). The row pitch of 33 bytes puts the 32 bytes of a tile column read by a
// warp into distinct 4-byte words spread over the banks. Edge tiles are guarded on both sides.
// Every thread of a block runs the same tile iterations, so the __syncthreads are uniform.
static __global__ void __launch_bounds__(TR_TILE * TR_ROWS)
    int8_transpose_tile(int8_t *out, const int8_t *in, int rows, int cols, int tiles_c,
                        size_t n_tiles) {
    QT_SHARED(int8_t, tile, TR_TILE, TR_TILE + 1);
    const int x = (int)threadIdx.x, y = (int)threadIdx.y;
    for (size_t t = blockIdx.x; t < n_tiles; t += gridDim.x) {
        const int r0 = (int)(t / (size_t)tiles_c) * TR_TILE;
        const int c0 = (int)(t % (size_t)tiles_c) * TR_TILE;
        QT_UNROLL
        for (int j = 0; j < TR_TILE; j += TR_ROWS) {
            const int r = r0 + y + j, c = c0 + x;
            if (r < rows && c < cols) tile[y + j][x] = in[(size_t)r * (size_t)cols + c];
        }
        __syncthreads();
        QT_UNROLL
        for (int j = 0; j < TR_TILE; j += TR_ROWS) {
            const int c = c0 + y + j, r = r0 + x;
            if (c < cols && r < rows) out[(size_t)c * (size_t)rows + r] = tile[x][y + j];
        }
        __syncthreads(); // the tile is rewritten by the next iteration
    }
}

extern "C" qt_status qt_cuda_transpose_s8(qt_cuda_stream stream, int8_t *out, const int8_t *in, int rows,
                                          int cols) {
    static const char op[] = "qt_cuda_transpose_s8";
    if (rows < 0 || cols < 0)
        return qt_error(QT_ERR_ARG, "%s: rows %d, cols %d must be >= 0", op, rows, cols);
    if (rows == 0 || cols == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("out (cols, rows)", out), qt_arg("in (rows, cols)", in)));
    const int tiles_c = (int)QT_CEIL_DIV((size_t)cols, (size_t)TR_TILE);
    const size_t n_tiles = QT_CEIL_DIV((size_t)rows, (size_t)TR_TILE) * (size_t)tiles_c;
    const unsigned blocks = (unsigned)(n_tiles < TR_MAX_BLOCKS ? n_tiles : TR_MAX_BLOCKS);
    QT_LAUNCH(int8_transpose_tile, blocks, dim3(TR_TILE, TR_ROWS), 0, (cudaStream_t)stream, out,
              in, rows, cols, tiles_c, n_tiles);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}
// ---- end of the s8dx part

// ==== cost model (issue 10; base/cost.h) ======================================================
// mma: one kernel, int8_gemm_mma_tile: reads A (M K) and B (N K) int8, writes C (4 M N) or,
// for the linear, out (E M N) after reading the scales and bias; 2 M N K integer operations
// on the int8 tensor cores (the fused epilogue's 3 per output ride along). cuBLASLt: the
// zero-padding copies lt_run makes (int8_pad_elem: reads rows K, writes rows_p K4), the int8
// matmul on the padded shape (writes int32), then for the linear the dequantization
// (int8_dequant_elem: reads the int32 product, the scales and bias, writes out; 3 flops per
// output), or for a raw GEMM whose C needs the workspace, the int32 copy out of it. The first
// call on a new stream also waits for the previous one (lt_acquire): not counted.

static int int8_cost_impl(qt_cuda_int8_impl impl, int M, int N, int K) {
    if (impl == QT_CUDA_INT8_DEFAULT) impl = qt_cuda_int8_default_impl();
    if (impl != QT_CUDA_INT8_MMA && impl != QT_CUDA_INT8_CUBLASLT) return 0;
    if (M < 1 || N < 1 || K < 1 || K > QT_INT8_GEMM_MAX_K || mma_tiles(M, N) > 2147483647ll)
        return 0;
    return impl;
}

// lt_run's launches: C given (raw int32) or the linear's epilogue (E = out's dtype size,
// scales: bytes of both scale vectors, bias_bytes).
static void lt_run_cost(qt_cost *c, const int32_t *C, const int8_t *A, const int8_t *B, int M,
                        int N, int K, double E, double scales, double bias_bytes) {
    const int K4 = (int)round_up((size_t)K, 4), N4 = (int)round_up((size_t)N, 4);
    const int pad_a = K4 != K || ((uintptr_t)A % 16) != 0;
    const int pad_b = K4 != K || N4 != N || ((uintptr_t)B % 16) != 0;
    const int c_ws = !C || N4 != N || ((uintptr_t)C % 16) != 0;
    const double m = M, n = N, kk = pad_a || pad_b ? K4 : K, nb = pad_b ? N4 : N;
    if (pad_a) qt_cost_kernel(c, "int8_pad_elem", m * K + m * K4, 0);
    if (pad_b) qt_cost_kernel(c, "int8_pad_elem", n * K + (double)N4 * K4, 0);
    qt_cost_add(c, "cublasLtMatmul", QT_LAUNCH_GEMM, QT_MATH_INT8, m * kk + nb * kk + 4 * m * nb,
                2 * m * nb * kk, 1);
    if (C && c_ws) qt_cost_kernel(c, "int8_dequant_elem", 8 * m * n, 0);
    if (!C)
        qt_cost_kernel(c, "int8_dequant_elem", 4 * m * n + scales + bias_bytes + E * m * n,
                       3 * m * n);
}

extern "C" void qt_cuda_gemm_s8s32_cost(qt_cost *c, const int32_t *C, const int8_t *A,
                                        const int8_t *B, int M, int N, int K,
                                        qt_cuda_int8_impl impl) {
    const int im = int8_cost_impl(impl, M, N, K);
    if (!im || !C) return;
    const double m = M, n = N, k = K;
    if (im == QT_CUDA_INT8_MMA)
        qt_cost_add(c, "int8_gemm_mma_tile", QT_LAUNCH_KERNEL, QT_MATH_INT8,
                    m * k + n * k + 4 * m * n, 2 * m * n * k, 1);
    else
        lt_run_cost(c, C, A, B, M, N, K, 0, 0, 0);
}

extern "C" void qt_cuda_linear_s8_ex_cost(qt_cost *c, qt_dtype dt, const void *out, const int8_t *A,
                                          const float *a_scale, int a_per_row, const int8_t *B,
                                          const float *b_scale, int b_per_row, const void *bias,
                                          int M, int N, int K, qt_cuda_int8_impl impl) {
    (void)out, (void)a_scale, (void)b_scale;
    const int im = int8_cost_impl(impl, M, N, K);
    if (!im) return;
    const double m = M, n = N, k = K, E = (double)qt_dtype_size(dt);
    const double scales = 4.0 * ((a_per_row ? m : 1) + (b_per_row ? n : 1));
    const double bias_bytes = bias ? E * n : 0;
    if (im == QT_CUDA_INT8_MMA)
        qt_cost_add(c, "int8_gemm_mma_tile", QT_LAUNCH_KERNEL, QT_MATH_INT8,
                    m * k + n * k + scales + bias_bytes + E * m * n, 2 * m * n * k + 3 * m * n, 1);
    else
        lt_run_cost(c, NULL, A, B, M, N, K, E, scales, bias_bytes);
}

extern "C" void qt_cuda_linear_s8_cost(qt_cost *c, qt_dtype dt, const void *out, const int8_t *A,
                                       const float *a_scale, const int8_t *B, const float *b_scale,
                                       const void *bias, int M, int N, int K,
                                       qt_cuda_int8_impl impl) {
    qt_cuda_linear_s8_ex_cost(c, dt, out, A, a_scale, 1, B, b_scale, 1, bias, M, N, K, impl);
}

extern "C" void qt_cuda_transpose_s8_cost(qt_cost *c, const int8_t *out, const int8_t *in, int rows,
                                          int cols) {
    (void)out, (void)in;
    if (rows <= 0 || cols <= 0) return;
    qt_cost_kernel(c, "int8_transpose_tile", 2.0 * rows * cols, 0);
}

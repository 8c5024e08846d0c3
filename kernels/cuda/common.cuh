// kernels/cuda/common.cuh: the helpers every kernels/cuda/*.cu shares, each written once here.
// Include after qt_cuda_compat.h (it needs the CUDA or emulator definitions).
//
// Device side:
//   storage <-> fp32   qt_to_f32, qt_ld widen; qt_st rounds to nearest even (never a fused or
//                      truncating conversion, so results match the CPU's rounding); qt_add_st
//                      is *p += v rounded once. Kernels are templated over the storage type T
//                      (float, __half, __nv_bfloat16) of their `void *` tensors; math is fp32.
//   qt_vec<T, W>       W consecutive elements of T moved by 16-byte loads and stores (one
//                      qt_vec<T> is 16 bytes: 4 fp32 or 8 fp16/bf16), or one plain element
//                      when W = 1. Precondition for W > 1: the address is 16-byte aligned (the
//                      emulator traps otherwise, as the GPU faults).
//   qt_grid_chunks<W>  the grid-stride loop of the element-wise kernels, in W-element chunks
//                      with a one-element tail; qt_map_chunk, its chunk for out = f(in).
//   reductions         qt_op_sum, qt_op_max, qt_op_min (float, double, int); the warp
//                      butterfly qt_warp_allreduce (qt_warp_sum); the block reduction
//                      qt_block_allreduce; the shared-memory halving tree qt_block_tree. Each
//                      states its order: fixed shapes only, so a result is the same bits from
//                      run to run (no atomics). Column sums split over the rows:
//                      qt_colsum_splits, qt_colsum_slice, qt_colsum_finish (a last-block
//                      handoff through scratch; the order of the sum still fixed).
//   online softmax     qt_softmax_acc, qt_softmax_push, qt_op_softmax_merge: the running
//                      (max, sum of exp) pair of softmax_clip.cu and crossentropy.cu.
//   qt_exp_capped, qt_nan_f32, QT_WARP, QT_FULL_MASK, QT_UNROLL.
//   sm_80 PTX          qt_ldmatrix_x1/x2/x4 (and _trans): ldmatrix.m8n8 .b16 from shared
//                      memory; qt_cp_async_cg16 / qt_cp_async_ca: cp.async global -> shared
//                      with a zero-filled tail, qt_cp_async_commit, qt_cp_async_wait<N>. Inline
//                      PTX under nvcc; the emulator's twins (tests/cuemu/cuemu.h) otherwise.
//                      qt_mma_m16n8k16<T>: mma.sync m16n8k16 fp16/bf16 -> fp32.
// Launcher (host) side:
//   qt_check_dtype     QT_ERR_ARG naming the op unless dt is fp32, fp16 or bf16;
//   qt_check_tensors   QT_ERR_ARG naming the op and the tensor unless every required tensor
//                      is non-NULL and every tensor is aligned to its element size (qt_arg);
//   QT_DTYPE_DISPATCH  fn<T>(args...) for the storage type T of dt (qt_dtype_dispatch);
//   qt_check_elementwise  both, for an element-wise launcher;
//   qt_vec_aligned, qt_row_width, QT_ROW_CHUNKS, qt_grid_blocks, qt_ew_blocks, qt_check_grid,
//   qt_enum_int, QT_EW_THREADS, QT_EW_MAX_BLOCKS.
#ifndef QTRAIN_KERNELS_CUDA_COMMON_CUH
#define QTRAIN_KERNELS_CUDA_COMMON_CUH

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "base/dtype.h"
#include "base/status.h"

// ---- constants ------------------------------------------------------------------------------
#define QT_WARP 32
#define QT_FULL_MASK 0xffffffffu
// Element-wise kernels: 256 threads a block (8 warps: the usual occupancy-friendly size for a
// streaming kernel), grid-stride loops over at most QT_EW_MAX_BLOCKS blocks (enough to fill
// any current GPU many times over; a larger n loops).
#define QT_EW_THREADS 256
#define QT_EW_MAX_BLOCKS 8192u
// gridDim.x's limit: a launch needing more blocks is refused (qt_check_grid).
#define QT_MAX_GRID_X 2147483647ull
// The CPU's vexpf cap: exp of at most this stays finite (qt_exp_capped).
#define QT_EXP_ARG_MAX 88.3f

// Unrolls the next loop (a loop over a qt_vec's elements must be unrolled: indexing a register
// array with a run-time index would put it in local memory).
#if QT_CUDA_EMULATED
#define QT_UNROLL _Pragma("GCC unroll 16")
#else
#define QT_UNROLL _Pragma("unroll")
#endif

// ---- sm_80 PTX: ldmatrix and cp.async ----------------------------------------------------------
// Shared-memory operands are generic pointers into shared memory (dynamic or static).

// QT_PTX_HERE: in the emulator, the caller's file and line for the twins' reports (a
// defaulted trailing parameter pair); nothing under nvcc.
#if QT_CUDA_EMULATED
#define QT_PTX_HERE , QT_CUEMU_HERE
#define QT_PTX_HERE_FIRST QT_CUEMU_HERE
#define QT_PTX_AT , qt_file_, qt_line_
#else
#define QT_PTX_HERE
#define QT_PTX_HERE_FIRST void
#define QT_PTX_AT
#endif

#if !QT_CUDA_EMULATED
static __device__ __forceinline__ uint32_t qt_smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
#endif

// ldmatrix.sync.aligned.m8n8.x{1,2,4}.shared.b16: X 8x8 matrices of 16-bit elements (= 8 rows
// of 16 bytes). Lane 8i + r gives `row`, the 16-byte aligned address of row r of matrix i;
// lane l receives in d[i] the 4 bytes 4 (l % 4) .. +3 of row l / 4 of matrix i. _trans: the
// elements (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4), low half first. Warp-wide: all 32
// lanes call it together.
static __device__ __forceinline__ void qt_ldmatrix_x1(uint32_t (&d)[1], const void *row
                                                  QT_PTX_HERE) {
#if QT_CUDA_EMULATED
    cuemu::ldmatrix_b16<1>(d, row, false QT_PTX_AT);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
                 : "=r"(d[0])
                 : "r"(qt_smem_u32(row)));
#endif
}
static __device__ __forceinline__ void qt_ldmatrix_x2(uint32_t (&d)[2], const void *row
                                                  QT_PTX_HERE) {
#if QT_CUDA_EMULATED
    cuemu::ldmatrix_b16<2>(d, row, false QT_PTX_AT);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(d[0]), "=r"(d[1])
                 : "r"(qt_smem_u32(row)));
#endif
}
static __device__ __forceinline__ void qt_ldmatrix_x4(uint32_t (&d)[4], const void *row
                                                  QT_PTX_HERE) {
#if QT_CUDA_EMULATED
    cuemu::ldmatrix_b16<4>(d, row, false QT_PTX_AT);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(qt_smem_u32(row)));
#endif
}
static __device__ __forceinline__ void qt_ldmatrix_x1_trans(uint32_t (&d)[1], const void *row
                                                  QT_PTX_HERE) {
#if QT_CUDA_EMULATED
    cuemu::ldmatrix_b16<1>(d, row, true QT_PTX_AT);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(d[0])
                 : "r"(qt_smem_u32(row)));
#endif
}
static __device__ __forceinline__ void qt_ldmatrix_x2_trans(uint32_t (&d)[2], const void *row
                                                  QT_PTX_HERE) {
#if QT_CUDA_EMULATED
    cuemu::ldmatrix_b16<2>(d, row, true QT_PTX_AT);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(d[0]), "=r"(d[1])
                 : "r"(qt_smem_u32(row)));
#endif
}
static __device__ __forceinline__ void qt_ldmatrix_x4_trans(uint32_t (&d)[4], const void *row
                                                  QT_PTX_HERE) {
#if QT_CUDA_EMULATED
    cuemu::ldmatrix_b16<4>(d, row, true QT_PTX_AT);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(qt_smem_u32(row)));
#endif
}

// cp.async.cg.shared.global [dst], [src], 16, src_bytes: 16 bytes global -> shared, bypassing
// L1; bytes src_bytes .. 15 (src_bytes in 0..16) are zero-filled and not read. dst and src
// 16-byte aligned (src must be a valid address even when src_bytes is 0). Asynchronous: the
// data is there only after a qt_cp_async_wait covering the group it was committed in.
static __device__ __forceinline__ void qt_cp_async_cg16(void *dst, const void *src,
                                                        int src_bytes QT_PTX_HERE) {
#if QT_CUDA_EMULATED
    cuemu::cp_async(dst, src, 16, (unsigned)src_bytes, true QT_PTX_AT);
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(qt_smem_u32(dst)),
                 "l"(src), "r"(src_bytes)
                 : "memory");
#endif
}

// cp.async.ca.shared.global [dst], [src], BYTES, src_bytes: BYTES = 4, 8 or 16 through L1,
// zero-filled past src_bytes; both addresses BYTES-aligned.
template <int BYTES>
static __device__ __forceinline__ void qt_cp_async_ca(void *dst, const void *src,
                                                      int src_bytes QT_PTX_HERE) {
    static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async.ca copies 4, 8 or 16 bytes");
#if QT_CUDA_EMULATED
    cuemu::cp_async(dst, src, BYTES, (unsigned)src_bytes, false QT_PTX_AT);
#else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(qt_smem_u32(dst)),
                 "l"(src), "n"(BYTES), "r"(src_bytes)
                 : "memory");
#endif
}

// cp.async.commit_group: the thread's cp.async issued since the last commit form one group.
static __device__ __forceinline__ void qt_cp_async_commit(QT_PTX_HERE_FIRST) {
#if QT_CUDA_EMULATED
    cuemu::cp_async_commit_group(qt_file_, qt_line_);
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// cp.async.wait_group N: waits until at most the N most recently committed groups of this
// thread are pending. Other threads' copies need a __syncthreads after their own waits.
template <int N> static __device__ __forceinline__ void qt_cp_async_wait(QT_PTX_HERE_FIRST) {
#if QT_CUDA_EMULATED
    cuemu::cp_async_wait_group(N, qt_file_, qt_line_);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32: d (16x8 fp32) += A (16x16)
// B (16x8) on tensor cores, T = __half or __nv_bfloat16. Fragments (g = lane >> 2,
// t = lane % 4; two 16-bit elements per .b32 register, the lower k in the low half):
//   a[0] (row g, k 2t..2t+1)  a[1] (row g+8, k 2t..)  a[2] (row g, k 2t+8..)  a[3] (row g+8, k 2t+8..)
//   b[0] (k 2t..2t+1, column g)  b[1] (k 2t+8..2t+9, column g)
//   d[0] (g, 2t)  d[1] (g, 2t+1)  d[2] (g+8, 2t)  d[3] (g+8, 2t+1)
// Every lane of the warp calls it together. Twin: cuemu::mma_m16n8k16_f32 (tests/cuemu/cuemu.h).
template <typename T>
static __device__ __forceinline__ void qt_mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4],
                                                       const uint32_t (&b)[2] QT_PTX_HERE) {
    static_assert(std::is_same<T, __half>::value || std::is_same<T, __nv_bfloat16>::value,
                  "mma m16n8k16 takes fp16 or bf16 operands");
#if QT_CUDA_EMULATED
    cuemu::mma_m16n8k16_f32<std::is_same<T, __nv_bfloat16>::value>(d, a, b QT_PTX_AT);
#else
    if (std::is_same<T, __half>::value) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
#endif
}

// ---- storage <-> fp32 -----------------------------------------------------------------------
static __device__ __forceinline__ float qt_to_f32(float x) { return x; }
static __device__ __forceinline__ float qt_to_f32(__half x) { return __half2float(x); }
static __device__ __forceinline__ float qt_to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
static __device__ __forceinline__ float qt_ld(const T *p) {
    return qt_to_f32(*p);
}

static __device__ __forceinline__ void qt_st(float *p, float v) { *p = v; }
static __device__ __forceinline__ void qt_st(__half *p, float v) { *p = __float2half_rn(v); }
static __device__ __forceinline__ void qt_st(__nv_bfloat16 *p, float v) {
    *p = __float2bfloat16_rn(v);
}

// *p += v in fp32, rounded once to T.
template <typename T> static __device__ __forceinline__ void qt_add_st(T *p, float v) {
    qt_st(p, qt_ld(p) + v);
}

static __device__ __forceinline__ float qt_nan_f32() { return __int_as_float(0x7fc00000); }

// exp(min(a, QT_EXP_ARG_MAX)), NaN passing through (the compare is false for NaN).
static __device__ __forceinline__ float qt_exp_capped(float a) {
    return expf(a > QT_EXP_ARG_MAX ? QT_EXP_ARG_MAX : a);
}

// ---- 16-byte vectors ------------------------------------------------------------------------

// Copies one 16-byte word; both addresses 16-byte aligned. On the GPU one 128-bit load or
// store (ld/st.v4); the emulator checks the alignment (the GPU would fault) and copies bytes.
static __device__ __forceinline__ void qt_copy16(void *dst, const void *src) {
#if QT_CUDA_EMULATED
    if (((uintptr_t)dst | (uintptr_t)src) % 16 != 0) __trap();
    memcpy(dst, src, 16);
#else
    *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
#endif
}

// W consecutive elements of T in registers. W = 1: a plain element access, any T-aligned
// address. W > 1: W sizeof(T) is a multiple of 16 and load/store take a 16-byte aligned
// address (qt_vec_aligned on the host), moving the elements with W sizeof(T) / 16 128-bit
// accesses. get/set widen to and round from fp32 (qt_to_f32, qt_st). Index e, get and set only
// with constants or in QT_UNROLL loops, so the elements stay in registers.
template <typename T, int W = 16 / (int)sizeof(T)> struct qt_vec {
    static_assert(W == 1 || (W * sizeof(T)) % 16 == 0, "qt_vec: W elements must fill 16 bytes");
    static constexpr int width = W;
    T e[W];

    static __device__ __forceinline__ qt_vec load(const T *p) {
        qt_vec v;
        if constexpr (W == 1) {
            v.e[0] = *p;
        } else {
            QT_UNROLL
            for (int k = 0; k < (int)(W * sizeof(T) / 16); k++) {
                uint4 bits;
                qt_copy16(&bits, reinterpret_cast<const char *>(p) + 16 * k);
                memcpy(reinterpret_cast<char *>(v.e) + 16 * k, &bits, 16);
            }
        }
        return v;
    }
    __device__ __forceinline__ void store(T *p) const {
        if constexpr (W == 1) {
            *p = e[0];
        } else {
            QT_UNROLL
            for (int k = 0; k < (int)(W * sizeof(T) / 16); k++) {
                uint4 bits;
                memcpy(&bits, reinterpret_cast<const char *>(e) + 16 * k, 16);
                qt_copy16(reinterpret_cast<char *>(p) + 16 * k, &bits);
            }
        }
    }
    __device__ __forceinline__ float get(int k) const { return qt_to_f32(e[k]); }
    __device__ __forceinline__ void set(int k, float v) { qt_st(&e[k], v); }
};

// The element-wise grid-stride loop in chunks of W elements. Thread g of the grid's
// G = gridDim.x * blockDim.x threads calls op.template apply<W>(i) for the chunks starting at
// i = W g, W (g + G), ... with i + W <= n, then, when W > 1, op.template apply<1>(i) for the
// n % W tail elements i = n - n % W + g, ... < n. The loop bounds are the bounds guards; no
// shared memory, no barrier. W > 1 needs op's pointers 16-byte aligned (see qt_vec).
template <int W, typename Op>
static __device__ __forceinline__ void qt_grid_chunks(size_t n, const Op &op) {
    const size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const size_t body = n / W * W;
    for (size_t i = g * W; i < body; i += stride * W)
        op.template apply<W>(i);
    if constexpr (W > 1)
        for (size_t i = body + g; i < n; i += stride)
            op.template apply<1>(i);
}

// One chunk of the element-wise map out = f(in) for qt_grid_chunks, from storage type S to D:
// f is a functor with `__device__ float operator()(float) const`, applied to the fp32 value of
// each element and rounded once to D. The chunk is read whole before it is written, so out may
// alias in element for element (same element size).
template <typename D, typename S, typename F> struct qt_map_chunk {
    D *out;
    const S *in;
    F f;
    template <int W> __device__ __forceinline__ void apply(size_t i) const {
        const qt_vec<S, W> vi = qt_vec<S, W>::load(in + i);
        qt_vec<D, W> vo;
        QT_UNROLL
        for (int k = 0; k < W; k++)
            vo.set(k, f(vi.get(k)));
        vo.store(out + i);
    }
};

// ---- reductions -----------------------------------------------------------------------------
// Operators op(a, b), a the running value, b the one folded in. Sum: a + b (rounded as
// written, never reassociated). Max/min of float and double: fmaxf/fminf (a NaN operand
// yields the other one); of int: the larger/smaller.
struct qt_op_sum {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct qt_op_max {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
    __device__ __forceinline__ double operator()(double a, double b) const { return fmax(a, b); }
    __device__ __forceinline__ int operator()(int a, int b) const { return b > a ? b : a; }
};
struct qt_op_min {
    __device__ __forceinline__ float operator()(float a, float b) const { return fminf(a, b); }
    __device__ __forceinline__ double operator()(double a, double b) const { return fmin(a, b); }
    __device__ __forceinline__ int operator()(int a, int b) const { return b < a ? b : a; }
};

// v of lane l ^ off for every lane of a full warp (overloaded for pair types below).
template <typename T> static __device__ __forceinline__ T qt_shfl_xor(T v, int off) {
    return __shfl_xor_sync(QT_FULL_MASK, v, off);
}

// All 32 lanes of a full warp (every lane calls it) get op over the warp's values, by an xor
// butterfly: v = op(v, v of lane ^ off) for off = 16, 8, 4, 2, 1. A commutative op (sum, max,
// min, the softmax merge) gives every lane the same bits; the order is fixed. float, double,
// int, or any type with a qt_shfl_xor overload.
template <typename T, typename Op>
static __device__ __forceinline__ T qt_warp_allreduce(T v, Op op) {
    for (int off = QT_WARP / 2; off > 0; off >>= 1)
        v = op(v, qt_shfl_xor(v, off));
    return v;
}

template <typename T> static __device__ __forceinline__ T qt_warp_sum(T v) {
    return qt_warp_allreduce(v, qt_op_sum());
}

// op over one value per thread of a 1-D block of NTHREADS threads (a multiple of 32; every
// thread calls it from the same place). Order: each warp's butterfly (qt_warp_allreduce), lane
// 0 writing it to scratch[warp]; after a barrier every thread folds the warp results in warp
// order, op(...op(op(w0, w1), w2)..., w_last), so all threads return the same bits. scratch:
// NTHREADS / 32 values of shared memory; the call ends with a barrier, so it may be reused
// at once.
template <int NTHREADS, typename T, typename Op>
static __device__ __forceinline__ T qt_block_allreduce(T v, T *scratch, Op op) {
    static_assert(NTHREADS % QT_WARP == 0, "qt_block_allreduce: whole warps");
    v = qt_warp_allreduce(v, op);
    if (threadIdx.x % QT_WARP == 0) scratch[threadIdx.x / QT_WARP] = v;
    __syncthreads();
    T r = scratch[0];
    for (int w = 1; w < NTHREADS / QT_WARP; w++)
        r = op(r, scratch[w]);
    __syncthreads();
    return r;
}

// The fixed-shape halving tree over N lanes (a power of 2) whose values the caller wrote to
// shared memory: a barrier, then for s = N/2, N/4, ..., 1 each lane < s calls
// combine(lane, lane + s), folding lane + s's values into its own (dst = op(dst, src)), with
// a barrier after each level; lane 0 ends with the totals. `lane` is this thread's lane
// (threadIdx.x, or threadIdx.y for the rows of a column tile); every thread of the block
// calls it. The CPU twins of dqt and quant reproduce this order (base/dqt_math.h,
// base/quant_math.h).
template <int N, typename F>
static __device__ __forceinline__ void qt_block_tree(int lane, F combine) {
    static_assert(N > 0 && (N & (N - 1)) == 0, "qt_block_tree: N is a power of 2");
    __syncthreads();
    for (int s = N / 2; s > 0; s /= 2) {
        if (lane < s) combine(lane, lane + s);
        __syncthreads();
    }
}

// ---- column reductions split over the rows ---------------------------------------------------
// A column sum of an (N, C) matrix with one block per COLS columns launches ceil(C / COLS)
// blocks: 24 for C = 768 and COLS = 32, a quarter of an A100's SMs. The column-block kernels
// (bias_grad in elementwise.cu, LayerNorm's dw/db in layernorm.cu) therefore also split the
// rows into S slices (blockIdx.y; qt_colsum_splits picks S from N and C only, never from the
// device, so the bits do not depend on the GPU). Each block sums its slice into fp32 scratch
// (part, (K, S, C) for K outputs); the last block of a column group to finish (a counter per
// group, atomicInc wrapping back to 0 so it is ready for the next launch) adds the S partials
// of each column in slice order 0, 1, ..., S - 1 and writes the outputs: one launch, a fixed
// order, no second pass over the matrix. The partials cross blocks through atomic stores and
// loads (L2, about S C K of them) between __threadfence()s: the CUDA programming guide's
// last-block pattern, and accesses the emulator's TSan build sees as synchronized.

// Target block count: two per SM of an H100 (132 SMs; an A100 has 108).
#define QT_COLSUM_TARGET_BLOCKS 264
// Fewest rows a slice gets: below this a slice's launch share outweighs its work.
#define QT_COLSUM_MIN_ROWS 64
// Scratch: partial sums (fp32) and one counter per column group of a split launch.
#define QT_COLSUM_SCRATCH_PARTIALS ((size_t)1 << 20)
#define QT_COLSUM_SCRATCH_COUNTERS QT_COLSUM_TARGET_BLOCKS
#define QT_COLSUM_SCRATCH_BYTES                                                                    \
    (QT_COLSUM_SCRATCH_PARTIALS * sizeof(float) + QT_COLSUM_SCRATCH_COUNTERS * sizeof(unsigned))

// S for an (N, C) column sum with K outputs in blocks of cols columns: enough slices for
// QT_COLSUM_TARGET_BLOCKS blocks, at least QT_COLSUM_MIN_ROWS rows each, the partials within
// the scratch; 1 (no split, no scratch) without scratch or when the columns fill the GPU.
static inline int qt_colsum_splits(int N, int C, int cols, int K, const void *scratch) {
    const int groups = (C + cols - 1) / cols;
    if (!scratch || groups >= QT_COLSUM_TARGET_BLOCKS) return 1;
    int s = (QT_COLSUM_TARGET_BLOCKS + groups - 1) / groups;
    if (s > N / QT_COLSUM_MIN_ROWS) s = N / QT_COLSUM_MIN_ROWS;
    const size_t by_scratch = QT_COLSUM_SCRATCH_PARTIALS / ((size_t)C * (size_t)K);
    if ((size_t)s > by_scratch) s = (int)by_scratch;
    return s < 2 ? 1 : s;
}

// Rows [*r0, *r1) of slice `split` of S over N rows: ceil(N / S) each, the last one shorter.
static __host__ __device__ __forceinline__ void qt_colsum_slice(int N, int S, int split, int *r0,
                                                                int *r1) {
    const int per = (N + S - 1) / S;
    *r0 = split * per < N ? split * per : N;
    *r1 = *r0 + per < N ? *r0 + per : N;
}

// The end of a split column-block kernel with K outputs. Every thread of the block calls it;
// threads with ty == 0 and column c < C hold in v[k] the sum of output k's column c over the
// block's row slice. S == 1: out[k][c] += v[k] at once. Otherwise the partials go to scratch
// and the last block of this column group adds them up in slice order into out[k][c] (+=,
// rounded once). NULL outputs are skipped. Contains barriers: call it from uniform code.
template <int K, typename T>
static __device__ __forceinline__ void qt_colsum_finish(T *const (&out)[K], const float (&v)[K],
                                                        int ty, int c, int C, int S,
                                                        void *scratch) {
    const bool own = ty == 0 && c < C;
    if (S == 1) {
        if (own) {
            QT_UNROLL
            for (int k = 0; k < K; k++)
                if (out[k]) qt_add_st(out[k] + c, v[k]);
        }
        return;
    }
    float *part = static_cast<float *>(scratch);
    unsigned *count = reinterpret_cast<unsigned *>(part + QT_COLSUM_SCRATCH_PARTIALS);
    const int split = (int)blockIdx.y;
    if (own) {
        QT_UNROLL
        for (int k = 0; k < K; k++) atomicExch(part + ((size_t)k * S + split) * C + c, v[k]);
    }
    __threadfence(); // this thread's partials are visible before the block counts itself
    QT_SHARED(unsigned, arrived, 1);
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0)
        arrived[0] = atomicInc(count + blockIdx.x, (unsigned)S - 1u);
    __syncthreads();
    if (arrived[0] != (unsigned)S - 1u) return; // not the last slice of this column group
    __threadfence(); // every other slice's partials are visible from here on
    if (own) {
        QT_UNROLL
        for (int k = 0; k < K; k++) {
            if (!out[k]) continue;
            float acc = 0.0f;
            for (int j = 0; j < S; j++) acc += atomicAdd(part + ((size_t)k * S + j) * C + c, 0.0f);
            qt_add_st(out[k] + c, acc);
        }
    }
}

// ---- activations ----------------------------------------------------------------------------
// GELU (tanh approximation) and ReLU in fp32, the math of activation.cu (its header comment):
// operator()(x) = f(x) (a qt_map_chunk functor), bwd(dout, x) = dout f'(x). Shared with
// linear.cu, whose emulated build applies them as cuBLASLt's activation epilogues.
#define GELU_K 0.7978845608028654f // sqrt(2 / pi)
#define GELU_C 0.044715f

struct gelu_act {
    __device__ __forceinline__ float operator()(float x) const {
        const float u = GELU_K * (x + GELU_C * x * x * x);
        return x / (1.0f + qt_exp_capped(-2.0f * u));
    }
    static __device__ __forceinline__ float bwd(float dout, float x) {
        const float x2 = x * x;
        const float u = GELU_K * (x + GELU_C * x2 * x);
        const float e = qt_exp_capped(-2.0f * u), s = 1.0f / (1.0f + e);
        const float du = GELU_K * (1.0f + 3.0f * GELU_C * x2);
        return dout * (s + x * ((e * s) * s) * 2.0f * du);
    }
};

struct relu_act {
    __device__ __forceinline__ float operator()(float x) const {
        return x < 0.0f ? 0.0f : x; // NaN stays NaN
    }
    static __device__ __forceinline__ float bwd(float dout, float x) {
        return x > 0.0f ? dout : 0.0f;
    }
};

// ---- online softmax -------------------------------------------------------------------------
// The running pair of an online softmax (Milakov & Gimelshein 2018): m = max of the z seen, s =
// sum of exp(z - m). Empty: {-INFINITY, 0}.
struct qt_softmax_acc {
    float m, s;
};

// Adds z to a: a new maximum rescales the sum (the first element: 0 * exp(-inf) + 1); z = m =
// -inf adds nothing (exp(-inf + inf) would be NaN).
static __device__ __forceinline__ void qt_softmax_push(qt_softmax_acc &a, float z) {
    if (z > a.m) {
        a.s = a.s * expf(a.m - z) + 1.0f;
        a.m = z;
    } else if (a.m != -INFINITY) {
        a.s += expf(z - a.m);
    }
}

// Merges two pairs; two empty sides stay empty.
struct qt_op_softmax_merge {
    __device__ __forceinline__ qt_softmax_acc operator()(qt_softmax_acc a, qt_softmax_acc b) const {
        const float mn = fmaxf(a.m, b.m);
        qt_softmax_acc r;
        r.s = mn == -INFINITY ? 0.0f : a.s * expf(a.m - mn) + b.s * expf(b.m - mn);
        r.m = mn;
        return r;
    }
};

static __device__ __forceinline__ qt_softmax_acc qt_shfl_xor(qt_softmax_acc v, int off) {
    qt_softmax_acc r;
    r.m = __shfl_xor_sync(QT_FULL_MASK, v.m, off);
    r.s = __shfl_xor_sync(QT_FULL_MASK, v.s, off);
    return r;
}

// ---- launcher side: argument checks ---------------------------------------------------------

// QT_OK, or QT_ERR_ARG naming op when dt is not one of the three storage types.
static inline qt_status qt_check_dtype(const char *op, qt_dtype dt) {
    if (dt == QT_DTYPE_F32 || dt == QT_DTYPE_F16 || dt == QT_DTYPE_BF16) return QT_OK;
    return qt_error(QT_ERR_ARG, "%s: dtype %d is not fp32, fp16 or bf16; pass a qt_dtype", op,
                    (int)dt);
}

// 1 if p is aligned to `bytes` (a power of 2); NULL is aligned.
static inline int qt_aligned(const void *p, size_t bytes) { return (uintptr_t)p % bytes == 0; }

typedef enum { QT_ARG_REQUIRED, QT_ARG_OPTIONAL } qt_arg_need;

// One tensor argument of a launcher for qt_check_tensors: its name in messages, its pointer,
// its element size, and whether it may be NULL.
struct qt_tensor_arg {
    const char *name;
    const void *p;
    size_t elem_bytes;
    qt_arg_need need;
};

// A typed tensor (float *, int *, int8_t *, double *, ...): elements of sizeof(E).
template <typename E>
static inline qt_tensor_arg qt_arg(const char *name, const E *p,
                                   qt_arg_need need = QT_ARG_REQUIRED) {
    static_assert(!std::is_void<E>::value, "qt_arg: pass the dtype of a void * tensor");
    return qt_tensor_arg{name, p, sizeof(E), need};
}
// A `void *` tensor of storage type dt.
static inline qt_tensor_arg qt_arg(const char *name, const void *p, qt_dtype dt,
                                   qt_arg_need need = QT_ARG_REQUIRED) {
    return qt_tensor_arg{name, p, qt_dtype_size(dt), need};
}

static inline qt_status qt_check_tensor_list(const char *op, const qt_tensor_arg *a, int n) {
    for (int i = 0; i < n; i++) {
        if (!a[i].p) {
            if (a[i].need == QT_ARG_OPTIONAL) continue;
            return qt_error(QT_ERR_ARG, "%s: %s is NULL; pass a device pointer", op, a[i].name);
        }
        if (!qt_aligned(a[i].p, a[i].elem_bytes))
            return qt_error(QT_ERR_ARG, "%s: %s (%p) is not aligned to its %zu-byte elements", op,
                            a[i].name, a[i].p, a[i].elem_bytes);
    }
    return QT_OK;
}

// QT_OK when every required tensor is non-NULL and every non-NULL one is aligned to its element
// size; otherwise QT_ERR_ARG naming op and the first offending tensor, in argument order.
//   QT_TRY(qt_check_tensors(op, qt_arg("out", out, dt), qt_arg("mean", mean)));
template <typename... A>
static inline qt_status qt_check_tensors(const char *op, const A &...args) {
    const qt_tensor_arg list[] = {args...};
    return qt_check_tensor_list(op, list, (int)sizeof...(args));
}

// The checks of an element-wise launcher over n elements: dtype, then, when n > 0, the tensors.
template <typename... A>
static inline qt_status qt_check_elementwise(const char *op, qt_dtype dt, size_t n,
                                             const A &...tensors) {
    QT_TRY(qt_check_dtype(op, dt));
    return n == 0 ? QT_OK : qt_check_tensors(op, tensors...);
}

// QT_OK, or QT_ERR_ARG naming op when a launch would need more than gridDim.x's limit of blocks.
static inline qt_status qt_check_grid(const char *op, size_t blocks) {
    if (blocks <= QT_MAX_GRID_X) return QT_OK;
    return qt_error(QT_ERR_ARG, "%s: %zu blocks exceed one launch's grid; split the input", op,
                    blocks);
}

// The int a C caller stored in an enum field: loading an out-of-range value through the enum
// type is undefined in C++ (UBSan reports it), so read the bytes.
template <typename E> static inline int qt_enum_int(const E &e) {
    static_assert(sizeof(E) == sizeof(int), "qt_enum_int: the enum is not int-sized");
    int v;
    memcpy(&v, &e, sizeof v);
    return v;
}

// ---- launcher side: dtype dispatch and grids ------------------------------------------------

template <typename T> struct qt_type { typedef T type; };

// Calls f(qt_type<T>()) for the storage type T of dt and returns what f returns. dt must have
// passed qt_check_dtype (anything but fp32 and fp16 is taken as bf16).
template <typename F>
static inline auto qt_dtype_dispatch(qt_dtype dt, F &&f) -> decltype(f(qt_type<float>())) {
    switch (dt) {
    case QT_DTYPE_F32:
        return f(qt_type<float>());
    case QT_DTYPE_F16:
        return f(qt_type<__half>());
    default:
        return f(qt_type<__nv_bfloat16>());
    }
}

// fn<T>(args...) for the storage type T of dt (checked before): an expression of fn's return
// type, e.g. `QT_DTYPE_DISPATCH(dt, add_launch, st, out, a, b, n);` or
// `return QT_DTYPE_DISPATCH(dt, gate_bwd_launch, ...);`.
#define QT_DTYPE_DISPATCH(dt, fn, ...)                                                             \
    qt_dtype_dispatch((qt_dtype)(dt), [&](auto qt_tag_) {                                          \
        return fn<typename decltype(qt_tag_)::type>(__VA_ARGS__);                                  \
    })

// 1 if every pointer is 16-byte aligned: the precondition of qt_vec<T, W > 1>.
template <typename... P> static inline int qt_vec_aligned(const P *...p) {
    return ((qt_aligned(p, 16)) && ...);
}

// A warp's walk over a row of C elements in chunks of W consecutive ones: lane `lane` owns the
// chunks that start at c = W lane, W (lane + 32), ... (W = 1: columns lane, lane + 32, ...).
// W > 1 chunks move as qt_vec<T, W> (128-bit accesses) and need C % W == 0 and 16-byte aligned
// rows: qt_row_width picks W on the host.
#define QT_ROW_CHUNKS(c, W, C, lane) for (int c = (lane) * (W); c < (C); c += 32 * (W))

// The row kernels' chunk width for rows of C elements of T at these pointers:
// qt_vec<T>::width where C divides into it and every pointer is 16-byte aligned (then every row
// starts aligned), else 1.
template <typename T, typename... P> static inline int qt_row_width(int C, const P *...p) {
    constexpr int v = qt_vec<T>::width;
    return C % v == 0 && qt_vec_aligned(p...) ? v : 1;
}

// Blocks of `threads` for a grid-stride loop over `items`: ceil(items / threads), at least 1,
// at most max_blocks.
static inline unsigned qt_grid_blocks(size_t items, unsigned threads, unsigned max_blocks) {
    const size_t b = QT_CEIL_DIV(items, (size_t)threads);
    return b < 1 ? 1u : b > max_blocks ? max_blocks : (unsigned)b;
}

// Blocks of QT_EW_THREADS for an element-wise kernel over n elements in chunks of w.
static inline unsigned qt_ew_blocks(size_t n, int w) {
    return qt_grid_blocks(QT_CEIL_DIV(n, (size_t)w), QT_EW_THREADS, QT_EW_MAX_BLOCKS);
}

#endif

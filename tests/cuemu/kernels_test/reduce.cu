// reduce.cu: block reductions for the emulator's tests: a shared-memory tree with
// __syncthreads (static and dynamic shared memory) and a row softmax built on warp shuffles,
// the kernel shape whose emulated speed DESIGN.md quotes (1024x1024 in ~115 ms on 2 cores).
#include "qt_cuda_compat.h"

#include "cuemu_test_kernels.h"

// Thread t of block b accumulates x[b*per_block + t + k*blockDim.x], then a tree in shared
// memory halves the active threads each step. blockDim.x: a power of 2 <= 1024.
static __global__ void block_sum_smem(const float *x, float *out, int per_block) {
    QT_SHARED(float, buf, 1024);
    const unsigned t = threadIdx.x;
    const float *row = x + static_cast<size_t>(blockIdx.x) * per_block;
    float acc = 0.0f;
    for (int i = static_cast<int>(t); i < per_block; i += static_cast<int>(blockDim.x)) acc += row[i];
    buf[t] = acc;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) buf[t] += buf[t + s];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = buf[0];
}

// The same tree in dynamic shared memory of blockDim.x floats.
static __global__ void block_sum_dyn(const float *x, float *out, int per_block) {
    QT_DYNAMIC_SHARED(float, buf);
    const unsigned t = threadIdx.x;
    const float *row = x + static_cast<size_t>(blockIdx.x) * per_block;
    float acc = 0.0f;
    for (int i = static_cast<int>(t); i < per_block; i += static_cast<int>(blockDim.x)) acc += row[i];
    buf[t] = acc;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) buf[t] += buf[t + s];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = buf[0];
}

static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Block-wide max or sum: warps reduce, lane 0 of each warp stores its partial in scratch (32
// floats), every warp reduces the partials. The trailing barrier lets scratch be reused.
static __device__ float block_reduce(float v, float *scratch, bool is_max) {
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = is_max ? warp_max(v) : warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : (is_max ? -INFINITY : 0.0f);
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads();
    return v;
}

// y[r, :] = softmax(x[r, :]); block r, threads stride over the columns. blockDim.x: a
// multiple of 32.
static __global__ void softmax_rows(const float *x, float *y, int cols) {
    QT_SHARED(float, scratch, 32);
    const float *xr = x + static_cast<size_t>(blockIdx.x) * cols;
    float *yr = y + static_cast<size_t>(blockIdx.x) * cols;
    const int step = static_cast<int>(blockDim.x);
    float m = -INFINITY;
    for (int i = static_cast<int>(threadIdx.x); i < cols; i += step) m = fmaxf(m, xr[i]);
    m = block_reduce(m, scratch, true);
    float s = 0.0f;
    for (int i = static_cast<int>(threadIdx.x); i < cols; i += step) s += expf(xr[i] - m);
    s = block_reduce(s, scratch, false);
    const float inv = 1.0f / s;
    for (int i = static_cast<int>(threadIdx.x); i < cols; i += step) yr[i] = expf(xr[i] - m) * inv;
}

extern "C" cudaError_t cuemu_test_block_sum(const float *x, float *out, int nblocks,
                                            int per_block, int threads) {
    QT_LAUNCH(block_sum_smem, dim3(nblocks), dim3(threads), 0, nullptr, x, out, per_block);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_block_sum_dyn(const float *x, float *out, int nblocks,
                                                int per_block, int threads) {
    QT_LAUNCH(block_sum_dyn, dim3(nblocks), dim3(threads), threads * sizeof(float), nullptr, x,
              out, per_block);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_softmax_rows(const float *x, float *y, int rows, int cols,
                                               int threads) {
    QT_LAUNCH(softmax_rows, dim3(rows), dim3(threads), 0, nullptr, x, y, cols);
    return cudaGetLastError();
}

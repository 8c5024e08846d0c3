// grid.cu: grid-level kernels for the emulator's tests: index coverage of 1-3 D grids and
// blocks, atomics across blocks, dynamic and static shared memory, barrier predicates, half and
// bfloat16 intrinsics, template and argument-less kernels, and a spin loop with __nanosleep.
#include "qt_cuda_compat.h"

#include "cuemu_test_kernels.h"

// Global coordinates (x, y, z) in the box gridDim * blockDim; g = x + X*(y + Y*z).
static __global__ void index_cover(unsigned *count, unsigned *who) {
    const unsigned X = gridDim.x * blockDim.x, Y = gridDim.y * blockDim.y;
    const unsigned x = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned y = blockIdx.y * blockDim.y + threadIdx.y;
    const unsigned z = blockIdx.z * blockDim.z + threadIdx.z;
    const size_t g = x + static_cast<size_t>(X) * (y + static_cast<size_t>(Y) * z);
    atomicAdd(&count[g], 1u);
    who[4 * g + 0] = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    who[4 * g + 1] = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    who[4 * g + 2] = gridDim.x * gridDim.y * gridDim.z;
    who[4 * g + 3] = blockDim.x * blockDim.y * blockDim.z;
}

// Grid-stride loop over x; two histograms (global atomics, and shared atomics merged per
// block), a float sum, a max and a wrapping counter.
static __global__ void histogram(const unsigned *x, int n, unsigned *bins_g, unsigned *bins_s,
                                 int nbins, float *sum, unsigned *maxv, unsigned *wraps) {
    QT_SHARED(unsigned, local, 256);
    for (int b = static_cast<int>(threadIdx.x); b < nbins; b += static_cast<int>(blockDim.x)) local[b] = 0;
    __syncthreads();
    const int stride = static_cast<int>(gridDim.x * blockDim.x);
    for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += stride) {
        const unsigned v = x[i];
        atomicAdd(&bins_g[v % nbins], 1u);
        atomicAdd(&local[v % nbins], 1u);
        atomicAdd(sum, static_cast<float>(v));
        atomicMax(maxv, v);
        atomicInc(wraps, 9u);
    }
    __syncthreads();
    for (int b = static_cast<int>(threadIdx.x); b < nbins; b += static_cast<int>(blockDim.x))
        if (local[b]) atomicAdd(&bins_s[b], local[b]);
}

// Each block reverses its blockDim.x elements through dynamic shared memory; probe records what
// the shared float held before this thread wrote it (the emulator's fresh-block pattern).
static __global__ void reverse_dyn(const float *x, float *y, unsigned *probe) {
    QT_DYNAMIC_SHARED(float, s);
    const unsigned t = threadIdx.x, n = blockDim.x;
    const size_t base = static_cast<size_t>(blockIdx.x) * n;
    probe[base + t] = __float_as_uint(s[t]);
    s[t] = x[base + t];
    __syncthreads();
    y[base + t] = s[n - 1 - t];
}

// Reads its static shared slot before writing it, then writes a value a later block on the
// same worker would see if the emulator did not refill shared memory per block.
static __global__ void static_poison(unsigned *probe) {
    QT_SHARED(float, s, 1024);
    const unsigned t = threadIdx.x;
    probe[blockIdx.x * blockDim.x + t] = __float_as_uint(s[t]);
    __syncthreads();
    s[t] = 1.0f;
}

// out = in^T for an (n, n) matrix, through a 32x33 shared tile (2-D blocks of 32x8, each thread
// moving 4 elements); cube (3-D shared) counts the threads of each (y % 2, x % 3, z) class.
static __global__ void transpose_tile(const float *in, float *out, int n, int *cube_out) {
    QT_SHARED(float, tile, 32, 33);
    QT_SHARED(int, cube, 2, 3, 1);
    const int x = static_cast<int>(blockIdx.x * 32 + threadIdx.x);
    const int y0 = static_cast<int>(blockIdx.y * 32 + threadIdx.y);
    if (threadIdx.x < 3 && threadIdx.y < 2) cube[threadIdx.y][threadIdx.x][0] = 0;
    __syncthreads();
    atomicAdd(&cube[threadIdx.y % 2][threadIdx.x % 3][0], 1);
    for (int k = 0; k < 32; k += 8)
        if (x < n && y0 + k < n) tile[threadIdx.y + k][threadIdx.x] = in[static_cast<size_t>(y0 + k) * n + x];
    __syncthreads();
    const int tx = static_cast<int>(blockIdx.y * 32 + threadIdx.x);
    const int ty0 = static_cast<int>(blockIdx.x * 32 + threadIdx.y);
    for (int k = 0; k < 32; k += 8)
        if (tx < n && ty0 + k < n) out[static_cast<size_t>(ty0 + k) * n + tx] = tile[threadIdx.x][threadIdx.y + k];
    if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x < 3 && threadIdx.y < 2)
        cube_out[threadIdx.y * 3 + threadIdx.x] = cube[threadIdx.y][threadIdx.x][0];
}

static __global__ void sync_preds(const int *pred, int *res) {
    const int p = pred[threadIdx.x];
    const int c = __syncthreads_count(p);
    const int a = __syncthreads_and(p);
    const int o = __syncthreads_or(p);
    if (threadIdx.x == 0) {
        res[3 * blockIdx.x + 0] = c;
        res[3 * blockIdx.x + 1] = a;
        res[3 * blockIdx.x + 2] = o;
    }
}

static __global__ void half_ops(const __half *a, float *out, int n) {
    const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    // Every lane takes part in the shuffle; lanes past n use a dummy value.
    const __half h = i < n ? a[i] : __float2half(0.0f);
    const __half sh = __shfl_xor_sync(0xffffffffu, h, 1);
    if (i >= n) return;
    const __nv_bfloat16 b = __float2bfloat16(__half2float(h));
    float *o = out + 8 * i;
    o[0] = __half2float(hexp(h));
    o[1] = __half2float(__hfma(h, h, h));
    o[2] = __half2float(hsqrt(__habs(h)));
    o[3] = __half2float(__ldg(&a[i]));
    o[4] = __low2float(h2exp(__halves2half2(h, h)));
    o[5] = __bfloat162float(hexp(b));
    o[6] = __bfloat162float(__hfma(b, b, b));
    o[7] = __half2float(sh);
}

template <typename T, int K>
static __global__ void scale(const T *x, T *y, int n) {
    const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) y[i] = static_cast<T>(K) * x[i];
}

static __device__ int g_flag;

static __global__ void set_flag() { g_flag = 7; }

// Every thread waits for thread 32 to set a shared flag, yielding with __nanosleep (thread 32
// may run last); atomics make the flag accesses race-free.
static __global__ void spin_nanosleep(int *out) {
    QT_SHARED(int, flag, 1);
    if (threadIdx.x == 0) flag[0] = 0;
    __syncthreads();
    if (threadIdx.x == 32) atomicExch(&flag[0], 5);
    int seen = 0;
    while ((seen = atomicAdd(&flag[0], 0)) == 0) __nanosleep(100);
    out[threadIdx.x] = seen;
}

static __global__ void empty_kernel() {}

extern "C" cudaError_t cuemu_test_index_cover(unsigned *count, unsigned *who, dim3 grid,
                                              dim3 block) {
    QT_LAUNCH(index_cover, grid, block, 0, nullptr, count, who);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_histogram(const unsigned *x, int n, unsigned *bins_g,
                                            unsigned *bins_s, int nbins, float *sum,
                                            unsigned *maxv, unsigned *wraps, int blocks,
                                            int threads) {
    if (nbins > 256) return cudaErrorInvalidValue;
    QT_LAUNCH(histogram, blocks, threads, 0, nullptr, x, n, bins_g, bins_s, nbins, sum, maxv,
              wraps);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_reverse_dyn(const float *x, float *y, unsigned *probe,
                                              int blocks, int threads) {
    QT_LAUNCH(reverse_dyn, blocks, threads, threads * sizeof(float), nullptr, x, y, probe);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_static_poison(unsigned *probe, int blocks, int threads) {
    QT_LAUNCH(static_poison, blocks, threads, 0, nullptr, probe);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_transpose(const float *in, float *out, int n, int *cube) {
    QT_LAUNCH(transpose_tile, dim3((n + 31) / 32, (n + 31) / 32), dim3(32, 8), 0, nullptr, in, out,
              n, cube);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_sync_preds(const int *pred, int *res, int blocks, int threads) {
    QT_LAUNCH(sync_preds, blocks, threads, 0, nullptr, pred, res);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_half_ops(const unsigned short *a_bits, float *out, int n) {
    const int threads = 64;
    QT_LAUNCH(half_ops, (n + threads - 1) / threads, threads, 0, nullptr,
              reinterpret_cast<const __half *>(a_bits), out, n);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_template_launch(const float *x, float *y, int n, int *flag) {
    QT_LAUNCH(scale<float, 3>, (n + 127) / 128, 128, 0, nullptr, x, y, n);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    QT_LAUNCH(set_flag, 1, 1, 0, nullptr);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    return cudaMemcpyFromSymbol(flag, g_flag, sizeof(int), 0, cudaMemcpyDeviceToHost);
}

extern "C" cudaError_t cuemu_test_spin_nanosleep(int *out) {
    QT_LAUNCH(spin_nanosleep, 1, 64, 0, nullptr, out);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_empty(dim3 grid, dim3 block, size_t smem) {
    QT_LAUNCH(empty_kernel, grid, block, smem, nullptr);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_empty_on(cudaStream_t stream) {
    QT_LAUNCH(empty_kernel, 1, 32, 0, stream);
    return cudaGetLastError();
}

extern "C" cudaError_t cuemu_test_empty_set_smem(int bytes) {
    return cudaFuncSetAttribute(empty_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

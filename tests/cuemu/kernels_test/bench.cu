// bench.cu: kernels that time the emulator's scheduling: a loop of barriers or collectives
// with no other work, so time / switches is the cost of one fiber switch with its bookkeeping.
#include "qt_cuda_compat.h"

#include "cuemu_test_kernels.h"

static __global__ void loop_syncthreads(int iters, int *out) {
    int s = 0;
    for (int i = 0; i < iters; i++) {
        __syncthreads();
        s += i;
    }
    if (s == -1) out[0] = s;
}

static __global__ void loop_shfl(int iters, int *out) {
    int s = static_cast<int>(threadIdx.x);
    for (int i = 0; i < iters; i++) s += __shfl_xor_sync(0xffffffffu, s, 1);
    if (s == -1) out[0] = s;
}

extern "C" cudaError_t cuemu_bench_loop(int kind, int blocks, int threads, int iters, int *out) {
    if (kind == 0)
        QT_LAUNCH(loop_syncthreads, blocks, threads, 0, nullptr, iters, out);
    else
        QT_LAUNCH(loop_shfl, blocks, threads, 0, nullptr, iters, out);
    return cudaGetLastError();
}

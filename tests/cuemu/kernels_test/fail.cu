// fail.cu: kernels with the bugs the emulator must report, one per failure case. Each is
// valid CUDA that compiles with nvcc; on a GPU most of them hang or compute garbage silently.
// test_cuemu_fail.cpp runs every case in a child process and checks the report, including the
// block and thread coordinates given in the comments.
#include "qt_cuda_compat.h"

#include "kernels/cuda/common.cuh"

#include <cstring>

#include "cuemu_test_kernels.h"

// Block (1,0,0): threads >= 40 return before a __syncthreads the others wait at.
// Report: divergent __syncthreads, block (1,0,0), thread (40,0,0) exited.
static __global__ void fail_divergent_exit(float *out) {
    if (blockIdx.x == 1 && threadIdx.x >= 40) return;
    out[threadIdx.x] = 1.0f;
    __syncthreads();
}

// Warp 0 and warp 1 wait at different __syncthreads. Report: block (0,0,0), threads (0,0,0) and
// (32,0,0).
static __global__ void fail_divergent_sites(float *out) {
    if (threadIdx.x < 32) {
        out[threadIdx.x] = 1.0f;
        __syncthreads();
    } else {
        out[threadIdx.x] = 2.0f;
        __syncthreads();
    }
}

// In block (0,1,0), lanes >= 20 of each warp leave; the rest shuffle with the full mask.
// Report: __shfl_xor_sync, block (0,1,0), thread (0,0,0) waits, lane 20 = thread (20,0,0).
static __global__ void fail_shfl_exited(float *out) {
    float v = static_cast<float>(threadIdx.x);
    if (blockIdx.y == 1 && threadIdx.x % 32 >= 20) return;
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

// Lanes 0-15 wait at __syncwarp() for lanes 16-31, which wait at __syncthreads for them.
// Report: deadlock, block (2,0,0), thread (0,0,0) waits at __syncwarp for thread (16,0,0).
static __global__ void fail_deadlock(float *out) {
    if (blockIdx.x == 2) {
        if (threadIdx.x < 16)
            __syncwarp();
        else
            __syncthreads();
    }
    out[threadIdx.x] = 1.0f;
}

// Lanes 0-15 pass the full mask, lanes 16-31 a mask without lane 0: no group can form.
// Report: deadlock, thread (0,0,0) ... mask 0xffffffff for thread (16,0,0) ... 0xfffffffe.
static __global__ void fail_mask_mismatch(float *out) {
    __syncwarp(threadIdx.x < 16 ? 0xffffffffu : 0xfffffffeu);
    out[threadIdx.x] = 1.0f;
}

// Every lane passes mask 0x1: lane 1 is not in its own mask. Report: thread (1,0,0).
static __global__ void fail_mask_self(float *out) {
    out[threadIdx.x] = __shfl_sync(0x1u, 1.0f, 0);
}

// A block of 48 threads: warp 1 has lanes 0-15 only, but shuffles with the full mask.
// Report: thread (32,0,0), lane 16, which does not exist.
static __global__ void fail_partial_full_mask(float *out) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 16);
}

// Half the warp shuffles, half votes, with the same mask. Report: divergent warp collective.
static __global__ void fail_collective_mismatch(float *out) {
    float v = 1.0f;
    if (threadIdx.x < 16)
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    else
        v = static_cast<float>(__ballot_sync(0xffffffffu, 1));
    out[threadIdx.x] = v;
}

// Thread (0,0,0) of block (0,0,0) spins on a flag thread 1 would set, without yielding.
// Report: watchdog, block (0,0,0) thread (0,0,0).
static __global__ void fail_spin(int *flag) {
    if (threadIdx.x == 0)
        while (atomicAdd(flag, 0) == 0) {
        }
    if (threadIdx.x == 1) atomicExch(flag, 1);
}

// Thread (3,0,0) of block (1,0,0) stores through a null pointer. Report: SIGSEGV (or the
// sanitizer's SEGV report), block (1,0,0), thread (3,0,0).
static __global__ void fail_segv(float *out, float *bad) {
    if (blockIdx.x == 1 && threadIdx.x == 3) bad[threadIdx.x] = 1.0f;
    out[threadIdx.x] = 1.0f;
}

// Unbounded recursion with a local array overflows the fiber stack of thread (0,0,0).
// The frame's buffer is read after the call, so the recursion cannot become a loop.
static __device__ QT_NOINLINE int recurse(int depth, volatile char *sink) {
    volatile char buf[512];
    buf[0] = static_cast<char>(depth);
    buf[511] = *sink;
    const int below = depth > 0 ? recurse(depth - 1, sink) : 0;
    return below + buf[0] + buf[511];
}

static __global__ void fail_stack_overflow(int *out, int depth) {
    volatile char sink = 0;
    if (threadIdx.x == 0) out[0] = recurse(depth, &sink);
}

// Writes shared[32..63] of a 32-float static array. Report (ASan): global-buffer-overflow in
// block (0,0,0), thread (32,0,0).
static __global__ void fail_smem_oob_static(float *out) {
    QT_SHARED(float, s, 32);
    float *volatile p = s;  // opaque to UBSan's bounds and object-size checks: ASan's turn
    p[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x % 32];
}

// Writes one float past the end of 64 floats of dynamic shared memory, from thread (0,0,0) of
// block (0,0,0). Report: heap-buffer-overflow (ASan), or SIGSEGV past the end of dynamic
// shared memory (the other builds put a guard page there).
static __global__ void fail_smem_oob_dynamic(float *out) {
    QT_DYNAMIC_SHARED(float, s);
    s[threadIdx.x] = 1.0f;
    if (threadIdx.x == 0) s[blockDim.x] = 2.0f;
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}

// Thread (63,0,0) of block (1,0,0) writes one float past the end of a 128-float cudaMalloc
// buffer. Report (ASan): heap-buffer-overflow, block (1,0,0), thread (63,0,0).
static __global__ void fail_global_oob(float *out) {
    out[blockIdx.x * blockDim.x + threadIdx.x + (blockIdx.x == 1 && threadIdx.x == 63 ? 1 : 0)] = 1.0f;
}

// Each thread writes its shared slot and reads its neighbour's without a __syncthreads in
// between. Report (TSan): data race, between two of the block's threads. With with_sync, the
// barrier is there and the kernel is clean.
static __global__ void race_syncthreads(float *out, int with_sync) {
    QT_SHARED(float, s, 64);
    const unsigned t = threadIdx.x;
    s[t] = static_cast<float>(t);
    if (with_sync) __syncthreads();
    out[t] = s[(t + 1) % 64];
}

// The same within a warp: a shared exchange without __syncwarp (warp-synchronous code that is
// wrong since Volta). With with_sync, __syncwarp orders it.
static __global__ void race_syncwarp(float *out, int with_sync) {
    QT_SHARED(float, s, 32);
    const unsigned l = threadIdx.x % 32;
    s[l] = static_cast<float>(l);
    if (with_sync) __syncwarp();
    out[threadIdx.x] = s[l ^ 1];
}

namespace {

float *device_floats(size_t n) {
    void *p = nullptr;
    if (cudaMalloc(&p, n * sizeof(float)) != cudaSuccess) abort();
    return static_cast<float *>(p);
}

}  // namespace

// A cp.async copy still in flight when its thread exits (no wait_group covers it).
static __global__ void fail_cp_async_pending(float *out) {
    QT_DYNAMIC_SHARED(float, s);
    qt_cp_async_cg16(s + 4 * threadIdx.x, out + 4 * threadIdx.x, 16);
    qt_cp_async_commit();
    if (threadIdx.x != 5) qt_cp_async_wait<0>();
}

extern "C" int cuemu_test_fail_case(const char *name) {
    float *out = device_floats(1024);
    int *flag = nullptr;
    if (cudaMalloc(reinterpret_cast<void **>(&flag), 4 * sizeof(int)) != cudaSuccess) abort();
    if (cudaMemset(flag, 0, 4 * sizeof(int)) != cudaSuccess) abort();
    if (!strcmp(name, "divergent_exit"))
        QT_LAUNCH(fail_divergent_exit, 2, 64, 0, nullptr, out);
    else if (!strcmp(name, "divergent_sites"))
        QT_LAUNCH(fail_divergent_sites, 1, 64, 0, nullptr, out);
    else if (!strcmp(name, "shfl_exited"))
        QT_LAUNCH(fail_shfl_exited, dim3(1, 2), 64, 0, nullptr, out);
    else if (!strcmp(name, "deadlock"))
        QT_LAUNCH(fail_deadlock, 3, 32, 0, nullptr, out);
    else if (!strcmp(name, "mask_mismatch"))
        QT_LAUNCH(fail_mask_mismatch, 1, 32, 0, nullptr, out);
    else if (!strcmp(name, "mask_self"))
        QT_LAUNCH(fail_mask_self, 1, 32, 0, nullptr, out);
    else if (!strcmp(name, "partial_full_mask"))
        QT_LAUNCH(fail_partial_full_mask, 1, 48, 0, nullptr, out);
    else if (!strcmp(name, "collective_mismatch"))
        QT_LAUNCH(fail_collective_mismatch, 1, 32, 0, nullptr, out);
    else if (!strcmp(name, "spin"))
        QT_LAUNCH(fail_spin, 1, 32, 0, nullptr, flag);
    else if (!strcmp(name, "segv"))
        QT_LAUNCH(fail_segv, 2, 32, 0, nullptr, out, static_cast<float *>(nullptr));
    else if (!strcmp(name, "stack_overflow"))
        QT_LAUNCH(fail_stack_overflow, 1, 32, 0, nullptr, flag, 1 << 30);
    else if (!strcmp(name, "cp_async_pending"))
        QT_LAUNCH(fail_cp_async_pending, 1, 32, 32 * 16, nullptr, out);
    else if (!strcmp(name, "smem_oob_static"))
        QT_LAUNCH(fail_smem_oob_static, 1, 64, 0, nullptr, out);
    else if (!strcmp(name, "smem_oob_dynamic"))
        QT_LAUNCH(fail_smem_oob_dynamic, 1, 64, 64 * sizeof(float), nullptr, out);
    else if (!strcmp(name, "global_oob")) {
        float *small = device_floats(128);
        QT_LAUNCH(fail_global_oob, 2, 64, 0, nullptr, small);
    } else if (!strcmp(name, "device_leak")) {
        // Never freed: LeakSanitizer must report it at exit (ASan build).
        if (!device_floats(1000)) return 1;
    } else if (!strcmp(name, "race_syncthreads"))
        QT_LAUNCH(race_syncthreads, 1, 64, 0, nullptr, out, 0);
    else if (!strcmp(name, "race_syncthreads_fixed"))
        QT_LAUNCH(race_syncthreads, 1, 64, 0, nullptr, out, 1);
    else if (!strcmp(name, "race_syncwarp"))
        QT_LAUNCH(race_syncwarp, 1, 32, 0, nullptr, out, 0);
    else if (!strcmp(name, "race_syncwarp_fixed"))
        QT_LAUNCH(race_syncwarp, 1, 32, 0, nullptr, out, 1);
    else
        return -1;
    const int rc = cudaGetLastError() == cudaSuccess ? 0 : 1;
    if (cudaFree(out) != cudaSuccess || cudaFree(flag) != cudaSuccess) return 1;
    return rc;
}

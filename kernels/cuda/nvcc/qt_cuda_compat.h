// kernels/cuda/nvcc/qt_cuda_compat.h: the compatibility header of the nvcc build, the one header
// every kernels/cuda/*.cu includes first.
//
// The same CUDA C source builds two ways, and the build selects which qt_cuda_compat.h a .cu
// finds by its include path (cmake/cuda.cmake):
//   - nvcc: this file (kernels/cuda/nvcc/ on the include path): plain CUDA; it includes the
//     CUDA headers and defines the QT_ macros below as the CUDA constructs they stand for;
//   - the CPU emulator: tests/cuemu/qt_cuda_compat.h (tests/cuemu/ on the include path, the
//     source compiled as C++ with -DQT_CUEMU), which defines the same macros on the emulator.
// Kernels never include anything under tests/: the emulator is a test tool that they reach only
// through this one selected header.
//
// Write kernels against this header only:
//   QT_LAUNCH(kernel, grid, block, smem_bytes, stream, args...)   instead of <<< >>>
//   QT_SHARED(type, name, n0[, n1[, n2]])                        instead of __shared__ arrays
//   QT_DYNAMIC_SHARED(type, name)                                 instead of extern __shared__
//   QT_NOINLINE                                                   instead of __noinline__
// Everything else is ordinary CUDA: threadIdx, __syncthreads, __shfl_*_sync, atomics, __half,
// __nv_bfloat16, __ldg, hexp, ... (the emulator defines what the host headers lack).
// QT_CUDA_EMULATED is 0 here, 1 in the emulator (where QT_CUEMU is defined and __CUDA_ARCH__ is
// not): inline PTX goes in a small wrapper with a `#if QT_CUDA_EMULATED` CPU twin. Define
// QT_CUDA_WITH_CURAND before this header to use the cuRAND device API.
#ifndef QTRAIN_QT_CUDA_COMPAT_H
#define QTRAIN_QT_CUDA_COMPAT_H

#if !defined(__CUDACC__)
#error "kernels/cuda/nvcc/qt_cuda_compat.h is the nvcc build's; the emulated build puts tests/cuemu first on the include path"
#endif


#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
// cuRAND's device API puts ~218 KB of __device__ tables in every translation unit that includes
// it: only on request (the project's random numbers come from base/philox.h).
#if defined(QT_CUDA_WITH_CURAND)
#include <curand_kernel.h>
#endif

#define QT_CUDA_EMULATED 0
#define QT_NOINLINE __noinline__

// QT_LAUNCH(kernel, grid, block, smem_bytes, stream, args...)
//   kernel<<<grid, block, smem_bytes, stream>>>(args...). grid/block: dim3 or an integer;
//   smem_bytes: dynamic shared memory; stream: cudaStream_t (0 for the default stream).
//   A template kernel may be named directly: QT_LAUNCH(k<float, 4>, ...). Pass nullptr, not 0,
//   for a pointer argument. Check the launch with cudaGetLastError() as usual.
template <typename... P, typename... A>
static inline void qt_cuda_launch(const char *text, void (*kernel)(P...), dim3 grid, dim3 block,
                                  size_t smem_bytes, cudaStream_t stream, A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A),
                  "QT_LAUNCH: the number of arguments differs from the kernel's parameters");
    (void)text;
    kernel<<<grid, block, smem_bytes, stream>>>(static_cast<A &&>(args)...);
}
#define QT_LAUNCH(...) qt_cuda_launch(#__VA_ARGS__, __VA_ARGS__)

// QT_SHARED(type, name, n0[, n1[, n2]]): a __shared__ array type name[n0][n1][n2] declared in a
// kernel or device function body.
#define QT_SHARED(type, name, ...) __shared__ type name QT_CUDA_DIMS_(__VA_ARGS__)

// QT_DYNAMIC_SHARED(type, name): `type *name` pointing at the block's dynamic shared memory
// (the launch's smem_bytes; 16-byte aligned). Several may appear in a kernel: they alias.
#define QT_DYNAMIC_SHARED(type, name)                                                         \
    extern __shared__ float4 qt_dynamic_smem_[];                                               \
    type *name = reinterpret_cast<type *>(qt_dynamic_smem_)

// [n0], [n0][n1] or [n0][n1][n2] from 1 to 3 extents.
#define QT_CUDA_DIMS_(...) QT_CUDA_DIMS_PICK_(__VA_ARGS__, QT_CUDA_DIMS3_, QT_CUDA_DIMS2_, QT_CUDA_DIMS1_, )(__VA_ARGS__)
#define QT_CUDA_DIMS_PICK_(_1, _2, _3, which, ...) which
#define QT_CUDA_DIMS1_(a) [a]
#define QT_CUDA_DIMS2_(a, b) [a][b]
#define QT_CUDA_DIMS3_(a, b, c) [a][b][c]

#endif

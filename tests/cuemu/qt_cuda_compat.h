// tests/cuemu/qt_cuda_compat.h: the compatibility header of the emulated build (selected by
// the include path, cmake/cuda.cmake): every kernels/cuda/*.cu includes "qt_cuda_compat.h" first,
// and, compiled as C++ with -DQT_CUEMU against the emulator, finds this one, which defines the
// QT_ macros of the nvcc build's kernels/cuda/nvcc/qt_cuda_compat.h (see there) on the emulator
// (cuemu.h: threads as fibers, barriers, warp collectives, shared memory, atomics, the runtime
// API; tests/cuemu/README.md).
#ifndef QTRAIN_QT_CUDA_COMPAT_H
#define QTRAIN_QT_CUDA_COMPAT_H

#if !defined(QT_CUEMU)
#error "tests/cuemu/qt_cuda_compat.h is the emulated build's: compile as C++ with -DQT_CUEMU"
#endif


#include "cuemu.h"

#define QT_CUDA_EMULATED 1
#define QT_NOINLINE __attribute__((noinline))

#define QT_LAUNCH(...) ::cuemu::launch(#__VA_ARGS__, __VA_ARGS__)

// In the emulator the array is per block (thread_local, or static under ASan) and is filled
// with 0xFF bytes (NaN) the first time each block reaches the declaration.
#define QT_SHARED(type, name, ...)                                                            \
    QT_CUEMU_SHARED_STORAGE type name QT_CUDA_DIMS_(__VA_ARGS__);                              \
    ::cuemu::detail::shared_init(name, sizeof(name))

#define QT_DYNAMIC_SHARED(type, name) type *name = static_cast<type *>(::cuemu::dynamic_shared())

// [n0], [n0][n1] or [n0][n1][n2] from 1 to 3 extents.
#define QT_CUDA_DIMS_(...) QT_CUDA_DIMS_PICK_(__VA_ARGS__, QT_CUDA_DIMS3_, QT_CUDA_DIMS2_, QT_CUDA_DIMS1_, )(__VA_ARGS__)
#define QT_CUDA_DIMS_PICK_(_1, _2, _3, which, ...) which
#define QT_CUDA_DIMS1_(a) [a]
#define QT_CUDA_DIMS2_(a, b) [a][b]
#define QT_CUDA_DIMS3_(a, b, c) [a][b][c]

#endif

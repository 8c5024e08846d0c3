// base/cuda_check.h: the check macros of CUDA code (the launchers in kernels/cuda/*.cu, the CUDA
// backend in host/); include after the CUDA runtime headers (qt_cuda_compat.h in a kernel).
// Each records one message with qt_error (base/status.h) and returns QT_ERR_CUDA from the
// calling function, which must return qt_status:
//   QT_CHECK_CUDA(expr)      a CUDA runtime call: its text, file:line and cudaGetErrorString;
//   QT_CHECK_LAUNCH(opname)  after QT_LAUNCH: cudaGetLastError() (bad configuration, too much
//                            shared memory, an earlier asynchronous fault), naming the op.
// cudaGetLastError also clears the error, so a failed launch is reported once, by its op.
//   QT_CHECK_CUBLASLT(expr)  a cuBLASLt call (GPU build only: needs <cublasLt.h> where it is
//                            used): on failure sets the caller's `qt_status st` and jumps to
//                            its `out:` label, so the caller can release its descriptors.
#ifndef QTRAIN_QT_CUDA_CHECK_H
#define QTRAIN_QT_CUDA_CHECK_H

#include "status.h"

#define QT_CHECK_CUDA(expr)                                                                   \
    do {                                                                                      \
        cudaError_t qt_cuda_err_ = (expr);                                                    \
        if (qt_cuda_err_ != cudaSuccess)                                                      \
            return qt_error(QT_ERR_CUDA, "%s failed at %s:%d: %s", #expr, __FILE__, __LINE__, \
                            cudaGetErrorString(qt_cuda_err_));                                \
    } while (0)

#define QT_CHECK_LAUNCH(opname)                                                               \
    do {                                                                                      \
        cudaError_t qt_cuda_err_ = cudaGetLastError();                                        \
        if (qt_cuda_err_ != cudaSuccess)                                                      \
            return qt_error(QT_ERR_CUDA, "%s: kernel launch failed at %s:%d: %s", (opname),   \
                            __FILE__, __LINE__, cudaGetErrorString(qt_cuda_err_));            \
    } while (0)

#define QT_CHECK_CUBLASLT(expr)                                                               \
    do {                                                                                      \
        cublasStatus_t qt_lt_status_ = (expr);                                                \
        if (qt_lt_status_ != CUBLAS_STATUS_SUCCESS) {                                         \
            st = qt_error(QT_ERR_CUDA, "%s failed at %s:%d: %s", #expr, __FILE__, __LINE__,   \
                          cublasLtGetStatusString(qt_lt_status_));                            \
            goto out;                                                                         \
        }                                                                                     \
    } while (0)

#endif

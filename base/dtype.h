// base/dtype.h: storage types of parameters, gradients and activations.
//
// A backend stores the model's working tensors in one dtype (its `dtype`): fp32 on the CPU;
// fp32, fp16 or bf16 on CUDA (mixed precision, with fp32 master weights in the optimizer).
// Host code addresses such tensors as `void *` and steps through them with QT_AT, never with
// float pointer arithmetic. Math is fp32 (or wider) whatever the storage.
#ifndef QTRAIN_BASE_DTYPE_H
#define QTRAIN_BASE_DTYPE_H

#include <stddef.h>

typedef enum {
    QT_DTYPE_F32 = 0,
    QT_DTYPE_F16 = 1,
    QT_DTYPE_BF16 = 2,
} qt_dtype;

static inline size_t qt_dtype_size(qt_dtype dt) { return dt == QT_DTYPE_F32 ? 4 : 2; }

static inline const char *qt_dtype_name(qt_dtype dt) {
    return dt == QT_DTYPE_F32 ? "fp32" : dt == QT_DTYPE_F16 ? "fp16" : "bf16";
}

// The address of element `elems` of a tensor of `elem_size`-byte elements at `ptr`.
#define QT_AT(ptr, elem_size, elems) ((void *)((char *)(ptr) + (size_t)(elems) * (elem_size)))

#endif

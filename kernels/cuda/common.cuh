// qt_cuda_dtype.h: storage <-> fp32 for the kernels' three storage types.
//
// Kernels are templated over the storage type T (float, __half, __nv_bfloat16) of their
// `void *` tensors and do their math in fp32: qt_to_f32/qt_ld widen, qt_st rounds to nearest
// even (never a fused or truncating conversion, so the result matches the CPU's rounding).
// Include after qt_cuda_compat.h.
#ifndef QTRAIN_QT_CUDA_DTYPE_H
#define QTRAIN_QT_CUDA_DTYPE_H

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

#endif

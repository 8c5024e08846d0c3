// elementwise.cu: residual add, bias add and its gradient (column sums), and casts between fp32,
// fp16 and bf16; fp32 math on fp32/fp16/bf16 storage.
//
// CPU twins: kernels/cpu/elementwise.c (qt_cpu_add, qt_cpu_bias_add, qt_cpu_bias_grad); cast has
// none (the CPU stores fp32 only).
// Contract (kernels/elementwise.h): add overwrites out (which may alias a or b). bias_add adds
// bias to every row of out in place; bias_grad adds the column sums of dout into db. cast rounds to nearest
// even (NaN stays NaN, overflow gives inf); dst may equal src when both dtypes have the same
// size (element i is read and written by one thread), otherwise they must not overlap.
// Determinism: the element-wise kernels have no reductions; bias_grad's column sums use a fixed
// order (per-thread strided rows, then a fixed-shape tree), no atomics.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include <stdint.h>

#include "kernels/elementwise.h"

// ---- launch constants -----------------------------------------------------------------------
// Element-wise kernels: 256 threads a block, grid-stride loops over at most EW_MAX_BLOCKS
// blocks (enough to fill any current GPU many times over; a larger n loops).
#define EW_THREADS 256
#define EW_MAX_BLOCKS 8192
// bias_grad: a block owns EW_COLS columns (one warp wide: coalesced row loads) and
// EW_ROW_LANES threads per column stride over the rows; a tree adds their partial sums.
// EW_ROW_LANES is a power of 2.
#define EW_COLS 32
#define EW_ROW_LANES 16

// ---- kernels --------------------------------------------------------------------------------
// Element-wise kernels: thread i of the grid handles elements i, i + gridDim.x * blockDim.x,
// ... < n (the grid-stride loop is the bounds guard). No shared memory. Pointers are not
// __restrict__: the contract lets outputs alias inputs element for element.

template <typename T>
static __global__ void __launch_bounds__(EW_THREADS)
    add_elem(T *out, const T *a, const T *b, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        qt_st(out + i, qt_ld(a + i) + qt_ld(b + i));
}

// out (N, OC) += bias (OC), over the flattened N * OC elements (column i % OC).
template <typename T>
static __global__ void __launch_bounds__(EW_THREADS)
    bias_add_elem(T *out, const T *bias, size_t n, int OC) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        qt_st(out + i, qt_ld(out + i) + qt_ld(bias + i % (size_t)OC));
}

// dst (n) = src (n) converted: through fp32, which holds fp16 and bf16 values exactly, so the
// store is the only rounding.
template <typename D, typename S>
static __global__ void __launch_bounds__(EW_THREADS)
    cast_elem(D *dst, const S *src, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        qt_st(dst + i, qt_ld(src + i));
}

// db (OC) += column sums of dout (N, OC).
// Thread mapping: block (EW_COLS, EW_ROW_LANES), grid ceil(OC / EW_COLS); thread (tx, ty)
// owns column blockIdx.x * EW_COLS + tx and sums rows ty, ty + EW_ROW_LANES, ... in order;
// the EW_ROW_LANES partials of a column are then added by a tree over ty. Both orders depend
// only on N: deterministic.
// Shared memory: one (EW_ROW_LANES, EW_COLS + 1) fp32 tile (+1: no bank conflicts).
// Guards: threads of columns >= OC add nothing but take part in every barrier.
template <typename T>
static __global__ void __launch_bounds__(EW_COLS *EW_ROW_LANES)
    bias_grad_colblock(T *db, const T *dout, int N, int OC) {
    QT_SHARED(float, part, EW_ROW_LANES, EW_COLS + 1);
    const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * EW_COLS + tx;
    float acc = 0.0f;
    if (c < OC)
        for (int n = ty; n < N; n += EW_ROW_LANES) acc += qt_ld(dout + (size_t)n * OC + c);
    part[ty][tx] = acc;
    __syncthreads();
    for (int half = EW_ROW_LANES / 2; half > 0; half >>= 1) {
        if (ty < half) part[ty][tx] += part[ty + half][tx];
        __syncthreads();
    }
    if (ty == 0 && c < OC) qt_st(db + c, qt_ld(db + c) + part[0][tx]);
}

// ---- launchers ------------------------------------------------------------------------------

// Calls fn<T>(args...) for the storage type T of dt (checked before).
#define DT_DISPATCH(dt, fn, ...)                                                              \
    do {                                                                                      \
        switch (dt) {                                                                         \
        case QT_DTYPE_F32: fn<float>(__VA_ARGS__); break;                                     \
        case QT_DTYPE_F16: fn<__half>(__VA_ARGS__); break;                                    \
        default: fn<__nv_bfloat16>(__VA_ARGS__); break;                                       \
        }                                                                                     \
    } while (0)

static int dtype_ok(qt_dtype dt) {
    return dt == QT_DTYPE_F32 || dt == QT_DTYPE_F16 || dt == QT_DTYPE_BF16;
}

// 1 if p is aligned for elements of dt.
static int aligned(const void *p, qt_dtype dt) {
    return ((uintptr_t)p % qt_dtype_size(dt)) == 0;
}

// Blocks of EW_THREADS for n >= 1 elements, at most EW_MAX_BLOCKS (the kernels grid-stride).
static unsigned ew_blocks(size_t n) {
    const size_t b = QT_CEIL_DIV(n, (size_t)EW_THREADS);
    return (unsigned)(b < EW_MAX_BLOCKS ? b : EW_MAX_BLOCKS);
}

// The checks every element-wise launcher makes: dtype, non-NULL and aligned tensors (n > 0).
static qt_status check_elem(const char *op, qt_dtype dt, size_t n, const void *p0,
                            const void *p1, const void *p2) {
    if (!dtype_ok(dt))
        return qt_error(QT_ERR_ARG, "%s: dtype %d is not fp32, fp16 or bf16; pass a qt_dtype",
                        op, (int)dt);
    if (n == 0) return QT_OK;
    if (!p0 || !p1 || !p2)
        return qt_error(QT_ERR_ARG, "%s: a tensor pointer is NULL (n = %zu)", op, n);
    if (!aligned(p0, dt) || !aligned(p1, dt) || !aligned(p2, dt))
        return qt_error(QT_ERR_ARG, "%s: a tensor is not aligned to its %s element size", op,
                        qt_dtype_name(dt));
    return QT_OK;
}

template <typename T>
static void add_launch(cudaStream_t st, void *out, const void *a, const void *b, size_t n) {
    QT_LAUNCH(add_elem<T>, ew_blocks(n), EW_THREADS, 0, st, (T *)out, (const T *)a,
              (const T *)b, n);
}
template <typename T>
static void bias_add_launch(cudaStream_t st, void *out, const void *bias, size_t n, int OC) {
    QT_LAUNCH(bias_add_elem<T>, ew_blocks(n), EW_THREADS, 0, st, (T *)out, (const T *)bias, n,
              OC);
}
template <typename T>
static void bias_grad_launch(cudaStream_t st, void *db, const void *dout, int N, int OC) {
    const dim3 block(EW_COLS, EW_ROW_LANES), grid(QT_CEIL_DIV(OC, EW_COLS));
    QT_LAUNCH(bias_grad_colblock<T>, grid, block, 0, st, (T *)db, (const T *)dout, N, OC);
}
// cast from S to each destination type.
template <typename S>
static void cast_launch(cudaStream_t st, qt_dtype dst_dt, void *dst, const void *src,
                        size_t n) {
    switch (dst_dt) {
    case QT_DTYPE_F32:
        QT_LAUNCH(cast_elem<float, S>, ew_blocks(n), EW_THREADS, 0, st, (float *)dst,
                  (const S *)src, n);
        break;
    case QT_DTYPE_F16:
        QT_LAUNCH(cast_elem<__half, S>, ew_blocks(n), EW_THREADS, 0, st, (__half *)dst,
                  (const S *)src, n);
        break;
    default:
        QT_LAUNCH(cast_elem<__nv_bfloat16, S>, ew_blocks(n), EW_THREADS, 0, st,
                  (__nv_bfloat16 *)dst, (const S *)src, n);
        break;
    }
}

extern "C" qt_status qt_cuda_add(qt_cuda_stream s, qt_dtype dt, void *out, const void *a,
                                 const void *b, size_t n) {
    const char *op = "cuda add";
    QT_TRY(check_elem(op, dt, n, out, a, b));
    if (n == 0) return QT_OK;
    DT_DISPATCH(dt, add_launch, (cudaStream_t)s, out, a, b, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_bias_add(qt_cuda_stream s, qt_dtype dt, void *out,
                                      const void *bias, int N, int OC) {
    const char *op = "cuda bias_add";
    if (N < 0 || OC < 1)
        return qt_error(QT_ERR_ARG, "%s: N = %d, OC = %d; need N >= 0 and OC >= 1", op, N, OC);
    const size_t n = (size_t)N * (size_t)OC;
    QT_TRY(check_elem(op, dt, n, out, bias, bias));
    if (n == 0) return QT_OK;
    DT_DISPATCH(dt, bias_add_launch, (cudaStream_t)s, out, bias, n, OC);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_bias_grad(qt_cuda_stream s, qt_dtype dt, void *db, const void *dout,
                                       int N, int OC) {
    const char *op = "cuda bias_grad";
    if (N < 0 || OC < 1)
        return qt_error(QT_ERR_ARG, "%s: N = %d, OC = %d; need N >= 0 and OC >= 1", op, N, OC);
    const size_t n = (size_t)N * (size_t)OC;
    QT_TRY(check_elem(op, dt, n, db, dout, dout));
    if (n == 0) return QT_OK;
    DT_DISPATCH(dt, bias_grad_launch, (cudaStream_t)s, db, dout, N, OC);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_cast(qt_cuda_stream s, qt_dtype dst_dt, void *dst, qt_dtype src_dt,
                                  const void *src, size_t n) {
    const char *op = "cuda cast";
    QT_TRY(check_elem(op, dst_dt, n, dst, dst, dst));
    QT_TRY(check_elem(op, src_dt, n, src, src, src));
    if (n == 0) return QT_OK;
    // Overlap: only dst == src with equal element sizes is safe (each element is read, then
    // written, by the same thread).
    const size_t dbytes = n * qt_dtype_size(dst_dt), sbytes = n * qt_dtype_size(src_dt);
    const uintptr_t d0 = (uintptr_t)dst, s0 = (uintptr_t)src;
    const int overlap = d0 < s0 + sbytes && s0 < d0 + dbytes;
    if (overlap && !(d0 == s0 && dbytes == sbytes))
        return qt_error(QT_ERR_ARG,
                        "%s: dst (%s) and src (%s) overlap; cast in place only between dtypes "
                        "of the same size, else into a separate buffer",
                        op, qt_dtype_name(dst_dt), qt_dtype_name(src_dt));
    if (dst == src && dst_dt == src_dt) return QT_OK;
    DT_DISPATCH(src_dt, cast_launch, (cudaStream_t)s, dst_dt, dst, src, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

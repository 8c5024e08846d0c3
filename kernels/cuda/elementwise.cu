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
// order (per-thread strided rows, a fixed-shape tree, then the row slices in order: see
// common.cuh's qt_colsum_finish), whatever order the blocks run in.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include <stdint.h>

#include "kernels/elementwise.h"

// ---- launch constants -----------------------------------------------------------------------
// Element-wise kernels: common.cuh's QT_EW_THREADS a block, grid-stride over at most
// QT_EW_MAX_BLOCKS blocks, in 16-byte chunks (qt_vec) when the launcher finds every pointer
// 16-byte aligned, one element at a time otherwise.
// bias_grad: a block owns EW_COLS columns (one warp wide: coalesced row loads) and
// EW_ROW_LANES threads per column stride over the rows; a tree adds their partial sums.
// EW_ROW_LANES is a power of 2.
#define EW_COLS 32
#define EW_ROW_LANES 16

// ---- device helpers: one chunk of each element-wise op ---------------------------------------
// apply<W>(i) handles elements [i, i + W) through qt_vec<., W> (see qt_grid_chunks): W = 1 is
// the scalar path, W = 16 bytes' worth the vector path. Each chunk is read whole before it is
// written, so an output may alias an input element for element, as the contract allows.

// out = a + b.
template <typename T> struct add_chunk {
    T *out;
    const T *a, *b;
    template <int W> __device__ __forceinline__ void apply(size_t i) const {
        const qt_vec<T, W> va = qt_vec<T, W>::load(a + i), vb = qt_vec<T, W>::load(b + i);
        qt_vec<T, W> vo;
        QT_UNROLL
        for (int k = 0; k < W; k++)
            vo.set(k, va.get(k) + vb.get(k));
        vo.store(out + i);
    }
};

// out (N, OC) += bias (OC) over the flattened N * OC elements (column i % OC). With W > 1 the
// launcher checked OC % W == 0, so a chunk lies in one row and its bias chunk is aligned.
template <typename T> struct bias_add_chunk {
    T *out;
    const T *bias;
    int OC;
    template <int W> __device__ __forceinline__ void apply(size_t i) const {
        qt_vec<T, W> vo = qt_vec<T, W>::load(out + i);
        const qt_vec<T, W> vb = qt_vec<T, W>::load(bias + i % (size_t)OC);
        QT_UNROLL
        for (int k = 0; k < W; k++)
            vo.set(k, vo.get(k) + vb.get(k));
        vo.store(out + i);
    }
};

// cast: qt_map_chunk with the identity: through fp32, which holds fp16 and bf16 values
// exactly, so the store is the only rounding.
struct cast_fn {
    __device__ __forceinline__ float operator()(float x) const { return x; }
};

// ---- kernels --------------------------------------------------------------------------------
// Element-wise kernels: qt_grid_chunks<W> is the thread -> data mapping and the bounds guard
// (thread g takes the W-element chunks g, g + gridDim.x * blockDim.x, ..., then the n % W tail
// elements likewise). W > 1: every pointer 16-byte aligned (checked by the launcher). No
// shared memory. Pointers are not __restrict__: outputs may alias inputs element for element.

template <typename T, int W>
static __global__ void __launch_bounds__(QT_EW_THREADS)
    add_elem(T *out, const T *a, const T *b, size_t n) {
    qt_grid_chunks<W>(n, add_chunk<T>{out, a, b});
}

template <typename T, int W>
static __global__ void __launch_bounds__(QT_EW_THREADS)
    bias_add_elem(T *out, const T *bias, size_t n, int OC) {
    qt_grid_chunks<W>(n, bias_add_chunk<T>{out, bias, OC});
}

template <typename D, typename S, int W>
static __global__ void __launch_bounds__(QT_EW_THREADS) cast_elem(D *dst, const S *src, size_t n) {
    qt_grid_chunks<W>(n, qt_map_chunk<D, S, cast_fn>{dst, src, cast_fn()});
}

// db (OC) += column sums of dout (N, OC).
// Thread mapping: block (EW_COLS, EW_ROW_LANES), grid (ceil(OC / EW_COLS), S): block
// (x, split) sums the rows of slice `split` (qt_colsum_slice) of columns x EW_COLS ...; thread
// (tx, ty) owns column x EW_COLS + tx and sums the slice's rows r0 + ty, r0 + ty +
// EW_ROW_LANES, ... in order; the EW_ROW_LANES partials of a column are then added by
// qt_block_tree over ty, and qt_colsum_finish adds the S slices in order. Every order depends
// only on N and OC: deterministic.
// Shared memory: one (EW_ROW_LANES, EW_COLS + 1) fp32 tile (+1: no bank conflicts).
// Guards: threads of columns >= OC add nothing but take part in every barrier.
template <typename T>
static __global__ void __launch_bounds__(EW_COLS *EW_ROW_LANES)
    bias_grad_colblock(T *db, const T *dout, int N, int OC, int S, void *scratch) {
    QT_SHARED(float, part, EW_ROW_LANES, EW_COLS + 1);
    const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * EW_COLS + tx;
    int r0, r1;
    qt_colsum_slice(N, S, (int)blockIdx.y, &r0, &r1);
    float acc = 0.0f;
    if (c < OC)
        for (int n = r0 + ty; n < r1; n += EW_ROW_LANES) acc += qt_ld(dout + (size_t)n * OC + c);
    part[ty][tx] = acc;
    qt_block_tree<EW_ROW_LANES>(ty, [&](int dst, int src) { part[dst][tx] += part[src][tx]; });
    T *const out[1] = {db};
    const float sum[1] = {part[0][tx]};
    qt_colsum_finish(out, sum, ty, c, OC, S, scratch);
}

// ---- launchers ------------------------------------------------------------------------------

template <typename T>
static void add_launch(cudaStream_t st, void *out, const void *a, const void *b, size_t n) {
    const int w = qt_vec_aligned(out, a, b) ? qt_vec<T>::width : 1;
    QT_LAUNCH(w > 1 ? add_elem<T, qt_vec<T>::width> : add_elem<T, 1>, qt_ew_blocks(n, w),
              QT_EW_THREADS, 0, st, (T *)out, (const T *)a, (const T *)b, n);
}
template <typename T>
static void bias_add_launch(cudaStream_t st, void *out, const void *bias, size_t n, int OC) {
    const int v = qt_vec<T>::width;
    const int w = qt_vec_aligned(out, bias) && OC % v == 0 ? v : 1;
    QT_LAUNCH(w > 1 ? bias_add_elem<T, v> : bias_add_elem<T, 1>, qt_ew_blocks(n, w), QT_EW_THREADS,
              0, st, (T *)out, (const T *)bias, n, OC);
}
template <typename T>
static void bias_grad_launch(cudaStream_t st, void *db, const void *dout, int N, int OC,
                             void *scratch) {
    const int S = qt_colsum_splits(N, OC, EW_COLS, 1, scratch);
    const dim3 block(EW_COLS, EW_ROW_LANES), grid(QT_CEIL_DIV(OC, EW_COLS), S);
    QT_LAUNCH(bias_grad_colblock<T>, grid, block, 0, st, (T *)db, (const T *)dout, N, OC, S,
              scratch);
}
// cast from S into D: chunks of 16 bytes of the narrower type (32 of the wider one).
template <typename D, typename S>
static void cast_launch_to(cudaStream_t st, void *dst, const void *src, size_t n) {
    constexpr int v = 16 / (int)(sizeof(D) < sizeof(S) ? sizeof(D) : sizeof(S));
    const int w = qt_vec_aligned(dst, src) ? v : 1;
    QT_LAUNCH(w > 1 ? cast_elem<D, S, v> : cast_elem<D, S, 1>, qt_ew_blocks(n, w), QT_EW_THREADS, 0,
              st, (D *)dst, (const S *)src, n);
}
template <typename S>
static void cast_launch(cudaStream_t st, qt_dtype dst_dt, void *dst, const void *src, size_t n) {
    qt_dtype_dispatch(
        dst_dt, [&](auto d) { cast_launch_to<typename decltype(d)::type, S>(st, dst, src, n); });
}

static qt_status check_bias_shape(const char *op, int N, int OC) {
    if (N < 0 || OC < 1)
        return qt_error(QT_ERR_ARG, "%s: N = %d, OC = %d; need N >= 0 and OC >= 1", op, N, OC);
    return QT_OK;
}

extern "C" qt_status qt_cuda_add(qt_cuda_stream s, qt_dtype dt, void *out, const void *a,
                                 const void *b, size_t n) {
    const char *op = "cuda add";
    QT_TRY(qt_check_elementwise(op, dt, n, qt_arg("out", out, dt), qt_arg("a", a, dt),
                                qt_arg("b", b, dt)));
    if (n == 0) return QT_OK;
    QT_DTYPE_DISPATCH(dt, add_launch, (cudaStream_t)s, out, a, b, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_bias_add(qt_cuda_stream s, qt_dtype dt, void *out,
                                      const void *bias, int N, int OC) {
    const char *op = "cuda bias_add";
    const size_t n = (size_t)N * (size_t)OC;
    QT_TRY(check_bias_shape(op, N, OC));
    QT_TRY(qt_check_elementwise(op, dt, n, qt_arg("out", out, dt), qt_arg("bias", bias, dt)));
    if (n == 0) return QT_OK;
    QT_DTYPE_DISPATCH(dt, bias_add_launch, (cudaStream_t)s, out, bias, n, OC);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" size_t qt_cuda_colsum_scratch_bytes(void) { return QT_COLSUM_SCRATCH_BYTES; }

extern "C" qt_status qt_cuda_colsum_scratch_init(qt_cuda_stream s, void *scratch) {
    if (!scratch) return qt_error(QT_ERR_ARG, "qt_cuda_colsum_scratch_init: scratch is NULL");
    // The counters start at 0; each split launch leaves them at 0 again.
    QT_CHECK_CUDA(cudaMemsetAsync(static_cast<float *>(scratch) + QT_COLSUM_SCRATCH_PARTIALS, 0,
                                  QT_COLSUM_SCRATCH_COUNTERS * sizeof(unsigned),
                                  (cudaStream_t)s));
    return QT_OK;
}

extern "C" qt_status qt_cuda_bias_grad(qt_cuda_stream s, qt_dtype dt, void *db, const void *dout,
                                       int N, int OC, void *scratch) {
    const char *op = "cuda bias_grad";
    QT_TRY(check_bias_shape(op, N, OC));
    QT_TRY(qt_check_elementwise(op, dt, (size_t)N, qt_arg("db", db, dt), qt_arg("dout", dout, dt),
                                qt_arg("scratch", (const float *)scratch, QT_ARG_OPTIONAL)));
    if (N == 0) return QT_OK;
    QT_DTYPE_DISPATCH(dt, bias_grad_launch, (cudaStream_t)s, db, dout, N, OC, scratch);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

extern "C" qt_status qt_cuda_cast(qt_cuda_stream s, qt_dtype dst_dt, void *dst, qt_dtype src_dt,
                                  const void *src, size_t n) {
    const char *op = "cuda cast";
    QT_TRY(qt_check_dtype(op, dst_dt));
    QT_TRY(qt_check_dtype(op, src_dt));
    if (n == 0) return QT_OK;
    QT_TRY(qt_check_tensors(op, qt_arg("dst", dst, dst_dt), qt_arg("src", src, src_dt)));
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
    QT_DTYPE_DISPATCH(src_dt, cast_launch, (cudaStream_t)s, dst_dt, dst, src, n);
    QT_CHECK_LAUNCH(op);
    return QT_OK;
}

// ==== cost model (issue 10; base/cost.h) ======================================================
// One kernel per call. add: reads a, b, writes out (3 E n), one add per element. bias_add:
// reads and writes out (+=, 2 E N OC), reads bias (E OC), one add per element. bias_grad:
// reads dout (E N OC) and db (+=, E OC), writes db (E OC), one add per element of dout; split
// over S row slices, also the fp32 partials (S OC stored, S OC read back).
// cast: reads the source, writes the destination (n times both sizes), one conversion each;
// nothing when it would cast a tensor onto itself.

extern "C" void qt_cuda_add_cost(qt_cost *c, qt_dtype dt, const void *out, const void *a,
                                 const void *b, size_t n) {
    (void)out, (void)a, (void)b;
    if (n == 0) return;
    qt_cost_kernel(c, "add_elem", 3.0 * (double)qt_dtype_size(dt) * (double)n, (double)n);
}

extern "C" void qt_cuda_bias_add_cost(qt_cost *c, qt_dtype dt, const void *out, const void *bias,
                                      int N, int OC) {
    (void)out, (void)bias;
    if (N <= 0 || OC < 1) return;
    const double n = (double)N * (double)OC, E = (double)qt_dtype_size(dt);
    qt_cost_kernel(c, "bias_add_elem", E * (2 * n + OC), n);
}

extern "C" void qt_cuda_bias_grad_cost(qt_cost *c, qt_dtype dt, const void *db, const void *dout,
                                       int N, int OC, const void *scratch) {
    (void)db, (void)dout;
    if (N <= 0 || OC < 1) return;
    const double n = (double)N * (double)OC, E = (double)qt_dtype_size(dt);
    const double S = qt_colsum_splits(N, OC, EW_COLS, 1, scratch);
    qt_cost_kernel(c, "bias_grad_colblock", E * (n + 2.0 * OC) + (S > 1 ? 8.0 * S * OC : 0.0), n);
}

extern "C" void qt_cuda_cast_cost(qt_cost *c, qt_dtype dst_dt, const void *dst, qt_dtype src_dt,
                                  const void *src, size_t n) {
    if (n == 0 || (dst == src && dst_dt == src_dt)) return;
    const double N = (double)n;
    qt_cost_kernel(c, "cast_elem", N * (double)(qt_dtype_size(dst_dt) + qt_dtype_size(src_dt)), N);
}

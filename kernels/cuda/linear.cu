// linear.cu: qt_cuda_gemm, the batched row-major GEMM of qt_gemm_desc (base/params.h)
// on fp32, fp16 or bf16 tensors with fp32 accumulation.
//
//   C_i (M, N) = alpha * op(A_i) op(B_i) + beta * C_i,  i in [0, batch),
//   X_i = X + (i / inner) * x_outer + (i % inner) * x_inner   (elements)
//
// CPU twin: qt_cpu_gemm in kernels/cpu/linear.c (cblas_sgemm per batch entry).
// Contract: C is overwritten with the result rounded once to dt; with beta == 0 C is never read
// (it may hold NaN, as cuBLAS allows). A and B are not modified and may overlap each other;
// C_i must not overlap A, B or another C_j.
//
// Two builds of one API:
//   - GPU (nvcc): cuBLASLt. Row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T,
//     so every call swaps the operands and passes the row-major leading dimensions unchanged.
//     CUBLAS_COMPUTE_32F (true fp32 accumulation, never TF32) with fp32 alpha/beta. The
//     two-level batch becomes one strided-batched call when a single stride reaches every entry,
//     else (attention's (b, h) slices of (B, T, 3C)) one pointer-array call over the whole
//     batch, its table of entry addresses written on the device by gemm_pointer_table; only
//     where cuBLASLt declines pointer arrays (or the batch exceeds GEMM_PTR_MAX) one
//     strided-batched call per index of the shorter level. Pointer and stride
//     alignments are told to the heuristic (its default assumes 256-byte aligned operands, and
//     attention addresses head slices at any 2-byte offset). Chosen algorithms are cached.
//   - emulator (QT_CUEMU): device memory is host memory; each entry is widened to fp32,
//     multiplied with cblas_sgemm and rounded to dt, which is what the GPU path computes up to
//     the summation order. A two-level batch takes its entries' addresses from the pointer
//     table gemm_pointer_table wrote, as the GPU's pointer-array call does, so the emulated
//     tests check that kernel.
// qt_cuda_gemm_bias: a single GEMM with a bias row added in its epilogue (CUBLASLT_EPILOGUE_BIAS
// on the GPU; the emulator adds it in fp32 before the one rounding to dt): a linear layer's
// forward in one launch, its output rounded once instead of twice.
// Every cuBLASLt and CUDA call is checked; a failure returns QT_ERR_CUDA naming the call,
// file:line and the library's message.
#include "qt_cuda_compat.h"
#include "base/cuda_check.h"
#include "common.cuh"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/activation.h"
#include "kernels/linear.h"

#if QT_CUDA_EMULATED
#include <cblas.h>
#else
#include <cublasLt.h>
#endif

// Device workspace for cuBLASLt when the caller asks for the default: 32 MiB is what NVIDIA
// recommends for Hopper (sm_90); Ampere needs less.
#define GEMM_DEFAULT_WORKSPACE ((size_t)32 << 20)

// ---- argument checks (both builds) ---------------------------------------------------------

static qt_status gemm_check(qt_dtype dt, const qt_gemm_desc *d, const void *A, const void *B,
                            const void *C) {
    if (!d) return qt_error(QT_ERR_ARG, "qt_cuda_gemm: the descriptor is NULL");
    QT_TRY(qt_check_dtype("qt_cuda_gemm", dt));
    if (d->M < 1 || d->N < 1 || d->K < 1)
        return qt_error(QT_ERR_ARG, "qt_cuda_gemm: M %d, N %d, K %d must all be >= 1", d->M,
                        d->N, d->K);
    if (d->batch < 1 || d->inner < 1 || d->batch % d->inner != 0)
        return qt_error(QT_ERR_ARG,
                        "qt_cuda_gemm: batch %d is not a positive multiple of inner %d",
                        d->batch, d->inner);
    // Row-major storage: A is (M, K), or (K, M) when transposed; B (K, N) or (N, K).
    int a_cols = d->trans_a ? d->M : d->K, b_cols = d->trans_b ? d->K : d->N;
    if (d->lda < a_cols || d->ldb < b_cols || d->ldc < d->N)
        return qt_error(QT_ERR_ARG,
                        "qt_cuda_gemm: leading dimensions lda %d, ldb %d, ldc %d are below the "
                        "row lengths %d, %d, %d (M %d, N %d, K %d, trans %d%d)",
                        d->lda, d->ldb, d->ldc, a_cols, b_cols, d->N, d->M, d->N, d->K,
                        d->trans_a, d->trans_b);
    return qt_check_tensors("qt_cuda_gemm", qt_arg("A", A, dt), qt_arg("B", B, dt),
                            qt_arg("C", C, dt));
}

// ---- the pointer table of a two-level batch (both builds) -----------------------------------
// When no single stride reaches every batch entry, the whole batch is one cuBLASLt call in
// pointer-array mode (CUBLASLT_BATCH_MODE_POINTER_ARRAY) instead of min(outer, inner) strided
// calls: gemm_pointer_table writes the entries' addresses into the handle's device table, which
// that call reads. Stream order makes one table per handle enough: the next call's kernel
// rewrites it only after this call's GEMM has run (a handle serves one stream at a time).

// Batch entries of one pointer-array call; larger batches take the per-level calls. 16384
// covers B * H of any config here (OPT-125m: 192) in a 384 KiB table.
#define GEMM_PTR_MAX 16384
// Threads of gemm_pointer_table's blocks: one thread per entry, a batch in one or a few blocks.
#define GEMM_PTR_THREADS 256

// The layouts that need the table: a two-level batch whose levels no single stride reaches.
static int gemm_needs_table(const qt_gemm_desc *d) {
    const int outer = d->batch / d->inner, inner = d->inner;
    return d->batch > 1 && inner > 1 && outer > 1 &&
           !(d->a_outer == inner * d->a_inner && d->b_outer == inner * d->b_inner &&
             d->c_outer == inner * d->c_inner);
}

// table (3, batch): row 0 the A_i, row 1 the B_i, row 2 the C_i of qt_gemm_desc's addressing
// (X_i = X + ((i / inner) x_outer + (i % inner) x_inner) es bytes). Thread i of the grid writes
// entry i of each row; threads past the batch return (no barrier follows).
static __global__ void gemm_pointer_table(const char *A, const char *B, char *C, int es,
                                          qt_gemm_desc d, void **table) {
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= d.batch) return;
    const int64_t o = i / d.inner, in = i % d.inner;
    table[i] = (void *)(A + (o * d.a_outer + in * d.a_inner) * es);
    table[d.batch + i] = (void *)(B + (o * d.b_outer + in * d.b_inner) * es);
    table[2 * d.batch + i] = (void *)(C + (o * d.c_outer + in * d.c_inner) * es);
}

// Writes d's pointer table into `table` (device, 3 * GEMM_PTR_MAX entries) on stream s.
static qt_status gemm_write_table(cudaStream_t s, qt_dtype dt, const qt_gemm_desc *d,
                                  const void *A, const void *B, void *C, void **table) {
    QT_LAUNCH(gemm_pointer_table, QT_CEIL_DIV(d->batch, GEMM_PTR_THREADS), GEMM_PTR_THREADS, 0,
              s, (const char *)A, (const char *)B, (char *)C, (int)qt_dtype_size(dt), *d, table);
    QT_CHECK_LAUNCH("qt_cuda_gemm (pointer table)");
    return QT_OK;
}

// The handle's pointer table (device), allocated with the handle.
static qt_status gemm_alloc_table(void ***table) {
    cudaError_t err = cudaMalloc((void **)table, 3 * (size_t)GEMM_PTR_MAX * sizeof(void *));
    if (err != cudaSuccess) {
        *table = NULL;
        return qt_error(QT_ERR_CUDA, "cudaMalloc(%zu bytes of GEMM pointer table) failed at "
                        "%s:%d: %s", 3 * (size_t)GEMM_PTR_MAX * sizeof(void *), __FILE__,
                        __LINE__, cudaGetErrorString(err));
    }
    return QT_OK;
}

// ---- kept pointer tables (both builds) ----------------------------------------------------
// A caller that runs the same two-level GEMM on the same buffers again and again (the CUDA
// backend: attention's six per layer, every step) writes its table once into memory of its
// own and passes it to qt_cuda_gemm_tabled, which then launches the GEMM alone.

extern "C" size_t qt_cuda_gemm_table_entries(const qt_gemm_desc *d) {
    if (!d || d->batch < 1 || d->inner < 1 || d->batch % d->inner != 0) return 0;
    return gemm_needs_table(d) && d->batch <= GEMM_PTR_MAX ? 3 * (size_t)d->batch : 0;
}

extern "C" qt_status qt_cuda_gemm_table_write(qt_cuda_stream s, qt_dtype dt,
                                              const qt_gemm_desc *d, const void *A,
                                              const void *B, void *C, void **table) {
    QT_TRY(gemm_check(dt, d, A, B, C));
    if (!qt_cuda_gemm_table_entries(d))
        return qt_error(QT_ERR_ARG, "qt_cuda_gemm_table_write: batch %d inner %d needs no "
                        "pointer table (qt_cuda_gemm_table_entries is 0); call qt_cuda_gemm",
                        d->batch, d->inner);
    QT_TRY(qt_check_tensors("qt_cuda_gemm_table_write", qt_arg("table", (const void **)table)));
    return gemm_write_table((cudaStream_t)s, dt, d, A, B, C, table);
}

// qt_cuda_gemm_tabled's arguments: a valid GEMM that has a table, and the table.
static qt_status gemm_tabled_check(qt_dtype dt, const qt_gemm_desc *d, const void *A,
                                   const void *B, const void *C, void *const *table) {
    QT_TRY(gemm_check(dt, d, A, B, C));
    if (!qt_cuda_gemm_table_entries(d))
        return qt_error(QT_ERR_ARG, "qt_cuda_gemm_tabled: batch %d inner %d needs no pointer "
                        "table; call qt_cuda_gemm", d->batch, d->inner);
    return qt_check_tensors("qt_cuda_gemm_tabled", qt_arg("table", (const void *const *)table));
}

// qt_cuda_gemm_bias's arguments: a valid single GEMM and a bias of dt.
static qt_status gemm_bias_check(qt_dtype dt, const qt_gemm_desc *d, const void *A,
                                 const void *B, const void *C, const void *bias) {
    QT_TRY(gemm_check(dt, d, A, B, C));
    if (d->batch != 1)
        return qt_error(QT_ERR_ARG, "qt_cuda_gemm_bias: batch %d; the bias epilogue takes a "
                        "single GEMM (batch 1)", d->batch);
    return qt_check_tensors("qt_cuda_gemm_bias", qt_arg("bias", bias, dt));
}

// The epilogue of one GEMM call (both builds), applied to each fp32 result before its one
// rounding to dt: the bias added, then DGELU's gelu'(aux) factor, or the forward's activation
// with its input kept in aux. aux is addressed like C (ldc).
typedef struct {
    const void *bias; // (N) of dt, or NULL
    int act;          // 0 (none) or a qt_linear_act
    int dgelu;        // 1: C = gelu'(aux) * result
    void *aux;        // (M, N, ldc) of dt: GELU's pre written, or DGELU's read; NULL: none
} gemm_epi;

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" int qt_cuda_gemm_act_supported(qt_dtype dt, const qt_gemm_desc *d, const void *A,
                                          const void *B, const void *C, const void *bias,
                                          const void *pre) {
    (void)A, (void)B, (void)bias; // cuBLASLt takes them at any alignment (told to the heuristic)
    return d && (dt == QT_DTYPE_F16 || dt == QT_DTYPE_BF16) && d->batch == 1 &&
           d->alpha == 1.0f && d->beta == 0.0f && d->ldc % 8 == 0 && aligned16(C) &&
           (!pre || aligned16(pre));
}

// The arguments of qt_cuda_gemm_act_fwd (dgelu 0) and qt_cuda_gemm_dgelu (dgelu 1).
static qt_status gemm_act_check(const char *op, qt_dtype dt, const qt_gemm_desc *d,
                                const void *A, const void *B, const void *C, const void *bias,
                                int act, const void *pre, int dgelu) {
    QT_TRY(gemm_check(dt, d, A, B, C));
    if (!dgelu && act != QT_LINEAR_ACT_GELU && act != QT_LINEAR_ACT_RELU)
        return qt_error(QT_ERR_ARG, "%s: activation %d is neither GELU (%d) nor ReLU (%d)", op,
                        act, (int)QT_LINEAR_ACT_GELU, (int)QT_LINEAR_ACT_RELU);
    if (!dgelu && act == QT_LINEAR_ACT_RELU && pre)
        return qt_error(QT_ERR_ARG, "%s: ReLU keeps no pre (its backward reads the output); "
                        "pass NULL", op);
    if (dgelu && !pre) return qt_error(QT_ERR_ARG, "%s: pre (GELU's input) is NULL", op);
    if (!qt_cuda_gemm_act_supported(dt, d, A, B, C, bias, pre))
        return qt_error(QT_ERR_ARG,
                        "%s: %s, batch %d, alpha %g, beta %g, ldc %d, C at %p, pre at %p: the "
                        "activation epilogue takes fp16/bf16, batch 1, alpha 1, beta 0, ldc a "
                        "multiple of 8 and 16-byte aligned C and pre; compose qt_cuda_gemm and "
                        "the activation kernels instead", op, qt_dtype_name(dt), d->batch,
                        (double)d->alpha, (double)d->beta, d->ldc, C, pre);
    if (pre && (const char *)pre < (const char *)C + (size_t)d->M * d->ldc * qt_dtype_size(dt) &&
        (const char *)C < (const char *)pre + (size_t)d->M * d->ldc * qt_dtype_size(dt))
        return qt_error(QT_ERR_ARG, "%s: pre overlaps C", op);
    if (bias) QT_TRY(qt_check_tensors(op, qt_arg("bias", bias, dt)));
    return pre ? qt_check_tensors(op, qt_arg("pre", pre, dt)) : QT_OK;
}

#if QT_CUDA_EMULATED
// ================================ emulated build ==============================================

// The handle: fp32 copies of one batch entry's operands, grown on demand and reused.
typedef struct {
    float *buf[3]; // A, B, C
    size_t cap[3]; // elements
    void **table;  // (3, GEMM_PTR_MAX) device: gemm_pointer_table's output
} gemm_emu;

extern "C" qt_status qt_cuda_gemm_create(void **handle, size_t workspace_bytes) {
    (void)workspace_bytes; // the CPU GEMM needs no device workspace
    if (!handle) return qt_error(QT_ERR_ARG, "qt_cuda_gemm_create: handle is NULL");
    gemm_emu *h = (gemm_emu *)calloc(1, sizeof *h);
    if (!h) return qt_error(QT_ERR_OOM, "qt_cuda_gemm_create: cannot allocate the handle");
    qt_status st = gemm_alloc_table(&h->table);
    if (st != QT_OK) {
        free(h);
        return st;
    }
    *handle = h;
    return QT_OK;
}

extern "C" void qt_cuda_gemm_destroy(void *handle) {
    gemm_emu *h = (gemm_emu *)handle;
    if (!h) return;
    for (int i = 0; i < 3; i++) free(h->buf[i]);
    if (h->table) (void)cudaFree(h->table);
    free(h);
}

// The 16-bit storage types <-> fp32 (fp32 operands are multiplied where they lie).
static float widen(qt_dtype dt, const void *p, size_t i) {
    return dt == QT_DTYPE_F16 ? __half2float(((const __half *)p)[i])
                              : __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

static void narrow(qt_dtype dt, void *p, size_t i, float x) {
    if (dt == QT_DTYPE_F16)
        ((__half *)p)[i] = __float2half_rn(x);
    else
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(x);
}

static qt_status emu_reserve(gemm_emu *h, int which, size_t n) {
    if (h->cap[which] >= n) return QT_OK;
    float *p = (float *)realloc(h->buf[which], n * sizeof(float));
    if (!p) return qt_error(QT_ERR_OOM, "qt_cuda_gemm: cannot allocate %zu floats", n);
    h->buf[which] = p;
    h->cap[which] = n;
    return QT_OK;
}

// dst (rows, cols) dense fp32 = src (rows, cols) with leading dimension ld, in dt (16-bit).
static void widen_matrix(float *dst, qt_dtype dt, const void *src, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)r * cols + c] = widen(dt, src, (size_t)r * ld + c);
}

// One element's storage <-> fp32 for any dt (the epilogue's bias and aux).
static float epi_load(qt_dtype dt, const void *p, size_t i) {
    return dt == QT_DTYPE_F32 ? ((const float *)p)[i] : widen(dt, p, i);
}
static void epi_store(qt_dtype dt, void *p, size_t i, float x) {
    if (dt == QT_DTYPE_F32)
        ((float *)p)[i] = x;
    else
        narrow(dt, p, i, x);
}

// e applied to v, the fp32 result of C's element (r, col) at offset `at` (r ldc + col), as
// cuBLASLt's epilogue does before the rounding: activation.cu's fp32 GELU and ReLU.
static float epi_apply(qt_dtype dt, const gemm_epi *e, size_t at, int col, float v) {
    if (!e) return v;
    if (e->bias) v += epi_load(dt, e->bias, (size_t)col);
    if (e->dgelu) return gelu_act::bwd(v, epi_load(dt, e->aux, at));
    if (e->aux) epi_store(dt, e->aux, at, v);
    if (e->act == QT_LINEAR_ACT_GELU) return gelu_act()(v);
    if (e->act == QT_LINEAR_ACT_RELU) return relu_act()(v);
    return v;
}

// The GEMM of d, then the epilogue epi (NULL: none) on every element of each C_i before the
// rounding.
// A two-level batch reads its entries from `table` (NULL: the handle's), written first unless
// `write` is 0 (a kept table, already written for these A, B, C).
static qt_status gemm_emu_run(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                              const void *A, const void *B, void *C, const gemm_epi *epi,
                              gemm_emu *h, void *const *table, int write) {
    size_t es = qt_dtype_size(dt);
    int a_rows = d->trans_a ? d->K : d->M, a_cols = d->trans_a ? d->M : d->K;
    int b_rows = d->trans_b ? d->N : d->K, b_cols = d->trans_b ? d->K : d->N;
    CBLAS_TRANSPOSE ta = d->trans_a ? CblasTrans : CblasNoTrans;
    CBLAS_TRANSPOSE tb = d->trans_b ? CblasTrans : CblasNoTrans;
    if (dt != QT_DTYPE_F32) {
        QT_TRY(emu_reserve(h, 0, (size_t)a_rows * a_cols));
        QT_TRY(emu_reserve(h, 1, (size_t)b_rows * b_cols));
        QT_TRY(emu_reserve(h, 2, (size_t)d->M * d->N));
    }
    // As on the GPU: a two-level batch's entries come from the pointer table (the emulator
    // runs the kernel synchronously, so the table is complete on return).
    const int use_table = gemm_needs_table(d) && d->batch <= GEMM_PTR_MAX;
    void *const *tab = table ? table : h->table;
    if (use_table && write)
        QT_TRY(gemm_write_table((cudaStream_t)s, dt, d, A, B, C, (void **)tab));
    for (int i = 0; i < d->batch; i++) {
        int64_t o = i / d->inner, in = i % d->inner;
        const void *Ai = use_table ? tab[i] : QT_AT(A, es, o * d->a_outer + in * d->a_inner);
        const void *Bi = use_table ? tab[d->batch + i]
                                   : QT_AT(B, es, o * d->b_outer + in * d->b_inner);
        void *Ci = use_table ? tab[2 * d->batch + i]
                             : QT_AT(C, es, o * d->c_outer + in * d->c_inner);
        if (dt == QT_DTYPE_F32) {
            // beta == 0 must not propagate NaN from C: clear it rather than trust the BLAS.
            if (d->beta == 0.0f)
                for (int r = 0; r < d->M; r++)
                    memset((float *)Ci + (size_t)r * d->ldc, 0, (size_t)d->N * sizeof(float));
            cblas_sgemm(CblasRowMajor, ta, tb, d->M, d->N, d->K, d->alpha, (const float *)Ai,
                        d->lda, (const float *)Bi, d->ldb, d->beta, (float *)Ci, d->ldc);
            if (epi)
                for (int r = 0; r < d->M; r++)
                    for (int col = 0; col < d->N; col++) {
                        const size_t at = (size_t)r * d->ldc + col;
                        ((float *)Ci)[at] = epi_apply(dt, epi, at, col, ((float *)Ci)[at]);
                    }
            continue;
        }
        float *a = h->buf[0], *b = h->buf[1], *c = h->buf[2];
        widen_matrix(a, dt, Ai, a_rows, a_cols, d->lda);
        widen_matrix(b, dt, Bi, b_rows, b_cols, d->ldb);
        if (d->beta != 0.0f)
            widen_matrix(c, dt, Ci, d->M, d->N, d->ldc);
        else
            memset(c, 0, (size_t)d->M * d->N * sizeof(float));
        cblas_sgemm(CblasRowMajor, ta, tb, d->M, d->N, d->K, d->alpha, a, a_cols, b, b_cols,
                    d->beta, c, d->N);
        for (int r = 0; r < d->M; r++)
            for (int col = 0; col < d->N; col++) {
                const size_t at = (size_t)r * d->ldc + col;
                narrow(dt, Ci, at, epi_apply(dt, epi, at, col, c[(size_t)r * d->N + col]));
            }
    }
    return QT_OK;
}

extern "C" qt_status qt_cuda_gemm(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                  const void *A, const void *B, void *C, void *handle) {
    gemm_emu *h = (gemm_emu *)handle;
    if (!h) return qt_error(QT_ERR_ARG, "qt_cuda_gemm: handle is NULL (qt_cuda_gemm_create)");
    QT_TRY(gemm_check(dt, d, A, B, C));
    return gemm_emu_run(s, dt, d, A, B, C, NULL, h, NULL, 1);
}

// The emulated GEMM reads every pointer table it is given: nothing is declined.
extern "C" int qt_cuda_gemm_declined(const void *handle) {
    (void)handle;
    return 0;
}

extern "C" qt_status qt_cuda_gemm_tabled(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                         const void *A, const void *B, void *C,
                                         void *const *table, void *handle) {
    gemm_emu *h = (gemm_emu *)handle;
    if (!h) return qt_error(QT_ERR_ARG, "qt_cuda_gemm_tabled: handle is NULL (qt_cuda_gemm_create)");
    QT_TRY(gemm_tabled_check(dt, d, A, B, C, table));
    return gemm_emu_run(s, dt, d, A, B, C, NULL, h, table, 0);
}

extern "C" qt_status qt_cuda_gemm_bias(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                       const void *A, const void *B, void *C, const void *bias,
                                       void *handle) {
    gemm_emu *h = (gemm_emu *)handle;
    if (!h) return qt_error(QT_ERR_ARG, "qt_cuda_gemm_bias: handle is NULL (qt_cuda_gemm_create)");
    QT_TRY(gemm_bias_check(dt, d, A, B, C, bias));
    const gemm_epi epi = {bias, 0, 0, NULL};
    return gemm_emu_run(s, dt, d, A, B, C, &epi, h, NULL, 1);
}

extern "C" qt_status qt_cuda_gemm_act_fwd(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                          const void *A, const void *B, void *C,
                                          const void *bias, qt_linear_act act, void *pre,
                                          void *handle) {
    gemm_emu *h = (gemm_emu *)handle;
    if (!h) return qt_error(QT_ERR_ARG, "qt_cuda_gemm_act_fwd: handle is NULL (qt_cuda_gemm_create)");
    QT_TRY(gemm_act_check("qt_cuda_gemm_act_fwd", dt, d, A, B, C, bias, (int)act, pre, 0));
    const gemm_epi epi = {bias, (int)act, 0, pre};
    return gemm_emu_run(s, dt, d, A, B, C, &epi, h, NULL, 1);
}

extern "C" qt_status qt_cuda_gemm_dgelu(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                        const void *A, const void *B, void *C, const void *pre,
                                        void *handle) {
    gemm_emu *h = (gemm_emu *)handle;
    if (!h) return qt_error(QT_ERR_ARG, "qt_cuda_gemm_dgelu: handle is NULL (qt_cuda_gemm_create)");
    QT_TRY(gemm_act_check("qt_cuda_gemm_dgelu", dt, d, A, B, C, NULL, 0, pre, 1));
    const gemm_epi epi = {NULL, 0, 1, (void *)pre};
    return gemm_emu_run(s, dt, d, A, B, C, &epi, h, NULL, 1);
}

#else
// ================================ GPU build (cuBLASLt) ========================================

// One strided-batched cuBLASLt problem; the key of the algorithm cache. Zero-filled before use
// so that it compares with memcmp.
typedef struct {
    int dt;
    int op_a, op_b;        // cublasOperation_t of the column-major operands (B, then A)
    int m, n, k;           // column-major sizes: N, M, K of the row-major problem
    int64_t lda, ldb, ldc; // of the column-major operands
    int count;             // batch count of the call
    int64_t sa, sb, sc;    // batch strides (elements); 0 when count == 1
    uint32_t align_a, align_b, align_c; // bytes, powers of two <= 256
    int beta_zero;
    int ptr_mode; // 1: pointer-array batch (the table), 0: strided
    int epilogue;        // cublasLtEpilogue_t (CUBLASLT_EPILOGUE_DEFAULT: none)
    uint32_t align_bias; // bytes
    uint32_t align_aux;  // bytes
} gemm_key;

#define GEMM_CACHE 64 // distinct GEMM shapes of a training run: a few per layer kind

// cuBLASLt's pointer-array batches (CUBLASLT_MATRIX_LAYOUT_BATCH_MODE) came with cuBLAS 12.9
// (the H200 run used 13.0); an older toolkit builds without them and every two-level batch
// takes the strided calls, as where cuBLASLt declines a shape.
#if CUBLAS_VERSION >= 120900
#define GEMM_LT_POINTER_ARRAY 1
#else
#define GEMM_LT_POINTER_ARRAY 0
#endif

typedef struct {
    cublasLtHandle_t lt;
    void *workspace; // device, workspace_bytes
    size_t workspace_bytes;
    void **table; // (3, GEMM_PTR_MAX) device: gemm_pointer_table's output
    gemm_key keys[GEMM_CACHE];
    cublasLtMatmulAlgo_t algos[GEMM_CACHE];
    int declined[GEMM_CACHE]; // 1: cuBLASLt has no pointer-array algorithm for this key
    int n_cached, next_evict;
    int declined_uncached;    // pointer-array calls declined without a key (an old cuBLAS)
} gemm_gpu;

extern "C" qt_status qt_cuda_gemm_create(void **handle, size_t workspace_bytes) {
    if (!handle) return qt_error(QT_ERR_ARG, "qt_cuda_gemm_create: handle is NULL");
    qt_status st = QT_OK;
    gemm_gpu *h = (gemm_gpu *)calloc(1, sizeof *h);
    if (!h) return qt_error(QT_ERR_OOM, "qt_cuda_gemm_create: cannot allocate the handle");
    h->workspace_bytes = workspace_bytes ? workspace_bytes : GEMM_DEFAULT_WORKSPACE;
    QT_CHECK_CUBLASLT(cublasLtCreate(&h->lt));
    {
        cudaError_t err = cudaMalloc(&h->workspace, h->workspace_bytes);
        if (err != cudaSuccess) {
            st = qt_error(QT_ERR_CUDA, "cudaMalloc(%zu bytes of cuBLASLt workspace) failed at "
                          "%s:%d: %s", h->workspace_bytes, __FILE__, __LINE__,
                          cudaGetErrorString(err));
            h->workspace = NULL;
            goto out;
        }
    }
    st = gemm_alloc_table(&h->table);
    if (st != QT_OK) goto out;
    *handle = h;
    return QT_OK;
out:
    qt_cuda_gemm_destroy(h);
    return st;
}

extern "C" void qt_cuda_gemm_destroy(void *handle) {
    gemm_gpu *h = (gemm_gpu *)handle;
    if (!h) return;
    // Teardown cannot report: the errors of a dying context have nowhere to go.
    if (h->workspace) (void)cudaFree(h->workspace);
    if (h->table) (void)cudaFree(h->table);
    if (h->lt) (void)cublasLtDestroy(h->lt);
    free(h);
}

static cudaDataType_t lt_type(qt_dtype dt) {
    return dt == QT_DTYPE_F16 ? CUDA_R_16F : dt == QT_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

// Largest power of two <= 256 dividing every set bit pattern in `bits`.
static uint32_t align_of(uint64_t bits) {
    uint32_t a = 256;
    while (a > 1 && (bits & (a - 1))) a >>= 1;
    return a;
}

static int find_cached(const gemm_gpu *h, const gemm_key *k) {
    for (int i = 0; i < h->n_cached; i++)
        if (memcmp(&h->keys[i], k, sizeof *k) == 0) return i;
    return -1;
}

// Creates a column-major layout of rows x cols with leading dimension ld, batched `count` times
// `stride` elements apart, or (ptr_mode) `count` entries read from a pointer array.
static cublasStatus_t make_layout(cublasLtMatrixLayout_t *l, cudaDataType_t type, int rows,
                                  int cols, int64_t ld, int count, int64_t stride, int ptr_mode) {
    cublasStatus_t r = cublasLtMatrixLayoutCreate(l, type, (uint64_t)rows, (uint64_t)cols, ld);
    if (r != CUBLAS_STATUS_SUCCESS || count == 1) return r;
    int32_t c = count;
    r = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &c, sizeof c);
    if (r != CUBLAS_STATUS_SUCCESS) return r;
    if (ptr_mode) {
#if GEMM_LT_POINTER_ARRAY
        uint32_t mode = CUBLASLT_BATCH_MODE_POINTER_ARRAY;
        return cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_MODE, &mode,
                                                sizeof mode);
#else
        return CUBLAS_STATUS_NOT_SUPPORTED; // lt_matmul declines before it gets here
#endif
    }
    return cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                            &stride, sizeof stride);
}

// cuBLASLt's epilogue for e (NULL: none).
static cublasLtEpilogue_t lt_epilogue(const gemm_epi *e) {
    if (!e) return CUBLASLT_EPILOGUE_DEFAULT;
    if (e->dgelu) return CUBLASLT_EPILOGUE_DGELU;
    if (e->act == QT_LINEAR_ACT_GELU)
        return e->aux ? (e->bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                      : (e->bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU);
    if (e->act == QT_LINEAR_ACT_RELU)
        return e->bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    return e->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

// One cuBLASLt call: `count` row-major products strided (sa, sb, sc) elements apart. `loop_*`
// are the byte offsets between this call's base pointers and the other calls' (alignment).
// ptr_mode: the whole batch of d (count = d->batch, strides 0) in one pointer-array call, its
// table written first by gemm_pointer_table; loop_* then hold every entry's offset bits. Where
// cuBLASLt has no pointer-array algorithm for it, *declined = 1 and nothing is launched (the
// caller takes the strided calls); remembered per shape. epi (NULL: none): the bias runs along
// the column-major rows (the row-major N) and the aux buffer is laid out like C (ld ldc).
static qt_status lt_matmul(gemm_gpu *h, cudaStream_t stream, qt_dtype dt, const qt_gemm_desc *d,
                           const void *A, const void *B, void *C, int count, int64_t sa,
                           int64_t sb, int64_t sc, uint64_t loop_a, uint64_t loop_b,
                           uint64_t loop_c, int ptr_mode, int *declined, const gemm_epi *epi,
                           void *const *table = NULL, int write_table = 1) {
    qt_status st = QT_OK;
    size_t es = qt_dtype_size(dt);
    cudaDataType_t type = lt_type(dt);
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    gemm_key key;
    memset(&key, 0, sizeof key);
    key.dt = (int)dt;
    // Column-major operands: first B (its storage read as B^T), then A.
    key.op_a = d->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    key.op_b = d->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    key.m = d->N;
    key.n = d->M;
    key.k = d->K;
    key.lda = d->ldb;
    key.ldb = d->lda;
    key.ldc = d->ldc;
    key.count = count;
    key.sa = count > 1 ? sb : 0;
    key.sb = count > 1 ? sa : 0;
    key.sc = count > 1 ? sc : 0;
    key.align_a = align_of((uint64_t)(uintptr_t)B | (uint64_t)key.sa * es | loop_b);
    key.align_b = align_of((uint64_t)(uintptr_t)A | (uint64_t)key.sb * es | loop_a);
    key.align_c = align_of((uint64_t)(uintptr_t)C | (uint64_t)key.sc * es | loop_c);
    key.beta_zero = d->beta == 0.0f;
    key.ptr_mode = ptr_mode;
    if (ptr_mode) key.sa = key.sb = key.sc = 0;
    if (ptr_mode && !GEMM_LT_POINTER_ARRAY) {
        *declined = 1;
        h->declined_uncached = 1;
        return QT_OK;
    }
    key.epilogue = (int)lt_epilogue(epi);
    key.align_bias = epi && epi->bias ? align_of((uint64_t)(uintptr_t)epi->bias) : 0;
    key.align_aux = epi && epi->aux ? align_of((uint64_t)(uintptr_t)epi->aux) : 0;
    if (declined) *declined = 0;

    cublasOperation_t op_a = (cublasOperation_t)key.op_a, op_b = (cublasOperation_t)key.op_b;
    QT_CHECK_CUBLASLT(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    QT_CHECK_CUBLASLT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a,
                                                 sizeof op_a));
    QT_CHECK_CUBLASLT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b,
                                                 sizeof op_b));
    if (epi) {
        // Bias and aux take D's type (their defaults); the heuristic reads both pointers'
        // alignment, so they are set before it runs.
        cublasLtEpilogue_t e = (cublasLtEpilogue_t)key.epilogue;
        QT_CHECK_CUBLASLT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e,
                                                     sizeof e));
        if (epi->bias)
            QT_CHECK_CUBLASLT(cublasLtMatmulDescSetAttribute(
                op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &epi->bias, sizeof epi->bias));
        if (epi->aux) {
            const int64_t aux_ld = key.ldc;
            QT_CHECK_CUBLASLT(cublasLtMatmulDescSetAttribute(
                op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &epi->aux, sizeof epi->aux));
            QT_CHECK_CUBLASLT(cublasLtMatmulDescSetAttribute(
                op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld));
        }
    }
    // Stored shapes: operand a is (m, k) or (k, m) when transposed; b is (k, n) or (n, k).
    QT_CHECK_CUBLASLT(make_layout(&la, type, op_a == CUBLAS_OP_N ? key.m : key.k,
                              op_a == CUBLAS_OP_N ? key.k : key.m, key.lda, count, key.sa,
                              ptr_mode));
    QT_CHECK_CUBLASLT(make_layout(&lb, type, op_b == CUBLAS_OP_N ? key.k : key.n,
                              op_b == CUBLAS_OP_N ? key.n : key.k, key.ldb, count, key.sb,
                              ptr_mode));
    QT_CHECK_CUBLASLT(make_layout(&lc, type, key.m, key.n, key.ldc, count, key.sc, ptr_mode));

    {
        int slot = find_cached(h, &key);
        if (slot < 0) {
            QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceCreate(&pref));
            uint64_t ws = h->workspace_bytes;
            QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
            QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.align_a,
                sizeof key.align_a));
            QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.align_b,
                sizeof key.align_b));
            QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.align_c,
                sizeof key.align_c));
            QT_CHECK_CUBLASLT(cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.align_c,
                sizeof key.align_c));
            // An activation epilogue without an algorithm is declined like a pointer array:
            // its caller composes the GEMM and the activation kernel.
            const int may_decline = ptr_mode || (epi && (epi->act || epi->dgelu));
            cublasLtMatmulHeuristicResult_t result;
            int found = 0;
            if (may_decline) {
                // A refusal is an answer here: the strided calls or the composition remain.
                cublasStatus_t hr = cublasLtMatmulAlgoGetHeuristic(h->lt, op, la, lb, lc, lc,
                                                                   pref, 1, &result, &found);
                if (hr != CUBLAS_STATUS_SUCCESS) found = 0;
            } else {
                QT_CHECK_CUBLASLT(cublasLtMatmulAlgoGetHeuristic(h->lt, op, la, lb, lc, lc, pref,
                                                             1, &result, &found));
            }
            if (found < 1 && !may_decline) {
                st = qt_error(QT_ERR_CUDA,
                              "qt_cuda_gemm: cuBLASLt has no algorithm for %s M %d N %d K %d "
                              "trans %d%d ld %d/%d/%d batch %d (alignment %u/%u/%u bytes)",
                              qt_dtype_name(dt), d->M, d->N, d->K, d->trans_a, d->trans_b,
                              d->lda, d->ldb, d->ldc, count, key.align_b, key.align_a,
                              key.align_c);
                goto out;
            }
            if (h->n_cached < GEMM_CACHE) {
                slot = h->n_cached++;
            } else {
                slot = h->next_evict;
                h->next_evict = (h->next_evict + 1) % GEMM_CACHE;
            }
            h->keys[slot] = key;
            h->declined[slot] = found < 1;
            if (found >= 1) h->algos[slot] = result.algo;
        }
        if (h->declined[slot]) {
            *declined = 1;
            goto out;
        }
        float alpha = d->alpha, beta = d->beta;
        const void *opa = B, *opb = A;
        void *opc = C;
        if (ptr_mode) {
            // The operands become the table's rows: B_i first (column-major swap), then A_i.
            void *const *tab = table ? table : h->table;
            if (write_table) {
                st = gemm_write_table(stream, dt, d, A, B, C, (void **)tab);
                if (st != QT_OK) goto out;
            }
            opa = tab + d->batch;
            opb = tab;
            opc = (void *)(tab + 2 * d->batch);
        }
        // D = C in place: the same pointer and layout.
        QT_CHECK_CUBLASLT(cublasLtMatmul(h->lt, op, &alpha, opa, la, opb, lb, &beta, opc, lc, opc,
                                     lc, &h->algos[slot], h->workspace, h->workspace_bytes,
                                     (cudaStream_t)stream));
    }
out:
    // Destroying a descriptor cannot fail in a way the caller could act on.
    if (pref) (void)cublasLtMatmulPreferenceDestroy(pref);
    if (lc) (void)cublasLtMatrixLayoutDestroy(lc);
    if (lb) (void)cublasLtMatrixLayoutDestroy(lb);
    if (la) (void)cublasLtMatrixLayoutDestroy(la);
    if (op) (void)cublasLtMatmulDescDestroy(op);
    return st;
}

// The GEMM of d on the GPU; a two-level batch through `table` (NULL: the handle's, written
// here; else a kept one, already written).
static qt_status gemm_gpu_run(gemm_gpu *h, qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                              const void *A, const void *B, void *C, void *const *table) {
    cudaStream_t stream = (cudaStream_t)s;
    size_t es = qt_dtype_size(dt);
    int outer = d->batch / d->inner, inner = d->inner;
    if (d->batch == 1)
        return lt_matmul(h, stream, dt, d, A, B, C, 1, 0, 0, 0, 0, 0, 0, 0, NULL, NULL);
    if (inner == 1)
        return lt_matmul(h, stream, dt, d, A, B, C, outer, d->a_outer, d->b_outer, d->c_outer, 0,
                         0, 0, 0, NULL, NULL);
    if (!gemm_needs_table(d))
        return lt_matmul(h, stream, dt, d, A, B, C, d->batch, d->a_inner, d->b_inner,
                         d->c_inner, 0, 0, 0, 0, NULL, NULL);
    // No single stride reaches every entry: the whole batch in one pointer-array call, unless
    // cuBLASLt declines it for this shape; then one strided-batched call per index of the
    // shorter level, batching the longer one.
    if (d->batch <= GEMM_PTR_MAX) {
        int declined = 0;
        QT_TRY(lt_matmul(h, stream, dt, d, A, B, C, d->batch, 0, 0, 0,
                         (uint64_t)(d->a_outer | d->a_inner) * es,
                         (uint64_t)(d->b_outer | d->b_inner) * es,
                         (uint64_t)(d->c_outer | d->c_inner) * es, 1, &declined, NULL, table,
                         table == NULL));
        if (!declined) return QT_OK;
    }
    if (outer <= inner) {
        for (int o = 0; o < outer; o++)
            QT_TRY(lt_matmul(h, stream, dt, d, QT_AT(A, es, o * d->a_outer),
                             QT_AT(B, es, o * d->b_outer), QT_AT(C, es, o * d->c_outer), inner,
                             d->a_inner, d->b_inner, d->c_inner, (uint64_t)d->a_outer * es,
                             (uint64_t)d->b_outer * es, (uint64_t)d->c_outer * es, 0, NULL, NULL));
    } else {
        for (int i = 0; i < inner; i++)
            QT_TRY(lt_matmul(h, stream, dt, d, QT_AT(A, es, i * d->a_inner),
                             QT_AT(B, es, i * d->b_inner), QT_AT(C, es, i * d->c_inner), outer,
                             d->a_outer, d->b_outer, d->c_outer, (uint64_t)d->a_inner * es,
                             (uint64_t)d->b_inner * es, (uint64_t)d->c_inner * es, 0, NULL, NULL));
    }
    return QT_OK;
}

extern "C" qt_status qt_cuda_gemm(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                  const void *A, const void *B, void *C, void *handle) {
    gemm_gpu *h = (gemm_gpu *)handle;
    if (!h) return qt_error(QT_ERR_ARG, "qt_cuda_gemm: handle is NULL (qt_cuda_gemm_create)");
    QT_TRY(gemm_check(dt, d, A, B, C));
    return gemm_gpu_run(h, s, dt, d, A, B, C, NULL);
}

extern "C" int qt_cuda_gemm_declined(const void *handle) {
    const gemm_gpu *h = (const gemm_gpu *)handle;
    int n = 0;
    for (int i = 0; h && i < h->n_cached; i++) n += h->keys[i].ptr_mode && h->declined[i];
    return n + (h ? h->declined_uncached : 0);
}

extern "C" qt_status qt_cuda_gemm_tabled(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                         const void *A, const void *B, void *C,
                                         void *const *table, void *handle) {
    gemm_gpu *h = (gemm_gpu *)handle;
    if (!h) return qt_error(QT_ERR_ARG, "qt_cuda_gemm_tabled: handle is NULL (qt_cuda_gemm_create)");
    QT_TRY(gemm_tabled_check(dt, d, A, B, C, table));
    return gemm_gpu_run(h, s, dt, d, A, B, C, table);
}

extern "C" qt_status qt_cuda_gemm_bias(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                       const void *A, const void *B, void *C, const void *bias,
                                       void *handle) {
    gemm_gpu *h = (gemm_gpu *)handle;
    if (!h) return qt_error(QT_ERR_ARG, "qt_cuda_gemm_bias: handle is NULL (qt_cuda_gemm_create)");
    QT_TRY(gemm_bias_check(dt, d, A, B, C, bias));
    const gemm_epi epi = {bias, 0, 0, NULL};
    return lt_matmul(h, (cudaStream_t)s, dt, d, A, B, C, 1, 0, 0, 0, 0, 0, 0, 0, NULL, &epi);
}

extern "C" qt_status qt_cuda_gemm_act_fwd(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                          const void *A, const void *B, void *C,
                                          const void *bias, qt_linear_act act, void *pre,
                                          void *handle) {
    gemm_gpu *h = (gemm_gpu *)handle;
    if (!h) return qt_error(QT_ERR_ARG, "qt_cuda_gemm_act_fwd: handle is NULL (qt_cuda_gemm_create)");
    QT_TRY(gemm_act_check("qt_cuda_gemm_act_fwd", dt, d, A, B, C, bias, (int)act, pre, 0));
    const gemm_epi epi = {bias, (int)act, 0, pre};
    int declined = 0;
    QT_TRY(lt_matmul(h, (cudaStream_t)s, dt, d, A, B, C, 1, 0, 0, 0, 0, 0, 0, 0, &declined,
                     &epi));
    if (!declined) return QT_OK;
    // No algorithm for this epilogue here: the GEMM (with its bias) into pre, or into C in
    // place, then the activation kernel (two roundings, as the composed path).
    void *lin = pre ? pre : C;
    const gemm_epi bias_only = {bias, 0, 0, NULL};
    QT_TRY(lt_matmul(h, (cudaStream_t)s, dt, d, A, B, lin, 1, 0, 0, 0, 0, 0, 0, 0, NULL,
                     bias ? &bias_only : NULL));
    const size_t es = qt_dtype_size(dt);
    const int rows = d->ldc == d->N ? 1 : d->M; // padded rows one at a time
    const size_t n = d->ldc == d->N ? (size_t)d->M * d->N : (size_t)d->N;
    for (int r = 0; r < rows; r++) {
        void *c = QT_AT(C, es, (int64_t)r * d->ldc), *l = QT_AT(lin, es, (int64_t)r * d->ldc);
        QT_TRY(act == QT_LINEAR_ACT_GELU ? qt_cuda_gelu_fwd(s, dt, c, l, n)
                                         : qt_cuda_relu_fwd(s, dt, c, l, n));
    }
    return QT_OK;
}

extern "C" qt_status qt_cuda_gemm_dgelu(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                        const void *A, const void *B, void *C, const void *pre,
                                        void *handle) {
    gemm_gpu *h = (gemm_gpu *)handle;
    if (!h) return qt_error(QT_ERR_ARG, "qt_cuda_gemm_dgelu: handle is NULL (qt_cuda_gemm_create)");
    QT_TRY(gemm_act_check("qt_cuda_gemm_dgelu", dt, d, A, B, C, NULL, 0, pre, 1));
    const gemm_epi epi = {NULL, 0, 1, (void *)pre};
    int declined = 0;
    QT_TRY(lt_matmul(h, (cudaStream_t)s, dt, d, A, B, C, 1, 0, 0, 0, 0, 0, 0, 0, &declined,
                     &epi));
    if (!declined) return QT_OK;
    // No algorithm for DGELU here: the GEMM, then GELU's backward in place over C.
    QT_TRY(lt_matmul(h, (cudaStream_t)s, dt, d, A, B, C, 1, 0, 0, 0, 0, 0, 0, 0, NULL, NULL));
    const size_t es = qt_dtype_size(dt);
    const int rows = d->ldc == d->N ? 1 : d->M; // padded rows one at a time
    const size_t n = d->ldc == d->N ? (size_t)d->M * d->N : (size_t)d->N;
    for (int r = 0; r < rows; r++) {
        void *c = QT_AT(C, es, (int64_t)r * d->ldc);
        QT_TRY(qt_cuda_gelu_bwd(s, dt, c, c, QT_AT(pre, es, (int64_t)r * d->ldc), n));
    }
    return QT_OK;
}

#endif

// ==== cost model (issue 10; base/cost.h) ======================================================
// The cuBLASLt calls of the GPU path above (both builds count them: the emulated one records
// what a GPU would run): one strided-batched call when a single stride reaches every entry
// (batch 1, inner 1, outer 1, or contiguous levels), else (attention's (B, H) slices of
// (B, T, 3C)) gemm_pointer_table (3 batch pointers written) and one pointer-array call over the
// whole batch; a batch over GEMM_PTR_MAX makes one call per index of the shorter level. The
// count assumes cuBLASLt accepts the pointer array (where it declines a shape, the GPU runs
// min(outer, inner) calls instead). Per product: reads op(A) (M K) and op(B) (K N), writes
// C (M N) and also reads it when beta != 0 (E bytes each); 2 M N K flops, on the fp16/bf16
// tensor cores (fp32 accumulation) or, for fp32, the CUDA cores (CUBLAS_COMPUTE_32F: no
// TF32).

extern "C" void qt_cuda_gemm_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d, const void *A,
                                  const void *B, const void *C) {
    (void)A, (void)B, (void)C;
    if (!d || d->M < 1 || d->N < 1 || d->K < 1 || d->batch < 1 || d->inner < 1 ||
        d->batch % d->inner != 0)
        return;
    const int outer = d->batch / d->inner, inner = d->inner;
    int calls = 1, per_call = d->batch;
    if (gemm_needs_table(d)) {
        if (d->batch <= GEMM_PTR_MAX) {
            qt_cost_kernel(c, "gemm_pointer_table", 3.0 * d->batch * sizeof(void *), 0);
        } else {
            calls = outer <= inner ? outer : inner;
            per_call = outer <= inner ? inner : outer;
        }
    }
    const double M = d->M, N = d->N, K = d->K, E = (double)qt_dtype_size(dt);
    const double bytes = per_call * E * (M * K + K * N + M * N * (d->beta != 0.0f ? 2 : 1));
    qt_cost_add(c, "cublasLtMatmul", QT_LAUNCH_GEMM,
                dt == QT_DTYPE_F32 ? QT_MATH_FP32 : QT_MATH_TENSOR16, bytes,
                per_call * 2 * M * N * K, calls);
}

// qt_cuda_gemm_bias: the one cuBLASLt call of its single GEMM, which also reads the bias (N).
extern "C" void qt_cuda_gemm_bias_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d,
                                       const void *A, const void *B, const void *C,
                                       const void *bias) {
    (void)A, (void)B, (void)C;
    if (!d || !bias || d->batch != 1 || d->M < 1 || d->N < 1 || d->K < 1) return;
    const double M = d->M, N = d->N, K = d->K, E = (double)qt_dtype_size(dt);
    const double bytes = E * (M * K + K * N + M * N * (d->beta != 0.0f ? 2 : 1) + N);
    qt_cost_add(c, "cublasLtMatmul", QT_LAUNCH_GEMM,
                dt == QT_DTYPE_F32 ? QT_MATH_FP32 : QT_MATH_TENSOR16, bytes, 2 * M * N * K, 1);
}

// qt_cuda_gemm_act_fwd: the one cuBLASLt call, which also reads the bias and writes pre;
// the activation's arithmetic is counted nowhere (a few flops per output on the GEMM's
// epilogue, hidden under its 2 K).
extern "C" void qt_cuda_gemm_act_fwd_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d,
                                          const void *A, const void *B, const void *C,
                                          const void *bias, qt_linear_act act, const void *pre) {
    (void)A, (void)B, (void)C, (void)act;
    if (!d || d->batch != 1 || d->M < 1 || d->N < 1 || d->K < 1) return;
    const double M = d->M, N = d->N, K = d->K, E = (double)qt_dtype_size(dt);
    const double bytes = E * (M * K + K * N + M * N * (pre ? 2 : 1) + (bias ? N : 0));
    qt_cost_add(c, "cublasLtMatmul", QT_LAUNCH_GEMM,
                dt == QT_DTYPE_F32 ? QT_MATH_FP32 : QT_MATH_TENSOR16, bytes, 2 * M * N * K, 1);
}

// qt_cuda_gemm_dgelu: the one cuBLASLt call, which also reads pre.
extern "C" void qt_cuda_gemm_dgelu_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d,
                                        const void *A, const void *B, const void *C,
                                        const void *pre) {
    (void)A, (void)B, (void)C, (void)pre;
    if (!d || d->batch != 1 || d->M < 1 || d->N < 1 || d->K < 1) return;
    const double M = d->M, N = d->N, K = d->K, E = (double)qt_dtype_size(dt);
    qt_cost_add(c, "cublasLtMatmul", QT_LAUNCH_GEMM,
                dt == QT_DTYPE_F32 ? QT_MATH_FP32 : QT_MATH_TENSOR16,
                E * (M * K + K * N + 2 * M * N), 2 * M * N * K, 1);
}

// qt_cuda_gemm_table_write: the one gemm_pointer_table launch (3 batch pointers written).
extern "C" void qt_cuda_gemm_table_write_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d,
                                              const void *A, const void *B, const void *C,
                                              void *const *table) {
    (void)dt, (void)A, (void)B, (void)C, (void)table;
    const size_t n = qt_cuda_gemm_table_entries(d);
    if (n) qt_cost_kernel(c, "gemm_pointer_table", (double)n * sizeof(void *), 0);
}

// qt_cuda_gemm_tabled: qt_cuda_gemm's launches without the table's.
extern "C" void qt_cuda_gemm_tabled_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d,
                                         const void *A, const void *B, const void *C,
                                         void *const *table) {
    (void)table;
    qt_cost all;
    memset(&all, 0, sizeof all);
    qt_cuda_gemm_cost(&all, dt, d, A, B, C);
    for (int i = 0; i < all.n; i++)
        if (all.l[i].kind == QT_LAUNCH_GEMM)
            qt_cost_add(c, all.l[i].name, all.l[i].kind, all.l[i].unit, all.l[i].bytes,
                        all.l[i].flops, all.l[i].count);
}

// kernels/linear.h: linear layers and the batched GEMM
//
// out = x w^T + b and its gradients; the batched row-major GEMM the attention composes from.
// Family files: kernels/cpu/linear.c (the C reference), kernels/cuda/linear.cu, tests/test_linear.c,
// tests/cuda/test_cuda_linear.c, bench/bench_linear.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_LINEAR_H
#define QTRAIN_KERNELS_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N, OC) = x (N, IC) w^T + b; w (OC, IC), b (OC) or NULL.
qt_status qt_cpu_linear_fwd(float *out, const float *x, const float *w, const float *b, int N,
                            int IC, int OC);
// dx (N, IC) += dout w; dw (OC, IC) += dout^T x; db (OC) += column sums of dout.
// dx and db may be NULL (not needed / no bias).
qt_status qt_cpu_linear_bwd(float *dx, float *dw, float *db, const float *dout, const float *x,
                            const float *w, int N, int IC, int OC);
qt_status qt_cpu_linear_fwd_f64(double *out, const double *x, const double *w, const double *b,
                                int N, int IC, int OC);
qt_status qt_cpu_linear_bwd_f64(double *dx, double *dw, double *db, const double *dout,
                                const double *x, const double *w, int N, int IC, int OC);

// A linear layer and the activation after it (qt_linear_act, base/params.h), float only: the
// reference of the CUDA epilogues below and the CPU backend's linear_act ops.
// Forward: pre (N, OC) = x w^T + b, out = act(pre). pre is written where given; GELU needs it
// (its backward's input), ReLU may pass NULL (out is then computed in place: its backward reads
// out, since relu(pre) > 0 exactly where pre > 0).
qt_status qt_cpu_linear_act_fwd(qt_linear_act act, float *out, float *pre, const float *x,
                                const float *w, const float *b, int N, int IC, int OC);
// Backward to the linear's input through the activation before it: dx (N, IC) = act'(saved) *
// (dout (N, OC) w (OC, IC)), overwritten (dx is not read; it must not overlap dout or w).
// saved: GELU's pre, ReLU's output (its pre works as well).
qt_status qt_cpu_linear_act_dx(qt_linear_act act, float *dx, const float *dout, const float *w,
                               const float *saved, int N, int IC, int OC);

// The batched GEMM of qt_gemm_desc (base/params.h) on fp32 arrays: the batch runs in parallel
// with single-threaded sgemm calls, a single GEMM on OpenBLAS's threads. QT_ERR_ARG when the
// batch is not a multiple of `inner`.
qt_status qt_cpu_gemm(const qt_gemm_desc *d, const float *A, const float *B, float *C);

// The descriptor of a single (batch 1) GEMM, C (M, N) = op(A) op(B) + beta C (alpha 1), row-major
// with leading dimensions lda, ldb, ldc: a linear layer's GEMMs (the CUDA backend's, the
// benchmarks').
qt_gemm_desc qt_gemm_desc_single(int trans_a, int trans_b, int M, int N, int K, float beta,
                                 int lda, int ldb, int ldc);

// CUDA (kernels/cuda/linear.cu): the batched GEMM on tensors of `dt`, accumulated in fp32 and
// rounded to `dt` once. On the GPU through cuBLASLt (CUBLAS_COMPUTE_32F: no TF32), in the
// emulated build through the CPU sgemm. With beta == 0, C is not read (it may hold NaN).
// A handle owns the cuBLASLt handle and `workspace_bytes` of device workspace (0: a default of
// 32 MiB); one handle per stream at a time.
qt_status qt_cuda_gemm_create(void **handle, size_t workspace_bytes);
void qt_cuda_gemm_destroy(void *handle);
qt_status qt_cuda_gemm(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d, const void *A,
                       const void *B, void *C, void *handle);

// Kept pointer tables. A two-level batch that no single stride reaches (attention's (b, h)
// slices) runs as one pointer-array call whose table of entry addresses qt_cuda_gemm writes
// first, on every call. A caller repeating the same GEMM on the same buffers can keep the
// table instead: qt_cuda_gemm_table_entries(d) pointers of device memory (0: d needs no
// table), written once by qt_cuda_gemm_table_write for A, B, C, then qt_cuda_gemm_tabled runs
// the GEMM alone (stream order makes the written table visible to it).
size_t qt_cuda_gemm_table_entries(const qt_gemm_desc *d);
qt_status qt_cuda_gemm_table_write(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                                   const void *A, const void *B, void *C, void **table);
qt_status qt_cuda_gemm_tabled(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d, const void *A,
                              const void *B, void *C, void *const *table, void *handle);
void qt_cuda_gemm_table_write_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d, const void *A,
                                   const void *B, const void *C, void *const *table);
void qt_cuda_gemm_tabled_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d, const void *A,
                              const void *B, const void *C, void *const *table);

// How many two-level GEMM shapes this handle ran as strided calls because cuBLASLt declined
// the pointer-array call (the cost model counts one call each: on a GPU this should be 0,
// which test_cuda_linear_gpu asserts); always 0 in the emulated build.
int qt_cuda_gemm_declined(const void *handle);

// A single GEMM (d->batch == 1) with bias (N, dt) added to every row of C in the GEMM's
// epilogue, before the one rounding to dt: C = alpha op(A) op(B) + beta C + bias (cuBLASLt's
// CUBLASLT_EPILOGUE_BIAS on the GPU): a linear layer's forward, bias included, in one launch.
qt_status qt_cuda_gemm_bias(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d, const void *A,
                            const void *B, void *C, const void *bias, void *handle);
void qt_cuda_gemm_bias_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d, const void *A,
                            const void *B, const void *C, const void *bias);

// The activation epilogues (qt_cpu_linear_act_fwd / _dx on the GPU): a single GEMM (batch 1,
// alpha 1, beta 0) whose fp32 result runs through the activation before its one rounding to dt
// (cuBLASLt's GELU_AUX[_BIAS], RELU[_BIAS] and DGELU; the emulator evaluates activation.cu's
// fp32 math there, where the GPU uses cuBLASLt's own GELU):
//   qt_cuda_gemm_act_fwd: pre = op(A) op(B) + bias (NULL: none), C = act(pre); pre (M, N,
//     leading dimension ldc) written where given: GELU only (cuBLASLt keeps ReLU's as a bit
//     mask, which nothing here reads), and GELU's backward needs it.
//   qt_cuda_gemm_dgelu: C = gelu'(pre) * op(A) op(B), pre (M, N, ldc) read: the input gradient
//     of a linear that follows a GELU, one launch and one rounding.
// qt_cuda_gemm_act_supported: 1 when both take d (batch 1, alpha 1, beta 0), dt (fp16/bf16)
// and these pointers (N and ldc multiples of 8 and every pointer 16-byte aligned: cuBLASLt's
// aux buffer needs its ld divisible by 8). Elsewhere they refuse with QT_ERR_ARG, so both
// builds decline the same calls and the caller composes (qt_cuda_gemm[_bias] and the
// activation kernels).
int qt_cuda_gemm_act_supported(qt_dtype dt, const qt_gemm_desc *d, const void *A, const void *B,
                               const void *C, const void *bias, const void *pre);
qt_status qt_cuda_gemm_act_fwd(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                               const void *A, const void *B, void *C, const void *bias,
                               qt_linear_act act, void *pre, void *handle);
qt_status qt_cuda_gemm_dgelu(qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d, const void *A,
                             const void *B, void *C, const void *pre, void *handle);
void qt_cuda_gemm_act_fwd_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d, const void *A,
                               const void *B, const void *C, const void *bias, qt_linear_act act,
                               const void *pre);
void qt_cuda_gemm_dgelu_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d, const void *A,
                             const void *B, const void *C, const void *pre);

// Cost model (base/cost.h; counted in kernels/cuda/linear.cu): the cuBLASLt calls qt_cuda_gemm
// makes on a GPU for descriptor d (one per call; the emulated build's CPU GEMM makes none, but
// records the GPU's), appended to *c.
void qt_cuda_gemm_cost(qt_cost *c, qt_dtype dt, const qt_gemm_desc *d, const void *A, const void *B,
                       const void *C);

#ifdef __cplusplus
}
#endif
#endif

// qtrain/cuda_int8_gemm.h: INT8 GEMM on the GPU, int8 x int8 -> int32, and the W8A8 linear layer
// with the dequantization fused in the epilogue (PAPERS.md section 5). Device pointers.
// CPU twin: qtrain/int8_gemm.h (qt_cpu_gemm_s8s32, qt_cpu_linear_s8), same layout and results.
//
// Layout is the TN layout of a linear layer, C = A B^T:
//     A (M, K) int8 row-major, activations (one row per token)
//     B (N, K) int8 row-major, weights (one row per output channel)
//     C (M, N) int32 row-major, overwritten; exact (1 <= K <= QT_INT8_GEMM_MAX_K)
// Any N, K >= 1, 1 <= M <= 65535 * 64 (the grid), and any byte alignment of A and B.
//
// Two implementations (kernels/cuda/int8_gemm.cu), bit-identical int32 results:
//   QT_CUDA_INT8_MMA       the hand-written tensor-core kernel: mma.sync m16n8k32 .s8 on
//                          shared-memory tiles, edges zero-filled, epilogue fused (the linear
//                          writes dequantized dt values straight from the accumulators).
//   QT_CUDA_INT8_CUBLASLT  cublasLtMatmul, CUBLAS_COMPUTE_32I, int32 scale, "TN". cuBLASLt's
//                          int8 kernels need K and N multiples of 4 (its m and k): other shapes
//                          are zero-padded into a library-owned device workspace (padding k adds
//                          zeros to every dot product; padded columns are dropped). The linear
//                          then runs the dequantization epilogue as a second kernel over the
//                          int32 result in that workspace.
//   QT_CUDA_INT8_DEFAULT   what qt_cuda_int8_default_impl() says.
// The flag: the environment variable QT_CUDA_INT8 = "mma" or "cublaslt" picks the default
// (unset or empty: mma). Any other value makes DEFAULT calls fail with QT_ERR_ARG.
// The cuBLASLt handle and workspace are created on first use and kept (one per process, grown
// to the largest problem seen); qt_cuda_int8_release() frees them. A call on another stream
// than the previous cuBLASLt call first waits for that stream (the workspace is shared).
// In the emulated build (tests/cuemu) cuBLASLt does not exist: the cublasLtMatmul call is
// replaced by a CPU loop with cuBLASLt's column-major TN semantics on the same arguments, so
// the transposes, leading dimensions, padding and epilogue are still what is tested.
#ifndef QTRAIN_CUDA_INT8_GEMM_H
#define QTRAIN_CUDA_INT8_GEMM_H

#include <stdint.h>

#include "qtrain/int8_gemm.h"
#include "qtrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    QT_CUDA_INT8_INVALID = -1, // returned by qt_cuda_int8_default_impl for a bad QT_CUDA_INT8
    QT_CUDA_INT8_DEFAULT = 0,
    QT_CUDA_INT8_MMA = 1,
    QT_CUDA_INT8_CUBLASLT = 2,
} qt_cuda_int8_impl;

// QT_CUDA_INT8 read now: MMA when unset/empty/"mma", CUBLASLT for "cublaslt", else INVALID.
qt_cuda_int8_impl qt_cuda_int8_default_impl(void);
// "mma", "cublaslt", "default" or "invalid".
const char *qt_cuda_int8_impl_name(qt_cuda_int8_impl impl);

// C = A B^T. C (M, N) int32; A (M, K) int8; B (N, K) int8. `stream` is a cudaStream_t.
qt_status qt_cuda_gemm_s8s32(void *stream, qt_cuda_int8_impl impl, int32_t *C, const int8_t *A,
                             const int8_t *B, int M, int N, int K);

// out[m][n] = (float)(A B^T)[m][n] * a_scale[m] * b_scale[n] + bias[n], fp32 math in that
// order (no fused multiply-add), rounded once to dt. out (M, N) of dtype dt (a qt_dtype: fp32,
// fp16 or bf16), overwritten; a_scale (M) fp32 per token; b_scale (N) fp32 per channel;
// bias (N) of dtype dt, or NULL for none.
qt_status qt_cuda_linear_s8(void *stream, qt_cuda_int8_impl impl, int dt, void *out,
                            const int8_t *A, const float *a_scale, const int8_t *B,
                            const float *b_scale, const void *bias, int M, int N, int K);

// qt_cuda_linear_s8 with per-tensor scales allowed: a_per_row = 1 reads a_scale[m], 0 reads
// a_scale[0] for every row (likewise b_per_row for b_scale).
qt_status qt_cuda_linear_s8_ex(void *stream, qt_cuda_int8_impl impl, int dt, void *out,
                               const int8_t *A, const float *a_scale, int a_per_row,
                               const int8_t *B, const float *b_scale, int b_per_row,
                               const void *bias, int M, int N, int K);

// s8dx part: out (cols, rows) = in (rows, cols)^T, int8, device pointers on `stream` (a
// cudaStream_t); any rows, cols >= 0 (0: nothing to do); out must not overlap in. Tiled
// through shared memory. SwitchBack's dX uses it to lay the weight codes (OC, IC) out as the
// GEMM's B (IC, OC).
qt_status qt_cuda_transpose_s8(void *stream, int8_t *out, const int8_t *in, int rows, int cols);
// end of the s8dx part

// Frees the cuBLASLt handle and workspace (after waiting for the stream that last used them).
// Optional; the next cuBLASLt call creates them again.
void qt_cuda_int8_release(void);

#ifdef __cplusplus
}
#endif
#endif

// kernels/int8_gemm.h: INT8 GEMM on the CPU and the GPU, int8 x int8 -> int32, and the W8A8 linear
// layer built on it with the dequantization fused in the epilogue (PAPERS.md section 5).
//
// Layout is the TN layout of a linear layer, C = A B^T:
//     A (M, K) int8 row-major, activations (one row per token)
//     B (N, K) int8 row-major, weights (one row per output channel)
//     C (M, N) int32 row-major, overwritten
// The int32 result is exact (no saturation anywhere) for K <= QT_INT8_GEMM_MAX_K, the largest K
// for which K * 128 * 128 fits in int32; a larger K is refused.
//
// Paths, chosen at run time: "portable" (plain C loops, the reference), "avx2" (int8 widened to
// int16 with vpmovsxbw, products summed with vpmaddwd: exact), "avx512vnni" (vpdpbusd on
// offset-unsigned weights, the offset removed exactly). All give the same int32 results and the
// same epilogue floats. The first call picks the best path this CPU supports, unless the
// environment variable QT_INT8_GEMM=portable|avx2|avx512vnni forces one; naming a path this CPU
// or build lacks makes every call fail with QT_ERR_UNSUPPORTED.
// All paths use OpenMP over blocks of rows and columns.
// Family files: kernels/cpu/int8_gemm.c (the C reference and its vector paths),
// kernels/cuda/int8_gemm.cu, tests/test_int8_gemm.c, tests/cuda/test_cuda_int8_gemm.c,
// bench/bench_int8_gemm.c.
// Errors (as every family): each CPU op returns QT_OK, or QT_ERR_ARG for a bad argument (a size
// out of range, a required tensor NULL, bad params) with qt_last_error() naming the op, the
// value and the fix, before any output is written: a refused call leaves its outputs untouched.
#ifndef QTRAIN_KERNELS_INT8_GEMM_H
#define QTRAIN_KERNELS_INT8_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QT_INT8_GEMM_MAX_K 131071

// C = A B^T. C (M, N) int32; A (M, K) int8; B (N, K) int8; M, N >= 1, 1 <= K <= MAX_K.
qt_status qt_cpu_gemm_s8s32(int32_t *C, const int8_t *A, const int8_t *B, int M, int N, int K);

// out[m][n] = (float)(A B^T)[m][n] * a_scale[m] * b_scale[n] + bias[n], computed in float in
// that order, fused in the GEMM's epilogue (no int32 buffer). Overwrites out.
// out (M, N); A (M, K) int8; a_scale (M) per-token; B (N, K) int8; b_scale (N) per-channel;
// bias (N) or NULL for none.
qt_status qt_cpu_linear_s8(float *out, const int8_t *A, const float *a_scale, const int8_t *B,
                           const float *b_scale, const float *bias, int M, int N, int K);

// qt_cpu_linear_s8 with its scratch given, so the call allocates nothing: scratch holds the
// packed operand panels of the selected path, at least qt_cpu_gemm_s8_scratch_bytes(M, N, K)
// bytes (0 for the portable path), 32-byte aligned; a smaller or misaligned one is QT_ERR_ARG.
// scratch NULL: allocated for the call, as qt_cpu_linear_s8 does.
qt_status qt_cpu_linear_s8_ws(float *out, const int8_t *A, const float *a_scale, const int8_t *B,
                              const float *b_scale, const float *bias, int M, int N, int K,
                              void *scratch, size_t scratch_bytes);

// The scratch bytes an (M, N, K) GEMM needs on the path the calls use now (0: none, or a shape
// the calls refuse). A path change (qt_cpu_gemm_s8_set_path) can change it.
size_t qt_cpu_gemm_s8_scratch_bytes(int M, int N, int K);

// ---- asymmetric activations (zero points) ---------------------------------------------------
// Activations quantized asymmetrically (kernels/quant.h: x = (code - zc) * step, codes stored
// shifted by qmin so they fit int8) need the zero point removed from the integer product:
//     sum_k (A[m][k] - zc[m]) B[n][k] = (A B^T)[m][n] - zc[m] * rowsum(B)[n],
// computed exactly in int32 in the epilogue. |(A - zc) B| <= 255 * 128 per term, so the result
// is exact for K <= QT_INT8_GEMM_ZP_MAX_K (K * 32640 < 2^31); a larger K is refused.
#define QT_INT8_GEMM_ZP_MAX_K 65792

// sums (N) = sum_k B[n][k] of B (N, K) int8, the rowsum(B) the zero-point epilogue takes
// (weights are constant: compute it once per weight). N >= 1, 1 <= K <= QT_INT8_GEMM_MAX_K.
qt_status qt_cpu_s8_row_sums(int32_t *sums, const int8_t *B, int N, int K);

// out[m][n] = (float)((A B^T)[m][n] - a_zero[m] * b_rowsum[n]) * a_scale[m] * b_scale[n]
//             + bias[n],
// the integer part exact, the float part computed in that order (the same epilogue on every
// path, so every path gives the same floats). Overwrites out.
// out (M, N); A (M, K) int8 codes; a_scale (M), a_zero (M) per-token step and shifted zero
// point (a per-tensor grid repeats its values); B (N, K) int8 symmetric codes; b_scale (N);
// b_rowsum (N) from qt_cpu_s8_row_sums(B); bias (N) or NULL. K <= QT_INT8_GEMM_ZP_MAX_K.
qt_status qt_cpu_linear_s8_zp(float *out, const int8_t *A, const float *a_scale,
                              const int32_t *a_zero, const int8_t *B, const float *b_scale,
                              const int32_t *b_rowsum, const float *bias, int M, int N, int K);

// The name of the path the calls above use ("portable", "avx2", "avx512vnni"), or "unsupported"
// when QT_INT8_GEMM names a path that cannot run here (the calls then fail, saying why).
const char *qt_cpu_gemm_s8_path(void);

// Forces a path for the calls that follow ("portable", "avx2", "avx512vnni"), or with NULL returns
// to the default (QT_INT8_GEMM if set, else the best supported). QT_ERR_UNSUPPORTED when this CPU
// or build lacks the path, QT_ERR_ARG for an unknown name; the selection is then unchanged. For
// tests and benchmarks: not meant to be called while a GEMM runs on another thread.
qt_status qt_cpu_gemm_s8_set_path(const char *name);

// 1 when the named path can run on this CPU and build, else 0.
int qt_cpu_gemm_s8_path_supported(const char *name);

// ==== CUDA (kernels/cuda/int8_gemm.cu), device pointers, the same layout and results ====
// Layout is the TN layout of a linear layer, C = A B^T:
//     A (M, K) int8 row-major, activations (one row per token)
//     B (N, K) int8 row-major, weights (one row per output channel)
//     C (M, N) int32 row-major, overwritten; exact (1 <= K <= QT_INT8_GEMM_MAX_K)
// Any M, N, K >= 1 with ceil(M / 128) * ceil(N / 128) <= 2^31 - 1 (the mma kernel's grid), and
// any byte alignment of A and B.
//
// Two implementations (kernels/cuda/int8_gemm.cu), bit-identical int32 results:
//   QT_CUDA_INT8_MMA       the hand-written tensor-core kernel: 128x128 tiles of mma.sync
//                          m16n8k32 .s8 fed by ldmatrix from a 4-stage cp.async pipeline
//                          (64 KiB of shared memory), edges zero-filled, epilogue fused (the
//                          linear writes dequantized dt values straight from the accumulators).
//                          K % 16 != 0 or A/B not 16-byte aligned: the same kernel with
//                          synchronous loads (slower).
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

// C = A B^T. C (M, N) int32; A (M, K) int8; B (N, K) int8.
qt_status qt_cuda_gemm_s8s32(qt_cuda_stream s, int32_t *C, const int8_t *A, const int8_t *B,
                             int M, int N, int K, qt_cuda_int8_impl impl);

// out[m][n] = (float)(A B^T)[m][n] * a_scale[m] * b_scale[n] + bias[n], fp32 math in that
// order (no fused multiply-add), rounded once to dt. out (M, N) of dtype dt (a qt_dtype: fp32,
// fp16 or bf16), overwritten; a_scale (M) fp32 per token; b_scale (N) fp32 per channel;
// bias (N) of dtype dt, or NULL for none.
qt_status qt_cuda_linear_s8(qt_cuda_stream s, qt_dtype dt, void *out, const int8_t *A,
                            const float *a_scale, const int8_t *B, const float *b_scale,
                            const void *bias, int M, int N, int K, qt_cuda_int8_impl impl);

// qt_cuda_linear_s8 with per-tensor scales allowed: a_per_row = 1 reads a_scale[m], 0 reads
// a_scale[0] for every row (likewise b_per_row for b_scale).
qt_status qt_cuda_linear_s8_ex(qt_cuda_stream s, qt_dtype dt, void *out, const int8_t *A,
                               const float *a_scale, int a_per_row, const int8_t *B,
                               const float *b_scale, int b_per_row, const void *bias, int M,
                               int N, int K, qt_cuda_int8_impl impl);

// out (cols, rows) = in (rows, cols)^T, int8; any rows, cols >= 0 (0: nothing to do); out must not
// overlap in. Tiled through shared memory. SwitchBack's dX uses it to lay the weight codes (OC, IC)
// out as the GEMM's B (IC, OC).
qt_status qt_cuda_transpose_s8(qt_cuda_stream s, int8_t *out, const int8_t *in, int rows,
                               int cols);

// Frees the cuBLASLt handle and workspace (after waiting for the stream that last used them);
// the next cuBLASLt call creates them again. Call it before destroying a stream that ran the
// cuBLASLt path: the next call on another stream would otherwise wait on the dead stream.
void qt_cuda_int8_release(void);

// Cost model (base/cost.h; counted in kernels/cuda/int8_gemm.cu): the launches each launcher
// above makes for the same arguments (those after the stream; impl DEFAULT read from
// QT_CUDA_INT8 as the launcher reads it), appended to *c.
void qt_cuda_gemm_s8s32_cost(qt_cost *c, const int32_t *C, const int8_t *A, const int8_t *B, int M,
                             int N, int K, qt_cuda_int8_impl impl);
void qt_cuda_linear_s8_cost(qt_cost *c, qt_dtype dt, const void *out, const int8_t *A,
                            const float *a_scale, const int8_t *B, const float *b_scale,
                            const void *bias, int M, int N, int K, qt_cuda_int8_impl impl);
void qt_cuda_linear_s8_ex_cost(qt_cost *c, qt_dtype dt, const void *out, const int8_t *A,
                               const float *a_scale, int a_per_row, const int8_t *B,
                               const float *b_scale, int b_per_row, const void *bias, int M, int N,
                               int K, qt_cuda_int8_impl impl);
void qt_cuda_transpose_s8_cost(qt_cost *c, const int8_t *out, const int8_t *in, int rows, int cols);

#ifdef __cplusplus
}
#endif
#endif

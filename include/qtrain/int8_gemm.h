// qtrain/int8_gemm.h: INT8 GEMM on the CPU, int8 x int8 -> int32, and the W8A8 linear layer
// built on it with the dequantization fused in the epilogue (PAPERS.md section 5).
//
// Layout is the TN layout of a linear layer, C = A B^T:
//     A (M, K) int8 row-major, activations (one row per token)
//     B (N, K) int8 row-major, weights (one row per output channel)
//     C (M, N) int32 row-major, overwritten
// The int32 result is exact (no saturation anywhere) for K <= QT_INT8_GEMM_MAX_K, the largest K
// for which K * 128 * 128 fits in int32; a larger K is refused.
//
// Paths, chosen at run time: "portable" (plain C loops, the reference), "avx2" (int8 widened to
// int16 with vpmovsxbw, products summed with vpmaddwd: exact). The first call picks the best
// path this CPU supports, unless the environment variable QT_INT8_GEMM=portable|avx2 forces
// one; naming a path this CPU or build lacks makes every call fail with QT_ERR_UNSUPPORTED.
// All paths use OpenMP over blocks of rows and columns.
#ifndef QTRAIN_INT8_GEMM_H
#define QTRAIN_INT8_GEMM_H

#include <stdint.h>

#include "qtrain/status.h"

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

// ---- asymmetric activations (zero points) ---------------------------------------------------
// Activations quantized asymmetrically (qtrain/quant.h: x = (code - zc) * step, codes stored
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

// The name of the path the calls above use ("portable", "avx2"), or "unsupported" when
// QT_INT8_GEMM names a path that cannot run here (the calls then fail, saying why).
const char *qt_cpu_gemm_s8_path(void);

// Forces a path for the calls that follow ("portable", "avx2"), or with NULL returns to the
// default (QT_INT8_GEMM if set, else the best supported). QT_ERR_UNSUPPORTED when this CPU or
// build lacks the path, QT_ERR_ARG for an unknown name; the selection is then unchanged.
// For tests and benchmarks: not meant to be called while a GEMM runs on another thread.
qt_status qt_cpu_gemm_s8_set_path(const char *name);

// 1 when the named path can run on this CPU and build, else 0.
int qt_cpu_gemm_s8_path_supported(const char *name);

#ifdef __cplusplus
}
#endif
#endif

// qtrain/cuda_ops.h: the C-callable launchers of the CUDA kernels (kernels/cuda/*.cu).
//
// One launcher per op and direction, in the argument order of the CPU reference op in
// qtrain/ops.h, after (stream, dtype). Semantics are the CPU op's: forwards overwrite,
// backwards ADD into every gradient they write. Pointers are device memory.
//   `void *`  tensors hold `dt` (QT_DTYPE_F32, _F16 or _BF16);
//   `float *` tensors are always fp32 (LayerNorm statistics, the saved softmax p, gate
//             values, losses, master weights and Adam moments).
// Math is fp32 whatever `dt` is. Every launcher checks its shapes (QT_ERR_ARG naming the op)
// and the launch (QT_ERR_CUDA with file:line), and never allocates.
// The same sources build for the GPU (nvcc) and for the CPU emulator (tests/cuemu, g++).
#ifndef QTRAIN_CUDA_OPS_H
#define QTRAIN_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "qtrain/backend.h"
#include "qtrain/dtype.h"
#include "qtrain/ops.h"
#include "qtrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void *qt_cuda_stream; // a cudaStream_t (NULL: the default stream)

// ---- attention softmax (softmax_clip.cu): scale, mask by lens, the three variants, fp32
qt_status qt_cuda_softmax_clip_fwd(qt_cuda_stream s, qt_dtype dt, const qt_softmax_params *prm,
                                   void *probs, float *p, const void *scores, const int *lens,
                                   int rows, int cols);
qt_status qt_cuda_softmax_clip_bwd(qt_cuda_stream s, qt_dtype dt, const qt_softmax_params *prm,
                                   void *dscores, const void *dprobs, const float *p,
                                   const int *lens, int rows, int cols);

// ---- attention gate (gate.cu): gate function, and the gate fused with the context multiply
qt_status qt_cuda_gate_fwd(qt_cuda_stream s, qt_dtype dt, const qt_gate_shape *g, float *gate,
                           float *hidden, const void *x, const void *w1, const void *b1,
                           const void *w2, const void *b2, int N, int C);
qt_status qt_cuda_gate_bwd(qt_cuda_stream s, qt_dtype dt, const qt_gate_shape *g, void *dx,
                           void *dw1, void *db1, void *dw2, void *db2, const float *dgate,
                           const float *gate, const float *hidden, const void *x,
                           const void *w1, const void *w2, int N, int C);
qt_status qt_cuda_gate_mul_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const float *gate,
                               const void *ctx, int N, int C, int H);
qt_status qt_cuda_gate_mul_bwd(qt_cuda_stream s, qt_dtype dt, void *dctx, float *dgate,
                               const void *dout, const float *gate, const void *ctx, int N,
                               int C, int H);

// ---- LayerNorm (layernorm.cu), and residual add fused with the LayerNorm that follows:
// resid = a + b; out = LayerNorm(resid). resid may alias a or b.
qt_status qt_cuda_layernorm_fwd(qt_cuda_stream s, qt_dtype dt, void *out, float *mean,
                                float *rstd, const void *x, const void *w, const void *b, int N,
                                int C);
qt_status qt_cuda_layernorm_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, void *dw, void *db,
                                const void *dout, const void *x, const float *mean,
                                const float *rstd, const void *w, int N, int C);
qt_status qt_cuda_add_layernorm_fwd(qt_cuda_stream s, qt_dtype dt, void *resid, void *out,
                                    float *mean, float *rstd, const void *a, const void *b,
                                    const void *w, const void *bias, int N, int C);

// ---- elementwise (elementwise.cu)
qt_status qt_cuda_gelu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x, size_t n);
qt_status qt_cuda_gelu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                           const void *x, size_t n);
qt_status qt_cuda_relu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x, size_t n);
qt_status qt_cuda_relu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                           const void *x, size_t n);
qt_status qt_cuda_add(qt_cuda_stream s, qt_dtype dt, void *out, const void *a, const void *b,
                      size_t n);
// out (N, OC) += bias (OC); db (OC) += column sums of dout (N, OC).
qt_status qt_cuda_bias_add(qt_cuda_stream s, qt_dtype dt, void *out, const void *bias, int N,
                           int OC);
qt_status qt_cuda_bias_grad(qt_cuda_stream s, qt_dtype dt, void *db, const void *dout, int N,
                            int OC);
// dst (n, dst_dt) = src (n, src_dt), rounding to nearest even.
qt_status qt_cuda_cast(qt_cuda_stream s, qt_dtype dst_dt, void *dst, qt_dtype src_dt,
                       const void *src, size_t n);

// ---- embeddings (embedding.cu). wpe NULL: token embeddings only (RoPE models); dwpe NULL:
// no position gradient.
qt_status qt_cuda_embedding_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const int *tokens,
                                const void *wte, const void *wpe, int B, int T, int C);
qt_status qt_cuda_embedding_bwd(qt_cuda_stream s, qt_dtype dt, void *dwte, void *dwpe,
                                const void *dout, const int *tokens, int B, int T, int C);

// ---- dropout (dropout.cu): the mask is kernels/common/philox.h's, bit-identical to the CPU's
qt_status qt_cuda_dropout_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x, size_t n,
                              float prob, uint64_t seed, uint64_t stream);
qt_status qt_cuda_dropout_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                              size_t n, float prob, uint64_t seed, uint64_t stream);

// ---- cross-entropy fused with the softmax over the vocabulary (crossentropy.cu)
qt_status qt_cuda_crossentropy_fwd(qt_cuda_stream s, qt_dtype dt, float *losses, void *probs,
                                   const void *logits, const int *targets, int N, int V);
qt_status qt_cuda_crossentropy_bwd(qt_cuda_stream s, qt_dtype dt, void *dlogits,
                                   const float *dlosses, const void *probs, const int *targets,
                                   int N, int V);

// ---- optimizer (adamw.cu): AdamW over fp32 master weights (or fp32 params when master is
// NULL and dt is fp32) writing the rounded parameters back; the global gradient norm's sum of
// squares, deterministic (fixed reduction order), also the loss scaler's overflow check.
qt_status qt_cuda_adamw_step(qt_cuda_stream s, qt_dtype dt, void *param, float *master,
                             const void *grad, float *m, float *v, size_t n,
                             const qt_adamw_params *prm);
// partials: device scratch of at least qt_cuda_sumsq_scratch_size() doubles.
size_t qt_cuda_sumsq_scratch_size(void);
qt_status qt_cuda_sumsq(qt_cuda_stream s, qt_dtype dt, double *out_host, const void *x, size_t n,
                        double *partials);

// ---- GEMM (gemm.cu): the batched row-major GEMM of qt_gemm_desc (qtrain/backend.h) on
// tensors of `dt`, accumulated in fp32 and rounded to `dt` once. On the GPU through cuBLASLt
// (CUBLAS_COMPUTE_32F: no TF32), in the emulated build through the CPU sgemm. With beta == 0,
// C is not read (it may hold NaN). A handle owns the cuBLASLt handle and `workspace_bytes` of
// device workspace (0: a default of 32 MiB); one handle per stream at a time.
qt_status qt_cuda_gemm_create(void **handle, size_t workspace_bytes);
void qt_cuda_gemm_destroy(void *handle);
qt_status qt_cuda_gemm(void *handle, qt_cuda_stream s, qt_dtype dt, const qt_gemm_desc *d,
                       const void *A, const void *B, void *C);

// ---- LLaMA family (llama part: rmsnorm.cu, rope.cu, swiglu.cu); semantics of the CPU ops in
// qtrain/ops.h. rstd is fp32. RMSNorm's dw is a fixed-order reduction (deterministic). RoPE
// rotates the q and k thirds of (B, T, 3C) in place (the backward too: the inverse rotation,
// not an accumulation); angles in double, so it matches the CPU to fp32 rounding. SwiGLU's dx
// must not alias x or dout.
qt_status qt_cuda_rmsnorm_fwd(qt_cuda_stream s, qt_dtype dt, void *out, float *rstd,
                              const void *x, const void *w, int N, int C);
qt_status qt_cuda_rmsnorm_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, void *dw,
                              const void *dout, const void *x, const float *rstd, const void *w,
                              int N, int C);
qt_status qt_cuda_rope_fwd(qt_cuda_stream s, qt_dtype dt, void *qkv, int B, int T, int C, int H,
                           float theta);
qt_status qt_cuda_rope_bwd(qt_cuda_stream s, qt_dtype dt, void *dqkv, int B, int T, int C, int H,
                           float theta);
qt_status qt_cuda_swiglu_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const void *x, int N,
                             int F);
qt_status qt_cuda_swiglu_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, const void *dout,
                             const void *x, int N, int F);
// ---- end of the llama part

// ---- the CUDA backend (host/cuda/backend_cuda.c)
// Initialises device `device` with parameters, gradients and activations in `dt`. In the
// emulated build (tests/cuemu) this runs on the CPU. QT_ERR_CUDA naming the failing call
// when no usable device exists.
qt_status qt_backend_cuda_init(qt_backend *be, int device, qt_dtype dt);
// Number of usable devices (0 when there is no driver or no GPU); never fails.
int qt_cuda_device_count(void);

#ifdef __cplusplus
}
#endif
#endif

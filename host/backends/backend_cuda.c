// backend_cuda.c: the CUDA backend: device memory and the qt_cuda_* launchers
// (kernels/<family>.h) behind the qt_backend_ops table (include/qtrain/backend.h).
//
// One context per backend owns a stream (every op and copy is issued on it), the GEMM handle
// (cuBLASLt and its workspace; the CPU sgemm in the emulated build), a device staging buffer
// for the fp32 <-> dt conversions of to_host_f32 / to_device_f32, and the partial sums of the
// gradient-norm reduction. `destroy` releases them. Parameters, gradients and activations are
// stored in the backend's dtype (fp32, fp16 or bf16); fp32 tensors of the interface (`float *`:
// LayerNorm statistics, saved softmax, losses, optimizer state) stay fp32.
//
// Composition: linear_fwd is a GEMM and a bias add, linear_bwd two GEMMs and a column sum;
// attention_flash_fwd/bwd (the fused op, issue 9's CUDA kernels to come) and the sink variants
// of softmax_clip are NULL, so the model composes attention from gemm (strided-batched) and
// softmax_clip, and refuses attn.sink at init. Copies are synchronous for the caller (they wait for
// the stream), ops are not. Every CUDA runtime call is checked and reported with file:line
// (QT_CHECK_CUDA); the same source builds against libcudart or against the emulator's runtime
// (tests/cuemu).
#include <cuda_runtime_api.h>
#include <stdlib.h>

#include "base/cuda_check.h"
#include "qtrain/backend.h"
#include "kernels/int8_gemm.h" // int8cuda part
#include "kernels/activation.h"
#include "kernels/adamw.h"
#include "kernels/crossentropy.h"
#include "kernels/dqt.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gate.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/quant.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/softmax_clip.h"
#include "kernels/sumsq.h"
#include "kernels/swiglu.h"

// Elements of the fp32 staging buffer: conversions of larger tensors go through it in chunks
// (4 MiB of device memory bounds the cost of a backend that never converts much).
#define STAGE_ELEMS ((size_t)1 << 20)

// A device workspace of the context, grown by ws_reserve (see there why on first use).
typedef struct {
    void *ptr;
    size_t bytes;
} cuda_ws;

typedef struct {
    int device;
    qt_dtype dt;
    cudaStream_t stream;
    void *gemm;       // qt_cuda_gemm handle
    float *stage;     // (STAGE_ELEMS) device, fp32; NULL when dt is fp32 (no conversion)
    double *partials; // (qt_cuda_sumsq_scratch_size()) device
    // Device workspaces, each grown to the largest call it served (ws_reserve):
    cuda_ws s8_ws;  // linear_s8_fwd, linear_s8_dx: int8 codes and scales of the operands
    cuda_ws fq_ws;  // quant_fake: per-slice scales and zero points (kernels/cuda/quant.cu)
    cuda_ws dqt_ws; // dqt_step with stats: the reduction's scratch (kernels/cuda/dqt.cu)
} cuda_ctx;

#define CTX_OF(p) ((cuda_ctx *)(p))
#define STREAM(c) ((qt_cuda_stream)CTX_OF(c)->stream)
#define DT(c) (CTX_OF(c)->dt)

int qt_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); // clear it: "no driver" is an answer here, not an error
        return 0;
    }
    return n;
}

// ---- memory -------------------------------------------------------------------------------

static qt_status cuda_alloc(void *ctx, void **ptr, size_t bytes) {
    (void)ctx;
    *ptr = NULL;
    // cudaMalloc of 0 bytes returns NULL, which callers take for failure: allocate one unit.
    cudaError_t err = cudaMalloc(ptr, bytes ? bytes : 256);
    if (err != cudaSuccess) {
        *ptr = NULL;
        return qt_error(err == cudaErrorMemoryAllocation ? QT_ERR_OOM : QT_ERR_CUDA,
                        "cudaMalloc(%zu bytes) failed at %s:%d: %s; reduce train.batch_size or "
                        "the model size",
                        bytes, __FILE__, __LINE__, cudaGetErrorString(err));
    }
    return QT_OK;
}

static void cuda_free(void *ctx, void *ptr) {
    (void)ctx;
    // The interface's free cannot report; cudaFree fails only on a pointer cudaMalloc did not
    // return (a caller bug) or an earlier asynchronous fault, which the next op reports.
    (void)cudaFree(ptr);
}

static qt_status cuda_zero(void *ctx, void *ptr, size_t bytes) {
    if (bytes) QT_CHECK_CUDA(cudaMemsetAsync(ptr, 0, bytes, CTX_OF(ctx)->stream));
    return QT_OK;
}

// Copies wait for the stream, so the host buffer may be reused (or freed) on return.
static qt_status copy_sync(void *ctx, void *dst, const void *src, size_t bytes,
                           enum cudaMemcpyKind kind) {
    cudaStream_t s = CTX_OF(ctx)->stream;
    if (bytes) QT_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, kind, s));
    QT_CHECK_CUDA(cudaStreamSynchronize(s));
    return QT_OK;
}

static qt_status cuda_to_host(void *ctx, void *dst_host, const void *src, size_t bytes) {
    return copy_sync(ctx, dst_host, src, bytes, cudaMemcpyDeviceToHost);
}

static qt_status cuda_to_device(void *ctx, void *dst, const void *src_host, size_t bytes) {
    return copy_sync(ctx, dst, src_host, bytes, cudaMemcpyHostToDevice);
}

// dst_host (n, fp32) = src (n, dt): cast on the device into the staging buffer, chunk by chunk.
static qt_status cuda_to_host_f32(void *ctx, float *dst_host, const void *src, size_t n) {
    cuda_ctx *c = CTX_OF(ctx);
    if (c->dt == QT_DTYPE_F32) return cuda_to_host(ctx, dst_host, src, n * sizeof(float));
    size_t es = qt_dtype_size(c->dt);
    for (size_t i = 0; i < n; i += STAGE_ELEMS) {
        size_t k = n - i < STAGE_ELEMS ? n - i : STAGE_ELEMS;
        QT_TRY(qt_cuda_cast(STREAM(ctx), QT_DTYPE_F32, c->stage, c->dt, QT_AT(src, es, i), k));
        QT_TRY(cuda_to_host(ctx, dst_host + i, c->stage, k * sizeof(float)));
    }
    return QT_OK;
}

// dst (n, dt) = src_host (n, fp32), rounded to nearest even on the device.
static qt_status cuda_to_device_f32(void *ctx, void *dst, const float *src_host, size_t n) {
    cuda_ctx *c = CTX_OF(ctx);
    if (c->dt == QT_DTYPE_F32) return cuda_to_device(ctx, dst, src_host, n * sizeof(float));
    size_t es = qt_dtype_size(c->dt);
    for (size_t i = 0; i < n; i += STAGE_ELEMS) {
        size_t k = n - i < STAGE_ELEMS ? n - i : STAGE_ELEMS;
        QT_TRY(cuda_to_device(ctx, c->stage, src_host + i, k * sizeof(float)));
        QT_TRY(qt_cuda_cast(STREAM(ctx), c->dt, QT_AT(dst, es, i), QT_DTYPE_F32, c->stage, k));
    }
    // Complete on return, like the other copies.
    QT_CHECK_CUDA(cudaStreamSynchronize(c->stream));
    return QT_OK;
}

// Makes workspace *ws at least `bytes`; op and what name it in the error. A pending op may still
// read the old buffer, so the stream is drained before it is freed.
//
// Grown on first use rather than sized at init, and equivalent to that: a training step makes
// the same calls with the same shapes every step (the model's B, T and tensor shapes are fixed;
// a quantizer's parameters change only in their random stream), and the first step makes all
// of them (the forward and backward of every block linear, every quantizer role, every Adam
// moment and every DQT tensor; a step that fp16 loss scaling skips stops before the optimizer's,
// which the next applied step makes). So the workspaces reach their size in the first step and
// no later step allocates, without the model knowing each backend's workspace layout (measured
// in test_cuda_backend_emu: every growth falls in a run's first step). Evaluation and sampling
// run T' <= T: never larger.
static qt_status ws_reserve(cuda_ctx *c, cuda_ws *ws, size_t bytes, const char *op,
                            const char *what) {
    if (ws->bytes >= bytes) return QT_OK;
    if (ws->ptr) {
        QT_CHECK_CUDA(cudaStreamSynchronize(c->stream));
        QT_CHECK_CUDA(cudaFree(ws->ptr));
        ws->ptr = NULL;
        ws->bytes = 0;
    }
    cudaError_t err = cudaMalloc(&ws->ptr, bytes);
    if (err != cudaSuccess) {
        ws->ptr = NULL;
        return qt_error(err == cudaErrorMemoryAllocation ? QT_ERR_OOM : QT_ERR_CUDA,
                        "%s: cudaMalloc(%zu bytes of %s) failed at %s:%d: %s", op, bytes, what,
                        __FILE__, __LINE__, cudaGetErrorString(err));
    }
    ws->bytes = bytes;
    return QT_OK;
}

static qt_status cuda_sync(void *ctx) {
    QT_CHECK_CUDA(cudaStreamSynchronize(CTX_OF(ctx)->stream));
    return QT_OK;
}

static void cuda_destroy(void *ctx) {
    cuda_ctx *c = CTX_OF(ctx);
    if (!c) return;
    // Teardown cannot report; each release is attempted whatever the others return.
    if (c->stream) (void)cudaStreamSynchronize(c->stream);
    if (c->gemm) qt_cuda_gemm_destroy(c->gemm);
    if (c->stage) (void)cudaFree(c->stage);
    if (c->partials) (void)cudaFree(c->partials);
    if (c->s8_ws.ptr) (void)cudaFree(c->s8_ws.ptr);
    if (c->fq_ws.ptr) (void)cudaFree(c->fq_ws.ptr);
    if (c->dqt_ws.ptr) (void)cudaFree(c->dqt_ws.ptr);
    // The INT8 cuBLASLt path keeps the stream of its last call (to wait for it before reusing
    // its workspace): release it before that stream goes away (found on the first GPU run).
    qt_cuda_int8_release();
    if (c->stream) (void)cudaStreamDestroy(c->stream);
    free(c);
}

// ---- GEMM and linear ----------------------------------------------------------------------

static qt_status cuda_gemm(void *ctx, const qt_gemm_desc *d, const void *A, const void *B,
                           void *C) {
    return qt_cuda_gemm(STREAM(ctx), DT(ctx), d, A, B, C, CTX_OF(ctx)->gemm);
}

// out (N, OC) = x (N, IC) w^T (w: (OC, IC)), then += b (OC) when given.
static qt_status cuda_linear_fwd(void *ctx, void *out, const void *x, const void *w,
                                 const void *b, int N, int IC, int OC) {
    if (N <= 0 || OC <= 0) return QT_OK;
    qt_gemm_desc d = qt_gemm_desc_single(0, 1, N, OC, IC, 0.0f, IC, IC, OC);
    QT_TRY(cuda_gemm(ctx, &d, x, w, out));
    if (b) QT_TRY(qt_cuda_bias_add(STREAM(ctx), DT(ctx), out, b, N, OC));
    return QT_OK;
}

// dx (N, IC) += dout w; dw (OC, IC) += dout^T x; db (OC) += column sums of dout (N, OC).
static qt_status cuda_linear_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout,
                                 const void *x, const void *w, int N, int IC, int OC) {
    if (N <= 0 || OC <= 0) return QT_OK;
    if (dx) {
        qt_gemm_desc d = qt_gemm_desc_single(0, 0, N, IC, OC, 1.0f, OC, IC, IC);
        QT_TRY(cuda_gemm(ctx, &d, dout, w, dx));
    }
    if (dw) {
        qt_gemm_desc d = qt_gemm_desc_single(1, 0, OC, IC, N, 1.0f, OC, IC, IC);
        QT_TRY(cuda_gemm(ctx, &d, dout, x, dw));
    }
    if (db) QT_TRY(qt_cuda_bias_grad(STREAM(ctx), DT(ctx), db, dout, N, OC));
    return QT_OK;
}

// ---- the remaining ops: launchers on the context's stream and dtype ------------------------

static qt_status cuda_softmax_clip_fwd(void *ctx, const qt_softmax_params *prm, void *probs,
                                       float *p, const void *scores, const int *lens, int rows,
                                       int cols) {
    return qt_cuda_softmax_clip_fwd(STREAM(ctx), DT(ctx), prm, probs, p, scores, lens, rows,
                                    cols);
}
static qt_status cuda_softmax_clip_bwd(void *ctx, const qt_softmax_params *prm, void *dscores,
                                       const void *dprobs, const float *p, const int *lens,
                                       int rows, int cols) {
    return qt_cuda_softmax_clip_bwd(STREAM(ctx), DT(ctx), prm, dscores, dprobs, p, lens, rows,
                                    cols);
}
static qt_status cuda_gate_fwd(void *ctx, const qt_gate_shape *g, float *gate, float *hidden,
                               const void *x, const void *w1, const void *b1, const void *w2,
                               const void *b2, int N, int C) {
    return qt_cuda_gate_fwd(STREAM(ctx), DT(ctx), g, gate, hidden, x, w1, b1, w2, b2, N, C);
}
static qt_status cuda_gate_bwd(void *ctx, const qt_gate_shape *g, void *dx, void *dw1,
                               void *db1, void *dw2, void *db2, const float *dgate,
                               const float *gate, const float *hidden, const void *x,
                               const void *w1, const void *w2, int N, int C) {
    return qt_cuda_gate_bwd(STREAM(ctx), DT(ctx), g, dx, dw1, db1, dw2, db2, dgate, gate, hidden,
                            x, w1, w2, N, C);
}
static qt_status cuda_gate_mul_fwd(void *ctx, void *out, const float *gate, const void *ctxv,
                                   int N, int C, int H) {
    return qt_cuda_gate_mul_fwd(STREAM(ctx), DT(ctx), out, gate, ctxv, N, C, H);
}
static qt_status cuda_gate_mul_bwd(void *ctx, void *dctx, float *dgate, const void *dout,
                                   const float *gate, const void *ctxv, int N, int C, int H) {
    return qt_cuda_gate_mul_bwd(STREAM(ctx), DT(ctx), dctx, dgate, dout, gate, ctxv, N, C, H);
}
static qt_status cuda_layernorm_fwd(void *ctx, void *out, float *mean, float *rstd,
                                    const void *x, const void *w, const void *b, int N, int C) {
    return qt_cuda_layernorm_fwd(STREAM(ctx), DT(ctx), out, mean, rstd, x, w, b, N, C);
}
static qt_status cuda_layernorm_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout,
                                    const void *x, const float *mean, const float *rstd,
                                    const void *w, int N, int C) {
    return qt_cuda_layernorm_bwd(STREAM(ctx), DT(ctx), dx, dw, db, dout, x, mean, rstd, w, N, C);
}
static qt_status cuda_gelu_fwd(void *ctx, void *out, const void *x, size_t n) {
    return qt_cuda_gelu_fwd(STREAM(ctx), DT(ctx), out, x, n);
}
static qt_status cuda_gelu_bwd(void *ctx, void *dx, const void *dout, const void *x, size_t n) {
    return qt_cuda_gelu_bwd(STREAM(ctx), DT(ctx), dx, dout, x, n);
}
static qt_status cuda_relu_fwd(void *ctx, void *out, const void *x, size_t n) {
    return qt_cuda_relu_fwd(STREAM(ctx), DT(ctx), out, x, n);
}
static qt_status cuda_relu_bwd(void *ctx, void *dx, const void *dout, const void *x, size_t n) {
    return qt_cuda_relu_bwd(STREAM(ctx), DT(ctx), dx, dout, x, n);
}
static qt_status cuda_embedding_fwd(void *ctx, void *out, const int *tokens, const void *wte,
                                    const void *wpe, int B, int T, int C) {
    return qt_cuda_embedding_fwd(STREAM(ctx), DT(ctx), out, tokens, wte, wpe, B, T, C);
}
static qt_status cuda_embedding_bwd(void *ctx, void *dwte, void *dwpe, const void *dout,
                                    const int *tokens, int B, int T, int C) {
    return qt_cuda_embedding_bwd(STREAM(ctx), DT(ctx), dwte, dwpe, dout, tokens, B, T, C);
}
static qt_status cuda_add(void *ctx, void *out, const void *a, const void *b, size_t n) {
    return qt_cuda_add(STREAM(ctx), DT(ctx), out, a, b, n);
}
static qt_status cuda_dropout_fwd(void *ctx, void *out, const void *x, size_t n, float prob,
                                  uint64_t seed, uint64_t stream) {
    return qt_cuda_dropout_fwd(STREAM(ctx), DT(ctx), out, x, n, prob, seed, stream);
}
static qt_status cuda_dropout_bwd(void *ctx, void *dx, const void *dout, size_t n, float prob,
                                  uint64_t seed, uint64_t stream) {
    return qt_cuda_dropout_bwd(STREAM(ctx), DT(ctx), dx, dout, n, prob, seed, stream);
}
static qt_status cuda_crossentropy_fwd(void *ctx, float *losses, void *probs, const void *logits,
                                       const int *targets, int N, int V) {
    return qt_cuda_crossentropy_fwd(STREAM(ctx), DT(ctx), losses, probs, logits, targets, N, V);
}
static qt_status cuda_crossentropy_bwd(void *ctx, void *dlogits, const float *dlosses,
                                       const void *probs, const int *targets, int N, int V) {
    return qt_cuda_crossentropy_bwd(STREAM(ctx), DT(ctx), dlogits, dlosses, probs, targets, N,
                                    V);
}
static qt_status cuda_adamw_step(void *ctx, void *param, float *master, const void *grad,
                                 float *m, float *v, size_t n, const qt_adamw_params *prm) {
    return qt_cuda_adamw_step(STREAM(ctx), DT(ctx), param, master, grad, m, v, n, prm);
}
static qt_status cuda_sumsq(void *ctx, double *out, const void *x, size_t n) {
    return qt_cuda_sumsq(STREAM(ctx), DT(ctx), out, x, n, CTX_OF(ctx)->partials);
}
// ---- LLaMA family (llama part): kernels/cuda/rmsnorm.cu, rope.cu, swiglu.cu
static qt_status cuda_rmsnorm_fwd(void *ctx, void *out, float *rstd, const void *x,
                                  const void *w, int N, int C) {
    return qt_cuda_rmsnorm_fwd(STREAM(ctx), DT(ctx), out, rstd, x, w, N, C);
}
static qt_status cuda_rmsnorm_bwd(void *ctx, void *dx, void *dw, const void *dout, const void *x,
                                  const float *rstd, const void *w, int N, int C) {
    return qt_cuda_rmsnorm_bwd(STREAM(ctx), DT(ctx), dx, dw, dout, x, rstd, w, N, C);
}
static qt_status cuda_rope_fwd(void *ctx, void *qkv, int B, int T, int C, int H, float theta) {
    return qt_cuda_rope_fwd(STREAM(ctx), DT(ctx), qkv, B, T, C, H, theta);
}
static qt_status cuda_rope_bwd(void *ctx, void *dqkv, int B, int T, int C, int H, float theta) {
    return qt_cuda_rope_bwd(STREAM(ctx), DT(ctx), dqkv, B, T, C, H, theta);
}
static qt_status cuda_swiglu_fwd(void *ctx, void *out, const void *x, int N, int F) {
    return qt_cuda_swiglu_fwd(STREAM(ctx), DT(ctx), out, x, N, F);
}
static qt_status cuda_swiglu_bwd(void *ctx, void *dx, const void *dout, const void *x, int N,
                                 int F) {
    return qt_cuda_swiglu_bwd(STREAM(ctx), DT(ctx), dx, dout, x, N, F);
}
// ---- end of the llama part

// ---- W8A8 linear through the INT8 GEMM (int8cuda part): kernels/cuda/quant.cu quantizes x
// per token or per tensor and w per channel or per tensor to int8 codes + fp32 scales in the
// context's workspace, then kernels/cuda/int8_gemm.cu multiplies them (QT_CUDA_INT8 picks mma
// or cuBLASLt) with the dequantization and bias fused in its epilogue.

static size_t s8_round256(size_t x) { return (x + 255) / 256 * 256; }

// out (N, OC) = Qa(x (N, IC)) Qw(w (OC, IC))^T + b (OC).
static qt_status cuda_linear_s8_fwd(void *ctx, void *out, const void *x, const void *w,
                                    const void *b, int N, int IC, int OC,
                                    const qt_quant_params *aq, const qt_quant_params *wq) {
    cuda_ctx *c = CTX_OF(ctx);
    QT_TRY(qt_quant_check_s8_linear("cuda linear_s8_fwd", aq, wq, N, IC, OC));
    if (N == 0 || OC == 0) return QT_OK;
    // workspace: x codes (N, IC) | w codes (OC, IC) | x scales (N or 1) | w scales (OC or 1)
    const size_t nx = (size_t)N * (size_t)IC, nw = (size_t)OC * (size_t)IC;
    const size_t off_w = s8_round256(nx), off_xs = off_w + s8_round256(nw);
    const size_t off_ws = off_xs + s8_round256((size_t)N * sizeof(float));
    QT_TRY(ws_reserve(c, &c->s8_ws, off_ws + (size_t)OC * sizeof(float), "cuda linear_s8_fwd",
                      "int8 workspace"));
    char *ws = (char *)c->s8_ws.ptr;
    int8_t *xc = (int8_t *)ws, *wc = (int8_t *)(ws + off_w);
    float *xs = (float *)(ws + off_xs), *wsc = (float *)(ws + off_ws);
    QT_TRY(qt_cuda_quant_quantize(STREAM(ctx), c->dt, aq, xc, xs, NULL, x, (size_t)N,
                                  (size_t)IC));
    QT_TRY(qt_cuda_quant_quantize(STREAM(ctx), c->dt, wq, wc, wsc, NULL, w, (size_t)OC,
                                  (size_t)IC));
    return qt_cuda_linear_s8_ex(STREAM(ctx), c->dt, out, xc, xs, aq->granularity == QT_QUANT_PER_ROW, wc, wsc, wq->granularity == QT_QUANT_PER_ROW, b, N, OC, IC, QT_CUDA_INT8_DEFAULT);
}
// ---- end of the int8cuda part

// ---- SwitchBack's dX on the INT8 GEMM (s8dx part): dx (N, IC) += Qg(g (N, OC)) Qw(w (OC, IC)),
// g per token and w per tensor. The TN GEMM wants B (IC, OC), so the weight codes are
// transposed (kernels/cuda/int8_gemm.cu, qt_cuda_transpose_s8); the product is written into
// the workspace in the backend's dtype and added to dx (the GEMM's epilogue overwrites). CPU
// twin: cpu_linear_s8_dx (host/backends/backend_cpu.c).
static qt_status cuda_linear_s8_dx(void *ctx, void *dx, const void *g, const void *w, int N,
                                   int IC, int OC, const qt_quant_params *gq,
                                   const qt_quant_params *wq) {
    cuda_ctx *c = CTX_OF(ctx);
    QT_TRY(qt_quant_check_s8_dx("cuda linear_s8_dx", gq, wq, N, IC, OC));
    if (!dx || !g || !w)
        return qt_error(QT_ERR_ARG, "cuda linear_s8_dx: dx, g or w is NULL; pass device (N, IC), "
                        "(N, OC), (OC, IC)");
    // workspace: g codes (N, OC) | w codes (OC, IC) | w^T codes (IC, OC) | g scales (N) |
    // w scale (1) | product (N, IC) of dt
    const size_t ng = (size_t)N * (size_t)OC, nw = (size_t)OC * (size_t)IC;
    const size_t nx = (size_t)N * (size_t)IC;
    const size_t off_w = s8_round256(ng), off_wt = off_w + s8_round256(nw);
    const size_t off_gs = off_wt + s8_round256(nw);
    const size_t off_ws = off_gs + s8_round256((size_t)N * sizeof(float));
    const size_t off_p = off_ws + 256;
    QT_TRY(ws_reserve(c, &c->s8_ws, off_p + nx * qt_dtype_size(c->dt), "cuda linear_s8_dx",
                      "int8 workspace"));
    char *ws = (char *)c->s8_ws.ptr;
    int8_t *gc = (int8_t *)ws, *wc = (int8_t *)(ws + off_w), *wt = (int8_t *)(ws + off_wt);
    float *gs = (float *)(ws + off_gs), *wsc = (float *)(ws + off_ws);
    void *prod = ws + off_p;
    QT_TRY(qt_cuda_quant_quantize(STREAM(ctx), c->dt, gq, gc, gs, NULL, g, (size_t)N,
                                  (size_t)OC));
    QT_TRY(qt_cuda_quant_quantize(STREAM(ctx), c->dt, wq, wc, wsc, NULL, w, (size_t)OC,
                                  (size_t)IC));
    QT_TRY(qt_cuda_transpose_s8(STREAM(ctx), wt, wc, OC, IC));
    // prod (N, IC) = (gc (N, OC) wt (IC, OC)^T) * gs[n] * wsc[0]
    QT_TRY(qt_cuda_linear_s8_ex(STREAM(ctx), c->dt, prod, gc, gs, 1, wt, wsc, 0, NULL, N, IC, OC, QT_CUDA_INT8_DEFAULT));
    return qt_cuda_add(STREAM(ctx), c->dt, dx, dx, prod, nx);
}
// ---- end of the s8dx part

// ---- quantized training (dqt part): fake quantization (kernels/cuda/quant.cu) and direct
// quantized training (kernels/cuda/dqt.cu) on the context's stream and dtype.

// out = dequant(quant(x)), x and out (rows, cols) of dt: the backend's dtype, or fp32
// (optimizer state). Ranges absmax and absmean (the kernels' ranges).
static qt_status cuda_quant_fake(void *ctx, qt_dtype dt, const qt_quant_params *p, void *out,
                                 const void *x, size_t rows, size_t cols) {
    cuda_ctx *c = CTX_OF(ctx);
    if (dt != c->dt && dt != QT_DTYPE_F32)
        return qt_error(QT_ERR_ARG,
                        "cuda quant_fake: dtype %s is neither the backend's (%s) nor fp32",
                        qt_dtype_name(dt), qt_dtype_name(c->dt));
    if (p && (p->range == QT_QUANT_RANGE_RUNNING || p->range == QT_QUANT_RANGE_FIXED))
        return qt_error(QT_ERR_ARG, "cuda quant_fake: the running and fixed ranges need a "
                                    "qt_quant_running state the backend does not keep; use "
                                    "absmax or absmean");
    QT_TRY(qt_quant_check(p, rows, cols, NULL));
    if (rows == 0 || cols == 0) return QT_OK;
    // workspace: scales (ns fp32) | zero points (ns int32, asymmetric grids only)
    const size_t ns = qt_quant_num_scales(p, rows, cols);
    const size_t zoff = (ns * sizeof(float) + 255) / 256 * 256;
    QT_TRY(ws_reserve(c, &c->fq_ws, zoff + (p->symmetric ? 0 : ns * sizeof(int32_t)),
                      "cuda quant_fake", "scale workspace"));
    float *scales = (float *)c->fq_ws.ptr;
    int32_t *zeros = p->symmetric ? NULL : (int32_t *)((char *)c->fq_ws.ptr + zoff);
    return qt_cuda_quant_fake(STREAM(ctx), dt, p, out, x, rows, cols, scales, zeros);
}

// out (n, the backend's dtype) = codes (n, int8) * scale.
static qt_status cuda_dqt_dequant(void *ctx, void *out, const int8_t *codes, float scale,
                                  size_t n) {
    return qt_cuda_dqt_dequant(STREAM(ctx), DT(ctx), out, codes, scale, n);
}

// One DQT step; grad (n) in the backend's dtype; stats (host, may be NULL) waits for them,
// reduced in the context's dqt_ws (ws_reserve: grown during the first step, not per call).
static qt_status cuda_dqt_step(void *ctx, const qt_dqt_params *dp, int8_t *codes,
                               const void *grad, float *m, float *v, size_t n,
                               qt_dqt_stats *stats) {
    cuda_ctx *c = CTX_OF(ctx);
    if (stats)
        QT_TRY(ws_reserve(c, &c->dqt_ws, qt_cuda_dqt_scratch_bytes(n), "cuda dqt_step",
                          "stats scratch"));
    return qt_cuda_dqt_step(STREAM(ctx), DT(ctx), dp, codes, grad, m, v, n, stats,
                            stats ? c->dqt_ws.ptr : NULL);
}
// ---- end of the dqt part

static const qt_backend_ops cuda_ops = {
    .alloc = cuda_alloc,
    .free = cuda_free,
    .zero = cuda_zero,
    .to_host = cuda_to_host,
    .to_device = cuda_to_device,
    .to_host_f32 = cuda_to_host_f32,
    .to_device_f32 = cuda_to_device_f32,
    .sync = cuda_sync,
    .destroy = cuda_destroy,
    .gemm = cuda_gemm,
    .linear_fwd = cuda_linear_fwd,
    .linear_bwd = cuda_linear_bwd,
    .attention_flash_fwd = NULL, // composed by the model from gemm + softmax_clip
    .attention_flash_bwd = NULL,
    .softmax_clip_sink_fwd = NULL, // attn.sink: refused at model init
    .softmax_clip_sink_bwd = NULL,
    .softmax_clip_fwd = cuda_softmax_clip_fwd,
    .softmax_clip_bwd = cuda_softmax_clip_bwd,
    .gate_fwd = cuda_gate_fwd,
    .gate_bwd = cuda_gate_bwd,
    .gate_mul_fwd = cuda_gate_mul_fwd,
    .gate_mul_bwd = cuda_gate_mul_bwd,
    .layernorm_fwd = cuda_layernorm_fwd,
    .layernorm_bwd = cuda_layernorm_bwd,
    .gelu_fwd = cuda_gelu_fwd,
    .gelu_bwd = cuda_gelu_bwd,
    .relu_fwd = cuda_relu_fwd,
    .relu_bwd = cuda_relu_bwd,
    .embedding_fwd = cuda_embedding_fwd,
    .embedding_bwd = cuda_embedding_bwd,
    .add = cuda_add,
    .dropout_fwd = cuda_dropout_fwd,
    .dropout_bwd = cuda_dropout_bwd,
    .crossentropy_fwd = cuda_crossentropy_fwd,
    .crossentropy_bwd = cuda_crossentropy_bwd,
    .adamw_step = cuda_adamw_step,
    .sumsq = cuda_sumsq,
    .linear_s8_fwd = cuda_linear_s8_fwd, // int8cuda part
    .linear_s8_dx = cuda_linear_s8_dx,   // s8dx part
    // llama part
    .rmsnorm_fwd = cuda_rmsnorm_fwd,
    .rmsnorm_bwd = cuda_rmsnorm_bwd,
    .rope_fwd = cuda_rope_fwd,
    .rope_bwd = cuda_rope_bwd,
    .swiglu_fwd = cuda_swiglu_fwd,
    .swiglu_bwd = cuda_swiglu_bwd,
    // end of the llama part
    // dqt part
    .quant_fake = cuda_quant_fake,
    .dqt_dequant = cuda_dqt_dequant,
    .dqt_step = cuda_dqt_step,
    // end of the dqt part
};

// ---- init ---------------------------------------------------------------------------------

// Fills a zeroed context; on failure the caller destroys what was made.
static qt_status ctx_open(cuda_ctx *c, int device, qt_dtype dt) {
    c->device = device;
    c->dt = dt;
    QT_CHECK_CUDA(cudaSetDevice(device));
    QT_CHECK_CUDA(cudaStreamCreate(&c->stream));
    QT_TRY(qt_cuda_gemm_create(&c->gemm, 0));
    if (dt != QT_DTYPE_F32) QT_CHECK_CUDA(cudaMalloc((void **)&c->stage, STAGE_ELEMS * sizeof(float)));
    QT_CHECK_CUDA(cudaMalloc((void **)&c->partials, qt_cuda_sumsq_scratch_size() * sizeof(double)));
    return QT_OK;
}

qt_status qt_backend_cuda_init(qt_backend *be, int device, qt_dtype dt) {
    if (!be) return qt_error(QT_ERR_ARG, "qt_backend_cuda_init: backend is NULL");
    if (dt != QT_DTYPE_F32 && dt != QT_DTYPE_F16 && dt != QT_DTYPE_BF16)
        return qt_error(QT_ERR_ARG, "cuda backend: dtype %d is not fp32, fp16 or bf16", (int)dt);
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        return qt_error(QT_ERR_CUDA,
                        "cuda backend: cudaGetDeviceCount found no usable device (%s); check the "
                        "NVIDIA driver with nvidia-smi, or train on the CPU",
                        err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    }
    if (device < 0 || device >= count)
        return qt_error(QT_ERR_ARG, "cuda backend: device %d does not exist; use 0..%d", device,
                        count - 1);
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!c) return qt_error(QT_ERR_OOM, "cuda backend: cannot allocate the context");
    qt_status st = ctx_open(c, device, dt);
    if (st != QT_OK) {
        cuda_destroy(c);
        return st;
    }
    be->ops = &cuda_ops;
    be->ctx = c;
    be->name = "cuda";
    be->dtype = dt;
    be->threads = 1;
    return QT_OK;
}

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
// Composition: linear_fwd is one GEMM (the bias in its epilogue), linear_bwd two and a column sum;
// linear_act_fwd one GEMM with bias and GELU/ReLU in its epilogue, linear_act_dx one GEMM with
// DGELU's (ReLU's backward: the GEMM and relu_bwd), where qt_cuda_gemm_act_supported allows;
// attention_flash_fwd/bwd are the fused kernels (kernels/cuda/attention.cu) for fp16/bf16 and
// head dims 64, 128 (attention_flash_supports declines the rest: the model composes attention
// from gemm (strided-batched) and softmax_clip there); the sink variants of softmax_clip are NULL. Copies are synchronous for the caller (they wait
// for the stream), ops are not. Every CUDA runtime call is checked and reported with file:line
// (QT_CHECK_CUDA); the same source builds against libcudart or against the emulator's runtime
// (tests/cuemu).
//
// Launch records (include/qtrain/cuda_record.h; the recording part, marked below): each op asks
// its launchers' cost functions (base/cost.h) for the launches it makes and, while recording is
// on, appends them before it runs them; the memory ops record their memsets, copies and waits.
// The record-only ("dry") context records the same launches and runs none: no CUDA call at all.
//
// Issue 10 item 2 (marked parts): the two-level GEMMs' pointer tables are kept per (descriptor,
// A, B, C), so attention's GEMMs are one cuBLASLt call each after the first step (gemm_table
// part); adamw_multi is the optimizer step in one AdamW launch after the gradient norm, decided
// on the device, with one wait for the host (adamw_multi part).
#include <cuda_runtime_api.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cuda_check.h"
#include "qtrain/backend.h"
#include "qtrain/cuda_record.h"
#include "kernels/int8_gemm.h"
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
#include "kernels/attention.h"
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

// A kept pointer table (gemm_table part): the GEMM it serves and where it lies in tab_ws.
typedef struct {
    qt_gemm_desc d;
    const void *A, *B;
    void *C;
    size_t offset; // pointers into tab_ws
} gemm_tab;

typedef struct {
    int device;
    qt_dtype dt;
    cudaStream_t stream;
    void *gemm;       // qt_cuda_gemm handle
    float *stage;     // (STAGE_ELEMS) device, fp32; NULL when dt is fp32 (no conversion)
    double *partials; // (qt_cuda_sumsq_scratch_size()) device
    void *colsum;     // (qt_cuda_colsum_scratch_bytes()) device: split column sums
    // Device workspaces, each grown to the largest call it served (ws_reserve):
    cuda_ws s8_ws;  // linear_s8_fwd, linear_s8_dx: int8 codes and scales of the operands
    cuda_ws fq_ws;  // quant_fake: per-slice scales and zero points (kernels/cuda/quant.cu)
    cuda_ws dqt_ws; // dqt_step with stats: the reduction's scratch (kernels/cuda/dqt.cu)
    cuda_ws attn_ws; // attention_flash_bwd: dA and the per-row D (kernels/cuda/attention.cu)
    // ---- gemm_table part: the pointer tables of the two-level GEMMs (attention's), one per
    // distinct (descriptor, A, B, C), written once and kept (kernels/linear.h)
    cuda_ws tab_ws;   // pointers, device
    size_t tab_used;  // pointers handed out
    gemm_tab *tabs;   // (n_tabs) host
    int n_tabs, cap_tabs;
    // ---- adamw_multi part: the multi-tensor AdamW's chunk table (kernels/adamw.h), built from
    // the spans of its first call and rebuilt only when they change (first step only)
    cuda_ws chunk_ws;            // (n_chunks) qt_adamw_chunk, device
    qt_adamw_span *chunk_spans;  // (n_chunk_spans) host: the spans the table was built from
    int n_chunk_spans;           //
    size_t n_chunks, chunk_elems; // the table's chunks and their total elements
    // ---- recording part (include/qtrain/cuda_record.h)
    int dry;              // 1: record only, run nothing (qt_backend_cuda_init_dry)
    int recording;        // 1: each launch appends a record
    qt_cuda_record *recs; // (cap_recs) host
    size_t n_recs, cap_recs;
    uintptr_t dry_next;   // dry: the next address alloc hands out
    cudaEvent_t timer[2]; // qt_backend_cuda_timer_*: created on first use
    int have_timer;
} cuda_ctx;

#define CTX_OF(p) ((cuda_ctx *)(p))
#define STREAM(c) ((qt_cuda_stream)CTX_OF(c)->stream)
#define DT(c) (CTX_OF(c)->dt)
#define DRY(c) (CTX_OF(c)->dry)
// Records are made only while recording: otherwise an op pays this one branch.
#define RECORDING(c) (CTX_OF(c)->recording)

// ---- launch records (recording part) -------------------------------------------------------

// Appends the launches of k under backend op `op` with its shape (printf-style) while recording
// is on. QT_ERR_OOM when the records cannot grow; QT_ERR_ARG when a cost function dropped
// launches (its qt_cost overflowed: a bug to fix there).
static qt_status rec(void *ctx, const char *op, const qt_cost *k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static qt_status rec(void *ctx, const char *op, const qt_cost *k, const char *fmt, ...) {
    cuda_ctx *c = CTX_OF(ctx);
    if (!c->recording) return QT_OK;
    if (k->dropped)
        return qt_error(QT_ERR_ARG,
                        "cuda %s: its cost function listed more than %d launches; "
                        "raise QT_COST_MAX (base/cost.h)",
                        op, QT_COST_MAX);
    if (c->n_recs + (size_t)k->n > c->cap_recs) {
        size_t cap = c->cap_recs ? 2 * c->cap_recs : 4096;
        while (cap < c->n_recs + (size_t)k->n)
            cap *= 2;
        qt_cuda_record *r = realloc(c->recs, cap * sizeof *r);
        if (!r)
            return qt_error(QT_ERR_OOM, "cuda backend: cannot grow the launch records to %zu", cap);
        c->recs = r;
        c->cap_recs = cap;
    }
    char shape[sizeof c->recs[0].shape];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(shape, sizeof shape, fmt, ap);
    va_end(ap);
    for (int i = 0; i < k->n; i++) {
        qt_cuda_record *r = &c->recs[c->n_recs++];
        r->op = op;
        memcpy(r->shape, shape, sizeof shape);
        r->l = k->l[i];
    }
    return QT_OK;
}

// One launch of no family (memset, copy, wait) as a record.
static qt_status rec_one(void *ctx, const char *op, const char *name, qt_launch_kind kind,
                         double bytes, const char *shape) {
    if (!RECORDING(ctx)) return QT_OK;
    qt_cost k = {0};
    qt_cost_add(&k, name, kind, QT_MATH_NONE, bytes, 0, 1);
    return rec(ctx, op, &k, "%s", shape);
}

static qt_status rec_sync(void *ctx, const char *op) {
    return rec_one(ctx, op, "cudaStreamSynchronize", QT_LAUNCH_SYNC, 0, "");
}

int qt_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); // clear it: "no driver" is an answer here, not an error
        return 0;
    }
    return n;
}

// ---- memory -------------------------------------------------------------------------------

// Dry: a fresh 256-byte aligned range of a fake address space (never dereferenced), like
// cudaMalloc's alignment, so alignment-dependent launch choices match a real run.
static void *dry_alloc(cuda_ctx *c, size_t bytes) {
    void *p = (void *)c->dry_next;
    c->dry_next += (bytes + 511) / 256 * 256;
    return p;
}

static qt_status cuda_alloc(void *ctx, void **ptr, size_t bytes) {
    *ptr = NULL;
    if (DRY(ctx)) {
        *ptr = dry_alloc(CTX_OF(ctx), bytes);
        return QT_OK;
    }
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
    if (DRY(ctx)) return;
    // The interface's free cannot report; cudaFree fails only on a pointer cudaMalloc did not
    // return (a caller bug) or an earlier asynchronous fault, which the next op reports.
    (void)cudaFree(ptr);
}

static qt_status cuda_zero(void *ctx, void *ptr, size_t bytes) {
    if (!bytes) return QT_OK;
    if (RECORDING(ctx)) {
        char shape[32];
        snprintf(shape, sizeof shape, "bytes=%zu", bytes);
        QT_TRY(rec_one(ctx, "zero", "cudaMemsetAsync", QT_LAUNCH_MEMSET, (double)bytes, shape));
    }
    if (!DRY(ctx)) QT_CHECK_CUDA(cudaMemsetAsync(ptr, 0, bytes, CTX_OF(ctx)->stream));
    return QT_OK;
}

// Copies wait for the stream, so the host buffer may be reused (or freed) on return.
// Dry: nothing moves; a copy to the host reads zeros.
static qt_status copy_sync(void *ctx, const char *op, void *dst, const void *src, size_t bytes,
                           enum cudaMemcpyKind kind) {
    cudaStream_t s = CTX_OF(ctx)->stream;
    const int d2h = kind == cudaMemcpyDeviceToHost;
    if (bytes && RECORDING(ctx)) {
        char shape[32];
        snprintf(shape, sizeof shape, "bytes=%zu", bytes);
        const qt_launch_kind k = d2h ? QT_LAUNCH_COPY_D2H : QT_LAUNCH_COPY_H2D;
        QT_TRY(rec_one(ctx, op, "cudaMemcpyAsync", k, (double)bytes, shape));
    }
    QT_TRY(rec_sync(ctx, op));
    if (DRY(ctx)) {
        if (d2h && bytes) memset(dst, 0, bytes);
        return QT_OK;
    }
    if (bytes) QT_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, kind, s));
    QT_CHECK_CUDA(cudaStreamSynchronize(s));
    return QT_OK;
}

static qt_status cuda_to_host(void *ctx, void *dst_host, const void *src, size_t bytes) {
    return copy_sync(ctx, "to_host", dst_host, src, bytes, cudaMemcpyDeviceToHost);
}

static qt_status cuda_to_device(void *ctx, void *dst, const void *src_host, size_t bytes) {
    return copy_sync(ctx, "to_device", dst, src_host, bytes, cudaMemcpyHostToDevice);
}

// dst (n, dst_dt) = src (n, src_dt) on the stream, recorded under op.
static qt_status cast_run(void *ctx, const char *op, qt_dtype dst_dt, void *dst, qt_dtype src_dt,
                          const void *src, size_t n) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_cast_cost(&k, dst_dt, dst, src_dt, src, n);
        QT_TRY(rec(ctx, op, &k, "n=%zu", n));
    }
    return DRY(ctx) ? QT_OK : qt_cuda_cast(STREAM(ctx), dst_dt, dst, src_dt, src, n);
}

// dst_host (n, fp32) = src (n, dt): cast on the device into the staging buffer, chunk by chunk.
static qt_status cuda_to_host_f32(void *ctx, float *dst_host, const void *src, size_t n) {
    cuda_ctx *c = CTX_OF(ctx);
    if (c->dt == QT_DTYPE_F32)
        return copy_sync(ctx, "to_host_f32", dst_host, src, n * sizeof(float),
                         cudaMemcpyDeviceToHost);
    size_t es = qt_dtype_size(c->dt);
    for (size_t i = 0; i < n; i += STAGE_ELEMS) {
        size_t k = n - i < STAGE_ELEMS ? n - i : STAGE_ELEMS;
        QT_TRY(cast_run(ctx, "to_host_f32", QT_DTYPE_F32, c->stage, c->dt, QT_AT(src, es, i), k));
        QT_TRY(copy_sync(ctx, "to_host_f32", dst_host + i, c->stage, k * sizeof(float),
                         cudaMemcpyDeviceToHost));
    }
    return QT_OK;
}

// dst (n, dt) = src_host (n, fp32), rounded to nearest even on the device.
static qt_status cuda_to_device_f32(void *ctx, void *dst, const float *src_host, size_t n) {
    cuda_ctx *c = CTX_OF(ctx);
    if (c->dt == QT_DTYPE_F32)
        return copy_sync(ctx, "to_device_f32", dst, src_host, n * sizeof(float),
                         cudaMemcpyHostToDevice);
    size_t es = qt_dtype_size(c->dt);
    for (size_t i = 0; i < n; i += STAGE_ELEMS) {
        size_t k = n - i < STAGE_ELEMS ? n - i : STAGE_ELEMS;
        QT_TRY(copy_sync(ctx, "to_device_f32", c->stage, src_host + i, k * sizeof(float),
                         cudaMemcpyHostToDevice));
        QT_TRY(cast_run(ctx, "to_device_f32", c->dt, QT_AT(dst, es, i), QT_DTYPE_F32, c->stage, k));
    }
    // Complete on return, like the other copies.
    QT_TRY(rec_sync(ctx, "to_device_f32"));
    if (!DRY(ctx)) QT_CHECK_CUDA(cudaStreamSynchronize(c->stream));
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
    if (c->dry) {
        ws->ptr = dry_alloc(c, bytes);
        ws->bytes = bytes;
        return QT_OK;
    }
    if (ws->ptr) {
        QT_TRY(rec_sync(c, op));
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
    QT_TRY(rec_sync(ctx, "sync"));
    if (!DRY(ctx)) QT_CHECK_CUDA(cudaStreamSynchronize(CTX_OF(ctx)->stream));
    return QT_OK;
}

static void cuda_destroy(void *ctx) {
    cuda_ctx *c = CTX_OF(ctx);
    if (!c) return;
    free(c->recs);
    if (c->dry) { // nothing of the device's was made (nor may the INT8 path's state be touched)
        free(c->chunk_spans);
        free(c->tabs);
        free(c);
        return;
    }
    if (c->have_timer) {
        (void)cudaEventDestroy(c->timer[0]);
        (void)cudaEventDestroy(c->timer[1]);
    }
    // Teardown cannot report; each release is attempted whatever the others return.
    if (c->stream) (void)cudaStreamSynchronize(c->stream);
    if (c->gemm) qt_cuda_gemm_destroy(c->gemm);
    if (c->stage) (void)cudaFree(c->stage);
    if (c->partials) (void)cudaFree(c->partials);
    if (c->colsum) (void)cudaFree(c->colsum);
    if (c->s8_ws.ptr) (void)cudaFree(c->s8_ws.ptr);
    if (c->fq_ws.ptr) (void)cudaFree(c->fq_ws.ptr);
    if (c->dqt_ws.ptr) (void)cudaFree(c->dqt_ws.ptr);
    if (c->attn_ws.ptr) (void)cudaFree(c->attn_ws.ptr);
    if (c->chunk_ws.ptr) (void)cudaFree(c->chunk_ws.ptr);
    free(c->chunk_spans);
    if (c->tab_ws.ptr) (void)cudaFree(c->tab_ws.ptr);
    free(c->tabs);
    // The INT8 cuBLASLt path keeps the stream of its last call (to wait for it before reusing
    // its workspace): release it before that stream goes away (found on the first GPU run).
    qt_cuda_int8_release();
    if (c->stream) (void)cudaStreamDestroy(c->stream);
    free(c);
}

// ---- GEMM and linear ----------------------------------------------------------------------
// Every op below asks the cost functions of the launchers it calls (base/cost.h) for their
// launches with the same arguments, records them (rec: only while recording), then runs the
// launchers unless the context is dry.

static const char *gemm_shape_fmt = "M=%d N=%d K=%d batch=%d";

// The batched GEMM without a record of its own (the callers record it).
static qt_status gemm_run(void *ctx, const qt_gemm_desc *d, const void *A, const void *B, void *C) {
    return qt_cuda_gemm(STREAM(ctx), DT(ctx), d, A, B, C, CTX_OF(ctx)->gemm);
}

// ---- gemm_table part: attention's GEMMs run on the same buffers every step, so their pointer
// tables are written once (the first step) and kept: afterwards each is one cuBLASLt call.

// First pointer-table capacity (pointers, 512 KiB): OPT-125m's 72 tables take 41,472.
#define TAB_MIN_ENTRIES ((size_t)1 << 16)

static int tab_same(const gemm_tab *t, const qt_gemm_desc *d, const void *A, const void *B,
                    const void *C) {
    const qt_gemm_desc *e = &t->d;
    return t->A == A && t->B == B && t->C == C && e->trans_a == d->trans_a &&
           e->trans_b == d->trans_b && e->M == d->M && e->N == d->N && e->K == d->K &&
           e->lda == d->lda && e->ldb == d->ldb && e->ldc == d->ldc && e->batch == d->batch &&
           e->inner == d->inner && e->a_outer == d->a_outer && e->a_inner == d->a_inner &&
           e->b_outer == d->b_outer && e->b_inner == d->b_inner && e->c_outer == d->c_outer &&
           e->c_inner == d->c_inner;
}

// *table = the kept table of (d, A, B, C) (n pointers); *fresh = 1 when it was just made (the
// caller writes it). When the device buffer is full every table is dropped and the buffer
// grown: the tables are rewritten as they are next used (a first step's business: a step
// makes the same GEMMs every time).
static qt_status tab_find(cuda_ctx *c, const qt_gemm_desc *d, const void *A, const void *B,
                          void *C, size_t n, void ***table, int *fresh) {
    for (int i = 0; i < c->n_tabs; i++)
        if (tab_same(&c->tabs[i], d, A, B, C)) {
            *table = (void **)c->tab_ws.ptr + c->tabs[i].offset;
            *fresh = 0;
            return QT_OK;
        }
    if ((c->tab_used + n) * sizeof(void *) > c->tab_ws.bytes) {
        size_t want = c->tab_ws.bytes / sizeof(void *) * 2;
        if (want < TAB_MIN_ENTRIES) want = TAB_MIN_ENTRIES;
        while (want < c->tab_used + n) want *= 2;
        QT_TRY(ws_reserve(c, &c->tab_ws, want * sizeof(void *), "cuda gemm", "pointer tables"));
        c->n_tabs = 0;
        c->tab_used = 0;
    }
    if (c->n_tabs == c->cap_tabs) {
        int cap = c->cap_tabs ? 2 * c->cap_tabs : 64;
        gemm_tab *t = realloc(c->tabs, (size_t)cap * sizeof *t);
        if (!t) return qt_error(QT_ERR_OOM, "cuda gemm: cannot grow the pointer tables to %d", cap);
        c->tabs = t;
        c->cap_tabs = cap;
    }
    gemm_tab *t = &c->tabs[c->n_tabs++];
    t->d = *d;
    t->A = A;
    t->B = B;
    t->C = C;
    t->offset = c->tab_used;
    c->tab_used += n;
    *table = (void **)c->tab_ws.ptr + t->offset;
    *fresh = 1;
    return QT_OK;
}

// The two-level GEMM through its kept table (n pointers).
static qt_status gemm_tabled(void *ctx, const qt_gemm_desc *d, const void *A, const void *B,
                             void *C, size_t n) {
    cuda_ctx *c = CTX_OF(ctx);
    void **table = NULL;
    int fresh = 0;
    QT_TRY(tab_find(c, d, A, B, C, n, &table, &fresh));
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        if (fresh) qt_cuda_gemm_table_write_cost(&k, c->dt, d, A, B, C, table);
        qt_cuda_gemm_tabled_cost(&k, c->dt, d, A, B, C, table);
        QT_TRY(rec(ctx, "gemm", &k, gemm_shape_fmt, d->M, d->N, d->K, d->batch));
    }
    if (c->dry) return QT_OK;
    if (fresh) {
        qt_status st = qt_cuda_gemm_table_write(STREAM(ctx), c->dt, d, A, B, C, table);
        if (st != QT_OK) { // a refused GEMM keeps no table
            c->n_tabs--;
            c->tab_used -= n;
            return st;
        }
    }
    return qt_cuda_gemm_tabled(STREAM(ctx), c->dt, d, A, B, C, table, c->gemm);
}
// ---- end of the gemm_table part

static qt_status cuda_gemm(void *ctx, const qt_gemm_desc *d, const void *A, const void *B,
                           void *C) {
    const size_t n = qt_cuda_gemm_table_entries(d);
    if (n) return gemm_tabled(ctx, d, A, B, C, n); // gemm_table part
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_gemm_cost(&k, DT(ctx), d, A, B, C);
        QT_TRY(rec(ctx, "gemm", &k, gemm_shape_fmt, d ? d->M : 0, d ? d->N : 0, d ? d->K : 0,
                   d ? d->batch : 0));
    }
    return DRY(ctx) ? QT_OK : gemm_run(ctx, d, A, B, C);
}

// out (N, OC) = x (N, IC) w^T (w: (OC, IC)) + b (OC) when given: the bias in the GEMM's
// epilogue (one launch, one rounding).
static qt_status cuda_linear_fwd(void *ctx, void *out, const void *x, const void *w,
                                 const void *b, int N, int IC, int OC) {
    if (N <= 0 || OC <= 0) return QT_OK;
    qt_gemm_desc d = qt_gemm_desc_single(0, 1, N, OC, IC, 0.0f, IC, IC, OC);
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        if (b)
            qt_cuda_gemm_bias_cost(&k, DT(ctx), &d, x, w, out, b);
        else
            qt_cuda_gemm_cost(&k, DT(ctx), &d, x, w, out);
        QT_TRY(rec(ctx, "linear_fwd", &k, "N=%d IC=%d OC=%d", N, IC, OC));
    }
    if (DRY(ctx)) return QT_OK;
    if (b) return qt_cuda_gemm_bias(STREAM(ctx), DT(ctx), &d, x, w, out, b, CTX_OF(ctx)->gemm);
    return gemm_run(ctx, &d, x, w, out);
}

// dx (N, IC) += dout w; dw (OC, IC) += dout^T x; db (OC) += column sums of dout (N, OC).
static qt_status cuda_linear_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout,
                                 const void *x, const void *w, int N, int IC, int OC) {
    if (N <= 0 || OC <= 0) return QT_OK;
    qt_gemm_desc ddx = qt_gemm_desc_single(0, 0, N, IC, OC, 1.0f, OC, IC, IC);
    qt_gemm_desc ddw = qt_gemm_desc_single(1, 0, OC, IC, N, 1.0f, OC, IC, IC);
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        if (dx) qt_cuda_gemm_cost(&k, DT(ctx), &ddx, dout, w, dx);
        if (dw) qt_cuda_gemm_cost(&k, DT(ctx), &ddw, dout, x, dw);
        if (db) qt_cuda_bias_grad_cost(&k, DT(ctx), db, dout, N, OC, CTX_OF(ctx)->colsum);
        QT_TRY(rec(ctx, "linear_bwd", &k, "N=%d IC=%d OC=%d", N, IC, OC));
    }
    if (DRY(ctx)) return QT_OK;
    if (dx) QT_TRY(gemm_run(ctx, &ddx, dout, w, dx));
    if (dw) QT_TRY(gemm_run(ctx, &ddw, dout, x, dw));
    if (db) QT_TRY(qt_cuda_bias_grad(STREAM(ctx), DT(ctx), db, dout, N, OC, CTX_OF(ctx)->colsum));
    return QT_OK;
}

// ---- the remaining ops: launchers on the context's stream and dtype ------------------------
// Each: the launches its launcher makes for these arguments (its _cost twin), their record,
// then the launcher itself unless the context is dry (RUN).
#define RUN(fn, ...) (DRY(ctx) ? QT_OK : fn(STREAM(ctx), DT(ctx), __VA_ARGS__))

// The fused attention (kernels/cuda/attention.cu): fp16/bf16, head dims 64 and 128; other
// shapes are declined through attention_flash_supports (the model composes them).
static int cuda_attention_flash_supports(void *ctx, const qt_attn_params *ap, int C, int H) {
    (void)ap;
    return H > 0 && C % H == 0 && qt_cuda_attention_flash_supported(DT(ctx), C / H);
}
static qt_status cuda_attention_flash_fwd(void *ctx, const qt_attn_params *ap, void *out,
                                          void *ctxv, float *lse, float *R, int64_t *nzero,
                                          const void *qkv, const float *gate, const void *sink,
                                          const int *lens, int B, int T, int C, int H) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_attention_flash_fwd_cost(&k, DT(ctx), ap, R != NULL, B, T, C, H);
        QT_TRY(rec(ctx, "attention_flash_fwd", &k, "B=%d T=%d C=%d H=%d", B, T, C, H));
    }
    return RUN(qt_cuda_attention_flash_fwd, ap, out, ctxv, lse, R, nzero, qkv, gate, sink, lens,
               B, T, C, H);
}
// Its workspace (dA, D) lives in the context's attn_ws (ws_reserve: grown on first use).
static qt_status cuda_attention_flash_bwd(void *ctx, const qt_attn_params *ap, void *dqkv,
                                          float *dgate, void *dsink, const void *dout,
                                          const void *qkv, const void *ctxv, const float *lse,
                                          const float *R, const float *gate, const void *sink,
                                          const int *lens, int B, int T, int C, int H) {
    cuda_ctx *c = CTX_OF(ctx);
    const size_t bytes = qt_cuda_attention_flash_ws_bytes(c->dt, B, T, C, H);
    QT_TRY(ws_reserve(c, &c->attn_ws, bytes, "cuda attention_flash_bwd", "dA and D"));
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_attention_flash_bwd_cost(&k, c->dt, ap, B, T, C, H);
        QT_TRY(rec(ctx, "attention_flash_bwd", &k, "B=%d T=%d C=%d H=%d", B, T, C, H));
    }
    return RUN(qt_cuda_attention_flash_bwd, ap, dqkv, dgate, dsink, dout, qkv, ctxv, lse, R, gate,
               sink, lens, B, T, C, H, c->attn_ws.ptr, bytes);
}

static qt_status cuda_softmax_clip_fwd(void *ctx, const qt_softmax_params *prm, void *probs,
                                       float *p, const void *scores, const int *lens, int rows,
                                       int cols) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_softmax_clip_fwd_cost(&k, DT(ctx), prm, probs, p, scores, lens, rows, cols);
        QT_TRY(rec(ctx, "softmax_clip_fwd", &k, "rows=%d cols=%d", rows, cols));
    }
    return RUN(qt_cuda_softmax_clip_fwd, prm, probs, p, scores, lens, rows, cols);
}
static qt_status cuda_softmax_clip_bwd(void *ctx, const qt_softmax_params *prm, void *dscores,
                                       const void *dprobs, const float *p, const int *lens,
                                       int rows, int cols) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_softmax_clip_bwd_cost(&k, DT(ctx), prm, dscores, dprobs, p, lens, rows, cols);
        QT_TRY(rec(ctx, "softmax_clip_bwd", &k, "rows=%d cols=%d", rows, cols));
    }
    return RUN(qt_cuda_softmax_clip_bwd, prm, dscores, dprobs, p, lens, rows, cols);
}
static qt_status cuda_gate_fwd(void *ctx, const qt_gate_shape *g, float *gate, float *hidden,
                               const void *x, const void *w1, const void *b1, const void *w2,
                               const void *b2, int N, int C) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_gate_fwd_cost(&k, DT(ctx), g, gate, hidden, x, w1, b1, w2, b2, N, C);
        QT_TRY(rec(ctx, "gate_fwd", &k, "N=%d C=%d", N, C));
    }
    return RUN(qt_cuda_gate_fwd, g, gate, hidden, x, w1, b1, w2, b2, N, C);
}
static qt_status cuda_gate_bwd(void *ctx, const qt_gate_shape *g, void *dx, void *dw1,
                               void *db1, void *dw2, void *db2, const float *dgate,
                               const float *gate, const float *hidden, const void *x,
                               const void *w1, const void *w2, int N, int C) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_gate_bwd_cost(&k, DT(ctx), g, dx, dw1, db1, dw2, db2, dgate, gate, hidden, x, w1,
                              w2, N, C);
        QT_TRY(rec(ctx, "gate_bwd", &k, "N=%d C=%d", N, C));
    }
    return RUN(qt_cuda_gate_bwd, g, dx, dw1, db1, dw2, db2, dgate, gate, hidden, x, w1, w2, N, C);
}
static qt_status cuda_gate_mul_fwd(void *ctx, void *out, const float *gate, const void *ctxv,
                                   int N, int C, int H) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_gate_mul_fwd_cost(&k, DT(ctx), out, gate, ctxv, N, C, H);
        QT_TRY(rec(ctx, "gate_mul_fwd", &k, "N=%d C=%d H=%d", N, C, H));
    }
    return RUN(qt_cuda_gate_mul_fwd, out, gate, ctxv, N, C, H);
}
static qt_status cuda_gate_mul_bwd(void *ctx, void *dctx, float *dgate, const void *dout,
                                   const float *gate, const void *ctxv, int N, int C, int H) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_gate_mul_bwd_cost(&k, DT(ctx), dctx, dgate, dout, gate, ctxv, N, C, H);
        QT_TRY(rec(ctx, "gate_mul_bwd", &k, "N=%d C=%d H=%d", N, C, H));
    }
    return RUN(qt_cuda_gate_mul_bwd, dctx, dgate, dout, gate, ctxv, N, C, H);
}
static qt_status cuda_layernorm_fwd(void *ctx, void *out, float *mean, float *rstd,
                                    const void *x, const void *w, const void *b, int N, int C) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_layernorm_fwd_cost(&k, DT(ctx), out, mean, rstd, x, w, b, N, C);
        QT_TRY(rec(ctx, "layernorm_fwd", &k, "N=%d C=%d", N, C));
    }
    return RUN(qt_cuda_layernorm_fwd, out, mean, rstd, x, w, b, N, C);
}
static qt_status cuda_layernorm_bwd(void *ctx, void *dx, void *dw, void *db, const void *dout,
                                    const void *x, const float *mean, const float *rstd,
                                    const void *w, int N, int C) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_layernorm_bwd_cost(&k, DT(ctx), dx, dw, db, dout, x, mean, rstd, w, N, C,
                                   CTX_OF(ctx)->colsum);
        QT_TRY(rec(ctx, "layernorm_bwd", &k, "N=%d C=%d", N, C));
    }
    return RUN(qt_cuda_layernorm_bwd, dx, dw, db, dout, x, mean, rstd, w, N, C,
               CTX_OF(ctx)->colsum);
}
static qt_status cuda_layernorm_residual_fwd(void *ctx, void *resid, void *out, float *mean,
                                             float *rstd, const void *x, const void *branch,
                                             const void *w, const void *b, int N, int C,
                                             float prob, uint64_t seed, uint64_t stream) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_layernorm_residual_fwd_cost(&k, DT(ctx), resid, out, mean, rstd, x, branch, w, b,
                                            N, C, prob, seed, stream);
        QT_TRY(rec(ctx, "layernorm_residual_fwd", &k, "N=%d C=%d p=%g", N, C, (double)prob));
    }
    return RUN(qt_cuda_layernorm_residual_fwd, resid, out, mean, rstd, x, branch, w, b, N, C, prob,
               seed, stream);
}
static qt_status cuda_layernorm_residual_bwd(void *ctx, void *dx, void *dbranch, void *dw,
                                             void *db, const void *dout, const void *x,
                                             const float *mean, const float *rstd, const void *w,
                                             int N, int C, float prob, uint64_t seed,
                                             uint64_t stream) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_layernorm_residual_bwd_cost(&k, DT(ctx), dx, dbranch, dw, db, dout, x, mean, rstd,
                                            w, N, C, prob, seed, stream, CTX_OF(ctx)->colsum);
        QT_TRY(rec(ctx, "layernorm_residual_bwd", &k, "N=%d C=%d p=%g", N, C, (double)prob));
    }
    return RUN(qt_cuda_layernorm_residual_bwd, dx, dbranch, dw, db, dout, x, mean, rstd, w, N, C,
               prob, seed, stream, CTX_OF(ctx)->colsum);
}
static qt_status cuda_gelu_fwd(void *ctx, void *out, const void *x, size_t n) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_gelu_fwd_cost(&k, DT(ctx), out, x, n);
        QT_TRY(rec(ctx, "gelu_fwd", &k, "n=%zu", n));
    }
    return RUN(qt_cuda_gelu_fwd, out, x, n);
}
static qt_status cuda_gelu_bwd(void *ctx, void *dx, const void *dout, const void *x, size_t n) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_gelu_bwd_cost(&k, DT(ctx), dx, dout, x, n);
        QT_TRY(rec(ctx, "gelu_bwd", &k, "n=%zu", n));
    }
    return RUN(qt_cuda_gelu_bwd, dx, dout, x, n);
}
static qt_status cuda_relu_fwd(void *ctx, void *out, const void *x, size_t n) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_relu_fwd_cost(&k, DT(ctx), out, x, n);
        QT_TRY(rec(ctx, "relu_fwd", &k, "n=%zu", n));
    }
    return RUN(qt_cuda_relu_fwd, out, x, n);
}
static qt_status cuda_relu_bwd(void *ctx, void *dx, const void *dout, const void *x, size_t n) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_relu_bwd_cost(&k, DT(ctx), dx, dout, x, n);
        QT_TRY(rec(ctx, "relu_bwd", &k, "n=%zu", n));
    }
    return RUN(qt_cuda_relu_bwd, dx, dout, x, n);
}
// A linear with its activation (kernels/linear.h): the activation in the GEMM's epilogue where
// qt_cuda_gemm_act_supported takes the call (fp16/bf16, ldc a multiple of 8, 16-byte aligned
// outputs), one launch and one rounding; elsewhere the GEMM, then the activation kernel.
// ReLU with a pre to keep composes too (cuBLASLt keeps ReLU's input as a bit mask only).
static qt_status act_check(const char *op, qt_linear_act act) {
    if (act != QT_LINEAR_ACT_GELU && act != QT_LINEAR_ACT_RELU)
        return qt_error(QT_ERR_ARG, "%s: activation %d is neither GELU nor ReLU", op, (int)act);
    return QT_OK;
}
static qt_status cuda_linear_act_fwd(void *ctx, qt_linear_act act, void *out, void *pre,
                                     const void *x, const void *w, const void *b, int N, int IC,
                                     int OC) {
    QT_TRY(act_check("cuda linear_act_fwd", act));
    if (N <= 0 || OC <= 0) return QT_OK;
    if (act == QT_LINEAR_ACT_GELU && !pre)
        return qt_error(QT_ERR_ARG, "cuda linear_act_fwd: GELU needs pre, its backward's input");
    const qt_gemm_desc d = qt_gemm_desc_single(0, 1, N, OC, IC, 0.0f, IC, IC, OC);
    const int relu = act == QT_LINEAR_ACT_RELU;
    if (!(relu && pre) && qt_cuda_gemm_act_supported(DT(ctx), &d, x, w, out, b, pre)) {
        if (RECORDING(ctx)) {
            qt_cost k = {0};
            qt_cuda_gemm_act_fwd_cost(&k, DT(ctx), &d, x, w, out, b, act, pre);
            QT_TRY(rec(ctx, "linear_act_fwd", &k, "N=%d IC=%d OC=%d %s", N, IC, OC,
                       relu ? "relu" : "gelu"));
        }
        if (DRY(ctx)) return QT_OK;
        return qt_cuda_gemm_act_fwd(STREAM(ctx), DT(ctx), &d, x, w, out, b, act, pre,
                                    CTX_OF(ctx)->gemm);
    }
    void *lin = pre ? pre : out; // ReLU without pre: in place over out
    QT_TRY(cuda_linear_fwd(ctx, lin, x, w, b, N, IC, OC));
    const size_t n = (size_t)N * (size_t)OC;
    return relu ? cuda_relu_fwd(ctx, out, lin, n) : cuda_gelu_fwd(ctx, out, lin, n);
}
static qt_status cuda_linear_act_dx(void *ctx, qt_linear_act act, void *dx, const void *dout,
                                    const void *w, const void *saved, int N, int IC, int OC) {
    QT_TRY(act_check("cuda linear_act_dx", act));
    if (N <= 0 || IC <= 0) return QT_OK;
    const qt_gemm_desc d = qt_gemm_desc_single(0, 0, N, IC, OC, 0.0f, OC, IC, IC);
    const int relu = act == QT_LINEAR_ACT_RELU;
    if (!relu && qt_cuda_gemm_act_supported(DT(ctx), &d, dout, w, dx, NULL, saved)) {
        if (RECORDING(ctx)) {
            qt_cost k = {0};
            qt_cuda_gemm_dgelu_cost(&k, DT(ctx), &d, dout, w, dx, saved);
            QT_TRY(rec(ctx, "linear_act_dx", &k, "N=%d IC=%d OC=%d gelu", N, IC, OC));
        }
        if (DRY(ctx)) return QT_OK;
        return qt_cuda_gemm_dgelu(STREAM(ctx), DT(ctx), &d, dout, w, dx, saved,
                                  CTX_OF(ctx)->gemm);
    }
    QT_TRY(cuda_gemm(ctx, &d, dout, w, dx));
    const size_t n = (size_t)N * (size_t)IC;
    return relu ? cuda_relu_bwd(ctx, dx, dx, saved, n) : cuda_gelu_bwd(ctx, dx, dx, saved, n);
}
static qt_status cuda_embedding_fwd(void *ctx, void *out, const int *tokens, const void *wte,
                                    const void *wpe, int B, int T, int C) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_embedding_fwd_cost(&k, DT(ctx), out, tokens, wte, wpe, B, T, C);
        QT_TRY(rec(ctx, "embedding_fwd", &k, "B=%d T=%d C=%d", B, T, C));
    }
    return RUN(qt_cuda_embedding_fwd, out, tokens, wte, wpe, B, T, C);
}
static qt_status cuda_embedding_bwd(void *ctx, void *dwte, void *dwpe, const void *dout,
                                    const int *tokens, int B, int T, int C) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_embedding_bwd_cost(&k, DT(ctx), dwte, dwpe, dout, tokens, B, T, C);
        QT_TRY(rec(ctx, "embedding_bwd", &k, "B=%d T=%d C=%d", B, T, C));
    }
    return RUN(qt_cuda_embedding_bwd, dwte, dwpe, dout, tokens, B, T, C);
}
static qt_status cuda_add(void *ctx, void *out, const void *a, const void *b, size_t n) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_add_cost(&k, DT(ctx), out, a, b, n);
        QT_TRY(rec(ctx, "add", &k, "n=%zu", n));
    }
    return RUN(qt_cuda_add, out, a, b, n);
}
static qt_status cuda_embedding_bwd_sorted(void *ctx, void *dwte, void *dwpe, const void *dout,
                                           const int *order, const int *start, const int *token,
                                           int n_buckets, int B, int T, int C) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_embedding_bwd_sorted_cost(&k, DT(ctx), dwte, dwpe, dout, order, start, token,
                                          n_buckets, B, T, C);
        QT_TRY(rec(ctx, "embedding_bwd", &k, "B=%d T=%d C=%d buckets=%d", B, T, C, n_buckets));
    }
    return RUN(qt_cuda_embedding_bwd_sorted, dwte, dwpe, dout, order, start, token, n_buckets, B,
               T, C);
}
static qt_status cuda_dropout_fwd(void *ctx, void *out, const void *x, size_t n, float prob,
                                  uint64_t seed, uint64_t stream) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_dropout_fwd_cost(&k, DT(ctx), out, x, n, prob, seed, stream);
        QT_TRY(rec(ctx, "dropout_fwd", &k, "n=%zu p=%g", n, (double)prob));
    }
    return RUN(qt_cuda_dropout_fwd, out, x, n, prob, seed, stream);
}
static qt_status cuda_dropout_bwd(void *ctx, void *dx, const void *dout, size_t n, float prob,
                                  uint64_t seed, uint64_t stream) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_dropout_bwd_cost(&k, DT(ctx), dx, dout, n, prob, seed, stream);
        QT_TRY(rec(ctx, "dropout_bwd", &k, "n=%zu p=%g", n, (double)prob));
    }
    return RUN(qt_cuda_dropout_bwd, dx, dout, n, prob, seed, stream);
}
static qt_status cuda_crossentropy_fwd(void *ctx, float *losses, float *stats, const void *logits,
                                       const int *targets, int N, int V) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_crossentropy_fwd_cost(&k, DT(ctx), losses, stats, logits, targets, N, V);
        QT_TRY(rec(ctx, "crossentropy_fwd", &k, "N=%d V=%d", N, V));
    }
    return RUN(qt_cuda_crossentropy_fwd, losses, stats, logits, targets, N, V);
}
static qt_status cuda_crossentropy_bwd(void *ctx, void *dlogits, const float *dlosses,
                                       const void *logits, const float *stats, const int *targets,
                                       int N, int V) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_crossentropy_bwd_cost(&k, DT(ctx), dlogits, dlosses, logits, stats, targets, N,
                                      V);
        QT_TRY(rec(ctx, "crossentropy_bwd", &k, "N=%d V=%d", N, V));
    }
    return RUN(qt_cuda_crossentropy_bwd, dlogits, dlosses, logits, stats, targets, N, V);
}
static qt_status cuda_crossentropy_fwd_bwd(void *ctx, float *losses, float *stats, void *logits,
                                           const float *dlosses, const int *targets, int N,
                                           int V) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_crossentropy_fwd_bwd_cost(&k, DT(ctx), losses, stats, logits, dlosses, targets, N,
                                          V);
        QT_TRY(rec(ctx, "crossentropy_fwd_bwd", &k, "N=%d V=%d", N, V));
    }
    return RUN(qt_cuda_crossentropy_fwd_bwd, losses, stats, logits, dlosses, targets, N, V);
}
static qt_status cuda_adamw_step(void *ctx, void *param, float *master, const void *grad,
                                 float *m, float *v, size_t n, const qt_adamw_params *prm) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_adamw_step_cost(&k, DT(ctx), param, master, grad, m, v, n, prm);
        QT_TRY(rec(ctx, "adamw_step", &k, "n=%zu", n));
    }
    return RUN(qt_cuda_adamw_step, param, master, grad, m, v, n, prm);
}
// Dry: a sum of 0 (a finite gradient norm: the step is applied).
static qt_status cuda_sumsq(void *ctx, double *out, const void *x, size_t n) {
    double *partials = CTX_OF(ctx)->partials;
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_sumsq_cost(&k, DT(ctx), out, x, n, partials);
        QT_TRY(rec(ctx, "sumsq", &k, "n=%zu", n));
    }
    if (DRY(ctx) && out) *out = 0.0;
    return RUN(qt_cuda_sumsq, out, x, n, partials);
}
// ---- multi-tensor AdamW (adamw_multi part): kernels/cuda/sumsq.cu's sum left on the device,
// kernels/cuda/adamw.cu's one launch over every tensor deciding from it, and one copy of the
// sum to the host: the optimizer step's only wait.

// Makes the device chunk table that of `spans`: kept while the spans are the same (a model's
// tensors never move), built and uploaded (a synchronous copy) on the first call.
static int spans_equal(const qt_adamw_span *a, const qt_adamw_span *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i].param != b[i].param || a[i].grad != b[i].grad || a[i].n != b[i].n ||
            a[i].weight_decay != b[i].weight_decay)
            return 0;
    return 1;
}

static qt_status adamw_chunks_reserve(cuda_ctx *c, const qt_adamw_span *spans, int n_spans) {
    if (c->chunk_spans && n_spans == c->n_chunk_spans &&
        spans_equal(spans, c->chunk_spans, n_spans))
        return QT_OK;
    const size_t n = qt_cuda_adamw_chunks(NULL, spans, n_spans);
    qt_adamw_chunk *host = malloc((n ? n : 1) * sizeof *host);
    qt_adamw_span *copy = malloc((n_spans ? (size_t)n_spans : 1) * sizeof *copy);
    qt_status st = host && copy ? QT_OK
                                : qt_error(QT_ERR_OOM, "cuda adamw_multi: cannot allocate the "
                                                       "table of %zu chunks", n);
    if (st == QT_OK) st = ws_reserve(c, &c->chunk_ws, (n ? n : 1) * sizeof *host,
                                     "cuda adamw_multi", "chunk table");
    if (st == QT_OK) {
        qt_cuda_adamw_chunks(host, spans, n_spans);
        if (n_spans) memcpy(copy, spans, (size_t)n_spans * sizeof *spans);
        c->chunk_elems = 0;
        for (size_t i = 0; i < n; i++) c->chunk_elems += host[i].n;
        st = copy_sync(c, "adamw_multi", c->chunk_ws.ptr, host, n * sizeof *host,
                       cudaMemcpyHostToDevice);
    }
    free(host);
    if (st != QT_OK) {
        free(copy);
        return st;
    }
    free(c->chunk_spans);
    c->chunk_spans = copy;
    c->n_chunk_spans = n_spans;
    c->n_chunks = n;
    return QT_OK;
}

// Dry: a sum of 0 (a finite norm: the step counts as applied).
static qt_status cuda_adamw_multi(void *ctx, void *params, float *master, const void *grads,
                                  float *m, float *v, size_t n_grads, const qt_adamw_span *spans,
                                  int n_spans, const qt_adamw_multi_params *prm,
                                  double *sumsq_host) {
    cuda_ctx *c = CTX_OF(ctx);
    if (!sumsq_host || !prm || n_spans < 0 || (n_spans > 0 && !spans))
        return qt_error(QT_ERR_ARG, "cuda adamw_multi: sumsq_host, prm or the %d spans are NULL",
                        n_spans);
    QT_TRY(adamw_chunks_reserve(c, spans, n_spans));
    double *total = c->partials + qt_cuda_sumsq_scratch_size() - 1;
    const qt_adamw_chunk *chunks = (const qt_adamw_chunk *)c->chunk_ws.ptr;
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_sumsq_device_cost(&k, c->dt, grads, n_grads, c->partials);
        qt_cuda_adamw_multi_cost(&k, c->dt, params, master, grads, m, v, chunks, c->n_chunks,
                                 c->chunk_elems, prm, total);
        qt_cost_add(&k, "cudaMemcpyAsync", QT_LAUNCH_COPY_D2H, QT_MATH_NONE, 8, 0, 1);
        qt_cost_add(&k, "cudaStreamSynchronize", QT_LAUNCH_SYNC, QT_MATH_NONE, 0, 0, 1);
        QT_TRY(rec(ctx, "adamw_multi", &k, "n=%zu tensors=%d", n_grads, n_spans));
    }
    if (c->dry) {
        *sumsq_host = 0.0;
        return QT_OK;
    }
    QT_TRY(qt_cuda_sumsq_device(STREAM(ctx), c->dt, grads, n_grads, c->partials));
    QT_TRY(qt_cuda_adamw_multi(STREAM(ctx), c->dt, params, master, grads, m, v, chunks,
                               c->n_chunks, c->chunk_elems, prm, total));
    QT_CHECK_CUDA(cudaMemcpyAsync(sumsq_host, total, sizeof *sumsq_host, cudaMemcpyDeviceToHost,
                                  c->stream));
    QT_CHECK_CUDA(cudaStreamSynchronize(c->stream));
    return QT_OK;
}
// ---- end of the adamw_multi part

// ---- LLaMA family (llama part): kernels/cuda/rmsnorm.cu, rope.cu, swiglu.cu
static qt_status cuda_rmsnorm_fwd(void *ctx, void *out, float *rstd, const void *x,
                                  const void *w, int N, int C) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_rmsnorm_fwd_cost(&k, DT(ctx), out, rstd, x, w, N, C);
        QT_TRY(rec(ctx, "rmsnorm_fwd", &k, "N=%d C=%d", N, C));
    }
    return RUN(qt_cuda_rmsnorm_fwd, out, rstd, x, w, N, C);
}
static qt_status cuda_rmsnorm_bwd(void *ctx, void *dx, void *dw, const void *dout, const void *x,
                                  const float *rstd, const void *w, int N, int C) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_rmsnorm_bwd_cost(&k, DT(ctx), dx, dw, dout, x, rstd, w, N, C);
        QT_TRY(rec(ctx, "rmsnorm_bwd", &k, "N=%d C=%d", N, C));
    }
    return RUN(qt_cuda_rmsnorm_bwd, dx, dw, dout, x, rstd, w, N, C);
}
static qt_status cuda_rope_fwd(void *ctx, void *qkv, int B, int T, int C, int H, float theta) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_rope_fwd_cost(&k, DT(ctx), qkv, B, T, C, H, theta);
        QT_TRY(rec(ctx, "rope_fwd", &k, "B=%d T=%d C=%d H=%d", B, T, C, H));
    }
    return RUN(qt_cuda_rope_fwd, qkv, B, T, C, H, theta);
}
static qt_status cuda_rope_bwd(void *ctx, void *dqkv, int B, int T, int C, int H, float theta) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_rope_bwd_cost(&k, DT(ctx), dqkv, B, T, C, H, theta);
        QT_TRY(rec(ctx, "rope_bwd", &k, "B=%d T=%d C=%d H=%d", B, T, C, H));
    }
    return RUN(qt_cuda_rope_bwd, dqkv, B, T, C, H, theta);
}
static qt_status cuda_swiglu_fwd(void *ctx, void *out, const void *x, int N, int F) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_swiglu_fwd_cost(&k, DT(ctx), out, x, N, F);
        QT_TRY(rec(ctx, "swiglu_fwd", &k, "N=%d F=%d", N, F));
    }
    return RUN(qt_cuda_swiglu_fwd, out, x, N, F);
}
static qt_status cuda_swiglu_bwd(void *ctx, void *dx, const void *dout, const void *x, int N,
                                 int F) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_swiglu_bwd_cost(&k, DT(ctx), dx, dout, x, N, F);
        QT_TRY(rec(ctx, "swiglu_bwd", &k, "N=%d F=%d", N, F));
    }
    return RUN(qt_cuda_swiglu_bwd, dx, dout, x, N, F);
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
    const int x_rows = aq->granularity == QT_QUANT_PER_ROW;
    const int w_rows = wq->granularity == QT_QUANT_PER_ROW;
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_quant_quantize_cost(&k, c->dt, aq, xc, xs, NULL, x, (size_t)N, (size_t)IC);
        qt_cuda_quant_quantize_cost(&k, c->dt, wq, wc, wsc, NULL, w, (size_t)OC, (size_t)IC);
        qt_cuda_linear_s8_ex_cost(&k, c->dt, out, xc, xs, x_rows, wc, wsc, w_rows, b, N, OC, IC,
                                  QT_CUDA_INT8_DEFAULT);
        QT_TRY(rec(ctx, "linear_s8_fwd", &k, "N=%d IC=%d OC=%d", N, IC, OC));
    }
    if (c->dry) return QT_OK;
    QT_TRY(qt_cuda_quant_quantize(STREAM(ctx), c->dt, aq, xc, xs, NULL, x, (size_t)N,
                                  (size_t)IC));
    QT_TRY(qt_cuda_quant_quantize(STREAM(ctx), c->dt, wq, wc, wsc, NULL, w, (size_t)OC,
                                  (size_t)IC));
    return qt_cuda_linear_s8_ex(STREAM(ctx), c->dt, out, xc, xs, x_rows, wc, wsc, w_rows, b, N, OC,
                                IC, QT_CUDA_INT8_DEFAULT);
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
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_quant_quantize_cost(&k, c->dt, gq, gc, gs, NULL, g, (size_t)N, (size_t)OC);
        qt_cuda_quant_quantize_cost(&k, c->dt, wq, wc, wsc, NULL, w, (size_t)OC, (size_t)IC);
        qt_cuda_transpose_s8_cost(&k, wt, wc, OC, IC);
        qt_cuda_linear_s8_ex_cost(&k, c->dt, prod, gc, gs, 1, wt, wsc, 0, NULL, N, IC, OC,
                                  QT_CUDA_INT8_DEFAULT);
        qt_cuda_add_cost(&k, c->dt, dx, dx, prod, nx);
        QT_TRY(rec(ctx, "linear_s8_dx", &k, "N=%d IC=%d OC=%d", N, IC, OC));
    }
    if (c->dry) return QT_OK;
    QT_TRY(qt_cuda_quant_quantize(STREAM(ctx), c->dt, gq, gc, gs, NULL, g, (size_t)N,
                                  (size_t)OC));
    QT_TRY(qt_cuda_quant_quantize(STREAM(ctx), c->dt, wq, wc, wsc, NULL, w, (size_t)OC,
                                  (size_t)IC));
    QT_TRY(qt_cuda_transpose_s8(STREAM(ctx), wt, wc, OC, IC));
    // prod (N, IC) = (gc (N, OC) wt (IC, OC)^T) * gs[n] * wsc[0]
    QT_TRY(qt_cuda_linear_s8_ex(STREAM(ctx), c->dt, prod, gc, gs, 1, wt, wsc, 0, NULL, N, IC, OC,
                                QT_CUDA_INT8_DEFAULT));
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
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_quant_fake_cost(&k, dt, p, out, x, rows, cols, scales, zeros);
        QT_TRY(rec(ctx, "quant_fake", &k, "rows=%zu cols=%zu", rows, cols));
    }
    if (c->dry) return QT_OK;
    return qt_cuda_quant_fake(STREAM(ctx), dt, p, out, x, rows, cols, scales, zeros);
}

// out (n, the backend's dtype) = codes (n, int8) * scale.
static qt_status cuda_dqt_dequant(void *ctx, void *out, const int8_t *codes, float scale,
                                  size_t n) {
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_dqt_dequant_cost(&k, DT(ctx), out, codes, scale, n);
        QT_TRY(rec(ctx, "dqt_dequant", &k, "n=%zu", n));
    }
    return RUN(qt_cuda_dqt_dequant, out, codes, scale, n);
}

// One DQT step; grad (n) in the backend's dtype; stats (host, may be NULL) waits for them,
// reduced in the context's dqt_ws (ws_reserve: grown during the first step, not per call).
// Dry: stats of zeros.
static qt_status cuda_dqt_step(void *ctx, const qt_dqt_params *dp, int8_t *codes,
                               const void *grad, float *m, float *v, size_t n,
                               qt_dqt_stats *stats) {
    cuda_ctx *c = CTX_OF(ctx);
    if (stats)
        QT_TRY(ws_reserve(c, &c->dqt_ws, qt_cuda_dqt_scratch_bytes(n), "cuda dqt_step",
                          "stats scratch"));
    void *scratch = stats ? c->dqt_ws.ptr : NULL;
    if (RECORDING(ctx)) {
        qt_cost k = {0};
        qt_cuda_dqt_step_cost(&k, c->dt, dp, codes, grad, m, v, n, stats, scratch);
        QT_TRY(rec(ctx, "dqt_step", &k, "n=%zu%s", n, dp && dp->dry_run ? " dry_run" : ""));
    }
    if (c->dry) {
        if (stats) memset(stats, 0, sizeof *stats);
        return QT_OK;
    }
    return qt_cuda_dqt_step(STREAM(ctx), c->dt, dp, codes, grad, m, v, n, stats, scratch);
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
    .linear_act_fwd = cuda_linear_act_fwd,
    .linear_act_dx = cuda_linear_act_dx,
    .attention_flash_fwd = cuda_attention_flash_fwd,
    .attention_flash_bwd = cuda_attention_flash_bwd,
    .attention_flash_supports = cuda_attention_flash_supports,
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
    .layernorm_residual_fwd = cuda_layernorm_residual_fwd,
    .layernorm_residual_bwd = cuda_layernorm_residual_bwd,
    .gelu_fwd = cuda_gelu_fwd,
    .gelu_bwd = cuda_gelu_bwd,
    .relu_fwd = cuda_relu_fwd,
    .relu_bwd = cuda_relu_bwd,
    .embedding_fwd = cuda_embedding_fwd,
    .embedding_bwd = cuda_embedding_bwd,
    .embedding_bwd_sorted = cuda_embedding_bwd_sorted,
    .add = cuda_add,
    .dropout_fwd = cuda_dropout_fwd,
    .dropout_bwd = cuda_dropout_bwd,
    .crossentropy_fwd = cuda_crossentropy_fwd,
    .crossentropy_bwd = cuda_crossentropy_bwd,
    .crossentropy_fwd_bwd = cuda_crossentropy_fwd_bwd,
    .adamw_step = cuda_adamw_step,
    .sumsq = cuda_sumsq,
    .adamw_multi = cuda_adamw_multi, // adamw_multi part
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
    QT_CHECK_CUDA(cudaMalloc(&c->colsum, qt_cuda_colsum_scratch_bytes()));
    QT_TRY(qt_cuda_colsum_scratch_init(c->stream, c->colsum));
    return QT_OK;
}

void *qt_backend_cuda_stream(const qt_backend *be) {
    // By name, not by table: a test may wrap the table around the same context.
    if (!be || !be->ctx || !be->name || strcmp(be->name, "cuda") != 0) return NULL;
    return (void *)CTX_OF(be->ctx)->stream;
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

// ---- record-only backend, records and timer (recording part; include/qtrain/cuda_record.h) --

// The dry context's fake address space starts here: far from anything a host pointer could
// be mistaken for, 256-byte aligned as cudaMalloc's allocations are.
#define DRY_BASE ((uintptr_t)1 << 44)

qt_status qt_backend_cuda_init_dry(qt_backend *be, qt_dtype dt) {
    if (!be) return qt_error(QT_ERR_ARG, "qt_backend_cuda_init_dry: backend is NULL");
    if (dt != QT_DTYPE_F32 && dt != QT_DTYPE_F16 && dt != QT_DTYPE_BF16)
        return qt_error(QT_ERR_ARG, "cuda backend: dtype %d is not fp32, fp16 or bf16", (int)dt);
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!c) return qt_error(QT_ERR_OOM, "cuda backend: cannot allocate the context");
    c->dt = dt;
    c->dry = 1;
    c->recording = 1;
    c->dry_next = DRY_BASE;
    // The buffers ctx_open allocates, at addresses of their own (the f32 conversions and sumsq
    // pass them to their launchers, whose cost functions may look at their alignment).
    if (dt != QT_DTYPE_F32) c->stage = dry_alloc(c, STAGE_ELEMS * sizeof(float));
    c->partials = dry_alloc(c, qt_cuda_sumsq_scratch_size() * sizeof(double));
    c->colsum = dry_alloc(c, qt_cuda_colsum_scratch_bytes());
    be->ops = &cuda_ops;
    be->ctx = c;
    be->name = "cuda";
    be->dtype = dt;
    be->threads = 1;
    return QT_OK;
}

int qt_backend_cuda_emulated(void) {
#ifdef QT_CUEMU
    return 1;
#else
    return 0;
#endif
}

// The context of a CUDA backend, or NULL (with the error recorded) for another one.
static cuda_ctx *ctx_of(const qt_backend *be, const char *fn) {
    if (!be || be->ops != &cuda_ops || !be->ctx) {
        qt_error(QT_ERR_ARG, "%s: not a CUDA backend", fn);
        return NULL;
    }
    return CTX_OF(be->ctx);
}

int qt_backend_cuda_is_dry(const qt_backend *be) {
    return be && be->ops == &cuda_ops && be->ctx && CTX_OF(be->ctx)->dry;
}

qt_status qt_backend_cuda_record(qt_backend *be, int on) {
    cuda_ctx *c = ctx_of(be, "qt_backend_cuda_record");
    if (!c) return QT_ERR_ARG;
    c->recording = on != 0;
    return QT_OK;
}

const qt_cuda_record *qt_backend_cuda_records(const qt_backend *be, size_t *n) {
    cuda_ctx *c = ctx_of(be, "qt_backend_cuda_records");
    if (n) *n = c ? c->n_recs : 0;
    return c ? c->recs : NULL;
}

void qt_backend_cuda_records_clear(qt_backend *be) {
    cuda_ctx *c = ctx_of(be, "qt_backend_cuda_records_clear");
    if (c) c->n_recs = 0;
}

qt_status qt_backend_cuda_timer_start(qt_backend *be) {
    cuda_ctx *c = ctx_of(be, "qt_backend_cuda_timer_start");
    if (!c) return QT_ERR_ARG;
    if (c->dry)
        return qt_error(QT_ERR_UNSUPPORTED, "cuda timer: the record-only backend runs nothing "
                                            "to time; open a device with qt_backend_cuda_init");
    if (!c->have_timer) {
        QT_CHECK_CUDA(cudaEventCreate(&c->timer[0]));
        cudaError_t err = cudaEventCreate(&c->timer[1]);
        if (err != cudaSuccess) {
            (void)cudaEventDestroy(c->timer[0]);
            return qt_error(QT_ERR_CUDA, "cudaEventCreate failed at %s:%d: %s", __FILE__, __LINE__,
                            cudaGetErrorString(err));
        }
        c->have_timer = 1;
    }
    QT_CHECK_CUDA(cudaEventRecord(c->timer[0], c->stream));
    return QT_OK;
}

qt_status qt_backend_cuda_timer_stop(qt_backend *be, double *ms) {
    cuda_ctx *c = ctx_of(be, "qt_backend_cuda_timer_stop");
    if (!c) return QT_ERR_ARG;
    if (!c->have_timer)
        return qt_error(QT_ERR_ARG, "cuda timer: stop without a start; call "
                                    "qt_backend_cuda_timer_start first");
    float elapsed = 0.0f;
    QT_CHECK_CUDA(cudaEventRecord(c->timer[1], c->stream));
    QT_CHECK_CUDA(cudaEventSynchronize(c->timer[1]));
    QT_CHECK_CUDA(cudaEventElapsedTime(&elapsed, c->timer[0], c->timer[1]));
    if (ms) *ms = elapsed;
    return QT_OK;
}

qt_status qt_backend_cuda_device_name(const qt_backend *be, char *buf, size_t len) {
    cuda_ctx *c = ctx_of(be, "qt_backend_cuda_device_name");
    if (!c) return QT_ERR_ARG;
    if (!buf || len == 0) return qt_error(QT_ERR_ARG, "qt_backend_cuda_device_name: no buffer");
    if (c->dry) {
        snprintf(buf, len, "record only (no device)");
        return QT_OK;
    }
    struct cudaDeviceProp prop;
    QT_CHECK_CUDA(cudaGetDeviceProperties(&prop, c->device));
    if (qt_backend_cuda_emulated()) // its name says what it is
        snprintf(buf, len, "%s", prop.name);
    else
        snprintf(buf, len, "%s (sm_%d%d)", prop.name, prop.major, prop.minor);
    return QT_OK;
}

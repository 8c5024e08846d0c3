// bench/bench_int8_gemm.c: the int8_gemm family (kernels/int8_gemm.h) on the benchmark harness
// (bench/harness.h): the INT8 GEMM (int8 x int8 -> int32) and the fused W8A8 linear (the
// dequantization by per-token x per-channel scales and the bias in the epilogue) on a model's
// linear layers, C (M, N) = A (M, K) B (N, K)^T with M = B T tokens, each next to the float
// GEMM of the same shape timed first in the same run: "vs ref" is float time / int8 time
// (> 1: int8 faster).
//   CPU: OpenBLAS cblas_sgemm, then every INT8 path this CPU supports (portable, avx2,
//        avx512vnni; a missing one gets a "skipped" line), on the default model and one
//        OPT-125m sequence
//        (the LM head only where V <= 8192: OPT's 50272-row head would take seconds). The
//        portable path (the fallback without AVX2, ~2 GOP/s) runs only on layers of at most
//        PORTABLE_MAX_OPS operations, unless it is the path this CPU uses.
//   CUDA: the fp16 cuBLASLt GEMM (fp32 accumulation, qt_cuda_gemm), then the hand-written mma
//        kernel and cuBLASLt int8, the linear to fp16, on the default model and OPT-125m's
//        whole micro-batch (M = 8192), and M = N = K = 4096 ("square").
// INT8 "GFLOP/s" counts the 2 M N K integer multiply-adds; "roof%" compares them with the float
// peak, so an INT8 GEMM above 100% is its speed-up over the float roofline.
#include <cblas.h>
#include <string.h>

#include "bench/harness.h"
#include "kernels/int8_gemm.h"
#include "kernels/linear.h"

typedef struct {
    int M, N, K;
    qt_dtype dt;
    qt_cuda_stream s;
    void *gemm;            // CUDA: the qt_cuda_gemm handle
    int8_t *A, *B;         // (M, K), (N, K)
    int32_t *C;            // (M, N)
    float *as, *bs, *bias; // (M), (N), (N) fp32 (CUDA: the bias in dt)
    void *out;             // (M, N) fp32 / dt
    void *Af, *Bf, *Cf;    // the float GEMM's (M, K), (N, K), (M, N): fp32 / dt
    qt_cuda_int8_impl impl;
} s8_args;

typedef struct {
    const char *name;
    int N, K;
    int M; // rows; 0: the model's B T tokens
} layer;

// The linear layers of model m (N out, K in): qkv, out_proj, fc1, fc2, the LM head; returns
// how many (the head only when with_head). With square (CUDA, OPT-125m), also the 4096^3 GEMM
// at which issue 10 states the mma kernel's target (>= 1.7x the fp16 cuBLASLt GEMM).
static int layers_of(const qt_bench_model *m, int with_head, int square, layer out[6]) {
    int n = 0;
    out[n++] = (layer){"qkv", 3 * m->C, m->C, 0};
    out[n++] = (layer){"proj", m->C, m->C, 0};
    out[n++] = (layer){"fc1", m->F, m->C, 0};
    out[n++] = (layer){"fc2", m->C, m->F, 0};
    if (with_head) out[n++] = (layer){"head", m->V, m->C, 0};
    if (square) out[n++] = (layer){"square", 4096, 4096, 4096};
    return n;
}

// The ops: the float GEMM (CPU: cblas_sgemm; CUDA: qt_cuda_gemm, fp16), the INT8 GEMM and the
// fused W8A8 linear (on the CPU path or CUDA implementation selected).
enum { FLOAT_GEMM, S8, LIN };

static qt_status cpu_call(void *p, int op) {
    const s8_args *a = p;
    if (op == S8) return qt_cpu_gemm_s8s32(a->C, a->A, a->B, a->M, a->N, a->K);
    if (op == LIN)
        return qt_cpu_linear_s8(a->out, a->A, a->as, a->B, a->bs, a->bias, a->M, a->N, a->K);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a->M, a->N, a->K, 1.0f, a->Af, a->K, a->Bf,
                a->K, 0.0f, a->Cf, a->N);
    return QT_OK;
}

// The layer's buffers. Scales of at most 1e-4 on CUDA keep the fp16 outputs finite (|acc| <=
// 127^2 K).
static qt_status alloc_layer(qt_bench *b, s8_args *a) {
    const size_t mk = (size_t)a->M * a->K, nk = (size_t)a->N * a->K, mn = (size_t)a->M * a->N;
    const float scale = qt_bench_device_of(b) == QT_BENCH_CUDA ? 1e-4f : 1.0f;
    a->A = qt_bench_buf(b, QT_BENCH_S8, mk);
    a->B = qt_bench_buf(b, QT_BENCH_S8, nk);
    a->C = qt_bench_buf(b, QT_BENCH_BYTES, mn * sizeof(int32_t));
    float *as = qt_bench_host_f32(b, (size_t)a->M), *bs = qt_bench_host_f32(b, (size_t)a->N);
    for (int i = 0; as && i < a->M; i++)
        as[i] *= scale;
    for (int i = 0; bs && i < a->N; i++)
        bs[i] *= scale;
    a->as = qt_bench_buf_from_host(b, as, (size_t)a->M * sizeof(float));
    a->bs = qt_bench_buf_from_host(b, bs, (size_t)a->N * sizeof(float));
    a->bias = qt_bench_buf(b, QT_BENCH_RAND, (size_t)a->N);
    a->out = qt_bench_buf(b, QT_BENCH_ZEROS, mn);
    a->Af = qt_bench_buf(b, QT_BENCH_RAND, mk);
    a->Bf = qt_bench_buf(b, QT_BENCH_RAND, nk);
    a->Cf = qt_bench_buf(b, QT_BENCH_ZEROS, mn);
    return qt_bench_ok(b);
}

// Bytes and operations (integer multiply-adds count as 2; the epilogue's scale, scale and bias
// as 3 per output):
//   float GEMM: reads A, B (E (M K + N K)), writes C (E M N); 2 M N K.
//   gemm_s8s32: reads int8 A, B (M K + N K), writes int32 C (4 M N); 2 M N K.
//   linear_s8:  also reads fp32 a_scale (M), b_scale, bias (2 N), writes out (E M N) instead
//               of C; 2 M N K + 3 M N.
static double ops(const s8_args *a) { return 2.0 * a->M * a->N * a->K; }

// The float GEMM of the layer's shape as case `name`, then the reference (`ref`) of the INT8
// cases that follow.
static qt_status run_ref(qt_bench *b, qt_bench_call call, s8_args *a, const char *name,
                         const char *ref) {
    const double E = (double)qt_dtype_size(a->dt);
    const qt_bench_case c = {name, FLOAT_GEMM,
                             E * ((double)a->M * a->K + (double)a->N * a->K + (double)a->M * a->N),
                             ops(a)};
    qt_bench_result r;
    QT_TRY(qt_bench_run_case(b, call, a, &c, &r));
    qt_bench_ref(b, ref, r.ms_median);
    return QT_OK;
}

// gemm_s8s32_<v> and linear_s8_<v>: the INT8 GEMM and linear on variant v (a CPU path or a
// CUDA implementation, selected by the caller).
static qt_status run_s8(qt_bench *b, qt_bench_call call, s8_args *a, const char *v) {
    const double E = (double)qt_dtype_size(a->dt), mk = (double)a->M * a->K;
    const double nk = (double)a->N * a->K, mn = (double)a->M * a->N;
    char s8[32], lin[32];
    snprintf(s8, sizeof s8, "gemm_s8s32_%s", v);
    snprintf(lin, sizeof lin, "linear_s8_%s", v);
    const qt_bench_case cases[] = {
        {s8, S8, mk + nk + 4.0 * mn, ops(a)},
        {lin, LIN, mk + nk + 4.0 * (a->M + 2.0 * a->N) + E * mn, ops(a) + 3.0 * mn}};
    return qt_bench_run_cases(b, call, a, cases, 2);
}

// 2 M N K of the layers the portable path runs on when it is not this CPU's path: the default
// model's attention projection (1.3e8, ~60 ms), not the 0.4-2.4e9 of the others (0.2-1.4 s).
#define PORTABLE_MAX_OPS 2e8

static qt_status cpu_layer(qt_bench *b, qt_bench_call call, s8_args *a) {
    static const char *const paths[] = {"portable", "avx2", "avx512vnni"};
    const int portable_default = strcmp(qt_cpu_gemm_s8_path(), "portable") == 0;
    QT_TRY(run_ref(b, call, a, "sgemm", "sgemm"));
    qt_status st = QT_OK;
    for (int i = 0; i < (int)(sizeof paths / sizeof paths[0]) && st == QT_OK; i++) {
        if (i == 0 && !portable_default && ops(a) > PORTABLE_MAX_OPS) continue;
        if (qt_cpu_gemm_s8_set_path(paths[i]) != QT_OK) {
            char op[32];
            snprintf(op, sizeof op, "gemm_s8s32_%s", paths[i]);
            qt_bench_skip(b, op, qt_last_error());
            continue;
        }
        st = run_s8(b, call, a, paths[i]);
    }
    qt_cpu_gemm_s8_set_path(NULL); // back to the run-time choice
    return st;
}

static qt_status cuda_layer(qt_bench *b, qt_bench_call call, s8_args *a) {
    static const struct {
        const char *name;
        qt_cuda_int8_impl impl;
    } impls[] = {{"mma", QT_CUDA_INT8_MMA}, {"cublaslt", QT_CUDA_INT8_CUBLASLT}};
    QT_TRY(run_ref(b, call, a, "gemm_f16", "f16"));
    for (int i = 0; i < 2; i++) {
        a->impl = impls[i].impl;
        QT_TRY(run_s8(b, call, a, impls[i].name));
    }
    return QT_OK;
}

// Every layer of model m: its buffers, its shape, then the device's cases of it. The CPU
// leaves out the LM head where V > 8192 (OPT's 50272-row head would take seconds).
static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    const int cuda = qt_bench_device_of(b) == QT_BENCH_CUDA;
    layer ls[6];
    const int n = layers_of(m, cuda || m->V <= 8192, cuda && m == &qt_bench_model_opt125m_1, ls);
    qt_status st = QT_OK;
    for (int i = 0; i < n && st == QT_OK; i++) {
        s8_args a = {.M = ls[i].M ? ls[i].M : m->B * m->T,
                     .N = ls[i].N,
                     .K = ls[i].K,
                     .dt = qt_bench_dtype(b),
                     .s = qt_bench_stream(b),
                     .gemm = qt_bench_gemm_handle(b)};
        st = alloc_layer(b, &a);
        qt_bench_shape(b, "M=%d N=%d K=%d %s", a.M, a.N, a.K, ls[i].name);
        if (st == QT_OK) st = cuda ? cuda_layer(b, call, &a) : cpu_layer(b, call, &a);
        qt_bench_release(b);
    }
#ifdef QT_HAVE_CUDA
    if (cuda) qt_cuda_int8_release(); // the cuBLASLt int8 path's cached state
#endif
    return st;
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const s8_args *a = p;
    if (op == S8) return qt_cuda_gemm_s8s32(a->s, a->C, a->A, a->B, a->M, a->N, a->K, a->impl);
    if (op == LIN)
        return qt_cuda_linear_s8(a->s, a->dt, a->out, a->A, a->as, a->B, a->bs, a->bias, a->M, a->N,
                                 a->K, a->impl);
    // out (M, N) = x (M, K) w (N, K)^T, as the backend's linear forward calls it.
    const qt_gemm_desc d = qt_gemm_desc_single(0, 1, a->M, a->N, a->K, 0.0f, a->K, a->K, a->N);
    return qt_cuda_gemm(a->s, a->dt, &d, a->Af, a->Bf, a->Cf, a->gemm);
}
#endif

const qt_bench_family qt_bench_family_int8_gemm = {
    .name = "int8_gemm",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

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
//        whole micro-batch (M = 8192).
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
} layer;

// The linear layers of model m (N out, K in): qkv, out_proj, fc1, fc2, the LM head; returns
// how many (the head only when with_head).
static int layers_of(const qt_bench_model *m, int with_head, layer out[5]) {
    out[0] = (layer){"qkv", 3 * m->C, m->C};
    out[1] = (layer){"proj", m->C, m->C};
    out[2] = (layer){"fc1", m->F, m->C};
    out[3] = (layer){"fc2", m->C, m->F};
    out[4] = (layer){"head", m->V, m->C};
    return with_head ? 5 : 4;
}

// Bytes and operations (integer multiply-adds count as 2; the epilogue's scale, scale and bias
// as 3 per output):
//   float GEMM: reads A, B (E (M K + N K)), writes C (E M N); 2 M N K.
//   gemm_s8s32: reads int8 A, B (M K + N K), writes int32 C (4 M N); 2 M N K.
//   linear_s8:  also reads fp32 a_scale (M), b_scale, bias (2 N), writes out (E M N) instead
//               of C; 2 M N K + 3 M N.
static double f_bytes(const s8_args *a, double E) {
    return E * ((double)a->M * a->K + (double)a->N * a->K + (double)a->M * a->N);
}
static double s8_bytes(const s8_args *a) {
    return (double)a->M * a->K + (double)a->N * a->K + 4.0 * a->M * a->N;
}
static double lin_bytes(const s8_args *a, double E) {
    return (double)a->M * a->K + (double)a->N * a->K + 4.0 * (a->M + 2.0 * a->N) + E * a->M * a->N;
}
static double ops(const s8_args *a) { return 2.0 * a->M * a->N * a->K; }

static void set_shape(qt_bench *b, const s8_args *a, const char *name) {
    qt_bench_shape(b, "M=%d N=%d K=%d %s", a->M, a->N, a->K, name);
}

static qt_status cpu_sgemm(void *p) {
    s8_args *a = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a->M, a->N, a->K, 1.0f, a->Af, a->K, a->Bf,
                a->K, 0.0f, a->Cf, a->N);
    return QT_OK;
}

static qt_status cpu_s8(void *p) {
    s8_args *a = p;
    return qt_cpu_gemm_s8s32(a->C, a->A, a->B, a->M, a->N, a->K);
}

static qt_status cpu_lin(void *p) {
    s8_args *a = p;
    return qt_cpu_linear_s8(a->out, a->A, a->as, a->B, a->bs, a->bias, a->M, a->N, a->K);
}

// 2 M N K of the layers the portable path runs on when it is not this CPU's path: the default
// model's attention projection (1.3e8, ~60 ms), not the 0.4-2.4e9 of the others (0.2-1.4 s).
#define PORTABLE_MAX_OPS 2e8

static qt_status cpu_layer(qt_bench *b, s8_args *a, const char *name) {
    static const char *const paths[] = {"portable", "avx2", "avx512vnni"};
    const int portable_default = strcmp(qt_cpu_gemm_s8_path(), "portable") == 0;
    const size_t mk = (size_t)a->M * a->K, nk = (size_t)a->N * a->K, mn = (size_t)a->M * a->N;
    a->A = qt_bench_host_s8(b, mk);
    a->B = qt_bench_host_s8(b, nk);
    a->C = qt_bench_host_zeros(b, mn * sizeof(int32_t));
    a->as = qt_bench_host_f32(b, (size_t)a->M);
    a->bs = qt_bench_host_f32(b, (size_t)a->N);
    a->bias = qt_bench_host_f32(b, (size_t)a->N);
    a->out = qt_bench_host_zeros(b, mn * sizeof(float));
    a->Af = qt_bench_host_f32(b, mk);
    a->Bf = qt_bench_host_f32(b, nk);
    a->Cf = qt_bench_host_zeros(b, mn * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    set_shape(b, a, name);
    qt_bench_result ref;
    QT_TRY(qt_bench_run(b, "sgemm", f_bytes(a, 4), ops(a), cpu_sgemm, a, &ref));
    qt_bench_ref(b, "sgemm", ref.ms_median);
    qt_status st = QT_OK;
    for (int i = 0; i < (int)(sizeof paths / sizeof paths[0]) && st == QT_OK; i++) {
        char op[2][32];
        snprintf(op[0], sizeof op[0], "gemm_s8s32_%s", paths[i]);
        snprintf(op[1], sizeof op[1], "linear_s8_%s", paths[i]);
        if (i == 0 && !portable_default && ops(a) > PORTABLE_MAX_OPS) continue;
        if (qt_cpu_gemm_s8_set_path(paths[i]) != QT_OK) {
            qt_bench_skip(b, op[0], qt_last_error());
            continue;
        }
        st = qt_bench_run(b, op[0], s8_bytes(a), ops(a), cpu_s8, a, NULL);
        if (st == QT_OK)
            st = qt_bench_run(b, op[1], lin_bytes(a, 4), ops(a) + 3.0 * mn, cpu_lin, a, NULL);
    }
    qt_cpu_gemm_s8_set_path(NULL); // back to the run-time choice
    return st;
}

static qt_status int8_gemm_cpu(qt_bench *b, const qt_bench_model *m) {
    layer ls[5];
    const int n = layers_of(m, m->V <= 8192, ls);
    for (int i = 0; i < n; i++) {
        s8_args a = {.M = m->B * m->T, .N = ls[i].N, .K = ls[i].K, .dt = QT_DTYPE_F32};
        QT_TRY(cpu_layer(b, &a, ls[i].name));
        qt_bench_release(b);
    }
    return QT_OK;
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_f16(void *p) {
    s8_args *a = p;
    // out (M, N) = x (M, K) w (N, K)^T, as the backend's linear forward calls it.
    const qt_gemm_desc d = {.trans_b = 1,
                            .M = a->M,
                            .N = a->N,
                            .K = a->K,
                            .alpha = 1.0f,
                            .lda = a->K,
                            .ldb = a->K,
                            .ldc = a->N,
                            .batch = 1,
                            .inner = 1};
    return qt_cuda_gemm(a->s, a->dt, &d, a->Af, a->Bf, a->Cf, a->gemm);
}

static qt_status cuda_s8(void *p) {
    s8_args *a = p;
    return qt_cuda_gemm_s8s32(a->s, a->C, a->A, a->B, a->M, a->N, a->K, a->impl);
}

static qt_status cuda_lin(void *p) {
    s8_args *a = p;
    return qt_cuda_linear_s8(a->s, a->dt, a->out, a->A, a->as, a->B, a->bs, a->bias, a->M, a->N,
                             a->K, a->impl);
}

static qt_status cuda_layer(qt_bench *b, s8_args *a, const char *name) {
    const size_t mk = (size_t)a->M * a->K, nk = (size_t)a->N * a->K, mn = (size_t)a->M * a->N;
    const size_t E = qt_dtype_size(a->dt);
    a->A = qt_bench_dev_copy(b, qt_bench_host_s8(b, mk), mk);
    a->B = qt_bench_dev_copy(b, qt_bench_host_s8(b, nk), nk);
    a->C = qt_bench_dev_zeros(b, mn * sizeof(int32_t));
    // Scales of at most 1e-4 keep the fp16 outputs finite (|acc| <= 127^2 K).
    float *as = qt_bench_host_f32(b, (size_t)a->M), *bs = qt_bench_host_f32(b, (size_t)a->N);
    for (int i = 0; as && i < a->M; i++)
        as[i] *= 1e-4f;
    for (int i = 0; bs && i < a->N; i++)
        bs[i] *= 1e-4f;
    a->as = qt_bench_dev_copy(b, as, (size_t)a->M * sizeof(float));
    a->bs = qt_bench_dev_copy(b, bs, (size_t)a->N * sizeof(float));
    a->bias = qt_bench_dev_rand(b, a->dt, (size_t)a->N);
    a->out = qt_bench_dev_zeros(b, mn * E);
    a->Af = qt_bench_dev_rand(b, a->dt, mk);
    a->Bf = qt_bench_dev_rand(b, a->dt, nk);
    a->Cf = qt_bench_dev_zeros(b, mn * E);
    QT_TRY(qt_bench_ok(b));
    set_shape(b, a, name);
    qt_bench_result ref;
    QT_TRY(qt_bench_run(b, "gemm_f16", f_bytes(a, (double)E), ops(a), cuda_f16, a, &ref));
    qt_bench_ref(b, "f16", ref.ms_median);
    static const struct {
        const char *s8, *lin;
        qt_cuda_int8_impl impl;
    } impls[] = {{"gemm_s8s32_mma", "linear_s8_mma", QT_CUDA_INT8_MMA},
                 {"gemm_s8s32_cublaslt", "linear_s8_cublaslt", QT_CUDA_INT8_CUBLASLT}};
    for (int i = 0; i < 2; i++) {
        a->impl = impls[i].impl;
        QT_TRY(qt_bench_run(b, impls[i].s8, s8_bytes(a), ops(a), cuda_s8, a, NULL));
        QT_TRY(qt_bench_run(b, impls[i].lin, lin_bytes(a, (double)E), ops(a) + 3.0 * mn, cuda_lin,
                            a, NULL));
    }
    return QT_OK;
}

static qt_status int8_gemm_cuda(qt_bench *b, const qt_bench_model *m) {
    layer ls[5];
    const int n = layers_of(m, 1, ls);
    qt_status st = QT_OK;
    for (int i = 0; i < n && st == QT_OK; i++) {
        s8_args a = {.M = m->B * m->T,
                     .N = ls[i].N,
                     .K = ls[i].K,
                     .dt = qt_bench_dtype(b),
                     .s = qt_bench_stream(b),
                     .gemm = qt_bench_gemm_handle(b)};
        st = cuda_layer(b, &a, ls[i].name);
        qt_bench_release(b);
    }
    qt_cuda_int8_release(); // the cuBLASLt int8 path's cached state
    return st;
}
#endif

const qt_bench_family qt_bench_family_int8_gemm = {
    .name = "int8_gemm",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .cuda_models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = int8_gemm_cpu,
    .cuda = QT_BENCH_CUDA(int8_gemm_cuda),
};

// bench/bench_linear.c: the linear family (kernels/linear.h) on the benchmark harness
// (bench/harness.h): the linear layers qkv, fc1 and fc2 of a model (N = B T tokens) and the
// attention's two batched GEMMs (scores = q k^T and ctx = probs v per (batch, head), read in
// place from the (B, T, 3C) qkv tensor, as the CUDA backend composes attention).
//   CPU: qt_cpu_linear_fwd / _bwd (OpenBLAS) and qt_cpu_gemm, on the default model and one
//        OPT-125m sequence.
//   CUDA: no linear launcher exists: the backend runs each linear as cuBLASLt GEMMs
//        (qt_cuda_gemm, fp16, fp32 accumulation), timed here as they are called: gemm_fwd
//        out = x w^T, gemm_dx dx += dout w, gemm_dw dw += dout^T x; on the default model and
//        OPT-125m's whole micro-batch.
#include "bench/harness.h"
#include "kernels/linear.h"

typedef struct {
    int N, IC, OC;
    qt_dtype dt;
    qt_cuda_stream s;
    void *gemm;        // CUDA: the qt_cuda_gemm handle
    void *x, *dx;      // (N, IC)
    void *w, *dw;      // (OC, IC)
    void *bias, *db;   // (OC)
    void *out, *dout;  // (N, OC)
    qt_gemm_desc d;    // the batched GEMMs' descriptor
    const void *A, *B; // and their operands
    void *C;
} lin_args;

static qt_status cpu_fwd(void *p) {
    lin_args *a = p;
    qt_cpu_linear_fwd(a->out, a->x, a->w, a->bias, a->N, a->IC, a->OC);
    return QT_OK;
}

static qt_status cpu_bwd(void *p) {
    lin_args *a = p;
    qt_cpu_linear_bwd(a->dx, a->dw, a->db, a->dout, a->x, a->w, a->N, a->IC, a->OC);
    return QT_OK;
}

static qt_status cpu_gemm(void *p) {
    lin_args *a = p;
    return qt_cpu_gemm(&a->d, a->A, a->B, a->C);
}

// The attention's batched GEMMs on model m: qk: scores (B H, T, T) = q k^T; pv: ctx (B, T, C)
// = probs v. qkv (B, T, 3C), probs (B, H, T, T), ctx (B, T, C), of dt.
static qt_status attn_gemms(qt_bench *b, const qt_bench_model *m, lin_args *a, void *qkv,
                            void *probs, void *ctx, qt_bench_fn gemm) {
    const int B = m->B, T = m->T, C = m->C, H = m->H, D = C / H;
    const size_t E = qt_dtype_size(a->dt);
    const double bhttd = 2.0 * B * H * T * T * D, btc = (double)B * T * C;
    const double btt = (double)B * H * T * T;
    qt_bench_shape(b, "B=%d T=%d C=%d H=%d", B, T, C, H);
    // qk: reads q, k (2 B T C), writes scores (B H T T); 2 B H T T D (the full square).
    a->d = (qt_gemm_desc){.trans_b = 1,
                          .M = T,
                          .N = T,
                          .K = D,
                          .alpha = 1.0f,
                          .lda = 3 * C,
                          .ldb = 3 * C,
                          .ldc = T,
                          .batch = B * H,
                          .inner = H,
                          .a_outer = (int64_t)T * 3 * C,
                          .a_inner = D,
                          .b_outer = (int64_t)T * 3 * C,
                          .b_inner = D,
                          .c_outer = (int64_t)H * T * T,
                          .c_inner = (int64_t)T * T};
    a->A = qkv;
    a->B = QT_AT(qkv, E, C);
    a->C = probs;
    QT_TRY(qt_bench_run(b, "gemm_qk", (double)E * (2 * btc + btt), bhttd, gemm, a, NULL));
    // pv: reads probs (B H T T), v (B T C), writes ctx (B T C); 2 B H T T D.
    a->d = (qt_gemm_desc){.M = T,
                          .N = D,
                          .K = T,
                          .alpha = 1.0f,
                          .lda = T,
                          .ldb = 3 * C,
                          .ldc = C,
                          .batch = B * H,
                          .inner = H,
                          .a_outer = (int64_t)H * T * T,
                          .a_inner = (int64_t)T * T,
                          .b_outer = (int64_t)T * 3 * C,
                          .b_inner = D,
                          .c_outer = (int64_t)T * C,
                          .c_inner = D};
    a->A = probs;
    a->B = QT_AT(qkv, E, 2 * C);
    a->C = ctx;
    return qt_bench_run(b, "gemm_pv", (double)E * (btt + 2 * btc), bhttd, gemm, a, NULL);
}

typedef struct {
    const char *name;
    int IC, OC;
} layer;

static void layers_of(const qt_bench_model *m, layer out[3]) {
    out[0] = (layer){"qkv", m->C, 3 * m->C};
    out[1] = (layer){"fc1", m->C, m->F};
    out[2] = (layer){"fc2", m->F, m->C};
}

static qt_status linear_cpu(qt_bench *b, const qt_bench_model *m) {
    layer ls[3];
    layers_of(m, ls);
    for (int i = 0; i < 3; i++) {
        lin_args a = {.N = m->B * m->T, .IC = ls[i].IC, .OC = ls[i].OC, .dt = QT_DTYPE_F32};
        const size_t ni = (size_t)a.N * a.IC, oi = (size_t)a.OC * a.IC, no = (size_t)a.N * a.OC;
        a.x = qt_bench_host_f32(b, ni);
        a.dx = qt_bench_host_zeros(b, ni * sizeof(float));
        a.w = qt_bench_host_f32(b, oi);
        a.dw = qt_bench_host_zeros(b, oi * sizeof(float));
        a.bias = qt_bench_host_f32(b, (size_t)a.OC);
        a.db = qt_bench_host_zeros(b, (size_t)a.OC * sizeof(float));
        a.out = qt_bench_host_zeros(b, no * sizeof(float));
        a.dout = qt_bench_host_f32(b, no);
        QT_TRY(qt_bench_ok(b));
        const double N = a.N, IC = a.IC, OC = a.OC, mm = 2.0 * N * IC * OC;
        qt_bench_shape(b, "N=%d IC=%d OC=%d %s", a.N, a.IC, a.OC, ls[i].name);
        // fwd: reads x (N IC), w (OC IC), b (OC); writes out (N OC). 2 N IC OC + N OC (bias).
        QT_TRY(qt_bench_run(b, "fwd", 4 * (N * IC + OC * IC + OC + N * OC), mm + N * OC, cpu_fwd,
                            &a, NULL));
        // bwd: reads dout (N OC), x, w, and the += gradients dx (N IC), dw (OC IC), db (OC);
        //      writes dx, dw, db. Two GEMMs (4 N IC OC) and the bias column sums (N OC).
        QT_TRY(qt_bench_run(b, "bwd", 4 * (N * OC + 3 * N * IC + 3 * OC * IC + 2 * OC),
                            2 * mm + N * OC, cpu_bwd, &a, NULL));
        qt_bench_release(b);
    }
    lin_args a = {.dt = QT_DTYPE_F32};
    const size_t btc = (size_t)m->B * m->T * m->C, btt = (size_t)m->B * m->H * m->T * m->T;
    void *qkv = qt_bench_host_f32(b, 3 * btc), *probs = qt_bench_host_f32(b, btt);
    void *ctx = qt_bench_host_zeros(b, btc * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    return attn_gemms(b, m, &a, qkv, probs, ctx, cpu_gemm);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_gemm(void *p) {
    lin_args *a = p;
    return qt_cuda_gemm(a->s, a->dt, &a->d, a->A, a->B, a->C, a->gemm);
}

static qt_status linear_cuda(qt_bench *b, const qt_bench_model *m) {
    layer ls[3];
    layers_of(m, ls);
    const qt_dtype dt = qt_bench_dtype(b);
    const size_t E = qt_dtype_size(dt);
    for (int i = 0; i < 3; i++) {
        lin_args a = {.N = m->B * m->T,
                      .IC = ls[i].IC,
                      .OC = ls[i].OC,
                      .dt = dt,
                      .s = qt_bench_stream(b),
                      .gemm = qt_bench_gemm_handle(b)};
        const size_t ni = (size_t)a.N * a.IC, oi = (size_t)a.OC * a.IC, no = (size_t)a.N * a.OC;
        a.x = qt_bench_dev_rand(b, dt, ni);
        a.dx = qt_bench_dev_zeros(b, ni * E);
        a.w = qt_bench_dev_rand(b, dt, oi);
        a.dw = qt_bench_dev_zeros(b, oi * E);
        a.out = qt_bench_dev_zeros(b, no * E);
        a.dout = qt_bench_dev_rand(b, dt, no);
        QT_TRY(qt_bench_ok(b));
        const int N = a.N, IC = a.IC, OC = a.OC;
        const double mm = 2.0 * N * IC * OC, e = (double)E;
        qt_bench_shape(b, "N=%d IC=%d OC=%d %s", N, IC, OC, ls[i].name);
        // gemm_fwd: reads x (N IC), w (OC IC), writes out (N OC); 2 N IC OC.
        a.d = (qt_gemm_desc){.trans_b = 1,
                             .M = N,
                             .N = OC,
                             .K = IC,
                             .alpha = 1.0f,
                             .lda = IC,
                             .ldb = IC,
                             .ldc = OC,
                             .batch = 1,
                             .inner = 1};
        a.A = a.x;
        a.B = a.w;
        a.C = a.out;
        QT_TRY(qt_bench_run(b, "gemm_fwd", e * ((double)N * IC + (double)OC * IC + (double)N * OC),
                            mm, cuda_gemm, &a, NULL));
        // gemm_dx: dx (N IC) += dout (N OC) w (OC IC): reads dout, w, dx, writes dx; 2 N IC OC.
        a.d = (qt_gemm_desc){.M = N,
                             .N = IC,
                             .K = OC,
                             .alpha = 1.0f,
                             .beta = 1.0f,
                             .lda = OC,
                             .ldb = IC,
                             .ldc = IC,
                             .batch = 1,
                             .inner = 1};
        a.A = a.dout;
        a.B = a.w;
        a.C = a.dx;
        QT_TRY(qt_bench_run(b, "gemm_dx", e * ((double)N * OC + (double)OC * IC + 2.0 * N * IC), mm,
                            cuda_gemm, &a, NULL));
        // gemm_dw: dw (OC IC) += dout^T (OC N) x (N IC): reads dout, x, dw, writes dw.
        a.d = (qt_gemm_desc){.trans_a = 1,
                             .M = OC,
                             .N = IC,
                             .K = N,
                             .alpha = 1.0f,
                             .beta = 1.0f,
                             .lda = OC,
                             .ldb = IC,
                             .ldc = IC,
                             .batch = 1,
                             .inner = 1};
        a.A = a.dout;
        a.B = a.x;
        a.C = a.dw;
        QT_TRY(qt_bench_run(b, "gemm_dw", e * ((double)N * OC + (double)N * IC + 2.0 * OC * IC), mm,
                            cuda_gemm, &a, NULL));
        qt_bench_release(b);
    }
    lin_args a = {.dt = dt, .s = qt_bench_stream(b), .gemm = qt_bench_gemm_handle(b)};
    const size_t btc = (size_t)m->B * m->T * m->C, btt = (size_t)m->B * m->H * m->T * m->T;
    void *qkv = qt_bench_dev_rand(b, dt, 3 * btc), *probs = qt_bench_dev_rand(b, dt, btt);
    void *ctx = qt_bench_dev_zeros(b, btc * E);
    QT_TRY(qt_bench_ok(b));
    return attn_gemms(b, m, &a, qkv, probs, ctx, cuda_gemm);
}
#endif

const qt_bench_family qt_bench_family_linear = {
    .name = "linear",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .cuda_models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = linear_cpu,
    .cuda = QT_BENCH_CUDA(linear_cuda),
};

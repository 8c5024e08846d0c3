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
    void *bias, *db;   // (OC), CPU only
    void *out, *dout;  // (N, OC)
    qt_gemm_desc d;    // GEMM's descriptor
    const void *A, *B; // and its operands
    void *C;
} lin_args;

enum { FWD, BWD, GEMM };

static qt_status cpu_call(void *p, int op) {
    const lin_args *a = p;
    if (op == FWD) return qt_cpu_linear_fwd(a->out, a->x, a->w, a->bias, a->N, a->IC, a->OC);
    if (op == BWD)
        return qt_cpu_linear_bwd(a->dx, a->dw, a->db, a->dout, a->x, a->w, a->N, a->IC, a->OC);
    return qt_cpu_gemm(&a->d, a->A, a->B, a->C);
}

// Times the GEMM C = op(A) op(B) (+ C) of descriptor d as the case `name`.
static qt_status run_gemm(qt_bench *b, qt_bench_call call, lin_args *a, const char *name,
                          qt_gemm_desc d, const void *A, const void *B, void *C, double bytes,
                          double flops) {
    a->d = d;
    a->A = A;
    a->B = B;
    a->C = C;
    const qt_bench_case c = {name, GEMM, bytes, flops};
    return qt_bench_run_case(b, call, a, &c, NULL);
}

// The attention's batched GEMMs on model m: qk: scores (B H, T, T) = q k^T; pv: ctx (B, T, C)
// = probs v. qkv (B, T, 3C), probs (B, H, T, T), ctx (B, T, C), of dt.
static qt_status attn_gemms(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    const int B = m->B, T = m->T, C = m->C, H = m->H, D = C / H;
    lin_args a = {
        .dt = qt_bench_dtype(b), .s = qt_bench_stream(b), .gemm = qt_bench_gemm_handle(b)};
    const size_t E = qt_dtype_size(a.dt), btc_n = (size_t)B * T * C;
    void *qkv = qt_bench_buf(b, QT_BENCH_RAND, 3 * btc_n);
    void *probs = qt_bench_buf(b, QT_BENCH_RAND, (size_t)B * H * T * T);
    void *ctx = qt_bench_buf(b, QT_BENCH_ZEROS, btc_n);
    QT_TRY(qt_bench_ok(b));
    const double bhttd = 2.0 * B * H * T * T * D, btc = (double)B * T * C;
    const double btt = (double)B * H * T * T;
    qt_bench_shape(b, "B=%d T=%d C=%d H=%d", B, T, C, H);
    // qk: reads q, k (2 B T C), writes scores (B H T T); 2 B H T T D (the full square).
    const qt_gemm_desc qk = {.trans_b = 1,
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
    QT_TRY(run_gemm(b, call, &a, "gemm_qk", qk, qkv, QT_AT(qkv, E, C), probs,
                    (double)E * (2 * btc + btt), bhttd));
    // pv: reads probs (B H T T), v (B T C), writes ctx (B T C); 2 B H T T D.
    const qt_gemm_desc pv = {.M = T,
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
    return run_gemm(b, call, &a, "gemm_pv", pv, probs, QT_AT(qkv, E, 2 * C), ctx,
                    (double)E * (btt + 2 * btc), bhttd);
}

// The layers qkv, fc1, fc2 of model m, each (IC, OC) on N = B T tokens, then the attention's
// GEMMs. On the CPU the linear ops; on CUDA the backend's three GEMMs of each layer.
static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    const int cuda = qt_bench_device_of(b) == QT_BENCH_CUDA;
    const struct {
        const char *name;
        int IC, OC;
    } ls[3] = {{"qkv", m->C, 3 * m->C}, {"fc1", m->C, m->F}, {"fc2", m->F, m->C}};
    for (int i = 0; i < 3; i++) {
        lin_args a = {.N = m->B * m->T,
                      .IC = ls[i].IC,
                      .OC = ls[i].OC,
                      .dt = qt_bench_dtype(b),
                      .s = qt_bench_stream(b),
                      .gemm = qt_bench_gemm_handle(b)};
        const int N = a.N, IC = a.IC, OC = a.OC;
        a.x = qt_bench_buf(b, QT_BENCH_RAND, (size_t)N * IC);
        a.dx = qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)N * IC);
        a.w = qt_bench_buf(b, QT_BENCH_RAND, (size_t)OC * IC);
        a.dw = qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)OC * IC);
        a.bias = cuda ? NULL : qt_bench_buf(b, QT_BENCH_RAND, (size_t)OC);
        a.db = cuda ? NULL : qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)OC);
        a.out = qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)N * OC);
        a.dout = qt_bench_buf(b, QT_BENCH_RAND, (size_t)N * OC);
        QT_TRY(qt_bench_ok(b));
        const double n = N, ic = IC, oc = OC, mm = 2.0 * N * IC * OC;
        const double E = (double)qt_dtype_size(a.dt);
        qt_bench_shape(b, "N=%d IC=%d OC=%d %s", N, IC, OC, ls[i].name);
        if (cuda) {
            // gemm_fwd: reads x (N IC), w (OC IC), writes out (N OC); 2 N IC OC.
            QT_TRY(run_gemm(b, call, &a, "gemm_fwd",
                            qt_gemm_desc_single(0, 1, N, OC, IC, 0.0f, IC, IC, OC), a.x, a.w, a.out,
                            E * (n * ic + oc * ic + n * oc), mm));
            // gemm_dx: dx (N IC) += dout (N OC) w (OC IC): reads dout, w, dx, writes dx.
            QT_TRY(run_gemm(b, call, &a, "gemm_dx",
                            qt_gemm_desc_single(0, 0, N, IC, OC, 1.0f, OC, IC, IC), a.dout, a.w,
                            a.dx, E * (n * oc + oc * ic + 2.0 * n * ic), mm));
            // gemm_dw: dw (OC IC) += dout^T (OC N) x (N IC): reads dout, x, dw, writes dw.
            QT_TRY(run_gemm(b, call, &a, "gemm_dw",
                            qt_gemm_desc_single(1, 0, OC, IC, N, 1.0f, OC, IC, IC), a.dout, a.x,
                            a.dw, E * (n * oc + n * ic + 2.0 * oc * ic), mm));
        } else {
            const qt_bench_case cases[] = {
                // fwd: reads x (N IC), w (OC IC), b (OC); writes out (N OC). 2 N IC OC + N OC
                //      (bias).
                {"fwd", FWD, 4 * (n * ic + oc * ic + oc + n * oc), mm + n * oc},
                // bwd: reads dout (N OC), x, w, and the += gradients dx (N IC), dw (OC IC), db
                //      (OC); writes dx, dw, db. Two GEMMs (4 N IC OC) and the bias column sums
                //      (N OC).
                {"bwd", BWD, 4 * (n * oc + 3 * n * ic + 3 * oc * ic + 2 * oc), 2 * mm + n * oc}};
            QT_TRY(qt_bench_run_cases(b, call, &a, cases, 2));
        }
        qt_bench_release(b);
    }
    return attn_gemms(b, m, call);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const lin_args *a = p;
    (void)op; // GEMM: no linear launcher
    return qt_cuda_gemm(a->s, a->dt, &a->d, a->A, a->B, a->C, a->gemm);
}
#endif

const qt_bench_family qt_bench_family_linear = {
    .name = "linear",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

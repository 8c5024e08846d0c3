// bench/bench_gate.c: the gate family (kernels/gate.h) on the benchmark harness
// (bench/harness.h): the attention gate sigmoid(G_h(x_h)) for the linear and MLP gates
// (n_hid = D / 4, the config's default), forward and backward, and the gate's multiply into the
// attention context, forward and backward, on N = B T tokens of the default model and of
// OPT-125m (one sequence on the CPU, the whole micro-batch on CUDA), CPU and CUDA.
#include "bench/harness.h"
#include "kernels/gate.h"

typedef struct {
    int N, C, H, NH; // NH: the MLP gate's hidden width
    qt_dtype dt;
    qt_cuda_stream s;
    qt_gate_shape g;
    void *x, *dx, *ctx, *dctx, *out, *dout; // (N, C)
    void *w1, *dw1;                         // (H, NH, D): the largest kind's
    void *b1, *db1, *w2, *dw2;              // (H, NH)
    void *b2, *db2;                         // (H)
    float *gate, *dgate;                    // (N, H) fp32
    float *hidden;                          // (N, H, NH) fp32
} gate_args;

enum { FWD, BWD, MUL_FWD, MUL_BWD };

// The MLP gate's tensors, NULL for the linear gate.
#define MLP(a, t) ((a)->g.kind == QT_GATE_MLP ? (a)->t : NULL)

static qt_status cpu_call(void *p, int op) {
    const gate_args *a = p;
    if (op == FWD)
        return qt_cpu_gate_fwd(&a->g, a->gate, MLP(a, hidden), a->x, a->w1, a->b1, MLP(a, w2),
                               MLP(a, b2), a->N, a->C);
    if (op == BWD)
        return qt_cpu_gate_bwd(&a->g, a->dx, a->dw1, a->db1, MLP(a, dw2), MLP(a, db2), a->dgate,
                               a->gate, MLP(a, hidden), a->x, a->w1, MLP(a, w2), a->N, a->C);
    if (op == MUL_FWD) return qt_cpu_gate_mul_fwd(a->out, a->gate, a->ctx, a->N, a->C, a->H);
    return qt_cpu_gate_mul_bwd(a->dctx, a->dgate, a->dout, a->gate, a->ctx, a->N, a->C, a->H);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    gate_args a = {.N = m->B * m->T,
                   .C = m->C,
                   .H = m->H,
                   .NH = m->C / m->H / 4 > 0 ? m->C / m->H / 4 : 1,
                   .dt = qt_bench_dtype(b),
                   .s = qt_bench_stream(b)};
    const size_t nc = (size_t)a.N * a.C, nh = (size_t)a.N * a.H, hn = (size_t)a.H * a.NH;
    const size_t w1 = hn * (size_t)(a.C / a.H);
    a.x = qt_bench_buf(b, QT_BENCH_RAND, nc);
    a.ctx = qt_bench_buf(b, QT_BENCH_RAND, nc);
    a.dout = qt_bench_buf(b, QT_BENCH_RAND, nc);
    a.dx = qt_bench_buf(b, QT_BENCH_ZEROS, nc);
    a.dctx = qt_bench_buf(b, QT_BENCH_ZEROS, nc);
    a.out = qt_bench_buf(b, QT_BENCH_ZEROS, nc);
    a.w1 = qt_bench_buf(b, QT_BENCH_RAND, w1);
    a.dw1 = qt_bench_buf(b, QT_BENCH_ZEROS, w1);
    a.b1 = qt_bench_buf(b, QT_BENCH_RAND, hn);
    a.db1 = qt_bench_buf(b, QT_BENCH_ZEROS, hn);
    a.w2 = qt_bench_buf(b, QT_BENCH_RAND, hn);
    a.dw2 = qt_bench_buf(b, QT_BENCH_ZEROS, hn);
    a.b2 = qt_bench_buf(b, QT_BENCH_RAND, (size_t)a.H);
    a.db2 = qt_bench_buf(b, QT_BENCH_ZEROS, (size_t)a.H);
    a.gate = qt_bench_buf(b, QT_BENCH_F32_ZEROS, nh);
    a.dgate = qt_bench_buf(b, QT_BENCH_F32, nh);
    a.hidden = qt_bench_buf(b, QT_BENCH_F32_ZEROS, nh * (size_t)a.NH);
    QT_TRY(qt_bench_ok(b));
    const double N = a.N, H = a.H, D = (double)a.C / a.H, nch = (double)nc, nhd = a.NH;
    const double E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "N=%d C=%d H=%d", a.N, a.C, a.H);
    const qt_bench_case linear[] = {
        // linear fwd: reads x (N C), w1 (H D), b1 (H); writes fp32 gate (N H). Per (token,
        //     head): the dot product (2 D), the bias, the sigmoid (exp, add, divide): 2 D + 4.
        {"fwd_linear", FWD, E * (nch + H * D + H) + 4 * N * H, N * H * (2 * D + 4)},
        // linear bwd: reads fp32 dgate, gate (2 N H), x, dx (+=) (2 N C), w1, dw1 (+=), db1
        //     (+=); writes dx (N C), dw1, db1. Per (token, head): dz = dgate g (1 - g) (3), dx
        //     += dz w1 (2 D), dw1 += dz x (2 D), db1 += dz (1).
        {"bwd_linear", BWD, E * (3 * nch + 3 * H * D + 2 * H) + 8 * N * H, N * H * (4 * D + 4)}};
    a.g = (qt_gate_shape){.kind = QT_GATE_LINEAR, .n_heads = a.H};
    QT_TRY(qt_bench_run_cases(b, call, &a, linear, 2));
    const qt_bench_case mlp[] = {
        // mlp fwd: reads x (N C), w1 (H NH D), b1, w2 (2 H NH), b2 (H); writes fp32 gate (N H)
        //     and hidden (N H NH). Per (token, head): NH hidden units of 2 D + 1, their ReLU and
        //     w2 product (3 NH), b2, the sigmoid (3).
        {"fwd_mlp", FWD, E * (nch + H * nhd * D + 2 * H * nhd + H) + 4 * (N * H + N * H * nhd),
         N * H * (nhd * (2 * D + 4) + 4)},
        // mlp bwd: reads fp32 dgate, gate, hidden (N H (2 + NH)), x, dx (+=) (2 N C), w1, w2 and
        //     the += gradients dw1, db1, dw2, db2; writes dx, dw1, db1, dw2, db2. Per (token,
        //     head): dz (3), db2 (1), per hidden unit dw2 (2), the masked dh (2), db1 (1), dw1
        //     += dh x_h (2 D), dx += dh w1 (2 D).
        {"bwd_mlp", BWD,
         E * (3 * nch + 3 * H * nhd * D + 5 * H * nhd + 2 * H) + 4 * N * H * (2 + nhd),
         N * H * (nhd * (4 * D + 5) + 4)},
        // mul fwd: reads fp32 gate (N H), ctx (N C); writes out (N C). One product per element.
        {"mul_fwd", MUL_FWD, E * 2 * nch + 4 * N * H, nch},
        // mul bwd: reads dout, ctx, dctx (+=) (3 N C), fp32 gate and dgate (+=) (2 N H); writes
        //     dctx (N C), dgate (N H). 4 flops per element: dctx += g dout, dgate += dout ctx.
        {"mul_bwd", MUL_BWD, E * 4 * nch + 12 * N * H, 4 * nch}};
    a.g = (qt_gate_shape){.kind = QT_GATE_MLP, .n_heads = a.H, .n_hid = a.NH};
    return qt_bench_run_cases(b, call, &a, mlp, 4);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const gate_args *a = p;
    if (op == FWD)
        return qt_cuda_gate_fwd(a->s, a->dt, &a->g, a->gate, MLP(a, hidden), a->x, a->w1, a->b1,
                                MLP(a, w2), MLP(a, b2), a->N, a->C);
    if (op == BWD)
        return qt_cuda_gate_bwd(a->s, a->dt, &a->g, a->dx, a->dw1, a->db1, MLP(a, dw2), MLP(a, db2),
                                a->dgate, a->gate, MLP(a, hidden), a->x, a->w1, MLP(a, w2), a->N,
                                a->C);
    if (op == MUL_FWD)
        return qt_cuda_gate_mul_fwd(a->s, a->dt, a->out, a->gate, a->ctx, a->N, a->C, a->H);
    return qt_cuda_gate_mul_bwd(a->s, a->dt, a->dctx, a->dgate, a->dout, a->gate, a->ctx, a->N,
                                a->C, a->H);
}
#endif

const qt_bench_family qt_bench_family_gate = {
    .name = "gate",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

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

static qt_status cpu_fwd(void *p) {
    gate_args *a = p;
    const int mlp = a->g.kind == QT_GATE_MLP;
    qt_cpu_gate_fwd(&a->g, a->gate, mlp ? a->hidden : NULL, a->x, a->w1, a->b1, mlp ? a->w2 : NULL,
                    mlp ? a->b2 : NULL, a->N, a->C);
    return QT_OK;
}

static qt_status cpu_bwd(void *p) {
    gate_args *a = p;
    const int mlp = a->g.kind == QT_GATE_MLP;
    qt_cpu_gate_bwd(&a->g, a->dx, a->dw1, a->db1, mlp ? a->dw2 : NULL, mlp ? a->db2 : NULL,
                    a->dgate, a->gate, mlp ? a->hidden : NULL, a->x, a->w1, mlp ? a->w2 : NULL,
                    a->N, a->C);
    return QT_OK;
}

static qt_status cpu_mul_fwd(void *p) {
    gate_args *a = p;
    qt_cpu_gate_mul_fwd(a->out, a->gate, a->ctx, a->N, a->C, a->H);
    return QT_OK;
}

static qt_status cpu_mul_bwd(void *p) {
    gate_args *a = p;
    qt_cpu_gate_mul_bwd(a->dctx, a->dgate, a->dout, a->gate, a->ctx, a->N, a->C, a->H);
    return QT_OK;
}

// fns: fwd, bwd, mul_fwd, mul_bwd.
static qt_status cases(qt_bench *b, gate_args *a, const qt_bench_fn fns[4]) {
    const double N = a->N, H = a->H, D = (double)a->C / a->H, nc = (double)a->N * a->C;
    const double nh = a->NH, E = (double)qt_dtype_size(a->dt);
    qt_bench_shape(b, "N=%d C=%d H=%d", a->N, a->C, a->H);
    a->g = (qt_gate_shape){.kind = QT_GATE_LINEAR, .n_heads = a->H};
    // linear fwd: reads x (N C), w1 (H D), b1 (H); writes fp32 gate (N H). Per (token, head):
    //     the dot product (2 D), the bias, the sigmoid (exp, add, divide): 2 D + 4.
    QT_TRY(qt_bench_run(b, "fwd_linear", E * (nc + H * D + H) + 4 * N * H, N * H * (2 * D + 4),
                        fns[0], a, NULL));
    // linear bwd: reads fp32 dgate, gate (2 N H), x, dx (+=) (2 N C), w1, dw1 (+=), db1 (+=);
    //     writes dx (N C), dw1, db1. Per (token, head): dz = dgate g (1 - g) (3), dx += dz w1
    //     (2 D), dw1 += dz x (2 D), db1 += dz (1).
    QT_TRY(qt_bench_run(b, "bwd_linear", E * (3 * nc + 3 * H * D + 2 * H) + 8 * N * H,
                        N * H * (4 * D + 4), fns[1], a, NULL));
    a->g = (qt_gate_shape){.kind = QT_GATE_MLP, .n_heads = a->H, .n_hid = a->NH};
    // mlp fwd: reads x (N C), w1 (H NH D), b1, w2 (2 H NH), b2 (H); writes fp32 gate (N H) and
    //     hidden (N H NH). Per (token, head): NH hidden units of 2 D + 1, their ReLU and w2
    //     product (3 NH), b2, the sigmoid (3).
    QT_TRY(qt_bench_run(b, "fwd_mlp",
                        E * (nc + H * nh * D + 2 * H * nh + H) + 4 * (N * H + N * H * nh),
                        N * H * (nh * (2 * D + 4) + 4), fns[0], a, NULL));
    // mlp bwd: reads fp32 dgate, gate, hidden (N H (2 + NH)), x, dx (+=) (2 N C), w1, w2 and
    //     the += gradients dw1, db1, dw2, db2; writes dx, dw1, db1, dw2, db2. Per (token,
    //     head): dz (3), db2 (1), per hidden unit dw2 (2), the masked dh (2), db1 (1), dw1 += dh
    //     x_h (2 D), dx += dh w1 (2 D).
    QT_TRY(qt_bench_run(b, "bwd_mlp",
                        E * (3 * nc + 3 * H * nh * D + 5 * H * nh + 2 * H) + 4 * N * H * (2 + nh),
                        N * H * (nh * (4 * D + 5) + 4), fns[1], a, NULL));
    // mul fwd: reads fp32 gate (N H), ctx (N C); writes out (N C). One product per element.
    QT_TRY(qt_bench_run(b, "mul_fwd", E * 2 * nc + 4 * N * H, nc, fns[2], a, NULL));
    // mul bwd: reads dout, ctx, dctx (+=) (3 N C), fp32 gate and dgate (+=) (2 N H); writes
    //     dctx (N C), dgate (N H). 4 flops per element: dctx += g dout, dgate += dout ctx.
    return qt_bench_run(b, "mul_bwd", E * 4 * nc + 12 * N * H, 4 * nc, fns[3], a, NULL);
}

static void dims(gate_args *a, const qt_bench_model *m) {
    a->N = m->B * m->T;
    a->C = m->C;
    a->H = m->H;
    a->NH = m->C / m->H / 4 > 0 ? m->C / m->H / 4 : 1;
}

static qt_status gate_cpu(qt_bench *b, const qt_bench_model *m) {
    gate_args a = {.dt = QT_DTYPE_F32};
    dims(&a, m);
    const size_t nc = (size_t)a.N * a.C, nh = (size_t)a.N * a.H, hn = (size_t)a.H * a.NH;
    const size_t w1 = hn * (size_t)(a.C / a.H);
    a.x = qt_bench_host_f32(b, nc);
    a.ctx = qt_bench_host_f32(b, nc);
    a.dout = qt_bench_host_f32(b, nc);
    a.dx = qt_bench_host_zeros(b, nc * sizeof(float));
    a.dctx = qt_bench_host_zeros(b, nc * sizeof(float));
    a.out = qt_bench_host_zeros(b, nc * sizeof(float));
    a.w1 = qt_bench_host_f32(b, w1);
    a.dw1 = qt_bench_host_zeros(b, w1 * sizeof(float));
    a.b1 = qt_bench_host_f32(b, hn);
    a.db1 = qt_bench_host_zeros(b, hn * sizeof(float));
    a.w2 = qt_bench_host_f32(b, hn);
    a.dw2 = qt_bench_host_zeros(b, hn * sizeof(float));
    a.b2 = qt_bench_host_f32(b, (size_t)a.H);
    a.db2 = qt_bench_host_zeros(b, (size_t)a.H * sizeof(float));
    a.gate = qt_bench_host_zeros(b, nh * sizeof(float));
    a.dgate = qt_bench_host_f32(b, nh);
    a.hidden = qt_bench_host_zeros(b, nh * (size_t)a.NH * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    static const qt_bench_fn fns[4] = {cpu_fwd, cpu_bwd, cpu_mul_fwd, cpu_mul_bwd};
    return cases(b, &a, fns);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_fwd(void *p) {
    gate_args *a = p;
    const int mlp = a->g.kind == QT_GATE_MLP;
    return qt_cuda_gate_fwd(a->s, a->dt, &a->g, a->gate, mlp ? a->hidden : NULL, a->x, a->w1, a->b1,
                            mlp ? a->w2 : NULL, mlp ? a->b2 : NULL, a->N, a->C);
}

static qt_status cuda_bwd(void *p) {
    gate_args *a = p;
    const int mlp = a->g.kind == QT_GATE_MLP;
    return qt_cuda_gate_bwd(a->s, a->dt, &a->g, a->dx, a->dw1, a->db1, mlp ? a->dw2 : NULL,
                            mlp ? a->db2 : NULL, a->dgate, a->gate, mlp ? a->hidden : NULL, a->x,
                            a->w1, mlp ? a->w2 : NULL, a->N, a->C);
}

static qt_status cuda_mul_fwd(void *p) {
    gate_args *a = p;
    return qt_cuda_gate_mul_fwd(a->s, a->dt, a->out, a->gate, a->ctx, a->N, a->C, a->H);
}

static qt_status cuda_mul_bwd(void *p) {
    gate_args *a = p;
    return qt_cuda_gate_mul_bwd(a->s, a->dt, a->dctx, a->dgate, a->dout, a->gate, a->ctx, a->N,
                                a->C, a->H);
}

static qt_status gate_cuda(qt_bench *b, const qt_bench_model *m) {
    gate_args a = {.dt = qt_bench_dtype(b), .s = qt_bench_stream(b)};
    dims(&a, m);
    const size_t nc = (size_t)a.N * a.C, nh = (size_t)a.N * a.H, hn = (size_t)a.H * a.NH;
    const size_t w1 = hn * (size_t)(a.C / a.H), E = qt_dtype_size(a.dt);
    a.x = qt_bench_dev_rand(b, a.dt, nc);
    a.ctx = qt_bench_dev_rand(b, a.dt, nc);
    a.dout = qt_bench_dev_rand(b, a.dt, nc);
    a.dx = qt_bench_dev_zeros(b, nc * E);
    a.dctx = qt_bench_dev_zeros(b, nc * E);
    a.out = qt_bench_dev_zeros(b, nc * E);
    a.w1 = qt_bench_dev_rand(b, a.dt, w1);
    a.dw1 = qt_bench_dev_zeros(b, w1 * E);
    a.b1 = qt_bench_dev_rand(b, a.dt, hn);
    a.db1 = qt_bench_dev_zeros(b, hn * E);
    a.w2 = qt_bench_dev_rand(b, a.dt, hn);
    a.dw2 = qt_bench_dev_zeros(b, hn * E);
    a.b2 = qt_bench_dev_rand(b, a.dt, (size_t)a.H);
    a.db2 = qt_bench_dev_zeros(b, (size_t)a.H * E);
    a.gate = qt_bench_dev_zeros(b, nh * sizeof(float));
    a.dgate = qt_bench_dev_rand(b, QT_DTYPE_F32, nh);
    a.hidden = qt_bench_dev_zeros(b, nh * (size_t)a.NH * sizeof(float));
    QT_TRY(qt_bench_ok(b));
    static const qt_bench_fn fns[4] = {cuda_fwd, cuda_bwd, cuda_mul_fwd, cuda_mul_bwd};
    return cases(b, &a, fns);
}
#endif

const qt_bench_family qt_bench_family_gate = {
    .name = "gate",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m_1},
    .cuda_models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .cpu = gate_cpu,
    .cuda = QT_BENCH_CUDA(gate_cuda),
};

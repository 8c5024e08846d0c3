// bench/bench_rope.c: the rope family (kernels/rope.h) on the benchmark harness
// (bench/harness.h): the rotary embedding of the q and k thirds of qkv (B, T, 3C), in place,
// forward and backward (the inverse rotation), on llama-tiny and llama-130m, CPU and CUDA.
#include "bench/harness.h"
#include "kernels/rope.h"

#define THETA 10000.0f

typedef struct {
    int B, T, C, H;
    qt_dtype dt;
    qt_cuda_stream s;
    void *qkv; // (B, T, 3C)
} rope_args;

enum { FWD, BWD };

static qt_status cpu_call(void *p, int op) {
    const rope_args *a = p;
    if (op == FWD) return qt_cpu_rope_fwd(a->qkv, a->B, a->T, a->C, a->H, THETA);
    return qt_cpu_rope_bwd(a->qkv, a->B, a->T, a->C, a->H, THETA);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    rope_args a = {.B = m->B,
                   .T = m->T,
                   .C = m->C,
                   .H = m->H,
                   .dt = qt_bench_dtype(b),
                   .s = qt_bench_stream(b)};
    a.qkv = qt_bench_buf(b, QT_BENCH_RAND, 3 * (size_t)a.B * a.T * a.C);
    QT_TRY(qt_bench_ok(b));
    const double qk = 2.0 * a.B * a.T * a.C, E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "B=%d T=%d C=%d H=%d", a.B, a.T, a.C, a.H);
    // fwd and bwd alike: read and write the q and k thirds (2 B T C each way; v is untouched).
    // 3 flops per rotated element (a pair: four products and two sums); the angles' cos and
    // sin, computed per (position, frequency), are not counted.
    const qt_bench_case cases[] = {{"fwd", FWD, E * 2 * qk, 3 * qk},
                                   {"bwd", BWD, E * 2 * qk, 3 * qk}};
    return qt_bench_run_cases(b, call, &a, cases, 2);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *p, int op) {
    const rope_args *a = p;
    if (op == FWD) return qt_cuda_rope_fwd(a->s, a->dt, a->qkv, a->B, a->T, a->C, a->H, THETA);
    return qt_cuda_rope_bwd(a->s, a->dt, a->qkv, a->B, a->T, a->C, a->H, THETA);
}
#endif

const qt_bench_family qt_bench_family_rope = {
    .name = "rope",
    .models = {&qt_bench_model_llama_tiny, &qt_bench_model_llama130m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

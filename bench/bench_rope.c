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

static qt_status cpu_fwd(void *p) {
    rope_args *a = p;
    qt_cpu_rope_fwd(a->qkv, a->B, a->T, a->C, a->H, THETA);
    return QT_OK;
}

static qt_status cpu_bwd(void *p) {
    rope_args *a = p;
    qt_cpu_rope_bwd(a->qkv, a->B, a->T, a->C, a->H, THETA);
    return QT_OK;
}

static qt_status cases(qt_bench *b, rope_args *a, qt_bench_fn fwd, qt_bench_fn bwd) {
    const double qk = 2.0 * a->B * a->T * a->C, E = (double)qt_dtype_size(a->dt);
    qt_bench_shape(b, "B=%d T=%d C=%d H=%d", a->B, a->T, a->C, a->H);
    // fwd and bwd alike: read and write the q and k thirds (2 B T C each way; v is untouched).
    // 3 flops per rotated element (a pair: four products and two sums); the angles' cos and
    // sin, computed per (position, frequency), are not counted.
    QT_TRY(qt_bench_run(b, "fwd", E * 2 * qk, 3 * qk, fwd, a, NULL));
    return qt_bench_run(b, "bwd", E * 2 * qk, 3 * qk, bwd, a, NULL);
}

static qt_status rope_cpu(qt_bench *b, const qt_bench_model *m) {
    rope_args a = {.B = m->B, .T = m->T, .C = m->C, .H = m->H, .dt = QT_DTYPE_F32};
    a.qkv = qt_bench_host_f32(b, 3 * (size_t)a.B * a.T * a.C);
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cpu_fwd, cpu_bwd);
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_fwd(void *p) {
    rope_args *a = p;
    return qt_cuda_rope_fwd(a->s, a->dt, a->qkv, a->B, a->T, a->C, a->H, THETA);
}

static qt_status cuda_bwd(void *p) {
    rope_args *a = p;
    return qt_cuda_rope_bwd(a->s, a->dt, a->qkv, a->B, a->T, a->C, a->H, THETA);
}

static qt_status rope_cuda(qt_bench *b, const qt_bench_model *m) {
    rope_args a = {.B = m->B,
                   .T = m->T,
                   .C = m->C,
                   .H = m->H,
                   .dt = qt_bench_dtype(b),
                   .s = qt_bench_stream(b)};
    a.qkv = qt_bench_dev_rand(b, a.dt, 3 * (size_t)a.B * a.T * a.C);
    QT_TRY(qt_bench_ok(b));
    return cases(b, &a, cuda_fwd, cuda_bwd);
}
#endif

const qt_bench_family qt_bench_family_rope = {
    .name = "rope",
    .models = {&qt_bench_model_llama_tiny, &qt_bench_model_llama130m},
    .cpu = rope_cpu,
    .cuda = QT_BENCH_CUDA(rope_cuda),
};

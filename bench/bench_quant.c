// bench/bench_quant.c: the quant family (kernels/quant.h) on the benchmark harness
// (bench/harness.h): fake quantization (quantize-dequantize) of an fc1 weight (F, C) of the
// default model and of OPT-125m in the common modes: 8-bit absmax per tensor (the reference of
// the other modes' "vs ref"), per row, per group of 128, per row with stochastic rounding,
// ternary absmean (BitNet), and the calibration-time ranges (99.999th percentile; the MSE search
// over 100 candidate ranges, on the default model's weight only: it costs 100 quantizations),
// plus the quantization to int8 codes and scales per row. CPU and CUDA (whose quantizer has the
// absmax and absmean ranges only).
#include "bench/harness.h"
#include "kernels/quant.h"

typedef struct {
    size_t rows, cols;
    qt_dtype dt;
    qt_cuda_stream s;
    qt_quant_params p;
    void *x, *out;  // (rows, cols)
    int8_t *codes;  // (rows, cols)
    float *scales;  // (qt_quant_num_scales) fp32
    int32_t *zeros; // (qt_quant_num_scales), CUDA only
} q_args;

typedef struct {
    const char *op;
    int bits;
    qt_quant_granularity gran;
    qt_quant_rounding rnd;
    qt_quant_range range;
    double flops; // per element, as modes[]'s comment counts
    int cuda;     // the CUDA quantizer has this range
    int quantize; // 1: codes and scales (qt_*_quant_quantize), else fake quantization
} q_mode;

// Per element: absmax and nearest rounding: |x| and the max (2), x / step, round, clamp (2),
// times step (5 more) = 7; stochastic adds u (8; the Philox draw is integer work); absmean sums
// |x| instead of the max (7); the percentile's selection about 4 compares more (11); the MSE
// search quantizes, dequantizes and squares the error for 100 candidates (800 + 7); quantize
// stops at the code (5).
static const q_mode modes[] = {
    {"fake_int8_tensor", 8, QT_QUANT_PER_TENSOR, QT_QUANT_NEAREST, QT_QUANT_RANGE_ABSMAX, 7, 1, 0},
    {"fake_int8_row", 8, QT_QUANT_PER_ROW, QT_QUANT_NEAREST, QT_QUANT_RANGE_ABSMAX, 7, 1, 0},
    {"fake_int8_group128", 8, QT_QUANT_PER_GROUP, QT_QUANT_NEAREST, QT_QUANT_RANGE_ABSMAX, 7, 1, 0},
    {"fake_int8_row_sr", 8, QT_QUANT_PER_ROW, QT_QUANT_STOCHASTIC, QT_QUANT_RANGE_ABSMAX, 8, 1, 0},
    {"fake_ternary_absmean", QT_QUANT_TERNARY, QT_QUANT_PER_TENSOR, QT_QUANT_NEAREST,
     QT_QUANT_RANGE_ABSMEAN, 7, 1, 0},
    {"fake_int8_percentile", 8, QT_QUANT_PER_TENSOR, QT_QUANT_NEAREST, QT_QUANT_RANGE_PERCENTILE,
     11, 0, 0},
    {"fake_int8_row_mse", 8, QT_QUANT_PER_ROW, QT_QUANT_NEAREST, QT_QUANT_RANGE_MSE, 807, 0, 0},
    {"quantize_int8_row", 8, QT_QUANT_PER_ROW, QT_QUANT_NEAREST, QT_QUANT_RANGE_ABSMAX, 5, 1, 1},
};
#define N_MODES ((int)(sizeof modes / sizeof modes[0]))

// Quantizes to codes and scales when a->codes is set, else fake-quantizes (op unused).
static qt_status cpu_call(void *arg, int op) {
    const q_args *a = arg;
    (void)op;
    if (a->codes)
        return qt_cpu_quant_quantize(&a->p, NULL, a->codes, a->scales, NULL, a->x, a->rows,
                                     a->cols);
    return qt_cpu_quant_fake(&a->p, NULL, a->out, a->x, a->rows, a->cols);
}

static qt_status run(qt_bench *b, const qt_bench_model *m, qt_bench_call call) {
    const int cuda = qt_bench_device_of(b) == QT_BENCH_CUDA;
    q_args a = {.rows = (size_t)m->F,
                .cols = (size_t)m->C,
                .dt = qt_bench_dtype(b),
                .s = qt_bench_stream(b)};
    const size_t n = a.rows * a.cols;
    a.x = qt_bench_buf(b, QT_BENCH_RAND, n);
    a.out = qt_bench_buf(b, QT_BENCH_ZEROS, n);
    int8_t *codes = qt_bench_buf(b, QT_BENCH_BYTES, n);
    a.scales = qt_bench_buf(b, QT_BENCH_F32_ZEROS, n); // at most one scale per element
    a.zeros = cuda ? qt_bench_buf(b, QT_BENCH_BYTES, n * sizeof(int32_t)) : NULL;
    QT_TRY(qt_bench_ok(b));
    const double nd = (double)n, E = (double)qt_dtype_size(a.dt);
    qt_bench_shape(b, "%zu x %zu (fc1 weight)", a.rows, a.cols);
    for (int i = 0; i < N_MODES; i++) {
        const q_mode *q = &modes[i];
        if (cuda && !q->cuda) continue;
        if (q->range == QT_QUANT_RANGE_MSE && nd > 1e6) continue; // seconds per call
        a.p = qt_quant_params_default(q->bits);
        a.p.granularity = q->gran;
        a.p.group_size = 128;
        a.p.rounding = q->rnd;
        a.p.range = q->range;
        a.p.seed = 1;
        a.p.stream = qt_quant_stream(0, 1);
        a.codes = q->quantize ? codes : NULL;
        const double scales = (double)qt_quant_num_scales(&a.p, a.rows, a.cols);
        // fake: reads x, writes out (2 n E), the fp32 scales (and on CUDA zero points) aside.
        // quantize: reads x (n E), writes int8 codes (n) and fp32 scales.
        const qt_bench_case c = {q->op, 0,
                                 q->quantize ? (E + 1) * nd + 4 * scales : 2 * E * nd + 4 * scales,
                                 q->flops * nd};
        qt_bench_result r;
        QT_TRY(qt_bench_run_case(b, call, &a, &c, i ? NULL : &r));
        if (i == 0) qt_bench_ref(b, "tensor", r.ms_median);
    }
    return QT_OK;
}

#ifdef QT_HAVE_CUDA
static qt_status cuda_call(void *arg, int op) {
    const q_args *a = arg;
    (void)op;
    if (a->codes)
        return qt_cuda_quant_quantize(a->s, a->dt, &a->p, a->codes, a->scales, NULL, a->x, a->rows,
                                      a->cols);
    return qt_cuda_quant_fake(a->s, a->dt, &a->p, a->out, a->x, a->rows, a->cols, a->scales,
                              a->zeros);
}
#endif

const qt_bench_family qt_bench_family_quant = {
    .name = "quant",
    .models = {&qt_bench_model_default, &qt_bench_model_opt125m},
    .run = run,
    .cpu = cpu_call,
    .cuda = QT_BENCH_CUDA(cuda_call),
};

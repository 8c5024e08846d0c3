// bench/step_model.c: the cost model of `qtrain bench step` (bench/step.h): the GPUs' datasheet
// constants, the predicted time of one launch record, tallies and the most expensive kernels.
// Plain arithmetic on records (include/qtrain/cuda_record.h); no CUDA is called here.
#include "bench/step.h"

#include <stdlib.h>
#include <string.h>

// Datasheet leads, dense rates (the sparse "2x" figures halved), in the order of qt_math_unit:
// NONE, FP32 (CUDA cores), FP64 (CUDA cores), TENSOR16 (fp16/bf16 tensor cores, fp32
// accumulation), INT8 (tensor cores, TOPS). PCIe: the datasheet's bidirectional rate halved.
// clang-format off: one GPU a row
const qt_step_gpu qt_step_gpus[] = {
    {"a100",
     "NVIDIA A100 SXM4 80GB",
     {0, 19.5, 9.7, 312, 624},
     2039,
     32,
     "NVIDIA A100 Tensor Core GPU datasheet (2021): FP16/BF16 tensor 312 TFLOP/s dense, FP32 "
     "19.5, FP64 9.7, INT8 624 TOPS; HBM2e 2,039 GB/s (80GB SXM); PCIe Gen4 64 GB/s"},
    {"a100-40gb",
     "NVIDIA A100 SXM4 40GB",
     {0, 19.5, 9.7, 312, 624},
     1555,
     32,
     "NVIDIA A100 Tensor Core GPU datasheet (2021): as the 80GB, HBM2 1,555 GB/s (40GB SXM)"},
    {"h100",
     "NVIDIA H100 SXM5 80GB",
     {0, 67, 34, 989, 1979},
     3350,
     64,
     "NVIDIA H100 Tensor Core GPU datasheet: FP16/BF16 tensor 1,979 TFLOP/s with sparsity "
     "(989 dense), FP32 67, FP64 34, INT8 3,958 TOPS with sparsity (1,979 dense); HBM3 3.35 "
     "TB/s; PCIe Gen5 128 GB/s"},
    {"h200",
     "NVIDIA H200 SXM 141GB",
     {0, 67, 34, 989, 1979},
     4800,
     64,
     "NVIDIA H200 Tensor Core GPU datasheet: compute as the H100 SXM (FP16/BF16 tensor 989 "
     "TFLOP/s dense, FP32 67, FP64 34, INT8 1,979 TOPS dense); HBM3e 4.8 TB/s; PCIe Gen5 128 "
     "GB/s"},
};
// clang-format on
const int qt_step_n_gpus = (int)(sizeof qt_step_gpus / sizeof qt_step_gpus[0]);

const qt_step_gpu *qt_step_gpu_find(const char *name) {
    for (int i = 0; name && i < qt_step_n_gpus; i++)
        if (strcmp(qt_step_gpus[i].name, name) == 0) return &qt_step_gpus[i];
    return NULL;
}

// Launch: a few microseconds from one launch to the next on an otherwise busy stream (the
// host's cudaLaunchKernel and the GPU's drain and ramp between kernels). Sync: the stream
// drains, the host's wait returns, and the next launch reaches an idle GPU.
void qt_step_model_default(qt_step_model *m) {
    for (int u = 0; u < QT_MATH_UNITS; u++)
        m->eff[u] = 1.0;
    m->eff_bw = 1.0;
    m->launch_us = 3.0;
    m->sync_us = 10.0;
}

// The two terms of a launch, seconds, without its launch cost.
static void launch_terms(const qt_step_gpu *g, const qt_step_model *m, const qt_launch *l,
                         double *t_bytes, double *t_flops) {
    const double bw = g->hbm_gbs * 1e9 * m->eff_bw;
    switch (l->kind) {
    case QT_LAUNCH_COPY_H2D:
    case QT_LAUNCH_COPY_D2H:
        *t_bytes = l->bytes / (g->pcie_gbs * 1e9);
        break;
    case QT_LAUNCH_COPY_D2D:
        *t_bytes = 2 * l->bytes / bw;
        break; // read and written
    default:
        *t_bytes = l->bytes / bw;
        break;
    }
    *t_flops = 0.0;
    if (l->unit > QT_MATH_NONE && l->unit < QT_MATH_UNITS && l->flops > 0)
        *t_flops = l->flops / (g->peak_tflops[l->unit] * 1e12 * m->eff[l->unit]);
}

double qt_step_launch_seconds(const qt_step_gpu *g, const qt_step_model *m, const qt_launch *l) {
    if (l->kind == QT_LAUNCH_SYNC) return l->count * m->sync_us * 1e-6;
    double tb, tf;
    launch_terms(g, m, l, &tb, &tf);
    return l->count * ((tb > tf ? tb : tf) + m->launch_us * 1e-6);
}

const char *qt_step_launch_bound(const qt_step_gpu *g, const qt_step_model *m, const qt_launch *l) {
    if (l->kind == QT_LAUNCH_SYNC) return "sync";
    double tb, tf;
    launch_terms(g, m, l, &tb, &tf);
    if (m->launch_us * 1e-6 > (tb > tf ? tb : tf)) return "launch";
    return tf > tb ? "compute" : "memory";
}

void qt_step_tally_range(const qt_step_gpu *g, const qt_step_model *m, const qt_cuda_record *r,
                         size_t n, qt_step_tally *t) {
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        const qt_launch *l = &r[i].l;
        const double c = l->count;
        if (l->kind == QT_LAUNCH_SYNC) {
            t->syncs += c;
            t->s_sync += qt_step_launch_seconds(g, m, l);
            continue;
        }
        t->launches += c;
        switch (l->kind) {
        case QT_LAUNCH_KERNEL:
            t->kernels += c;
            break;
        case QT_LAUNCH_GEMM:
            t->gemms += c;
            break;
        case QT_LAUNCH_MEMSET:
            t->memsets += c;
            break;
        default:
            t->copies += c;
            break;
        }
        t->bytes += c * l->bytes;
        t->flops += c * l->flops;
        if (l->kind == QT_LAUNCH_GEMM || l->unit == QT_MATH_TENSOR16 || l->unit == QT_MATH_INT8)
            t->gemm_flops += c * l->flops;
        double tb, tf;
        launch_terms(g, m, l, &tb, &tf);
        const double work = c * (tb > tf ? tb : tf), launch = c * m->launch_us * 1e-6;
        t->s_launch += launch;
        if (tf > tb)
            t->s_compute += work;
        else
            t->s_memory += work;
    }
    t->seconds = t->s_compute + t->s_memory + t->s_launch + t->s_sync;
}

static int same_group(const qt_cuda_record *a, const qt_cuda_record *b) {
    return a->l.kind == b->l.kind && a->l.unit == b->l.unit && a->l.bytes == b->l.bytes &&
           a->l.flops == b->l.flops && strcmp(a->op, b->op) == 0 &&
           strcmp(a->l.name, b->l.name) == 0 && strcmp(a->shape, b->shape) == 0;
}

static int by_seconds_desc(const void *pa, const void *pb) {
    const qt_step_hot *a = pa, *b = pb;
    return a->seconds < b->seconds ? 1 : a->seconds > b->seconds ? -1 : 0;
}

qt_status qt_step_hot_list(const qt_step_gpu *g, const qt_step_model *m, const qt_cuda_record *r,
                           size_t n, qt_step_hot **hot, size_t *n_hot) {
    *hot = NULL;
    *n_hot = 0;
    qt_step_hot *h = calloc(n ? n : 1, sizeof *h);
    if (!h) return qt_error(QT_ERR_OOM, "bench step: cannot allocate %zu groups", n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i].l.kind == QT_LAUNCH_SYNC) continue;
        size_t j = 0;
        while (j < k && !same_group(h[j].r, &r[i]))
            j++;
        if (j == k) h[k++].r = &r[i];
        h[j].calls += r[i].l.count;
        h[j].seconds += qt_step_launch_seconds(g, m, &r[i].l);
    }
    qsort(h, k, sizeof *h, by_seconds_desc);
    *hot = h;
    *n_hot = k;
    return QT_OK;
}

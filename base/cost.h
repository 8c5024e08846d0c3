// base/cost.h: the cost model's unit: what one CUDA launcher puts on the GPU's stream for its
// arguments, launch by launch, with the bytes each moves and the FLOPs it performs.
//
// Every CUDA launcher qt_cuda_<family>_<op> of kernels/<family>.h has a twin
//     void qt_cuda_<family>_<op>_cost(qt_cost *c, <the launcher's arguments after the stream>)
// defined in kernels/cuda/<family>.cu beside its kernels, which appends to *c one qt_launch for
// each kernel launch, cuBLASLt call, memset, copy and host synchronization the launcher would
// make for those arguments (the same early returns: an empty shape appends nothing). It reads
// only the arguments, never the memory they point to (pointers matter for NULL and aliasing),
// so it also runs with no device at all. The CUDA backend (host/backends/backend_cuda.c)
// records these launches (include/qtrain/cuda_record.h); `qtrain bench step` turns a step's
// records into a predicted time.
//
// Counts, for one launch (the convention of bench/harness.h's qt_bench_run, so a launch's cost
// and its family's benchmark line agree):
//   bytes: the compulsory DRAM traffic: every input read once, every output written once, an
//          accumulated (+=) output read and written; re-reads a kernel makes from L1/L2 and
//          cache misses are the kernel's inefficiency, not counted. Copies count the bytes
//          copied; a memset the bytes written.
//   flops: the arithmetic of the formula as the kernel evaluates it, an exp, tanh, sqrt or
//          divide counted as one; a GEMM 2 M N K per product; integer multiply-adds of the
//          INT8 GEMM count too.
//   unit:  the pipe that executes those flops, which decides the peak they are divided by.
// Part of the bottom layer: C and C++ (the .cu files include it through kernels/<family>.h).
#ifndef QTRAIN_BASE_COST_H
#define QTRAIN_BASE_COST_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    QT_LAUNCH_KERNEL = 0, // a kernel of kernels/cuda
    QT_LAUNCH_GEMM,       // a cuBLASLt matmul (one cublasLtMatmul call)
    QT_LAUNCH_MEMSET,     // cudaMemsetAsync
    QT_LAUNCH_COPY_H2D,   // cudaMemcpyAsync host to device
    QT_LAUNCH_COPY_D2H,   // cudaMemcpyAsync device to host
    QT_LAUNCH_COPY_D2D,   // cudaMemcpyAsync device to device
    QT_LAUNCH_SYNC,       // cudaStreamSynchronize: the host waits for the stream to drain
    QT_LAUNCH_KINDS
} qt_launch_kind;

typedef enum {
    QT_MATH_NONE = 0, // no arithmetic (memset, copy, synchronization)
    QT_MATH_FP32,     // fp32 on the CUDA cores (every kernel of ours; a fp32 GEMM: no TF32)
    QT_MATH_FP64,     // fp64 (sumsq's double accumulation)
    QT_MATH_TENSOR16, // fp16/bf16 tensor cores with fp32 accumulation (cuBLASLt)
    QT_MATH_INT8,     // int8 tensor cores, int32 accumulation (mma.sync, cuBLASLt int8)
    QT_MATH_UNITS
} qt_math_unit;

// One launch (or `count` identical ones: a GEMM split into several cuBLASLt calls).
typedef struct {
    const char *name;    // the kernel ("layernorm_fwd_rowwarp"), "cublasLt", "memset", ...
    qt_launch_kind kind; //
    qt_math_unit unit;   // where `flops` run
    double bytes;        // per launch, see the header
    double flops;        // per launch
    int count;           // identical launches (>= 1)
} qt_launch;

// The launches of one launcher call, in issue order. A launcher makes at most a handful; the
// array overflowing is a bug of its cost function (qt_cost_add counts the excess in `dropped`,
// which the backend reports as an error).
#define QT_COST_MAX 12
typedef struct {
    int n;
    int dropped;
    qt_launch l[QT_COST_MAX];
} qt_cost;

static inline void qt_cost_add(qt_cost *c, const char *name, qt_launch_kind kind, qt_math_unit unit,
                               double bytes, double flops, int count) {
    if (count < 1) return;
    if (c->n >= QT_COST_MAX) {
        c->dropped++;
        return;
    }
    qt_launch *l = &c->l[c->n++];
    l->name = name;
    l->kind = kind;
    l->unit = unit;
    l->bytes = bytes;
    l->flops = flops;
    l->count = count;
}

// A kernel of ours: fp32 math on the CUDA cores.
static inline void qt_cost_kernel(qt_cost *c, const char *name, double bytes, double flops) {
    qt_cost_add(c, name, QT_LAUNCH_KERNEL, QT_MATH_FP32, bytes, flops, 1);
}

#ifdef __cplusplus
}
#endif
#endif

// bench/harness.h: the harness every op family's benchmark runs on (bench/bench_<family>.c,
// listed in bench/registry.c, run by `qtrain bench` and `bench_ops`).
//
// A family describes its cases once for both devices: for each shape its run() allocates the
// inputs through the harness (qt_bench_buf: host or device memory, as the run's device), states
// the bytes one call moves and the operations it does (a comment beside the count says what is
// counted), and times each case through the device's calls the harness hands it (one function
// per device, making one call of the family's op `op`). The harness warms the op up,
// repeats it, and reports the minimum, median and maximum time, the rates from the median, and
// the share of the roofline reached on the machine measured in the same run:
//   time_roofline = max(flops / peak, bytes / bw),  roofline_pct = 100 time_roofline / median
// where peak is the GEMM rate (CPU: OpenBLAS sgemm on a large square problem with the threads in
// use; CUDA: cuBLASLt fp16 GEMM with fp32 accumulation) and bw the copy bandwidth (bytes read +
// written by a copy of a buffer several times the last-level cache; CUDA: a device-to-device
// copy), both the best of their repetitions. A working set that fits in cache, or an INT8 GEMM
// measured against the float peak, can exceed 100%.
//
// Timing: clock_gettime(CLOCK_MONOTONIC) around each call on the CPU; on CUDA, a pair of events
// recorded on the harness's stream around each call (bench/harness_cuda.c, in the CUDA build
// only). Never a fake number: without a device the CUDA run is refused before anything runs.
//
// Ownership: every buffer a family gets from qt_bench_host_* / qt_bench_buf* belongs to the
// harness and is freed after each shape (the family frees nothing). Allocation failures are
// sticky: allocate everything, then QT_TRY(qt_bench_ok(b)).
#ifndef QTRAIN_BENCH_HARNESS_H
#define QTRAIN_BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

typedef enum { QT_BENCH_CPU = 0, QT_BENCH_CUDA = 1 } qt_bench_device;

// The dimensions the cases take their shapes from (letters as STYLE.md: B, T, C, H, F d_ff,
// V vocabulary, L layers). The presets mirror configs/*.conf; a family uses the ones it names.
typedef struct qt_bench_model qt_bench_model;
struct qt_bench_model {
    const char *name;
    int B, T, C, H, F, V, L;
    const qt_bench_model *cuda; // the shape a CUDA run takes instead (a GPU affords more), or NULL
};

extern const qt_bench_model qt_bench_model_default;    // configs/default.conf: N = 1024 tokens
extern const qt_bench_model qt_bench_model_opt125m;    // configs/opt-125m.conf: N = 8192
extern const qt_bench_model qt_bench_model_opt125m_1;  // opt-125m, one 512-token sequence (on
                                                       // CUDA the whole micro-batch, opt125m)
extern const qt_bench_model qt_bench_model_llama_tiny; // configs/llama-tiny.conf
extern const qt_bench_model qt_bench_model_llama130m;  // configs/llama-130m.conf, N = 4096
extern const qt_bench_model qt_bench_model_quick;      // --quick: tiny shapes (the tests)

typedef struct qt_bench qt_bench;

// One call of the op under test, on the arguments the family prepared.
typedef qt_status (*qt_bench_fn)(void *arg);

// A family's calls on one device: one call of the family's op `op` (an enum of its own) on its
// arguments `arg`. A family writes one for the CPU and one for CUDA, and its cases once.
typedef qt_status (*qt_bench_call)(void *arg, int op);

// One op family's benchmark (bench/bench_<name>.c defines qt_bench_family_<name>).
typedef struct {
    const char *name;                // the family's name (kernels/<name>.h)
    const qt_bench_model *models[4]; // the shapes it runs on, NULL-terminated (--quick:
                                     // qt_bench_model_quick alone; CUDA: each one's cuda)
    // The cases of one shape (allocations, counts, runs), on either device: every op is
    // called through `call`, the device's below.
    qt_status (*run)(qt_bench *b, const qt_bench_model *m, qt_bench_call call);
    qt_bench_call cpu;     // the family's calls on the CPU
    qt_bench_call cuda;    // on CUDA; NULL: none
    const char *cuda_none; // why cuda is NULL (printed as the family's CUDA line)
} qt_bench_family;

// In a family file: its CUDA calls where this build has CUDA, else NULL (the device is then
// refused before any family runs, so the NULL is never reported as "no kernel").
#ifdef QT_HAVE_CUDA
#define QT_BENCH_CUDA(fn) fn
#else
#define QT_BENCH_CUDA(fn) NULL
#endif

typedef struct {
    qt_bench_device device;
    int json;  // 1: one JSON object per line instead of the table
    int reps;  // timed repetitions per case; 0: adaptive (at least 3, until 0.3 s, at most 200)
    int quick; // 1: qt_bench_model_quick and a small machine measurement (the tests)
} qt_bench_options;

// The result of one case.
typedef struct {
    double ms_min, ms_median, ms_max;
    double iqr_ms; // interquartile range (nearest rank; the whole range below 4 repetitions)
    int reps;
} qt_bench_result;

// ---- the run (registry.c drives these; families never call them)

// Opens the device (QT_ERR_UNSUPPORTED: a build without CUDA or no device, naming which),
// measures the machine's peak and copy bandwidth and prints the header (or the JSON machine
// line) to `out`.
qt_status qt_bench_open(qt_bench **b, const qt_bench_options *o, FILE *out);
void qt_bench_close(qt_bench *b);
// Runs one family on every shape it names (CPU or CUDA per the options); a family without
// calls for the device gets one "skipped" line saying why.
qt_status qt_bench_run_family(qt_bench *b, const qt_bench_family *f);

// ---- for the families

qt_bench_device qt_bench_device_of(const qt_bench *b);
// Storage type of the `void *` tensors of the CUDA launchers (fp16: the CUDA backend's default
// training precision); fp32 on the CPU. E in the byte counts = qt_dtype_size of it.
qt_dtype qt_bench_dtype(const qt_bench *b);
// The CUDA stream to launch on (NULL on the CPU) and a qt_cuda_gemm handle bound to it.
qt_cuda_stream qt_bench_stream(const qt_bench *b);
void *qt_bench_gemm_handle(const qt_bench *b);

// The shape string of the following cases ("N=8192 C=768"), printf-style; clears the reference.
void qt_bench_shape(qt_bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// A reference measured earlier in this run: the following cases also print time(ref) / time
// (> 1: faster than the reference). NULL clears it.
void qt_bench_ref(qt_bench *b, const char *name, double ms);

// Times `fn(arg)`: warm-up, then the repetitions; prints the case's line; fills *res (may be
// NULL). Both counts > 0, for one call, stated by the family in a comment beside them:
//   bytes: the compulsory traffic: every input read once, every output written once, an
//          accumulated (+=) output both (re-reads and cache misses are the kernel's cost);
//   flops: the arithmetic of the formula as the kernel evaluates it, an exp, tanh, sqrt or
//          divide counted as one (integer multiply-adds of the INT8 GEMMs count too).
qt_status qt_bench_run(qt_bench *b, const char *op, double bytes, double flops, qt_bench_fn fn,
                       void *arg, qt_bench_result *res);

// One case of a shape: its name, the op it times and the counts of one call (qt_bench_run's).
typedef struct {
    const char *name;
    int op;
    double bytes, flops;
} qt_bench_case;

// Times call(arg, c->op) as qt_bench_run does; fills *res (may be NULL).
qt_status qt_bench_run_case(qt_bench *b, qt_bench_call call, void *arg, const qt_bench_case *c,
                            qt_bench_result *res);
// Times the n cases in order.
qt_status qt_bench_run_cases(qt_bench *b, qt_bench_call call, void *arg, const qt_bench_case *cases,
                             int n);

// The softmax variants the attention benchmarks time: vanilla, clipped (gamma -0.03, zeta 1)
// and NCS (eta 1.03, beta 1), v = 0 .. QT_BENCH_SOFTMAX_VARIANTS - 1: sets *prm (scale left
// 0) and returns the suffix of the variant's case names ("", "_clipped", "_ncs").
#define QT_BENCH_SOFTMAX_VARIANTS 3
const char *qt_bench_softmax_variant(int v, qt_softmax_params *prm);

// Runs those variants: for each, *prm (inside arg) is set to the variant with `scale`
// and the forward and backward cases (fwd_bwd[0], [1]) run, named with the variant's suffix
// ("fwd_clipped", "bwd_ncs"), the clipped ones doing clip_flops[i] more flops and printed with
// their ratio to vanilla's same case.
qt_status qt_bench_softmax_variants(qt_bench *b, qt_bench_call call, void *arg,
                                    qt_softmax_params *prm, float scale,
                                    const qt_bench_case fwd_bwd[2], const double clip_flops[2]);

// A case this run cannot time (e.g. an INT8 path this CPU lacks): one "skipped" line saying why.
void qt_bench_skip(qt_bench *b, const char *op, const char *why);

// Host buffers (owned by the harness until the shape is done). f32: uniform in [-1, 1);
// i32: uniform in [lo, hi]; s8: uniform int8; zeros: `bytes` zero bytes.
float *qt_bench_host_f32(qt_bench *b, size_t n);
int *qt_bench_host_i32(qt_bench *b, size_t n, int lo, int hi);
int8_t *qt_bench_host_s8(qt_bench *b, size_t n);
void *qt_bench_host_zeros(qt_bench *b, size_t bytes);

// Buffers where this run's ops read them: host memory on the CPU, device memory on CUDA (filled
// on the host and copied), owned by the harness like the host ones above. dt below is the run's
// storage type (qt_bench_dtype); rand: floats uniform in [-1, 1).
typedef enum {
    QT_BENCH_RAND,      // n elements of dt, rand
    QT_BENCH_ZEROS,     // n elements of dt, zero
    QT_BENCH_F32,       // n fp32 elements on every device, rand
    QT_BENCH_F32_ZEROS, // n fp32 elements, zero
    QT_BENCH_S8,        // n int8, uniform
    QT_BENCH_BYTES,     // n zero bytes
} qt_bench_fill;
void *qt_bench_buf(qt_bench *b, qt_bench_fill fill, size_t n);
// n ints uniform in [lo, hi].
int *qt_bench_buf_i32(qt_bench *b, size_t n, int lo, int hi);
// The lengths of `rows` causal attention rows over sequences of T: row r attends r % T + 1 keys.
int *qt_bench_buf_causal_lens(qt_bench *b, size_t rows, int T);
// `bytes` the family filled in `host` (a harness host buffer): host itself on the CPU, a device
// copy on CUDA.
void *qt_bench_buf_from_host(qt_bench *b, void *host, size_t bytes);

// QT_OK, or the first allocation failure since the shape began (or the last release).
qt_status qt_bench_ok(const qt_bench *b);
// Frees every buffer borrowed so far (the harness does it after each shape; a family whose
// shape holds several independent cases may free between them).
void qt_bench_release(qt_bench *b);

#endif

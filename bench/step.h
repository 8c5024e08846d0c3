// bench/step.h: `qtrain bench step`: one training step on the CUDA backend, its launch records
// (include/qtrain/cuda_record.h) turned into a predicted step time for a GPU's datasheet, and
// on a real GPU also measured.
//
//   step_model.c  the cost model: GPU constants, the time of one launch, tallies by phase and
//                 kind, the most expensive kernels (plain C: no CUDA needed)
//   step_run.c    one training step on a CUDA backend with its records split into the
//                 micro-steps' and the optimizer step's (needs the CUDA backend)
//   step.c        the command: arguments, the run (record only, emulated or measured), the
//                 report; step_emu.c: the same command as bench_step_emu, on the emulator
//
// The model, per launch (a record of count identical launches):
//   t = count (max(bytes / (hbm eff_bw), flops / (peak[unit] eff[unit])) + launch_us)
// with peak[unit] the datasheet's dense rate of the pipe the launch's FLOPs run on (fp16/bf16
// tensor cores, fp32 or fp64 CUDA cores, int8 tensor cores); copies to or from the host move
// over PCIe instead; a host synchronization costs sync_us (the stream drains, the host wakes
// and issues the next launch into an idle GPU). A step is the sum over its launches: no
// overlap between launches, none with the host.
#ifndef QTRAIN_BENCH_STEP_H
#define QTRAIN_BENCH_STEP_H

#include <stddef.h>
#include <stdio.h>

#include "base/cost.h"
#include "base/status.h"
#include "qtrain/backend.h"
#include "qtrain/config.h"
#include "qtrain/cuda_record.h"

// ---- the cost model (step_model.c)

// A GPU's datasheet: dense peaks, memory and host link.
typedef struct {
    const char *name;                  // --gpu value
    const char *desc;                  // its product name
    double peak_tflops[QT_MATH_UNITS]; // per unit, dense, TFLOP/s (int8: TOPS); [NONE] unused
    double hbm_gbs;                    // DRAM bandwidth, GB/s
    double pcie_gbs;                   // host link, GB/s each way
    const char *source;                // where the numbers come from
} qt_step_gpu;

// The model's free constants.
typedef struct {
    double eff[QT_MATH_UNITS]; // fraction of each peak a launch reaches (1: the datasheet's)
    double eff_bw;             // fraction of the DRAM bandwidth reached
    double launch_us;          // per launch (kernel, GEMM, memset, copy)
    double sync_us;            // per host synchronization
} qt_step_model;

extern const qt_step_gpu qt_step_gpus[];
extern const int qt_step_n_gpus;
// The GPU named `name` (qt_step_gpus[i].name), or NULL.
const qt_step_gpu *qt_step_gpu_find(const char *name);
// Efficiencies 1, launch 3 us, sync 10 us (the defaults `bench step` states).
void qt_step_model_default(qt_step_model *m);
// Seconds of record l, count included (the formula above).
double qt_step_launch_seconds(const qt_step_gpu *g, const qt_step_model *m, const qt_launch *l);
// Whether l's time is its bytes', its flops' or its launch cost's (memory, compute, launch),
// or "sync".
const char *qt_step_launch_bound(const qt_step_gpu *g, const qt_step_model *m, const qt_launch *l);

// Totals of a range of records. Launches count every GPU operation (kernels, GEMMs, memsets,
// copies; count included); syncs the host synchronizations.
typedef struct {
    double launches, kernels, gemms, memsets, copies, syncs;
    double bytes, flops;                          // summed over launches (count included)
    double gemm_flops;                            // of the GEMMs and int8 tensor-core kernels
    double seconds;                               // predicted
    double s_compute, s_memory, s_launch, s_sync; // seconds by what bounds each launch
} qt_step_tally;

void qt_step_tally_range(const qt_step_gpu *g, const qt_step_model *m, const qt_cuda_record *r,
                         size_t n, qt_step_tally *t);

// One line of the most expensive kernels: the records of one (op, kernel, shape, counts) over
// a step.
typedef struct {
    const qt_cuda_record *r; // the first such record
    double calls;            // launches per step
    double seconds;          // predicted, all calls
} qt_step_hot;

// Groups r[0, n) by (op, kernel, shape, bytes, flops) and sorts the groups by predicted time,
// most expensive first; *hot (malloc'd, the caller frees) gets *n_hot groups.
qt_status qt_step_hot_list(const qt_step_gpu *g, const qt_step_model *m, const qt_cuda_record *r,
                           size_t n, qt_step_hot **hot, size_t *n_hot);

// ---- one training step on a CUDA backend (step_run.c)

// A step's records: r[0, n), of which [micro_begin, micro_end) are the grad_accum micro-steps'
// (forward and backward) and the rest the optimizer step's (zeroing the gradients before the
// micro-steps, the gradient norm and AdamW after them). The records belong to the backend.
typedef struct {
    const qt_cuda_record *r;
    size_t n, micro_begin, micro_end;
    int micro_steps;
    double tokens;          // B T grad_accum
    double params;          // the model's parameters, N
    double flops_per_token; // llm.c's 6 N + 6 L C T (train_gpt2.cu, gpt2_estimate_mfu)
    double measured_ms;     // per step, CUDA events around the timed steps; 0 when not timed
    double wall_ms;         // per step, the host's clock around the timed steps
    int timed_steps;
} qt_step_trace;

// Builds cfg's model and optimizer on be (a CUDA backend), trains warmup steps on synthetic
// tokens (uniform over the vocabulary, a fixed seed), then one step recorded into *t, then
// `timed` steps timed with CUDA events (timed > 0 needs an executing backend). The model is
// freed before returning; the records stay in be until cleared.
qt_status qt_step_run(qt_backend *be, const qt_config *cfg, int warmup, int timed,
                      qt_step_trace *t);

// ---- the command (step.c)

// `qtrain bench step ...` (argv[0] == "step"); returns the exit code.
int qt_cmd_bench_step(int argc, char **argv);

#endif

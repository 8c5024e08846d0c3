// qtrain/cuda_record.h: the CUDA backend's launch records, its record-only ("dry") mode and
// its step timer: what `qtrain bench step` predicts a step's time from and measures it with.
//
// Every op of the CUDA backend (host/backends/backend_cuda.c) asks its launchers' cost
// functions (base/cost.h: qt_cuda_<family>_<op>_cost, beside the kernels in
// kernels/cuda/<family>.cu) which launches it makes for its arguments, and, while recording is
// on, appends one record per launch: each kernel, cuBLASLt matmul, memset, copy and host
// synchronization (cudaStreamSynchronize, which every blocking copy to or from the host ends
// with), in issue order, with the op, its shape, the bytes and the FLOPs. Records come from the
// arguments only, never from a device, so the same step gives the same records on a GPU, on
// the emulator (tests/cuemu) and in the dry mode below, which runs nothing at all.
// Built where the CUDA backend is (the CUDA toolkit); declared here for the programs and tests
// that link it.
#ifndef QTRAIN_CUDA_RECORD_H
#define QTRAIN_CUDA_RECORD_H

#include <stddef.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/status.h"
#include "qtrain/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// One launch, as the backend issued it.
typedef struct {
    const char *op; // the backend op that issued it ("layernorm_fwd", "gemm", "zero",
                    // "to_host", ...: the qt_backend_ops member's name)
    char shape[56]; // that op's shape ("N=8192 C=768"), as the op states it
    qt_launch l;    // the launch: kernel name, kind, unit, bytes, FLOPs, count (base/cost.h)
} qt_cuda_record;

// A CUDA backend in record-only mode: the ops record their launches (recording is on from the
// start) and run nothing; no CUDA call is made, so it opens without a device or driver.
// alloc hands out distinct 256-byte aligned addresses that are never dereferenced; zero,
// copies and synchronizations are recorded only; to_host, to_host_f32, sumsq and the DQT stats
// return zeros (a loss of 0, a gradient norm of 0: a step is never skipped, so every step
// takes the path of an applied one). Faithful to the executing backend launch for launch
// wherever the host's control flow does not read device values other than those (checked by
// tests/cuda/test_cuda_cost_model.c against an executed step).
qt_status qt_backend_cuda_init_dry(qt_backend *be, qt_dtype dt);
// 1 when be is the record-only backend.
int qt_backend_cuda_is_dry(const qt_backend *be);
// 1 when this build's CUDA backend runs on the emulator (tests/cuemu), 0 on the CUDA runtime.
int qt_backend_cuda_emulated(void);

// Recording on (on = 1) or off; off at qt_backend_cuda_init. Records stay until cleared.
// QT_ERR_ARG when be is not a CUDA backend.
qt_status qt_backend_cuda_record(qt_backend *be, int on);
// The records so far, in issue order (*n of them); valid until the next op or clear.
const qt_cuda_record *qt_backend_cuda_records(const qt_backend *be, size_t *n);
void qt_backend_cuda_records_clear(qt_backend *be);

// Times the stream with a pair of CUDA events: start records the first, stop the second, waits
// for it and returns the elapsed milliseconds. QT_ERR_UNSUPPORTED in the dry mode.
qt_status qt_backend_cuda_timer_start(qt_backend *be);
qt_status qt_backend_cuda_timer_stop(qt_backend *be, double *ms);
// The device's name and compute capability ("NVIDIA H200 (sm_90)"), or "record only".
qt_status qt_backend_cuda_device_name(const qt_backend *be, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif

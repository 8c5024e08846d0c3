// bench/harness_cuda.h: the CUDA side of the benchmark harness (bench/harness_cuda.c, compiled
// only into the CUDA build, where QT_HAVE_CUDA is defined). Used by bench/harness.c alone: the
// families reach the device through harness.h (qt_bench_stream, qt_bench_buf*).
#ifndef QTRAIN_BENCH_HARNESS_CUDA_H
#define QTRAIN_BENCH_HARNESS_CUDA_H

#include <stddef.h>

#include "bench/harness.h"

typedef struct qt_bench_cuda qt_bench_cuda;

// Device 0, a stream, two events and a qt_cuda_gemm handle. QT_ERR_UNSUPPORTED "no CUDA
// device" when cudaGetDeviceCount finds none. name receives "<device name> (sm_XY)".
qt_status qt_bench_cuda_open(qt_bench_cuda **c, char *name, size_t name_len);
void qt_bench_cuda_close(qt_bench_cuda *c);
qt_cuda_stream qt_bench_cuda_stream(const qt_bench_cuda *c);
void *qt_bench_cuda_gemm_handle(const qt_bench_cuda *c);

// *ms = the time of one fn(arg) on the stream, by events recorded before and after it.
qt_status qt_bench_cuda_time(qt_bench_cuda *c, qt_bench_fn fn, void *arg, double *ms);

// The machine: *flops_per_s = the best of `reps` (after one warm-up) fp16 GEMMs (fp32
// accumulation, qt_cuda_gemm) of n x n x n; *bytes_per_s = (read + written bytes) / time of the
// best of `reps` device-to-device copies of `bytes`.
qt_status qt_bench_cuda_peak_gemm(qt_bench_cuda *c, int n, int reps, double *flops_per_s);
qt_status qt_bench_cuda_peak_copy(qt_bench_cuda *c, size_t bytes, int reps, double *bytes_per_s);

// Device memory. rand: n elements of dt from the host floats `src` (converted on the device
// with qt_cuda_cast).
qt_status qt_bench_cuda_alloc(void **p, size_t bytes);
void qt_bench_cuda_free(void *p);
qt_status qt_bench_cuda_upload(qt_bench_cuda *c, void *dst, const void *src, size_t bytes);
qt_status qt_bench_cuda_zero(qt_bench_cuda *c, void *dst, size_t bytes);
qt_status qt_bench_cuda_from_f32(qt_bench_cuda *c, void *dst, qt_dtype dt, const float *src,
                                 size_t n);

#endif

// cuda_testutil.h: helpers for the CUDA kernel tests (tests/cuda/test_cuda_*.c).
//
// Each kernel test is plain C built twice: against the emulated kernels (label `emu`, always runs,
// on the CPU through tests/cuemu) and against the nvcc-built kernels (label `gpu`, exits with
// QT_CT_SKIP = 77, which CTest reports as skipped, when no device exists). Tests compare a
// launcher's output with the CPU reference op of its family (kernels/<family>.h) on random inputs
// of odd sizes, with the output poisoned (NaN) beforehand and guard bands after each buffer checked
// intact.
#ifndef QTRAIN_CUDA_TESTUTIL_H
#define QTRAIN_CUDA_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"

#define QT_CT_SKIP 77

// Exits with QT_CT_SKIP (printing why) when the build targets a real GPU and none is usable.
void qt_ct_require_device(void);

// Host-side conversions with round-to-nearest-even, matching __float2half_rn/__float2bfloat16_rn.
uint16_t qt_ct_f32_to_f16(float x);
float qt_ct_f16_to_f32(uint16_t h);
uint16_t qt_ct_f32_to_bf16(float x);
float qt_ct_bf16_to_f32(uint16_t b);
// x rounded to dt and back (what a dt tensor can hold).
float qt_ct_round(qt_dtype dt, float x);

// Device buffer of n elements of dt followed by a guard band; the data is poisoned (0xFF bytes:
// NaN in every float format) and the guard filled with a known pattern.
void *qt_ct_alloc(qt_dtype dt, size_t n);
// Device buffer holding host (n fp32 values) converted to dt, with a guard band.
void *qt_ct_upload(qt_dtype dt, const float *host, size_t n);
// n elements of dt from the device, converted to fp32.
void qt_ct_download(qt_dtype dt, float *host, const void *dev, size_t n);
// 1 if the guard band after a buffer from qt_ct_alloc/upload is intact.
int qt_ct_guard_ok(qt_dtype dt, const void *dev, size_t n);
void qt_ct_free(void *dev);

// n uniform values in [lo, hi) (qt_test_fill_uniform's sequence for `seed`), each rounded to
// what dt holds; malloc'd (at least one element).
float *qt_ct_rand_rounded(qt_dtype dt, size_t n, float lo, float hi, uint64_t seed);
// A malloc'd fp32 copy of n elements of dt from the device (qt_ct_download).
float *qt_ct_download_new(qt_dtype dt, const void *dev, size_t n);
// Downloads n elements of dt and returns qt_test_max_err against want (<= 1 passes, NaN +inf).
double qt_ct_dev_err(qt_dtype dt, const void *dev, const float *want, size_t n, double atol,
                     double rtol);

// Default tolerances for comparing a dt kernel with the fp32 reference (err <= atol + rtol|ref|):
// fp32 1e-5 relative; fp16 and bf16 a few units of their last place.
void qt_ct_tolerance(qt_dtype dt, double *atol, double *rtol);

#endif

// kernels/layernorm.h: LayerNorm, forward and backward
//
// Family files: kernels/cpu/layernorm.c (the C reference), kernels/cuda/layernorm.cu, tests/test_layernorm.c,
// tests/cuda/test_cuda_layernorm.c, bench/bench_layernorm.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_LAYERNORM_H
#define QTRAIN_KERNELS_LAYERNORM_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// eps: QT_LAYERNORM_EPS (base/params.h).
// out (N, C) = (x - mean) * rstd * w + b, biased variance, eps QT_LAYERNORM_EPS.
// mean, rstd (N): saved for the backward.
qt_status qt_cpu_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w,
                               const float *b, int N, int C);
// dx (N, C) +=, dw (C) +=, db (C) += from dout (N, C).
qt_status qt_cpu_layernorm_bwd(float *dx, float *dw, float *db, const float *dout, const float *x,
                               const float *mean, const float *rstd, const float *w, int N, int C);
qt_status qt_cpu_layernorm_fwd_f64(double *out, double *mean, double *rstd, const double *x,
                                   const double *w, const double *b, int N, int C);
qt_status qt_cpu_layernorm_bwd_f64(double *dx, double *dw, double *db, const double *dout,
                                   const double *x, const double *mean, const double *rstd,
                                   const double *w, int N, int C);

// The residual connection fused with the LayerNorm after it (a block's `x + drop(branch)`
// followed by the next norm), float only like the dropout family:
//   resid (N, C) = x + dropout(branch), the mask keep_i = [qt_philox_uniform(seed, stream, i)
//   >= prob] over the flat index i of (N, C), scaled by 1 / (1 - prob) (qt_cpu_dropout_fwd's);
//   out, mean, rstd = LayerNorm(resid) (qt_cpu_layernorm_fwd's).
// prob == 0: resid = x + branch. resid may alias x or branch; out aliases nothing.
qt_status qt_cpu_layernorm_residual_fwd(float *resid, float *out, float *mean, float *rstd,
                                        const float *x, const float *branch, const float *w,
                                        const float *b, int N, int C, float prob, uint64_t seed,
                                        uint64_t stream);
// Its backward: dx (N, C) +=, dw (C) +=, db (C) += as qt_cpu_layernorm_bwd; then dbranch (N, C)
// = dropout's backward of the updated dx (keep_i dx_i / (1 - prob), the same mask), written
// (not added): the gradient of the branch, whose only consumer is this residual. dbranch
// aliases nothing. A NULL dw or db is skipped; dx and dbranch are required.
qt_status qt_cpu_layernorm_residual_bwd(float *dx, float *dbranch, float *dw, float *db,
                                        const float *dout, const float *x, const float *mean,
                                        const float *rstd, const float *w, int N, int C,
                                        float prob, uint64_t seed, uint64_t stream);

// CUDA (kernels/cuda/layernorm.cu): the same ops; the residual ones draw the CPU's Philox mask
// bit for bit and round as the composed ops do (drop(branch) to the dtype, then the sum).
qt_status qt_cuda_layernorm_fwd(qt_cuda_stream s, qt_dtype dt, void *out, float *mean,
                                float *rstd, const void *x, const void *w, const void *b, int N,
                                int C);
// scratch (both backwards): NULL, or the column sums' scratch of kernels/elementwise.h
// (qt_cuda_colsum_scratch_bytes, ready from qt_cuda_colsum_scratch_init): dw and db then split
// the rows as well, to fill the GPU.
qt_status qt_cuda_layernorm_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, void *dw, void *db,
                                const void *dout, const void *x, const float *mean,
                                const float *rstd, const void *w, int N, int C, void *scratch);
qt_status qt_cuda_layernorm_residual_fwd(qt_cuda_stream s, qt_dtype dt, void *resid, void *out,
                                         float *mean, float *rstd, const void *x,
                                         const void *branch, const void *w, const void *b, int N,
                                         int C, float prob, uint64_t seed, uint64_t stream);
qt_status qt_cuda_layernorm_residual_bwd(qt_cuda_stream s, qt_dtype dt, void *dx, void *dbranch,
                                         void *dw, void *db, const void *dout, const void *x,
                                         const float *mean, const float *rstd, const void *w,
                                         int N, int C, float prob, uint64_t seed,
                                         uint64_t stream, void *scratch);

// Cost model (base/cost.h; counted in kernels/cuda/layernorm.cu): the launches each launcher
// above makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_layernorm_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const float *mean,
                                const float *rstd, const void *x, const void *w, const void *b,
                                int N, int C);
void qt_cuda_layernorm_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx, const void *dw,
                                const void *db, const void *dout, const void *x, const float *mean,
                                const float *rstd, const void *w, int N, int C,
                                const void *scratch);
void qt_cuda_layernorm_residual_fwd_cost(qt_cost *c, qt_dtype dt, const void *resid,
                                         const void *out, const float *mean, const float *rstd,
                                         const void *x, const void *branch, const void *w,
                                         const void *b, int N, int C, float prob, uint64_t seed,
                                         uint64_t stream);
void qt_cuda_layernorm_residual_bwd_cost(qt_cost *c, qt_dtype dt, const void *dx,
                                         const void *dbranch, const void *dw, const void *db,
                                         const void *dout, const void *x, const float *mean,
                                         const float *rstd, const void *w, int N, int C,
                                         float prob, uint64_t seed, uint64_t stream,
                                         const void *scratch);

#ifdef __cplusplus
}
#endif
#endif

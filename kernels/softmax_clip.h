// kernels/softmax_clip.h: the attention softmax variants: vanilla, clipped, length-normalized clipped (NCS)
//
// PAPERS.md sections 1-2; the per-row clip map is base/softmax_clip_math.h.
// Family files: kernels/cpu/softmax_clip.c (the C reference), kernels/cuda/softmax_clip.cu, tests/test_softmax_clip.c,
// tests/cuda/test_cuda_softmax_clip.c, bench/bench_softmax_clip.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_SOFTMAX_CLIP_H
#define QTRAIN_KERNELS_SOFTMAX_CLIP_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// Row r attends columns [0, lens[r]) (1 <= lens[r] <= cols); the other columns are masked.
// p     (rows, cols): plain softmax of scale*scores over the attended columns, 0 elsewhere;
//                     saved for the backward.
// probs (rows, cols): clip(a p + c, 0, 1) on the attended columns, exactly 0 elsewhere.
// scores (rows, cols): raw scores. lens (rows).
qt_status qt_cpu_softmax_clip_fwd(const qt_softmax_params *prm, float *probs, float *p,
                                  const float *scores, const int *lens, int rows, int cols);
// dscores (rows, cols) += d loss / d scores (including `scale`), from dprobs (rows, cols)
// and the p the forward saved. Masked columns get nothing.
qt_status qt_cpu_softmax_clip_bwd(const qt_softmax_params *prm, float *dscores, const float *dprobs,
                                  const float *p, const int *lens, int rows, int cols);
qt_status qt_cpu_softmax_clip_fwd_f64(const qt_softmax_params *prm, double *probs, double *p,
                                      const double *scores, const int *lens, int rows, int cols);
qt_status qt_cpu_softmax_clip_bwd_f64(const qt_softmax_params *prm, double *dscores,
                                      const double *dprobs, const double *p, const int *lens,
                                      int rows, int cols);

// The sink variants (base/params.h, qt_sink_kind; README "Attention variants"): a virtual key
// of logit s0 and value 0 joins every row, p_j = exp(x_j) / (exp(s0) + sum_k exp(x_k)) with
// x = scale * scores; the clip map applies to p as above. Rows are laid out (G, H, head_rows):
// row r belongs to head (r / head_rows) % H (attention: rows (B, H, T), head_rows = T).
//   QT_SINK_NONE: the plain ops above; QT_SINK_ZERO: s0 = 0 (off-by-one softmax);
//   QT_SINK_LEARNED: s0 = logits[head] (logits (H) required).
// p and probs as above (p sums to 1 - p0 over the attended columns, p0 the sink's share).
qt_status qt_cpu_softmax_clip_sink_fwd(const qt_softmax_params *prm, qt_sink_kind sink,
                                       float *probs, float *p, const float *scores, const int *lens,
                                       const float *logits, int rows, int cols, int H,
                                       int head_rows);
// dscores as above; dlogits (H) += d loss / d s0 = -sum over the head's rows of p0 sum_j p_j g_j
// (QT_SINK_LEARNED; NULL skips it), p0 = 1 - sum_j p_j from the saved p.
qt_status qt_cpu_softmax_clip_sink_bwd(const qt_softmax_params *prm, qt_sink_kind sink,
                                       float *dscores, float *dlogits, const float *dprobs,
                                       const float *p, const int *lens, int rows, int cols, int H,
                                       int head_rows);
qt_status qt_cpu_softmax_clip_sink_fwd_f64(const qt_softmax_params *prm, qt_sink_kind sink,
                                           double *probs, double *p, const double *scores,
                                           const int *lens, const double *logits, int rows,
                                           int cols, int H, int head_rows);
qt_status qt_cpu_softmax_clip_sink_bwd_f64(const qt_softmax_params *prm, qt_sink_kind sink,
                                           double *dscores, double *dlogits, const double *dprobs,
                                           const double *p, const int *lens, int rows, int cols,
                                           int H, int head_rows);

// CUDA (kernels/cuda/softmax_clip.cu): scale, mask by lens, the three variants, fp32 math. No
// sink variant yet: the model refuses attn.sink on a backend without softmax_clip_sink_*.
qt_status qt_cuda_softmax_clip_fwd(qt_cuda_stream s, qt_dtype dt, const qt_softmax_params *prm,
                                   void *probs, float *p, const void *scores, const int *lens,
                                   int rows, int cols);
qt_status qt_cuda_softmax_clip_bwd(qt_cuda_stream s, qt_dtype dt, const qt_softmax_params *prm,
                                   void *dscores, const void *dprobs, const float *p,
                                   const int *lens, int rows, int cols);

// Cost model (base/cost.h; counted in kernels/cuda/softmax_clip.cu): the launches each launcher
// above makes for the same arguments (those after the stream), appended to *c. lens lies in
// device memory, which a cost function does not read: when rows is a multiple of cols the
// rows are taken as causal attention rows (row r attends r % cols + 1 keys: the model's
// lens), else as attending every column.
void qt_cuda_softmax_clip_fwd_cost(qt_cost *c, qt_dtype dt, const qt_softmax_params *prm,
                                   const void *probs, const float *p, const void *scores,
                                   const int *lens, int rows, int cols);
void qt_cuda_softmax_clip_bwd_cost(qt_cost *c, qt_dtype dt, const qt_softmax_params *prm,
                                   const void *dscores, const void *dprobs, const float *p,
                                   const int *lens, int rows, int cols);

#ifdef __cplusplus
}
#endif
#endif

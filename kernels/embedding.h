// kernels/embedding.h: token and learned position embeddings
//
// Family files: kernels/cpu/embedding.c (the C reference), kernels/cuda/embedding.cu, tests/test_embedding.c,
// tests/cuda/test_cuda_embedding.c, bench/bench_embedding.c.
// Conventions (all families): arrays dense and row-major, shapes in the comments (elements);
// forwards overwrite their outputs, backwards ADD (+=) into every gradient they write; outputs
// never alias inputs unless the comment says so; each CPU op has an `_f64` double twin with the
// same code (gradient checks). Errors: every CPU op returns QT_OK, or QT_ERR_ARG for a bad
// argument (a size out of range, a required tensor NULL, bad params, an index such as a length,
// token or target out of range) with qt_last_error() naming the op, the value and the fix; the
// checks run before any output is written, so a refused call leaves its outputs untouched.
// CUDA launchers: base/params.h's convention, `void *` tensors of `dt`, `float *` ones always
// fp32, math in fp32; they refuse the same arguments.
#ifndef QTRAIN_KERNELS_EMBEDDING_H
#define QTRAIN_KERNELS_EMBEDDING_H

#include <stddef.h>
#include <stdint.h>

#include "base/cost.h"
#include "base/dtype.h"
#include "base/params.h"
#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (B, T, C) = wte[tokens[b, t]] + wpe[t]; tokens (B, T) in [0, V), wte (V, C), wpe (maxT, C).
// wpe == NULL: no position embedding, out = wte[tokens[b, t]] (LLaMA: positions come from RoPE).
// A negative token is refused; the op does not know V, so ids >= V are the caller's to refuse
// (the data loader checks every shard token against the vocabulary).
qt_status qt_cpu_embedding_fwd(float *out, const int *tokens, const float *wte, const float *wpe,
                               int B, int T, int C);
// dwte (V, C) +=, dwpe (maxT, C) += from dout (B, T, C). dwpe may be NULL.
qt_status qt_cpu_embedding_bwd(float *dwte, float *dwpe, const float *dout, const int *tokens,
                               int B, int T, int C);

// The token buckets of a batch, on the host: its N positions grouped by token (a stable sort:
// tokens ascending, positions ascending within a token). order (N): the positions; start
// (U + 1): bucket u holds order[start[u] .. start[u + 1]); token (U): bucket u's token;
// *n_buckets = U, the distinct tokens (U <= N). scratch: 2 N ints the sort works in (the
// caller's, so a training step allocates nothing). O(N log N); a negative token is refused.
qt_status qt_embedding_buckets(int *order, int *start, int *token, int *n_buckets,
                               const int *tokens, int N, int *scratch);
// The backward from the buckets of `tokens`: dwte (V, C) += for each bucket the sum of its
// dout rows, summed in position order (fp32) and added once; dwpe (maxT, C) += as
// qt_cpu_embedding_bwd (NULL skips it). The same function as qt_cpu_embedding_bwd, each
// dwte row rounded once instead of once per occurrence; O(N C) on every backend, the buckets
// letting the CUDA kernel give each token's row to one block without scanning the batch.
qt_status qt_cpu_embedding_bwd_sorted(float *dwte, float *dwpe, const float *dout,
                                      const int *order, const int *start, const int *token,
                                      int n_buckets, int B, int T, int C);

// CUDA (kernels/cuda/embedding.cu). The sorted backward's buckets lie in device memory.
qt_status qt_cuda_embedding_fwd(qt_cuda_stream s, qt_dtype dt, void *out, const int *tokens,
                                const void *wte, const void *wpe, int B, int T, int C);
qt_status qt_cuda_embedding_bwd(qt_cuda_stream s, qt_dtype dt, void *dwte, void *dwpe,
                                const void *dout, const int *tokens, int B, int T, int C);
qt_status qt_cuda_embedding_bwd_sorted(qt_cuda_stream s, qt_dtype dt, void *dwte, void *dwpe,
                                       const void *dout, const int *order, const int *start,
                                       const int *token, int n_buckets, int B, int T, int C);

// Cost model (base/cost.h; counted in kernels/cuda/embedding.cu): the launches each launcher
// above makes for the same arguments (those after the stream), appended to *c.
void qt_cuda_embedding_fwd_cost(qt_cost *c, qt_dtype dt, const void *out, const int *tokens,
                                const void *wte, const void *wpe, int B, int T, int C);
void qt_cuda_embedding_bwd_cost(qt_cost *c, qt_dtype dt, const void *dwte, const void *dwpe,
                                const void *dout, const int *tokens, int B, int T, int C);
void qt_cuda_embedding_bwd_sorted_cost(qt_cost *c, qt_dtype dt, const void *dwte,
                                       const void *dwpe, const void *dout, const int *order,
                                       const int *start, const int *token, int n_buckets, int B,
                                       int T, int C);

#ifdef __cplusplus
}
#endif
#endif

// attention.c: qt_cpu_attention_{fwd,bwd}[_f64], the attention core without projections:
// per (batch, head) scores = q k^T, the softmax variant (common/softmax_row.h), ctx = probs v;
// and qt_cpu_attention_flash_{fwd,bwd}[_f64], the same function tiled as FLASH_CLIP.md (with
// the sink variants and the gate), which keeps no T x T buffer.
// Contract (kernels/attention.h): the forwards overwrite their outputs (ctx, probs, p; ctx,
// out, lse, R); the backwards add into dqkv (and dgate, dsink) and overwrite their scratch.
//
// Speed: each (b, h) pair is one OpenMP task whose GEMMs read q, k, v in place from the
// (B, T, 3C) tensor (leading dimension 3C, no permute) through BLAS calls made inside the
// parallel region. Rows go in blocks of ATT_ROW_BLOCK: a block's GEMMs stop at the longest
// length in the block, so causal rows skip most of the masked upper triangle.
// Every GEMM made inside the region is cut to at most ATT_GEMM_MAX_MNK = 2^18 multiply-adds:
// OpenBLAS (0.3.21, OpenMP build) runs calls up to that size single-threaded, and sends
// larger ones to its threaded path, which serializes concurrent callers and spins in
// sched_yield. Measured, 64 GEMMs in a 2-thread region: 64x64x64 0.4 ms, 64x65x64 3-12 ms.
// (T = 128, D = 64 with 32-row blocks is exactly 2^18: nothing is cut.)
#include "common/real.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "base/softmax_clip_math.h"
#include "base/status.h"
#include "common/check.h"
#include "kernels/attention.h"

// Rows per block: smaller blocks skip more of a causal triangle but make smaller GEMMs.
#ifndef ATT_ROW_BLOCK
#define ATT_ROW_BLOCK 32
#endif
// OpenBLAS's single-thread limit: SMP_THRESHOLD_MIN (65536) * GEMM_MULTITHREAD_THRESHOLD (4).
#define ATT_GEMM_MAX_MNK 262144.0

#include "attention_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "attention_impl.h"

// llama_ops.c: qt_cpu_rmsnorm_{fwd,bwd}[_f64], qt_cpu_rope_{fwd,bwd}[_f64] and
// qt_cpu_swiglu_{fwd,bwd}[_f64], the layers of the LLaMA model family (PAPERS.md, issue 4
// section 3): RMSNorm (Zhang & Sennrich 2019), rotary position embeddings in Hugging Face
// LLaMA's "rotate half" layout (Su et al. 2021), and the SwiGLU gated unit (Shazeer 2020).
// Contract (include/qtrain/ops.h): forwards overwrite their outputs (RoPE rotates in place);
// backwards add into dx and dw (RoPE's backward rotates its gradient back in place). Rows run
// in parallel (OpenMP); RMSNorm's dw is a per-column-block reduction over the rows in order
// (deterministic). The body is llama_ops_impl.h, instantiated for float and double.
//
// RoPE angles: angle(t, i) = t * theta^(-2i/D), evaluated in double as t * exp(-(2i/D)
// log(theta)) and its cos and sin taken in double (libm), then rounded to REAL. The CUDA twin
// (kernels/cuda/rope.cu) takes the same double angle (through sincospi on the GPU), so the
// float rotations of both agree to within an ulp of the cos/sin and the float products
// (tested at 1e-5 relative against each other).
#include "real_impl.h"

#include <stddef.h>

#include "qtrain/ops.h"
#include "qtrain/status.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384
// Columns per task in RMSNorm's dw reduction.
#define COLSUM_BLOCK 64
// RoPE: frequency pairs whose cos/sin one task computes at a time (a stack table), then
// applies to every (batch, head, q/k) row at that position.
#define ROPE_CHUNK 64

#ifndef QTRAIN_LLAMA_OPS_ANGLE
#define QTRAIN_LLAMA_OPS_ANGLE
// The rotation angle of position t, pair i, head dim D: t theta^(-2i/D), in double.
static inline double rope_angle(int t, int i, int D, double log_theta) {
    return (double)t * exp(-((double)(2 * i) / (double)D) * log_theta);
}
#endif

#include "llama_ops_impl.h"
#define QT_REAL_F64
#include "real_impl.h"
#include "llama_ops_impl.h"

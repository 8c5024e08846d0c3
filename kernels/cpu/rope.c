// rope.c: qt_cpu_rope_{fwd,bwd}[_f64], rotary position embeddings (Su et al. 2021) in Hugging
// Face LLaMA's "rotate half" layout (PAPERS.md section 6).
// Contract (kernels/rope.h): the forward rotates the q and k thirds of qkv in place; the
// backward rotates its gradient back in place (the inverse rotation, not an accumulation).
// Positions run in parallel (OpenMP). The body is rope_impl.h, instantiated for float and
// double.
//
// Angles: angle(t, i) = t * theta^(-2i/D), evaluated in double as t * exp(-(2i/D) log(theta))
// and its cos and sin taken in double (libm), then rounded to REAL. The CUDA twin
// (kernels/cuda/rope.cu) takes the same double angle (through sincospi on the GPU), so the
// float rotations of both agree to within an ulp of the cos/sin and the float products
// (tested at 1e-5 relative against each other).
#include "common/real.h"

#include <stddef.h>

#include "base/status.h"
#include "common/check.h"
#include "kernels/rope.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384
// Frequency pairs whose cos/sin one task computes at a time (a stack table), then applies to
// every (batch, head, q/k) row at that position.
#define ROPE_CHUNK 64

// The rotation angle of position t, pair i, head dim D: t theta^(-2i/D), in double.
static inline double rope_angle(int t, int i, int D, double log_theta) {
    return (double)t * exp(-((double)(2 * i) / (double)D) * log_theta);
}

// The checks both directions make (as kernels/cuda/rope.cu): B, T >= 0, C a positive multiple
// of H, an even head dim (RoPE pairs channel i with i + D/2), a finite theta > 0.
static qt_status rope_check(const char *op, const void *qkv, int B, int T, int C, int H,
                            float theta) {
    if (B < 0 || T < 0)
        return qt_error(QT_ERR_ARG, "%s: B = %d, T = %d; need B, T >= 0", op, B, T);
    QT_TRY(check_heads(op, C, "H", H));
    if ((C / H) % 2 != 0)
        return qt_error(QT_ERR_ARG, "%s: head dim D = C / H = %d is odd; RoPE pairs channels i "
                                    "and i + D/2, so use an even head dim", op, C / H);
    if (!(theta > 0.0f && isfinite(theta)))
        return qt_error(QT_ERR_ARG, "%s: theta = %g must be finite and > 0 (LLaMA uses 10000)",
                        op, (double)theta);
    return check_ptrs(op, B == 0 || T == 0 || qkv, "qkv");
}

#include "rope_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "rope_impl.h"

// swiglu.c: qt_cpu_swiglu_{fwd,bwd}[_f64], the SwiGLU gated unit (Shazeer 2020) of the LLaMA
// feed-forward (PAPERS.md section 6): out = silu(a) * b for rows [a | b].
// Contract (kernels/swiglu.h): the forward overwrites out; the backward adds into dx. Rows run
// in parallel (OpenMP). The body is swiglu_impl.h, instantiated for float and double.
#include "common/real.h"

#include <stddef.h>

#include "base/status.h"
#include "common/check.h"
#include "kernels/swiglu.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

#include "swiglu_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "swiglu_impl.h"

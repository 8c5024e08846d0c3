// layernorm.c: qt_cpu_layernorm_{fwd,bwd}[_f64], LayerNorm over the last dimension (biased
// variance, eps QT_LAYERNORM_EPS, the same eps value in float and double).
// Contract (kernels/layernorm.h): the forward overwrites out, mean, rstd; the backward adds
// into dx, dw, db (each may be NULL). Rows run in parallel, the dw/db reductions per column
// block. The body is layernorm_impl.h, instantiated for float and double.
#include "common/real.h"

#include "base/status.h"
#include "common/check.h"
#include "kernels/layernorm.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384
// Columns per task in the dw/db reduction.
#define COLSUM_BLOCK 64

#include "common/colsum.h"
#include "layernorm_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "common/colsum.h"
#include "layernorm_impl.h"

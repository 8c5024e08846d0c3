// rmsnorm.c: qt_cpu_rmsnorm_{fwd,bwd}[_f64], RMSNorm (Zhang & Sennrich 2019) of the LLaMA
// family (PAPERS.md section 6): out = x rstd w, rstd = 1 / sqrt(mean(x^2) + eps).
// Contract (kernels/rmsnorm.h): the forward overwrites out and rstd; the backward adds into dx
// and dw. Rows run in parallel (OpenMP); dw is a per-column-block reduction over the rows in
// order (deterministic). The body is rmsnorm_impl.h, instantiated for float and double.
#include "common/real.h"

#include <stddef.h>

#include "base/status.h"
#include "common/check.h"
#include "kernels/rmsnorm.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384
// Columns per task in the dw reduction.
#define COLSUM_BLOCK 64

#include "common/colsum.h"
#include "rmsnorm_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "common/colsum.h"
#include "rmsnorm_impl.h"

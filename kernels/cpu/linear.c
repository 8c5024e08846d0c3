// linear.c: qt_cpu_linear_{fwd,bwd}[_f64], out = x w^T + b and its gradients, through BLAS
// (OpenBLAS threads the GEMMs over the OpenMP pool).
// Contract (include/qtrain/ops.h): the forward overwrites out; the backward adds into dx, dw,
// db (dx and db may be NULL). The body is linear_impl.h, instantiated for float and double.
#include "real_impl.h"

#include <string.h>

#include "qtrain/ops.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

#include "colsum_impl.h"
#include "linear_impl.h"
#define QT_REAL_F64
#include "real_impl.h"
#include "colsum_impl.h"
#include "linear_impl.h"

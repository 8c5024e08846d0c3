// add.c: qt_cpu_add, out = a + b element-wise (residual sums; float only). out may alias a or
// b (same-index read then write). Element-parallel, vectorized.
#include "real_impl.h"

#include <stddef.h>

#include "qtrain/ops.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 32768

void qt_cpu_add(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static) if (parallel : n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

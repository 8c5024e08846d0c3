// kernels/cpu/select.h: order statistics of a float array, shared by the quantizer's
// percentile range (kernels/cpu/quant.c, which defines it) and the PTQ calibration
// (host/ptq.c).
#ifndef QTRAIN_KERNELS_CPU_SELECT_H
#define QTRAIN_KERNELS_CPU_SELECT_H

#include <stddef.h>

// The k-th smallest (0-based, k < n) of v[0..n), reordering v: quickselect with a three-way
// partition [lo, lt) < pivot, [lt, gt) == pivot, [gt, hi) > pivot (NaN counts as equal).
float qt_cpu_select_kth(float *v, size_t n, size_t k);

#endif

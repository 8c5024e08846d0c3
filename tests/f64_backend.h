// f64_backend.h: a test-only backend that runs the model in double precision.
//
// The model addresses activations as float* and does element arithmetic on them. This backend
// hands out float-sized "shadow" allocations (which also hold the model's int buffers) and
// keeps a parallel double array for each; an op translates every float* argument to the
// double at the same element index and runs the _f64 reference op. So host/model/model.c itself,
// unchanged, computes in double, and whole-model gradients can be checked against central
// finite differences to ~1e-7 instead of drowning in float rounding.
#ifndef QTRAIN_TEST_F64_BACKEND_H
#define QTRAIN_TEST_F64_BACKEND_H

#include "qtrain/backend.h"

qt_status qt_test_f64_backend_init(qt_backend *be);
void qt_test_f64_backend_free(qt_backend *be);
// The double behind a float* the backend handed out (or that points into one).
double *qt_test_f64_ptr(const qt_backend *be, const void *p);

#endif

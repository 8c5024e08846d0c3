// dist_internal.h: helpers the communicator implementations share (host/dist/reduce.c).
#ifndef QTRAIN_HOST_DIST_INTERNAL_H
#define QTRAIN_HOST_DIST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "qtrain/dist.h"

// inout[i] = inout[i] op in[i] for n elements of dt (AVG sums: the caller scales once at the
// end). fp16 and bf16 are widened to fp32, combined and rounded to nearest even.
void qt_dist_reduce_into(void *inout, const void *in, size_t n, qt_dtype dt, qt_dist_op op);
// buf[i] *= s (n elements of dt), the AVG of a SUM over N ranks with s = 1 / N.
void qt_dist_scale(void *buf, size_t n, qt_dtype dt, float s);

float qt_dist_f16_to_f32(uint16_t h);
uint16_t qt_dist_f32_to_f16(float f);
float qt_dist_bf16_to_f32(uint16_t h);
uint16_t qt_dist_f32_to_bf16(float f);

// "all-reduce", "reduce-scatter", ...: names in messages.
const char *qt_dist_op_name(qt_dist_op op);

#endif

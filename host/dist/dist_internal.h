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

// "sum", "average", "max": names in messages.
const char *qt_dist_op_name(qt_dist_op op);

// ---- rendezvous without MPI (host/dist/rendezvous.c) ----
// Rank 0's `len` bytes of blob reach every rank of `size` (rank 0's blob is the input, the
// others' the output), tagged with `tag` (the job) and `size`: a file or a connection from
// another job is ignored. Each waits at most timeout_s, then fails naming what was missing.
// File: rank 0 writes the tag and the blob to path atomically (a temporary file renamed over
// it); the others poll it every 100 ms. TCP: rank 0 listens on `port` (all interfaces) and
// answers size - 1 connections whose tag matches; the others connect to addr:port, retrying
// every 100 ms.
qt_status qt_rdzv_file(const char *path, const char *tag, int rank, int size, void *blob,
                       size_t len, double timeout_s);
qt_status qt_rdzv_tcp(const char *addr, int port, const char *tag, int rank, int size, void *blob,
                      size_t len, double timeout_s);

#endif

// qtrain/safetensors.h: reading and writing safetensors files, the tensor format of the Hugging
// Face ecosystem (https://github.com/huggingface/safetensors, "Format").
//
// File layout: u64 N (little-endian), then N bytes of a UTF-8 JSON object, then the data buffer.
// The object maps each tensor name to {"dtype": "F32", "shape": [d0, ...], "data_offsets":
// [begin, end]} (byte offsets into the data buffer, end exclusive, end - begin = numel * dtype
// size); the optional key "__metadata__" maps strings to strings. Tensors are dense, row-major,
// little-endian.
//
// Reading is strict, because a file may come from anywhere: the header length must fit the file
// and be at most QT_ST_MAX_HEADER bytes; the header must be valid JSON (json.h: UTF-8, no
// duplicate names) and start with '{' (trailing spaces allowed, as the format pads with them);
// each entry needs exactly a known dtype, a shape of at most QT_ST_MAX_DIMS non-negative dims and
// offsets whose span is numel * dtype size; the spans must tile the data buffer exactly, without
// gaps or overlaps (as the reference implementation requires), so every byte is accounted for.
// Each error names the file, the tensor and the rule.
//
// Writing (qt_st_write): the header lists the tensors in the caller's order and pads with spaces
// to a multiple of 8 bytes; the data buffer holds the tensors sorted by element size, widest
// first (stable), so each starts at a multiple of its own element size. Written atomically
// (temporary file, fsync, rename), like checkpoints.
#ifndef QTRAIN_SAFETENSORS_H
#define QTRAIN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QT_ST_MAX_DIMS 8
#define QT_ST_MAX_HEADER (100u << 20) // the reference implementation's limit is 100 MB

typedef enum {
    QT_ST_BOOL = 0,
    QT_ST_U8,
    QT_ST_I8,
    QT_ST_F8_E5M2,
    QT_ST_F8_E4M3,
    QT_ST_I16,
    QT_ST_U16,
    QT_ST_F16,
    QT_ST_BF16,
    QT_ST_I32,
    QT_ST_U32,
    QT_ST_F32,
    QT_ST_F64,
    QT_ST_I64,
    QT_ST_U64,
    QT_ST_DTYPE_COUNT
} qt_st_dtype;

// The format's name of a dtype ("F32"), or NULL for an invalid one.
const char *qt_st_dtype_name(qt_st_dtype dtype);
// Bytes per element (0 for an invalid dtype).
size_t qt_st_dtype_size(qt_st_dtype dtype);
// The dtype named `name` (exact, case-sensitive), or -1.
int qt_st_dtype_from_name(const char *name);

typedef struct {
    const char *name; // unique, non-empty, not "__metadata__"
    qt_st_dtype dtype;
    int ndim;                      // 0..QT_ST_MAX_DIMS (0: a scalar, one element)
    int64_t shape[QT_ST_MAX_DIMS]; // each >= 0
    const void *data;              // numel * dtype size bytes (may be NULL when that is 0)
} qt_st_tensor;

// numel * dtype size of a tensor; 0 on overflow or a bad dtype (see qt_st_write's checks).
size_t qt_st_tensor_bytes(const qt_st_tensor *t);

// Writes tensors[0, n) and the metadata pairs (meta_keys[i], meta_values[i]), i < n_meta, to
// `path` atomically. QT_ERR_ARG for a bad tensor (no name, duplicate or reserved name, bad dtype,
// ndim or shape, NULL data) or metadata that is not valid UTF-8; QT_ERR_IO when a system call
// fails. Nothing is left behind on failure.
qt_status qt_st_write(const char *path, const qt_st_tensor *tensors, int n,
                      const char *const *meta_keys, const char *const *meta_values, int n_meta);

typedef struct qt_st_file qt_st_file; // a parsed file: its tensors point into its memory

// Maps and parses `path` (QT_ERR_IO: it cannot be opened; QT_ERR_FORMAT: it is not a valid
// safetensors file, with the reason). Free with qt_st_free.
qt_status qt_st_read(const char *path, qt_st_file **out);
// Parses buf[0, len) without copying it: the tensors point into buf, which must outlive the
// result. `what` names it in messages.
qt_status qt_st_parse(const void *buf, size_t len, const char *what, qt_st_file **out);
void qt_st_free(qt_st_file *f);

// Tensors in header order: 0 <= i < qt_st_count(f); NULL for an i out of range.
int qt_st_count(const qt_st_file *f);
const qt_st_tensor *qt_st_at(const qt_st_file *f, int i);
// The tensor named `name`, or NULL.
const qt_st_tensor *qt_st_find(const qt_st_file *f, const char *name);
// The metadata value of `key`, or NULL.
const char *qt_st_meta(const qt_st_file *f, const char *key);

#ifdef __cplusplus
}
#endif
#endif

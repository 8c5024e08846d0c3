// qtrain/checkpoint.h: a checkpoint file of named tensors, written atomically, checksummed.
//
// File format, version 1. Every integer is little-endian; tensor data is stored raw in the
// host's byte order, which must be little-endian (qtrain refuses to read or write checkpoints on
// a big-endian host rather than produce files no one else reads).
//
//   offset  size  field
//   0       8     magic: the bytes "QTCKPT\r\n" (the CR LF catches text-mode mangling)
//   8       4     u32 version (1)
//   12      4     u32 n_entries
//   16      8     u64 index_bytes: size of the index that starts at offset 64
//   24      8     u64 data_offset: start of the data section (a multiple of 64,
//                 >= 64 + index_bytes)
//   32      8     u64 data_bytes: size of the data section (a multiple of 64)
//   40      24    reserved, zero
//   64      ...   the index: n_entries records, each
//                   u32 name_len (1..4095, without the NUL)
//                   u32 dtype (qt_ckpt_dtype)
//                   u32 ndim (0..4; 0 is a scalar of one element)
//                   u32 reserved, zero
//                   i64 shape[4] (dims past ndim are 0)
//                   u64 offset: absolute file offset of the data, a multiple of 64
//                   u64 nbytes: numel * dtype size
//                   name_len bytes of name, a NUL, zeros to a multiple of 8
//   data_offset     the tensors in index order, each at a 64-byte aligned offset, zeros between
//   data_offset + data_bytes
//                 8     u64 checksum: qtsum64 of every byte before it
//   file size = data_offset + data_bytes + 8.
//
// qtsum64 (chosen over byte-wise FNV-1a / CRC-64 because it runs at memory speed on the 1.5 GB
// checkpoints of a 125M-parameter model with Adam moments): with P = 0x9E3779B97F4A7C15,
// F = 0x100000001B3 (the FNV-64 prime) and O = 0xCBF29CE484222325 (the FNV-64 offset basis),
//   - read the n bytes as little-endian u64 words w_0 .. w_{m-1}, m = n / 8;
//   - four lanes h_j = O + j (j = 0..3); word w_i updates lane j = i % 4:
//         h_j = rotl64(h_j ^ w_i, 31) * P
//   - fold: h = O; for j = 0..3: h = (h ^ h_j) * F; then h = (h ^ n) * F; then for each of the
//     n % 8 trailing bytes b: h = (h ^ b) * F. The checksum is h.
// Each step is a bijection of its lane, so any change confined to one 8-byte word (in particular
// any single flipped bit or byte) always changes the checksum.
//
// Writing is atomic: the file is written as <path>.tmp.<pid>, fsync'ed, renamed over <path>, and
// the directory is fsync'ed. On any failure the temporary file is removed and an existing <path>
// is left untouched. A loaded checkpoint maps the file read-only (no copy); its entries point
// into the mapping until qt_ckpt_free. Because writes replace the file by rename, a mapped
// checkpoint is never changed underneath its reader.
#ifndef QTRAIN_CHECKPOINT_H
#define QTRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    QT_CKPT_F32 = 0,
    QT_CKPT_I32,
    QT_CKPT_U8,
    QT_CKPT_U64,
    QT_CKPT_F64,
    QT_CKPT_I8, // DQT weight codes
} qt_ckpt_dtype;

// One tensor. The byte size derives from dtype and shape: numel * qt_ckpt_dtype_size(dtype),
// numel = product of shape[0, ndim) (1 when ndim = 0).
typedef struct {
    const char *name; // unique in a checkpoint, 1..4095 bytes, NUL-terminated
    qt_ckpt_dtype dtype;
    int ndim;         // 0..4
    int64_t shape[4]; // (shape[0], ..., shape[ndim-1]), each >= 0
    const void *data; // numel elements of dtype; may be NULL when numel is 0
} qt_ckpt_entry;

// Bytes per element of a dtype (0 for an invalid dtype).
size_t qt_ckpt_dtype_size(qt_ckpt_dtype dtype);
// "f32", "i32", "u8", "u64", "f64" ("?" for an invalid dtype).
const char *qt_ckpt_dtype_name(qt_ckpt_dtype dtype);
// Elements of an entry: the product of shape[0, ndim).
int64_t qt_ckpt_entry_numel(const qt_ckpt_entry *e);

// qtsum64 (above) of data[0, n): a file's checksum is qt_ckpt_checksum(file, size - 8), stored
// in its last 8 bytes. For tools that edit a checkpoint and for the fuzz target
// (tests/fuzz/fuzz_checkpoint.c), which recomputes it to get past the check.
uint64_t qt_ckpt_checksum(const void *data, size_t n);

// Writes entries[0, n_entries) to `path` atomically (see above). QT_ERR_ARG for a bad entry
// (no name, duplicate name, bad dtype/ndim/shape, NULL data), QT_ERR_IO when a system call
// fails; in both cases nothing is left behind and an existing checkpoint is unchanged.
qt_status qt_ckpt_write(const char *path, const qt_ckpt_entry *entries, int n_entries);

typedef struct qt_ckpt qt_ckpt; // a loaded checkpoint (owns its memory: a read-only mapping)

// Reads and verifies a checkpoint: magic, version, sizes against the file size, checksum, index.
// QT_ERR_IO when it cannot be opened or mapped, QT_ERR_FORMAT when it is not a valid checkpoint
// ("<path> is not a qtrain checkpoint (magic ...)", truncated with expected vs actual bytes,
// "checksum mismatch: the file is corrupt"). *out is NULL on failure; free with qt_ckpt_free.
qt_status qt_ckpt_read(const char *path, qt_ckpt **out);

// Copies tensor `name` into dst (numel elements of dtype). QT_ERR_FORMAT naming the tensor when
// the checkpoint lacks it, or when its dtype or element count differs (both are named).
qt_status qt_ckpt_get(const qt_ckpt *ck, const char *name, qt_ckpt_dtype dtype, size_t numel,
                      void *dst);

// The entry named `name`, or NULL if absent. Its name and data point into the checkpoint.
const qt_ckpt_entry *qt_ckpt_find(const qt_ckpt *ck, const char *name);
// Entries in file order: 0 <= i < qt_ckpt_count(ck); NULL for an i out of range.
int qt_ckpt_count(const qt_ckpt *ck);
const qt_ckpt_entry *qt_ckpt_entry_at(const qt_ckpt *ck, int i);

void qt_ckpt_free(qt_ckpt *ck);

#ifdef __cplusplus
}
#endif
#endif

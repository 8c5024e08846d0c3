// file.h (internal): the file primitives the runtime shares: whole writes and durable renames
// (checkpoints, shards, the tokenizer, prepare.json), whole reads and read-only maps (input
// text, the tokenizer, shards, checkpoints) and mkdir -p (run and data directories).
//
// `what` names the file in messages ("tokenizer", "shard", "checkpoint"), so each caller keeps
// its own words: "cannot open tokenizer data/kjv/tokenizer.bin: No such file or directory; create
// it with qtrain prepare". The int functions return 0, or -1 with errno set, for callers that
// phrase the whole message themselves.
#ifndef QTRAIN_HOST_IO_FILE_H
#define QTRAIN_HOST_IO_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

// Writes all n bytes to fd, retrying short writes and EINTR. 0, or -1 with errno.
int qt_io_write_all(int fd, const void *buf, size_t n);

// An atomic write in progress: the bytes go to `<path>.tmp.<pid>` beside path, which commit
// fsyncs, closes and renames over path, then fsyncs the directory so the rename survives a
// crash. Until the rename, path is as it was; a crash leaves the old file or the new one.
typedef struct {
    const char *path, *what; // the file, and its name in messages ("checkpoint")
    char *tmp;               // the temporary file (NULL when none is left)
    int fd;
} qt_io_atomic;

// Creates the temporary file (nothing is left on failure) and holds its flock until commit or
// abort, so that qt_io_remove_stale_temps knows its writer is alive.
qt_status qt_io_atomic_begin(qt_io_atomic *a, const char *path, const char *what);
// Appends n bytes; on failure the temporary file is removed (no abort needed).
qt_status qt_io_atomic_write(qt_io_atomic *a, const void *buf, size_t n);
// fsync, close, rename over path, fsync of the directory; on failure before the rename the
// temporary file is removed and path is as it was.
qt_status qt_io_atomic_commit(qt_io_atomic *a);
// Closes and removes the temporary file, after a failure of the caller's own.
void qt_io_atomic_abort(qt_io_atomic *a);

// Removes the temporary files that killed writers left in `dir`: regular files named
// `<name>.tmp.<pid>` whose pid names no live process and whose flock is free (a live writer
// holds it). Never a live process's file. *removed and *bytes count what was removed; a missing
// directory has nothing to remove.
qt_status qt_io_remove_stale_temps(const char *dir, int *removed, uint64_t *bytes);

// fsync of the directory holding `path`, so that a rename into it survives a crash. File
// systems that cannot fsync a directory (EINVAL, ENOTSUP, EROFS) count as done. 0, or -1 with
// errno.
int qt_io_sync_parent_dir(const char *path);

// The whole regular file at `path` in *data (malloc'd, len + 1 bytes with a NUL after the
// content; free() it) and its length in *len. A file of more than max_bytes is QT_ERR_FORMAT
// and is not read. `hint`, when not NULL, follows a failed open ("create it with ...").
qt_status qt_io_read_file(const char *path, const char *what, const char *hint, size_t max_bytes,
                          uint8_t **data, size_t *len);

// Maps the whole regular file at `path` read-only: *map (NULL for an empty file; munmap it
// with *len) and *len. `hint` as for qt_io_read_file.
qt_status qt_io_map_file(const char *path, const char *what, const char *hint, void **map,
                         size_t *len);

// mkdir -p: `path` and its missing parents, with `mode`; an existing path that is not a
// directory is an error. `what` names it ("--out directory").
qt_status qt_io_make_dirs(const char *path, unsigned mode, const char *what);
// qt_io_make_dirs that says what it made: *created (malloc'd; free it) is the topmost directory
// it created, NULL when `path` existed. On failure nothing it created is left.
qt_status qt_io_make_dirs_created(const char *path, unsigned mode, const char *what,
                                  char **created);
// Undoes qt_io_make_dirs_created: removes `path` and its parents up to `created` while they are
// empty (a directory holding anything, ours or not, stays). No-op for created == NULL.
void qt_io_remove_created_dirs(const char *path, const char *created);
// Fails early, before a long job, when `path` cannot become a directory: it exists and is not
// one, or its deepest existing ancestor is not a writable directory.
qt_status qt_io_check_dir_creatable(const char *path, const char *what);

#endif

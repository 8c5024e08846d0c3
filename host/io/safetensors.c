// safetensors.c: the safetensors reader and writer of include/qtrain/safetensors.h (layout and
// the reader's rules are documented there). The header is parsed by host/io/json.c; tensors
// point into the caller's buffer or the read-only mapping of the file, so nothing is copied.
#include "qtrain/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "host/io/file.h"
#include "host/io/json.h"

struct qt_st_file {
    char *what; // the path or name, for messages
    void *map;  // the file's mapping (qt_st_read), or NULL
    size_t map_len;
    qt_json *header; // names and metadata point into it
    int n;
    qt_st_tensor *tensors; // (n) in header order
    int n_meta;
    const char **meta_keys, **meta_values; // (n_meta)
};

static const struct {
    const char *name;
    size_t size;
} dtypes[QT_ST_DTYPE_COUNT] = {
    [QT_ST_BOOL] = {"BOOL", 1},       [QT_ST_U8] = {"U8", 1},           [QT_ST_I8] = {"I8", 1},
    [QT_ST_F8_E5M2] = {"F8_E5M2", 1}, [QT_ST_F8_E4M3] = {"F8_E4M3", 1}, [QT_ST_I16] = {"I16", 2},
    [QT_ST_U16] = {"U16", 2},         [QT_ST_F16] = {"F16", 2},         [QT_ST_BF16] = {"BF16", 2},
    [QT_ST_I32] = {"I32", 4},         [QT_ST_U32] = {"U32", 4},         [QT_ST_F32] = {"F32", 4},
    [QT_ST_F64] = {"F64", 8},         [QT_ST_I64] = {"I64", 8},         [QT_ST_U64] = {"U64", 8},
};

const char *qt_st_dtype_name(qt_st_dtype dtype) {
    return (unsigned)dtype < QT_ST_DTYPE_COUNT ? dtypes[dtype].name : NULL;
}

size_t qt_st_dtype_size(qt_st_dtype dtype) {
    return (unsigned)dtype < QT_ST_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

int qt_st_dtype_from_name(const char *name) {
    for (int i = 0; i < QT_ST_DTYPE_COUNT; i++)
        if (strcmp(dtypes[i].name, name) == 0) return i;
    return -1;
}

// numel * element size with overflow checks; 0 with *ok = 0 on overflow or a bad shape.
static size_t shape_bytes(qt_st_dtype dtype, int ndim, const int64_t *shape, int *ok) {
    *ok = 0;
    size_t es = qt_st_dtype_size(dtype);
    if (!es || ndim < 0 || ndim > QT_ST_MAX_DIMS) return 0;
    size_t bytes = es;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return 0;
        uint64_t dim = (uint64_t)shape[d];
        if (dim != 0 && bytes > SIZE_MAX / dim) return 0;
        bytes *= (size_t)dim;
    }
    *ok = 1;
    return bytes;
}

size_t qt_st_tensor_bytes(const qt_st_tensor *t) {
    int ok;
    return shape_bytes(t->dtype, t->ndim, t->shape, &ok);
}

// ---- writing -------------------------------------------------------------------------------

static qt_status check_tensors(const char *path, const qt_st_tensor *t, int n) {
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0 ||
            !qt_json_utf8_valid(t[i].name, strlen(t[i].name)))
            return qt_error(QT_ERR_ARG,
                            "%s: tensor %d has no valid name (non-empty UTF-8, not "
                            "__metadata__)",
                            path, i);
        int ok;
        size_t bytes = shape_bytes(t[i].dtype, t[i].ndim, t[i].shape, &ok);
        if (!ok)
            return qt_error(QT_ERR_ARG,
                            "%s: tensor %s has an invalid dtype (%d), ndim (%d) or "
                            "shape",
                            path, t[i].name, (int)t[i].dtype, t[i].ndim);
        if (bytes && !t[i].data)
            return qt_error(QT_ERR_ARG, "%s: tensor %s has no data", path, t[i].name);
        for (int j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0)
                return qt_error(QT_ERR_ARG, "%s: tensor name %s appears twice", path, t[i].name);
    }
    return QT_OK;
}

// The data order: widest elements first, stable, so each tensor is aligned to its element size.
static void data_order(const qt_st_tensor *t, int n, int *order) {
    int k = 0;
    for (size_t es = 8; es >= 1; es /= 2)
        for (int i = 0; i < n; i++)
            if (qt_st_dtype_size(t[i].dtype) == es) order[k++] = i;
}

qt_status qt_st_write(const char *path, const qt_st_tensor *tensors, int n,
                      const char *const *meta_keys, const char *const *meta_values, int n_meta) {
    if (!path || n < 0 || (n > 0 && !tensors) || n_meta < 0 ||
        (n_meta > 0 && (!meta_keys || !meta_values)))
        return qt_error(QT_ERR_ARG, "qt_st_write: NULL argument");
    QT_TRY(check_tensors(path, tensors, n));
    for (int i = 0; i < n_meta; i++)
        if (!meta_keys[i] || !meta_values[i] ||
            !qt_json_utf8_valid(meta_keys[i], strlen(meta_keys[i])) ||
            !qt_json_utf8_valid(meta_values[i], strlen(meta_values[i])))
            return qt_error(QT_ERR_ARG, "%s: metadata entry %d is not a pair of UTF-8 strings",
                            path, i);
    int *order = malloc(((size_t)n + 1) * sizeof *order);
    uint64_t *begin = malloc(((size_t)n + 1) * sizeof *begin);
    char *header = NULL;
    size_t header_len = 0;
    FILE *f = open_memstream(&header, &header_len);
    if (!order || !begin || !f) {
        if (f) fclose(f);
        free(header);
        free(order);
        free(begin);
        return qt_error(QT_ERR_OOM, "%s: out of memory writing the safetensors header", path);
    }
    data_order(tensors, n, order);
    uint64_t at = 0;
    for (int k = 0; k < n; k++) {
        begin[order[k]] = at;
        at += qt_st_tensor_bytes(&tensors[order[k]]);
    }
    fputc('{', f);
    if (n_meta > 0) {
        fputs("\"__metadata__\":{", f);
        for (int i = 0; i < n_meta; i++) {
            if (i) fputc(',', f);
            qt_json_write_string(f, meta_keys[i], strlen(meta_keys[i]));
            fputc(':', f);
            qt_json_write_string(f, meta_values[i], strlen(meta_values[i]));
        }
        fputc('}', f);
    }
    for (int i = 0; i < n; i++) {
        const qt_st_tensor *t = &tensors[i];
        if (i || n_meta > 0) fputc(',', f);
        qt_json_write_string(f, t->name, strlen(t->name));
        fprintf(f, ":{\"dtype\":\"%s\",\"shape\":[", qt_st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            fprintf(f, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        uint64_t b = begin[i];
        fprintf(f, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)b,
                (unsigned long long)(b + qt_st_tensor_bytes(t)));
    }
    fputc('}', f);
    // Spaces to a multiple of 8, so the data buffer starts 8-byte aligned in the file.
    long len = ftell(f);
    while ((8 + len) % 8) {
        fputc(' ', f);
        len++;
    }
    int bad = ferror(f);
    fclose(f);
    qt_status st = QT_OK;
    if (bad || !header) st = qt_error(QT_ERR_OOM, "%s: out of memory writing the header", path);
    qt_io_atomic a;
    if (st == QT_OK) st = qt_io_atomic_begin(&a, path, "safetensors file");
    if (st == QT_OK) {
        unsigned char len8[8];
        for (int i = 0; i < 8; i++)
            len8[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
        st = qt_io_atomic_write(&a, len8, 8);
        if (st == QT_OK) st = qt_io_atomic_write(&a, header, header_len);
        for (int k = 0; st == QT_OK && k < n; k++) {
            const qt_st_tensor *t = &tensors[order[k]];
            size_t bytes = qt_st_tensor_bytes(t);
            if (bytes) st = qt_io_atomic_write(&a, t->data, bytes);
        }
        if (st == QT_OK) st = qt_io_atomic_commit(&a);
    }
    free(header);
    free(order);
    free(begin);
    return st;
}

// ---- reading -------------------------------------------------------------------------------

void qt_st_free(qt_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    qt_json_free(f->header);
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->what);
    free(f);
}

int qt_st_count(const qt_st_file *f) { return f ? f->n : 0; }

const qt_st_tensor *qt_st_at(const qt_st_file *f, int i) {
    return f && i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

const qt_st_tensor *qt_st_find(const qt_st_file *f, const char *name) {
    for (int i = 0; f && i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *qt_st_meta(const qt_st_file *f, const char *key) {
    for (int i = 0; f && i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

// The tensor's [begin, end) span in the data buffer, for the tiling check.
typedef struct {
    uint64_t begin, end;
    int index;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index - y->index;
}

// One header entry `name` -> v into *t and its span.
static qt_status parse_entry(const char *what, const char *name, const qt_json *v,
                             uint64_t data_len, qt_st_tensor *t, span *sp) {
    if (!name[0]) return qt_error(QT_ERR_FORMAT, "%s: a tensor has an empty name", what);
    if (v->type != QT_JSON_OBJECT)
        return qt_error(QT_ERR_FORMAT,
                        "%s: tensor %s: expected an object {dtype, shape, "
                        "data_offsets}, found a %s",
                        what, name, qt_json_type_name(v->type));
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], "dtype") && strcmp(v->keys[i], "shape") &&
            strcmp(v->keys[i], "data_offsets"))
            return qt_error(QT_ERR_FORMAT,
                            "%s: tensor %s: unknown field \"%s\" (expected dtype, "
                            "shape, data_offsets)",
                            what, name, v->keys[i]);
    const qt_json *dt = qt_json_get(v, "dtype"), *sh = qt_json_get(v, "shape"),
                  *off = qt_json_get(v, "data_offsets");
    if (!dt || !sh || !off)
        return qt_error(QT_ERR_FORMAT, "%s: tensor %s lacks \"%s\"", what, name,
                        !dt   ? "dtype"
                        : !sh ? "shape"
                              : "data_offsets");
    int dtype = dt->type == QT_JSON_STRING ? qt_st_dtype_from_name(dt->str) : -1;
    if (dtype < 0)
        return qt_error(QT_ERR_FORMAT,
                        "%s: tensor %s has unknown dtype %s%s%s; known: BOOL, U8, "
                        "I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64",
                        what, name, dt->type == QT_JSON_STRING ? "\"" : "",
                        dt->type == QT_JSON_STRING ? dt->str : qt_json_type_name(dt->type),
                        dt->type == QT_JSON_STRING ? "\"" : "");
    if (sh->type != QT_JSON_ARRAY || sh->n > QT_ST_MAX_DIMS)
        return qt_error(QT_ERR_FORMAT,
                        "%s: tensor %s: shape must be an array of at most %d "
                        "dimensions",
                        what, name, QT_ST_MAX_DIMS);
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = (qt_st_dtype)dtype;
    t->ndim = sh->n;
    for (int d = 0; d < sh->n; d++) {
        const qt_json *x = &sh->items[d];
        if (x->type != QT_JSON_NUMBER || !x->is_uint || x->uint > (uint64_t)INT64_MAX)
            return qt_error(QT_ERR_FORMAT,
                            "%s: tensor %s: shape[%d] is not a non-negative "
                            "integer",
                            what, name, d);
        t->shape[d] = (int64_t)x->uint;
    }
    if (off->type != QT_JSON_ARRAY || off->n != 2 || off->items[0].type != QT_JSON_NUMBER ||
        off->items[1].type != QT_JSON_NUMBER || !off->items[0].is_uint || !off->items[1].is_uint)
        return qt_error(QT_ERR_FORMAT,
                        "%s: tensor %s: data_offsets must be [begin, end], two "
                        "non-negative integers",
                        what, name);
    uint64_t b = off->items[0].uint, e = off->items[1].uint;
    if (b > e || e > data_len)
        return qt_error(QT_ERR_FORMAT,
                        "%s: tensor %s: data_offsets [%llu, %llu] out of range: "
                        "the data buffer holds %llu bytes",
                        what, name, (unsigned long long)b, (unsigned long long)e,
                        (unsigned long long)data_len);
    int ok;
    size_t bytes = shape_bytes(t->dtype, t->ndim, t->shape, &ok);
    if (!ok)
        return qt_error(QT_ERR_FORMAT, "%s: tensor %s: its shape's byte size overflows", what,
                        name);
    if (bytes != e - b)
        return qt_error(QT_ERR_FORMAT,
                        "%s: tensor %s: its %s shape needs %zu bytes, but "
                        "data_offsets [%llu, %llu] span %llu",
                        what, name, dt->str, bytes, (unsigned long long)b, (unsigned long long)e,
                        (unsigned long long)(e - b));
    sp->begin = b;
    sp->end = e;
    return QT_OK;
}

static qt_status parse_header(qt_st_file *f, const unsigned char *buf, size_t len) {
    const char *what = f->what;
    if (len < 8)
        return qt_error(QT_ERR_FORMAT,
                        "%s is not a safetensors file: %zu bytes, shorter than "
                        "the 8-byte header length",
                        what, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[i];
    if (n > len - 8)
        return qt_error(QT_ERR_FORMAT,
                        "%s: header length %llu exceeds the %zu bytes that follow "
                        "it: the file is truncated or not a safetensors file",
                        what, (unsigned long long)n, len - 8);
    if (n > QT_ST_MAX_HEADER)
        return qt_error(QT_ERR_FORMAT, "%s: header length %llu exceeds the limit of %u bytes", what,
                        (unsigned long long)n, QT_ST_MAX_HEADER);
    if (n < 2 || buf[8] != '{')
        return qt_error(QT_ERR_FORMAT,
                        "%s: the header does not start with '{': not a "
                        "safetensors file",
                        what);
    char hwhat[600];
    snprintf(hwhat, sizeof hwhat, "%s header", what);
    QT_TRY(qt_json_parse((const char *)buf + 8, (size_t)n, hwhat, &f->header));
    const qt_json *h = f->header;
    if (h->type != QT_JSON_OBJECT)
        return qt_error(QT_ERR_FORMAT, "%s: the header is not a JSON object", what);
    const uint64_t data_len = len - 8 - n;
    const unsigned char *data = buf + 8 + n;
    f->tensors = calloc((size_t)h->n + 1, sizeof *f->tensors);
    span *spans = calloc((size_t)h->n + 1, sizeof *spans);
    if (!f->tensors || !spans) {
        free(spans);
        return qt_error(QT_ERR_OOM, "%s: out of memory (%d header entries)", what, h->n);
    }
    qt_status st = QT_OK;
    for (int i = 0; st == QT_OK && i < h->n; i++) {
        const char *key = h->keys[i];
        if (strlen(key) != h->key_lens[i]) {
            st = qt_error(QT_ERR_FORMAT, "%s: a header key holds a NUL character", what);
        } else if (strcmp(key, "__metadata__") == 0) {
            const qt_json *m = &h->items[i];
            if (m->type != QT_JSON_OBJECT) {
                st = qt_error(QT_ERR_FORMAT,
                              "%s: __metadata__ must be an object of strings, "
                              "found a %s",
                              what, qt_json_type_name(m->type));
                break;
            }
            f->meta_keys = calloc((size_t)m->n + 1, sizeof *f->meta_keys);
            f->meta_values = calloc((size_t)m->n + 1, sizeof *f->meta_values);
            if (!f->meta_keys || !f->meta_values) {
                st = qt_error(QT_ERR_OOM, "%s: out of memory", what);
                break;
            }
            for (int k = 0; k < m->n; k++) {
                if (m->items[k].type != QT_JSON_STRING) {
                    st = qt_error(QT_ERR_FORMAT,
                                  "%s: __metadata__ value of \"%s\" is a %s; the "
                                  "format allows only strings",
                                  what, m->keys[k], qt_json_type_name(m->items[k].type));
                    break;
                }
                f->meta_keys[k] = m->keys[k];
                f->meta_values[k] = m->items[k].str;
            }
            f->n_meta = m->n;
        } else {
            span *sp = &spans[f->n];
            st = parse_entry(what, key, &h->items[i], data_len, &f->tensors[f->n], sp);
            if (st == QT_OK) {
                sp->index = f->n;
                f->tensors[f->n].data = data + sp->begin;
                f->n++;
            }
        }
    }
    if (st == QT_OK) {
        // The spans must tile [0, data_len): sorted, each begins where the previous ended.
        qsort(spans, (size_t)f->n, sizeof *spans, span_cmp);
        uint64_t at = 0;
        for (int i = 0; st == QT_OK && i < f->n; i++) {
            const char *name = f->tensors[spans[i].index].name;
            if (spans[i].begin > at)
                st = qt_error(QT_ERR_FORMAT,
                              "%s: tensor %s starts at byte %llu of the data, "
                              "leaving bytes [%llu, %llu) unused: the offsets are corrupt",
                              what, name, (unsigned long long)spans[i].begin,
                              (unsigned long long)at, (unsigned long long)spans[i].begin);
            else if (spans[i].begin < at)
                st = qt_error(QT_ERR_FORMAT,
                              "%s: tensor %s at bytes [%llu, %llu) overlaps "
                              "another tensor (which ends at %llu)",
                              what, name, (unsigned long long)spans[i].begin,
                              (unsigned long long)spans[i].end, (unsigned long long)at);
            at = spans[i].end;
        }
        if (st == QT_OK && at != data_len)
            st = qt_error(QT_ERR_FORMAT,
                          "%s: the tensors cover %llu bytes but the data buffer "
                          "holds %llu: the file has trailing bytes or is corrupt",
                          what, (unsigned long long)at, (unsigned long long)data_len);
    }
    free(spans);
    return st;
}

qt_status qt_st_parse(const void *buf, size_t len, const char *what, qt_st_file **out) {
    if (!out || (len && !buf)) return qt_error(QT_ERR_ARG, "qt_st_parse: NULL argument");
    *out = NULL;
    qt_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->what = strdup(what ? what : "safetensors"))) {
        free(f);
        return qt_error(QT_ERR_OOM, "out of memory reading a safetensors file");
    }
    qt_status st = parse_header(f, buf, len);
    if (st != QT_OK) {
        qt_st_free(f);
        return st;
    }
    *out = f;
    return QT_OK;
}

qt_status qt_st_read(const char *path, qt_st_file **out) {
    if (!out || !path) return qt_error(QT_ERR_ARG, "qt_st_read: NULL argument");
    *out = NULL;
    void *map = NULL;
    size_t len = 0;
    QT_TRY(qt_io_map_file(path, "safetensors file", NULL, &map, &len));
    qt_st_file *f = NULL;
    qt_status st = qt_st_parse(map, len, path, &f);
    if (st != QT_OK) {
        if (map) munmap(map, len);
        return st;
    }
    f->map = map;
    f->map_len = len;
    *out = f;
    return QT_OK;
}

// json.h (internal): a small strict JSON reader (RFC 8259) for the files qtrain reads from
// the Hugging Face ecosystem: safetensors headers, config.json. And the string escaping its
// writers share.
//
// Strict: one value, surrounded only by whitespace; no trailing commas, comments, NaN or
// leading zeros; strings are valid UTF-8 and \u escapes (surrogate pairs joined) are decoded
// to UTF-8; an object naming a key twice is an error (RFC 8259 leaves it open; safetensors
// forbids it, and for config.json a second value would silently win elsewhere). Nesting is
// capped (QT_JSON_MAX_DEPTH) so hostile input cannot exhaust the stack. Errors name the file,
// the byte offset, line and column, and what was expected.
#ifndef QTRAIN_HOST_IO_JSON_H
#define QTRAIN_HOST_IO_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/status.h"

#define QT_JSON_MAX_DEPTH 64

typedef enum {
    QT_JSON_NULL = 0,
    QT_JSON_BOOL,
    QT_JSON_NUMBER,
    QT_JSON_STRING,
    QT_JSON_ARRAY,
    QT_JSON_OBJECT,
} qt_json_type;

typedef struct qt_json qt_json;
struct qt_json {
    qt_json_type type;
    int boolean;      // QT_JSON_BOOL
    double number;    // QT_JSON_NUMBER, as strtod reads it
    int is_uint;      // QT_JSON_NUMBER written as a plain non-negative integer that fits uint64
    uint64_t uint;    // ... and its exact value (tensor offsets past 2^53 stay exact)
    char *str;        // QT_JSON_STRING: the decoded UTF-8, NUL-terminated
    size_t len;       // bytes of str (a \u0000 escape may put a NUL inside)
    int n;            // QT_JSON_ARRAY, QT_JSON_OBJECT: number of items
    qt_json *items;   // (n) the items, or the objects' values in file order
    char **keys;      // (n) QT_JSON_OBJECT: the keys (decoded, NUL-terminated)
    size_t *key_lens; // (n)
    size_t offset;    // byte offset of the value in the text (for messages)
};

// Parses text[0, len) (`what` names it in errors: "model.safetensors header"). *out is a tree
// to free with qt_json_free; NULL on failure (QT_ERR_FORMAT, or QT_ERR_OOM).
qt_status qt_json_parse(const char *text, size_t len, const char *what, qt_json **out);
void qt_json_free(qt_json *j);

// The value of `key` in object obj, or NULL (also when obj is not an object).
const qt_json *qt_json_get(const qt_json *obj, const char *key);
// The name of a type ("object", "string", ...), for messages.
const char *qt_json_type_name(qt_json_type type);

// Writes s[0, len) as a JSON string literal with its quotes: '"', '\\' and control bytes are
// escaped; other bytes pass through (the caller supplies UTF-8).
void qt_json_write_string(FILE *f, const char *s, size_t len);
// 1 when s[0, len) is valid UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF).
int qt_json_utf8_valid(const char *s, size_t len);

#endif

// json.c: the strict JSON reader of json.h (RFC 8259), a recursive descent over a byte range
// with a depth cap; every error names the file, the offset, line and column.
#include "host/io/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t len, pos;
    const char *what;
    int depth;
} parser;

const char *qt_json_type_name(qt_json_type type) {
    switch (type) {
    case QT_JSON_NULL:
        return "null";
    case QT_JSON_BOOL:
        return "boolean";
    case QT_JSON_NUMBER:
        return "number";
    case QT_JSON_STRING:
        return "string";
    case QT_JSON_ARRAY:
        return "array";
    case QT_JSON_OBJECT:
        return "object";
    }
    return "?";
}

// The error at byte `at`: "<what>: invalid JSON at byte 12 (line 1, column 13): <why>".
static qt_status fail_at(const parser *p, size_t at, const char *why) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < p->len; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return qt_error(QT_ERR_FORMAT, "%s: invalid JSON at byte %zu (line %zu, column %zu): %s",
                    p->what, at, line, col, why);
}

static qt_status oom(const parser *p) {
    return qt_error(QT_ERR_OOM, "%s: out of memory parsing JSON (%zu bytes)", p->what, p->len);
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

// Length of the valid UTF-8 sequence at s[0, n), or 0 if it is not one.
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    unsigned min;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

int qt_json_utf8_valid(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(u + i, len - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(const char *s, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return 0;
        *v = *v << 4 | (uint32_t)d;
    }
    return 1;
}

// A string literal at p->pos (the opening quote) into *out (malloc'd, NUL-terminated). The
// decoded form is never longer than the literal, which bounds the allocation.
static qt_status parse_string(parser *p, char **out, size_t *out_len) {
    size_t start = p->pos++;
    size_t end = p->pos;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail_at(p, start, "unterminated string");
    char *buf = malloc(end - p->pos + 1);
    if (!buf) return oom(p);
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            free(buf);
            return fail_at(p, p->pos, "control character inside a string (escape it)");
        }
        if (c != '\\') {
            size_t k = utf8_seq((const unsigned char *)p->s + p->pos, end - p->pos);
            if (!k) {
                free(buf);
                return fail_at(p, p->pos, "invalid UTF-8 inside a string");
            }
            memcpy(buf + n, p->s + p->pos, k);
            n += k;
            p->pos += k;
            continue;
        }
        char e = p->s[p->pos + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            buf[n++] = map[simple - "\"\\/bfnrt"];
            p->pos += 2;
            continue;
        }
        uint32_t cp;
        if (e != 'u' || p->pos + 6 > end || !hex4(p->s + p->pos + 2, &cp)) {
            free(buf);
            return fail_at(p, p->pos,
                           "invalid escape (use \\\" \\\\ \\/ \\b \\f \\n \\r \\t or "
                           "\\uXXXX)");
        }
        size_t at = p->pos;
        p->pos += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (p->pos + 6 > end || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                !hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                free(buf);
                return fail_at(p, at, "a high surrogate \\uD8xx-\\uDBxx without its low half");
            }
            p->pos += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            free(buf);
            return fail_at(p, at, "a lone low surrogate \\uDCxx-\\uDFxx");
        }
        n += put_utf8(buf + n, cp);
    }
    p->pos = end + 1;
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return QT_OK;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static qt_status parse_number(parser *p, qt_json *v) {
    size_t start = p->pos, i = p->pos;
    int neg = 0, plain = 1;
    if (i < p->len && p->s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= p->len || !is_digit(p->s[i])) return fail_at(p, start, "a number needs digits");
    if (p->s[i] == '0' && i + 1 < p->len && is_digit(p->s[i + 1]))
        return fail_at(p, start, "leading zeros are not allowed in a number");
    while (i < p->len && is_digit(p->s[i]))
        i++;
    if (i < p->len && p->s[i] == '.') {
        plain = 0;
        i++;
        if (i >= p->len || !is_digit(p->s[i])) return fail_at(p, i, "digits expected after '.'");
        while (i < p->len && is_digit(p->s[i]))
            i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        plain = 0;
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->len || !is_digit(p->s[i])) return fail_at(p, i, "digits expected in exponent");
        while (i < p->len && is_digit(p->s[i]))
            i++;
    }
    char buf[64];
    size_t n = i - start;
    if (n >= sizeof buf) {
        // Long literals: only the double is kept (strtod on a copy).
        char *tmp = malloc(n + 1);
        if (!tmp) return oom(p);
        memcpy(tmp, p->s + start, n);
        tmp[n] = '\0';
        v->number = strtod(tmp, NULL);
        free(tmp);
    } else {
        memcpy(buf, p->s + start, n);
        buf[n] = '\0';
        v->number = strtod(buf, NULL);
    }
    v->type = QT_JSON_NUMBER;
    if (plain && !neg) {
        uint64_t u = 0;
        int fits = 1;
        for (size_t k = start; k < i; k++) {
            unsigned d = (unsigned)(p->s[k] - '0');
            if (u > (UINT64_MAX - d) / 10) {
                fits = 0;
                break;
            }
            u = u * 10 + d;
        }
        v->is_uint = fits;
        v->uint = fits ? u : 0;
    }
    p->pos = i;
    return QT_OK;
}

static int match_word(parser *p, const char *w) {
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0) return 0;
    p->pos += n;
    return 1;
}

static void free_value(qt_json *v);

static qt_status parse_value(parser *p, qt_json *v);

// Appends one slot to an array/object under construction; cap doubles.
static int grow_items(qt_json *v, int *cap, int with_keys) {
    if (v->n < *cap) return 1;
    int c = *cap ? 2 * *cap : 4;
    qt_json *items = realloc(v->items, (size_t)c * sizeof *items);
    if (!items) return 0;
    v->items = items;
    if (with_keys) {
        char **keys = realloc(v->keys, (size_t)c * sizeof *keys);
        if (!keys) return 0;
        v->keys = keys;
        size_t *lens = realloc(v->key_lens, (size_t)c * sizeof *lens);
        if (!lens) return 0;
        v->key_lens = lens;
    }
    *cap = c;
    return 1;
}

static qt_status parse_array(parser *p, qt_json *v) {
    v->type = QT_JSON_ARRAY;
    int cap = 0;
    p->pos++; // '['
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return QT_OK;
    }
    for (;;) {
        if (!grow_items(v, &cap, 0)) return oom(p);
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        v->n++;
        QT_TRY(parse_value(p, &v->items[v->n - 1]));
        skip_ws(p);
        if (p->pos >= p->len) return fail_at(p, p->pos, "unterminated array (expected ',' or ']')");
        char c = p->s[p->pos++];
        if (c == ']') return QT_OK;
        if (c != ',') return fail_at(p, p->pos - 1, "expected ',' or ']' in an array");
    }
}

static qt_status parse_object(parser *p, qt_json *v) {
    v->type = QT_JSON_OBJECT;
    int cap = 0;
    p->pos++; // '{'
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return QT_OK;
    }
    for (;;) {
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '"')
            return fail_at(p, p->pos, "expected a string key in an object");
        size_t key_at = p->pos;
        char *key;
        size_t key_len;
        QT_TRY(parse_string(p, &key, &key_len));
        for (int i = 0; i < v->n; i++)
            if (v->key_lens[i] == key_len && memcmp(v->keys[i], key, key_len) == 0) {
                char why[160];
                snprintf(why, sizeof why, "duplicate key \"%.100s\" in an object", key);
                free(key);
                return fail_at(p, key_at, why);
            }
        if (!grow_items(v, &cap, 1)) {
            free(key);
            return oom(p);
        }
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        v->keys[v->n] = key;
        v->key_lens[v->n] = key_len;
        v->n++;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':')
            return fail_at(p, p->pos, "expected ':' after an object key");
        p->pos++;
        QT_TRY(parse_value(p, &v->items[v->n - 1]));
        skip_ws(p);
        if (p->pos >= p->len)
            return fail_at(p, p->pos, "unterminated object (expected ',' or '}')");
        char c = p->s[p->pos++];
        if (c == '}') return QT_OK;
        if (c != ',') return fail_at(p, p->pos - 1, "expected ',' or '}' in an object");
    }
}

static qt_status parse_value(parser *p, qt_json *v) {
    skip_ws(p);
    v->offset = p->pos;
    if (p->pos >= p->len) return fail_at(p, p->pos, "unexpected end of input (expected a value)");
    char c = p->s[p->pos];
    if (c == '{' || c == '[') {
        if (++p->depth > QT_JSON_MAX_DEPTH)
            return fail_at(p, p->pos, "nested deeper than 64 levels");
        qt_status st = c == '{' ? parse_object(p, v) : parse_array(p, v);
        p->depth--;
        return st;
    }
    if (c == '"') {
        v->type = QT_JSON_STRING;
        return parse_string(p, &v->str, &v->len);
    }
    if (c == '-' || is_digit(c)) return parse_number(p, v);
    if (match_word(p, "true")) {
        v->type = QT_JSON_BOOL;
        v->boolean = 1;
        return QT_OK;
    }
    if (match_word(p, "false")) {
        v->type = QT_JSON_BOOL;
        return QT_OK;
    }
    if (match_word(p, "null")) {
        v->type = QT_JSON_NULL;
        return QT_OK;
    }
    return fail_at(p, p->pos,
                   "expected a value (object, array, string, number, true, false or "
                   "null)");
}

static void free_value(qt_json *v) {
    if (v->items)
        for (int i = 0; i < v->n; i++)
            free_value(&v->items[i]);
    if (v->keys)
        for (int i = 0; i < v->n; i++)
            free(v->keys[i]);
    free(v->items);
    free(v->keys);
    free(v->key_lens);
    free(v->str);
}

qt_status qt_json_parse(const char *text, size_t len, const char *what, qt_json **out) {
    *out = NULL;
    parser p = {text, len, 0, what ? what : "JSON", 0};
    qt_json *root = calloc(1, sizeof *root);
    if (!root) return oom(&p);
    qt_status st = text || len == 0 ? parse_value(&p, root) : fail_at(&p, 0, "no text");
    if (st == QT_OK) {
        skip_ws(&p);
        if (p.pos != p.len) st = fail_at(&p, p.pos, "unexpected text after the value");
    }
    if (st != QT_OK) {
        qt_json_free(root);
        return st;
    }
    *out = root;
    return QT_OK;
}

void qt_json_free(qt_json *j) {
    if (!j) return;
    free_value(j);
    free(j);
}

const qt_json *qt_json_get(const qt_json *obj, const char *key) {
    if (!obj || obj->type != QT_JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (int i = 0; i < obj->n; i++)
        if (obj->key_lens[i] == n && memcmp(obj->keys[i], key, n) == 0) return &obj->items[i];
    return NULL;
}

void qt_json_write_string(FILE *f, const char *s, size_t len) {
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c < 0x20 || c == 0x7F) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

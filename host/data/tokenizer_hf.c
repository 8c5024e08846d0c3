// tokenizer_hf.c: qtrain's byte-level BPE as a Hugging Face tokenizers file (tokenizer.json),
// the contract in qtrain/hf.h (qt_hf_write_tokenizer).
//
// How qtrain's tokenizer (qtrain/tokenizer.h) maps onto tokenizers' pipeline:
//   - ByteLevel pre-tokenizer with use_regex = false: every byte of the UTF-8 text becomes one
//     character of GPT-2's byte-to-unicode alphabet (printable bytes map to themselves, the 68
//     others to U+0100..U+0143 in byte order), with no splitting of its own;
//   - Split (behavior Isolated) with one regex over those characters. Since a character is a
//     byte now, qtrain's byte classes become character classes and its 256-byte word cap a
//     repetition count. With S the space, W whitespace, and X one of the classes letter (A-Z,
//     a-z, every byte >= 0x80), digit, other, a word is, alternatives in order:
//         S X{1,255}            a space leading a run of one class (the space counts in the cap)
//         W{1,256}(?=S[^W])     a whitespace run less its final space when that space leads
//                               the next word (the backtracking finds exactly that length)
//         W{1,256}              any other whitespace run
//         X{1,256}              a run of one class
//     which is word_end() of host/data/tokenizer.c, cap included (a run past 256 bytes continues
//     as a new word there and here);
//   - BPE over the same alphabet: vocab = each token's bytes mapped, merges = qtrain's merges in
//     order. tokenizers applies the lowest-ranked merge first, as qtrain does, and no merge
//     creates a pair of a lower rank, so merging one pair at a time or all its occurrences at
//     once gives the same tokens;
//   - ByteLevel decoder: the characters back to bytes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/io/file.h"
#include "host/io/json.h"
#include "qtrain/hf.h"

// GPT-2's bytes_to_unicode: printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) are their own
// code point, the others 256, 257, ... in byte order.
static void byte_to_unicode(uint32_t cp[256]) {
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        cp[b] = printable ? (uint32_t)b : next++;
    }
}

// qtrain/tokenizer.h's byte classes.
enum { CL_LETTER, CL_DIGIT, CL_SPACE, CL_OTHER };
static int byte_class(int c) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c >= 0x80) return CL_LETTER;
    if (c >= '0' && c <= '9') return CL_DIGIT;
    if (c == ' ' || (c >= '\t' && c <= '\r')) return CL_SPACE;
    return CL_OTHER;
}

static size_t utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | cp >> 6); // every mapped character is below U+0800
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

// A regex character class "[\x{..}-\x{..}...]" of the mapped characters of bytes where
// `in(byte)` holds, as ranges of consecutive code points.
static void write_class(FILE *f, const uint32_t cp[256], int cls, int space_only, int negate) {
    char in[0x144] = {0};
    for (int b = 0; b < 256; b++)
        if (space_only ? b == ' ' : byte_class(b) == cls) in[cp[b]] = 1;
    fputs(negate ? "[^" : "[", f);
    for (uint32_t c = 0; c < sizeof in; c++) {
        if (!in[c]) continue;
        uint32_t e = c;
        while (e + 1 < sizeof in && in[e + 1])
            e++;
        // Backslashes doubled: the pattern is a JSON string.
        if (e == c)
            fprintf(f, "\\\\x{%X}", c);
        else
            fprintf(f, "\\\\x{%X}-\\\\x{%X}", c, e);
        c = e;
    }
    fputc(']', f);
}

static void write_pattern(FILE *f, const uint32_t cp[256]) {
    const int runs[3] = {CL_LETTER, CL_DIGIT, CL_OTHER};
    fputc('"', f);
    write_class(f, cp, 0, 1, 0); // S (?: X{1,255} | ... )
    fputs("(?:", f);
    for (int k = 0; k < 3; k++) {
        if (k) fputc('|', f);
        write_class(f, cp, runs[k], 0, 0);
        fputs("{1,255}", f);
    }
    fputs(")|", f);
    write_class(f, cp, CL_SPACE, 0, 0);
    fputs("{1,256}(?=", f);
    write_class(f, cp, 0, 1, 0);
    write_class(f, cp, CL_SPACE, 0, 1);
    fputs(")|", f);
    write_class(f, cp, CL_SPACE, 0, 0);
    fputs("{1,256}", f);
    for (int k = 0; k < 3; k++) {
        fputc('|', f);
        write_class(f, cp, runs[k], 0, 0);
        fputs("{1,256}", f);
    }
    fputc('"', f);
}

// Token t's bytes as mapped characters (UTF-8) into buf (at least 2 * 256 bytes).
static size_t mapped(const qt_tokenizer *tok, int t, const uint32_t cp[256], char *buf) {
    size_t len = 0, n = 0;
    const uint8_t *b = qt_tokenizer_token_bytes(tok, t, &len);
    for (size_t i = 0; i < len; i++)
        n += utf8_put(buf + n, cp[b[i]]);
    return n;
}

static const qt_tokenizer *sort_tok; // qsort has no context argument in C11

// Orders token ids by their bytes, then by id (so the first of equal tokens comes first).
static int by_bytes(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    size_t lx, ly;
    const uint8_t *bx = qt_tokenizer_token_bytes(sort_tok, x, &lx);
    const uint8_t *by = qt_tokenizer_token_bytes(sort_tok, y, &ly);
    size_t n = lx < ly ? lx : ly;
    int c = memcmp(bx, by, n);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x - y;
}

static qt_status write_file(const char *path, const char *buf, size_t len) {
    qt_io_atomic a;
    QT_TRY(qt_io_atomic_begin(&a, path, "tokenizer file"));
    QT_TRY(qt_io_atomic_write(&a, buf, len));
    return qt_io_atomic_commit(&a);
}

qt_status qt_hf_write_tokenizer(const qt_tokenizer *tok, int model_max_length, const char *dir,
                                int *duplicates) {
    if (!tok || !dir) return qt_error(QT_ERR_ARG, "qt_hf_write_tokenizer: NULL argument");
    const int V = qt_tokenizer_vocab_size(tok);
    uint32_t cp[256];
    byte_to_unicode(cp);
    // Tokens whose bytes equal an earlier token's: JSON's vocab object can name them only once.
    int *ids = malloc((size_t)V * sizeof *ids);
    char *dup = calloc((size_t)V, 1);
    char *json = NULL;
    size_t json_len = 0;
    FILE *f = ids && dup ? open_memstream(&json, &json_len) : NULL;
    if (!f) {
        free(ids);
        free(dup);
        return qt_error(QT_ERR_OOM, "out of memory writing tokenizer.json (%d tokens)", V);
    }
    for (int i = 0; i < V; i++)
        ids[i] = i;
    sort_tok = tok;
    qsort(ids, (size_t)V, sizeof *ids, by_bytes);
    int n_dup = 0;
    for (int i = 1; i < V; i++) {
        size_t la, lb;
        const uint8_t *a = qt_tokenizer_token_bytes(tok, ids[i - 1], &la);
        const uint8_t *b = qt_tokenizer_token_bytes(tok, ids[i], &lb);
        if (la == lb && memcmp(a, b, la) == 0) {
            dup[ids[i]] = 1;
            n_dup++;
        }
    }
    char buf[2 * QT_TOKENIZER_MAX_WORD + 2], buf2[2 * QT_TOKENIZER_MAX_WORD + 2];
    fputs("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
          "  \"added_tokens\": [],\n  \"normalizer\": null,\n"
          "  \"pre_tokenizer\": {\n    \"type\": \"Sequence\",\n    \"pretokenizers\": [\n"
          "      {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
          "\"use_regex\": false},\n"
          "      {\"type\": \"Split\", \"pattern\": {\"Regex\": ",
          f);
    write_pattern(f, cp);
    fputs("}, \"behavior\": \"Isolated\", \"invert\": false}\n    ]\n  },\n"
          "  \"post_processor\": null,\n"
          "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
          "\"trim_offsets\": false, \"use_regex\": false},\n"
          "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n"
          "    \"unk_token\": null,\n    \"continuing_subword_prefix\": null,\n"
          "    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
          "    \"byte_fallback\": false,\n    \"vocab\": {",
          f);
    int first = 1;
    for (int t = 0; t < V; t++) {
        if (dup[t]) continue;
        size_t n = mapped(tok, t, cp, buf);
        fputs(first ? "\n      " : ",\n      ", f);
        first = 0;
        qt_json_write_string(f, buf, n);
        fprintf(f, ": %d", t);
    }
    fputs("\n    },\n    \"merges\": [", f);
    // "left right": the mapped alphabet has no space (it is U+0120), so one space separates.
    int merge_error = 0;
    for (int i = 0; i < V - 256 && !merge_error; i++) {
        int a = 0, b = 0;
        merge_error = qt_tokenizer_merge(tok, i, &a, &b) != QT_OK;
        size_t na = mapped(tok, a, cp, buf), nb = mapped(tok, b, cp, buf2);
        buf[na] = ' ';
        memcpy(buf + na + 1, buf2, nb);
        fputs(i ? ",\n      " : "\n      ", f);
        qt_json_write_string(f, buf, na + 1 + nb);
    }
    fputs("\n    ]\n  }\n}\n", f);
    int bad = ferror(f);
    fclose(f);
    free(ids);
    free(dup);
    char path[4096];
    qt_status st = merge_error ? QT_ERR_INTERNAL
                   : bad       ? qt_error(QT_ERR_OOM, "out of memory writing tokenizer.json")
                               : QT_OK;
    if (st == QT_OK) {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        st = write_file(path, json, json_len);
    }
    free(json);
    if (st != QT_OK) return st;
    // PreTrainedTokenizerFast reads tokenizer.json as is; the model-specific classes (GPT2's,
    // LLaMA's) would rebuild the pre-tokenizer or add BOS tokens. No space clean-up on decode:
    // decode(encode(text)) stays text. No token_type_ids (OPT and LLaMA take none: generate()
    // refuses them).
    char cfg[512];
    int n = snprintf(cfg, sizeof cfg,
                     "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n"
                     "  \"model_max_length\": %d,\n  \"clean_up_tokenization_spaces\": false,\n"
                     "  \"add_bos_token\": false,\n  \"add_eos_token\": false,\n"
                     "  \"model_input_names\": [\"input_ids\", \"attention_mask\"]\n}\n",
                     model_max_length);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    QT_TRY(write_file(path, cfg, (size_t)n));
    if (duplicates) *duplicates = n_dup;
    return QT_OK;
}

// fuzz_tokenizer.c: libFuzzer target for the BPE tokenizer (host/data/tokenizer.c): its loader,
// and encode/decode/save on what it loads or trains.
//
// Input: one mode byte, then the payload.
//   mode % 4 == 0 or 1: the payload is a tokenizer.bin followed by text. The file's length comes
//     from its header (24 + 4 * n_merges + 8, at most the payload); mode 1 rewrites its last 8
//     bytes with the FNV-1a 64 of the rest (the documented checksum), so that mutations reach
//     the merge validation.
//   mode % 4 == 2 or 3: the payload is text; a tokenizer of 257 + (mode >> 2) * 4 tokens is
//     trained on it (which may refuse: too few pairs).
//
// Properties, for every tokenizer that loads or trains:
//   - decode(encode(x)) == x for the text x, and every token is below the vocabulary size;
//   - save(load(f)) == f byte for byte (loaded), and load(save(t)) encodes x as t does (trained);
//   - its identity is the checksum its file ends with.
#include "fuzz_util.h"
#include "qtrain/tokenizer.h"

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// Encodes text with tok (tokens into *out, malloc'd) and checks decode(encode(x)) == x.
static size_t round_trip(const qt_tokenizer *tok, const uint8_t *text, size_t len, uint16_t **out) {
    uint16_t *tokens = NULL;
    size_t n = 0;
    if (qt_tokenizer_encode(tok, text, len, &tokens, &n) != QT_OK) fz_fail("encode failed");
    int V = qt_tokenizer_vocab_size(tok);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] >= V) fz_fail("token %u >= vocabulary %d", tokens[i], V);
        size_t blen = 0;
        if (!qt_tokenizer_token_bytes(tok, tokens[i], &blen) || blen == 0)
            fz_fail("token %u has no bytes", tokens[i]);
        bytes += blen;
    }
    if (bytes != len) fz_fail("tokens hold %zu bytes, the text %zu", bytes, len);
    char *back = NULL;
    size_t back_len = 0;
    if (qt_tokenizer_decode(tok, tokens, n, &back, &back_len) != QT_OK) fz_fail("decode failed");
    if (back_len != len || (len && memcmp(back, text, len) != 0) || back[back_len] != '\0')
        fz_fail("decode(encode(x)) != x for %zu bytes", len);
    free(back);
    *out = tokens;
    return n;
}

static void check_identity(const qt_tokenizer *tok, const uint8_t *file, size_t n) {
    qt_tokenizer_id id = qt_tokenizer_identity(tok);
    if (id.checksum != fz_le64(file + n - 8) || id.vocab_size != qt_tokenizer_vocab_size(tok))
        fz_fail("the identity is not the file's checksum");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    const uint8_t *payload = data + 1;
    size_t n = size - 1;
    char path[600], saved[600];
    fz_path(path, sizeof path, "tokenizer.bin");
    fz_path(saved, sizeof saved, "saved.bin");

    if (mode % 4 < 2) {
        size_t file_len = n;
        if (n >= 24) {
            uint64_t want = 24 + 4 * (uint64_t)le32(payload + 20) + 8;
            if (want < file_len) file_len = (size_t)want;
        }
        uint8_t *file = malloc(file_len + 1);
        if (!file) abort();
        memcpy(file, payload, file_len);
        if (mode % 4 == 1 && file_len >= 8)
            fz_put_le64(file + file_len - 8, fnv1a64(file, file_len - 8));
        fz_write(path, file, file_len);
        qt_tokenizer *tok = (qt_tokenizer *)1;
        if (qt_tokenizer_load(&tok, path) != QT_OK) {
            if (tok != NULL) fz_fail("a failed load returned a tokenizer");
            free(file);
            return 0;
        }
        check_identity(tok, file, file_len);
        if (qt_tokenizer_save(tok, saved) != QT_OK) fz_fail("save of a loaded tokenizer failed");
        size_t back_len = 0;
        uint8_t *back = fz_read(saved, &back_len);
        if (!back || back_len != file_len || memcmp(back, file, file_len) != 0)
            fz_fail("save(load(f)) != f (%zu bytes vs %zu)", back_len, file_len);
        free(back);
        uint16_t *tokens = NULL;
        round_trip(tok, payload + file_len, n - file_len, &tokens);
        free(tokens);
        qt_tokenizer_free(tok);
        free(file);
        return 0;
    }

    int vocab = 257 + (mode >> 2) * 4;
    qt_tokenizer *tok = NULL;
    if (qt_tokenizer_train(&tok, payload, n, vocab, NULL, NULL) != QT_OK) {
        if (tok != NULL) fz_fail("a failed training returned a tokenizer");
        return 0;
    }
    if (qt_tokenizer_vocab_size(tok) != vocab)
        fz_fail("trained %d tokens, asked %d", qt_tokenizer_vocab_size(tok), vocab);
    uint16_t *a = NULL, *b = NULL;
    size_t na = round_trip(tok, payload, n, &a);
    if (qt_tokenizer_save(tok, saved) != QT_OK) fz_fail("save of a trained tokenizer failed");
    qt_tokenizer *back = NULL;
    if (qt_tokenizer_load(&back, saved) != QT_OK) fz_fail("a saved tokenizer does not load");
    size_t file_len = 0;
    uint8_t *file = fz_read(saved, &file_len);
    if (!file || file_len < 32) fz_fail("cannot read the saved tokenizer");
    check_identity(back, file, file_len);
    check_identity(tok, file, file_len);
    size_t nb = round_trip(back, payload, n, &b);
    if (na != nb || (na && memcmp(a, b, na * sizeof *a) != 0))
        fz_fail("load(save(t)) encodes differently");
    free(file);
    free(a);
    free(b);
    qt_tokenizer_free(back);
    qt_tokenizer_free(tok);
    return 0;
}

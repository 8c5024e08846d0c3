// qtrain/tokenizer.h: a byte-level BPE tokenizer, trained, saved and loaded by qtrain itself.
//
// Tokens 0..255 are the 256 byte values; merge i (0-based) joins two existing tokens (a, b)
// into the new token 256 + i, up to vocab_size tokens (256 < vocab_size <= 65536, so every
// token fits a uint16 as in llm.c's shards). Any byte string, UTF-8 or not, encodes and
// decodes back to itself exactly.
//
// Pre-tokenization (version 1): the text is cut into "words" and merges never cross a word
// boundary. Bytes are classed as letters (A-Z, a-z and every byte >= 0x80, so UTF-8 sequences
// stay together), digits (0-9), whitespace (space, \t, \n, \v, \f, \r) and other (punctuation,
// control bytes). A word is, GPT-2-like but simpler:
//   - an optional single leading space plus a maximal run of letters, of digits, or of other
//     bytes (" the", " 42", " ...");
//   - a maximal run of whitespace, less its last byte when that byte is a space followed by a
//     non-whitespace byte (that space starts the next word: "a  b" -> "a", " ", " b").
// A word longer than QT_TOKENIZER_MAX_WORD bytes is cut into pieces of at most that many bytes
// (bounds the cost of encoding text without spaces).
//
// Training counts the unique words and their frequencies, then repeatedly merges the most
// frequent adjacent pair of tokens (pairs counted with multiplicity over the words); ties go
// to the smallest pair (first id, then second id), so training is deterministic. Pair counts
// are updated incrementally: a merge revisits only the words that contain its pair.
// Encoding applies the merges to each word in training order (lowest new id first).
//
// File format (tokenizer.bin, little-endian):
//   offset 0   char[8]   magic "QTBPETOK"
//   offset 8   uint32    version (1)
//   offset 12  uint32    pre-tokenizer version (1, as described above)
//   offset 16  uint32    vocab_size V
//   offset 20  uint32    n_merges = V - 256
//   offset 24  uint16[2] merges[n_merges]: (a, b), merge i creates token 256 + i, a, b < 256 + i
//   then       uint64    FNV-1a 64-bit hash of every preceding byte
// Written atomically (temporary file, fsync, rename).
//
// Special tokens: the masked-LM encoder's [PAD], [CLS], [SEP] and [MASK] are the ids V .. V + 3
// right after a tokenizer's V tokens (qtrain/mlm.h), reserved by the encoder's vocabulary
// (model.vocab_size = V + 4), not stored here: encoding never produces them, so one tokenizer
// and one set of shards serve decoders and encoders alike, and decode refuses them (>= V).
#ifndef QTRAIN_TOKENIZER_H
#define QTRAIN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QT_TOKENIZER_MAX_WORD 256
#define QT_TOKENIZER_MAX_VOCAB 65536

typedef struct qt_tokenizer qt_tokenizer;

// Trains on text[0..len) to vocab_size tokens. Fails with QT_ERR_ARG if vocab_size is out of
// range or the text runs out of pairs to merge before vocab_size (the message says how many
// tokens it could learn). progress, if not NULL, is called now and then with
// (merges done, merges total) and user.
qt_status qt_tokenizer_train(qt_tokenizer **out, const uint8_t *text, size_t len, int vocab_size,
                             void (*progress)(int done, int total, void *user), void *user);
qt_status qt_tokenizer_save(const qt_tokenizer *tok, const char *path);
// QT_ERR_IO if the file cannot be read; QT_ERR_FORMAT (naming the path and the problem) for a
// wrong magic, version, size (truncation), checksum or an invalid merge.
qt_status qt_tokenizer_load(qt_tokenizer **out, const char *path);
int qt_tokenizer_vocab_size(const qt_tokenizer *tok);

// *tokens (n_tokens,) is malloc'd (never NULL on success, even for len 0); the caller frees it.
qt_status qt_tokenizer_encode(const qt_tokenizer *tok, const uint8_t *text, size_t len,
                              uint16_t **tokens, size_t *n_tokens);
// *text (len + 1,) is malloc'd and NUL-terminated; *len excludes the NUL. QT_ERR_ARG for a
// token >= vocab_size.
qt_status qt_tokenizer_decode(const qt_tokenizer *tok, const uint16_t *tokens, size_t n,
                              char **text, size_t *len);
// The bytes of one token (not NUL-terminated, owned by tok), or NULL if token is out of range.
const uint8_t *qt_tokenizer_token_bytes(const qt_tokenizer *tok, int token, size_t *len);
// Merge i's pair: (*a, *b) joined into token 256 + i. QT_ERR_ARG if i is out of range.
qt_status qt_tokenizer_merge(const qt_tokenizer *tok, int i, int *a, int *b);
void qt_tokenizer_free(qt_tokenizer *tok);

// ---- identity ------------------------------------------------------------------------------
// Which tokenizer made a token stream: the FNV-1a 64-bit checksum that its tokenizer.bin ends
// with (of every byte before it: version, vocabulary size, merges) and its vocabulary size.
// `qtrain prepare` records it in prepare.json beside the shards, the trainer in each checkpoint
// ("qtrain.tokenizer"), and train --resume, eval and sample refuse a mismatch.
typedef struct {
    uint64_t checksum; // FNV-1a 64 of tokenizer.bin before its last 8 bytes (= those bytes, LE)
    int vocab_size;    // 257..65536; 0: unknown (shards made by another tool, older files)
} qt_tokenizer_id;

qt_tokenizer_id qt_tokenizer_identity(const qt_tokenizer *tok);
// "fnv1a64:0123456789abcdef (4096 tokens)", or "unknown" (vocab_size 0), into buf[cap].
void qt_tokenizer_id_format(qt_tokenizer_id id, char *buf, size_t cap);
// Checks that `used` (of `used_what`: "the shards in data2", "tokenizer data2/tokenizer.bin") is
// the tokenizer `trained` that checkpoint `ckpt` was trained with. Both known and different:
// QT_ERR_ARG, "tokenizer mismatch: <ckpt> was trained with <id>; <used_what>: <id>; <fix>, or
// pass --allow-tokenizer-mismatch to go on anyway"; with `allow`, QT_OK. *note (cap bytes) gets
// a line to print ("qtrain: note: ...") when the check cannot be made (either is unknown) or a
// mismatch was allowed, else "".
qt_status qt_tokenizer_id_check(qt_tokenizer_id trained, const char *ckpt, qt_tokenizer_id used,
                                const char *used_what, const char *fix, int allow, char *note,
                                size_t cap);

// Calls fn(word, word_len, user) for each pre-tokenization word of text[0..len) in order
// (exposed for tests and tools; the pieces concatenate back to the text).
void qt_tokenizer_split_words(const uint8_t *text, size_t len,
                              void (*fn)(const uint8_t *word, size_t word_len, void *user),
                              void *user);

#ifdef __cplusplus
}
#endif
#endif

// qtrain/data.h: token shards, the training data loader, and `qtrain prepare`.
//
// Shards use llm.c's format, so shards made for llm.c load here and ours load there:
//   int32 header[256] = { QT_SHARD_MAGIC, 1 (version: uint16 tokens), n_tokens, 0, ... }
//   uint16 tokens[n_tokens]
// little-endian; the file is exactly 1024 + 2 * n_tokens bytes.
//
// The data loader reads every shard `<dir>/<split>_*.bin` (sorted by name) as one token stream
// of N tokens, memory-mapped. A window is T + 1 consecutive tokens starting at a multiple of T
// (starts 0, T, 2T, ... <= N - T - 1, so windows overlap by one token and every token but the
// last is a target exactly once per epoch). A batch is B windows: inputs = window[0..T),
// targets = window[1..T+1). The windows of an epoch are visited in order (shuffle = 0) or in a
// uniformly random permutation drawn by Fisher-Yates from Philox keyed by (seed, epoch)
// (shuffle = 1). A batch that runs past the last window of an epoch continues with the first
// windows of the next, so every window is used exactly once per epoch. The position
// (epoch, index of the next window in the epoch's order) is all the state: tell/seek resume
// the exact same batches.
#ifndef QTRAIN_DATA_H
#define QTRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "qtrain/config.h"
#include "qtrain/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QT_SHARD_MAGIC 20240520
#define QT_SHARD_VERSION 1
#define QT_SHARD_HEADER_INTS 256
#define QT_SHARD_HEADER_BYTES (QT_SHARD_HEADER_INTS * 4)
// llm.c's header stores n_tokens in an int32.
#define QT_SHARD_MAX_TOKENS ((size_t)INT32_MAX)

// Writes path atomically (host/io/file.c): the nbufs buffers, in order, to a temporary file
// beside it, fsync, rename over path, fsync of the directory. Either the old file or the
// complete new one exists.
qt_status qt_data_write_atomic(const char *path, const void *const *bufs, const size_t *lens,
                               int nbufs);

// tokens (n,) -> path, atomically. QT_ERR_ARG if n > QT_SHARD_MAX_TOKENS.
qt_status qt_shard_write(const char *path, const uint16_t *tokens, size_t n);
// path -> *tokens (*n,) malloc'd (never NULL on success). QT_ERR_FORMAT, naming the path, for a
// wrong magic or version, or a size other than 1024 + 2n (truncated or padded: the message
// gives the expected and the actual size).
qt_status qt_shard_read(const char *path, uint16_t **tokens, size_t *n);
// Checks a shard's 1024-byte header against its file size and returns its token count in *n;
// the checks and messages of qt_shard_map.
qt_status qt_shard_check_header(const char *path, const uint8_t *header, uint64_t file_size,
                                size_t *n);

// A shard mapped read-only and checked (qt_shard_map), as qt_shard_read and the data loader
// read it.
typedef struct {
    void *map;              // the whole file (NULL for an empty one)
    size_t map_bytes;       // its size
    const uint16_t *tokens; // (n,) little-endian, inside map (NULL when n = 0)
    size_t n;               // tokens
} qt_shard_view;
// Maps path and checks its header and size as qt_shard_read does; release with qt_shard_unmap.
qt_status qt_shard_map(const char *path, qt_shard_view *v);
void qt_shard_unmap(qt_shard_view *v);

typedef struct {
    uint64_t epoch; // epochs completed before the next batch
    uint64_t index; // position of the next window in this epoch's order, in [0, windows)
} qt_data_pos;

typedef struct qt_dataloader qt_dataloader;

// Opens the split (see above). B, T >= 1; vocab_size in [1, 65536]: a token >= vocab_size is
// an error naming the shard, so shards from another tokenizer are caught. QT_ERR_ARG if no
// shard matches or the split has fewer than B * (T + 1) tokens (the message gives the count).
qt_status qt_dataloader_open(qt_dataloader **out, const char *dir, const char *split, int B,
                             int T, int vocab_size, uint64_t seed, int shuffle);
// The masked-LM mode of an encoder (qtrain/mlm.h) with vocabulary model_vocab (the tokenizer's
// V_text + QT_MLM_SPECIALS; <dir>/tokenizer.bin must have V_text tokens, and the shards' tokens
// must be below V_text). Windows are packed sequences ([CLS] sentences [SEP]s [PAD]s, the
// sentences cut at the newline tokens) in stream order, shuffled and resumed as above; a batch
// is B of them, masked with mlm_prob (inputs: the masked tokens, targets: the originals at the
// chosen positions, -1 elsewhere), lengths and token types beside them (qt_dataloader_lens).
// QT_ERR_ARG when the split packs into fewer than B sequences (the message gives the count).
qt_status qt_dataloader_open_mlm(qt_dataloader **out, const char *dir, const char *split, int B,
                                 int T, int model_vocab, float mlm_prob, uint64_t seed,
                                 int shuffle);
// The loader a config trains on: data.dir's split for train.batch_size x train.seq_len, masked-LM
// for model.arch = bert (data.mlm_prob), causal otherwise; seeded by train.seed.
qt_status qt_dataloader_open_for(qt_dataloader **out, const qt_config *cfg, const char *split,
                                 int shuffle);
// inputs (B, T), targets (B, T): overwritten with the next batch's token ids.
qt_status qt_dataloader_next(qt_dataloader *dl, int *inputs, int *targets);
// The last batch's sequence lengths (B) and token types (B, T) in the masked-LM mode (valid until
// the next call of qt_dataloader_next); NULL in the causal mode.
const int *qt_dataloader_lens(const qt_dataloader *dl);
const int *qt_dataloader_types(const qt_dataloader *dl);
qt_data_pos qt_dataloader_tell(const qt_dataloader *dl);
// QT_ERR_ARG if pos.index is not below qt_dataloader_num_windows().
qt_status qt_dataloader_seek(qt_dataloader *dl, qt_data_pos pos);
// Back to epoch 0, index 0 (for validation passes).
void qt_dataloader_rewind(qt_dataloader *dl);
uint64_t qt_dataloader_num_tokens(const qt_dataloader *dl);
uint64_t qt_dataloader_num_windows(const qt_dataloader *dl);
// Whole batches in one epoch: num_windows / B, rounded down.
uint64_t qt_dataloader_batches_per_epoch(const qt_dataloader *dl);
void qt_dataloader_free(qt_dataloader *dl);

// ---- prepare: text file -> tokenizer and shards ----------------------------------------------
// Writes <out_dir>/tokenizer.bin, train_000.bin, ... and val_000.bin, ... (shards of at most
// shard_tokens tokens), and <out_dir>/prepare.json. The text is split at a line boundary: the
// last val_fraction of it (0 < val_fraction < 1) is validation. The tokenizer is trained on the
// training part only, so validation stays unseen. Stale `train_*.bin` / `val_*.bin` files in
// out_dir (from an earlier prepare) are removed so the loader sees only the new shards.
// prepare.json holds the counts and val_unigram_entropy_nats: H = -mean over validation tokens
// of log p(tok), p from training-token counts with add-one smoothing, p = (c + 1) / (N + V):
// the loss of a model that ignores context, the baseline a trained model must beat.
// verbose: progress lines on stderr.
#define QT_PREPARE_SHARD_TOKENS ((size_t)100000000)

typedef struct {
    uint64_t train_bytes, val_bytes;
    uint64_t train_tokens, val_tokens;
    int train_shards, val_shards;
    double val_unigram_entropy; // nats per token
    double tokenizer_seconds;   // training the tokenizer
    double encode_seconds;      // encoding both splits
} qt_prepare_stats;

qt_status qt_prepare(const char *text_path, const char *out_dir, int vocab_size,
                     double val_fraction, int verbose);
// prepare.json also records the identity of the tokenizer that made the shards
// (qtrain/tokenizer.h):
//   "tokenizer": {"file": "tokenizer.bin", "fnv1a64": "<16 hex digits>", "vocab_size": V}
// qt_data_tokenizer_id reads it from <dir>/prepare.json into *id; id->vocab_size is 0 (unknown)
// when there is no prepare.json or it records no tokenizer (shards made by another tool or by
// an older qtrain). QT_ERR_FORMAT naming the file when prepare.json is not JSON or its
// "tokenizer" is malformed. qt_data_parse_tokenizer_id parses text[0, len) (named `path`).
qt_status qt_data_tokenizer_id(const char *dir, qt_tokenizer_id *id);
qt_status qt_data_parse_tokenizer_id(const char *text, size_t len, const char *path,
                                     qt_tokenizer_id *id);
// qt_prepare with an explicit shard size; stats may be NULL.
qt_status qt_prepare_ex(const char *text_path, const char *out_dir, int vocab_size,
                        double val_fraction, size_t shard_tokens, int verbose,
                        qt_prepare_stats *stats);

#ifdef __cplusplus
}
#endif
#endif

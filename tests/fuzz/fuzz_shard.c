// fuzz_shard.c: libFuzzer target for the token-shard reader (qt_shard_read, qt_shard_map,
// host/data/shard.c), the data loader over a directory of shards (host/data/dataloader.c), and
// the reader of a data directory's prepare.json (qt_data_tokenizer_id, host/data/prepare.c).
//
// Input: 4 bytes of parameters, then the payload.
//   p[0] mode: bit 0 set: the payload is prepare.json (the JSON reader's turn); else shards.
//              bit 1 set: the header's token count is rewritten to match the payload's size,
//              so that mutations get past the size check into the loader.
//              bit 2 set: the payload is split into two shards (train_000.bin, train_001.bin)
//              at p[3] * 2 tokens past the first header, exercising windows across shards.
//              bit 3: shuffle the windows (Philox permutation) or not.
//   p[1] B = 1 + p[1] % 4, T = 1 + (p[1] / 4) % 32 (batch and sequence length)
//   p[2] vocabulary size = 1 + p[2] * 257 (1 .. 65536; a token at or above it is an error)
//
// Properties beyond "no crash, no leak, no UB":
//   - qt_shard_read returns n = (file size - 1024) / 2 tokens, equal to the file's, or fails
//     with nothing returned;
//   - a loader that opens yields batches whose targets are the inputs shifted by one within each
//     window, every token below the vocabulary size; tell/seek replays the same batches;
//   - a prepare.json that parses records either nothing or a vocabulary of 257..65536.
#include "fuzz_util.h"
#include "qtrain/data.h"

#define MAX_BATCHES 64

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_shard(const char *path, const uint8_t *bytes, size_t n) {
    uint16_t *tokens = (uint16_t *)1;
    size_t count = 99;
    if (qt_shard_read(path, &tokens, &count) != QT_OK) {
        if (tokens != NULL || count != 0) fz_fail("a failed qt_shard_read returned tokens");
        return;
    }
    if (n < QT_SHARD_HEADER_BYTES || count != (n - QT_SHARD_HEADER_BYTES) / 2 ||
        le32(bytes) != QT_SHARD_MAGIC || count != le32(bytes + 8))
        fz_fail("qt_shard_read accepted %zu tokens from %zu bytes", count, n);
    if (count && memcmp(tokens, bytes + QT_SHARD_HEADER_BYTES, 2 * count) != 0)
        fz_fail("qt_shard_read returned other tokens than the file's");
    free(tokens);
}

static void check_loader(const char *dir, int B, int T, int vocab, int shuffle) {
    qt_dataloader *dl = NULL;
    if (qt_dataloader_open(&dl, dir, "train", B, T, vocab, 7, shuffle) != QT_OK) {
        if (dl != NULL) fz_fail("a failed qt_dataloader_open returned a loader");
        return;
    }
    int *in = malloc(sizeof(int) * (size_t)B * T), *tg = malloc(sizeof(int) * (size_t)B * T);
    int *in2 = malloc(sizeof(int) * (size_t)B * T), *tg2 = malloc(sizeof(int) * (size_t)B * T);
    if (!in || !tg || !in2 || !tg2) abort();
    uint64_t windows = qt_dataloader_num_windows(dl);
    uint64_t batches = 2 * windows / (uint64_t)B + 2; // past an epoch boundary
    if (batches > MAX_BATCHES) batches = MAX_BATCHES;
    for (uint64_t k = 0; k < batches; k++) {
        qt_data_pos pos = qt_dataloader_tell(dl);
        if (pos.index >= windows)
            fz_fail("position %llu of %llu windows", (unsigned long long)pos.index,
                    (unsigned long long)windows);
        if (qt_dataloader_next(dl, in, tg) != QT_OK) fz_fail("qt_dataloader_next failed");
        for (int i = 0; i < B * T; i++) {
            if (in[i] < 0 || in[i] >= vocab || tg[i] < 0 || tg[i] >= vocab)
                fz_fail("token %d/%d outside the vocabulary %d", in[i], tg[i], vocab);
            if (i % T != T - 1 && tg[i] != in[i + 1]) fz_fail("targets are not shifted inputs");
        }
        if (k % 5 == 0) { // replay this batch from its position
            qt_data_pos after = qt_dataloader_tell(dl);
            if (qt_dataloader_seek(dl, pos) != QT_OK) fz_fail("seek to a told position failed");
            if (qt_dataloader_next(dl, in2, tg2) != QT_OK) fz_fail("next after seek failed");
            if (memcmp(in, in2, sizeof(int) * (size_t)B * T) != 0 ||
                memcmp(tg, tg2, sizeof(int) * (size_t)B * T) != 0)
                fz_fail("a batch replayed after seek differs");
            qt_data_pos again = qt_dataloader_tell(dl);
            if (again.epoch != after.epoch || again.index != after.index)
                fz_fail("position after replay differs");
        }
    }
    qt_data_pos beyond = {0, windows};
    if (qt_dataloader_seek(dl, beyond) == QT_OK) fz_fail("seek beyond the windows accepted");
    free(in);
    free(tg);
    free(in2);
    free(tg2);
    qt_dataloader_free(dl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    const uint8_t mode = data[0];
    const int B = 1 + data[1] % 4, T = 1 + (data[1] / 4) % 32, vocab = 1 + data[2] * 257;
    const uint8_t *payload = data + 4;
    size_t n = size - 4;
    char dir[600], path[700], path2[700];
    fz_path(dir, sizeof dir, "data");
    fz_clear(dir, 0);
    mkdir(dir, 0700);

    if (mode & 1) {
        snprintf(path, sizeof path, "%s/prepare.json", dir);
        fz_write(path, payload, n);
        qt_tokenizer_id id = {1, 1};
        if (qt_data_tokenizer_id(dir, &id) == QT_OK) {
            if (id.vocab_size != 0 && (id.vocab_size < 257 || id.vocab_size > 65536))
                fz_fail("prepare.json read as a tokenizer of %d tokens", id.vocab_size);
        } else if (id.vocab_size != 0) {
            fz_fail("a failed prepare.json read left a tokenizer identity");
        }
        return 0;
    }

    uint8_t *buf = malloc(n + 1);
    if (!buf) abort();
    memcpy(buf, payload, n);
    size_t split = n;
    if ((mode & 4) && n > QT_SHARD_HEADER_BYTES) {
        size_t at = QT_SHARD_HEADER_BYTES + 2 * (size_t)data[3];
        if (at < n) split = at;
    }
    if ((mode & 2) && split >= 12) {
        uint32_t count = (uint32_t)((split - (split >= 1024 ? 1024 : split)) / 2);
        for (int i = 0; i < 4; i++)
            buf[8 + i] = (uint8_t)(count >> (8 * i));
    }
    snprintf(path, sizeof path, "%s/train_000.bin", dir);
    fz_write(path, buf, split);
    check_shard(path, buf, split);
    if (split < n) {
        // The second shard: the first one's header with its own count, then the rest.
        size_t rest = n - split;
        uint8_t *second = malloc(QT_SHARD_HEADER_BYTES + rest);
        if (!second) abort();
        memcpy(second, buf, QT_SHARD_HEADER_BYTES);
        memcpy(second + QT_SHARD_HEADER_BYTES, buf + split, rest);
        uint32_t count = (uint32_t)(rest / 2);
        for (int i = 0; i < 4; i++)
            second[8 + i] = (uint8_t)(count >> (8 * i));
        snprintf(path2, sizeof path2, "%s/train_001.bin", dir);
        fz_write(path2, second, QT_SHARD_HEADER_BYTES + rest);
        check_shard(path2, second, QT_SHARD_HEADER_BYTES + rest);
        free(second);
    }
    free(buf);
    check_loader(dir, B, T, vocab, (mode >> 3) & 1);
    return 0;
}

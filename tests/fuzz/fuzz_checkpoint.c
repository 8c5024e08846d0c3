// fuzz_checkpoint.c: libFuzzer target for the checkpoint reader: the container
// (qt_ckpt_read, host/io/checkpoint.c) and the training state on top of it
// (qt_train_state_read_info and qt_train_state_load, host/train/train_state.c: the meta entry,
// the stored config through the config parser, the tokenizer identity, the tensors of a model).
//
// Input: one mode byte, then the file. Mode bit 0 set: the last 8 bytes are overwritten with
// the file's qtsum64 (qt_ckpt_checksum) before reading, so that mutations get past the
// checksum and reach the index, the entries and the training state; clear: the file is read
// as is (the checksum must catch what the fuzzer changed).
//
// Properties, beyond "no crash, no leak, no UB" (ASan, UBSan, LSan):
//   - a failed read returns no checkpoint; a successful one has entries whose data lies inside
//     the file (every byte is read), that qt_ckpt_find finds by name, and that qt_ckpt_get
//     copies when asked for their own dtype and count and refuses for another count;
//   - a config read from a checkpoint validates; a recorded tokenizer has 257..65536 tokens;
//   - a training state that loads holds positive finite DQT scales.
#include <math.h>

#include "fuzz_model.h"
#include "fuzz_util.h"
#include "qtrain/checkpoint.h"
#include "qtrain/trainer.h"

#define MAX_GET_BYTES (1u << 22) // qt_ckpt_get copies at most this much per entry

static void check_entries(const qt_ckpt *ck, size_t file_size) {
    int n = qt_ckpt_count(ck);
    if (n < 0) fz_fail("qt_ckpt_count = %d", n);
    if (qt_ckpt_entry_at(ck, n) != NULL || qt_ckpt_entry_at(ck, -1) != NULL)
        fz_fail("qt_ckpt_entry_at out of range is not NULL");
    for (int i = 0; i < n; i++) {
        const qt_ckpt_entry *e = qt_ckpt_entry_at(ck, i);
        if (!e || !e->name) fz_fail("entry %d is missing", i);
        const qt_ckpt_entry *f = qt_ckpt_find(ck, e->name);
        if (!f || strcmp(f->name, e->name) != 0)
            fz_fail("entry '%s' is not found by name", e->name);
        size_t esize = qt_ckpt_dtype_size(e->dtype);
        if (esize == 0 || e->ndim < 0 || e->ndim > 4)
            fz_fail("entry '%s': bad dtype/ndim", e->name);
        int64_t numel = qt_ckpt_entry_numel(e);
        if (numel < 0) fz_fail("entry '%s': negative numel", e->name);
        uint64_t bytes = (uint64_t)numel * esize;
        if (bytes > file_size)
            fz_fail("entry '%s': %llu bytes in a %zu-byte file", e->name, (unsigned long long)bytes,
                    file_size);
        // Every byte of the entry must be readable (a pointer outside the map faults here).
        const volatile uint8_t *p = e->data;
        uint8_t acc = 0;
        for (uint64_t k = 0; k < bytes; k++)
            acc ^= p[k];
        (void)acc;
        if (bytes <= MAX_GET_BYTES) {
            void *buf = malloc(bytes + 1);
            if (!buf) abort();
            if (qt_ckpt_get(ck, e->name, e->dtype, (size_t)numel, buf) != QT_OK && f == e)
                fz_fail("qt_ckpt_get refused entry '%s' with its own dtype and count", e->name);
            if (f == e && bytes && memcmp(buf, e->data, bytes) != 0)
                fz_fail("qt_ckpt_get copied other bytes for '%s'", e->name);
            if (f == e && qt_ckpt_get(ck, e->name, e->dtype, (size_t)numel + 1, buf) == QT_OK)
                fz_fail("qt_ckpt_get accepted a wrong count for '%s'", e->name);
            free(buf);
        }
    }
    if (qt_ckpt_find(ck, "no such entry \x01") != NULL) fz_fail("found a missing name");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t mode = data[0];
    size_t n = size - 1;
    uint8_t *file = malloc(n + 1);
    if (!file) abort();
    memcpy(file, data + 1, n);
    if ((mode & 1) && n >= 8) fz_put_le64(file + n - 8, qt_ckpt_checksum(file, n - 8));
    char path[600];
    fz_path(path, sizeof path, "ckpt.bin");
    fz_write(path, file, n);
    free(file);

    qt_ckpt *ck = (qt_ckpt *)1;
    if (qt_ckpt_read(path, &ck) == QT_OK) {
        check_entries(ck, n);
        qt_ckpt_free(ck);
    } else if (ck != NULL) {
        fz_fail("a failed qt_ckpt_read left *out = %p", (void *)ck);
    }

    qt_config cfg;
    qt_tokenizer_id tok;
    if (qt_train_state_read_info(path, &cfg, &tok) == QT_OK) {
        if (qt_config_validate(&cfg) != QT_OK) fz_fail("a stored config read back invalid");
        if (tok.vocab_size != 0 && (tok.vocab_size < 257 || tok.vocab_size > 65536))
            fz_fail("tokenizer of %d tokens", tok.vocab_size);
    }

    static fz_model fm;
    fz_model_init(&fm);
    qt_train_progress progress;
    qt_optimizer *opt = (mode & 2) ? NULL : &fm.opt;
    if (qt_train_state_load(path, &fm.model, opt, opt ? &progress : NULL) == QT_OK) {
        if (!(fm.scales[1] > 0.0f && isfinite(fm.scales[1])))
            fz_fail("a loaded DQT scale is %g", (double)fm.scales[1]);
        if (opt && progress.tokenizer.vocab_size != 0 &&
            (progress.tokenizer.vocab_size < 257 || progress.tokenizer.vocab_size > 65536))
            fz_fail("progress tokenizer of %d tokens", progress.tokenizer.vocab_size);
    }
    return 0;
}

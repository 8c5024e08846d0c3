// mlm.c: the encoder's special tokens and BERT's masking (qtrain/mlm.h).
//
// Position t of a sequence draws three Philox words of (seed, stream): word 3t chooses it
// (u < prob), word 3t + 1 picks what a chosen token becomes (u < 0.8: [MASK]; u < 0.9: a random
// text token; else unchanged), word 3t + 2 the random token (uniform over [0, V_text), by
// rejection, so unbiased). Every draw is made whether or not it is used, so the choice at one
// position never shifts the draws of another.
#include "qtrain/mlm.h"

#include "base/philox.h"

// Philox stream tag of the masks ("mlmk"), apart from data order, init and dropout.
#define MLM_STREAM_TAG 0x6d6c6d6bu

qt_mlm_tokens qt_mlm_tokens_of(int model_vocab) {
    const int n = model_vocab - QT_MLM_SPECIALS;
    qt_mlm_tokens tk = {n, n + QT_MLM_PAD, n + QT_MLM_CLS, n + QT_MLM_SEP, n + QT_MLM_MASK};
    return tk;
}

uint64_t qt_mlm_stream(uint64_t epoch, uint64_t index) {
    return qt_stream_id(MLM_STREAM_TAG, epoch, index);
}

// A uniform text token for position t: rejection on 32-bit words keeps it exactly uniform.
static int random_text_token(const qt_mlm_tokens *tk, uint64_t seed, uint64_t stream, int t) {
    const uint64_t range = (uint64_t)tk->n_text;
    const uint64_t limit = (UINT64_C(1) << 32) - ((UINT64_C(1) << 32) % range);
    uint64_t r = 0;
    for (uint64_t attempt = 0; attempt < 16; attempt++) {
        // attempt 0 is word 3t + 2; retries (probability < 2^-16 each for V < 65536) go past
        // every sequence position's words
        uint64_t index = attempt == 0 ? 3 * (uint64_t)t + 2
                                      : (UINT64_C(1) << 40) + 16 * (uint64_t)t + attempt;
        r = qt_philox_u32(seed, stream, index);
        if (r < limit) break;
    }
    return (int)(r % range);
}

int qt_mlm_mask(const qt_mlm_tokens *tk, float prob, uint64_t seed, uint64_t stream, int *tokens,
                int *targets, int len, int T) {
    int chosen = 0;
    for (int t = 0; t < T; t++) {
        targets[t] = -1;
        const int tok = tokens[t];
        if (t >= len || tok >= tk->n_text) continue; // padding, [CLS], [SEP]: never chosen
        if (!(qt_philox_uniform(seed, stream, 3 * (uint64_t)t) < prob)) continue;
        targets[t] = tok;
        chosen++;
        const float u = qt_philox_uniform(seed, stream, 3 * (uint64_t)t + 1);
        if (u < 0.8f) tokens[t] = tk->mask;
        else if (u < 0.9f) tokens[t] = random_text_token(tk, seed, stream, t);
    }
    return chosen;
}

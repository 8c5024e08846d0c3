// qtrain/mlm.h: the masked-LM data of the encoder (model.arch = bert): its special tokens,
// sentence packing and masking.
//
// Special tokens. The encoder's vocabulary is the tokenizer's V_text tokens (qtrain/tokenizer.h:
// the 256 bytes and the BPE merges) followed by QT_MLM_SPECIALS reserved ids:
//   [PAD] = V_text, [CLS] = V_text + 1, [SEP] = V_text + 2, [MASK] = V_text + 3,
// so model.vocab_size = V_text + 4. BPE never produces them (its tokens are < V_text), so the
// shards of a plain `qtrain prepare` serve the encoder unchanged, and the tokenizer's decode
// refuses them as it refuses any id outside its vocabulary.
//
// Packing (BERT's pretraining data, without next-sentence prediction): the token stream is cut
// into sentences at the tokens whose bytes hold a newline (the King James text has a verse per
// line; the newline tokens themselves are dropped). A sequence of T tokens is
//   [CLS] s_1 [SEP] s_2 [SEP] ... s_k [SEP] [PAD] ... [PAD]
// with as many whole sentences as fit (a sentence longer than T - 2 tokens alone is cut to
// T - 2); its length (the tokens before the padding) is what the encoder attends. Token types:
// 0 up to and including the first [SEP], 1 after it (BERT's segments A and B), 0 on padding.
//
// Masking (Devlin et al. 2019): each non-special token of a sequence is chosen with probability
// mlm_prob (0.15); a chosen token becomes [MASK] with probability 0.8, a uniformly random text
// token with 0.1, and stays itself with 0.1. Targets are the original ids at the chosen
// positions and -1 (ignored by the loss) everywhere else. Every draw is a Philox word keyed by
// (seed, stream, position), so a batch's masks are a pure function of the seed and the data
// position (the loader passes its window index and epoch as the stream: resumed and repeated
// evaluation passes see the same masks).
#ifndef QTRAIN_MLM_H
#define QTRAIN_MLM_H

#include <stdint.h>

#include "base/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { QT_MLM_PAD = 0, QT_MLM_CLS, QT_MLM_SEP, QT_MLM_MASK, QT_MLM_SPECIALS };
// Token types of the encoder's embeddings (segments A and B).
#define QT_MLM_TOKEN_TYPES 2

// The special ids of an encoder with vocabulary `model_vocab` (= V_text + QT_MLM_SPECIALS).
typedef struct {
    int n_text;               // V_text: ids [0, n_text) are text tokens
    int pad, cls, sep, mask;  // n_text + QT_MLM_*
} qt_mlm_tokens;
qt_mlm_tokens qt_mlm_tokens_of(int model_vocab);

// Masks one sequence in place. tokens (T): the packed sequence, changed at the chosen positions;
// targets (T): overwritten, the original id where chosen, else -1; len: the sequence's length
// (positions >= len are padding and never chosen, nor are [CLS] and [SEP]). Returns the number
// of chosen positions. prob in (0, 1).
int qt_mlm_mask(const qt_mlm_tokens *tk, float prob, uint64_t seed, uint64_t stream, int *tokens,
                int *targets, int len, int T);

// The stream of sequence `index` of epoch `epoch` (distinct from every other Philox use).
uint64_t qt_mlm_stream(uint64_t epoch, uint64_t index);

#ifdef __cplusplus
}
#endif
#endif

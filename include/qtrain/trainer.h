// qtrain/trainer.h: the training loop, its checkpoints and its outputs.
//
// Everything a run produces goes under out_dir:
//   config.conf    the resolved config (every key), loadable with --config
//   metrics.jsonl  one JSON object per line: {"type":"train", step, loss, lr, tokens_per_s,
//                  grad_norm, ...} every train.log_every steps and {"type":"eval", step,
//                  val_loss, val_ppl, max_inf_norm, avg_kurtosis, layers: [...]} per evaluation
//   ckpt.bin       the latest checkpoint (model, AdamW moments, step, data position, config),
//                  replaced atomically
#ifndef QTRAIN_TRAINER_H
#define QTRAIN_TRAINER_H

#include "qtrain/config.h"
#include "qtrain/loss_scaler.h"
#include "qtrain/model.h"
#include "qtrain/optimizer.h"
#include "qtrain/tokenizer.h"

struct qt_comm;

typedef struct {
    qt_backend *backend;     // where to train; NULL: the CPU backend with train.threads
    struct qt_comm *comm;    // data-parallel ranks (qtrain/dist.h); NULL: one process
    const char *out_dir;     // created if missing
    const char *resume_from; // checkpoint to continue from, or NULL
    int stop_at_step;        // stop (and checkpoint) once this many steps are done; 0: off
    int quiet;               // no progress lines on stderr
    int *stop_signal;        // out, optional: SIGINT or SIGTERM when a signal stopped the run
                             // before its last step (after its checkpoint), else 0
    int allow_tokenizer_mismatch; // resume even when data.dir's shards were made by another
                                  // tokenizer than the checkpoint's (refused by default)
    // Optional observer, called on every rank after each optimizer step (`step` steps done),
    // before logging; an error stops the run.
    qt_status (*on_step)(void *user, int step, const qt_model *model, const qt_optimizer *opt);
    void *on_step_user;
} qt_train_opts;

// Trains cfg as described above. With resume_from, the parameters, optimizer moments, step
// and data position come from the checkpoint, and the run continues bit-exactly (CPU).
// Checkpoints record the identity of the tokenizer that made data.dir's shards (its
// prepare.json, qt_data_tokenizer_id); a resume on shards of another tokenizer is refused
// (qt_tokenizer_id_check) unless allow_tokenizer_mismatch.
// SIGINT/SIGTERM finish the current step, write a checkpoint and return QT_OK with
// *opts->stop_signal set (`qtrain train` then exits 128 + the signal: 130, 143).
qt_status qt_train(const qt_config *cfg, const qt_train_opts *opts);

// ---- checkpoints (host/train/train_state.c) ----

typedef struct {
    int step;            // optimizer steps done
    uint64_t data_epoch; // training loader position
    uint64_t data_index;
    double loss_scale;   // the loss scaler's state (fp16); 0 when the checkpoint has none
    double loss_scale_clean_steps;
    double skipped_steps;
    qt_tokenizer_id tokenizer; // what made the training shards; vocab_size 0: unknown
} qt_train_progress;

// Writes model parameters (by tensor name), AdamW moments, progress and the config text.
qt_status qt_train_state_save(const char *path, const qt_model *model, const qt_optimizer *opt,
                              const qt_train_progress *progress);
// Reads only the config stored in a checkpoint (to build the model it describes).
qt_status qt_train_state_read_config(const char *path, qt_config *cfg);
// The config and, when tok is not NULL, the tokenizer identity a checkpoint records
// (tok->vocab_size 0 when it records none), in one read.
qt_status qt_train_state_read_info(const char *path, qt_config *cfg, qt_tokenizer_id *tok);
// Restores parameters (and, if opt != NULL, the moments and *progress) into a model built from
// the checkpoint's config. Errors name the tensor that is missing or mis-shaped.
qt_status qt_train_state_load(const char *path, qt_model *model, qt_optimizer *opt,
                              qt_train_progress *progress);

#endif

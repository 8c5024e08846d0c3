// test_cli.c: the `qtrain` program on bad input: one `qtrain: error:` line on stderr naming
// the problem, a non-zero exit, and nothing half-written. Also a tiny prepare -> train ->
// eval -> sample round trip through the real binary.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qtrain/data.h"
#include "cli_run.h"
#include "testutil.h"

static char *workdir;

// Runs `qtrain ARGS` in workdir after the shell commands `prefix` (e.g. a ulimit); stderr
// into err; returns the exit code.
static int run_qtrain_after(const char *prefix, const char *args, char *err, size_t err_len) {
    return qt_cli_run(workdir, prefix, args, err, err_len);
}

static int run_qtrain(const char *args, char *err, size_t err_len) {
    return run_qtrain_after("", args, err, err_len);
}

// Asserts a failed run ended with exactly one error line containing `needle`. Lines before it
// may only be qtrain's notes (e.g. which backend --device auto chose), never another error.
static void expect_error_after(const char *prefix, const char *args, const char *needle) {
    char err[8192];
    int rc = run_qtrain_after(prefix, args, err, sizeof err);
    ck_assert_msg(rc != 0, "qtrain %s: exit 0, expected failure", args);
    size_t len = strlen(err);
    ck_assert_msg(len > 0 && err[len - 1] == '\n', "qtrain %s: stderr '%s'", args, err);
    err[len - 1] = '\0';
    char *last = strrchr(err, '\n');
    last = last ? last + 1 : err;
    ck_assert_msg(strncmp(last, "qtrain: error: ", 15) == 0, "qtrain %s: last line '%s'", args,
                  last);
    ck_assert_msg(strstr(err, "error") == last + 8, "qtrain %s: more than one error: '%s'", args,
                  err);
    for (char *line = err; line < last; line = strchr(line, '\n') + 1)
        ck_assert_msg(strncmp(line, "qtrain: ", 8) == 0, "qtrain %s: stray stderr '%s'", args, err);
    ck_assert_msg(strstr(last, needle) != NULL, "qtrain %s: '%s' lacks '%s'", args, last, needle);
}

static void expect_error(const char *args, const char *needle) {
    expect_error_after("", args, needle);
}

static void write_text_corpus(const char *path) {
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    for (int i = 0; i < 400; i++)
        fprintf(f, "And the %s said unto the %s, %d times: let there be light.\n",
                i % 3 ? "LORD" : "king", i % 5 ? "people" : "prophet", i % 7);
    fclose(f);
}

static const char *tiny =
    "--set model.n_layer=1 --set model.d_model=16 --set model.n_head=2 --set model.d_ff=32 "
    "--set model.max_seq_len=16 --set model.vocab_size=300 --set train.batch_size=2 "
    "--set train.seq_len=16 --set train.max_steps=3 --set train.eval_every=3 "
    "--set train.eval_batches=1 --set train.warmup_steps=1 --set data.dir=data";

static void setup(void) {
    workdir = qt_test_tmpdir("cli");
    char path[1024], err[8192];
    snprintf(path, sizeof path, "%s/corpus.txt", workdir);
    write_text_corpus(path);
    int rc = run_qtrain("prepare --input corpus.txt --out data --vocab-size 300 --val-fraction 0.2",
                        err, sizeof err);
    ck_assert_msg(rc == 0, "prepare failed: %s", err);
    char args[2048];
    snprintf(args, sizeof args, "train %s --out run --quiet", tiny);
    rc = run_qtrain(args, err, sizeof err);
    ck_assert_msg(rc == 0, "train failed: %s", err);
}

static void teardown(void) {
    qt_test_rmtree(workdir);
    free(workdir);
}

// The last run's stdout (stdout.txt in workdir) into out (n bytes, NUL-terminated).
static void read_stdout(char *out, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/stdout.txt", workdir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    fclose(f);
}

START_TEST(test_round_trip) {
    char err[8192];
    ck_assert_msg(run_qtrain("eval --ckpt run/ckpt.bin --batches 1", err, sizeof err) == 0, "%s",
                  err);
    char out[8192];
    read_stdout(out, sizeof out);
    ck_assert_msg(strstr(out, "val_loss") && strstr(out, "max_inf_norm") &&
                  strstr(out, "avg_kurtosis"), "eval output: %s", out);
    ck_assert_msg(run_qtrain("sample --ckpt run/ckpt.bin --prompt 'And the' --tokens 5", err,
                             sizeof err) == 0, "%s", err);
    struct stat sb;
    char path[1024];
    snprintf(path, sizeof path, "%s/run/config.conf", workdir);
    ck_assert(stat(path, &sb) == 0);
    snprintf(path, sizeof path, "%s/run/metrics.jsonl", workdir);
    ck_assert(stat(path, &sb) == 0 && sb.st_size > 0);
}
END_TEST

// The text of the last training line's step and loss in a run's metrics.jsonl.
static void last_train_loss(const char *rel, char *out, size_t cap) {
    char path[1024], line[4096];
    snprintf(path, sizeof path, "%s/%s", workdir, rel);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    out[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        const char *step = strstr(line, "\"type\":\"train\""), *loss = strstr(line, "\"loss\":");
        if (!step || !loss) continue;
        const char *st = strstr(line, "\"step\":");
        const char *end = strchr(loss, ',');
        snprintf(out, cap, "%.*s %.*s", st ? (int)(strchr(st, ',') - st) : 0, st ? st : "",
                 end ? (int)(end - loss) : 0, loss);
    }
    fclose(f);
    ck_assert_msg(out[0] != '\0', "%s has no training line", path);
}

// Reads `qtrain eval`'s report in stdout.txt: the max inf-norm and the largest per-layer
// inf-norm of the layer outputs alone (max_out) and of the outputs, attn and ffn (max_all).
static void eval_inf_norms(double *reported, double *max_out, double *max_all) {
    char out[8192];
    read_stdout(out, sizeof out);
    const char *at = strstr(out, "max_inf_norm ");
    ck_assert_msg(at && sscanf(at, "max_inf_norm %lf", reported) == 1, "eval: %s", out);
    *max_out = *max_all = 0.0;
    int rows = 0;
    for (const char *line = strstr(out, "layer |"); line && (line = strchr(line, '\n'));) {
        line++;
        int l;
        double o, a, ff;
        if (sscanf(line, "%d | %lf %lf %lf |", &l, &o, &a, &ff) != 4) break;
        rows++;
        *max_out = fmax(*max_out, o);
        *max_all = fmax(*max_all, fmax(o, fmax(a, ff)));
    }
    ck_assert_msg(rows > 0, "no per-layer rows in: %s", out);
}

// PAPERS.md section 4: max inf-norm is the max over the measured modules: the layer outputs
// (residual stream) of a pre-LN model; in a post-LN encoder, whose layer output is bounded by
// a LayerNorm, also the attention and FFN outputs. A large init makes the FFN outputs exceed
// the LayerNorm's, so the two rules give different numbers and each assertion can fail.
START_TEST(test_max_inf_norm_modules) {
    char err[8192], args[4096];
    const char *src = getenv("QT_SOURCE_DIR");
    ck_assert_msg(src != NULL, "QT_SOURCE_DIR is not set (run through ctest)");
    const char *small = "--set model.n_layer=2 --set model.d_model=16 --set model.n_head=2 "
                        "--set model.d_ff=32 --set model.max_seq_len=32 --set model.vocab_size=304 "
                        "--set train.batch_size=2 --set train.seq_len=32 --set train.max_steps=1 "
                        "--set train.eval_every=0 --set train.warmup_steps=1 "
                        "--set model.init_std=1 --set train.lr=1e-9 --set data.dir=data --quiet";
    double reported, max_out, max_all;
    snprintf(args, sizeof args, "train --config '%s/configs/bert-6l.conf' %s --out infpost", src,
             small);
    ck_assert_msg(run_qtrain(args, err, sizeof err) == 0, "bert train failed: %s", err);
    ck_assert_msg(run_qtrain("eval --ckpt infpost/ckpt.bin --batches 2", err, sizeof err) == 0,
                  "%s", err);
    eval_inf_norms(&reported, &max_out, &max_all);
    ck_assert_msg(max_all > max_out + 0.1, "post-LN: the FFN (%.2f) does not exceed the layer "
                  "outputs (%.2f): the test cannot tell the rules apart", max_all, max_out);
    ck_assert_msg(fabs(reported - max_all) <= 0.011, "post-LN max_inf_norm %.2f, want %.2f",
                  reported, max_all);
    snprintf(args, sizeof args, "train --config '%s/configs/bert-6l.conf' %s "
             "--set model.norm_position=pre --out infpre", src, small);
    ck_assert_msg(run_qtrain(args, err, sizeof err) == 0, "pre-LN bert train failed: %s", err);
    ck_assert_msg(run_qtrain("eval --ckpt infpre/ckpt.bin --batches 2", err, sizeof err) == 0,
                  "%s", err);
    eval_inf_norms(&reported, &max_out, &max_all);
    ck_assert_msg(fabs(reported - max_out) <= 0.011, "pre-LN max_inf_norm %.2f, want %.2f",
                  reported, max_out);
}
END_TEST

// The encoder preset end to end: a few steps of configs/bert-6l.conf shrunk by --set, its
// checkpoint evaluated (MLM loss, perplexity, outlier metrics); sample and export refuse it.
START_TEST(test_encoder_round_trip) {
    char err[8192], args[4096];
    const char *src = getenv("QT_SOURCE_DIR");
    ck_assert_msg(src != NULL, "QT_SOURCE_DIR is not set (run through ctest)");
    snprintf(args, sizeof args,
             "train --config '%s/configs/bert-6l.conf' --set model.n_layer=2 "
             "--set model.d_model=16 "
             "--set model.n_head=2 --set model.d_ff=32 --set model.max_seq_len=32 "
             "--set model.vocab_size=304 --set train.batch_size=2 --set train.seq_len=32 "
             "--set train.max_steps=3 --set train.eval_every=3 --set train.eval_batches=2 "
             "--set train.warmup_steps=1 --set attn.softmax=ncs --set attn.gate=linear "
             "--set data.dir=data --out bert --quiet", src);
    ck_assert_msg(run_qtrain(args, err, sizeof err) == 0, "bert train failed: %s", err);
    ck_assert_msg(run_qtrain("eval --ckpt bert/ckpt.bin --batches 2", err, sizeof err) == 0, "%s",
                  err);
    char out[8192];
    read_stdout(out, sizeof out);
    double loss = 0, ppl = 0;
    const char *at = strstr(out, "val_loss ");
    ck_assert_msg(at && sscanf(at, "val_loss %lf | val_ppl %lf", &loss, &ppl) == 2, "eval: %s",
                  out);
    // an untrained 304-token MLM: the loss is near ln 304 = 5.72 and ppl = exp(loss)
    ck_assert_msg(loss > 4.5 && loss < 7.0 && fabs(ppl - exp(loss)) <= 1e-2 * ppl, "eval: %s", out);
    ck_assert_msg(strstr(out, "max_inf_norm") && strstr(out, "avg_kurtosis") &&
                  strstr(out, "gate_mean"), "eval output: %s", out);
    expect_error("sample --ckpt bert/ckpt.bin --prompt 'And the' --tokens 5",
                 "masked-LM encoder");
    expect_error("export --ckpt bert/ckpt.bin --format safetensors --out bert/hf",
                 "masked-LM encoder");
    // resume: 2 steps, stop, resume to 4 == 4 steps straight (same data, masks, dropout)
    const char *small = "--set model.n_layer=1 --set model.d_model=16 --set model.n_head=2 "
                        "--set model.d_ff=32 --set model.max_seq_len=32 --set model.vocab_size=304 "
                        "--set train.batch_size=2 --set train.seq_len=32 --set train.max_steps=4 "
                        "--set train.log_every=1 --set train.eval_every=0 "
                        "--set train.eval_batches=1 --set train.warmup_steps=1 --set data.dir=data";
    snprintf(args, sizeof args, "train --config '%s/configs/bert-6l.conf' %s --out straight "
             "--quiet", src, small);
    ck_assert_msg(run_qtrain(args, err, sizeof err) == 0, "%s", err);
    snprintf(args, sizeof args, "train --config '%s/configs/bert-6l.conf' %s --stop-at 2 "
             "--out halves --quiet", src, small);
    ck_assert_msg(run_qtrain(args, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(run_qtrain("train --resume halves/ckpt.bin --out halves --quiet", err,
                             sizeof err) == 0, "resume: %s", err);
    char straight[256], halves[256];
    last_train_loss("straight/metrics.jsonl", straight, sizeof straight);
    last_train_loss("halves/metrics.jsonl", halves, sizeof halves);
    ck_assert_msg(strcmp(straight, halves) == 0, "step 4 of the encoder: %s straight, %s resumed",
                  straight, halves);
    // the vocabulary must be the tokenizer's plus the 4 special tokens
    snprintf(args, sizeof args,
             "train --config '%s/configs/bert-6l.conf' --set model.n_layer=1 "
             "--set model.d_model=16 "
             "--set model.n_head=2 --set model.d_ff=32 --set model.max_seq_len=32 "
             "--set model.vocab_size=300 --set train.seq_len=32 --set data.dir=data --out bert2",
             src);
    expect_error(args, "model.vocab_size = 304");
}
END_TEST

START_TEST(test_bad_config_values) {
    char args[2048];
    snprintf(args, sizeof args, "train %s --set model.nlayer=3 --out bad", tiny);
    expect_error(args, "model.nlayer");
    snprintf(args, sizeof args, "train %s --set model.n_head=3 --out bad", tiny);
    expect_error(args, "n_head");
    snprintf(args, sizeof args, "train %s --set attn.softmax=clipped --set attn.gamma=0.1 --out bad",
             tiny);
    expect_error(args, "gamma");
    snprintf(args, sizeof args, "train %s --set attn.softmax=clipped --set attn.zeta=0.9 --out bad",
             tiny);
    expect_error(args, "zeta");
    expect_error("train --config does/not/exist.conf", "does/not/exist.conf");
    expect_error("train --frobnicate", "--frobnicate");
    expect_error("eval", "--ckpt");
    expect_error("sample --ckpt run/ckpt.bin --tokens abc", "--tokens");
    expect_error("train --device tpu", "--device tpu");
    snprintf(args, sizeof args, "train %s --set train.precision=fp16 --device cpu --out bad", tiny);
    expect_error(args, "train.precision");
    // An impossible vocabulary: prepare fails (after its progress lines), leaving no --out
    // directory.
    char err[8192];
    ck_assert(run_qtrain("prepare --input corpus.txt --out bad/data --vocab-size 60000", err,
                         sizeof err) != 0);
    ck_assert_msg(strstr(err, "qtrain: error: ") && strstr(err, "60000"), "stderr: %s", err);
    // Nothing was created for the rejected runs.
    char path[1024];
    struct stat sb;
    snprintf(path, sizeof path, "%s/bad", workdir);
    ck_assert_msg(stat(path, &sb) != 0, "a rejected run left %s behind", path);
}
END_TEST

START_TEST(test_truncated_shard) {
    char src[1024], dst[1024], cmd[4096], args[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/trunc' && cp '%s'/data/*.bin '%s/trunc/'", workdir,
             workdir, workdir);
    ck_assert(system(cmd) == 0);
    snprintf(src, sizeof src, "%s/trunc/train_000.bin", workdir);
    struct stat sb;
    ck_assert(stat(src, &sb) == 0);
    ck_assert(truncate(src, sb.st_size - 7) == 0);
    (void)dst;
    snprintf(args, sizeof args, "train %s --set data.dir=trunc --out bad", tiny);
    expect_error(args, "train_000.bin");
    snprintf(src, sizeof src, "%s/bad", workdir);
    ck_assert_msg(stat(src, &sb) != 0, "a rejected run left %s behind", src);
}
END_TEST

START_TEST(test_bad_checkpoints) {
    char path[1024], cmd[4096];
    // Wrong magic: a file that is not a checkpoint.
    snprintf(path, sizeof path, "%s/notackpt.bin", workdir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 4096; i++) fputc(i & 0xff, f);
    fclose(f);
    expect_error("eval --ckpt notackpt.bin", "notackpt.bin");
    // A flipped byte in the middle of a real checkpoint: checksum mismatch.
    snprintf(cmd, sizeof cmd, "cp '%s/run/ckpt.bin' '%s/flipped.bin'", workdir, workdir);
    ck_assert(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/flipped.bin", workdir);
    f = fopen(path, "r+b");
    ck_assert(f != NULL);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, size / 2, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    expect_error("eval --ckpt flipped.bin", "checksum");
    expect_error("train --resume flipped.bin --out again", "checksum");
    expect_error("eval --ckpt missing.bin", "missing.bin");
}
END_TEST

// A '#' in a quoted value of the stored config: the run trains, then its checkpoint loads for
// eval, sample and resume (the stored config goes through the config module's parser).
START_TEST(test_hash_in_data_dir) {
    char cmd[4096], args[4096], err[8192];
    snprintf(cmd, sizeof cmd, "cp -r '%s/data' '%s/data#1'", workdir, workdir);
    ck_assert(system(cmd) == 0);
    snprintf(args, sizeof args, "train %s --set 'data.dir=data#1' --out hashrun --quiet", tiny);
    ck_assert_msg(run_qtrain(args, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(run_qtrain("eval --ckpt hashrun/ckpt.bin --batches 1", err, sizeof err) == 0,
                  "eval: %s", err);
    ck_assert_msg(run_qtrain("sample --ckpt hashrun/ckpt.bin --tokens 3", err, sizeof err) == 0,
                  "sample: %s", err);
    ck_assert_msg(run_qtrain("train --resume hashrun/ckpt.bin --set train.max_steps=4 --out "
                             "hashrun --quiet",
                             err, sizeof err) == 0,
                  "resume: %s", err);
}
END_TEST

// SIGINT and SIGTERM stop a run after its step and checkpoint, with the shell's exit codes for
// those signals (130, 143) rather than the 0 of a finished run; the checkpoint then loads.
START_TEST(test_signal_exit_codes) {
    const int sigs[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        char args[4096], metrics[1024], err[8192];
        snprintf(args, sizeof args,
                 "train %s --set train.max_steps=1000000 --set train.log_every=1 --out sig%d", tiny,
                 i);
        snprintf(metrics, sizeof metrics, "%s/sig%d/metrics.jsonl", workdir, i);
        pid_t pid = qt_cli_spawn(workdir, args);
        int started = qt_cli_wait_for_text(metrics, "\"type\":\"train\"");
        kill(pid, sigs[i]);
        int status = 0;
        ck_assert(waitpid(pid, &status, 0) == pid);
        ck_assert_msg(started, "signal %d: no training line within 60 s", sigs[i]);
        ck_assert_msg(WIFEXITED(status), "signal %d: qtrain did not exit (killed by %d)", sigs[i],
                      WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        ck_assert_msg(WEXITSTATUS(status) == 128 + sigs[i], "signal %d: exit %d, want %d", sigs[i],
                      WEXITSTATUS(status), 128 + sigs[i]);
        snprintf(args, sizeof args, "eval --ckpt sig%d/ckpt.bin --batches 1", i);
        ck_assert_msg(run_qtrain(args, err, sizeof err) == 0, "signal %d: eval: %s", sigs[i], err);
    }
}
END_TEST

// An allocation that fails names the config key that drives its size: the activations grow with
// train.batch_size (x train.seq_len), the parameters with model.d_model and friends. Memory is
// capped with ulimit -v, so the failure is the same on any machine.
START_TEST(test_out_of_memory_names_key) {
    const char *cap = "ulimit -v 3000000 &&"; // 3 GB of address space
    char args[4096];
    // --device cpu: a CUDA driver reserves more address space than the cap allows.
    snprintf(args, sizeof args,
             "train %s --set train.batch_size=1000000 --device cpu --out oom --quiet", tiny);
    expect_error_after(cap, args, "lower train.batch_size");
    snprintf(args, sizeof args,
             "train %s --set model.d_model=16384 --set model.d_ff=65536 --device cpu --out oom "
             "--quiet",
             tiny);
    expect_error_after(cap, args, "model.d_model");
    struct stat sb;
    char path[1024];
    snprintf(path, sizeof path, "%s/oom", workdir);
    ck_assert_msg(stat(path, &sb) != 0, "a rejected run left %s behind", path);
}
END_TEST

static long file_size(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

// The checkpoint records which tokenizer made its training shards: eval on shards of another
// tokenizer, sample with another tokenizer and resume on other shards are refused, naming both
// identities and the override flag; where nothing is recorded the check is skipped, said in a
// note; and sampling with a smaller tokenizer never drops a drawn token.
START_TEST(test_tokenizer_identity) {
    char err[8192], args[4096];
    ck_assert(run_qtrain("prepare --input corpus.txt --out data2 --vocab-size 280 "
                         "--val-fraction 0.2",
                         err, sizeof err) == 0);
    ck_assert(run_qtrain("prepare --input corpus.txt --out small --vocab-size 257 "
                         "--val-fraction 0.2",
                         err, sizeof err) == 0);
    expect_error("eval --ckpt run/ckpt.bin --data data2 --batches 1", "--allow-tokenizer-mismatch");
    expect_error("eval --ckpt run/ckpt.bin --data data2 --batches 1", "(280 tokens)");
    expect_error("eval --ckpt run/ckpt.bin --data data2 --batches 1", "(300 tokens)");
    ck_assert_msg(run_qtrain("eval --ckpt run/ckpt.bin --data data2 --batches 1 "
                             "--allow-tokenizer-mismatch",
                             err, sizeof err) == 0,
                  "%s", err);
    ck_assert_msg(strstr(err, "qtrain: note: tokenizer mismatch allowed"), "stderr: %s", err);
    expect_error("sample --ckpt run/ckpt.bin --tokenizer data2/tokenizer.bin --tokens 3",
                 "tokenizer mismatch: run/ckpt.bin was trained with fnv1a64:");
    snprintf(args, sizeof args,
             "train --resume run/ckpt.bin --set data.dir=data2 "
             "--set train.max_steps=4 --out resumed --quiet");
    expect_error(args, "--allow-tokenizer-mismatch");
    // The run's own data and tokenizer pass without a note.
    ck_assert(run_qtrain("eval --ckpt run/ckpt.bin --batches 1", err, sizeof err) == 0);
    ck_assert_msg(strstr(err, "tokenizer") == NULL, "stderr: %s", err);
    // Shards made by another tool (no prepare.json): evaluated, with a note.
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && cp -r data other && rm other/prepare.json", workdir);
    ck_assert(system(cmd) == 0);
    ck_assert_msg(
        run_qtrain("eval --ckpt run/ckpt.bin --data other --batches 1", err, sizeof err) == 0, "%s",
        err);
    ck_assert_msg(strstr(err, "cannot be checked"), "stderr: %s", err);
    // A 257-token tokenizer for a 300-token model: 200 tokens drawn at temperature 100 over the
    // whole vocabulary, each decodes to at least one byte, so the output holds >= 200 bytes
    // after the prompt (tokens 257..299 were silently dropped before).
    ck_assert_msg(run_qtrain("sample --ckpt run/ckpt.bin --tokenizer small/tokenizer.bin "
                             "--allow-tokenizer-mismatch --prompt x --tokens 200 "
                             "--temperature 100 --top-k 0",
                             err, sizeof err) == 0,
                  "%s", err);
    ck_assert_msg(strstr(err, "drawing only among the tokenizer's 257"), "stderr: %s", err);
    long out = file_size("stdout.txt");
    ck_assert_msg(out >= 1 + 200 + 1, "sample printed %ld bytes for 200 tokens", out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_encoder_round_trip);
    tcase_add_test(tc, test_max_inf_norm_modules);
    tcase_add_test(tc, test_bad_config_values);
    tcase_add_test(tc, test_truncated_shard);
    tcase_add_test(tc, test_bad_checkpoints);
    tcase_add_test(tc, test_hash_in_data_dir);
    tcase_add_test(tc, test_signal_exit_codes);
    tcase_add_test(tc, test_out_of_memory_names_key);
    tcase_add_test(tc, test_tokenizer_identity);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

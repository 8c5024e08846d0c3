// test_cli_ptq.c: `qtrain eval --quant` through the real binary on a tiny run (prepare ->
// train 30 steps -> eval): the table shows the full-precision, fake-quantized and INT8-GEMM
// perplexities; the JSON form's fake and INT8 perplexities agree within 1% and its FP
// perplexity is the plain `qtrain eval --json` one; bad flag values are one `qtrain: error:`
// line naming the flag and the fix.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

static char *workdir;

// Runs `qtrain ARGS`, stdout to out (out_len bytes) and stderr to err; returns the exit code.
static int run_qtrain(const char *args, char *out, size_t out_len, char *err, size_t err_len) {
    const char *bin = getenv("QT_BINARY_DIR");
    ck_assert_msg(bin != NULL, "QT_BINARY_DIR is not set (run through ctest)");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/qtrain' %s >'%s/stdout.txt' 2>'%s/stderr.txt'",
             workdir, bin, args, workdir, workdir);
    int status = system(cmd);
    ck_assert(status != -1 && WIFEXITED(status));
    const char *names[2] = {"stdout.txt", "stderr.txt"};
    char *bufs[2] = {out, err};
    size_t lens[2] = {out_len, err_len};
    for (int i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", workdir, names[i]);
        FILE *f = fopen(path, "r");
        ck_assert(f != NULL);
        size_t n = fread(bufs[i], 1, lens[i] - 1, f);
        bufs[i][n] = '\0';
        fclose(f);
    }
    return WEXITSTATUS(status);
}

// A failed run whose stderr ends with one `qtrain: error:` line containing needle, every
// earlier line a `qtrain: ` note.
static void expect_error(const char *args, const char *needle) {
    char out[8192], err[8192];
    int rc = run_qtrain(args, out, sizeof out, err, sizeof err);
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
    ck_assert_msg(strstr(last, needle) != NULL, "qtrain %s: '%s' lacks '%s'", args, last, needle);
}

static double json_number(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    ck_assert_msg(p != NULL, "no %s in %s", key, json);
    return strtod(p + strlen(pat), NULL);
}

static void setup(void) {
    workdir = qt_test_tmpdir("cli_ptq");
    char path[1024], out[8192], err[8192];
    snprintf(path, sizeof path, "%s/corpus.txt", workdir);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    for (int i = 0; i < 600; i++)
        fprintf(f, "The %s told the %s %d stories about the %s.\n", i % 3 ? "miller" : "smith",
                i % 5 ? "children" : "king", i % 7, i % 2 ? "river" : "mountain");
    fclose(f);
    int rc = run_qtrain("prepare --input corpus.txt --out data --vocab-size 300 "
                        "--val-fraction 0.2",
                        out, sizeof out, err, sizeof err);
    ck_assert_msg(rc == 0, "prepare failed: %s", err);
    rc = run_qtrain("train --set model.n_layer=2 --set model.d_model=32 --set model.n_head=2 "
                    "--set model.d_ff=64 --set model.max_seq_len=16 --set model.vocab_size=300 "
                    "--set train.batch_size=4 --set train.seq_len=16 --set train.max_steps=30 "
                    "--set train.eval_every=30 --set train.eval_batches=1 "
                    "--set train.warmup_steps=3 --set train.lr=3e-3 --set train.threads=2 "
                    "--set data.dir=data --out run --quiet",
                    out, sizeof out, err, sizeof err);
    ck_assert_msg(rc == 0, "train failed: %s", err);
}

static void teardown(void) {
    qt_test_rmtree(workdir);
    free(workdir);
}

START_TEST(test_quant_table_and_json) {
    static char out[16384], err[16384];
    int rc = run_qtrain("eval --ckpt run/ckpt.bin --device cpu --batches 3 --quant w8a8 "
                        "--calib-batches 4",
                        out, sizeof out, err, sizeof err);
    ck_assert_msg(rc == 0, "eval --quant w8a8 failed: %s", err);
    ck_assert_msg(strstr(out, "full precision") && strstr(out, "W8A8 fake-quantized") &&
                      strstr(out, "W8A8 INT8 GEMM") && strstr(out, "val_ppl") &&
                      strstr(out, "relative ppl difference") && strstr(out, "tied embeddings"),
                  "eval --quant table: %s", out);
    ck_assert_msg(strstr(err, "calibrating activation ranges: batch 4/4"),
                  "no calibration progress on stderr: %s", err);

    // JSON: the numbers themselves
    rc = run_qtrain("eval --ckpt run/ckpt.bin --device cpu --batches 3 --json", out, sizeof out,
                    err, sizeof err);
    ck_assert_msg(rc == 0, "eval --json failed: %s", err);
    const double plain_ppl = json_number(out, "val_ppl");
    const char *presets[3] = {"w8a8", "w4a8", "w6a6"};
    for (int i = 0; i < 3; i++) {
        char args[512];
        snprintf(args, sizeof args,
                 "eval --ckpt run/ckpt.bin --device cpu --batches 3 --json --quant %s "
                 "--calib-batches 4%s",
                 presets[i], i == 1 ? " --act-range percentile --weight-range mse" : "");
        rc = run_qtrain(args, out, sizeof out, err, sizeof err);
        ck_assert_msg(rc == 0, "qtrain %s failed: %s", args, err);
        ck_assert_msg(strstr(out, "\"type\":\"ptq\""), "qtrain %s: %s", args, out);
        const double fp = json_number(out, "fp_ppl"), fake = json_number(out, "fake_ppl");
        const double int8 = json_number(out, "int8_ppl"), diff = json_number(out, "int8_vs_fake");
        printf("cli_ptq %s: fp %.4f fake %.4f int8 %.4f |int8 - fake| / fake = %.3g\n",
               presets[i], fp, fake, int8, diff);
        fflush(stdout);
        // %.6g on both sides: the same double printed the same way
        ck_assert_msg(fp == plain_ppl, "qtrain %s: fp ppl %.6g != plain eval %.6g", args, fp,
                      plain_ppl);
        ck_assert_msg(fake > 1.0 && int8 > 1.0, "qtrain %s: ppl %g %g", args, fake, int8);
        ck_assert_msg(diff <= 0.01 && (int8 - fake) / fake <= 0.01 && (fake - int8) / fake <= 0.01,
                      "qtrain %s: INT8 ppl %.6g vs fake %.6g differ by more than 1%%", args, int8,
                      fake);
    }
}
END_TEST

START_TEST(test_quant_bad_flags) {
    expect_error("eval --ckpt run/ckpt.bin --quant w9a9", "use w8a8, w4a8 or w6a6");
    expect_error("eval --ckpt run/ckpt.bin --quant", "--quant needs a value");
    expect_error("eval --ckpt run/ckpt.bin --quant w8a8 --calib-batches 0", "--calib-batches 0");
    expect_error("eval --ckpt run/ckpt.bin --quant w8a8 --calib-batches x", "--calib-batches x");
    expect_error("eval --ckpt run/ckpt.bin --quant w8a8 --act-range max", "minmax or percentile");
    expect_error("eval --ckpt run/ckpt.bin --quant w8a8 --weight-range l2", "absmax or mse");
    expect_error("eval --ckpt run/ckpt.bin --calib-batches 4", "add --quant");
    expect_error("eval --ckpt run/ckpt.bin --act-range minmax", "add --quant");
    // no training shards to calibrate on: the loader names the split
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/valonly' && cp '%s'/data/val_*.bin '%s/valonly/'",
             workdir, workdir, workdir);
    ck_assert(system(cmd) == 0);
    expect_error("eval --ckpt run/ckpt.bin --device cpu --data valonly --quant w8a8", "train");
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli_ptq");
    TCase *tc = tcase_create("cli_ptq");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_quant_table_and_json);
    tcase_add_test(tc, test_quant_bad_flags);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

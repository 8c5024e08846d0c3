// test_cli_study.c: `qtrain study` through the real binary on a tiny config, two variants:
//   - two seeds: results.md has a row per variant with a spread, metrics.json parses and
//     holds every run, every PNG is a PNG (signature, IHDR of the size asked, IEND);
//   - a rerun retrains nothing (the runs' files are byte for byte and mtime unchanged, and the
//     log says so), and without gnuplot on PATH it fails saying what to install;
//   - SIGINT mid-study exits 130 without a report; the rerun resumes the interrupted run from
//     its checkpoint (never from step 0) and completes;
//   - SIGKILL mid-run: the rerun resumes from the periodic checkpoint;
//   - a bad variant name fails naming the valid ones, and leaves nothing behind.
// Needs gnuplot (scripts/install_deps.sh installs gnuplot-nox); without it the suite reports
// itself skipped (exit 77).
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host/io/file.h"
#include "host/io/json.h"
#include "cli_run.h"
#include "testutil.h"

static char *workdir;

static const char *tiny =
    "--set model.n_layer=2 --set model.d_model=16 --set model.n_head=2 --set model.d_ff=32 "
    "--set model.max_seq_len=16 --set model.vocab_size=300 --set train.batch_size=2 "
    "--set train.seq_len=16 --set train.warmup_steps=1 --set train.eval_batches=1 "
    "--set train.threads=1 --set data.dir=data --eval-batches 1 --calib-batches 2";

// Runs `PREFIX qtrain ARGS` in workdir; stderr into err (err_len bytes). Returns the exit code.
static int run_qtrain_env(const char *prefix, const char *args, char *err, size_t err_len) {
    return qt_cli_run(workdir, prefix, args, err, err_len);
}

static int run_qtrain(const char *args, char *err, size_t err_len) {
    return run_qtrain_env("", args, err, err_len);
}

static void setup(void) {
    workdir = qt_test_tmpdir("cli_study");
    char path[1024], err[16384];
    snprintf(path, sizeof path, "%s/corpus.txt", workdir);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    for (int i = 0; i < 600; i++)
        fprintf(f, "The %s told the %s %d stories about the %s.\n", i % 3 ? "miller" : "smith",
                i % 5 ? "children" : "king", i % 7, i % 2 ? "river" : "mountain");
    fclose(f);
    int rc = run_qtrain("prepare --input corpus.txt --out data --vocab-size 300 --val-fraction 0.2",
                        err, sizeof err);
    ck_assert_msg(rc == 0, "prepare failed: %s", err);
}

static void teardown(void) {
    qt_test_rmtree(workdir);
    free(workdir);
}

static int exists(const char *rel) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", workdir, rel);
    struct stat sb;
    return stat(path, &sb) == 0;
}

static char *read_rel(const char *rel, size_t *len) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", workdir, rel);
    uint8_t *data = NULL;
    ck_assert_msg(qt_io_read_file(path, "test file", NULL, (size_t)1 << 30, &data, len) == QT_OK,
                  "cannot read %s", path);
    return (char *)data;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// A PNG file: the 8-byte signature, IHDR first with the width and height asked, IEND last.
static void check_png(const char *rel, uint32_t width, uint32_t height) {
    size_t len = 0;
    unsigned char *p = (unsigned char *)read_rel(rel, &len);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ck_assert_msg(len > 8 + 25 + 12, "%s: %zu bytes is no PNG", rel, len);
    ck_assert_msg(memcmp(p, sig, 8) == 0, "%s: no PNG signature", rel);
    ck_assert_msg(be32(p + 8) == 13 && memcmp(p + 12, "IHDR", 4) == 0, "%s: IHDR is not first",
                  rel);
    ck_assert_msg(be32(p + 16) == width && be32(p + 20) == height, "%s: %ux%u, want %ux%u", rel,
                  be32(p + 16), be32(p + 20), width, height);
    ck_assert_msg(memcmp(p + len - 8, "IEND", 4) == 0, "%s: does not end in IEND", rel);
    free(p);
}

static const char *const runs[4] = {"vanilla-s0", "vanilla-s1", "clipped-s0", "clipped-s1"};
static const char *const run_files[3] = {"metrics.jsonl", "ckpt.bin", "eval.json"};

typedef struct {
    char *data;
    size_t len;
    struct timespec mtime;
} snapshot;

static void take(snapshot *s, const char *rel) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", workdir, rel);
    struct stat sb;
    ck_assert_msg(stat(path, &sb) == 0, "%s is missing", rel);
    s->mtime = sb.st_mtim;
    s->data = read_rel(rel, &s->len);
}

START_TEST(test_study_outputs_and_resume) {
    char args[4096], err[65536];
    snprintf(args, sizeof args,
             "study %s --set train.max_steps=12 --set train.log_every=4 --set train.eval_every=6 "
             "--variants vanilla,clipped --seeds 2 --out st",
             tiny);
    int rc = run_qtrain(args, err, sizeof err);
    ck_assert_msg(rc == 0, "study failed (%d): %.1500s", rc, err);
    ck_assert_msg(strstr(err, "ETA"), "no ETA in the progress: %s", err);
    // The table: a row per variant, mean and spread over the two seeds.
    size_t len = 0;
    char *md = read_rel("st/results.md", &len);
    ck_assert_msg(strstr(md, "| vanilla | 2 |") && strstr(md, "| clipped | 2 |"), "%s", md);
    ck_assert_msg(strstr(md, " ± "), "no spread in the table: %s", md);
    ck_assert_msg(strstr(md, "W8A8 ppl (INT8 GEMM)"), "no INT8 column: %s", md);
    free(md);
    // metrics.json: JSON, every run with its series and W8A8 perplexities.
    char *js = read_rel("st/metrics.json", &len);
    qt_json *root = NULL;
    ck_assert_msg(qt_json_parse(js, len, "metrics.json", &root) == QT_OK, "%s", qt_last_error());
    const qt_json *jr = qt_json_get(root, "runs"), *jv = qt_json_get(root, "variants");
    ck_assert(jr && jr->type == QT_JSON_ARRAY && jr->n == 4);
    ck_assert(jv && jv->type == QT_JSON_ARRAY && jv->n == 2);
    for (int i = 0; i < 4; i++) {
        const qt_json *r = &jr->items[i];
        const qt_json *name = qt_json_get(r, "name"), *ppl = qt_json_get(r, "w8a8_int8_ppl");
        const qt_json *train = qt_json_get(r, "train"), *evals = qt_json_get(r, "evals");
        ck_assert(name && name->type == QT_JSON_STRING && strcmp(name->str, runs[i]) == 0);
        ck_assert_msg(ppl && ppl->type == QT_JSON_NUMBER && ppl->number > 1.0, "run %d ppl", i);
        ck_assert_msg(train && train->n == 4 && evals && evals->n == 2, "run %d series", i);
    }
    qt_json_free(root);
    free(js);
    check_png("st/plots/loss.png", 1200, 500);
    check_png("st/plots/outliers.png", 1200, 500);
    check_png("st/plots/layer_inf_norm.png", 900, 500);
    check_png("st/plots/hist.png", 900, 500);

    // A rerun trains and evaluates nothing: every run's files stay as they were.
    snapshot before[4][3];
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 3; k++) {
            char rel[256];
            snprintf(rel, sizeof rel, "st/runs/%s/%s", runs[r], run_files[k]);
            take(&before[r][k], rel);
        }
    struct timespec pause = {0, 20 * 1000 * 1000}; // mtimes of rewritten files would differ
    nanosleep(&pause, NULL);
    rc = run_qtrain(args, err, sizeof err);
    ck_assert_msg(rc == 0, "rerun failed (%d): %.1500s", rc, err);
    for (int r = 0; r < 4; r++) {
        char line[256];
        snprintf(line, sizeof line, "%s: finished earlier", runs[r]);
        ck_assert_msg(strstr(err, line), "rerun: no '%s' in %s", line, err);
    }
    ck_assert_msg(!strstr(err, "training 12 steps"), "rerun trained: %s", err);
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 3; k++) {
            char rel[256];
            snprintf(rel, sizeof rel, "st/runs/%s/%s", runs[r], run_files[k]);
            snapshot now;
            take(&now, rel);
            ck_assert_msg(now.len == before[r][k].len &&
                              memcmp(now.data, before[r][k].data, now.len) == 0,
                          "rerun changed %s", rel);
            ck_assert_msg(now.mtime.tv_sec == before[r][k].mtime.tv_sec &&
                              now.mtime.tv_nsec == before[r][k].mtime.tv_nsec,
                          "rerun rewrote %s", rel);
            free(now.data);
            free(before[r][k].data);
        }
    // Without gnuplot the study says what to install (the table is still written).
    rc = run_qtrain_env("PATH=/nonexistent", args, err, sizeof err);
    ck_assert_msg(rc == 1 && strstr(err, "qtrain: error: gnuplot is not installed") &&
                      strstr(err, "gnuplot-nox"),
                  "without gnuplot: exit %d, %s", rc, err);
    ck_assert(exists("st/results.md"));
}
END_TEST

// Waits (up to 60 s) until `rel` (in workdir) holds `needle`.
static int wait_for_text(const char *rel, const char *needle) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", workdir, rel);
    return qt_cli_wait_for_text(path, needle);
}

START_TEST(test_study_sigint_then_rerun) {
    char args[4096], err[65536];
    snprintf(args, sizeof args,
             "study %s --set train.max_steps=600 --set train.log_every=20 "
             "--set train.eval_every=200 --variants vanilla,clipped --out st",
             tiny);
    pid_t pid = qt_cli_spawn(workdir, args);
    int started = wait_for_text("stderr.txt", "vanilla-s0 | step 100/");
    kill(pid, SIGINT);
    int status = 0;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(started, "no progress line of step 100 within 60 s");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "SIGINT: status %d (want 130)",
                  status);
    ck_assert_msg(wait_for_text("stderr.txt", "stopped by SIGINT"), "no stop message");
    ck_assert_msg(!exists("st/results.md"), "a stopped study wrote its report");
    int rc = run_qtrain(args, err, sizeof err);
    ck_assert_msg(rc == 0, "rerun failed (%d): %.1500s", rc, err);
    // The interrupted run went on from its checkpoint: no run started over from step 0.
    ck_assert_msg(!strstr(err, "vanilla-s0: training"), "vanilla-s0 retrained from 0: %.1500s", err);
    ck_assert_msg(strstr(err, "vanilla-s0: resuming from") || strstr(err, "vanilla-s0: trained "
                                                                           "earlier") ||
                      strstr(err, "vanilla-s0: finished earlier"),
                  "rerun: %.1500s", err);
    ck_assert(exists("st/results.md") && exists("st/metrics.json") && exists("st/plots/hist.png"));
    // The resumed run's log holds each training line once, up to the last step.
    size_t len = 0;
    char *log = read_rel("st/runs/vanilla-s0/metrics.jsonl", &len);
    int last = 0, lines = 0;
    for (char *p = strstr(log, "\"type\":\"train\",\"step\":"); p;
         p = strstr(p + 1, "\"type\":\"train\",\"step\":")) {
        int step = atoi(p + strlen("\"type\":\"train\",\"step\":"));
        ck_assert_msg(step > last, "metrics.jsonl: step %d after %d", step, last);
        last = step;
        lines++;
    }
    ck_assert_msg(last == 600 && lines >= 30, "metrics.jsonl: last step %d, %d lines", last, lines);
    free(log);
}
END_TEST

// A run killed without a chance to checkpoint (SIGKILL) resumes from the study's periodic
// checkpoint (train.ckpt_every defaults to train.eval_every), not from step 0: killed after
// the progress line of step 300, it restarts from step 200 or 300.
START_TEST(test_study_kill_then_rerun) {
    char args[4096], err[65536];
    snprintf(args, sizeof args,
             "study %s --set train.max_steps=600 --set train.log_every=20 "
             "--set train.eval_every=100 --variants vanilla --out st",
             tiny);
    pid_t pid = qt_cli_spawn(workdir, args);
    int started = wait_for_text("stderr.txt", "vanilla-s0 | step 300/");
    kill(pid, SIGKILL);
    int status = 0;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(started, "no progress line of step 300 within 60 s");
    int rc = run_qtrain(args, err, sizeof err);
    ck_assert_msg(rc == 0, "rerun failed (%d): %.1500s", rc, err);
    ck_assert_msg(!strstr(err, "vanilla-s0: training"), "vanilla-s0 retrained from 0: %.1500s", err);
    const char *resumed = strstr(err, "vanilla-s0: resuming from");
    const char *at = resumed ? strstr(resumed, " at step ") : NULL;
    ck_assert_msg(at || strstr(err, "trained earlier"), "rerun: %.1500s", err);
    if (at) {
        int step = atoi(at + strlen(" at step "));
        ck_assert_msg(step >= 200 && step % 100 == 0, "resumed at step %d: %.1500s", step, err);
    }
    ck_assert(exists("st/results.md"));
}
END_TEST

// An encoder study: the evaluation reads masked-LM batches (lengths, token types) for the
// validation, the histograms and the W8A8 calibration alike; a causal loader there is refused
// by the encoder ("lens NULL"), which is how this failed before.
START_TEST(test_study_encoder) {
    char args[4096], err[16384];
    const char *src = getenv("QT_SOURCE_DIR");
    ck_assert_msg(src != NULL, "QT_SOURCE_DIR is not set (run through ctest)");
    snprintf(args, sizeof args,
             "study --config '%s/configs/bert-6l.conf' %s --set model.vocab_size=304 --set model.max_seq_len=32 "
             "--set train.seq_len=32 --set train.max_steps=2 --set train.eval_every=2 "
             "--variants vanilla,gated-linear --out enc --no-plots --quiet", src, tiny);
    int rc = run_qtrain(args, err, sizeof err);
    ck_assert_msg(rc == 0, "exit %d: %.3000s", rc, err);
    size_t len = 0;
    char *text = read_rel("enc/runs/vanilla-s0/eval.json", &len);
    ck_assert_msg(text && strstr(text, "\"int8_ppl\":") && !strstr(text, "\"int8_ppl\":null"),
                  "eval.json: %s", text ? text : "(missing)");
    free(text);
    ck_assert(exists("enc/runs/gated-linear-s0/eval.json") && exists("enc/results.md"));
}
END_TEST

START_TEST(test_study_bad_variant) {
    char args[4096], err[16384];
    snprintf(args, sizeof args, "study %s --variants vanilla,ncs-typo --out bad", tiny);
    int rc = run_qtrain(args, err, sizeof err);
    ck_assert_msg(rc == 1, "exit %d: %.1500s", rc, err);
    const char *last = strstr(err, "qtrain: error: ");
    ck_assert_msg(last && strstr(last, "'ncs-typo' is not a variant") &&
                      strstr(last, "vanilla, clipped, ncs, gated-linear, gated-mlp"),
                  "stderr: %s", err);
    ck_assert_msg(!exists("bad"), "a refused study left its directory behind");
    rc = run_qtrain("study --variants vanilla --seeds 0 --out bad", err, sizeof err);
    ck_assert_msg(rc == 1 && strstr(err, "--seeds"), "--seeds 0: exit %d, %s", rc, err);
    ck_assert(!exists("bad"));
}
END_TEST

// 1 when gnuplot is an executable on PATH.
static int have_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

int main(void) {
    if (!have_gnuplot()) {
        printf("test_cli_study skipped: gnuplot is not installed (apt-get install gnuplot-nox; "
               "scripts/install_deps.sh installs it)\n");
        return 77;
    }
    Suite *s = suite_create("cli_study");
    TCase *tc = tcase_create("cli_study");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_study_outputs_and_resume);
    tcase_add_test(tc, test_study_sigint_then_rerun);
    tcase_add_test(tc, test_study_kill_then_rerun);
    tcase_add_test(tc, test_study_bad_variant);
    tcase_add_test(tc, test_study_encoder);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

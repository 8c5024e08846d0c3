// test_study.c: the study's parts in process (also under ASan: test_study_asan):
//   - the histogram grid: every value lies in its bin's bounds, the bins tile the line in
//     order, the grid is symmetric;
//   - the variant table: every variant applies to the default config and validates, sets the
//     attention keys it names, and unknown names are not found;
//   - a whole study (two variants, two seeds, no plots) on synthetic shards: the report names
//     every run, and a second call, which reads every result back from eval.json, writes
//     results.md and metrics.json byte for byte as the first did (the files are the one source
//     of the results); refusals: an unknown variant, a variant named twice, a run directory
//     trained with another config.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/io/file.h"
#include "qtrain/backend.h"
#include "qtrain/names.h"
#include "qtrain/study.h"
#include "host/study/study_internal.h"
#include "testutil.h"

START_TEST(test_hist_grid) {
    double lo, hi, prev_hi = -INFINITY;
    for (int i = 0; i < HIST_BINS; i++) {
        study_hist_bounds(i, &lo, &hi);
        ck_assert_msg(lo < hi, "bin %d: [%g, %g)", i, lo, hi);
        if (i > 0) ck_assert_msg(lo == prev_hi, "bin %d starts at %g, bin %d ended at %g", i, lo,
                                 i - 1, prev_hi);
        prev_hi = hi;
        double mlo, mhi;
        study_hist_bounds(HIST_BINS - 1 - i, &mlo, &mhi);
        ck_assert_msg(mlo == -hi && mhi == -lo, "bin %d is not the mirror of bin %d", i,
                      HIST_BINS - 1 - i);
    }
    // Values inside the grid fall in the bin whose bounds hold them (the middle bin's upper
    // bound is inclusive of nothing above 2^MIN_EXP; the first bin past it starts there).
    uint64_t state = 7;
    for (int k = 0; k < 100000; k++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        double e = HIST_MIN_EXP - 2 + (double)(state >> 11) / 9007199254740992.0 *
                                          (HIST_MAX_EXP - HIST_MIN_EXP + 2);
        float x = (float)((state & 1 ? -1.0 : 1.0) * exp2(e));
        int b = study_hist_bin(x);
        study_hist_bounds(b, &lo, &hi);
        if (fabs(x) >= ldexp(1.0, HIST_MAX_EXP)) {
            ck_assert(b == 0 || b == HIST_BINS - 1);
            continue;
        }
        int inside = b == HIST_HALF ? (x > lo && x < hi) : x > 0 ? (x >= lo && x < hi)
                                                                 : (x > lo && x <= hi);
        ck_assert_msg(inside, "x = %.9g in bin %d [%.9g, %.9g)", (double)x, b, lo, hi);
    }
    ck_assert_int_eq(study_hist_bin(0.0f), HIST_HALF);
    ck_assert_int_eq(study_hist_bin(1e30f), HIST_BINS - 1);
    ck_assert_int_eq(study_hist_bin(-1e30f), 0);
}
END_TEST

START_TEST(test_variant_table) {
    char names[512];
    qt_study_variant_names(names, sizeof names);
    for (int i = 0; i < qt_study_n_variants; i++) {
        const qt_study_variant *v = &qt_study_variants[i];
        ck_assert_ptr_eq(qt_study_variant_find(v->name), v);
        ck_assert_msg(strstr(names, v->name), "%s missing from '%s'", v->name, names);
        // From a base config with every attention change set, the variant decides.
        qt_config cfg;
        qt_config_defaults(&cfg);
        ck_assert(qt_config_set(&cfg, "attn.gate=mlp", "test") == QT_OK);
        ck_assert(qt_config_set(&cfg, "attn.sink=learned", "test") == QT_OK);
        ck_assert_msg(qt_study_variant_apply(&cfg, v) == QT_OK, "%s: %s", v->name, qt_last_error());
        ck_assert_msg(qt_config_validate(&cfg) == QT_OK, "%s: %s", v->name, qt_last_error());
        int gated = strncmp(v->name, "gated-", 6) == 0;
        ck_assert_msg(gated == (cfg.gate != QT_GATE_NONE), "%s: gate %s", v->name,
                      qt_name(&qt_gate_names, cfg.gate));
        int sink = strcmp(v->name, "off-by-one") == 0 || strcmp(v->name, "learned-sink") == 0;
        ck_assert_msg(sink == (cfg.sink != QT_SINK_NONE), "%s: sink", v->name);
        ck_assert_msg((strcmp(v->name, "clipped") == 0) == (cfg.softmax == QT_SOFTMAX_CLIPPED) &&
                          (strcmp(v->name, "ncs") == 0) == (cfg.softmax == QT_SOFTMAX_NCS),
                      "%s: softmax %s", v->name, qt_name(&qt_softmax_names, cfg.softmax));
    }
    ck_assert_ptr_null(qt_study_variant_find("Vanilla"));
    ck_assert_ptr_null(qt_study_variant_find("gated"));
}
END_TEST

static char *read_all(const char *path, size_t *len) {
    uint8_t *data = NULL;
    ck_assert_msg(qt_io_read_file(path, "test", NULL, (size_t)1 << 28, &data, len) == QT_OK, "%s",
                  qt_last_error());
    return (char *)data;
}

START_TEST(test_study_in_process) {
    char *dir = qt_test_tmpdir("study");
    char data[1024], out[1024], path[1200], set_data[1100];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(out, sizeof out, "%s/st", dir);
    ck_assert(qt_io_make_dirs(data, 0777, "test data") == QT_OK);
    qt_test_write_synthetic_shards(data);
    snprintf(set_data, sizeof set_data, "data.dir=%s", data);
    const char *sets[] = {"model.n_layer=2", "model.d_model=16", "model.n_head=2",
                          "model.d_ff=32", "model.max_seq_len=16", "model.vocab_size=257",
                          "train.batch_size=2", "train.seq_len=16", "train.max_steps=6",
                          "train.warmup_steps=1", "train.eval_every=3", "train.log_every=2",
                          set_data};
    const char *variants[] = {"vanilla", "gated-linear"};
    qt_backend be;
    ck_assert(qt_backend_cpu_init(&be, 1) == QT_OK);
    int sig = -1;
    qt_study_opts o = {.sets = sets,
                       .n_sets = (int)(sizeof sets / sizeof sets[0]),
                       .variants = variants,
                       .n_variants = 2,
                       .seeds = 2,
                       .out_dir = out,
                       .eval_batches = 1,
                       .calib_batches = 1,
                       .plots = 0,
                       .quiet = 1,
                       .train_be = &be,
                       .eval_be = &be,
                       .stop_signal = &sig};
    ck_assert_msg(qt_study_run(&o) == QT_OK, "%s", qt_last_error());
    ck_assert_int_eq(sig, 0);
    size_t md_len, js_len;
    snprintf(path, sizeof path, "%s/results.md", out);
    char *md = read_all(path, &md_len);
    snprintf(path, sizeof path, "%s/metrics.json", out);
    char *js = read_all(path, &js_len);
    const char *runs[] = {"vanilla-s0", "vanilla-s1", "gated-linear-s0", "gated-linear-s1"};
    for (int i = 0; i < 4; i++) ck_assert_msg(strstr(js, runs[i]), "metrics.json lacks %s", runs[i]);
    ck_assert_msg(strstr(md, "| gated-linear | 2 |"), "%s", md);
    // Again: every result now comes from eval.json and metrics.jsonl.
    ck_assert_msg(qt_study_run(&o) == QT_OK, "%s", qt_last_error());
    size_t md2_len, js2_len;
    snprintf(path, sizeof path, "%s/results.md", out);
    char *md2 = read_all(path, &md2_len);
    snprintf(path, sizeof path, "%s/metrics.json", out);
    char *js2 = read_all(path, &js2_len);
    ck_assert_msg(md_len == md2_len && memcmp(md, md2, md_len) == 0, "results.md changed:\n%s\n%s",
                  md, md2);
    ck_assert_msg(js_len == js2_len && memcmp(js, js2, js_len) == 0, "metrics.json changed");
    free(md);
    free(md2);
    free(js);
    free(js2);
    // Refusals.
    const char *bad[] = {"vanilla", "softmax1"};
    o.variants = bad;
    ck_assert(qt_study_run(&o) == QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "'softmax1' is not a variant") &&
                      strstr(qt_last_error(), "off-by-one"),
                  "%s", qt_last_error());
    const char *twice[] = {"vanilla", "vanilla"};
    o.variants = twice;
    ck_assert(qt_study_run(&o) == QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "twice"), "%s", qt_last_error());
    o.variants = variants;
    const char *other[sizeof sets / sizeof sets[0] + 1];
    memcpy(other, sets, sizeof sets);
    other[sizeof sets / sizeof sets[0]] = "train.lr=0.01";
    o.sets = other;
    o.n_sets++;
    ck_assert(qt_study_run(&o) == QT_ERR_ARG);
    ck_assert_msg(strstr(qt_last_error(), "another config") && strstr(qt_last_error(), "train.lr"),
                  "%s", qt_last_error());
    qt_backend_free(&be);
    qt_test_rmtree(dir);
    free(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("study");
    TCase *tc = tcase_create("study");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_hist_grid);
    tcase_add_test(tc, test_variant_table);
    tcase_add_test(tc, test_study_in_process);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

// mpi_testutil.c: see mpi_testutil.h.
#include "mpi_testutil.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

void qt_verdict_fail(qt_verdict *v, const char *fmt, ...) {
    if (v->failed++) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
}

void qt_verdict_agree(qt_comm *c, qt_verdict *v) {
    double x = v->failed ? (double)(c->size - c->rank) : 0.0;
    ck_assert_msg(qt_comm_allreduce_host(c, &x, 1, QT_DIST_MAX) == QT_OK, "%s", qt_last_error());
    if (x > 0) {
        int who = c->size - (int)x;
        // The failing rank's message goes to everyone.
        char msg[512];
        memcpy(msg, v->msg, sizeof msg);
        ck_assert(qt_comm_broadcast(c, msg, sizeof msg, who, 1) == QT_OK);
        ck_abort_msg("rank %d: %s", who, msg);
    }
}

void qt_mpi_test_data(qt_comm *c, char *dir, size_t cap) {
    if (dir[0]) return;
    if (c->rank == 0) {
        char *d = qt_test_tmpdir("dp-data");
        snprintf(dir, cap, "%s", d);
        free(d);
        qt_test_write_synthetic_shards(dir);
    }
    ck_assert_msg(qt_comm_broadcast(c, dir, cap, 0, 1) == QT_OK, "%s", qt_last_error());
}

void qt_mpi_test_tmpdir(qt_comm *c, char *out, size_t cap, const char *tag) {
    memset(out, 0, cap);
    if (c->rank == 0) {
        char *d = qt_test_tmpdir(tag);
        snprintf(out, cap, "%s", d);
        free(d);
    }
    ck_assert(qt_comm_broadcast(c, out, cap, 0, 1) == QT_OK);
}

static double field(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p ? strtod(p + strlen(key), NULL) : -1.0;
}

int qt_mpi_test_losses(const char *run_dir, double *losses, double *scales, double *skipped,
                       int max_steps) {
    char path[1200], line[8192];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"type\":\"train\"") || !strstr(line, "\"loss\":")) continue;
        int step = (int)field(line, "\"step\":");
        if (step < 1 || step > max_steps) continue;
        losses[step - 1] = field(line, "\"loss\":");
        if (scales) scales[step - 1] = field(line, "\"loss_scale\":");
        if (skipped) skipped[step - 1] = field(line, "\"skipped_steps\":");
        n++;
    }
    fclose(f);
    return n;
}

void qt_mpi_test_memory_line(const char *run_dir, char *line, size_t cap) {
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    line[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(line, (int)cap, f)) line[0] = '\0';
    fclose(f);
}

size_t qt_mpi_test_json_size(const char *line, const char *key) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    return p ? (size_t)strtoull(p + strlen(pat), NULL, 10) : (size_t)-1;
}

static unsigned long long fnv1a(const unsigned char *b, size_t n) {
    unsigned long long h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

qt_status qt_mpi_test_on_step(void *user, int step, const qt_model *m, const qt_optimizer *opt) {
    qt_step_check *sc = user;
    qt_comm *c = sc->comm;
    sc->steps = step;
    sc->opt_lo = opt->lo;
    sc->opt_hi = opt->hi;
    sc->sharded = opt->sharded;
    sc->n_params = m->n_params;
    // The parameters' bytes as the backend stores them (copied to the host).
    size_t bytes = m->n_float_params * m->es;
    unsigned char *host = malloc(bytes ? bytes : 1);
    if (!host) return qt_error(QT_ERR_OOM, "cannot allocate %zu bytes", bytes);
    qt_status st = m->be->ops->to_host(m->be->ctx, host, m->params, bytes);
    unsigned long long h = fnv1a(host, bytes);
    free(host);
    QT_TRY(st);
    if (step <= 64) {
        sc->opt_step[step - 1] = opt->step;
        sc->hash[step - 1] = h;
    }
    double *all = calloc((size_t)c->size * 2, sizeof *all);
    if (!all) return qt_error(QT_ERR_OOM, "cannot allocate the hashes");
    all[2 * c->rank] = (double)(h >> 32);
    all[2 * c->rank + 1] = (double)(h & 0xffffffffu);
    st = qt_comm_allgather_host(c, all, 2);
    for (int r = 0; st == QT_OK && r < c->size; r++)
        if (all[2 * r] != all[0] || all[2 * r + 1] != all[1])
            qt_verdict_fail(sc->v,
                            "after step %d the parameters of rank %d differ from rank "
                            "0's",
                            step, r);
    free(all);
    return st;
}

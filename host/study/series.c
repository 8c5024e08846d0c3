// series.c: a run's statistics over training, from the trainer's metrics.jsonl
// (qtrain/trainer.h): the training loss of every training line, and the validation loss, max
// inf-norm and average kurtosis of every evaluation line. A resumed run's log holds one line
// per step (the trainer cuts it back to the checkpoint before it appends).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/io/file.h"
#include "host/io/json.h"
#include "study_internal.h"

static double number_or_nan(const qt_json *obj, const char *key) {
    const qt_json *v = qt_json_get(obj, key);
    return v && v->type == QT_JSON_NUMBER ? v->number : NAN;
}

qt_status study_read_series(study_run *r) {
    char path[1300];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
    uint8_t *text = NULL;
    size_t len = 0;
    QT_TRY(qt_io_read_file(path, "metrics log", NULL, (size_t)1 << 30, &text, &len));
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    free(r->train);
    free(r->evals);
    r->train = calloc(lines, sizeof *r->train);
    r->evals = calloc(lines, sizeof *r->evals);
    r->n_train = r->n_evals = 0;
    r->train_seconds = 0.0;
    // elapsed_s restarts with each session of a resumed run: sum each session's last value.
    double session_elapsed = 0.0;
    qt_status st = r->train && r->evals ? QT_OK : qt_error(QT_ERR_OOM, "cannot read %s", path);
    int line_no = 0;
    for (size_t start = 0; st == QT_OK && start < len;) {
        const char *line = (const char *)text + start;
        const char *nl = memchr(line, '\n', len - start);
        size_t n = nl ? (size_t)(nl - line) : len - start;
        start += n + 1;
        line_no++;
        if (n == 0) continue;
        char what[1400];
        snprintf(what, sizeof what, "%s line %d", path, line_no);
        qt_json *j = NULL;
        st = qt_json_parse(line, n, what, &j);
        if (st != QT_OK) break;
        const qt_json *type = qt_json_get(j, "type"), *step = qt_json_get(j, "step");
        if (type && type->type == QT_JSON_STRING && step && step->type == QT_JSON_NUMBER) {
            if (strcmp(type->str, "train") == 0) {
                study_train_point *p = &r->train[r->n_train++];
                p->step = (int)step->number;
                p->loss = number_or_nan(j, "loss");
                double e = number_or_nan(j, "elapsed_s");
                if (e == e) {
                    if (e < session_elapsed) r->train_seconds += session_elapsed;
                    session_elapsed = e;
                }
            } else if (strcmp(type->str, "eval") == 0) {
                study_eval_point *p = &r->evals[r->n_evals++];
                p->step = (int)step->number;
                p->val_loss = number_or_nan(j, "val_loss");
                p->max_inf_norm = number_or_nan(j, "max_inf_norm");
                p->avg_kurtosis = number_or_nan(j, "avg_kurtosis");
            }
        }
        qt_json_free(j);
    }
    r->train_seconds += session_elapsed;
    free(text);
    return st;
}

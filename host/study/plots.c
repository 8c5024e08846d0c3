// plots.c: the study's plots, drawn by gnuplot (Debian's gnuplot-nox; its pngcairo terminal)
// from data files and a script written into <out>/plots, which stay beside the PNGs so a plot
// can be redrawn or restyled by hand (`cd <out>/plots && gnuplot study.gp`):
//   loss.png            training loss and validation loss over steps, per variant
//   outliers.png        max inf-norm and average kurtosis at each evaluation, per variant
//   layer_inf_norm.png  the infinity norm of every layer (qt_layer_inf_norm: its output, and in
//                       a post-LN model also its attention and FFN outputs), bars per variant
//   hist.png            one layer's output values (a post-LN model's: its FFN output; the layer
//                       where the reference's outliers are largest), reference against the best
//                       variant, seed 0, log scale
// Series are means over the seeds. gnuplot's absence is an error saying what to install.
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/io/file.h"
#include "study_internal.h"

// The plots' sizes in pixels (the tests check the PNGs' headers against them).
#define WIDE_W 1200
#define WIDE_H 500
#define BARS_W 900
#define BARS_H 500

typedef struct {
    char dir[1200];
    qt_status st;
} plot_dir;

static FILE *open_data(plot_dir *pd, const char *name) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", pd->dir, name);
    FILE *f = fopen(path, "w");
    if (!f && pd->st == QT_OK)
        pd->st = qt_error(QT_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return f;
}

static void close_data(plot_dir *pd, FILE *f, const char *name) {
    if (f && fclose(f) != 0 && pd->st == QT_OK)
        pd->st = qt_error(QT_ERR_IO, "cannot write %s/%s", pd->dir, name);
}

// Mean over the seeds of variant v's training loss and evaluation series, index by index (the
// seeds log the same steps).
static void write_series(plot_dir *pd, const study_report *rep, int v) {
    const study_run *runs = &rep->runs[v * rep->seeds];
    char name[256];
    snprintf(name, sizeof name, "train_%s.dat", runs[0].variant->name);
    FILE *f = open_data(pd, name);
    if (!f) return;
    int n = runs[0].n_train;
    for (int s = 1; s < rep->seeds; s++) n = runs[s].n_train < n ? runs[s].n_train : n;
    fprintf(f, "# step  training loss (mean over %d seeds)\n", rep->seeds);
    for (int i = 0; i < n; i++) {
        double sum = 0.0;
        for (int s = 0; s < rep->seeds; s++) sum += runs[s].train[i].loss;
        fprintf(f, "%d %.6g\n", runs[0].train[i].step, sum / rep->seeds);
    }
    close_data(pd, f, name);
    snprintf(name, sizeof name, "evals_%s.dat", runs[0].variant->name);
    f = open_data(pd, name);
    if (!f) return;
    n = runs[0].n_evals;
    for (int s = 1; s < rep->seeds; s++) n = runs[s].n_evals < n ? runs[s].n_evals : n;
    fprintf(f, "# step  val_loss  max_inf_norm  avg_kurtosis (means over %d seeds)\n", rep->seeds);
    for (int i = 0; i < n; i++) {
        double a = 0.0, b = 0.0, c = 0.0;
        for (int s = 0; s < rep->seeds; s++) {
            a += runs[s].evals[i].val_loss;
            b += runs[s].evals[i].max_inf_norm;
            c += runs[s].evals[i].avg_kurtosis;
        }
        fprintf(f, "%d %.6g %.6g %.6g\n", runs[0].evals[i].step, a / rep->seeds, b / rep->seeds,
                c / rep->seeds);
    }
    close_data(pd, f, name);
}

static void write_layers(plot_dir *pd, const study_report *rep) {
    FILE *f = open_data(pd, "layers.dat");
    if (!f) return;
    fputs("layer", f);
    for (int v = 0; v < rep->n_variants; v++) fprintf(f, " %s", rep->runs[v * rep->seeds].variant->name);
    fputc('\n', f);
    for (int l = 0; l < rep->runs[0].eval.n_layer; l++) {
        fprintf(f, "%d", l);
        for (int v = 0; v < rep->n_variants; v++) {
            double sum = 0.0;
            for (int s = 0; s < rep->seeds; s++)
                sum += qt_layer_inf_norm(&rep->runs[v * rep->seeds + s].eval.layers[l],
                                         rep->runs[v * rep->seeds + s].cfg.norm_position);
            fprintf(f, " %.6g", sum / rep->seeds);
        }
        fputc('\n', f);
    }
    close_data(pd, f, "layers.dat");
}

// Seed 0 of variant v, layer rep->hist_layer: the nonzero bins as center, width and density
// (count / (total count x width): runs with other totals compare). *max_abs: the largest |x|
// bound reached.
static void write_hist(plot_dir *pd, const study_report *rep, int v, const char *name,
                       double *max_abs) {
    FILE *f = open_data(pd, name);
    if (!f) return;
    const long long *h = rep->runs[v * rep->seeds].hist + (size_t)rep->hist_layer * HIST_BINS;
    long long total = 0;
    for (int i = 0; i < HIST_BINS; i++) total += h[i];
    fprintf(f, "# %s seed 0, layer %d output: center width density (%lld values)\n",
            rep->runs[v * rep->seeds].variant->name, rep->hist_layer, total);
    for (int i = 0; i < HIST_BINS && total > 0; i++) {
        if (!h[i]) continue;
        double lo, hi;
        study_hist_bounds(i, &lo, &hi);
        fprintf(f, "%.9g %.9g %.9g\n", 0.5 * (lo + hi), hi - lo,
                (double)h[i] / ((double)total * (hi - lo)));
        if (fabs(lo) > *max_abs) *max_abs = fabs(lo);
        if (fabs(hi) > *max_abs) *max_abs = fabs(hi);
    }
    close_data(pd, f, name);
}

static void write_script(plot_dir *pd, const study_report *rep, double max_abs) {
    FILE *f = open_data(pd, "study.gp");
    if (!f) return;
    const char *ref = rep->runs[rep->reference * rep->seeds].variant->name;
    fprintf(f, "# study.gp: the plots of a qtrain study, drawn by `qtrain study` (gnuplot "
            "study.gp in this folder redraws them)\n");
    fprintf(f, "set terminal pngcairo size %d,%d noenhanced font ',10'\nset grid\n", WIDE_W, WIDE_H);
    const char *panels[2][3] = {{"loss.png", "training loss (nats)", "validation loss (nats)"},
                                {"outliers.png", "max inf-norm of the layer outputs",
                                 "average kurtosis"}};
    for (int p = 0; p < 2; p++) {
        fprintf(f, "set output '%s'\nset multiplot layout 1,2 title '%s per variant, mean over "
                "%d seed%s'\nset xlabel 'step'\n", panels[p][0],
                p ? "Outlier metrics over training" : "Loss", rep->seeds, rep->seeds > 1 ? "s" : "");
        for (int panel = 0; panel < 2; panel++) {
            fprintf(f, "set ylabel '%s'\nplot ", panels[p][1 + panel]);
            for (int v = 0; v < rep->n_variants; v++) {
                const char *name = rep->runs[v * rep->seeds].variant->name;
                if (p == 0 && panel == 0)
                    fprintf(f, "%s'train_%s.dat' using 1:2 with lines lw 2 title '%s'",
                            v ? ", " : "", name, name);
                else
                    fprintf(f, "%s'evals_%s.dat' using 1:%d with linespoints lw 2 title '%s'",
                            v ? ", " : "", name, p == 0 ? 2 : 3 + panel, name);
            }
            fputc('\n', f);
        }
        fputs("unset multiplot\n", f);
    }
    fprintf(f, "set terminal pngcairo size %d,%d noenhanced font ',10'\n", BARS_W, BARS_H);
    fprintf(f, "set output 'layer_inf_norm.png'\nset title 'Infinity norm of each layer "
            "(mean over %d seed%s)'\nset xlabel 'layer'\nset ylabel 'inf-norm'\n"
            "set style data histograms\nset style histogram clustered gap 1\n"
            "set style fill solid 0.8 border -1\nset yrange [0:*]\nplot ",
            rep->seeds, rep->seeds > 1 ? "s" : "");
    for (int v = 0; v < rep->n_variants; v++)
        fprintf(f, "%s'layers.dat' using %d:xtic(1) title columnheader(%d)", v ? ", " : "", v + 2,
                v + 2);
    fputc('\n', f);
    fprintf(f, "set output 'hist.png'\nset title 'Layer %d %s values, seed 0 (bins of a "
            "quarter octave of |x|)'\nset xlabel 'value'\nset ylabel 'density (log scale)'\n"
            "set logscale y\nset yrange [*:*]\nset xrange [%.6g:%.6g]\n"
            "plot 'hist_reference.dat' using 1:3:2 with boxes fs transparent solid 0.4 noborder "
            "title '%s'",
            rep->hist_layer,
            rep->runs[0].cfg.norm_position == QT_NORM_POST ? "FFN output" : "output", -max_abs,
            max_abs, ref);
    if (rep->best >= 0)
        fprintf(f, ", 'hist_best.dat' using 1:3:2 with boxes fs empty border lw 1.5 title '%s'",
                rep->runs[rep->best * rep->seeds].variant->name);
    fputs("\n", f);
    close_data(pd, f, "study.gp");
}

// 1 when `prog` is an executable file in a directory of $PATH.
static int on_path(const char *prog) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        char full[4096];
        if (n > 0 && n < sizeof full - 64) {
            snprintf(full, sizeof full, "%.*s/%s", (int)n, path, prog);
            if (access(full, X_OK) == 0) return 1;
        }
        path += n + (end ? 1 : 0);
    }
    return 0;
}

// Runs `gnuplot study.gp` in pd->dir, its output into gnuplot.log there.
static qt_status run_gnuplot(const plot_dir *pd) {
    char log[1400];
    snprintf(log, sizeof log, "%s/gnuplot.log", pd->dir);
    pid_t pid = fork();
    if (pid < 0) return qt_error(QT_ERR_IO, "cannot start gnuplot: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        if (chdir(pd->dir) == 0) execlp("gnuplot", "gnuplot", "study.gp", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return qt_error(QT_ERR_IO, "waiting for gnuplot: %s", strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return QT_OK;
    return qt_error(QT_ERR_IO, "gnuplot failed on %s/study.gp (%s %d); its messages are in %s",
                    pd->dir, WIFEXITED(status) ? "exit" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), log);
}

qt_status study_draw_plots(const study_report *rep, int quiet) {
    plot_dir pd;
    pd.st = QT_OK;
    snprintf(pd.dir, sizeof pd.dir, "%s/plots", rep->out_dir);
    QT_TRY(qt_io_make_dirs(pd.dir, 0777, "plots directory"));
    for (int v = 0; v < rep->n_variants && pd.st == QT_OK; v++) write_series(&pd, rep, v);
    write_layers(&pd, rep);
    double max_abs = 0.0;
    write_hist(&pd, rep, rep->reference, "hist_reference.dat", &max_abs);
    if (rep->best >= 0) write_hist(&pd, rep, rep->best, "hist_best.dat", &max_abs);
    write_script(&pd, rep, max_abs > 0 ? max_abs : 1.0);
    QT_TRY(pd.st);
    if (!on_path("gnuplot"))
        return qt_error(QT_ERR_UNSUPPORTED,
                        "gnuplot is not installed (not found on PATH), so the plots were not "
                        "drawn; results.md and metrics.json are written, and the plots' data and "
                        "script are in %s. Install it with 'apt-get install gnuplot-nox' (or "
                        "scripts/install_deps.sh) and run the same command again (nothing is "
                        "retrained), or pass --no-plots",
                        pd.dir);
    QT_TRY(run_gnuplot(&pd));
    if (!quiet) fprintf(stderr, "qtrain: study: plots drawn in %s\n", pd.dir);
    return QT_OK;
}

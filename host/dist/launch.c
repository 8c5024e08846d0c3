// launch.c: rank, world size and local rank from the launcher's environment; the rules and
// their order are in qtrain/dist.h (qt_dist_launch_detect).
//
// Every launcher sets its own variables: Open MPI's mpirun the OMPI_COMM_WORLD_* family
// (MPICH's hydra PMI_RANK/PMI_SIZE), Slurm's srun SLURM_PROCID and the step's task count, torchrun
// RANK/WORLD_SIZE/LOCAL_RANK. Slurm also exports SLURM_PROCID=0 and SLURM_NTASKS into the batch
// script itself, where qtrain runs as one process: only the step variables that srun sets
// (SLURM_STEP_NUM_TASKS) make a Slurm launch, so `qtrain train` in an sbatch script without srun
// stays a single process.
#include "qtrain/dist.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// *out = the decimal value of variable `name` in [lo, hi]; *found = 0 when it is unset.
static qt_status get_int(const char *(*get)(const char *), const char *name, int lo, int hi,
                         int *out, int *found) {
    const char *v = get(name);
    *found = v != NULL && *v != '\0';
    if (!*found) return QT_OK;
    errno = 0;
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || x < lo || x > hi)
        return qt_error(QT_ERR_ARG,
                        "the launcher variable %s=%s is not an integer in [%d, %d]; "
                        "launch with mpirun, srun or torchrun, or unset it for one process",
                        name, v, lo, hi);
    *out = (int)x;
    return QT_OK;
}

// Reads rank, size and local rank from the three named variables (local_size optional).
static qt_status read_ranks(qt_dist_launch *l, const char *(*get)(const char *), const char *rank,
                            const char *size, const char *local, const char *local_size) {
    int found;
    QT_TRY(get_int(get, size, 1, INT_MAX, &l->size, &found));
    if (!found)
        return qt_error(QT_ERR_ARG,
                        "%s is set but %s is not: the launcher's environment is "
                        "incomplete; set both or neither",
                        rank, size);
    QT_TRY(get_int(get, rank, 0, INT_MAX, &l->rank, &found));
    if (!found)
        return qt_error(QT_ERR_ARG,
                        "%s is set but %s is not: the launcher's environment is "
                        "incomplete; set both or neither",
                        size, rank);
    if (l->rank >= l->size)
        return qt_error(QT_ERR_ARG, "%s=%d is not below %s=%d; a rank lies in [0, world size)",
                        rank, l->rank, size, l->size);
    l->local_rank = 0;
    l->local_size = 1;
    if (local) {
        QT_TRY(get_int(get, local, 0, INT_MAX, &l->local_rank, &found));
        if (!found) l->local_rank = l->size == 1 ? 0 : l->rank;
    }
    if (local_size) {
        QT_TRY(get_int(get, local_size, 1, INT_MAX, &l->local_size, &found));
        if (!found) l->local_size = l->local_rank + 1;
    }
    if (l->local_rank >= l->local_size) l->local_size = l->local_rank + 1;
    return QT_OK;
}

// Slurm writes tasks per node as "2(x3),1": the count on this node is not known from it
// alone, so take the first group's count (homogeneous allocations, the common case).
static int slurm_tasks_per_node(const char *v) {
    if (!v || !*v) return 0;
    char *end = NULL;
    long x = strtol(v, &end, 10);
    return end != v && x > 0 && x < INT_MAX ? (int)x : 0;
}

static void copy_var(const char *(*get)(const char *), const char *name, char *dst, size_t cap) {
    const char *v = get(name);
    snprintf(dst, cap, "%s", v ? v : "");
}

qt_status qt_dist_launch_detect(qt_dist_launch *l, const char *(*get)(const char *name)) {
    if (!l || !get) return qt_error(QT_ERR_ARG, "qt_dist_launch_detect: NULL argument");
    memset(l, 0, sizeof *l);
    l->size = 1;
    l->local_size = 1;
    copy_var(get, "QT_RDZV_FILE", l->rdzv_file, sizeof l->rdzv_file);
    const char *pmix = get("PMIX_RANK"), *pmi = get("PMI_RANK");
    if (get("OMPI_COMM_WORLD_SIZE") || get("OMPI_COMM_WORLD_RANK")) {
        l->kind = QT_LAUNCH_MPI;
        l->has_pmi = 1;
        QT_TRY(read_ranks(l, get, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                          "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"));
    } else if (get("SLURM_STEP_NUM_TASKS") && get("SLURM_PROCID")) {
        l->kind = QT_LAUNCH_SLURM;
        l->has_pmi = (pmix && *pmix) || (pmi && *pmi);
        QT_TRY(read_ranks(l, get, "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", NULL));
        int per_node = slurm_tasks_per_node(get("SLURM_STEP_TASKS_PER_NODE"));
        l->local_size = per_node > l->local_rank ? per_node : l->local_rank + 1;
        const char *job = get("SLURM_JOB_ID"), *stp = get("SLURM_STEP_ID");
        if (!stp) stp = get("SLURM_STEPID");
        snprintf(l->job_tag, sizeof l->job_tag, "slurm-%s.%s", job ? job : "0", stp ? stp : "0");
    } else if (get("PMI_SIZE") && pmi) {
        l->kind = QT_LAUNCH_MPI; // MPICH's hydra (mpiexec)
        l->has_pmi = 1;
        QT_TRY(read_ranks(l, get, "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"));
    } else if (get("WORLD_SIZE") || get("RANK")) {
        l->kind = QT_LAUNCH_TORCHRUN;
        QT_TRY(read_ranks(l, get, "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"));
        copy_var(get, "MASTER_ADDR", l->master_addr, sizeof l->master_addr);
        int found;
        QT_TRY(get_int(get, "MASTER_PORT", 1, 65535, &l->master_port, &found));
        l->rdzv_port = l->master_port;
        const char *run = get("TORCHELASTIC_RUN_ID");
        snprintf(l->job_tag, sizeof l->job_tag, "torchrun-%s", run ? run : "0");
    } else {
        return QT_OK; // one process, as without a launcher
    }
    int found = 0, port = 0;
    QT_TRY(get_int(get, "QT_RDZV_PORT", 1, 65535, &port, &found));
    if (found) l->rdzv_port = port;
    const char *tag = get("QT_RDZV_TAG");
    if (tag && *tag) snprintf(l->job_tag, sizeof l->job_tag, "%s", tag);
    return QT_OK;
}

void qt_dist_launch_describe(const qt_dist_launch *l, char *buf, size_t len) {
    static const char *names[] = {"single process", "mpirun", "srun", "torchrun-style"};
    if (l->kind == QT_LAUNCH_NONE) {
        snprintf(buf, len, "single process");
        return;
    }
    snprintf(buf, len, "%s: rank %d of %d, local rank %d of %d%s", names[l->kind], l->rank, l->size,
             l->local_rank, l->local_size, l->has_pmi ? " (MPI process manager)" : "");
}

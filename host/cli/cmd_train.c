// cmd_train.c: `qtrain train`: resolve the config (defaults < --config file < --set), then run
// the trainer; or continue a run from its checkpoint with --resume. Under a launcher (mpirun,
// srun, torchrun-style variables; qtrain/dist.h) each process is one rank of a data-parallel
// run on the device of its local rank.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "device.h"
#include "qtrain/dist.h"
#include "qtrain/trainer.h"

static const char usage[] =
    "usage: qtrain train [--config FILE] [--set key=value]... [--out DIR]\n"
    "                    [--resume CKPT [--allow-tokenizer-mismatch]] [--stop-at STEP]\n"
    "                    [--device auto|cpu|cuda] [--quiet]\n"
    "\n"
    "  --config FILE     config file of `key = value` lines (see configs/); default: the\n"
    "                    built-in defaults (configs/default.conf lists them)\n"
    "  --set key=value   override one key, after the file (repeatable)\n"
    "  --out DIR         where config.conf, metrics.jsonl and ckpt.bin go (default: runs/default)\n"
    "  --resume CKPT     continue the run saved in CKPT; its stored config is used, --set may\n"
    "                    still override keys (e.g. train.max_steps)\n"
    "  --allow-tokenizer-mismatch\n"
    "                    resume even when data.dir's shards were made by another tokenizer\n"
    "                    than the checkpoint records (refused by default)\n"
    "  --stop-at STEP    stop (and checkpoint) after STEP optimizer steps, keeping the schedule\n"
    "                    of train.max_steps\n"
    "  --device D        auto (default: CUDA if a device is usable, else the CPU), cpu, cuda\n"
    "  --quiet           no progress lines\n"
    "\n"
    "Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes the checkpoint and exits\n"
    "with status 130 (SIGINT) or 143 (SIGTERM); a finished run exits 0. Data-parallel, every\n"
    "rank stops after the same step.\n"
    "\n"
    "Data-parallel: run one process per device under a launcher, e.g.\n"
    "  mpirun -np 2 qtrain train ...      (OMPI_COMM_WORLD_*; srun --mpi=pmix likewise)\n"
    "Each rank reads its slice of every global batch (ranks x batch x accumulation); rank 0\n"
    "alone prints and writes under --out. Keys dist.bucket_mb, dist.zero, dist.timeout_s.\n";

static const char *env(const char *name) { return getenv(name); }

// The communicators of this launch. One process: none. The CPU backend: MPI, where a process
// manager is present (mpirun, srun --mpi=pmix) and this build has MPI. The CUDA backend: NCCL
// on the backend's device, its id shared over MPI where there is a process manager, else
// through the shared-file rendezvous (QT_RDZV_FILE). *top is the one the trainer uses.
typedef struct {
    qt_comm mpi, nccl;
    int have_mpi, have_nccl;
    qt_comm *top;
} launch_comms;

static qt_status open_mpi(const qt_dist_launch *l, const char *where, const qt_config *cfg,
                          launch_comms *lc) {
#ifdef QT_HAVE_MPI
    QT_TRY(qt_comm_mpi_init(&lc->mpi, cfg->dist_timeout_s));
    lc->have_mpi = 1;
    lc->top = &lc->mpi;
    if (lc->mpi.size != l->size || lc->mpi.rank != l->rank)
        return qt_error(QT_ERR_COMM,
                        "%s, but MPI says rank %d of %d: the launcher's variables "
                        "and MPI disagree; launch with one launcher only",
                        where, lc->mpi.rank, lc->mpi.size);
    return QT_OK;
#else
    (void)l, (void)cfg, (void)lc;
    return qt_error(QT_ERR_UNSUPPORTED,
                    "%s: this qtrain was built without MPI (CMake did not find it); install "
                    "openmpi-bin and libopenmpi-dev (scripts/install_deps.sh) and rebuild",
                    where);
#endif
}

static qt_status open_comms(const qt_dist_launch *l, const qt_config *cfg, qt_backend *be,
                            launch_comms *lc) {
    memset(lc, 0, sizeof *lc);
    if (l->size == 1) return QT_OK;
    char where[256];
    qt_dist_launch_describe(l, where, sizeof where);
    if (strcmp(be->name, "cuda") != 0) {
        if (!l->has_pmi)
            return qt_error(QT_ERR_UNSUPPORTED,
                            "%s: data-parallel training over %d ranks on the CPU backend needs "
                            "MPI, and no MPI process manager is present; launch with mpirun -np "
                            "%d (or srun --mpi=pmix)",
                            where, l->size, l->size);
        return open_mpi(l, where, cfg, lc);
    }
#ifdef QT_HAVE_NCCL
    if (l->has_pmi) QT_TRY(open_mpi(l, where, cfg, lc));
    QT_TRY(
        qt_comm_nccl_init(&lc->nccl, be, l, lc->have_mpi ? &lc->mpi : NULL, cfg->dist_timeout_s));
    lc->have_nccl = 1;
    lc->top = &lc->nccl;
    return QT_OK;
#else
    return qt_error(QT_ERR_UNSUPPORTED,
                    "%s: this qtrain was built without NCCL (libnccl and nccl.h were not found "
                    "beside the CUDA toolkit), so the CUDA backend trains on one process only",
                    where);
#endif
}

static void close_comms(launch_comms *lc) {
    if (lc->have_nccl) qt_comm_free(&lc->nccl);
    if (lc->have_mpi) qt_comm_free(&lc->mpi);
}

// An error on one rank of several: name the rank, then end the others (qt_comm_abort), so that
// none is left waiting for this one.
static int fail_rank(const qt_dist_launch *l, launch_comms *lc) {
    if (l->size == 1) return qt_cli_fail();
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", qt_last_error());
    // A message that already names this rank (the communicator's) is printed as it is.
    char tag[32];
    snprintf(tag, sizeof tag, "rank %d", l->rank);
    if (strncmp(msg, tag, strlen(tag)) == 0)
        fprintf(stderr, "qtrain: error: %s\n", msg);
    else
        fprintf(stderr, "qtrain: error: rank %d of %d: %s\n", l->rank, l->size, msg);
    if (lc->top) qt_comm_abort(lc->top, 1);
    return 1;
}

int qt_cmd_train(int argc, char **argv) {
    const char *config_path = NULL, *out_dir = "runs/default", *resume = NULL, *device = "auto";
    const char *sets[256];
    qt_args_list set_list = {sets, 0, 256};
    int stop_at = 0, quiet = 0, help = 0, allow_mismatch = 0;
    const qt_arg flags[] = {
        {"quiet", QT_ARG_SWITCH, &quiet, 0, 0},
        {"allow-tokenizer-mismatch", QT_ARG_SWITCH, &allow_mismatch, 0, 0},
        {"config", QT_ARG_STRING, &config_path, 0, 0},
        {"set", QT_ARG_LIST, &set_list, 0, 0},
        {"out", QT_ARG_STRING, &out_dir, 0, 0},
        {"resume", QT_ARG_STRING, &resume, 0, 0},
        {"device", QT_ARG_STRING, &device, 0, 0},
        {"stop-at", QT_ARG_INT, &stop_at, 1, 1000000000},
    };
    if (qt_args_parse(argc, argv, "train", usage, flags, QT_ARGS_COUNT(flags), &help) != QT_OK)
        return qt_cli_fail();
    if (help) return 0;
    if (resume && config_path) {
        qt_error(QT_ERR_ARG, "--resume uses the config stored in %s; drop --config %s (use --set "
                 "to change keys)", resume, config_path);
        return qt_cli_fail();
    }
    qt_config cfg;
    qt_config_defaults(&cfg);
    if (resume && qt_train_state_read_config(resume, &cfg) != QT_OK) return qt_cli_fail();
    if (config_path && qt_config_load(&cfg, config_path) != QT_OK) return qt_cli_fail();
    for (int s = 0; s < set_list.n; s++)
        if (qt_config_set(&cfg, sets[s], "--set") != QT_OK) return qt_cli_fail();
    if (qt_config_validate(&cfg) != QT_OK) return qt_cli_fail();
    qt_dist_launch launch;
    if (qt_dist_launch_detect(&launch, env) != QT_OK) return qt_cli_fail();
    launch_comms lc;
    memset(&lc, 0, sizeof lc);
    // One process per device: the CPU threads of the machine are shared by its ranks when
    // train.threads is 0 (all cores); a CUDA rank uses the device of its local rank.
    qt_config dev_cfg = cfg;
    if (launch.size > 1 && cfg.threads == 0 && launch.local_size > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        dev_cfg.threads = cores > launch.local_size ? (int)(cores / launch.local_size) : 1;
    }
    qt_backend be;
    if (qt_cli_open_backend_on(device, launch.local_rank, &dev_cfg, quiet || launch.rank > 0,
                               &be) != QT_OK)
        return fail_rank(&launch, &lc);
    if (open_comms(&launch, &cfg, &be, &lc) != QT_OK) {
        int rc = fail_rank(&launch, &lc);
        close_comms(&lc);
        qt_backend_free(&be);
        return rc;
    }
    int stop_signal = 0;
    qt_train_opts opts = {.backend = &be,
                          .comm = lc.top,
                          .out_dir = out_dir,
                          .resume_from = resume,
                          .stop_at_step = stop_at,
                          .quiet = quiet,
                          .stop_signal = &stop_signal,
                          .allow_tokenizer_mismatch = allow_mismatch};
    qt_status st = qt_train(&cfg, &opts);
    if (st != QT_OK && launch.size > 1) return fail_rank(&launch, &lc); // ends every rank
    close_comms(&lc);
    if (st != QT_OK) {
        qt_backend_free(&be);
        return qt_cli_fail();
    }
    qt_backend_free(&be);
    // A run a signal stopped (its checkpoint written) exits as the shell reports that signal.
    return stop_signal ? 128 + stop_signal : 0;
}

// device.h: --device auto|cpu|cuda for the subcommands.
#ifndef QTRAIN_CLI_DEVICE_H
#define QTRAIN_CLI_DEVICE_H

#include "qtrain/backend.h"
#include "qtrain/config.h"

// Opens the backend `device` names for cfg (train.precision, train.threads):
//   auto: CUDA when this build has it and cudaGetDeviceCount finds a device, else the CPU,
//         saying so in one line on stderr (unless quiet);
//   cpu:  the CPU backend (fp32 only);
//   cuda: the CUDA backend, or an error naming why there is none.
// train.precision auto means fp32 on the CPU and fp16 on CUDA.
qt_status qt_cli_open_backend(const char *device, const qt_config *cfg, int quiet,
                              qt_backend *be);
// The same on CUDA device `cuda_index` (data-parallel training: the local rank).
qt_status qt_cli_open_backend_on(const char *device, int cuda_index, const qt_config *cfg,
                                 int quiet, qt_backend *be);

#endif

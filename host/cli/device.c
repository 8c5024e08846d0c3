// device.c: backend selection for --device; see device.h. The CUDA backend is linked in (and
// QT_HAVE_CUDA defined) only where the build found the CUDA toolkit.
#include "device.h"

#include <stdio.h>
#include <string.h>

#include "qtrain/names.h"

static qt_status open_cpu(const qt_config *cfg, qt_backend *be) {
    if (cfg->precision == QT_PRECISION_FP16 || cfg->precision == QT_PRECISION_BF16)
        return qt_error(QT_ERR_ARG,
                        "train.precision = %s needs the CUDA backend; the CPU backend trains in "
                        "fp32: use train.precision=fp32 (or auto), or --device cuda",
                        qt_name(&qt_precision_names, cfg->precision));
    return qt_backend_cpu_init(be, cfg->threads);
}

#ifdef QT_HAVE_CUDA
static qt_status open_cuda(const qt_config *cfg, int index, qt_backend *be) {
    int n = qt_cuda_device_count();
    if (index >= n)
        return qt_error(QT_ERR_ARG,
                        "CUDA device %d (this process's local rank) does not exist: "
                        "this machine has %d; launch at most %d processes per machine",
                        index, n, n);
    return qt_backend_cuda_init(be, index, qt_config_precision_dtype(cfg->precision, QT_DTYPE_F16));
}
#endif

qt_status qt_cli_open_backend(const char *device, const qt_config *cfg, int quiet,
                              qt_backend *be) {
    return qt_cli_open_backend_on(device, 0, cfg, quiet, be);
}

qt_status qt_cli_open_backend_on(const char *device, int cuda_index, const qt_config *cfg,
                                 int quiet, qt_backend *be) {
#ifndef QT_HAVE_CUDA
    (void)cuda_index;
#endif
    if (strcmp(device, "cpu") == 0) return open_cpu(cfg, be);
    if (strcmp(device, "cuda") == 0) {
#ifdef QT_HAVE_CUDA
        if (qt_cuda_device_count() == 0)
            return qt_error(QT_ERR_UNSUPPORTED,
                            "--device cuda: no usable CUDA device (cudaGetDeviceCount found none "
                            "or no driver is loaded); use --device cpu");
        return open_cuda(cfg, cuda_index, be);
#else
        return qt_error(QT_ERR_UNSUPPORTED,
                        "--device cuda: this qtrain was built without the CUDA toolkit; "
                        "rebuild where nvcc is installed, or use --device cpu");
#endif
    }
    if (strcmp(device, "auto") == 0) {
#ifdef QT_HAVE_CUDA
        if (qt_cuda_device_count() > 0) return open_cuda(cfg, cuda_index, be);
        if (!quiet) fprintf(stderr, "qtrain: no usable CUDA device; using the CPU backend\n");
#else
        if (!quiet)
            fprintf(stderr, "qtrain: built without CUDA; using the CPU backend\n");
#endif
        return open_cpu(cfg, be);
    }
    return qt_error(QT_ERR_ARG, "--device %s is not a device; use auto, cpu or cuda", device);
}

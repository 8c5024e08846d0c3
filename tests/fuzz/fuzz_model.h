// fuzz_model.h: a three-tensor model on a host-memory backend, enough for the training-state
// reader (qt_train_state_load, host/train/train_state.c) without the model code, the kernels or
// OpenBLAS: the fuzz build compiles only the readers. fuzz_checkpoint.c loads inputs into it;
// make_seeds.c saves its seed checkpoint from it, so the seed has every tensor it expects.
//   "w"  f32 (4, 3), float parameter
//   "q"  i8  (2, 4), a DQT tensor: codes plus "q.scale"
//   "b"  f32 (5),    float parameter
#ifndef QTRAIN_FUZZ_MODEL_H
#define QTRAIN_FUZZ_MODEL_H

#include <string.h>

#include "qtrain/trainer.h"

#define FZ_N_PARAMS 25       // gradient arena: every tensor
#define FZ_N_FLOAT_PARAMS 17 // w and b
#define FZ_N_CODES 8         // q

typedef struct {
    qt_backend be;
    qt_model model;
    qt_optimizer opt;
    qt_tensor_info tensors[3];
    float params[FZ_N_FLOAT_PARAMS], m[FZ_N_PARAMS], v[FZ_N_PARAMS], scales[3];
    int8_t codes[FZ_N_CODES];
} fz_model;

static inline qt_status fz_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    (void)ctx;
    memcpy(dst, src, bytes);
    return QT_OK;
}
static inline qt_status fz_copy_f32_in(void *ctx, void *dst, const float *src, size_t n) {
    return fz_copy(ctx, dst, src, n * sizeof(float));
}
static inline qt_status fz_copy_f32_out(void *ctx, float *dst, const void *src, size_t n) {
    return fz_copy(ctx, dst, src, n * sizeof(float));
}
static const qt_backend_ops fz_ops = {.to_host = fz_copy,
                                      .to_device = fz_copy,
                                      .to_host_f32 = fz_copy_f32_out,
                                      .to_device_f32 = fz_copy_f32_in};

static inline void fz_tensor(qt_tensor_info *t, const char *name, size_t offset,
                             size_t param_offset, int quantized, int d0, int d1) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = offset;
    t->param_offset = param_offset;
    t->quantized = quantized;
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
}

static inline void fz_model_init(fz_model *f) {
    memset(f, 0, sizeof *f);
    f->be = (qt_backend){&fz_ops, NULL, "fuzz", QT_DTYPE_F32, 1};
    fz_tensor(&f->tensors[0], "w", 0, 0, 0, 4, 3);
    fz_tensor(&f->tensors[1], "q", 12, 0, 1, 2, 4);
    fz_tensor(&f->tensors[2], "b", 20, 12, 0, 5, 0);
    qt_config_defaults(&f->model.cfg);
    f->model.be = &f->be;
    f->model.n_tensors = 3;
    f->model.tensors = f->tensors;
    f->model.n_params = FZ_N_PARAMS;
    f->model.n_float_params = FZ_N_FLOAT_PARAMS;
    f->model.es = sizeof(float);
    f->model.params = f->params;
    f->model.codes = f->codes;
    f->model.n_code_bytes = FZ_N_CODES;
    f->model.code_scales = f->scales;
    f->opt.m = f->m;
    f->opt.v = f->v;
}

#endif

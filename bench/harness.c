// bench/harness.c: the benchmark harness of bench/harness.h: model presets, the machine
// measurement (sgemm peak, copy bandwidth), warm-up and repetitions, the table and JSON lines,
// and the buffers the families borrow. The CUDA parts call bench/harness_cuda.c, built only
// where QT_HAVE_CUDA is defined.
#include "bench/harness.h"

#include <cblas.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef QT_HAVE_CUDA
#include "bench/harness_cuda.h"
#endif

// ---- model presets (the values of configs/*.conf; B x T = N tokens of one micro-batch)

const qt_bench_model qt_bench_model_default = {"default", 8, 128, 256, 4, 1024, 4096, 4, NULL};
const qt_bench_model qt_bench_model_opt125m = {"opt-125m", 16, 512, 768, 12, 3072, 50272, 12, NULL};
const qt_bench_model qt_bench_model_opt125m_1 = {
    "opt-125m", 1, 512, 768, 12, 3072, 50272, 12, &qt_bench_model_opt125m};
const qt_bench_model qt_bench_model_llama_tiny = {"llama-tiny", 8, 128, 128, 4, 344, 4096, 4, NULL};
const qt_bench_model qt_bench_model_llama130m = {"llama-130m", 16,    256, 768, 12,
                                                 2048,         32000, 12,  NULL};
// Small enough that every family's cases take milliseconds; odd V, even D and F.
const qt_bench_model qt_bench_model_quick = {"quick", 2, 16, 32, 2, 64, 97, 1, NULL};

// ---- timing policy

#define WARMUP_S 0.02   // warm-up: at least one call, then calls until this long has passed
#define WARMUP_MAX 100  // ... or this many calls
#define BUDGET_S 0.3    // adaptive repetitions: until this long has passed ...
#define MIN_REPS 3      // ... and at least this many (an op of 100 ms: 0.4 s with its warm-up)
#define MAX_REPS 200    // ... and at most this many
#define LLC_COPY_MULT 4 // the copy buffer: this many times the last-level cache, within:
#define COPY_MIN_BYTES ((size_t)128 << 20) // at least 128 MiB (each of source and target)
#define COPY_MAX_BYTES ((size_t)1 << 30)   // at most 1 GiB

typedef struct {
    void *p;
    int device;
} alloc_entry;

struct qt_bench {
    qt_bench_options o;
    FILE *out;
    double peak;       // flop/s of the GEMM peak
    double bw;         // bytes/s of the copy (read + written)
    size_t llc;        // CPU: last-level cache bytes (0: unknown)
    char machine[160]; // CPU model or CUDA device name
    const char *family;
    const char *model;
    char shape[128];
    const char *ref; // reference of the following cases, or NULL
    double ref_ms;
    alloc_entry *allocs;
    size_t n_allocs, cap_allocs;
    qt_status alloc_err; // sticky: the first failed allocation of the shape
    double *times;       // (cap_times) repetition times of the current case, ms
    int cap_times;
    uint64_t rng;
#ifdef QT_HAVE_CUDA
    qt_bench_cuda *cuda;
#endif
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s) { // xorshift64*
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

// ---- buffers

static void free_buffer(void *p, int device) {
#ifdef QT_HAVE_CUDA
    if (device) {
        qt_bench_cuda_free(p);
        return;
    }
#endif
    (void)device;
    free(p);
}

static void *track(qt_bench *b, void *p, int device, size_t bytes) {
    if (!p) {
        if (b->alloc_err == QT_OK)
            b->alloc_err = qt_error(QT_ERR_OOM, "bench %s: cannot allocate %zu bytes%s", b->family,
                                    bytes, device ? " on the device" : "");
        return NULL;
    }
    if (b->n_allocs == b->cap_allocs) {
        size_t cap = b->cap_allocs ? 2 * b->cap_allocs : 32;
        alloc_entry *a = realloc(b->allocs, cap * sizeof *a);
        if (!a) {
            free_buffer(p, device);
            if (b->alloc_err == QT_OK)
                b->alloc_err = qt_error(QT_ERR_OOM, "bench %s: out of memory", b->family);
            return NULL;
        }
        b->allocs = a;
        b->cap_allocs = cap;
    }
    b->allocs[b->n_allocs++] = (alloc_entry){p, device};
    return p;
}

static void release_all(qt_bench *b) {
    for (size_t i = 0; i < b->n_allocs; i++)
        free_buffer(b->allocs[i].p, b->allocs[i].device);
    b->n_allocs = 0;
    b->alloc_err = QT_OK;
}

static void fill_f32(qt_bench *b, float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)(rng_next(&b->rng) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

float *qt_bench_host_f32(qt_bench *b, size_t n) {
    float *x = track(b, malloc((n ? n : 1) * sizeof(float)), 0, n * sizeof(float));
    if (x) fill_f32(b, x, n);
    return x;
}

int *qt_bench_host_i32(qt_bench *b, size_t n, int lo, int hi) {
    int *x = track(b, malloc((n ? n : 1) * sizeof(int)), 0, n * sizeof(int));
    const uint64_t span = (uint64_t)((int64_t)hi - lo + 1);
    for (size_t i = 0; x && i < n; i++)
        x[i] = lo + (int)(rng_next(&b->rng) % span);
    return x;
}

int8_t *qt_bench_host_s8(qt_bench *b, size_t n) {
    int8_t *x = track(b, malloc(n ? n : 1), 0, n);
    for (size_t i = 0; x && i < n; i++)
        x[i] = (int8_t)(int)(rng_next(&b->rng) >> 56);
    return x;
}

void *qt_bench_host_zeros(qt_bench *b, size_t bytes) {
    return track(b, calloc(bytes ? bytes : 1, 1), 0, bytes);
}

// A host buffer holding `fill` (the dt kinds in fp32, the CPU's storage type).
static void *host_buf(qt_bench *b, qt_bench_fill fill, size_t n) {
    switch (fill) {
    case QT_BENCH_RAND:
    case QT_BENCH_F32:
        return qt_bench_host_f32(b, n);
    case QT_BENCH_ZEROS:
    case QT_BENCH_F32_ZEROS:
        return qt_bench_host_zeros(b, n * sizeof(float));
    case QT_BENCH_S8:
        return qt_bench_host_s8(b, n);
    case QT_BENCH_BYTES:
        break;
    }
    return qt_bench_host_zeros(b, n);
}

#ifdef QT_HAVE_CUDA
static void *dev_alloc(qt_bench *b, size_t bytes) {
    void *p = NULL;
    if (qt_bench_cuda_alloc(&p, bytes ? bytes : 1) != QT_OK) p = NULL;
    return track(b, p, 1, bytes);
}

// p, or NULL after recording st (a failed fill) as the shape's error.
static void *dev_checked(qt_bench *b, void *p, qt_status st) {
    if (st == QT_OK) return p;
    if (b->alloc_err == QT_OK) b->alloc_err = st;
    return NULL;
}

static void *dev_copy(qt_bench *b, const void *host, size_t bytes) {
    void *p = dev_alloc(b, bytes);
    return dev_checked(b, p, p && host ? qt_bench_cuda_upload(b->cuda, p, host, bytes) : QT_OK);
}

// A device buffer holding `fill`: zeros by a memset, the rest made on the host and copied (the
// dt kinds converted on the device with qt_cuda_cast).
static void *dev_buf(qt_bench *b, qt_bench_fill fill, size_t n) {
    const qt_dtype dt =
        fill == QT_BENCH_F32 || fill == QT_BENCH_F32_ZEROS ? QT_DTYPE_F32 : qt_bench_dtype(b);
    switch (fill) {
    case QT_BENCH_RAND:
    case QT_BENCH_F32: {
        void *p = dev_alloc(b, n * qt_dtype_size(dt));
        float *host = malloc((n ? n : 1) * sizeof(float));
        qt_status st = QT_OK;
        if (p && host) {
            fill_f32(b, host, n);
            st = qt_bench_cuda_from_f32(b->cuda, p, dt, host, n);
        } else if (!host) {
            st = qt_error(QT_ERR_OOM, "bench %s: out of host memory", b->family);
        }
        free(host);
        return dev_checked(b, p, st);
    }
    case QT_BENCH_ZEROS:
    case QT_BENCH_F32_ZEROS:
        n *= qt_dtype_size(dt);
        break;
    case QT_BENCH_S8:
        return dev_copy(b, qt_bench_host_s8(b, n), n);
    case QT_BENCH_BYTES:
        break;
    }
    void *p = dev_alloc(b, n);
    return dev_checked(b, p, p ? qt_bench_cuda_zero(b->cuda, p, n) : QT_OK);
}
#endif

void *qt_bench_buf(qt_bench *b, qt_bench_fill fill, size_t n) {
#ifdef QT_HAVE_CUDA
    if (b->cuda) return dev_buf(b, fill, n);
#endif
    return host_buf(b, fill, n);
}

void *qt_bench_buf_from_host(qt_bench *b, void *host, size_t bytes) {
#ifdef QT_HAVE_CUDA
    if (b->cuda) return dev_copy(b, host, bytes);
#endif
    (void)b;
    (void)bytes;
    return host;
}

int *qt_bench_buf_i32(qt_bench *b, size_t n, int lo, int hi) {
    return qt_bench_buf_from_host(b, qt_bench_host_i32(b, n, lo, hi), n * sizeof(int));
}

int *qt_bench_buf_causal_lens(qt_bench *b, size_t rows, int T) {
    int *lens = qt_bench_host_zeros(b, rows * sizeof(int));
    for (size_t r = 0; lens && r < rows; r++)
        lens[r] = (int)(r % (size_t)T) + 1;
    return qt_bench_buf_from_host(b, lens, rows * sizeof(int));
}

qt_status qt_bench_ok(const qt_bench *b) { return b->alloc_err; }

void qt_bench_release(qt_bench *b) { release_all(b); }

// ---- accessors for the families

qt_bench_device qt_bench_device_of(const qt_bench *b) { return b->o.device; }

qt_dtype qt_bench_dtype(const qt_bench *b) {
    return b->o.device == QT_BENCH_CUDA ? QT_DTYPE_F16 : QT_DTYPE_F32;
}

qt_cuda_stream qt_bench_stream(const qt_bench *b) {
#ifdef QT_HAVE_CUDA
    if (b->cuda) return qt_bench_cuda_stream(b->cuda);
#endif
    (void)b;
    return NULL;
}

void *qt_bench_gemm_handle(const qt_bench *b) {
#ifdef QT_HAVE_CUDA
    if (b->cuda) return qt_bench_cuda_gemm_handle(b->cuda);
#endif
    (void)b;
    return NULL;
}

void qt_bench_shape(qt_bench *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->shape, sizeof b->shape, fmt, ap);
    va_end(ap);
    b->ref = NULL;
}

void qt_bench_ref(qt_bench *b, const char *name, double ms) {
    b->ref = name;
    b->ref_ms = ms;
}

// ---- output

static const char *device_name(qt_bench_device d) { return d == QT_BENCH_CUDA ? "cuda" : "cpu"; }

// s as the body of a JSON string (our strings are ASCII; quotes, backslashes and controls are
// escaped).
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

// A table number: whole above 1000, else significant digits (ms: 4 with trailing zeros, rates:
// 3), so that a tiny op's rate never prints as 0.
static void fmt_num(char *buf, size_t len, double v, int ms) {
    if (v >= 999.5) // not %.3g's "1e+03"
        snprintf(buf, len, "%.0f", v);
    else
        snprintf(buf, len, ms ? "%#.4g" : "%.3g", v);
}

static const char *table_format = "%-12s %-20s %-10s %-36s %9s %9s %6s %8s %9s %6s %-7s %s\n";

static void print_row(qt_bench *b, const char *op, double bytes, double flops,
                      const qt_bench_result *r) {
    const double t = r->ms_median * 1e-3;
    const double gbps = bytes / t * 1e-9, gflops = flops / t * 1e-9;
    const double t_flops = flops / b->peak, t_bytes = bytes / b->bw;
    const double t_roof = t_flops > t_bytes ? t_flops : t_bytes;
    const double pct = 100.0 * t_roof / t;
    const char *bound = t_flops > t_bytes ? "compute" : "memory";
    const double spread = 100.0 * r->iqr_ms / r->ms_median;
    FILE *f = b->out;
    if (b->o.json) {
        fprintf(f,
                "{\"bench\":\"%s_%s\",\"family\":\"%s\",\"op\":\"%s\",\"device\":\"%s\","
                "\"model\":\"%s\",\"shape\":",
                b->family, op, b->family, op, device_name(b->o.device), b->model);
        json_str(f, b->shape);
        fprintf(f,
                ",\"dtype\":\"%s\",\"reps\":%d,\"ms_min\":%.6g,\"ms_median\":%.6g,"
                "\"ms_max\":%.6g,\"iqr_pct\":%.4g,\"bytes\":%.6g,\"flops\":%.6g,"
                "\"gbps\":%.6g,\"gflops\":%.6g,\"roofline_pct\":%.4g,\"bound\":\"%s\"",
                qt_dtype_name(qt_bench_dtype(b)), r->reps, r->ms_min, r->ms_median, r->ms_max,
                spread, bytes, flops, gbps, gflops, pct, bound);
        if (b->ref) fprintf(f, ",\"ref\":\"%s\",\"vs_ref\":%.4g", b->ref, b->ref_ms / r->ms_median);
        fputs("}\n", f);
    } else {
        char ms[24], mn[24], sp[24], gb[24], gf[24], pc[24], vs[64] = "";
        fmt_num(ms, sizeof ms, r->ms_median, 1);
        fmt_num(mn, sizeof mn, r->ms_min, 1);
        snprintf(sp, sizeof sp, "%.0f%%", spread);
        fmt_num(gb, sizeof gb, gbps, 0);
        fmt_num(gf, sizeof gf, gflops, 0);
        fmt_num(pc, sizeof pc, pct, 0);
        if (b->ref) snprintf(vs, sizeof vs, "%.2fx %s", b->ref_ms / r->ms_median, b->ref);
        fprintf(f, table_format, b->family, op, b->model, b->shape, ms, mn, sp, gb, gf, pc, bound,
                vs);
    }
    fflush(f);
}

// One "skipped" line: a family without calls for the device (op NULL) or one case.
static void print_skipped(qt_bench *b, const char *family, const char *op, const char *why) {
    if (b->o.json) {
        fprintf(b->out, "{\"bench\":\"%s%s%s\",\"family\":\"%s\",\"device\":\"%s\",", family,
                op ? "_" : "", op ? op : "", family, device_name(b->o.device));
        if (op) {
            fprintf(b->out, "\"op\":\"%s\",\"shape\":", op);
            json_str(b->out, b->shape);
            fputc(',', b->out);
        }
        fputs("\"skipped\":", b->out);
        json_str(b->out, why);
        fputs("}\n", b->out);
    } else if (op) {
        fprintf(b->out, "%-12s %-20s %-10s %-36s skipped: %s\n", family, op, b->model, b->shape,
                why);
    } else {
        fprintf(b->out, "%-12s skipped: %s\n", family, why);
    }
    fflush(b->out);
}

void qt_bench_skip(qt_bench *b, const char *op, const char *why) {
    print_skipped(b, b->family, op, why);
}

// ---- timing

static qt_status time_call(qt_bench *b, qt_bench_fn fn, void *arg, double *ms) {
#ifdef QT_HAVE_CUDA
    if (b->cuda) return qt_bench_cuda_time(b->cuda, fn, arg, ms);
#endif
    (void)b;
    const double t0 = now_s();
    QT_TRY(fn(arg));
    *ms = (now_s() - t0) * 1e3;
    return QT_OK;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

qt_status qt_bench_run(qt_bench *b, const char *op, double bytes, double flops, qt_bench_fn fn,
                       void *arg, qt_bench_result *res) {
    QT_ASSERT(bytes > 0 && flops > 0, "bench %s %s: bytes %g and flops %g must be > 0", b->family,
              op, bytes, flops);
    QT_TRY(b->alloc_err);
    double ms = 0;
    const double warm_end = now_s() + WARMUP_S;
    for (int w = 0; w < WARMUP_MAX; w++) {
        QT_TRY(time_call(b, fn, arg, &ms));
        if (now_s() >= warm_end) break;
    }
    const int cap = b->o.reps > 0 ? b->o.reps : MAX_REPS;
    if (cap > b->cap_times) {
        double *t = realloc(b->times, (size_t)cap * sizeof *t);
        if (!t) return qt_error(QT_ERR_OOM, "bench: cannot hold %d repetition times", cap);
        b->times = t;
        b->cap_times = cap;
    }
    int n = 0;
    const double t0 = now_s();
    while (n < cap) {
        QT_TRY(time_call(b, fn, arg, &b->times[n]));
        n++;
        if (b->o.reps == 0 && n >= MIN_REPS && now_s() - t0 >= BUDGET_S) break;
    }
    qsort(b->times, (size_t)n, sizeof *b->times, cmp_double);
    qt_bench_result r;
    r.reps = n;
    r.ms_min = b->times[0];
    r.ms_max = b->times[n - 1];
    r.ms_median = n % 2 ? b->times[n / 2] : 0.5 * (b->times[n / 2 - 1] + b->times[n / 2]);
    // Quartiles by nearest rank (with fewer than 4 repetitions: the whole range).
    r.iqr_ms = n < 4 ? r.ms_max - r.ms_min : b->times[(3 * n - 1) / 4] - b->times[n / 4];
    // A clock tick can read 0 for a tiny op: floor at 1 ns so the rates stay finite.
    if (r.ms_median < 1e-6) r.ms_median = 1e-6;
    if (r.ms_min < 1e-6) r.ms_min = 1e-6;
    print_row(b, op, bytes, flops, &r);
    if (res) *res = r;
    return QT_OK;
}

// call(arg, op) as a qt_bench_fn.
typedef struct {
    qt_bench_call call;
    void *arg;
    int op;
} op_call;

static qt_status call_op(void *p) {
    const op_call *c = p;
    return c->call(c->arg, c->op);
}

qt_status qt_bench_run_case(qt_bench *b, qt_bench_call call, void *arg, const qt_bench_case *c,
                            qt_bench_result *res) {
    op_call oc = {call, arg, c->op};
    return qt_bench_run(b, c->name, c->bytes, c->flops, call_op, &oc, res);
}

qt_status qt_bench_run_cases(qt_bench *b, qt_bench_call call, void *arg, const qt_bench_case *cases,
                             int n) {
    for (int i = 0; i < n; i++)
        QT_TRY(qt_bench_run_case(b, call, arg, &cases[i], NULL));
    return QT_OK;
}

const char *qt_bench_softmax_variant(int v, qt_softmax_params *prm) {
    static const struct {
        const char *suffix;
        qt_softmax_params prm;
    } variants[QT_BENCH_SOFTMAX_VARIANTS] = {
        {"", {.kind = QT_SOFTMAX_VANILLA, .zeta = 1, .eta = 1, .beta = 1}},
        {"_clipped",
         {.kind = QT_SOFTMAX_CLIPPED, .gamma = -0.03f, .zeta = 1.0f, .eta = 1, .beta = 1}},
        {"_ncs", {.kind = QT_SOFTMAX_NCS, .zeta = 1, .eta = 1.03f, .beta = 1.0f}},
    };
    *prm = variants[v].prm;
    return variants[v].suffix;
}

qt_status qt_bench_softmax_variants(qt_bench *b, qt_bench_call call, void *arg,
                                    qt_softmax_params *prm, float scale,
                                    const qt_bench_case fwd_bwd[2], const double clip_flops[2]) {
    qt_bench_result vanilla[2] = {{0}};
    for (int v = 0; v < QT_BENCH_SOFTMAX_VARIANTS; v++) {
        const char *suffix = qt_bench_softmax_variant(v, prm);
        prm->scale = scale;
        for (int i = 0; i < 2; i++) {
            char name[32];
            snprintf(name, sizeof name, "%s%s", fwd_bwd[i].name, suffix);
            const qt_bench_case c = {name, fwd_bwd[i].op, fwd_bwd[i].bytes,
                                     fwd_bwd[i].flops + (v ? clip_flops[i] : 0)};
            qt_bench_ref(b, v ? "vanilla" : NULL, vanilla[i].ms_median);
            QT_TRY(qt_bench_run_case(b, call, arg, &c, v ? NULL : &vanilla[i]));
        }
    }
    return QT_OK;
}

// ---- the machine (CPU): sgemm peak and copy bandwidth

static double cpu_sgemm_peak(int n, int reps) {
    const size_t nn = (size_t)n * n;
    float *A = malloc(nn * sizeof(float)), *B = malloc(nn * sizeof(float));
    float *C = malloc(nn * sizeof(float));
    double best = 0;
    if (A && B && C) {
        uint64_t s = 0x9E3779B97F4A7C15ull;
        for (size_t i = 0; i < nn; i++) {
            A[i] = (float)(rng_next(&s) >> 40) * 0x1p-24f - 0.5f;
            B[i] = (float)(rng_next(&s) >> 40) * 0x1p-24f - 0.5f;
        }
        for (int r = 0; r <= reps; r++) { // r = 0 warms up (threads, page faults)
            const double t0 = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f,
                        C, n);
            const double t = now_s() - t0;
            if (r > 0 && (best == 0 || t < best)) best = t;
        }
    }
    free(A);
    free(B);
    free(C);
    return best > 0 ? 2.0 * n * (double)nn / best : 0;
}

// The last-level cache of CPU 0 from Linux's sysfs (the highest cache level listed; sysconf's
// _SC_LEVEL3_CACHE_SIZE can report a whole host's cache inside a VM); 0 if unknown.
static size_t llc_bytes(void) {
    size_t best = 0;
    int best_level = 0;
    for (int i = 0; i < 16; i++) {
        char path[96], buf[32];
        int level = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        FILE *f = fopen(path, "r");
        if (!f) break;
        if (fscanf(f, "%d", &level) != 1) level = 0;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        f = fopen(path, "r");
        if (!f) continue;
        if (fgets(buf, sizeof buf, f)) {
            char *end = NULL;
            unsigned long long v = strtoull(buf, &end, 10);
            if (end && (*end == 'K' || *end == 'k'))
                v <<= 10;
            else if (end && (*end == 'M' || *end == 'm'))
                v <<= 20;
            if (level >= best_level && v > 0) {
                best_level = level;
                best = (size_t)v;
            }
        }
        fclose(f);
    }
    return best;
}

// Each thread copies its share with memcpy (the threads in use, as the ops have), after
// touching its pages in the same split.
static double cpu_copy_bw(size_t bytes, int reps) {
    char *src = malloc(bytes), *dst = malloc(bytes);
    double best = 0;
    if (src && dst) {
        for (int r = -1; r <= reps; r++) { // r = -1 first-touches, r = 0 warms up
            const double t0 = now_s();
#pragma omp parallel
            {
                const size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
                const size_t lo = bytes / nt * t & ~(size_t)63;
                const size_t hi = t + 1 == nt ? bytes : bytes / nt * (t + 1) & ~(size_t)63;
                if (r < 0) {
                    memset(src + lo, 1, hi - lo);
                    memset(dst + lo, 0, hi - lo);
                } else {
                    memcpy(dst + lo, src + lo, hi - lo);
                }
            }
            const double t = now_s() - t0;
            if (r > 0 && (best == 0 || t < best)) best = t;
        }
    }
    free(src);
    free(dst);
    return best > 0 ? 2.0 * (double)bytes / best : 0;
}

static void cpu_model_name(char *out, size_t len) {
    snprintf(out, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strcspn(v, "\n");
        snprintf(out, len, "%.*s", (int)n, v);
        break;
    }
    fclose(f);
}

// ---- open, close, families

static void print_header(qt_bench *b, const char *peak_desc, const char *copy_desc) {
    FILE *f = b->out;
    char date[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tm);
    const int threads = omp_get_max_threads();
    if (b->o.json) {
        fprintf(f, "{\"machine\":\"%s\",\"name\":", device_name(b->o.device));
        json_str(f, b->machine);
        fprintf(f,
                ",\"date\":\"%s\",\"threads\":%d,\"dtype\":\"%s\",\"peak_gflops\":%.6g,"
                "\"peak_op\":",
                date, threads, qt_dtype_name(qt_bench_dtype(b)), b->peak * 1e-9);
        json_str(f, peak_desc);
        fprintf(f, ",\"copy_gbps\":%.6g,\"copy_op\":", b->bw * 1e-9);
        json_str(f, copy_desc);
        fprintf(f, ",\"llc_bytes\":%zu,\"quick\":%d}\n", b->llc, b->o.quick);
    } else {
        char how[64];
        if (b->o.device == QT_BENCH_CUDA)
            snprintf(how, sizeof how, "fp16 storage, CUDA events around each call");
        else
            snprintf(how, sizeof how, "%d OpenMP threads", threads);
        fprintf(f, "qtrain bench: %s, %s, %s, %s%s\n", device_name(b->o.device), b->machine, how,
                date, b->o.quick ? ", --quick shapes" : "");
        fprintf(f, "roofline: peak %.1f GFLOP/s (%s), copy %.1f GB/s (%s)\n", b->peak * 1e-9,
                peak_desc, b->bw * 1e-9, copy_desc);
        fprintf(f,
                "ms: median of the repetitions after a warm-up (%s), the minimum and "
                "iqr = interquartile range / median beside it;\nGB/s, GFLOP/s from the "
                "median; roof%% = 100 max(flops / peak, bytes / copy) / median, bound: the "
                "larger term;\n",
                b->o.reps > 0 ? "--reps" : "at least 3, until 0.3 s");
        if (b->o.device == QT_BENCH_CPU && b->llc)
            fprintf(f,
                    "roof%% over 100: the op's bytes fit in the %zu MiB last-level cache, "
                    "faster than the copy's DRAM bandwidth\n",
                    b->llc >> 20);
        fprintf(f, table_format, "family", "op", "model", "shape", "ms", "ms min", "iqr", "GB/s",
                "GFLOP/s", "roof%", "bound", "vs ref");
    }
    fflush(f);
}

qt_status qt_bench_open(qt_bench **out, const qt_bench_options *o, FILE *f) {
    *out = NULL;
#ifndef QT_HAVE_CUDA
    if (o->device == QT_BENCH_CUDA)
        return qt_error(QT_ERR_UNSUPPORTED,
                        "--device cuda: this qtrain was built without the CUDA toolkit (nvcc); "
                        "rebuild where nvcc is installed, or use --device cpu");
#endif
    qt_bench *b = calloc(1, sizeof *b);
    if (!b) return qt_error(QT_ERR_OOM, "bench: out of memory");
    b->o = *o;
    b->out = f;
    b->rng = 0x243F6A8885A308D3ull;
    b->family = "machine";
    char peak_desc[128], copy_desc[128];
    if (o->device == QT_BENCH_CUDA) {
#ifdef QT_HAVE_CUDA
        qt_status st = qt_bench_cuda_open(&b->cuda, b->machine, sizeof b->machine);
        const int n = o->quick ? 1024 : 8192;
        const size_t bytes = o->quick ? (size_t)64 << 20 : (size_t)1 << 30;
        if (st == QT_OK) st = qt_bench_cuda_peak_gemm(b->cuda, n, o->quick ? 2 : 5, &b->peak);
        if (st == QT_OK) st = qt_bench_cuda_peak_copy(b->cuda, bytes, o->quick ? 2 : 10, &b->bw);
        if (st != QT_OK) {
            qt_bench_close(b);
            return st;
        }
        snprintf(peak_desc, sizeof peak_desc,
                 "cuBLASLt fp16 GEMM, fp32 accumulation, %d^3, "
                 "best of %d",
                 n, o->quick ? 2 : 5);
        snprintf(copy_desc, sizeof copy_desc,
                 "cudaMemcpyAsync device to device, %zu MiB, read "
                 "+ written, best of %d",
                 bytes >> 20, o->quick ? 2 : 10);
#endif
    } else {
        cpu_model_name(b->machine, sizeof b->machine);
        const int n = o->quick ? 512 : 2048, reps = o->quick ? 2 : 5;
        const size_t llc = llc_bytes();
        size_t bytes = LLC_COPY_MULT * llc;
        if (bytes < COPY_MIN_BYTES) bytes = COPY_MIN_BYTES;
        if (bytes > COPY_MAX_BYTES) bytes = COPY_MAX_BYTES;
        if (o->quick) bytes = (size_t)16 << 20;
        b->llc = llc;
        b->peak = cpu_sgemm_peak(n, reps);
        b->bw = cpu_copy_bw(bytes, o->quick ? 2 : 5);
        if (!(b->peak > 0) || !(b->bw > 0)) {
            qt_bench_close(b);
            return qt_error(QT_ERR_OOM,
                            "bench: cannot allocate the machine measurement's "
                            "buffers (%zu MiB)",
                            2 * bytes >> 20);
        }
        snprintf(peak_desc, sizeof peak_desc, "OpenBLAS sgemm %d^3, %d threads, best of %d", n,
                 openblas_get_num_threads(), reps);
        snprintf(copy_desc, sizeof copy_desc,
                 "memcpy of %zu MiB on %d threads, read + written, "
                 "best of %d",
                 bytes >> 20, omp_get_max_threads(), o->quick ? 2 : 5);
    }
    print_header(b, peak_desc, copy_desc);
    *out = b;
    return QT_OK;
}

void qt_bench_close(qt_bench *b) {
    if (!b) return;
    release_all(b);
#ifdef QT_HAVE_CUDA
    if (b->cuda) qt_bench_cuda_close(b->cuda);
#endif
    free(b->allocs);
    free(b->times);
    free(b);
}

qt_status qt_bench_run_family(qt_bench *b, const qt_bench_family *f) {
    const qt_bench_call call = b->o.device == QT_BENCH_CUDA ? f->cuda : f->cpu;
    if (!call) {
        print_skipped(b, f->name, NULL, f->cuda_none ? f->cuda_none : "no calls for this device");
        return QT_OK;
    }
    b->family = f->name;
    static const qt_bench_model *const quick[] = {&qt_bench_model_quick, NULL};
    const qt_bench_model *const *models = b->o.quick ? quick : f->models;
    for (int i = 0; models[i]; i++) {
        const qt_bench_model *m =
            b->o.device == QT_BENCH_CUDA && models[i]->cuda ? models[i]->cuda : models[i];
        b->model = m->name;
        b->shape[0] = '\0';
        b->ref = NULL;
        qt_status st = f->run(b, m, call);
        release_all(b);
        if (st != QT_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", qt_last_error());
            return qt_error(st, "bench %s (%s, %s %s): %s", f->name, device_name(b->o.device),
                            m->name, b->shape, msg);
        }
    }
    return QT_OK;
}

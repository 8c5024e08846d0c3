// cuemu_runtime.cpp: the emulator's scheduler: worker threads, fibers, barriers, warp
// collectives, and the checks that abort with block and thread coordinates.
//
// Per worker OS thread: a pool of up to 1024 fibers (one per CUDA thread of the running block,
// each with its own mmap'ed stack below a guard page) and a run queue. A fiber runs until it
// waits (barrier, collective) or exits, then switches directly to the next fiber in the queue;
// when the queue is empty it switches back to the worker's scheduler context, which either
// finds the block finished or no thread able to continue (a deadlock, reported).
//
// Checks, all eager where the situation is already hopeless:
//   - __syncthreads with a thread of the block exited, or at two different call sites;
//   - a warp collective whose mask leaves out the caller, or names a lane that has exited or
//     does not exist (partial last warp), or lanes at different kinds of collective;
//   - no runnable thread left (deadlock), with a table of what every thread waits at;
//   - a thread running for QT_CUEMU_WATCHDOG_S seconds without reaching a barrier (spin loop);
//   - crashes (SIGSEGV & co.) and sanitizer reports get the kernel, block and thread appended.
//
// Sanitizer builds: ASan is told about every stack switch (__sanitizer_{start,finish}_switch_
// fiber) and runs one worker; TSan gets a TSan fiber per CUDA thread, switched to without
// synchronization, so that only the barriers and collectives (release on arrival, acquire on
// leaving) order the threads' accesses: what they do not order is a data race.
#include "cuemu_internal.h"
#include "cuemu_fiber.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <mutex>
#include <string>
#include <vector>

#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace cuemu {
namespace detail {

QT_CUEMU_TLS uint3 tl_thread_idx;
QT_CUEMU_TLS uint3 tl_block_idx;
QT_CUEMU_TLS dim3 tl_block_dim;
QT_CUEMU_TLS dim3 tl_grid_dim;
QT_CUEMU_TLS void *tl_dynamic_smem;

namespace {

constexpr bool k_asan = QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_ASAN;
constexpr unsigned k_max_fibers = k_max_threads_per_block;
constexpr unsigned k_no_tid = ~0u;
constexpr size_t k_color_window = 16 * 1024;

#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_TSAN
inline void tsan_release(void *a) { __tsan_release(a); }
inline void tsan_acquire(void *a) { __tsan_acquire(a); }
#else
inline void tsan_release(void *) {}
inline void tsan_acquire(void *) {}
#endif

// One cp.async in flight: the bytes it will write (read from global memory at issue, the
// source-size tail zero-filled) and where; it lands when a wait covering `group` runs.
struct cp_async_copy {
    void *dst;
    unsigned group;
    unsigned size;
    const char *file;
    int line;
    unsigned char bytes[16];
};

enum fiber_state : uint8_t { F_READY, F_RUNNING, F_BARRIER, F_WARP, F_EXITED };

struct worker;

// One CUDA thread (or, for `sched`, a worker's own context).
struct fiber {
    exec_context ctx;
    char *stack_lo = nullptr;  // usable stack [stack_lo, stack_lo + stack_size)
    size_t stack_size = 0;
    worker *w = nullptr;
    unsigned tid = k_no_tid;  // linear index in the block: x + y*Dx + z*Dx*Dy
    unsigned lane = 0, warp = 0;
    uint3 idx{0, 0, 0};
    uint8_t state = F_READY;
    // What the fiber waits at (valid in F_BARRIER / F_WARP).
    int op = 0;
    const char *file = nullptr;
    int line = 0;
    unsigned mask = 0;
    void *tsan_fiber = nullptr;
    void *asan_fake_stack = nullptr;
    char *exit_frame = nullptr;  // ASan: where the last CUDA thread on this stack left it
    // cp.async copies issued and not yet landed, in issue order, and the index of the group
    // the next cp.async joins (the number of cp.async.commit_group run so far).
    std::vector<cp_async_copy> cp_pending;
    unsigned cp_open_group = 0;
};

// Per warp, with the arguments of pending collectives stored by lane (structure of arrays: the
// lane completing a collective reads all 32 lanes' entries from a few cache lines).
struct warp_state {
    unsigned exists;   // lanes the block has (all 32 but in a partial last warp)
    unsigned alive;    // existing lanes that have not exited
    unsigned waiting;  // lanes blocked in a collective
    unsigned mask[32];
    uint8_t op[32], size[32], width[32];
    int b[32];
    uint64_t value[32], result[32];
    char sync[32];  // TSan sync objects, one per lowest lane of a collective's mask
};

struct worker {
    int index = 0;
    pthread_t thread{};
    fiber sched;
    fiber *fibers = nullptr;  // k_max_fibers slots
    unsigned fibers_ready = 0;  // slots whose stack and sanitizer state are set up
    char *stack_region = nullptr;
    size_t slot_size = 0, guard_size = 0;

    // The running block.
    uint64_t block_linear = 0;
    uint3 block_idx{0, 0, 0};
    unsigned nthreads = 0, live = 0, exited = 0;
    fiber *first_exited = nullptr;
    fiber *rq[k_max_fibers];  // ready ring
    unsigned rq_head = 0, rq_count = 0;
    // __syncthreads
    unsigned bar_count = 0;
    int bar_op = 0, bar_line = 0, bar_acc = 0, bar_result = 0;
    const char *bar_file = nullptr;
    fiber *bar_first = nullptr;
    fiber *bar_wait[k_max_fibers];
    char bar_sync = 0;
    warp_state warps[k_max_fibers / 32];

    // Shared memory.
    char *dyn_map = nullptr;  // normal/TSan: [buffer pages][guard page]
    size_t dyn_map_size = 0;
    void *dyn_asan = nullptr;  // ASan: malloc of exactly the launch's bytes
    uint64_t block_gen = 0;
    std::vector<std::pair<void *, uint64_t>> shared_regs;  // static arrays: last block filled

    char start_sync = 0, end_sync = 0;  // TSan: scheduler -> fibers, fibers -> scheduler
    unsigned long long switches = 0;
    std::atomic<unsigned long long> progress{0};
    std::atomic<unsigned> running_tid{k_no_tid};
    std::atomic<uint64_t> running_block{0};
    std::atomic<bool> busy{false};
    void *altstack = nullptr;
};

// The launch being run (one at a time).
struct launch_state {
    launch_desc d{};
    char name[160] = "?";
    uint64_t nblocks = 0;
    std::atomic<uint64_t> next_block{0};
};

struct pool_state {
    std::mutex m;
    std::condition_variable cv_work, cv_done;
    std::vector<worker *> workers;
    uint64_t generation = 0;
    unsigned done = 0;
    bool created = false;
};

// Never destroyed: workers wait on the condition variables until the process ends, and
// glibc's pthread_cond_destroy at exit would wait for them forever.
pool_state &g_pool = *new pool_state();
launch_state g_launch;
std::mutex &g_launch_mutex = *new std::mutex();
std::atomic<bool> g_fatal_reported{false};
size_t g_stack_size = 0;
double g_watchdog_s = 60.0;

QT_CUEMU_TLS fiber *tl_cur = nullptr;  // the running CUDA thread, null outside kernels

// ---- messages --------------------------------------------------------------------------------

std::string strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
std::string strf(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

std::string coords(const fiber *f) {
    return strf("thread (%u,%u,%u)", f->idx.x, f->idx.y, f->idx.z);
}

std::string block_coords(const worker *w) {
    return strf("block (%u,%u,%u)", w->block_idx.x, w->block_idx.y, w->block_idx.z);
}

std::string site(const char *file, int line) {
    if (!file) return "?";
    const char *base = strrchr(file, '/');
    return strf("%s:%d", base ? base + 1 : file, line);
}

const char *op_name(int op) {
    switch (op) {
        case OP_SYNCWARP: return "__syncwarp";
        case OP_SHFL_IDX: return "__shfl_sync";
        case OP_SHFL_UP: return "__shfl_up_sync";
        case OP_SHFL_DOWN: return "__shfl_down_sync";
        case OP_SHFL_XOR: return "__shfl_xor_sync";
        case OP_BALLOT: return "__ballot_sync";
        case OP_ANY: return "__any_sync";
        case OP_ALL: return "__all_sync";
        case OP_REDUCE_ADD: return "__reduce_add_sync";
        case OP_REDUCE_MIN_U:
        case OP_REDUCE_MIN_S: return "__reduce_min_sync";
        case OP_REDUCE_MAX_U:
        case OP_REDUCE_MAX_S: return "__reduce_max_sync";
        case OP_REDUCE_AND: return "__reduce_and_sync";
        case OP_REDUCE_OR: return "__reduce_or_sync";
        case OP_REDUCE_XOR: return "__reduce_xor_sync";
        case OP_MATCH_ANY: return "__match_any_sync";
        case OP_MATCH_ALL: return "__match_all_sync";
        default: return "warp collective";
    }
}

const char *barrier_name(int op) {
    switch (op) {
        case BAR_COUNT: return "__syncthreads_count";
        case BAR_AND: return "__syncthreads_and";
        case BAR_OR: return "__syncthreads_or";
        default: return "__syncthreads";
    }
}

[[noreturn]] void die(const std::string &msg) {
    g_fatal_reported.store(true);
    std::string line = "cuemu: " + msg + "\n";
    fputs(line.c_str(), stderr);
    fflush(stderr);
    abort();
}

// "in kernel K, block (..)": the prefix of every report about a running block.
std::string where(const worker *w) {
    return strf("in kernel %s, %s", g_launch.name, block_coords(w).c_str());
}

// ---- environment -------------------------------------------------------------------------------

long env_long(const char *name, long dflt, long lo, long hi, const char *fix) {
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end = nullptr;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        die(strf("%s='%s' is not an integer in [%ld, %ld]; %s", name, s, lo, hi, fix));
    return v;
}

unsigned default_workers() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return static_cast<unsigned>(n);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<unsigned>(n) : 1u;
}

// ---- fiber switching -----------------------------------------------------------------------------

// Switches from `from` to `to` on worker w. `exiting`: `from` will never run again.
inline void switch_to(worker *w, fiber *from, fiber *to, bool exiting) {
    if (to == &w->sched) {
        tl_cur = nullptr;
    } else {
        tl_cur = to;
        tl_thread_idx = to->idx;
    }
    w->running_tid.store(to->tid, std::memory_order_relaxed);
    w->switches++;
#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_ASAN
    __sanitizer_start_switch_fiber(exiting ? nullptr : &from->asan_fake_stack, to->stack_lo,
                                   to->stack_size);
#else
    (void)exiting;
#endif
#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
    cuemu_ctx_swap(&from->ctx, &to->ctx);
#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake_stack, nullptr, nullptr);
#endif
}

inline void rq_push(worker *w, fiber *f) {
    w->rq[(w->rq_head + w->rq_count) & (k_max_fibers - 1)] = f;
    w->rq_count++;
}

inline fiber *rq_pop(worker *w) {
    if (w->rq_count == 0) return nullptr;
    fiber *f = w->rq[w->rq_head];
    w->rq_head = (w->rq_head + 1) & (k_max_fibers - 1);
    w->rq_count--;
    return f;
}

// Gives the worker to the next ready thread (or the scheduler) until someone readies f again.
inline void wait_here(worker *w, fiber *f) {
    fiber *next = rq_pop(w);
    switch_to(w, f, next ? next : &w->sched, false);
    f->state = F_RUNNING;
}

fiber *lane_fiber(worker *w, unsigned warp, unsigned lane) { return &w->fibers[warp * 32 + lane]; }

// ---- reports about a block -------------------------------------------------------------------------

std::string describe_wait(const fiber *f) {
    switch (f->state) {
        case F_EXITED: return "exited";
        case F_BARRIER: return strf("waiting at %s (%s)", barrier_name(f->op), site(f->file, f->line).c_str());
        case F_WARP:
            return strf("waiting at %s with mask 0x%08x (%s)", op_name(f->op), f->mask,
                        site(f->file, f->line).c_str());
        case F_READY: return "ready";
        default: return "running";
    }
}

// Every thread's state, runs of equal states merged: "threads (0,0,0)..(15,0,0) [tid 0-15]: ...".
std::string state_table(worker *w) {
    std::string out;
    unsigned lines = 0;
    for (unsigned t = 0; t < w->nthreads;) {
        std::string d = describe_wait(&w->fibers[t]);
        unsigned e = t + 1;
        while (e < w->nthreads && describe_wait(&w->fibers[e]) == d) e++;
        if (++lines > 24) {
            out += "\n    ...";
            break;
        }
        if (e - t == 1)
            out += strf("\n    %s [tid %u]: %s", coords(&w->fibers[t]).c_str(), t, d.c_str());
        else
            out += strf("\n    threads (%u,%u,%u)..(%u,%u,%u) [tid %u-%u]: %s", w->fibers[t].idx.x,
                        w->fibers[t].idx.y, w->fibers[t].idx.z, w->fibers[e - 1].idx.x,
                        w->fibers[e - 1].idx.y, w->fibers[e - 1].idx.z, t, e - 1, d.c_str());
        t = e;
    }
    return out;
}

// Why lane `m` (of the same warp) cannot join the group of f: "thread (..), which ...".
std::string lane_status(const fiber *m) {
    return coords(m) + strf(" (lane %u), which is ", m->lane) + describe_wait(m);
}

[[noreturn]] void report_deadlock(worker *w) {
    std::string reason = "every remaining thread waits for another";
    for (unsigned t = 0; t < w->nthreads; t++) {
        fiber *f = &w->fibers[t];
        if (f->state != F_WARP) continue;
        for (unsigned l = 0; l < 32; l++) {
            if (!((f->mask >> l) & 1u)) continue;
            fiber *m = lane_fiber(w, f->warp, l);
            if (m->state == F_WARP && m->mask == f->mask) continue;
            reason = strf("%s waits at %s with mask 0x%08x (%s) for %s",
                          coords(f).c_str(), op_name(f->op), f->mask, site(f->file, f->line).c_str(),
                          lane_status(m).c_str());
            if (m->state == F_WARP)
                reason += "; all lanes of a warp collective must pass the same mask";
            break;
        }
        break;
    }
    die(strf("deadlock %s: no thread can continue: %s.\n  thread states:%s", where(w).c_str(),
             reason.c_str(), state_table(w).c_str()));
}

// ---- shared memory ------------------------------------------------------------------------------------

// 0xFF bytes: NaN as float, double, half and bfloat16; -1 as an integer. Written with rep stosb
// on x86-64 so that neither sanitizer counts it as an access of the thread that triggered it.
void fill_poison(void *p, size_t n) {
#if defined(__x86_64__)
    __asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(0xff) : "memory");
#else
    memset(p, 0xff, n);
#endif
}

size_t page_size() {
    static const size_t ps = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return ps;
}

size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

// Points tl_dynamic_smem at `bytes` of poisoned memory for the block about to run.
void setup_dynamic_smem(worker *w, size_t bytes) {
    if (k_asan) {
        free(w->dyn_asan);
        w->dyn_asan = malloc(bytes);
        if (!w->dyn_asan && bytes) die("out of memory for dynamic shared memory");
        if (bytes) fill_poison(w->dyn_asan, bytes);
        tl_dynamic_smem = w->dyn_asan;
        return;
    }
    size_t ps = page_size(), need = round_up(bytes, ps) + ps;
    if (need > w->dyn_map_size) {
        if (w->dyn_map) munmap(w->dyn_map, w->dyn_map_size);
        void *m = mmap(nullptr, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) die("mmap failed for dynamic shared memory");
        w->dyn_map = static_cast<char *>(m);
        w->dyn_map_size = need;
        if (mprotect(w->dyn_map + need - ps, ps, PROT_NONE) != 0) die("mprotect failed");
    }
    // End the buffer at the guard page (16-byte aligned start, as CUDA guarantees).
    char *guard = w->dyn_map + w->dyn_map_size - ps;
    char *p = guard - round_up(bytes, 16);
    if (bytes) fill_poison(p, bytes);
    tl_dynamic_smem = p;
}

// ---- fibers -------------------------------------------------------------------------------------------

void fiber_entry(void *arg);

void prepare_fibers(worker *w, unsigned n) {
    size_t ps = page_size();
    if (!w->fibers) {
        w->fibers = new fiber[k_max_fibers];
        w->guard_size = ps;
        w->slot_size = round_up(g_stack_size + k_color_window, ps) + ps;
        void *m = mmap(nullptr, w->slot_size * k_max_fibers, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            die(strf("cannot reserve %zu MiB of fiber stacks; lower QT_CUEMU_STACK_KB",
                     w->slot_size * k_max_fibers >> 20));
        w->stack_region = static_cast<char *>(m);
    }
    for (; w->fibers_ready < n; w->fibers_ready++) {
        fiber *f = &w->fibers[w->fibers_ready];
        char *slot = w->stack_region + w->slot_size * w->fibers_ready;
        if (mprotect(slot, w->guard_size, PROT_NONE) != 0) die("mprotect failed for a stack guard");
        // Stack tops at the same page offset would all fall in one L1/L2 cache set, and a block
        // touches every fiber's top frames at each barrier: shift each top by a different
        // multiple of 64 bytes (within k_color_window; the usable size stays >= g_stack_size).
        size_t color = (w->fibers_ready * 37u % (k_color_window / 64)) * 64;
        f->stack_lo = slot + w->guard_size;
        f->stack_size = w->slot_size - w->guard_size - color;
        f->w = w;
#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_TSAN
        f->tsan_fiber = __tsan_create_fiber(0);
#endif
    }
}

[[noreturn]] void fiber_exit(worker *w, fiber *f);

void fiber_entry(void *arg) {
    fiber *f = static_cast<fiber *>(arg);
    worker *w = f->w;
#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_ASAN
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    tsan_acquire(&w->start_sync);
    f->state = F_RUNNING;
    g_launch.d.invoke(g_launch.d.ctx);
    fiber_exit(w, f);
}

void fiber_exit(worker *w, fiber *f) {
    f->exit_frame = static_cast<char *>(__builtin_frame_address(0));
    if (!f->cp_pending.empty()) {
        const cp_async_copy &c = f->cp_pending.front();
        die(strf("cp.async %s: %s exited with %zu cp.async copies in flight (the first issued at "
                 "%s, group %u; %u groups committed); they would land in shared memory at an "
                 "unknown time: run cp.async.wait_group 0 (or wait_all) before the copies' "
                 "shared memory is read or reused, and before exit",
                 where(w).c_str(), coords(f).c_str(), f->cp_pending.size(),
                 site(c.file, c.line).c_str(), c.group, f->cp_open_group));
    }
    warp_state &ws = w->warps[f->warp];
    unsigned bit = 1u << f->lane;
    f->state = F_EXITED;
    w->live--;
    w->exited++;
    if (!w->first_exited) w->first_exited = f;
    ws.alive &= ~bit;
    if (w->bar_count > 0)
        die(strf("divergent __syncthreads %s: %s has exited while %s waits at %s (%s); every "
                 "thread of a block must reach the same __syncthreads (an early return before a "
                 "__syncthreads is undefined behaviour in CUDA)",
                 where(w).c_str(), coords(f).c_str(), coords(w->bar_first).c_str(),
                 barrier_name(w->bar_op), site(w->bar_file, w->bar_line).c_str()));
    for (unsigned l = 0; l < 32; l++) {
        if (!((ws.waiting >> l) & 1u)) continue;
        fiber *m = lane_fiber(w, f->warp, l);
        if (m->mask & bit)
            die(strf("%s %s: %s (warp %u lane %u) waits with mask 0x%08x (%s), which names "
                     "lane %u = %s, and that thread has exited; a collective's mask must name "
                     "only lanes that execute it",
                     op_name(m->op), where(w).c_str(), coords(m).c_str(), m->warp, m->lane,
                     m->mask, site(m->file, m->line).c_str(), f->lane, coords(f).c_str()));
    }
    w->progress.fetch_add(1, std::memory_order_relaxed);
    tsan_release(&w->end_sync);
    fiber *next = rq_pop(w);
    switch_to(w, f, next ? next : &w->sched, true);
    __builtin_unreachable();
}

// ---- blocks ---------------------------------------------------------------------------------------------

void run_block(worker *w, uint64_t b) {
    const dim3 g = g_launch.d.grid, bd = g_launch.d.block;
    w->block_linear = b;
    w->block_idx.x = static_cast<unsigned>(b % g.x);
    w->block_idx.y = static_cast<unsigned>((b / g.x) % g.y);
    w->block_idx.z = static_cast<unsigned>(b / (static_cast<uint64_t>(g.x) * g.y));
    tl_block_idx = w->block_idx;
    w->running_block.store(b, std::memory_order_relaxed);

    unsigned n = bd.x * bd.y * bd.z;
    prepare_fibers(w, n);
    w->nthreads = n;
    w->live = n;
    w->exited = 0;
    w->first_exited = nullptr;
    w->rq_head = 0;
    w->rq_count = 0;
    w->bar_count = 0;
    w->block_gen++;
    for (unsigned i = 0; i < (n + 31) / 32; i++) {
        unsigned lanes = n - i * 32;
        w->warps[i].exists = lanes >= 32 ? 0xffffffffu : (1u << lanes) - 1u;
        w->warps[i].alive = w->warps[i].exists;
        w->warps[i].waiting = 0;
    }
    setup_dynamic_smem(w, g_launch.d.smem);
    for (unsigned t = 0; t < n; t++) {
        fiber *f = &w->fibers[t];
        f->tid = t;
        f->idx.x = t % bd.x;
        f->idx.y = (t / bd.x) % bd.y;
        f->idx.z = t / (bd.x * bd.y);
        f->lane = t % 32;
        f->warp = t / 32;
        f->state = F_READY;
        f->cp_pending.clear();
        f->cp_open_group = 0;
#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_ASAN
        // The previous thread on this stack left without returning: the redzones of its live
        // frames (and of the switch below them) are still poisoned. Clear them.
        if (f->exit_frame) {
            char *top = f->stack_lo + f->stack_size;
            char *lo = f->exit_frame - 16384 > f->stack_lo ? f->exit_frame - 16384 : f->stack_lo;
            __asan_unpoison_memory_region(lo, static_cast<size_t>(top - lo));
            f->exit_frame = nullptr;
        }
#endif
        cuemu_ctx_make(&f->ctx, f->stack_lo, f->stack_size, fiber_entry, f);
#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_TSAN
        char name[96];
        snprintf(name, sizeof name, "cuemu block (%u,%u,%u) thread (%u,%u,%u)", w->block_idx.x,
                 w->block_idx.y, w->block_idx.z, f->idx.x, f->idx.y, f->idx.z);
        __tsan_set_fiber_name(f->tsan_fiber, name);
#endif
        rq_push(w, f);
    }
    w->progress.fetch_add(1, std::memory_order_relaxed);
    tsan_release(&w->start_sync);
    switch_to(w, &w->sched, rq_pop(w), false);
    tsan_acquire(&w->end_sync);
    if (w->live > 0) report_deadlock(w);
}

void run_launch(worker *w) {
    tl_block_dim = g_launch.d.block;
    tl_grid_dim = g_launch.d.grid;
    w->busy.store(true);
    for (;;) {
        uint64_t b = g_launch.next_block.fetch_add(1);
        if (b >= g_launch.nblocks) break;
        run_block(w, b);
    }
    w->busy.store(false);
    if (k_asan && w->dyn_asan) {
        free(w->dyn_asan);
        w->dyn_asan = nullptr;
    }
}

// ---- crash reports --------------------------------------------------------------------------------------

// Appends "in kernel K, block (..), thread (..)" to whatever report killed the process.
void append_uint(char *buf, size_t &n, size_t cap, unsigned long long v) {
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    while (k && n + 1 < cap) buf[n++] = tmp[--k];
}

void append_str(char *buf, size_t &n, size_t cap, const char *s) {
    while (*s && n + 1 < cap) buf[n++] = *s++;
}

void append_dim(char *buf, size_t &n, size_t cap, uint3 v) {
    append_str(buf, n, cap, "(");
    append_uint(buf, n, cap, v.x);
    append_str(buf, n, cap, ",");
    append_uint(buf, n, cap, v.y);
    append_str(buf, n, cap, ",");
    append_uint(buf, n, cap, v.z);
    append_str(buf, n, cap, ")");
}

// Async-signal-safe (no allocation, no stdio).
void write_location(const char *prefix, const char *suffix) {
    fiber *f = tl_cur;
    if (!f) return;
    char buf[512];
    size_t n = 0;
    append_str(buf, n, sizeof buf, prefix);
    append_str(buf, n, sizeof buf, " in kernel ");
    append_str(buf, n, sizeof buf, g_launch.name);
    append_str(buf, n, sizeof buf, ", block ");
    append_dim(buf, n, sizeof buf, f->w->block_idx);
    append_str(buf, n, sizeof buf, ", thread ");
    append_dim(buf, n, sizeof buf, f->idx);
    append_str(buf, n, sizeof buf, suffix);
    append_str(buf, n, sizeof buf, "\n");
    ssize_t r = write(2, buf, n);
    (void)r;
}

#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_NORMAL
void on_fatal_signal(int sig, siginfo_t *si, void *) {
    if (g_fatal_reported.load()) return;
    fiber *f = tl_cur;
    if (!f) return;
    const char *what = sig == SIGSEGV ? "cuemu: SIGSEGV" : sig == SIGBUS ? "cuemu: SIGBUS"
                     : sig == SIGFPE ? "cuemu: SIGFPE" : sig == SIGILL ? "cuemu: SIGILL"
                     : "cuemu: SIGABRT";
    const char *why = "";
    if (sig == SIGSEGV || sig == SIGBUS) {
        char *a = static_cast<char *>(si->si_addr);
        worker *w = f->w;
        char *guard = w->dyn_map ? w->dyn_map + w->dyn_map_size - page_size() : nullptr;
        if (guard && a >= guard && a < guard + page_size())
            why = " (past the end of dynamic shared memory)";
        else if (a >= w->stack_region && a < w->stack_region + w->slot_size * k_max_fibers &&
                 static_cast<size_t>(a - w->stack_region) % w->slot_size < w->guard_size)
            why = " (fiber stack overflow: raise QT_CUEMU_STACK_KB)";
    }
    write_location(what, why);
}

void install_signal_handlers() {
    const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (int s : sigs) {
        struct sigaction old;
        // Only over the default action: a handler someone else installed is not ours to replace.
        if (sigaction(s, nullptr, &old) != 0 || (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fatal_signal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(s, &sa, nullptr);
    }
}
#else
void on_sanitizer_death() { write_location("cuemu: the error above happened", ""); }
#endif

// ---- worker pool ----------------------------------------------------------------------------------------

void *worker_main(void *arg) {
    worker *w = static_cast<worker *>(arg);
    // An alternate signal stack, unless a sanitizer installed one: a crash on a fiber stack's
    // guard page can only be reported from there.
    stack_t ss;
    if (sigaltstack(nullptr, &ss) == 0 && (ss.ss_flags & SS_DISABLE)) {
        memset(&ss, 0, sizeof ss);
        ss.ss_size = 64 * 1024;
        w->altstack = malloc(ss.ss_size);
        ss.ss_sp = w->altstack;
        sigaltstack(&ss, nullptr);
    }
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *lo;
        size_t size;
        pthread_attr_getstack(&attr, &lo, &size);
        w->sched.stack_lo = static_cast<char *>(lo);
        w->sched.stack_size = size;
        pthread_attr_destroy(&attr);
    }
    w->sched.w = w;
#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_TSAN
    w->sched.tsan_fiber = __tsan_get_current_fiber();
#endif
    uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lk(g_pool.m);
            g_pool.cv_work.wait(lk, [&] { return g_pool.generation != seen; });
            seen = g_pool.generation;
        }
        run_launch(w);
        {
            std::lock_guard<std::mutex> lk(g_pool.m);
            if (++g_pool.done == g_pool.workers.size()) g_pool.cv_done.notify_all();
        }
    }
    return nullptr;
}

void pool_after_fork_in_child() {
    // The workers did not survive fork(): start new ones at the next launch.
    new (&g_pool) pool_state();
    new (&g_launch_mutex) std::mutex();
}

void ensure_pool() {
    if (g_pool.created) return;
    unsigned n = static_cast<unsigned>(env_long("QT_CUEMU_THREADS", default_workers(), 1, 256,
                                                "set it to the number of worker threads"));
    if (k_asan) n = 1;  // __shared__ is plain static storage: one block at a time
    long dflt_kb = QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_NORMAL ? 64 : 512;
    g_stack_size = static_cast<size_t>(env_long("QT_CUEMU_STACK_KB", dflt_kb, 16, 1 << 20,
                                                "set the fiber stack size in KiB")) * 1024;
    g_watchdog_s = static_cast<double>(env_long("QT_CUEMU_WATCHDOG_S", 60, 0, 1 << 30,
                                                "set seconds, or 0 to disable the watchdog"));
    static bool once = false;
    if (!once) {
        once = true;
        pthread_atfork(nullptr, nullptr, pool_after_fork_in_child);
#if QT_CUEMU_RUNTIME_MODE == QT_CUEMU_MODE_NORMAL
        install_signal_handlers();
#else
        __sanitizer_set_death_callback(on_sanitizer_death);
#endif
    }
    for (unsigned i = 0; i < n; i++) {
        worker *w = new worker();
        w->index = static_cast<int>(i);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        // The worker's own stack only runs the scheduler, but glibc carves static TLS (every
        // kernel's __shared__ arrays) out of it.
        pthread_attr_setstacksize(&attr, 32u << 20);
        if (pthread_create(&w->thread, &attr, worker_main, w) != 0)
            die("cannot start a worker thread; lower QT_CUEMU_THREADS");
        pthread_attr_destroy(&attr);
        g_pool.workers.push_back(w);
    }
    g_pool.created = true;
}

// The kernel's name from the QT_LAUNCH text: everything before the first top-level comma.
void extract_name(const char *text, char *out, size_t cap) {
    size_t n = 0;
    int depth = 0;
    for (const char *p = text ? text : "?"; *p && n + 1 < cap; p++) {
        if (*p == '<' || *p == '(' || *p == '[') depth++;
        if (*p == '>' || *p == ')' || *p == ']') depth--;
        if (*p == ',' && depth <= 0) break;
        if (*p == ' ' && n == 0) continue;
        out[n++] = *p;
    }
    out[n] = '\0';
}

}  // namespace

// ---- the interface used by kernels (cuemu.h) ---------------------------------------------------------------

int block_barrier(int op, int pred, const char *file, int line) {
    fiber *f = tl_cur;
    if (!f) die(strf("%s called outside a kernel (%s)", barrier_name(op), site(file, line).c_str()));
    worker *w = f->w;
    if (w->exited > 0)
        die(strf("divergent __syncthreads %s: %s reached %s (%s) after %s had exited; every "
                 "thread of a block must reach the same __syncthreads (an early return before a "
                 "__syncthreads is undefined behaviour in CUDA)",
                 where(w).c_str(), coords(f).c_str(), barrier_name(op), site(file, line).c_str(),
                 coords(w->first_exited).c_str()));
    if (w->bar_count == 0) {
        w->bar_op = op;
        w->bar_file = file;
        w->bar_line = line;
        w->bar_first = f;
        w->bar_acc = op == BAR_AND ? 1 : 0;
    } else if (line != w->bar_line || op != w->bar_op ||
               (file != w->bar_file && strcmp(file, w->bar_file) != 0)) {
        die(strf("divergent __syncthreads %s: %s waits at %s (%s) while %s waits at %s (%s); "
                 "all threads of a block must meet at the same __syncthreads",
                 where(w).c_str(), coords(w->bar_first).c_str(), barrier_name(w->bar_op),
                 site(w->bar_file, w->bar_line).c_str(), coords(f).c_str(), barrier_name(op),
                 site(file, line).c_str()));
    }
    int p = pred != 0;
    if (op == BAR_COUNT) w->bar_acc += p;
    if (op == BAR_AND) w->bar_acc &= p;
    if (op == BAR_OR) w->bar_acc |= p;
    tsan_release(&w->bar_sync);
    if (++w->bar_count == w->nthreads) {
        w->bar_result = w->bar_acc;
        for (unsigned i = 0; i + 1 < w->bar_count; i++) rq_push(w, w->bar_wait[i]);
        w->bar_count = 0;
        w->progress.fetch_add(1, std::memory_order_relaxed);
        tsan_acquire(&w->bar_sync);
        return w->bar_result;
    }
    w->bar_wait[w->bar_count - 1] = f;
    f->state = F_BARRIER;
    f->op = op;
    f->file = file;
    f->line = line;
    wait_here(w, f);
    tsan_acquire(&w->bar_sync);
    return w->bar_result;
}

namespace {

// Collectives that may meet in one group: all shuffles of one value size (each lane computes
// its own source), all votes; reductions and matches only with themselves.
int op_class(int op) {
    if (op >= OP_SHFL_IDX && op <= OP_SHFL_XOR) return 1;
    if (op >= OP_BALLOT && op <= OP_ALL) return 2;
    return 10 + op;
}

// The lane a shuffle reads (PTX shfl.sync: c = ((32 - width) << 8) | clamp, where clamp is 0
// for up and 31 otherwise); out-of-segment sources read the lane's own value.
unsigned shfl_source(int op, unsigned lane, int b, int width) {
    unsigned seg = (32u - static_cast<unsigned>(width)) & 31u;  // segment mask
    unsigned bval = static_cast<unsigned>(b) & 31u;
    unsigned lo = lane & seg, hi = (lane & seg) | (31u & ~seg);
    int j = static_cast<int>(lane);
    bool ok = true;
    switch (op) {
        case OP_SHFL_IDX: j = static_cast<int>(lo | (bval & ~seg & 31u)); break;
        case OP_SHFL_UP:
            j = static_cast<int>(lane) - static_cast<int>(bval);
            ok = j >= static_cast<int>(lo);
            break;
        case OP_SHFL_DOWN:
            j = static_cast<int>(lane + bval);
            ok = j <= static_cast<int>(hi);
            break;
        case OP_SHFL_XOR:
            j = static_cast<int>(lane ^ bval);
            ok = j <= static_cast<int>(hi);
            break;
        default: break;
    }
    return ok ? static_cast<unsigned>(j) : lane;
}

// All lanes of f's mask are waiting: check they agree, compute every lane's result, and make
// the others ready. Returns false if some lane waits with a different mask.
bool try_complete(worker *w, fiber *f) {
    warp_state &ws = w->warps[f->warp];
    const unsigned mask = f->mask, me = f->lane;
    const int op = ws.op[me], cls = op_class(op);
    // Branch-free (vectorizable) agreement checks over all 32 slots, masked afterwards.
    unsigned same_mask = 0, same_op = 0;
    for (unsigned l = 0; l < 32; l++) {
        same_mask |= static_cast<unsigned>(ws.mask[l] == mask) << l;
        same_op |= static_cast<unsigned>(ws.op[l] == op && ws.size[l] == ws.size[me]) << l;
    }
    if ((same_mask & mask) != mask) return false;
    if ((same_op & mask) != mask) {
        // Mixed shuffle kinds or mixed votes may meet; anything else is divergence.
        for (unsigned m = mask & ~same_op; m; m &= m - 1) {
            unsigned l = static_cast<unsigned>(__builtin_ctz(m));
            if (op_class(ws.op[l]) == cls && cls < 10 && ws.size[l] == ws.size[me]) continue;
            fiber *g = lane_fiber(w, f->warp, l);
            die(strf("divergent warp collective %s: %s (lane %u) is at %s (%s) while %s (lane "
                     "%u) is at %s (%s), with the same mask 0x%08x; the lanes of a mask must "
                     "execute the same collective",
                     where(w).c_str(), coords(f).c_str(), f->lane, op_name(f->op),
                     site(f->file, f->line).c_str(), coords(g).c_str(), g->lane, op_name(g->op),
                     site(g->file, g->line).c_str(), mask));
        }
    }
    uint64_t ballot = 0;
    uint32_t red = 0;
    if (cls == 2) {
        for (unsigned l = 0; l < 32; l++) ballot |= static_cast<uint64_t>(ws.value[l] != 0) << l;
        ballot &= mask;
    } else if (cls >= 10 && op != OP_MATCH_ANY && op != OP_MATCH_ALL && op != OP_SYNCWARP) {
        red = static_cast<uint32_t>(ws.value[me]);
        for (unsigned m = mask & ~(1u << me); m; m &= m - 1) {
            uint32_t v = static_cast<uint32_t>(ws.value[__builtin_ctz(m)]);
            switch (op) {
                case OP_REDUCE_ADD: red += v; break;
                case OP_REDUCE_MIN_U: red = v < red ? v : red; break;
                case OP_REDUCE_MAX_U: red = v > red ? v : red; break;
                case OP_REDUCE_MIN_S: red = static_cast<int32_t>(v) < static_cast<int32_t>(red) ? v : red; break;
                case OP_REDUCE_MAX_S: red = static_cast<int32_t>(v) > static_cast<int32_t>(red) ? v : red; break;
                case OP_REDUCE_AND: red &= v; break;
                case OP_REDUCE_OR: red |= v; break;
                case OP_REDUCE_XOR: red ^= v; break;
                default: break;
            }
        }
    }
    fiber *base = lane_fiber(w, f->warp, 0);
    for (unsigned m = mask; m; m &= m - 1) {
        const unsigned l = static_cast<unsigned>(__builtin_ctz(m));
        uint64_t r = 0;
        switch (ws.op[l]) {
            case OP_SHFL_IDX:
            case OP_SHFL_UP:
            case OP_SHFL_DOWN:
            case OP_SHFL_XOR: {
                unsigned src = shfl_source(ws.op[l], l, ws.b[l], ws.width[l]);
                // A source outside the mask is undefined in CUDA: the poison pattern.
                r = ((mask >> src) & 1u) ? ws.value[src] : ~0ull;
                break;
            }
            case OP_BALLOT: r = ballot; break;
            case OP_ANY: r = ballot != 0; break;
            case OP_ALL: r = ballot == mask; break;
            case OP_MATCH_ANY:
                for (unsigned k = mask; k; k &= k - 1) {
                    unsigned j = static_cast<unsigned>(__builtin_ctz(k));
                    if (ws.value[j] == ws.value[l]) r |= 1ull << j;
                }
                break;
            case OP_MATCH_ALL: {
                r = mask;
                for (unsigned k = mask; k; k &= k - 1)
                    if (ws.value[__builtin_ctz(k)] != ws.value[l]) r = 0;
                break;
            }
            case OP_SYNCWARP: break;
            default: r = red; break;
        }
        ws.result[l] = r;
        if (l != me) rq_push(w, base + l);
    }
    ws.waiting &= ~mask;
    w->progress.fetch_add(1, std::memory_order_relaxed);
    return true;
}

}  // namespace

uint64_t warp_collective(int op, unsigned mask, uint64_t value, unsigned size, int b, int width,
                         const char *file, int line) {
    fiber *f = tl_cur;
    if (!f) die(strf("%s called outside a kernel (%s)", op_name(op), site(file, line).c_str()));
    worker *w = f->w;
    warp_state &ws = w->warps[f->warp];
    unsigned bit = 1u << f->lane;
    if (!(mask & bit))
        die(strf("%s %s: %s (warp %u lane %u) passes mask 0x%08x (%s), which does not name the "
                 "calling lane",
                 op_name(op), where(w).c_str(), coords(f).c_str(), f->warp, f->lane, mask,
                 site(file, line).c_str()));
    if (op >= OP_SHFL_IDX && op <= OP_SHFL_XOR && (width < 1 || width > 32 || (width & (width - 1))))
        die(strf("%s %s: %s passes width %d (%s); width must be a power of 2 in [1, 32]",
                 op_name(op), where(w).c_str(), coords(f).c_str(), width, site(file, line).c_str()));
    if (mask & ~ws.alive) {
        unsigned bad = mask & ~ws.alive;
        unsigned l = static_cast<unsigned>(__builtin_ctz(bad));
        std::string who;
        if ((ws.exists >> l) & 1u)
            who = strf("lane %u = %s, which has exited", l, coords(lane_fiber(w, f->warp, l)).c_str());
        else
            who = strf("lane %u, which does not exist (the block has %u threads: warp %u has %u "
                       "lanes)",
                       l, w->nthreads, f->warp, __builtin_popcount(ws.exists));
        die(strf("%s %s: %s (warp %u lane %u) passes mask 0x%08x (%s), which names %s; a "
                 "collective's mask must name only lanes that execute it",
                 op_name(op), where(w).c_str(), coords(f).c_str(), f->warp, f->lane, mask,
                 site(file, line).c_str(), who.c_str()));
    }
    const unsigned l = f->lane;
    f->op = op;
    f->mask = mask;
    f->file = file;
    f->line = line;
    ws.mask[l] = mask;
    ws.op[l] = static_cast<uint8_t>(op);
    ws.size[l] = static_cast<uint8_t>(size);
    ws.width[l] = static_cast<uint8_t>(width);
    ws.b[l] = b;
    ws.value[l] = value;
    void *sync = &ws.sync[__builtin_ctz(mask)];
    tsan_release(sync);
    ws.waiting |= bit;
    if ((ws.waiting & mask) == mask && try_complete(w, f)) {
        tsan_acquire(sync);
        return ws.result[l];
    }
    f->state = F_WARP;
    wait_here(w, f);
    tsan_acquire(sync);
    return ws.result[l];
}

unsigned active_mask(const char *file, int line) {
    fiber *f = tl_cur;
    if (!f) die(strf("__activemask called outside a kernel (%s)", site(file, line).c_str()));
    return f->w->warps[f->warp].alive;
}

void yield_thread(const char *file, int line) {
    fiber *f = tl_cur;
    if (!f) die(strf("__nanosleep called outside a kernel (%s)", site(file, line).c_str()));
    worker *w = f->w;
    if (w->rq_count == 0) return;
    f->state = F_READY;
    rq_push(w, f);
    wait_here(w, f);
}

void shared_init(void *p, size_t bytes) {
    fiber *f = tl_cur;
    if (!f) return;
    worker *w = f->w;
    for (auto &r : w->shared_regs) {
        if (r.first != p) continue;
        if (r.second != w->block_gen) {
            fill_poison(p, bytes);
            r.second = w->block_gen;
        }
        return;
    }
    w->shared_regs.emplace_back(p, w->block_gen);
    fill_poison(p, bytes);
}

// ---- cp.async (sm_80 asynchronous global -> shared copies) ----------------------------------
// The model: a copy reads its source at issue, poisons its destination (0xFF bytes) at once and
// writes the data only when a cp.async.wait_group that covers its group runs in the issuing
// thread. On a GPU the copy lands at some unknown time between the two; here it lands at the
// latest moment allowed, so a read of the destination without the wait (or a reuse of a stage
// still being read by other threads when the copy is issued) sees the poison, not the data.

void cp_async(void *dst, const void *src, unsigned cp_size, unsigned src_size, bool cache_global,
              const char *file, int line) {
    fiber *f = tl_cur;
    if (!f) die(strf("cp.async called outside a kernel (%s)", site(file, line).c_str()));
    const char *kind = cache_global ? "cp.async.cg" : "cp.async.ca";
    if (cache_global ? cp_size != 16 : (cp_size != 4 && cp_size != 8 && cp_size != 16))
        die(strf("%s %s, %s (%s): cp-size %u; .cg copies 16 bytes, .ca 4, 8 or 16", kind,
                 where(f->w).c_str(), coords(f).c_str(), site(file, line).c_str(), cp_size));
    if (src_size > cp_size)
        die(strf("%s %s, %s (%s): src-size %u exceeds cp-size %u", kind, where(f->w).c_str(),
                 coords(f).c_str(), site(file, line).c_str(), src_size, cp_size));
    if ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) % cp_size != 0)
        die(strf("%s %s, %s (%s): shared %p or global %p not aligned to cp-size %u (a GPU "
                 "faults: misaligned address)", kind, where(f->w).c_str(), coords(f).c_str(),
                 site(file, line).c_str(), dst, src, cp_size));
    cp_async_copy c;
    c.dst = dst;
    c.group = f->cp_open_group;
    c.size = cp_size;
    c.file = file;
    c.line = line;
    memset(c.bytes, 0, sizeof c.bytes);
    if (src_size) memcpy(c.bytes, src, src_size);
    fill_poison(dst, cp_size);
    f->cp_pending.push_back(c);
}

void cp_async_commit(const char *file, int line) {
    fiber *f = tl_cur;
    if (!f) die(strf("cp.async.commit_group outside a kernel (%s)", site(file, line).c_str()));
    f->cp_open_group++;
}

void cp_async_wait(unsigned n, const char *file, int line) {
    fiber *f = tl_cur;
    if (!f) die(strf("cp.async.wait_group outside a kernel (%s)", site(file, line).c_str()));
    // Committed groups are 0 .. open-1; all but the n most recent must be complete.
    if (f->cp_open_group < n) return;
    const unsigned limit = f->cp_open_group - n;  // groups < limit land
    std::vector<cp_async_copy> &q = f->cp_pending;
    size_t keep = 0;
    for (size_t i = 0; i < q.size(); i++) {
        if (q[i].group < limit)
            memcpy(q[i].dst, q[i].bytes, q[i].size);
        else
            q[keep++] = q[i];
    }
    q.resize(keep);
}

void fatal_in_kernel(const char *what, const char *file, int line) {
    fiber *f = tl_cur;
    if (!f) die(strf("%s outside a kernel (%s)", what, site(file, line).c_str()));
    die(strf("%s %s, %s (%s)", what, where(f->w).c_str(), coords(f).c_str(), site(file, line).c_str()));
}

cudaError_t launch(const launch_desc &d) {
    if (tl_cur)
        die(strf("kernel launch (%s) from inside kernel %s: dynamic parallelism is not emulated",
                 d.text, g_launch.name));
    if (d.mode != QT_CUEMU_RUNTIME_MODE) {
        static const char *names[] = {"no sanitizer", "ASan", "TSan"};
        die(strf("kernel %s was compiled for %s but the cuemu runtime linked is built for %s; "
                 "link cuemu, cuemu_asan or cuemu_tsan to match the kernel's flags",
                 d.text, names[d.mode], names[QT_CUEMU_RUNTIME_MODE]));
    }
    const dim3 g = d.grid, b = d.block;
    uint64_t nthreads = static_cast<uint64_t>(b.x) * b.y * b.z;
    if (b.x < 1 || b.y < 1 || b.z < 1 || b.x > static_cast<unsigned>(k_max_block_x) ||
        b.y > static_cast<unsigned>(k_max_block_y) || b.z > static_cast<unsigned>(k_max_block_z) ||
        nthreads > static_cast<uint64_t>(k_max_threads_per_block) || g.x < 1 || g.y < 1 ||
        g.z < 1 || g.x > k_max_grid_x || g.y > k_max_grid_y || g.z > k_max_grid_z)
        return set_last_error(cudaErrorInvalidConfiguration);
    if (d.smem > static_cast<size_t>(func_max_dynamic_smem(d.func)))
        return set_last_error(cudaErrorInvalidValue);
    if (!stream_usable(d.stream)) return set_last_error(cudaErrorInvalidResourceHandle);

    std::lock_guard<std::mutex> serial(g_launch_mutex);
    std::unique_lock<std::mutex> lk(g_pool.m);
    ensure_pool();
    g_launch.d = d;
    extract_name(d.text, g_launch.name, sizeof g_launch.name);
    g_launch.nblocks = static_cast<uint64_t>(g.x) * g.y * g.z;
    g_launch.next_block.store(0);
    g_pool.done = 0;
    g_pool.generation++;
    g_pool.cv_work.notify_all();

    // Wait, watching for a thread that never yields (the scheduler cannot preempt it).
    const size_t nw = g_pool.workers.size();
    std::vector<unsigned long long> last(nw, ~0ull);
    std::vector<std::chrono::steady_clock::time_point> since(nw, std::chrono::steady_clock::now());
    while (g_pool.done != nw) {
        g_pool.cv_done.wait_for(lk, std::chrono::milliseconds(200));
        if (g_watchdog_s <= 0.0) continue;
        auto now = std::chrono::steady_clock::now();
        for (size_t i = 0; i < nw; i++) {
            worker *w = g_pool.workers[i];
            unsigned long long p = w->progress.load(std::memory_order_relaxed);
            if (p != last[i] || !w->busy.load()) {
                last[i] = p;
                since[i] = now;
                continue;
            }
            double s = std::chrono::duration<double>(now - since[i]).count();
            unsigned tid = w->running_tid.load(std::memory_order_relaxed);
            if (s < g_watchdog_s || tid == k_no_tid) continue;
            uint64_t bl = w->running_block.load(std::memory_order_relaxed);
            die(strf("watchdog: in kernel %s, block (%u,%u,%u) thread (%u,%u,%u) has run %.0f s "
                     "without any thread of its block reaching a barrier, a warp collective or "
                     "its end. A spin loop waiting for another thread? The threads of a block "
                     "run one at a time and switch only at those points: call __nanosleep() in "
                     "the loop. QT_CUEMU_WATCHDOG_S sets the limit (0 disables it)",
                     g_launch.name, static_cast<unsigned>(bl % g.x),
                     static_cast<unsigned>((bl / g.x) % g.y),
                     static_cast<unsigned>(bl / (static_cast<uint64_t>(g.x) * g.y)), tid % b.x,
                     (tid / b.x) % b.y, tid / (b.x * b.y), s));
        }
    }
    return cudaSuccess;
}

}  // namespace detail

int num_workers() {
    std::lock_guard<std::mutex> lk(detail::g_pool.m);
    return static_cast<int>(detail::g_pool.workers.size());
}

unsigned long long switch_count() {
    std::lock_guard<std::mutex> lk(detail::g_pool.m);
    unsigned long long n = 0;
    for (auto *w : detail::g_pool.workers) n += w->switches;
    return n;
}

const char *context_kind() { return detail::cuemu_ctx_kind(); }

}  // namespace cuemu

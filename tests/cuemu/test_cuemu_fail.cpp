// test_cuemu_fail.cpp: the emulator catches each bug of kernels_test/fail.cu (Check suite
// "cuemu_fail").
//
// Each case re-runs this executable as a child process (`--case NAME`) that launches one buggy
// kernel, then checks that the child died (or, under TSan, exited with TSan's status) and that
// its report names the problem and the block and thread coordinates. If the emulator stops
// catching a bug, the child exits 0 or prints something else, and the case fails.
// The same binary is built plain, with ASan+UBSan and with TSan; each build checks the cases
// its tools can see (the sanitizer cases only in their build).
#include <check.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cuemu.h"
#include "cuemu_test_kernels.h"

extern char **environ;

namespace {

constexpr int k_mode = QT_CUEMU_MODE;
const char *g_self = nullptr;

struct child_result {
    int status;  // waitpid status
    std::string output;  // stdout and stderr together
};

// Runs `self --case name` with extra environment entries, collecting its output.
child_result run_case(const char *name, const std::vector<std::string> &extra_env) {
    int fds[2];
    ck_assert_msg(pipe(fds) == 0, "pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::vector<std::string> env_s;
    for (char **e = environ; *e; e++) env_s.emplace_back(*e);
    for (const std::string &e : extra_env) env_s.push_back(e);
    std::vector<char *> envp;
    for (std::string &e : env_s) envp.push_back(&e[0]);
    envp.push_back(nullptr);
    std::string self = g_self, flag = "--case", case_name = name;
    char *argv[] = {&self[0], &flag[0], &case_name[0], nullptr};
    pid_t pid;
    int rc = posix_spawn(&pid, g_self, &fa, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    ck_assert_msg(rc == 0, "posix_spawn %s failed: %s", g_self, strerror(rc));
    child_result res{0, ""};
    // Read until EOF; a child that hangs is killed after 120 s (the emulator should report a
    // deadlock long before).
    auto start = std::chrono::steady_clock::now();
    char buf[4096];
    for (;;) {
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fds[0], &set);
        timeval tv{1, 0};
        int r = select(fds[0] + 1, &set, nullptr, nullptr, &tv);
        if (r > 0) {
            ssize_t n = read(fds[0], buf, sizeof buf);
            if (n <= 0) break;
            res.output.append(buf, static_cast<size_t>(n));
        }
        if (std::chrono::steady_clock::now() - start > std::chrono::seconds(120)) {
            kill(pid, SIGKILL);
            res.output += "\n[test_cuemu_fail: child killed after 120 s: the emulator hung]\n";
            break;
        }
    }
    close(fds[0]);
    waitpid(pid, &res.status, 0);
    return res;
}

std::string describe(int status) {
    char b[64];
    if (WIFSIGNALED(status)) snprintf(b, sizeof b, "killed by signal %d", WTERMSIG(status));
    else snprintf(b, sizeof b, "exit status %d", WEXITSTATUS(status));
    return b;
}

std::string tail(const std::string &s) { return s.size() > 3000 ? "..." + s.substr(s.size() - 3000) : s; }

// The child must have failed (signal or non-zero exit) and printed every string of `want`.
void expect_report(const char *name, const std::vector<std::string> &want,
                   const std::vector<std::string> &env = {}) {
    child_result r = run_case(name, env);
    bool failed = WIFSIGNALED(r.status) || (WIFEXITED(r.status) && WEXITSTATUS(r.status) != 0);
    ck_assert_msg(failed, "case %s: the buggy kernel ran to completion (%s) without a report; output:\n%s",
                  name, describe(r.status).c_str(), tail(r.output).c_str());
    ck_assert_msg(!(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 3),
                  "case %s: unknown to the child; output:\n%s", name, tail(r.output).c_str());
    for (const std::string &w : want)
        ck_assert_msg(r.output.find(w) != std::string::npos,
                      "case %s (%s): report lacks \"%s\"; output:\n%s", name,
                      describe(r.status).c_str(), w.c_str(), tail(r.output).c_str());
}

// The child must have succeeded and printed none of `unwanted`.
void expect_clean(const char *name, const std::vector<std::string> &unwanted) {
    child_result r = run_case(name, {});
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
                  "case %s: the correct kernel failed (%s); output:\n%s", name,
                  describe(r.status).c_str(), tail(r.output).c_str());
    for (const std::string &u : unwanted)
        ck_assert_msg(r.output.find(u) == std::string::npos, "case %s: output has \"%s\":\n%s", name,
                      u.c_str(), tail(r.output).c_str());
}

}  // namespace

START_TEST(test_divergent_syncthreads_exit) {
    expect_report("divergent_exit", {"divergent __syncthreads", "kernel fail_divergent_exit",
                                     "block (1,0,0)", "thread (40,0,0) has exited"});
}
END_TEST

START_TEST(test_divergent_syncthreads_sites) {
    expect_report("divergent_sites", {"divergent __syncthreads", "block (0,0,0)",
                                      "thread (0,0,0) waits at __syncthreads (fail.cu:",
                                      "thread (32,0,0) waits at __syncthreads (fail.cu:"});
}
END_TEST

START_TEST(test_shuffle_names_exited_lane) {
    expect_report("shfl_exited", {"__shfl_xor_sync", "kernel fail_shfl_exited", "block (0,1,0)",
                                  "thread (0,0,0)", "mask 0xffffffff",
                                  "lane 20 = thread (20,0,0)", "has exited"});
}
END_TEST

START_TEST(test_deadlock) {
    expect_report("deadlock", {"deadlock", "block (2,0,0)",
                               "thread (0,0,0) waits at __syncwarp with mask 0xffffffff",
                               "thread (16,0,0) (lane 16), which is waiting at __syncthreads",
                               "[tid 0-15]: waiting at __syncwarp"});
}
END_TEST

START_TEST(test_mask_mismatch_deadlock) {
    expect_report("mask_mismatch", {"deadlock", "block (0,0,0)", "mask 0xffffffff",
                                    "thread (16,0,0) (lane 16), which is waiting at __syncwarp "
                                    "with mask 0xfffffffe",
                                    "must pass the same mask"});
}
END_TEST

START_TEST(test_mask_without_caller) {
    expect_report("mask_self", {"__shfl_sync", "thread (1,0,0)", "mask 0x00000001",
                                "does not name the calling lane"});
}
END_TEST

START_TEST(test_partial_warp_full_mask) {
    expect_report("partial_full_mask", {"__shfl_xor_sync", "thread (32,0,0)", "lane 16",
                                        "does not exist", "48 threads"});
}
END_TEST

START_TEST(test_collective_mismatch) {
    expect_report("collective_mismatch",
                  {"divergent warp collective", "__shfl_xor_sync", "__ballot_sync", "block (0,0,0)"});
}
END_TEST

START_TEST(test_spin_watchdog) {
    expect_report("spin", {"watchdog", "kernel fail_spin", "block (0,0,0) thread (0,0,0)", "__nanosleep"},
                  {"QT_CUEMU_WATCHDOG_S=1"});
}
END_TEST

START_TEST(test_segv_coordinates) {
    std::vector<std::string> want = {"kernel fail_segv, block (1,0,0), thread (3,0,0)"};
    want.push_back(k_mode == QT_CUEMU_MODE_NORMAL ? "SIGSEGV" : "SEGV");
    expect_report("segv", want);
}
END_TEST

START_TEST(test_stack_overflow) {
    std::vector<std::string> want = {"kernel fail_stack_overflow, block (0,0,0), thread (0,0,0)"};
    if (k_mode == QT_CUEMU_MODE_NORMAL) want.push_back("fiber stack overflow");
    expect_report("stack_overflow", want);
}
END_TEST

START_TEST(test_dynamic_smem_overflow) {
    std::vector<std::string> want = {"kernel fail_smem_oob_dynamic, block (0,0,0), thread (0,0,0)"};
    if (k_mode == QT_CUEMU_MODE_ASAN) want.push_back("heap-buffer-overflow");
    else if (k_mode == QT_CUEMU_MODE_TSAN) want.push_back("SEGV");
    else want.push_back("past the end of dynamic shared memory");
    expect_report("smem_oob_dynamic", want);
}
END_TEST

// ASan build only: a static __shared__ array is a plain global with redzones.
START_TEST(test_asan_static_smem_overflow) {
    expect_report("smem_oob_static", {"AddressSanitizer: global-buffer-overflow",
                                      "kernel fail_smem_oob_static, block (0,0,0), thread (32,0,0)"});
}
END_TEST

// ASan build only: device memory is an exact-size malloc, so a kernel writing past a cudaMalloc
// buffer and a buffer never cudaFree'd are reported.
START_TEST(test_asan_global_overflow) {
    expect_report("global_oob", {"AddressSanitizer: heap-buffer-overflow",
                                 "kernel fail_global_oob, block (1,0,0), thread (63,0,0)"});
}
END_TEST

START_TEST(test_asan_device_leak) {
    expect_report("device_leak", {"LeakSanitizer: detected memory leaks", "cudaMalloc"});
}
END_TEST

// TSan build only: a missing barrier is a data race between two threads of the block, named
// by their TSan fiber names; the same kernel with the barrier is clean.
START_TEST(test_tsan_missing_syncthreads) {
    expect_report("race_syncthreads", {"ThreadSanitizer: data race", "race_syncthreads",
                                       "cuemu block (0,0,0) thread ("});
    expect_clean("race_syncthreads_fixed", {"ThreadSanitizer"});
}
END_TEST

START_TEST(test_tsan_missing_syncwarp) {
    expect_report("race_syncwarp", {"ThreadSanitizer: data race", "race_syncwarp",
                                    "cuemu block (0,0,0) thread ("});
    expect_clean("race_syncwarp_fixed", {"ThreadSanitizer"});
}
END_TEST

START_TEST(test_cp_async_pending_at_exit) {
    expect_report("cp_async_pending", {"cp.async", "kernel fail_cp_async_pending",
                                       "thread (5,0,0) exited with 1 cp.async copies in flight",
                                       "fail.cu:"});
}
END_TEST

static Suite *fail_suite(void) {
    Suite *s = suite_create("cuemu_fail");
    TCase *tc = tcase_create("reports");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_divergent_syncthreads_exit);
    tcase_add_test(tc, test_divergent_syncthreads_sites);
    tcase_add_test(tc, test_shuffle_names_exited_lane);
    tcase_add_test(tc, test_deadlock);
    tcase_add_test(tc, test_mask_mismatch_deadlock);
    tcase_add_test(tc, test_mask_without_caller);
    tcase_add_test(tc, test_partial_warp_full_mask);
    tcase_add_test(tc, test_collective_mismatch);
    tcase_add_test(tc, test_spin_watchdog);
    tcase_add_test(tc, test_segv_coordinates);
    tcase_add_test(tc, test_stack_overflow);
    tcase_add_test(tc, test_dynamic_smem_overflow);
    tcase_add_test(tc, test_cp_async_pending_at_exit);
    if (k_mode == QT_CUEMU_MODE_ASAN) {
        tcase_add_test(tc, test_asan_static_smem_overflow);
        tcase_add_test(tc, test_asan_global_overflow);
        tcase_add_test(tc, test_asan_device_leak);
    }
    if (k_mode == QT_CUEMU_MODE_TSAN) {
        tcase_add_test(tc, test_tsan_missing_syncthreads);
        tcase_add_test(tc, test_tsan_missing_syncwarp);
    }
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--case")) {
        int r = cuemu_test_fail_case(argv[2]);
        if (r < 0) {
            fprintf(stderr, "test_cuemu_fail: no case named %s\n", argv[2]);
            return 3;
        }
        return r;
    }
    g_self = "/proc/self/exe";
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        g_self = self;
    }
    SRunner *sr = srunner_create(fail_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

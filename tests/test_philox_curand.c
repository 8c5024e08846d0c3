// test_philox_curand.c: qtrain's Philox4x32-10 (base/philox.h) is cuRAND's
// CURAND_RNG_PSEUDO_PHILOX4_32_10, word for word, checked against cuRAND's HOST generator
// (curandCreateGeneratorHost runs on the CPU, no driver or device needed).
//
// libcurand is opened at run time with dlopen (the unit tests link libqtrain only): the test
// fails if it cannot be opened while /usr/local/cuda exists, and passes vacuously, saying so,
// on a machine without the CUDA toolkit.
//
// The mapping, found by experiment (cuRAND 13's host generator, default ordering) and checked
// here: the key is the 64-bit seed (k0 = low word, k1 = high word); the generator runs 65536
// subsequences side by side, and output word g (g = generator offset + position, continuing
// across curandGenerate calls) is
//   word g % 4 of the Philox block with counter (b, 0, s, 0),
//   s = (g / 4) % 65536 (the subsequence), b = (g / 4) / 65536 (the block within it);
// that is, qt_philox_u32(seed, stream = s, index = 4 b + g % 4): qtrain's counter layout
// (block low/high, stream low/high) is cuRAND's curand_init(seed, subsequence, offset = 4 b).
#include <check.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/philox.h"
#include "testutil.h"

// From curand.h (not included: this test builds without the CUDA toolkit).
#define CURAND_RNG_PSEUDO_PHILOX4_32_10 161
#define CURAND_SUBSEQUENCES 65536u
typedef int (*create_fn)(void **gen, int rng_type);
typedef int (*seed_fn)(void *gen, unsigned long long v);
typedef int (*generate_fn)(void *gen, unsigned int *out, size_t n);
typedef int (*destroy_fn)(void *gen);

static void *lib;
static create_fn curand_create;
static seed_fn curand_seed, curand_offset;
static generate_fn curand_generate;
static destroy_fn curand_destroy;

static int open_curand(void) {
    const char *names[] = {"libcurand.so", "libcurand.so.10", "/usr/local/cuda/lib64/libcurand.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) return 0;
    curand_create = (create_fn)dlsym(lib, "curandCreateGeneratorHost");
    curand_seed = (seed_fn)dlsym(lib, "curandSetPseudoRandomGeneratorSeed");
    curand_offset = (seed_fn)dlsym(lib, "curandSetGeneratorOffset");
    curand_generate = (generate_fn)dlsym(lib, "curandGenerate");
    curand_destroy = (destroy_fn)dlsym(lib, "curandDestroyGenerator");
    return curand_create && curand_seed && curand_offset && curand_generate && curand_destroy;
}

// qtrain's word for cuRAND host output g.
static uint32_t ours(uint64_t seed, uint64_t g) {
    const uint64_t q = g / 4, s = q % CURAND_SUBSEQUENCES, b = q / CURAND_SUBSEQUENCES;
    return qt_philox_u32(seed, s, 4 * b + g % 4);
}

// n words from a fresh generator at `offset`, in `calls` consecutive curandGenerate calls.
static void check_seed(uint64_t seed, uint64_t offset, size_t n, int calls) {
    void *gen = NULL;
    ck_assert_int_eq(curand_create(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10), 0);
    ck_assert_int_eq(curand_seed(gen, seed), 0);
    ck_assert_int_eq(curand_offset(gen, offset), 0);
    unsigned int *v = malloc(n * sizeof *v);
    const size_t per = n / (size_t)calls;
    for (int c = 0; c < calls; c++) {
        const size_t len = c == calls - 1 ? n - per * (size_t)c : per;
        ck_assert_int_eq(curand_generate(gen, v + per * (size_t)c, len), 0);
    }
    for (size_t j = 0; j < n; j++)
        ck_assert_msg(v[j] == ours(seed, offset + j),
                      "seed %#llx offset %llu output %zu (of %zu, %d calls): cuRAND %08x, "
                      "qt_philox_u32 %08x",
                      (unsigned long long)seed, (unsigned long long)offset, j, n, calls, v[j],
                      ours(seed, offset + j));
    free(v);
    curand_destroy(gen);
}

START_TEST(test_matches_curand_host) {
    if (!open_curand()) {
        ck_assert_msg(access("/usr/local/cuda", F_OK) != 0,
                      "/usr/local/cuda exists but libcurand could not be loaded: %s", dlerror());
        fprintf(stderr, "test_philox_curand: no CUDA toolkit here, nothing compared\n");
        return;
    }
    // past the first block of every subsequence (3 blocks and a bit), in one and in 3 calls
    const size_t n = 3 * 4 * CURAND_SUBSEQUENCES + 1001;
    check_seed(0x0123456789ABCDEFull, 0, n, 1);
    check_seed(0xFFFFFFFF00000001ull, 12345, n, 3);
    check_seed(42, 4ull * CURAND_SUBSEQUENCES * 1000 + 7, 4099, 1); // a far block
}
END_TEST

int main(void) {
    Suite *s = suite_create("philox_curand");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_matches_curand_host);
    suite_add_tcase(s, tc);
    return qt_test_run_suite(s);
}

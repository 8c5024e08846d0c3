// testutil.h: helpers shared by the Check suites: random fills, poisoning, tolerant
// comparisons that fail on NaN, and temporary directories.
#ifndef QTRAIN_TESTUTIL_H
#define QTRAIN_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

// Deterministic uniform values in [lo, hi) from a 64-bit seed (splitmix64).
void qt_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);
void qt_test_fill_uniform_f64(double *x, size_t n, double lo, double hi, uint64_t seed);
// Checked allocations of n (>= 0) doubles or floats, freed with free().
double *qt_test_dalloc(size_t n);
float *qt_test_falloc(size_t n);
// A fresh array of n uniform doubles in [lo, hi).
double *qt_test_drand(size_t n, double lo, double hi, uint64_t seed);
// A float copy of d; d itself is rounded to the same values, so float and double runs of an
// op see identical inputs.
float *qt_test_to_float(double *d, size_t n);
// free()s each of the n pointers; QT_TEST_FREE_ALL(a, b, ...) frees a list of them.
void qt_test_free_all(void **p, size_t n);
#define QT_TEST_FREE_ALL(...)                                                                 \
    do {                                                                                      \
        void *qt_test_ptrs_[] = {__VA_ARGS__};                                                \
        qt_test_free_all(qt_test_ptrs_, sizeof qt_test_ptrs_ / sizeof qt_test_ptrs_[0]);      \
    } while (0)
// Fills with a NaN pattern, so an output element a kernel forgets to write fails the compare.
void qt_test_poison(float *x, size_t n);

// max over i of |got - want| / (atol + rtol |want|); NaN in either gives +inf.
// A test asserts the result <= 1.
double qt_test_max_err(const float *got, const float *want, size_t n, double atol, double rtol);
double qt_test_max_err_f64(const double *got, const double *want, size_t n, double atol,
                           double rtol);

// ---- finite-difference gradient checks, in double ----
// A fresh copy of the n doubles at a, freed with free().
double *qt_test_dcopy(const double *a, size_t n);
// sum_i a_i b_i, the scalar loss L = sum wout * output that the gradient checks differentiate.
double qt_test_ddot(const double *a, const double *b, size_t n);
// The gradient-check error norm: max_i |an_i - ref_i| / max(max_i |ref_i|, 1e-30); NaN in
// the difference gives +inf.
double qt_test_rel_err_f64(const double *an, const double *ref, size_t n);
// A float result against its double reference: max_i |f_i - d_i| / (rtol (max_j |d_j| +
// |d_i|)); a test asserts the result <= 1 (NaN gives +inf).
double qt_test_float_vs_double(const float *f, const double *d, size_t n, double rtol);
// Central differences g_i = (loss(x + h e_i) - loss(x - h e_i)) / (2 h) with respect to x (n),
// which loss(ctx) must read; each x_i is perturbed in place and restored.
void qt_test_fd_grad(double (*loss)(void *ctx), void *ctx, double *x, size_t n, double h,
                     double *g);
// Asserts qt_test_rel_err_f64(an - start, fd) <= tol for the analytic gradient an that a
// backward accumulated onto start (NULL: zeros) and fd from qt_test_fd_grad with step h;
// `what` names the case in the failure.
void qt_test_check_grad(double (*loss)(void *ctx), void *ctx, double *x, size_t n,
                        const double *an, const double *start, double h, double tol,
                        const char *what);

// Several inputs' gradients at once: register each input tensor with qt_test_fd_add (loss and
// ctx set by the initializer), then qt_test_fd_check compares one analytic gradient per
// registered tensor (an[k], NULL to skip) with qt_test_fd_grad's, error <= tol.
#define QT_TEST_FD_MAX_TENSORS 8
typedef struct {
    double *x[QT_TEST_FD_MAX_TENSORS]; // inputs (perturbed in place, restored)
    size_t n[QT_TEST_FD_MAX_TENSORS];
    const char *name[QT_TEST_FD_MAX_TENSORS];
    int count;
    double (*loss)(void *ctx);
    void *ctx;
} qt_test_fd_problem;
void qt_test_fd_add(qt_test_fd_problem *p, const char *name, double *x, size_t n);
void qt_test_fd_check(const qt_test_fd_problem *p, double *const *an, double h, double tol,
                      const char *what);
// A gradient buffer for a backward that accumulates: a random start, remembered, so that
// qt_test_acc_delta gives what the backward added.
typedef struct {
    double *g, *start;
    size_t n;
} qt_test_acc;
qt_test_acc qt_test_acc_new(size_t n, uint64_t seed);
double *qt_test_acc_delta(qt_test_acc *a); // g - start, in place; returns g
void qt_test_acc_free(qt_test_acc *a);

// A fresh empty directory under $TMPDIR (or /tmp); the returned string is malloc'd.
char *qt_test_tmpdir(const char *tag);
// Writes dir/train_000.bin (16000 tokens) and dir/val_000.bin (4000) of a learnable sequence
// over 64 tokens: each mostly determined by the previous one (t' = 5 t + 3 mod 64), 1 in 16
// random.
void qt_test_write_synthetic_shards(const char *dir);
// Removes a directory tree made by qt_test_tmpdir.
void qt_test_rmtree(const char *path);

// Runs a Check suite and returns the process exit code (0 when every case passed).
int qt_test_run_suite(Suite *suite);

#endif

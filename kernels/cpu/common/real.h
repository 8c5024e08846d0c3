// common/real.h: the element type of one instantiation of the CPU op bodies (no include guard).
//
// Each kernels/cpu/<family>.c writes its op bodies once, in <family>_impl.h, against the
// macros below, and includes that file twice: first as float (the trainer's ops), then, after
// `#define QT_REAL_F64`, as double (the `_f64` twins the finite-difference tests use):
//
//     #include "common/real.h"      // float
//     #include "linear_impl.h"
//     #define QT_REAL_F64
//     #include "common/real.h"      // double
//     #include "linear_impl.h"
//
//   REAL        float or double
//   FN(name)    name, or name_f64: public entry points and the static helpers alike
//   OPNAME(s)   the op name its error messages carry: s, or s "_f64" (a string literal)
//   GEMM        cblas_sgemm or cblas_dgemm
//   EXP, LOG, SQRT   the math functions of that type; the float EXP is vexpf from
//               common/vmath.h (vectorizable, within 1 ulp of exp over [-87, 88.3]), the double
//               EXP is libm's exp with its argument capped at 88.3 like vexpf's (so neither
//               overflows to inf, and float and double agree on huge arguments)
//
// The element-wise loops are `#pragma omp simd` loops (gcc's -O2 cost model vectorizes little
// else). gcc if-converts float compares (the clip, ReLU masks, vexpf's clamps) only without
// -ftrapping-math; qtrain never reads floating-point exception flags, so every file that
// includes this header first drops it for the functions it defines.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <cblas.h>
#include <math.h>

#include "vmath.h"

#ifndef QTRAIN_REAL_IMPL_EXP_F64
#define QTRAIN_REAL_IMPL_EXP_F64
static inline double exp_capped_f64(double x) { return exp(x > 88.3 ? 88.3 : x); }
#endif

#undef REAL
#undef FN
#undef OPNAME
#undef GEMM
#undef EXP
#undef LOG
#undef SQRT

#ifdef QT_REAL_F64
#define REAL double
#define FN(name) name##_f64
#define OPNAME(s) s "_f64"
#define GEMM cblas_dgemm
#define EXP(x) exp_capped_f64(x)
#define LOG(x) log(x)
#define SQRT(x) sqrt(x)
#else
#define REAL float
#define FN(name) name
#define OPNAME(s) s
#define GEMM cblas_sgemm
#define EXP(x) vexpf(x)
#define LOG(x) logf(x)
#define SQRT(x) sqrtf(x)
#endif

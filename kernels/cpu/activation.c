// activation.c: qt_cpu_{gelu,relu}_{fwd,bwd}[_f64]. GELU is the tanh approximation
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated as x sigmoid(2u).
// Contract (kernels/activation.h): the forward overwrites out (which may alias x); the
// backward adds dout f'(x) into dx, except when dx aliases dout: then dx is overwritten with
// dout f'(x) (the in-place form, dout being dx's sole contribution, as for dropout).
// Element-parallel (OpenMP) and vectorized; the body is activation_impl.h, instantiated for
// float and double.
#include "common/real.h"

#include <stddef.h>

#include "common/check.h"
#include "kernels/activation.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 32768
#define GELU_K 0.7978845608028654 // sqrt(2 / pi)

#include "activation_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "activation_impl.h"

// crossentropy.c: qt_cpu_crossentropy_{fwd,bwd}[_f64], softmax and cross-entropy fused per row
// (max-subtracted; the loss as log-sum-exp minus the target logit, so tiny probabilities lose
// nothing). Rows with a negative target are ignored (loss 0, no gradient).
// Contract (kernels/crossentropy.h): the forward overwrites losses and probs (probs may alias
// logits); the backward adds dloss (probs - onehot) into dlogits, or, when dlogits aliases
// probs, overwrites it with that gradient (ignored rows then become 0). Rows in parallel,
// vectorized (float exp is vexpf); the body is crossentropy_impl.h, for float and double.
#include "common/real.h"

#include <string.h>

#include "kernels/crossentropy.h"
#include "base/status.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

#include "crossentropy_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "crossentropy_impl.h"

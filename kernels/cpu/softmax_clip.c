// softmax_clip.c: qt_cpu_softmax_clip_{fwd,bwd}[_f64], the attention softmax variants
// (vanilla, clipped, length-normalized clipped "NCS"; PAPERS.md sections 1-2) on a
// (rows, cols) matrix whose row r attends its first lens[r] columns.
// Contract (kernels/softmax_clip.h): the forward overwrites probs and p; the backward adds into
// dscores, masked columns untouched. Rows run in parallel (OpenMP), each row's loops are
// vectorized; the body is softmax_clip_impl.h, instantiated for float and double.
#include "common/real.h"

#include "base/softmax_clip_math.h"
#include "base/status.h"
#include "common/check.h"
#include "kernels/softmax_clip.h"

// Below this many elements an OpenMP region costs more than it saves.
#define PAR_MIN 16384

#include "softmax_clip_impl.h"
#define QT_REAL_F64
#include "common/real.h"
#include "softmax_clip_impl.h"

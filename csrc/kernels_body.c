/*
 * kernels_body.c: the whole kernel source, compiled once per (dtype,
 * instruction set) by a unit that setup.py (or cmake/RnnxSources.cmake)
 * generates for each name of kernels/isa_list.h.  A unit defines
 *   RNNX_DOUBLE      float64 (else float32),
 *   RNNX_ISA_SFX     _<isa>, the suffix of the one exported table,
 *   RNNX_VEC_HEADER  "kernels/vec_<isa>.h", the ISA: vector, vmadd, target,
 * and includes this file.  Every function is static except that table, which
 * is empty where the compiler or platform cannot build the ISA.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "layout.h"
#include "rnnx.h"

#include "real.h"
#include RNNX_VEC_HEADER

#if RNNX_VEC_BUILT
/* the kernels: BLAS boundary, packed panels, small, blocked and ordered products, activations */
#include "kernels/gemm.c"
#include "kernels/panels.c"
#include "kernels/small_gemm.c"
#include "kernels/gemm_packed.c"
#include "kernels/ordered.c"
#include "kernels/activations.c"
/* what the cells and the sequence driver share around a step */
#include "driver/step.h"
#include "driver/projection.c"
#include "driver/gradients.c"
/* the cells and the driver */
#include "cells/plan.h"
#include "cells/rnn.c"
#include "cells/lstm.c"
#include "cells/gru.c"
#include "cells/plans.c"
#include "projection_plan.h"
#include "driver/forward.c"
#include "driver/backward.c"
#else
/* Not built here: dispatch.c finds no forward and reports the ISA unavailable. */
const rnnx_dtype_kernels RNNX_SFX(rnnx_kernels) = {0};
#endif

#ifdef RNNX_VEC_CLANG_PUSHED
#  pragma clang attribute pop
#endif

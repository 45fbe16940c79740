/* The float64 kernels: the cell files compiled with real = double. */
#define RNNX_DOUBLE
#include "real.h"
#include "common.c"
#include "rnn.c"
#include "lstm.c"
#include "gru.c"

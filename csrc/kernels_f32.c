/* The float32 kernels: the cell files compiled with real = float. */
#include "real.h"
#include "common.c"
#include "rnn.c"
#include "lstm.c"
#include "gru.c"

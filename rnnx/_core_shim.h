/* The binding's view of csrc/rnnx.h.  NumPy's headers pull in <complex.h>,
 * whose macro I (the imaginary unit) would rewrite the dimension letter I of
 * the core's argument structs; the binding uses no complex numbers. */
#ifdef I
#undef I
#endif
#include "rnnx.h"

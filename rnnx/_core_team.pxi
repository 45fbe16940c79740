# Included by _core.pyx: holding the process's OpenBLAS libraries at one thread while a
# Python model's NumPy products run between its rnnx calls (csrc/pool.h, csrc/runtime/blas.c).

cdef extern from "pool.h":
    int rnnx_pool_hold_blas(int enter) nogil


def hold_blas(bint enter):
    """Start (enter=True) or end (False) a hold of every loaded OpenBLAS (NumPy's and
    SciPy's) at one thread; holds nest, across threads, and the last end gives the
    libraries back their thread counts.  Returns how many libraries a hold limits."""
    return rnnx_pool_hold_blas(enter)

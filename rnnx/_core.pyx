# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The binding between NumPy arrays and the C core (csrc/rnnx.h).

Every array is checked here, in Python objects, for dtype, shape and layout
before one call into C runs the whole sequence with the GIL released.  The
functions take their output arrays from the caller (rnnx/layers.py), so the
layer decides what is allocated and what is reused.
"""
from libc.stdint cimport int64_t
from libc.stddef cimport ptrdiff_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from cpython.ref cimport Py_REFCNT
from scipy.linalg.cython_blas cimport sgemm, dgemm

cimport numpy as cnp
import operator

import numpy as np

cnp.import_array()

# The binding in parts, one topic a file; Cython pastes each in here, so the module is
# the one text it was (rnnx/_core_*.pxi, built with this file: setup.py, MANIFEST.in).
include "_core_decl.pxi"
include "_core_runtime.pxi"
include "_core_team.pxi"
include "_core_table.pxi"
include "_core_args.pxi"
include "_core_workspace.pxi"
include "_core_forward.pxi"
include "_core_stack.pxi"
include "_core_backward.pxi"
include "_core_gemm.pxi"
include "_core_quant.pxi"
include "_core_projection.pxi"
include "_core_stream_args.pxi"
include "_core_stream.pxi"

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
include "_core_table.pxi"
include "_core_args.pxi"
include "_core_workspace.pxi"
include "_core_forward.pxi"
include "_core_backward.pxi"
include "_core_gemm.pxi"
include "_core_projection.pxi"


cdef class Stream:
    """One step at a time through a unidirectional stack, for inference.

    Holds its own copy of the weights, packed once for the per-step kernel
    (W_hh in panels, W_ih^T for the input projection), the state, and every
    buffer a step needs, so a step allocates only its result.
    weights: one (w_ih, w_hh, b_ih, b_hh) tuple per layer, biases may be None, or
    for an LSTM (w_ih, w_hh, b_ih, b_hh, w_peep) with its peepholes w_peep (3H,)
    [Pi, Pf, Po] (see forward), None for none."""
    cdef int cell, L, B, H, I
    cdef object dtype
    cdef int typenum
    cdef list _keep
    cdef rnnx_forward_args* args
    cdef cnp.ndarray states   # (2, 2, L, B, H): [parity][h or c]
    cdef cnp.ndarray ys       # (L, B, H) each layer's output of the last step
    cdef int parity

    def __cinit__(self, object cell, list weights, object batch_size, object dtype):
        self.args = NULL
        cell = _int_arg(cell, "cell")
        batch_size = _int_arg(batch_size, "batch_size")
        cdef int G1 = rnnx_gate_count(cell)
        if G1 == 0:
            raise ValueError(f"unknown cell code {cell}")
        if not weights:
            raise ValueError("weights must name at least one layer")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dtype = np.dtype(dtype)
        cdef int code = _dtype_code(self.dtype, "dtype")
        # every layer's tuple and shapes, checked before anything is allocated
        layers = []
        H = None
        for k, entry in enumerate(weights):
            if not isinstance(entry, (tuple, list)) or len(entry) not in (4, 5):
                raise ValueError(f"weights[{k}] must be a (w_ih, w_hh, b_ih, b_hh) tuple (and "
                                 f"w_peep for an LSTM), got {type(entry).__name__} of length "
                                 f"{len(entry) if isinstance(entry, (tuple, list)) else '-'}")
            entry = tuple(entry) + (None,) * (5 - len(entry))
            names = [f"weights[{k}].{n}" for n in ("w_ih", "w_hh", "b_ih", "b_hh", "w_peep")]
            arrays = []
            for name, w in zip(names, entry):
                if w is None and name.endswith(("b_ih", "b_hh", "w_peep")):
                    arrays.append(None)
                    continue
                w = np.asarray(w)
                if w.dtype.kind != "f":
                    raise TypeError(f"{name} must be a real floating array, got dtype {w.dtype}")
                arrays.append(np.array(w, dtype=self.dtype, order="C"))
            w_ih, w_hh, b_ih, b_hh, w_peep = arrays
            if w_hh.ndim != 2 or w_hh.shape[1] < 1:
                raise ValueError(f"{names[1]} must be (G, H), got shape {w_hh.shape}")
            if H is None:
                H = w_hh.shape[1]
            G = _gate_width(G1, H, 1, batch_size)
            if w_hh.shape != (G, H):
                raise ValueError(f"{names[1]} must have shape {(G, H)}, got {w_hh.shape}")
            if (w_ih.ndim != 2 or w_ih.shape[0] != G or w_ih.shape[1] < 1
                    or (k > 0 and w_ih.shape[1] != H)):
                want = f"({G}, {H})" if k > 0 else f"({G}, I) with I >= 1"
                raise ValueError(f"{names[0]} must have shape {want}, got {w_ih.shape}")
            for name, bias in zip(names[2:], (b_ih, b_hh)):
                if bias is not None and bias.shape != (G,):
                    raise ValueError(f"{name} must have shape {(G,)}, got {bias.shape}")
            if w_peep is not None and not _takes(cell, RNNX_OPTION_PEEPHOLE):
                raise ValueError(f"{names[4]} (peepholes) is for an LSTM only, got cell code {cell}")
            if w_peep is not None and w_peep.shape != (3 * H,):
                raise ValueError(f"{names[4]} must have shape {(3 * H,)}, got {w_peep.shape}")
            layers.append((w_ih, w_hh, b_ih, b_hh, w_peep))
        self.cell = cell
        self.L = len(layers)
        self.B = batch_size
        self.typenum = self.dtype.num
        self.H = H
        self.I = layers[0][0].shape[1]
        self._keep = []
        self.args = <rnnx_forward_args*>calloc(self.L, sizeof(rnnx_forward_args))
        if self.args == NULL:
            raise MemoryError()
        self.states = np.zeros((2, 2, self.L, self.B, self.H), dtype=self.dtype)
        self.ys = np.zeros((self.L, self.B, self.H), dtype=self.dtype)
        self.parity = 0
        cdef int k_, I_k
        cdef Py_ssize_t layer_bytes = self.B * self.H * self.dtype.itemsize
        cdef char* ys = <char*>cnp.PyArray_DATA(self.ys)
        cdef rnnx_forward_args* a
        cdef cnp.ndarray packed
        for k_ in range(self.L):
            w_ih, w_hh, b_ih, b_hh, w_peep = layers[k_]
            I_k = w_ih.shape[1]
            w_ih_t = np.ascontiguousarray(w_ih.T)
            packed = np.empty(max(<size_t>1, rnnx_packed_size(cell, code, self.H)), dtype=self.dtype)
            if rnnx_pack_weights(cell, code, self.H, cnp.PyArray_DATA(w_hh), cnp.PyArray_DATA(packed)):
                raise ValueError("could not pack the recurrent weights")
            work = np.empty(max(<size_t>1, rnnx_forward_work_size(cell, 1, self.B, I_k, self.H, 0)),
                            dtype=self.dtype)
            self._keep.append((w_ih, w_hh, b_ih, b_hh, w_peep, w_ih_t, packed, work))
            a = &self.args[k_]
            a.cell = cell
            a.dtype = code
            a.path = PATH_AUTO
            a.T = 1
            a.B = self.B
            a.input_size = I_k
            a.H = self.H
            a.reverse = 0
            a.lengths = NULL
            a.w_ih = cnp.PyArray_DATA(<cnp.ndarray>w_ih)
            a.w_hh = cnp.PyArray_DATA(<cnp.ndarray>w_hh)
            a.b_ih = NULL if b_ih is None else cnp.PyArray_DATA(<cnp.ndarray>b_ih)
            a.b_hh = NULL if b_hh is None else cnp.PyArray_DATA(<cnp.ndarray>b_hh)
            a.w_peep = NULL if w_peep is None else cnp.PyArray_DATA(<cnp.ndarray>w_peep)
            a.w_ih_t = cnp.PyArray_DATA(<cnp.ndarray>w_ih_t)
            a.row_exact = 1   # each step's numbers whatever B, as run's chunks
            a.w_hh_t = NULL
            a.w_hh_packed = cnp.PyArray_DATA(packed)
            a.y = ys + k_ * layer_bytes
            a.ldy = self.H
            a.cache = NULL
            a.work = cnp.PyArray_DATA(<cnp.ndarray>work)
            if k_ > 0:
                a.x = ys + (k_ - 1) * layer_bytes

    def __dealloc__(self):
        free(self.args)

    @property
    def batch_size(self):
        return self.B

    def step(self, x):
        """y_t = step(x_t): x_t (B, I) -> y_t (B, H); (I,) -> (H,) when B == 1."""
        cdef cnp.ndarray xa
        cdef bint unbatched = False
        if (cnp.PyArray_Check(x) and cnp.PyArray_TYPE(<cnp.ndarray>x) == self.typenum
                and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>x) and cnp.PyArray_ISALIGNED(<cnp.ndarray>x)
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x) and cnp.PyArray_NDIM(<cnp.ndarray>x) == 2
                and cnp.PyArray_DIM(<cnp.ndarray>x, 0) == self.B
                and cnp.PyArray_DIM(<cnp.ndarray>x, 1) == self.I):
            xa = <cnp.ndarray>x
        else:
            xa, unbatched = self._coerce(x)
        cdef Py_ssize_t plane = self.L * self.B * self.H * self.dtype.itemsize
        cdef char* base = <char*>cnp.PyArray_DATA(self.states)
        cdef char* cur = base + self.parity * 2 * plane
        cdef char* nxt = base + (1 - self.parity) * 2 * plane
        cdef Py_ssize_t layer_bytes = self.B * self.H * self.dtype.itemsize
        cdef int k, status = 0
        self.args[0].x = cnp.PyArray_DATA(xa)
        with nogil:
            for k in range(self.L):
                self.args[k].h0 = cur + k * layer_bytes
                self.args[k].c0 = cur + plane + k * layer_bytes
                self.args[k].h_n = nxt + k * layer_bytes
                self.args[k].c_n = nxt + plane + k * layer_bytes
                status = rnnx_forward(&BLAS, &self.args[k])
                if status:
                    break
        if status:
            raise ValueError(f"rnnx_forward: {strerror(status)}")
        self.parity = 1 - self.parity
        # the result is a new array (the caller may keep it), made without Python indexing
        cdef cnp.npy_intp dims[2]
        dims[0] = self.B
        dims[1] = self.H
        cdef cnp.ndarray y
        if unbatched:
            y = cnp.PyArray_EMPTY(1, &dims[1], self.typenum, 0)
        else:
            y = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
        memcpy(cnp.PyArray_DATA(y), <char*>cnp.PyArray_DATA(self.ys) + (self.L - 1) * layer_bytes,
               layer_bytes)
        return y

    def run(self, cnp.ndarray x, Workspace workspace):
        """y = run(x, workspace): x (T, B, I) C-contiguous, aligned, of the stream's dtype ->
        y (T, B, H), the last layer's output at every step, from the current state, which
        it advances.  Runs on the stream's packed weights, one call into C per layer, its
        work from workspace: the same numbers as T calls of step."""
        if (cnp.PyArray_TYPE(x) != self.typenum or not cnp.PyArray_ISNOTSWAPPED(x)
                or not cnp.PyArray_ISALIGNED(x) or not cnp.PyArray_IS_C_CONTIGUOUS(x)
                or x.ndim != 3 or x.shape[1] != self.B or x.shape[2] != self.I):
            raise ValueError(f"x must be a C-contiguous ({'T'}, {self.B}, {self.I}) array of "
                             f"{self.dtype}, got {x.dtype} {np.shape(x)}")
        cdef int T = x.shape[0]
        if T < 1:
            raise ValueError(f"x must have at least one step, got shape {np.shape(x)}")
        _gate_width(rnnx_gate_count(self.cell), self.H, T, self.B)   # T*B within the core's ints
        cdef size_t size, work_size = 0
        cdef int k
        for k in range(self.L):
            size = rnnx_forward_work_size(self.cell, T, self.B, self.args[k].input_size, self.H, 0)
            work_size = size if size > work_size else work_size
        outputs = [np.empty((T, self.B, self.H), dtype=self.dtype) for _ in range(min(self.L, 2))]
        cdef Py_ssize_t plane = self.L * self.B * self.H * self.dtype.itemsize
        cdef Py_ssize_t layer_bytes = self.B * self.H * self.dtype.itemsize
        cdef char* base = <char*>cnp.PyArray_DATA(self.states)
        cdef char* cur = base + self.parity * 2 * plane
        cdef char* nxt = base + (1 - self.parity) * 2 * plane
        cdef rnnx_forward_args* a = <rnnx_forward_args*>calloc(self.L, sizeof(rnnx_forward_args))
        if a == NULL:
            raise MemoryError()
        cdef int status = 0
        cdef void* work = NULL
        workspace.enter()
        try:
            work = workspace.work(self.dtype, work_size)
            for k in range(self.L):
                a[k] = self.args[k]          # the packed weights, with T steps of this chunk
                a[k].T = T
                a[k].x = cnp.PyArray_DATA(x) if k == 0 else \
                    cnp.PyArray_DATA(<cnp.ndarray>outputs[(k - 1) % 2])
                a[k].y = cnp.PyArray_DATA(<cnp.ndarray>outputs[k % 2])
                a[k].ldy = self.H
                a[k].work = work
                a[k].h0 = cur + k * layer_bytes
                a[k].c0 = cur + plane + k * layer_bytes
                a[k].h_n = nxt + k * layer_bytes
                a[k].c_n = nxt + plane + k * layer_bytes
            with nogil:
                for k in range(self.L):
                    status = rnnx_forward(&BLAS, &a[k])
                    if status:
                        break
        finally:
            workspace.leave()
            free(a)
        if status:
            raise ValueError(f"rnnx_forward: {strerror(status)}")
        self.parity = 1 - self.parity
        return outputs[(self.L - 1) % 2]

    def _coerce(self, x):
        a = np.asarray(x)
        if a.dtype.kind != "f":
            raise TypeError(f"x_t must be a real floating array, got dtype {a.dtype}")
        unbatched = a.ndim == 1 and self.B == 1
        if unbatched:
            a = a[None, :]
        if a.ndim != 2 or a.shape != (self.B, self.I):
            want = f"({self.B}, {self.I})" + (f" or ({self.I},)" if self.B == 1 else "")
            raise ValueError(f"x_t must be {want} for batch_size={self.B}, input_size={self.I}, "
                             f"got {a.shape}")
        # a copy in native byte order, aligned and contiguous, whatever a was
        return np.array(a, dtype=self.dtype, order="C", copy=True), unbatched

    def get_state(self):
        """(h, c) copies, each (L, B, H); c is zeros for cells without one."""
        cur = self.states[self.parity]
        return cur[0].copy(), cur[1].copy()

    def set_state(self, h, c=None):
        """Set (L, B, H) states; None means zeros."""
        cur = self.states[self.parity]
        checked = []   # both checked before either is written: a refused c leaves h as it was
        for name, dst, src in (("h", cur[0], h), ("c", cur[1], c)):
            if src is not None:
                src = np.asarray(src)
                if src.shape != dst.shape:
                    raise ValueError(f"state {name} must be {dst.shape}, got {src.shape}")
                if src.dtype.kind != "f":
                    raise TypeError(f"state {name} must be a real floating array, got dtype {src.dtype}")
            checked.append((dst, src))
        for dst, src in checked:
            if src is None:
                dst[...] = 0
            else:
                dst[...] = src

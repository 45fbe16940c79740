# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The binding between NumPy arrays and the C core (csrc/rnnx.h).

Every array is checked here, in Python objects, for dtype, shape and layout
before one call into C runs the whole sequence with the GIL released.  The
functions take their output arrays from the caller (rnnx/layers.py), so the
layer decides what is allocated and what is reused.
"""
from libc.stdint cimport int64_t
from libc.stddef cimport ptrdiff_t
from scipy.linalg.cython_blas cimport sgemm, dgemm

cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef extern from "_core_shim.h":
    ctypedef void (*rnnx_sgemm_fn)(char*, char*, int*, int*, int*, float*, float*, int*,
                                   float*, int*, float*, float*, int*) noexcept nogil
    ctypedef void (*rnnx_dgemm_fn)(char*, char*, int*, int*, int*, double*, double*, int*,
                                   double*, int*, double*, double*, int*) noexcept nogil
    ctypedef struct rnnx_blas:
        rnnx_sgemm_fn sgemm
        rnnx_dgemm_fn dgemm
    ctypedef struct rnnx_forward_args:
        int cell, dtype, path
        int T, B, I, H
        int reverse
        const int64_t* lengths
        const void* x
        const void* h0
        const void* c0
        const void* w_ih
        const void* w_hh
        const void* b_ih
        const void* b_hh
        const void* w_ih_t
        const void* w_hh_t
        void* y
        ptrdiff_t ldy
        void* h_n
        void* c_n
        void* cache
        void* work
    ctypedef struct rnnx_backward_args:
        int cell, dtype, path
        int T, B, I, H
        int reverse
        const int64_t* lengths
        const void* x
        const void* w_ih
        const void* w_hh
        const void* cache
        const void* dy
        ptrdiff_t lddy
        const void* dh_n
        const void* dc_n
        void* dx
        void* dh0
        void* dc0
        void* dw_ih
        void* dw_hh
        void* db_ih
        void* db_hh
        void* work
    int rnnx_gate_count(int cell) nogil
    size_t rnnx_cache_size(int cell, int T, int B, int H) nogil
    size_t rnnx_forward_work_size(int cell, int T, int B, int I, int H, int train) nogil
    size_t rnnx_backward_work_size(int cell, int T, int B, int I, int H) nogil
    int rnnx_forward(const rnnx_blas* blas, const rnnx_forward_args* a) nogil
    int rnnx_backward(const rnnx_blas* blas, const rnnx_backward_args* a) nogil
    int rnnx_activation(int which, int dtype, const void* x, void* y, size_t n) nogil

# Cell codes, as in enum rnnx_cell.
RNN_TANH, RNN_RELU, LSTM, GRU, GRU_RESET_BEFORE = 0, 1, 2, 3, 4
# Kernel paths, as in enum rnnx_path.
PATH_AUTO, PATH_BLAS, PATH_SMALL, PATH_NAIVE = 0, 1, 2, 3

cdef rnnx_blas BLAS
BLAS.sgemm = <rnnx_sgemm_fn>sgemm
BLAS.dgemm = <rnnx_dgemm_fn>dgemm

_STATUS = {1: "invalid dimension, cell, dtype, path, stride or length", 2: "missing array"}


def gate_count(int cell):
    """G / H for a cell code: 1, 3 or 4."""
    return rnnx_gate_count(cell)


def activation(str name, x):
    """The core's own sigmoid or tanh of a float32/float64 array (for tests)."""
    cdef int which = {"sigmoid": 0, "tanh": 1}[name]
    cdef cnp.ndarray xa = np.ascontiguousarray(x)
    cdef int code = _dtype_code(xa.dtype)
    cdef cnp.ndarray y = np.empty_like(xa)
    cdef size_t n = xa.size
    with nogil:
        rnnx_activation(which, code, cnp.PyArray_DATA(xa), cnp.PyArray_DATA(y), n)
    return y


def cache_size(int cell, int T, int B, int H):
    """Number of elements of a training forward's cache."""
    return rnnx_cache_size(cell, T, B, H)


cdef int _dtype_code(object dtype) except -1:
    if dtype == np.float32:
        return 0
    if dtype == np.float64:
        return 1
    raise TypeError(f"rnnx kernels take float32 or float64, got {dtype}")


cdef void* _data(cnp.ndarray a, str name, tuple shape, object dtype, bint writable=False) except NULL:
    """Pointer to a C-contiguous array of the given shape and dtype."""
    if a.dtype != dtype:
        raise TypeError(f"{name} must be {np.dtype(dtype).name}, got {a.dtype}")
    if (<object>a).shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {(<object>a).shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return cnp.PyArray_DATA(a)


cdef void* _opt_data(object a, str name, tuple shape, object dtype, bint writable=False) except? NULL:
    if a is None:
        return NULL
    return _data(a, name, shape, dtype, writable)


cdef void* _rows(cnp.ndarray a, str name, int T, int B, int H, object dtype,
                 ptrdiff_t* ld, bint writable=False) except NULL:
    """Pointer to a (T,B,H) array whose rows are contiguous and evenly spaced:
    row (t,b) at a + (t*B+b)*ld elements.  A slice [:, :, k:k+H] of a
    C-contiguous (T,B,W) array is one; *ld receives the row stride."""
    if a.dtype != dtype:
        raise TypeError(f"{name} must be {np.dtype(dtype).name}, got {a.dtype}")
    if a.ndim != 3 or a.shape[0] != T or a.shape[1] != B or a.shape[2] != H:
        raise ValueError(f"{name} must have shape {(T, B, H)}, got {(<object>a).shape}")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable")
    cdef Py_ssize_t item = a.itemsize
    cdef Py_ssize_t s0 = a.strides[0], s1 = a.strides[1], s2 = a.strides[2]
    ld[0] = H
    if T == 0 or B == 0:
        return cnp.PyArray_DATA(a)
    cdef bint ok = H == 1 or s2 == item
    if B > 1:
        ok = ok and s1 % item == 0 and (T == 1 or s0 == B * s1)
        ld[0] = s1 // item
    elif T > 1:
        ok = ok and s0 % item == 0
        ld[0] = s0 // item
    if not ok or ld[0] < H:
        raise ValueError(f"{name} must have contiguous, evenly spaced rows, got strides {(<object>a).strides}")
    return cnp.PyArray_DATA(a)


cdef const int64_t* _lengths(object lengths, int T, int B) except? NULL:
    if lengths is None:
        return NULL
    cdef cnp.ndarray a = lengths
    _data(a, "lengths", (B,), np.int64)
    if B and (a.min() < 1 or a.max() > T):
        raise ValueError(f"lengths must lie in [1, {T}], got min {a.min()} and max {a.max()}")
    return <const int64_t*>cnp.PyArray_DATA(a)


def forward(int cell, cnp.ndarray x, cnp.ndarray h0, object c0, cnp.ndarray w_ih,
            cnp.ndarray w_hh, object b_ih, object b_hh, object lengths, bint reverse,
            cnp.ndarray y, cnp.ndarray h_n, object c_n, bint train, int path=PATH_AUTO):
    """Run one direction of one layer over a whole sequence.

    x (T,B,I), h0/c0 (B,H), weights (G,I) (G,H) (G,), y (T,B,H) with evenly spaced
    rows (written), h_n/c_n (B,H) (written).  c0/c_n are for LSTM only, biases and
    lengths (B,) int64 may be None.  Returns the cache for backward when train
    is true, else None."""
    cdef int G1 = rnnx_gate_count(cell)
    if G1 == 0:
        raise ValueError(f"unknown cell code {cell}")
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, I), got shape {(<object>x).shape}")
    dtype = x.dtype
    cdef rnnx_forward_args a
    a.cell = cell
    a.dtype = _dtype_code(dtype)
    a.path = path
    a.T = x.shape[0]
    a.B = x.shape[1]
    a.I = x.shape[2]
    a.H = h0.shape[1] if h0.ndim == 2 else 0
    a.reverse = reverse
    cdef int T = a.T, B = a.B, I = a.I, H = a.H, G = G1 * a.H
    if H < 1:
        raise ValueError(f"h0 must be (B, H) with H >= 1, got shape {(<object>h0).shape}")
    a.x = _data(x, "x", (T, B, I), dtype)
    a.h0 = _data(h0, "h0", (B, H), dtype)
    a.w_ih = _data(w_ih, "w_ih", (G, I), dtype)
    a.w_hh = _data(w_hh, "w_hh", (G, H), dtype)
    a.b_ih = _opt_data(b_ih, "b_ih", (G,), dtype)
    a.b_hh = _opt_data(b_hh, "b_hh", (G,), dtype)
    a.w_ih_t = NULL
    a.w_hh_t = NULL
    a.lengths = _lengths(lengths, T, B)
    a.y = _rows(y, "y", T, B, H, dtype, &a.ldy, True)
    a.h_n = _data(h_n, "h_n", (B, H), dtype, True)
    if cell == LSTM:
        a.c0 = _data(c0, "c0", (B, H), dtype)
        a.c_n = _data(c_n, "c_n", (B, H), dtype, True)
    else:
        a.c0 = NULL
        a.c_n = NULL
    cdef cnp.ndarray cache = None
    if train:
        cache = np.empty(rnnx_cache_size(cell, T, B, H), dtype=dtype)
        a.cache = cnp.PyArray_DATA(cache)
    else:
        a.cache = NULL
    cdef cnp.ndarray work = np.empty(max(<size_t>1, rnnx_forward_work_size(cell, T, B, I, H, train)),
                                     dtype=dtype)
    a.work = cnp.PyArray_DATA(work)
    cdef int status
    with nogil:
        status = rnnx_forward(&BLAS, &a)
    if status:
        raise ValueError(f"rnnx_forward: {_STATUS.get(status, status)}")
    return cache


def backward(int cell, cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, object lengths,
             bint reverse, cnp.ndarray cache, object dy, object dh_n, object dc_n,
             cnp.ndarray dx, cnp.ndarray dh0, object dc0, cnp.ndarray dw_ih, cnp.ndarray dw_hh,
             object db_ih, object db_hh, int path=PATH_AUTO):
    """Full BPTT through the cache of forward(..., train=True) with the same x,
    weights, lengths and reverse.  dy (T,B,H) with evenly spaced rows, dh_n/dc_n
    (B,H) may be None (zero).  Accumulates into dx, dw_ih, dw_hh, db_ih, db_hh;
    writes dh0, dc0."""
    cdef int G1 = rnnx_gate_count(cell)
    if G1 == 0:
        raise ValueError(f"unknown cell code {cell}")
    if x.ndim != 3 or dh0.ndim != 2:
        raise ValueError("x must be (T, B, I) and dh0 (B, H)")
    dtype = x.dtype
    cdef rnnx_backward_args a
    a.cell = cell
    a.dtype = _dtype_code(dtype)
    a.path = path
    a.T = x.shape[0]
    a.B = x.shape[1]
    a.I = x.shape[2]
    a.H = dh0.shape[1]
    a.reverse = reverse
    cdef int T = a.T, B = a.B, I = a.I, H = a.H, G = G1 * a.H
    if H < 1:
        raise ValueError(f"dh0 must be (B, H) with H >= 1, got shape {(<object>dh0).shape}")
    a.x = _data(x, "x", (T, B, I), dtype)
    a.w_ih = _data(w_ih, "w_ih", (G, I), dtype)
    a.w_hh = _data(w_hh, "w_hh", (G, H), dtype)
    a.lengths = _lengths(lengths, T, B)
    a.cache = _data(cache, "cache", (rnnx_cache_size(cell, T, B, H),), dtype)
    if dy is None:
        a.dy = NULL
        a.lddy = H
    else:
        a.dy = _rows(dy, "dy", T, B, H, dtype, &a.lddy)
    a.dh_n = _opt_data(dh_n, "dh_n", (B, H), dtype)
    a.dx = _data(dx, "dx", (T, B, I), dtype, True)
    a.dh0 = _data(dh0, "dh0", (B, H), dtype, True)
    a.dw_ih = _data(dw_ih, "dw_ih", (G, I), dtype, True)
    a.dw_hh = _data(dw_hh, "dw_hh", (G, H), dtype, True)
    a.db_ih = _opt_data(db_ih, "db_ih", (G,), dtype, True)
    a.db_hh = _opt_data(db_hh, "db_hh", (G,), dtype, True)
    if cell == LSTM:
        a.dc_n = _opt_data(dc_n, "dc_n", (B, H), dtype)
        a.dc0 = _data(dc0, "dc0", (B, H), dtype, True)
    else:
        a.dc_n = NULL
        a.dc0 = NULL
    cdef cnp.ndarray work = np.empty(max(<size_t>1, rnnx_backward_work_size(cell, T, B, I, H)), dtype=dtype)
    a.work = cnp.PyArray_DATA(work)
    cdef int status
    with nogil:
        status = rnnx_backward(&BLAS, &a)
    if status:
        raise ValueError(f"rnnx_backward: {_STATUS.get(status, status)}")


from libc.stdlib cimport calloc, free
from libc.string cimport memcpy


cdef class Stream:
    """One step at a time through a unidirectional stack, for inference.

    Holds its own copy of the weights (and of W_hh^T for the small kernel), the
    state, and every buffer a step needs, so a step allocates only its result.
    weights: one (w_ih, w_hh, b_ih, b_hh) tuple per layer, biases may be None."""
    cdef int cell, L, B, H, I
    cdef object dtype
    cdef int typenum
    cdef list _keep
    cdef rnnx_forward_args* args
    cdef cnp.ndarray states   # (2, 2, L, B, H): [parity][h or c]
    cdef cnp.ndarray ys       # (L, B, H) each layer's output of the last step
    cdef int parity

    def __cinit__(self, int cell, list weights, int batch_size, object dtype):
        self.args = NULL
        if rnnx_gate_count(cell) == 0:
            raise ValueError(f"unknown cell code {cell}")
        if not weights:
            raise ValueError("weights must name at least one layer")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.cell = cell
        self.L = len(weights)
        self.B = batch_size
        self.dtype = np.dtype(dtype)
        self.typenum = self.dtype.num
        w_hh0 = weights[0][1]
        self.H = w_hh0.shape[1]
        self.I = weights[0][0].shape[1]
        self._keep = []
        self.args = <rnnx_forward_args*>calloc(self.L, sizeof(rnnx_forward_args))
        if self.args == NULL:
            raise MemoryError()
        self.states = np.zeros((2, 2, self.L, self.B, self.H), dtype=self.dtype)
        self.ys = np.zeros((self.L, self.B, self.H), dtype=self.dtype)
        self.parity = 0
        cdef int k, I_k, G = rnnx_gate_count(cell) * self.H
        cdef Py_ssize_t layer_bytes = self.B * self.H * self.dtype.itemsize
        cdef char* ys = <char*>cnp.PyArray_DATA(self.ys)
        cdef rnnx_forward_args* a
        for k in range(self.L):
            w_ih, w_hh, b_ih, b_hh = [None if w is None else np.array(w, dtype=self.dtype, order="C")
                                      for w in weights[k]]
            I_k = w_ih.shape[1]
            w_ih_t = np.ascontiguousarray(w_ih.T)
            w_hh_t = np.ascontiguousarray(w_hh.T)
            work = np.empty(rnnx_forward_work_size(cell, 1, self.B, I_k, self.H, 0), dtype=self.dtype)
            self._keep.append((w_ih, w_hh, b_ih, b_hh, w_ih_t, w_hh_t, work))
            a = &self.args[k]
            a.cell = cell
            a.dtype = _dtype_code(self.dtype)
            a.path = PATH_AUTO
            a.T = 1
            a.B = self.B
            a.I = I_k
            a.H = self.H
            a.reverse = 0
            a.lengths = NULL
            a.w_ih = _data(w_ih, "w_ih", (G, I_k), self.dtype)
            a.w_hh = _data(w_hh, "w_hh", (G, self.H), self.dtype)
            a.b_ih = _opt_data(b_ih, "b_ih", (G,), self.dtype)
            a.b_hh = _opt_data(b_hh, "b_hh", (G,), self.dtype)
            a.w_ih_t = cnp.PyArray_DATA(<cnp.ndarray>w_ih_t)
            a.w_hh_t = cnp.PyArray_DATA(<cnp.ndarray>w_hh_t)
            a.y = ys + k * layer_bytes
            a.ldy = self.H
            a.cache = NULL
            a.work = cnp.PyArray_DATA(<cnp.ndarray>work)
            if k > 0:
                a.x = ys + (k - 1) * layer_bytes

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
            raise ValueError(f"rnnx_forward: {_STATUS.get(status, status)}")
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
        return np.ascontiguousarray(a, dtype=self.dtype), unbatched

    def get_state(self):
        """(h, c) copies, each (L, B, H); c is zeros for cells without one."""
        cur = self.states[self.parity]
        return cur[0].copy(), cur[1].copy()

    def set_state(self, h, c=None):
        """Set (L, B, H) states; None means zeros."""
        cur = self.states[self.parity]
        for name, dst, src in (("h", cur[0], h), ("c", cur[1], c)):
            if src is None:
                dst[...] = 0
                continue
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"state {name} must be {dst.shape}, got {src.shape}")
            if src.dtype.kind != "f":
                raise TypeError(f"state {name} must be a real floating array, got dtype {src.dtype}")
            dst[...] = src

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

cdef extern from "_core_shim.h":
    ctypedef void (*rnnx_sgemm_fn)(char*, char*, int*, int*, int*, float*, float*, int*,
                                   float*, int*, float*, float*, int*) noexcept nogil
    ctypedef void (*rnnx_dgemm_fn)(char*, char*, int*, int*, int*, double*, double*, int*,
                                   double*, int*, double*, double*, int*) noexcept nogil
    ctypedef void (*rnnx_task_fn)(void*, int) noexcept nogil
    ctypedef void (*rnnx_parallel_fn)(void*, int, rnnx_task_fn, void*) noexcept nogil
    ctypedef struct rnnx_blas:
        rnnx_sgemm_fn sgemm
        rnnx_dgemm_fn dgemm
        rnnx_parallel_fn parallel_for
        void* pool
        int n_threads
    ctypedef struct rnnx_forward_args:
        int cell, dtype, path
        int T, B, input_size, H
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
        const void* w_hh_packed
        int proj
        const void* w_hr
        const void* w_peep
        int row_exact
    ctypedef struct rnnx_backward_args:
        int cell, dtype, path
        int T, B, input_size, H
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
        int proj
        const void* w_hr
        void* dw_hr
        const void* w_peep
        void* dw_peep
    ctypedef struct rnnx_cell_info:
        int cell
        const char* name
        int gates
        const char* gate_order
        int states
        const char* state_names[2]
        int options
    ctypedef struct rnnx_param_shape:
        const char* name
        int64_t rows, cols
    enum: RNNX_MAX_PARAMS, RNNX_OPTION_PROJ, RNNX_OPTION_PEEPHOLE
    int rnnx_cell_count() nogil
    int rnnx_cell_info_of(int cell, rnnx_cell_info* out) nogil
    int rnnx_cell_params(int cell, int I, int H, int P, int peephole, rnnx_param_shape* out,
                         int* n) nogil
    const char* rnnx_strerror(int status) nogil
    int rnnx_gate_count(int cell) nogil
    size_t rnnx_cache_size(int cell, int T, int B, int H) nogil
    size_t rnnx_forward_work_size(int cell, int T, int B, int I, int H, int train) nogil
    size_t rnnx_backward_work_size(int cell, int T, int B, int I, int H) nogil
    size_t rnnx_cache_size_proj(int cell, int T, int B, int H, int P) nogil
    size_t rnnx_forward_work_size_proj(int cell, int T, int B, int I, int H, int P, int train) nogil
    size_t rnnx_backward_work_size_proj(int cell, int T, int B, int I, int H, int P) nogil
    int rnnx_forward(const rnnx_blas* blas, const rnnx_forward_args* a) nogil
    int rnnx_backward(const rnnx_blas* blas, const rnnx_backward_args* a) nogil
    int rnnx_activation(int which, int dtype, const void* x, void* y, size_t n) nogil
    size_t rnnx_packed_size(int cell, int dtype, int H) nogil
    int rnnx_pack_weights(int cell, int dtype, int H, const void* w_hh, void* out) nogil
    size_t rnnx_packed_size_proj(int cell, int dtype, int H, int P) nogil
    int rnnx_pack_weights_proj(int cell, int dtype, int H, int P, const void* w_hh,
                               const void* w_hr, void* out) nogil
    const char* rnnx_isa_name(int index) nogil
    int rnnx_isa_available(const char* name) nogil
    int rnnx_set_isa(const char* name) nogil
    const char* rnnx_get_isa() nogil

cdef extern from "model/format.h":
    const char* RNNX_FORMAT_MAGIC
    enum:
        RNNX_FORMAT_VERSION_MIN, RNNX_FORMAT_VERSION, RNNX_FORMAT_HEADER_BYTES,
        RNNX_FORMAT_DESCRIPTOR_BYTES, RNNX_FORMAT_TENSOR_ALIGN, RNNX_FORMAT_MAX_LAYERS,
        RNNX_FORMAT_MAX_STACK, RNNX_FORMAT_MAX_SIZE, RNNX_FORMAT_FLAG_MANY_TO_ONE,
        RNNX_FORMAT_FLAG_BARE_LAYER, RNNX_FORMAT_FLAG_LAST_OUTPUT, RNNX_FORMAT_KNOWN_FLAGS,
        RNNX_FORMAT_VERSION_WEIGHTS

cdef extern from "rnnx_model.h":
    enum:
        RNNX_DENSE, RNNX_EMBEDDING, RNNX_MANY_TO_ONE_STATE, RNNX_MANY_TO_ONE_OUTPUT,
        RNNX_WEIGHTS_INT8, RNNX_WEIGHTS_BFLOAT16

cdef extern from "pool.h":
    ctypedef struct rnnx_pool:
        pass
    rnnx_pool* rnnx_pool_create(int n_threads) nogil
    void rnnx_pool_parallel_for(void* pool, int n_tasks, rnnx_task_fn task, void* ctx) noexcept nogil
    void rnnx_pool_stats(const rnnx_pool* pool, long long* jobs, long long* serial_jobs) nogil
    void rnnx_pool_wrap_blas(rnnx_blas* blas) nogil
    int rnnx_pool_blas_limitable() nogil
    int rnnx_pool_threaded() nogil

# The .rnnx format's constants, from csrc/model/format.h (their one source) and the layer
# kinds of rnnx_model.h; rnnx/rnnx_format.py reads them here.
FORMAT = {"MAGIC": <bytes>RNNX_FORMAT_MAGIC, "VERSION_MIN": RNNX_FORMAT_VERSION_MIN,
          "VERSION": RNNX_FORMAT_VERSION, "HEADER_BYTES": RNNX_FORMAT_HEADER_BYTES,
          "DESCRIPTOR_BYTES": RNNX_FORMAT_DESCRIPTOR_BYTES,
          "TENSOR_ALIGN": RNNX_FORMAT_TENSOR_ALIGN, "MAX_LAYERS": RNNX_FORMAT_MAX_LAYERS,
          "MAX_STACK": RNNX_FORMAT_MAX_STACK, "MAX_SIZE": RNNX_FORMAT_MAX_SIZE,
          "FLAG_MANY_TO_ONE": RNNX_FORMAT_FLAG_MANY_TO_ONE,
          "FLAG_BARE_LAYER": RNNX_FORMAT_FLAG_BARE_LAYER,
          "FLAG_LAST_OUTPUT": RNNX_FORMAT_FLAG_LAST_OUTPUT,
          "KNOWN_FLAGS": RNNX_FORMAT_KNOWN_FLAGS,
          "MANY_TO_ONE_STATE": RNNX_MANY_TO_ONE_STATE,
          "MANY_TO_ONE_OUTPUT": RNNX_MANY_TO_ONE_OUTPUT,
          "DENSE": RNNX_DENSE, "EMBEDDING": RNNX_EMBEDDING,
          "VERSION_WEIGHTS": RNNX_FORMAT_VERSION_WEIGHTS, "WEIGHTS_INT8": RNNX_WEIGHTS_INT8,
          "WEIGHTS_BFLOAT16": RNNX_WEIGHTS_BFLOAT16}

# Cell codes, as in enum rnnx_cell.
RNN_TANH, RNN_RELU, LSTM, GRU, GRU_RESET_BEFORE = 0, 1, 2, 3, 4
# Kernel paths, as in enum rnnx_path.
PATH_AUTO, PATH_BLAS, PATH_SMALL, PATH_NAIVE = 0, 1, 2, 3

cdef rnnx_blas BLAS
BLAS.sgemm = <rnnx_sgemm_fn>sgemm
BLAS.dgemm = <rnnx_dgemm_fn>dgemm
BLAS.parallel_for = rnnx_pool_parallel_for
BLAS.pool = NULL
BLAS.n_threads = 1
rnnx_pool_wrap_blas(&BLAS)  # hoisted products in blocks on the pool, BLAS threads capped meanwhile

def _isa_names():
    """The instruction sets the core knows, best first (csrc/kernels/isa_list.h)."""
    names, i = [], 0
    while rnnx_isa_name(i) != NULL:
        names.append(rnnx_isa_name(i).decode())
        i += 1
    return tuple(names)


ISAS = _isa_names()
_INT_MAX = 2**31 - 1


def _int_arg(value, str name):
    """value as a Python int that fits a C int, or a TypeError/ValueError naming the argument
    (rather than Cython's OverflowError, which names none)."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if not -_INT_MAX - 1 <= v <= _INT_MAX:
        raise ValueError(f"{name} must fit a C int (-2**31 <= {name} < 2**31), got {v}")
    return v

# ---------------------------------------------------------------- ISA, threads

def available_isas():
    """The kernel instruction sets this build has and this CPU runs, best first."""
    return [name for name in ISAS if rnnx_isa_available(name.encode())]


def get_isa():
    """The instruction set of the kernels in use, one of ISAS ("avx512", "avx2", "neon",
    "generic")."""
    return rnnx_get_isa().decode()


def set_isa(name):
    """Run the kernels built for this instruction set (for tests and benchmarks)."""
    if name not in ISAS:
        raise ValueError(f"isa must be one of {ISAS}, got {name!r}")
    if rnnx_set_isa(name.encode()) != 0:
        raise ValueError(f"isa {name!r} is not available on this CPU or in this build; "
                         f"available: {available_isas()}")


_pools = {}  # n -> address of a pool, kept for the life of the process (a call may still use one)


def set_num_threads(n):
    """Threads for the recurrent loop of every later call (1: the calling thread only)."""
    n = _int_arg(n, "n")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    cdef rnnx_pool* pool = NULL
    if n > 1:
        if n not in _pools:
            pool = rnnx_pool_create(n)
            if pool == NULL:
                raise RuntimeError(f"could not start {n - 1} worker threads")
            _pools[n] = <size_t>pool
        pool = <rnnx_pool*><size_t>_pools[n]
    BLAS.pool = pool
    BLAS.n_threads = n


def get_num_threads():
    """Threads the recurrent loop may use."""
    return BLAS.n_threads


def _pool_diagnostics():
    """The current pool's jobs so far and how many it ran on the caller alone
    (it measured them faster so), whether the BLAS's threads can be capped
    while the pool runs, and whether pools have worker threads at all (False in
    a build without POSIX threads, csrc/pool_serial.c) (for tests)."""
    cdef long long jobs = 0, serial_jobs = 0
    rnnx_pool_stats(<rnnx_pool*>BLAS.pool, &jobs, &serial_jobs)
    return {"jobs": jobs, "serial_jobs": serial_jobs,
            "blas_limitable": bool(rnnx_pool_blas_limitable()),
            "threaded": bool(rnnx_pool_threaded())}


def _isa_from_environment():
    import os
    import warnings
    name = os.environ.get("RNNX_ISA", "").strip().lower()
    if not name:
        return
    if name not in ISAS or not rnnx_isa_available(name.encode()):
        warnings.warn(f"RNNX_ISA={name!r} cannot run here ({'unknown name' if name not in ISAS else 'not supported by this CPU or build'}); "
                      f"using {get_isa()!r} (available: {available_isas()})", RuntimeWarning)
        return
    rnnx_set_isa(name.encode())


_isa_from_environment()


cdef int _states(int cell):
    """How many state tensors a known cell has: 1 (h) or 2 (h, c), from the core's table."""
    cdef rnnx_cell_info info
    return info.states if rnnx_cell_info_of(cell, &info) == 0 else 0


cdef bint _takes(int cell, int option):
    """Whether a known cell takes an option (RNNX_OPTION_*), from the core's table."""
    cdef rnnx_cell_info info
    return rnnx_cell_info_of(cell, &info) == 0 and (info.options & option) != 0


def strerror(status):
    """The core's sentence for a status code (rnnx_strerror)."""
    return rnnx_strerror(_int_arg(status, "status")).decode()


def cell_table():
    """The core's table of cells, one dict per cell code (in code order): name,
    code, gates (G / H), gate_order (tuple), states (tuple of names: ("h",) or
    ("h", "c"), each (B, H) wide but h, which is (B, proj_size) with a projection),
    options (tuple of "proj", "peephole": the variants it takes) and parameters
    (the names of one layer and direction's parameters with every option on, in
    the core's order; parameter_shapes gives their shapes)."""
    cdef rnnx_cell_info info
    cdef rnnx_param_shape params[RNNX_MAX_PARAMS]
    cdef int n
    table = []
    for code in range(rnnx_cell_count()):
        rnnx_cell_info_of(code, &info)
        options = tuple(name for bit, name in ((RNNX_OPTION_PROJ, "proj"),
                                               (RNNX_OPTION_PEEPHOLE, "peephole"))
                        if info.options & bit)
        rnnx_cell_params(code, 1, 2, 1 if "proj" in options else 0, "peephole" in options,
                         params, &n)
        table.append({
            "name": info.name.decode(), "code": info.cell, "gates": info.gates,
            "gate_order": tuple(info.gate_order.decode().split(",")),
            "states": tuple(info.state_names[k].decode() for k in range(info.states)),
            "options": options,
            "parameters": tuple(params[k].name.decode() for k in range(n))})
    return table


def parameter_shapes(cell, input_size, hidden_size, proj_size=0, peephole=False):
    """{name: shape} of one layer and direction's parameters (names less _l{k}),
    in the core's order: weight_ih (G, I), weight_hh (G, S), bias_ih, bias_hh (G,),
    then weight_hr (proj_size, H) with a projection and weight_peephole (3H,) with
    peepholes; S is proj_size with a projection, else H."""
    cdef rnnx_param_shape params[RNNX_MAX_PARAMS]
    cdef int n = 0
    cdef int status = rnnx_cell_params(_int_arg(cell, "cell"), _int_arg(input_size, "input_size"),
                                       _int_arg(hidden_size, "hidden_size"),
                                       _int_arg(proj_size, "proj_size"), bool(peephole), params, &n)
    if status:
        raise ValueError(f"parameter_shapes(cell={cell}, input_size={input_size}, "
                         f"hidden_size={hidden_size}, proj_size={proj_size}, "
                         f"peephole={peephole}): {strerror(status)}")
    shapes = {}
    for k in range(n):
        rows, cols = int(params[k].rows), int(params[k].cols)
        shapes[params[k].name.decode()] = (rows, cols) if cols else (rows,)
    return shapes


def gate_count(cell):
    """G / H for a cell code: 1, 3 or 4 (0 for an unknown code)."""
    return rnnx_gate_count(_int_arg(cell, "cell"))


def activation(name, x):
    """The core's own sigmoid or tanh of a float32/float64 array (for tests)."""
    if name not in ("sigmoid", "tanh"):
        raise ValueError(f"name must be 'sigmoid' or 'tanh', got {name!r}")
    cdef int which = {"sigmoid": 0, "tanh": 1}[name]
    cdef cnp.ndarray xa = np.ascontiguousarray(x)
    cdef int code = _dtype_code(xa.dtype)
    cdef cnp.ndarray y = np.empty_like(xa)
    cdef size_t n = xa.size
    with nogil:
        rnnx_activation(which, code, cnp.PyArray_DATA(xa), cnp.PyArray_DATA(y), n)
    return y


def cache_size(cell, T, B, H, P=0):
    """Number of elements of a training forward's cache (P: proj_size, 0 for none).
    ValueError (never a wrapped size) where it does not fit the core's index types."""
    cell, T, B, H, P = (_int_arg(cell, "cell"), _int_arg(T, "T"), _int_arg(B, "B"),
                        _int_arg(H, "H"), _int_arg(P, "P"))
    if rnnx_gate_count(cell) == 0:
        raise ValueError(f"unknown cell code {cell}")
    if T < 0 or B < 0 or H < 1 or P < 0:
        raise ValueError(f"T, B and P must be >= 0 and H >= 1, got T={T}, B={B}, H={H}, P={P}")
    cdef size_t n = rnnx_cache_size_proj(cell, T, B, H, P)
    if n == 0 and T > 0 and B > 0:
        raise ValueError(f"the cache of T={T}, B={B}, H={H}, P={P} is too large for the "
                         f"core's index types (T*B and G*H must fit a C int)")
    return n


cdef int _proj_size(int cell, object w_hr, str name="w_hr") except -1:
    """P, the projection's size, from w_hr (P, H) (checked against H later), or 0 for None."""
    if w_hr is None:
        return 0
    _array(w_hr, name)
    if not _takes(cell, RNNX_OPTION_PROJ):
        raise ValueError(f"{name} (a projection, proj_size > 0) is for an LSTM only, got cell code {cell}")
    if w_hr.ndim != 2 or not 0 < w_hr.shape[0] < w_hr.shape[1]:
        raise ValueError(f"{name} must be (P, H) with 0 < P < H (proj_size < hidden_size), "
                         f"got shape {w_hr.shape}")
    if w_hr.shape[0] > _INT_MAX:
        raise ValueError(f"{name} is too large: {w_hr.shape}")
    return w_hr.shape[0]


cdef const void* _peepholes(int cell, object w_peep, str name, int H, object dtype) except? NULL:
    """The data of an LSTM's peepholes w_peep (3H,, already through _aligned, which the
    caller keeps alive), or NULL for None."""
    if w_peep is None:
        return NULL
    if not _takes(cell, RNNX_OPTION_PEEPHOLE):
        raise ValueError(f"{name} (peepholes) is for an LSTM only, got cell code {cell}")
    return _data(w_peep, name, (3 * H,), dtype)


cdef int _dtype_code(object dtype, str name="x") except -1:
    if dtype == np.float32:
        return 0
    if dtype == np.float64:
        return 1
    raise TypeError(f"{name} must be float32 or float64 (native byte order), got {dtype}")


cdef int _gate_width(int G1, object H, object T, object B) except -1:
    """G = G1 * H, after checking that G and T*B fit the core's int indices."""
    if G1 * H > _INT_MAX or T * B > _INT_MAX:
        raise ValueError(f"sizes too large: G = {G1} * H = {G1 * H} and T * B = {T * B} "
                         f"must stay below 2**31")
    return G1 * H


cdef cnp.ndarray _array(object a, str name):
    """a itself, when it is a NumPy array."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    return <cnp.ndarray>a


cdef object _aligned(object a, str name):
    """An input array as given, or an aligned copy of a misaligned one (the
    kernels load whole elements)."""
    _array(a, name)
    return a if a.flags.aligned else a.copy()


cdef void* _data(object obj, str name, tuple shape, object dtype, bint writable=False) except NULL:
    """Pointer to a C-contiguous, aligned array of the given shape and dtype."""
    cdef cnp.ndarray a = _array(obj, name)
    if a.dtype != dtype:
        raise TypeError(f"{name} must be {np.dtype(dtype).name} like x (one dtype for every array), got {a.dtype}")
    if (<object>a).shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {(<object>a).shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable")
    if not a.flags.aligned:
        raise ValueError(f"{name} must be aligned to its dtype")
    return cnp.PyArray_DATA(a)


cdef void* _opt_data(object a, str name, tuple shape, object dtype, bint writable=False) except? NULL:
    if a is None:
        return NULL
    return _data(a, name, shape, dtype, writable)


cdef void* _rows(object obj, str name, int T, int B, int H, object dtype,
                 ptrdiff_t* ld, bint writable=False) except NULL:
    """Pointer to a (T,B,H) array whose rows are contiguous and evenly spaced:
    row (t,b) at a + (t*B+b)*ld elements.  A slice [:, :, k:k+H] of a
    C-contiguous (T,B,W) array is one; *ld receives the row stride."""
    cdef cnp.ndarray a = _array(obj, name)
    if a.dtype != dtype:
        raise TypeError(f"{name} must be {np.dtype(dtype).name} like x (one dtype for every array), got {a.dtype}")
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
    if not a.flags.aligned:
        raise ValueError(f"{name} must be aligned to its dtype")
    return cnp.PyArray_DATA(a)


cdef const int64_t* _lengths(object lengths, int T, int B) except? NULL:
    if lengths is None:
        return NULL
    cdef cnp.ndarray a = _array(lengths, "lengths")
    _data(a, "lengths", (B,), np.int64)
    if B and (a.min() < 0 or a.max() > T):
        raise ValueError(f"lengths must lie in [0, {T}], got min {a.min()} and max {a.max()}")
    return <const int64_t*>cnp.PyArray_DATA(a)


cdef class Workspace:
    """Memory that forward and backward reuse from one call to the next.

    The work (scratch) of a call lives only during that call: the workspace keeps one
    buffer per dtype, grown (never shrunk) when a call needs more.  A training
    forward's cache outlives the call, so caches come from a pool: a pooled array is
    handed out again only once nothing but the pool refers to it (the caller dropped
    every cache made from it), so a cache still held is never overwritten, whatever
    the later calls' shapes, dtypes or weights.  One call at a time: a second call
    while one runs (another thread) raises RuntimeError."""
    cdef dict _work        # dtype number -> 1-D ndarray
    cdef list _caches      # 1-D ndarrays, each handed out as views
    cdef int _max_caches
    cdef bint _busy

    def __cinit__(self, object max_caches=64):
        max_caches = _int_arg(max_caches, "max_caches")
        self._work = {}
        self._caches = []
        self._max_caches = max_caches
        self._busy = False

    @property
    def nbytes(self):
        """int: the bytes held (work buffers and pooled caches)."""
        return sum(a.nbytes for a in self._work.values()) + sum(a.nbytes for a in self._caches)

    cdef void* work(self, object dtype, size_t n) except NULL:
        """A pointer to n elements of dtype, valid until the next call that uses this workspace."""
        cdef cnp.ndarray buf = self._work.get(dtype.num)
        if buf is None or <size_t>buf.shape[0] < n:
            buf = np.empty(max(<size_t>1, n), dtype=dtype)
            self._work[dtype.num] = buf
        return cnp.PyArray_DATA(buf)

    cdef cnp.ndarray cache(self, object dtype, size_t n):
        """A (n,) array of dtype for a training forward's cache: a view of a pooled array
        that nothing else refers to, else a new pooled array."""
        cdef Py_ssize_t i, best = -1
        cdef object a
        for i in range(len(self._caches)):
            a = self._caches[i]
            # free: referred to by the pool and by `a` only (no cache made from it is alive)
            if Py_REFCNT(a) == 2 and a.dtype == dtype and <size_t>a.shape[0] >= n and (
                    best < 0 or a.shape[0] < self._caches[best].shape[0]):
                best = i
        if best < 0:
            a = np.empty(max(<size_t>1, n), dtype=dtype)
            if len(self._caches) >= self._max_caches:
                return a[:n]                 # the pool is full: a plain array
            self._caches.append(a)
        else:
            a = self._caches[best]
        return a[:n]

    cdef void enter(self) except *:
        if self._busy:
            raise RuntimeError("this Workspace is in use by another call (one call at a time: "
                               "give each thread its own)")
        self._busy = True

    cdef void leave(self) noexcept:
        self._busy = False


def forward(object cell, object x, object h0, object c0, object w_ih, object w_hh, object b_ih,
            object b_hh, object lengths, bint reverse, object y, object h_n, object c_n,
            bint train, object path=PATH_AUTO, object w_hr=None, object w_hh_packed=None,
            object w_ih_t=None, Workspace workspace=None, object w_peep=None,
            bint row_exact=False):
    """Run one direction of one layer over a whole sequence.

    x (T,B,I), h0/c0 (B,H), weights (G,I) (G,H) (G,), y (T,B,H) with evenly spaced
    rows (written), h_n/c_n (B,H) (written).  c0/c_n are for LSTM only, biases and
    lengths (B,) int64 may be None.  Returns the cache for backward when train
    is true, else None.

    w_hr (P,H): an LSTM's projection (proj_size P, 0 < P < H), or None.  With it,
    h0, h_n are (B,P), y (T,B,P), w_hh (G,P); c0, c_n stay (B,H).
    w_hh_packed: pack_weights(cell, w_hh, w_hr) of these weights, and w_ih_t: w_ih.T
    C-contiguous, for a caller that runs many short calls with the same weights (a
    stream); None: done per call.
    workspace: a Workspace whose memory this call reuses, or None (this call
    allocates its own).
    w_peep (3H,): an LSTM's peepholes [Pi, Pf, Po] (this order: ONNX's P is
    [Pi, Po, Pf]), or None: i = sigma(. + Pi*c_{t-1}), f = sigma(. + Pf*c_{t-1}),
    o = sigma(. + Po*c_t).
    row_exact: every row's input projection alone (csrc/rnnx.h), so that the numbers do
    not depend on T*B: a stream's steps and a whole-sequence call both made with it agree
    bit for bit; False lets a large float32 projection go through BLAS."""
    cell, path = _int_arg(cell, "cell"), _int_arg(path, "path")
    cdef int G1 = rnnx_gate_count(cell)
    if G1 == 0:
        raise ValueError(f"unknown cell code {cell}")
    x = _aligned(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, I), got shape {x.shape}")
    dtype = x.dtype
    cdef rnnx_forward_args a
    memset(&a, 0, sizeof(a))
    a.dtype = _dtype_code(dtype, "x")
    h0 = _aligned(h0, "h0")
    if h0.ndim != 2 or h0.shape[1] < 1:
        raise ValueError(f"h0 must be (B, H) with H >= 1, got shape {h0.shape}")
    cdef int P = _proj_size(cell, w_hr)
    cdef int G = _gate_width(G1, w_hr.shape[1] if P else h0.shape[1], x.shape[0], x.shape[1])
    a.cell = cell
    a.path = path
    a.T = x.shape[0]
    a.B = x.shape[1]
    a.input_size = x.shape[2]
    a.H = G // G1
    a.reverse = reverse
    a.proj = P
    cdef int T = a.T, B = a.B, I = a.input_size, H = a.H
    cdef int S = P if P else H   # the width of h and y
    w_ih, w_hh = _aligned(w_ih, "w_ih"), _aligned(w_hh, "w_hh")
    b_ih = None if b_ih is None else _aligned(b_ih, "b_ih")
    b_hh = None if b_hh is None else _aligned(b_hh, "b_hh")
    a.x = _data(x, "x", (T, B, I), dtype)
    a.h0 = _data(h0, "h0", (B, S), dtype)
    a.w_ih = _data(w_ih, "w_ih", (G, I), dtype)
    a.w_hh = _data(w_hh, "w_hh", (G, S), dtype)
    if P:
        w_hr = _aligned(w_hr, "w_hr")
        a.w_hr = _data(w_hr, "w_hr", (P, H), dtype)
    a.b_ih = _opt_data(b_ih, "b_ih", (G,), dtype)
    a.b_hh = _opt_data(b_hh, "b_hh", (G,), dtype)
    w_peep = None if w_peep is None else _aligned(w_peep, "w_peep")
    a.w_peep = _peepholes(cell, w_peep, "w_peep", H, dtype)
    a.w_hh_packed = _opt_data(w_hh_packed, "w_hh_packed",
                              (rnnx_packed_size_proj(cell, a.dtype, H, P),), dtype)
    a.w_ih_t = _opt_data(w_ih_t, "w_ih_t", (I, G), dtype)
    a.row_exact = row_exact
    a.lengths = _lengths(None if lengths is None else _aligned(lengths, "lengths"), T, B)
    a.y = _rows(y, "y", T, B, S, dtype, &a.ldy, True)
    a.h_n = _data(h_n, "h_n", (B, S), dtype, True)
    if _states(cell) == 2:   # h and c
        c0 = _aligned(c0, "c0")
        a.c0 = _data(c0, "c0", (B, H), dtype)
        a.c_n = _data(c_n, "c_n", (B, H), dtype, True)
    cdef cnp.ndarray cache = None
    cdef cnp.ndarray work = None
    cdef size_t work_size = rnnx_forward_work_size_proj(cell, T, B, I, H, P, train)
    cdef size_t cache_size = rnnx_cache_size_proj(cell, T, B, H, P)
    cdef int status
    if workspace is None:
        if train:
            cache = np.empty(cache_size, dtype=dtype)
            a.cache = cnp.PyArray_DATA(cache)
        work = np.empty(max(<size_t>1, work_size), dtype=dtype)
        a.work = cnp.PyArray_DATA(work)
        with nogil:
            status = rnnx_forward(&BLAS, &a)
    else:
        workspace.enter()   # before its buffers are handed out: a running call may hold them
        try:
            if train:
                cache = workspace.cache(dtype, cache_size)
                a.cache = cnp.PyArray_DATA(cache)
            a.work = workspace.work(dtype, work_size)
            with nogil:
                status = rnnx_forward(&BLAS, &a)
        finally:
            workspace.leave()
    if status:
        raise ValueError(f"rnnx_forward: {strerror(status)}")
    return cache


def pack_weights(object cell, object w_hh, object w_hr=None):
    """W_hh (G,S), and an LSTM's projection w_hr (P,H) or None, in the layout of the
    core's per-step kernel: forward's w_hh_packed (S = P with a projection, else H)."""
    cell = _int_arg(cell, "cell")
    if rnnx_gate_count(cell) == 0:
        raise ValueError(f"unknown cell code {cell}")
    w_hh = _aligned(w_hh, "w_hh")
    cdef int code = _dtype_code(w_hh.dtype, "w_hh")
    cdef int P = _proj_size(cell, w_hr)
    if w_hh.ndim != 2:
        raise ValueError(f"w_hh must be (G, S), got shape {w_hh.shape}")
    cdef int G1 = rnnx_gate_count(cell)
    cdef int H = w_hr.shape[1] if P else w_hh.shape[1]
    _data(w_hh, "w_hh", (_gate_width(G1, H, 1, 1), P if P else H), w_hh.dtype)
    if P:
        w_hr = _aligned(w_hr, "w_hr")
        _data(w_hr, "w_hr", (P, H), w_hh.dtype)
    cdef cnp.ndarray out = np.empty(max(<size_t>1, rnnx_packed_size_proj(cell, code, H, P)),
                                    dtype=w_hh.dtype)
    cdef int status = rnnx_pack_weights_proj(cell, code, H, P, cnp.PyArray_DATA(w_hh),
                                             NULL if not P else cnp.PyArray_DATA(w_hr),
                                             cnp.PyArray_DATA(out))
    if status:
        raise ValueError(f"rnnx_pack_weights: {strerror(status)}")
    return out


def backward(object cell, object x, object w_ih, object w_hh, object lengths, bint reverse,
             object cache, object dy, object dh_n, object dc_n, object dx, object dh0, object dc0,
             object dw_ih, object dw_hh, object db_ih, object db_hh, object path=PATH_AUTO,
             object w_hr=None, object dw_hr=None, Workspace workspace=None, object w_peep=None,
             object dw_peep=None):
    """Full BPTT through the cache of forward(..., train=True) with the same x,
    weights, lengths and reverse.  dy (T,B,H) with evenly spaced rows, dh_n/dc_n
    (B,H) may be None (zero).  Accumulates into dx, dw_ih, dw_hh, db_ih, db_hh;
    writes dh0, dc0.  With a projection (w_hr (P,H) as in forward), dy is
    (T,B,P), dh_n, dh0 (B,P), and dw_hr (P,H) is accumulated too.  With
    peepholes (w_peep (3H,) as in forward), dw_peep (3H,) is accumulated too.
    workspace: as in forward (its work is reused)."""
    cell, path = _int_arg(cell, "cell"), _int_arg(path, "path")
    cdef int G1 = rnnx_gate_count(cell)
    if G1 == 0:
        raise ValueError(f"unknown cell code {cell}")
    x = _aligned(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, I), got shape {x.shape}")
    dtype = x.dtype
    cdef rnnx_backward_args a
    memset(&a, 0, sizeof(a))
    a.dtype = _dtype_code(dtype, "x")
    _array(dh0, "dh0")
    if dh0.ndim != 2 or dh0.shape[1] < 1:
        raise ValueError(f"dh0 must be (B, H) with H >= 1, got shape {dh0.shape}")
    cdef int P = _proj_size(cell, w_hr)
    cdef int G = _gate_width(G1, w_hr.shape[1] if P else dh0.shape[1], x.shape[0], x.shape[1])
    a.cell = cell
    a.path = path
    a.T = x.shape[0]
    a.B = x.shape[1]
    a.input_size = x.shape[2]
    a.H = G // G1
    a.reverse = reverse
    a.proj = P
    cdef int T = a.T, B = a.B, I = a.input_size, H = a.H
    cdef int S = P if P else H   # the width of h and y
    w_ih, w_hh = _aligned(w_ih, "w_ih"), _aligned(w_hh, "w_hh")
    a.x = _data(x, "x", (T, B, I), dtype)
    a.w_ih = _data(w_ih, "w_ih", (G, I), dtype)
    a.w_hh = _data(w_hh, "w_hh", (G, S), dtype)
    if P:
        w_hr = _aligned(w_hr, "w_hr")
        a.w_hr = _data(w_hr, "w_hr", (P, H), dtype)
        a.dw_hr = _data(dw_hr, "dw_hr", (P, H), dtype, True)
    a.lengths = _lengths(None if lengths is None else _aligned(lengths, "lengths"), T, B)
    a.cache = _data(cache, "cache", (rnnx_cache_size_proj(cell, T, B, H, P),), dtype)
    if dy is None:
        a.dy = NULL
        a.lddy = S
    else:
        dy = _aligned(dy, "dy")
        a.dy = _rows(dy, "dy", T, B, S, dtype, &a.lddy)
    dh_n = None if dh_n is None else _aligned(dh_n, "dh_n")
    a.dh_n = _opt_data(dh_n, "dh_n", (B, S), dtype)
    a.dx = _data(dx, "dx", (T, B, I), dtype, True)
    a.dh0 = _data(dh0, "dh0", (B, S), dtype, True)
    a.dw_ih = _data(dw_ih, "dw_ih", (G, I), dtype, True)
    a.dw_hh = _data(dw_hh, "dw_hh", (G, S), dtype, True)
    a.db_ih = _opt_data(db_ih, "db_ih", (G,), dtype, True)
    a.db_hh = _opt_data(db_hh, "db_hh", (G,), dtype, True)
    w_peep = None if w_peep is None else _aligned(w_peep, "w_peep")
    a.w_peep = _peepholes(cell, w_peep, "w_peep", H, dtype)
    if a.w_peep != NULL:
        a.dw_peep = _data(dw_peep, "dw_peep", (3 * H,), dtype, True)
    elif dw_peep is not None:
        raise ValueError("dw_peep is given without w_peep: pass both or neither")
    if _states(cell) == 2:   # h and c
        dc_n = None if dc_n is None else _aligned(dc_n, "dc_n")
        a.dc_n = _opt_data(dc_n, "dc_n", (B, H), dtype)
        a.dc0 = _data(dc0, "dc0", (B, H), dtype, True)
    cdef cnp.ndarray work = None
    cdef size_t work_size = rnnx_backward_work_size_proj(cell, T, B, I, H, P)
    cdef int status
    if workspace is None:
        work = np.empty(max(<size_t>1, work_size), dtype=dtype)
        a.work = cnp.PyArray_DATA(work)
        with nogil:
            status = rnnx_backward(&BLAS, &a)
    else:
        workspace.enter()   # before its buffer is handed out: a running call may hold it
        try:
            a.work = workspace.work(dtype, work_size)
            with nogil:
                status = rnnx_backward(&BLAS, &a)
        finally:
            workspace.leave()
    if status:
        raise ValueError(f"rnnx_backward: {strerror(status)}")




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

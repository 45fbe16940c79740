# Included by rnnx/_core.pyx: int8 and bfloat16 inference (csrc/quant/quant.h): quantizing and
# packing weights, the quantized forward of one layer and direction, the kernel variants.

from libc.stdint cimport int8_t, uint16_t


cdef _qcheck(int status, str what):
    if status != 0:
        raise ValueError(f"{what}: {strerror(status)}")


cdef extern from "quant/quant.h":
    enum: RNNX_QINT8, RNNX_QBFLOAT16, RNNX_QROWS, RNNX_QMAX_COLS
    ctypedef struct rnnx_qforward_args:
        int cell, qtype, T, B, input_size, H, proj, reverse
        const int64_t* lengths
        const float* x
        const float* h0
        const float* c0
        const void* w_ih
        const void* w_hh
        const void* w_hr
        const float* b_ih
        const float* b_hh
        float* y
        ptrdiff_t ldy
        float* h_n
        float* c_n
        void* work
    int rnnx_quantize_int8(int rows, int cols, const float* w, int8_t* q, float* scale) nogil
    int rnnx_to_bfloat16(size_t n, const float* w, uint16_t* out) nogil
    size_t rnnx_qpack_size(int qtype, int gates, int n, int cols) nogil
    int rnnx_qpack(int qtype, int gates, int n, int cols, const void* q, const float* scale,
                   void* out) nogil
    size_t rnnx_qforward_work_size(int cell, int qtype, int T, int B, int input_size, int H,
                                   int proj) nogil
    int rnnx_qforward(const rnnx_blas* blas, const rnnx_qforward_args* a) nogil
    const char* rnnx_qkernel_name(int index)
    int rnnx_qkernel_available(const char* name)
    int rnnx_qset_kernel(const char* name)
    const char* rnnx_qget_kernel(int qtype)

cdef extern from "quant/qkernels.h":
    float rnnx_qbf16_madd(float acc, uint16_t a, uint16_t b)

QTYPES = {"int8": RNNX_QINT8, "bfloat16": RNNX_QBFLOAT16}
QROWS = RNNX_QROWS


def _qtype_code(qtype):
    if qtype not in QTYPES:
        raise ValueError(f"qtype must be one of {tuple(QTYPES)}, got {qtype!r}")
    return QTYPES[qtype]


def _f32_matrix(w, str name):
    w = np.ascontiguousarray(w, dtype=np.float32)
    if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {w.shape}")
    if w.shape[1] > RNNX_QMAX_COLS:
        raise ValueError(f"{name} may have at most {RNNX_QMAX_COLS} columns, got {w.shape[1]}")
    return w


def quantize_int8(w):
    """(q int8 (R, C), scale float32 (R,)): symmetric per row, scale = max|w_row| / 127,
    q = rint(w * (127 / max|w_row|)) (csrc/quant/pack.c)."""
    w = _f32_matrix(w, "w")
    cdef cnp.ndarray q = np.empty(w.shape, np.int8)
    cdef cnp.ndarray scale = np.empty(w.shape[0], np.float32)
    rnnx_quantize_int8(w.shape[0], w.shape[1], <const float*>cnp.PyArray_DATA(w),
                       <int8_t*>cnp.PyArray_DATA(q), <float*>cnp.PyArray_DATA(scale))
    return q, scale


def to_bfloat16(w):
    """The bfloat16 bits (uint16, w's shape) of float32 w, rounded to nearest even."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    cdef cnp.ndarray out = np.empty(w.shape, np.uint16)
    rnnx_to_bfloat16(w.size, <const float*>cnp.PyArray_DATA(w), <uint16_t*>cnp.PyArray_DATA(out))
    return out


def qpack(qtype, int gates, q, scale=None):
    """The packed panels (uint8, 64-byte aligned) of q (gates*n, C): int8 with scale (gates*n,)
    or bfloat16 bits (uint16)."""
    cdef int code = _qtype_code(qtype)
    want = np.int8 if code == RNNX_QINT8 else np.uint16
    q = np.ascontiguousarray(q)
    if q.dtype != want or q.ndim != 2 or q.shape[0] % gates or q.shape[0] == 0:
        raise ValueError(f"q must be a ({gates}*n, C) {np.dtype(want).name} matrix, "
                         f"got {q.dtype} {q.shape}")
    if code == RNNX_QINT8:
        scale = np.ascontiguousarray(scale, dtype=np.float32)
        if scale.shape != (q.shape[0],):
            raise ValueError(f"scale must be ({q.shape[0]},), got {scale.shape}")
    cdef int n = q.shape[0] // gates, cols = q.shape[1]
    cdef size_t size = rnnx_qpack_size(code, gates, n, cols)
    if size == 0:
        raise ValueError(f"cannot pack a {q.shape} matrix (at most {RNNX_QMAX_COLS} columns)")
    buf = np.empty(size + 64, np.uint8)
    cdef size_t offset = (-<size_t>cnp.PyArray_DATA(buf)) % 64
    cdef cnp.ndarray out = buf[offset:offset + size]
    cdef const float* sp = NULL
    if code == RNNX_QINT8:
        sp = <const float*>cnp.PyArray_DATA(scale)
    _qcheck(rnnx_qpack(code, gates, n, cols, cnp.PyArray_DATA(q), sp, cnp.PyArray_DATA(out)),
            "rnnx_qpack")
    return out


def _qneed(a, shape, dtype, str name, bint optional=False, bint rows_contiguous=False):
    """a must be an ndarray of shape and dtype, C-contiguous (or, rows_contiguous, with a
    contiguous last axis): else a TypeError/ValueError naming it."""
    if a is None and optional:
        return
    if not isinstance(a, np.ndarray) or a.dtype != dtype:
        raise TypeError(f"{name} must be a {np.dtype(dtype).name} ndarray, got "
                        f"{getattr(a, 'dtype', type(a).__name__)}")
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    # (no negative indices: the module is compiled with wraparound=False)
    ok = (a.strides[a.ndim - 1] == a.itemsize) if rows_contiguous and a.ndim else a.flags.c_contiguous
    if not ok and a.size:
        raise ValueError(f"{name} must be contiguous")


cdef const float* _fptr(object a):
    return NULL if a is None else <const float*>cnp.PyArray_DATA(a)


def qforward(int cell, qtype, x, h0, c0, w_ih, w_hh, w_hr, b_ih, b_hh, int H, int P,
             lengths, bint reverse, y, h_n, c_n, work=None):
    """One layer and direction (csrc/quant/forward.c): x (T, B, I) float32 C-contiguous; h0
    (B, P or H), c0 (B, H) or None; packed weights from qpack; biases (G,) float32 or None;
    lengths int64 (B,) or None; writes y (T, B, .) (a view whose rows are contiguous), h_n,
    c_n.  The caller (rnnx/quantized.py) has checked every shape and dtype."""
    cdef rnnx_qforward_args a
    memset(&a, 0, sizeof(a))
    a.cell = cell
    a.qtype = _qtype_code(qtype)
    cdef int gates = rnnx_gate_count(cell)
    if gates == 0:
        raise ValueError(f"cell must be a cell code of the core, got {cell}")
    if x is None or getattr(x, "ndim", 0) != 3:
        raise ValueError(f"x must be a (T, B, I) float32 array, got {getattr(x, 'shape', x)}")
    if H < 1 or P < 0 or P >= H or (P and cell != LSTM):
        raise ValueError(f"H must be >= 1 and proj 0 or in (0, H) for an LSTM, got H={H}, P={P}")
    T, B, I = x.shape
    S = P if P else H
    _qneed(x, (T, B, I), np.float32, "x")
    _qneed(h0, (B, S), np.float32, "h0", True)
    _qneed(c0, (B, H), np.float32, "c0", True)
    _qneed(h_n, (B, S), np.float32, "h_n")
    _qneed(c_n, (B, H), np.float32, "c_n", True)
    _qneed(y, (T, B, S), np.float32, "y", rows_contiguous=True)
    for name, w, n, cols, g in (("w_ih", w_ih, H, I, gates), ("w_hh", w_hh, H, S, gates),
                                ("w_hr", w_hr, P, H, 1)):
        if name == "w_hr" and not P:
            continue
        size = rnnx_qpack_size(a.qtype, g, n, cols)
        if not isinstance(w, np.ndarray) or w.dtype != np.uint8 or w.size != size \
                or not w.flags.c_contiguous:
            raise ValueError(f"{name} must be qpack's uint8 array of {size} bytes for "
                             f"({g}*{n}, {cols}), got {getattr(w, 'dtype', type(w).__name__)} "
                             f"of {getattr(w, 'size', '?')}")
    _qneed(b_ih, (gates * H,), np.float32, "b_ih", True)
    _qneed(b_hh, (gates * H,), np.float32, "b_hh", True)
    _qneed(lengths, (B,), np.int64, "lengths", True)
    if lengths is not None and B and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(f"lengths must lie in [0, {T}], got {lengths}")
    if c_n is None and cell == LSTM:
        raise ValueError("c_n must be given for an LSTM")
    a.T, a.B, a.input_size, a.H, a.proj, a.reverse = x.shape[0], x.shape[1], x.shape[2], H, P, reverse
    a.x = _fptr(x)
    a.h0 = _fptr(h0)
    a.c0 = _fptr(c0)
    a.w_ih = cnp.PyArray_DATA(w_ih)
    a.w_hh = cnp.PyArray_DATA(w_hh)
    a.w_hr = NULL if w_hr is None else cnp.PyArray_DATA(w_hr)
    a.b_ih = _fptr(b_ih)
    a.b_hh = _fptr(b_hh)
    a.lengths = NULL if lengths is None else <const int64_t*>cnp.PyArray_DATA(lengths)
    a.y = <float*>cnp.PyArray_DATA(y)
    a.ldy = y.strides[1] // 4 if y.shape[1] > 1 else (y.strides[0] // 4 // max(a.B, 1))
    if y.shape[1] > 1 and y.strides[0] != y.strides[1] * a.B:
        raise ValueError("y's (t, b) rows must be evenly spaced")
    a.h_n = <float*>cnp.PyArray_DATA(h_n)
    a.c_n = NULL if c_n is None else <float*>cnp.PyArray_DATA(c_n)
    cdef size_t work_size = rnnx_qforward_work_size(cell, a.qtype, a.T, a.B, a.input_size, H, P)
    if work is None or work.dtype != np.uint8 or work.size < work_size + 64:
        work = np.empty(work_size + 64, np.uint8)
    a.work = <char*>cnp.PyArray_DATA(work) + (-<size_t>cnp.PyArray_DATA(work)) % 64
    cdef int status
    with nogil:
        status = rnnx_qforward(&BLAS, &a)
    _qcheck(status, "rnnx_qforward")


def qkernel_names():
    """The quantized kernel variants the core knows, best first (csrc/quant/qdispatch.c)."""
    names, i = [], 0
    while rnnx_qkernel_name(i) != NULL:
        names.append(rnnx_qkernel_name(i).decode())
        i += 1
    return tuple(names)


def qkernel_available(name):
    return bool(rnnx_qkernel_available(name.encode()))


def qset_kernel(name):
    """Run this kernel variant for int8/bfloat16 products ("auto": follow get_isa())."""
    if name != "auto" and name not in qkernel_names():
        raise ValueError(f"kernel must be 'auto' or one of {qkernel_names()}, got {name!r}")
    if rnnx_qset_kernel(name.encode()) != 0:
        raise ValueError(f"kernel {name!r} is not available on this CPU or in this build")


def qget_kernel(qtype):
    """The kernel variant that runs qtype ("int8" or "bfloat16") now."""
    return rnnx_qget_kernel(_qtype_code(qtype)).decode()


def qbf16_madd(float acc, uint16_t a, uint16_t b):
    """One product step of the bfloat16 chain as the generic kernel computes it (for tests)."""
    return rnnx_qbf16_madd(acc, a, b)

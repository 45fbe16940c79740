# Included by rnnx/_core.pyx: Argument checks: each array's type, dtype, shape and layout, checked before a
# pointer to its data goes to C; errors name the argument, what it must be and what it is.

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

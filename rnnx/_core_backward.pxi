# Included by rnnx/_core.pyx: backward: BPTT over a training forward's cache.

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

# Included by rnnx/_core.pyx: forward (a whole sequence, inference or training) and
# pack_weights.

cdef tuple _forward_args(rnnx_forward_args* a, object cell, object x, object h0, object c0,
                         object w_ih, object w_hh, object b_ih, object b_hh, object lengths,
                         bint reverse, object y, object h_n, object c_n, object path,
                         object w_hr, object w_hh_packed, object w_ih_t, object w_peep,
                         bint row_exact, int projection=0):
    """Check forward's arguments and fill *a (zeroed here) with them; returns the arrays
    its pointers point into (aligned copies among them: keep them alive over the call)
    and the width of the input, I."""
    cell, path = _int_arg(cell, "cell"), _int_arg(path, "path")
    cdef int G1 = rnnx_gate_count(cell)
    if G1 == 0:
        raise ValueError(f"unknown cell code {cell}")
    x = _aligned(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, I), got shape {x.shape}")
    dtype = x.dtype
    memset(a, 0, sizeof(a[0]))
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
    if projection not in (PROJECTION_AUTO, PROJECTION_HOISTED, PROJECTION_FUSED):
        raise ValueError(f"projection must be PROJECTION_AUTO, _HOISTED or _FUSED (0, 1, 2), "
                         f"got {projection}")
    a.projection = projection
    lengths = None if lengths is None else _aligned(lengths, "lengths")
    a.lengths = _lengths(lengths, T, B)
    a.y = _rows(y, "y", T, B, S, dtype, &a.ldy, True)
    a.h_n = _data(h_n, "h_n", (B, S), dtype, True)
    if _states(cell) == 2:   # h and c
        c0 = _aligned(c0, "c0")
        a.c0 = _data(c0, "c0", (B, H), dtype)
        a.c_n = _data(c_n, "c_n", (B, H), dtype, True)
    return (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, lengths), I


def forward(object cell, object x, object h0, object c0, object w_ih, object w_hh, object b_ih,
            object b_hh, object lengths, bint reverse, object y, object h_n, object c_n,
            bint train, object path=PATH_AUTO, object w_hr=None, object w_hh_packed=None,
            object w_ih_t=None, Workspace workspace=None, object w_peep=None,
            bint row_exact=False, int projection=0):
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
    bit for bit; False lets a large float32 projection go through BLAS.
    projection: where the input projection is computed (PROJECTION_AUTO: as
    projection_plan chooses; PROJECTION_HOISTED, PROJECTION_FUSED force one)."""
    cdef rnnx_forward_args a
    cdef int I
    keep, I = _forward_args(&a, cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, y, h_n,
                            c_n, path, w_hr, w_hh_packed, w_ih_t, w_peep, row_exact,
                            projection)
    dtype = keep[0].dtype
    cdef int T = a.T, B = a.B, H = a.H, P = a.proj
    cdef cnp.ndarray cache = None
    cdef cnp.ndarray work = None
    cdef size_t work_size = rnnx_forward_work_size_proj(a.cell, T, B, I, H, P, train)
    cdef size_t cache_size = rnnx_cache_size_proj(a.cell, T, B, H, P)
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

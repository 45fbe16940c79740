# Included by rnnx/_core.pyx before _core_stream.pxi: the one stream's C declarations
# (csrc/stream/stream.h) and the checks that turn Stream's arguments into its layer list
# (a float or quantized recurrent entry per sub-layer).

cdef extern from "stream/stream.h":
    enum:
        RNNX_STREAM_RECURRENT, RNNX_STREAM_DENSE, RNNX_STREAM_EMBEDDING, RNNX_ST_PER_SUBLAYER
        RNNX_STREAM_INT8, RNNX_STREAM_BFLOAT16, RNNX_SQ_PER_SUBLAYER
        RNNX_ACT_IDENTITY, RNNX_ACT_SIGMOID, RNNX_ACT_SOFTMAX, RNNX_ACT_TANH, RNNX_ACT_RELU
    ctypedef struct rnnx_stream_layer:
        int kind, cell, input_size, hidden_size, proj_size, num_layers, num_directions, activation
        const void** tensors
    ctypedef struct rnnx_stream_spec:
        int dtype, B, num_layers
        const rnnx_stream_layer* layers
        int bit_exact
    ctypedef struct rnnx_step_stream:
        rnnx_stream_spec spec
        int parity, in_width, out_width
        size_t state_elems
    int rnnx_step_stream_size(const rnnx_stream_spec* spec, size_t* nbytes) nogil
    int rnnx_step_stream_init(rnnx_step_stream* s, const rnnx_stream_spec* spec, void* mem,
                              size_t mem_bytes) nogil
    int rnnx_step_stream_reset(rnnx_step_stream* s) nogil
    void* rnnx_step_stream_state(const rnnx_step_stream* s) nogil
    int rnnx_step_stream_step(rnnx_step_stream* s, const rnnx_blas* blas, const void* x,
                              void* y) nogil
    size_t rnnx_step_stream_run_size(const rnnx_step_stream* s, int T) nogil
    int rnnx_step_stream_run(rnnx_step_stream* s, const rnnx_blas* blas, const void* x, int T,
                             void* y, void* work, size_t work_bytes) nogil

# Dense activations by rnnx.Dense's names (enum rnnx_activation_kind)
STREAM_ACTIVATIONS = {None: RNNX_ACT_IDENTITY, "sigmoid": RNNX_ACT_SIGMOID,
                      "softmax": RNNX_ACT_SOFTMAX, "tanh": RNNX_ACT_TANH, "relu": RNNX_ACT_RELU}


cdef object _stream_array(object w, str name, object dtype):
    """A C-contiguous copy of w in dtype (the stream keeps it: later changes to w do not
    reach the stream), after checking it is real floating."""
    w = np.asarray(w)
    if w.dtype.kind != "f":
        raise TypeError(f"{name} must be a real floating array, got dtype {w.dtype}")
    return np.array(w, dtype=dtype, order="C")


cdef tuple _entry_shapes(int cell, int G1, int k, list names, object w_ih, object w_hh,
                         object b_ih, object b_hh, object w_hr, object H, int B):
    """(H, P) of sub-layer k after checking the shapes of its matrices w_ih (G, I), w_hh
    (G, S), w_hr (P, H) or None and biases (G,) or None (names: theirs, in that order)."""
    cdef int P = _proj_size(cell, w_hr, names[4])
    if w_hh.ndim != 2 or w_hh.shape[1] < 1:
        raise ValueError(f"{names[1]} must be (G, H), got shape {w_hh.shape}")
    if H is None:
        H = w_hr.shape[1] if P else w_hh.shape[1]
    S = P if P else H                      # the state's width: W_hh's columns, y's width
    G = _gate_width(G1, H, 1, B)
    if w_hh.shape != (G, S):
        raise ValueError(f"{names[1]} must have shape {(G, S)}, got {w_hh.shape}")
    if P and w_hr.shape != (P, H):
        raise ValueError(f"{names[4]} must have shape {(P, H)}, got {w_hr.shape}")
    if (w_ih.ndim != 2 or w_ih.shape[0] != G or w_ih.shape[1] < 1
            or (k > 0 and w_ih.shape[1] != S)):
        want = f"({G}, {S})" if k > 0 else f"({G}, I) with I >= 1"
        raise ValueError(f"{names[0]} must have shape {want}, got {w_ih.shape}")
    for name, bias in zip(names[2:4], (b_ih, b_hh)):
        if bias is not None and bias.shape != (G,):
            raise ValueError(f"{name} must have shape {(G,)}, got {bias.shape}")
    return H, P


cdef tuple _entry(object entry, int k, tuple names, int least):
    """weights[k] as a tuple of len(names) (None for the optional ones it leaves out)."""
    if not isinstance(entry, (tuple, list)) or not least <= len(entry) <= len(names):
        raise ValueError(f"weights[{k}] must be a ({', '.join(names[:least])}) tuple (and "
                         f"{', '.join(names[least:])} where the layer has them), got "
                         f"{type(entry).__name__} of length "
                         f"{len(entry) if isinstance(entry, (tuple, list)) else '-'}")
    return tuple(entry) + (None,) * (len(names) - len(entry))


cdef tuple _recurrent_entry(int cell, int G1, int k, object entry, object H, int B, object dtype):
    """Layer k's (w_ih, w_hh, b_ih, b_hh, w_peep, w_hr), checked and copied, and its
    (H, P): the weights of one sub-layer of a recurrent stack."""
    entry = _entry(entry, k, ("w_ih", "w_hh", "b_ih", "b_hh", "w_peep", "w_hr"), 4)
    names = [f"weights[{k}].{n}" for n in ("w_ih", "w_hh", "b_ih", "b_hh", "w_peep", "w_hr")]
    arrays = [None if w is None and n.endswith(("b_ih", "b_hh", "w_peep", "w_hr"))
              else _stream_array(w, n, dtype) for n, w in zip(names, entry)]
    w_ih, w_hh, b_ih, b_hh, w_peep, w_hr = arrays
    H, P = _entry_shapes(cell, G1, k, names[:4] + names[5:], w_ih, w_hh, b_ih, b_hh, w_hr, H, B)
    if w_peep is not None and not _takes(cell, RNNX_OPTION_PEEPHOLE):
        raise ValueError(f"{names[4]} (peepholes) is for an LSTM only, got cell code {cell}")
    if w_peep is not None and w_peep.shape != (3 * H,):
        raise ValueError(f"{names[4]} must have shape {(3 * H,)}, got {w_peep.shape}")
    return (w_ih, w_hh, b_ih, b_hh, w_hr, w_peep), H, P   # the order of enum rnnx_stream_tensor


# the tensors of a quantized sub-layer, in the order of enum rnnx_stream_qtensor
_QNAMES = ("w_ih", "s_ih", "w_hh", "s_hh", "b_ih", "b_hh", "w_hr", "s_hr")


cdef tuple _qrecurrent_entry(int cell, int G1, int k, object entry, object H, int B, int int8):
    """Layer k's int8 (int8 weights with float32 row scales s_*) or bfloat16 (uint16 bits,
    scales None) tensors, in the order of _QNAMES, checked and copied, and its (H, P)."""
    entry = _entry(entry, k, _QNAMES, 6)
    names = [f"weights[{k}].{n}" for n in _QNAMES]
    wtype = np.dtype(np.int8 if int8 else np.uint16)
    arrays = []
    for name, w in zip(names, entry):
        if w is None:
            if name.endswith(("w_ih", "w_hh")) or (int8 and name.endswith(("s_ih", "s_hh"))):
                raise ValueError(f"{name} is required, got None")
            arrays.append(None)
        elif name.endswith(("w_ih", "w_hh", "w_hr")):
            if not isinstance(w, np.ndarray) or w.dtype != wtype:
                raise TypeError(f"{name} must be an ndarray of {wtype.name} (rnnx.quantize's "
                                f"tensor), got {getattr(w, 'dtype', type(w).__name__)}")
            arrays.append(np.array(w, order="C"))
        elif not int8 and name.split(".")[1].startswith("s_"):
            raise ValueError(f"{name} must be None for bfloat16 weights (no scales), got "
                             f"{type(w).__name__}")
        else:
            arrays.append(_stream_array(w, name, np.float32))
    w_ih, s_ih, w_hh, s_hh, b_ih, b_hh, w_hr, s_hr = arrays
    H, P = _entry_shapes(cell, G1, k, names[0:1] + names[2:3] + names[4:7], w_ih, w_hh, b_ih,
                         b_hh, w_hr, H, B)
    if int8:
        for name, scale, rows in ((names[1], s_ih, w_ih.shape[0]), (names[3], s_hh, w_hh.shape[0]),
                                  (names[7], s_hr, P)):
            if rows and (scale is None or scale.shape != (rows,)):
                raise ValueError(f"{name} must have shape {(rows,)}, got "
                                 f"{None if scale is None else scale.shape}")
        if not P and s_hr is not None:
            raise ValueError(f"{names[7]} must be None without w_hr, got shape {s_hr.shape}")
    return tuple(arrays), H, P

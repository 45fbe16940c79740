# Included by rnnx/_core.pyx: The core's cell table seen from Python: states, options, parameter shapes, gate
# counts, the activations (for tests) and the training cache's size.

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

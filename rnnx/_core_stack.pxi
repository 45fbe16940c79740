# Included by rnnx/_core.pyx: forward_stack, the inference forward of a stack of
# one-direction layers as a wavefront (csrc/driver/wavefront.c).

cdef extern from "rnnx.h":
    int rnnx_forward_stack(const rnnx_blas* blas, int L, const rnnx_forward_args* layers) nogil


_STACK_KEYS = ("cell", "x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "y", "h_n", "c_n")
_STACK_OPTIONS = {"path": PATH_AUTO, "w_hr": None, "w_peep": None}


def forward_stack(list layers, bint row_exact=False):
    """Run a stack of one-direction layers over a whole sequence, for inference.

    layers: one dict per layer, with forward's arguments of that name (cell, x, h0, c0,
    w_ih, w_hh, b_ih, b_hh, y, h_n, c_n; optionally path, w_hr, w_peep); layer l + 1's x
    must be layer l's y, a C-contiguous (T, B, S) array.  No lengths, no reverse, no
    training.  Every layer's y, h_n and c_n are written, each layer in chunks of steps
    fixed by the layers' shapes, with the same numbers whatever the thread count;
    the layers run as a wavefront (layer l + 1 a chunk of steps behind layer l, beside it)
    where that keeps the threads busier than splitting each step (csrc/rnnx.h,
    rnnx_forward_stack).  In float64, or with row_exact, the numbers are those of forward
    called layer after layer (with the same row_exact)."""
    cdef int L = len(layers)
    if L < 1:
        raise ValueError("layers must hold at least one layer's arguments, got none")
    cdef rnnx_forward_args* args = <rnnx_forward_args*>calloc(L, sizeof(rnnx_forward_args))
    if args == NULL:
        raise MemoryError()
    cdef int l, I, status
    keep = []
    try:
        for l in range(L):
            given = layers[l]
            missing = [key for key in _STACK_KEYS if key not in given]
            unknown = sorted(set(given) - set(_STACK_KEYS) - set(_STACK_OPTIONS))
            if missing or unknown:
                raise ValueError(f"layers[{l}] must have the keys {_STACK_KEYS} (and optionally "
                                 f"{tuple(_STACK_OPTIONS)}), missing {missing}, unknown {unknown}")
            options = {**_STACK_OPTIONS, **given}
            try:
                arrays, I = _forward_args(
                    &args[l], options["cell"], options["x"], options["h0"], options["c0"],
                    options["w_ih"], options["w_hh"], options["b_ih"], options["b_hh"], None,
                    False, options["y"], options["h_n"], options["c_n"], options["path"],
                    options["w_hr"], None, None, options["w_peep"], row_exact)
            except (TypeError, ValueError) as error:  # the same kind, naming the layer
                raise type(error)(f"layers[{l}]: {error}") from None
            # W_hh packed and W_ih^T once, not per chunk (they change no number)
            w_ih, w_hh, w_hr = arrays[3], arrays[4], arrays[7]
            packed = pack_weights(args[l].cell, w_hh, w_hr if args[l].proj else None)
            w_ih_t = np.ascontiguousarray(w_ih.T)
            args[l].w_hh_packed = cnp.PyArray_DATA(packed)
            args[l].w_ih_t = cnp.PyArray_DATA(w_ih_t)
            if l > 0:
                previous = layers[l - 1]["y"]
                x = arrays[0]
                if x is not previous or not previous.flags.c_contiguous:
                    raise ValueError(f"layers[{l}]['x'] must be layers[{l - 1}]['y'] itself, a "
                                     f"C-contiguous (T, B, S) array")
            work = np.empty(max(<size_t>1, rnnx_forward_work_size_proj(
                args[l].cell, args[l].T, args[l].B, I, args[l].H, args[l].proj, 0)), dtype=arrays[0].dtype)
            args[l].work = cnp.PyArray_DATA(work)
            keep.append((arrays, work, packed, w_ih_t))
        with nogil:
            status = rnnx_forward_stack(&BLAS, L, args)
        if status:
            raise ValueError(f"rnnx_forward_stack: {strerror(status)}")
    finally:
        free(args)

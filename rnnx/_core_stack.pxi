# Included by rnnx/_core.pyx: forward_stack, the inference forward of a stack of
# one-direction layers as a wavefront, and forward_side_by_side, independent passes (a
# bidirectional layer's directions) side by side (csrc/driver/wavefront.c).

cdef extern from "rnnx.h":
    int rnnx_forward_stack(const rnnx_blas* blas, int L, const rnnx_forward_args* layers) nogil
    int rnnx_forward_side_by_side(const rnnx_blas* blas, int n,
                                  const rnnx_forward_args* passes) nogil


_PASS_KEYS = ("cell", "x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "y", "h_n", "c_n")
_PASS_OPTIONS = {"path": PATH_AUTO, "w_hr": None, "w_peep": None}
_SIDE_OPTIONS = {**_PASS_OPTIONS, "lengths": None, "reverse": False}


cdef list _passes_args(str name, list passes, dict optional, bint row_exact,
                       rnnx_forward_args* args):
    """Fill args[i] from passes[i], a dict of forward's arguments of those names (_PASS_KEYS,
    and optionally those of `optional`), for inference, with its work, W_hh packed and
    W_ih^T (made once: they change no number); returns what the pointers point into."""
    cdef int i, I
    keep = []
    for i in range(len(passes)):
        given = passes[i]
        missing = [key for key in _PASS_KEYS if key not in given]
        unknown = sorted(set(given) - set(_PASS_KEYS) - set(optional))
        if missing or unknown:
            raise ValueError(f"{name}[{i}] must have the keys {_PASS_KEYS} (and optionally "
                             f"{tuple(optional)}), missing {missing}, unknown {unknown}")
        options = {**optional, **given}
        try:
            arrays, I = _forward_args(
                &args[i], options["cell"], options["x"], options["h0"], options["c0"],
                options["w_ih"], options["w_hh"], options["b_ih"], options["b_hh"],
                options.get("lengths"), options.get("reverse", False), options["y"],
                options["h_n"], options["c_n"], options["path"], options["w_hr"], None, None,
                options["w_peep"], row_exact)
        except (TypeError, ValueError) as error:  # the same kind, naming the pass
            raise type(error)(f"{name}[{i}]: {error}") from None
        w_ih, w_hh, w_hr = arrays[3], arrays[4], arrays[7]
        packed = pack_weights(args[i].cell, w_hh, w_hr if args[i].proj else None)
        w_ih_t = np.ascontiguousarray(w_ih.T)
        args[i].w_hh_packed = cnp.PyArray_DATA(packed)
        args[i].w_ih_t = cnp.PyArray_DATA(w_ih_t)
        work = np.empty(max(<size_t>1, rnnx_forward_work_size_proj(
            args[i].cell, args[i].T, args[i].B, I, args[i].H, args[i].proj, 0)), dtype=arrays[0].dtype)
        args[i].work = cnp.PyArray_DATA(work)
        keep.append((arrays, work, packed, w_ih_t))
    return keep


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
    cdef int L = len(layers), l, status
    if L < 1:
        raise ValueError("layers must hold at least one layer's arguments, got none")
    cdef rnnx_forward_args* args = <rnnx_forward_args*>calloc(L, sizeof(rnnx_forward_args))
    if args == NULL:
        raise MemoryError()
    try:
        keep = _passes_args("layers", layers, _PASS_OPTIONS, row_exact, args)
        for l in range(1, L):
            previous = layers[l - 1]["y"]
            if keep[l][0][0] is not previous or not previous.flags.c_contiguous:
                raise ValueError(f"layers[{l}]['x'] must be layers[{l - 1}]['y'] itself, a "
                                 f"C-contiguous (T, B, S) array")
        with nogil:
            status = rnnx_forward_stack(&BLAS, L, args)
        if status:
            raise ValueError(f"rnnx_forward_stack: {strerror(status)}")
    finally:
        free(args)


def forward_side_by_side(list passes, bint row_exact=False):
    """Run independent passes (a bidirectional layer's two directions) for inference.

    passes: one dict per pass, as forward_stack's layers plus optionally lengths and
    reverse; no pass may write what another reads.  Where the threads are no more than
    the passes, or the steps too small to split, the passes run at the same time, each on
    one thread; else in turn, each step split (csrc/rnnx.h, rnnx_forward_side_by_side).
    The numbers are those of forward called pass after pass, whatever the thread count."""
    cdef int n = len(passes), status
    if n < 1:
        raise ValueError("passes must hold at least one pass's arguments, got none")
    cdef rnnx_forward_args* args = <rnnx_forward_args*>calloc(n, sizeof(rnnx_forward_args))
    if args == NULL:
        raise MemoryError()
    try:
        keep = _passes_args("passes", passes, _SIDE_OPTIONS, row_exact, args)
        with nogil:
            status = rnnx_forward_side_by_side(&BLAS, n, args)
        if status:
            raise ValueError(f"rnnx_forward_side_by_side: {strerror(status)}")
    finally:
        free(args)

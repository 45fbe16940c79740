"""Batch scoring on Dask: rnnx.dask.predict(model, x) runs a model over a dask array of
sequences chunked along the batch axis, one task per chunk (map_blocks).

    import dask.array as da, rnnx.dask
    x = da.from_npy_stack("sequences/")               # (N, T, I) on disk, chunked along N
    y = rnnx.dask.predict(model, x, batch_first=True)  # lazy (N, T, out); y.compute() / y.to_zarr()

The model travels once to each worker, not once per task: with a dask.distributed Client it
is scattered to every worker (client.scatter(..., broadcast=True)) and the tasks refer to
that one copy; without one (threads, or the synchronous scheduler) it is one node of the
graph that every task depends on.  Sequences are scored independently of each other, so the
result equals model.predict on the whole array (to the rounding of the BLAS calls, which may
group rows differently for a chunk than for the whole batch).

Needs the optional extra: pip install "rnnx[dask]" (dask[distributed]).
"""
import numpy as np

__all__ = ["predict", "shipped_model_loads"]

_loads = 0  # models this process has unpickled from a _Shipped: see shipped_model_loads


def shipped_model_loads():
    """How many times this process has received (unpickled) a model shipped by predict.

    Run on the workers (client.run(rnnx.dask.shipped_model_loads)) it shows that the model
    travelled once to each worker, however many chunks they scored."""
    return _loads


class _Shipped:
    """The model as it travels to the workers: pickled with it, counted where it lands."""

    def __init__(self, model):
        self.model = model

    def __getstate__(self):
        return {"model": self.model}

    def __setstate__(self, state):
        global _loads
        _loads += 1
        self.model = state["model"]


def _score_block(x, lengths, shipped, model_batch_first, batch_first):
    """One chunk: x (T, b, I) or (b, T, I) as the data is laid out ((T, b) or (b, T) ids);
    lengths (b,) or None."""
    model = shipped.model
    swap = batch_first != model_batch_first
    if swap:
        x = np.swapaxes(x, 0, 1)
    if lengths is not None:
        lengths = np.asarray(lengths).reshape(-1)
    if hasattr(model, "predict"):
        y = model.predict(x, lengths=lengths)
        many_to_one = model.many_to_one
    else:
        y = model(x, lengths=lengths)[0]
        many_to_one = False
    return np.swapaxes(y, 0, 1) if swap and not many_to_one else y


def _current_client():
    try:
        from distributed import get_client
        return get_client()
    except (ImportError, ValueError):
        return None


def predict(model, x, lengths=None, batch_first=None):
    """Score a dask array of sequences chunk by chunk along its batch axis.

    Parameters
    ----------
    model : rnnx.Sequential or an rnnx recurrent layer (RNN, LSTM, GRU).
    x : dask.array.Array, (T, N, I) time-major or (N, T, I) batch-first; integer ids (T, N)
        or (N, T) for a model that begins with an rnnx.Embedding. Chunked along N; chunks
        along T or I are merged (a sequence must be scored in one piece).
    lengths : None, or integers (N,) as a NumPy or dask array: the valid steps of each
        sequence. Rechunked to x's chunks along N.
    batch_first : bool or None. The layout of x; None takes the model's batch_first.

    Returns
    -------
    dask.array.Array
        What model.predict(x, lengths=lengths) gives for the whole array: (T, N, out) or
        (N, T, out) as x is laid out, or (N, out) for a many-to-one model. Lazy: call
        .compute(), or store it chunk by chunk (to_zarr, store, to_npy_stack).
    """
    import dask
    import dask.array as da

    from .model import Sequential

    if not getattr(model, "is_recurrent", False) or not (
            isinstance(model, Sequential) or hasattr(model, "state_names")):
        raise TypeError(f"model must be an rnnx.Sequential with a recurrent layer or an rnnx "
                        f"recurrent layer, got {type(model).__name__}")
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a dask.array.Array, got {type(x).__name__} (wrap a NumPy "
                        "array with dask.array.from_array(x, chunks=...))")
    model_batch_first = bool(model.batch_first)
    batch_first = model_batch_first if batch_first is None else batch_first
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"batch_first must be None or a bool, got {type(batch_first).__name__}")
    batch_first = bool(batch_first)
    ids = getattr(model, "takes_ids", False)        # an Embedding first: x is (T, N) ids
    if ids:
        if x.ndim != 2:
            raise ValueError(f"x must be {'(N, T)' if batch_first else '(T, N)'} integer ids for "
                             f"a model that begins with an Embedding, got shape {x.shape}")
        if x.dtype.kind not in "iu":
            raise TypeError(f"x must be an integer array of ids, got dtype {x.dtype}")
    else:
        if x.ndim != 3 or x.shape[2] != model.input_size:
            layout = "(N, T, {0})" if batch_first else "(T, N, {0})"
            raise ValueError(f"x must be {layout.format(model.input_size)} for input_size="
                             f"{model.input_size}, got shape {x.shape}")
        if x.dtype.kind != "f":
            raise TypeError(f"x must be a floating array, got dtype {x.dtype}")
    batch_axis, time_axis = (0, 1) if batch_first else (1, 0)
    x = x.rechunk({time_axis: -1} if ids else {time_axis: -1, 2: -1})
    N, T = x.shape[batch_axis], x.shape[time_axis]
    batch_chunks = x.chunks[batch_axis]
    if lengths is not None:
        if not isinstance(lengths, da.Array):
            lengths = np.asarray(lengths)
        if lengths.shape != (N,) or lengths.dtype.kind not in "iu":
            raise ValueError(f"lengths must be integers of shape ({N},), got {lengths.dtype} "
                             f"{lengths.shape}")
        if not isinstance(lengths, da.Array):
            if N and (lengths.min() < 0 or lengths.max() > T):
                raise ValueError(f"lengths must lie in [0, T={T}], got min {lengths.min()}, "
                                 f"max {lengths.max()}")
            lengths = da.from_array(lengths, chunks=(batch_chunks,))
        else:
            lengths = lengths.rechunk((batch_chunks,))
        # (1, N, 1) or (N, 1, 1): map_blocks pairs its chunks with x's along the batch axis
        lengths = lengths[None, :, None] if batch_axis == 1 else lengths[:, None, None]
        if ids:                                      # (1, N) or (N, 1), like x's 2 axes
            lengths = lengths[..., 0]

    client = _current_client()
    if client is not None:
        shipped = client.scatter(_Shipped(model), broadcast=True, hash=False)
    else:
        shipped = dask.delayed(_Shipped(model), pure=True)

    out = getattr(model, "output_size", None) or model.num_directions * model.hidden_size
    many_to_one = getattr(model, "many_to_one", False)
    new = []                                         # ids: the output's feature axis is new
    if many_to_one:
        chunks, drop = (batch_chunks, (out,)), time_axis
        new = [1] if ids else []
    else:
        chunks = list(x.chunks)[:2] + [(out,)]
        chunks, drop = tuple(chunks), []
        new = [2] if ids else []
    args = [x, lengths] if lengths is not None else [x, None]
    return da.map_blocks(_score_block, *args, shipped, model_batch_first, batch_first,
                         chunks=chunks, drop_axis=drop, new_axis=new or None, dtype=model.dtype,
                         meta=np.empty((0,) * (2 if many_to_one else 3), model.dtype))

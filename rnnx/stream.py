"""Stream: step-by-step inference through a unidirectional recurrent layer, keeping the
state, made by ``layer.stream(batch_size=1, state=None)``."""
import threading

import numpy as np

from . import _core
from .module import as_layer_dtype, positive_int


def stream_weights(layer):
    """A unidirectional recurrent layer's weights as _core.Stream takes them: per sub-layer
    (w_ih, w_hh, b_ih, b_hh, w_peep, w_hr), None where it has none; a quantized layer's
    (rnnx.quantize) its int8/bfloat16 tensors, for _core.Stream's qtype=stream_qtype(layer)."""
    if stream_qtype(layer):
        return layer.stream_tensors()
    weights = []
    for k in range(layer.num_layers):
        options = layer._cell_options(k, 0)
        weights.append(layer._weights(k, 0) + (options.get("w_peep"), options.get("w_hr")))
    return weights


def stream_qtype(layer):
    """None for a float layer, "int8" or "bfloat16" for one made by rnnx.quantize."""
    return getattr(layer, "qtype", None)


class Stream:
    """Step-by-step inference through a unidirectional recurrent layer, keeping the state.

    Made by ``layer.stream(batch_size=1, state=None)``. It holds a copy of the layer's
    weights as they were when it was made, its state, and every buffer a step needs,
    so a step allocates only its result.

    Attributes
    ----------
    batch_size : int
        B.
    state : h, or (h, c) for an LSTM, each (L, B, H): a copy of the current state.

    Examples
    --------
    >>> import numpy as np, rnnx
    >>> stream = rnnx.LSTM(8, 32, num_layers=2).stream(batch_size=1)
    >>> y_t = stream.step(np.zeros((1, 8), np.float32))          # (1, 32)
    >>> y = stream.run(np.zeros((20, 1, 8), np.float32))         # (20, 1, 32), continues
    >>> stream.reset()                                            # back to zeros
    """

    def __init__(self, layer, batch_size=1, state=None):
        """Made by layer.stream(batch_size, state); see help(rnnx.Stream)."""
        B = positive_int(batch_size, "batch_size")
        self._layer = layer
        # the core's Stream copies the weights, packs them once and runs every step as one
        # call into C
        self._core = _core.Stream(layer._cell, stream_weights(layer), B, layer.dtype,
                                  qtype=stream_qtype(layer))
        self._workspace = _core.Workspace()     # run()'s scratch, reused chunk after chunk
        self._core_step = self._core.step
        # One step at a time: a step writes the shared state and buffers with the GIL
        # released, so threads sharing a stream take turns (each step then follows the
        # previous one, as if called serially).  Threads with streams of their own run
        # in parallel.
        self._lock = threading.Lock()
        self._dtype = layer.dtype
        self._quantized = stream_qtype(layer) is not None
        self.batch_size = B
        self.reset(state)

    def __repr__(self):
        layer = self._layer
        return (f"<rnnx.Stream of {type(layer).__name__}(input_size={layer.input_size}, "
                f"hidden_size={layer.hidden_size}, num_layers={layer.num_layers}, "
                f"dtype={layer.dtype.name}), batch_size={self.batch_size}>")

    def step(self, x_t):
        """One time step: ``y_t = stream.step(x_t)``, updating the state.

        Parameters
        ----------
        x_t : ndarray (B, I), or (I,) when batch_size is 1
            Of the layer's dtype (a lower precision is converted; see the dtype policy).

        Returns
        -------
        y_t : ndarray (B, H), or (H,) for an unbatched x_t: the last layer's output.

        A whole chunk (T, B, I) goes to ``stream.run`` (one call into C for all its steps,
        each layer's input projection hoisted over them).
        """
        if getattr(x_t, "dtype", None) is not self._dtype:
            x_t = self._coerce(x_t)
        try:
            with self._lock:
                return self._core_step(x_t)
        except ValueError:
            if np.ndim(x_t) == 3:
                raise ValueError(f"step takes one time step x_t (B, I), got a chunk of shape "
                                 f"{np.shape(x_t)}: use stream.run(x) for (T, B, I)") from None
            raise

    def _narrowed(self, x):
        """x, float64 read as float32 by a quantized layer's stream (as the layer reads it)."""
        if self._quantized and getattr(x, "dtype", None) == np.float64:
            return np.asarray(x, np.float32)
        return x

    def _coerce(self, x_t):
        # native byte order too: the core's fast path reads the bytes as they are
        x_t = as_layer_dtype(self._narrowed(x_t), self._dtype, "x_t", "this stream")
        return np.ascontiguousarray(x_t, dtype=self._dtype) if np.ndim(x_t) < 3 else x_t

    def run(self, x):
        """Run a chunk, carrying the state: ``y = stream.run(x)``.

        Parameters
        ----------
        x : ndarray (T, B, I), or (T, I) when batch_size is 1

        Returns
        -------
        y : ndarray (T, B, H), or (T, H): the last layer's output at every step.

        Equals calling step on each x[t] bit for bit (the core's stream, row_exact), in one
        call into C instead of one per step.
        """
        layer = self._layer
        B, I, H = self.batch_size, layer.input_size, self._core.output_size
        x = as_layer_dtype(self._narrowed(x), self._dtype, "x", "this stream")
        unbatched = x.ndim == 2 and B == 1
        if unbatched:
            x = x[:, None, :]
        if x.ndim != 3 or x.shape[1:] != (B, I):
            want = f"(T, {B}, {I})" + (f" or (T, {I})" if B == 1 else "")
            raise ValueError(f"x must be {want} for batch_size={B}, input_size={I}, got {x.shape}")
        T = x.shape[0]
        if T == 0:
            return np.zeros((0, H) if unbatched else (0, B, H), self._dtype)
        # native byte order too: the core reads the bytes as they are
        x = np.require(x, dtype=self._dtype.newbyteorder("="), requirements=("C", "A"))
        with self._lock:
            y = self._core.run(x, self._workspace)
        return y[:, 0, :] if unbatched else y

    def reset(self, state=None):
        """Set the state: None for zeros, or h / (h, c), each (L, B, H) (copied)."""
        parts = self._layer._check_states(state, self.batch_size, True, "state")
        with self._lock:
            self._core.set_state(*parts)

    @property
    def state(self):
        with self._lock:
            h, c = self._core.get_state()
        return self._layer._pack_state([h, c][:len(self._layer.state_names)], True)

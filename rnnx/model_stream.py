"""SequentialStream: step-by-step inference through a whole Sequential.

    stream = model.stream(batch_size=1, state=None)
    y_t = stream.step(x_t)      # (B, I) -> (B, out): one step through every layer
    y = stream.run(x)           # (T, B, I) -> (T, B, out), the state carried on
    stream.reset(state=None)    # back to zeros, or to a model state
    stream.state                # the model state, one entry per recurrent layer

Each recurrent layer runs through its own rnnx.Stream (the C core's streaming step, W_hh
packed once); the layers without a state (Dense heads, an Embedding first) are applied to
each step's rows as the model applies them to all steps at once. A step therefore gives the
bits of stepping the layers' streams and applying the Dense heads by hand; in float64 these
are also the bits of ``model(x)`` (tested), as for the layers' own streams.
"""
import threading

import numpy as np

from .dense import Dense, _apply, _matmul
from .module import positive_int

__all__ = ["SequentialStream"]


def _frozen_copy(layer):
    """A layer of the same architecture holding a copy of layer's weights as they are now, so
    that training the model afterwards does not change the stream (as a layer's Stream)."""
    twin = type(layer)(**layer.config())
    twin.load_state_dict(layer.state_dict())
    return twin


class _DenseHead:
    """A Dense layer after a recurrent one, applied to a step's rows: the product, bias and
    activation of Dense's own forward (the same functions, so the same bits), without the
    input checks, which its input (the previous layer's output, of the model's dtype and
    width) does not need; 2 to 3 us per step instead of 6 at B=1."""

    def __init__(self, dense):
        params = dense.parameters()
        self._weight_t = params["weight"].copy().T           # (in, out)
        self._bias = params["bias"].copy() if dense.bias else None
        self._activation = dense.activation
        self._out = dense.out_features

    def __call__(self, h):
        z = _matmul(h.reshape(-1, h.shape[-1]), self._weight_t).reshape(h.shape[:-1] +
                                                                        (self._out,))
        if self._bias is not None:
            z += self._bias
        return _apply(self._activation, z)


class SequentialStream:
    """Step-by-step inference through a Sequential, keeping every recurrent layer's state.

    Made by ``model.stream(batch_size=1, state=None)``: see help(rnnx.Sequential.stream).

    Attributes
    ----------
    batch_size : int
        B, the rows stepped together.
    state : tuple
        A copy of the current state, one entry per recurrent layer in that layer's form
        (h, or (h, c) for an LSTM, each (L, B, H)): the model's state, as ``model(x)``
        returns it.
    """

    def __init__(self, model, batch_size=1, state=None):
        B = positive_int(batch_size, "batch_size")
        if model.many_to_one:
            raise ValueError("a many_to_one model cannot stream: its output is read at each "
                             "sequence's last step, which a stream does not know; stream a "
                             "Sequential with many_to_one=False over the same layers")
        for index, layer in enumerate(model.layers):
            if layer.is_recurrent and (layer.bidirectional or layer.go_backwards):
                kind = "bidirectional" if layer.bidirectional else "go_backwards"
                raise ValueError(f"layers[{index}] is {kind}: a model cannot stream when its "
                                 f"reverse direction needs the whole sequence")
        self._model = model
        self._dtype = model.dtype
        self.batch_size = B
        # per layer: ("stream", rnnx.Stream) for a recurrent layer, ("apply", frozen copy)
        self._steps = [("stream", layer.stream(B)) if layer.is_recurrent else
                       ("apply", _DenseHead(layer) if index and isinstance(layer, Dense)
                        else _frozen_copy(layer)) for index, layer in enumerate(model.layers)]
        self._streams = [part for kind, part in self._steps if kind == "stream"]
        self._lock = threading.Lock()    # one step at a time through all the layers
        self.reset(state)

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self._model.layers)
        return f"<rnnx.SequentialStream of Sequential({inner}), batch_size={self.batch_size}>"

    def _through(self, x, method):
        """x through every layer: recurrent layers by their stream's method ("step" or
        "run"), the others applied to the rows as they are."""
        if self._model.takes_ids:
            self._check_ids(x, method)
        with self._lock:
            for kind, part in self._steps:
                x = getattr(part, method)(x) if kind == "stream" else part(x)
        return x

    def _check_ids(self, x, method):
        """Token ids shaped as a step (B,) or a chunk (T, B) takes, or a ValueError naming
        the shape expected (checked before the lookup, whose rows would hide the mistake)."""
        B, shape = self.batch_size, np.shape(x)
        if method == "step":
            name, fits, want = "x_t", shape == (B,) or (B == 1 and shape == ()), f"({B},)"
        else:
            name, want = "x", f"(T, {B})" + (" or (T,)" if B == 1 else "")
            fits = (len(shape) == 2 and shape[1] == B) or (B == 1 and len(shape) == 1)
        if not fits:
            raise ValueError(f"{name} must be {want} token ids for batch_size={B}, got shape "
                             f"{shape}")

    def step(self, x_t):
        """One time step through every layer: ``y_t = stream.step(x_t)``.

        Parameters
        ----------
        x_t : ndarray (B, I), or (I,) when batch_size is 1; integer token ids (B,) (or a
            scalar) when the model starts with an Embedding.

        Returns
        -------
        y_t : ndarray (B, out), or (out,) for an unbatched x_t: the model's output at this
            step (the last layer's activation applied).
        """
        return self._through(x_t, "step")

    def run(self, x):
        """Run a chunk, carrying the state: ``y = stream.run(x)``.

        Parameters
        ----------
        x : ndarray (T, B, I), or (T, I) when batch_size is 1 (time-major, as the layers'
            streams, whatever the model's batch_first); (T, B) token ids with an Embedding.

        Returns
        -------
        y : ndarray (T, B, out), or (T, out): equals calling step on each x[t], with one
            call into C per recurrent layer instead of one per step.
        """
        return self._through(x, "run")

    def reset(self, state=None):
        """Set the state: None for zeros, or a model state (a tuple with one entry per
        recurrent layer, None entries meaning zeros), each part (L, B, H); copied. Checked
        entirely before any layer's state changes."""
        count = len(self._streams)
        if state is None:
            state = (None,) * count
        if not isinstance(state, (tuple, list)) or len(state) != count:
            raise ValueError(f"state must be None or a tuple with one entry per recurrent layer "
                             f"({count}), got {type(state).__name__}"
                             + (f" of length {len(state)}" if isinstance(state, (tuple, list))
                                else ""))
        parts = [stream._layer._check_states(s, self.batch_size, True, f"state[{k}]")
                 for k, (stream, s) in enumerate(zip(self._streams, state))]
        with self._lock:
            for stream, layer_parts in zip(self._streams, parts):
                stream.reset(stream._layer._pack_state(layer_parts, True))

    @property
    def state(self):
        with self._lock:
            return tuple(stream.state for stream in self._streams)

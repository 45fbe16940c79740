"""SequentialStream: step-by-step inference through a whole Sequential.

    stream = model.stream(batch_size=1, state=None)
    y_t = stream.step(x_t)      # (B, I) -> (B, out): one step through every layer
    y = stream.run(x)           # (T, B, I) -> (T, B, out), the state carried on
    stream.reset(state=None)    # back to zeros, or to a model state
    stream.state                # the model state, one entry per recurrent layer

Each run of consecutive recurrent layers (with an Embedding first, when the model starts
with one) is ONE stream of the C core (csrc/stream/: every step one call into C through all
of them, the weights packed once). Dense layers stay in NumPy, applied to each step's rows
as the model applies them to all steps at once: the model's Dense is NumPy's matmul (BLAS),
whose rounding the core's Dense (products added in order, csrc/stream/heads.c) does not
reproduce, and a stream gives the bits of ``model(x)``. A step therefore gives the bits of
stepping the layers' streams and applying the Dense heads by hand; in float64 these are also
the bits of ``model(x)`` (tested), as for the layers' own streams.
"""
import threading

import numpy as np

from . import _core
from .dense import Dense, _apply, _matmul
from .embedding import Embedding, check_ids
from .module import positive_int
from .stream import Stream, stream_qtype, stream_weights

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


class _Stack(Stream):
    """Consecutive recurrent layers of a Sequential, and the Embedding before them when the
    model starts with one, as one stream of the core: step and run as rnnx.Stream's (the
    first layer's input checks), the state per layer (get_states/set_states)."""

    def __init__(self, layers, batch_size, embedding=None):
        first = layers[0]
        self._layer, self._layers, self._dtype = first, layers, first.dtype
        self._quantized = stream_qtype(first) is not None
        self.batch_size = batch_size
        table = None if embedding is None else embedding.parameters()["weight"]
        self._num_ids = None if embedding is None else embedding.num_embeddings
        self._core = _core.Stream(first._cell, stream_weights(first), batch_size, first.dtype,
                                  embedding=table,
                                  stacks=[(layer._cell, stream_weights(layer))
                                          for layer in layers[1:]],
                                  qtype=stream_qtype(first))
        self._core_step = self._core.step
        self._workspace = _core.Workspace()
        self._lock = threading.Lock()

    def step(self, x_t):
        if self._num_ids is None:
            return super().step(x_t)
        try:       # the core checks the ids (before anything changes), fast
            return self._core_step(x_t)
        except (TypeError, ValueError):
            check_ids(x_t, self._num_ids, "x_t")    # the model's own message, if it has one
            raise

    def run(self, x):
        if self._num_ids is None:
            return super().run(x)
        ids = check_ids(x, self._num_ids, "x")
        unbatched = ids.ndim == 1 and self.batch_size == 1
        ids = np.ascontiguousarray(ids[:, None] if unbatched else ids, dtype=np.int32)
        if ids.shape[0] == 0:
            y = np.zeros((0, self.batch_size, self._core.output_size), self._dtype)
        else:
            y = self._core.run(ids, self._workspace)
        return y[:, 0, :] if unbatched else y

    def states(self):
        """Per layer, its state as the layer returns it (copies)."""
        return tuple(layer._pack_state([h, c][:len(layer.state_names)], True)
                     for layer, (h, c) in zip(self._layers, self._core.get_states()))

    def set_states(self, parts):
        """parts: per layer, its _check_states list ([h] or [h, c])."""
        self._core.set_states([(p[0], p[1] if len(p) > 1 else None) for p in parts])


def _parts_of(layers, B):
    """model's layers as the stream's parts: ("stack", _Stack) for each run of consecutive
    recurrent layers (with an Embedding first before one), ("apply", a frozen layer) else."""
    parts, i = [], 0
    while i < len(layers):
        leads = i == 0 and isinstance(layers[0], Embedding) and len(layers) > 1 and \
            layers[1].is_recurrent
        if layers[i].is_recurrent or leads:
            j = i + 1 if leads else i
            group = []
            while j < len(layers) and layers[j].is_recurrent:
                group.append(layers[j])
                j += 1
            parts.append(("stack", _Stack(group, B, layers[0] if leads else None)))
            i = j
        else:
            parts.append(("apply", _DenseHead(layers[i]) if i and isinstance(layers[i], Dense)
                          else _frozen_copy(layers[i])))
            i += 1
    return parts


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
        self._steps = _parts_of(model.layers, B)
        self._stacks = [part for kind, part in self._steps if kind == "stack"]
        self._recurrent = [layer for stack in self._stacks for layer in stack._layers]
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
                x = getattr(part, method)(x) if kind == "stack" else part(x)
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
            call into C instead of one per step.
        """
        return self._through(x, "run")

    def reset(self, state=None):
        """Set the state: None for zeros, or a model state (a tuple with one entry per
        recurrent layer, None entries meaning zeros), each part (L, B, H); copied. Checked
        entirely before any layer's state changes."""
        count = len(self._recurrent)
        if state is None:
            state = (None,) * count
        if not isinstance(state, (tuple, list)) or len(state) != count:
            raise ValueError(f"state must be None or a tuple with one entry per recurrent layer "
                             f"({count}), got {type(state).__name__}"
                             + (f" of length {len(state)}" if isinstance(state, (tuple, list))
                                else ""))
        parts = [layer._check_states(s, self.batch_size, True, f"state[{k}]")
                 for k, (layer, s) in enumerate(zip(self._recurrent, state))]
        with self._lock:
            at = 0
            for stack in self._stacks:
                stack.set_states(parts[at:at + len(stack._layers)])
                at += len(stack._layers)

    @property
    def state(self):
        with self._lock:
            return tuple(s for stack in self._stacks for s in stack.states())

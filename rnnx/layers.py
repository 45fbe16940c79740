"""Recurrent layers with PyTorch's semantics: rnnx.RNN, rnnx.LSTM, rnnx.GRU.

A layer owns its parameters (PyTorch's names, shapes and gate order), checks
what it is given, and runs each direction of each layer of the stack as one
call into the C core (rnnx/_core.pyx).  No Python runs per time step.

Shapes (T time, B batch, I input_size, H hidden_size, L num_layers, D 1 or 2):
    x      (T, B, I), or (B, T, I) with batch_first, or (T, I) unbatched
    y      (T, B, D*H): the forward direction first, then the reverse
    state  h (L*D, B, H) for RNN and GRU, (h, c) for LSTM; layer-major, direction-minor
"""
import numpy as np

try:
    from . import _core
except ImportError as error:  # a source checkout imported before its extension was built
    raise ImportError(
        f"rnnx's compiled core (rnnx._core) is missing from {__file__.rsplit('/', 1)[0]}: this "
        "looks like an unbuilt source folder. Build it in place with `pip install -e .`, or run "
        "Python from another folder so the installed rnnx is imported.") from error

from . import checkpoint as _checkpoint  # noqa: E402 (needs _core, imported above)

__all__ = ["RNN", "LSTM", "GRU", "Cache"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _float_array(value, name):
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a real floating array (float32 or float64), got dtype {a.dtype}")
    return a


class Cache:
    """What a training forward keeps for backward: the input of every layer
    and the C core's per-direction caches.  Opaque; pass it to backward."""

    __slots__ = ("owner", "inputs", "cores", "lengths", "T", "B", "batched", "has_c")

    def __init__(self, owner, inputs, cores, lengths, T, B, batched, has_c):
        self.owner = owner
        self.inputs = inputs
        self.cores = cores
        self.lengths = lengths
        self.T = T
        self.B = B
        self.batched = batched
        self.has_c = has_c


class _Recurrent:
    """A stack of recurrent layers; RNN, LSTM and GRU differ only in their cell."""

    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, dtype=np.float32, seed=None):
        self.input_size = _positive_int(input_size, "input_size")
        self.hidden_size = _positive_int(hidden_size, "hidden_size")
        self.num_layers = _positive_int(num_layers, "num_layers")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if self.dtype not in _DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.seed = seed
        self._params = self._init_params(np.random.default_rng(seed))

    # ------------------------------------------------------------ parameters

    def _param_names(self, k, d):
        suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
        names = [f"weight_ih{suffix}", f"weight_hh{suffix}"]
        if self.bias:
            names += [f"bias_ih{suffix}", f"bias_hh{suffix}"]
        return names

    def _param_shapes(self):
        G, H, D = self._gates * self.hidden_size, self.hidden_size, self.num_directions
        shapes = {}
        for k in range(self.num_layers):
            inputs = self.input_size if k == 0 else D * H
            for d in range(D):
                for name, shape in zip(self._param_names(k, d), [(G, inputs), (G, H), (G,), (G,)]):
                    shapes[name] = shape
        return shapes

    def _init_params(self, rng):
        # PyTorch's initialisation: every tensor uniform in +-1/sqrt(hidden_size).
        bound = 1.0 / np.sqrt(self.hidden_size)
        return {name: rng.uniform(-bound, bound, size=shape).astype(self.dtype)
                for name, shape in self._param_shapes().items()}

    def _weights(self, k, d):
        """(w_ih, w_hh, b_ih, b_hh) of layer k, direction d; biases None without bias."""
        w = [self._params[name] for name in self._param_names(k, d)]
        return tuple(w) if self.bias else (w[0], w[1], None, None)

    def parameters(self):
        """The live parameter arrays by name: an in-place update changes the layer."""
        return dict(self._params)

    def state_dict(self):
        """Copies of the parameters under PyTorch's names."""
        return {name: p.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict):
        """Load parameters by PyTorch's names, e.g. from
        {k: v.numpy() for k, v in torch_module.state_dict().items()}.
        Every key and shape is checked before anything is written, so a
        mismatch leaves the layer as it was.  Values are copied in place, so
        arrays held from parameters() stay the layer's parameters."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        expected = self._param_shapes()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if missing or unexpected:
            raise ValueError(f"state_dict does not match {self!r}: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        staged = {}
        for name, shape in expected.items():
            value = np.asarray(state_dict[name])
            if value.dtype.kind not in "fiu":
                raise TypeError(f"state_dict[{name!r}] must be a real array, got dtype {value.dtype}")
            if value.shape != shape:
                raise ValueError(f"state_dict[{name!r}] must have shape {shape}, got {value.shape}")
            staged[name] = value.astype(self.dtype)
            if not np.all(np.isfinite(staged[name])):
                raise ValueError(f"state_dict[{name!r}] has non-finite values")
        for name, value in staged.items():
            np.copyto(self._params[name], value)

    def config(self):
        """The constructor arguments, JSON-serialisable: type(layer)(**config()) rebuilds it."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bias": self.bias, "batch_first": self.batch_first,
                "bidirectional": self.bidirectional, "dtype": self.dtype.name}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # ---------------------------------------------------------------- checks

    def _check_input(self, x, lengths):
        """x as a C-contiguous time-major (T, B, I) array of the layer's dtype,
        whether it was batched, and lengths as int64 (B,) or None."""
        x = _float_array(x, "x")
        I = self.input_size
        batched = x.ndim == 3
        if x.ndim not in (2, 3) or x.shape[-1] != I:
            layout = "(B, T, {0})" if self.batch_first else "(T, B, {0})"
            raise ValueError(f"x must be {layout.format(I)} or unbatched (T, {I}) for "
                             f"input_size={I}, got {x.shape}")
        if not batched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        x = np.ascontiguousarray(x, dtype=self.dtype)
        T, B = x.shape[0], x.shape[1]
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.dtype.kind not in "iu":
                raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
            if not batched:
                lengths = lengths.reshape(-1)
            if lengths.shape != (B,):
                raise ValueError(f"lengths must have shape ({B},) for a batch of {B}, got {lengths.shape}")
            if B and (lengths.min() < 1 or lengths.max() > T):
                raise ValueError(f"lengths must lie in [1, {T}] (T={T}), got min {lengths.min()} "
                                 f"and max {lengths.max()}")
            lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        return x, batched, lengths

    def _state_shape(self, B):
        return (self.num_layers * self.num_directions, B, self.hidden_size)

    def _check_states(self, state, B, batched, name):
        """state as a list of C-contiguous (L*D, B, H) arrays: [h] or [h, c]."""
        has_c = self._gates == 4
        shape = self._state_shape(B)
        if state is None:
            return [np.zeros(shape, self.dtype) for _ in range(1 + has_c)]
        if has_c:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(f"{name} of an LSTM must be a tuple (h, c), got {type(state).__name__}")
            parts = [(f"{name}[0] (h)", state[0]), (f"{name}[1] (c)", state[1])]
        else:
            parts = [(name, state)]
        out = []
        for label, s in parts:
            s = _float_array(s, label)
            want = shape if batched else (shape[0], shape[2])
            if s.shape != want:
                raise ValueError(f"{label} must have shape {want}, got {s.shape}")
            out.append(np.array(s.reshape(shape), dtype=self.dtype, order="C", copy=True))
        return out

    def _pack_state(self, parts, batched):
        if not batched:
            parts = [p[:, 0, :] for p in parts]
        return (parts[0], parts[1]) if self._gates == 4 else parts[0]

    def _to_output(self, y, batched):
        if not batched:
            return y[:, 0, :]
        return y.transpose(1, 0, 2) if self.batch_first else y

    # --------------------------------------------------------------- forward

    def __call__(self, x, state=None, lengths=None):
        """Inference: y, state = layer(x, state=None, lengths=None)."""
        y, state, _ = self._run(x, state, lengths, train=False)
        return y, state

    def forward(self, x, state=None, lengths=None, checkpoint=None):
        """Training forward: y, state, cache = layer.forward(x, state=None, lengths=None).
        checkpoint=k (or "sqrt"): checkpointed BPTT, see rnnx.checkpoint."""
        if checkpoint is not None:
            return _checkpoint.forward(self, x, state, lengths, checkpoint)
        return self._run(x, state, lengths, train=True)

    def _run(self, x, state, lengths, train):
        x_given = x
        x, batched, lengths = self._check_input(x, lengths)
        T, B = x.shape[0], x.shape[1]
        init = self._check_states(state, B, batched, "state")
        final = [np.empty_like(s) for s in init]
        has_c = len(init) == 2
        H, D = self.hidden_size, self.num_directions
        inputs, cores = [], []
        layer_input = x
        for k in range(self.num_layers):
            y = np.empty((T, B, D * H), self.dtype)
            for d in range(D):
                i = k * D + d
                w_ih, w_hh, b_ih, b_hh = self._weights(k, d)
                cores.append(_core.forward(
                    self._cell, layer_input, init[0][i], init[1][i] if has_c else None,
                    w_ih, w_hh, b_ih, b_hh, lengths, d == 1, y[:, :, d * H:(d + 1) * H],
                    final[0][i], final[1][i] if has_c else None, train))
            inputs.append(layer_input)
            layer_input = y
        if train and np.may_share_memory(inputs[0], x_given):
            inputs[0] = inputs[0].copy()  # backward must see x as it was, whatever the caller does
        cache = Cache(self, inputs, cores, lengths, T, B, batched, has_c) if train else None
        return self._to_output(layer_input, batched), self._pack_state(final, batched), cache

    # -------------------------------------------------------------- backward

    def backward(self, cache, dy, dstate=None):
        """Full BPTT through a training forward of this layer:
        dx, dstate0, grads = layer.backward(cache, dy, dstate=None).
        dy is like y, dstate like the final state (None: zero); dstate0 is like
        the initial state and grads has the keys and shapes of state_dict()."""
        if isinstance(cache, _checkpoint.CheckpointCache):
            return _checkpoint.backward(self, cache, dy, dstate)
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be the Cache returned by forward, got {type(cache).__name__}")
        if cache.owner is not self:
            raise ValueError("cache comes from another layer's forward")
        T, B, batched = cache.T, cache.B, cache.batched
        H, D = self.hidden_size, self.num_directions
        dy = self._check_output_grad(dy, T, B, batched)
        dfinal = self._check_states(dstate, B, batched, "dstate")
        dinit = [np.empty_like(s) for s in dfinal]
        has_c = cache.has_c
        grads = {name: np.zeros_like(p) for name, p in self._params.items()}
        for k in reversed(range(self.num_layers)):
            layer_input = cache.inputs[k]
            dx = np.zeros_like(layer_input)
            for d in range(D):
                i = k * D + d
                w_ih, w_hh, _, _ = self._weights(k, d)
                names = self._param_names(k, d)
                dw = [grads[n] for n in names] + [None] * (4 - len(names))
                _core.backward(
                    self._cell, layer_input, w_ih, w_hh, cache.lengths, d == 1, cache.cores[i],
                    None if dy is None else dy[:, :, d * H:(d + 1) * H],
                    dfinal[0][i], dfinal[1][i] if has_c else None,
                    dx, dinit[0][i], dinit[1][i] if has_c else None, *dw)
            dy = dx
        return self._to_output(dy, batched), self._pack_state(dinit, batched), grads

    def _check_output_grad(self, dy, T, B, batched):
        if dy is None:
            return None
        dy = _float_array(dy, "dy")
        DH = self.num_directions * self.hidden_size
        want = (T, B, DH) if not self.batch_first else (B, T, DH)
        if not batched:
            want = (T, DH)
        if dy.shape != want:
            raise ValueError(f"dy must have the shape of y, {want}, got {dy.shape}")
        if not batched:
            dy = dy[:, None, :]
        elif self.batch_first:
            dy = dy.transpose(1, 0, 2)
        return np.ascontiguousarray(dy, dtype=self.dtype)

    # ------------------------------------------------------------- streaming

    def zero_state(self, batch_size=1):
        """The zero initial state for a batch."""
        B = _positive_int(batch_size, "batch_size")
        return self._pack_state([np.zeros(self._state_shape(B), self.dtype)
                                 for _ in range(1 + (self._gates == 4))], True)

    def stream(self, batch_size=1, state=None):
        """A stateful step-by-step runner for inference on a unidirectional layer:
        stream = layer.stream(batch_size=1); y_t = stream.step(x_t).
        The stream takes a copy of the weights as they are now."""
        if self.bidirectional:
            raise ValueError("a bidirectional layer cannot stream: its reverse direction "
                             "needs the whole sequence")
        B = _positive_int(batch_size, "batch_size")
        core = _core.Stream(self._cell, [self._weights(k, 0) for k in range(self.num_layers)],
                            B, self.dtype)
        stream = Stream(self, core)
        stream.reset(state)
        return stream


class Stream:
    """Runs a layer one time step (or a short chunk) at a time, keeping the state.

    step(x_t): x_t (B, I) -> y_t (B, H); an unbatched (I,) -> (H,) when B == 1.
    reset(state=None) sets the state (zeros by default); state is a copy of it."""

    def __init__(self, layer, core):
        self._layer = layer
        self._core = core
        self.step = core.step   # the fast path: no Python frame of ours per step
        self.batch_size = core.batch_size

    def reset(self, state=None):
        parts = self._layer._check_states(state, self.batch_size, True, "state")
        self._core.set_state(*parts)

    @property
    def state(self):
        h, c = self._core.get_state()
        return self._layer._pack_state([h, c], True)

    def run(self, x):
        """Step through a chunk x (T, B, I) and return y (T, B, H)."""
        x = _float_array(x, "x")
        if x.ndim != 3:
            raise ValueError(f"x must be (T, B, I), got {x.shape}")
        return np.stack([self.step(x_t) for x_t in x]) if len(x) else \
            np.zeros((0, self.batch_size, self._layer.hidden_size), self._layer.dtype)


class RNN(_Recurrent):
    """Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu."""

    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, bidirectional=False, dtype=np.float32, seed=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._cell = _core.RNN_TANH if nonlinearity == "tanh" else _core.RNN_RELU
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         dtype, seed)

    def config(self):
        return {**super().config(), "nonlinearity": self.nonlinearity}


class LSTM(_Recurrent):
    """LSTM with PyTorch's gate order i, f, g, o; state is (h, c)."""

    _gates = 4
    _cell = _core.LSTM


class GRU(_Recurrent):
    """GRU with PyTorch's gate order r, z, n.  reset_after=True applies the reset
    gate after the recurrent product (PyTorch, cuDNN); False before it (Cho et
    al. 2014, the ONNX default)."""

    _gates = 3

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, reset_after=True, dtype=np.float32, seed=None):
        self.reset_after = bool(reset_after)
        self._cell = _core.GRU if self.reset_after else _core.GRU_RESET_BEFORE
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         dtype, seed)

    def config(self):
        return {**super().config(), "reset_after": self.reset_after}

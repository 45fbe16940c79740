"""rnnx.quantize: int8 and bfloat16 inference models (docs/quantization.md).

``qmodel = rnnx.quantize(model, "int8")`` takes a trained RNN, LSTM or GRU layer (any
num_layers, bidirectional, go_backwards, proj_size) or a Sequential of them and returns an
inference model with the same calls: ``y, state = qmodel(x, state, lengths)``, ``predict``,
``stream()``, many_to_one.  Its recurrent weights (W_ih, W_hh, and an LSTM's W_hr) are int8
with one float32 scale per row, or bfloat16; biases, states and outputs are float32.  Dense
heads and an Embedding stay float32 (a step's time is in the recurrent products).  The
original is not modified; ``forward``/``backward`` on the result raise TypeError.
"""
import copy

import numpy as np

from . import _core
from .model import Sequential
from .module import positive_int, unpack_sequence
from .recurrent import _Recurrent

QTYPES = ("int8", "bfloat16")


def _not_trainable(self, *args, **kwargs):
    raise TypeError(f"{type(self).__name__} is an inference model made by rnnx.quantize: it has "
                    "no forward/backward; train the float32 model and quantize it again")


def _as_float32(a):
    """A float64 array as float32 (any other value as it is, for the layer's checks)."""
    if isinstance(a, np.ndarray) and a.dtype == np.float64:
        return a.astype(np.float32)
    return a


class _QuantizedRecurrent:
    """Mixed in before a layer class (rnnx.LSTM, ...): the layer's checks and shapes, the
    quantized core's forward.  Made by quantize(), never directly."""

    forward = _not_trainable
    backward = _not_trainable
    training = False

    @property
    def _params(self):
        # The float layer's weights are not kept: what reads them (save, to_onnx, an
        # optimizer, state_dict) gets this error rather than an empty model.
        raise TypeError(f"{type(self).__name__} is an inference model made by rnnx.quantize: "
                        "it holds int8/bfloat16 tensors (parameters()), not the float "
                        "weights; save, export or train the float32 model instead")

    def _run(self, x, state, lengths, train=False, **options):
        if train:
            _not_trainable(self)
        x, lengths = unpack_sequence(x, lengths, self.batch_first)
        # float64 (a float64 model's) x and state are read as float32, the quantized dtype
        x = _as_float32(x)
        state = tuple(map(_as_float32, state)) if isinstance(state, (tuple, list)) \
            else _as_float32(state)
        x, batched, lengths = self._check_input(x, lengths)
        T, B = x.shape[0], x.shape[1]
        init = self._check_states(state, B, batched, "state")
        final = [np.empty_like(s) for s in init]
        has_c = "c" in self.state_names
        Hh, D, P = self._state_width, self.num_directions, self.proj_size
        layer_input = x
        for k in range(self.num_layers):
            y = np.empty((T, B, D * Hh), np.float32)
            for d in range(D):
                i = k * D + d
                w = self._packed[(k, d)]
                _core.qforward(self._cell, self.qtype, layer_input, init[0][i],
                               init[1][i] if has_c else None, w["weight_ih"], w["weight_hh"],
                               w.get("weight_hr"), w.get("bias_ih"), w.get("bias_hh"),
                               self.hidden_size, P, lengths, self._reverse(d),
                               y[:, :, d * Hh:(d + 1) * Hh], final[0][i],
                               final[1][i] if has_c else None)
            layer_input = y
        return self._to_output(layer_input, batched), self._pack_state(final, batched), None

    def __call__(self, x, state=None, lengths=None):
        y, state, _ = self._run(x, state, lengths)
        return y, state

    def predict(self, x, state=None, lengths=None):
        return self(x, state, lengths)[0]

    def stream(self, batch_size=1, state=None):
        if self.bidirectional or self.go_backwards:
            raise ValueError(f"a {'bidirectional' if self.bidirectional else 'go_backwards'} "
                             "layer cannot stream: its reverse direction needs the whole sequence")
        return QuantizedStream(self, batch_size, state)

    def parameters(self):
        """The quantized tensors: per layer and direction, weight_* as int8 (with
        weight_*_scale float32) or bfloat16 bits (uint16), biases float32."""
        return dict(self._tensors)

    def __repr__(self):
        return f"quantize({super().__repr__()}, {self.qtype!r})"


_classes = {}


def _quantized_class(cls):
    if cls not in _classes:
        _classes[cls] = type("Quantized" + cls.__name__, (_QuantizedRecurrent, cls), {})
    return _classes[cls]


def _quantize_tensor(w, qtype, tensors, name):
    """Quantize float matrix w into tensors[name] (+ name_scale for int8)."""
    w = np.asarray(w, np.float32)
    if qtype == "int8":
        q, scale = _core.quantize_int8(w)
        tensors[name], tensors[name + "_scale"] = q, scale
    else:
        tensors[name] = _core.to_bfloat16(w)


def _quantize_layer(layer, qtype):
    if getattr(layer, "peephole", False):
        raise ValueError("rnnx.quantize does not support an LSTM with peepholes (peephole=True): "
                         "its peephole products are elementwise and not worth quantizing, and "
                         "the quantized core has no peephole cell")
    q = object.__new__(_quantized_class(type(layer)))
    q.__dict__.update((k, v) for k, v in layer.__dict__.items() if k != "_params")
    q.dtype = np.dtype(np.float32)
    q.qtype = qtype
    q._tensors, q._packed = {}, {}
    gates = layer._gates
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
            packed = {}
            for name in ("weight_ih", "weight_hh", "weight_hr"):
                if name + suffix not in layer._params:
                    continue
                _quantize_tensor(layer._params[name + suffix], qtype, q._tensors, name + suffix)
                rows = gates if name != "weight_hr" else 1
                packed[name] = _core.qpack(qtype, rows, q._tensors[name + suffix],
                                           q._tensors.get(name + suffix + "_scale"))
            for name in ("bias_ih", "bias_hh"):
                if name + suffix in layer._params:
                    q._tensors[name + suffix] = np.array(layer._params[name + suffix], np.float32)
                    packed[name] = q._tensors[name + suffix]
            q._packed[(k, d)] = packed
    return q


class QuantizedSequential(Sequential):
    """A Sequential whose recurrent layers are quantized (see quantize)."""

    forward = _not_trainable
    backward = _not_trainable

    def _run(self, x, state, lengths, logits, train, checkpoint=None):
        if train:
            _not_trainable(self)
        return super()._run(x, state, lengths, logits, train=False)

    def stream(self, batch_size=1, state=None):
        if self.many_to_one:
            raise ValueError("a many_to_one model cannot stream: it reads each sequence's end")
        if any(layer.bidirectional or layer.go_backwards
               for layer in self.layers if layer.is_recurrent):
            raise ValueError("a model with a bidirectional or go_backwards layer cannot stream")
        return QuantizedStream(self, batch_size, state)


def quantize(model, qtype="int8"):
    """An int8 or bfloat16 inference copy of a trained layer or Sequential.

    Parameters
    ----------
    model : rnnx.RNN, rnnx.LSTM, rnnx.GRU or rnnx.Sequential
        Not modified.  An LSTM with peepholes is refused (ValueError).
    qtype : "int8" or "bfloat16"
        int8: weights symmetric per output row (scale = max|w| / 127), activations quantized
        per row and step at run time, int32 sums.  bfloat16: weights and activations rounded
        to bfloat16, float32 sums (vdpbf16ps's order).  Gates and states are float32.

    Returns
    -------
    The inference model: the same ``model(x, state, lengths)``, ``predict``, ``stream()``;
    float32 in and out; ``forward``/``backward`` raise TypeError.
    """
    if qtype not in QTYPES:
        raise ValueError(f"qtype must be one of {QTYPES}, got {qtype!r}")
    if isinstance(model, _QuantizedRecurrent) or isinstance(model, QuantizedSequential):
        raise TypeError("model is already quantized; quantize the float32 model")
    if isinstance(model, _Recurrent):
        return _quantize_layer(model, qtype)
    if isinstance(model, Sequential):
        layers = []
        for layer in model.layers:
            if isinstance(layer, _Recurrent):
                layers.append(_quantize_layer(layer, qtype))
            else:                                   # Dense, Embedding: float32 copies
                head = copy.deepcopy(layer)
                head.float()
                head.eval()
                layers.append(head)
        q = QuantizedSequential(layers, many_to_one=model.many_to_one)
        q.qtype = qtype
        return q
    raise TypeError(f"model must be an rnnx RNN, LSTM, GRU or Sequential, got "
                    f"{type(model).__name__}")


class _LayerStep:
    """One quantized unidirectional layer stepped with buffers made once: a step is one
    rnnx_qforward call per stacked layer, T = 1, from the carried state (the call a
    sequence makes, so the same bits), through _core.QStep, which checked its arrays once."""

    def __init__(self, layer, B):
        self.layer, self.B = layer, B
        Hh, H, L = layer._state_width, layer.hidden_size, layer.num_layers
        self.has_c = "c" in layer.state_names
        self.h = np.zeros((L, 2, B, Hh), np.float32)       # per layer: state in, state out
        self.c = np.zeros((L, 2, B, H), np.float32) if self.has_c else None
        self.ys = [np.empty((1, B, Hh), np.float32) for _ in range(L)]
        self.steps = []
        for k in range(L):
            I = layer.input_size if k == 0 else Hh
            w = layer._packed[(k, 0)]
            work = np.empty(_core.qforward_work_size(layer._cell, layer.qtype, 1, B, I, H,
                                                     layer.proj_size) + 64, np.uint8)
            self.steps.append(_core.QStep(
                layer._cell, layer.qtype, w["weight_ih"], w["weight_hh"], w.get("weight_hr"),
                w.get("bias_ih"), w.get("bias_hh"), I, H, layer.proj_size, B, self.h[k],
                self.c[k] if self.has_c else None, self.ys[k], work))

    def set_state(self, state):
        parts = ([np.zeros(self.layer._state_shape(self.B, n), np.float32)
                  for n in self.layer.state_names] if state is None
                 else self.layer._check_states(state, self.B, True, "state"))
        for k, step in enumerate(self.steps):
            step.set_turn(0)
            self.h[k, 0] = parts[0][k]
            if self.has_c:
                self.c[k, 0] = parts[1][k]

    def state(self):
        turns = [step.turn for step in self.steps]
        parts = [np.stack([self.h[k, t] for k, t in enumerate(turns)])]
        if self.has_c:
            parts.append(np.stack([self.c[k, t] for k, t in enumerate(turns)]))
        return self.layer._pack_state(parts, True)

    def step(self, x):
        """x (1, B, I) float32 C-contiguous -> y (1, B, Hh) (a buffer of this object)."""
        for step, y in zip(self.steps, self.ys):
            step.step(x)
            x = y
        return x


class QuantizedStream:
    """Step-by-step inference of a quantized layer or Sequential: ``y_t = s.step(x_t)``
    with x_t (B, I) (or (B,) ids), ``run(x)`` for a chunk (T, B, I), ``reset(state)``,
    ``state``.  Each step runs the same quantized calls as a whole sequence from the carried
    state, so a stream's outputs equal the sequence's bit for bit."""

    def __init__(self, model, batch_size=1, state=None):
        self._model = model
        self.batch_size = positive_int(batch_size, "batch_size")
        layers = model.layers if isinstance(model, Sequential) else [model]
        self._stages = [_LayerStep(layer, self.batch_size) if layer.is_recurrent else layer
                        for layer in layers]
        self.reset(state)

    def _recurrent(self):
        return [s for s in self._stages if isinstance(s, _LayerStep)]

    def reset(self, state=None):
        """Start again from state (the model's form), or zeros."""
        steps = self._recurrent()
        if state is None:
            states = [None] * len(steps)
        elif isinstance(self._model, Sequential):
            if not isinstance(state, (tuple, list)) or len(state) != len(steps):
                raise ValueError(f"state must be a tuple of {len(steps)} layer states, got "
                                 f"{type(state).__name__}")
            states = list(state)
        else:
            states = [state]
        for s, st in zip(steps, states):
            s.set_state(st)

    @property
    def state(self):
        states = tuple(s.state() for s in self._recurrent())
        return states if isinstance(self._model, Sequential) else states[0]

    def _step(self, x_t):
        h = x_t[None]
        for stage in self._stages:
            if isinstance(stage, _LayerStep):
                if h.dtype != np.float32 or not h.flags.c_contiguous:
                    h = np.ascontiguousarray(h, dtype=np.float32)
                h = stage.step(h)
            else:
                h = stage._run(h, None, None, train=False)[0]
        return h[0]

    def step(self, x_t):
        """y_t (B, out) for x_t (B, I) (or (B,) ids), the state carried."""
        first = self._stages[0]
        if isinstance(first, _LayerStep):
            I = first.layer.input_size
            if self.batch_size == 1 and np.shape(x_t) == (I,):   # one unbatched sample
                return self.step(np.reshape(x_t, (1, I)))[0]
            # the common case, a float32 (B, I) C-contiguous array, goes straight through
            if not (type(x_t) is np.ndarray and x_t.dtype == np.float32
                    and x_t.shape == (self.batch_size, I) and x_t.flags.c_contiguous):
                x_t = _as_float32(np.asarray(x_t))
                if x_t.shape != (self.batch_size, I):
                    raise ValueError(f"x_t must be ({self.batch_size}, {I}) for batch_size="
                                     f"{self.batch_size}, input_size={I}, got {x_t.shape}")
                if x_t.dtype != np.float32:
                    raise TypeError(f"x_t must be a float32 array, got {x_t.dtype}")
                x_t = np.ascontiguousarray(x_t)
        else:
            x_t = np.asarray(x_t)
            if x_t.ndim < 1 or x_t.shape[0] != self.batch_size:
                raise ValueError(f"x_t must be ({self.batch_size}, ...) for batch_size="
                                 f"{self.batch_size}, got {x_t.shape}")
        return self._step(x_t).copy()

    def run(self, x):
        """y (T, B, out) for a chunk x (T, B, ...), the state carried through it."""
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[1] != self.batch_size:
            raise ValueError(f"x must be (T, {self.batch_size}, ...) for batch_size="
                             f"{self.batch_size}, got {x.shape}")
        return np.stack([self.step(x[t]) for t in range(x.shape[0])]) if len(x) else \
            np.zeros((0,) + self._step_shape(), np.float32)

    def _step_shape(self):
        last = self._stages[-1]
        width = last.layer.output_size if isinstance(last, _LayerStep) else last.output_size
        return (self.batch_size, width)

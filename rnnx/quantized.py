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
from .module import unpack_sequence
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

    def stream_tensors(self):
        """Per stacked layer, (w_ih, s_ih, w_hh, s_hh, b_ih, b_hh, w_hr, s_hr) as _core.Stream
        takes them with qtype (the scales None for bfloat16; None where the layer has none):
        its stream (layer.stream(), as a float layer's: rnnx.Stream) is the core's one stream
        over these tensors."""
        entries = []
        for k in range(self.num_layers):
            t = {name: self._tensors.get(f"{name}_l{k}") for name in
                 ("weight_ih", "weight_hh", "weight_hr", "bias_ih", "bias_hh")}
            s = {name: self._tensors.get(f"{name}_l{k}_scale") for name in
                 ("weight_ih", "weight_hh", "weight_hr")}
            entries.append((t["weight_ih"], s["weight_ih"], t["weight_hh"], s["weight_hh"],
                            t["bias_ih"], t["bias_hh"], t["weight_hr"], s["weight_hr"]))
        return entries

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

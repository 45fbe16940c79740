"""Keras 3 <-> rnnx: SimpleRNN, LSTM, GRU (reset_after True and False), Bidirectional
(merge_mode="concat") and Dense.

The mapping, per direction (G gates of H units; Keras kernels are (inputs, G*H)):

    weight_ih = kernel.T            weight_hh = recurrent_kernel.T
    LSTM gates i, f, c, o = PyTorch's i, f, g, o: no reordering
    GRU gates z, r, h -> PyTorch's r, z, n: the first two blocks swap
    bias (G*H,) -> bias_ih, with bias_hh = 0 (Keras has one bias; rnnx -> Keras sums them,
                   which is exact for SimpleRNN, LSTM and the reset_after=False GRU, where
                   b_hn is added outside the reset gate)
    GRU reset_after=True: bias (2, G*H) = [input bias; recurrent bias] -> bias_ih, bias_hh

Keras models are batch-first: from_keras builds batch_first layers, to_keras gives a model
taking (B, T, I) whatever the rnnx model's batch_first.  A Keras recurrent layer with
return_sequences=False is the last recurrent layer of an rnnx Sequential with
many_to_one="state" (both take the last step, and for Bidirectional the reverse direction's
state after t=0); many_to_one="output" on a bidirectional layer has no Keras form.
"""
import numpy as np

from ._common import KERAS_TO_TORCH, TORCH_TO_KERAS, as_layers, build, cell_name, \
    is_recurrent, permute_gates, refuse_peephole, refuse_projection, require

_KERAS_ACTIVATIONS = {"linear": "identity", "sigmoid": "sigmoid", "softmax": "softmax",
                      "tanh": "tanh", "relu": "relu"}
_TO_KERAS_ACTIVATIONS = {v: k for k, v in _KERAS_ACTIVATIONS.items()}


def _activation_name(fn):
    return getattr(fn, "__name__", str(fn))


def _dtype(layer, name):
    dtype = np.dtype(layer.dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} has dtype {dtype}; rnnx converts float32 and float64 only")
    return dtype


def _check_rnn(layer, name, kind, backwards=False):
    """Refuse what rnnx cannot express, naming the attribute."""
    expected = {"SimpleRNN": {"activation": ("tanh", "relu")},
                "LSTM": {"activation": ("tanh",), "recurrent_activation": ("sigmoid",)},
                "GRU": {"activation": ("tanh",), "recurrent_activation": ("sigmoid",)}}[kind]
    for attr, allowed in expected.items():
        got = _activation_name(getattr(layer, attr))
        if got not in allowed:
            raise ValueError(f"{name}: {attr}={got!r} is not supported, rnnx's {kind} needs "
                             f"{' or '.join(map(repr, allowed))}")
    if getattr(layer, "stateful", False):
        raise ValueError(f"{name}: stateful=True is not supported by rnnx (carry the state "
                         "explicitly: rnnx layers take and return it)")
    if bool(getattr(layer, "go_backwards", False)) != backwards:
        raise ValueError(f"{name}: go_backwards={layer.go_backwards} is not supported by rnnx "
                         "(Keras returns its outputs reversed in time, rnnx's go_backwards in "
                         "time order; use Bidirectional)")


def _direction_params(layer, kind, reverse, k=0):
    """{rnnx name: array} of one Keras recurrent layer as direction `reverse` of layer k."""
    weights = layer.get_weights()
    kernel, recurrent = weights[0], weights[1]
    perm = KERAS_TO_TORCH[{"SimpleRNN": "RNN"}.get(kind, kind)]
    suffix = f"_l{k}" + ("_reverse" if reverse else "")
    params = {f"weight_ih{suffix}": permute_gates(kernel.T, perm),
              f"weight_hh{suffix}": permute_gates(recurrent.T, perm)}
    if layer.use_bias:
        bias = weights[2]
        if bias.ndim == 2:      # GRU reset_after: [input bias; recurrent bias]
            b_ih, b_hh = bias[0], bias[1]
        else:
            b_ih, b_hh = bias, np.zeros_like(bias)
        params[f"bias_ih{suffix}"] = permute_gates(b_ih, perm)
        params[f"bias_hh{suffix}"] = permute_gates(b_hh, perm)
    return params


def _recurrent_from_keras(layer, name):
    """(rnnx layer, return_sequences) of a Keras SimpleRNN/LSTM/GRU/Bidirectional."""
    from .. import layers
    bidirectional = type(layer).__name__ == "Bidirectional"
    if bidirectional:
        if layer.merge_mode != "concat":
            raise ValueError(f"{name}: Bidirectional merge_mode={layer.merge_mode!r} is not "
                             "supported, rnnx concatenates the directions (merge_mode='concat')")
        forward, backward = layer.forward_layer, layer.backward_layer
        if type(forward).__name__ != type(backward).__name__:
            raise ValueError(f"{name}: the forward and backward layers must be of one kind, got "
                             f"{type(forward).__name__} and {type(backward).__name__}")
    else:
        forward, backward = layer, None
    kind = type(forward).__name__
    _check_rnn(forward, name, kind)
    if backward is not None:
        _check_rnn(backward, name, kind, backwards=True)
    input_size = forward.get_weights()[0].shape[0]
    kwargs = dict(input_size=int(input_size), hidden_size=int(forward.units), bias=forward.use_bias,
                  batch_first=True, bidirectional=bidirectional, dtype=_dtype(forward, name))
    if kind == "SimpleRNN":
        cls = layers.RNN
        kwargs["nonlinearity"] = _activation_name(forward.activation)
    elif kind == "LSTM":
        cls = layers.LSTM
    else:
        cls = layers.GRU
        kwargs["reset_after"] = bool(forward.reset_after)
    out = cls(**kwargs)
    params = _direction_params(forward, kind, False)
    if backward is not None:
        if backward.units != forward.units or backward.use_bias != forward.use_bias or \
                getattr(backward, "reset_after", None) != getattr(forward, "reset_after", None):
            raise ValueError(f"{name}: the backward layer must match the forward one (units, "
                             "use_bias, reset_after)")
        params.update(_direction_params(backward, kind, True))
    out.load_state_dict(params)
    return out, bool(forward.return_sequences)


def _dense_from_keras(layer, name):
    from ..dense import Dense
    activation = _activation_name(layer.activation)
    if activation not in _KERAS_ACTIVATIONS:
        raise ValueError(f"{name}: activation={activation!r} is not supported, expected one of "
                         f"{sorted(_KERAS_ACTIVATIONS)}")
    weights = layer.get_weights()
    out = Dense(int(weights[0].shape[0]), int(layer.units),
                activation=_KERAS_ACTIVATIONS[activation],
                bias=layer.use_bias, dtype=_dtype(layer, name))
    params = {"weight": weights[0].T}
    if layer.use_bias:
        params["bias"] = weights[1]
    out.load_state_dict(params)
    return out


def from_keras(layer_or_model):
    """Convert a Keras 3 layer or Sequential model to rnnx.

    Parameters
    ----------
    layer_or_model : keras.layers.Layer, keras.Sequential or a list of layers
        A built ``SimpleRNN`` (tanh or relu), ``LSTM``, ``GRU`` (``reset_after`` True or
        False), ``Bidirectional`` of one of them (``merge_mode="concat"``) or ``Dense``
        (linear, sigmoid, softmax, tanh, relu), or a Sequential or list of these, in
        order (an ``InputLayer``, ``Dropout`` and ``Masking`` are skipped: rnnx takes
        ``lengths`` instead of a mask).  Only the last recurrent layer may have
        ``return_sequences=False``; it makes the rnnx Sequential ``many_to_one``.
        ``return_state`` does not matter (rnnx always returns the state).  ``dropout`` and
        ``recurrent_dropout`` act in training only and are not carried.

    Returns
    -------
    An rnnx layer (batch_first=True, as Keras) for a single layer with
    ``return_sequences=True`` or a Dense, else an rnnx.Sequential.

    Raises
    ------
    ValueError
        An attribute rnnx cannot express (``go_backwards``, ``stateful``, another
        activation, another ``merge_mode``), or ``return_sequences=False`` before the last
        recurrent layer.
    TypeError
        A layer kind rnnx has no counterpart for, or a dtype other than float32/float64.
    """
    keras = require("keras")
    if isinstance(layer_or_model, keras.Model):
        # a functional model may branch; only a Sequential is surely a chain
        if not isinstance(layer_or_model, keras.Sequential):
            raise TypeError(f"layer_or_model must be a keras.Sequential (or a layer or a list of "
                            f"layers), got {type(layer_or_model).__name__}")
        keras_layers = list(layer_or_model.layers)
    elif isinstance(layer_or_model, keras.layers.Layer):
        keras_layers = [layer_or_model]
    elif isinstance(layer_or_model, (list, tuple)) and all(
            isinstance(layer, keras.layers.Layer) for layer in layer_or_model):
        keras_layers = list(layer_or_model)
    else:
        raise TypeError(f"layer_or_model must be a Keras layer, model or list of layers, got "
                        f"{type(layer_or_model).__name__}")
    layers, many_to_one = [], False
    for index, layer in enumerate(keras_layers):
        name = f"layers[{index}] ({type(layer).__name__} {layer.name!r})"
        kind = type(layer).__name__
        if kind in ("InputLayer", "Dropout", "Masking"):
            continue
        if not layer.built:
            raise ValueError(f"{name} is not built: call it on an input or build it first")
        if kind in ("SimpleRNN", "LSTM", "GRU", "Bidirectional"):
            if many_to_one:
                raise ValueError(f"{name} follows a recurrent layer with return_sequences=False;"
                                 " only the last recurrent layer may drop the sequence")
            out, return_sequences = _recurrent_from_keras(layer, name)
            layers.append(out)
            many_to_one = False if return_sequences else "state"
        elif kind == "Dense":
            layers.append(_dense_from_keras(layer, name))
        else:
            raise TypeError(f"{name} has no rnnx counterpart: expected SimpleRNN, LSTM, GRU, "
                            "Bidirectional or Dense")
    if not layers:
        raise ValueError("layer_or_model holds no layer rnnx can convert")
    return build(layers, many_to_one)


def _keras_rnn(keras, layer, k, return_sequences, dtype):
    """The Keras layer for layer k of an rnnx recurrent layer, with its weights."""
    if getattr(layer, "go_backwards", False):
        raise ValueError("to_keras: a go_backwards=True layer is not converted (Keras's "
                         "go_backwards returns its outputs reversed in time, rnnx's in time "
                         "order)")
    cell = cell_name(layer)
    H, D = layer.hidden_size, layer.num_directions
    params = layer.state_dict()
    perm = TORCH_TO_KERAS[cell]
    common = dict(units=H, use_bias=layer.bias, return_sequences=return_sequences, dtype=dtype)
    if cell == "RNN":
        make = lambda **kw: keras.layers.SimpleRNN(activation=layer.nonlinearity, **common, **kw)
    elif cell == "LSTM":
        make = lambda **kw: keras.layers.LSTM(**common, **kw)
    else:
        make = lambda **kw: keras.layers.GRU(reset_after=layer.reset_after, **common, **kw)

    def weights(d):
        suffix = f"_l{k}" + ("_reverse" if d else "")
        out = [permute_gates(params["weight_ih" + suffix], perm).T,
               permute_gates(params["weight_hh" + suffix], perm).T]
        if layer.bias:
            b_ih = permute_gates(params["bias_ih" + suffix], perm)
            b_hh = permute_gates(params["bias_hh" + suffix], perm)
            out.append(np.stack([b_ih, b_hh]) if cell == "GRU" and layer.reset_after
                       else b_ih + b_hh)
        return out

    if D == 1:
        return make(), weights(0)
    return (keras.layers.Bidirectional(make(), merge_mode="concat", dtype=dtype),
            weights(0) + weights(1))


def to_keras(model):
    """Convert an rnnx layer or Sequential to a Keras 3 Sequential model.

    Parameters
    ----------
    model : rnnx.RNN, LSTM, GRU, Dense or Sequential
        Each layer of a stack (``num_layers``) becomes one Keras layer, a bidirectional one a
        ``Bidirectional(merge_mode="concat")``, Dense a ``Dense`` with its activation; a
        ``many_to_one`` Sequential's last recurrent layer gets ``return_sequences=False``
        (``"output"`` on a bidirectional layer is refused: Keras reads its final state).

    Returns
    -------
    keras.Sequential
        Built, batch-first: it takes x (B, T, I) whatever the rnnx model's ``batch_first``,
        and returns the output only (no state).  Its dtype is the rnnx model's; on the JAX
        backend float64 needs ``jax.config.update("jax_enable_x64", True)`` before use, or
        JAX computes in float32.
    """
    layers, many_to_one = as_layers(model)
    refuse_projection(layers, "Keras's LSTM")
    refuse_peephole(layers, "Keras 3's LSTM")
    if type(layers[0]).__name__ == "Embedding":
        raise ValueError("to_keras does not convert an rnnx.Embedding (yet): export the model "
                         "with rnnx.to_onnx, or the layers after the Embedding with to_keras")
    recurrent = [i for i, layer in enumerate(layers) if is_recurrent(layer)]
    if many_to_one == "output" and layers[recurrent[-1]].num_directions == 2:
        raise ValueError("many_to_one='output' reads a bidirectional layer's reverse half at the "
                         "last valid step, which Keras's return_sequences=False does not (it "
                         "reads the final state, many_to_one='state')")
    keras = require("keras")
    dtype = np.dtype(layers[0].dtype).name
    first = layers[0]
    size_in = first.input_size if is_recurrent(first) else first.in_features
    keras_layers, weights = [], []
    for index, layer in enumerate(layers):
        if is_recurrent(layer):
            for k in range(layer.num_layers):
                last_step = many_to_one and index == recurrent[-1] and k == layer.num_layers - 1
                keras_layer, w = _keras_rnn(keras, layer, k, not last_step, dtype)
                keras_layers.append(keras_layer)
                weights.append(w)
        else:
            params = layer.state_dict()
            keras_layers.append(keras.layers.Dense(
                layer.out_features, activation=_TO_KERAS_ACTIVATIONS[layer.activation],
                use_bias=layer.bias, dtype=dtype))
            weights.append([params["weight"].T] + ([params["bias"]] if layer.bias else []))
    shape = (None, size_in) if recurrent else (size_in,)
    out = keras.Sequential([keras.Input(shape=shape, dtype=dtype)] + keras_layers)
    for keras_layer, w in zip(keras_layers, weights):
        keras_layer.set_weights([np.asarray(a, dtype=dtype) for a in w])
    return out

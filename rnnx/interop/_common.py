"""What the converters share: the optional peers' imports and the gate orders.

rnnx keeps PyTorch's gate order (LSTM i,f,g,o; GRU r,z,n).  ONNX orders LSTM gates
i,o,f,c and GRU gates z,r,h; Keras orders LSTM gates i,f,c,o (PyTorch's) and GRU z,r,h.
"""
import importlib

import numpy as np

# Block permutations: new[j] = old[perm[j]], on the gate axis (axis 0 of a (G*H, ...) matrix).
TORCH_TO_ONNX = {"RNN": [0], "LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}
ONNX_TO_TORCH = {"RNN": [0], "LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}
TORCH_TO_KERAS = {"RNN": [0], "LSTM": [0, 1, 2, 3], "GRU": [1, 0, 2]}
KERAS_TO_TORCH = TORCH_TO_KERAS   # both permutations are their own inverse
# An LSTM's peepholes: rnnx's weight_peephole is [p_i p_f p_o], ONNX's P [p_i p_o p_f]
PEEPHOLE_TO_ONNX = PEEPHOLE_FROM_ONNX = [0, 2, 1]   # its own inverse too

_EXTRAS = {"onnx": "onnx", "onnxruntime": "onnx", "keras": "keras", "torch": "torch"}


def require(module):
    """Import an optional peer, or raise an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = _EXTRAS.get(module, module)
        raise ImportError(f"this converter needs {module!r}, which is not installed: "
                          f"pip install 'rnnx[{extra}]' (or pip install {module})") from error


def permute_gates(a, perm, axis=0):
    """Reorder the gate blocks of a along axis: block j of the result is block perm[j] of a."""
    blocks = np.split(np.asarray(a), len(perm), axis=axis)
    return np.concatenate([blocks[p] for p in perm], axis=axis)


def cell_name(layer):
    """"RNN", "LSTM" or "GRU" for an rnnx recurrent layer (a subclass too)."""
    from .. import layers
    for name in ("LSTM", "GRU", "RNN"):
        if isinstance(layer, getattr(layers, name)):
            return name
    raise TypeError(f"expected an rnnx RNN, LSTM or GRU layer, got {type(layer).__name__}")


def is_recurrent(layer):
    from ..dense import Dense
    return not isinstance(layer, Dense) and hasattr(layer, "hidden_size")


def as_layers(model):
    """(layers, many_to_one) of an rnnx layer or Sequential."""
    from ..dense import Dense
    from ..embedding import Embedding
    from ..model import Sequential
    if isinstance(model, Sequential):
        return list(model.layers), model.many_to_one
    if isinstance(model, (Dense, Embedding)) or is_recurrent(model):
        return [model], False
    raise TypeError(f"model must be an rnnx layer (RNN, LSTM, GRU, Dense, Embedding) or rnnx.Sequential, "
                    f"got {type(model).__name__}")


def refuse_projection(layers, target):
    """ValueError if an LSTM of layers has a projection (proj_size > 0), which target lacks."""
    for index, layer in enumerate(layers):
        if getattr(layer, "proj_size", 0):
            raise ValueError(f"layer {index} ({type(layer).__name__}) has proj_size="
                             f"{layer.proj_size}: {target} has no projection (h = W_hr "
                             f"(o * tanh(c))), so it cannot be exported; only proj_size=0 "
                             f"converts")


def refuse_peephole(layers, target):
    """ValueError if an LSTM of layers has peepholes, which target lacks."""
    for index, layer in enumerate(layers):
        if getattr(layer, "peephole", False):
            raise ValueError(f"layer {index} ({type(layer).__name__}) has peephole=True: {target} "
                             f"has no peephole LSTM, so it cannot be exported; only "
                             f"peephole=False converts")


def build(layers, many_to_one):
    """A single layer as itself, several as rnnx.Sequential."""
    from ..model import Sequential
    if len(layers) == 1 and not many_to_one:
        return layers[0]
    return Sequential(*layers, many_to_one=many_to_one)

"""PyTorch modules -> rnnx: nn.Embedding, nn.RNN/LSTM/GRU, nn.Linear heads and their activations.

rnnx keeps PyTorch's parameter names, shapes and gate orders, so a recurrent module's
state_dict loads as it is; nn.Linear's weight (out, in) and bias (out,) are rnnx.Dense's.
"""
import inspect
import warnings

import numpy as np

from ._common import build, require

_ACTIVATION_MODULES = {"Sigmoid": "sigmoid", "Tanh": "tanh", "ReLU": "relu", "Softmax": "softmax"}
_SKIPPED_MODULES = ("Identity", "Dropout")   # identity at inference


def _numpy_state(module):
    return {name: value.detach().cpu().numpy() for name, value in module.state_dict().items()}


def _dtype(module, name):
    dtypes = {str(p.dtype) for p in module.parameters()}
    if dtypes - {"torch.float32", "torch.float64"} or len(dtypes) > 1:
        raise TypeError(f"{name} must hold float32 or float64 parameters of one dtype, got "
                        f"{sorted(dtypes)}")
    return np.float64 if dtypes == {"torch.float64"} else np.float32


def _recurrent(module, name):
    from .. import layers
    kind = type(module).__name__
    cls = {"RNN": layers.RNN, "LSTM": layers.LSTM, "GRU": layers.GRU}[kind]
    kwargs = dict(input_size=module.input_size, hidden_size=module.hidden_size,
                  num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                  bidirectional=module.bidirectional, dtype=_dtype(module, name))
    if kind == "RNN":
        kwargs["nonlinearity"] = module.nonlinearity
    if kind == "LSTM" and getattr(module, "proj_size", 0):
        kwargs["proj_size"] = int(module.proj_size)   # LSTM with projections: weight_hr_l{k}
    if module.dropout:
        if "dropout" in inspect.signature(cls).parameters:
            kwargs["dropout"] = float(module.dropout)
        else:   # an rnnx without dropout: exact at inference, which is what is converted
            warnings.warn(f"{name}: dropout={module.dropout} is not carried over (this rnnx "
                          "has no dropout between stacked layers); inference is unaffected",
                          stacklevel=3)
    layer = cls(**kwargs)
    layer.load_state_dict(_numpy_state(module))
    return layer


def _linear(module, name, activation):
    from ..dense import Dense
    layer = Dense(module.in_features, module.out_features, activation=activation,
                  bias=module.bias is not None, dtype=_dtype(module, name))
    layer.load_state_dict(_numpy_state(module))
    return layer


def _embedding(module, name):
    from ..embedding import Embedding
    if module.max_norm is not None:
        raise ValueError(f"{name}: max_norm={module.max_norm} renormalises the looked-up rows "
                         "in place at every call, which rnnx.Embedding does not do; only "
                         "max_norm=None converts")
    if module.scale_grad_by_freq:
        warnings.warn(f"{name}: scale_grad_by_freq=True is not carried over (rnnx sums the "
                      "gradient of repeated ids); inference is unaffected", stacklevel=3)
    layer = Embedding(module.num_embeddings, module.embedding_dim,
                      padding_idx=module.padding_idx, dtype=_dtype(module, name))
    layer.load_state_dict(_numpy_state(module))
    return layer


def _no_counterpart(module, name, nn):
    """Why module does not convert, and what to pass instead."""
    quantized = [(child_name, child) for child_name, child in module.named_modules()
                 if "quantized" in type(child).__module__]
    if quantized:
        import rnnx
        child_name, child = quantized[0]
        where = f"{name}{'.' + child_name if child_name else ''}"
        hint = ("; quantize the converted model with rnnx.quantize" if hasattr(rnnx, "quantize")
                else "")
        return (f"{where} is a quantized module ({type(child).__module__}."
                f"{type(child).__name__}): rnnx converts float modules; convert the float "
                f"model, before torch's quantize_dynamic{hint}")
    children = [child_name for child_name, child in module.named_modules()
                if isinstance(child, (nn.Embedding, nn.RNN, nn.LSTM, nn.GRU, nn.Linear))]
    if children:
        listed = ", ".join(f"module.{child_name}" for child_name in children)
        return (f"{name} is a custom module, whose forward() rnnx cannot read: pass its "
                f"Embedding, recurrent and Linear children in the order forward() runs them, "
                f"rnnx.from_torch([{listed}]); where forward() takes the last step "
                "(out[length - 1]) or the final state (h_n) before the Linear, build "
                "rnnx.Sequential(*converted.layers, many_to_one='output' or 'state')")
    return (f"{name} has no rnnx counterpart: expected nn.Embedding, nn.RNN, nn.LSTM, nn.GRU, "
            "nn.Linear, nn.Sigmoid, nn.Tanh, nn.ReLU, nn.Softmax, nn.Identity or nn.Dropout")


def from_torch(module):
    """Convert a PyTorch module to rnnx.

    Parameters
    ----------
    module : torch.nn.Module or a list of them
        An ``nn.Embedding`` (first only: the model then takes ids; ``padding_idx`` kept,
        ``max_norm`` refused), an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` (with
        ``nonlinearity``, ``bias``, ``batch_first``, ``bidirectional``, ``num_layers``, an
        LSTM's ``proj_size``; ``dropout`` when rnnx has it; PyTorch has no peephole LSTM,
        so none comes from here: rnnx's ``peephole=True`` is for ONNX's P), an
        ``nn.Linear``, or an ``nn.Sequential`` / ``nn.ModuleList`` / list of those, run in
        order.  The rule for a chain: a recurrent module's output is the first element of the
        tuple it returns (the sequence ``y``), as in ``y, _ = rnn(x); out = head(y)``; an
        ``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU`` or ``nn.Softmax(dim=-1)`` right after an
        ``nn.Linear`` becomes that Dense layer's activation; ``nn.Identity`` and
        ``nn.Dropout`` (identity at inference) are skipped.

    Returns
    -------
    rnnx.RNN, LSTM, GRU, Dense or Embedding for a single module, else rnnx.Sequential.

    Raises
    ------
    ValueError
        An activation not after a Linear, a softmax over another dimension than the last.
    TypeError
        A module rnnx has no counterpart for (a custom module: the message lists its
        recurrent and Linear children to pass instead; a quantized one: convert the float
        model), or parameters that are not float32/float64.
    """
    torch = require("torch")
    nn = torch.nn
    if isinstance(module, (list, tuple, nn.Sequential, nn.ModuleList)):
        modules = list(module)
    elif isinstance(module, nn.Module):
        modules = [module]
    else:
        raise TypeError(f"module must be a torch.nn.Module or a list of them, got "
                        f"{type(module).__name__}")
    if not modules:
        raise ValueError("module must hold at least one module, got an empty container")
    layers = []
    index = 0
    while index < len(modules):
        m = modules[index]
        name = f"module[{index}] ({type(m).__name__})"
        kind = type(m).__name__
        index += 1
        if not isinstance(m, nn.Module):
            raise TypeError(f"{name} must be a torch.nn.Module")
        if isinstance(m, (nn.RNN, nn.LSTM, nn.GRU)):
            layers.append(_recurrent(m, name))
        elif isinstance(m, nn.Embedding):
            layers.append(_embedding(m, name))
        elif isinstance(m, nn.Linear):
            activation = "identity"
            following = modules[index] if index < len(modules) else None
            if type(following).__name__ in _ACTIVATION_MODULES:
                if isinstance(following, nn.Softmax) and following.dim != -1:
                    raise ValueError(f"module[{index}] (Softmax): nn.Softmax must be over the "
                                     f"last dimension (dim=-1), got dim={following.dim}")
                activation = _ACTIVATION_MODULES[type(following).__name__]
                index += 1
            layers.append(_linear(m, name, activation))
        elif kind in _ACTIVATION_MODULES:
            raise ValueError(f"{name} must follow an nn.Linear (rnnx applies activations in "
                             "its Dense layers)")
        elif kind in _SKIPPED_MODULES:
            continue
        else:
            raise TypeError(_no_counterpart(m, name, nn))
    if not layers:
        raise ValueError("module holds no layer rnnx can convert (only Identity/Dropout)")
    return build(layers, many_to_one=False)

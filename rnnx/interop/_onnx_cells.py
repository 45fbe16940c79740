"""ONNX nodes -> rnnx layers: what one RNN/LSTM/GRU node means (or the ValueError naming what
rnnx cannot express), a forward and a reverse node as one bidirectional layer, a stack of
nodes as one layer with num_layers, MatMul/Gemm/Add/activation nodes as Dense layers, and a
Gather's constant table as an Embedding.
rnnx/interop/_onnx_import.py decides which nodes go together."""
import numpy as np

from ._common import ONNX_TO_TORCH, PEEPHOLE_FROM_ONNX, permute_gates
from ._onnx_graph import attributes

ACTIVATIONS = {"Sigmoid": "sigmoid", "Softmax": "softmax", "Tanh": "tanh", "Relu": "relu"}
_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def cell_spec(graph, node):
    """The rnnx view of one RNN/LSTM/GRU node, or a ValueError naming what rnnx cannot express."""
    cell, where = node.op_type, f"{node.op_type} node {node.name!r}"
    attrs = attributes(graph.onnx, node)
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"{where}: direction={direction!r} is not an ONNX direction")
    D = 2 if direction == "bidirectional" else 1
    for name in ("clip", "activation_alpha", "activation_beta"):
        if name in attrs:
            raise ValueError(f"{where}: attribute {name!r} is not supported by rnnx")
    if attrs.get("input_forget", 0):
        raise ValueError(f"{where}: attribute 'input_forget'={attrs['input_forget']} is not "
                         "supported by rnnx (coupled input and forget gates)")
    layout = attrs.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"{where}: layout={layout} is not an ONNX layout (0 or 1)")
    activations = list(attrs.get("activations", []))
    nonlinearity = None
    if cell == "RNN":
        activations = activations or ["Tanh"] * D
        if activations not in (["Tanh"] * D, ["Relu"] * D):
            raise ValueError(f"{where}: activations={activations} is not supported, rnnx's RNN "
                             f"needs {['Tanh'] * D} or {['Relu'] * D}")
        nonlinearity = activations[0].lower()
    elif activations and activations != _DEFAULT_ACTIVATIONS[cell] * D:
        raise ValueError(f"{where}: activations={activations} is not supported, rnnx's {cell} "
                         f"needs the default {_DEFAULT_ACTIVATIONS[cell] * D}")
    inputs = list(node.input) + [""] * (8 - len(node.input))
    initial = {}     # state name -> the graph input it comes from
    for slot, label, state in ((5, "initial_h", "h"), (6, "initial_c", "c")):
        if (slot == 6 and cell != "LSTM") or graph.is_zero(inputs[slot]):
            continue
        if graph.fold(inputs[slot]) is not None:
            raise ValueError(f"{where}: {label} ({inputs[slot]!r}) is a non-zero constant, which "
                             "rnnx does not keep in a model: it takes the initial state as the "
                             "call's state argument (make it a graph input, or pass it as state=)")
        sources = graph.data_sources(inputs[slot])
        if len(sources) != 1:
            raise ValueError(f"{where}: {label} ({inputs[slot]!r}) must be zeros or come from one "
                             f"graph input (the model's state argument), got it from "
                             f"{sorted(sources) or 'no graph input'}")
        initial[state] = sources.pop()
    w = graph.const(inputs[1], f"{where}: W")
    r = graph.const(inputs[2], f"{where}: R")
    b = graph.const(inputs[3], f"{where}: B") if inputs[3] else None
    G = _GATES[cell]
    H = int(attrs.get("hidden_size", r.shape[-1]))
    if w.ndim != 3 or w.shape[:2] != (D, G * H) or r.shape != (D, G * H, H) or \
            (b is not None and b.shape != (D, 2 * G * H)):
        raise ValueError(f"{where}: W {w.shape}, R {r.shape}, B {None if b is None else b.shape} "
                         f"do not fit hidden_size={H} and {D} direction(s)")
    if w.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: W has dtype {w.dtype}; rnnx imports float32 and float64 only")
    # an LSTM's peepholes P (D, 3H), ONNX's [p_i p_o p_f]: rnnx.LSTM(peephole=True)
    p = graph.const(inputs[7], f"{where}: P") if cell == "LSTM" and inputs[7] else None
    if p is not None and p.shape != (D, 3 * H):
        raise ValueError(f"{where}: P {p.shape} does not fit hidden_size={H} and {D} "
                         f"direction(s): ({D}, {3 * H})")
    signature = (cell, H, D, nonlinearity, attrs.get("linear_before_reset", 0), b is not None,
                 p is not None, w.dtype)
    weights = []
    perm = ONNX_TO_TORCH[cell]
    for d in range(D):
        w_ih, w_hh = permute_gates(w[d], perm), permute_gates(r[d], perm)
        b_ih = b_hh = None
        if b is not None:
            b_ih, b_hh = permute_gates(b[d, :G * H], perm), permute_gates(b[d, G * H:], perm)
        peepholes = None if p is None else permute_gates(p[d], PEEPHOLE_FROM_ONNX)
        weights.append((w_ih, w_hh, b_ih, b_hh, peepholes))
    return {"signature": signature, "input_size": w.shape[2], "weights": weights,
            "sequence_lens": inputs[4], "direction": direction, "layout": layout,
            "initial": initial}


def pair_reverse_nodes(graph, cells):
    """{id(reverse node): its forward partner}.  A forward and a reverse node of one
    signature reading the same X are the two halves of a bidirectional layer (how tf2onnx
    writes a Keras Bidirectional); a lone reverse node is a go_backwards layer."""
    partners = {}
    for node in cells:
        if attributes(graph.onnx, node).get("direction") != "reverse":
            continue
        spec = cell_spec(graph, node)
        for other in cells:
            if other is node or id(other) in partners.values():
                continue
            other_spec = cell_spec(graph, other)
            if other_spec["direction"] == "forward" and other.input[0] == node.input[0] and \
                    other_spec["signature"] == spec["signature"] and \
                    other_spec["sequence_lens"] == spec["sequence_lens"] and \
                    other_spec["layout"] == spec["layout"] and \
                    not other_spec["initial"] and not spec["initial"]:
                partners[id(node)] = other
                break
    return partners


def bidirectional_spec(forward, reverse):
    """One spec for a forward and a reverse node: a bidirectional layer."""
    cell, H, _, *options = forward["signature"]
    return {**forward, "signature": (cell, H, 2, *options),
            "weights": forward["weights"] + reverse["weights"], "direction": "bidirectional"}


def recurrent_layer(specs, batch_first):
    from .. import layers
    cell, H, D, nonlinearity, linear_before_reset, bias, peephole, dtype = specs[0]["signature"]
    kwargs = dict(input_size=int(specs[0]["input_size"]), hidden_size=H, num_layers=len(specs),
                  bias=bias, batch_first=batch_first, bidirectional=D == 2, dtype=dtype,
                  go_backwards=specs[0]["direction"] == "reverse")
    if cell == "RNN":
        layer = layers.RNN(nonlinearity=nonlinearity, **kwargs)
    elif cell == "LSTM":
        layer = layers.LSTM(peephole=peephole, **kwargs)
    else:
        layer = layers.GRU(reset_after=bool(linear_before_reset), **kwargs)
    params = {}
    for k, spec in enumerate(specs):
        for d, (w_ih, w_hh, b_ih, b_hh, peepholes) in enumerate(spec["weights"]):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            params[f"weight_ih{suffix}"], params[f"weight_hh{suffix}"] = w_ih, w_hh
            if bias:
                params[f"bias_ih{suffix}"], params[f"bias_hh{suffix}"] = b_ih, b_hh
            if peephole:
                params[f"weight_peephole{suffix}"] = peepholes
    layer.load_state_dict(params)
    return layer


def embedding_layer(table, dtype):
    """The rnnx.Embedding of a Gather's constant (num_embeddings, embedding_dim) table."""
    from ..embedding import Embedding
    layer = Embedding(table.shape[0], table.shape[1], dtype=dtype)
    layer.load_state_dict({"weight": table})
    return layer


def dense_layer(spec, dtype):
    from ..dense import Dense
    weight = spec["weight"]
    layer = Dense(weight.shape[1], weight.shape[0], activation=spec["activation"],
                  bias=spec["bias"] is not None, dtype=dtype)
    params = {"weight": weight}
    if spec["bias"] is not None:
        params["bias"] = np.broadcast_to(spec["bias"], (weight.shape[0],))
    layer.load_state_dict(params)
    return layer


def head_op(graph, node, items):
    """Fold a MatMul/Gemm/Add/activation node into the Dense specs at the end of items."""
    where = f"{node.op_type} node {node.name!r}"
    last = items[-1] if items else None
    open_dense = last is not None and last[0] == "dense" and last[1]["activation"] == "identity"
    if node.op_type == "MatMul":
        weight = graph.const(node.input[1], f"{where}: the weight")
        if weight.ndim != 2:
            raise ValueError(f"{where}: the weight must be 2-D (in, out), got {weight.shape}")
        items.append(("dense", {"weight": weight.T, "bias": None, "activation": "identity"}))
    elif node.op_type == "Gemm":
        attrs = attributes(graph.onnx, node)
        if attrs.get("transA", 0):
            raise ValueError(f"{where}: transA=1 is not supported")
        weight = graph.const(node.input[1], f"{where}: B")
        weight = (weight if attrs.get("transB", 0) else weight.T) * attrs.get("alpha", 1.0)
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = graph.const(node.input[2], f"{where}: C") * attrs.get("beta", 1.0)
        items.append(("dense", {"weight": weight, "bias": bias, "activation": "identity"}))
    elif node.op_type == "Add":
        consts = [i for i in node.input if graph.fold(i) is not None]
        if len(consts) != 1 or not open_dense or last[1]["bias"] is not None:
            raise ValueError(f"{where}: only a constant bias added right after a MatMul can be "
                             "imported")
        last[1]["bias"] = graph.const(consts[0], f"{where}: the bias").reshape(-1)
    else:
        if not open_dense:
            raise ValueError(f"{where}: an activation must follow a MatMul/Gemm (rnnx applies "
                             "activations in Dense layers)")
        last[1]["activation"] = ACTIVATIONS[node.op_type]

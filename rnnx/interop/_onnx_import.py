"""ONNX -> rnnx: a chain of RNN/LSTM/GRU nodes and Dense heads, with the glue around them.

What is read: the RNN/LSTM/GRU nodes on the way to the graph's first output, in graph
order.  Consecutive nodes of one kind and signature (hidden_size, direction, activation,
linear_before_reset, bias) whose X is computed from the previous node's Y fold into one rnnx
layer with num_layers; a forward and a reverse node reading the same X are one bidirectional
layer, a lone reverse node a go_backwards layer; MatMul or Gemm with a constant weight, a
constant Add after it, and a Sigmoid/Softmax/Tanh/Relu become rnnx.Dense layers.  The glue between them (Transpose,
Reshape, Squeeze, Unsqueeze, Concat, Slice, Gather, Shape, Expand, Constant, Cast, ...) is
what torch.onnx.export and rnnx.to_onnx emit; it is not matched op by op: instead the
imported model is checked against the graph itself, run by onnx's reference evaluator (its
RNN/LSTM/GRU nodes computed by rnnx.reference) on a random probe, so a graph whose glue does
something rnnx does not do is refused instead of imported wrong.  Whatever is computed from
constants alone (weights that torch.onnx.export(do_constant_folding=False) slices and
concatenates in the graph) is evaluated first.

A Gather (axis 0) of a constant 2-D table by an integer graph input, in front of the first
recurrent node (torch.onnx.export's nn.Embedding, rnnx.to_onnx's rnnx.Embedding), becomes an
rnnx.Embedding first layer: the model then takes ids.

The first output's last recurrent node decides many_to_one: an output computed from that
node's Y_h rather than its Y, or from its Y at the last step (Gather -1), is one output per
sequence.
"""
import os

import numpy as np

from ._common import ONNX_TO_TORCH, build, permute_gates, require
from ._onnx_verify import verify_import

_CELLS = ("RNN", "LSTM", "GRU")
_GLUE = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Slice", "Gather", "Shape",
         "Constant", "ConstantOfShape", "Expand", "Identity", "Cast", "Flatten"}
_ACTIVATIONS = {"Sigmoid": "sigmoid", "Softmax": "softmax", "Tanh": "tanh", "Relu": "relu"}
_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
_ZERO_PRESERVING = {"Expand", "Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze",
                    "Transpose", "Tile", "Flatten"}


class _Graph:
    """The graph's constants, producers and inputs."""

    def __init__(self, onnx, proto):
        self.onnx = onnx
        graph = proto.graph
        self.consts = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        self.producer = {}
        for node in graph.node:
            for out in node.output:
                self.producer[out] = node
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self._constant_value(node)
        for name, value in self.consts.items():
            if value.dtype in (np.float16,) or value.dtype.name == "bfloat16":
                raise TypeError(f"the graph holds {value.dtype} data ({name!r}); rnnx imports "
                                "float32 and float64 only (convert the model first)")
        self.inputs = [i for i in graph.input if i.name not in self.consts]
        self.outputs = [o.name for o in graph.output]
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                          onnx.defs.onnx_opset_version())
        self._folded = {}
        self.onnx_graph = graph

    def _constant_value(self, node):
        attr = node.attribute[0]
        value = self.onnx.helper.get_attribute_value(attr)
        if attr.name == "value":
            return self.onnx.numpy_helper.to_array(value)
        if attr.name in ("value_float", "value_int", "value_floats", "value_ints"):
            return np.asarray(value)
        raise ValueError(f"Constant node {node.name!r}: attribute {attr.name!r} is not supported")

    def ancestors(self, name):
        """Every node (by id) that the value `name` is computed from."""
        seen, stack, nodes = set(), [name], []
        while stack:
            value = stack.pop()
            node = self.producer.get(value)
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            nodes.append(node)
            stack.extend(i for i in node.input if i)
        return seen, nodes

    def fold(self, name):
        """The value of `name` if it is computed from constants alone (an initializer, a
        Constant node, or glue on them, as torch.onnx.export writes its weights without
        constant folding), else None.  Evaluated by onnx's reference evaluator, node by node."""
        if name in self.consts:
            return self.consts[name]
        if name in self._folded:
            return self._folded[name]
        self._folded[name] = None      # also breaks cycles
        node = self.producer.get(name)
        if node is None or node.op_type in _CELLS or node.domain not in ("", "ai.onnx"):
            return None
        inputs = [self.fold(i) if i else None for i in node.input]
        if any(v is None for i, v in zip(node.input, inputs) if i):
            return None
        from onnx.reference import ReferenceEvaluator
        evaluator = ReferenceEvaluator(node, opsets={"": self.opset})
        feeds = {i: v for i, v in zip(node.input, inputs) if i}
        for out, value in zip(node.output, evaluator.run(None, feeds)):
            self._folded[out] = np.asarray(value)
        return self._folded[name]

    def const(self, name, what):
        """The constant value behind `name`, or an error naming `what`."""
        value = self.fold(name)
        if value is None:
            raise ValueError(f"{what} ({name!r}) must be a constant (computed from initializers "
                             "and Constant nodes alone) to be imported")
        return value

    def is_zero(self, name):
        """Whether `name` is zeros, whatever its shape (torch.onnx.export builds the zero
        initial state as Expand(0, Shape(x)...))."""
        if not name:
            return True
        value = self.fold(name)
        if value is not None:
            return not np.any(value)
        node = self.producer.get(name)
        if node is None:
            return False
        if node.op_type == "ConstantOfShape":
            attrs = {a.name: a for a in node.attribute}
            return "value" not in attrs or not np.any(
                self.onnx.numpy_helper.to_array(attrs["value"].t))
        if node.op_type in _ZERO_PRESERVING:
            return self.is_zero(node.input[0])
        return False

    def source(self, name):
        """`name` traced back through Identity and Cast."""
        node = self.producer.get(name)
        while node is not None and node.op_type in ("Identity", "Cast"):
            name = node.input[0]
            node = self.producer.get(name)
        return name, node


def _decode(value):
    return value.decode() if isinstance(value, bytes) else value


def _attributes(onnx, node):
    """{name: value} of a node's attributes, strings decoded."""
    out = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        out[a.name] = [_decode(v) for v in value] if isinstance(value, list) else _decode(value)
    return out


def _cell_spec(graph, node):
    """The rnnx view of one RNN/LSTM/GRU node, or a ValueError naming what rnnx cannot express."""
    cell, where = node.op_type, f"{node.op_type} node {node.name!r}"
    attrs = _attributes(graph.onnx, node)
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
    if attrs.get("layout", 0):
        raise ValueError(f"{where}: layout=1 is not supported; use layout=0 with Transposes")
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
    if cell == "LSTM" and inputs[7]:
        raise ValueError(f"{where}: peepholes (input 'P') are not supported by rnnx")
    for slot, label in ((5, "initial_h"), (6, "initial_c")):
        if slot == 6 and cell != "LSTM":
            continue
        if not graph.is_zero(inputs[slot]):
            raise ValueError(f"{where}: a non-zero {label} ({inputs[slot]!r}) is not supported; "
                             "rnnx takes the initial state as a call argument, not in the model")
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
    signature = (cell, H, D, nonlinearity, attrs.get("linear_before_reset", 0), b is not None,
                 w.dtype)
    weights = []
    perm = ONNX_TO_TORCH[cell]
    for d in range(D):
        w_ih, w_hh = permute_gates(w[d], perm), permute_gates(r[d], perm)
        b_ih = b_hh = None
        if b is not None:
            b_ih, b_hh = permute_gates(b[d, :G * H], perm), permute_gates(b[d, G * H:], perm)
        weights.append((w_ih, w_hh, b_ih, b_hh))
    return {"signature": signature, "input_size": w.shape[2], "weights": weights,
            "sequence_lens": inputs[4], "direction": direction}


def _pair_reverse_nodes(graph, cells):
    """{id(reverse node): its forward partner}.  A forward and a reverse node of one
    signature reading the same X are the two halves of a bidirectional layer (how tf2onnx
    writes a Keras Bidirectional); a lone reverse node is a go_backwards layer."""
    partners = {}
    for node in cells:
        if _attributes(graph.onnx, node).get("direction") != "reverse":
            continue
        spec = _cell_spec(graph, node)
        for other in cells:
            if other is node or id(other) in partners.values():
                continue
            other_spec = _cell_spec(graph, other)
            if other_spec["direction"] == "forward" and other.input[0] == node.input[0] and \
                    other_spec["signature"] == spec["signature"] and \
                    other_spec["sequence_lens"] == spec["sequence_lens"]:
                partners[id(node)] = other
                break
    return partners


def _bidirectional_spec(forward, reverse):
    """One spec for a forward and a reverse node: a bidirectional layer."""
    cell, H, _, nonlinearity, linear_before_reset, bias, dtype = forward["signature"]
    return {**forward, "signature": (cell, H, 2, nonlinearity, linear_before_reset, bias, dtype),
            "weights": forward["weights"] + reverse["weights"], "direction": "bidirectional"}


def _recurrent_layer(specs, batch_first):
    from .. import layers
    cell, H, D, nonlinearity, linear_before_reset, bias, dtype = specs[0]["signature"]
    kwargs = dict(input_size=int(specs[0]["input_size"]), hidden_size=H, num_layers=len(specs),
                  bias=bias, batch_first=batch_first, bidirectional=D == 2, dtype=dtype,
                  go_backwards=specs[0]["direction"] == "reverse")
    if cell == "RNN":
        layer = layers.RNN(nonlinearity=nonlinearity, **kwargs)
    elif cell == "LSTM":
        layer = layers.LSTM(**kwargs)
    else:
        layer = layers.GRU(reset_after=bool(linear_before_reset), **kwargs)
    params = {}
    for k, spec in enumerate(specs):
        for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(spec["weights"]):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            params[f"weight_ih{suffix}"], params[f"weight_hh{suffix}"] = w_ih, w_hh
            if bias:
                params[f"bias_ih{suffix}"], params[f"bias_hh{suffix}"] = b_ih, b_hh
    layer.load_state_dict(params)
    return layer


def _embedding_layer(table, dtype):
    from ..embedding import Embedding
    layer = Embedding(table.shape[0], table.shape[1], dtype=dtype)
    layer.load_state_dict({"weight": table})
    return layer


def _dense_layer(spec, dtype):
    from ..dense import Dense
    weight = spec["weight"]
    layer = Dense(weight.shape[1], weight.shape[0], activation=spec["activation"],
                  bias=spec["bias"] is not None, dtype=dtype)
    params = {"weight": weight}
    if spec["bias"] is not None:
        params["bias"] = np.broadcast_to(spec["bias"], (weight.shape[0],))
    layer.load_state_dict(params)
    return layer


def _head_op(graph, node, items):
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
        attrs = _attributes(graph.onnx, node)
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
        last[1]["activation"] = _ACTIVATIONS[node.op_type]


def _structure(graph):
    """(layers, many_to_one, input name, lengths input name or None)."""
    y = graph.outputs[0]
    ids, _ = graph.ancestors(y)
    nodes = [n for n in graph.onnx_graph.node if id(n) in ids]
    # what is computed from constants alone (weights exported without constant folding) is
    # evaluated, whatever its operators
    nodes = [n for n in nodes if any(graph.fold(out) is None for out in n.output if out)]
    for node in nodes:
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"node {node.name!r} is in domain {node.domain!r}; rnnx imports the "
                             "default ONNX domain only")
        if node.op_type not in _GLUE and node.op_type not in _CELLS and \
                node.op_type not in ("MatMul", "Gemm", "Add") and node.op_type not in _ACTIVATIONS:
            raise ValueError(f"node {node.name!r}: operator {node.op_type!r} has no rnnx "
                             "counterpart")
    cells = [n for n in nodes if n.op_type in _CELLS]
    if not cells:
        raise ValueError("the graph has no RNN, LSTM or GRU node on the way to its first output "
                         f"{y!r} (torch.onnx.export's dynamo exporter unrolls nn.RNN into "
                         "MatMul/Tanh steps: export an nn.RNN with dynamo=False)")
    data_inputs = [i.name for i in graph.inputs]
    partners = _pair_reverse_nodes(graph, cells)
    halves = {id(forward): reverse for reverse in cells for forward in [partners.get(id(reverse))]
              if forward is not None}
    items = []   # ("cell", [spec, ...]) or ("dense", spec), in graph order
    previous = []
    lengths_name = None
    for node in nodes:
        if node.op_type in _CELLS and id(node) in partners:
            continue    # read with its forward partner
        if node.op_type in _CELLS:
            spec = _cell_spec(graph, node)
            pair = [node]
            if id(node) in halves:
                pair.append(halves[id(node)])
                spec = _bidirectional_spec(spec, _cell_spec(graph, pair[1]))
            if spec["sequence_lens"]:
                source, _ = graph.source(spec["sequence_lens"])
                if source not in data_inputs:
                    raise ValueError(f"{node.op_type} node {node.name!r}: sequence_lens must be a "
                                     "graph input (rnnx takes lengths as a call argument)")
                if lengths_name not in (None, source):
                    raise ValueError("the nodes' sequence_lens must all be one graph input")
                lengths_name = source
            spec["lengths"] = spec["sequence_lens"] and graph.source(spec["sequence_lens"])[0]
            fold = (items and items[-1][0] == "cell" and previous
                    and items[-1][1][-1]["signature"] == spec["signature"]
                    and items[-1][1][-1]["direction"] == spec["direction"]
                    and items[-1][1][-1]["lengths"] == spec["lengths"]
                    and any(id(p) in graph.ancestors(node.input[0])[0] for p in previous))
            if fold:
                items[-1][1].append(spec)
            else:
                items.append(("cell", [spec]))
            previous = pair
        elif node.op_type in ("MatMul", "Gemm", "Add") or node.op_type in _ACTIVATIONS:
            _head_op(graph, node, items)
            previous = []
    if any(spec["lengths"] != (lengths_name or "")
           for kind, specs in items if kind == "cell" for spec in specs):
        raise ValueError("sequence_lens must feed every recurrent node or none of them")
    # the input and its layout: x -> X of the first node, directly or through Transpose(1, 0, 2)
    first = cells[0]
    source, producer = graph.source(first.input[0])
    batch_first = False
    if producer is not None and producer.op_type == "Transpose":
        perm = list(_attributes(graph.onnx, producer).get("perm", []))
        if perm != [1, 0, 2]:
            raise ValueError(f"the first recurrent node's X comes through Transpose perm={perm}; "
                             "expected x itself or Transpose(perm=[1, 0, 2]) for batch-first x")
        source, producer = graph.source(producer.input[0])
        batch_first = True
    if producer is not None and producer.op_type == "Gather" and \
            graph.fold(producer.input[0]) is not None:      # a lookup table: an Embedding
        table = graph.fold(producer.input[0])
        axis = _attributes(graph.onnx, producer).get("axis", 0)
        if table.ndim != 2 or axis != 0 or table.dtype.kind != "f":
            raise ValueError(f"Gather node {producer.name!r} in front of the first recurrent node "
                             f"must look up rows (axis 0) of a 2-D float table to be an "
                             f"Embedding, got axis {axis} of a {table.dtype} {table.shape} table")
        items.insert(0, ("embedding", table))
        source, producer = graph.source(producer.input[1])
    if producer is not None or source not in data_inputs:
        raise ValueError("the first recurrent node's X must be a graph input (time-major), or one "
                         "Transpose(perm=[1, 0, 2]) of it (batch-first)")
    extra = [n for n in data_inputs if n not in (source, lengths_name)
             and any(n in node.input for node in nodes)]
    if extra:
        raise ValueError(f"graph inputs {extra} are not supported: rnnx models take x "
                         "(and lengths) only")
    # many_to_one: the output leaves the last node through Y_h, or Gather(-1) of Y
    last = cells[-1]
    consumed = {i for n in nodes for i in n.input}
    many_to_one = last.output[0] not in consumed or _takes_last_step(graph, nodes, last)
    return items, many_to_one, source, lengths_name, batch_first


def _takes_last_step(graph, nodes, last):
    """Whether a Gather(index -1) or Slice(starts -1) picks one step of the last node's Y."""
    after = [n for n in nodes if id(last) in graph.ancestors(n.output[0])[0]]
    for node in after:
        if node.op_type == "Gather" and graph.fold(node.input[1]) is not None:
            index = graph.fold(node.input[1])
            if index.ndim == 0 and int(index) == -1:
                return True
        if node.op_type == "Slice" and len(node.input) > 1 and \
                graph.fold(node.input[1]) is not None:
            starts = graph.fold(node.input[1])
            if starts.size == 1 and int(starts.reshape(-1)[0]) == -1:
                return True
    return False


def from_onnx(path_or_model, verify=True):
    """Import an ONNX model made of RNN/LSTM/GRU nodes and Dense heads into rnnx.

    Parameters
    ----------
    path_or_model : str, path-like or onnx.ModelProto
        A graph as ``rnnx.to_onnx`` or ``torch.onnx.export`` (``nn.RNN/LSTM/GRU`` stacks,
        ``nn.Linear`` heads) write it: x time-major, or batch-first through one
        ``Transpose(perm=[1, 0, 2])``; an optional int ``sequence_lens`` graph input fed to
        every node (rnnx's ``lengths``); zero or absent initial states.
    verify : bool
        Run the graph (onnx's reference evaluator) and the imported model on a random probe
        and raise if they differ.  Leave it on unless the graph is known to be rnnx's own.

    Returns
    -------
    An rnnx layer for a graph of one recurrent layer (a stack folds into ``num_layers``),
    else an rnnx.Sequential (Dense heads; ``many_to_one`` when the output is taken from the
    last node's Y_h or its last step).

    Raises
    ------
    ValueError
        What rnnx cannot express, named: LSTM ``clip``,
        ``input_forget``, peepholes ``P``, non-default ``activations``,
        ``activation_alpha``/``activation_beta``, ``layout=1``, a non-zero initial state,
        an operator or graph input with no rnnx counterpart, glue that does not verify.
    TypeError
        float16 (or any non float32/float64) data.

    Notes
    -----
    A ``direction="reverse"`` node imports as a ``go_backwards=True`` layer (y in time
    order, as ONNX's Y), unless a forward node of the same kind reads the same X: the two
    are then one bidirectional layer.

    Sequence length 0: onnxruntime returns zeros for Y, Y_h and Y_c of a row whose
    ``sequence_lens`` is 0, whether or not the node has an initial state.  rnnx returns
    zeros for its y and its initial state as its final state; the graphs imported start
    from zero states (a non-zero initial state is refused), so the imported model returns
    onnxruntime's zeros.
    """
    onnx = require("onnx")
    if isinstance(path_or_model, onnx.ModelProto):
        proto = path_or_model
    elif isinstance(path_or_model, (str, bytes, os.PathLike)):
        proto = onnx.load(os.fspath(path_or_model))
    else:
        raise TypeError(f"path_or_model must be a path or an onnx.ModelProto, got "
                        f"{type(path_or_model).__name__}")
    graph = _Graph(onnx, proto)
    for info in graph.inputs:
        elem = info.type.tensor_type.elem_type
        if elem in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16):
            raise TypeError(f"graph input {info.name!r} is float16/bfloat16; rnnx imports float32 "
                            "and float64 only")
    items, many_to_one, x_name, lengths_name, batch_first = _structure(graph)
    dtype = next(specs[0]["signature"][-1] for kind, specs in items if kind == "cell")
    layers = [_recurrent_layer(specs, batch_first) if kind == "cell" else
              _embedding_layer(specs, dtype) if kind == "embedding" else _dense_layer(specs, dtype)
              for kind, specs in items]
    model = build(layers, many_to_one)
    if verify:
        verify_import(onnx, proto, graph, model, x_name, lengths_name, batch_first, dtype)
    return model

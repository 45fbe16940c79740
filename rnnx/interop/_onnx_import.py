"""ONNX -> rnnx: a chain of RNN/LSTM/GRU nodes and Dense heads, with the glue around them.

What is read: the RNN/LSTM/GRU nodes on the way to the graph's outputs, in graph order.
Consecutive nodes of one kind and signature (hidden_size, direction, activation,
linear_before_reset, bias, peepholes) whose X is computed from the previous node's Y fold
into one rnnx layer with num_layers; a forward and a reverse node reading the same X are one bidirectional
layer, a lone reverse node a go_backwards layer; MatMul or Gemm with a constant weight, a
constant Add after it, and a Sigmoid/Softmax/Tanh/Relu become rnnx.Dense layers
(rnnx/interop/_onnx_cells.py).  The glue between them (Transpose, Reshape, Squeeze,
Unsqueeze, Concat, Slice, Gather, Expand, Constant, Cast, ..., and any integer arithmetic on
Shape outputs) is not matched op by op: instead the imported model is checked against the
graph itself, run by onnx's reference evaluator (its RNN/LSTM/GRU nodes computed by
rnnx.reference) on a random probe, so a graph whose glue does something rnnx does not do is
refused instead of imported wrong (rnnx/interop/_onnx_verify.py).  Whatever is computed from
constants alone (weights that torch.onnx.export(do_constant_folding=False) slices and
concatenates in the graph) is evaluated first.

The graph's inputs: x (the first node's X, directly, through Transpose(1, 0, 2), or with
layout=1: batch-first), lengths (every node's sequence_lens) and the state: a graph input
behind a node's initial_h / initial_c becomes that layer's state h / c (one input holding
the whole (L*D, B, H) of a stack, as torch's h0, or one (D, B, H) per node, concatenated).

A graph without recurrent nodes may be an nn.RNN that torch.onnx.export's dynamo exporter
unrolled into MatMul/Add/Tanh steps: rnnx/interop/_onnx_unrolled.py reads it back.

A Gather (axis 0) of a constant 2-D table by an integer graph input, in front of the first
recurrent node (torch.onnx.export's nn.Embedding, rnnx.to_onnx's rnnx.Embedding), becomes an
rnnx.Embedding first layer: the model then takes ids.

The first output's last recurrent node decides many_to_one: an output computed from that
node's Y_h rather than its Y is "state" (or no many_to_one at all: the layer returns its
final state anyway); one taken from its Y at the last step (Gather -1, Slice -1, GatherND of
lengths - 1) is "output".  Where both readings are possible the first that verifies wins.
"""
import os

import numpy as np

from ._common import build, require
from ._onnx_cells import ACTIVATIONS, bidirectional_spec, cell_spec, dense_layer, \
    embedding_layer, head_op, pair_reverse_nodes, recurrent_layer
from ._onnx_graph import CELLS, Graph, attributes
from ._onnx_verify import verify_import

_GLUE = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Slice", "Gather", "Shape",
         "Constant", "ConstantOfShape", "Expand", "Identity", "Cast", "Flatten", "GatherND",
         "GatherElements", "Split"}
_HEAD = {"MatMul", "Gemm", "Add"}


def _integer_types(onnx):
    tp = onnx.TensorProto
    return {tp.INT8, tp.INT16, tp.INT32, tp.INT64, tp.UINT8, tp.UINT16, tp.UINT32, tp.UINT64}


class _NoCells(ValueError):
    """The graph has no recurrent node (it may be an unrolled nn.RNN)."""


def _check_operators(graph, nodes):
    """ValueError naming a node whose operator rnnx has no counterpart for.  Arithmetic on
    sizes or on integer inputs (lengths - 1) is index work, checked by the verification."""
    integer = {i.name for i in graph.inputs
               if i.type.tensor_type.elem_type in _integer_types(graph.onnx)}
    for node in nodes:
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"node {node.name!r} is in domain {node.domain!r}; rnnx imports the "
                             "default ONNX domain only")
        if node.op_type in _GLUE or node.op_type in CELLS or node.op_type in _HEAD or \
                node.op_type in ACTIVATIONS:
            continue
        if all(graph.shape_only(out) or graph.data_sources(out) <= integer
               for out in node.output if out):
            continue     # the dynamo exporter's Mul of Shape outputs, to_onnx's lengths - 1
        raise ValueError(f"node {node.name!r}: operator {node.op_type!r} has no rnnx "
                         "counterpart")


def _items(graph, nodes, cells, data_inputs):
    """([("cell", [spec per stacked node]) or ("dense", spec)] in graph order, lengths input)."""
    partners = pair_reverse_nodes(graph, cells)
    halves = {id(forward): reverse for reverse in cells for forward in [partners.get(id(reverse))]
              if forward is not None}
    items = []
    previous = []
    lengths_name = None
    for node in nodes:
        if node.op_type in CELLS and id(node) in partners:
            continue    # read with its forward partner
        if node.op_type in CELLS:
            spec = cell_spec(graph, node)
            pair = [node]
            if id(node) in halves:
                pair.append(halves[id(node)])
                spec = bidirectional_spec(spec, cell_spec(graph, pair[1]))
            if spec["sequence_lens"]:
                source, _ = graph.source(spec["sequence_lens"])
                if source not in data_inputs:
                    raise ValueError(f"{node.op_type} node {node.name!r}: sequence_lens must be a "
                                     "graph input (rnnx takes lengths as a call argument)")
                if lengths_name not in (None, source):
                    raise ValueError("the nodes' sequence_lens must all be one graph input")
                lengths_name = source
            spec["lengths"] = spec["sequence_lens"] and graph.source(spec["sequence_lens"])[0]
            last = items[-1][1][-1] if items and items[-1][0] == "cell" else None
            fold = (last is not None and previous
                    and all(last[key] == spec[key]
                            for key in ("signature", "direction", "lengths", "layout"))
                    and any(id(p) in graph.ancestors(node.input[0])[0] for p in previous))
            if fold:
                items[-1][1].append(spec)
            else:
                items.append(("cell", [spec]))
            previous = pair
        elif node.op_type in _HEAD or node.op_type in ACTIVATIONS:
            head_op(graph, node, items)
            previous = []
    if any(spec["lengths"] != (lengths_name or "")
           for kind, specs in items if kind == "cell" for spec in specs):
        raise ValueError("sequence_lens must feed every recurrent node or none of them")
    return items, lengths_name


def _input(graph, first, data_inputs):
    """(x's graph input, batch_first, embedding table or None): x -> X of the first node,
    directly (time-major, or batch-first with layout=1) or through Transpose(perm=[1, 0, 2])
    (batch-first), either behind a Gather of a constant table (an Embedding: x is ids)."""
    source, producer = graph.source(first.input[0])
    batch_first = attributes(graph.onnx, first).get("layout", 0) == 1
    if producer is not None and producer.op_type == "Transpose" and not batch_first:
        perm = list(attributes(graph.onnx, producer).get("perm", []))
        if perm != [1, 0, 2]:
            raise ValueError(f"the first recurrent node's X comes through Transpose perm={perm}; "
                             "expected x itself or Transpose(perm=[1, 0, 2]) for batch-first x")
        source, producer = graph.source(producer.input[0])
        batch_first = True
    table = None
    if producer is not None and producer.op_type == "Gather" and \
            graph.fold(producer.input[0]) is not None:      # a lookup table: an Embedding
        table = graph.fold(producer.input[0])
        axis = attributes(graph.onnx, producer).get("axis", 0)
        if table.ndim != 2 or axis != 0 or table.dtype.kind != "f":
            raise ValueError(f"Gather node {producer.name!r} in front of the first recurrent node "
                             f"must look up rows (axis 0) of a 2-D float table to be an "
                             f"Embedding, got axis {axis} of a {table.dtype} {table.shape} table")
        source, producer = graph.source(producer.input[1])
    if producer is not None or source not in data_inputs:
        raise ValueError("the first recurrent node's X must be a graph input (time-major, or "
                         "batch-first with layout=1), or one Transpose(perm=[1, 0, 2]) of it "
                         "(batch-first), either of them after a Gather of a constant table by "
                         "ids (an Embedding)")
    return source, batch_first, table


def _state_inputs(items):
    """Per recurrent layer, {"inputs": {state name: [graph input or None per stacked node]},
    "layout": the nodes' layout} (no inputs: zeros)."""
    out = []
    for kind, specs in items:
        if kind != "cell":
            continue
        names = {}
        for state in ("h", "c"):
            per_node = [spec["initial"].get(state) for spec in specs]
            if any(per_node):
                names[state] = per_node
        out.append({"inputs": names, "layout": specs[0]["layout"]})
    return out


def _structure(graph):
    """(items, many_to_one candidates, x, lengths, state inputs, batch_first)."""
    first_ids, _ = graph.ancestors(graph.outputs[0])
    ids = set().union(*(graph.ancestors(out)[0] for out in graph.outputs))
    # what is computed from constants alone (weights exported without constant folding) is
    # evaluated, whatever its operators
    nodes = [n for n in graph.onnx_graph.node
             if id(n) in ids and any(graph.fold(out) is None for out in n.output if out)]
    _check_operators(graph, nodes)
    cells = [n for n in nodes if n.op_type in CELLS]
    if not cells:
        raise _NoCells(f"the graph has no RNN, LSTM or GRU node on the way to its outputs "
                       f"{graph.outputs}")
    data_inputs = [i.name for i in graph.inputs]
    items, lengths_name = _items(graph, nodes, cells, data_inputs)
    x_name, batch_first, table = _input(graph, cells[0], data_inputs)
    if table is not None:
        items.insert(0, ("embedding", table))
    states = _state_inputs(items)
    used = {x_name, lengths_name} | {name for layer in states
                                     for names in layer["inputs"].values() for name in names}
    extra = [n for n in data_inputs if n not in used and any(n in node.input for node in nodes)]
    if extra:
        raise ValueError(f"graph inputs {extra} are not supported: rnnx models take x, lengths "
                         "and the initial state (the nodes' initial_h/initial_c) only")
    first_nodes = [n for n in nodes if id(n) in first_ids]
    return items, _many_to_one(graph, first_nodes, items), x_name, lengths_name, states, \
        batch_first


def _many_to_one(graph, nodes, items):
    """The many_to_one values that may fit the first output, most likely first."""
    cells = [n for n in nodes if n.op_type in CELLS]
    if not cells:
        return [False]
    last = cells[-1]
    head = items[-1][0] == "dense"
    consumed = {i for n in nodes for i in n.input}
    if _takes_last_step(graph, nodes, last):
        return ["output", "state"]
    if last.output[0] not in consumed and last.output[0] != graph.outputs[0]:
        return ["state"] if head else [False, "state"]   # from Y_h (or Y_c)
    return [False]


def _takes_last_step(graph, nodes, last):
    """Whether one step of the last node's Y is picked: Gather(index -1), Slice(starts -1), or
    a GatherND/GatherElements whose indices come from a graph input (lengths - 1)."""
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
        if node.op_type in ("GatherND", "GatherElements") and graph.data_sources(node.input[1]):
            return True
    return False


def from_onnx(path_or_model, verify=True):
    """Import an ONNX model made of RNN/LSTM/GRU nodes and Dense heads into rnnx.

    Parameters
    ----------
    path_or_model : str, path-like or onnx.ModelProto
        A graph of RNN/LSTM/GRU nodes, as any exporter writes it (``rnnx.to_onnx``,
        ``torch.onnx.export`` of ``nn.RNN/LSTM/GRU`` stacks and ``nn.Linear`` heads, onnx's
        own node tests), or an ``nn.RNN`` the dynamo exporter unrolled into steps: x
        time-major, batch-first through one ``Transpose(perm=[1, 0, 2])`` or
        ``layout=1``; an optional int ``sequence_lens`` graph input fed to every
        node (rnnx's ``lengths``); initial states zero (built by any glue: Expand,
        ConstantOfShape, Slice, ...), absent, or graph inputs (rnnx's ``state``); any of Y,
        Y_h, Y_c as outputs.
    verify : bool
        Run the graph (onnx's reference evaluator) and the imported model on a random probe
        and raise if any graph output differs.  Leave it on unless the graph is known to be
        rnnx's own (without it, the most likely reading of many_to_one is taken).

    Returns
    -------
    An rnnx layer for a graph of one recurrent layer (a stack folds into ``num_layers``),
    else an rnnx.Sequential (Dense heads; ``many_to_one="state"`` when the output is taken
    from the last node's Y_h, ``"output"`` when from its Y at the last step).

    How the graph's values map to the model's call ``y, state = model(x, state, lengths)``:
    ``x`` and ``lengths`` are the graph inputs of the first node's X and of sequence_lens;
    a graph input behind the initial_h (initial_c) of a layer's nodes is its ``h`` (``c``),
    (L*D, B, H), in rnnx's state tuple (one entry per recurrent layer); the graph outputs
    are ``y`` (a node's raw Y (T, D, B, H) is ``y.reshape(T, B, D, H).transpose(0, 2, 1,
    3)``; with layout=1, (B, T, D, H), ``y.reshape(B, T, D, H)``) or the final states (Y_h,
    Y_c: the last D rows of ``h``, ``c``; transposed (1, 0, 2) with layout=1).

    Raises
    ------
    ValueError
        What rnnx cannot express, named: LSTM ``clip``, ``input_forget``, a ``P``
        (peepholes, imported as ``rnnx.LSTM(peephole=True)``) of the wrong shape,
        non-default ``activations``, ``activation_alpha``/``activation_beta``, a
        constant non-zero initial state (pass it as ``state=``), an operator or graph
        input with no rnnx counterpart, glue that does not verify.
    TypeError
        float16 (or any non float32/float64) data.

    Notes
    -----
    A ``direction="reverse"`` node imports as a ``go_backwards=True`` layer (y in time
    order, as ONNX's Y), unless a forward node of the same kind reads the same X: the two
    are then one bidirectional layer.

    Sequence length 0: onnxruntime returns zeros for Y, Y_h and Y_c of a row whose
    ``sequence_lens`` is 0, whether or not the node has an initial state.  rnnx returns
    zeros for its y and its initial state as its final state: the two agree from zero
    initial states, and differ for such a row only when a non-zero state is passed.
    """
    onnx = require("onnx")
    if isinstance(path_or_model, onnx.ModelProto):
        proto = path_or_model
    elif isinstance(path_or_model, (str, bytes, os.PathLike)):
        proto = onnx.load(os.fspath(path_or_model))
    else:
        raise TypeError(f"path_or_model must be a path or an onnx.ModelProto, got "
                        f"{type(path_or_model).__name__}")
    graph = Graph(onnx, proto)
    for info in graph.inputs:
        elem = info.type.tensor_type.elem_type
        if elem in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16):
            raise TypeError(f"graph input {info.name!r} is float16/bfloat16; rnnx imports float32 "
                            "and float64 only")
    try:
        items, candidates, x_name, lengths_name, states, batch_first = _structure(graph)
    except _NoCells as error:
        return _from_unrolled(onnx, proto, graph, error, verify)
    dtype = next(specs[0]["signature"][-1] for kind, specs in items if kind == "cell")
    failures = []
    for many_to_one in candidates:
        layers = [recurrent_layer(specs, batch_first) if kind == "cell" else
                  embedding_layer(specs, dtype) if kind == "embedding" else
                  dense_layer(specs, dtype) for kind, specs in items]
        model = build(layers, many_to_one)
        if not verify:
            return model
        failure = verify_import(onnx, proto, graph, model, x_name, lengths_name, states,
                                batch_first, dtype)
        if failure is None:
            return model
        failures.append(failure)
    raise ValueError(f"the graph computes something the imported rnnx model does not "
                     f"({failures[0]} on a probe): its glue between the recurrent nodes is not "
                     "the stacking, layout and heads rnnx expresses")


def _from_unrolled(onnx, proto, graph, error, verify):
    """The rnnx.RNN of a graph that torch.onnx.export's dynamo exporter unrolled from an
    nn.RNN (rnnx/interop/_onnx_unrolled.py), verified like any import, or a ValueError."""
    from ._onnx_unrolled import unrolled_rnn
    try:
        layers, x_name, states, heads = unrolled_rnn(graph, [i.name for i in graph.inputs])
    except ValueError as why:
        raise ValueError(f"{error}, and it is not an nn.RNN unrolled into MatMul/Add/Tanh "
                         f"steps by torch.onnx.export's dynamo exporter ({why})") from None
    models = layers
    if heads:     # a head on the last step, or on the final state: the same for a forward RNN
        models = [build([layer] + [dense_layer(spec, layer.dtype) for spec in heads],
                        many_to_one) for many_to_one in ("output", "state", False)
                  for layer in layers]
    for model in models if verify else models[:1]:
        if not verify or verify_import(onnx, proto, graph, model, x_name, None, states,
                                       model.batch_first, model.dtype) is None:
            return model
    raise ValueError(f"{error}; read as an nn.RNN unrolled by torch.onnx.export's dynamo "
                     "exporter it does not compute what the graph does (on a probe)")

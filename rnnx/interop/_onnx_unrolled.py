"""An nn.RNN that torch.onnx.export's dynamo exporter unrolled into MatMul/Add/Tanh steps, read
back as the rnnx.RNN it was.

What the exporter writes, per direction of each stacked layer (a "chain"):

    projection   P = X @ W_ih^T + b_ih                 one MatMul (+ Add) over all steps
    step t       h_t = act(h_{t-1} @ W_hh^T + b_hh + P[t])   act = Tanh or Relu
                 (P read through Slice/Squeeze, flipped by a Slice of step -1 for the
                 reverse direction; step 0 from a zero state folded to a constant)

Each step's Add tree gives its recurrent product (a MatMul with a constant weight), its
constants (b_hh) and its slice of a projection; the chains are ordered as their projections
appear, forward before reverse.  Nothing here is trusted: from_onnx runs the layer built from
these weights against the graph on a probe, as for any import.
"""
import numpy as np

_ACTS = {"Tanh": "tanh", "Relu": "relu"}
_PASS = ("Squeeze", "Unsqueeze", "Slice", "Gather", "Reshape", "Identity", "Cast")


def _add_leaves(graph, name):
    """The operands of the tree of Add nodes that computes `name`."""
    node = graph.producer.get(name)
    if node is None or node.op_type != "Add" or graph.fold(name) is not None:
        return [name]
    return [leaf for i in node.input for leaf in _add_leaves(graph, i)]


def _projection(graph, name):
    """(projection node, reversed) behind a step's slice of a projection, or (None, False)."""
    reverse = False
    node = graph.producer.get(name)
    while node is not None and node.op_type in _PASS:
        if node.op_type == "Slice" and len(node.input) > 4 and node.input[4]:
            steps = graph.fold(node.input[4])
            reverse ^= steps is not None and bool(np.any(steps < 0))
        node = graph.producer.get(node.input[0])
    if node is None or node.op_type not in ("Add", "MatMul"):
        return None, False
    return node, reverse


def _chains(graph):
    """{id(projection): chain dict} over every Tanh/Relu step of the graph."""
    chains = {}
    for node in graph.onnx_graph.node:
        if node.op_type not in _ACTS or graph.fold(node.output[0]) is not None:
            continue
        step = {"act": node.op_type, "w_hh": None, "h_prev": None, "b_hh": None, "proj": None}
        for leaf in _add_leaves(graph, node.input[0]):
            value = graph.fold(leaf)
            producer = graph.producer.get(leaf)
            if value is not None:
                if value.ndim == 1:
                    step["b_hh"] = value
            elif producer is not None and producer.op_type == "MatMul" and \
                    graph.fold(producer.input[1]) is not None:
                # the recurrent product h_{t-1} @ W_hh^T (a projection is read through a slice)
                step["w_hh"], step["h_prev"] = graph.fold(producer.input[1]), producer.input[0]
            else:
                step["proj"] = _projection(graph, leaf)
        if step["proj"] is None or step["proj"][0] is None:
            continue      # not a step: a head's activation
        step["node"] = node
        proj, reverse = step["proj"]
        chain = chains.setdefault(id(proj), {"proj": proj, "reverse": reverse, "steps": []})
        chain["steps"].append(step)
    return chains


def _chain_weights(graph, chain):
    """(w_ih, w_hh, b_ih, b_hh, nonlinearity, [h_{t-1} names], the projection's input) of one
    chain, weights in PyTorch's shapes (b_ih, b_hh None where the graph adds none)."""
    proj = chain["proj"]
    b_ih = None
    if proj.op_type == "Add":
        operands = [i for i in proj.input if graph.fold(i) is None]
        constants = [graph.fold(i) for i in proj.input if graph.fold(i) is not None]
        b_ih = constants[0].reshape(-1) if constants else None
        proj = graph.producer.get(operands[0]) if operands else None
    if proj is None or proj.op_type != "MatMul" or graph.fold(proj.input[1]) is None:
        raise ValueError("an input projection is not a MatMul with a constant weight")
    w_ih = graph.fold(proj.input[1]).T
    steps = chain["steps"]
    products = [s["w_hh"] for s in steps if s["w_hh"] is not None]
    if not products or any(not np.array_equal(p, products[0]) for p in products):
        raise ValueError("a chain of steps has no single recurrent weight (T = 1?)")
    acts = {s["act"] for s in steps}
    biases = [s["b_hh"] for s in steps if s["b_hh"] is not None]
    if len(acts) != 1 or any(not np.array_equal(b, biases[0]) for b in biases):
        raise ValueError("the steps of a chain differ in activation or bias")
    return (w_ih, products[0].T, b_ih, biases[0] if biases else None, _ACTS[acts.pop()],
            [s["h_prev"] for s in steps if s["h_prev"] is not None], proj.input[0])


def _heads(graph, chains):
    """The Dense specs (rnnx/interop/_onnx_cells.py) of the MatMul/Gemm/Add/activation nodes
    computed from the steps' outputs, in graph order."""
    from ._onnx_cells import ACTIVATIONS, head_op
    steps = {id(s["node"]) for c in chains for s in c["steps"]}
    before = set().union(*(graph.ancestors(i)[0] for c in chains for s in c["steps"]
                           for i in s["node"].input))
    items = [("cell", None)]
    for node in graph.onnx_graph.node:
        if id(node) in steps or id(node) in before or graph.fold(node.output[0]) is not None:
            continue
        if not steps & graph.ancestors(node.output[0])[0]:
            continue
        if node.op_type in ("MatMul", "Gemm", "Add") or node.op_type in ACTIVATIONS:
            head_op(graph, node, items)
    return [spec for _, spec in items[1:]]


def unrolled_rnn(graph, data_inputs):
    """([candidate rnnx.RNN layers], x input, states, [Dense specs of a head]) read from an
    unrolled nn.RNN, or a ValueError saying why the graph is not one."""
    from ..layers import RNN
    chains = sorted(_chains(graph).values(),
                    key=lambda c: [id(n) for n in graph.onnx_graph.node].index(id(c["proj"])))
    if not chains:
        raise ValueError("no Tanh/Relu steps")
    D = 2 if any(c["reverse"] for c in chains) else 1
    if len(chains) % D or [c["reverse"] for c in chains] != [False, True][:D] * (len(chains) // D):
        raise ValueError("the chains are not forward/reverse pairs")
    weights = [_chain_weights(graph, c) for c in chains]
    L, H = len(chains) // D, weights[0][1].shape[0]
    sources = graph.data_sources(weights[0][6])
    if len(sources) != 1:
        raise ValueError("the first projection does not read one graph input")
    x_name = sources.pop()
    state_inputs = set().union(*(graph.data_sources(h) for w in weights for h in w[5]))
    state_inputs -= {x_name}
    if len(state_inputs) > 1 or not state_inputs <= set(data_inputs):
        raise ValueError("the initial states do not come from one graph input")
    states = [{"inputs": {"h": [state_inputs.pop()]} if state_inputs else {}, "layout": 0}]
    bias = weights[0][2] is not None or weights[0][3] is not None
    dtype = weights[0][0].dtype
    params = {}
    for index, (w_ih, w_hh, b_ih, b_hh, _, _, _) in enumerate(weights):
        suffix = f"_l{index // D}" + ("_reverse" if index % D else "")
        params["weight_ih" + suffix], params["weight_hh" + suffix] = w_ih, w_hh
        if bias:
            zeros = np.zeros(H, dtype)
            params["bias_ih" + suffix] = zeros if b_ih is None else b_ih
            params["bias_hh" + suffix] = zeros if b_hh is None else b_hh
    nonlinearities = {w[4] for w in weights}
    if len(nonlinearities) != 1:
        raise ValueError("the layers differ in activation")
    candidates = []
    for batch_first in (False, True):     # x itself or transposed: the probe tells
        layer = RNN(weights[0][0].shape[1], H, L, bias=bias, batch_first=batch_first,
                    bidirectional=D == 2, dtype=dtype, nonlinearity=min(nonlinearities))
        layer.load_state_dict(params)
        candidates.append(layer)
    return candidates, x_name, states, _heads(graph, chains)

"""rnnx -> ONNX: one RNN/LSTM/GRU node per layer of a stack, Dense heads as MatMul + Add.

Graph inputs and outputs (T time, B batch, the two symbolic dimensions):

    x         float (T, B, I), or (B, T, I) for a batch_first model; for a model that begins
              with an rnnx.Embedding, int64 ids (T, B) or (B, T), looked up by a Gather
    h0, c0    only with to_onnx(..., state=True): the initial state of a single layer,
              (L*D, B, H) as rnnx takes it (c0: LSTM); node k reads its rows k*D:(k+1)*D
    h0_{j}, c0_{j}  the same for the j-th recurrent layer of a Sequential (j = 0, 1, ...)
    lengths   int32 (B,), only with to_onnx(..., lengths=True): every node's sequence_lens
    y         the model's output: (T, B, F) or (B, T, F) batch_first, (B, F) many_to_one
    h_n, c_n  final states of a single layer, (L*D, B, H) as rnnx returns them (c_n: LSTM)
    h_n_{j}, c_n_{j}  the same for the j-th recurrent layer of a Sequential (j = 0, 1, ...)

So the inputs are x, the initial states in the order of rnnx's state tuple, lengths; the
outputs y, then the final states in the same order: a file written with state=True streams
in onnxruntime chunk by chunk, each call's final states fed back as the next one's initial.

Within a layer, node k of the stack (layer k) takes X (T, B, I_k) and gives Y (T, D, B, H);
Transpose(0, 2, 1, 3) + Reshape(0, 0, -1) turns it into (T, B, D*H), the next node's X.  The
Y_h (D, B, H) of the L nodes are concatenated into h_n.  batch_first becomes explicit
Transposes at the input and the output (onnxruntime rejects the nodes' layout=1).
"""
import numpy as np

from ..model import quantized_type
from ._common import PEEPHOLE_TO_ONNX, TORCH_TO_ONNX, as_layers, cell_name, is_recurrent, \
    permute_gates, refuse_projection, require

DEFAULT_OPSET = 17
MIN_OPSET = 14          # the RNN/LSTM/GRU definitions with `layout`; Reshape, Squeeze as today

_ACTIVATION_OPS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softmax": "Softmax"}


class _Builder:
    """Collects nodes and initializers under unique names."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.dtype = np.dtype(dtype)
        self.nodes, self.initializers = [], []
        self._count = 0

    def name(self, stem):
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem, array):
        name = self.name(stem)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, n_out=1, output_names=None, **attrs):
        outputs = output_names or [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outputs, name=self.name(op),
                                                     **attrs))
        return outputs if n_out > 1 else outputs[0]


def _recurrent(b, layer, x, lengths, index, initial):
    """Nodes of one rnnx recurrent layer: x (T, B, I) -> (y (T, B, D*H), [h_n, c_n], last Y_h).
    initial: the graph inputs [h0, c0] of its initial state (L*D, B, H), or None (zeros)."""
    cell = cell_name(layer)
    H, D, L = layer.hidden_size, layer.num_directions, layer.num_layers
    params = layer.state_dict()
    perm = TORCH_TO_ONNX[cell]
    finals = [[], []]   # Y_h, Y_c of every node
    y_h = None
    for k in range(L):
        suffixes = [f"_l{k}", f"_l{k}_reverse"][:D]
        w = np.stack([permute_gates(params["weight_ih" + s], perm) for s in suffixes])
        r = np.stack([permute_gates(params["weight_hh" + s], perm) for s in suffixes])
        inputs = [x, b.const(f"W{index}_{k}", w.astype(b.dtype)),
                  b.const(f"R{index}_{k}", r.astype(b.dtype))]
        if layer.bias:
            bias = np.stack([np.concatenate([permute_gates(params["bias_ih" + s], perm),
                                             permute_gates(params["bias_hh" + s], perm)])
                             for s in suffixes])
            inputs.append(b.const(f"B{index}_{k}", bias.astype(b.dtype)))
        else:
            inputs.append("")
        inputs.append(lengths or "")
        for state in initial or []:       # node k's rows of the layer's state
            if L > 1:
                rows = [b.const("start", np.array([k * D], np.int64)),
                        b.const("end", np.array([(k + 1) * D], np.int64)),
                        b.const("axis", np.array([0], np.int64))]
                state = b.node("Slice", [state, *rows])
            inputs.append(state)
        if getattr(layer, "peephole", False):
            # P (D, 3H), input 7 (after initial_h, initial_c, "" where absent), in ONNX's
            # order [p_i p_o p_f]
            p = np.stack([permute_gates(params["weight_peephole" + s], PEEPHOLE_TO_ONNX)
                          for s in suffixes])
            inputs += [""] * (7 - len(inputs)) + [b.const(f"P{index}_{k}", p.astype(b.dtype))]
        attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else
                 "reverse" if layer.go_backwards else "forward"}
        if cell == "RNN":
            attrs["activations"] = ["Tanh" if layer.nonlinearity == "tanh" else "Relu"] * D
        if cell == "GRU":
            attrs["linear_before_reset"] = int(layer.reset_after)
        n_out = 3 if cell == "LSTM" else 2
        outs = b.node(cell, inputs, n_out=n_out, **attrs)
        y4, y_h = outs[0], outs[1]
        finals[0].append(y_h)
        if cell == "LSTM":
            finals[1].append(outs[2])
        # (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H)
        tbdh = b.node("Transpose", [y4], perm=[0, 2, 1, 3])
        x = b.node("Reshape", [tbdh, b.const("shape", np.array([0, 0, -1], np.int64))])
    states = [f[0] if len(f) == 1 else b.node("Concat", f, axis=0) for f in finals if f]
    return x, states, y_h


def _state_names(layer, j, alone, suffix):
    """["h<suffix>", "c<suffix>"] (LSTM) or ["h<suffix>"], with "_{j}" in a Sequential."""
    names = [f"{name}{suffix}" for name in layer.state_names]
    return names if alone else [f"{name}_{j}" for name in names]


def _embedding(b, layer, x, index):
    """Gather(table, ids) on axis 0: ids (...) int64 -> (..., embedding_dim)."""
    table = b.const(f"embedding{index}", layer.state_dict()["weight"].astype(b.dtype))
    return b.node("Gather", [table, x], axis=0)


def _dense(b, layer, x, index):
    params = layer.state_dict()
    y = b.node("MatMul", [x, b.const(f"weight{index}", params["weight"].T.astype(b.dtype))])
    if layer.bias:
        y = b.node("Add", [y, b.const(f"bias{index}", params["bias"].astype(b.dtype))])
    if layer.activation == "softmax":
        y = b.node("Softmax", [y], axis=-1)
    elif layer.activation != "identity":
        y = b.node(_ACTIVATION_OPS[layer.activation], [y])
    return y


def _last_output(b, y, lengths):
    """many_to_one="output": y (T, B, F) at each row's last valid step -> (B, F).  A row of
    length 0 reads step -1, the last one, which is zeros like all its steps."""
    if not lengths:
        return b.node("Gather", [y, b.const("last", np.array(-1, np.int64))], axis=0)
    last = b.node("Sub", [b.node("Cast", [lengths], to=b.onnx.TensorProto.INT64),
                          b.const("one", np.array(1, np.int64))])
    index = b.node("Unsqueeze", [last, b.const("axis", np.array([1], np.int64))])   # (B, 1)
    btf = b.node("Transpose", [y], perm=[1, 0, 2])
    return b.node("GatherND", [btf, index], batch_dims=1)


def to_onnx(model, path=None, opset=DEFAULT_OPSET, lengths=False, state=False):
    """Export an rnnx layer or Sequential to an ONNX model.

    Parameters
    ----------
    model : rnnx.RNN, LSTM, GRU, Dense, Embedding or Sequential
        RNN (tanh or relu), LSTM, GRU (``reset_after`` becomes ``linear_before_reset``),
        stacked and bidirectional (``go_backwards`` becomes ``direction="reverse"``),
        ``batch_first``, Dense heads with any activation, a Sequential's
        ``many_to_one`` ("state": the last node's Y_h; "output": Y at each row's last
        valid step, a Gather or, with lengths, a GatherND), and an Embedding first (a
        Gather of int64 ids; its padding_idx, which only training uses, is not stored).
    path : str or path-like, optional
        Where to write the ``.onnx`` file; None writes nothing.
    opset : int
        The default-domain opset, from 14 to the installed onnx's newest.
    lengths : bool
        Add a graph input ``lengths`` (int32, (B,)) fed to every node's ``sequence_lens``:
        the same semantics as rnnx's ``lengths`` (zeros at padded steps, final states at
        each row's last valid step).  A row of length 0: onnxruntime returns zeros for its
        Y, Y_h and Y_c, which is what rnnx returns from the zero initial state the graph
        starts from (rnnx's final state of such a row is its initial state).
    state : bool
        Add the initial states as graph inputs after x (``h0``, ``c0`` for one layer,
        ``h0_{j}``, ``c0_{j}`` for the j-th recurrent layer of a Sequential, each
        (L*D, B, H), in the order of rnnx's state tuple), so the file streams: feed each
        call's final states (the outputs after y, in the same order) to the next call.
        A row of length 0 then differs: onnxruntime returns zeros as its final state,
        rnnx its initial state.

    Returns
    -------
    onnx.ModelProto
        A model that passes ``onnx.checker.check_model``.  Inputs ``x`` (and ``lengths``);
        outputs ``y`` then the final states (``h_n``, ``c_n`` for one layer, ``h_n_{j}``,
        ``c_n_{j}`` for the j-th recurrent layer of a Sequential), described in
        ``rnnx.interop._onnx_export``'s docstring.
    """
    qtype = quantized_type(model)
    if qtype:   # before onnx is needed: the same answer whether or not it is installed
        raise TypeError(f"model is a quantized model ({qtype}, made by rnnx.quantize), which "
                        f"to_onnx cannot export (ONNX's RNN operators take float weights): "
                        f"export the float model it was made from")
    layers, many_to_one = as_layers(model)
    refuse_projection(layers, "ONNX's LSTM operator")
    onnx = require("onnx")
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset must be an int in [{MIN_OPSET}, "
                         f"{onnx.defs.onnx_opset_version()}], got {opset!r}")
    dtype = np.dtype(layers[0].dtype)
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    b = _Builder(onnx, dtype)
    recurrent = [i for i, layer in enumerate(layers) if is_recurrent(layer)]
    batch_first = bool(recurrent) and layers[recurrent[0]].batch_first
    first = layers[0]
    ids = type(first).__name__ == "Embedding"       # x is int64 ids: no feature axis
    size_in = first.input_size if is_recurrent(first) else first.in_features if not ids else None
    if recurrent:
        x_shape = ["B", "T", size_in] if batch_first else ["T", "B", size_in]
    else:
        x_shape = ["N", size_in]
    x_shape = x_shape[:-1] if ids else x_shape
    graph_inputs = [onnx.helper.make_tensor_value_info(
        "x", onnx.TensorProto.INT64 if ids else elem, x_shape)]
    if lengths:
        if not recurrent:
            raise ValueError("lengths=True needs a recurrent layer, the model has only Dense "
                             "layers")
        graph_inputs.append(onnx.helper.make_tensor_value_info("lengths", onnx.TensorProto.INT32,
                                                               ["B"]))
    initial = {}
    if state:
        for j, index in enumerate(recurrent):
            layer = layers[index]
            names = _state_names(layer, j, len(layers) == 1, "0")
            shape = [layer.num_layers * layer.num_directions, "B", layer.hidden_size]
            initial[index] = names
            for name in names:
                graph_inputs.insert(len(graph_inputs) - bool(lengths),
                                    onnx.helper.make_tensor_value_info(name, elem, shape))
    x = _embedding(b, first, "x", 0) if ids else "x"
    if batch_first:
        x = b.node("Transpose", [x], perm=[1, 0, 2])
    states = []
    for index, layer in enumerate(layers):
        if ids and index == 0:
            continue                                # the Gather above
        if is_recurrent(layer):
            x, layer_states, y_h = _recurrent(b, layer, x, "lengths" if lengths else None, index,
                                              initial.get(index))
            states.append((index, layer_states))
            if many_to_one == "output" and index == recurrent[-1]:
                x = _last_output(b, x, "lengths" if lengths else None)
            elif many_to_one and index == recurrent[-1]:
                # the last node's Y_h (D, B, H) -> (B, D, H) -> (B, D*H): rnnx's last step
                bdh = b.node("Transpose", [y_h], perm=[1, 0, 2])
                x = b.node("Reshape", [bdh, b.const("shape", np.array([0, -1], np.int64))])
        else:
            x = _dense(b, layer, x, index)
    if batch_first and not many_to_one:
        x = b.node("Transpose", [x], perm=[1, 0, 2])
    b.node("Identity", [x], output_names=["y"])
    last = layers[-1]
    width = last.output_size
    if many_to_one:
        y_shape = ["B", width]
    elif recurrent:
        y_shape = x_shape[:2] + [width]
    else:
        y_shape = ["N", width]
    outputs = [onnx.helper.make_tensor_value_info("y", elem, y_shape)]
    for j, (index, layer_states) in enumerate(states):
        layer = layers[index]
        names = _state_names(layer, j, len(layers) == 1, "_n")
        state_shape = [layer.num_layers * layer.num_directions, "B", layer.hidden_size]
        for name, state in zip(names, layer_states):
            b.node("Identity", [state], output_names=[name])
            outputs.append(onnx.helper.make_tensor_value_info(name, elem, state_shape))
    graph = onnx.helper.make_graph(b.nodes, "rnnx", graph_inputs, outputs, b.initializers)
    opsets = [onnx.helper.make_opsetid("", int(opset))]
    proto = onnx.helper.make_model(
        graph, opset_imports=opsets, producer_name="rnnx",
        # the oldest IR version that holds this opset, so older runtimes load the file
        ir_version=onnx.helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save(proto, path)
    return proto

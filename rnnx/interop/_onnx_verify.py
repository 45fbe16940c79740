"""The check behind rnnx.from_onnx: the graph and the imported model run on one random probe.

onnx's reference evaluator runs the graph (its glue ops as ONNX defines them), with its
RNN/LSTM/GRU nodes computed by rnnx.reference, the NumPy twin, because the evaluator's own
cells ignore direction, sequence_lens and activations.  The imported model runs through the
C core, from the state the graph's initial-state inputs hold.  Every graph output must be
one of the model's results (y or a final state) in one of the layouts ONNX writes them; a
difference means the glue does something rnnx does not express.
"""
import numpy as np

from ._common import ONNX_TO_TORCH, PEEPHOLE_FROM_ONNX, permute_gates
from ._onnx_graph import attributes

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def reference_ops(OpRun):
    """RNN/LSTM/GRU for onnx's reference evaluator, computed by rnnx.reference (the
    evaluator's own ignore direction, sequence_lens and activations)."""
    from .. import reference
    import onnx

    def run(self, cell, X, W, R, B, sequence_lens, initial_h, initial_c=None, P=None):
        attrs = attributes(onnx, self.onnx_node)
        layout = attrs.get("layout", 0)
        if layout:       # (B, T, I) and (B, D, H) -> time-major, and back at the end
            X = np.swapaxes(X, 0, 1)
            initial_h = None if initial_h is None else np.swapaxes(initial_h, 0, 1)
            initial_c = None if initial_c is None else np.swapaxes(initial_c, 0, 1)
        D, T, batch = W.shape[0], X.shape[0], X.shape[1]
        H = R.shape[-1]
        G = _GATES[cell]
        perm = ONNX_TO_TORCH[cell]
        lengths = None if sequence_lens is None else np.asarray(sequence_lens, np.int64)
        Y = np.zeros((T, D, batch, H), X.dtype)
        Y_h = np.zeros((D, batch, H), X.dtype)
        Y_c = np.zeros((D, batch, H), X.dtype)
        for d in range(D):
            w_ih, w_hh = permute_gates(W[d], perm), permute_gates(R[d], perm)
            b_ih = b_hh = None
            if B is not None:
                b_ih, b_hh = permute_gates(B[d, :G * H], perm), permute_gates(B[d, G * H:], perm)
            h0 = np.zeros((batch, H), X.dtype) if initial_h is None else initial_h[d]
            reverse = d == 1 or attrs.get("direction") == "reverse"
            if cell == "RNN":
                nonlinearity = attrs.get("activations", ["Tanh"])[0].lower()
                Y[:, d], Y_h[d], _ = reference.rnn_forward(X, h0, w_ih, w_hh, b_ih, b_hh,
                                                           nonlinearity, lengths, reverse)
            elif cell == "LSTM":
                c0 = np.zeros((batch, H), X.dtype) if initial_c is None else initial_c[d]
                peepholes = None if P is None else permute_gates(P[d], PEEPHOLE_FROM_ONNX)
                Y[:, d], Y_h[d], Y_c[d], _ = reference.lstm_forward(
                    X, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, w_peephole=peepholes)
            else:
                reset_after = bool(attrs.get("linear_before_reset", 0))
                Y[:, d], Y_h[d], _ = reference.gru_forward(X, h0, w_ih, w_hh, b_ih, b_hh,
                                                           reset_after, lengths, reverse)
        if layout:       # Y (B, T, D, H), Y_h and Y_c (B, D, H)
            Y, Y_h, Y_c = Y.transpose(2, 0, 1, 3), np.swapaxes(Y_h, 0, 1), np.swapaxes(Y_c, 0, 1)
        return (Y, Y_h, Y_c)[:len(self.onnx_node.output)]

    class RNN(OpRun):
        op_domain = ""

        def _run(self, X, W, R, B=None, sequence_lens=None, initial_h=None, **_):
            return run(self, "RNN", X, W, R, B, sequence_lens, initial_h)

    class LSTM(OpRun):
        op_domain = ""

        def _run(self, X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None,
                 P=None, **_):
            return run(self, "LSTM", X, W, R, B, sequence_lens, initial_h, initial_c, P)

    class GRU(OpRun):
        op_domain = ""

        def _run(self, X, W, R, B=None, sequence_lens=None, initial_h=None, **_):
            return run(self, "GRU", X, W, R, B, sequence_lens, initial_h)

    return [RNN, LSTM, GRU]


def _dims(info):
    """A graph input's dimensions: an int, a symbol's name, or None."""
    return [d.dim_value if d.dim_value > 0 else (d.dim_param or None)
            for d in info.type.tensor_type.shape.dim]


def model_state(model, states, feeds):
    """The model's state argument from the graph's initial-state inputs in feeds: per
    recurrent layer, a whole (L*D, B, H) input or one (D, B, H) per node, concatenated
    ((B, ., H) with layout=1); zeros where the graph has none.  None if it has none at all."""
    from ._common import is_recurrent
    if not any(layer["inputs"] for layer in states):
        return None
    recurrent = [layer for layer in getattr(model, "layers", [model]) if is_recurrent(layer)]
    out = []
    for layer, spec in zip(recurrent, states):
        parts = []
        for name in layer.state_names:
            inputs = spec["inputs"].get(name)
            if inputs is None:
                parts.append(None)
                continue
            arrays = [np.asarray(feeds[n]) for n in inputs]
            if spec["layout"]:
                arrays = [np.swapaxes(a, 0, 1) for a in arrays]
            parts.append(arrays[0] if len(set(inputs)) == 1 else np.concatenate(arrays))
        if all(p is None for p in parts):
            out.append(None)
            continue
        B = next(p for p in parts if p is not None).shape[1]
        zeros = layer.zero_state(B)
        zeros = zeros if isinstance(zeros, tuple) else (zeros,)
        parts = [z if p is None else p for p, z in zip(parts, zeros)]
        out.append(tuple(parts) if len(parts) > 1 else parts[0])
    return tuple(out) if hasattr(model, "layers") else out[0]


def _views(model, y, state):
    """Every form a graph output may take of the model's results: y, its raw ONNX Y
    (T, D, B, H) or (B, T, D, H), each final state whole, its last node's rows (Y_h, Y_c),
    and those transposed as layout=1 writes them."""
    from ._common import is_recurrent
    views = [y]
    recurrent = [layer for layer in getattr(model, "layers", [model]) if is_recurrent(layer)]
    last = getattr(model, "layers", [model])[-1]
    if y.ndim == 3 and is_recurrent(last):
        D = last.num_directions
        a, b, width = y.shape
        views.append(y.reshape(a, b, D, width // D))
        views.append(views[-1].transpose(0, 2, 1, 3))
    states = state if hasattr(model, "layers") else (state,)
    for layer, layer_state in zip(recurrent, states):
        for s in layer_state if isinstance(layer_state, tuple) else (layer_state,):
            for part in (s, s[-layer.num_directions:]):
                views += [part, np.swapaxes(part, 0, 1)]
    return views


def _probe_value(info, sizes, rng, dtype):
    """Random values of a graph input's shape, its symbolic dimensions from sizes."""
    dims = [d if isinstance(d, int) else sizes.get(d, sizes["B"]) for d in _dims(info)]
    return rng.standard_normal(dims).astype(dtype)


def verify_import(onnx, proto, graph, model, x_name, lengths_name, states, batch_first, dtype):
    """Run the graph and the imported model on one random probe: None if every graph output
    is one of the model's results, else what differs."""
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun
    infos = {i.name: i for i in graph.inputs}
    dims = _dims(infos[x_name])
    ids = getattr(model, "takes_ids", False)         # an Embedding first: x is (T, B) ids
    if len(dims) != 3 - ids:
        raise ValueError(f"graph input {x_name!r} must be {3 - ids}-D (a sequence batch"
                         f"{' of ids' if ids else ''}), got {len(dims)} dimensions")
    time_axis, batch_axis = (1, 0) if batch_first else (0, 1)
    T = dims[time_axis] if isinstance(dims[time_axis], int) else 4
    # a fixed batch size: x's, or that of an initial-state input (torch's h0 without its
    # own dynamic axis), else 3
    fixed = [dims[batch_axis]] + [_dims(infos[name])[1 - layer["layout"]]
                                  for layer in states for names in layer["inputs"].values()
                                  for name in names if len(_dims(infos[name])) == 3]
    B = next((d for d in fixed if isinstance(d, int)), 3)
    sizes = {"B": B, dims[time_axis]: T, dims[batch_axis]: B}
    shape = [0, 0] if ids else [0, 0, model.input_size]
    shape[time_axis], shape[batch_axis] = T, B
    rng = np.random.default_rng(0)
    if ids:
        elem = infos[x_name].type.tensor_type.elem_type
        x = rng.integers(0, model.input_size, shape).astype(
            onnx.helper.tensor_dtype_to_np_dtype(elem))
    else:
        x = rng.standard_normal(shape).astype(dtype)
    feeds = {x_name: x}
    lengths = None
    if lengths_name is not None:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0] = T
        elem = infos[lengths_name].type.tensor_type.elem_type
        feeds[lengths_name] = lengths.astype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    for layer in states:
        for names in layer["inputs"].values():
            for name in names:
                if name not in feeds:
                    feeds[name] = _probe_value(infos[name], sizes, rng, dtype)
    try:
        expected = ReferenceEvaluator(proto, new_ops=reference_ops(OpRun)).run(None, feeds)
        y, state = model(feeds[x_name], state=model_state(model, states, feeds), lengths=lengths)
    except (ValueError, TypeError, RuntimeError) as error:
        return f"the probe does not run: {error}"
    views = _views(model, y, state)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    for name, want in zip(graph.outputs, expected):
        want = np.asarray(want)
        if not any(v.shape == want.shape and np.allclose(v, want, rtol=tol, atol=tol)
                   for v in views):
            same = [v for v in views if v.shape == want.shape]
            detail = (f"largest difference {min(np.max(np.abs(v - want)) for v in same):.3g}"
                      if same else f"shape {want.shape} against {y.shape}")
            return f"graph output {name!r}: {detail}"
    return None

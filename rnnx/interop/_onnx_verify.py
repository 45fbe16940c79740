"""The check behind rnnx.from_onnx: the graph and the imported model run on one random probe.

onnx's reference evaluator runs the graph (its glue ops as ONNX defines them), with its
RNN/LSTM/GRU nodes computed by rnnx.reference, the NumPy twin, because the evaluator's own
cells ignore direction, sequence_lens and activations.  The imported model runs through the
C core.  A difference means the glue does something rnnx does not express.
"""
import numpy as np

from ._common import ONNX_TO_TORCH, permute_gates

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def _decode(value):
    return value.decode() if isinstance(value, bytes) else value


def _attribute(attr):
    from onnx.helper import get_attribute_value
    value = get_attribute_value(attr)
    return [_decode(v) for v in value] if isinstance(value, list) else _decode(value)


def reference_ops(OpRun):
    """RNN/LSTM/GRU for onnx's reference evaluator, computed by rnnx.reference (the
    evaluator's own ignore direction, sequence_lens and activations)."""
    from .. import reference

    def run(self, cell, X, W, R, B, sequence_lens, initial_h, initial_c=None):
        attrs = {a.name: _attribute(a) for a in self.onnx_node.attribute}
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
                Y[:, d], Y_h[d], Y_c[d], _ = reference.lstm_forward(
                    X, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse)
            else:
                reset_after = bool(attrs.get("linear_before_reset", 0))
                Y[:, d], Y_h[d], _ = reference.gru_forward(X, h0, w_ih, w_hh, b_ih, b_hh,
                                                           reset_after, lengths, reverse)
        return (Y, Y_h, Y_c)[:len(self.onnx_node.output)]

    class RNN(OpRun):
        op_domain = ""

        def _run(self, X, W, R, B=None, sequence_lens=None, initial_h=None, **_):
            return run(self, "RNN", X, W, R, B, sequence_lens, initial_h)

    class LSTM(OpRun):
        op_domain = ""

        def _run(self, X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None,
                 P=None, **_):
            return run(self, "LSTM", X, W, R, B, sequence_lens, initial_h, initial_c)

    class GRU(OpRun):
        op_domain = ""

        def _run(self, X, W, R, B=None, sequence_lens=None, initial_h=None, **_):
            return run(self, "GRU", X, W, R, B, sequence_lens, initial_h)

    return [RNN, LSTM, GRU]


def verify_import(onnx, proto, graph, model, x_name, lengths_name, batch_first, dtype):
    """Run the graph and the imported model on one random probe; refuse if they differ."""
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun
    x_info = next(i for i in graph.inputs if i.name == x_name)
    dims = [d.dim_value if d.dim_value > 0 else None for d in x_info.type.tensor_type.shape.dim]
    ids = getattr(model, "takes_ids", False)         # an Embedding first: x is (T, B) ids
    if len(dims) != 3 - ids:
        raise ValueError(f"graph input {x_name!r} must be {3 - ids}-D (a sequence batch"
                         f"{' of ids' if ids else ''}), got {len(dims)} dimensions")
    time_axis, batch_axis = (1, 0) if batch_first else (0, 1)
    T, B = dims[time_axis] or 4, dims[batch_axis] or 3
    shape = [0, 0] if ids else [0, 0, model.input_size]
    shape[time_axis], shape[batch_axis] = T, B
    rng = np.random.default_rng(0)
    if ids:
        elem = x_info.type.tensor_type.elem_type
        x = rng.integers(0, model.input_size, shape).astype(
            onnx.helper.tensor_dtype_to_np_dtype(elem))
    else:
        x = rng.standard_normal(shape).astype(dtype)
    feeds = {x_name: x}
    lengths = None
    if lengths_name is not None:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0] = T
        elem = next(i for i in graph.inputs if i.name == lengths_name).type.tensor_type.elem_type
        feeds[lengths_name] = lengths.astype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    expected = ReferenceEvaluator(proto, new_ops=reference_ops(OpRun)).run(
        [graph.outputs[0]], feeds)[0]
    got = model(x, lengths=lengths)[0] if lengths is not None else model(x)[0]
    tol = 1e-4 if dtype == np.float32 else 1e-9
    if expected.shape != got.shape or not np.allclose(got, expected, rtol=tol, atol=tol):
        detail = (f"shape {got.shape} against {expected.shape}" if expected.shape != got.shape
                  else f"largest difference {np.max(np.abs(got - expected)):.3g}")
        raise ValueError(f"the graph computes something the imported rnnx model does not ({detail}"
                         f" on a probe): its glue between the recurrent nodes is not the stacking,"
                         " layout and heads rnnx expresses")

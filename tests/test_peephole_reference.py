"""The peephole LSTM of rnnx/reference.py, the oracle the layer is checked against:
against the calculus (float64 central differences, every argument, with lengths, reverse
and a projection), against onnx's own reference evaluator (its LSTM with P, float64) and
onnxruntime's (float32), and against a plain LSTM (zero peepholes give it exactly; non-zero
ones must change every output, so a dropped term fails).

The order: rnnx's w_peephole (3H,) is [p_i p_f p_o]; ONNX's P is [p_i p_o p_f]."""
import importlib.util
import pathlib

import numpy as np
import pytest
from numpy.testing import assert_allclose

from shared import central_difference

_path = pathlib.Path(__file__).resolve().parents[1] / "rnnx" / "reference.py"
_spec = importlib.util.spec_from_file_location("rnnx_reference_peephole", _path)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def inputs(T=4, B=3, I=3, H=2, P=0, seed=0, dtype=np.float64):
    """x, state and weights of one peephole LSTM direction; weights large enough that every
    sigmoid and tanh works away from its linear regime, peepholes O(1) so they matter."""
    rng = np.random.default_rng(seed)
    width = P or H
    p = {"x": rng.standard_normal((T, B, I)), "h0": 0.5 * rng.standard_normal((B, width)),
         "c0": rng.standard_normal((B, H)), "w_ih": rng.uniform(-0.8, 0.8, (4 * H, I)),
         "w_hh": rng.uniform(-0.8, 0.8, (4 * H, width)), "b_ih": rng.uniform(-0.5, 0.5, 4 * H),
         "b_hh": rng.uniform(-0.5, 0.5, 4 * H), "w_peephole": rng.uniform(-1.5, 1.5, 3 * H)}
    if P:
        p["w_hr"] = rng.uniform(-0.8, 0.8, (P, H))
    return {k: v.astype(dtype) for k, v in p.items()}


def run(p, lengths=None, reverse=False):
    y, (h, c), cache = ref.forward("lstm", p["x"], (p["h0"], p["c0"]), p["w_ih"], p["w_hh"],
                                   p["b_ih"], p["b_hh"], lengths, reverse, w_hr=p.get("w_hr"),
                                   w_peephole=p["w_peephole"])
    return (y, h, c), cache


@pytest.mark.parametrize("proj", [0, 1], ids=["plain", "proj"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths", [None, [4, 1, 0]], ids=["full", "lengths"])
def test_peephole_gradients_match_finite_differences(proj, reverse, lengths):
    p = inputs(P=proj)
    lengths = None if lengths is None else np.array(lengths)
    outs, cache = run(p, lengths, reverse)
    rng = np.random.default_rng(7)
    douts = [rng.standard_normal(o.shape) for o in outs]
    dx, (dh0, dc0), dw = ref.backward("lstm", cache, douts[0], douts[1:])
    names = ["w_ih", "w_hh", "b_ih", "b_hh"] + (["w_hr"] if proj else []) + ["w_peephole"]
    analytic = {"x": dx, "h0": dh0, "c0": dc0, **dict(zip(names, dw))}
    assert len(dw) == len(names)

    def loss():
        return sum(float(np.sum(o * d)) for o, d in zip(run(p, lengths, reverse)[0], douts))

    for name, value in p.items():
        numeric = central_difference(loss, value)
        # float64, eps = 1e-6: truncation ~1e-12, rounding ~1e-10; a wrong term is off by O(0.1)
        assert_allclose(analytic[name], numeric, rtol=1e-6, atol=1e-8, err_msg=f"d{name}")
    assert np.abs(analytic["w_peephole"]).min() > 1e-4   # each peephole does reach the loss


def test_zero_peepholes_are_the_plain_lstm_and_nonzero_ones_change_everything():
    p = inputs(seed=2)
    plain = ref.lstm_forward(p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    zero = ref.lstm_forward(p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"],
                            w_peephole=np.zeros(6))
    for a, b in zip(plain[:3], zero[:3]):
        assert np.array_equal(a, b)
    for k in range(3):          # each of p_i, p_f, p_o alone changes y at every step
        one = np.zeros(6)
        one[2 * k:2 * k + 2] = 0.7
        y = ref.lstm_forward(p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"],
                             w_peephole=one)[0]
        assert (np.abs(y - plain[0]) > 1e-6).all(), ["p_i", "p_f", "p_o"][k]


def test_one_step_written_out():
    """The equations once more, by hand, for one step: i and f see c_{t-1}, o sees c_t."""
    p = inputs(T=1, B=2, seed=4)
    (y, h, c), _ = run(p)
    sig = ref.sigmoid
    a = p["x"][0] @ p["w_ih"].T + p["b_ih"] + p["h0"] @ p["w_hh"].T + p["b_hh"]
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    p_i, p_f, p_o = np.split(p["w_peephole"], 3)
    c1 = sig(a_f + p_f * p["c0"]) * p["c0"] + sig(a_i + p_i * p["c0"]) * np.tanh(a_g)
    h1 = sig(a_o + p_o * c1) * np.tanh(c1)
    assert_allclose(c, c1, rtol=1e-14)
    assert_allclose(h, h1, rtol=1e-14)
    assert_allclose(y[0], h1, rtol=1e-14)


def onnx_lstm(p, direction="forward"):
    """The ONNX model of one LSTM node with P from the reference's arguments: gates i, o, f, c
    (PyTorch's i, f, g, o reordered), P = [p_i p_o p_f]."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper
    H = p["w_hh"].shape[1]
    order = np.concatenate([np.arange(0, H), np.arange(3 * H, 4 * H), np.arange(H, 2 * H),
                            np.arange(2 * H, 3 * H)])          # i o f c from i f g o
    p_i, p_f, p_o = np.split(p["w_peephole"], 3)
    dtype = p["x"].dtype
    inits = {"W": p["w_ih"][order][None], "R": p["w_hh"][order][None],
             "B": np.concatenate([p["b_ih"][order], p["b_hh"][order]])[None],
             "P": np.concatenate([p_i, p_o, p_f])[None],
             "h0": p["h0"][None], "c0": p["c0"][None]}
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    T, B, I = p["x"].shape
    node = helper.make_node("LSTM", ["x", "W", "R", "B", "", "h0", "c0", "P"], ["Y", "Y_h", "Y_c"],
                            hidden_size=H, direction=direction)
    graph = helper.make_graph(
        [node], "peephole", [helper.make_tensor_value_info("x", elem, [T, B, I])],
        [helper.make_tensor_value_info(n, elem, None) for n in ("Y", "Y_h", "Y_c")],
        [numpy_helper.from_array(v.astype(dtype), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_reference_equals_onnx_reference_evaluator_float64(reverse):
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    p = inputs(T=5, B=3, I=4, H=3, seed=5)
    (y, h, c), _ = run(p, reverse=reverse)
    model = onnx_lstm(p, "reverse" if reverse else "forward")
    Y, Y_h, Y_c = ReferenceEvaluator(model).run(None, {"x": p["x"]})
    assert_allclose(Y[:, 0], y, rtol=1e-13, atol=1e-14)
    assert_allclose(Y_h[0], h, rtol=1e-13, atol=1e-14)
    assert_allclose(Y_c[0], c, rtol=1e-13, atol=1e-14)


def test_reference_equals_onnxruntime_float32():
    ort = pytest.importorskip("onnxruntime")
    p = inputs(T=6, B=2, I=3, H=4, seed=6, dtype=np.float32)
    (y, h, c), _ = run(p)
    session = ort.InferenceSession(onnx_lstm(p).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    Y, Y_h, Y_c = session.run(None, {"x": p["x"]})
    # float32, two engines summing in different orders over 6 steps: 1e-5 relative
    assert_allclose(Y[:, 0], y, rtol=1e-5, atol=1e-6)
    assert_allclose(Y_h[0], h, rtol=1e-5, atol=1e-6)
    assert_allclose(Y_c[0], c, rtol=1e-5, atol=1e-6)

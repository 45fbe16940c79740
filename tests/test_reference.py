"""Checks of rnnx/reference.py, the oracle every other test trusts.

The reference is checked against the calculus (central finite differences in float64),
against the equations written out once more by hand (one step), and against PyTorch
autograd when torch is installed. It is loaded from its file, so these tests run before
the compiled core exists.
"""
import importlib.util
import pathlib

import numpy as np
import pytest
from numpy.testing import assert_allclose

_path = pathlib.Path(__file__).resolve().parents[1] / "rnnx" / "reference.py"
_spec = importlib.util.spec_from_file_location("rnnx_reference_under_test", _path)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

# variant name -> (cell, keyword arguments of the forward function)
VARIANTS = {
    "rnn_tanh": ("rnn", {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    "lstm": ("lstm", {}),
    "gru_reset_after": ("gru", {"reset_after": True}),
    "gru_reset_before": ("gru", {"reset_after": False}),
}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def make_inputs(variant, T, B, I, H, dtype=np.float64, bias=True, seed=0):
    """Random x, initial state and weights. Weights are larger than the usual 1/sqrt(H)
    init so that every nonlinearity works away from its linear regime."""
    cell, _ = VARIANTS[variant]
    G = GATES[cell] * H
    rng = np.random.default_rng(seed)
    inputs = {
        "x": rng.standard_normal((T, B, I)),
        "h0": 0.5 * rng.standard_normal((B, H)),
        "w_ih": rng.uniform(-0.8, 0.8, (G, I)),
        "w_hh": rng.uniform(-0.8, 0.8, (G, H)),
        "b_ih": rng.uniform(-0.5, 0.5, G) if bias else None,
        "b_hh": rng.uniform(-0.5, 0.5, G) if bias else None,
    }
    if cell == "lstm":
        inputs["c0"] = 0.5 * rng.standard_normal((B, H))
    return {k: None if v is None else v.astype(dtype) for k, v in inputs.items()}


def forward(variant, inputs, lengths=None, reverse=False):
    """Run the reference; returns ({"y", "h_n"[, "c_n"]}, cache)."""
    p = inputs
    state = (p["h0"], p["c0"]) if "c0" in p else (p["h0"],)
    y, state_n, cache = ref.forward(variant, p["x"], state, p["w_ih"], p["w_hh"], p["b_ih"],
                                    p["b_hh"], lengths=lengths, reverse=reverse)
    return dict(zip(["y", "h_n", "c_n"], (y,) + state_n)), cache


def backward(variant, douts, cache):
    """Run the reference backward; returns grads keyed like the inputs."""
    dstate = (douts["h_n"], douts["c_n"]) if "c_n" in douts else (douts["h_n"],)
    dx, dstate0, dw = ref.backward(variant, cache, douts["y"], dstate)
    names = ["h0", "c0"][:len(dstate0)]
    return dict(zip(["x", *names, "w_ih", "w_hh", "b_ih", "b_hh"], (dx, *dstate0, *dw)))


def random_douts(outs, seed=1):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in outs.items()}


def linear_loss(outs, douts):
    """L = sum(y * dy) + sum(h_n * dh_n) [+ sum(c_n * dc_n)]: its gradient wrt outs is douts."""
    return sum(float(np.sum(outs[k] * douts[k])) for k in outs)


def numerical_grads(variant, inputs, douts, lengths, reverse, eps=1e-6):
    """Central differences (L(p + eps) - L(p - eps)) / 2 eps of every element of every input."""
    grads = {}
    for name, value in inputs.items():
        if value is None:
            continue
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            losses = []
            for step in (eps, -eps):
                perturbed = dict(inputs)
                perturbed[name] = value.copy()
                perturbed[name][index] += step
                losses.append(linear_loss(forward(variant, perturbed, lengths, reverse)[0], douts))
            grad[index] = (losses[0] - losses[1]) / (2 * eps)
        grads[name] = grad
    return grads


def ragged_lengths(T, B):
    """Row 0 full length, row 1 length 1, the others in between."""
    lengths = np.array([T, 1] + [max(1, (T * (b + 1)) // (B + 1)) for b in range(2, B)], dtype=np.int64)
    return lengths[:B]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_gradients_match_finite_differences(variant, use_lengths, reverse):
    T, B, I, H = 4, 3, 3, 2
    inputs = make_inputs(variant, T, B, I, H)
    lengths = ragged_lengths(T, B) if use_lengths else None
    outs, cache = forward(variant, inputs, lengths, reverse)
    douts = random_douts(outs)
    analytic = backward(variant, douts, cache)
    numeric = numerical_grads(variant, inputs, douts, lengths, reverse)
    assert set(numeric) == {k for k, v in analytic.items() if v is not None}
    for name in numeric:
        # float64 central differences with eps=1e-6: truncation ~eps^2 and rounding
        # ~1e-16/eps, so agreement to ~1e-8 absolute; a wrong term is off by O(0.1).
        assert_allclose(analytic[name], numeric[name], rtol=1e-6, atol=1e-8, err_msg=f"d{name}")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_bias_gradients(variant):
    T, B, I, H = 3, 2, 2, 3
    inputs = make_inputs(variant, T, B, I, H, bias=False)
    lengths = np.array([3, 2])
    outs, cache = forward(variant, inputs, lengths)
    douts = random_douts(outs)
    analytic = backward(variant, douts, cache)
    assert analytic["b_ih"] is None and analytic["b_hh"] is None
    numeric = numerical_grads(variant, inputs, douts, lengths, False)
    for name in numeric:
        assert_allclose(analytic[name], numeric[name], rtol=1e-6, atol=1e-8, err_msg=f"d{name}")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_lengths_mean_each_row_runs_alone(variant, reverse):
    """Packed-sequence semantics: with lengths, row b gives exactly what running x[:len_b]
    of that row alone gives; padded outputs and their input gradients are exactly zero."""
    T, B, I, H = 6, 4, 3, 2
    inputs = make_inputs(variant, T, B, I, H, seed=3)
    lengths = np.array([6, 1, 4, 2])
    outs, cache = forward(variant, inputs, lengths, reverse)
    douts = random_douts(outs)
    grads = backward(variant, douts, cache)
    for b, n in enumerate(lengths):
        alone = dict(inputs, x=inputs["x"][:n, b:b + 1], h0=inputs["h0"][b:b + 1])
        if "c0" in inputs:
            alone["c0"] = inputs["c0"][b:b + 1]
        outs_b, cache_b = forward(variant, alone, None, reverse)
        douts_b = {"y": douts["y"][:n, b:b + 1]}
        douts_b.update({k: douts[k][b:b + 1] for k in outs if k != "y"})
        grads_b = backward(variant, douts_b, cache_b)
        assert_allclose(outs["y"][:n, b], outs_b["y"][:, 0], rtol=1e-13, atol=1e-14)
        assert np.all(outs["y"][n:, b] == 0), "padded outputs must be exactly 0"
        for k in outs:
            if k != "y":
                assert_allclose(outs[k][b], outs_b[k][0], rtol=1e-13, atol=1e-14, err_msg=k)
        assert_allclose(grads["x"][:n, b], grads_b["x"][:, 0], rtol=1e-12, atol=1e-14)
        assert np.all(grads["x"][n:, b] == 0), "padded steps must get zero gradient"
        assert_allclose(grads["h0"][b], grads_b["h0"][0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_step_equations(variant):
    """One step (T=1, h0 given) written out from ARCHITECTURE.md once more, by hand."""
    cell, kwargs = VARIANTS[variant]
    H = 3
    p = make_inputs(variant, 1, 2, 4, H, seed=5)
    x, h = p["x"][0], p["h0"]
    sigma = lambda a: 1 / (1 + np.exp(-a))
    W_i = lambda k: p["w_ih"][k * H:(k + 1) * H]
    W_h = lambda k: p["w_hh"][k * H:(k + 1) * H]
    b_i = lambda k: p["b_ih"][k * H:(k + 1) * H]
    b_h = lambda k: p["b_hh"][k * H:(k + 1) * H]
    pre = lambda k: x @ W_i(k).T + b_i(k) + h @ W_h(k).T + b_h(k)
    if cell == "rnn":
        act = np.tanh if kwargs["nonlinearity"] == "tanh" else (lambda a: np.maximum(a, 0))
        expected = {"h_n": act(pre(0))}
    elif cell == "lstm":
        i, f, g, o = sigma(pre(0)), sigma(pre(1)), np.tanh(pre(2)), sigma(pre(3))
        c = f * p["c0"] + i * g
        expected = {"h_n": o * np.tanh(c), "c_n": c}
    else:
        r, z = sigma(pre(0)), sigma(pre(1))
        if kwargs["reset_after"]:
            n = np.tanh(x @ W_i(2).T + b_i(2) + r * (h @ W_h(2).T + b_h(2)))
        else:
            n = np.tanh(x @ W_i(2).T + b_i(2) + (r * h) @ W_h(2).T + b_h(2))
        expected = {"h_n": (1 - z) * n + z * h}
    outs, _ = forward(variant, p)
    assert_allclose(outs["y"][0], expected["h_n"], rtol=1e-13, atol=1e-14)
    for k, v in expected.items():
        assert_allclose(outs[k], v, rtol=1e-13, atol=1e-14, err_msg=k)


def test_gru_variants_differ():
    """reset_after is a real switch (guards against both branches computing the same)."""
    p = make_inputs("gru_reset_after", 3, 2, 3, 4, seed=2)
    after, _ = forward("gru_reset_after", p)
    before, _ = forward("gru_reset_before", p)
    assert np.max(np.abs(after["y"] - before["y"])) > 1e-3


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_float32_computes_in_float32_and_agrees_with_float64(variant):
    p64 = make_inputs(variant, 5, 3, 4, 3, seed=7)
    p32 = {k: None if v is None else v.astype(np.float32) for k, v in p64.items()}
    lengths = np.array([5, 2, 3])
    outs64, cache64 = forward(variant, p64, lengths, reverse=True)
    outs32, cache32 = forward(variant, p32, lengths, reverse=True)
    douts64 = random_douts(outs64)
    douts32 = {k: v.astype(np.float32) for k, v in douts64.items()}
    grads64 = backward(variant, douts64, cache64)
    grads32 = backward(variant, douts32, cache32)
    for k in outs64:
        assert outs32[k].dtype == np.float32, k
        # float32 has eps 6e-8; a few dozen roundings along the chain stay far below 1e-5
        assert_allclose(outs32[k], outs64[k], rtol=1e-5, atol=1e-5, err_msg=k)
    for k in grads64:
        assert grads32[k].dtype == np.float32, k
        assert_allclose(grads32[k], grads64[k], rtol=1e-4, atol=1e-5, err_msg=f"d{k}")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_chunks_with_carried_state_equal_one_call(variant):
    p = make_inputs(variant, 7, 2, 3, 4, seed=4)
    whole, _ = forward(variant, p)
    first, _ = forward(variant, dict(p, x=p["x"][:3]))
    carried = dict(p, x=p["x"][3:], h0=first["h_n"])
    if "c0" in p:
        carried["c0"] = first["c_n"]
    second, _ = forward(variant, carried)
    assert np.array_equal(np.concatenate([first["y"], second["y"]]), whole["y"])
    assert np.array_equal(second["h_n"], whole["h_n"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_none_gradients_mean_zeros_and_inputs_untouched(variant):
    p = make_inputs(variant, 4, 2, 3, 2, seed=6)
    before = {k: None if v is None else v.copy() for k, v in p.items()}
    outs, cache = forward(variant, p, np.array([4, 2]), reverse=True)
    zeros = {k: np.zeros_like(v) for k, v in outs.items()}
    from_none = backward(variant, {k: None for k in outs}, cache)
    from_zeros = backward(variant, zeros, cache)
    for k, v in from_zeros.items():
        assert np.all(v == 0) and np.all(from_none[k] == 0), k
    backward(variant, random_douts(outs), cache)
    for k, v in before.items():
        assert v is None or np.array_equal(p[k], v), f"{k} was modified"


def test_empty_sequence_returns_initial_state():
    p = make_inputs("lstm", 0, 2, 3, 2)
    outs, cache = forward("lstm", p)
    assert outs["y"].shape == (0, 2, 2)
    assert np.array_equal(outs["h_n"], p["h0"]) and np.array_equal(outs["c_n"], p["c0"])
    douts = random_douts(outs)
    grads = backward("lstm", douts, cache)
    assert grads["x"].shape == (0, 2, 3)
    assert np.array_equal(grads["h0"], douts["h_n"]) and np.array_equal(grads["c0"], douts["c_n"])
    assert not np.any(grads["w_ih"]) and not np.any(grads["w_hh"])


@pytest.mark.parametrize("bad", [[2**40, 2], [3, 5], [-1, 2], [2, 2, 2], [[2, 2]]])
def test_bad_lengths_raise(bad):
    p = make_inputs("rnn_tanh", 4, 2, 3, 2)
    with pytest.raises(ValueError, match="lengths"):
        forward("rnn_tanh", p, np.array(bad))


# ---------------------------------------------------------------------------------------
# PyTorch autograd as an independent oracle (runs only when torch is installed).

TORCH_VARIANTS = ["rnn_tanh", "rnn_relu", "lstm", "gru_reset_after"]  # reset_after=False has no torch twin


@pytest.mark.parametrize("variant", TORCH_VARIANTS)
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_matches_torch(variant, use_lengths, bidirectional):
    """Single layer; with bidirectional the reverse half is the reference with reverse=True."""
    torch = pytest.importorskip("torch")
    cell, kwargs = VARIANTS[variant]
    T, B, I, H = 5, 3, 4, 3
    D = 2 if bidirectional else 1
    torch.manual_seed(0)
    if cell == "rnn":
        module = torch.nn.RNN(I, H, nonlinearity=kwargs["nonlinearity"], bidirectional=bidirectional)
    elif cell == "lstm":
        module = torch.nn.LSTM(I, H, bidirectional=bidirectional)
    else:
        module = torch.nn.GRU(I, H, bidirectional=bidirectional)
    module = module.double()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((D, B, H))
    c0 = rng.standard_normal((D, B, H))
    lengths = np.array([5, 1, 3]) if use_lengths else None
    dy = rng.standard_normal((T, B, D * H))
    dh = rng.standard_normal((D, B, H))
    dc = rng.standard_normal((D, B, H))

    tx = torch.tensor(x, requires_grad=True)
    th0 = torch.tensor(h0, requires_grad=True)
    tc0 = torch.tensor(c0, requires_grad=True)
    state = (th0, tc0) if cell == "lstm" else th0
    if use_lengths:
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False)
        tout, tstate = module(packed, state)
        ty = torch.nn.utils.rnn.pad_packed_sequence(tout, total_length=T)[0]
    else:
        ty, tstate = module(tx, state)
    th_n, tc_n = tstate if cell == "lstm" else (tstate, None)
    loss = (ty * torch.tensor(dy)).sum() + (th_n * torch.tensor(dh)).sum()
    if cell == "lstm":
        loss = loss + (tc_n * torch.tensor(dc)).sum()
    loss.backward()

    dx_total = np.zeros_like(x)
    for d, suffix in enumerate(["", "_reverse"][:D]):
        weights = {name: getattr(module, f"{name}_l0{suffix}").detach().numpy()
                   for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]}
        p = {"x": x, "h0": h0[d], "w_ih": weights["weight_ih"], "w_hh": weights["weight_hh"],
             "b_ih": weights["bias_ih"], "b_hh": weights["bias_hh"]}
        if cell == "lstm":
            p["c0"] = c0[d]
        outs, cache = forward(variant, p, lengths, reverse=(d == 1))
        half = slice(d * H, (d + 1) * H)
        douts = {"y": dy[:, :, half], "h_n": dh[d]}
        if cell == "lstm":
            douts["c_n"] = dc[d]
        grads = backward(variant, douts, cache)
        tol = dict(rtol=1e-10, atol=1e-12)  # float64 on both sides; only summation order differs
        assert_allclose(outs["y"], ty.detach().numpy()[:, :, half], **tol)
        assert_allclose(outs["h_n"], th_n.detach().numpy()[d], **tol)
        if cell == "lstm":
            assert_allclose(outs["c_n"], tc_n.detach().numpy()[d], **tol)
            assert_allclose(grads["c0"], tc0.grad.numpy()[d], **tol)
        assert_allclose(grads["h0"], th0.grad.numpy()[d], **tol)
        for ours, theirs in [("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh")]:
            torch_grad = getattr(module, f"{theirs}_l0{suffix}").grad.numpy()
            assert_allclose(grads[ours], torch_grad, **tol, err_msg=f"{theirs}{suffix}")
        dx_total += grads["x"]
    assert_allclose(dx_total, tx.grad.numpy(), rtol=1e-10, atol=1e-12)

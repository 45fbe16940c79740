"""The input projection, hoisted (X @ W_ih^T for every row into a (T,B,G) slab) or fused
into the steps ([x_t | h_{t-1}] @ [W_ih | W_hh]^T), and the cost model that chooses
(_core.projection_plan, csrc/projection_plan.c).

Both choices, forced, against the NumPy reference for every cell (a GRU is always
hoisted), both dtypes, sizes across the 8/16-unit panels and the 4-row tiles, lengths,
reverse, inference and training (then backward through the cache, and float64 finite
differences); the two give the same bits, at every thread count; the driver does what
the plan says; RNNX_PROJECTION forces a choice for a whole process; a stream's steps
equal a whole-sequence call that took the other choice.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnx import _core
from rnnx import reference as ref
from shared import assert_close_scaled, central_difference

HOISTED, FUSED = _core.PROJECTION_HOISTED, _core.PROJECTION_FUSED
# name: (cell code, reference cell name, with a projection, with peepholes)
CELLS = {"rnn_tanh": (_core.RNN_TANH, "rnn_tanh", False, False),
         "rnn_relu": (_core.RNN_RELU, "rnn_relu", False, False),
         "lstm": (_core.LSTM, "lstm", False, False),
         "lstm_proj": (_core.LSTM, "lstm", True, False),
         "lstm_peephole": (_core.LSTM, "lstm", True, True),
         "gru": (_core.GRU, "gru_reset_after", False, False),
         "gru_reset_before": (_core.GRU_RESET_BEFORE, "gru_reset_before", False, False)}
# (T, B, I, H): H on, under and past the 8/16-unit panels, B on and off the 4-row tiles,
# I from 1 to past a panel
SIZES = [(3, 1, 1, 5), (4, 5, 17, 16), (3, 4, 33, 17), (2, 7, 16, 40), (2, 13, 3, 33)]
TOL = {np.float64: 1e-10, np.float32: 1e-4}


def fitting_T(cell, T, B, I, H, P):
    """The least T' >= T whose inference slab has room for the fused weights (a GRU: T)."""
    if cell in (_core.GRU, _core.GRU_RESET_BEFORE):
        return T
    while not _core.projection_plan(cell, T, B, I, H, P)["fusable"]:
        T += 1
    return T


def problem(name, T, B, I, H, dtype, seed=0, lengths=True):
    """Random inputs and weights of one direction of one layer of cell `name`, over at
    least T steps: enough that a forced fused inference call fuses."""
    cell, _, proj, peep = CELLS[name]
    rng = np.random.default_rng(seed)
    T = fitting_T(cell, T, B, I, H, max(1, H // 2) if proj else 0)

    def draw(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    G, P = _core.gate_count(cell) * H, max(1, H // 2) if proj else 0
    S = P or H
    lens = rng.integers(0, T + 1, B) if lengths and B > 1 else None
    return dict(name=name, x=draw(T, B, I), h0=draw(B, S),
                c0=draw(B, H) if cell == _core.LSTM else None,
                w_ih=draw(G, I, scale=0.5), w_hh=draw(G, S, scale=0.5), b_ih=draw(G), b_hh=draw(G),
                w_hr=draw(P, H, scale=0.5) if P else None,
                w_peep=draw(3 * H, scale=0.5) if peep else None, lengths=lens)


def run(p, projection, reverse=False, train=False):
    """Forward through the binding: (y, h_n, c_n or None), the cache (train) and the
    (hoisted, fused) call counts it added."""
    cell = CELLS[p["name"]][0]
    x, h0, c0 = p["x"], p["h0"], p["c0"]
    T, B, _ = x.shape
    y, h_n = np.empty((T, B, h0.shape[1]), x.dtype), np.empty_like(h0)
    c_n = None if c0 is None else np.empty_like(c0)
    before = _core.projection_counts()
    cache = _core.forward(cell, x, h0, c0, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"],
                          p["lengths"], reverse, y, h_n, c_n, train, w_hr=p["w_hr"],
                          w_peep=p["w_peep"], projection=projection)
    counts = tuple(np.subtract(_core.projection_counts(), before))
    return (y, h_n, c_n), cache, counts


def reference_forward(p, reverse):
    f64 = {k: v.astype(np.float64) if isinstance(v, np.ndarray) and k != "lengths" else v
           for k, v in p.items()}
    _, ref_name, _, _ = CELLS[p["name"]]
    state = (f64["h0"],) if f64["c0"] is None else (f64["h0"], f64["c0"])
    return ref.forward(ref_name, f64["x"], state, f64["w_ih"], f64["w_hh"], f64["b_ih"],
                       f64["b_hh"], p["lengths"], reverse, f64["w_hr"], f64["w_peep"])


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("reverse", [False, True])
def test_both_choices_match_the_reference_with_the_same_bits(name, dtype, size, reverse):
    p = problem(name, *size, dtype, seed=sum(size))
    fusable = CELLS[name][0] not in (_core.GRU, _core.GRU_RESET_BEFORE)
    (out_h, _, counts_h), (out_f, _, counts_f) = run(p, HOISTED, reverse), run(p, FUSED, reverse)
    assert counts_h == (1, 0)
    assert counts_f == ((0, 1) if fusable else (1, 0))   # a GRU stays hoisted
    y, state, _ = reference_forward(p, reverse)
    for got, want, what in zip(out_f, (y,) + tuple(state), ("y", "h_n", "c_n")):
        if got is not None:
            assert_close_scaled(got, want, dtype, TOL[dtype], TOL[dtype], what)
    for fused, hoisted in zip(out_f, out_h):   # the same sums in the same order
        assert fused is None or np.array_equal(fused, hoisted)


def backward(p, cache, reverse, dy, dh_n, dc_n):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh (and dw_hr, dw_peep where the cell has them)."""
    cell = CELLS[p["name"]][0]
    grads = {k: np.zeros_like(p[k]) for k in ("x", "w_ih", "w_hh", "b_ih", "b_hh")}
    extra = {k: np.zeros_like(p[k]) for k in ("w_hr", "w_peep") if p[k] is not None}
    dh0 = np.empty_like(p["h0"])
    dc0 = None if p["c0"] is None else np.empty_like(p["c0"])
    _core.backward(cell, p["x"], p["w_ih"], p["w_hh"], p["lengths"], reverse, cache, dy, dh_n,
                   dc_n, grads["x"], dh0, dc0, grads["w_ih"], grads["w_hh"], grads["b_ih"],
                   grads["b_hh"], w_hr=p["w_hr"], dw_hr=extra.get("w_hr"), w_peep=p["w_peep"],
                   dw_peep=extra.get("w_peep"))
    return [grads["x"], dh0, grads["w_ih"], grads["w_hh"], grads["b_ih"], grads["b_hh"]] + \
        list(extra.values())


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "lstm_peephole", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True])
def test_a_training_forward_asked_to_fuse_hoists_and_backward_agrees(name, dtype, reverse):
    # training never fuses (its work has no slab to lend the fused weights: fusing costs
    # no memory), whatever the caller asks; the gradients are the reference's
    p = problem(name, 4, 6, 9, 17, dtype, seed=3)
    rng = np.random.default_rng(4)
    out, cache_f, counts = run(p, FUSED, reverse, train=True)
    assert counts == (1, 0)
    dy = rng.standard_normal(out[0].shape).astype(dtype)
    dh_n = rng.standard_normal(out[1].shape).astype(dtype)
    dc_n = None if out[2] is None else rng.standard_normal(out[2].shape).astype(dtype)
    got = backward(p, cache_f, reverse, dy, dh_n, dc_n)
    out_h, cache_h, _ = run(p, HOISTED, reverse, train=True)
    assert all(a is None or np.array_equal(a, b) for a, b in zip(out, out_h))
    assert all(np.array_equal(a, b) for a, b in zip(got, backward(p, cache_h, reverse, dy, dh_n,
                                                                 dc_n)))
    _, _, ref_cache = reference_forward(p, reverse)
    state = (dh_n,) if dc_n is None else (dh_n, dc_n)
    dx, dstate, dw = ref.backward(CELLS[name][1], ref_cache, dy.astype(np.float64),
                                  tuple(s.astype(np.float64) for s in state))
    want = [dx, dstate[0]] + list(dw)
    for g, w, what in zip(got, want, ("dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_hr",
                                      "dw_peep")):
        assert_close_scaled(g, w, dtype, TOL[dtype], TOL[dtype], what)


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm_peephole"])
def test_fused_gradients_equal_float64_finite_differences(name):
    p = problem(name, 3, 5, 4, 6, np.float64, seed=7)
    rng = np.random.default_rng(8)
    out, cache, counts = run(p, FUSED, train=True)
    assert counts == (1, 0)                         # training hoists
    assert run(p, FUSED)[2] == (0, 1)               # the loss below runs fused
    dy, dh_n = rng.standard_normal(out[0].shape), rng.standard_normal(out[1].shape)
    dc_n = None if out[2] is None else rng.standard_normal(out[2].shape)

    def loss():
        y, h_n, c_n = run(p, FUSED)[0]
        return float(np.sum(y * dy) + np.sum(h_n * dh_n) + (0 if c_n is None else np.sum(c_n * dc_n)))

    got = backward(p, cache, False, dy, dh_n, dc_n)
    for g, key in zip(got, ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh")):
        np.testing.assert_allclose(g, central_difference(loss, p[key]), rtol=1e-6, atol=1e-7,
                                   err_msg=key)


@pytest.mark.parametrize("name", ["rnn_relu", "lstm_proj"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_counts_give_the_same_bits(name, dtype, isa_and_threads):
    p = problem(name, 5, 18, 24, 50, dtype, seed=11)  # B*G*H past the serial bound
    outs = []
    for n in (1, 2, 3):
        _core.set_num_threads(n)
        outs.append(run(p, FUSED, reverse=True)[0])
    for out in outs[1:]:
        assert all(a is None or np.array_equal(a, b) for a, b in zip(out, outs[0]))


# shapes where the plan picks each choice (the test checks it does pick both); the
# projection's P is H // 2, as problem() draws it
PLAN_SHAPES = [(_core.LSTM, 500, 1, 32, 64, 0), (_core.LSTM, 25, 1, 512, 512, 0),
               (_core.LSTM, 40, 16, 64, 128, 0), (_core.LSTM, 30, 8, 48, 80, 40),
               (_core.RNN_TANH, 100, 1, 256, 256, 0), (_core.RNN_TANH, 50, 16, 64, 128, 0),
               (_core.GRU, 40, 16, 64, 128, 0)]


@pytest.mark.parametrize("threads", [1, 2])
def test_the_driver_does_what_the_plan_says(threads, isa_and_threads):
    _core.set_num_threads(threads)
    seen = set()
    for cell, T, B, I, H, P in PLAN_SHAPES:
        name = {_core.LSTM: "lstm_proj" if P else "lstm", _core.RNN_TANH: "rnn_tanh",
                _core.GRU: "gru"}[cell]
        plan = _core.projection_plan(cell, T, B, I, H, P, threads=_core.get_num_threads())
        p = problem(name, T, B, I, H, np.float32, lengths=False)   # P = H // 2
        counts = run(p, _core.PROJECTION_AUTO)[2]
        assert counts == ((0, 1) if plan["choice"] == "fused" else (1, 0)), (cell, T, B, I, H, P)
        seen.add(plan["choice"])
    assert seen == {"hoisted", "fused"}


def test_the_plan_adds_up_and_refuses_bad_input():
    plan = _core.projection_plan(_core.LSTM, 200, 16, 64, 128)
    parts = ("gemm_ns", "slab_ns", "pack_hoisted_ns", "steps_hoisted_ns")
    assert plan["hoisted_ns"] == pytest.approx(sum(plan[k] for k in parts))
    parts = ("steps_fused_ns", "copies_ns", "pack_fused_ns")
    assert plan["fused_ns"] == pytest.approx(sum(plan[k] for k in parts))
    assert all(plan[k] > 0 for k in plan if k.endswith("_ns"))
    assert plan["choice"] == ("fused" if plan["fused_ns"] < plan["hoisted_ns"] else "hoisted")
    for cell in (_core.GRU, _core.GRU_RESET_BEFORE):   # r multiplies W_hn h: never fused
        gru = _core.projection_plan(cell, 500, 1, 32, 64)
        assert not gru["fusable"] and gru["choice"] == "hoisted"
    # float64 counts half the lanes: its steps cost more
    f64 = _core.projection_plan(_core.LSTM, 200, 16, 64, 128, dtype=np.float64)
    assert f64["steps_fused_ns"] > plan["steps_fused_ns"]
    with pytest.raises(ValueError, match="proj_size=128"):
        _core.projection_plan(_core.LSTM, 200, 16, 64, 128, 128)
    with pytest.raises(ValueError, match="cell=9"):
        _core.projection_plan(9, 200, 16, 64, 128)
    with pytest.raises(ValueError, match="T=-1"):
        _core.projection_plan(_core.LSTM, -1, 16, 64, 128)
    with pytest.raises((TypeError, ValueError), match="dtype"):
        _core.projection_plan(_core.LSTM, 200, 16, 64, 128, dtype=np.int32)
    with pytest.raises(TypeError, match="threads"):
        _core.projection_plan(_core.LSTM, 200, 16, 64, 128, threads=1.5)
    p = problem("lstm", 2, 3, 4, 5, np.float32)
    with pytest.raises(ValueError, match="projection"):
        run(p, 3)


def test_rnnx_projection_forces_a_choice_for_the_process():
    code = ("import numpy as np, rnnx\n"
            "from rnnx import _core\n"
            "lstm = rnnx.LSTM(32, 64)\n"
            "assert _core.projection_plan(_core.LSTM, 500, 1, 32, 64)['choice'] == 'fused'\n"
            "lstm(np.ones((500, 1, 32), np.float32))\n"
            "print(*_core.projection_counts())\n")
    for forced, want in (("hoisted", "1 0"), ("fused", "0 1"), ("", "0 1")):
        env = dict(os.environ, RNNX_PROJECTION=forced, RNNX_NUM_THREADS="1")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout
        assert out.split() == want.split(), forced


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_stream_equals_a_sequence_that_took_the_other_choice(dtype):
    rng = np.random.default_rng(5)
    T, B, I, H = 60, 4, 16, 48
    G = 4 * H
    plans = [_core.projection_plan(_core.LSTM, t, B, I, H, dtype=dtype)["choice"] for t in (1, T)]
    assert plans == ["hoisted", "fused"]
    w = [(rng.standard_normal(s) * s[-1] ** -0.5).astype(dtype)
         for s in ((G, I), (G, H), (G,), (G,))]
    x = rng.standard_normal((T, B, I)).astype(dtype)
    stream = _core.Stream(_core.LSTM, [tuple(w)], B, dtype)
    before = _core.projection_counts()
    steps = np.stack([stream.step(x[t]) for t in range(T)])
    assert tuple(np.subtract(_core.projection_counts(), before)) == (T, 0)
    zeros = np.zeros((B, H), dtype)
    y = np.empty((T, B, H), dtype)
    _core.forward(_core.LSTM, x, zeros, zeros, *w, None, False, y, np.empty_like(zeros),
                  np.empty_like(zeros), False, row_exact=True)
    assert tuple(np.subtract(_core.projection_counts(), before)) == (T, 1)
    assert np.array_equal(steps, y)


def test_the_cost_view_prints_the_choice():
    out = subprocess.run([sys.executable, "-m", "rnnx.cost", "LSTM", "16", "128", "64", "200",
                          "--threads", "2"], capture_output=True, text=True, check=True).stdout
    plan = _core.projection_plan(_core.LSTM, 200, 16, 64, 128, threads=2)
    assert f"choice: {plan['choice']}" in out
    assert f"{plan['fused_ns'] / 1e6:.3f}" in out and f"{plan['hoisted_ns'] / 1e6:.3f}" in out
    bad = subprocess.run([sys.executable, "-m", "rnnx.cost", "LSTM", "16", "128"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "usage" in bad.stderr


def test_the_benchmark_times_both_choices_and_finds_the_same_bits():
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "projection.py")
    out = subprocess.run([sys.executable, script, "--repeat", "1", "lstm", "3", "5", "7", "20",
                          "rnn_relu", "2", "1", "3", "9"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert len(out) == 3 and out[1].startswith("lstm") and out[2].startswith("rnn_relu")
    assert all(line.split()[-1] == "True" for line in out[1:])


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "lstm_proj"])
def test_a_sequence_too_short_to_lend_its_slab_hoists_even_when_asked_to_fuse(name):
    # fusing borrows the unused (T,B,G) slab for [W_ih | W_hh]: a stream's step (T = 1) has
    # no room, so it hoists (and the plan says it cannot fuse), and its numbers are the same
    cell = CELLS[name][0]
    p = problem(name, 1, 1, 24, 20, np.float32)
    T = p["x"].shape[0]
    assert T > 1 and not _core.projection_plan(cell, 1, 1, 24, 20, p["w_hr"].shape[0]
                                               if p["w_hr"] is not None else 0)["fusable"]
    short = dict(p, x=p["x"][:1])
    (out_f, _, counts_f), (out_h, _, _) = run(short, FUSED), run(short, HOISTED)
    assert counts_f == (1, 0)
    assert all(a is None or np.array_equal(a, b) for a, b in zip(out_f, out_h))
    assert run(p, FUSED)[2] == (0, 1)    # the same weights over the fitting T do fuse

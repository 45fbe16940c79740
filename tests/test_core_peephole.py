"""The peephole LSTM in the core (_core.forward/backward with w_peep), on every
instruction set, path and thread count, in both dtypes, with lengths, both
directions and a projection, against a NumPy reference written out below, and its
gradients (P's included) against finite differences in float64.

The peepholes w_peep (3H,) are [Pi, Pf, Po] (ONNX's P is [Pi, Po, Pf]):
  i = sigma(a_i + Pi * c_{t-1}), f = sigma(a_f + Pf * c_{t-1}), o = sigma(a_o + Po * c_t).
"""
import numpy as np
import pytest

from rnnx import _core
from shared import assert_close_scaled, central_difference

ISAS = _core.available_isas()
PATHS = (_core.PATH_AUTO, _core.PATH_BLAS, _core.PATH_NAIVE)
TOL = {np.float64: 1e-10, np.float32: 1e-4}
# (T, B, I, H, P): H on and off the 8/16-unit panels, B on and off the 4-row tiles
SIZES = [(3, 1, 2, 1, 0), (4, 5, 3, 17, 0), (3, 6, 4, 33, 0), (2, 9, 5, 16, 0), (3, 3, 4, 9, 4)]


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def reference(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_peep, lengths, reverse, dy, dh_n, dc_n,
              w_hr=None):
    """Forward, then the gradient of sum(dy*y) + sum(dh_n*h_n) + sum(dc_n*c_n), step by step.
    Returns (y, h_n, c_n), (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_peep, dw_hr)."""
    T, B, _ = x.shape
    H = c0.shape[1]
    pi, pf, po = w_peep[:H], w_peep[H:2 * H], w_peep[2 * H:]
    lengths = np.full(B, T) if lengths is None else lengths
    order = range(T - 1, -1, -1) if reverse else range(T)
    h, c = h0.copy(), c0.copy()
    y = np.zeros(x.shape[:2] + (h0.shape[1],))
    steps = {}
    for t in order:
        a = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i = sigmoid(a[:, :H] + pi * c)
        f = sigmoid(a[:, H:2 * H] + pf * c)
        g = np.tanh(a[:, 2 * H:3 * H])
        c_new = f * c + i * g
        o = sigmoid(a[:, 3 * H:] + po * c_new)
        m = o * np.tanh(c_new)
        h_new = m if w_hr is None else m @ w_hr.T
        on = (t < lengths)[:, None]
        steps[t] = (on, i, f, g, o, c, c_new, m, h)
        h, c = np.where(on, h_new, h), np.where(on, c_new, c)
        y[t] = np.where(on, h_new, 0)
    outputs = (y, h, c)

    dx, dw_ih, dw_hh = np.zeros_like(x), np.zeros_like(w_ih), np.zeros_like(w_hh)
    db, dp = np.zeros_like(b_ih), np.zeros_like(w_peep)
    dw_hr = None if w_hr is None else np.zeros_like(w_hr)
    dh, dc = dh_n.copy(), dc_n.copy()
    for t in reversed(list(order)):
        on, i, f, g, o, c_prev, c_t, m, h_prev = steps[t]
        dh_t = dh + np.where(on, dy[t], 0)
        dm = dh_t if w_hr is None else dh_t @ w_hr
        tc = np.tanh(c_t)
        da_o = dm * tc * o * (1 - o)                       # h = o * tanh(c)
        dc_t = dc + dm * o * (1 - tc ** 2) + da_o * po     # o = sigma(. + Po * c_t)
        da_i = dc_t * g * i * (1 - i)                      # c = f * c_prev + i * g
        da_f = dc_t * c_prev * f * (1 - f)
        da_g = dc_t * i * (1 - g ** 2)
        dc_prev = dc_t * f + da_i * pi + da_f * pf         # i, f = sigma(. + Pi, Pf * c_prev)
        da = np.where(on, np.concatenate([da_i, da_f, da_g, da_o], axis=1), 0)
        dx[t] = da @ w_ih
        dw_ih += da.T @ x[t]
        dw_hh += da.T @ h_prev
        db += da.sum(axis=0)
        dp += np.concatenate([(da[:, :H] * c_prev).sum(0), (da[:, H:2 * H] * c_prev).sum(0),
                              (da[:, 3 * H:] * c_t).sum(0)])
        if w_hr is not None:
            dw_hr += np.where(on, dh_t, 0).T @ m
        dh = np.where(on, da @ w_hh, dh)
        dc = np.where(on, dc_prev, dc)
    return outputs, (dx, dh, dc, dw_ih, dw_hh, db, db.copy(), dp, dw_hr)


def problem(T, B, I, H, P, dtype, seed=0, lengths=True):
    rng = np.random.default_rng(seed)
    S = P or H
    r = lambda *shape, s=1.0: (s * rng.standard_normal(shape)).astype(dtype)
    p = dict(x=r(T, B, I), h0=r(B, S, s=0.5), c0=r(B, H, s=0.5), w_ih=r(4 * H, I, s=I ** -0.5),
             w_hh=r(4 * H, S, s=S ** -0.5), b_ih=r(4 * H, s=0.3), b_hh=r(4 * H, s=0.3),
             w_peep=r(3 * H, s=0.7), w_hr=r(P, H, s=H ** -0.5) if P else None,
             lengths=rng.integers(0, T + 1, size=B).astype(np.int64) if lengths else None,
             dy=r(T, B, S), dh_n=r(B, S), dc_n=r(B, H))
    return p


def run_core(p, reverse, path=_core.PATH_AUTO, peephole=True):
    """Training forward and backward: (y, h_n, c_n), (dx, dh0, dc0, dw_ih, dw_hh, db_ih,
    db_hh, dw_peep, dw_hr)."""
    x, h0, c0 = p["x"], p["h0"], p["c0"]
    T, B, _ = x.shape
    w_peep = p["w_peep"] if peephole else None
    y, h_n, c_n = np.empty((T, B, h0.shape[1]), x.dtype), np.empty_like(h0), np.empty_like(c0)
    cache = _core.forward(_core.LSTM, x, h0, c0, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"],
                          p["lengths"], reverse, y, h_n, c_n, True, path, w_hr=p["w_hr"],
                          w_peep=w_peep)
    dx, dw_ih, dw_hh = np.zeros_like(x), np.zeros_like(p["w_ih"]), np.zeros_like(p["w_hh"])
    db_ih, db_hh = np.zeros_like(p["b_ih"]), np.zeros_like(p["b_hh"])
    dw_peep = np.zeros_like(p["w_peep"]) if peephole else None
    dw_hr = None if p["w_hr"] is None else np.zeros_like(p["w_hr"])
    dh0, dc0 = np.empty_like(h0), np.empty_like(c0)
    _core.backward(_core.LSTM, x, p["w_ih"], p["w_hh"], p["lengths"], reverse, cache, p["dy"],
                   p["dh_n"], p["dc_n"], dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, path,
                   w_hr=p["w_hr"], dw_hr=dw_hr, w_peep=w_peep, dw_peep=dw_peep)
    return (y, h_n, c_n), (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_peep, dw_hr)


def run_reference(p, reverse):
    f64 = {k: None if v is None or k == "lengths" else v.astype(np.float64) for k, v in p.items()}
    f64["lengths"] = p["lengths"]
    return reference(f64["x"], f64["h0"], f64["c0"], f64["w_ih"], f64["w_hh"], f64["b_ih"],
                     f64["b_hh"], f64["w_peep"], p["lengths"], reverse, f64["dy"], f64["dh_n"],
                     f64["dc_n"], f64["w_hr"])


NAMES = ("y", "h_n", "c_n"), ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_peep",
                              "dw_hr")


def assert_matches(got, want, dtype, what):
    for names, g_part, w_part in zip(NAMES, got, want):
        for name, g, w in zip(names, g_part, w_part):
            if w is None:
                assert g is None, f"{what}: {name}"
                continue
            assert_close_scaled(g, w, dtype, TOL[dtype], TOL[dtype], f"{what}: {name}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES)
def test_every_isa_matches_the_reference(isa, dtype, size, isa_and_threads):
    _core.set_isa(isa)
    _core.set_num_threads(1)
    for reverse in (False, True):
        p = problem(*size, dtype, seed=sum(size) + reverse)
        assert_matches(run_core(p, reverse), run_reference(p, reverse), dtype,
                       f"{isa} {size} reverse={reverse}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_path_matches_the_reference(path, dtype):
    for size in SIZES:
        p = problem(*size, dtype, seed=7)
        assert_matches(run_core(p, True, path), run_reference(p, True), dtype,
                       f"path {path} {size}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_counts_give_equal_results(dtype, isa_and_threads):
    """Forward bit for bit at 1, 2, 3 and 5 threads (and float64 gradients: the per-step
    products and the peepholes' sums run in a fixed order); big enough to be split."""
    p = problem(3, 20, 6, 129, 0, dtype, seed=3)
    _core.set_num_threads(1)
    base = run_core(p, False)
    for n in (2, 3, 5):
        _core.set_num_threads(n)
        got = run_core(p, False)
        for a, b in zip(base[0], got[0]):
            assert np.array_equal(a, b), f"{n} threads changed the forward"
        for a, b in zip(base[1], got[1]):
            if a is not None and dtype == np.float64:
                assert np.array_equal(a, b), f"{n} threads changed a float64 gradient"
            elif a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(3, 2, 2, 3, 0), (3, 3, 2, 4, 2)])
def test_gradients_match_finite_differences(size):
    """Every gradient, Pi, Pf and Po included, against central differences of the core's
    own float64 forward of L = sum(dy*y) + sum(dh_n*h_n) + sum(dc_n*c_n)."""
    p = problem(*size, np.float64, seed=11)
    p["w_peep"] *= 3  # peepholes of weight: a dropped term moves every gradient visibly
    _, grads = run_core(p, False)

    def loss():
        (y, h_n, c_n), _ = run_core(p, False)
        return np.sum(p["dy"] * y) + np.sum(p["dh_n"] * h_n) + np.sum(p["dc_n"] * c_n)

    wrt = {"dx": "x", "dh0": "h0", "dc0": "c0", "dw_ih": "w_ih", "dw_hh": "w_hh",
           "db_ih": "b_ih", "db_hh": "b_hh", "dw_peep": "w_peep", "dw_hr": "w_hr"}
    for name, g in zip(NAMES[1], grads):
        if g is None:
            continue
        numeric = central_difference(loss, p[wrt[name]])
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_peepholes_are_the_plain_lstm_and_others_are_not(dtype):
    """P = 0 gives the plain LSTM bit for bit; P != 0 changes every output and gradient
    (so no peephole term is dropped silently), including each of Pi, Pf, Po alone."""
    p = problem(4, 5, 3, 17, 0, dtype, seed=5, lengths=False)
    plain = run_core(p, False, peephole=False)
    p0 = dict(p, w_peep=np.zeros_like(p["w_peep"]))
    zero = run_core(p0, False)
    for a, b in zip(plain[0] + plain[1][:7], zero[0] + zero[1][:7]):
        assert np.array_equal(a, b)
    H = 17
    for q, gate in enumerate("ifo"):
        only = np.zeros_like(p["w_peep"])
        only[q * H:(q + 1) * H] = p["w_peep"][q * H:(q + 1) * H]
        got = run_core(dict(p, w_peep=only), False)
        assert not np.allclose(got[0][0], plain[0][0]), f"P{gate} does not change y"
        assert not np.allclose(got[1][3], plain[1][3]), f"P{gate} does not change dw_ih"
        assert np.any(got[1][7][q * H:(q + 1) * H] != 0), f"dP{gate} is zero"


def test_bad_peepholes_raise():
    p = problem(2, 2, 3, 4, 0, np.float64, seed=1)
    with pytest.raises(ValueError, match="w_peep"):
        run_core(dict(p, w_peep=np.zeros(4 * 4)), False)
    with pytest.raises((ValueError, TypeError), match="w_peep"):
        run_core(dict(p, w_peep=p["w_peep"].astype(np.float32)), False)
    x, h0 = p["x"], p["h0"]
    G = 3 * 4
    w = [np.zeros(s) for s in ((G, 3), (G, 4), (G,), (G,))]
    with pytest.raises(ValueError, match="peephole.*LSTM only"):
        _core.forward(_core.GRU, x, h0, None, *w, None, False, np.empty((2, 2, 4)),
                      np.empty((2, 4)), None, False, w_peep=np.zeros(12))
    (y, h_n, c_n), _ = run_core(p, False)
    cache = _core.forward(_core.LSTM, x, h0, p["c0"], p["w_ih"], p["w_hh"], None, None, None,
                          False, y, h_n, c_n, True, w_peep=p["w_peep"])
    args = (_core.LSTM, x, p["w_ih"], p["w_hh"], None, False, cache, None, None, None,
            np.zeros_like(x), np.empty_like(h0), np.empty_like(h0), np.zeros_like(p["w_ih"]),
            np.zeros_like(p["w_hh"]), None, None)
    with pytest.raises((ValueError, TypeError), match="dw_peep"):
        _core.backward(*args, w_peep=p["w_peep"])
    with pytest.raises(ValueError, match="dw_peep"):
        _core.backward(*args, dw_peep=np.zeros(12))


def test_inputs_are_never_modified():
    p = problem(3, 4, 3, 9, 0, np.float64, seed=2)
    before = {k: None if v is None else v.copy() for k, v in p.items()}
    run_core(p, True)
    for k, v in p.items():
        assert (v is None and before[k] is None) or np.array_equal(v, before[k]), k


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_equals_the_whole_sequence(isa, dtype, isa_and_threads):
    """A two-layer peephole stream, step by step and by Stream.run, against whole-sequence
    calls of the same layers: bit for bit in float64, to rounding in float32; and the
    peepholes change its output."""
    _core.set_isa(isa)
    T, B, I, H = 5, 3, 4, 19
    p0, p1 = problem(T, B, I, H, 0, dtype, seed=1), problem(T, B, H, H, 0, dtype, seed=2)
    weights = [tuple(p[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh", "w_peep")) for p in (p0, p1)]
    stream = _core.Stream(_core.LSTM, weights, B, dtype)
    steps = np.stack([stream.step(p0["x"][t]) for t in range(T)])
    stream.set_state(None, None)
    chunk = stream.run(p0["x"], _core.Workspace())
    layer_in = p0["x"]
    for w in weights:
        y, zeros = np.empty((T, B, H), dtype), np.zeros((B, H), dtype)
        _core.forward(_core.LSTM, layer_in, zeros, zeros, *w[:4], None, False, y,
                      np.empty((B, H), dtype), np.empty((B, H), dtype), False, w_peep=w[4])
        layer_in = y
    for got in (steps, chunk):
        if dtype == np.float64:
            assert np.array_equal(got, layer_in)
        else:
            assert_close_scaled(got, layer_in, dtype, 1e-5, 1e-5, "stream vs sequence")
    plain = _core.Stream(_core.LSTM, [w[:4] for w in weights], B, dtype)
    assert not np.allclose(np.stack([plain.step(p0["x"][t]) for t in range(T)]), steps)
    with pytest.raises(ValueError, match=r"weights\[1\].w_peep must have shape"):
        _core.Stream(_core.LSTM, [weights[0], weights[1][:4] + (np.zeros(H),)], B, dtype)

"""The C core below the layers: its activations and its three gemm paths.

The sigmoid and tanh of both dtypes are the core's own (branch-free so the gate
loops vectorize); they must stay within a few ulp of the correctly rounded value
over the whole float range.  The per-step products run through BLAS, a hand-written
small kernel or a naive gemm; all three must give the same sequences and
gradients, on shapes that fall on and off the small kernel's tiles.
"""
import mpmath
import numpy as np
import pytest

from rnnx import _core
from shared import core_forward_backward

CELLS = [row["code"] for row in _core.cell_table()]   # every cell of the core
PATHS = [_core.PATH_BLAS, _core.PATH_SMALL, _core.PATH_NAIVE]


def float32_sweep():
    """Every power-of-two decade of the float range, both signs, densely near 0
    and across the region where the activations bend, plus the special values."""
    rng = np.random.default_rng(0)
    dense = np.linspace(-30, 30, 2_000_001, dtype=np.float32)
    magnitudes = np.float32(2.0) ** rng.uniform(-149, 127.9, 1_000_000).astype(np.float32)
    signs = np.where(rng.random(1_000_000) < 0.5, -1, 1).astype(np.float32)
    tiny = np.arange(1, 5000, dtype=np.uint32).view(np.float32)  # subnormals
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.7, -88.7, 104.0, -104.0,
                        np.finfo(np.float32).max, -np.finfo(np.float32).max], np.float32)
    return np.concatenate([dense, magnitudes * signs, tiny, -tiny, special])


def exact_sigmoid(v):
    """sigma in float64 without cancellation: e^v/(1+e^v) below 0, 1/(1+e^-v) above."""
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e))


EXACT = {"sigmoid": exact_sigmoid, "tanh": np.tanh}


def ulp_error(got, want):
    """|got - want| in units of the last place of want (float32)."""
    spacing = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want.astype(np.float64)) / spacing


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_float32_activations_within_a_few_ulp(name):
    x = float32_sweep()
    with np.errstate(all="ignore"):
        want = EXACT[name](x.astype(np.float64)).astype(np.float32)  # float64, rounded to float32
    got = _core.activation(name, x)
    assert got.dtype == np.float32
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaN in must give NaN out, and only then"
    finite = ~np.isnan(want)
    err = ulp_error(got[finite], want[finite])
    assert err.max() <= 4, f"{name}: worst {err.max()} ulp at x={x[finite][err.argmax()]!r}"
    # the saturated ends are exact, and the odd/even symmetry holds exactly
    assert _core.activation(name, np.array([np.inf], np.float32))[0] == 1.0
    if name == "tanh":
        assert np.array_equal(_core.activation(name, -x[finite]), -got[finite])


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_float64_activations_match_numpy(name):
    x = np.concatenate([np.linspace(-50, 50, 200_001), [0.0, -0.0, np.inf, -np.inf, np.nan]])
    with np.errstate(all="ignore"):
        want = EXACT[name](x)
    got = _core.activation(name, x)
    # libm's exp and NumPy's differ in the last bit or two
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-300)


def float64_sweep(n=4000):
    """Every decade of the double range (subnormal results included), both signs,
    the region where the activations bend, and the special values."""
    rng = np.random.default_rng(1)
    bend = rng.uniform(-40, 40, n)
    magnitudes = 2.0 ** rng.uniform(-1074, 1023.9, n // 2)
    signs = np.where(rng.random(n // 2) < 0.5, -1.0, 1.0)
    edges = np.array([0.0, -0.0, 0.35 / 2, -0.35 / 2, 0.1749999, -0.1750001, 708.0, -708.0,
                      -744.0, -745.1, 746.0, np.finfo(np.float64).max, -np.finfo(np.float64).max])
    return np.concatenate([bend, magnitudes * signs, edges])


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_float64_activations_within_a_few_ulp(name):
    """Against mpmath's values rounded to double, in ulp of the result; a result that
    rounds to a subnormal is held to 4 of the smallest subnormals."""
    mpmath.mp.dps = 50
    x = float64_sweep()
    got = _core.activation(name, x)
    assert got.dtype == np.float64
    for v, g in zip(x, got):
        m = mpmath.mpf(float(v))
        want = float(1 / (1 + mpmath.exp(-m)) if name == "sigmoid" else mpmath.tanh(m))
        err = abs(g - want) / np.spacing(abs(want))
        assert err <= 4, f"{name}({v!r}) = {g!r}, correctly rounded {want!r}: {err} ulp"
    special = _core.activation(name, np.array([np.nan, np.inf, -np.inf]))
    assert np.isnan(special[0]) and special[1] == 1.0
    assert special[2] == (0.0 if name == "sigmoid" else -1.0)
    if name == "tanh":
        assert np.array_equal(_core.activation(name, -x), -got)


def random_problem(cell, T, B, I, H, dtype, rng, lengths=False):
    G = _core.gate_count(cell) * H
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((B, H))).astype(dtype) if cell == _core.LSTM else None
    weights = [(0.4 * rng.standard_normal(shape)).astype(dtype) for shape in [(G, I), (G, H), (G,), (G,)]]
    lens = rng.integers(1, T + 1, size=B).astype(np.int64) if lengths else None
    return x, h0, c0, weights, lens


def run_path(cell, problem, path, reverse, dy, dh_n):
    x, h0, c0, weights, lens = problem
    return core_forward_backward(cell, x, h0, c0, weights, lens, reverse, dy, dh_n, dh_n, path)


# Shapes on and off the small kernel's tiles (4 rows x 32 columns, 128-wide rows).
SHAPES = [(1, 1, 1, 1), (7, 1, 3, 40), (5, 3, 2, 33), (4, 4, 5, 8), (3, 5, 7, 32), (6, 9, 4, 17)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,I,H", SHAPES)
def test_every_path_gives_the_same_result(cell, T, B, I, H):
    rng = np.random.default_rng(T * 1000 + B * 100 + H)
    for reverse, lengths in [(False, False), (True, True)]:
        problem = random_problem(cell, T, B, I, H, np.float64, rng, lengths)
        dy = rng.standard_normal((T, B, H))
        dh_n = rng.standard_normal((B, H))
        results = [run_path(cell, problem, path, reverse, dy, dh_n) for path in PATHS]
        for other in results[1:]:
            for a, b in zip(results[0], other):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_float64_rows_do_not_depend_on_how_many_rows_run(cell):
    """The float64 input projection computes each row on its own, so one call
    over T steps equals T calls over one step each, bit for bit."""
    rng = np.random.default_rng(cell)
    T, B, I, H = 9, 3, 37, 45
    x, h0, c0, (w_ih, w_hh, b_ih, b_hh), _ = random_problem(cell, T, B, I, H, np.float64, rng)
    lstm = cell == _core.LSTM
    y = np.empty((T, B, H))
    h_n, c_n = np.empty((B, H)), (np.empty((B, H)) if lstm else None)
    _core.forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, False, y, h_n, c_n, False)
    h, c = h0, c0
    for t in range(T):
        y_t = np.empty((1, B, H))
        h_next, c_next = np.empty((B, H)), (np.empty((B, H)) if lstm else None)
        _core.forward(cell, x[t:t + 1].copy(), h, c, w_ih, w_hh, b_ih, b_hh, None, False, y_t,
                      h_next, c_next, False)
        assert np.array_equal(y_t[0], y[t])
        h, c = h_next, c_next
    assert np.array_equal(h, h_n)


def test_binding_rejects_bad_arrays_before_calling_c():
    rng = np.random.default_rng(1)
    x, h0, _, (w_ih, w_hh, b_ih, b_hh), _ = random_problem(_core.GRU, 4, 2, 3, 5, np.float32, rng)
    y, h_n = np.empty((4, 2, 5), np.float32), np.empty((2, 5), np.float32)
    args = dict(cell=_core.GRU, x=x, h0=h0, c0=None, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh,
                lengths=None, reverse=False, y=y, h_n=h_n, c_n=None, train=False)
    _core.forward(**args)
    with pytest.raises(TypeError, match="w_hh must be float32 like x .*, got float64"):
        _core.forward(**{**args, "w_hh": w_hh.astype(np.float64)})
    with pytest.raises(ValueError, match=r"b_ih must have shape \(15,\), got \(14,\)"):
        _core.forward(**{**args, "b_ih": b_ih[:-1].copy()})
    with pytest.raises(ValueError, match="w_ih must be C-contiguous"):
        _core.forward(**{**args, "w_ih": np.asfortranarray(w_ih)})
    with pytest.raises(ValueError, match="lengths must lie in"):
        _core.forward(**{**args, "lengths": np.array([-1, 4], np.int64)})
    with pytest.raises(ValueError, match="y must have contiguous, evenly spaced rows"):
        _core.forward(**{**args, "y": np.empty((4, 2, 10), np.float32)[:, :, ::2]})
    with pytest.raises(ValueError, match="unknown cell code"):
        _core.forward(**{**args, "cell": 9})

"""The binding (rnnx._core) facing bad, odd or hostile input: every case is a clear
TypeError/ValueError naming the argument, or a correct result; never a crash.
And padding past a row's length, whatever it holds, contributes nothing to any
gradient."""
import numpy as np
import pytest

import rnnx
from rnnx import _core

CELLS = [row["code"] for row in _core.cell_table()]   # every cell of the core


def forward_args(cell=_core.GRU, T=4, B=2, I=3, H=5, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    G = _core.gate_count(cell) * H
    lstm = cell == _core.LSTM
    return dict(cell=cell, x=rng.standard_normal((T, B, I)).astype(dtype),
                h0=rng.standard_normal((B, H)).astype(dtype),
                c0=rng.standard_normal((B, H)).astype(dtype) if lstm else None,
                w_ih=rng.standard_normal((G, I)).astype(dtype),
                w_hh=rng.standard_normal((G, H)).astype(dtype),
                b_ih=rng.standard_normal(G).astype(dtype), b_hh=rng.standard_normal(G).astype(dtype),
                lengths=None, reverse=False, y=np.empty((T, B, H), dtype),
                h_n=np.empty((B, H), dtype), c_n=np.empty((B, H), dtype) if lstm else None,
                train=True)


def backward_args(fa):
    cache = _core.forward(**fa)
    x, h0 = fa["x"], fa["h0"]
    lstm = fa["cell"] == _core.LSTM
    return dict(cell=fa["cell"], x=x, w_ih=fa["w_ih"], w_hh=fa["w_hh"], lengths=fa["lengths"],
                reverse=fa["reverse"], cache=cache, dy=np.ones_like(fa["y"]), dh_n=np.ones_like(h0),
                dc_n=np.ones_like(h0) if lstm else None, dx=np.zeros_like(x), dh0=np.empty_like(h0),
                dc0=np.empty_like(h0) if lstm else None, dw_ih=np.zeros_like(fa["w_ih"]),
                dw_hh=np.zeros_like(fa["w_hh"]), db_ih=np.zeros_like(fa["b_ih"]),
                db_hh=np.zeros_like(fa["b_hh"]))


FORWARD_ARRAYS = ["x", "h0", "w_ih", "w_hh", "y", "h_n"]
BACKWARD_ARRAYS = ["x", "w_ih", "w_hh", "cache", "dx", "dh0", "dw_ih", "dw_hh"]


@pytest.mark.parametrize("name", FORWARD_ARRAYS)
@pytest.mark.parametrize("bad", [None, [[1.0]]], ids=["None", "list"])
def test_forward_names_a_non_array_argument(name, bad):
    with pytest.raises(TypeError, match=f"^{name} must be a numpy.ndarray, got"):
        _core.forward(**{**forward_args(), name: bad})


@pytest.mark.parametrize("name", BACKWARD_ARRAYS)
@pytest.mark.parametrize("bad", [None, [[1.0]]], ids=["None", "list"])
def test_backward_names_a_non_array_argument(name, bad):
    with pytest.raises(TypeError, match=f"^{name} must be a numpy.ndarray, got"):
        _core.backward(**{**backward_args(forward_args()), name: bad})


def test_wrong_dtype_x_is_blamed_on_x():
    fa = forward_args()
    with pytest.raises(TypeError, match="^x must be float32 or float64"):
        _core.forward(**{**fa, "x": fa["x"].astype(np.int64)})
    with pytest.raises(TypeError, match="^x must be float32 or float64.*>f4"):
        _core.forward(**{**fa, "x": fa["x"].astype(">f4")})
    with pytest.raises(TypeError, match="^h0 must be float64 like x"):
        _core.forward(**{**fa, "x": fa["x"].astype(np.float64)})


def test_sizes_that_overflow_the_index_types_are_refused():
    """G = 4 * 2**30 does not fit an int: refused before anything is allocated."""
    fa = forward_args(cell=_core.LSTM, B=0)
    H = 2 ** 30
    with pytest.raises(ValueError, match="sizes too large"):
        _core.forward(**{**fa, "h0": np.empty((0, H), np.float32)})


def misaligned(a):
    """A copy of a whose data starts one byte past an aligned address."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


@pytest.mark.parametrize("cell", CELLS)
def test_misaligned_inputs_give_the_aligned_result(cell):
    fa = forward_args(cell, dtype=np.float64)
    ba = backward_args(fa)
    _core.backward(**ba)
    want = [ba[k].copy() for k in ("dx", "dh0", "dw_ih", "dw_hh")]
    odd = backward_args(fa)
    odd["dy"], odd["x"], odd["dh_n"] = misaligned(odd["dy"]), misaligned(odd["x"]), misaligned(odd["dh_n"])
    _core.backward(**odd)
    for k, w in zip(("dx", "dh0", "dw_ih", "dw_hh"), want):
        assert np.array_equal(odd[k], w), k
    with pytest.raises(ValueError, match="dx must be aligned"):
        _core.backward(**{**backward_args(fa), "dx": misaligned(np.zeros_like(fa["x"]))})


def stream_weights(cell, sizes, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    G1 = _core.gate_count(cell)
    return [tuple((0.3 * rng.standard_normal(s)).astype(dtype)
                  for s in [(G1 * H, I), (G1 * H, H), (G1 * H,), (G1 * H,)]) for I, H in sizes]


@pytest.mark.parametrize("cell", CELLS)
def test_stream_refuses_malformed_weights(cell):
    w = stream_weights(cell, [(3, 5), (5, 5)])
    with pytest.raises(ValueError, match=r"weights\[0\] must be a \(w_ih, w_hh, b_ih, b_hh\) tuple"):
        _core.Stream(cell, [w[0][:2]], 1, np.float64)
    with pytest.raises(ValueError, match=r"weights\[1\] must be a"):
        _core.Stream(cell, [w[0], w[1][:3]], 1, np.float64)
    with pytest.raises(ValueError, match=r"weights\[0\].w_hh must be \(G, H\)"):
        _core.Stream(cell, [(w[0][0], w[0][1].ravel(), None, None)], 1, np.float64)
    with pytest.raises(ValueError, match=r"weights\[0\].w_ih must have shape"):
        _core.Stream(cell, [(w[0][0].ravel(), w[0][1], None, None)], 1, np.float64)
    wide = stream_weights(cell, [(3, 5), (7, 5)])  # layer 1 takes 7 inputs, layer 0 gives 5
    with pytest.raises(ValueError, match=r"weights\[1\].w_ih must have shape \(\d+, 5\), got \(\d+, 7\)"):
        _core.Stream(cell, wide, 1, np.float64)
    with pytest.raises(ValueError, match=r"weights\[0\].b_ih must have shape"):
        _core.Stream(cell, [(w[0][0], w[0][1], w[0][2][:-1], None)], 1, np.float64)
    with pytest.raises(TypeError, match=r"weights\[0\].w_ih must be a real floating array"):
        _core.Stream(cell, [(w[0][0].astype(np.int32), w[0][1], None, None)], 1, np.float64)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_step_takes_byte_swapped_misaligned_and_strided_input(cell, dtype):
    w = stream_weights(cell, [(6, 20)], dtype)
    x = np.random.default_rng(1).standard_normal((5, 2, 6)).astype(dtype)
    ref = _core.Stream(cell, w, 2, dtype)
    want = [ref.step(x[t]) for t in range(5)]
    for variant in (lambda a: a.astype(a.dtype.newbyteorder(">")), misaligned,
                    lambda a: np.asfortranarray(a), lambda a: np.repeat(a, 2, axis=1)[:, ::2]):
        s = _core.Stream(cell, w, 2, dtype)
        for t in range(5):
            given = variant(x[t])
            before = given.copy()
            assert np.array_equal(s.step(given), want[t])
            assert np.array_equal(given, before)


VARIANTS = rnnx.layers.variants()     # variant name -> (layer class, its options)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fill", [np.nan, np.inf])
def test_padding_contributes_nothing_to_any_gradient(variant, dtype, fill):
    """The layer API with lengths: x past each row's length holds NaN or Inf; every
    output and gradient equals the run with zero padding (and is finite)."""
    cls, kw = VARIANTS[variant]
    layer = cls(4, 18, dtype=dtype, seed=0, bidirectional=True, **kw)
    T, B = 5, 6
    rng = np.random.default_rng(2)
    lengths = np.array([5, 1, 3, 2, 5, 4])
    x = rng.standard_normal((T, B, 4)).astype(dtype)
    for b, n in enumerate(lengths):
        x[n:, b] = 0
    dy = rng.standard_normal((T, B, 36)).astype(dtype)
    y0, _, cache0 = layer.forward(x, None, lengths)
    dx0, _, g0 = layer.backward(cache0, dy)
    bad = x.copy()
    for b, n in enumerate(lengths):
        bad[n:, b] = fill
    y1, _, cache1 = layer.forward(bad, None, lengths)
    dx1, _, g1 = layer.backward(cache1, dy)
    assert np.array_equal(y0, y1)
    assert np.array_equal(dx0, dx1)
    for name in g0:
        assert np.all(np.isfinite(g1[name])), name
        assert np.array_equal(g0[name], g1[name]), name

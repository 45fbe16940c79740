"""A single rnnx layer against its slow twin (rnnx.reference), the calculus and PyTorch,
and the layer API's promises about bad input, memory layout, aliasing and empty input.

Multi-layer stacks, batch_first, unbatched input, chunking and streaming are in test_layers.py.
"""
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose

import rnnx
from rnnx import reference as ref
from shared import TORCH_VARIANTS, VARIANTS, assert_close_scaled, central_difference

DTYPES = [np.float64, np.float32]
PARAM_NAMES = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]

# Tolerances against the float64 reference run on the same values. Both sides do the same
# arithmetic in a different order (BLAS blocking, pre-summed biases), so float64 agrees to
# ~1e-15 relative per operation and a few hundred operations along a chain stay far inside
# 1e-10. float32 (eps 6e-8) accumulates to ~1e-6 over the same chains; 1e-5 leaves margin
# yet catches any wrong term, which is off by O(1e-2) or more. The absolute part is scaled
# by the largest magnitude of the expected array, so that gradients summed over many steps
# (large values that cancel to small ones) are judged relative to the numbers they come from.
TOL = {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-5, 1e-5)}


def assert_close(actual, expected, dtype, what=""):
    assert_close_scaled(actual, expected, dtype, *TOL[np.dtype(dtype)], what)


def is_lstm(variant):
    return variant == "lstm"


def make_layer(variant, I, H, dtype=np.float64, weight_scale=0.8, seed=0, **kwargs):
    """A layer with random weights uniform(-weight_scale, weight_scale), loaded through
    load_state_dict (larger than the default init so every nonlinearity is exercised)."""
    class_name, extra = VARIANTS[variant]
    layer = getattr(rnnx, class_name)(I, H, dtype=dtype, seed=seed, **extra, **kwargs)
    rng = np.random.default_rng(seed + 100)
    layer.load_state_dict({k: rng.uniform(-weight_scale, weight_scale, v.shape).astype(dtype)
                           for k, v in layer.state_dict().items()})
    return layer


def random_state(variant, shape, dtype, rng, scale=0.5):
    h = (scale * rng.standard_normal(shape)).astype(dtype)
    if is_lstm(variant):
        return h, (scale * rng.standard_normal(shape)).astype(dtype)
    return h


def state_parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def reference_forward(variant, x, h0, c0, w, lengths, reverse):
    """One direction of the reference: returns (y, [h_n, c_n]), cache."""
    cell, kwargs = VARIANTS[variant]
    if cell == "LSTM":
        y, h_n, c_n, cache = ref.lstm_forward(x, h0, c0, *w, lengths=lengths, reverse=reverse)
        return y, [h_n, c_n], cache
    fn = ref.rnn_forward if cell == "RNN" else ref.gru_forward
    y, h_n, cache = fn(x, h0, *w, **kwargs, lengths=lengths, reverse=reverse)
    return y, [h_n], cache


def reference_backward(variant, dy, dstate_parts, cache):
    """Returns dx, [dh0, dc0], [dw_ih, dw_hh, db_ih, db_hh]."""
    cell, _ = VARIANTS[variant]
    if cell == "LSTM":
        dx, dh0, dc0, *dw = ref.lstm_backward(dy, *dstate_parts, cache)
        return dx, [dh0, dc0], dw
    fn = ref.rnn_backward if cell == "RNN" else ref.gru_backward
    dx, dh0, *dw = fn(dy, *dstate_parts, cache)
    return dx, [dh0], dw


def reference_layer(variant, params, x, state, lengths, dy, dstate, num_directions):
    """A single-layer (uni- or bidirectional) layer in float64 from the reference.
    x (T,B,I), state parts (D,B,H), dy (T,B,D*H). Returns y, state parts, dx, dstate0 parts, grads."""
    f64 = lambda a: None if a is None else np.asarray(a, np.float64)
    x, dy = f64(x), f64(dy)
    state, dstate = [f64(s) for s in state_parts(state)], [f64(s) for s in state_parts(dstate)]
    H = params["weight_hh_l0"].shape[1]
    ys, finals, dx, dstate0, grads = [], [[] for _ in state], np.zeros_like(x), [[] for _ in state], {}
    for d, suffix in enumerate(["", "_reverse"][:num_directions]):
        w = [f64(params.get(f"{n}_l0{suffix}")) for n in PARAM_NAMES]
        h0, c0 = state[0][d], (state[1][d] if len(state) == 2 else None)
        y, final, cache = reference_forward(variant, x, h0, c0, w, lengths, reverse=(d == 1))
        dx_d, d0, dw = reference_backward(variant, dy[:, :, d * H:(d + 1) * H], [s[d] for s in dstate], cache)
        ys.append(y)
        dx += dx_d
        for k in range(len(state)):
            finals[k].append(final[k])
            dstate0[k].append(d0[k])
        grads.update({f"{n}_l0{suffix}": g for n, g in zip(PARAM_NAMES, dw) if g is not None})
    return (np.concatenate(ys, axis=2), [np.stack(f) for f in finals], dx,
            [np.stack(g) for g in dstate0], grads)


def check_against_reference(variant, dtype, T, B, I, H, bias=True, bidirectional=False, lengths=None,
                            weight_scale=0.8, seed=0):
    D = 2 if bidirectional else 1
    layer = make_layer(variant, I, H, dtype, weight_scale, seed, bias=bias, bidirectional=bidirectional)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state = random_state(variant, (D, B, H), dtype, rng)
    dy = rng.standard_normal((T, B, D * H)).astype(dtype)
    dstate = random_state(variant, (D, B, H), dtype, rng, scale=1.0)

    y, state_n, cache = layer.forward(x, state, lengths)
    dx, dstate0, grads = layer.backward(cache, dy, dstate)
    y_ref, state_ref, dx_ref, dstate0_ref, grads_ref = reference_layer(
        variant, layer.state_dict(), x, state, lengths, dy, dstate, D)

    assert_close(y, y_ref, dtype, "y")
    assert isinstance(state_n, tuple) == is_lstm(variant) and isinstance(dstate0, tuple) == is_lstm(variant)
    for k, (ours, theirs) in enumerate(zip(state_parts(state_n), state_ref)):
        assert_close(ours, theirs, dtype, f"state[{k}]")
    assert_close(dx, dx_ref, dtype, "dx")
    for k, (ours, theirs) in enumerate(zip(state_parts(dstate0), dstate0_ref)):
        assert_close(ours, theirs, dtype, f"dstate0[{k}]")
    assert set(grads) == set(layer.state_dict()) == set(grads_ref)
    for name in grads_ref:
        assert_close(grads[name], grads_ref[name], dtype, f"grads[{name!r}]")
    return y


SHAPES = [(1, 1, 1, 1), (1, 4, 3, 2), (6, 1, 2, 5), (5, 3, 4, 1), (7, 3, 4, 4), (6, 2, 3, 5)]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=["T{}-B{}-I{}-H{}".format(*s) for s in SHAPES])
def test_matches_reference_across_shapes(variant, dtype, shape):
    check_against_reference(variant, dtype, *shape)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
def test_matches_reference_options(variant, dtype, bias, bidirectional, use_lengths):
    lengths = np.array([6, 1, 4, 2]) if use_lengths else None
    check_against_reference(variant, dtype, 6, 4, 3, 5, bias, bidirectional, lengths)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_long_sequence_is_stable(variant, dtype):
    """T=1000, small H, lengths from 1 to T. Weights 0.5/sqrt(H) keep even relu contractive,
    so a drifting or exploding kernel shows up as a mismatch, not as honest overflow."""
    T, H = 1000, 3
    y = check_against_reference(variant, dtype, T, 3, 2, H, lengths=np.array([T, 1, 617]),
                                weight_scale=0.5 / np.sqrt(H))
    assert np.all(np.isfinite(y)) and np.max(np.abs(y[-1, 0])) > 1e-4


# ---------------------------------------------------------------------------------------
# Central finite differences through layer.forward / layer.backward (float64).

def linear_loss(layer, x, state, lengths, dy, dstate):
    """L = sum(y * dy) + sum(h_n * dh_n) [+ sum(c_n * dc_n)], whose gradient wrt y, h_n, c_n
    is dy, dstate: so backward(cache, dy, dstate) must return the gradient of L."""
    y, state_n, _ = layer.forward(x, state, lengths)
    return float(np.sum(y * dy)) + sum(float(np.sum(s * ds)) for s, ds in zip(state_parts(state_n), state_parts(dstate)))


def finite_difference_check(layer, x, state, lengths, dy, dstate, eps=1e-6):
    """Compare backward with (L(p + eps) - L(p - eps)) / 2 eps for every element of every
    parameter, of x and of the initial state."""
    _, _, cache = layer.forward(x, state, lengths)
    dx, dstate0, grads = layer.backward(cache, dy, dstate)
    loss = lambda x_, state_: linear_loss(layer, x_, state_, lengths, dy, dstate)
    # float64 central differences: truncation ~eps^2, rounding ~1e-16 * |L| / eps, so
    # ~1e-9 here; a wrong term in a gradient is off by far more than 1e-6.
    tol = dict(rtol=1e-6, atol=1e-8)

    def numeric(array, evaluate):
        return central_difference(evaluate, array, eps)

    x_work = x.copy()
    assert_allclose(dx, numeric(x_work, lambda: loss(x_work, state)), **tol, err_msg="dx")
    parts = [p.copy() for p in state_parts(state)]
    as_state = lambda: tuple(parts) if isinstance(state, tuple) else parts[0]
    for k, part in enumerate(parts):
        assert_allclose(state_parts(dstate0)[k], numeric(part, lambda: loss(x, as_state())), **tol,
                        err_msg=f"dstate0[{k}]")
    weights = layer.state_dict()
    for name, value in weights.items():
        def evaluate():
            layer.load_state_dict(weights)
            return loss(x, state)
        assert_allclose(grads[name], numeric(value, evaluate), **tol, err_msg=f"grads[{name!r}]")
    layer.load_state_dict(weights)


FD_CONFIGS = {
    "uni": dict(),
    "bi_lengths": dict(bidirectional=True, lengths=np.array([4, 1, 3])),
    "nobias_lengths": dict(bias=False, lengths=np.array([2, 4, 1])),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("config", list(FD_CONFIGS))
def test_gradients_match_finite_differences(variant, config):
    options = dict(FD_CONFIGS[config])
    lengths = options.pop("lengths", None)
    T, B, I, H = 4, 3, 3, 2
    D = 2 if options.get("bidirectional") else 1
    layer = make_layer(variant, I, H, np.float64, **options)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I))
    state = random_state(variant, (D, B, H), np.float64, rng)
    dy = rng.standard_normal((T, B, D * H))
    dstate = random_state(variant, (D, B, H), np.float64, rng, scale=1.0)
    finite_difference_check(layer, x, state, lengths, dy, dstate)


# ---------------------------------------------------------------------------------------
# PyTorch autograd, single layer (multi-layer stacks are in test_layers.py).

def torch_module(torch, variant, I, H, dtype, **kwargs):
    cell, extra = VARIANTS[variant]
    extra = {k: v for k, v in extra.items() if k != "reset_after"}   # torch's GRU is reset_after=True
    module = getattr(torch.nn, cell)(I, H, **extra, **kwargs)
    return module.double() if dtype == np.float64 else module


@pytest.mark.parametrize("variant", TORCH_VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("bidirectional,use_lengths", [(False, False), (True, True)], ids=["uni", "bi_lengths"])
def test_matches_torch_single_layer(variant, dtype, bidirectional, use_lengths):
    torch = pytest.importorskip("torch")
    T, B, I, H = 5, 3, 4, 3
    D = 2 if bidirectional else 1
    torch.manual_seed(0)
    module = torch_module(torch, variant, I, H, dtype, bidirectional=bidirectional)
    class_name, extra = VARIANTS[variant]
    layer = getattr(rnnx, class_name)(I, H, bidirectional=bidirectional, dtype=dtype, **extra)
    layer.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})

    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state = random_state(variant, (D, B, H), dtype, rng)
    dy = rng.standard_normal((T, B, D * H)).astype(dtype)
    dstate = random_state(variant, (D, B, H), dtype, rng, scale=1.0)
    lengths = np.array([5, 1, 3]) if use_lengths else None

    tx = torch.tensor(x, requires_grad=True)
    tstate = [torch.tensor(s, requires_grad=True) for s in state_parts(state)]
    tin = tx
    if use_lengths:
        tin = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False)
    tout, tfinal = module(tin, tuple(tstate) if is_lstm(variant) else tstate[0])
    if use_lengths:
        tout = torch.nn.utils.rnn.pad_packed_sequence(tout, total_length=T)[0]
    tfinal = list(tfinal) if is_lstm(variant) else [tfinal]
    loss = (tout * torch.tensor(dy)).sum() + sum((f * torch.tensor(d)).sum() for f, d in zip(tfinal, state_parts(dstate)))
    loss.backward()

    y, state_n, cache = layer.forward(x, state, lengths)
    dx, dstate0, grads = layer.backward(cache, dy, dstate)
    # torch is a second implementation with its own summation order: same tolerances as the reference
    assert_close(y, tout.detach().numpy(), dtype, "y")
    assert_close(dx, tx.grad.numpy(), dtype, "dx")
    for k in range(len(tstate)):
        assert_close(state_parts(state_n)[k], tfinal[k].detach().numpy(), dtype, f"state[{k}]")
        assert_close(state_parts(dstate0)[k], tstate[k].grad.numpy(), dtype, f"dstate0[{k}]")
    for name, p in module.named_parameters():
        assert_close(grads[name], p.grad.numpy(), dtype, f"grads[{name!r}]")


# ---------------------------------------------------------------------------------------
# Bad input: ValueError / TypeError naming the argument and what was given.

ERROR_VARIANTS = ["rnn_tanh", "lstm", "gru_reset_after"]
T_, B_, I_, H_ = 5, 2, 3, 4


def good_inputs(variant, rng=None):
    rng = rng or np.random.default_rng(0)
    return rng.standard_normal((T_, B_, I_)), random_state(variant, (1, B_, H_), np.float64, rng)


def raises_naming(argument, *also):
    """pytest.raises for ValueError/TypeError whose message names the argument (as a word)
    and contains each of `also` (e.g. the shape that was given)."""
    lookaheads = [rf"(?=.*(?<![A-Za-z_]){re.escape(argument)}(?![A-Za-z_]))"]
    lookaheads += [rf"(?=.*{re.escape(str(text))})" for text in also]
    return pytest.raises((ValueError, TypeError), match="(?s)^" + "".join(lookaheads))


def bad_x_cases():
    return {
        "rank1": np.zeros(I_), "rank4": np.zeros((T_, B_, I_, 1)), "features": np.zeros((T_, B_, I_ + 1)),
        "int": np.zeros((T_, B_, I_), dtype=np.int64), "complex": np.zeros((T_, B_, I_), dtype=np.complex128),
    }


@pytest.mark.parametrize("variant", ERROR_VARIANTS)
@pytest.mark.parametrize("case", list(bad_x_cases()))
def test_bad_x_raises(variant, case):
    layer = make_layer(variant, I_, H_)
    bad = bad_x_cases()[case]
    given = bad.dtype.name if case in ("int", "complex") else bad.shape
    with raises_naming("x", given):
        layer.forward(bad)
    with raises_naming("x", given):
        layer(bad)


def bad_state_cases(variant):
    ok = np.zeros((1, B_, H_))
    shapes = {"batch": (1, B_ + 1, H_), "hidden": (1, B_, H_ + 1), "layers": (2, B_, H_), "rank": (B_, H_)}
    cases = {name: (np.zeros(shape), shape) for name, shape in shapes.items()}
    cases["int"] = (np.zeros((1, B_, H_), dtype=np.int64), "int64")
    if is_lstm(variant):
        cases = {name: ((ok, bad), given) for name, (bad, given) in cases.items()}  # a bad c
        cases["h_only"] = (ok, None)
        cases["triple"] = ((ok, ok, ok), None)
        cases["bad_h"] = ((np.zeros((1, B_, H_ + 1)), ok), (1, B_, H_ + 1))
    return cases


@pytest.mark.parametrize("variant,case", [(v, c) for v in ERROR_VARIANTS for c in bad_state_cases(v)])
def test_bad_state_raises(variant, case):
    layer = make_layer(variant, I_, H_)
    x, _ = good_inputs(variant)
    bad, given = bad_state_cases(variant)[case]
    with raises_naming("state", *([given] if given is not None else [])):
        layer.forward(x, bad)


@pytest.mark.parametrize("variant", ERROR_VARIANTS)
@pytest.mark.parametrize("bad", [[2**40, 5], [6, 5], [-1, 5], [5, 5, 5], [[5, 5]], [5]],
                         ids=["huge", "above_T", "negative", "too_long", "rank2", "too_short"])
def test_bad_lengths_raise(variant, bad):
    layer = make_layer(variant, I_, H_)
    x, state = good_inputs(variant)
    with raises_naming("lengths"):
        layer.forward(x, state, np.array(bad))
    with raises_naming("lengths"):
        layer(x, state, np.array(bad))


@pytest.mark.parametrize("variant", ERROR_VARIANTS)
def test_bad_cache_raises(variant):
    layer = make_layer(variant, I_, H_)
    x, state = good_inputs(variant)
    dy = np.ones((T_, B_, H_))
    twin = make_layer(variant, I_, H_, seed=7)              # same config, another instance
    other_cell = make_layer("gru_reset_after" if variant == "lstm" else "lstm", I_, H_)
    foreign = {
        "None": None, "string": "cache", "dict": {}, "tuple": (1, 2, 3),
        "twin": twin.forward(x, state)[2],
        "other_cell": other_cell.forward(x)[2],
    }
    for name, cache in foreign.items():
        with raises_naming("cache"):
            layer.backward(cache, dy)
            pytest.fail(f"backward accepted a {name} cache")


@pytest.mark.parametrize("variant", ERROR_VARIANTS)
def test_bad_backward_gradients_raise(variant):
    layer = make_layer(variant, I_, H_)
    x, state = good_inputs(variant)
    _, _, cache = layer.forward(x, state)
    with raises_naming("dy", (T_, B_, H_ + 1)):
        layer.backward(cache, np.ones((T_, B_, H_ + 1)))
    with raises_naming("dy", (T_ - 1, B_, H_)):
        layer.backward(cache, np.ones((T_ - 1, B_, H_)))
    bad_h = np.ones((1, B_ + 1, H_))
    bad_dstate = (bad_h, np.ones((1, B_, H_))) if is_lstm(variant) else bad_h
    with raises_naming("dstate", (1, B_ + 1, H_)):
        layer.backward(cache, np.ones((T_, B_, H_)), bad_dstate)


# ---------------------------------------------------------------------------------------
# Memory layout and aliasing.

def strided(a):
    """The same values as a, as a non-contiguous view (every other element of a larger array)."""
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    view = big[..., ::2]
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    return view


def fortran(a):
    f = np.asfortranarray(a)
    assert a.ndim < 2 or not f.flags.c_contiguous
    return f


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("layout", [strided, fortran], ids=["strided", "fortran"])
def test_layout_does_not_change_the_answer(variant, dtype, layout):
    T, B, I, H = 5, 3, 4, 3
    layer = make_layer(variant, I, H, dtype, bidirectional=True)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state = random_state(variant, (2, B, H), dtype, rng)
    dy = rng.standard_normal((T, B, 2 * H)).astype(dtype)
    dstate = random_state(variant, (2, B, H), dtype, rng)
    lengths = np.array([5, 2, 4])
    relayout = lambda s: tuple(layout(p) for p in s) if isinstance(s, tuple) else layout(s)

    def run(layer, x, state, dy, dstate, lengths):
        y, state_n, cache = layer.forward(x, state, lengths)
        dx, dstate0, grads = layer.backward(cache, dy, dstate)
        return [y, *state_parts(state_n), dx, *state_parts(dstate0)] + [grads[k] for k in sorted(grads)]

    expected = run(layer, x, state, dy, dstate, lengths)
    other = make_layer(variant, I, H, dtype, bidirectional=True)
    other.load_state_dict({k: layout(v) for k, v in layer.state_dict().items()})
    got = run(other, layout(x), relayout(state), layout(dy), relayout(dstate), strided(lengths))
    # Same values, same arithmetic: only BLAS kernels that depend on alignment may move the last bits.
    rtol = 1e-13 if dtype == np.float64 else 1e-6
    for k, (a, b) in enumerate(zip(got, expected)):
        scale = max(1.0, float(np.max(np.abs(b))))
        assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=f"output #{k}")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_inputs_are_never_modified(variant, dtype):
    T, B, I, H = 4, 3, 2, 3
    class_name, extra = VARIANTS[variant]
    layer = getattr(rnnx, class_name)(I, H, bidirectional=True, dtype=dtype, seed=1, **extra)
    rng = np.random.default_rng(4)
    weights = {k: rng.uniform(-1, 1, v.shape).astype(dtype) for k, v in layer.state_dict().items()}
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state = random_state(variant, (2, B, H), dtype, rng)
    dy = rng.standard_normal((T, B, 2 * H)).astype(dtype)
    dstate = random_state(variant, (2, B, H), dtype, rng)
    lengths = np.array([4, 1, 2])
    inputs = [x, *state_parts(state), dy, *state_parts(dstate), lengths, *weights.values()]
    before = [a.copy() for a in inputs]

    layer.load_state_dict(weights)
    y, _, cache = layer.forward(x, state, lengths)
    layer(x, state, lengths)
    layer.backward(cache, dy, dstate)
    for p in layer.parameters().values():   # an optimizer step must not reach the caller's arrays
        p += 1
    for k, (a, b) in enumerate(zip(inputs, before)):
        assert np.array_equal(a, b), f"input #{k} was modified"


# ---------------------------------------------------------------------------------------
# T = 0: nothing happens, and the calculus still holds (h_n = h0, so dh0 = dh_n).

@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
def test_empty_sequence(variant, layout):
    B, I, H = 2, 3, 4
    layer = make_layer(variant, I, H, np.float64, bidirectional=True, batch_first=(layout == "batch_first"))
    rng = np.random.default_rng(5)
    x_shape = {"time_major": (0, B, I), "batch_first": (B, 0, I), "unbatched": (0, I)}[layout]
    y_shape = x_shape[:-1] + (2 * H,)
    s_shape = (2, H) if layout == "unbatched" else (2, B, H)
    x = np.zeros(x_shape)
    state = random_state(variant, s_shape, np.float64, rng)
    dstate = random_state(variant, s_shape, np.float64, rng)

    y, state_n, cache = layer.forward(x, state)
    assert y.shape == y_shape and y.dtype == np.float64
    for ours, given in zip(state_parts(state_n), state_parts(state)):
        assert np.array_equal(ours, given), "T=0 must return the initial state unchanged"
    for part in state_parts(layer(x)[1]):
        assert part.shape == s_shape and not np.any(part), "T=0 with state=None must return zeros"

    dx, dstate0, grads = layer.backward(cache, np.zeros(y_shape), dstate)
    assert dx.shape == x_shape
    for ours, given in zip(state_parts(dstate0), state_parts(dstate)):
        assert np.array_equal(ours, given), "with T=0, h_n = h0, so dstate0 must equal dstate"
    assert set(grads) == set(layer.state_dict())
    for name, value in layer.state_dict().items():
        assert grads[name].shape == value.shape and not np.any(grads[name]), name


# ---------------------------------------------------------------------------------------
# load_state_dict is strict and atomic; state_dict copies; parameters() is live.

@pytest.mark.parametrize("variant", ERROR_VARIANTS)
@pytest.mark.parametrize("mistake", ["shape", "unknown_key", "missing_key"])
def test_load_state_dict_rejects_and_leaves_layer_unchanged(variant, mistake):
    layer = make_layer(variant, I_, H_, bidirectional=True)
    x, _ = good_inputs(variant)
    before, y_before = layer.state_dict(), layer(x)[0]
    bad = {k: v + 1 for k, v in before.items()}   # every valid entry differs from the layer's
    G = before["weight_hh_l0"].shape[0]
    if mistake == "shape":
        bad["weight_hh_l0_reverse"] = np.zeros((G, H_ + 1))
        expect = raises_naming("weight_hh_l0_reverse", (G, H_), (G, H_ + 1))
    elif mistake == "unknown_key":
        bad["weight_hh_l1"] = np.zeros((G, H_))
        expect = raises_naming("weight_hh_l1")
    else:
        del bad["bias_ih_l0_reverse"]
        expect = raises_naming("bias_ih_l0_reverse")
    with expect as info:
        layer.load_state_dict(bad)
    assert info.type is ValueError
    after = layer.state_dict()
    assert set(after) == set(before)
    for k in before:
        assert np.array_equal(after[k], before[k]), f"{k} changed although load_state_dict failed"
    assert np.array_equal(layer(x)[0], y_before)


@pytest.mark.parametrize("variant", ERROR_VARIANTS)
def test_state_dict_is_a_copy_and_parameters_are_live(variant):
    layer = make_layer(variant, I_, H_)
    x, state = good_inputs(variant)
    y0 = layer(x, state)[0]
    for v in layer.state_dict().values():
        v[...] = 0
    assert np.array_equal(layer(x, state)[0], y0), "state_dict() must return copies"

    params = layer.parameters()
    assert set(params) == set(layer.state_dict())
    params["weight_hh_l0"] *= 0.5
    expected = make_layer(variant, I_, H_)
    weights = expected.state_dict()
    weights["weight_hh_l0"] *= 0.5
    expected.load_state_dict(weights)
    y1 = layer(x, state)[0]
    assert not np.array_equal(y1, y0), "an in-place change of parameters() must reach the layer"
    assert np.array_equal(y1, expected(x, state)[0])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_none_gradients_mean_zeros(variant):
    """backward(cache, None, None) is backward with dy and dstate all zeros: zero gradients."""
    layer = make_layer(variant, I_, H_, bidirectional=True)
    x, _ = good_inputs(variant)
    _, state_n, cache = layer.forward(x, lengths=np.array([5, 3]))
    zeros = tuple(np.zeros_like(p) for p in state_parts(state_n))
    from_none = layer.backward(cache, None)
    from_zeros = layer.backward(cache, np.zeros((T_, B_, 2 * H_)), zeros if is_lstm(variant) else zeros[0])
    for got in (from_none, from_zeros):
        dx, dstate0, grads = got
        assert dx.shape == x.shape and not np.any(dx)
        assert all(p.shape == (2, B_, H_) and not np.any(p) for p in state_parts(dstate0))
        assert set(grads) == set(layer.state_dict()) and not any(np.any(g) for g in grads.values())

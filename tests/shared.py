"""What the tests share: the layer variants under test, the central-difference gradient
the backward passes are checked against, and the closeness check used against the
reference and PyTorch."""
import importlib
import os

import numpy as np
import pytest
from numpy.testing import assert_allclose

TORCH_VARIANTS = ["rnn_tanh", "rnn_relu", "lstm", "gru_reset_after"]  # reset_after=False has no torch twin


def __getattr__(name):
    """VARIANTS, made on first use (so that the tests of the reference alone, which import
    this module too, run without the compiled core): variant name -> (layer class name,
    constructor keyword arguments), one per cell of the core's table (rnnx.layers.variants)."""
    if name != "VARIANTS":
        raise AttributeError(name)
    from rnnx.layers import variants
    global VARIANTS
    VARIANTS = {variant: (cls.__name__, options) for variant, (cls, options) in variants().items()}
    return VARIANTS


def peer(name):
    """An optional peer module (torch, onnx, onnxruntime, ...); in CI a missing peer fails
    the run instead of skipping the test."""
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(name)


def assert_chunks_equal_whole(layer, x, chunk):
    """A float64 layer run in chunks of `chunk` steps, carrying the state, gives the one
    long run's y and final state bit for bit."""
    y, state = layer(x)
    carried, parts = None, []
    for a in range(0, x.shape[0], chunk):
        part, carried = layer(x[a:a + chunk], carried)
        parts.append(part)
    assert np.array_equal(np.concatenate(parts), y)
    assert all(np.array_equal(a, b) for a, b in zip(state, carried))


def assert_checkpointed_equals_plain(layer, x, state, lengths, dy, dstate, checkpoint=2):
    """Checkpointed BPTT gives plain BPTT's y, final state, dx, initial-state gradient and
    parameter gradients bit for bit in float64."""
    y, final, cache = layer.forward(x, state, lengths)
    expected = layer.backward(cache, dy, dstate)
    y2, final2, cache2 = layer.forward(x, state, lengths, checkpoint=checkpoint)
    got = layer.backward(cache2, dy, dstate)
    assert np.array_equal(y, y2) and all(np.array_equal(a, b) for a, b in zip(final, final2))
    assert np.array_equal(got[0], expected[0])
    assert all(np.array_equal(a, b) for a, b in zip(got[1], expected[1]))
    for name in expected[2]:
        assert np.array_equal(got[2][name], expected[2][name]), name


def assert_npz_round_trip(model, folder, x, lengths=None):
    """rnnx.save to a .npz in folder and rnnx.load give the same parameters and the same
    outputs on x, bit for bit; returns the loaded model."""
    import rnnx
    path = os.fspath(folder / "model.npz")
    rnnx.save(model, path)
    loaded = rnnx.load(path)
    assert np.array_equal(loaded(x, lengths=lengths)[0], model(x, lengths=lengths)[0])
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        assert np.array_equal(loaded.state_dict()[name], value), name
    return loaded


def central_difference(evaluate, array, eps=1e-6):
    """d evaluate() / d array by (L(p + eps) - L(p - eps)) / 2 eps, element by element.

    array is perturbed in place and restored; evaluate() reads it and returns a
    scalar.  In float64 the truncation error is ~eps^2 and the rounding error
    ~1e-16 * |L| / eps, so eps = 1e-6 agrees with an exact gradient to ~1e-8."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = evaluate()
        array[index] = original - eps
        minus = evaluate()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def assert_close_scaled(actual, expected, dtype, rtol, atol, what=""):
    """actual is an ndarray of expected's shape and of dtype, and equals expected to rtol,
    with atol scaled by expected's largest magnitude (at least 1): a gradient summed over
    many steps is judged against the size of the terms it was summed from."""
    expected = np.asarray(expected)
    assert isinstance(actual, np.ndarray), f"{what}: expected an ndarray, got {type(actual)}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype} != {np.dtype(dtype)}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def core_forward_backward(cell, x, h0, c0, weights, lens, reverse, dy, dh_n, dc_n, path):
    """One direction through the binding, training forward then backward:
    [y, h_n, (c_n), dx, dh0, (dc0), dw_ih, dw_hh, db_ih, db_hh] (c_n, dc0 for LSTM only)."""
    from rnnx import _core
    w_ih, w_hh, b_ih, b_hh = weights
    T, B, _ = x.shape
    H = h0.shape[1]
    lstm = cell == _core.LSTM
    y = np.empty((T, B, H), x.dtype)
    h_n = np.empty((B, H), x.dtype)
    c_n = np.empty((B, H), x.dtype) if lstm else None
    cache = _core.forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lens, reverse, y, h_n, c_n,
                          True, path)
    grads = [np.zeros_like(a) for a in (x, w_ih, w_hh, b_ih, b_hh)]
    dh0 = np.empty_like(h0)
    dc0 = np.empty_like(h0) if lstm else None
    _core.backward(cell, x, w_ih, w_hh, lens, reverse, cache, dy, dh_n, dc_n if lstm else None,
                   grads[0], dh0, dc0, *grads[1:], path)
    states = [h_n, c_n] if lstm else [h_n]
    dstates = [dh0, dc0] if lstm else [dh0]
    return [y] + states + [grads[0]] + dstates + grads[1:]

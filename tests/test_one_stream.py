"""The core's one stream (csrc/stream/, rnnx._core.Stream): T steps of every cell, with and
without biases, with an LSTM's projection and peepholes, in both dtypes, equal the
whole-sequence core (rnnx_forward with row_exact) bit for bit, and the NumPy reference
closely; an Embedding first and Dense heads equal a NumPy twin of their arithmetic bit for
bit; ids out of range are refused before the state changes; bit_exact is a named flag."""
import numpy as np
import pytest

from rnnx import _core, reference

T, B, I, H, P, L = 6, 3, 5, 8, 3, 2

# (cell code, projection, peepholes)
CELLS = [_core.RNN_TANH, _core.RNN_RELU, _core.LSTM, _core.GRU, _core.GRU_RESET_BEFORE]
VARIANTS = [(cell, False, False) for cell in CELLS] + \
    [(_core.LSTM, True, False), (_core.LSTM, False, True), (_core.LSTM, True, True)]


REFERENCE_NAMES = {_core.RNN_TANH: "rnn_tanh", _core.RNN_RELU: "rnn_relu", _core.LSTM: "lstm",
                   _core.GRU: "gru_reset_after", _core.GRU_RESET_BEFORE: "gru_reset_before"}


def gates(cell):
    return _core.gate_count(cell)


def stack_weights(cell, proj, peep, bias, dtype, rng):
    """L sub-layers' (w_ih, w_hh, b_ih, b_hh, w_peep, w_hr)."""
    G, S = gates(cell) * H, P if proj else H
    subs = []
    for k in range(L):
        def r(*shape):
            return (0.4 * rng.standard_normal(shape)).astype(dtype)
        subs.append((r(G, I if k == 0 else S), r(G, S), r(G) if bias else None,
                     r(G) if bias else None, r(3 * H) if peep else None,
                     r(P, H) if proj else None))
    return subs


def whole_sequence(cell, subs, x, dtype):
    """The stack over x (T,B,I) by _core.forward, one call per sub-layer, row_exact."""
    h_n, c_n = [], []
    for w_ih, w_hh, b_ih, b_hh, w_peep, w_hr in subs:
        S = w_hh.shape[1]
        y = np.empty((x.shape[0], B, S), dtype)
        h, c = np.empty((B, S), dtype), np.empty((B, H), dtype)
        has_c = cell == _core.LSTM
        _core.forward(cell, x, np.zeros((B, S), dtype), np.zeros((B, H), dtype) if has_c else None,
                      w_ih, w_hh, b_ih, b_hh, None, False, y, h, c if has_c else None, False,
                      w_hr=w_hr, w_peep=w_peep, row_exact=True)
        h_n.append(h)
        c_n.append(c)
        x = y
    return x, np.stack(h_n), np.stack(c_n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cell,proj,peep", VARIANTS)
def test_steps_equal_the_whole_sequence_bit_for_bit(cell, proj, peep, bias, dtype):
    rng = np.random.default_rng(cell * 7 + 2 * proj + peep)
    subs = stack_weights(cell, proj, peep, bias, dtype, rng)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    y_whole, h_whole, c_whole = whole_sequence(cell, subs, x, dtype)
    stream = _core.Stream(cell, subs, B, dtype)
    y = np.stack([stream.step(x[t]) for t in range(T)])
    assert np.array_equal(y, y_whole)
    h, c = stream.get_state()
    assert np.array_equal(h, h_whole)
    if cell == _core.LSTM:
        assert np.array_equal(c, c_whole)
    stream.set_state(None, None)                     # run: the same steps in one call
    assert np.array_equal(stream.run(x), y_whole)
    assert not np.array_equal(stream.run(x), y_whole)   # the state went on

    # the NumPy reference, independently
    ref = x.astype(np.float64)
    for w_ih, w_hh, b_ih, b_hh, w_peep, w_hr in subs:
        as64 = [None if w is None else w.astype(np.float64) for w in (w_ih, w_hh, b_ih, b_hh,
                                                                      w_hr, w_peep)]
        ref = reference.forward(REFERENCE_NAMES[cell], ref, None, *as64[:4], w_hr=as64[4],
                                w_peephole=as64[5])[0]
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)


def dense_twin(x, w, b, activation):
    """The C Dense (csrc/stream/heads.c) in NumPy: products added in order of k, each
    operation rounded in the dtype, the bias after the sum, then the activation."""
    acc = np.zeros((x.shape[0], w.shape[0]), x.dtype)
    for k in range(w.shape[1]):
        acc = acc + x[:, k:k + 1] * w[:, k]
    z = acc + b if b is not None else acc
    if activation == "relu":
        return np.where(z > 0, z, 0).astype(x.dtype)
    if activation in ("sigmoid", "tanh"):
        return _core.activation(activation, z)
    if activation == "softmax":
        e = np.exp((z - z.max(axis=1, keepdims=True)).astype(np.float64)).astype(x.dtype)
        s = np.zeros((x.shape[0], 1), x.dtype)
        for j in range(e.shape[1]):
            s = s + e[:, j:j + 1]
        return e / s
    return z


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell,proj,peep", [(_core.GRU, False, False), (_core.LSTM, True, True)])
def test_an_embedding_first_and_dense_heads(cell, proj, peep, dtype):
    rng = np.random.default_rng(3)
    subs = stack_weights(cell, proj, peep, True, dtype, rng)
    V, S = 13, P if proj else H
    table = rng.standard_normal((V, I)).astype(dtype)
    heads = [(rng.standard_normal((7, S)).astype(dtype), rng.standard_normal(7).astype(dtype),
              "tanh"),
             (rng.standard_normal((4, 7)).astype(dtype), None, "relu"),
             (rng.standard_normal((5, 4)).astype(dtype), rng.standard_normal(5).astype(dtype),
              "softmax"),
             (rng.standard_normal((3, 5)).astype(dtype), None, "sigmoid"),
             (rng.standard_normal((2, 3)).astype(dtype), None, None)]
    ids = rng.integers(0, V, (T, B))
    stream = _core.Stream(cell, subs, B, dtype, embedding=table, heads=heads)
    assert stream.output_size == 2
    y = np.stack([stream.step(ids[t]) for t in range(T)])
    h_seq, _, _ = whole_sequence(cell, subs, table[ids], dtype)
    want = []
    for t in range(T):
        z = h_seq[t]
        for w, b, act in heads:
            z = dense_twin(z, w, b, act)
        want.append(z)
    assert np.array_equal(y, np.stack(want))
    stream.set_state(None, None)
    assert np.array_equal(stream.run(ids), y)

    # an id out of range is refused before anything changes, in a step and in a run
    h, c = stream.get_state()
    for bad in (np.array([0, V, 1]), np.array([-1, 0, 1]), np.array([0, 1, V], np.int32),
                np.array([2, -5, 0], np.int32)):          # int32: refused by the core itself
        with pytest.raises(ValueError, match=rf"token ids must be in \[0, {V}\)"):
            stream.step(bad)
    with pytest.raises(ValueError, match=rf"token ids must be in \[0, {V}\)"):
        stream.run(np.array([[0, 1, 2], [0, V, 1]], np.int32))
    assert all(np.array_equal(a, b) for a, b in zip(stream.get_state(), (h, c)))


def test_bit_exact_is_a_named_flag_and_the_shapes_are_checked():
    rng = np.random.default_rng(4)
    subs = stack_weights(_core.LSTM, False, False, True, np.float32, rng)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    exact = _core.Stream(_core.LSTM, subs, B, np.float32, bit_exact=True)
    fast = _core.Stream(_core.LSTM, subs, B, np.float32, bit_exact=False)
    np.testing.assert_allclose(fast.run(x), exact.run(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"heads\[0\].weight must be \(out, 8\)"):
        _core.Stream(_core.LSTM, subs, B, np.float32, heads=[(np.zeros((2, 3)), None, None)])
    with pytest.raises(ValueError, match=r"heads\[0\].activation must be one of"):
        _core.Stream(_core.LSTM, subs, B, np.float32, heads=[(np.zeros((2, H)), None, "gelu")])
    with pytest.raises(ValueError, match=r"embedding must be \(V, 5\)"):
        _core.Stream(_core.LSTM, subs, B, np.float32, embedding=np.zeros((4, 6)))
    with pytest.raises(ValueError, match=r"weights\[1\].w_hr must have shape \(3, 8\)"):
        projected = stack_weights(_core.LSTM, True, False, True, np.float32, rng)
        mixed = [projected[0], subs[1]]
        _core.Stream(_core.LSTM, mixed, B, np.float32)

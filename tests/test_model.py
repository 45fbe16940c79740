"""Sequential: composition, many-to-one pooling, state handling, and its full backward
against float64 finite differences."""
import numpy as np
import pytest

from rnnx.dense import Dense
from rnnx.layers import GRU, LSTM, RNN
from rnnx.model import Sequential

STEP = 1e-6


def scalar_and_grads(model, x, state, lengths, weights, state_weights):
    """L = sum(weights * y) + sum(state_weights * final state): returns L and all grads."""
    y, final, cache = model.forward(x, state, lengths)
    value = float(np.sum(weights * y)) + sum(float(np.sum(w * s)) for w, s in
                                              zip(flatten(state_weights), flatten(final)))
    dx, dstate0, grads = model.backward(cache, weights, state_weights)
    return value, dx, dstate0, grads


def flatten(state):
    out = []
    for s in state:
        out.extend(s if isinstance(s, tuple) else [s])
    return out


def check_entries(f, array, analytic, rng, count=12):
    """Finite differences at `count` random entries of array against analytic."""
    flat = array.reshape(-1)
    for index in rng.choice(flat.size, size=min(count, flat.size), replace=False):
        old = flat[index]
        flat[index] = old + STEP
        up = f()
        flat[index] = old - STEP
        down = f()
        flat[index] = old
        numeric = (up - down) / (2 * STEP)
        # central differences: h^2 truncation (1e-12) + eps*|L|/h rounding (~1e-9 here)
        assert abs(analytic.reshape(-1)[index] - numeric) <= 1e-7 + 1e-6 * abs(numeric), \
            (index, analytic.reshape(-1)[index], numeric)


CASES = {
    "lstm2-bidir-softmax-many-to-one": lambda: Sequential(
        LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0),
        Dense(8, 3, activation="softmax", dtype=np.float64, seed=1), many_to_one=True),
    "gru-batch-first-sigmoid": lambda: Sequential(
        GRU(3, 4, batch_first=True, dtype=np.float64, seed=0),
        Dense(4, 2, activation="sigmoid", dtype=np.float64, seed=1)),
    "rnn-dense-lstm-dense": lambda: Sequential(
        RNN(3, 5, dtype=np.float64, seed=0), Dense(5, 4, activation="tanh", dtype=np.float64, seed=1),
        LSTM(4, 3, bidirectional=True, dtype=np.float64, seed=2), Dense(6, 2, dtype=np.float64, seed=3)),
    "gru-rnn-relu-many-to-one": lambda: Sequential(
        GRU(3, 4, dtype=np.float64, seed=0), RNN(4, 3, nonlinearity="relu", dtype=np.float64, seed=1),
        Dense(3, 2, dtype=np.float64, seed=2), many_to_one=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sequential_backward_finite_differences(case):
    model = CASES[case]()
    rng = np.random.default_rng(1)
    T, B = 6, 3
    x = rng.normal(size=(B, T, 3) if model.batch_first else (T, B, 3))
    lengths = np.array([6, 2, 4])
    y, final, _ = model.forward(x, None, lengths)
    state = tuple(tuple(rng.normal(size=a.shape) for a in s) if isinstance(s, tuple)
                  else rng.normal(size=s.shape) for s in final)
    weights = rng.normal(size=y.shape)
    state_weights = tuple(tuple(rng.normal(size=a.shape) for a in s) if isinstance(s, tuple)
                          else rng.normal(size=s.shape) for s in final)

    def f():
        return scalar_and_grads(model, x, state, lengths, weights, state_weights)[0]

    _, dx, dstate0, grads = scalar_and_grads(model, x, state, lengths, weights, state_weights)
    assert set(grads) == set(model.parameters())
    check_entries(f, x, dx, rng)
    for s, ds in zip(flatten(state), flatten(dstate0)):
        check_entries(f, s, ds, rng)
    for name, param in model.parameters().items():
        check_entries(f, param, grads[name], rng, count=6)


def test_many_to_one_takes_the_last_valid_step():
    rng = np.random.default_rng(2)
    layer = GRU(2, 3, bidirectional=True, dtype=np.float64, seed=0)
    model = Sequential(layer, Dense(6, 1, dtype=np.float64), many_to_one=True)
    x = rng.normal(size=(5, 2, 2))
    lengths = np.array([5, 3])
    y_seq, h_n = layer(x, lengths=lengths)
    pooled = np.concatenate([h_n[0], h_n[1]], axis=1)          # forward, reverse final states
    np.testing.assert_allclose(y_seq[lengths - 1, [0, 1], :3], pooled[:, :3], rtol=1e-15)
    expected = pooled @ model[1].parameters()["weight"].T + model[1].parameters()["bias"]
    np.testing.assert_allclose(model.predict(x, lengths=lengths), expected, rtol=1e-13)


def test_unbatched_call_and_state_roundtrip():
    model = Sequential(LSTM(2, 3, num_layers=2, dtype=np.float64, seed=0), Dense(3, 1, dtype=np.float64))
    x = np.random.default_rng(3).normal(size=(7, 2))
    y, state = model(x)
    y_b, state_b = model(x[:, None, :])
    assert y.shape == (7, 1) and state[0][0].shape == (2, 3)
    np.testing.assert_array_equal(y, y_b[:, 0])
    y2, _ = model(x[4:], state=tuple(model(x[:4])[1]))
    np.testing.assert_allclose(y2, y[4:], rtol=1e-14)


def test_parameters_views_state_dict_and_names():
    model = Sequential(LSTM(2, 3, seed=0), Dense(3, 1, seed=0))
    assert sorted(model.parameters()) == ["0.bias_hh_l0", "0.bias_ih_l0", "0.weight_hh_l0",
                                         "0.weight_ih_l0", "1.bias", "1.weight"]
    model.parameters()["1.bias"][...] = 7.0
    assert model.state_dict()["1.bias"][0] == 7.0
    assert model.num_parameters() == 4 * 3 * (2 + 3 + 2) + 4
    g = model.gradients()
    assert set(g) == set(model.parameters()) and all(np.all(v == 0) for v in g.values())
    state = model.state_dict()
    state["0.weight_hh_l0"] = np.zeros((12, 4))
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"state\['0.weight_hh_l0'\] must have shape \(12, 3\)"):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_sequential_errors():
    with pytest.raises(ValueError, match=r"layers\[1\] takes 4 input features but layers\[0\] gives 3"):
        Sequential(GRU(2, 3), Dense(4, 1))
    with pytest.raises(TypeError, match=r"layers\[0\] must be an rnnx layer"):
        Sequential("lstm")
    with pytest.raises(ValueError, match="needs a recurrent layer"):
        Sequential(Dense(2, 2), many_to_one=True)
    with pytest.raises(TypeError, match="one dtype"):
        Sequential(GRU(2, 3, dtype=np.float64), Dense(3, 1))
    model = Sequential(GRU(2, 3), Dense(3, 1))
    with pytest.raises(ValueError, match="one entry per recurrent layer"):
        model(np.zeros((4, 1, 2), np.float32), state=np.zeros((1, 1, 3), np.float32))

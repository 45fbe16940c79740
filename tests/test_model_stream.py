"""Sequential.stream(): step-by-step inference through a whole model equals running the
layers' own streams and the Dense heads by hand, and equals model(x) (bit for bit in float64,
as the layers' streams promise); reset, state, run, unbatched steps and the refusals."""
import numpy as np
import pytest

import rnnx


def stacked(dtype, seed=0):
    """Dense first, a 2-layer LSTM with a projection, a GRU, an RNN and a softmax head."""
    return rnnx.Sequential(
        rnnx.Dense(3, 4, "tanh", dtype=dtype, seed=seed),
        rnnx.LSTM(4, 6, num_layers=2, proj_size=3, dtype=dtype, seed=seed + 1),
        rnnx.GRU(3, 5, dtype=dtype, seed=seed + 2),
        rnnx.RNN(5, 4, nonlinearity="relu", dtype=dtype, seed=seed + 3),
        rnnx.Dense(4, 2, "softmax", dtype=dtype, seed=seed + 4))


def random_model_state(model, B, rng):
    state = []
    for layer in model.layers:
        if layer.is_recurrent:
            parts = [rng.standard_normal(layer._state_shape(B, n)).astype(model.dtype)
                     for n in layer.state_names]
            state.append(tuple(parts) if len(parts) > 1 else parts[0])
    return tuple(state)


def flat(state):
    return [p for s in state for p in (s if isinstance(s, tuple) else (s,))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_steps_equal_the_layers_streams_and_dense_by_hand(dtype):
    T, B = 8, 3
    model = stacked(dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, 3)).astype(dtype)
    stream = model.stream(batch_size=B)
    steps = np.stack([stream.step(x[t]) for t in range(T)])
    assert steps.shape == (T, B, 2) and steps.dtype == dtype

    by_hand = [layer.stream(B) if layer.is_recurrent else layer for layer in model.layers]
    expected = []
    for t in range(T):
        h = x[t]
        for part in by_hand:
            h = part.step(h) if isinstance(part, rnnx.Stream) else part(h)
        expected.append(h)
    assert np.array_equal(steps, np.stack(expected))
    for a, b in zip(flat(stream.state), flat(tuple(s.state for s in by_hand
                                                   if isinstance(s, rnnx.Stream)))):
        assert np.array_equal(a, b)


def test_steps_equal_the_whole_sequence_in_float64():
    T, B = 9, 2
    model = stacked(np.float64, seed=3)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, 3))
    state0 = random_model_state(model, B, rng)
    y, state_n = model(x, state0)
    stream = model.stream(batch_size=B, state=state0)
    assert np.array_equal(np.stack([stream.step(x[t]) for t in range(T)]), y)
    for a, b in zip(flat(stream.state), flat(state_n)):
        assert np.array_equal(a, b)
    stream.reset(state0)                              # run in two chunks: the same bits
    assert np.array_equal(np.concatenate([stream.run(x[:4]), stream.run(x[4:])]), y)
    stream.reset()                                    # zeros again
    assert np.array_equal(stream.run(x), model(x)[0])
    for part in flat(stream.state):                   # state is a copy
        part[...] = 7.0
    assert np.array_equal(flat(stream.state)[0], flat(model(x)[1])[0])


def test_a_state_entry_of_none_is_zeros_and_the_weights_are_a_snapshot():
    model = stacked(np.float64, seed=5)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 1, 3))
    state0 = random_model_state(model, 1, rng)
    partial = (state0[0], None, state0[2])
    stream = model.stream(state=partial)
    expected = model(x, partial)[0]
    for p in model.parameters().values():             # training after the stream was made
        p += 0.5
    assert np.array_equal(stream.run(x), expected)


def test_unbatched_steps_and_a_recurrent_model_without_dense():
    model = rnnx.Sequential(rnnx.GRU(3, 4, dtype=np.float64, seed=1), rnnx.Dense(4, 2,
                                                                                 dtype=np.float64))
    x = np.random.default_rng(4).standard_normal((5, 3))
    stream = model.stream()
    steps = [stream.step(x[t]) for t in range(5)]
    assert all(s.shape == (2,) for s in steps)
    assert np.array_equal(np.stack(steps), model(x)[0])
    stream.reset()
    assert np.array_equal(stream.run(x), model(x)[0])


def test_refusals_and_bad_input_name_the_problem():
    bidirectional = rnnx.Sequential(rnnx.LSTM(2, 3, bidirectional=True), rnnx.Dense(6, 1))
    with pytest.raises(ValueError, match=r"layers\[0\] is bidirectional"):
        bidirectional.stream()
    backwards = rnnx.Sequential(rnnx.Dense(2, 2), rnnx.GRU(2, 3, go_backwards=True))
    with pytest.raises(ValueError, match=r"layers\[1\] is go_backwards"):
        backwards.stream()
    with pytest.raises(ValueError, match="many_to_one"):
        rnnx.Sequential(rnnx.LSTM(2, 3), many_to_one=True).stream()
    model = stacked(np.float32)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.stream(batch_size=0)
    stream = model.stream(batch_size=2)
    with pytest.raises(ValueError, match=r"one entry per recurrent layer \(3\).*length 2"):
        stream.reset((None, None))
    good = stream.state
    with pytest.raises(ValueError, match=r"state\[1\] must have shape"):
        stream.reset((None, np.zeros((1, 3, 5), np.float32), None))
    for a, b in zip(flat(stream.state), flat(good)):   # a failed reset changes nothing
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="in_features=3"):
        stream.step(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="float64"):
        stream.step(np.zeros((2, 3), np.float64))


def test_a_model_with_an_embedding_first_streams_token_ids():
    model = rnnx.Sequential(rnnx.Embedding(11, 4, dtype=np.float64, seed=1),
                            rnnx.LSTM(4, 5, num_layers=2, dtype=np.float64, seed=2),
                            rnnx.Dense(5, 11, "softmax", dtype=np.float64, seed=3))
    ids = np.random.default_rng(5).integers(0, 11, (7, 3))
    y, state = model(ids)
    stream = model.stream(batch_size=3)
    assert np.array_equal(np.stack([stream.step(ids[t]) for t in range(7)]), y)
    assert all(np.array_equal(a, b) for a, b in zip(flat(stream.state), flat(state)))
    stream.reset()
    assert np.array_equal(stream.run(ids), y)
    one = model.stream()                                  # unbatched: one id per step
    assert np.array_equal(np.stack([one.step(ids[t, 0]) for t in range(7)]), y[:, 0])
    with pytest.raises(ValueError, match=r"ids in \[0, 11\)"):
        stream.step(np.array([0, 11, 2]))


def test_token_ids_of_the_wrong_shape_name_the_shape_of_ids():
    """A token model's stream checks the ids' shape before the lookup: the message speaks of
    ids, (B,) for a step and (T, B) for a chunk, not of the looked-up rows' (B, D)."""
    model = rnnx.Sequential(rnnx.Embedding(11, 4, seed=1), rnnx.GRU(4, 5, seed=2))
    stream = model.stream(batch_size=2)
    with pytest.raises(ValueError, match=r"x_t must be \(2,\) token ids for batch_size=2, got shape \(3,\)"):
        stream.step(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"x_t must be \(2,\) token ids .* got shape \(1, 2\)"):
        stream.step(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"x must be \(T, 2\) token ids .* got shape \(5, 3\)"):
        stream.run(np.zeros((5, 3), np.int64))
    assert stream.step(np.array([1, 2])).shape == (2, 5)
    assert stream.run(np.zeros((5, 2), np.int64)).shape == (5, 2, 5)
    one = model.stream()
    assert one.step(3).shape == (5,) and one.run(np.array([1, 2, 3])).shape == (3, 5)

"""A bidirectional layer's forward runs its two directions at the same time (the reverse one
on a helper thread) where the pool has at most 2 threads and the work is large enough: the
outputs, final states, training caches and so the gradients are those of the directions run
one after the other, bit for bit, whatever the cell, dtype, stacking, lengths and workspace."""
import numpy as np
import pytest

import rnnx
from rnnx import directions


@pytest.fixture
def two_threads():
    before = rnnx.get_num_threads()
    rnnx.set_num_threads(2)
    yield
    rnnx.set_num_threads(before)


def run(layer, x, lengths, dy, concurrent, monkeypatch):
    monkeypatch.setattr(directions, "_CONCURRENT_WORK", 0 if concurrent else 1 << 62)
    y, state, cache = layer.forward(x, None, lengths=lengths)
    dx, dstate, grads = layer.backward(cache, dy)
    return y, state, dx, dstate, grads


@pytest.mark.parametrize("cls, dtype", [(rnnx.LSTM, np.float32), (rnnx.GRU, np.float64),
                                        (rnnx.RNN, np.float32)])
def test_concurrent_directions_equal_one_after_the_other(cls, dtype, two_threads, monkeypatch):
    layer = cls(5, 21, num_layers=2, bidirectional=True, dtype=dtype, seed=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 6, 5)).astype(dtype)
    lengths = np.array([9, 1, 0, 5, 9, 3])
    dy = rng.standard_normal((9, 6, 42)).astype(dtype)
    assert directions._concurrent_directions(9, 6, 21, 21) is False     # too small by default
    monkeypatch.setattr(directions, "_CONCURRENT_WORK", 0)
    assert directions._concurrent_directions(9, 6, 21, 21) is True
    a = run(layer, x, lengths, dy, True, monkeypatch)
    b = run(layer, x, lengths, dy, False, monkeypatch)
    for got, want in zip(a[:4], b[:4]):   # y, final state, dx, initial-state gradient
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            assert np.array_equal(g, w)
    assert a[4].keys() == b[4].keys()
    for name in a[4]:
        assert np.array_equal(a[4][name], b[4][name]), name


def test_concurrent_directions_under_a_trainer_workspace(two_threads, monkeypatch):
    """The main thread's direction reuses the Trainer's workspace, the helper's allocates:
    training is the same as with the directions in turn."""
    monkeypatch.setattr(directions, "_CONCURRENT_WORK", 0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 4, 3)).astype(np.float32)
    y = rng.standard_normal((12, 4, 1)).astype(np.float32)

    def train(concurrent):
        monkeypatch.setattr(directions, "_CONCURRENT_THREADS", 2 if concurrent else 0)
        model = rnnx.Sequential(rnnx.GRU(3, 10, bidirectional=True, seed=4), rnnx.Dense(20, 1, seed=5))
        trainer = rnnx.Trainer(model, rnnx.MSELoss(), rnnx.Adam(model.parameters(), lr=0.01),
                               seed=0, progress=False)
        trainer.fit(x, y, epochs=3, batch_size=2)
        return {name: value.copy() for name, value in model.state_dict().items()}

    got, want = train(True), train(False)
    assert got.keys() == want.keys()
    for name in got:
        assert np.array_equal(got[name], want[name]), name


def test_an_error_in_a_direction_reaches_the_caller(two_threads, monkeypatch):
    monkeypatch.setattr(directions, "_CONCURRENT_WORK", 0)
    layer = rnnx.LSTM(3, 8, bidirectional=True, seed=0)
    with pytest.raises(ValueError):
        layer(np.zeros((4, 2, 3), np.float32), lengths=np.array([4, 5]))

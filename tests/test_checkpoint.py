"""Checkpointed BPTT (rnnx/checkpoint.py): forward(..., checkpoint=k) then backward must give
what plain BPTT gives, bit for bit in float64 (the C core sums the weight gradients over rows
in a fixed order that segmenting preserves), and keep far less memory."""
import tracemalloc

import numpy as np
import pytest

import rnnx
from rnnx.checkpoint import CheckpointCache, segment_length
from shared import VARIANTS


def make_layer(variant, dtype=np.float64, **kwargs):
    name, extra = VARIANTS[variant]
    return getattr(rnnx, name)(3, 5, dtype=dtype, seed=4, **extra, **kwargs)


def as_list(state):
    return list(state) if isinstance(state, tuple) else [state]


def random_like_state(layer, B, rng):
    parts = as_list(layer.zero_state(B))
    parts = [rng.standard_normal(p.shape).astype(layer.dtype) for p in parts]
    return tuple(parts) if len(parts) == 2 else parts[0]


def run(layer, x, lengths, dy, dstate, checkpoint):
    y, state, cache = layer.forward(x, lengths=lengths, checkpoint=checkpoint)
    dx, dstate0, grads = layer.backward(cache, dy, dstate)
    return y, as_list(state), dx, as_list(dstate0), grads


def assert_same(a, b, exact, what):
    ya, sa, dxa, d0a, ga = a
    yb, sb, dxb, d0b, gb = b
    def close(u, v, err_msg):
        np.testing.assert_allclose(u, v, rtol=2e-4, atol=2e-5, err_msg=err_msg)

    check = np.testing.assert_array_equal if exact else close
    check(ya, yb, err_msg=f"{what}: y")
    check(dxa, dxb, err_msg=f"{what}: dx")
    for u, v in zip(sa, sb):
        check(u, v, err_msg=f"{what}: final state")
    for u, v in zip(d0a, d0b):
        check(u, v, err_msg=f"{what}: dstate0")
    assert set(ga) == set(gb)
    for name in ga:
        check(ga[name], gb[name], err_msg=f"{what}: grad {name}")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("config", ["plain", "stack2", "bidirectional", "lengths",
                                    "bidirectional_lengths", "batch_first"])
def test_float64_bit_identical_to_plain_bptt(variant, config):
    rng = np.random.default_rng(7)
    kwargs = {"stack2": {"num_layers": 2}, "bidirectional": {"bidirectional": True},
              "bidirectional_lengths": {"bidirectional": True, "num_layers": 2},
              "batch_first": {"batch_first": True}}.get(config, {})
    layer = make_layer(variant, **kwargs)
    T, B = 53, 4
    x = rng.standard_normal((B, T, 3) if config == "batch_first" else (T, B, 3))
    # rows ending inside, at the edge of, and before later segments
    lengths = np.array([53, 7, 1, 30]) if "lengths" in config else None
    y, _, _ = layer.forward(x, lengths=lengths)
    dy = rng.standard_normal(y.shape)
    dstate = random_like_state(layer, B, rng)
    x_before, dy_before = x.copy(), dy.copy()
    plain = run(layer, x, lengths, dy, dstate, None)
    for k in (1, 7, 10, "sqrt", T, 2 * T):
        got = run(layer, x, lengths, dy, dstate, k)
        assert_same(got, plain, True, f"{variant} {config} checkpoint={k}")
    np.testing.assert_array_equal(x, x_before)     # inputs never modified
    np.testing.assert_array_equal(dy, dy_before)


@pytest.mark.parametrize("variant", ["lstm", "gru_reset_after"])
def test_float32_close_to_plain_bptt(variant):
    # float32 keeps BLAS for the gradient sums, whose rounding depends on the rows per call
    rng = np.random.default_rng(1)
    layer = make_layer(variant, dtype=np.float32, num_layers=2)
    x = rng.standard_normal((60, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((60, 3, 5)).astype(np.float32)
    assert_same(run(layer, x, None, dy, None, "sqrt"), run(layer, x, None, dy, None, None),
                False, variant)


def test_unbatched_and_no_output_gradient():
    rng = np.random.default_rng(2)
    layer = make_layer("lstm")
    x = rng.standard_normal((20, 3))          # unbatched (T, I)
    dstate = tuple(rng.standard_normal((1, 5)) for _ in range(2))
    plain = run(layer, x, None, None, dstate, None)
    assert_same(run(layer, x, None, None, dstate, 6), plain, True, "unbatched, dy=None")
    assert plain[0].shape == (20, 5)


def test_carried_state_in_and_out():
    rng = np.random.default_rng(3)
    layer = make_layer("gru_reset_after", num_layers=2)
    x = rng.standard_normal((25, 2, 3))
    state = rng.standard_normal((2, 2, 5))
    y0, s0, c0 = layer.forward(x, state)
    y1, s1, c1 = layer.forward(x, state, checkpoint=4)
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(s0, s1)
    dy = rng.standard_normal(y0.shape)
    for a, b in zip(layer.backward(c0, dy)[:2], layer.backward(c1, dy)[:2]):
        np.testing.assert_array_equal(a, b)


def test_sequential_many_to_one_and_dense_head():
    rng = np.random.default_rng(4)
    model = rnnx.Sequential(rnnx.LSTM(3, 6, dtype=np.float64, seed=1),
                            rnnx.GRU(6, 4, bidirectional=True, dtype=np.float64, seed=2),
                            rnnx.Dense(8, 2, dtype=np.float64, seed=3), many_to_one=True)
    x = rng.standard_normal((40, 3, 3))
    lengths = np.array([40, 12, 33])
    dy = rng.standard_normal((3, 2))
    results = []
    for checkpoint in (None, "sqrt"):
        y, state, cache = model.forward(x, lengths=lengths, checkpoint=checkpoint)
        dx, dstate0, grads = model.backward(cache, dy)
        results.append((y, dx, grads))
    (y0, dx0, g0), (y1, dx1, g1) = results
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(dx0, dx1)
    assert set(g0) == set(g1)
    for name in g0:
        np.testing.assert_array_equal(g0[name], g1[name], err_msg=name)
    assert isinstance(cache.data[0][0], CheckpointCache)   # (layer cache, pool) per layer


@pytest.mark.parametrize("bptt", [None, (10, 15)])
def test_trainer_checkpoint_trains_identically(bptt):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((45, 4, 2))
    y = rng.standard_normal((45, 4, 1))
    params = []
    for checkpoint in (None, 6):
        model = rnnx.Sequential(rnnx.LSTM(2, 7, dtype=np.float64, seed=0),
                                rnnx.Dense(7, 1, dtype=np.float64, seed=1))
        trainer = rnnx.Trainer(model, "mse", rnnx.Adam(model.parameters(), lr=1e-2), bptt=bptt,
                               checkpoint=checkpoint, seed=0, progress=False)
        history = trainer.fit(x, y, epochs=3)
        params.append((history["step_loss"], model.state_dict()))
    (l0, p0), (l1, p1) = params
    assert l0 == l1
    assert len(l0) == (3 if bptt is None else 15)
    for name in p0:
        np.testing.assert_array_equal(p0[name], p1[name], err_msg=name)


def peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_with_segment_not_sequence():
    # numpy's buffers are traced by tracemalloc: peak of forward + backward
    layer = rnnx.LSTM(4, 32, dtype=np.float32, seed=0)
    T, B = 200, 8
    x = np.random.default_rng(6).standard_normal((T, B, 4)).astype(np.float32)
    dy = np.ones((T, B, 32), np.float32)

    def step(checkpoint):
        y, _, cache = layer.forward(x, checkpoint=checkpoint)
        layer.backward(cache, dy)

    plain = peak_bytes(lambda: step(None))
    checkpointed = peak_bytes(lambda: step("sqrt"))
    step_bytes = B * 32 * 4
    # plain: cache ~7 and backward work ~4 step-states per step; checkpointed: x, y, dx (the
    # caller's O(T) arrays) plus O(sqrt T) steps of cache
    assert plain > 10 * T * step_bytes
    assert checkpointed < plain / 3, (plain, checkpointed)


def test_segment_length():
    assert segment_length("sqrt", 100) == 10
    assert segment_length("sqrt", 1) == 1
    assert segment_length("sqrt", 10 ** 5) == 316
    assert segment_length(7, 3) == 7


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-3, ValueError), ("log", ValueError),
                                        (2.5, TypeError), (True, TypeError)])
def test_bad_checkpoint_names_the_argument(bad, error):
    layer = make_layer("rnn_tanh")
    x = np.zeros((5, 1, 3))
    with pytest.raises(error, match="checkpoint"):
        layer.forward(x, checkpoint=bad)
    model = rnnx.Sequential(make_layer("rnn_tanh"))
    with pytest.raises(error, match="checkpoint"):
        rnnx.Trainer(model, checkpoint=bad)


def test_cache_from_another_layer_is_refused():
    a, b = make_layer("lstm"), make_layer("lstm")
    _, _, cache = a.forward(np.zeros((4, 1, 3)), checkpoint=2)
    with pytest.raises(ValueError, match="another layer"):
        b.backward(cache, np.zeros((4, 1, 5)))


def test_memory_benchmark_quick_run(tmp_path):
    # benchmarks/checkpoint_memory.py end to end in its quick form (no timing asserted)
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "checkpoint_memory.py"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    args = ["--quick", "--json", str(tmp_path / "r.json")]
    try:
        import matplotlib  # noqa: F401
        args += ["--plot", str(tmp_path / "r.png")]
    except ImportError:
        pass
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [(r["T"], r["mode"]) for r in results] == [
        (100, "plain"), (100, "checkpoint"), (200, "plain"), (200, "checkpoint")]
    for T in (100, 200):
        plain, ckpt = [r for r in results if r["T"] == T]
        assert ckpt["traced_peak_bytes"] < plain["traced_peak_bytes"] / 2
    if "--plot" in args:
        assert (tmp_path / "r.png").stat().st_size > 1000


def test_checkpoint_refuses_dropout_and_stale_weights():
    """Recomputation would redraw the dropout masks, and would run on changed weights:
    both are refused with an error that says so."""
    x = np.random.default_rng(6).standard_normal((12, 2, 3))
    layer = rnnx.LSTM(3, 4, num_layers=2, dropout=0.3, dtype=np.float64, seed=0)
    with pytest.raises(ValueError, match="dropout"):
        layer.forward(x, checkpoint=4)
    layer = rnnx.GRU(3, 4, dtype=np.float64, seed=0)
    y, _, cache = layer.forward(x, checkpoint=4)
    layer.parameters()["weight_hh_l0"][0, 0] += 1.0       # an optimizer step, in place
    with pytest.raises(ValueError, match="stale cache"):
        layer.backward(cache, np.ones_like(y))

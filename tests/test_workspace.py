"""rnnx._core.Workspace: the caller-owned work and cache memory of the binding, reused by
Stream.run and by the Trainer (issue 8).

Reuse must never change a result or let a buffer be overwritten while something still
refers to it: calls with a workspace equal calls without one bit for bit, across shape,
dtype and weight changes, and a cache made with it stays valid after later calls reuse it.
"""
import threading

import numpy as np
import pytest

import rnnx
from rnnx import _core, cells
from rnnx.directions import using_workspace
from shared import VARIANTS

def problem(variant, T, B, I, H, dtype, seed):
    rng = np.random.default_rng(seed)
    G = cells.row(variant)["gates"] * H
    w = [rng.uniform(-0.5, 0.5, s).astype(dtype) for s in ((G, I), (G, H), (G,), (G,))]
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    lengths = rng.integers(0, T + 1, B)
    return dict(cell=cells.row(variant)["code"], x=x, h0=h0, w=w, dy=dy, lengths=lengths)


def run(p, workspace=None, keep_cache=False):
    """Training forward then backward through the binding: every output, and the cache."""
    cell, x, h0, w = p["cell"], p["x"], p["h0"], p["w"]
    T, B, _ = x.shape
    H = h0.shape[1]
    lstm = cell == _core.LSTM
    y, h_n = np.empty((T, B, H), x.dtype), np.empty((B, H), x.dtype)
    c_n = np.empty((B, H), x.dtype) if lstm else None
    cache = _core.forward(cell, x, h0, h0 if lstm else None, *w, p["lengths"], False, y, h_n, c_n,
                          True, workspace=workspace)
    out = [y.copy(), h_n.copy()] + ([c_n.copy()] if lstm else [])
    out += backward(p, cache, workspace)
    return (out, cache) if keep_cache else out


def backward(p, cache, workspace=None):
    cell, x, h0, w = p["cell"], p["x"], p["h0"], p["w"]
    lstm = cell == _core.LSTM
    grads = [np.zeros_like(a) for a in [x] + w]
    dh0 = np.empty_like(h0)
    dc0 = np.empty_like(h0) if lstm else None
    _core.backward(cell, x, w[0], w[1], p["lengths"], False, cache, p["dy"], h0,
                   h0 if lstm else None, grads[0], dh0, dc0, *grads[1:], workspace=workspace)
    return grads + [dh0] + ([dc0] if lstm else [])


def same(a, b):
    assert len(a) == len(b)
    for k, (u, v) in enumerate(zip(a, b)):
        assert np.array_equal(u, v), k


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reuse_across_shapes_dtypes_and_weights_equals_fresh_calls(variant):
    ws = _core.Workspace()
    shapes = [(7, 5, 3, 9, np.float64), (2, 1, 3, 4, np.float32), (9, 6, 4, 17, np.float32),
              (3, 2, 2, 3, np.float64), (7, 5, 3, 9, np.float64)]
    for seed, (T, B, I, H, dtype) in enumerate(shapes):
        p = problem(variant, T, B, I, H, dtype, seed)
        same(run(p, ws), run(p))
        # inference too
        y_ws, y = np.empty((T, B, H), dtype), np.empty((T, B, H), dtype)
        h_ws, h = np.empty((B, H), dtype), np.empty((B, H), dtype)
        lstm = p["cell"] == _core.LSTM
        for out_y, out_h, space in ((y_ws, h_ws, ws), (y, h, None)):
            _core.forward(p["cell"], p["x"], p["h0"], p["h0"] if lstm else None, *p["w"],
                          p["lengths"], True, out_y, out_h, np.empty_like(h) if lstm else None,
                          False, workspace=space)
        assert np.array_equal(y_ws, y) and np.array_equal(h_ws, h)


@pytest.mark.parametrize("variant", ["lstm", "gru_reset_after"])
def test_a_held_cache_survives_later_calls_and_a_dropped_one_is_reused(variant):
    ws = _core.Workspace()
    a = problem(variant, 6, 4, 3, 5, np.float64, 1)
    b = problem(variant, 6, 4, 3, 5, np.float64, 2)            # same shapes, other values
    c = problem(variant, 3, 2, 3, 7, np.float32, 3)            # other shapes and dtype
    out_a, cache_a = run(a, ws, keep_cache=True)
    run(b, ws)
    run(c, ws)
    b["w"][1] += 1.0                                          # other weights in place
    run(b, ws)
    same(backward(a, cache_a, ws), out_a[len(out_a) - len(backward(a, cache_a)):])
    same(backward(a, cache_a), backward(a, run(a, keep_cache=True)[1]))
    # the pool: a cache no longer referred to is handed out again, a held one never
    held = [run(a, ws, keep_cache=True)[1] for _ in range(3)]
    assert len({h.__array_interface__["data"][0] for h in held}) == 3
    del held, cache_a
    before = ws.nbytes
    for _ in range(5):
        run(a, ws)
    assert ws.nbytes == before


def test_layers_and_sequential_under_a_workspace_equal_plain_calls():
    model = rnnx.Sequential(rnnx.LSTM(3, 6, num_layers=2, bidirectional=True, dtype=np.float64,
                                      seed=0),
                            rnnx.GRU(12, 4, dtype=np.float64, seed=1),
                            rnnx.Dense(4, 2, dtype=np.float64, seed=2))
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((8, 3, 3)), rng.standard_normal((5, 2, 3))
    lengths = np.array([8, 0, 3])
    expected1 = model.backward(model.forward(x1, lengths=lengths)[2], np.ones((8, 3, 2)))
    expected2 = model.backward(model.forward(x2)[2], np.ones((5, 2, 2)))
    ws = _core.Workspace()
    with using_workspace(ws):
        y1, _, cache1 = model.forward(x1, lengths=lengths)
        y2, _, cache2 = model.forward(x2)                     # reuses what it may
        got2 = model.backward(cache2, np.ones_like(y2))
        got1 = model.backward(cache1, np.ones_like(y1))       # the older cache, still intact
        model.load_state_dict(model.state_dict())
        with pytest.raises(ValueError, match="stale cache"):  # the usual guarantees hold
            model.backward(cache1, np.ones_like(y1))
    assert ws.nbytes > 0
    for got, expected in ((got1, expected1), (got2, expected2)):
        assert np.array_equal(got[0], expected[0])
        for name in expected[2]:
            assert np.array_equal(got[2][name], expected[2][name]), name


def test_two_streams_of_different_sizes_run_like_whole_sequences():
    a = rnnx.GRU(3, 8, num_layers=2, dtype=np.float64, seed=0)
    b = rnnx.LSTM(5, 4, dtype=np.float64, seed=1)
    sa, sb = a.stream(batch_size=2), b.stream(batch_size=3)
    rng = np.random.default_rng(2)
    xa, xb = rng.standard_normal((12, 2, 3)), rng.standard_normal((12, 3, 5))
    ya, yb = [], []
    for t0, t1 in ((0, 5), (5, 6), (6, 12)):            # chunks interleaved, of changing T
        ya.append(sa.run(xa[t0:t1]))
        yb.append(sb.run(xb[t0:t1]))
    assert np.array_equal(np.concatenate(ya), a(xa)[0])
    assert np.array_equal(np.concatenate(yb), b(xb)[0])
    size = sa._workspace.nbytes
    for _ in range(3):
        sa.run(xa[:5])
    assert sa._workspace.nbytes == size


def test_trainer_keeps_one_workspace_and_its_results_do_not_change(monkeypatch):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((12, 6, 2)), rng.standard_normal((12, 6, 1))
    lengths = np.array([12, 5, 0, 12, 7, 3])

    def train():
        model = rnnx.Sequential(rnnx.LSTM(2, 5, num_layers=2, dtype=np.float64, seed=0),
                                rnnx.Dense(5, 1, dtype=np.float64, seed=1))
        trainer = rnnx.Trainer(model, "mse", rnnx.Adam(model.parameters()), bptt=(4, 4))
        trainer.fit(x, y, lengths=lengths, epochs=2, batch_size=3, shuffle=False)
        return trainer, model.state_dict()

    trainer, params = train()
    workspace = trainer._workspace()
    size = workspace.nbytes
    assert size > 0
    trainer.fit(x, y, lengths=lengths, epochs=2, batch_size=3, shuffle=False)
    assert trainer._workspace() is workspace and workspace.nbytes == size
    monkeypatch.setattr(rnnx.Trainer, "_workspace", lambda self: None)   # allocate per call
    _, plain = train()
    for name, value in params.items():
        assert np.array_equal(value, plain[name]), name


def test_one_call_at_a_time():
    """A workspace shared by two threads: the second call raises instead of corrupting the
    first one's buffers; every call that runs gives the right answer."""
    p = problem("lstm", 200, 64, 32, 64, np.float32, 5)
    expected = run(p)
    ws = _core.Workspace()
    errors, results = [], []
    barrier = threading.Barrier(4)

    def work():
        barrier.wait()
        for _ in range(5):
            try:
                results.append(run(p, ws))
            except RuntimeError as error:
                errors.append(str(error))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results and all(e.startswith("this Workspace is in use") for e in errors)
    for r in results:
        same(r, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_stream_run_on_packed_weights_equals_steps(variant, dtype):
    """Stream.run runs each layer's chunk on the stream's own packed weights: the numbers of
    step after step, whatever the chunk sizes (three layers: the outputs ping-pong)."""
    cls, extra = VARIANTS[variant]
    layer = getattr(rnnx, cls)(3, 6, num_layers=3, dtype=dtype, seed=2, **extra)
    x = np.random.default_rng(7).standard_normal((11, 2, 3)).astype(dtype)
    stepped, chunked = layer.stream(batch_size=2), layer.stream(batch_size=2)
    y_steps = np.stack([stepped.step(x[t]) for t in range(11)])
    y_chunks = np.concatenate([chunked.run(x[t0:t1]) for t0, t1 in ((0, 1), (1, 7), (7, 11))])
    assert np.array_equal(y_chunks, y_steps)
    for a, b in zip(chunked.state if isinstance(chunked.state, tuple) else (chunked.state,),
                    stepped.state if isinstance(stepped.state, tuple) else (stepped.state,)):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="x must be a C-contiguous"):
        chunked._core.run(np.asfortranarray(x), chunked._workspace)

"""The wavefront of a stack (csrc/driver/wavefront.c, _core.forward_stack): a one-direction
stack's inference runs in chunks of steps fixed by the layers' shapes, layer k + 1 a
chunk behind layer k on another thread.  The outputs must be the same bits for every thread
count, equal layer-by-layer core calls where a call's input projection is row by row
(float64, or row_exact), agree with the NumPy reference, and bad stacks must be refused."""
import threading

import numpy as np
import pytest

import rnnx
from rnnx import _core, reference
from shared import VARIANTS

THREADS = (1, 2, 3, 5)
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def make(variant, dtype, I, H, layers, **options):
    name, extra = VARIANTS[variant]
    return getattr(rnnx, name)(I, H, num_layers=layers, dtype=dtype, seed=3, **extra, **options)


def inputs(layer, T, B, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, layer.input_size)).astype(layer.dtype)
    n = layer.num_layers
    state = tuple(0.5 * rng.standard_normal(s.shape).astype(layer.dtype)
                  for s in (layer.zero_state(B) if isinstance(layer.zero_state(B), tuple)
                            else (layer.zero_state(B),)))
    assert all(s.shape[0] == n for s in state)
    return x, state if len(state) > 1 else state[0]


def states(state):
    return state if isinstance(state, tuple) else (state,)


def run_each_thread_count(layer, x, state):
    outs = []
    for n in THREADS:
        rnnx.set_num_threads(n)
        outs.append(layer(x, state))
    return outs


def by_layer(layer, x, state, row_exact):
    """The stack run layer after layer, one whole-sequence core call each."""
    has_c = "c" in layer.state_names
    s = states(state)
    h = x
    finals = [np.empty_like(a) for a in s]
    for k in range(layer.num_layers):
        w_ih, w_hh, b_ih, b_hh = layer._weights(k, 0)
        y = np.empty((x.shape[0], x.shape[1], layer._state_width), layer.dtype)
        _core.forward(layer._cell, h, s[0][k], s[1][k] if has_c else None, w_ih, w_hh, b_ih, b_hh,
                      None, False, y, finals[0][k], finals[1][k] if has_c else None, False,
                      row_exact=row_exact, **layer._cell_options(k, 0))
        h = y
    return h, finals


def by_reference(layer, x, state):
    s = states(state)
    h = x.astype(np.float64)
    for k in range(layer.num_layers):
        w_ih, w_hh, b_ih, b_hh = (None if w is None else w.astype(np.float64) for w in layer._weights(k, 0))
        options = {{"w_hr": "w_hr", "w_peep": "w_peephole"}[key]: value.astype(np.float64)
                   for key, value in layer._cell_options(k, 0).items()}
        h, _, _ = reference.forward(layer.cell_name, h, tuple(a[k].astype(np.float64) for a in s),
                                    w_ih, w_hh, b_ih, b_hh, **options)
    return h


# (T, B, I, H, layers): steps too small to split (every thread count runs the wavefront,
# 4 to 8 chunks), steps that split (2 threads: wavefront; 3 and 5 with 2 layers: layer by
# layer, each step split), T not a multiple of the chunk (2 chunks of 31 and 30 steps, 3
# layers), stacks too small to cut (one chunk: layer by layer), a single step.
SHAPES = [(800, 2, 64, 48, 2), (120, 16, 24, 72, 2), (61, 9, 12, 48, 3), (5, 2, 3, 6, 3),
          (1, 4, 3, 5, 2)]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_thread_count_gives_the_same_bits(variant, dtype, shape, isa_and_threads):
    T, B, I, H, L = shape
    layer = make(variant, dtype, I, H, L)
    x, state = inputs(layer, T, B)
    x0 = x.copy()
    outs = run_each_thread_count(layer, x, state)
    for y, final in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        for a, b in zip(states(final), states(outs[0][1])):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, x0)       # the input is not modified
    want = by_reference(layer, x, state)
    np.testing.assert_allclose(outs[0][0], want, rtol=TOL[dtype], atol=TOL[dtype])
    if dtype == np.float64:                    # row-by-row projections: layer by layer's bits
        y, finals = by_layer(layer, x, state, row_exact=False)
        np.testing.assert_array_equal(outs[0][0], y)
        for a, b in zip(states(outs[0][1]), finals):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("options", [{}, {"proj_size": 6}, {"peephole": True}])
def test_row_exact_stack_equals_layer_by_layer_float32(options, isa_and_threads):
    layer = rnnx.LSTM(7, 16, num_layers=3, seed=2, **options)
    x, state = inputs(layer, 41, 6)
    s = states(state)
    want_y, want_states = by_layer(layer, x, state, row_exact=True)
    for n in THREADS:
        _core.set_num_threads(n)
        layers, h = [], x
        finals = [np.empty_like(a) for a in s]
        for k in range(3):
            w_ih, w_hh, b_ih, b_hh = layer._weights(k, 0)
            y = np.empty((41, 6, layer._state_width), np.float32)
            layers.append(dict(cell=layer._cell, x=h, h0=s[0][k], c0=s[1][k], w_ih=w_ih, w_hh=w_hh,
                               b_ih=b_ih, b_hh=b_hh, y=y, h_n=finals[0][k], c_n=finals[1][k],
                               **layer._cell_options(k, 0)))
            h = y
        _core.forward_stack(layers, row_exact=True)
        np.testing.assert_array_equal(h, want_y)
        for a, b in zip(finals, want_states):
            np.testing.assert_array_equal(a, b)


def test_the_wavefront_runs_on_the_team(isa_and_threads):
    """Steps of 2 x 96 x 32 multiply-adds are never split; the stack's waves are the team's
    only jobs, so its job count grows by the waves (chunks + layers - 1, less the
    one-layer waves at the ends)."""
    if not _core._pool_diagnostics()["threaded"]:
        pytest.skip("a build without threads (csrc/runtime/serial.c) runs every job serially")
    layer = rnnx.GRU(32, 32, num_layers=2, seed=0)
    x, _ = inputs(layer, 800, 2)
    _core.set_num_threads(2)
    before = _core._pool_diagnostics()["jobs"]
    layer(x)
    # 800 * 2 * 96 * (32 + 32) multiply-adds per layer: 4 chunks of CHUNK_MIN_MADDS (2^21)
    chunks = 4
    assert _core._pool_diagnostics()["jobs"] - before == chunks + 2 - 1 - 2
    _core.set_num_threads(1)
    before = _core._pool_diagnostics()["jobs"]
    layer(x)
    assert _core._pool_diagnostics()["jobs"] == before


def test_stacks_in_python_threads_equal_the_serial_run(isa_and_threads):
    layer = make("lstm", np.float32, 6, 40, 2)
    x, state = inputs(layer, 30, 8)
    _core.set_num_threads(1)
    want = layer(x, state)[0]
    _core.set_num_threads(2)
    results, barrier = [None] * 4, threading.Barrier(4)

    def work(i):
        barrier.wait()
        results[i] = [layer(x, state)[0] for _ in range(10)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        for y in got:
            np.testing.assert_array_equal(y, want)


def stack_args(layer, x, state):
    s = states(state)
    layers, h = [], x
    for k in range(layer.num_layers):
        w_ih, w_hh, b_ih, b_hh = layer._weights(k, 0)
        y = np.empty((x.shape[0], x.shape[1], layer.hidden_size), layer.dtype)
        layers.append(dict(cell=layer._cell, x=h, h0=s[0][k], c0=None, w_ih=w_ih, w_hh=w_hh,
                           b_ih=b_ih, b_hh=b_hh, y=y, h_n=np.empty_like(s[0][k]), c_n=None))
        h = y
    return layers


def test_bad_stacks_are_refused():
    layer = rnnx.GRU(4, 8, num_layers=2, seed=0)
    x, state = inputs(layer, 6, 3)
    with pytest.raises(ValueError, match="at least one layer"):
        _core.forward_stack([])
    layers = stack_args(layer, x, state)
    layers[1]["x"] = layers[0]["y"].copy()      # not the previous layer's y
    with pytest.raises(ValueError, match=r"layers\[1\]\['x'\] must be layers\[0\]\['y'\]"):
        _core.forward_stack(layers)
    layers = stack_args(layer, x, state)
    del layers[0]["h_n"]
    with pytest.raises(ValueError, match=r"layers\[0\] must have the keys.*missing \['h_n'\]"):
        _core.forward_stack(layers)
    layers = stack_args(layer, x, state)
    layers[1]["lengths"] = np.full(3, 6)
    with pytest.raises(ValueError, match=r"unknown \['lengths'\]"):
        _core.forward_stack(layers)
    layers = stack_args(layer, x, state)
    layers[1]["h0"] = np.zeros((3, 7), np.float32)
    with pytest.raises(ValueError, match=r"layers\[1\]: w_ih must have shape \(21, 8\)"):
        _core.forward_stack(layers)


# ------------------------------------------- a bidirectional layer's directions side by side


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(23, 3, 5, 8, 1), (17, 16, 12, 40, 2)])
def test_directions_side_by_side_equal_one_after_the_other(variant, dtype, shape, isa_and_threads):
    """Both directions in one core call (_core.forward_side_by_side): for every thread
    count, the bits of one forward call per direction, with lengths too."""
    T, B, I, H, L = shape
    layer = make(variant, dtype, I, H, L, bidirectional=True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = rng.integers(0, T + 1, size=B)
    for given in (None, lengths):
        outs = []
        for n in THREADS:
            rnnx.set_num_threads(n)
            outs.append(layer(x, lengths=given))
        for y, final in outs[1:]:
            np.testing.assert_array_equal(y, outs[0][0])
            for a, b in zip(states(final), states(outs[0][1])):
                np.testing.assert_array_equal(a, b)
        # one direction after the other, one core call each (the training forward's calls)
        y, final, _ = layer.forward(x, lengths=given)
        np.testing.assert_array_equal(outs[0][0], y)
        for a, b in zip(states(outs[0][1]), states(final)):
            np.testing.assert_array_equal(a, b)


def test_directions_run_side_by_side_on_the_team(isa_and_threads):
    if not _core._pool_diagnostics()["threaded"]:
        pytest.skip("a build without threads (csrc/runtime/serial.c) runs every job serially")
    layer = rnnx.LSTM(4, 8, bidirectional=True, num_layers=2, seed=0)
    x = np.zeros((30, 2, 4), np.float32)
    _core.set_num_threads(2)
    before = _core._pool_diagnostics()["jobs"]
    layer(x)                                    # steps of 2 x 32 x 8: never split
    assert _core._pool_diagnostics()["jobs"] - before == 2   # one job of 2 passes per layer
    _core.set_num_threads(1)
    before = _core._pool_diagnostics()["jobs"]
    layer(x)
    assert _core._pool_diagnostics()["jobs"] == before


def test_bad_passes_are_refused():
    layer = rnnx.GRU(4, 8, seed=0)
    x, state = inputs(layer, 6, 3)
    passes = stack_args(layer, x, state)
    with pytest.raises(ValueError, match="at least one pass"):
        _core.forward_side_by_side([])
    passes[0]["reverse"] = True
    passes[0]["lengths"] = np.full(3, 7)        # longer than T
    with pytest.raises(ValueError, match=r"passes\[0\]: .*lengths"):
        _core.forward_side_by_side(passes)
    passes[0]["lengths"] = None
    passes[0]["go"] = 1
    with pytest.raises(ValueError, match=r"passes\[0\] must have the keys.*unknown \['go'\]"):
        _core.forward_side_by_side(passes)

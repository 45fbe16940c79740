"""Quantized models on the one C stream (csrc/stream/, RNNX_STREAM_INT8/_BFLOAT16 through
_core.Stream's qtype): their streams are rnnx.Stream / SequentialStream and give the
quantized sequence's bits; _core.Stream's checks of int8/bfloat16 tensors; saving and
loading a quantized model (.rnnx only; no loading into one)."""
import numpy as np
import pytest

import rnnx
from rnnx import _core
from rnnx.model_stream import SequentialStream

QTYPES = ("int8", "bfloat16")
LAYERS = {
    "rnn_relu": lambda: rnnx.RNN(5, 12, num_layers=2, nonlinearity="relu", seed=1),
    "gru": lambda: rnnx.GRU(5, 12, num_layers=3, seed=2),
    "lstm_proj": lambda: rnnx.LSTM(5, 16, num_layers=2, proj_size=7, seed=3),
    "lstm_no_bias": lambda: rnnx.LSTM(5, 12, bias=False, seed=4),
}


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_stream_is_the_one_stream_and_the_sequence_bit_for_bit(name, qtype):
    q = rnnx.quantize(LAYERS[name](), qtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 3, 5)).astype(np.float32)
    _, state0 = q(rng.standard_normal((2, 3, 5)).astype(np.float32))
    y, state = q(x, state0)
    s = q.stream(batch_size=3, state=state0)
    assert isinstance(s, rnnx.Stream)
    stepped = np.concatenate([np.stack([s.step(x[t]) for t in range(4)]), s.run(x[4:])])
    assert stepped.dtype == np.float32 and np.array_equal(stepped, y)
    for a, b in zip(s.state if isinstance(s.state, tuple) else (s.state,),
                    state if isinstance(state, tuple) else (state,)):
        assert np.array_equal(a, b)
    s.reset(state0)       # float64 steps are read as float32, as the quantized layer reads them
    assert np.array_equal(s.step(x[0].astype(np.float64)), y[0])


@pytest.mark.parametrize("qtype", QTYPES)
def test_sequential_stream_with_embedding_and_two_stacks(qtype):
    model = rnnx.Sequential(rnnx.Embedding(13, 6, seed=0), rnnx.GRU(6, 10, seed=1),
                            rnnx.LSTM(10, 8, num_layers=2, seed=2),
                            rnnx.Dense(8, 4, activation="softmax", seed=3))
    q = rnnx.quantize(model, qtype)
    ids = np.random.default_rng(1).integers(0, 13, (8, 2))
    y, state = q(ids)
    s = q.stream(batch_size=2)
    assert isinstance(s, SequentialStream)
    assert np.array_equal(np.concatenate([np.stack([s.step(ids[t]) for t in range(3)]),
                                          s.run(ids[3:])]), y)
    for got, want in zip(s.state, state):
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
    with pytest.raises(ValueError, match=r"x_t must hold ids in \[0, 13\)"):
        s.step(np.array([0, 13]))


def _int8_entry(G, I, S, rng):
    w_ih, s_ih = _core.quantize_int8(rng.standard_normal((G, I)).astype(np.float32))
    w_hh, s_hh = _core.quantize_int8(rng.standard_normal((G, S)).astype(np.float32))
    return [w_ih, s_ih, w_hh, s_hh, None, None]


def test_core_stream_checks_quantized_tensors_and_copies_them():
    rng = np.random.default_rng(2)
    entry = _int8_entry(12, 3, 4, rng)         # a GRU: G = 3H, H = 4
    cell = rnnx.GRU(3, 4)._cell                # the core's cell code
    kept = [a.copy() if a is not None else None for a in entry]
    s = _core.Stream(cell, [tuple(entry)], 1, np.float32, qtype="int8")
    x = rng.standard_normal((1, 3)).astype(np.float32)
    y = s.step(x)
    assert all(a is None and b is None or np.array_equal(a, b) for a, b in zip(entry, kept))
    entry[0][...] = 0                          # the stream holds copies
    s.set_state(np.zeros((1, 1, 4), np.float32))
    assert np.array_equal(s.step(x), y)

    bad = {
        "w_ih": (TypeError, r"weights\[0\].w_ih must be an ndarray of int8", 0,
                 entry[0].astype(np.float32)),
        "s_ih": (ValueError, r"weights\[0\].s_ih must have shape \(12,\)", 1, np.ones(11)),
        "w_hh": (ValueError, r"weights\[0\].w_hh must have shape \(12, 4\)", 2,
                 np.zeros((11, 4), np.int8)),
        "no s_hh": (ValueError, r"weights\[0\].s_hh is required", 3, None),
        "b_ih": (ValueError, r"weights\[0\].b_ih must have shape \(12,\)", 4, np.zeros(4)),
    }
    for what, (error, message, at, value) in bad.items():
        wrong = list(kept)
        wrong[at] = value
        with pytest.raises(error, match=message):
            _core.Stream(cell, [tuple(wrong)], 1, np.float32, qtype="int8")
    with pytest.raises(ValueError, match=r"weights\[0\].s_ih must be None for bfloat16"):
        _core.Stream(cell, [(_core.to_bfloat16(np.ones((12, 3), np.float32)), kept[1],
                             _core.to_bfloat16(np.ones((12, 4), np.float32)), None, None,
                             None)], 1,
                     np.float32, qtype="bfloat16")
    with pytest.raises(ValueError, match="qtype must be"):
        _core.Stream(cell, [tuple(kept)], 1, np.float32, qtype="int4")
    with pytest.raises(TypeError, match="dtype must be float32 with qtype='int8'"):
        _core.Stream(cell, [tuple(kept)], 1, np.float64, qtype="int8")
    with pytest.raises(ValueError, match=r"weights\[0\] must be a \(w_ih, s_ih"):
        _core.Stream(cell, [tuple(kept[:3])], 1, np.float32, qtype="int8")


@pytest.mark.parametrize("qtype", QTYPES)
def test_save_points_to_rnnx_which_round_trips(tmp_path, qtype):
    model = rnnx.Sequential(rnnx.LSTM(3, 8, proj_size=5, seed=0), rnnx.Dense(5, 2, seed=1))
    q = rnnx.quantize(model, qtype)
    for name in ("q.npz", "q.weights"):        # .npz, and what falls back to it
        with pytest.raises(TypeError, match=r"as \.rnnx, rnnx\.save\(model, 'model\.rnnx'\)"):
            rnnx.save(q, tmp_path / name)
        assert not (tmp_path / name).exists()
    rnnx.save(q, tmp_path / "q.rnnx")
    back = rnnx.load(tmp_path / "q.rnnx")
    x = np.random.default_rng(3).standard_normal((6, 2, 3)).astype(np.float32)
    y = q(x)[0]
    assert np.array_equal(back(x)[0], y)
    s = back.stream(batch_size=2)
    assert np.array_equal(s.run(x), y)


def test_load_into_a_quantized_model_is_refused_and_says_what_to_do(tmp_path):
    layer = rnnx.GRU(3, 6, seed=0)
    q = rnnx.quantize(layer, "int8")
    rnnx.save(q, tmp_path / "q.rnnx")
    rnnx.save(layer, tmp_path / "f.rnnx")
    rnnx.save(layer, tmp_path / "f.npz")
    x = np.random.default_rng(4).standard_normal((4, 1, 3)).astype(np.float32)
    y_q, y_f = q(x)[0], layer(x)[0]
    for into in (q, rnnx.quantize(rnnx.Sequential(layer, rnnx.Dense(6, 2)), "bfloat16")):
        for name in ("q.rnnx", "f.rnnx", "f.npz"):
            with pytest.raises(TypeError) as info:
                rnnx.load(tmp_path / name, into=into)
            message = str(info.value)
            assert "loading into a quantized model is not supported" in message
            assert f"rnnx.load({str(tmp_path / name)!r})" in message
            assert "different architecture" not in message
    assert np.array_equal(q(x)[0], y_q)                       # into as it was
    with pytest.raises(ValueError) as info:                  # a quantized file, a float into
        rnnx.load(tmp_path / "q.rnnx", into=layer)
    assert "holds a quantized model (int8" in str(info.value)
    assert "different architecture" not in str(info.value)
    assert np.array_equal(layer(x)[0], y_f)

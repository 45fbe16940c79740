"""rnnx_forward_args.row_exact, the explicit flag for a stream's bit-for-bit equality: with
it the input projection computes every row alone, so a step of a stream equals a
whole-sequence call bit for bit, in float32 too, even where the product is large enough
(T*B*G*I over 4M multiply-adds) that without it float32 goes through BLAS."""
import numpy as np
import pytest

from rnnx import _core


@pytest.mark.parametrize("cell", [_core.LSTM, _core.GRU, _core.RNN_TANH])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_steps_equal_a_row_exact_sequence(cell, dtype):
    rng = np.random.default_rng(0)
    T, B, I, H = 8, 4, 400, 160   # T*B*G*I: 8*4*640*400 = 8.2M for the LSTM
    G = _core.gate_count(cell) * H
    w = [(rng.standard_normal(s) * s[-1] ** -0.5).astype(dtype)
         for s in ((G, I), (G, H), (G,), (G,))]
    x = rng.standard_normal((T, B, I)).astype(dtype)
    stream = _core.Stream(cell, [tuple(w)], B, dtype)
    steps = np.stack([stream.step(x[t]) for t in range(T)])
    stream.set_state(None, None)
    chunk = stream.run(x, _core.Workspace())
    lstm = cell == _core.LSTM
    zeros = np.zeros((B, H), dtype)
    y = np.empty((T, B, H), dtype)
    _core.forward(cell, x, zeros, zeros if lstm else None, *w, None, False, y,
                  np.empty((B, H), dtype), np.empty((B, H), dtype) if lstm else None, False,
                  row_exact=True)
    assert np.array_equal(steps, y)
    assert np.array_equal(chunk, y)
    # without the flag the numbers are the same to rounding (BLAS may sum in another order)
    y_blas = np.empty_like(y)
    _core.forward(cell, x, zeros, zeros if lstm else None, *w, None, False, y_blas,
                  np.empty((B, H), dtype), np.empty((B, H), dtype) if lstm else None, False)
    np.testing.assert_allclose(y_blas, y, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-13)

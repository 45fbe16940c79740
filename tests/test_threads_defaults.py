"""Defaults that never lose to one thread: while a Python workload of rnnx runs
(Trainer.fit, Trainer.evaluate, a Sequential's run), every loaded OpenBLAS, NumPy's
included, is held at one thread (csrc/runtime/blas.c, rnnx._runtime.holding_blas), and
given its thread count back afterwards, also after an error and across threads."""
import threading

import numpy as np
import pytest

import rnnx
from rnnx import _core

threadpoolctl = pytest.importorskip("threadpoolctl")


def numpy_blas():
    """threadpoolctl's controllers of NumPy's own OpenBLAS (not SciPy's)."""
    controllers = threadpoolctl.ThreadpoolController().select(internal_api="openblas").lib_controllers
    found = [c for c in controllers if "numpy" in c.filepath]
    if not found or not _core._pool_diagnostics()["threaded"]:
        pytest.skip("NumPy has no OpenBLAS here, or the build has no threads (runtime/serial.c)")
    return found


def counts(controllers):
    return [c.num_threads for c in controllers]


def small_model(dtype=np.float32):
    model = rnnx.Sequential(rnnx.LSTM(4, 16, seed=0, dtype=dtype), rnnx.Dense(16, 3, seed=1, dtype=dtype))
    trainer = rnnx.Trainer(model, rnnx.MSELoss(), rnnx.Adam(model.parameters(), lr=1e-2), seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 4)).astype(dtype)
    y = rng.standard_normal((6, 5, 3)).astype(dtype)
    return model, trainer, x, y


def test_numpy_blas_is_held_at_one_thread_during_fit_and_restored():
    blas = numpy_blas()
    model, trainer, x, y = small_model()
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        seen = []
        trainer.fit(x, y, epochs=2, callback=lambda info: seen.append(counts(blas)))
        assert seen and all(c == [1] * len(blas) for c in seen), seen
        assert counts(blas) == [2] * len(blas)
        trainer.evaluate(x, y)
        model(x)
        assert counts(blas) == [2] * len(blas)


def test_a_model_run_holds_the_blas_inside_and_nests():
    blas = numpy_blas()
    model, _, x, _ = small_model()
    inside = []
    dense = model.layers[-1]
    original = dense._run

    def spy(*args, **kwargs):
        inside.append(counts(blas))
        return original(*args, **kwargs)

    dense._run = spy
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert _core.hold_blas(True) >= 1
        try:
            model(x)                          # a nested hold: still one thread after it
            assert counts(blas) == [1] * len(blas)
        finally:
            _core.hold_blas(False)
        assert counts(blas) == [2] * len(blas)
        _core.hold_blas(False)                # an end without a start changes nothing
        assert counts(blas) == [2] * len(blas)
        model.predict(x)
    assert inside == [[1] * len(blas)] * 2


def test_the_blas_comes_back_after_an_error():
    blas = numpy_blas()
    _, trainer, x, y = small_model()
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        with pytest.raises(ValueError, match="epochs"):
            trainer.fit(x, y, epochs=0)
        with pytest.raises(ValueError):
            trainer.fit(x[:, :, :3], y)       # the wrong input width, found inside the hold
        assert counts(blas) == [2] * len(blas)


def test_holds_from_several_threads_end_with_the_last():
    blas = numpy_blas()
    model, _, x, _ = small_model(np.float64)
    want = model(x)[0]
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        results, barrier = [None] * 4, threading.Barrier(4)

        def work(i):
            barrier.wait()
            results[i] = [model(x)[0] for _ in range(20)]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert counts(blas) == [2] * len(blas)
    for got in results:
        for y in got:
            np.testing.assert_array_equal(y, want)

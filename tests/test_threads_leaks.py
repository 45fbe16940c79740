"""Threads and leaks: the C core runs with the GIL released, so calls from several threads
run at once; they must give the serial answer bit for bit. A Stream holds mutable state and
buffers: shared between threads it must behave as if the steps ran one after another, or refuse
clearly. And 10^5 small calls must not grow the process's memory."""
import gc
import os
import threading

import numpy as np
import pytest

import rnnx
from shared import VARIANTS

N_THREADS = 4


def make(variant, dtype, I=8, H=32, **kwargs):
    class_name, extra = VARIANTS[variant]
    return getattr(rnnx, class_name)(I, H, dtype=dtype, seed=1, **extra, **kwargs)


def run_threads(work, items):
    """work(item) for every item, N_THREADS threads released together; results in item order.
    An exception in a thread is raised here."""
    results, errors = [None] * len(items), []
    barrier = threading.Barrier(N_THREADS)

    def worker(rank):
        try:
            barrier.wait()
            for i in range(rank, len(items), N_THREADS):
                results[i] = work(items[i])
        except BaseException as error:   # noqa: BLE001 - re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(rank,)) for rank in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def assert_same(a, b, what):
    if isinstance(a, dict):
        assert set(a) == set(b), what
        for k in a:
            assert_same(a[k], b[k], f"{what}[{k!r}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), what
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{what}[{k}]")
    else:
        assert np.array_equal(a, b, equal_nan=True), f"{what}: threaded result differs from the serial one"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", ["rnn_tanh", "lstm", "gru_reset_after", "gru_reset_before"])
def test_concurrent_calls_equal_serial_calls(variant, dtype):
    """Threads calling one layer's __call__, forward + backward, and a model's predict, on
    different inputs (with lengths, bidirectional, two layers), equal the serial calls bit for bit."""
    layer = make(variant, dtype, num_layers=2, bidirectional=True)
    model = rnnx.Sequential(make(variant, dtype), rnnx.Dense(32, 3, dtype=dtype, seed=2))
    rng = np.random.default_rng(0)
    items = []
    for i in range(2 * N_THREADS):
        T, B = 12 + i, 1 + i % 5
        items.append((rng.standard_normal((T, B, 8)).astype(dtype), rng.integers(1, T + 1, B),
                      rng.standard_normal((T, B, 64)).astype(dtype)))

    def work(item):
        x, lengths, dy = item
        y, state = layer(x, lengths=lengths)
        y2, _, cache = layer.forward(x, None, lengths)
        dx, dstate0, grads = layer.backward(cache, dy)
        return y, state, y2, dx, dstate0, grads, model.predict(x)

    serial = [work(item) for item in items]
    for attempt in range(2):
        assert_same(run_threads(work, items), serial, f"{variant} attempt {attempt}")


def stream_chain(layer, x_t, steps):
    """The serial outputs of `steps` steps of one stream fed the same x_t, and the final state."""
    stream = layer.stream(x_t.shape[0])
    ys = [stream.step(x_t) for _ in range(steps)]
    return ys, stream.state


@pytest.mark.parametrize("variant", ["lstm", "gru_reset_after"])
def test_stream_shared_between_threads_is_safe_or_refused(variant):
    """Every thread steps the same stream with the same x_t. Whatever order the steps run in, a
    safe stream goes through the serial chain s_1 .. s_n: the outputs are exactly y_1 .. y_n,
    each once, and the state ends at s_n. A stream that refuses a concurrent step must raise
    an error that says so (RuntimeError or ValueError naming the stream) and change nothing."""
    layer = make(variant, np.float64, I=32, H=128)
    x_t = np.random.default_rng(1).standard_normal((8, 32))
    per_thread = 25
    chain, final = stream_chain(layer, x_t, N_THREADS * per_thread)
    stream = layer.stream(8)
    outputs, refused = [], []
    lock = threading.Lock()

    def work(_):
        for _ in range(per_thread):
            try:
                y = stream.step(x_t)
            except (RuntimeError, ValueError) as error:
                assert "stream" in str(error).lower() or "thread" in str(error).lower(), str(error)
                with lock:
                    refused.append(error)
                continue
            with lock:
                outputs.append(y)
        return None

    run_threads(work, list(range(N_THREADS)))
    n = len(outputs)
    assert n + len(refused) == N_THREADS * per_thread
    expected = sorted(chain[:n], key=lambda a: a.tobytes())
    got = sorted(outputs, key=lambda a: a.tobytes())
    assert all(np.array_equal(a, b) for a, b in zip(got, expected)), (
        f"{n} concurrent steps did not give the serial outputs y_1 .. y_{n} once each")
    serial_state = stream_chain(layer, x_t, n)[1]
    for a, b in zip(stream.state if isinstance(stream.state, tuple) else (stream.state,),
                    serial_state if isinstance(serial_state, tuple) else (serial_state,)):
        assert np.array_equal(a, b), "the shared stream's state is not the serial state after its steps"


def test_separate_streams_in_threads_equal_serial():
    """One stream per thread (the supported way to stream from several threads)."""
    layer = make("lstm", np.float32, I=16, H=64)
    rng = np.random.default_rng(2)
    items = [rng.standard_normal((30, 4, 16)).astype(np.float32) for _ in range(2 * N_THREADS)]

    def work(x):
        stream = layer.stream(4)
        return np.stack([stream.step(x_t) for x_t in x]), stream.state

    assert_same(run_threads(work, items), [work(x) for x in items], "streams")


# ------------------------------------------------------------------ leaks


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc (Linux only)")
def test_no_leak_over_many_small_calls():
    """10^5 small calls (inference, stream steps, training forward + backward, refused calls) grow
    the resident set by less than 5 MB after a warm-up. A leak of one 8-byte buffer per call
    would already be 0.8 MB; a leaked array object or cache, 10 MB or more."""
    layer = rnnx.GRU(3, 4, seed=0)
    lstm = rnnx.LSTM(3, 4, num_layers=2, seed=0)
    stream = lstm.stream(2)
    x = np.random.default_rng(3).standard_normal((2, 2, 3)).astype(np.float32)
    x_t = x[0]
    dy = np.ones((2, 2, 4), np.float32)
    bad = np.zeros((2, 2, 5), np.float32)

    def round_of_calls():   # 5 calls
        layer(x)
        stream.step(x_t)
        _, _, cache = lstm.forward(x, None, np.array([2, 1]))
        lstm.backward(cache, dy)
        try:
            layer(bad)
        except ValueError:
            pass

    for _ in range(2000):
        round_of_calls()
    gc.collect()
    before = rss_bytes()
    for _ in range(20000):
        round_of_calls()
    gc.collect()
    growth = rss_bytes() - before
    print(f"RSS growth over 10^5 calls: {growth / 2**20:.2f} MB")
    assert growth < 5 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over 10^5 calls"


# ------------------------------------------------------------- rnnx's pool


def os_threads():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="counts threads from /proc (Linux only)")
def test_no_thread_leak_over_calls_and_thread_count_changes():
    """One pool per thread count, kept for the process: cycling set_num_threads over
    1, 2, 3, 5 and calling in between adds no OS thread after the first cycle."""
    before_n = rnnx.get_num_threads()
    layer = rnnx.LSTM(16, 64, seed=0)
    x = np.random.default_rng(0).standard_normal((20, 24, 16)).astype(np.float32)
    dy = np.ones((20, 24, 64), np.float32)
    try:
        def cycle():
            for n in (1, 2, 3, 5):
                rnnx.set_num_threads(n)
                layer(x)
                _, _, cache = layer.forward(x)
                layer.backward(cache, dy)

        cycle()
        threads = os_threads()
        for _ in range(25):
            cycle()
        assert os_threads() == threads, f"{threads} OS threads grew to {os_threads()}"
    finally:
        rnnx.set_num_threads(before_n)


def test_stress_calls_from_python_threads_while_the_count_changes():
    """N_THREADS Python threads run forward + backward at sizes that use the pool and the
    blocked hoisted products (the pool is busy for one of them at a time; the others run
    serially), while another thread keeps changing set_num_threads: every result equals
    the serial one bit for bit, and nothing crashes or hangs."""
    before_n = rnnx.get_num_threads()
    layer = rnnx.GRU(40, 80, num_layers=2, bidirectional=True, seed=3, dtype=np.float64)
    rng = np.random.default_rng(4)
    items = [(rng.standard_normal((8 + i, 32, 40)), rng.standard_normal((8 + i, 32, 160)))
             for i in range(2 * N_THREADS)]

    def work(item):
        x, dy = item
        y, _, cache = layer.forward(x)
        return y, layer.backward(cache, dy)

    rnnx.set_num_threads(1)
    serial = [work(item) for item in items]
    stop = threading.Event()

    def flip():
        counts = (2, 1, 3, 2, 5)
        i = 0
        while not stop.is_set():
            rnnx.set_num_threads(counts[i % len(counts)])
            i += 1
            stop.wait(0.002)

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for attempt in range(2):
            assert_same(run_threads(work, items), serial, f"attempt {attempt}")
    finally:
        stop.set()
        flipper.join()
        rnnx.set_num_threads(before_n)

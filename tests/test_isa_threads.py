"""The core's own per-step kernels, on every instruction set this CPU runs and at
every thread count, against the NumPy reference.

The default path packs W_hh in panels of U units (16 in float32, 8 in float64) and
runs register tiles of 4 rows; the backward product runs 4x32 tiles.  The sizes
below are sampled so that H falls on, just under and just past those bounds
(1, 15..17, 31..33, 47, 64, 129, 300) and B on and off the 4-row tiles and the
thread split (1 to 80), in float32 and float64.  Every output, final state and
gradient is compared, so a kernel that skips a k, drops a term or overwrites
instead of adding fails here.
"""
import os

import numpy as np
import pytest

from rnnx import _core
from rnnx import reference as ref
from shared import assert_close_scaled, core_forward_backward

CELLS = {row["name"]: row["code"] for row in _core.cell_table()}   # the core's names and codes
ISAS = _core.available_isas()
# float32 against a float64 reference on the same float32 values: sums of up to
# ~300 products of O(1) terms round to ~300 * 6e-8 ~ 2e-5 relative at worst; 1e-4
# leaves margin and still catches any wrong term (O(1e-2) or more).
TOL = {np.float64: 1e-10, np.float32: 1e-4}
# (T, B, I, H): H crosses the 8/16-unit panels and 32-wide tiles, B the 4-row tiles
SIZES = [(2, 1, 3, 1), (3, 5, 7, 17), (3, 4, 16, 16), (2, 3, 5, 33), (3, 17, 9, 47),
         (2, 80, 6, 129), (2, 2, 4, 300), (3, 33, 40, 64), (4, 1, 8, 15), (2, 6, 3, 31)]


def problem(cell, T, B, I, H, dtype, seed, lengths=False):
    rng = np.random.default_rng(seed)
    G = _core.gate_count(cell) * H
    scale = 1.0 / np.sqrt(H)  # keeps pre-activations O(1) at every H, so no gate saturates
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((B, H))).astype(dtype) if cell == _core.LSTM else None
    w = [(s * rng.standard_normal(shape)).astype(dtype)
         for s, shape in [(1.0 / np.sqrt(I), (G, I)), (2 * scale, (G, H)), (0.3, (G,)), (0.3, (G,))]]
    lens = rng.integers(1, T + 1, size=B).astype(np.int64) if lengths else None
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype)
    dc_n = rng.standard_normal((B, H)).astype(dtype) if cell == _core.LSTM else None
    return x, h0, c0, w, lens, dy, dh_n, dc_n


def run_core(cell, p, reverse, path=_core.PATH_AUTO):
    """Forward and backward through the binding: [y, h_n, (c_n), dx, dh0, (dc0), dw_ih, dw_hh, db_ih, db_hh]."""
    x, h0, c0, weights, lens, dy, dh_n, dc_n = p
    return core_forward_backward(cell, x, h0, c0, weights, lens, reverse, dy, dh_n, dc_n, path)


def run_reference(name, p, reverse):
    f64 = lambda a: None if a is None else a.astype(np.float64)
    x, h0, c0, w, lens, dy, dh_n, dc_n = p
    x, h0, c0, dy, dh_n, dc_n = map(f64, (x, h0, c0, dy, dh_n, dc_n))
    w = [f64(a) for a in w]
    if name == "lstm":
        y, h_n, c_n, cache = ref.lstm_forward(x, h0, c0, *w, lengths=lens, reverse=reverse)
        dx, dh0, dc0, *dw = ref.lstm_backward(dy, dh_n, dc_n, cache)
        return [y, h_n, c_n, dx, dh0, dc0] + dw
    if name.startswith("rnn"):
        y, h_n, cache = ref.rnn_forward(x, h0, *w, nonlinearity=name[4:], lengths=lens, reverse=reverse)
        dx, dh0, *dw = ref.rnn_backward(dy, dh_n, cache)
    else:
        y, h_n, cache = ref.gru_forward(x, h0, *w, reset_after=(name == "gru"), lengths=lens,
                                        reverse=reverse)
        dx, dh0, *dw = ref.gru_backward(dy, dh_n, cache)
    return [y, h_n, dx, dh0] + dw


NAMES_LSTM = ["y", "h_n", "c_n", "dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"]
NAMES = ["y", "h_n", "dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh"]


def assert_all_close(name, ours, theirs, dtype, what):
    names = NAMES_LSTM if name == "lstm" else NAMES
    assert len(ours) == len(theirs) == len(names)
    for n, a, b in zip(names, ours, theirs):
        assert_close_scaled(a, b, dtype, TOL[dtype], TOL[dtype], f"{what}: {n}")


def sampled_cases():
    """Each size with each cell, dtypes alternating, so every cell meets every size
    in one dtype and every bound in both (a full product would be 4x slower)."""
    cases = []
    for i, size in enumerate(SIZES):
        for j, name in enumerate(CELLS):
            dtype = [np.float32, np.float64][(i + j) % 2]
            cases.append(pytest.param(name, dtype, size, id=f"{name}-{np.dtype(dtype).name}-{size}"))
    return cases


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name,dtype,size", sampled_cases())
def test_every_isa_matches_the_reference(isa, name, dtype, size, isa_and_threads):
    _core.set_isa(isa)
    _core.set_num_threads(1)
    cell = CELLS[name]
    T, B, I, H = size
    reverse = (B + H) % 2 == 1
    p = problem(cell, T, B, I, H, dtype, seed=T * 7 + B * 11 + H, lengths=B > 2)
    assert_all_close(name, run_core(cell, p, reverse), run_reference(name, p, reverse), dtype,
                     f"{isa} {name} {size} reverse={reverse}")


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_path_agrees_in_both_dtypes(name, dtype, isa_and_threads):
    """The own kernel, BLAS per step and the naive gemm, on a size past every tile."""
    _core.set_num_threads(1)
    cell = CELLS[name]
    p = problem(cell, 3, 21, 10, 37, dtype, seed=5, lengths=True)
    results = [run_core(cell, p, True, path)
               for path in (_core.PATH_AUTO, _core.PATH_BLAS, _core.PATH_NAIVE)]
    theirs = run_reference(name, p, True)
    for path, ours in zip(["own", "blas", "naive"], results):
        assert_all_close(name, ours, theirs, dtype, path)


# (name, T, B, I, H): the step's task split (panels of 16/8 units, H 1..300), the batch
# (B 1..80, on and off the 4-row tiles; cut into row blocks where B >= 32 and panels are
# fewer than 4 tasks per thread) and the hoisted products' blocks (T*B*G*I past 2^20
# multiply-adds: cut by columns, or by rows where I > G as in the rnn_tanh case)
THREAD_CASES = [("lstm", 3, 1, 5, 1), ("gru_reset_before", 4, 9, 12, 70), ("gru", 5, 17, 9, 33),
                ("lstm", 8, 80, 40, 129), ("rnn_tanh", 10, 20, 300, 20), ("rnn_relu", 2, 3, 7, 300),
                ("gru_reset_before", 3, 70, 6, 16), ("lstm", 4, 66, 5, 20)]
THREAD_COUNTS = (1, 2, 3, 5)   # 5: more threads than this machine's cores


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,T,B,I,H", THREAD_CASES)
def test_thread_counts_give_equal_results(name, T, B, I, H, dtype, isa_and_threads):
    """Forward outputs and states bit for bit at 1, 2, 3 and 5 threads; float64 gradients
    bit for bit, float32 gradients to 1e-6 relative.  Every element is computed by the
    same code whoever runs it (whole panels per task, hoisted products in blocks fixed by
    their shapes), so all of them are in fact equal."""
    cell = CELLS[name]
    p = problem(cell, T, B, I, H, dtype, seed=T + B + H, lengths=B > 2)
    results = {}
    for n in THREAD_COUNTS:
        _core.set_num_threads(n)
        results[n] = run_core(cell, p, reverse=(H % 2 == 1))
    nfwd = 3 if name == "lstm" else 2
    for n in THREAD_COUNTS[1:]:
        for k, (a, b) in enumerate(zip(results[1][:nfwd], results[n][:nfwd])):
            assert np.array_equal(a, b), f"{n} threads changed forward output {k}"
        for k, (a, b) in enumerate(zip(results[1][nfwd:], results[n][nfwd:])):
            if dtype == np.float64:
                assert np.array_equal(a, b), f"{n} threads changed float64 gradient {k}"
            else:
                np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(a).max()),
                                           err_msg=f"{n} threads, float32 gradient {k}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,T,B,I,H", [c for c in THREAD_CASES if c[3] * c[1] * c[2] > 2**13])
def test_threaded_products_match_the_reference(name, T, B, I, H, dtype, isa_and_threads):
    """The cases whose hoisted products are cut into blocks and run on the pool (float32's
    gradient products too; float64's run the core's own ordered kernels), at 2 threads,
    against the NumPy reference: the equality above would not see a block misplaced at
    every thread count alike."""
    _core.set_num_threads(2)
    cell = CELLS[name]
    p = problem(cell, T, B, I, H, dtype, seed=9, lengths=True)
    assert_all_close(name, run_core(cell, p, False), run_reference(name, p, False), dtype,
                     f"{name} 2 threads")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_equals_the_whole_sequence(isa, name, dtype, isa_and_threads):
    """A two-layer stream, one step at a time (packed weights kept by the stream, the
    stream's own input projection), against whole-sequence calls of the same
    layers: bit for bit in float64, to float32 rounding in float32."""
    _core.set_isa(isa)
    _core.set_num_threads(1)
    cell = CELLS[name]
    T, B, I, H = 6, 3, 20, 35
    p0 = problem(cell, T, B, I, H, dtype, seed=1)
    p1 = problem(cell, T, B, H, H, dtype, seed=2)
    weights = [tuple(p0[3]), tuple(p1[3])]
    stream = _core.Stream(cell, weights, B, dtype)
    steps = np.stack([stream.step(p0[0][t]) for t in range(T)])
    lstm = cell == _core.LSTM
    layer_in = p0[0]
    for w in weights:
        y = np.empty((T, B, H), dtype)
        zeros = np.zeros((B, H), dtype)
        _core.forward(cell, layer_in, zeros, zeros if lstm else None, *w, None, False, y,
                      np.empty((B, H), dtype), np.empty((B, H), dtype) if lstm else None, False)
        layer_in = y
    if dtype == np.float64:
        assert np.array_equal(steps, layer_in)
    else:
        assert_close_scaled(steps, layer_in, dtype, 1e-5, 1e-5, "stream vs sequence")


def test_isa_can_be_forced_and_refused(isa_and_threads):
    assert "generic" in ISAS and _core.get_isa() in ISAS
    for isa in ISAS:
        _core.set_isa(isa)
        assert _core.get_isa() == isa
    for missing in set(_core.ISAS) - set(ISAS):
        with pytest.raises(ValueError, match="not available"):
            _core.set_isa(missing)
    with pytest.raises(ValueError, match="isa must be one of"):
        _core.set_isa("sse9")


def test_isa_names_come_from_the_core_list():
    """_core.ISAS is csrc/kernels/isa_list.h's list, best first, read from the core (rnnx_isa_name);
    the available ones keep its order, generic always among them."""
    import re
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "csrc", "kernels", "isa_list.h")) as f:
        listed = tuple(re.findall(r"^\s*X\((\w+),", f.read(), re.M))
    assert _core.ISAS == listed and listed[-1] == "generic" and len(set(listed)) == len(listed)
    assert ISAS == [name for name in listed if name in ISAS] and "generic" in ISAS
    for name in listed:
        assert os.path.exists(os.path.join(root, "csrc", "kernels", f"vec_{name}.h"))


def test_rnnx_isa_environment_variable():
    """RNNX_ISA picks the kernels at import; a name the CPU cannot run warns and falls back."""
    import subprocess
    import sys
    code = "import warnings; warnings.simplefilter('always'); from rnnx import _core; print(_core.get_isa())"
    for isa in ISAS:
        out = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "RNNX_ISA": isa},
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == isa
    out = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "RNNX_ISA": "bogus"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ISAS[0] and "RNNX_ISA='bogus' cannot run here" in out.stderr


def test_num_threads_is_checked(isa_and_threads):
    import rnnx
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        _core.set_num_threads(0)
    for bad in (0, -1, rnnx._runtime.MAX_THREADS + 1, 10**30):
        with pytest.raises(ValueError, match=f"n must be between 1 and 1024, got {bad}"):
            rnnx.set_num_threads(bad)
    for bad, kind in ((2.0, "float"), (True, "bool"), ("2", "str"), (None, "NoneType")):
        with pytest.raises(TypeError, match=f"n must be an int, got {kind}"):
            rnnx.set_num_threads(bad)
    assert rnnx.get_num_threads() == _core.get_num_threads()  # unchanged by the refusals
    rnnx.set_num_threads(np.int64(3))
    assert rnnx.get_num_threads() == 3


def test_threadpoolctl_sees_and_limits_rnnx(isa_and_threads):
    """rnnx's pool is a threadpoolctl library: listed by threadpool_info, limited by
    threadpool_limits (all libraries, or user_api="rnnx" alone) and restored after."""
    threadpoolctl = pytest.importorskip("threadpoolctl")   # a dependency of CI's test extra
    import rnnx
    rnnx.set_num_threads(3)
    entries = [e for e in threadpoolctl.threadpool_info() if e["user_api"] == "rnnx"]
    assert len(entries) == 1 and entries[0]["num_threads"] == 3
    assert entries[0]["version"] == rnnx.__version__
    with threadpoolctl.threadpool_limits(1):
        assert rnnx.get_num_threads() == 1
    assert rnnx.get_num_threads() == 3
    blas_before = [e["num_threads"] for e in threadpoolctl.threadpool_info() if e["user_api"] == "blas"]
    with threadpoolctl.threadpool_limits(limits=2, user_api="rnnx"):
        assert rnnx.get_num_threads() == 2
        assert [e["num_threads"] for e in threadpoolctl.threadpool_info()
                if e["user_api"] == "blas"] == blas_before
    assert rnnx.get_num_threads() == 3
    controller = threadpoolctl.ThreadpoolController().select(user_api="rnnx")
    with controller.limit(limits=1):
        assert rnnx.get_num_threads() == 1
    assert rnnx.get_num_threads() == 3


def test_blas_threads_are_capped_during_a_call_and_restored(isa_and_threads):
    """While a call's hoisted products run on the BLAS (PATH_BLAS, the twin of rnnx's own
    GEMM), the BLAS runs on one thread (rnnx's pool is the only one busy); afterwards its
    thread count is what it was."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import threading
    if not _core._pool_diagnostics()["threaded"]:
        pytest.skip("a build without threads (csrc/runtime/serial.c) leaves the BLAS alone")
    assert _core._pool_diagnostics()["blas_limitable"], "OpenBLAS's thread control was not found"
    # SciPy's OpenBLAS (rnnx calls scipy.linalg.cython_blas), not NumPy's
    blas = [c for c in threadpoolctl.ThreadpoolController().select(internal_api="openblas").lib_controllers
            if "scipy" in os.path.basename(os.path.dirname(c.filepath))]
    assert blas, "SciPy's OpenBLAS was not found by threadpoolctl"
    _core.set_num_threads(2)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = [c.num_threads for c in blas]
        cell = _core.LSTM   # a large input projection: T*B = 2048 rows, I = 1024
        p = problem(cell, 8, 256, 1024, 16, np.float32, seed=0)
        seen, done = set(), threading.Event()

        def call():
            try:
                for _ in range(3):
                    run_core(cell, p, False, _core.PATH_BLAS)
            finally:
                done.set()

        worker = threading.Thread(target=call)
        worker.start()
        while not done.is_set():
            seen.update(c.num_threads for c in blas)
        worker.join()
        assert 1 in seen, f"the BLAS kept {seen} threads during the call"
        assert [c.num_threads for c in blas] == before == [2] * len(blas)


def _forward_in_child(queue):
    import rnnx
    layer = rnnx.LSTM(8, 96, dtype=np.float32, seed=4)
    x = np.random.default_rng(0).standard_normal((5, 12, 8)).astype(np.float32)
    queue.put(layer(x)[0])


def test_threads_work_in_a_forked_child(isa_and_threads):
    """A forked child has no pool workers: it must run serially, not hang, and agree."""
    import multiprocessing
    _core.set_num_threads(2)
    import rnnx
    layer = rnnx.LSTM(8, 96, dtype=np.float32, seed=4)
    x = np.random.default_rng(0).standard_normal((5, 12, 8)).astype(np.float32)
    want = layer(x)[0]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_forward_in_child, args=(queue,))
    child.start()
    got = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert np.array_equal(got, want)

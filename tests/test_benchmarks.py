"""The benchmark harness runs end to end in its quick form and reports a well-formed result.

No timing is asserted (timings belong to benchmarks/): only that every grid row was
measured on rnnx and the reference, and on PyTorch / ONNX Runtime when they are installed.
"""

import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
CELLS = ("RNN-tanh", "LSTM", "GRU")
TIMEOUT_SECONDS = 600  # --quick takes well under a minute; this only stops a hang


def installed(module):
    return importlib.util.find_spec(module) is not None


def run_bench(*args):
    # The harness pins threads through the environment before numpy loads, so it runs
    # in its own process; it gets this process's sys.path to import the same rnnx.
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True, text=True, env=environment, timeout=TIMEOUT_SECONDS,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bench")
    json_path, plot_path = directory / "result.json", directory / "result.png"
    completed = run_bench("--quick", "--json", str(json_path), "--plot", str(plot_path))
    assert completed.returncode == 0, f"bench.py failed:\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout, json.loads(json_path.read_text()), plot_path


def finite_positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_quick_run_metadata(quick_run):
    _, result, _ = quick_run
    meta = result["meta"]
    assert meta["threads"] == 1 and meta["quick"] is True and meta["dtype"] == "float32"
    assert meta["isa"] in meta["available_isas"] and isinstance(meta["cpu"], str)
    assert meta["under_load"] is False
    assert finite_positive(meta["sgemm_gflops"])
    assert finite_positive(meta["rnnx_gemm_gflops"])
    assert meta["peers"][:2] == ["rnnx", "reference"]


def test_quick_run_covers_the_grid(quick_run):
    _, result, _ = quick_run
    rows = result["rows"]
    for cell in ("rnn", "lstm", "gru"):
        modes = {row["mode"] for row in rows if row["cell"] == cell}
        assert modes == {"inference", "training", "stream"}, f"{cell}: {modes}"
    for row in rows:
        if row["kind"] == "stream":
            assert row["B"] == 1 and row["T"] == 1
        assert all(isinstance(row[letter], int) and row[letter] > 0 for letter in "BHIT")


def test_every_row_is_timed_on_every_installed_peer(quick_run):
    _, result, _ = quick_run
    expected = {"rnnx", "reference"}
    if installed("torch"):
        expected.add("torch")
    ort = installed("torch") and installed("onnxruntime")
    for row in result["rows"]:
        wanted = expected | ({"onnxruntime"} if ort and row["mode"] != "training" else set())
        assert set(row["seconds"]) == wanted, row
        assert set(row["ratio_to_rnnx"]) == wanted and set(row["gflops"]) == wanted
        assert all(finite_positive(row["seconds"][peer]) for peer in wanted), row["seconds"]
        assert all(finite_positive(row["gflops"][peer]) for peer in wanted), row["gflops"]
        assert row["ratio_to_rnnx"]["rnnx"] == 1.0
        assert finite_positive(row["peak_fraction"]["rnnx"])
    assert set(result["meta"]["peers"]) == expected | ({"onnxruntime"} if ort else set())


def test_table_has_a_line_per_row(quick_run):
    stdout, result, _ = quick_run
    assert "Sequences: median milliseconds per call" in stdout
    assert "Streaming: median microseconds per step" in stdout
    assert "rnnx's GEMM alone" in stdout and "FMA peak" in stdout
    table_lines = [line for line in stdout.splitlines()
                   if line.startswith("| grid ") and any(f"| {c} " in line for c in CELLS)]
    assert len(table_lines) == len(result["rows"])
    for peer in result["meta"]["peers"]:
        assert f"{peer} ms" in stdout and f"{peer} us" in stdout


def test_plot_is_a_png_when_matplotlib_is_installed(quick_run):
    _, _, plot_path = quick_run
    pytest.importorskip("matplotlib")    # the `plot` extra (tests/extras.py)
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_several_thread_counts_forced_isa_and_load_merge_into_one_result(tmp_path):
    """--threads 1,2 runs one child per count; rows carry their count; the chart has both."""
    json_path, plot_path = tmp_path / "r.json", tmp_path / "r.png"
    completed = run_bench("--quick", "--cells", "rnn", "--threads", "1,2", "--isa", "generic",
                          "--under-load", "--json", str(json_path), "--plot", str(plot_path))
    assert completed.returncode == 0, f"bench.py failed:\n{completed.stdout}\n{completed.stderr}"
    result = json.loads(json_path.read_text())
    meta = result["meta"]
    assert meta["threads"] == [1, 2] and meta["isa"] == "generic" and meta["under_load"] is True
    assert set(meta["sgemm_gflops_per_threads"]) == {"1", "2"}
    assert set(meta["rnnx_gemm_gflops_per_threads"]) == {"1", "2"}
    counts = [row["threads"] for row in result["rows"]]
    assert counts.count(1) == counts.count(2) == len(counts) // 2 > 0
    assert "1,2 thread(s)" in completed.stdout and "next to one busy process" in completed.stdout
    # rnnx's own scaling, one line per grid point: time at 1 thread / time at 2
    assert "rnnx at 2 threads against 1" in completed.stdout
    assert completed.stdout.count("): 2: ") == len(counts) // 2
    if installed("matplotlib"):
        assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args", [["--threads", "0"], ["--threads", "1,x"], ["--cells", "lstm,cnn"],
                                  ["--isa", "sse"]])
def test_bad_arguments_are_refused(args):
    completed = run_bench(*args)
    assert completed.returncode == 2
    assert args[0] in completed.stderr


def test_each_engine_runs_in_its_own_process(quick_run):
    """By default every engine is timed in a child of its own: the thread pools each child
    saw are recorded per engine, and ONNX Runtime's child never started torch's threads."""
    _, result, _ = quick_run
    meta = result["meta"]
    assert meta["same_process"] is False
    assert set(meta["thread_pools"]) == {f"{engine}@1" for engine in ("rnnx", "reference", "torch", "onnxruntime")}
    assert "each engine in its own process" in quick_run[0]


def test_fma_peak_is_measured_for_rnnx_isa(quick_run):
    stdout, result, _ = quick_run
    meta = result["meta"]
    assert finite_positive(meta["fma_gflops"][meta["isa"]])
    for row in result["rows"]:
        share = row["fma_peak_fraction"]["rnnx"]
        assert finite_positive(share)
        assert math.isclose(share, row["gflops"]["rnnx"] / meta["fma_gflops"][meta["isa"]])
    assert "FMA peak (register-only loop" in stdout and "rnnx % FMA" in stdout


def test_published_shapes_and_same_process(tmp_path):
    """--suite published times DeepBench's and GNMT's shapes (quick: the first two);
    --same-process runs every engine in one child."""
    json_path = tmp_path / "r.json"
    completed = run_bench("--quick", "--cells", "lstm", "--suite", "published", "--same-process",
                          "--json", str(json_path))
    assert completed.returncode == 0, f"bench.py failed:\n{completed.stdout}\n{completed.stderr}"
    result = json.loads(json_path.read_text())
    assert result["meta"]["same_process"] is True and set(result["meta"]["thread_pools"]) == {"all@1"}
    shapes = {(row["source"], row["kind"], row["B"], row["H"], row["I"], row["T"]) for row in result["rows"]}
    assert shapes == {("DeepBench", "sequence", 1, 512, 512, 25), ("GNMT", "stream", 1, 512, 1024, 1)}
    assert "| DeepBench |" in completed.stdout and "| GNMT " in completed.stdout


def test_an_engine_that_disagrees_with_rnnx_fails_the_run(tmp_path):
    """A peer in its own process checks its outputs against rnnx's, saved by rnnx's
    process: a wrong expectation (here zeros) stops the run instead of being timed."""
    import numpy as np

    sys.path.insert(0, str(BENCH.parent))
    try:
        import runner
    finally:
        sys.path.remove(str(BENCH.parent))
    entry = runner.grid(True, ["rnn"])[0]
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{runner.entry_key(entry): np.zeros((entry[-1], entry[4], entry[5]), np.float32)})
    completed = run_bench("--quick", "--cells", "rnn", "--engine", "reference", "--expect", str(bad),
                          "--json", str(tmp_path / "r.json"))
    assert completed.returncode != 0
    assert "reference disagrees with rnnx" in completed.stderr


def test_fma_peak_without_a_compiler_says_why(monkeypatch):
    sys.path.insert(0, str(BENCH.parent))
    try:
        import fma_peak
    finally:
        sys.path.remove(str(BENCH.parent))
    monkeypatch.setattr(fma_peak, "_library", None)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    peaks, note = fma_peak.peaks(["generic"])
    assert peaks == {"generic": None} and "generic" in note


def test_defaults_benchmark_times_every_workload_both_ways(tmp_path):
    # benchmarks/defaults.py (issue 18's "defaults never lose to one thread"): every
    # workload timed at the defaults and at one thread, idle and beside a busy process
    script = BENCH.parent / "defaults.py"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = tmp_path / "defaults.json"
    done = subprocess.run([sys.executable, str(script), "--quick", "--json", str(out)],
                          capture_output=True, text=True, env=environment,
                          timeout=TIMEOUT_SECONDS)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert sorted(result) == ["busy", "idle"]
    for machine in result.values():
        assert sorted(machine) == ["0", "1"]
        assert all(len(times) == 3 and all(finite_positive(t) for t in times)
                   for times in machine.values())
    assert "default/1" in done.stdout and "Trainer.fit epoch" in done.stdout

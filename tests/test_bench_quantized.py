"""benchmarks/bench.py --quantized (benchmarks/quantized.py): every engine runs in its own
process and times every workload; peers that are not installed are skipped, not failed."""
import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_quantized_run_times_every_workload(tmp_path):
    out = tmp_path / "q.json"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench.py"),
                           "--quantized", "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    times = result["us_per_step"]
    workloads = ["sequence lstm B=1 H=128", "sequence lstm B=16 H=128", "stream lstm B=1 H=256"]
    for engine in ("rnnx-f32", "rnnx-int8", "rnnx-bf16"):
        assert all(times[engine][w] > 0 for w in workloads), engine
    peers = {"torch-qint8": "torch", "ort-f32": "onnxruntime", "ort-qint8": "onnxruntime"}
    for engine, module in peers.items():
        if importlib.util.find_spec(module) is not None:
            assert all(times[engine][w] > 0 for w in workloads), engine
    assert "int8 x best q-peer" in done.stdout

"""bench.py --quantized: rnnx int8 and bfloat16 against float32 rnnx, PyTorch's
quantize_dynamic LSTM/GRU, ONNX Runtime's DynamicQuantizeLSTM (quantize_dynamic of rnnx's
to_onnx file) and ONNX Runtime float32, one thread, each engine in a process of its own.

    python benchmarks/bench.py --quantized [--quick] [--json out.json]

Workloads: sequences (T=50 steps, B in 1 and 16, H = I in 128 and 256, LSTM and GRU) in
microseconds per step, and streams (B=1, LSTM H=256, one step per call, state carried) in
microseconds per step.  Times are the best of repeated runs after a warm-up: on a shared
machine other processes only ever add time, so the minimum is the least disturbed figure.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ENGINES = ("rnnx-f32", "rnnx-int8", "rnnx-bf16", "torch-qint8", "ort-f32", "ort-qint8")


def workloads(quick):
    seq = [(cell, B, H) for cell in ("lstm", "gru") for B in (1, 16) for H in (128, 256)]
    if quick:
        seq = [("lstm", 1, 128), ("lstm", 16, 128)]
    return [("sequence", cell, B, H) for cell, B, H in seq] + [("stream", "lstm", 1, 256)]


def _best_time(fn, repeat, budget=0.3):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start < budget and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _problem(cell, B, H, T):
    import numpy as np
    import rnnx
    layer = (rnnx.LSTM if cell == "lstm" else rnnx.GRU)(H, H, seed=0)
    x = np.random.default_rng(1).standard_normal((T, B, H)).astype(np.float32)
    return layer, x


def _rnnx_runner(engine, kind, cell, B, H, T):
    import rnnx
    rnnx.set_num_threads(1)
    layer, x = _problem(cell, B, H, T)
    model = layer if engine == "rnnx-f32" else rnnx.quantize(
        layer, "int8" if engine == "rnnx-int8" else "bfloat16")
    if kind == "sequence":
        return lambda: model(x)
    stream = model.stream(batch_size=B)
    return lambda: [stream.step(x[t]) for t in range(T)]


def _torch_runner(kind, cell, B, H, T):
    import warnings
    import numpy as np
    import torch
    torch.set_num_threads(1)
    layer, x = _problem(cell, B, H, T)
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(H, H)
    with torch.no_grad():
        for name, value in layer.parameters().items():
            getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(torch.nn.ModuleDict({"m": module}),
                                                   {type(module)}, dtype=torch.qint8)["m"]
    xt = torch.from_numpy(x)
    if kind == "sequence":
        def run():
            with torch.no_grad():
                q(xt)
        return run
    state = [None]

    def run():
        with torch.no_grad():
            for t in range(T):
                _, state[0] = q(xt[t:t + 1], state[0])
    return run


def _ort_runner(engine, kind, cell, B, H, T, folder):
    import numpy as np
    import onnxruntime as ort
    import rnnx
    if cell != "lstm" and engine == "ort-qint8":
        return None                      # ONNX Runtime has no DynamicQuantizeGRU
    layer, x = _problem(cell, B, H, T)
    path = os.path.join(folder, f"{cell}_{H}.onnx")
    rnnx.to_onnx(layer, path, state=(kind == "stream"))
    if engine == "ort-qint8":
        import logging
        from onnxruntime.quantization import QuantType, quantize_dynamic
        logging.getLogger().setLevel(logging.ERROR)   # its advice to pre-process, every call
        qpath = path.replace(".onnx", "_q.onnx")
        quantize_dynamic(path, qpath, weight_type=QuantType.QInt8)
        path = qpath
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if kind == "sequence":
        return lambda: session.run(None, {"x": x})
    feeds = {n: np.zeros((1, B, H), np.float32) for n in names if n != "x"}

    def run():
        state = dict(feeds)
        for t in range(T):
            out = session.run(None, {"x": x[t:t + 1], **state})
            state = dict(zip([n for n in names if n != "x"], out[1:]))
    return run


def child(engine, quick, path):
    """One engine's timings, written to path as JSON: {workload key: us per step or None}."""
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind, cell, B, H in workloads(quick):
            T = 20 if quick else (50 if kind == "sequence" else 100)
            try:
                if engine.startswith("rnnx"):
                    run = _rnnx_runner(engine, kind, cell, B, H, T)
                elif engine == "torch-qint8":
                    run = _torch_runner(kind, cell, B, H, T)
                else:
                    run = _ort_runner(engine, kind, cell, B, H, T, folder)
            except ImportError as e:
                print(f"{engine}: skipped ({e})", file=sys.stderr)
                run = None
            key = f"{kind} {cell} B={B} H={H}"
            results[key] = None if run is None else _best_time(run, 3 if quick else 7) / T * 1e6
    with open(path, "w") as f:
        json.dump(results, f)


def run_all(quick=False, json_path=None):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    merged = {}
    with tempfile.TemporaryDirectory() as folder:
        for engine in ENGINES:
            path = os.path.join(folder, engine + ".json")
            cmd = [sys.executable, os.path.abspath(__file__), "--engine", engine, path]
            cmd += ["--quick"] if quick else []
            done = subprocess.run(cmd, env=env)
            if done.returncode == 0 and os.path.exists(path):
                with open(path) as f:
                    merged[engine] = json.load(f)
            else:
                print(f"{engine}: failed (exit {done.returncode})", file=sys.stderr)
    keys = [f"{k} {c} B={b} H={h}" for k, c, b, h in workloads(quick)]
    cols = [e for e in ENGINES if e in merged]
    print("us per step, 1 thread, best of repeated runs; " + _cpu())
    print(f"{'workload':<28}" + "".join(f"{e:>12}" for e in cols) + f"{'int8 x best q-peer':>20}")
    for key in keys:
        row = {e: merged[e].get(key) for e in cols}
        peers = [v for e, v in row.items() if e in ("torch-qint8", "ort-qint8") and v]
        ratio = (min(peers) / row["rnnx-int8"]) if peers and row.get("rnnx-int8") else None
        print(f"{key:<28}" + "".join(f"{v:>12.2f}" if v else f"{'-':>12}" for v in row.values())
              + (f"{ratio:>19.2f}x" if ratio else f"{'-':>20}"))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"cpu": _cpu(), "us_per_step": merged}, f, indent=1)
    return merged


def _cpu():
    try:
        from rnnx._machine import describe_cpu
        return describe_cpu()
    except Exception:   # noqa: BLE001 (a description only)
        return "unknown CPU"


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv and argv[0] == "--engine":
        child(argv[1], "--quick" in argv, argv[2])
    else:
        run_all("--quick" in argv, argv[argv.index("--json") + 1] if "--json" in argv else None)

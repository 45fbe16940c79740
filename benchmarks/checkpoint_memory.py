"""Peak memory and time of one training forward + backward of an LSTM, plain BPTT against
checkpointed BPTT (checkpoint="sqrt"), for T from 10^2 to 10^5.

    python benchmarks/checkpoint_memory.py [--quick] [--json out.json] [--plot out.png]
                                           [--max-plain-gb 4]

Each (T, mode) runs in a fresh process, so one run's memory never counts in another's. Peak
memory is measured two ways: tracemalloc's peak of the run (NumPy's buffers are traced, so
this is the arrays the forward and backward allocate: x, y, dy, caches, work, gradients), and
the growth of the process's peak resident set (ru_maxrss) over what it held before the run.
Time is the wall time and the CPU time of forward + backward. BLAS is pinned to one thread
(OPENBLAS_NUM_THREADS=1 and friends), so the CPU time is the work of one core, which swings far
less than the wall time with the load of a shared machine.

Plain BPTT is skipped where its predicted peak (the per-step bytes measured at smaller T,
times T) exceeds --max-plain-gb: the report says so and gives the prediction instead.
"""
import argparse
import json
import os
import subprocess
import sys
import time

LAYER = {"input_size": 32, "hidden_size": 256, "batch": 8}
FULL_T = [100, 300, 1000, 3000, 10000, 30000, 100000]
QUICK_T = [100, 200]


def child(T, mode):
    """Runs in the child process: one forward + backward, prints a JSON line."""
    import resource
    import tracemalloc

    import numpy as np

    import rnnx

    I, H, B = LAYER["input_size"], LAYER["hidden_size"], LAYER["batch"]
    layer = rnnx.LSTM(I, H, dtype=np.float32, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    dy = rng.standard_normal((T, B, H), dtype=np.float32)
    checkpoint = None if mode == "plain" else "sqrt"
    warm = layer.forward(x[:10], checkpoint=checkpoint)  # load the BLAS, the kernels
    layer.backward(warm[2], dy[:10])
    del warm
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    y, state, cache = layer.forward(x, checkpoint=checkpoint)
    forward_s = time.perf_counter() - start
    dx, dstate0, grads = layer.backward(cache, dy)
    total_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"T": T, "mode": mode, "forward_s": forward_s, "seconds": total_s,
                      "cpu_seconds": cpu_s,
                      "traced_peak_bytes": traced_peak,
                      "rss_growth_bytes": max(0, rss_after - rss_before),
                      "inputs_bytes": x.nbytes + dy.nbytes}))


def run(T, mode):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, __file__, "--child", str(T), mode],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"T={T} {mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (mem, sec) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, style in (("plain", "o-"), ("checkpoint", "s-")):
        rows = [r for r in results if r["mode"] == mode and "seconds" in r]
        label = "plain BPTT" if mode == "plain" else 'checkpoint="sqrt"'
        mem.loglog([r["T"] for r in rows], [r["traced_peak_bytes"] / 2**20 for r in rows],
                   style, label=label)
        sec.loglog([r["T"] for r in rows], [r["cpu_seconds"] for r in rows], style, label=label)
    predicted = [r for r in results if r["mode"] == "plain" and "predicted_peak_bytes" in r]
    if predicted:
        mem.loglog([r["T"] for r in predicted],
                   [r["predicted_peak_bytes"] / 2**20 for r in predicted], "o", mfc="none",
                   color="C0", label="plain, predicted (not run)")
    mem.set(xlabel="sequence length T", ylabel="peak memory of forward + backward (MiB)",
            title="memory (tracemalloc peak)")
    sec.set(xlabel="sequence length T", ylabel="CPU seconds (one core)",
            title="time of forward + backward")
    for ax in (mem, sec):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    I, H, B = LAYER["input_size"], LAYER["hidden_size"], LAYER["batch"]
    fig.suptitle(f"rnnx LSTM float32, I={I} H={H} B={B}, one BLAS thread")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T in (100, 200) only")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="write the plot (PNG) here")
    parser.add_argument("--max-plain-gb", type=float, default=4.0,
                        help="skip plain BPTT where its predicted peak exceeds this")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(int(args.child[0]), args.child[1])
        return 0
    results = []
    per_step = None
    print(f"{'T':>7} {'mode':>10} {'peak MiB':>10} {'RSS MiB':>9} {'wall s':>9} {'CPU s':>9} "
          f"{'CPU us/step':>11}")
    for T in (QUICK_T if args.quick else FULL_T):
        for mode in ("plain", "checkpoint"):
            if mode == "plain" and per_step and per_step * T > args.max_plain_gb * 2**30:
                r = {"T": T, "mode": mode, "predicted_peak_bytes": per_step * T}
                print(f"{T:>7} {mode:>10} skipped: predicted peak {per_step * T / 2**30:.1f} GiB "
                      f"> --max-plain-gb {args.max_plain_gb}")
                results.append(r)
                continue
            r = run(T, mode)
            results.append(r)
            if mode == "plain":
                per_step = r["traced_peak_bytes"] / T
            print(f"{T:>7} {mode:>10} {r['traced_peak_bytes'] / 2**20:>10.1f} "
                  f"{r['rss_growth_bytes'] / 2**20:>9.1f} {r['seconds']:>9.3f} "
                  f"{r['cpu_seconds']:>9.3f} {1e6 * r['cpu_seconds'] / T:>11.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"layer": LAYER, "results": results}, f, indent=1)
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

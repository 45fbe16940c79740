"""Do rnnx's default thread settings ever lose to one thread?  The documented workloads, at
the defaults and with rnnx.set_num_threads(1), on an idle machine and next to one busy
process (a Python loop), each run in a fresh process of its own.

    python benchmarks/defaults.py             # about 2 minutes on 2 cores
    python benchmarks/defaults.py --quick     # one short round, for CI

The workloads: the demo's training updates (rnnx.charmodel, as `python -m rnnx` runs it),
one Trainer.fit epoch of an LSTM + Dense regression model with truncated BPTT, and LSTM
inference at (B, H, I, T) = (16, 128, 64, 200).  Printed: the best time of each (ms) and
default / one thread (at most 1.0 means the defaults never lose), and busy / idle.
"""
import argparse
import json
import os
import subprocess
import sys
import time

WORKLOADS = ("demo update", "Trainer.fit epoch", "LSTM (16,128,64,200) inference")

_CHILD = r"""
import json, sys, time
import numpy as np
import rnnx
threads, repeats = int(sys.argv[1]), int(sys.argv[2])
if threads:
    rnnx.set_num_threads(threads)

def best(fn, warm=1):
    for _ in range(warm):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3

from rnnx.charmodel import train_char_model
from rnnx.data import load_text
text = load_text("sqlite3_h")
updates = 10
def demo():
    train_char_model(text, updates=updates, sample_length=0, log=lambda line: None)
demo_ms = best(demo) / updates

rng = np.random.default_rng(0)
x = rng.standard_normal((64, 200, 8)).astype(np.float32)
y = rng.standard_normal((64, 200, 1)).astype(np.float32)
model = rnnx.Sequential([rnnx.LSTM(8, 64, batch_first=True), rnnx.Dense(64, 1)])
trainer = rnnx.Trainer(model, loss="mse", optimizer=rnnx.optim.Adam(model, lr=1e-3), bptt=50,
                       progress=False)
fit_ms = best(lambda: trainer.fit(x, y, epochs=1, batch_size=16))

layer = rnnx.LSTM(64, 128)
xs = rng.standard_normal((200, 16, 64)).astype(np.float32)
infer_ms = best(lambda: layer(xs), warm=3)
print(json.dumps([demo_ms, fit_ms, infer_ms]))
"""


def run(threads, repeats):
    out = subprocess.run([sys.executable, "-c", _CHILD, str(threads), str(repeats)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(busy, repeats, rounds):
    """{0 (defaults) or 1: [best ms per workload]} over `rounds` alternating runs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        best = {}
        for _ in range(rounds):
            for threads in (0, 1):
                got = run(threads, repeats)
                best[threads] = [min(a, b) for a, b in zip(best.get(threads, got), got)]
        return best
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round (CI)")
    parser.add_argument("--json", help="write the figures as JSON to this path")
    args = parser.parse_args(argv)
    repeats, rounds = (2, 1) if args.quick else (5, 3)
    import rnnx
    print(f"rnnx {rnnx.__version__} on {os.cpu_count()} CPUs, default threads "
          f"{rnnx.get_num_threads()}, ISA {rnnx.info()['isa']}; best of {repeats} x {rounds}")
    results = {"idle": measure(False, repeats, rounds), "busy": measure(True, repeats, rounds)}
    print(f"{'workload':34} {'machine':6} {'default ms':>10} {'1 thread ms':>11} "
          f"{'default/1':>9} {'busy/idle':>9}")
    for i, name in enumerate(WORKLOADS):
        for machine in ("idle", "busy"):
            d, one = results[machine][0][i], results[machine][1][i]
            vs_idle = d / results["idle"][0][i]
            print(f"{name:34} {machine:6} {d:10.2f} {one:11.2f} {d / one:9.2f} {vs_idle:9.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({m: {str(k): v for k, v in r.items()} for m, r in results.items()}, f)


if __name__ == "__main__":
    main()

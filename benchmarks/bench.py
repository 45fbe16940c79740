"""Benchmark rnnx against its NumPy reference, PyTorch CPU and ONNX Runtime, side by side.

    python benchmarks/bench.py                     # full grid, 1 thread
    python benchmarks/bench.py --quick             # CI-sized subset, under a minute
    python benchmarks/bench.py --threads 4 --json results.json --plot results.png
    python benchmarks/bench.py --threads 1,2 --isa generic --under-load

Every peer runs in this one process with the same thread count, on the same weights and
data. PyTorch and ONNX Runtime are used when installed and skipped (and said so) when not.
Several thread counts run one process each (the BLAS reads its thread count once, at
load), merged into one result.  --isa forces rnnx's kernels (RNNX_ISA); --under-load
starts one competing busy process for the whole run.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

# Read by numpy's and scipy's BLAS (OpenBLAS, MKL) and OpenMP when they load,
# so they are set before anything imports numpy.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CELL_CHOICES = ("rnn", "lstm", "gru")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1",
                        help="threads for every peer, or a comma-separated list of counts (default 1)")
    parser.add_argument("--isa", choices=("avx512", "avx2", "generic"),
                        help="force rnnx's kernels to this instruction set (default: the best the CPU runs)")
    parser.add_argument("--under-load", action="store_true",
                        help="run one competing busy process for the whole benchmark")
    parser.add_argument("--quick", action="store_true", help="small grid subset and short timings, for CI")
    parser.add_argument("--cells", default=",".join(CELL_CHOICES),
                        help="comma-separated subset of rnn,lstm,gru (default all)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG chart to PATH (needs matplotlib)")
    args = parser.parse_args(argv)
    try:
        args.threads = [int(n) for n in str(args.threads).split(",") if n.strip()]
    except ValueError:
        parser.error(f"--threads must be counts like 1 or 1,2, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    args.cells = [cell.strip() for cell in args.cells.split(",") if cell.strip()]
    unknown = [cell for cell in args.cells if cell not in CELL_CHOICES]
    if unknown or not args.cells:
        parser.error(f"--cells must be a subset of {','.join(CELL_CHOICES)}, got {unknown or 'nothing'}")
    return args


def pin_threads(threads):
    if "numpy" in sys.modules:
        raise RuntimeError("pin_threads must run before numpy is imported")
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)


def thread_pools():
    """The thread pools loaded in this process and their sizes, to show the pinning held."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return [
        {"api": pool["internal_api"], "threads": pool["num_threads"], "library": os.path.basename(pool["filepath"])}
        for pool in threadpool_info()
    ]


def start_load():
    """One busy process competing for the CPU, as another user's job would."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_one(args):
    """One thread count, in this process: returns the result dict."""
    threads = args.threads[0]
    pin_threads(threads)
    if args.isa:
        os.environ["RNNX_ISA"] = args.isa
    import numpy
    import scipy

    import rnnx
    import runner
    from peers import available_peers

    rnnx.set_num_threads(threads)
    info = rnnx.info()
    if args.isa and info["isa"] != args.isa:
        raise SystemExit(f"--isa {args.isa}: this CPU runs only {info['available_isas']}")
    peers, missing = available_peers(threads)
    versions = {"python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__}
    versions.update({peer.name: peer.version for peer in peers if peer.name != "reference"})

    def progress(entry):
        print("running", *entry, f"threads={threads}", file=sys.stderr, flush=True)

    peak_gflops, rows = runner.run(peers, args.quick, args.cells, progress)
    for row in rows:
        row["threads"] = threads
    return {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.system()} {platform.machine()} ({os.cpu_count()} logical CPUs)",
            "cpu": info["cpu"],
            "isa": info["isa"],
            "available_isas": info["available_isas"],
            "threads": threads,
            "under_load": args.under_load,
            "quick": args.quick,
            "dtype": "float32",
            "sgemm_size": runner.SGEMM_SIZE,
            "sgemm_gflops": peak_gflops,
            "peers": [peer.name for peer in peers],
            "missing_peers": missing,
            "versions": versions,
            "thread_pools": thread_pools(),
            "units": "seconds per call (sequence) or per step (stream)",
        },
        "rows": rows,
    }


def run_each_thread_count(args):
    """One child process per thread count; their results merged (meta of the first,
    threads and sgemm peak per count, every row tagged with its thread count)."""
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for n in args.threads:
            path = os.path.join(directory, f"threads{n}.json")
            child = [sys.executable, os.path.abspath(__file__), "--threads", str(n),
                     "--cells", ",".join(args.cells), "--json", path]
            child += ["--quick"] if args.quick else []
            child += ["--isa", args.isa] if args.isa else []
            completed = subprocess.run(child, stdout=subprocess.DEVNULL)
            if completed.returncode != 0:
                raise SystemExit(f"the run with --threads {n} failed ({completed.returncode})")
            with open(path) as f:
                results.append(json.load(f))
    merged = results[0]
    merged["meta"]["threads"] = args.threads
    merged["meta"]["under_load"] = args.under_load
    merged["meta"]["sgemm_gflops_per_threads"] = {str(n): r["meta"]["sgemm_gflops"]
                                                  for n, r in zip(args.threads, results)}
    merged["rows"] = [row for r in results for row in r["rows"]]
    return merged


def thread_scaling(result):
    """rnnx's own time at each thread count against its time at the first count, per
    grid point (the text under the tables when --threads lists several counts)."""
    counts = result["meta"]["threads"]
    if not isinstance(counts, list) or len(counts) < 2:
        return ""
    times = {}
    for row in result["rows"]:
        key = (row["kind"], row["cell"], row["mode"], row["B"], row["H"], row["I"], row["T"])
        times.setdefault(key, {})[row["threads"]] = row["seconds"]["rnnx"]
    first = counts[0]
    lines = [f"rnnx at {', '.join(map(str, counts[1:]))} threads against {first} "
             f"(time at {first} / time at n, above 1 means faster)"
             + (", next to one busy process" if result["meta"].get("under_load") else "") + ":"]
    for (kind, cell, mode, B, H, I, T), by_count in times.items():
        if first not in by_count:
            continue
        ratios = ", ".join(f"{n}: {by_count[first] / by_count[n]:.2f}x" for n in counts[1:] if n in by_count)
        lines.append(f"  {cell} {mode} (B={B}, H={H}, I={I}, T={T}): {ratios}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    import report

    load = start_load() if args.under_load else None
    try:
        if len(args.threads) == 1:
            result = run_one(args)
        else:
            result = run_each_thread_count(args)
    finally:
        if load is not None:
            load.kill()
            load.wait()
    print(report.table(result))
    scaling = thread_scaling(result)
    if scaling:
        print()
        print(scaling)
    if args.json:
        report.write_json(result, args.json)
    if args.plot:
        try:
            report.plot(result, args.plot)
        except ImportError:
            print(f"--plot {args.plot}: matplotlib is not installed, no chart written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

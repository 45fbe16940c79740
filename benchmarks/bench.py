"""Benchmark rnnx against its NumPy reference, PyTorch CPU and ONNX Runtime, side by side.

    python benchmarks/bench.py                     # full grid, 1 thread
    python benchmarks/bench.py --quick             # CI-sized subset, under a minute
    python benchmarks/bench.py --threads 4 --json results.json --plot results.png
    python benchmarks/bench.py --threads 1,2 --isa generic --under-load
    python benchmarks/bench.py --suite published   # DeepBench and GNMT shapes
    python benchmarks/bench.py --quantized         # int8/bfloat16 vs quantized peers

Every engine runs in a process of its own, one per thread count (one engine's idle or
spinning workers never slow another, and the BLAS reads its thread count once, at load),
on the same weights and data, with the same thread count; the results are merged into
one.  --same-process runs them all in one process instead (to see what sharing costs).
PyTorch and ONNX Runtime are used when installed and skipped (and said so) when not.
--isa forces rnnx's kernels (RNNX_ISA); --under-load starts one competing busy process
for the whole run.
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
ENGINES = ("rnnx", "reference", "torch", "onnxruntime")  # as peers.PEER_NAMES, rnnx first


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1",
                        help="threads for every peer, or a comma-separated list of counts (default 1)")
    parser.add_argument("--isa", help="force rnnx's kernels to one of its instruction sets that this "
                        "CPU runs, rnnx.info()['available_isas'] (default: the best)")
    parser.add_argument("--under-load", action="store_true",
                        help="run one competing busy process for the whole benchmark")
    parser.add_argument("--quick", action="store_true", help="small grid subset and short timings, for CI")
    parser.add_argument("--cells", default=",".join(CELL_CHOICES),
                        help="comma-separated subset of rnn,lstm,gru (default all)")
    parser.add_argument("--suite", choices=("grid", "published", "all"), default="grid",
                        help="rnnx's own grid (default), the published DeepBench and GNMT shapes, or both")
    parser.add_argument("--same-process", action="store_true",
                        help="every engine in one process (default: each in its own)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    # a child's own arguments (see run_engines): which engine, and rnnx's outputs to write or check
    parser.add_argument("--engine", choices=("all",) + ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--outputs", help=argparse.SUPPRESS)
    parser.add_argument("--expect", help=argparse.SUPPRESS)
    parser.add_argument("--plot", metavar="PATH", help="write a PNG chart to PATH (needs matplotlib)")
    parser.add_argument("--quantized", action="store_true",
                        help="int8/bfloat16 rnnx against quantized peers (benchmarks/quantized.py)")
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
    if args.isa and args.engine is None and args.isa not in rnnx_isas():
        parser.error(f"--isa must be one of rnnx's instruction sets {rnnx_isas()}, got {args.isa!r}")
    return args


def rnnx_isas():
    """The instruction sets rnnx's core knows (csrc/kernels/isa_list.h), asked of the core in
    a child, so that this process loads no numpy before pin_threads."""
    code = "from rnnx import _core; print(' '.join(_core.ISAS))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return completed.stdout.split()


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


def run_child(args):
    """A child process: one thread count, one engine (all with --engine all); writes
    {"meta", "rows"} to --json and, for rnnx, its outputs to --outputs."""
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
    names = ENGINES if args.engine == "all" else (args.engine,)
    peers, missing = available_peers(threads, names)
    meta = {
        "cpu": info["cpu"], "isa": info["isa"], "available_isas": info["available_isas"],
        "versions": {"python": platform.python_version(), "numpy": numpy.__version__,
                     "scipy": scipy.__version__},
        "missing_peers": missing,
    }
    meta["versions"].update({peer.name: peer.version for peer in peers if peer.name != "reference"})
    if "rnnx" in names:  # the peaks, measured in rnnx's process before any engine runs
        import fma_peak

        budget = runner.QUICK_BUDGET if args.quick else runner.FULL_BUDGET
        meta["sgemm_gflops"] = runner.sgemm_peak(**budget)
        meta["rnnx_gemm_gflops"] = runner.rnnx_gemm_peak(**budget)
        meta["fma_gflops"], meta["fma_note"] = fma_peak.peaks(info["available_isas"], threads)

    def progress(entry):
        print("running", args.engine, *entry, f"threads={threads}", file=sys.stderr, flush=True)

    expected = dict(numpy.load(args.expect)) if args.expect else None
    rows, rnnx_outputs = runner.run(peers, runner.grid(args.quick, args.cells, args.suite),
                                    args.quick, expected, progress)
    meta["thread_pools"] = thread_pools()  # after the runs: the pools the engines started
    if args.outputs:
        numpy.savez(args.outputs, **rnnx_outputs)
    for row in rows:
        row["threads"] = threads
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f)


def run_engines(args, directory):
    """One child per thread count and engine (rnnx first: the others check their outputs
    against its), merged into one result."""
    engines = ("all",) if args.same_process else ENGINES
    parts = []
    for n in args.threads:
        outputs = os.path.join(directory, f"rnnx-{n}.npz")
        for engine in engines:
            path = os.path.join(directory, f"{engine}-{n}.json")
            child = [sys.executable, os.path.abspath(__file__), "--threads", str(n),
                     "--cells", ",".join(args.cells), "--suite", args.suite,
                     "--engine", engine, "--json", path]
            child += ["--outputs", outputs] if engine in ("rnnx", "all") else ["--expect", outputs]
            child += ["--quick"] if args.quick else []
            child += ["--isa", args.isa] if args.isa else []
            completed = subprocess.run(child, stdout=subprocess.DEVNULL)
            if completed.returncode != 0:
                raise SystemExit(f"the {engine} run with --threads {n} failed ({completed.returncode})")
            with open(path) as f:
                parts.append((n, engine, json.load(f)))
    return merge(args, parts)


def merge(args, parts):
    """The children's results as one: a row per grid entry and thread count holding every
    engine's time, ratios and shares of the peaks measured at that thread count."""
    import runner

    first = next(part for n, engine, part in parts if engine in ("rnnx", "all"))["meta"]
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.system()} {platform.machine()} ({os.cpu_count()} logical CPUs)",
        "cpu": first["cpu"], "isa": first["isa"], "available_isas": first["available_isas"],
        "threads": args.threads[0] if len(args.threads) == 1 else args.threads,
        "under_load": args.under_load, "quick": args.quick, "suite": args.suite,
        "same_process": args.same_process, "dtype": "float32",
        "sgemm_size": 1024, "versions": {}, "missing_peers": {}, "thread_pools": {},
        "sgemm_gflops_per_threads": {}, "rnnx_gemm_gflops_per_threads": {},
        "fma_gflops_per_threads": {},
        "units": "seconds per call (sequence) or per step (stream)",
    }
    rows = {}
    for n, engine, part in parts:
        child_meta = part["meta"]
        meta["versions"].update(child_meta["versions"])
        meta["missing_peers"].update(child_meta["missing_peers"])
        meta["thread_pools"][f"{engine}@{n}"] = child_meta["thread_pools"]
        if "sgemm_gflops" in child_meta:
            meta["sgemm_gflops_per_threads"][str(n)] = child_meta["sgemm_gflops"]
            meta["rnnx_gemm_gflops_per_threads"][str(n)] = child_meta["rnnx_gemm_gflops"]
            meta["fma_gflops_per_threads"][str(n)] = child_meta["fma_gflops"]
            if child_meta["fma_note"]:
                meta["fma_note"] = child_meta["fma_note"]
        for row in part["rows"]:
            key = (row["source"], row["kind"], row["cell"], row["mode"],
                   row["B"], row["H"], row["I"], row["T"], n)
            merged = rows.setdefault(key, dict(row, seconds={}, repeats_x_number={}))
            merged["seconds"].update(row["seconds"])
            merged["repeats_x_number"].update(row["repeats_x_number"])
    first_count = str(args.threads[0])
    meta["sgemm_gflops"] = meta["sgemm_gflops_per_threads"][first_count]
    meta["rnnx_gemm_gflops"] = meta["rnnx_gemm_gflops_per_threads"][first_count]
    meta["fma_gflops"] = meta["fma_gflops_per_threads"][first_count]
    present = {name for row in rows.values() for name in row["seconds"]}
    meta["peers"] = [name for name in ENGINES if name in present]
    for row in rows.values():
        count = str(row["threads"])
        runner.add_ratios(row, meta["sgemm_gflops_per_threads"][count],
                          meta["fma_gflops_per_threads"][count].get(meta["isa"]))
    return {"meta": meta, "rows": list(rows.values())}


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
    if args.quantized:
        import quantized
        quantized.run_all(args.quick, args.json)
        return 0
    if args.engine:
        return run_child(args)
    import report

    load = start_load() if args.under_load else None
    try:
        with tempfile.TemporaryDirectory() as directory:
            result = run_engines(args, directory)
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

"""Benchmark rnnx against its NumPy reference, PyTorch CPU and ONNX Runtime, side by side.

    python benchmarks/bench.py                     # full grid, 1 thread
    python benchmarks/bench.py --quick             # CI-sized subset, under a minute
    python benchmarks/bench.py --threads 4 --json results.json --plot results.png

Every peer runs in this one process with the same thread count, on the same weights and
data. PyTorch and ONNX Runtime are used when installed and skipped (and said so) when not.
"""

import argparse
import datetime
import os
import platform
import sys

# Read by numpy's and scipy's BLAS (OpenBLAS, MKL) and OpenMP when they load,
# so they are set before anything imports numpy.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CELL_CHOICES = ("rnn", "lstm", "gru")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for every peer (default 1)")
    parser.add_argument("--quick", action="store_true", help="small grid subset and short timings, for CI")
    parser.add_argument("--cells", default=",".join(CELL_CHOICES),
                        help="comma-separated subset of rnn,lstm,gru (default all)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG chart to PATH (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.threads < 1:
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


def main(argv=None):
    args = parse_args(argv)
    pin_threads(args.threads)
    import numpy
    import scipy

    import report
    import runner
    from peers import available_peers

    peers, missing = available_peers(args.threads)
    versions = {"python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__}
    versions.update({peer.name: peer.version for peer in peers if peer.name != "reference"})

    def progress(entry):
        print("running", *entry, file=sys.stderr, flush=True)

    peak_gflops, rows = runner.run(peers, args.quick, args.cells, progress)
    result = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.system()} {platform.machine()} ({os.cpu_count()} logical CPUs)",
            "threads": args.threads,
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
    print(report.table(result))
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

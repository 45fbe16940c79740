"""The machine's float32 multiply-add peak per instruction set, measured, not looked up.

fma_peak.c holds one register-only loop per ISA (16-byte vectors without FMA, as rnnx's
portable build; AVX2+FMA; AVX-512; NEON with FMA).  This module compiles it with the system
C compiler (`CC`, else `cc`) into a temporary shared library, runs the loop on `threads`
threads at once (ctypes releases the GIL during the call) and reports GFLOP/s.  Every kernel's
GFLOP/s in the benchmark is then shown as a share of the peak of the ISA it ran on.

Returns None (and says why) where no compiler is reachable or the CPU lacks the ISA.
"""

import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
import time

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fma_peak.c")
LANES = {"generic": 4, "avx2": 8, "avx512": 16, "neon": 4}  # float32 lanes
ACCUMULATORS = 12  # as in fma_peak.c
_library = None


def _load():
    """The compiled library, built once per process; raises OSError without a compiler."""
    global _library
    if _library is None:
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not compiler:
            raise OSError("no C compiler (set CC) to build benchmarks/fma_peak.c")
        directory = tempfile.mkdtemp(prefix="rnnx-fma-peak-")
        path = os.path.join(directory, "fma_peak.so")
        subprocess.run([compiler, "-O3", "-ffp-contract=fast", "-fPIC", "-shared", SOURCE, "-o", path],
                       check=True, capture_output=True)
        _library = ctypes.CDLL(path)
    return _library


def _loop(isa):
    function = getattr(_load(), f"peak_{isa}")
    function.restype = ctypes.c_double
    function.argtypes = [ctypes.c_long]
    return function


def measure(isa, threads=1, seconds=0.3):
    """GFLOP/s of `threads` copies of the ISA's register-only loop running at once,
    the best of three runs of about `seconds` each."""
    loop = _loop(isa)
    iterations = 1 << 16
    while True:  # calibrate on one thread: a run of at least a tenth of `seconds`
        start = time.perf_counter()
        loop(iterations)
        if time.perf_counter() - start > seconds / 10:
            break
        iterations *= 2
    iterations *= 10
    best = 0.0
    for _ in range(3):
        workers = [threading.Thread(target=loop, args=(iterations,)) for _ in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        flops = 2.0 * iterations * ACCUMULATORS * LANES[isa] * threads
        best = max(best, flops / elapsed / 1e9)
    return best


def peaks(isas, threads=1):
    """{isa: GFLOP/s or None} for each ISA in `isas` (those the CPU runs), and a note
    saying why any is missing ('' when all were measured)."""
    result, notes = {}, []
    for isa in isas:
        if isa not in LANES:
            result[isa] = None
            notes.append(f"{isa}: no peak loop for it in fma_peak.c")
            continue
        try:
            result[isa] = measure(isa, threads)
        except (OSError, AttributeError, subprocess.CalledProcessError) as error:
            result[isa] = None
            notes.append(f"{isa}: {error}")
    return result, "; ".join(notes)


if __name__ == "__main__":
    import sys

    counts = [int(n) for n in (sys.argv[1:] or ["1"])]
    for n in counts:
        for isa in LANES:
            try:
                print(f"{isa:8s} {n} thread(s): {measure(isa, n):8.1f} GFLOP/s")
            except (OSError, AttributeError) as error:
                print(f"{isa:8s}: not measured ({error})")

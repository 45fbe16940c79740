"""The benchmark grid and published shapes, the timing loop, the FLOP count and the sgemm peak.

Import this module only after the BLAS/OpenMP thread counts are set in the environment
(bench.py does it): numpy and scipy read them once, when they load their BLAS.
"""

import math
import statistics
import time

import numpy as np

from peers import GATES, make_problem

# (B, H, I, T) of the sequence benchmarks
SEQUENCE_SHAPES = ((1, 64, 32, 500), (16, 128, 64, 200), (64, 256, 128, 100), (64, 512, 256, 50))
QUICK_SEQUENCE_SHAPES = SEQUENCE_SHAPES[:2]
# streaming is B=1, one step per call; I = H/2 as in the sequence grid
STREAM_HIDDEN = (64, 256)
QUICK_STREAM_HIDDEN = STREAM_HIDDEN[:1]
# Shapes published outside the project, (source, kind, cell, mode, B, H, I, T), those that
# fit a 2-core run: DeepBench's LSTM inference (server and device sets: I = H) and training
# sizes (baidu-research/DeepBench, code/kernels/rnn_problems.h), and oneDNN benchdnn's GNMT
# encoder (unidirectional layers, T from 10 to 101: here 50) and decoder (one step, input
# 1024 = the attention context beside the embedding) at B = 1 (tests/benchdnn/inputs/rnn/
# rnn_gnmt_encoder, rnn_gnmt_decoder).
PUBLISHED = (
    ("DeepBench", "sequence", "lstm", "inference", 1, 512, 512, 25),
    ("GNMT", "stream", "lstm", "stream", 1, 512, 1024, 1),
    ("DeepBench", "sequence", "lstm", "inference", 4, 512, 512, 25),
    ("DeepBench", "sequence", "lstm", "inference", 1, 1024, 1024, 25),
    ("DeepBench", "sequence", "lstm", "inference", 4, 1024, 1024, 25),
    ("DeepBench", "sequence", "lstm", "inference", 1, 256, 256, 150),
    ("DeepBench", "sequence", "lstm", "training", 16, 512, 512, 25),
    ("DeepBench", "sequence", "lstm", "training", 16, 1024, 1024, 25),
    ("GNMT", "sequence", "lstm", "inference", 1, 512, 512, 50),
)
SGEMM_SIZE = 1024

FULL_BUDGET = dict(target_seconds=0.5, min_repeats=5)
QUICK_BUDGET = dict(target_seconds=0.05, min_repeats=3)
MIN_SAMPLE_SECONDS = 1e-3  # a timed sample runs the callable enough times to last this long
MAX_REPEATS = 2000

# Before timing, each peer's output is compared with rnnx's on the same input: a wrong
# weight layout would otherwise be benchmarked silently. float32 over up to 500 steps.
CHECK_RTOL, CHECK_ATOL = 1e-3, 1e-4


def measure(fn, target_seconds, min_repeats):
    """Median seconds per call of fn(), and the repeat/inner-loop counts used.

    One warm-up call, one timed calibration call, then enough samples to spend about
    target_seconds (at least min_repeats). Fast callables are run `number` times per
    sample so each sample lasts at least MIN_SAMPLE_SECONDS (timer resolution, loop cost).
    """
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-9)
    number = max(1, math.ceil(MIN_SAMPLE_SECONDS / once))
    repeats = min(MAX_REPEATS, max(min_repeats, round(target_seconds / (once * number))))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return {"seconds": statistics.median(samples), "repeats": repeats, "number": number}


def sgemm_peak(target_seconds, min_repeats, size=SGEMM_SIZE):
    """GFLOP/s of a float32 (size x size) @ (size x size) GEMM through scipy's BLAS,
    the same BLAS rnnx calls (scipy.linalg.cython_blas), with the same thread count."""
    from scipy.linalg.blas import sgemm

    rng = np.random.default_rng(0)
    # Fortran order: the BLAS takes the arrays as they are, no copy inside the timing
    a = np.asfortranarray(rng.standard_normal((size, size), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((size, size), dtype=np.float32))
    c = np.zeros((size, size), np.float32, order="F")
    timing = measure(lambda: sgemm(1.0, a, b, c=c, overwrite_c=True), target_seconds, min_repeats)
    return 2.0 * size**3 / timing["seconds"] / 1e9


def rnnx_gemm_peak(target_seconds, min_repeats, size=SGEMM_SIZE):
    """GFLOP/s of the same float32 product through rnnx's own GEMM (the hoisted products'
    kernel, csrc/kernels/gemm_packed.c), on rnnx's threads: C += A @ B, row-major."""
    from rnnx import _core

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.zeros((size, size), np.float32)
    timing = measure(lambda: _core.gemm_acc(c, a, b), target_seconds, min_repeats)
    return 2.0 * size**3 / timing["seconds"] / 1e9


def forward_flops(cell, batch, hidden, input_size, steps):
    """2 * multiply-adds of the matrix products: per step (B, I+H) @ (I+H, G)."""
    return 2.0 * batch * GATES[cell] * hidden * (input_size + hidden) * steps


def grid(quick, cells, suite="grid"):
    """[(source, kind, cell, mode, B, H, I, T)]: rnnx's own grid (sequences in both modes,
    then streaming) and/or the published shapes (see PUBLISHED)."""
    entries = []
    if suite in ("grid", "all"):
        shapes = QUICK_SEQUENCE_SHAPES if quick else SEQUENCE_SHAPES
        stream_hidden = QUICK_STREAM_HIDDEN if quick else STREAM_HIDDEN
        for cell in cells:
            for batch, hidden, input_size, steps in shapes:
                for mode in ("inference", "training"):
                    entries.append(("grid", "sequence", cell, mode, batch, hidden, input_size, steps))
        for cell in cells:
            for hidden in stream_hidden:
                entries.append(("grid", "stream", cell, "stream", 1, hidden, hidden // 2, 1))
    if suite in ("published", "all"):
        published = PUBLISHED[:2] if quick else PUBLISHED
        entries += [entry for entry in published if entry[2] in cells]
    return entries


def entry_key(entry):
    """A row's identity across processes: source|kind|cell|mode|BxHxIxT."""
    source, kind, cell, mode, batch, hidden, input_size, steps = entry
    return f"{source}|{kind}|{cell}|{mode}|{batch}x{hidden}x{input_size}x{steps}"


def check_output(peer_name, got, expected, entry):
    if not np.allclose(np.asarray(got), expected, rtol=CHECK_RTOL, atol=CHECK_ATOL):
        difference = np.max(np.abs(np.asarray(got) - expected))
        raise RuntimeError(f"{peer_name} disagrees with rnnx on {entry}: max |difference| {difference:.3g}")


def run_entry(entry, peers, budget, expected=None):
    """Time one entry on every peer given that supports it: (row, {peer: first output}).
    Before timing, every other peer's output is checked against rnnx's: the one computed
    here when rnnx is among the peers (it comes first), else `expected` (rnnx's output
    from its own process)."""
    source, kind, cell, mode, batch, hidden, input_size, steps = entry
    problem = make_problem(cell, batch, hidden, input_size, steps)
    flops = forward_flops(cell, batch, hidden, input_size, steps)
    if mode == "training":
        flops *= 3  # backward is about twice the forward's matrix products
    make = {"inference": "inference", "training": "training_step", "stream": "stream_step"}[mode]

    seconds, repeats, outputs = {}, {}, {}
    for peer in peers:
        fn = getattr(peer, make)(problem)
        if fn is None:
            continue
        if mode != "training":
            outputs[peer.name] = np.asarray(fn())
            reference = outputs.get("rnnx", expected)
            if peer.name != "rnnx" and reference is not None:
                check_output(peer.name, outputs[peer.name], reference, entry)
        timing = measure(fn, **budget)
        seconds[peer.name] = timing["seconds"]
        repeats[peer.name] = [timing["repeats"], timing["number"]]

    row = {
        "source": source, "kind": kind, "cell": cell, "mode": mode,
        "B": batch, "H": hidden, "I": input_size, "T": steps,
        "flops": flops,
        "seconds": seconds,
        "repeats_x_number": repeats,
    }
    return row, outputs


def add_ratios(row, sgemm_gflops, fma_gflops):
    """Fill a merged row's ratios to rnnx, GFLOP/s and shares of the two peaks (the FMA
    peak of the ISA rnnx ran, None where it could not be measured)."""
    seconds = row["seconds"]
    row["ratio_to_rnnx"] = {name: s / seconds["rnnx"] for name, s in seconds.items()}
    row["gflops"] = {name: row["flops"] / s / 1e9 for name, s in seconds.items()}
    row["peak_fraction"] = {name: g / sgemm_gflops for name, g in row["gflops"].items()}
    row["fma_peak_fraction"] = ({name: g / fma_gflops for name, g in row["gflops"].items()}
                                if fma_gflops else None)
    return row


def run(peers, entries, quick, expected=None, progress=None):
    """Every entry on the given peers: (rows, {entry_key: rnnx's output}); `expected`
    holds rnnx's outputs by entry_key when rnnx runs in another process."""
    budget = QUICK_BUDGET if quick else FULL_BUDGET
    rows, rnnx_outputs = [], {}
    for entry in entries:
        if progress:
            progress(entry)
        key = entry_key(entry)
        row, outputs = run_entry(entry, peers, budget, None if expected is None else expected.get(key))
        if "rnnx" in outputs:
            rnnx_outputs[key] = outputs["rnnx"]
        rows.append(row)
    return rows, rnnx_outputs

"""python -m rnnx: train a small character model with truncated BPTT on bundled data, then
time rnnx against its NumPy reference on the same layer and shape.

The model is an LSTM with a softmax output over the characters of the bundled corpus (the
head of SQLite's sqlite3.h, public domain), trained on parallel streams of the text in
chunks of --bptt steps with the state carried across chunks (Adam, gradient clipping) for
a fixed number of --updates (rnnx.charmodel.train_char_model, shared with
examples/char_model.py). The loss is printed as it goes down, then the held-out loss and a
sample from the seed "void ". The benchmark times one forward + backward (full BPTT) of the
trained LSTM layer on one training chunk, and of a fresh small layer on a long sequence
(--shape), with rnnx and with rnnx.reference (plain NumPy, one Python iteration per step) on
the same weights and shape, and prints the ratio.

Every bad option value or combination is a usage error (exit status 2, no traceback).
"""
import argparse
import math
import os
import sys
import time

import numpy as np


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _shape(text):
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"must be four positive integers T,B,I,H, got {text!r}")
    return shape


def build_parser(prog="python -m rnnx"):
    """The argparse parser of ``python -m rnnx``.

    Parameters
    ----------
    prog : str, default "python -m rnnx"
        The program name in usage and error messages ("rnnx" for the console command).

    Returns
    -------
    argparse.ArgumentParser
        Every value is checked by its ``type`` (finite positive floats, integers >= 1 or
        >= 0, four positive integers for --shape) and --no-benchmark excludes
        --benchmark-only, so a bad value is a usage error (exit status 2), never a
        traceback.
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train a small LSTM character model with truncated BPTT on bundled data "
                    "for a fixed number of updates, then time rnnx against its NumPy "
                    "reference (forward + backward).")
    parser.add_argument("--version", action="version", version=f"rnnx {__version__}")
    train = parser.add_argument_group("training")
    train.add_argument("--updates", type=_int_at_least(1), default=300,
                       help="number of updates (chunks of --bptt steps) to train for "
                            "(default 300)")
    train.add_argument("--hidden", type=_int_at_least(1), default=128,
                       help="LSTM hidden size (default 128)")
    train.add_argument("--bptt", type=_int_at_least(1), default=32,
                       help="truncation length k: an update every k steps, BPTT through them "
                            "(default 32)")
    train.add_argument("--streams", type=_int_at_least(1), default=32,
                       help="parallel streams of the text, the batch size (default 32)")
    train.add_argument("--lr", type=_positive_float, default=3e-3,
                       help="Adam learning rate (default 3e-3)")
    train.add_argument("--clip-norm", type=_positive_float, default=5.0,
                       help="clip gradients to this global norm (default 5)")
    train.add_argument("--temperature", type=_positive_float, default=0.6,
                       help="sampling temperature (default 0.6)")
    train.add_argument("--sample-length", type=_int_at_least(1), default=300,
                       help="characters to sample (default 300)")
    train.add_argument("--seed", type=_int_at_least(0), default=0,
                       help="seed of weights and sampling (default 0)")
    bench = parser.add_argument_group("benchmark")
    skip = bench.add_mutually_exclusive_group()
    skip.add_argument("--no-benchmark", action="store_true", help="skip the speed comparison")
    skip.add_argument("--benchmark-only", action="store_true", help="skip the training")
    bench.add_argument("--cell", choices=("RNN", "LSTM", "GRU"), default="LSTM",
                       help="cell of the fresh layer to time (default LSTM)")
    bench.add_argument("--shape", type=_shape, default=(200, 1, 1, 8), metavar="T,B,I,H",
                       help="steps, batch, input size, hidden size of a second, fresh layer to "
                            "time (default 200,1,1,8: a long sequence through a small layer, "
                            "like the sunspot and pulse examples)")
    bench.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    return parser


def parse_args(argv, prog="python -m rnnx"):
    """Parse the options.

    Parameters
    ----------
    argv : list of str
    prog : str, default "python -m rnnx"

    Returns
    -------
    argparse.Namespace
        A bad value or combination exits with a usage error (status 2) instead.
    """
    return build_parser(prog).parse_args(argv)


def train(args):
    """Train the character model of rnnx.charmodel as the options say, printing as it goes.

    Parameters
    ----------
    args : argparse.Namespace
        From `parse_args`.

    Returns
    -------
    rnnx.LSTM
        The trained LSTM layer (for the benchmark).
    """
    import rnnx
    from rnnx.charmodel import train_char_model
    from rnnx.data import load_text

    text = load_text("sqlite3_h")
    print(f"rnnx {rnnx.__version__}: character model on the bundled sqlite3.h head "
          f"({len(text)} characters)", flush=True)
    result = train_char_model(text, hidden=args.hidden, streams=args.streams, bptt=args.bptt,
                              lr=args.lr, clip_norm=args.clip_norm, updates=args.updates,
                              seed=args.seed, sample_length=args.sample_length,
                              temperatures=(args.temperature,),
                              log=lambda line: print(line, flush=True))
    return next(layer for layer in result["model"].layers if layer.is_recurrent)


# How far rnnx may be from rnnx.reference, relative to the largest magnitude compared: the
# two sum in different orders (BLAS blocking, FMA), ~1e-7 relative per float32 operation and
# ~1e-16 per float64 one, accumulated over T steps of backward.
AGREEMENT = {"float32": 1e-3, "float64": 1e-9}


def _best_time(fn, min_seconds=0.5, min_repeats=3):
    fn()                                              # warm up
    times = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def benchmark_layer(layer, T, B, seed=0):
    """Time forward + backward (full BPTT) of a layer with rnnx and with rnnx.reference on
    the same weights and shape; print both times, the ratio and how far the results differ.

    Parameters
    ----------
    layer : rnnx.RNN, rnnx.LSTM or rnnx.GRU
        One layer, one direction, with biases.
    T, B : int
        Steps and batch size of the random input.
    seed : int, default 0
        Seed of the input and output gradient.

    Returns
    -------
    t_fast, t_slow : float
        Best seconds of rnnx and of the reference.
    disagreement : float
        Largest difference of y, dx and dW_hh between the two, relative to the largest
        magnitude among them.
    """
    from rnnx import reference

    cell = type(layer).__name__
    I, H, dtype = layer.input_size, layer.hidden_size, layer.dtype
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    p = layer.parameters()
    weights = (p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    h0 = np.zeros((B, H), dtype)

    def fast():
        y, _, cache = layer.forward(x)
        return y, layer.backward(cache, dy)

    def slow():
        if cell == "LSTM":
            y, _, _, cache = reference.lstm_forward(x, h0, h0, *weights)
            return y, reference.lstm_backward(dy, None, None, cache)
        if cell == "GRU":
            y, _, cache = reference.gru_forward(x, h0, *weights, reset_after=layer.reset_after)
            return y, reference.gru_backward(dy, None, cache)
        y, _, cache = reference.rnn_forward(x, h0, *weights, nonlinearity=layer.nonlinearity)
        return y, reference.rnn_backward(dy, None, cache)

    y_fast, (dx_fast, _, grads) = fast()
    y_slow, slow_grads = slow()
    pairs = [(y_fast, y_slow), (dx_fast, slow_grads[0]), (grads["weight_hh_l0"], slow_grads[-3])]
    scale = max(1.0, *(float(np.max(np.abs(b))) for _, b in pairs))
    agree = max(float(np.max(np.abs(a - b))) for a, b in pairs) / scale
    t_fast, t_slow = _best_time(fast), _best_time(slow)
    print(f"  {cell}({I}, {H}) T={T} B={B} {dtype.name}: rnnx {t_fast * 1e3:.3f} ms, "
          f"rnnx.reference {t_slow * 1e3:.3f} ms: {t_slow / t_fast:.1f}x faster "
          f"(results agree to {agree:.1e} relative)")
    return t_fast, t_slow, agree


def benchmark(args, trained_layer=None):
    """Time the trained layer (if any) and a fresh one of --cell and --shape against the
    reference, printing the times.

    Parameters
    ----------
    args : argparse.Namespace
        From `parse_args`.
    trained_layer : rnnx.LSTM, optional
        Timed on one training chunk (--bptt steps x --streams).

    Returns
    -------
    bool
        True when rnnx and the reference agree within AGREEMENT for every layer timed (a
        disagreement is also printed to stderr).
    """
    import rnnx

    print("\nspeed of one forward + backward (full BPTT), rnnx against rnnx.reference (plain "
          "NumPy, one Python iteration per step), best of repeated runs:")
    runs = []
    if trained_layer is not None:
        print("the trained layer on one training chunk:")
        runs.append((trained_layer, benchmark_layer(trained_layer, args.bptt, args.streams,
                                                    args.seed)[2]))
    T, B, I, H = args.shape
    layer = getattr(rnnx, args.cell)(I, H, dtype=np.dtype(args.dtype), seed=args.seed)
    print(f"--shape {T},{B},{I},{H} --cell {args.cell}:")
    runs.append((layer, benchmark_layer(layer, T, B, args.seed)[2]))
    ok = True
    for layer, agree in runs:
        tolerance = AGREEMENT[np.dtype(layer.dtype).name]
        if not agree <= tolerance:
            print(f"error: rnnx and rnnx.reference disagree by {agree:.1e} (relative) on "
                  f"{type(layer).__name__}({layer.input_size}, {layer.hidden_size}), more than "
                  f"the {tolerance:.0e} their rounding explains", file=sys.stderr)
            ok = False
    return ok


def main(argv=None):
    """Entry point of ``python -m rnnx`` and of the ``rnnx`` console command.

    Parameters
    ----------
    argv : list of str, optional
        The options (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 1 when rnnx and the reference disagree beyond rounding (a usage
        error exits with status 2 instead).
    """
    prog = "rnnx" if os.path.basename(sys.argv[0] or "") == "rnnx" else "python -m rnnx"
    args = parse_args(sys.argv[1:] if argv is None else argv, prog)
    trained = None if args.benchmark_only else train(args)
    if not args.no_benchmark and not benchmark(args, trained):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

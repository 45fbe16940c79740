"""python -m rnnx: train a small character model with truncated BPTT on bundled data, then
time rnnx against its NumPy reference on the same layer and shape.

The model is an LSTM with a softmax output over the characters of the bundled corpus (the
head of SQLite's sqlite3.h, public domain), trained on parallel streams of the text in
chunks of --bptt steps with the state carried across chunks (Adam, gradient clipping) for
--seconds. The loss is printed as it goes down, then the held-out loss and a sample from
the seed "void ". The benchmark times one forward + backward (full BPTT) of the trained LSTM
layer on one training chunk, and of a fresh small layer on a long sequence (--shape), with
rnnx and with rnnx.reference (plain NumPy, one Python iteration per step) on the same weights
and shape, and prints the ratio.
"""
import argparse
import sys
import time

import numpy as np


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m rnnx",
        description="Train a small LSTM character model with truncated BPTT on bundled data, "
                    "then time rnnx against its NumPy reference (forward + backward).")
    train = parser.add_argument_group("training")
    train.add_argument("--seconds", type=float, default=15.0,
                       help="training time budget in seconds (default 15)")
    train.add_argument("--hidden", type=int, default=128, help="LSTM hidden size (default 128)")
    train.add_argument("--bptt", type=int, default=32,
                       help="truncation length k: an update every k steps, BPTT through them "
                            "(default 32)")
    train.add_argument("--streams", type=int, default=32,
                       help="parallel streams of the text, the batch size (default 32)")
    train.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    train.add_argument("--clip-norm", type=float, default=5.0,
                       help="clip gradients to this global norm (default 5)")
    train.add_argument("--temperature", type=float, default=0.6,
                       help="sampling temperature (default 0.6)")
    train.add_argument("--sample-length", type=int, default=300, help="characters to sample")
    train.add_argument("--seed", type=int, default=0, help="seed of weights, order and sampling")
    bench = parser.add_argument_group("benchmark")
    bench.add_argument("--no-benchmark", action="store_true", help="skip the speed comparison")
    bench.add_argument("--benchmark-only", action="store_true", help="skip the training")
    bench.add_argument("--cell", choices=("RNN", "LSTM", "GRU"), default="LSTM",
                       help="cell of the fresh layer to time (default LSTM)")
    bench.add_argument("--shape", default="200,1,1,8", metavar="T,B,I,H",
                       help="steps, batch, input size, hidden size of a second, fresh layer to "
                            "time (default 200,1,1,8: a long sequence through a small layer, "
                            "like the sunspot and pulse examples)")
    bench.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args(argv)
    try:
        args.shape = tuple(int(v) for v in args.shape.split(","))
        assert len(args.shape) == 4 and min(args.shape) >= 1
    except (ValueError, AssertionError):
        parser.error(f"--shape must be four positive integers T,B,I,H, got {args.shape!r}")
    for name in ("seconds", "lr", "clip_norm", "temperature"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    for name in ("hidden", "bptt", "streams"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def train(args):
    import rnnx
    from rnnx.data import encode_text, load_text, one_hot, sample_chars, stream_batches
    from rnnx.dense import Dense
    from rnnx.losses import SoftmaxCrossEntropy
    from rnnx.model import Sequential
    from rnnx.optim import Adam
    from rnnx.trainer import Trainer

    text = load_text("sqlite3_h")
    ids, vocab = encode_text(text)
    V = len(vocab)
    split = int(0.9 * len(ids))
    inputs, targets = stream_batches(ids[:split], args.streams)
    valid_in, valid_tgt = stream_batches(ids[split:], 8)
    x, x_valid = one_hot(inputs, V), one_hot(valid_in, V)
    model = Sequential(rnnx.LSTM(V, args.hidden, seed=args.seed),
                       Dense(args.hidden, V, activation="softmax", seed=args.seed + 1))
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=args.lr),
                      bptt=args.bptt, clip_norm=args.clip_norm, seed=args.seed)
    print(f"rnnx {rnnx.__version__}: character model on the bundled sqlite3.h head "
          f"({len(text)} characters, vocabulary {V})")
    print(f"LSTM({V}, {args.hidden}) -> Dense({args.hidden}, {V}, softmax): "
          f"{model.num_parameters()} weights; {args.streams} streams x {x.shape[0]} steps, "
          f"truncated BPTT k={args.bptt}, Adam lr={args.lr}, {args.seconds:g} s")
    print(f"loss in nats per character (uniform guess {np.log(V):.3f})")
    start = time.perf_counter()
    report = {"next": start + 1.0, "recent": [], "epoch": 0}

    def on_update(info):
        report["recent"].append(info["loss"])
        now = time.perf_counter()
        if now >= report["next"]:
            print(f"  {now - start:5.1f} s  epoch {report['epoch'] + 1}  update {info['update']:5d}  "
                  f"loss {np.mean(report['recent']):.3f}", flush=True)
            report["recent"] = []
            report["next"] = now + max(1.0, args.seconds / 15)
        return now - start > args.seconds

    while time.perf_counter() - start < args.seconds:
        trainer.fit(x, targets, callback=on_update)
        report["epoch"] += 1
    elapsed = time.perf_counter() - start
    chars = trainer.updates * args.bptt * args.streams
    valid = trainer.evaluate(x_valid, valid_tgt)
    print(f"trained {trainer.updates} updates ({chars} characters) in {elapsed:.1f} s: "
          f"{chars / elapsed:,.0f} characters/s")
    print(f"held-out loss {valid:.3f} nats/char ({valid / np.log(2):.2f} bits/char)")
    sample = sample_chars(model, vocab, "void ", args.sample_length, args.temperature, rng=args.seed)
    print(f"sample at temperature {args.temperature}, seed 'void ':\n---\nvoid {sample}\n---")
    return model[0]


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
    """Time forward + backward (full BPTT) of a one-layer, one-direction layer with rnnx and
    with rnnx.reference on the same weights and shape; print both and the ratio."""
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
    agree = max(float(np.max(np.abs(y_fast - y_slow))),
                float(np.max(np.abs(dx_fast - slow_grads[0]))),
                float(np.max(np.abs(grads["weight_hh_l0"] - slow_grads[-3]))))
    t_fast, t_slow = _best_time(fast), _best_time(slow)
    print(f"  {cell}({I}, {H}) T={T} B={B} {dtype.name}: rnnx {t_fast * 1e3:.3f} ms, "
          f"rnnx.reference {t_slow * 1e3:.3f} ms: {t_slow / t_fast:.1f}x faster "
          f"(results agree to {agree:.1e})")
    return t_fast, t_slow


def benchmark(args, trained_layer=None):
    import rnnx

    print("\nspeed of one forward + backward (full BPTT), rnnx against rnnx.reference (plain "
          "NumPy, one Python iteration per step), best of repeated runs:")
    if trained_layer is not None:
        print("the trained layer on one training chunk:")
        benchmark_layer(trained_layer, args.bptt, args.streams, args.seed)
    T, B, I, H = args.shape
    layer = getattr(rnnx, args.cell)(I, H, dtype=np.dtype(args.dtype), seed=args.seed)
    print(f"--shape {T},{B},{I},{H} --cell {args.cell}:")
    benchmark_layer(layer, T, B, args.seed)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    trained = None if args.benchmark_only else train(args)
    if not args.no_benchmark:
        benchmark(args, trained)
    return 0


if __name__ == "__main__":
    sys.exit(main())

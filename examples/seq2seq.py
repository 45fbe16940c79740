"""Sequence to sequence: an encoder-decoder learns to reverse digit strings of varying length.

    python examples/seq2seq.py [--quick] [--plot seq2seq.png]

Source: a string of LENGTHS digits (3 to 8, uniform), e.g. 4 0 7 1. Target: the same digits
reversed, then END: 1 7 0 4 END. Anyone can check the answer, and it needs the whole source
before the first output token, so the encoder's final state must carry every digit (there is
no attention).

The model (rnnx.Seq2Seq): the encoder embeds the digits (rnnx.Embedding) and reads them with
a bidirectional GRU; its two directions' final states, concatenated, start the decoder GRU,
which embeds the previous target token (START first: teacher forcing in training) and ends in
a Dense head over the 12 tokens. Trained with softmax cross-entropy, target padding masked
out of the loss, Adam (lr LR, cosine-annealed to 0 over EPOCHS epochs, gradients clipped to
norm 5), on TRAIN pairs in mini-batches of BATCH.

Test: exact-sequence accuracy on held-out pairs (every digit and the END must be right),
decoded greedily by ``model.generate`` (one decoder stream step per token), over several
seeds: the mean +- sd and every seed's score are printed, with a few decoded samples.
"""
import argparse
import time

import numpy as np

import rnnx
from rnnx._machine import describe_cpu

DIGITS, START, END, PAD = 10, 10, 11, 0    # tokens 0-9 digits, 10 START, 11 END; pads read 0
VOCABULARY = 12
MIN_LENGTH, MAX_LENGTH = 3, 8
EMBED, HIDDEN = 16, 64
TRAIN, TEST, BATCH = 4000, 1000, 50
EPOCHS, LR = 15, 0.005
SEEDS = (0, 1, 2)


def make_pairs(rng, n):
    """(src (MAX_LENGTH, n) ids, src_lengths (n,), tgt_in, tgt_out (MAX_LENGTH + 1, n),
    tgt_lengths (n,)): time-major, padded with PAD past each row's length."""
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, n)
    src = np.full((MAX_LENGTH, n), PAD, np.int64)
    tgt_out = np.full((MAX_LENGTH + 1, n), PAD, np.int64)
    for b, length in enumerate(lengths):
        digits = rng.integers(0, DIGITS, length)
        src[:length, b] = digits
        tgt_out[:length, b] = digits[::-1]
        tgt_out[length, b] = END
    tgt_in = np.concatenate([np.full((1, n), START), tgt_out[:-1]])   # the previous token
    return src, lengths, tgt_in, tgt_out, lengths + 1


def build(seed):
    encoder = rnnx.Sequential(rnnx.Embedding(VOCABULARY, EMBED, seed=seed),
                              rnnx.GRU(EMBED, HIDDEN, bidirectional=True, seed=seed + 1))
    decoder = rnnx.Sequential(rnnx.Embedding(VOCABULARY, EMBED, seed=seed + 2),
                              rnnx.GRU(EMBED, 2 * HIDDEN, seed=seed + 3),
                              rnnx.Dense(2 * HIDDEN, VOCABULARY, seed=seed + 4))
    return rnnx.Seq2Seq(encoder, decoder)


def exact_accuracy(model, pairs):
    """The fraction of pairs whose greedy decoding is right, digits and END, and the ids."""
    src, src_lengths, _, tgt_out, tgt_lengths = pairs
    ids = model.generate(src, START, MAX_LENGTH + 1, src_lengths=src_lengths, end=END)
    valid = np.arange(MAX_LENGTH + 1)[:, None] < tgt_lengths[None, :]
    return float(np.mean(np.all((ids == tgt_out) | ~valid, axis=0))), ids


def train_one(seed, train, test, epochs):
    model = build(seed)
    optimizer = rnnx.Adam(model.parameters(), lr=LR)
    trainer = rnnx.Trainer(model, rnnx.SoftmaxCrossEntropy(), optimizer, clip_norm=5.0, seed=seed,
                           scheduler=rnnx.CosineAnnealingLR(optimizer, T_max=epochs))
    src, src_lengths, tgt_in, tgt_out, tgt_lengths = train
    curve = []
    start = time.perf_counter()
    for _ in range(epochs):
        trainer.fit((src, tgt_in), tgt_out, lengths=(src_lengths, tgt_lengths), batch_size=BATCH)
        curve.append(exact_accuracy(model, test)[0])
    seconds = time.perf_counter() - start
    accuracy, ids = exact_accuracy(model, test)
    return {"model": model, "accuracy": accuracy, "curve": curve, "ids": ids,
            "seconds": seconds}


def spell(ids):
    out = []
    for token in ids:
        if token == END:
            break
        out.append(str(int(token)))
    return " ".join(out)


def main(quick=False, plot="seq2seq.png", seed=0):
    rng = np.random.default_rng(seed)
    train = make_pairs(rng, 400 if quick else TRAIN)
    test = make_pairs(rng, 100 if quick else TEST)
    epochs = 1 if quick else EPOCHS
    seeds = [seed] if quick else [seed + s for s in SEEDS]
    print(f"reverse digit strings of {MIN_LENGTH} to {MAX_LENGTH} digits: {len(train[1])} "
          f"training pairs, {len(test[1])} held out, {epochs} epochs of batches of {BATCH}")
    print(f"measured on: {describe_cpu()}")
    results = {s: train_one(s, train, test, epochs) for s in seeds}
    for s, r in results.items():
        print(f"seed {s}: exact-sequence accuracy {r['accuracy']:.3f} ({r['seconds']:.1f} s)")
    scores = np.array([r["accuracy"] for r in results.values()])
    print(f"exact-sequence accuracy on held-out pairs over {len(seeds)} seed(s): "
          f"{scores.mean():.3f} +- {scores.std():.3f}")
    first = results[seeds[0]]
    src, src_lengths = test[0], test[1]
    for b in range(4):
        print(f"  {spell(src[:src_lengths[b], b]):>16}  ->  {spell(first['ids'][:, b])}")
    if plot:
        save_plot(plot, results)
    return {"accuracy": scores, "results": results}


def save_plot(path, results):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[plot]')")
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for s, r in results.items():
        ax.plot(np.arange(1, len(r["curve"]) + 1), r["curve"], marker="o", label=f"seed {s}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("held-out exact-sequence accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("Seq2Seq (bidirectional GRU 64 -> GRU 128): reversing digit strings")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot saved to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: one seed, one epoch")
    parser.add_argument("--plot", default="seq2seq.png", help="PNG path ('' for none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(quick=args.quick, plot=args.plot, seed=args.seed)

"""A character model: an LSTM learns to predict the next character of C source, trained by
truncated BPTT, and then writes C of its own from a seed such as "void ".

    python examples/char_model.py [--quick] [--corpus bundled|csrc|PATH] [--plot char_model.png]

As in the lecture (a model of TensorFlow's C++ source, sampled from the seed "void "), on a
smaller scale: the characters through an rnnx.Embedding of 32 (a learned vector per
character, instead of one-hot), one LSTM layer of 128 units and a softmax output over the
characters of the corpus, 32 parallel streams, truncated BPTT in chunks of 32 steps with the state carried
across chunks, Adam with gradient clipping, for a fixed number of updates (600 by default;
the training is rnnx.charmodel.train_char_model, shared with `python -m rnnx`). Corpus: the
head of sqlite3.h bundled with rnnx (public domain), or this project's own csrc/*.c
(--corpus csrc), or any text file. The last 10% of the corpus is held out; its loss is printed as training goes, in nats per character
(a uniform guess costs log(vocabulary) nats).
"""
import argparse
import glob
import os
import time

import numpy as np

import rnnx
from rnnx.charmodel import train_char_model
from rnnx.data import load_text

HERE = os.path.dirname(os.path.abspath(__file__))


def read_corpus(corpus):
    if corpus == "bundled":
        return load_text("sqlite3_h"), "sqlite3.h (head, bundled)"
    if corpus == "csrc":
        files = sorted(glob.glob(os.path.join(HERE, "..", "csrc", "*.[ch]")))
        if not files:
            raise FileNotFoundError("no csrc/*.c next to the examples: run from an rnnx checkout")
        return "".join(open(f, encoding="utf-8").read() for f in files), f"csrc ({len(files)} files)"
    with open(corpus, encoding="utf-8") as f:
        return f.read(), corpus


def main(quick=False, corpus="bundled", plot="char_model.png", seed=0, hidden=128, updates=600,
         temperature=0.6):
    """Train on the corpus for `updates` updates (rnnx.charmodel.train_char_model, the same
    training as `python -m rnnx`), print samples at `temperature` and 1.0, save the plot."""
    start = time.perf_counter()
    text, name = read_corpus(corpus)
    if quick:
        text, hidden, updates = text[:20000], 32, 20
    print(f"Character model on {name}: {len(text)} characters")
    result = train_char_model(text, hidden=hidden, updates=updates, seed=seed,
                              sample_length=60 if quick else 300,
                              temperatures=(temperature, 1.0), log_every=max(1, updates // 12))
    V = len(result["vocab"])
    print(f"\n({time.perf_counter() - start:.1f} s)")
    if plot:
        save_plot(plot, result["step_loss"], result["valid_at"], result["valid_loss"], np.log(V),
                  name, hidden, seed)
    return {"valid_loss": result["valid_loss"], "step_loss": result["step_loss"],
            "samples": result["samples"], "vocab_size": V}


def save_plot(path, step_losses, valid_at, valid_losses, uniform, corpus, hidden, seed=0):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot; pip install -e \".[plot]\")")
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(np.arange(1, len(step_losses) + 1), step_losses, lw=0.6,
            label="training loss of each update (one chunk)")
    ax.plot(valid_at, valid_losses, "o-", label="held-out loss (last 10% of the corpus)")
    ax.axhline(uniform, color="gray", ls="--", label="uniform guess")
    ax.set_title(f"LSTM {hidden} character model on {corpus}, seed {seed}")
    ax.set_xlabel("update (32 characters x 32 streams each)")
    ax.set_ylabel("cross-entropy, nats per character")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot saved to {os.path.abspath(path)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("RNNX_EXAMPLES_QUICK") == "1",
                        help="a small model on a slice of the corpus (smoke test)")
    parser.add_argument("--corpus", default="bundled", help="bundled | csrc | a text file")
    parser.add_argument("--plot", default="char_model.png", help="PNG path ('' for none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--updates", type=int, default=600,
                        help="number of updates to train for (default 600)")
    parser.add_argument("--temperature", type=float, default=0.6)
    args = parser.parse_args()
    for name, minimum in (("seed", 0), ("hidden", 1), ("updates", 1)):
        if getattr(args, name) < minimum:
            parser.error(f"--{name} must be >= {minimum}, got {getattr(args, name)}")
    if not 0 < args.temperature < float("inf"):
        parser.error(f"--temperature must be a finite number > 0, got {args.temperature}")
    if args.corpus not in ("bundled", "csrc") and not os.path.isfile(args.corpus):
        parser.error(f"--corpus must be bundled, csrc or a text file, got {args.corpus!r}")
    main(quick=args.quick, corpus=args.corpus, plot=args.plot, seed=args.seed, hidden=args.hidden,
         updates=args.updates, temperature=args.temperature)

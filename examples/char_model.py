"""A character model: an LSTM learns to predict the next character of C source, trained by
truncated BPTT, and then writes C of its own from a seed such as "void ".

    python examples/char_model.py [--quick] [--corpus bundled|csrc|PATH] [--plot char_model.png]

As in the lecture (a model of TensorFlow's C++ source, sampled from the seed "void "), on a
smaller scale: one LSTM layer of 128 units and a softmax output over the characters of the
corpus, 32 parallel streams, truncated BPTT in chunks of 32 steps with the state carried
across chunks, Adam with gradient clipping. Corpus: the head of sqlite3.h bundled with rnnx
(public domain), or this project's own csrc/*.c (--corpus csrc), or any text file. The last
10% of the corpus is held out; its loss is printed after every epoch, in nats and bits per
character (a uniform guess costs log2(vocabulary) bits).
"""
import argparse
import glob
import os
import time

import numpy as np

import rnnx
from rnnx.data import encode_text, load_text, one_hot, sample_chars, stream_batches

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


def main(quick=False, corpus="bundled", plot="char_model.png", seed=0, hidden=128, epochs=15,
         max_seconds=40.0, temperature=0.6):
    start = time.perf_counter()
    text, name = read_corpus(corpus)
    if quick:
        text, hidden, epochs = text[:20000], 32, 1
    ids, vocab = encode_text(text)
    V = len(vocab)
    split = int(0.9 * len(ids))
    inputs, targets = stream_batches(ids[:split], 32)
    valid_in, valid_tgt = stream_batches(ids[split:], 8)
    x, x_valid = one_hot(inputs, V), one_hot(valid_in, V)
    model = rnnx.Sequential(rnnx.LSTM(V, hidden, seed=seed),
                            rnnx.Dense(hidden, V, activation="softmax", seed=seed + 1))
    trainer = rnnx.Trainer(model, rnnx.SoftmaxCrossEntropy(), rnnx.Adam(model.parameters(), lr=3e-3),
                           bptt=32, clip_norm=5.0, seed=seed)
    print(f"Character model on {name}: {len(text)} characters, vocabulary {V}, LSTM {hidden}, "
          f"{model.num_parameters()} weights; 32 streams x {x.shape[0]} steps, TBPTT k=32, Adam")
    print(f"uniform guess: {np.log(V):.3f} nats = {np.log2(V):.2f} bits per character")
    deadline = start + max_seconds
    step_losses, valid_losses = [], []
    for epoch in range(epochs):
        history = trainer.fit(x, targets, callback=lambda info: time.perf_counter() > deadline)
        step_losses += history["step_loss"]
        valid = trainer.evaluate(x_valid, valid_tgt)
        valid_losses.append(valid)
        print(f"epoch {epoch + 1}: train {history['loss'][-1]:.3f}  held-out {valid:.3f} nats/char "
              f"({valid / np.log(2):.2f} bits)  [{len(step_losses)} updates, "
              f"{time.perf_counter() - start:.1f} s]")
        if time.perf_counter() > deadline:
            print(f"(stopped at the {max_seconds:.0f} s budget)")
            break
    samples = {}
    for t in (temperature, 1.0):
        samples[t] = sample_chars(model, vocab, "void ", 300 if not quick else 60, t, rng=seed)
        print(f"\n--- sample, seed 'void ', temperature {t} ---\nvoid {samples[t]}")
    print(f"\n({time.perf_counter() - start:.1f} s)")
    if plot:
        save_plot(plot, step_losses, valid_losses, np.log(V))
    return {"valid_loss": valid_losses, "step_loss": step_losses, "samples": samples,
            "vocab_size": V}


def save_plot(path, step_losses, valid_losses, uniform):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot)")
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(np.arange(1, len(step_losses) + 1), step_losses, lw=0.6, label="training chunk loss")
    per_epoch = len(step_losses) / max(len(valid_losses), 1)
    ax.plot(per_epoch * np.arange(1, len(valid_losses) + 1), valid_losses, "o-", label="held-out loss")
    ax.axhline(uniform, color="gray", ls="--", label="uniform guess")
    ax.set_xlabel("update (32 characters x 32 streams)")
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
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--max-seconds", type=float, default=40.0, help="training time budget")
    parser.add_argument("--temperature", type=float, default=0.6)
    args = parser.parse_args()
    main(quick=args.quick, corpus=args.corpus, plot=args.plot, seed=args.seed, hidden=args.hidden,
         epochs=args.epochs, max_seconds=args.max_seconds, temperature=args.temperature)

"""The character model shared by `python -m rnnx` and examples/char_model.py: an LSTM that
learns to predict the next character of a text, trained by truncated BPTT for a fixed number
of updates, and sampled from a seed string.

The characters go in through an rnnx.Embedding (a learned vector per character) rather than
as one-hot vectors: the LSTM's input projection then multiplies embedding_dim columns instead
of the vocabulary's, and no (T, B, V) one-hot array is built. On the bundled corpus (V = 87,
hidden 128, 32 streams x 32 steps; 2-core AMD EPYC, 1 thread) an update took 25 ms with
Embedding(87, 32) against 29 ms one-hot (median of 34 updates, best of 5 runs; 28 ms with
Embedding(87, 64)), 300 updates 4.2 s of CPU against 5.4 s, and the held-out loss after
them fell to 1.861 +- 0.008 from 2.163 +- 0.010 (seeds 0, 1, 2). embedding_dim=None gives
the one-hot model.

    result = rnnx.charmodel.train_char_model(rnnx.data.load_text(), updates=300)
    print(result["samples"])

The text is split 90/10 into training and held-out parts. The training part is cut into
`streams` parallel streams (the batch), read in chunks of `bptt` steps with the state carried
from chunk to chunk (reset at the start of each pass over the text); every chunk is one
update of Adam with gradient clipping. Training stops after exactly `updates` updates,
whatever the machine's speed, so a run is reproducible from its seed: the same losses and
sample on any machine with the same floating-point results (the kernels' rounding can
differ between ISAs, e.g. AVX2 and AVX-512, in the last bits).
"""
import time

import numpy as np

from ._machine import describe_cpu
from .data import encode_text, one_hot, sample_chars, stream_batches
from .dense import Dense
from .embedding import Embedding
from .layers import LSTM
from .losses import SoftmaxCrossEntropy
from .model import Sequential
from .optim import Adam
from .trainer import Trainer


def _check_count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def train_char_model(text, *, hidden=128, streams=32, bptt=32, lr=3e-3, clip_norm=5.0,
                     updates=300, seed=0, embedding_dim=32, sample_seed="void ", sample_length=300,
                     temperatures=(0.6,), log=print, log_every=None):
    """Train an LSTM character model on `text` for a fixed number of updates.

    Parameters
    ----------
    text : str
        The corpus; the last 10% is held out.
    hidden : int, default 128
        Hidden size of the LSTM layer.
    streams : int, default 32
        Parallel streams of the training text (the batch size).
    bptt : int, default 32
        Truncation length k: one update every k steps, backpropagated through them.
    lr : float, default 3e-3
        Adam's learning rate.
    clip_norm : float, default 5.0
        Gradients are rescaled to this global norm when above it.
    updates : int, default 300
        Number of updates (chunks of `bptt` steps x `streams`) to train for.
    seed : int, default 0
        Seeds the weights and the sampling.
    embedding_dim : int or None, default 32
        The characters' vectors (an rnnx.Embedding before the LSTM); None feeds the LSTM
        one-hot vectors instead.
    sample_seed : str, default "void "
        The text the samples start from (its characters must occur in `text`).
    sample_length : int, default 300
        Characters to sample after `sample_seed` (0: no sample).
    temperatures : sequence of float, default (0.6,)
        One sample per temperature.
    log : callable or None, default print
        Called with each progress line (None: silent).
    log_every : int, optional
        Log the mean training loss every this many updates (default: about 10 lines).

    Returns
    -------
    dict
        ``model`` (rnnx.Sequential), ``vocab`` (rnnx.data.CharVocab), ``trainer``,
        ``step_loss`` (loss of every update, nats per character), ``valid_loss`` (held-out
        loss after each logged point), ``valid_at`` (the update of each), ``samples``
        ({temperature: str}), ``seconds`` (training time), ``characters`` (trained on).
    """
    updates = _check_count("updates", updates)
    streams, bptt, hidden = (_check_count(n, v) for n, v in
                             (("streams", streams), ("bptt", bptt), ("hidden", hidden)))
    sample_length = _check_count("sample_length", sample_length, minimum=0)
    log = log if log is not None else (lambda line: None)
    ids, vocab = encode_text(text)
    V = len(vocab)
    split = int(0.9 * len(ids))
    inputs, targets = stream_batches(ids[:split], streams)
    valid_in, valid_tgt = stream_batches(ids[split:], min(8, streams))
    if embedding_dim is None:
        x, x_valid = one_hot(inputs, V), one_hot(valid_in, V)
        first = []
    else:
        embedding_dim = _check_count("embedding_dim", embedding_dim)
        x, x_valid = inputs, valid_in          # ids (T, streams): the Embedding looks them up
        first = [Embedding(V, embedding_dim, seed=seed + 2)]
    width = V if embedding_dim is None else embedding_dim
    model = Sequential(*first, LSTM(width, hidden, seed=seed),
                       Dense(hidden, V, activation="softmax", seed=seed + 1))
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=lr),
                      bptt=bptt, clip_norm=clip_norm, seed=seed)
    per_epoch = -(-x.shape[0] // bptt)
    log_every = log_every or max(1, updates // 10)
    log(f"{f'Embedding({V}, {embedding_dim}) -> ' if first else ''}LSTM({width}, {hidden}) -> "
        f"Dense({hidden}, {V}, softmax): {model.num_parameters()} "
        f"weights; {streams} streams x {x.shape[0]} steps ({per_epoch} updates per pass), "
        f"truncated BPTT k={bptt}, Adam lr={lr}, clip_norm={clip_norm}, {updates} updates")
    log(f"loss in nats per character (uniform guess {np.log(V):.3f}); on {describe_cpu()}")
    step_loss, valid_loss, valid_at = [], [], []
    start = time.perf_counter()

    def on_update(info):
        step_loss.append(info["loss"])
        done = trainer.updates
        if done % log_every == 0 or done == updates:
            valid_loss.append(trainer.evaluate(x_valid, valid_tgt))
            valid_at.append(done)
            log(f"  update {done:5d}  pass {(done - 1) // per_epoch + 1}  train "
                f"{np.mean(step_loss[-log_every:]):.3f}  held-out {valid_loss[-1]:.3f}  "
                f"[{time.perf_counter() - start:.1f} s]")
        return done >= updates

    while trainer.updates < updates:
        trainer.fit(x, targets, callback=on_update, shuffle=False)
    seconds = time.perf_counter() - start
    characters = updates * bptt * streams
    log(f"trained {updates} updates ({characters} characters) in {seconds:.1f} s: "
        f"{characters / seconds:,.0f} characters/s")
    log(f"held-out loss {valid_loss[-1]:.3f} nats/char ({valid_loss[-1] / np.log(2):.2f} bits/char)")
    samples = {}
    for temperature in temperatures:
        if sample_length:
            samples[temperature] = sample_chars(model, vocab, sample_seed, sample_length,
                                                temperature, rng=seed)
            log(f"sample at temperature {temperature}, seed {sample_seed!r}:\n---\n"
                f"{sample_seed}{samples[temperature]}\n---")
    return {"model": model, "vocab": vocab, "trainer": trainer, "step_loss": step_loss,
            "valid_loss": valid_loss, "valid_at": valid_at, "samples": samples,
            "seconds": seconds, "characters": characters}


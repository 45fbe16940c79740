"""Fused against hoisted input projection, one layer and direction, inference, forced
each way through _core.forward(projection=...), beside the cost model's estimates
(rnnx_projection_plan): the measurements csrc/projection_plan.c's constants come from.

    python benchmarks/projection.py [--repeat N] [--threads N] [CELL T B I H ...]

CELL is lstm, gru, rnn_tanh; without shapes it runs issue 18's points.  Prints, per
shape, the best of N of each choice in ms, fused/hoisted, and the model's estimates."""
import argparse
import time

import numpy as np

from rnnx import _core

CELLS = {"rnn_tanh": _core.RNN_TANH, "rnn_relu": _core.RNN_RELU, "lstm": _core.LSTM,
         "gru": _core.GRU}
POINTS = [("lstm", 500, 1, 32, 64), ("lstm", 25, 1, 512, 512), ("lstm", 200, 16, 64, 128),
          ("lstm", 100, 4, 128, 128), ("lstm", 50, 64, 256, 512), ("rnn_tanh", 500, 1, 32, 64),
          ("rnn_tanh", 200, 16, 64, 128)]


def best_ms(cell, T, B, I, H, repeat, dtype=np.float32):
    """The best of repeat calls' wall time in ms of each choice, hoisted then fused, the
    calls alternating (a load that comes and goes falls on both), and whether their
    outputs have the same bits."""
    rng = np.random.default_rng(0)
    G = _core.gate_count(cell) * H
    x = rng.standard_normal((T, B, I)).astype(dtype)
    w = [(rng.standard_normal(s) * s[-1] ** -0.5).astype(dtype) for s in ((G, I), (G, H))]
    b = [rng.standard_normal(G).astype(dtype) for _ in range(2)]
    h0 = np.zeros((B, H), dtype)
    c0 = h0 if cell == _core.LSTM else None
    choices = (_core.PROJECTION_HOISTED, _core.PROJECTION_FUSED)
    ys = [np.empty((T, B, H), dtype) for _ in choices]
    h_n = np.empty((B, H), dtype)
    c_n = np.empty((B, H), dtype) if c0 is not None else None
    ws = _core.Workspace()
    best = [float("inf")] * 2
    for _ in range(repeat):
        for i, projection in enumerate(choices):
            start = time.perf_counter()
            _core.forward(cell, x, h0, c0, *w, *b, None, False, ys[i], h_n, c_n, False,
                          workspace=ws, projection=projection)
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0] * 1e3, best[1] * 1e3, np.array_equal(ys[0], ys[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("shape", nargs="*", help="CELL T B I H, repeated")
    args = parser.parse_args()
    _core.set_num_threads(args.threads)
    points = POINTS if not args.shape else [
        (args.shape[i], *map(int, args.shape[i + 1:i + 5])) for i in range(0, len(args.shape), 5)]
    print(f"{'cell':9} {'T':>4} {'B':>3} {'I':>4} {'H':>4}  hoisted ms  fused ms  f/h "
          f"| model: hoisted ms  fused ms  choice  same bits")
    for name, T, B, I, H in points:
        cell = CELLS[name]
        hoisted, fused, same = best_ms(cell, T, B, I, H, args.repeat)
        plan = _core.projection_plan(cell, T, B, I, H, threads=args.threads)
        print(f"{name:9} {T:4} {B:3} {I:4} {H:4}  {hoisted:10.3f} {fused:9.3f} {fused / hoisted:4.2f} "
              f"| {plan['hoisted_ns'] / 1e6:17.3f} {plan['fused_ns'] / 1e6:9.3f}  "
              f"{plan['choice']:7} {same}")


if __name__ == "__main__":
    main()

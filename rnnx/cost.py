"""The input projection's cost model, printed: where rnnx computes x_t @ W_ih^T for one
layer and direction of a shape (hoisted into a (T,B,G) slab by rnnx's GEMM, or fused into
every step against packed [W_ih | W_hh]), with the estimated time of each part.

    python -m rnnx.cost CELL B H I T [--proj P] [--threads N] [--dtype float64]

B H I T in the benchmarks' order (batch, hidden, input, length); CELL is one of LSTM,
GRU, GRU_RESET_BEFORE, RNN_TANH, RNN_RELU (any case).  The estimates come from
_core.projection_plan (csrc/projection_plan.c, calibrated on a 2-core AMD EPYC Zen 4);
the forward calls of that shape do what it prints unless RNNX_PROJECTION forces a choice."""
import argparse
import sys

import numpy as np

from . import _core

_CELLS = {"lstm": _core.LSTM, "gru": _core.GRU, "gru_reset_before": _core.GRU_RESET_BEFORE,
          "rnn_tanh": _core.RNN_TANH, "rnn_relu": _core.RNN_RELU}
_GRUS = (_core.GRU, _core.GRU_RESET_BEFORE)
_PARTS = (("hoisted", ("gemm_ns", "slab_ns", "pack_hoisted_ns", "steps_hoisted_ns")),
          ("fused", ("steps_fused_ns", "copies_ns", "pack_fused_ns")))


def describe(cell, B, H, I, T, proj_size=0, threads=1, dtype=np.float32):
    """The plan of this shape as printable lines."""
    code = _CELLS[cell.lower()] if isinstance(cell, str) else cell
    plan = _core.projection_plan(code, T, B, I, H, proj_size, threads, dtype)
    lines = [f"{cell} B={B} H={H} I={I} T={T} proj_size={proj_size} threads={threads} "
             f"{np.dtype(dtype).name}"]
    for name, parts in _PARTS:
        detail = ", ".join(f"{k[:-3]} {plan[k] / 1e6:.3f}" for k in parts)
        lines.append(f"  {name:8} {plan[name + '_ns'] / 1e6:.3f} ms  ({detail})")
    why = ("" if plan["fusable"] else
           " (a GRU cannot fuse: r multiplies W_hn h)" if code in _GRUS else
           " (T*B*G too small to hold [W_ih | W_hh] in the slab's room)")
    lines.append(f"  choice: {plan['choice']}{why}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rnnx.cost",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("cell", type=str.lower, choices=sorted(_CELLS))
    for name in ("B", "H", "I", "T"):
        parser.add_argument(name, type=int)
    parser.add_argument("--proj", type=int, default=0, help="an LSTM's proj_size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args(argv)
    try:
        lines = describe(args.cell, args.B, args.H, args.I, args.T, args.proj, args.threads,
                         np.dtype(args.dtype))
    except ValueError as e:
        parser.error(str(e))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

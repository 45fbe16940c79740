"""Writes the demo model of examples/embed: model.rnnx (rnnx.save) and model_data.c
(rnnx.export_c), the same weights in both.

    python examples/embed/make_model.py [OUTDIR]      # default: examples/embed

The model is an untrained LSTM(3, 16, num_layers=2) with a Dense(16, 2) head, small
enough to read; any rnnx model with no bidirectional layer streams the same way."""
import os
import sys

import numpy as np

import rnnx


def demo_model():
    """The demo model, its weights drawn here (uniform in [-0.5, 0.5), seed 0) so that the
    files depend only on NumPy's generator and the format."""
    model = rnnx.Sequential(rnnx.LSTM(3, 16, num_layers=2), rnnx.Dense(16, 2))
    rng = np.random.default_rng(0)
    for value in model.parameters().values():
        value[...] = rng.uniform(-0.5, 0.5, value.shape)
    return model


if __name__ == "__main__":
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    model = demo_model()
    rnnx.save(model, os.path.join(outdir, "model.rnnx"))
    rnnx.export_c(model, os.path.join(outdir, "model_data.c"))

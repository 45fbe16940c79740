"""Writes the C tests' reference data: tests/c/data/NAME.rnnx (a model, by rnnx.save) and
NAME.ref (an input and the outputs rnnx/reference.py, the NumPy twin, computes for it in
float64 from the model's weights).

    python tests/c/make_data.py [OUTDIR]      # default: tests/c/data

The files are committed, so the C tests (ctest, natively and under qemu-aarch64) need no
Python; tests/test_embed.py checks that this script still writes the committed files.

NAME.ref is whitespace-separated text, values as C99 hexadecimal floats (exact, strtod reads
them):
    rnnx-ref 1
    T B has_lengths
    lengths (B integers, if has_lengths)
    nx x...            x (T,B,I), the input; for a token model (an Embedding first) the
                       ids (T,B), whole numbers the C test passes as int32
    ny y...            the whole-sequence output rnnx_model_run must give (with the lengths)
    ns s...            the outputs of T stream steps over x (T,B,out); ns = 0 if it cannot stream
"""
import os
import sys

import numpy as np
from scipy.special import expit, softmax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import rnnx  # noqa: E402
from rnnx import reference  # noqa: E402


def _recurrent_reference(layer, x, lengths):
    """y (T,B,D*H) of a recurrent layer from zero states, in float64, by rnnx.reference; an
    int8/bfloat16 layer (rnnx.quantize's) by its own call, the same quantized core as C's."""
    if getattr(layer, "qtype", None):
        return layer(np.asarray(x, np.float32), lengths=lengths)[0].astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in layer.parameters().items()}
    T, B, _ = x.shape
    H, D = layer.hidden_size, layer.num_directions
    name = type(layer).__name__
    h = x
    for k in range(layer.num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            w = [params[f"weight_ih{sfx}"], params[f"weight_hh{sfx}"],
                 params.get(f"bias_ih{sfx}"), params.get(f"bias_hh{sfx}")]
            zeros = np.zeros((B, H))
            if name == "LSTM":
                y = reference.lstm_forward(h, zeros, zeros, *w, lengths=lengths, reverse=d == 1)[0]
            elif name == "GRU":
                y = reference.gru_forward(h, zeros, *w, reset_after=layer.reset_after,
                                          lengths=lengths, reverse=d == 1)[0]
            else:
                y = reference.rnn_forward(h, zeros, *w, nonlinearity=layer.nonlinearity,
                                          lengths=lengths, reverse=d == 1)[0]
            outs.append(y)
        h = np.concatenate(outs, axis=2)
    return h


def _dense_reference(layer, x):
    params = layer.parameters()
    z = x @ params["weight"].astype(np.float64).T
    if layer.bias:
        z = z + params["bias"].astype(np.float64)
    return {"identity": lambda a: a, "sigmoid": expit, "softmax": lambda a: softmax(a, axis=-1),
            "tanh": np.tanh, "relu": lambda a: np.maximum(a, 0)}[layer.activation](z)


def model_reference(model, x, lengths=None, many_to_one=None):
    """The model's output for x (T,B,I) from zero states, in float64."""
    layers = model.layers if isinstance(model, rnnx.Sequential) else [model]
    many_to_one = getattr(model, "many_to_one", False) if many_to_one is None else many_to_one
    recurrent = [i for i, layer in enumerate(layers)
                 if not isinstance(layer, (rnnx.Dense, rnnx.Embedding))]
    h = np.asarray(x, np.float64)
    T, B = x.shape[:2]
    for i, layer in enumerate(layers):
        if isinstance(layer, rnnx.Embedding):       # x is ids (T,B): the table's rows
            h = layer.parameters()["weight"].astype(np.float64)[np.asarray(x, np.int64)]
            continue
        if isinstance(layer, rnnx.Dense):
            h = _dense_reference(layer, h)
            continue
        h = _recurrent_reference(layer, h, lengths)
        if many_to_one and i == recurrent[-1]:
            last = np.full(B, T - 1) if lengths is None else np.asarray(lengths) - 1
            H = layer.hidden_size
            pooled = h[last, np.arange(B)].copy()
            if layer.num_directions == 2 and many_to_one != "output":
                pooled[:, H:] = h[0, :, H:]
            h = pooled
    return h


def with_weights(model, seed):
    """model with every parameter drawn here, uniform in [-0.5, 0.5): the data depends on
    NumPy's generator and the file format, not on the layers' initialisation."""
    rng = np.random.default_rng(seed)
    for value in model.parameters().values():
        value[...] = rng.uniform(-0.5, 0.5, value.shape)
    return model


def cases():
    """name -> (model, T, B, lengths or None), small and covering every layer kind; the
    cases named *_int8 / *_bf16 are rnnx.quantize's models of their float weights."""
    made = {}
    for index, (name, (model, *rest)) in enumerate(_cases().items()):
        model = with_weights(model, index)
        qtype = {"int8": "int8", "bf16": "bfloat16"}.get(name.rsplit("_", 1)[-1])
        made[name] = (rnnx.quantize(model, qtype) if qtype else model, *rest)
    return made


def _cases():
    f64 = np.float64
    return {
        "lstm2_f32": (rnnx.LSTM(3, 8, num_layers=2, seed=1), 6, 2, None),
        "lstm_dense_f64": (rnnx.Sequential(rnnx.LSTM(2, 5, dtype=f64, seed=2),
                                           rnnx.Dense(5, 3, dtype=f64, seed=3)), 5, 3, [5, 0, 4]),
        "gru_bi_softmax_m2o_f32": (rnnx.Sequential(
            rnnx.GRU(4, 6, num_layers=2, bidirectional=True, seed=4),
            rnnx.Dense(12, 7, activation="relu", seed=5),
            rnnx.Dense(7, 3, activation="softmax", seed=6), many_to_one=True), 7, 3, [7, 0, 1]),
        "gru_before_nobias_f64": (rnnx.GRU(3, 4, reset_after=False, bias=False, dtype=f64, seed=7),
                                  4, 2, None),
        "rnn_relu_sigmoid_f32": (rnnx.Sequential(rnnx.Dense(2, 4, activation="tanh", seed=8),
                                                 rnnx.RNN(4, 9, nonlinearity="relu", seed=9),
                                                 rnnx.RNN(9, 3, seed=10),
                                                 rnnx.Dense(3, 1, activation="sigmoid", seed=11)),
                                 5, 1, None),
        "lstm_m2o_f32": (rnnx.Sequential(rnnx.LSTM(3, 7, seed=12),
                                         rnnx.Dense(7, 2, activation="identity", seed=13),
                                         many_to_one=True), 6, 2, [3, 6]),
        "embed_gru_dense_f32": (rnnx.Sequential(rnnx.Embedding(11, 4, padding_idx=0, seed=14),
                                                rnnx.GRU(4, 6, num_layers=2, seed=15),
                                                rnnx.Dense(6, 11, activation="softmax", seed=16)),
                                7, 3, [7, 2, 5]),
        "embed_lstm_m2o_f64": (rnnx.Sequential(rnnx.Embedding(5, 3, dtype=f64, seed=17),
                                               rnnx.LSTM(3, 4, dtype=f64, seed=18),
                                               rnnx.Dense(4, 2, dtype=f64, seed=19),
                                               many_to_one=True), 5, 2, [5, 3]),
        "lstm_bi_output_m2o_f64": (rnnx.Sequential(
            rnnx.LSTM(3, 4, bidirectional=True, dtype=f64, seed=20),
            rnnx.Dense(8, 2, dtype=f64, seed=21), many_to_one="output"), 5, 3, [2, 5, 0]),
        # format version 3: int8 and bfloat16 weights (rnnx.quantize), sizes across the
        # quantized panels' 16 rows and 4-column groups
        "lstm2_dense_int8": (rnnx.Sequential(rnnx.LSTM(5, 19, num_layers=2, seed=22),
                                             rnnx.Dense(19, 3, activation="softmax", seed=23)),
                             6, 3, [6, 0, 4]),
        "embed_gru_before_int8": (rnnx.Sequential(
            rnnx.Embedding(9, 6, seed=24), rnnx.GRU(6, 17, reset_after=False, seed=25),
            rnnx.RNN(17, 5, nonlinearity="relu", bias=False, seed=26)), 5, 2, None),
        "gru_bi_m2o_int8": (rnnx.Sequential(rnnx.GRU(3, 6, bidirectional=True, seed=27),
                                            rnnx.Dense(12, 2, seed=28), many_to_one=True),
                            5, 2, [5, 2]),
        "lstm2_dense_bf16": (rnnx.Sequential(rnnx.LSTM(5, 19, num_layers=2, seed=29),
                                             rnnx.Dense(19, 3, activation="tanh", seed=30)),
                             6, 3, [6, 0, 4]),
        "lstm_proj_int8": (rnnx.Sequential(rnnx.LSTM(3, 10, proj_size=4, num_layers=2, seed=31),
                                           rnnx.Dense(4, 2, seed=32)), 5, 2, [5, 3]),
    }


def _hex(values):
    return " ".join(float(v).hex() for v in np.asarray(values, np.float64).ravel())


def write(outdir):
    os.makedirs(outdir, exist_ok=True)
    for name, (model, T, B, lengths) in cases().items():
        dtype = model.dtype
        rnnx.save(model, os.path.join(outdir, name + ".rnnx"))
        seed = sum(map(ord, name))
        I = model.layers[0].input_size if isinstance(model, rnnx.Sequential) else model.input_size
        if getattr(model, "takes_ids", False):       # ids (T,B), every one of them used
            x = np.random.default_rng(seed).integers(0, I, (T, B))
        else:
            x = np.random.default_rng(seed).standard_normal((T, B, I)).astype(dtype)
        y = model_reference(model, x, lengths)
        layers = model.layers if isinstance(model, rnnx.Sequential) else [model]
        streams = all(getattr(layer, "num_directions", 1) == 1 for layer in layers)
        s = model_reference(model, x, None, many_to_one=False) if streams else np.zeros(0)
        with open(os.path.join(outdir, name + ".ref"), "w") as f:
            f.write("rnnx-ref 1\n")
            f.write(f"{T} {B} {int(lengths is not None)}\n")
            if lengths is not None:
                f.write(" ".join(map(str, lengths)) + "\n")
            for values in (x, y, s):
                f.write(f"{np.size(values)} {_hex(values)}\n")


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else
          os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))

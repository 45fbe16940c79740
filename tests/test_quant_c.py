"""rnnx.quantize's int8 and bfloat16 models in the C library: saved as .rnnx (format version 3)
and exported as C source, they run through rnnx_model_run (B > 1, lengths, an initial state
carried between chunks) and rnnx_stream_step and give what the Python quantized model gives,
bit for bit: every cell, stacks, bidirectional, proj_size, Dense heads, an Embedding first,
many-to-one.  A float32 LSTM with proj_size (format version 3 too) runs in C as in Python.

The C side is tests/c/model_io (built by CMake with the library; no BLAS, the default ISA); the
Python side is the quantized layers themselves (the same core, csrc/quant/) with Dense heads
computed as csrc/stream/heads.c computes them (test_embed._dense_twin): Python's own Dense
(BLAS) rounds differently by a few ulp, which is not what is tested here.

Needs cmake and a C compiler; outside CI a missing tool skips, in CI it fails."""
import subprocess

import numpy as np
import pytest

import rnnx
from test_embed import _compile_pedantic, _dense_twin, _require, build  # noqa: F401 (fixture)

QTYPES = ["int8", "bfloat16"]


def float_models():
    """name -> (a float32 model, streams: no bidirectional layer)."""
    return {
        "lstm_stack_softmax": (rnnx.Sequential(
            rnnx.LSTM(3, 20, num_layers=2, seed=1),
            rnnx.Dense(20, 4, activation="softmax", seed=2)), True),
        "gru_bi_m2o": (rnnx.Sequential(
            rnnx.GRU(4, 6, num_layers=2, bidirectional=True, seed=3),
            rnnx.Dense(12, 3, activation="relu", seed=4), many_to_one=True), False),
        "gru_before_nobias": (rnnx.GRU(3, 17, reset_after=False, bias=False, seed=5), True),
        "rnn_relu_tanh": (rnnx.Sequential(
            rnnx.Dense(2, 4, activation="tanh", seed=6),
            rnnx.RNN(4, 9, nonlinearity="relu", seed=7), rnnx.RNN(9, 3, seed=8),
            rnnx.Dense(3, 1, activation="sigmoid", seed=9)), True),
        "embed_lstm_m2o": (rnnx.Sequential(
            rnnx.Embedding(11, 4, seed=10), rnnx.LSTM(4, 33, seed=11),
            rnnx.Dense(33, 5, seed=12), many_to_one=True), True),
        "lstm_bi_output_m2o": (rnnx.Sequential(
            rnnx.LSTM(3, 5, bidirectional=True, seed=13),
            rnnx.Dense(10, 2, seed=14), many_to_one="output"), False),
        "lstm_proj_stack": (rnnx.Sequential(
            rnnx.LSTM(3, 18, proj_size=5, num_layers=2, seed=15),
            rnnx.Dense(5, 3, seed=16)), True),
        "lstm_proj_bi_m2o": (rnnx.Sequential(
            rnnx.LSTM(4, 9, proj_size=3, bidirectional=True, seed=17),
            rnnx.Dense(6, 2, seed=18), many_to_one=True), False),
    }


def _layers(model):
    return list(model.layers) if isinstance(model, rnnx.Sequential) else [model]


def _twin(model, x, lengths=None, many_to_one=None):
    """(y, state) as the C library computes them: the quantized layers by Python (the same
    core), Dense by the twin of stream/heads.c, the state raveled as rnnx_model_state_size says."""
    layers = _layers(model)
    if many_to_one is None:
        many_to_one = getattr(model, "many_to_one", False)
    recurrent = [i for i, layer in enumerate(layers)
                 if not isinstance(layer, (rnnx.Dense, rnnx.Embedding))]
    T, B = x.shape[:2]
    h, state = x, []
    for i, layer in enumerate(layers):
        if isinstance(layer, rnnx.Embedding):
            h = layer.parameters()["weight"][np.asarray(x)]
        elif isinstance(layer, rnnx.Dense):
            h = _dense_twin(layer, h.reshape(-1, h.shape[-1])).reshape(h.shape[:-1] + (-1,))
        else:
            h, s = layer(h, lengths=lengths)
            state += [np.ravel(a) for a in (s if isinstance(s, tuple) else (s,))]
            if many_to_one and i == recurrent[-1]:
                last = np.full(B, T - 1) if lengths is None else np.maximum(
                    np.asarray(lengths) - 1, 0)
                pooled = h[last, np.arange(B)].copy()
                if layer.num_directions == 2 and many_to_one == "state":
                    S = getattr(layer, "proj_size", 0) or layer.hidden_size   # h's width
                    pooled[:, S:] = h[0, :, S:]
                h = pooled
    return h, np.concatenate(state)


def _inputs(model, T, B, seed):
    first = _layers(model)[0]
    if isinstance(first, rnnx.Embedding):
        return np.random.default_rng(seed).integers(0, first.num_embeddings, (T, B))
    return np.random.default_rng(seed).standard_normal((T, B, first.input_size)).astype(np.float32)


def _text(values, integers):
    return " ".join(str(int(v)) if integers else float(v).hex() for v in np.ravel(values))


def _model_io(build, path, mode, x, *args, lengths=None):
    """model_io's lines for x (T,B,...): run (with lengths and a chunk) or stream."""
    T, B = x.shape[:2]
    stdin = _text(x, x.dtype.kind in "iu")
    if mode == "run":
        stdin = " ".join(map(str, [-1] * B if lengths is None else lengths)) + " " + stdin
    result = subprocess.run([str(build / "build" / "tests" / "c" / "model_io"), str(path), mode,
                             str(T), str(B), *map(str, args)], input=stdin, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return [np.array([float.fromhex(v) for v in line.split()], np.float32)
            for line in result.stdout.splitlines()]


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("name", list(float_models()))
def test_c_runs_a_quantized_file_as_python_does(build, tmp_path, name, qtype):
    model, streams = float_models()[name]
    q = rnnx.quantize(model, qtype)
    path = tmp_path / "q.rnnx"
    rnnx.save(q, path)
    assert path.read_bytes()[8] == 3                       # format version 3
    T, B = 9, 3
    x = _inputs(q, T, B, seed=len(name))
    lengths = [T, 0, 5]
    # whole sequence, with lengths: y and the final state
    y, state = _model_io(build, path, "run", x, T, lengths=lengths)
    want_y, want_state = _twin(q, x, lengths)
    np.testing.assert_array_equal(y, want_y.ravel())
    np.testing.assert_array_equal(state, want_state)
    # and the Python model's own call (its Dense by BLAS: to float32's rounding)
    np.testing.assert_allclose(y, np.ravel(q(x, lengths=lengths)[0]), rtol=1e-5, atol=1e-6)
    if not streams:
        return
    # chunks of 4 steps, each call's final state the next one's initial: one call's numbers
    y, state = _model_io(build, path, "run", x, 4)
    want_y, want_state = _twin(q, x)
    np.testing.assert_array_equal(y, want_y.ravel())
    np.testing.assert_array_equal(state, want_state)
    # a stream of T steps: each step's output as if the sequence ended there
    *steps, size = _model_io(build, path, "stream", x)
    np.testing.assert_array_equal(np.concatenate(steps), _twin(q, x, many_to_one=False)[0].ravel())
    assert int(size[0]) > 0


@pytest.mark.parametrize("qtype", QTYPES)
def test_loaded_file_is_the_quantized_model(tmp_path, qtype):
    """rnnx.load gives back the quantized model: the same tensors (not quantized again), the
    same outputs, the same bytes when saved again; the float model's file is version 1."""
    model, _ = float_models()["lstm_stack_softmax"]
    q = rnnx.quantize(model, qtype)
    rnnx.save(q, tmp_path / "q.rnnx")
    loaded = rnnx.load(tmp_path / "q.rnnx")
    assert type(loaded) is type(q) and loaded.qtype == qtype
    for a, b in zip(_layers(loaded), _layers(q)):
        assert type(a) is type(b)
        want, got = b.parameters(), a.parameters()
        assert list(got) == list(want)
        for key in want:
            assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), key
    x = _inputs(q, 6, 2, seed=0)
    np.testing.assert_array_equal(loaded(x, lengths=[6, 3])[0], q(x, lengths=[6, 3])[0])
    rnnx.save(loaded, tmp_path / "again.rnnx")
    assert (tmp_path / "again.rnnx").read_bytes() == (tmp_path / "q.rnnx").read_bytes()
    rnnx.save(model, tmp_path / "f.rnnx")
    assert (tmp_path / "f.rnnx").read_bytes()[8] == 1


@pytest.mark.parametrize("qtype", QTYPES)
def test_exported_source_runs_as_python_does(build, tmp_path, qtype):
    """export_c writes int8_t/uint16_t arrays and the layers' weights code: -std=c99 -pedantic
    clean, and the compiled-in model runs whole sequences as the Python model does."""
    _require("cc")
    model, _ = float_models()["embed_lstm_m2o"]
    q = rnnx.quantize(model, qtype)
    rnnx.export_c(q, tmp_path / "q_data.c", name="quantized")
    source = (tmp_path / "q_data.c").read_text()
    assert ("static const int8_t" in source) == (qtype == "int8")
    assert ("static const uint16_t" in source) == (qtype == "bfloat16")
    T, B = 7, 2
    ids = _inputs(q, T, B, seed=3)
    want = _twin(q, ids, [7, 4])[0]
    (tmp_path / "main.c").write_text(r'''
#include <stdio.h>
#include <stdlib.h>
#include "rnnx_model.h"
extern const rnnx_model quantized;
int main(void) {
    int32_t ids[%d];
    int64_t lengths[2] = {7, 4};
    static float y[%d];
    for (int k = 0; k < %d; k++)
        if (scanf("%%d", &ids[k]) != 1)
            return 3;
    size_t bytes = rnnx_model_run_work_size(&quantized, %d, %d);
    void* work = malloc(bytes);
    int status = rnnx_model_check(&quantized);
    if (status == RNNX_OK)
        status = rnnx_model_run(&quantized, NULL, ids, %d, %d, lengths, NULL, NULL, y, work, bytes);
    for (int k = 0; status == RNNX_OK && k < %d; k++)
        printf("%%a\n", (double)y[k]);
    free(work);
    return status;
}
''' % (T * B, want.size, T * B, T, B, T, B, want.size))
    _compile_pedantic(build, tmp_path, "q_data.c")
    out = subprocess.run([str(tmp_path / "main")], input=_text(ids, True), capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    got = np.array([float.fromhex(v) for v in out.stdout.split()], np.float32)
    np.testing.assert_array_equal(got, want.ravel())


@pytest.mark.parametrize("H", [64, 256])
def test_quantized_files_and_streams_are_small(build, tmp_path, H):
    """The footprint targets of issue 19 on the README's LSTMs (I = H/2): an int8 file at most
    0.3x the float32 one, a bfloat16 file 0.55x; a stream's memory shrinks with them; and
    rnnx_stream --info names the weights."""
    model = rnnx.LSTM(H // 2, H, seed=0)
    sizes, streams = {}, {}
    for qtype in (None, "int8", "bfloat16"):
        path = tmp_path / f"{qtype}.rnnx"
        rnnx.save(model if qtype is None else rnnx.quantize(model, qtype), path)
        sizes[qtype] = path.stat().st_size
        info = subprocess.run([str(build / "build" / "examples" / "embed" / "rnnx_stream"),
                               "--info", str(path)], capture_output=True, text=True,
                              check=True).stdout
        assert (f"({qtype} recurrent weights)" in info) == (qtype is not None), info
        streams[qtype] = int(info.split("batch 1: ")[1].split()[0])
    assert sizes["int8"] <= 0.3 * sizes[None] and sizes["bfloat16"] <= 0.55 * sizes[None]
    assert streams["int8"] <= 0.3 * streams[None] and streams["bfloat16"] <= 0.55 * streams[None]


@pytest.mark.parametrize("name", ["lstm_proj_stack", "lstm_proj_bi_m2o"])
def test_c_runs_a_float_lstm_with_projection(build, tmp_path, name):
    """proj_size in the .rnnx format (version 3's seventh descriptor field) for float32 too:
    C's run, chunks and stream give the Python model's outputs and state (Python's input
    projection may use BLAS: float32 rounding)."""
    model, streams = float_models()[name]
    rnnx.save(model, tmp_path / "p.rnnx")
    assert (tmp_path / "p.rnnx").read_bytes()[8] == 3
    T, B = 9, 3
    x = _inputs(model, T, B, seed=7)
    y, state = _model_io(build, tmp_path / "p.rnnx", "run", x, T, lengths=[T, 0, 5])
    want_y, want_state = _twin(model, x, [T, 0, 5])
    np.testing.assert_allclose(y, want_y.ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state, want_state, rtol=1e-5, atol=1e-6)
    if streams:
        *steps, _ = _model_io(build, tmp_path / "p.rnnx", "stream", x)
        np.testing.assert_allclose(np.concatenate(steps),
                                   _twin(model, x, many_to_one=False)[0].ravel(),
                                   rtol=1e-5, atol=1e-6)

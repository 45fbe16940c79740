"""rnnx.LSTM(peephole=True): the Python layer over the core's peephole LSTM.

Checked against rnnx/reference.py (itself checked against finite differences, onnx's
reference evaluator and onnxruntime in test_peephole_reference.py) direction by direction
through a stack, forward and backward; against float64 finite differences of the layer
itself; then chunked, truncated (the Trainer) and checkpointed BPTT, streams, save/load,
to_onnx under onnxruntime and onnx's reference evaluator, and the exports that refuse it.
Every check would fail if the peephole terms were dropped: the peepholes are O(1), so
they move every output and gradient by far more than the tolerances.
"""
import os

import numpy as np
import pytest

import rnnx
from rnnx import reference as ref
from shared import assert_checkpointed_equals_plain, assert_chunks_equal_whole, \
    assert_npz_round_trip, central_difference

# float64: the core and the reference sum the same products in other orders (~1e-16 each);
# float32 against the float64 reference of the same float32 values: ~1e-5 at worst.
TOL = {np.float64: 1e-10, np.float32: 1e-4}


def make_layer(dtype=np.float64, I=4, H=5, **kwargs):
    options = dict(num_layers=2, bidirectional=True, peephole=True, dtype=dtype, seed=4)
    options.update(kwargs)
    layer = rnnx.LSTM(I, H, **options)
    # peepholes of O(1), so that dropping any of their terms moves every result
    rng = np.random.default_rng(11)
    state = layer.state_dict()
    for name in state:
        if "peephole" in name:
            state[name] = rng.uniform(-1.5, 1.5, state[name].shape)
    layer.load_state_dict(state)
    return layer


def reference_stack(layer, x, state, lengths, dy, dstate):
    """y, final state, dx, initial-state gradient and parameter gradients of the layer, run
    direction by direction through reference.py (layer k takes layer k-1's output)."""
    L, D = layer.num_layers, layer.num_directions
    h0, c0 = state
    dh, dc = dstate
    h_n, c_n, dh0, dc0 = (np.zeros_like(a) for a in (h0, c0, h0, c0))
    inputs, caches, outputs = x, [], []
    for k in range(L):
        outs = []
        for d in range(D):
            i = k * D + d
            y, (h_n[i], c_n[i]), cache = ref.forward("lstm", inputs, (h0[i], c0[i]),
                                                     *layer._weights(k, d), lengths, d == 1,
                                                     **_ref_options(layer, k, d))
            outs.append(y)
            caches.append(cache)
        outputs.append(inputs)
        inputs = np.concatenate(outs, axis=2)
    y = inputs
    grads, width = {}, layer._state_width
    for k in reversed(range(L)):
        dx = np.zeros_like(outputs[k])
        for d in range(D):
            i = k * D + d
            dx_d, (dh0[i], dc0[i]), dw = ref.backward("lstm", caches[i],
                                                      dy[:, :, d * width:(d + 1) * width],
                                                      (dh[i], dc[i]))
            dx += dx_d
            names = [n.rsplit("_l", 1)[0] for n in layer._param_names(k, d)]
            dw = [g for g in dw if g is not None]
            suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
            grads.update((n + suffix, g) for n, g in zip(names, dw))
        dy = dx
    return y, (h_n, c_n), dy, (dh0, dc0), grads


def _ref_options(layer, k, d):
    options = layer._cell_options(k, d)
    return {"w_hr": options.get("w_hr"), "w_peephole": options["w_peep"]}


def random_case(layer, T=6, B=3, seed=2):
    rng = np.random.default_rng(seed)
    dtype, LD = layer.dtype, layer.num_layers * layer.num_directions
    x = rng.standard_normal((T, B, layer.input_size)).astype(dtype)
    state = (rng.standard_normal((LD, B, layer._state_width)).astype(dtype),
             rng.standard_normal((LD, B, layer.hidden_size)).astype(dtype))
    dy = rng.standard_normal((T, B, layer.output_size)).astype(dtype)
    dstate = tuple(rng.standard_normal(s.shape).astype(dtype) for s in state)
    return x, state, dy, dstate


def test_shapes_names_order_and_config():
    layer = rnnx.LSTM(4, 5, num_layers=2, bidirectional=True, peephole=True, proj_size=2)
    shapes = {n: p.shape for n, p in layer.state_dict().items()}
    assert list(shapes)[:6] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                "weight_hr_l0", "weight_peephole_l0"]
    assert shapes["weight_peephole_l1_reverse"] == (15,) and shapes["weight_hr_l1"] == (2, 5)
    assert layer.config()["peephole"] is True
    assert "peephole" not in rnnx.LSTM(4, 5).config()          # a plain LSTM's config as before
    assert rnnx.LSTM(4, 5, bias=False, peephole=True).state_dict().keys() == {
        "weight_ih_l0", "weight_hh_l0", "weight_peephole_l0"}
    with pytest.raises(TypeError, match="peephole must be a bool, got int"):
        rnnx.LSTM(4, 5, peephole=1)
    with pytest.raises(TypeError, match="peephole"):
        rnnx.GRU(4, 5, peephole=True)
    bad = layer.state_dict()
    bad["weight_peephole_l0"] = np.zeros(20)
    with pytest.raises(ValueError, match=r"weight_peephole_l0.*must have shape \(15,\), got \(20"):
        layer.load_state_dict(bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, {"proj_size": 3}, {"bias": False},
                                     {"num_layers": 1, "bidirectional": False,
                                      "go_backwards": True}],
                         ids=["plain", "proj", "nobias", "go_backwards"])
def test_layer_forward_and_backward_equal_the_reference(dtype, options):
    layer = make_layer(dtype, **options)
    x, state, dy, dstate = random_case(layer)
    lengths = np.array([6, 0, 4])
    y, final, cache = layer.forward(x, state, lengths)
    dx, dinit, grads = layer.backward(cache, dy, dstate)
    if layer.go_backwards:   # its one direction is the reference's reverse one
        want = _reverse_only(layer, x, state, lengths, dy, dstate)
    else:
        want = reference_stack(layer, x, state, lengths, dy, dstate)
    tol = TOL[dtype]
    for got, expected, what in ((y, want[0], "y"), (final[0], want[1][0], "h_n"),
                                (final[1], want[1][1], "c_n"), (dx, want[2], "dx"),
                                (dinit[0], want[3][0], "dh0"), (dinit[1], want[3][1], "dc0")):
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol, err_msg=what)
    assert grads.keys() == want[4].keys() == layer.state_dict().keys()
    for name in grads:
        np.testing.assert_allclose(grads[name], want[4][name], rtol=tol, atol=tol, err_msg=name)


def _reverse_only(layer, x, state, lengths, dy, dstate):
    """reference_stack for a one-layer go_backwards layer."""
    y, (h, c), cache = ref.forward("lstm", x, (state[0][0], state[1][0]), *layer._weights(0, 0),
                                   lengths, True, **_ref_options(layer, 0, 0))
    dx, (dh0, dc0), dw = ref.backward("lstm", cache, dy, (dstate[0][0], dstate[1][0]))
    names = list(layer.state_dict())
    return (y, (h[None], c[None]), dx, (dh0[None], dc0[None]),
            dict(zip(names, [g for g in dw if g is not None])))


def test_layer_gradients_match_finite_differences_float64():
    layer = make_layer(I=2, H=3, num_layers=2, bidirectional=False)
    x, state, dy, dstate = random_case(layer, T=4, B=2)
    lengths = np.array([4, 2])
    _, _, cache = layer.forward(x, state, lengths)
    dx, _, grads = layer.backward(cache, dy, dstate)
    params = layer.parameters()   # the layer's own arrays: perturbed in place

    def loss():
        y, (h, c) = layer(x, state, lengths)
        return float(np.sum(y * dy) + np.sum(h * dstate[0]) + np.sum(c * dstate[1]))

    for name in ("weight_peephole_l0", "weight_peephole_l1", "weight_hh_l0"):
        numeric = central_difference(lambda: (layer.bump_version(), loss())[1], params[name])
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)
        assert np.abs(numeric).max() > 1e-3, name     # the peepholes do reach the loss
    np.testing.assert_allclose(dx, central_difference(loss, x), rtol=1e-6, atol=1e-8)


def test_zero_peepholes_equal_the_plain_lstm_bit_for_bit_float64():
    plain = rnnx.LSTM(4, 5, num_layers=2, dtype=np.float64, seed=1)
    peep = rnnx.LSTM(4, 5, num_layers=2, dtype=np.float64, seed=1, peephole=True)
    state = plain.state_dict()
    peep.load_state_dict({**state, **{n: np.zeros(15) for n in peep.state_dict()
                                      if "peephole" in n}})
    x = np.random.default_rng(0).standard_normal((5, 2, 4))
    assert np.array_equal(plain(x)[0], peep(x)[0])
    peep.load_state_dict({**state, **{n: np.full(15, 0.5) for n in peep.state_dict()
                                      if "peephole" in n}})
    assert (np.abs(peep(x)[0] - plain(x)[0]) > 1e-6).all()    # and non-zero ones count


@pytest.mark.parametrize("bidirectional", [False, True])
def test_chunks_and_checkpointed_bptt_equal_one_plain_run_float64(bidirectional):
    layer = make_layer(bidirectional=bidirectional)
    x, state, dy, dstate = random_case(layer, T=9)
    if not bidirectional:    # a reverse direction needs the whole sequence
        assert_chunks_equal_whole(layer, x, 4)
    want = reference_stack(layer, x, state, None, dy, dstate)[0]   # the peephole LSTM's y
    np.testing.assert_allclose(layer(x, state)[0], want, rtol=1e-10, atol=1e-10)
    # dP too: the core sums it over the rows in the backward loop's order, as the weights'
    assert_checkpointed_equals_plain(layer, x, state, np.array([9, 3, 6]), dy, dstate)


def test_trainer_truncated_bptt_equals_the_reference_chunk_by_chunk():
    """Trainer(bptt=k) on a bare peephole LSTM with MSE: every update's gradients are the
    reference's over its chunk of k steps, from the state carried (without gradient) from
    the chunk before, computed with the weights of that update."""
    T, B, I, H, k = 9, 2, 3, 4, 4
    rng = np.random.default_rng(5)
    x, target = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    layer = make_layer(I=I, H=H, num_layers=1, bidirectional=False)
    got, weights = [], []

    def record(info):
        got.append({n: v.copy() for n, v in info["grads"].items()})

    trainer = rnnx.Trainer(layer, rnnx.MSELoss(), rnnx.SGD(layer.parameters(), lr=0.1), bptt=k)
    weights.append({n: v.copy() for n, v in layer.state_dict().items()})
    trainer.fit(x, target, epochs=1, callback=lambda info: (record(info), weights.append(
        {n: v.copy() for n, v in layer.state_dict().items()})))
    assert len(got) == 3
    h, c = np.zeros((B, H)), np.zeros((B, H))
    for update, a in enumerate(range(0, T, k)):
        w = weights[update]
        y, (h_n, c_n), cache = ref.forward(
            "lstm", x[a:a + k], (h, c), w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"],
            w["bias_hh_l0"], w_peephole=w["weight_peephole_l0"])
        dy = 2 * (y - target[a:a + k]) / y.size           # MSELoss, mean over every element
        _, _, dw = ref.backward("lstm", cache, dy)
        names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_peephole_l0"]
        for name, g in zip(names, dw):
            np.testing.assert_allclose(got[update]["0." + name], g, rtol=1e-9, atol=1e-12,
                                       err_msg=f"update {update}: {name}")
        h, c = h_n, c_n


@pytest.mark.parametrize("proj_size", [0, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_equals_the_whole_sequence(dtype, proj_size):
    layer = make_layer(dtype, bidirectional=False, proj_size=proj_size)
    x, state, dy, dstate = random_case(layer, T=7, B=2, seed=8)
    y, (h_n, c_n) = layer(x, state)
    np.testing.assert_allclose(y, reference_stack(layer, x, state, None, dy, dstate)[0],
                               rtol=TOL[dtype], atol=TOL[dtype])
    stream = layer.stream(batch_size=2, state=state)
    ys = np.stack([stream.step(x[t]) for t in range(7)])
    assert np.array_equal(ys, y)        # a step computes its rows as the whole run does
    assert np.array_equal(stream.state[0], h_n) and np.array_equal(stream.state[1], c_n)
    stream.reset(state)
    assert np.array_equal(stream.run(x[:3]), y[:3])
    assert np.array_equal(stream.run(x[3:]), y[3:])
    model = rnnx.Sequential(layer, rnnx.Dense(layer.output_size, 2, dtype=dtype, seed=1))
    whole = model(x)[0]
    model_stream = model.stream(batch_size=2)     # Sequential.stream: the layer's Stream inside
    assert np.array_equal(np.stack([model_stream.step(x[t]) for t in range(7)]), whole)


def test_save_load_round_trip_and_the_rnnx_format_refuses(tmp_path):
    layer = make_layer()
    model = rnnx.Sequential(layer, rnnx.Dense(10, 2, dtype=np.float64, seed=1), many_to_one=True)
    x = np.random.default_rng(1).standard_normal((5, 2, 4))
    assert assert_npz_round_trip(model, tmp_path, x, np.array([5, 2]))[0].peephole is True
    with pytest.raises(ValueError, match="peephole=True cannot be stored in the .rnnx format"):
        rnnx.save(model, os.fspath(tmp_path / "model.rnnx"))
    assert not (tmp_path / "model.rnnx").exists()
    with pytest.raises(ValueError, match="peephole"):
        rnnx.export_c(model, os.fspath(tmp_path / "model_c"))
    with pytest.raises(ValueError, match="peephole=True: Keras 3's LSTM has no peephole LSTM"):
        rnnx.to_keras(layer)


def _onnx_model(dtype):
    return rnnx.Sequential(make_layer(dtype, bidirectional=True, num_layers=2),
                           rnnx.Dense(10, 3, dtype=dtype, seed=2))


def test_to_onnx_writes_p_and_onnxruntime_runs_it_like_rnnx():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = _onnx_model(np.float32)
    proto = rnnx.to_onnx(model, lengths=True)
    lstm = [n for n in proto.graph.node if n.op_type == "LSTM"]
    assert len(lstm) == 2 and all(len(n.input) == 8 and n.input[7] for n in lstm)
    x = np.random.default_rng(3).standard_normal((6, 3, 4)).astype(np.float32)
    lengths = np.array([6, 1, 4])
    y, _ = model(x, lengths=lengths)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x, "lengths": lengths.astype(np.int32)})[0]
    np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-5)


def test_to_onnx_float64_equals_onnx_reference_evaluator():
    """onnx's own LSTM (with P, in its order [p_i p_o p_f]) on rnnx's float64 export."""
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    layer = make_layer(np.float64, bidirectional=False, num_layers=2)
    proto = rnnx.to_onnx(layer)
    x = np.random.default_rng(4).standard_normal((5, 2, 4))
    y, (h_n, c_n) = layer(x)
    got = ReferenceEvaluator(proto).run(None, {"x": x})
    np.testing.assert_allclose(got[0], y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], h_n, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[2], c_n, rtol=1e-12, atol=1e-12)


def test_to_onnx_from_onnx_round_trip_is_exact():
    pytest.importorskip("onnx")
    model = _onnx_model(np.float64)
    back = rnnx.from_onnx(rnnx.to_onnx(model))
    assert back[0].peephole and back[0].num_layers == 2 and back[0].bidirectional
    for name, value in model.state_dict().items():
        assert np.array_equal(back.state_dict()[name], value), name

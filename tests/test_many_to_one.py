"""Sequential(many_to_one="output" | "state"): each against PyTorch code doing the same by hand
(with lengths), its gradient against finite differences, and both carried through save/load,
to_onnx/from_onnx (onnxruntime) and the .rnnx file (the C library's: tests/test_embed.py runs
tests/c/data/lstm_bi_output_m2o_f64 through it)."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import rnnx
from shared import central_difference, peer

torch = peer("torch")


def _torch_rnn(kind, bidirectional, seed):
    torch.manual_seed(seed)
    return getattr(torch.nn, kind)(3, 5, num_layers=2, bidirectional=bidirectional,
                                   batch_first=True).double()


def _torch_by_hand(rnn, linear, x, lengths, convention):
    """What PyTorch code writes: pack, run, then gather out[length - 1] or cat(h_n[-2], h_n[-1])."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    xt = torch.from_numpy(x)
    packed = pack_padded_sequence(xt, torch.from_numpy(lengths), batch_first=True,
                                  enforce_sorted=False)
    with torch.no_grad():
        out, h_n = rnn(packed)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n
        if convention == "output":
            out, _ = pad_packed_sequence(out, batch_first=True)
            pooled = out[torch.arange(len(lengths)), torch.from_numpy(lengths) - 1]
        elif rnn.bidirectional:
            pooled = torch.cat([h_n[-2], h_n[-1]], dim=-1)
        else:
            pooled = h_n[-1]
        return linear(pooled).numpy()


def _model(rnn, linear, many_to_one):
    return rnnx.Sequential(rnnx.from_torch(rnn), rnnx.from_torch(linear), many_to_one=many_to_one)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("convention", ["output", "state"])
def test_each_convention_equals_pytorch_by_hand_with_lengths(convention, kind, bidirectional):
    rnn = _torch_rnn(kind, bidirectional, seed=1)
    linear = torch.nn.Linear(rnn.hidden_size * (2 if bidirectional else 1), 3).double()
    x = np.random.default_rng(2).standard_normal((4, 7, 3))
    lengths = np.array([7, 2, 5, 1])
    want = _torch_by_hand(rnn, linear, x, lengths, convention)
    got = _model(rnn, linear, convention)(x, lengths=lengths)[0]
    assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    if bidirectional:   # the two conventions differ there: the test tells them apart
        other = "state" if convention == "output" else "output"
        assert np.abs(_model(rnn, linear, other)(x, lengths=lengths)[0] - want).max() > 1e-3


def test_true_is_state_and_bad_values_are_named():
    layers = [rnnx.GRU(3, 4, bidirectional=True, seed=0), rnnx.Dense(8, 2, seed=1)]
    assert rnnx.Sequential(*layers, many_to_one=True).many_to_one == "state"
    assert rnnx.Sequential(*layers).many_to_one is False
    assert "many_to_one='output'" in repr(rnnx.Sequential(*layers, many_to_one="output"))
    for bad in ("last", 2, "True"):
        with pytest.raises(ValueError, match="many_to_one must be False, 'output', 'state'"):
            rnnx.Sequential(*layers, many_to_one=bad)
    with pytest.raises(ValueError, match="many_to_one='output' needs a recurrent layer"):
        rnnx.Sequential(rnnx.Dense(3, 2), many_to_one="output")
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    assert np.array_equal(rnnx.Sequential(*layers, many_to_one=True)(x)[0],
                          rnnx.Sequential(*layers, many_to_one="state")(x)[0])


@pytest.mark.parametrize("go_backwards", [False, True])
def test_output_gradient_matches_finite_differences(go_backwards):
    """backward through the "output" pooling, float64, with a length-0 row."""
    kwargs = dict(go_backwards=True) if go_backwards else dict(bidirectional=True)
    model = rnnx.Sequential(rnnx.LSTM(2, 3, dtype=np.float64, seed=3, **kwargs),
                            rnnx.Dense(3 * (1 if go_backwards else 2), 2, dtype=np.float64,
                                       seed=4), many_to_one="output")
    x = np.random.default_rng(5).standard_normal((4, 3, 2))
    lengths = np.array([4, 0, 2])
    weights = np.random.default_rng(6).standard_normal((3, 2))
    _, _, cache = model.forward(x, lengths=lengths)
    dx, _, grads = model.backward(cache, weights)

    def loss():
        return np.sum(model(x, lengths=lengths)[0] * weights)
    assert_allclose(dx, central_difference(loss, x), atol=1e-8)
    assert not dx[:, 1].any()                       # the length-0 row
    for name in ("0.weight_hh_l0", "0.weight_ih_l0", "1.weight"):
        assert_allclose(grads[name], central_difference(loss, model.parameters()[name]),
                        atol=1e-8, err_msg=name)


@pytest.mark.parametrize("convention", ["output", "state"])
@pytest.mark.parametrize("suffix", [".npz", ".rnnx"])
def test_both_conventions_survive_save_and_load(convention, suffix, tmp_path):
    model = rnnx.Sequential(rnnx.GRU(3, 4, bidirectional=True, seed=0), rnnx.Dense(8, 2, seed=1),
                            many_to_one=convention)
    rnnx.save(model, tmp_path / ("m" + suffix))
    back = rnnx.load(tmp_path / ("m" + suffix))
    assert back.many_to_one == convention
    x = np.random.default_rng(0).standard_normal((6, 3, 3)).astype(np.float32)
    lengths = np.array([6, 0, 3])
    assert np.array_equal(back(x, lengths=lengths)[0], model(x, lengths=lengths)[0])
    assert rnnx.Sequential.from_config(model.config()).many_to_one == convention


def test_rnnx_file_flag_bits():
    """bit 0 many-to-one, bit 2 "output"; bit 2 alone is refused as corrupt."""
    import struct
    import zlib
    from rnnx import rnnx_format
    layers = [rnnx.LSTM(2, 3, seed=0), rnnx.Dense(3, 1, seed=1)]
    flags = {m: struct.unpack_from("<I", rnnx_format.dumps(rnnx.Sequential(
        *layers, many_to_one=m)), 20)[0] for m in (False, "state", "output")}
    assert flags == {False: 0, "state": 1, "output": 5}
    image = bytearray(rnnx_format.dumps(rnnx.Sequential(*layers)))
    struct.pack_into("<I", image, 20, 4)
    struct.pack_into("<I", image, len(image) - 4, zlib.crc32(bytes(image[:-4])))
    with pytest.raises(ValueError, match="last-output flag without the many-to-one flag"):
        rnnx_format.loads(bytes(image))


def test_rnnx_file_version_2_only_for_the_last_output_flag():
    """Version 2 added bit 2: "output" files say version 2, the others stay version 1 (the
    bytes earlier rnnx wrote); bit 2 in a file that says version 1 is corrupt (the C reader
    agrees: tests/c/test_errors.c)."""
    import struct
    import zlib
    from rnnx import rnnx_format
    layers = [rnnx.LSTM(2, 3, seed=0), rnnx.Dense(3, 1, seed=1)]
    images = {m: rnnx_format.dumps(rnnx.Sequential(*layers, many_to_one=m))
              for m in (False, "state", "output")}
    assert {m: struct.unpack_from("<I", image, 8)[0] for m, image in images.items()} == \
        {False: 1, "state": 1, "output": 2}
    assert rnnx_format.loads(images["output"]).many_to_one == "output"
    image = bytearray(images["output"])
    struct.pack_into("<I", image, 8, 1)
    struct.pack_into("<I", image, len(image) - 4, zlib.crc32(bytes(image[:-4])))
    with pytest.raises(ValueError, match="last-output flag in a version 1 file"):
        rnnx_format.loads(bytes(image))


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("convention", ["output", "state"])
def test_both_conventions_through_onnxruntime_and_back(convention, with_lengths):
    onnxruntime = peer("onnxruntime")
    model = rnnx.Sequential(rnnx.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True,
                                      seed=0),
                            rnnx.Dense(8, 2, activation="softmax", seed=1), many_to_one=convention)
    proto = rnnx.to_onnx(model, lengths=with_lengths)
    x = np.random.default_rng(1).standard_normal((4, 6, 3)).astype(np.float32)
    lengths = np.array([6, 0, 3, 1]) if with_lengths else None
    feeds = {"x": x}
    if with_lengths:
        feeds["lengths"] = lengths.astype(np.int32)
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    want = model(x, lengths=lengths)[0]
    assert_allclose(session.run(["y"], feeds)[0], want, rtol=1e-5, atol=1e-6)
    back = rnnx.from_onnx(proto)
    assert back.many_to_one == convention
    assert_allclose(back(x, lengths=lengths)[0], want, rtol=1e-6, atol=1e-7)


def test_torch_export_of_a_last_step_head_on_a_bidirectional_layer_imports_as_output(tmp_path):
    """out[:, -1] of a bidirectional LSTM: the reverse half after one step, "output"."""
    import warnings

    class LastStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True)
            self.fc = torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    torch.manual_seed(0)
    module = LastStep()
    x = torch.randn(2, 5, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(tmp_path / "m.onnx"), dynamo=False)
    model = rnnx.from_onnx(tmp_path / "m.onnx")
    assert model.many_to_one == "output"
    with torch.no_grad():
        assert_allclose(model(x.numpy())[0], module(x).numpy(), rtol=1e-5, atol=1e-6)


def test_to_keras_refuses_output_on_a_bidirectional_layer_and_keeps_state():
    import os
    os.environ.setdefault("KERAS_BACKEND", "jax")
    peer("keras")
    layers = [rnnx.GRU(3, 4, bidirectional=True, batch_first=True, seed=0),
              rnnx.Dense(8, 2, seed=1)]
    with pytest.raises(ValueError, match="many_to_one='output'.*Keras"):
        rnnx.to_keras(rnnx.Sequential(*layers, many_to_one="output"))
    model = rnnx.Sequential(*layers, many_to_one="state")
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    assert_allclose(np.asarray(rnnx.to_keras(model)(x)), model(x)[0], rtol=1e-5, atol=1e-6)


def test_export_c_writes_the_convention(tmp_path):
    """rnnx_model.many_to_one: RNNX_MANY_TO_ONE_STATE = 1, RNNX_MANY_TO_ONE_OUTPUT = 2 (the
    C library runs both: tests/c/data/lstm_bi_output_m2o_f64 in tests/test_embed.py)."""
    for convention, code in ((False, 0), ("state", 1), ("output", 2)):
        model = rnnx.Sequential(rnnx.GRU(2, 3, bidirectional=True, seed=0),
                                rnnx.Dense(6, 1, seed=1), many_to_one=convention)
        rnnx.export_c(model, tmp_path / "m.c", name="m")
        last = (tmp_path / "m.c").read_text().strip().splitlines()[-1]
        assert last.startswith(f"const rnnx_model m = {{0, {code}, 2, 2, 1, "), last

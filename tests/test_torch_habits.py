"""What a PyTorch user reaches for: .train()/.eval() and .training (dropout in forward on and
off), .double()/.float() (new arrays, same values), a PackedSequence as x, and from_torch's
messages for a custom module and a quantized one."""
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import rnnx
from shared import peer


def _model(dtype=np.float32):
    return rnnx.Sequential(rnnx.LSTM(3, 6, num_layers=3, dropout=0.5, dtype=dtype, seed=0),
                           rnnx.Dense(6, 2, dtype=dtype, seed=1))


def test_train_and_eval_switch_dropout_in_forward():
    model = _model()
    x = np.random.default_rng(0).standard_normal((7, 2, 3)).astype(np.float32)
    inference = model(x)[0]
    assert model.training and all(layer.training for layer in model.layers)
    dropped = model.forward(x)[0]
    assert np.abs(dropped - inference).max() > 1e-3          # dropout on in training mode
    assert model.eval() is model and not model.training
    assert not any(layer.training for layer in model.layers)
    assert np.array_equal(model.forward(x)[0], inference)     # off in evaluation mode
    assert np.array_equal(model(x)[0], inference)             # calling never drops
    assert model.train() is model and model.training
    assert np.abs(model.forward(x)[0] - inference).max() > 1e-3
    layer = rnnx.GRU(3, 4, num_layers=2, dropout=0.9, seed=2)
    assert layer.eval() is layer and not layer.training
    assert np.array_equal(layer.forward(x)[0], layer(x)[0])
    assert layer.train(True).training
    with pytest.raises(TypeError, match="mode must be a bool"):
        layer.train("no")


def test_eval_mode_backward_and_checkpoint_see_no_dropout():
    """In eval mode forward/backward equal a dropout-free twin, and checkpointed BPTT (which
    refuses dropout) runs."""
    model = _model(np.float64).eval()
    twin = rnnx.Sequential(rnnx.LSTM(3, 6, num_layers=3, dtype=np.float64, seed=0),
                           rnnx.Dense(6, 2, dtype=np.float64, seed=1))
    twin.load_state_dict(model.state_dict())
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    dy = np.ones((5, 2, 2))
    got = model.backward(model.forward(x)[2], dy)[2]
    want = twin.backward(twin.forward(x)[2], dy)[2]
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    layer = model.layers[0]
    y, _, _ = layer.forward(x, checkpoint=2)
    assert np.array_equal(y, twin.layers[0](x)[0])
    layer.train()
    with pytest.raises(ValueError, match="does not support dropout"):
        layer.forward(x, checkpoint=2)


@pytest.mark.parametrize("convert, dtype", [("double", np.float64), ("float", np.float32)])
def test_double_and_float_make_new_arrays_with_the_same_values(convert, dtype):
    start = np.float32 if dtype == np.float64 else np.float64
    model = _model(start)
    before = model.state_dict()
    held = model.parameters()
    assert getattr(model, convert)() is model
    assert model.dtype == dtype and all(layer.dtype == dtype for layer in model.layers)
    for name, value in model.parameters().items():
        assert value.dtype == dtype and value is not held[name]
        assert held[name].dtype == start               # the old arrays are left as they were
        assert_allclose(value, before[name].astype(dtype), rtol=0, atol=0)
    x = np.random.default_rng(2).standard_normal((4, 2, 3)).astype(dtype)
    twin = rnnx.Sequential(rnnx.LSTM(3, 6, num_layers=3, dtype=dtype),
                           rnnx.Dense(6, 2, dtype=dtype))
    twin.load_state_dict(model.state_dict())
    assert np.array_equal(model(x)[0], twin(x)[0])
    layer = rnnx.RNN(2, 3, seed=4)
    assert layer.double() is layer and layer(np.ones((2, 1, 2)))[0].dtype == np.float64


torch = peer("torch")


@pytest.mark.parametrize("batch_first", [False, True])
def test_a_packed_sequence_is_unpacked_into_x_and_lengths(batch_first):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    torch.manual_seed(0)
    net = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first).double()
    layer = rnnx.from_torch(net)
    x = torch.randn(*((4, 6, 3) if batch_first else (6, 4, 3)), dtype=torch.float64)
    lengths = torch.tensor([6, 2, 5, 1])
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    with torch.no_grad():
        out, h_n = net(packed)
    want, _ = pad_packed_sequence(out, batch_first=batch_first)
    y, h = layer(packed)
    assert_allclose(y, want.numpy(), atol=1e-12)
    assert_allclose(h, h_n.numpy(), atol=1e-12)
    model = rnnx.Sequential(layer, rnnx.Dense(8, 2, dtype=np.float64), many_to_one="output")
    padded = x.numpy() * (np.arange(6)[None, :, None] < lengths.numpy()[:, None, None]
                          if batch_first else
                          np.arange(6)[:, None, None] < lengths.numpy()[None, :, None])
    assert np.array_equal(model(packed)[0], model(padded, lengths=lengths.numpy())[0])
    assert np.array_equal(model.forward(packed)[0], model(padded, lengths=lengths.numpy())[0])
    with pytest.raises(ValueError, match="PackedSequence.*lengths="):
        layer(packed, lengths=lengths.numpy())


class _Spotter(torch.nn.Module):
    """The keyword spotter of the issue: an LSTM, then a Linear on the last step."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
        self.classifier = torch.nn.Linear(8, 5)

    def forward(self, x):
        return self.classifier(self.encoder(x)[0][:, -1])


def test_from_torch_of_a_custom_module_says_what_to_pass():
    torch.manual_seed(0)
    net = _Spotter()
    with pytest.raises(TypeError, match=r"custom module.*rnnx.from_torch\(\[module.encoder, "
                                        r"module.classifier\]\).*many_to_one"):
        rnnx.from_torch(net)
    converted = rnnx.from_torch([net.encoder, net.classifier])
    model = rnnx.Sequential(*converted.layers, many_to_one="output")   # what the message says
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        assert_allclose(model(x.numpy())[0], net(x).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="no rnnx counterpart"):
        rnnx.from_torch(torch.nn.Conv1d(3, 3, 1))


def test_from_torch_refuses_a_dynamic_quantized_module_clearly():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch.ao.quantization's deprecation notes
        quantized = torch.ao.quantization.quantize_dynamic(
            _Spotter(), {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)
    for module, where in ((quantized.encoder, r"module\[0\] \(LSTM\)"),
                          (quantized, r"module\[0\] \(_Spotter\)\.encoder")):
        with pytest.raises(TypeError, match=where + " is a quantized module.*convert the float "
                                                    "model") as error:
            rnnx.from_torch(module)
        assert ("rnnx.quantize" in str(error.value)) == hasattr(rnnx, "quantize")

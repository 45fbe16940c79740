"""rnnx.from_torch: PyTorch modules to rnnx, checked against the modules' own outputs."""
import importlib
import os
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import rnnx


def peer(name):
    """The peer module; in CI a missing peer fails the run instead of skipping the test."""
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(name)


torch = peer("torch")
nn = torch.nn

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def random_recurrent(seed, dtype):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    kind = ["RNN", "LSTM", "GRU"][seed % 3]
    extra = {"nonlinearity": ["tanh", "relu"][int(rng.integers(2))]} if kind == "RNN" else {}
    module = getattr(nn, kind)(int(rng.integers(1, 4)), int(rng.integers(1, 5)),
                               num_layers=int(rng.integers(1, 4)), bias=bool(rng.integers(4)),
                               batch_first=bool(rng.integers(2)),
                               bidirectional=bool(rng.integers(2)), **extra)
    return module.to(getattr(torch, np.dtype(dtype).name)).eval()


def sequence(module, seed, T=6, B=3):
    shape = (B, T, module.input_size) if module.batch_first else (T, B, module.input_size)
    dtype = next(module.parameters()).dtype
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).to(dtype)


@pytest.mark.parametrize("seed", range(9))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_recurrent_modules_convert_with_their_outputs_and_states(seed, dtype):
    module = random_recurrent(seed, dtype)
    layer = rnnx.from_torch(module)
    assert type(layer).__name__ == type(module).__name__
    assert layer.dtype == dtype
    for attr in ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                 "bidirectional"):
        assert getattr(layer, attr) == getattr(module, attr), attr
    if isinstance(module, nn.RNN):
        assert layer.nonlinearity == module.nonlinearity
    x = sequence(module, seed)
    with torch.no_grad():
        y_want, state_want = module(x)
    y, state = layer(x.numpy())
    assert_allclose(y, y_want.numpy(), rtol=TOL[dtype], atol=TOL[dtype])
    for got, want in zip(state if isinstance(state, tuple) else (state,),
                         state_want if isinstance(state_want, tuple) else (state_want,)):
        assert_allclose(got, want.numpy(), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("container", ["sequential", "list", "module_list"])
def test_chains_with_linear_heads_follow_the_first_tuple_element_rule(dtype, container):
    torch.manual_seed(1)
    tdtype = getattr(torch, np.dtype(dtype).name)
    modules = [nn.LSTM(3, 4, batch_first=True, bidirectional=True), nn.Dropout(0.2),
               nn.GRU(8, 5, num_layers=2, batch_first=True), nn.Linear(5, 6), nn.Tanh(),
               nn.Linear(6, 3), nn.Softmax(dim=-1)]
    modules = [m.to(tdtype).eval() for m in modules]
    wrapped = {"sequential": lambda: nn.Sequential(*modules), "list": lambda: list(modules),
               "module_list": lambda: nn.ModuleList(modules)}[container]()
    model = rnnx.from_torch(wrapped)
    assert isinstance(model, rnnx.Sequential)
    assert [type(layer).__name__ for layer in model.layers] == ["LSTM", "GRU", "Dense", "Dense"]
    assert [layer.activation for layer in model.layers[2:]] == ["tanh", "softmax"]
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 7, 3))).to(tdtype)
    with torch.no_grad():
        h = x
        for m in modules:
            h = m(h)
            h = h[0] if isinstance(h, tuple) else h   # the documented rule
    assert_allclose(model(x.numpy())[0], h.numpy(), rtol=TOL[dtype], atol=TOL[dtype])


def test_linear_with_sigmoid_and_without_bias():
    torch.manual_seed(2)
    modules = nn.Sequential(nn.RNN(2, 3), nn.Linear(3, 1, bias=False), nn.Sigmoid())
    model = rnnx.from_torch(modules)
    assert model.layers[1].bias is False and model.layers[1].activation == "sigmoid"
    x = torch.randn(4, 2, 2)
    with torch.no_grad():
        want = torch.sigmoid(modules[1](modules[0](x)[0]))
    assert_allclose(model(x.numpy())[0], want.numpy(), rtol=1e-5, atol=1e-6)
    dense = rnnx.from_torch(nn.Linear(3, 2))
    assert isinstance(dense, rnnx.Dense)


def test_conversion_copies_the_parameters():
    module = nn.GRU(2, 3)
    layer = rnnx.from_torch(module)
    before = layer.state_dict()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    for name, value in layer.state_dict().items():
        assert np.array_equal(value, before[name]), name


def test_dropout_is_carried_when_rnnx_has_it():
    import inspect
    module = nn.LSTM(2, 3, num_layers=2, dropout=0.25)
    if "dropout" in inspect.signature(rnnx.LSTM).parameters:
        assert rnnx.from_torch(module).dropout == 0.25
    else:
        with pytest.warns(UserWarning, match="dropout=0.25 is not carried over"):
            layer = rnnx.from_torch(module)
        x = torch.randn(4, 1, 2)
        with torch.no_grad():
            want = module.eval()(x)[0]
        assert_allclose(layer(x.numpy())[0], want.numpy(), rtol=1e-5, atol=1e-6)


def test_what_rnnx_cannot_express_is_refused():
    assert rnnx.from_torch(nn.LSTM(2, 4, proj_size=2)).proj_size == 2   # loads (tests/test_proj.py)
    with pytest.raises(TypeError, match="Conv1d.* has no rnnx counterpart"):
        rnnx.from_torch(nn.Sequential(nn.GRU(2, 3), nn.Conv1d(3, 3, 1)))
    with pytest.raises(ValueError, match="must follow an nn.Linear"):
        rnnx.from_torch(nn.Sequential(nn.GRU(2, 3), nn.Tanh()))
    with pytest.raises(ValueError, match="dim=-1"):
        rnnx.from_torch(nn.Sequential(nn.GRU(2, 3), nn.Linear(3, 2), nn.Softmax(dim=1)))
    with pytest.raises(TypeError, match="float32 or float64"):
        rnnx.from_torch(nn.GRU(2, 3).half())
    with pytest.raises(TypeError, match="module must be"):
        rnnx.from_torch("LSTM")
    with pytest.raises(ValueError, match="at least one"):
        rnnx.from_torch([])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(rnnx.from_torch([nn.GRU(2, 3), nn.Identity()]), rnnx.GRU)


def test_import_rnnx_loads_no_peer_and_a_missing_peer_names_its_extra(monkeypatch, tmp_path):
    import subprocess
    import sys
    code = ("import sys, rnnx; peers = {'onnx', 'onnxruntime', 'torch', 'keras', 'jax'}; "
            "print(sorted(peers & set(sys.modules)))")
    # from an empty folder, so the installed rnnx is imported, as a user would
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert out.stdout.strip() == "[]"
    monkeypatch.setitem(sys.modules, "keras", None)     # import keras now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'rnnx\[keras\]'"):
        rnnx.to_keras(rnnx.GRU(2, 3))
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"rnnx\[onnx\]"):
        rnnx.to_onnx(rnnx.GRU(2, 3))

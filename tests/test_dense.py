"""Dense: forward against the formula, backward against float64 finite differences."""
import numpy as np
import pytest

from rnnx.dense import ACTIVATIONS, Dense
from shared import central_difference

STEP = 1e-6  # central differences: see test_losses.py for the tolerance reasoning


def numeric_grad(f, z, step=STEP):
    return central_difference(f, z, step)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradients(activation, logits, bias):
    rng = np.random.default_rng(3)
    layer = Dense(4, 3, activation=activation, bias=bias, dtype=np.float64, seed=0)
    x = rng.normal(size=(5, 2, 4))
    if activation == "relu":
        x += np.sign(x) * 0.1            # keep pre-activations away from the kink at 0
    weights = rng.normal(size=(5, 2, 3))

    def scalar():                        # L = sum(weights * y): dL/dy = weights
        return float(np.sum(weights * layer.forward(x, logits=logits)[0]))

    y, state, cache = layer.forward(x, logits=logits)
    dx, dstate0, grads = layer.backward(cache, weights)
    assert state is None and dstate0 is None
    assert set(grads) == set(layer.parameters())
    tol = dict(rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(dx, numeric_grad(scalar, x), **tol)
    for name, param in layer.parameters().items():
        np.testing.assert_allclose(grads[name], numeric_grad(scalar, param), **tol)


def test_dense_forward_formula_and_torch_layout():
    layer = Dense(3, 2, activation="softmax", dtype=np.float64, seed=1)
    x = np.random.default_rng(0).normal(size=(6, 3))
    params = layer.parameters()
    z = x @ params["weight"].T + params["bias"]
    np.testing.assert_allclose(layer.forward(x, logits=True)[0], z, rtol=1e-15)
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-14)
    assert params["weight"].shape == (2, 3) and params["bias"].shape == (2,)
    bound = 1 / np.sqrt(3)
    assert np.all(np.abs(params["weight"]) <= bound)


def test_dense_matches_torch_linear():
    torch = pytest.importorskip("torch")
    layer = Dense(5, 3, activation="sigmoid", dtype=np.float64, seed=2)
    linear = torch.nn.Linear(5, 3, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(layer.parameters()["weight"]))
        linear.bias.copy_(torch.from_numpy(layer.parameters()["bias"]))
    x = np.random.default_rng(1).normal(size=(4, 5))
    dy = np.random.default_rng(2).normal(size=(4, 3))
    xt = torch.from_numpy(x).requires_grad_(True)
    torch.sigmoid(linear(xt)).backward(torch.from_numpy(dy))
    y, _, cache = layer.forward(x)
    dx, _, grads = layer.backward(cache, dy)
    np.testing.assert_allclose(y, torch.sigmoid(linear(xt)).detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(grads["weight"], linear.weight.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(grads["bias"], linear.bias.grad.numpy(), rtol=1e-13)


def test_dense_state_dict_config_and_parameters_are_live():
    layer = Dense(3, 2, activation="tanh", dtype=np.float32, seed=0)
    clone = Dense(**layer.config())
    clone.load_state_dict(layer.state_dict())
    x = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(clone(x), layer(x))
    layer.parameters()["weight"][...] = 0
    assert np.all(layer.state_dict()["weight"] == 0)
    assert clone.config() == {"in_features": 3, "out_features": 2, "activation": "tanh",
                              "bias": True, "dtype": "float32"}
    assert layer(x).dtype == np.float32


def test_dense_errors():
    with pytest.raises(ValueError, match="activation must be one of"):
        Dense(2, 2, activation="elu")
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., 3\) for in_features=3, got \(4, 2\)"):
        Dense(3, 1)(np.zeros((4, 2), np.float32))
    with pytest.raises(TypeError, match="in_features must be an int"):
        Dense(2.5, 1)
    with pytest.raises(TypeError, match="dtype must be np.float32 or np.float64"):
        Dense(2, 1, dtype=np.int32)
    layer = Dense(2, 2)
    before = layer.state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['bias'\] must have shape \(2,\)"):
        layer.load_state_dict({"weight": np.zeros((2, 2)), "bias": np.zeros(3)})
    np.testing.assert_array_equal(layer.state_dict()["weight"], before["weight"])
    with pytest.raises(ValueError, match=r"missing keys \['bias'\]"):
        layer.load_state_dict({"weight": np.zeros((2, 2))})

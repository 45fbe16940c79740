"""Issue 9's holes in the Python layers, kept closed: the cache snapshots lengths and x,
a stale cache raises naming the change, Sequential.load_state_dict is all-or-nothing,
complex input is refused without a warning, and seed errors name seed."""
import warnings

import numpy as np
import pytest

import rnnx
from shared import VARIANTS


def make(variant, I, H, **kwargs):
    class_name, extra = VARIANTS[variant]
    return getattr(rnnx, class_name)(I, H, **extra, **kwargs)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cache_snapshots_lengths_and_x(variant):
    layer = make(variant, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 3))
    lengths = np.array([6, 2, 4])
    y, _, cache = layer.forward(x, lengths=lengths)
    dy = rng.standard_normal(y.shape)
    expected = layer.backward(layer.forward(x.copy(), lengths=lengths.copy())[2], dy)
    lengths[:] = [1, 6, 1]                      # the caller reuses its arrays
    x[:] = 7.0
    dx, dstate0, grads = layer.backward(cache, dy)
    np.testing.assert_array_equal(dx, expected[0])
    for name in grads:
        np.testing.assert_array_equal(grads[name], expected[2][name], err_msg=name)


def test_dense_cache_snapshots_x():
    dense = rnnx.Dense(3, 2, dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((4, 3))
    y, _, cache = dense.forward(x)
    expected = dense.backward(dense.forward(x.copy())[2], np.ones_like(y))[2]
    x[:] = 0
    grads = dense.backward(cache, np.ones_like(y))[2]
    np.testing.assert_array_equal(grads["weight"], expected["weight"])


def models():
    return [make(v, 3, 4, num_layers=2, dtype=np.float64, seed=1) for v in VARIANTS] + \
        [rnnx.Dense(3, 2, dtype=np.float64, seed=1),
         rnnx.Sequential(rnnx.LSTM(3, 4, dtype=np.float64, seed=1),
                         rnnx.Dense(4, 2, dtype=np.float64, seed=2))]


@pytest.mark.parametrize("model", models(), ids=lambda m: type(m).__name__)
def test_stale_cache_after_load_state_dict_raises(model):
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    y, _, cache = model.forward(x)
    model.load_state_dict(model.state_dict())           # even the same values: a new version
    with pytest.raises(ValueError, match=r"stale cache: load_state_dict\(\)"):
        model.backward(cache, np.ones_like(y))
    y, _, cache = model.forward(x)                       # a fresh forward works
    model.backward(cache, np.ones_like(y))


@pytest.mark.parametrize("model", models(), ids=lambda m: type(m).__name__)
def test_stale_cache_after_an_optimizer_step_raises(model):
    x = np.random.default_rng(3).standard_normal((5, 2, 3))
    optimizer = rnnx.SGD(model.parameters(), lr=0.1)
    y, _, cache = model.forward(x)
    _, _, grads = model.backward(cache, np.ones_like(y))
    optimizer.step(grads)                                # in place, through parameters()
    with pytest.raises(ValueError, match=r"stale cache: parameter '.*' .* changed in place"):
        model.backward(cache, np.ones_like(y))
    # one element changed by hand is caught too
    y, _, cache = model.forward(x)
    last = list(model.parameters().values())[-1]
    last.flat[-1] += 1e-12
    with pytest.raises(ValueError, match="changed in place"):
        model.backward(cache, np.ones_like(y))


def test_stale_cache_names_bump_version_and_foreign_caches():
    a, b = rnnx.GRU(2, 3, seed=0), rnnx.GRU(2, 3, seed=0)
    x = np.zeros((3, 1, 2), np.float32)
    y, _, cache = a.forward(x)
    with pytest.raises(ValueError, match="another layer's forward"):
        b.backward(cache, y)
    with pytest.raises(TypeError, match="cache must be the cache returned by forward"):
        a.backward((x, y), y)
    version = a.version
    a.bump_version()
    assert a.version == version + 1
    with pytest.raises(ValueError, match="stale cache"):
        a.backward(cache, y)


def test_sequential_load_state_dict_is_all_or_nothing():
    model = rnnx.Sequential(rnnx.LSTM(2, 3, seed=0), rnnx.GRU(3, 3, seed=1),
                            rnnx.Dense(3, 1, seed=2))
    before = model.state_dict()
    new = {k: np.full(v.shape, 0.5, v.dtype) for k, v in before.items()}
    cases = [({**new, "2.bias": np.array([np.nan], np.float32)}, ValueError,
              r"state\['2\.bias'\] has non-finite"),
             ({**new, "1.weight_hh_l0": np.zeros((2, 2))}, ValueError,
              r"state\['1\.weight_hh_l0'\] must have shape \(9, 3\)"),
             ({**new, "2.weight": new["2.weight"].astype(np.complex64)}, TypeError,
              r"state\['2\.weight'\] must be a real array"),
             ({k: v for k, v in new.items() if k != "2.bias"}, ValueError, r"missing \['2\.bias'\]")]
    for state, error, match in cases:
        with pytest.raises(error, match=match):
            model.load_state_dict(state)
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(value, before[name], err_msg=f"{name} changed")
    model.load_state_dict(new)
    assert all(np.all(v == 0.5) for v in model.state_dict().values())


@pytest.mark.parametrize("model", [rnnx.LSTM(2, 3), rnnx.Dense(2, 3),
                                   rnnx.Sequential(rnnx.GRU(2, 3), rnnx.Dense(3, 1))],
                         ids=["LSTM", "Dense", "Sequential"])
def test_complex_input_is_refused_without_a_warning(model):
    x = (np.ones((4, 1, 2)) + 1j).astype(np.complex64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match=r"x is complex \(complex64\)"):
            model(x)
        with pytest.raises(TypeError, match="is complex"):
            model.forward(x)
    if isinstance(model, rnnx.LSTM):
        y, _, cache = model.forward(np.ones((4, 1, 2), np.float32))
        with pytest.raises(TypeError, match="dy is complex"):
            model.backward(cache, y.astype(np.complex64))


@pytest.mark.parametrize("make_layer", [lambda seed: rnnx.RNN(2, 3, seed=seed),
                                        lambda seed: rnnx.LSTM(2, 3, seed=seed),
                                        lambda seed: rnnx.GRU(2, 3, seed=seed),
                                        lambda seed: rnnx.Dense(2, 3, seed=seed)],
                         ids=["RNN", "LSTM", "GRU", "Dense"])
def test_seed_errors_name_seed(make_layer):
    for bad in ("0", 1.5, [1, 2], True):
        with pytest.raises(TypeError, match=r"^seed must be None, an int >= 0 or a np\.random\."
                                            r"Generator, got"):
            make_layer(bad)
    with pytest.raises(ValueError, match=r"^seed must be >= 0, got -1"):
        make_layer(-1)
    same = [make_layer(np.int64(3)).state_dict(), make_layer(3).state_dict()]
    assert all(np.array_equal(same[0][k], same[1][k]) for k in same[0])
    make_layer(np.random.default_rng(0))                 # a Generator is accepted

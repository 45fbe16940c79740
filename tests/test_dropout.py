"""dropout between stacked recurrent layers, as PyTorch: on every layer's output but the
last, in the training forward only (inverted, scale 1/(1-p)), the mask kept in the cache
for backward, draws from layer.dropout_rng (seeded by seed)."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import rnnx
from shared import VARIANTS, central_difference


def make(variant, I, H, **kwargs):
    class_name, extra = VARIANTS[variant]
    return getattr(rnnx, class_name)(I, H, **extra, **kwargs)


def parts(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_inference_and_p0_equal_no_dropout(variant):
    kwargs = dict(num_layers=3, bidirectional=True, dtype=np.float64, seed=0)
    plain, dropped, zero = (make(variant, 3, 4, **kwargs), make(variant, 3, 4, dropout=0.5, **kwargs),
                            make(variant, 3, 4, dropout=0.0, **kwargs))
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    lengths = np.array([6, 3])
    y, state = plain(x, lengths=lengths)
    for other in (dropped, zero):
        y2, state2 = other(x, lengths=lengths)           # inference: identity
        np.testing.assert_array_equal(y2, y)
    y_train, _, cache = dropped.forward(x, lengths=lengths)
    assert not np.array_equal(y_train, y), "the training forward must drop"
    y0, _, cache0 = zero.forward(x, lengths=lengths)
    yp, _, cachep = plain.forward(x, lengths=lengths)
    np.testing.assert_array_equal(y0, yp)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    g0, gp = zero.backward(cache0, dy), plain.backward(cachep, dy)
    np.testing.assert_array_equal(g0[0], gp[0])
    assert all(np.array_equal(g0[2][k], gp[2][k]) for k in gp[2])
    # one layer: nothing to drop between layers
    with pytest.warns(UserWarning, match="does nothing with num_layers=1"):
        single = make(variant, 3, 4, dropout=0.9, dtype=np.float64, seed=0)
    np.testing.assert_array_equal(single.forward(x)[0], single(x)[0])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_forward_is_layers_with_the_mask_between(variant):
    """forward with dropout = layer 0, times the mask, into layer 1 (a one-layer twin each)."""
    p, I, H = 0.4, 3, 4
    layer = make(variant, I, H, num_layers=2, dropout=p, dtype=np.float64, seed=2)
    x = np.random.default_rng(2).standard_normal((5, 3, I))
    y, state, cache = layer.forward(x)
    masks = cache.data["masks"]
    assert len(masks) == 1 and masks[0].shape == (5, 3, H)
    assert set(np.unique(masks[0])) <= {0.0, 1 / (1 - p)}
    first, second = (make(variant, I if k == 0 else H, H, dtype=np.float64) for k in range(2))
    weights = layer.state_dict()
    for k, twin in enumerate((first, second)):
        twin.load_state_dict({name.replace(f"_l{k}", "_l0"): v for name, v in weights.items()
                              if f"_l{k}" in name})
    y0, s0 = first(x)
    y1, s1 = second(y0 * masks[0])
    np.testing.assert_array_equal(y, y1)
    for a, b0, b1 in zip(parts(state), parts(s0), parts(s1)):
        np.testing.assert_array_equal(a, np.concatenate([b0, b1]))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_backward_matches_finite_differences_with_the_fixed_mask(variant):
    T, B, I, H, L = 4, 2, 2, 3, 3
    layer = make(variant, I, H, num_layers=L, bidirectional=True, dropout=0.3,
                 dtype=np.float64, seed=3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, I))
    dy = rng.standard_normal((T, B, 2 * H))
    lengths = np.array([4, 2])

    def loss():
        layer.dropout_rng = np.random.default_rng(11)     # the same draws every time
        y, _, _ = layer.forward(x, lengths=lengths)
        return float(np.sum(y * dy))

    layer.dropout_rng = np.random.default_rng(11)
    y, _, cache = layer.forward(x, lengths=lengths)
    assert any(np.any(m == 0) for m in cache.data["masks"])
    dx, _, grads = layer.backward(cache, dy)
    tol = dict(rtol=1e-6, atol=1e-8)     # float64 central differences, as in test_layers
    assert_allclose(dx, central_difference(loss, x), **tol, err_msg="dx")
    for name, param in layer.parameters().items():
        # parameters() are live: perturbing them in place is what the loss sees
        numeric = central_difference(loss, param)
        assert_allclose(grads[name], numeric, **tol, err_msg=name)


def test_mask_statistics_and_reproducibility():
    p = 0.3
    layer = rnnx.LSTM(2, 50, num_layers=3, dropout=p, seed=4)
    x = np.zeros((20, 10, 2), np.float32)
    dropped = total = 0
    for _ in range(5):
        _, _, cache = layer.forward(x)
        for mask in cache.data["masks"]:
            assert mask.dtype == np.float32
            dropped += int(np.sum(mask == 0))
            total += mask.size
            kept = mask[mask != 0]
            np.testing.assert_allclose(kept, np.float32(1 / (1 - p)))
    # 100000 Bernoulli(p) draws: standard deviation of the fraction ~0.0015
    assert abs(dropped / total - p) < 0.008, dropped / total
    a, b, c = (rnnx.GRU(2, 6, num_layers=2, dropout=0.5, seed=s) for s in (7, 7, 8))
    x = np.ones((8, 3, 2), np.float32)
    ya, yb, yc = a.forward(x)[0], b.forward(x)[0], c.forward(x)[0]
    np.testing.assert_array_equal(ya, yb)                # the same seed, the same draws
    assert not np.array_equal(a.forward(x)[0], ya)       # the next draws differ
    c.load_state_dict(a.state_dict())
    c.dropout_rng = np.random.default_rng(0)
    assert not np.array_equal(c.forward(x)[0], ya)


def test_dropout_argument_is_checked_and_in_config():
    for bad in (1.0, -0.1, 2, np.nan):
        with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
            rnnx.LSTM(2, 3, num_layers=2, dropout=bad)
    for bad in ("0.5", None, True):
        with pytest.raises(TypeError, match="dropout must be a float"):
            rnnx.GRU(2, 3, num_layers=2, dropout=bad)
    layer = rnnx.RNN(2, 3, num_layers=2, dropout=0.25)
    assert layer.config()["dropout"] == 0.25
    assert type(layer)(**layer.config()).dropout == 0.25


def test_sequential_inference_has_no_dropout_and_training_does():
    model = rnnx.Sequential(rnnx.LSTM(2, 8, num_layers=2, dropout=0.5, dtype=np.float64, seed=0),
                            rnnx.Dense(8, 1, dtype=np.float64, seed=1))
    twin = rnnx.Sequential(rnnx.LSTM(2, 8, num_layers=2, dtype=np.float64, seed=0),
                           rnnx.Dense(8, 1, dtype=np.float64, seed=1))
    x = np.random.default_rng(5).standard_normal((6, 4, 2))
    np.testing.assert_array_equal(model.predict(x), twin.predict(x))
    np.testing.assert_array_equal(model(x, logits=True)[0], twin(x)[0])
    assert not np.array_equal(model.forward(x)[0], twin.forward(x)[0])

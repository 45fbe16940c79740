"""Optimizers against their textbook updates on hand-computable cases; clipping."""
import numpy as np
import pytest

from rnnx.optim import SGD, Adagrad, Adam, clip_grad_norm, clip_grad_value, global_norm


def test_sgd_is_w_minus_lr_grad():
    w = np.array([1.0, -2.0])
    SGD({"w": w}, lr=0.5).step({"w": np.array([2.0, 4.0])})
    np.testing.assert_array_equal(w, [0.0, -4.0])               # 1 - 0.5*2, -2 - 0.5*4


def test_sgd_momentum():
    w = np.array([1.0])
    opt = SGD({"w": w}, lr=0.1, momentum=0.9)
    opt.step({"w": np.array([1.0])})        # v = 1,          w = 1 - 0.1       = 0.9
    opt.step({"w": np.array([1.0])})        # v = 0.9 + 1,    w = 0.9 - 0.19    = 0.71
    opt.step({"w": np.array([0.0])})        # v = 0.9 * 1.9,  w = 0.71 - 0.171  = 0.539
    np.testing.assert_allclose(w, [0.539], rtol=1e-15)


def test_adam_first_steps():
    # step 1: m_hat = g, v_hat = g^2, so the step is lr * g/|g| = lr * sign(g) (eps aside)
    w = np.array([1.0, 1.0])
    opt = Adam({"w": w}, lr=0.1, eps=0.0)
    opt.step({"w": np.array([3.0, -0.01])})
    np.testing.assert_allclose(w, [0.9, 1.1], rtol=1e-15)
    # step 2 with g2 = 1 on the first entry: m = 0.9*0.3 + 0.1 = 0.37 ... written out:
    m = 0.9 * (0.1 * 3.0) + 0.1 * 1.0
    v = 0.999 * (0.001 * 9.0) + 0.001 * 1.0
    m_hat, v_hat = m / (1 - 0.9 ** 2), v / (1 - 0.999 ** 2)
    opt.step({"w": np.array([1.0, 0.0])})
    np.testing.assert_allclose(w[0], 0.9 - 0.1 * m_hat / np.sqrt(v_hat), rtol=1e-14)


def test_adagrad():
    w = np.array([0.0])
    opt = Adagrad({"w": w}, lr=1.0, eps=0.0)
    opt.step({"w": np.array([3.0])})        # G = 9,  w -= 3/3 = 1
    opt.step({"w": np.array([4.0])})        # G = 25, w -= 4/5
    np.testing.assert_allclose(w, [-1.8], rtol=1e-15)


def test_float32_parameters_updated_in_place():
    w = np.ones(3, np.float32)
    view = w
    Adam({"w": w}, lr=0.01).step({"w": np.ones(3, np.float32)})
    assert view is w and w.dtype == np.float32
    np.testing.assert_allclose(w, 0.99, rtol=1e-6)


def test_clip_grad_norm_and_value():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert global_norm(grads) == 5.0
    norm = clip_grad_norm(grads, 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])
    np.testing.assert_allclose(grads["b"], [[0.8]])
    assert clip_grad_norm(grads, 10.0) == pytest.approx(1.0)         # below: unchanged
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])
    grads = {"a": np.array([-3.0, 0.5, 2.0])}
    clip_grad_value(grads, 1.0)
    np.testing.assert_array_equal(grads["a"], [-1.0, 0.5, 1.0])


def test_optimizer_errors():
    w = np.zeros(2)
    with pytest.raises(ValueError, match=r"grads\['w'\] must have shape \(2,\), got \(3,\)"):
        SGD({"w": w}).step({"w": np.zeros(3)})
    with pytest.raises(ValueError, match="not parameters"):
        SGD({"w": w}).step({"v": np.zeros(2)})
    with pytest.raises(ValueError, match="lr must be finite and >= 0"):
        SGD({"w": w}, lr=-1)
    with pytest.raises(ValueError, match="momentum must be in"):
        SGD({"w": w}, momentum=1.0)
    with pytest.raises(TypeError, match="params must be a non-empty dict"):
        Adam([w])
    with pytest.raises(ValueError, match="max_norm must be finite and > 0"):
        clip_grad_norm({"w": w}, 0)


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: Adam(p),
                                  lambda p: Adagrad(p)])
def test_step_is_all_or_nothing(make):
    params = {"a": np.ones(3), "b": np.ones(2), "c": np.ones(2)}
    opt = make(params)
    opt.step({"a": np.ones(3), "b": np.ones(2)})
    before = {k: v.copy() for k, v in params.items()}
    state_before = repr(vars(opt))
    bad_grads = [({"a": np.ones(3), "b": np.ones(2), "c": np.ones(3)}, ValueError,
                  r"grads\['c'\] must have shape \(2,\), got \(3,\)"),
                 ({"a": np.ones(3), "b": np.ones(2), "c": np.ones(2) + 1j}, TypeError,
                  r"grads\['c'\] must be a real .*complex128"),
                 ({"a": np.ones(3), "c": np.array(["x", "y"])}, TypeError, r"grads\['c'\]")]
    for grads, error, message in bad_grads:
        with pytest.raises(error, match=message):
            opt.step(grads)
        for key, value in params.items():               # the earlier 'a' and 'b' untouched
            np.testing.assert_array_equal(value, before[key])
        assert repr(vars(opt)) == state_before and opt.steps == 1


def test_complex_parameters_refused():
    with pytest.raises(TypeError, match=r"params\['w'\] must be a float32/float64 ndarray"):
        SGD({"w": np.zeros(2, complex)})

"""Losses: value and gradient against float64 finite differences, and hand-computed values."""
import numpy as np
import pytest

from rnnx.losses import MSELoss, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy, get_loss
from shared import central_difference

# Central differences in float64 with step h = 1e-6 have truncation error ~h^2 |f'''| = 1e-12
# and rounding error ~eps |f| / h = 2e-10 |f|: the tolerance is 1e-7 relative plus 100x the
# rounding error in absolute terms (gradients of near-zero probabilities are tiny).
GRAD_RTOL = 1e-7
STEP = 1e-6


def numeric_grad(f, z, step=STEP):
    return central_difference(lambda: f(z), z, step)


def assert_gradient(loss, output, target, mask=None):
    value, grad = loss(output, target, mask)
    expected = numeric_grad(lambda z: loss(z, target, mask)[0], output.copy())
    atol = 100 * np.finfo(np.float64).eps * max(1.0, abs(value)) / STEP
    np.testing.assert_allclose(grad, expected, rtol=GRAD_RTOL, atol=atol)
    return value, grad


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("masked", [False, True])
def test_mse_gradient(reduction, masked):
    rng = np.random.default_rng(0)
    output, target = rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3, 2))
    mask = rng.random((5, 3)) > 0.3 if masked else None
    assert_gradient(MSELoss(reduction), output, target, mask)


def test_mse_matches_lecture_forms():
    output = np.array([[1.0, 2.0], [3.0, 5.0]])
    target = np.array([[0.0, 2.0], [1.0, 1.0]])
    # sum: C = sum_t 1/2 ||y_t - y_hat_t||^2 = 1/2 (1 + 0 + 4 + 16) = 10.5, gradient y_hat - y
    value, grad = MSELoss("sum")(output, target)
    assert value == 10.5
    np.testing.assert_array_equal(grad, output - target)
    # mean: 1/N sum (d - y)^2 = 21 / 4
    value, grad = MSELoss("mean")(output, target)
    assert value == 21 / 4
    np.testing.assert_array_equal(grad, 2 * (output - target) / 4)


def test_mse_mask_counts_only_valid_positions():
    output = np.array([[[1.0]], [[100.0]]])            # (T=2, B=1, 1)
    target = np.zeros((2, 1, 1))
    value, grad = MSELoss()(output, target, mask=np.array([[True], [False]]))
    assert value == 1.0
    assert grad[1, 0, 0] == 0.0


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("masked", [False, True])
def test_softmax_cross_entropy_gradient(reduction, masked):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 3, 5)) * 3
    target = rng.integers(0, 5, size=(4, 3))
    mask = rng.random((4, 3)) > 0.3 if masked else None
    assert_gradient(SoftmaxCrossEntropy(reduction), logits, target, mask)


def test_softmax_cross_entropy_values_and_stability():
    # uniform logits over C classes: -log(1/C)
    value, grad = SoftmaxCrossEntropy()(np.zeros((2, 4)), np.array([0, 3]))
    assert value == pytest.approx(np.log(4), rel=1e-15)
    np.testing.assert_allclose(grad, (np.full((2, 4), 0.25) - np.eye(4)[[0, 3]]) / 2)
    # huge logits: no overflow, exact answers
    value, grad = SoftmaxCrossEntropy("sum")(np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([0, 0]))
    assert value == pytest.approx(1000.0)
    assert np.all(np.isfinite(grad))
    # padding may hold any index when masked out
    value, _ = SoftmaxCrossEntropy()(np.zeros((2, 3)), np.array([1, -1]), mask=np.array([True, False]))
    assert value == pytest.approx(np.log(3))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("masked", [False, True])
def test_sigmoid_bce_gradient(reduction, masked):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 3, 2)) * 3
    target = rng.random((4, 3, 2))
    mask = rng.random((4, 3)) > 0.3 if masked else None
    assert_gradient(SigmoidBinaryCrossEntropy(reduction), logits, target, mask)


def test_sigmoid_bce_values_and_stability():
    value, _ = SigmoidBinaryCrossEntropy()(np.zeros((3, 1)), np.array([[0.0], [1.0], [1.0]]))
    assert value == pytest.approx(np.log(2), rel=1e-15)
    value, grad = SigmoidBinaryCrossEntropy("sum")(np.array([[-800.0, 800.0]]), np.array([[1.0, 0.0]]))
    assert value == pytest.approx(1600.0)
    np.testing.assert_allclose(grad, [[-1.0, 1.0]])


def test_float32_output_gives_float32_gradient():
    for loss, target in ((MSELoss(), np.zeros((2, 3))), (SoftmaxCrossEntropy(), np.array([0, 1])),
                         (SigmoidBinaryCrossEntropy(), np.zeros((2, 3)))):
        _, grad = loss(np.ones((2, 3), np.float32), target)
        assert grad.dtype == np.float32


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="target must have the output's shape"):
        MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="reduction must be one of"):
        MSELoss("avg")
    with pytest.raises(TypeError, match="target must be integer class indices"):
        SoftmaxCrossEntropy()(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        SoftmaxCrossEntropy()(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="mask must have shape"):
        MSELoss()(np.zeros((2, 3)), np.zeros((2, 3)), mask=np.ones(3))
    with pytest.raises(TypeError, match="output must be float32 or float64"):
        MSELoss()(np.zeros((2, 3), int), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="loss must be one of"):
        get_loss("hinge")
    assert isinstance(get_loss("mse"), MSELoss)


@pytest.mark.filterwarnings("error")        # a ComplexWarning (silent cast) would fail the test
@pytest.mark.parametrize("loss", [MSELoss(), SigmoidBinaryCrossEntropy(), SoftmaxCrossEntropy()])
def test_complex_arrays_are_refused_naming_the_argument(loss):
    output = np.zeros((3, 2, 4))
    target = np.zeros((3, 2), np.int64) if isinstance(loss, SoftmaxCrossEntropy) else np.zeros((3, 2, 4))
    with pytest.raises(TypeError, match=r"^output must be float32 or float64, got complex128"):
        loss(output + 0j, target)
    with pytest.raises(TypeError, match=r"^target must be .*complex128"):
        loss(output, target + 1j)
    with pytest.raises(TypeError, match=r"^mask must be .*complex128"):
        loss(output, target, np.ones((3, 2), complex))
    assert np.isfinite(loss(output, target)[0])

"""What the tests share: the layer variants under test, the central-difference gradient
the backward passes are checked against, and the closeness check used against the
reference and PyTorch."""
import numpy as np
from numpy.testing import assert_allclose

# variant name -> (layer class name, constructor keyword arguments)
VARIANTS = {
    "rnn_tanh": ("RNN", {"nonlinearity": "tanh"}),
    "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
    "lstm": ("LSTM", {}),
    "gru_reset_after": ("GRU", {"reset_after": True}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
}
TORCH_VARIANTS = ["rnn_tanh", "rnn_relu", "lstm", "gru_reset_after"]  # reset_after=False has no torch twin


def central_difference(evaluate, array, eps=1e-6):
    """d evaluate() / d array by (L(p + eps) - L(p - eps)) / 2 eps, element by element.

    array is perturbed in place and restored; evaluate() reads it and returns a
    scalar.  In float64 the truncation error is ~eps^2 and the rounding error
    ~1e-16 * |L| / eps, so eps = 1e-6 agrees with an exact gradient to ~1e-8."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = evaluate()
        array[index] = original - eps
        minus = evaluate()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def assert_close_scaled(actual, expected, dtype, rtol, atol, what=""):
    """actual is an ndarray of expected's shape and of dtype, and equals expected to rtol,
    with atol scaled by expected's largest magnitude (at least 1): a gradient summed over
    many steps is judged against the size of the terms it was summed from."""
    expected = np.asarray(expected)
    assert isinstance(actual, np.ndarray), f"{what}: expected an ndarray, got {type(actual)}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype} != {np.dtype(dtype)}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)

"""The central-difference gradient the tests check backward passes against."""
import numpy as np


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

"""Losses: each call returns (loss, gradient of the loss with respect to its first argument).

    loss_value, grad = loss(output, target, mask=None)

The output activation is fused into the loss where that is the numerically stable form:
SoftmaxCrossEntropy and SigmoidBinaryCrossEntropy take the logits (the output layer's
pre-activation) and their gradient is the famous (probabilities - target). Their attribute
`activation` names the activation they fuse, so the training loop asks the model for its
logits; MSELoss fuses nothing (activation "identity") and takes the model's output as is.

mask (optional) marks which positions count, e.g. the valid steps of padded sequences or the
steps of a truncated-BPTT window that carry a loss. Its shape is the output's shape less the
last (feature/class) axis, e.g. (T, B) for a (T, B, F) output. Masked-out positions add
nothing to the loss and get a zero gradient; "mean" divides by the number of positions that
count, not by all of them.

No clipping or other rescaling happens here: the gradient is exactly that of the loss, so a
finite-difference check holds. Clipping belongs to the training loop.
"""
import numpy as np
from scipy.special import expit, log_softmax, softmax

REDUCTIONS = ("mean", "sum")


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def _float_output(output):
    output = np.asarray(output)
    if output.dtype not in (np.float32, np.float64):
        raise TypeError(f"output must be float32 or float64, got {output.dtype}")
    if output.ndim < 1:
        raise ValueError(f"output must have at least one axis (features), got shape {output.shape}")
    return output


def _real_target(target):
    """target as an array of real numbers (bool, int or float), or TypeError: a complex target
    would otherwise be cast silently to its real part."""
    target = np.asarray(target)
    if target.dtype.kind not in "biuf":
        raise TypeError(f"target must be a real (bool, int or float) array, got dtype {target.dtype}")
    return target


def _position_mask(mask, shape):
    """mask as a float array of `shape` (the positions), or None when everything counts."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype.kind not in "biuf":
        raise TypeError(f"mask must be a bool or real array, got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"mask must have shape {tuple(shape)} (the output's shape less its "
                         f"last axis), got {mask.shape}")
    return mask.astype(np.float64)


class MSELoss:
    """Squared error.

    reduction="sum":  L = 1/2 * sum_t sum_b ||y_hat - y||^2    (the lectures' C = sum_t C_t,
                      C_t = 1/2 ||y_t - y_hat_t||^2), gradient  y_hat - y.
    reduction="mean": L = 1/N * sum (y_hat - y)^2 over the N elements that count (the
                      lectures' E = 1/T sum_t (d(t) - y(t))^2 for one output), gradient
                      2 (y_hat - y) / N.
    The two differ by the factor 2/N only, so they lead to the same minimum; "sum" needs a
    learning rate about N/2 times smaller.

    Parameters
    ----------
    reduction : {"mean", "sum"}, default "mean"
    """
    activation = "identity"

    def __init__(self, reduction="mean"):
        self.reduction = _check_reduction(reduction)

    def __repr__(self):
        return f"MSELoss(reduction={self.reduction!r})"

    def __call__(self, output, target, mask=None):
        """The loss and its gradient.

        Parameters
        ----------
        output : ndarray of float32 or float64, shape (..., F)
            The model's output.
        target : ndarray
            Same shape as output, real.
        mask : array of bool or float, shape (...), optional
            Which positions count (the output's shape less its last axis); None: all.

        Returns
        -------
        loss : float
        grad : ndarray, like `output` (same dtype)
            The gradient of the loss with respect to `output`, exact (no clipping).

        Raises
        ------
        TypeError
            If an array is complex or otherwise not real.
        ValueError
            If a shape does not match.
        """
        output = _float_output(output)
        target = _real_target(target)
        if target.shape != output.shape:
            raise ValueError(f"target must have the output's shape {output.shape}, got {target.shape}")
        diff = output.astype(np.float64) - target                 # y_hat - y
        weight = _position_mask(mask, output.shape[:-1])
        if weight is not None:
            diff *= weight[..., None]
        if self.reduction == "sum":
            loss = 0.5 * np.sum(diff * diff)
            grad = diff
        else:
            count = output.size if weight is None else weight.sum() * output.shape[-1]
            count = max(count, 1)
            loss = np.sum(diff * diff) / count
            grad = diff * (2.0 / count)
        return float(loss), grad.astype(output.dtype)


class SoftmaxCrossEntropy:
    """Cross-entropy of softmax(logits) against integer class indices, softmax fused.

    L = -sum log softmax(z)[target] over the positions that count ("sum"), or that divided
    by their number ("mean"). Gradient: softmax(z) - onehot(target) (divided likewise).
    logits (..., C), target (...) integers in [0, C).

    Parameters
    ----------
    reduction : {"mean", "sum"}, default "mean"
    """
    activation = "softmax"

    def __init__(self, reduction="mean"):
        self.reduction = _check_reduction(reduction)

    def __repr__(self):
        return f"SoftmaxCrossEntropy(reduction={self.reduction!r})"

    def __call__(self, logits, target, mask=None):
        """The loss and its gradient.

        Parameters
        ----------
        logits : ndarray of float32 or float64, shape (..., F)
            The last layer's pre-activation (C classes).
        target : ndarray
            Integer class indices in [0, C), shape (...).
        mask : array of bool or float, shape (...), optional
            Which positions count (the output's shape less its last axis); None: all.

        Returns
        -------
        loss : float
        grad : ndarray, like `logits` (same dtype)
            The gradient of the loss with respect to `logits`, exact (no clipping).

        Raises
        ------
        TypeError
            If an array is complex or otherwise not real.
        ValueError
            If a shape does not match.
        """
        logits = _float_output(logits)
        target = _real_target(target)
        if target.dtype.kind not in "iu":
            raise TypeError(f"target must be integer class indices, got dtype {target.dtype}")
        if target.shape != logits.shape[:-1]:
            raise ValueError(f"target must have shape {logits.shape[:-1]} (the logits' shape less "
                             f"the class axis), got {target.shape}")
        classes = logits.shape[-1]
        weight = _position_mask(mask, target.shape)
        if weight is not None:                      # padding may hold any index, e.g. -1
            target = np.where(weight > 0, target, 0)
        if target.size and (target.min() < 0 or target.max() >= classes):
            raise ValueError(f"target must hold class indices in [0, {classes}), got values in "
                             f"[{target.min()}, {target.max()}]")
        z = logits.astype(np.float64)
        log_p = log_softmax(z, axis=-1)                            # log-sum-exp, shifted
        picked = np.take_along_axis(log_p, target[..., None], axis=-1)[..., 0]
        grad = softmax(z, axis=-1)
        np.put_along_axis(grad, target[..., None],
                          np.take_along_axis(grad, target[..., None], axis=-1) - 1.0, axis=-1)
        if weight is None:
            loss, count = -np.sum(picked), max(target.size, 1)
        else:
            loss, count = -np.sum(picked * weight), max(weight.sum(), 1)
            grad *= weight[..., None]
        if self.reduction == "mean":
            loss, grad = loss / count, grad / count
        return float(loss), grad.astype(logits.dtype)


class SigmoidBinaryCrossEntropy:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], sigmoid fused.

    L = sum [softplus(z) - y z] = -sum [y log s + (1-y) log(1-s)], s = sigmoid(z), over the
    elements that count ("sum"), or that divided by their number ("mean").
    Gradient: sigmoid(z) - y (divided likewise). logits and target have the same shape.

    Parameters
    ----------
    reduction : {"mean", "sum"}, default "mean"
    """
    activation = "sigmoid"

    def __init__(self, reduction="mean"):
        self.reduction = _check_reduction(reduction)

    def __repr__(self):
        return f"SigmoidBinaryCrossEntropy(reduction={self.reduction!r})"

    def __call__(self, logits, target, mask=None):
        """The loss and its gradient.

        Parameters
        ----------
        logits : ndarray of float32 or float64, shape (..., F)
            The last layer's pre-activation.
        target : ndarray
            Same shape as logits, values in [0, 1].
        mask : array of bool or float, shape (...), optional
            Which positions count (the output's shape less its last axis); None: all.

        Returns
        -------
        loss : float
        grad : ndarray, like `logits` (same dtype)
            The gradient of the loss with respect to `logits`, exact (no clipping).

        Raises
        ------
        TypeError
            If an array is complex or otherwise not real.
        ValueError
            If a shape does not match.
        """
        logits = _float_output(logits)
        target = _real_target(target)
        if target.shape != logits.shape:
            raise ValueError(f"target must have the logits' shape {logits.shape}, got {target.shape}")
        z = logits.astype(np.float64)
        y = target.astype(np.float64)
        # softplus(z) - y z, with softplus(z) = max(z, 0) + log1p(exp(-|z|)): no overflow
        elementwise = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))) - y * z
        grad = expit(z) - y
        weight = _position_mask(mask, logits.shape[:-1])
        if weight is None:
            count = max(logits.size, 1)
        else:
            elementwise = elementwise * weight[..., None]
            grad *= weight[..., None]
            count = max(weight.sum() * logits.shape[-1], 1)
        loss = np.sum(elementwise)
        if self.reduction == "mean":
            loss, grad = loss / count, grad / count
        return float(loss), grad.astype(logits.dtype)


LOSSES = {"mse": MSELoss, "softmax_cross_entropy": SoftmaxCrossEntropy,
          "sigmoid_binary_cross_entropy": SigmoidBinaryCrossEntropy}


def get_loss(loss):
    """A loss object from itself or its name.

    Parameters
    ----------
    loss : str or loss object
        "mse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy", or an object with
        ``__call__(output, target, mask)`` and an ``activation`` attribute.

    Returns
    -------
    loss object
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)} or a loss object, got {loss!r}")
        return LOSSES[loss]()
    if not callable(loss) or not hasattr(loss, "activation"):
        raise TypeError(f"loss must be a loss name or an object like rnnx.MSELoss(), got "
                        f"{type(loss).__name__}")
    return loss

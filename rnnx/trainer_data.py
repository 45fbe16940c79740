"""What the Trainer checks and cuts of its data: the axes of x and y, their shapes and
dtypes, lengths, the bptt option, the windows of truncated BPTT and the loss mask."""
import numpy as np

from .losses import SoftmaxCrossEntropy
from .module import as_array


def parse_bptt(bptt):
    if bptt is None:
        return None
    if isinstance(bptt, (int, np.integer)) and not isinstance(bptt, bool):
        bptt = (int(bptt), int(bptt))
    if (not isinstance(bptt, (tuple, list)) or len(bptt) != 2
            or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in bptt)):
        raise TypeError(f"bptt must be None, an int k or a pair (k1, k2) of ints, got {bptt!r}")
    k1, k2 = int(bptt[0]), int(bptt[1])
    if k1 < 1 or k2 < k1:
        raise ValueError(f"bptt=(k1, k2) must have 1 <= k1 <= k2, got ({k1}, {k2})")
    return k1, k2


def time_slice(a, t0, t1, axis):
    return a[t0:t1] if axis == 0 else a[:, t0:t1]


def segment_lengths(lengths, t0, t1):
    """Lengths of the rows inside [t0, t1): None when every row is valid throughout. Rows
    that ended before t0 get length 0: they run no step and carry their state."""
    if lengths is None or lengths.min() >= t1:
        return None
    return np.clip(lengths - t0, 0, t1 - t0)


def axes(model):
    """(batch axis of x, time axis of x or None, batch axis of y)."""
    if not model.is_recurrent:
        return 0, None, 0
    if model.batch_first:
        return 0, 1, 0
    return 1, 0, (0 if model.many_to_one else 1)


def check_data(model, loss, x, y, lengths):
    """(x, y, lengths) checked for model and loss: x of the model's dtype (or its ids), y
    shaped like the model's output (class indices for SoftmaxCrossEntropy), lengths (N,)."""
    x, y = as_array(x, "x"), as_array(y, "y")
    for name, value in (("x", x), ("y", y)):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real (float, int or bool) array, got dtype "
                            f"{value.dtype}")
    batch_axis, time_axis, y_batch_axis = axes(model)
    ids = getattr(model, "takes_ids", False)      # an Embedding first: x is integer ids
    want = (3 if model.is_recurrent else 2) - ids
    if x.ndim != want:
        layout = ("(N, T, I)" if model.batch_first else "(T, N, I)") if model.is_recurrent \
            else "(N, I)"
        if ids:
            layout = layout.replace(", I)", ")") + " integer ids"
        raise ValueError(f"x must be {layout} with I={model.input_size}, got shape {x.shape}"
                         if not ids else f"x must be {layout}, got shape {x.shape}")
    if ids:
        x = model.layers[0].check_ids(x)             # integers in [0, num_embeddings)
    else:
        x = x.astype(model.dtype, copy=False)
        if x.shape[-1] != model.input_size:
            raise ValueError(f"x must have {model.input_size} features in its last axis, "
                             f"got {x.shape}")
    N = x.shape[batch_axis]
    if N == 0:
        raise ValueError(f"x must hold at least one sequence (N >= 1 along axis {batch_axis}), "
                         f"got shape {x.shape}")
    if time_axis is not None and x.shape[time_axis] == 0:
        raise ValueError(f"x must have at least one time step (T >= 1 along axis "
                         f"{time_axis}), got shape {x.shape}")
    if y.ndim <= y_batch_axis or y.shape[y_batch_axis] != N:
        raise ValueError(f"y must have the {N} sequences of x along axis {y_batch_axis}, got "
                         f"shape {y.shape}")
    if time_axis is not None and not model.many_to_one:
        if y.ndim < 2 or y.shape[time_axis] != x.shape[time_axis]:
            raise ValueError(f"y must have the {x.shape[time_axis]} steps of x along axis "
                             f"{time_axis}, got shape {y.shape}")
    if not isinstance(loss, SoftmaxCrossEntropy):   # targets like the output
        out_axes = 1 if (model.many_to_one or time_axis is None) else 2
        want = y.shape[:out_axes] + (model.output_size,)
        if y.shape != want:
            raise ValueError(f"y must be {want} for this model's {model.output_size} "
                             f"outputs and {type(loss).__name__}, got shape {y.shape}")
    if lengths is not None:
        if time_axis is None:
            raise ValueError("lengths applies to recurrent models only, got lengths for a "
                             "model of Dense layers")
        lengths = np.asarray(lengths)
        T = x.shape[time_axis]
        if lengths.shape != (N,) or lengths.dtype.kind not in "iu":
            raise ValueError(f"lengths must be integers of shape ({N},), got "
                             f"{lengths.dtype} {lengths.shape}")
        if N and (lengths.min() < 0 or lengths.max() > T):
            raise ValueError(f"lengths must lie in [0, T={T}], got min {lengths.min()}, "
                             f"max {lengths.max()}")
    return x, y, lengths


def loss_mask(model, steps, batch, loss_from, lengths, t0):
    """Mask (positions of the window: (T, B) or (B, T)) of the steps that carry a loss:
    window steps >= loss_from that are valid for their row. None when all count."""
    if loss_from == 0 and lengths is None:
        return None
    t = np.arange(t0, t0 + steps)
    mask = np.broadcast_to((t >= t0 + loss_from)[:, None], (steps, batch))
    if lengths is not None:
        mask = mask & (t[:, None] < lengths[None, :])
    return mask.T if model.batch_first else mask


def check_validation(model, loss, validation, early_stopping):
    """fit's validation=(x, y[, lengths]) checked like its data (or None), and its
    early_stopping patience, which needs it."""
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
            raise TypeError("validation must be a tuple (x_val, y_val) or (x_val, y_val, "
                            f"lengths_val), got {type(validation).__name__}")
        try:
            validation = check_data(model, loss, *validation,
                                    *(() if len(validation) == 3 else (None,)))
        except (TypeError, ValueError) as error:
            raise type(error)(f"validation=(x, y[, lengths]): {error}") from error
    if early_stopping is not None:
        if isinstance(early_stopping, bool) or not isinstance(early_stopping, (int, np.integer)) \
                or early_stopping < 1:
            raise ValueError(f"early_stopping must be None or a patience, an int >= 1, got "
                             f"{early_stopping!r}")
        if validation is None:
            raise ValueError("early_stopping needs validation=(x_val, y_val): it watches the "
                             "validation loss")
    return validation

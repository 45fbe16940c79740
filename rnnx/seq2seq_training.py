"""How rnnx.Trainer trains an rnnx.Seq2Seq: whole sequences, teacher forced.

    trainer = rnnx.Trainer(seq2seq, rnnx.SoftmaxCrossEntropy(), rnnx.Adam(seq2seq.parameters()))
    trainer.fit((src, tgt_in), tgt_out, lengths=(src_lengths, tgt_lengths), epochs=10,
                batch_size=64)
    trainer.evaluate((src, tgt_in), tgt_out, lengths=(src_lengths, tgt_lengths))

src (T_src, N, ...) and tgt_in (T_tgt, N, ...) hold N pairs along axis 1; tgt_out is
(T_tgt, N) class indices for SoftmaxCrossEntropy, else (T_tgt, N, out). lengths is None or a
pair, either part None or (N,) ints: source steps past src_lengths are padding (the encoder
hands over each row's state at its last valid step) and target steps past tgt_lengths carry
no loss. One update per mini-batch, full BPTT through decoder and encoder (bptt must be None).
"""
import numpy as np

from . import trainer_loop
from .directions import using_workspace
from .losses import SoftmaxCrossEntropy


def _check_lengths(value, name, N, T):
    if value is None:
        return None
    value = np.asarray(value)
    if value.shape != (N,) or value.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers of shape ({N},), got {value.dtype} "
                         f"{value.shape}")
    if value.min() < 0 or value.max() > T:
        raise ValueError(f"{name} must lie in [0, {T}], got min {value.min()}, max "
                         f"{value.max()}")
    return value


def check_data(trainer, x, y, lengths):
    """(src, tgt_in, tgt_out, src_lengths, tgt_lengths), checked; N along axis 1."""
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise TypeError(f"x must be the pair (src, tgt_in) for a Seq2Seq, got "
                        f"{type(x).__name__}")
    src, tgt_in = np.asarray(x[0]), np.asarray(x[1])
    y = np.asarray(y)
    for name, value in (("x[0] (src)", src), ("x[1] (tgt_in)", tgt_in), ("y", y)):
        if value.ndim < 2 or value.shape[1] == 0 or value.shape[0] == 0:
            raise ValueError(f"{name} must be time-major (T, N, ...) with T >= 1 and N >= 1, "
                             f"got shape {value.shape}")
    N, T_tgt = src.shape[1], tgt_in.shape[0]
    if tgt_in.shape[1] != N or y.shape[:2] != (T_tgt, N):
        raise ValueError(f"src, tgt_in and y must hold the same N={N} pairs along axis 1, and "
                         f"y the {T_tgt} steps of tgt_in: got src {src.shape}, tgt_in "
                         f"{tgt_in.shape}, y {y.shape}")
    model = trainer.model
    if not isinstance(trainer.loss, SoftmaxCrossEntropy) and y.shape != (T_tgt, N,
                                                                         model.output_size):
        raise ValueError(f"y must be ({T_tgt}, {N}, {model.output_size}) for this model's "
                         f"{model.output_size} outputs and {type(trainer.loss).__name__}, got "
                         f"{y.shape}")
    if lengths is None:
        lengths = (None, None)
    if not isinstance(lengths, (tuple, list)) or len(lengths) != 2:
        raise TypeError(f"lengths must be None or the pair (src_lengths, tgt_lengths) for a "
                        f"Seq2Seq, got {type(lengths).__name__}")
    return (src, tgt_in, y, _check_lengths(lengths[0], "lengths[0] (src_lengths)", N,
                                           src.shape[0]),
            _check_lengths(lengths[1], "lengths[1] (tgt_lengths)", N, T_tgt))


def _mask(tgt_lengths, T):
    """(T, B) True where a target step carries a loss, or None for all."""
    if tgt_lengths is None:
        return None
    return np.arange(T)[:, None] < tgt_lengths[None, :]


def _rows(data, rows):
    src, tgt_in, y, src_lengths, tgt_lengths = data
    return (np.take(src, rows, axis=1), np.take(tgt_in, rows, axis=1), np.take(y, rows, axis=1),
            None if src_lengths is None else src_lengths[rows],
            None if tgt_lengths is None else tgt_lengths[rows])


def _update(trainer, batch, where):
    model = trainer.model
    src, tgt_in, y, src_lengths, tgt_lengths = batch
    output, _, cache = model.forward(src, tgt_in, src_lengths, tgt_lengths,
                                     logits=trainer.loss.activation != "identity")
    mask = _mask(tgt_lengths, tgt_in.shape[0])
    value, grad = trainer.loss(output, y, mask)
    count = int(np.prod(output.shape[:-1])) if mask is None else int(mask.sum())
    trainer_loop.check_loss(trainer, value, where)
    _, _, grads = model.backward(cache, grad)
    return trainer_loop.step(trainer, value, grads, count, where)


def fit(trainer, x, y, lengths, epochs, batch_size, shuffle, callback, validation):
    """Trainer.fit for a Seq2Seq (see the module docstring); the history of Trainer.fit."""
    data = check_data(trainer, x, y, lengths)
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
            raise TypeError("validation must be a tuple ((src, tgt_in), tgt_out) or ((src, "
                            f"tgt_in), tgt_out, lengths), got {type(validation).__name__}")
        validation = tuple(validation) + (None,) * (3 - len(validation))
        check_data(trainer, *validation)
    N = data[0].shape[1]
    batch_size, n_batches = trainer_loop.batches(batch_size, N)
    if trainer.comm is not None:    # a rank with more updates would wait for the others forever
        from .mpi import check_same
        check_same(trainer.comm, batches=n_batches, epochs=epochs)

    def batch_updates(rows, where):
        """One update on the pairs `rows`."""
        with using_workspace(trainer._workspace()):
            value, grads, norm, count = _update(trainer, _rows(data, rows), where)
        yield value, norm, grads, count

    return trainer_loop.run(trainer, epochs, N, batch_size, n_batches, shuffle, batch_updates,
                            1, callback, validation)


def evaluate(trainer, x, y, lengths=None):
    """Trainer.evaluate for a Seq2Seq: the loss on ((src, tgt_in), tgt_out), inference."""
    src, tgt_in, y, src_lengths, tgt_lengths = check_data(trainer, x, y, lengths)
    output = trainer.model(src, tgt_in, src_lengths, tgt_lengths,
                           logits=trainer.loss.activation != "identity")
    return trainer.loss(output, y, _mask(tgt_lengths, tgt_in.shape[0]))[0]

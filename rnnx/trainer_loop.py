"""The Trainer's epoch loop, one for every kind of model: each epoch the N sequences in
mini-batches (shuffled with the trainer's seed), the updates of each batch, the history,
the progress bar, the callback's stop, the validation loss and early stopping; and what
every update does with its loss and gradients (checked, summed over the MPI ranks,
clipped, applied).

How a batch becomes updates is the caller's: rnnx.trainer cuts it into the windows of
truncated BPTT (one update each), rnnx.seq2seq_training makes one teacher-forced update.
"""
import sys

import numpy as np

from .optim import clip_grad_norm, clip_grad_value, global_norm
from .progress import Progress


class NonFiniteLossError(FloatingPointError):
    """Raised by ``Trainer.fit`` when the loss or the global gradient norm becomes NaN or
    infinite; the message names the update (epoch, batch, time steps). The update that
    met it is not applied."""


def batches(batch_size, N):
    """(batch_size, number of mini-batches) for N sequences; None means all N at once."""
    if batch_size is None or batch_size >= N:
        return N, 1
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be None or an int >= 1, got {batch_size!r}")
    return batch_size, -(-N // batch_size)


def run(trainer, epochs, N, batch_size, n_batches, shuffle, batch_updates, updates_per_batch,
        callback, validation, early_stopping=None):
    """Trainer.fit's loop and its history (see Trainer.fit).

    batch_updates(rows, where) trains on the sequences `rows` (indices into the N) and
    yields, after each of its updates, (loss, gradient norm before clipping, gradients,
    positions in the loss); `where` names the epoch and batch for its error messages.
    It is not resumed once the callback asks to stop. updates_per_batch sizes the
    progress bar. validation is None or a checked (x, y, lengths) for trainer.evaluate."""
    enabled = trainer.progress if trainer.progress is not None else sys.stderr.isatty()
    bar = Progress(bool(enabled), epochs * n_batches * updates_per_batch)
    history = {"loss": [], "step_loss": [], "grad_norm": [], "lr": []}
    if validation is not None:
        history["val_loss"] = []
    best = None                                  # (val loss, epoch index, weights)
    mean_reduction = getattr(trainer.loss, "reduction", "mean") == "mean"
    stop = stopped_early = False
    try:
        for epoch in range(epochs):
            history["lr"].append(trainer.optimizer.lr)
            order = trainer.rng.permutation(N) if (shuffle and n_batches > 1) else np.arange(N)
            total, weight = 0.0, 0
            for batch in range(n_batches):
                rows = order[batch * batch_size:(batch + 1) * batch_size]
                for value, norm, grads, count in batch_updates(
                        rows, f"epoch {epoch + 1}, batch {batch + 1}"):
                    total += value * count if mean_reduction else value
                    weight += count
                    bar.update(epoch + 1, epochs, value)
                    stop = _record(trainer, history, epoch, value, norm, grads, callback)
                    if stop:
                        break
                if stop:
                    break
            history["loss"].append(total / max(weight, 1) if mean_reduction else total)
            if stop:
                break
            _end_epoch(trainer, history, validation)
            if early_stopping is not None:
                if best is None or history["val_loss"][-1] < best[0]:
                    best = (history["val_loss"][-1], epoch, {
                        name: value.copy() for name, value in trainer.model.state_dict().items()})
                elif epoch - best[1] >= early_stopping:
                    stopped_early = True
                    break
    finally:
        bar.close()
    if best is not None:
        trainer.model.load_state_dict(best[2])
        history["best_epoch"] = best[1]
        history["stopped_early"] = stopped_early
    return history


def _record(trainer, history, epoch, value, norm, grads, callback):
    """Note an update in history; True when the callback asks to stop."""
    history["step_loss"].append(value)
    history["grad_norm"].append(norm)
    return callback is not None and callback({
        "epoch": epoch, "update": trainer.updates, "loss": value, "grad_norm": norm,
        "grads": grads}) is True


def _end_epoch(trainer, history, validation):
    """Count a complete epoch, step the schedule, note the validation loss."""
    trainer.epochs += 1
    if trainer.scheduler is not None:
        trainer.scheduler.step()
    if validation is not None:
        history["val_loss"].append(trainer.evaluate(*validation))


def _non_finite_loss(trainer, value, where):
    return NonFiniteLossError(f"the loss became {value} at update {trainer.updates + 1} "
                              f"({where}); lower the learning rate or set clip_norm")


def check_loss(trainer, value, where):
    """A NaN or infinite loss raises before backward (under MPI, once summed: step)."""
    if not np.isfinite(value) and trainer.comm is None:
        raise _non_finite_loss(trainer, value, where)


def step(trainer, value, grads, count, where):
    """One update from the gradients of a batch's loss: combined over the ranks, checked,
    clipped, applied. Returns (loss, gradients, gradient norm before clipping, positions
    in the loss), the loss, gradients and count over all ranks."""
    if trainer.comm is not None:  # every rank's part, summed in rank order: the whole batch's
        from .mpi import combine
        value, grads, count = combine(trainer.comm, value, grads, count, getattr(
            trainer.loss, "reduction", "mean") == "mean")
        if not np.isfinite(value):
            raise _non_finite_loss(trainer, value, where)
    trainer.model._grads = grads
    norm = clip_grad_norm(grads, trainer.clip_norm) if trainer.clip_norm else global_norm(grads)
    if not np.isfinite(norm):
        raise NonFiniteLossError(f"the gradient norm became {norm} at update "
                                 f"{trainer.updates + 1} ({where}), loss {value:.6g}; "
                                 "lower the learning rate or set clip_norm")
    if trainer.clip_value:
        clip_grad_value(grads, trainer.clip_value)
    trainer.optimizer.step(grads)
    trainer.updates += 1
    return value, grads, norm, int(count)

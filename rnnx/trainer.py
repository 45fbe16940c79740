"""Trainer: the training loop, with full or truncated backpropagation through time.

    trainer = rnnx.Trainer(model, rnnx.MSELoss(), rnnx.Adam(model.parameters(), lr=1e-2),
                           bptt=(k1, k2), clip_norm=1.0, seed=0)
    history = trainer.fit(x, y, epochs=20)          # {"loss": [...per epoch], ...}

Truncated BPTT(k1, k2), k2 >= k1 (Williams & Peng 1990): every k1 new steps, one update that
backpropagates through the last k2 steps, with the loss on the k1 new steps only. The window
[a - (k2 - k1), b) of an update whose new steps are [a, b) is re-run forward, with the current
weights, from the state carried from the previous update (the state at the window's start, as
the previous forward computed it). That state is a plain array: no gradient crosses it.
    k1 = k2 = k : the chunked form (cut the sequence in chunks of k, carry the state)
    k1 = k2 = 1 : Elman's online learning (an update after every step)
    bptt=None  : full BPTT, one update per batch of whole sequences
A forward over a window runs in two calls when k2 > k1, [a - m, b - m) then [b - m, b) with
m = k2 - k1, so that the state at b - m, where the next window starts, is at hand; backward
runs through the two in reverse, handing the state gradient from one to the other. There is
no per-time-step Python: every forward and backward covers a whole segment.

Data are batches of sequences, time-major like the layers ((T, N, I); (N, T, I) when the
model's layers are batch_first). The N sequences are either independent (mini-batches of
batch_size are drawn from them, shuffled with `seed`) or parallel streams of one long
sequence (batch_size=None: all N in one batch, e.g. a text cut in N pieces). Targets:
(T, N, O) for a many-to-many model ((T, N) class indices for SoftmaxCrossEntropy), (N, O)
or (N,) for a many-to-one model. A model of Dense layers only takes (N, I) and (N, O).

reset_state says when the carried state returns to zeros:
    "sequence" (default)  at the start of every batch of sequences (so every epoch when
                          the batch is all the streams): independent sequences never share
                          a state, but the chunks of one sequence do.
    "never"               the state runs on across epochs (one batch of streams only).
    "chunk"               at every update: no state is carried (an ablation: the model
                          then cannot use anything from before the window).
"""
import warnings

import numpy as np

from . import trainer_checkpoint
from .trainer_checkpoint import (  # noqa: F401 (rnnx.trainer's names, as before)
    CARRIED_PREFIX, CHECKPOINT_FORMAT, CHECKPOINT_KEY, OPTIMIZER_PREFIX)
from .losses import get_loss
from .lr_scheduler import LRScheduler
from ._runtime import holding_blas
from .directions import using_workspace
from .model import Sequential
from .seq2seq import Seq2Seq
from . import seq2seq_training, trainer_loop
from .trainer_loop import NonFiniteLossError  # noqa: F401 (rnnx.trainer's name, as before)
from .optim import OPTIMIZERS, Adam, Optimizer
from .trainer_data import axes, check_data, check_validation, loss_mask, parse_bptt, \
    segment_lengths, time_slice

RESET_STATES = ("sequence", "never", "chunk")


class Trainer:
    """Trains a model (an rnnx.Sequential or a single layer) with a loss and an optimizer.

    Parameters
    ----------
    model : rnnx.Sequential, rnnx.Seq2Seq or rnnx layer
        The model; a single layer is wrapped into a Sequential (``trainer.model``). A
        Seq2Seq trains on pairs: ``fit((src, tgt_in), tgt_out, lengths=(src_lengths,
        tgt_lengths))``, target padding masked out of the loss (see rnnx.seq2seq_training).
    loss : loss object or str, default "mse"
        ``rnnx.MSELoss()``, ``rnnx.SoftmaxCrossEntropy()``, ... or a name ("mse",
        "softmax_cross_entropy", "sigmoid_binary_cross_entropy").
    optimizer : rnnx optimizer, str or None, default None
        An optimizer built on ``model.parameters()``, or a name ("sgd", "adam", "adagrad",
        with default settings); None means ``Adam(lr=1e-3)``.
    bptt : None, int or (int, int), default None
        None: full BPTT; k: truncated BPTT(k, k); (k1, k2) with 1 <= k1 <= k2.
    clip_norm : float, optional
        Rescale the gradients to this global norm when above it (None: no clipping).
    clip_value : float, optional
        Clamp each gradient element to [-clip_value, clip_value] (None: no clamping).
    reset_state : {"sequence", "never", "chunk"}, default "sequence"
        When the carried state returns to zeros (see the module docstring).
    seed : int, optional
        Seeds the shuffling of mini-batches (weights are seeded where the layers are built).
    progress : bool or None, default None
        Show a progress bar on stderr; None: only when stderr is a terminal.
    comm : None or mpi4py communicator, default None
        ``MPI.COMM_WORLD``: data-parallel training, each rank fitting its own shard of the
        sequences, gradients summed over the ranks at every update in a fixed order, with
        O(parameters) bytes per rank (a reduce-scatter and an allgather, see rnnx.mpi);
        rank 0's parameters are broadcast at construction.
    checkpoint : None, int or "sqrt", default None
        Checkpointed BPTT with segments of k steps: memory O(T/k + k) steps instead of
        O(T), gradients unchanged (see rnnx.checkpoint).
    scheduler : rnnx.StepLR, rnnx.CosineAnnealingLR or None, default None
        A learning-rate schedule built on `optimizer`; ``fit`` calls its ``step()`` after
        every epoch. (Leave it out to step a schedule yourself.)

    Attributes
    ----------
    updates : int
        Updates (optimizer steps) done so far, over all calls of ``fit``.
    epochs : int
        Complete epochs done so far, over all calls of ``fit``.
    state : tuple or None
        The carried state after the last update.

    Notes
    -----
    NaN/Inf policy: ``fit`` raises ``NonFiniteLossError`` (naming the update) as soon as the
    loss or the global gradient norm is NaN or infinite, before that update is applied.
    Inference (``model(x)``, ``predict``) does not check: NaN in the input passes through
    to the outputs that depend on it.

    ``save_checkpoint(path)`` and ``Trainer.from_checkpoint(path)`` save and restore
    everything training depends on, so that a resumed run equals an uninterrupted one.
    """

    def __init__(self, model, loss="mse", optimizer=None, bptt=None, clip_norm=None,
                 clip_value=None, reset_state="sequence", seed=None, progress=None,
                 scheduler=None, checkpoint=None, comm=None):
        bare = not isinstance(model, (Sequential, Seq2Seq))
        if bare:
            model = Sequential(model)
        self.model = model
        self.loss = get_loss(loss)
        if self.loss.activation != "identity" and model.output_activation not in (
                "identity", self.loss.activation):
            raise ValueError(f"loss {self.loss!r} fuses a {self.loss.activation} but the model's "
                             f"output activation is {model.output_activation!r}")
        if optimizer is None:
            optimizer = Adam(model.parameters())
        elif isinstance(optimizer, str):
            if optimizer not in OPTIMIZERS:
                raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an optimizer "
                                 f"object, got {optimizer!r}")
            optimizer = OPTIMIZERS[optimizer](model.parameters())
        elif not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an rnnx optimizer or a name, got "
                            f"{type(optimizer).__name__}")
        if bare and set(optimizer.params) == set(model.layers[0].parameters()) and optimizer.steps == 0:
            # built on the bare layer's parameters: the same arrays, named as in the wrapper
            optimizer.params = {f"0.{name}": value for name, value in optimizer.params.items()}
        params = model.parameters()
        foreign = sorted(name for name, value in params.items() if name not in optimizer.params
                         or not np.shares_memory(optimizer.params[name], value))
        if foreign:
            raise ValueError("optimizer must be built on this model's model.parameters(); it does "
                             f"not hold {foreign}")
        self.optimizer = optimizer
        self.bptt = parse_bptt(bptt)
        if checkpoint is not None:
            from .checkpoint import segment_length
            segment_length(checkpoint, 1)  # checks it
        self.checkpoint = checkpoint
        self.comm = comm
        if comm is not None:
            from . import mpi
            mpi.broadcast_parameters(model.parameters(), mpi.check_comm(comm))
        if self.bptt is not None and isinstance(model, Seq2Seq):
            raise ValueError(f"bptt must be None for a Seq2Seq (it trains on whole sequences, "
                             f"teacher forced), got {bptt!r}")
        if self.bptt is not None and model.many_to_one:
            raise ValueError("bptt must be None for a many_to_one model (its loss is at the last "
                             f"step only), got {bptt!r}")
        for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not np.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be None or a finite number > 0, got {value!r}")
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        if reset_state not in RESET_STATES:
            raise ValueError(f"reset_state must be one of {RESET_STATES}, got {reset_state!r}")
        self.reset_state = reset_state
        if scheduler is not None and (not isinstance(scheduler, LRScheduler)
                                      or scheduler.optimizer is not optimizer):
            raise ValueError("scheduler must be an rnnx learning-rate schedule built on this "
                             f"trainer's optimizer, got {scheduler!r}")
        self.scheduler = scheduler
        try:
            self.rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as error:
            raise ValueError(f"seed must be None or an int >= 0, got {seed!r}") from error
        self.progress = progress
        self.state = None              # the carried state after the last update
        self.updates = 0
        self.epochs = 0

    def __repr__(self):
        if isinstance(self.model, Seq2Seq):
            model = repr(self.model).replace("\n", " ")
            return f"Trainer({model}, loss={self.loss!r}, optimizer={self.optimizer!r})"
        model = ", ".join(repr(layer).replace("\n", " ") for layer in self.model.layers)
        options = [f"loss={self.loss!r}", f"optimizer={self.optimizer!r}"]
        options += [f"{name}={getattr(self, name)!r}" for name in
                    ("bptt", "clip_norm", "clip_value", "reset_state", "scheduler")
                    if getattr(self, name) is not None]
        return (f"Trainer(Sequential({model}, many_to_one={self.model.many_to_one}), "
                f"{', '.join(options)}, updates={self.updates}, epochs={self.epochs})")

    # -- one update ----------------------------------------------------------------------

    def _workspace(self):
        """The core's work and cache memory, kept from one update to the next (made on
        first use, so a trainer built by from_checkpoint has one too)."""
        workspace = self.__dict__.get("_core_workspace")
        if workspace is None:
            from ._core import Workspace
            workspace = self._core_workspace = Workspace()
        return workspace

    def _update(self, x, y, lengths, state, a, b, overlap, where):
        """Forward over the window [max(0, a - overlap), b) from state (the state at the
        window's start), loss on [a, b), backward, clip, step. Returns (loss, the state at
        max(0, b - overlap) where the next window starts, gradient norm before clipping,
        gradients, number of positions in the loss)."""
        model = self.model
        _, time_axis, _ = axes(self.model)
        fused = self.loss.activation != "identity"
        w0 = max(0, a - overlap)
        s = max(w0, b - overlap)
        segments = [(t0, t1) for t0, t1 in ((w0, s), (s, b)) if t1 > t0]
        outputs, caches = [], []
        carried = state
        for t0, t1 in segments:
            xs = x if time_axis is None else time_slice(x, t0, t1, time_axis)
            out, state, cache = model.forward(xs, state, segment_lengths(lengths, t0, t1),
                                              logits=fused, checkpoint=self.checkpoint)
            outputs.append(out)
            caches.append(cache)
            if t1 == s:
                carried = state
        if time_axis is None or model.many_to_one:
            output, target, mask = outputs[0], y, None
        else:
            output = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=time_axis)
            target = time_slice(y, w0, b, time_axis)
            mask = loss_mask(self.model, b - w0, x.shape[1 - time_axis], a - w0, lengths, w0)
        value, grad = self.loss(output, target, mask)
        count = int(np.prod(output.shape[:-1])) if mask is None else int(mask.sum())
        trainer_loop.check_loss(self, value, where)
        grads = {}
        dstate = None
        for (t0, t1), cache in zip(reversed(segments), reversed(caches)):
            dy = grad if time_axis is None or model.many_to_one else \
                time_slice(grad, t0 - w0, t1 - w0, time_axis)
            _, dstate, segment_grads = model.backward(cache, dy, dstate)
            for name, g in segment_grads.items():
                if g is None:
                    continue
                grads[name] = g if name not in grads else grads[name] + g
        value, grads, norm, count = trainer_loop.step(self, value, grads, count, where)
        return value, carried, norm, grads, count

    # -- the loop ------------------------------------------------------------------------

    @holding_blas
    def fit(self, x, y, lengths=None, epochs=1, batch_size=None, shuffle=True, callback=None,
            validation=None, early_stopping=None):
        """Train for `epochs` passes over the data.

        Parameters
        ----------
        x : ndarray
            Inputs, (T, N, I) time-major ((N, T, I) for batch_first layers; (N, I) for a model
            of Dense layers only). Cast to the model's dtype; real values only. A model that
            begins with an rnnx.Embedding takes integer ids, (T, N) ((N, T); (N,)).
        y : ndarray
            Targets: (T, N, O) for a many-to-many model ((T, N) class indices for
            SoftmaxCrossEntropy), (N, O) or (N,) for a many-to-one model.
        lengths : array of int, optional
            (N,) valid steps of each sequence, in [0, T]; steps past them carry no loss.
        epochs : int, default 1
            Passes over the data in this call.
        batch_size : int, optional
            Sequences per mini-batch; None: all N at once (parallel streams).
        shuffle : bool, default True
            Shuffle the sequences into mini-batches each epoch (with the trainer's seed).
        callback : callable, optional
            ``callback(info)`` after every update, info a dict (epoch, update, loss,
            grad_norm, grads); returning True stops training after that update (the last
            epoch's loss is then averaged over the updates it had; that partial epoch is not
            counted in ``trainer.epochs``, gets no validation loss, and does not step the
            schedule).
        validation : tuple, optional
            ``(x_val, y_val)`` or ``(x_val, y_val, lengths_val)``: the loss on it (as by
            ``evaluate``) is computed after every epoch into ``history["val_loss"]``.
        early_stopping : int, optional
            Patience: stop when the validation loss has not improved (strictly) for this
            many epochs, and restore the weights of the epoch with the lowest validation
            loss (``history["best_epoch"]``, an index into ``history["val_loss"]``). The
            weights are restored even when training runs all its epochs; the optimizer's
            state and the schedule are not rolled back. Needs `validation`.

        Returns
        -------
        dict
            ``"loss"``: mean loss of each epoch; ``"step_loss"``: loss of every update;
            ``"grad_norm"``: global gradient norm of every update, before clipping;
            ``"lr"``: learning rate of each epoch; with validation, ``"val_loss"`` per epoch;
            with early stopping, ``"best_epoch"`` and ``"stopped_early"``.

        Raises
        ------
        NonFiniteLossError
            When the loss or the gradient norm becomes NaN or infinite (that update is not
            applied).
        """
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
        if isinstance(self.model, Seq2Seq):
            if early_stopping is not None:
                raise ValueError("early_stopping is not available for a Seq2Seq yet; watch "
                                 "history['val_loss'] and stop with a callback")
            return seq2seq_training.fit(self, x, y, lengths, epochs, batch_size, shuffle,
                                        callback, validation)
        x, y, lengths = check_data(self.model, self.loss, x, y, lengths)
        validation = check_validation(self.model, self.loss, validation, early_stopping)
        batch_axis, time_axis, y_batch_axis = axes(self.model)
        N = x.shape[batch_axis]
        batch_size, n_batches = trainer_loop.batches(batch_size, N)
        if self.reset_state == "never" and n_batches > 1:
            raise ValueError("reset_state='never' carries the state of one batch of streams across "
                             f"epochs, so batch_size must be None or >= N={N}, got {batch_size}")
        T = x.shape[time_axis] if time_axis is not None else 1
        k1, k2 = self.bptt if (self.bptt is not None and time_axis is not None) else (T, T)
        if self.bptt is not None and time_axis is not None and k2 > T:
            warnings.warn(f"bptt={self.bptt!r} backpropagates through up to {k2} steps but the "
                          f"sequences have T={T}: no gradient is truncated (bptt=None says so; "
                          f"a k2 < {T} truncates)", UserWarning,
                          stacklevel=3)  # fit's caller, past holding_blas's wrapper
        overlap = k2 - k1
        if self.comm is not None:
            from .mpi import check_same
            check_same(self.comm, batches=n_batches, time_steps=T, epochs=epochs)
        def batch_updates(rows, where):
            """The updates of one batch: a window of truncated BPTT each, the state carried."""
            whole = len(rows) == N and n_batches == 1
            xb = x if whole else np.take(x, rows, axis=batch_axis)
            yb = y if whole else np.take(y, rows, axis=y_batch_axis)
            lb = None if lengths is None else lengths[rows]
            state = self.state if self.reset_state == "never" else None
            for a in range(0, T, k1):
                b = min(a + k1, T)
                if self.reset_state == "chunk":
                    state = None
                steps = f", time steps {a}..{b - 1}" if time_axis is not None else ""
                with using_workspace(self._workspace()):   # reused update after update
                    value, state, norm, grads, count = self._update(
                        xb, yb, lb, state, a, b, overlap, where + steps)
                self.state = state
                yield value, norm, grads, count

        return trainer_loop.run(self, epochs, N, batch_size, n_batches, shuffle, batch_updates,
                                -(-T // k1), callback, validation, early_stopping)

    @holding_blas
    def evaluate(self, x, y, lengths=None, state=None):
        """The loss of the model on (x, y): forward only, over whole sequences.

        Parameters
        ----------
        x, y, lengths
            As for `fit`.
        state : optional
            Initial state of the model's recurrent layers (None: zeros).

        Returns
        -------
        float
        """
        if isinstance(self.model, Seq2Seq):
            if state is not None:
                raise ValueError("state must be None for a Seq2Seq: the encoder makes the "
                                 "decoder's initial state")
            return seq2seq_training.evaluate(self, x, y, lengths)
        x, y, lengths = check_data(self.model, self.loss, x, y, lengths)
        _, time_axis, _ = axes(self.model)
        # inference: no dropout, no cache (and no draws from the dropout generators)
        output, _ = self.model(x, state, lengths, logits=self.loss.activation != "identity")
        mask = None
        if time_axis is not None and not self.model.many_to_one:
            mask = loss_mask(self.model, x.shape[time_axis], x.shape[1 - time_axis], 0, lengths, 0)
        return self.loss(output, y, mask)[0]

    # -- checkpoints ---------------------------------------------------------------------

    def save_checkpoint(self, path):
        """Save everything training depends on to one .npz file, atomically, so that
        ``Trainer.from_checkpoint(path)`` resumes exactly: the same losses and weights as a
        run that was never interrupted.

        Saved: the model (architecture and weights), the loss, the optimizer (type,
        hyperparameters, step count and per-parameter state), the schedule (type, options,
        base_lr, last_epoch), the trainer's options, its update and epoch counts, the state
        of its random generator (mini-batch shuffling) and the carried state. Not saved: a
        callback, and a loss that is not one of rnnx's.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced only once the new one is complete).

        Raises
        ------
        TypeError
            If the loss is not an rnnx loss (it could not be rebuilt).
        """
        trainer_checkpoint.save(self, path)

    @classmethod
    def from_checkpoint(cls, path):
        """A trainer restored from ``save_checkpoint(path)``, ready to go on training.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by ``save_checkpoint``.

        Returns
        -------
        Trainer
            With a new model (``trainer.model``), optimizer and schedule in the saved state.

        Raises
        ------
        ValueError
            If the file is not a readable checkpoint or its parts do not match each other
            (naming the file and the part). Nothing is left half-built.
        """
        return trainer_checkpoint.load(cls, path)

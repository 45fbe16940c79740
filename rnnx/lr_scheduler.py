"""Learning-rate schedules, with PyTorch's names and semantics (torch.optim.lr_scheduler).

    opt = rnnx.Adam(model.parameters(), lr=1e-2)
    schedule = rnnx.CosineAnnealingLR(opt, T_max=30)
    trainer = rnnx.Trainer(model, loss, opt, scheduler=schedule)   # stepped after every epoch
    # or by hand: schedule.step() after each epoch of your own loop

A schedule sets ``optimizer.lr`` from the learning rate the optimizer had when the schedule
was made (``base_lr``) and its epoch counter ``last_epoch``: made at epoch 0 (the optimizer
keeps ``base_lr`` for the first epoch), and each ``step()`` moves to the next epoch. The
closed forms below are PyTorch's; PyTorch computes them recursively, so the two agree to
rounding (about 1e-15 relative).
"""
import math

import numpy as np

from .optim import Optimizer


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_real(name, value, minimum=0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")
    return float(value)


class LRScheduler:
    """Base class of the schedules: holds the optimizer, ``base_lr`` and ``last_epoch``;
    subclasses define ``get_lr()``, the learning rate at ``last_epoch``.

    Parameters
    ----------
    optimizer : rnnx optimizer
        Its ``lr`` when the schedule is made becomes ``base_lr``; the schedule then sets
        ``optimizer.lr`` (to ``get_lr()`` at epoch 0 right away, and at every ``step()``).

    Attributes
    ----------
    base_lr : float
    last_epoch : int
        Epochs stepped so far (0 when made).
    """

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an rnnx optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0
        optimizer.lr = self.get_lr()

    def get_lr(self):
        """The learning rate at epoch ``last_epoch``."""
        raise NotImplementedError(f"{type(self).__name__} must define get_lr")

    def step(self):
        """Move to the next epoch and set the optimizer's learning rate for it."""
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()

    def get_last_lr(self):
        """[the learning rate the last step set] (a list, as in PyTorch: one per group)."""
        return [self.optimizer.lr]

    def _options(self):
        return {}

    def __repr__(self):
        options = "".join(f", {k}={v!r}" for k, v in self._options().items())
        return (f"{type(self).__name__}({type(self.optimizer).__name__}{options}, "
                f"base_lr={self.base_lr!r}, last_epoch={self.last_epoch})")

    def state_dict(self):
        """{"type", "options", "base_lr", "last_epoch"}: enough to resume exactly."""
        return {"type": type(self).__name__, "options": self._options(),
                "base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state):
        """Restore a state from ``state_dict()`` of a schedule of the same type, and set the
        optimizer's learning rate from it. All or nothing."""
        if not isinstance(state, dict) or set(state) != {"type", "options", "base_lr",
                                                         "last_epoch"}:
            raise ValueError(f"state must be a dict from state_dict(), got {state!r:.200}")
        if state["type"] != type(self).__name__:
            raise ValueError(f"state is of a {state['type']} schedule, this is a "
                             f"{type(self).__name__}")
        base_lr = _check_real("state['base_lr']", state["base_lr"])
        last_epoch = _check_int("state['last_epoch']", state["last_epoch"], 0)
        probe = type(self)(type(self.optimizer)({"probe": np.zeros(1)}, lr=base_lr),
                           **state["options"])                         # validates the options
        for key in self._options():
            setattr(self, key, getattr(probe, key))
        self.base_lr, self.last_epoch = base_lr, last_epoch
        self.optimizer.lr = self.get_lr()


class StepLR(LRScheduler):
    """Decay the learning rate by `gamma` every `step_size` epochs (PyTorch's StepLR):
    ``lr = base_lr * gamma ** (last_epoch // step_size)``.

    Parameters
    ----------
    optimizer : rnnx optimizer
        Its current ``lr`` is ``base_lr``.
    step_size : int
        Epochs between decays, >= 1.
    gamma : float, default 0.1
        Multiplicative factor, >= 0.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _check_int("step_size", step_size, 1)
        self.gamma = _check_real("gamma", gamma)
        super().__init__(optimizer)

    def _options(self):
        return {"step_size": self.step_size, "gamma": self.gamma}

    def get_lr(self):
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from ``base_lr`` to `eta_min` over `T_max` epochs (PyTorch's
    CosineAnnealingLR, without restarts):
    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2``.
    Past T_max the cosine goes on (back up), as in PyTorch.

    Parameters
    ----------
    optimizer : rnnx optimizer
        Its current ``lr`` is ``base_lr``.
    T_max : int
        Epochs of the half period, >= 1.
    eta_min : float, default 0
        The smallest learning rate, >= 0.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = _check_int("T_max", T_max, 1)
        self.eta_min = _check_real("eta_min", eta_min)
        super().__init__(optimizer)

    def _options(self):
        return {"T_max": self.T_max, "eta_min": self.eta_min}

    def get_lr(self):
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cosine


SCHEDULERS = {"StepLR": StepLR, "CosineAnnealingLR": CosineAnnealingLR}

"""Optimizers that update parameters in place, and gradient clipping.

    opt = rnnx.Adam(model.parameters(), lr=1e-3)
    ...
    opt.step(grads)          # grads: {name: array}, e.g. from model.backward

An optimizer holds the live parameter arrays of model.parameters(); step() writes into them,
so the model sees the change. Its per-parameter state (momentum, moments, sums of squares)
is float64 whatever the parameter dtype, so that a float32 model does not lose small
updates in the accumulators; the update is cast to the parameter's dtype when applied.

Clipping is a separate step, done by the training loop between backward and step (never
inside a loss or a gradient, where it would break a gradient check):
    clip_grad_norm(grads, max_norm)   rescales all gradients together, in place
    clip_grad_value(grads, max_value) clamps each element to [-max_value, max_value], in place
"""
import numpy as np


def _check_positive(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return float(value)


class Optimizer:
    """Base class of the optimizers: keeps {name: live array} and checks the gradients
    handed to step().

    Parameters
    ----------
    params : dict of str to ndarray, or a model
        The live float32/float64 parameter arrays, e.g. ``model.parameters()`` (a model is
        asked for its ``parameters()``). step() updates them in place.
    lr : float
        Learning rate, finite and >= 0 (a schedule may change ``optimizer.lr``).

    Attributes
    ----------
    steps : int
        Steps taken (Adam's bias correction counts them).
    """

    def __init__(self, params, lr):
        if hasattr(params, "parameters") and callable(params.parameters):
            params = params.parameters()
        if not isinstance(params, dict) or not params:
            raise TypeError("params must be a non-empty dict {name: array} such as "
                            f"model.parameters(), got {type(params).__name__}")
        for name, value in params.items():
            if not isinstance(value, np.ndarray) or value.dtype not in (np.float32, np.float64):
                raise TypeError(f"params[{name!r}] must be a float32/float64 ndarray, got "
                                f"{type(value).__name__} {getattr(value, 'dtype', '')}")
        self.params = params
        self.lr = _check_positive("lr", lr, allow_zero=True)
        self.steps = 0

    def _checked(self, grads):
        """[(name, parameter, gradient as float64)] for every parameter with a gradient, after
        checking them all: a bad gradient raises before any parameter or state changes."""
        if not isinstance(grads, dict):
            raise TypeError(f"grads must be a dict {{name: array}}, got {type(grads).__name__}")
        unknown = set(grads) - set(self.params)
        if unknown:
            raise ValueError(f"grads has names that are not parameters: {sorted(unknown)}")
        checked = []
        for name, param in self.params.items():
            grad = grads.get(name)
            if grad is None:
                continue
            grad = np.asarray(grad)
            if grad.dtype.kind not in "fiu":
                raise TypeError(f"grads[{name!r}] must be a real (float) array, got dtype "
                                f"{grad.dtype}")
            if grad.shape != param.shape:
                raise ValueError(f"grads[{name!r}] must have shape {param.shape}, got {grad.shape}")
            checked.append((name, param, grad.astype(np.float64)))
        return checked

    def step(self, grads):
        """Update every parameter that has a gradient, in place.

        Parameters
        ----------
        grads : dict of str to ndarray
            ``{name: gradient}`` with the names and shapes of the parameters (a name may be
            left out or map to None: that parameter is not updated).

        Raises
        ------
        TypeError, ValueError
            If any gradient has an unknown name, a wrong shape or a complex or non-numeric
            dtype. All gradients are checked first, so on an error no parameter, no
            optimizer state and no step count has changed.
        """
        checked = self._checked(grads)
        self.steps += 1
        for name, param, grad in checked:
            update = self._update(name, grad)
            param -= update.astype(param.dtype)

    # per-parameter state, {slot: {parameter name: float64 array}}; each optimizer names its own
    _slots = ()

    def hyperparameters(self):
        """{name: value} of the constructor's arguments other than params (JSON-serialisable)."""
        return {"lr": self.lr}

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self.params)} parameters, {options})"

    def state_dict(self):
        """The optimizer's state, to resume training exactly (PyTorch's name).

        Returns
        -------
        dict
            ``{"type": class name, "hyperparameters": {...}, "steps": int, "state":
            {slot: {parameter name: float64 array}}}``; the arrays are copies.
        """
        return {"type": type(self).__name__, "hyperparameters": self.hyperparameters(),
                "steps": self.steps,
                "state": {slot: {name: np.array(value, dtype=np.float64)
                                 for name, value in getattr(self, slot).items()}
                          for slot in self._slots}}

    def load_state_dict(self, state):
        """Restore a state from `state_dict`, all or nothing.

        Parameters
        ----------
        state : dict
            As returned by ``state_dict()`` of an optimizer of the same type over parameters
            of the same names and shapes.

        Raises
        ------
        TypeError, ValueError
            If the type, a slot, a parameter name or a shape does not match; then nothing
            has changed.
        """
        if not isinstance(state, dict) or set(state) != {"type", "hyperparameters", "steps",
                                                         "state"}:
            raise ValueError("state must be a dict with keys 'type', 'hyperparameters', "
                             f"'steps' and 'state' (from state_dict()), got {state!r:.200}")
        if state["type"] != type(self).__name__:
            raise ValueError(f"state is of a {state['type']} optimizer, this is a "
                             f"{type(self).__name__}")
        steps = state["steps"]
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"state['steps'] must be an int >= 0, got {steps!r}")
        slots = state["state"]
        if not isinstance(slots, dict) or set(slots) != set(self._slots):
            raise ValueError(f"state['state'] must have the slots {sorted(self._slots)}, got "
                             f"{sorted(slots) if isinstance(slots, dict) else slots!r}")
        new = {}
        for slot, values in slots.items():
            new[slot] = {}
            for name, value in values.items():
                if name not in self.params:
                    raise ValueError(f"state['state'][{slot!r}] names {name!r}, which is not a "
                                     "parameter of this optimizer")
                value = np.asarray(value)
                if value.dtype.kind not in "fiu" or value.shape != self.params[name].shape:
                    raise ValueError(f"state['state'][{slot!r}][{name!r}] must be a real array "
                                     f"of shape {self.params[name].shape}, got {value.dtype} "
                                     f"{value.shape}")
                new[slot][name] = value.astype(np.float64)      # a copy
        probe = type(self)({"probe": np.zeros(1)}, **state["hyperparameters"])   # validates them
        for key in probe.hyperparameters():
            setattr(self, key, getattr(probe, key))
        self.steps = int(steps)
        for slot, values in new.items():
            setattr(self, slot, values)

    def _update(self, name, grad):
        """The step to subtract from parameter `name`; each optimizer defines its own."""
        raise NotImplementedError(f"{type(self).__name__} must define _update")


class SGD(Optimizer):
    """Stochastic gradient descent, the lectures' W <- W - lr * grad.

    With momentum mu > 0 (PyTorch's form): v <- mu * v + grad, W <- W - lr * v.
    (For a constant lr this is the same trajectory as the form v <- mu v - lr grad, W <- W + v.)

    Parameters
    ----------
    params : dict of str to ndarray, or a model
        See `Optimizer`.
    lr : float, default 0.01
    momentum : float, default 0
        In [0, 1). The velocity starts at the first gradient.
    """

    def __init__(self, params, lr=0.01, momentum=0.0):
        super().__init__(params, lr)
        self.momentum = _check_positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.velocity = {}

    _slots = ("velocity",)

    def hyperparameters(self):
        return {"lr": self.lr, "momentum": self.momentum}

    def _update(self, name, grad):
        if self.momentum == 0:
            return self.lr * grad
        v = self.velocity.get(name)
        v = grad.copy() if v is None else self.momentum * v + grad   # first step: v = grad
        self.velocity[name] = v
        return self.lr * v


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015):
        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
        W <- W - lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m/(1 - b1^t), v_hat = v/(1 - b2^t)

    Parameters
    ----------
    params : dict of str to ndarray, or a model
        See `Optimizer`.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        numbers = (int, float, np.integer, np.floating)
        if not isinstance(betas, (tuple, list, np.ndarray)) or len(betas) != 2 or not all(
                isinstance(b, numbers) and not isinstance(b, bool) for b in betas):
            raise TypeError(f"betas must be a pair of numbers (beta1, beta2), got {betas!r}")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = _check_positive("eps", eps, allow_zero=True)
        self.m, self.v = {}, {}

    _slots = ("m", "v")

    def hyperparameters(self):
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps}

    def _update(self, name, grad):
        b1, b2 = self.betas
        m = self.m.get(name, 0.0) * b1 + (1 - b1) * grad
        v = self.v.get(name, 0.0) * b2 + (1 - b2) * grad * grad
        self.m[name], self.v[name] = m, v
        m_hat = m / (1 - b1 ** self.steps)
        v_hat = v / (1 - b2 ** self.steps)
        return self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011), as in min-char-rnn:
        G <- G + g^2,   W <- W - lr * g / (sqrt(G) + eps)

    Parameters
    ----------
    params : dict of str to ndarray, or a model
        See `Optimizer`.
    lr : float, default 0.01
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    """

    def __init__(self, params, lr=0.01, eps=1e-8):
        super().__init__(params, lr)
        self.eps = _check_positive("eps", eps, allow_zero=True)
        self.sum_squares = {}

    _slots = ("sum_squares",)

    def hyperparameters(self):
        return {"lr": self.lr, "eps": self.eps}

    def _update(self, name, grad):
        G = self.sum_squares.get(name, 0.0) + grad * grad
        self.sum_squares[name] = G
        return self.lr * grad / (np.sqrt(G) + self.eps)


# ---------------------------------------------------------------------------------------
# Clipping: applied by the training loop, never inside a loss or gradient.

def global_norm(grads):
    """The global norm of a set of gradients.

    Parameters
    ----------
    grads : dict of str to ndarray (or None)

    Returns
    -------
    float
        sqrt of the sum of squares of every element, computed in float64 (inf or nan if a
        gradient is not finite).
    """
    total = 0.0
    for grad in grads.values():
        if grad is not None:
            g = np.asarray(grad, dtype=np.float64)
            total += float(np.sum(np.square(g)))      # no BLAS call: see dense._matmul
    return float(np.sqrt(total))


def _check_clippable(grads):
    """grads must be a {name: floating ndarray or None} mapping, which clipping changes in
    place; checked whole before anything is changed."""
    if not hasattr(grads, "items"):
        raise TypeError(f"grads must be a dict {{name: array}} (clipping changes the arrays "
                        f"in place), got {type(grads).__name__}")
    for name, grad in grads.items():
        if grad is None:
            continue
        if not isinstance(grad, np.ndarray) or grad.dtype.kind != "f":
            what = f"dtype {grad.dtype}" if isinstance(grad, np.ndarray) else type(grad).__name__
            raise TypeError(f"grads[{name!r}] must be a floating ndarray (changed in place), "
                            f"got {what}")


def clip_grad_norm(grads, max_norm):
    """Rescale all gradients together, in place, by min(1, max_norm / global_norm).

    Parameters
    ----------
    grads : dict of str to ndarray (or None)
        Changed in place.
    max_norm : float
        Finite and > 0.

    Returns
    -------
    float
        The global norm before clipping (inf or nan when a gradient is not finite; then
        nothing is changed).
    """
    max_norm = _check_positive("max_norm", max_norm)
    _check_clippable(grads)
    norm = global_norm(grads)
    if np.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for grad in grads.values():
            if grad is not None:
                grad *= scale
    return norm


def clip_grad_value(grads, max_value):
    """Clamp every gradient element to [-max_value, max_value], in place.

    Parameters
    ----------
    grads : dict of str to ndarray (or None)
        Changed in place.
    max_value : float
        Finite and > 0.

    Returns
    -------
    dict
        `grads`.
    """
    max_value = _check_positive("max_value", max_value)
    _check_clippable(grads)
    for grad in grads.values():
        if grad is not None:
            np.clip(grad, -max_value, max_value, out=grad)
    return grads


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adagrad": Adagrad}

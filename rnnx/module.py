"""What every rnnx layer shares: the Module base class and the argument checks.

Every layer (rnnx.RNN, LSTM, GRU, Dense) follows one protocol:

    y, state = layer(x, state=None, lengths=None)                # inference (Dense: y = layer(x))
    y, state, cache = layer.forward(x, state=None, lengths=None)  # training forward
    dx, dstate0, grads = layer.backward(cache, dy, dstate=None)   # backward through it

and has parameters() (the live arrays), state_dict() (copies), load_state_dict() (one
strict, all-or-nothing validation, here), config() (the constructor's keyword arguments)
and state_names (the names of its state tensors: ("h",), ("h", "c"), or () for Dense).

Dtype policy (PyTorch's): a layer computes in its own dtype (float32 by default). An
input of a lower or equal floating precision is converted (float16 or float32 into a
float64 layer); a float64 array into a float32 layer, and any integer, bool or complex
array, raises TypeError naming both dtypes and the fix. Python lists are converted to the
layer's dtype.

Stale caches: a cache remembers the layer's weights version and a bitwise snapshot of its
parameters. backward raises ValueError if load_state_dict() ran since the forward (the
version counter) or if any parameter array was changed in place, e.g. by an optimizer step
(the snapshot; it costs one copy and one comparison of the parameters per forward and
backward pair, small next to the forward itself).
"""
import numpy as np

__all__ = ["Module"]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def positive_int(value, name):
    """value as an int >= 1, or TypeError/ValueError naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_dtype(dtype):
    """np.dtype(float32) or np.dtype(float64), or TypeError naming dtype."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}") from None
    if dtype not in DTYPES:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype}")
    return dtype


def check_seed(seed, name="seed"):
    """seed for np.random.default_rng: None, an int >= 0, or a np.random.Generator."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be None, an int >= 0 or a np.random.Generator, "
                        f"got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}")
    return int(seed)


def as_array(value, name="x"):
    """np.asarray(value), or a ValueError naming the argument where nested lists are ragged
    (rows of different lengths), which NumPy reports without saying which argument."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except ValueError as error:
        raise ValueError(f"{name} must be an array or nested lists of one shape (every row "
                         f"the same length), got ragged {type(value).__name__}s: {error}") from None


def as_layer_dtype(value, dtype, name="x", layer="the layer"):
    """value as an array of dtype under the dtype policy (module docstring), not copied
    when it already is one.  Checks the dtype only, not the shape."""
    if not isinstance(value, (np.ndarray, np.generic)):
        a = as_array(value, name)
        if a.dtype.kind in "fiu":          # a Python list or scalar: the layer's dtype
            return a.astype(dtype, copy=False)
    else:
        a = np.asarray(value)
    kind = a.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} is complex ({a.dtype}); {layer} computes in {dtype}, and "
                        f"dropping the imaginary part silently would be wrong: pass "
                        f"{name}.real.astype(np.{dtype}) if it is zero")
    if kind != "f":
        raise TypeError(f"{name} must be a floating array ({dtype}), got dtype {a.dtype}: "
                        f"convert it with {name}.astype(np.{dtype})")
    if a.dtype != dtype and not np.can_cast(a.dtype, dtype, "safe"):
        raise TypeError(f"{name} has dtype {a.dtype} but {layer} is {dtype}: pass "
                        f"{name}.astype(np.{dtype}), or build the layer with "
                        f"dtype=np.{a.dtype.name}")
    return a


def unpack_sequence(x, lengths, batch_first):
    """(x, lengths): a torch PackedSequence given as x becomes its padded array (zeros past
    each row's length, (T, B, I) or (B, T, I) batch_first, original batch order) and its
    lengths, what rnnx takes instead of packing; anything else passes through."""
    if type(x).__name__ != "PackedSequence" or not hasattr(x, "batch_sizes"):
        return x, lengths
    if lengths is not None:
        raise ValueError("x is a PackedSequence, which holds its lengths; pass lengths=None, "
                         "or pass the padded x with lengths=")
    from torch.nn.utils.rnn import pad_packed_sequence
    padded, sizes = pad_packed_sequence(x, batch_first=batch_first)
    return padded.detach().cpu().numpy(), sizes.cpu().numpy()


class Module:
    """Base class of every rnnx layer: parameters, state_dict, config, version.

    A subclass sets ``state_names`` and ``_config_keys``, fills ``self._params`` (an
    ordered {name: array} dict) in its constructor, and defines ``forward``,
    ``backward`` and ``_param_shapes``.
    """

    #: Names of the state tensors the layer carries between calls, in order.
    state_names = ()
    #: Constructor keyword arguments config() records, in the constructor's order.
    _config_keys = ()

    _version = 0
    #: PyTorch's mode flag: True (the default) lets forward() apply dropout, False (after
    #: eval()) makes forward() run as inference does.  Calling the layer never drops.
    training = True

    # ------------------------------------------------------------------ modes

    def train(self, mode=True):
        """Training mode (``mode=True``) or evaluation mode; returns the layer, as PyTorch's.
        Only dropout depends on it: forward() applies it in training mode alone."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode must be a bool, got {type(mode).__name__}")
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode, ``train(False)``: forward() applies no dropout; returns the layer."""
        return self.train(False)

    def double(self):
        """Convert the parameters to float64 (new arrays, the same values); returns the layer.
        Arrays held from parameters() before (an optimizer's) are no longer the layer's."""
        return self._to_dtype(np.float64)

    def float(self):
        """Convert the parameters to float32 (new arrays, values rounded); returns the layer."""
        return self._to_dtype(np.float32)

    def _to_dtype(self, dtype):
        self.dtype = np.dtype(dtype)
        self._params = {name: p.astype(self.dtype) for name, p in self._params.items()}
        self.bump_version()
        return self

    # ------------------------------------------------------------ parameters

    def _param_shapes(self):
        """{name: shape} of every parameter, in state_dict() order."""
        raise NotImplementedError(f"{type(self).__name__} must define _param_shapes")

    @property
    def is_recurrent(self):
        """True for a layer that carries a state over time (RNN, LSTM, GRU)."""
        return bool(self.state_names)

    @property
    def version(self):
        """Counts load_state_dict() and bump_version() calls: a cache from an older
        version is stale."""
        return self._version

    def bump_version(self):
        """Mark every cache made so far as stale (load_state_dict() does this itself;
        in-place changes to the parameter arrays are detected anyway)."""
        self._version += 1

    def parameters(self):
        """dict
            The live parameter arrays by name: an in-place update (an optimizer step)
            changes the layer.
        """
        return dict(self._params)

    def num_parameters(self):
        """int: the number of scalar parameters."""
        return int(sum(p.size for p in self._params.values()))

    def state_dict(self):
        """dict
            Copies of the parameters by name (PyTorch's names for recurrent layers,
            nn.Linear's ``weight``/``bias`` for Dense).
        """
        return {name: p.copy() for name, p in self._params.items()}

    def _stage(self, state_dict, what="state_dict", prefix=""):
        """The parameters of state_dict, checked and converted to the layer's dtype, or
        an error naming the key: the one validation behind every load_state_dict."""
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"{what} must be a mapping {{name: array}}, got "
                            f"{type(state_dict).__name__}")
        expected = self._param_shapes()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in expected]
        if missing or unexpected:
            raise ValueError(f"{what} does not match {self!r}: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        staged = {}
        for key, shape in expected.items():
            value = np.asarray(state_dict[key])
            name = prefix + key
            if value.dtype.kind not in "fiu":
                raise TypeError(f"{what}[{name!r}] must be a real array, got dtype {value.dtype}")
            if value.shape != tuple(shape):
                raise ValueError(f"{what}[{name!r}] must have shape {tuple(shape)}, got {value.shape}")
            staged[key] = value.astype(self.dtype)
            if not np.all(np.isfinite(staged[key])):
                raise ValueError(f"{what}[{name!r}] has non-finite values (NaN or Inf)")
        return staged

    def _commit(self, staged):
        for name, value in staged.items():
            np.copyto(self._params[name], value)
        self.bump_version()

    def load_state_dict(self, state_dict):
        """Load parameters by name, e.g. from PyTorch:
        ``layer.load_state_dict({k: v.numpy() for k, v in module.state_dict().items()})``.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            Exactly the keys of state_dict(), each of its shape; real values, converted
            to the layer's dtype; all finite.

        Every key, shape and value is checked before anything is written, so an error
        leaves the layer as it was. Values are copied in place, so arrays held from
        parameters() (an optimizer's) stay the layer's parameters. Caches made before
        the load become stale.

        Raises
        ------
        ValueError
            A missing or unexpected key, a wrong shape, or a non-finite value.
        TypeError
            state_dict is not a mapping, or a value is not a real array.
        """
        self._commit(self._stage(state_dict))

    def config(self):
        """dict: the constructor's keyword arguments, JSON-serialisable, so that
        ``type(layer)(**layer.config())`` builds the same architecture (fresh weights)."""
        out = {}
        for key in self._config_keys:
            value = getattr(self, key)
            out[key] = value.name if isinstance(value, np.dtype) else value
        return out

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # ---------------------------------------------------------------- caches

    def _snapshot(self):
        """(version, parameter copies): what a training forward remembers to tell, at
        backward, whether the weights changed since."""
        return self._version, [p.copy() for p in self._params.values()]

    def _check_fresh(self, cache):
        """ValueError naming the change if the parameters changed since cache's forward."""
        if cache.owner is not self:
            raise ValueError(f"cache comes from another layer's forward ({cache.owner!r}), "
                             f"not this {type(self).__name__}'s")
        version, copies = cache.snapshot
        if version != self._version:
            raise ValueError(f"stale cache: load_state_dict() (or bump_version()) was called on "
                             f"this {type(self).__name__} after the forward that made the cache; "
                             f"run forward again")
        for (name, p), old in zip(self._params.items(), copies):
            bits = np.dtype(f"u{p.itemsize}")
            if not np.array_equal(p.view(bits), old.view(bits)):
                raise ValueError(f"stale cache: parameter {name!r} of this {type(self).__name__} "
                                 f"changed in place after the forward that made the cache (an "
                                 f"optimizer step?); run forward again")


class Cache:
    """What a training forward keeps for its backward. Opaque: pass it to the
    backward of the layer (or model) whose forward made it."""

    __slots__ = ("owner", "snapshot", "data")

    def __init__(self, owner, data):
        self.owner = owner
        self.snapshot = owner._snapshot() if hasattr(owner, "_snapshot") else None
        self.data = data

    def __repr__(self):
        return f"<rnnx cache of {type(self.owner).__name__}>"

"""Recurrent layers with PyTorch's semantics: rnnx.RNN, rnnx.LSTM, rnnx.GRU, and Stream.

A layer owns its parameters (PyTorch's names, shapes and gate order), checks
what it is given, and runs each direction of each layer of the stack as one
call into the C core (rnnx/_core.pyx).  No Python runs per time step.

Shapes (T time, B batch, I input_size, H hidden_size, L num_layers, D 1 or 2):
    x      (T, B, I), or (B, T, I) with batch_first, or (T, I) unbatched
    y      (T, B, D*H): the forward direction first, then the reverse
    state  h (L*D, B, H) for RNN and GRU, (h, c) for LSTM; layer-major, direction-minor
An LSTM with proj_size P > 0 has h and y P wide per direction ((L*D, B, P), (T, B, D*P));
its c stays (L*D, B, H).
"""
import contextlib
import os
import threading
import warnings

import numpy as np

try:
    from . import _core
except ImportError as error:  # a source checkout imported before its extension was built
    raise ImportError(
        f"rnnx's compiled core (rnnx._core) is missing from {__file__.rsplit('/', 1)[0]}: this "
        "looks like an unbuilt source folder. Build it in place with `pip install -e .`, or run "
        "Python from another folder so the installed rnnx is imported.") from error

from .module import Cache, Module, as_layer_dtype, check_dtype, check_seed, positive_int, \
    unpack_sequence
from .reference import check_lengths
from . import checkpoint as _checkpoint  # noqa: E402 (needs _core, imported above)

__all__ = ["RNN", "LSTM", "GRU", "Stream"]

# The Workspace (rnnx._core) the layers' calls into the core reuse on this thread, or None
# (each call allocates its own).  Set by using_workspace, which the Trainer wraps around its
# updates; a thread-local, so other threads running the same layers are not affected.
_local = threading.local()


@contextlib.contextmanager
def using_workspace(workspace):
    """Within the block, this thread's layer calls reuse ``workspace`` (an
    ``rnnx._core.Workspace``) for their work and training caches instead of allocating."""
    previous = getattr(_local, "workspace", None)
    _local.workspace = workspace
    try:
        yield workspace
    finally:
        _local.workspace = previous


def _workspace():
    return getattr(_local, "workspace", None)

# The two directions of a bidirectional layer's forward run at the same time, the reverse
# one on a helper thread (the core releases the GIL), where the pool has at most
# _CONCURRENT_THREADS threads: there each direction gets a core of its own, and on the
# 2-core machine LSTM (16, 128, 64, 200) went from 15.4-17.2 ms (one direction after the
# other, 2 threads each) to 13.0-13.3 ms.  With more threads each direction in turn takes the
# whole pool, since a second caller of a busy pool runs its step alone.  Only where a
# direction's recurrent work (T*B*G*H multiply-adds) is over _CONCURRENT_WORK, which pays
# for the handoff.  The results are the same either way: each direction writes its own part
# of y and of the final state.  Backward stays one direction after the other: both add into
# the same dx, in an order that checkpointed BPTT reproduces bit for bit in float64.
_CONCURRENT_THREADS = 2
_CONCURRENT_WORK = 1 << 22
_direction_pool = None
_direction_lock = threading.Lock()


def _direction_executor():
    global _direction_pool
    with _direction_lock:
        if _direction_pool is None:
            import concurrent.futures
            _direction_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="rnnx-direction")
        return _direction_pool


def _forget_direction_executor():  # a forked child has none of the parent's threads
    global _direction_pool, _direction_lock
    _direction_pool, _direction_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_direction_executor)


def _concurrent_directions(T, B, G, H):
    return 1 < _core.get_num_threads() <= _CONCURRENT_THREADS and T * B * G * H > _CONCURRENT_WORK


_COMMON_DOC = """
    Parameters
    ----------
    input_size : int
        I, the number of features of x.
    hidden_size : int
        H, the number of features of the state h (and of y per direction).
    num_layers : int, default 1
        L, recurrent layers stacked: layer k > 0 takes layer k-1's output.
    bias : bool, default True
        Whether the layer has ``bias_ih_l{{k}}`` and ``bias_hh_l{{k}}``.
    batch_first : bool, default False
        x and y are (B, T, features) instead of (T, B, features); states are not
        affected.
    dropout : float in [0, 1), default 0
        Dropout on the output of every layer of the stack except the last, in the
        training forward only (inverted: kept values are scaled by 1/(1-dropout)), and
        only in training mode (``layer.training``, PyTorch's flag: ``layer.eval()`` turns
        it off, ``layer.train()`` back on); ``layer(x)`` (inference) applies none. The
        mask is kept in the cache, so backward uses the forward's draws. Draws come from
        ``layer.dropout_rng``, a ``np.random.Generator`` seeded from ``seed`` (replace it
        to choose the draws).
    bidirectional : bool, default False
        D = 2: a reverse direction too, its output after the forward one in y.
    go_backwards : bool, default False
        Run the reverse direction only (D = 1): time runs from each row's last valid
        step to t = 0, as in the reverse half of a bidirectional layer and ONNX's
        ``direction="reverse"``; the final state is the state at t = 0. Unlike Keras's
        ``go_backwards``, which returns the outputs in the order it computed them
        (reversed), y stays in time order: y[t] is the output at input step t (Keras's
        output is ``y[::-1]`` without lengths). Its parameters keep the forward names
        (``weight_ih_l{{k}}``, ...). It cannot stream.
    dtype : np.float32 (default) or np.float64
        The dtype of the parameters and of every computation. x of a lower or equal
        precision is converted; float64 x into a float32 layer raises TypeError (see
        the README's dtype policy).
    seed : None, int >= 0, or np.random.Generator
        For the initialisation (and then the dropout draws); None draws fresh entropy.
{extra}
    Attributes
    ----------
    state_names : tuple of str
        {state_names}: the names of the state tensors, in order.

    Parameters of layer k (``_reverse`` appended for the reverse direction), PyTorch's
    names and shapes, G = {gates}*H, initialised like PyTorch: every tensor uniform in
    [-1/sqrt(H), 1/sqrt(H)]::

        weight_ih_l{{k}}  (G, I) for k = 0, (G, D*H) after
        weight_hh_l{{k}}  (G, H)
        bias_ih_l{{k}}, bias_hh_l{{k}}  (G,)

    Notes
    -----
    ``y, state = layer(x, state=None, lengths=None)``: inference.
    ``y, state, cache = layer.forward(x, state=None, lengths=None)``: training forward.
    ``dx, dstate0, grads = layer.backward(cache, dy, dstate=None)``: full BPTT.
    ``layer.stream(batch_size=1)``: step-by-step inference (see Stream).

    x : (T, B, I), (B, T, I) with batch_first, or unbatched (T, I).
    state : {state_form}, each (L*D, B, H) ((L*D, H) unbatched); None means zeros.
    lengths : None or B ints in [0, T]: row b is lengths[b] steps long; its outputs
        past that are 0, its final state is its state at its own last step, and its
        padded steps get zero gradient (PyTorch's packed sequences, without packing).
        A torch ``PackedSequence`` given as x is unpacked into the padded x and its
        lengths (y is then the padded output, as ``pad_packed_sequence`` gives it).
        A row of length 0 runs no step: its outputs are all 0 and its final state is
        its initial state (zeros when none is given), which passes its gradient on.
    y : (T, B, D*H), like x's layout.
"""


class _Recurrent(Module):
    """A stack of recurrent layers; RNN, LSTM and GRU differ only in their cell."""

    _gates = 1
    _config_keys = ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                    "dropout", "bidirectional", "go_backwards", "dtype")
    go_backwards = False

    def _setup(self, input_size, hidden_size, num_layers, bias, batch_first, dropout,
               bidirectional, dtype, seed):
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, (int, float, np.integer,
                                                                             np.floating)):
            raise TypeError(f"dropout must be a float in [0, 1), got {type(dropout).__name__}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"{type(self).__name__}: dropout={self.dropout} applies between stacked "
                          f"layers, so it does nothing with num_layers=1 (as in PyTorch)",
                          UserWarning, stacklevel=3)
        self.bidirectional = bool(bidirectional)
        if self.bidirectional and self.go_backwards:
            raise ValueError("go_backwards=True runs the reverse direction only; it cannot be "
                             "combined with bidirectional=True, which runs both")
        self.num_directions = 2 if self.bidirectional else 1
        self.dtype = check_dtype(dtype)
        self.seed = check_seed(seed)
        rng = np.random.default_rng(self.seed)
        self._params = self._init_params(rng)
        #: np.random.Generator of the dropout draws (after the initialisation's, same seed)
        self.dropout_rng = rng

    # ------------------------------------------------------------ parameters

    proj_size = 0   # an LSTM's projection (LSTM sets it); 0: none

    @property
    def _state_width(self):
        """The width of h and of y per direction: proj_size if an LSTM projects, else H."""
        return self.proj_size or self.hidden_size

    def _param_names(self, k, d):
        suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
        names = [f"weight_ih{suffix}", f"weight_hh{suffix}"]
        if self.bias:
            names += [f"bias_ih{suffix}", f"bias_hh{suffix}"]
        if self.proj_size:
            names.append(f"weight_hr{suffix}")
        return names

    def _param_shapes(self):
        G, H, D = self._gates * self.hidden_size, self.hidden_size, self.num_directions
        S = self._state_width
        shapes = {}
        for k in range(self.num_layers):
            inputs = self.input_size if k == 0 else D * S
            for d in range(D):
                names = self._param_names(k, d)
                kinds = [(G, inputs), (G, S)] + ([(G,), (G,)] if self.bias else [])
                if self.proj_size:
                    kinds.append((self.proj_size, H))
                for name, shape in zip(names, kinds):
                    shapes[name] = shape
        return shapes

    def _init_params(self, rng):
        # PyTorch's initialisation: every tensor uniform in +-1/sqrt(hidden_size).
        bound = 1.0 / np.sqrt(self.hidden_size)
        return {name: rng.uniform(-bound, bound, size=shape).astype(self.dtype)
                for name, shape in self._param_shapes().items()}

    def _reverse(self, d):
        """Whether direction d runs backward in time: a bidirectional layer's second one,
        or the only one of a go_backwards layer."""
        return d == 1 or self.go_backwards

    def _weights(self, k, d):
        """(w_ih, w_hh, b_ih, b_hh) of layer k, direction d; biases None without bias."""
        w = [self._params[name] for name in self._param_names(k, d)]
        return tuple(w[:4]) if self.bias else (w[0], w[1], None, None)

    def _proj(self, k, d):
        """{"w_hr": weight_hr of layer k, direction d} for an LSTM that projects, else {}:
        the keyword argument of _core.forward."""
        if not self.proj_size:
            return {}
        return {"w_hr": self._params[f"weight_hr_l{k}" + ("_reverse" if d == 1 else "")]}

    def _grad_args(self, grads, k, d):
        """(dw_ih, dw_hh, db_ih, db_hh) and {"w_hr", "dw_hr"} for _core.backward."""
        names = self._param_names(k, d)
        dw = [grads[n] for n in names[:4 if self.bias else 2]]
        dw += [None] * (4 - len(dw))
        extra = self._proj(k, d)
        if extra:
            extra["dw_hr"] = grads[names[-1]]
        return dw, extra

    @property
    def output_size(self):
        """int: D*H (D*proj_size for an LSTM that projects), the number of features of y."""
        return self.num_directions * self._state_width

    # ---------------------------------------------------------------- checks

    def _check_input(self, x, lengths):
        """x as a C-contiguous time-major (T, B, I) array of the layer's dtype,
        whether it was batched, and lengths as an int64 (B,) copy or None."""
        x = as_layer_dtype(x, self.dtype, "x", f"this {type(self).__name__}")
        I = self.input_size
        batched = x.ndim == 3
        if x.ndim not in (2, 3) or x.shape[-1] != I:
            layout = "(B, T, {0})" if self.batch_first else "(T, B, {0})"
            raise ValueError(f"x must be {layout.format(I)} or unbatched (T, {I}) for "
                             f"input_size={I}, got {x.shape}")
        if not batched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        x = np.ascontiguousarray(x, dtype=self.dtype)
        T, B = x.shape[0], x.shape[1]
        if lengths is not None:
            if not batched:
                lengths = np.reshape(np.asarray(lengths), -1)
            lengths = check_lengths(lengths, T, B)
        return x, batched, lengths

    def _state_shape(self, B, name="h"):
        """(L*D, B, width) of a state tensor: h is P wide for an LSTM that projects."""
        width = self._state_width if name == "h" else self.hidden_size
        return (self.num_layers * self.num_directions, B, width)

    def _check_states(self, state, B, batched, name):
        """state as a list of C-contiguous (L*D, B, width) copies, one per state name."""
        names = self.state_names
        shapes = [self._state_shape(B, n) for n in names]
        if state is None:
            return [np.zeros(shape, self.dtype) for shape in shapes]
        if len(names) > 1:
            if not isinstance(state, (tuple, list)) or len(state) != len(names):
                raise TypeError(f"{name} of an {type(self).__name__} must be a tuple "
                                f"({', '.join(names)}), got {type(state).__name__}")
            parts = [(f"{name}[{i}] ({n})", s) for i, (n, s) in enumerate(zip(names, state))]
        else:
            parts = [(name, state)]
        out = []
        for (label, s), shape in zip(parts, shapes):
            s = as_layer_dtype(s, self.dtype, label, f"this {type(self).__name__}")
            want = shape if batched else (shape[0], shape[2])
            if s.shape != want:
                raise ValueError(f"{label} must have shape {want}, got {s.shape}")
            out.append(np.array(s.reshape(shape), dtype=self.dtype, order="C", copy=True))
        return out

    def _pack_state(self, parts, batched):
        if not batched:
            parts = [p[:, 0, :] for p in parts]
        return tuple(parts) if len(self.state_names) > 1 else parts[0]

    def _to_output(self, y, batched):
        if not batched:
            return y[:, 0, :]
        return y.transpose(1, 0, 2) if self.batch_first else y

    # --------------------------------------------------------------- forward

    def __call__(self, x, state=None, lengths=None):
        """Inference (no dropout, no cache): ``y, state = layer(x, state=None, lengths=None)``.

        See the class docstring for the shapes. Returns y and the final state (h, or
        (h, c) for an LSTM)."""
        y, state, _ = self._run(x, state, lengths, train=False)
        return y, state

    def forward(self, x, state=None, lengths=None, checkpoint=None):
        """Training forward: ``y, state, cache = layer.forward(x, state=None, lengths=None)``.

        Parameters
        ----------
        x : array_like, (T, B, I) ((B, T, I) with batch_first) or unbatched (T, I)
        state : None, or the initial state like the final one (h, or (h, c) for LSTM)
        lengths : None or array_like of B ints in [0, T]
        checkpoint : None, int >= 1 or "sqrt"
            Checkpointed BPTT (see rnnx.checkpoint): keep only the state every
            ``checkpoint`` steps and recompute each segment's activations in backward,
            O(T/k + k) steps of memory instead of O(T); "sqrt" picks k near sqrt(T).

        Returns
        -------
        y : ndarray (T, B, D*H), like x's layout, of the layer's dtype
        state : the final state, h (L*D, B, H) or (h, c)
        cache : what backward needs (opaque). It holds copies of x and lengths, so the
            caller may change them; it goes stale if the parameters change.
        """
        x, lengths = unpack_sequence(x, lengths, self.batch_first)
        if checkpoint is not None:
            return _checkpoint.forward(self, x, state, lengths, checkpoint)
        return self._run(x, state, lengths, train=True)

    def _run(self, x, state, lengths, train):
        x, lengths = unpack_sequence(x, lengths, self.batch_first)
        x_given = x
        x, batched, lengths = self._check_input(x, lengths)
        T, B = x.shape[0], x.shape[1]
        init = self._check_states(state, B, batched, "state")
        final = [np.empty_like(s) for s in init]
        has_c = "c" in self.state_names
        H, D = self._state_width, self.num_directions   # H: y's width per direction (P if projected)
        inputs, cores, masks = [], [], []
        layer_input = x
        for k in range(self.num_layers):
            if k > 0 and train and self.training and self.dropout > 0:
                # inverted dropout on layer k-1's output: kept values scaled by 1/(1-p)
                keep = self.dropout_rng.random(layer_input.shape) >= self.dropout
                mask = keep.astype(self.dtype) * self.dtype.type(1.0 / (1.0 - self.dropout))
                masks.append(mask)
                layer_input = layer_input * mask
            y = np.empty((T, B, D * H), self.dtype)

            def direction(d, workspace, k=k, layer_input=layer_input, y=y):
                i = k * D + d
                w_ih, w_hh, b_ih, b_hh = self._weights(k, d)
                return _core.forward(
                    self._cell, layer_input, init[0][i], init[1][i] if has_c else None,
                    w_ih, w_hh, b_ih, b_hh, lengths, self._reverse(d), y[:, :, d * H:(d + 1) * H],
                    final[0][i], final[1][i] if has_c else None, train, **self._proj(k, d),
                    workspace=workspace)

            if D == 2 and _concurrent_directions(T, B, self._gates * self.hidden_size,
                                                 self.hidden_size):
                # the reverse direction on the helper thread, with memory of its own
                reverse = _direction_executor().submit(direction, 1, None)
                try:
                    forward_core = direction(0, _workspace())
                finally:
                    reverse_core = reverse.result()
                cores += [forward_core, reverse_core]
            else:
                for d in range(D):
                    cores.append(direction(d, _workspace()))
            inputs.append(layer_input)
            layer_input = y
        cache = None
        if train:
            if np.may_share_memory(inputs[0], x_given):
                inputs[0] = inputs[0].copy()  # backward must see x as it was, whatever the caller does
            cache = Cache(self, dict(inputs=inputs, cores=cores, masks=masks, lengths=lengths,
                                     T=T, B=B, batched=batched))
        return self._to_output(layer_input, batched), self._pack_state(final, batched), cache

    # -------------------------------------------------------------- backward

    def backward(self, cache, dy, dstate=None):
        """Full BPTT through a training forward of this layer:
        ``dx, dstate0, grads = layer.backward(cache, dy, dstate=None)``.

        Parameters
        ----------
        cache : the cache that this layer's forward returned
        dy : None or array, the gradient of the loss with respect to y, y's shape
        dstate : None or the gradient with respect to the final state, like it

        Returns
        -------
        dx : ndarray, x's shape: the gradient with respect to x
        dstate0 : the gradient with respect to the initial state, like it
        grads : dict, the keys and shapes of state_dict()

        Raises
        ------
        ValueError
            The cache is stale (parameters changed since its forward) or another
            layer's; dy or dstate has the wrong shape.
        """
        if isinstance(cache, _checkpoint.CheckpointCache):
            return _checkpoint.backward(self, cache, dy, dstate)
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be the cache returned by forward, got {type(cache).__name__}")
        self._check_fresh(cache)
        c = cache.data
        T, B, batched = c["T"], c["B"], c["batched"]
        H, D = self._state_width, self.num_directions   # H: y's width per direction
        dy = self._check_output_grad(dy, T, B, batched)
        dfinal = self._check_states(dstate, B, batched, "dstate")
        dinit = [np.empty_like(s) for s in dfinal]
        has_c = "c" in self.state_names
        grads = {name: np.zeros_like(p) for name, p in self._params.items()}
        for k in reversed(range(self.num_layers)):
            layer_input = c["inputs"][k]
            dx = np.zeros_like(layer_input)
            for d in range(D):
                i = k * D + d
                w_ih, w_hh, _, _ = self._weights(k, d)
                dw, proj = self._grad_args(grads, k, d)
                _core.backward(
                    self._cell, layer_input, w_ih, w_hh, c["lengths"], self._reverse(d), c["cores"][i],
                    None if dy is None else dy[:, :, d * H:(d + 1) * H],
                    dfinal[0][i], dfinal[1][i] if has_c else None,
                    dx, dinit[0][i], dinit[1][i] if has_c else None, *dw, **proj,
                    workspace=_workspace())
            if k > 0 and c["masks"]:
                dx *= c["masks"][k - 1]      # forward: layer_input = y_{k-1} * mask
            dy = dx
        return self._to_output(dy, batched), self._pack_state(dinit, batched), grads

    def _check_output_grad(self, dy, T, B, batched):
        if dy is None:
            return None
        dy = as_layer_dtype(dy, self.dtype, "dy", f"this {type(self).__name__}")
        DH = self.output_size
        want = (T, B, DH) if not self.batch_first else (B, T, DH)
        if not batched:
            want = (T, DH)
        if dy.shape != want:
            raise ValueError(f"dy must have the shape of y, {want}, got {dy.shape}")
        if not batched:
            dy = dy[:, None, :]
        elif self.batch_first:
            dy = dy.transpose(1, 0, 2)
        return np.ascontiguousarray(dy, dtype=self.dtype)

    # ------------------------------------------------------------- streaming

    def zero_state(self, batch_size=1):
        """The zero state for a batch of batch_size: h, or (h, c) for LSTM, each
        (L*D, batch_size, H)."""
        B = positive_int(batch_size, "batch_size")
        return self._pack_state([np.zeros(self._state_shape(B, n), self.dtype)
                                 for n in self.state_names], True)

    def stream(self, batch_size=1, state=None):
        """A Stream: step-by-step inference on a unidirectional layer.

        Parameters
        ----------
        batch_size : int, default 1
            B, the rows stepped together.
        state : None or the initial state, h or (h, c), each (L, B, H)

        Returns
        -------
        Stream
            Holding a copy of the weights as they are now (make a new one after
            training), the state and every buffer a step needs.
        """
        if self.bidirectional or self.go_backwards:
            raise ValueError(f"a {'bidirectional' if self.bidirectional else 'go_backwards'} "
                             "layer cannot stream: its reverse direction needs the whole sequence")
        return Stream(self, batch_size, state)


class Stream:
    """Step-by-step inference through a unidirectional recurrent layer, keeping the state.

    Made by ``layer.stream(batch_size=1, state=None)``. It holds a copy of the layer's
    weights as they were when it was made, its state, and every buffer a step needs,
    so a step allocates only its result.

    Attributes
    ----------
    batch_size : int
        B.
    state : h, or (h, c) for an LSTM, each (L, B, H): a copy of the current state.

    Examples
    --------
    >>> import numpy as np, rnnx
    >>> stream = rnnx.LSTM(8, 32, num_layers=2).stream(batch_size=1)
    >>> y_t = stream.step(np.zeros((1, 8), np.float32))          # (1, 32)
    >>> y = stream.run(np.zeros((20, 1, 8), np.float32))         # (20, 1, 32), continues
    >>> stream.reset()                                            # back to zeros
    """

    def __init__(self, layer, batch_size=1, state=None):
        """Made by layer.stream(batch_size, state); see help(rnnx.Stream)."""
        B = positive_int(batch_size, "batch_size")
        self._layer = layer
        self._weights = [tuple(None if w is None else w.copy() for w in layer._weights(k, 0))
                         for k in range(layer.num_layers)]
        # an LSTM's projection, {"w_hr": copy} per layer, or {} (the keyword of _core.forward)
        self._projections = [{n: w.copy() for n, w in layer._proj(k, 0).items()}
                             for k in range(layer.num_layers)]
        if layer.proj_size:
            self._core = _ProjectedStreamCore(layer, self._weights, self._projections, B)
        else:
            self._core = _core.Stream(layer._cell, self._weights, B, layer.dtype)
        self._workspace = _core.Workspace()     # run()'s scratch, reused chunk after chunk
        self._core_step = self._core.step
        # One step at a time: a step writes the shared state and buffers with the GIL
        # released, so threads sharing a stream take turns (each step then follows the
        # previous one, as if called serially).  Threads with streams of their own run
        # in parallel.
        self._lock = threading.Lock()
        self._dtype = layer.dtype
        self.batch_size = B
        self.reset(state)

    def __repr__(self):
        layer = self._layer
        return (f"<rnnx.Stream of {type(layer).__name__}(input_size={layer.input_size}, "
                f"hidden_size={layer.hidden_size}, num_layers={layer.num_layers}, "
                f"dtype={layer.dtype.name}), batch_size={self.batch_size}>")

    def step(self, x_t):
        """One time step: ``y_t = stream.step(x_t)``, updating the state.

        Parameters
        ----------
        x_t : ndarray (B, I), or (I,) when batch_size is 1
            Of the layer's dtype (a lower precision is converted; see the dtype policy).

        Returns
        -------
        y_t : ndarray (B, H), or (H,) for an unbatched x_t: the last layer's output.

        A whole chunk (T, B, I) goes to ``stream.run`` (one call into C per layer).
        """
        if getattr(x_t, "dtype", None) is not self._dtype:
            x_t = self._coerce(x_t)
        try:
            with self._lock:
                return self._core_step(x_t)
        except ValueError:
            if np.ndim(x_t) == 3:
                raise ValueError(f"step takes one time step x_t (B, I), got a chunk of shape "
                                 f"{np.shape(x_t)}: use stream.run(x) for (T, B, I)") from None
            raise

    def _coerce(self, x_t):
        # native byte order too: the core's fast path reads the bytes as they are
        x_t = as_layer_dtype(x_t, self._dtype, "x_t", "this stream")
        return np.ascontiguousarray(x_t, dtype=self._dtype) if np.ndim(x_t) < 3 else x_t

    def run(self, x):
        """Run a chunk, carrying the state: ``y = stream.run(x)``.

        Parameters
        ----------
        x : ndarray (T, B, I), or (T, I) when batch_size is 1

        Returns
        -------
        y : ndarray (T, B, H), or (T, H): the last layer's output at every step.

        Equals calling step on each x[t] (bit for bit in float64), with one call into
        C per layer instead of one per step.
        """
        layer = self._layer
        B, I, H = self.batch_size, layer.input_size, layer._state_width
        x = as_layer_dtype(x, self._dtype, "x", "this stream")
        unbatched = x.ndim == 2 and B == 1
        if unbatched:
            x = x[:, None, :]
        if x.ndim != 3 or x.shape[1:] != (B, I):
            want = f"(T, {B}, {I})" + (f" or (T, {I})" if B == 1 else "")
            raise ValueError(f"x must be {want} for batch_size={B}, input_size={I}, got {x.shape}")
        T = x.shape[0]
        if T == 0:
            return np.zeros((0, H) if unbatched else (0, B, H), self._dtype)
        # native byte order too: the core reads the bytes as they are
        x = np.require(x, dtype=self._dtype.newbyteorder("="), requirements=("C", "A"))
        with self._lock:
            if any(self._projections):    # the core's Stream has no projection
                y = _stream_layers(layer, self._core, self._weights, self._projections, x,
                                   "c" in layer.state_names)
            else:
                y = self._core.run(x, self._workspace)
        return y[:, 0, :] if unbatched else y

    def reset(self, state=None):
        """Set the state: None for zeros, or h / (h, c), each (L, B, H) (copied)."""
        parts = self._layer._check_states(state, self.batch_size, True, "state")
        with self._lock:
            self._core.set_state(*parts)

    @property
    def state(self):
        with self._lock:
            h, c = self._core.get_state()
        return self._layer._pack_state([h, c][:len(self._layer.state_names)], True)


def _stream_layers(layer, core, weights, projections, x, has_c):
    """Run x (T, B, I) through every layer of a stream from core's state, which becomes the
    state after the last step; returns the last layer's y (T, B, width)."""
    T, B = x.shape[0], x.shape[1]
    h, c = core.get_state()
    h_n, c_n = np.empty_like(h), np.empty_like(c)
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        y = np.empty((T, B, layer._state_width), layer.dtype)
        _core.forward(layer._cell, x, h[k], c[k] if has_c else None, w_ih, w_hh, b_ih, b_hh,
                      None, False, y, h_n[k], c_n[k] if has_c else None, False,
                      **projections[k])
        x = y
    core.set_state(h_n, c_n if has_c else None)
    return x


class _ProjectedStreamCore:
    """The state and step of a Stream over an LSTM with a projection: one call of the core
    per layer and step (_core.Stream, which keeps W_hh packed, has no projection).  Same
    interface as _core.Stream: step, get_state, set_state."""

    def __init__(self, layer, weights, projections, batch_size):
        self._layer, self._weights = layer, weights
        # with each layer's projection: its weights packed once, W_ih^T, and every row's
        # input projection alone (row_exact: a step's numbers whatever B, as before)
        self._projections = [dict(p, w_hh_packed=_core.pack_weights(layer._cell, w[1], p["w_hr"]),
                                  w_ih_t=np.ascontiguousarray(w[0].T), row_exact=True)
                             for w, p in zip(weights, projections)]
        self.B = batch_size
        L, H, P = layer.num_layers, layer.hidden_size, layer._state_width
        self._h = np.zeros((L, batch_size, P), layer.dtype)
        self._c = np.zeros((L, batch_size, H), layer.dtype)

    def step(self, x_t):
        layer, B, I = self._layer, self.B, self._layer.input_size
        a = np.asarray(x_t)
        unbatched = a.ndim == 1 and B == 1
        if unbatched:
            a = a[None, :]
        if a.ndim != 2 or a.shape != (B, I):
            want = f"({B}, {I})" + (f" or ({I},)" if B == 1 else "")
            raise ValueError(f"x_t must be {want} for batch_size={B}, input_size={I}, "
                             f"got {np.shape(x_t)}")
        x = np.ascontiguousarray(a, dtype=layer.dtype)[None]
        y = _stream_layers(layer, self, self._weights, self._projections, x, True)[0]
        return y[0] if unbatched else y

    def get_state(self):
        return self._h.copy(), self._c.copy()

    def set_state(self, h, c=None):
        # h, c come checked (layer._check_states) and are copied here
        self._h = np.zeros_like(self._h) if h is None else np.array(h, self._layer.dtype)
        self._c = np.zeros_like(self._c) if c is None else np.array(c, self._layer.dtype)


class RNN(_Recurrent):
    """Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu.

    ``rnnx.RNN(input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32, seed=None,
    nonlinearity="tanh")``
    """

    _gates = 1
    state_names = ("h",)
    _config_keys = _Recurrent._config_keys + ("nonlinearity",)

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32,
                 seed=None, nonlinearity="tanh"):
        """Build the layer, weights uniform in +-1/sqrt(hidden_size); see help(rnnx.RNN)."""
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._cell = _core.RNN_TANH if nonlinearity == "tanh" else _core.RNN_RELU
        self.cell_name = "rnn_" + nonlinearity
        self.go_backwards = bool(go_backwards)
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, dtype, seed)


class LSTM(_Recurrent):
    """LSTM with PyTorch's gate order i, f, g, o; its state is (h, c).

    ``rnnx.LSTM(input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32, seed=None,
    proj_size=0)``::

        [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        i, f, o = sigmoid(.)   g = tanh(.)
        c_t = f * c_{t-1} + i * g      h_t = o * tanh(c_t)

    With ``proj_size`` P > 0 (PyTorch's LSTM with projections), h_t = W_hr (o * tanh(c_t)):
    h and y are P wide, c stays H wide.
    """

    _gates = 4
    _cell = _core.LSTM
    cell_name = "lstm"
    state_names = ("h", "c")
    _config_keys = _Recurrent._config_keys + ("proj_size",)

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32,
                 seed=None, proj_size=0):
        """Build the layer, weights uniform in +-1/sqrt(hidden_size); see help(rnnx.LSTM)."""
        self.go_backwards = bool(go_backwards)
        if isinstance(proj_size, (bool, np.bool_)) or not isinstance(proj_size, (int, np.integer)):
            raise TypeError(f"proj_size must be an int, got {type(proj_size).__name__}")
        H = positive_int(hidden_size, "hidden_size")
        if not 0 <= proj_size < H:
            raise ValueError(f"proj_size must lie in [0, hidden_size) = [0, {H}) (0: no "
                             f"projection), got {proj_size}")
        self.proj_size = int(proj_size)
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, dtype, seed)

    def config(self):
        """dict: the constructor's keyword arguments (see Module.config); ``proj_size`` only
        when it is not 0, so a plain LSTM's config (and saved file) is as it was before
        projections existed."""
        out = super().config()
        if not self.proj_size:
            del out["proj_size"]
        return out


class GRU(_Recurrent):
    """GRU with PyTorch's gate order r, z, n; its state is h.

    ``rnnx.GRU(input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32, seed=None,
    reset_after=True)``::

        r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))     reset_after=True
        n = tanh(W_in x_t + b_in + W_hn (r * h_{t-1}) + b_hn)     reset_after=False
        h_t = (1 - z) * n + z * h_{t-1}
    """

    _gates = 3
    state_names = ("h",)
    _config_keys = _Recurrent._config_keys + ("reset_after",)

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32,
                 seed=None, reset_after=True):
        """Build the layer, weights uniform in +-1/sqrt(hidden_size); see help(rnnx.GRU)."""
        self.reset_after = bool(reset_after)
        self._cell = _core.GRU if self.reset_after else _core.GRU_RESET_BEFORE
        self.cell_name = "gru_reset_after" if self.reset_after else "gru_reset_before"
        self.go_backwards = bool(go_backwards)
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, dtype, seed)


RNN.__doc__ += _COMMON_DOC.format(
    extra="    nonlinearity : 'tanh' (default) or 'relu'\n        The activation act.\n",
    state_names="('h',)", gates=1, state_form="h")
LSTM.__doc__ += _COMMON_DOC.format(
    extra="    proj_size : int in [0, hidden_size), default 0\n        P > 0: an LSTM with "
          "projections (PyTorch's): h_t = W_hr (o * tanh(c_t)), with\n        ``weight_hr_l{k}`` "
          "(P, H), no bias; h, h0, h_n and y per direction are P wide,\n        weight_hh is "
          "(G, P), and layer k > 0 takes D*P inputs; c stays H wide.\n",
    state_names="('h', 'c')", gates=4, state_form="(h, c)")
GRU.__doc__ += _COMMON_DOC.format(
    extra="    reset_after : bool, default True\n        True applies the reset gate after the "
          "recurrent product (PyTorch, cuDNN, ONNX\n        linear_before_reset=1); False before "
          "it (Cho et al. 2014, Keras reset_after=False,\n        the ONNX default).\n",
    state_names="('h',)", gates=3, state_form="h")

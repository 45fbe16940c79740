"""_Recurrent: a stack of recurrent layers over one cell of the core; rnnx.RNN, rnnx.LSTM
and rnnx.GRU (rnnx/layers.py) are its subclasses and differ only in their cell.

It owns the parameters (PyTorch's names, shapes and gate order), checks what it is given,
and runs each direction of each layer of the stack as one call into the C core
(rnnx/_core.pyx): the training forward, full BPTT, and the Stream it makes (rnnx/stream.py).
"""
import warnings

import numpy as np

from . import _core
from . import cells
from . import checkpoint as _checkpoint
from .directions import _concurrent_directions, _direction_executor, _workspace
from .module import Cache, Module, as_layer_dtype, check_dtype, check_seed, positive_int, \
    unpack_sequence
from .reference import check_lengths
from .stream import Stream


class _Recurrent(Module):
    """A stack of recurrent layers; RNN, LSTM and GRU differ only in their cell (the
    subclass calls _use_cell with the core's name of it before _setup)."""

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

    proj_size = 0       # an LSTM's projection (LSTM sets it); 0: none
    peephole = False    # an LSTM's peepholes (LSTM sets it)

    # The core's name of each parameter option and of its _core.forward/backward keyword.
    _OPTION_ARGS = {"weight_hr": "w_hr", "weight_peephole": "w_peep"}

    def _use_cell(self, name):
        """Run the core's cell `name` (a row of rnnx.cells.TABLE, one of the class's _cells,
        which share their gates and states): its code and variant name (cell_name)."""
        row = cells.row(name)
        self._cell, self.cell_name = row["code"], cells.variant_name(row["name"])

    @property
    def _state_width(self):
        """The width of h and of y per direction: proj_size if an LSTM projects, else H."""
        return self.proj_size or self.hidden_size

    def _cell_shapes(self, k):
        """{name: shape} of one direction of layer k, from the core's table: weight_ih,
        weight_hh, the biases, then weight_hr and weight_peephole where the layer has them."""
        inputs = self.input_size if k == 0 else self.num_directions * self._state_width
        return cells.parameter_shapes(self.cell_name, inputs, self.hidden_size, self.proj_size,
                                      self.peephole, self.bias)

    def _param_names(self, k, d):
        suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
        return [name + suffix for name in self._cell_shapes(k)]

    def _param_shapes(self):
        shapes = {}
        for k in range(self.num_layers):
            for d in range(self.num_directions):
                suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
                shapes.update((name + suffix, shape) for name, shape in self._cell_shapes(k).items())
        return shapes

    def _init_params(self, rng):
        # PyTorch's initialisation: every tensor uniform in +-1/sqrt(hidden_size) (the
        # peepholes too).
        bound = 1.0 / np.sqrt(self.hidden_size)
        return {name: rng.uniform(-bound, bound, size=shape).astype(self.dtype)
                for name, shape in self._param_shapes().items()}

    def _reverse(self, d):
        """Whether direction d runs backward in time: a bidirectional layer's second one,
        or the only one of a go_backwards layer."""
        return d == 1 or self.go_backwards

    def _weights(self, k, d):
        """(w_ih, w_hh, b_ih, b_hh) of layer k, direction d; biases None without bias."""
        suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
        p = self._params
        if not self.bias:
            return p["weight_ih" + suffix], p["weight_hh" + suffix], None, None
        return tuple(p[name + suffix] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _cell_options(self, k, d):
        """The keyword arguments of _core.forward for layer k, direction d's options:
        {"w_hr": weight_hr} for an LSTM that projects, {"w_peep": weight_peephole} for one
        with peepholes, both, or {}."""
        suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
        return {arg: self._params[name + suffix] for name, arg in self._OPTION_ARGS.items()
                if name + suffix in self._params}

    def _grad_args(self, grads, k, d):
        """(dw_ih, dw_hh, db_ih, db_hh) and the options' {"w_hr", "dw_hr", "w_peep",
        "dw_peep"} for _core.backward."""
        suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
        dw = [grads.get(name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        extra = self._cell_options(k, d)
        for name, arg in self._OPTION_ARGS.items():
            if arg in extra:
                extra["d" + arg] = grads[name + suffix]
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
        if not train and self.num_layers > 1 and D == 1 and lengths is None \
                and not self.go_backwards and T > 0:
            y = self._stack_inference(x, init, final)
            return self._to_output(y, batched), self._pack_state(final, batched), None
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
                    final[0][i], final[1][i] if has_c else None, train, **self._cell_options(k, d),
                    workspace=workspace)

            if D == 2 and not train:
                # inference: both directions in one core call, side by side on the team
                _core.forward_side_by_side([
                    self._pass(k, d, layer_input, y[:, :, d * H:(d + 1) * H], init, final,
                               lengths=lengths, reverse=self._reverse(d)) for d in range(D)])
            elif D == 2 and _concurrent_directions(T, B, self._gates * self.hidden_size,
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

    def _stack_inference(self, x, init, final):
        """The layers of a one-direction stack in one core call (_core.forward_stack): a
        wavefront, layer k + 1 a chunk of steps behind layer k on another thread, where
        steps are too small to split or threads no more than layers; the same numbers
        whatever the thread count (and in float64 those of layer-by-layer calls).
        Writes final's states; returns the last layer's y (T, B, S)."""
        layers, layer_input = [], x
        for k in range(self.num_layers):
            y = np.empty((x.shape[0], x.shape[1], self._state_width), self.dtype)
            layers.append(self._pass(k, 0, layer_input, y, init, final))
            layer_input = y
        _core.forward_stack(layers)
        return layer_input

    def _pass(self, k, d, x, y, init, final, **options):
        """The arguments of layer k, direction d's core call (forward_stack's and
        forward_side_by_side's dicts) over x into y, from init's states into final's."""
        i = k * self.num_directions + d
        has_c = "c" in self.state_names
        w_ih, w_hh, b_ih, b_hh = self._weights(k, d)
        return dict(cell=self._cell, x=x, h0=init[0][i], c0=init[1][i] if has_c else None,
                    w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, y=y, h_n=final[0][i],
                    c_n=final[1][i] if has_c else None, **self._cell_options(k, d), **options)

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

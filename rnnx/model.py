"""Sequential: recurrent layers and Dense layers composed into one model.

    model = rnnx.Sequential(rnnx.LSTM(1, 32, num_layers=2), rnnx.Dense(32, 1))
    y, state = model(x)                                   # inference
    y, state, cache = model.forward(x, state, lengths)    # training forward
    dx, dstate0, grads = model.backward(cache, dy, dstate)
    stream = model.stream(batch_size=1)                   # step-by-step inference

Many-to-many (default): every layer sees the whole sequence; a Dense layer is applied at every
step at once (one GEMM over all T*B rows), so y is (T, B, out) (or (B, T, out) batch_first).

Many-to-one: one output per sequence, read from the last recurrent layer, and the layers
after it see (B, features), so y is (B, out). Two conventions, both common in PyTorch code:

    many_to_one="output"   y at each row's last valid step (lengths[b] - 1, or T - 1), what
                           `out[length - 1]` gathers: for a bidirectional layer the reverse
                           half there has seen one step (a go_backwards layer's only one too)
    many_to_one="state"    the final states of the last layer, concatenated: the forward
                           direction at the last valid step, the reverse one at t = 0 where
                           it ends (PyTorch's `cat(h_n[-2], h_n[-1])`, Keras's Bidirectional
                           with return_sequences=False); a go_backwards layer's y at t = 0
    many_to_one=True       the same as "state" (kept for older code; stored as "state")

The two differ only for a bidirectional or go_backwards last recurrent layer. A row of
length 0 has no step: it reads zeros either way.

The model's state is a tuple with one entry per recurrent layer, each in that layer's form
(an array (L*D, B, H), or (h, c) for an LSTM); None, or a None entry, means zeros. It is
handed over explicitly between chunks, as the layers do: no gradient crosses it.

An rnnx.Embedding may come first: the model then takes integer ids, x (T, B) ((B, T)
batch_first, (T,) unbatched, (...) for Embedding and Dense layers only), and backward gives
no dx (None in its place).

Parameter names are "<index>.<layer name>" as in PyTorch's nn.Sequential: "0.weight_ih_l0",
"1.weight", ... parameters() gives the live arrays (optimizers update them in place),
gradients() the gradients of the last backward, state_dict()/load_state_dict() copies.
"""
import numpy as np

from .dense import Dense
from .embedding import Embedding
from ._runtime import holding_blas
from .module import Cache, Module, as_array, unpack_sequence


def _layer_classes():
    """{type name: class} of every layer a config can name (layers is imported late: it
    needs the compiled core, and this module imports without it)."""
    from . import layers
    recurrent = {cls.__name__: cls for cls, _ in layers.variants().values()}   # the cell table's
    return {**recurrent, "Dense": Dense, "Embedding": Embedding}


def layer_from_spec(spec):
    """Rebuild a layer from {"type": name, "config": kwargs} (see layer_spec)."""
    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise ValueError(f"a layer spec must be a dict with keys 'type' and 'config', got {spec!r}")
    classes = _layer_classes()
    if spec["type"] not in classes:
        raise ValueError(f"layer type must be one of {sorted(classes)}, got {spec['type']!r}")
    return classes[spec["type"]](**spec["config"])


def layer_spec(layer):
    """{"type": class name, "config": layer.config()}: JSON-serialisable architecture."""
    return {"type": type(layer).__name__, "config": layer.config()}


MANY_TO_ONE = (False, "output", "state")


def check_many_to_one(value):
    """many_to_one as False, "output" or "state" (True is "state"), or an error naming it."""
    if value is True or (isinstance(value, np.bool_) and value):
        return "state"
    if value is False or value is None or (isinstance(value, np.bool_) and not value):
        return False
    if isinstance(value, str) and value in MANY_TO_ONE:
        return value
    raise ValueError(f"many_to_one must be False, 'output', 'state' or True (= 'state'), got "
                     f"{value!r}")


def _map_state(state, fn):
    """Apply fn to every array of one layer's state (an array or an (h, c) tuple)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(fn(s) for s in state)
    return fn(state)


class Sequential:
    """A stack of recurrent layers (rnnx.RNN / LSTM / GRU) and rnnx.Dense layers.

    Parameters
    ----------
    *layers : rnnx layers (any rnnx.module.Module), input first
        An rnnx.Embedding may be the first layer (and only the first). Each layer's input_size must equal the previous layer's output_size (D*H for a
        recurrent layer, out_features for Dense); all share one dtype and, among the
        recurrent ones, one batch_first.
    many_to_one : False (default), "output", "state" or True
        False: an output at every step (many-to-many). "output": one output per
        sequence, the last recurrent layer's y at each row's last valid step (for a
        bidirectional layer both halves there, the reverse one after one step).
        "state": its final states concatenated (forward at the last valid step, reverse
        at t = 0: PyTorch's ``cat(h_n[-2], h_n[-1])``). True is "state" (and is stored
        as "state" in ``model.many_to_one``). The two agree for a forward-only layer.

    Notes
    -----
    ``y, state = model(x, state=None, lengths=None)``: inference (no dropout).
    ``y, state, cache = model.forward(x, state=None, lengths=None, logits=False)``.
    ``dx, dstate0, grads = model.backward(cache, dy, dstate=None)``.

    x is (T, B, I) ((B, T, I) batch_first, (T, I) unbatched), or (..., I) for a model of
    Dense layers only; with an Embedding first, integer ids of those shapes without the I
    axis (``takes_ids`` is then True, and backward's dx is None); the state is a tuple with one entry per recurrent layer.
    """

    def __init__(self, *layers, many_to_one=False):
        """Stack the layers; see help(rnnx.Sequential)."""
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer, got none")
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"layers[{index}] must be an rnnx layer (RNN, LSTM, GRU, Dense or "
                                f"Embedding), got {type(layer).__name__}")
            if index and isinstance(layer, Embedding):
                raise ValueError(f"an Embedding takes integer ids, so it must be the first layer, "
                                 f"got one at layers[{index}]")
        self.layers = list(layers)
        self.many_to_one = check_many_to_one(many_to_one)
        self._recurrent = [i for i, layer in enumerate(self.layers) if layer.is_recurrent]
        if self.many_to_one and not self._recurrent:
            raise ValueError(f"many_to_one={many_to_one!r} needs a recurrent layer, got only "
                             "Dense layers")
        firsts = {bool(self.layers[i].batch_first) for i in self._recurrent}
        if len(firsts) > 1:
            raise ValueError("all recurrent layers must agree on batch_first, got both True and False")
        self.batch_first = firsts.pop() if firsts else False
        dtypes = {np.dtype(layer.dtype) for layer in self.layers}
        if len(dtypes) > 1:
            raise TypeError(f"all layers must have one dtype, got {sorted(d.name for d in dtypes)}")
        self.dtype = dtypes.pop()
        width = None
        for index, layer in enumerate(self.layers):
            if width is not None and layer.input_size != width:
                raise ValueError(f"layers[{index}] takes {layer.input_size} input features but "
                                 f"layers[{index - 1}] gives {width}")
            width = layer.output_size
        self.input_size = self.layers[0].input_size
        #: True when x is integer ids (an Embedding first), False when x is (..., I) floats.
        self.takes_ids = isinstance(self.layers[0], Embedding)
        self.output_size = width
        self._grads = None

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner},\n  many_to_one={self.many_to_one!r})"

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    @property
    def is_recurrent(self):
        """True when the model has a recurrent layer."""
        return bool(self._recurrent)

    @property
    def output_activation(self):
        """The last layer's activation ("identity" if it is a recurrent layer)."""
        return getattr(self.layers[-1], "activation", "identity")

    # -- modes and dtype (PyTorch's habits) ----------------------------------------------

    @property
    def training(self):
        """True in training mode (the default): forward() applies the layers' dropout."""
        return all(layer.training for layer in self.layers)

    def train(self, mode=True):
        """Training mode (``mode=True``) or evaluation mode for every layer; returns the model."""
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        """Evaluation mode, ``train(False)``: forward() applies no dropout; returns the model."""
        return self.train(False)

    def double(self):
        """Every layer's parameters as float64 (new arrays, the same values); returns the model."""
        return self._to_dtype(np.float64)

    def float(self):
        """Every layer's parameters as float32 (new arrays, values rounded); returns the model."""
        return self._to_dtype(np.float32)

    def _to_dtype(self, dtype):
        for layer in self.layers:
            layer._to_dtype(dtype)
        self.dtype = np.dtype(dtype)
        return self

    # -- computation ---------------------------------------------------------------------

    def _check_state(self, state):
        if state is None:
            return [None] * len(self._recurrent)
        if not isinstance(state, (tuple, list)) or len(state) != len(self._recurrent):
            raise ValueError(f"state must be None or a tuple with one entry per recurrent layer "
                             f"({len(self._recurrent)}), got {type(state).__name__}"
                             + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else ""))
        return list(state)

    def __call__(self, x, state=None, lengths=None, logits=False):
        """Inference: ``y, state = model(x, state=None, lengths=None)`` (no dropout, no cache).

        x may be unbatched, (T, I): then the state too is unbatched, (L*D, H) per layer,
        and y is (T, out), or (out,) for many-to-one. logits=True leaves out the last
        Dense layer's activation. A torch PackedSequence x is unpacked into x and lengths."""
        x, lengths = unpack_sequence(x, lengths, self.batch_first)
        x = as_array(x, "x")
        unbatched = self.is_recurrent and x.ndim == (1 if self.takes_ids else 2)
        if unbatched:
            axis = 0 if self.batch_first else 1
            x = np.expand_dims(x, axis)
            state = None if state is None else tuple(
                _map_state(s, lambda a: np.expand_dims(np.asarray(a), 1)) for s in state)
        y, state, _ = self._run(x, state, lengths, logits, train=False)
        if unbatched:
            y = y[0] if self.many_to_one else np.squeeze(y, axis)
            state = tuple(_map_state(s, lambda a: a[:, 0]) for s in state)
        return y, state

    def stream(self, batch_size=1, state=None):
        """Step-by-step inference through every layer (rnnx.model_stream.SequentialStream):
        ``y_t = model.stream(batch_size=1).step(x_t)``, with ``run(x)``, ``reset(state)`` and
        ``state`` as a layer's Stream, the state in the model's form (one entry per recurrent
        layer). Recurrent layers run through their own streams, Dense heads (and an
        Embedding first) are applied per step. It holds a copy of the weights as they are
        now. A many_to_one model, or one with a bidirectional or go_backwards layer, cannot
        stream (ValueError)."""
        from .model_stream import SequentialStream
        return SequentialStream(self, batch_size, state)

    def predict(self, x, state=None, lengths=None):
        """The output only, with the output activation applied (inference)."""
        return self(x, state, lengths)[0]

    def forward(self, x, state=None, lengths=None, logits=False, checkpoint=None):
        """Training forward: ``y, state, cache = model.forward(x, state=None, lengths=None)``.

        logits=True leaves out the last Dense layer's activation (for the losses that
        fuse it). Recurrent layers with dropout apply it here (and not in inference).
        checkpoint=k or "sqrt": checkpointed BPTT in every recurrent layer (see
        rnnx.checkpoint)."""
        return self._run(x, state, lengths, logits, train=True, checkpoint=checkpoint)

    @holding_blas
    def _run(self, x, state, lengths, logits, train, checkpoint=None):
        x, lengths = unpack_sequence(x, lengths, self.batch_first)
        states_in = self._check_state(state)
        states_out = []
        caches = []
        h = x
        last = len(self.layers) - 1
        last_recurrent = self._recurrent[-1] if self._recurrent else -1
        for index, layer in enumerate(self.layers):
            layer_state = states_in[len(states_out)] if layer.is_recurrent else None
            options = {"logits": True} if logits and index == last and hasattr(layer, "activation") \
                else {}
            if checkpoint is not None and train and layer.is_recurrent:
                h, layer_state, cache = layer.forward(h, layer_state, lengths,
                                                      checkpoint=checkpoint)
            else:
                h, layer_state, cache = layer._run(h, layer_state, lengths, train=train,
                                                   **options)
            pool = None
            if layer.is_recurrent:
                states_out.append(layer_state)
                if index == last_recurrent and self.many_to_one:
                    h, pool = self._last_step(h, layer, lengths)
            caches.append((cache, pool))
        cache = Cache(self, caches) if train else None
        return h, tuple(states_out), cache

    def _last_step(self, y, layer, lengths):
        """y (T, B, D*H) -> (B, D*H): see many_to_one in the module docstring."""
        if self.batch_first:
            y = np.swapaxes(y, 0, 1)
        T, B, _ = y.shape
        if T == 0:
            raise ValueError("x must have at least one time step (T >= 1) for a many_to_one "
                             "model, which reads each sequence's last step; got T=0")
        steps = self._pool_steps(layer, T, B, lengths)
        rows = np.arange(B)
        pooled = np.concatenate([y[last, rows, columns] for last, columns in steps], axis=1)
        return pooled, (y.shape, steps)

    def _pool_steps(self, layer, T, B, lengths):
        """[(time index per row (B,), column slice of y)]: where each part of the pooled
        output is read."""
        # a row of length 0 has no last step: its y is 0 at every step, t = 0 reads a 0
        last = np.full(B, T - 1) if lengths is None else \
            np.maximum(np.array(lengths, dtype=np.int64) - 1, 0)
        first = np.zeros(B, np.int64)
        width = layer.output_size
        if self.many_to_one == "output":
            return [(last, slice(0, width))]
        if getattr(layer, "go_backwards", False):      # its only direction ends at t = 0
            return [(first, slice(0, width))]
        H = width // layer.num_directions               # y's width per direction
        steps = [(last, slice(0, H))]
        if layer.num_directions == 2:                   # the reverse direction ends at t = 0
            steps.append((first, slice(H, width)))
        return steps

    def _last_step_backward(self, dpooled, layer, pool):
        shape, steps = pool
        dy = np.zeros(shape, dtype=dpooled.dtype)
        rows = np.arange(shape[1])
        for last, columns in steps:
            dy[last, rows, columns] = dpooled[:, columns]
        return np.swapaxes(dy, 0, 1) if self.batch_first else dy

    def backward(self, cache, dy, dstate=None):
        """Full BPTT through the forward that made cache:
        ``dx, dstate0, grads = model.backward(cache, dy, dstate=None)``.

        dy: gradient of the forward output (of the logits if forward had logits=True).
        dx: the gradient of x, or None for a model that takes ids (an Embedding first).
        dstate: gradient of the final state, like the state (None: zeros).
        grads: {"<index>.<name>": array}, the keys of state_dict(); also kept for gradients().
        Raises ValueError if a layer's parameters changed since the forward (stale cache).
        """
        if not isinstance(cache, Cache) or cache.owner is not self:
            raise TypeError(f"cache must be the cache returned by this model's forward, got "
                            f"{type(cache).__name__}")
        dstates = self._check_state(dstate)
        dstates0 = [None] * len(self._recurrent)
        grads = {}
        d = dy
        k = len(self._recurrent)
        for index in range(len(self.layers) - 1, -1, -1):
            layer, (layer_cache, pool) = self.layers[index], cache.data[index]
            layer_dstate = None
            if layer.is_recurrent:
                k -= 1
                layer_dstate = dstates[k]
                if pool is not None:
                    d = self._last_step_backward(d, layer, pool)
            d, layer_dstate0, layer_grads = layer.backward(layer_cache, d, layer_dstate)
            if layer.is_recurrent:
                dstates0[k] = layer_dstate0
            for name, grad in layer_grads.items():
                grads[f"{index}.{name}"] = grad
        self._grads = grads
        return d, tuple(dstates0), grads

    # -- parameters ----------------------------------------------------------------------

    def parameters(self):
        """{"<index>.<name>": live array} over all layers."""
        return {f"{index}.{name}": value for index, layer in enumerate(self.layers)
                for name, value in layer.parameters().items()}

    def gradients(self):
        """{"<index>.<name>": array}: the gradients of the last backward (zeros before any)."""
        if self._grads is None:
            return {name: np.zeros_like(value) for name, value in self.parameters().items()}
        return self._grads

    def num_parameters(self):
        """int: the number of scalar parameters of all layers."""
        return int(sum(value.size for value in self.parameters().values()))

    def state_dict(self):
        """{"<index>.<name>": copy}: every layer's state_dict(), names prefixed by its index."""
        return {f"{index}.{name}": value for index, layer in enumerate(self.layers)
                for name, value in layer.state_dict().items()}

    def load_state_dict(self, state):
        """Load {"<index>.<name>": array} into every layer: strict (the keys and shapes of
        state_dict()) and all-or-nothing: every layer's part is checked, with the layers'
        one validation, before a single parameter is written."""
        self._commit_state(self._stage_state(state))

    def _stage_state(self, state, prefix=""):
        """Every layer's part of state, checked and converted (nothing written): what
        load_state_dict commits, and a model holding this one (rnnx.Seq2Seq) checks first.
        prefix: the one its keys carry in that model ("encoder.")."""
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f"state must be a mapping {{name: array}}, got {type(state).__name__}")
        own = [f"{index}.{name}" for index, layer in enumerate(self.layers)
               for name in layer.parameters()]
        missing = [prefix + k for k in own if k not in state]
        unexpected = sorted(prefix + str(k) for k in state.keys() if k not in set(own))
        if missing or unexpected:
            raise ValueError(f"state keys do not match the model: missing {missing}, "
                             f"unexpected {unexpected}")
        staged = []
        for index, layer in enumerate(self.layers):
            part = {name[len(f"{index}."):]: state[name] for name in own
                    if name.startswith(f"{index}.")}
            staged.append(layer._stage(part, what="state", prefix=f"{prefix}{index}."))
        return staged

    def _commit_state(self, staged):
        for layer, layer_staged in zip(self.layers, staged):
            layer._commit(layer_staged)

    def config(self):
        """JSON-serialisable architecture: Sequential.from_config(config) rebuilds the model
        (with fresh weights)."""
        return {"layers": [layer_spec(layer) for layer in self.layers],
                "many_to_one": self.many_to_one}

    @classmethod
    def from_config(cls, config):
        """The model config() describes, with fresh weights."""
        if not isinstance(config, dict) or "layers" not in config:
            raise ValueError(f"config must be a dict with a 'layers' list, got {config!r}")
        return cls(*[layer_from_spec(spec) for spec in config["layers"]],
                   many_to_one=config.get("many_to_one", False))


def quantized_type(model):
    """"int8" or "bfloat16" for a model made by rnnx.quantize (a layer, or a Sequential
    holding one), else None."""
    layers = getattr(model, "layers", None) if isinstance(model, Sequential) else None
    return getattr(model, "qtype", None) or next(
        (layer.qtype for layer in layers or () if getattr(layer, "qtype", None)), None)

"""Seq2Seq: an encoder reads the source, its final state starts a decoder that writes the target.

    m = rnnx.Seq2Seq(encoder, decoder)
    y = m(src, tgt_in, src_lengths=None)                      # teacher forced, (T_tgt, B, out)
    y, state, cache = m.forward(src, tgt_in, src_lengths=None)
    dsrc, dtgt, grads = m.backward(cache, dy)                  # grads "encoder.<name>", ...
    ids = m.generate(src, start, steps, end=None)              # greedy, (steps, B) ints

The hand-over (what PyTorch users write by hand): the final state of the encoder's last
recurrent layer, at each row's last valid step when src_lengths is given (the layers' packed-
sequence semantics), is the initial state of the decoder's first recurrent layer; the
decoder's other recurrent layers start from zeros. The state has the same form on both sides
(h, or (h, c) for an LSTM), per layer of the stack: (L, B, H) into (L, B, H).

A bidirectional encoder hands over the concatenation of its two directions' final states,
layer by layer: h_dec[k] = [h_forward[k], h_reverse[k]] (PyTorch: ``torch.cat((h_n[0::2],
h_n[1::2]), dim=2)``), so its decoder is twice as wide: encoder (L*2, B, H) -> decoder
(L, B, 2H). The same for c. Nothing is lost, and the gradient splits back the same way.

The gradient of the decoder's initial state flows into the encoder (as the gradient of its
final state), so one backward trains both. Everything is time-major: src (T_src, B, I) (or
(T_src, B) token ids with an Embedding first), tgt_in (T_tgt, B, ...).
"""
import numpy as np

from .model import Sequential
from .module import Cache, positive_int

__all__ = ["Seq2Seq"]


def _as_model(part, name):
    if isinstance(part, Sequential):
        return part
    if getattr(part, "is_recurrent", None) is None:
        raise TypeError(f"{name} must be an rnnx.Sequential or a recurrent rnnx layer, got "
                        f"{type(part).__name__}")
    return Sequential(part)


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


class Seq2Seq:
    """Encoder-decoder with the encoder's final state handed to the decoder.

    Parameters
    ----------
    encoder : rnnx.Sequential or recurrent layer
        Reads the source; it must end in a recurrent layer (whose final state is handed
        over; its outputs are not used). A bidirectional last layer hands over both
        directions concatenated (module docstring).
    decoder : rnnx.Sequential or recurrent layer
        Writes the target, usually ending in its output head (rnnx.Dense); unidirectional,
        many_to_one=False. Its first recurrent layer's state must have the shape of the
        encoder's (after the concatenation of a bidirectional encoder's directions).

    Both parts time-major (batch_first=False) and of one dtype. A single layer is wrapped
    into a Sequential, so its parameters are named "encoder.0.<name>".

    Attributes
    ----------
    encoder, decoder : rnnx.Sequential
    """

    many_to_one = False          # what the Trainer asks of a model

    def __init__(self, encoder, decoder):
        encoder, decoder = _as_model(encoder, "encoder"), _as_model(decoder, "decoder")
        for name, part in (("encoder", encoder), ("decoder", decoder)):
            if not part.is_recurrent:
                raise ValueError(f"{name} must have a recurrent layer, got only {part!r}")
            if part.many_to_one:
                raise ValueError(f"{name} must have many_to_one=False, got "
                                 f"many_to_one={part.many_to_one!r}")
            if part.batch_first:
                raise ValueError(f"{name} must be time-major (batch_first=False): Seq2Seq takes "
                                 f"src (T_src, B, ...) and tgt_in (T_tgt, B, ...)")
        if not encoder.layers[-1].is_recurrent:
            raise ValueError(f"encoder must end in its recurrent layer, whose final state the "
                             f"decoder gets; the layers after it would be unused: got "
                             f"{encoder.layers[-1]!r} last")
        for index, layer in enumerate(decoder.layers):
            if layer.is_recurrent and (layer.bidirectional or layer.go_backwards):
                raise ValueError(f"decoder layers[{index}] runs backward in time; a decoder "
                                 f"must be unidirectional (it writes one step after another)")
        if encoder.dtype != decoder.dtype:
            raise TypeError(f"encoder and decoder must have one dtype, got {encoder.dtype} and "
                            f"{decoder.dtype}")
        self.encoder, self.decoder = encoder, decoder
        self.dtype = decoder.dtype
        self.output_size = decoder.output_size
        self._source = encoder.layers[-1]
        self._target = decoder.layers[decoder._recurrent[0]]
        handed, wanted = self._handed_shapes(), self._wanted_shapes()
        if handed != wanted:
            raise ValueError(f"the encoder's last recurrent layer {self._source!r} hands over a "
                             f"state {self._describe(handed)} but the decoder's first recurrent "
                             f"layer {self._target!r} takes {self._describe(wanted)}: make the "
                             f"decoder's hidden_size and num_layers match"
                             + (" (a bidirectional encoder hands over both directions "
                                "concatenated: 2*hidden_size)" if self._source.bidirectional
                                else ""))
        self._grads = None

    # -- the hand-over -------------------------------------------------------------------

    def _handed_shapes(self):
        """{state name: (L, width)} that the encoder hands over, per batch row."""
        layer = self._source
        return {name: (layer.num_layers, layer.num_directions * layer._state_shape(1, name)[2])
                for name in layer.state_names}

    def _wanted_shapes(self):
        layer = self._target
        return {name: (layer.num_layers, layer._state_shape(1, name)[2])
                for name in layer.state_names}

    @staticmethod
    def _describe(shapes):
        return ", ".join(f"{name} (L={L}, B, {width})" for name, (L, width) in shapes.items())

    def _to_decoder(self, state):
        """The encoder's last layer state, each part (L*D, B, W), as the decoder's first
        recurrent layer state, (L, B, D*W): both directions of layer k side by side."""
        parts = []
        for part in _parts(state):
            if self._source.num_directions == 2:
                part = np.concatenate([part[0::2], part[1::2]], axis=2)
            parts.append(np.ascontiguousarray(part))
        decoder_state = [None] * len(self.decoder._recurrent)
        decoder_state[0] = tuple(parts) if len(parts) > 1 else parts[0]
        return tuple(decoder_state)

    def _to_encoder(self, dstate0):
        """The gradient of the decoder's first initial state, split back into the encoder's
        final state form; the encoder's other recurrent layers get none."""
        parts = []
        for part in _parts(dstate0):
            if self._source.num_directions == 2:
                width = part.shape[2] // 2
                split = np.empty((2 * part.shape[0], part.shape[1], width), part.dtype)
                split[0::2], split[1::2] = part[:, :, :width], part[:, :, width:]
                part = split
            parts.append(part)
        dstate = [None] * len(self.encoder._recurrent)
        dstate[-1] = tuple(parts) if len(parts) > 1 else parts[0]
        return tuple(dstate)

    @staticmethod
    def _check_layout(value, name, model):
        """The shape of a batched, time-major input of model: (T, B) ids or (T, B, I)."""
        shape = np.shape(value)
        want = "(T, B) token ids" if model.takes_ids else f"(T, B, {model.input_size})"
        if len(shape) != (2 if model.takes_ids else 3):
            raise ValueError(f"{name} must be batched and time-major, {want}, got shape {shape}")
        return shape

    def _check_batch(self, src, tgt_in):
        src_shape = self._check_layout(src, "src", self.encoder)
        tgt_shape = self._check_layout(tgt_in, "tgt_in", self.decoder)
        if src_shape[1] != tgt_shape[1]:
            raise ValueError(f"src and tgt_in must hold the same batch along axis 1, got src "
                             f"{src_shape} (B={src_shape[1]}) and tgt_in {tgt_shape} "
                             f"(B={tgt_shape[1]})")

    # -- computation ---------------------------------------------------------------------

    def encode(self, src, src_lengths=None):
        """The decoder's initial state from the source (inference): a Sequential state, one
        entry per decoder recurrent layer (the first one handed over, the others None)."""
        self._check_layout(src, "src", self.encoder)
        _, state = self.encoder(src, None, src_lengths)
        return self._to_decoder(state[-1])

    def __call__(self, src, tgt_in, src_lengths=None, tgt_lengths=None, logits=False):
        """Teacher-forced inference: ``y = m(src, tgt_in, src_lengths=None)``, (T_tgt, B, out):
        the decoder's output at every target step, given the true previous tokens."""
        self._check_batch(src, tgt_in)
        return self.decoder(tgt_in, self.encode(src, src_lengths), tgt_lengths, logits=logits)[0]

    def forward(self, src, tgt_in, src_lengths=None, tgt_lengths=None, logits=False):
        """Training forward: ``y, state, cache = m.forward(src, tgt_in, src_lengths=None)``.

        y is (T_tgt, B, out) (the logits with logits=True), state the decoder's final state.
        tgt_lengths (optional) are passed to the decoder: its final state is then each row's
        state at its last target step (y at the steps after it is 0)."""
        self._check_batch(src, tgt_in)
        _, encoder_state, encoder_cache = self.encoder.forward(src, None, src_lengths)
        y, state, decoder_cache = self.decoder.forward(
            tgt_in, self._to_decoder(encoder_state[-1]), tgt_lengths, logits=logits)
        return y, state, Cache(self, (encoder_cache, decoder_cache))

    def backward(self, cache, dy, dstate=None):
        """BPTT through decoder and encoder: ``dsrc, dtgt, grads = m.backward(cache, dy)``.

        dy: the gradient of y (of the logits if forward had logits=True); dstate: of the
        decoder's final state (None: zeros). grads: {"encoder.<name>" | "decoder.<name>":
        array}, the keys of state_dict(); also kept for gradients()."""
        if not isinstance(cache, Cache) or cache.owner is not self:
            raise TypeError(f"cache must be the cache returned by this Seq2Seq's forward, got "
                            f"{type(cache).__name__}")
        encoder_cache, decoder_cache = cache.data
        dtgt, dstate0, decoder_grads = self.decoder.backward(decoder_cache, dy, dstate)
        dsrc, _, encoder_grads = self.encoder.backward(encoder_cache, None,
                                                       self._to_encoder(dstate0[0]))
        grads = {f"encoder.{name}": g for name, g in encoder_grads.items()}
        grads.update({f"decoder.{name}": g for name, g in decoder_grads.items()})
        self._grads = grads
        return dsrc, dtgt, grads

    def generate(self, src, start, steps, src_lengths=None, end=None):
        """Greedy decoding: ``ids = m.generate(src, start, steps, src_lengths=None, end=None)``.

        Parameters
        ----------
        src : the source, as for forward (T_src, B, ...)
        start : int or (B,) ints: the first decoder input token
        steps : int >= 1: tokens to write
        end : None or int: a row that wrote it writes it at every later step

        Returns
        -------
        ids : ndarray (steps, B) int64, the argmax of the decoder's output at each step, fed
            back as the next input: one step of the decoder's stream (model.stream) per
            token, as token ids into an Embedding first, else one-hot of the decoder's
            input_size.
        """
        steps = positive_int(steps, "steps")
        init = self.encode(src, src_lengths)
        B = np.shape(src)[1]
        vocabulary = self.decoder.layers[0].num_embeddings if self.decoder.takes_ids \
            else self.decoder.input_size
        token = self._check_tokens(start, "start", B, vocabulary)
        if end is not None:
            end = int(self._check_tokens(end, "end", 1, self.output_size)[0])
        stream = self.decoder.stream(B, init)
        ids = np.empty((steps, B), np.int64)
        done = np.zeros(B, bool)
        for t in range(steps):
            if np.any(token >= vocabulary):
                raise ValueError(f"the decoder wrote token {int(token.max())} at step {t}, which "
                                 f"its input ({vocabulary} tokens) cannot take back")
            ids[t] = token = np.argmax(stream.step(self._decoder_input(token, vocabulary)), -1)
            if end is not None:
                ids[t] = token = np.where(done, end, token)
                done |= token == end
                if done.all():
                    ids[t + 1:] = end
                    break
        return ids

    def _decoder_input(self, token, vocabulary):
        if self.decoder.takes_ids:
            return token
        one_hot = np.zeros((token.shape[0], vocabulary), self.dtype)
        one_hot[np.arange(token.shape[0]), token] = 1
        return one_hot

    @staticmethod
    def _check_tokens(value, name, B, vocabulary):
        array = np.asarray(value)
        if array.dtype.kind not in "iu" or array.shape not in ((), (B,)):
            raise ValueError(f"{name} must be an int or {B} ints (one per row), got "
                             f"{array.dtype} {array.shape}")
        if array.size and (array.min() < 0 or array.max() >= vocabulary):
            raise ValueError(f"{name} must lie in [0, {vocabulary}), got {array}")
        return np.broadcast_to(array, (B,)).astype(np.int64)

    # -- parameters ----------------------------------------------------------------------

    @property
    def output_activation(self):
        """The decoder's output activation."""
        return self.decoder.output_activation

    def _named(self, fn):
        return {f"{part}.{name}": value for part in ("encoder", "decoder")
                for name, value in fn(getattr(self, part)).items()}

    def parameters(self):
        """{"encoder.<name>" | "decoder.<name>": live array}."""
        return self._named(lambda part: part.parameters())

    def gradients(self):
        """The gradients of the last backward, keyed as parameters() (zeros before any)."""
        if self._grads is None:
            return {name: np.zeros_like(value) for name, value in self.parameters().items()}
        return self._grads

    def num_parameters(self):
        """int: the number of scalar parameters of both parts."""
        return self.encoder.num_parameters() + self.decoder.num_parameters()

    def state_dict(self):
        """{"encoder.<name>" | "decoder.<name>": copy}."""
        return self._named(lambda part: part.state_dict())

    def load_state_dict(self, state):
        """Load the keys of state_dict(): strict, and all-or-nothing over both parts."""
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f"state must be a mapping {{name: array}}, got {type(state).__name__}")
        stray = sorted(str(k) for k in state.keys()
                       if not str(k).startswith(("encoder.", "decoder.")))
        if stray:
            raise ValueError(f"state keys must start with 'encoder.' or 'decoder.', got {stray}")
        staged = []
        for part in ("encoder", "decoder"):
            prefix = part + "."
            own = {k[len(prefix):]: state[k] for k in state.keys() if k.startswith(prefix)}
            staged.append(getattr(self, part)._stage_state(own, prefix))
        self.encoder._commit_state(staged[0])
        self.decoder._commit_state(staged[1])

    def config(self):
        """JSON-serialisable architecture: Seq2Seq.from_config rebuilds it (fresh weights)."""
        return {"encoder": self.encoder.config(), "decoder": self.decoder.config()}

    @classmethod
    def from_config(cls, config):
        """The model config() describes, with fresh weights."""
        if not isinstance(config, dict) or set(config) != {"encoder", "decoder"}:
            raise ValueError(f"config must be a dict with keys 'encoder' and 'decoder', got "
                             f"{config!r}")
        return cls(Sequential.from_config(config["encoder"]),
                   Sequential.from_config(config["decoder"]))

    def __repr__(self):
        indent = lambda model: repr(model).replace("\n", "\n  ")   # noqa: E731
        return f"Seq2Seq(\n  encoder={indent(self.encoder)},\n  decoder={indent(self.decoder)})"

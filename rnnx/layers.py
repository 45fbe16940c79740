"""Recurrent layers with PyTorch's semantics: rnnx.RNN, rnnx.LSTM, rnnx.GRU, and Stream.

Each class here names its cell and its options; what they share (parameters, checks,
the training forward and BPTT, one call into the C core per direction and layer, no
Python per time step) is rnnx/recurrent.py's _Recurrent, their Stream rnnx/stream.py.

Shapes (T time, B batch, I input_size, H hidden_size, L num_layers, D 1 or 2):
    x      (T, B, I), or (B, T, I) with batch_first, or (T, I) unbatched
    y      (T, B, D*H): the forward direction first, then the reverse
    state  h (L*D, B, H) for RNN and GRU, (h, c) for LSTM; layer-major, direction-minor
An LSTM with proj_size P > 0 has h and y P wide per direction ((L*D, B, P), (T, B, D*P));
its c stays (L*D, B, H).
"""
import numpy as np

try:
    from . import _core
except ImportError as error:  # a source checkout imported before its extension was built
    raise ImportError(
        f"rnnx's compiled core (rnnx._core) is missing from {__file__.rsplit('/', 1)[0]}: this "
        "looks like an unbuilt source folder. Build it in place with `pip install -e .`, or run "
        "Python from another folder so the installed rnnx is imported.") from error

from . import cells
from .directions import using_workspace  # noqa: F401 (rnnx.layers.using_workspace, as before)
from .module import positive_int
from .recurrent import _Recurrent
from .stream import Stream

__all__ = ["RNN", "LSTM", "GRU", "Stream"]


def variants():
    """{variant name: (layer class, constructor keyword arguments)}, one per cell of the
    core's table (rnnx.cells), in code order: each layer class names in ``_cells`` the
    core's cells it runs and the options that pick them.  The tests' list of cells."""
    owners = {}
    for cls in _Recurrent.__subclasses__():
        for core_name, options in vars(cls).get("_cells", {}).items():
            owners[core_name] = (cls, dict(options))
    missing = [row["name"] for row in cells.TABLE if row["name"] not in owners]
    if missing:   # a cell in the core that no layer class names: a half-added cell
        raise RuntimeError(f"the core's cells {missing} have no layer class (rnnx/layers.py)")
    return {cells.variant_name(row["name"]): owners[row["name"]] for row in cells.TABLE}


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


class RNN(_Recurrent):
    """Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu.

    ``rnnx.RNN(input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32, seed=None,
    nonlinearity="tanh")``
    """

    # the core's cells this class runs (rows of rnnx.cells.TABLE) and the options that pick them
    _cells = {"rnn_tanh": {"nonlinearity": "tanh"}, "rnn_relu": {"nonlinearity": "relu"}}
    _gates, state_names = cells.row("rnn_tanh")["gates"], cells.row("rnn_tanh")["states"]
    _config_keys = _Recurrent._config_keys + ("nonlinearity",)

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32,
                 seed=None, nonlinearity="tanh"):
        """Build the layer, weights uniform in +-1/sqrt(hidden_size); see help(rnnx.RNN)."""
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._use_cell("rnn_" + nonlinearity)
        self.go_backwards = bool(go_backwards)
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, dtype, seed)


class LSTM(_Recurrent):
    """LSTM with PyTorch's gate order i, f, g, o; its state is (h, c).

    ``rnnx.LSTM(input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32, seed=None,
    proj_size=0, peephole=False)``::

        [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        i, f, o = sigmoid(.)   g = tanh(.)
        c_t = f * c_{t-1} + i * g      h_t = o * tanh(c_t)

    With ``proj_size`` P > 0 (PyTorch's LSTM with projections), h_t = W_hr (o * tanh(c_t)):
    h and y are P wide, c stays H wide.

    With ``peephole=True`` (ONNX's LSTM with P, Keras 2's PeepholeLSTMCell), the gates see
    the cell through ``weight_peephole_l{k}`` = [p_i p_f p_o] (3H,)::

        i = sigmoid(. + p_i * c_{t-1})   f = sigmoid(. + p_f * c_{t-1})
        o = sigmoid(. + p_o * c_t)
    """

    _cells = {"lstm": {}}
    _gates, state_names = cells.row("lstm")["gates"], cells.row("lstm")["states"]
    _cell, cell_name = cells.row("lstm")["code"], "lstm"
    _config_keys = _Recurrent._config_keys + ("proj_size", "peephole")

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32,
                 seed=None, proj_size=0, peephole=False):
        """Build the layer, weights uniform in +-1/sqrt(hidden_size); see help(rnnx.LSTM)."""
        self._use_cell("lstm")
        self.go_backwards = bool(go_backwards)
        if not isinstance(peephole, (bool, np.bool_)):
            raise TypeError(f"peephole must be a bool, got {type(peephole).__name__}")
        self.peephole = bool(peephole)
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
        when it is not 0 and ``peephole`` only when True, so a plain LSTM's config (and saved
        file) is as it was before these options existed."""
        out = super().config()
        if not self.proj_size:
            del out["proj_size"]
        if not self.peephole:
            del out["peephole"]
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

    _cells = {"gru": {"reset_after": True}, "gru_reset_before": {"reset_after": False}}
    _gates, state_names = cells.row("gru")["gates"], cells.row("gru")["states"]
    _config_keys = _Recurrent._config_keys + ("reset_after",)

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, go_backwards=False, dtype=np.float32,
                 seed=None, reset_after=True):
        """Build the layer, weights uniform in +-1/sqrt(hidden_size); see help(rnnx.GRU)."""
        self.reset_after = bool(reset_after)
        self._use_cell("gru" if self.reset_after else "gru_reset_before")
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
          "(G, P), and layer k > 0 takes D*P inputs; c stays H wide.\n"
          "    peephole : bool, default False\n        Peephole connections: "
          "``weight_peephole_l{k}`` (3H,), the vectors p_i, p_f, p_o\n        in this order "
          "(ONNX's P is [p_i, p_o, p_f]; to_onnx and from_onnx reorder it).\n",
    state_names="('h', 'c')", gates=4, state_form="(h, c)")
GRU.__doc__ += _COMMON_DOC.format(
    extra="    reset_after : bool, default True\n        True applies the reset gate after the "
          "recurrent product (PyTorch, cuDNN, ONNX\n        linear_before_reset=1); False before "
          "it (Cho et al. 2014, Keras reset_after=False,\n        the ONNX default).\n",
    state_names="('h',)", gates=3, state_form="h")

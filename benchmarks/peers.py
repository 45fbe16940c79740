"""Adapters that run one benchmark problem on rnnx and on each peer.

Every peer is given the same `Problem` (cell, shape, weights and data, all float32) and
turns it into zero-argument callables, so the timing loop is the same for all of them:

    peer.inference(problem)      -> fn() returning y (T, B, H)
    peer.training_step(problem)  -> fn() doing forward + full BPTT backward, or None
    peer.stream_step(problem)    -> fn() advancing the state by one step, returning y_t (B, H)

Peers: rnnx, the NumPy reference (rnnx/reference.py), PyTorch CPU and ONNX Runtime
(the PyTorch module exported through torch.onnx.export). The optional peers are imported
only by `available_peers`, after the caller has pinned the BLAS/OpenMP thread counts.
"""

import dataclasses
import io
import warnings

import numpy as np

CELLS = ("rnn", "lstm", "gru")   # the cells every peer has
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # G = GATES[cell] * H (peer processes run without rnnx;
# a mismatch with the core's table fails at load_state_dict)
# the variant of rnnx's cell table (rnnx.layers.variants()) each benchmark cell is
RNNX_VARIANTS = {"rnn": "rnn_tanh", "lstm": "lstm", "gru": "gru_reset_after"}
ONNX_OPSET = 17


@dataclasses.dataclass
class Problem:
    """One cell and shape with its weights (PyTorch names, layer 0) and data."""

    cell: str  # "rnn" (tanh), "lstm" or "gru" (reset_after=True)
    batch: int  # B
    hidden: int  # H
    input: int  # I
    steps: int  # T
    weights: dict  # weight_ih_l0 (G, I), weight_hh_l0 (G, H), bias_ih_l0 / bias_hh_l0 (G,)
    x: np.ndarray  # (T, B, I)
    h0: np.ndarray  # (B, H)
    c0: np.ndarray  # (B, H), used by the LSTM only
    dy: np.ndarray  # (T, B, H) gradient of the loss with respect to y
    dh: np.ndarray  # (B, H) gradient with respect to h_n
    dc: np.ndarray  # (B, H) gradient with respect to c_n, LSTM only


def make_problem(cell, batch, hidden, input_size, steps, seed=0):
    """Random weights with PyTorch's init, uniform(-1/sqrt(H), 1/sqrt(H)), and random data."""
    rng = np.random.default_rng(seed)
    gate_width = GATES[cell] * hidden
    bound = 1.0 / np.sqrt(hidden)

    def uniform(*shape):
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    weights = {
        "weight_ih_l0": uniform(gate_width, input_size),
        "weight_hh_l0": uniform(gate_width, hidden),
        "bias_ih_l0": uniform(gate_width),
        "bias_hh_l0": uniform(gate_width),
    }
    return Problem(
        cell=cell, batch=batch, hidden=hidden, input=input_size, steps=steps, weights=weights,
        x=normal(steps, batch, input_size),
        h0=np.zeros((batch, hidden), np.float32), c0=np.zeros((batch, hidden), np.float32),
        dy=normal(steps, batch, hidden), dh=normal(batch, hidden), dc=normal(batch, hidden),
    )


class Rnnx:
    """rnnx layers: layer(x, state), layer.forward + layer.backward, layer.stream(1).step."""

    name = "rnnx"

    def __init__(self):
        import rnnx

        self.rnnx = rnnx
        self.version = getattr(rnnx, "__version__", "unknown")

    def _layer(self, problem):
        cls, options = self.rnnx.layers.variants()[RNNX_VARIANTS[problem.cell]]
        layer = cls(problem.input, problem.hidden, dtype=np.float32, **options)
        layer.load_state_dict(problem.weights)
        return layer

    @staticmethod
    def _layer_state(problem, h, c):
        # layer state is (L*D, B, H): add the leading layer axis
        return (h[None], c[None]) if problem.cell == "lstm" else h[None]

    def inference(self, problem):
        layer = self._layer(problem)
        state = self._layer_state(problem, problem.h0, problem.c0)

        def run():
            y, _ = layer(problem.x, state)
            return y

        return run

    def training_step(self, problem):
        layer = self._layer(problem)
        state = self._layer_state(problem, problem.h0, problem.c0)
        dstate = self._layer_state(problem, problem.dh, problem.dc)

        def run():
            _, _, cache = layer.forward(problem.x, state)
            return layer.backward(cache, problem.dy, dstate)

        return run

    def stream_step(self, problem):
        stream = self._layer(problem).stream(problem.batch)
        x_t = problem.x[0]  # (B, I)
        return lambda: stream.step(x_t)


class Reference:
    """The pure NumPy reference: one call of *_forward (and *_backward) per sequence."""

    name = "reference"
    version = "rnnx/reference.py"

    def __init__(self):
        from rnnx import reference

        self.reference = reference

    def _forward(self, problem, x, h, c):
        """Returns (y, state, cache); state is h, or (h, c) for the LSTM."""
        w = problem.weights
        weights = (w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"], w["bias_hh_l0"])
        if problem.cell == "rnn":
            y, h_n, cache = self.reference.rnn_forward(x, h, *weights, nonlinearity="tanh")
            return y, h_n, cache
        if problem.cell == "lstm":
            y, h_n, c_n, cache = self.reference.lstm_forward(x, h, c, *weights)
            return y, (h_n, c_n), cache
        y, h_n, cache = self.reference.gru_forward(x, h, *weights, reset_after=True)
        return y, h_n, cache

    def inference(self, problem):
        return lambda: self._forward(problem, problem.x, problem.h0, problem.c0)[0]

    def training_step(self, problem):
        backward = getattr(self.reference, problem.cell + "_backward")
        dstate = (problem.dh, problem.dc) if problem.cell == "lstm" else (problem.dh,)

        def run():
            _, _, cache = self._forward(problem, problem.x, problem.h0, problem.c0)
            return backward(problem.dy, *dstate, cache)

        return run

    def stream_step(self, problem):
        x_step = problem.x[:1]  # (1, B, I): a one-step sequence
        state = [(problem.h0, problem.c0) if problem.cell == "lstm" else problem.h0]

        def run():
            h, c = state[0] if problem.cell == "lstm" else (state[0], None)
            y, state[0], _ = self._forward(problem, x_step, h, c)
            return y[0]

        return run


class Torch:
    """torch.nn.RNN/LSTM/GRU for sequences, torch.nn.*Cell under no_grad for streaming."""

    name = "torch"

    def __init__(self, threads):
        import torch

        self.torch = torch
        self.version = torch.__version__
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # allowed once, before any inter-op work; already set is fine
            pass

    def module(self, problem):
        """The torch.nn.RNN/LSTM/GRU holding the problem's weights (also used by ONNX export)."""
        nn = self.torch.nn
        if problem.cell == "rnn":
            module = nn.RNN(problem.input, problem.hidden, nonlinearity="tanh")
        else:
            module = {"lstm": nn.LSTM, "gru": nn.GRU}[problem.cell](problem.input, problem.hidden)
        module.load_state_dict({name: self.torch.from_numpy(w) for name, w in problem.weights.items()})
        return module

    def initial_state(self, problem, h, c, requires_grad=False):
        # torch state is (L*D, B, H) like rnnx's
        h = self.torch.tensor(h[None], requires_grad=requires_grad)
        if problem.cell != "lstm":
            return h
        return h, self.torch.tensor(c[None], requires_grad=requires_grad)

    def inference(self, problem):
        module = self.module(problem)
        x = self.torch.from_numpy(problem.x)
        state = self.initial_state(problem, problem.h0, problem.c0)

        def run():
            with self.torch.no_grad():
                y, _ = module(x, state)
            return y.numpy()

        return run

    def training_step(self, problem):
        torch = self.torch
        module = self.module(problem)
        # x and the initial state require grad so torch computes dx and dstate0 as rnnx does
        x = torch.tensor(problem.x, requires_grad=True)
        state = self.initial_state(problem, problem.h0, problem.c0, requires_grad=True)
        leaves = [x, *state] if problem.cell == "lstm" else [x, state]
        dy = torch.from_numpy(problem.dy)
        dh, dc = torch.from_numpy(problem.dh[None]), torch.from_numpy(problem.dc[None])

        def run():
            module.zero_grad(set_to_none=True)  # fresh gradient arrays, as rnnx returns
            for leaf in leaves:
                leaf.grad = None
            y, state_n = module(x, state)
            if problem.cell == "lstm":
                h_n, c_n = state_n
                loss = (y * dy).sum() + (h_n * dh).sum() + (c_n * dc).sum()
            else:
                loss = (y * dy).sum() + (state_n * dh).sum()
            loss.backward()

        return run

    def stream_step(self, problem):
        torch = self.torch
        cell_type = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}
        cell = cell_type[problem.cell](problem.input, problem.hidden)
        # the Cell's parameters are the layer's without the "_l0" suffix
        cell.load_state_dict({name[: -len("_l0")]: torch.from_numpy(w) for name, w in problem.weights.items()})
        x_t = torch.from_numpy(problem.x[0])  # (B, I)
        h, c = torch.from_numpy(problem.h0), torch.from_numpy(problem.c0)
        state = [(h, c) if problem.cell == "lstm" else h]

        def run():
            with torch.no_grad():
                state[0] = cell(x_t, state[0])
            h_t = state[0][0] if problem.cell == "lstm" else state[0]
            return h_t.numpy()

        return run


class OnnxRuntime:
    """ONNX Runtime on the torch module exported per shape (legacy TorchScript exporter,
    which emits ONNX's own RNN/LSTM/GRU operators). Inference and streaming only."""

    name = "onnxruntime"

    def __init__(self, threads, torch_peer):
        import onnxruntime

        self.ort = onnxruntime
        self.version = onnxruntime.__version__
        self.torch_peer = torch_peer
        self.options = onnxruntime.SessionOptions()
        self.options.intra_op_num_threads = threads
        self.options.inter_op_num_threads = threads
        self.options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL

    def _session(self, problem, x):
        """Session of the module exported for x's shape, inputs x, h0 (, c0),
        outputs y, h_n (, c_n), state shaped (1, B, H)."""
        torch = self.torch_peer.torch
        module = self.torch_peer.module(problem)
        lstm = problem.cell == "lstm"
        state = self.torch_peer.initial_state(problem, problem.h0, problem.c0)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(
                module, (torch.from_numpy(x), state), buffer, dynamo=False, opset_version=ONNX_OPSET,
                input_names=["x", "h0", "c0"] if lstm else ["x", "h0"],
                output_names=["y", "h_n", "c_n"] if lstm else ["y", "h_n"],
            )
        session = self.ort.InferenceSession(
            buffer.getvalue(), sess_options=self.options, providers=["CPUExecutionProvider"]
        )
        feeds = {"x": x, "h0": problem.h0[None]}
        if lstm:
            feeds["c0"] = problem.c0[None]
        return session, feeds

    def inference(self, problem):
        session, feeds = self._session(problem, problem.x)
        return lambda: session.run(["y"], feeds)[0]

    def training_step(self, problem):
        return None  # ONNX Runtime is benchmarked for inference only

    def stream_step(self, problem):
        session, feeds = self._session(problem, problem.x[:1])  # a one-step model
        state_names = ["h0", "c0"] if problem.cell == "lstm" else ["h0"]

        def run():
            y, *state = session.run(None, feeds)
            feeds.update(zip(state_names, state))  # carry h_n (, c_n) into the next step
            return y[0]

        return run


PEER_NAMES = ("rnnx", "reference", "torch", "onnxruntime")


def available_peers(threads, names=PEER_NAMES):
    """([peers], {name: reason}) for the named peers that import; rnnx and the reference
    must.  ONNX Runtime's models are exported by torch: in a process of ONNX Runtime alone
    torch runs on one thread, so no idle torch worker competes with ONNX Runtime's own."""
    peers, missing = [], {}
    if "rnnx" in names:
        peers.append(Rnnx())
    if "reference" in names:
        peers.append(Reference())
    if "torch" not in names and "onnxruntime" not in names:
        return peers, missing
    try:
        torch_peer = Torch(threads if "torch" in names else 1)
    except ImportError as error:
        for name in ("torch", "onnxruntime"):
            if name in names:
                missing[name] = f"torch not installed ({error})"
        return peers, missing
    if "torch" in names:
        peers.append(torch_peer)
    if "onnxruntime" in names:
        try:
            peers.append(OnnxRuntime(threads, torch_peer))
        except ImportError as error:
            missing["onnxruntime"] = f"not installed ({error})"
    return peers, missing

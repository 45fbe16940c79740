"""One layer protocol: every layer (RNN, LSTM, GRU, Dense) shares forward/backward
signatures, state_names, one load_state_dict validation and config(); constructors
are keyword-only after num_layers, in one order, and their errors name the class;
one reference dispatch; no import cycles; the dtype policy; docstrings; Stream.
"""
import ast
import inspect
import pathlib
import pydoc
import warnings

import numpy as np
import pytest

import rnnx
from rnnx import reference
from rnnx.module import Module
from shared import VARIANTS, central_difference

RECURRENT = {"RNN": rnnx.RNN, "LSTM": rnnx.LSTM, "GRU": rnnx.GRU}


def make(variant, I, H, **kwargs):
    class_name, extra = VARIANTS[variant]
    return getattr(rnnx, class_name)(I, H, **extra, **kwargs)


def all_layers(dtype=np.float64):
    """One of every layer kind, input width 3."""
    return [make(v, 3, 4, dtype=dtype, seed=0) for v in VARIANTS] + \
        [rnnx.Dense(3, 2, activation="tanh", dtype=dtype, seed=0)]


# --------------------------------------------------------------------- the protocol

@pytest.mark.parametrize("layer", all_layers(), ids=lambda layer: type(layer).__name__)
def test_every_layer_has_the_same_forward_and_backward(layer):
    assert isinstance(layer, Module)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3))
    out = layer.forward(x, state=None, lengths=None)
    assert len(out) == 3
    y, state, cache = out
    back = layer.backward(cache, np.ones_like(y), dstate=None)
    assert len(back) == 3
    dx, dstate0, grads = back
    assert dx.shape == x.shape and set(grads) == set(layer.state_dict())
    assert all(grads[k].shape == v.shape for k, v in layer.state_dict().items())
    if layer.state_names:
        parts = state if isinstance(state, tuple) else (state,)
        parts0 = dstate0 if isinstance(dstate0, tuple) else (dstate0,)
        assert len(parts) == len(parts0) == len(layer.state_names)
    else:
        assert state is None and dstate0 is None


def test_state_names():
    assert rnnx.RNN(2, 3).state_names == ("h",)
    assert rnnx.GRU(2, 3).state_names == ("h",)
    assert rnnx.LSTM(2, 3).state_names == ("h", "c")
    assert rnnx.Dense(2, 3).state_names == ()
    for variant in VARIANTS:
        layer = make(variant, 2, 3)
        zero = layer.zero_state(4)
        parts = zero if isinstance(zero, tuple) else (zero,)
        assert len(parts) == len(layer.state_names)
        stream_state = layer.stream().state
        assert len(stream_state if isinstance(stream_state, tuple) else (stream_state,)) == \
            len(layer.state_names)
    source = (pathlib.Path(rnnx.__file__).parent / "layers.py").read_text()
    assert "_gates == 4" not in source


class Scale(Module):
    """A layer defined outside rnnx, following the protocol: y = weight * x."""

    state_names = ()
    _config_keys = ("size",)

    def __init__(self, size):
        self.size = self.input_size = self.output_size = size
        self.dtype = np.dtype(np.float64)
        self._params = {"weight": np.linspace(0.5, 1.5, size)}

    def _param_shapes(self):
        return {"weight": (self.size,)}

    def _run(self, x, state, lengths, train):
        x = np.asarray(x, np.float64)
        return x * self._params["weight"], None, (rnnx.module.Cache(self, x) if train else None)

    def forward(self, x, state=None, lengths=None):
        return self._run(x, state, lengths, True)

    def backward(self, cache, dy, dstate=None):
        self._check_fresh(cache)
        x = cache.data
        return dy * self._params["weight"], None, {"weight": (dy * x).reshape(-1, self.size).sum(0)}


def test_sequential_runs_any_layer_of_the_protocol():
    """Sequential dispatches on the protocol, not on a list of known classes."""
    model = rnnx.Sequential(rnnx.GRU(2, 3, dtype=np.float64, seed=1), Scale(3),
                            rnnx.Dense(3, 1, dtype=np.float64, seed=2))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 2))
    y, state, cache = model.forward(x)
    _, _, grads = model.backward(cache, np.ones_like(y))
    assert set(grads) == set(model.state_dict())
    weight = model.parameters()["1.weight"]
    numeric = central_difference(lambda: float(np.sum(model.forward(x)[0])), weight)
    np.testing.assert_allclose(grads["1.weight"], numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(model(x)[0], y)


@pytest.mark.parametrize("layer", all_layers(np.float32), ids=lambda layer: type(layer).__name__)
def test_one_load_state_dict_validation(layer):
    """The same checks and messages for every layer; a failed load changes nothing."""
    good = layer.state_dict()
    name = list(good)[-1]                          # the last: every other entry is valid
    new = {k: np.full(v.shape, 0.25) for k, v in good.items()}
    bad_cases = [
        ([("a", 1)], TypeError, "must be a mapping"),
        ({k: v for k, v in new.items() if k != name}, ValueError, rf"missing keys \['{name}'\]"),
        ({**new, "extra": np.zeros(1)}, ValueError, r"unexpected keys \['extra'\]"),
        ({**new, name: np.zeros((7, 7))}, ValueError, rf"state_dict\['{name}'\] must have shape"),
        ({**new, name: np.full(good[name].shape, np.nan)}, ValueError, "non-finite"),
        ({**new, name: new[name].astype(np.complex64)}, TypeError, "real array"),
    ]
    for state, error, match in bad_cases:
        with pytest.raises(error, match=match):
            layer.load_state_dict(state)
        for k, v in layer.state_dict().items():
            np.testing.assert_array_equal(v, good[k], err_msg=f"{k} changed by a failed load")
    held = layer.parameters()
    layer.load_state_dict(new)                     # float64 values into a float32 layer: cast
    assert all(np.all(held[k] == np.float32(0.25)) and held[k].dtype == layer.dtype for k in held)
    assert type(layer)(**layer.config()).config() == layer.config()


# ------------------------------------------------------------------- constructors

def test_constructor_options_are_keyword_only_in_one_order():
    common = ["input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
              "bidirectional", "go_backwards", "dtype", "seed"]
    own = {"RNN": ["nonlinearity"], "LSTM": ["proj_size", "peephole"], "GRU": ["reset_after"]}
    for name, cls in RECURRENT.items():
        params = inspect.signature(cls).parameters
        assert list(params) == common + own[name], name
        kinds = {p: params[p].kind for p in params}
        assert all(kinds[p] == inspect.Parameter.POSITIONAL_OR_KEYWORD for p in common[:3])
        assert all(kinds[p] == inspect.Parameter.KEYWORD_ONLY for p in list(params)[3:]), name
        with pytest.raises(TypeError, match=rf"{name}\.__init__\(\) takes"):
            cls(2, 3, 1, True)                     # bias given by position
    # the same meaning whatever the cell: a keyword works on all three
    for cls in RECURRENT.values():
        layer = cls(2, 3, num_layers=2, bias=False, batch_first=True, dropout=0.5,
                    bidirectional=True, dtype=np.float64, seed=0)
        assert (layer.bias, layer.batch_first, layer.dropout, layer.bidirectional) == \
            (False, True, 0.5, True)


@pytest.mark.parametrize("name", list(RECURRENT))
def test_constructor_errors_name_the_class(name):
    cls = RECURRENT[name]
    with pytest.raises(TypeError, match=rf"^{name}\.__init__\(\) missing 1 required positional "
                                        r"argument: 'hidden_size'") as info:
        cls(32)
    assert "_Recurrent" not in str(info.value)
    if name == "LSTM":   # PyTorch's LSTM with projections (tests/test_proj.py)
        assert cls(8, 32, proj_size=4).proj_size == 4
    else:
        with pytest.raises(TypeError, match=rf"^{name}\.__init__\(\) got an unexpected keyword "
                                            r"argument 'proj_size'"):
            cls(8, 32, proj_size=4)
    with pytest.raises(TypeError, match="hidden_size must be an int"):
        cls(8, 2.5)


# ------------------------------------------------------------------ reference

@pytest.mark.parametrize("cell", reference.CELLS)
def test_reference_dispatch_equals_the_cell_functions(cell):
    rng = np.random.default_rng(2)
    T, B, I, H = 4, 3, 2, 3
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell[:4].rstrip("_")] * H
    x = rng.standard_normal((T, B, I))
    w = [rng.standard_normal(s) * 0.5 for s in [(G, I), (G, H), (G,), (G,)]]
    state = tuple(rng.standard_normal((B, H)) for _ in reference.STATE_NAMES[cell])
    lengths = np.array([4, 2, 3])
    y, state_n, cache = reference.forward(cell, x, state, *w, lengths=lengths, reverse=True)
    dy = rng.standard_normal(y.shape)
    dstate = tuple(rng.standard_normal((B, H)) for _ in state)
    dx, dstate0, dw = reference.backward(cell, cache, dy, dstate)
    if cell == "lstm":
        y2, h2, c2, cache2 = reference.lstm_forward(x, *state, *w, lengths=lengths, reverse=True)
        expected_state = (h2, c2)
        dx2, dh2, dc2, *dw2 = reference.lstm_backward(dy, *dstate, cache2)
        expected_dstate = (dh2, dc2)
    elif cell.startswith("rnn"):
        y2, h2, cache2 = reference.rnn_forward(x, *state, *w, nonlinearity=cell[4:],
                                               lengths=lengths, reverse=True)
        expected_state = (h2,)
        dx2, dh2, *dw2 = reference.rnn_backward(dy, *dstate, cache2)
        expected_dstate = (dh2,)
    else:
        y2, h2, cache2 = reference.gru_forward(x, *state, *w, reset_after=cell == "gru_reset_after",
                                               lengths=lengths, reverse=True)
        expected_state = (h2,)
        dx2, dh2, *dw2 = reference.gru_backward(dy, *dstate, cache2)
        expected_dstate = (dh2,)
    np.testing.assert_array_equal(y, y2)
    for a, b in zip(state_n + dstate0 + tuple(dw) + (dx,),
                    expected_state + expected_dstate + tuple(dw2) + (dx2,)):
        np.testing.assert_array_equal(a, b)
    # a layer names its cell for the reference
    layers = [make(v, I, H) for v in VARIANTS]
    assert sorted(layer.cell_name for layer in layers) == sorted(reference.CELLS)
    with pytest.raises(ValueError, match="cell must be one of"):
        reference.forward("elman", x, None, *w)


def test_one_lengths_check_everywhere():
    lengths = np.array([3, 1], dtype=np.int32)
    checked = reference.check_lengths(lengths, 3, 2)
    assert checked.dtype == np.int64 and not np.may_share_memory(checked, lengths)
    cases = [(np.array([-1, 1]), ValueError, r"lengths must lie in \[0, T=3\]"),
             (np.array([4, 1]), ValueError, r"lengths must lie in \[0, T=3\]"),
             (np.array([1.0, 2.0]), TypeError, "lengths must be integers"),
             (np.array([1, 2, 3]), ValueError, r"lengths must have shape \(2,\)")]
    x = np.zeros((3, 2, 2), np.float32)
    for bad, error, match in cases:
        with pytest.raises(error, match=match):
            reference.check_lengths(bad, 3, 2)
        with pytest.raises(error, match=match):             # the layers use the same check
            rnnx.GRU(2, 3)(x, lengths=bad)
        with pytest.raises(error, match=match):
            rnnx.Sequential(rnnx.LSTM(2, 3))(x, lengths=bad)


# ---------------------------------------------------------------- import cycles

def test_no_import_cycles_in_the_package():
    """Every `from .x import` (also inside functions) is an edge; the graph is acyclic."""
    package = pathlib.Path(rnnx.__file__).parent
    graph = {}
    for path in package.glob("*.py"):
        if path.stem == "__init__":
            continue
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    edges.add(node.module.split(".")[0])
                else:
                    edges.update(alias.name for alias in node.names)
        graph[path.stem] = edges
    state = {}

    def visit(name, trail):
        if state.get(name) == "done" or name not in graph:
            return
        assert state.get(name) != "open", f"import cycle: {' -> '.join(trail + [name])}"
        state[name] = "open"
        for other in graph[name]:
            visit(other, trail + [name])
        state[name] = "done"

    for name in graph:
        visit(name, [])
    assert "io" not in graph["model"]
    assert not any(e for e in graph["reference"] if e != "_core"), "reference imports nothing of rnnx"


# ------------------------------------------------------------------ dtype policy

def models32():
    return [rnnx.LSTM(3, 4, seed=0), rnnx.GRU(3, 4, batch_first=True, seed=0),
            rnnx.Dense(3, 2, seed=0), rnnx.Sequential(rnnx.RNN(3, 4, seed=0), rnnx.Dense(4, 1))]


@pytest.mark.parametrize("model", models32(), ids=lambda m: type(m).__name__)
def test_float64_into_a_float32_layer_raises(model):
    x64 = np.random.default_rng(0).standard_normal((5, 2, 3))
    for call in (lambda: model(x64), lambda: model.forward(x64)):
        with pytest.raises(TypeError, match=r"x has dtype float64 but .* is float32: pass "
                                            r"x\.astype\(np\.float32\), or build the layer with "
                                            r"dtype=np\.float64"):
            call()
    for bad, match in [(x64.astype(np.int64), "must be a floating array"),
                       (x64 > 0, "must be a floating array"),
                       (x64.astype(np.complex64), "is complex")]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # no ComplexWarning: an error
            with pytest.raises(TypeError, match=match):
                model(bad)
    y32 = model.forward(x64.astype(np.float32))[0]
    assert y32.dtype == np.float32


def test_lower_precision_is_upcast():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    for variant in VARIANTS:
        layer = make(variant, 3, 4, dtype=np.float64, seed=3)
        y32, s32 = layer(x)
        y64, s64 = layer(x.astype(np.float64))
        assert y32.dtype == np.float64
        np.testing.assert_array_equal(y32, y64)
        # a float32 state into a float64 layer is upcast too
        state32 = tuple(s.astype(np.float32) for s in s32) if isinstance(s32, tuple) \
            else s32.astype(np.float32)
        state64 = tuple(s.astype(np.float64) for s in state32) if isinstance(state32, tuple) \
            else state32.astype(np.float64)
        np.testing.assert_array_equal(layer(x, state32)[0], layer(x, state64)[0])
    lstm = rnnx.LSTM(3, 4, seed=0)
    h = np.zeros((1, 2, 4))
    with pytest.raises(TypeError, match=r"state\[0\] \(h\) has dtype float64 but this LSTM is float32"):
        lstm(x, (h, h))
    y, _, cache = lstm.forward(x)
    with pytest.raises(TypeError, match="dy has dtype float64 but this LSTM is float32"):
        lstm.backward(cache, np.ones(y.shape))
    stream = lstm.stream(batch_size=2)
    with pytest.raises(TypeError, match="x_t has dtype float64 but this stream is float32"):
        stream.step(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="x has dtype float64 but this stream is float32"):
        stream.run(np.zeros((4, 2, 3)))
    half = lstm.stream(batch_size=2).step(np.full((2, 3), 0.5, np.float16))
    np.testing.assert_array_equal(half, lstm.stream(batch_size=2).step(np.full((2, 3), 0.5, np.float32)))
    # byte-swapped input is read by value, in a step and in a chunk
    chunk = np.random.default_rng(2).standard_normal((4, 2, 3)).astype(np.float32)
    swapped = chunk.astype(chunk.dtype.newbyteorder())
    for make_stream in (lambda: lstm.stream(batch_size=2),):
        a, b = make_stream(), make_stream()
        np.testing.assert_array_equal(np.stack([a.step(x_t) for x_t in swapped]),
                                      np.stack([b.step(x_t) for x_t in chunk]))
        np.testing.assert_array_equal(a.run(swapped), b.run(chunk))
    np.testing.assert_array_equal(lstm(swapped)[0], lstm(chunk)[0])
    # Python lists are taken in the layer's dtype
    y_list, _ = rnnx.GRU(1, 2, seed=0)([[0.5], [1.0]])
    assert y_list.dtype == np.float32 and y_list.shape == (2, 2)


# ----------------------------------------------------------------- docstrings

def test_help_shows_parameters_shapes_and_initialisation():
    for cls in (rnnx.RNN, rnnx.LSTM, rnnx.GRU, rnnx.Dense):
        text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
        for word in ("Parameters", "input_size" if cls is not rnnx.Dense else "in_features",
                     "dtype", "seed", "uniform", "forward", "backward", "state_names"):
            assert word in text, f"help({cls.__name__}) lacks {word!r}"
        assert "Initialize self" not in text
    assert "reset_after" in pydoc.render_doc(rnnx.GRU, renderer=pydoc.plaintext)
    assert "nonlinearity" in pydoc.render_doc(rnnx.RNN, renderer=pydoc.plaintext)
    assert "1/sqrt(H)" in rnnx.LSTM.__doc__
    stream_help = pydoc.render_doc(rnnx.Stream, renderer=pydoc.plaintext)
    assert "step(self, x_t)" in stream_help and "run(self, x)" in stream_help


def test_every_public_name_has_a_numpydoc_docstring():
    import rnnx.dense
    import rnnx.layers
    import rnnx.model
    import rnnx.module
    for module in (rnnx.layers, rnnx.dense, rnnx.model, rnnx.module, reference):
        assert module.__doc__
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__ and obj.__doc__.strip(), f"{module.__name__}.{name}"
                if inspect.isclass(obj):
                    for method_name, method in vars(obj).items():
                        if not method_name.startswith("_") and inspect.isfunction(method):
                            assert method.__doc__, f"{name}.{method_name}"


# ---------------------------------------------------------------------- Stream

@pytest.mark.parametrize("variant", list(VARIANTS))
def test_stream_run_equals_stepping_and_carries_state(variant):
    T, B, I, H, L = 9, 2, 3, 4, 2
    layer = make(variant, I, H, num_layers=L, dtype=np.float64, seed=4)
    x = np.random.default_rng(4).standard_normal((T, B, I))
    stepper, runner = layer.stream(batch_size=B), layer.stream(batch_size=B)
    stepped = np.stack([stepper.step(x_t) for x_t in x])
    chunks = np.concatenate([runner.run(x[:4]), runner.run(x[4:4]), runner.run(x[4:])])
    assert np.array_equal(chunks, stepped), "run must equal stepping, bit for bit in float64"
    assert np.array_equal(stepped, layer(x)[0])
    as_tuple = lambda s: s if isinstance(s, tuple) else (s,)
    for a, b in zip(as_tuple(runner.state), as_tuple(stepper.state)):
        assert np.array_equal(a, b)
    # unbatched chunk for batch_size 1, and a float32 stream within rounding
    single = make(variant, I, H, num_layers=L, seed=4).stream()
    y1 = single.run(x[:, 0].astype(np.float32))
    assert y1.shape == (T, H) and y1.dtype == np.float32
    np.testing.assert_allclose(y1, stepped[:, 0], rtol=1e-5, atol=1e-6)


def test_stream_run_makes_no_call_per_step(monkeypatch):
    layer = rnnx.LSTM(3, 4, num_layers=3, seed=0)
    stream = layer.stream()
    # one call into the binding, which runs each layer's whole chunk in one call into C,
    # on the stream's packed weights (not through _core.forward, which would repack them)
    monkeypatch.setattr(rnnx.layers._core, "forward", lambda *a, **k: pytest.fail("repacks"))
    stream._core_step = lambda x: pytest.fail("run must not step")
    x = np.random.default_rng(0).standard_normal((50, 1, 3)).astype(np.float32)
    y = stream.run(x)
    monkeypatch.undo()
    np.testing.assert_allclose(y, layer(x)[0], rtol=1e-5, atol=1e-6)


def test_stream_step_is_a_method_with_a_repr_and_points_to_run():
    stream = rnnx.GRU(3, 4, num_layers=2, seed=0).stream(batch_size=2)
    assert "step" in vars(rnnx.Stream) and "step" not in vars(stream)
    assert repr(stream) == ("<rnnx.Stream of GRU(input_size=3, hidden_size=4, num_layers=2, "
                            "dtype=float32), batch_size=2>")
    with pytest.raises(ValueError, match=r"got a chunk of shape \(5, 2, 3\): use stream\.run"):
        stream.step(np.zeros((5, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"x_t must be \(2, 3\)"):
        stream.step(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"x must be \(T, 2, 3\)"):
        stream.run(np.zeros((5, 3), np.float32))

"""rnnx.to_onnx and rnnx.from_onnx against onnxruntime, onnx's checker and PyTorch's exporter.

onnxruntime (1.31) implements RNN/LSTM/GRU in float32 only (double: NOT_IMPLEMENTED for RNN,
"does not support double yet" for LSTM and GRU), so float64 files are checked by onnx's
reference evaluator with the cells computed by rnnx.reference (the NumPy twin), and their
structure by onnxruntime after casting them to float32.
"""
import importlib
import os
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import rnnx


def peer(name):
    """The peer module; in CI a missing peer fails the run instead of skipping the test."""
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(name)


onnx = peer("onnx")
ort = peer("onnxruntime")

CELLS = [(cls.__name__, options) for cls, options in rnnx.layers.variants().values()]
ACTIVATIONS = ["identity", "sigmoid", "softmax", "tanh", "relu"]


def random_model(seed, dtype):
    """A random Sequential (or bare layer) over the cells, stacks, directions and heads."""
    rng = np.random.default_rng(seed)
    kind, extra = CELLS[seed % len(CELLS)]
    batch_first = bool(rng.integers(2))
    layers, size = [], int(rng.integers(1, 4))
    for j in range(int(rng.integers(1, 3))):
        layer = getattr(rnnx, kind)(size, int(rng.integers(1, 5)),
                                    num_layers=int(rng.integers(1, 3)),
                                    bias=bool(rng.integers(4)), batch_first=batch_first,
                                    bidirectional=bool(rng.integers(2)), dtype=dtype,
                                    seed=seed * 10 + j, **extra)
        layers.append(layer)
        size = layer.num_directions * layer.hidden_size
    for j in range(int(rng.integers(0, 3))):
        out = int(rng.integers(1, 4))
        layers.append(rnnx.Dense(size, out, activation=ACTIVATIONS[int(rng.integers(5))],
                                 bias=bool(rng.integers(4)), dtype=dtype, seed=seed * 10 + 5 + j))
        size = out
    many_to_one = bool(rng.integers(2))
    if len(layers) == 1 and not many_to_one:
        return layers[0]
    return rnnx.Sequential(*layers, many_to_one=many_to_one)


def probe(model, seed, T=5, B=3):
    rng = np.random.default_rng(seed + 100)
    x = rng.standard_normal((B, T, model.input_size) if model.batch_first else
                            (T, B, model.input_size)).astype(model.dtype)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    return x, lengths


def flat_states(model, state):
    """The model's final states in the graph's output order."""
    per_layer = state if isinstance(model, rnnx.Sequential) else (state,)
    out = []
    for s in per_layer:
        out.extend(s if isinstance(s, tuple) else (s,))
    return out


def run_ort(proto, feeds):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds), [o.name for o in session.get_outputs()]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("with_lengths", [False, True])
def test_onnxruntime_runs_the_export_like_rnnx_float32(seed, with_lengths, tmp_path):
    model = random_model(seed, np.float32)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    path = tmp_path / "model.onnx"
    proto = rnnx.to_onnx(model, path, lengths=with_lengths)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    x, lengths = probe(model, seed)
    feeds = {"x": x}
    if with_lengths:
        feeds["lengths"] = lengths.astype(np.int32)
        y, state = model(x, lengths=lengths)
    else:
        y, state = model(x)
    outputs, names = run_ort(proto, feeds)
    assert names[0] == "y" and [i.name for i in proto.graph.input] == list(feeds)
    expected = [y] + flat_states(model, state)
    assert len(outputs) == len(expected)
    for name, got, want in zip(names, outputs, expected):
        # float32: the two engines sum in different orders; 1e-5 relative to the largest value
        scale = max(1.0, float(np.max(np.abs(want))))
        assert got.dtype == np.float32 and got.shape == want.shape, name
        assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=name)
    for name, value in model.state_dict().items():
        assert np.array_equal(value, before[name]), "to_onnx changed the model"


def _cast_to_float32(proto):
    """A float64 model with every double initializer and value made float32."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for init in proto.graph.initializer:
        if init.data_type == onnx.TensorProto.DOUBLE:
            init.CopyFrom(onnx.numpy_helper.from_array(
                onnx.numpy_helper.to_array(init).astype(np.float32), init.name))
    for value in list(proto.graph.input) + list(proto.graph.output):
        if value.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE:
            value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    return proto


@pytest.mark.parametrize("seed", range(4))
def test_float64_export_is_exact_under_the_reference_and_runs_cast_in_onnxruntime(seed):
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

    from rnnx.interop._onnx_verify import reference_ops
    model = random_model(seed + 20, np.float64)
    proto = rnnx.to_onnx(model, lengths=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x, lengths = probe(model, seed)
    y, state = model(x, lengths=lengths)
    feeds = {"x": x, "lengths": lengths.astype(np.int32)}
    got = ReferenceEvaluator(proto, new_ops=reference_ops(OpRun)).run(None, feeds)
    for g, want in zip(got, [y] + flat_states(model, state)):
        assert g.dtype == np.float64
        assert_allclose(g, want, rtol=1e-12, atol=1e-12)
    # the same graph in float32, run by onnxruntime: the structure holds in both dtypes
    feeds["x"] = x.astype(np.float32)
    outputs, _ = run_ort(_cast_to_float32(proto), feeds)
    assert_allclose(outputs[0], y, rtol=1e-4, atol=1e-4)


def test_onnxruntime_rejects_double_recurrent_nodes():
    # The reason float64 exports are checked as above; if this starts failing, onnxruntime
    # runs double RNNs and the float32 test can grow a float64 twin.
    proto = rnnx.to_onnx(rnnx.LSTM(2, 3, dtype=np.float64, seed=0))
    with pytest.raises(Exception, match="double|NOT_IMPLEMENTED|implementation"):
        run_ort(proto, {"x": np.zeros((2, 1, 2))})


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_rnnx_onnx_rnnx_is_exact(seed):
    dtype = (np.float32, np.float64)[seed % 2]
    model = random_model(seed + 40, dtype)
    back = rnnx.from_onnx(rnnx.to_onnx(model, lengths=True))
    assert type(back) is type(model)
    assert back.config() == model.config()
    assert back.state_dict().keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        assert np.array_equal(back.state_dict()[name], value), name
    x, lengths = probe(model, seed)
    assert np.array_equal(back(x, lengths=lengths)[0], model(x, lengths=lengths)[0])


def test_graph_names_and_shapes_are_documented_ones():
    model = rnnx.Sequential(rnnx.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True),
                            rnnx.GRU(8, 5, batch_first=True), rnnx.Dense(5, 2))
    proto = rnnx.to_onnx(model, lengths=True)

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    assert [(v.name, dims(v)) for v in proto.graph.input] == [("x", ["B", "T", 3]),
                                                              ("lengths", ["B"])]
    assert [(v.name, dims(v)) for v in proto.graph.output] == [
        ("y", ["B", "T", 2]), ("h_n_0", [4, "B", 4]), ("c_n_0", [4, "B", 4]),
        ("h_n_1", [1, "B", 5])]
    assert [n.op_type for n in proto.graph.node].count("LSTM") == 2


@pytest.mark.parametrize("opset", [14, 21])
def test_other_opsets_run_in_onnxruntime(opset):
    # 14 is the oldest opset to_onnx writes; the file's IR version is the oldest that holds it
    model = rnnx.Sequential(rnnx.GRU(2, 3, bidirectional=True, batch_first=True, seed=0),
                            rnnx.Dense(6, 2, activation="softmax", seed=1))
    proto = rnnx.to_onnx(model, opset=opset, lengths=True)
    assert proto.opset_import[0].version == opset
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    x, lengths = probe(model, 0)
    y_ort = run_ort(proto, {"x": x, "lengths": lengths.astype(np.int32)})[0][0]
    assert_allclose(y_ort, model(x, lengths=lengths)[0], rtol=1e-5, atol=1e-6)


def test_to_onnx_rejects_bad_arguments():
    with pytest.raises(ValueError, match="opset"):
        rnnx.to_onnx(rnnx.GRU(2, 3), opset=9)
    with pytest.raises(TypeError, match="model must be an rnnx layer"):
        rnnx.to_onnx(object())
    with pytest.raises(ValueError, match="lengths=True needs a recurrent layer"):
        rnnx.to_onnx(rnnx.Dense(2, 3), lengths=True)


# ------------------------------------------------------------------- torch.onnx.export


torch = peer("torch")


class Head(torch.nn.Module):
    """What a PyTorch user writes: a recurrent module, then a Linear on its output."""

    def __init__(self, rnn, linear, activation=None, last_step=False):
        super().__init__()
        self.rnn, self.linear, self.activation, self.last_step = rnn, linear, activation, last_step

    def forward(self, x):
        y, _ = self.rnn(x)
        if self.last_step:
            y = y[:, -1] if self.rnn.batch_first else y[-1]
        y = self.linear(y)
        return y if self.activation is None else self.activation(y)


def random_torch(seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    kind = ["RNN", "LSTM", "GRU"][seed % 3]
    extra = {"nonlinearity": ["tanh", "relu"][int(rng.integers(2))]} if kind == "RNN" else {}
    rnn = getattr(torch.nn, kind)(int(rng.integers(1, 4)), int(rng.integers(1, 5)),
                                  num_layers=int(rng.integers(1, 4)), bias=bool(rng.integers(4)),
                                  batch_first=bool(rng.integers(2)),
                                  bidirectional=bool(rng.integers(2)), **extra)
    if rng.integers(2):
        return rnn
    D = 2 if rnn.bidirectional else 1
    activation = [None, torch.nn.Sigmoid(), torch.nn.Softmax(dim=-1)][int(rng.integers(3))]
    last_step = bool(rng.integers(2)) and D == 1
    return Head(rnn, torch.nn.Linear(D * rnn.hidden_size, 2), activation, last_step)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_onnx_export_imports_and_runs_like_torch(seed, dtype, tmp_path):
    module = random_torch(seed).to(getattr(torch, np.dtype(dtype).name))
    rnn = module if isinstance(module, torch.nn.RNNBase) else module.rnn
    shape = (3, 5, rnn.input_size) if rnn.batch_first else (5, 3, rnn.input_size)
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(dtype))
    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the legacy exporter's deprecation and batch notes
        # dynamo=False: the TorchScript exporter, which needs no onnxscript; without constant
        # folding it computes W, R, B in the graph (Slice/Concat/Unsqueeze of the parameters)
        torch.onnx.export(module, (x,), str(path), dynamo=False,
                          do_constant_folding=seed % 3 != 0)
    model = rnnx.from_onnx(path)
    with torch.no_grad():
        want = module(x)
    want = (want[0] if isinstance(want, tuple) else want).numpy()
    got = model(x.numpy())[0]
    assert got.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(got, want, rtol=tol, atol=tol)
    if isinstance(module, torch.nn.RNNBase):
        assert type(model).__name__ == type(module).__name__
        assert (model.num_layers, model.bidirectional, model.batch_first) == \
            (module.num_layers, module.bidirectional, module.batch_first)
        params = {k: v.numpy() for k, v in module.state_dict().items()}
        for name, value in model.state_dict().items():
            assert np.array_equal(value, params[name]), name
    else:
        assert model.many_to_one == ("output" if module.last_step else False)


class StateHead(torch.nn.Module):
    """The other common classifier: a Linear on the last layer's final state h_n[-1] (both
    directions' for a bidirectional module): rnnx's many_to_one."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn
        self.linear = torch.nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), 2)

    def forward(self, x):
        _, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        h = torch.cat([h[-2], h[-1]], dim=-1) if self.rnn.bidirectional else h[-1]
        return self.linear(h)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_heads_on_the_final_state_import_as_many_to_one(dtype, tmp_path):
    torch.manual_seed(4)
    tdtype = getattr(torch, np.dtype(dtype).name)
    for rnn in [torch.nn.LSTM(3, 4, num_layers=2), torch.nn.GRU(3, 4, 2, batch_first=True),
                torch.nn.RNN(3, 4, bidirectional=True)]:
        module = StateHead(rnn).to(tdtype)
        x = torch.randn(5, 2, 3, dtype=tdtype)
        path = tmp_path / "state_head.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), str(path), dynamo=False)
        model = rnnx.from_onnx(path)
        assert model.many_to_one
        with torch.no_grad():
            want = module(x).numpy()
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert_allclose(model(x.numpy())[0], want, rtol=tol, atol=tol)


def test_torch_dynamo_exporter_graphs_import_its_unrolled_rnn_too(tmp_path):
    # torch 2.13's default exporter (dynamo=True, needs onnxscript) keeps LSTM and GRU nodes
    # with their own glue, and unrolls nn.RNN into MatMul/Tanh steps, read back as an RNN
    # (tests/test_onnx_any.py has every variant)
    peer("onnxscript")
    torch.manual_seed(3)
    modules = [torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True),
               torch.nn.GRU(3, 4, batch_first=True), torch.nn.RNN(3, 4)]
    x = torch.randn(5, 2, 3)
    for module in modules:
        path = tmp_path / "dynamo.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), str(path), dynamo=True)
        model = rnnx.from_onnx(path)
        assert type(model).__name__ == type(module).__name__
        assert (model.num_layers, model.bidirectional, model.batch_first) == \
            (module.num_layers, module.bidirectional, module.batch_first)
        with torch.no_grad():
            want = module(x)[0].numpy()
        assert_allclose(model(x.numpy())[0], want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------ what is refused

H, I = 2, 3


def one_node_graph(op="LSTM", inputs=None, dtype=np.float32, extra_inputs=(), **attrs):
    """x (T, B, I) -> one recurrent node -> y, with constant W, R, B."""
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[op]
    D = 2 if attrs.get("direction") == "bidirectional" else 1
    rng = np.random.default_rng(0)
    inits = [onnx.numpy_helper.from_array(rng.uniform(-1, 1, s).astype(dtype), n)
             for n, s in (("W", (D, G * H, I)), ("R", (D, G * H, H)), ("B", (D, 2 * G * H)))]
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    node = onnx.helper.make_node(op, inputs or ["x", "W", "R", "B"], ["Y"], hidden_size=H, **attrs)
    graph_inputs = [onnx.helper.make_tensor_value_info("x", elem, ["T", "B", I])]
    graph_inputs += list(extra_inputs)
    graph = onnx.helper.make_graph([node], "g", graph_inputs,
                                   [onnx.helper.make_tensor_value_info("Y", elem, None)], inits)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


@pytest.mark.parametrize("attrs, match", [
    ({"clip": 3.0}, "'clip'"),
    ({"input_forget": 1}, "'input_forget'"),
    ({"activations": ["Sigmoid", "Relu", "Tanh"]}, "activations"),
    ({"activation_alpha": [0.5]}, "'activation_alpha'"),
    ({"activation_beta": [0.5]}, "'activation_beta'"),
])
def test_unsupported_lstm_attributes_are_named(attrs, match):
    with pytest.raises(ValueError, match=match):
        rnnx.from_onnx(one_node_graph("LSTM", **attrs))


def test_peepholes_import_and_bad_ones_initial_state_float16_and_unknown_ops_are_refused():
    model = one_node_graph("LSTM", inputs=["x", "W", "R", "B", "", "", "", "P"])
    p = np.random.default_rng(0).uniform(-1, 1, (1, 3 * H)).astype(np.float32)
    model.graph.initializer.append(onnx.numpy_helper.from_array(p, "P"))
    layer = rnnx.from_onnx(model)    # verified against onnx's evaluator on a probe
    assert layer.peephole
    p_i, p_o, p_f = np.split(p[0], 3)           # ONNX's order -> rnnx's [p_i p_f p_o]
    assert np.array_equal(layer.state_dict()["weight_peephole_l0"], np.concatenate([p_i, p_f, p_o]))
    model.graph.initializer[-1].CopyFrom(onnx.numpy_helper.from_array(p[:, :2 * H], "P"))
    with pytest.raises(ValueError, match=rf"P \(1, {2 * H}\) does not fit hidden_size={H}"):
        rnnx.from_onnx(model)
    # a graph input initial_h is the model's state (tests/test_onnx_any.py); a constant
    # non-zero one is refused by name
    model = one_node_graph("GRU", inputs=["x", "W", "R", "B", "", "h0"])
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.ones((1, 2, H), np.float32),
                                                                "h0"))
    with pytest.raises(ValueError, match="initial_h .'h0'. is a non-zero constant"):
        rnnx.from_onnx(model)
    with pytest.raises(TypeError, match="float16"):
        rnnx.from_onnx(one_node_graph("RNN", dtype=np.float16))
    with pytest.raises(ValueError, match="activations"):
        rnnx.from_onnx(one_node_graph("RNN", activations=["Sigmoid"]))
    with pytest.raises(ValueError, match="activations"):
        rnnx.from_onnx(one_node_graph("GRU", activations=["Sigmoid", "Relu"]))
    model = one_node_graph("RNN")
    model.graph.node[0].output[0] = "Y4"
    model.graph.node.append(onnx.helper.make_node("Neg", ["Y4"], ["Y"]))
    with pytest.raises(ValueError, match="'Neg' has no rnnx counterpart"):
        rnnx.from_onnx(model)
    with pytest.raises(TypeError, match="path_or_model"):
        rnnx.from_onnx(3)


def test_glue_that_rnnx_does_not_do_fails_verification():
    # A bidirectional Y (T, 2, B, H) reshaped to (T, B, 2H) without the Transpose mixes
    # batch rows and directions: a valid graph, which rnnx must refuse.
    model = one_node_graph("GRU", direction="bidirectional", linear_before_reset=1)
    model.graph.node[0].output[0] = "Y4"
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([0, 0, -1]), "shape"))
    model.graph.node.append(onnx.helper.make_node("Reshape", ["Y4", "shape"], ["Y"]))
    with pytest.raises(ValueError, match="computes something the imported rnnx model does not"):
        rnnx.from_onnx(model)
    model.graph.node.insert(1, onnx.helper.make_node("Transpose", ["Y4"], ["Yt"],
                                                     perm=[0, 2, 1, 3]))
    model.graph.node[2].input[0] = "Yt"
    assert isinstance(rnnx.from_onnx(model), rnnx.GRU)   # the right glue imports


# ------------------------------------------------------- length 0 and lone reverse nodes

NODE_CELLS = [("RNN", {}), ("LSTM", {}), ("GRU", {"linear_before_reset": 0}),
              ("GRU", {"linear_before_reset": 1})]


def lone_node_graph(op, direction, dtype=np.float32, lengths=False, initial=False, seed=0,
                    **attrs):
    """x (T, B, I) [, lengths (B,) int32] [, h0, c0 (D, B, H)] -> one node -> y (T, B, D*H),
    then Y_h (and Y_c): the glue rnnx.to_onnx writes (Transpose + Reshape)."""
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[op]
    D = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(seed)
    inits = [onnx.numpy_helper.from_array(rng.uniform(-1, 1, s).astype(dtype), n)
             for n, s in (("W", (D, G * H, I)), ("R", (D, G * H, H)), ("B", (D, 2 * G * H)))]
    inits.append(onnx.numpy_helper.from_array(np.array([0, 0, -1]), "shape"))
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph_inputs = [onnx.helper.make_tensor_value_info("x", elem, ["T", "B", I])]
    node_inputs = ["x", "W", "R", "B", "lengths" if lengths else ""]
    if lengths:
        graph_inputs.append(onnx.helper.make_tensor_value_info("lengths", onnx.TensorProto.INT32,
                                                               ["B"]))
    if initial:
        states = ["h0", "c0"] if op == "LSTM" else ["h0"]
        node_inputs += states
        graph_inputs += [onnx.helper.make_tensor_value_info(n, elem, [D, "B", H]) for n in states]
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    nodes = [onnx.helper.make_node(op, node_inputs, outs, hidden_size=H, direction=direction,
                                   **attrs),
             onnx.helper.make_node("Transpose", ["Y"], ["Yt"], perm=[0, 2, 1, 3]),
             onnx.helper.make_node("Reshape", ["Yt", "shape"], ["y"])]
    graph = onnx.helper.make_graph(
        nodes, "lone", graph_inputs,
        [onnx.helper.make_tensor_value_info(n, elem, None) for n in ["y"] + outs[1:]], inits)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)],
                                  ir_version=8)


def node_feeds(op, direction, dtype=np.float32, T=5, B=4, seed=1):
    D = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    states = [rng.standard_normal((D, B, H)).astype(dtype) + 2
              for _ in range(2 if op == "LSTM" else 1)]
    return x, np.array([0, T, 2, 0][:B]), states


@pytest.mark.parametrize("initial", [False, True])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op, attrs", NODE_CELLS)
def test_onnxruntime_zeros_a_length_zero_row_even_from_a_given_initial_state(op, attrs, direction,
                                                                          initial):
    """What onnxruntime does with sequence_lens 0, as the README states it: zeros for Y, Y_h
    and Y_c, with or without initial_h/initial_c.  rnnx gives zeros for y and the initial
    state as the final state, so the two agree from zero states (what from_onnx imports) and
    differ, on those rows' final states only, from a non-zero one."""
    proto = lone_node_graph(op, direction, lengths=True, initial=initial, **attrs)
    x, lengths, states = node_feeds(op, direction)
    feeds = {"x": x, "lengths": lengths.astype(np.int32)}
    if initial:
        feeds.update(zip(["h0", "c0"], states))
    y_ort, *finals_ort = run_ort(proto, feeds)[0]
    zero = lengths == 0
    assert not y_ort[:, zero].any()
    for f in finals_ort:
        assert not f[:, zero].any()
    clean = lone_node_graph(op, direction, lengths=True, **attrs)  # the same, from zero states
    layer = rnnx.from_onnx(clean)
    assert layer.go_backwards == (direction == "reverse")
    assert layer.bidirectional == (direction == "bidirectional")
    state = None
    if initial:
        state = tuple(states) if op == "LSTM" else states[0]
    y, final = layer(x, state, lengths)
    final = list(final) if isinstance(final, tuple) else [final]
    assert_allclose(y, y_ort, rtol=1e-5, atol=1e-6)
    for ours, theirs, given in zip(final, finals_ort, states):
        assert_allclose(ours[:, ~zero], theirs[:, ~zero], rtol=1e-5, atol=1e-6)
        assert np.array_equal(ours[:, zero], given[:, zero] if initial else 0 * given[:, zero])


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op, attrs", NODE_CELLS)
def test_import_with_length_zero_rows_equals_onnxruntime(op, attrs, direction):
    proto = lone_node_graph(op, direction, lengths=True, seed=3, **attrs)
    x, lengths, _ = node_feeds(op, direction, seed=4)
    outputs, _ = run_ort(proto, {"x": x, "lengths": lengths.astype(np.int32)})
    model = rnnx.from_onnx(proto)
    y, final = model(x, lengths=lengths)
    final = list(final) if isinstance(final, tuple) else [final]
    for ours, theirs in zip([y] + final, outputs):
        assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(8))
def test_export_with_length_zero_rows_runs_in_onnxruntime_like_rnnx(seed):
    """rnnx -> ONNX -> onnxruntime with rows of length 0: y, the heads on it, many_to_one
    and every final state agree (the graph starts from zero states)."""
    model = random_model(seed, np.float32)
    layers = model.layers if isinstance(model, rnnx.Sequential) else [model]
    for layer in layers:
        if seed % 2 == 0 and getattr(layer, "bidirectional", True) is False:
            layer.go_backwards = True                      # a direction="reverse" node
    proto = rnnx.to_onnx(model, lengths=True)
    x, lengths = probe(model, seed, B=4)
    lengths[1:3] = 0
    outputs, names = run_ort(proto, {"x": x, "lengths": lengths.astype(np.int32)})
    y, state = model(x, lengths=lengths)
    for name, got, want in zip(names, outputs, [y] + flat_states(model, state)):
        scale = max(1.0, float(np.max(np.abs(want))))
        assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=name)


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("op, attrs", NODE_CELLS)
def test_lone_reverse_node_imports_as_go_backwards(op, attrs, with_lengths):
    """float32 against onnxruntime (1e-5 relative), from zero and from given initial states
    (the rows of length > 0: see the test above for length 0)."""
    proto = lone_node_graph(op, "reverse", lengths=with_lengths, initial=True, seed=5, **attrs)
    layer = rnnx.from_onnx(lone_node_graph(op, "reverse", lengths=with_lengths, seed=5, **attrs))
    assert layer.go_backwards and not layer.bidirectional and layer.num_directions == 1
    assert all("reverse" not in name for name in layer.state_dict())
    x, lengths, states = node_feeds(op, "reverse", seed=6)
    lengths[lengths == 0] = 3
    lengths = lengths if with_lengths else None
    feeds = {"x": x, **dict(zip(["h0", "c0"], states))}
    if with_lengths:
        feeds["lengths"] = lengths.astype(np.int32)
    y_ort, *finals_ort = run_ort(proto, feeds)[0]
    y, final = layer(x, tuple(states) if op == "LSTM" else states[0], lengths)
    final = list(final) if isinstance(final, tuple) else [final]
    for ours, theirs in zip([y] + final, [y_ort] + finals_ort):
        scale = max(1.0, float(np.max(np.abs(theirs))))
        assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * scale)
    # it is the reverse half of a bidirectional layer on its own
    both = rnnx.from_onnx(lone_node_graph(op, "bidirectional", lengths=with_lengths, seed=5,
                                          **attrs))
    both.load_state_dict({**{k: v for k, v in both.state_dict().items() if "reverse" not in k},
                          **{k + "_reverse": v for k, v in layer.state_dict().items()}})
    assert np.array_equal(both(x, None, lengths)[0][:, :, H:], layer(x, None, lengths)[0])


@pytest.mark.parametrize("op, attrs", NODE_CELLS)
def test_lone_reverse_node_float64_equals_onnx_reference_evaluator(op, attrs):
    """onnx's own evaluator (its cells, not rnnx.reference) runs direction="reverse"; it
    ignores sequence_lens, so this graph has none."""
    from onnx.reference import ReferenceEvaluator
    proto = lone_node_graph(op, "reverse", dtype=np.float64, initial=True, seed=7, **attrs)
    layer = rnnx.from_onnx(lone_node_graph(op, "reverse", dtype=np.float64, seed=7, **attrs))
    assert layer.dtype == np.float64 and layer.go_backwards
    x, _, states = node_feeds(op, "reverse", dtype=np.float64, seed=8)
    expected = ReferenceEvaluator(proto).run(None, {"x": x, **dict(zip(["h0", "c0"], states))})
    y, final = layer(x, tuple(states) if op == "LSTM" else states[0])
    final = list(final) if isinstance(final, tuple) else [final]
    for ours, theirs in zip([y] + final, expected):
        assert_allclose(ours, theirs, rtol=1e-12, atol=1e-13)


def test_reverse_stacks_fold_and_round_trip():
    """Two reverse nodes chained fold into one go_backwards stack; rnnx -> ONNX -> rnnx keeps
    go_backwards, weights and outputs; a many_to_one head reads t = 0, like ONNX's Y_h."""
    for dtype in (np.float32, np.float64):
        model = rnnx.Sequential(rnnx.GRU(3, 4, num_layers=2, go_backwards=True, dtype=dtype,
                                         seed=2, reset_after=False),
                                rnnx.Dense(4, 2, dtype=dtype, seed=3), many_to_one=True)
        proto = rnnx.to_onnx(model, lengths=True)
        directions = [a.s for n in proto.graph.node for a in n.attribute if a.name == "direction"]
        assert directions == [b"reverse", b"reverse"]
        back = rnnx.from_onnx(proto)
        assert back.config() == model.config()
        for name, value in model.state_dict().items():
            assert np.array_equal(back.state_dict()[name], value), name
        x, lengths = probe(model, 2, B=4)
        lengths[1] = 0
        assert np.array_equal(back(x, lengths=lengths)[0], model(x, lengths=lengths)[0])
        if dtype == np.float32:
            y_ort = run_ort(proto, {"x": x, "lengths": lengths.astype(np.int32)})[0][0]
            assert_allclose(y_ort, model(x, lengths=lengths)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["concat_directions", "concat_features", "reverse_first"])
def test_forward_and_reverse_nodes_on_one_x_import_as_a_bidirectional_layer(variant):
    # tf2onnx writes a Keras Bidirectional as two nodes, forward and reverse, on the same X.
    layer = rnnx.LSTM(3, 4, bidirectional=True, seed=7)
    split = {}
    for init in rnnx.to_onnx(layer).graph.initializer:   # W, R, B of the one bidirectional node
        value = onnx.numpy_helper.to_array(init)
        if value.ndim >= 2 and value.shape[0] == 2:
            split[init.name[0]] = value
    inits = [onnx.numpy_helper.from_array(split[k][d:d + 1], f"{k}{d}")
             for k in "WRB" for d in (0, 1)]
    with_lengths = variant == "concat_features"
    lens = "lengths" if with_lengths else ""
    halves = [onnx.helper.make_node("LSTM", ["x", f"W{d}", f"R{d}", f"B{d}", lens], [f"Y{d}"],
                                    hidden_size=4, direction=["forward", "reverse"][d])
              for d in (0, 1)]
    if variant == "reverse_first":
        halves.reverse()
    shape = onnx.numpy_helper.from_array(np.array([0, 0, -1]), "shape")
    axes = onnx.numpy_helper.from_array(np.array([1]), "axes")
    if variant == "concat_features":       # Squeeze each to (T, B, H), concatenate features
        glue = [onnx.helper.make_node("Squeeze", [f"Y{d}", "axes"], [f"S{d}"]) for d in (0, 1)]
        glue.append(onnx.helper.make_node("Concat", ["S0", "S1"], ["y"], axis=-1))
    else:                                  # (T, 2, B, H) as one bidirectional node gives
        glue = [onnx.helper.make_node("Concat", ["Y0", "Y1"], ["Y"], axis=1),
                onnx.helper.make_node("Transpose", ["Y"], ["Yt"], perm=[0, 2, 1, 3]),
                onnx.helper.make_node("Reshape", ["Yt", "shape"], ["y"])]
    inputs = [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["T", "B", 3])]
    if with_lengths:
        inputs.append(onnx.helper.make_tensor_value_info("lengths", onnx.TensorProto.INT32, ["B"]))
    graph = onnx.helper.make_graph(
        halves + glue, "pair", inputs,
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["T", "B", 8])],
        inits + [shape, axes])
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)],
                                   ir_version=8)
    onnx.checker.check_model(proto, full_check=True)
    model = rnnx.from_onnx(proto)
    assert isinstance(model, rnnx.LSTM) and model.bidirectional and model.num_layers == 1
    for name, value in layer.state_dict().items():
        assert np.array_equal(model.state_dict()[name], value), name
    x, lengths = probe(model, 1)
    feeds = {"x": x}
    if with_lengths:
        feeds["lengths"] = lengths.astype(np.int32)
    y_ort = run_ort(proto, feeds)[0][0]
    y = model(x, lengths=lengths if with_lengths else None)[0]
    assert_allclose(y, y_ort, rtol=1e-5, atol=1e-6)

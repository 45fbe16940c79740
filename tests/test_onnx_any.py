"""ONNX files from any exporter: onnx's own backend node tests for RNN, LSTM and GRU, every
variant torch.onnx.export writes for nn.RNN/LSTM/GRU stacks (legacy and dynamo exporters, with
and without h0, fixed and dynamic shapes), layout=1, sequence_lens and initial states as graph
inputs against onnxruntime, and to_onnx(state=True) streamed in onnxruntime step by step
(also with an Embedding first: int64 ids).

The counts the issue asks for are asserted exactly (and printed with -s): a change that
imports more, or fewer, shows here.  The dynamo exporter unrolls nn.RNN into MatMul/Tanh
steps; those are read back too (rnnx/interop/_onnx_unrolled.py)."""
import contextlib
import io
import itertools
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import rnnx
from shared import peer

onnx = peer("onnx")
ort = peer("onnxruntime")


# ------------------------------------------------------ onnx's backend node tests


def _node_cases():
    """onnx.backend.test.case.node's RNN/LSTM/GRU test cases (the models and data sets that
    onnx's backend test data is written from)."""
    from onnx.backend.test.case import node
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # other operators' generators warn on overflows
        cases = node.collect_testcases()
    return [c for c in cases if c.model.graph.node
            and c.model.graph.node[0].op_type in ("RNN", "LSTM", "GRU")]


def _with_initializers(model, feeds):
    """The node test's W, R, B (and P) as initializers, as in any exported model; X,
    sequence_lens, initial_h and initial_c stay graph inputs."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model)
    node = proto.graph.node[0]
    keep = {node.input[0]} | {name for name in node.input[4:7] if name}
    for info in proto.graph.input:
        if info.name not in keep:
            proto.graph.initializer.append(onnx.numpy_helper.from_array(feeds[info.name],
                                                                        info.name))
    kept = [info for info in proto.graph.input if info.name in keep]
    del proto.graph.input[:]
    proto.graph.input.extend(kept)
    return proto


def _node_outputs(layer, node, feeds, layout):
    """What the node's outputs are in the imported layer's results, by from_onnx's documented
    mapping: Y is y (T, B, D*H) as (T, D, B, H), Y_h / Y_c the final state."""
    names = list(node.input) + [""] * (8 - len(node.input))
    x = feeds[names[0]]
    lengths = feeds.get(names[4]) if names[4] else None
    state = [feeds[n] if n else None for n in names[5:7]][:len(layer.state_names)]
    if layout:
        state = [None if s is None else np.swapaxes(s, 0, 1) for s in state]
    if all(s is None for s in state):
        state = None
    elif len(state) == 1:
        state = state[0]
    else:
        state = tuple(np.zeros_like(state[0 if s is None else i]) if s is None else s
                      for i, s in enumerate(state))
    y, final = layer(x, state=state, lengths=lengths)
    final = final if isinstance(final, tuple) else (final,)
    D, H = layer.num_directions, layer.hidden_size
    a, b = y.shape[:2]
    y4 = y.reshape(a, b, D, H) if layout else y.reshape(a, b, D, H).transpose(0, 2, 1, 3)
    finals = [np.swapaxes(s, 0, 1) if layout else s for s in final]
    return dict(zip(node.output, [y4] + finals))


def test_onnx_backend_node_tests_import_and_match():
    imported, matched, refused = [], [], {}
    cases = _node_cases()
    for case in cases:
        inputs, outputs = case.data_sets[0]
        feeds = dict(zip([i.name for i in case.model.graph.input], inputs))
        try:
            layer = rnnx.from_onnx(_with_initializers(case.model, feeds))
        except ValueError as error:
            refused[case.name] = str(error)
            continue
        imported.append(case.name)
        node = case.model.graph.node[0]
        layout = {a.name: a.i for a in node.attribute}.get("layout", 0)
        got = _node_outputs(layer, node, feeds, layout)
        if all(np.allclose(got[info.name], want, rtol=1e-5, atol=1e-6)
               for info, want in zip(case.model.graph.output, outputs)):
            matched.append(case.name)
    print(f"\nonnx node tests: {len(cases)}, imported {len(imported)}, matched {len(matched)}; "
          f"refused {refused}")
    assert len(cases) == 18
    # every one, the peephole LSTM (rnnx.LSTM(peephole=True)) too
    assert refused == {} and matched == imported and len(imported) == 18
    assert "test_lstm_with_peepholes" in matched


# ------------------------------------------------------------- torch.onnx.export

torch = peer("torch")


class _WithState(torch.nn.Module):
    """A recurrent module called with its initial state, as graph inputs h0 (and c0)."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, h0, c0=None):
        return self.rnn(x, h0 if c0 is None else (h0, c0))


class _LastStepHead(torch.nn.Module):
    """A Linear on the last step of a unidirectional layer: out[:, -1] (or out[-1])."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn, self.fc = rnn, torch.nn.Linear(rnn.hidden_size, 2)

    def forward(self, x):
        out = self.rnn(x)[0]
        return self.fc(out[:, -1] if self.rnn.batch_first else out[-1])


def _export(module, args, names, exporter, dynamic, batch_first, path):
    time_batch = {0: "B", 1: "T"} if batch_first else {0: "T", 1: "B"}
    options = {}
    if dynamic and exporter == "legacy":
        options["dynamic_axes"] = {"x": time_batch, **{n: {1: "B"} for n in names[1:]}}
    elif dynamic:
        T = torch.export.Dim("T", min=2, max=64)
        B = torch.export.Dim("B", min=2, max=64)
        dims = {0: B, 1: T} if batch_first else {0: T, 1: B}
        options["dynamic_shapes"] = (dims,) + tuple({1: B} for _ in names[1:])
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=exporter == "dynamo",
                          input_names=names, **options)


def _variants():
    configs = [dict(num_layers=2), dict(bidirectional=True, batch_first=True)]
    for cell, exporter, h0, dynamic, config in itertools.product(
            ["RNN", "LSTM", "GRU"], ["legacy", "dynamo"], [False, True], [False, True], configs):
        yield cell, exporter, h0, dynamic, config, False
    for cell, exporter in itertools.product(["RNN", "LSTM", "GRU"], ["legacy", "dynamo"]):
        yield cell, exporter, False, True, dict(num_layers=2, batch_first=True), True


def test_every_torch_export_variant_imports_and_matches(tmp_path):
    peer("onnxscript")         # the dynamo exporter's
    results = {}
    for cell, exporter, h0, dynamic, config, head in _variants():
        tag = (f"{cell} {exporter} {'h0' if h0 else 'no h0'} "
               f"{'dynamic' if dynamic else 'fixed'} {config}"
               f"{' +Linear(last step)' if head else ''}")
        torch.manual_seed(len(results))
        rnn = getattr(torch.nn, cell)(3, 4, **config)
        D, L = (2 if rnn.bidirectional else 1), rnn.num_layers
        x = torch.randn(2, 5, 3) if rnn.batch_first else torch.randn(5, 2, 3)
        module, args, names = rnn, (x,), ["x"]
        if head:
            module = _LastStepHead(rnn)
        if h0:
            module = _WithState(rnn)
            args += tuple(torch.randn(L * D, 2, 4) for _ in range(1 + (cell == "LSTM")))
            names += ["h0", "c0"][:len(args) - 1]
        path = tmp_path / "torch.onnx"
        _export(module, args, names, exporter, dynamic, rnn.batch_first, path)
        try:
            model = rnnx.from_onnx(path)
        except ValueError as error:
            results[tag] = f"refused: {error}"
            continue
        with torch.no_grad():
            want = module(*args)
        numpy_args = [a.numpy() for a in args]
        state = None
        if h0:
            state = tuple(numpy_args[1:]) if cell == "LSTM" else numpy_args[1]
        y, final = model(numpy_args[0], state=state)
        if head:
            ok = model.many_to_one == "output" and np.allclose(y, want.numpy(), atol=1e-5)
        else:
            h_n = want[1][0] if cell == "LSTM" else want[1]
            h = final[0] if cell == "LSTM" else final
            ok = np.allclose(y, want[0].numpy(), atol=1e-5) and \
                np.allclose(h, h_n.numpy(), atol=1e-5)
        results[tag] = "matched" if ok else "imported, differs"
    counts = {outcome: sum(r.startswith(outcome) for r in results.values())
              for outcome in ("matched", "imported", "refused")}
    print(f"\ntorch.onnx.export variants: {len(results)}, {counts}")
    for tag, result in results.items():
        if result != "matched":
            print(f"  {tag}: {result}")
    assert len(results) == 54
    assert counts == {"matched": 54, "imported": 0, "refused": 0}


class _Head(torch.nn.Module):
    """A Linear (and an activation) on the last step or on the final state."""

    def __init__(self, rnn, activation=None, on_state=False):
        super().__init__()
        D = 2 if rnn.bidirectional else 1
        self.rnn, self.fc = rnn, torch.nn.Linear(D * rnn.hidden_size, 2)
        self.activation, self.on_state = activation, on_state

    def forward(self, x):
        out, h_n = self.rnn(x)
        if self.on_state:
            z = torch.cat([h_n[-2], h_n[-1]], -1) if self.rnn.bidirectional else h_n[-1]
        else:
            z = out[:, -1] if self.rnn.batch_first else out[-1]
        z = self.fc(z)
        return z if self.activation is None else self.activation(z)


@pytest.mark.parametrize("config, head", [
    (dict(num_layers=3, bidirectional=True, nonlinearity="relu", bias=False), None),
    (dict(num_layers=2, batch_first=True), "last step, tanh"),
    (dict(bidirectional=True), "state"),
    (dict(nonlinearity="relu"), "state, sigmoid"),
])
def test_the_dynamo_exporters_unrolled_rnn_imports_with_its_head(config, head, tmp_path):
    """dynamo unrolls nn.RNN into MatMul/Add/Tanh (Relu) steps: the weights are read back from
    the steps, the Linear head after them too, and checked against the graph."""
    peer("onnxscript")
    torch.manual_seed(5)
    rnn = torch.nn.RNN(3, 4, **config)
    module = rnn
    if head is not None:
        activation = {"tanh": torch.nn.Tanh(), "sigmoid": torch.nn.Sigmoid()}.get(
            head.split(", ")[-1])
        module = _Head(rnn, activation, on_state=head.startswith("state"))
    x = torch.randn(2, 5, 3) if rnn.batch_first else torch.randn(5, 2, 3)
    _export(module, (x,), ["x"], "dynamo", False, rnn.batch_first, tmp_path / "u.onnx")
    model = rnnx.from_onnx(tmp_path / "u.onnx")
    with torch.no_grad():
        want = module(x)
    if head is None:
        assert (model.num_layers, model.bidirectional, model.nonlinearity, model.bias) == \
            (rnn.num_layers, rnn.bidirectional, rnn.nonlinearity, rnn.bias)
        params = {k: v.numpy() for k, v in rnn.state_dict().items()}
        for name, value in model.state_dict().items():
            assert np.array_equal(value, params[name]), name
        y, h = model(x.numpy())
        assert_allclose(y, want[0].numpy(), rtol=1e-5, atol=1e-6)
        assert_allclose(h, want[1].numpy(), rtol=1e-5, atol=1e-6)
    else:
        assert model.many_to_one == ("state" if rnn.bidirectional else "output")
        assert_allclose(model(x.numpy())[0], want.numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------- hand-made graphs against onnxruntime


def _node_graph(op, direction, layout, lengths, initial, seed=0, T=5, B=3, I=2, H=4):
    """One node with constant W, R, B; x, and optionally sequence_lens / initial_h /
    initial_c as graph inputs; outputs Y, Y_h (, Y_c)."""
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[op]
    D = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(seed)
    inits = [onnx.numpy_helper.from_array(rng.uniform(-0.7, 0.7, s).astype(np.float32), n)
             for n, s in (("W", (D, G * H, I)), ("R", (D, G * H, H)), ("B", (D, 2 * G * H)))]
    f = onnx.TensorProto.FLOAT
    x_shape = [B, T, I] if layout else [T, B, I]
    state_shape = [B, D, H] if layout else [D, B, H]
    inputs = [onnx.helper.make_tensor_value_info("x", f, x_shape)]
    node_inputs = ["x", "W", "R", "B", "", "", ""]
    if lengths:
        inputs.append(onnx.helper.make_tensor_value_info("lens", onnx.TensorProto.INT32, [B]))
        node_inputs[4] = "lens"
    states = ["h0", "c0"][:2 if op == "LSTM" else 1] if initial else []
    for slot, name in zip((5, 6), states):
        inputs.append(onnx.helper.make_tensor_value_info(name, f, state_shape))
        node_inputs[slot] = name
    while not node_inputs[-1]:
        node_inputs.pop()
    outputs = ["Y", "Y_h", "Y_c"][:3 if op == "LSTM" else 2]
    attrs = dict(hidden_size=H, direction=direction, layout=layout)
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    node = onnx.helper.make_node(op, node_inputs, outputs, **attrs)
    graph = onnx.helper.make_graph([node], "g", inputs,
                                   [onnx.helper.make_tensor_value_info(o, f, None)
                                    for o in outputs], inits)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
def test_layout_lengths_and_initial_state_inputs_equal_onnxruntime(op, direction, layout):
    proto = _node_graph(op, direction, layout, lengths=True, initial=True)
    layer = rnnx.from_onnx(proto)
    assert layer.batch_first == bool(layout)
    rng = np.random.default_rng(1)
    D, B, T = (2 if direction == "bidirectional" else 1), 3, 5
    x = rng.standard_normal((B, T, 2) if layout else (T, B, 2)).astype(np.float32)
    lengths = np.array([5, 2, 4])
    h0 = rng.standard_normal((B, D, 4) if layout else (D, B, 4)).astype(np.float32)
    c0 = rng.standard_normal(h0.shape).astype(np.float32)
    feeds = {"x": x, "lens": lengths.astype(np.int32), "h0": h0}
    if op == "LSTM":
        feeds["c0"] = c0
    # onnxruntime refuses layout=1 ("Batchwise recurrent operations are not supported"): it
    # runs the same node with layout=0 on the inputs transposed, outputs transposed back
    time_major = _node_graph(op, direction, 0, lengths=True, initial=True)
    session = ort.InferenceSession(time_major.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    swap = {"x": lambda a: np.swapaxes(a, 0, 1), "h0": lambda a: np.swapaxes(a, 0, 1),
            "c0": lambda a: np.swapaxes(a, 0, 1)} if layout else {}
    want = session.run(None, {k: swap.get(k, lambda a: a)(v) for k, v in feeds.items()})
    if layout:       # Y (T, D, B, H) -> (B, T, D, H); Y_h, Y_c (D, B, H) -> (B, D, H)
        want = [want[0].transpose(2, 0, 1, 3)] + [np.swapaxes(w, 0, 1) for w in want[1:]]
    as_state = (lambda s: np.swapaxes(s, 0, 1)) if layout else (lambda s: s)
    state = (as_state(h0), as_state(c0)) if op == "LSTM" else as_state(h0)
    y, final = layer(x, state=state, lengths=lengths)
    final = final if isinstance(final, tuple) else (final,)
    a, b = y.shape[:2]
    y4 = y.reshape(a, b, D, 4) if layout else y.reshape(a, b, D, 4).transpose(0, 2, 1, 3)
    assert_allclose(y4, want[0], rtol=1e-5, atol=1e-6)
    for got, expected in zip(final, want[1:]):
        assert_allclose(as_state(got), expected, rtol=1e-5, atol=1e-6)


def test_a_final_state_only_graph_imports_and_its_head_makes_it_many_to_one():
    proto = _node_graph("GRU", "bidirectional", 0, lengths=False, initial=False)
    del proto.graph.output[0]              # Y_h only: an encoder
    proto.graph.node[0].output[0] = ""
    layer = rnnx.from_onnx(proto)
    x = np.random.default_rng(2).standard_normal((5, 3, 2)).astype(np.float32)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert_allclose(layer(x)[1], session.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)
    # a head on Y_h (B, D*H): many_to_one="state"
    model = rnnx.Sequential(rnnx.LSTM(2, 4, num_layers=2, bidirectional=True, seed=0),
                            rnnx.Dense(8, 3, seed=1), many_to_one="state")
    back = rnnx.from_onnx(rnnx.to_onnx(model))
    assert back.many_to_one == "state"
    assert_allclose(back(x)[0], model(x)[0], rtol=1e-6, atol=1e-7)


def test_a_non_zero_constant_initial_state_is_refused_by_name():
    proto = _node_graph("LSTM", "forward", 0, lengths=False, initial=False)
    proto.graph.initializer.append(onnx.numpy_helper.from_array(
        np.full((1, 3, 4), 0.5, np.float32), "h0"))
    proto.graph.node[0].input.extend(["", "h0"])
    with pytest.raises(ValueError, match=r"initial_h \('h0'\) is a non-zero constant.*state="):
        rnnx.from_onnx(proto)


# --------------------------------------------------------------- to_onnx(state=True)


@pytest.mark.parametrize("batch_first", [False, True])
def test_state_true_file_streams_in_onnxruntime_like_rnnx(batch_first, tmp_path):
    model = rnnx.Sequential(rnnx.LSTM(3, 5, num_layers=2, batch_first=batch_first, seed=0),
                            rnnx.GRU(5, 4, batch_first=batch_first, seed=1),
                            rnnx.RNN(4, 3, nonlinearity="relu", batch_first=batch_first, seed=2),
                            rnnx.Dense(3, 2, activation="tanh", seed=3))
    rnnx.to_onnx(model, tmp_path / "s.onnx", state=True)
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x", "h0_0", "c0_0", "h0_1", "h0_2"]
    assert [o.name for o in session.get_outputs()] == ["y", "h_n_0", "c_n_0", "h_n_1", "h_n_2"]
    B, T = 2, 9
    x = np.random.default_rng(0).standard_normal((T, B, 3)).astype(np.float32)
    stream = [s for layer in model.layers if layer.is_recurrent for s in
              (layer.zero_state(B) if isinstance(layer.zero_state(B), tuple)
               else (layer.zero_state(B),))]
    names = [i.name for i in session.get_inputs()][1:]
    steps = []
    for t in range(T):          # one step a call, each call's final states fed back
        x_t = x[t:t + 1].swapaxes(0, 1) if batch_first else x[t:t + 1]
        y_t, *stream = session.run(None, {"x": x_t, **dict(zip(names, stream))})
        steps.append(y_t.swapaxes(0, 1) if batch_first else y_t)
    rnnx_stream = model.stream(batch_size=B)      # rnnx's own stream, step by step
    assert_allclose(np.concatenate(steps), np.stack([rnnx_stream.step(x_t) for x_t in x]),
                    rtol=1e-5, atol=1e-6)
    whole = model(x.swapaxes(0, 1) if batch_first else x)
    y = whole[0].swapaxes(0, 1) if batch_first else whole[0]
    assert_allclose(np.concatenate(steps), y, rtol=1e-5, atol=1e-6)
    flat = [s for layer_state in whole[1] for s in
            (layer_state if isinstance(layer_state, tuple) else (layer_state,))]
    for got, want in zip(stream, flat):
        assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # chunks of 4 from a non-zero state, in rnnx and onnxruntime alike
    state = model(x[:4].swapaxes(0, 1) if batch_first else x[:4])[1]
    chunk = x[4:].swapaxes(0, 1) if batch_first else x[4:]
    feeds = dict(zip(names, [s for layer_state in state for s in
                             (layer_state if isinstance(layer_state, tuple) else (layer_state,))]))
    assert_allclose(session.run(["y"], {"x": chunk, **feeds})[0], model(chunk, state)[0],
                    rtol=1e-5, atol=1e-6)
    # and back: the state inputs become the imported model's state argument
    back = rnnx.from_onnx(tmp_path / "s.onnx")
    assert_allclose(back(chunk, state)[0], model(chunk, state)[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("batch_first", [False, True])
def test_state_true_with_an_embedding_first_streams_ids_in_onnxruntime_like_rnnx(batch_first):
    """The two to_onnx features together: int64 ids through the Gather, the states as inputs;
    onnxruntime one step a call equals rnnx's own stream, and the file imports back."""
    model = rnnx.Sequential(rnnx.Embedding(12, 4, seed=0),
                            rnnx.LSTM(4, 6, num_layers=2, batch_first=batch_first, seed=1),
                            rnnx.GRU(6, 5, batch_first=batch_first, seed=2),
                            rnnx.Dense(5, 3, activation="softmax", seed=3))
    proto = rnnx.to_onnx(model, state=True)
    assert proto.graph.node[0].op_type == "Gather"
    assert [i.name for i in proto.graph.input] == ["x", "h0_0", "c0_0", "h0_1"]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    B, T = 3, 7
    ids = np.random.default_rng(0).integers(0, 12, (T, B))
    stream = [*model.layers[1].zero_state(B), model.layers[2].zero_state(B)]
    steps = []
    for t in range(T):          # one step a call, each call's final states fed back
        x_t = (ids[t:t + 1].swapaxes(0, 1) if batch_first else ids[t:t + 1]).astype(np.int64)
        y_t, *stream = session.run(None, {"x": x_t, **dict(zip(["h0_0", "c0_0", "h0_1"],
                                                                stream))})
        steps.append(y_t.swapaxes(0, 1) if batch_first else y_t)
    rnnx_stream = model.stream(batch_size=B)
    assert_allclose(np.concatenate(steps), np.stack([rnnx_stream.step(t) for t in ids]),
                    rtol=1e-5, atol=1e-6)
    whole = model(ids.swapaxes(0, 1) if batch_first else ids)
    assert_allclose(np.concatenate(steps), whole[0].swapaxes(0, 1) if batch_first else whole[0],
                    rtol=1e-5, atol=1e-6)
    for got, want in zip(stream, [*whole[1][0], whole[1][1]]):
        assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # back: an Embedding first again, the state inputs its state argument
    back = rnnx.from_onnx(proto)
    assert back.takes_ids and back.config() == model.config()
    chunk = ids[4:].swapaxes(0, 1) if batch_first else ids[4:]
    state = model(ids[:4].swapaxes(0, 1) if batch_first else ids[:4])[1]
    assert_allclose(back(chunk, state)[0], model(chunk, state)[0], rtol=1e-6, atol=1e-7)


def test_state_true_single_layer_names_and_lengths_last():
    proto = rnnx.to_onnx(rnnx.GRU(2, 3, num_layers=2, bidirectional=True), state=True,
                         lengths=True)
    assert [i.name for i in proto.graph.input] == ["x", "h0", "lengths"]
    dims = [d.dim_value or d.dim_param for d in proto.graph.input[1].type.tensor_type.shape.dim]
    assert dims == [4, "B", 3]
    assert [o.name for o in proto.graph.output] == ["y", "h_n"]


def _zero_state_glue(kind, H=4):
    """Nodes making a zero initial_h (1, B, H) the way exporters do, B read from x's shape."""
    make, const = onnx.helper.make_node, onnx.helper.make_tensor
    i64 = onnx.TensorProto.INT64
    nodes = [make("Shape", ["x"], ["x_shape"]),
             make("Gather", ["x_shape", "one"], ["batch"], axis=0),
             make("Unsqueeze", ["batch", "zero_axis"], ["batch_1"])]
    consts = [onnx.numpy_helper.from_array(np.array(1, np.int64), "one"),
              onnx.numpy_helper.from_array(np.array([0], np.int64), "zero_axis"),
              onnx.numpy_helper.from_array(np.array([2], np.int64), "two"),
              onnx.numpy_helper.from_array(np.array([H], np.int64), "hidden"),
              onnx.numpy_helper.from_array(np.array([1], np.int64), "one_1"),
              onnx.numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    if kind == "ConstantOfShape+Slice":      # torch legacy with dynamic_axes: (2, B, H)[0:1]
        nodes += [make("Concat", ["two", "batch_1", "hidden"], ["shape"], axis=0),
                  make("ConstantOfShape", ["shape"], ["zeros"],
                       value=const("v", onnx.TensorProto.FLOAT, [1], [0.0])),
                  make("Slice", ["zeros", "zero_axis", "one_1", "zero_axis"], ["h0"])]
    elif kind == "Expand+Unsqueeze":         # zeros (B, H), then a direction axis
        nodes += [make("Concat", ["batch_1", "hidden"], ["shape"], axis=0),
                  make("Expand", ["zero", "shape"], ["zeros"]),
                  make("Unsqueeze", ["zeros", "zero_axis"], ["h0"])]
    else:                                    # dynamo: Mul of sizes, Expand, Reshape
        nodes += [make("Mul", ["batch_1", "hidden"], ["size"]),
                  make("Expand", ["zero", "size"], ["flat"]),
                  make("Concat", ["one_1", "batch_1", "hidden"], ["shape"], axis=0),
                  make("Reshape", ["flat", "shape"], ["h0"])]
    return nodes, consts


@pytest.mark.parametrize("kind", ["ConstantOfShape+Slice", "Expand+Unsqueeze", "Mul+Reshape"])
def test_zero_state_glue_imports_as_zeros(kind):
    proto = _node_graph("GRU", "forward", 0, lengths=False, initial=False)
    nodes, consts = _zero_state_glue(kind)
    graph = proto.graph
    recurrent = graph.node.pop()
    recurrent.input.extend(["", "h0"])
    graph.node.extend(nodes + [recurrent])
    graph.initializer.extend(consts)
    layer = rnnx.from_onnx(proto)
    x = np.random.default_rng(3).standard_normal((5, 3, 2)).astype(np.float32)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    y, h = session.run(None, {"x": x})
    got = layer(x)
    assert_allclose(got[0].reshape(5, 3, 1, 4).transpose(0, 2, 1, 3), y, rtol=1e-5, atol=1e-6)
    assert_allclose(got[1], h, rtol=1e-5, atol=1e-6)

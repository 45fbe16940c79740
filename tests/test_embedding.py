"""rnnx.Embedding: the lookup, its scatter-add backward, padding_idx, bad input, and its use
first in a Sequential (integer x) with the Trainer and save/load; against one-hot @ weight
(the product the lookup stands for), finite differences and PyTorch's nn.Embedding."""
import importlib
import os

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import rnnx
from rnnx.data import one_hot
from rnnx.embedding import scatter_add_rows
from shared import central_difference

DTYPES = (np.float32, np.float64)


def torch_or_skip():
    """PyTorch; in CI a missing peer fails the run instead of skipping the test."""
    if os.environ.get("CI"):
        return importlib.import_module("torch")
    return pytest.importorskip("torch")


def test_forward_is_the_one_hot_product_and_backward_its_transpose():
    rng = np.random.default_rng(0)
    emb = rnnx.Embedding(7, 5, dtype=np.float64, seed=1)
    ids = rng.integers(0, 7, (4, 3, 2))
    ids[0, 0, :] = 3                                  # repeated ids sum their rows
    y, state, cache = emb.forward(ids)
    assert state is None and y.shape == (4, 3, 2, 5) and y.dtype == np.float64
    hot = one_hot(ids, 7, np.float64)
    assert_allclose(y, hot @ emb.parameters()["weight"], rtol=0, atol=1e-15)
    assert_array_equal(emb(ids), y)
    dy = rng.standard_normal(y.shape)
    dx, dstate, grads = emb.backward(cache, dy)
    assert dx is None and dstate is None and list(grads) == ["weight"]
    expected = hot.reshape(-1, 7).T @ dy.reshape(-1, 5)
    assert_allclose(grads["weight"], expected, rtol=1e-13, atol=1e-13)
    unused = np.setdiff1d(np.arange(7), ids)
    assert np.all(grads["weight"][unused] == 0)


def test_scatter_add_equals_np_add_at():
    rng = np.random.default_rng(1)
    for n, V in ((0, 3), (1, 1), (50, 4), (1000, 37)):
        ids = rng.integers(0, V, n)
        rows = rng.standard_normal((n, 6))
        expected = np.zeros((V, 6))
        np.add.at(expected, ids, rows)
        assert_allclose(scatter_add_rows(ids, rows, V), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("padding_idx, row", [(2, 2), (-1, 5), (0, 0), (-6, 0)])
def test_padding_row_is_zero_and_gets_no_gradient(padding_idx, row):
    emb = rnnx.Embedding(6, 3, padding_idx=padding_idx, seed=0)
    assert emb.padding_idx == row and emb.config()["padding_idx"] == row
    weight = emb.parameters()["weight"]
    assert np.all(weight[row] == 0) and np.all(np.abs(weight).sum(axis=1)[np.arange(6) != row] > 0)
    ids = np.array([[row, 1, row], [4, row, 1]])
    y, _, cache = emb.forward(ids)
    assert np.all(y[ids == row] == 0)
    _, _, grads = emb.backward(cache, np.ones(y.shape, np.float32))
    assert np.all(grads["weight"][row] == 0)
    assert_array_equal(grads["weight"][1], np.full(3, 2, np.float32))


def test_initialisation_is_standard_normal_and_seeded():
    weight = rnnx.Embedding(4000, 50, seed=3).parameters()["weight"]
    assert abs(weight.mean()) < 0.01 and abs(weight.std() - 1) < 0.01
    assert_array_equal(weight, rnnx.Embedding(4000, 50, seed=3).parameters()["weight"])
    assert not np.array_equal(weight, rnnx.Embedding(4000, 50, seed=4).parameters()["weight"])


def test_bad_arguments_name_what_was_expected():
    emb = rnnx.Embedding(5, 2)
    with pytest.raises(TypeError, match=r"x must be an integer array of ids in \[0, 5\).*float"):
        emb(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="integer array.*bool"):
        emb(np.array([True]))
    with pytest.raises(ValueError, match=r"ids in \[0, 5\).*got min 0, max 5"):
        emb(np.array([0, 5]))
    with pytest.raises(ValueError, match=r"got min -1"):
        emb([-1, 2])
    with pytest.raises(ValueError, match="x must be an integer array of ids, got .*inhomogeneous"):
        emb([[1], [1, 2]])
    with pytest.raises(ValueError, match="state must be None"):
        emb.forward([1], state=np.zeros(2))
    with pytest.raises(ValueError, match=r"padding_idx must lie in \[-5, 5\).*got 5"):
        rnnx.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match=r"got -6"):
        rnnx.Embedding(5, 2, padding_idx=-6)
    with pytest.raises(TypeError, match="padding_idx must be None or an int"):
        rnnx.Embedding(5, 2, padding_idx=1.0)
    with pytest.raises(ValueError, match="num_embeddings must be >= 1"):
        rnnx.Embedding(0, 2)
    with pytest.raises(TypeError, match="embedding_dim must be an int"):
        rnnx.Embedding(3, 2.0)
    y, _, cache = emb.forward([[1, 2]])
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(1, 2, 2\)"):
        emb.backward(cache, np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="dy has dtype float64 but this Embedding is float32"):
        emb.backward(cache, np.zeros((1, 2, 2)))
    emb.load_state_dict(emb.state_dict())
    with pytest.raises(ValueError, match="stale cache"):
        emb.backward(cache, np.zeros((1, 2, 2), np.float32))


def test_inputs_are_not_modified_and_the_cache_keeps_the_ids():
    emb = rnnx.Embedding(5, 2, dtype=np.float64, seed=0)
    ids = np.array([[1, 2], [2, 4]])
    kept = ids.copy()
    y, _, cache = emb.forward(ids)
    ids[:] = 0                                  # changed after the forward: backward unaffected
    emb.parameters()["weight"][:] += 1          # so is the table (the backward never reads it)
    dy = np.ones_like(y)
    kept_dy = dy.copy()
    _, _, grads = emb.backward(cache, dy)
    assert_array_equal(dy, kept_dy)
    assert_array_equal(grads["weight"], one_hot(kept, 5).reshape(-1, 5).T @ dy.reshape(-1, 2))


def test_state_dict_config_and_save_load(tmp_path):
    emb = rnnx.Embedding(6, 3, padding_idx=-2, dtype=np.float64, seed=0)
    clone = rnnx.Embedding(**emb.config())
    assert clone.padding_idx == 4 and clone.dtype == np.float64
    clone.load_state_dict(emb.state_dict())
    assert_array_equal(clone([0, 5]), emb([0, 5]))
    with pytest.raises(ValueError, match=r"must have shape \(6, 3\)"):
        clone.load_state_dict({"weight": np.zeros((6, 4))})
    assert repr(emb) == ("Embedding(num_embeddings=6, embedding_dim=3, padding_idx=4, "
                         "dtype='float64')")
    model = rnnx.Sequential(emb, rnnx.GRU(3, 4, dtype=np.float64, seed=1),
                            rnnx.Dense(4, 6, dtype=np.float64, seed=2))
    ids = np.array([[0, 1], [5, 4], [2, 2]])
    for path in (tmp_path / "m.npz", tmp_path / "e.npz"):
        target = model if path.name == "m.npz" else emb
        rnnx.save(target, path)
        loaded = rnnx.load(path)
        assert_array_equal(loaded(ids)[0] if path.name == "m.npz" else loaded(ids),
                           model(ids)[0] if path.name == "m.npz" else emb(ids))
    other = rnnx.Sequential(rnnx.Embedding(6, 3, padding_idx=4, dtype=np.float64),
                            rnnx.GRU(3, 4, dtype=np.float64), rnnx.Dense(4, 6, dtype=np.float64))
    rnnx.load(tmp_path / "m.npz", into=other)
    assert_array_equal(other(ids)[0], model(ids)[0])


def test_sequential_takes_ids_in_every_layout():
    rng = np.random.default_rng(0)
    for batch_first in (False, True):
        model = rnnx.Sequential(rnnx.Embedding(9, 4, seed=0),
                                rnnx.LSTM(4, 5, batch_first=batch_first, seed=1),
                                rnnx.Dense(5, 9, seed=2))
        assert model.takes_ids and model.input_size == 9
        ids = rng.integers(0, 9, (6, 3))                  # (T, B), or (B, T) batch_first
        y, state = model(ids)
        assert y.shape == (6, 3, 9)
        emb = model[0](ids)
        y_float, state_float = rnnx.Sequential(*model.layers[1:])(emb)
        assert_array_equal(y, y_float)
        row = ids[:, 1] if not batch_first else ids[1]    # unbatched: (T,)
        y_row, _ = model(row)
        assert_allclose(y_row, y[:, 1] if not batch_first else y[1], rtol=1e-6, atol=1e-6)
    many = rnnx.Sequential(rnnx.Embedding(9, 4, seed=0), rnnx.GRU(4, 5, seed=1),
                           rnnx.Dense(5, 2, seed=2), many_to_one=True)
    lengths = np.array([6, 2, 0])
    y, _ = many(rng.integers(0, 9, (6, 3)), lengths=lengths)
    assert y.shape == (3, 2)
    dense_only = rnnx.Sequential(rnnx.Embedding(9, 4, seed=0), rnnx.Dense(4, 2, seed=1))
    assert dense_only(np.array([[1, 2, 3]]))[0].shape == (1, 3, 2)
    with pytest.raises(ValueError, match="must be the first layer, got one at layers"):
        rnnx.Sequential(rnnx.Dense(4, 4), rnnx.Embedding(4, 4))
    with pytest.raises(TypeError, match="x must be an integer array of ids"):
        model(rng.standard_normal((6, 3, 9)).astype(np.float32))


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_sequential_gradient_equals_finite_differences(cell):
    """float64 central differences of the whole model's loss, the embedding's rows included
    (repeated ids, a padding row, lengths and a carried state)."""
    rng = np.random.default_rng(2)
    model = rnnx.Sequential(rnnx.Embedding(6, 3, padding_idx=0, dtype=np.float64, seed=0),
                            getattr(rnnx, cell)(3, 4, num_layers=2, dtype=np.float64, seed=1),
                            rnnx.Dense(4, 2, dtype=np.float64, seed=2))
    ids = np.array([[1, 2, 0], [1, 5, 0], [3, 3, 1], [4, 1, 0]])      # (T=4, B=3)
    lengths = np.array([4, 3, 2])
    dy = rng.standard_normal((4, 3, 2))

    def loss():
        return float(np.sum(model(ids, lengths=lengths)[0] * dy))

    y, _, cache = model.forward(ids, lengths=lengths)
    dx, _, grads = model.backward(cache, dy)
    assert dx is None
    for name, param in model.parameters().items():
        expected = central_difference(loss, param)
        if name == "0.weight":          # the padding row: by definition no gradient (PyTorch's)
            assert np.all(grads[name][0] == 0) and np.abs(expected[0]).max() > 1e-3
            expected[0] = 0
        assert_allclose(grads[name], expected, rtol=1e-7, atol=1e-8, err_msg=name)


def test_trainer_fits_ids_with_truncation_batches_and_checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, (40, 6))
    targets = (ids + 1) % 5                                # next id: learnable from x alone
    model = rnnx.Sequential(rnnx.Embedding(5, 8, seed=0), rnnx.GRU(8, 16, seed=1),
                            rnnx.Dense(16, 5, seed=2))
    trainer = rnnx.Trainer(model, rnnx.SoftmaxCrossEntropy(), rnnx.Adam(model.parameters(), lr=0.05),
                           bptt=10, seed=0)
    before = trainer.evaluate(ids, targets)
    history = trainer.fit(ids, targets, epochs=15, batch_size=3)
    assert history["loss"][-1] < 0.2 * before
    trainer.save_checkpoint(tmp_path / "ckpt.npz")
    resumed = rnnx.Trainer.from_checkpoint(tmp_path / "ckpt.npz")
    assert resumed.fit(ids, targets, epochs=2, batch_size=3)["loss"] == \
        trainer.fit(ids, targets, epochs=2, batch_size=3)["loss"]
    with pytest.raises(ValueError, match=r"x must be \(T, N\) integer ids, got shape"):
        trainer.fit(ids[..., None], targets)
    with pytest.raises(ValueError, match=r"ids in \[0, 5\)"):
        trainer.fit(ids + 1, targets)
    with pytest.raises(TypeError, match="integer array of ids"):
        trainer.fit(ids.astype(np.float32), targets)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_equals_torch_embedding_then_recurrent_then_linear(dtype, cell):
    torch = torch_or_skip()
    nn = torch.nn
    torch.manual_seed(0)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    V, E, H, O = 11, 6, 8, 4
    t_emb = nn.Embedding(V, E, padding_idx=1).to(tdtype)
    t_rnn = getattr(nn, cell)(E, H, num_layers=2).to(tdtype)
    t_lin = nn.Linear(H, O).to(tdtype)
    model = rnnx.Sequential(rnnx.Embedding(V, E, padding_idx=1, dtype=dtype),
                            getattr(rnnx, cell)(E, H, num_layers=2, dtype=dtype),
                            rnnx.Dense(H, O, dtype=dtype))
    for index, module in enumerate((t_emb, t_rnn, t_lin)):
        model[index].load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, (9, 5))
    ids[:3, 0] = 1                                         # padding and repeated ids
    dy = rng.standard_normal((9, 5, O)).astype(dtype)
    t_out = t_lin(t_rnn(t_emb(torch.from_numpy(ids)))[0])
    (t_out * torch.from_numpy(dy)).sum().backward()
    y, _, cache = model.forward(ids)
    _, _, grads = model.backward(cache, dy)
    tol = 1e-5 if dtype == np.float32 else 1e-9
    assert_allclose(y, t_out.detach().numpy(), rtol=tol, atol=tol)
    for index, module in enumerate((t_emb, t_rnn, t_lin)):
        for name, param in module.named_parameters():
            scale = max(1.0, float(param.grad.abs().max()))
            assert_allclose(grads[f"{index}.{name}"], param.grad.numpy(), rtol=tol,
                            atol=tol * scale, err_msg=f"{index}.{name}")
    assert np.all(grads["0.weight"][1] == 0)


def test_rnnx_file_is_version_2_with_the_embedding_descriptor(tmp_path):
    import struct
    import zlib

    from rnnx import rnnx_format
    model = rnnx.Sequential(rnnx.Embedding(9, 4, padding_idx=-1, seed=0), rnnx.LSTM(4, 5, seed=1),
                            rnnx.Dense(5, 9, activation="softmax", seed=2))
    image = rnnx_format.dumps(model)
    assert struct.unpack_from("<I", image, 8)[0] == 2                        # the version
    assert struct.unpack_from("<II", image, 32) == (9, 9)                    # ids in [0, 9)
    assert struct.unpack_from("<8I", image, 64) == (17, 9, 4, 1, 1, 0, 0, 9)  # padding_idx 8 + 1
    table = model[0].parameters()["weight"]
    np.testing.assert_array_equal(np.frombuffer(image, "<f4", table.size, 192), table.ravel())
    rnnx.save(model, tmp_path / "m.rnnx")
    loaded = rnnx.load(tmp_path / "m.rnnx")
    assert loaded.config() == model.config()
    ids = np.random.default_rng(0).integers(0, 9, (6, 2))
    assert_array_equal(loaded(ids)[0], model(ids)[0])
    bare = rnnx.Embedding(3, 2, dtype=np.float64, seed=0)
    assert rnnx_format.loads(rnnx_format.dumps(bare)).config() == bare.config()
    assert struct.unpack_from("<I", rnnx_format.dumps(rnnx.GRU(2, 2)), 8)[0] == 1  # no Embedding

    def resealed(edit):
        bad = bytearray(image)
        edit(bad)
        bad[-4:] = struct.pack("<I", zlib.crc32(bytes(bad[:-4])))
        return bytes(bad)
    with pytest.raises(ValueError, match="Embedding layer 0 has fields .* in a version 1 file"):
        rnnx_format.loads(resealed(lambda b: b.__setitem__(slice(8, 12), struct.pack("<I", 1))))
    with pytest.raises(ValueError, match="Embedding layer 0 has fields"):       # padding > V
        rnnx_format.loads(resealed(lambda b: b.__setitem__(slice(92, 96), struct.pack("<I", 10))))
    second = rnnx_format.dumps(rnnx.Sequential(rnnx.Dense(3, 3, seed=0), rnnx.Dense(3, 3, seed=1)))
    bad = bytearray(second)
    bad[8:12] = struct.pack("<I", 2)
    bad[96:128] = struct.pack("<8I", 17, 3, 3, 1, 1, 0, 0, 0)     # an Embedding as layer 1
    bad[-4:] = struct.pack("<I", zlib.crc32(bytes(bad[:-4])))
    with pytest.raises(ValueError, match="Embedding layer 1"):
        rnnx_format.loads(bytes(bad))


def test_from_torch_converts_nn_embedding_in_every_container():
    torch = torch_or_skip()
    nn = torch.nn
    torch.manual_seed(1)
    modules = [nn.Embedding(12, 5, padding_idx=-2), nn.LSTM(5, 7, num_layers=2), nn.Linear(7, 3)]
    ids = np.random.default_rng(1).integers(0, 12, (8, 4))
    with torch.no_grad():
        want = modules[2](modules[1](modules[0](torch.from_numpy(ids)))[0]).numpy()
    for container in (modules, nn.Sequential(*modules), nn.ModuleList(modules)):
        model = rnnx.from_torch(container)
        assert model.takes_ids and model[0].padding_idx == 10
        assert_allclose(model(ids)[0], want, rtol=1e-5, atol=1e-6)
    alone = rnnx.from_torch(nn.Embedding(4, 2).double())
    assert isinstance(alone, rnnx.Embedding) and alone.dtype == np.float64
    with pytest.raises(ValueError, match="max_norm=1.0 renormalises"):
        rnnx.from_torch(nn.Embedding(4, 2, max_norm=1.0))
    with pytest.warns(UserWarning, match="scale_grad_by_freq=True is not carried over"):
        rnnx.from_torch(nn.Embedding(4, 2, scale_grad_by_freq=True))
    with pytest.raises(ValueError, match="must be the first layer"):
        rnnx.from_torch([nn.Linear(3, 4), nn.Embedding(4, 4)])


@pytest.mark.parametrize("batch_first", [False, True])
def test_to_onnx_gather_runs_in_onnxruntime_and_imports_back(batch_first):
    ort = pytest.importorskip("onnxruntime") if not os.environ.get("CI") else \
        importlib.import_module("onnxruntime")
    model = rnnx.Sequential(rnnx.Embedding(10, 4, seed=0),
                            rnnx.GRU(4, 8, num_layers=2, batch_first=batch_first, seed=1),
                            rnnx.Dense(8, 3, activation="softmax", seed=2))
    proto = rnnx.to_onnx(model)
    assert proto.graph.node[0].op_type == "Gather"
    assert proto.graph.input[0].type.tensor_type.elem_type == 7          # int64
    ids = np.random.default_rng(0).integers(0, 10, (5, 3))
    session = ort.InferenceSession(proto.SerializeToString())
    y = session.run(["y"], {"x": ids.astype(np.int64)})[0]
    assert_allclose(y, model(ids)[0], rtol=1e-5, atol=1e-6)
    back = rnnx.from_onnx(proto)
    assert back.takes_ids and back.config() == {**model.config()}
    assert_array_equal(back(ids)[0], model(ids)[0])
    with pytest.raises(ValueError, match="to_keras does not convert an rnnx.Embedding"):
        rnnx.to_keras(model)


def test_from_onnx_reads_torch_export_of_nn_embedding(tmp_path):
    torch = torch_or_skip()
    onnx = pytest.importorskip("onnx") if not os.environ.get("CI") else importlib.import_module("onnx")
    nn = torch.nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4, padding_idx=0)
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            return self.head(self.lstm(self.embed(x))[0])

    torch.manual_seed(0)
    tagger = Tagger()
    torch.onnx.export(tagger, (torch.zeros(2, 5, dtype=torch.long),), str(tmp_path / "t.onnx"),
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "B", 1: "T"}})
    model = rnnx.from_onnx(str(tmp_path / "t.onnx"))
    assert model.takes_ids and model.batch_first
    ids = np.random.default_rng(0).integers(0, 10, (3, 7))
    with torch.no_grad():
        want = tagger(torch.from_numpy(ids)).numpy()
    assert_allclose(model(ids)[0], want, rtol=1e-5, atol=1e-6)
    proto = onnx.load(str(tmp_path / "t.onnx"))
    gather = next(n for n in proto.graph.node if n.op_type == "Gather")
    gather.attribute.append(onnx.helper.make_attribute("axis", 1))
    del gather.attribute[0:len(gather.attribute) - 1]
    with pytest.raises(ValueError, match="must look up rows \\(axis 0\\)"):
        rnnx.from_onnx(proto)


@pytest.mark.parametrize("many_to_one", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_dask_predict_scores_ids_chunk_by_chunk(batch_first, many_to_one):
    da = pytest.importorskip("dask.array") if not os.environ.get("CI") else \
        importlib.import_module("dask.array")
    import dask

    import rnnx.dask
    rng = np.random.default_rng(0)
    model = rnnx.Sequential(rnnx.Embedding(9, 4, seed=0),
                            rnnx.LSTM(4, 5, batch_first=batch_first, seed=1),
                            rnnx.Dense(5, 3, seed=2), many_to_one=many_to_one)
    ids = rng.integers(0, 9, (10, 7) if batch_first else (7, 10))     # N = 10, T = 7
    lengths = rng.integers(0, 8, 10)
    chunks = (4, 7) if batch_first else (7, 4)
    with dask.config.set(scheduler="synchronous"):
        y = rnnx.dask.predict(model, da.from_array(ids, chunks=chunks), lengths=lengths).compute()
    assert_allclose(y, model.predict(ids, lengths=lengths), rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match="x must be an integer array of ids"):
        rnnx.dask.predict(model, da.from_array(ids.astype(np.float32), chunks=chunks))
    with pytest.raises(ValueError, match="integer ids for a model that begins with an Embedding"):
        rnnx.dask.predict(model, da.from_array(ids[..., None], chunks=chunks + (1,)))

"""save/load: exact round trips, identical predictions, no pickle, clear errors, and a
failed load that leaves the model untouched."""
import json
import zipfile

import numpy as np
import pytest

from rnnx.dense import Dense
from rnnx.io import load, save
from rnnx.layers import GRU, LSTM, RNN
from rnnx.model import Sequential

MODELS = {
    "lstm-stack": lambda: Sequential(LSTM(2, 5, num_layers=2, seed=0), Dense(5, 3, activation="softmax", seed=1)),
    "gru-bidir-many-to-one-f64": lambda: Sequential(
        GRU(2, 4, bidirectional=True, reset_after=False, dtype=np.float64, seed=0),
        Dense(8, 1, activation="sigmoid", dtype=np.float64, seed=1), many_to_one=True),
    "rnn-relu-batch-first-nobias": lambda: Sequential(
        RNN(2, 3, nonlinearity="relu", bias=False, batch_first=True, seed=0), Dense(3, 2, bias=False, seed=1)),
    "mlp": lambda: Sequential(Dense(2, 4, activation="tanh", seed=0), Dense(4, 1, seed=1)),
    "bare-layer": lambda: LSTM(2, 3, seed=0),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_is_exact_and_predicts_identically(name, tmp_path):
    model = MODELS[name]()
    path = tmp_path / "model.npz"
    save(model, path)
    loaded = load(path)
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()
    original = model.state_dict()
    for key, value in loaded.state_dict().items():
        assert value.dtype == original[key].dtype
        np.testing.assert_array_equal(value, original[key])
    x = np.random.default_rng(0).normal(size=(6, 3, 2)).astype(model.dtype)
    np.testing.assert_array_equal(loaded(x)[0], model(x)[0])
    with np.load(path, allow_pickle=False) as data:          # plain npz, no pickled object
        assert all(data[key].dtype != object for key in data.files)
        header = json.loads(str(data["__rnnx__"]))
    assert header["format"] == "rnnx" and header["version"] == 1


def test_load_into_existing_model(tmp_path):
    source, target = MODELS["lstm-stack"](), MODELS["lstm-stack"]()
    target.parameters()["1.bias"][...] = 5.0
    save(source, tmp_path / "m.npz")
    assert load(tmp_path / "m.npz", into=target) is target
    np.testing.assert_array_equal(target.state_dict()["1.bias"], source.state_dict()["1.bias"])


def unchanged_after(model, fn):
    before = model.state_dict()
    fn()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_mismatched_architecture_is_refused_and_model_unchanged(tmp_path):
    save(Sequential(LSTM(2, 5, num_layers=2, seed=3), Dense(5, 2, seed=4)), tmp_path / "other.npz")
    model = MODELS["lstm-stack"]()

    def attempt():
        with pytest.raises(ValueError, match="different architecture"):
            load(tmp_path / "other.npz", into=model)
    unchanged_after(model, attempt)


def test_tampered_weights_are_refused_and_model_unchanged(tmp_path):
    model = MODELS["lstm-stack"]()
    path = tmp_path / "m.npz"
    save(model, path)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["param/0.weight_hh_l1"] = arrays["param/0.weight_hh_l1"][:, :-1]
    np.savez(tmp_path / "bad.npz", **arrays)
    other = MODELS["lstm-stack"]()
    other.parameters()["0.weight_hh_l1"][...] = 1.0

    def attempt():
        with pytest.raises(ValueError, match=r"weights do not match.*0\.weight_hh_l1.*\(20, 5\)"):
            load(tmp_path / "bad.npz", into=other)
    unchanged_after(other, attempt)
    del arrays["param/0.weight_hh_l1"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match="missing"):
        load(tmp_path / "missing.npz")


def test_corrupt_files_give_clear_errors(tmp_path):
    model = MODELS["mlp"]()
    path = tmp_path / "m.npz"
    save(model, path)
    raw = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"this is not a model file at all" * 10)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    np.save(tmp_path / "single.npy", np.zeros(3))
    np.savez(tmp_path / "pickled.npz", __rnnx__=np.array([{"a": 1}], dtype=object))
    np.savez(tmp_path / "badjson.npz", __rnnx__=np.array("{not json"))
    np.savez(tmp_path / "badtype.npz", __rnnx__=np.array(json.dumps(
        {"format": "rnnx", "version": 1, "architecture": {"type": "Transformer", "config": {}}})))
    np.savez(tmp_path / "future.npz", __rnnx__=np.array(json.dumps(
        {"format": "rnnx", "version": 99, "architecture": {}})))
    cases = {"truncated.npz": "not a readable rnnx model file",
             "garbage.npz": "not a readable rnnx model file",
             "plain.npz": "no '__rnnx__' entry",
             "single.npy": "single array",
             "pickled.npz": "not a readable rnnx model file",
             "badjson.npz": "not valid JSON",
             "badtype.npz": "layer type must be one of",
             "future.npz": "version 99 is not supported"}
    for name, message in cases.items():
        def attempt():
            with pytest.raises(ValueError, match=message):
                load(tmp_path / name, into=model)
        unchanged_after(model, attempt)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")
    assert zipfile.is_zipfile(path)

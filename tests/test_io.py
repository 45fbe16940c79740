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


def test_save_is_atomic_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    import errno
    import os

    import rnnx.io
    path = tmp_path / "m.npz"
    save(MODELS["mlp"](), path)
    good = path.read_bytes()

    def half_then_fail(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt                               # Ctrl-C mid-save

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    other = MODELS["lstm-stack"]()
    with monkeypatch.context() as m:
        m.setattr(rnnx.io.np, "savez", half_then_fail)
        with pytest.raises(KeyboardInterrupt):
            save(other, path)
    with monkeypatch.context() as m:
        m.setattr(rnnx.io.os, "fsync", disk_full)
        with pytest.raises(OSError, match="No space left"):
            save(other, path)
    assert path.read_bytes() == good                           # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]           # and no temporary file is left
    assert load(path).config() == MODELS["mlp"]().config()
    save(other, path)                                          # a good save replaces it
    assert load(path).config() == other.config()
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def _rewrite_member(path, out, member, transform):
    """Copy the npz at path to out with the raw (stored, uncompressed) bytes of one member
    replaced by transform(bytes)."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == member:
                data = transform(data)
            dst.writestr(info.filename, data)


def _set_compression_method(path, member, method):
    """Patch the compression method of one member in the local and central headers."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo(member).header_offset
    raw[offset + 8:offset + 10] = method.to_bytes(2, "little")
    central = raw.find(b"PK\x01\x02")
    while central >= 0:
        name_length = int.from_bytes(raw[central + 28:central + 30], "little")
        if raw[central + 46:central + 46 + name_length] == member.encode():
            raw[central + 10:central + 12] = method.to_bytes(2, "little")
        central = raw.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(raw))


def test_corrupt_members_name_the_file_and_member(tmp_path):
    model = MODELS["lstm-stack"]()
    path = tmp_path / "m.npz"
    save(model, path)
    member = "param/0.weight_ih_l0.npy"
    # a member whose header declares far more data than is stored: refused before allocating
    _rewrite_member(path, tmp_path / "huge.npz", member, lambda data: data.replace(
        b"(20, 2)", b"(4000000000000, 2)"))
    # a deflated member with its compressed bytes damaged (zlib.error)
    np.savez_compressed(tmp_path / "zipped.npz", **{k: v for k, v in np.load(path).items()})
    raw = bytearray((tmp_path / "zipped.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "zipped.npz") as zf:
        info = zf.getinfo(member)
        offset = info.header_offset
    name_length, extra_length = (int.from_bytes(raw[offset + i:offset + i + 2], "little")
                                 for i in (26, 28))
    start = offset + 30 + name_length + extra_length
    raw[start:start + info.compress_size] = b"\xff" * info.compress_size
    (tmp_path / "zlib.npz").write_bytes(bytes(raw))
    # a compression method Python cannot read (NotImplementedError)
    (tmp_path / "method.npz").write_bytes(path.read_bytes())
    _set_compression_method(tmp_path / "method.npz", member, 99)
    # an object (pickled) parameter array
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["param/0.weight_ih_l0"] = np.array([None] * 3, dtype=object)
    np.savez(tmp_path / "object.npz", **arrays)
    cases = {"huge.npz": "4000000000000, 2.*bytes are stored",
             "zlib.npz": "error",
             "method.npz": "NotImplementedError",
             "object.npz": "pickle"}
    for name, message in cases.items():
        def attempt():
            with pytest.raises(ValueError, match=rf"{name}' is not a readable rnnx model file: "
                                                 rf"member 'param/0\.weight_ih_l0' is corrupt.*{message}"):
                load(tmp_path / name, into=model)
        unchanged_after(model, attempt)


def test_declared_sizes_are_checked_before_the_model_is_built(tmp_path, monkeypatch):
    import rnnx.io
    path = tmp_path / "m.npz"
    save(MODELS["lstm-stack"](), path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["__rnnx__"]))
    header["architecture"]["config"]["layers"][0]["config"]["hidden_size"] = 10 ** 7
    arrays["__rnnx__"] = np.array(json.dumps(header))
    np.savez(tmp_path / "big.npz", **arrays)
    built = []
    monkeypatch.setattr(rnnx.io, "_build", lambda spec: built.append(spec))
    with pytest.raises(ValueError, match=r"'0\.weight_ih_l0' must have shape \(40000000, 2\) "
                                         r"for the declared sizes, the file stores \(20, 2\)"):
        load(tmp_path / "big.npz")
    assert built == []                                 # never built (nor allocated)
    header["architecture"]["config"]["layers"][0]["config"]["num_layers"] = -1
    arrays["__rnnx__"] = np.array(json.dumps(header))
    np.savez(tmp_path / "negative.npz", **arrays)
    with pytest.raises(ValueError, match=r"config\['num_layers'\] of the LSTM layer must be an "
                                         r"int >= 1, got -1"):
        load(tmp_path / "negative.npz")
    assert built == []


def test_formats_dispatch_on_the_extension(tmp_path, monkeypatch):
    import rnnx.io
    calls = []
    monkeypatch.setitem(rnnx.io.FORMATS, ".fake", (lambda model, path: calls.append(("save", path)),
                                                   lambda path, into: calls.append(("load", path))))
    save(MODELS["mlp"](), tmp_path / "m.FAKE")
    load(tmp_path / "m.fake")
    assert calls == [("save", str(tmp_path / "m.FAKE")), ("load", str(tmp_path / "m.fake"))]
    save(MODELS["mlp"](), tmp_path / "m.weights")                # unknown: the npz layout
    assert zipfile.is_zipfile(tmp_path / "m.weights")


@pytest.mark.parametrize("compressed", [False, True])
def test_randomly_damaged_files_load_or_raise_value_error(tmp_path, compressed):
    """Fuzz: flip random bytes or truncate a saved model (stored and deflated members): every
    load either gives a model of the saved architecture or raises ValueError, never anything
    else, and never changes the model given as into."""
    model = MODELS["lstm-stack"]()
    path = tmp_path / "m.npz"
    save(model, path)
    if compressed:
        with np.load(path) as data:
            np.savez_compressed(path, **{k: data[k] for k in data.files})
    raw = path.read_bytes()
    rng = np.random.default_rng(1 + compressed)
    target = MODELS["lstm-stack"]()
    before = {k: v.copy() for k, v in target.state_dict().items()}
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(150):
        damaged = bytearray(raw)
        if trial % 5 == 0:
            damaged = damaged[:int(rng.integers(0, len(raw)))]
        else:
            for position in rng.integers(0, len(raw), size=int(rng.integers(1, 9))):
                damaged[position] = int(rng.integers(0, 256))
        (tmp_path / "d.npz").write_bytes(bytes(damaged))
        try:
            loaded = load(tmp_path / "d.npz")
        except ValueError:
            outcomes["refused"] += 1
            with pytest.raises(ValueError):
                load(tmp_path / "d.npz", into=target)
            for key, value in target.state_dict().items():
                np.testing.assert_array_equal(value, before[key])
            continue
        assert loaded.config() == model.config()
        outcomes["loaded"] += 1
    assert outcomes["refused"] > 50                      # the damage was mostly detected

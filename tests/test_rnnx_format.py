"""The .rnnx model file (rnnx/rnnx_format.py) and export to C source: round trips for every
layer kind, exact weights in the C source, and a clear ValueError (naming the file and the
problem) for every truncation, every altered byte, a wrong version and a foreign file."""
import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import rnnx
from rnnx import rnnx_format

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def models():
    f64 = np.float64
    return {
        "lstm": rnnx.LSTM(3, 5, num_layers=2, seed=1),
        "gru_bi_f64": rnnx.GRU(2, 4, bidirectional=True, dtype=f64, seed=2),
        "gru_before_nobias": rnnx.GRU(2, 3, reset_after=False, bias=False, seed=3),
        "rnn_relu": rnnx.RNN(2, 3, nonlinearity="relu", num_layers=3, seed=4),
        "dense": rnnx.Dense(3, 2, activation="sigmoid", seed=5),
        "seq_m2o": rnnx.Sequential(rnnx.GRU(3, 4, num_layers=2, bidirectional=True, seed=6),
                                   rnnx.Dense(8, 5, activation="relu", seed=7),
                                   rnnx.Dense(5, 3, activation="softmax", seed=8),
                                   many_to_one=True),
        "seq_dense_first_f64": rnnx.Sequential(rnnx.Dense(3, 4, activation="tanh", dtype=f64, seed=9),
                                               rnnx.LSTM(4, 2, dtype=f64, bias=False, seed=10),
                                               rnnx.Dense(2, 1, dtype=f64, seed=11)),
    }


@pytest.mark.parametrize("name", list(models()))
def test_round_trip_gives_the_same_model(tmp_path, name):
    model = models()[name]
    path = tmp_path / "m.rnnx"
    rnnx.save(model, path)
    loaded = rnnx.load(str(path))
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()
    want, got = model.state_dict(), loaded.state_dict()
    assert list(want) == list(got)
    for key in want:
        assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), key
    I = model.input_size if hasattr(model, "input_size") else model.in_features
    x = np.random.default_rng(0).standard_normal((6, 2, I)).astype(model.dtype)
    lengths = [6, 3] if isinstance(model, rnnx.Sequential) else None
    kwargs = {"lengths": lengths} if lengths else {}
    np.testing.assert_array_equal(np.asarray(loaded(x, **kwargs)[0]),
                                  np.asarray(model(x, **kwargs)[0]))
    # the same bytes again: the writer is deterministic
    assert rnnx_format.dumps(loaded) == path.read_bytes()


def test_load_into_an_existing_model_and_npz_still_works(tmp_path):
    model = models()["lstm"]
    rnnx.save(model, tmp_path / "m.rnnx")
    other = rnnx.LSTM(3, 5, num_layers=2, seed=99)
    assert rnnx.load(tmp_path / "m.rnnx", into=other) is other
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[key], value)
    wrong = rnnx.LSTM(3, 6, num_layers=2, seed=99)
    before = wrong.state_dict()
    with pytest.raises(ValueError, match="m.rnnx"):
        rnnx.load(tmp_path / "m.rnnx", into=wrong)
    for key, value in before.items():
        np.testing.assert_array_equal(wrong.state_dict()[key], value)
    rnnx.save(model, tmp_path / "m.npz")
    assert rnnx.load(tmp_path / "m.npz").config() == model.config()


def test_header_fields_are_as_documented(tmp_path):
    model = models()["seq_m2o"]
    image = rnnx_format.dumps(model)
    magic, version, dtype, count, flags, size, i, o, data = struct.unpack_from("<8sIIIIQIII", image)
    assert (magic, version, dtype, count, flags, size, i, o, data) == \
        (b"RNNX\r\n\x1a\n", 1, 0, 3, 1, len(image), 3, 3, 192)
    assert struct.unpack_from("<8I", image, 64) == (3, 3, 4, 2, 2, 1, 0, 0)
    assert struct.unpack_from("<8I", image, 96) == (16, 8, 5, 1, 1, 1, 4, 0)   # relu
    assert struct.unpack_from("<8I", image, 128) == (16, 5, 3, 1, 1, 1, 2, 0)  # softmax
    assert struct.unpack_from("<I", image, len(image) - 4)[0] == zlib.crc32(image[:-4])
    first = model.layers[0].parameters()["weight_ih_l0"]
    np.testing.assert_array_equal(np.frombuffer(image, "<f4", first.size, 192), first.ravel())


def test_every_truncation_is_a_clear_error(tmp_path):
    image = rnnx_format.dumps(rnnx.GRU(2, 2, seed=0))
    path = tmp_path / "cut.rnnx"
    for n in range(len(image)):
        path.write_bytes(image[:n])
        with pytest.raises(ValueError, match=r"cut\.rnnx.*truncated"):
            rnnx.load(path)


def test_every_altered_byte_is_a_clear_error(tmp_path):
    image = rnnx_format.dumps(rnnx.Sequential(rnnx.LSTM(2, 2, seed=0), rnnx.Dense(2, 1, seed=1)))
    rng = np.random.default_rng(0)
    path = tmp_path / "flip.rnnx"
    for i in range(len(image)):
        bad = bytearray(image)
        bad[i] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match=r"flip\.rnnx': ") as error:
            rnnx.load(path)
        if i < 8:
            assert "magic" in str(error.value)
        elif i < 12:
            assert "version" in str(error.value)


def test_hostile_fields_with_a_valid_checksum_are_errors_not_crashes():
    """Random header/descriptor bytes, CRC recomputed: a ValueError or a valid model, never
    another exception."""
    image = rnnx_format.dumps(rnnx.Sequential(rnnx.GRU(2, 3, seed=0), rnnx.Dense(3, 2, seed=1)))
    rng = np.random.default_rng(1)
    for _ in range(500):
        bad = bytearray(image)
        for at in rng.integers(12, 64 + 2 * 32, size=int(rng.integers(1, 4))):
            bad[at] = int(rng.integers(0, 256))
        bad[-4:] = struct.pack("<I", zlib.crc32(bytes(bad[:-4])))
        try:
            rnnx_format.loads(bytes(bad), "hostile")
        except ValueError as error:
            assert str(error).startswith("hostile: ")


def test_wrong_version_and_foreign_files(tmp_path):
    image = bytearray(rnnx_format.dumps(rnnx.RNN(2, 2, seed=0)))
    image[8:12] = struct.pack("<I", 7)
    image[-4:] = struct.pack("<I", zlib.crc32(bytes(image[:-4])))
    (tmp_path / "v7.rnnx").write_bytes(bytes(image))
    with pytest.raises(ValueError, match=r"v7\.rnnx.*version 7 is not supported"):
        rnnx.load(tmp_path / "v7.rnnx")
    (tmp_path / "text.rnnx").write_text("hello, not a model\n" * 10)
    with pytest.raises(ValueError, match=r"text\.rnnx.*magic"):
        rnnx.load(tmp_path / "text.rnnx")
    with pytest.raises(FileNotFoundError, match="missing.rnnx"):
        rnnx.load(tmp_path / "missing.rnnx")
    with pytest.raises(TypeError, match="model must be"):
        rnnx.save(object(), tmp_path / "o.rnnx")


def _c_arrays(source):
    """{array name: [float values]} of the static const arrays in generated C source."""
    arrays = {}
    for name, body in re.findall(r"static const (?:float|double) (\w+)\[\d+\] = \{(.*?)\};",
                                 source, re.S):
        arrays[name] = [float.fromhex(v.strip().rstrip("f")) for v in body.split(",") if v.strip()]
    return arrays


@pytest.mark.parametrize("name", ["seq_m2o", "seq_dense_first_f64", "gru_before_nobias"])
def test_export_c_holds_the_exact_weights(tmp_path, name):
    model = models()[name]
    path = tmp_path / "model_data.c"
    rnnx.export_c(model, path, name="my_model")
    source = path.read_text()
    arrays = _c_arrays(source)
    tensors = [t for layer in (model.layers if isinstance(model, rnnx.Sequential) else [model])
               for t in rnnx_format._descriptor_and_tensors(layer)[1]]
    assert len(arrays) == len(tensors)
    for values, tensor in zip(arrays.values(), tensors):
        np.testing.assert_array_equal(np.array(values, dtype=model.dtype), tensor.ravel())
    assert re.search(r"^const rnnx_model my_model = \{", source, re.M)
    with pytest.raises(ValueError, match="C identifier"):
        rnnx.export_c(model, path, name="not valid")


def test_export_c_refuses_non_finite_weights(tmp_path):
    dense = rnnx.Dense(2, 2, seed=0)
    dense.parameters()["weight"][0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        rnnx.export_c(dense, tmp_path / "bad.c")


def test_committed_data_is_what_the_scripts_write(tmp_path):
    """tests/c/data (the C tests' reference) and examples/embed's demo model are generated
    files: regenerating them gives the committed models, and reference values equal to
    1e-12 (their float64 reference may round differently on another BLAS)."""
    subprocess.run([sys.executable, os.path.join(HERE, "c", "make_data.py"), str(tmp_path)],
                   check=True)
    data = os.path.join(HERE, "c", "data")
    names = sorted(os.listdir(data))
    assert names == sorted(os.listdir(tmp_path)) and len(names) == 28
    for name in names:
        committed = open(os.path.join(data, name), "rb").read()
        fresh = (tmp_path / name).read_bytes()
        if name.endswith(".rnnx"):
            assert committed == fresh, name
            continue
        a, b = committed.split(), fresh.split()
        assert len(a) == len(b)
        for u, v in zip(a, b):
            if u != v:
                x, y = float.fromhex(u.decode()), float.fromhex(v.decode())
                assert abs(x - y) <= 1e-12 * max(1, abs(x)), (name, u, v)
    embed = tmp_path / "embed"
    embed.mkdir()
    subprocess.run([sys.executable, os.path.join(ROOT, "examples", "embed", "make_model.py"),
                    str(embed)], check=True, cwd=ROOT)
    for name in ("model.rnnx", "model_data.c"):
        assert (embed / name).read_bytes() == \
            open(os.path.join(ROOT, "examples", "embed", name), "rb").read(), name


# ------------------------------------------- format version 3: int8 and bfloat16 weights ---

def _reseal(image):
    image[-4:] = struct.pack("<I", zlib.crc32(bytes(image[:-4])))
    return bytes(image)


@pytest.mark.parametrize("qtype, code, stored", [("int8", 1, np.int8), ("bfloat16", 2, np.uint16)])
def test_quantized_layout_is_as_documented(qtype, code, stored):
    """Version 3, the weights code in the descriptor's last field, each weight matrix as its
    int8 values then its float32 scales (or as bfloat16 bits), 64-byte aligned, biases
    float32; a Dense head stays float32 (code 0)."""
    model = rnnx.quantize(rnnx.Sequential(rnnx.LSTM(3, 5, seed=1), rnnx.Dense(5, 2, seed=2)),
                          qtype)
    image = rnnx_format.dumps(model)
    assert struct.unpack_from("<8sII", image)[1:] == (3, 0)
    assert struct.unpack_from("<8I", image, 64) == (2, 3, 5, 1, 1, 1, 0, code)
    assert struct.unpack_from("<8I", image, 96) == (16, 5, 2, 1, 1, 1, 0, 0)
    params = model.layers[0].parameters()
    offset = 128
    for name in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]:
        for key in [name] + ([name + "_scale"] if qtype == "int8" and "weight" in name else []):
            tensor = params[key]
            want_dtype = stored if key == name and "weight" in name else np.float32
            assert tensor.dtype == want_dtype, key
            np.testing.assert_array_equal(
                np.frombuffer(image, tensor.dtype.newbyteorder("<"), tensor.size, offset),
                tensor.ravel())
            offset = -(-(offset + tensor.nbytes) // 64) * 64
    # a float body says version 1; the same body with the version field 3 is valid
    plain = bytearray(rnnx_format.dumps(rnnx.LSTM(3, 5, seed=1)))
    assert plain[8] == 1
    plain[8:12] = struct.pack("<I", 3)
    assert rnnx_format.loads(_reseal(plain)).config() == rnnx.LSTM(3, 5, seed=1).config()


def test_quantized_truncations_and_altered_bytes_are_clear_errors(tmp_path):
    image = rnnx_format.dumps(rnnx.quantize(rnnx.GRU(2, 3, seed=0), "int8"))
    path = tmp_path / "q.rnnx"
    for n in range(len(image)):
        path.write_bytes(image[:n])
        with pytest.raises(ValueError, match=r"q\.rnnx.*truncated"):
            rnnx.load(path)
    rng = np.random.default_rng(2)
    for i in range(len(image)):
        bad = bytearray(image)
        bad[i] ^= int(rng.integers(1, 256))
        with pytest.raises(ValueError, match="hostile: "):
            rnnx_format.loads(bytes(bad), "hostile")


def _int8_offsets(image):
    """(offset of layer 0's int8 W_ih, of its scales) in an int8 GRU(2, 3)'s file."""
    data = 128
    return data, -(-(data + 9 * 2) // 64) * 64


@pytest.mark.parametrize("where, value, message", [
    ("scale", struct.pack("<f", float("nan")), "scale that is not a finite number"),
    ("scale", struct.pack("<f", float("inf")), "scale that is not a finite number"),
    ("scale", struct.pack("<f", -1.0), "scale that is not a finite number"),
    ("int8", b"\x80", "int8 weight of -128"),
    ("code", struct.pack("<I", 3), "weights code 3"),
    ("version", struct.pack("<I", 2), "in a version 2 file"),
    ("dtype", struct.pack("<I", 1), "in a float64 file"),
    ("dense", struct.pack("<I", 1), "kind 16.* a recurrent layer's"),
])
def test_quantized_hostile_fields_are_named(where, value, message):
    """Each change resealed (a valid CRC): the reader's own checks name it; the C reader's
    twin of this test is tests/c/test_errors.c's test_quantized_image."""
    image = bytearray(rnnx_format.dumps(rnnx.quantize(rnnx.GRU(2, 3, seed=0), "int8")))
    data, scales = _int8_offsets(image)
    assert np.array_equal(np.frombuffer(image, "<f4", 9, scales),
                          rnnx.quantize(rnnx.GRU(2, 3, seed=0), "int8").parameters()[
                              "weight_ih_l0_scale"])
    if where == "dense":     # a Dense head's weights field: refused (its weights are float)
        image = bytearray(rnnx_format.dumps(rnnx.Sequential(rnnx.LSTM(2, 3, seed=0),
                                                            rnnx.Dense(3, 1, seed=1))))
        image[8:12] = struct.pack("<I", 3)
    at = {"scale": scales, "int8": data, "code": 64 + 28, "version": 8, "dtype": 12,
          "dense": 96 + 28}[where]
    image[at:at + len(value)] = value
    with pytest.raises(ValueError, match=f"hostile: corrupt: .*{message}"):
        rnnx_format.loads(_reseal(image), "hostile")


@pytest.mark.parametrize("change, message", [
    (lambda image: image.__setitem__(slice(8, 12), struct.pack("<I", 2)), "proj_size 2"),
    (lambda image: image.__setitem__(slice(64 + 24, 64 + 28), struct.pack("<I", 5)),
     "proj_size 5"),
    (lambda image: image.__setitem__(slice(64, 68), struct.pack("<I", 3)), "proj_size 2"),
])
def test_projection_fields_are_checked(change, message):
    """proj_size (version 3's seventh field of a recurrent descriptor): only in version 3,
    below H, and only for an LSTM (here: the version set to 2, P = H, the cell a GRU)."""
    model = rnnx.LSTM(3, 5, proj_size=2, seed=0)
    image = bytearray(rnnx_format.dumps(model))
    assert image[8] == 3 and struct.unpack_from("<8I", image, 64)[6] == 2
    change(image)
    with pytest.raises(ValueError, match=f"hostile: corrupt: .*{message}"):
        rnnx_format.loads(_reseal(image), "hostile")

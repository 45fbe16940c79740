"""Save and load a whole model, architecture and weights, in one .npz file, without pickle.

    rnnx.save(model, "model.npz")
    model = rnnx.load("model.npz")               # a new model, as saved
    rnnx.load("model.npz", into=model)           # weights into an existing model of the
                                                 # same architecture, all or nothing

File layout (an ordinary NumPy .npz, readable with np.load(path, allow_pickle=False)):
    "__rnnx__"       0-d unicode array: JSON {"format": "rnnx", "version": 1,
                     "architecture": {"type": ..., "config": ...}}; for a Sequential the
                     config holds every layer's {"type", "config"} (layer.config()).
    "param/<name>"   one array per entry of model.state_dict(), in its dtype.

A file that is not an npz, lacks the header, names an unknown layer type, or whose arrays do
not match the architecture raises ValueError naming the file and the problem. Loading builds
and checks everything before touching an existing model, so a failed load leaves it unchanged.
"""
import json
import os
import zipfile

import numpy as np

from .model import Sequential, layer_from_spec, layer_spec

FORMAT = "rnnx"
VERSION = 1
HEADER_KEY = "__rnnx__"
PARAM_PREFIX = "param/"


def _spec(model):
    if isinstance(model, Sequential):
        return {"type": "Sequential", "config": model.config()}
    if not (hasattr(model, "config") and hasattr(model, "state_dict")):
        raise TypeError(f"model must be an rnnx.Sequential or an rnnx layer, got {type(model).__name__}")
    return layer_spec(model)


def _build(spec):
    if spec.get("type") == "Sequential":
        return Sequential.from_config(spec["config"])
    return layer_from_spec(spec)


def _is_rnnx_file(path):
    """A path ending in .rnnx goes to the C library's flat format (rnnx/rnnx_format.py)."""
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(".rnnx")


def save(model, path):
    """Write model's architecture (JSON) and weights to the .npz file at path
    (or to the C library's .rnnx format when path ends in .rnnx)."""
    if _is_rnnx_file(path):
        from .rnnx_format import save_rnnx
        return save_rnnx(model, path)
    spec = _spec(model)
    header = json.dumps({"format": FORMAT, "version": VERSION, "architecture": spec}, sort_keys=True)
    arrays = {PARAM_PREFIX + name: np.ascontiguousarray(value)
              for name, value in model.state_dict().items()}
    arrays[HEADER_KEY] = np.array(header)
    path = os.fspath(path)
    with open(path, "wb") as f:            # a file object: np.savez then adds no ".npz"
        np.savez(f, **arrays)


def _read(path):
    """(header dict, {name: array}) from the file, or ValueError saying what is wrong."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not an npz archive")
        with data:
            if HEADER_KEY not in data.files:
                raise ValueError(f"it has no {HEADER_KEY!r} entry (not saved by rnnx.save)")
            header_text = str(data[HEADER_KEY])
            params = {key[len(PARAM_PREFIX):]: data[key] for key in data.files
                      if key.startswith(PARAM_PREFIX)}
            extra = [key for key in data.files if key != HEADER_KEY and not key.startswith(PARAM_PREFIX)]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as error:
        raise ValueError(f"{path!r} is not a readable rnnx model file: {error}") from error
    if extra:
        raise ValueError(f"{path!r} has entries that are not rnnx parameters: {extra}")
    try:
        header = json.loads(header_text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path!r}: the architecture header is not valid JSON: {error}") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT or "architecture" not in header:
        raise ValueError(f"{path!r}: the header is not an rnnx model header: {header_text[:200]!r}")
    if header.get("version") != VERSION:
        raise ValueError(f"{path!r}: format version {header.get('version')!r} is not supported "
                         f"(this rnnx reads version {VERSION})")
    return header, params


def load(path, into=None):
    """Load the model saved at path. With into=model, load the weights into that existing
    model instead, after checking its architecture equals the file's; returns the model.
    On any error nothing is changed. A path ending in .rnnx is read as the C library's format."""
    if _is_rnnx_file(path):
        from .rnnx_format import load_rnnx
        return load_rnnx(path, into)
    header, params = _read(path)
    spec = header["architecture"]
    try:
        model = _build(spec)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(f"{os.fspath(path)!r}: cannot rebuild the architecture {spec!r}: "
                         f"{error}") from error
    try:
        model.load_state_dict(params)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{os.fspath(path)!r}: the weights do not match the architecture: "
                         f"{error}") from error
    if into is None:
        return model
    own = json.loads(json.dumps(_spec(into)))           # normalised like the file's
    if own != spec:
        raise ValueError(f"{os.fspath(path)!r} holds a different architecture than the model "
                         f"given as into: file {spec!r}, model {own!r}")
    into.load_state_dict(model.state_dict())
    return into

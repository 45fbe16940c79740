"""Save and load a whole model, architecture and weights, in one .npz file, without pickle.

    rnnx.save(model, "model.npz")
    model = rnnx.load("model.npz")               # a new model, as saved
    rnnx.load("model.npz", into=model)           # weights into an existing model of the
                                                 # same architecture, all or nothing

File layout (an ordinary NumPy .npz, readable with np.load(path, allow_pickle=False)):
    "__rnnx__"       0-d unicode array: JSON {"format": "rnnx", "version": 1,
                     "architecture": {"type": ..., "config": ...}}; for a Sequential the
                     config holds every layer's {"type", "config"} (layer.config()), for
                     a Seq2Seq its "encoder" and "decoder" Sequential configs.
    "param/<name>"   one array per entry of model.state_dict(), in its dtype.

Saving is atomic: the file is written to a temporary file in the same folder, flushed to
disk (fsync) and renamed over the target, so an error, a full disk or Ctrl-C mid-save leaves
any previous file at that path intact, and no temporary file behind.

Loading never unpickles (allow_pickle is never set). It reads each array's header first and
checks its declared size against the bytes stored, and checks the architecture's declared
sizes against the stored arrays, before allocating anything or building the model. A file
that is not an npz, lacks the header, has a corrupt member, names an unknown layer type, or
whose arrays do not match the architecture raises ValueError naming the file (and the
member). Loading builds and checks everything before touching an existing model, so a failed
load leaves it unchanged.

Formats are chosen by the file's extension: FORMATS maps an extension (".npz") to a
(save, load) pair of functions, and any extension not in it is written and read as .npz.
Another format registers itself there.
"""
import json
import os
import zipfile
import zlib

import numpy as np

from ._files import write_atomic
from .model import Sequential, _layer_classes, layer_from_spec, layer_spec, quantized_type

FORMAT = "rnnx"
VERSION = 1
HEADER_KEY = "__rnnx__"
CHECKPOINT_KEY = "__checkpoint__"   # the header of a Trainer checkpoint (rnnx.trainer)
PARAM_PREFIX = "param/"
# Everything a corrupt or hostile .npz member can raise while being read.
_CORRUPT = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError, TypeError,
            SyntaxError, UnicodeDecodeError, NotImplementedError, MemoryError, RecursionError,
            OverflowError, RuntimeError)   # RuntimeError: a damaged flag byte reads "encrypted"


def _spec(model):
    from .seq2seq import Seq2Seq
    if isinstance(model, Sequential):
        return {"type": "Sequential", "config": model.config()}
    if isinstance(model, Seq2Seq):
        return {"type": "Seq2Seq", "config": model.config()}
    # an instance of a layer class a file can name, not anything with config(): what is saved
    # must load again
    if not isinstance(model, tuple(_layer_classes().values())):
        raise TypeError(f"model must be an rnnx.Sequential, an rnnx.Seq2Seq or an rnnx layer "
                        f"({', '.join(sorted(_layer_classes()))}), got {type(model).__name__}")
    return layer_spec(model)


def check_path(path):
    """path as a str (a bytes path decoded as os.fsdecode does), or a TypeError naming it, or
    a ValueError if it is a directory."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, bytes or os.PathLike file name, got "
                        f"{type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if os.path.isdir(path):
        raise ValueError(f"path must be a file, got the directory {path!r}")
    return path


def _build(spec):
    if spec.get("type") == "Sequential":
        return Sequential.from_config(spec["config"])
    if spec.get("type") == "Seq2Seq":
        from .seq2seq import Seq2Seq
        return Seq2Seq.from_config(spec["config"])
    return layer_from_spec(spec)


def _save_npz(model, path):
    qtype = quantized_type(model)
    if qtype:
        raise TypeError(f"model is a quantized model ({qtype}, made by rnnx.quantize), which "
                        f"the .npz format cannot hold (it keeps float weights): save it as "
                        f".rnnx, rnnx.save(model, 'model.rnnx') (int8/bfloat16 tensors, read "
                        f"back by rnnx.load), or save the float32 model; {path!r} was not "
                        f"written")
    spec = _spec(model)
    header = json.dumps({"format": FORMAT, "version": VERSION, "architecture": spec}, sort_keys=True)
    arrays = {PARAM_PREFIX + name: np.ascontiguousarray(value)
              for name, value in model.state_dict().items()}
    arrays[HEADER_KEY] = np.array(header)
    write_atomic(path, lambda f: np.savez(f, **arrays))   # a file object: no ".npz" added


def save(model, path):
    """Write a model's architecture and weights to one file, atomically.

    Parameters
    ----------
    model : rnnx.Sequential, rnnx.Seq2Seq or rnnx layer (RNN, LSTM, GRU, Dense, Embedding)
        The model to save.
    path : str or os.PathLike
        The file to write (an existing file is replaced only once the new one is complete).
        The extension picks the format (see ``FORMATS``); ``.npz`` and any unregistered
        extension give the NumPy .npz layout of the module docstring.

    Raises
    ------
    TypeError
        If model is not an rnnx model or layer (checked before the file is touched), or path
        is not a str, bytes or os.PathLike, or model is quantized (rnnx.quantize) and path
        is not a ``.rnnx`` file, the one format that holds int8/bfloat16 tensors.
    ValueError
        If path is a directory.
    OSError
        If the file cannot be written; the previous file at path, if any, is unchanged.
    """
    path = check_path(path)
    writer = FORMATS.get(os.path.splitext(path)[1].lower(), FORMATS[".npz"])[0]
    writer(model, path)


def _corrupt(path, info, error):
    return ValueError(f"{path!r} is not a readable rnnx model file: member "
                      f"{info.filename[:-4]!r} is corrupt: {type(error).__name__}: {error}")


def _member_header(zf, info, path):
    """(shape, dtype) from one .npy member's header, after checking that the declared shape
    fits in the bytes stored (so a forged header cannot make us allocate) and that it holds
    no Python objects (pickle)."""
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        if dtype.hasobject:
            raise ValueError("it holds Python objects (pickle), which rnnx never loads")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes > info.file_size:
            raise ValueError(f"its header declares shape {shape} of {dtype} ({nbytes} bytes) "
                             f"but only {info.file_size} bytes are stored")
    except _CORRUPT as error:
        raise _corrupt(path, info, error) from error
    return shape, dtype


def _read_member(zf, info, path):
    """The array stored in one .npy member of the archive (its header checked first)."""
    _member_header(zf, info, path)
    try:
        with zf.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except _CORRUPT as error:
        raise _corrupt(path, info, error) from error


def _read(path, header_key=HEADER_KEY, prefixes=(PARAM_PREFIX,), fmt=FORMAT, what="model"):
    """(header dict, {member name: array}) from the file, or ValueError saying what is wrong.

    The header (member `header_key`, JSON with "format": fmt, "version" and "architecture") is
    read first; every other member must start with one of `prefixes`. The arrays of
    PARAM_PREFIX members are checked against the architecture from their headers alone
    before any array is read."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such {what} file: {path!r}")
    with open(path, "rb") as f:
        if f.read(6) == b"\x93NUMPY":
            raise ValueError(f"{path!r} is not a readable rnnx {what} file: it holds a single "
                             "array, not an npz archive")
    try:
        zf = zipfile.ZipFile(path)
    except _CORRUPT as error:
        raise ValueError(f"{path!r} is not a readable rnnx {what} file (not an npz archive): "
                         f"{type(error).__name__}: {error}") from error
    with zf:
        try:
            infos = zf.infolist()
        except _CORRUPT as error:
            raise ValueError(f"{path!r} is not a readable rnnx {what} file: {error}") from error
        names = [info.filename[:-4] for info in infos]
        odd = [info.filename for info in infos if not info.filename.endswith(".npy")]
        extra = [name for name in names
                 if name != header_key and not name.startswith(tuple(prefixes))]
        if header_key not in names:
            hint = "not saved by rnnx"
            if what == "model" and CHECKPOINT_KEY in names:
                hint = "it is a Trainer checkpoint: use rnnx.Trainer.from_checkpoint(path)"
            elif what == "checkpoint" and HEADER_KEY in names:
                hint = "it is a model file: use rnnx.load(path)"
            raise ValueError(f"{path!r} is not a readable rnnx {what} file: it has no "
                             f"{header_key!r} entry ({hint})")
        if odd or extra:
            raise ValueError(f"{path!r} has entries that are not rnnx parameters: {odd + extra}")
        header_array = _read_member(zf, infos[names.index(header_key)], path)
        if header_array.shape != () or header_array.dtype.kind != "U":
            raise ValueError(f"{path!r}: member {header_key!r} must be a 0-d string, got "
                             f"{header_array.dtype} {header_array.shape}")
        header_text = str(header_array)
        try:
            header = json.loads(header_text)
        except (ValueError, RecursionError) as error:
            raise ValueError(f"{path!r}: the architecture header is not valid JSON: "
                             f"{error}") from error
        if not isinstance(header, dict) or header.get("format") != fmt \
                or "architecture" not in header:
            raise ValueError(f"{path!r}: the header is not an rnnx {what} header: {header_text[:200]!r}")
        if header.get("version") != VERSION:
            raise ValueError(f"{path!r}: format version {header.get('version')!r} is not supported "
                             f"(this rnnx reads version {VERSION})")
        _check_declared_sizes(header["architecture"], zf, infos, names, path)
        arrays = {name: _read_member(zf, info, path)
                  for name, info in zip(names, infos) if name != header_key}
    return header, arrays


def _declared_shapes(spec, prefix=""):
    """{parameter name: shape} that the architecture spec declares, computed from its config
    alone (PyTorch's layout), or None for a layer type this function does not know."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        return None
    kind, config = spec.get("type"), spec["config"]
    if kind == "Seq2Seq":           # {"encoder": Sequential config, "decoder": ...}
        shapes = {}
        for part in ("encoder", "decoder"):
            inner = _declared_shapes({"type": "Sequential", "config": config.get(part)},
                                     f"{prefix}{part}.")
            if inner is None:
                return None
            shapes.update(inner)
        return shapes
    if kind == "Sequential":
        layers = config.get("layers")
        if not isinstance(layers, list):
            return None
        shapes = {}
        for index, layer in enumerate(layers):
            inner = _declared_shapes(layer, f"{prefix}{index}.")
            if inner is None:
                return None
            shapes.update(inner)
        return shapes
    from . import cells, layers   # need the compiled core, which this module imports without
    # {recurrent layer type: the first of its cells in the core's table (they share shapes)}
    recurrent = {}
    for variant, (cls, _) in layers.variants().items():
        recurrent.setdefault(cls.__name__, variant)
    sizes = {}
    keys = {"Dense": ("in_features", "out_features"),
            "Embedding": ("num_embeddings", "embedding_dim")}.get(kind, ("input_size", "hidden_size"))
    for key in keys + (("num_layers",) if kind in recurrent else ()):
        if key not in config:      # a config this check does not know: load_state_dict checks
            return None
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"config[{key!r}] of the {kind} layer must be an int >= 1, got {value!r}")
        sizes[key] = value
    bias = config.get("bias", True)
    if kind == "Dense":
        shapes = {f"{prefix}weight": (sizes["out_features"], sizes["in_features"])}
        if bias:
            shapes[f"{prefix}bias"] = (sizes["out_features"],)
        return shapes
    if kind == "Embedding":
        return {f"{prefix}weight": (sizes["num_embeddings"], sizes["embedding_dim"])}
    if kind not in recurrent:
        return None
    I, H = sizes["input_size"], sizes["hidden_size"]
    D = 2 if config.get("bidirectional", False) else 1
    P = config.get("proj_size", 0) if kind == "LSTM" else 0   # an LSTM's projection
    if isinstance(P, bool) or not isinstance(P, int) or not 0 <= P < H:
        raise ValueError(f"config['proj_size'] of the LSTM layer must be an int in [0, "
                         f"hidden_size={H}), got {P!r}")
    peephole = config.get("peephole", False) if kind == "LSTM" else False
    if not isinstance(peephole, bool):
        raise ValueError(f"config['peephole'] of the LSTM layer must be a bool, got {peephole!r}")
    shapes = {}
    for k in range(sizes["num_layers"]):
        width = I if k == 0 else D * (P or H)       # layer k > 0 takes y, P wide if projected
        for suffix in ("", "_reverse")[:D]:
            for name, shape in cells.parameter_shapes(recurrent[kind], width, H, P, peephole,
                                                      bias).items():
                shapes[f"{prefix}{name}_l{k}{suffix}"] = shape
    return shapes


def _check_declared_sizes(spec, zf, infos, names, path):
    """Check, from the array headers only, that the stored arrays have the names and shapes the
    architecture declares, before the model (of any declared size) is built."""
    try:    # the core computes the shapes, and refuses sizes it cannot hold
        declared = _declared_shapes(spec)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{path!r}: the architecture declares sizes rnnx cannot build: "
                         f"{error}") from error
    if declared is None:           # a layer type this check does not know: load_state_dict checks
        return
    stored = {name[len(PARAM_PREFIX):]: _member_header(zf, info, path)[0]
              for name, info in zip(names, infos) if name.startswith(PARAM_PREFIX)}
    missing = sorted(set(declared) - set(stored))
    unexpected = sorted(set(stored) - set(declared))
    if missing or unexpected:
        raise ValueError(f"{path!r}: the weights do not match the architecture: missing "
                         f"{missing}, unexpected {unexpected}")
    for name, shape in declared.items():
        if tuple(stored[name]) != shape:
            raise ValueError(f"{path!r}: the weights do not match the architecture: "
                             f"{name!r} must have shape {shape} for the declared sizes, the file "
                             f"stores {tuple(stored[name])}")


def _load_npz(path, into=None):
    header, arrays = _read(path)
    params = {name[len(PARAM_PREFIX):]: value for name, value in arrays.items()}
    spec = header["architecture"]
    try:
        model = _build(spec)
    except (TypeError, ValueError, KeyError, AttributeError, MemoryError, RecursionError) as error:
        raise ValueError(f"{path!r}: cannot rebuild the architecture {spec!r}: "
                         f"{error}") from error
    try:
        model.load_state_dict(params)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path!r}: the weights do not match the architecture: "
                         f"{error}") from error
    if into is None:
        return model
    own = json.loads(json.dumps(_spec(into)))           # normalised like the file's
    if own != spec:
        raise ValueError(f"{path!r} holds a different architecture than the model "
                         f"given as into: file {spec!r}, model {own!r}")
    into.load_state_dict(model.state_dict())
    return into


def load(path, into=None):
    """Load a model saved by `save`.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Its extension picks the format (see ``FORMATS``).
    into : rnnx.Sequential or rnnx layer, optional
        An existing float model of the same architecture to load the weights into, instead
        of building a new one. Not a quantized one (rnnx.quantize's: its tensors are
        packed when it is made): ``rnnx.load(path)`` gives a quantized ``.rnnx`` file's model.

    Returns
    -------
    model : rnnx.Sequential or rnnx layer
        The new model, or `into`.

    Raises
    ------
    FileNotFoundError
        If there is no file at path.
    TypeError
        If path is not a str, bytes or os.PathLike, or into is a quantized model.
    ValueError
        If path is a directory or a Trainer checkpoint (the message says to use
        ``Trainer.from_checkpoint``), or the file is not an rnnx model file, is corrupt
        (naming the member), or its weights or architecture do not match (each other, or
        `into`), or it holds a quantized model and into is given. Nothing is changed.
    """
    path = check_path(path)
    qtype = quantized_type(into)
    if qtype:
        raise TypeError(f"into is a quantized model ({qtype}, made by rnnx.quantize): loading "
                        f"into a quantized model is not supported (its tensors are packed when "
                        f"it is made). Use rnnx.load({path!r}), which gives a quantized .rnnx "
                        f"file's model back quantized, or load a float file into the float32 "
                        f"model and quantize it again")
    reader = FORMATS.get(os.path.splitext(path)[1].lower(), FORMATS[".npz"])[1]
    return reader(path, into)


def _save_rnnx(model, path):
    from .rnnx_format import save_rnnx
    save_rnnx(model, path)


def _load_rnnx(path, into=None):
    from .rnnx_format import load_rnnx
    return load_rnnx(path, into)


# extension -> (save(model, path), load(path, into)); unknown extensions use ".npz".
# .rnnx is the C library's flat format (rnnx/rnnx_format.py, docs/rnnx-format.md).
FORMATS = {".npz": (_save_npz, _load_npz), ".rnnx": (_save_rnnx, _load_rnnx)}

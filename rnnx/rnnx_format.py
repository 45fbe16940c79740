"""The .rnnx model file that the C library reads (its C-source twin, export_c, is in
c_source.py and writes the same descriptors and tensors).

    rnnx.save(model, "model.rnnx")          # io.save dispatches here on the .rnnx extension
    model = rnnx.load("model.rnnx")

The format (docs/rnnx-format.md has the full table) is a flat little-endian binary: a 64-byte
header (magic, version, dtype, layer count, flags, file size, input and output sizes, where the
tensors start), one 32-byte descriptor per layer (cell, sizes, stack depth, directions, bias,
Dense activation), the tensors in state_dict order each at a 64-byte aligned offset, and a
CRC-32 of everything before it. The C reader (csrc/model/reader.c) uses the tensors in place, so a
microcontroller can keep the file in flash.

What it holds: a Sequential of RNN/LSTM/GRU (stacked, bidirectional, with or without bias,
either GRU form, an LSTM's proj_size) and Dense layers, many-to-many or many-to-one, float32 or
float64, optionally after an Embedding (a token model: the C library then takes int32 ids); or
one bare layer; and rnnx.quantize's models (int8 recurrent weights with a float32 scale per
row, or bfloat16). Version 2 of the format adds the Embedding layer kind and the last-output
flag (many_to_one="output"), version 3 int8/bfloat16 weights and proj_size; a file is written
as the lowest version that holds it (version 1: the bytes earlier rnnx wrote, readable by
older C libraries); all three are read.
batch_first is not stored (the C library is time-major): a loaded model has batch_first=False. A file that is truncated, altered, of another version or not an .rnnx file
raises ValueError naming the file and what is wrong.
"""
import os
import struct
import zlib

import numpy as np

from . import _core
from ._files import write_atomic
from .dense import ACTIVATIONS, Dense
from .embedding import Embedding
from .model import quantized_type

__all__ = ["save_rnnx", "load_rnnx", "dumps", "loads"]

# The format's constants, written once in csrc/model/format.h (and the layer kinds in
# csrc/rnnx_model.h), read here through the binding.
MAGIC = _core.FORMAT["MAGIC"]
VERSION = _core.FORMAT["VERSION"]            # the newest version written and read
VERSIONS = tuple(range(_core.FORMAT["VERSION_MIN"], VERSION + 1))  # 2 adds the Embedding
#                                                  kind and FLAG_LAST_OUTPUT
HEADER_BYTES = _core.FORMAT["HEADER_BYTES"]
DESCRIPTOR_BYTES = _core.FORMAT["DESCRIPTOR_BYTES"]
TENSOR_ALIGN = _core.FORMAT["TENSOR_ALIGN"]
MAX_LAYERS = _core.FORMAT["MAX_LAYERS"]
MAX_STACK = _core.FORMAT["MAX_STACK"]
MAX_SIZE = _core.FORMAT["MAX_SIZE"]
FLAG_MANY_TO_ONE = _core.FORMAT["FLAG_MANY_TO_ONE"]
FLAG_BARE_LAYER = _core.FORMAT["FLAG_BARE_LAYER"]
FLAG_LAST_OUTPUT = _core.FORMAT["FLAG_LAST_OUTPUT"]  # with FLAG_MANY_TO_ONE: many_to_one="output"
KNOWN_FLAGS = _core.FORMAT["KNOWN_FLAGS"]
# rnnx_model.many_to_one in C: 0, RNNX_MANY_TO_ONE_STATE or RNNX_MANY_TO_ONE_OUTPUT
C_MANY_TO_ONE = {False: 0, "state": _core.FORMAT["MANY_TO_ONE_STATE"],
                 "output": _core.FORMAT["MANY_TO_ONE_OUTPUT"]}
DENSE = _core.FORMAT["DENSE"]
EMBEDDING = _core.FORMAT["EMBEDDING"]        # first layer only; its last descriptor field is padding_idx + 1
# cell codes, as csrc/rnnx.h's enum rnnx_cell
RNN_TANH, RNN_RELU, LSTM, GRU, GRU_RESET_BEFORE = 0, 1, 2, 3, 4
_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<f8")}
_SCALES = np.dtype("<f4")                          # an int8 matrix's row scales
# version 3: the weights field (a recurrent or Dense descriptor's last), enum rnnx_weights
VERSION_WEIGHTS = _core.FORMAT["VERSION_WEIGHTS"]
WEIGHTS_INT8 = _core.FORMAT["WEIGHTS_INT8"]
WEIGHTS_BFLOAT16 = _core.FORMAT["WEIGHTS_BFLOAT16"]
_WEIGHTS_CODES = {None: 0, "int8": WEIGHTS_INT8, "bfloat16": WEIGHTS_BFLOAT16}  # by qtype
_QTYPES = {code: qtype for qtype, code in _WEIGHTS_CODES.items()}
_HEADER = struct.Struct("<8sIIIIQIII20x")        # 64 bytes
_DESCRIPTOR = struct.Struct("<8I")                # 32 bytes


def _align(offset):
    return -(-offset // TENSOR_ALIGN) * TENSOR_ALIGN


def _is_recurrent(layer):
    return not isinstance(layer, (Dense, Embedding)) and hasattr(layer, "hidden_size")


def _layers_of(model):
    """(layers, many_to_one, bare) of a Sequential, a recurrent layer or a Dense."""
    from .model import Sequential
    if isinstance(model, Sequential):
        return list(model.layers), model.many_to_one, False
    if isinstance(model, (Dense, Embedding)) or _is_recurrent(model):
        return [model], False, True
    raise TypeError(f"model must be an rnnx.Sequential, RNN, LSTM, GRU, Dense or Embedding, "
                    f"got {type(model).__name__}")


def _cell_code(layer):
    # a quantized layer's class derives from its float class (rnnx.quantize)
    name = next((c.__name__ for c in type(layer).__mro__ if c.__name__ in ("RNN", "LSTM", "GRU")),
                type(layer).__name__)
    if name == "RNN":
        return RNN_TANH if layer.nonlinearity == "tanh" else RNN_RELU
    if name == "LSTM":
        return LSTM
    if name == "GRU":
        return GRU if layer.reset_after else GRU_RESET_BEFORE
    raise TypeError(f"cannot store a layer of type {name} in an .rnnx file")


def _descriptor_and_tensors(layer):
    """(8 descriptor fields, [tensors in file order]) of one layer."""
    params = layer.parameters()
    if isinstance(layer, Embedding):
        padding = 0 if layer.padding_idx is None else layer.padding_idx + 1
        fields = (EMBEDDING, layer.num_embeddings, layer.embedding_dim, 1, 1, 0, 0, padding)
        return fields, [params["weight"]]
    if isinstance(layer, Dense):
        names = ["weight"] + (["bias"] if layer.bias else [])
        fields = (DENSE, layer.in_features, layer.out_features, 1, 1, int(layer.bias),
                  ACTIVATIONS.index(layer.activation), 0)
        return fields, [params[n] for n in names]
    if getattr(layer, "peephole", False):
        raise ValueError("an LSTM with peephole=True cannot be stored in the .rnnx format (the "
                         "bare C library's model has no peephole LSTM yet): save it with "
                         "rnnx.save to a .npz path instead")
    if getattr(layer, "go_backwards", False):
        raise ValueError("the .rnnx format (the C library's) has no reverse-only layer: a "
                         "go_backwards=True layer can be saved as .npz (rnnx.save(model, "
                         "'model.npz'))")
    weights = _WEIGHTS_CODES[getattr(layer, "qtype", None)]   # rnnx.quantize's, or float
    # the seventh field: an LSTM's proj_size (version 3), 0 without
    fields = (_cell_code(layer), layer.input_size, layer.hidden_size, layer.num_layers,
              layer.num_directions, int(layer.bias), getattr(layer, "proj_size", 0), weights)
    return fields, [params[n] for n in _recurrent_names(layer, weights)]


def _recurrent_names(layer, weights):
    """The names of a recurrent layer's tensors in file order: for k, for d, its weights (an
    int8 one followed by its scales, "<name>_scale"), biases and projection (PyTorch's
    state_dict order)."""
    def matrix(name):
        return [name, name + "_scale"] if weights == WEIGHTS_INT8 else [name]

    names = []
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            names += matrix(f"weight_ih{suffix}") + matrix(f"weight_hh{suffix}")
            if layer.bias:
                names += [f"bias_ih{suffix}", f"bias_hh{suffix}"]
            if getattr(layer, "proj_size", 0):
                names += matrix(f"weight_hr{suffix}")
    return names


def dumps(model):
    """The .rnnx file of a model, as bytes.

    Parameters
    ----------
    model : rnnx.Sequential, RNN, LSTM, GRU, Dense or Embedding

    Returns
    -------
    bytes : the whole file, CRC-32 included; the same model always gives the same bytes.
    """
    layers, many_to_one, bare = _layers_of(model)
    dtype = np.dtype(layers[0].dtype)
    code = 1 if dtype == np.float64 else 0
    described = [_descriptor_and_tensors(layer) for layer in layers]
    data_offset = _align(HEADER_BYTES + DESCRIPTOR_BYTES * len(layers))
    body = bytearray()
    offset = data_offset
    for _, tensors in described:
        for tensor in tensors:
            pad = _align(offset) - offset
            body += bytes(pad)
            raw = np.ascontiguousarray(tensor, dtype=_stored_dtype(tensor, code)).tobytes()
            body += raw
            offset += pad + len(raw)
    input_size, output_size = layers[0].input_size, layers[-1].output_size
    flags = _flags(many_to_one) | (FLAG_BARE_LAYER if bare else 0)
    # 1 where 1 can say it: 2 only for what version 2 added, 3 for int8/bfloat16 weights
    version = 2 if isinstance(layers[0], Embedding) or flags & FLAG_LAST_OUTPUT else 1
    if any(_weights_code(fields) or _proj_size(fields) for fields, _ in described):
        version = VERSION_WEIGHTS
    header = _HEADER.pack(MAGIC, version, code, len(layers), flags, offset + 4, input_size,
                          output_size, data_offset)
    descriptors = b"".join(_DESCRIPTOR.pack(*fields) for fields, _ in described)
    image = header + descriptors + bytes(data_offset - len(header) - len(descriptors)) + body
    return image + struct.pack("<I", zlib.crc32(image))


def _weights_code(fields):
    """A descriptor's weights code (version 3's last field; an Embedding's is its padding)."""
    return 0 if fields[0] == EMBEDDING else fields[7]


def _proj_size(fields):
    """A descriptor's proj_size (version 3's seventh field of a recurrent layer)."""
    return 0 if fields[0] in (DENSE, EMBEDDING) else fields[6]


def _stored_dtype(tensor, code):
    """The little-endian dtype a tensor is written in: int8 and bfloat16 (uint16) weights as
    they are, everything else (biases, scales, float weights) in the file's dtype."""
    dtype = np.asarray(tensor).dtype
    return dtype.newbyteorder("<") if dtype.kind in "iu" else _DTYPES[code]


def _flags(many_to_one):
    """The header's many-to-one bits: none, FLAG_MANY_TO_ONE ("state"), or both it and
    FLAG_LAST_OUTPUT ("output")."""
    if not many_to_one:
        return 0
    return FLAG_MANY_TO_ONE | (FLAG_LAST_OUTPUT if many_to_one == "output" else 0)


def _many_to_one(flags):
    """many_to_one from the header's flags (the inverse of _flags)."""
    if not flags & FLAG_MANY_TO_ONE:
        return False
    return "output" if flags & FLAG_LAST_OUTPUT else "state"


def save_rnnx(model, path):
    """Write a model to an .rnnx file (what ``rnnx.save`` does for a path ending in .rnnx).

    Parameters
    ----------
    model : rnnx.Sequential, RNN, LSTM, GRU, Dense or Embedding
    path : str or os.PathLike
    """
    image = dumps(model)
    write_atomic(os.fspath(path), lambda f: f.write(image))   # the old file survives a failure


def _parse(image, name):
    """(dtype, many_to_one, bare, [(fields, [tensor arrays])]) or ValueError naming the problem."""
    def fail(what):
        raise ValueError(f"{name}: {what}")

    size = len(image)
    if image[:len(MAGIC)] != MAGIC[:min(size, len(MAGIC))]:
        fail("not an .rnnx model file (the magic bytes differ)")
    if size < 12:
        fail(f"truncated: {size} bytes, shorter than the header")
    version = struct.unpack_from("<I", image, 8)[0]
    if version not in VERSIONS:
        fail(f"format version {version} is not supported (this rnnx reads versions "
             f"{', '.join(map(str, VERSIONS))})")
    if size < HEADER_BYTES:
        fail(f"truncated: {size} bytes, shorter than the {HEADER_BYTES}-byte header")
    (_, _, code, count, flags, file_size, input_size, output_size,
     data_offset) = _HEADER.unpack_from(image, 0)
    if file_size > size:
        fail(f"truncated: {size} bytes, the header says {file_size}")
    if file_size != size:
        fail(f"corrupt: the header says {file_size} bytes, the file has {size}")
    stored_crc = struct.unpack_from("<I", image, size - 4)[0]
    if zlib.crc32(image[:size - 4]) != stored_crc:
        fail("the CRC-32 does not match: the file was altered or damaged")
    if code not in _DTYPES:
        fail(f"corrupt: dtype code {code} (0 float32 or 1 float64)")
    if not 1 <= count <= MAX_LAYERS:
        fail(f"corrupt: {count} layers (1 to {MAX_LAYERS})")
    if flags & ~KNOWN_FLAGS:
        fail(f"corrupt: unknown flags {flags:#x}")
    if flags & FLAG_LAST_OUTPUT and not flags & FLAG_MANY_TO_ONE:
        fail("corrupt: the last-output flag without the many-to-one flag")
    if flags & FLAG_LAST_OUTPUT and version < 2:
        fail("corrupt: the last-output flag in a version 1 file (version 2 added it)")
    if any(image[44:HEADER_BYTES]):
        fail("corrupt: reserved header bytes are not zero")
    if data_offset != _align(HEADER_BYTES + DESCRIPTOR_BYTES * count):
        fail(f"corrupt: tensor data offset {data_offset}")
    dtype = _DTYPES[code]
    layers = []
    offset = data_offset
    width = input_size
    for i in range(count):
        fields = _DESCRIPTOR.unpack_from(image, HEADER_BYTES + DESCRIPTOR_BYTES * i)
        kind, size_in, hidden, stack, directions, bias, activation, reserved = fields
        where = f"layer {i}"
        weights = 0                     # the last field of a recurrent or Dense layer
        if kind == EMBEDDING:           # version 2, first layer; reserved is padding_idx + 1
            if version < 2 or i or (stack, directions, bias, activation) != (1, 1, 0, 0) \
                    or reserved > size_in:
                fail(f"corrupt: Embedding {where} has fields {fields} in a version "
                     f"{version} file")
        elif reserved:
            weights = reserved
            if version < VERSION_WEIGHTS:
                fail(f"corrupt: {where} has int8/bfloat16 weights (code {weights}) in a "
                     f"version {version} file (version {VERSION_WEIGHTS} added them)")
            if weights not in (WEIGHTS_INT8, WEIGHTS_BFLOAT16) or code != 0 or kind == DENSE:
                fail(f"corrupt: {where} (kind {kind}) has weights code {weights} in a "
                     f"{_DTYPES[code].name if code in _DTYPES else code} file (1 int8 or "
                     f"2 bfloat16, a recurrent layer's, in a float32 file)")
        if bias not in (0, 1) or not 1 <= size_in <= MAX_SIZE or not 1 <= hidden <= MAX_SIZE:
            fail(f"corrupt: {where} has out-of-range fields {fields}")
        if size_in != width:
            fail(f"corrupt: {where} takes {size_in} features but gets {width}")
        if kind == EMBEDDING:
            shapes = [(size_in, hidden)]
            width = hidden
        elif kind == DENSE:
            if stack != 1 or directions != 1 or activation >= len(ACTIVATIONS):
                fail(f"corrupt: Dense {where} has fields {fields}")
            shapes = [(hidden, size_in)] + [(hidden,)] * bias
            width = hidden
        elif kind in (RNN_TANH, RNN_RELU, LSTM, GRU, GRU_RESET_BEFORE):
            if not 1 <= stack <= MAX_STACK or directions not in (1, 2):
                fail(f"corrupt: recurrent {where} has fields {fields}")
            proj = activation                  # the seventh field: proj_size, version 3
            if proj and (version < VERSION_WEIGHTS or kind != LSTM or proj >= hidden):
                fail(f"corrupt: recurrent {where} has proj_size {proj} (an LSTM's, below its "
                     f"hidden size, version {VERSION_WEIGHTS} on)")
            G = {LSTM: 4, GRU: 3, GRU_RESET_BEFORE: 3}.get(kind, 1) * hidden
            S = proj or hidden
            shapes = []
            for k in range(stack):
                for _ in range(directions):
                    shapes += [(G, size_in if k == 0 else directions * S), (G, S)]
                    shapes += [(G,), (G,)] if bias else []
                    shapes += [(proj, hidden)] if proj else []
            width = directions * S
        else:
            fail(f"corrupt: {where} has unknown kind {kind}")
        tensors = []
        for shape, kind_of, scales in _stored(shapes, weights, dtype):
            offset = _align(offset)
            nbytes = int(np.prod(shape)) * kind_of.itemsize
            if offset + nbytes > size - 4:
                fail(f"corrupt: the tensors of {where} run past the end of the file")
            tensor = np.frombuffer(image, kind_of, int(np.prod(shape)), offset).reshape(shape)
            if scales and not (np.all(np.isfinite(tensor)) and np.all(tensor >= 0)):
                fail(f"corrupt: {where} has a weight scale that is not a finite number >= 0")
            if kind_of == np.int8 and np.any(tensor == -128):
                fail(f"corrupt: {where} has an int8 weight of -128 (they are symmetric, "
                     f"-127 to 127)")
            tensors.append(tensor.astype(kind_of.newbyteorder("=")))
            offset += nbytes
        layers.append((fields, tensors))
    if offset != size - 4:
        fail(f"corrupt: {size - 4 - offset} bytes after the last tensor")
    if width != output_size:
        fail(f"corrupt: the header says {output_size} output features, the layers give {width}")
    many_to_one, bare = _many_to_one(flags), bool(flags & FLAG_BARE_LAYER)
    if many_to_one and not any(f[0] not in (DENSE, EMBEDDING) for f, _ in layers):
        fail("corrupt: many_to_one without a recurrent layer")
    if bare and (count != 1 or many_to_one):
        fail("corrupt: a bare layer file must hold exactly one layer")
    return dtype, many_to_one, bare, layers


def _stored(shapes, weights, dtype):
    """[(shape, dtype as stored, are they scales)] of a layer's tensors, from its float
    shapes: with int8 weights each matrix is its int8 data then its float32 scales (rows,);
    with bfloat16 it is uint16; 1-d tensors (biases) stay in the file's dtype."""
    stored = []
    for shape in shapes:
        if len(shape) == 1 or not weights:
            stored.append((shape, dtype, False))
        elif weights == WEIGHTS_INT8:
            stored += [(shape, np.dtype("i1"), False), (shape[:1], _SCALES, True)]
        else:
            stored.append((shape, np.dtype("<u2"), False))
    return stored


def _build_layer(fields, tensors, dtype):
    from . import layers as recurrent
    kind, size_in, hidden, stack, directions, bias, activation, _ = fields
    qtype = _QTYPES[_weights_code(fields)]
    dtype = np.dtype(dtype.newbyteorder("="))
    if kind == EMBEDDING:
        padding = fields[7]
        layer = Embedding(size_in, hidden, padding_idx=padding - 1 if padding else None,
                          dtype=dtype)
        names = ["weight"]
    elif kind == DENSE:
        layer = Dense(size_in, hidden, activation=ACTIVATIONS[activation], bias=bool(bias),
                      dtype=dtype)
        names = ["weight"] + (["bias"] if bias else [])
    else:
        common = dict(num_layers=stack, bias=bool(bias), bidirectional=directions == 2, dtype=dtype)
        if kind in (RNN_TANH, RNN_RELU):
            layer = recurrent.RNN(size_in, hidden, nonlinearity="tanh" if kind == RNN_TANH
                                  else "relu", **common)
        elif kind == LSTM:
            layer = recurrent.LSTM(size_in, hidden, proj_size=activation, **common)
        else:
            layer = recurrent.GRU(size_in, hidden, reset_after=kind == GRU, **common)
        names = list(layer.parameters())   # state_dict order: k, d, w_ih, w_hh, b_ih, b_hh
    if qtype:
        return _quantized(layer, qtype, tensors)
    layer.load_state_dict(dict(zip(names, tensors)))
    return layer


def _quantized(layer, qtype, tensors):
    """rnnx.quantize's model of a float layer's shapes with the file's int8 or bfloat16 weights
    (the quantized core's packed panels made from them): the layer's own weights are not
    used, the file's are not quantized again."""
    from .quantized import quantize
    q = quantize(layer, qtype)
    names = _recurrent_names(q, _WEIGHTS_CODES[qtype])
    for name, tensor in zip(names, tensors):
        want = q._tensors[name]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise ValueError(f"{name} has shape {tensor.shape} {tensor.dtype}, the layer "
                             f"{want.shape} {want.dtype}")
        q._tensors[name] = tensor
    for (k, d), packed in q._packed.items():
        suffix = f"_l{k}" + ("_reverse" if d else "")
        for name in ("weight_ih", "weight_hh", "weight_hr"):
            if name in packed:          # W_hr (P,H): one block of rows, as quantize packs it
                packed[name] = _core.qpack(qtype, layer._gates if name != "weight_hr" else 1,
                                           q._tensors[name + suffix],
                                           q._tensors.get(name + suffix + "_scale"))
        for name in ("bias_ih", "bias_hh"):
            if name in packed:
                packed[name] = q._tensors[name + suffix]
    return q


def loads(image, name="<bytes>"):
    """The model held by the bytes of an .rnnx file.

    Parameters
    ----------
    image : bytes-like, the whole file
    name : str, how error messages name the data

    Returns
    -------
    rnnx.Sequential, or the bare layer the file holds (batch_first=False).

    Raises
    ------
    ValueError : naming ``name`` and the problem, if the data is truncated, altered (CRC-32),
        of another format version, not an .rnnx file, or its fields do not fit together.
    """
    from .model import Sequential
    dtype, many_to_one, bare, described = _parse(bytes(image), name)
    try:
        layers = [_build_layer(fields, tensors, dtype) for fields, tensors in described]
        if bare:
            return layers[0]
        qtypes = {layer.qtype for layer in layers if getattr(layer, "qtype", None)}
        if not qtypes:
            return Sequential(*layers, many_to_one=many_to_one)
        if len(qtypes) > 1:
            raise ValueError(f"layers of several qtypes {sorted(qtypes)}: rnnx.quantize makes "
                             f"one")
        from .quantized import QuantizedSequential
        model = QuantizedSequential(layers, many_to_one=many_to_one)
        model.qtype = qtypes.pop()
        return model
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: the layers cannot be rebuilt: {error}") from error


def load_rnnx(path, into=None):
    """Read a model from an .rnnx file (what ``rnnx.load`` does for a path ending in .rnnx).

    Parameters
    ----------
    path : str or os.PathLike
    into : model or None. If given, the file's weights are loaded into this existing model
        (same layers and shapes), all or nothing, and it is returned.

    Returns
    -------
    rnnx.Sequential, or the bare layer the file holds (batch_first=False); or ``into``.

    Raises
    ------
    FileNotFoundError : no file at path.
    ValueError : naming the file and the problem (see ``loads``), or that ``into`` has
        another architecture (then ``into`` is unchanged).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    with open(path, "rb") as f:
        image = f.read()
    model = loads(image, repr(path))
    if into is None:
        return model
    qtype = quantized_type(model)
    if qtype:
        raise ValueError(f"{path!r} holds a quantized model ({qtype}, rnnx.quantize's), whose "
                         f"tensors cannot be loaded into the float model given as into: use "
                         f"rnnx.load({path!r}), which returns it")
    try:
        into.load_state_dict(model.state_dict())    # checks every key and shape first
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path!r} holds a different architecture than the model given as "
                         f"into: {error}") from error
    return into

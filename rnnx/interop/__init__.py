"""Converters between rnnx and its peers: ONNX (export and import), Keras 3 (both ways) and
PyTorch modules (import).  Each peer is an optional dependency, imported only when its
converter is called: pip install 'rnnx[onnx]', 'rnnx[keras]' or 'rnnx[torch]'."""
from ._keras import from_keras, to_keras
from ._onnx_export import to_onnx
from ._onnx_import import from_onnx
from ._torch import from_torch

__all__ = ["to_onnx", "from_onnx", "to_keras", "from_keras", "from_torch"]

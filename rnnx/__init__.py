"""rnnx: a small, fast recurrent neural network engine for the CPU.

RNN, LSTM and GRU layers with PyTorch's semantics, computed by C loops over
time with BLAS for the matrix products, under a NumPy-native API; models,
losses, optimizers and a trainer with full and truncated BPTT on top."""
from . import data
from .dense import Dense
from .embedding import Embedding
from .interop import from_keras, from_onnx, from_torch, to_keras, to_onnx
from .io import load, save
from .layers import GRU, LSTM, RNN, Stream
from .lr_scheduler import CosineAnnealingLR, StepLR
from .losses import MSELoss, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from .model import Sequential
from .seq2seq import Seq2Seq
from .c_source import export_c
from .quantized import quantize
from .optim import SGD, Adagrad, Adam, clip_grad_norm, clip_grad_value
from ._runtime import get_num_threads, info, set_num_threads
from .trainer import NonFiniteLossError, Trainer

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "Stream", "Dense", "Embedding", "Sequential", "Seq2Seq",
           "MSELoss", "SoftmaxCrossEntropy", "SigmoidBinaryCrossEntropy", "SGD", "Adam", "Adagrad",
           "clip_grad_norm", "clip_grad_value", "StepLR", "CosineAnnealingLR", "Trainer",
           "NonFiniteLossError", "save", "load", "export_c", "data", "to_onnx", "from_onnx",
           "to_keras", "from_keras", "from_torch", "info", "set_num_threads", "get_num_threads", "quantize"]

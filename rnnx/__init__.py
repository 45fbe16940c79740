"""rnnx: a small, fast recurrent neural network engine for the CPU.

RNN, LSTM and GRU layers with PyTorch's semantics, computed by C loops over
time with BLAS for the matrix products, under a NumPy-native API."""
from .layers import GRU, LSTM, RNN, Stream

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "Stream"]

"""rnnx: a small, fast recurrent neural network engine for the CPU."""
__version__ = "0.1.0"

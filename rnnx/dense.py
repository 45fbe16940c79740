"""Dense: an affine layer with an optional activation, applied over the last axis.

    y = act(x @ weight.T + bias)      x (..., in_features) -> y (..., out_features)

Stacked after a recurrent layer it is the lectures' output layer y_t = g_o(W_hy h_t + b_y),
applied at every step of a (T, B, H) sequence at once (one GEMM for all T*B rows). Alone or
stacked with other Dense layers it makes the small MLP of the time-delay network.

Weights use PyTorch's nn.Linear layout and names (weight (out, in), bias (out,)) and its
default initialisation, uniform(-1/sqrt(in), 1/sqrt(in)), so weights move between the two
without reordering.

Activations: "identity", "sigmoid", "softmax" (over the last axis) for an output layer, and
"tanh", "relu" for hidden layers. forward(x, logits=True) skips the activation: the losses
that fuse it (softmax cross-entropy, sigmoid binary cross-entropy) take the logits, which is
the numerically stable form.
"""
import numpy as np
from scipy.linalg.blas import get_blas_funcs
from scipy.special import expit, softmax

ACTIVATIONS = ("identity", "sigmoid", "softmax", "tanh", "relu")


def _as_fortran_operand(m):
    """(array, trans) with op(array) = m and array Fortran-contiguous, without a copy when m
    is C- or Fortran-contiguous (a C-contiguous m is the transpose of a Fortran one)."""
    if m.flags.f_contiguous:
        return m, 0
    if m.flags.c_contiguous:
        return m.T, 1
    return np.asfortranarray(m), 0


def _matmul(a, b):
    """a @ b for 2-D float arrays, through SciPy's BLAS gemm, C-contiguous result.

    The recurrent layers' C core takes its BLAS from SciPy; routing this product there too
    keeps one BLAS thread pool busy instead of two (NumPy and SciPy each ship an OpenBLAS,
    and two pools spinning at once on a 2-core machine cost a factor of ~4 in training).
    Row-major is handled here, once: C = a @ b is computed as C^T = b^T @ a^T in Fortran order.
    """
    gemm = get_blas_funcs("gemm", (a, b))
    first, trans_first = _as_fortran_operand(b.T)
    second, trans_second = _as_fortran_operand(a.T)
    return gemm(1.0, first, second, trans_a=trans_first, trans_b=trans_second).T


def _apply(activation, z):
    """The activation of the pre-activation z, in z's dtype."""
    if activation == "identity":
        return z
    if activation == "sigmoid":
        return expit(z)                      # never overflows, unlike 1/(1+exp(-z))
    if activation == "softmax":
        return softmax(z, axis=-1)           # shifts by the row max before exp
    if activation == "tanh":
        return np.tanh(z)
    return np.maximum(z, 0)                  # relu


def _backward(activation, y, z, dy):
    """Gradient of the pre-activation z given dy = dL/dy, from the saved y (or z for relu)."""
    if activation == "identity":
        return dy
    if activation == "sigmoid":
        return dy * y * (1 - y)              # sigma' = s (1 - s)
    if activation == "softmax":
        # y = softmax(z): dz = y * (dy - sum_j dy_j y_j), the Jacobian-vector product
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))
    if activation == "tanh":
        return dy * (1 - y * y)              # tanh' = 1 - t^2
    return dy * (z > 0)                      # relu' = [z > 0]


class Dense:
    """Affine layer y = act(x @ weight.T + bias) over the last axis of x.

    Parameters
    ----------
    in_features, out_features : int
    activation : "identity" | "sigmoid" | "softmax" | "tanh" | "relu"
    bias : bool
    dtype : np.float32 or np.float64
    seed : int or None, for np.random.default_rng
    """

    def __init__(self, in_features, out_features, activation="identity", bias=True,
                 dtype=np.float32, seed=None):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.activation = activation
        self.bias = bool(bias)
        self.dtype = dtype
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        self._params = {"weight": rng.uniform(-bound, bound, (self.out_features, self.in_features))
                        .astype(dtype)}
        if self.bias:
            self._params["bias"] = rng.uniform(-bound, bound, self.out_features).astype(dtype)

    def __repr__(self):
        return (f"Dense({self.in_features}, {self.out_features}, activation={self.activation!r}"
                + ("" if self.bias else ", bias=False") + f", dtype={self.dtype.name})")

    # -- computation ---------------------------------------------------------------------

    def _check_x(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"x must be a real array, got dtype {x.dtype}")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must be (..., {self.in_features}) for in_features="
                             f"{self.in_features}, got {x.shape}")
        return np.asarray(x, dtype=self.dtype)

    def __call__(self, x):
        """Inference: y = act(x @ weight.T + bias), y (..., out_features)."""
        return self.forward(x)[0]

    def forward(self, x, logits=False):
        """Training forward: returns (y, cache). logits=True returns the pre-activation."""
        x = self._check_x(x)
        rows = x.reshape(-1, self.in_features)
        # z = x @ W^T: (..., out) = (..., in) @ (in, out), all leading axes as rows
        z = _matmul(rows, self._params["weight"].T).reshape(x.shape[:-1] + (self.out_features,))
        if self.bias:
            z += self._params["bias"]
        activation = "identity" if logits else self.activation
        y = _apply(activation, z)
        return y, (x, z, y, activation)

    def backward(self, cache, dy):
        """Returns (dx, grads) for dy = dL/dy of the forward output (the logits if it was
        called with logits=True). grads has the keys and shapes of state_dict()."""
        x, z, y, activation = cache
        dy = np.asarray(dy, dtype=self.dtype)
        if dy.shape != y.shape:
            raise ValueError(f"dy must have the output's shape {y.shape}, got {dy.shape}")
        dz = _backward(activation, y, z, dy)                    # (..., out)
        dz2 = dz.reshape(-1, self.out_features)                 # all leading axes as rows
        x2 = x.reshape(-1, self.in_features)
        grads = {"weight": _matmul(dz2.T, x2)}                  # dW = dz^T x
        if self.bias:
            grads["bias"] = dz2.sum(axis=0)                     # db = column sums of dz
        dx = _matmul(dz2, self._params["weight"])               # dx = dz W
        return dx.reshape(x.shape), grads

    # -- parameters ----------------------------------------------------------------------

    def parameters(self):
        """{name: live array}: optimizers update these in place and the layer sees it."""
        return dict(self._params)

    def state_dict(self):
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state):
        """Strict: the keys and shapes must match; nothing is changed if anything does not."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        expected = set(self._params)
        if set(state) != expected:
            raise ValueError(f"state keys must be {sorted(expected)}, got {sorted(state)}")
        arrays = {}
        for name, target in self._params.items():
            value = np.asarray(state[name])
            if value.shape != target.shape:
                raise ValueError(f"state[{name!r}] must have shape {target.shape}, got {value.shape}")
            if value.dtype.kind not in "fiu":
                raise TypeError(f"state[{name!r}] must be a real array, got {value.dtype}")
            arrays[name] = value
        for name, value in arrays.items():
            self._params[name][...] = value

    def config(self):
        """Constructor kwargs, JSON-serialisable; Dense(**config) rebuilds the layer."""
        return {"in_features": self.in_features, "out_features": self.out_features,
                "activation": self.activation, "bias": self.bias, "dtype": self.dtype.name}

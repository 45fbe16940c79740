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

from .module import Cache, Module, as_layer_dtype, check_dtype, check_seed, positive_int

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


class Dense(Module):
    """Affine layer y = act(x @ weight.T + bias) over the last axis of x.

    ``rnnx.Dense(in_features, out_features, activation="identity", *, bias=True,
    dtype=np.float32, seed=None)``

    Parameters
    ----------
    in_features : int
        The number of features of x (its last axis).
    out_features : int
        The number of features of y.
    activation : {"identity", "sigmoid", "softmax", "tanh", "relu"}, default "identity"
        Applied to the last axis of ``x @ weight.T + bias`` (softmax over that axis).
    bias : bool, default True
    dtype : np.float32 (default) or np.float64
        Of the parameters and the computation; the dtype policy of the recurrent layers
        applies (float64 x into a float32 layer raises TypeError).
    seed : None, int >= 0, or np.random.Generator
        For the initialisation; None draws fresh entropy.

    Attributes
    ----------
    state_names : ()
        Dense carries no state.

    Parameters (nn.Linear's names, shapes and initialisation, uniform in
    [-1/sqrt(in_features), 1/sqrt(in_features)]): ``weight`` (out_features, in_features),
    ``bias`` (out_features,).

    Notes
    -----
    ``y = dense(x)``: inference, x (..., in_features) -> y (..., out_features).
    ``y, None, cache = dense.forward(x, state=None, lengths=None, logits=False)``.
    ``dx, None, grads = dense.backward(cache, dy, dstate=None)``.
    These are the recurrent layers' signatures, with no state (``lengths`` is accepted
    and ignored: Dense works on every row alike).
    """

    state_names = ()
    _config_keys = ("in_features", "out_features", "activation", "bias", "dtype")

    def __init__(self, in_features, out_features, activation="identity", *, bias=True,
                 dtype=np.float32, seed=None):
        """Build the layer, weights uniform in +-1/sqrt(in_features); see help(rnnx.Dense)."""
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.bias = bool(bias)
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(check_seed(seed))
        bound = 1.0 / np.sqrt(self.in_features)
        self._params = {"weight": rng.uniform(-bound, bound, (self.out_features, self.in_features))
                        .astype(self.dtype)}
        if self.bias:
            self._params["bias"] = rng.uniform(-bound, bound, self.out_features).astype(self.dtype)

    def _param_shapes(self):
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        return shapes

    @property
    def input_size(self):
        """int: in_features (the name the recurrent layers use)."""
        return self.in_features

    @property
    def output_size(self):
        """int: out_features."""
        return self.out_features

    # -- computation ---------------------------------------------------------------------

    def _check_x(self, x):
        x = as_layer_dtype(x, self.dtype, "x", "this Dense")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must be (..., {self.in_features}) for in_features="
                             f"{self.in_features}, got {x.shape}")
        return np.asarray(x, dtype=self.dtype)

    def __call__(self, x):
        """Inference: ``y = dense(x)``, act(x @ weight.T + bias), y (..., out_features)."""
        return self._run(x, None, None, train=False)[0]

    def forward(self, x, state=None, lengths=None, logits=False):
        """Training forward: ``y, None, cache = dense.forward(x)``.

        Parameters
        ----------
        x : array_like (..., in_features)
        state : None (Dense has no state)
        lengths : ignored (accepted for the common layer protocol)
        logits : bool, default False
            Return the pre-activation ``x @ weight.T + bias`` (for the losses that fuse
            the activation); backward then takes the gradient of the logits.

        Returns
        -------
        y : ndarray (..., out_features), the layer's dtype
        state : None
        cache : for backward (opaque)
        """
        return self._run(x, state, lengths, train=True, logits=logits)

    def _run(self, x, state, lengths, train, logits=False):
        if state is not None:
            raise ValueError(f"Dense has no state: state must be None, got {type(state).__name__}")
        x_given = x
        x = self._check_x(x)
        rows = x.reshape(-1, self.in_features)
        # z = x @ W^T: (..., out) = (..., in) @ (in, out), all leading axes as rows
        z = _matmul(rows, self._params["weight"].T).reshape(x.shape[:-1] + (self.out_features,))
        if self.bias:
            z += self._params["bias"]
        activation = "identity" if logits else self.activation
        y = _apply(activation, z)
        if not train:
            return y, None, None
        if np.may_share_memory(x, x_given):
            x = x.copy()                     # backward must see x as it was
        return y, None, Cache(self, (x, z, y, activation))

    def backward(self, cache, dy, dstate=None):
        """Backward: ``dx, None, grads = dense.backward(cache, dy)``.

        Parameters
        ----------
        cache : the cache of this layer's forward
        dy : array, the gradient with respect to the forward's output (the logits if
            forward had logits=True), of its shape
        dstate : None (Dense has no state)

        Returns
        -------
        dx : ndarray, x's shape
        None
        grads : dict, the keys and shapes of state_dict()
        """
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be the cache returned by forward, got {type(cache).__name__}")
        if dstate is not None:
            raise ValueError(f"Dense has no state: dstate must be None, got {type(dstate).__name__}")
        self._check_fresh(cache)
        x, z, y, activation = cache.data
        dy = as_layer_dtype(dy, self.dtype, "dy", "this Dense")
        if dy.shape != y.shape:
            raise ValueError(f"dy must have the output's shape {y.shape}, got {dy.shape}")
        dy = np.asarray(dy, dtype=self.dtype)
        dz = _backward(activation, y, z, dy)                    # (..., out)
        dz2 = dz.reshape(-1, self.out_features)                 # all leading axes as rows
        x2 = x.reshape(-1, self.in_features)
        grads = {"weight": _matmul(dz2.T, x2)}                  # dW = dz^T x
        if self.bias:
            grads["bias"] = dz2.sum(axis=0)                     # db = column sums of dz
        dx = _matmul(dz2, self._params["weight"])               # dx = dz W
        return dx.reshape(x.shape), None, grads

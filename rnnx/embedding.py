"""Embedding: a lookup table from integer ids to learned vectors, PyTorch's nn.Embedding.

    y = weight[ids]      ids (...) integers in [0, num_embeddings) -> y (..., embedding_dim)

It is what a Dense layer without bias computes on one-hot input (y = one_hot(ids) @ weight),
without building the one-hot array: V times less memory and work for a vocabulary of V.
First in a Sequential it makes the model take integer x, (T, B) time-major ((B, T)
batch_first, (T,) unbatched), instead of (T, B, I) floats.

Backward: the gradient of weight is a scatter-add of dy's rows into the rows their ids name
(an id used n times gets the sum of its n rows). It is computed by a stable sort of the ids
and one np.add.reduceat over the sorted rows, which measured 1.4 to 19 times faster than
np.add.at on (V, D) float32 tables (V 100 to 10000, D 16 to 128, 1024 to 100000 ids; NumPy
2.4, 1 thread, 2-core AMD EPYC). There is no dx: the input is integers (backward returns
None in its place, as PyTorch does).

padding_idx (PyTorch's): that row starts at zero and gets no gradient, so it stays what it is
(zero unless loaded otherwise) through training; a negative padding_idx counts from the end
and is stored as num_embeddings + padding_idx.
"""
import numpy as np

from .module import Cache, Module, as_layer_dtype, check_dtype, check_seed, positive_int


def check_ids(ids, num_embeddings, name="x"):
    """ids as an integer array with every value in [0, num_embeddings), or TypeError /
    ValueError naming the argument, the expected range and what was given."""
    try:
        array = np.asarray(ids)
    except ValueError as error:           # a ragged list
        raise ValueError(f"{name} must be an integer array of ids, got {error}") from None
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of ids in [0, {num_embeddings}) for "
                        f"an Embedding, got dtype {array.dtype}"
                        + (f": convert it with {name}.astype(np.int64) if it holds whole numbers"
                           if array.dtype.kind == "f" else ""))
    if array.size:
        low, high = array.min(), array.max()
        if low < 0 or high >= num_embeddings:
            raise ValueError(f"{name} must hold ids in [0, {num_embeddings}) for num_embeddings="
                             f"{num_embeddings}, got min {low}, max {high}")
    return array


def scatter_add_rows(ids, rows, num_rows):
    """table (num_rows, D) with table[i] = sum of rows[n] over the n with ids[n] == i.

    ids (N,) integers in [0, num_rows), rows (N, D). A stable sort groups equal ids and
    np.add.reduceat sums each group (the sum np.add.at gives, up to rounding)."""
    table = np.zeros((num_rows, rows.shape[1]), dtype=rows.dtype)
    if ids.size == 0:
        return table
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    table[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return table


class Embedding(Module):
    """A lookup table of num_embeddings vectors of embedding_dim, indexed by integer ids.

    ``rnnx.Embedding(num_embeddings, embedding_dim, *, padding_idx=None, dtype=np.float32,
    seed=None)``

    Parameters
    ----------
    num_embeddings : int
        The number of ids (the vocabulary): ids lie in [0, num_embeddings).
    embedding_dim : int
        The length of each vector (the features of y).
    padding_idx : int or None, default None
        An id whose row is zero at initialisation and never receives a gradient (the row
        of a padding token). Negative values count from the end, as in PyTorch; it must lie
        in [-num_embeddings, num_embeddings).
    dtype : np.float32 (default) or np.float64
        Of the table and of y.
    seed : None, int >= 0, or np.random.Generator
        For the initialisation, N(0, 1) as nn.Embedding's; None draws fresh entropy.

    Parameters (nn.Embedding's name and shape): ``weight`` (num_embeddings, embedding_dim).

    Notes
    -----
    ``y = emb(ids)``: inference, ids (...) integers -> y (..., embedding_dim).
    ``y, None, cache = emb.forward(ids, state=None, lengths=None)``.
    ``None, None, grads = emb.backward(cache, dy)``: no dx, the input being integers.
    The signatures are the recurrent layers' with no state (``lengths`` is accepted and
    ignored: every id is looked up).
    """

    state_names = ()
    _config_keys = ("num_embeddings", "embedding_dim", "padding_idx", "dtype")

    def __init__(self, num_embeddings, embedding_dim, *, padding_idx=None, dtype=np.float32,
                 seed=None):
        """Build the table, N(0, 1) with the padding row zero; see help(rnnx.Embedding)."""
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        self.padding_idx = self._check_padding_idx(padding_idx)
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(check_seed(seed))
        weight = rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self._params = {"weight": weight}

    def _check_padding_idx(self, padding_idx):
        if padding_idx is None:
            return None
        if isinstance(padding_idx, (bool, np.bool_)) or not isinstance(padding_idx, (int, np.integer)):
            raise TypeError(f"padding_idx must be None or an int, got {type(padding_idx).__name__}")
        V = self.num_embeddings
        if not -V <= padding_idx < V:
            raise ValueError(f"padding_idx must lie in [-{V}, {V}) for num_embeddings={V}, "
                             f"got {padding_idx}")
        return int(padding_idx) % V          # PyTorch stores a negative one from the end

    def _param_shapes(self):
        return {"weight": (self.num_embeddings, self.embedding_dim)}

    def _snapshot(self):
        """(version, no copies): the backward reads only the ids and dy, never the table,
        so an in-place change of the table between forward and backward cannot make its
        gradient wrong, and a (V, D) copy per forward (megabytes for a large vocabulary)
        would buy nothing. load_state_dict() still makes older caches stale."""
        return self._version, []

    @property
    def input_size(self):
        """int: num_embeddings, the width of the one-hot input the lookup stands for."""
        return self.num_embeddings

    @property
    def output_size(self):
        """int: embedding_dim."""
        return self.embedding_dim

    # -- computation ---------------------------------------------------------------------

    def check_ids(self, ids, name="x"):
        """ids as an integer array in [0, num_embeddings), or TypeError/ValueError."""
        return check_ids(ids, self.num_embeddings, name)

    def __call__(self, x):
        """Inference: ``y = emb(ids)``, y (..., embedding_dim) in the layer's dtype."""
        return self._run(x, None, None, train=False)[0]

    def forward(self, x, state=None, lengths=None):
        """Training forward: ``y, None, cache = emb.forward(ids)``.

        Parameters
        ----------
        x : array_like of int (...)
            Ids in [0, num_embeddings).
        state : None (Embedding has no state)
        lengths : ignored (accepted for the common layer protocol)

        Returns
        -------
        y : ndarray (..., embedding_dim), the layer's dtype
        state : None
        cache : for backward (opaque)
        """
        return self._run(x, state, lengths, train=True)

    def _run(self, x, state, lengths, train):
        if state is not None:
            raise ValueError(f"Embedding has no state: state must be None, got {type(state).__name__}")
        ids_given = x
        ids = self.check_ids(x)
        y = self._params["weight"][ids]          # fancy indexing: a new (..., D) array
        if not train:
            return y, None, None
        if np.may_share_memory(ids, ids_given):
            ids = ids.copy()                     # backward must see the ids as they were
        return y, None, Cache(self, ids)

    def backward(self, cache, dy, dstate=None):
        """Backward: ``None, None, grads = emb.backward(cache, dy)``.

        Parameters
        ----------
        cache : the cache of this layer's forward
        dy : array (..., embedding_dim), the gradient with respect to the forward's output
        dstate : None (Embedding has no state)

        Returns
        -------
        None : no gradient for integer ids
        None
        grads : {"weight": (num_embeddings, embedding_dim)}, the scatter-add of dy's rows
            (zero in the padding_idx row)
        """
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be the cache returned by forward, got {type(cache).__name__}")
        if dstate is not None:
            raise ValueError(f"Embedding has no state: dstate must be None, got {type(dstate).__name__}")
        self._check_fresh(cache)
        ids = cache.data
        dy = as_layer_dtype(dy, self.dtype, "dy", "this Embedding")
        want = ids.shape + (self.embedding_dim,)
        if dy.shape != want:
            raise ValueError(f"dy must have the output's shape {want}, got {dy.shape}")
        rows = dy.reshape(-1, self.embedding_dim).astype(self.dtype, copy=False)
        weight = scatter_add_rows(ids.reshape(-1), rows, self.num_embeddings)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0         # PyTorch: the padding row is never updated
        return None, None, {"weight": weight}

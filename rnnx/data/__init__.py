"""Small public-domain data sets bundled with rnnx, and their loaders.

    years, counts = rnnx.data.load_sunspots()       # yearly sunspot numbers, 1700-2008
    text = rnnx.data.load_text()                    # ~125 kB of C (the head of sqlite3.h)
    ids, vocab = rnnx.data.encode_text(text)        # characters -> int class indices

sunspots.csv: yearly mean sunspot number 1700-2008 (Wolf/Zurich series, version 1), public
domain, from NOAA NGDC as bundled in statsmodels.datasets.sunspots.
sqlite3_h.txt: the first lines of SQLite 3.40.1's sqlite3.h, public domain (the SQLite
authors disclaim copyright; see the blessing at its top).
"""
import os

import numpy as np

DATA_DIR = os.path.dirname(os.path.abspath(__file__))
TEXTS = {"sqlite3_h": "sqlite3_h.txt"}


def data_path(name):
    """Absolute path of a bundled data file.

    Parameters
    ----------
    name : str
        File name inside rnnx/data, e.g. "sunspots.csv".

    Returns
    -------
    str
        The absolute path.

    Raises
    ------
    FileNotFoundError
        If the file is not installed.
    """
    path = os.path.join(DATA_DIR, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"rnnx data file {name!r} is not installed (looked in {DATA_DIR})")
    return path


def load_sunspots():
    """The bundled yearly sunspot numbers, 1700-2008.

    Returns
    -------
    years : ndarray of int64, shape (309,)
    counts : ndarray of float64, shape (309,)
        Yearly mean sunspot number (Wolf/Zurich series, version 1).
    """
    table = np.loadtxt(data_path("sunspots.csv"), delimiter=",", comments="#", skiprows=3)
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.float64)


def load_text(name="sqlite3_h"):
    """A bundled text corpus.

    Parameters
    ----------
    name : str, default "sqlite3_h"
        The corpus; "sqlite3_h" is the head of SQLite's sqlite3.h (public domain).

    Returns
    -------
    str
    """
    if name not in TEXTS:
        raise ValueError(f"name must be one of {sorted(TEXTS)}, got {name!r}")
    with open(data_path(TEXTS[name]), encoding="utf-8") as f:
        return f.read()


class CharVocab:
    """Characters <-> class indices, in sorted character order.

    Parameters
    ----------
    chars : iterable of str
        The characters (duplicates are merged), e.g. a whole text.

    Attributes
    ----------
    chars : list of str
        The vocabulary; ``chars[i]`` is class i.
    index : dict
        ``{character: class index}``.
    """

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        """Class indices of the characters of `text`, an int64 array of shape (len(text),);
        a character outside the vocabulary is a ValueError."""
        try:
            return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as error:
            raise ValueError(f"text has a character outside the vocabulary: {error.args[0]!r}") from None

    def decode(self, ids):
        """The text of an array of class indices (any shape, read in C order)."""
        return "".join(self.chars[int(i)] for i in np.ravel(ids))


def encode_text(text):
    """Encode a text for a character model.

    Parameters
    ----------
    text : str

    Returns
    -------
    ids : ndarray of int64, shape (len(text),)
        Class index of each character.
    vocab : CharVocab
        The text's characters, sorted.
    """
    vocab = CharVocab(text)
    return vocab.encode(text), vocab


def stream_batches(ids, batch_size):
    """Split one long id sequence into `batch_size` parallel streams for truncated BPTT.

    Parameters
    ----------
    ids : array of int, shape (L,)
        The sequence, e.g. from `encode_text`.
    batch_size : int
        Number of streams, >= 1.

    Returns
    -------
    inputs, targets : ndarray of int64, shape (T, batch_size), T = (L - 1) // batch_size
        Time-major: stream b is the contiguous slice b*T .. (b+1)*T of the sequence, and
        targets are the inputs shifted by one (predict the next character). The tail that
        does not fill a stream is dropped.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    T = (len(ids) - 1) // batch_size
    if T < 1:
        raise ValueError(f"ids must hold more than batch_size={batch_size} characters, got {len(ids)}")
    inputs = ids[:T * batch_size].reshape(batch_size, T).T
    targets = ids[1:T * batch_size + 1].reshape(batch_size, T).T
    return np.ascontiguousarray(inputs), np.ascontiguousarray(targets)


def one_hot(ids, size, dtype=np.float32):
    """One-hot encoding of integer ids.

    Parameters
    ----------
    ids : array of int, any shape (...)
        Values in [0, size).
    size : int
        Number of classes.
    dtype : dtype, default float32

    Returns
    -------
    ndarray of shape (..., size)
    """
    ids = np.asarray(ids)
    out = np.zeros(ids.shape + (size,), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out


def sample_chars(model, vocab, prefix, length, temperature=1.0, rng=None):
    """Sample `length` characters from a character model, after reading `prefix`.

    Each sampled character is fed back as the next input, with the state handed over from
    step to step.

    Parameters
    ----------
    model : callable
        Maps one-hot (T, 1, len(vocab)) (or ids (T, 1) if it has ``takes_ids``, a
        Sequential starting with an rnnx.Embedding) and a state to (next-character
        probabilities (T, 1, len(vocab)), state), e.g. a Sequential ending in
        ``Dense(..., activation="softmax")``.
    vocab : CharVocab
    prefix : str
        Text read before sampling (at least one character, all in the vocabulary).
    length : int
        Characters to sample.
    temperature : float, default 1.0
        Divides the log-probabilities: < 1 sharper, > 1 flatter; > 0.
    rng : int, numpy Generator or None
        Seed or generator of the sampling.

    Returns
    -------
    str
        The sampled text, without the prefix.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not prefix:
        raise ValueError("prefix must hold at least one character, got ''")
    rng = np.random.default_rng(rng)
    dtype = getattr(model, "dtype", np.float32)
    if getattr(model, "takes_ids", False):         # an Embedding first: the ids themselves
        def encode(ids, size, dtype):
            return ids
    else:
        encode = one_hot
    probs, state = model(encode(vocab.encode(prefix)[:, None], len(vocab), dtype))
    out = []
    for _ in range(length):
        logp = np.log(np.maximum(probs[-1, 0].astype(np.float64), 1e-30)) / temperature
        p = np.exp(logp - logp.max())
        index = int(rng.choice(len(vocab), p=p / p.sum()))
        out.append(vocab.chars[index])
        probs, state = model(encode(np.array([[index]]), len(vocab), dtype), state)
    return "".join(out)

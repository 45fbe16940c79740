"""Property-based tests of the binding rnnx._core (forward, backward, Stream): every argument,
one at a time, replaced by something wrong or oddly laid out (None, a list, another dtype or
byte order, another shape, a strided, Fortran-ordered, read-only or misaligned array,
out-of-range lengths). The property (see tests/fuzzing.py): a right answer or a ValueError /
TypeError naming the argument, inputs unchanged, and never a crash: each test runs in a forked
child, and .ci/sanitize.sh runs them under AddressSanitizer and UBSan.

Every finding these tests made is fixed; a new one would be marked xfail with its reason until
fixed (the sanitizer job skips xfail tests, see tests/conftest.py).
"""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from fuzzing import (BAD_DTYPES, OTHER_FLOATS, assert_clear_error, assert_equal_bits,
                     assert_unchanged, byteswapped, call, fortran, isolated, misaligned,
                     snapshot, strided, with_dtype)
from rnnx import _core
from rnnx import reference as ref
from shared import assert_close_scaled

CELLS = [row["code"] for row in _core.cell_table()]   # every cell of the core
PATHS = [_core.PATH_AUTO, _core.PATH_BLAS, _core.PATH_SMALL, _core.PATH_NAIVE]
TOL = {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-5, 1e-5)}

FORWARD_INPUTS = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "lengths"]
FORWARD_OUTPUTS = ["y", "h_n", "c_n"]
BACKWARD_INPUTS = ["x", "w_ih", "w_hh", "lengths", "cache", "dy", "dh_n", "dc_n"]
BACKWARD_OUTPUTS = ["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"]


class Problem:
    """One direction of one layer: sizes, options and random arrays."""

    def __init__(self, cell, dtype, T, B, I, H, bias, use_lengths, reverse, path, seed):
        self.cell, self.dtype, self.T, self.B, self.I, self.H = cell, np.dtype(dtype), T, B, I, H
        self.bias, self.reverse, self.path = bias, reverse, path
        self.G = _core.gate_count(cell) * H
        rng = np.random.default_rng(seed)
        r = lambda *shape: rng.uniform(-0.9, 0.9, shape).astype(dtype)  # noqa: E731
        self.x, self.h0, self.c0 = r(T, B, I), r(B, H), r(B, H)
        self.w_ih, self.w_hh = r(self.G, I), r(self.G, H)
        self.b_ih, self.b_hh = (r(self.G), r(self.G)) if bias else (None, None)
        self.lengths = rng.integers(1, T + 1, B).astype(np.int64) if use_lengths and T else None
        self.dy, self.dh_n, self.dc_n = r(T, B, H), r(B, H), r(B, H)

    @property
    def lstm(self):
        return self.cell == _core.LSTM

    def __repr__(self):
        return (f"Problem(cell={self.cell}, {self.dtype.name}, T={self.T}, B={self.B}, I={self.I}, "
                f"H={self.H}, bias={self.bias}, lengths={self.lengths}, reverse={self.reverse}, "
                f"path={self.path})")

    def forward_args(self, train=True):
        z = lambda *shape: np.zeros(shape, self.dtype)  # noqa: E731
        return dict(cell=self.cell, x=self.x, h0=self.h0, c0=self.c0 if self.lstm else None,
                    w_ih=self.w_ih, w_hh=self.w_hh, b_ih=self.b_ih, b_hh=self.b_hh,
                    lengths=self.lengths, reverse=self.reverse, y=z(self.T, self.B, self.H),
                    h_n=z(self.B, self.H), c_n=z(self.B, self.H) if self.lstm else None,
                    train=train, path=self.path)

    def backward_args(self, cache):
        z = lambda *shape: np.zeros(shape, self.dtype)  # noqa: E731
        return dict(cell=self.cell, x=self.x, w_ih=self.w_ih, w_hh=self.w_hh, lengths=self.lengths,
                    reverse=self.reverse, cache=cache, dy=self.dy, dh_n=self.dh_n,
                    dc_n=self.dc_n if self.lstm else None, dx=z(self.T, self.B, self.I),
                    dh0=z(self.B, self.H), dc0=z(self.B, self.H) if self.lstm else None,
                    dw_ih=z(self.G, self.I), dw_hh=z(self.G, self.H),
                    db_ih=z(self.G) if self.bias else None, db_hh=z(self.G) if self.bias else None,
                    path=self.path)


@st.composite
def problems(draw, min_T=0, min_B=0):
    T = draw(st.integers(min_T, 5))
    B = draw(st.integers(min_B, 4))
    return Problem(cell=draw(st.sampled_from(CELLS)), dtype=draw(st.sampled_from([np.float32, np.float64])),
                   T=T, B=B, I=draw(st.integers(1, 4)), H=draw(st.integers(1, 5)), bias=draw(st.booleans()),
                   use_lengths=draw(st.booleans()), reverse=draw(st.booleans()),
                   path=draw(st.sampled_from(PATHS)), seed=draw(st.integers(0, 2**16)))


def run_forward(args):
    cache = _core.forward(**args)
    return [args["y"], args["h_n"], args["c_n"] if args["cell"] == _core.LSTM else None, cache]


def forward_outputs(args):
    """What a forward writes, without the cache (opaque; its padded slots are not written)."""
    return run_forward(args)[:3]


def run_backward(args):
    _core.backward(**args)
    return [None if name == "dc0" and args["cell"] != _core.LSTM else args[name] for name in BACKWARD_OUTPUTS]


def corrupt(value, kind, problem, data):
    """value of an argument made wrong (or oddly laid out) by `kind`."""
    if kind == "None":
        return None
    if kind == "list":
        return None if value is None else np.asarray(value).tolist()
    if kind == "scalar":
        return 1.0
    if value is None:
        value = np.zeros(problem.B, np.int64)   # an array where None was expected
    if kind == "dtype":
        return with_dtype(value, data.draw(st.sampled_from(BAD_DTYPES + OTHER_FLOATS), label="dtype"))
    if kind == "byteswapped":
        return byteswapped(value)
    if kind == "shape":
        axis = data.draw(st.integers(0, value.ndim - 1), label="axis") if value.ndim else 0
        shape = list(value.shape) or [1]
        shape[axis] += data.draw(st.sampled_from([1, -1]) if shape[axis] > 0 else st.just(1), label="delta")
        return np.zeros(shape, value.dtype)
    if kind == "ndim":   # one axis more, or one less
        if data.draw(st.booleans(), label="more") or value.ndim == 0 or value.size == 0:
            return value[..., None]
        if value.ndim == 1:
            return value[0, ...]   # a 0-d array (a scalar is test_core_*_none_or_list)
        return value.reshape(value.shape[0], -1)
    if kind == "strided":
        return strided(value)
    if kind == "fortran":
        return fortran(value) if value.ndim >= 2 else strided(value)
    if kind == "readonly":
        out = value.copy()
        out.setflags(write=False)
        return out
    if kind == "range":   # lengths out of [0, T]
        out = np.array(value, copy=True)
        if out.size:
            out[data.draw(st.integers(0, out.size - 1), label="row")] = data.draw(
                st.sampled_from([-1, -2**40, problem.T + 1, 2**40]), label="bad length")
        return out
    raise AssertionError(kind)


KINDS = ["None", "list", "scalar", "dtype", "byteswapped", "shape", "ndim", "strided", "fortran",
         "readonly", "range"]
ARRAY_KINDS = ["dtype", "byteswapped", "shape", "ndim", "strided", "fortran", "readonly"]  # arrays, wrong


# The arrays whose shapes define T, B, I and H: another shape there makes the others wrong.
DEFINING = {"x": ("T", "B", "I"), "h0": ("H",), "dh0": ("H",)}
ARRAY_NAMES = FORWARD_INPUTS + FORWARD_OUTPUTS + BACKWARD_INPUTS + BACKWARD_OUTPUTS


def check_corrupted_call(run, args, name, kind, clean, problem):
    """The property for one corrupted argument `name` of a core call."""
    names = [name]
    if name in DEFINING and kind in ("shape", "ndim"):
        names = ARRAY_NAMES   # any argument may be the one blamed for the mismatch
    inputs = {k: snapshot(v) for k, v in args.items() if k not in FORWARD_OUTPUTS + BACKWARD_OUTPUTS}
    result, error = call(run, args)
    for k, before in inputs.items():
        assert_unchanged(before, args[k], f"{k} (after corrupting {name} by {kind}, {problem})")
    if error is not None:
        assert_clear_error(error, names, f"{name} corrupted by {kind}, {problem}")
    else:
        assert_equal_bits(result, clean, f"result with {name} corrupted by {kind}, {problem}")


# --------------------------------------------------------------------- forward


def reference_forward(p):
    w = [p.w_ih, p.w_hh, p.b_ih, p.b_hh]
    if p.cell == _core.LSTM:
        y, h, c, _ = ref.lstm_forward(p.x, p.h0, p.c0, *w, lengths=p.lengths, reverse=p.reverse)
        return y, h, c
    if p.cell in (_core.RNN_TANH, _core.RNN_RELU):
        y, h, _ = ref.rnn_forward(p.x, p.h0, *w, nonlinearity="tanh" if p.cell == _core.RNN_TANH else "relu",
                                  lengths=p.lengths, reverse=p.reverse)
    else:
        y, h, _ = ref.gru_forward(p.x, p.h0, *w, reset_after=p.cell == _core.GRU,
                                  lengths=p.lengths, reverse=p.reverse)
    return y, h, None


@isolated
@given(problems())
def test_core_forward_clean_matches_reference(p):
    """Every cell, dtype, path and size (T=0 and B=0 included) against the reference."""
    args = p.forward_args(train=False)
    before = {k: snapshot(args[k]) for k in FORWARD_INPUTS}
    y, h_n, c_n, cache = run_forward(args)
    assert cache is None
    y_ref, h_ref, c_ref = reference_forward(p)
    assert_close_scaled(y, y_ref, p.dtype, *TOL[p.dtype], what=f"y, {p}")
    assert_close_scaled(h_n, h_ref, p.dtype, *TOL[p.dtype], what=f"h_n, {p}")
    if p.lstm:
        assert_close_scaled(c_n, c_ref, p.dtype, *TOL[p.dtype], what=f"c_n, {p}")
    for k, snap in before.items():
        assert_unchanged(snap, args[k], k)


@isolated
@given(problems(), st.sampled_from(FORWARD_INPUTS + FORWARD_OUTPUTS),
       st.sampled_from(ARRAY_KINDS), st.data())
def test_core_forward_bad_argument(p, name, kind, data):
    """A wrong dtype, byte order, shape, layout or read-only output: a clear error naming the
    argument, or (a layout the core accepts) the clean answer bit for bit."""
    if kind == "readonly":
        assume(name in FORWARD_OUTPUTS)
    assume(not (name == "x" and kind in ("dtype", "byteswapped")))   # test_core_x_dtype_is_named
    args = p.forward_args()
    clean = forward_outputs(dict(args, **{k: np.zeros_like(args[k]) for k in FORWARD_OUTPUTS if args[k] is not None}))
    assume(args[name] is not None)   # None is valid for the optional ones: see *_none_or_list
    args[name] = corrupt(args[name], kind, p, data)
    check_corrupted_call(forward_outputs, args, name, kind, clean, p)


@isolated
@given(problems(min_T=1, min_B=1), st.sampled_from(FORWARD_INPUTS + FORWARD_OUTPUTS),
       st.sampled_from(["None", "list", "scalar"]), st.data())
def test_core_forward_none_or_list(p, name, kind, data):
    args = p.forward_args()
    clean = forward_outputs(dict(args))
    args = p.forward_args()
    if name in ("b_ih", "b_hh", "lengths") and kind == "None":
        kind = "list"   # None is a valid value there
    args[name] = corrupt(args[name], kind, p, data)
    check_corrupted_call(forward_outputs, args, name, kind, clean, p)


@isolated
@given(problems(min_T=1, min_B=1), st.sampled_from(BAD_DTYPES + OTHER_FLOATS + [">f4", ">f8"]),
       st.sampled_from(["forward", "backward"]))
def test_core_x_dtype_is_named(p, dtype, entry):
    assume(np.dtype(dtype) != p.dtype)
    cache = run_forward(p.forward_args())[3]
    args = p.forward_args() if entry == "forward" else p.backward_args(cache)
    args["x"] = with_dtype(p.x, dtype)
    _, error = call(run_forward if entry == "forward" else run_backward, args)
    assert_clear_error(error, ["x"], f"{entry} with x {dtype}, {p}")


@isolated
@given(problems(min_T=1, min_B=1), st.data())
def test_core_forward_lengths_out_of_range(p, data):
    args = p.forward_args()
    args["lengths"] = corrupt(np.full(p.B, p.T, np.int64), "range", p, data)
    result, error = call(run_forward, args)
    assert error is not None, f"lengths {args['lengths']} accepted for T={p.T}"
    assert_clear_error(error, ["lengths"], f"{p}")


@isolated
@given(st.integers(-3, 200).filter(lambda c: c not in CELLS),
       st.integers(-2, 9).filter(lambda k: k not in PATHS), problems(min_T=1, min_B=1))
def test_core_bad_cell_or_path(bad_cell, bad_path, p):
    args = p.forward_args()
    _, error = call(run_forward, dict(args, cell=bad_cell))
    assert_clear_error(error, ["cell"], f"cell={bad_cell}")
    _, error = call(run_forward, dict(args, path=bad_path))
    assert_clear_error(error, ["path"], f"path={bad_path}")


@isolated
@given(problems(min_T=1, min_B=1), st.sampled_from(FORWARD_INPUTS + FORWARD_OUTPUTS))
def test_core_forward_misaligned(p, name):
    """Misaligned arrays (np.frombuffer at an odd offset): refused clearly or handled right.
    Outside the sanitizers the wrong answer does not show on x86; UBSan sees the loads."""
    args = p.forward_args()
    clean = forward_outputs(dict(args))
    args = p.forward_args()
    assume(args[name] is not None and name != "lengths")
    args[name] = misaligned(args[name])
    check_corrupted_call(forward_outputs, args, name, "misaligned", clean, p)


# --------------------------------------------------------------------- backward


@isolated
@given(problems(), st.sampled_from(BACKWARD_INPUTS + BACKWARD_OUTPUTS),
       st.sampled_from(ARRAY_KINDS), st.data())
def test_core_backward_bad_argument(p, name, kind, data):
    if kind == "readonly":
        assume(name in BACKWARD_OUTPUTS)
    assume(not (name == "x" and kind in ("dtype", "byteswapped")))   # test_core_x_dtype_is_named
    cache = run_forward(p.forward_args())[3]
    clean = run_backward(p.backward_args(cache))
    args = p.backward_args(cache.copy())
    assume(args[name] is not None)   # None is valid for the optional ones: see *_none_or_list
    args[name] = corrupt(args[name], kind, p, data)
    check_corrupted_call(run_backward, args, name, kind, clean, p)


@isolated
@given(problems(min_T=1, min_B=1), st.sampled_from(BACKWARD_INPUTS + BACKWARD_OUTPUTS),
       st.sampled_from(["None", "list", "scalar"]), st.data())
def test_core_backward_none_or_list(p, name, kind, data):
    cache = run_forward(p.forward_args())[3]
    clean = run_backward(p.backward_args(cache))
    args = p.backward_args(cache.copy())
    if name in ("dy", "dh_n", "dc_n", "db_ih", "db_hh", "lengths") and kind == "None":
        kind = "list"   # None is a valid value there
    args[name] = corrupt(args[name], kind, p, data)
    check_corrupted_call(run_backward, args, name, kind, clean, p)


@isolated
@given(problems(min_T=1, min_B=1), st.sampled_from(BACKWARD_INPUTS + BACKWARD_OUTPUTS))
def test_core_backward_misaligned(p, name):
    cache = run_forward(p.forward_args())[3]
    clean = run_backward(p.backward_args(cache))
    args = p.backward_args(cache.copy())
    assume(args[name] is not None and name != "lengths")
    args[name] = misaligned(args[name])
    check_corrupted_call(run_backward, args, name, "misaligned", clean, p)


@isolated
@given(problems(min_T=2, min_B=1), st.sampled_from([np.nan, np.inf, -np.inf, 1e30]))
def test_core_padding_contributes_nothing(p, garbage):
    """Whatever the padding past a row's length holds (in x and in dy), the outputs and every
    gradient are those of zero padding."""
    p.lengths = np.random.default_rng(p.T).integers(1, p.T + 1, p.B).astype(np.int64)
    p.lengths[0] = max(1, p.T - 1)   # at least one padded step
    padded = np.arange(p.T)[:, None] >= p.lengths[None, :]          # (T, B)
    for array in (p.x, p.dy):
        array[padded] = 0
    zero_fwd = run_forward(p.forward_args())
    zero_bwd = run_backward(p.backward_args(zero_fwd[3]))
    p.x[padded] = garbage
    p.dy[padded] = garbage
    fwd = run_forward(p.forward_args())
    bwd = run_backward(p.backward_args(fwd[3]))
    assert_equal_bits(fwd[:3], zero_fwd[:3], f"outputs with {garbage} padding, {p}")
    for name, ours, zeros in zip(BACKWARD_OUTPUTS, bwd, zero_bwd):
        if name == "dx":   # the padded steps' dx is zero, the valid ones equal
            ours = np.where(padded[:, :, None], 0, ours)
            assert np.all(bwd[0][padded] == 0), f"dx at padded steps is not 0 with {garbage} padding"
        assert_equal_bits(ours, zeros, f"{name} with {garbage} padding, {p}")


# --------------------------------------------------------------------- Stream


@st.composite
def stream_problems(draw):
    cell = draw(st.sampled_from(CELLS))
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    L, B, I, H = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    bias = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    G = _core.gate_count(cell) * H
    r = lambda *shape: rng.uniform(-0.9, 0.9, shape).astype(dtype)  # noqa: E731
    weights = [(r(G, I if k == 0 else H), r(G, H), r(G) if bias else None, r(G) if bias else None)
               for k in range(L)]
    xs = r(3, B, I)
    return cell, dtype, B, I, H, weights, xs


def stream_reference(cell, weights, xs):
    """The stack run over xs (T, B, I) from zero state by _core.forward, layer by layer."""
    layer_input = xs
    T, B, _ = xs.shape
    H = weights[0][1].shape[1]
    for w_ih, w_hh, b_ih, b_hh in weights:
        y = np.zeros((T, B, H), xs.dtype)
        _core.forward(cell, layer_input, np.zeros((B, H), xs.dtype), np.zeros((B, H), xs.dtype),
                      w_ih, w_hh, b_ih, b_hh, None, False, y, np.zeros((B, H), xs.dtype),
                      np.zeros((B, H), xs.dtype), False)
        layer_input = y
    return layer_input


@isolated
@given(stream_problems())
def test_core_stream_matches_forward(problem):
    cell, dtype, B, I, H, weights, xs = problem
    before = snapshot(weights)
    stream = _core.Stream(cell, weights, B, dtype)
    ys = np.stack([stream.step(x_t) for x_t in xs])
    assert_close_scaled(ys, stream_reference(cell, weights, xs), dtype, *TOL[dtype], what="stream")
    assert_unchanged(before, weights, "weights")


WEIGHT_KINDS = ["short tuple", "long tuple", "1-D w_ih", "1-D w_hh", "w_ih width", "w_hh shape",
                "bias shape", "None w_ih", "None w_hh", "dtype", "complex", "strided", "fortran",
                "byteswapped", "not a tuple"]


def corrupt_weights(weights, kind, k, data):
    weights = [list(w) for w in weights]
    w_ih, w_hh, b_ih, b_hh = weights[k]
    if kind == "short tuple":
        weights[k] = weights[k][:data.draw(st.integers(0, 3), label="length")]
    elif kind == "long tuple":
        weights[k] = weights[k] + [w_hh]
    elif kind == "1-D w_ih":
        weights[k][0] = w_ih.reshape(-1)
    elif kind == "1-D w_hh":
        weights[k][1] = w_hh.reshape(-1)
    elif kind == "w_ih width":
        weights[k][0] = np.zeros((w_ih.shape[0], w_ih.shape[1] + data.draw(st.sampled_from([-1, 1]))),
                                 w_ih.dtype)[:, :max(0, w_ih.shape[1] - 1) or None]
        if weights[k][0].shape == w_ih.shape:
            weights[k][0] = np.zeros((w_ih.shape[0], w_ih.shape[1] + 1), w_ih.dtype)
    elif kind == "w_hh shape":
        weights[k][1] = np.zeros((w_hh.shape[0] + data.draw(st.sampled_from([-1, 1, 2])), w_hh.shape[1]),
                                 w_hh.dtype)
    elif kind == "bias shape":
        weights[k][2] = np.zeros((w_hh.shape[0] + 1,), w_hh.dtype)
    elif kind == "None w_ih":
        weights[k][0] = None
    elif kind == "None w_hh":
        weights[k][1] = None
    elif kind == "dtype":
        i = data.draw(st.integers(0, 1), label="which")
        weights[k][i] = with_dtype(weights[k][i], data.draw(st.sampled_from(
            [d for d in BAD_DTYPES + OTHER_FLOATS if not d.startswith("complex")])))
    elif kind == "complex":
        weights[k][1] = with_dtype(w_hh, "complex128")
    elif kind == "strided":
        weights[k][1] = strided(w_hh)
    elif kind == "fortran":
        weights[k][0] = fortran(w_ih)
    elif kind == "byteswapped":
        weights[k][1] = byteswapped(w_hh)
    elif kind == "not a tuple":
        weights[k] = w_ih
        return weights
    return [tuple(w) if isinstance(w, list) else w for w in weights]


# The kinds that crash the interpreter today (heap-buffer-overflow; run in the forked child).
STREAM_CRASH_KINDS = ["short tuple", "1-D w_ih", "1-D w_hh", "w_ih width", "None w_ih", "None w_hh",
                      "not a tuple"]
# The kinds that give an unclear error (a long tuple) or a wrong result (complex weights cast
# to real with a warning).
STREAM_REPORTED_KINDS = ["long tuple", "complex"]


def check_stream_weights(problem, kind, data):
    cell, dtype, B, I, H, weights, xs = problem
    k = data.draw(st.integers(0, len(weights) - 1), label="layer")
    bad = corrupt_weights(weights, kind, k, data)
    before = snapshot(bad)
    stream, error = call(_core.Stream, cell, bad, B, dtype)
    assert_unchanged(before, bad, "weights")
    if error is not None:
        assert_clear_error(error, ["weight", "w_ih", "w_hh", "b_ih", "b_hh", f"[{k}]"],
                           f"Stream weights corrupted by {kind} at layer {k}")
        return
    if kind == "w_ih width" and k == 0:
        # layer 0's w_ih width is the input size: a valid stream of another input size,
        # which must refuse the old x_t clearly
        with pytest.raises(ValueError, match="x_t must be"):
            stream.step(xs[0])
        return
    # accepted: it must compute what the values it was given mean
    clean = [tuple(None if w is None else np.ascontiguousarray(w, dtype) for w in layer) for layer in bad]
    ys = np.stack([stream.step(x_t) for x_t in xs])
    assert_close_scaled(ys, stream_reference(cell, clean, xs), dtype, *TOL[dtype],
                        what=f"stream with weights corrupted by {kind}")


@isolated
@given(stream_problems(),
       st.sampled_from([k for k in WEIGHT_KINDS if k not in STREAM_CRASH_KINDS + STREAM_REPORTED_KINDS]),
       st.data())
def test_core_stream_bad_weights(problem, kind, data):
    check_stream_weights(problem, kind, data)


@isolated
@given(stream_problems(), st.sampled_from(STREAM_CRASH_KINDS), st.data())
def test_core_stream_crashing_weights(problem, kind, data):
    check_stream_weights(problem, kind, data)


@isolated
@given(stream_problems(), st.sampled_from(STREAM_REPORTED_KINDS), st.data())
def test_core_stream_unclear_weights(problem, kind, data):
    check_stream_weights(problem, kind, data)


@isolated
@given(stream_problems(), st.integers(-3, 0), st.sampled_from(["int32", "complex64", "object", "float16"]))
def test_core_stream_bad_batch_size_or_dtype(problem, batch_size, dtype):
    cell, good_dtype, B, I, H, weights, xs = problem
    _, error = call(_core.Stream, cell, weights, batch_size, good_dtype)
    assert_clear_error(error, ["batch_size"], f"batch_size={batch_size}")
    _, error = call(_core.Stream, cell, weights, B, dtype)
    assert_clear_error(error, ["dtype", "float32 or float64"], f"dtype={dtype}")


STEP_KINDS = ["None", "list", "scalar", "dtype", "shape", "ndim", "strided", "fortran", "1-D"]


def check_step(problem, kind, data, corrupter=None):
    cell, dtype, B, I, H, weights, xs = problem
    stream, twin = _core.Stream(cell, weights, B, dtype), _core.Stream(cell, weights, B, dtype)
    stream.step(xs[0])
    twin.step(xs[0])
    x_t = xs[1]
    if corrupter is not None:
        bad = corrupter(x_t)
    elif kind == "1-D":
        bad = x_t[0] if B == 1 else x_t.reshape(-1)
    else:
        bad = corrupt(x_t, kind, None, data)
    before_state = stream.get_state()
    before = snapshot(bad)
    y, error = call(stream.step, bad)
    assert_unchanged(before, bad, "x_t")
    if error is not None:
        assert_clear_error(error, ["x_t"], f"step with x_t corrupted by {kind}")
        assert_equal_bits(stream.get_state(), before_state, "the state after a refused step")
        return
    y_twin = twin.step(np.ascontiguousarray(np.asarray(bad), dtype=dtype))   # the values it was given
    assert_equal_bits(y, y_twin, f"step with x_t corrupted by {kind}")
    assert_equal_bits(stream.get_state(), twin.get_state(), f"state after step with x_t {kind}")


@isolated
@given(stream_problems(), st.sampled_from(STEP_KINDS), st.data())
def test_core_stream_step_bad_x(problem, kind, data):
    check_step(problem, kind, data)


@isolated
@given(stream_problems())
def test_core_stream_step_byteswapped(problem):
    check_step(problem, "byteswapped", None, byteswapped)


@isolated
@given(stream_problems())
def test_core_stream_step_misaligned(problem):
    check_step(problem, "misaligned", None, misaligned)


@pytest.mark.parametrize("which", ["h", "c"])
@isolated
@given(stream_problems(), st.sampled_from(["shape", "dtype", "ndim", "strided", "fortran", "byteswapped"]),
       st.data())
def test_core_stream_set_state(which, problem, kind, data):
    cell, dtype, B, I, H, weights, xs = problem
    stream = _core.Stream(cell, weights, B, dtype)
    L = len(weights)
    rng = np.random.default_rng(0)
    good = {"h": rng.standard_normal((L, B, H)).astype(dtype), "c": rng.standard_normal((L, B, H)).astype(dtype)}
    bad = dict(good)
    bad[which] = corrupt(good[which], kind, None, data)
    before = snapshot(bad)
    stream.step(xs[0])
    state_before = stream.get_state()
    _, error = call(stream.set_state, bad["h"], bad["c"])
    assert_unchanged(before, bad, "state")
    if error is not None:
        assert_clear_error(error, [f"state {which}"], f"set_state {which} corrupted by {kind}")
        assert_equal_bits(stream.get_state(), state_before, "the state after a refused set_state")
        return
    twin = _core.Stream(cell, weights, B, dtype)
    twin.set_state(*(np.asarray(bad[k], dtype) for k in ("h", "c")))   # the values it was given
    assert_equal_bits(stream.get_state(), twin.get_state(), f"state set from a {kind} {which}")

"""What the property-based tests share: running a test in a forked child (so that a crash of
the compiled core fails one test instead of killing the run), snapshots that prove inputs were
not modified, the "clear error" check, and the corruptions applied to an argument.

The property every fuzz test checks, for an entry point and a possibly corrupted argument:
either the call succeeds and its result is right (equal, bit for bit, to the result on a clean
copy of the argument, which the other tests compare with rnnx.reference), or it raises a
ValueError/TypeError whose message names the argument; and in both cases the caller's arrays
are unchanged.
"""
import functools
import os
import signal
import time
import traceback

import numpy as np
import pytest

# Survey mode (tools/fuzz_survey.sh): RNNX_FUZZ_TALLY names a file that gets one line per case
# tried and per failed check ("case", "unclear <what>", "wrong <what>", "modified <what>",
# "crash <test>"), and failed checks are recorded instead of raised, so that every generated
# case is judged (no shrinking) and the counts are of cases, not of tests.
_TALLY = os.environ.get("RNNX_FUZZ_TALLY")


def _record(line):
    if _TALLY:
        with open(_TALLY, "a") as f:
            f.write(line.replace("\n", " ")[:400] + "\n")


def _judged(kind):
    """Decorator of a check: in survey mode a failure is recorded as `kind`, not raised."""
    def wrap(check):
        @functools.wraps(check)
        def run(*args, **kwargs):
            try:
                return check(*args, **kwargs)
            except AssertionError as error:
                if not _TALLY:
                    raise
                _record(f"{kind} {error}")
        return run
    return wrap

# ------------------------------------------------------------------ crash isolation


def isolated(test, timeout=300):
    """Run the test in a forked child process. A child killed by a signal (a segfault, or an
    abort by a sanitizer report) fails the test with the signal's name; an exception in the
    child fails it with the child's traceback. Hypothesis runs (and shrinks) inside the child,
    so the fork is paid once per test, not per example."""
    if not hasattr(os, "fork"):   # pragma: no cover - Windows: in-process
        return test

    @functools.wraps(test)
    def run(*args, **kwargs):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:   # the child: run, report through the pipe, never return to pytest
            code = 0
            try:
                os.close(read_end)
                try:
                    test(*args, **kwargs)
                    message = b""
                except BaseException as error:   # noqa: BLE001 - everything goes to the parent
                    message = (f"{type(error).__name__}: {error}\n\n"
                               + "".join(traceback.format_exception(type(error), error, error.__traceback__))).encode()
                    code = 1
                with os.fdopen(write_end, "wb") as pipe:
                    pipe.write(message)
            finally:
                os._exit(code)
        os.close(write_end)
        chunks = []
        with os.fdopen(read_end, "rb") as pipe:
            deadline = time.monotonic() + timeout
            while True:   # read as we go, so a long report cannot fill the pipe and block
                chunk = pipe.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    break
        status = _wait(pid, deadline)
        report = b"".join(chunks).decode(errors="replace")
        if status is None:
            pytest.fail(f"the test did not finish in {timeout} s (killed)")
        if os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            _record(f"crash {test.__name__} {name}")
            pytest.fail(f"the test crashed the interpreter with {name}" + (f"\n{report}" if report else ""))
        if os.WEXITSTATUS(status) != 0:
            pytest.fail(report or f"the child exited with status {os.WEXITSTATUS(status)}",
                        pytrace=False)

    return run


def _wait(pid, deadline):
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.01)


# ------------------------------------------------------------------ inputs unchanged


def snapshot(obj):
    """A deep, comparable picture of obj: arrays by dtype, shape, strides and bytes."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            return ("object-array", obj.shape, repr(obj.tolist()))
        return ("array", obj.dtype.str, obj.shape, obj.strides, obj.tobytes())
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(snapshot(o) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, snapshot(v)) for k, v in obj.items()))
    return ("other", repr(obj))


@_judged("modified")
def assert_unchanged(before, obj, what):
    assert snapshot(obj) == before, f"{what} was modified by the call"


# ------------------------------------------------------------------ the outcome


CLEAR = (ValueError, TypeError)


class Crashed(Exception):
    """Survey mode: the call crashed a forked child (recorded as a crash, not judged again)."""


def _crashes(fn, args, kwargs):
    """Survey mode: run the call first in a forked child; True (and a recorded crash) if the
    child dies by a signal, so that every crashing case is counted and the survey goes on."""
    pid = os.fork()
    if pid == 0:
        try:
            fn(*args, **kwargs)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        _record(f"crash {getattr(fn, '__qualname__', fn)} {signal.Signals(os.WTERMSIG(status)).name}")
        return True
    return False


@_judged("unclear")
def assert_clear_error(error, names, what):
    """error is a ValueError/TypeError whose message names one of `names`."""
    if isinstance(error, Crashed):
        return
    assert isinstance(error, CLEAR), (
        f"{what}: unclear error {type(error).__name__}: {error}")
    message = str(error)
    assert any(name in message for name in names), (
        f"{what}: the {type(error).__name__} does not name {' or '.join(map(repr, names))}: {message}")


def call(fn, *args, **kwargs):
    """(result, None) or (None, the exception) of fn(*args, **kwargs); warnings are errors, so
    that a silent cast (a ComplexWarning) is seen as what it is."""
    import warnings
    _record("case")
    if _TALLY and hasattr(os, "fork") and _crashes(fn, args, kwargs):
        return None, Crashed()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return fn(*args, **kwargs), None
        except Exception as error:   # noqa: BLE001 - judged by the caller
            return None, error


@_judged("wrong")
def assert_equal_bits(actual, expected, what):
    """Same type, dtype, shape and bits (NaN == NaN): layout must not change the answer."""
    _equal_bits(actual, expected, what)


def _equal_bits(actual, expected, what):
    if expected is None:
        assert actual is None, f"{what}: expected None, got {type(actual).__name__}"
        return
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), (
            f"{what}: expected a sequence of {len(expected)}, got {type(actual).__name__}")
        for k, (a, e) in enumerate(zip(actual, expected)):
            _equal_bits(a, e, f"{what}[{k}]")
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), f"{what}: keys differ"
        for k in expected:
            _equal_bits(actual[k], expected[k], f"{what}[{k!r}]")
        return
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), f"{what}: expected an ndarray, got {type(actual).__name__}"
        assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
        assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
        assert np.array_equal(actual, expected, equal_nan=True), f"{what}: values differ"
        return
    assert actual == expected or (actual != actual and expected != expected), f"{what}: {actual!r} != {expected!r}"


# ------------------------------------------------------------------ corruptions


def misaligned(a):
    """A copy of a whose data pointer is one byte off its dtype's alignment (writable)."""
    a = np.asarray(a)
    buffer = bytearray(a.nbytes + 1)
    out = np.frombuffer(buffer, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert a.dtype.itemsize == 1 or a.size == 0 or not out.flags.aligned
    return out


def byteswapped(a):
    """The same values with the opposite byte order (e.g. >f4 on a little-endian machine)."""
    a = np.asarray(a)
    return a.astype(a.dtype.newbyteorder())


def strided(a):
    """The same values in a non-contiguous view (every other element of a bigger array)."""
    a = np.asarray(a)
    if a.ndim == 0:
        return a
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def fortran(a):
    return np.asfortranarray(a)


# Layout changes: the values stay the same, so a call that accepts them must give the clean
# answer bit for bit.
LAYOUTS = {"misaligned": misaligned, "byteswapped": byteswapped, "strided": strided,
           "fortran": fortran}

# dtype changes that are never acceptable for a float array argument, and ones that may be
# accepted (cast) by the Python API.
BAD_DTYPES = ["complex64", "complex128", "object", "bool", "int32", "int64", "U3"]
OTHER_FLOATS = ["float16", "float32", "float64"]


def with_dtype(a, dtype):
    a = np.asarray(a)
    if dtype == "object":
        return a.astype(object)
    if dtype.startswith("complex"):
        return a.astype(dtype) + 1j
    if dtype == "U3":
        return a.astype("U3")
    return a.astype(dtype)

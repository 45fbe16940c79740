"""The hostile probe's findings (issue 21), as fuzz cases that tools/fuzz_survey.py counts:
saving what is not a model over a good file, a file that cannot be written, loading what is
not a model file (a Trainer checkpoint, a directory, a bytes path), ragged nested lists as x,
integers too large for C at the binding's entries, an unknown activation name, optimizer
and clipping arguments of the wrong kind. The property (tests/fuzzing.py): a right answer or
a ValueError/TypeError naming the argument; a good file is never replaced by a bad one.
"""
import os
import stat

import numpy as np
import pytest
from hypothesis import given, strategies as st

import rnnx
from fuzzing import assert_clear_error, assert_equal_bits, call, isolated
from rnnx import _core


def _model():
    return rnnx.Sequential(rnnx.GRU(2, 3, seed=0), rnnx.Dense(3, 1, seed=1))


class _LooksLikeALayer:
    """Has config() and state_dict(), as rnnx layers do, but is none."""

    def config(self):
        return {"units": 3}

    def state_dict(self):
        return {"w": np.ones(3)}


NOT_MODELS = [None, 3, "model", {"0.weight": np.ones(2)}, np.ones((2, 2)), object(),
              _LooksLikeALayer(), rnnx.Adam({"w": np.ones(2)})]


@pytest.mark.parametrize("extension", [".npz", ".rnnx"])
@isolated
@given(st.sampled_from(NOT_MODELS))
def test_save_of_what_is_not_a_model_keeps_the_good_file(extension, not_a_model):
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "good" + extension)
        model = _model()
        rnnx.save(model, path)
        before = open(path, "rb").read()
        _, error = call(rnnx.save, not_a_model, path)
        assert_clear_error(error, ["model"], f"save({type(not_a_model).__name__})")
        assert_equal_bits(np.frombuffer(open(path, "rb").read(), np.uint8),
                          np.frombuffer(before, np.uint8), "the good file after a refused save")
        assert_equal_bits(sorted(os.listdir(folder)), ["good" + extension], "files left behind")


@pytest.mark.parametrize("extension", [".npz", ".rnnx"])
def test_save_to_a_full_device_raises(extension, tmp_path):
    """/dev/full takes no byte: the save must raise, and the device stay a device."""
    full = "/dev/full"
    if not os.path.exists(full) or not stat.S_ISCHR(os.stat(full).st_mode):
        pytest.skip("no /dev/full here")
    # through a symlink too, named with the extension that picks the format
    link = tmp_path / ("full" + extension)
    os.symlink(full, link)
    for path in (full, str(link)):
        _, error = call(rnnx.save, _model(), path)
        assert_equal_bits(isinstance(error, OSError), True,
                          f"save to {path} raises OSError (got {error!r})")
        assert stat.S_ISCHR(os.stat(full).st_mode), "/dev/full is no longer a device"
        assert_equal_bits(sorted(p.name for p in tmp_path.iterdir()), [link.name],
                          "files left behind")


def test_load_of_a_checkpoint_points_to_from_checkpoint(tmp_path):
    model = _model()
    trainer = rnnx.Trainer(model, "mse", rnnx.Adam(model.parameters()), progress=False)
    trainer.save_checkpoint(tmp_path / "run.ckpt.npz")
    _, error = call(rnnx.load, tmp_path / "run.ckpt.npz")
    assert_clear_error(error, ["Trainer.from_checkpoint"], "load(a Trainer checkpoint)")


@pytest.mark.parametrize("name", ["folder", "folder.npz", "folder.rnnx"])
def test_load_of_a_directory(name, tmp_path):
    (tmp_path / name).mkdir()
    _, error = call(rnnx.load, tmp_path / name)
    assert_clear_error(error, ["directory"], "load(a directory)")


@pytest.mark.parametrize("extension", [".npz", ".rnnx"])
def test_bytes_paths_work_as_str_paths(extension, tmp_path):
    model = _model()
    path = str(tmp_path / ("m" + extension))
    _, error = call(rnnx.save, model, os.fsencode(path))
    assert_equal_bits(error, None, "save(model, bytes path)")
    loaded, error = call(rnnx.load, os.fsencode(path))
    assert_equal_bits(error, None, "load(bytes path)")
    if loaded is not None:
        x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 2, 2)
        assert_equal_bits(loaded(x)[0], model(x)[0], "the model loaded from a bytes path")


@pytest.mark.parametrize("path", [3, None, 2.5, ["m.npz"]])
def test_path_of_the_wrong_type(path):
    for fn, args in ((rnnx.save, (_model(), path)), (rnnx.load, (path,))):
        _, error = call(fn, *args)
        assert_clear_error(error, ["path"], f"{fn.__name__}(path={path!r})")


RAGGED = [[[[1.0, 2.0]], [[1.0]]], [[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0]]], [[1.0, 2.0], [1.0]]]


@pytest.mark.parametrize("x", RAGGED)
@pytest.mark.parametrize("what", ["Sequential", "LSTM", "Dense", "predict"])
def test_ragged_nested_list_as_x(x, what):
    model = _model()
    fn = {"Sequential": model, "LSTM": rnnx.LSTM(2, 3, seed=0), "Dense": rnnx.Dense(2, 1, seed=0),
          "predict": model.predict}[what]
    _, error = call(fn, x)
    assert_clear_error(error, ["x"], f"{what}(ragged x)")


BIG = [2**31, 2**40, 2**63, -2**31 - 1, 10**30]


@isolated
@given(st.sampled_from(BIG), st.integers(0, 3))
def test_core_cache_size_never_wraps(big, where):
    sizes = [_core.LSTM, 5, 3, 7]
    sizes[where] = big
    names = ["cell", "T", "B", "H"]
    result, error = call(_core.cache_size, *sizes)
    if error is None:   # a size that fits must be the exact product, never a wrapped one
        assert_equal_bits(result >= 5 * 3 * 7, True, f"cache_size({sizes}) = {result}")
    else:
        assert_clear_error(error, [names[where]], f"cache_size with {names[where]}={big}")


@isolated
@given(st.sampled_from([2**20, 2**30]), st.sampled_from([2**20, 2**30]))
def test_core_cache_size_of_a_product_too_large(T, B):
    result, error = call(_core.cache_size, _core.LSTM, T, B, 2**30)
    if error is None:
        assert_equal_bits(result >= T * B * 2**30, True, f"cache_size = {result}, wrapped")
    else:
        assert_clear_error(error, ["T", "B", "H"], "cache_size of a product too large")


@isolated
@given(st.sampled_from(BIG))
def test_core_entries_name_an_int_argument_too_large(big):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 2))
    w_ih, w_hh = rng.standard_normal((3, 2)), rng.standard_normal((3, 3))
    cases = [(_core.gate_count, (big,), {}, "cell"),
             (_core.pack_weights, (big, w_hh), {}, "cell"),
             (_core.set_num_threads, (big,), {}, "n"),
             (_core.Stream, (big, [(w_ih, w_hh, None, None)], 1, np.float64), {}, "cell"),
             (_core.Stream, (_core.RNN_TANH, [(w_ih, w_hh, None, None)], big, np.float64), {},
              "batch_size"),
             (_core.Workspace, (big,), {}, "max_caches")]
    for fn, args, kwargs, name in cases:
        _, error = call(fn, *args, **kwargs)
        assert_clear_error(error, [name], f"{getattr(fn, '__name__', fn)}({name}={big})")
    _core.set_num_threads(rnnx.get_num_threads())


@pytest.mark.parametrize("name", ["relu", "Sigmoid", "", "softmax"])
def test_core_unknown_activation_name(name):
    _, error = call(_core.activation, name, np.zeros(3))
    assert_clear_error(error, ["name", "sigmoid"], f"activation({name!r})")


@pytest.mark.parametrize("betas", ["a", "ab", None, (0.9,), (0.9, "x"), (0.9, None), 0.9,
                                   (0.9, 0.999, 0.5), (float("nan"), 0.9)])
def test_adam_betas_of_the_wrong_kind(betas):
    _, error = call(rnnx.Adam, {"w": np.zeros(2)}, betas=betas)
    assert_clear_error(error, ["betas"], f"Adam(betas={betas!r})")


@pytest.mark.parametrize("grads", [[np.ones(3)], (np.ones(3),), np.ones(3), 3.0,
                                   {"a": np.ones(3, np.int64)}, {"a": [1.0, 2.0]},
                                   {"a": np.ones(3, np.int32), "b": np.ones(2)}])
@pytest.mark.parametrize("clip", ["clip_grad_norm", "clip_grad_value"])
def test_clipping_given_what_it_cannot_change_in_place(grads, clip):
    _, error = call(getattr(rnnx, clip), grads, 0.5)
    assert_clear_error(error, ["grads"], f"{clip}({type(grads).__name__})")


def test_clipping_still_clips_float_arrays():
    grads = {"a": np.full(4, 2.0), "b": np.full(3, 2.0, np.float32), "c": None}
    norm = rnnx.clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(np.sqrt(7 * 4.0))
    np.testing.assert_allclose(grads["a"], 2.0 / norm)
    assert grads["b"].dtype == np.float32

"""rnnx.from_keras and rnnx.to_keras against Keras 3 on JAX's CPU backend.

Keras is slow to build and call models on a small machine (seconds each), so the
configurations are few and each covers several features at once."""
import importlib
import os

os.environ["KERAS_BACKEND"] = "jax"      # before keras is imported
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

import rnnx  # noqa: E402


def peer(name):
    """The peer module; in CI a missing peer fails the run instead of skipping the test."""
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(name)


jax = peer("jax")
jax.config.update("jax_enable_x64", True)   # else float64 Keras layers compute in float32
keras = peer("keras")
assert keras.backend.backend() == "jax", "keras was imported with another backend first"

L = keras.layers
# Keras's variables warn on NumPy 2's copy keyword at every get_weights(): not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept")
# float64: XLA's CPU tanh is a rational approximation, off by up to 3.2e-8 in float64
# (measured: jnp.tanh against np.tanh on [-3, 3]), so Keras-on-JAX agrees with rnnx to ~1e-7,
# not to rounding; the dtypes are asserted separately.
TOL = {"float32": 1e-5, "float64": 2e-7}


def randomize(model, seed):
    """Random weights everywhere, biases included (Keras initialises them to zero)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype(w.dtype))
    return model


def x_for(model_input_size, dtype, seed=0, B=3, T=6):
    return np.random.default_rng(seed).standard_normal((B, T, model_input_size)).astype(dtype)


def keras_models(dtype):
    kw = {"dtype": dtype}
    return [
        # stacked Bidirectional LSTM, then a reset-before GRU keeping only its last step
        keras.Sequential([keras.Input((None, 3), dtype=dtype),
                          L.Bidirectional(L.LSTM(4, return_sequences=True, **kw), **kw),
                          L.GRU(5, reset_after=False, **kw),
                          L.Dense(2, activation="sigmoid", **kw)]),
        # relu SimpleRNN without bias, a reset-after Bidirectional GRU, a softmax head per step
        keras.Sequential([keras.Input((None, 2), dtype=dtype),
                          L.SimpleRNN(3, activation="relu", use_bias=False, return_sequences=True,
                                      **kw),
                          L.Bidirectional(L.GRU(4, return_sequences=True, **kw), **kw),
                          L.Dense(3, activation="softmax", **kw)]),
    ]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_models_import_and_export_back(dtype):
    for seed, model in enumerate(keras_models(dtype)):
        randomize(model, seed)
        x = x_for(model.input_shape[-1], dtype, seed)
        want = np.asarray(model(x))
        converted = rnnx.from_keras(model)
        assert isinstance(converted, rnnx.Sequential) and converted.dtype == dtype
        assert converted.batch_first
        y, _ = converted(x)
        assert y.dtype == dtype
        assert_allclose(y, want, rtol=TOL[dtype], atol=TOL[dtype])
        back = rnnx.to_keras(converted)
        assert all(w.dtype == dtype for w in back.weights)
        assert_allclose(np.asarray(back(x)), want, rtol=TOL[dtype], atol=TOL[dtype])
    assert converted.many_to_one is False
    assert rnnx.from_keras(keras_models(dtype)[0]).many_to_one == "state"


def test_single_layers_and_the_gate_mapping():
    x = x_for(3, "float32")
    for layer in [L.LSTM(4, return_sequences=True), L.GRU(4, return_sequences=True),
                  L.SimpleRNN(4, return_sequences=True)]:
        layer.build(x.shape)
        randomize(layer, 1)
        want = np.asarray(layer(x))
        converted = rnnx.from_keras(layer)
        assert converted.batch_first and converted.num_layers == 1
        assert_allclose(converted(x)[0], want, rtol=TOL["float32"], atol=TOL["float32"])
        kernel = layer.get_weights()[0]
        H = 4
        if isinstance(layer, L.GRU):    # Keras z, r, h -> rnnx r, z, n
            assert np.array_equal(converted.state_dict()["weight_ih_l0"][:H], kernel[:, H:2 * H].T)
            assert np.array_equal(converted.state_dict()["bias_hh_l0"][H:2 * H],
                                  layer.get_weights()[2][1, :H])
        else:                            # LSTM i, f, c, o = PyTorch's i, f, g, o
            assert np.array_equal(converted.state_dict()["weight_ih_l0"], kernel.T)
            assert not np.any(converted.state_dict()["bias_hh_l0"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rnnx_models_export_to_keras(dtype):
    # (tanh SimpleRNN is checked in float32 above: Keras 3.15's float64 tanh SimpleRNN fails
    # under JAX, its scan carry comes back float32)
    models = [
        rnnx.Sequential(rnnx.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=dtype, seed=0),
                        rnnx.Dense(8, 2, activation="relu", dtype=dtype, seed=1),
                        many_to_one=True),
        rnnx.Sequential(rnnx.RNN(3, 2, nonlinearity="relu", bidirectional=True, batch_first=True,
                                 dtype=dtype, seed=3),
                        rnnx.GRU(4, 3, num_layers=2, reset_after=False, batch_first=True,
                                 dtype=dtype, seed=4),
                        rnnx.Dense(3, 1, activation="identity", bias=False, dtype=dtype, seed=5)),
    ]
    for model in models:
        x = x_for(3, dtype)      # Keras: batch-first, whatever the rnnx model's layout
        x_rnnx = x if model.batch_first else np.swapaxes(x, 0, 1)
        y, _ = model(x_rnnx)
        if not model.batch_first and y.ndim == 3:
            y = np.swapaxes(y, 0, 1)
        got = np.asarray(rnnx.to_keras(model)(x))
        # rnnx's bias_hh folds into Keras's single bias: one rounding more in float32
        assert_allclose(got, y, rtol=10 * TOL[dtype], atol=10 * TOL[dtype])


def test_mask_semantics_stated_in_the_readme():
    # Keras masks a padded step by carrying the state into its output; rnnx outputs zeros
    # there.  The final states agree.  (Padding at the end here; Keras pads at the front by
    # default, rnnx's lengths count valid steps from t=0.)
    model = keras.Sequential([keras.Input((None, 2), dtype="float64"), L.Masking(0.0),
                              L.GRU(3, return_sequences=True, return_state=False,
                                    dtype="float64")])
    randomize(model, 5)
    x = x_for(2, "float64", B=2, T=5)
    x[1, 3:] = 0.0
    keras_y = np.asarray(model(x))
    layer = rnnx.from_keras(model)
    y, h = layer(x, lengths=np.array([5, 3]))
    assert_allclose(y[:, :3], keras_y[:, :3], rtol=TOL["float64"], atol=TOL["float64"])
    assert not np.any(y[1, 3:])
    assert_allclose(keras_y[1, 3:], np.broadcast_to(keras_y[1, 2], (2, 3)), rtol=TOL["float64"])
    assert_allclose(h[0], keras_y[:, [4, 2]][np.arange(2), np.arange(2)], rtol=TOL["float64"])


def test_a_fully_masked_row_keeps_its_initial_state_as_rnnx_length_zero():
    # rnnx's length 0 (no step: the final state is the initial state) is Keras's fully
    # masked row; and rnnx's go_backwards y is Keras's go_backwards output reversed in time.
    layer = L.LSTM(3, return_sequences=True, return_state=True, dtype="float64")
    x = x_for(2, "float64", B=3, T=4, seed=2)
    layer.build(x.shape)
    randomize(layer, 6)
    rng = np.random.default_rng(3)
    h0, c0 = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    mask = np.ones((3, 4), bool)
    mask[1] = False
    mask[2, 2:] = False
    _, keras_h, keras_c = (np.asarray(v) for v in layer(x, mask=mask, initial_state=[h0, c0]))
    converted = rnnx.from_keras(layer)
    _, (h, c) = converted(x, (h0[None], c0[None]), lengths=np.array([4, 0, 2]))
    assert np.array_equal(h[0, 1], h0[1]) and np.array_equal(c[0, 1], c0[1])
    assert_allclose(h[0], keras_h, rtol=TOL["float64"], atol=TOL["float64"])
    assert_allclose(c[0], keras_c, rtol=TOL["float64"], atol=TOL["float64"])
    backwards = L.GRU(3, return_sequences=True, go_backwards=True, dtype="float64")
    backwards.build(x.shape)
    randomize(backwards, 7)
    forward_twin = L.GRU(3, return_sequences=True, dtype="float64")
    forward_twin.build(x.shape)
    forward_twin.set_weights(backwards.get_weights())
    mine = rnnx.GRU(2, 3, batch_first=True, go_backwards=True, dtype=np.float64)
    mine.load_state_dict(rnnx.from_keras(forward_twin).state_dict())
    assert_allclose(mine(x)[0], np.asarray(backwards(x))[:, ::-1], rtol=TOL["float64"],
                    atol=TOL["float64"])
    with pytest.raises(ValueError, match="go_backwards=True layer is not converted"):
        rnnx.to_keras(mine)


def test_what_rnnx_cannot_express_is_refused():
    def built(layer, size=2):
        layer.build((None, None, size))
        return layer
    with pytest.raises(ValueError, match="stateful=True"):
        layer = L.GRU(2, stateful=True)
        layer.build((3, None, 2))
        rnnx.from_keras(layer)
    with pytest.raises(TypeError, match="float16"):
        rnnx.from_keras(built(L.LSTM(2, dtype="float16", recurrent_initializer="glorot_uniform")))
    with pytest.raises(ValueError, match="go_backwards"):
        rnnx.from_keras(built(L.LSTM(2, go_backwards=True)))
    with pytest.raises(ValueError, match="activation='relu'"):
        rnnx.from_keras(built(L.LSTM(2, activation="relu")))
    with pytest.raises(ValueError, match="recurrent_activation='hard_sigmoid'"):
        rnnx.from_keras(built(L.GRU(2, recurrent_activation="hard_sigmoid")))
    with pytest.raises(ValueError, match="merge_mode='sum'"):
        rnnx.from_keras(built(L.Bidirectional(L.GRU(2, return_sequences=True), merge_mode="sum")))
    with pytest.raises(ValueError, match="return_sequences=False"):
        rnnx.from_keras([built(L.GRU(2)), built(L.GRU(2))])
    with pytest.raises(TypeError, match="Conv1D"):
        rnnx.from_keras(keras.Sequential([keras.Input((None, 2)), L.Conv1D(2, 1)]))
    with pytest.raises(ValueError, match="not built"):
        rnnx.from_keras(L.LSTM(2))
    with pytest.raises(ValueError, match="activation='elu'"):
        rnnx.from_keras(keras.Sequential([keras.Input((2,)), L.Dense(2, activation="elu")]))
    with pytest.raises(TypeError, match="layer_or_model"):
        rnnx.from_keras("LSTM")
    inputs = keras.Input((None, 2))
    branch = keras.Model(inputs, L.Add()([L.GRU(2, return_sequences=True)(inputs), inputs]))
    with pytest.raises(TypeError, match="keras.Sequential"):
        rnnx.from_keras(branch)


def test_readme_converters_section_runs_as_printed(tmp_path, monkeypatch):
    # Every python block of the README's "Converters" section, in a fresh namespace each,
    # from an empty folder (the ONNX snippet writes gru.onnx there).
    import pathlib
    import re
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Converters", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})

"""Stacked, bidirectional, batch_first and unbatched rnnx layers against PyTorch; the
calculus through a whole stack; and the promises of carried state: chunks and streams
equal one whole-sequence call, bit for bit, in float64.
"""
import json

import numpy as np
import pytest
from numpy.testing import assert_allclose

import rnnx
from shared import TORCH_VARIANTS, VARIANTS, assert_close_scaled, central_difference


# rnnx and torch do the same arithmetic in different orders. float64 keeps ~1e-15 per
# operation, far inside 1e-10 after a few layers and steps. float32 (eps 6e-8) loses ~1e-6
# through a 3-layer bidirectional stack; gradients sum over all steps and rows, so they get
# 1e-4 relative. The absolute part is scaled by the largest expected magnitude so that
# small values made by cancellation of large terms are judged against those terms.
TOL = {
    "forward": {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-5, 1e-5)},
    "backward": {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-4, 1e-5)},
}


def assert_close(actual, expected, dtype, what, kind="forward"):
    assert_close_scaled(actual, expected, dtype, *TOL[kind][np.dtype(dtype)], what)


def is_lstm(variant):
    return variant == "lstm"


def state_parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def make_layer(variant, I, H, **kwargs):
    class_name, extra = VARIANTS[variant]
    return getattr(rnnx, class_name)(I, H, **extra, **kwargs)


def random_state(variant, shape, dtype, rng, scale=0.5):
    parts = tuple((scale * rng.standard_normal(shape)).astype(dtype) for _ in range(2 if is_lstm(variant) else 1))
    return parts if is_lstm(variant) else parts[0]


def run_layer(layer, x, state, lengths, dy, dstate):
    y, state_n, cache = layer.forward(x, state, lengths)
    dx, dstate0, grads = layer.backward(cache, dy, dstate)
    return dict(y=y, state=state_parts(state_n), dx=dx, dstate0=state_parts(dstate0), grads=grads)


def run_torch(torch, module, variant, x, state, lengths, dy, dstate, batch_first):
    """Forward and autograd of L = sum(y*dy) + sum(state_n*dstate) through a torch module."""
    tx = torch.tensor(x, requires_grad=True)
    tstate = [torch.tensor(s, requires_grad=True) for s in state_parts(state)]
    tin = tx
    if lengths is not None:
        tin = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first,
                                                      enforce_sorted=False)
    tout, tfinal = module(tin, tuple(tstate) if is_lstm(variant) else tstate[0])
    if lengths is not None:
        T = x.shape[1] if batch_first else x.shape[0]
        tout = torch.nn.utils.rnn.pad_packed_sequence(tout, batch_first=batch_first, total_length=T)[0]
    tfinal = list(tfinal) if is_lstm(variant) else [tfinal]
    loss = (tout * torch.tensor(dy)).sum()
    loss = loss + sum((f * torch.tensor(d)).sum() for f, d in zip(tfinal, state_parts(dstate)))
    loss.backward()
    return dict(y=tout.detach().numpy(), state=[f.detach().numpy() for f in tfinal], dx=tx.grad.numpy(),
                dstate0=[s.grad.numpy() for s in tstate],
                grads={name: p.grad.numpy() for name, p in module.named_parameters()})


def torch_twin(torch, variant, dtype, I, H, **kwargs):
    """A torch module of the same configuration, and an rnnx layer loaded with its weights."""
    class_name, extra = VARIANTS[variant]
    torch_kwargs = {k: v for k, v in extra.items() if k != "reset_after"}
    module = getattr(torch.nn, class_name)(I, H, **torch_kwargs, **kwargs)
    module = module.double() if dtype == np.float64 else module.float()
    layer = make_layer(variant, I, H, dtype=dtype, **kwargs)
    layer.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})
    return module, layer


def compare(ours, theirs, dtype):
    assert_close(ours["y"], theirs["y"], dtype, "y")
    assert len(ours["state"]) == len(theirs["state"])
    for k, (a, b) in enumerate(zip(ours["state"], theirs["state"])):
        assert_close(a, b, dtype, f"state[{k}]")
    assert_close(ours["dx"], theirs["dx"], dtype, "dx", "backward")
    for k, (a, b) in enumerate(zip(ours["dstate0"], theirs["dstate0"])):
        assert_close(a, b, dtype, f"dstate0[{k}]", "backward")
    assert set(ours["grads"]) == set(theirs["grads"])
    for name in theirs["grads"]:
        assert_close(ours["grads"][name], theirs["grads"][name], dtype, f"grads[{name!r}]", "backward")


def make_configs(count=24, seed=2027):
    """A fixed list of seeded random configurations (cells cycle so each gets count/4)."""
    rng = np.random.default_rng(seed)
    configs = []
    for i in range(count):
        T, B = int(rng.integers(1, 8)), int(rng.integers(1, 5))
        configs.append(dict(
            variant=TORCH_VARIANTS[i % 4], num_layers=int(rng.integers(1, 4)),
            bidirectional=bool(rng.integers(2)), batch_first=bool(rng.integers(2)), bias=bool(rng.random() < 0.75),
            dtype=[np.float64, np.float32][int(rng.integers(2))],
            T=T, B=B, I=int(rng.integers(1, 6)), H=int(rng.integers(1, 6)),
            lengths=rng.integers(1, T + 1, size=B).tolist() if rng.random() < 0.5 else None,
            seed=i))
    return configs


CONFIGS = make_configs()


def config_id(c):
    return "{variant}-L{num_layers}-{d}-{bf}-{b}-{dt}-T{T}B{B}I{I}H{H}-{ln}".format(
        **c, d="bi" if c["bidirectional"] else "uni", bf="bf" if c["batch_first"] else "tm",
        b="bias" if c["bias"] else "nobias", dt=np.dtype(c["dtype"]).name,
        ln="lengths" if c["lengths"] is not None else "full")


def test_configs_cover_every_option():
    """Guards the fixed list above: every option takes every value somewhere, per cell."""
    for variant in TORCH_VARIANTS:
        mine = [c for c in CONFIGS if c["variant"] == variant]
        assert {c["bidirectional"] for c in mine} == {True, False}, variant
        assert {np.dtype(c["dtype"]).name for c in mine} == {"float32", "float64"}, variant
        assert {c["lengths"] is None for c in mine} == {True, False}, variant
    for key in ["bidirectional", "batch_first", "bias"]:
        assert {c[key] for c in CONFIGS} == {True, False}, key
    assert {c["num_layers"] for c in CONFIGS} == {1, 2, 3}
    assert {c["lengths"] is None for c in CONFIGS} == {True, False}
    assert any(c["lengths"] is not None and max(c["lengths"]) < c["T"] for c in CONFIGS)


@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_matches_torch(config):
    torch = pytest.importorskip("torch")
    c = config
    torch.manual_seed(c["seed"])
    D = 2 if c["bidirectional"] else 1
    module, layer = torch_twin(torch, c["variant"], c["dtype"], c["I"], c["H"], num_layers=c["num_layers"],
                               bias=c["bias"], batch_first=c["batch_first"], bidirectional=c["bidirectional"])
    rng = np.random.default_rng(c["seed"])
    time_batch = (c["B"], c["T"]) if c["batch_first"] else (c["T"], c["B"])
    x = rng.standard_normal(time_batch + (c["I"],)).astype(c["dtype"])
    state_shape = (c["num_layers"] * D, c["B"], c["H"])
    state = random_state(c["variant"], state_shape, c["dtype"], rng)
    dy = rng.standard_normal(time_batch + (D * c["H"],)).astype(c["dtype"])
    dstate = random_state(c["variant"], state_shape, c["dtype"], rng, scale=1.0)
    lengths = None if c["lengths"] is None else np.array(c["lengths"], dtype=np.int64)

    ours = run_layer(layer, x, state, lengths, dy, dstate)
    theirs = run_torch(torch, module, c["variant"], x, state, lengths, dy, dstate, c["batch_first"])
    compare(ours, theirs, c["dtype"])
    y, state_n = layer(x, state, lengths)   # the inference call gives the training forward's answer
    assert np.array_equal(y, ours["y"])
    for a, b in zip(state_parts(state_n), ours["state"]):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("variant,num_layers,bidirectional", [
    ("lstm", 2, True), ("gru_reset_after", 1, False), ("rnn_relu", 3, False), ("rnn_tanh", 1, True)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_unbatched_input_matches_torch(variant, num_layers, bidirectional, dtype):
    """x (T,I), state (L*D,H): y (T,D*H), state (L*D,H), like PyTorch; and the same numbers
    as the batched call with B=1."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    T, I, H, D = 5, 3, 4, 2 if bidirectional else 1
    module, layer = torch_twin(torch, variant, dtype, I, H, num_layers=num_layers, bidirectional=bidirectional)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, I)).astype(dtype)
    state = random_state(variant, (num_layers * D, H), dtype, rng)
    dy = rng.standard_normal((T, D * H)).astype(dtype)
    dstate = random_state(variant, (num_layers * D, H), dtype, rng)

    ours = run_layer(layer, x, state, None, dy, dstate)
    compare(ours, run_torch(torch, module, variant, x, state, None, dy, dstate, False), dtype)
    batch = lambda s: tuple(p[:, None] for p in s) if isinstance(s, tuple) else s[:, None]
    batched = run_layer(layer, x[:, None], batch(state), None, dy[:, None], batch(dstate))
    assert np.array_equal(ours["y"], batched["y"][:, 0])
    assert np.array_equal(ours["dx"], batched["dx"][:, 0])
    for a, b in zip(ours["state"] + ours["dstate0"], batched["state"] + batched["dstate0"]):
        assert np.array_equal(a, b[:, 0])
    for name, g in batched["grads"].items():
        assert np.array_equal(ours["grads"][name], g), name


# ---------------------------------------------------------------------------------------
# Central finite differences through a 2-layer bidirectional stack with ragged lengths.

@pytest.mark.parametrize("variant", ["lstm", "gru_reset_after", "gru_reset_before"])
def test_stack_gradients_match_finite_differences(variant):
    T, B, I, H, L, D = 4, 3, 2, 2, 2, 2
    layer = make_layer(variant, I, H, num_layers=L, bidirectional=True, dtype=np.float64, seed=0)
    rng = np.random.default_rng(8)
    layer.load_state_dict({k: rng.uniform(-0.8, 0.8, v.shape) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((T, B, I))
    state = random_state(variant, (L * D, B, H), np.float64, rng)
    dy = rng.standard_normal((T, B, D * H))
    dstate = random_state(variant, (L * D, B, H), np.float64, rng, scale=1.0)
    lengths = np.array([4, 1, 3])

    def loss(x_, state_):
        """L = sum(y*dy) + sum(state_n*dstate): backward(cache, dy, dstate) is its gradient."""
        y, state_n, _ = layer.forward(x_, state_, lengths)
        return float(np.sum(y * dy)) + sum(float(np.sum(s * d)) for s, d in zip(state_parts(state_n), state_parts(dstate)))

    def numeric(array, evaluate, eps=1e-6):
        return central_difference(evaluate, array, eps)

    analytic = run_layer(layer, x, state, lengths, dy, dstate)
    # float64 central differences: truncation ~eps^2, rounding ~1e-16 |L| / eps ~ 1e-9
    tol = dict(rtol=1e-6, atol=1e-8)
    x_work = x.copy()
    assert_allclose(analytic["dx"], numeric(x_work, lambda: loss(x_work, state)), **tol, err_msg="dx")
    parts = [p.copy() for p in state_parts(state)]
    as_state = lambda: tuple(parts) if is_lstm(variant) else parts[0]
    for k, part in enumerate(parts):
        assert_allclose(analytic["dstate0"][k], numeric(part, lambda: loss(x, as_state())), **tol,
                        err_msg=f"dstate0[{k}]")
    weights = layer.state_dict()
    assert set(weights) == set(analytic["grads"])
    for name, value in weights.items():
        def evaluate():
            layer.load_state_dict(weights)
            return loss(x, state)
        assert_allclose(analytic["grads"][name], numeric(value, evaluate), **tol, err_msg=name)


# ---------------------------------------------------------------------------------------
# Carried state: chunks and streams equal the whole sequence, bit for bit (float64).

@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("num_layers", [1, 2])
def test_chunks_with_carried_state_equal_one_call(variant, num_layers):
    T, B, I, H = 9, 3, 4, 5
    layer = make_layer(variant, I, H, num_layers=num_layers, dtype=np.float64, seed=4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, B, I))
    state0 = random_state(variant, (num_layers, B, H), np.float64, rng)
    y_whole, state_whole = layer(x, state0)
    for k in [1, 4, 8]:
        y_first, carried = layer(x[:k], state0)
        y_second, state_n = layer(x[k:], carried)
        assert np.array_equal(np.concatenate([y_first, y_second]), y_whole), f"y differs with a cut at {k}"
        for a, b in zip(state_parts(state_n), state_parts(state_whole)):
            assert np.array_equal(a, b), f"final state differs with a cut at {k}"


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("num_layers", [1, 2])
def test_stream_equals_whole_sequence(variant, num_layers):
    T, B, I, H = 7, 3, 4, 5
    layer = make_layer(variant, I, H, num_layers=num_layers, dtype=np.float64, seed=5)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, I))
    y_whole, state_whole = layer(x)

    stream = layer.stream(batch_size=B)
    steps = [stream.step(x[t]) for t in range(T)]
    assert all(s.shape == (B, H) for s in steps)
    assert np.array_equal(np.stack(steps), y_whole)
    for a, b in zip(state_parts(stream.state), state_parts(state_whole)):
        assert np.array_equal(a, b)
    for part in state_parts(stream.state):   # stream.state is a copy: scribbling on it changes nothing
        part[...] = 1e3
    for a, b in zip(state_parts(stream.state), state_parts(state_whole)):
        assert np.array_equal(a, b), "stream.state must return a copy"

    stream.reset()
    again = np.stack([stream.step(x[t]) for t in range(T)])
    assert np.array_equal(again, y_whole), "reset() must restart from zeros"

    state0 = random_state(variant, (num_layers, B, H), np.float64, rng)
    y_from_state, state_from_state = layer(x, state0)
    stream.reset(state0)
    from_state = np.stack([stream.step(x[t]) for t in range(T)])
    assert np.array_equal(from_state, y_from_state), "reset(state) must restart from that state"
    for a, b in zip(state_parts(stream.state), state_parts(state_from_state)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("variant", ["rnn_tanh", "lstm", "gru_reset_after"])
def test_unbatched_stream_and_bidirectional_refusal(variant):
    I, H = 3, 4
    layer = make_layer(variant, I, H, num_layers=2, dtype=np.float64, seed=6)
    x = np.random.default_rng(6).standard_normal((5, 1, I))
    y_whole, _ = layer(x)
    stream = layer.stream()                                      # batch_size=1
    steps = [stream.step(x[t, 0]) for t in range(5)]             # x_t (I,) -> (H,)
    assert all(s.shape == (H,) for s in steps)
    assert np.array_equal(np.stack(steps), y_whole[:, 0])
    with pytest.raises(ValueError):
        make_layer(variant, I, H, bidirectional=True).stream()


# ---------------------------------------------------------------------------------------
# Construction: attributes, parameter names and shapes, init, config round trip.

def expected_shapes(variant, I, H, num_layers, bidirectional, bias):
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[VARIANTS[variant][0]] * H
    D = 2 if bidirectional else 1
    shapes = {}
    for k in range(num_layers):
        for suffix in ["", "_reverse"][:D]:
            shapes[f"weight_ih_l{k}{suffix}"] = (G, I if k == 0 else D * H)
            shapes[f"weight_hh_l{k}{suffix}"] = (G, H)
            if bias:
                shapes[f"bias_ih_l{k}{suffix}"] = (G,)
                shapes[f"bias_hh_l{k}{suffix}"] = (G,)
    return shapes


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_construction_and_config_round_trip(variant, dtype):
    I, H, L = 3, 5, 2
    kwargs = dict(num_layers=L, bias=False, batch_first=True, bidirectional=True, dtype=dtype)
    layer = make_layer(variant, I, H, seed=7, **kwargs)
    assert (layer.input_size, layer.hidden_size, layer.num_layers) == (I, H, L)
    assert (layer.bias, layer.batch_first, layer.bidirectional, layer.num_directions) == (False, True, True, 2)
    assert layer.dtype == np.dtype(dtype) and isinstance(layer.dtype, np.dtype)

    weights = layer.state_dict()
    assert {k: v.shape for k, v in weights.items()} == expected_shapes(variant, I, H, L, True, False)
    assert all(v.dtype == np.dtype(dtype) for v in weights.values())
    assert {k: v.shape for k, v in make_layer(variant, I, H, seed=0).state_dict().items()} == \
        expected_shapes(variant, I, H, 1, False, True)
    bound = 1 / np.sqrt(H)
    for name, v in weights.items():
        assert np.all(np.abs(v) <= bound) and np.std(v) > bound / 4, f"{name} is not uniform(-1/sqrt(H), 1/sqrt(H))"

    same_seed, other_seed = make_layer(variant, I, H, seed=7, **kwargs), make_layer(variant, I, H, seed=8, **kwargs)
    assert all(np.array_equal(v, same_seed.state_dict()[k]) for k, v in weights.items())
    assert not all(np.array_equal(v, other_seed.state_dict()[k]) for k, v in weights.items())

    config = layer.config()
    assert json.loads(json.dumps(config)) == config
    assert config["dtype"] == np.dtype(dtype).name and "seed" not in config
    _, extra = VARIANTS[variant]
    for key, value in {**extra, **kwargs, "input_size": I, "hidden_size": H}.items():
        expected = np.dtype(value).name if key == "dtype" else value
        assert config[key] == expected, key
    rebuilt = type(layer)(**config)
    assert rebuilt.config() == config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in weights.items()}

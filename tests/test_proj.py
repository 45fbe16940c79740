"""LSTM with a projection (PyTorch's proj_size): h_t = W_hr (o * tanh(c_t)).

The C core against PyTorch autograd (outputs, final states and every gradient), against
the NumPy reference on every path, instruction set and thread count, and against float64
finite differences; then the Python layer around it: stacking, bidirectional, lengths,
initial states, streams, chunked and checkpointed BPTT, the trainer, save/load,
from_torch, and the exports that refuse a projection.
"""
import os

import numpy as np
import pytest

import rnnx
from rnnx import _core
from rnnx import reference as ref
from shared import assert_checkpointed_equals_plain, assert_chunks_equal_whole, \
    assert_close_scaled, assert_npz_round_trip, central_difference

ISAS = _core.available_isas()
PATHS = [_core.PATH_AUTO, _core.PATH_BLAS, _core.PATH_NAIVE]
# float64: every path sums the same products in another order, ~1e-16 per operation over
# a few hundred operations.  float32 against a float64 reference of the same float32
# values: sums of up to ~100 O(1) products round to ~1e-5 at worst; 1e-4 still catches a
# wrong or missing term (O(1e-2) or more).
TOL = {np.float64: 1e-10, np.float32: 1e-4}
# (T, B, I, H, P): H and P on, under and past the 8/16-unit panels, B on and off the
# 4-row tiles
SIZES = [(3, 1, 2, 2, 1), (4, 5, 3, 17, 5), (3, 4, 6, 33, 16), (2, 7, 4, 40, 31),
         (3, 20, 5, 16, 15), (2, 3, 3, 9, 8), (2, 13, 2, 70, 33)]


def problem(T, B, I, H, P, dtype, seed, lengths=True):
    """Random inputs, weights and output gradients of one direction of one layer."""
    rng = np.random.default_rng(seed)

    def draw(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    lens = np.sort(rng.integers(1, T + 1, B))[::-1].copy() if lengths and B > 1 else None
    if lens is not None:
        lens[0] = T
        rng.shuffle(lens)
    return dict(x=draw(T, B, I), h0=draw(B, P), c0=draw(B, H), w_ih=draw(4 * H, I, scale=0.4),
                w_hh=draw(4 * H, P, scale=0.4), b_ih=draw(4 * H), b_hh=draw(4 * H),
                w_hr=draw(P, H, scale=0.4), lengths=lens, dy=draw(T, B, P), dh_n=draw(B, P),
                dc_n=draw(B, H))


def run_core(p, reverse, path=_core.PATH_AUTO):
    """Training forward then backward through the binding:
    [y, h_n, c_n, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr]."""
    x, h0, c0 = p["x"], p["h0"], p["c0"]
    T, B, _ = x.shape
    y = np.empty((T, B, h0.shape[1]), x.dtype)
    h_n, c_n = np.empty_like(h0), np.empty_like(c0)
    weights = [p[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")]
    cache = _core.forward(_core.LSTM, x, h0, c0, *weights, p["lengths"], reverse, y, h_n, c_n,
                          True, path, w_hr=p["w_hr"])
    grads = [np.zeros_like(p[k]) for k in ("x", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr")]
    dh0, dc0 = np.empty_like(h0), np.empty_like(c0)
    _core.backward(_core.LSTM, x, p["w_ih"], p["w_hh"], p["lengths"], reverse, cache, p["dy"],
                   p["dh_n"], p["dc_n"], grads[0], dh0, dc0, *grads[1:5], path, w_hr=p["w_hr"],
                   dw_hr=grads[5])
    return [y, h_n, c_n, grads[0], dh0, dc0] + grads[1:]


def run_reference(p, reverse):
    """The same from rnnx/reference.py, in float64."""
    p64 = {k: (None if v is None or k == "lengths" else v.astype(np.float64)) for k, v in p.items()}
    y, (h_n, c_n), cache = ref.forward("lstm", p64["x"], (p64["h0"], p64["c0"]), p64["w_ih"],
                                       p64["w_hh"], p64["b_ih"], p64["b_hh"], p["lengths"],
                                       reverse, w_hr=p64["w_hr"])
    dx, (dh0, dc0), dw = ref.backward("lstm", cache, p64["dy"], (p64["dh_n"], p64["dc_n"]))
    return [y, h_n, c_n, dx, dh0, dc0] + list(dw)


NAMES = ["y", "h_n", "c_n", "dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_hr"]


def assert_all_close(ours, theirs, dtype, what):
    for name, a, b in zip(NAMES, ours, theirs):
        assert_close_scaled(a, b, dtype, TOL[dtype], TOL[dtype], f"{what}: {name}")


# ------------------------------------------------------------------------- the core ---

@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES)
def test_core_matches_the_reference_on_every_isa_and_path(isa, dtype, size, isa_and_threads):
    _core.set_isa(isa)
    _core.set_num_threads(1)
    for reverse in (False, True):
        p = problem(*size, dtype, seed=sum(size) + reverse)
        theirs = run_reference(p, reverse)
        for path in PATHS:
            assert_all_close(run_core(p, reverse, path), theirs, dtype,
                             f"{isa} {size} reverse={reverse} path={path}")


def test_core_rows_past_their_length_ignore_nan_padding():
    """NaN in the padded steps of x reaches no output, state or gradient."""
    p = problem(5, 6, 3, 17, 5, np.float64, seed=1)
    p["lengths"] = np.array([5, 2, 1, 5, 3, 4])
    clean = run_core(p, False)
    for t in range(5):
        p["x"][t, p["lengths"] <= t] = np.nan
    dirty = run_core(p, False)
    for name, a, b in zip(NAMES, clean, dirty):
        if name == "dx":
            a, b = np.nan_to_num(a), np.nan_to_num(b)
        assert np.array_equal(a, b), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_counts_give_bit_identical_results(dtype, isa_and_threads):
    """A step cut into 1, 2 or 3 threads' tasks (B*G*H large enough to be cut) gives the
    same bits: forward outputs, states and every gradient."""
    p = problem(4, 9, 12, 70, 33, dtype, seed=3)
    results = {}
    for n in (1, 2, 3):
        _core.set_num_threads(n)
        results[n] = run_core(p, True)
    for n in (2, 3):
        for name, a, b in zip(NAMES, results[1], results[n]):
            assert np.array_equal(a, b), f"{n} threads changed {name}"


def test_finite_differences_float64():
    """Every gradient of L = sum(y*dy) + sum(h_n*dh_n) + sum(c_n*dc_n) by central
    differences on the C path (not the reference), with lengths and in reverse."""
    p = problem(4, 3, 2, 5, 3, np.float64, seed=11)
    p["lengths"] = np.array([4, 2, 3])
    for reverse in (False, True):
        ours = run_core(p, reverse)

        def loss():
            y, h_n, c_n = run_core(p, reverse)[:3]
            return np.sum(y * p["dy"]) + np.sum(h_n * p["dh_n"]) + np.sum(c_n * p["dc_n"])

        for key, index in [("x", 3), ("h0", 4), ("c0", 5), ("w_ih", 6), ("w_hh", 7),
                           ("b_ih", 8), ("b_hh", 9), ("w_hr", 10)]:
            numeric = central_difference(loss, p[key])
            np.testing.assert_allclose(ours[index], numeric, rtol=1e-6, atol=1e-8,
                                       err_msg=f"d{key}, reverse={reverse}")


def test_core_refuses_bad_projections():
    p = problem(2, 2, 3, 6, 2, np.float64, seed=0, lengths=False)
    x, h0, c0 = p["x"], p["h0"], p["c0"]
    y, h_n, c_n = np.empty((2, 2, 2)), np.empty((2, 2)), np.empty((2, 6))
    weights = [p[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")]
    for w_hr in (np.zeros((6, 6)), np.zeros((7, 6)), np.zeros((0, 6)), np.zeros(6)):
        with pytest.raises(ValueError, match="w_hr must be \\(P, H\\) with 0 < P < H"):
            _core.forward(_core.LSTM, x, h0, c0, *weights, None, False, y, h_n, c_n, False,
                          w_hr=w_hr)
    with pytest.raises(ValueError, match="for an LSTM only"):
        _core.forward(_core.GRU, x, h0, None, np.zeros((18, 3)), np.zeros((18, 2)), None, None,
                      None, False, y, h_n, None, False, w_hr=p["w_hr"])
    with pytest.raises(ValueError, match=r"w_hh must have shape \(24, 2\)"):
        _core.forward(_core.LSTM, x, h0, c0, p["w_ih"], np.zeros((24, 6)), None, None, None,
                      False, y, h_n, c_n, False, w_hr=p["w_hr"])
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 2\)"):
        _core.forward(_core.LSTM, x, np.zeros((2, 6)), c0, *weights, None, False, y, h_n, c_n,
                      False, w_hr=p["w_hr"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_core_packed_weights_give_the_same_bits(dtype):
    """forward with the weights packed once (what a stream does) equals packing per call."""
    p = problem(3, 5, 4, 17, 5, dtype, seed=4)
    expected = run_core(p, False)[:3]
    y, h_n, c_n = (np.empty_like(a) for a in expected)
    packed = _core.pack_weights(_core.LSTM, p["w_hh"], p["w_hr"])
    assert packed.dtype == dtype and packed.ndim == 1
    _core.forward(_core.LSTM, p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"],
                  p["b_hh"], p["lengths"], False, y, h_n, c_n, False, w_hr=p["w_hr"],
                  w_hh_packed=packed, w_ih_t=np.ascontiguousarray(p["w_ih"].T))
    for a, b in zip((y, h_n, c_n), expected):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="w_hh_packed must have shape"):
        _core.forward(_core.LSTM, p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], None, None,
                      None, False, y, h_n, c_n, False, w_hr=p["w_hr"], w_hh_packed=packed[1:])
    with pytest.raises(ValueError, match=r"w_hh must have shape \(68, 5\)"):
        _core.pack_weights(_core.LSTM, p["w_hh"][:, :4], p["w_hr"])
    with pytest.raises(ValueError, match="for an LSTM only"):
        _core.pack_weights(_core.GRU, p["w_hh"], p["w_hr"])


# ---------------------------------------------------------------------- against torch ---

CONFIGS = [  # num_layers, bidirectional, batch_first, lengths, (T, B, I, H, P)
    (1, False, False, False, (5, 3, 4, 17, 5)),
    (2, True, True, True, (4, 5, 3, 9, 4)),
    (2, False, False, True, (6, 2, 5, 33, 16)),
    (1, True, False, False, (3, 1, 2, 2, 1)),
]


def torch_lstm(torch, layer):
    m = torch.nn.LSTM(layer.input_size, layer.hidden_size, layer.num_layers,
                      batch_first=layer.batch_first, bidirectional=layer.bidirectional,
                      proj_size=layer.proj_size,
                      dtype=torch.float64 if layer.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for name, value in layer.state_dict().items():
            getattr(m, name).copy_(torch.from_numpy(value))
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS)
def test_layer_matches_torch_autograd(dtype, config):
    torch = pytest.importorskip("torch")
    L, bi, bf, with_lengths, (T, B, I, H, P) = config
    D = 2 if bi else 1
    layer = rnnx.LSTM(I, H, L, bidirectional=bi, batch_first=bf, proj_size=P, dtype=dtype,
                      seed=sum(config[4]))
    m = torch_lstm(torch, layer)
    rng = np.random.default_rng(L + T)
    x = rng.standard_normal((B, T, I) if bf else (T, B, I)).astype(dtype)
    h0 = rng.standard_normal((L * D, B, P)).astype(dtype)
    c0 = rng.standard_normal((L * D, B, H)).astype(dtype)
    lengths = None
    if with_lengths:
        lengths = rng.integers(1, T + 1, B)
        lengths[0] = T
    y, (h_n, c_n), cache = layer.forward(x, (h0, c0), lengths)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dh_n, dc_n = (rng.standard_normal(s.shape).astype(dtype) for s in (h_n, c_n))
    dx, (dh0, dc0), grads = layer.backward(cache, dy, (dh_n, dc_n))

    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    if lengths is None:
        yt, (hnt, cnt) = m(xt, (h0t, c0t))
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths),
                                                         batch_first=bf, enforce_sorted=False)
        out, (hnt, cnt) = m(packed, (h0t, c0t))
        yt, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=bf, total_length=T)
    loss = (yt * torch.from_numpy(dy)).sum() + (hnt * torch.from_numpy(dh_n)).sum() \
        + (cnt * torch.from_numpy(dc_n)).sum()
    loss.backward()
    tol = 1e-10 if dtype == np.float64 else 2e-5
    pairs = [("y", y, yt), ("h_n", h_n, hnt), ("c_n", c_n, cnt), ("dx", dx, xt.grad),
             ("dh0", dh0, h0t.grad), ("dc0", dc0, c0t.grad)]
    pairs += [(name, grads[name], p.grad) for name, p in m.named_parameters()]
    assert set(grads) == {name for name, _ in m.named_parameters()}
    for name, ours, theirs in pairs:
        assert_close_scaled(ours, theirs.detach().numpy(), dtype, tol, tol, name)


def test_trainer_truncated_bptt_matches_torch_detach():
    """Trainer(bptt=k) on a projected LSTM + Dense: every update's gradients equal
    PyTorch's chunks of k steps with the state detached between them."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    T, B, I, H, P, O, k = 9, 3, 2, 6, 3, 2, 4
    x, target = rng.normal(size=(T, B, I)), rng.normal(size=(T, B, O))
    layer = rnnx.LSTM(I, H, 2, proj_size=P, dtype=np.float64, seed=1)
    model = rnnx.Sequential(layer, rnnx.Dense(P, O, dtype=np.float64, seed=2))
    m = torch_lstm(torch, layer)
    linear = torch.nn.Linear(P, O, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(model[1].state_dict()["weight"]))
        linear.bias.copy_(torch.from_numpy(model[1].state_dict()["bias"]))
    named = {f"0.{n}": p for n, p in m.named_parameters()}
    named.update({f"1.{n}": p for n, p in linear.named_parameters()})
    optimizer = torch.optim.SGD(list(named.values()), lr=0.1)
    expected, state = [], None
    for a in range(0, T, k):
        out, state = m(torch.from_numpy(x[a:a + k]), state)
        loss = torch.nn.functional.mse_loss(linear(out), torch.from_numpy(target[a:a + k]))
        optimizer.zero_grad()
        loss.backward()
        expected.append({n: p.grad.numpy().copy() for n, p in named.items()})
        optimizer.step()
        state = tuple(s.detach() for s in state)
    got = []
    trainer = rnnx.Trainer(model, rnnx.MSELoss(), rnnx.SGD(model.parameters(), lr=0.1), bptt=k)
    trainer.fit(x, target, epochs=1,
                callback=lambda info: got.append({n: v.copy() for n, v in info["grads"].items()}))
    assert len(got) == len(expected) == 3
    for mine, theirs in zip(got, expected):
        assert set(mine) == set(theirs)
        for name in theirs:
            np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-9, atol=1e-11,
                                       err_msg=name)


# ------------------------------------------------------------------------ the layer ---

def make_layer(dtype=np.float64, **kwargs):
    options = dict(num_layers=2, bidirectional=True, proj_size=3, dtype=dtype, seed=4)
    options.update(kwargs)
    return rnnx.LSTM(4, 7, **options)


def test_layer_shapes_names_and_config():
    layer = make_layer()
    shapes = layer._param_shapes()
    assert shapes["weight_ih_l0"] == (28, 4) and shapes["weight_hh_l0"] == (28, 3)
    assert shapes["weight_ih_l1_reverse"] == (28, 6) and shapes["weight_hr_l1_reverse"] == (3, 7)
    assert list(shapes)[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                "weight_hr_l0"]
    assert layer.output_size == 6 and layer.config()["proj_size"] == 3
    y, (h, c) = layer(np.zeros((5, 2, 4)))
    assert y.shape == (5, 2, 6) and h.shape == (4, 2, 3) and c.shape == (4, 2, 7)
    h, c = layer.zero_state(3)
    assert h.shape == (4, 3, 3) and c.shape == (4, 3, 7)
    y, (h, c) = layer(np.zeros((5, 4)))  # unbatched
    assert y.shape == (5, 6) and h.shape == (4, 3) and c.shape == (4, 7)
    assert rnnx.LSTM(4, 7, bias=False, proj_size=2).state_dict().keys() == {
        "weight_ih_l0", "weight_hh_l0", "weight_hr_l0"}


def test_layer_matches_the_reference_stack():
    """A two-layer bidirectional stack with lengths, direction by direction through
    reference.py (layer 1 takes the D*P wide output of layer 0)."""
    layer = make_layer()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 4))
    lengths = np.array([6, 2, 4])
    h0, c0 = rng.standard_normal((4, 3, 3)), rng.standard_normal((4, 3, 7))
    y, (h_n, c_n) = layer(x, (h0, c0), lengths)
    inputs = x
    for k in range(2):
        outs = []
        for d in range(2):
            w_ih, w_hh, b_ih, b_hh = layer._weights(k, d)
            yr, (hr, cr), _ = ref.forward("lstm", inputs, (h0[2 * k + d], c0[2 * k + d]), w_ih,
                                          w_hh, b_ih, b_hh, lengths, d == 1,
                                          w_hr=layer._cell_options(k, d)["w_hr"])
            np.testing.assert_allclose(h_n[2 * k + d], hr, rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(c_n[2 * k + d], cr, rtol=1e-12, atol=1e-13)
            outs.append(yr)
        inputs = np.concatenate(outs, axis=2)
    np.testing.assert_allclose(y, inputs, rtol=1e-12, atol=1e-13)


def test_layer_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"proj_size must lie in \[0, hidden_size\) = \[0, 7\)"):
        rnnx.LSTM(4, 7, proj_size=7)
    with pytest.raises(ValueError, match="proj_size must lie"):
        rnnx.LSTM(4, 7, proj_size=-1)
    with pytest.raises(TypeError, match="proj_size must be an int"):
        rnnx.LSTM(4, 7, proj_size=2.0)
    with pytest.raises(TypeError, match="proj_size"):
        rnnx.GRU(4, 7, proj_size=2)
    layer = make_layer()
    before = layer.state_dict()
    bad = layer.state_dict()
    bad["weight_hr_l0"] = np.zeros((3, 6))
    with pytest.raises(ValueError, match=r"weight_hr_l0.*must have shape \(3, 7\), got \(3, 6\)"):
        layer.load_state_dict(bad)
    bad = layer.state_dict()
    bad["weight_hh_l0"] = np.zeros((28, 7))   # the shape without a projection
    with pytest.raises(ValueError, match=r"weight_hh_l0.*must have shape \(28, 3\)"):
        layer.load_state_dict(bad)
    for name, value in layer.state_dict().items():
        assert np.array_equal(value, before[name])   # a refused load changed nothing
    x = np.zeros((5, 2, 4))
    with pytest.raises(ValueError, match=r"state\[0\] \(h\) must have shape \(4, 2, 3\), got \(4, 2, 7\)"):
        layer(x, (np.zeros((4, 2, 7)), np.zeros((4, 2, 7))))
    with pytest.raises(ValueError, match=r"state\[1\] \(c\) must have shape \(4, 2, 7\), got \(4, 2, 3\)"):
        layer(x, (np.zeros((4, 2, 3)), np.zeros((4, 2, 3))))
    _, _, cache = layer.forward(x)
    with pytest.raises(ValueError, match=r"dy must have the shape of y, \(5, 2, 6\)"):
        layer.backward(cache, np.zeros((5, 2, 14)))


def test_chunked_forward_with_carried_state_equals_whole_float64():
    assert_chunks_equal_whole(make_layer(bidirectional=False),
                              np.random.default_rng(3).standard_normal((11, 2, 4)), 4)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_checkpointed_bptt_equals_plain_bptt_float64(bidirectional):
    layer = make_layer(bidirectional=bidirectional)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((9, 3, 4))
    lengths = np.array([9, 3, 6])
    y, state = layer(x, lengths=lengths)
    dy = rng.standard_normal(y.shape)
    dstate = tuple(rng.standard_normal(s.shape) for s in state)
    assert_checkpointed_equals_plain(layer, x, None, lengths, dy, dstate)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_equals_the_whole_sequence(dtype):
    layer = make_layer(dtype, bidirectional=False)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((7, 2, 4)).astype(dtype)
    state = (rng.standard_normal((2, 2, 3)).astype(dtype),
             rng.standard_normal((2, 2, 7)).astype(dtype))
    y, (h_n, c_n) = layer(x, state)
    stream = layer.stream(batch_size=2, state=state)
    ys = np.stack([stream.step(x[t]) for t in range(7)])
    assert ys.shape == (7, 2, 3)
    assert np.array_equal(ys, y)       # one step's rows are computed as in the whole run
    assert np.array_equal(stream.state[0], h_n) and np.array_equal(stream.state[1], c_n)
    stream.reset(state)
    assert np.array_equal(stream.run(x[:3]), y[:3])
    assert np.array_equal(stream.run(x[3:]), y[3:])
    one = layer.stream(batch_size=1)
    assert one.step(x[0, 0]).shape == (3,)
    with pytest.raises(ValueError, match=r"x_t must be \(1, 4\) or \(4,\)"):
        one.step(np.zeros(5, dtype))
    with pytest.raises(ValueError, match=r"state\[0\] \(h\) must have shape \(2, 1, 3\)"):
        one.reset((np.zeros((2, 1, 7), dtype), np.zeros((2, 1, 7), dtype)))


def test_dropout_between_projected_layers_uses_the_mask():
    """Dropout on the P wide output of layer 0: the stack equals its two layers run one
    after the other with the forward's mask between them, forward and backward."""
    layer = make_layer(bidirectional=False, dropout=0.5)
    x = np.random.default_rng(9).standard_normal((4, 2, 4))
    y, _, cache = layer.forward(x)
    dy = np.random.default_rng(10).standard_normal(y.shape)
    dx, _, grads = layer.backward(cache, dy)
    mask = cache.data["masks"][0]
    assert mask.shape == (4, 2, 3) and set(np.unique(mask)) == {0.0, 2.0}
    parts = []
    for k, inputs in ((0, 4), (1, 3)):
        part = rnnx.LSTM(inputs, 7, proj_size=3, dtype=np.float64)
        part.load_state_dict({n.replace(f"_l{k}", "_l0"): v for n, v in layer.state_dict().items()
                              if f"_l{k}" in n})
        parts.append(part)
    y0, _, cache0 = parts[0].forward(x)
    y1, _, cache1 = parts[1].forward(y0 * mask)
    assert np.array_equal(y1, y)
    dx1, _, grads1 = parts[1].backward(cache1, dy)
    dx0, _, grads0 = parts[0].backward(cache0, dx1 * mask)
    assert np.array_equal(dx0, dx)
    for k, part_grads in ((0, grads0), (1, grads1)):
        for name, value in part_grads.items():
            assert np.array_equal(grads[name.replace("_l0", f"_l{k}")], value), name


# ----------------------------------------------------------------- files and interop ---

def test_save_load_round_trip(tmp_path):
    layer = make_layer()
    model = rnnx.Sequential(layer, rnnx.Dense(6, 2, dtype=np.float64, seed=1), many_to_one=True)
    x = np.random.default_rng(1).standard_normal((5, 2, 4))
    assert assert_npz_round_trip(model, tmp_path, x, np.array([5, 3]))[0].proj_size == 3
    # the .rnnx format holds a projection since its version 3 (the C library runs it)
    rnnx.save(model, os.fspath(tmp_path / "model.rnnx"))
    assert (tmp_path / "model.rnnx").read_bytes()[8] == 3
    loaded = rnnx.load(tmp_path / "model.rnnx")
    assert loaded.layers[0].proj_size == 3
    np.testing.assert_array_equal(loaded(x, lengths=[5, 3])[0], model(x, lengths=[5, 3])[0])


def test_exports_refuse_a_projection(tmp_path):
    layer = make_layer(np.float32)
    with pytest.raises(ValueError, match="proj_size=3: ONNX"):
        rnnx.to_onnx(layer, os.fspath(tmp_path / "m.onnx"))
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(ValueError, match="proj_size=3: Keras"):
        rnnx.to_keras(layer)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_torch_loads_a_projected_lstm(dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    net = torch.nn.Sequential(torch.nn.LSTM(4, 10, 2, proj_size=3, bidirectional=True,
                                            batch_first=True, dtype=tdtype))
    head = torch.nn.Linear(6, 2, dtype=tdtype)
    model = rnnx.from_torch([net[0], head])
    assert model[0].proj_size == 3 and model[0].dtype == dtype
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(dtype)
    with torch.no_grad():
        yt = head(net[0](torch.from_numpy(x))[0]).numpy()
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(model(x)[0], yt, rtol=tol, atol=tol)

"""Rows of length 0: legal everywhere lengths are, and they run no step.

Semantics (README, "Variable-length batches"): a row of length 0 outputs 0 at every step,
its final state is its initial state (zeros when none is given), the gradient of its final
state passes to its initial state untouched, and nothing reaches the weights or x from it.
Checked for every cell, float32/float64, bidirectional and stacked, against the NumPy
reference (outputs, final states, every gradient), float64 central differences, PyTorch
(on the other rows: torch's pack_padded_sequence refuses a length 0), and through the
Sequential, Trainer and checkpointed paths.
"""
import numpy as np
import pytest

import rnnx
from rnnx import _core
from rnnx import reference as ref
from shared import TORCH_VARIANTS, VARIANTS, assert_close_scaled, central_difference

TOL = {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-5, 1e-5)}
T, B, I, H = 5, 5, 3, 4
LENGTHS = np.array([0, 5, 2, 0, 1])
ZERO = LENGTHS == 0


def make_layer(variant, dtype, num_layers=1, bidirectional=False, seed=0, **kwargs):
    cls, extra = VARIANTS[variant]
    layer = getattr(rnnx, cls)(I, H, num_layers=num_layers, bidirectional=bidirectional,
                               dtype=dtype, seed=seed, **extra, **kwargs)
    rng = np.random.default_rng(seed + 7)
    layer.load_state_dict({k: rng.uniform(-0.8, 0.8, v.shape).astype(dtype)
                           for k, v in layer.state_dict().items()})
    return layer


def parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def pack(layer, arrays):
    return tuple(arrays) if len(layer.state_names) == 2 else arrays[0]


def inputs(layer, dtype, seed=1, batch=B):
    """x, initial state, dy, dstate (non-zero everywhere, the zero rows' too)."""
    rng = np.random.default_rng(seed)
    LD = layer.num_layers * layer.num_directions
    x = rng.standard_normal((T, batch, I)).astype(dtype)
    state = pack(layer, [rng.standard_normal((LD, batch, H)).astype(dtype)
                         for _ in layer.state_names])
    dy = rng.standard_normal((T, batch, layer.output_size)).astype(dtype)
    dstate = pack(layer, [rng.standard_normal((LD, batch, H)).astype(dtype)
                          for _ in layer.state_names])
    return x, state, dy, dstate


def reference_stack(layer, x, state, lengths, dy, dstate):
    """The stack in float64 from rnnx.reference, layer by layer, direction by direction:
    y, final state parts, dx, initial-state gradient parts, grads."""
    f64 = lambda a: np.asarray(a, np.float64)
    params = {k: f64(v) for k, v in layer.state_dict().items()}
    D, L = layer.num_directions, layer.num_layers
    state, dstate = [f64(s) for s in parts(state)], [f64(s) for s in parts(dstate)]
    final = [np.zeros_like(s) for s in state]
    dinit = [np.zeros_like(s) for s in state]
    caches, inputs_, h = [], [], f64(x)
    for k in range(L):
        ys = []
        for d in range(D):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            w = [params.get(f"{n}{suffix}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            y, fin, cache = ref.forward(layer.cell_name, h, tuple(s[k * D + d] for s in state),
                                        *w, lengths=lengths, reverse=d == 1)
            for s, f in zip(final, fin):
                s[k * D + d] = f
            ys.append(y)
            caches.append(cache)
        inputs_.append(h)
        h = np.concatenate(ys, axis=2)
    grads = {}
    g = f64(dy)
    for k in reversed(range(L)):
        dx = np.zeros_like(inputs_[k])
        for d in range(D):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            dx_d, d0, dw = ref.backward(layer.cell_name, caches[k * D + d], g[:, :, d * H:(d + 1) * H],
                                        tuple(s[k * D + d] for s in dstate))
            dx += dx_d
            for s, v in zip(dinit, d0):
                s[k * D + d] = v
            for n, v in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), dw):
                if v is not None:
                    grads[f"{n}{suffix}"] = v
        g = dx
    return h, final, g, dinit, grads


def close(actual, expected, dtype, what):
    assert_close_scaled(actual, expected, dtype, *TOL[np.dtype(dtype)], what)


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (1, True), (2, False), (2, True)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_zero_rows_match_reference_and_carry_the_state(variant, dtype, num_layers, bidirectional):
    layer = make_layer(variant, dtype, num_layers, bidirectional)
    x, state, dy, dstate = inputs(layer, dtype)
    y, final, cache = layer.forward(x, state, LENGTHS)
    dx, dinit, grads = layer.backward(cache, dy, dstate)
    y_ref, final_ref, dx_ref, dinit_ref, grads_ref = reference_stack(layer, x, state, LENGTHS, dy,
                                                                     dstate)
    close(y, y_ref, dtype, "y")
    close(dx, dx_ref, dtype, "dx")
    for k, (a, b) in enumerate(zip(parts(final), final_ref)):
        close(a, b, dtype, f"final[{k}]")
    for k, (a, b) in enumerate(zip(parts(dinit), dinit_ref)):
        close(a, b, dtype, f"dinit[{k}]")
    assert set(grads) == set(grads_ref)
    for name in grads:
        close(grads[name], grads_ref[name], dtype, name)
    # the semantics, exactly: no step ran on the zero rows
    assert not y[:, ZERO].any() and not dx[:, ZERO].any()
    for ours, init in zip(parts(final), parts(state)):
        assert np.array_equal(ours[:, ZERO], init[:, ZERO])
    for ours, given in zip(parts(dinit), parts(dstate)):
        assert np.array_equal(ours[:, ZERO], given[:, ZERO])
    # inference equals the training forward
    y_inf, final_inf = layer(x, state, LENGTHS)
    assert np.array_equal(y_inf, y)
    for a, b in zip(parts(final_inf), parts(final)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_zero_rows_send_nothing_to_the_weights(variant):
    """The gradients with the zero rows in the batch equal those without them."""
    layer = make_layer(variant, np.float64, 2, True)
    x, state, dy, dstate = inputs(layer, np.float64)
    _, _, cache = layer.forward(x, state, LENGTHS)
    _, _, grads = layer.backward(cache, dy, dstate)
    keep = ~ZERO
    sub = lambda s: pack(layer, [p[:, keep] for p in parts(s)])
    _, _, cache = layer.forward(x[:, keep], sub(state), LENGTHS[keep])
    dx_sub, _, grads_sub = layer.backward(cache, dy[:, keep], sub(dstate))
    for name in grads:
        np.testing.assert_allclose(grads[name], grads_sub[name], rtol=1e-12, atol=1e-13,
                                   err_msg=name)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_zero_rows_gradients_match_finite_differences(variant):
    layer = make_layer(variant, np.float64, 2, True, seed=3)
    x, state, dy, dstate = inputs(layer, np.float64, seed=4)
    lengths = np.array([0, 5, 3, 0, 1])

    def loss():
        y, final = layer(x, state, lengths)
        return float(np.sum(y * dy) + sum(np.sum(f * d) for f, d in zip(parts(final), parts(dstate))))

    _, _, cache = layer.forward(x, state, lengths)
    dx, dinit, grads = layer.backward(cache, dy, dstate)
    # float64 central differences: truncation ~eps^2, rounding ~1e-16 |L| / eps ~ 1e-9
    np.testing.assert_allclose(dx, central_difference(loss, x), rtol=1e-6, atol=1e-7)
    for k, s in enumerate(parts(state)):
        np.testing.assert_allclose(parts(dinit)[k], central_difference(loss, s), rtol=1e-6,
                                   atol=1e-7, err_msg=f"dinit[{k}]")
    params = layer.parameters()
    for name in ("weight_ih_l0", "weight_hh_l1_reverse", "bias_hh_l0_reverse", "weight_ih_l1"):
        np.testing.assert_allclose(grads[name], central_difference(loss, params[name]), rtol=1e-6,
                                   atol=1e-7, err_msg=name)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("variant", TORCH_VARIANTS)
def test_other_rows_match_torch(variant, bidirectional):
    """torch's pack_padded_sequence refuses a length 0, so torch runs the batch without the
    zero rows; rnnx's other rows and its weight gradients must equal torch's."""
    torch = pytest.importorskip("torch")
    cls, extra = VARIANTS[variant]
    module = getattr(torch.nn, cls)(I, H, num_layers=2, bidirectional=bidirectional,
                                    **{k: v for k, v in extra.items() if k != "reset_after"})
    module = module.double()
    layer = make_layer(variant, np.float64, 2, bidirectional)
    layer.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})
    x, state, dy, dstate = inputs(layer, np.float64)
    y, final, cache = layer.forward(x, state, LENGTHS)
    dx, dinit, grads = layer.backward(cache, dy, dstate)

    keep = ~ZERO
    tx = torch.tensor(x[:, keep], requires_grad=True)
    tstate = [torch.tensor(s[:, keep], requires_grad=True) for s in parts(state)]
    packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(LENGTHS[keep]),
                                                     enforce_sorted=False)
    tout, tfinal = module(packed, tuple(tstate) if len(tstate) == 2 else tstate[0])
    tout = torch.nn.utils.rnn.pad_packed_sequence(tout, total_length=T)[0]
    tfinal = list(tfinal) if len(tstate) == 2 else [tfinal]
    loss = (tout * torch.tensor(dy[:, keep])).sum() + sum(
        (f * torch.tensor(d[:, keep])).sum() for f, d in zip(tfinal, parts(dstate)))
    loss.backward()
    opts = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y[:, keep], tout.detach().numpy(), **opts)
    np.testing.assert_allclose(dx[:, keep], tx.grad.numpy(), **opts)
    for ours, theirs, grad, tgrad in zip(parts(final), tfinal, parts(dinit), tstate):
        np.testing.assert_allclose(ours[:, keep], theirs.detach().numpy(), **opts)
        np.testing.assert_allclose(grad[:, keep], tgrad.grad.numpy(), **opts)
    for name, p in module.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), **opts, err_msg=name)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_row_of_length_zero(variant):
    layer = make_layer(variant, np.float32, 2, True)
    x, state, dy, dstate = inputs(layer, np.float32)
    zeros = np.zeros(B, np.int64)
    y, final, cache = layer.forward(x, state, zeros)
    dx, dinit, grads = layer.backward(cache, dy, dstate)
    assert not y.any() and not dx.any()
    assert all(not g.any() for g in grads.values())
    for a, b in zip(parts(final), parts(state)):
        assert np.array_equal(a, b)
    for a, b in zip(parts(dinit), parts(dstate)):
        assert np.array_equal(a, b)
    y, final = layer(x, None, zeros)           # no initial state: zeros
    assert not y.any() and not any(f.any() for f in parts(final))


def test_binding_and_reference_take_zero_and_refuse_the_rest():
    layer = make_layer("lstm", np.float64)
    x, state, _, _ = inputs(layer, np.float64)
    w = layer._weights(0, 0)
    h0, c0 = state[0][0], state[1][0]
    y, h_n, c_n = np.empty((T, B, H)), np.empty((B, H)), np.empty((B, H))
    _core.forward(_core.LSTM, x, h0, c0, *w, LENGTHS, False, y, h_n, c_n, False)
    y_ref, h_ref, c_ref, _ = ref.lstm_forward(x, h0, c0, *w, lengths=LENGTHS)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-14)
    assert np.array_equal(h_n[ZERO], h0[ZERO]) and np.array_equal(c_n[ZERO], c0[ZERO])
    for bad in ([-1, 5, 2, 0, 1], [0, 6, 2, 0, 1], [0, 5, 2, 0, -2**40]):
        bad = np.array(bad, np.int64)
        with pytest.raises(ValueError, match=r"lengths must lie in \[0, 5\]"):
            _core.forward(_core.LSTM, x, h0, c0, *w, bad, False, y, h_n, c_n, False)
        with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=5\]"):
            ref.lstm_forward(x, h0, c0, *w, lengths=bad)
        with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=5\]"):
            layer(x, state, bad)
        with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=5\]"):
            layer.forward(x, state, bad)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_many_to_one_head_reads_zeros_for_a_zero_row(bidirectional):
    """A Sequential's last-step pooling has no step to read for a length-0 row: the head
    sees zeros (the row's output), so it gives its activation of the bias; gradients match
    finite differences and the zero row sends nothing to the recurrent weights."""
    f64 = np.float64
    rec = make_layer("gru_reset_after", f64, 1, bidirectional)
    model = rnnx.Sequential(rec, rnnx.Dense(rec.output_size, 2, activation="tanh", dtype=f64, seed=1),
                            many_to_one=True)
    x, _, _, _ = inputs(rec, f64)
    y, _ = model(x, lengths=LENGTHS)
    bias = model.layers[1].parameters()["bias"]
    np.testing.assert_array_equal(y[ZERO], np.tile(np.tanh(bias), (ZERO.sum(), 1)))
    dy = np.random.default_rng(5).standard_normal(y.shape)
    _, _, cache = model.forward(x, lengths=LENGTHS)
    dx, _, grads = model.backward(cache, dy)
    assert not dx[:, ZERO].any()

    def loss():
        return float(np.sum(model(x, lengths=LENGTHS)[0] * dy))
    params = model.parameters()
    np.testing.assert_allclose(dx, central_difference(loss, x), rtol=1e-6, atol=1e-7)
    for name in ("0.weight_hh_l0", "1.weight", "1.bias"):
        np.testing.assert_allclose(grads[name], central_difference(loss, params[name]),
                                   rtol=1e-6, atol=1e-7, err_msg=name)


def test_checkpointed_forward_takes_zero_rows():
    layer = make_layer("lstm", np.float64, 2, True)
    x, state, dy, dstate = inputs(layer, np.float64)
    y, final, cache = layer.forward(x, state, LENGTHS)
    expected = layer.backward(cache, dy, dstate)
    y_c, final_c, cache_c = layer.forward(x, state, LENGTHS, checkpoint=2)
    got = layer.backward(cache_c, dy, dstate)
    np.testing.assert_allclose(y_c, y, rtol=1e-12, atol=1e-14)
    for a, b in zip(parts(final_c), parts(final)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12, atol=1e-14)
    for a, b in zip(parts(got[1]), parts(expected[1])):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for name in expected[2]:
        np.testing.assert_allclose(got[2][name], expected[2][name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bptt", [None, (2, 2)])
def test_trainer_with_zero_rows_equals_training_without_them(bptt):
    """A zero row carries no loss and no gradient: training on the batch with it equals
    training on the batch without it (MSE mean over the positions that count)."""
    rng = np.random.default_rng(11)
    f64 = np.float64
    x, y = rng.normal(size=(6, 4, 2)), rng.normal(size=(6, 4, 1))
    lengths = np.array([6, 0, 3, 0])

    def train(xs, ys, lens):
        model = rnnx.Sequential(rnnx.LSTM(2, 3, num_layers=2, dtype=f64, seed=0),
                                rnnx.Dense(3, 1, dtype=f64, seed=1))
        trainer = rnnx.Trainer(model, "mse", rnnx.SGD(model.parameters(), lr=0.1), bptt=bptt)
        history = trainer.fit(xs, ys, lengths=lens, epochs=2, shuffle=False)
        return history["step_loss"], model.state_dict()

    loss_all, params_all = train(x, y, lengths)
    keep = lengths > 0
    loss_sub, params_sub = train(x[:, keep], y[:, keep], lengths[keep])
    np.testing.assert_allclose(loss_all, loss_sub, rtol=1e-12)
    for name, value in params_all.items():
        np.testing.assert_allclose(value, params_sub[name], rtol=1e-12, atol=1e-14, err_msg=name)
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=6\]"):
        train(x, y, np.array([6, -1, 3, 0]))

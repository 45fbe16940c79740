"""go_backwards=True: a layer that runs the reverse direction only.

It must equal the reverse half of a bidirectional layer with the same weights (outputs,
final states, every gradient), the NumPy reference run with reverse=True, float64 central
differences, and PyTorch's bidirectional module's reverse half; and it must save, load,
checkpoint and pool (many_to_one at t = 0) like that half.
"""
import numpy as np
import pytest

import rnnx
from rnnx import reference as ref
from shared import TORCH_VARIANTS, VARIANTS, central_difference

T, B, I, H = 6, 4, 3, 5
LENGTHS = np.array([6, 0, 3, 1])


def make(variant, dtype=np.float64, **kwargs):
    cls, extra = VARIANTS[variant]
    return getattr(rnnx, cls)(I, H, dtype=dtype, seed=1, **extra, **kwargs)


def parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def pack(layer, arrays):
    return tuple(arrays) if len(layer.state_names) == 2 else arrays[0]


def data(layer, dtype, seed=0):
    rng = np.random.default_rng(seed)
    L = layer.num_layers
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state = pack(layer, [rng.standard_normal((L, B, H)).astype(dtype) for _ in layer.state_names])
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    dstate = pack(layer, [rng.standard_normal((L, B, H)).astype(dtype) for _ in layer.state_names])
    return x, state, dy, dstate


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_equals_the_reverse_half_of_a_bidirectional_layer(variant, dtype):
    layer = make(variant, dtype, num_layers=1, go_backwards=True)
    both = make(variant, dtype, num_layers=1, bidirectional=True)
    both.load_state_dict({**both.state_dict(),
                          **{k + "_reverse": v for k, v in layer.state_dict().items()}})
    x, state, dy, dstate = data(layer, dtype)
    y, final, cache = layer.forward(x, state, LENGTHS)
    dx, dinit, grads = layer.backward(cache, dy, dstate)
    # the bidirectional layer with zero dy and dstate on its forward half
    state2 = pack(both, [np.concatenate([np.zeros_like(s), s]) for s in parts(state)])
    dstate2 = pack(both, [np.concatenate([np.zeros_like(s), s]) for s in parts(dstate)])
    dy2 = np.concatenate([np.zeros_like(dy), dy], axis=2)
    y2, final2, cache2 = both.forward(x, state2, LENGTHS)
    _, dinit2, grads2 = both.backward(cache2, dy2, dstate2)
    assert np.array_equal(y, y2[:, :, H:])
    for a, b in zip(parts(final), parts(final2)):
        assert np.array_equal(a[0], b[1])
    for a, b in zip(parts(dinit), parts(dinit2)):
        assert np.array_equal(a[0], b[1])
    for name, g in grads.items():
        assert np.array_equal(g, grads2[name + "_reverse"]), name
    # and the reference, reverse=True
    y_ref, final_ref, c = ref.forward(layer.cell_name, x, tuple(s[0] for s in parts(state)),
                                      *layer._weights(0, 0), lengths=LENGTHS, reverse=True)
    dx_ref, dinit_ref, dw_ref = ref.backward(layer.cell_name, c, dy, tuple(s[0] for s in parts(dstate)))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y, y_ref, **tol)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    for a, b in zip(parts(final), final_ref):
        np.testing.assert_allclose(a[0], b, **tol)
    for a, b in zip(parts(dinit), dinit_ref):
        np.testing.assert_allclose(a[0], b, **tol)
    for name, b in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), dw_ref):
        np.testing.assert_allclose(grads[name], b, **tol, err_msg=name)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_stack_gradients_match_finite_differences(variant):
    layer = make(variant, num_layers=2, go_backwards=True)
    x, state, dy, dstate = data(layer, np.float64, seed=2)

    def loss():
        y, final = layer(x, state, LENGTHS)
        return float(np.sum(y * dy) + sum(np.sum(f * d) for f, d in zip(parts(final), parts(dstate))))

    _, _, cache = layer.forward(x, state, LENGTHS)
    dx, dinit, grads = layer.backward(cache, dy, dstate)
    # float64 central differences: truncation ~eps^2, rounding ~1e-16 |L| / eps ~ 1e-9
    np.testing.assert_allclose(dx, central_difference(loss, x), rtol=1e-6, atol=1e-7)
    for k, s in enumerate(parts(state)):
        np.testing.assert_allclose(parts(dinit)[k], central_difference(loss, s), rtol=1e-6, atol=1e-7)
    params = layer.parameters()
    for name in ("weight_ih_l0", "weight_hh_l1", "bias_ih_l1"):
        np.testing.assert_allclose(grads[name], central_difference(loss, params[name]), rtol=1e-6,
                                   atol=1e-7, err_msg=name)


@pytest.mark.parametrize("variant", TORCH_VARIANTS)
def test_matches_torch_bidirectional_reverse_half(variant):
    torch = pytest.importorskip("torch")
    cls, extra = VARIANTS[variant]
    module = getattr(torch.nn, cls)(I, H, bidirectional=True, batch_first=True,
                                    **{k: v for k, v in extra.items() if k != "reset_after"}).double()
    layer = make(variant, batch_first=True, go_backwards=True)
    layer.load_state_dict({k[:-len("_reverse")]: v.detach().numpy()
                           for k, v in module.state_dict().items() if k.endswith("_reverse")})
    x = np.random.default_rng(3).standard_normal((B, T, I))
    keep = LENGTHS > 0                      # torch refuses a length 0
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x[keep]),
                                                     torch.tensor(LENGTHS[keep]),
                                                     batch_first=True, enforce_sorted=False)
    out, final = module(packed)
    out = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)[0]
    y, state = layer(x, lengths=LENGTHS)
    np.testing.assert_allclose(y[keep], out.detach().numpy()[:, :, H:], rtol=1e-10, atol=1e-12)
    h = parts(state)[0]
    h_torch = (final[0] if isinstance(final, tuple) else final).detach().numpy()
    np.testing.assert_allclose(h[0, keep], h_torch[1], rtol=1e-10, atol=1e-12)
    assert not y[~keep].any() and not h[0, ~keep].any()


def test_config_save_load_checkpoint_and_refusals(tmp_path):
    layer = make("lstm", num_layers=2, go_backwards=True)
    assert layer.config()["go_backwards"] is True and "go_backwards=True" in repr(layer)
    x, state, dy, dstate = data(layer, np.float64, seed=4)
    rnnx.save(layer, tmp_path / "m.npz")
    loaded = rnnx.load(tmp_path / "m.npz")
    assert loaded.go_backwards and np.array_equal(loaded(x, state, LENGTHS)[0],
                                                  layer(x, state, LENGTHS)[0])
    # checkpointed BPTT runs its segments from the end, like a bidirectional reverse half
    _, _, cache = layer.forward(x, state, LENGTHS)
    expected = layer.backward(cache, dy, dstate)
    y_c, _, cache_c = layer.forward(x, state, LENGTHS, checkpoint=2)
    got = layer.backward(cache_c, dy, dstate)
    np.testing.assert_allclose(y_c, layer(x, state, LENGTHS)[0], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-10, atol=1e-12)
    for name in expected[2]:
        np.testing.assert_allclose(got[2][name], expected[2][name], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="go_backwards layer cannot stream"):
        layer.stream()
    with pytest.raises(ValueError, match="cannot be combined with bidirectional"):
        make("gru_reset_after", go_backwards=True, bidirectional=True)
    with pytest.raises(ValueError, match="no reverse-only layer"):
        rnnx.save(layer, tmp_path / "m.rnnx")
    assert not (tmp_path / "m.rnnx").exists()


def test_many_to_one_pools_t0():
    rec = make("gru_reset_before", go_backwards=True)
    model = rnnx.Sequential(rec, rnnx.Dense(H, 2, dtype=np.float64, seed=2), many_to_one=True)
    x = np.random.default_rng(5).standard_normal((T, B, I))
    y, h = model(x, lengths=LENGTHS)
    head = model.layers[1]
    np.testing.assert_allclose(y, head(h[0][0]), rtol=1e-13, atol=1e-14)   # h_n is y at t = 0
    y_seq = rec(x, lengths=LENGTHS)[0]
    np.testing.assert_allclose(y, head(y_seq[0]), rtol=1e-13, atol=1e-14)
    dy = np.random.default_rng(6).standard_normal(y.shape)
    _, _, cache = model.forward(x, lengths=LENGTHS)
    dx, _, grads = model.backward(cache, dy)

    def loss():
        return float(np.sum(model(x, lengths=LENGTHS)[0] * dy))
    np.testing.assert_allclose(dx, central_difference(loss, x), rtol=1e-6, atol=1e-7)

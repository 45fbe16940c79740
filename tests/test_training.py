"""Trainer: truncated BPTT against PyTorch (k1 = k2) and against an independent NumPy
implementation of Williams & Peng's BPTT(k1, k2); carried state; errors; reproducibility."""
import numpy as np
import pytest

import rnnx
from rnnx import reference
from rnnx.dense import Dense
from rnnx.layers import GRU, LSTM, RNN
from rnnx.losses import MSELoss, SoftmaxCrossEntropy
from rnnx.model import Sequential
from rnnx.optim import SGD, Adam
from rnnx.trainer import NonFiniteLossError, Trainer

CELLS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
# float64 throughout: the C kernels, PyTorch and NumPy differ only by the order of
# additions in GEMMs, ~1e-16 relative per operation, a few hundred operations deep.
TOL = dict(rtol=1e-9, atol=1e-11)


def make_model(cell, input_size, hidden, output, num_layers=1, bidirectional=False, seed=0):
    layer = CELLS[cell](input_size, hidden, num_layers=num_layers, bidirectional=bidirectional,
                        dtype=np.float64, seed=seed)
    width = hidden * (2 if bidirectional else 1)
    return Sequential(layer, Dense(width, output, dtype=np.float64, seed=seed + 1))


def record_grads(store):
    return lambda info: store.append({k: v.copy() for k, v in info["grads"].items()})


# ---------------------------------------------------------------------------------------
# k1 = k2 = k against PyTorch with the hidden state detached every k steps

def torch_chunked(model, cell, x, y, k, lr, epochs, num_layers, bidirectional):
    """The same model in PyTorch, trained by SGD on chunks of k steps with the hidden state
    detached at every chunk boundary. Returns the gradients of every update."""
    torch = pytest.importorskip("torch")
    layer, dense = model[0], model[1]
    rnn = getattr(torch.nn, cell)(layer.input_size, layer.hidden_size, num_layers=num_layers,
                                  bidirectional=bidirectional, dtype=torch.float64)
    linear = torch.nn.Linear(dense.in_features, dense.out_features, dtype=torch.float64)
    with torch.no_grad():
        for name, value in layer.state_dict().items():
            getattr(rnn, name).copy_(torch.from_numpy(value))
        linear.weight.copy_(torch.from_numpy(dense.state_dict()["weight"]))
        linear.bias.copy_(torch.from_numpy(dense.state_dict()["bias"]))
    named = {f"0.{n}": p for n, p in rnn.named_parameters()}
    named.update({f"1.{n}": p for n, p in linear.named_parameters()})
    optimizer = torch.optim.SGD(list(named.values()), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    all_grads = []
    for _ in range(epochs):
        state = None
        for a in range(0, len(x), k):
            out, state = rnn(xt[a:a + k], state)
            loss = torch.nn.functional.mse_loss(linear(out), yt[a:a + k])
            optimizer.zero_grad()
            loss.backward()
            all_grads.append({n: p.grad.numpy().copy() for n, p in named.items()})
            optimizer.step()
            state = tuple(s.detach() for s in state) if cell == "LSTM" else state.detach()
    return all_grads, {n: p.detach().numpy() for n, p in named.items()}


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("k", [1, 4, 5])
def test_chunked_bptt_matches_torch_detach(cell, num_layers, bidirectional, k):
    pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    T, B, I, H, O = 13, 3, 2, 4, 2                       # k = 5 leaves a short last chunk
    x, y = rng.normal(size=(T, B, I)), rng.normal(size=(T, B, O))
    model = make_model(cell, I, H, O, num_layers, bidirectional, seed=3)
    expected, final = torch_chunked(model, cell, x, y, k, 0.1, 2, num_layers, bidirectional)
    got = []
    trainer = Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.1), bptt=k)
    trainer.fit(x, y, epochs=2, callback=record_grads(got))
    assert len(got) == len(expected) == 2 * -(-T // k)
    for update, (mine, theirs) in enumerate(zip(got, expected)):
        assert set(mine) == set(theirs)
        for name in theirs:
            np.testing.assert_allclose(mine[name], theirs[name], **TOL,
                                       err_msg=f"update {update}, {name}")
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value, final[name], **TOL, err_msg=name)


def test_many_to_one_full_bptt_with_lengths_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    T, B, I, H, C = 7, 4, 3, 5, 3
    x = rng.normal(size=(T, B, I))
    lengths = np.array([7, 3, 5, 1])
    labels = np.array([0, 2, 1, 2])
    layer = LSTM(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=1)
    model = Sequential(layer, Dense(2 * H, C, activation="softmax", dtype=np.float64, seed=2),
                       many_to_one=True)
    got = []
    Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.0)).fit(
        x, labels, lengths=lengths, callback=record_grads(got))

    rnn = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    linear = torch.nn.Linear(2 * H, C, dtype=torch.float64)
    with torch.no_grad():
        for name, value in layer.state_dict().items():
            getattr(rnn, name).copy_(torch.from_numpy(value))
        linear.weight.copy_(torch.from_numpy(model[1].state_dict()["weight"]))
        linear.bias.copy_(torch.from_numpy(model[1].state_dict()["bias"]))
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                     enforce_sorted=False)
    _, (h_n, _) = rnn(packed)
    final = torch.cat([h_n[-2], h_n[-1]], dim=1)        # last layer: forward, reverse
    loss = torch.nn.functional.cross_entropy(linear(final), torch.from_numpy(labels))
    loss.backward()
    for name, param in rnn.named_parameters():
        np.testing.assert_allclose(got[0][f"0.{name}"], param.grad.numpy(), **TOL, err_msg=name)
    np.testing.assert_allclose(got[0]["1.weight"], linear.weight.grad.numpy(), **TOL)
    # and the prediction is the softmax of the same logits
    probs = model.predict(x, lengths=lengths)
    np.testing.assert_allclose(probs, torch.softmax(linear(final), 1).detach().numpy(), **TOL)


# ---------------------------------------------------------------------------------------
# k2 > k1 against a plain NumPy implementation of Williams & Peng's definition

def reference_forward(cell, params, x, state):
    """One direction, one layer, through rnnx.reference. state: h or (h, c)."""
    w = [params[f"0.{n}_l0"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    if cell == "LSTM":
        y, h, c, cache = reference.lstm_forward(x, state[0], state[1], *w)
        return y, (h, c), cache
    forward = reference.rnn_forward if cell == "RNN" else reference.gru_forward
    y, h, cache = forward(x, state, *w)
    return y, h, cache


def reference_backward(cell, dy, cache):
    if cell == "LSTM":
        _, _, _, *grads = reference.lstm_backward(dy, None, None, cache)
    else:
        backward = reference.rnn_backward if cell == "RNN" else reference.gru_backward
        _, _, *grads = backward(dy, None, cache)
    return dict(zip((f"0.{n}_l0" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")), grads))


def williams_peng(cell, params, x, y, k1, k2, lr):
    """BPTT(k1, k2) as defined: at each b = k1, 2 k1, ... (and T), re-run the steps
    [b - k1 - (k2 - k1), b) forward from the state kept for that time, the loss being the
    mean squared error of the k1 newest outputs only; backpropagate through all of them;
    SGD step; keep the state at b - (k2 - k1) (computed in this forward) for the next one."""
    params = {n: v.copy() for n, v in params.items()}
    T, B, _ = x.shape
    H = params["0.weight_hh_l0"].shape[1]
    zeros = np.zeros((B, H))
    kept = {0: (zeros, zeros) if cell == "LSTM" else zeros}
    m = k2 - k1
    all_grads = []
    for a in range(0, T, k1):
        b = min(a + k1, T)
        w0 = max(0, a - m)
        hidden, _, cache = reference_forward(cell, params, x[w0:b], kept[w0])
        out = hidden @ params["1.weight"].T + params["1.bias"]
        dout = np.zeros_like(out)
        new = slice(a - w0, b - w0)                        # the k1 newest steps of the window
        dout[new] = 2 * (out[new] - y[a:b]) / out[new].size
        grads = reference_backward(cell, dout @ params["1.weight"], cache)
        grads["1.weight"] = np.einsum("tbo,tbh->oh", dout, hidden)
        grads["1.bias"] = dout.sum(axis=(0, 1))
        nxt = max(0, b - m)
        if nxt == w0:
            kept[nxt] = kept[w0]
        else:
            kept[nxt] = reference_forward(cell, params, x[w0:nxt], kept[w0])[1]
        for name in params:
            params[name] = params[name] - lr * grads[name]
        all_grads.append(grads)
    return all_grads, params


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("k1,k2", [(2, 5), (3, 4), (1, 3), (4, 4), (2, 11)])
def test_bptt_k1_k2_matches_williams_peng(cell, k1, k2):
    rng = np.random.default_rng(9)
    T, B, I, H, O = 11, 2, 2, 3, 2
    x, y = rng.normal(size=(T, B, I)), rng.normal(size=(T, B, O))
    model = make_model(cell, I, H, O, seed=4)
    expected, final = williams_peng(cell, model.state_dict(), x, y, k1, k2, lr=0.2)
    got = []
    Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.2), bptt=(k1, k2)).fit(
        x, y, callback=record_grads(got))
    assert len(got) == len(expected)
    for update, (mine, theirs) in enumerate(zip(got, expected)):
        for name in theirs:
            np.testing.assert_allclose(mine[name], theirs[name], **TOL,
                                       err_msg=f"update {update}, {name}")
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value, final[name], **TOL, err_msg=name)


def test_bptt_k1_k2_with_two_layers_and_lengths_runs_and_masks():
    """Padded steps carry no loss: a window that lies wholly in the padding of a row gives
    that row's outputs zero gradient, and the update count follows T, not the lengths."""
    rng = np.random.default_rng(10)
    T, B = 12, 3
    x, y = rng.normal(size=(T, B, 1)), rng.normal(size=(T, B, 1))
    lengths = np.array([12, 6, 2])
    model = Sequential(GRU(1, 4, num_layers=2, dtype=np.float64, seed=0), Dense(4, 1, dtype=np.float64))
    base = model.state_dict()
    history = Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.1), bptt=(3, 5)).fit(
        x, y, lengths=lengths)
    assert len(history["step_loss"]) == 4
    # the same run with the padding of rows 1 and 2 changed gives the same result
    y2, x2 = y.copy(), x.copy()
    y2[6:, 1] = 100.0
    x2[2:, 2] = -50.0
    model2 = Sequential(GRU(1, 4, num_layers=2, dtype=np.float64, seed=0), Dense(4, 1, dtype=np.float64))
    model2.load_state_dict(base)
    history2 = Trainer(model2, MSELoss(), SGD(model2.parameters(), lr=0.1), bptt=(3, 5)).fit(
        x2, y2, lengths=lengths)
    np.testing.assert_allclose(history2["step_loss"], history["step_loss"], rtol=1e-12)
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(model2.state_dict()[name], value, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------
# Carried state, reset policies, online learning

def delay_task(rng, T, B, delay):
    x = rng.choice([-1.0, 1.0], size=(T, B, 1))
    y = np.zeros_like(x)
    y[delay:] = x[:-delay]
    return x, y


def test_carried_state_learns_across_chunk_boundaries():
    """Target: the input 2 steps back, trained in chunks of 4. With the state carried, the
    first two steps of a chunk can use the end of the previous chunk; with the state reset
    at every chunk they cannot, and half the targets stay out of reach (loss floor ~0.5)."""
    losses = {}
    for reset in ("sequence", "chunk"):
        x, y = delay_task(np.random.default_rng(0), 240, 16, 2)
        model = Sequential(GRU(1, 8, seed=0), Dense(8, 1, seed=1))
        trainer = Trainer(model, MSELoss(), Adam(model.parameters(), lr=0.02), bptt=4,
                          reset_state=reset)
        losses[reset] = np.mean(trainer.fit(x, y, epochs=8)["loss"][-2:])
    assert losses["sequence"] < 0.05, losses
    assert losses["chunk"] > 0.4, losses


def test_elman_online_learning_k1_equals_k2_equals_1():
    x, y = delay_task(np.random.default_rng(1), 300, 4, 1)
    model = Sequential(RNN(1, 5, seed=0), Dense(5, 1, seed=1))
    history = Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.05), bptt=1).fit(x, y, epochs=3)
    assert len(history["step_loss"]) == 900
    assert np.mean(history["step_loss"][:20]) > 0.5         # guessing: the variance, 1
    assert history["loss"][-1] < 0.15                         # Elman remembers one step back


def test_reset_never_carries_state_across_epochs():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 2, 1)), rng.normal(size=(10, 2, 1))
    model = Sequential(LSTM(1, 3, dtype=np.float64, seed=0), Dense(3, 1, dtype=np.float64))
    trainer = Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.0), bptt=4, reset_state="never")
    history = trainer.fit(x, y, epochs=2)
    _, state_after_one = model(x)
    np.testing.assert_allclose(history["loss"][0], trainer.evaluate(x, y), rtol=1e-12)
    np.testing.assert_allclose(history["loss"][1], trainer.evaluate(x, y, state=state_after_one),
                               rtol=1e-12)
    assert history["loss"][0] != history["loss"][1]
    with pytest.raises(ValueError, match="reset_state='never'"):
        trainer.fit(x, y, batch_size=1)


def test_chunked_forward_with_carried_state_equals_one_long_forward():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 2, 3))
    model = Sequential(LSTM(3, 4, num_layers=2, dtype=np.float64, seed=0), Dense(4, 2, dtype=np.float64))
    whole, _ = model(x)
    state, parts = None, []
    for a in range(0, 20, 6):
        part, state = model(x[a:a + 6], state)
        parts.append(part)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


# ---------------------------------------------------------------------------------------
# Loop behaviour: seed, history, non-finite loss, feed-forward models, errors

def test_seed_makes_runs_reproducible():
    def run(seed):
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(8, 12, 2)), rng.normal(size=(8, 12, 1))
        model = Sequential(GRU(2, 4, seed=0), Dense(4, 1, seed=1))
        return Trainer(model, "mse", Adam(model.parameters(), lr=0.01), seed=seed).fit(
            x, y, epochs=3, batch_size=5)["step_loss"]
    assert run(5) == run(5)
    assert run(5) != run(6)                    # the shuffling differs


@pytest.mark.filterwarnings("ignore::RuntimeWarning")        # the overflow is the point
def test_non_finite_loss_names_the_update():
    x = np.ones((12, 2, 1))
    x[6, 1, 0] = np.nan
    model = Sequential(RNN(1, 3, seed=0), Dense(3, 1, seed=0))
    trainer = Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.1), bptt=4)
    with pytest.raises(NonFiniteLossError, match=r"update 2 \(epoch 1, batch 1, time steps 4\.\.7\)"):
        trainer.fit(x, np.zeros((12, 2, 1)))
    model = Sequential(RNN(1, 3, seed=0), Dense(3, 1, seed=0))
    trainer = Trainer(model, MSELoss(), SGD(model.parameters(), lr=1e30))
    with pytest.raises(NonFiniteLossError, match="update 2"):
        trainer.fit(np.ones((5, 2, 1)), np.ones((5, 2, 1)), epochs=3)


def test_dense_only_model_trains_with_minibatches():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 3))
    y = np.tanh(x @ np.array([[1.0], [-2.0], [0.5]]))
    model = Sequential(Dense(3, 8, activation="tanh", seed=0), Dense(8, 1, seed=1))
    history = Trainer(model, "mse", Adam(model.parameters(), lr=0.02), seed=0).fit(
        x, y, epochs=40, batch_size=50)
    assert len(history["step_loss"]) == 160
    assert history["loss"][-1] < 0.05 * history["loss"][0]


def test_clipping_is_applied_by_the_loop():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 2, 1)), 100 * rng.normal(size=(6, 2, 1))
    model = Sequential(RNN(1, 3, dtype=np.float64, seed=0), Dense(3, 1, dtype=np.float64))
    before = model.state_dict()
    seen = []
    trainer = Trainer(model, MSELoss(), SGD(model.parameters(), lr=1.0), clip_norm=0.5)
    history = trainer.fit(x, y, callback=record_grads(seen))
    assert history["grad_norm"][0] > 0.5                           # reported before clipping
    step = {n: before[n] - v for n, v in model.state_dict().items()}
    assert np.sqrt(sum(np.sum(s * s) for s in step.values())) == pytest.approx(0.5, rel=1e-12)
    model.load_state_dict(before)
    Trainer(model, MSELoss(), SGD(model.parameters(), lr=1.0), clip_value=1e-3).fit(x, y)
    assert all(np.max(np.abs(before[n] - v)) <= 1e-3 + 1e-15 for n, v in model.state_dict().items())


def test_progress_bar_on_request(capsys):
    rng = np.random.default_rng(6)
    model = Sequential(GRU(1, 2, seed=0), Dense(2, 1, seed=0))
    Trainer(model, progress=True).fit(rng.normal(size=(8, 2, 1)), rng.normal(size=(8, 2, 1)), epochs=2)
    assert "epoch 2/2" in capsys.readouterr().err
    Trainer(model).fit(rng.normal(size=(8, 2, 1)), rng.normal(size=(8, 2, 1)))
    assert capsys.readouterr().err == ""                           # not a terminal: silent


def test_trainer_errors():
    model = Sequential(GRU(2, 3), Dense(3, 1))
    with pytest.raises(ValueError, match=r"bptt=\(k1, k2\) must have 1 <= k1 <= k2, got \(4, 2\)"):
        Trainer(model, bptt=(4, 2))
    with pytest.raises(ValueError, match="reset_state must be one of"):
        Trainer(model, reset_state="epoch")
    with pytest.raises(ValueError, match=r"x must be \(T, N, I\) with I=2, got shape \(5, 2\)"):
        Trainer(model).fit(np.zeros((5, 2)), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="y must have the 5 steps of x"):
        Trainer(model).fit(np.zeros((5, 3, 2)), np.zeros((4, 3, 1)))
    with pytest.raises(ValueError, match="lengths must lie in"):
        Trainer(model).fit(np.zeros((5, 3, 2)), np.zeros((5, 3, 1)), lengths=np.array([5, 6, 1]))
    with pytest.raises(ValueError, match="fuses a softmax"):
        Trainer(Sequential(GRU(2, 3), Dense(3, 2, activation="sigmoid")), SoftmaxCrossEntropy())
    with pytest.raises(ValueError, match="bptt must be None for a many_to_one model"):
        Trainer(Sequential(GRU(2, 3), Dense(3, 1), many_to_one=True), bptt=4)


def test_batch_first_model_trains_exactly_like_time_major():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(9, 3, 2)), rng.normal(size=(9, 3, 1))
    lengths = np.array([9, 4, 7])
    runs = []
    for batch_first in (False, True):
        model = Sequential(LSTM(2, 3, batch_first=batch_first, dtype=np.float64, seed=0),
                           Dense(3, 1, dtype=np.float64, seed=1))
        xs, ys = (x.swapaxes(0, 1), y.swapaxes(0, 1)) if batch_first else (x, y)
        history = Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.1), bptt=(2, 3)).fit(
            xs, ys, lengths=lengths, epochs=2)
        runs.append((history["step_loss"], model.state_dict()))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-13)
    for name, value in runs[0][1].items():
        np.testing.assert_allclose(runs[1][1][name], value, rtol=1e-12, atol=1e-14)


def test_trainer_wraps_a_bare_layer():
    rng = np.random.default_rng(12)
    layer = GRU(2, 3, dtype=np.float64, seed=0)
    trainer = Trainer(layer, MSELoss(), SGD(layer.parameters(), lr=0.5), bptt=5)
    history = trainer.fit(rng.normal(size=(20, 4, 2)), 0.5 * np.ones((20, 4, 3)), epochs=10)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert sorted(trainer.model.parameters()) == sorted(f"0.{n}" for n in layer.parameters())


def test_optimizer_of_another_model_is_refused():
    model, other = Sequential(GRU(2, 3), Dense(3, 1)), Sequential(GRU(2, 3), Dense(3, 1))
    with pytest.raises(ValueError, match="optimizer must be built on this model's"):
        Trainer(model, MSELoss(), Adam(other.parameters()))


@pytest.mark.filterwarnings("error")        # a ComplexWarning (silent cast) would fail the test
def test_fit_refuses_complex_data_naming_the_argument():
    model = Sequential(RNN(1, 3, seed=0), Dense(3, 1, seed=0))
    trainer = Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.1))
    x, y = np.ones((4, 2, 1)), np.ones((4, 2, 1))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(TypeError, match=r"^x must be a real .*complex128"):
        trainer.fit(x + 1j, y)
    with pytest.raises(TypeError, match=r"^y must be a real .*complex128"):
        trainer.fit(x, y * 1j)
    with pytest.raises(TypeError, match=r"^x must be a real"):
        trainer.evaluate(x.astype(complex), y)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    assert trainer.updates == 0


def test_fit_with_no_steps_or_no_sequences_names_x_and_its_shape():
    model = Sequential(LSTM(2, 3, seed=0), Dense(3, 1, seed=0))
    trainer = Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.1), bptt=2)
    with pytest.raises(ValueError, match=r"x must have at least one time step .*\(0, 4, 2\)"):
        trainer.fit(np.zeros((0, 4, 2)), np.zeros((0, 4, 1)))
    with pytest.raises(ValueError, match=r"x must hold at least one sequence .*\(5, 0, 2\)"):
        trainer.fit(np.zeros((5, 0, 2)), np.zeros((5, 0, 1)))
    mlp = Sequential(Dense(2, 1, seed=0))
    with pytest.raises(ValueError, match=r"x must hold at least one sequence .*\(0, 2\)"):
        Trainer(mlp, MSELoss(), SGD(mlp.parameters())).fit(np.zeros((0, 2)), np.zeros((0, 1)))
    assert trainer.updates == 0


class NaNGradientLoss(MSELoss):
    """An MSE whose value stays finite but whose gradient is NaN at one position."""

    def __call__(self, output, target, mask=None):
        value, grad = super().__call__(output, target, mask)
        grad[-1, 0, 0] = np.nan
        return value, grad


def test_non_finite_gradient_stops_before_the_update():
    model = Sequential(GRU(1, 3, seed=0), Dense(3, 1, seed=0))
    trainer = Trainer(model, NaNGradientLoss(), SGD(model.parameters(), lr=0.1), clip_norm=1.0)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=r"gradient norm became nan at update 1"):
        trainer.fit(np.ones((6, 2, 1)), np.zeros((6, 2, 1)))
    for key, value in model.state_dict().items():              # no update was applied
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize("cell", ["RNN", "LSTM", "GRU"])
def test_inference_passes_nan_through(cell):
    model = Sequential(CELLS[cell](1, 4, seed=0), Dense(4, 1, seed=1))
    x = np.ones((8, 2, 1), np.float32)
    x[3, 0, 0] = np.nan
    y = model.predict(x)
    assert np.isfinite(y[:3]).all() and np.isfinite(y[:, 1]).all()     # before, and other row
    assert np.isnan(y[3:, 0]).all()                                     # from there on, NaN


def test_evaluate_is_inference_without_dropout():
    """evaluate (and validation) runs the model as inference: no dropout mask, no draws."""
    rng = np.random.default_rng(3)
    model = rnnx.Sequential(rnnx.LSTM(2, 8, num_layers=2, dropout=0.5, seed=0),
                            rnnx.Dense(8, 1, seed=1))
    trainer = rnnx.Trainer(model, rnnx.MSELoss(), rnnx.SGD(model.parameters(), lr=0.1))
    x = rng.standard_normal((12, 3, 2)).astype(np.float32)
    y = rng.standard_normal((12, 3, 1)).astype(np.float32)
    draws = model.layers[0].dropout_rng.bit_generator.state
    first, second = trainer.evaluate(x, y), trainer.evaluate(x, y)
    assert first == second
    assert model.layers[0].dropout_rng.bit_generator.state == draws
    assert first == pytest.approx(rnnx.MSELoss()(model.predict(x), y)[0], rel=1e-12)

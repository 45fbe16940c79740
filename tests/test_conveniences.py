"""Training conveniences: validation loss and early stopping, learning-rate schedules (against
PyTorch's), optimizer state_dict, and checkpoints that resume exactly."""
import importlib.util
import os

import numpy as np
import pytest

import rnnx
from rnnx.trainer import Trainer


def sine_data(steps=48, streams=4, seed=0):
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, streams)
    t = np.arange(steps + 1)[:, None] * 0.3 + phase
    series = np.sin(t)[..., None]
    return series[:-1], series[1:]                          # (T, N, 1) each


def lstm_model(seed=0, dtype=np.float64):
    return rnnx.Sequential(rnnx.LSTM(1, 6, num_layers=2, dtype=dtype, seed=seed),
                           rnnx.Dense(6, 1, dtype=dtype, seed=seed + 1))


# -- schedules ------------------------------------------------------------------------------

def torch_lrs(make_schedule, epochs):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    schedule = make_schedule(torch.optim.lr_scheduler, opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    return lrs


def rnnx_lrs(make_schedule, epochs):
    opt = rnnx.SGD({"w": np.zeros(1)}, lr=0.1)
    schedule = make_schedule(rnnx, opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.lr)
        schedule.step()
    assert schedule.get_last_lr() == [opt.lr]
    return lrs


@pytest.mark.parametrize("make", [
    lambda m, opt: m.StepLR(opt, step_size=3, gamma=0.5),
    lambda m, opt: m.StepLR(opt, 1),
    lambda m, opt: m.CosineAnnealingLR(opt, T_max=7),
    lambda m, opt: m.CosineAnnealingLR(opt, T_max=5, eta_min=0.01),
], ids=["step-3-0.5", "step-1-default", "cosine-7", "cosine-5-min"])
def test_schedules_match_pytorch(make):
    # 20 epochs: past T_max, where the cosine goes back up; PyTorch computes recursively,
    # rnnx in closed form, so they agree to rounding
    np.testing.assert_allclose(rnnx_lrs(make, 20), torch_lrs(make, 20), rtol=1e-12, atol=1e-15)


def test_schedule_stepped_by_the_trainer_once_per_epoch():
    x, y = sine_data()
    model = lstm_model()
    opt = rnnx.Adam(model.parameters(), lr=0.01)
    trainer = Trainer(model, "mse", opt, bptt=12, scheduler=rnnx.StepLR(opt, 2, gamma=0.5))
    history = trainer.fit(x, y, epochs=5)
    assert history["lr"] == [0.01, 0.01, 0.005, 0.005, 0.0025]
    assert opt.lr == 0.0025 and trainer.epochs == 5 and trainer.scheduler.last_epoch == 5


def test_schedule_errors():
    opt = rnnx.SGD({"w": np.zeros(1)})
    with pytest.raises(ValueError, match="step_size must be an int >= 1, got 0"):
        rnnx.StepLR(opt, 0)
    with pytest.raises(ValueError, match="T_max must be an int >= 1"):
        rnnx.CosineAnnealingLR(opt, 2.5)
    with pytest.raises(ValueError, match="eta_min must be a finite number >= 0"):
        rnnx.CosineAnnealingLR(opt, 3, eta_min=float("nan"))
    with pytest.raises(TypeError, match="optimizer must be an rnnx optimizer"):
        rnnx.StepLR({"w": np.zeros(1)}, 2)
    model = lstm_model()
    other = rnnx.SGD({"w": np.zeros(1)})
    with pytest.raises(ValueError, match="scheduler must be an rnnx learning-rate schedule built "
                                         "on this trainer's optimizer"):
        Trainer(model, "mse", rnnx.SGD(model.parameters()), scheduler=rnnx.StepLR(other, 2))


# -- optimizer state ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sgd", "adam", "adagrad"])
def test_optimizer_state_dict_round_trip_continues_identically(name):
    rng = np.random.default_rng(0)
    grads = [{"a": rng.normal(size=3), "b": rng.normal(size=(2, 2))} for _ in range(6)]
    make = {"sgd": lambda p: rnnx.SGD(p, lr=0.1, momentum=0.9), "adam": lambda p: rnnx.Adam(p),
            "adagrad": lambda p: rnnx.Adagrad(p)}[name]
    params = {"a": np.ones(3), "b": np.ones((2, 2))}
    opt = make(params)
    for g in grads[:3]:
        opt.step(g)
    saved = opt.state_dict()
    copy = {k: v.copy() for k, v in params.items()}
    other = make(copy)
    other.load_state_dict(saved)
    for g in grads[3:]:
        opt.step(g)
        other.step(g)
    for key in params:
        np.testing.assert_array_equal(copy[key], params[key])
    with pytest.raises(ValueError, match="state is of a"):
        (rnnx.Adagrad if name != "adagrad" else rnnx.Adam)(copy).load_state_dict(saved)
    bad = opt.state_dict()
    if bad["state"]:
        slot = next(iter(bad["state"]))
        bad["state"][slot]["a"] = np.zeros(4)
        before = repr(vars(other))
        with pytest.raises(ValueError, match=rf"state\['state'\]\['{slot}'\]\['a'\] must be a "
                                             r"real array of shape \(3,\)"):
            other.load_state_dict(bad)
        assert repr(vars(other)) == before                     # all or nothing


# -- validation and early stopping ----------------------------------------------------------

def test_validation_loss_is_evaluate_after_each_epoch():
    x, y = sine_data()
    xv, yv = sine_data(seed=1)
    model = lstm_model()
    trainer = Trainer(model, "mse", rnnx.Adam(model.parameters(), lr=0.01), bptt=12)
    recorded = []
    original = trainer.evaluate
    trainer.evaluate = lambda *a: recorded.append(original(*a)) or recorded[-1]
    history = trainer.fit(x, y, epochs=3, validation=(xv, yv))
    assert history["val_loss"] == recorded and len(recorded) == 3
    assert history["val_loss"][-1] == original(xv, yv)           # of the final weights
    with pytest.raises(TypeError, match="validation must be a tuple"):
        trainer.fit(x, y, validation=xv)
    with pytest.raises(ValueError, match=r"^validation=\(x, y\[, lengths\]\): x must have 1 features"):
        trainer.fit(x, y, validation=(np.zeros((4, 2, 3)), yv))
    with pytest.raises(ValueError, match="early_stopping needs validation"):
        trainer.fit(x, y, early_stopping=2)
    with pytest.raises(ValueError, match="early_stopping must be None or a patience"):
        trainer.fit(x, y, validation=(xv, yv), early_stopping=0)


def test_early_stopping_stops_and_restores_the_best_weights():
    x, y = sine_data()
    xv, yv = sine_data(seed=1)
    model = lstm_model()
    # a learning rate far too high: the validation loss soon stops improving
    trainer = Trainer(model, "mse", rnnx.SGD(model.parameters(), lr=2.0), bptt=12, clip_norm=5.0)
    snapshots = []
    real_fit_epoch_end = trainer.evaluate

    def evaluate(*args):
        snapshots.append({k: v.copy() for k, v in model.state_dict().items()})
        return real_fit_epoch_end(*args)

    trainer.evaluate = evaluate
    history = trainer.fit(x, y, epochs=40, validation=(xv, yv), early_stopping=3)
    val = history["val_loss"]
    best = history["best_epoch"]
    assert history["stopped_early"] and len(val) < 40
    assert best == int(np.argmin(val)) and len(val) == best + 4      # patience 3, then stop
    assert all(v >= val[best] for v in val[best + 1:])
    for key, value in model.state_dict().items():                   # the best epoch's weights
        np.testing.assert_array_equal(value, snapshots[best][key])
    assert trainer.evaluate(xv, yv) == val[best]


def test_early_stopping_restores_best_even_without_stopping():
    x, y = sine_data()
    xv, yv = sine_data(seed=1)
    model = lstm_model()
    trainer = Trainer(model, "mse", rnnx.Adam(model.parameters(), lr=0.01), bptt=12)
    history = trainer.fit(x, y, epochs=4, validation=(xv, yv), early_stopping=10)
    assert not history["stopped_early"] and len(history["val_loss"]) == 4
    assert trainer.evaluate(xv, yv) == min(history["val_loss"])


# -- checkpoints ----------------------------------------------------------------------------

def make_trainer(kind):
    if kind == "minibatch-adam-cosine-lstm":
        x, y = sine_data(steps=24, streams=8)
        model = lstm_model(seed=3)
        opt = rnnx.Adam(model.parameters(), lr=0.02)
        trainer = Trainer(model, "mse", opt, bptt=(6, 9), clip_norm=1.0, seed=5,
                          scheduler=rnnx.CosineAnnealingLR(opt, T_max=3, eta_min=1e-3))
        return trainer, (x, y), {"batch_size": 3}
    if kind == "mlp-adagrad":
        rng = np.random.default_rng(0)
        x = rng.normal(size=(40, 3))
        y = np.tanh(x @ rng.normal(size=(3, 2)))
        model = rnnx.Sequential(rnnx.Dense(3, 4, activation="tanh", dtype=np.float64, seed=0),
                                rnnx.Dense(4, 2, dtype=np.float64, seed=1))
        return Trainer(model, "mse", rnnx.Adagrad(model.parameters(), lr=0.1), seed=2), \
            (x, y), {"batch_size": 7}
    if kind == "bare-rnn-sigmoid-bce":
        x, y = sine_data(steps=20, streams=4)
        layer = rnnx.RNN(1, 1, dtype=np.float64, seed=4)         # one unit: logits of y > 0
        return Trainer(layer, rnnx.SigmoidBinaryCrossEntropy(), rnnx.SGD(layer.parameters()),
                       bptt=5), (x, (y > 0).astype(np.float64)), {}
    x, y = sine_data(steps=30, streams=3)
    model = rnnx.Sequential(rnnx.GRU(1, 5, dtype=np.float64, seed=1),
                            rnnx.Dense(5, 1, dtype=np.float64, seed=2))
    opt = rnnx.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = Trainer(model, rnnx.MSELoss(reduction="sum"), opt, bptt=7, reset_state="never",
                      clip_value=0.5, seed=0, scheduler=rnnx.StepLR(opt, 1, gamma=0.7))
    return trainer, (x, y), {}


@pytest.mark.parametrize("kind", ["minibatch-adam-cosine-lstm", "streams-never-sgd-step-gru",
                                  "mlp-adagrad", "bare-rnn-sigmoid-bce"])
def test_checkpoint_resumes_exactly(kind, tmp_path):
    whole, data, options = make_trainer(kind)
    uninterrupted = whole.fit(*data, epochs=4, **options)["step_loss"]

    first, data, options = make_trainer(kind)
    losses = first.fit(*data, epochs=2, **options)["step_loss"]
    first.save_checkpoint(tmp_path / "ckpt.npz")
    del first
    resumed = Trainer.from_checkpoint(tmp_path / "ckpt.npz")
    assert resumed.epochs == 2 and resumed.updates == len(losses)
    losses += resumed.fit(*data, epochs=2, **options)["step_loss"]

    assert losses == uninterrupted                                   # bit for bit
    for key, value in whole.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[key], value)
    assert resumed.optimizer.lr == whole.optimizer.lr
    assert resumed.updates == whole.updates and resumed.epochs == whole.epochs == 4
    assert repr(resumed) == repr(whole)


def test_checkpoint_is_atomic_and_rejects_bad_files(tmp_path, monkeypatch):
    trainer, data, options = make_trainer("streams-never-sgd-step-gru")
    trainer.fit(*data, **options)
    path = tmp_path / "c.npz"
    trainer.save_checkpoint(path)
    good = path.read_bytes()
    monkeypatch.setattr(rnnx.io.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(path)
    monkeypatch.undo()
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["c.npz"]
    rnnx.save(trainer.model, tmp_path / "model.npz")
    with pytest.raises(ValueError, match="no '__checkpoint__' entry"):
        Trainer.from_checkpoint(tmp_path / "model.npz")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["optimizer/velocity/0.weight_ih_l0"] = np.zeros(3)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"not a valid rnnx checkpoint.*velocity.*shape \(15, 1\)"):
        Trainer.from_checkpoint(tmp_path / "bad.npz")


def test_checkpoint_refuses_a_custom_loss(tmp_path):
    class MyLoss(rnnx.MSELoss):
        pass
    model = lstm_model()
    with pytest.raises(TypeError, match="rnnx's losses only"):
        Trainer(model, MyLoss(), rnnx.SGD(model.parameters())).save_checkpoint(tmp_path / "c")


def test_trainer_repr():
    model = lstm_model()
    opt = rnnx.Adam(model.parameters(), lr=0.01)
    text = repr(Trainer(model, "mse", opt, bptt=(5, 8), clip_norm=1.0,
                        scheduler=rnnx.StepLR(opt, 3)))
    assert text.startswith("Trainer(Sequential(LSTM(") and "\n" not in text
    for part in ("MSELoss(reduction='mean')", "Adam(", "lr=0.01", "bptt=(5, 8)", "clip_norm=1.0",
                 "StepLR(Adam, step_size=3, gamma=0.1", "updates=0", "epochs=0"):
        assert part in text


def test_seed_errors_name_seed():
    model = lstm_model()
    with pytest.raises(ValueError, match="seed must be None or an int >= 0, got -1"):
        Trainer(model, "mse", rnnx.SGD(model.parameters()), seed=-1)

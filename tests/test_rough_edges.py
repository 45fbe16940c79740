"""What a new user met (issue 21) beside the fuzz cases of tests/test_fuzz_edges.py: a warning
when truncation is longer than the sequences, the hints between rnnx.load and
Trainer.from_checkpoint, and saving through a symbolic link."""
import os
import warnings

import numpy as np
import pytest

import rnnx


def _model():
    return rnnx.Sequential(rnnx.GRU(2, 4, dtype=np.float64, seed=0),
                           rnnx.Dense(4, 1, dtype=np.float64, seed=1))


def _data(T=12, N=3):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, 2))
    return x, np.sin(np.cumsum(x[..., :1], axis=0))


@pytest.mark.parametrize("bptt", [100, (20, 30), (5, 13)])
def test_truncation_longer_than_the_sequences_warns_and_truncates_nothing(bptt):
    x, y = _data(T=12)
    model = _model()
    trainer = rnnx.Trainer(model, "mse", rnnx.SGD(model.parameters(), lr=0.1), bptt=bptt,
                           seed=0, progress=False)
    with pytest.warns(UserWarning, match=r"sequences have T=12: no gradient is truncated") as seen:
        trainer.fit(x, y, epochs=2)
    assert seen[0].filename == __file__          # points at the caller's fit()
    if not isinstance(bptt, tuple) or bptt[0] >= 12:
        # one window covers the sequence: the same updates as full BPTT
        full = _model()
        rnnx.Trainer(full, "mse", rnnx.SGD(full.parameters(), lr=0.1), seed=0,
                     progress=False).fit(x, y, epochs=2)
        for name, value in full.state_dict().items():
            np.testing.assert_allclose(model.state_dict()[name], value, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bptt", [None, 12, 5, (4, 12)])
def test_truncation_within_the_sequences_says_nothing(bptt):
    x, y = _data(T=12)
    model = _model()
    trainer = rnnx.Trainer(model, "mse", rnnx.SGD(model.parameters(), lr=0.1), bptt=bptt,
                           progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.fit(x, y, epochs=1)


def test_load_and_from_checkpoint_point_to_each_other(tmp_path):
    model = _model()
    trainer = rnnx.Trainer(model, "mse", rnnx.Adam(model.parameters()), progress=False)
    trainer.save_checkpoint(tmp_path / "run.npz")
    rnnx.save(model, tmp_path / "model.npz")
    with pytest.raises(ValueError, match=r"Trainer checkpoint: use rnnx\.Trainer\.from_checkpoint"):
        rnnx.load(tmp_path / "run.npz")
    with pytest.raises(ValueError, match=r"model file: use rnnx\.load"):
        rnnx.Trainer.from_checkpoint(tmp_path / "model.npz")
    # and each still reads its own
    assert isinstance(rnnx.Trainer.from_checkpoint(tmp_path / "run.npz"), rnnx.Trainer)
    assert isinstance(rnnx.load(tmp_path / "model.npz"), rnnx.Sequential)


@pytest.mark.parametrize("extension", [".npz", ".rnnx"])
def test_save_through_a_symlink_replaces_the_file_and_keeps_the_link(tmp_path, extension):
    target = tmp_path / ("real" + extension)
    link = tmp_path / ("link" + extension)
    rnnx.save(_model(), target)
    os.symlink(target.name, link)
    other = rnnx.Sequential(rnnx.GRU(2, 4, dtype=np.float64, seed=7),
                            rnnx.Dense(4, 1, dtype=np.float64, seed=8))
    rnnx.save(other, link)
    assert os.path.islink(link) and os.readlink(link) == target.name
    x, _ = _data(T=3)
    np.testing.assert_array_equal(rnnx.load(target)(x)[0], other(x)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, link.name])


def test_save_to_a_directory_is_refused_and_changes_nothing(tmp_path):
    folder = tmp_path / "models.npz"
    folder.mkdir()
    with pytest.raises(ValueError, match="path must be a file, got the directory"):
        rnnx.save(_model(), folder)
    assert list(folder.iterdir()) == []

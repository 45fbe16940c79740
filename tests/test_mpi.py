"""Trainer(comm=MPI.COMM_WORLD) under `mpirun -n 2` (tests/mpi_worker.py): parameters identical
on every rank, the same bits on a second run, and the loss, gradients and parameters of
single-process training on the whole batch to rounding, with full and truncated BPTT."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the optional extra rnnx[mpi]; CI installs it")
MPIRUN = shutil.which("mpirun")
WORKER = Path(__file__).with_name("mpi_worker.py")


def mpirun(n, script, *args, timeout=240):
    if MPIRUN is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have mpirun (.ci/run installs Open MPI: openmpi-bin)")
        pytest.skip("mpirun not found (CI installs Open MPI: openmpi-bin)")
    command = [MPIRUN, "-n", str(n), "--oversubscribe"]
    # containers often forbid the cross-process memory copy Open MPI tries first
    env = dict(os.environ, OMPI_MCA_rmaps_base_oversubscribe="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-run-as-root")
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    run = subprocess.run(command + [sys.executable, str(script), *args], capture_output=True,
                         text=True, timeout=timeout, env=env)
    assert run.returncode == 0, f"mpirun failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    return run.stdout


@pytest.fixture(scope="module")
def results():
    lines = [line for line in mpirun(2, WORKER).splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, "rank 0 prints one RESULT line"
    return json.loads(lines[0][len("RESULT "):])


@pytest.mark.parametrize("case, updates", [("float64_full", 3), ("float64_truncated", 15),
                                           ("float32_full", 3), ("float32_truncated", 12)])
def test_two_ranks_train_as_one_process_on_the_whole_batch(results, case, updates):
    r = results[case]
    assert results["size"] == 2
    assert r["updates"] == updates
    assert r["ranks_identical"], "parameters differ between ranks"
    assert r["repeat_identical"], "a second run gave other bits: the reduction order is not fixed"
    # float64: the rows' gradient sums are grouped per rank before they are added, so equal
    # to rounding (~1e-15) only; float32: to float32 rounding of sums over ~300 rows
    tol = 1e-13 if case.startswith("float64") else 2e-5
    assert r["loss_rel"] < tol, r
    assert r["grad_rel"] < tol, r
    assert r["param_rel"] < tol, r


def test_shuffled_minibatches_keep_ranks_identical(results):
    assert results["minibatch_ranks_identical"]


class FakeComm:
    """A one-rank communicator with mpi4py's method names, to test the checks in-process."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def Bcast(self, buf, root=0):
        pass

    def Alltoallv(self, send, recv):
        (data, (counts, starts)), (out, _) = send, recv
        out.reshape(-1)[:counts[0]] = data[starts[0]:starts[0] + counts[0]]

    def Allgatherv(self, send, recv):
        recv[0][:send.size] = send

    def allgather(self, value):
        return [value]


def test_one_rank_comm_equals_no_comm():
    # the combine path with one rank: weights by count, divides by the same count
    from rnnx.mpi import combine
    rng = np.random.default_rng(0)
    grads = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4).astype(np.float32)}
    loss, out, count = combine(FakeComm(), 0.75, grads, 8, mean=True)
    assert count == 8 and loss == pytest.approx(0.75, rel=1e-15)
    np.testing.assert_allclose(out["a"], grads["a"], rtol=1e-15)
    assert out["b"].dtype == np.float32
    loss, out, _ = combine(FakeComm(), 0.75, grads, 8, mean=False)
    assert loss == 0.75 and np.array_equal(out["a"], grads["a"])


def test_bad_comm_is_refused():
    import rnnx
    model = rnnx.Sequential(rnnx.LSTM(2, 3))
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        rnnx.Trainer(model, comm=object())


def test_ranks_must_agree_on_the_number_of_updates():
    from rnnx.mpi import check_same

    class TwoRanks(FakeComm):
        def allgather(self, value):
            return [value, {**value, "batches": value["batches"] + 1}]

    with pytest.raises(ValueError, match="every rank must have the same batches"):
        check_same(TwoRanks(), batches=3, time_steps=10)


@pytest.mark.parametrize("bptt", [None, 6])
def test_trainer_with_a_one_rank_comm_trains_as_without(bptt):
    # the Trainer's hooks (broadcast, combine, checks) in-process, without mpirun
    import rnnx
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 5, 2))
    y = rng.standard_normal((20, 5, 1))
    lengths = np.array([20, 4, 13, 9, 20])
    runs = []
    for comm in (None, FakeComm()):
        model = rnnx.Sequential(rnnx.GRU(2, 4, dtype=np.float64, seed=0),
                                rnnx.Dense(4, 1, dtype=np.float64, seed=1))
        trainer = rnnx.Trainer(model, "mse", rnnx.SGD(model.parameters(), lr=0.1), bptt=bptt,
                               seed=0, progress=False, comm=comm)
        history = trainer.fit(x, y, lengths, epochs=2)
        runs.append((history, model.state_dict()))
    (h0, p0), (h1, p1) = runs
    np.testing.assert_allclose(h1["step_loss"], h0["step_loss"], rtol=1e-14)
    np.testing.assert_allclose(h1["loss"], h0["loss"], rtol=1e-14)
    for name in p0:
        np.testing.assert_allclose(p1[name], p0[name], rtol=1e-13, atol=1e-15, err_msg=name)


EXCHANGE = Path(__file__).with_name("mpi_exchange_worker.py")


@pytest.mark.parametrize("ranks", [2, 4, 8])
def test_exchange_moves_o_parameters_per_rank_and_keeps_the_bits(ranks):
    """The reduce-scatter + allgather exchange: every rank gets the same bits, the bits the
    Allgather of whole buffers gave, and sends/receives under 2x the buffer whatever the
    number of ranks (the Allgather received ranks-1 buffers)."""
    lines = [line for line in mpirun(ranks, EXCHANGE).splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, "rank 0 prints one RESULT line"
    r = json.loads(lines[0][len("RESULT "):])
    assert r["size"] == ranks
    assert r["ranks_identical"] and r["same_bits_as_allgather"]
    assert r["count"] == r["want_count"]
    n = r["buffer_bytes"]
    # each rank: (P-1)/P of the buffer out in the Alltoallv and again in the Allgatherv (the
    # slices differ by at most one element), and as much in
    expected = 2 * (ranks - 1) / ranks * n
    for traffic in (r["sent"], r["received"]):
        assert len(traffic) == ranks
        assert all(abs(t - expected) <= 16 * ranks for t in traffic), (traffic, expected)
        assert all(t < 2 * n for t in traffic)

"""Run by tests/test_mpi.py under `mpirun -n 2`: data-parallel training with
Trainer(comm=MPI.COMM_WORLD) against single-process training on the whole batch.

Each rank builds the model with its own seed (rank 0's weights must reach every rank), fits
its shard of the sequences, and rank 0 prints one line `RESULT {json}` with, per case:
whether every rank ended with the same parameters (bit for bit), whether a second run gave
the same bits, and the largest relative differences to single-process training."""
import json
import sys

import numpy as np
from mpi4py import MPI

import rnnx


def build(dtype, seed):
    return rnnx.Sequential(rnnx.LSTM(2, 6, dtype=dtype, seed=seed),
                           rnnx.Dense(6, 1, dtype=dtype, seed=seed + 1))


def dataset(dtype):
    rng = np.random.default_rng(0)
    T, N = 30, 11
    x = rng.standard_normal((T, N, 2)).astype(dtype)
    y = np.sin(np.cumsum(x[..., :1], axis=0)).astype(dtype)
    lengths = rng.integers(5, T + 1, N)
    return x, y, lengths


def train(comm, dtype, bptt, rows, seed, batch_size=None):
    x, y, lengths = dataset(dtype)
    model = build(dtype, seed)
    trainer = rnnx.Trainer(model, "mse", rnnx.Adam(model.parameters(), lr=1e-2), bptt=bptt,
                           clip_norm=1.0, seed=0, progress=False, comm=comm)
    grads = []

    def keep_grads(info):
        grads.append({name: g.copy() for name, g in info["grads"].items()})

    history = trainer.fit(x[:, rows], y[:, rows], lengths[rows], epochs=3,
                          batch_size=batch_size, callback=keep_grads)
    flat = np.concatenate([p.ravel() for _, p in sorted(model.state_dict().items())])
    return history["step_loss"], grads, flat


def max_rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def main():
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    x, _, _ = dataset(np.float64)
    shard = np.array_split(np.arange(x.shape[1]), size)[rank]
    results = {}
    cases = {"float64_full": (np.float64, None), "float64_truncated": (np.float64, (7, 10)),
             "float32_full": (np.float32, None), "float32_truncated": (np.float32, 8)}
    for name, (dtype, bptt) in cases.items():
        losses, grads, params = train(comm, dtype, bptt, shard, seed=100 + rank)
        losses2, _, params2 = train(comm, dtype, bptt, shard, seed=100 + rank)
        everyone = comm.allgather(params)
        if rank == 0:
            whole = np.arange(x.shape[1])
            ref_losses, ref_grads, ref_params = train(None, dtype, bptt, whole, seed=100)
            results[name] = {
                "updates": len(losses),
                "ranks_identical": all(np.array_equal(p, everyone[0]) for p in everyone),
                "repeat_identical": losses == losses2 and np.array_equal(params, params2),
                "loss_rel": max_rel(losses, ref_losses),
                "grad_rel": max(max_rel(g[k], r[k]) for g, r in zip(grads, ref_grads) for k in r),
                "param_rel": max_rel(params, ref_params),
            }
    # mini-batches of 3 sequences per rank, shuffled per rank: the ranks must stay in step
    _, _, params = train(comm, np.float64, None, shard, seed=100 + rank, batch_size=3)
    everyone = comm.allgather(params)
    if rank == 0:
        results["minibatch_ranks_identical"] = all(np.array_equal(p, everyone[0])
                                                   for p in everyone)
        results["size"] = size
        print("RESULT " + json.dumps(results), flush=True)


if __name__ == "__main__":
    sys.exit(main())

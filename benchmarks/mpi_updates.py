"""Updates per second of data-parallel training, Trainer(comm=MPI.COMM_WORLD), for a fixed
global batch split over the ranks.

    mpirun -n 1 python benchmarks/mpi_updates.py
    mpirun -n 2 python benchmarks/mpi_updates.py        # (as root: --allow-run-as-root)
    mpirun --oversubscribe -n 8 python benchmarks/mpi_updates.py   # more ranks than cores

Model: LSTM(16, 128) + Dense(128, 1), float32, MSE, Adam; global batch N=64 sequences of
T=100 steps, full BPTT, one update per epoch over the rank's shard. BLAS threads are left as
the environment sets them (set OPENBLAS_NUM_THREADS=1 for one core per rank). Rank 0 prints
one line: ranks, updates/s, the time one update spends in the gradient exchange (waiting for
the slowest rank included), each rank's CPU time per update (its share of the work), and the
bytes each rank sent and received per update (rnnx.mpi.TrafficCounter), beside what the
Allgather of whole buffers that the exchange replaced would move: (ranks - 1) buffers.
"""
import json
import sys
import time

import numpy as np
from mpi4py import MPI

import rnnx

T, N, I, H = 100, 64, 16, 128
UPDATES = 20


def main():
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    y = np.tanh(np.cumsum(x[..., :1], axis=0) / 10).astype(np.float32)
    shard = np.array_split(np.arange(N), size)[rank]
    model = rnnx.Sequential(rnnx.LSTM(I, H, seed=0), rnnx.Dense(H, 1, seed=1))
    from rnnx import mpi
    counter = mpi.TrafficCounter(comm)
    trainer = rnnx.Trainer(model, "mse", rnnx.Adam(model.parameters(), lr=1e-3), seed=0,
                           progress=False, comm=counter)
    xs, ys = x[:, shard], y[:, shard]
    trainer.fit(xs, ys, epochs=2)                       # warm up
    collective = [0.0]
    combine = mpi.combine

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = combine(*args, **kwargs)
        collective[0] += time.perf_counter() - start
        return out

    mpi.combine = timed
    counter.sent = counter.received = 0
    comm.Barrier()
    start, cpu_start = time.perf_counter(), time.process_time()
    history = trainer.fit(xs, ys, epochs=UPDATES)
    cpu = time.process_time() - cpu_start
    comm.Barrier()
    seconds = time.perf_counter() - start
    cpu = comm.allgather(cpu)
    traffic = comm.allgather((counter.sent / UPDATES, counter.received / UPDATES))
    buffer_bytes = 8 * (model.num_parameters() + 2)
    if rank == 0:
        print(json.dumps({"ranks": size, "global_batch": N, "T": T, "hidden": H,
                          "updates_per_s": UPDATES / seconds,
                          "collective_ms_per_update": 1e3 * collective[0] / UPDATES,
                          "cpu_ms_per_update_per_rank": [1e3 * c / UPDATES for c in cpu],
                          "buffer_bytes": buffer_bytes,
                          "sent_bytes_per_update_per_rank": [t[0] for t in traffic],
                          "received_bytes_per_update_per_rank": [t[1] for t in traffic],
                          "allgather_bytes_per_update_per_rank": (size - 1) * buffer_bytes,
                          "final_loss": history["loss"][-1]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

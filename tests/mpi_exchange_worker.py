"""Run by tests/test_mpi.py under `mpirun -n P`: rnnx.mpi.combine's gradient exchange alone.

Every rank makes its own gradients (a fixed seed per rank) and combines them through
rnnx.mpi.TrafficCounter, which counts the bytes each collective moves to and from this rank
(the rank's own part excluded). Rank 0 prints one line `RESULT {json}`: whether every rank got the same
bits, whether they are the bits of the Allgather exchange combine replaced (every rank's
whole buffer gathered, then summed in rank order), and the bytes each rank sent and received.
"""
import json
import sys

import numpy as np
from mpi4py import MPI

from rnnx import mpi

SIZES = {"weight_ih": (4 * 64, 16), "weight_hh": (4 * 64, 64), "bias": (4 * 64,),
         "head": (3, 64)}


def allgather_combine(comm, loss, grads, count):
    """The exchange before: every rank's whole buffer on every rank, summed in rank order."""
    names = sorted(grads)
    local = np.concatenate([grads[n].ravel() * float(count) for n in names]
                           + [[loss * count, count]])
    gathered = np.empty((comm.Get_size(), local.size))
    comm.Allgather(local, gathered)
    total = gathered[0].copy()
    for part in gathered[1:]:
        total += part
    scale = 1.0 / total[-1]
    out, offset = {}, 0
    for n in names:
        size = grads[n].size
        out[n] = (total[offset:offset + size] * scale).reshape(grads[n].shape)
        offset += size
    return float(total[-2] * scale), out


def main():
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    rng = np.random.default_rng(1000 + rank)
    grads = {name: rng.standard_normal(shape) for name, shape in SIZES.items()}
    count = int(rng.integers(1, 50))
    loss = float(rng.random())
    counting = mpi.TrafficCounter(comm)
    got_loss, got, got_count = mpi.combine(counting, loss, grads, count, mean=True)
    want_loss, want = allgather_combine(comm, loss, grads, count)
    flat = np.concatenate([got[n].ravel() for n in sorted(got)] + [[got_loss, got_count]])
    everyone = comm.allgather(flat)
    as_before = got_loss == want_loss and all(np.array_equal(got[n], want[n]) for n in want)
    as_before = comm.allgather(as_before)
    traffic = comm.allgather((counting.sent, counting.received))
    counts = comm.allgather(count)
    if rank == 0:
        buffer_bytes = 8 * (sum(g.size for g in grads.values()) + 2)
        print("RESULT " + json.dumps({
            "size": size, "buffer_bytes": buffer_bytes,
            "ranks_identical": all(np.array_equal(f, everyone[0]) for f in everyone),
            "same_bits_as_allgather": all(as_before),
            "count": got_count, "want_count": sum(counts),
            "sent": [t[0] for t in traffic], "received": [t[1] for t in traffic]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

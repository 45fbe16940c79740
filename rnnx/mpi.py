"""Data-parallel training over MPI (mpi4py): Trainer(..., comm=MPI.COMM_WORLD).

Every rank runs the same training loop on its own shard of the sequences (the batch axis),
with the same model, optimizer and truncation settings:

    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    shard = np.array_split(np.arange(N), comm.size)[comm.rank]
    trainer = rnnx.Trainer(model, "mse", rnnx.Adam(model.parameters()), comm=comm)
    trainer.fit(x[:, shard], y[:, shard])           # mpirun -n 4 python train.py

At construction rank 0's parameters are broadcast to all ranks.  At every update each rank
runs forward and backward on its part of the mini-batch and packs one flat float64 buffer:
the gradients, weighted by the rank's number of loss positions for a "mean" loss, then the
loss and that number.  The buffers are summed over the ranks as a reduce-scatter followed by
an allgather, each written with collectives whose result does not depend on how MPI adds:

    Alltoallv   the buffer is cut into one slice per rank; rank r receives slice r of every
                rank and sums them itself, in rank order (rank 0's + rank 1's + ...)
    Allgatherv  every rank receives the summed slices

So each rank sends and receives about 2 (P-1)/P times the buffer, O(parameters) whatever
the number of ranks P (the Allgather of every rank's whole buffer this replaced moved P-1
buffers per rank), and every element is added in the same order as before, so the result
has the same bits as that Allgather's, the same on every rank and in every run.  The result
is the whole batch's: for reduction "mean", the sum over ranks of count_r * grad_r divided
by the total count, the gradient of the mean over all positions of all ranks.  Clipping,
the non-finite checks and the optimizer step then run on that, identically on every rank,
so the parameters stay identical without being sent again.

An Allreduce (or MPI's Reduce_scatter) would do the same in one call, but MPI does not fix
the order of its sums, so ranks and runs could differ in the last bit.  The result equals
single-process training on the whole batch to rounding (float64: ~1e-15 relative, the rows'
gradient sums being grouped per rank before they are added up).
"""
import numpy as np

__all__ = ["check_comm", "broadcast_parameters", "sum_in_rank_order", "combine", "check_same",
           "TrafficCounter"]


def check_comm(comm):
    """comm must look like an mpi4py communicator; returns it."""
    needed = ("Get_rank", "Get_size", "Alltoallv", "Allgatherv", "Bcast", "allgather")
    missing = [name for name in needed if not hasattr(comm, name)]
    if missing:
        raise TypeError(f"comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD), got "
                        f"{type(comm).__name__} without {missing}")
    return comm


def broadcast_parameters(params, comm, root=0):
    """Copy root's parameters into every rank's arrays (in place), as one flat buffer."""
    names = sorted(params)
    flat = np.concatenate([params[n].ravel().astype(np.float64) for n in names]) if names \
        else np.zeros(0)
    comm.Bcast(flat, root=root)
    offset = 0
    for n in names:
        size = params[n].size
        params[n][...] = flat[offset:offset + size].reshape(params[n].shape)
        offset += size


def _slice_bounds(n, size):
    """Where the flat buffer of n elements is cut: rank r owns [bounds[r], bounds[r + 1])."""
    return [(n * r) // size for r in range(size + 1)]


def sum_in_rank_order(comm, local):
    """The elementwise sum over ranks of `local` (a flat float64 buffer, the same length on
    every rank), added in rank order, on every rank: the same bits everywhere.

    A reduce-scatter then an allgather: about 2 (P-1)/P * local.nbytes sent and as many
    received per rank, for any number of ranks P."""
    size, rank = comm.Get_size(), comm.Get_rank()
    bounds = _slice_bounds(local.size, size)
    counts = [bounds[r + 1] - bounds[r] for r in range(size)]
    starts = bounds[:-1]
    mine = counts[rank]
    # slice `rank` of every rank, as rows (size, mine) in rank order
    parts = np.empty((size, mine), np.float64)
    comm.Alltoallv([local, (counts, starts)],
                   [parts, ([mine] * size, [r * mine for r in range(size)])])
    summed = parts[0].copy()
    for part in parts[1:]:         # in rank order: the order the Allgather version added in
        summed += part
    total = np.empty(local.size, np.float64)
    comm.Allgatherv(summed, [total, (counts, starts)])
    return total


def combine(comm, loss, grads, count, mean=True):
    """Whole-batch loss, gradients and count from every rank's part (see sum_in_rank_order).

    loss: this rank's loss (mean over its `count` positions if mean, else a sum);
    grads: {name: array}; count: this rank's number of loss positions.
    Returns (loss, grads, count) of the whole batch, the same bits on every rank."""
    names = sorted(grads)
    weight = float(count) if mean else 1.0
    sizes = [grads[n].size for n in names]
    local = np.empty(sum(sizes) + 2, np.float64)
    offset = 0
    for n, size in zip(names, sizes):
        local[offset:offset + size] = grads[n].ravel()
        offset += size
    if mean:
        local[:offset] *= weight
    local[offset] = loss * weight
    local[offset + 1] = count
    total = sum_in_rank_order(comm, local)
    total_count = total[-1]
    scale = 1.0 / max(total_count, 1.0) if mean else 1.0
    out, offset = {}, 0
    for n, size in zip(names, sizes):
        g = total[offset:offset + size]
        out[n] = (g * scale if mean else g).reshape(grads[n].shape).astype(grads[n].dtype)
        offset += size
    return float(total[-2] * scale), out, int(total_count)


def check_same(comm, **values):
    """Raise ValueError, on every rank, unless every rank has the same values (e.g. the number
    of mini-batches and of time steps: a rank that ran more updates would wait forever)."""
    everyone = comm.allgather(values)
    for key in values:
        seen = [v[key] for v in everyone]
        if any(s != seen[0] for s in seen):
            raise ValueError(f"with comm, every rank must have the same {key}; the ranks have "
                             f"{seen}")


class TrafficCounter:
    """A communicator that counts the bytes this rank's gradient exchanges send to and receive
    from the other ranks (its own slice excluded): ``Trainer(..., comm=TrafficCounter(comm))``
    then ``.sent`` and ``.received``.  Everything else goes to comm unchanged."""

    def __init__(self, comm):
        self.comm, self.sent, self.received = check_comm(comm), 0, 0

    def __getattr__(self, name):
        return getattr(self.comm, name)

    def Alltoallv(self, send, recv):
        rank = self.comm.Get_rank()
        (data, (send_counts, _)), (out, (recv_counts, _)) = send, recv
        self.sent += data.itemsize * (sum(send_counts) - send_counts[rank])
        self.received += out.itemsize * (sum(recv_counts) - recv_counts[rank])
        return self.comm.Alltoallv(send, recv)

    def Allgatherv(self, send, recv):
        rank, size = self.comm.Get_rank(), self.comm.Get_size()
        out, (counts, _) = recv
        self.sent += send.nbytes * (size - 1)
        self.received += out.itemsize * (sum(counts) - counts[rank])
        return self.comm.Allgatherv(send, recv)

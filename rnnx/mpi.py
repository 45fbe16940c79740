"""Data-parallel training over MPI (mpi4py): Trainer(..., comm=MPI.COMM_WORLD).

Every rank runs the same training loop on its own shard of the sequences (the batch axis),
with the same model, optimizer and truncation settings:

    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    shard = np.array_split(np.arange(N), comm.size)[comm.rank]
    trainer = rnnx.Trainer(model, "mse", rnnx.Adam(model.parameters()), comm=comm)
    trainer.fit(x[:, shard], y[:, shard])           # mpirun -n 4 python train.py

At construction rank 0's parameters are broadcast to all ranks.  At every update each rank
runs forward and backward on its part of the mini-batch; then ONE collective (an Allgather
of one flat float64 buffer per rank: the gradients, weighted by the rank's number of loss
positions for a "mean" loss, then the loss and that number) gives every rank all the parts,
which each rank sums in rank order, itself, so every rank gets the same bits.  The result
is the whole batch's: for reduction "mean", the sum over ranks of count_r * grad_r divided
by the total count, the gradient of the mean over all positions of all ranks.  Clipping,
the non-finite checks and the optimizer step then run on that, identically on every rank,
so the parameters stay identical without being sent again.

An Allreduce would send less, but MPI does not fix the order of its sums, so ranks and runs
could differ in the last bit; with the Allgather the result is reproducible.  It equals
single-process training on the whole batch to rounding (float64: ~1e-15 relative, the rows'
gradient sums being grouped per rank before they are added up).
"""
import numpy as np

__all__ = ["check_comm", "broadcast_parameters", "combine", "check_same"]


def check_comm(comm):
    """comm must look like an mpi4py communicator; returns it."""
    needed = ("Get_rank", "Get_size", "Allgather", "Bcast", "allgather")
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


def combine(comm, loss, grads, count, mean=True):
    """Whole-batch loss, gradients and count from every rank's part, with one Allgather.

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
    gathered = np.empty((comm.Get_size(), local.size), np.float64)
    comm.Allgather(local, gathered)
    total = gathered[0].copy()
    for part in gathered[1:]:      # in rank order, on every rank: the same sum everywhere
        total += part
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

"""Checkpointed BPTT: full backpropagation through time in O(T/k + k) steps of memory.

A training forward keeps, for every step, what backward needs (LSTM: gates, c, tanh(c), h:
about 7*B*H numbers a step, and backward adds 4*B*H more), so full BPTT over T steps holds
O(T) of it.  With checkpoint=k the forward runs without a cache, in segments of k steps, and
keeps only the state where each segment starts.  Backward then walks the segments last
first: it re-runs one segment's training forward from its saved state, backpropagates
through it with the state gradient handed over from the later segment, and accumulates the
weight gradients into the same arrays.  Memory: the T/k saved states plus one segment's
cache, at the price of a second forward (about 1.3x the time of plain BPTT).

    y, state, cache = layer.forward(x, checkpoint=50)        # or checkpoint="sqrt"
    dx, dstate0, grads = layer.backward(cache, dy)           # as without checkpointing

The segmenting is done per layer of the stack and per direction, so bidirectional layers
work too: a reverse direction runs its segments from the end of the sequence, keeping the
state where each of them starts (at its later end), and its backward walks them first to
last.  What stays O(T) is what the caller holds anyway: the input x and every layer's output
y (one (T, B, D*H) array per layer of the stack, a seventh of an LSTM's plain cache).

The gradients equal those of plain BPTT bit for bit in float64: the C core sums the weight
gradients over rows in the backward loop's order, one row at a time, so segments processed
last first into the same arrays make the same sums (csrc/kernels/ordered.c, gemm_rows_acc).  In
float32 the core keeps BLAS for those sums (faster), whose rounding depends on how many rows
a call has: segmented and whole agree to float32 rounding.
"""
import math

import numpy as np

from . import _core

__all__ = ["segment_length", "CheckpointCache"]


def segment_length(checkpoint, T):
    """The number of steps per segment for checkpoint=k (an int >= 1) or "sqrt" (the int
    nearest sqrt(T), at least 1), for a sequence of T steps."""
    if isinstance(checkpoint, str):
        if checkpoint != "sqrt":
            raise ValueError(f"checkpoint must be None, an int >= 1 or 'sqrt', got {checkpoint!r}")
        return max(1, int(round(math.sqrt(T))))
    if isinstance(checkpoint, (bool, np.bool_)) or not isinstance(checkpoint, (int, np.integer)):
        raise TypeError(f"checkpoint must be None, an int >= 1 or 'sqrt', got "
                        f"{type(checkpoint).__name__}")
    if checkpoint < 1:
        raise ValueError(f"checkpoint must be None, an int >= 1 or 'sqrt', got {checkpoint}")
    return int(checkpoint)


class CheckpointCache:
    """What a checkpointed training forward keeps: each layer's input and the state at the
    start of every segment of every layer-direction.  Opaque; pass it to backward."""

    __slots__ = ("owner", "snapshot", "inputs", "starts", "bounds", "lengths", "T", "B",
                 "batched", "has_c")

    def __init__(self, owner, inputs, starts, bounds, lengths, T, B, batched, has_c):
        self.owner = owner
        self.snapshot = owner._snapshot()   # backward recomputes: stale weights must raise
        self.inputs = inputs      # [layer k] (T, B, I_k) input of layer k of the stack
        self.starts = starts      # [k*D + d][segment] (h, c or None) where the segment starts
        self.bounds = bounds      # [(t0, t1)] the segments, in time order
        self.lengths = lengths
        self.T, self.B, self.batched, self.has_c = T, B, batched, has_c


def _segment_lengths(lengths, t0, t1):
    """(lengths inside [t0, t1) or None, mask of the rows that ended before t0 or None).

    The core needs lengths >= 1, so a row that ended before t0 runs one step at the
    segment's first time step; the caller undoes that step (its output is zeroed and its
    state restored in forward; in backward its gradients in are zeroed and its state
    gradient passed through), which leaves exactly what a row past its length gets."""
    if lengths is None or lengths.min() >= t1:
        return None, None
    ended = lengths <= t0
    return np.clip(lengths - t0, 1, t1 - t0), (ended if ended.any() else None)


def _restore_rows(ended, *pairs):
    """new[ended] = old[ended] for each (new, old) pair of (B, H) arrays (h, then c or
    None for none): the rows that ended before the segment keep what they had."""
    for new, old in pairs:
        if new is not None:
            new[ended] = old[ended]


def forward(layer, x, state, lengths, checkpoint):
    """layer.forward(x, state, lengths, checkpoint=...): (y, final state, CheckpointCache)."""
    x_given = x
    x, batched, lengths = layer._check_input(x, lengths)
    T, B = x.shape[0], x.shape[1]
    k = segment_length(checkpoint, T)
    if layer.training and layer.dropout > 0 and layer.num_layers > 1:
        raise ValueError(f"checkpoint={checkpoint!r} does not support dropout between layers "
                         f"(dropout={layer.dropout}): use checkpoint=None, or dropout=0")
    init = layer._check_states(state, B, batched, "state")
    final = [np.empty_like(s) for s in init]
    has_c = len(init) == 2
    H, D = layer.output_size // layer.num_directions, layer.num_directions  # H: y's width per direction
    bounds = [(t0, min(t0 + k, T)) for t0 in range(0, T, k)]
    inputs, starts = [], []
    layer_input = x
    for kk in range(layer.num_layers):
        y = np.empty((T, B, D * H), layer.dtype)
        for d in range(D):
            i = kk * D + d
            weights = layer._weights(kk, d)
            options = layer._cell_options(kk, d)   # an LSTM's {"w_hr", "w_peep"}, or {}
            h, c = init[0][i], (init[1][i] if has_c else None)
            saved = [None] * len(bounds)
            # a reverse direction runs from the end: its segments in reverse time order
            for s in (reversed(range(len(bounds))) if layer._reverse(d) else range(len(bounds))):
                t0, t1 = bounds[s]
                saved[s] = (h, c)
                seg_lengths, ended = _segment_lengths(lengths, t0, t1)
                h_n = np.empty_like(h)
                c_n = np.empty_like(c) if has_c else None
                y_seg = y[t0:t1, :, d * H:(d + 1) * H]
                _core.forward(layer._cell, layer_input[t0:t1], h, c, *weights, seg_lengths,
                              layer._reverse(d), y_seg, h_n, c_n, False, **options)
                if ended is not None:  # undo the one step the ended rows were run for
                    y_seg[0, ended] = 0
                    _restore_rows(ended, (h_n, h), (c_n, c))
                h, c = h_n, c_n
            final[0][i] = h
            if has_c:
                final[1][i] = c
            starts.append(saved)
        inputs.append(layer_input)
        layer_input = y
    if np.may_share_memory(inputs[0], x_given):
        inputs[0] = inputs[0].copy()  # backward must see x as it was, whatever the caller does
    cache = CheckpointCache(layer, inputs, starts, bounds, lengths, T, B, batched, has_c)
    return layer._to_output(layer_input, batched), layer._pack_state(final, batched), cache


def backward(layer, cache, dy, dstate):
    """layer.backward(cache, dy, dstate) for a CheckpointCache: (dx, dstate0, grads)."""
    layer._check_fresh(cache)
    T, B, batched, has_c = cache.T, cache.B, cache.batched, cache.has_c
    H, D = layer.output_size // layer.num_directions, layer.num_directions
    dy = layer._check_output_grad(dy, T, B, batched)
    dfinal = layer._check_states(dstate, B, batched, "dstate")
    dinit = [np.empty_like(s) for s in dfinal]
    grads = {name: np.zeros_like(p) for name, p in layer._params.items()}
    bounds, lengths = cache.bounds, cache.lengths
    for kk in reversed(range(layer.num_layers)):
        layer_input = cache.inputs[kk]
        dx = np.zeros_like(layer_input)
        for d in range(D):
            i = kk * D + d
            w_ih, w_hh, b_ih, b_hh = layer._weights(kk, d)
            dw, proj = layer._grad_args(grads, kk, d)
            dh, dc = dfinal[0][i], (dfinal[1][i] if has_c else None)
            # backward walks the segments in the reverse of the forward's order
            for s in (range(len(bounds)) if layer._reverse(d) else reversed(range(len(bounds)))):
                t0, t1 = bounds[s]
                h0, c0 = cache.starts[i][s]
                seg_lengths, ended = _segment_lengths(lengths, t0, t1)
                x_seg = layer_input[t0:t1]
                y_seg = np.empty((t1 - t0, B, H), layer.dtype)
                h_n = np.empty_like(h0)
                c_n = np.empty_like(c0) if has_c else None
                core_cache = _core.forward(layer._cell, x_seg, h0, c0, w_ih, w_hh, b_ih, b_hh,
                                           seg_lengths, layer._reverse(d), y_seg, h_n, c_n, True,
                                           **layer._cell_options(kk, d))
                dy_seg = None if dy is None else dy[t0:t1, :, d * H:(d + 1) * H]
                dh_in, dc_in = dh, dc
                if ended is not None:  # no gradient into the ended rows' one extra step
                    dh = dh.copy()
                    dh[ended] = 0
                    if has_c:
                        dc = dc.copy()
                        dc[ended] = 0
                    if dy_seg is not None:
                        dy_seg = dy_seg.copy()
                        dy_seg[0, ended] = 0
                dh0 = np.empty_like(h0)
                dc0 = np.empty_like(c0) if has_c else None
                _core.backward(layer._cell, x_seg, w_ih, w_hh, seg_lengths, layer._reverse(d), core_cache,
                               dy_seg, dh, dc, dx[t0:t1], dh0, dc0, *dw, **proj)
                if ended is not None:  # past their length the state gradient passes through
                    _restore_rows(ended, (dh0, dh_in), (dc0, dc_in))
                dh, dc = dh0, dc0
            dinit[0][i] = dh
            if has_c:
                dinit[1][i] = dc
        dy = dx
    return layer._to_output(dy, batched), layer._pack_state(dinit, batched), grads

"""Plain NumPy forward and backward of the RNN, LSTM and GRU cells: the slow twin.

This file is the oracle of the tests and the baseline of the benchmarks. It is written
to be read, not to be fast: one Python iteration per time step, the equations of
ARCHITECTURE.md line by line, and a backward pass that walks the chain rule with one
comment per step quoting the forward line it differentiates.

Conventions (shared with the C core):
    x (T,B,I)  h0, c0 (B,H)  y (T,B,H)
    w_ih (G*H, I)  w_hh (G*H, H)  b_ih, b_hh (G*H,) or None (no bias; their grads are None)
    gate order as in PyTorch: RNN -, LSTM i,f,g,o, GRU r,z,n
Everything is computed in the dtype of x (float32 or float64).

lengths (B,) ints with 0 <= len <= T, or None (every row is T steps long). A step t >= len[b]
is padding for row b: its output is 0, the state goes through unchanged, and it gets no
gradient. A row of length 0 runs no step: its outputs are 0, its final state is its initial
state, and the gradient of its final state passes to its initial state untouched. With reverse=True time runs T-1 .. 0, so the padded steps come first and each
row effectively starts at its own last valid step, from h0.

Backward takes dy (T,B,H) and the gradients of the final state (each may be None: zeros)
and returns the gradients of x, the initial state and every weight.

The state is handed over explicitly: the caller passes h_n of one chunk as h0 of the next.

An LSTM may have a projection (PyTorch's proj_size P, 0 < P < H): w_hr (P,H), no bias, and
h_t = W_hr (o * tanh(c_t)); then h0, h_n, y are P wide, w_hh is (4H,P), c stays (B,H), and
backward also returns dw_hr.

An LSTM may have peepholes (ONNX's P, Gers & Schmidhuber 2000): w_peephole (3H,), the
vectors p_i, p_f, p_o in that order (rnnx's order; ONNX's P is [p_i, p_o, p_f]), through
which the gates see the cell: i and f see c_{t-1}, o sees c_t (see lstm_forward).
"""
import numpy as np


def sigmoid(a):
    """1 / (1 + exp(-a)), written through tanh so that large |a| never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * a))


# ---------------------------------------------------------------------------------------
# Shared bookkeeping: dtype, biases, lengths, time order.

def _in_dtype_of(x, *arrays):
    """Return x and arrays (None stays None) as arrays of x's floating dtype; no copies."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    return [x] + [None if a is None else np.asarray(a, dtype=x.dtype) for a in arrays]


def _bias_or_zeros(b, rows, dtype):
    """No bias is a bias of zeros in the forward pass (adding 0.0 is exact)."""
    return np.zeros(rows, dtype) if b is None else b


def check_lengths(lengths, T, B, name="lengths"):
    """lengths as a new int64 (B,) array with every entry in [0, T], or None for None.

    The one check of a batch's lengths (the layers use it too). It always copies, so a
    cache that keeps the result does not see later changes to the caller's array."""
    if lengths is None:
        return None
    a = np.asarray(lengths)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {a.dtype}")
    if a.shape != (B,):
        raise ValueError(f"{name} must have shape ({B},) for a batch of {B}, got {a.shape}")
    if B and (a.min() < 0 or a.max() > T):
        raise ValueError(f"{name} must lie in [0, T={T}], got min {a.min()} and max {a.max()}")
    return np.array(a, dtype=np.int64, order="C", copy=True)


def _time_order(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _valid_rows(lengths, t, B):
    """(B,1) bool: True where step t lies inside row b's sequence."""
    if lengths is None:
        return np.ones((B, 1), dtype=bool)
    return (lengths > t)[:, None]


def _zeros_if_none(grad, shape, dtype):
    return np.zeros(shape, dtype) if grad is None else np.asarray(grad, dtype=dtype)


def _weight_grads(cache):
    """Zeroed accumulators for dw_ih, dw_hh, db_ih, db_hh (the one place they are zeroed)."""
    w_ih, w_hh = cache["w_ih"], cache["w_hh"]
    G = w_hh.shape[0]
    return np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(G, w_hh.dtype), np.zeros(G, w_hh.dtype)


def _bias_grads(cache, db_ih, db_hh):
    return (db_ih, db_hh) if cache["has_bias"] else (None, None)


# ---------------------------------------------------------------------------------------
# RNN (Elman):  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),  act = tanh | relu

def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh", lengths=None, reverse=False):
    """Returns y (T,B,H), h_n (B,H), cache."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    x, h0, w_ih, w_hh, b_ih, b_hh = _in_dtype_of(x, h0, w_ih, w_hh, b_ih, b_hh)
    T, B, _ = x.shape
    H = w_hh.shape[1]
    lengths = check_lengths(lengths, T, B)
    bias_ih, bias_hh = _bias_or_zeros(b_ih, H, x.dtype), _bias_or_zeros(b_hh, H, x.dtype)

    y = np.zeros((T, B, H), x.dtype)
    h = h0
    steps = []  # per step: (t, valid, h_prev, h_new), in the order they were computed
    for t in _time_order(T, reverse):
        valid = _valid_rows(lengths, t, B)
        a = x[t] @ w_ih.T + bias_ih + h @ w_hh.T + bias_hh           # (B,H) pre-activation
        h_new = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
        steps.append((t, valid, h, h_new))
        h = np.where(valid, h_new, h)                                # padded rows keep h
        y[t] = np.where(valid, h_new, 0)                             # and output 0
    cache = dict(cell="rnn", nonlinearity=nonlinearity, x=x, h0=h0, w_ih=w_ih, w_hh=w_hh,
                 has_bias=b_ih is not None, steps=steps)
    return y, h, cache


def rnn_backward(dy, dh_n, cache):
    """Returns dx, dh0, dw_ih, dw_hh, db_ih, db_hh (bias grads None without bias)."""
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    dy = _zeros_if_none(dy, x.shape[:2] + (w_hh.shape[1],), x.dtype)
    dh = _zeros_if_none(dh_n, cache["h0"].shape, x.dtype)   # dL/dh_t, carried backwards in time
    dx = np.zeros_like(x)
    dw_ih, dw_hh, db_ih, db_hh = _weight_grads(cache)
    for t, valid, h_prev, h_new in reversed(cache["steps"]):
        # forward: y_t = h_new and h_t = h_new on valid rows; padded rows saw neither
        dh_new = np.where(valid, dh + dy[t], 0)
        # forward: h_new = tanh(a)  (tanh' = 1 - h_new^2)  or  h_new = max(a, 0)
        if cache["nonlinearity"] == "tanh":
            da = dh_new * (1 - h_new * h_new)
        else:
            da = dh_new * (h_new > 0)
        # forward: a = x_t @ W_ih^T + b_ih + h_prev @ W_hh^T + b_hh
        dx[t] = da @ w_ih
        dw_ih += da.T @ x[t]
        dw_hh += da.T @ h_prev
        db_ih += da.sum(axis=0)
        db_hh += da.sum(axis=0)
        # forward: h_t = where(valid, h_new, h_prev), so padded rows pass dh straight through
        dh = np.where(valid, 0, dh) + da @ w_hh
    return (dx, dh, dw_ih, dw_hh) + _bias_grads(cache, db_ih, db_hh)


# ---------------------------------------------------------------------------------------
# LSTM:  [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
#        i, f, o = sigma(.)   g = tanh(.)   c_t = f*c_{t-1} + i*g   h_t = o*tanh(c_t)
# with peepholes p = [p_i p_f p_o] (3H,):
#        i = sigma(a_i + p_i*c_{t-1})   f = sigma(a_f + p_f*c_{t-1})   o = sigma(a_o + p_o*c_t)

def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=None, reverse=False, w_hr=None,
                 w_peephole=None):
    """Returns y (T,B,P), h_n (B,P), c_n (B,H), cache; P = H without a projection w_hr (P,H).
    w_peephole: None, or the peepholes (3H,) = [p_i p_f p_o]."""
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peephole = _in_dtype_of(
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peephole)
    T, B, _ = x.shape
    H = w_hh.shape[0] // 4
    P = H if w_hr is None else w_hr.shape[0]
    lengths = check_lengths(lengths, T, B)
    bias_ih, bias_hh = _bias_or_zeros(b_ih, 4 * H, x.dtype), _bias_or_zeros(b_hh, 4 * H, x.dtype)
    # no peephole is a peephole of zeros (adding 0.0 * c is exact for finite c)
    p_i, p_f, p_o = np.split(_bias_or_zeros(w_peephole, 3 * H, x.dtype), 3)

    y = np.zeros((T, B, P), x.dtype)
    h, c = h0, c0
    steps = []
    for t in _time_order(T, reverse):
        valid = _valid_rows(lengths, t, B)
        gates = x[t] @ w_ih.T + bias_ih + h @ w_hh.T + bias_hh       # (B,4H)
        a_i, a_f, a_g, a_o = np.split(gates, 4, axis=1)
        if w_peephole is not None:
            a_i = a_i + p_i * c                                      # i and f see c_{t-1}
            a_f = a_f + p_f * c
        i, f, g = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g)
        c_new = f * c + i * g
        if w_peephole is not None:
            a_o = a_o + p_o * c_new                                  # o sees c_t
        o = sigmoid(a_o)
        tanh_c = np.tanh(c_new)
        m = o * tanh_c                                               # (B,H)
        h_new = m if w_hr is None else m @ w_hr.T                    # the projection: (B,P)
        steps.append(dict(t=t, valid=valid, h_prev=h, c_prev=c, i=i, f=f, g=g, o=o, tanh_c=tanh_c,
                          m=m, c_new=c_new))
        h = np.where(valid, h_new, h)
        c = np.where(valid, c_new, c)
        y[t] = np.where(valid, h_new, 0)
    cache = dict(cell="lstm", x=x, h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, w_hr=w_hr,
                 w_peephole=w_peephole, has_bias=b_ih is not None, steps=steps)
    return y, h, c, cache


def lstm_backward(dy, dh_n, dc_n, cache):
    """Returns dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh (bias grads None without bias),
    then dw_hr when the forward had a projection, then dw_peephole (3H,) when it had
    peepholes."""
    x, w_ih, w_hh, w_hr = cache["x"], cache["w_ih"], cache["w_hh"], cache["w_hr"]
    w_peephole = cache["w_peephole"]
    H = w_hh.shape[0] // 4
    dy = _zeros_if_none(dy, x.shape[:2] + (cache["h0"].shape[1],), x.dtype)
    dh = _zeros_if_none(dh_n, cache["h0"].shape, x.dtype)
    dc = _zeros_if_none(dc_n, cache["c0"].shape, x.dtype)
    dx = np.zeros_like(x)
    dw_ih, dw_hh, db_ih, db_hh = _weight_grads(cache)
    dw_hr = None if w_hr is None else np.zeros_like(w_hr)
    p_i, p_f, p_o = np.split(_bias_or_zeros(w_peephole, 3 * H, x.dtype), 3)
    dp_i, dp_f, dp_o = (np.zeros(H, x.dtype) for _ in range(3))
    for s in reversed(cache["steps"]):
        t, valid, i, f, g, o, tanh_c = s["t"], s["valid"], s["i"], s["f"], s["g"], s["o"], s["tanh_c"]
        c_prev = s["c_prev"]
        # forward: y_t = h_new, h_t = where(valid, h_new, h_prev), c_t = where(valid, c_new, c_prev)
        dh_new = np.where(valid, dh + dy[t], 0)
        dc_new = np.where(valid, dc, 0)
        if w_hr is None:
            dm = dh_new
        else:
            # forward: h_new = m @ W_hr^T
            dw_hr += dh_new.T @ s["m"]
            dm = dh_new @ w_hr
        # forward: m = o * tanh_c, tanh_c = tanh(c_new)
        do = dm * tanh_c
        dc_new = dc_new + dm * o * (1 - tanh_c * tanh_c)
        # forward: o = sigma(a_o + p_o * c_new)  (sigma' = s(1-s)): c_new reaches the loss
        # through o too, and p_o's gradient is the sum over rows of da_o * c_new
        da_o = do * o * (1 - o)
        if w_peephole is not None:
            dc_new = dc_new + da_o * p_o
            dp_o += (da_o * s["c_new"]).sum(axis=0)
        # forward: c_new = f * c_prev + i * g
        df = dc_new * c_prev
        di = dc_new * g
        dg = dc_new * i
        # forward: i = sigma(a_i + p_i * c_prev), f = sigma(a_f + p_f * c_prev), g = tanh(a_g)
        da_i, da_f, da_g = di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g)
        dc_prev = dc_new * f
        if w_peephole is not None:
            # c_prev reaches i and f through the peepholes
            dc_prev = dc_prev + da_i * p_i + da_f * p_f
            dp_i += (da_i * c_prev).sum(axis=0)
            dp_f += (da_f * c_prev).sum(axis=0)
        dc = np.where(valid, 0, dc) + dc_prev          # padded rows pass dc through
        dgates = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
        # forward: gates = x_t @ W_ih^T + b_ih + h_prev @ W_hh^T + b_hh
        dx[t] = dgates @ w_ih
        dw_ih += dgates.T @ x[t]
        dw_hh += dgates.T @ s["h_prev"]
        db_ih += dgates.sum(axis=0)
        db_hh += dgates.sum(axis=0)
        dh = np.where(valid, 0, dh) + dgates @ w_hh     # padded rows pass dh through
    out = (dx, dh, dc, dw_ih, dw_hh) + _bias_grads(cache, db_ih, db_hh)
    out += () if w_hr is None else (dw_hr,)
    return out if w_peephole is None else out + (np.concatenate([dp_i, dp_f, dp_o]),)


# ---------------------------------------------------------------------------------------
# GRU:  r = sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
#       z = sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
#       reset_after=True:  n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
#       reset_after=False: n = tanh(W_in x_t + b_in + W_hn (r * h_{t-1}) + b_hn)
#       h_t = (1 - z) * n + z * h_{t-1}

def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, reset_after=True, lengths=None, reverse=False):
    """Returns y (T,B,H), h_n (B,H), cache."""
    x, h0, w_ih, w_hh, b_ih, b_hh = _in_dtype_of(x, h0, w_ih, w_hh, b_ih, b_hh)
    T, B, _ = x.shape
    H = w_hh.shape[1]
    lengths = check_lengths(lengths, T, B)
    bias_ih, bias_hh = _bias_or_zeros(b_ih, 3 * H, x.dtype), _bias_or_zeros(b_hh, 3 * H, x.dtype)
    w_hrz, w_hn = w_hh[:2 * H], w_hh[2 * H:]
    b_hrz, b_hn = bias_hh[:2 * H], bias_hh[2 * H:]

    y = np.zeros((T, B, H), x.dtype)
    h = h0
    steps = []
    for t in _time_order(T, reverse):
        valid = _valid_rows(lengths, t, B)
        from_x = x[t] @ w_ih.T + bias_ih                             # (B,3H): W_i{r,z,n} x_t + b_i{r,z,n}
        x_r, x_z, x_n = np.split(from_x, 3, axis=1)
        h_r, h_z = np.split(h @ w_hrz.T + b_hrz, 2, axis=1)          # (B,H) each
        r = sigmoid(x_r + h_r)
        z = sigmoid(x_z + h_z)
        if reset_after:
            rec_n = h @ w_hn.T + b_hn                                # W_hn h_{t-1} + b_hn
            n = np.tanh(x_n + r * rec_n)
        else:
            rec_n = (r * h) @ w_hn.T + b_hn                          # W_hn (r * h_{t-1}) + b_hn
            n = np.tanh(x_n + rec_n)
        h_new = (1 - z) * n + z * h
        steps.append(dict(t=t, valid=valid, h_prev=h, r=r, z=z, n=n, rec_n=rec_n))
        h = np.where(valid, h_new, h)
        y[t] = np.where(valid, h_new, 0)
    cache = dict(cell="gru", reset_after=reset_after, x=x, h0=h0, w_ih=w_ih, w_hh=w_hh,
                 has_bias=b_ih is not None, steps=steps)
    return y, h, cache


def gru_backward(dy, dh_n, cache):
    """Returns dx, dh0, dw_ih, dw_hh, db_ih, db_hh (bias grads None without bias)."""
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    H = w_hh.shape[1]
    w_hrz, w_hn = w_hh[:2 * H], w_hh[2 * H:]
    dy = _zeros_if_none(dy, x.shape[:2] + (H,), x.dtype)
    dh = _zeros_if_none(dh_n, cache["h0"].shape, x.dtype)
    dx = np.zeros_like(x)
    dw_ih, dw_hh, db_ih, db_hh = _weight_grads(cache)
    for s in reversed(cache["steps"]):
        t, valid, h_prev, r, z, n = s["t"], s["valid"], s["h_prev"], s["r"], s["z"], s["n"]
        # forward: y_t = h_new, h_t = where(valid, h_new, h_prev)
        dh_new = np.where(valid, dh + dy[t], 0)
        # forward: h_new = (1 - z) * n + z * h_prev
        dn = dh_new * (1 - z)
        dz = dh_new * (h_prev - n)
        dh_prev = np.where(valid, 0, dh) + dh_new * z   # padded rows pass dh through
        # forward: n = tanh(x_n + ...)  (tanh' = 1 - n^2)
        da_n = dn * (1 - n * n)
        if cache["reset_after"]:
            # forward: n = tanh(x_n + r * rec_n),  rec_n = h_prev @ W_hn^T + b_hn
            dr = da_n * s["rec_n"]
            drec_n = da_n * r
            dw_hh[2 * H:] += drec_n.T @ h_prev
            dh_prev += drec_n @ w_hn
        else:
            # forward: n = tanh(x_n + rec_n),  rec_n = (r * h_prev) @ W_hn^T + b_hn
            drec_n = da_n
            d_rh = drec_n @ w_hn
            dr = d_rh * h_prev
            dh_prev += d_rh * r
            dw_hh[2 * H:] += drec_n.T @ (r * h_prev)
        db_hh[2 * H:] += drec_n.sum(axis=0)
        # forward: r = sigma(x_r + h_r), z = sigma(x_z + h_z)  (sigma' = s(1-s))
        da_rz = np.concatenate([dr * r * (1 - r), dz * z * (1 - z)], axis=1)   # (B,2H)
        # forward: [h_r h_z] = h_prev @ W_h{r,z}^T + b_h{r,z}
        dw_hh[:2 * H] += da_rz.T @ h_prev
        db_hh[:2 * H] += da_rz.sum(axis=0)
        dh_prev += da_rz @ w_hrz
        # forward: [x_r x_z x_n] = x_t @ W_ih^T + b_ih
        dfrom_x = np.concatenate([da_rz, da_n], axis=1)                        # (B,3H)
        dx[t] = dfrom_x @ w_ih
        dw_ih += dfrom_x.T @ x[t]
        db_ih += dfrom_x.sum(axis=0)
        dh = dh_prev
    return (dx, dh, dw_ih, dw_hh) + _bias_grads(cache, db_ih, db_hh)


# ---------------------------------------------------------------------------------------
# One entry for every cell, with the state as a tuple: (h,) or (h, c) for LSTM.

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru_reset_after", "gru_reset_before")
STATE_NAMES = {"rnn_tanh": ("h",), "rnn_relu": ("h",), "lstm": ("h", "c"),
               "gru_reset_after": ("h",), "gru_reset_before": ("h",)}


def _check_cell(cell):
    if cell not in STATE_NAMES:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    return cell


def forward(cell, x, state, w_ih, w_hh, b_ih, b_hh, lengths=None, reverse=False, w_hr=None,
            w_peephole=None):
    """Forward of one direction of one layer of any cell.

    cell: one of CELLS (a layer's ``cell_name``); state: a tuple of (B,H) arrays named by
    STATE_NAMES[cell] ((h0,) or (h0, c0)), or None for zeros.  w_hr: an LSTM's projection
    (P,H), or None; w_peephole: an LSTM's peepholes (3H,) = [p_i p_f p_o], or None.
    Returns y (T,B,H), the final state as a tuple like state, and the cache for backward."""
    cell = _check_cell(cell)
    x = np.asarray(x)
    if w_hr is not None and cell != "lstm":
        raise ValueError(f"w_hr (a projection, proj_size > 0) is for an LSTM only, got cell {cell!r}")
    if w_peephole is not None and cell != "lstm":
        raise ValueError(f"w_peephole (peepholes) is for an LSTM only, got cell {cell!r}")
    if state is None:
        H = np.shape(w_hh)[0] // (4 if cell == "lstm" else 3 if cell.startswith("gru") else 1)
        zeros = np.zeros((x.shape[1], H), x.dtype)
        state = (zeros[:, :np.shape(w_hh)[1]], zeros)[:len(STATE_NAMES[cell])]
    if len(state) != len(STATE_NAMES[cell]):
        raise ValueError(f"state of {cell} must be a tuple {STATE_NAMES[cell]}, got {len(state)} arrays")
    if cell == "lstm":
        y, h, c, cache = lstm_forward(x, state[0], state[1], w_ih, w_hh, b_ih, b_hh, lengths, reverse,
                                      w_hr, w_peephole)
        return y, (h, c), cache
    if cell.startswith("rnn"):
        y, h, cache = rnn_forward(x, state[0], w_ih, w_hh, b_ih, b_hh, cell[4:], lengths, reverse)
    else:
        y, h, cache = gru_forward(x, state[0], w_ih, w_hh, b_ih, b_hh, cell == "gru_reset_after",
                                  lengths, reverse)
    return y, (h,), cache


def backward(cell, cache, dy, dstate=None):
    """Backward of forward(cell, ...): dy (T,B,H) or None, dstate a tuple like the state
    (entries may be None) or None. Returns dx, the initial state's gradient as a tuple,
    and (dw_ih, dw_hh, db_ih, db_hh) (bias gradients None without bias), with dw_hr appended
    for an LSTM with a projection, then dw_peephole for one with peepholes."""
    cell = _check_cell(cell)
    names = STATE_NAMES[cell]
    dstate = (None,) * len(names) if dstate is None else tuple(dstate)
    if len(dstate) != len(names):
        raise ValueError(f"dstate of {cell} must be a tuple {names}, got {len(dstate)} arrays")
    if cell == "lstm":
        dx, dh0, dc0, *dw = lstm_backward(dy, dstate[0], dstate[1], cache)
        return dx, (dh0, dc0), tuple(dw)
    fn = rnn_backward if cell.startswith("rnn") else gru_backward
    dx, dh0, *dw = fn(dy, dstate[0], cache)
    return dx, (dh0,), tuple(dw)

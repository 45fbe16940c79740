"""The NumPy twin of the int8 and bfloat16 forward (csrc/quant/, docs/quantization.md),
written operation by operation in float32 so that it gives the same bits: the tests' oracle.
Imports nothing of rnnx."""
import numpy as np

f32 = np.float32
FLT_MIN = f32(2.0 ** -126)


def quantize_rows(v):
    """int8 rows of v (R, C) float32: (q int8, scale (R,)), s = max|v| / 127,
    q = rint(v * (127 / max|v|))."""
    v = np.asarray(v, f32)
    amax = np.abs(v).max(axis=1) if v.shape[1] else np.zeros(v.shape[0], f32)
    inv = np.divide(f32(127), amax, out=np.zeros_like(amax), where=amax > 0)
    q = np.clip(np.rint(v * inv[:, None]), -127, 127)
    return np.nan_to_num(q).astype(np.int8), amax / f32(127)


def to_bfloat16(v):
    """bfloat16 bits (uint16) of float32 v, to nearest even."""
    u = np.ascontiguousarray(v, f32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bfloat16(b):
    return (np.asarray(b, np.uint32) << 16).view(f32)


def bf16_madd(acc, a, b):
    """One step of vdpbf16ps's chain, elementwise: acc + a*b with one rounding, subnormal
    inputs read as zero and a result whose exact value is below 2^-126 flushed to zero."""
    fa, fb = from_bfloat16(a), from_bfloat16(b)
    fa = np.where(np.abs(fa) < FLT_MIN, f32(0) * np.sign(fa), fa)
    fb = np.where(np.abs(fb) < FLT_MIN, f32(0) * np.sign(fb), fb)
    acc64, p = acc.astype(np.float64), fa.astype(np.float64) * fb.astype(np.float64)  # exact
    s = acc64 + p
    bp = s - acc64
    e = (acc64 - (s - bp)) + (p - bp)                     # s + e = acc + a*b exactly
    # round to odd in float64, then to nearest float32: one correct rounding of the exact sum
    even = (s.view(np.int64) & 1) == 0
    move = (e != 0) & even & np.isfinite(s)
    s = np.where(move, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)
    with np.errstate(over="ignore"):
        r = s.astype(f32)
    tiny = np.abs(s) < 2.0 ** -126
    return np.where(tiny, np.copysign(f32(0), s).astype(f32), r)


def product(qtype, xrows, w):
    """The (M, R) sums of the rows of xrows (M, C) float32 with w (R, C) float32, as the
    kernels compute them, from the same quantization."""
    if qtype == "int8":
        xq, xs = quantize_rows(xrows)
        wq, ws = quantize_rows(w)
        acc = xq.astype(np.int64) @ wq.astype(np.int64).T
        return acc.astype(f32) * (xs[:, None] * ws[None, :])
    xb, wb = to_bfloat16(xrows), to_bfloat16(w)
    C = xb.shape[1]
    if C % 2:
        xb = np.pad(xb, ((0, 0), (0, 1)))
        wb = np.pad(wb, ((0, 0), (0, 1)))
    acc = np.zeros((xb.shape[0], wb.shape[0]), f32)
    for p in range(xb.shape[1] // 2):
        acc = bf16_madd(acc, xb[:, None, 2 * p + 1], wb[None, :, 2 * p + 1])
        acc = bf16_madd(acc, xb[:, None, 2 * p], wb[None, :, 2 * p])
    return acc


def exp_parts(y):
    """(p, 2^n) with e^y = 2^n (1 + p), p = e^r - 1, as csrc/quant/qact.h computes them."""
    magic = f32(12582912.0)
    y = np.where(y < f32(-87), f32(-87), y).astype(f32)
    n = (y * f32(1.44269504) + magic) - magic
    r = (y - n * f32(0.693145752)) - n * f32(1.42860677e-06)
    p = f32(1) / f32(5040)
    for c in (f32(1) / f32(720), f32(1) / f32(120), f32(1) / f32(24), f32(1) / f32(6),
              f32(0.5), f32(1)):
        p = p * r + c
    p = p * r
    bits = ((n + magic).view(np.uint32).astype(np.int64) - 0x4B400000 + 127) << 23
    return p, bits.astype(np.uint32).view(f32)


def sigmoid(x):
    x = np.asarray(x, f32)
    a = np.abs(x)
    p, two_n = exp_parts(-a)
    e = two_n * (p + f32(1))
    s = f32(1) / (f32(1) + e)
    return np.where(np.isnan(x), x, np.where(x >= 0, s, e * s)).astype(f32)


def tanh(x):
    x = np.asarray(x, f32)
    a = np.abs(x)
    p, two_n = exp_parts(f32(-2) * a)
    m = two_n * p + (two_n - f32(1))
    t = -m / (f32(2) + m)
    return np.where(np.isnan(x), x, np.where(x < 0, -t, t)).astype(f32)


def forward(cell, qtype, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr=None, lengths=None,
            reverse=False):
    """One layer and direction: x (T, B, I); cell one of "rnn_tanh", "rnn_relu", "lstm",
    "gru", "gru_reset_before"; returns y (T, B, Hh), h_n, c_n (None but for LSTM)."""
    if cell not in ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"):
        raise ValueError(f"cell must be rnn_tanh, rnn_relu, lstm, gru or gru_reset_before, "
                         f"got {cell!r}")
    x = np.asarray(x, f32)
    T, B, _ = x.shape
    H = w_hh.shape[1] if w_hr is None else w_hr.shape[1]
    G = w_ih.shape[0]
    b_ih = np.zeros(G, f32) if b_ih is None else np.asarray(b_ih, f32)
    b_hh = np.zeros(G, f32) if b_hh is None else np.asarray(b_hh, f32)
    Hh = H if w_hr is None else w_hr.shape[0]
    h = np.zeros((B, Hh), f32) if h0 is None else np.array(h0, f32)
    c = np.zeros((B, H), f32) if c0 is None else np.array(c0, f32)
    slab = (product(qtype, x.reshape(T * B, -1), w_ih) + b_ih).reshape(T, B, G)
    y = np.zeros((T, B, Hh), f32)
    for i in range(T):
        t = T - 1 - i if reverse else i
        on = np.ones(B, bool) if lengths is None else t < np.asarray(lengths)
        xs = slab[t]
        gh = product(qtype, h, w_hh)
        if cell == "gru_reset_before":
            gh[:, :2 * H] += b_hh[:2 * H]
        else:
            gh += b_hh
        if cell in ("rnn_tanh", "rnn_relu"):
            pre = xs + gh
            new_h = tanh(pre) if cell == "rnn_tanh" else np.where(pre > 0, pre, f32(0))
        elif cell == "lstm":
            i_, f_ = sigmoid(xs[:, :H] + gh[:, :H]), sigmoid(xs[:, H:2 * H] + gh[:, H:2 * H])
            g_ = tanh(xs[:, 2 * H:3 * H] + gh[:, 2 * H:3 * H])
            o_ = sigmoid(xs[:, 3 * H:] + gh[:, 3 * H:])
            new_c = f_ * c + i_ * g_
            m = o_ * tanh(new_c)
            c = np.where(on[:, None], new_c, c)
            new_h = m if w_hr is None else product(qtype, m, w_hr)
        else:
            r_ = sigmoid(xs[:, :H] + gh[:, :H])
            z_ = sigmoid(xs[:, H:2 * H] + gh[:, H:2 * H])
            if cell == "gru":
                n_ = tanh(xs[:, 2 * H:] + r_ * gh[:, 2 * H:])
            else:
                hn = product(qtype, r_ * h, w_hh[2 * H:]) + b_hh[2 * H:]
                n_ = tanh(xs[:, 2 * H:] + hn)
            new_h = (f32(1) - z_) * n_ + z_ * h
        h = np.where(on[:, None], new_h, h)
        y[t] = np.where(on[:, None], new_h, f32(0))
    return y, h, (c if cell == "lstm" else None)

"""The int8 and bfloat16 core (csrc/quant/) against its NumPy twin (rnnx/quant_reference.py):
bit for bit, for every cell, both directions, lengths, projections and sizes across the panel
bounds; every kernel variant this CPU runs equal to the generic one; thread counts equal; the
generic bfloat16 step equal to the vdpbf16ps instruction where the CPU has it."""
import numpy as np
import pytest

import rnnx
from rnnx import _core
from rnnx import quant_reference as R

CELLS = {"rnn_tanh": (0, 1), "rnn_relu": (1, 1), "lstm": (2, 4), "gru": (3, 3),
         "gru_reset_before": (4, 3)}
QTYPES = ("int8", "bfloat16")


def _variants(qtype):
    """The kernel variants that compute qtype on this CPU (others fall back to generic)."""
    out = []
    for name in _core.qkernel_names():
        if not _core.qkernel_available(name):
            continue
        _core.qset_kernel(name)
        if _core.qget_kernel(qtype) == name:
            out.append(name)
    _core.qset_kernel("auto")
    return out


def _layer(cell, T, B, I, H, P=0, seed=0, scale=0.4):
    rng = np.random.default_rng(seed)
    G = CELLS[cell][1] * H
    Hh = P or H
    f = lambda *shape: (rng.standard_normal(shape) * scale).astype(np.float32)  # noqa: E731
    return dict(x=f(T, B, I) / scale, h0=f(B, Hh), c0=f(B, H) if cell == "lstm" else None,
                w_ih=f(G, I), w_hh=f(G, Hh), b_ih=f(G), b_hh=f(G), w_hr=f(P, H) if P else None)


def _pack(qtype, w, gates):
    if qtype == "int8":
        q, s = _core.quantize_int8(w)
        return _core.qpack("int8", gates, q, s)
    return _core.qpack("bfloat16", gates, _core.to_bfloat16(w))


def _run(cell, qtype, p, lengths=None, reverse=False):
    code, gates = CELLS[cell]
    x = p["x"]
    T, B = x.shape[:2]
    H = p["w_ih"].shape[0] // gates
    P = 0 if p["w_hr"] is None else p["w_hr"].shape[0]
    y = np.full((T, B, P or H), np.nan, np.float32)
    h_n = np.empty((B, P or H), np.float32)
    c_n = np.empty((B, H), np.float32) if cell == "lstm" else None
    L = None if lengths is None else np.asarray(lengths, np.int64)
    _core.qforward(code, qtype, x, p["h0"], p["c0"], _pack(qtype, p["w_ih"], gates),
                   _pack(qtype, p["w_hh"], gates),
                   None if not P else _pack(qtype, p["w_hr"], 1), p["b_ih"], p["b_hh"], H, P, L,
                   reverse, y, h_n, c_n)
    return y, h_n, c_n


def _reference(cell, qtype, p, lengths=None, reverse=False):
    return R.forward(cell, qtype, p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"],
                     p["b_hh"], p["w_hr"], lengths, reverse)


def _same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("T,B,I,H", [(1, 1, 1, 1), (3, 2, 5, 16), (4, 3, 17, 17),
                                     (2, 5, 33, 31), (3, 70, 4, 8)])
def test_equals_numpy_twin_bit_for_bit(qtype, cell, T, B, I, H):
    p = _layer(cell, T, B, I, H, seed=T * 100 + H)
    got = _run(cell, qtype, p)
    want = _reference(cell, qtype, p)
    for g, w in zip(got, want):
        if w is not None:
            assert _same_bits(g, w)


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("cell", list(CELLS))
def test_reverse_and_lengths(qtype, cell):
    p = _layer(cell, 6, 4, 9, 20, seed=7)
    lengths = [6, 0, 3, 1]
    for reverse in (False, True):
        y, h_n, c_n = _run(cell, qtype, p, lengths, reverse)
        yr, hr, cr = _reference(cell, qtype, p, lengths, reverse)
        assert _same_bits(y, yr) and _same_bits(h_n, hr)
        assert not y[3:, 2].any() and not y[:, 1].any()      # zeros past each length
        assert _same_bits(h_n[1], p["h0"][1])                  # length 0 keeps h0
        if c_n is not None:
            assert _same_bits(c_n, cr)


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("H,P", [(20, 7), (33, 17), (16, 15)])
def test_lstm_projection(qtype, H, P):
    p = _layer("lstm", 5, 3, 6, H, P=P, seed=H + P)
    y, h_n, c_n = _run("lstm", qtype, p, lengths=[5, 2, 4], reverse=True)
    yr, hr, cr = _reference("lstm", qtype, p, lengths=[5, 2, 4], reverse=True)
    assert _same_bits(y, yr) and _same_bits(h_n, hr) and _same_bits(c_n, cr)


# The kernels tile 1-4 panels (a block's gates: 4, 3, 2 or 1 by cell) by 1-4
# rows (B), over an even or odd count of column groups (I = 70: int8 18, bf16 35;
# I = 66: int8 17, bf16 33).
@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("cell,B,I", [("lstm", 9, 70), ("lstm", 1, 66), ("gru", 2, 66),
                                      ("gru", 3, 70), ("gru_reset_before", 1, 70),
                                      ("rnn_tanh", 6, 66)])
def test_every_kernel_variant_and_isa_gives_the_same_bits(qtype, cell, B, I):
    variants = _variants(qtype)
    assert "generic" in variants
    p = _layer(cell, 7, B, I, 40, seed=3)
    lengths = [7, 1, 5, 7, 0, 2, 7, 3, 6][:B]
    results = {}
    try:
        for name in variants:
            _core.qset_kernel(name)
            results[name] = _run(cell, qtype, p, lengths=lengths)
        _core.qset_kernel("auto")
        for isa in _core.available_isas():      # "auto" follows the ISA of the float kernels
            _core.set_isa(isa)
            results["auto/" + isa] = _run(cell, qtype, p, lengths=lengths)
    finally:
        _core.qset_kernel("auto")
        _core.set_isa(_core.available_isas()[0])
    first = results["generic"]
    for name, got in results.items():
        for g, w in zip(got, first):
            assert (g is None and w is None) or _same_bits(g, w), name


@pytest.mark.parametrize("qtype", QTYPES)
def test_thread_counts_give_the_same_bits(qtype):
    p = _layer("gru", 6, 5, 40, 70, seed=11)
    before = rnnx.get_num_threads()
    try:
        rnnx.set_num_threads(1)
        one = _run("gru", qtype, p)
        rnnx.set_num_threads(2)
        two = _run("gru", qtype, p)
        rnnx.set_num_threads(3)
        three = _run("gru", qtype, p)
    finally:
        rnnx.set_num_threads(before)
    for a, b, c in zip(one, two, three):
        if a is not None:
            assert _same_bits(a, b) and _same_bits(a, c)


def test_int8_weights_round_trip_within_half_a_step():
    w = np.random.default_rng(0).standard_normal((40, 33)).astype(np.float32)
    w[3] = 0.0
    q, s = _core.quantize_int8(w)
    qr, sr = R.quantize_rows(w)
    assert np.array_equal(q, qr) and _same_bits(s, sr)
    assert s[3] == 0 and not q[3].any()
    assert np.abs(q).max() == 127 and (np.abs(q).max(axis=1)[np.arange(40) != 3] == 127).all()
    assert (np.abs(q * s[:, None] - w) <= s[:, None] / 2 * (1 + 1e-6)).all()


def test_bfloat16_rounds_to_nearest_even():
    bits = np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0x7F7FFFFF, 0xFF800000, 0x7FC00001,
                     0x00008000], np.uint32)
    got = _core.to_bfloat16(bits.view(np.float32))
    assert got.tolist() == [0x3F80, 0x3F82, 0x3F81, 0x7F80, 0xFF80, 0x7FC0, 0x0000]
    x = np.random.default_rng(1).standard_normal(10000).astype(np.float32)
    assert np.array_equal(_core.to_bfloat16(x), R.to_bfloat16(x))


def _awkward_bf16(rng, n):
    """bfloat16 bit patterns with many subnormals, zeros of both signs, tiny and huge values."""
    b = rng.integers(0, 1 << 16, n).astype(np.uint16)
    sub = rng.random(n) < 0.2
    b[sub] &= 0x807F                                      # subnormal or zero
    tiny = rng.random(n) < 0.2
    b[tiny] = (b[tiny] & 0x807F) | (rng.integers(1, 6, tiny.sum()) << 7).astype(np.uint16)
    nan = (b & 0x7F80) == 0x7F80
    b[nan] &= 0xBFFF                                      # no NaN or Inf inputs
    return b


def test_bf16_step_generic_equals_numpy_twin_on_awkward_values():
    rng = np.random.default_rng(5)
    n = 20000
    acc = rng.standard_normal(n).astype(np.float32) * np.float32(2.0 ** -120)
    acc[: n // 4] = (rng.integers(0, 1 << 32, n // 4, dtype=np.uint64).astype(np.uint32)
                     & 0x80FFFFFF).view(np.float32)        # subnormal and near-least-normal sums
    a, b = _awkward_bf16(rng, n), _awkward_bf16(rng, n)
    want = R.bf16_madd(acc, a, b)
    got = np.array([_core.qbf16_madd(float(acc[i]), int(a[i]), int(b[i])) for i in range(n)],
                   np.float32)
    assert _same_bits(got, want)


def test_bf16_generic_chain_equals_the_instruction():
    if "avx512_bf16" not in _variants("bfloat16"):
        pytest.skip("this CPU has no AVX-512 BF16 (vdpbf16ps)")
    rng = np.random.default_rng(9)
    # a (1, I) x (16, I) product through qforward's kernels: an RNN relu of one step with zero
    # state reads the sums plus biases; instead compare the whole forward on awkward weights.
    results = {}
    for trial in range(3):
        p = _layer("rnn_relu", 3, 5, 64, 48, seed=trial, scale=1.0)
        p["w_ih"] = (R.from_bfloat16(_awkward_bf16(rng, p["w_ih"].size)).reshape(p["w_ih"].shape)
                     * np.float32(2.0 ** -60))
        p["x"] = p["x"] * np.float32(2.0 ** -66)
        p["b_ih"] = np.zeros_like(p["b_ih"])
        for name in ("generic", "avx512_bf16"):
            _core.qset_kernel(name)
            try:
                results[name] = _run("rnn_relu", "bfloat16", p)
            finally:
                _core.qset_kernel("auto")
        for g, w in zip(results["generic"], results["avx512_bf16"]):
            if g is not None:
                assert _same_bits(g, w)


def test_activations_are_within_three_ulp():
    """The quantized cells' sigmoid and tanh (csrc/quant/qact.h, twinned in the reference, whose
    bits the forward tests above tie to the C): within 3 ulp for |x| <= 87."""
    x = np.concatenate([np.linspace(-87, 87, 400001, dtype=np.float32),
                        np.float32([0.0, -0.0, 1e-30, -1e-30, 1e-5, -1e-5, 3e-3, 0.2])])
    x64 = x.astype(np.float64)
    for got, want in ((R.sigmoid(x), 1.0 / (1.0 + np.exp(-x64))), (R.tanh(x), np.tanh(x64))):
        ulp = np.spacing(np.abs(want.astype(np.float32))).astype(np.float64)
        assert (np.abs(got.astype(np.float64) - want) <= 3 * ulp).all()
    far = np.float32([-88.0, -100.0, -700.0, 88.0, 1e30])
    assert (np.abs(R.sigmoid(far) - 1.0 / (1.0 + np.exp(-far.astype(np.float64)))) < 2e-38).all()
    assert R.tanh(far).tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0]
    assert R.sigmoid(np.float32([-1e30, 1e30])).tolist() == [R.sigmoid(np.float32(-87.0)), 1.0]
    assert np.isnan(R.sigmoid(np.float32([np.nan]))).all() and np.isnan(R.tanh(np.float32([np.nan]))).all()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="qtype"):
        _core.qpack("int4", 1, np.zeros((2, 2), np.int8), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="int8"):
        _core.qpack("int8", 1, np.zeros((2, 2), np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="scale"):
        _core.qpack("int8", 1, np.zeros((2, 2), np.int8), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="kernel"):
        _core.qset_kernel("avx1024")
    code, gates = CELLS["lstm"]
    p = _layer("lstm", 2, 3, 4, 5)
    good = dict(x=p["x"], h0=p["h0"], c0=p["c0"], w_ih=_pack("int8", p["w_ih"], gates),
                w_hh=_pack("int8", p["w_hh"], gates), w_hr=None, b_ih=p["b_ih"], b_hh=p["b_hh"],
                H=5, P=0, lengths=None, reverse=False, y=np.empty((2, 3, 5), np.float32),
                h_n=np.empty((3, 5), np.float32), c_n=np.empty((3, 5), np.float32))
    _core.qforward(code, "int8", **good)
    for name, bad, error, match in (
            ("x", p["x"].astype(np.float64), TypeError, "x must be a float32"),
            ("h0", p["h0"][:2], ValueError, r"h0 must have shape \(3, 5\)"),
            ("w_hh", good["w_ih"], ValueError, "w_hh must be qpack's"),
            ("y", np.empty((2, 3, 4), np.float32), ValueError, "y must have shape"),
            ("lengths", np.array([1, 2, 9]), ValueError, "lengths must lie"),
            ("c_n", None, ValueError, "c_n must be given")):
        with pytest.raises(error, match=match):
            _core.qforward(code, "int8", **dict(good, **{name: bad}))

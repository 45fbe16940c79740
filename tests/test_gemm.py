"""rnnx's own GEMM for the hoisted products (csrc/kernels/gemm_packed.c), through
_core.gemm_acc: c += op(a) @ op(b), against its twins (the naive loop, the BLAS,
gemm_small_acc) on every ISA this CPU runs, in both dtypes, at sizes on each side of the
register tile (MR, NR) and of the cache blocks (KC, MC, NC)."""

import numpy as np
import pytest

from rnnx import _core

ISAS = _core.available_isas()
DTYPES = (np.float32, np.float64)


@pytest.fixture(autouse=True)
def restore_isa_and_threads():
    isa, threads = _core.get_isa(), _core.get_num_threads()
    yield
    _core.set_isa(isa)
    _core.set_num_threads(threads)


def operands(M, N, K, ta, tb, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    return a, b, c


def op(x, t):
    return x.T if t else x


def bound(c, a, b, ta, tb):
    """Rounding bound of c + op(a) @ op(b) summed in any order (Higham 3.5):
    gamma_{K+1} (|c| + |op(a)| |op(b)|), gamma_n = n u / (1 - n u)."""
    K = op(a, ta).shape[1]
    u = np.finfo(c.dtype).eps / 2
    n = K + 1
    f64 = lambda x: np.abs(x.astype(np.float64))
    return n * u / (1 - n * u) * (f64(c) + f64(op(a, ta)) @ f64(op(b, tb)))


def run(c, a, b, ta, tb, impl):
    out = c.copy()
    _core.gemm_acc(out, a, b, ta, tb, impl)
    return out


def sizes_across_blocks(blocks):
    """M, N and K on each side of the tile and of the blocks (1, MR-1, MR, MR+1, MC+1 ...)."""
    MR, NR, KC, MC, NC = (blocks[k] for k in ("MR", "NR", "KC", "MC", "NC"))
    Ms = sorted({1, MR - 1, MR, MR + 1, 2 * MR + 3, MC + 1} - {0})
    Ns = sorted({1, NR - 1, NR, NR + 1, NC + 1} - {0})
    Ks = sorted({1, 3, KC, KC + 1})
    return Ms, Ns, Ks


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_packed_equals_its_twins_across_tile_and_block_bounds(isa, dtype):
    _core.set_isa(isa)
    _core.set_num_threads(1)
    Ms, Ns, Ks = sizes_across_blocks(_core.gemm_blocks(dtype))
    case = 0
    for M in Ms:
        for N in Ns:
            for K in Ks:
                ta, tb = case % 2, case // 2 % 2  # every transpose pair at every size class
                case += 1
                a, b, c = operands(M, N, K, ta, tb, dtype, seed=case)
                a0, b0 = a.copy(), b.copy()
                got = run(c, a, b, ta, tb, "packed")
                # B packed first (the projection's path) or as it goes: the same sums
                np.testing.assert_array_equal(run(c, a, b, ta, tb, "packed_b"), got)
                limit = 2 * bound(c, a, b, ta, tb)  # got and its twin each within one bound
                for twin in ("naive", "blas"):
                    want = run(c, a, b, ta, tb, twin)
                    err = np.abs(got.astype(np.float64) - want)
                    assert (err <= limit).all(), (isa, M, N, K, ta, tb, twin, err.max())
                if not ta and not tb:  # the same sums as gemm_small_acc: the same bits
                    np.testing.assert_array_equal(got, run(c, a, b, 0, 0, "small"))
                np.testing.assert_array_equal(a, a0)
                np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_a_row_alone_equals_the_row_in_a_big_product(isa, dtype, ta, tb):
    """Each element's sum depends on K alone: rows computed one at a time, or in a product
    of any number of rows, give the same bits (the row_exact promise of the projection)."""
    _core.set_isa(isa)
    blocks = _core.gemm_blocks(dtype)
    M, N, K = blocks["MC"] + blocks["MR"] + 1, blocks["NC"] + 3, blocks["KC"] + 5
    a, b, c = operands(M, N, K, ta, tb, dtype, seed=7)
    whole = run(c, a, b, ta, tb, "packed")
    for i in (0, 1, blocks["MR"], M - 1):
        rows = slice(i, i + 1)
        part = np.ascontiguousarray(a[:, rows] if ta else a[rows])
        alone = run(c[rows], part, b, ta, tb, "packed")
        np.testing.assert_array_equal(alone, whole[rows])
    five = np.ascontiguousarray(a[:, 3:8] if ta else a[3:8])
    np.testing.assert_array_equal(run(c[3:8], five, b, ta, tb, "packed"), whole[3:8])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_counts_give_the_same_bits(isa, dtype):
    _core.set_isa(isa)
    blocks = _core.gemm_blocks(dtype)
    # several blocks of rows and columns, large enough to be cut into tasks
    M, N, K = 2 * blocks["MC"] + 5, 2 * blocks["NC"] + 7, blocks["KC"] + 9
    for ta, tb in [(0, 1), (1, 0)]:
        a, b, c = operands(M, N, K, ta, tb, dtype, seed=3)
        results = []
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            results += [run(c, a, b, ta, tb, "packed"), run(c, a, b, ta, tb, "packed_b")]
        for other in results[1:]:
            np.testing.assert_array_equal(other, results[0])
        err = np.abs(results[0].astype(np.float64) - run(c, a, b, ta, tb, "naive"))
        assert (err <= 2 * bound(c, a, b, ta, tb)).all()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_b_packed_whole_for_many_row_blocks_gives_the_same_bits(isa, dtype):
    """Past 4 blocks of rows the projection's path packs B whole first (gemm_pack_b, the
    last panel narrower than NR); its sums are those of B packed panel by panel."""
    _core.set_isa(isa)
    blocks = _core.gemm_blocks(dtype)
    M, N, K = 4 * blocks["MC"] + blocks["MR"] + 1, 3 * blocks["NR"] + 1, blocks["KC"] + 70
    for ta, tb in [(0, 0), (0, 1), (1, 1)]:
        a, b, c = operands(M, N, K, ta, tb, dtype, seed=11)
        want = run(c, a, b, ta, tb, "packed")
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            np.testing.assert_array_equal(run(c, a, b, ta, tb, "packed_b"), want)
        err = np.abs(want.astype(np.float64) - run(c, a, b, ta, tb, "blas"))
        assert (err <= 2 * bound(c, a, b, ta, tb)).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_stay_in_their_elements(dtype):
    """Inf and NaN in a reach only the elements they take part in: the zero padding of a
    tile past the edge never meets them in an element that is kept."""
    blocks = _core.gemm_blocks(dtype)
    M, N, K = blocks["MR"] + 1, blocks["NR"] + 1, 4
    a, b, c = operands(M, N, K, 0, 0, dtype, seed=5)
    a[M - 1, 2] = np.inf
    b[1, N - 1] = np.nan
    got = run(c, a, b, 0, 0, "packed")
    want = run(c, a, b, 0, 0, "naive")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert np.isnan(got[:, N - 1]).all() and np.isinf(got[M - 1, : N - 1]).all()
    rtol = 1e-5 if dtype == np.float32 else 1e-12  # K = 4 products, a few roundings
    np.testing.assert_allclose(got[finite], want[finite], rtol=rtol)


def test_empty_products_leave_c_as_it_was():
    for M, N, K in [(0, 4, 3), (4, 0, 3), (4, 5, 0)]:
        a, b, c = operands(M, N, K, 0, 0, np.float32, seed=1)
        np.testing.assert_array_equal(run(c, a, b, 0, 0, "packed"), c)


def test_bad_arguments_name_themselves():
    a, b, c = operands(4, 5, 3, 0, 0, np.float32, seed=2)
    with pytest.raises(ValueError, match=r"b must have shape \(3, 5\), got \(5, 3\)"):
        _core.gemm_acc(c, a, b.T.copy())
    with pytest.raises(TypeError, match="a must be float32 like x"):
        _core.gemm_acc(c, a.astype(np.float64), b)
    with pytest.raises(TypeError, match="c must be float32 or float64"):
        _core.gemm_acc(c.astype(np.int32), a, b)
    with pytest.raises(ValueError, match="impl must be one of"):
        _core.gemm_acc(c, a, b, impl="fast")
    with pytest.raises(ValueError, match="impl 'small' takes no transposes"):
        _core.gemm_acc(c, a.T.copy(), b, trans_a=True, impl="small")
    with pytest.raises(ValueError, match="c must be writable"):
        frozen = c.copy()
        frozen.flags.writeable = False
        _core.gemm_acc(frozen, a, b)
    with pytest.raises(ValueError, match="a must be 2-D"):
        _core.gemm_acc(c, a.ravel(), b)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        _core.gemm_blocks(np.int8)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_float32_chunks_with_carried_state_equal_one_call_bit_for_bit(isa, cls):
    """The input projection's sums depend on the input size alone, so a float32 sequence
    cut into chunks (state carried) gives one whole call's numbers bit for bit, and both
    stay within float32 rounding of the float64 reference layer."""
    import rnnx

    _core.set_isa(isa)
    T, B, I, H = 37, 9, 72, 128  # T*B rows: MR tiles and edges; chunks of 1 to 20 steps
    layer = getattr(rnnx, cls)(I, H, dtype=np.float32, seed=0)
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(np.float32)
    whole, _ = layer(x)
    state, parts = None, []
    for lo, hi in [(0, 1), (1, 8), (8, 28), (28, 37)]:
        y, state = layer(x[lo:hi], state)
        parts.append(y)
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    wide = getattr(rnnx, cls)(I, H, dtype=np.float64, seed=0)
    wide.load_state_dict(layer.state_dict())
    want, _ = wide(x.astype(np.float64))
    np.testing.assert_allclose(whole, want, rtol=1e-4, atol=1e-5)

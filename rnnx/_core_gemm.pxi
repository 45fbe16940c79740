# _core_gemm.pxi: the hoisted products' GEMM (csrc/kernels/gemm_packed.c) and its
# twins, one call each, for tests and benchmarks/bench.py.  Included by _core.pyx.

cdef extern from "_core_shim.h":
    int rnnx_gemm_acc(const rnnx_blas* blas, int dtype, int impl, char ta, char tb, int M,
                      int N, int K, const void* A, int lda, const void* B, int ldb, void* C,
                      int ldc, void* work) nogil
    int rnnx_gemm_blocks(int dtype, int* blocks) nogil

# The implementations, as in enum rnnx_gemm_impl.
GEMM_IMPLS = ("packed", "packed_b", "blas", "naive", "small")


def gemm_acc(object c, object a, object b, bint trans_a=False, bint trans_b=False,
             str impl="packed"):
    """c += op(a) @ op(b) in place (op(x) = x.T where trans_x), by the kernels of the ISA
    in use, on the threads of set_num_threads: impl "packed" (rnnx's own blocked GEMM,
    packing b as it goes: the gradients' path), "packed_b" (the same on b packed first:
    the input projection's path), "blas" (SciPy's BLAS through the pool), "naive", or
    "small" (gemm_small_acc, no transposes).  c (M, N), op(a) (M, K), op(b) (K, N):
    C-contiguous, aligned, all float32 or all float64; a and b are not modified."""
    if impl not in GEMM_IMPLS:
        raise ValueError(f"impl must be one of {GEMM_IMPLS}, got {impl!r}")
    if impl == "small" and (trans_a or trans_b):
        raise ValueError("impl 'small' takes no transposes (trans_a=trans_b=False)")
    for name, x in (("c", c), ("a", a), ("b", b)):
        if _array(x, name).ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    cdef int dtype = _dtype_code(c.dtype, "c")
    M, N = c.shape
    K = a.shape[0] if trans_a else a.shape[1]
    for v, what in ((M, "M"), (N, "N"), (K, "K")):
        _int_arg(v, what)
    cdef const void* pa = _data(a, "a", (K, M) if trans_a else (M, K), c.dtype)
    cdef const void* pb = _data(b, "b", (N, K) if trans_b else (K, N), c.dtype)
    cdef void* pc = _data(c, "c", (M, N), c.dtype, writable=True)
    cdef int m = M, n = N, k = K, status
    cdef int lda = max(a.shape[1], 1), ldb = max(b.shape[1], 1), ldc = max(N, 1)
    cdef char ta = b'T' if trans_a else b'N', tb = b'T' if trans_b else b'N'
    cdef int which = GEMM_IMPLS.index(impl)
    work = np.empty(max(K * N, 1) if impl == "packed_b" else 1, c.dtype)
    cdef void* pw = cnp.PyArray_DATA(work)
    with nogil:
        status = rnnx_gemm_acc(&BLAS, dtype, which, ta, tb, m, n, k, pa, lda, pb, ldb, pc, ldc,
                               pw)
    if status != 0:
        raise ValueError(strerror(status))


def gemm_blocks(dtype):
    """{"MR", "NR", "KC", "MC", "NC"} of rnnx's GEMM on the ISA in use for a large product of
    this dtype: the register tile (MR rows x NR columns) and the cache blocks (KC of k, MC
    rows, NC columns), read from this CPU's caches."""
    cdef int blocks[5]
    cdef int code = _dtype_code(np.dtype(dtype), "dtype")
    if rnnx_gemm_blocks(code, blocks) != 0:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dict(zip(("MR", "NR", "KC", "MC", "NC"), [blocks[i] for i in range(5)]))

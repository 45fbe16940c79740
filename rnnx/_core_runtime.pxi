# Included by rnnx/_core.pyx: the module's constants (the format, cell codes, kernel paths),
# the BLAS table the core calls, and the run-time switches: instruction set, threads, pool
# diagnostics.

# The .rnnx format's constants, from csrc/model/format.h (their one source) and the layer
# kinds of rnnx_model.h; rnnx/rnnx_format.py reads them here.
FORMAT = {"MAGIC": <bytes>RNNX_FORMAT_MAGIC, "VERSION_MIN": RNNX_FORMAT_VERSION_MIN,
          "VERSION": RNNX_FORMAT_VERSION, "HEADER_BYTES": RNNX_FORMAT_HEADER_BYTES,
          "DESCRIPTOR_BYTES": RNNX_FORMAT_DESCRIPTOR_BYTES,
          "TENSOR_ALIGN": RNNX_FORMAT_TENSOR_ALIGN, "MAX_LAYERS": RNNX_FORMAT_MAX_LAYERS,
          "MAX_STACK": RNNX_FORMAT_MAX_STACK, "MAX_SIZE": RNNX_FORMAT_MAX_SIZE,
          "FLAG_MANY_TO_ONE": RNNX_FORMAT_FLAG_MANY_TO_ONE,
          "FLAG_BARE_LAYER": RNNX_FORMAT_FLAG_BARE_LAYER,
          "FLAG_LAST_OUTPUT": RNNX_FORMAT_FLAG_LAST_OUTPUT,
          "KNOWN_FLAGS": RNNX_FORMAT_KNOWN_FLAGS,
          "MANY_TO_ONE_STATE": RNNX_MANY_TO_ONE_STATE,
          "MANY_TO_ONE_OUTPUT": RNNX_MANY_TO_ONE_OUTPUT,
          "DENSE": RNNX_DENSE, "EMBEDDING": RNNX_EMBEDDING,
          "VERSION_WEIGHTS": RNNX_FORMAT_VERSION_WEIGHTS, "WEIGHTS_INT8": RNNX_WEIGHTS_INT8,
          "WEIGHTS_BFLOAT16": RNNX_WEIGHTS_BFLOAT16}

# Cell codes, as in enum rnnx_cell.
RNN_TANH, RNN_RELU, LSTM, GRU, GRU_RESET_BEFORE = 0, 1, 2, 3, 4
# Kernel paths, as in enum rnnx_path.
PATH_AUTO, PATH_BLAS, PATH_SMALL, PATH_NAIVE = 0, 1, 2, 3

cdef rnnx_blas BLAS
BLAS.sgemm = <rnnx_sgemm_fn>sgemm
BLAS.dgemm = <rnnx_dgemm_fn>dgemm
BLAS.parallel_for = rnnx_pool_parallel_for
BLAS.pool = NULL
BLAS.n_threads = 1
rnnx_pool_wrap_blas(&BLAS)  # hoisted products in blocks on the pool, BLAS threads capped meanwhile

def _isa_names():
    """The instruction sets the core knows, best first (csrc/kernels/isa_list.h)."""
    names, i = [], 0
    while rnnx_isa_name(i) != NULL:
        names.append(rnnx_isa_name(i).decode())
        i += 1
    return tuple(names)


ISAS = _isa_names()
_INT_MAX = 2**31 - 1


def _int_arg(value, str name):
    """value as a Python int that fits a C int, or a TypeError/ValueError naming the argument
    (rather than Cython's OverflowError, which names none)."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if not -_INT_MAX - 1 <= v <= _INT_MAX:
        raise ValueError(f"{name} must fit a C int (-2**31 <= {name} < 2**31), got {v}")
    return v

# ---------------------------------------------------------------- ISA, threads

def available_isas():
    """The kernel instruction sets this build has and this CPU runs, best first."""
    return [name for name in ISAS if rnnx_isa_available(name.encode())]


def get_isa():
    """The instruction set of the kernels in use, one of ISAS ("avx512", "avx2", "neon",
    "generic")."""
    return rnnx_get_isa().decode()


def set_isa(name):
    """Run the kernels built for this instruction set (for tests and benchmarks)."""
    if name not in ISAS:
        raise ValueError(f"isa must be one of {ISAS}, got {name!r}")
    if rnnx_set_isa(name.encode()) != 0:
        raise ValueError(f"isa {name!r} is not available on this CPU or in this build; "
                         f"available: {available_isas()}")


_pools = {}  # n -> address of a pool, kept for the life of the process (a call may still use one)


def set_num_threads(n):
    """Threads for the recurrent loop of every later call (1: the calling thread only)."""
    n = _int_arg(n, "n")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    cdef rnnx_pool* pool = NULL
    if n > 1:
        if n not in _pools:
            pool = rnnx_pool_create(n)
            if pool == NULL:
                raise RuntimeError(f"could not start {n - 1} worker threads")
            _pools[n] = <size_t>pool
        pool = <rnnx_pool*><size_t>_pools[n]
    BLAS.pool = pool
    BLAS.n_threads = n


def get_num_threads():
    """Threads the recurrent loop may use."""
    return BLAS.n_threads


def _pool_diagnostics():
    """The current pool's jobs so far and how many it ran on the caller alone
    (it measured them faster so), whether the BLAS's threads can be capped
    while the pool runs, and whether pools have worker threads at all (False in
    a build without POSIX threads, csrc/runtime/serial.c) (for tests)."""
    cdef long long jobs = 0, serial_jobs = 0
    rnnx_pool_stats(<rnnx_pool*>BLAS.pool, &jobs, &serial_jobs)
    return {"jobs": jobs, "serial_jobs": serial_jobs,
            "blas_limitable": bool(rnnx_pool_blas_limitable()),
            "threaded": bool(rnnx_pool_threaded())}


def _isa_from_environment():
    import os
    import warnings
    name = os.environ.get("RNNX_ISA", "").strip().lower()
    if not name:
        return
    if name not in ISAS or not rnnx_isa_available(name.encode()):
        warnings.warn(f"RNNX_ISA={name!r} cannot run here ({'unknown name' if name not in ISAS else 'not supported by this CPU or build'}); "
                      f"using {get_isa()!r} (available: {available_isas()})", RuntimeWarning)
        return
    rnnx_set_isa(name.encode())


_isa_from_environment()

"""How rnnx computes on this machine: the kernels' instruction set, the threads of
the recurrent loop, the BLAS.  Re-exported as rnnx.info, rnnx.set_num_threads and
rnnx.get_num_threads.  When threadpoolctl (>= 3.5) is installed, rnnx's pool is
registered with it, so ``threadpool_limits(1)`` limits rnnx too and
``threadpool_info()`` lists it (user_api "rnnx")."""
import functools
import operator
import os

from . import _core
from ._machine import cpu_model


def _physical_cores():
    """Physical cores this process may run on (hyperthreads counted once), or
    os.cpu_count() where that cannot be read."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    cores = set()
    try:
        with open("/proc/cpuinfo") as f:
            physical = core = None
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        cores.add((physical, core))
                    physical = core = None
            if core is not None:
                cores.add((physical, core))
    except OSError:
        pass
    return max(1, min(len(cores) or allowed, allowed))


MAX_THREADS = 1024


def set_num_threads(n):
    """Set the number of threads of the recurrent loop (forward and backward steps).

    Parameters
    ----------
    n : int
        Threads, 1 to MAX_THREADS.  1 runs every step on the calling thread.  A
        step is cut into tasks of whole panels of hidden units, and the hoisted
        products into blocks fixed by their shapes, so results are the same for
        every n.  More threads than cores is allowed but never faster.

    Raises
    ------
    TypeError
        If n is not an integer.
    ValueError
        If n is not between 1 and MAX_THREADS.
    RuntimeError
        If the worker threads cannot be started (the count is then unchanged).
    """
    if isinstance(n, bool):
        raise TypeError("n must be an int, got bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an int, got {type(n).__name__}") from None
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n must be between 1 and {MAX_THREADS}, got {n}")
    _core.set_num_threads(n)


def get_num_threads():
    """Return the number of threads of the recurrent loop.

    Returns
    -------
    int
    """
    return _core.get_num_threads()


def info():
    """Describe how rnnx computes here.

    Returns
    -------
    dict
        ``isa``: the kernels' instruction set in use ("avx512", "avx2", "neon"
        or "generic"; the environment variable RNNX_ISA forces one at import),
        ``available_isas``, ``num_threads`` (set_num_threads; the default is the
        physical cores, or RNNX_NUM_THREADS), ``physical_cores``, ``cpu`` (the
        model name), ``blas``: threadpoolctl's description of the loaded
        BLAS libraries, or None when threadpoolctl is not installed (BLAS runs
        only the big products hoisted out of the time loop), and
        ``thread_pool``: "threads", or "serial" in a build without POSIX
        threads (MSVC: Windows wheels), where every call runs on the calling
        thread whatever num_threads says (with the same results).
    """
    try:
        from threadpoolctl import threadpool_info
        blas = [entry for entry in threadpool_info() if entry.get("user_api") == "blas"]
    except ImportError:
        blas = None
    return {"isa": _core.get_isa(), "available_isas": _core.available_isas(),
            "num_threads": get_num_threads(), "physical_cores": _physical_cores(),
            "cpu": cpu_model(), "blas": blas,
            "thread_pool": "threads" if _core._pool_diagnostics()["threaded"] else "serial"}


def holding_blas(method):
    """Decorate a workload (Trainer.fit, a model's run) so that while it runs every
    loaded OpenBLAS (NumPy's, SciPy's) is held at one thread (csrc/pool.h,
    rnnx_pool_hold_blas), and rnnx's own threads are the only ones it uses.

    Its NumPy products (Dense heads, losses, optimizers) are small beside the
    recurrent loop, and a threaded BLAS splits them statically and waits for
    every thread: next to one busy process on 2 cores it made the demo's
    training 1.7x slower than one thread.  Holds nest, across threads; the
    libraries get their thread counts back when the last one ends."""
    @functools.wraps(method)
    def held(*args, **kwargs):
        _core.hold_blas(True)
        try:
            return method(*args, **kwargs)
        finally:
            _core.hold_blas(False)
    return held


def _default_threads():
    value = os.environ.get("RNNX_NUM_THREADS", "").strip()
    if value:
        try:
            n = int(value)
            if n >= 1:
                return n
        except ValueError:
            pass
        import warnings
        warnings.warn(f"RNNX_NUM_THREADS={value!r} is not an int >= 1; using the physical cores",
                      RuntimeWarning)
    return _physical_cores()


try:
    _core.set_num_threads(min(_default_threads(), MAX_THREADS))
except RuntimeError:  # no worker threads could start: run serially
    _core.set_num_threads(1)


def _register_with_threadpoolctl():
    """Make rnnx's pool a threadpoolctl library (user_api and internal_api
    "rnnx"), found by its extension module, when threadpoolctl >= 3.5 is there."""
    try:
        import threadpoolctl
        register, LibController = threadpoolctl.register, threadpoolctl.LibController
    except (ImportError, AttributeError):
        return False

    core_name = os.path.basename(os.path.realpath(_core.__file__))

    class RnnxController(LibController):
        """threadpoolctl's handle on rnnx's thread pool (rnnx.set_num_threads)."""
        user_api = "rnnx"
        internal_api = "rnnx"
        filename_prefixes = (core_name.split(".")[0] + ".",)  # "_core.": the symbol tells it is rnnx's
        check_symbols = ("rnnx_pool_parallel_for",)

        def get_num_threads(self):
            return get_num_threads()

        def set_num_threads(self, num_threads):
            set_num_threads(max(1, min(int(num_threads), MAX_THREADS)))

        def get_version(self):
            from . import __version__
            return __version__

    register(RnnxController)
    return True


_register_with_threadpoolctl()

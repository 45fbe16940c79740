"""How rnnx computes on this machine: the kernels' instruction set, the threads of
the recurrent loop, the BLAS.  Re-exported as rnnx.info, rnnx.set_num_threads and
rnnx.get_num_threads."""
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


def set_num_threads(n):
    """Set the number of threads of the recurrent loop (forward and backward steps).

    Parameters
    ----------
    n : int
        Threads, >= 1.  1 runs every step on the calling thread.  A step is cut
        across hidden units, so results are the same for every n.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
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
        ``isa``: the kernels' instruction set in use ("avx512", "avx2" or
        "generic"; the environment variable RNNX_ISA forces one at import),
        ``available_isas``, ``num_threads`` (set_num_threads; the default is the
        physical cores, or RNNX_NUM_THREADS), ``physical_cores``, ``cpu`` (the
        model name), and ``blas``: threadpoolctl's description of the loaded
        BLAS libraries, or None when threadpoolctl is not installed.  BLAS runs
        only the big products hoisted out of the time loop.
    """
    try:
        from threadpoolctl import threadpool_info
        blas = [entry for entry in threadpool_info() if entry.get("user_api") == "blas"]
    except ImportError:
        blas = None
    return {"isa": _core.get_isa(), "available_isas": _core.available_isas(),
            "num_threads": get_num_threads(), "physical_cores": _physical_cores(),
            "cpu": cpu_model(), "blas": blas}


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
    _core.set_num_threads(_default_threads())
except RuntimeError:  # no worker threads could start: run serially
    _core.set_num_threads(1)

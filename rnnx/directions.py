"""Where a layer's calls into the core run: the thread's reusable Workspace and the helper
thread that runs a bidirectional layer's reverse direction beside its forward one."""
import contextlib
import os
import threading

from . import _core

# The Workspace (rnnx._core) the layers' calls into the core reuse on this thread, or None
# (each call allocates its own).  Set by using_workspace, which the Trainer wraps around its
# updates; a thread-local, so other threads running the same layers are not affected.
_local = threading.local()


@contextlib.contextmanager
def using_workspace(workspace):
    """Within the block, this thread's layer calls reuse ``workspace`` (an
    ``rnnx._core.Workspace``) for their work and training caches instead of allocating."""
    previous = getattr(_local, "workspace", None)
    _local.workspace = workspace
    try:
        yield workspace
    finally:
        _local.workspace = previous


def _workspace():
    return getattr(_local, "workspace", None)

# The two directions of a bidirectional layer's training forward run at the same time, the
# reverse one on a helper thread (inference runs both in one core call instead,
# _core.forward_side_by_side: one job of the thread team, which also degrades to one
# thread on a busy machine) (the core releases the GIL), where the pool has at most
# _CONCURRENT_THREADS threads: there each direction gets a core of its own, and on the
# 2-core machine LSTM (16, 128, 64, 200) went from 15.4-17.2 ms (one direction after the
# other, 2 threads each) to 13.0-13.3 ms.  With more threads each direction in turn takes the
# whole pool, since a second caller of a busy pool runs its step alone.  Only where a
# direction's recurrent work (T*B*G*H multiply-adds) is over _CONCURRENT_WORK, which pays
# for the handoff.  The results are the same either way: each direction writes its own part
# of y and of the final state.  Backward stays one direction after the other: both add into
# the same dx, in an order that checkpointed BPTT reproduces bit for bit in float64.
_CONCURRENT_THREADS = 2
_CONCURRENT_WORK = 1 << 22
_direction_pool = None
_direction_lock = threading.Lock()


def _direction_executor():
    global _direction_pool
    with _direction_lock:
        if _direction_pool is None:
            import concurrent.futures
            _direction_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="rnnx-direction")
        return _direction_pool


def _forget_direction_executor():  # a forked child has none of the parent's threads
    global _direction_pool, _direction_lock
    _direction_pool, _direction_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_direction_executor)


def _concurrent_directions(T, B, G, H):
    return 1 < _core.get_num_threads() <= _CONCURRENT_THREADS and T * B * G * H > _CONCURRENT_WORK

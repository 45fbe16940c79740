# Included by rnnx/_core.pyx: Workspace: the scratch and the training caches forward and backward reuse.

cdef class Workspace:
    """Memory that forward and backward reuse from one call to the next.

    The work (scratch) of a call lives only during that call: the workspace keeps one
    buffer per dtype, grown (never shrunk) when a call needs more.  A training
    forward's cache outlives the call, so caches come from a pool: a pooled array is
    handed out again only once nothing but the pool refers to it (the caller dropped
    every cache made from it), so a cache still held is never overwritten, whatever
    the later calls' shapes, dtypes or weights.  One call at a time: a second call
    while one runs (another thread) raises RuntimeError."""
    cdef dict _work        # dtype number -> 1-D ndarray
    cdef list _caches      # 1-D ndarrays, each handed out as views
    cdef int _max_caches
    cdef bint _busy

    def __cinit__(self, object max_caches=64):
        max_caches = _int_arg(max_caches, "max_caches")
        self._work = {}
        self._caches = []
        self._max_caches = max_caches
        self._busy = False

    @property
    def nbytes(self):
        """int: the bytes held (work buffers and pooled caches)."""
        return sum(a.nbytes for a in self._work.values()) + sum(a.nbytes for a in self._caches)

    cdef void* work(self, object dtype, size_t n) except NULL:
        """A pointer to n elements of dtype, valid until the next call that uses this workspace."""
        cdef cnp.ndarray buf = self._work.get(dtype.num)
        if buf is None or <size_t>buf.shape[0] < n:
            buf = np.empty(max(<size_t>1, n), dtype=dtype)
            self._work[dtype.num] = buf
        return cnp.PyArray_DATA(buf)

    cdef cnp.ndarray cache(self, object dtype, size_t n):
        """A (n,) array of dtype for a training forward's cache: a view of a pooled array
        that nothing else refers to, else a new pooled array."""
        cdef Py_ssize_t i, best = -1
        cdef object a
        for i in range(len(self._caches)):
            a = self._caches[i]
            # free: referred to by the pool and by `a` only (no cache made from it is alive)
            if Py_REFCNT(a) == 2 and a.dtype == dtype and <size_t>a.shape[0] >= n and (
                    best < 0 or a.shape[0] < self._caches[best].shape[0]):
                best = i
        if best < 0:
            a = np.empty(max(<size_t>1, n), dtype=dtype)
            if len(self._caches) >= self._max_caches:
                return a[:n]                 # the pool is full: a plain array
            self._caches.append(a)
        else:
            a = self._caches[best]
        return a[:n]

    cdef void enter(self) except *:
        if self._busy:
            raise RuntimeError("this Workspace is in use by another call (one call at a time: "
                               "give each thread its own)")
        self._busy = True

    cdef void leave(self) noexcept:
        self._busy = False

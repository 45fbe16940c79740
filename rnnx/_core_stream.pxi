# Included by rnnx/_core.pyx: Stream, the core's one stream (csrc/stream/stream.h) over a list
# of layers: recurrent stacks (projections and peepholes included; float, or int8/bfloat16
# weights), Dense heads, an Embedding.
# (Declarations and argument checks: _core_stream_args.pxi.)

cdef class Stream:
    """One step at a time through a list of layers, for inference: the core's one stream
    (csrc/stream/stream.h), validated and packed once here, a step one call into C.

    Stream(cell, weights, batch_size, dtype): one unidirectional recurrent stack; weights
    one (w_ih, w_hh, b_ih, b_hh[, w_peep[, w_hr]]) tuple per layer, biases may be None;
    an LSTM's peepholes w_peep (3H,) [Pi, Pf, Po] and projection w_hr (P, H) (then w_hh
    is (4H, P) and y, h are P wide), None for none.
    Keywords: embedding, an (V, E) table looked up first (x is then (B,) int ids); stacks,
    a list of further (cell, weights) recurrent stacks after the first, each taking the
    previous one's output; heads, a list of (weight (out, in), bias (out,) or None,
    activation name or None) Dense layers after the stacks; bit_exact (default True): each step equals a whole-sequence
    call over the same steps bit for bit (enum rnnx_stream_spec.bit_exact); qtype, "int8"
    or "bfloat16" for stacks of rnnx.quantize's tensors (float32 only; no peepholes): each
    weights entry is then (w_ih, s_ih, w_hh, s_hh, b_ih, b_hh[, w_hr, s_hr]), the weights
    int8 with float32 row scales s_*, or bfloat16 bits (uint16) with the scales None; each
    step is the quantized core's sequence call of one step (the bits of rnnx.quantize's
    model over the same steps).
    Holds copies of every weight, so a step allocates only its result."""
    cdef rnnx_step_stream core
    cdef rnnx_stream_layer* layers
    cdef const void** table
    cdef int cell, L, B, H, P, S, I, out, n_states, takes_ids, kind
    cdef object dtype
    cdef int typenum
    cdef list _keep
    cdef list _stacks    # per recurrent stack: (cell, L, H, P, S, states)
    cdef object _mem

    def __cinit__(self, object cell, list weights, object batch_size, object dtype, *,
                  object embedding=None, list stacks=None, list heads=None,
                  bint bit_exact=True, object qtype=None):
        self.layers = NULL
        self.table = NULL
        self.kind = RNNX_STREAM_RECURRENT
        if qtype is not None:
            kinds = {"int8": RNNX_STREAM_INT8, "bfloat16": RNNX_STREAM_BFLOAT16}
            if qtype not in kinds:
                raise ValueError(f"qtype must be None, 'int8' or 'bfloat16', got {qtype!r}")
            if np.dtype(dtype) != np.float32:
                raise TypeError(f"dtype must be float32 with qtype={qtype!r}, got {dtype}")
            self.kind = kinds[qtype]
        cell = _int_arg(cell, "cell")
        batch_size = _int_arg(batch_size, "batch_size")
        cdef int G1 = rnnx_gate_count(cell)
        if G1 == 0:
            raise ValueError(f"unknown cell code {cell}")
        if not weights:
            raise ValueError("weights must name at least one layer")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dtype = np.dtype(dtype)
        cdef int code = _dtype_code(self.dtype, "dtype")
        self.typenum = self.dtype.num
        # every array checked and copied before anything is allocated in C
        self.B = batch_size
        all_subs, self._stacks, width = [], [], None
        for j, (c, w) in enumerate([(cell, weights)] + list(stacks or [])):
            subs, H, P, c = self._stack(j, c, w, width)
            all_subs.append(subs)
            self._stacks.append((c, len(subs), H, P, P if P else H, _states(c)))
            width = P if P else H
        self.cell, self.L, self.H, self.P, _, self.n_states = self._stacks[0]
        self.S = width                      # the last stack's output width
        self.I = all_subs[0][0][0].shape[1]
        table = self._embedding(embedding)
        head_list = self._heads(heads or [])
        self._keep = [all_subs, table, head_list]
        self._build(code, all_subs, table, head_list, bit_exact)

    cdef tuple _stack(self, int j, object cell, object weights, object width):
        """Stack j's checked copies, H, P and cell; width: the previous stack's output."""
        where = "" if j == 0 else f"stacks[{j - 1}] "
        cell = _int_arg(cell, f"{where}cell")
        cdef int G1 = rnnx_gate_count(cell)
        if G1 == 0:
            raise ValueError(f"unknown cell code {cell}")
        if not weights:
            raise ValueError(f"{where}weights must name at least one layer")
        subs, H, P = [], None, 0
        for k, entry in enumerate(weights):
            if self.kind == RNNX_STREAM_RECURRENT:
                arrays, H, P_k = _recurrent_entry(cell, G1, k, entry, H, self.B, self.dtype)
            else:
                arrays, H, P_k = _qrecurrent_entry(cell, G1, k, entry, H, self.B,
                                                   self.kind == RNNX_STREAM_INT8)
            if k and P_k != P:
                raise ValueError(f"{where}weights[{k}].w_hr must have shape {(P, H)} as "
                                 f"weights[0]'s, got {(P_k, H) if P_k else None}")
            P = P_k
            subs.append(arrays)
        if width is not None and subs[0][0].shape[1] != width:
            raise ValueError(f"{where}weights[0].w_ih must have shape "
                             f"{(subs[0][0].shape[0], width)} (the previous stack's output), "
                             f"got {subs[0][0].shape}")
        return subs, H, P, cell

    cdef object _embedding(self, object table):
        if table is None:
            self.takes_ids = 0
            return None
        table = _stream_array(table, "embedding", self.dtype)
        if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] != self.I:
            raise ValueError(f"embedding must be (V, {self.I}) with V >= 1 (its rows are the "
                             f"stack's input), got shape {table.shape}")
        self.takes_ids = 1
        return table

    cdef list _heads(self, list heads):
        """Each Dense head's (weight, bias, activation code), checked; sets self.out."""
        width, checked = self.S, []
        for j, head in enumerate(heads):
            if not isinstance(head, (tuple, list)) or len(head) != 3:
                raise ValueError(f"heads[{j}] must be a (weight, bias, activation) tuple, got "
                                 f"{head!r:.60}")
            w = _stream_array(head[0], f"heads[{j}].weight", self.dtype)
            if w.ndim != 2 or w.shape[1] != width or w.shape[0] < 1:
                raise ValueError(f"heads[{j}].weight must be (out, {width}), got {w.shape}")
            b = None if head[1] is None else _stream_array(head[1], f"heads[{j}].bias", self.dtype)
            if b is not None and b.shape != (w.shape[0],):
                raise ValueError(f"heads[{j}].bias must have shape {(w.shape[0],)}, got {b.shape}")
            if head[2] not in STREAM_ACTIVATIONS:
                raise ValueError(f"heads[{j}].activation must be one of "
                                 f"{sorted(map(str, STREAM_ACTIVATIONS))}, got {head[2]!r}")
            checked.append((w, b, STREAM_ACTIVATIONS[head[2]]))
            width = w.shape[0]
        self.out = width
        return checked

    cdef void _build(self, int code, list all_subs, object table, list heads,
                     bint bit_exact) except *:
        """The layer list over the kept copies, then the core's stream on its memory."""
        cdef int n = len(all_subs) + (table is not None) + len(heads), i = 0, k, j
        cdef int subs_total = sum(len(subs) for subs in all_subs)
        cdef int per_sub = (RNNX_ST_PER_SUBLAYER if self.kind == RNNX_STREAM_RECURRENT
                            else RNNX_SQ_PER_SUBLAYER)
        self.layers = <rnnx_stream_layer*>calloc(n, sizeof(rnnx_stream_layer))
        self.table = <const void**>calloc(subs_total * per_sub + 2 * len(heads) + 1,
                                          sizeof(void*))
        if self.layers == NULL or self.table == NULL:
            raise MemoryError()
        cdef const void** t = self.table
        if table is not None:
            self.layers[0].kind = RNNX_STREAM_EMBEDDING
            self.layers[0].input_size = table.shape[0]
            self.layers[0].hidden_size = self.I
            self.layers[0].num_layers = self.layers[0].num_directions = 1
            t[0] = cnp.PyArray_DATA(<cnp.ndarray>table)
            self.layers[0].tensors = t
            t += 1
            i = 1
        width = self.I
        for subs, (cell, L, H, P, S, _) in zip(all_subs, self._stacks):
            self.layers[i].kind = self.kind
            self.layers[i].cell = cell
            self.layers[i].input_size = width
            self.layers[i].hidden_size = H
            self.layers[i].proj_size = P
            self.layers[i].num_layers = L
            self.layers[i].num_directions = 1
            self.layers[i].tensors = t
            for k in range(L):
                for j in range(per_sub):
                    w = subs[k][j]
                    t[j] = NULL if w is None else cnp.PyArray_DATA(<cnp.ndarray>w)
                t += per_sub
            width = S
            i += 1
        for w, b, act in heads:
            self.layers[i].kind = RNNX_STREAM_DENSE
            self.layers[i].input_size = width
            self.layers[i].hidden_size = w.shape[0]
            self.layers[i].num_layers = self.layers[i].num_directions = 1
            self.layers[i].activation = act
            t[0] = cnp.PyArray_DATA(<cnp.ndarray>w)
            t[1] = NULL if b is None else cnp.PyArray_DATA(<cnp.ndarray>b)
            self.layers[i].tensors = t
            t += 2
            i += 1
            width = w.shape[0]
        cdef rnnx_stream_spec spec
        memset(&spec, 0, sizeof(spec))
        spec.dtype = code
        spec.B = self.B
        spec.num_layers = n
        spec.layers = self.layers
        spec.bit_exact = bit_exact
        cdef size_t nbytes = 0
        cdef int status = rnnx_step_stream_size(&spec, &nbytes)
        if status:
            raise ValueError(f"cannot stream these layers: {strerror(status)}")
        # the core's regions start on 64 bytes of its memory: give it memory on 64 bytes
        self._mem = np.empty(nbytes + 64, np.uint8)
        cdef char* mem = <char*>cnp.PyArray_DATA(<cnp.ndarray>self._mem)
        mem += (64 - <size_t>mem % 64) % 64
        status = rnnx_step_stream_init(&self.core, &spec, mem, nbytes)
        if status:
            raise ValueError(f"cannot stream these layers: {strerror(status)}")

    def __dealloc__(self):
        free(self.layers)
        free(self.table)

    @property
    def batch_size(self):
        return self.B

    @property
    def output_size(self):
        return self.out

    cdef cnp.ndarray _input(self, object x, bint* unbatched):
        """x as the step reads it: (B, I) of the dtype, or (B,) int32 ids in range."""
        if self.takes_ids:
            return self._ids(x, unbatched)
        if (cnp.PyArray_Check(x) and cnp.PyArray_TYPE(<cnp.ndarray>x) == self.typenum
                and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>x) and cnp.PyArray_ISALIGNED(<cnp.ndarray>x)
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x) and cnp.PyArray_NDIM(<cnp.ndarray>x) == 2
                and cnp.PyArray_DIM(<cnp.ndarray>x, 0) == self.B
                and cnp.PyArray_DIM(<cnp.ndarray>x, 1) == self.I):
            return <cnp.ndarray>x
        a, unbatched[0] = self._coerce(x)
        return a

    cdef cnp.ndarray _ids(self, object x, bint* unbatched, int steps=1):
        """x as int32 ids of steps steps ((B,), or (steps*B,)).  An int32 array goes to C as
        it is (the core checks the range before anything changes: _ids_refused names it);
        wider ids are checked here, before they are narrowed."""
        if (cnp.PyArray_Check(x) and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_INT32
                and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>x) and cnp.PyArray_ISALIGNED(<cnp.ndarray>x)
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x) and cnp.PyArray_NDIM(<cnp.ndarray>x) == 1
                and cnp.PyArray_DIM(<cnp.ndarray>x, 0) == steps * self.B):
            return <cnp.ndarray>x
        a = np.asarray(x)
        if a.dtype.kind not in "iu":
            raise TypeError(f"x_t must be integer token ids, got dtype {a.dtype}")
        unbatched[0] = a.ndim == 0 and self.B == 1
        if unbatched[0]:
            a = a[None]
        if a.shape != (steps * self.B,):
            raise ValueError(f"x_t must be ({self.B},) token ids for batch_size={self.B}, got "
                             f"shape {np.shape(x)}")
        if a.dtype != np.int32:
            self._ids_in_range(a)
        return np.ascontiguousarray(a, dtype=np.int32)

    cdef _ids_in_range(self, object a):
        """A ValueError naming the range unless every id of a is in [0, V)."""
        V = self.layers[0].input_size
        if a.size and (a.min() < 0 or a.max() >= V):
            raise ValueError(f"token ids must be in [0, {V}), got ids from {a.min()} to {a.max()}")

    cdef _refused(self, int status, object ids, str call):
        """The error of a failed step or run: the ids' range where the core refused them."""
        if self.takes_ids:
            self._ids_in_range(ids)
        raise ValueError(f"{call}: {strerror(status)}")

    def step(self, x):
        """y_t = step(x_t): x_t (B, I) -> y_t (B, out); (I,) -> (out,) when B == 1; with an
        embedding, x_t is (B,) int ids (a scalar when B == 1)."""
        cdef bint unbatched = False
        cdef cnp.ndarray xa = self._input(x, &unbatched)
        cdef cnp.npy_intp dims[2]
        dims[0] = self.B
        dims[1] = self.out
        cdef cnp.ndarray y = (cnp.PyArray_EMPTY(1, &dims[1], self.typenum, 0) if unbatched
                              else cnp.PyArray_EMPTY(2, dims, self.typenum, 0))
        cdef int status
        with nogil:
            status = rnnx_step_stream_step(&self.core, &BLAS, cnp.PyArray_DATA(xa),
                                           cnp.PyArray_DATA(y))
        if status:
            self._refused(status, xa, "rnnx_step_stream_step")
        return y

    def run(self, cnp.ndarray x, Workspace workspace=None):
        """y = run(x, workspace): x (T, B, I) C-contiguous, aligned, of the stream's dtype
        ((T, B) int ids with an embedding) -> y (T, B, out), from the current state, which
        it advances: the numbers of T calls of step, each recurrent layer's T steps one
        call of the core's driver (rnnx_step_stream_run); its work from workspace (None:
        its own)."""
        cdef bint scalar = False
        if self.takes_ids:
            if x.ndim != 2 or x.shape[1] != self.B:
                raise ValueError(f"x must be (T, {self.B}) token ids, got shape {np.shape(x)}")
            x = self._ids(x.reshape(-1), &scalar, x.shape[0]).reshape(np.shape(x))
        elif (cnp.PyArray_TYPE(x) != self.typenum or not cnp.PyArray_ISNOTSWAPPED(x)
                or not cnp.PyArray_ISALIGNED(x) or not cnp.PyArray_IS_C_CONTIGUOUS(x)
                or x.ndim != 3 or x.shape[1] != self.B or x.shape[2] != self.I):
            raise ValueError(f"x must be a C-contiguous ({'T'}, {self.B}, {self.I}) array of "
                             f"{self.dtype}, got {x.dtype} {np.shape(x)}")
        if x.shape[0] < 1:
            raise ValueError(f"x must have at least one step, got shape {np.shape(x)}")
        if x.shape[0] * self.B > _INT_MAX:
            raise ValueError(f"sizes too large: T * B = {x.shape[0] * self.B} must stay below 2**31")
        cdef int T = x.shape[0], status = 0
        cdef size_t need = rnnx_step_stream_run_size(&self.core, T)
        if need == 0:
            raise ValueError(f"sizes too large for the core: T = {T}, B = {self.B}")
        y = np.empty((T, self.B, self.out), dtype=self.dtype)
        ws = Workspace() if workspace is None else workspace
        cdef void* work
        ws.enter()
        try:
            work = ws.work(np.dtype(np.float64), need // 8 + 1)   # bytes, on 8
            with nogil:
                status = rnnx_step_stream_run(&self.core, &BLAS, cnp.PyArray_DATA(x), T,
                                              cnp.PyArray_DATA(<cnp.ndarray>y), work, need)
        finally:
            ws.leave()
        if status:
            self._refused(status, x, "rnnx_step_stream_run")
        return y

    def _coerce(self, x):
        a = np.asarray(x)
        if a.dtype.kind != "f":
            raise TypeError(f"x_t must be a real floating array, got dtype {a.dtype}")
        unbatched = a.ndim == 1 and self.B == 1
        if unbatched:
            a = a[None, :]
        if a.ndim != 2 or a.shape != (self.B, self.I):
            want = f"({self.B}, {self.I})" + (f" or ({self.I},)" if self.B == 1 else "")
            raise ValueError(f"x_t must be {want} for batch_size={self.B}, input_size={self.I}, "
                             f"got {a.shape}")
        # a copy in native byte order, aligned and contiguous, whatever a was
        return np.array(a, dtype=self.dtype, order="C", copy=True), unbatched

    cdef list _state_views(self):
        """The current state in place, per stack: h (L, B, S) and c (L, B, H) (None
        without c), in the core's layout (rnnx_step_stream_state)."""
        cdef cnp.npy_intp n = self.core.state_elems
        flat = cnp.PyArray_SimpleNewFromData(1, &n, self.typenum,
                                             rnnx_step_stream_state(&self.core))
        cnp.set_array_base(flat, self)        # the view keeps the stream alive
        views, at = [], 0
        for cell, L, H, P, S, states in self._stacks:
            h = flat[at:at + L * self.B * S].reshape(L, self.B, S)
            at += L * self.B * S
            c = flat[at:at + L * self.B * H].reshape(L, self.B, H) if states == 2 else None
            at += L * self.B * H if states == 2 else 0
            views.append((h, c))
        return views

    def get_states(self):
        """Per stack, (h, c) copies (c None for cells without one)."""
        return [(h.copy(), None if c is None else c.copy()) for h, c in self._state_views()]

    def set_states(self, states):
        """Per stack, (h, c) of the shapes get_states gives (c None where it has none;
        the caller checks them: rnnx.SequentialStream does)."""
        for (h, c), (h_src, c_src) in zip(self._state_views(), states):
            h[...] = h_src
            if c is not None:
                c[...] = c_src

    def get_state(self):
        """The first stack's (h, c) copies, h (L, B, S), c (L, B, H); c is zeros for cells
        without one."""
        h, c = self._state_views()[0]
        return h.copy(), (np.zeros((self.L, self.B, self.H), self.dtype) if c is None
                          else c.copy())

    def set_state(self, h, c=None):
        """Set the first stack's states, h (L, B, S) and c (L, B, H); None means zeros."""
        S0 = self.P if self.P else self.H
        shapes = ((self.L, self.B, S0), (self.L, self.B, self.H))
        checked = []   # both checked before either is written: a refused c leaves h as it was
        for name, shape, src in (("h", shapes[0], h), ("c", shapes[1], c)):
            if src is not None:
                src = np.asarray(src)
                if src.shape != shape:
                    raise ValueError(f"state {name} must be {shape}, got {src.shape}")
                if src.dtype.kind != "f":
                    raise TypeError(f"state {name} must be a real floating array, got dtype {src.dtype}")
            checked.append(src)
        for dst, src in zip(self._state_views()[0], checked):
            if dst is None:
                continue
            if src is None:
                dst[...] = 0
            else:
                dst[...] = src

# Included by rnnx/_core.pyx: the cost model that chooses where the input projection
# is computed (rnnx_projection_plan, csrc/projection_plan.c) and its call counts.

cdef extern from "rnnx.h" nogil:
    ctypedef struct rnnx_projection_costs:
        int choice, fusable
        double hoisted_ns, fused_ns, gemm_ns, slab_ns, steps_hoisted_ns, steps_fused_ns
        double copies_ns, pack_hoisted_ns, pack_fused_ns
    int rnnx_projection_plan(int cell, int T, int B, int input_size, int H, int P, int threads,
                             int dtype, rnnx_projection_costs* out)
    void rnnx_projection_counts(long long counts[2])

# Input projection choices, as in enum rnnx_projection.
PROJECTION_AUTO, PROJECTION_HOISTED, PROJECTION_FUSED = 0, 1, 2
_PROJECTION_NAMES = {PROJECTION_HOISTED: "hoisted", PROJECTION_FUSED: "fused"}


def projection_plan(cell, T, B, input_size, hidden_size, proj_size=0, threads=1,
                    dtype=np.float32):
    """The cost model's choice for one layer and direction of this shape, as a dict:
    "choice" ("hoisted" or "fused", what forward does by default), "fusable" (False
    for a GRU, and where T*B*G has no room for the fused weights; training always hoists) and the estimated times in ns: "hoisted_ns", "fused_ns" and their
    parts ("gemm_ns", "slab_ns", "steps_hoisted_ns", "pack_hoisted_ns";
    "steps_fused_ns", "copies_ns", "pack_fused_ns")."""
    cdef rnnx_projection_costs c
    args = [_int_arg(v, name) for v, name in
            ((cell, "cell"), (T, "T"), (B, "B"), (input_size, "input_size"),
             (hidden_size, "hidden_size"), (proj_size, "proj_size"), (threads, "threads"))]
    cdef int status = rnnx_projection_plan(args[0], args[1], args[2], args[3], args[4],
                                           args[5], args[6], _dtype_code(np.dtype(dtype), "dtype"),
                                           &c)
    if status:
        raise ValueError(f"projection_plan(cell={cell}, T={T}, B={B}, input_size={input_size}, "
                         f"hidden_size={hidden_size}, proj_size={proj_size}): {strerror(status)}")
    return {"choice": _PROJECTION_NAMES[c.choice], "fusable": bool(c.fusable),
            "hoisted_ns": c.hoisted_ns, "fused_ns": c.fused_ns, "gemm_ns": c.gemm_ns,
            "slab_ns": c.slab_ns, "steps_hoisted_ns": c.steps_hoisted_ns,
            "pack_hoisted_ns": c.pack_hoisted_ns, "steps_fused_ns": c.steps_fused_ns,
            "copies_ns": c.copies_ns, "pack_fused_ns": c.pack_fused_ns}


def projection_counts():
    """(hoisted, fused): how many forward calls (one layer and direction each) computed
    their input projection each way since the library was loaded."""
    cdef long long counts[2]
    rnnx_projection_counts(counts)
    return int(counts[0]), int(counts[1])

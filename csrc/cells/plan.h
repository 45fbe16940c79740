/*
 * plan.h: what a cell file (csrc/cells/<cell>.c) gives the sequence driver:
 * its own parameters, the phases of a forward step (the recurrent products
 * of some gates, then an elementwise function on the units just computed)
 * and the stages of a backward step.  The cell's shapes and buffer layouts
 * are its descriptor in layout.h.  Compiled through kernels_body.c, after
 * driver/step.h.
 */

/* One forward phase: gates g0..g1-1 += input @ W_hh[g]^T, then finish.  The
 * input is h_prev, or aux (GRU reset before's r * h_prev); aux_gate's product
 * goes to aux (B,H), starting from bias_n, instead of into the gates.  A
 * projection phase (proj_out) is instead h (B,P) := m (B,H) @ W_hr^T, on the
 * P units. */
typedef struct fwd_phase {
    int g0, g1, from_aux, aux_gate;
    step_fn finish;
    int proj_out;
} fwd_phase;

/* One backward stage: grads on every unit, then
 * dst (+)= src[:, g0*H:g1*H] @ W_hh[g0*H:g1*H, :], where src is dg or dgh and
 * dst is dh or drh (zeroed first).  The forward product of those gates took
 * aux as input exactly when dst is drh. */
typedef struct bwd_stage {
    bstep_fn grads;
    int g0, g1, src_dgh, dst_drh;
} bwd_stage;

/* A cell's own parameters beyond W_ih, W_hh and the biases: what its step
 * functions read besides the shared step, filled from the call by its plan's
 * setup.  A field belongs to the cell that names it. */
typedef struct cell_params {
    int relu;             /* RNN: act = relu, else tanh */
    const real* bias_n;   /* (H,) GRU reset after: b_hn, the start of W_hn h_prev + b_hn; or NULL */
    const real* peep;     /* (3H,) LSTM: the peepholes [Pi, Pf, Po], or NULL */
} cell_params;

/* b_hh (G,) and w_peep (3H,) of the call (each possibly NULL; b_hh NULL backward). */
typedef void (*cell_setup_fn)(cell_params* p, int H, const real* b_hh, const real* w_peep);

/* A cell's plan: its setup, the phases of a forward step and the stages of a
 * backward step, each with its elementwise function (csrc/cells/<cell>.c). */
typedef struct cell_plan {
    cell_setup_fn setup;          /* NULL: the cell has no parameters of its own */
    int slab_bias_hh_gates;       /* the gates whose b_hh the input projection pre-sums into
                                     the slab (GRU reset after adds b_hn in its own product) */
    const struct cell_plan* proj; /* the plan with a projection (RNNX_OPTION_PROJ), or NULL */
    int n_phases;
    fwd_phase phase[2];
    int n_stages;
    bwd_stage stage[2];
} cell_plan;

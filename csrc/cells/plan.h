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

/* The (B,.) gradients of a backward step that a stage's product reads or
 * writes (bstep's fields of those names), and the weights it goes through. */
enum bwd_grad { GRAD_NONE, GRAD_DG, GRAD_DGH, GRAD_DH, GRAD_DRH, GRAD_DM };
enum bwd_weight { WEIGHT_HH, WEIGHT_HR };

/* One backward stage, run on the units of dst (on the H units where it has
 * no product), cut into tasks of whole panels:
 *   before(units); dst[:, units] (+)= src[:, k] @ W[k, units]; after(units)
 * where k are the rows of W's blocks g0..g1-1: W_hh (G,P) in blocks of H rows
 * (its gates), W_hr (P,H) one block of P rows (P the width of h: proj_size,
 * else H).  dst is dh (B,P), which accumulates the gradient carried past the
 * cell, or drh or dm (B,H), which the product overwrites.  The stages run one
 * after another, so a product may read what the stage before wrote on every
 * unit; before and after touch only the stage's units.  After the loop, every
 * product's weights get their gradient dW[k] += src^T @ (the forward input
 * whose gradient dst is: h_prev for dh, aux for drh, m for dm), src of dh
 * being the dh kept for every step (dhs). */
typedef struct bwd_stage {
    bstep_fn before, after;   /* or NULL */
    int src, dst;             /* enum bwd_grad; dst GRAD_NONE: no product */
    int weight, g0, g1;       /* enum bwd_weight, and its blocks */
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

/* After the backward loop: the gradients of the cell's own parameters (those
 * cell_params holds, e.g. the peepholes) added into d_own, from dg (rows,G)
 * the gate gradients of every step and row and c_prev, c (rows,H) the cell
 * states before and after them (NULL for a cell without c); the rows summed
 * one after another, last first when descending (the backward loop's order). */
typedef void (*cell_grads_fn)(const cell_params* p, real* d_own, const real* dg,
                              const real* c_prev, const real* c, size_t rows, int H,
                              int descending);

/* A cell's plan: its setup, the phases of a forward step and the stages of a
 * backward step, each with its elementwise function (csrc/cells/<cell>.c). */
typedef struct cell_plan {
    cell_setup_fn setup;          /* NULL: the cell has no parameters of its own */
    cell_grads_fn own_grads;      /* NULL: none (or no gradient to take) */
    int slab_bias_hh_gates;       /* the gates whose b_hh the input projection pre-sums into
                                     the slab (GRU reset after adds b_hn in its own product) */
    const struct cell_plan* proj; /* the plan with a projection (RNNX_OPTION_PROJ), or NULL */
    int n_phases;
    fwd_phase phase[2];
    int n_stages;
    bwd_stage stage[4];
} cell_plan;

/*
 * rnn.c: the Elman cell, h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),
 * act = tanh or relu: its elementwise work per step.  The products and the
 * time loop are in driver/.  Compiled through kernels_body.c.
 */

/* h (n,) OUT = act(pre (n,) IN). */
static inline void rnn_row_forward(real* restrict h, const real* restrict pre, int relu, int n)
{
    if (relu)  /* as v < 0 ? 0 : v, relu lets a NaN through, as PyTorch does */
        for (int j = 0; j < n; j++)
            h[j] = pre[j] < 0 ? 0 : pre[j];
    else
        for (int j = 0; j < n; j++)
            h[j] = tanh_act(pre[j]);
}

/* dg (n,) OUT, dh (n,) IN gradient at h, OUT 0; h (n,) IN. */
static inline void rnn_row_backward(real* restrict dg, real* restrict dh, const real* restrict h,
                                    int relu, int n)
{
    for (int j = 0; j < n; j++) {
        /* forward was: h = act(pre); tanh' = 1 - h^2, relu' = [h > 0] */
        const real dact = relu ? (h[j] > 0 ? 1 : 0) : 1 - h[j] * h[j];
        dg[j] = dh[j] * dact;
        dh[j] = 0;
    }
}

/* gates (B,H) IN pre-activations; h (B,H) OUT; y OUT.  Rows past their
 * length keep h_prev and output 0. */
static void rnn_step_forward(const step* s, int r0, int r1, int j0, int j1)
{
    const int H = s->H;
    for (int b = r0; b < r1; b++) {
        if (!row_active(s->lengths, s->t, b)) {
            carry_row(s, b, j0, j1);
            continue;
        }
        real* h = s->h + (size_t)b * H + j0;
        rnn_row_forward(h, s->gates + (size_t)b * H + j0, s->cp->relu, j1 - j0);
        memcpy(s->y + (ptrdiff_t)b * s->ldy + j0, h, (size_t)(j1 - j0) * sizeof(real));
    }
}

/* dg (B,H) OUT gradient of the pre-activations; dh (B,H) IN gradient at h_t,
 * OUT 0 (what reaches h_prev comes through W_hh, added by the driver); h IN. */
static void rnn_step_backward(const bstep* s, int j0, int j1)
{
    const int H = s->H;
    for (int b = 0; b < s->B; b++) {
        real* dg = s->dg + (size_t)b * H;
        real* dh = s->dh + (size_t)b * H;
        const real* h = s->h + (size_t)b * H;
        if (!row_active(s->lengths, s->t, b)) {
            /* forward was: h = h_prev, so dh passes to h_prev untouched */
            memset(dg + j0, 0, (size_t)(j1 - j0) * sizeof(real));
            continue;
        }
        rnn_row_backward(dg + j0, dh + j0, h + j0, s->cp->relu, j1 - j0);
    }
}

static void rnn_relu_setup(cell_params* p, int H, const real* b_hh, const real* w_peep)
{
    (void)H, (void)b_hh, (void)w_peep;
    p->relu = 1;
}

static const cell_plan rnn_tanh_plan = {
    .slab_bias_hh_gates = 1,
    .n_phases = 1, .phase = {{0, 1, 0, -1, rnn_step_forward, 0}},
    .n_stages = 2, .stage = {{.before = rnn_step_backward},
                             {.src = GRAD_DG, .dst = GRAD_DH, .g0 = 0, .g1 = 1}}};

static const cell_plan rnn_relu_plan = {
    .setup = rnn_relu_setup, .slab_bias_hh_gates = 1,
    .n_phases = 1, .phase = {{0, 1, 0, -1, rnn_step_forward, 0}},
    .n_stages = 2, .stage = {{.before = rnn_step_backward},
                             {.src = GRAD_DG, .dst = GRAD_DH, .g0 = 0, .g1 = 1}}};

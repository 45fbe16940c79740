/*
 * gru.c: the GRU cell, gates in PyTorch's order r, z, n:
 *   r = sigma(W_ir x + b_ir + W_hr h_prev + b_hr)
 *   z = sigma(W_iz x + b_iz + W_hz h_prev + b_hz)
 *   reset after  (PyTorch, cuDNN):  n = tanh(W_in x + b_in + r * (W_hn h_prev + b_hn))
 *   reset before (Cho et al. 2014): n = tanh(W_in x + b_in + W_hn (r * h_prev) + b_hn)
 *   h = (1 - z) * n + z * h_prev
 * Its elementwise work per step; the products and the time loop are in
 * driver/.  Compiled through kernels_body.c.  aux is W_hn h_prev + b_hn
 * (reset after) or r * h_prev (reset before).
 */

/* One row of n units, reset after: r, z, n pre-activations IN, activations OUT;
 * hn IN; h OUT.  Parameters, so that restrict lets the loop vectorize. */
static inline void gru_after_row_forward(real* restrict h, real* restrict gr, real* restrict gz,
                                         real* restrict gn, const real* restrict hn,
                                         const real* restrict h_prev, int n)
{
    for (int j = 0; j < n; j++) {
        const real r = sigmoid(gr[j]), z = sigmoid(gz[j]);
        const real nj = tanh_act(gn[j] + r * hn[j]);
        gr[j] = r;
        gz[j] = z;
        gn[j] = nj;
        h[j] = (1 - z) * nj + z * h_prev[j];
    }
}

/* Reset after.  gates (B,3H) IN pre-activations of r and z (input and
 * recurrent parts, both biases), n's input part W_in x + b_in; OUT
 * activations r, z, n.  aux (B,H) IN W_hn h_prev + b_hn.  h, y OUT. */
static void gru_after_step_forward(const step* s, int r0, int r1, int j0, int j1)
{
    const int H = s->H;
    for (int b = r0; b < r1; b++) {
        if (!row_active(s->lengths, s->t, b)) {
            carry_row(s, b, j0, j1);
            continue;
        }
        real* gr = s->gates + (size_t)b * 3 * H;
        real* h = s->h + (size_t)b * H;
        gru_after_row_forward(h + j0, gr + j0, gr + H + j0, gr + 2 * H + j0,
                              s->aux + (size_t)b * H + j0, s->h_prev + (size_t)b * H + j0, j1 - j0);
        memcpy(s->y + (ptrdiff_t)b * s->ldy + j0, h + j0, (size_t)(j1 - j0) * sizeof(real));
    }
}

static inline void gru_before_row_gates(real* restrict rh, real* restrict gr, real* restrict gz,
                                        const real* restrict h_prev, int n)
{
    for (int j = 0; j < n; j++) {
        const real r = sigmoid(gr[j]);
        gr[j] = r;
        gz[j] = sigmoid(gz[j]);
        rh[j] = r * h_prev[j];
    }
}

/* Reset before, first phase.  gates (B,3H): r, z pre-activations IN,
 * activations OUT; aux (B,H) OUT r * h_prev, the input of the second
 * recurrent product (0 on rows past their length, so that NaN padding never
 * reaches a gradient). */
static void gru_before_step_gates(const step* s, int r0, int r1, int j0, int j1)
{
    const int H = s->H;
    for (int b = r0; b < r1; b++) {
        real* rh = s->aux + (size_t)b * H;
        if (!row_active(s->lengths, s->t, b)) {
            memset(rh + j0, 0, (size_t)(j1 - j0) * sizeof(real));
            continue;
        }
        real* gr = s->gates + (size_t)b * 3 * H;
        gru_before_row_gates(rh + j0, gr + j0, gr + H + j0, s->h_prev + (size_t)b * H + j0, j1 - j0);
    }
}

static inline void gru_before_row_output(real* restrict h, real* restrict gn,
                                         const real* restrict gz, const real* restrict h_prev, int n)
{
    for (int j = 0; j < n; j++) {
        const real nj = tanh_act(gn[j]), z = gz[j];
        gn[j] = nj;
        h[j] = (1 - z) * nj + z * h_prev[j];
    }
}

/* Reset before, second phase.  gates (B,3H): n pre-activation IN, activation
 * OUT (r, z activations IN); h, y OUT. */
static void gru_before_step_output(const step* s, int r0, int r1, int j0, int j1)
{
    const int H = s->H;
    for (int b = r0; b < r1; b++) {
        if (!row_active(s->lengths, s->t, b)) {
            carry_row(s, b, j0, j1);
            continue;
        }
        real* gz = s->gates + (size_t)b * 3 * H + H;
        real* h = s->h + (size_t)b * H;
        gru_before_row_output(h + j0, gz + H + j0, gz + j0, s->h_prev + (size_t)b * H + j0, j1 - j0);
        memcpy(s->y + (ptrdiff_t)b * s->ldy + j0, h + j0, (size_t)(j1 - j0) * sizeof(real));
    }
}

/* Gradient through the shared last stage, h = (1-z)*n + z*h_prev and n = tanh(a_n),
 * of row b: dg z and n parts OUT, dh OUT the direct part dh*z. */
static inline void gru_row_backward_output_n(real* restrict dgz, real* restrict dgn,
                                             real* restrict dh, const real* restrict gz,
                                             const real* restrict gn, const real* restrict h_prev,
                                             int n)
{
    for (int j = 0; j < n; j++) {
        const real z = gz[j], nj = gn[j], dhj = dh[j];
        /* forward was: h = (1-z)*n + z*h_prev, so dn = dh*(1-z), dz = dh*(h_prev-n), dh_prev = dh*z */
        const real dn = dhj * (1 - z);
        const real dz = dhj * (h_prev[j] - nj);
        dh[j] = dhj * z;
        /* forward was: n = tanh(a_n), z = sigma(a_z) */
        dgn[j] = dn * (1 - nj * nj);
        dgz[j] = dz * z * (1 - z);
    }
}

static inline void gru_row_backward_output(const bstep* s, int b, int j0, int j1)
{
    const int H = s->H;
    const size_t g3 = (size_t)b * 3 * H, row = (size_t)b * H;
    gru_row_backward_output_n(s->dg + g3 + H + j0, s->dg + g3 + 2 * H + j0, s->dh + row + j0,
                              s->gates + g3 + H + j0, s->gates + g3 + 2 * H + j0,
                              s->h_prev + row + j0, j1 - j0);
}

/* Rows past their length: no gradient on any gate (dh passes through). */
static inline void gru_row_backward_carry(real* dg, real* dgh, int b, int H, int j0, int j1)
{
    for (int q = 0; q < 3; q++) {
        memset(dg + (size_t)b * 3 * H + q * H + j0, 0, (size_t)(j1 - j0) * sizeof(real));
        if (dgh)
            memset(dgh + (size_t)b * 3 * H + q * H + j0, 0, (size_t)(j1 - j0) * sizeof(real));
    }
}

static inline void gru_after_row_backward_reset(real* restrict dgr, const real* restrict dgz,
                                                const real* restrict dgn, real* restrict dghr,
                                                real* restrict dghz, real* restrict dghn,
                                                const real* restrict gr, const real* restrict hn,
                                                int n)
{
    for (int j = 0; j < n; j++) {
        const real r = gr[j], dan = dgn[j];
        /* forward was: a_n = W_in x + b_in + r * hn, so dr = da_n * hn, dhn = da_n * r;
         * r = sigma(a_r) */
        const real dar = dan * hn[j] * r * (1 - r);
        dgr[j] = dar;
        dghr[j] = dar;
        dghz[j] = dgz[j];
        dghn[j] = dan * r;
    }
}

/* Reset after.  dg (B,3H) OUT input-side gradient; dgh (B,3H) OUT W_hh-side
 * gradient; dh IN at h_t, OUT the direct part at h_prev; aux = hn IN. */
static void gru_after_step_backward(const bstep* s, int j0, int j1)
{
    const int H = s->H;
    for (int b = 0; b < s->B; b++) {
        if (!row_active(s->lengths, s->t, b)) {
            gru_row_backward_carry(s->dg, s->dgh, b, H, j0, j1);
            continue;
        }
        gru_row_backward_output(s, b, j0, j1);
        const size_t g3 = (size_t)b * 3 * H + j0;
        gru_after_row_backward_reset(s->dg + g3, s->dg + g3 + H, s->dg + g3 + 2 * H,
                                     s->dgh + g3, s->dgh + g3 + H, s->dgh + g3 + 2 * H,
                                     s->gates + g3, s->aux + (size_t)b * H + j0, j1 - j0);
    }
}

/* Reset before, first stage: the z and n parts of dg OUT (r is 0 until the
 * second stage), dh OUT the direct part dh*z.  The driver then computes
 * drh = da_n @ W_hn. */
static void gru_before_step_backward_output(const bstep* s, int j0, int j1)
{
    for (int b = 0; b < s->B; b++) {
        if (!row_active(s->lengths, s->t, b)) {
            gru_row_backward_carry(s->dg, NULL, b, s->H, j0, j1);
            continue;
        }
        gru_row_backward_output(s, b, j0, j1);
    }
}

static inline void gru_before_row_backward_reset(real* restrict dgr, real* restrict dh,
                                                 const real* restrict drh, const real* restrict gr,
                                                 const real* restrict h_prev, int n)
{
    for (int j = 0; j < n; j++) {
        const real r = gr[j];
        /* forward was: rh = r * h_prev, so dr = drh * h_prev, dh_prev += drh * r */
        dgr[j] = drh[j] * h_prev[j] * r * (1 - r);
        dh[j] += drh[j] * r;
    }
}

/* Reset before, second stage: through rh = r * h_prev.  dg r part OUT;
 * dh += drh * r; drh (B,H) IN. */
static void gru_before_step_backward_reset(const bstep* s, int j0, int j1)
{
    const int H = s->H;
    for (int b = 0; b < s->B; b++) {
        if (!row_active(s->lengths, s->t, b))
            continue;  /* dg is 0 there already and dh passes through */
        const size_t g3 = (size_t)b * 3 * H + j0, row = (size_t)b * H + j0;
        gru_before_row_backward_reset(s->dg + g3, s->dh + row, s->drh + row, s->gates + g3,
                                      s->h_prev + row, j1 - j0);
    }
}

static void gru_after_setup(cell_params* p, int H, const real* b_hh, const real* w_peep)
{
    (void)w_peep;
    p->bias_n = b_hh ? b_hh + 2 * (size_t)H : NULL;
}

/* Reset after: one phase, n's recurrent product W_hn h_prev + b_hn into aux. */
static const cell_plan gru_plan = {
    .setup = gru_after_setup, .slab_bias_hh_gates = 2,
    .n_phases = 1, .phase = {{0, 3, 0, 2, gru_after_step_forward, 0}},
    .n_stages = 2, .stage = {{.before = gru_after_step_backward},
                             {.src = GRAD_DGH, .dst = GRAD_DH, .g0 = 0, .g1 = 3}}};

/* Reset before: r and z first, then n's product over aux = r * h_prev. */
static const cell_plan gru_reset_before_plan = {
    .slab_bias_hh_gates = 3,
    .n_phases = 2, .phase = {{0, 2, 0, -1, gru_before_step_gates, 0},
                             {2, 3, 1, -1, gru_before_step_output, 0}},
    .n_stages = 4, .stage = {{.before = gru_before_step_backward_output},
                             {.src = GRAD_DG, .dst = GRAD_DRH, .g0 = 2, .g1 = 3},
                             {.before = gru_before_step_backward_reset},
                             {.src = GRAD_DG, .dst = GRAD_DH, .g0 = 0, .g1 = 2}}};

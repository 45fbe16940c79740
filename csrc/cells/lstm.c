/*
 * lstm.c: the LSTM cell, gates in PyTorch's order i, f, g, o:
 *   [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
 *   i, f, o = sigma(.), g = tanh(.)
 *   c_t = f * c_{t-1} + i * g
 *   h_t = o * tanh(c_t)
 * Its elementwise work per step; the products and the time loop are in
 * driver/.  Compiled through kernels_body.c.  aux is tanh(c_t).
 *
 * With peepholes P = [Pi, Pf, Po] (3H,; ONNX's P is [Pi, Po, Pf]):
 *   i = sigma(. + Pi * c_{t-1}), f = sigma(. + Pf * c_{t-1}), o = sigma(. + Po * c_t)
 * and, backward, dP += the gate gradients times those states (lstm_peephole_grads).
 *
 * With a projection (proj_size P): m_t = o * tanh(c_t) (B,H), h_t = W_hr m_t
 * (B,P).  A step is then two phases: the gates and m (lstm_proj_step_forward,
 * on the H units), and h = m @ W_hr^T (lstm_proj_step_output, on the P units);
 * its backward two stages (lstm_proj_plan).
 */

/* One row, n units: the gate pre-activations gi, gf, gg, go (n,) become
 * activations; h, c, tc = tanh(c) (n,) OUT; pi, pf, po (n,) the peepholes of
 * these units, or all NULL.  The pointers never overlap, which restrict tells
 * the compiler so the loop vectorizes.  Inlined always, and called with
 * literal NULLs where there are no peepholes, so that loop is the plain
 * LSTM's, without a test per unit. */
static ALWAYS_INLINE void lstm_row_forward(real* restrict h, real* restrict c, real* restrict tc,
                                    real* restrict gi, real* restrict gf, real* restrict gg,
                                    real* restrict go, const real* restrict c_prev,
                                    const real* restrict pi, const real* restrict pf,
                                    const real* restrict po, int n)
{
    for (int j = 0; j < n; j++) {
        const real cp = c_prev[j];
        const real i = sigmoid(pi ? gi[j] + pi[j] * cp : gi[j]);
        const real f = sigmoid(pf ? gf[j] + pf[j] * cp : gf[j]);
        const real g = tanh_act(gg[j]);
        const real cj = f * cp + i * g;
        const real o = sigmoid(po ? go[j] + po[j] * cj : go[j]);
        const real tcj = tanh_act(cj);
        gi[j] = i;
        gf[j] = f;
        gg[j] = g;
        go[j] = o;
        c[j] = cj;
        h[j] = o * tcj;
        tc[j] = tcj;
    }
}

/* Row b, units j0..j1-1 of a step: its gates become activations, c and aux
 * = tanh(c) are written, and out (the row's h, or m with a projection) gets
 * o * tanh(c); the peepholes' case is chosen once per row, not per unit. */
static ALWAYS_INLINE void lstm_units_forward(const step* s, real* out, int b, int j0, int j1)
{
    const int H = s->H;
    const size_t row = (size_t)b * H + j0;
    real* gi = s->gates + (size_t)b * 4 * H + j0;
    const real* peep = s->cp->peep;  /* (3H,) [Pi, Pf, Po] or NULL */
    if (peep)
        lstm_row_forward(out, s->c + row, s->aux + row, gi, gi + H, gi + 2 * H, gi + 3 * H,
                         s->c_prev + row, peep + j0, peep + H + j0, peep + 2 * H + j0, j1 - j0);
    else
        lstm_row_forward(out, s->c + row, s->aux + row, gi, gi + H, gi + 2 * H, gi + 3 * H,
                         s->c_prev + row, NULL, NULL, NULL, j1 - j0);
}

/* gates (B,4H) IN pre-activations, OUT activations; h, c, aux = tanh(c) (B,H) OUT. */
static void lstm_step_forward(const step* s, int r0, int r1, int j0, int j1)
{
    const int H = s->H;
    for (int b = r0; b < r1; b++) {
        if (!row_active(s->lengths, s->t, b)) {
            carry_row(s, b, j0, j1);
            continue;
        }
        const size_t row = (size_t)b * H + j0;
        lstm_units_forward(s, s->h + row, b, j0, j1);
        memcpy(s->y + (ptrdiff_t)b * s->ldy + j0, s->h + row, (size_t)(j1 - j0) * sizeof(real));
    }
}

/* Projection, first phase.  gates (B,4H) IN pre-activations, OUT activations;
 * c, aux = tanh(c), m = o * tanh(c) (B,H) OUT.  A row past its length keeps
 * c = c_prev and gets m = 0 (its h is carried by the second phase). */
static void lstm_proj_step_forward(const step* s, int r0, int r1, int j0, int j1)
{
    const int H = s->H;
    const size_t n = (size_t)(j1 - j0) * sizeof(real);
    for (int b = r0; b < r1; b++) {
        const size_t row = (size_t)b * H + j0;
        if (!row_active(s->lengths, s->t, b)) {
            memcpy(s->c + row, s->c_prev + row, n);
            memset(s->m + row, 0, n);
            continue;
        }
        lstm_units_forward(s, s->m + row, b, j0, j1);
    }
}

/* Projection, second phase, on units j0..j1-1 of P: h (B,P) IN m @ W_hr^T,
 * copied to y; a row past its length keeps h = h_prev and outputs 0. */
static void lstm_proj_step_output(const step* s, int r0, int r1, int j0, int j1)
{
    const int P = s->P;
    const size_t n = (size_t)(j1 - j0) * sizeof(real);
    for (int b = r0; b < r1; b++) {
        const size_t row = (size_t)b * P + j0;
        real* y = s->y + (ptrdiff_t)b * s->ldy + j0;
        if (!row_active(s->lengths, s->t, b)) {
            memcpy(s->h + row, s->h_prev + row, n);
            memset(y, 0, n);
            continue;
        }
        memcpy(y, s->h + row, n);
    }
}

/* One row of n units: di_, df_, dg_, do_ (n,) OUT; dh, dc (n,) IN at h_t, c_t,
 * OUT the parts at h_prev (0: through W_hh, added by the driver) and c_prev;
 * gate activations, c_prev and tc = tanh(c) (n,) IN; pi, pf, po (n,) the
 * peepholes, or all NULL. */
static ALWAYS_INLINE void lstm_row_backward(real* restrict di_, real* restrict df_, real* restrict dg_,
                                     real* restrict do_, real* restrict dh, real* restrict dc,
                                     const real* restrict gi, const real* restrict gf,
                                     const real* restrict gg, const real* restrict go,
                                     const real* restrict c_prev, const real* restrict tc,
                                     const real* restrict pi, const real* restrict pf,
                                     const real* restrict po, int n)
{
    for (int j = 0; j < n; j++) {
        const real i = gi[j], f = gf[j], g = gg[j], o = go[j], tcj = tc[j];
        const real dhj = dh[j];
        /* forward was: h = o * tanh(c), so do = dh * tanh(c), dc += dh * o * (1 - tanh(c)^2);
           o = sigma(. + Po * c) adds Po * (the gradient at o's pre-activation) to dc */
        const real d_o = dhj * tcj, da_o = d_o * o * (1 - o);
        real dcj = dc[j] + dhj * o * (1 - tcj * tcj);
        if (po)
            dcj = dcj + da_o * po[j];
        /* forward was: c = f * c_prev + i * g, so di = dc*g, df = dc*c_prev, dg = dc*i, dc_prev = dc*f */
        const real d_i = dcj * g, d_f = dcj * c_prev[j], d_g = dcj * i;
        /* through the nonlinearities: sigma' = s(1-s), tanh' = 1 - t^2 */
        const real da_i = d_i * i * (1 - i), da_f = d_f * f * (1 - f);
        /* i, f = sigma(. + Pi, Pf * c_prev): c_prev also gets Pi * da_i + Pf * da_f */
        dc[j] = pi ? dcj * f + da_i * pi[j] + da_f * pf[j] : dcj * f;
        di_[j] = da_i;
        df_[j] = da_f;
        dg_[j] = d_g * (1 - g * g);
        do_[j] = da_o;
        dh[j] = 0;
    }
}

/* dg (B,4H) OUT gradient of the pre-activations; dh, dc (B,H) IN gradient at
 * h_t, c_t, OUT the part of the gradient at h_{t-1}, c_{t-1} that does not go
 * through W_hh; gates (B,4H) activations, c_prev, aux = tanh(c) (B,H) IN. */
static void lstm_step_backward(const bstep* s, int j0, int j1)
{
    const int H = s->H;
    const real* peep = s->cp->peep;  /* (3H,) [Pi, Pf, Po] or NULL */
    for (int b = 0; b < s->B; b++) {
        real* di_ = s->dg + (size_t)b * 4 * H;
        if (!row_active(s->lengths, s->t, b)) {
            /* forward was: h = h_prev, c = c_prev: dh and dc pass through */
            for (int q = 0; q < 4; q++)
                memset(di_ + q * H + j0, 0, (size_t)(j1 - j0) * sizeof(real));
            continue;
        }
        const size_t row = (size_t)b * H + j0;
        const real* gi = s->gates + (size_t)b * 4 * H + j0;
        if (peep)
            lstm_row_backward(di_ + j0, di_ + H + j0, di_ + 2 * H + j0, di_ + 3 * H + j0,
                              s->dh + row, s->dc + row, gi, gi + H, gi + 2 * H, gi + 3 * H,
                              s->c_prev + row, s->aux + row, peep + j0, peep + H + j0,
                              peep + 2 * H + j0, j1 - j0);
        else
            lstm_row_backward(di_ + j0, di_ + H + j0, di_ + 2 * H + j0, di_ + 3 * H + j0,
                              s->dh + row, s->dc + row, gi, gi + H, gi + 2 * H, gi + 3 * H,
                              s->c_prev + row, s->aux + row, NULL, NULL, NULL, j1 - j0);
    }
}

/* After the loop: dP (3H,) += the peepholes' gradients over every step and row,
 *   dPi += sum da_i * c_prev, dPf += sum da_f * c_prev, dPo += sum da_o * c_t,
 * from dg (T*B,4H) the gate gradients (0 on rows past their length), c_prev
 * and c (T*B,H) the states before and after each step, rows in the same order.
 * Serial, one row after another in the backward loop's order (descending for a
 * forward direction, as gemm_rows_acc), so the sums depend neither on the
 * thread count nor on a sequence's backward running in time segments, last
 * first, into the same dP (rnnx/checkpoint.py). */
static void lstm_peephole_grads(real* dp, const real* dg, const real* c_prev, const real* c,
                                size_t rows, int H, int descending)
{
    for (size_t i = 0; i < rows; i++) {
        const size_t r = descending ? rows - 1 - i : i;
        const real* d = dg + r * 4 * (size_t)H;
        const real* cp = c_prev + r * (size_t)H;
        const real* cc = c + r * (size_t)H;
        for (int j = 0; j < H; j++) {
            dp[j] += d[j] * cp[j];
            dp[H + j] += d[H + j] * cp[j];
            dp[2 * H + j] += d[3 * H + j] * cc[j];
        }
    }
}

/* Projection, after stage 1's dm = dh @ W_hr: the LSTM's gradients with dm
 * (B,H) at its output m = o * tanh(c), on units j0..j1-1 of H. */
static void lstm_proj_step_backward(const bstep* s, int j0, int j1)
{
    bstep at_m = *s;
    at_m.dh = s->dm;
    lstm_step_backward(&at_m, j0, j1);
}

/* Projection, before stage 2's dh += dg @ W_hh, on units j0..j1-1 of P:
 * dhs := dh on the rows in their sequence (0 on the others: no gradient
 * reaches W_hr there), and dh := 0 on those rows, whose gradient now goes
 * through W_hh only; a row past its length passes dh on to h_prev untouched. */
static void lstm_proj_save_dh(const bstep* s, int j0, int j1)
{
    const size_t n = (size_t)(j1 - j0) * sizeof(real);
    for (int b = 0; b < s->B; b++) {
        real* dh = s->dh + (size_t)b * s->P + j0;
        real* kept = s->dhs + (size_t)b * s->P + j0;
        if (row_active(s->lengths, s->t, b)) {
            memcpy(kept, dh, n);
            memset(dh, 0, n);
        } else {
            memset(kept, 0, n);
        }
    }
}

/* The plan's own_grads: dP, where the call has peepholes. */
static void lstm_own_grads(const cell_params* p, real* dp, const real* dg, const real* c_prev,
                           const real* c, size_t rows, int H, int descending)
{
    if (p->peep)
        lstm_peephole_grads(dp, dg, c_prev, c, rows, H, descending);
}

static void lstm_setup(cell_params* p, int H, const real* b_hh, const real* w_peep)
{
    (void)H, (void)b_hh;
    p->peep = w_peep;
}

/* With a projection: phase 1 the gates and m = o * tanh(c) on the H units
 * (input h_prev, P wide), phase 2 h = m @ W_hr^T on the P units.  Backward,
 * with dh (B,P) the gradient at h_t:
 *   stage 1, on the H units: dm = dh @ W_hr, then the LSTM's gradients at m
 *   stage 2, on the P units: dh is kept for dW_hr (dhs), then dh = dg @ W_hh
 * (dW_hr += dhs^T m and dW_hh += dg^T h_prev after the loop). */
static const cell_plan lstm_proj_plan = {
    .setup = lstm_setup, .own_grads = lstm_own_grads, .slab_bias_hh_gates = 4,
    .n_phases = 2, .phase = {{0, 4, 0, -1, lstm_proj_step_forward, 0},
                             {0, 1, 0, -1, lstm_proj_step_output, 1}},
    .n_stages = 2, .stage = {{.src = GRAD_DH, .dst = GRAD_DM, .weight = WEIGHT_HR, .g0 = 0,
                              .g1 = 1, .after = lstm_proj_step_backward},
                             {.before = lstm_proj_save_dh, .src = GRAD_DG, .dst = GRAD_DH,
                              .g0 = 0, .g1 = 4}}};

static const cell_plan lstm_plan = {
    .setup = lstm_setup, .own_grads = lstm_own_grads, .slab_bias_hh_gates = 4,
    .proj = &lstm_proj_plan,
    .n_phases = 1, .phase = {{0, 4, 0, -1, lstm_step_forward, 0}},
    .n_stages = 2, .stage = {{.before = lstm_step_backward},
                             {.src = GRAD_DG, .dst = GRAD_DH, .g0 = 0, .g1 = 4}}};

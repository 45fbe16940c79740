/*
 * gru.c: the GRU cell, gates in PyTorch's order r, z, n:
 *   r = sigma(W_ir x + b_ir + W_hr h_prev + b_hr)
 *   z = sigma(W_iz x + b_iz + W_hz h_prev + b_hz)
 *   reset after  (PyTorch, cuDNN):  n = tanh(W_in x + b_in + r * (W_hn h_prev + b_hn))
 *   reset before (Cho et al. 2014): n = tanh(W_in x + b_in + W_hn (r * h_prev) + b_hn)
 *   h = (1 - z) * n + z * h_prev
 * Its elementwise work per step; the products and the time loop are in
 * driver.c.  Compiled through kernels_body.c.  aux is W_hn h_prev + b_hn
 * (reset after) or r * h_prev (reset before).
 */

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
        real* restrict gr = s->gates + (size_t)b * 3 * H;
        real* restrict gz = gr + H;
        real* restrict gn = gr + 2 * H;
        const real* restrict hn = s->aux + (size_t)b * H;
        const real* restrict h_prev = s->h_prev + (size_t)b * H;
        real* restrict h = s->h + (size_t)b * H;
        for (int j = j0; j < j1; j++) {
            const real r = sigmoid(gr[j]), z = sigmoid(gz[j]);
            const real n = tanh_act(gn[j] + r * hn[j]);
            gr[j] = r;
            gz[j] = z;
            gn[j] = n;
            h[j] = (1 - z) * n + z * h_prev[j];
        }
        memcpy(s->y + (ptrdiff_t)b * s->ldy + j0, h + j0, (size_t)(j1 - j0) * sizeof(real));
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
        real* restrict rh = s->aux + (size_t)b * H;
        if (!row_active(s->lengths, s->t, b)) {
            memset(rh + j0, 0, (size_t)(j1 - j0) * sizeof(real));
            continue;
        }
        real* restrict gr = s->gates + (size_t)b * 3 * H;
        real* restrict gz = gr + H;
        const real* restrict h_prev = s->h_prev + (size_t)b * H;
        for (int j = j0; j < j1; j++) {
            const real r = sigmoid(gr[j]);
            gr[j] = r;
            gz[j] = sigmoid(gz[j]);
            rh[j] = r * h_prev[j];
        }
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
        const real* restrict gz = s->gates + (size_t)b * 3 * H + H;
        real* restrict gn = s->gates + (size_t)b * 3 * H + 2 * H;
        const real* restrict h_prev = s->h_prev + (size_t)b * H;
        real* restrict h = s->h + (size_t)b * H;
        for (int j = j0; j < j1; j++) {
            const real n = tanh_act(gn[j]), z = gz[j];
            gn[j] = n;
            h[j] = (1 - z) * n + z * h_prev[j];
        }
        memcpy(s->y + (ptrdiff_t)b * s->ldy + j0, h + j0, (size_t)(j1 - j0) * sizeof(real));
    }
}

/* Gradient through the shared last stage, h = (1-z)*n + z*h_prev and n = tanh(a_n),
 * of row b: dg z and n parts OUT, dh OUT the direct part dh*z. */
static inline void gru_row_backward_output(const bstep* s, int b, int j0, int j1)
{
    const int H = s->H;
    real* restrict dgz = s->dg + (size_t)b * 3 * H + H;
    real* restrict dgn = dgz + H;
    const real* restrict gz = s->gates + (size_t)b * 3 * H + H;
    const real* restrict gn = gz + H;
    const real* restrict h_prev = s->h_prev + (size_t)b * H;
    real* restrict dh = s->dh + (size_t)b * H;
    for (int j = j0; j < j1; j++) {
        const real z = gz[j], n = gn[j], dhj = dh[j];
        /* forward was: h = (1-z)*n + z*h_prev, so dn = dh*(1-z), dz = dh*(h_prev-n), dh_prev = dh*z */
        const real dn = dhj * (1 - z);
        const real dz = dhj * (h_prev[j] - n);
        dh[j] = dhj * z;
        /* forward was: n = tanh(a_n), z = sigma(a_z) */
        dgn[j] = dn * (1 - n * n);
        dgz[j] = dz * z * (1 - z);
    }
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
        const size_t g3 = (size_t)b * 3 * H;
        real* restrict dg = s->dg + g3;
        real* restrict dgh = s->dgh + g3;
        const real* restrict gates = s->gates + g3;
        const real* restrict hn = s->aux + (size_t)b * H;
        for (int j = j0; j < j1; j++) {
            const real r = gates[j], dan = dg[2 * H + j];
            /* forward was: a_n = W_in x + b_in + r * hn, so dr = da_n * hn, dhn = da_n * r;
             * r = sigma(a_r) */
            const real dar = dan * hn[j] * r * (1 - r);
            dg[j] = dar;
            dgh[j] = dar;
            dgh[H + j] = dg[H + j];
            dgh[2 * H + j] = dan * r;
        }
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

/* Reset before, second stage: through rh = r * h_prev.  dg r part OUT;
 * dh += drh * r; drh (B,H) IN. */
static void gru_before_step_backward_reset(const bstep* s, int j0, int j1)
{
    const int H = s->H;
    for (int b = 0; b < s->B; b++) {
        if (!row_active(s->lengths, s->t, b))
            continue;  /* dg is 0 there already and dh passes through */
        real* restrict dgr = s->dg + (size_t)b * 3 * H;
        const real* restrict gr = s->gates + (size_t)b * 3 * H;
        const real* restrict drh = s->drh + (size_t)b * H;
        const real* restrict h_prev = s->h_prev + (size_t)b * H;
        real* restrict dh = s->dh + (size_t)b * H;
        for (int j = j0; j < j1; j++) {
            const real r = gr[j];
            /* forward was: rh = r * h_prev, so dr = drh * h_prev, dh_prev += drh * r */
            dgr[j] = drh[j] * h_prev[j] * r * (1 - r);
            dh[j] += drh[j] * r;
        }
    }
}

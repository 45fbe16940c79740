/*
 * rnn.c: the Elman cell, h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),
 * act = tanh or relu: its elementwise work per step.  The products and the
 * time loop are in driver.c.  Compiled through kernels_body.c.
 */

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
        const real* pre = s->gates + (size_t)b * H;
        real* h = s->h + (size_t)b * H;
        real* y = s->y + (ptrdiff_t)b * s->ldy;
        if (s->relu)  /* as v < 0 ? 0 : v, relu lets a NaN through, as PyTorch does */
            for (int j = j0; j < j1; j++)
                h[j] = pre[j] < 0 ? 0 : pre[j];
        else
            for (int j = j0; j < j1; j++)
                h[j] = tanh_act(pre[j]);
        memcpy(y + j0, h + j0, (size_t)(j1 - j0) * sizeof(real));
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
        for (int j = j0; j < j1; j++) {
            /* forward was: h = act(pre); tanh' = 1 - h^2, relu' = [h > 0] */
            const real dact = s->relu ? (h[j] > 0 ? 1 : 0) : 1 - h[j] * h[j];
            dg[j] = dh[j] * dact;
            dh[j] = 0;
        }
    }
}

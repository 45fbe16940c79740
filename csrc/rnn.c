/*
 * rnn.c: the Elman cell, h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),
 * act = tanh or relu.  Compiled through kernels_f32.c / kernels_f64.c.
 *
 * Cache layout (elements): hs (T+1,B,H), see state_prev_offset in common.c.
 */

/* One time step on a (B,H) slab.
 * h (B,H) OUT, y (B, row stride ldy) OUT, pre (B,H) IN pre-activations,
 * h_prev (B,H) IN.  Rows past their length keep h_prev and output 0. */
RNNX_HOT
static void rnn_cell_forward(real* restrict h, real* restrict y, ptrdiff_t ldy,
                             const real* restrict pre, const real* restrict h_prev,
                             const int64_t* lengths, int t, int relu, int B, int H)
{
    for (int b = 0; b < B; b++) {
        real* hr = h + (size_t)b * H;
        real* yr = y + (ptrdiff_t)b * ldy;
        const real* pr = pre + (size_t)b * H;
        if (!row_active(lengths, t, b)) {
            memcpy(hr, h_prev + (size_t)b * H, (size_t)H * sizeof(real));
            memset(yr, 0, (size_t)H * sizeof(real));
            continue;
        }
        if (relu)  /* as v < 0 ? 0 : v, relu lets a NaN through, as PyTorch does */
            for (int j = 0; j < H; j++)
                hr[j] = pr[j] < 0 ? 0 : pr[j];
        else
            for (int j = 0; j < H; j++)
                hr[j] = tanh_act(pr[j]);
        memcpy(yr, hr, (size_t)H * sizeof(real));
    }
}

/* Gradient through one time step.
 * dpre (B,H) OUT gradient of the pre-activations, dh (B,H) IN: gradient at h_t,
 * OUT: the part of the gradient at h_{t-1} that does not go through W_hh,
 * h (B,H) IN the step's output state. */
RNNX_HOT
static void rnn_cell_backward(real* restrict dpre, real* restrict dh, const real* restrict h,
                              const int64_t* lengths, int t, int relu, int B, int H)
{
    for (int b = 0; b < B; b++) {
        real* dpr = dpre + (size_t)b * H;
        real* dhr = dh + (size_t)b * H;
        const real* hr = h + (size_t)b * H;
        if (!row_active(lengths, t, b)) {
            /* forward was: h = h_prev, so dh passes to h_prev untouched */
            memset(dpr, 0, (size_t)H * sizeof(real));
            continue;
        }
        for (int j = 0; j < H; j++) {
            /* forward was: h = act(pre); tanh' = 1 - h^2, relu' = [h > 0] */
            real dact = relu ? (hr[j] > 0 ? 1 : 0) : 1 - hr[j] * hr[j];
            dpr[j] = dh[(size_t)b * H + j] * dact;
            dhr[j] = 0;  /* what reaches h_prev comes through W_hh, added by the caller */
        }
    }
}

int RNNX_SFX(rnnx_rnn_forward)(const rnnx_blas* blas, const rnnx_forward_args* a)
{
    const int T = a->T, B = a->B, I = a->I, H = a->H, G = H;
    const int relu = (a->cell == RNNX_RNN_RELU), reverse = a->reverse;
    const size_t BH = (size_t)B * H;
    const int train = (a->cache != NULL);
    real* y = a->y;
    const forward_work w = split_forward_work(a->work, B, I, H, G);
    real* slab = w.slab;                        /* (T,B,G) pre-activations */
    real* hs = train ? (real*)a->cache : NULL;  /* (T+1,B,H) */

    recur r;
    recur_init(&r, blas, a->path, B, H, G, a->w_hh, a->w_hh_t, w.w_hh_t);
    input_projection(blas, r.naive, slab, a->x, a->w_ih, a->w_ih_t, w.w_ih_t,
                     a->b_ih, a->b_hh, T * B, I, G);

    const real* h_prev = a->h0;
    if (train)
        memcpy(hs + state_initial_offset(T, reverse, BH), a->h0, BH * sizeof(real));
    for (int s = 0; s < T; s++) {
        const int t = step_time(s, T, reverse);
        real* h = train ? hs + state_offset(t, reverse, BH) : w.h_ping + (size_t)(s & 1) * BH;
        real* pre = slab + (size_t)t * B * G;
        recur_forward(&r, pre, G, h_prev, 0, G);                /* pre += h_prev @ W_hh.T */
        rnn_cell_forward(h, y + (ptrdiff_t)t * B * a->ldy, a->ldy, pre, h_prev,
                         a->lengths, t, relu, B, H);
        h_prev = h;
    }
    memcpy(a->h_n, h_prev, BH * sizeof(real));
    return RNNX_OK;
}

int RNNX_SFX(rnnx_rnn_backward)(const rnnx_blas* blas, const rnnx_backward_args* a)
{
    const int T = a->T, B = a->B, I = a->I, H = a->H, G = H;
    const int relu = (a->cell == RNNX_RNN_RELU), reverse = a->reverse;
    const size_t BH = (size_t)B * H;
    const real* hs = a->cache;
    const real* dy = a->dy;
    real* dg = a->work;                          /* (T,B,G) gradient of the pre-activations */
    real* dh = dg + (size_t)T * B * G;           /* (B,H) gradient at the current state */

    recur r;
    recur_init(&r, blas, a->path, B, H, G, a->w_hh, NULL, NULL);

    copy_or_zero(dh, a->dh_n, BH);
    for (int s = T - 1; s >= 0; s--) {
        const int t = step_time(s, T, reverse);
        real* dg_t = dg + (size_t)t * B * G;
        add_output_gradient(dh, dy ? dy + (ptrdiff_t)t * B * a->lddy : NULL, a->lddy,
                            a->lengths, t, B, H);
        rnn_cell_backward(dg_t, dh, hs + state_offset(t, reverse, BH), a->lengths, t, relu, B, H);
        recur_backward(&r, dh, dg_t, G, 0, G);                   /* dh_prev += dpre @ W_hh */
    }
    memcpy(a->dh0, dh, BH * sizeof(real));

    input_gradients(blas, r.naive, reverse, a->dx, a->dw_ih, a->db_ih, dg, a->x, a->w_ih, T * B, I, G);
    recurrent_gradients(blas, r.naive, reverse, a->dw_hh, a->db_hh, dg, G,
                        hs + state_prev_offset(0, reverse, BH), T * B, H, 0, G);
    return RNNX_OK;
}

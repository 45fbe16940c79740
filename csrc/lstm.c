/*
 * lstm.c: the LSTM cell, gates in PyTorch's order i, f, g, o:
 *   [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
 *   i, f, o = sigma(.), g = tanh(.)
 *   c_t = f * c_{t-1} + i * g
 *   h_t = o * tanh(c_t)
 * Compiled through kernels_f32.c / kernels_f64.c.
 *
 * Cache layout (elements): hs (T+1,B,H), cs (T+1,B,H) (both as in
 * state_prev_offset), gates (T,B,4H) activated, tc (T,B,H) = tanh(c_t).
 */

/* One row of one step: the gate pre-activations gi, gf, gg, go (H,) become
 * activations; h, c, tc = tanh(c) (H,) OUT.  The pointers never overlap,
 * which restrict tells the compiler so the loop vectorizes. */
static inline void lstm_row_forward(real* restrict h, real* restrict c, real* restrict tc,
                                    real* restrict gi, real* restrict gf, real* restrict gg,
                                    real* restrict go, const real* restrict c_prev, int H)
{
    for (int j = 0; j < H; j++) {
        const real i = sigmoid(gi[j]), f = sigmoid(gf[j]), g = tanh_act(gg[j]), o = sigmoid(go[j]);
        const real cj = f * c_prev[j] + i * g;
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

/* One time step.  gates (B,4H) IN pre-activations, OUT activations;
 * h, c (B,H) OUT; tc (B,H) OUT tanh(c);
 * y (B, row stride ldy) OUT; h_prev, c_prev (B,H) IN. */
RNNX_HOT
static void lstm_cell_forward(real* restrict h, real* restrict c, real* restrict tc,
                              real* restrict y, ptrdiff_t ldy, real* restrict gates,
                              const real* restrict h_prev, const real* restrict c_prev,
                              const int64_t* lengths, int t, int B, int H)
{
    for (int b = 0; b < B; b++) {
        const size_t row = (size_t)b * H;
        real* yr = y + (ptrdiff_t)b * ldy;
        if (!row_active(lengths, t, b)) {
            memcpy(h + row, h_prev + row, (size_t)H * sizeof(real));
            memcpy(c + row, c_prev + row, (size_t)H * sizeof(real));
            memset(yr, 0, (size_t)H * sizeof(real));
            continue;
        }
        real* gi = gates + (size_t)b * 4 * H;
        lstm_row_forward(h + row, c + row, tc + row, gi, gi + H, gi + 2 * H, gi + 3 * H,
                         c_prev + row, H);
        memcpy(yr, h + row, (size_t)H * sizeof(real));
    }
}

/* Gradient through one time step.
 * dgates (B,4H) OUT gradient of the pre-activations;
 * dh, dc (B,H) IN gradient at h_t, c_t; OUT the part of the gradient at
 * h_{t-1}, c_{t-1} that does not go through W_hh;
 * gates (B,4H) IN activations, c_prev, tc (B,H) IN. */
RNNX_HOT
static void lstm_cell_backward(real* restrict dgates, real* restrict dh, real* restrict dc,
                               const real* restrict gates, const real* restrict c_prev,
                               const real* restrict tc,
                               const int64_t* lengths, int t, int B, int H)
{
    for (int b = 0; b < B; b++) {
        const size_t row = (size_t)b * H;
        real* di_ = dgates + (size_t)b * 4 * H;
        if (!row_active(lengths, t, b)) {
            /* forward was: h = h_prev, c = c_prev: dh and dc pass through */
            memset(di_, 0, (size_t)4 * H * sizeof(real));
            continue;
        }
        real* df_ = di_ + H;
        real* dg_ = di_ + 2 * H;
        real* do_ = di_ + 3 * H;
        const real* gi = gates + (size_t)b * 4 * H;
        const real* gf = gi + H;
        const real* gg = gi + 2 * H;
        const real* go = gi + 3 * H;
        for (int j = 0; j < H; j++) {
            const real i = gi[j], f = gf[j], g = gg[j], o = go[j], tcj = tc[row + j];
            const real dhj = dh[row + j];
            /* forward was: h = o * tanh(c), so do = dh * tanh(c), dc += dh * o * (1 - tanh(c)^2) */
            const real d_o = dhj * tcj;
            const real dcj = dc[row + j] + dhj * o * (1 - tcj * tcj);
            /* forward was: c = f * c_prev + i * g, so di = dc*g, df = dc*c_prev, dg = dc*i, dc_prev = dc*f */
            const real d_i = dcj * g, d_f = dcj * c_prev[row + j], d_g = dcj * i;
            dc[row + j] = dcj * f;
            /* through the nonlinearities: sigma' = s(1-s), tanh' = 1 - t^2 */
            di_[j] = d_i * i * (1 - i);
            df_[j] = d_f * f * (1 - f);
            dg_[j] = d_g * (1 - g * g);
            do_[j] = d_o * o * (1 - o);
            dh[row + j] = 0;  /* what reaches h_prev comes through W_hh, added by the caller */
        }
    }
}

int RNNX_SFX(rnnx_lstm_forward)(const rnnx_blas* blas, const rnnx_forward_args* a)
{
    const int T = a->T, B = a->B, I = a->I, H = a->H, G = 4 * H, reverse = a->reverse;
    const size_t BH = (size_t)B * H, TBH = (size_t)T * BH;
    const int train = (a->cache != NULL);
    real* y = a->y;
    real* cache = a->cache;
    real* hs = train ? cache : NULL;                      /* (T+1,B,H) */
    real* cs = train ? hs + TBH + BH : NULL;              /* (T+1,B,H) */
    real* gates = train ? cs + TBH + BH : NULL;           /* (T,B,G) */
    real* tc = train ? gates + TBH * 4 : NULL;            /* (T,B,H) */
    const forward_work w = split_forward_work(a->work, B, I, H, G);
    real* slab = train ? gates : w.slab;                  /* (T,B,G) */

    recur r;
    recur_init(&r, blas, a->path, B, H, G, a->w_hh, a->w_hh_t, w.w_hh_t);
    input_projection(blas, r.naive, slab, a->x, a->w_ih, a->w_ih_t, w.w_ih_t,
                     a->b_ih, a->b_hh, T * B, I, G);

    const real* h_prev = a->h0;
    const real* c_prev = a->c0;
    if (train) {
        memcpy(hs + state_initial_offset(T, reverse, BH), a->h0, BH * sizeof(real));
        memcpy(cs + state_initial_offset(T, reverse, BH), a->c0, BH * sizeof(real));
    }
    for (int s = 0; s < T; s++) {
        const int t = step_time(s, T, reverse);
        real* h = train ? hs + state_offset(t, reverse, BH) : w.h_ping + (size_t)(s & 1) * BH;
        real* c = train ? cs + state_offset(t, reverse, BH) : w.c_ping + (size_t)(s & 1) * BH;
        real* gates_t = slab + (size_t)t * B * G;
        recur_forward(&r, gates_t, G, h_prev, 0, G);           /* gates += h_prev @ W_hh.T */
        lstm_cell_forward(h, c, train ? tc + (size_t)t * BH : w.scratch,
                          y + (ptrdiff_t)t * B * a->ldy, a->ldy, gates_t, h_prev, c_prev,
                          a->lengths, t, B, H);
        h_prev = h;
        c_prev = c;
    }
    memcpy(a->h_n, h_prev, BH * sizeof(real));
    memcpy(a->c_n, c_prev, BH * sizeof(real));
    return RNNX_OK;
}

int RNNX_SFX(rnnx_lstm_backward)(const rnnx_blas* blas, const rnnx_backward_args* a)
{
    const int T = a->T, B = a->B, I = a->I, H = a->H, G = 4 * H, reverse = a->reverse;
    const size_t BH = (size_t)B * H, TBH = (size_t)T * BH;
    const real* hs = a->cache;
    const real* cs = hs + TBH + BH;
    const real* gates = cs + TBH + BH;
    const real* tc = gates + TBH * 4;
    const real* dy = a->dy;
    real* dg = a->work;                   /* (T,B,G) gradient of the gate pre-activations */
    real* dh = dg + (size_t)T * B * G;    /* (B,H) */
    real* dc = dh + BH;                   /* (B,H) */

    recur r;
    recur_init(&r, blas, a->path, B, H, G, a->w_hh, NULL, NULL);

    copy_or_zero(dh, a->dh_n, BH);
    copy_or_zero(dc, a->dc_n, BH);
    for (int s = T - 1; s >= 0; s--) {
        const int t = step_time(s, T, reverse);
        real* dg_t = dg + (size_t)t * B * G;
        add_output_gradient(dh, dy ? dy + (ptrdiff_t)t * B * a->lddy : NULL, a->lddy,
                            a->lengths, t, B, H);
        lstm_cell_backward(dg_t, dh, dc, gates + (size_t)t * B * G,
                           cs + state_prev_offset(t, reverse, BH), tc + (size_t)t * BH,
                           a->lengths, t, B, H);
        recur_backward(&r, dh, dg_t, G, 0, G);                   /* dh_prev += dgates @ W_hh */
    }
    memcpy(a->dh0, dh, BH * sizeof(real));
    memcpy(a->dc0, dc, BH * sizeof(real));

    input_gradients(blas, r.naive, reverse, a->dx, a->dw_ih, a->db_ih, dg, a->x, a->w_ih, T * B, I, G);
    recurrent_gradients(blas, r.naive, reverse, a->dw_hh, a->db_hh, dg, G,
                        hs + state_prev_offset(0, reverse, BH), T * B, H, 0, G);
    return RNNX_OK;
}

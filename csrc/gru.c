/*
 * gru.c: the GRU cell, gates in PyTorch's order r, z, n:
 *   r = sigma(W_ir x + b_ir + W_hr h_prev + b_hr)
 *   z = sigma(W_iz x + b_iz + W_hz h_prev + b_hz)
 *   reset after  (PyTorch, cuDNN):  n = tanh(W_in x + b_in + r * (W_hn h_prev + b_hn))
 *   reset before (Cho et al. 2014): n = tanh(W_in x + b_in + W_hn (r * h_prev) + b_hn)
 *   h = (1 - z) * n + z * h_prev
 * Compiled through kernels_f32.c / kernels_f64.c.
 *
 * Cache layout (elements): hs (T+1,B,H) (as in state_prev_offset), gates
 * (T,B,3H) activated r, z, n, aux (T,B,H): W_hn h_prev + b_hn (reset after)
 * or r * h_prev (reset before).
 */

/* The last stage of both variants: n from its pre-activation, then h.
 * Rows past their length keep h_prev and output 0. */
RNNX_HOT
static void gru_cell_output(real* restrict h, real* restrict y, ptrdiff_t ldy,
                            real* restrict gates, const real* restrict h_prev,
                            const int64_t* lengths, int t, int B, int H)
{
    for (int b = 0; b < B; b++) {
        const size_t row = (size_t)b * H;
        real* yr = y + (ptrdiff_t)b * ldy;
        if (!row_active(lengths, t, b)) {
            memcpy(h + row, h_prev + row, (size_t)H * sizeof(real));
            memset(yr, 0, (size_t)H * sizeof(real));
            continue;
        }
        const real* gz = gates + (size_t)b * 3 * H + H;
        real* gn = gates + (size_t)b * 3 * H + 2 * H;
        for (int j = 0; j < H; j++) {
            const real n = tanh_act(gn[j]), z = gz[j];
            gn[j] = n;
            h[row + j] = (1 - z) * n + z * h_prev[row + j];
        }
        memcpy(yr, h + row, (size_t)H * sizeof(real));
    }
}

/* Reset after, one step.  gates (B,3H) IN input part W_ih x + b_ih,
 * OUT activations r, z and the pre-activation of n; hh (B,3H) IN W_hh h_prev + b_hh. */
RNNX_HOT
static void gru_after_gates(real* restrict gates, const real* restrict hh, int B, int H)
{
    for (int b = 0; b < B; b++) {
        real* gr = gates + (size_t)b * 3 * H;
        real* gz = gr + H;
        real* gn = gr + 2 * H;
        const real* hr = hh + (size_t)b * 3 * H;
        const real* hz = hr + H;
        const real* hn = hr + 2 * H;
        for (int j = 0; j < H; j++) {
            const real r = sigmoid(gr[j] + hr[j]);
            gr[j] = r;
            gz[j] = sigmoid(gz[j] + hz[j]);
            gn[j] = gn[j] + r * hn[j];
        }
    }
}

/* Reset before, one step.  gates (B,3H): r, z pre-activations IN, activations
 * OUT; rh (B,H) OUT r * h_prev, the input of the second recurrent product. */
RNNX_HOT
static void gru_before_gates(real* restrict gates, real* restrict rh, const real* restrict h_prev,
                             int B, int H)
{
    for (int b = 0; b < B; b++) {
        real* gr = gates + (size_t)b * 3 * H;
        real* gz = gr + H;
        for (int j = 0; j < H; j++) {
            const real r = sigmoid(gr[j]);
            gr[j] = r;
            gz[j] = sigmoid(gz[j]);
            rh[(size_t)b * H + j] = r * h_prev[(size_t)b * H + j];
        }
    }
}

int RNNX_SFX(rnnx_gru_forward)(const rnnx_blas* blas, const rnnx_forward_args* a)
{
    const int T = a->T, B = a->B, I = a->I, H = a->H, G = 3 * H, reverse = a->reverse;
    const int after = (a->cell == RNNX_GRU);
    const size_t BH = (size_t)B * H, TBH = (size_t)T * BH;
    const int train = (a->cache != NULL);
    real* y = a->y;
    real* hs = train ? (real*)a->cache : NULL;            /* (T+1,B,H) */
    real* gates = train ? hs + TBH + BH : NULL;           /* (T,B,G) */
    real* aux = train ? gates + TBH * 3 : NULL;           /* (T,B,H) */
    const forward_work w = split_forward_work(a->work, B, I, H, G);
    real* slab = train ? gates : w.slab;                  /* (T,B,G) */
    const real* b_hh = a->b_hh;

    recur r;
    recur_init(&r, blas, a->path, B, H, G, a->w_hh, a->w_hh_t, w.w_hh_t);
    /* reset after keeps b_hh out of the slab: r multiplies W_hn h + b_hn */
    input_projection(blas, r.naive, slab, a->x, a->w_ih, a->w_ih_t, w.w_ih_t,
                     a->b_ih, after ? NULL : b_hh, T * B, I, G);

    const real* h_prev = a->h0;
    if (train)
        memcpy(hs + state_initial_offset(T, reverse, BH), a->h0, BH * sizeof(real));
    for (int s = 0; s < T; s++) {
        const int t = step_time(s, T, reverse);
        real* h = train ? hs + state_offset(t, reverse, BH) : w.h_ping + (size_t)(s & 1) * BH;
        real* gates_t = slab + (size_t)t * B * G;
        if (after) {
            for (int b = 0; b < B; b++)
                for (int g = 0; g < G; g++)
                    w.hh[(size_t)b * G + g] = b_hh ? b_hh[g] : 0;
            recur_forward(&r, w.hh, G, h_prev, 0, G);           /* hh = h_prev @ W_hh.T + b_hh */
            gru_after_gates(gates_t, w.hh, B, H);
            if (train)
                for (int b = 0; b < B; b++)
                    memcpy(aux + (size_t)t * BH + (size_t)b * H, w.hh + (size_t)b * G + 2 * H,
                           (size_t)H * sizeof(real));
        } else {
            real* rh = train ? aux + (size_t)t * BH : w.scratch;
            recur_forward(&r, gates_t, G, h_prev, 0, 2 * H);    /* [r z] += h_prev @ W_h[rz].T */
            gru_before_gates(gates_t, rh, h_prev, B, H);
            recur_forward(&r, gates_t + 2 * H, G, rh, 2 * H, H); /* n += (r*h_prev) @ W_hn.T */
        }
        gru_cell_output(h, y + (ptrdiff_t)t * B * a->ldy, a->ldy, gates_t, h_prev, a->lengths, t, B, H);
        h_prev = h;
    }
    memcpy(a->h_n, h_prev, BH * sizeof(real));
    return RNNX_OK;
}

/* Gradient through the shared last stage, h = (1-z)*n + z*h_prev and n = tanh(a_n).
 * dg (B,3H) OUT: z and n parts of the pre-activation gradient (r left for the caller);
 * dh (B,H) IN gradient at h_t, OUT the direct part of the gradient at h_prev (dh*z);
 * inactive rows get dg = 0 and keep dh. */
RNNX_HOT
static void gru_cell_backward_output(real* restrict dg, real* restrict dh,
                                     const real* restrict gates, const real* restrict h_prev,
                                     const int64_t* lengths, int t, int B, int H)
{
    for (int b = 0; b < B; b++) {
        const size_t row = (size_t)b * H;
        real* dgr = dg + (size_t)b * 3 * H;
        if (!row_active(lengths, t, b)) {
            memset(dgr, 0, (size_t)3 * H * sizeof(real));
            continue;
        }
        real* dgz = dgr + H;
        real* dgn = dgr + 2 * H;
        const real* gz = gates + (size_t)b * 3 * H + H;
        const real* gn = gz + H;
        for (int j = 0; j < H; j++) {
            const real z = gz[j], n = gn[j], dhj = dh[row + j];
            /* forward was: h = (1-z)*n + z*h_prev, so dn = dh*(1-z), dz = dh*(h_prev-n), dh_prev = dh*z */
            const real dn = dhj * (1 - z);
            const real dz = dhj * (h_prev[row + j] - n);
            dh[row + j] = dhj * z;
            /* forward was: n = tanh(a_n), z = sigma(a_z) */
            dgn[j] = dn * (1 - n * n);
            dgz[j] = dz * z * (1 - z);
        }
    }
}

/* Reset after: the gradient through n's reset product, for one step.
 * dg (B,3H) IN z, n parts (from gru_cell_backward_output), OUT r part too;
 * dgh (B,3H) OUT the gradient on the W_hh side; gates (B,3H) IN activations;
 * hn (B,H) IN W_hn h_prev + b_hn. */
RNNX_HOT
static void gru_after_backward_reset(real* restrict dg, real* restrict dgh,
                                     const real* restrict gates, const real* restrict hn,
                                     const int64_t* lengths, int t, int B, int H)
{
    for (int b = 0; b < B; b++) {
        const size_t g3 = (size_t)b * 3 * H;
        if (!row_active(lengths, t, b)) {
            memset(dgh + g3, 0, (size_t)3 * H * sizeof(real));  /* dg is 0 there already */
            continue;
        }
        for (int j = 0; j < H; j++) {
            const real r = gates[g3 + j], dan = dg[g3 + 2 * H + j];
            /* forward was: a_n = W_in x + b_in + r * hn, so dr = da_n * hn, dhn = da_n * r;
             * r = sigma(a_r) */
            const real dar = dan * hn[(size_t)b * H + j] * r * (1 - r);
            dg[g3 + j] = dar;
            dgh[g3 + j] = dar;
            dgh[g3 + H + j] = dg[g3 + H + j];
            dgh[g3 + 2 * H + j] = dan * r;
        }
    }
}

/* Reset before: the gradient through rh = r * h_prev, for one step.
 * dg (B,3H) OUT r part; dh (B,H) += drh * r; drh (B,H) IN d(r*h_prev);
 * gates (B,3H) IN activations; h_prev (B,H) IN. */
RNNX_HOT
static void gru_before_backward_reset(real* restrict dg, real* restrict dh, const real* restrict drh,
                                      const real* restrict gates, const real* restrict h_prev,
                                      const int64_t* lengths, int t, int B, int H)
{
    for (int b = 0; b < B; b++) {
        if (!row_active(lengths, t, b))
            continue;  /* dg is 0 there already and dh passes through */
        const size_t g3 = (size_t)b * 3 * H, row = (size_t)b * H;
        for (int j = 0; j < H; j++) {
            const real r = gates[g3 + j];
            /* forward was: rh = r * h_prev, so dr = drh * h_prev, dh_prev += drh * r */
            dg[g3 + j] = drh[row + j] * h_prev[row + j] * r * (1 - r);
            dh[row + j] += drh[row + j] * r;
        }
    }
}

int RNNX_SFX(rnnx_gru_backward)(const rnnx_blas* blas, const rnnx_backward_args* a)
{
    const int T = a->T, B = a->B, I = a->I, H = a->H, G = 3 * H, reverse = a->reverse;
    const int after = (a->cell == RNNX_GRU);
    const size_t BH = (size_t)B * H, TBH = (size_t)T * BH;
    const real* hs = a->cache;
    const real* gates = hs + TBH + BH;
    const real* aux = gates + TBH * 3;
    const real* dy = a->dy;
    real* dg = a->work;                   /* (T,B,G) gradient of the pre-activations, input side */
    real* dgh = dg + TBH * 3;             /* (T,B,G) the same on the W_hh side (reset after) */
    real* dh = dgh + TBH * 3;             /* (B,H) */
    real* drh = dh + BH;                  /* (B,H) gradient at r*h_prev (reset before) */

    recur r;
    recur_init(&r, blas, a->path, B, H, G, a->w_hh, NULL, NULL);

    copy_or_zero(dh, a->dh_n, BH);
    for (int s = T - 1; s >= 0; s--) {
        const int t = step_time(s, T, reverse);
        const size_t off = (size_t)t * B * G;
        const real* gates_t = gates + off;
        const real* h_prev = hs + state_prev_offset(t, reverse, BH);
        const real* aux_t = aux + (size_t)t * BH;
        real* dg_t = dg + off;
        add_output_gradient(dh, dy ? dy + (ptrdiff_t)t * B * a->lddy : NULL, a->lddy,
                            a->lengths, t, B, H);
        gru_cell_backward_output(dg_t, dh, gates_t, h_prev, a->lengths, t, B, H);
        if (after) {
            real* dgh_t = dgh + off;
            gru_after_backward_reset(dg_t, dgh_t, gates_t, aux_t, a->lengths, t, B, H);
            recur_backward(&r, dh, dgh_t, G, 0, G);             /* dh_prev += dgh @ W_hh */
        } else {
            memset(drh, 0, BH * sizeof(real));
            recur_backward(&r, drh, dg_t + 2 * H, G, 2 * H, H);  /* d(r*h_prev) = da_n @ W_hn */
            gru_before_backward_reset(dg_t, dh, drh, gates_t, h_prev, a->lengths, t, B, H);
            recur_backward(&r, dh, dg_t, G, 0, 2 * H);          /* dh_prev += [da_r da_z] @ W_h[rz] */
        }
    }
    memcpy(a->dh0, dh, BH * sizeof(real));

    const real* h_prev_all = hs + state_prev_offset(0, reverse, BH);
    input_gradients(blas, r.naive, reverse, a->dx, a->dw_ih, a->db_ih, dg, a->x, a->w_ih, T * B, I, G);
    if (after) {
        recurrent_gradients(blas, r.naive, reverse, a->dw_hh, a->db_hh, dgh, G, h_prev_all, T * B, H, 0, G);
    } else {
        recurrent_gradients(blas, r.naive, reverse, a->dw_hh, a->db_hh, dg, G, h_prev_all, T * B, H, 0, 2 * H);
        recurrent_gradients(blas, r.naive, reverse, a->dw_hh, a->db_hh, dg + 2 * H, G, aux, T * B, H, 2 * H, H);
    }
    return RNNX_OK;
}

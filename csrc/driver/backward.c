/*
 * driver/backward.c: the sequence drivers' backward (BPTT), one for every
 * cell: per step the cell's stages (its gradient function, then the product
 * through W_hh on the core's own kernel), after the loop the gradient GEMMs;
 * and the exported table of this (dtype, instruction set)'s kernels.
 * Compiled through kernels_body.c, after driver/forward.c (whose task
 * helpers it uses).
 */

/* ------------------------------------------------------------ backward --- */

typedef struct bwd_task {
    const bwd_stage* stage;
    const bstep* s;
    const real* w_hh;  /* W_hh packed by units (pack_weights_by_units) */
    int n_tasks;
    const bstep* sm;   /* with a projection: s with dh = dm, the gradient at m */
    const real* w_hr;  /* with a projection: W_hr packed by units */
} bwd_task;

/* dst[:, j0:j1] (B rows, row stride ldd) += src (B,K, row stride lds) @ W[k0:k0+K, j0:j1],
 * with W packed by units in strips of (Ks,U) (pack_weights_by_units with G = Ks).  Rows
 * in whole tiles of MR go strip by strip; the rows past the last tile go through the row
 * kernel ROW_SLOTS strips per call (whole strips only: a short last strip goes alone). */
static void strips_product(real* dst, size_t ldd, int j0, int j1, int B, const real* src,
                           size_t lds, int K, const real* strips, int Ks, int k0)
{
    const int tiled = B - B % MR;  /* rows in whole tiles */
    for (int u0 = j0; u0 < j1; u0 += U) {
        const int nu = j1 - u0 < U ? j1 - u0 : U;
        const real* strip = strips + ((size_t)(u0 / U) * Ks + k0) * U;  /* (K,U) */
        for (int r0 = 0; r0 < tiled; r0 += MR)
            panel_product(dst + (size_t)r0 * ldd + u0, ldd, nu, src + (size_t)r0 * lds, lds, K,
                          strip, 0, NULL);
    }
    for (int u0 = j0; u0 < j1;) {
        int n = (j1 - u0) / U < ROW_SLOTS ? (j1 - u0) / U : ROW_SLOTS;
        const int nu = n ? U : j1 - u0;
        if (!n)
            n = 1;
        for (int r = tiled; r < B; r++) {
            real* d[MAX_SLOTS];
            const real* P[MAX_SLOTS];
            const int bias_init[MAX_SLOTS] = {0};
            const real* bias[MAX_SLOTS] = {NULL};
            for (int q = 0; q < n; q++) {
                d[q] = dst + (size_t)r * ldd + u0 + (size_t)q * U;
                P[q] = strips + ((size_t)(u0 / U + q) * Ks + k0) * U;
            }
            panel_product_row(n, d, nu, src + (size_t)r * lds, K, P, bias_init, bias);
        }
        u0 += n * U < j1 - u0 ? n * U : j1 - u0;
    }
}

/* Projection, on units j0..j1-1 of H: dm[:, units] = dh @ W_hr[:, units]
 * (forward was: h = W_hr m), then the LSTM's gradients with dm at its output. */
static void proj_grads_task(void* ctx, int task)
{
    const bwd_task* c = ctx;
    const bstep* sm = c->sm;
    const int B = sm->B, H = sm->H, P = c->s->H;
    int j0, j1;
    task_units(H, c->n_tasks, task, &j0, &j1);
    if (j0 >= j1)
        return;
    for (int b = 0; b < B; b++)
        memset(sm->dh + (size_t)b * H + j0, 0, (size_t)(j1 - j0) * sizeof(real));
    strips_product(sm->dh, (size_t)H, j0, j1, B, c->s->dh, (size_t)P, P, c->w_hr, P, 0);
    lstm_step_backward(sm, j0, j1);
}

/* Projection, on units j0..j1-1 of P: dh[:, units] += dg @ W_hh[:, units]. */
static void proj_product_task(void* ctx, int task)
{
    const bwd_task* c = ctx;
    const bstep* s = c->s;
    const int P = s->H, G = s->G;
    int j0, j1;
    task_units(P, c->n_tasks, task, &j0, &j1);
    if (j0 < j1)
        strips_product(s->dh, (size_t)P, j0, j1, s->B, s->dg, (size_t)G, G, c->w_hh, G, 0);
}

/* With a projection, after dm is computed: dhs_t := dh on the rows in their
 * sequence (0 on the others: no gradient reaches W_hr there), and dh := 0 on
 * those rows, whose state gradient now goes through W_hh only; a row past its
 * length passes dh on to h_prev untouched. */
static void proj_save_dh(real* dhs_t, real* dh, const int64_t* lengths, int t, int B, int P)
{
    for (int b = 0; b < B; b++) {
        real* row = dh + (size_t)b * P;
        if (row_active(lengths, t, b)) {
            memcpy(dhs_t + (size_t)b * P, row, (size_t)P * sizeof(real));
            memset(row, 0, (size_t)P * sizeof(real));
        } else {
            memset(dhs_t + (size_t)b * P, 0, (size_t)P * sizeof(real));
        }
    }
}

static void stage_grads_task(void* ctx, int task)
{
    const bwd_task* c = ctx;
    int j0, j1;
    task_units(c->s->H, c->n_tasks, task, &j0, &j1);
    if (j0 < j1)
        c->stage->grads(c->s, j0, j1);
}

/* dst[:, j0:j1] (+)= src[:, gates] @ W_hh[gates, j0:j1], by the core's own
 * kernel on W_hh packed by units (c->w_hh). */
static void stage_product_task(void* ctx, int task)
{
    const bwd_task* c = ctx;
    const bwd_stage* st = c->stage;
    const bstep* s = c->s;
    const int B = s->B, H = s->H, G = s->G;
    int j0, j1;
    task_units(H, c->n_tasks, task, &j0, &j1);
    if (j0 >= j1)
        return;
    real* dst = st->dst_drh ? s->drh : s->dh;         /* (B,H) */
    const real* src = st->src_dgh ? s->dgh : s->dg;   /* (B,G) */
    const int K = (st->g1 - st->g0) * H;
    if (st->dst_drh)
        for (int b = 0; b < B; b++)
            memset(dst + (size_t)b * H + j0, 0, (size_t)(j1 - j0) * sizeof(real));
    /* dst[rows, units] += src[rows, gates] @ W_hh[gates, units] */
    strips_product(dst, (size_t)H, j0, j1, B, src + (size_t)st->g0 * H, (size_t)G, K, c->w_hh, G,
                   st->g0 * H);
}

/* The backward of an LSTM with a projection (proj_size P), per step:
 *   dh (B,P) += dy_t
 *   dm = dh @ W_hr                 forward was: h = m @ W_hr^T
 *   LSTM gradients with dm at its output o * tanh(c)
 *   dh = dg @ W_hh (B,P)           (+ dh itself on rows past their length)
 * and after the loop dW_hr += dh_t^T m_t over every step, beside the LSTM's. */
static int backward_proj(const rnnx_cell_desc* d, const rnnx_blas* blas,
                         const rnnx_backward_args* a)
{
    const int T = a->T, B = a->B, I = a->input_size, H = a->H, G = d->gates * H, reverse = a->reverse;
    const int P = a->proj;
    const size_t BH = (size_t)B * H, BP = (size_t)B * P;
    const int naive = (a->path == RNNX_PATH_NAIVE);
    const int own = (a->path == RNNX_PATH_AUTO || a->path == RNNX_PATH_SMALL);
    const rnnx_cache_layout cl = rnnx_cache_layout_of(d, T, B, H, P);
    const rnnx_backward_work wl = rnnx_backward_work_of(d, T, B, I, H, P);
    const real* cache = a->cache;
    const real* hs = cache + cl.hs;        /* (T+1,B,P) */
    const real* cs = cache + cl.cs;        /* (T+1,B,H) */
    const real* gates = cache + cl.gates;  /* (T,B,G) */
    const real* aux = cache + cl.aux;      /* (T,B,H) tanh(c) */
    const real* ms = cache + cl.m;         /* (T,B,H) o * tanh(c) */
    real* work = a->work;
    real* dg = work + wl.dg;               /* (T,B,G) */
    real* dhs = work + wl.dhs;             /* (T,B,P) */
    const real* dy = a->dy;
    const real* w_hh = a->w_hh;            /* (G,P) */
    const real* w_hr = a->w_hr;            /* (P,H) */

    /* s: the step seen from h (its H field is P, the width of dh); sm: from m */
    bstep s, sm;
    memset(&s, 0, sizeof s);
    s.B = B;
    s.H = P;
    s.G = G;
    s.lengths = a->lengths;
    s.dh = work + wl.dh;                   /* (B,P) */
    sm = s;
    sm.H = H;
    sm.dh = work + wl.dm;                  /* (B,H) */
    sm.dc = work + wl.dc;                  /* (B,H) */
    const cell_params cp = params_of(plan_of(d, P), H, NULL, a->w_peep);
    sm.cp = &cp;
    const int n_tasks = own ? step_tasks(blas, B, G, H, NULL) : 1;
    bwd_task task = {NULL, &s, NULL, n_tasks, &sm, NULL};
    if (own) {
        pack_weights_by_units(G, P, w_hh, work + wl.packed);
        pack_weights_by_units(P, H, w_hr, work + wl.packed_hr);
        task.w_hh = work + wl.packed;
        task.w_hr = work + wl.packed_hr;
    }

    copy_or_zero(s.dh, a->dh_n, BP);
    copy_or_zero(sm.dc, a->dc_n, BH);
    for (int i = T - 1; i >= 0; i--) {
        const int t = step_time(i, T, reverse);
        s.t = sm.t = t;
        s.dg = sm.dg = dg + (size_t)t * B * G;
        sm.gates = gates + (size_t)t * B * G;
        sm.c_prev = cs + state_prev_offset(t, reverse, BH);
        sm.aux = aux + (size_t)t * BH;
        add_output_gradient(s.dh, dy ? dy + (ptrdiff_t)t * B * a->lddy : NULL, a->lddy,
                            a->lengths, t, B, P);
        if (own) {
            run_tasks(blas, n_tasks, proj_grads_task, &task);
        } else {
            gemm(blas, naive, 'N', 'N', B, H, P, 1, s.dh, P, w_hr, H, 0, sm.dh, H);  /* dm = dh @ W_hr */
            lstm_step_backward(&sm, 0, H);
        }
        proj_save_dh(dhs + (size_t)t * BP, s.dh, a->lengths, t, B, P);
        if (own)
            run_tasks(blas, n_tasks, proj_product_task, &task);
        else
            gemm(blas, naive, 'N', 'N', B, P, G, 1, s.dg, G, w_hh, P, 1, s.dh, P);   /* dh += dg @ W_hh */
    }
    memcpy(a->dh0, s.dh, BP * sizeof(real));
    memcpy(a->dc0, sm.dc, BH * sizeof(real));

    input_gradients(blas, a->path, reverse, a->dx, a->dw_ih, a->db_ih, dg, a->x, a->w_ih, a->lengths,
                    work + wl.x_rows, T, B, I, G);
    recurrent_gradients(blas, a->path, reverse, a->dw_hh, a->db_hh, dg, G,
                        hs + state_prev_offset(0, reverse, BP), T * B, P, 0, G);   /* dW_hh += dg^T h_prev */
    recurrent_gradients(blas, a->path, reverse, a->dw_hr, NULL, dhs, P, ms, T * B, H, 0, P);  /* dW_hr += dh^T m */
    if (a->w_peep)
        lstm_peephole_grads(a->dw_peep, dg, cs + state_prev_offset(0, reverse, BH),
                            cs + state_offset(0, reverse, BH), (size_t)T * B, H);
    return RNNX_OK;
}

static int backward_sequence(const rnnx_cell_desc* d, const rnnx_blas* blas,
                             const rnnx_backward_args* a)
{
    if (a->proj > 0)
        return backward_proj(d, blas, a);
    const cell_plan* plan = plan_of(d, 0);
    const int T = a->T, B = a->B, I = a->input_size, H = a->H, G = d->gates * H, reverse = a->reverse;
    const size_t BH = (size_t)B * H;
    const int naive = (a->path == RNNX_PATH_NAIVE);
    const int own = (a->path == RNNX_PATH_AUTO || a->path == RNNX_PATH_SMALL);
    const rnnx_cache_layout cl = rnnx_cache_layout_of(d, T, B, H, 0);
    const rnnx_backward_work wl = rnnx_backward_work_of(d, T, B, I, H, 0);
    const real* cache = a->cache;
    const real* hs = cache + cl.hs;                                /* (T+1,B,H) */
    const real* cs = d->states == 2 ? cache + cl.cs : NULL;        /* (T+1,B,H) */
    const real* gates = d->gates_in_cache ? cache + cl.gates : NULL;  /* (T,B,G) */
    const real* aux = d->aux_in_cache ? cache + cl.aux : NULL;     /* (T,B,H) */
    real* work = a->work;
    real* dg = work + wl.dg;                                       /* (T,B,G) */
    real* dgh = d->split_grads ? work + wl.dgh : NULL;             /* (T,B,G) */
    const real* dy = a->dy;

    bstep s;
    s.B = B;
    s.H = H;
    s.G = G;
    const cell_params cp = params_of(plan, H, NULL, a->w_peep);
    s.cp = &cp;
    s.lengths = a->lengths;
    s.dh = work + wl.dh;
    s.dc = work + wl.dc;
    s.drh = work + wl.drh;
    const int n_tasks = own ? step_tasks(blas, B, G, H, NULL) : 1;
    real* packed = NULL;
    if (own) {
        packed = work + wl.packed;
        pack_weights_by_units(G, H, a->w_hh, packed);
    }
    bwd_task task = {NULL, &s, packed, n_tasks, NULL, NULL};

    copy_or_zero(s.dh, a->dh_n, BH);
    if (d->states == 2)
        copy_or_zero(s.dc, a->dc_n, BH);
    for (int i = T - 1; i >= 0; i--) {
        const int t = step_time(i, T, reverse);
        s.t = t;
        s.dg = dg + (size_t)t * B * G;
        s.dgh = dgh ? dgh + (size_t)t * B * G : NULL;
        s.gates = gates ? gates + (size_t)t * B * G : NULL;
        s.h = hs + state_offset(t, reverse, BH);
        s.h_prev = hs + state_prev_offset(t, reverse, BH);
        s.c_prev = cs ? cs + state_prev_offset(t, reverse, BH) : NULL;
        s.aux = aux ? aux + (size_t)t * BH : NULL;
        add_output_gradient(s.dh, dy ? dy + (ptrdiff_t)t * B * a->lddy : NULL, a->lddy,
                            a->lengths, t, B, H);
        for (int q = 0; q < plan->n_stages; q++) {
            const bwd_stage* st = &plan->stage[q];
            task.stage = st;
            if (own) {
                run_tasks(blas, n_tasks, stage_grads_task, &task);
                run_tasks(blas, n_tasks, stage_product_task, &task);
                continue;
            }
            st->grads(&s, 0, H);
            real* dst = st->dst_drh ? s.drh : s.dh;
            if (st->dst_drh)
                memset(dst, 0, BH * sizeof(real));
            gemm(blas, naive, 'N', 'N', B, H, (st->g1 - st->g0) * H, 1,
                 (st->src_dgh ? s.dgh : s.dg) + (size_t)st->g0 * H, G,
                 (const real*)a->w_hh + (size_t)st->g0 * H * H, H, 1, dst, H);  /* dst += src @ W */
        }
    }
    memcpy(a->dh0, s.dh, BH * sizeof(real));
    if (d->states == 2)
        memcpy(a->dc0, s.dc, BH * sizeof(real));

    input_gradients(blas, a->path, reverse, a->dx, a->dw_ih, a->db_ih, dg, a->x, a->w_ih, a->lengths,
                    work + wl.x_rows, T, B, I, G);
    for (int q = 0; q < plan->n_stages; q++) {
        const bwd_stage* st = &plan->stage[q];
        const real* input = st->dst_drh ? aux : hs + state_prev_offset(0, reverse, BH);  /* (T,B,H) */
        recurrent_gradients(blas, a->path, reverse, a->dw_hh, a->db_hh,
                            (st->src_dgh ? dgh : dg) + (size_t)st->g0 * H, G, input,
                            T * B, H, st->g0 * H, (st->g1 - st->g0) * H);
    }
    if (a->w_peep)
        lstm_peephole_grads(a->dw_peep, dg, cs + state_prev_offset(0, reverse, BH),
                            cs + state_offset(0, reverse, BH), (size_t)T * B, H);
    return RNNX_OK;
}

const rnnx_dtype_kernels RNNX_SFX(rnnx_kernels) = {forward_sequence, backward_sequence,
                                                   activation, pack_weights, gemm_hook,
                                                   gemm_blocks_hook};

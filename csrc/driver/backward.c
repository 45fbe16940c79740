/*
 * driver/backward.c: the sequence drivers' backward (BPTT), one for every
 * cell and variant: per step the stages of its plan (csrc/cells/plan.h: the
 * cell's gradient functions around products through W_hh or W_hr on the
 * core's own kernel), after the loop the gradient GEMMs;
 * and the exported table of this (dtype, instruction set)'s kernels.
 * Compiled through kernels_body.c, after driver/forward.c (whose task
 * helpers it uses).
 */

/* ------------------------------------------------------------ backward --- */

typedef struct bwd_task {
    const bwd_stage* stage;
    const bstep* s;
    const real* w_hh;  /* W_hh (G,P) packed by units (pack_weights_by_units) */
    const real* w_hr;  /* with a projection: W_hr (P,H) packed by units */
    int n_tasks;
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

/* A (B,.) gradient of the step by name (enum bwd_grad), and its width. */
static real* grad_of(const bstep* s, int which, int* width)
{
    switch (which) {
    case GRAD_DG: *width = s->G; return s->dg;
    case GRAD_DGH: *width = s->G; return s->dgh;
    case GRAD_DH: *width = s->P; return s->dh;
    case GRAD_DRH: *width = s->H; return s->drh;
    default: *width = s->H; return s->dm;
    }
}

/* The units a stage runs on: those of its product's dst, else the cell's H. */
static int stage_units(const bwd_stage* st, const bstep* s)
{
    int width = s->H;
    if (st->dst != GRAD_NONE)
        grad_of(s, st->dst, &width);
    return width;
}

/* The rows of one block of a stage's weights: W_hh's gates are H rows, W_hr
 * one block of P rows. */
static int block_rows(const bwd_stage* st, const bstep* s)
{
    return st->weight == WEIGHT_HR ? s->P : s->H;
}

/* One task of a stage on the core's own kernel: before, the product
 * dst[:, j0:j1] (+)= src[:, k] @ W[k, j0:j1] on W packed by units, after. */
static void stage_task(void* ctx, int task)
{
    const bwd_task* c = ctx;
    const bwd_stage* st = c->stage;
    const bstep* s = c->s;
    int j0, j1;
    task_units(stage_units(st, s), c->n_tasks, task, &j0, &j1);
    if (j0 >= j1)
        return;
    if (st->before)
        st->before(s, j0, j1);
    if (st->dst != GRAD_NONE) {
        int ldd, lds;
        real* dst = grad_of(s, st->dst, &ldd);
        const real* src = grad_of(s, st->src, &lds);
        const int rows = block_rows(st, s), k0 = st->g0 * rows, K = (st->g1 - st->g0) * rows;
        const int hr = st->weight == WEIGHT_HR;
        if (st->dst != GRAD_DH)       /* dst := the product */
            for (int b = 0; b < s->B; b++)
                memset(dst + (size_t)b * ldd + j0, 0, (size_t)(j1 - j0) * sizeof(real));
        strips_product(dst, (size_t)ldd, j0, j1, s->B, src + k0, (size_t)lds, K,
                       hr ? c->w_hr : c->w_hh, hr ? s->P : s->G, k0);
    }
    if (st->after)
        st->after(s, j0, j1);
}

/* A stage on the BLAS or naive path: the same on every unit, the product by gemm
 * on the weights as given, W_hh (G,P) or W_hr (P,H). */
static void plain_stage(const rnnx_blas* blas, int naive, const bwd_stage* st, const bstep* s,
                        const real* w_hh, const real* w_hr)
{
    const int N = stage_units(st, s);
    if (st->before)
        st->before(s, 0, N);
    if (st->dst != GRAD_NONE) {
        int ldd, lds;
        real* dst = grad_of(s, st->dst, &ldd);
        const real* src = grad_of(s, st->src, &lds);
        const int rows = block_rows(st, s), k0 = st->g0 * rows, K = (st->g1 - st->g0) * rows;
        const real* w = st->weight == WEIGHT_HR ? w_hr : w_hh;
        gemm(blas, naive, 'N', 'N', s->B, N, K, 1, src + k0, lds, w + (size_t)k0 * N, N,
             st->dst == GRAD_DH, dst, N);                     /* dst (+)= src[:, k] @ W[k] */
    }
    if (st->after)
        st->after(s, 0, N);
}

/* BPTT for every cell, through its plan's stages.  Per step (t from the last):
 *   dh (B,P) += dy_t; the stages, which leave dg (and dgh) for the step and
 *   dh, dc at h_prev, c_prev
 * and after the loop the gradients of W_ih, b_ih, of each stage's weights and
 * of the peepholes, from dg (T,B,G) and dgh, dhs kept for every step. */
static int backward_sequence(const rnnx_cell_desc* d, const rnnx_blas* blas,
                             const rnnx_backward_args* a)
{
    const int P = rnnx_state_width(a->H, a->proj);  /* the width of h and dy */
    const cell_plan* plan = plan_of(d, a->proj);
    const int T = a->T, B = a->B, I = a->input_size, H = a->H, G = d->gates * H, reverse = a->reverse;
    const size_t BH = (size_t)B * H, BP = (size_t)B * P;
    const int naive = (a->path == RNNX_PATH_NAIVE);
    const int own = (a->path == RNNX_PATH_AUTO || a->path == RNNX_PATH_SMALL);
    const rnnx_cache_layout cl = rnnx_cache_layout_of(d, T, B, H, a->proj);
    const rnnx_backward_work wl = rnnx_backward_work_of(d, T, B, I, H, a->proj);
    const real* cache = a->cache;
    const real* hs = cache + cl.hs;                                /* (T+1,B,P) */
    const real* cs = d->states == 2 ? cache + cl.cs : NULL;        /* (T+1,B,H) */
    const real* gates = d->gates_in_cache ? cache + cl.gates : NULL;  /* (T,B,G) */
    const real* aux = d->aux_in_cache ? cache + cl.aux : NULL;     /* (T,B,H) */
    const real* ms = cache + cl.m;                                 /* (T,B,H) with a projection */
    real* work = a->work;
    real* dg = work + wl.dg;                                       /* (T,B,G) */
    real* dgh = d->split_grads ? work + wl.dgh : NULL;             /* (T,B,G) */
    real* dhs = work + wl.dhs;                                     /* (T,B,P) with a projection */
    const real* dy = a->dy;

    const cell_params cp = params_of(plan, H, NULL, a->w_peep);
    bstep s = {.B = B, .H = H, .G = G, .P = P, .lengths = a->lengths, .cp = &cp,
               .dh = work + wl.dh, .dc = work + wl.dc, .drh = work + wl.drh, .dm = work + wl.dm};
    const int n_tasks = own ? step_tasks(blas, B, G, H, NULL) : 1;
    bwd_task task = {NULL, &s, NULL, NULL, n_tasks};
    if (own) {              /* every weight of the call, packed for the stages' products */
        pack_weights_by_units(G, P, a->w_hh, work + wl.packed);
        task.w_hh = work + wl.packed;
        if (a->w_hr) {
            pack_weights_by_units(P, H, a->w_hr, work + wl.packed_hr);
            task.w_hr = work + wl.packed_hr;
        }
    }

    copy_or_zero(s.dh, a->dh_n, BP);
    if (d->states == 2)
        copy_or_zero(s.dc, a->dc_n, BH);
    for (int i = T - 1; i >= 0; i--) {
        const int t = step_time(i, T, reverse);
        s.t = t;
        s.dg = dg + (size_t)t * B * G;
        s.dgh = dgh ? dgh + (size_t)t * B * G : NULL;
        s.dhs = dhs + (size_t)t * BP;
        s.gates = gates ? gates + (size_t)t * B * G : NULL;
        s.h = hs + state_offset(t, reverse, BP);
        s.h_prev = hs + state_prev_offset(t, reverse, BP);
        s.c_prev = cs ? cs + state_prev_offset(t, reverse, BH) : NULL;
        s.aux = aux ? aux + (size_t)t * BH : NULL;
        add_output_gradient(s.dh, dy ? dy + (ptrdiff_t)t * B * a->lddy : NULL, a->lddy,
                            a->lengths, t, B, P);
        for (int q = 0; q < plan->n_stages; q++) {
            task.stage = &plan->stage[q];
            if (own)
                run_tasks(blas, n_tasks, stage_task, &task);
            else
                plain_stage(blas, naive, task.stage, &s, a->w_hh, a->w_hr);
        }
    }
    memcpy(a->dh0, s.dh, BP * sizeof(real));
    if (d->states == 2)
        memcpy(a->dc0, s.dc, BH * sizeof(real));

    input_gradients(blas, a->path, reverse, a->dx, a->dw_ih, a->db_ih, dg, a->x, a->w_ih, a->lengths,
                    work + wl.x_rows, T, B, I, G);
    for (int q = 0; q < plan->n_stages; q++) {
        const bwd_stage* st = &plan->stage[q];
        if (st->dst == GRAD_NONE)
            continue;
        /* dW[k] += src^T @ input over every step: src as kept, input the forward's (T,B,.)
           input of the product whose gradient dst is */
        const real* src = st->src == GRAD_DGH ? dgh : st->src == GRAD_DH ? dhs : dg;
        const int lds = st->src == GRAD_DH ? P : G;
        const real* input = st->dst == GRAD_DRH ? aux : st->dst == GRAD_DM ? ms
                            : hs + state_prev_offset(0, reverse, BP);
        const int hr = st->weight == WEIGHT_HR, rows = block_rows(st, &s);
        recurrent_gradients(blas, a->path, reverse, hr ? a->dw_hr : a->dw_hh, hr ? NULL : a->db_hh,
                            src + (size_t)st->g0 * rows, lds, input, T * B, stage_units(st, &s),
                            st->g0 * rows, (st->g1 - st->g0) * rows);
    }
    if (plan->own_grads)    /* the cell's own parameters', rows in the loop's order */
        plan->own_grads(&cp, a->dw_peep, dg, cs ? cs + state_prev_offset(0, reverse, BH) : NULL,
                        cs ? cs + state_offset(0, reverse, BH) : NULL, (size_t)T * B, H, !reverse);
    return RNNX_OK;
}

const rnnx_dtype_kernels RNNX_SFX(rnnx_kernels) = {forward_sequence, backward_sequence,
                                                   activation, pack_weights, gemm_hook,
                                                   gemm_blocks_hook};

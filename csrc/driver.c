/*
 * driver.c: the sequence drivers, one for every cell.  A cell is its
 * descriptor (layout.h: shapes and layouts) and its plan here: the recurrent
 * products of a step, in phases, each followed by the cell's elementwise work
 * (rnn.c, lstm.c, gru.c); and the same backward.
 *
 * Per step, the default path cuts the hidden units into panels of U (the
 * packed W_hh's layout) and, for each panel, computes the panel's columns of
 * every gate (MR rows at a time) and then the cell's elementwise work on those
 * units while they are in cache.  Panels are independent within a phase, so a
 * step is cut into tasks of whole panels (and, forward, of whole row tiles
 * where panels are few), claimed by the threads as they come; a task's result
 * is the same whoever runs it, so results do not depend on the thread count.
 * Compiled through kernels_body.c.
 */

/* One forward phase: gates g0..g1-1 += input @ W_hh[g]^T, then finish.  The
 * input is h_prev, or aux (GRU reset before's r * h_prev); aux_gate's product
 * goes to aux (B,H), starting from bias_n, instead of into the gates. */
typedef struct fwd_phase {
    int g0, g1, from_aux, aux_gate;
    step_fn finish;
} fwd_phase;

/* One backward stage: grads on every unit, then
 * dst (+)= src[:, g0*H:g1*H] @ W_hh[g0*H:g1*H, :], where src is dg or dgh and
 * dst is dh or drh (zeroed first).  The forward product of those gates took
 * aux as input exactly when dst is drh. */
typedef struct bwd_stage {
    bstep_fn grads;
    int g0, g1, src_dgh, dst_drh;
} bwd_stage;

typedef struct cell_plan {
    int n_phases;
    fwd_phase phase[2];
    int n_stages;
    bwd_stage stage[2];
} cell_plan;

static const cell_plan cell_plans[] = {
    [RNNX_RNN_TANH] = {1, {{0, 1, 0, -1, rnn_step_forward}}, 1, {{rnn_step_backward, 0, 1, 0, 0}}},
    [RNNX_RNN_RELU] = {1, {{0, 1, 0, -1, rnn_step_forward}}, 1, {{rnn_step_backward, 0, 1, 0, 0}}},
    [RNNX_LSTM] = {1, {{0, 4, 0, -1, lstm_step_forward}}, 1, {{lstm_step_backward, 0, 4, 0, 0}}},
    [RNNX_GRU] = {1, {{0, 3, 0, 2, gru_after_step_forward}},
                  1, {{gru_after_step_backward, 0, 3, 1, 0}}},
    [RNNX_GRU_RESET_BEFORE] = {2, {{0, 2, 0, -1, gru_before_step_gates},
                                   {2, 3, 1, -1, gru_before_step_output}},
                               2, {{gru_before_step_backward_output, 2, 3, 0, 1},
                                   {gru_before_step_backward_reset, 0, 2, 0, 0}}},
};

/* packed (see rnnx_packed_elems) := W_hh (G,H) in panels of U units. */
static void pack_weights(const rnnx_cell_desc* d, int H, const void* w_hh_v, void* packed_v)
{
    const real* w_hh = w_hh_v;
    real* packed = packed_v;
    const int panels = (H + U - 1) / U;
    for (int p = 0; p < panels; p++)
        for (int g = 0; g < d->gates; g++) {
            real* block = packed + ((size_t)p * d->gates + g) * H * U;  /* (H,U) */
            for (int k = 0; k < H; k++)
                for (int u = 0; u < U; u++) {
                    const int j = p * U + u;
                    block[(size_t)k * U + u] = j < H ? w_hh[((size_t)g * H + j) * H + k] : 0;
                }
        }
}

/* packed (strips of U units, (G,U) each) := W_hh (G,H) by columns:
 * packed[(q*G + k)*U + u] = W_hh[k][q*U + u], zero past H.  The backward
 * product dh += dG @ W_hh then reads each strip contiguously. */
static void pack_weights_by_units(int G, int H, const real* w_hh, real* packed)
{
    const int strips = (H + U - 1) / U;
    for (int q = 0; q < strips; q++)
        for (int k = 0; k < G; k++)
            for (int u = 0; u < U; u++) {
                const int j = q * U + u;
                packed[((size_t)q * G + k) * U + u] = j < H ? w_hh[(size_t)k * H + j] : 0;
            }
}

/* Units lo..hi-1 of task i of n over panels of U units. */
static void task_units(int H, int n, int i, int* lo, int* hi)
{
    const int panels = (H + U - 1) / U;
    const int p0 = (int)((long long)panels * i / n), p1 = (int)((long long)panels * (i + 1) / n);
    *lo = p0 * U;
    *hi = p1 * U < H ? p1 * U : H;
}

static void run_tasks(const rnnx_blas* blas, int n, rnnx_task_fn task, void* ctx)
{
    if (n > 1)
        blas->parallel_for(blas->pool, n, task, ctx);
    else
        task(ctx, 0);
}

/* Rows lo..hi-1 of row task i of n: whole MR-row tiles, and the rows past
 * the last whole tile always in the last task, so every row goes through the
 * same kernel (tile or single row) as in a serial step. */
static void task_rows(int B, int n, int i, int* lo, int* hi)
{
    const int tiles = B / MR;
    *lo = (int)((long long)tiles * i / n) * MR;
    *hi = i == n - 1 ? B : (int)((long long)tiles * (i + 1) / n) * MR;
}

/* How many tasks a step is cut into, when the step is worth more than a
 * handoff (a few microseconds): TASKS_PER_THREAD per thread, each of whole
 * panels.  Threads claim tasks as they come, so on a busy machine a thread
 * that is not running leaves its share to the others, and one that is
 * preempted inside a task holds up the step by a small task only.  Where
 * there are fewer panels than that, a forward step (row_tasks not NULL) also
 * cuts the batch into *row_tasks blocks of at least ROWS_PER_TASK rows. */
enum { TASKS_PER_THREAD = 4, ROWS_PER_TASK = 16 };

/* Below this many multiply-adds per step (B*G*H) a step runs serially: the
 * handoff and barrier (about 2 us on the 2-core EPYC) outweigh the split. */
#define STEP_SERIAL_BELOW 32768.0

static int step_tasks(const rnnx_blas* blas, int B, int G, int H, int* row_tasks)
{
    if (row_tasks)
        *row_tasks = 1;
    if (!blas || !blas->parallel_for || blas->n_threads <= 1)
        return 1;
    if ((double)B * G * H < STEP_SERIAL_BELOW)
        return 1;
    const int panels = (H + U - 1) / U;
    const int tasks = blas->n_threads * TASKS_PER_THREAD;
    if (tasks <= panels)
        return tasks;
    if (row_tasks) {
        const int most = B / ROWS_PER_TASK, want = (tasks + panels - 1) / panels;
        *row_tasks = want < most ? want : most > 1 ? most : 1;
    }
    return panels;
}

/* ------------------------------------------------------------- forward --- */

typedef struct fwd_task {
    const fwd_phase* phase;
    const step* s;
    const real* packed;
    int gates, n_tasks, row_tasks;  /* task i: panel task i / row_tasks, row block i % row_tasks */
} fwd_task;

/* One task of a fused phase: its panels' products, each followed by finish. */
static void fused_phase_task(void* ctx, int task)
{
    const fwd_task* c = ctx;
    const fwd_phase* ph = c->phase;
    const step* s = c->s;
    const int B = s->B, H = s->H, G = s->G;
    const real* in = ph->from_aux ? s->aux : s->h_prev;  /* (B,H) */
    int lo, hi, row_lo, row_hi;
    task_units(H, c->n_tasks, task / c->row_tasks, &lo, &hi);
    task_rows(B, c->row_tasks, task % c->row_tasks, &row_lo, &row_hi);
    for (int j0 = lo; j0 < hi; j0 += U) {
        const int p = j0 / U, nu = hi - j0 < U ? hi - j0 : U;
        for (int r0 = row_lo; r0 < row_hi; r0 += MR) {
            const int m = row_hi - r0 < MR ? row_hi - r0 : MR;
            const real* rows = in + (size_t)r0 * H;
            if (m == MR) {
                for (int g = ph->g0; g < ph->g1; g++) {
                    const real* panel = c->packed + ((size_t)p * c->gates + g) * H * U;  /* (H,U) */
                    if (g == ph->aux_gate)  /* aux[rows, units] = bias_n + rows @ W_g^T */
                        panel_product(s->aux + (size_t)r0 * H + j0, (size_t)H, nu, rows, (size_t)H,
                                      H, panel, 1, s->bias_n ? s->bias_n + j0 : NULL);
                    else                    /* gates[rows, g, units] += rows @ W_g^T */
                        panel_product(s->gates + (size_t)r0 * G + (size_t)g * H + j0, (size_t)G,
                                      nu, rows, (size_t)H, H, panel, 0, NULL);
                }
            } else {
                for (int r = r0; r < r0 + m; r++) {  /* the rows past the last tile: all gates at once */
                    real* dst[4];
                    const real* panels[4];
                    const real* bias[4] = {NULL, NULL, NULL, NULL};
                    int bias_init[4] = {0, 0, 0, 0};
                    const int ng = ph->g1 - ph->g0;
                    for (int q = 0; q < ng; q++) {
                        const int g = ph->g0 + q;
                        panels[q] = c->packed + ((size_t)p * c->gates + g) * H * U;
                        if (g == ph->aux_gate) {
                            dst[q] = s->aux + (size_t)r * H + j0;
                            bias_init[q] = 1;
                            bias[q] = s->bias_n ? s->bias_n + j0 : NULL;
                        } else {
                            dst[q] = s->gates + (size_t)r * G + (size_t)g * H + j0;
                        }
                    }
                    panel_product_row(ng, dst, nu, in + (size_t)r * H, H, panels, bias_init, bias);
                }
            }
            ph->finish(s, r0, r0 + m, j0, j0 + nu);
        }
    }
}

/* A phase on the BLAS or naive path: the products by gemm, then finish on everything. */
static void plain_phase(const rnnx_blas* blas, int naive, const fwd_phase* ph, const step* s,
                        const real* w_hh)
{
    const int B = s->B, H = s->H, G = s->G;
    const real* in = ph->from_aux ? s->aux : s->h_prev;
    if (ph->aux_gate < 0) {  /* gates[:, g0:g1] += in @ W_hh[g0:g1].T */
        gemm(blas, naive, 'N', 'T', B, (ph->g1 - ph->g0) * H, H, 1, in, H,
             w_hh + (size_t)ph->g0 * H * H, H, 1, s->gates + (size_t)ph->g0 * H, G);
    } else {
        for (int g = ph->g0; g < ph->g1; g++) {
            real* dst = g == ph->aux_gate ? s->aux : s->gates + (size_t)g * H;
            const int ld = g == ph->aux_gate ? H : G;
            if (g == ph->aux_gate)
                for (int b = 0; b < B; b++)
                    for (int j = 0; j < H; j++)
                        dst[(size_t)b * H + j] = s->bias_n ? s->bias_n[j] : 0;
            gemm(blas, naive, 'N', 'T', B, H, H, 1, in, H, w_hh + (size_t)g * H * H, H,
                 1, dst, ld);                                   /* dst += in @ W_hh[g].T */
        }
    }
    ph->finish(s, 0, B, 0, H);
}

static int forward_sequence(const rnnx_cell_desc* d, const rnnx_blas* blas,
                            const rnnx_forward_args* a)
{
    const cell_plan* plan = &cell_plans[d->cell];
    const int T = a->T, B = a->B, I = a->I, H = a->H, G = d->gates * H, reverse = a->reverse;
    const size_t BH = (size_t)B * H;
    const int train = (a->cache != NULL), has_c = (d->states == 2);
    const int naive = (a->path == RNNX_PATH_NAIVE);
    const int fused = (a->path == RNNX_PATH_AUTO || a->path == RNNX_PATH_SMALL);
    const int after = (d->cell == RNNX_GRU);
    const rnnx_cache_layout cl = rnnx_cache_layout_of(d, T, B, H);
    const rnnx_forward_work wl = rnnx_forward_work_of(d, T, B, I, H, train);
    real* work = a->work;
    real* cache = a->cache;
    real* hs = train ? cache + cl.hs : NULL;                                /* (T+1,B,H) */
    real* cs = train && has_c ? cache + cl.cs : NULL;                       /* (T+1,B,H) */
    real* slab = train && d->gates_in_cache ? cache + cl.gates : work + wl.slab;  /* (T,B,G) */
    real* aux_all = train && d->aux_in_cache ? cache + cl.aux : NULL;       /* (T,B,H) */
    const real* b_hh = a->b_hh;

    const real* packed = a->w_hh_packed;
    if (fused && !packed) {
        pack_weights(d, H, a->w_hh, work + wl.packed);
        packed = work + wl.packed;
    }
    /* slab = x @ W_ih^T + b_ih + b_hh, but for GRU reset after's b_hn */
    input_projection(blas, naive, slab, a->x, a->w_ih, a->w_ih_t, work + wl.w_ih_t,
                     a->b_ih, b_hh, after ? 2 * H : G, T * B, I, G);

    step s;
    s.B = B;
    s.H = H;
    s.G = G;
    s.relu = (d->cell == RNNX_RNN_RELU);
    s.lengths = a->lengths;
    s.ldy = a->ldy;
    s.bias_n = after && b_hh ? (const real*)b_hh + 2 * H : NULL;
    int row_tasks = 1;
    const int n_tasks = fused ? step_tasks(blas, B, G, H, &row_tasks) : 1;
    fwd_task task = {NULL, &s, packed, d->gates, n_tasks, row_tasks};

    const real* h_prev = a->h0;
    const real* c_prev = has_c ? a->c0 : NULL;
    if (train) {
        memcpy(hs + state_initial_offset(T, reverse, BH), a->h0, BH * sizeof(real));
        if (has_c)
            memcpy(cs + state_initial_offset(T, reverse, BH), a->c0, BH * sizeof(real));
    }
    for (int i = 0; i < T; i++) {
        const int t = step_time(i, T, reverse);
        s.t = t;
        s.h_prev = h_prev;
        s.c_prev = c_prev;
        s.h = train ? hs + state_offset(t, reverse, BH) : work + wl.h_ping + (size_t)(i & 1) * BH;
        s.c = !has_c ? NULL
              : train ? cs + state_offset(t, reverse, BH) : work + wl.c_ping + (size_t)(i & 1) * BH;
        s.gates = slab + (size_t)t * B * G;
        s.aux = aux_all ? aux_all + (size_t)t * BH : work + wl.aux;
        s.y = (real*)a->y + (ptrdiff_t)t * B * a->ldy;
        for (int q = 0; q < plan->n_phases; q++) {
            if (fused) {
                task.phase = &plan->phase[q];
                run_tasks(blas, n_tasks * row_tasks, fused_phase_task, &task);
            } else {
                plain_phase(blas, naive, &plan->phase[q], &s, a->w_hh);
            }
        }
        h_prev = s.h;
        c_prev = s.c;
    }
    memcpy(a->h_n, h_prev, BH * sizeof(real));
    if (has_c)
        memcpy(a->c_n, c_prev, BH * sizeof(real));
    return RNNX_OK;
}

/* ------------------------------------------------------------ backward --- */

typedef struct bwd_task {
    const bwd_stage* stage;
    const bstep* s;
    const real* w_hh;  /* W_hh packed by units (pack_weights_by_units) */
    int n_tasks;
} bwd_task;

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
    for (int u0 = j0; u0 < j1; u0 += U) {
        const int nu = j1 - u0 < U ? j1 - u0 : U;
        const real* strip = c->w_hh + ((size_t)(u0 / U) * G + (size_t)st->g0 * H) * U;  /* (K,U) */
        int r0 = 0;
        for (; r0 + MR <= B; r0 += MR)   /* dst[rows, units] += src[rows, gates] @ strip */
            panel_product(dst + (size_t)r0 * H + u0, (size_t)H, nu,
                          src + (size_t)r0 * G + (size_t)st->g0 * H, (size_t)G, K, strip, 0, NULL);
        for (; r0 < B; r0++) {
            real* d[4] = {dst + (size_t)r0 * H + u0, NULL, NULL, NULL};
            const real* P[4] = {strip, NULL, NULL, NULL};
            const int bias_init[4] = {0, 0, 0, 0};
            const real* bias[4] = {NULL, NULL, NULL, NULL};
            panel_product_row(1, d, nu, src + (size_t)r0 * G + (size_t)st->g0 * H, K, P, bias_init, bias);
        }
    }
}

static int backward_sequence(const rnnx_cell_desc* d, const rnnx_blas* blas,
                             const rnnx_backward_args* a)
{
    const cell_plan* plan = &cell_plans[d->cell];
    const int T = a->T, B = a->B, I = a->I, H = a->H, G = d->gates * H, reverse = a->reverse;
    const size_t BH = (size_t)B * H;
    const int naive = (a->path == RNNX_PATH_NAIVE);
    const int own = (a->path == RNNX_PATH_AUTO || a->path == RNNX_PATH_SMALL);
    const rnnx_cache_layout cl = rnnx_cache_layout_of(d, T, B, H);
    const rnnx_backward_work wl = rnnx_backward_work_of(d, T, B, I, H);
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
    s.relu = (d->cell == RNNX_RNN_RELU);
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
    bwd_task task = {NULL, &s, packed, n_tasks};

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

    input_gradients(blas, naive, reverse, a->dx, a->dw_ih, a->db_ih, dg, a->x, a->w_ih, a->lengths,
                    work + wl.x_rows, T, B, I, G);
    for (int q = 0; q < plan->n_stages; q++) {
        const bwd_stage* st = &plan->stage[q];
        const real* input = st->dst_drh ? aux : hs + state_prev_offset(0, reverse, BH);  /* (T,B,H) */
        recurrent_gradients(blas, naive, reverse, a->dw_hh, a->db_hh,
                            (st->src_dgh ? dgh : dg) + (size_t)st->g0 * H, G, input,
                            T * B, H, st->g0 * H, (st->g1 - st->g0) * H);
    }
    return RNNX_OK;
}

const rnnx_dtype_kernels RNNX_SFX(rnnx_kernels) = {forward_sequence, backward_sequence,
                                                   activation, pack_weights};

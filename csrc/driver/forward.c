/*
 * driver/forward.c: the sequence drivers' forward, one for every cell (the
 * backward is driver/backward.c).  A cell is its
 * descriptor (layout.h: shapes and layouts) and its plan (csrc/cells/plan.h,
 * written in its file csrc/cells/<cell>.c): the recurrent products of a step,
 * in phases, each followed by the cell's elementwise work; and the same
 * backward.
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

/* packed (see rnnx_panels_elems, K = K1 + K2) := [w1 | w2] (gates*N, K1 + K2)
 * in panels of U units: w1 (gates*N, K1) gives a panel's first K1 rows, w2
 * (gates*N, K2) the next K2 (K2 = 0 but for the fused input projection's
 * [W_ih | W_hh]). */
static void pack_panels2(int gates, int N, int K1, const real* w1, int K2, const real* w2,
                         real* packed)
{
    const int panels = (N + U - 1) / U, K = K1 + K2;
    for (int p = 0; p < panels; p++)
        for (int g = 0; g < gates; g++) {
            real* block = packed + ((size_t)p * gates + g) * K * U;  /* (K,U) */
            for (int k = 0; k < K; k++)
                for (int u = 0; u < U; u++) {
                    const int j = p * U + u;
                    const size_t row = (size_t)g * N + j;
                    block[(size_t)k * U + u] = j >= N ? 0
                                               : k < K1 ? w1[row * K1 + k] : w2[row * K2 + k - K1];
                }
        }
}

static void pack_panels(int gates, int N, int K, const real* w, real* packed)
{
    pack_panels2(gates, N, K, w, 0, NULL, packed);
}

/* packed (see rnnx_packed_elems_proj) := W_hh (G,S) in panels of U units, then
 * with a projection (P > 0) W_hr (P,H) in panels of U of its P units. */
static void pack_weights(const rnnx_cell_desc* d, int H, int P, const void* w_hh, const void* w_hr,
                         void* packed)
{
    pack_panels(d->gates, H, rnnx_state_width(H, P), w_hh, packed);
    if (P > 0)
        pack_panels(1, P, H, w_hr, (real*)packed + rnnx_panels_elems(d->gates, H, P, U));
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
    const real* packed_hr;  /* W_hr packed in panels (pack_panels(1, P, H)), with a projection */
    /* The fused input projection (RNNX_PROJECTION_FUSED), else all NULL: the gates'
     * phases run over xh (B, I + P) = [x_t | h_{t-1}] against packed_fused, [W_ih | W_hh]
     * in panels, each gate block starting from bias (G,) = b_ih + b_hh. */
    const real* xh;
    const real* packed_fused;
    const real* bias;
    int I;
} fwd_task;

/* Where the product of phase ph's block g (a gate, or the projection) for row r
 * and units from u0 goes: *ld is the row stride; the product starts from the
 * destination itself (the slab's x @ W_ih^T + biases), or (bias_init) from
 * *bias, a NULL bias meaning 0: the projection's 0, aux's bias_n, or with the
 * fused input projection (fused_bias (G,)) the gate's b_ih + b_hh. */
static real* block_dst(const fwd_phase* ph, const step* s, const real* fused_bias, int g, int r,
                       int u0, size_t* ld, int* bias_init, const real** bias)
{
    *bias_init = ph->proj_out || g == ph->aux_gate || fused_bias;
    *bias = ph->proj_out ? NULL
            : g == ph->aux_gate ? (s->cp->bias_n ? s->cp->bias_n + u0 : NULL)
            : fused_bias ? fused_bias + (size_t)g * s->H + u0 : NULL;
    if (ph->proj_out) {       /* h = m @ W_hr^T */
        *ld = (size_t)s->P;
        return s->h + (size_t)r * s->P + u0;
    }
    if (g == ph->aux_gate) {  /* aux = bias_n + h_prev @ W_g^T */
        *ld = (size_t)s->H;
        return s->aux + (size_t)r * s->H + u0;
    }
    *ld = (size_t)s->G;       /* gates[:, g] += in @ W_g^T */
    return s->gates + (size_t)r * s->G + (size_t)g * s->H + u0;
}

/* A phase's shape: its N units in panels of U, each panel a (K,U) block per
 * gate of its packed weights, over the input in (B,K).  The gates' phases run
 * over the H units with h_prev (B,P) (or aux, (B,H), where P == H); a
 * projection over the P units with m (B,H). */
typedef struct phase_shape {
    int N, K, gates;
    const real* in;
    const real* packed;
} phase_shape;

static phase_shape shape_of(const fwd_task* c)
{
    const fwd_phase* ph = c->phase;
    const step* s = c->s;
    phase_shape sh;
    const int fuse = c->xh && !ph->proj_out;  /* [x_t | h_prev] @ [W_ih | W_hh]^T */
    sh.N = ph->proj_out ? s->P : s->H;
    sh.K = ph->proj_out ? s->H : fuse ? c->I + s->P : s->P;
    sh.gates = ph->proj_out ? 1 : c->gates;
    sh.in = ph->proj_out ? s->m : fuse ? c->xh : ph->from_aux ? s->aux : s->h_prev;
    sh.packed = ph->proj_out ? c->packed_hr : fuse ? c->packed_fused : c->packed;
    return sh;
}

/* The products of the phase for row r and units j0..j1-1 (whole panels but
 * perhaps the last), by the row kernel: every (panel, gate) block in one call,
 * so that a phase with fewer gates than ROW_SLOTS still fills the accumulators. */
static void fused_row_products(const fwd_task* c, const phase_shape* sh, int r, int j0, int j1)
{
    const fwd_phase* ph = c->phase;
    const int nu = j1 - j0 < U ? j1 - j0 : U;
    real* dst[MAX_SLOTS];
    const real* panels[MAX_SLOTS];
    const real* bias[MAX_SLOTS];
    int bias_init[MAX_SLOTS];
    int n = 0;
    for (int u0 = j0; u0 < j1; u0 += U)
        for (int g = ph->g0; g < ph->g1; g++, n++) {
            size_t ld;
            panels[n] = sh->packed + ((size_t)(u0 / U) * sh->gates + g) * sh->K * U;
            dst[n] = block_dst(ph, c->s, c->bias, g, r, u0, &ld, &bias_init[n], &bias[n]);
        }
    panel_product_row(n, dst, nu, sh->in + (size_t)r * sh->K, sh->K, panels, bias_init, bias);
}

/* One task of a fused phase: its panels' products, each followed by finish.
 * Rows in whole tiles of MR (or of MRG rows across gates, see tile_gates) go panel by
 * panel; the rows past the last tile go through the row kernel a group of panels at a
 * time (whole panels only: a short last panel is a group of its own). */
static void fused_phase_task(void* ctx, int task)
{
    const fwd_task* c = ctx;
    const fwd_phase* ph = c->phase;
    const step* s = c->s;
    const phase_shape sh = shape_of(c);
    const int ng = ph->g1 - ph->g0;
    const int group = ng >= ROW_SLOTS ? 1 : ROW_SLOTS / ng;         /* panels per row call */
    /* several gates per tile where a panel row is one vector (see tile_gates) */
    const int gate_tiles = GATE_TILES && ng > 1, R = gate_tiles ? MRG : MR;
    int lo, hi, row_lo, row_hi;
    task_units(sh.N, c->n_tasks, task / c->row_tasks, &lo, &hi);
    task_rows(s->B, c->row_tasks, task % c->row_tasks, &row_lo, &row_hi);
    const int tiled = row_lo + (row_hi - row_lo) / R * R;           /* rows in whole tiles */
    for (int j0 = lo; j0 < hi;) {
        int j1 = j0 + group * U < hi ? j0 + group * U : hi;
        if (j1 - j0 > U && (j1 - j0) % U)  /* leave the short last panel to its own group */
            j1 = j0 + (j1 - j0) / U * U;
        for (int u0 = j0; u0 < j1; u0 += U) {
            const int p = u0 / U, nu = j1 - u0 < U ? j1 - u0 : U;
            for (int r0 = row_lo; r0 < tiled; r0 += R) {
                if (gate_tiles && nu < U) {         /* a short panel: row by row */
                    for (int r = r0; r < r0 + R; r++)
                        fused_row_products(c, &sh, r, u0, u0 + nu);
                } else if (gate_tiles) {
                    for (int g0 = ph->g0; g0 < ph->g1; g0 += 4) {
                        const int nq = ph->g1 - g0 < 4 ? ph->g1 - g0 : 4;
                        real* dst[4];
                        size_t ld[4];
                        const real* P[4];
                        const real* bias[4];
                        int bias_init[4];
                        for (int q = 0; q < nq; q++) {
                            P[q] = sh.packed + ((size_t)p * sh.gates + g0 + q) * sh.K * U;
                            dst[q] = block_dst(ph, s, c->bias, g0 + q, r0, u0, &ld[q], &bias_init[q],
                                               &bias[q]);
                        }
                        gates_product(nq, dst, ld, sh.in + (size_t)r0 * sh.K, (size_t)sh.K, sh.K, P,
                                      bias_init, bias);
                    }
                } else {
                    for (int g = ph->g0; g < ph->g1; g++) {
                        const real* panel = sh.packed + ((size_t)p * sh.gates + g) * sh.K * U;  /* (K,U) */
                        size_t ld;
                        int bias_init;
                        const real* bias;
                        real* dst = block_dst(ph, s, c->bias, g, r0, u0, &ld, &bias_init, &bias);
                        panel_product(dst, ld, nu, sh.in + (size_t)r0 * sh.K, (size_t)sh.K, sh.K,
                                      panel, bias_init, bias);
                    }
                }
                ph->finish(s, r0, r0 + R, u0, u0 + nu);
            }
        }
        for (int r = tiled; r < row_hi; r++) {
            fused_row_products(c, &sh, r, j0, j1);
            ph->finish(s, r, r + 1, j0, j1);
        }
        j0 = j1;
    }
}

/* A phase on the BLAS or naive path: the products by gemm, then finish on everything. */
static void plain_phase(const rnnx_blas* blas, int naive, const fwd_phase* ph, const step* s,
                        const real* w_hh, const real* w_hr)
{
    const int B = s->B, H = s->H, G = s->G, K = s->P;  /* K: the width of h_prev (H but with a projection) */
    const real* in = ph->from_aux ? s->aux : s->h_prev;
    if (ph->proj_out) {      /* h = m @ W_hr.T */
        gemm(blas, naive, 'N', 'T', B, s->P, H, 1, s->m, H, w_hr, H, 0, s->h, s->P);
        ph->finish(s, 0, B, 0, s->P);
        return;
    }
    if (ph->aux_gate < 0) {  /* gates[:, g0:g1] += in @ W_hh[g0:g1].T */
        gemm(blas, naive, 'N', 'T', B, (ph->g1 - ph->g0) * H, K, 1, in, K,
             w_hh + (size_t)ph->g0 * H * K, K, 1, s->gates + (size_t)ph->g0 * H, G);
    } else {
        for (int g = ph->g0; g < ph->g1; g++) {
            real* dst = g == ph->aux_gate ? s->aux : s->gates + (size_t)g * H;
            const int ld = g == ph->aux_gate ? H : G;
            if (g == ph->aux_gate)
                for (int b = 0; b < B; b++)
                    for (int j = 0; j < H; j++)
                        dst[(size_t)b * H + j] = s->cp->bias_n ? s->cp->bias_n[j] : 0;
            gemm(blas, naive, 'N', 'T', B, H, H, 1, in, H, w_hh + (size_t)g * H * H, H,
                 1, dst, ld);                                   /* dst += in @ W_hh[g].T */
        }
    }
    ph->finish(s, 0, B, 0, H);
}

/* Whether the plan's gate phases can take x_t into their products: none
 * writes aux or reads it (GRU: W_hn h + b_hn stays apart from W_in x, as r
 * multiplies it, and reset before multiplies h by r before W_hn), so every
 * gate column is x_t @ W_ih^T + h_{t-1} @ W_hh^T + biases. */
static int plan_fusable(const cell_plan* plan)
{
    for (int q = 0; q < plan->n_phases; q++)
        if (!plan->phase[q].proj_out && (plan->phase[q].from_aux || plan->phase[q].aux_gate >= 0))
            return 0;
    return 1;
}

/* Whether this call computes its input projection fused into the steps: where
 * the work has room for it (layout.h's rnnx_fused_fits: inference, T*B*G large
 * enough), the caller's choice (a->projection), else the cost model's. */
static int fuse_input(const rnnx_cell_desc* d, const cell_plan* plan, const rnnx_blas* blas,
                      const rnnx_forward_args* a)
{
    if ((a->path != RNNX_PATH_AUTO && a->path != RNNX_PATH_SMALL) || !plan_fusable(plan) ||
        !rnnx_fused_fits(d, a->T, a->B, a->input_size, a->H, a->proj, a->cache != NULL))
        return 0;
    const int forced = a->projection != RNNX_PROJECTION_AUTO ? a->projection
                                                             : rnnx_projection_forced();
    if (forced != RNNX_PROJECTION_AUTO)
        return forced == RNNX_PROJECTION_FUSED;
    rnnx_projection_costs costs;
    const int threads = blas && blas->parallel_for ? blas->n_threads : 1;
    if (rnnx_projection_plan(d->cell, a->T, a->B, a->input_size, a->H, a->proj, threads,
                             sizeof(real) == 8 ? RNNX_FLOAT64 : RNNX_FLOAT32, &costs) != RNNX_OK)
        return 0;
    return costs.choice == RNNX_PROJECTION_FUSED;
}

static int forward_sequence(const rnnx_cell_desc* d, const rnnx_blas* blas,
                            const rnnx_forward_args* a)
{
    const int proj = a->proj;
    const cell_plan* plan = plan_of(d, proj);
    const int T = a->T, B = a->B, I = a->input_size, H = a->H, G = d->gates * H, reverse = a->reverse;
    const int P = rnnx_state_width(H, proj);  /* the width of h and y */
    const size_t BH = (size_t)B * H, BP = (size_t)B * P;
    const int train = (a->cache != NULL), has_c = (d->states == 2);
    const int naive = (a->path == RNNX_PATH_NAIVE);
    const int fused = (a->path == RNNX_PATH_AUTO || a->path == RNNX_PATH_SMALL);
    const int fuse_x = fuse_input(d, plan, blas, a);  /* the input projection in the steps */
    const rnnx_cache_layout cl = rnnx_cache_layout_of(d, T, B, H, proj);
    const rnnx_forward_work wl = rnnx_forward_work_of(d, T, B, I, H, proj, train);
    real* work = a->work;
    real* cache = a->cache;
    real* hs = train ? cache + cl.hs : NULL;                                /* (T+1,B,P) */
    real* cs = train && has_c ? cache + cl.cs : NULL;                       /* (T+1,B,H) */
    real* slab = train && d->gates_in_cache ? cache + cl.gates : work + wl.slab;  /* (T,B,G) */
    real* aux_all = train && d->aux_in_cache ? cache + cl.aux : NULL;       /* (T,B,H) */
    const real* b_hh = a->b_hh;

    real* m_all = proj > 0 && train ? cache + cl.m : NULL;                  /* (T,B,H) */
    const real* packed = a->w_hh_packed;  /* the caller's, laid out by pack_weights */
    const real* packed_hr = packed && proj > 0 ? packed + rnnx_panels_elems(d->gates, H, P, U)
                                               : work + wl.packed_hr;
    if (fused && !packed) {
        if (!fuse_x)  /* fused, the gates read W_hh from [W_ih | W_hh] (packed below) */
            pack_panels(d->gates, H, P, a->w_hh, work + wl.packed);
        packed = work + wl.packed;
        if (proj > 0)
            pack_panels(1, P, H, a->w_hr, work + wl.packed_hr);
    }
    real* xh = work + wl.xh;                 /* (B, I + P): [x_t | h_{t-1}], fused */
    real* fused_bias = work + wl.bias;       /* (G,) b_ih + b_hh, fused */
    if (fuse_x) {
        pack_panels2(d->gates, H, I, a->w_ih, P, a->w_hh, work + wl.fused);
        /* the sum the hoisted slab starts from, so both give the same bits */
        for (int g = 0; g < G; g++)
            fused_bias[g] = (a->b_ih ? ((const real*)a->b_ih)[g] : 0) + (b_hh ? b_hh[g] : 0);
    } else {
        /* slab = x @ W_ih^T + b_ih + b_hh, b_hh on the plan's slab_bias_hh_gates gates */
        input_projection(blas, a->path, slab, a->x, a->w_ih, a->w_ih_t, work + wl.w_ih_t,
                         a->b_ih, b_hh, plan->slab_bias_hh_gates * H, T * B, I, G, a->row_exact);
    }
    rnnx_projection_count(fuse_x ? RNNX_PROJECTION_FUSED : RNNX_PROJECTION_HOISTED);

    const cell_params cp = params_of(plan, H, b_hh, a->w_peep);
    step s = {.B = B, .H = H, .G = G, .P = P, .lengths = a->lengths, .ldy = a->ldy, .cp = &cp};
    int row_tasks = 1;
    const int n_tasks = fused ? step_tasks(blas, B, G, H, &row_tasks) : 1;
    fwd_task task = {NULL, &s, packed, d->gates, n_tasks, row_tasks, packed_hr,
                     fuse_x ? xh : NULL, work + wl.fused, fuse_x ? fused_bias : NULL, I};

    const real* h_prev = a->h0;
    const real* c_prev = has_c ? a->c0 : NULL;
    if (train) {
        memcpy(hs + state_initial_offset(T, reverse, BP), a->h0, BP * sizeof(real));
        if (has_c)
            memcpy(cs + state_initial_offset(T, reverse, BH), a->c0, BH * sizeof(real));
    }
    for (int i = 0; i < T; i++) {
        const int t = step_time(i, T, reverse);
        s.t = t;
        s.h_prev = h_prev;
        s.c_prev = c_prev;
        s.h = train ? hs + state_offset(t, reverse, BP) : work + wl.h_ping + (size_t)(i & 1) * BP;
        s.c = !has_c ? NULL
              : train ? cs + state_offset(t, reverse, BH) : work + wl.c_ping + (size_t)(i & 1) * BH;
        /* fused inference: one step's (B,G) gates, in cache, in place of the slab */
        s.gates = fuse_x && !(train && d->gates_in_cache) ? slab : slab + (size_t)t * B * G;
        if (fuse_x)
            for (int b = 0; b < B; b++) {
                memcpy(xh + (size_t)b * (I + P), (const real*)a->x + ((size_t)t * B + b) * I,
                       (size_t)I * sizeof(real));
                memcpy(xh + (size_t)b * (I + P) + I, h_prev + (size_t)b * P, (size_t)P * sizeof(real));
            }
        s.aux = aux_all ? aux_all + (size_t)t * BH : work + wl.aux;
        s.y = (real*)a->y + (ptrdiff_t)t * B * a->ldy;
        if (proj > 0)
            s.m = m_all ? m_all + (size_t)t * BH : work + wl.m;
        for (int q = 0; q < plan->n_phases; q++) {
            if (fused) {
                task.phase = &plan->phase[q];
                run_tasks(blas, n_tasks * row_tasks, fused_phase_task, &task);
            } else {
                plain_phase(blas, naive, &plan->phase[q], &s, a->w_hh, a->w_hr);
            }
        }
        h_prev = s.h;
        c_prev = s.c;
    }
    memcpy(a->h_n, h_prev, BP * sizeof(real));
    if (has_c)
        memcpy(a->c_n, c_prev, BH * sizeof(real));
    return RNNX_OK;
}

/*
 * driver/gradients.c: the gradient GEMMs after the backward loop
 * (input_gradients, recurrent_gradients) and the helpers of the loop itself
 * (add_output_gradient, copy_or_zero).
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */

/* After the backward loop, with dg (T*B,G) the gradient of the gate
 * pre-activations of every row (0 where a row is past its length):
 *   dw_ih += dg^T @ x,  dx += dg @ w_ih,  db_ih += sum of dg over rows,
 * by the path's GEMM (gemm_hoisted).
 * The rows of x past their length take no part in dw_ih, whatever they hold
 * (NaN padding times a zero gradient would be NaN): the steps where every row
 * is active go in one product, the others one step at a time with those rows
 * of x zeroed in x_rows (B,I).
 *
 * In float64 (not naive) the sums over rows run in the backward loop's order
 * (rows descending for a forward direction, ascending for a reverse one), one
 * row after another (gemm_rows_acc), so a sequence whose backward runs in
 * time segments, last first, into the same gradients gives the same bits
 * (rnnx/checkpoint.py relies on it); each row of dx is a sum over G alone
 * in any GEMM of rnnx's.  float32 sums rows in the GEMM's order. */
static void input_gradients(const rnnx_blas* blas, int path, int reverse, real* dx, real* dw_ih,
                            real* db_ih, const real* dg, const real* x, const real* w_ih,
                            const int64_t* lengths, real* x_rows, int T, int B, int I, int G)
{
    int full = T;  /* steps 0..full-1 have every row active */
    if (lengths)
        for (int b = 0; b < B; b++)
            full = lengths[b] < full ? (int)lengths[b] : full;
#ifdef RNNX_DOUBLE
    const int ordered = path != RNNX_PATH_NAIVE;
#else
    const int ordered = 0;
    (void)reverse;
#endif
    /* dw_ih += dg_t.T @ x_t over the padded steps full..T-1, one step at a time */
#define RNNX_PADDED_STEP(t)                                                              \
    do {                                                                                 \
        for (int b = 0; b < B; b++) {                                                    \
            real* row = x_rows + (size_t)b * I;                                          \
            if (row_active(lengths, (t), b))                                             \
                memcpy(row, x + ((size_t)(t) * B + b) * I, (size_t)I * sizeof(real));    \
            else                                                                         \
                memset(row, 0, (size_t)I * sizeof(real));                                \
        }                                                                                \
        if (ordered)                                                                     \
            gemm_rows_acc(G, I, B, !reverse, dg + (size_t)(t) * B * G, G, x_rows, I,     \
                          dw_ih, I);                                                     \
        else                                                                             \
            gemm_hoisted(blas, path, 'T', 'N', G, I, B, dg + (size_t)(t) * B * G, G,     \
                         x_rows, I, dw_ih, I);                                           \
    } while (0)
    if (ordered && !reverse)   /* descending rows: the padded tail first */
        for (int t = T - 1; t >= full; t--)
            RNNX_PADDED_STEP(t);
    if (ordered)
        gemm_rows_acc(G, I, full * B, !reverse, dg, G, x, I, dw_ih, I);     /* dw_ih += dg.T @ x */
    else
        gemm_hoisted(blas, path, 'T', 'N', G, I, full * B, dg, G, x, I, dw_ih, I);
    if (!ordered || reverse)
        for (int t = full; t < T; t++)
            RNNX_PADDED_STEP(t);
#undef RNNX_PADDED_STEP
    /* dx += dg @ w_ih; float64 keeps its rows alone on the BLAS path too */
    gemm_hoisted(blas, ordered && path == RNNX_PATH_BLAS ? RNNX_PATH_AUTO : path, 'N', 'N', T * B,
                 I, G, dg, G, w_ih, I, dx, I);
    if (db_ih)
        column_sums(db_ih, dg, G, T * B, G, ordered && !reverse);
}

/* dw_hh[g0:g0+Gp] += dg[:, 0:Gp]^T @ h_prev and db_hh[g0:g0+Gp] += column sums,
 * with dg (N, row stride lddg) and h_prev (N,H) over all N = T*B rows; the row
 * order in float64 as in input_gradients. */
static void recurrent_gradients(const rnnx_blas* blas, int path, int reverse, real* dw_hh,
                                real* db_hh, const real* dg, int lddg, const real* h_prev,
                                int N, int H, int g0, int Gp)
{
#ifdef RNNX_DOUBLE
    if (path != RNNX_PATH_NAIVE) {
        gemm_rows_acc(Gp, H, N, !reverse, dg, lddg, h_prev, H,
                      dw_hh + (size_t)g0 * H, H);                        /* dw_hh += dg.T @ h_prev */
        if (db_hh)
            column_sums(db_hh + g0, dg, lddg, N, Gp, !reverse);
        return;
    }
#else
    (void)reverse;
#endif
    gemm_hoisted(blas, path, 'T', 'N', Gp, H, N, dg, lddg, h_prev, H,
                 dw_hh + (size_t)g0 * H, H);                             /* dw_hh += dg.T @ h_prev */
    if (db_hh)
        column_sums(db_hh + g0, dg, lddg, N, Gp, 0);
}

/* Gradient arriving at h_t from the output y_t, for the rows that produced it. */
static void add_output_gradient(real* dh, const real* dy_t, ptrdiff_t lddy,
                                const int64_t* lengths, int t, int B, int H)
{
    if (!dy_t)
        return;
    for (int b = 0; b < B; b++) {
        if (!row_active(lengths, t, b))
            continue;  /* y_t was a constant 0 there */
        const real* dyr = dy_t + (ptrdiff_t)b * lddy;
        real* dhr = dh + (size_t)b * H;
        for (int j = 0; j < H; j++)
            dhr[j] += dyr[j];
    }
}

static void copy_or_zero(real* dst, const real* src, size_t n)
{
    if (src)
        memcpy(dst, src, n * sizeof(real));
    else
        memset(dst, 0, n * sizeof(real));
}

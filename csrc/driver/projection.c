/*
 * driver/projection.c: input_projection, the gate pre-activations of every
 * row at once (slab := x @ w_ih^T + biases), before the time loop.
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */

/* slab (N,G) := x (N,I) @ w_ih^T + b1 + b2[:G2], for all N = T*B rows at once.
 * Either bias may be NULL; b2 covers the first G2 columns only (GRU reset after
 * keeps b_hn out: r multiplies W_hn h + b_hn).
 *
 * In float64 every row is computed on its own, by gemm_small_acc over
 * w_ih^T (I,G) (the caller's ready one, or w_ih_t filled here), so a row's
 * result does not depend on how many rows the call has: a sequence cut into
 * chunks, or streamed one step at a time, gives the whole sequence's numbers
 * bit for bit.  BLAS's blocked GEMM does not promise that (its rounding can
 * change with the number of rows), so float32 keeps it for speed, except when
 * the caller asks for rows alone (row_exact: rnnx_forward_args.row_exact, set by
 * streams and by the whole-sequence runs they must equal) and for small
 * products (up to 4M multiply-adds). */
static void input_projection(const rnnx_blas* blas, int naive, real* slab, const real* x,
                             const real* w_ih, const real* ready_w_ih_t, real* w_ih_t,
                             const real* b1, const real* b2, int G2, int N, int I, int G,
                             int row_exact)
{
    for (int n = 0; n < N; n++) {
        real* row = slab + (size_t)n * G;
        for (int g = 0; g < G; g++)
            row[g] = (b1 ? b1[g] : 0) + (b2 && g < G2 ? b2[g] : 0);
    }
#ifdef RNNX_DOUBLE
    const int rowwise = !naive && rnnx_projection_rowwise(RNNX_FLOAT64, row_exact, (double)N * G * I);
#else
    const int rowwise = !naive && rnnx_projection_rowwise(RNNX_FLOAT32, row_exact, (double)N * G * I);
#endif
    if (!rowwise) {
        gemm(blas, naive, 'N', 'T', N, G, I, 1, x, I, w_ih, I, 1, slab, G);  /* slab += x @ w_ih.T */
        return;
    }
    if (!ready_w_ih_t)
        for (int g = 0; g < G; g++)
            for (int k = 0; k < I; k++)
                w_ih_t[(size_t)k * G + g] = w_ih[(size_t)g * I + k];
    gemm_small_acc(N, G, I, x, I, ready_w_ih_t ? ready_w_ih_t : w_ih_t, G, slab, G);
}

/*
 * driver/projection.c: input_projection, the gate pre-activations of every
 * row at once (slab := x @ w_ih^T + biases), before the time loop, and
 * gemm_hoisted, the GEMM of every hoisted product by the caller's path.
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */

/* C (M,N) += op(A) @ op(B) for a hoisted product (input projection, dW_ih,
 * dW_hh, dX), by the path's GEMM: the naive loop (RNNX_PATH_NAIVE), the BLAS
 * (RNNX_PATH_BLAS, the old path, kept as the twin), else rnnx's own. */
static void gemm_hoisted(const rnnx_blas* blas, int path, char ta, char tb, int M, int N, int K,
                         const real* A, int lda, const real* Bm, int ldb, real* C, int ldc)
{
    if (path == RNNX_PATH_NAIVE || path == RNNX_PATH_BLAS)
        gemm(blas, path == RNNX_PATH_NAIVE, ta, tb, M, N, K, 1, A, lda, Bm, ldb, 1, C, ldc);
    else
        gemm_acc(blas, ta, tb, M, N, K, A, lda, Bm, ldb, C, ldc);
}

/* slab (N,G) := x (N,I) @ w_ih^T + b1 + b2[:G2], for all N = T*B rows at once.
 * Either bias may be NULL; b2 covers the first G2 columns only (GRU reset after
 * keeps b_hn out: r multiplies W_hn h + b_hn).  w_ih is (G,I); ready_w_ih_t,
 * when the caller has it, is its transpose (I,G); w_ih_panels (I*G) is work,
 * where rnnx's GEMM packs W_ih^T once for every block of rows.
 *
 * rnnx's GEMM adds each element's I products in order of k from the bias,
 * whatever the number of rows: a sequence cut into chunks, or streamed one
 * step at a time, gives the whole sequence's numbers bit for bit, in both
 * dtypes.  BLAS's blocked GEMM does not promise that (its rounding can change
 * with the number of rows), so RNNX_PATH_BLAS keeps it only in float32 and
 * where the caller does not ask for rows alone (row_exact:
 * rnnx_forward_args.row_exact, set by streams and by the whole-sequence runs
 * they must equal). */
static void input_projection(const rnnx_blas* blas, int path, real* slab, const real* x,
                             const real* w_ih, const real* ready_w_ih_t, real* w_ih_panels,
                             const real* b1, const real* b2, int G2, int N, int I, int G,
                             int row_exact)
{
    for (int n = 0; n < N; n++) {
        real* row = slab + (size_t)n * G;
        for (int g = 0; g < G; g++)
            row[g] = (b1 ? b1[g] : 0) + (b2 && g < G2 ? b2[g] : 0);
    }
#ifdef RNNX_DOUBLE
    const int twin = path == RNNX_PATH_NAIVE;
    (void)row_exact;
#else
    const int twin = path == RNNX_PATH_NAIVE || (path == RNNX_PATH_BLAS && !row_exact);
#endif
    const char tb = ready_w_ih_t ? 'N' : 'T';
    const real* w = ready_w_ih_t ? ready_w_ih_t : w_ih;
    const int ldw = ready_w_ih_t ? G : I;
    if (twin)
        gemm_hoisted(blas, path, 'N', tb, N, G, I, x, I, w, ldw, slab, G);  /* slab += x @ w_ih.T */
    else
        gemm_acc_packed(blas, 'N', tb, N, G, I, x, I, w, ldw, w_ih_panels, slab, G);
}

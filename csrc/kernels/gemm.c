/*
 * kernels/gemm.c: the one BLAS boundary, gemm, and its slow twin gemm_naive
 * (the path RNNX_PATH_NAIVE and builds without a BLAS take).
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */

/* C (M,N) := alpha * op(A) @ op(B) + beta * C, all row-major; op(A) is (M,K).
 * The slow twin of the BLAS path: one dot product per element, k in order.
 * beta == 0 never reads C, as in BLAS. */
static void gemm_naive(char ta, char tb, int M, int N, int K, real alpha,
                       const real* A, int lda, const real* Bm, int ldb,
                       real beta, real* C, int ldc)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            real sum = 0;
            for (int k = 0; k < K; k++) {
                real a = (ta == 'N') ? A[(size_t)i * lda + k] : A[(size_t)k * lda + i];
                real b = (tb == 'N') ? Bm[(size_t)k * ldb + j] : Bm[(size_t)j * ldb + k];
                sum = MADD(a, b, sum);
            }
            real* c = &C[(size_t)i * ldc + j];
            *c = (beta == 0) ? alpha * sum : alpha * sum + beta * *c;
        }
    }
}

/* The one BLAS boundary: C (M,N) := alpha * op(A) @ op(B) + beta * C, row-major.
 * Fortran BLAS is column-major, where a row-major X reads as X^T, so
 * C^T = op(B)^T op(A)^T: swap the operands here and nowhere else. */
static void gemm(const rnnx_blas* blas, int naive, char ta, char tb, int M, int N, int K,
                 real alpha, const real* A, int lda, const real* Bm, int ldb,
                 real beta, real* C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {  /* BLAS would only scale C; do it here and spare it the degenerate call */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = (beta == 0) ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
#ifdef RNNX_DOUBLE
    rnnx_dgemm_fn fn = blas ? blas->dgemm : NULL;
#else
    rnnx_sgemm_fn fn = blas ? blas->sgemm : NULL;
#endif
    if (naive || !fn) {
        gemm_naive(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, C, ldc);
        return;
    }
    char tra = ta, trb = tb;
    /* BLAS takes non-const pointers but does not write A or B. */
    fn(&trb, &tra, &N, &M, &K, &alpha, (real*)Bm, &ldb, (real*)A, &lda, &beta, C, &ldc);
}

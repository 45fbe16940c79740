/*
 * kernels/ordered.c: the ordered reductions of the gradient GEMMs:
 * gemm_rows_acc (C += A^T @ B over rows taken in a fixed order) and
 * column_sums in the same order, so that checkpointed BPTT adds the same
 * numbers in the same order as one backward pass.
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */

/* C (M,N) += A^T @ Bm over K rows taken in a fixed order: row k of A (M,) and
 * of Bm (N,) is A + k*lda, Bm + k*ldb, k = 0..K-1 when !descending, K-1..0
 * when descending.  Every element adds its K products one after another in
 * that order, starting from the value C holds, and K is cut in blocks only
 * between two such additions (C is stored and reloaded, which is exact).  So
 * one call over rows [0, N) equals calls over [s_j, s_{j+1}) made in the same
 * order on the same C, bit for bit: checkpointed BPTT relies on it
 * (rnnx/checkpoint.py).  BLAS's blocked GEMM does not promise that.
 * K runs in blocks of ROWS_KBLOCK rows, C in tiles of ROWS_TR x ROWS_TC (8 AVX2
 * registers of accumulators, and no edge columns when N is a multiple of 8: the
 * best of a few shapes measured on a Zen 2 core), each tile's rows of A packed
 * into a stack panel first.  Only float64 uses it (see input_gradients). */
enum { ROWS_KBLOCK = 64, ROWS_TR = 4, ROWS_TC = 8 };

/* One tile: c (ROWS_TR, ROWS_TC, row stride ldc) += sum over K rows of a[r] * b[q], rows
 * stepping by sa and sb (negative when descending). */
static void rows_tile(int K, const real* a, ptrdiff_t sa, const real* b, ptrdiff_t sb,
                      real* c, int ldc)
{
    real acc[ROWS_TR][ROWS_TC];
    for (int r = 0; r < ROWS_TR; r++)
        for (int q = 0; q < ROWS_TC; q++)
            acc[r][q] = c[(size_t)r * ldc + q];
    for (int k = 0; k < K; k++, a += sa, b += sb)
        for (int r = 0; r < ROWS_TR; r++)
            for (int q = 0; q < ROWS_TC; q++)
                acc[r][q] = MADD(a[r], b[q], acc[r][q]);
    for (int r = 0; r < ROWS_TR; r++)
        for (int q = 0; q < ROWS_TC; q++)
            c[(size_t)r * ldc + q] = acc[r][q];
}

static void rows_edge(int rows, int cols, int K, const real* a, ptrdiff_t sa, const real* b,
                      ptrdiff_t sb, real* c, int ldc)
{
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < cols; q++) {
            real acc = c[(size_t)r * ldc + q];
            const real* ak = a;
            const real* bk = b;
            for (int k = 0; k < K; k++, ak += sa, bk += sb)
                acc = MADD(ak[r], bk[q], acc);
            c[(size_t)r * ldc + q] = acc;
        }
}

static void gemm_rows_acc(int M, int N, int K, int descending, const real* A, int lda,
                          const real* Bm, int ldb, real* C, int ldc)
{
    const ptrdiff_t sa = descending ? -(ptrdiff_t)lda : lda;
    const ptrdiff_t sb = descending ? -(ptrdiff_t)ldb : ldb;
    for (int k0 = 0; k0 < K; k0 += ROWS_KBLOCK) {
        const int kn = K - k0 < ROWS_KBLOCK ? K - k0 : ROWS_KBLOCK;
        const int first = descending ? K - 1 - k0 : k0;  /* the block's first row */
        const real* a0 = A + (ptrdiff_t)first * lda;
        const real* b0 = Bm + (ptrdiff_t)first * ldb;
        for (int i = 0; i < M; i += ROWS_TR) {
            const int rows = M - i < ROWS_TR ? M - i : ROWS_TR;
            if (rows < ROWS_TR) {
                rows_edge(rows, N, kn, a0 + i, sa, b0, sb, C + (size_t)i * ldc, ldc);
                continue;
            }
            /* this tile's rows of A, packed contiguous in the order of use: a small stack
             * panel instead of one far-apart cache line (and page) per row */
            real apack[ROWS_KBLOCK * ROWS_TR];
            const real* ak = a0 + i;
            for (int k = 0; k < kn; k++, ak += sa)
                for (int r = 0; r < ROWS_TR; r++)
                    apack[k * ROWS_TR + r] = ak[r];
            int j = 0;
            for (; j + ROWS_TC <= N; j += ROWS_TC)
                rows_tile(kn, apack, ROWS_TR, b0 + j, sb, C + (size_t)i * ldc + j, ldc);
            if (j < N)
                rows_edge(ROWS_TR, N - j, kn, apack, ROWS_TR, b0 + j, sb,
                          C + (size_t)i * ldc + j, ldc);
        }
    }
}

/* Column sums: sums (G,) += the rows of dg (N, row stride lddg), in the order
 * of gemm_rows_acc (descending or not). */
static void column_sums(real* sums, const real* dg, int lddg, int N, int G, int descending)
{
    for (int kk = 0; kk < N; kk++) {
        const int n = descending ? N - 1 - kk : kk;
        for (int g = 0; g < G; g++)
            sums[g] += dg[(size_t)n * lddg + g];
    }
}

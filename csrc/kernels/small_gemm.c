/*
 * kernels/small_gemm.c: gemm_small_acc, the core's own C += A @ B for products
 * too small for a BLAS call and for those whose rows must not depend on the
 * row count (float64 input projection, a stream's rows).
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */

/* C (M,N) += A (M,K) @ Bm (K,N), row-major: the core's own kernel for the
 * backward per-step product dh += dG @ W_hh, a stream's input projection and
 * the float64 row-by-row input projection.
 *
 * A tile of 4 rows x SMALL_COLS columns of C stays in registers while k runs
 * over K, so each row of Bm loaded serves four rows of C.  Every element of C,
 * in a tile or in the edges, adds its K products one after another in order
 * of k, so its value does not depend on M or on where the tiles fall. */
enum { SMALL_ROWS = 4 };

/* c (N,) += a (K,) @ Bm (K,N): one row of gemm_small_acc.  A one-row product
 * is bound by reading Bm, so Bm is read row by row, contiguously, four rows of
 * k at a time (a walk down its columns would hop ldb elements per k, which
 * the prefetchers do not follow); each element of c adds its products one
 * after another in order of k, as in the tiles. */
static void gemm_small_row(int N, int K, const real* restrict a, const real* restrict Bm, int ldb,
                           real* restrict c)
{
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        const real a0 = a[k], a1 = a[k + 1], a2 = a[k + 2], a3 = a[k + 3];
        const real* b0 = Bm + (size_t)k * ldb;
        const real* b1 = b0 + ldb;
        const real* b2 = b1 + ldb;
        const real* b3 = b2 + ldb;
        int j = 0;
        for (; j + VL <= N; j += VL) {
            vec acc = *(const vec*)(c + j);
            acc = vmadd(a0, *(const vec*)(b0 + j), acc);
            acc = vmadd(a1, *(const vec*)(b1 + j), acc);
            acc = vmadd(a2, *(const vec*)(b2 + j), acc);
            acc = vmadd(a3, *(const vec*)(b3 + j), acc);
            *(vec*)(c + j) = acc;
        }
        for (; j < N; j++) {
            real t = c[j];
            t = MADD(a0, b0[j], t);
            t = MADD(a1, b1[j], t);
            t = MADD(a2, b2[j], t);
            t = MADD(a3, b3[j], t);
            c[j] = t;
        }
    }
    for (; k < K; k++) {
        const real ak = a[k];
        const real* b = Bm + (size_t)k * ldb;
        int j = 0;
        for (; j + VL <= N; j += VL)
            *(vec*)(c + j) = vmadd(ak, *(const vec*)(b + j), *(const vec*)(c + j));
        for (; j < N; j++)
            c[j] = MADD(ak, b[j], c[j]);
    }
}

static void gemm_small_acc(int M, int N, int K, const real* restrict A, int lda,
                           const real* restrict Bm, int ldb, real* restrict C, int ldc)
{
    enum { TILE_VECS = 2, SMALL_COLS = TILE_VECS * VL, WIDE_VECS = 4, ROW_BLOCK = 64 };
    /* Rows in blocks of ROW_BLOCK; in a block, each column strip of Bm (K,SMALL_COLS)
     * serves every 4-row tile before the next strip is read, so a Bm larger than
     * the cache is read once per block, not once per tile. */
    for (int ib = 0; ib < M; ib += ROW_BLOCK) {
        const int iend = M - ib < ROW_BLOCK ? M : ib + ROW_BLOCK;
        const int i4end = ib + (iend - ib) / SMALL_ROWS * SMALL_ROWS;
        int j = 0;
        for (; j + SMALL_COLS <= N; j += SMALL_COLS)
            for (int i = ib; i < i4end; i += SMALL_ROWS) {
                const real* a = A + (size_t)i * lda;
                real* c = C + (size_t)i * ldc;
                vec acc[SMALL_ROWS][TILE_VECS];
                for (int r = 0; r < SMALL_ROWS; r++)
                    for (int v = 0; v < TILE_VECS; v++)
                        acc[r][v] = *(const vec*)(c + (size_t)r * ldc + j + v * VL);
                for (int k = 0; k < K; k++) {
                    const vec* b = (const vec*)(Bm + (size_t)k * ldb + j);
                    for (int r = 0; r < SMALL_ROWS; r++) {
                        const real ark = a[(size_t)r * lda + k];
                        for (int v = 0; v < TILE_VECS; v++)
                            acc[r][v] = vmadd(ark, b[v], acc[r][v]);
                    }
                }
                for (int r = 0; r < SMALL_ROWS; r++)
                    for (int v = 0; v < TILE_VECS; v++)
                        *(vec*)(c + (size_t)r * ldc + j + v * VL) = acc[r][v];
            }
        for (int i = ib; i < i4end; i++) {  /* the columns past the last strip */
            const real* a = A + (size_t)i * lda;
            real* c = C + (size_t)i * ldc;
            for (int k = 0; k < K; k++) {
                const real* b = Bm + (size_t)k * ldb;
                for (int q = j; q < N; q++)
                    c[q] = MADD(a[k], b[q], c[q]);
            }
        }
        for (int i = i4end; i < iend; i++)
            gemm_small_row(N, K, A + (size_t)i * lda, Bm, ldb, C + (size_t)i * ldc);
    }
}

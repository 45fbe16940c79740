/*
 * common.c: what the cells and the sequence driver share: the BLAS boundary,
 * the naive and small gemm kernels, the packed per-step kernel, the input
 * projection, the gradient GEMMs after the backward loop, the activations.
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */

/* Every multiply-add that should be one FMA says so: MADD for scalars, vmadd
 * for vectors (explicit FMA instructions where the ISA has them, a*b+c with
 * two roundings where it does not), and the core is built with
 * -ffp-contract=off, so the compiler fuses nothing on its own.  A value is then
 * computed the same way in every loop shape, vectorized or not, tile or row,
 * whatever the compiler: GCC 13 left some a*b+c of the one-row kernel unfused
 * where GCC 12 fused them, and results depended on how a step was cut into
 * tasks, i.e. on the thread count. */
#if defined(RNNX_TARGET_AVX2) || defined(RNNX_TARGET_AVX512)
#  ifdef RNNX_DOUBLE
#    define MADD(a, b, c) __builtin_fma((a), (b), (c))
#  else
#    define MADD(a, b, c) __builtin_fmaf((a), (b), (c))
#  endif
#else
#  define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* ---------------------------------------------------------------- gemm --- */

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

/* ------------------------------------------------ the packed step kernel --- */

/* The per-step recurrent product runs on W_hh packed in panels of U units
 * (layout.h): for one gate of one panel, a (H,U) block, k-major, so a tile of
 * MR rows x U columns of the product stays in registers while k runs over H.
 * Every element adds its H products one after another in order of k, from the
 * value it starts with, in both tile shapes: its value does not depend on B,
 * on where the tiles fall, or on which thread computes it. */
enum { U = RNNX_UNITS };

/* The kernels below are written once, on a vector `vec` of VBYTES bytes: where
 * the compiler has vector extensions (GCC, Clang: SSE2 or NEON for the portable
 * build, AVX2 or AVX-512 for the others), each ISA gets registers of its width,
 * with FMA where it has one (vmadd).  Elsewhere (MSVC, or RNNX_PLAIN_C99: see
 * compiler.h) vec is one scalar, so the same loops are plain C99.  Each element
 * adds the same products in the same order of k whatever the width. */
#ifdef RNNX_GNU_C
#  if defined(RNNX_TARGET_AVX512)
#    define VBYTES 64
#  elif defined(RNNX_TARGET_AVX2)
#    define VBYTES 32
#  elif defined(RNNX_GENERIC_VBYTES)
/* CI only (.ci/wide_vectors.sh): the portable build on vectors of the AVX-512
 * build's width, lowered by the compiler to the baseline ISA, so that every
 * x86-64 machine runs the tile shapes the AVX-512 build uses. */
#    define VBYTES RNNX_GENERIC_VBYTES
#  else
#    define VBYTES 16
#  endif
typedef real vec __attribute__((vector_size(VBYTES), may_alias, aligned(sizeof(real))));
#  define VZERO ((vec){0})
#  define ALWAYS_INLINE inline __attribute__((always_inline))
#else
/* The scalar fallback: a "vector" of one lane.  Loads and stores through
 * (vec*) are then plain element accesses. */
#  define VBYTES ((int)sizeof(real))
typedef real vec;
#  define VZERO ((real)0)
#  define ALWAYS_INLINE inline
#endif
enum { VL = VBYTES / (int)sizeof(real), NV = U / VL };  /* lanes; vectors per panel row */
/* Rows per tile: MR * NV = 8 accumulators, independent sums enough to hide the
 * FMA latency on two FMA pipes, and with the panel row and the broadcast few
 * enough for 16 registers.  4 rows of 2 vectors on AVX2, 8 rows of one
 * 64-byte panel row on AVX-512, 2 rows of 4 on SSE2 and NEON; one row of U
 * scalars in the scalar fallback. */
enum { MR = NV >= 8 ? 1 : 8 / NV };

/* vmadd(a, b, c) = a * b + c for a scalar a */
#if defined(RNNX_TARGET_AVX512) || defined(RNNX_TARGET_AVX2)
static ALWAYS_INLINE vec vmadd(real a, vec b, vec c)
{
#    if defined(RNNX_TARGET_AVX512) && defined(RNNX_DOUBLE)
    return (vec)_mm512_fmadd_pd(_mm512_set1_pd(a), (__m512d)b, (__m512d)c);
#    elif defined(RNNX_TARGET_AVX512)
    return (vec)_mm512_fmadd_ps(_mm512_set1_ps(a), (__m512)b, (__m512)c);
#    elif defined(RNNX_DOUBLE)
    return (vec)_mm256_fmadd_pd(_mm256_set1_pd(a), (__m256d)b, (__m256d)c);
#    else
    return (vec)_mm256_fmadd_ps(_mm256_set1_ps(a), (__m256)b, (__m256)c);
#    endif
}
#else
#  define vmadd(a, b, c) ((a) * (b) + (c))
#endif

/* acc (MR,U) += A (MR rows, row stride lda, K columns) @ P (K,U) */
static ALWAYS_INLINE void tile_rows(int K, const real* restrict A, size_t lda,
                                    const real* restrict P, vec acc[MR][NV])
{
    for (int k = 0; k < K; k++) {
        const vec* p = (const vec*)(P + (size_t)k * U);
        for (int r = 0; r < MR; r++) {
            const real ark = A[(size_t)r * lda + k];
            for (int v = 0; v < NV; v++)
                acc[r][v] = vmadd(ark, p[v], acc[r][v]);
        }
    }
}

/* Tiles across gates, where a panel row is one vector (NV == 1: AVX-512, and the
 * wide-vector CI build): a tile of MRG rows x NG <= 4 gates keeps MRG*NG
 * accumulators (16 for an LSTM) and loads, per k, NG panel vectors and MRG
 * broadcasts for MRG*NG FMAs, where a one-gate tile of MR rows loads one vector
 * and MR broadcasts for MR FMAs: the loads, not the FMAs, bounded it.  Each
 * element's sum as in tile_rows. */
enum { MRG = 4, GATE_TILES = NV == 1 };

static ALWAYS_INLINE void tile_gates(int NG, int K, const real* restrict A, size_t lda,
                                     const real* const P[4], vec acc[MRG][4])
{
    for (int k = 0; k < K; k++) {
        vec p[4];
        for (int q = 0; q < NG; q++)
            p[q] = *(const vec*)(P[q] + (size_t)k * U);
        for (int r = 0; r < MRG; r++) {
            const real ark = A[(size_t)r * lda + k];
            for (int q = 0; q < NG; q++)
                acc[r][q] = vmadd(ark, p[q], acc[r][q]);
        }
    }
}

/* dst[q] (MRG rows of row stride ld[q], U) := init + a (MRG,K, row stride lda) @ P[q]
 * (K,U) for NG gates of a whole panel; init is dst[q] itself, or (bias_init[q])
 * bias[q] (U,), a NULL bias meaning 0. */
static ALWAYS_INLINE void gates_product_n(int NG, real* const dst[4], const size_t ld[4],
                                          const real* restrict a, size_t lda, int K,
                                          const real* const P[4], const int bias_init[4],
                                          const real* const bias[4])
{
    vec acc[MRG][4];
    for (int q = 0; q < NG; q++)
        for (int r = 0; r < MRG; r++) {
            const real* init = bias_init[q] ? bias[q] : dst[q] + (size_t)r * ld[q];
            acc[r][q] = init ? *(const vec*)init : VZERO;
        }
    tile_gates(NG, K, a, lda, P, acc);
    for (int q = 0; q < NG; q++)
        for (int r = 0; r < MRG; r++)
            *(vec*)(dst[q] + (size_t)r * ld[q]) = acc[r][q];
}

static void gates_product(int NG, real* const dst[4], const size_t ld[4], const real* restrict a,
                          size_t lda, int K, const real* const P[4], const int bias_init[4],
                          const real* const bias[4])
{
    switch (NG) {  /* constant gate counts, so the accumulators stay in registers */
    case 1: gates_product_n(1, dst, ld, a, lda, K, P, bias_init, bias); break;
    case 2: gates_product_n(2, dst, ld, a, lda, K, P, bias_init, bias); break;
    case 3: gates_product_n(3, dst, ld, a, lda, K, P, bias_init, bias); break;
    default: gates_product_n(4, dst, ld, a, lda, K, P, bias_init, bias); break;
    }
}

/* One row against several (K,U) blocks at once: the gates of a panel, or
 * several panels or strips, whose independent sums hide the FMA latency.
 * ROW_SLOTS blocks fill the 8 accumulators a tile has; a call may take up to
 * MAX_SLOTS (an LSTM's 4 gates on SSE2 or NEON). */
enum { ROW_SLOTS = MR < 4 ? 4 : MR, MAX_SLOTS = 8 };

/* acc[q] (U,) += a (K,) @ P[q] (K,U) for NG blocks q; each element's sum as in
 * tile_rows. */
static ALWAYS_INLINE void tile_row_blocks(int NG, int K, const real* restrict a,
                                          const real* const P[MAX_SLOTS], vec acc[MAX_SLOTS][NV])
{
    for (int k = 0; k < K; k++) {
        const real ak = a[k];
        for (int q = 0; q < NG; q++) {
            const vec* p = (const vec*)(P[q] + (size_t)k * U);
            for (int v = 0; v < NV; v++)
                acc[q][v] = vmadd(ak, p[v], acc[q][v]);
        }
    }
}

/* dst (MR,nu, row stride ld) := init + a (MR,K, row stride lda) @ P (K,U)[:, :nu];
 * init is dst itself, or bias (nu,) when bias_init (a NULL bias meaning 0).
 * A whole panel (nu == U) loads and stores its tile straight from dst. */
static void panel_product(real* restrict dst, size_t ld, int nu, const real* restrict a, size_t lda,
                          int K, const real* restrict P, int bias_init, const real* restrict bias)
{
    if (nu == U) {
        vec acc[MR][NV];
        for (int r = 0; r < MR; r++)
            for (int v = 0; v < NV; v++) {
                const real* init = bias_init ? bias : dst + (size_t)r * ld;
                acc[r][v] = init ? *(const vec*)(init + v * VL) : VZERO;
            }
        tile_rows(K, a, lda, P, acc);
        for (int r = 0; r < MR; r++)
            for (int v = 0; v < NV; v++)
                *(vec*)(dst + (size_t)r * ld + v * VL) = acc[r][v];
        return;
    }
    union { vec v[MR][NV]; real x[MR][U]; } acc;
    for (int r = 0; r < MR; r++)
        for (int u = 0; u < U; u++)
            acc.x[r][u] = u >= nu ? 0 : bias_init ? (bias ? bias[u] : 0) : dst[(size_t)r * ld + u];
    tile_rows(K, a, lda, P, acc.v);
    for (int r = 0; r < MR; r++)
        for (int u = 0; u < nu; u++)
            dst[(size_t)r * ld + u] = acc.x[r][u];
}

/* One row and NG <= MAX_SLOTS blocks at once: dst[q] (nu,) := init + a (K,) @ P[q].
 * Whole panels (nu == U) load and store the accumulators straight from dst. */
static ALWAYS_INLINE void row_blocks(int NG, real* const dst[MAX_SLOTS], int nu,
                                     const real* restrict a, int K, const real* const P[MAX_SLOTS],
                                     const int bias_init[MAX_SLOTS], const real* const bias[MAX_SLOTS])
{
    union { vec v[MAX_SLOTS][NV]; real x[MAX_SLOTS][U]; } tile;
    vec (*acc)[NV] = tile.v;
    if (nu == U) {
        for (int q = 0; q < NG; q++)
            for (int v = 0; v < NV; v++) {
                const real* init = bias_init[q] ? bias[q] : dst[q];
                acc[q][v] = init ? *(const vec*)(init + v * VL) : VZERO;
            }
        tile_row_blocks(NG, K, a, P, acc);
        for (int q = 0; q < NG; q++)
            for (int v = 0; v < NV; v++)
                *(vec*)(dst[q] + v * VL) = acc[q][v];
        return;
    }
    real (*x)[U] = tile.x;  /* a short panel goes through memory, zero past nu */
    for (int q = 0; q < NG; q++)
        for (int u = 0; u < U; u++)
            x[q][u] = u >= nu ? 0 : bias_init[q] ? (bias[q] ? bias[q][u] : 0) : dst[q][u];
    tile_row_blocks(NG, K, a, P, acc);
    for (int q = 0; q < NG; q++)
        for (int u = 0; u < nu; u++)
            dst[q][u] = x[q][u];
}

static void panel_product_row(int NG, real* const dst[MAX_SLOTS], int nu, const real* restrict a,
                              int K, const real* const P[MAX_SLOTS],
                              const int bias_init[MAX_SLOTS], const real* const bias[MAX_SLOTS])
{
    switch (NG) {  /* constant block counts, so the accumulators stay in registers */
    case 1: row_blocks(1, dst, nu, a, K, P, bias_init, bias); break;
    case 2: row_blocks(2, dst, nu, a, K, P, bias_init, bias); break;
    case 3: row_blocks(3, dst, nu, a, K, P, bias_init, bias); break;
    case 4: row_blocks(4, dst, nu, a, K, P, bias_init, bias); break;
    case 5: row_blocks(5, dst, nu, a, K, P, bias_init, bias); break;
    case 6: row_blocks(6, dst, nu, a, K, P, bias_init, bias); break;
    case 7: row_blocks(7, dst, nu, a, K, P, bias_init, bias); break;
    default: row_blocks(8, dst, nu, a, K, P, bias_init, bias); break;
    }
}

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

/* --------------------------------------------------------- time and rows --- */

/* The time index of processing step s: forward walks 0..T-1, reverse T-1..0. */
static inline int step_time(int s, int T, int reverse)
{
    return reverse ? T - 1 - s : s;
}

/* Row b takes part in time step t unless t is past its length. */
static inline int row_active(const int64_t* lengths, int t, int b)
{
    return lengths == NULL || t < lengths[b];
}

/* The states cache hs is (T+1,B,H), laid out so that the previous states of all
 * steps are one contiguous (T,B,H) block in time order, for the dW_hh GEMM:
 *   forward: hs[0] = h0, hs[t+1] = h_t, so h_prev(t) = hs[t];
 *   reverse: hs[T] = h0, hs[t]   = h_t, so h_prev(t) = hs[t+1]. */
static inline size_t state_prev_offset(int t, int reverse, size_t BH)
{
    return (size_t)(reverse ? t + 1 : t) * BH;
}

static inline size_t state_offset(int t, int reverse, size_t BH)
{
    return (size_t)(reverse ? t : t + 1) * BH;
}

static inline size_t state_initial_offset(int T, int reverse, size_t BH)
{
    return reverse ? (size_t)T * BH : 0;
}

/* --------------------------------------------------------- one time step --- */

/* What one forward time step touches; a cell's elementwise work reads it. */
typedef struct step {
    int B, H, G, t, relu;
    int P;                    /* the width of h and y: proj_size with a projection, else H */
    const int64_t* lengths;   /* (B,) or NULL */
    const real* h_prev;       /* (B,P) IN */
    const real* c_prev;       /* (B,H) IN, LSTM */
    real* h;                  /* (B,P) OUT */
    real* c;                  /* (B,H) OUT, LSTM */
    real* gates;              /* (B,G) IN pre-activations, OUT activations */
    real* aux;                /* (B,H) see rnnx_cell_desc.aux_in_cache */
    real* y;                  /* (B, row stride ldy) OUT */
    ptrdiff_t ldy;
    const real* bias_n;       /* (H,) GRU reset after: b_hn, the start of W_hn h_prev + b_hn; or NULL */
    real* m;                  /* (B,H) LSTM with a projection: o * tanh(c), the input of W_hr */
    const real* peep;         /* (3H,) LSTM peepholes [Pi, Pf, Po], or NULL */
} step;

/* The elementwise work of a step on rows r0..r1-1 and units j0..j1-1. */
typedef void (*step_fn)(const step* s, int r0, int r1, int j0, int j1);

/* What one backward time step touches. */
typedef struct bstep {
    int B, H, G, t, relu;
    const int64_t* lengths;   /* (B,) or NULL */
    real* dg;                 /* (B,G) OUT gradient of the pre-activations, input side */
    real* dgh;                /* (B,G) OUT the same on the W_hh side (GRU reset after) */
    real* dh;                 /* (B,H) IN gradient at h_t, OUT the part at h_prev not through W_hh */
    real* dc;                 /* (B,H) LSTM: the same for c */
    real* drh;                /* (B,H) IN GRU reset before: gradient at r * h_prev */
    const real* gates;        /* (B,G) IN activations */
    const real* h;            /* (B,H) IN the step's output state */
    const real* h_prev;       /* (B,H) IN */
    const real* c_prev;       /* (B,H) IN, LSTM */
    const real* aux;          /* (B,H) IN see rnnx_cell_desc.aux_in_cache */
    const real* peep;         /* (3H,) LSTM peepholes [Pi, Pf, Po], or NULL */
} bstep;

/* The elementwise gradient work of a step on units j0..j1-1, all rows. */
typedef void (*bstep_fn)(const bstep* s, int j0, int j1);

/* One row's units j0..j1-1 of the state and output carried through a step
 * that is past the row's length: h = h_prev (c = c_prev), y = 0. */
static void carry_row(const step* s, int b, int j0, int j1)
{
    const size_t off = (size_t)b * s->H + j0, n = (size_t)(j1 - j0) * sizeof(real);
    memcpy(s->h + off, s->h_prev + off, n);
    if (s->c)
        memcpy(s->c + off, s->c_prev + off, n);
    memset(s->y + (ptrdiff_t)b * s->ldy + j0, 0, n);
}

/* ------------------------------------------------------- around the loop --- */

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
 * the caller hands in w_ih^T (a stream's few rows per call are faster without
 * a BLAS call) and for small products (up to 4M multiply-adds). */
static void input_projection(const rnnx_blas* blas, int naive, real* slab, const real* x,
                             const real* w_ih, const real* ready_w_ih_t, real* w_ih_t,
                             const real* b1, const real* b2, int G2, int N, int I, int G)
{
    for (int n = 0; n < N; n++) {
        real* row = slab + (size_t)n * G;
        for (int g = 0; g < G; g++)
            row[g] = (b1 ? b1[g] : 0) + (b2 && g < G2 ? b2[g] : 0);
    }
#ifdef RNNX_DOUBLE
    const int rowwise = !naive;
#else
    /* small projections too: a threaded BLAS's handoff costs more than they do */
    const int rowwise = !naive && (ready_w_ih_t || (double)N * G * I <= 4194304.0);
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

/* After the backward loop, with dg (T*B,G) the gradient of the gate
 * pre-activations of every row (0 where a row is past its length):
 *   dw_ih += dg^T @ x,  dx += dg @ w_ih,  db_ih += sum of dg over rows.
 * The rows of x past their length take no part in dw_ih, whatever they hold
 * (NaN padding times a zero gradient would be NaN): the steps where every row
 * is active go in one product, the others one step at a time with those rows
 * of x zeroed in x_rows (B,I).
 *
 * In float64 (not naive) the sums over rows run in the backward loop's order
 * (rows descending for a forward direction, ascending for a reverse one), one
 * row after another (gemm_rows_acc), and each row of dx on its own, so a
 * sequence whose backward runs in time segments, last first, into the same
 * gradients gives the same bits (rnnx/checkpoint.py relies on it).  float32
 * keeps BLAS, whose grouping of rows is its own. */
static void input_gradients(const rnnx_blas* blas, int naive, int reverse, real* dx, real* dw_ih,
                            real* db_ih, const real* dg, const real* x, const real* w_ih,
                            const int64_t* lengths, real* x_rows, int T, int B, int I, int G)
{
    int full = T;  /* steps 0..full-1 have every row active */
    if (lengths)
        for (int b = 0; b < B; b++)
            full = lengths[b] < full ? (int)lengths[b] : full;
#ifdef RNNX_DOUBLE
    const int ordered = !naive;
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
            gemm(blas, naive, 'T', 'N', G, I, B, 1, dg + (size_t)(t) * B * G, G, x_rows, \
                 I, 1, dw_ih, I);                                                        \
    } while (0)
    if (ordered && !reverse)   /* descending rows: the padded tail first */
        for (int t = T - 1; t >= full; t--)
            RNNX_PADDED_STEP(t);
    if (ordered)
        gemm_rows_acc(G, I, full * B, !reverse, dg, G, x, I, dw_ih, I);     /* dw_ih += dg.T @ x */
    else
        gemm(blas, naive, 'T', 'N', G, I, full * B, 1, dg, G, x, I, 1, dw_ih, I);
    if (!ordered || reverse)
        for (int t = full; t < T; t++)
            RNNX_PADDED_STEP(t);
#undef RNNX_PADDED_STEP
    if (ordered)
        gemm_small_acc(T * B, I, G, dg, G, w_ih, I, dx, I);                 /* dx += dg @ w_ih */
    else
        gemm(blas, naive, 'N', 'N', T * B, I, G, 1, dg, G, w_ih, I, 1, dx, I);
    if (db_ih)
        column_sums(db_ih, dg, G, T * B, G, ordered && !reverse);
}

/* dw_hh[g0:g0+Gp] += dg[:, 0:Gp]^T @ h_prev and db_hh[g0:g0+Gp] += column sums,
 * with dg (N, row stride lddg) and h_prev (N,H) over all N = T*B rows; the row
 * order in float64 as in input_gradients. */
static void recurrent_gradients(const rnnx_blas* blas, int naive, int reverse, real* dw_hh,
                                real* db_hh, const real* dg, int lddg, const real* h_prev,
                                int N, int H, int g0, int Gp)
{
#ifdef RNNX_DOUBLE
    if (!naive) {
        gemm_rows_acc(Gp, H, N, !reverse, dg, lddg, h_prev, H,
                      dw_hh + (size_t)g0 * H, H);                        /* dw_hh += dg.T @ h_prev */
        if (db_hh)
            column_sums(db_hh + g0, dg, lddg, N, Gp, !reverse);
        return;
    }
#else
    (void)reverse;
#endif
    gemm(blas, naive, 'T', 'N', Gp, H, N, 1, dg, lddg, h_prev, H,
         1, dw_hh + (size_t)g0 * H, H);                                  /* dw_hh += dg.T @ h_prev */
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

/* ---------------------------------------------------------- activations --- */

#ifdef RNNX_DOUBLE

/* float64 activations, written like the float32 ones below so that the gate
 * loops vectorize (libm's exp and tanh are opaque calls): no branches, no
 * libm, no float-to-int conversion (the integer parts go through the bits of
 * a double, with 64-bit adds and shifts only); NaN in gives NaN out; within a
 * few ulp of the correctly rounded value (tests/test_kernels.py measures it). */

static inline double bits_to_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline uint64_t double_to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* 2^n for an integer-valued double n in [-1022, 1023]: n + 1.5*2^52 holds n in its
 * low bits, two's complement. */
static inline double exp2_integer(double n)
{
    const double magic = 6755399441055744.0;  /* 1.5 * 2^52 */
    const uint64_t low = double_to_bits(n + magic) - double_to_bits(magic);
    return bits_to_double((low + 1023u) << 52);
}

/* e^y for y <= 0: y = n ln2 + r, |r| <= ln2/2, e^y = 2^n e^r. */
static inline double exp_nonpositive(double y)
{
    const double magic = 6755399441055744.0;     /* x + magic rounds x to an integer */
    y = y < -746.0 ? -746.0 : y;                  /* e^-746 is 0 in double; keeps n >= -1077 */
    const double n = (y * 1.44269504088896338700 + magic) - magic;
    /* ln2 = hi + lo, hi with 32 trailing zero bits, so n * hi is exact */
    const double r = (y - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    /* e^r by its Taylor series to r^13: the remainder is below 2^-57 for |r| <= ln2/2 */
    double p = 1.0 / 6227020800.0;
    p = MADD(p, r, 1.0 / 479001600.0);
    p = MADD(p, r, 1.0 / 39916800.0);
    p = MADD(p, r, 1.0 / 3628800.0);
    p = MADD(p, r, 1.0 / 362880.0);
    p = MADD(p, r, 1.0 / 40320.0);
    p = MADD(p, r, 1.0 / 5040.0);
    p = MADD(p, r, 1.0 / 720.0);
    p = MADD(p, r, 1.0 / 120.0);
    p = MADD(p, r, 1.0 / 24.0);
    p = MADD(p, r, 1.0 / 6.0);
    p = MADD(p, r, 0.5);
    p = MADD(p, r, 1.0);
    p = MADD(p, r, 1.0);
    /* 2^n as two normal factors, so results down in the subnormal range round once */
    const double n1 = (n * 0.5 + magic) - magic, n2 = n - n1;
    return p * exp2_integer(n1) * exp2_integer(n2);
}

/* e^y - 1 for y <= 0, without the cancellation of exp(y) - 1 near 0. */
static inline double expm1_nonpositive(double y)
{
    /* Taylor series to y^14 for |y| < 0.35 (remainder below 2^-58 relative) */
    double p = 1.0 / 87178291200.0;
    p = MADD(p, y, 1.0 / 6227020800.0);
    p = MADD(p, y, 1.0 / 479001600.0);
    p = MADD(p, y, 1.0 / 39916800.0);
    p = MADD(p, y, 1.0 / 3628800.0);
    p = MADD(p, y, 1.0 / 362880.0);
    p = MADD(p, y, 1.0 / 40320.0);
    p = MADD(p, y, 1.0 / 5040.0);
    p = MADD(p, y, 1.0 / 720.0);
    p = MADD(p, y, 1.0 / 120.0);
    p = MADD(p, y, 1.0 / 24.0);
    p = MADD(p, y, 1.0 / 6.0);
    p = MADD(p, y, 0.5);
    p = MADD(p, y, 1.0);
    const double near0 = p * y;
    const double far = exp_nonpositive(y) - 1.0;
    return y > -0.35 ? near0 : far;
}

/* sigma(x) = 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) below, so e^-|x| never overflows */
static inline double sigmoid(double x)
{
    const double e = exp_nonpositive(-fabs(x));
    const double s = 1.0 / (1.0 + e);
    return x >= 0 ? s : e * s;
}

/* tanh|x| = -m/(2+m) with m = e^(-2|x|) - 1, sign restored */
static inline double tanh_act(double x)
{
    const double m = expm1_nonpositive(-2.0 * fabs(x));
    return copysign(-m / (2.0 + m), x);
}

#else

/* float32 activations written so the compiler can vectorize the gate loops
 * (libm's expf/tanhf are opaque calls to it): no branches, no libm, no
 * float-to-int conversion; NaN in gives NaN out; accurate to a few ulp over
 * the whole float range (tests/test_activations.py measures it). */

static inline float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* e^y for y <= 0: y = n ln2 + r, |r| <= ln2/2, e^y = 2^n e^r. */
static inline float exp_nonpositive(float y)
{
    const float magic = 12582912.0f;            /* 1.5 * 2^23: x + magic rounds x to an integer */
    y = y < -104.0f ? -104.0f : y;               /* e^-104 is 0 in float; keeps n >= -151; NaN passes */
    const float kf = y * 1.44269504088896341f + magic;
    const float n = kf - magic;
    uint32_t kbits;
    memcpy(&kbits, &kf, sizeof kbits);
    const int32_t ni = (int32_t)(kbits - 0x4B400000u);   /* n as an integer, from magic's low bits */
    const float r = (y - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;  /* ln2 hi + lo */
    /* e^r by its Taylor series to r^7: the remainder is below 2^-27 for |r| <= ln2/2 */
    float p = 1.0f / 5040;
    p = MADD(p, r, 1.0f / 720);
    p = MADD(p, r, 1.0f / 120);
    p = MADD(p, r, 1.0f / 24);
    p = MADD(p, r, 1.0f / 6);
    p = MADD(p, r, 0.5f);
    p = MADD(p, r, 1.0f);
    p = MADD(p, r, 1.0f);
    /* 2^n as two normal factors, so results down in the subnormal range round once, gradually */
    const int32_t n1 = ni / 2, n2 = ni - n1;
    return p * bits_to_float((uint32_t)(n1 + 127) << 23) * bits_to_float((uint32_t)(n2 + 127) << 23);
}

/* e^y - 1 for y <= 0, without the cancellation of exp(y) - 1 near 0. */
static inline float expm1_nonpositive(float y)
{
    /* Taylor series to y^8 for |y| < 0.35 (remainder below 2^-31 relative) */
    float p = 1.0f / 40320;
    p = MADD(p, y, 1.0f / 5040);
    p = MADD(p, y, 1.0f / 720);
    p = MADD(p, y, 1.0f / 120);
    p = MADD(p, y, 1.0f / 24);
    p = MADD(p, y, 1.0f / 6);
    p = MADD(p, y, 0.5f);
    p = MADD(p, y, 1.0f);
    const float near0 = p * y;
    const float far = exp_nonpositive(y) - 1.0f;
    return y > -0.35f ? near0 : far;
}

/* sigma(x) = 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) below, so e^-|x| never overflows */
static inline float sigmoid(float x)
{
    const float e = exp_nonpositive(-fabsf(x));
    const float s = 1.0f / (1.0f + e);
    return x >= 0 ? s : e * s;
}

/* tanh|x| = -m/(2+m) with m = e^(-2|x|) - 1, sign restored */
static inline float tanh_act(float x)
{
    const float m = expm1_nonpositive(-2.0f * fabsf(x));
    return copysignf(-m / (2.0f + m), x);
}

#endif

/* y[k] = f(x[k]) for the tests of the activations: 0 sigmoid, 1 tanh. */
static int activation(int which, const void* xv, void* yv, size_t n)
{
    const real* x = xv;
    real* y = yv;
    for (size_t k = 0; k < n; k++)
        y[k] = which == 0 ? sigmoid(x[k]) : tanh_act(x[k]);
    return RNNX_OK;
}

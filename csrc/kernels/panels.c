/*
 * kernels/panels.c: the packed per-step kernel: the recurrent product on W_hh
 * packed in panels of U units (layout.h), in tiles of MR rows (tile_rows,
 * panel_product), tiles across gates (gates_product) and one row against
 * several panels (panel_product_row).
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */

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

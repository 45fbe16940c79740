/*
 * kernels/gemm_packed.c: gemm_acc, rnnx's own GEMM for the hoisted products
 * (the input projection, dW_ih, dW_hh, dX): C (M,N) += op(A) @ op(B), all
 * row-major, op(A) (M,K), op(B) (K,N).
 *
 * BLIS-style: B is packed, a block of KC rows of k by NR columns at a time,
 * into a contiguous panel (KC,NR) that stays in L1 while a register tile of
 * MR rows x NR columns of C, loaded from C, adds the products of the block's
 * k one after another (gemm_micro), for every MR-row tile of an MC-row block;
 * A is read in place (MR rows of k, or MR contiguous columns for op(A) =
 * A^T), from L2.  Only the microkernel's shape (MR, NV) changes per ISA; the
 * cache blocks come from the cache sizes (gemm_block_sizes).
 *
 * Every element of C adds its K products one after another in order of k,
 * with vmadd, from the value C held: the same sum as gemm_small_acc's and
 * gemm_small_row's.  Storing an accumulator between KC blocks and loading it
 * back is exact, so the result depends only on K, never on M, the blocks,
 * where an element falls in a tile, or which thread computes it: a row
 * computed alone equals the row inside a big product, bit for bit, and the
 * blocks (MC x NC of C, fixed by the shape) may run on any threads.
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */
#ifdef RNNX_X86_TARGETS
#  include <cpuid.h>
#endif

/* The register tile: MR rows x NV vectors of C (NR = NV*VL columns), plus NV
 * vectors of the panel and a broadcast: 16 accumulators of 32 registers on
 * AVX-512, 12 of 16 on AVX2, SSE2 and NEON. */
enum {
    GEMM_NV = 2,
    GEMM_MR = VBYTES >= 64 ? 8 : 6,
    GEMM_MR_MOST = 8, /* the row counts compiled below: 1..8 */
    GEMM_NR = GEMM_NV * VL,
    /* the task's packed panel, on its stack: at most 32 KiB and 512 rows of k */
    GEMM_KC_MAX = 32768 / (GEMM_NR * (int)sizeof(real)) < 512
                      ? 32768 / (GEMM_NR * (int)sizeof(real)) : 512,
    /* fewer multiply-adds than this run on the calling thread alone */
    GEMM_SERIAL_BELOW = 1 << 18
};

typedef struct gemm_blocks {
    int kc; /* rows of k per packed panel: the panel (KC,NR) fills half of L1 */
    int mc; /* rows of C per block: A's (MC,KC) block fills a quarter of L2 */
    int nc; /* columns of C per block */
} gemm_blocks;

/* The size of this core's level-1 data or level-2 cache from CPUID's cache
 * leaves (4 on Intel, 0x8000001D on AMD: same layout), else fallback. */
static long cache_bytes(int level, long fallback)
{
#ifdef RNNX_X86_TARGETS
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx))
        return fallback;
    const unsigned leaf = ebx == 0x68747541u ? 0x8000001Du : 4u;  /* "Auth"enticAMD */
    for (unsigned sub = 0; sub < 8; sub++) {
        if (!__get_cpuid_count(leaf, sub, &eax, &ebx, &ecx, &edx) || (eax & 31u) == 0)
            break;
        const unsigned type = eax & 31u, lvl = (eax >> 5) & 7u;
        if ((int)lvl == level && (type == 1u || type == 3u))  /* data or unified */
            return (long)((ebx >> 22) + 1) * (((ebx >> 12) & 1023u) + 1) *
                   ((ebx & 4095u) + 1) * ((long)ecx + 1);
    }
#else
    (void)level;
#endif
    return fallback;
}

/* Cache blocks: from this CPU's caches for a product worth the CPUID calls,
 * else for 32 KiB of L1 and 1 MiB of L2.  They set the speed only: results
 * do not depend on them. */
static gemm_blocks gemm_block_sizes(double madds)
{
    const int ask = madds >= 4.0 * GEMM_SERIAL_BELOW;
    const long l1 = ask ? cache_bytes(1, 32768) : 32768;
    const long l2 = ask ? cache_bytes(2, 1048576) : 1048576;
    gemm_blocks b;
    b.kc = (int)(l1 / 2 / (GEMM_NR * (long)sizeof(real)));
    b.kc = b.kc > GEMM_KC_MAX ? GEMM_KC_MAX : b.kc < 16 ? 16 : b.kc;
    long mc = l2 / 4 / ((long)b.kc * (long)sizeof(real));
    mc = mc > 256 ? 256 : mc < GEMM_MR ? GEMM_MR : mc; /* past 256, fewer blocks to share */
    b.mc = (int)mc / GEMM_MR * GEMM_MR;
    b.nc = 8 * GEMM_NR;
    return b;
}

/* c (mr,NR) (row stride ldc) += a (mr rows, kc) @ panel (kc,NR), where row r
 * of a has its k-th element at a[r*rsa + k*csa]; mr <= MR, a constant in
 * each function below, so the tile's accumulators are registers. */
static ALWAYS_INLINE void gemm_micro(const int mr, int kc, const real* a, ptrdiff_t rsa,
                                     ptrdiff_t csa, const real* restrict panel, real* c,
                                     ptrdiff_t ldc)
{
    vec acc[GEMM_MR_MOST][GEMM_NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < GEMM_NV; v++)
            acc[r][v] = vload(c + r * ldc + v * VL);
    for (int k = 0; k < kc; k++) {
        const real* b = panel + (size_t)k * GEMM_NR;
        vec bv[GEMM_NV];
        for (int v = 0; v < GEMM_NV; v++)
            bv[v] = vload(b + v * VL);
        for (int r = 0; r < mr; r++) {
            const real ark = a[r * rsa + k * csa];
            for (int v = 0; v < GEMM_NV; v++)
                acc[r][v] = vmadd(ark, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < GEMM_NV; v++)
            vstore(c + r * ldc + v * VL, acc[r][v]);
}

/* One compiled tile per row count 1..8 (MR is at most 8) and layout of A:
 * op(A) = A, rows of k (rsa = lda, csa = 1), or op(A) = A^T, mr contiguous
 * reals per k (rsa = 1, csa = lda). */
typedef void (*gemm_tile_fn)(int kc, const real* a, int lda, const real* panel, real* c, int ldc);
#define RNNX_GEMM_TILES(m)                                                                   \
    static void gemm_rows_##m(int kc, const real* a, int lda, const real* panel, real* c,   \
                              int ldc)                                                       \
    {                                                                                        \
        gemm_micro(m, kc, a, lda, 1, panel, c, ldc);                                         \
    }                                                                                        \
    static void gemm_cols_##m(int kc, const real* a, int lda, const real* panel, real* c,   \
                              int ldc)                                                       \
    {                                                                                        \
        gemm_micro(m, kc, a, 1, lda, panel, c, ldc);                                         \
    }
RNNX_GEMM_TILES(1)
RNNX_GEMM_TILES(2)
RNNX_GEMM_TILES(3)
RNNX_GEMM_TILES(4)
RNNX_GEMM_TILES(5)
RNNX_GEMM_TILES(6)
RNNX_GEMM_TILES(7)
RNNX_GEMM_TILES(8)
#undef RNNX_GEMM_TILES
static const gemm_tile_fn gemm_rows_tile[9] = {NULL, gemm_rows_1, gemm_rows_2, gemm_rows_3,
                                               gemm_rows_4, gemm_rows_5, gemm_rows_6,
                                               gemm_rows_7, gemm_rows_8};
static const gemm_tile_fn gemm_cols_tile[9] = {NULL, gemm_cols_1, gemm_cols_2, gemm_cols_3,
                                               gemm_cols_4, gemm_cols_5, gemm_cols_6,
                                               gemm_cols_7, gemm_cols_8};

typedef struct gemm_job {
    char ta, tb;
    int M, N, K;
    const real* A;        /* op(A) (M,K): A (M,lda) if ta == 'N', else (K,lda) */
    const real* B;        /* op(B) (K,N): B (K,ldb) if tb == 'N', else (N,ldb) */
    const real* B_panels; /* op(B) packed by gemm_pack_b, or NULL: packed here */
    real* C;              /* (M,ldc), accumulated */
    int lda, ldb, ldc;
    gemm_blocks blocks;
    int col_blocks; /* blocks of NC columns per row of blocks */
} gemm_job;

/* panel (kc,NR) := op(B)[p0:p0+kc, j:j+nr], op(B) (K,N) read from B (row
 * stride ldb) as tb says; columns nr..NR-1 zero. */
static void gemm_pack_panel(char tb, const real* Bm, int ldb, int p0, int kc, int j, int nr,
                            real* restrict panel)
{
    if (tb == 'N') {
        for (int k = 0; k < kc; k++) {
            const real* b = Bm + (size_t)(p0 + k) * ldb + j;
            real* p = panel + (size_t)k * GEMM_NR;
            int q = 0;
            if (nr == GEMM_NR)
                for (; q < GEMM_NR; q += VL)
                    vstore(p + q, vload(b + q));
            for (; q < nr; q++)
                p[q] = b[q];
            for (; q < GEMM_NR; q++)
                p[q] = 0;
        }
        return;
    }
    for (int q = 0; q < GEMM_NR; q++) {
        const real* b = Bm + (size_t)(j + q) * ldb + p0;  /* row j+q of B, read along k */
        for (int k = 0; k < kc; k++)
            panel[(size_t)k * GEMM_NR + q] = q < nr ? b[k] : 0;
    }
}

/* packed (K*N) := op(B) (K,N) in column panels, for gemm_acc_packed: the
 * panel of columns j..j+w-1 (w = NR, or what is left at the end) is (K,w),
 * k-major, at packed + j*K.  Packing once serves every block of rows. */
static void gemm_pack_b(char tb, int K, int N, const real* Bm, int ldb, real* restrict packed)
{
    enum { K_CHUNK = 64 };  /* a transposed panel's chunk of k stays in L1 while it fills */
    for (int j = 0; j < N; j += GEMM_NR) {
        const int w = N - j < GEMM_NR ? N - j : GEMM_NR;
        real* p = packed + (size_t)j * K;
        if (tb == 'N') {
            for (int k = 0; k < K; k++)
                memcpy(p + (size_t)k * w, Bm + (size_t)k * ldb + j, (size_t)w * sizeof(real));
            continue;
        }
        for (int k0 = 0; k0 < K; k0 += K_CHUNK) {
            const int k1 = K - k0 < K_CHUNK ? K : k0 + K_CHUNK;
            for (int q = 0; q < w; q++) {
                const real* b = Bm + (size_t)(j + q) * ldb;  /* row j+q of B, along k */
                for (int k = k0; k < k1; k++)
                    p[(size_t)k * w + q] = b[k];
            }
        }
    }
}

/* The panel of op(B)[p0:p0+kc, j:j+nr] in the tile's layout (kc,NR): in
 * place where B comes packed and the panel is whole, else packed into
 * scratch. */
static const real* gemm_panel(const gemm_job* g, int p0, int kc, int j, int nr, real* scratch)
{
    if (!g->B_panels) {
        gemm_pack_panel(g->tb, g->B, g->ldb, p0, kc, j, nr, scratch);
        return scratch;
    }
    const real* p = g->B_panels + (size_t)j * g->K + (size_t)p0 * nr;
    if (nr == GEMM_NR)
        return p;
    gemm_pack_panel('N', p, nr, 0, kc, 0, nr, scratch);
    return scratch;
}

/* Ask for the next tile of C (rows rows <= MR, NR columns) while this one
 * computes: with a short K the tile's loads of C from memory would otherwise
 * stall it, rows ldc apart being a stride the prefetchers do not follow. */
static void gemm_prefetch_tile(const real* c, int rows, int ldc)
{
#ifdef RNNX_GNU_C
    rows = rows < GEMM_MR ? rows : GEMM_MR;
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < GEMM_NR; q += 64 / (int)sizeof(real))
            __builtin_prefetch(c + (size_t)r * ldc + q, 1);
#else
    (void)c, (void)rows, (void)ldc;
#endif
}

/* Block `task` of C: rows i0..i1-1, columns j0..j1-1, all of K.  A tile
 * past the last column (nr < NR) runs on a copy of its part of C, so every
 * element present adds the same products in the same order. */
static void gemm_block(void* ctx, int task)
{
    const gemm_job* g = (const gemm_job*)ctx;
    const gemm_blocks* bl = &g->blocks;
    const int i0 = task / g->col_blocks * bl->mc, j0 = task % g->col_blocks * bl->nc;
    const int i1 = g->M - i0 < bl->mc ? g->M : i0 + bl->mc;
    const int j1 = g->N - j0 < bl->nc ? g->N : j0 + bl->nc;
    const gemm_tile_fn* tiles = g->ta == 'N' ? gemm_rows_tile : gemm_cols_tile;
    real scratch[GEMM_KC_MAX * GEMM_NR];
    real edge[GEMM_MR * GEMM_NR];
    for (int p0 = 0; p0 < g->K; p0 += bl->kc) {
        const int kc = g->K - p0 < bl->kc ? g->K - p0 : bl->kc;
        for (int j = j0; j < j1; j += GEMM_NR) {
            const int nr = j1 - j < GEMM_NR ? j1 - j : GEMM_NR;
            const real* panel = gemm_panel(g, p0, kc, j, nr, scratch);
            for (int i = i0; i < i1; i += GEMM_MR) {
                const int mr = i1 - i < GEMM_MR ? i1 - i : GEMM_MR;
                const real* a = g->ta == 'N' ? g->A + (size_t)i * g->lda + p0
                                             : g->A + (size_t)p0 * g->lda + i;
                real* c = g->C + (size_t)i * g->ldc + j;
                gemm_prefetch_tile(c + (size_t)GEMM_MR * g->ldc, i1 - i - mr, g->ldc);
                if (nr == GEMM_NR) {
                    tiles[mr](kc, a, g->lda, panel, c, g->ldc);
                    continue;
                }
                for (int r = 0; r < mr; r++)
                    for (int q = 0; q < GEMM_NR; q++)
                        edge[r * GEMM_NR + q] = q < nr ? c[(size_t)r * g->ldc + q] : 0;
                tiles[mr](kc, a, g->lda, panel, edge, GEMM_NR);
                for (int r = 0; r < mr; r++)
                    for (int q = 0; q < nr; q++)
                        c[(size_t)r * g->ldc + q] = edge[r * GEMM_NR + q];
            }
        }
    }
}

/* Every block of g's C, on blas->parallel_for when there are threads and
 * the product is worth a handoff; the result is the same bits either way. */
static void gemm_run(const rnnx_blas* blas, gemm_job* g)
{
    const double madds = (double)g->M * g->N * g->K;
    g->blocks = gemm_block_sizes(madds);
    g->col_blocks = (g->N + g->blocks.nc - 1) / g->blocks.nc;
    const int tasks = (g->M + g->blocks.mc - 1) / g->blocks.mc * g->col_blocks;
    if (tasks > 1 && blas && blas->parallel_for && blas->n_threads > 1 &&
        madds >= GEMM_SERIAL_BELOW) {
        blas->parallel_for(blas->pool, tasks, gemm_block, g);
        return;
    }
    for (int t = 0; t < tasks; t++)
        gemm_block(g, t);
}

static gemm_job gemm_job_of(char ta, char tb, int M, int N, int K, const real* A, int lda,
                            const real* Bm, int ldb, const real* B_panels, real* C, int ldc)
{
    gemm_job g;
    g.ta = ta;
    g.tb = tb;
    g.M = M;
    g.N = N;
    g.K = K;
    g.A = A;
    g.B = Bm;
    g.B_panels = B_panels;
    g.C = C;
    g.lda = lda;
    g.ldb = ldb;
    g.ldc = ldc;
    return g;
}

/* C (M,N) += op(A) @ op(B), row-major; ta, tb 'N' or 'T'; B's panels
 * packed by each block as it goes. */
static void gemm_acc(const rnnx_blas* blas, char ta, char tb, int M, int N, int K,
                     const real* A, int lda, const real* Bm, int ldb, real* C, int ldc)
{
    if (M <= 0 || N <= 0 || K <= 0)
        return;
    if (M < GEMM_MR && ta == 'N' && tb == 'N') {  /* a few rows: B read in place, same sums */
        gemm_small_acc(M, N, K, A, lda, Bm, ldb, C, ldc);
        return;
    }
    gemm_job g = gemm_job_of(ta, tb, M, N, K, A, lda, Bm, ldb, NULL, C, ldc);
    gemm_run(blas, &g);
}

/* The same on B packed first, once, into packed (K*N) (gemm_pack_b), where
 * many blocks of rows share B: the input projection's W_ih^T over T*B rows. */
static void gemm_acc_packed(const rnnx_blas* blas, char ta, char tb, int M, int N, int K,
                            const real* A, int lda, const real* Bm, int ldb, real* packed,
                            real* C, int ldc)
{
    if (M <= 0 || N <= 0 || K <= 0)
        return;
    /* Up to a few blocks of rows, B packed panel by panel as it is used (from L1)
     * beats B packed whole, written out and read back. */
    if (M <= 4 * gemm_block_sizes((double)M * N * K).mc) {
        gemm_acc(blas, ta, tb, M, N, K, A, lda, Bm, ldb, C, ldc);
        return;
    }
    gemm_pack_b(tb, K, N, Bm, ldb, packed);
    gemm_job g = gemm_job_of(ta, 'N', M, N, K, A, lda, NULL, 0, packed, C, ldc);
    gemm_run(blas, &g);
}

/* kernels.h's gemm hook, for tests and benchmarks (rnnx_gemm_acc): C (M,N)
 * += op(A) @ op(B) by the implementation impl names (enum rnnx_gemm_impl);
 * work (K*N) for RNNX_GEMM_PACKED_B. */
static void gemm_hook(const rnnx_blas* blas, int impl, char ta, char tb, int M, int N, int K,
                      const void* A, int lda, const void* Bm, int ldb, void* C, int ldc,
                      void* work)
{
    const real *a = (const real*)A, *b = (const real*)Bm;
    real* c = (real*)C;
    if (impl == RNNX_GEMM_PACKED)
        gemm_acc(blas, ta, tb, M, N, K, a, lda, b, ldb, c, ldc);
    else if (impl == RNNX_GEMM_PACKED_B)
        gemm_acc_packed(blas, ta, tb, M, N, K, a, lda, b, ldb, (real*)work, c, ldc);
    else if (impl == RNNX_GEMM_SMALL)  /* 'N', 'N' only: rnnx_gemm_acc checks */
        gemm_small_acc(M, N, K, a, lda, b, ldb, c, ldc);
    else
        gemm(blas, impl == RNNX_GEMM_NAIVE, ta, tb, M, N, K, 1, a, lda, b, ldb, 1, c, ldc);
}

/* kernels.h's block query (rnnx_gemm_blocks): MR, NR, KC, MC, NC of a large product. */
static void gemm_blocks_hook(int* blocks)
{
    const gemm_blocks b = gemm_block_sizes(1e30);
    blocks[0] = GEMM_MR;
    blocks[1] = GEMM_NR;
    blocks[2] = b.kc;
    blocks[3] = b.mc;
    blocks[4] = b.nc;
}

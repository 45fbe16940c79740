/*
 * common.c: what every cell's sequence driver shares: the BLAS boundary, the
 * naive and small gemm kernels, the input projection, the per-step recurrent
 * product and the gradient GEMMs after the backward loop.
 *
 * Not compiled on its own: kernels_f32.c and kernels_f64.c include it once per
 * element type (see real.h), so every function here is static.
 */
#include <string.h>

#include "rnnx.h"
#include "kernels.h"

/* The hot loops are compiled for AVX-512, AVX2 and the baseline, chosen once
 * at load time by the CPU (GCC function multiversioning), so one build runs
 * everywhere and fast where it can. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__linux__)
#define RNNX_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RNNX_HOT
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
                sum += a * b;
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

/* C (M,N) += A (M,K) @ Bm (K,N), row-major: the small-size kernel for the
 * per-step recurrent product, where a BLAS call costs more than the arithmetic.
 *
 * A tile of 4 rows x 32 columns of C stays in registers while k runs over K,
 * so each row of Bm loaded serves four rows of C.  Every element of C, in a
 * tile or in the edges, adds its K products one after another in order of k,
 * so its value does not depend on M or on where the tiles fall. */
enum { SMALL_ROWS = 4, SMALL_COLS = 32 };

RNNX_HOT
static void gemm_small_acc(int M, int N, int K, const real* restrict A, int lda,
                           const real* restrict Bm, int ldb, real* restrict C, int ldc)
{
    int i = 0;
    for (; i + SMALL_ROWS <= M; i += SMALL_ROWS) {
        const real* a = A + (size_t)i * lda;
        real* c = C + (size_t)i * ldc;
        int j = 0;
        for (; j + SMALL_COLS <= N; j += SMALL_COLS) {
            real acc[SMALL_ROWS][SMALL_COLS];
            for (int r = 0; r < SMALL_ROWS; r++)
                for (int q = 0; q < SMALL_COLS; q++)
                    acc[r][q] = c[(size_t)r * ldc + j + q];
            for (int k = 0; k < K; k++) {
                const real* b = Bm + (size_t)k * ldb + j;
                for (int r = 0; r < SMALL_ROWS; r++) {
                    const real ark = a[(size_t)r * lda + k];
                    for (int q = 0; q < SMALL_COLS; q++)
                        acc[r][q] += ark * b[q];
                }
            }
            for (int r = 0; r < SMALL_ROWS; r++)
                for (int q = 0; q < SMALL_COLS; q++)
                    c[(size_t)r * ldc + j + q] = acc[r][q];
        }
        for (int r = 0; r < SMALL_ROWS; r++)  /* the columns past the last tile */
            for (int k = 0; k < K; k++) {
                const real ark = a[(size_t)r * lda + k];
                const real* b = Bm + (size_t)k * ldb;
                for (int q = j; q < N; q++)
                    c[(size_t)r * ldc + q] += ark * b[q];
            }
    }
    for (; i < M; i++) {  /* the rows past the last tile, one row at a time, in wider
                             tiles: more accumulators to hide the FMA latency */
        const real* a = A + (size_t)i * lda;
        real* c = C + (size_t)i * ldc;
        int j = 0;
        for (; j + 4 * SMALL_COLS <= N; j += 4 * SMALL_COLS) {
            real acc[4 * SMALL_COLS];
            for (int q = 0; q < 4 * SMALL_COLS; q++)
                acc[q] = c[j + q];
            for (int k = 0; k < K; k++) {
                const real ak = a[k];
                const real* b = Bm + (size_t)k * ldb + j;
                for (int q = 0; q < 4 * SMALL_COLS; q++)
                    acc[q] += ak * b[q];
            }
            for (int q = 0; q < 4 * SMALL_COLS; q++)
                c[j + q] = acc[q];
        }
        for (int k = 0; k < K; k++) {
            const real ak = a[k];
            const real* b = Bm + (size_t)k * ldb;
            for (int q = j; q < N; q++)
                c[q] += ak * b[q];
        }
    }
}

/* ------------------------------------------------- the recurrent product --- */

/* Which kernel computes the per-step products h @ W_hh^T and dG @ W_hh. */
typedef struct recur {
    const rnnx_blas* blas;
    int naive;            /* naive gemm for everything (RNNX_PATH_NAIVE) */
    int small;            /* gemm_small_acc for the per-step products */
    int B, H, G;
    const real* w_hh;     /* (G,H) */
    const real* w_hh_t;   /* (H,G) = w_hh^T, when small */
} recur;

/* The small kernel wins while the recurrent weights stay in cache and the
 * batch is small; past that BLAS's blocking wins.  Decided by shape only, never
 * by T, so a sequence cut in chunks takes the same path as the whole. */
static int small_kernel_wins(int B, int H, int G)
{
    return (size_t)G * H <= 512u * 128u && B <= 16;
}

/* The small forward kernel reads W_hh^T (H,G): the caller's ready one if
 * given, else w_hh_t is filled with it.  The backward reads W_hh as it is and
 * passes NULL for both. */
static void recur_init(recur* r, const rnnx_blas* blas, int path, int B, int H, int G,
                       const real* w_hh, const real* ready_w_hh_t, real* w_hh_t)
{
    r->blas = blas;
    r->naive = (path == RNNX_PATH_NAIVE);
    r->small = (path == RNNX_PATH_SMALL) || (path == RNNX_PATH_AUTO && small_kernel_wins(B, H, G));
    r->B = B;
    r->H = H;
    r->G = G;
    r->w_hh = w_hh;
    r->w_hh_t = ready_w_hh_t ? ready_w_hh_t : w_hh_t;
    if (r->small && !ready_w_hh_t && w_hh_t)
        for (int g = 0; g < G; g++)
            for (int k = 0; k < H; k++)
                w_hh_t[(size_t)k * G + g] = w_hh[(size_t)g * H + k];
}

/* gates[:, 0:Gp] (B,Gp, row stride ldg) += h (B,H) @ w_hh[g0:g0+Gp, :]^T */
static void recur_forward(const recur* r, real* gates, int ldg, const real* h, int g0, int Gp)
{
    if (r->small)
        gemm_small_acc(r->B, Gp, r->H, h, r->H, r->w_hh_t + g0, r->G, gates, ldg);
    else
        gemm(r->blas, r->naive, 'N', 'T', r->B, Gp, r->H, 1, h, r->H,
             r->w_hh + (size_t)g0 * r->H, r->H, 1, gates, ldg);
}

/* dh (B,H) += dg (B,Gp, row stride lddg) @ w_hh[g0:g0+Gp, :] */
static void recur_backward(const recur* r, real* dh, const real* dg, int lddg, int g0, int Gp)
{
    if (r->small)
        gemm_small_acc(r->B, r->H, Gp, dg, lddg, r->w_hh + (size_t)g0 * r->H, r->H, dh, r->H);
    else
        gemm(r->blas, r->naive, 'N', 'N', r->B, r->H, Gp, 1, dg, lddg,
             r->w_hh + (size_t)g0 * r->H, r->H, 1, dh, r->H);
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

/* ------------------------------------------------------- around the loop --- */

/* The forward scratch, carved from one buffer of rnnx_forward_work_size(). */
typedef struct forward_work {
    real* w_hh_t;   /* (H,G) W_hh^T for the small kernel */
    real* w_ih_t;   /* (I,G) W_ih^T for the float64 input projection */
    real* h_ping;   /* (2,B,H) inference: the states of two consecutive steps */
    real* c_ping;   /* (2,B,H) inference, LSTM: the same for c */
    real* hh;       /* (B,G) GRU: W_hh h_prev + b_hh of one step */
    real* scratch;  /* (B,H) inference: LSTM's tanh(c), GRU reset before's r * h_prev */
    real* slab;     /* (T,B,G) pre-activations, where the cache does not hold them */
} forward_work;

static forward_work split_forward_work(real* work, int B, int I, int H, int G)
{
    const size_t BH = (size_t)B * H;
    forward_work w;
    w.w_hh_t = work;
    w.w_ih_t = w.w_hh_t + (size_t)H * G;
    w.h_ping = w.w_ih_t + (size_t)I * G;
    w.c_ping = w.h_ping + 2 * BH;
    w.hh = w.c_ping + 2 * BH;
    w.scratch = w.hh + (size_t)B * G;
    w.slab = w.scratch + BH;
    return w;
}

/* slab (N,G) := x (N,I) @ w_ih^T + b1 + b2, for all N = T*B rows at once.
 * Either bias may be NULL.
 *
 * In float64 every row is computed on its own, by gemm_small_acc over
 * w_ih^T (I,G) (the caller's ready one, or w_ih_t filled here), so a row's
 * result does not depend on how many rows the call has: a sequence cut into
 * chunks, or streamed one step at a time, gives the whole sequence's numbers
 * bit for bit.  BLAS's blocked GEMM does not promise that (its rounding can
 * change with the number of rows), so float32 keeps it for speed, except when
 * the caller hands in w_ih^T: a stream's few rows per call are faster without
 * a BLAS call. */
static void input_projection(const rnnx_blas* blas, int naive, real* slab, const real* x,
                             const real* w_ih, const real* ready_w_ih_t, real* w_ih_t,
                             const real* b1, const real* b2, int N, int I, int G)
{
    for (int n = 0; n < N; n++) {
        real* row = slab + (size_t)n * G;
        for (int g = 0; g < G; g++)
            row[g] = (b1 ? b1[g] : 0) + (b2 ? b2[g] : 0);
    }
#ifdef RNNX_DOUBLE
    const int rowwise = !naive;
#else
    const int rowwise = !naive && ready_w_ih_t;
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

#ifdef RNNX_DOUBLE
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
 * into a stack panel first. */
enum { ROWS_KBLOCK = 64, ROWS_TR = 4, ROWS_TC = 8 };

/* One tile: c (ROWS_TR, ROWS_TC, row stride ldc) += sum over K rows of a[r] * b[q], rows
 * stepping by sa and sb (negative when descending). */
RNNX_HOT
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
                acc[r][q] += a[r] * b[q];
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
                acc += ak[r] * bk[q];
            c[(size_t)r * ldc + q] = acc;
        }
}

RNNX_HOT
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
#endif

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

/* After the backward loop, with dg (N,G) the gradient of the gate
 * pre-activations of all N = T*B rows:
 *   dw_ih += dg^T @ x,  dx += dg @ w_ih,  db_ih += sum of dg over rows.
 * In float64 (not naive) the sums over rows run in the backward loop's order
 * (rows descending for a forward direction, ascending for a reverse one) and
 * each row of dx on its own, so a sequence whose backward runs in time
 * segments, last first, into the same gradients gives the same bits. */
static void input_gradients(const rnnx_blas* blas, int naive, int reverse, real* dx, real* dw_ih,
                            real* db_ih, const real* dg, const real* x, const real* w_ih,
                            int N, int I, int G)
{
    (void)reverse;  /* float32 keeps BLAS, whose row order is its own */
#ifdef RNNX_DOUBLE
    if (!naive) {
        gemm_rows_acc(G, I, N, !reverse, dg, G, x, I, dw_ih, I);       /* dw_ih += dg.T @ x */
        gemm_small_acc(N, I, G, dg, G, w_ih, I, dx, I);                 /* dx += dg @ w_ih */
        if (db_ih)
            column_sums(db_ih, dg, G, N, G, !reverse);
        return;
    }
#endif
    gemm(blas, naive, 'T', 'N', G, I, N, 1, dg, G, x, I, 1, dw_ih, I);    /* dw_ih += dg.T @ x */
    gemm(blas, naive, 'N', 'N', N, I, G, 1, dg, G, w_ih, I, 1, dx, I);    /* dx += dg @ w_ih */
    if (db_ih)
        column_sums(db_ih, dg, G, N, G, 0);
}

/* dw_hh[g0:g0+Gp] += dg[:, 0:Gp]^T @ h_prev and db_hh[g0:g0+Gp] += column sums,
 * with dg (N, row stride lddg) and h_prev (N,H) over all N = T*B rows; row
 * order as in input_gradients. */
static void recurrent_gradients(const rnnx_blas* blas, int naive, int reverse, real* dw_hh,
                                real* db_hh, const real* dg, int lddg, const real* h_prev,
                                int N, int H, int g0, int Gp)
{
    (void)reverse;
#ifdef RNNX_DOUBLE
    if (!naive) {
        gemm_rows_acc(Gp, H, N, !reverse, dg, lddg, h_prev, H,
                      dw_hh + (size_t)g0 * H, H);                /* dw_hh += dg.T @ h_prev */
        if (db_hh)
            column_sums(db_hh + g0, dg, lddg, N, Gp, !reverse);
        return;
    }
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

static inline real sigmoid(real x)
{
    return 1 / (1 + exp(-x));
}

static inline real tanh_act(real x)
{
    return tanh(x);
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
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^n as two normal factors, so results down in the subnormal range round once, gradually */
    const int32_t n1 = ni / 2, n2 = ni - n1;
    return p * bits_to_float((uint32_t)(n1 + 127) << 23) * bits_to_float((uint32_t)(n2 + 127) << 23);
}

/* e^y - 1 for y <= 0, without the cancellation of exp(y) - 1 near 0. */
static inline float expm1_nonpositive(float y)
{
    /* Taylor series to y^8 for |y| < 0.35 (remainder below 2^-31 relative) */
    float p = 1.0f / 40320;
    p = p * y + 1.0f / 5040;
    p = p * y + 1.0f / 720;
    p = p * y + 1.0f / 120;
    p = p * y + 1.0f / 24;
    p = p * y + 1.0f / 6;
    p = p * y + 0.5f;
    p = p * y + 1.0f;
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
int RNNX_SFX(rnnx_activation)(int which, const real* x, real* y, size_t n)
{
    for (size_t k = 0; k < n; k++)
        y[k] = which == 0 ? sigmoid(x[k]) : tanh_act(x[k]);
    return RNNX_OK;
}

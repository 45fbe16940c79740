/*
 * projection_plan.c: the cost model that chooses, per shape, where the
 * default path computes the input projection x_t @ W_ih^T (rnnx.h, enum
 * rnnx_projection):
 *
 *   HOISTED  X (T*B,I) @ W_ih^T for every row at once by rnnx's blocked GEMM
 *            into a (T,B,G) slab, then per step h_{t-1} @ W_hh^T (K = P)
 *            added to the slab's row and the gates;
 *   FUSED    per step [x_t | h_{t-1}] @ [W_ih | W_hh]^T (K = I + P) from the
 *            biases, no slab.
 *
 * Both compute every element as bias, then the I products of x in k order,
 * then the P products of h, with the same multiply-add: the two give the same
 * bits, so the choice changes the speed only (tests/test_projection_plan.py).
 *
 * What decides: the fused steps read W_ih once per step, where the GEMM reads
 * it once per block of rows at its (higher) rate, but HOISTED writes and reads
 * back T*B*G pre-activations and packs the products in two passes.  At a batch
 * too small for the step kernel's row tiles the weights' bytes set the step's
 * speed, and then a weight set past L2 is read from L3 every step.
 */
#include "compiler.h"
#include "layout.h"
#include "projection_plan.h"
#include "rnnx.h"

/* The constants, fitted (least squares on the log of each time and of their
 * ratio) to 24 shapes timed both ways by benchmarks/projection.py, float32, one
 * thread, on the 2-core AMD EPYC Zen 4 (AVX-512, 1 MiB L2 per core) while five
 * other builds and tests ran (load average 5.5: each process had about 40% of
 * a core, so the times are about twice an idle machine's; the load falls on both
 * choices alike, and the choice depends on the ratios only).  The fit agrees
 * with the faster measured choice at 20 of the 24 shapes; the four others were
 * within 15% of even (benchmarks/projection.py prints both beside the model).
 *   TILE_FMA_NS   multiply-adds per ns of the step kernel on rows in whole
 *                 tiles of TILE_ROWS (AVX-512's 4-row gate tiles)
 *   ROW_FMA_NS    the same for each row past the last whole tile: the row
 *                 kernel reads every weight once per row
 *   L3_BYTES_NS   the bytes per ns at which such a row reads weights that do
 *                 not fit L2 (1 MiB): from L3, every step
 *   GEMM_FMA_NS   rnnx's GEMM on the hoisted projection, packing included
 *   SLAB_NS       per float32 slab element: written by the GEMM, read back by
 *                 a step (the fit's largest single term past the products)
 *   PACK_NS       per weight element packed per call; COPY_NS per element of
 *                 [x_t | h_{t-1}] copied (both estimated, not fitted: small)
 * float64 halves the rates that count lanes (the FMA rates) and doubles the
 * bytes.  The fixed cost of a step and the gates' elementwise work are the same
 * either way and the fit put them near 0, so they are left out. */
#define TILE_FMA_NS 26.4
#define TILE_ROWS 4
#define ROW_FMA_NS 16.1
#define L3_BYTES_NS 57.0
#define GEMM_FMA_NS 26.6
#define SLAB_NS 1.31
#define PACK_NS 0.5
#define COPY_NS 0.1
#define L2_BYTES (1024.0 * 1024.0)
/* What each thread past the first adds to a split product: 2 threads ran the forced
 * LSTM points (1,512,512,25) and (16,128,64,200) 1.34x to 1.6x faster than one, both
 * choices alike (benchmarks/projection.py --threads 2, load average 2 to 4). */
#define THREAD_GAIN 0.4
/* driver/forward.c's STEP_SERIAL_BELOW and kernels/gemm_packed.c's GEMM_SERIAL_BELOW:
 * a step or a GEMM with fewer multiply-adds runs on the calling thread alone */
#define STEP_SERIAL_BELOW 32768.0
#define GEMM_SERIAL_BELOW 262144.0

/* The speed-up of a product of madds multiply-adds on threads, serial below `below`. */
static double speedup(double madds, double below, int threads)
{
    return madds < below ? 1.0 : 1.0 + (threads - 1) * THREAD_GAIN;
}

/* The step kernel's time in ns for B rows, G gate columns of H units and depth K, on
 * threads. */
static double step_ns(int B, double G, double H, double K, double size, int threads)
{
    const double lanes = size == 8 ? 0.5 : 1.0;
    const int tiled = B / TILE_ROWS * TILE_ROWS;
    double row = G * K / (ROW_FMA_NS * lanes);  /* one row alone */
    if (G * K * size > L2_BYTES && G * K * size / L3_BYTES_NS > row)
        row = G * K * size / L3_BYTES_NS;
    return (tiled * G * K / (TILE_FMA_NS * lanes) + (B - tiled) * row) /
           speedup((double)B * G * H, STEP_SERIAL_BELOW, threads);
}

int rnnx_projection_plan(int cell, int T, int B, int I, int H, int P, int threads, int dtype,
                         rnnx_projection_costs* out)
{
    if (!out)
        return RNNX_ENULL;
    const rnnx_cell_desc* d = rnnx_cell_find(cell);
    if (!d)
        return RNNX_ECELL;
    if (T < 0 || B < 0 || I < 0 || H < 1 || P < 0 || (P > 0 && P >= H) ||
        (dtype != RNNX_FLOAT32 && dtype != RNNX_FLOAT64))
        return RNNX_EINVAL;
    const int n = threads < 1 ? 1 : threads;
    const double size = dtype == RNNX_FLOAT64 ? 8 : 4, lanes = size == 8 ? 0.5 : 1.0;
    const double G = (double)d->gates * H, S = P > 0 ? P : H, rows = (double)T * B;
    /* a GRU never (r multiplies W_hn h + b_hn, or h itself), nor an inference call whose
       slab has no room for the fused weights (layout.h); training never fuses */
    out->fusable = cell != RNNX_GRU && cell != RNNX_GRU_RESET_BEFORE &&
                   rnnx_fused_fits(d, T, B, I, H, P, 0);
    out->gemm_ns = rows * G * I / (GEMM_FMA_NS * lanes) /
                   speedup(rows * G * I, GEMM_SERIAL_BELOW, n);
    out->slab_ns = rows * G * SLAB_NS * size / 4;
    out->pack_hoisted_ns = G * I * PACK_NS;
    out->steps_hoisted_ns = T * step_ns(B, G, H, S, size, n);
    out->steps_fused_ns = T * step_ns(B, G, H, I + S, size, n);
    out->copies_ns = rows * (I + S) * COPY_NS * size / 4;
    out->pack_fused_ns = G * (I + S) * PACK_NS;
    out->hoisted_ns = out->gemm_ns + out->slab_ns + out->pack_hoisted_ns + out->steps_hoisted_ns;
    out->fused_ns = out->steps_fused_ns + out->copies_ns + out->pack_fused_ns;
    out->choice = out->fusable && out->fused_ns < out->hoisted_ns ? RNNX_PROJECTION_FUSED
                                                                   : RNNX_PROJECTION_HOISTED;
    return RNNX_OK;
}

/* The choice where the call leaves it to the library (RNNX_PROJECTION_AUTO):
 * the environment variable RNNX_PROJECTION, "hoisted" or "fused", read once,
 * forces one for the whole process (benchmarks, and a check that a model's
 * numbers do not depend on it); unset or anything else: AUTO. */
int rnnx_projection_forced(void)
{
    static int forced = -1;  /* a benign race: every thread reads the same value */
    if (forced < 0) {
        const char* v = getenv("RNNX_PROJECTION");
        forced = !v ? RNNX_PROJECTION_AUTO
                 : !strcmp(v, "hoisted") ? RNNX_PROJECTION_HOISTED
                 : !strcmp(v, "fused") ? RNNX_PROJECTION_FUSED : RNNX_PROJECTION_AUTO;
    }
    return forced;
}

/* ------------------------------------------------------------- counts --- */

static long long counts[2];

void rnnx_projection_count(int choice)
{
    long long* c = &counts[choice == RNNX_PROJECTION_FUSED];
#ifdef RNNX_PTHREADS
    __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
#else
    ++*c;  /* the serial build runs one call at a time */
#endif
}

void rnnx_projection_counts(long long out[2])
{
    for (int i = 0; i < 2; i++) {
#ifdef RNNX_PTHREADS
        out[i] = __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
#else
        out[i] = counts[i];
#endif
    }
}

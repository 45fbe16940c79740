/*
 * driver/wavefront.c: rnnx_forward_stack (rnnx.h), the inference forward of
 * a stack of one-direction layers, layer l + 1 reading layer l's output.
 *
 * Layer by layer, a step of a small layer is too little work to share
 * between threads (forward.c runs a step under STEP_SPLIT_BELOW multiply-adds
 * on one thread, and a split step pays a join per phase).  A stack has other
 * parallel work: layer l + 1 can run its chunk c - 1 of time steps while
 * layer l runs chunk c, a wavefront.  So the sequence is cut into chunks
 * (CHUNKS_PER_LAYER per layer: the pipeline's fill and drain, L - 1 chunk
 * times, stay small beside the whole), and wave w runs, as one job of
 * parallel tasks, layer l's chunk w - l for every layer that has one; each
 * task is one rnnx_forward call on its thread alone, from the state the
 * layer's previous chunk left in its h_n (c_n).  Only where every thread
 * gets a layer (n_threads <= L) or the steps are too small to split: with
 * more threads than layers, splitting each step over all of them does more.
 *
 * The numbers: the chunks are fixed by the shapes alone, and every thread count
 * runs the same rnnx_forward calls on them (with more threads than layers,
 * layer by layer, each chunk's steps split between the threads), and a
 * step's numbers never depend on the thread count (forward.c), so the
 * results do not either.  A chunk's input projection is a product of its
 * rows only: rnnx's GEMM (every path but float32 RNNX_PATH_BLAS without
 * row_exact, layout.h's rnnx_projection_rowwise) gives the whole sequence's
 * numbers, so the stack equals layer-by-layer rnnx_forward calls bit for bit;
 * a float32 one through BLAS may round differently.
 *
 * rnnx_forward_side_by_side runs independent passes (a bidirectional layer's
 * two directions) the same way: one task each, on one thread each, where the
 * threads are no more than the passes or the steps too small to split; and
 * as each pass's numbers never depend on the thread count, neither do its.
 *
 * Compiled on its own (the rest of driver/ is #included by kernels_body.c
 * once per dtype and instruction set): it only cuts the work into calls of
 * rnnx_forward, whatever the dtype and ISA.
 */
#include "compiler.h"
#include "layout.h"
#include "rnnx.h"

enum {
    CHUNKS_PER_LAYER = 4,
    STACK_MAX = 64            /* deeper stacks run layer by layer */
};

/* A chunk has at least this many multiply-adds per layer (T*B*G*(I+H) / chunks),
 * so that a call's own cost (packing W_hh, W_ih^T; a few microseconds) stays
 * small beside it: a small stack is cut into fewer chunks, or none. */
#define CHUNK_MIN_MADDS 2097152.0

/* As forward.c's STEP_SERIAL_BELOW: a step of fewer multiply-adds (B*G*H) is
 * not split between threads. */
#define STEP_SPLIT_BELOW 32768.0

typedef struct wave {
    const rnnx_forward_args* layers;
    rnnx_blas serial;         /* a chunk runs on its task's thread alone */
    int T, chunk, chunks;
    int w, lo;                /* the wave, and its first layer: task i runs layer lo + i */
    int status[STACK_MAX];    /* each layer's first failure (a layer's chunks run in turn) */
} wave;

static size_t elem_size(int dtype)
{
    return dtype == RNNX_FLOAT64 ? sizeof(double) : sizeof(float);
}

/* Layer l's args for its chunk c: time steps [c*chunk, min(T, (c+1)*chunk)). */
static rnnx_forward_args chunk_args(const wave* v, int l, int c)
{
    rnnx_forward_args a = v->layers[l];
    const int t0 = c * v->chunk, t1 = t0 + v->chunk < v->T ? t0 + v->chunk : v->T;
    const size_t elem = elem_size(a.dtype);
    a.T = t1 - t0;
    a.x = (const char*)a.x + (size_t)t0 * a.B * a.input_size * elem;
    a.y = (char*)a.y + (size_t)t0 * a.B * a.ldy * elem;
    if (c > 0) {              /* from the state chunk c - 1 left */
        a.h0 = a.h_n;
        a.c0 = a.c_n;
    }
    return a;
}

static void wave_task(void* ctx, int i)
{
    wave* v = ctx;
    const int l = v->lo + i;
    if (v->status[l] != RNNX_OK)
        return;
    const rnnx_forward_args a = chunk_args(v, l, v->w - l);
    v->status[l] = rnnx_forward(&v->serial, &a);
}

/* What rnnx_forward does not check: one dtype, T and B; inference, full
 * lengths, time forward; layer l + 1's x is layer l's y, rows packed. */
static int check_stack(int L, const rnnx_forward_args* layers)
{
    if (!layers)
        return RNNX_ENULL;
    if (L < 1)
        return RNNX_EINVAL;
    for (int l = 0; l < L; l++) {
        const rnnx_forward_args* a = &layers[l];
        if (a->cache || a->lengths || a->reverse || a->T < 1 || a->dtype != layers[0].dtype ||
            a->T != layers[0].T || a->B != layers[0].B)
            return RNNX_EINVAL;
        if (l > 0 && (a->x != layers[l - 1].y || layers[l - 1].ldy != a->input_size))
            return RNNX_EINVAL;
    }
    return RNNX_OK;
}

/* Whether a step of layer a is split between threads (forward.c's step_tasks). */
static int step_splits(const rnnx_forward_args* a)
{
    return (double)a->B * rnnx_gate_count(a->cell) * a->H >= STEP_SPLIT_BELOW;
}

int rnnx_forward_stack(const rnnx_blas* blas, int L, const rnnx_forward_args* layers)
{
    int status = check_stack(L, layers);
    if (status != RNNX_OK)
        return status;
    const int threads = blas && blas->parallel_for ? blas->n_threads : 1;
    int splits = 0;
    for (int l = 0; l < L; l++)
        splits |= step_splits(&layers[l]);
    wave v;
    v.layers = layers;
    v.T = layers[0].T;
    double madds = 0;          /* per layer, the least */
    for (int l = 0; l < L; l++) {
        const rnnx_forward_args* a = &layers[l];
        const double m = (double)a->T * a->B * rnnx_gate_count(a->cell) * a->H * (a->input_size + a->H);
        madds = l == 0 || m < madds ? m : madds;
    }
    int want = CHUNKS_PER_LAYER * L < v.T ? CHUNKS_PER_LAYER * L : v.T;
    if (want > madds / CHUNK_MIN_MADDS)
        want = madds / CHUNK_MIN_MADDS >= 1 ? (int)(madds / CHUNK_MIN_MADDS) : 1;
    v.chunk = L > 1 ? (v.T + want - 1) / want : v.T;   /* one layer: one chunk */
    v.chunks = (v.T + v.chunk - 1) / v.chunk;
    if (threads <= 1 || v.chunks < 2 || L > STACK_MAX || (threads > L && splits)) {
        for (int l = 0; l < L; l++) {  /* layer by layer, each step on every thread */
            const rnnx_forward_args* a = &layers[l];
            /* a row-by-row projection: the whole layer in one call gives the chunks' numbers */
            const int whole = rnnx_projection_rowwise(a->dtype, a->path, a->row_exact);
            for (int c = 0; c < (whole ? 1 : v.chunks); c++) {
                const rnnx_forward_args part = whole ? *a : chunk_args(&v, l, c);
                status = rnnx_forward(blas, &part);
                if (status != RNNX_OK)
                    return status;
            }
        }
        return RNNX_OK;
    }
    v.serial = *blas;
    v.serial.parallel_for = NULL;
    v.serial.n_threads = 1;
    for (int l = 0; l < L; l++)
        v.status[l] = RNNX_OK;
    for (v.w = 0; v.w < v.chunks + L - 1; v.w++) {
        v.lo = v.w - v.chunks + 1 > 0 ? v.w - v.chunks + 1 : 0;
        const int hi = v.w < L - 1 ? v.w : L - 1;
        blas->parallel_for(blas->pool, hi - v.lo + 1, wave_task, &v);
    }
    for (int l = 0; l < L; l++)
        if (v.status[l] != RNNX_OK)
            return v.status[l];
    return RNNX_OK;
}

/* ----------------------------------------------------- passes side by side --- */

typedef struct side {
    const rnnx_forward_args* passes;
    rnnx_blas serial;
    int status[STACK_MAX];
} side;

static void side_task(void* ctx, int i)
{
    side* v = ctx;
    v->status[i] = rnnx_forward(&v->serial, &v->passes[i]);
}

int rnnx_forward_side_by_side(const rnnx_blas* blas, int n, const rnnx_forward_args* passes)
{
    if (!passes)
        return RNNX_ENULL;
    if (n < 1)
        return RNNX_EINVAL;
    for (int i = 0; i < n; i++)
        if (passes[i].cache)
            return RNNX_EINVAL;
    const int threads = blas && blas->parallel_for ? blas->n_threads : 1;
    int splits = 0;
    for (int i = 0; i < n; i++)
        splits |= step_splits(&passes[i]);
    if (threads <= 1 || n < 2 || n > STACK_MAX || (threads > n && splits)) {
        for (int i = 0; i < n; i++) {  /* in turn, each step on every thread */
            const int status = rnnx_forward(blas, &passes[i]);
            if (status != RNNX_OK)
                return status;
        }
        return RNNX_OK;
    }
    side v;
    v.passes = passes;
    v.serial = *blas;
    v.serial.parallel_for = NULL;
    v.serial.n_threads = 1;
    blas->parallel_for(blas->pool, n, side_task, &v);
    for (int i = 0; i < n; i++)
        if (v.status[i] != RNNX_OK)
            return v.status[i];
    return RNNX_OK;
}

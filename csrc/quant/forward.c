/*
 * quant/forward.c: the quantized forward driver, one layer and direction,
 * T steps (quant.h).  Portable C, compiled once: only the products run
 * per-ISA kernels (qdot_<isa>.c), whose sums are the same bits everywhere,
 * and every float operation around them is here, in one fixed order.
 *
 *   slab (T*B,G) = X-part + b_ih              all steps at once, before the loop
 *   loop t:  hq = quantize(h_{t-1})           (B rows)
 *            per block of 16 units (a task):  the G/H gate panels of W_hh on hq,
 *            + b_hh, the cell's elementwise step, h_t, c_t, y_t in place
 *            LSTM with projection: mq = quantize(m_t), then per block of 16 of
 *            the P units: h_t = W_hr m_t
 *            GRU reset before: r, z first, then rhq = quantize(r * h_{t-1}) and
 *            the n panels on it
 * A task owns its units' columns of every buffer, so the partition (fixed by
 * the shape) and the thread count change no number.
 */
#include <math.h>
#include <string.h>

#include "qkernels.h"  /* first: compiler.h (restrict, inline where the compiler lacks them) */
#include "qact.h"

/* The elementwise work (quantizing rows, biases, gates) is built for several vector widths
 * and the widest this CPU runs is picked at load (GCC's target_clones).  Every float
 * operation is the same IEEE operation whatever the width (no FMA: -ffp-contract=off; the
 * only reduction, max|x|, is exact in any order), so the clones give the same bits. */
#if defined(RNNX_X86_TARGETS) && defined(__linux__) && defined(__GNUC__) && \
    !defined(__clang__) && __GNUC__ >= 8
#  define QCLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define QCLONES
#endif

/* A packed matrix (pack.c's layout). */
typedef struct qmat {
    const unsigned char* base;
    int qtype, n, cols, per_gate, groups;
    size_t panel_bytes;
    qdot_i8_fn dot_i8;      /* the kernels of the call, found once */
    qdot_bf16_fn dot_bf16;
} qmat;

static qmat qmat_of(int qtype, const void* packed, int n, int cols)
{
    qmat m = {(const unsigned char*)packed, qtype, n, cols, (n + QR - 1) / QR,
              qgroups(qtype, cols), qpanel_bytes(qtype, cols), NULL, NULL};
    if (qtype == RNNX_QINT8)
        m.dot_i8 = rnnx_qdot_i8();
    else
        m.dot_bf16 = rnnx_qdot_bf16();
    return m;
}

/* Quantized activation rows: int8 (with a scale per row) or bfloat16, each
 * row padded with zeros to the panels' groups of columns. */
typedef struct qrows {
    unsigned char* data;
    float* scale;
    size_t row_bytes;
} qrows;

static size_t qrow_bytes(int qtype, int cols)
{
    return (size_t)qgroups(qtype, cols) * 4;
}

/* Row i of X := quantized v (n,): int8 symmetric, s = max|v| / 127,
 * q = rint(v * (127 / max|v|)) (as the weights, pack.c), or bfloat16. */
QCLONES static void quantize_row(int qtype, const float* v, int n, const qrows* X, size_t i)
{
    unsigned char* row = X->data + i * X->row_bytes;
    memset(row, 0, X->row_bytes);
    if (qtype == RNNX_QBFLOAT16) {
        rnnx_to_bfloat16((size_t)n, v, (uint16_t*)row);
        return;
    }
    /* max|v| over the bits: for floats that are not NaN, |a| < |b| exactly when
     * (bits(a) & 0x7fffffff) < (bits(b) & 0x7fffffff); a NaN counts as 0, as
     * the comparison max skips it.  An integer max vectorizes (a float max
     * that skips NaN does not). */
    uint32_t mbits = 0, nan = 0;
    for (int k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, v + k, sizeof u);
        u &= 0x7fffffffu;
        nan |= (uint32_t)(u > 0x7f800000u);
        u &= (uint32_t)0 - (uint32_t)(u <= 0x7f800000u);  /* a mask: GCC 12 vectorizes it */
        mbits = mbits > u ? mbits : u;
    }
    float amax;
    memcpy(&amax, &mbits, sizeof amax);
    /* a row holding a NaN: every q 0 and the scale NaN, so the row's products are NaN
     * and the NaN goes on as in float32 (quant_reference.quantize_rows: the same) */
    const float inv = amax > 0.0f && !nan ? 127.0f / amax : 0.0f;
    X->scale[i] = nan ? NAN : amax / 127.0f;
    int8_t* q = (int8_t*)row;
    for (int k = 0; k < n; k++) {
        /* rint for |v * inv| <= 127 (+ 1.5*2^23 rounds to an integer, to nearest even) */
        float r = (v[k] * inv + 12582912.0f) - 12582912.0f;
        r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r == r ? r : 0.0f;
        q[k] = (int8_t)r;
    }
}

enum { CHUNK = 32, PANELS = 4 };  /* rows and panels per kernel call: int32 sums on the stack */

/* out (np,M,16) := the products of panels p, p + step, .. (np <= PANELS) of W
 * with rows row0.. row0+M-1 of X: int8 (float)sum * (s_x * s_w), bfloat16 the
 * kernel's sums.  One kernel call covers the np panels, so every activation
 * load serves np panels (step: the panels of one block's gates, or 1). */
QCLONES static void panels_product(const qmat* W, int p, int np, int step, const qrows* X,
                                   size_t row0, int M, float* out)
{
    const unsigned char* panel = W->base + (size_t)p * W->panel_bytes;
    const size_t pstride = (size_t)step * W->panel_bytes;
    if (W->qtype == RNNX_QBFLOAT16) {
        W->dot_bf16((const uint16_t*)panel, pstride, np, W->groups,
                    (const uint16_t*)(X->data + row0 * X->row_bytes), X->row_bytes / 2, M, out);
        return;
    }
    int32_t sums[PANELS * CHUNK * QR];
    for (int m0 = 0; m0 < M; m0 += CHUNK) {
        const int mc = M - m0 < CHUNK ? M - m0 : CHUNK;
        W->dot_i8((const int8_t*)panel, pstride, np, W->groups,
                  (const int8_t*)(X->data + (row0 + m0) * X->row_bytes), X->row_bytes, mc, sums);
        for (int j = 0; j < np; j++) {
            float wscale[QR];
            memcpy(wscale, panel + j * pstride + (size_t)W->groups * QGROUP_BYTES + 64,
                   sizeof wscale);
            for (int m = 0; m < mc; m++) {
                const float sx = X->scale[row0 + m0 + m];
                const int32_t* s = sums + ((size_t)j * mc + m) * QR;
                float* o = out + ((size_t)j * M + m0 + m) * QR;
                for (int r = 0; r < QR; r++)
                    o[r] = (float)s[r] * (sx * wscale[r]);
            }
        }
    }
}

/* --------------------------------------------------------------- the call --- */

typedef struct qcall {
    const rnnx_qforward_args* a;
    int G, gates, Hh, blocks, t;
    qmat w_ih, w_hh, w_hr;
    qrows xq, hq;
    float *slab, *h, *c, *m, *z, *gh;
} qcall;

static int row_active(const int64_t* lengths, int t, int b)
{
    return lengths == NULL || t < lengths[b];
}

/* The units of block u, clipped to n: [u*16, block_end). */
static int block_end(int u, int n)
{
    return (u + 1) * QR < n ? (u + 1) * QR : n;
}

/* dst[r] := sums[r] + bias[r] (bias NULL: + 0), r < n; dst may be sums. */
static inline void add_bias(float* dst, const float* sums, const float* bias, int n)
{
    for (int r = 0; r < n; r++)
        dst[r] = sums[r] + (bias ? bias[r] : 0.0f);
}

/* Input projection, task = (PANELS consecutive panels of W_ih, chunk of 64
 * rows of X). */
enum { SLAB_ROWS = 64 };
static int slab_groups(const qcall* q)
{
    return (q->gates * q->w_ih.per_gate + PANELS - 1) / PANELS;
}

QCLONES static void slab_task(void* ctx, int task)
{
    const qcall* q = (const qcall*)ctx;
    const rnnx_qforward_args* a = q->a;
    const int panels = q->gates * q->w_ih.per_gate, TB = a->T * a->B, groups = slab_groups(q);
    const int p0 = (task % groups) * PANELS, r0 = (task / groups) * SLAB_ROWS;
    const int np = panels - p0 < PANELS ? panels - p0 : PANELS;
    const int M = TB - r0 < SLAB_ROWS ? TB - r0 : SLAB_ROWS;
    float out[PANELS * SLAB_ROWS * QR];
    panels_product(&q->w_ih, p0, np, 1, &q->xq, (size_t)r0, M, out);
    for (int j = 0; j < np; j++) {
        const int p = p0 + j, g = p / q->w_ih.per_gate, j0 = (p % q->w_ih.per_gate) * QR;
        const int n = block_end(j0 / QR, a->H) - j0;
        for (int m = 0; m < M; m++)
            add_bias(q->slab + (size_t)(r0 + m) * q->G + g * a->H + j0,
                     out + ((size_t)j * M + m) * QR, a->b_ih ? a->b_ih + g * a->H + j0 : NULL,
                     n);
    }
}

/* The recurrent sums of gates g0..g1-1 of block u on rows of X, + b_hh, into
 * gh[u][g] (B,16). */
static float* block_sums(const qcall* q, int u, int g)
{
    return q->gh + ((size_t)u * q->gates + g) * (size_t)q->a->B * QR;
}

QCLONES static void recurrent_sums(const qcall* q, int u, int g0, int g1, const qrows* X)
{
    const rnnx_qforward_args* a = q->a;
    const int n = block_end(u, a->H) - u * QR;
    /* gh[u][g0..g1-1] is (g1-g0, B, 16): one call for the block's gates */
    panels_product(&q->w_hh, g0 * q->w_hh.per_gate + u, g1 - g0, q->w_hh.per_gate, X, 0, a->B,
                   block_sums(q, u, g0));
    for (int g = g0; g < g1; g++) {
        float* out = block_sums(q, u, g);
        for (int b = 0; b < a->B; b++)  /* + 0 without a bias, as the slab's */
            add_bias(out + b * QR, out + b * QR, a->b_hh ? a->b_hh + g * a->H + u * QR : NULL, n);
    }
}

static float* y_row(const qcall* q, int b)
{
    return q->a->y + ((ptrdiff_t)q->t * q->a->B + b) * q->a->ldy;
}

/* pre[r] := x[r] + sums[r], r < n: a gate's two parts (the bias of each in it). */
static void add_parts(float* restrict pre, const float* restrict x, const float* restrict sums,
                      int n)
{
    for (int r = 0; r < n; r++)
        pre[r] = x[r] + sums[r];
}

/* One step of block u: every cell but the reset-before GRU's second phase.
 * Each row's 16 units go through the activations as arrays, which vectorize. */
QCLONES static void step_task(void* ctx, int u)
{
    const qcall* q = (const qcall*)ctx;
    const rnnx_qforward_args* a = q->a;
    const int H = a->H, B = a->B, t = q->t, j0 = u * QR, n = block_end(u, H) - j0;
    const int cell = a->cell, before = cell == RNNX_GRU_RESET_BEFORE, proj = a->proj > 0;
    recurrent_sums(q, u, 0, before ? 2 : q->gates, &q->hq);
    float pre[4][QR], tc[QR];
    for (int b = 0; b < B; b++) {
        if (!row_active(a->lengths, t, b)) {
            if (!before && !proj)  /* else the second phase writes y */
                memset(y_row(q, b) + j0, 0, (size_t)n * sizeof(float));
            continue;
        }
        const float* x = q->slab + ((size_t)t * B + b) * q->G + j0;
        float* h = q->h + (size_t)b * q->Hh + j0;
        float* y = y_row(q, b) + j0;
        add_parts(pre[0], x, block_sums(q, u, 0) + b * QR, n);
        if (cell == RNNX_RNN_TANH || cell == RNNX_RNN_RELU) {
            if (cell == RNNX_RNN_TANH)
                qtanh_n(pre[0], n);
            else
                for (int r = 0; r < n; r++)
                    pre[0][r] = pre[0][r] > 0.0f ? pre[0][r] : 0.0f;
            memcpy(h, pre[0], (size_t)n * sizeof(float));
            memcpy(y, pre[0], (size_t)n * sizeof(float));
            continue;
        }
        add_parts(pre[1], x + H, block_sums(q, u, 1) + b * QR, n);
        qsigmoid_n(pre[0], n);
        qsigmoid_n(pre[1], n);
        if (cell == RNNX_LSTM) {
            float* c = q->c + (size_t)b * H + j0;
            add_parts(pre[2], x + 2 * H, block_sums(q, u, 2) + b * QR, n);
            add_parts(pre[3], x + 3 * H, block_sums(q, u, 3) + b * QR, n);
            qtanh_n(pre[2], n);
            qsigmoid_n(pre[3], n);
            for (int r = 0; r < n; r++)  /* c = f * c_prev + i * g */
                c[r] = tc[r] = pre[1][r] * c[r] + pre[0][r] * pre[2][r];
            qtanh_n(tc, n);
            float* m = proj ? q->m + (size_t)b * H + j0 : h;
            for (int r = 0; r < n; r++)  /* m = o * tanh(c) */
                m[r] = pre[3][r] * tc[r];
            if (!proj)
                memcpy(y, h, (size_t)n * sizeof(float));
            continue;
        }
        if (before) {
            for (int r = 0; r < n; r++) {
                q->m[(size_t)b * H + j0 + r] = pre[0][r] * h[r];  /* r * h_{t-1}, W_hn's input */
                q->z[(size_t)b * H + j0 + r] = pre[1][r];
            }
            continue;
        }
        const float* hn = block_sums(q, u, 2) + b * QR;
        for (int r = 0; r < n; r++)  /* n = tanh(x_n + r * (W_hn h + b_hn)) */
            pre[2][r] = x[2 * H + r] + pre[0][r] * hn[r];
        qtanh_n(pre[2], n);
        for (int r = 0; r < n; r++)  /* h = (1 - z) * n + z * h_prev */
            h[r] = y[r] = (1.0f - pre[1][r]) * pre[2][r] + pre[1][r] * h[r];
    }
}

/* GRU reset before, second phase of block u: n on quantized r * h_{t-1}. */
QCLONES static void gru_before_task(void* ctx, int u)
{
    const qcall* q = (const qcall*)ctx;
    const rnnx_qforward_args* a = q->a;
    const int H = a->H, B = a->B, t = q->t, j0 = u * QR, n = block_end(u, H) - j0;
    recurrent_sums(q, u, 2, 3, &q->hq);
    float pre[QR];
    for (int b = 0; b < B; b++) {
        float* y = y_row(q, b) + j0;
        if (!row_active(a->lengths, t, b)) {
            memset(y, 0, (size_t)n * sizeof(float));
            continue;
        }
        add_parts(pre, q->slab + ((size_t)t * B + b) * q->G + 2 * H + j0,
                  block_sums(q, u, 2) + b * QR, n);
        qtanh_n(pre, n);
        float* h = q->h + (size_t)b * H + j0;
        const float* z = q->z + (size_t)b * H + j0;
        for (int r = 0; r < n; r++)
            h[r] = y[r] = (1.0f - z[r]) * pre[r] + z[r] * h[r];
    }
}

/* LSTM projection of block u of the P units: h_t = W_hr m_t (no bias). */
QCLONES static void proj_task(void* ctx, int u)
{
    const qcall* q = (const qcall*)ctx;
    const rnnx_qforward_args* a = q->a;
    const int P = a->proj, B = a->B, j1 = block_end(u, P);
    float* out = block_sums(q, u, 0);
    panels_product(&q->w_hr, u, 1, 1, &q->hq, 0, B, out);
    for (int b = 0; b < B; b++) {
        float* y = y_row(q, b);
        const int on = row_active(a->lengths, q->t, b);
        for (int j = u * QR; j < j1; j++) {
            if (on)
                q->h[(size_t)b * P + j] = out[b * QR + j - u * QR];
            y[j] = on ? q->h[(size_t)b * P + j] : 0.0f;
        }
    }
}

static void run_tasks(const rnnx_blas* blas, int n, rnnx_task_fn fn, void* ctx)
{
    if (blas && blas->parallel_for && blas->n_threads > 1 && n > 1) {
        blas->parallel_for(blas->pool, n, fn, ctx);
        return;
    }
    for (int i = 0; i < n; i++)
        fn(ctx, i);
}

/* ---------------------------------------------------------- the work area --- */

typedef struct qwork {
    size_t slab, xq, xs, hq, hs, h, c, m, z, gh, total;
} qwork;

static size_t up64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static qwork work_layout(int cell, int qtype, int T, int B, int I, int H, int P)
{
    const int gates = rnnx_gate_count(cell);  /* 1, 3 or 4 */
    const int Hh = P > 0 ? P : H, widest = H > Hh ? H : Hh;
    const size_t TB = (size_t)T * B, blocks = (size_t)(H + QR - 1) / QR;
    qwork w;
    size_t at = 0;
    w.slab = at, at += up64(TB * (size_t)gates * H * 4);
    w.xq = at, at += up64(TB * qrow_bytes(qtype, I));
    w.xs = at, at += up64(TB * 4);
    w.hq = at, at += up64((size_t)B * qrow_bytes(qtype, widest));
    w.hs = at, at += up64((size_t)B * 4);
    w.h = at, at += up64((size_t)B * Hh * 4);
    w.c = at, at += up64((size_t)B * H * 4);
    w.m = at, at += up64((size_t)B * H * 4);
    w.z = at, at += up64((size_t)B * H * 4);
    w.gh = at, at += up64(blocks * gates * B * QR * 4);
    w.total = at;
    return w;
}

static int check(const rnnx_qforward_args* a)
{
    if (!a)
        return RNNX_ENULL;
    if (rnnx_gate_count(a->cell) == 0)
        return RNNX_ECELL;
    if ((a->qtype != RNNX_QINT8 && a->qtype != RNNX_QBFLOAT16) || a->T < 0 || a->B < 0 ||
        a->input_size < 1 || a->H < 1 || a->input_size > RNNX_QMAX_COLS ||
        a->H > RNNX_QMAX_COLS)
        return RNNX_EINVAL;
    if (a->proj < 0 || a->proj >= a->H || (a->proj > 0 && a->cell != RNNX_LSTM))
        return RNNX_EPROJ;
    const int Hh = a->proj > 0 ? a->proj : a->H;
    if ((size_t)a->T * (size_t)a->B > (size_t)INT32_MAX / 4)
        return RNNX_ESIZE;
    if (!a->w_ih || !a->w_hh || (a->proj > 0 && !a->w_hr) || !a->work)
        return RNNX_ENULL;
    if (a->T > 0 && a->B > 0 && (!a->x || !a->y))
        return RNNX_ENULL;
    if (a->T > 0 && a->B > 0 && a->ldy < Hh)
        return RNNX_EINVAL;
    for (int b = 0; a->lengths && b < a->B; b++)
        if (a->lengths[b] < 0 || a->lengths[b] > a->T)
            return RNNX_EINVAL;
    return RNNX_OK;
}

size_t rnnx_qforward_work_size(int cell, int qtype, int T, int B, int input_size, int H,
                               int proj)
{
    if (rnnx_gate_count(cell) == 0 || T < 0 || B < 0 || input_size < 1 || H < 1 || proj < 0)
        return 0;
    return work_layout(cell, qtype, T, B, input_size, H, proj).total;
}

int rnnx_qforward(const rnnx_blas* blas, const rnnx_qforward_args* a)
{
    const int status = check(a);
    if (status != RNNX_OK)
        return status;
    const int T = a->T, B = a->B, I = a->input_size, H = a->H, P = a->proj;
    const int gates = rnnx_gate_count(a->cell), G = gates * H, Hh = P > 0 ? P : H;
    const qwork w = work_layout(a->cell, a->qtype, T, B, I, H, P);
    unsigned char* base = (unsigned char*)a->work;
    qcall q;
    q.a = a, q.G = G, q.gates = gates, q.Hh = Hh, q.blocks = (H + QR - 1) / QR, q.t = 0;
    q.w_ih = qmat_of(a->qtype, a->w_ih, H, I);
    q.w_hh = qmat_of(a->qtype, a->w_hh, H, Hh);
    q.w_hr = qmat_of(a->qtype, P > 0 ? a->w_hr : a->w_hh, P > 0 ? P : H, H);
    q.xq.data = base + w.xq, q.xq.scale = (float*)(base + w.xs), q.xq.row_bytes = qrow_bytes(a->qtype, I);
    q.hq.data = base + w.hq, q.hq.scale = (float*)(base + w.hs);
    q.slab = (float*)(base + w.slab), q.h = (float*)(base + w.h), q.c = (float*)(base + w.c);
    q.m = (float*)(base + w.m), q.z = (float*)(base + w.z), q.gh = (float*)(base + w.gh);
    memset(q.m, 0, (size_t)B * H * sizeof(float));

    if (a->h0)
        memcpy(q.h, a->h0, (size_t)B * Hh * sizeof(float));
    else
        memset(q.h, 0, (size_t)B * Hh * sizeof(float));
    if (a->cell == RNNX_LSTM && a->c0)
        memcpy(q.c, a->c0, (size_t)B * H * sizeof(float));
    else
        memset(q.c, 0, (size_t)B * H * sizeof(float));

    if (T > 0 && B > 0) {
        for (size_t r = 0; r < (size_t)T * B; r++)
            quantize_row(a->qtype, a->x + r * I, I, &q.xq, r);
        const int chunks = (T * B + SLAB_ROWS - 1) / SLAB_ROWS;
        run_tasks(blas, slab_groups(&q) * chunks, slab_task, &q);
    }
    for (int i = 0; i < T && B > 0; i++) {
        q.t = a->reverse ? T - 1 - i : i;
        q.hq.row_bytes = qrow_bytes(a->qtype, Hh);
        for (int b = 0; b < B; b++)
            quantize_row(a->qtype, q.h + (size_t)b * Hh, Hh, &q.hq, (size_t)b);
        run_tasks(blas, q.blocks, step_task, &q);
        if (P > 0 || a->cell == RNNX_GRU_RESET_BEFORE) {
            /* m_t (LSTM projection) or r * h_{t-1} (GRU reset before), quantized */
            q.hq.row_bytes = qrow_bytes(a->qtype, H);
            for (int b = 0; b < B; b++)
                quantize_row(a->qtype, q.m + (size_t)b * H, H, &q.hq, (size_t)b);
            if (P > 0)
                run_tasks(blas, (P + QR - 1) / QR, proj_task, &q);
            else
                run_tasks(blas, q.blocks, gru_before_task, &q);
        }
    }
    if (a->h_n)
        memcpy(a->h_n, q.h, (size_t)B * Hh * sizeof(float));
    if (a->cell == RNNX_LSTM && a->c_n)
        memcpy(a->c_n, q.c, (size_t)B * H * sizeof(float));
    return RNNX_OK;
}

/*
 * driver/step.h: what the cells and the sequence driver share about one time
 * step: the time and row helpers, the layout of the states cache, the forward
 * and backward step structs a cell's elementwise work reads, and carry_row.
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */

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
    int B, H, G, t;
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
    real* m;                  /* (B,H) LSTM with a projection: o * tanh(c), the input of W_hr */
    const struct cell_params* cp;  /* the cell's own parameters (csrc/cells/plan.h) */
} step;

/* The elementwise work of a step on rows r0..r1-1 and units j0..j1-1. */
typedef void (*step_fn)(const step* s, int r0, int r1, int j0, int j1);

/* What one backward time step touches. */
typedef struct bstep {
    int B, H, G, t;
    int P;                    /* the width of h: proj_size with a projection, else H */
    const int64_t* lengths;   /* (B,) or NULL */
    real* dg;                 /* (B,G) OUT gradient of the pre-activations, input side */
    real* dgh;                /* (B,G) OUT the same on the W_hh side (GRU reset after) */
    real* dh;                 /* (B,P) IN gradient at h_t, OUT the part at h_prev not through W_hh */
    real* dc;                 /* (B,H) LSTM: the same for c */
    real* drh;                /* (B,H) IN GRU reset before: gradient at r * h_prev */
    real* dm;                 /* (B,H) IN LSTM with a projection: gradient at m = o * tanh(c) */
    real* dhs;                /* (B,P) OUT LSTM with a projection: this step's dh, kept for dW_hr */
    const real* gates;        /* (B,G) IN activations */
    const real* h;            /* (B,P) IN the step's output state */
    const real* h_prev;       /* (B,P) IN */
    const real* c_prev;       /* (B,H) IN, LSTM */
    const real* aux;          /* (B,H) IN see rnnx_cell_desc.aux_in_cache */
    const struct cell_params* cp;  /* the cell's own parameters (csrc/cells/plan.h) */
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

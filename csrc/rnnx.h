/*
 * rnnx.h: the public interface of the rnnx C core.
 *
 * C99, no Python.  One recurrent layer, one direction, one whole sequence per
 * call.  Time-major row-major layout: x is (T,B,I), y is (T,B,H) with a row
 * stride, states are (B,H).  Gates are packed in PyTorch's order:
 *
 *   cell            G     gate order
 *   RNN tanh/relu   H     -
 *   LSTM            4H    i, f, g, o
 *   GRU             3H    r, z, n
 *
 * An LSTM may have a projection (PyTorch's proj_size, 0 < P < H):
 * h_t = W_hr (o * tanh(c_t)), so h, h0, h_n, y and the input of W_hh are P
 * wide (W_hh is (4H,P), W_hr (P,H), no bias) while c stays (B,H).  proj = 0 is
 * the plain cell, and a zeroed struct has it.
 *
 * Pointers are typed void so one struct serves float32 and float64; `dtype`
 * says which.  The core never allocates, prints or exits: the caller hands in
 * every buffer (sizes from rnnx_*_size) and gets a status code back.
 */
#ifndef RNNX_H
#define RNNX_H

#include <stddef.h>
#include <stdint.h>

#include "rnnx_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fortran BLAS gemm, as exported by scipy.linalg.cython_blas (column-major). */
typedef void (*rnnx_sgemm_fn)(char* transa, char* transb, int* m, int* n, int* k,
                              float* alpha, float* a, int* lda, float* b, int* ldb,
                              float* beta, float* c, int* ldc);
typedef void (*rnnx_dgemm_fn)(char* transa, char* transb, int* m, int* n, int* k,
                              double* alpha, double* a, int* lda, double* b, int* ldb,
                              double* beta, double* c, int* ldc);

/* A parallel-for: run task(ctx, i) for every i in [0, n_tasks), on any
 * threads, and return when all have returned.  The tasks of one call write
 * disjoint memory; the core never calls it from inside a task. */
typedef void (*rnnx_task_fn)(void* ctx, int task);
typedef void (*rnnx_parallel_fn)(void* pool, int n_tasks, rnnx_task_fn task, void* ctx);

/* What the core is given to compute with: the BLAS for the big hoisted
 * products (a NULL pointer means the naive C gemm) and, optionally, threads
 * for the per-step recurrent loop.  A zero-initialized struct is valid: naive
 * gemm, one thread.  The per-step products never go through BLAS on the
 * default path, so a threaded BLAS never runs inside the loop. */
typedef struct rnnx_blas {
    rnnx_sgemm_fn sgemm;
    rnnx_dgemm_fn dgemm;
    rnnx_parallel_fn parallel_for;  /* NULL: every step runs on the calling thread */
    void* pool;                     /* handed back to parallel_for */
    int n_threads;                  /* how many tasks a step may be cut into; <= 1: serial */
} rnnx_blas;

enum rnnx_cell {
    RNNX_RNN_TANH = 0,
    RNNX_RNN_RELU = 1,
    RNNX_LSTM = 2,
    RNNX_GRU = 3,              /* reset after the recurrent product (PyTorch, cuDNN) */
    RNNX_GRU_RESET_BEFORE = 4  /* reset before it (Cho et al. 2014, ONNX default) */
};

enum rnnx_dtype { RNNX_FLOAT32 = 0, RNNX_FLOAT64 = 1 };

/* How the matrix products are computed.  BLAS and NAIVE exist so the tests
 * can check the default path against two independent ones. */
enum rnnx_path {
    RNNX_PATH_AUTO = 0,   /* the same as SMALL: own kernel per step, BLAS for the hoisted GEMMs */
    RNNX_PATH_BLAS = 1,   /* BLAS for every product, gates in a separate pass (the old path) */
    RNNX_PATH_SMALL = 2,  /* the core's own packed kernel, fused with the gates (AUTO picks it) */
    RNNX_PATH_NAIVE = 3   /* naive C gemm for everything: the algorithmic reference */
};

/* Where the input projection x_t @ W_ih^T of the default path is computed
 * (rnnx_forward_args.projection, rnnx_projection_plan). */
enum rnnx_projection {
    RNNX_PROJECTION_AUTO = 0,     /* as rnnx_projection_plan chooses for the shape */
    RNNX_PROJECTION_HOISTED = 1,  /* for all T*B rows at once by rnnx's GEMM, into a (T,B,G) slab */
    RNNX_PROJECTION_FUSED = 2     /* per step, [x_t | h_{t-1}] @ packed [W_ih | W_hh]: no slab */
};

enum rnnx_status {
    RNNX_OK = 0,
    RNNX_EINVAL = 1,      /* a dimension, cell, dtype or stride is out of range */
    RNNX_ENULL = 2,       /* a required pointer is NULL */
    RNNX_ECELL = 3,       /* unknown cell code */
    RNNX_ESIZE = 4,       /* T*B, G or a buffer size does not fit the index types */
    RNNX_EISA = 5,        /* the instruction set asked for is not built in or not on this CPU */
    RNNX_EPROJ = 6,       /* proj is < 0, >= H, or > 0 for a cell other than LSTM */
    RNNX_EPEEPHOLE = 7    /* peepholes (w_peep) given for a cell other than LSTM */
};

/* The options a cell may take (rnnx_cell_info.options, a bit set). */
enum rnnx_cell_option {
    RNNX_OPTION_PROJ = 1,     /* a projection h = W_hr (o * tanh(c)), proj_size P < H */
    RNNX_OPTION_PEEPHOLE = 2  /* peepholes P (3H,): Pi, Pf, Po (see rnnx_forward_args.w_peep) */
};

/* What a cell is: the core's table of cells, one entry per enum rnnx_cell code. */
typedef struct rnnx_cell_info {
    int cell;                   /* enum rnnx_cell */
    const char* name;           /* "rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before" */
    int gates;                  /* G = gates * H rows of W_ih, W_hh */
    const char* gate_order;     /* e.g. "i,f,g,o" */
    int states;                 /* 1 (h) or 2 (h, c) */
    const char* state_names[2]; /* "h", then "c" or NULL */
    int options;                /* enum rnnx_cell_option bits */
} rnnx_cell_info;

/* One parameter of one layer and direction: rows x cols, cols 0 for a vector. */
typedef struct rnnx_param_shape {
    const char* name;  /* PyTorch's name less _l{k}: weight_ih, weight_hh, bias_ih, bias_hh,
                          weight_hr (projection), weight_peephole (peepholes) */
    int64_t rows, cols;
} rnnx_param_shape;

#define RNNX_MAX_PARAMS 6


typedef struct rnnx_forward_args {
    int cell, dtype, path;
    int T, B;
    int input_size;          /* I; not named I, which <complex.h> defines as a macro */
    int H;
    int reverse;             /* process t = T-1 .. 0 */
    const int64_t* lengths;  /* (B,) IN, 0 <= lengths[b] <= T, or NULL: every row has T steps;
                                a row of length 0 runs no step: y 0, h_n = h0 (c_n = c0) */
    const void* x;           /* (T,B,I) IN */
    const void* h0;          /* (B,H) IN */
    const void* c0;          /* (B,H) IN, LSTM only */
    const void* w_ih;        /* (G,I) IN */
    const void* w_hh;        /* (G,H) IN */
    const void* b_ih;        /* (G,) IN, or NULL: no bias */
    const void* b_hh;        /* (G,) IN, or NULL: no bias */
    const void* w_ih_t;      /* (I,G) IN: W_ih^T, precomputed by a caller that runs many short
                                calls (streaming), or NULL: computed per call when needed;
                                it changes no number (see row_exact) */
    const void* w_hh_t;      /* (H,G) unused since the per-step kernel reads packed weights
                                (w_hh_packed below); kept so existing callers compile */
    void* y;                 /* (T,B,.) OUT, row (t,b) starts at y + (t*B+b)*ldy; 0 past a row's length */
    ptrdiff_t ldy;           /* >= H */
    void* h_n;               /* (B,H) OUT: each row's state after its last valid step */
    void* c_n;               /* (B,H) OUT, LSTM only */
    void* cache;             /* rnnx_cache_size() elements OUT, or NULL for inference */
    void* work;              /* rnnx_forward_work_size() elements, scratch */
    const void* w_hh_packed; /* rnnx_packed_size() elements IN: W_hh as rnnx_pack_weights
                                wrote it, for callers that run many calls with the same
                                weights (a stream), or NULL: packed into work per call;
                                with a projection (proj > 0), rnnx_pack_weights_proj's */
    /* Fields added later stay at the end, so older callers that zero the struct keep working. */
    int proj;                /* P: 0 (no projection), or 0 < P < H for an LSTM; then h0, h_n
                                are (B,P), y (T,B,.) with ldy >= P, w_hh (4H,P) */
    const void* w_hr;        /* (P,H) IN, the projection, when proj > 0 */
    const void* w_peep;      /* (3H,) IN, an LSTM's peepholes [Pi, Pf, Po] (this order; ONNX's P
                                is [Pi, Po, Pf]), or NULL: none.  With them
                                  i = sigma(. + Pi * c_{t-1}), f = sigma(. + Pf * c_{t-1}),
                                  o = sigma(. + Po * c_t) */
    int row_exact;           /* 1: the input projection computes every (t,b) row alone, by the
                                core's row kernel, so a call's numbers do not depend on its T*B:
                                a stream's steps equal a whole-sequence call that also sets it,
                                bit for bit in both dtypes.  0: the core may use the caller's
                                BLAS for a large float32 projection (faster; float64 is always
                                row by row).  A caller that needs the equality sets it. */
    int projection;          /* enum rnnx_projection: AUTO (0) follows rnnx_projection_plan,
                                HOISTED or FUSED force one (paths AUTO and SMALL only; a cell
                                that cannot fuse, GRU, is always hoisted) */
} rnnx_forward_args;

typedef struct rnnx_backward_args {
    int cell, dtype, path;
    int T, B;
    int input_size;          /* I, as in the forward call */
    int H;
    int reverse;
    const int64_t* lengths;  /* as in the forward call */
    const void* x;           /* (T,B,I) IN, as in the forward call */
    const void* w_ih;        /* (G,I) IN */
    const void* w_hh;        /* (G,H) IN */
    const void* cache;       /* IN, written by the training forward of the same call */
    const void* dy;          /* (T,B,.) IN, row stride lddy, or NULL: zero */
    ptrdiff_t lddy;          /* >= H */
    const void* dh_n;        /* (B,H) IN, or NULL: zero */
    const void* dc_n;        /* (B,H) IN, LSTM only, or NULL: zero */
    void* dx;                /* (T,B,I) +=  accumulated, so both directions can add into it */
    void* dh0;               /* (B,H) OUT */
    void* dc0;               /* (B,H) OUT, LSTM only */
    void* dw_ih;             /* (G,I) += */
    void* dw_hh;             /* (G,H) += */
    void* db_ih;             /* (G,) +=, or NULL: no bias */
    void* db_hh;             /* (G,) +=, or NULL: no bias */
    void* work;              /* rnnx_backward_work_size() elements, scratch */
    /* Fields added later stay at the end (see rnnx_forward_args). */
    int proj;                /* as in the forward call; then dy (lddy >= P), dh_n, dh0 are P wide */
    const void* w_hr;        /* (P,H) IN, when proj > 0 */
    void* dw_hr;             /* (P,H) +=, when proj > 0 */
    const void* w_peep;      /* (3H,) IN, as in the forward call, or NULL */
    void* dw_peep;           /* (3H,) +=, when w_peep is given */
} rnnx_backward_args;

/* Gate width G for a cell: H, 3H or 4H; 0 for an unknown cell. */
int rnnx_gate_count(int cell);

/* The table of cells: codes 0 .. rnnx_cell_count() - 1.  rnnx_cell_info_of
 * fills *out (RNNX_ECELL for an unknown code).  rnnx_cell_params writes the
 * parameters of one layer and direction of the cell with input_size I, H
 * hidden units, projection proj (0: none) and peepholes (0 or 1) into out
 * (RNNX_MAX_PARAMS entries) and their count into *n, in the order the core
 * takes them; biases are optional in every call that takes them. */
int rnnx_cell_count(void);
int rnnx_cell_info_of(int cell, rnnx_cell_info* out);
int rnnx_cell_params(int cell, int input_size, int H, int proj, int peephole,
                     rnnx_param_shape* out, int* n);

/* A sentence naming a status code of the core or of the model layer (rnnx_model.h). */
const char* rnnx_strerror(int status);

/* Sizes in elements of the given dtype (not bytes). */
size_t rnnx_cache_size(int cell, int T, int B, int H);
size_t rnnx_forward_work_size(int cell, int T, int B, int input_size, int H, int train);
size_t rnnx_backward_work_size(int cell, int T, int B, int input_size, int H);
/* The same for a projection of proj_size P (0: the sizes above). */
size_t rnnx_cache_size_proj(int cell, int T, int B, int H, int P);
size_t rnnx_forward_work_size_proj(int cell, int T, int B, int input_size, int H, int P,
                                   int train);
size_t rnnx_backward_work_size_proj(int cell, int T, int B, int input_size, int H, int P);

/* The recurrent weights in the layout of the core's per-step kernel:
 * rnnx_packed_size() elements of the dtype.  out is OUT, w_hh (G,H) IN.
 * The layout depends on cell, dtype and H only (not on the instruction set). */
size_t rnnx_packed_size(int cell, int dtype, int H);
int rnnx_pack_weights(int cell, int dtype, int H, const void* w_hh, void* out);
/* The same for an LSTM with a projection of size P (0: the two above): W_hh (4H,P)
 * then W_hr (P,H), both IN, into one buffer of rnnx_packed_size_proj() elements. */
size_t rnnx_packed_size_proj(int cell, int dtype, int H, int P);
int rnnx_pack_weights_proj(int cell, int dtype, int H, int P, const void* w_hh, const void* w_hr,
                           void* out);

/* The instruction set of the kernels: "avx512", "avx2", "neon" or "generic".
 * rnnx_isa_name(i) names the i-th the core knows, best first (NULL past the
 * last, "generic"); rnnx_isa_available says whether a name is built in and
 * runs on this CPU; rnnx_set_isa picks one (RNNX_EISA if it cannot run here).
 * By default the one the environment variable RNNX_ISA names runs, if it is
 * available (read when the library loads, or on each call where the compiler
 * has no load-time constructor), else the best available one.  rnnx_get_isa
 * names the one in use. */
const char* rnnx_isa_name(int index);
int rnnx_isa_available(const char* name);
int rnnx_set_isa(const char* name);
const char* rnnx_get_isa(void);

/* The GEMM of the hoisted products (input projection, dW_ih, dW_hh, dX), for
 * tests and benchmarks: C (M,N) += op(A) @ op(B), row-major, where op(A) (M,K)
 * is A (M,lda) for ta 'N' and the transpose of A (K,lda) for 'T', op(B) (K,N)
 * likewise; C (M,ldc) is accumulated, A and B read.  dtype RNNX_FLOAT32 or
 * RNNX_FLOAT64, the kernels of the ISA in use, by impl: rnnx's own blocked
 * GEMM packing B as it goes (the gradients' path) or packing all of B first
 * into work (K*N elements; the input projection's path), blas->sgemm/dgemm
 * (the BLAS twin), the naive loop, or gemm_small_acc (ta = tb = 'N' only).
 * work is read only by RNNX_GEMM_PACKED_B (NULL otherwise).  Returns RNNX_OK,
 * RNNX_EINVAL for a bad dtype, impl, transpose or size, RNNX_ENULL for a
 * missing pointer. */
enum rnnx_gemm_impl { RNNX_GEMM_PACKED = 0, RNNX_GEMM_PACKED_B = 1, RNNX_GEMM_BLAS = 2,
                      RNNX_GEMM_NAIVE = 3, RNNX_GEMM_SMALL = 4 };
int rnnx_gemm_acc(const rnnx_blas* blas, int dtype, int impl, char ta, char tb, int M, int N,
                  int K, const void* A, int lda, const void* B, int ldb, void* C, int ldc,
                  void* work);
/* That GEMM's register tile and cache blocks on the ISA in use, for tests: blocks
 * (OUT, 5) := MR, NR (rows and columns of the tile), KC, MC, NC (k, rows and
 * columns of a block) of a large product.  Returns RNNX_OK or RNNX_EINVAL. */
int rnnx_gemm_blocks(int dtype, int* blocks);

/* The cost model that chooses where the default path computes the input
 * projection (enum rnnx_projection) for one layer and direction of shape
 * (T, B, input_size I, hidden H, projection P (0: none)) on `threads` threads
 * in dtype.  out (OUT): the choice and the estimated times in nanoseconds of
 * each part, calibrated on a 2-core AMD EPYC Zen 4 (csrc/projection_plan.c).
 * A GRU is always HOISTED (fusable 0), and so is an inference call whose
 * (T,B,G) slab has no room for [W_ih | W_hh] packed (fusing borrows that room:
 * it costs no memory); training always hoists.  Returns RNNX_OK, RNNX_ECELL, RNNX_EINVAL
 * (a size, dtype or P out of range) or RNNX_ENULL. */
typedef struct rnnx_projection_costs {
    int choice;           /* RNNX_PROJECTION_HOISTED or RNNX_PROJECTION_FUSED */
    int fusable;          /* 0: the cell cannot fuse (GRU), or the slab has no room */
    double hoisted_ns;    /* gemm + slab + pack_hoisted + steps_hoisted */
    double fused_ns;      /* steps_fused + copies + pack_fused */
    double gemm_ns;       /* X (T*B,I) @ W_ih^T by rnnx's GEMM */
    double slab_ns;       /* writing the (T,B,G) slab and reading it back in the steps */
    double steps_hoisted_ns; /* T steps of h_{t-1} @ W_hh^T (K = P) with the gates */
    double steps_fused_ns;   /* T steps of [x_t | h_{t-1}] @ [W_ih | W_hh]^T (K = I + P) */
    double copies_ns;     /* fused: copying x_t and h_{t-1} into one (B, I + P) row block */
    double pack_hoisted_ns, pack_fused_ns; /* packing W_ih^T, or [W_ih | W_hh], per call */
} rnnx_projection_costs;
int rnnx_projection_plan(int cell, int T, int B, int input_size, int H, int P, int threads,
                         int dtype, rnnx_projection_costs* out);
/* How many forward calls (layer and direction) computed their input projection
 * hoisted (counts[0]) and fused (counts[1]) since the library was loaded: what
 * the tests read to see that the driver follows the plan. */
void rnnx_projection_counts(long long counts[2]);

/* Whole-sequence forward: inference when a->cache is NULL, training otherwise. */
int rnnx_forward(const rnnx_blas* blas, const rnnx_forward_args* a);

/* The inference forward of a stack of L one-direction layers, layers[l + 1]
 * reading layers[l]'s output (its x is layers[l].y, whose ldy is its
 * input_size), every layer with the same dtype, T and B, no cache, no
 * lengths, reverse 0.  The sequence is cut into chunks fixed by the shapes, each
 * layer's chunk one rnnx_forward call from the state its previous chunk
 * left.  Where the threads are no more than the layers, or the steps too
 * small to split, the calls run as a wavefront: layer l + 1's chunk c - 1
 * beside layer l's chunk c, one thread each (csrc/driver/wavefront.c); else
 * layer by layer.  The numbers are the same for every thread count, and
 * equal layer-by-layer rnnx_forward calls wherever a call's input projection
 * is row by row (float64, or row_exact set).  Returns RNNX_EINVAL for a stack
 * that breaks the above, else rnnx_forward's status. */
int rnnx_forward_stack(const rnnx_blas* blas, int L, const rnnx_forward_args* layers);

/* n independent inference passes (no cache; none writes what another reads:
 * a bidirectional layer's two directions), each as rnnx_forward would run it:
 * at the same time, one thread each, where the threads are no more than the
 * passes or the steps too small to split; else in turn.  The numbers are
 * rnnx_forward's, for every thread count.  Returns RNNX_EINVAL for a pass
 * with a cache, else the first failing pass's rnnx_forward status. */
int rnnx_forward_side_by_side(const rnnx_blas* blas, int n, const rnnx_forward_args* passes);

/* Whole-sequence backward (full BPTT) through a training forward's cache. */
int rnnx_backward(const rnnx_blas* blas, const rnnx_backward_args* a);

/* y[k] = f(x[k]) for k < n, f = the core's sigmoid (which = 0) or tanh (1):
 * what the cells compute, exposed so its accuracy can be tested. */
int rnnx_activation(int which, int dtype, const void* x, void* y, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* RNNX_H */

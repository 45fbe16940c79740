/*
 * runtime/blas.c: rnnx_pool_wrap_blas (see pool.h): the hoisted products
 * (input projection, weight and input gradients) cut into blocks run as team
 * jobs (team.c, with a short trial of their own: trial.c).
 *
 * Every product large enough for OpenBLAS to thread runs with OpenBLAS on one
 * thread, whatever rnnx's thread count: rnnx's threads are then the only ones
 * an rnnx call uses, and a threaded BLAS, which splits work statically and
 * waits for every thread, never stalls on a busy machine (measured: cutting a
 * product into blocks of two-thread OpenBLAS calls made one LSTM call 20x
 * slower under load).
 */
#define _GNU_SOURCE
#include "compiler.h"

#ifndef RNNX_PTHREADS
typedef int rnnx_no_blas_wrapper;  /* the serial build leaves the BLAS alone (runtime/serial.c) */
#else

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>

#include "runtime/team.h"

#define LOAD(p) __atomic_load_n(p, __ATOMIC_SEQ_CST)
static rnnx_blas* wrapped;            /* whose pool and thread count the wrappers use */
static rnnx_sgemm_fn blas_sgemm;      /* the BLAS it had */
static rnnx_dgemm_fn blas_dgemm;
static pthread_mutex_t limit_mutex = PTHREAD_MUTEX_INITIALIZER;
static int limit_depth;               /* holds in force (pooled products and callers' holds) */
static int scanned;                   /* the process's loaded OpenBLAS libraries were looked for */

/* The OpenBLAS libraries whose threads a hold limits: SciPy's (behind the
 * sgemm wrapped) and any other loaded (NumPy's own), each with its count
 * before the hold. */
enum { CONTROLS = 4 };
static struct control {
    void (*set)(int);
    int (*get)(void);
    int saved;
} controls[CONTROLS];
static int n_controls;

/* Every found OpenBLAS to one thread while any hold is in force (nested
 * across concurrent callers), back to what it had when the last one ends. */
static void blas_limit(int enter)
{
    pthread_mutex_lock(&limit_mutex);
    if (!enter && limit_depth == 0) {  /* an end without a start: nothing is held */
        pthread_mutex_unlock(&limit_mutex);
        return;
    }
    if (enter ? limit_depth++ == 0 : --limit_depth == 0)
        for (int i = 0; i < n_controls; i++) {
            struct control* c = &controls[i];
            if (enter) {
                c->saved = c->get();
                if (c->saved > 1)
                    c->set(1);
            } else if (c->saved > 1) {
                c->set(c->saved);
            }
        }
    pthread_mutex_unlock(&limit_mutex);
}

/* OpenBLAS runs products of fewer multiply-adds than this on one thread, so
 * they need no limit; below SPLIT_MIN_MNK a product is one BLAS call. */
#define LIMIT_MIN_MNK (1 << 18)
#define SPLIT_MIN_MNK (1 << 20)

/* A product (column-major, as BLAS sees it) is cut along its wider output
 * dimension into blocks of a width fixed by that dimension alone: at least
 * 128, at most 32 blocks.  Every element of C is still one whole dot product
 * over k inside one BLAS call, so the blocks give the serial call's result
 * whatever thread runs them. */
typedef struct gemm_job {
    char *transa, *transb;
    int m, n, k, lda, ldb, ldc, by_columns, width, blocks;
    void *alpha, *a, *b, *beta, *c;
    size_t elem;
} gemm_job;

static int split(gemm_job* g)
{
    if ((double)g->m * g->n * g->k < SPLIT_MIN_MNK)
        return 1;
    g->by_columns = g->n >= g->m;
    const int wide = g->by_columns ? g->n : g->m;
    int width = (wide + 31) / 32;
    width = width < 128 ? 128 : (width + 15) / 16 * 16;
    g->width = width;
    return (wide + width - 1) / width;
}

/* Block i of the product, or all of it when i < 0. */
static void gemm_block(void* ctx, int i)
{
    const gemm_job* g = ctx;
    const int lo = i * g->width, len = g->by_columns ? g->n : g->m;
    int w = len - lo < g->width ? len - lo : g->width;
    int m = g->m, n = g->n;
    char *a = g->a, *b = g->b, *c = g->c;
    if (i < 0) {
        /* the whole product */
    } else if (g->by_columns) {  /* C[:, lo:lo+w] = op(A) op(B)[:, lo:lo+w] */
        n = w;
        b += (*g->transb == 'N' || *g->transb == 'n' ? (size_t)lo * g->ldb : (size_t)lo) * g->elem;
        c += (size_t)lo * g->ldc * g->elem;
    } else {              /* C[lo:lo+w, :] = op(A)[lo:lo+w, :] op(B) */
        m = w;
        a += (*g->transa == 'N' || *g->transa == 'n' ? (size_t)lo : (size_t)lo * g->lda) * g->elem;
        c += (size_t)lo * g->elem;
    }
    int k = g->k, lda = g->lda, ldb = g->ldb, ldc = g->ldc;
    if (g->elem == sizeof(float))
        blas_sgemm(g->transa, g->transb, &m, &n, &k, g->alpha, (float*)a, &lda, (float*)b, &ldb,
                   g->beta, (float*)c, &ldc);
    else
        blas_dgemm(g->transa, g->transb, &m, &n, &k, g->alpha, (double*)a, &lda, (double*)b, &ldb,
                   g->beta, (double*)c, &ldc);
}

static void run_gemm(gemm_job* g)
{
    const double mnk = (double)g->m * g->n * g->k;
    if (mnk < LIMIT_MIN_MNK) {  /* the BLAS runs it on one thread anyway */
        gemm_block(g, -1);
        return;
    }
    const int blocks = split(g);
    const rnnx_blas* blas = wrapped;
    void* pool = LOAD(&blas->pool);
    blas_limit(1);
    if (blocks == 1)
        gemm_block(g, -1);
    else if (LOAD(&blas->n_threads) > 1 && pool)
        /* products of other shapes are other kinds; one comes per call and lasts long
         * enough to time well, so two of each way make the trial */
        rnnx_team_run(pool, blocks, gemm_block, g,
                (uint64_t)g->m << 42 ^ (uint64_t)g->n << 21 ^ (uint64_t)g->k ^ (uint64_t)g->elem << 60,
                2);
    else
        for (int i = 0; i < blocks; i++)
            gemm_block(g, i);
    blas_limit(0);
}

static void pooled_sgemm(char* transa, char* transb, int* m, int* n, int* k, float* alpha,
                         float* a, int* lda, float* b, int* ldb, float* beta, float* c, int* ldc)
{
    gemm_job g = {transa, transb, *m, *n, *k, *lda, *ldb, *ldc, 0, 0, 0,
                  alpha, a, b, beta, c, sizeof(float)};
    run_gemm(&g);
}

static void pooled_dgemm(char* transa, char* transb, int* m, int* n, int* k, double* alpha,
                         double* a, int* lda, double* b, int* ldb, double* beta, double* c, int* ldc)
{
    gemm_job g = {transa, transb, *m, *n, *k, *lda, *ldb, *ldc, 0, 0, 0,
                  alpha, a, b, beta, c, sizeof(double)};
    run_gemm(&g);
}

/* OpenBLAS's set/get_num_threads, looked up in the library at path (SciPy's and
 * NumPy's wheels prefix OpenBLAS's names with scipy_), added to controls
 * (under limit_mutex; held at once if a hold is in force). */
static void add_control(const char* path)
{
    static const char* names[][2] = {
        {"scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"},
        {"scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"},
        {"openblas_set_num_threads", "openblas_get_num_threads"},
        {"openblas_set_num_threads64_", "openblas_get_num_threads64_"},
    };
    void* lib = path ? dlopen(path, RTLD_LAZY | RTLD_NOLOAD) : NULL;
    if (!lib)
        return;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && n_controls < CONTROLS; i++) {
        void* set = dlsym(lib, names[i][0]);
        void* get = dlsym(lib, names[i][1]);
        if (!set || !get)
            continue;
        int known = 0;
        for (int j = 0; j < n_controls; j++)
            known |= *(void**)&controls[j].set == set;
        if (!known) {
            struct control* c = &controls[n_controls++];
            *(void**)&c->set = set;
            *(void**)&c->get = get;
            c->saved = c->get();
            if (limit_depth > 0 && c->saved > 1)
                c->set(1);
        }
        break;
    }
    dlclose(lib);  /* it stays loaded: NOLOAD took a reference to a library already in use */
}

#if defined(__linux__) || defined(__FreeBSD__)
#include <link.h>
#include <string.h>

static int add_if_openblas(struct dl_phdr_info* info, size_t size, void* data)
{
    (void)size, (void)data;
    if (info->dlpi_name && strstr(info->dlpi_name, "openblas"))
        add_control(info->dlpi_name);
    return 0;
}

/* Every loaded library named like OpenBLAS (NumPy's own, besides SciPy's). */
static void scan_loaded(void)
{
    dl_iterate_phdr(add_if_openblas, NULL);
}
#else
static void scan_loaded(void)  /* macOS: NumPy uses Accelerate, which has no thread control */
{
}
#endif

int rnnx_pool_hold_blas(int enter)
{
    pthread_mutex_lock(&limit_mutex);
    if (enter && !scanned) {
        scan_loaded();
        scanned = 1;
    }
    const int held = n_controls;
    pthread_mutex_unlock(&limit_mutex);
    blas_limit(enter != 0);
    return held;
}

void rnnx_pool_wrap_blas(rnnx_blas* blas)
{
    if (wrapped || !blas || !blas->sgemm || !blas->dgemm)
        return;
    blas_sgemm = blas->sgemm;
    blas_dgemm = blas->dgemm;
    Dl_info where;
    pthread_mutex_lock(&limit_mutex);
    if (dladdr(*(void**)&blas_sgemm, &where))
        add_control(where.dli_fname);
    pthread_mutex_unlock(&limit_mutex);
    wrapped = blas;
    blas->sgemm = pooled_sgemm;
    blas->dgemm = pooled_dgemm;
}

int rnnx_pool_blas_limitable(void)
{
    return n_controls > 0;
}

#endif /* RNNX_PTHREADS */

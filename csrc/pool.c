/*
 * pool.c: see pool.h.
 *
 * Jobs: workers spin briefly (SPIN_NS) on a ticket (a job's generation in
 * the high 32 bits, its next task index in the low 32), then sleep on a
 * condition variable, so a loop of short steps pays no wake-up per step and
 * an idle pool burns no CPU.  Tasks are claimed one at a time by
 * compare-and-swap on the ticket, by whichever thread is running (the caller
 * too), so a worker that is not scheduled leaves its share to the others; a
 * slow worker can never claim a task of a later job, and each job has its
 * own slot, so what a worker runs is the job it claimed from.
 *
 * Adapting: on a busy machine (or where the two "cores" share one), a
 * pooled step can be slower than a serial one: a worker preempted inside a
 * task holds up the step for a time slice, and a spinning worker takes CPU
 * time from the caller.  So the pool measures: per kind of job (its task
 * function and task count; a time loop runs hundreds of alike jobs), it
 * runs 2 * MEASURE jobs alternately by the caller alone and pooled (a
 * pooled job 3x slower than its serial twin ends the measuring at once),
 * then runs them pooled only if pooling was at least 5% faster both in total
 * and in the median job (serial, the safe choice, when noise leaves it in
 * doubt), for a stretch of jobs that grows while the verdict holds (x2
 * pooled, x4 serial, from STRETCH_MIN to STRETCH_POOLED or STRETCH_SERIAL),
 * and measures again.  A product hoisted out of the loop comes once per
 * call and runs long enough to time well: two jobs each way make its trial.
 * Measured on the 2-core EPYC shared with other busy processes, LSTM
 * (16,128,64,200) took 12.2 ms serially and 14.3 ms pooled with no stall
 * inside a task: the loss was the threads' contention, not preemption alone.
 *
 * BLAS: rnnx_pool_wrap_blas wraps the hoisted products (input projection,
 * weight and input gradients), see pool.h.  Every product large enough for
 * OpenBLAS to thread runs with OpenBLAS on one thread, whatever rnnx's thread
 * count: rnnx's threads are then the only ones an rnnx call uses, and a
 * threaded BLAS, which splits work statically and waits for every thread,
 * never stalls on a busy machine (measured: cutting a product into blocks of
 * two-thread OpenBLAS calls made one LSTM call 20x slower under load).
 */
#define _GNU_SOURCE
#include "compiler.h"

#ifndef RNNX_PTHREADS
#include "pool_serial.c"   /* no POSIX threads (MSVC): every job on the caller */
#else

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum {
    SPIN_NS = 50000,       /* a worker, or the caller waiting, spins this long before sleeping */
    MEASURE = 16,          /* jobs timed each way before a verdict */
    STRETCH_MIN = 64,      /* jobs run the chosen way after a verdict, doubling while */
    STRETCH_POOLED = 1024, /* verdicts agree, up to this when pooled */
    STRETCH_SERIAL = 8192, /* ... and this when serial */
    KINDS = 16             /* kinds of job tracked at once */
};

/* The adaptive state of one kind of job. */
typedef struct job_kind {
    rnnx_task_fn task;
    int n_tasks;
    uint64_t key;          /* what else tells alike jobs apart (a product's shape) */
    int trials;            /* jobs timed each way before a verdict (MEASURE at most) */
    long long used;        /* the pool's job count when last seen (least recently used goes) */
    int measuring;         /* 1: timing jobs, alternately pooled and serial; 0: running the verdict */
    int count;             /* jobs in this phase */
    int filled[2];         /* [serial]: measured jobs run each way */
    int serial;            /* the verdict: 1 run on the caller alone */
    int stretch;           /* jobs the verdict runs for */
    int64_t ns[2][MEASURE];  /* [serial][i]: the times of the measured jobs */
} job_kind;

struct rnnx_pool {
    pid_t pid;                 /* the process that started the workers (a forked child has none) */
    int n_workers;
    pthread_t* threads;
    pthread_mutex_t mutex;
    pthread_cond_t work;       /* a new ticket, or stop */
    pthread_cond_t done;       /* remaining reached 0 */
    uint64_t ticket;           /* atomic: generation << 32 | next task */
    int remaining;             /* atomic: tasks of the current job not finished */
    int sleepers;              /* atomic: workers waiting on work */
    int busy;                  /* atomic: a caller owns the pool */
    int stop;                  /* atomic */
    struct job {               /* job of generation g in job[g & 1], written before its ticket: */
        rnnx_task_fn task;     /* a worker late from generation g - 2 may read the slot while */
        void* ctx;             /* it is rewritten, but can no longer claim a task of it */
        int n_tasks;
    } job[2];
    /* written only by the caller that owns the pool (busy): */
    job_kind kinds[KINDS];
    long long jobs, serial_jobs;
};

#define LOAD(p) __atomic_load_n(p, __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n(p, v, __ATOMIC_SEQ_CST)

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Claim and run tasks of generation gen until none is left; returns how many ran here. */
static int run_claimed(rnnx_pool* p, uint32_t gen, rnnx_task_fn task, void* ctx, int n_tasks)
{
    int ran = 0;
    uint64_t t = LOAD(&p->ticket);
    for (;;) {
        if ((uint32_t)(t >> 32) != gen || (int)(uint32_t)t >= n_tasks)
            return ran;
        if (!__atomic_compare_exchange_n(&p->ticket, &t, t + 1, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST))
            continue;  /* t now holds the current ticket */
        task(ctx, (int)(uint32_t)t);
        ran++;
        if (__atomic_sub_fetch(&p->remaining, 1, __ATOMIC_SEQ_CST) == 0) {
            pthread_mutex_lock(&p->mutex);
            pthread_cond_broadcast(&p->done);
            pthread_mutex_unlock(&p->mutex);
        }
        t = LOAD(&p->ticket);
    }
}

static void* worker_main(void* arg)
{
    rnnx_pool* p = arg;
    uint32_t seen = (uint32_t)(LOAD(&p->ticket) >> 32);
    for (;;) {
        const int64_t start = now_ns();
        for (int spins = 1; (uint32_t)(LOAD(&p->ticket) >> 32) == seen && !LOAD(&p->stop); spins++) {
            CPU_RELAX();
            if ((spins & 63) == 0 && now_ns() - start > SPIN_NS)
                break;
        }
        if ((uint32_t)(LOAD(&p->ticket) >> 32) == seen && !LOAD(&p->stop)) {
            pthread_mutex_lock(&p->mutex);
            __atomic_add_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
            while ((uint32_t)(LOAD(&p->ticket) >> 32) == seen && !LOAD(&p->stop))
                pthread_cond_wait(&p->work, &p->mutex);
            __atomic_sub_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&p->mutex);
        }
        if (LOAD(&p->stop))
            return NULL;
        seen = (uint32_t)(LOAD(&p->ticket) >> 32);
        struct job* j = &p->job[seen & 1];
        run_claimed(p, seen, LOAD(&j->task), LOAD(&j->ctx), LOAD(&j->n_tasks));
    }
}

rnnx_pool* rnnx_pool_create(int n_threads)
{
    if (n_threads < 2)
        return NULL;
    rnnx_pool* p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    p->pid = getpid();
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < n_threads - 1; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            p->n_workers = i;
            rnnx_pool_destroy(p);
            return NULL;
        }
        p->n_workers = i + 1;
    }
    return p;
}

void rnnx_pool_destroy(rnnx_pool* p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mutex);
    STORE(&p->stop, 1);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 0; i < p->n_workers; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mutex);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

/* The kind of job (task, n_tasks), found or made (replacing the least recently used). */
static job_kind* kind_of(rnnx_pool* p, rnnx_task_fn task, int n_tasks, uint64_t key, int trials)
{
    job_kind* oldest = &p->kinds[0];
    for (int i = 0; i < KINDS; i++) {
        job_kind* k = &p->kinds[i];
        if (k->task == task && k->n_tasks == n_tasks && k->key == key) {
            k->used = p->jobs;
            return k;
        }
        if (k->used < oldest->used)
            oldest = k;
    }
    memset(oldest, 0, sizeof *oldest);
    oldest->task = task;
    oldest->n_tasks = n_tasks;
    oldest->key = key;
    oldest->trials = trials;
    oldest->used = p->jobs;
    oldest->measuring = 1;
    oldest->serial = 1;
    oldest->stretch = STRETCH_MIN / 2;
    return oldest;
}

/* Whether the next job of kind k runs on the caller alone. */
static int runs_serially(const job_kind* k)
{
    /* measuring: serial, pooled, pooled, serial, ...: a job kind whose jobs alternate
     * (two phases of a step) meets both ways alike */
    return k->measuring ? (k->count & 3) == 0 || (k->count & 3) == 3 : k->serial;
}

static int64_t median(int64_t* v, int n)
{
    for (int i = 1; i < n; i++)  /* insertion sort: n is MEASURE */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            const int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

/* After a job of kind k that ran serially or not and took ns. */
static void measured(job_kind* k, int serial, int64_t ns)
{
    if (!k->measuring) {
        if (++k->count >= k->stretch)
            k->measuring = 1, k->count = 0;
        return;
    }
    k->ns[serial][k->filled[serial]++] = ns;
    /* a pooled job 3x slower than the last serial one (a worker preempted
     * inside a task costs a time slice): serial, without measuring on */
    const int stalled = !serial && ns > 3 * k->ns[1][k->filled[1] - 1];
    if (!stalled && ++k->count < 2 * k->trials)
        return;
    int64_t total[2] = {0, 0};
    for (int i = 0; i < k->trials; i++)
        total[0] += k->ns[0][i], total[1] += k->ns[1][i];
    const int pooled = !stalled && (double)total[0] * 1.05 < (double)total[1] &&
                       (double)median(k->ns[0], k->trials) * 1.05 <
                           (double)median(k->ns[1], k->trials);
    const int most = pooled ? STRETCH_POOLED : STRETCH_SERIAL;
    k->stretch = pooled != k->serial && k->stretch < most ? (pooled ? 2 : 4) * k->stretch : STRETCH_MIN;
    if (k->stretch > most)
        k->stretch = most;
    k->serial = !pooled;
    k->measuring = 0;
    k->count = k->filled[0] = k->filled[1] = 0;
}


/* rnnx_pool_parallel_for, with jobs of one task function and count told apart by
 * key, and `trials` jobs timed each way per trial. */
static void run_job(void* pool, int n_tasks, rnnx_task_fn task, void* ctx, uint64_t key,
                    int trials)
{
    rnnx_pool* p = pool;
    int expected = 0;
    if (!p || n_tasks < 2 || p->pid != getpid() ||
        !__atomic_compare_exchange_n(&p->busy, &expected, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        /* no pool, one task, a forked child (whose pool has no workers), or another caller has it */
        for (int i = 0; i < n_tasks; i++)
            task(ctx, i);
        return;
    }
    p->jobs++;
    job_kind* kind = kind_of(p, task, n_tasks, key, trials);
    const int serial = runs_serially(kind);
    const int64_t start = now_ns();
    if (serial) {
        p->serial_jobs++;
        for (int i = 0; i < n_tasks; i++)
            task(ctx, i);
        measured(kind, 1, now_ns() - start);
        STORE(&p->busy, 0);
        return;
    }
    const uint32_t gen = (uint32_t)(LOAD(&p->ticket) >> 32) + 1;
    struct job* j = &p->job[gen & 1];
    STORE(&j->task, task);
    STORE(&j->ctx, ctx);
    STORE(&j->n_tasks, n_tasks);
    STORE(&p->remaining, n_tasks);
    STORE(&p->ticket, (uint64_t)gen << 32);
    if (LOAD(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->mutex);
    }
    run_claimed(p, gen, task, ctx, n_tasks);
    if (LOAD(&p->remaining) != 0) {
        const int64_t mine = now_ns();
        for (int spins = 1; LOAD(&p->remaining) != 0; spins++) {
            CPU_RELAX();
            if ((spins & 63) == 0 && now_ns() - mine > SPIN_NS)
                break;
        }
        if (LOAD(&p->remaining) != 0) {
            pthread_mutex_lock(&p->mutex);
            while (LOAD(&p->remaining) != 0)
                pthread_cond_wait(&p->done, &p->mutex);
            pthread_mutex_unlock(&p->mutex);
        }
    }
    measured(kind, 0, now_ns() - start);
    STORE(&p->busy, 0);
}

void rnnx_pool_parallel_for(void* pool, int n_tasks, rnnx_task_fn task, void* ctx)
{
    run_job(pool, n_tasks, task, ctx, 0, MEASURE);
}

void rnnx_pool_stats(const rnnx_pool* p, long long* jobs, long long* serial_jobs)
{
    *jobs = p ? p->jobs : 0;
    *serial_jobs = p ? p->serial_jobs : 0;
}

/* ------------------------------------------------------------ the BLAS --- */

static rnnx_blas* wrapped;            /* whose pool and thread count the wrappers use */
static rnnx_sgemm_fn blas_sgemm;      /* the BLAS it had */
static rnnx_dgemm_fn blas_dgemm;
static void (*blas_set_threads)(int); /* OpenBLAS's thread control, when found */
static int (*blas_get_threads)(void);
static pthread_mutex_t limit_mutex = PTHREAD_MUTEX_INITIALIZER;
static int limit_depth, limit_saved;  /* calls inside the limit; the BLAS's threads before */

/* OpenBLAS's threads to 1 while any pooled product runs (nested across
 * concurrent callers), back to what they were when the last one ends. */
static void blas_limit(int enter)
{
    if (!blas_set_threads)
        return;
    pthread_mutex_lock(&limit_mutex);
    if (enter && limit_depth++ == 0) {
        limit_saved = blas_get_threads();
        if (limit_saved > 1)
            blas_set_threads(1);
    } else if (!enter && --limit_depth == 0 && limit_saved > 1) {
        blas_set_threads(limit_saved);
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
        run_job(pool, blocks, gemm_block, g,
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

/* OpenBLAS's set/get_num_threads, looked up in the library that holds fn and
 * in what it links (SciPy's wheels prefix OpenBLAS's names with scipy_). */
static void find_thread_control(void* fn)
{
    static const char* names[][2] = {
        {"scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"},
        {"scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"},
        {"openblas_set_num_threads", "openblas_get_num_threads"},
        {"openblas_set_num_threads64_", "openblas_get_num_threads64_"},
    };
    Dl_info where;
    if (!fn || !dladdr(fn, &where) || !where.dli_fname)
        return;
    void* lib = dlopen(where.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!lib)
        return;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void* set = dlsym(lib, names[i][0]);
        void* get = dlsym(lib, names[i][1]);
        if (set && get) {
            *(void**)&blas_set_threads = set;
            *(void**)&blas_get_threads = get;
            break;
        }
    }
    dlclose(lib);  /* it stays loaded: NOLOAD took a reference to a library already in use */
}

void rnnx_pool_wrap_blas(rnnx_blas* blas)
{
    if (wrapped || !blas || !blas->sgemm || !blas->dgemm)
        return;
    blas_sgemm = blas->sgemm;
    blas_dgemm = blas->dgemm;
    find_thread_control(*(void**)&blas_sgemm);
    wrapped = blas;
    blas->sgemm = pooled_sgemm;
    blas->dgemm = pooled_dgemm;
}

int rnnx_pool_blas_limitable(void)
{
    return blas_set_threads != NULL;
}

int rnnx_pool_threaded(void)
{
    return 1;
}

#endif /* RNNX_PTHREADS */

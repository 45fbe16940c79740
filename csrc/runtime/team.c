/*
 * runtime/team.c: the persistent team of pool.h (its BLAS wrapper is
 * blas.c, the choice between the team and the caller alone is trial.c).
 *
 * A team of W threads is the caller (thread 0) and W - 1 workers started
 * once.  Between jobs a worker spins for SPIN_NS on the job's generation and
 * then sleeps on a condition variable, so a loop of short steps pays no
 * wake-up per step and an idle team burns no CPU; the caller waits for the
 * last task the same way (spin, then sleep), and the one that finishes the
 * last task wakes it only if it sleeps.
 *
 * Static partition: a job of n tasks is cut into W shares, thread w's share
 * being tasks [n*w/W, n*(w+1)/W), so at steady state each thread runs the
 * same tasks step after step (a step's tasks are whole panels of hidden
 * units: the same weights stay in the same core's cache).  A thread done
 * with its share then takes the tasks left in the others' (each share is a
 * ticket, the job's generation in the high 32 bits and its next task in the
 * low 32, claimed by compare-and-swap), so a worker that is not scheduled
 * leaves its share to the others instead of holding up the step.  A worker
 * late from an earlier job can never claim a task of a later one (the
 * generation differs), and each of the last two jobs has its own slot, so
 * what a worker runs is the job it claimed from.  Which thread runs a task
 * never changes its result: the tasks are fixed by the job.
 */
#define _GNU_SOURCE
#include "compiler.h"

#ifndef RNNX_PTHREADS
#include "runtime/serial.c"   /* no POSIX threads (MSVC): every job on the caller */
#else

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "runtime/team.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum {
    SPIN_NS = 50000,          /* a worker, or the caller waiting, spins this long before sleeping */
    LINE = 64                 /* a cache line: each share's ticket on its own */
};

typedef struct share {
    uint64_t ticket;          /* atomic: generation << 32 | next task of this share */
    char pad[LINE - sizeof(uint64_t)];
} share;

typedef struct worker {
    struct rnnx_pool* pool;
    int index;                /* 1 .. W-1: its share (the caller's is 0) */
} worker;

struct rnnx_pool {
    pid_t pid;                /* the process that started the workers (a forked child has none) */
    int n_workers;            /* W - 1 */
    pthread_t* threads;
    worker* workers;
    share* shares;            /* (W,), aligned to LINE */
    pthread_mutex_t mutex;
    pthread_cond_t work;      /* a new generation, or stop */
    pthread_cond_t done;      /* remaining reached 0 while the caller sleeps */
    uint32_t gen;             /* atomic: the current job's generation */
    int remaining;            /* atomic: tasks of the current job not finished */
    int sleepers;             /* atomic: workers waiting on work */
    int waiting;              /* atomic: the caller waits on done */
    int busy;                 /* atomic: a caller owns the team */
    int stop;                 /* atomic */
    struct job {              /* job of generation g in job[g & 1], written before its tickets: */
        rnnx_task_fn task;    /* a worker late from generation g - 2 may read the slot while */
        void* ctx;            /* it is rewritten, but can no longer claim a task of it */
        int n_tasks;
    } job[2];
    int fixed;                /* 1: no trial, every job on the team (rnnx_pool_set_adaptive) */
    /* written only by the caller that owns the team (busy): */
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

/* Spin for at most SPIN_NS while the generation is seen and no stop; 1 if either changed. */
static int spin_while(const uint32_t* gen, uint32_t seen, const int* stop)
{
    const int64_t start = now_ns();
    for (int spins = 1;; spins++) {
        if (LOAD(gen) != seen || LOAD(stop))
            return 1;
        CPU_RELAX();
        if ((spins & 63) == 0 && now_ns() - start > SPIN_NS)
            return 0;
    }
}

/* Run task i of the job of generation gen, and wake a sleeping caller after the last. */
static void run_task(rnnx_pool* p, rnnx_task_fn task, void* ctx, int i)
{
    task(ctx, i);
    if (__atomic_sub_fetch(&p->remaining, 1, __ATOMIC_SEQ_CST) == 0 && LOAD(&p->waiting)) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->done);
        pthread_mutex_unlock(&p->mutex);
    }
}

/* Thread me's part of generation gen: its own share, then what is left of the others'. */
static void run_shares(rnnx_pool* p, int me, uint32_t gen, rnnx_task_fn task, void* ctx, int n_tasks)
{
    const int W = p->n_workers + 1;
    for (int k = 0; k < W; k++) {
        const int w = (me + k) % W;
        const int end = (int)((long long)n_tasks * (w + 1) / W);
        uint64_t t = LOAD(&p->shares[w].ticket);
        while ((uint32_t)(t >> 32) == gen && (int)(uint32_t)t < end) {
            if (__atomic_compare_exchange_n(&p->shares[w].ticket, &t, t + 1, 0, __ATOMIC_SEQ_CST,
                                            __ATOMIC_SEQ_CST)) {
                run_task(p, task, ctx, (int)(uint32_t)t);
                t = LOAD(&p->shares[w].ticket);
            }  /* else t now holds the current ticket */
        }
    }
}

static void* worker_main(void* arg)
{
    const worker* self = arg;
    rnnx_pool* p = self->pool;
    uint32_t seen = LOAD(&p->gen);
    for (;;) {
        if (!spin_while(&p->gen, seen, &p->stop)) {
            pthread_mutex_lock(&p->mutex);
            __atomic_add_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
            while (LOAD(&p->gen) == seen && !LOAD(&p->stop))
                pthread_cond_wait(&p->work, &p->mutex);
            __atomic_sub_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&p->mutex);
        }
        if (LOAD(&p->stop))
            return NULL;
        seen = LOAD(&p->gen);
        struct job* j = &p->job[seen & 1];
        run_shares(p, self->index, seen, LOAD(&j->task), LOAD(&j->ctx), LOAD(&j->n_tasks));
    }
}

rnnx_pool* rnnx_pool_create(int n_threads)
{
    if (n_threads < 2)
        return NULL;
    rnnx_pool* p = calloc(1, sizeof *p);
    void* shares = NULL;
    if (!p || posix_memalign(&shares, LINE, (size_t)n_threads * sizeof(share)) != 0) {
        free(p);
        return NULL;
    }
    p->shares = shares;
    p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
    p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
    if (!p->threads || !p->workers) {
        free(p->threads);
        free(p->workers);
        free(shares);
        free(p);
        return NULL;
    }
    for (int w = 0; w < n_threads; w++)
        p->shares[w].ticket = 0;
    p->pid = getpid();
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < n_threads - 1; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i + 1;
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0) {
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
    free(p->workers);
    free(p->shares);
    free(p);
}

/* The job on the whole team; returns when every task is done. */
static void run_pooled(rnnx_pool* p, int n_tasks, rnnx_task_fn task, void* ctx)
{
    const int W = p->n_workers + 1;
    const uint32_t gen = LOAD(&p->gen) + 1;
    struct job* j = &p->job[gen & 1];
    STORE(&j->task, task);
    STORE(&j->ctx, ctx);
    STORE(&j->n_tasks, n_tasks);
    STORE(&p->remaining, n_tasks);
    for (int w = 0; w < W; w++)
        STORE(&p->shares[w].ticket, (uint64_t)gen << 32 | (uint32_t)((long long)n_tasks * w / W));
    STORE(&p->gen, gen);
    if (LOAD(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->mutex);
    }
    run_shares(p, 0, gen, task, ctx, n_tasks);
    if (LOAD(&p->remaining) != 0) {
        const int64_t start = now_ns();
        for (int spins = 1; LOAD(&p->remaining) != 0; spins++) {
            CPU_RELAX();
            if ((spins & 63) == 0 && now_ns() - start > SPIN_NS)
                break;
        }
    }
    if (LOAD(&p->remaining) != 0) {
        pthread_mutex_lock(&p->mutex);
        STORE(&p->waiting, 1);
        while (LOAD(&p->remaining) != 0)
            pthread_cond_wait(&p->done, &p->mutex);
        STORE(&p->waiting, 0);
        pthread_mutex_unlock(&p->mutex);
    }
}

void rnnx_team_run(void* pool, int n_tasks, rnnx_task_fn task, void* ctx, uint64_t key, int trials)
{
    rnnx_pool* p = pool;
    int expected = 0;
    if (!p || n_tasks < 2 || p->pid != getpid() ||
        !__atomic_compare_exchange_n(&p->busy, &expected, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        /* no team, one task, a forked child (whose team has no workers), or another caller has it */
        for (int i = 0; i < n_tasks; i++)
            task(ctx, i);
        return;
    }
    p->jobs++;
    job_kind* kind = rnnx_trial_kind(p->kinds, p->jobs, task, n_tasks, key, trials);
    const int serial = !p->fixed && rnnx_trial_serial(kind);
    const int64_t start = now_ns();
    if (serial) {
        p->serial_jobs++;
        for (int i = 0; i < n_tasks; i++)
            task(ctx, i);
    } else {
        run_pooled(p, n_tasks, task, ctx);
    }
    if (!p->fixed)  /* a team told to pool every job (rnnx_pool_set_adaptive 0) judges nothing */
        rnnx_trial_measured(kind, serial, now_ns() - start);
    STORE(&p->busy, 0);
}

void rnnx_pool_parallel_for(void* pool, int n_tasks, rnnx_task_fn task, void* ctx)
{
    rnnx_team_run(pool, n_tasks, task, ctx, 0, MEASURE);
}

void rnnx_pool_set_adaptive(rnnx_pool* p, int adaptive)
{
    if (p)
        p->fixed = !adaptive;
}

void rnnx_pool_stats(const rnnx_pool* p, long long* jobs, long long* serial_jobs)
{
    *jobs = p ? p->jobs : 0;
    *serial_jobs = p ? p->serial_jobs : 0;
}

int rnnx_pool_threaded(void)
{
    return 1;
}

#endif /* RNNX_PTHREADS */

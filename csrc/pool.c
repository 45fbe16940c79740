/*
 * pool.c: see pool.h.  Workers spin briefly on a ticket (a job's generation
 * in the high 32 bits, its next task index in the low 32), then sleep on a
 * condition variable, so a busy loop of short steps pays no wake-up per step
 * and an idle pool burns no CPU.  Tasks are claimed by compare-and-swap on the
 * ticket, so a slow worker can never claim a task of a later job, and each job
 * has its own slot, so what a worker runs is the job it claimed from.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum { SPIN = 4000 };  /* pauses a worker or the caller spins before sleeping (tens of us) */

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
};

#define LOAD(p) __atomic_load_n(p, __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n(p, v, __ATOMIC_SEQ_CST)

/* Claim and run tasks of generation gen until none is left. */
static void run_claimed(rnnx_pool* p, uint32_t gen, rnnx_task_fn task, void* ctx, int n_tasks)
{
    uint64_t t = LOAD(&p->ticket);
    for (;;) {
        if ((uint32_t)(t >> 32) != gen || (int)(uint32_t)t >= n_tasks)
            return;
        if (!__atomic_compare_exchange_n(&p->ticket, &t, t + 1, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST))
            continue;  /* t now holds the current ticket */
        task(ctx, (int)(uint32_t)t);
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
        int spins = 0;
        while ((uint32_t)(LOAD(&p->ticket) >> 32) == seen && !LOAD(&p->stop) && spins < SPIN) {
            CPU_RELAX();
            spins++;
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

void rnnx_pool_parallel_for(void* pool, int n_tasks, rnnx_task_fn task, void* ctx)
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
    int spins = 0;
    while (LOAD(&p->remaining) != 0 && spins < SPIN) {
        CPU_RELAX();
        spins++;
    }
    if (LOAD(&p->remaining) != 0) {
        pthread_mutex_lock(&p->mutex);
        while (LOAD(&p->remaining) != 0)
            pthread_cond_wait(&p->done, &p->mutex);
        pthread_mutex_unlock(&p->mutex);
    }
    STORE(&p->busy, 0);
}

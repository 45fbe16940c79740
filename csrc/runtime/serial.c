/*
 * runtime/serial.c: pool.h where the platform has no POSIX threads (MSVC; see
 * compiler.h), and in the RNNX_PLAIN_C99 build that stands in for it.
 * Included by runtime/team.c, not compiled on its own.
 *
 * A pool is only its thread count: rnnx_pool_parallel_for runs task 0, 1, ...
 * on the caller, in order.  The core cuts its work into the same tasks as with
 * workers, and no task's result depends on where or when it runs, so a call
 * gives the bits it gives with threads.  The BLAS is left unwrapped: its own
 * threads, if it has any, run the hoisted products.
 */
#include <stdlib.h>

#include "pool.h"

struct rnnx_pool {
    int n_threads;
};

rnnx_pool* rnnx_pool_create(int n_threads)
{
    if (n_threads < 2)
        return NULL;
    rnnx_pool* p = calloc(1, sizeof *p);
    if (p)
        p->n_threads = n_threads;
    return p;
}

void rnnx_pool_destroy(rnnx_pool* p)
{
    free(p);
}

void rnnx_pool_parallel_for(void* pool, int n_tasks, rnnx_task_fn task, void* ctx)
{
    (void)pool;
    for (int i = 0; i < n_tasks; i++)
        task(ctx, i);
}

void rnnx_pool_set_adaptive(rnnx_pool* pool, int adaptive)
{
    (void)pool, (void)adaptive;  /* every job runs on the caller */
}

void rnnx_pool_stats(const rnnx_pool* pool, long long* jobs, long long* serial_jobs)
{
    (void)pool;
    *jobs = 0;    /* no job is timed or pooled: each is the caller's */
    *serial_jobs = 0;
}

void rnnx_pool_wrap_blas(rnnx_blas* blas)
{
    (void)blas;
}

int rnnx_pool_hold_blas(int enter)
{
    (void)enter;
    return 0;
}

int rnnx_pool_blas_limitable(void)
{
    return 0;
}

int rnnx_pool_threaded(void)
{
    return 0;
}

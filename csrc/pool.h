/*
 * pool.h: a small pthread pool that implements rnnx.h's parallel-for hook.
 * Not part of the core: the Python build links it and hands
 * rnnx_pool_parallel_for and a pool to the core through rnnx_blas; a bare C
 * build may use it, another pool, or none (serial).
 */
#ifndef RNNX_POOL_H
#define RNNX_POOL_H

#include "rnnx.h"

typedef struct rnnx_pool rnnx_pool;

/* A pool of n_threads - 1 workers (the caller of parallel_for is the last
 * thread); NULL when n_threads < 2 or a thread cannot start. */
rnnx_pool* rnnx_pool_create(int n_threads);
void rnnx_pool_destroy(rnnx_pool* pool);

/* rnnx_parallel_fn: task(ctx, i) for i in [0, n_tasks), on the caller and the
 * workers; returns when all are done.  A second caller while the pool is busy
 * runs its tasks itself, serially, so concurrent calls are safe. */
void rnnx_pool_parallel_for(void* pool, int n_tasks, rnnx_task_fn task, void* ctx);

#endif /* RNNX_POOL_H */

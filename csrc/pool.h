/*
 * pool.h: a persistent team of pthreads that implements rnnx.h's
 * parallel-for hook, and a BLAS wrapper that runs the hoisted products on it
 * (csrc/runtime/: team.c, trial.c, blas.c).  Where the platform has no POSIX
 * threads (MSVC, see compiler.h) the same functions run every task on the
 * caller (runtime/serial.c): the results are the same, since the core's never
 * depend on the thread count.
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
 * runs its tasks itself, serially, so concurrent calls are safe.  Each thread
 * first runs its own static share of the tasks (the same tasks job after job),
 * then claims what is left of the others' one at a time, so a descheduled
 * worker leaves its share to the others.  The pool times alike jobs run pooled
 * and run by the caller alone, and runs the faster way; a pooled verdict is
 * watched (tried again only when its jobs slow down), a serial one re-tried
 * now and then, so a busy machine degrades to one thread's speed, not below. */
void rnnx_pool_parallel_for(void* pool, int n_tasks, rnnx_task_fn task, void* ctx);

/* adaptive 1 (the default): the pool's trial decides per kind of job whether
 * the team or the caller alone runs it; 0: every job of two tasks or more runs
 * on the team (for tests of the team itself, and measurements). */
void rnnx_pool_set_adaptive(rnnx_pool* pool, int adaptive);

/* Jobs the pool took so far, and how many of them it ran on the caller alone
 * (for tests and tuning). */
void rnnx_pool_stats(const rnnx_pool* pool, long long* jobs, long long* serial_jobs);

/* Make blas's sgemm/dgemm wrappers that cut a large product into column or
 * row blocks fixed by its shape alone (never by the thread count, so results
 * do not depend on it) and run the blocks on blas->pool when blas->n_threads
 * > 1, serially otherwise.  While a product OpenBLAS would thread runs, an
 * OpenBLAS found behind the original sgemm is limited to one thread (and
 * restored after the last concurrent one), so an rnnx call uses rnnx's
 * threads and no others.  Call once, before any use of blas; blas must
 * outlive every call. */
void rnnx_pool_wrap_blas(rnnx_blas* blas);

/* Hold every OpenBLAS loaded in the process (SciPy's behind the wrapped
 * sgemm, and those found by name: NumPy's own) at one thread from a call
 * with enter = 1 until its matching call with enter = 0 (nested, across
 * threads; the counts they had come back after the last).  For the NumPy
 * products a Python model makes between its rnnx calls (Dense heads, losses,
 * optimizers): a threaded BLAS splits its work statically and waits for every
 * thread, so on a busy machine it is slower than one thread.  Returns how
 * many libraries a hold limits (0: none found, or the serial build). */
int rnnx_pool_hold_blas(int enter);

/* 1 if rnnx_pool_wrap_blas found a BLAS thread control (OpenBLAS), else 0. */
int rnnx_pool_blas_limitable(void);

/* 1 if pools run tasks on worker threads, 0 in the serial build. */
int rnnx_pool_threaded(void);

#endif /* RNNX_POOL_H */

/*
 * test_team.c: the thread team of csrc/pool.h (csrc/runtime/).  Every task of
 * every job runs exactly once, whatever the team's size and the job's task
 * count (its static shares, then the stealing), a job's tasks are all done
 * when parallel_for returns, concurrent callers of one team are safe (the
 * second runs its job itself), and the trial's verdicts never lose a task;
 * once with the trial, once with every job on the team.
 * CI also builds it with ThreadSanitizer (.ci/tsan_team.sh).
 *
 *   test_team
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

enum { MAX_TASKS = 67, JOBS = 3000, CALLERS = 3 };

typedef struct job {
    int ran[MAX_TASKS];       /* how many times each task ran: each slot written by one task */
    long long sum;            /* the caller's check after the job */
} job;

static void count_task(void* ctx, int i)
{
    job* j = ctx;
    j->ran[i]++;
    for (volatile int spin = 0; spin < (i % 7) * 50; spin++)  /* tasks of unequal length */
        ;
}

static int check_job(rnnx_pool* pool, job* j, int n_tasks)
{
    memset(j->ran, 0, sizeof j->ran);
    rnnx_pool_parallel_for(pool, n_tasks, count_task, j);
    for (int i = 0; i < MAX_TASKS; i++)
        if (j->ran[i] != (i < n_tasks)) {
            fprintf(stderr, "task %d of %d ran %d times\n", i, n_tasks, j->ran[i]);
            return 1;
        }
    return 0;
}

typedef struct caller {
    rnnx_pool* pool;
    int seed, failed;
} caller;

static void* run_caller(void* arg)
{
    caller* c = arg;
    job j;
    unsigned r = (unsigned)c->seed;
    for (int k = 0; k < JOBS / CALLERS && !c->failed; k++) {
        r = r * 1103515245u + 12345u;
        c->failed = check_job(c->pool, &j, 1 + (int)(r >> 16) % MAX_TASKS);
    }
    return NULL;
}

int main(void)
{
    const int sizes[] = {2, 3, 5};
    job j;
    for (size_t s = 0; s < 2 * sizeof sizes / sizeof sizes[0]; s++) {
        const int size = sizes[s / 2], adaptive = s % 2 == 0;
        rnnx_pool* pool = rnnx_pool_create(size);
        if (!pool && rnnx_pool_threaded()) {
            fprintf(stderr, "a team of %d threads did not start\n", size);
            return 1;
        }
        rnnx_pool_set_adaptive(pool, adaptive);
        for (int k = 0; k < JOBS; k++)  /* alike jobs (the trial settles) and changing ones */
            if (check_job(pool, &j, k < JOBS / 2 ? 1 + k % 3 * 20 : 1 + k * 7 % MAX_TASKS))
                return 1;
        caller callers[CALLERS];
        pthread_t threads[CALLERS];
        for (int c = 0; c < CALLERS; c++) {
            callers[c].pool = pool;
            callers[c].seed = c + 1;
            callers[c].failed = 0;
            if (pthread_create(&threads[c], NULL, run_caller, &callers[c]) != 0)
                return 1;
        }
        int failed = 0;
        for (int c = 0; c < CALLERS; c++) {
            pthread_join(threads[c], NULL);
            failed |= callers[c].failed;
        }
        long long jobs, serial_jobs;
        rnnx_pool_stats(pool, &jobs, &serial_jobs);
        rnnx_pool_destroy(pool);
        if (failed)
            return 1;
        printf("team of %d (%s): %lld jobs, %lld of them on the caller alone\n", size,
               adaptive ? "with the trial" : "every job pooled", jobs, serial_jobs);
    }
    return 0;
}

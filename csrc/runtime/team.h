/*
 * runtime/team.h: what the runtime's files share (not installed, not part of
 * the core): the team (team.c) runs jobs on its threads, the trial (trial.c)
 * decides per kind of job whether the team or the caller alone runs it, the
 * BLAS wrapper (blas.c) runs the hoisted products' blocks as team jobs.
 * Only where the platform has POSIX threads (compiler.h's RNNX_PTHREADS).
 */
#ifndef RNNX_RUNTIME_TEAM_H
#define RNNX_RUNTIME_TEAM_H

#include <stdint.h>

#include "pool.h"

enum {
    MEASURE = 16,             /* jobs timed each way before a verdict */
    KINDS = 16                /* kinds of job tracked at once */
};

/* The trial's state for one kind of job (its task function, task count and
 * key: alike jobs of a time loop, or one product's shape). */
typedef struct job_kind {
    rnnx_task_fn task;
    int n_tasks;
    uint64_t key;
    int trials;               /* jobs timed each way before a verdict (MEASURE at most) */
    long long used;           /* the team's job count when last seen (least recently used goes) */
    int measuring;            /* 1: timing jobs, alternately pooled and serial; 0: running the verdict */
    int count;                /* jobs in this phase */
    int filled[2];            /* [serial]: measured jobs run each way */
    int serial;               /* the verdict: 1 run on the caller alone */
    int stretch;              /* jobs the verdict runs for before the next trial */
    int64_t base;             /* the verdict's median pooled job (ns): the drift watch's yardstick */
    int64_t ns[2][MEASURE];   /* [serial][i]: the times of the measured (or watched) jobs */
} job_kind;

/* The kind of job, found among kinds[KINDS] or made in the least recently used slot. */
job_kind* rnnx_trial_kind(job_kind* kinds, long long jobs, rnnx_task_fn task, int n_tasks,
                          uint64_t key, int trials);

/* Whether the next job of kind k runs on the caller alone. */
int rnnx_trial_serial(const job_kind* k);

/* After a job of kind k that ran serially or not and took ns. */
void rnnx_trial_measured(job_kind* k, int serial, int64_t ns);

/* rnnx_pool_parallel_for, with jobs of one task function and count told apart
 * by key, and `trials` jobs timed each way per trial. */
void rnnx_team_run(void* pool, int n_tasks, rnnx_task_fn task, void* ctx, uint64_t key, int trials);

#endif /* RNNX_RUNTIME_TEAM_H */

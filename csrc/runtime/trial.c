/*
 * runtime/trial.c: whether a kind of job runs on the team or on the caller
 * alone (see team.h).
 *
 * On a busy machine (or where the two "cores" share one), a pooled step can
 * be slower than a serial one: a worker preempted inside a task holds up the
 * step for a time slice, and a spinning worker takes CPU time from the
 * caller.  So per kind of job (a time loop runs hundreds of alike jobs) the
 * team runs 2 * trials jobs alternately by the caller alone and pooled (a
 * pooled job 3x slower than its serial twin ends the trial at once), then
 * runs them pooled only if pooling was at least 5% faster both in total and
 * in the median job (serial, the safe choice, when noise leaves it in doubt).
 *
 * The verdict then holds for a stretch of jobs that grows while verdicts
 * agree: pooled, from STRETCH_MIN to STRETCH_POOLED jobs, with no serial job
 * in between: the pooled jobs are watched instead (they are timed anyway),
 * and a median of DRIFT of them over DRIFT_RATIO times the verdict's, or one
 * stalled job, starts the next trial at once, so a machine that became busy
 * is noticed within a few dozen steps and an idle one is never re-tried per
 * step.  Serial, from STRETCH_MIN to STRETCH_SERIAL jobs (a serial job says
 * nothing about how the team would do), after which a trial looks again.
 * Measured on the 2-core EPYC shared with other busy processes, LSTM
 * (16,128,64,200) took 12.2 ms serially and 14.3 ms pooled with no stall
 * inside a task: the loss was the threads' contention, not preemption alone.
 */
#include "compiler.h"

#ifndef RNNX_PTHREADS
typedef int rnnx_no_trial;  /* the serial build has no trial (ISO C wants a declaration) */
#else

#include <string.h>

#include "runtime/team.h"

enum {
    STRETCH_MIN = 64,         /* jobs run the chosen way after a verdict, doubling while */
    STRETCH_POOLED = 16384,   /* verdicts agree, up to this when pooled */
    STRETCH_SERIAL = 8192,    /* ... and this when serial */
    DRIFT = 16                /* pooled jobs per look of the drift watch */
};

#define DRIFT_RATIO 1.3       /* a watched median this much over the verdict's: try again */
#define STALL_RATIO 3         /* a pooled job this much over a serial one: stalled */

job_kind* rnnx_trial_kind(job_kind* kinds, long long jobs, rnnx_task_fn task, int n_tasks,
                          uint64_t key, int trials)
{
    job_kind* oldest = &kinds[0];
    for (int i = 0; i < KINDS; i++) {
        job_kind* k = &kinds[i];
        if (k->task == task && k->n_tasks == n_tasks && k->key == key) {
            k->used = jobs;
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
    oldest->used = jobs;
    oldest->measuring = 1;
    oldest->serial = 1;
    oldest->stretch = STRETCH_MIN / 2;
    return oldest;
}

int rnnx_trial_serial(const job_kind* k)
{
    /* measuring: serial, pooled, pooled, serial, ...: a job kind whose jobs alternate
     * (two phases of a step) meets both ways alike */
    return k->measuring ? (k->count & 3) == 0 || (k->count & 3) == 3 : k->serial;
}

static int64_t median(int64_t* v, int n)
{
    for (int i = 1; i < n; i++)  /* insertion sort: n is MEASURE at most */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            const int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static void start_trial(job_kind* k)
{
    k->measuring = 1;
    k->count = k->filled[0] = k->filled[1] = 0;
}

/* A pooled job of a pooled verdict: is the team still as fast as when judged? */
static void watch(job_kind* k, int64_t ns)
{
    const int n = (int)DRIFT < (int)MEASURE ? (int)DRIFT : (int)MEASURE;
    const int64_t serial_ns = median(k->ns[1], k->trials);  /* sorted by the verdict */
    if (ns > STALL_RATIO * serial_ns) {
        k->stretch = STRETCH_MIN;
        start_trial(k);
        return;
    }
    k->ns[0][k->filled[0]++] = ns;
    if (k->filled[0] < n)
        return;
    k->filled[0] = 0;
    if ((double)median(k->ns[0], n) > DRIFT_RATIO * (double)k->base) {
        k->stretch = STRETCH_MIN;
        start_trial(k);
    }
}

void rnnx_trial_measured(job_kind* k, int serial, int64_t ns)
{
    if (!k->measuring) {
        if (++k->count >= k->stretch)
            start_trial(k);
        else if (!serial)
            watch(k, ns);
        return;
    }
    if (k->filled[serial] < k->trials)  /* never past ns's room, whatever the caller ran */
        k->ns[serial][k->filled[serial]++] = ns;
    /* a pooled job 3x slower than the last serial one, once there is one (a worker preempted
     * inside a task costs a time slice): serial, without measuring on */
    const int stalled = !serial && k->filled[1] > 0 &&
                        ns > STALL_RATIO * k->ns[1][k->filled[1] - 1];
    if (!stalled && ++k->count < 2 * k->trials)
        return;
    int64_t total[2] = {0, 0};
    for (int i = 0; i < k->trials; i++)
        total[0] += k->ns[0][i], total[1] += k->ns[1][i];
    const int64_t pooled_median = median(k->ns[0], k->trials);
    const int pooled = !stalled && (double)total[0] * 1.05 < (double)total[1] &&
                       (double)pooled_median * 1.05 < (double)median(k->ns[1], k->trials);
    const int most = pooled ? STRETCH_POOLED : STRETCH_SERIAL;
    k->stretch = pooled != k->serial && k->stretch < most ? (pooled ? 2 : 4) * k->stretch : STRETCH_MIN;
    if (k->stretch > most)
        k->stretch = most;
    k->serial = !pooled;
    k->base = pooled_median;
    k->measuring = 0;
    k->count = k->filled[0] = k->filled[1] = 0;
}

#endif /* RNNX_PTHREADS */

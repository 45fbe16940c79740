/*
 * test_threads.c: one model, used by two threads at once, each with its own
 * stream and its own run work, gives what one thread alone gives, bit for bit:
 * the library has no global mutable state.
 *
 *   test_threads DATA_DIR
 */
#include <pthread.h>

#include "testutil.h"

enum { STEPS = 200, B = 2, ROUNDS = 20 };

typedef struct job {
    const rnnx_model* m;
    float* x;        /* (STEPS,B,I) */
    float* out;      /* (STEPS,B,out) stream outputs, then the run's */
    float* run_out;
    int status;
} job;

static void* work_job(void* arg)
{
    job* j = arg;
    const rnnx_model* m = j->m;
    const size_t sb = rnnx_stream_size(m, B), wb = rnnx_model_run_work_size(m, STEPS, B);
    void* smem = malloc(sb);
    void* wmem = malloc(wb);
    rnnx_stream s;
    j->status = rnnx_stream_init(&s, m, NULL, B, smem, sb);
    for (int r = 0; r < ROUNDS && j->status == RNNX_OK; r++) {
        rnnx_stream_reset(&s);
        for (int t = 0; t < STEPS && j->status == RNNX_OK; t++)
            j->status = rnnx_stream_step(&s, j->x + (size_t)t * B * m->input_size,
                                         j->out + (size_t)t * B * m->output_size);
        if (j->status == RNNX_OK)
            j->status = rnnx_model_run(m, NULL, j->x, STEPS, B, NULL, NULL, NULL, j->run_out, wmem, wb);
    }
    free(smem);
    free(wmem);
    return NULL;
}

int main(int argc, char** argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_threads DATA_DIR\n");
        return 2;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/lstm2_f32.rnnx", argv[1]);
    size_t bytes = 0;
    CHECK_STATUS(rnnx_model_file_size(path, &bytes), RNNX_OK);
    void* mem = malloc(bytes);
    rnnx_model m;
    CHECK_STATUS(rnnx_model_from_file(&m, path, mem, bytes), RNNX_OK);
    if (failures)
        return 1;
    const size_t nx = (size_t)STEPS * B * m.input_size, ny = (size_t)STEPS * B * m.output_size;
    job jobs[2], alone[2];
    srand(7);
    for (int k = 0; k < 2; k++) {
        float* x = malloc(nx * sizeof(float));
        for (size_t i = 0; i < nx; i++)
            x[i] = (float)((double)rand() / RAND_MAX * 2 - 1);
        job j = {&m, x, calloc(ny, sizeof(float)), calloc(ny, sizeof(float)), -1};
        job a = {&m, x, calloc(ny, sizeof(float)), calloc(ny, sizeof(float)), -1};
        jobs[k] = j;
        alone[k] = a;
        work_job(&alone[k]);  /* one thread alone: the expected results */
    }
    pthread_t threads[2];
    for (int k = 0; k < 2; k++)
        CHECK(pthread_create(&threads[k], NULL, work_job, &jobs[k]) == 0, "pthread_create");
    for (int k = 0; k < 2; k++)
        pthread_join(threads[k], NULL);
    for (int k = 0; k < 2; k++) {
        CHECK_STATUS(jobs[k].status, RNNX_OK);
        CHECK_STATUS(alone[k].status, RNNX_OK);
        CHECK(memcmp(jobs[k].out, alone[k].out, ny * sizeof(float)) == 0,
              "thread %d: stream outputs differ from one thread alone", k);
        CHECK(memcmp(jobs[k].run_out, alone[k].run_out, ny * sizeof(float)) == 0,
              "thread %d: run outputs differ from one thread alone", k);
        /* a stream over the whole sequence equals the whole-sequence run */
        double scale = 1, err = 0;
        for (size_t i = 0; i < ny; i++) {
            double e = fabs((double)jobs[k].out[i] - jobs[k].run_out[i]);
            err = e > err ? e : err;
        }
        CHECK(err <= 1e-5 * scale, "thread %d: stream and run differ by %g", k, err);
        free(jobs[k].x);
        free(jobs[k].out);
        free(jobs[k].run_out);
        free(alone[k].out);
        free(alone[k].run_out);
    }
    free(mem);
    if (failures)
        fprintf(stderr, "test_threads: %d checks failed\n", failures);
    return failures ? 1 : 0;
}

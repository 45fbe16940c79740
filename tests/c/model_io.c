/*
 * model_io.c: runs an .rnnx model on numbers read from stdin and prints what
 * the C library computes, exactly (%a), for the Python tests that compare it
 * with the Python model (tests/test_quant_c.py).  Not a ctest.
 *
 *   model_io MODEL.rnnx run T B CHUNK    stdin: B lengths (-1: none), then x
 *       (T,B,I) floats, or (T,B) ids for a token model.  Runs rnnx_model_run
 *       on chunks of CHUNK steps (each call's state_n the next one's state0;
 *       lengths only when CHUNK == T) and prints y, then the final state.
 *   model_io MODEL.rnnx stream T B       stdin: x as above (no lengths).
 *       Prints the T outputs of rnnx_stream_step, then rnnx_stream_size.
 *
 * Values are read with strtod (C99 hexadecimal floats are exact).  Float32
 * models only.  Exit status 0, or 1 with the library's message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnx_model.h"

static int fail(const char* what, int status)
{
    fprintf(stderr, "model_io: %s: %s\n", what, rnnx_strerror(status));
    return 1;
}

static void print_floats(const float* v, size_t n)
{
    for (size_t k = 0; k < n; k++)
        printf("%a%c", (double)v[k], k + 1 == n ? '\n' : ' ');
    if (n == 0)
        printf("\n");
}

int main(int argc, char** argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: model_io MODEL.rnnx run T B CHUNK | stream T B\n");
        return 2;
    }
    const int run = strcmp(argv[2], "run") == 0, T = atoi(argv[3]), B = atoi(argv[4]);
    const int chunk = run && argc > 5 ? atoi(argv[5]) : T;
    size_t bytes = 0;
    int status = rnnx_model_file_size(argv[1], &bytes);
    if (status != RNNX_OK)
        return fail("size", status);
    void* mem = malloc(bytes);
    rnnx_model m;
    status = rnnx_model_from_file(&m, argv[1], mem, bytes);
    if (status != RNNX_OK)
        return fail("load", status);
    if (m.dtype != RNNX_FLOAT32 || T < 1 || B < 1 || chunk < 1)
        return fail("arguments", RNNX_EINVAL);
    const int ids = m.layers[0].kind == RNNX_EMBEDDING;
    const size_t per_row = ids ? 1 : (size_t)m.input_size;
    int64_t* lengths = calloc((size_t)B, sizeof(int64_t));
    int has_lengths = 0;
    for (int b = 0; run && b < B; b++) {
        double v = 0;
        if (scanf("%lf", &v) != 1)
            return fail("lengths", RNNX_EINVAL);
        lengths[b] = (int64_t)v;
        has_lengths |= v >= 0;
    }
    const size_t nx = (size_t)T * B * per_row;
    float* x = malloc(nx * sizeof(float) + 1);
    int32_t* x_ids = malloc(nx * sizeof(int32_t) + 1);
    char token[128];
    for (size_t k = 0; k < nx; k++) {
        if (scanf("%127s", token) != 1)
            return fail("x", RNNX_EINVAL);
        x[k] = strtof(token, NULL);
        x_ids[k] = (int32_t)strtol(token, NULL, 10);
    }
    const void* input = ids ? (const void*)x_ids : (const void*)x;
    const size_t step_in = (size_t)B * per_row * (ids ? sizeof(int32_t) : sizeof(float));
    const size_t out = (size_t)m.output_size;
    if (run) {
        const size_t rows = m.many_to_one ? (size_t)B : (size_t)T * B;
        const size_t state_floats = rnnx_model_state_size(&m, B) / sizeof(float);
        float* y = calloc(rows * out + 1, sizeof(float));
        float* state = calloc(state_floats + 1, sizeof(float));
        for (int t0 = 0; t0 < T; t0 += chunk) {
            const int n = t0 + chunk <= T ? chunk : T - t0;
            const size_t wb = rnnx_model_run_work_size(&m, n, B);
            void* work = malloc(wb);
            float* y_at = m.many_to_one ? y : y + (size_t)t0 * B * out;
            status = rnnx_model_run(&m, NULL, (const char*)input + (size_t)t0 * step_in, n, B,
                                    has_lengths && chunk == T ? lengths : NULL,
                                    t0 ? state : NULL, state, y_at, work, wb);
            free(work);
            if (status != RNNX_OK)
                return fail("run", status);
        }
        print_floats(y, rows * out);
        print_floats(state, state_floats);
        free(y);
        free(state);
    } else {
        const size_t sb = rnnx_stream_size(&m, B);
        void* smem = malloc(sb ? sb : 1);
        rnnx_stream s;
        status = rnnx_stream_init(&s, &m, NULL, B, smem, sb);
        if (status != RNNX_OK)
            return fail("stream", status);
        float* y = malloc((size_t)B * out * sizeof(float));
        for (int t = 0; t < T; t++) {
            status = rnnx_stream_step(&s, (const char*)input + (size_t)t * step_in, y);
            if (status != RNNX_OK)
                return fail("step", status);
            print_floats(y, (size_t)B * out);
        }
        printf("%zu\n", sb);
        free(y);
        free(smem);
    }
    free(x);
    free(x_ids);
    free(lengths);
    free(mem);
    return 0;
}

/*
 * test_chunks.c: rnnx_model_run with an initial and a final state.  A long
 * sequence run in chunks of uneven lengths, each chunk starting from the state
 * the previous one ended in, equals one call over the whole sequence bit for
 * bit (outputs and final state); state0 of zeros equals state0 NULL; state_n
 * may be state0; a row of length 0 keeps its state; a bidirectional model
 * takes a state too (its reverse half ends at t = 0, so it does not chunk).
 * A stream (rnnx_stream_step, the core's one stream) of the T steps equals the
 * one call bit for bit, and again after rnnx_stream_reset.
 *
 *   test_chunks DATA_DIR NAME...    exits 1 on any failure
 */
#include "testutil.h"

enum { T_LONG = 61, B_ROWS = 3 };

/* uneven chunk lengths, adding up to T_LONG: a chunk of one step included */
static const int chunk_lengths[] = {1, 7, 16, 2, 35};

static int load(const char* dir, const char* name, rnnx_model* m, void** mem)
{
    char path[1024];
    size_t bytes = 0;
    snprintf(path, sizeof path, "%s/%s.rnnx", dir, name);
    int status = rnnx_model_file_size(path, &bytes);
    *mem = malloc(bytes ? bytes : 1);
    if (status == RNNX_OK)
        status = rnnx_model_from_file(m, path, *mem, bytes);
    CHECK_STATUS(status, RNNX_OK);
    return status == RNNX_OK;
}

static int bidirectional(const rnnx_model* m)
{
    for (int i = 0; i < m->num_layers; i++)
        if (m->layers[i].num_directions == 2)
            return 1;
    return 0;
}

static int takes_ids(const rnnx_model* m)
{
    return m->layers[0].kind == RNNX_EMBEDDING;
}

/* x (T_LONG,B,I) of the model's dtype: a fixed pseudo-random signal in [-2, 2);
 * for a token model (T_LONG,B) int32 ids in [0, input_size) */
static void* make_signal(const rnnx_model* m, size_t n)
{
    double* v = malloc(n * sizeof(double));
    int32_t* ids = takes_ids(m) ? malloc(n * sizeof(int32_t)) : NULL;
    uint32_t state = 12345u;
    for (size_t k = 0; k < n; k++) {
        state = state * 1664525u + 1013904223u;
        v[k] = (double)(state >> 8) / (double)(1u << 24) * 4.0 - 2.0;
        if (ids)
            ids[k] = (int32_t)((state >> 8) % (uint32_t)m->input_size);
    }
    void* x = ids ? (void*)ids : as_dtype(v, n, m->dtype);
    free(v);
    return x;
}

/* T_LONG steps of a stream over x equal y_one, the whole sequence's outputs (rows_out of
 * them: T_LONG, or the last step's for a many-to-one model), bit for bit, twice. */
static void check_stream(const rnnx_model* m, const char* name, const void* x, size_t x_step,
                         const void* y_one, size_t rows_out)
{
    const size_t elem = m->dtype == RNNX_FLOAT64 ? 8 : 4;
    const size_t row = (size_t)B_ROWS * m->output_size * elem;   /* one step's y */
    const size_t bytes = rnnx_stream_size(m, B_ROWS);
    CHECK(bytes > 0, "%s: no stream size", name);
    void* smem = malloc(bytes);
    void* y = malloc((size_t)T_LONG * row);
    rnnx_stream s;
    CHECK_STATUS(rnnx_stream_init(&s, m, NULL, B_ROWS, smem, bytes), RNNX_OK);
    for (int pass = 0; pass < 2; pass++) {
        for (int t = 0; t < T_LONG; t++)
            CHECK_STATUS(rnnx_stream_step(&s, (const char*)x + (size_t)t * x_step,
                                          (char*)y + (size_t)t * row),
                         RNNX_OK);
        const size_t at = rows_out == 1 ? (size_t)(T_LONG - 1) * row : 0;
        CHECK(memcmp((char*)y + at, y_one, rows_out * row) == 0,
              "%s: stream pass %d differs from rnnx_model_run bit for bit", name, pass);
        CHECK_STATUS(rnnx_stream_reset(&s), RNNX_OK);
    }
    free(y);
    free(smem);
}

static void check_case(const char* dir, const char* name)
{
    rnnx_model m;
    void* mem;
    if (!load(dir, name, &m, &mem)) {
        free(mem);
        return;
    }
    const int B = B_ROWS, I = m.input_size, out = m.output_size;
    const size_t elem = m.dtype == RNNX_FLOAT64 ? 8 : 4;
    const size_t sbytes = rnnx_model_state_size(&m, B);
    CHECK(sbytes > 0 && sbytes % elem == 0, "%s: state size %zu", name, sbytes);
    const size_t rows_out = m.many_to_one ? 1 : (size_t)T_LONG;  /* y of one call: rows_out*B*out */
    const size_t wb = rnnx_model_run_work_size(&m, T_LONG, B);
    void* work = malloc(wb);
    void* x = make_signal(&m, (size_t)T_LONG * B * (takes_ids(&m) ? 1 : I));
    const size_t x_step = takes_ids(&m) ? B * sizeof(int32_t) : (size_t)B * I * elem;
    void* y_one = malloc(rows_out * B * out * elem);
    void* y_chunks = malloc((size_t)T_LONG * B * out * elem);
    void* state_one = malloc(sbytes);
    void* state = malloc(sbytes);
    void* zeros = calloc(1, sbytes);
    void* y_zero = malloc(rows_out * B * out * elem);

    /* one call from zeros, with state0 NULL and with state0 of zeros */
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T_LONG, B, NULL, NULL, state_one, y_one, work, wb),
                 RNNX_OK);
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T_LONG, B, NULL, zeros, state, y_zero, work, wb),
                 RNNX_OK);
    CHECK(memcmp(y_one, y_zero, rows_out * B * out * elem) == 0 &&
              memcmp(state_one, state, sbytes) == 0,
          "%s: state0 of zeros differs from state0 NULL", name);
    int nonzero = 0;
    for (size_t k = 0; k < sbytes; k++)
        nonzero |= ((unsigned char*)state_one)[k] != 0;
    CHECK(nonzero, "%s: the final state is all zeros", name);

    /* in chunks, the state updated in place */
    if (!bidirectional(&m)) {
        memset(state, 0, sbytes);
        int t = 0;
        for (size_t c = 0; c < sizeof chunk_lengths / sizeof chunk_lengths[0]; c++) {
            const int n = chunk_lengths[c];
            const size_t y_at = m.many_to_one ? 0 : (size_t)t * B * out;  /* m2o: the last wins */
            CHECK_STATUS(rnnx_model_run(&m, NULL, (const char*)x + (size_t)t * x_step, n, B,
                                        NULL, state, state, (char*)y_chunks + y_at * elem, work,
                                        wb),
                         RNNX_OK);
            t += n;
        }
        CHECK(t == T_LONG, "chunks add up to %d", t);
        CHECK(memcmp(y_chunks, y_one, rows_out * B * out * elem) == 0,
              "%s: the outputs in chunks differ from one call", name);
        CHECK(memcmp(state, state_one, sbytes) == 0,
              "%s: the final state in chunks differs from one call", name);
        check_stream(&m, name, x, x_step, y_one, rows_out);
    } else {
        /* the reverse direction reads state0 too: a run from state_one differs; over 2
         * steps, not T_LONG, which an int8 model's quantized activations may forget */
        CHECK_STATUS(rnnx_model_run(&m, NULL, x, 2, B, NULL, state_one, state, y_zero, work, wb),
                     RNNX_OK);
        CHECK_STATUS(rnnx_model_run(&m, NULL, x, 2, B, NULL, NULL, state, y_chunks, work, wb),
                     RNNX_OK);
        CHECK(memcmp(y_zero, y_chunks, (m.many_to_one ? 1 : 2) * B * out * elem) != 0,
              "%s: the initial state changed nothing", name);
    }

    /* lengths {T, 0, 5}: row 0 ends as a run of T steps does, row 1 keeps its state, row 2
     * ends as a run of 5 steps does, each from state_one */
    int64_t lengths[B_ROWS] = {T_LONG, 0, 5};
    const int row_steps[B_ROWS] = {T_LONG, 0, 5};
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T_LONG, B, lengths, state_one, state, y_zero, work,
                                wb),
                 RNNX_OK);
    for (int b = 0; b < B; b++) {
        void* want = state_one;
        if (row_steps[b]) {
            want = zeros;  /* reused: zeros is not read again */
            CHECK_STATUS(rnnx_model_run(&m, NULL, x, row_steps[b], B, NULL, state_one, want,
                                        y_chunks, work, wb),
                         RNNX_OK);
        }
        /* each sub-layer's h is a (B,S) block (S = proj_size, or H), an LSTM's c then a
         * (B,H) one: compare row b of every block */
        size_t at = 0;
        int same = 1;
        for (int i = 0; i < m.num_layers; i++) {
            const rnnx_layer* l = &m.layers[i];
            if (l->kind == RNNX_DENSE || l->kind == RNNX_EMBEDDING)
                continue;
            const size_t blocks = (size_t)l->num_layers * l->num_directions;
            for (int part = 0; part < (l->kind == RNNX_LSTM ? 2 : 1); part++) {
                const int width = part == 0 && l->proj_size ? l->proj_size : l->hidden_size;
                const size_t row = (size_t)width * elem;
                for (size_t k = 0; k < blocks; k++, at += B * row)
                    same &= memcmp((char*)state + at + b * row, (char*)want + at + b * row,
                                   row) == 0;
            }
        }
        CHECK(at == sbytes, "%s: the state blocks add up to %zu, not %zu bytes", name, at, sbytes);
        CHECK(same, "%s: with lengths, row %d's final state is not that of %d steps", name, b,
              row_steps[b]);
    }

    /* misaligned states are refused */
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T_LONG, B, NULL, (char*)state + 1, NULL, y_zero, work,
                                wb),
                 RNNX_EALIGN);
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T_LONG, B, NULL, NULL, (char*)state + 2, y_zero, work,
                                wb),
                 RNNX_EALIGN);
    CHECK(rnnx_model_state_size(&m, 0) == 0 && rnnx_model_state_size(NULL, B) == 0,
          "%s: state size of B = 0 or no model", name);

    free(work);
    free(x);
    free(y_one);
    free(y_chunks);
    free(state_one);
    free(state);
    free(zeros);
    free(y_zero);
    free(mem);
}

int main(int argc, char** argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_chunks DATA_DIR NAME...\n");
        return 2;
    }
    for (int k = 2; k < argc; k++)
        check_case(argv[1], argv[k]);
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}

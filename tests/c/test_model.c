/*
 * test_model.c: models read from .rnnx files (and from memory buffers) run
 * whole sequences and streams, checked against the outputs rnnx/reference.py
 * computed for them (tests/c/make_data.py).  A token model (an Embedding
 * first) takes its x as int32 ids (T,B).
 *
 *   test_model DATA_DIR NAME...    checks each case, exits 1 on any failure
 *   test_model --dump DATA_DIR NAME...   also prints every output (%a), so two
 *                                  builds (x86-64, aarch64) can be compared
 */
#include "testutil.h"

static int dump = 0;

static void print_values(const char* what, const char* name, const void* v, int dtype, size_t n)
{
    if (!dump)
        return;
    printf("%s %s", name, what);
    for (size_t k = 0; k < n; k++)
        printf(" %a", value_at(v, dtype, k));
    printf("\n");
}

static void check_case(const char* dir, const char* name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.ref", dir, name);
    ref_case c;
    if (!read_ref(path, &c)) {
        CHECK(0, "cannot read %s", path);
        return;
    }
    snprintf(path, sizeof path, "%s/%s.rnnx", dir, name);

    /* from the file */
    size_t bytes = 0;
    CHECK_STATUS(rnnx_model_file_size(path, &bytes), RNNX_OK);
    void* mem = malloc(bytes ? bytes : 1);
    rnnx_model m;
    int status = rnnx_model_from_file(&m, path, mem, bytes);
    CHECK_STATUS(status, RNNX_OK);
    if (status != RNNX_OK) {
        free(mem);
        free_ref(&c);
        return;
    }
    CHECK_STATUS(rnnx_model_check(&m), RNNX_OK);

    /* and the same bytes from a buffer: the same model */
    size_t len = 0;
    unsigned char* image = read_all(path, &len);
    size_t table = 0;
    CHECK_STATUS(rnnx_model_mem_size(image, len, &table), RNNX_OK);
    void* table_mem = malloc(table ? table : 1);
    rnnx_model mb;
    CHECK_STATUS(rnnx_model_from_buffer(&mb, table_mem, table, image, len), RNNX_OK);
    CHECK(mb.num_layers == m.num_layers && mb.dtype == m.dtype && mb.input_size == m.input_size &&
          mb.output_size == m.output_size && mb.many_to_one == m.many_to_one,
          "%s: the buffer and the file give different models", name);

    const int dtype = m.dtype, T = c.T, B = c.B;
    const size_t elem = dtype == RNNX_FLOAT64 ? 8 : 4;
    const int ids = m.layers[0].kind == RNNX_EMBEDDING;
    const size_t step_in = ids ? (size_t)B * sizeof(int32_t) : (size_t)B * m.input_size * elem;
    CHECK(c.nx == (size_t)T * B * (ids ? 1 : m.input_size), "%s: x has %zu values", name, c.nx);
    void* x = ids ? malloc(c.nx * sizeof(int32_t) + 1) : as_dtype(c.x, c.nx, dtype);
    for (size_t k = 0; ids && k < c.nx; k++)
        ((int32_t*)x)[k] = (int32_t)c.x[k];

    /* whole sequence */
    const size_t work_bytes = rnnx_model_run_work_size(&m, T, B);
    CHECK(work_bytes > 0, "%s: no work size", name);
    void* work = malloc(work_bytes);
    void* y = malloc(c.ny * elem + 1);
    const rnnx_model* models[2] = {&m, &mb};
    for (int which = 0; which < 2; which++) {
        memset(y, 0xff, c.ny * elem);  /* NaN: an output left unwritten shows */
        CHECK_STATUS(rnnx_model_run(models[which], NULL, x, T, B, c.has_lengths ? c.lengths : NULL,
                                    NULL, NULL, y, work, work_bytes), RNNX_OK);
        double err = scaled_error(y, dtype, c.y, c.ny);
        CHECK(err <= tolerance(dtype), "%s: run (%s) differs from the reference by %g", name,
              which ? "buffer" : "file", err);
    }
    print_values("run", name, y, dtype, c.ny);

    /* stream, T steps over x without lengths */
    const size_t sbytes = rnnx_stream_size(&m, B);
    if (c.ns) {
        CHECK(sbytes > 0, "%s: no stream size", name);
        void* smem = malloc(sbytes);
        void* s_out = malloc(c.ns * elem);
        rnnx_stream s;
        CHECK_STATUS(rnnx_stream_init(&s, &m, NULL, B, smem, sbytes), RNNX_OK);
        const size_t step_out = (size_t)B * m.output_size;
        for (int pass = 0; pass < 2; pass++) {  /* reset gives the same again */
            for (int t = 0; t < T; t++)
                CHECK_STATUS(rnnx_stream_step(&s, (const char*)x + (size_t)t * step_in,
                                              (char*)s_out + (size_t)t * step_out * elem), RNNX_OK);
            double err = scaled_error(s_out, dtype, c.s, c.ns);
            CHECK(err <= tolerance(dtype), "%s: stream pass %d differs from the reference by %g",
                  name, pass, err);
            CHECK_STATUS(rnnx_stream_reset(&s), RNNX_OK);
        }
        print_values("stream", name, s_out, dtype, c.ns);
        if (ids) {  /* an id out of range: refused before the state changes */
            int32_t bad[64];
            for (int b = 0; b < B && b < 64; b++)
                bad[b] = b == B - 1 ? m.input_size : 0;
            CHECK_STATUS(rnnx_stream_step(&s, bad, s_out), RNNX_EINVAL);
            bad[B - 1] = -1;
            CHECK_STATUS(rnnx_stream_step(&s, bad, s_out), RNNX_EINVAL);
            CHECK_STATUS(rnnx_stream_step(&s, x, s_out), RNNX_OK);  /* from the zero state */
            double err = scaled_error(s_out, dtype, c.s, (size_t)B * m.output_size);
            CHECK(err <= tolerance(dtype), "%s: a refused step changed the state (%g)", name, err);
            ((int32_t*)x)[0] = m.input_size;
            CHECK_STATUS(rnnx_model_run(&m, NULL, x, T, B, NULL, NULL, NULL, y, work, work_bytes),
                         RNNX_EINVAL);
            ((int32_t*)x)[0] = (int32_t)c.x[0];
        }
        free(smem);
        free(s_out);
    } else {
        rnnx_stream s;
        char small[64];
        CHECK(sbytes == 0, "%s: a bidirectional model has stream size %zu", name, sbytes);
        CHECK_STATUS(rnnx_stream_init(&s, &m, NULL, B, small, sizeof small), RNNX_EUNSUPPORTED);
    }
    free(x);
    free(y);
    free(work);
    free(table_mem);
    free(image);
    free(mem);
    free_ref(&c);
}

int main(int argc, char** argv)
{
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--dump") == 0) {
        dump = 1;
        first = 2;
    }
    if (argc < first + 2) {
        fprintf(stderr, "usage: test_model [--dump] DATA_DIR NAME...\n");
        return 2;
    }
    for (int i = first + 1; i < argc; i++)
        check_case(argv[first], argv[i]);
    if (failures)
        fprintf(stderr, "test_model: %d checks failed\n", failures);
    return failures ? 1 : 0;
}

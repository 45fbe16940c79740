/*
 * test_errors.c: bad input gives a status and an error string, never a crash:
 * NULL and out-of-range arguments, too little or misaligned memory, a model
 * that cannot stream, and .rnnx data truncated at every byte offset, with any
 * byte altered, or altered with its CRC-32 recomputed (so the field checks,
 * not the checksum, must catch it).
 *
 *   test_errors DATA_DIR
 */
#include "testutil.h"

static const char* SMALL = "lstm_m2o_f32";        /* LSTM 3->7, Dense 7->2, many-to-one */
static const char* BIDIRECTIONAL = "gru_bi_softmax_m2o_f32";

static uint32_t crc32_ref(const unsigned char* p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return crc ^ 0xffffffffu;
}

static void put_u32(unsigned char* p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

static void reseal(unsigned char* image, size_t len)
{
    put_u32(image + len - 4, crc32_ref(image, len - 4));
}

/* Parse buf[0..len) copied into an exact-size allocation; if it parses, run it
 * (whole sequence and a stream step) to show nothing reads out of bounds. */
static int parse_and_run(const unsigned char* buf, size_t len)
{
    unsigned char* copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    size_t table = 0;
    int status = rnnx_model_mem_size(copy, len, &table);
    if (status == RNNX_OK) {
        void* mem = malloc(table ? table : 1);
        rnnx_model m;
        status = rnnx_model_from_buffer(&m, mem, table, copy, len);
        if (status == RNNX_OK) {
            const int T = 3, B = 2;
            const size_t elem = m.dtype == RNNX_FLOAT64 ? 8 : 4;
            const size_t wb = rnnx_model_run_work_size(&m, T, B);
            void* x = calloc((size_t)T * B * m.input_size, elem);
            void* y = malloc((size_t)T * B * m.output_size * elem);
            void* work = malloc(wb ? wb : 1);
            CHECK_STATUS(rnnx_model_run(&m, NULL, x, T, B, NULL, NULL, NULL, y, work, wb), RNNX_OK);
            const size_t sb = rnnx_stream_size(&m, B);
            if (sb) {
                void* smem = malloc(sb);
                rnnx_stream s;
                CHECK_STATUS(rnnx_stream_init(&s, &m, NULL, B, smem, sb), RNNX_OK);
                CHECK_STATUS(rnnx_stream_step(&s, x, y), RNNX_OK);
                free(smem);
            }
            free(x);
            free(y);
            free(work);
        }
        free(mem);
    }
    free(copy);
    return status;
}

static void test_strings(void)
{
    for (int code = -1; code < 40; code++) {
        const char* s = rnnx_strerror(code);
        CHECK(s != NULL && s[0] != '\0', "rnnx_strerror(%d) is empty", code);
    }
    CHECK(strcmp(rnnx_strerror(RNNX_ECHECKSUM), rnnx_strerror(RNNX_ETRUNCATED)) != 0,
          "two codes share a message");
    CHECK(strcmp(rnnx_version(), RNNX_VERSION_STRING) == 0, "rnnx_version() is %s, the header says %s",
          rnnx_version(), RNNX_VERSION_STRING);
}

static void test_image(const unsigned char* image, size_t len)
{
    if (!image || len < 160) {
        CHECK(0, "the test image is missing or too short (%zu bytes)", len);
        return;
    }
    /* intact */
    CHECK_STATUS(parse_and_run(image, len), RNNX_OK);
    /* every truncation */
    for (size_t n = 0; n < len; n++) {
        int status = parse_and_run(image, n);
        CHECK(status == RNNX_ETRUNCATED, "truncated to %zu of %zu bytes: status %d (%s)", n, len,
              status, rnnx_strerror(status));
    }
    /* one byte altered, at every offset: the CRC (or an earlier check) must catch it */
    unsigned char* bad = malloc(len + 16);  /* (+16: GCC cannot see that len >= 160 here) */
    srand(12345);
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, image, len);
        bad[i] ^= (unsigned char)(1 + rand() % 255);
        int status = parse_and_run(bad, len);
        CHECK(status != RNNX_OK, "byte %zu altered: the image still parses", i);
        if (i < 8)
            CHECK(status == RNNX_EMAGIC, "magic byte %zu altered: status %d", i, status);
        else if (i < 12)
            CHECK(status == RNNX_EVERSION, "version byte %zu altered: status %d", i, status);
    }
    /* an unknown version, resealed: EVERSION; a version-1 body is also valid
     * as version 2, but an Embedding (kind 17) or the last-output flag is not valid in
     * version 1 */
    memcpy(bad, image, len);
    put_u32(bad + 8, 4);
    reseal(bad, len);
    CHECK_STATUS(parse_and_run(bad, len), RNNX_EVERSION);
    const int version = image[8];
    put_u32(bad + 8, version == 1 ? 2 : 1);
    reseal(bad, len);
    CHECK_STATUS(parse_and_run(bad, len), version == 1 ? RNNX_OK : RNNX_ECORRUPT);
    /* every body is valid as version 3 (which adds int8/bfloat16 weights) */
    put_u32(bad + 8, 3);
    reseal(bad, len);
    CHECK_STATUS(parse_and_run(bad, len), RNNX_OK);
    /* hostile: random header and descriptor bytes with a valid CRC.  Each must
     * give a status; those that parse must run without a read out of bounds. */
    int parsed = 0;
    for (int trial = 0; trial < 4000; trial++) {
        memcpy(bad, image, len);
        const int flips = 1 + rand() % 3;
        for (int f = 0; f < flips; f++) {
            size_t at = 12 + (size_t)rand() % 148;  /* header and descriptors */
            bad[at] = (unsigned char)(rand() % 4 == 0 ? (unsigned)rand() % 256u
                                                       : bad[at] ^ (1u << (rand() % 8)));
        }
        reseal(bad, len);
        int status = parse_and_run(bad, len);
        parsed += status == RNNX_OK;
        CHECK(status == RNNX_OK || status == RNNX_ECORRUPT || status == RNNX_ETRUNCATED,
              "trial %d: unexpected status %d", trial, status);
    }
    printf("hostile images that still parsed (and ran): %d of 4000\n", parsed);
    free(bad);
}

static void test_arguments(const char* dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.rnnx", dir, SMALL);
    size_t bytes = 0;
    rnnx_model m;
    CHECK_STATUS(rnnx_model_file_size("/nonexistent/model.rnnx", &bytes), RNNX_EIO);
    CHECK_STATUS(rnnx_model_file_size(NULL, &bytes), RNNX_ENULL);
    CHECK_STATUS(rnnx_model_file_size(path, &bytes), RNNX_OK);
    double* mem = malloc(bytes + 16);
    CHECK_STATUS(rnnx_model_from_file(&m, path, mem, bytes - 1), RNNX_ENOMEM);
    CHECK_STATUS(rnnx_model_from_file(&m, path, (char*)mem + 4, bytes), RNNX_EALIGN);
    CHECK_STATUS(rnnx_model_from_file(NULL, path, mem, bytes), RNNX_ENULL);
    CHECK_STATUS(rnnx_model_from_file(&m, path, mem, bytes), RNNX_OK);

    size_t len = 0;
    unsigned char* image = read_all(path, &len);
    if (!image || len < 160) {
        CHECK(0, "cannot read %s", path);
        return;
    }
    size_t table = 0;
    size_t unused = 1;
    CHECK_STATUS(rnnx_model_mem_size(NULL, len, &unused), RNNX_ENULL);
    CHECK(unused == 0, "a failed size call leaves %zu, not 0", unused);
    CHECK_STATUS(rnnx_model_mem_size(image, len, NULL), RNNX_ENULL);
    CHECK_STATUS(rnnx_model_mem_size(image, len, &table), RNNX_OK);
    void* tmem = malloc(table);
    rnnx_model mb;
    CHECK_STATUS(rnnx_model_from_buffer(&mb, tmem, table - 1, image, len), RNNX_ENOMEM);
    unsigned char* shifted = malloc(len + 8);
    memcpy(shifted + 4, image, len);
    CHECK_STATUS(rnnx_model_from_buffer(&mb, tmem, table, shifted + 4, len), RNNX_EALIGN);
    free(shifted);

    /* run: bad sizes, lengths, NULLs, memory */
    const int T = 4, B = 2;
    const size_t wb = rnnx_model_run_work_size(&m, T, B);
    float* x = calloc((size_t)T * B * m.input_size, sizeof(float));
    float* y = calloc((size_t)B * m.output_size, sizeof(float));
    double* work = malloc(wb + 8);
    int64_t lengths[2] = {4, 5};
    CHECK(rnnx_model_run_work_size(&m, 0, B) == 0 && rnnx_model_run_work_size(NULL, T, B) == 0,
          "a work size for a bad call");
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T, B, lengths, NULL, NULL, y, work, wb), RNNX_EINVAL);
    lengths[1] = -1;
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T, B, lengths, NULL, NULL, y, work, wb), RNNX_EINVAL);
    lengths[1] = 0;   /* a row of length 0 runs no step */
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T, B, lengths, NULL, NULL, y, work, wb), RNNX_OK);
    lengths[1] = 2;
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T, B, lengths, NULL, NULL, y, work, wb), RNNX_OK);
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, 0, B, NULL, NULL, NULL, y, work, wb), RNNX_EINVAL);
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T, -1, NULL, NULL, NULL, y, work, wb), RNNX_EINVAL);
    CHECK_STATUS(rnnx_model_run(&m, NULL, NULL, T, B, NULL, NULL, NULL, y, work, wb), RNNX_ENULL);
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T, B, NULL, NULL, NULL, NULL, work, wb), RNNX_ENULL);
    CHECK_STATUS(rnnx_model_run(NULL, NULL, x, T, B, NULL, NULL, NULL, y, work, wb), RNNX_ENULL);
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T, B, NULL, NULL, NULL, y, work, wb - 1), RNNX_ENOMEM);
    CHECK_STATUS(rnnx_model_run(&m, NULL, x, T, B, NULL, NULL, NULL, y, (char*)work + 4, wb), RNNX_EALIGN);

    /* a hand-made model with inconsistent sizes */
    rnnx_layer broken = m.layers[1];
    broken.input_size += 1;
    rnnx_layer pair[2];
    pair[0] = m.layers[0];
    pair[1] = broken;
    rnnx_model bad = m;
    bad.layers = pair;
    CHECK_STATUS(rnnx_model_check(&bad), RNNX_EINVAL);
    CHECK_STATUS(rnnx_model_run(&bad, NULL, x, T, B, NULL, NULL, NULL, y, work, wb), RNNX_EINVAL);
    pair[1] = m.layers[1];
    pair[1].tensors = NULL;
    CHECK_STATUS(rnnx_model_check(&bad), RNNX_ENULL);

    /* stream: bad arguments; a failed step leaves the state alone */
    const size_t sb = rnnx_stream_size(&m, B);
    double* smem = malloc(sb);
    rnnx_stream s;
    CHECK(rnnx_stream_size(&m, 0) == 0, "a stream size for B=0");
    CHECK_STATUS(rnnx_stream_init(&s, &m, NULL, 0, smem, sb), RNNX_EINVAL);
    CHECK_STATUS(rnnx_stream_init(&s, &m, NULL, B, smem, sb - 1), RNNX_ENOMEM);
    CHECK_STATUS(rnnx_stream_init(&s, &m, NULL, B, (char*)smem + 4, sb), RNNX_EALIGN);
    CHECK_STATUS(rnnx_stream_init(&s, &m, NULL, B, NULL, sb), RNNX_ENULL);
    CHECK_STATUS(rnnx_stream_init(&s, &m, NULL, B, smem, sb), RNNX_OK);
    CHECK_STATUS(rnnx_stream_step(&s, NULL, y), RNNX_ENULL);
    CHECK_STATUS(rnnx_stream_step(&s, x, NULL), RNNX_ENULL);
    CHECK_STATUS(rnnx_stream_step(NULL, x, y), RNNX_ENULL);

    /* a bidirectional model cannot stream */
    snprintf(path, sizeof path, "%s/%s.rnnx", dir, BIDIRECTIONAL);
    size_t bb = 0;
    CHECK_STATUS(rnnx_model_file_size(path, &bb), RNNX_OK);
    double* bmem = malloc(bb);
    rnnx_model bi;
    CHECK_STATUS(rnnx_model_from_file(&bi, path, bmem, bb), RNNX_OK);
    CHECK(rnnx_stream_size(&bi, 1) == 0, "a bidirectional model has a stream size");
    CHECK_STATUS(rnnx_stream_init(&s, &bi, NULL, 1, smem, sb), RNNX_EUNSUPPORTED);

    /* not an .rnnx file at all */
    const unsigned char text[] = "hello, this is not a model file at all, but long enough......"
                                 "..........................................................";
    CHECK_STATUS(parse_and_run(text, sizeof text), RNNX_EMAGIC);

    test_image(image, len);
    /* and a token model's (version 2: an Embedding first) */
    snprintf(path, sizeof path, "%s/embed_gru_dense_f32.rnnx", dir);
    size_t embed_len = 0;
    unsigned char* embed_image = read_all(path, &embed_len);
    CHECK(embed_image && embed_image[8] == 2, "%s: not a version-2 file", path);
    test_image(embed_image, embed_len);
    free(embed_image);
    /* and a many_to_one="output" model's (version 2: the last-output flag); the flag in a
     * file that says version 1 is corrupt, as Python's reader says too */
    snprintf(path, sizeof path, "%s/lstm_bi_output_m2o_f64.rnnx", dir);
    size_t output_len = 0;
    unsigned char* output_image = read_all(path, &output_len);
    CHECK(output_image && output_image[8] == 2 && (output_image[20] & 4),
          "%s: not a version-2 file with the last-output flag", path);
    if (output_image) {
        test_image(output_image, output_len);
        put_u32(output_image + 8, 1);
        reseal(output_image, output_len);
        CHECK_STATUS(parse_and_run(output_image, output_len), RNNX_ECORRUPT);
    }
    free(output_image);
    free(bmem);
    free(smem);
    free(x);
    free(y);
    free(work);
    free(tmem);
    free(image);
    free(mem);
}

/* A model with int8 weights (version 3): truncated, altered and hostile as
 * any; and its own fields, each change resealed so that the field checks (not
 * the CRC) must catch it: a NaN, infinite or negative scale, an int8 of -128,
 * an unknown weights code, the version before 3, a float64 file. */
static void test_quantized_image(const char* dir, const char* name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.rnnx", dir, name);
    size_t len = 0;
    unsigned char* image = read_all(path, &len);
    CHECK(image && len > 64 && image[8] == 3, "%s: not a version-3 file", path);
    if (!image || len <= 64) {
        free(image);
        return;
    }
    test_image(image, len);
    size_t table = 0;
    CHECK_STATUS(rnnx_model_mem_size(image, len, &table), RNNX_OK);
    void* mem = malloc(table ? table : 1);
    rnnx_model m;
    CHECK_STATUS(rnnx_model_from_buffer(&m, mem, table, image, len), RNNX_OK);
    int at = -1;  /* the first int8 layer */
    for (int i = 0; i < m.num_layers && at < 0; i++)
        if (m.layers[i].weights == RNNX_WEIGHTS_INT8)
            at = i;
    CHECK(at >= 0, "%s: no int8 layer", name);
    if (at >= 0) {
        /* its w_ih: the int8 data, then the scales */
        const size_t data = (size_t)((const unsigned char*)m.layers[at].tensors[0] - image);
        const size_t scales = (size_t)((const unsigned char*)m.layers[at].tensors[1] - image);
        const size_t field = 64 + 32 * (size_t)at + 28;
        const struct { size_t offset; uint32_t value; int bytes, status; } cases[] = {
            {scales, 0x7fc00000u, 4, RNNX_ECORRUPT},   /* NaN */
            {scales, 0x7f800000u, 4, RNNX_ECORRUPT},   /* +inf */
            {scales, 0xbf800000u, 4, RNNX_ECORRUPT},   /* -1 */
            {scales, 0x80000000u, 4, RNNX_OK},         /* -0: a zero row */
            {scales, 0x3f800000u, 4, RNNX_OK},         /* 1 */
            {data, 0x80u, 1, RNNX_ECORRUPT},           /* -128 */
            {data, 0x81u, 1, RNNX_OK},                 /* -127 */
            {field, 3, 4, RNNX_ECORRUPT},              /* no such weights code */
            {field, 0, 4, RNNX_ECORRUPT},              /* float: the tensors do not fit */
            {8, 2, 4, RNNX_ECORRUPT},                  /* version 2 has no weights field */
            {12, 1, 4, RNNX_ECORRUPT},                 /* int8 weights in a float64 file */
            /* the seventh field: proj_size, an LSTM's, below H (H itself is refused) */
            {field - 4, m.layers[at].proj_size ? (uint32_t)m.layers[at].hidden_size : 0, 4,
             m.layers[at].proj_size ? RNNX_ECORRUPT : RNNX_OK},
            /* int8 weights on the last layer: a Dense head has none (its kernels are float) */
            {64 + 32 * (size_t)(m.num_layers - 1) + 28, 1, 4,
             m.layers[m.num_layers - 1].kind == RNNX_DENSE ? RNNX_ECORRUPT : RNNX_OK},
        };
        unsigned char* bad = malloc(len);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            memcpy(bad, image, len);
            if (cases[c].bytes == 1)
                bad[cases[c].offset] = (unsigned char)cases[c].value;
            else
                put_u32(bad + cases[c].offset, cases[c].value);
            reseal(bad, len);
            int status = parse_and_run(bad, len);
            CHECK(status == cases[c].status, "%s: case %zu gives status %d (%s), not %d", name, c,
                  status, rnnx_strerror(status), cases[c].status);
        }
        free(bad);
    }
    free(mem);
    free(image);
}

/* The core refuses a bad projection (proj_size) with a status, never a crash. */
static void test_core_projection(void)
{
    enum { T = 2, B = 2, I = 3, H = 5, P = 2, G = 4 * H };
    double x[T * B * I] = {0}, h0[B * H] = {0}, c0[B * H] = {0}, w_ih[G * I] = {0};
    double w_hh[G * H] = {0}, w_hr[H * H] = {0}, y[T * B * H], h_n[B * H], c_n[B * H];
    double dx[T * B * I], dh0[B * H], dc0[B * H], dw_ih[G * I], dw_hh[G * H], dw_hr[H * H];
    static double cache[4096], work[8192];
    CHECK(rnnx_cache_size_proj(RNNX_LSTM, T, B, H, P) <= 4096, "cache size");
    CHECK(rnnx_forward_work_size_proj(RNNX_LSTM, T, B, I, H, P, 1) <= 8192, "forward work size");
    CHECK(rnnx_backward_work_size_proj(RNNX_LSTM, T, B, I, H, P) <= 8192, "backward work size");
    CHECK(rnnx_cache_size_proj(RNNX_LSTM, T, B, H, H) == 0 &&
          rnnx_cache_size_proj(RNNX_GRU, T, B, H, P) == 0, "sizes of a bad projection are 0");
    rnnx_forward_args a;
    memset(&a, 0, sizeof a);
    a.cell = RNNX_LSTM;
    a.dtype = RNNX_FLOAT64;
    a.T = T;
    a.B = B;
    a.input_size = I;
    a.H = H;
    a.x = x;
    a.h0 = h0;
    a.c0 = c0;
    a.w_ih = w_ih;
    a.w_hh = w_hh;
    a.y = y;
    a.ldy = P;
    a.h_n = h_n;
    a.c_n = c_n;
    a.cache = cache;
    a.work = work;
    a.proj = P;
    a.w_hr = w_hr;
    CHECK_STATUS(rnnx_forward(NULL, &a), RNNX_OK);
    rnnx_backward_args g;
    memset(&g, 0, sizeof g);
    g.cell = RNNX_LSTM;
    g.dtype = RNNX_FLOAT64;
    g.T = T;
    g.B = B;
    g.input_size = I;
    g.H = H;
    g.x = x;
    g.w_ih = w_ih;
    g.w_hh = w_hh;
    g.cache = cache;
    g.dx = dx;
    g.dh0 = dh0;
    g.dc0 = dc0;
    g.dw_ih = dw_ih;
    g.dw_hh = dw_hh;
    g.work = work;
    g.proj = P;
    g.w_hr = w_hr;
    g.dw_hr = dw_hr;
    CHECK_STATUS(rnnx_backward(NULL, &g), RNNX_OK);
    const int bad[] = {-1, H, H + 1};
    for (int i = 0; i < 3; i++) {
        a.proj = g.proj = bad[i];
        CHECK_STATUS(rnnx_forward(NULL, &a), RNNX_EPROJ);
        CHECK_STATUS(rnnx_backward(NULL, &g), RNNX_EPROJ);
    }
    a.proj = g.proj = P;
    a.cell = g.cell = RNNX_GRU;
    CHECK_STATUS(rnnx_forward(NULL, &a), RNNX_EPROJ);
    CHECK_STATUS(rnnx_backward(NULL, &g), RNNX_EPROJ);
    a.cell = g.cell = RNNX_LSTM;
    a.w_hr = g.w_hr = NULL;
    CHECK_STATUS(rnnx_forward(NULL, &a), RNNX_ENULL);
    CHECK_STATUS(rnnx_backward(NULL, &g), RNNX_ENULL);
    a.w_hr = g.w_hr = w_hr;
    g.dw_hr = NULL;
    CHECK_STATUS(rnnx_backward(NULL, &g), RNNX_ENULL);
    a.ldy = P - 1;   /* y's rows are P wide */
    CHECK_STATUS(rnnx_forward(NULL, &a), RNNX_EINVAL);
    a.ldy = P;
    CHECK(rnnx_packed_size_proj(RNNX_LSTM, RNNX_FLOAT64, H, H) == 0, "packed size of a bad P");
    CHECK_STATUS(rnnx_pack_weights_proj(RNNX_LSTM, RNNX_FLOAT64, H, H, w_hh, w_hr, work), RNNX_EPROJ);
    CHECK_STATUS(rnnx_pack_weights_proj(RNNX_GRU, RNNX_FLOAT64, H, P, w_hh, w_hr, work), RNNX_EPROJ);
    CHECK_STATUS(rnnx_pack_weights_proj(RNNX_LSTM, RNNX_FLOAT64, H, P, w_hh, NULL, work), RNNX_ENULL);
    CHECK(strcmp(rnnx_strerror(RNNX_EPROJ), rnnx_strerror(-1)) != 0,
          "rnnx_strerror(RNNX_EPROJ) is not named");
}

int main(int argc, char** argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_errors DATA_DIR [INT8_CASE...]\n");
        return 2;
    }
    test_strings();
    test_arguments(argv[1]);
    for (int i = 2; i < argc; i++)
        test_quantized_image(argv[1], argv[i]);
    test_core_projection();
    if (failures)
        fprintf(stderr, "test_errors: %d checks failed\n", failures);
    return failures ? 1 : 0;
}

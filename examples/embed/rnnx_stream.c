/*
 * rnnx_stream: stream samples through an rnnx model, one line per time step.
 *
 *   rnnx_stream [--hex] [--time] [--info] MODEL.rnnx   the model from a file
 *   rnnx_stream_static [--hex] [--time] [--info]       the model compiled in (rnnx.export_c)
 *   rnnx_stream --help                                 the usage
 *
 * Reads one sample per line of stdin: input_size whitespace-separated numbers
 * (batch 1), or for a token model (an Embedding first) one integer id.  Writes the model's output for that step as one line: %.9g per
 * number for a float32 model (which reads back as the same float32), %.17g for
 * float64, or %a (exact hexadecimal) with --hex.  Blank lines are skipped.
 * --time prints the mean time of one step (without the I/O) to stderr;
 * --info prints the model's sizes and the memory it and a stream take, and exits.
 *
 * Memory: the model file and its layer table, and the stream's state and
 * scratch, each in one buffer sized by the library's size functions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rnnx_model.h"

#ifdef RNNX_STATIC_MODEL
extern const rnnx_model RNNX_STATIC_MODEL;
#endif

static int fail(const char* what, int status)
{
    fprintf(stderr, "rnnx_stream: %s: %s\n", what, rnnx_strerror(status));
    return 1;
}

/* One line of stdin into *line (grown as needed); 0 at the end of input. */
static int read_line(char** line, size_t* cap)
{
    size_t n = 0;
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        if (n + 1 >= *cap) {
            size_t grown = *cap ? 2 * *cap : 256;
            char* bigger = realloc(*line, grown);
            if (!bigger)
                return 0;
            *line = bigger;
            *cap = grown;
        }
        (*line)[n++] = (char)c;
    }
    if (n == 0 && c == EOF)
        return 0;
    if (!*line) {
        *line = malloc(1);
        *cap = 1;
    }
    (*line)[n] = '\0';
    return 1;
}

/* Streams stdin's lines through m, one step each, printing each output line.
 * Returns the exit status. */
static int stream_lines(const rnnx_model* m, size_t stream_bytes, int hex, int timing)
{
    const int f64 = m->dtype == RNNX_FLOAT64;
    const size_t elem = f64 ? sizeof(double) : sizeof(float);
    const int ids = m->layers[0].kind == RNNX_EMBEDDING;  /* x is one int32 id */
    const int width = ids ? 1 : m->input_size;
    void* stream_mem = malloc(stream_bytes ? stream_bytes : 1);
    void* x = malloc(ids ? sizeof(int32_t) : (size_t)width * elem);
    void* y = malloc((size_t)m->output_size * elem);
    char* line = NULL;
    size_t cap = 0;
    long steps = 0, lineno = 0;
    double seconds = 0;
    rnnx_stream s;
    int rc = 0, status = (stream_mem && x && y) ? RNNX_OK : RNNX_ENOMEM;
    if (status == RNNX_OK)
        status = rnnx_stream_init(&s, m, NULL, 1, stream_mem, stream_bytes);
    if (status != RNNX_OK)
        rc = fail("stream", status);
    while (rc == 0 && read_line(&line, &cap)) {
        lineno++;
        char* p = line;
        int n = 0;
        for (;;) {
            char* end;
            double v = strtod(p, &end);
            if (end == p)
                break;
            if (ids && !(v >= -2147483648.0 && v <= 2147483647.0 && v == (double)(int32_t)v))
                break;  /* not an int32: reported below as not a number */
            if (n < width) {
                if (ids)
                    ((int32_t*)x)[n] = (int32_t)v;
                else if (f64)
                    ((double*)x)[n] = v;
                else
                    ((float*)x)[n] = (float)v;
            }
            n++;
            p = end;
        }
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (n == 0 && *p == '\0')
            continue;  /* a blank line */
        if (n != width || *p != '\0') {
            fprintf(stderr, "rnnx_stream: line %ld: expected %d %s, got %d%s\n", lineno, width,
                    ids ? "integer id" : "numbers", n,
                    *p ? (ids ? " and text that is not an integer" : " and text that is not a number")
                       : "");
            rc = 1;
            break;
        }
        clock_t start = clock();
        status = rnnx_stream_step(&s, x, y);
        seconds += (double)(clock() - start) / CLOCKS_PER_SEC;
        if (status != RNNX_OK) {
            rc = fail("step", status);
            break;
        }
        steps++;
        for (int j = 0; j < m->output_size; j++) {
            const double v = f64 ? ((double*)y)[j] : (double)((float*)y)[j];
            printf(j ? " " : "");
            printf(hex ? "%a" : f64 ? "%.17g" : "%.9g", v);
        }
        printf("\n");
    }
    if (rc == 0 && timing && steps)
        fprintf(stderr, "rnnx_stream: %ld steps, %.3f us per step\n", steps, 1e6 * seconds / steps);
    free(line);
    free(x);
    free(y);
    free(stream_mem);
    return rc;
}

#ifdef RNNX_STATIC_MODEL
#define RNNX_STREAM_ARGS "[--hex] [--time] [--info]  (the model is compiled in)"
#else
#define RNNX_STREAM_ARGS "[--hex] [--time] [--info] MODEL.rnnx"
#endif

static const char help_text[] =
    "Streams samples through an rnnx model: one line of stdin per time step, input_size\n"
    "whitespace-separated numbers (batch 1), and one line of output per step.\n"
    "\n"
    "  --hex    print outputs as %a (exact hexadecimal) rather than %.9g (float32) / %.17g\n"
    "  --time   print the mean time of one step (without the I/O) to stderr\n"
    "  --info   print the model's sizes and the memory it and a stream take, and exit\n"
    "  --help   print this help and exit\n";

int main(int argc, char** argv)
{
    int hex = 0, timing = 0, info = 0, argi = 1;
    for (; argi < argc && argv[argi][0] == '-'; argi++) {
        if (strcmp(argv[argi], "--hex") == 0)
            hex = 1;
        else if (strcmp(argv[argi], "--time") == 0)
            timing = 1;
        else if (strcmp(argv[argi], "--info") == 0)
            info = 1;
        else if (strcmp(argv[argi], "--help") == 0 || strcmp(argv[argi], "-h") == 0) {
            printf("usage: %s " RNNX_STREAM_ARGS "\n\n%s", argv[0], help_text);
            return 0;
        } else {
            fprintf(stderr, "%s: unknown option %s\nusage: %s " RNNX_STREAM_ARGS "\n", argv[0],
                    argv[argi], argv[0]);
            return 2;
        }
    }
    const rnnx_model* m;
    void* model_mem = NULL;
#ifdef RNNX_STATIC_MODEL
    if (argi != argc) {
        fprintf(stderr, "usage: %s " RNNX_STREAM_ARGS "\n", argv[0]);
        return 2;
    }
    m = &RNNX_STATIC_MODEL;
    int status = rnnx_model_check(m);
    if (status != RNNX_OK)
        return fail("the compiled-in model", status);
#else
    if (argi != argc - 1) {
        fprintf(stderr, "usage: %s " RNNX_STREAM_ARGS "\n", argv[0]);
        return 2;
    }
    static rnnx_model file_model;
    size_t model_bytes = 0;
    int status = rnnx_model_file_size(argv[argi], &model_bytes);
    if (status != RNNX_OK)
        return fail(argv[argi], status);
    model_mem = malloc(model_bytes);
    if (!model_mem)
        return fail(argv[argi], RNNX_ENOMEM);
    status = rnnx_model_from_file(&file_model, argv[argi], model_mem, model_bytes);
    if (status != RNNX_OK) {
        free(model_mem);
        return fail(argv[argi], status);
    }
    m = &file_model;
#endif
    const size_t stream_bytes = rnnx_stream_size(m, 1);
    if (info) {
        int weights = RNNX_WEIGHTS_FLOAT;   /* the reduced weights of rnnx.quantize, if any */
        for (int i = 0; i < m->num_layers; i++)
            weights = m->layers[i].weights ? m->layers[i].weights : weights;
        printf("rnnx %s, model: %s%s, %d layers, input %d%s, output %d\n", rnnx_version(),
               m->dtype == RNNX_FLOAT64 ? "float64" : "float32",
               weights == RNNX_WEIGHTS_INT8       ? " (int8 recurrent weights)"
               : weights == RNNX_WEIGHTS_BFLOAT16 ? " (bfloat16 recurrent weights)"
                                                  : "",
               m->num_layers, m->input_size,
               m->layers[0].kind == RNNX_EMBEDDING ? " ids (one int32 per line)" : "",
               m->output_size);
#ifndef RNNX_STATIC_MODEL
        printf("model memory (file + layer table): %zu bytes\n", model_bytes);
#endif
        printf("stream memory (state + scratch + transposed weights), batch 1: %zu bytes\n",
               stream_bytes);
        free(model_mem);
        return 0;
    }
    status = stream_lines(m, stream_bytes, hex, timing);
    free(model_mem);
    return status;
}

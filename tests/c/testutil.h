/*
 * testutil.h: what the C tests share: a check that counts failures (the test
 * exits 1 if any failed, after reporting each), file reading, and the reader
 * of the reference data written by tests/c/make_data.py.
 */
#ifndef RNNX_TESTUTIL_H
#define RNNX_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnx_model.h"

static int failures = 0;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

#define CHECK_STATUS(call, want)                                                         \
    do {                                                                                 \
        int got_ = (call);                                                               \
        CHECK(got_ == (want), "status %d (%s), expected %d (%s)", got_, rnnx_strerror(got_), \
              (int)(want), rnnx_strerror(want));                                         \
    } while (0)

/* The whole file at path, in a malloc'd buffer of exactly its size (so a read
 * past the end is a heap overflow the sanitizers see); NULL if unreadable. */
static unsigned char* read_all(const char* path, size_t* len)
{
    FILE* f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char* buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* A reference case: see tests/c/make_data.py. */
typedef struct ref_case {
    int T, B, has_lengths;
    int64_t lengths[64];
    double *x, *y, *s;
    size_t nx, ny, ns;
} ref_case;

static double* read_values(FILE* f, size_t* n)
{
    unsigned long count;
    if (fscanf(f, "%lu", &count) != 1)
        return NULL;
    *n = count;
    double* v = malloc((count ? count : 1) * sizeof(double));
    char token[64];
    for (unsigned long k = 0; v && k < count; k++) {
        if (fscanf(f, "%63s", token) != 1) {
            free(v);
            return NULL;
        }
        v[k] = strtod(token, NULL);  /* C99 strtod reads hexadecimal floats exactly */
    }
    return v;
}

static int read_ref(const char* path, ref_case* c)
{
    memset(c, 0, sizeof *c);
    FILE* f = fopen(path, "r");
    if (!f)
        return 0;
    int version = 0, ok = fscanf(f, "rnnx-ref %d", &version) == 1 && version == 1 &&
                          fscanf(f, "%d %d %d", &c->T, &c->B, &c->has_lengths) == 3 &&
                          c->B >= 1 && c->B <= 64;
    for (int b = 0; ok && c->has_lengths && b < c->B; b++) {
        long long v;
        ok = fscanf(f, "%lld", &v) == 1;
        c->lengths[b] = (int64_t)v;
    }
    if (ok)
        ok = (c->x = read_values(f, &c->nx)) && (c->y = read_values(f, &c->ny)) &&
             (c->s = read_values(f, &c->ns));
    fclose(f);
    return ok;
}

static void free_ref(ref_case* c)
{
    free(c->x);
    free(c->y);
    free(c->s);
}

/* The data as the model's dtype, in a new buffer. */
static void* as_dtype(const double* v, size_t n, int dtype)
{
    if (dtype == RNNX_FLOAT64) {
        double* out = malloc((n ? n : 1) * sizeof(double));
        memcpy(out, v, n * sizeof(double));
        return out;
    }
    float* out = malloc((n ? n : 1) * sizeof(float));
    for (size_t k = 0; k < n; k++)
        out[k] = (float)v[k];
    return out;
}

static double value_at(const void* data, int dtype, size_t k)
{
    return dtype == RNNX_FLOAT64 ? ((const double*)data)[k] : (double)((const float*)data)[k];
}

/* max |got - want| / max(1, max |want|): the error against the output's scale. */
static double scaled_error(const void* got, int dtype, const double* want, size_t n)
{
    double scale = 1, err = 0;
    for (size_t k = 0; k < n; k++)
        scale = fabs(want[k]) > scale ? fabs(want[k]) : scale;
    for (size_t k = 0; k < n; k++) {
        double e = fabs(value_at(got, dtype, k) - want[k]);
        err = (e > err || e != e) ? e : err;
    }
    return err / scale;
}

/* float32 against a float64 reference through a few layers: ~1e-6 is typical; float64: ~1e-15. */
static double tolerance(int dtype)
{
    return dtype == RNNX_FLOAT64 ? 1e-12 : 1e-5;
}

#endif /* RNNX_TESTUTIL_H */

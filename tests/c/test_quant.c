/*
 * test_quant.c: the int8 and bfloat16 forward (csrc/quant/quant.h) without
 * Python: every kernel variant this CPU runs (natively, or under qemu for the
 * aarch64 build: sdot and the path without it) gives the bits of the portable
 * one, for every cell, with lengths, reverse and an LSTM projection.  (The
 * Python tests tie the portable one to the NumPy twin.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"

static int failures = 0;

static float uniform(unsigned* seed)
{
    *seed = *seed * 1664525u + 1013904223u;
    return (float)(*seed >> 8) / 16777216.0f - 0.5f;
}

/* Packs w (gates*n, cols) as qtype into a new buffer. */
static void* pack(int qtype, int gates, int n, int cols, const float* w)
{
    const size_t rows = (size_t)gates * n;
    void* out = malloc(rnnx_qpack_size(qtype, gates, n, cols));
    void* q = malloc(rows * cols * 2);
    float* scale = malloc(rows * sizeof(float));
    if (qtype == RNNX_QINT8)
        rnnx_quantize_int8((int)rows, cols, w, q, scale);
    else
        rnnx_to_bfloat16(rows * cols, w, q);
    rnnx_qpack(qtype, gates, n, cols, q, qtype == RNNX_QINT8 ? scale : NULL, out);
    free(q);
    free(scale);
    return out;
}

/* y (T,B,P or H) of one call with the variant in use. */
static void run(int cell, int qtype, int P, int reverse, float* y, unsigned seed)
{
    enum { T = 5, B = 3, I = 37, H = 33 };
    const int gates = cell == RNNX_LSTM ? 4 : cell >= RNNX_GRU ? 3 : 1, S = P ? P : H;
    float* w = malloc(sizeof(float) * (size_t)gates * H * (I + H + 2) + sizeof(float) * H * P);
    float *w_ih = w, *w_hh = w_ih + gates * H * I, *b = w_hh + gates * H * S;
    float* w_hr = b + 2 * gates * H;
    for (size_t i = 0; i < (size_t)gates * H * (I + S + 2) + (size_t)P * H; i++)
        w[i] = uniform(&seed);
    float x[T * B * I], h0[B * H], c0[B * H], h_n[B * H], c_n[B * H];
    for (int i = 0; i < T * B * I; i++)
        x[i] = 4.0f * uniform(&seed);
    for (int i = 0; i < B * H; i++)
        h0[i] = uniform(&seed), c0[i] = uniform(&seed);
    const int64_t lengths[B] = {5, 2, 0};
    rnnx_qforward_args a;
    memset(&a, 0, sizeof a);
    a.cell = cell, a.qtype = qtype, a.T = T, a.B = B, a.input_size = I, a.H = H, a.proj = P;
    a.reverse = reverse, a.lengths = lengths, a.x = x, a.h0 = h0, a.c0 = c0;
    a.w_ih = pack(qtype, gates, H, I, w_ih);
    a.w_hh = pack(qtype, gates, H, S, w_hh);
    a.w_hr = P ? pack(qtype, 1, P, H, w_hr) : NULL;
    a.b_ih = b, a.b_hh = b + gates * H, a.y = y, a.ldy = S, a.h_n = h_n, a.c_n = c_n;
    a.work = malloc(rnnx_qforward_work_size(cell, qtype, T, B, I, H, P));
    const int status = rnnx_qforward(NULL, &a);
    if (status != RNNX_OK) {
        fprintf(stderr, "FAILED: rnnx_qforward: %s\n", rnnx_strerror(status));
        failures++;
    }
    free((void*)a.w_ih), free((void*)a.w_hh), free((void*)a.w_hr), free(a.work), free(w);
}

int main(void)
{
    enum { N = 5 * 3 * 33 };
    const int cells[][2] = {{RNNX_RNN_TANH, 0}, {RNNX_RNN_RELU, 0}, {RNNX_LSTM, 0},
                            {RNNX_LSTM, 7}, {RNNX_GRU, 0}, {RNNX_GRU_RESET_BEFORE, 0}};
    int variants = 0;
    for (int qtype = RNNX_QINT8; qtype <= RNNX_QBFLOAT16; qtype++)
        for (int c = 0; c < 6; c++)
            for (int reverse = 0; reverse < 2; reverse++) {
                float want[N], got[N];
                rnnx_qset_kernel("generic");
                run(cells[c][0], qtype, cells[c][1], reverse, want, 7u + (unsigned)c);
                for (int v = 0; rnnx_qkernel_name(v); v++) {
                    const char* name = rnnx_qkernel_name(v);
                    if (!rnnx_qkernel_available(name) || rnnx_qset_kernel(name) != RNNX_OK ||
                        strcmp(rnnx_qget_kernel(qtype), name) != 0)
                        continue;
                    variants++;
                    run(cells[c][0], qtype, cells[c][1], reverse, got, 7u + (unsigned)c);
                    if (memcmp(got, want, sizeof got) != 0) {
                        fprintf(stderr, "FAILED: %s differs from generic (qtype %d, cell %d, "
                                "proj %d, reverse %d)\n", name, qtype, cells[c][0], cells[c][1],
                                reverse);
                        failures++;
                    }
                }
            }
    rnnx_qset_kernel("auto");
    printf("test_quant: %d variant runs compared, %d failures\n", variants, failures);
    return failures != 0;
}

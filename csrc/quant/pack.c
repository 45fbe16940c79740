/*
 * quant/pack.c: int8 and bfloat16 weights from float32, and their packing
 * into panels (qkernels.h).  Portable C, compiled once.
 */
#include <math.h>
#include <string.h>

#include "qkernels.h"

int rnnx_quantize_int8(int rows, int cols, const float* w, int8_t* q, float* scale)
{
    if (rows < 0 || cols < 0)
        return RNNX_EINVAL;
    if ((rows && cols) && (!w || !q || !scale))
        return RNNX_ENULL;
    for (int r = 0; r < rows; r++) {
        const float* row = w + (size_t)r * cols;
        float amax = 0.0f;
        for (int k = 0; k < cols; k++)
            amax = fabsf(row[k]) > amax ? fabsf(row[k]) : amax;
        /* s = amax / 127, q = rint(w * (127 / amax)): the same two roundings as
         * the activations' (forward.c), so one NumPy line reproduces both. */
        const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        scale[r] = amax / 127.0f;
        for (int k = 0; k < cols; k++) {
            float v = rintf(row[k] * inv);
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            q[(size_t)r * cols + k] = (int8_t)v;
        }
    }
    return RNNX_OK;
}

int rnnx_to_bfloat16(size_t n, const float* w, uint16_t* out)
{
    if (n && (!w || !out))
        return RNNX_ENULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &w[i], sizeof u);
        if ((u & 0x7fffffffu) > 0x7f800000u)
            out[i] = (uint16_t)((u >> 16) | 0x0040u);  /* NaN: quiet, keep sign */
        else
            out[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);  /* nearest even */
    }
    return RNNX_OK;
}

static int qtype_ok(int qtype)
{
    return qtype == RNNX_QINT8 || qtype == RNNX_QBFLOAT16;
}

size_t rnnx_qpack_size(int qtype, int gates, int n, int cols)
{
    if (!qtype_ok(qtype) || gates < 1 || n < 1 || cols < 1 || cols > RNNX_QMAX_COLS)
        return 0;
    const size_t panels = (size_t)gates * (size_t)((n + QR - 1) / QR);
    return panels * qpanel_bytes(qtype, cols);
}

int rnnx_qpack(int qtype, int gates, int n, int cols, const void* q, const float* scale,
               void* out)
{
    const size_t size = rnnx_qpack_size(qtype, gates, n, cols);
    if (!size)
        return RNNX_EINVAL;
    if (!q || !out || (qtype == RNNX_QINT8 && !scale))
        return RNNX_ENULL;
    memset(out, 0, size);
    const int per_gate = (n + QR - 1) / QR, ng = qgroups(qtype, cols);
    const size_t pb = qpanel_bytes(qtype, cols);
    for (int g = 0; g < gates; g++)
        for (int u = 0; u < per_gate; u++) {
            unsigned char* panel = (unsigned char*)out + ((size_t)g * per_gate + u) * pb;
            for (int r = 0; r < QR && u * QR + r < n; r++) {
                const size_t row = (size_t)g * n + (size_t)u * QR + r;
                if (qtype == RNNX_QINT8) {
                    const int8_t* src = (const int8_t*)q + row * cols;
                    int8_t* dst = (int8_t*)panel;
                    int32_t sum = 0;
                    for (int k = 0; k < cols; k++) {
                        dst[(size_t)(k / 4) * QGROUP_BYTES + r * 4 + k % 4] = src[k];
                        sum += src[k];
                    }
                    /* the tail: rowsum (16 int32), then scale (16 float) */
                    memcpy(panel + (size_t)ng * QGROUP_BYTES + 4 * r, &sum, 4);
                    memcpy(panel + (size_t)ng * QGROUP_BYTES + 64 + 4 * r, &scale[row], 4);
                } else {
                    const uint16_t* src = (const uint16_t*)q + row * cols;
                    uint16_t* dst = (uint16_t*)panel;
                    for (int k = 0; k < cols; k++)
                        dst[(size_t)(k / 2) * (QGROUP_BYTES / 2) + r * 2 + k % 2] = src[k];
                }
            }
        }
    return RNNX_OK;
}

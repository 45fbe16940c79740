/*
 * model.c: the model layer (rnnx_model.h): the .rnnx reader, whole-sequence
 * runs and streams of an optional Embedding (a table lookup of int32 ids, the
 * first layer only), stacked recurrent layers and Dense layers, built only on
 * the core's public entry points (rnnx_forward, rnnx_forward_work_size,
 * rnnx_activation).
 *
 * The file format is described in docs/rnnx-format.md; the constants below
 * are its fields.  Everything read from a buffer is checked before it is
 * used: a truncated, altered or hostile image gives a status, never a read
 * out of bounds.
 *
 * The Dense arithmetic is written so that a NumPy twin can reproduce it bit
 * for bit: one product, then one sum, per statement (so no compiler fuses
 * them into an FMA), k in order, the bias added after the sum.
 */
#include <math.h>
#include <string.h>
#ifndef RNNX_NO_STDIO
#include <stdio.h>
#endif

#include "rnnx.h"
#include "rnnx_model.h"
#include "rnnx_version.h"

const char* rnnx_version(void)
{
    return RNNX_VERSION_STRING;
}

/* ----------------------------------------------------------- the format --- */

enum {
    FORMAT_VERSION_MIN = 1,   /* versions read: 1, and 2 (which adds the Embedding kind and
                                 FLAG_LAST_OUTPUT) */
    FORMAT_VERSION = 2,
    HEADER_BYTES = 64,
    DESCRIPTOR_BYTES = 32,
    TENSOR_ALIGN = 64,
    MAX_LAYERS = 256,         /* entries of the layer table */
    MAX_STACK = 64,           /* num_layers of one recurrent layer */
    MAX_SIZE = 1 << 24,       /* any one dimension */
    FLAG_MANY_TO_ONE = 1,
    FLAG_BARE_LAYER = 2,      /* Python only: load returns the layer, not a Sequential */
    FLAG_LAST_OUTPUT = 4,     /* with FLAG_MANY_TO_ONE: RNNX_MANY_TO_ONE_OUTPUT; version 2 */
    KNOWN_FLAGS = 7
};

static const unsigned char MAGIC[8] = {'R', 'N', 'N', 'X', '\r', '\n', 0x1a, '\n'};

static uint32_t read_u32(const unsigned char* p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t read_u64(const unsigned char* p)
{
    return (uint64_t)read_u32(p) | (uint64_t)read_u32(p + 4) << 32;
}

/* CRC-32 (ISO-HDLC: zlib's crc32, Python's zlib.crc32), four bits at a time. */
static uint32_t crc32_bytes(const unsigned char* p, size_t n)
{
    static const uint32_t table[16] = {
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
        0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
        0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu};
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ table[crc & 15];
        crc = (crc >> 4) ^ table[crc & 15];
    }
    return crc ^ 0xffffffffu;
}

static size_t elem_size(int dtype)
{
    return dtype == RNNX_FLOAT64 ? sizeof(double) : sizeof(float);
}

static int is_recurrent(int kind)
{
    return rnnx_gate_count(kind) > 0;
}

static int takes_ids(const rnnx_model* m)
{
    return m->layers[0].kind == RNNX_EMBEDDING;
}

/* Number of tensors of a layer (see rnnx_layer). */
static int tensor_count(const rnnx_layer* l)
{
    const int per = l->bias ? 2 : 1;
    if (l->kind == RNNX_EMBEDDING)
        return 1;
    if (l->kind == RNNX_DENSE)
        return per;
    return l->num_layers * l->num_directions * 2 * per;
}

/* Elements of tensor t of a layer, in the order of tensor_count. */
static uint64_t tensor_elements(const rnnx_layer* l, int t)
{
    const uint64_t H = (uint64_t)l->hidden_size;
    if (l->kind == RNNX_EMBEDDING)
        return H * (uint64_t)l->input_size;  /* the table (num_embeddings, embedding_dim) */
    if (l->kind == RNNX_DENSE)
        return t == 0 ? H * (uint64_t)l->input_size : H;
    const int per = l->bias ? 4 : 2;
    const int k = t / (per * l->num_directions), which = t % per;
    const uint64_t G = (uint64_t)rnnx_gate_count(l->kind) * H;
    const uint64_t in = k == 0 ? (uint64_t)l->input_size : (uint64_t)l->num_directions * H;
    switch (which) {
    case 0:
        return G * in;  /* w_ih */
    case 1:
        return G * H;   /* w_hh */
    default:
        return G;       /* b_ih, b_hh */
    }
}

static int layer_output_size(const rnnx_layer* l)
{
    return is_recurrent(l->kind) ? l->num_directions * l->hidden_size : l->hidden_size;
}

/* The fields of one layer, alone and against the width that feeds it (the
 * model's input size for the first; an Embedding may only be the first). */
static int check_layer(const rnnx_layer* l, int width_in, int first)
{
    if (l->kind != RNNX_DENSE && l->kind != RNNX_EMBEDDING && !is_recurrent(l->kind))
        return RNNX_ECORRUPT;
    if (l->kind == RNNX_EMBEDDING && (!first || l->num_layers != 1 || l->num_directions != 1 ||
                                      l->bias != 0 || l->activation != 0))
        return RNNX_ECORRUPT;
    if (l->input_size < 1 || l->input_size > MAX_SIZE || l->hidden_size < 1 ||
        l->hidden_size > MAX_SIZE || l->input_size != width_in)
        return RNNX_ECORRUPT;
    if (l->bias != 0 && l->bias != 1)
        return RNNX_ECORRUPT;
    if (l->kind == RNNX_EMBEDDING) {
        /* checked above */
    } else if (l->kind == RNNX_DENSE) {
        if (l->num_layers != 1 || l->num_directions != 1 || l->activation < RNNX_ACT_IDENTITY ||
            l->activation > RNNX_ACT_RELU)
            return RNNX_ECORRUPT;
    } else if (l->num_layers < 1 || l->num_layers > MAX_STACK || l->num_directions < 1 ||
               l->num_directions > 2 || l->activation != 0) {
        return RNNX_ECORRUPT;
    }
    return RNNX_OK;
}

/* The model as a whole: the layer chain, many-to-one after a recurrent layer. */
static int check_chain(int dtype, int many_to_one, int n, int input_size, int output_size,
                       const rnnx_layer* layers)
{
    if (dtype != RNNX_FLOAT32 && dtype != RNNX_FLOAT64)
        return RNNX_ECORRUPT;
    if (n < 1 || n > MAX_LAYERS || many_to_one < RNNX_MANY_TO_MANY ||
        many_to_one > RNNX_MANY_TO_ONE_OUTPUT)
        return RNNX_ECORRUPT;
    int width = input_size, recurrent = 0;
    for (int i = 0; i < n; i++) {
        int status = check_layer(&layers[i], width, i == 0);
        if (status != RNNX_OK)
            return status;
        recurrent += is_recurrent(layers[i].kind);
        width = layer_output_size(&layers[i]);
    }
    if (width != output_size || (many_to_one && !recurrent))
        return RNNX_ECORRUPT;
    return RNNX_OK;
}

int rnnx_model_check(const rnnx_model* m)
{
    if (!m || !m->layers)
        return RNNX_ENULL;
    int status = check_chain(m->dtype, m->many_to_one, m->num_layers, m->input_size,
                             m->output_size, m->layers);
    if (status != RNNX_OK)
        return status == RNNX_ECORRUPT ? RNNX_EINVAL : status;
    const size_t align = elem_size(m->dtype);
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        if (!l->tensors)
            return RNNX_ENULL;
        for (int t = 0; t < tensor_count(l); t++) {
            if (!l->tensors[t])
                return RNNX_ENULL;
            if ((uintptr_t)l->tensors[t] % align)
                return RNNX_EALIGN;
        }
    }
    return RNNX_OK;
}

/* What parse_image learns about an image. */
typedef struct image_info {
    int dtype, many_to_one, num_layers, input_size, output_size;
    size_t tensors;       /* total tensor count */
    size_t table_bytes;   /* rnnx_layer[num_layers] + const void*[tensors] */
} image_info;

static int to_int(uint32_t v)
{
    return v > (uint32_t)MAX_SIZE ? -1 : (int)v;
}

static void read_descriptor(rnnx_layer* l, const unsigned char* d)
{
    l->kind = to_int(read_u32(d));
    l->input_size = to_int(read_u32(d + 4));
    l->hidden_size = to_int(read_u32(d + 8));
    l->num_layers = to_int(read_u32(d + 12));
    l->num_directions = to_int(read_u32(d + 16));
    l->bias = to_int(read_u32(d + 20));
    l->activation = to_int(read_u32(d + 24));
    l->tensors = NULL;
}

/* Checks the image buf[0..len) and, when layers/pointers are given, fills
 * them (layers[num_layers], pointers[tensors], weights pointing into buf). */
static int parse_image(const unsigned char* buf, size_t len, image_info* info,
                       rnnx_layer* layers, const void** pointers)
{
    if (!buf || !info)
        return RNNX_ENULL;
    if (len < sizeof MAGIC || memcmp(buf, MAGIC, sizeof MAGIC) != 0)
        return len < sizeof MAGIC && memcmp(buf, MAGIC, len) == 0 ? RNNX_ETRUNCATED : RNNX_EMAGIC;
    if (len < 12)
        return RNNX_ETRUNCATED;
    const uint32_t version = read_u32(buf + 8);
    if (version < FORMAT_VERSION_MIN || version > FORMAT_VERSION)
        return RNNX_EVERSION;
    if (len < HEADER_BYTES)
        return RNNX_ETRUNCATED;
    const uint64_t file_size = read_u64(buf + 24);
    if (file_size > (uint64_t)len)
        return RNNX_ETRUNCATED;
    if (file_size < HEADER_BYTES + 4 || file_size != (uint64_t)len)
        return RNNX_ECORRUPT;
    /* every byte is checked before any field is trusted further */
    if (crc32_bytes(buf, len - 4) != read_u32(buf + len - 4))
        return RNNX_ECHECKSUM;
    const uint32_t dtype = read_u32(buf + 12), count = read_u32(buf + 16), flags = read_u32(buf + 20);
    if (dtype > 1 || count < 1 || count > MAX_LAYERS || (flags & ~(uint32_t)KNOWN_FLAGS) ||
        ((flags & FLAG_LAST_OUTPUT) && (!(flags & FLAG_MANY_TO_ONE) || version < 2)))
        return RNNX_ECORRUPT;
    for (size_t k = 44; k < HEADER_BYTES; k++)
        if (buf[k])
            return RNNX_ECORRUPT;
    info->dtype = (int)dtype;
    info->many_to_one = !(flags & FLAG_MANY_TO_ONE) ? RNNX_MANY_TO_MANY
                        : (flags & FLAG_LAST_OUTPUT) ? RNNX_MANY_TO_ONE_OUTPUT
                                                     : RNNX_MANY_TO_ONE_STATE;
    info->num_layers = (int)count;
    info->input_size = to_int(read_u32(buf + 32));
    info->output_size = to_int(read_u32(buf + 36));
    const uint64_t descriptors_end = HEADER_BYTES + (uint64_t)DESCRIPTOR_BYTES * count;
    const uint64_t data_offset = (descriptors_end + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
    if (read_u32(buf + 40) != data_offset || data_offset > file_size - 4)
        return RNNX_ECORRUPT;
    /* the layers, one at a time, into layers[] or a local when only checking */
    int width = info->input_size, recurrent = 0;
    uint64_t offset = data_offset;
    size_t tensors = 0;
    const size_t elem = elem_size(info->dtype);
    for (uint32_t i = 0; i < count; i++) {
        rnnx_layer local;
        rnnx_layer* l = layers ? &layers[i] : &local;
        const unsigned char* d = buf + HEADER_BYTES + (size_t)DESCRIPTOR_BYTES * i;
        read_descriptor(l, d);
        /* the last field: an Embedding's padding_idx + 1 (0: none; Python's, C ignores
         * it), reserved (0) for every other layer; the Embedding is version 2's */
        const uint32_t last = read_u32(d + 28);
        if (l->kind == RNNX_EMBEDDING ? version < 2 || last > (uint32_t)l->input_size : last != 0)
            return RNNX_ECORRUPT;
        int status = check_layer(l, width, i == 0);
        if (status != RNNX_OK)
            return status;
        recurrent += is_recurrent(l->kind);
        width = layer_output_size(l);
        const int n = tensor_count(l);
        if (pointers)
            l->tensors = pointers + tensors;
        for (int t = 0; t < n; t++) {
            offset = (offset + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
            const uint64_t bytes = tensor_elements(l, t) * elem;
            if (offset > file_size - 4 || bytes > file_size - 4 - offset)
                return RNNX_ECORRUPT;
            if (pointers)
                pointers[tensors + (size_t)t] = buf + offset;
            offset += bytes;
        }
        tensors += (size_t)n;
    }
    if (offset != file_size - 4 || width != info->output_size ||
        (info->many_to_one && !recurrent))
        return RNNX_ECORRUPT;
    info->tensors = tensors;
    info->table_bytes = (size_t)count * sizeof(rnnx_layer) + tensors * sizeof(const void*);
    return RNNX_OK;
}

int rnnx_model_mem_size(const void* buf, size_t len, size_t* bytes)
{
    if (!bytes)
        return RNNX_ENULL;
    *bytes = 0;
    image_info info;
    int status = parse_image(buf, len, &info, NULL, NULL);
    if (status == RNNX_OK)
        *bytes = info.table_bytes;
    return status;
}

int rnnx_model_from_buffer(rnnx_model* m, void* mem, size_t mem_bytes, const void* buf, size_t len)
{
    if (!m || !mem || !buf)
        return RNNX_ENULL;
    if ((uintptr_t)buf % 8 || (uintptr_t)mem % sizeof(void*))
        return RNNX_EALIGN;
    const uint32_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    if (first != 1)
        return RNNX_EUNSUPPORTED;  /* the tensors are little-endian and used in place */
    image_info info;
    int status = parse_image(buf, len, &info, NULL, NULL);
    if (status != RNNX_OK)
        return status;
    if (mem_bytes < info.table_bytes)
        return RNNX_ENOMEM;
    rnnx_layer* layers = (rnnx_layer*)mem;
    const void** pointers = (const void**)(layers + info.num_layers);
    status = parse_image(buf, len, &info, layers, pointers);
    if (status != RNNX_OK)
        return status;
    m->dtype = info.dtype;
    m->many_to_one = info.many_to_one;
    m->num_layers = info.num_layers;
    m->input_size = info.input_size;
    m->output_size = info.output_size;
    m->layers = layers;
    return RNNX_OK;
}

#ifndef RNNX_NO_STDIO

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* The file's bytes into dst (dst_bytes of room); *len = the file's length.
 * With dst NULL, only *len. */
static int read_file(const char* path, unsigned char* dst, size_t dst_bytes, size_t* len)
{
    if (!path || !len)
        return RNNX_ENULL;
    FILE* f = fopen(path, "rb");
    if (!f)
        return RNNX_EIO;
    int status = RNNX_OK;
    long end = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        end = ftell(f);
    if (end < 0 || fseek(f, 0, SEEK_SET) != 0) {
        status = RNNX_EIO;
    } else {
        *len = (size_t)end;
        if (dst) {
            if (*len > dst_bytes)
                status = RNNX_ENOMEM;
            else if (fread(dst, 1, *len, f) != *len)
                status = RNNX_EIO;
        }
    }
    fclose(f);
    return status;
}

/* The memory rnnx_model_from_file needs for a file of len bytes that starts
 * with head[0..got): the file, rounded up to 16, then the layer table, sized
 * from the layer count and the descriptors' tensor counts. */
static int file_mem_size(const unsigned char* head, size_t got, size_t len, size_t* bytes)
{
    if (got < sizeof MAGIC || memcmp(head, MAGIC, sizeof MAGIC) != 0)
        return got < sizeof MAGIC && memcmp(head, MAGIC, got) == 0 ? RNNX_ETRUNCATED : RNNX_EMAGIC;
    if (got < 12)
        return RNNX_ETRUNCATED;
    if (read_u32(head + 8) < FORMAT_VERSION_MIN || read_u32(head + 8) > FORMAT_VERSION)
        return RNNX_EVERSION;
    if (got < HEADER_BYTES)
        return RNNX_ETRUNCATED;
    const uint32_t count = read_u32(head + 16);
    if (count < 1 || count > MAX_LAYERS)
        return RNNX_ECORRUPT;
    if (got < HEADER_BYTES + (size_t)DESCRIPTOR_BYTES * count)
        return RNNX_ETRUNCATED;
    size_t tensors = 0;
    for (uint32_t i = 0; i < count; i++) {
        rnnx_layer l;
        read_descriptor(&l, head + HEADER_BYTES + (size_t)DESCRIPTOR_BYTES * i);
        if (l.num_layers < 1 || l.num_layers > MAX_STACK || l.num_directions < 1 ||
            l.num_directions > 2 || (l.bias != 0 && l.bias != 1))
            return RNNX_ECORRUPT;
        tensors += (size_t)tensor_count(&l);
    }
    *bytes = round_up(len, 16) + (size_t)count * sizeof(rnnx_layer) + tensors * sizeof(void*);
    return RNNX_OK;
}

int rnnx_model_file_size(const char* path, size_t* bytes)
{
    if (!path || !bytes)
        return RNNX_ENULL;
    *bytes = 0;
    size_t len = 0;
    int status = read_file(path, NULL, 0, &len);
    if (status != RNNX_OK)
        return status;
    unsigned char head[HEADER_BYTES + DESCRIPTOR_BYTES * MAX_LAYERS];
    FILE* f = fopen(path, "rb");
    if (!f)
        return RNNX_EIO;
    const size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    return file_mem_size(head, got, len, bytes);
}

int rnnx_model_from_file(rnnx_model* m, const char* path, void* mem, size_t mem_bytes)
{
    if (!m || !path || !mem)
        return RNNX_ENULL;
    if ((uintptr_t)mem % 8)
        return RNNX_EALIGN;
    size_t len = 0, need = 0;
    int status = read_file(path, (unsigned char*)mem, mem_bytes, &len);
    if (status != RNNX_OK)
        return status;
    status = file_mem_size((const unsigned char*)mem, len, len, &need);
    if (status != RNNX_OK)
        return status;
    if (mem_bytes < need)
        return RNNX_ENOMEM;
    const size_t table = round_up(len, 16);
    return rnnx_model_from_buffer(m, (unsigned char*)mem + table, mem_bytes - table, mem, len);
}

#endif /* RNNX_NO_STDIO */

/* The core's AUTO path sends large per-step products to BLAS, or to its
 * naive gemm when no BLAS is given; without a BLAS the small kernel (the
 * core's own fast one) is the better choice at every size. */
static int path_for(const rnnx_blas* blas, int dtype)
{
    const int has_gemm = blas && (dtype == RNNX_FLOAT64 ? blas->dgemm != NULL : blas->sgemm != NULL);
    return has_gemm ? RNNX_PATH_AUTO : RNNX_PATH_SMALL;
}

/* ---------------------------------------------------------- Dense layers --- */

/* out (N,O) = act(x (N,In) @ w^T + b): for each element, the products added
 * in order of k, then the bias.  x and out do not overlap. */
#define RNNX_DENSE_KERNEL(sfx, real, expfn)                                              \
    static void dense##sfx(real* out, const real* x, const real* w, const real* b,       \
                           int N, int In, int O, int activation)                         \
    {                                                                                     \
        for (int n = 0; n < N; n++) {                                                     \
            const real* xr = x + (size_t)n * In;                                          \
            real* yr = out + (size_t)n * O;                                               \
            for (int j = 0; j < O; j++) {                                                 \
                const real* wr = w + (size_t)j * In;                                      \
                real acc = 0;                                                             \
                for (int k = 0; k < In; k++) {                                            \
                    const real product = wr[k] * xr[k];                                   \
                    acc = acc + product;                                                  \
                }                                                                         \
                yr[j] = b ? acc + b[j] : acc;                                             \
            }                                                                             \
            if (activation == RNNX_ACT_RELU) {                                            \
                for (int j = 0; j < O; j++)                                               \
                    yr[j] = yr[j] > 0 ? yr[j] : 0;                                        \
            } else if (activation == RNNX_ACT_SOFTMAX) {                                  \
                /* shift by the row max so exp never overflows */                         \
                real top = yr[0], sum = 0;                                                \
                for (int j = 1; j < O; j++)                                               \
                    top = yr[j] > top ? yr[j] : top;                                      \
                for (int j = 0; j < O; j++) {                                             \
                    const real shifted = yr[j] - top;                                     \
                    yr[j] = (real)expfn((double)shifted);                                 \
                    sum = sum + yr[j];                                                    \
                }                                                                         \
                for (int j = 0; j < O; j++)                                               \
                    yr[j] = yr[j] / sum;                                                  \
            }                                                                             \
        }                                                                                 \
        if (activation == RNNX_ACT_SIGMOID || activation == RNNX_ACT_TANH)                \
            rnnx_activation(activation == RNNX_ACT_SIGMOID ? 0 : 1,                       \
                            sizeof(real) == 8 ? RNNX_FLOAT64 : RNNX_FLOAT32, out, out,    \
                            (size_t)N * O);                                               \
    }

RNNX_DENSE_KERNEL(_f32, float, exp)
RNNX_DENSE_KERNEL(_f64, double, exp)

static void dense(int dtype, void* out, const void* x, const rnnx_layer* l, int N)
{
    const void* b = l->bias ? l->tensors[1] : NULL;
    if (dtype == RNNX_FLOAT64)
        dense_f64(out, x, l->tensors[0], b, N, l->input_size, l->hidden_size, l->activation);
    else
        dense_f32(out, x, l->tensors[0], b, N, l->input_size, l->hidden_size, l->activation);
}

/* ------------------------------------------------------------- Embedding --- */

/* RNNX_EINVAL unless every one of the n ids lies in [0, num). */
static int check_ids(const int32_t* ids, size_t n, int num)
{
    for (size_t k = 0; k < n; k++)
        if (ids[k] < 0 || ids[k] >= num)
            return RNNX_EINVAL;
    return RNNX_OK;
}

/* out (N,E) := table[ids[n]] row by row; table (V,E), ids checked in [0, V). */
static void embed(int dtype, void* out, const int32_t* ids, const rnnx_layer* l, size_t N)
{
    const size_t row = (size_t)l->hidden_size * elem_size(dtype);
    const unsigned char* table = (const unsigned char*)l->tensors[0];
    for (size_t n = 0; n < N; n++)
        memcpy((unsigned char*)out + n * row, table + (size_t)ids[n] * row, row);
}

/* ---------------------------------------------------------- whole sequences --- */

/* The widest activation any layer reads or writes, and the recurrent needs. */
typedef struct model_dims {
    size_t width;         /* max features of any activation, input included */
    size_t hidden;        /* max H of a recurrent layer */
    size_t core_work;     /* max rnnx_forward_work_size over recurrent sub-layers */
    size_t w_ih_t;        /* max I_k * G over recurrent sub-layers: room for one W_ih^T */
    int recurrent;        /* index of the last recurrent layer, or -1 */
    int bidirectional;    /* some layer has two directions */
} model_dims;

static model_dims dims_of(const rnnx_model* m, int T, int B)
{
    /* a token model's x is ids: no activation is input_size (the vocabulary) wide */
    model_dims d = {takes_ids(m) ? 0 : (size_t)m->input_size, 0, 0, 0, -1, 0};
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        const size_t out = (size_t)layer_output_size(l);
        d.width = out > d.width ? out : d.width;
        if (!is_recurrent(l->kind))
            continue;
        d.recurrent = i;
        d.bidirectional |= l->num_directions == 2;
        d.hidden = (size_t)l->hidden_size > d.hidden ? (size_t)l->hidden_size : d.hidden;
        for (int k = 0; k < l->num_layers; k++) {
            const int in = k == 0 ? l->input_size : l->num_directions * l->hidden_size;
            const size_t w = rnnx_forward_work_size(l->kind, T, B, in, l->hidden_size, 0);
            const size_t t = (size_t)in * rnnx_gate_count(l->kind) * l->hidden_size;
            d.core_work = w > d.core_work ? w : d.core_work;
            d.w_ih_t = t > d.w_ih_t ? t : d.w_ih_t;
        }
    }
    return d;
}

size_t rnnx_model_run_work_size(const rnnx_model* m, int T, int B)
{
    if (rnnx_model_check(m) != RNNX_OK || T < 1 || B < 1)
        return 0;
    const model_dims d = dims_of(m, T, B);
    const size_t TB = (size_t)T * B;
    /* three activation buffers, zero h0/c0, h_n, c_n, W_ih^T, the core's work */
    return (3 * TB * d.width + 3 * (size_t)B * d.hidden + d.w_ih_t + d.core_work) *
           elem_size(m->dtype);
}

/* Each row's output at its last valid step: pooled (B,D*H) := y (T,B,D*H) at
 * lengths[b]-1 (or T-1); with RNNX_MANY_TO_ONE_STATE the reverse half at t = 0,
 * where that direction ends; zeros for a row of length 0. */
static void last_step(unsigned char* pooled, const unsigned char* y, int T, int B, int H, int D,
                      const int64_t* lengths, int many_to_one, size_t elem)
{
    const size_t row = (size_t)D * H * elem, half = (size_t)H * elem;
    const int reverse_at_0 = D == 2 && many_to_one == RNNX_MANY_TO_ONE_STATE;
    for (int b = 0; b < B; b++) {
        /* a row of length 0 has no last step: its y is 0 everywhere, t = 0 reads a 0 */
        const size_t last = !lengths ? (size_t)(T - 1) : lengths[b] ? (size_t)(lengths[b] - 1) : 0;
        memcpy(pooled + b * row, y + (last * B + b) * row, reverse_at_0 ? half : row);
        if (reverse_at_0)
            memcpy(pooled + b * row + half, y + (size_t)b * row + half, half);
    }
}

/* dst (cols,rows) := src (rows,cols)^T */
static void transpose(unsigned char* dst, const unsigned char* src, size_t rows, size_t cols,
                      size_t elem)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            memcpy(dst + (c * rows + r) * elem, src + (r * cols + c) * elem, elem);
}

/* One recurrent layer (a stack, both directions) over a whole sequence:
 * x (T,B,I) -> y (T,B,D*H).  Sub-layer k < L-1 writes inter[k % 2]; neither
 * inter may be y, and inter[0] may not be x.  state0 and state_n are this
 * layer's part of rnnx_model_run's (h (L*D,B,H), then c (L*D,B,H) for an
 * LSTM), or NULL: zero initial states (zeros) / final states not wanted.  The
 * core writes each final state into h_n, c_n (scratch) and it is copied from
 * there, so state_n may be state0: sub-layer (k,d) alone reads its slot.
 * w_ih_t has room for one W_ih^T, handed to the core so that its input
 * projection runs its own row kernel rather than the naive gemm when there
 * is no BLAS (the same kernel as a stream's steps). */
static int run_recurrent(const rnnx_layer* l, int dtype, const rnnx_blas* blas, const void* x,
                         void* y, void* const* inter, int T, int B, const int64_t* lengths,
                         const unsigned char* state0, unsigned char* state_n, void* zeros,
                         void* h_n, void* c_n, unsigned char* w_ih_t, void* core_work)
{
    const int H = l->hidden_size, D = l->num_directions, per = l->bias ? 4 : 2;
    const size_t elem = elem_size(dtype), slot = (size_t)B * H * elem;
    const size_t c_part = (size_t)l->num_layers * D * slot;  /* where the c half begins */
    const void* in = x;
    for (int k = 0; k < l->num_layers; k++) {
        void* out = k == l->num_layers - 1 ? y : inter[k % 2];
        for (int d = 0; d < D; d++) {
            const void* const* t = l->tensors + (size_t)(k * D + d) * per;
            const size_t at = (size_t)(k * D + d) * slot;  /* sub-layer (k,d)'s state slot */
            const int I = k == 0 ? l->input_size : D * H;
            transpose(w_ih_t, t[0], (size_t)rnnx_gate_count(l->kind) * H, (size_t)I, elem);
            rnnx_forward_args a;
            memset(&a, 0, sizeof a);  /* fields the core adds later: zero = the default */
            a.cell = l->kind;
            a.dtype = dtype;
            a.path = path_for(blas, dtype);
            a.T = T;
            a.B = B;
            a.input_size = I;
            a.H = H;
            a.reverse = d;
            a.lengths = lengths;
            a.x = in;
            a.h0 = state0 ? state0 + at : zeros;
            a.c0 = state0 ? state0 + c_part + at : zeros;
            a.w_ih = t[0];
            a.w_hh = t[1];
            a.b_ih = l->bias ? t[2] : NULL;
            a.b_hh = l->bias ? t[3] : NULL;
            a.w_ih_t = w_ih_t;
            a.y = (unsigned char*)out + (size_t)d * H * elem;
            a.ldy = (ptrdiff_t)D * H;
            a.h_n = h_n;
            a.c_n = c_n;
            a.work = core_work;
            int status = rnnx_forward(blas, &a);
            if (status != RNNX_OK)
                return status;
            if (state_n) {
                memcpy(state_n + at, h_n, slot);
                if (l->kind == RNNX_LSTM)
                    memcpy(state_n + c_part + at, c_n, slot);
            }
        }
        in = out;
    }
    return RNNX_OK;
}

/* Elements of one recurrent layer's part of the state: h (L*D,B,H), and c for an LSTM. */
static size_t layer_state_size(const rnnx_layer* l, int B)
{
    if (!is_recurrent(l->kind))
        return 0;
    return (size_t)(l->kind == RNNX_LSTM ? 2 : 1) * l->num_layers * l->num_directions * B *
           l->hidden_size;
}

size_t rnnx_model_state_size(const rnnx_model* m, int B)
{
    if (rnnx_model_check(m) != RNNX_OK || B < 1)
        return 0;
    size_t n = 0;
    for (int i = 0; i < m->num_layers; i++)
        n += layer_state_size(&m->layers[i], B);
    return n * elem_size(m->dtype);
}

int rnnx_model_run(const rnnx_model* m, const rnnx_blas* blas, const void* x, int T, int B,
                   const int64_t* lengths, const void* state0, void* state_n, void* y,
                   void* work, size_t work_bytes)
{
    int status = rnnx_model_check(m);
    if (status != RNNX_OK)
        return status;
    if (!x || !y || !work)
        return RNNX_ENULL;
    if (T < 1 || B < 1)
        return RNNX_EINVAL;
    if (lengths)
        for (int b = 0; b < B; b++)
            if (lengths[b] < 0 || lengths[b] > T)  /* 0: the row runs no step */
                return RNNX_EINVAL;
    const size_t elem = elem_size(m->dtype);
    if ((uintptr_t)work % 8 || (uintptr_t)state0 % elem || (uintptr_t)state_n % elem)
        return RNNX_EALIGN;
    if (work_bytes < rnnx_model_run_work_size(m, T, B))
        return RNNX_ENOMEM;
    if (takes_ids(m) && check_ids(x, (size_t)T * B, m->input_size) != RNNX_OK)
        return RNNX_EINVAL;
    const model_dims d = dims_of(m, T, B);
    const size_t TB = (size_t)T * B, BH = (size_t)B * d.hidden;
    unsigned char* buffers[3];
    buffers[0] = (unsigned char*)work;
    buffers[1] = buffers[0] + TB * d.width * elem;
    buffers[2] = buffers[1] + TB * d.width * elem;
    unsigned char* zeros = buffers[2] + TB * d.width * elem;
    unsigned char* h_n = zeros + BH * elem;
    unsigned char* c_n = h_n + BH * elem;
    unsigned char* w_ih_t = c_n + BH * elem;
    void* core_work = w_ih_t + d.w_ih_t * elem;
    memset(zeros, 0, BH * elem);

    const void* cur = x;
    const unsigned char* layer_state0 = (const unsigned char*)state0;
    unsigned char* layer_state_n = (unsigned char*)state_n;
    int rows = (int)TB;
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        const int last = i == m->num_layers - 1;
        const int pool = m->many_to_one && i == d.recurrent;
        /* out: y for the last layer, else a buffer cur is not in */
        void* out = y;
        if (!last || pool)
            out = buffers[cur == buffers[0] ? 1 : 0];
        if (l->kind == RNNX_EMBEDDING) {  /* layer 0: cur is x, (T,B) int32 ids */
            embed(m->dtype, out, cur, l, (size_t)rows);
            cur = out;
            continue;
        }
        if (l->kind == RNNX_DENSE) {
            dense(m->dtype, out, cur, l, rows);
            cur = out;
            continue;
        }
        /* the stack's intermediates: the buffers out is not in, one cur is not in first */
        void* inter[3];
        int n = 0;
        for (int j = 0; j < 3; j++)
            if (buffers[j] != out && buffers[j] != cur)
                inter[n++] = buffers[j];
        for (int j = 0; j < 3; j++)
            if (buffers[j] != out && buffers[j] == cur)
                inter[n++] = buffers[j];
        status = run_recurrent(l, m->dtype, blas, cur, out, inter, T, B, lengths, layer_state0,
                               layer_state_n, zeros, h_n, c_n, w_ih_t, core_work);
        if (status != RNNX_OK)
            return status;
        const size_t state_bytes = layer_state_size(l, B) * elem;
        layer_state0 = layer_state0 ? layer_state0 + state_bytes : NULL;
        layer_state_n = layer_state_n ? layer_state_n + state_bytes : NULL;
        cur = out;
        if (pool) {
            void* pooled = last ? y : buffers[out == buffers[0] ? 1 : 0];
            last_step(pooled, out, T, B, l->hidden_size, l->num_directions, lengths,
                      m->many_to_one, elem);
            cur = pooled;
            rows = B;
        }
    }
    return RNNX_OK;
}

/* ------------------------------------------------------------- streaming --- */

/* The stream's memory, in elements of the model's dtype:
 *   per recurrent sub-layer, in model order: [parity 0: h (B,H), c (B,H) if LSTM]
 *                                            [parity 1: the same]
 *   per recurrent sub-layer: w_ih^T (I_k,G), w_hh^T (H,G)   (what the step kernel reads)
 *   two activation buffers (B,width)
 *   the core's work for one step, the largest over the sub-layers */
static size_t states_per_row(const rnnx_layer* l)
{
    return (size_t)(l->kind == RNNX_LSTM ? 2 : 1) * l->hidden_size;
}

static size_t sub_input(const rnnx_layer* l, int k)
{
    return k == 0 ? (size_t)l->input_size : (size_t)l->hidden_size;
}

typedef struct stream_sizes {
    size_t states, transposes, activations, core_work;
} stream_sizes;

static stream_sizes stream_sizes_of(const rnnx_model* m, int B)
{
    const model_dims d = dims_of(m, 1, B);
    stream_sizes s = {0, 0, 2 * (size_t)B * d.width, d.core_work};
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        if (!is_recurrent(l->kind))
            continue;
        const size_t G = (size_t)rnnx_gate_count(l->kind) * l->hidden_size;
        for (int k = 0; k < l->num_layers; k++) {
            s.states += 2 * (size_t)B * states_per_row(l);
            s.transposes += sub_input(l, k) * G +
                            rnnx_packed_size(l->kind, m->dtype, l->hidden_size);
        }
    }
    return s;
}

static int stream_supported(const rnnx_model* m, int B)
{
    int status = rnnx_model_check(m);
    if (status != RNNX_OK)
        return status;
    if (B < 1)
        return RNNX_EINVAL;
    for (int i = 0; i < m->num_layers; i++)
        if (m->layers[i].num_directions != 1)
            return RNNX_EUNSUPPORTED;
    return RNNX_OK;
}

size_t rnnx_stream_size(const rnnx_model* m, int B)
{
    if (stream_supported(m, B) != RNNX_OK)
        return 0;
    const stream_sizes s = stream_sizes_of(m, B);
    return (s.states + s.transposes + s.activations + s.core_work) * elem_size(m->dtype);
}

int rnnx_stream_init(rnnx_stream* s, const rnnx_model* m, const rnnx_blas* blas, int B,
                     void* mem, size_t mem_bytes)
{
    if (!s || !mem)
        return RNNX_ENULL;
    int status = stream_supported(m, B);
    if (status != RNNX_OK)
        return status;
    if ((uintptr_t)mem % 8)
        return RNNX_EALIGN;
    if (mem_bytes < rnnx_stream_size(m, B))
        return RNNX_ENOMEM;
    const size_t elem = elem_size(m->dtype);
    const stream_sizes sz = stream_sizes_of(m, B);
    unsigned char* t = (unsigned char*)mem + sz.states * elem;
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        if (!is_recurrent(l->kind))
            continue;
        const size_t G = (size_t)rnnx_gate_count(l->kind) * l->hidden_size, H = (size_t)l->hidden_size;
        const int per = l->bias ? 4 : 2;
        for (int k = 0; k < l->num_layers; k++) {
            const size_t I = sub_input(l, k);
            transpose(t, l->tensors[(size_t)k * per], G, I, elem);
            t += I * G * elem;
            rnnx_pack_weights(l->kind, m->dtype, (int)H, l->tensors[(size_t)k * per + 1], t);
            t += rnnx_packed_size(l->kind, m->dtype, (int)H) * elem;
        }
    }
    s->model = m;
    s->blas = blas;
    s->B = B;
    s->mem = mem;
    s->mem_bytes = mem_bytes;
    return rnnx_stream_reset(s);
}

int rnnx_stream_reset(rnnx_stream* s)
{
    if (!s || !s->model || !s->mem)
        return RNNX_ENULL;
    const stream_sizes sz = stream_sizes_of(s->model, s->B);
    memset(s->mem, 0, sz.states * elem_size(s->model->dtype));
    s->parity = 0;
    return RNNX_OK;
}

int rnnx_stream_step(rnnx_stream* s, const void* x, void* y)
{
    if (!s || !s->model || !s->mem || !x || !y)
        return RNNX_ENULL;
    const rnnx_model* m = s->model;
    const int B = s->B;
    if (B < 1 || s->parity < 0 || s->parity > 1 || s->mem_bytes < rnnx_stream_size(m, B))
        return RNNX_EINVAL;
    if (takes_ids(m) && check_ids(x, (size_t)B, m->input_size) != RNNX_OK)
        return RNNX_EINVAL;  /* before anything is written: the state stays as it was */
    const size_t elem = elem_size(m->dtype);
    const stream_sizes sz = stream_sizes_of(m, B);
    unsigned char* state = (unsigned char*)s->mem;
    unsigned char* t = state + sz.states * elem;
    unsigned char* act[2];
    act[0] = t + sz.transposes * elem;
    act[1] = act[0] + sz.activations / 2 * elem;
    void* core_work = act[1] + sz.activations / 2 * elem;

    /* this step reads the state at parity and writes the other half, so a
     * failed step leaves the stream's state as it was */
    const void* cur = x;
    int next = 0;
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        const int last = i == m->num_layers - 1;
        if (l->kind == RNNX_DENSE || l->kind == RNNX_EMBEDDING) {
            void* out = last ? y : act[next];
            if (l->kind == RNNX_EMBEDDING)  /* layer 0: cur is x, (B,) int32 ids */
                embed(m->dtype, out, cur, l, (size_t)B);
            else
                dense(m->dtype, out, cur, l, B);
            cur = out;
            next = 1 - next;
            continue;
        }
        const size_t H = (size_t)l->hidden_size, G = (size_t)rnnx_gate_count(l->kind) * H;
        const size_t half = (size_t)B * states_per_row(l) * elem, BH = (size_t)B * H * elem;
        const int per = l->bias ? 4 : 2;
        for (int k = 0; k < l->num_layers; k++) {
            const size_t I = sub_input(l, k);
            unsigned char* now = state + (size_t)s->parity * half;
            unsigned char* then = state + (size_t)(1 - s->parity) * half;
            void* out = (last && k == l->num_layers - 1) ? y : act[next];
            const void* const* w = l->tensors + (size_t)k * per;
            rnnx_forward_args a;
            memset(&a, 0, sizeof a);
            a.cell = l->kind;
            a.dtype = m->dtype;
            a.path = path_for(s->blas, m->dtype);
            a.T = 1;
            a.B = B;
            a.input_size = (int)I;
            a.H = (int)H;
            a.x = cur;
            a.h0 = now;
            a.c0 = now + BH;
            a.w_ih = w[0];
            a.w_hh = w[1];
            a.b_ih = l->bias ? w[2] : NULL;
            a.b_hh = l->bias ? w[3] : NULL;
            a.w_ih_t = t;
            a.w_hh_packed = t + I * G * elem;   /* packed once, by rnnx_stream_init */
            a.y = out;
            a.ldy = (ptrdiff_t)H;
            a.h_n = then;
            a.c_n = then + BH;
            a.work = core_work;
            int status = rnnx_forward(s->blas, &a);
            if (status != RNNX_OK)
                return status;
            t += I * G * elem + rnnx_packed_size(l->kind, m->dtype, (int)H) * elem;
            state += 2 * half;
            cur = out;
            next = 1 - next;
        }
    }
    s->parity = 1 - s->parity;
    return RNNX_OK;
}

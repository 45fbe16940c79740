/*
 * model/reader.c: the .rnnx reader of the model layer (rnnx_model.h): the
 * checks of a model's fields, the parse of an image in memory or in a file.
 * Everything read from a buffer is checked before it is used: a truncated,
 * altered or hostile image gives a status, never a read out of bounds.
 */
#include <math.h>
#include <string.h>
#ifndef RNNX_NO_STDIO
#include <stdio.h>
#endif

#include "model/internal.h"
#include "rnnx_version.h"

static const unsigned char MAGIC[8] = RNNX_FORMAT_MAGIC;  /* the 8 bytes, without a NUL */

const char* rnnx_version(void)
{
    return RNNX_VERSION_STRING;
}

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

/* Number of tensors of a layer (see rnnx_layer): an int8 weight matrix is
 * two, its data and its scales. */
static int tensor_count(const rnnx_layer* l)
{
    const int m = rnnxm_matrix_entries(l), b = l->bias ? 1 : 0;
    if (l->kind == RNNX_EMBEDDING)
        return 1;
    if (l->kind == RNNX_DENSE)
        return m + b;
    return l->num_layers * l->num_directions * rnnxm_sub_entries(l);
}

/* What tensor t of a layer holds, in the order of tensor_count. */
enum { TENSOR_REAL, TENSOR_INT8, TENSOR_BF16, TENSOR_SCALES };
typedef struct tensor_desc {
    uint64_t elements;
    int type;             /* TENSOR_*: the model's dtype, int8, bfloat16, float32 scales */
} tensor_desc;

static tensor_desc describe_tensor(const rnnx_layer* l, int t)
{
    const uint64_t H = (uint64_t)l->hidden_size;
    const int m = rnnxm_matrix_entries(l);
    const int weight_type = l->weights == RNNX_WEIGHTS_INT8       ? TENSOR_INT8
                            : l->weights == RNNX_WEIGHTS_BFLOAT16 ? TENSOR_BF16
                                                                  : TENSOR_REAL;
    tensor_desc d = {0, TENSOR_REAL};
    uint64_t rows, cols;
    int entry;            /* the entry within one weight matrix: 0 data, 1 scales */
    if (l->kind == RNNX_EMBEDDING) {
        d.elements = H * (uint64_t)l->input_size;  /* the table (num_embeddings, embedding_dim) */
        return d;
    }
    if (l->kind == RNNX_DENSE) {
        if (t >= m) {
            d.elements = H;  /* bias */
            return d;
        }
        rows = H;
        cols = (uint64_t)l->input_size;
        entry = t;
    } else {
        const int per = rnnxm_sub_entries(l), b = l->bias ? 2 : 0;
        const int k = t / (per * l->num_directions), which = t % per;
        const uint64_t G = (uint64_t)rnnx_gate_count(l->kind) * H;
        const uint64_t S = (uint64_t)rnnxm_state_width(l);
        if (which >= 2 * m && which < 2 * m + b) {
            d.elements = G;  /* b_ih, b_hh */
            return d;
        }
        if (which >= 2 * m + b) {   /* w_hr (P,H), after the biases */
            rows = S;
            cols = H;
            entry = which - 2 * m - b;
        } else {
            rows = G;
            cols = which / m ? S : k == 0 ? (uint64_t)l->input_size : (uint64_t)l->num_directions * S;
            entry = which % m;
        }
    }
    d.elements = entry ? rows : rows * cols;
    d.type = entry ? TENSOR_SCALES : weight_type;
    return d;
}

/* Bytes of one element of a tensor type: its alignment too. */
static size_t type_size(int type, int dtype)
{
    return type == TENSOR_INT8 ? 1 : type == TENSOR_BF16 ? 2 : type == TENSOR_SCALES ? 4
                                                                    : elem_size(dtype);
}

/* RNNX_OK if every one of n little-endian float32 scales is finite and >= 0
 * (a NaN, an infinity or a negative scale would turn every product of its row
 * into garbage); read byte by byte, the image may not be float-aligned. */
static int check_scales(const unsigned char* p, uint64_t n)
{
    for (uint64_t r = 0; r < n; r++, p += 4) {
        const uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                              (uint32_t)p[3] << 24;
        if ((bits & 0x7f800000u) == 0x7f800000u || ((bits >> 31) && (bits & 0x7fffffffu)))
            return RNNX_ECORRUPT;
    }
    return RNNX_OK;
}

/* The fields of one layer, alone and against the width that feeds it (the
 * model's input size for the first; an Embedding may only be the first). */
static int check_layer(const rnnx_layer* l, int dtype, int width_in, int first)
{
    if (l->kind != RNNX_DENSE && l->kind != RNNX_EMBEDDING && !is_recurrent(l->kind))
        return RNNX_ECORRUPT;
    /* int8 and bfloat16 weights: a recurrent layer's (rnnx.quantize keeps Dense heads and
     * an Embedding float32, and so do the model's Dense kernels), in a float32 model */
    if (l->weights != RNNX_WEIGHTS_FLOAT &&
        ((l->weights != RNNX_WEIGHTS_INT8 && l->weights != RNNX_WEIGHTS_BFLOAT16) ||
         !is_recurrent(l->kind) || dtype != RNNX_FLOAT32))
        return RNNX_ECORRUPT;
    if (l->kind == RNNX_EMBEDDING && (!first || l->num_layers != 1 || l->num_directions != 1 ||
                                      l->bias != 0 || l->activation != 0))
        return RNNX_ECORRUPT;
    if (l->input_size < 1 || l->input_size > RNNX_FORMAT_MAX_SIZE || l->hidden_size < 1 ||
        l->hidden_size > RNNX_FORMAT_MAX_SIZE || l->input_size != width_in)
        return RNNX_ECORRUPT;
    if (l->bias != 0 && l->bias != 1)
        return RNNX_ECORRUPT;
    if (l->kind == RNNX_EMBEDDING) {
        /* checked above */
    } else if (l->kind == RNNX_DENSE) {
        if (l->num_layers != 1 || l->num_directions != 1 || l->activation < RNNX_ACT_IDENTITY ||
            l->activation > RNNX_ACT_RELU)
            return RNNX_ECORRUPT;
    } else if (l->num_layers < 1 || l->num_layers > RNNX_FORMAT_MAX_STACK || l->num_directions < 1 ||
               l->num_directions > 2 || l->activation != 0 ||
               (l->proj_size != 0 &&
                (l->kind != RNNX_LSTM || l->proj_size < 1 || l->proj_size >= l->hidden_size))) {
        return RNNX_ECORRUPT;
    }
    if (!is_recurrent(l->kind) && l->proj_size != 0)
        return RNNX_ECORRUPT;
    return RNNX_OK;
}

/* The model as a whole: the layer chain, many-to-one after a recurrent layer. */
static int check_chain(int dtype, int many_to_one, int n, int input_size, int output_size,
                       const rnnx_layer* layers)
{
    if (dtype != RNNX_FLOAT32 && dtype != RNNX_FLOAT64)
        return RNNX_ECORRUPT;
    if (n < 1 || n > RNNX_FORMAT_MAX_LAYERS || many_to_one < RNNX_MANY_TO_MANY ||
        many_to_one > RNNX_MANY_TO_ONE_OUTPUT)
        return RNNX_ECORRUPT;
    int width = input_size, recurrent = 0;
    for (int i = 0; i < n; i++) {
        int status = check_layer(&layers[i], dtype, width, i == 0);
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
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        if (!l->tensors)
            return RNNX_ENULL;
        for (int t = 0; t < tensor_count(l); t++) {
            if (!l->tensors[t])
                return RNNX_ENULL;
            if ((uintptr_t)l->tensors[t] % type_size(describe_tensor(l, t).type, m->dtype))
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
    return v > (uint32_t)RNNX_FORMAT_MAX_SIZE ? -1 : (int)v;
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
    /* the last field: an Embedding's padding_idx + 1, every other layer's weights
     * (version 3; reserved, 0, before) */
    l->weights = l->kind == RNNX_EMBEDDING ? RNNX_WEIGHTS_FLOAT : to_int(read_u32(d + 28));
    /* the seventh: a Dense layer's activation, a recurrent layer's proj_size (version 3;
     * 0 before) */
    l->proj_size = is_recurrent(l->kind) ? l->activation : 0;
    l->activation = is_recurrent(l->kind) ? 0 : l->activation;
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
    if (version < RNNX_FORMAT_VERSION_MIN || version > RNNX_FORMAT_VERSION)
        return RNNX_EVERSION;
    if (len < RNNX_FORMAT_HEADER_BYTES)
        return RNNX_ETRUNCATED;
    const uint64_t file_size = read_u64(buf + 24);
    if (file_size > (uint64_t)len)
        return RNNX_ETRUNCATED;
    if (file_size < RNNX_FORMAT_HEADER_BYTES + 4 || file_size != (uint64_t)len)
        return RNNX_ECORRUPT;
    /* every byte is checked before any field is trusted further */
    if (crc32_bytes(buf, len - 4) != read_u32(buf + len - 4))
        return RNNX_ECHECKSUM;
    const uint32_t dtype = read_u32(buf + 12), count = read_u32(buf + 16), flags = read_u32(buf + 20);
    if (dtype > 1 || count < 1 || count > RNNX_FORMAT_MAX_LAYERS ||
        (flags & ~(uint32_t)RNNX_FORMAT_KNOWN_FLAGS) ||
        ((flags & RNNX_FORMAT_FLAG_LAST_OUTPUT) &&
         (!(flags & RNNX_FORMAT_FLAG_MANY_TO_ONE) || version < 2)))
        return RNNX_ECORRUPT;
    for (size_t k = 44; k < RNNX_FORMAT_HEADER_BYTES; k++)
        if (buf[k])
            return RNNX_ECORRUPT;
    info->dtype = (int)dtype;
    info->many_to_one = !(flags & RNNX_FORMAT_FLAG_MANY_TO_ONE) ? RNNX_MANY_TO_MANY
                        : (flags & RNNX_FORMAT_FLAG_LAST_OUTPUT) ? RNNX_MANY_TO_ONE_OUTPUT
                                                                 : RNNX_MANY_TO_ONE_STATE;
    info->num_layers = (int)count;
    info->input_size = to_int(read_u32(buf + 32));
    info->output_size = to_int(read_u32(buf + 36));
    const uint64_t descriptors_end = RNNX_FORMAT_HEADER_BYTES + (uint64_t)RNNX_FORMAT_DESCRIPTOR_BYTES * count;
    const uint64_t data_offset = (descriptors_end + RNNX_FORMAT_TENSOR_ALIGN - 1) / RNNX_FORMAT_TENSOR_ALIGN * RNNX_FORMAT_TENSOR_ALIGN;
    if (read_u32(buf + 40) != data_offset || data_offset > file_size - 4)
        return RNNX_ECORRUPT;
    /* the layers, one at a time, into layers[] or a local when only checking */
    int width = info->input_size, recurrent = 0;
    uint64_t offset = data_offset;
    size_t tensors = 0;
    for (uint32_t i = 0; i < count; i++) {
        rnnx_layer local;
        rnnx_layer* l = layers ? &layers[i] : &local;
        const unsigned char* d = buf + RNNX_FORMAT_HEADER_BYTES + (size_t)RNNX_FORMAT_DESCRIPTOR_BYTES * i;
        read_descriptor(l, d);
        /* the last field: an Embedding's padding_idx + 1 (0: none; Python's, C ignores
         * it), the weights' storage for every other layer (0, float, before version 3);
         * the Embedding is version 2's */
        const uint32_t last = read_u32(d + 28);
        if (l->kind == RNNX_EMBEDDING ? version < 2 || last > (uint32_t)l->input_size
                                      : last != 0 && version < RNNX_FORMAT_VERSION_WEIGHTS)
            return RNNX_ECORRUPT;
        if (l->proj_size != 0 && version < RNNX_FORMAT_VERSION_WEIGHTS)
            return RNNX_ECORRUPT;   /* proj_size came with version 3 */
        int status = check_layer(l, info->dtype, width, i == 0);
        if (status != RNNX_OK)
            return status;
        recurrent += is_recurrent(l->kind);
        width = layer_output_size(l);
        const int n = tensor_count(l);
        if (pointers)
            l->tensors = pointers + tensors;
        for (int t = 0; t < n; t++) {
            offset = (offset + RNNX_FORMAT_TENSOR_ALIGN - 1) / RNNX_FORMAT_TENSOR_ALIGN * RNNX_FORMAT_TENSOR_ALIGN;
            const tensor_desc td = describe_tensor(l, t);
            const uint64_t bytes = td.elements * type_size(td.type, info->dtype);
            if (offset > file_size - 4 || bytes > file_size - 4 - offset)
                return RNNX_ECORRUPT;
            if ((td.type == TENSOR_SCALES && check_scales(buf + offset, td.elements) != RNNX_OK) ||
                (td.type == TENSOR_INT8 && memchr(buf + offset, 0x80, (size_t)td.elements)))
                return RNNX_ECORRUPT;  /* int8 weights are symmetric: -128 is never written */
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
    if (read_u32(head + 8) < RNNX_FORMAT_VERSION_MIN || read_u32(head + 8) > RNNX_FORMAT_VERSION)
        return RNNX_EVERSION;
    if (got < RNNX_FORMAT_HEADER_BYTES)
        return RNNX_ETRUNCATED;
    const uint32_t count = read_u32(head + 16);
    if (count < 1 || count > RNNX_FORMAT_MAX_LAYERS)
        return RNNX_ECORRUPT;
    if (got < RNNX_FORMAT_HEADER_BYTES + (size_t)RNNX_FORMAT_DESCRIPTOR_BYTES * count)
        return RNNX_ETRUNCATED;
    size_t tensors = 0;
    for (uint32_t i = 0; i < count; i++) {
        rnnx_layer l;
        read_descriptor(&l, head + RNNX_FORMAT_HEADER_BYTES + (size_t)RNNX_FORMAT_DESCRIPTOR_BYTES * i);
        if (l.num_layers < 1 || l.num_layers > RNNX_FORMAT_MAX_STACK || l.num_directions < 1 ||
            l.num_directions > 2 || (l.bias != 0 && l.bias != 1) || l.weights < 0 ||
            l.weights > RNNX_WEIGHTS_BFLOAT16 || l.proj_size < 0)
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
    unsigned char head[RNNX_FORMAT_HEADER_BYTES + RNNX_FORMAT_DESCRIPTOR_BYTES * RNNX_FORMAT_MAX_LAYERS];
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

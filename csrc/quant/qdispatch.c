/*
 * quant/qdispatch.c: which kernel variant runs (quant.h's rnnx_qkernel_*).
 * "auto" follows rnnx_get_isa(): the best variant of that ISA this CPU runs,
 * per qtype, else the generic one.  Since every variant computes the same
 * bits, the choice changes only the speed.
 */
#include <string.h>

#include "qkernels.h"

/* Best first. */
int rnnx_qkernel_runs_never(void)
{
    return 0;
}

static const qkernel* const variants[] = {
    &rnnx_qkernel_avx512_vnni, &rnnx_qkernel_avx_vnni, &rnnx_qkernel_avx2,
    &rnnx_qkernel_avx512_bf16, &rnnx_qkernel_neon_dotprod, &rnnx_qkernel_neon,
    &rnnx_qkernel_generic};
enum { N_VARIANTS = (int)(sizeof variants / sizeof variants[0]) };

/* A process-wide setting for tests and benchmarks, as rnnx_set_isa's. */
static const qkernel* forced = NULL;

static int variant_runs(const qkernel* k)
{
    return (k->dot_i8 || k->dot_bf16) && k->runs();
}

const char* rnnx_qkernel_name(int index)
{
    return index >= 0 && index < N_VARIANTS ? variants[index]->name : NULL;
}

static const qkernel* find(const char* name)
{
    for (int i = 0; name && i < N_VARIANTS; i++)
        if (strcmp(variants[i]->name, name) == 0)
            return variants[i];
    return NULL;
}

int rnnx_qkernel_available(const char* name)
{
    const qkernel* k = find(name);
    return k != NULL && variant_runs(k);
}

int rnnx_qset_kernel(const char* name)
{
    if (name == NULL || strcmp(name, "auto") == 0) {
        forced = NULL;
        return RNNX_OK;
    }
    if (!rnnx_qkernel_available(name))
        return RNNX_EISA;
    forced = find(name);
    return RNNX_OK;
}

/* The variant that computes qtype now. */
static const qkernel* in_use(int qtype)
{
    if (forced)
        return (qtype == RNNX_QINT8 ? forced->dot_i8 != NULL : forced->dot_bf16 != NULL)
                   ? forced
                   : &rnnx_qkernel_generic;
    /* an AVX-512 CPU without VNNI runs the AVX2 int8 kernel */
    const char* isa = rnnx_get_isa();
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N_VARIANTS; i++) {
            const qkernel* k = variants[i];
            const int has = qtype == RNNX_QINT8 ? k->dot_i8 != NULL : k->dot_bf16 != NULL;
            if (has && strcmp(k->isa, isa) == 0 && k->runs())
                return k;
        }
        if (strcmp(isa, "avx512") != 0)
            break;
        isa = "avx2";
    }
    return &rnnx_qkernel_generic;
}

const char* rnnx_qget_kernel(int qtype)
{
    return in_use(qtype)->name;
}

qdot_i8_fn rnnx_qdot_i8(void)
{
    return in_use(RNNX_QINT8)->dot_i8;
}

qdot_bf16_fn rnnx_qdot_bf16(void)
{
    return in_use(RNNX_QBFLOAT16)->dot_bf16;
}

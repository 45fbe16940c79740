/*
 * dispatch.c: the public entry points of rnnx.h.  Checks the arguments that
 * would make the kernels read or write out of bounds, then hands the call to
 * the kernels of the dtype and instruction set in use.  The cells' shapes
 * and buffer layouts come from layout.h.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kernels/cpu.h"
#include "layout.h"
#include "rnnx.h"

/* ------------------------------------------------------ instruction sets --- */

typedef struct isa_entry {
    const char* name;
    const rnnx_dtype_kernels* kernels[2];  /* [dtype]; empty tables where not built */
    int (*cpu_runs)(void);
} isa_entry;

/* Best first: kernels/isa_list.h. */
#define RNNX_ISA_ENTRY(name, runs) {#name, {&rnnx_kernels_f32_##name, &rnnx_kernels_f64_##name}, runs},
static const isa_entry isas[] = {RNNX_ISA_LIST(RNNX_ISA_ENTRY)};
#undef RNNX_ISA_ENTRY
enum { N_ISAS = (int)(sizeof isas / sizeof isas[0]) };

/* Built into this library and run by this CPU. */
static int isa_runs(const isa_entry* e)
{
    return e->kernels[0]->forward != NULL && e->cpu_runs();
}

static const isa_entry* find_isa(const char* name)
{
    for (int i = 0; name && i < N_ISAS; i++)
        if (strcmp(isas[i].name, name) == 0)
            return &isas[i];
    return NULL;
}

/* The one in use: the one rnnx_set_isa chose, else the one the environment
 * variable RNNX_ISA names if it runs here, else the best one that runs.
 * The library's only global state is rnnx_set_isa's choice, written by it
 * alone (a process-wide setting, for tests and benchmarks; call it before any
 * thread runs the core); the default is found afresh on each call, so nothing
 * is written behind the caller's back and concurrent first calls do not race. */
static const isa_entry* forced_isa = NULL;

static const isa_entry* default_isa(void)
{
    const isa_entry* e = find_isa(getenv("RNNX_ISA"));
    if (e && isa_runs(e))
        return e;
    int i = 0;
    while (i < N_ISAS - 1 && !isa_runs(&isas[i]))
        i++;
    return &isas[i];
}

#ifdef RNNX_GNU_C
/* Found once when the library is loaded, before any caller's thread runs. */
static const isa_entry* loaded_default_isa = NULL;

__attribute__((constructor)) static void find_default_isa(void)
{
    loaded_default_isa = default_isa();
}
#endif

static const isa_entry* isa_in_use(void)
{
    if (forced_isa)
        return forced_isa;
#ifdef RNNX_GNU_C
    if (loaded_default_isa)
        return loaded_default_isa;
#endif
    return default_isa();
}

const rnnx_dtype_kernels* rnnx_kernels_in_use(int dtype)
{
    return isa_in_use()->kernels[dtype == RNNX_FLOAT64];
}

const char* rnnx_isa_name(int index)
{
    return index >= 0 && index < N_ISAS ? isas[index].name : NULL;
}

int rnnx_isa_available(const char* name)
{
    const isa_entry* e = find_isa(name);
    return e != NULL && isa_runs(e);
}

int rnnx_set_isa(const char* name)
{
    const isa_entry* e = find_isa(name);
    if (!e || !isa_runs(e))
        return RNNX_EISA;
    forced_isa = e;
    return RNNX_OK;
}

const char* rnnx_get_isa(void)
{
    return isa_in_use()->name;
}

/* ------------------------------------------------------------------ sizes --- */

int rnnx_gate_count(int cell)
{
    const rnnx_cell_desc* d = rnnx_cell_find(cell);
    return d ? d->gates : 0;
}

/* The sizes count elements; dimensions that do not fit the core's int
 * indices give 0 (rnnx_forward refuses them with RNNX_ESIZE). */
static int dims_fit(const rnnx_cell_desc* d, int T, int B, int I, int H)
{
    if (T < 0 || B < 0 || I < 0 || H < 1)
        return 0;
    const int64_t G = (int64_t)d->gates * H;
    /* rows T*B, widths G and I, and every (rows, width) product are ints or size_t */
    return G <= INT_MAX && (int64_t)T * B <= INT_MAX &&
           (double)T * B * (double)(G > I ? G : I) < (double)SIZE_MAX / 16 &&
           (double)G * (double)(H > I ? H : I) < (double)SIZE_MAX / 16;
}

/* A projection of size P: 0 (none), or 0 < P < H on an LSTM. */
static int proj_ok(const rnnx_cell_desc* d, int H, int P)
{
    return P == 0 || ((d->options & RNNX_OPTION_PROJ) && P > 0 && P < H);
}

size_t rnnx_cache_size_proj(int cell, int T, int B, int H, int P)
{
    const rnnx_cell_desc* d = rnnx_cell_find(cell);
    if (!d || !dims_fit(d, T, B, 0, H) || !proj_ok(d, H, P))
        return 0;
    return rnnx_cache_layout_of(d, T, B, H, P).total;
}

size_t rnnx_forward_work_size_proj(int cell, int T, int B, int I, int H, int P, int train)
{
    const rnnx_cell_desc* d = rnnx_cell_find(cell);
    if (!d || !dims_fit(d, T, B, I, H) || !proj_ok(d, H, P))
        return 0;
    return rnnx_forward_work_of(d, T, B, I, H, P, train).total;
}

size_t rnnx_backward_work_size_proj(int cell, int T, int B, int I, int H, int P)
{
    const rnnx_cell_desc* d = rnnx_cell_find(cell);
    if (!d || !dims_fit(d, T, B, I, H) || !proj_ok(d, H, P))
        return 0;
    return rnnx_backward_work_of(d, T, B, I, H, P).total;
}

size_t rnnx_cache_size(int cell, int T, int B, int H)
{
    return rnnx_cache_size_proj(cell, T, B, H, 0);
}

size_t rnnx_forward_work_size(int cell, int T, int B, int I, int H, int train)
{
    return rnnx_forward_work_size_proj(cell, T, B, I, H, 0, train);
}

size_t rnnx_backward_work_size(int cell, int T, int B, int I, int H)
{
    return rnnx_backward_work_size_proj(cell, T, B, I, H, 0);
}

size_t rnnx_packed_size_proj(int cell, int dtype, int H, int P)
{
    const rnnx_cell_desc* d = rnnx_cell_find(cell);
    if (!d || !dims_fit(d, 0, 0, 0, H) || (dtype != RNNX_FLOAT32 && dtype != RNNX_FLOAT64) ||
        !proj_ok(d, H, P))
        return 0;
    return rnnx_packed_elems_proj(d, H, P, dtype == RNNX_FLOAT64 ? RNNX_UNITS_F64 : RNNX_UNITS_F32);
}

int rnnx_pack_weights_proj(int cell, int dtype, int H, int P, const void* w_hh, const void* w_hr,
                           void* out)
{
    const rnnx_cell_desc* d = rnnx_cell_find(cell);
    if (!d)
        return RNNX_ECELL;
    if ((dtype != RNNX_FLOAT32 && dtype != RNNX_FLOAT64) || H < 1)
        return RNNX_EINVAL;
    if (!dims_fit(d, 0, 0, 0, H))
        return RNNX_ESIZE;
    if (!proj_ok(d, H, P))
        return RNNX_EPROJ;
    if (!w_hh || !out || (P > 0 && !w_hr))
        return RNNX_ENULL;
    isa_in_use()->kernels[dtype]->pack(d, H, P, w_hh, w_hr, out);
    return RNNX_OK;
}

size_t rnnx_packed_size(int cell, int dtype, int H)
{
    return rnnx_packed_size_proj(cell, dtype, H, 0);
}

int rnnx_pack_weights(int cell, int dtype, int H, const void* w_hh, void* out)
{
    return rnnx_pack_weights_proj(cell, dtype, H, 0, w_hh, NULL, out);
}

/* ---------------------------------------------------------- entry points --- */

static int check_dims(const rnnx_cell_desc* d, int dtype, int path, int T, int B, int I, int H,
                      const int64_t* lengths)
{
    if (!d)
        return RNNX_ECELL;
    if (dtype != RNNX_FLOAT32 && dtype != RNNX_FLOAT64)
        return RNNX_EINVAL;
    if (path < RNNX_PATH_AUTO || path > RNNX_PATH_NAIVE)
        return RNNX_EINVAL;
    if (T < 0 || B < 0 || I < 0 || H < 1)
        return RNNX_EINVAL;
    if (!dims_fit(d, T, B, I, H))
        return RNNX_ESIZE;
    if (lengths)
        for (int b = 0; b < B; b++)
            if (lengths[b] < 0 || lengths[b] > T)  /* 0: the row runs no step */
                return RNNX_EINVAL;
    return RNNX_OK;
}

int rnnx_forward(const rnnx_blas* blas, const rnnx_forward_args* a)
{
    if (!a)
        return RNNX_ENULL;
    const rnnx_cell_desc* d = rnnx_cell_find(a->cell);
    int status = check_dims(d, a->dtype, a->path, a->T, a->B, a->input_size, a->H, a->lengths);
    if (status != RNNX_OK)
        return status;
    if (!proj_ok(d, a->H, a->proj))
        return RNNX_EPROJ;
    if (a->ldy < rnnx_state_width(a->H, a->proj))
        return RNNX_EINVAL;
    if (!a->x || !a->h0 || !a->w_ih || !a->w_hh || !a->y || !a->h_n || !a->work)
        return RNNX_ENULL;
    if (a->proj > 0 && !a->w_hr)
        return RNNX_ENULL;
    if (a->w_peep && !(d->options & RNNX_OPTION_PEEPHOLE))
        return RNNX_EPEEPHOLE;
    if (d->states == 2 && (!a->c0 || !a->c_n))
        return RNNX_ENULL;
    return isa_in_use()->kernels[a->dtype]->forward(d, blas, a);
}

int rnnx_backward(const rnnx_blas* blas, const rnnx_backward_args* a)
{
    if (!a)
        return RNNX_ENULL;
    const rnnx_cell_desc* d = rnnx_cell_find(a->cell);
    int status = check_dims(d, a->dtype, a->path, a->T, a->B, a->input_size, a->H, a->lengths);
    if (status != RNNX_OK)
        return status;
    if (!proj_ok(d, a->H, a->proj))
        return RNNX_EPROJ;
    if (a->dy && a->lddy < rnnx_state_width(a->H, a->proj))
        return RNNX_EINVAL;
    if (a->proj > 0 && (!a->w_hr || !a->dw_hr))
        return RNNX_ENULL;
    if (a->w_peep && !(d->options & RNNX_OPTION_PEEPHOLE))
        return RNNX_EPEEPHOLE;
    if (a->w_peep && !a->dw_peep)
        return RNNX_ENULL;
    if (!a->x || !a->w_ih || !a->w_hh || !a->cache || !a->dx || !a->dh0 || !a->dw_ih ||
        !a->dw_hh || !a->work)
        return RNNX_ENULL;
    if (d->states == 2 && !a->dc0)
        return RNNX_ENULL;
    return isa_in_use()->kernels[a->dtype]->backward(d, blas, a);
}

int rnnx_activation(int which, int dtype, const void* x, void* y, size_t n)
{
    if ((which != 0 && which != 1) || (dtype != RNNX_FLOAT32 && dtype != RNNX_FLOAT64))
        return RNNX_EINVAL;
    if (n && (!x || !y))
        return RNNX_ENULL;
    return isa_in_use()->kernels[dtype]->activation(which, x, y, n);
}

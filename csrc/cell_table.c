/*
 * cell_table.c: the core's table of cells (layout.h's descriptors) for its
 * callers: what each cell is, and the parameters of one layer and direction.
 * The Python binding builds its lists of cells from these (_core.cell_table).
 */
#include "layout.h"
#include "rnnx.h"

int rnnx_cell_count(void)
{
    return RNNX_N_CELLS;
}

int rnnx_cell_info_of(int cell, rnnx_cell_info* out)
{
    const rnnx_cell_desc* d = rnnx_cell_find(cell);
    if (!d)
        return RNNX_ECELL;
    if (!out)
        return RNNX_ENULL;
    out->cell = d->cell;
    out->name = d->name;
    out->gates = d->gates;
    out->gate_order = d->gate_order;
    out->states = d->states;
    out->state_names[0] = d->state_names[0];
    out->state_names[1] = d->state_names[1];
    out->options = d->options;
    return RNNX_OK;
}

static void param(rnnx_param_shape* out, int* n, const char* name, int64_t rows, int64_t cols)
{
    out[*n].name = name;
    out[*n].rows = rows;
    out[*n].cols = cols;
    (*n)++;
}

int rnnx_cell_params(int cell, int I, int H, int P, int peephole, rnnx_param_shape* out, int* n)
{
    const rnnx_cell_desc* d = rnnx_cell_find(cell);
    if (!d)
        return RNNX_ECELL;
    if (!out || !n)
        return RNNX_ENULL;
    if (I < 0 || H < 1)
        return RNNX_EINVAL;
    if (P != 0 && (!(d->options & RNNX_OPTION_PROJ) || P < 0 || P >= H))
        return RNNX_EPROJ;
    if (peephole && !(d->options & RNNX_OPTION_PEEPHOLE))
        return RNNX_EPEEPHOLE;
    const int64_t G = (int64_t)d->gates * H, S = rnnx_state_width(H, P);
    *n = 0;
    param(out, n, "weight_ih", G, I);
    param(out, n, "weight_hh", G, S);
    param(out, n, "bias_ih", G, 0);
    param(out, n, "bias_hh", G, 0);
    if (P > 0)
        param(out, n, "weight_hr", P, H);
    if (peephole)
        param(out, n, "weight_peephole", 3 * (int64_t)H, 0);
    return RNNX_OK;
}

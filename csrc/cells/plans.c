/*
 * plans.c: every cell's plan by its code (enum rnnx_cell), for the driver.
 * A new cell adds its file's #include in kernels_body.c and its row here.
 */

static const cell_plan* const cell_plans[] = {
    [RNNX_RNN_TANH] = &rnn_tanh_plan,
    [RNNX_RNN_RELU] = &rnn_relu_plan,
    [RNNX_LSTM] = &lstm_plan,
    [RNNX_GRU] = &gru_plan,
    [RNNX_GRU_RESET_BEFORE] = &gru_reset_before_plan,
};

/* The plan of a call: the cell's, or its projection variant's. */
static const cell_plan* plan_of(const rnnx_cell_desc* d, int proj)
{
    const cell_plan* plan = cell_plans[d->cell];
    return proj > 0 ? plan->proj : plan;
}

/* The cell's own parameters for a call. */
static cell_params params_of(const cell_plan* plan, int H, const real* b_hh, const real* w_peep)
{
    cell_params p = {0, NULL, NULL};
    if (plan->setup)
        plan->setup(&p, H, b_hh, w_peep);
    return p;
}

/*
 * projection_plan.h: what the forward driver tells csrc/projection_plan.c
 * (internal to the core; the cost model itself is rnnx_projection_plan in
 * rnnx.h).
 */
#ifndef RNNX_PROJECTION_PLAN_H
#define RNNX_PROJECTION_PLAN_H

/* One forward call computed its input projection as choice (enum rnnx_projection). */
void rnnx_projection_count(int choice);

/* RNNX_PROJECTION's choice (enum rnnx_projection; AUTO where unset). */
int rnnx_projection_forced(void);

#endif /* RNNX_PROJECTION_PLAN_H */

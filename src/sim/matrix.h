/* matrix — the standard scenario set of the simulator benchmarks
 * (bench/sim_matrix.c, bench/eta_accuracy.c) and of `ferry-sim --matrix N`.
 *
 * The set is the cross product RAM {1, 4, 16, 64} GiB x link {128, 1024}
 * MiB/s x page-write rate {0, 10, 30, 50, 70, 90, 110, 150} % of the link x
 * working set {10 %, 50 %} of RAM x profile {steady, bursty, phase change}:
 * 384 scenarios, each with 5 % noise and its own seed. Small working sets
 * come with 25 % zero pages.
 */
#ifndef FERRY_SIM_MATRIX_H
#define FERRY_SIM_MATRIX_H
#include <stddef.h>

#include "sim/run.h"

/* Returns the number of scenarios in the set. */
size_t sim_matrix_count(void);

/* Fills sc with scenario i under policy pol (QEMU defaults plus the policy's
 * defaults, consent granted, max_ms = max(15 min, 4 x lower bound)).
 * Returns 0, or FERR_INVAL when i is out of range (sc untouched). */
int sim_matrix_get(size_t i, enum sim_policy pol, struct sim_scenario *sc)
    __attribute__((warn_unused_result));

#endif

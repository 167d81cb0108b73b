/* plankick — which draining hosts of a plan a migration's end concerns
 * (pure; used by src/coord/plans.c).
 *
 * When a migration ends, its source may start its next guest at once and
 * its destination has a per-destination slot free again. Instead of
 * waiting for the executor's next 1 s tick, ferryd "kicks" the executor
 * with both host names; the kicked pass steps only the draining hosts the
 * names concern: a named host itself, and a host with a planned move to a
 * named host. That keeps a kicked pass cheap on a 1,000-host plan. */
#ifndef FERRY_COORD_PLANKICK_H
#define FERRY_COORD_PLANKICK_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "coord/store.h"

#define PLANKICK_HOSTS_MAX 64 /* names kept between two passes; more: every host concerned */

struct plan_kick {
    char host[PLANKICK_HOSTS_MAX][STORE_NAME_MAX + 1];
    size_t n;      /* names in host[] */
    bool overflow; /* more names arrived than fit: every draining host is concerned */
};

/* Adds host (borrowed; NULL, "" or over STORE_NAME_MAX bytes ignored) to k
 * unless present; past PLANKICK_HOSTS_MAX names k overflows. */
void plankick_add(struct plan_kick *k, const char *host);

/* True when a kick names nothing yet (no pass is due). */
bool plankick_empty(const struct plan_kick *k);

/* Empties k. */
void plankick_clear(struct plan_kick *k);

/* Says whether draining host (borrowed) with planned moves (an object
 * instance → destination host, borrowed, may be NULL) is concerned by k:
 * k overflowed, k names host, or k names one of its moves' destinations. */
bool plankick_wants(const struct plan_kick *k, const char *host, const json_t *moves);

#endif

/* admit — admission of migrations under concurrency caps (the scheduler's
 * "which migrations run now", DESIGN.md "The functional core").
 *
 * Pure: no I/O, no clock, no allocation. Given the migrations in flight
 * (each counts on its source and its destination), the queue in FIFO order
 * (oldest first) and the caps, it says which queued migrations start now.
 *
 * Fairness: the queue is served in order and the counts only grow while it
 * is, so when a slot frees on a host (or in the cluster) the oldest
 * migration waiting for it gets it — no later one overtakes it; when the
 * cluster-wide cap binds, every later one waits too. Later migrations
 * between other hosts are not held up (no head-of-line blocking across
 * unrelated hosts). */
#ifndef FERRY_CORE_ADMIT_H
#define FERRY_CORE_ADMIT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ferr.h"

#define ADMIT_MAX 100000u /* migrations in flight plus queued in one call */

struct admit_caps {
    uint32_t cluster;    /* migrations in flight at once cluster-wide; 0 = no cap */
    uint32_t per_source; /* ... leaving one host; 0 = no cap */
    uint32_t per_dest;   /* ... arriving on one host; 0 = no cap */
};

struct admit_mig {
    const char *source; /* host name, borrowed, not NULL */
    const char *dest;   /* host name, borrowed, not NULL */
};

enum admit_why {
    ADMIT_GO = 0,      /* starts now */
    ADMIT_WAIT_CLUSTER, /* the cluster-wide cap is reached */
    ADMIT_WAIT_SOURCE,  /* its source host has per_source in flight */
    ADMIT_WAIT_DEST,    /* its destination has per_dest in flight */
};

/* Decides for queued[0..nq) (oldest first) given running[0..nr) in flight
 * and caps. why[i] receives ADMIT_GO for each migration that starts now
 * (it then counts for the ones after it) or the reason it waits. Returns
 * 0, or FERR_INVAL (NULL host name) / FERR_TOOBIG (nr + nq > ADMIT_MAX)
 * with why untouched. O((nr + nq) × nq). */
int admit_decide(const struct admit_caps *caps, const struct admit_mig *running, size_t nr,
                 const struct admit_mig *queued, size_t nq, enum admit_why *why)
    __attribute__((warn_unused_result));

/* A short sentence for w ("the source host has its maximum of migrations
 * in flight"), static. */
const char *admit_why_text(enum admit_why w);

#endif

/* admit — see admit.h. */
#include "core/admit.h"

#include <string.h>

/* Migrations among list[0..n) with ok[i] (all when ok is NULL) whose
 * source (role 0) or destination (role 1) is host. */
static uint32_t count_on(const struct admit_mig *list, size_t n, const enum admit_why *ok,
                         const char *host, int role)
{
    uint32_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (ok && ok[i] != ADMIT_GO)
            continue;
        const char *h = role == 0 ? list[i].source : list[i].dest;
        c += strcmp(h, host) == 0;
    }
    return c;
}

int admit_decide(const struct admit_caps *caps, const struct admit_mig *running, size_t nr,
                 const struct admit_mig *queued, size_t nq, enum admit_why *why)
{
    if (nr > ADMIT_MAX || nq > ADMIT_MAX - nr)
        return ferr_set(NULL, FERR_TOOBIG, "migrations", "too many migrations");
    for (size_t i = 0; i < nr; i++)
        if (!running[i].source || !running[i].dest)
            return ferr_set(NULL, FERR_INVAL, "host", "a host name is missing");
    for (size_t i = 0; i < nq; i++)
        if (!queued[i].source || !queued[i].dest)
            return ferr_set(NULL, FERR_INVAL, "host", "a host name is missing");
    size_t in_flight = nr;
    bool cluster_full = false;
    for (size_t i = 0; i < nq; i++) {
        const struct admit_mig *m = &queued[i];
        if (cluster_full || (caps->cluster && in_flight >= caps->cluster)) {
            cluster_full = true; /* the oldest waiting one goes first */
            why[i] = ADMIT_WAIT_CLUSTER;
            continue;
        }
        uint32_t out = count_on(running, nr, NULL, m->source, 0) +
                       count_on(queued, i, why, m->source, 0);
        if (caps->per_source && out >= caps->per_source) {
            why[i] = ADMIT_WAIT_SOURCE;
            continue;
        }
        uint32_t in = count_on(running, nr, NULL, m->dest, 1) + count_on(queued, i, why, m->dest, 1);
        if (caps->per_dest && in >= caps->per_dest) {
            why[i] = ADMIT_WAIT_DEST;
            continue;
        }
        why[i] = ADMIT_GO;
        in_flight++;
    }
    return 0;
}

const char *admit_why_text(enum admit_why w)
{
    switch (w) {
    case ADMIT_GO:
        return "admitted";
    case ADMIT_WAIT_CLUSTER:
        return "the cluster has its maximum of migrations in flight (max_migrations)";
    case ADMIT_WAIT_SOURCE:
        return "the source host has its maximum of outgoing migrations in flight "
               "(max_migrations_per_source)";
    case ADMIT_WAIT_DEST:
        return "the destination host has its maximum of incoming migrations in flight "
               "(max_migrations_per_destination)";
    }
    return "waiting";
}

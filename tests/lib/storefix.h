/* storefix (test helper) — a fresh ferryd store (coord/store.h) in a
 * test's temporary directory, for the unit tests of the store, and a store
 * filled with finished migration records for ferryd's read tests. */
#ifndef FERRY_TESTS_STOREFIX_H
#define FERRY_TESTS_STOREFIX_H
#include "coord/store.h"

/* Opens (creating) the store dir/leaf. Returns it (caller closes with
 * store_close), or NULL after recording a failed check. */
struct store *storefix_open(const char *dir, const char *leaf);

/* The finished records storefix_fill writes: record i (0 <= i < n) has id
 * id_prefix followed by i in three digits, instance vm-NNN, source host-(i % 4) and destination
 * host-((i + 1) % 4), state "failed" when i % failed_every == 0 else
 * "succeeded", user u(i % 5), project p(i % projects), downtime 20 + i ms,
 * and was created at t0_ms + (i / per_second) s, updated 500 ms later. */
struct storefix_recs {
    const char *id_prefix; /* e.g. "mig-x-" */
    int n, projects, failed_every, per_second;
    long long t0_ms;
};

/* Writes the records of r into the store at path (created if absent) in one
 * transaction. Returns 0, or -1 with the reason on stderr. */
int storefix_fill(const char *path, const struct storefix_recs *r);

#endif

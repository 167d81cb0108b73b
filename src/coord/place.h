/* place — ferryd's pure decisions about a migration request: validation of
 * the create and limits bodies, and destination placement by capacity. No
 * I/O, no clock, no store access: callers pass the inventory in. */
#ifndef FERRY_COORD_PLACE_H
#define FERRY_COORD_PLACE_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord/store.h"
#include "util/ferr.h"

#define PLACE_POLICY_MAX 65536 /* bytes of a request's policy object, as JSON */

/* One candidate host with what is already committed on it. */
struct place_host {
    const char *name;      /* borrowed */
    bool up;               /* heartbeating */
    uint64_t ram_mib;      /* capacity, MiB */
    uint32_t vcpus;        /* capacity, vCPUs */
    uint64_t used_ram_mib; /* instances there + migrations heading there, MiB */
    uint32_t used_vcpus;   /* same, vCPUs */
};

/* A validated POST /v1/migrations body. */
struct migreq {
    char instance[STORE_NAME_MAX + 1];
    char destination[STORE_NAME_MAX + 1]; /* "" = place by capacity */
    json_t *policy;                       /* owned object or NULL */
    json_t *limits;                       /* owned object or NULL (agent defaults) */
    uint32_t consent_timeout_s;           /* per-migration consent timeout, s; 0 = policy's */
    char consent_action[16];              /* wait, proceed, abort; "" = policy's */
};

#define MIGREQ_CONSENT_TIMEOUT_MAX_S (7u * 86400u) /* absolute cap; config bounds it lower */

/* Parses and validates a create body (borrowed): instance, destination?,
 * policy?, limits?, consent? {timeout_s (1 … MIGREQ_CONSENT_TIMEOUT_MAX_S),
 * timeout_action (wait, proceed, abort)} — the consent override; either key
 * may be left out (the configured default applies to it). Unknown keys,
 * wrong types, bad names, out-of-range limits, an unknown policy kind fail
 * with
 * FERR_INVAL (FERR_TOOBIG for an oversize policy) and e->field naming the
 * key ("limits.downtime_ms"); *out is then empty. On 0 the caller releases
 * *out with migreq_free. */
int migreq_parse(const json_t *body, struct migreq *out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Releases what r holds; r may be zeroed. */
void migreq_free(struct migreq *r);

/* Validates a PATCH limits body {max_bandwidth_bps?, downtime_max_ms?}
 * (at least one key). On 0, *out is a new object holding exactly the keys
 * given (caller decrefs). */
int migreq_limits_patch(const json_t *body, json_t **out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Fills the used_* counters of hosts[0..nh) from the inventory: every
 * instance counts on its host, and every active migration (non-terminal
 * state) counts its instance on its destination too. Instances are looked
 * up by name in inst[0..ni). */
void place_account(struct place_host *hosts, size_t nh, const struct store_instance *inst,
                   size_t ni, const struct store_migration *migs, size_t nm);

/* Says whether hosts[i] can take an instance of need_ram_mib/need_vcpus
 * coming from source: up, not the source, free capacity enough. On false
 * *why (may be NULL) says why, statically. */
bool place_fits(const struct place_host *h, const char *source, uint64_t need_ram_mib,
                uint32_t need_vcpus, const char **why);

/* Chooses a destination among hosts[0..n) for an instance of need_ram_mib
 * and need_vcpus on source: among the hosts that fit (place_fits), the one
 * with the most free RAM after placement, ties by name. Returns 0 and
 * *chosen (an index), or FERR_STATE when no host fits (field
 * "destination"). Never chooses the source or a down host, never exceeds
 * a capacity. */
int place_choose(const struct place_host *hosts, size_t n, const char *source,
                 uint64_t need_ram_mib, uint32_t need_vcpus, size_t *chosen, struct ferr *e)
    __attribute__((warn_unused_result));

/* Returns true for the state names of migstate that are terminal
 * (succeeded, failed, cancelled). */
bool place_state_terminal(const char *state);

#endif

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
#define PLACE_LABELS_MAX 16    /* labels one host may carry */
#define PLACE_LABEL_KEY_MAX 63 /* bytes of a label key */
#define PLACE_LABEL_VAL_MAX 63 /* bytes of a label value */
#define PLACE_VCPU_OVERCOMMIT_MAX 16.0 /* largest vcpu_overcommit a request may ask */
#define PLACE_RAM_OVERCOMMIT_MAX 4.0   /* largest ram_overcommit a request may ask */

/* One candidate host with what is already committed on it. */
struct place_host {
    const char *name;      /* borrowed */
    bool up;               /* heartbeating */
    uint64_t ram_mib;      /* capacity, MiB */
    uint32_t vcpus;        /* capacity, vCPUs */
    uint64_t used_ram_mib; /* instances there + migrations heading there, MiB */
    uint32_t used_vcpus;   /* same, vCPUs */
    bool cordoned;         /* cordoned by an operator, or drained/maintained by a
                              plan: never a destination */
};

/* A validated POST /v1/migrations body. */
struct migreq {
    char instance[STORE_NAME_MAX + 1];
    char destination[STORE_NAME_MAX + 1]; /* "" = place by capacity */
    json_t *policy;                       /* owned object or NULL */
    json_t *limits;                       /* owned object or NULL (agent defaults) */
    uint32_t consent_timeout_s;           /* per-migration consent timeout, s; 0 = policy's */
    char consent_action[16];              /* wait, proceed, abort; "" = policy's */
    double vcpu_overcommit;               /* vCPUs per physical CPU the destination may
                                             hold; 0 = 1.0 (no overcommit) */
    double ram_overcommit;                /* guest MiB per host MiB; 0 = 1.0 */
};

#define MIGREQ_CONSENT_TIMEOUT_MAX_S (7u * 86400u) /* absolute cap; config bounds it lower */

/* Parses and validates a create body (borrowed): instance, destination?,
 * policy?, limits?, vcpu_overcommit?, ram_overcommit? (ratios in
 * (0, PLACE_*_OVERCOMMIT_MAX]: a maintenance plan passes its own),
 * consent? {timeout_s (1 … MIGREQ_CONSENT_TIMEOUT_MAX_S),
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
 * up by name in inst[0..ni). O((nh + ni + nm) log): sorted name indexes. */
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

/* Validates a labels object {"key": "value", ...} (borrowed; NULL means
 * none) and writes its canonical text "k=v,k=v" (sorted by key) into
 * out[n]. At most PLACE_LABELS_MAX labels; a key is 1..63 characters of
 * [A-Za-z0-9_./-] starting with a letter or digit, a value 0..63 of
 * [A-Za-z0-9_.-]. Anything else is FERR_INVAL (FERR_TOOBIG for too many)
 * with e->field "labels" or "labels.KEY"; out is then "". */
int place_labels_parse(const json_t *obj, char *out, size_t n, struct ferr *e)
    __attribute__((warn_unused_result));

/* Returns the labels text (canonical, as place_labels_parse writes it) as a
 * new JSON object (caller decrefs). */
json_t *place_labels_json(const char *text);

/* Parses a selector "key=value" (the value may be empty) into key and
 * value (buffers of PLACE_LABEL_KEY_MAX + 1 and PLACE_LABEL_VAL_MAX + 1),
 * validated as place_labels_parse does; FERR_INVAL with e->field field. */
int place_selector_parse(const char *sel, const char *field, char *key, char *value,
                         struct ferr *e) __attribute__((warn_unused_result));

/* Says whether the canonical labels text carries key with value. */
bool place_labels_match(const char *labels, const char *key, const char *value);

/* Returns true for the state names of migstate that are terminal
 * (succeeded, failed, cancelled). */
bool place_state_terminal(const char *state);

#endif

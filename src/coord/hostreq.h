/* hostreq — validation of the agents' inventory requests to ferryd:
 * POST /v1/hosts/register and POST /v1/hosts/NAME/heartbeat. Pure: no
 * store, no clock; every field is checked against the store's caps so
 * that whatever is accepted can be stored as is. A libFuzzer target
 * (tests/fuzz/fuzz_host_register.c) drives both functions. */
#ifndef FERRY_COORD_HOSTREQ_H
#define FERRY_COORD_HOSTREQ_H
#include <jansson.h>
#include <stddef.h>

#include "coord/store.h"
#include "util/ferr.h"

#define HOSTREQ_MAX_INSTANCES 4096         /* instances one registration may list */
#define HOSTREQ_RAM_MIB_MAX (1ull << 32)   /* MiB: host RAM and instance memory */
#define HOSTREQ_VCPUS_MAX 65536u           /* vCPUs: host capacity, instance size */

/* Parses a registration body (borrowed JSON object) {name, agent_url,
 * ram_mib, vcpus, labels?: {KEY: VALUE}, instances?: [{name, project_id,
 * memory_mib, vcpus?}]}. On 0, *h holds name, url, ram_mib, vcpus and
 * labels (canonical text, place_labels_parse; state and times are left to
 * the caller) and *inst an array of *n instances (caller frees with
 * free(); never NULL on success), each name valid and listed once, each
 * project_id 1..64 bytes without control characters, vcpus 1 when absent.
 * On failure returns FERR_INVAL or FERR_TOOBIG with e naming the field
 * ("instances[3].memory_mib"), *inst is NULL, *n is 0 and *h is
 * unspecified. Unknown keys are refused. */
int hostreq_register_parse(const json_t *body, struct store_host *h, struct store_instance **inst,
                           size_t *n, struct ferr *e) __attribute__((warn_unused_result));

/* Checks a heartbeat: name (the path segment, borrowed) must be a valid
 * host name and body (borrowed, may be NULL for an empty body) an object
 * without keys. Returns 0, or FERR_INVAL with e naming "name" or the
 * unknown key. */
int hostreq_heartbeat_check(const char *name, const json_t *body, struct ferr *e)
    __attribute__((warn_unused_result));

#endif

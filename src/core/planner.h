/* planner — the rolling-maintenance planner (issue 5, item 2).
 *
 * Pure and deterministic: no I/O, no clock, no globals. The same input gives
 * the same plan byte for byte. Given a fleet (hosts, instances) and options,
 * it
 *   1. groups the target hosts into "down-groups" of at most max_down hosts
 *      that may be drained and maintained together: a greedy colouring of the
 *      host conflict graph, where two hosts conflict when they hold members
 *      of one anti-affinity group (Ganeti hroller's idea);
 *   2. orders the groups (lightest first, so that few guests move twice);
 *   3. places every instance of each group on a destination outside the
 *      group, first-fit-decreasing by RAM, preferring hosts already done,
 *      then hosts that are never maintained, then hosts still to do (whose
 *      guests will then move again), never exceeding RAM (minus a reserve) or
 *      vCPUs x overcommit on any host at any step;
 *   4. reports, before anything starts, every instance that cannot be placed
 *      with its reason;
 *   5. estimates the makespan by list-scheduling each group's migrations
 *      under the per-source, per-destination and cluster-wide concurrency
 *      limits, beside a lower bound (total bytes / aggregate bandwidth).
 *
 * docs/PLANNER.md states the model, the guarantees and the figures.
 */
#ifndef FERRY_CORE_PLANNER_H
#define FERRY_CORE_PLANNER_H
#include <stddef.h>
#include <stdint.h>

#include "util/ferr.h"

#define PLAN_NONE UINT32_MAX        /* "no group" / "no host" in uint32 fields */
#define PLAN_HOSTS_MAX 1000000u     /* hard cap on hosts in one plan */
#define PLAN_INSTANCES_MAX 20000000u /* hard cap on instances in one plan */
#define PLAN_BW_DEFAULT_BPS 125000000ull /* 1 Gbit/s when bw is 0 */

struct plan_host {
    const char *name;  /* borrowed, may be NULL; used only in messages */
    uint64_t ram_mib;  /* physical RAM, MiB */
    uint32_t vcpus;    /* physical CPUs (threads) */
    uint64_t labels;   /* bit set of labels (e.g. bit 0 = "ssd") it carries */
    int target;        /* 1: this host is to be drained and maintained */
    int up;            /* 1: running; a host that is not up is never a
                          destination and its guests cannot be moved */
    int cordoned;      /* 1: never a destination (an operator's cordon);
                          its guests may still be moved off it */
};

struct plan_instance {
    uint32_t host;          /* index into the host array where it runs now */
    uint64_t ram_mib;       /* MiB */
    uint32_t vcpus;         /* vCPUs */
    uint32_t project;       /* owner; not used by placement, for reports */
    uint32_t aa_group;      /* anti-affinity group id; 0 = none */
    uint64_t need_labels;   /* the destination must carry all these labels */
    uint64_t migrate_bytes; /* bytes one migration sends; 0 -> ram_mib MiB */
    uint64_t migrate_ms;    /* given migration time, ms; 0 -> migrate_bytes /
                               opts.bw_per_migration_bps */
};

enum plan_strategy {
    PLAN_STRATEGY_BALANCED = 0, /* hosts coloured heaviest first so each group
                                   holds hosts of similar load, groups run
                                   lightest first, placement prefers done
                                   hosts and takes the emptiest one */
    PLAN_STRATEGY_NAIVE,        /* baseline: hosts coloured in index order,
                                   groups in colour order, placement first-fit
                                   in host index order with no preference
                                   (what a "migrate everything off X" loop
                                   does); same safety guarantees */
};

struct plan_opts {
    uint32_t max_down;             /* hosts down or draining at once, >= 1 */
    double vcpu_overcommit;        /* vCPUs per physical CPU; 0 -> 1.0 */
    double ram_overcommit;         /* guest RAM per MiB of host RAM (after
                                      the reserve); 0 -> 1.0 */
    uint64_t ram_reserve_mib;      /* MiB per host kept free for the host */
    uint32_t conc_per_source;      /* migrations at once out of one host;
                                      0 -> 1 */
    uint32_t conc_per_dest;        /* migrations at once into one host;
                                      0 -> 1 */
    uint32_t conc_cluster;         /* migrations at once in the cluster;
                                      0 -> no cluster-wide limit */
    uint64_t bw_per_migration_bps; /* bytes/s one migration gets;
                                      0 -> PLAN_BW_DEFAULT_BPS */
    uint64_t host_action_ms;       /* per group: maintenance action, reboot
                                      and health check, ms (added to
                                      total_ms, not to makespan_ms) */
    enum plan_strategy strategy;
};

struct plan_input {
    const struct plan_host *hosts;         /* borrowed, n_hosts entries */
    size_t n_hosts;
    const struct plan_instance *instances; /* borrowed, n_instances entries */
    size_t n_instances;
    struct plan_opts opts;
};

enum plan_reason {
    PLAN_R_NONE = 0,
    PLAN_R_SOURCE_DOWN,   /* its host is not up: it cannot be live-migrated */
    PLAN_R_LABELS,        /* no other up host carries the labels it needs */
    PLAN_R_TOO_BIG,       /* no host with those labels has enough RAM or
                             vCPUs even when empty (after the reserve) */
    PLAN_R_NO_ROOM,       /* hosts that could hold it exist, but none has
                             room while its group is down */
    PLAN_R_ANTI_AFFINITY, /* every host with room holds a member of its
                             anti-affinity group, or would put two members
                             into one later down-group */
    PLAN_R__COUNT
};

/* One live migration of the plan. Times are estimates from the plan start
 * (the first group's first migration), ms. */
struct plan_move {
    uint32_t inst;     /* index into the instance array */
    uint32_t src;      /* host index it leaves */
    uint32_t dst;      /* host index it goes to */
    uint32_t group;    /* position of the down-group in the plan order */
    uint64_t start_ms; /* estimated start, ms from plan start */
    uint64_t end_ms;   /* estimated end, ms from plan start */
};

struct plan_unplaced {
    uint32_t inst;           /* index into the instance array */
    uint32_t host;           /* host it stays on */
    uint32_t group;          /* group whose drain it blocks */
    enum plan_reason reason;
};

/* A computed plan. Every array is owned by the plan and released by
 * plan_free(); read the fields directly. */
struct plan {
    size_t n_groups;
    uint32_t *group_first;  /* n_groups + 1 offsets into group_hosts */
    uint32_t *group_hosts;  /* target host indices, group by group in plan
                               order, ascending host index within a group */
    uint64_t *group_ms;     /* per group: estimated migration time, ms */
    uint32_t *host_group;   /* per host: its group, PLAN_NONE if not target */
    uint8_t *host_blocked;  /* per host: 1 when an unplaced instance stays on
                               it, so it must not be taken down; a blocked
                               host is never a destination after its group */
    struct plan_move *moves; /* n_moves, in group order, then by source host
                                in group order, then in placement order */
    size_t n_moves;
    uint32_t *host_move_first; /* per host: index of its first drain move */
    uint32_t *host_move_count; /* per host: number of its drain moves */
    struct plan_unplaced *unplaced; /* n_unplaced, in the order found */
    size_t n_unplaced;
    size_t n_moved_twice;    /* instances that move more than once */
    uint64_t makespan_ms;    /* estimated sum of group migration times, ms */
    uint64_t lower_bound_ms; /* sum of first-move times / max concurrency, ms */
    uint64_t total_ms;       /* makespan_ms + n_groups * host_action_ms */
};

/* Computes the plan for in (borrowed; read only during the call) into *out,
 * which the caller provides uninitialised. Returns 0 and fills *out, which
 * the caller then releases with plan_free(). Returns FERR_INVAL when an
 * input field is out of range (a host index that does not exist, max_down
 * 0, a negative or non-finite vCPU overcommit or one above 1000, a RAM
 * overcommit that is negative, non-finite or above 100, a host with 0 RAM or 0 vCPUs, an
 * instance with 0 RAM), FERR_TOOBIG over PLAN_HOSTS_MAX / PLAN_INSTANCES_MAX;
 * e (may be NULL) names the field, and *out holds nothing to free.
 * Instances that cannot be placed are not an error: they are in
 * out->unplaced. */
int plan_compute(const struct plan_input *in, struct plan *out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Releases everything plan_compute() allocated in p; p is zeroed. Safe on a
 * zeroed plan. */
void plan_free(struct plan *p);

/* Returns the stable name of r ("source_down", "labels", "too_big",
 * "no_room", "anti_affinity", "none"). */
const char *plan_reason_name(enum plan_reason r);

#endif

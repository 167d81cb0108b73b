/* control — the convergence controller of one outgoing migration, in the
 * agent: an estimator (core/estimator.h) and a controller (core/conv.h) fed
 * with every query-migrate sample, and the controller's actions carried out
 * through QMP on the source guest.
 *
 * The policy comes from the migration request ("policy" object, parsed by
 * ctl_policy_from_json); kind "none" (the default) keeps today's behaviour:
 * the estimate is still computed and reported, nothing is acted on.
 *
 * What each action does (QEMU 7.2):
 *   SET_DOWNTIME    migrate-set-parameters {"downtime-limit"}
 *   SET_BANDWIDTH   migrate-set-parameters {"max-bandwidth"}
 *   SET_THROTTLE    migrate-set-parameters cpu-throttle-initial/-increment
 *                   and max-cpu-throttle. A policy that may throttle gets
 *                   auto-converge at start, dormant (capped at 1 %, see
 *                   migration.c); the action lifts the cap so that QEMU's
 *                   next trigger reaches the controller's value. Without
 *                   auto-converge from the start, migrate-set-capabilities
 *                   is tried first (QEMU refuses capability changes during
 *                   a migration: the refusal is recorded as an event)
 *   START_POSTCOPY  migrate-start-postcopy when postcopy-ram was
 *                   negotiated on both sides (ctl_set_postcopy); otherwise
 *                   recorded as an event with the reason
 *   PAUSE_GUEST     stop
 *   ABORT           migrate_cancel; the reason becomes the migration's error
 *   REQUEST_CONSENT / REPORT_STALL: recorded as events; pending consent is
 *                   reported and answered through ctl_consent (the API's
 *                   POST /v1/migrations/ID/consent)
 */
#ifndef FERRY_AGENT_CONTROL_H
#define FERRY_AGENT_CONTROL_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/impact.h"
#include "core/conv.h"
#include "core/estimator.h"
#include "util/ferr.h"

#define CTL_EVENTS_MAX 256 /* events kept per migration; later ones counted */

struct migration;

/* A parsed "policy" object. */
struct ctl_policy {
    bool enabled;           /* false: kind "none" */
    bool permit_post_copy;  /* the request allows post-copy */
    struct conv_policy conv; /* valid when enabled */
    uint64_t baseline_s;    /* impact baseline: this many seconds before
                               the start; 0 → 10 */
};

/* One thing the controller did or reported. */
struct ctl_event {
    uint64_t t_ms;               /* ms since migration start */
    enum conv_act_kind kind;     /* the controller action */
    enum conv_step step;         /* REQUEST_CONSENT; else the action's step */
    enum stall_reason stall;     /* REPORT_STALL */
    uint64_t value;              /* SET_DOWNTIME ms, SET_BANDWIDTH bytes/s,
                                    SET_THROTTLE initial %; else 0 */
    char note[CONV_REASON_MAX];  /* reason, or why it could not be done */
    int answer;                  /* consent answer event: 1 granted, 2 refused;
                                    0 for controller actions */
    int budget;                  /* REPORT_BUDGET: enum conv_budget_verdict */
};

/* The guest's disk during one migration, against its baseline (impact.h),
 * and the guest io throttle the budget may set. */
struct ctl_impact {
    bool started;                /* baseline taken (ctl_impact_start) */
    uint64_t start_seq;          /* impact intervals after this are "during" */
    uint64_t last_seq;           /* newest interval summed into during */
    struct impact_agg base;      /* the baseline window */
    double ref_low_bps;          /* the 25th percentile of the bytes/s of the
                                    baseline's IMPACT_WINDOW-interval windows
                                    (the guest's own dips); < 0 unknown */
    double ref_p99_us;           /* the budget's baseline p99: the 75th
                                    percentile of the p99s of the baseline's
                                    IMPACT_WINDOW-interval windows (judged
                                    like with like: a short window's p99 is
                                    noisier than the whole baseline's), us;
                                    < 0 unknown */
    struct impact_agg during;    /* every interval since the start */
    struct impact_fig now;       /* the newest IMPACT_WINDOW intervals */
    bool have_now;
    double throttle_pct_ms;      /* sum of CPU throttle % x ms over samples */
    uint64_t last_t_ms;          /* sample time of the last sum, ms */
    /* guest io throttle (budget step io_throttle) */
    bool io_on;                  /* block_set_io_throttle sent (cap in force) */
    bool io_lifted;              /* restored after the migration */
    uint64_t io_bps;             /* write cap, bytes/s */
    unsigned io_n;               /* devices whose previous limits are known */
    char io_devs[IMPACT_DEVS][IMPACT_QDEV_MAX]; /* their QOM paths */
    int64_t io_prev[IMPACT_DEVS][6]; /* bps, bps_rd, bps_wr, iops, iops_rd,
                                        iops_wr before the cap */
};

/* Per-migration controller state; owned by struct migration. */
struct mig_control {
    struct ctl_policy pol;       /* copy of the request's policy */
    struct est est;              /* estimator, fed with every sample */
    struct conv conv;            /* controller; unused when !pol.enabled */
    struct est_out out;          /* estimate after the newest sample */
    bool have_out;               /* out is meaningful */
    bool aborted;                /* the controller sent migrate_cancel */
    struct ctl_event ev[CTL_EVENTS_MAX]; /* oldest first */
    size_t n_ev;                 /* entries in ev */
    uint64_t ev_dropped;         /* events not kept (ev full) */
    uint32_t throttle_target;    /* throttle % QEMU's next trigger reaches, 0 none */
    uint32_t throttle_final_inc; /* increment % restored once it is reached */
    uint32_t throttle_final_max; /* max-cpu-throttle % restored then */
    struct ctl_impact imp;       /* guest impact and io throttle */
};

/* Parses obj (borrowed; NULL or absent means kind "none") into *out.
 * Accepted: {"kind": "none"|"nova"|"schedule"|"adaptive", ...}; the keys
 * each kind accepts are listed in docs/CONTROLLER.md ("Policy in a
 * migration request"). Defaults are conv_policy_default(kind); ram_mib is
 * the guest's RAM (nova's data_gb). Returns 0, or FERR_INVAL naming the
 * offending field (unknown keys, wrong types, values conv_init rejects);
 * on error *out is zeroed. */
int ctl_policy_from_json(const json_t *obj, uint64_t ram_mib, struct ctl_policy *out,
                         struct ferr *e) __attribute__((warn_unused_result));

/* Initialises c for a migration under pol (copied). Returns 0, or
 * FERR_INVAL from conv_init (already checked by ctl_policy_from_json). */
int ctl_init(struct mig_control *c, const struct ctl_policy *pol, struct ferr *e)
    __attribute__((warn_unused_result));

/* Returns true when pol may throttle the guest's CPUs (adaptive with the
 * throttle rung in its ladder): the migration then enables auto-converge
 * from the start, dormant. */
bool ctl_may_throttle(const struct ctl_policy *pol);

/* Tells the controller whether post-copy is possible (postcopy-ram set on
 * both sides): adaptive's post-copy rung and Nova's force_complete via
 * post-copy depend on it (Nova pauses instead, as Nova does). Must be
 * called before the first sample; re-initialises the controller. Returns 0
 * or FERR_INVAL from conv_init (not expected: the policy was checked). */
int ctl_set_postcopy(struct mig_control *c, bool available, struct ferr *e)
    __attribute__((warn_unused_result));

/* Answers the pending consent request for step (a conv_step_name) of m.
 * Returns 0 and records the answer as an event with its time; FERR_INVAL
 * (field "step") for an unknown step; FERR_STATE when the migration has no
 * policy or no request for that step is pending. */
int ctl_consent(struct migration *m, const char *step, bool granted, struct ferr *e)
    __attribute__((warn_unused_result));

/* Forces m to complete (POST /v1/migrations/ID/force-complete): post-copy
 * (migrate-start-postcopy) when it was negotiated and the policy permits
 * it, else pause-to-complete (stop). *how is set to "postcopy" or
 * "pause". FERR_STATE (field "state") unless m is running with its memory
 * migrating and before switchover; FERR_STATE (field "consent") when the
 * policy marks the chosen step as needing consent and it has not been
 * granted — nothing is done then. The command goes out asynchronously; a
 * refusal by QEMU becomes an event. */
int ctl_force_complete(struct migration *m, const char **how, struct ferr *e)
    __attribute__((warn_unused_result));

/* Changes the limits of running m (PATCH /v1/migrations/ID/limits): with
 * has_bw, max-bandwidth (0 = no cap) and, under adaptive, the bandwidth
 * rung's cap; with has_dt, the downtime maximum — adaptive keeps it as its
 * bound (the current limit is lowered to it when above), other policies
 * get it as the downtime limit now. FERR_INVAL names a value out of range
 * (bandwidth 0 or >= 65536, downtime 1..60000 ms); FERR_STATE when m is not
 * running (downtime also refused in post-copy). */
int ctl_set_limits(struct migration *m, bool has_bw, uint64_t bw_bps, bool has_dt,
                   uint64_t dt_ms, struct ferr *e) __attribute__((warn_unused_result));

/* Feeds sample s (borrowed) of m to the estimator and, when a policy is
 * enabled and m is running, to the controller; carries out its actions on
 * m->inst through QMP. m->ctl must be set. Never fails: problems become
 * events. */
void ctl_on_sample(struct migration *m, const struct mig_sample *s);

/* Takes m's impact baseline: the guest's disk intervals of the last
 * baseline_s seconds (fewer when the guest has not run that long; none
 * when it has no disk). Call once, at the start. */
void ctl_impact_start(struct migration *m);

/* Sums the guest's new disk intervals into m's "during" figures, hands the
 * newest window to the budget and writes it into s (guest_disk_*). Call
 * for every sample before it is kept and fed (ctl_on_sample). */
void ctl_impact_sample(struct migration *m, struct mig_sample *s);

/* Restores the source guest after m ended: lifts the io throttle the
 * budget set (the previous limits of every capped device come back).
 * Idempotent; nothing to do when no cap was set or the guest is gone. */
void ctl_restore_guest(struct migration *m);

/* Adds "policy", "estimate", "stalls", "consent_pending", "events",
 * "impact" (baseline, during, now, retained %, p99 ratio, CPU throttle
 * time, io throttle) and, with a budget, "budget" to the JSON object o
 * (borrowed) for c (NULL: nothing added). */
void ctl_to_json(const struct mig_control *c, json_t *o);

#endif

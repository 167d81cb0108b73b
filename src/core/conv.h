/* conv — the convergence controller of one migration.
 *
 * Once per tick the caller passes the newest sample, the estimator's output
 * and the time; conv_tick() returns the actions to carry out, in order. It
 * never does I/O and holds no pointers into caller memory.
 *
 * Policies (struct conv_policy.kind):
 *   CONV_NOVA      OpenStack Nova's libvirt driver, exactly: the
 *                  live_migration_downtime/_steps/_delay schedule and the
 *                  completion timeout with action abort or force_complete.
 *   CONV_SCHEDULE  oVirt-style: "after memory iteration N: action".
 *   CONV_ADAPTIVE  Ferry's own: smallest downtime limit that finishes by a
 *                  deadline, never above the maximum; escalation ladder in
 *                  the operator's order; abort when exhausted or late.
 *
 * Consent (all policies): policy.consent_required[step] marks a step as
 * intrusive-and-gated. Before emitting a gated step the controller emits
 * REQUEST_CONSENT(step) once and then waits; conv_consent() grants or
 * refuses. A refused step is skipped (adaptive: next ladder rung; nova /
 * schedule: the action is dropped). A gated step's action is never emitted
 * before consent was granted. Consent may be given before it is asked.
 *
 * Stall detection (stall.h) runs in every policy; REPORT_STALL is emitted
 * once per stall episode.
 */
#ifndef FERRY_CORE_CONV_H
#define FERRY_CORE_CONV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/estimator.h"
#include "core/sample.h"
#include "core/stall.h"
#include "util/ferr.h"

#define CONV_ACTIONS_MAX 12   /* conv_tick needs room for this many */
#define CONV_REASON_MAX 160   /* bytes of a reason string incl. NUL */
#define CONV_DISKS_MAX 16     /* block-migrated disks (nova data_gb) */
#define CONV_SCHED_MAX 32     /* entries of a schedule policy */

enum conv_kind { CONV_NOVA = 0, CONV_SCHEDULE, CONV_ADAPTIVE, CONV__KIND_COUNT };

/* Escalation steps; also the unit of consent. */
enum conv_step {
    CONV_STEP_BANDWIDTH = 0, /* raise max-bandwidth up to its cap */
    CONV_STEP_THROTTLE,      /* auto-converge / CPU throttle */
    CONV_STEP_POSTCOPY,      /* switch to post-copy */
    CONV_STEP_PAUSE,         /* pause the guest to complete */
    CONV_STEP_IO_THROTTLE,   /* cap the guest's disk writes (block_set_io_throttle);
                                offered by the impact budget on a disk conflict,
                                never part of the memory ladder */
    CONV_STEP__COUNT
};

enum conv_act_kind {
    CONV_ACT_SET_DOWNTIME = 0, /* downtime_ms */
    CONV_ACT_SET_BANDWIDTH,    /* bw_bps */
    CONV_ACT_SET_THROTTLE,     /* throttle_* and auto_converge */
    CONV_ACT_START_POSTCOPY,   /* migrate-start-postcopy */
    CONV_ACT_PAUSE_GUEST,      /* stop the source guest; pre-copy completes */
    CONV_ACT_ABORT,            /* migrate_cancel; reason */
    CONV_ACT_REQUEST_CONSENT,  /* step; reason says why */
    CONV_ACT_REPORT_STALL,     /* stall, reason */
    CONV_ACT_SET_MIRROR_SPEED, /* bw_bps: block-job-set-speed on every mirror */
    CONV_ACT_SET_IO_THROTTLE,  /* io_bps: the guest's disk write cap, bytes/s;
                                  0 lifts it */
    CONV_ACT_REPORT_BUDGET,    /* budget verdict changed; budget, reason */
    CONV_ACT__COUNT
};

struct conv_action {
    enum conv_act_kind kind;
    uint64_t downtime_ms;          /* SET_DOWNTIME: new limit, ms */
    uint64_t bw_bps;               /* SET_BANDWIDTH: bytes/s */
    uint32_t throttle_initial_pct; /* SET_THROTTLE: cpu-throttle-initial */
    uint32_t throttle_increment_pct; /* SET_THROTTLE: cpu-throttle-increment */
    uint32_t throttle_max_pct;     /* SET_THROTTLE: max-cpu-throttle */
    bool auto_converge;            /* SET_THROTTLE: enable the capability */
    enum conv_step step;           /* REQUEST_CONSENT (and the step an
                                      action belongs to, when any) */
    enum stall_reason stall;       /* REPORT_STALL */
    uint64_t io_bps;               /* SET_IO_THROTTLE: write cap, bytes/s */
    int budget;                    /* REPORT_BUDGET: enum conv_budget_verdict */
    char reason[CONV_REASON_MAX];  /* ABORT, REQUEST_CONSENT, REPORT_STALL:
                                      one sentence for people */
};

enum conv_timeout_action { CONV_TIMEOUT_ABORT = 0, CONV_TIMEOUT_FORCE_COMPLETE };

/* Nova [libvirt] options, same names and units as nova.conf. */
struct conv_nova {
    uint32_t downtime_ms;           /* live_migration_downtime, >= 100 */
    uint32_t downtime_steps;        /* live_migration_downtime_steps, >= 3 */
    uint32_t downtime_delay_s;      /* live_migration_downtime_delay, s per
                                       GiB of data, >= 10 */
    uint32_t completion_timeout_s;  /* live_migration_completion_timeout, s
                                       per GiB; 0 disables */
    enum conv_timeout_action timeout_action; /* live_migration_timeout_action */
    bool permit_post_copy;          /* live_migration_permit_post_copy */
    uint64_t ram_mib;               /* flavor memory_mb (MiB) */
    uint64_t disk_bytes[CONV_DISKS_MAX]; /* st_size of each block-migrated
                                            disk file, bytes */
    size_t n_disks;                 /* 0 with shared storage */
};

enum conv_sched_act {
    CONV_SCHED_SET_DOWNTIME = 0, /* downtime_ms */
    CONV_SCHED_POSTCOPY,
    CONV_SCHED_PAUSE,
    CONV_SCHED_ABORT
};

struct conv_sched_entry {
    uint64_t after_iteration; /* fires once dirty_sync_count > this; 0 fires
                                 at the first tick ("init") */
    enum conv_sched_act act;
    uint64_t downtime_ms;     /* SET_DOWNTIME only, ms */
};

struct conv_schedule {
    struct conv_sched_entry e[CONV_SCHED_MAX]; /* sorted by after_iteration */
    size_t n;
};

struct conv_adaptive {
    uint64_t deadline_ms;        /* finish by this, ms since migration start */
    uint64_t downtime_start_ms;  /* first limit set, ms (e.g. 100) */
    uint64_t downtime_max_ms;    /* operator's maximum, ms; never exceeded */
    uint64_t bw_cap_bps;         /* BANDWIDTH step raises max-bandwidth to
                                    this, bytes/s */
    uint32_t throttle_initial_pct;   /* THROTTLE step parameters */
    uint32_t throttle_increment_pct;
    uint32_t throttle_max_pct;       /* 1..99 */
    bool postcopy_available;     /* postcopy-ram negotiated on both sides;
                                    false → POSTCOPY rung skipped */
    enum conv_step ladder[CONV_STEP__COUNT]; /* operator's order */
    size_t n_ladder;             /* rungs used, 0..CONV_STEP__COUNT */
    uint64_t settle_ms;          /* after a rung acts, wait at least this
                                    (ms) before the next one; 0 → 10000 */
    uint32_t settle_periods;     /* ...and this many sync periods; 0 → 2 */
    uint64_t settle_max_ms;      /* a rung that has not made the migration
                                    finish in time after this long (ms) is
                                    left for the next one, settled or not;
                                    also at most a quarter of the time left
                                    to the deadline; 0 → 60000 */
    uint64_t headroom_ms;        /* the limit set stays this far (ms) below
                                    downtime_max_ms: QEMU's limit counts RAM
                                    only, the device state comes on top
                                    (~20 ms); default 50 */
};

/* Guest-impact budget (adaptive only; docs/CONTROLLER.md "Impact budget").
 * The controller steers the copy rate — mirror speed and/or max-bandwidth —
 * so that the guest's disk, measured by the agent against a baseline taken
 * before the migration (struct conv_impact), stays inside the budget; it
 * probes upwards while the guest is inside with room to spare or quiet,
 * and backs off multiplicatively on a violation. When the budget and
 * convergence conflict it reports CONV_BUDGET_CONFLICT and offers
 * CONV_STEP_IO_THROTTLE (consent-gated by default); refused, it waives the
 * budget (finishes at full rate, saying so) or aborts. */
enum conv_steer {
    CONV_STEER_MIRROR = 1,    /* block-job-set-speed of the disk mirrors */
    CONV_STEER_BANDWIDTH = 2, /* migrate-set-parameters max-bandwidth */
};

struct conv_budget {
    bool enabled;
    uint32_t min_throughput_pct; /* guest disk bytes/s >= this % of the
                                    baseline; 0 = not judged */
    double max_p99_ratio;        /* guest p99 latency <= this x the
                                    baseline p99 (> 1); 0 = not judged */
    uint64_t max_p99_us;         /* guest p99 latency <= this, us; 0 = not
                                    judged */
    uint64_t rate_min_bps;       /* copy rate floor, bytes/s (> 0) */
    uint64_t rate_max_bps;       /* copy rate with all room, bytes/s */
    uint64_t rate_start_bps;     /* first copy rate, bytes/s */
    unsigned steer;              /* CONV_STEER_* bits, not 0 */
    bool io_throttle;            /* offer IO_THROTTLE on a disk conflict */
    bool abort_on_conflict;      /* no io throttle (refused or not
                                    offered): abort instead of waiving */
    uint64_t conflict_ms;        /* a conflict must last this long (ms)
                                    before it is reported; 0 → 5000 */
    uint32_t min_ops;            /* fewer guest requests in a measurement
                                    window: the guest is quiet; 0 → 5 */
    bool yield_to_ladder;        /* the BANDWIDTH rung may raise
                                    max-bandwidth past the budget without
                                    consent (still reported); false: that
                                    rung needs consent whenever it would */
};

/* One measurement of the guest's disk (the agent's impact sampler: all the
 * guest's block devices, any backend), compared with its baseline. */
struct conv_impact {
    uint64_t seq;            /* increases with every new measurement; the
                                budget acts once per seq */
    bool have_baseline;      /* the base_* fields are meaningful */
    double base_bps;         /* baseline read+write bytes/s */
    double base_iops;        /* baseline requests/s */
    double base_p99_us;      /* baseline p99 request latency, us */
    double base_low_bps;     /* the baseline's low-quartile window bytes/s:
                                the guest's own dips with no copy (the
                                noise floor of the throughput criterion);
                                0 unknown */
    double bps;              /* now: read+write bytes/s */
    double iops;             /* now: requests/s */
    double wr_bps;           /* now: write bytes/s */
    double p99_us;           /* now: p99 request latency, us */
    uint64_t ops;            /* requests in the measurement window */
    bool have_last;          /* the last_* fields are meaningful */
    double last_bps;         /* the window's newest interval alone: bytes/s */
    double last_p99_us;      /* ... p99 request latency, us */
    uint64_t last_ops;       /* ... requests */
    uint32_t window;         /* intervals in the window (successive windows
                                overlap by window - 1); after a back-off
                                the rate is not cut again until the window
                                has moved past the interval that caused it;
                                0 or 1: no overlap */
};

#define CONV_BUDGET_IVS 8 /* measurement intervals of copy rate kept */

/* The steered copy during one measurement interval of the guest. */
struct conv_budget_iv {
    double copy_bps;  /* bytes/s the steered copies moved (mirror, memory) */
    uint64_t rate_bps; /* copy rate in force, bytes/s */
};

#define CONV_BUDGET_READS 8 /* recent judged readings kept (budget_ri) */

/* One judged measurement: the copy rate its window saw and the usage. */
struct conv_budget_read {
    double ref_bps; /* bytes/s the steered copy moved over the window */
    double usage;   /* budget usage read */
};

enum conv_budget_verdict {
    CONV_BUDGET_OFF = 0,      /* no budget */
    CONV_BUDGET_NO_BASELINE,  /* not judged yet: no baseline / no sample */
    CONV_BUDGET_WITHIN,       /* guest inside the budget */
    CONV_BUDGET_VIOLATED,     /* outside it; backing off */
    CONV_BUDGET_CONFLICT,     /* budget and convergence conflict */
    CONV_BUDGET_IO_THROTTLED, /* consented guest write cap in force */
    CONV_BUDGET_WAIVED,       /* given up to finish (said so) */
    CONV_BUDGET__COUNT
};

struct conv_policy {
    enum conv_kind kind;
    bool consent_required[CONV_STEP__COUNT]; /* gated (intrusive) steps */
    struct stall_params stall;   /* zero → defaults */
    struct conv_nova nova;       /* CONV_NOVA */
    struct conv_schedule schedule; /* CONV_SCHEDULE */
    struct conv_adaptive adaptive; /* CONV_ADAPTIVE */
    struct conv_budget budget;   /* CONV_ADAPTIVE: guest-impact budget */
};

/* One Nova downtime step: at t_s (s since migration start, exclusive: Nova
 * acts once elapsed > t_s) set downtime_ms. */
struct conv_nova_step {
    uint64_t t_s;
    uint64_t downtime_ms;
};

enum conv_consent_state {
    CONV_CONSENT_NONE = 0,  /* not asked, no answer */
    CONV_CONSENT_PENDING,   /* asked, waiting */
    CONV_CONSENT_GRANTED,
    CONV_CONSENT_REFUSED
};

enum conv_rung_state {
    CONV_RUNG_TODO = 0, CONV_RUNG_WAITING, CONV_RUNG_ACTIVE, CONV_RUNG_SKIPPED
};

/* Controller state; treat as opaque except through the functions below. */
struct conv {
    struct conv_policy pol;
    struct stall stall;
    bool done;                       /* aborted or terminal: no more actions */
    bool stall_reported;
    enum conv_consent_state consent[CONV_STEP__COUNT];
    /* nova */
    struct conv_nova_step nsteps[CONV_SCHED_MAX];
    size_t n_nsteps;
    uint64_t nova_timeout_s;         /* 0: disabled */
    uint64_t cur_downtime_ms;        /* last limit we set (0 none) */
    bool timeout_fired;
    enum conv_act_kind pending_act;  /* nova/schedule: gated action waiting */
    bool have_pending;
    /* schedule */
    size_t sched_next;
    /* adaptive */
    size_t rung;                     /* index into ladder */
    enum conv_rung_state rung_state[CONV_STEP__COUNT];
    uint64_t rung_t_ms;              /* when the current rung acted */
    uint64_t rung_sync;              /* dirty_sync_count then */
    bool paused, postcopy;
    uint64_t last_t_ms;
    uint64_t planned_downtime_ms;    /* adaptive, pass 1: the limit it will
                                        set once the dirty rate is measured
                                        (judged on the dirty-rate hint), ms;
                                        0 none */
    /* impact budget */
    struct conv_impact imp;          /* newest measurement (conv_set_impact) */
    uint64_t imp_seq;                /* seq the budget acted on last */
    enum conv_budget_verdict bverdict; /* current verdict */
    double usage;                    /* newest budget usage: 1.0 = at the
                                        bound, < 0 quiet/unknown */
    uint64_t rate_bps;               /* copy rate set, bytes/s (0 none yet) */
    uint64_t mirror_set_bps;         /* mirror speed last emitted */
    uint64_t bw_set_bps;             /* max-bandwidth last emitted */
    uint64_t ceiling_bps;            /* the rate the newest violation came
                                        at (the fastest copy in its window,
                                        at least the rate then), 0 none */
    uint32_t since_violation;        /* measurements judged since it */
    uint32_t breach_run;             /* violations in a row (acted on) */
    uint64_t breach_from_bps;        /* copy rate at the first of them */
    uint64_t cut_iv;                 /* n_iv at the newest cut (0 none): the
                                        windows until n_iv reaches cut_iv +
                                        window still hold what it answered */
    double cut_usage;                /* the usage that cut answered */
    struct conv_budget_iv iv[CONV_BUDGET_IVS]; /* the copy in the newest
                                        measurement intervals, iv[n_iv % ..] */
    uint64_t n_iv;                   /* intervals closed */
    bool copy_began;                 /* an interval saw the copy move */
    uint64_t began_iv;               /* ... the first such (its index) */
    uint64_t copy_bytes;             /* steered bytes copied since the last
                                        measurement */
    uint64_t copy_t0_ms;             /* sample t_ms of the last measurement */
    uint64_t disk_done_prev, ram_tx_prev; /* at the previous sample */
    bool have_copy_prev;
    struct conv_budget_read reads[CONV_BUDGET_READS]; /* the newest clean
                                        readings, reads[n_reads % ..] */
    uint64_t n_reads;                /* clean readings taken */
    bool ri;                         /* rate-independent cost learned: a
                                        cut to half the rate or less did
                                        not lower the usage */
    double ri_usage;                 /* the usage read at the lower rate of
                                        that pair: the cost the migration
                                        has at any rate */
    uint64_t ri_bps;                 /* the higher rate of the pair: the
                                        budget cuts no lower, bytes/s */
    bool ri_report;                  /* ri newly learned: REPORT_BUDGET due */
    char ri_why[CONV_REASON_MAX];    /* ... its reason */
    double usage_sum;                /* the usage the rate was steered on,
                                        of the measurements charged,
                                        summed: the account (budget_aim) */
    uint64_t usage_n;                /* ... and their number */
    char judge_note[96];             /* how the newest reading moved the
                                        rate ("usage U aim A copy C MiB/s:
                                        step"), the reason of the next
                                        SET_MIRROR_SPEED / SET_BANDWIDTH */
    bool usage_own;                  /* the newest reading was held to be
                                        the guest's own (before the copy
                                        moved): it does not bind */
    uint64_t violations;             /* measurements outside the budget */
    uint64_t judged;                 /* measurements judged */
    uint64_t conflict_since_ms;      /* conflict condition true since, 0 no */
    bool conflict_reported;          /* REPORT_BUDGET(CONFLICT) emitted */
    bool io_throttled;               /* SET_IO_THROTTLE emitted (cap on) */
    bool waived;                     /* budget waived */
    bool bw_waived;                  /* BANDWIDTH rung acted: bandwidth no
                                        longer steered by the budget */
    bool held_to_deadline;           /* ladder exhausted, budget kept until
                                        the deadline (reported once) */
    uint64_t disk_rem_prev;          /* disk bytes left at the last sample */
    uint64_t disk_t_prev;            /* its t_ms */
    double drain_bps;                /* EWMA of the disk drain, bytes/s */
    bool have_drain;
    bool late;                       /* adaptive: newest "cannot finish by
                                        the deadline" judgement */
};

/* Validates policy and initialises c with a copy of it. Returns 0, or
 * FERR_INVAL (with err naming the field, when err is non-NULL) for a policy
 * Nova's oslo.config would reject (downtime < 100, steps < 3, delay < 10),
 * an unsorted or oversized schedule, an adaptive policy with
 * downtime_start_ms > downtime_max_ms, deadline 0, a repeated ladder step,
 * or throttle_max_pct outside 1..99. On error c is left zeroed. */
int conv_init(struct conv *c, const struct conv_policy *policy, struct ferr *err)
    __attribute__((warn_unused_result));

/* Decides this tick. s is the newest sample (borrowed; required), est the
 * estimate after it (borrowed; may be NULL: adaptive then only keeps its
 * limits and the deadline), now_ms the time on the same clock as s->t_ms
 * (ms since migration start). Writes up to max actions to out and their
 * count to *n_out. Returns 0; FERR_INVAL when max < CONV_ACTIONS_MAX or an
 * argument is NULL or now_ms goes backwards (c unchanged, *n_out = 0). */
int conv_tick(struct conv *c, const struct mig_sample *s, const struct est_out *est,
              uint64_t now_ms, struct conv_action *out, size_t max, size_t *n_out)
    __attribute__((warn_unused_result));

/* Hands the newest guest-impact measurement (copied) to the budget; the
 * next conv_tick judges it when imp->seq is new. No effect without a
 * budget. Returns 0, FERR_INVAL for NULL arguments. */
int conv_set_impact(struct conv *c, const struct conv_impact *imp)
    __attribute__((warn_unused_result));

/* Budget usage of one measurement against budget b: the largest of the
 * judged criteria, each scaled so that 0 is "as the baseline" and 1.0 is
 * "at the bound" (throughput: lost share / allowed loss; p99 ratio:
 * (ratio - 1) / (max - 1); absolute p99: p99 / max). Returns -1 when
 * nothing can be judged (quiet guest: fewer than min_ops requests, or no
 * baseline for a relative criterion and no absolute one). Pure. */
double conv_budget_usage(const struct conv_budget *b, const struct conv_impact *imp);

/* Current budget verdict of c. */
enum conv_budget_verdict conv_budget_verdict(const struct conv *c);

/* Stable name of a verdict ("within", "budget_conflict", ...). */
const char *conv_budget_verdict_name(enum conv_budget_verdict v);

/* Records the answer for step. Returns 0; FERR_INVAL for an out-of-range
 * step; FERR_STATE when the step already has an answer. A grant takes
 * effect at the next conv_tick (which then emits the step's action). */
int conv_consent(struct conv *c, enum conv_step step, bool granted)
    __attribute__((warn_unused_result));

/* Fills steps[0..*n) with Nova's downtime schedule for policy->nova (the
 * generator downtime_steps(data_gb)) and *timeout_s with its completion
 * timeout (0: disabled). Returns 0, FERR_INVAL like conv_init, or
 * FERR_TOOBIG when max is too small. */
int conv_nova_plan(const struct conv_nova *nova, struct conv_nova_step *steps,
                   size_t max, size_t *n, uint64_t *timeout_s)
    __attribute__((warn_unused_result));

/* Nova's data_gb for nova (float GiB: max(RAM, 2) + each disk max(size, 2)). */
double conv_nova_data_gb(const struct conv_nova *nova);

/* Fills sched[0..*n) with the future downtime schedule this controller will
 * apply (t_ms since migration start), for est_set_schedule(). Nova: its
 * steps not yet applied; adaptive: during pass 1 with a dirty-rate hint,
 * the raise it plans for when the rate is measured (one step, from the
 * next tick); schedule: none. Returns 0 or FERR_TOOBIG. */
int conv_future_downtime(const struct conv *c, struct est_sched_step *sched,
                         size_t max, size_t *n) __attribute__((warn_unused_result));

/* Returns the next time (ms since migration start, after the last tick)
 * at which c may act on time alone — a Nova downtime step or completion
 * timeout, an adaptive deadline, the end of a rung's settle time or the
 * bound (settle_max_ms, or a quarter of what was left) after which it
 * gives way — or
 * UINT64_MAX when there is none (schedule policies act on iterations, a
 * done controller never). Pure; for forecasts (core/forecast.h). */
uint64_t conv_next_event_ms(const struct conv *c);

/* Stable names for logs and events. */
const char *conv_act_name(enum conv_act_kind k);
const char *conv_step_name(enum conv_step s);
const char *conv_kind_name(enum conv_kind k);

/* Fills p with the defaults of kind (Nova: 500 ms, 10 steps, 75 s/GiB,
 * 800 s/GiB, abort; adaptive: 100..2000 ms, ladder bandwidth → throttle →
 * post-copy → pause with throttle, post-copy, pause and io_throttle
 * gated). The budget is off; conv_budget_default fills one. */
void conv_policy_default(struct conv_policy *p, enum conv_kind kind);

/* Fills b with an enabled budget without criteria (the caller sets them):
 * rate 1 MiB/s .. 1 GiB/s starting at 16 MiB/s, steering the mirrors, io
 * throttle offered, waive on refusal, conflict after 5 s, quiet below 5
 * requests. */
void conv_budget_default(struct conv_budget *b);

#endif

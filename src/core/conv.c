/* conv — convergence controller: Nova, schedule and adaptive policies with
 * consent gating and stall reporting. docs/CONTROLLER.md explains each. */
#include "core/conv.h"

#include <math.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NOVA_DOWNTIME_MIN 100 /* nova.conf min= for live_migration_downtime */
#define NOVA_STEPS_MIN 3      /* ... live_migration_downtime_steps */
#define NOVA_DELAY_MIN 10     /* ... live_migration_downtime_delay */
#define GIB 1073741824.0

/* Output cursor for one tick. */
struct emit {
    struct conv_action *a;
    size_t max, n;
};

static struct conv_action *push(struct emit *e, enum conv_act_kind kind)
{
    if (e->n >= e->max)
        return NULL; /* cannot happen: max >= CONV_ACTIONS_MAX */
    struct conv_action *a = &e->a[e->n++];
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    return a;
}

static void reasonf(struct conv_action *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reasonf(struct conv_action *a, const char *fmt, ...)
{
    if (!a)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->reason, sizeof(a->reason), fmt, ap);
    va_end(ap);
}

double conv_nova_data_gb(const struct conv_nova *nova)
{
    /* nova/virt/libvirt/driver.py _live_migration_data_gb, Python 3 floats */
    double ram_gb = (double)(nova->ram_mib * 1048576ull) / GIB;
    if (ram_gb < 2)
        ram_gb = 2;
    if (nova->n_disks == 0)
        return ram_gb;
    double disk_gb = 0;
    for (size_t i = 0; i < nova->n_disks && i < CONV_DISKS_MAX; i++) {
        double size_gb = (double)nova->disk_bytes[i] / GIB;
        if (size_gb < 2)
            size_gb = 2;
        disk_gb += size_gb;
    }
    return ram_gb + disk_gb;
}

static int nova_check(const struct conv_nova *nova, struct ferr *err)
{
    if (nova->downtime_ms < NOVA_DOWNTIME_MIN)
        return ferr_set(err, FERR_INVAL, "live_migration_downtime", "must be >= %d ms",
                        NOVA_DOWNTIME_MIN);
    if (nova->downtime_steps < NOVA_STEPS_MIN)
        return ferr_set(err, FERR_INVAL, "live_migration_downtime_steps",
                        "must be >= %d", NOVA_STEPS_MIN);
    if (nova->downtime_steps + 1 > CONV_SCHED_MAX)
        return ferr_set(err, FERR_INVAL, "live_migration_downtime_steps",
                        "must be <= %d", CONV_SCHED_MAX - 1);
    if (nova->downtime_delay_s < NOVA_DELAY_MIN)
        return ferr_set(err, FERR_INVAL, "live_migration_downtime_delay",
                        "must be >= %d s", NOVA_DELAY_MIN);
    if (nova->n_disks > CONV_DISKS_MAX)
        return ferr_set(err, FERR_INVAL, "disks", "at most %d disks", CONV_DISKS_MAX);
    if (nova->timeout_action != CONV_TIMEOUT_ABORT &&
        nova->timeout_action != CONV_TIMEOUT_FORCE_COMPLETE)
        return ferr_set(err, FERR_INVAL, "live_migration_timeout_action",
                        "must be abort or force_complete");
    return 0;
}

int conv_nova_plan(const struct conv_nova *nova, struct conv_nova_step *steps, size_t max,
                   size_t *n, uint64_t *timeout_s)
{
    int rc = nova_check(nova, NULL);
    if (rc)
        return rc;
    if ((size_t)nova->downtime_steps + 1 > max)
        return FERR_TOOBIG;
    double data_gb = conv_nova_data_gb(nova);
    /* nova/virt/libvirt/migration.py downtime_steps() */
    uint64_t delay = (uint64_t)((double)nova->downtime_delay_s * data_gb);
    double base = (double)nova->downtime_ms / (double)nova->downtime_steps;
    double offset = ((double)nova->downtime_ms - base) / (double)nova->downtime_steps;
    for (uint32_t i = 0; i <= nova->downtime_steps; i++) {
        steps[i].t_s = delay * i;
        steps[i].downtime_ms = (uint64_t)(base + offset * (double)i);
    }
    *n = (size_t)nova->downtime_steps + 1;
    if (timeout_s)
        *timeout_s = (uint64_t)((double)nova->completion_timeout_s * data_gb);
    return 0;
}

void conv_policy_default(struct conv_policy *p, enum conv_kind kind)
{
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->nova.downtime_ms = 500;
    p->nova.downtime_steps = 10;
    p->nova.downtime_delay_s = 75;
    p->nova.completion_timeout_s = 800;
    p->nova.timeout_action = CONV_TIMEOUT_ABORT;
    struct conv_adaptive *a = &p->adaptive;
    a->deadline_ms = 3600000;
    a->downtime_start_ms = 100;
    a->downtime_max_ms = 2000;
    a->throttle_initial_pct = 20;
    a->throttle_increment_pct = 10;
    a->throttle_max_pct = 99;
    a->ladder[0] = CONV_STEP_BANDWIDTH;
    a->ladder[1] = CONV_STEP_THROTTLE;
    a->ladder[2] = CONV_STEP_POSTCOPY;
    a->ladder[3] = CONV_STEP_PAUSE;
    a->n_ladder = 4;
    a->settle_ms = 10000;
    a->settle_periods = 2;
    a->settle_max_ms = 60000;
    a->headroom_ms = 50;
    if (kind == CONV_ADAPTIVE) {
        p->consent_required[CONV_STEP_THROTTLE] = true;
        p->consent_required[CONV_STEP_POSTCOPY] = true;
        p->consent_required[CONV_STEP_PAUSE] = true;
        p->consent_required[CONV_STEP_IO_THROTTLE] = true;
    }
}

void conv_budget_default(struct conv_budget *b)
{
    memset(b, 0, sizeof(*b));
    b->enabled = true;
    b->rate_min_bps = 1u << 20;
    b->rate_max_bps = 1u << 30;
    b->rate_start_bps = 16u << 20;
    b->steer = CONV_STEER_MIRROR;
    b->io_throttle = true;
    b->conflict_ms = 5000;
    b->min_ops = 5;
}

static int budget_check(const struct conv_policy *p, struct ferr *err)
{
    const struct conv_budget *b = &p->budget;
    if (!b->enabled)
        return 0;
    if (p->kind != CONV_ADAPTIVE)
        return ferr_set(err, FERR_INVAL, "budget", "a budget needs the adaptive policy");
    if (!b->min_throughput_pct && !(b->max_p99_ratio > 0) && !b->max_p99_us)
        return ferr_set(err, FERR_INVAL, "budget",
                        "set min_throughput_pct, max_p99_latency_ratio or max_p99_latency_ms");
    if (b->min_throughput_pct > 100)
        return ferr_set(err, FERR_INVAL, "min_throughput_pct", "must be 0..100");
    if (b->max_p99_ratio != 0 && !(b->max_p99_ratio > 1.0 && b->max_p99_ratio <= 1000.0))
        return ferr_set(err, FERR_INVAL, "max_p99_latency_ratio", "must be > 1 and <= 1000");
    if (b->rate_min_bps == 0 || b->rate_min_bps > b->rate_max_bps ||
        b->rate_start_bps < b->rate_min_bps || b->rate_start_bps > b->rate_max_bps)
        return ferr_set(err, FERR_INVAL, "min_rate_bps",
                        "need 0 < min_rate_bps <= start_rate_bps <= max_rate_bps");
    if (b->steer == 0 || (b->steer & ~(unsigned)(CONV_STEER_MIRROR | CONV_STEER_BANDWIDTH)))
        return ferr_set(err, FERR_INVAL, "steer", "must be mirror, bandwidth or both");
    return 0;
}

int conv_init(struct conv *c, const struct conv_policy *policy, struct ferr *err)
{
    memset(c, 0, sizeof(*c));
    if (!policy)
        return ferr_set(err, FERR_INVAL, "policy", "missing");
    int rc = 0;
    switch (policy->kind) {
    case CONV_NOVA:
        rc = nova_check(&policy->nova, err);
        break;
    case CONV_SCHEDULE:
        if (policy->schedule.n > CONV_SCHED_MAX) {
            rc = ferr_set(err, FERR_INVAL, "schedule", "at most %d entries", CONV_SCHED_MAX);
            break;
        }
        for (size_t i = 0; i < policy->schedule.n && !rc; i++) {
            const struct conv_sched_entry *e = &policy->schedule.e[i];
            if (i && e->after_iteration < policy->schedule.e[i - 1].after_iteration)
                rc = ferr_set(err, FERR_INVAL, "schedule", "entry %zu out of order", i);
            else if ((unsigned)e->act > CONV_SCHED_ABORT)
                rc = ferr_set(err, FERR_INVAL, "schedule", "entry %zu: unknown action", i);
            else if (e->act == CONV_SCHED_SET_DOWNTIME && e->downtime_ms == 0)
                rc = ferr_set(err, FERR_INVAL, "schedule", "entry %zu: downtime 0", i);
        }
        break;
    case CONV_ADAPTIVE: {
        const struct conv_adaptive *a = &policy->adaptive;
        bool seen[CONV_STEP__COUNT] = {false};
        if (a->deadline_ms == 0)
            rc = ferr_set(err, FERR_INVAL, "deadline_ms", "must be > 0");
        else if (a->downtime_max_ms == 0 || a->downtime_start_ms == 0 ||
                 a->downtime_start_ms > a->downtime_max_ms)
            rc = ferr_set(err, FERR_INVAL, "downtime_max_ms",
                          "need 0 < downtime_start_ms <= downtime_max_ms");
        else if (a->throttle_max_pct < 1 || a->throttle_max_pct > 99 ||
                 a->throttle_initial_pct > a->throttle_max_pct)
            rc = ferr_set(err, FERR_INVAL, "throttle_max_pct",
                          "need throttle_initial_pct <= throttle_max_pct in 1..99");
        else if (a->n_ladder > CONV_STEP__COUNT)
            rc = ferr_set(err, FERR_INVAL, "ladder", "too many steps");
        for (size_t i = 0; !rc && i < a->n_ladder; i++) {
            if ((unsigned)a->ladder[i] >= CONV_STEP__COUNT || seen[a->ladder[i]])
                rc = ferr_set(err, FERR_INVAL, "ladder", "step %zu unknown or repeated", i);
            else if (a->ladder[i] == CONV_STEP_IO_THROTTLE)
                rc = ferr_set(err, FERR_INVAL, "ladder",
                              "io_throttle is the impact budget's step, not a memory ladder "
                              "rung (budget.io_throttle)");
            else
                seen[a->ladder[i]] = true;
        }
        break;
    }
    default:
        rc = ferr_set(err, FERR_INVAL, "kind", "unknown policy kind");
    }
    if (!rc)
        rc = budget_check(policy, err);
    if (rc) {
        memset(c, 0, sizeof(*c));
        return rc;
    }
    c->pol = *policy;
    if (!c->pol.adaptive.settle_ms)
        c->pol.adaptive.settle_ms = 10000;
    if (!c->pol.adaptive.settle_periods)
        c->pol.adaptive.settle_periods = 2;
    if (!c->pol.adaptive.settle_max_ms)
        c->pol.adaptive.settle_max_ms = 60000;
    if (!c->pol.budget.conflict_ms)
        c->pol.budget.conflict_ms = 5000;
    if (!c->pol.budget.min_ops)
        c->pol.budget.min_ops = 5;
    c->bverdict = c->pol.budget.enabled ? CONV_BUDGET_NO_BASELINE : CONV_BUDGET_OFF;
    c->usage = -1;
    stall_init(&c->stall, &policy->stall);
    if (policy->kind == CONV_NOVA) {
        rc = conv_nova_plan(&policy->nova, c->nsteps, CONV_SCHED_MAX, &c->n_nsteps,
                            &c->nova_timeout_s);
        if (rc) {
            memset(c, 0, sizeof(*c));
            return ferr_set(err, rc, "live_migration_downtime_steps", "plan failed");
        }
    }
    return 0;
}

/* Consent gate for step. Returns 1: act now; 0: wait (REQUEST_CONSENT
 * emitted the first time); -1: refused, skip. */
static int gate_if(struct conv *c, struct emit *e, enum conv_step step, const char *why,
                   bool required)
{
    if (!required)
        return 1;
    switch (c->consent[step]) {
    case CONV_CONSENT_GRANTED:
        return 1;
    case CONV_CONSENT_REFUSED:
        return -1;
    case CONV_CONSENT_PENDING:
        return 0;
    case CONV_CONSENT_NONE:
    default: {
        struct conv_action *a = push(e, CONV_ACT_REQUEST_CONSENT);
        if (a) {
            a->step = step;
            reasonf(a, "%s requires consent: %s", conv_step_name(step), why);
        }
        c->consent[step] = CONV_CONSENT_PENDING;
        return 0;
    }
    }
}

static int gate(struct conv *c, struct emit *e, enum conv_step step, const char *why)
{
    return gate_if(c, e, step, why, c->pol.consent_required[step]);
}

static void act_downtime(struct conv *c, struct emit *e, uint64_t ms)
{
    struct conv_action *a = push(e, CONV_ACT_SET_DOWNTIME);
    if (a)
        a->downtime_ms = ms;
    c->cur_downtime_ms = ms;
}

static void act_abort(struct conv *c, struct emit *e, const char *why)
{
    struct conv_action *a = push(e, CONV_ACT_ABORT);
    reasonf(a, "%s", why);
    c->done = true;
}

static void report_budget(struct conv *c, struct emit *e, enum conv_budget_verdict v,
                          const char *why);

/* The bandwidth rung would raise max-bandwidth above what the impact
 * budget allows right now (the budget steers max-bandwidth, not waived). */
static bool bw_past_budget(const struct conv *c)
{
    const struct conv_budget *b = &c->pol.budget;
    return b->enabled && (b->steer & CONV_STEER_BANDWIDTH) && !c->bw_waived && !c->waived &&
           c->pol.adaptive.bw_cap_bps > c->rate_bps;
}

/* Emits the action of an escalation step (consent already settled). */
static void act_step(struct conv *c, struct emit *e, enum conv_step step,
                     const struct mig_sample *s, const struct est_out *est)
{
    const struct conv_adaptive *ad = &c->pol.adaptive;
    struct conv_action *a;
    (void)s;
    switch (step) {
    case CONV_STEP_BANDWIDTH:
        if (bw_past_budget(c)) {
            /* consented (or the operator's yield_to_ladder): say so */
            char why[CONV_REASON_MAX];
            snprintf(why, sizeof(why),
                     "budget yields to the bandwidth rung (%s): max-bandwidth %.1f -> %.1f MiB/s",
                     c->pol.budget.yield_to_ladder ? "yield_to_ladder" : "consent granted",
                     (double)c->rate_bps / 1048576.0, (double)ad->bw_cap_bps / 1048576.0);
            report_budget(c, e, CONV_BUDGET_CONFLICT, why);
            c->conflict_reported = true;
        }
        a = push(e, CONV_ACT_SET_BANDWIDTH);
        if (a) {
            a->step = step;
            a->bw_bps = ad->bw_cap_bps;
        }
        c->bw_waived = true; /* the budget no longer holds max-bandwidth down */
        c->bw_set_bps = ad->bw_cap_bps;
        break;
    case CONV_STEP_THROTTLE:
        a = push(e, CONV_ACT_SET_THROTTLE);
        if (a) {
            a->step = step;
            a->auto_converge = true;
            a->throttle_initial_pct = ad->throttle_initial_pct;
            /* Start where the model says the dirty rate falls to half the
             * bandwidth (throttle p scales it by 1 - p): auto-converge
             * climbs one increment per two sync periods, far too slowly
             * on big guests whose periods last minutes. */
            if (est && est->dirty_measured && est->ratio > 0.5) {
                double need = ceil(100.0 * (1.0 - 0.5 / est->ratio));
                if (need > (double)ad->throttle_max_pct)
                    need = (double)ad->throttle_max_pct;
                if (need > (double)a->throttle_initial_pct)
                    a->throttle_initial_pct = (uint32_t)need;
            }
            a->throttle_increment_pct = ad->throttle_increment_pct;
            a->throttle_max_pct = ad->throttle_max_pct;
        }
        break;
    case CONV_STEP_POSTCOPY:
        a = push(e, CONV_ACT_START_POSTCOPY);
        if (a)
            a->step = step;
        c->postcopy = true;
        break;
    case CONV_STEP_PAUSE:
    default:
        a = push(e, CONV_ACT_PAUSE_GUEST);
        if (a)
            a->step = CONV_STEP_PAUSE;
        c->paused = true;
        break;
    }
}

static void tick_nova(struct conv *c, const struct mig_sample *s, uint64_t now_ms,
                      struct emit *e)
{
    if (s->phase == MIG_PHASE_ACTIVE || s->phase == MIG_PHASE_SETUP) {
        /* libvirt_migrate.update_downtime: latest step with elapsed > t */
        const struct conv_nova_step *this_step = NULL;
        for (size_t i = 0; i < c->n_nsteps; i++)
            if (now_ms > c->nsteps[i].t_s * 1000)
                this_step = &c->nsteps[i];
        if (this_step && this_step->downtime_ms != c->cur_downtime_ms)
            act_downtime(c, e, this_step->downtime_ms);
    }
    /* should_trigger_timeout_action: elapsed > timeout, not in post-copy */
    if (c->have_pending) {
        enum conv_step st = c->pending_act == CONV_ACT_START_POSTCOPY ? CONV_STEP_POSTCOPY
                                                                     : CONV_STEP_PAUSE;
        int g = gate(c, e, st, "completion timeout, force_complete");
        if (g != 0)
            c->have_pending = false;
        if (g == 1)
            act_step(c, e, st, s, NULL);
        return;
    }
    if (c->timeout_fired || c->nova_timeout_s == 0 || s->phase == MIG_PHASE_POSTCOPY ||
        now_ms <= c->nova_timeout_s * 1000)
        return;
    c->timeout_fired = true;
    if (c->pol.nova.timeout_action == CONV_TIMEOUT_ABORT) {
        char why[CONV_REASON_MAX];
        snprintf(why, sizeof(why),
                 "completion timeout: %llu s elapsed > %llu s (800 s/GiB-style limit)",
                 (unsigned long long)(now_ms / 1000),
                 (unsigned long long)c->nova_timeout_s);
        act_abort(c, e, why);
        return;
    }
    enum conv_step st = c->pol.nova.permit_post_copy ? CONV_STEP_POSTCOPY : CONV_STEP_PAUSE;
    int g = gate(c, e, st, "completion timeout, force_complete");
    if (g == 1)
        act_step(c, e, st, s, NULL);
    else if (g == 0) {
        c->have_pending = true;
        c->pending_act = st == CONV_STEP_POSTCOPY ? CONV_ACT_START_POSTCOPY
                                                  : CONV_ACT_PAUSE_GUEST;
    }
}

static void tick_schedule(struct conv *c, const struct mig_sample *s, struct emit *e)
{
    if (s->phase != MIG_PHASE_ACTIVE && s->phase != MIG_PHASE_SETUP)
        return;
    while (c->sched_next < c->pol.schedule.n && !c->done) {
        const struct conv_sched_entry *en = &c->pol.schedule.e[c->sched_next];
        if (!(en->after_iteration == 0 || s->dirty_sync_count > en->after_iteration))
            return;
        switch (en->act) {
        case CONV_SCHED_SET_DOWNTIME:
            act_downtime(c, e, en->downtime_ms);
            break;
        case CONV_SCHED_ABORT: {
            char why[CONV_REASON_MAX];
            snprintf(why, sizeof(why), "schedule: abort after memory iteration %llu",
                     (unsigned long long)en->after_iteration);
            act_abort(c, e, why);
            break;
        }
        case CONV_SCHED_POSTCOPY:
        case CONV_SCHED_PAUSE: {
            enum conv_step st =
                en->act == CONV_SCHED_POSTCOPY ? CONV_STEP_POSTCOPY : CONV_STEP_PAUSE;
            int g = gate(c, e, st, "schedule step reached");
            if (g == 0)
                return; /* wait for the answer; later entries wait too */
            if (g == 1)
                act_step(c, e, st, s, NULL);
            break;
        }
        }
        c->sched_next++;
        if (e->n + 2 > e->max)
            return; /* the rest next tick */
    }
}

/* Smallest limit in [lo, hi] whose predicted finish is within budget_ms;
 * returns 0 when even hi is too slow or the model is not ready. */
static uint64_t smallest_downtime(const struct est_out *est, uint64_t lo, uint64_t hi,
                                  uint64_t budget_ms)
{
    uint64_t eta;
    if (est_predict(est, hi, &eta, NULL) != 0 || eta == EST_ETA_INFINITE || eta > budget_ms)
        return 0;
    if (est_predict(est, lo, &eta, NULL) == 0 && eta != EST_ETA_INFINITE && eta <= budget_ms)
        return lo;
    while (hi - lo > 1) { /* invariant: lo too slow, hi fast enough */
        uint64_t mid = lo + (hi - lo) / 2;
        if (est_predict(est, mid, &eta, NULL) == 0 && eta != EST_ETA_INFINITE &&
            eta <= budget_ms)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

static bool step_applicable(const struct conv *c, enum conv_step st,
                            const struct mig_sample *s)
{
    const struct conv_adaptive *ad = &c->pol.adaptive;
    switch (st) {
    case CONV_STEP_BANDWIDTH:
        /* max-bandwidth 0 is "no limit" in QEMU 7.2 (qemu_file_rate_limit
         * skips a zero rate_limit_max): setting the cap would lower it */
        return ad->bw_cap_bps > 0 && s->setting_max_bw_bps > 0 &&
               s->setting_max_bw_bps < ad->bw_cap_bps;
    case CONV_STEP_POSTCOPY:
        return ad->postcopy_available;
    case CONV_STEP_IO_THROTTLE:
        return false; /* the budget's step (tick_budget) */
    default:
        return true;
    }
}


/* --- impact budget ------------------------------------------------------- */

#define BUDGET_AIM 0.75      /* usage the rate steers to: the budget's edge
                                less a margin for noise and lag */
#define BUDGET_AIM_SLACK 0.15 /* the most a measurement's aim rises above
                                 BUDGET_AIM while the migration's mean usage
                                 is below it (budget_aim) */
#define BUDGET_GAMMA 0.6     /* damping: the step is (aim/usage)^gamma */
#define BUDGET_UP_MAX 2.0    /* largest increase per measurement */
#define BUDGET_UP_FAST 4.0   /* ... with usage below a quarter of the aim */
#define BUDGET_DOWN_MIN 0.5  /* deepest cut per measurement */
#define BUDGET_UP_CAREFUL 1.5 /* largest increase per measurement in the
                                 BUDGET_CAREFUL measurements after a
                                 violation (the edge is near) */
#define BUDGET_CAREFUL 5
#define BUDGET_NEAR 0.8      /* after a violation, the rate climbs at the
                                careful pace only to this share of the rate
                                it came at (ceiling_bps), and above it at
                                most x BUDGET_UP_NEAR per measurement, for
                                BUDGET_NEAR_MEMORY measurements */
#define BUDGET_UP_NEAR 1.1
#define BUDGET_PAST 1.2      /* ... up to this multiple of it: past it with
                                no violation, the edge was not there (a
                                reading of the guest's own trouble) and the
                                climb is free again — probing x1.1 from a
                                noise-driven cut at 1 MiB/s took 20 s */
#define BUDGET_NEAR_MEMORY 20
#define BUDGET_ACUTE 2.0     /* a window this far outside is cut for at
                                once, whatever the account */
#define BUDGET_ROOM 0.6      /* the account's mean usage at or below which a
                                reading inside the aim climbs at least
                                x BUDGET_UP_ROOM: the guest's own
                                per-window noise (0.5-0.7 at 10 MiB/s in
                                bench/impact_disk) must not hold the copy
                                near its start */
#define BUDGET_UP_ROOM 1.5
#define BUDGET_USED 0.9      /* a copy that moved this share of its
                                allowance over the window used it */
#define BUDGET_QUIET_UP 4.0  /* rate factor per measurement of a quiet guest */
#define BUDGET_DEAF_RUN 4    /* violations in a row, and */
#define BUDGET_DEAF_DROP 8.0 /* the copy this many times slower than at the
                                first of them: the guest does not answer
                                the copy rate (budget_deaf) */
#define BUDGET_BINDING 0.6   /* usage above which the budget holds the rate */
#define BUDGET_IDLE 0.25     /* a copy below this share of its rate idles (a
                                READY mirror): steered on the rate instead */
#define BUDGET_RESEND 0.05   /* re-emit a rate only when it moved this much */
#define BUDGET_FLOOR_MAX 0.5 /* the guest's own noise floor counted at most
                                (of the aim's 0.75) */
#define BUDGET_RI_DROP 2.0   /* a cut to 1/this of the rate or less, */
#define BUDGET_RI_SAME 0.8   /* ... that left the usage at this share of
                                what it read before or more, both outside
                                the budget: the cost does not come from the
                                rate (budget_ri) */
#define BUDGET_RI_LOWS 2    /* readings at the lower rates needed */
#define BUDGET_RI_MAX 1.5    /* learned only up to this usage: a guest
                                further outside at every rate is a
                                conflict (budget_deaf, floor) */
#define BUDGET_RI_ROOM 0.25  /* once learned, the rate's share of the
                                usage above that cost is judged against
                                this (the budget's margin above its aim) */
#define BUDGET_IO_MIN_BPS 65536u /* smallest guest write cap, bytes/s */
#define DRAIN_ALPHA 0.3      /* EWMA weight of the newest disk drain sample */

static double dmax(double a, double b)
{
    return a > b ? a : b;
}

double conv_budget_usage(const struct conv_budget *b, const struct conv_impact *imp)
{
    uint32_t min_ops = b->min_ops ? b->min_ops : 5;
    bool busy_base = imp->have_baseline && imp->base_iops >= (double)min_ops;
    if (imp->ops < min_ops && !busy_base)
        return -1; /* quiet now and before: nothing to protect */
    double u = 0;
    bool any = false;
    if (b->min_throughput_pct && imp->have_baseline && imp->base_bps > 0 && busy_base) {
        double allowed = 1.0 - (double)b->min_throughput_pct / 100.0;
        double lost = 1.0 - imp->bps / imp->base_bps;
        double x = allowed > 0 ? lost / allowed : (lost > 0.01 ? 2.0 : 0.0);
        u = dmax(u, x);
        any = true;
    }
    if (imp->ops > 0 && imp->p99_us > 0) {
        if (b->max_p99_ratio > 1.0 && imp->have_baseline && imp->base_p99_us > 0) {
            double x = (imp->p99_us / imp->base_p99_us - 1.0) / (b->max_p99_ratio - 1.0);
            u = dmax(u, x);
            any = true;
        }
        if (b->max_p99_us) {
            u = dmax(u, imp->p99_us / (double)b->max_p99_us);
            any = true;
        }
    }
    return any ? u : -1;
}

/* The usage of the measurement's newest interval alone; -1 unknown. */
static double budget_usage_last(const struct conv_budget *b, const struct conv_impact *imp)
{
    if (!imp->have_last)
        return -1;
    struct conv_impact one = *imp;
    one.bps = imp->last_bps;
    one.p99_us = imp->last_p99_us;
    one.ops = imp->last_ops;
    return conv_budget_usage(b, &one);
}

int conv_set_impact(struct conv *c, const struct conv_impact *imp)
{
    if (!c || !imp)
        return FERR_INVAL;
    if (c->pol.budget.enabled)
        c->imp = *imp;
    return 0;
}

enum conv_budget_verdict conv_budget_verdict(const struct conv *c)
{
    return c->bverdict;
}

const char *conv_budget_verdict_name(enum conv_budget_verdict v)
{
    static const char *const names[CONV_BUDGET__COUNT] = {
        "off", "no_baseline", "within", "violated", "budget_conflict", "io_throttled", "waived"};
    return (unsigned)v < CONV_BUDGET__COUNT ? names[v] : "unknown";
}

static uint64_t clamp_rate(const struct conv_budget *b, double r)
{
    if (r < (double)b->rate_min_bps)
        return b->rate_min_bps;
    if (r > (double)b->rate_max_bps)
        return b->rate_max_bps;
    return (uint64_t)r;
}

static bool moved(const struct conv_budget *b, uint64_t now, uint64_t then)
{
    if (then == 0)
        return true;
    if (now != then && (now == b->rate_max_bps || now == b->rate_min_bps))
        return true; /* reach the bounds exactly */
    double d = (double)now - (double)then;
    return d < 0 ? -d > BUDGET_RESEND * (double)then : d > BUDGET_RESEND * (double)then;
}

static void report_budget(struct conv *c, struct emit *e, enum conv_budget_verdict v,
                          const char *why)
{
    c->bverdict = v;
    struct conv_action *a = push(e, CONV_ACT_REPORT_BUDGET);
    if (a) {
        a->budget = (int)v;
        reasonf(a, "%s", why);
    }
}

/* The steered copy's rate over the newest `window` intervals (the ones the
 * guest's measurement covers; intervals before the migration count as no
 * copy), and the mean rate in force over them; false without any. */
static bool budget_window_copy(const struct conv *c, double *copy_bps, double *allow_bps)
{
    uint64_t w = c->imp.window ? c->imp.window : 1;
    if (w > CONV_BUDGET_IVS)
        w = CONV_BUDGET_IVS;
    if (c->n_iv == 0)
        return false;
    double sc = 0, sa = 0;
    for (uint64_t k = 0; k < w && k < c->n_iv; k++) {
        const struct conv_budget_iv *iv = &c->iv[(c->n_iv - 1 - k) % CONV_BUDGET_IVS];
        sc += iv->copy_bps;
        sa += (double)iv->rate_bps;
    }
    *copy_bps = sc / (double)w;
    *allow_bps = sa / (double)w;
    return true;
}

/* True while the measured window (the newest w intervals) still holds
 * seconds from before the steered copy began to move: until it has moved
 * in an interval, and for the w - 1 intervals after the first it moved
 * in. An interval without progress later (a mirror's uneven progress at a
 * low speed) does not make the window early again: held as the guest's
 * own, such readings once kept a mirror at its 8 MiB/s start for 48 s. */
static bool budget_window_early(const struct conv *c, uint64_t w)
{
    if (w > CONV_BUDGET_IVS)
        w = CONV_BUDGET_IVS;
    if (!c->copy_began || c->n_iv < w)
        return true;
    return c->n_iv - w < c->began_iv;
}

/* The intervals among the newest w in which the steered copy moved
 * something, their mean copy rate and the fastest of them (bytes/s; 0
 * when none). */
static uint64_t budget_window_active(const struct conv *c, uint64_t w, double *mean_bps,
                                     double *max_bps)
{
    if (w > CONV_BUDGET_IVS)
        w = CONV_BUDGET_IVS;
    uint64_t n = 0;
    double sum = 0, mx = 0;
    for (uint64_t k = 0; k < w && k < c->n_iv; k++) {
        double b = c->iv[(c->n_iv - 1 - k) % CONV_BUDGET_IVS].copy_bps;
        if (b > 0) {
            n++;
            sum += b;
            mx = b > mx ? b : mx;
        }
    }
    *mean_bps = n ? sum / (double)n : 0;
    *max_bps = mx;
    return n;
}

/* The usage this measurement steers to. The budget bounds what the guest
 * keeps over the migration (its impact report: during against the
 * baseline), so the aim is kept on the migration's account: the mean
 * usage of every measurement judged so far, this one included, is held at
 * BUDGET_AIM; while it is below (a cautious start, a quiet spell the guest
 * lost nothing in) a measurement may aim higher by what is unspent, at
 * most BUDGET_AIM_SLACK — never at the bound itself. Charged is the usage
 * the rate is steered on (above a learned rate-independent cost, budget_ri)
 * of every reading but those the budget holds to be the guest's own
 * (budget_judge: before the copy moved). */
static double budget_aim(const struct conv *c)
{
    if (!c->usage_n)
        return BUDGET_AIM;
    double unspent = BUDGET_AIM - c->usage_sum / (double)c->usage_n;
    if (unspent <= 0)
        return BUDGET_AIM;
    return BUDGET_AIM + (unspent < BUDGET_AIM_SLACK ? unspent : BUDGET_AIM_SLACK);
}

/* The rate that would bring usage u (0..) to aim_u, from ref, the copy
 * rate that produced it: usage grows about in proportion to the copy
 * rate, so the step is (aim/u)^gamma (gamma < 1: damped against noise),
 * between BUDGET_DOWN_MIN and BUDGET_UP_MAX (BUDGET_UP_FAST far below the
 * aim). Outside the budget the step goes back to BUDGET_AIM whatever the
 * account. Pure; unit-tested through conv_tick. */
static double budget_step(double u, double u0, double aim_u)
{
    if (u > 1.0) /* breach: straight back to the aim, fast */
        return dmax(BUDGET_DOWN_MIN, BUDGET_AIM / u);
    /* the copy's share of the usage is what lies above the guest's own
     * noise floor u0 (0 .. BUDGET_FLOOR_MAX): that share is what grows
     * with the copy rate */
    double aim = aim_u - u0, x = u - u0;
    double f = pow(aim / dmax(x, 0.02), BUDGET_GAMMA);
    double up = x < aim / 4 ? BUDGET_UP_FAST : BUDGET_UP_MAX;
    return f > up ? up : f < BUDGET_DOWN_MIN ? BUDGET_DOWN_MIN : f;
}

/* The usage the guest shows with no copy at all: the throughput criterion
 * read on the baseline's low-quartile window (its own dips), when that
 * criterion is the one that sets u; at most BUDGET_FLOOR_MAX. 0 without
 * a baseline spread or when another criterion binds (the p99 criterion is
 * judged against the baseline windows' 75th percentile already). */
static double budget_floor(const struct conv_budget *b, const struct conv_impact *imp, double u)
{
    if (!b->min_throughput_pct || b->min_throughput_pct >= 100 || !imp->have_baseline ||
        imp->base_bps <= 0 || imp->base_low_bps <= 0 || imp->base_low_bps >= imp->base_bps)
        return 0;
    double allowed = 1.0 - (double)b->min_throughput_pct / 100.0;
    double x_tp = (1.0 - imp->bps / imp->base_bps) / allowed;
    if (x_tp < u - 1e-9)
        return 0; /* a latency criterion sets u */
    double u0 = (1.0 - imp->base_low_bps / imp->base_bps) / allowed;
    return u0 > BUDGET_FLOOR_MAX ? BUDGET_FLOOR_MAX : u0;
}

/* The guest has stayed outside its budget for BUDGET_DEAF_RUN
 * measurements in a row while the copy was cut to 1/BUDGET_DEAF_DROP of
 * the rate it had at the first of them: holding the copy back does not
 * help it. */
static bool budget_deaf(const struct conv *c)
{
    return c->breach_run >= BUDGET_DEAF_RUN &&
           (double)c->rate_bps * BUDGET_DEAF_DROP <= (double)c->breach_from_bps;
}

/* Remembers one clean reading (rate ref, usage u: the window wholly after
 * the copy began and after the last cut) and, when it is outside the
 * budget, looks among the newest CONV_BUDGET_READS for a reading outside
 * the budget at a rate BUDGET_RI_DROP times or more above BUDGET_RI_LOWS
 * readings, also outside, each at least BUDGET_RI_SAME of its usage, the
 * lowest of the three at most BUDGET_RI_MAX: cutting the rate did not
 * lower the usage. Then the cost is the migration's at any rate (its
 * start, CPU, a fixed overhead of the guest's storage path): c->ri is set
 * with that lowest usage and the higher rate, which the budget cuts no
 * lower from now on. Learned once per migration. */
static void budget_ri(struct conv *c, double ref, double u)
{
    struct conv_budget_read *rd = &c->reads[c->n_reads % CONV_BUDGET_READS];
    rd->ref_bps = ref;
    rd->usage = u;
    c->n_reads++;
    if (u <= 1.0 || ref <= 0)
        return;
    uint64_t n = c->n_reads < CONV_BUDGET_READS ? c->n_reads : CONV_BUDGET_READS;
    const struct conv_budget_read *hi = NULL;
    double lo_u = 0, lo_bps = 0;
    for (uint64_t i = 0; i < n; i++) {
        const struct conv_budget_read *h = &c->reads[(c->n_reads - 1 - i) % CONV_BUDGET_READS];
        if (h->usage <= 1.0 || h->ref_bps <= 0 || (hi && h->ref_bps <= hi->ref_bps))
            continue;
        int lows = 0;
        double mu = h->usage, sb = 0;
        for (uint64_t k = 0; k < n; k++) {
            const struct conv_budget_read *l = &c->reads[(c->n_reads - 1 - k) % CONV_BUDGET_READS];
            if (l->usage > 1.0 && l->ref_bps > 0 && h->ref_bps >= BUDGET_RI_DROP * l->ref_bps &&
                l->usage >= BUDGET_RI_SAME * h->usage) {
                lows++;
                mu = l->usage < mu ? l->usage : mu;
                sb += l->ref_bps;
            }
        }
        /* the cost that does not come from the rate is at most the
         * lowest of the readings (the rate's share is never negative) */
        if (lows >= BUDGET_RI_LOWS && mu <= BUDGET_RI_MAX) {
            hi = h;
            lo_u = mu;
            lo_bps = sb / lows;
        }
    }
    if (!hi || c->ri)
        return; /* learned once: a later pair at higher rates would only
                   raise the rate the budget may no longer cut below */
    c->ri = true;
    c->ri_usage = lo_u;
    c->ri_bps = clamp_rate(&c->pol.budget, hi->ref_bps);
    c->ri_report = true;
    snprintf(c->ri_why, sizeof(c->ri_why),
             "rate_independent: usage %.2f at %.1f MiB/s, %.2f at %.1f: the copy is cut no "
             "lower than %.1f MiB/s",
             hi->usage, hi->ref_bps / 1048576.0, lo_u, lo_bps / 1048576.0,
             (double)c->ri_bps / 1048576.0);
}

/* Records how reading u moved the rate (the reason given with the next
 * rate action). */
static void budget_note(struct conv *c, double u, double aim, double ref, const char *step)
{
    snprintf(c->judge_note, sizeof(c->judge_note), "budget: usage %.2f aim %.2f copy %.1f MiB/s: %s",
             u, aim, ref / 1048576.0, step);
}

/* Judges a new measurement and moves the copy rate to the budget's edge
 * (feedback per measurement interval on the guest's own figures):
 *   - quiet guest (nothing to judge): x BUDGET_QUIET_UP, spare capacity;
 *   - usage u judged: the reference is what the steered copy actually
 *     moved over the intervals the measurement covers (not the rate set
 *     now: the window lags a rate just raised, and a cap above what QEMU
 *     manages does not load the guest); the new rate is the reference
 *     times budget_step(u). With room (u <= aim) the rate never falls and
 *     rises at most x2 (x4 far below the aim) per measurement; above the
 *     aim it never rises; outside the budget (u > 1) it falls at once to
 *     aim/u of the reference (at least x0.5), and the rate of that moment
 *     is remembered (ceiling_bps) — not while the measured window still
 *     holds seconds before the copy began; for BUDGET_CAREFUL
 *     measurements after that the rate rises at most x1.5 per measurement;
 *     the windows that still hold the interval a cut answered and read no
 *     worse are the same overshoot seen again: no second cut. A copy idling far below its
 *     allowance (a READY mirror) is steered on the allowance instead.
 * Always within [rate_min, rate_max]. */
static void budget_judge(struct conv *c)
{
    const struct conv_budget *b = &c->pol.budget;
    double u = conv_budget_usage(b, &c->imp);
    c->usage = u;
    c->usage_own = false;
    if (c->io_throttled || c->waived)
        return; /* the consented cap or the waiver holds the rate */
    double r = (double)c->rate_bps;
    if (u < 0) {
        bool relative_only = !b->max_p99_us;
        if (!c->imp.have_baseline && relative_only) {
            c->bverdict = CONV_BUDGET_NO_BASELINE;
            return; /* nothing to judge against: keep the rate */
        }
        if (c->bverdict != CONV_BUDGET_CONFLICT)
            c->bverdict = CONV_BUDGET_WITHIN;
        c->rate_bps = clamp_rate(b, r * BUDGET_QUIET_UP);
        budget_note(c, 0, BUDGET_AIM, r, "quiet guest");
        return;
    }
    c->judged++;
    c->since_violation++;
    uint64_t w = c->imp.window ? c->imp.window : 1;
    /* the window still holds seconds before the copy began (or before it
     * moved anything: the destination being set up): a reading above the
     * aim there is the guest's own, not the copy's — neither cut nor held
     * for it, nor charged to the account */
    bool early = budget_window_early(c, w);
    c->usage_own = u > BUDGET_AIM && early;
    if (c->usage_own) {
        budget_note(c, u, BUDGET_AIM, r, "the guest's own (before the copy moved)");
        return;
    }
    /* the window still holds the interval the last cut answered */
    bool held = w > 1 && c->cut_iv && c->n_iv < c->cut_iv + w;
    double copy = 0, allow = 0, ref = r;
    if (budget_window_copy(c, &copy, &allow) && copy >= BUDGET_IDLE * allow)
        ref = copy < r ? copy : r;
    if (!held)
        budget_ri(c, ref, u);
    /* us: the usage the rate is steered on — once a rate-independent
     * cost is learned, the rate's share above it, against BUDGET_RI_ROOM */
    bool outside = u > 1.0;
    double us = u;
    if (c->ri) {
        us = (u - c->ri_usage) / BUDGET_RI_ROOM;
        if (us < 0)
            us = 0;
    }
    c->usage_sum += us;
    c->usage_n++;
    double aim = budget_aim(c);
    if (us > 1.0 && held && us <= c->cut_usage) {
        /* ... and reads no worse than then: the same overshoot seen
         * again, not a new one (cutting on it again is how 11.9 MiB/s fell
         * to 1 in 3 s) */
        c->violations++;
        c->since_violation = 0;
        c->breach_run++;
        if (c->bverdict != CONV_BUDGET_CONFLICT)
            c->bverdict = CONV_BUDGET_VIOLATED;
        budget_note(c, us, aim, ref, "held (the overshoot already cut)");
        return;
    }
    const char *why = NULL;
    double u0 = c->ri ? 0 : budget_floor(b, &c->imp, u), un = us;
    double act_bps = 0, fastest_bps = 0;
    uint64_t active = budget_window_active(c, w, &act_bps, &fastest_bps);
    double mean = c->usage_sum / (double)c->usage_n; /* this reading included */
    if (us > 1.0 && us <= BUDGET_ACUTE && mean <= BUDGET_AIM && c->breach_run < w) {
        /* one window outside while the migration's account is still inside
         * its aim: the budget bounds what the guest keeps over the whole
         * migration, and a single 3 s window is as noisy as the copy's
         * effect (a guest copied from at 32 MiB/s read 1.4-2.2 in
         * bench/impact_disk, where a constant 160 MiB/s cost it 4 % over
         * its migration) — the account absorbs it: no cut, no climb (and
         * no careful climb after it: with nothing cut there is no
         * overshoot to creep back to — remembering it as an edge held
         * bench/impact_net's paced row 3 s below the link). Absorbed
         * are at most as many windows in a row as one interval spans (w):
         * the next, or one that takes the mean past the aim, is cut for */
        c->violations++;
        if (c->breach_run++ == 0)
            c->breach_from_bps = (uint64_t)ref;
        if (c->bverdict != CONV_BUDGET_CONFLICT)
            c->bverdict = CONV_BUDGET_VIOLATED;
        budget_note(c, us, aim, ref, "held (the account absorbs it)");
        return;
    }
    if (!early)
        active = 0; /* a full window is judged whole (below) */
    if (active && active < w && !held && us <= aim) {
        /* a reading inside the aim while the window still holds intervals
         * in which the copy moved nothing (before it began, the destination
         * being set up): both the window's mean copy and the guest's usage
         * are diluted by those intervals — judge the copy's intervals, at
         * what it moved in them, with the copy's share of the usage scaled
         * up to them (the mean copy alone held the start: 32 -> 42 -> 106
         * MiB/s in bench/impact_disk while the guest read no loss) */
        ref = act_bps < r ? act_bps : r;
        if (us > u0)
            un = u0 + (us - u0) * (double)w / (double)active;
    } else if (held && us > u0) {
        /* a worse reading, or one inside, while the window still holds
         * intervals from before the last cut, when the copy went faster:
         * it overstates what the rate now in force does — scale the copy's
         * share of it to the newest interval's copy (usage grows with the
         * copy rate) */
        double last = c->iv[(c->n_iv - 1) % CONV_BUDGET_IVS].copy_bps;
        if (copy > 0 && last < copy)
            un = u0 + (us - u0) * last / copy;
    }
    double f = budget_step(un, u0, aim);
    double nr;
    if (us > 1.0) {
        c->cut_iv = c->n_iv;
        c->cut_usage = us;
        c->violations++;
        /* the rate the violation came at: the fastest the copy went in
         * the window read (the rate in force may have been cut already —
         * bench/impact_net's second violation set it at 3.8 where the
         * copy had gone 5.3, and the climb back probed from 3.0) */
        c->ceiling_bps = fastest_bps > (double)c->rate_bps ? (uint64_t)fastest_bps : c->rate_bps;
        c->since_violation = 0;
        if (c->breach_run++ == 0)
            c->breach_from_bps = (uint64_t)ref;
        /* the copy that hurt went at ref; an idle one (a READY mirror)
         * is cut on its allowance; cut no further once the guest is seen
         * not to answer the rate (its trouble is elsewhere: a conflict) */
        nr = budget_deaf(c) ? r : ref * f;
        if (nr > r)
            nr = r;
        if (c->bverdict != CONV_BUDGET_CONFLICT)
            c->bverdict = CONV_BUDGET_VIOLATED;
    } else {
        c->breach_run = 0;
        nr = ref * f;
        if (us <= aim) {
            if (nr < r)
                nr = r; /* room: never down */
            /* the account has room and the copy's share reads inside the
             * budget's own aim: at least x BUDGET_UP_ROOM of the rate — of
             * what the copy moved when it kept below its allowance (then
             * the rate does not bind: held) */
            double base = allow > 0 && copy >= BUDGET_USED * allow ? r : ref;
            if (mean <= BUDGET_ROOM && un <= BUDGET_AIM && nr < base * BUDGET_UP_ROOM)
                nr = base * BUDGET_UP_ROOM;
            double up = c->ceiling_bps && c->since_violation < BUDGET_CAREFUL ? BUDGET_UP_CAREFUL
                                                                              : BUDGET_UP_FAST;
            if (nr > r * up)
                nr = r * up;
            /* the edge a violation found is near its rate: climb back to
             * BUDGET_NEAR of it, then probe above slowly — climbing x1.5 a
             * second ran straight back into the overshoot, and each one
             * cost more than its second (bench/impact_net's paced rows
             * swung 9.5 -> 2.6 -> 9.5 MiB/s; on impact_disk's host the
             * guest's writes stayed slow for ~10 s after a burst) */
            if (c->ceiling_bps && c->since_violation < BUDGET_NEAR_MEMORY &&
                r < BUDGET_PAST * (double)c->ceiling_bps) {
                double near = BUDGET_NEAR * (double)c->ceiling_bps;
                double lim = r * BUDGET_UP_NEAR > near ? r * BUDGET_UP_NEAR : near;
                if (nr > lim)
                    nr = lim;
            }
            /* the window's newest interval alone is outside the budget:
             * the window, two thirds older intervals, has yet to show what
             * the rate raised last does — no climb on it (climbing on the
             * diluted window took bench/impact_disk's mirror from 190 to
             * 423 MiB/s into a second that cost the guest for three more,
             * and the cuts after went to 57) */
            double ul = budget_usage_last(b, &c->imp);
            if (ul >= 0 && c->ri)
                ul = (ul - c->ri_usage) / BUDGET_RI_ROOM;
            if (ul > 1.0 && nr > r) {
                nr = r;
                why = "held (the newest interval outside)";
            }
        } else if (nr > r) {
            nr = r; /* above the aim: never up */
        }
        if (outside) /* the learned cost alone: counted, not cut for */
            c->violations++;
        if (c->bverdict != CONV_BUDGET_CONFLICT)
            c->bverdict = outside ? CONV_BUDGET_VIOLATED : CONV_BUDGET_WITHIN;
    }
    if (c->ri && nr < (double)c->ri_bps)
        nr = (double)c->ri_bps; /* cutting below it did not help the guest */
    c->rate_bps = clamp_rate(b, nr);
    uint64_t nb = c->rate_bps;
    budget_note(c, us, aim, ref,
                why             ? why
                : us > 1.0      ? "cut"
                : nb > (uint64_t)r ? "up"
                : nb < (uint64_t)r ? "down"
                                : "held");
}

/* Counts what the steered copies moved since the previous sample (the
 * mirror's bytes while mirror speed is steered, memory's while
 * max-bandwidth is), and at a new measurement closes the interval. */
static void budget_copy_sample(struct conv *c, const struct mig_sample *s, bool new_seq)
{
    const struct conv_budget *b = &c->pol.budget;
    if (c->have_copy_prev) {
        if ((b->steer & CONV_STEER_MIRROR) && s->disk_done > c->disk_done_prev)
            c->copy_bytes += s->disk_done - c->disk_done_prev;
        if ((b->steer & CONV_STEER_BANDWIDTH) && !c->bw_waived &&
            s->ram_transferred > c->ram_tx_prev)
            c->copy_bytes += s->ram_transferred - c->ram_tx_prev;
    } else {
        c->copy_t0_ms = s->t_ms;
    }
    c->have_copy_prev = true;
    c->disk_done_prev = s->disk_done;
    c->ram_tx_prev = s->ram_transferred;
    if (!new_seq || s->t_ms <= c->copy_t0_ms)
        return;
    struct conv_budget_iv *iv = &c->iv[c->n_iv % CONV_BUDGET_IVS];
    iv->copy_bps = (double)c->copy_bytes * 1000.0 / (double)(s->t_ms - c->copy_t0_ms);
    iv->rate_bps = c->rate_bps;
    if (!c->copy_began && iv->copy_bps > 0) {
        c->copy_began = true;
        c->began_iv = c->n_iv;
    }
    c->n_iv++;
    c->copy_bytes = 0;
    c->copy_t0_ms = s->t_ms;
}

/* The guest write cap that lets the mirror drain at half the copy rate:
 * the measured ratio of dirtied to written bytes (the mirror's granularity
 * turns a 4 KiB write into a larger dirty region) is taken into account. */
static uint64_t io_cap(const struct conv *c)
{
    double rate = (double)c->rate_bps;
    double dirty = rate - (c->have_drain ? c->drain_bps : 0); /* bytes/s dirtied */
    double amp = c->imp.wr_bps > 0 && dirty > c->imp.wr_bps ? dirty / c->imp.wr_bps : 1.0;
    double cap = 0.5 * rate / amp;
    return cap < BUDGET_IO_MIN_BPS ? BUDGET_IO_MIN_BPS : (uint64_t)cap;
}

static void tick_budget(struct conv *c, const struct mig_sample *s, uint64_t now_ms,
                        struct emit *e)
{
    const struct conv_budget *b = &c->pol.budget;
    if (!b->enabled || c->done || c->paused || c->postcopy)
        return;
    if (s->phase != MIG_PHASE_ACTIVE && s->phase != MIG_PHASE_SETUP)
        return;
    bool disks = s->disk_total > 0;
    bool mirroring = disks && s->phase == MIG_PHASE_SETUP; /* before READY */
    /* disk drain: how fast what is left to mirror shrinks, bytes/s */
    if (disks) {
        uint64_t rem = s->disk_total > s->disk_done ? s->disk_total - s->disk_done : 0;
        if (c->disk_t_prev && s->t_ms > c->disk_t_prev) {
            double d = ((double)c->disk_rem_prev - (double)rem) * 1000.0 /
                       (double)(s->t_ms - c->disk_t_prev);
            c->drain_bps = c->have_drain ? DRAIN_ALPHA * d + (1 - DRAIN_ALPHA) * c->drain_bps : d;
            c->have_drain = true;
        }
        c->disk_rem_prev = rem;
        c->disk_t_prev = s->t_ms;
    }
    if (c->rate_bps == 0)
        c->rate_bps = b->rate_start_bps;
    bool new_seq = c->imp.seq != c->imp_seq;
    budget_copy_sample(c, s, new_seq);
    if (new_seq) {
        c->imp_seq = c->imp.seq;
        budget_judge(c);
        if (c->ri_report) {
            c->ri_report = false;
            report_budget(c, e, c->bverdict, c->ri_why);
        }
    }

    /* conflict: the copy cannot finish (disks: what is left does not shrink
     * or not in time; memory: the controller is late or stalled) while
     * the budget holds the rate down, or the rate is at its maximum */
    bool binding = c->rate_bps >= b->rate_max_bps ||
                   (c->usage > BUDGET_BINDING && !c->usage_own) ||
                   c->bverdict == CONV_BUDGET_VIOLATED;
    uint64_t left_ms = c->pol.adaptive.deadline_ms > now_ms ? c->pol.adaptive.deadline_ms - now_ms
                                                            : 0;
    bool disk_stuck = false;
    char why[CONV_REASON_MAX] = "";
    if (mirroring && c->have_drain && c->disk_rem_prev > 0) {
        double need_ms = c->drain_bps > 0 ? (double)c->disk_rem_prev * 1000.0 / c->drain_bps : 0;
        disk_stuck = c->drain_bps <= 0.02 * (double)c->rate_bps || need_ms > (double)left_ms;
    }
    /* a mirror held at or below the guest's write rate never empties its
     * dirty bitmap (it sleeps out its quota while the guest dirties more),
     * so QEMU never declares it READY — whatever remaining shows between
     * its iterations */
    if (mirroring && c->imp.wr_bps > 0 && (double)c->rate_bps <= 1.1 * c->imp.wr_bps)
        disk_stuck = true;
    if (disk_stuck)
        snprintf(why, sizeof(why),
                 "disk copy at %.1f MiB/s does not converge: %.1f MiB left, draining at "
                 "%.2f MiB/s (guest writes %.1f MiB/s)",
                 (double)c->rate_bps / 1048576.0, (double)c->disk_rem_prev / 1048576.0,
                 c->drain_bps / 1048576.0, c->imp.wr_bps / 1048576.0);
    bool mem_stuck = !mirroring && s->phase == MIG_PHASE_ACTIVE &&
                     (b->steer & CONV_STEER_BANDWIDTH) && !c->bw_waived &&
                     c->rate_bps < b->rate_max_bps &&
                     (c->late || c->stall.out.reason != STALL_NONE);
    if (mem_stuck)
        snprintf(why, sizeof(why),
                 "memory copy held at %.1f MiB/s by the budget cannot finish by the deadline "
                 "(%s)",
                 (double)c->rate_bps / 1048576.0,
                 c->late ? "late" : stall_reason_name(c->stall.out.reason));
    /* outside the budget even at the minimum rate: holding the copy back
     * does not help the guest (its trouble is elsewhere) */
    bool steering = ((b->steer & CONV_STEER_MIRROR) && disks) ||
                    ((b->steer & CONV_STEER_BANDWIDTH) && !c->bw_waived);
    bool deaf = budget_deaf(c);
    bool floor_bad = steering && (c->rate_bps <= b->rate_min_bps || deaf) &&
                     c->bverdict == CONV_BUDGET_VIOLATED && !mem_stuck &&
                     (!disk_stuck || deaf);
    if (floor_bad && deaf)
        snprintf(why, sizeof(why),
                 "guest outside its budget (usage %.2f) for %u measurements while the copy "
                 "fell from %.1f to %.1f MiB/s: holding the copy back does not help it",
                 c->usage, c->breach_run, (double)c->breach_from_bps / 1048576.0,
                 (double)c->rate_bps / 1048576.0);
    else if (floor_bad)
        snprintf(why, sizeof(why),
                 "guest outside its budget (usage %.2f) even at the minimum copy rate "
                 "%.1f MiB/s: holding the copy back does not help it",
                 c->usage, (double)b->rate_min_bps / 1048576.0);
    bool conflict = (disk_stuck && binding) || mem_stuck || floor_bad;
    if (!conflict) {
        c->conflict_since_ms = 0;
        if (c->bverdict == CONV_BUDGET_CONFLICT) {
            c->bverdict = CONV_BUDGET_WITHIN;
            c->conflict_reported = false;
        }
    } else if (c->conflict_since_ms == 0) {
        c->conflict_since_ms = now_ms ? now_ms : 1;
    } else if (now_ms - c->conflict_since_ms >= b->conflict_ms) {
        if (!c->conflict_reported && !c->io_throttled && !c->waived) {
            report_budget(c, e, CONV_BUDGET_CONFLICT, why);
            c->conflict_reported = true;
        }
        if ((disk_stuck || floor_bad) && !c->waived) {
            /* io throttle: for a guest that writes faster than the copy may
             * go; not when the copy is not what hurts it */
            int g = b->io_throttle && disk_stuck ? gate(c, e, CONV_STEP_IO_THROTTLE, why) : -1;
            if (g == 1) {
                uint64_t cap = io_cap(c);
                if (c->io_throttled) /* capped and still stuck: halve it */
                    cap = c->imp.wr_bps > 0 && (double)cap > c->imp.wr_bps / 2
                              ? (uint64_t)(c->imp.wr_bps / 2)
                              : cap / 2;
                if (cap < BUDGET_IO_MIN_BPS)
                    cap = BUDGET_IO_MIN_BPS;
                struct conv_action *a = push(e, CONV_ACT_SET_IO_THROTTLE);
                if (a) {
                    a->step = CONV_STEP_IO_THROTTLE;
                    a->io_bps = cap;
                    reasonf(a, "guest disk writes capped at %.2f MiB/s so the copy converges",
                            (double)cap / 1048576.0);
                }
                c->io_throttled = true;
                c->bverdict = CONV_BUDGET_IO_THROTTLED;
                c->conflict_since_ms = now_ms ? now_ms : 1; /* judge the cap anew */
            } else if (g < 0) {
                if (b->abort_on_conflict) {
                    char msg[CONV_REASON_MAX];
                    snprintf(msg, sizeof(msg), "impact budget conflict: %.120s", why);
                    act_abort(c, e, msg);
                    return;
                }
                c->waived = true;
                c->rate_bps = b->rate_max_bps;
                report_budget(c, e, CONV_BUDGET_WAIVED,
                              "budget waived to finish: no guest io throttle (refused or not "
                              "offered); copying at the maximum rate");
            }
        }
    }

    /* carry the rate out */
    if ((b->steer & CONV_STEER_MIRROR) && disks && moved(b, c->rate_bps, c->mirror_set_bps)) {
        struct conv_action *a = push(e, CONV_ACT_SET_MIRROR_SPEED);
        if (a) {
            a->bw_bps = c->rate_bps;
            reasonf(a, "%s", c->judge_note);
        }
        c->mirror_set_bps = c->rate_bps;
    }
    if ((b->steer & CONV_STEER_BANDWIDTH) && !c->bw_waived && !mirroring &&
        moved(b, c->rate_bps, c->bw_set_bps)) {
        struct conv_action *a = push(e, CONV_ACT_SET_BANDWIDTH);
        if (a) {
            a->bw_bps = c->rate_bps;
            reasonf(a, "%s", c->judge_note);
        }
        c->bw_set_bps = c->rate_bps;
    }
}

static void tick_adaptive(struct conv *c, const struct mig_sample *s,
                          const struct est_out *est, uint64_t now_ms, struct emit *e)
{
    const struct conv_adaptive *ad = &c->pol.adaptive;
    c->late = false;
    if (s->phase == MIG_PHASE_POSTCOPY)
        c->postcopy = true;
    if (c->postcopy || c->paused)
        return; /* finishing: nothing left to decide, nothing to abort */
    if (s->phase != MIG_PHASE_ACTIVE && s->phase != MIG_PHASE_SETUP)
        return;
    if (c->cur_downtime_ms == 0)
        act_downtime(c, e, ad->downtime_start_ms);

    if (now_ms >= ad->deadline_ms) {
        char why[CONV_REASON_MAX];
        snprintf(why, sizeof(why), "deadline passed: %llu ms elapsed >= deadline %llu ms",
                 (unsigned long long)now_ms, (unsigned long long)ad->deadline_ms);
        act_abort(c, e, why);
        return;
    }
    uint64_t budget = ad->deadline_ms - now_ms;
    /* the highest limit we set: leave room for the device state */
    uint64_t top = ad->downtime_max_ms > ad->headroom_ms
                       ? ad->downtime_max_ms - ad->headroom_ms : 0;
    /* QEMU switches over when remaining <= (bandwidth of its last window) x
     * limit, then sends the rest at the link rate of that moment: when that
     * is lower, the stop is longer. Keep twice the measured jitter. */
    if (est && est->bw_jitter > 0) {
        double j = 6.0 * est->bw_jitter;
        if (j < 0.15)
            j = 0.15;
        top = (uint64_t)((double)top * (1.0 - (j > 0.5 ? 0.5 : j)));
    }
    if (top < ad->downtime_start_ms)
        top = ad->downtime_start_ms;

    bool late = false;
    bool model = est && est->bw_bps > 0 && s->phase == MIG_PHASE_ACTIVE;
    if (model && est->dirty_measured) {
        /* judge with the pessimistic end of the dirty rate: the measured
         * rate lags a busy guest (distinct pages saturate over long
         * periods), and escalating late cannot be undone */
        struct est_out pes = *est;
        pes.dirty_bps = est->dirty_bps * (1.0 + est->spread);
        pes.ratio = pes.dirty_bps / pes.bw_bps;
        uint64_t lo = c->cur_downtime_ms > ad->downtime_start_ms ? c->cur_downtime_ms
                                                                 : ad->downtime_start_ms;
        if (lo > top)
            lo = top;
        uint64_t dt = smallest_downtime(&pes, lo, top, budget);
        if (dt == 0) {
            late = true;
            dt = top; /* nothing within max finishes in time */
        }
        if (dt > c->cur_downtime_ms && dt <= top)
            act_downtime(c, e, dt);
    } else if (model) {
        /* pass 1, dirty rate not yet known: late already if sending what
         * is left (zero pages discounted as the estimator does), at the
         * current rate, does not fit the time left */
        double left = (double)est->ram_remaining;
        if (est->nonzero_hinted)
            left = (double)est->pass1_left_bytes; /* an earlier migration's count */
        else if (est->nonzero_share > 0 && est->nonzero_share < 1)
            left *= est->nonzero_share; /* zero pages cost 9 bytes */
        late = left * 1000.0 / est->bw_bps > (double)budget;
        /* with a dirty-rate hint, plan (not set: the hint is a guess about
         * the working set) the limit the measured rate will probably ask
         * for, so the ETA can account for it */
        c->planned_downtime_ms = 0;
        if (est->dirty_hinted) {
            struct est_out pes = *est;
            pes.dirty_bps = est->dirty_bps * (1.0 + est->spread);
            uint64_t lo = c->cur_downtime_ms > ad->downtime_start_ms ? c->cur_downtime_ms
                                                                     : ad->downtime_start_ms;
            if (lo > top)
                lo = top;
            uint64_t dt = smallest_downtime(&pes, lo, top, budget);
            c->planned_downtime_ms = dt ? dt : top;
        }
    }
    if (model && est->dirty_measured)
        c->planned_downtime_ms = 0;
    c->late = late;
    bool need = late || c->stall.out.reason != STALL_NONE;
    if (!need)
        return;

    while (c->rung < ad->n_ladder) {
        enum conv_step st = ad->ladder[c->rung];
        enum conv_rung_state rs = c->rung_state[st];
        if (rs == CONV_RUNG_ACTIVE) {
            bool settled = now_ms - c->rung_t_ms >= ad->settle_ms &&
                           s->dirty_sync_count >= c->rung_sync + ad->settle_periods;
            if (st == CONV_STEP_THROTTLE && s->throttle_pct < ad->throttle_max_pct &&
                s->throttle_pct > 0)
                settled = false; /* auto-converge still climbing */
            /* bounded: a rung that has not helped in settle_max_ms (or a
             * quarter of the time that was left) gives way to the next */
            uint64_t bound = ad->settle_max_ms;
            uint64_t left_then = ad->deadline_ms > c->rung_t_ms ? ad->deadline_ms - c->rung_t_ms
                                                                : 0;
            if (left_then / 4 < bound)
                bound = left_then / 4;
            if (bound < ad->settle_ms && ad->settle_ms < ad->settle_max_ms)
                bound = ad->settle_ms;
            if (now_ms - c->rung_t_ms >= bound)
                settled = true;
            if (!settled)
                return;
            c->rung++;
            continue;
        }
        if (rs == CONV_RUNG_SKIPPED || !step_applicable(c, st, s)) {
            c->rung_state[st] = CONV_RUNG_SKIPPED;
            c->rung++;
            continue;
        }
        char why[CONV_REASON_MAX];
        snprintf(why, sizeof(why), "%s", late ? "cannot finish by the deadline otherwise"
                                              : stall_reason_name(c->stall.out.reason));
        bool required = c->pol.consent_required[st];
        if (st == CONV_STEP_BANDWIDTH && bw_past_budget(c) && !c->pol.budget.yield_to_ladder) {
            /* raising max-bandwidth past the impact budget hurts the guest:
             * an intrusive step, never taken silently */
            snprintf(why, sizeof(why),
                     "the bandwidth rung would raise max-bandwidth from %.1f MiB/s (the budget's "
                     "rate) to %.1f MiB/s: %s",
                     (double)c->rate_bps / 1048576.0, (double)ad->bw_cap_bps / 1048576.0,
                     late ? "cannot finish by the deadline within the budget"
                          : stall_reason_name(c->stall.out.reason));
            if (c->consent[st] == CONV_CONSENT_NONE) {
                report_budget(c, e, CONV_BUDGET_CONFLICT, why);
                c->conflict_reported = true;
            }
            required = true;
        }
        int g = gate_if(c, e, st, why, required);
        if (g == 0) {
            c->rung_state[st] = CONV_RUNG_WAITING;
            return;
        }
        if (g < 0) {
            c->rung_state[st] = CONV_RUNG_SKIPPED;
            c->rung++;
            continue;
        }
        act_step(c, e, st, s, est);
        c->rung_state[st] = CONV_RUNG_ACTIVE;
        c->rung_t_ms = now_ms;
        c->rung_sync = s->dirty_sync_count;
        return;
    }
    /* ladder exhausted and still not finishing */
    char why[CONV_REASON_MAX];
    if (bw_past_budget(c)) {
        /* the budget holds the copy back and going past it was refused:
         * keep within it until the deadline (its abort) — the model's
         * "late" or a stall at the budget's rate may yet turn; said once */
        if (!c->held_to_deadline) {
            snprintf(why, sizeof(why),
                     "escalation ladder exhausted: keeping within the budget at %.1f MiB/s until "
                     "the deadline (%llu ms), then abort",
                     (double)c->rate_bps / 1048576.0, (unsigned long long)ad->deadline_ms);
            report_budget(c, e, CONV_BUDGET_CONFLICT, why);
            c->conflict_reported = true;
            c->held_to_deadline = true;
        }
        return;
    }
    snprintf(why, sizeof(why), "escalation ladder exhausted: %s",
             late ? "cannot finish by the deadline at the maximum downtime"
                  : stall_reason_name(c->stall.out.reason));
    act_abort(c, e, why);
}

int conv_tick(struct conv *c, const struct mig_sample *s, const struct est_out *est,
              uint64_t now_ms, struct conv_action *out, size_t max, size_t *n_out)
{
    if (n_out)
        *n_out = 0;
    if (!c || !s || !out || !n_out || max < CONV_ACTIONS_MAX ||
        (unsigned)s->phase >= MIG_PHASE__COUNT)
        return FERR_INVAL;
    if (now_ms < c->last_t_ms || (c->stall.have_sample && s->t_ms < c->stall.last_t_ms))
        return FERR_INVAL;
    c->last_t_ms = now_ms;
    struct emit e = {out, max, 0};
    if (c->done)
        return 0;
    if (mig_phase_is_terminal(s->phase)) {
        c->done = true;
        return 0;
    }
    if (stall_update(&c->stall, s, est) == 0) {
        const struct stall_out *so = &c->stall.out;
        if (so->reason == STALL_NONE) {
            c->stall_reported = false;
        } else if (!c->stall_reported) {
            struct conv_action *a = push(&e, CONV_ACT_REPORT_STALL);
            if (a) {
                a->stall = so->reason;
                reasonf(a, "stalled (%s) since %llu ms: dirty/bandwidth %.2f over %llu "
                           "sync periods",
                        stall_reason_name(so->reason), (unsigned long long)so->since_ms,
                        so->ratio, (unsigned long long)so->periods);
            }
            c->stall_reported = true;
        }
    }
    switch (c->pol.kind) {
    case CONV_NOVA:
        tick_nova(c, s, now_ms, &e);
        break;
    case CONV_SCHEDULE:
        tick_schedule(c, s, &e);
        break;
    case CONV_ADAPTIVE:
    default:
        tick_adaptive(c, s, est, now_ms, &e);
        tick_budget(c, s, now_ms, &e);
        break;
    }
    *n_out = e.n;
    return 0;
}

int conv_consent(struct conv *c, enum conv_step step, bool granted)
{
    if (!c || (unsigned)step >= CONV_STEP__COUNT)
        return FERR_INVAL;
    if (c->consent[step] == CONV_CONSENT_GRANTED || c->consent[step] == CONV_CONSENT_REFUSED)
        return FERR_STATE;
    c->consent[step] = granted ? CONV_CONSENT_GRANTED : CONV_CONSENT_REFUSED;
    return 0;
}

int conv_future_downtime(const struct conv *c, struct est_sched_step *sched, size_t max,
                         size_t *n)
{
    *n = 0;
    if (c->pol.kind == CONV_ADAPTIVE) {
        if (c->done || c->paused || c->postcopy || c->planned_downtime_ms <= c->cur_downtime_ms)
            return 0;
        if (max < 1)
            return FERR_TOOBIG;
        sched[0].t_ms = c->last_t_ms + 1;
        sched[0].downtime_ms = c->planned_downtime_ms;
        *n = 1;
        return 0;
    }
    if (c->pol.kind != CONV_NOVA)
        return 0;
    size_t k = 0;
    for (size_t i = 0; i < c->n_nsteps; i++) {
        uint64_t t = c->nsteps[i].t_s * 1000 + 1; /* acts once elapsed > t_s */
        if (t <= c->last_t_ms)
            continue;
        if (k >= max)
            return FERR_TOOBIG;
        sched[k].t_ms = t;
        sched[k].downtime_ms = c->nsteps[i].downtime_ms;
        k++;
    }
    *n = k;
    return 0;
}

uint64_t conv_next_event_ms(const struct conv *c)
{
    uint64_t t = UINT64_MAX, now = c->last_t_ms;
    if (c->done)
        return t;
    if (c->pol.kind == CONV_NOVA) {
        for (size_t i = 0; i < c->n_nsteps; i++) {
            uint64_t ts = c->nsteps[i].t_s * 1000 + 1; /* acts once elapsed > t_s */
            if (ts > now) {
                t = ts;
                break;
            }
        }
        if (c->nova_timeout_s && !c->timeout_fired && c->nova_timeout_s * 1000 + 1 > now &&
            c->nova_timeout_s * 1000 + 1 < t)
            t = c->nova_timeout_s * 1000 + 1;
    } else if (c->pol.kind == CONV_ADAPTIVE) {
        const struct conv_adaptive *ad = &c->pol.adaptive;
        if (ad->deadline_ms > now)
            t = ad->deadline_ms;
        if (c->rung < ad->n_ladder && c->rung_state[ad->ladder[c->rung]] == CONV_RUNG_ACTIVE) {
            /* settle_ms, then the bound after which the rung gives way
             * whatever the periods say (conv_tick's rule) */
            uint64_t bound = ad->settle_max_ms;
            uint64_t left_then = ad->deadline_ms > c->rung_t_ms ? ad->deadline_ms - c->rung_t_ms : 0;
            if (left_then / 4 < bound)
                bound = left_then / 4;
            if (bound < ad->settle_ms && ad->settle_ms < ad->settle_max_ms)
                bound = ad->settle_ms;
            if (c->rung_t_ms + ad->settle_ms > now && c->rung_t_ms + ad->settle_ms < t)
                t = c->rung_t_ms + ad->settle_ms;
            else if (c->rung_t_ms + bound > now && c->rung_t_ms + bound < t)
                t = c->rung_t_ms + bound;
        }
    }
    return t;
}

const char *conv_act_name(enum conv_act_kind k)
{
    static const char *const names[CONV_ACT__COUNT] = {
        "set_downtime",      "set_bandwidth",   "set_throttle",    "start_postcopy",
        "pause_guest",       "abort",           "request_consent", "report_stall",
        "set_mirror_speed",  "set_io_throttle", "report_budget"};
    return (unsigned)k < CONV_ACT__COUNT ? names[k] : "unknown";
}

const char *conv_step_name(enum conv_step s)
{
    static const char *const names[CONV_STEP__COUNT] = {"bandwidth", "throttle", "postcopy",
                                                        "pause", "io_throttle"};
    return (unsigned)s < CONV_STEP__COUNT ? names[s] : "unknown";
}

const char *conv_kind_name(enum conv_kind k)
{
    static const char *const names[CONV__KIND_COUNT] = {"nova", "schedule", "adaptive"};
    return (unsigned)k < CONV__KIND_COUNT ? names[k] : "unknown";
}

/* Impact budget of the adaptive policy (core/conv.c): usage of one
 * measurement, the copy rate's steering to the budget's edge (one step and in
 * closed loop against a modelled guest: quiet, busy, turning sensitive, caps), the
 * conflict report and the consent-gated io throttle step, waiver or abort
 * on refusal, bandwidth steering handed to the ladder, invalid budgets. */
#include <math.h>
#include <string.h>

#include "../lib/test.h"
#include "core/conv.h"
#include "util/ferr.h"

#define MIB 1048576u

static struct conv_policy policy(uint32_t tput_pct, double ratio, uint64_t p99_us)
{
    struct conv_policy p;
    conv_policy_default(&p, CONV_ADAPTIVE);
    p.adaptive.deadline_ms = 600000;
    conv_budget_default(&p.budget);
    p.budget.min_throughput_pct = tput_pct;
    p.budget.max_p99_ratio = ratio;
    p.budget.max_p99_us = p99_us;
    p.budget.rate_min_bps = 1 * MIB;
    p.budget.rate_max_bps = 256 * MIB;
    p.budget.rate_start_bps = 16 * MIB;
    return p;
}

/* A measurement: baseline 10 MiB/s, 100 IOPS, p99 2 ms; now as given. */
static struct conv_impact imp(uint64_t seq, double mibps, double p99_ms, uint64_t ops)
{
    struct conv_impact m;
    memset(&m, 0, sizeof(m));
    m.seq = seq;
    m.have_baseline = true;
    m.base_bps = 10.0 * MIB;
    m.base_iops = 100;
    m.base_p99_us = 2000;
    m.bps = mibps * MIB;
    m.wr_bps = m.bps / 2;
    m.iops = (double)ops;
    m.p99_us = p99_ms * 1000.0;
    m.ops = ops;
    return m;
}

/* Proves: usage is 0 at the baseline, 1 at the bound, the largest of the
 * judged criteria, and -1 when nothing can be judged. */
static void t_usage(void)
{
    static const struct {
        uint32_t pct;
        double ratio;
        uint64_t p99_us;
        double mibps, p99_ms;
        uint64_t ops;
        bool baseline;
        double want; /* -1: not judged */
    } c[] = {
        {80, 0, 0, 10, 2, 100, true, 0},       /* as the baseline */
        {80, 0, 0, 8, 2, 100, true, 1.0},      /* lost 20 % of 20 % allowed */
        {80, 0, 0, 9, 2, 100, true, 0.5},      /* lost 10 % */
        {80, 0, 0, 12, 2, 100, true, 0},       /* above the baseline: 0 */
        {0, 2.0, 0, 10, 4, 100, true, 1.0},    /* p99 2x of 2x allowed */
        {0, 2.0, 0, 10, 3, 100, true, 0.5},    /* p99 1.5x */
        {0, 3.0, 0, 10, 8, 100, true, 1.5},    /* p99 4x of 3x: (4-1)/(3-1) */
        {80, 2.0, 0, 9, 4, 100, true, 1.0},    /* the larger of 0.5 and 1.0 */
        {0, 0, 5000, 10, 10, 100, false, 2.0}, /* absolute: 10 ms of 5 ms */
        {0, 2.0, 0, 10, 4, 100, false, -1},    /* relative without baseline */
        {0, 2.0, 0, 0, 0, 0, true, -1},        /* no requests: no p99 to judge */
        {80, 0, 0, 0, 0, 0, true, 5.0},        /* busy baseline, now stopped */
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = policy(c[i].pct, c[i].ratio, c[i].p99_us);
        struct conv_impact m = imp(1, c[i].mibps, c[i].p99_ms, c[i].ops);
        m.have_baseline = c[i].baseline;
        double u = conv_budget_usage(&p.budget, &m);
        double want = c[i].want;
        CHECK(fabs(u - want) < 1e-9, "case %zu: usage %.3f, want %.3f", i, u, want);
    }
    /* quiet before and now: -1 */
    struct conv_policy p = policy(80, 2.0, 0);
    struct conv_impact m = imp(1, 0, 0, 0);
    m.base_iops = 1;
    CHECK(conv_budget_usage(&p.budget, &m) < 0, "quiet guest judged");
}

struct tick_out {
    uint64_t mirror_bps; /* last SET_MIRROR_SPEED, 0 none */
    uint64_t bw_bps;     /* last SET_BANDWIDTH, 0 none */
    uint64_t io_bps;     /* last SET_IO_THROTTLE, 0 none */
    int conflict;        /* REPORT_BUDGET with CONFLICT seen */
    int waived;          /* REPORT_BUDGET with WAIVED seen */
    int consent_io;      /* REQUEST_CONSENT io_throttle seen */
    int aborted;
    int rate_indep;      /* REPORT_BUDGET "rate_independent: ..." seen */
};

/* A sample during the disk mirror phase: rem bytes left of 1 GiB. */
static struct mig_sample mirror_sample(uint64_t t_ms, uint64_t rem)
{
    struct mig_sample s;
    memset(&s, 0, sizeof(s));
    s.t_ms = t_ms;
    s.phase = MIG_PHASE_SETUP;
    s.ram_total = 256u * MIB;
    s.ram_remaining = s.ram_total;
    s.disk_total = 1024u * MIB;
    s.disk_done = s.disk_total - rem;
    return s;
}

static void tick(struct conv *c, const struct mig_sample *s, struct tick_out *o)
{
    struct conv_action a[CONV_ACTIONS_MAX];
    size_t n = 0;
    if (conv_tick(c, s, NULL, s->t_ms, a, CONV_ACTIONS_MAX, &n) != 0) {
        test__fail(__FILE__, __LINE__, "conv_tick", "tick at %llu failed",
                   (unsigned long long)s->t_ms);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        switch (a[i].kind) {
        case CONV_ACT_SET_MIRROR_SPEED:
            o->mirror_bps = a[i].bw_bps;
            break;
        case CONV_ACT_SET_BANDWIDTH:
            o->bw_bps = a[i].bw_bps;
            break;
        case CONV_ACT_SET_IO_THROTTLE:
            o->io_bps = a[i].io_bps;
            break;
        case CONV_ACT_REPORT_BUDGET:
            if (a[i].budget == CONV_BUDGET_CONFLICT)
                o->conflict++;
            if (a[i].budget == CONV_BUDGET_WAIVED)
                o->waived++;
            if (strncmp(a[i].reason, "rate_independent:", 17) == 0)
                o->rate_indep++;
            break;
        case CONV_ACT_REQUEST_CONSENT:
            if (a[i].step == CONV_STEP_IO_THROTTLE)
                o->consent_io++;
            break;
        case CONV_ACT_ABORT:
            o->aborted++;
            break;
        default:
            break;
        }
    }
}

/* Proves: one measurement moves the rate to the budget's edge from what
 * the copy actually moved: up with room (x4 far below the aim, never down
 * with room), a little down above the aim, straight to aim/usage (at least
 * x0.5) outside the budget, x4 for a quiet guest; a rate just raised is
 * not raised again on a window that saw the lower one; a cap above what
 * the copy manages is cut from what it managed; never outside [min, max];
 * one measurement judged once. */
static void t_steer(void)
{
    static const struct {
        double mibps, p99_ms;
        uint64_t ops;
        uint64_t start_mib;
        uint64_t copy_mib; /* the mirror moved this in the 1 s measured */
        double lo, hi;     /* new rate / start rate must be within */
    } c[] = {
        {10, 2.0, 100, 16, 16, 4.0, 4.0},     /* usage 0: x4 */
        {10, 3.0, 100, 16, 16, 1.5, 1.5},     /* usage 0.5, the first: (0.9/0.5)^0.6
                                                 = 1.42 (aim 0.75 + 0.15, the
                                                 account 0.25 unspent), but the
                                                 account has room: x1.5 */
        {10, 3.8, 100, 16, 16, 0.89, 0.90},   /* usage 0.9: (0.75/0.9)^0.6 */
        {10, 6.0, 100, 16, 16, 0.5, 0.5},     /* usage 2: x0.5 (0.375 floored) */
        {5, 2.0, 100, 16, 16, 0.5, 0.5},      /* throughput halved: usage 2.5 */
        {10, 4.4, 100, 16, 16, 0.62, 0.63},   /* usage 1.2: x0.75/1.2 */
        {10, 2.0, 1, 16, 16, 4.0, 4.0},       /* quiet now and before: x4 */
        {10, 2.0, 100, 256, 200, 1.0, 1.0},   /* at the maximum: stays */
        {10, 100.0, 100, 1, 1, 1.0, 1.0},     /* at the floor: stays */
        {10, 3.0, 100, 16, 10, 1.0, 1.0},     /* copy at 10 of 16: 12.8 < 16, held */
        {10, 6.0, 100, 256, 100, 0.19, 0.20}, /* cap 256, copy 100, usage 2: 50 */
        {10, 3.0, 100, 64, 1, 1.5, 1.5},      /* idle copy: on its allowance */
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = policy(80, 2.0, 0);
        p.budget.rate_start_bps = c[i].start_mib * MIB;
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        struct tick_out o = {0};
        struct mig_sample s = mirror_sample(0, 1000u * MIB);
        tick(&cv, &s, &o); /* first rate, no measurement yet */
        CHECK(o.mirror_bps == c[i].start_mib * MIB, "case %zu: start speed %llu", i,
              (unsigned long long)o.mirror_bps);
        struct conv_impact m = imp(1, c[i].mibps, c[i].p99_ms, c[i].ops);
        if (c[i].ops == 1)
            m.base_iops = 1; /* quiet baseline */
        REQUIRE(conv_set_impact(&cv, &m) == 0, "set impact");
        s = mirror_sample(1000, (1000u - c[i].copy_mib) * MIB);
        tick(&cv, &s, &o);
        double f = (double)cv.rate_bps / (double)(c[i].start_mib * MIB);
        CHECK(f >= c[i].lo - 1e-3 && f <= c[i].hi + 1e-3,
              "case %zu: rate x%.3f not in [%.2f, %.2f]", i, f, c[i].lo, c[i].hi);
        CHECK(cv.rate_bps >= p.budget.rate_min_bps && cv.rate_bps <= p.budget.rate_max_bps,
              "case %zu: rate %llu out of bounds", i, (unsigned long long)cv.rate_bps);
        /* the same measurement is judged once only */
        uint64_t r = cv.rate_bps;
        s = mirror_sample(1250, (999u - c[i].copy_mib) * MIB);
        tick(&cv, &s, &o);
        CHECK(cv.rate_bps == r, "case %zu: re-judged an old measurement", i);
    }
}

/* A closed loop: the guest's usage in an interval is the copy's rate over
 * edge_mibs (the budget's edge) plus noise, the copy goes at the rate set
 * up to cap_mibs (what QEMU manages), the measurement covers the newest 3
 * intervals (as the agent's); 4 samples per 1 s interval. Runs n
 * intervals from *q on, returns the rates after each in rates[]. */
struct plant {
    double edge_mibs;  /* copy rate at usage 1; 0: quiet guest */
    double cap_mibs;   /* the copy's own limit */
    double noise;      /* usage noise amplitude (deterministic) */
    double u[3];       /* the last intervals' usage */
    uint64_t q;        /* measurement seq */
    uint64_t t_ms;
    uint64_t done;     /* bytes mirrored */
};

static void run_plant(struct conv *cv, struct plant *pl, size_t n, uint64_t *rates,
                      struct tick_out *o, double *umax)
{
    for (size_t i = 0; i < n; i++) {
        double copy = (double)cv->rate_bps / MIB;
        if (copy > pl->cap_mibs)
            copy = pl->cap_mibs;
        for (int k = 0; k < 4; k++) {
            pl->t_ms += 250;
            pl->done += (uint64_t)(copy * MIB / 4);
            if (k < 3) {
                struct mig_sample s = mirror_sample(pl->t_ms, 0);
                s.disk_total = 1ull << 40;
                s.disk_done = pl->done;
                tick(cv, &s, o);
            }
        }
        double un = pl->edge_mibs > 0 ? copy / pl->edge_mibs : 0;
        un += pl->noise * ((pl->q % 3) == 0 ? 1 : -0.5); /* mean 0 */
        pl->u[2] = pl->u[1];
        pl->u[1] = pl->u[0];
        pl->u[0] = un < 0 ? 0 : un;
        double uw = (pl->u[0] + pl->u[1] + pl->u[2]) / 3;
        if (umax && uw > *umax)
            *umax = uw;
        /* usage uw as p99: base 2 ms, bound 2x */
        struct conv_impact m = imp(++pl->q, 10, 2.0 * (1.0 + uw), pl->edge_mibs > 0 ? 100 : 0);
        if (pl->edge_mibs <= 0)
            m.base_iops = 0; /* quiet before and now */
        m.window = 3;
        (void)!conv_set_impact(cv, &m);
        struct mig_sample s = mirror_sample(pl->t_ms, 0);
        s.disk_total = 1ull << 40;
        s.disk_done = pl->done;
        tick(cv, &s, o);
        rates[i] = cv->rate_bps;
    }
}

/* Proves, in closed loop against a guest whose hurt grows with the copy
 * rate: a quiet guest lets the rate rise to the cap; a busy one is steered
 * to its edge (settles between 0.6 and 1.0 of it, the window's usage
 * inside the budget once settled) whatever the start; when the guest turns
 * sensitive the rate backs off to within 10 % of its new edge in 2
 * measurements, and with room again
 * climbs at most x1.5 per measurement for a while; the operator's floor
 * and cap are never crossed. */
static void t_loop(void)
{
    static const struct {
        const char *what;
        double edge, cap, noise;
        uint64_t start_mib, min_mib, max_mib;
        size_t n;
        double lo, hi;   /* final rate, MiB/s, within */
    } c[] = {
        {"quiet guest: to the cap", 0, 1000, 0, 8, 1, 512, 5, 512, 512},
        {"edge 100, start 8", 100, 1000, 0, 8, 1, 512, 12, 60, 100},
        {"edge 100, start 8, noisy", 100, 1000, 0.15, 8, 1, 512, 12, 55, 100},
        {"edge 100, start at the cap", 100, 1000, 0, 512, 1, 512, 12, 60, 100},
        {"edge 400, copy manages 200: flat out", 400, 200, 0, 8, 1, 512, 10, 200, 512},
        {"edge 100, operator's cap 64", 100, 1000, 0, 8, 1, 64, 10, 64, 64},
        {"edge 1, operator's floor 4", 1, 1000, 0, 8, 4, 512, 10, 4, 4},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = policy(0, 2.0, 0);
        p.adaptive.deadline_ms = 100000000;
        p.budget.rate_start_bps = c[i].start_mib * MIB;
        p.budget.rate_min_bps = c[i].min_mib * MIB;
        p.budget.rate_max_bps = c[i].max_mib * MIB;
        p.budget.io_throttle = false;
        p.budget.conflict_ms = 1000000; /* here: the rate only */
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        struct tick_out o = {0};
        struct plant pl = {.edge_mibs = c[i].edge, .cap_mibs = c[i].cap, .noise = c[i].noise};
        uint64_t rates[32];
        double umax = 0;
        run_plant(&cv, &pl, c[i].n, rates, &o, NULL);
        for (size_t k = 0; k < c[i].n; k++)
            CHECK(rates[k] >= c[i].min_mib * MIB && rates[k] <= c[i].max_mib * MIB,
                  "%s: rate %.1f MiB/s outside [%llu, %llu]", c[i].what,
                  (double)rates[k] / MIB, (unsigned long long)c[i].min_mib,
                  (unsigned long long)c[i].max_mib);
        double last = (double)rates[c[i].n - 1] / MIB;
        CHECK(last >= c[i].lo - 0.01 && last <= c[i].hi + 0.01,
              "%s: settled at %.1f MiB/s, want %.0f..%.0f", c[i].what, last, c[i].lo, c[i].hi);
        if (c[i].edge >= 100 && c[i].cap > c[i].edge && c[i].max_mib > c[i].edge) {
            /* settled: inside the budget (the noisy one's peaks aside) */
            run_plant(&cv, &pl, 8, rates, &o, &umax);
            CHECK(umax <= 1.0 + 1.5 * c[i].noise, "%s: settled usage up to %.2f", c[i].what,
                  umax);
            /* the guest turns sensitive: its edge falls to 30 MiB/s */
            pl.edge_mibs = 30;
            run_plant(&cv, &pl, 3, rates, &o, NULL);
            CHECK((double)rates[1] / MIB <= 33.0, "%s: %.1f MiB/s 2 measurements after the "
                  "edge fell to 30", c[i].what, (double)rates[1] / MIB);
            /* room again: after a violation the rate climbs carefully */
            pl.edge_mibs = 1000;
            uint64_t prev = rates[2];
            run_plant(&cv, &pl, 4, rates, &o, NULL);
            for (size_t k = 0; k < 4; k++) {
                CHECK((double)rates[k] <= 1.5 * (double)prev + 1,
                      "%s: x%.2f in one measurement after a violation", c[i].what,
                      (double)rates[k] / (double)prev);
                prev = rates[k];
            }
            CHECK(rates[3] > rates[0], "%s: no climb with room after a violation", c[i].what);
        }
    }
}

/* Initialises cv with policy p starting at start_mib MiB/s and ticks the
 * first mirror sample (the start rate set, nothing measured yet). */
static bool start_mirror(struct conv *cv, const struct conv_policy *p, uint64_t start_mib,
                         struct tick_out *o)
{
    struct conv_policy q = *p;
    q.budget.rate_start_bps = start_mib * MIB;
    if (conv_init(cv, &q, NULL) != 0)
        return false;
    struct mig_sample s = mirror_sample(0, 1000u * MIB);
    tick(cv, &s, o);
    return true;
}

/* Proves: an overshoot measured over a window that still holds seconds
 * from before the copy began is not the copy's doing: the rate is kept
 * until the window (3 intervals) holds the copy only, then cut. */
static void t_early_window(void)
{
    struct conv_policy p = policy(0, 2.0, 0);
    struct conv cv;
    struct tick_out o = {0};
    REQUIRE(start_mirror(&cv, &p, 64, &o), "init");
    struct mig_sample s;
    uint64_t rates[3];
    for (uint64_t q = 1; q <= 3; q++) {
        struct conv_impact m = imp(q, 10, 6.0, 100); /* usage 2 */
        m.window = 3;
        REQUIRE(conv_set_impact(&cv, &m) == 0, "impact");
        s = mirror_sample(q * 1000, (1000u - 64u * q) * MIB);
        tick(&cv, &s, &o);
        rates[q - 1] = cv.rate_bps;
    }
    CHECK(rates[0] == 64u * MIB && rates[1] == 64u * MIB, "cut on a window before the copy: "
          "%.1f %.1f MiB/s", (double)rates[0] / MIB, (double)rates[1] / MIB);
    CHECK(rates[2] == 32u * MIB, "not cut once the window held the copy only: %.1f MiB/s",
          (double)rates[2] / MIB);
    CHECK(cv.violations == 1, "%llu violations counted", (unsigned long long)cv.violations);
}

/* Proves: a reading inside the aim on a window that still holds
 * intervals before the copy began is judged on the copy's own intervals —
 * what it moved in them, its share of the usage scaled up to them: little
 * hurt climbs x4 from the rate the copy ran at (not from the window's
 * diluted mean copy), a share that is over the aim once undiluted is
 * held, not raised; a full window is judged as before. */
static void t_early_ramp(void)
{
    static const struct {
        double u1, u2;    /* window usage after 1 and 2 copy intervals */
        double r1, r2;    /* rate after each, MiB/s */
    } c[] = {
        /* 0.06 undiluted: x4 of 16 (old: x4 of 16/3); then the copy's two
         * intervals moved 16 and 64: x4 of their mean, 40 (old: 21, 50) */
        {0.02, 0.02, 64, 160},
        /* 0.9 undiluted, over the aim: held (old: held too); then 0.03 on
         * two intervals at 16: x4 (old: x4 of 32/3, 43) */
        {0.30, 0.02, 16, 64},
        /* 0.6 against the aim 0.9 (the account unspent): (0.9/0.6)^0.6 =
         * 1.27, but the account has room: x1.5; then 0.6 x 3/2 = 0.9,
         * at the aim: held */
        {0.20, 0.60, 24, 24},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = policy(0, 2.0, 0);
        struct conv cv;
        struct tick_out o = {0};
        REQUIRE(start_mirror(&cv, &p, 16, &o), "init");
        struct mig_sample s;
        uint64_t done = 0;
        double got[2];
        for (uint64_t q = 1; q <= 2; q++) {
            done += cv.rate_bps; /* the copy moved at the rate set */
            struct conv_impact m = imp(q, 10, 2.0 * (1.0 + (q == 1 ? c[i].u1 : c[i].u2)), 100);
            m.window = 3;
            REQUIRE(conv_set_impact(&cv, &m) == 0, "impact");
            s = mirror_sample(q * 1000, 1000u * MIB - done);
            tick(&cv, &s, &o);
            got[q - 1] = (double)cv.rate_bps / MIB;
        }
        CHECK(fabs(got[0] - c[i].r1) < 0.5 && fabs(got[1] - c[i].r2) < 0.5,
              "case %zu: rates %.1f, %.1f MiB/s, want %.0f, %.0f", i, got[0], got[1], c[i].r1,
              c[i].r2);
    }
}

/* Proves: readings held to be the guest's own (the mirror has not moved
 * yet: the destination starting) do not make the budget bind — a start
 * rate below the guest's write rate is no conflict while they last (it
 * was: waived after conflict_ms, the mirror sent to its maximum on the
 * destination's start-up); once the mirror moves at that rate and the
 * guest reads over the binding mark, the conflict comes as before. */
static void t_early_no_conflict(void)
{
    struct conv_policy p = policy(80, 0, 0);
    p.budget.io_throttle = false;
    p.budget.abort_on_conflict = false;
    struct conv cv;
    struct tick_out o = {0};
    REQUIRE(start_mirror(&cv, &p, 8, &o), "init");
    struct mig_sample s;
    uint64_t q = 0, t = 0;
    /* 8 s with the mirror standing still, the guest at usage 0.9 (it
     * writes 16 MiB/s, over the 8 MiB/s start) */
    for (int k = 0; k < 8; k++) {
        t += 1000;
        struct conv_impact m = imp(++q, 8.2, 2.0, 100);
        m.wr_bps = 16.0 * MIB;
        m.window = 3;
        REQUIRE(conv_set_impact(&cv, &m) == 0, "impact");
        s = mirror_sample(t, 1000u * MIB);
        tick(&cv, &s, &o);
    }
    CHECK(o.conflict == 0 && o.waived == 0 && cv.rate_bps == 8u * MIB,
          "before the mirror moved: %d conflicts, %d waivers, %.1f MiB/s", o.conflict, o.waived,
          (double)cv.rate_bps / MIB);
    /* the mirror moves at 8 MiB/s, the guest still at 0.9: stuck and bound */
    uint64_t rem = 1000u * MIB;
    for (int k = 0; k < 9 && !o.conflict; k++) {
        t += 1000;
        rem -= 8u * MIB;
        struct conv_impact m = imp(++q, 8.2, 2.0, 100);
        m.wr_bps = 16.0 * MIB;
        m.window = 3;
        REQUIRE(conv_set_impact(&cv, &m) == 0, "impact");
        s = mirror_sample(t, rem);
        tick(&cv, &s, &o);
    }
    CHECK(o.conflict == 1, "a mirror bound below the guest's writes: %d conflicts", o.conflict);
}

/* Drives one measurement of window usage u (p99 = base x (1 + u) against a
 * 2x bound) after an interval in which the mirror moved at the rate set;
 * returns the rate after it. */
static uint64_t judge_window(struct conv *cv, uint64_t q, double u, uint64_t *done)
{
    *done += cv->rate_bps;
    struct conv_impact m = imp(q, 10, 2.0 * (1.0 + u), 100);
    m.window = 3;
    (void)!conv_set_impact(cv, &m);
    struct mig_sample s = mirror_sample(q * 1000, 0);
    s.disk_total = 1ull << 40;
    s.disk_done = *done;
    struct tick_out o = {0};
    tick(cv, &s, &o);
    return cv->rate_bps;
}

/* Proves: the aim follows the migration's account — after readings that
 * spent little of the budget a reading of 0.85 is room (the rate held at
 * its maximum), while readings of 0.85 all along bring the rate down (the
 * account is spent: aim 0.75); the aim is never above 0.9 (0.95 is above
 * it, whatever is unspent); a window outside the budget is held while the
 * account's mean stays inside the aim, and cut to 0.75/usage of the copy
 * once it does not or the window is acutely outside (over 2). */
static void t_account(void)
{
    static const struct {
        double first;   /* usage of the first five readings */
        double then;    /* the sixth */
        double lo, hi;  /* rate after it, MiB/s */
    } c[] = {
        {0.10, 0.85, 32, 32},     /* aim 0.9: room, stays at the maximum */
        {0.85, 0.85, 1, 29.8},    /* account spent: down, x(0.75/0.85)^0.6 or more */
        {0.10, 0.95, 30, 31},     /* aim at most 0.9: (0.9/0.95)^0.6 x 32 */
        {0.10, 1.20, 32, 32},     /* breach, mean 0.28: absorbed, held */
        {0.75, 1.20, 19.5, 20.5}, /* breach, mean 0.83: x0.75/1.2 of 32 */
        {0.10, 2.50, 16, 16},     /* acute: x0.5 (0.3 floored), mean aside */
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = policy(0, 2.0, 0);
        p.budget.rate_max_bps = 32u * MIB;
        struct conv cv;
        struct tick_out o = {0};
        REQUIRE(start_mirror(&cv, &p, 32, &o), "init");
        uint64_t done = 0, q = 0;
        for (int k = 0; k < 5; k++)
            (void)judge_window(&cv, ++q, c[i].first, &done);
        if (c[i].first < 0.75)
            CHECK(cv.rate_bps == 32u * MIB, "case %zu: %.1f MiB/s before, want the maximum", i,
                  (double)cv.rate_bps / MIB);
        double r = (double)judge_window(&cv, ++q, c[i].then, &done) / MIB;
        CHECK(r >= c[i].lo - 1e-3 && r <= c[i].hi + 1e-3, "case %zu: %.2f MiB/s, want %.1f .. %.1f",
              i, r, c[i].lo, c[i].hi);
    }
}

/* Proves: a window inside the aim whose newest interval alone is outside
 * the budget does not raise the rate (the rate raised last has yet to show
 * in the window); the same window with a newest interval inside, or
 * without one, raises it; neither cuts. */
static void t_last_interval(void)
{
    static const struct {
        bool have_last;
        double last_p99_ms; /* base 2 ms, bound 2x */
        bool rises;
    } c[] = {
        {true, 5.0, false}, /* newest second at usage 1.5: held */
        {true, 3.0, true},  /* newest at 0.5: up */
        {false, 0, true},   /* unknown: up, as before */
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = policy(0, 2.0, 0);
        struct conv cv;
        struct tick_out o = {0};
        REQUIRE(start_mirror(&cv, &p, 16, &o), "init");
        struct mig_sample s;
        uint64_t done = 0, q = 0;
        for (int k = 0; k < 3; k++) /* a full window at usage 0.9: no climb */
            (void)judge_window(&cv, ++q, 0.9, &done);
        uint64_t before = cv.rate_bps;
        done += cv.rate_bps;
        struct conv_impact m = imp(++q, 10, 2.0 * 1.3, 100); /* window usage 0.3 */
        m.window = 3;
        m.have_last = c[i].have_last;
        m.last_bps = 10.0 * MIB;
        m.last_p99_us = c[i].last_p99_ms * 1000.0;
        m.last_ops = 30;
        REQUIRE(conv_set_impact(&cv, &m) == 0, "impact");
        s = mirror_sample(q * 1000, 0);
        s.disk_total = 1ull << 40;
        s.disk_done = done;
        tick(&cv, &s, &o);
        if (c[i].rises)
            CHECK(cv.rate_bps > before, "case %zu: %.1f -> %.1f MiB/s, want up", i,
                  (double)before / MIB, (double)cv.rate_bps / MIB);
        else
            CHECK(cv.rate_bps == before, "case %zu: %.1f -> %.1f MiB/s, want held", i,
                  (double)before / MIB, (double)cv.rate_bps / MIB);
        CHECK(cv.violations == 0, "case %zu: %llu violations", i,
              (unsigned long long)cv.violations);
    }
}

/* Proves: while the migration's account is inside its aim, windows
 * outside the budget (up to 2) are absorbed — the rate held, each counted
 * as a violation, no edge set for a careful climb (nothing was cut) — but
 * no more than three in a row,
 * the span of one interval: the fourth is cut for; a window inside resets
 * the run. With the account's mean at most 0.6 a reading inside the aim
 * climbs at least x1.5 where the proportional step is smaller (0.7 against
 * 0.9: x1.16). */
static void t_absorb(void)
{
    struct conv_policy p = policy(0, 2.0, 0);
    struct conv cv;
    struct tick_out o = {0};
    REQUIRE(start_mirror(&cv, &p, 16, &o), "init");
    uint64_t done = 0, q = 0;
    for (int k = 0; k < 6; k++) /* usage 0.1: up to the maximum */
        (void)judge_window(&cv, ++q, 0.1, &done);
    (void)judge_window(&cv, ++q, 0.3, &done);
    CHECK(cv.rate_bps == 256 * MIB, "%.1f MiB/s, want the maximum", (double)cv.rate_bps / MIB);
    for (int k = 0; k < 3; k++) {
        uint64_t r = judge_window(&cv, ++q, 1.4, &done);
        CHECK(r == 256 * MIB, "window %d outside: %.1f MiB/s, want held", k,
              (double)r / MIB);
    }
    CHECK(cv.violations == 3 && cv.ceiling_bps == 0, "%llu violations, ceiling %.1f",
          (unsigned long long)cv.violations, (double)cv.ceiling_bps / MIB);
    uint64_t r4 = judge_window(&cv, ++q, 1.4, &done);
    CHECK(r4 < 256 * MIB * 0.6, "fourth in a row: %.1f MiB/s, want cut to 0.75/1.4",
          (double)r4 / MIB);

    /* the room climb, from a rate well below the maximum */
    p.budget.rate_max_bps = 1024 * MIB;
    REQUIRE(start_mirror(&cv, &p, 8, &o), "init");
    done = 0;
    q = 0;
    for (int k = 0; k < 3; k++) /* usage 0.3: about x1.9 each */
        (void)judge_window(&cv, ++q, 0.3, &done);
    uint64_t before = cv.rate_bps;
    REQUIRE(before < 100 * MIB, "%.1f MiB/s before", (double)before / MIB);
    uint64_t after = judge_window(&cv, ++q, 0.7, &done);
    CHECK(fabs((double)after / (double)before - 1.5) < 0.01,
          "0.7 with the account's mean at 0.4: x%.3f, want x1.5",
          (double)after / (double)before);
    /* then the account's mean past 0.6: no more room climb */
    for (int k = 0; k < 10; k++)
        (void)judge_window(&cv, ++q, 0.8, &done);
    before = cv.rate_bps;
    after = judge_window(&cv, ++q, 0.7, &done);
    CHECK((double)after < 1.2 * (double)before,
          "0.7 with the account spent: x%.3f, want the proportional step",
          (double)after / (double)before);
}

/* Starts cv at 64 MiB/s (policy: p99 x2 only) and judges one full window
 * of copy at the aim: the steady state the edge cases below start from. */
static bool settle_at_aim(struct conv *cv, struct tick_out *o, uint64_t *done, uint64_t *q)
{
    struct conv_policy p = policy(0, 2.0, 0);
    if (!start_mirror(cv, &p, 64, o))
        return false;
    for (int k = 0; k < 3; k++)
        (void)judge_window(cv, ++*q, 0.75, done);
    return true;
}

/* Proves: after a violation at a rate, the climb with room goes back to
 * 0.8 of that rate at the careful pace and from there to 1.2 of it by at
 * most x1.1 per measurement (it used to go on at x1.5 straight back into
 * the overshoot); past 1.2 of it, or 20 measurements after the violation,
 * the climb is free again. */
static void t_near_edge(void)
{
    struct conv cv;
    struct tick_out o = {0};
    uint64_t done = 0, q = 0;
    REQUIRE(settle_at_aim(&cv, &o, &done, &q), "init");
    double max_bps = (double)cv.pol.budget.rate_max_bps;
    (void)judge_window(&cv, ++q, 1.5, &done); /* outside at 64: cut */
    CHECK(cv.ceiling_bps == 64u * MIB && cv.rate_bps < 64u * MIB, "no cut: %.1f MiB/s",
          (double)cv.rate_bps / MIB);
    for (int k = 0; k < 2; k++) /* the windows that still hold it */
        (void)judge_window(&cv, ++q, 1.0, &done);
    double prev = (double)cv.rate_bps, near = 0.8 * 64 * MIB;
    bool reached = false, freed = false;
    for (int k = 0; k < 14; k++) {
        double r = (double)judge_window(&cv, ++q, 0.1, &done);
        if (r > near + 1 && prev < 1.2 * 64 * MIB)
            CHECK(r <= 1.1 * (prev > near ? prev : near) + 1,
                  "step %d: %.1f -> %.1f MiB/s above 0.8 of the violation's 64", k, prev / MIB,
                  r / MIB);
        reached = reached || r >= near;
        if (prev >= 1.2 * 64 * MIB && (r > 1.1 * prev + 1 || r >= max_bps))
            freed = true;
        prev = r;
    }
    CHECK(reached, "never back to 0.8 of 64: %.1f MiB/s", prev / MIB);
    CHECK(freed, "past 1.2 of 64 still probing x1.1: %.1f MiB/s", prev / MIB);
    for (int k = 0; k < 8; k++) /* past the memory: free again */
        (void)judge_window(&cv, ++q, 0.1, &done);
    double r0 = (double)cv.rate_bps, r1 = (double)judge_window(&cv, ++q, 0.1, &done);
    CHECK(r1 > 1.1 * r0 || r1 >= max_bps, "still slow: %.1f -> %.1f MiB/s",
          r0 / MIB, r1 / MIB);
}

/* Proves: a second violation read while the rate is already cut keeps,
 * as the rate it came at, the fastest copy in its window — not the rate
 * just cut to (which set the climb back's 0.8 mark too low). */
static void t_ceiling_hurt(void)
{
    struct conv cv;
    struct tick_out o = {0};
    uint64_t done = 0, q = 0;
    REQUIRE(settle_at_aim(&cv, &o, &done, &q), "init");
    (void)judge_window(&cv, ++q, 1.5, &done); /* outside at 64: cut */
    uint64_t cut = cv.rate_bps;
    (void)judge_window(&cv, ++q, 2.0, &done); /* worse, window holds 64: cut again */
    CHECK(cut < 64u * MIB && cv.rate_bps < cut, "cuts %.1f, %.1f MiB/s", (double)cut / MIB,
          (double)cv.rate_bps / MIB);
    CHECK(cv.ceiling_bps == 64u * MIB, "ceiling %.1f MiB/s, want the 64 the copy went",
          (double)cv.ceiling_bps / MIB);
}

/* Proves: once the copy has moved through a whole window, an interval in
 * which it made no progress (a mirror's uneven progress at a low speed)
 * does not make the window "before the copy" again — a reading outside
 * the budget then is cut for, not held as the guest's own (which kept a
 * mirror at its 8 MiB/s start for 48 s in bench/impact_disk). */
static void t_early_once(void)
{
    struct conv cv;
    struct tick_out o = {0};
    uint64_t done = 0, q = 0;
    REQUIRE(settle_at_aim(&cv, &o, &done, &q), "init");
    /* an interval without progress, the guest outside */
    struct conv_impact m = imp(++q, 10, 2.0 * 2.5, 100); /* usage 1.5 */
    m.window = 3;
    REQUIRE(conv_set_impact(&cv, &m) == 0, "impact");
    struct mig_sample s = mirror_sample(q * 1000, 0);
    s.disk_total = 1ull << 40;
    s.disk_done = done;
    tick(&cv, &s, &o);
    CHECK(cv.rate_bps < 64u * MIB && cv.violations == 1,
          "held at %.1f MiB/s, %llu violations", (double)cv.rate_bps / MIB,
          (unsigned long long)cv.violations);
}

/* Proves: one bad interval is answered by one cut, not by one per
 * overlapping window — the two windows after the cut still hold it and
 * read no worse, so the rate holds (counted as violations, the careful
 * climb counts from the last of them); a window that reads worse than the
 * one cut on (the copy at the new rate hurts more) is cut again; once the
 * window has moved past the cut's interval a new overshoot is cut. */
static void t_dead_time(void)
{
    static const struct {
        const char *what;
        double u[7];     /* window usage per measurement from the 4th on */
        int cuts;        /* rate cuts expected over the 7 */
    } c[] = {
        {"one spike: one cut, held twice", {2.0, 1.8, 1.4, 0.3, 0.3, 0.3, 0.3}, 1},
        {"worse after the cut: cut again", {2.0, 2.6, 1.4, 0.3, 0.3, 0.3, 0.3}, 2},
        {"a new overshoot past the window", {2.0, 1.8, 1.4, 2.0, 0.3, 0.3, 0.3}, 2},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = policy(0, 2.0, 0);
        p.adaptive.deadline_ms = 100000000;
        p.budget.rate_start_bps = 64u * MIB;
        p.budget.io_throttle = false;
        p.budget.conflict_ms = 1000000;
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        struct tick_out o = {0};
        struct mig_sample s = mirror_sample(0, 0);
        s.disk_total = 1ull << 40;
        tick(&cv, &s, &o);
        uint64_t done = 0, q = 0;
        for (int k = 0; k < 3; k++) /* at the aim: the rate stays */
            (void)judge_window(&cv, ++q, 0.75, &done);
        REQUIRE(cv.rate_bps == 64u * MIB, "%s: rate %.1f before the spike", c[i].what,
                (double)cv.rate_bps / MIB);
        int cuts = 0;
        uint64_t prev = cv.rate_bps, first_cut = 0;
        for (int k = 0; k < 7; k++) {
            uint64_t r = judge_window(&cv, ++q, c[i].u[k], &done);
            if (r < prev) {
                cuts++;
                if (!first_cut)
                    first_cut = r;
            }
            if (c[i].u[k] <= 0.75 && k >= 3)
                CHECK((double)r <= 1.5 * (double)prev + 1,
                      "%s: x%.2f within 5 measurements of a violation", c[i].what,
                      (double)r / (double)prev);
            prev = r;
        }
        CHECK(cuts == c[i].cuts, "%s: %d cuts, want %d", c[i].what, cuts, c[i].cuts);
        CHECK(first_cut == 32u * MIB, "%s: first cut to %.1f MiB/s, want 32 (x0.75/2)", c[i].what,
              (double)first_cut / MIB);
        CHECK(cv.violations == 3 + (c[i].u[3] > 1.0), "%s: %llu violations", c[i].what,
              (unsigned long long)cv.violations);
    }
}

/* Proves: a guest that stays outside its budget while the copy is cut 8x
 * (its trouble is elsewhere: the machine) is seen as such after 4
 * violations: the rate is cut no further (not down to the floor), the
 * conflict is reported after conflict_ms and the budget waived. */
static void t_deaf(void)
{
    struct conv_policy p = policy(0, 2.0, 0);
    p.adaptive.deadline_ms = 100000000;
    p.budget.rate_start_bps = 64u * MIB;
    p.budget.io_throttle = false;
    struct conv cv;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    struct tick_out o = {0};
    uint64_t done = 0, seq = 0, lowest = UINT64_MAX, t_conflict = 0;
    for (uint64_t t = 0; t <= 12000; t += 250) {
        if (t % 1000 == 0 && t) {
            struct conv_impact m = imp(++seq, 10, 6.0, 100); /* usage 2 whatever the rate */
            (void)!conv_set_impact(&cv, &m);
        }
        done += cv.rate_bps ? cv.rate_bps / 4 : 0; /* the mirror goes at the rate */
        struct mig_sample s = mirror_sample(t, 0);
        s.disk_total = 1ull << 40;
        s.disk_done = done;
        int before = o.conflict;
        tick(&cv, &s, &o);
        if (o.conflict && !before)
            t_conflict = t;
        if (!o.waived && cv.rate_bps < lowest)
            lowest = cv.rate_bps;
    }
    CHECK(lowest >= 8u * MIB, "cut to %.1f MiB/s, past 1/8 of the 64 that first hurt",
          (double)lowest / MIB);
    CHECK(o.conflict >= 1 && t_conflict >= 4000 + p.budget.conflict_ms - 1000 &&
              t_conflict <= 4000 + p.budget.conflict_ms + 1000,
          "conflict %d at %llu ms", o.conflict, (unsigned long long)t_conflict);
    CHECK(o.waived == 1, "not waived (%d)", o.waived);
}

/* Proves: an impossible budget (the guest outside it even at the floor)
 * is still reported as a conflict and waived (no io throttle offered). */
static void t_loop_impossible(void)
{
    struct conv_policy p = policy(0, 2.0, 0);
    p.adaptive.deadline_ms = 100000000;
    p.budget.rate_start_bps = 8u * MIB;
    p.budget.rate_min_bps = 4u * MIB;
    p.budget.io_throttle = false;
    struct conv cv;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    struct tick_out o = {0};
    struct plant pl = {.edge_mibs = 1, .cap_mibs = 1000};
    uint64_t rates[16];
    run_plant(&cv, &pl, 14, rates, &o, NULL);
    CHECK(o.conflict >= 1, "no conflict reported on an impossible budget");
    CHECK(o.waived == 1, "not waived (%d)", o.waived);
}

/* Drives a mirror that never shrinks (the guest dirties as fast as the
 * budget lets the copy go: it copies at the rate set, and as much is
 * dirtied again) with the guest outside its budget, for t_end ms; consent
 * for io_throttle answered at t_ans (grant: 1, refuse: 0, never: -1). */
static void drive_stuck(struct conv *cv, uint64_t t_end, uint64_t t_ans, int grant,
                        struct tick_out *o, uint64_t *t_conflict, uint64_t *t_io)
{
    uint64_t seq = 0, moved = 0;
    for (uint64_t t = 0; t <= t_end; t += 250) {
        if (t % 1000 == 0) {
            /* p99 at 2.4x the baseline: usage 1.4 until the cap is on */
            struct conv_impact m = imp(++seq, 10, 4.8, 100);
            (void)!conv_set_impact(cv, &m);
        }
        if (t == t_ans && grant >= 0)
            (void)!conv_consent(cv, CONV_STEP_IO_THROTTLE, grant == 1);
        struct mig_sample s = mirror_sample(t, 512u * MIB); /* not shrinking */
        s.disk_total += moved;
        s.disk_done += moved;
        moved += cv->rate_bps / 4;
        int before = o->conflict;
        uint64_t io_before = o->io_bps;
        tick(cv, &s, o);
        if (o->conflict && !before && t_conflict)
            *t_conflict = t;
        if (o->io_bps && !io_before && t_io)
            *t_io = t;
    }
}

/* Proves: a stuck mirror under a binding budget is reported as a conflict
 * (after conflict_ms, not before), consent for io_throttle is requested and
 * the cap is never set before it is granted; granted, the cap is set once
 * and is below the copy rate. */
static void t_conflict_grant(void)
{
    struct conv_policy p = policy(0, 2.0, 0);
    struct conv cv;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    struct tick_out o = {0};
    uint64_t t_conflict = 0, t_io = 0;
    drive_stuck(&cv, 30000, 20000, 1, &o, &t_conflict, &t_io);
    CHECK(o.conflict == 1, "conflict reported %d times", o.conflict);
    CHECK(t_conflict >= p.budget.conflict_ms, "conflict reported at %llu ms, before %llu ms",
          (unsigned long long)t_conflict, (unsigned long long)p.budget.conflict_ms);
    CHECK(o.consent_io == 1, "io_throttle consent asked %d times", o.consent_io);
    CHECK(t_io >= 20000, "io throttle at %llu ms, before consent at 20000 ms",
          (unsigned long long)t_io);
    CHECK(o.io_bps > 0 && o.io_bps < cv.rate_bps, "io cap %llu vs rate %llu",
          (unsigned long long)o.io_bps, (unsigned long long)cv.rate_bps);
    CHECK(conv_budget_verdict(&cv) == CONV_BUDGET_IO_THROTTLED, "verdict %s",
          conv_budget_verdict_name(conv_budget_verdict(&cv)));
    CHECK(!o.aborted && !o.waived, "aborted or waived");
}

/* Proves: without an answer the io throttle never happens and the verdict
 * stays budget_conflict; refused, the budget is waived (said so) and the
 * copy goes at the maximum — or the migration aborts when the policy says
 * abort_on_conflict; with io_throttle not offered, the same at once. */
static void t_conflict_refuse(void)
{
    static const struct {
        int grant;      /* -1: never answered */
        bool offer;     /* budget.io_throttle */
        bool abort_pol; /* budget.abort_on_conflict */
        int want_waived, want_abort;
        enum conv_budget_verdict verdict;
    } c[] = {
        {-1, true, false, 0, 0, CONV_BUDGET_CONFLICT}, {0, true, false, 1, 0, CONV_BUDGET_WAIVED},
        {0, true, true, 0, 1, CONV_BUDGET_CONFLICT},   {-1, false, false, 1, 0, CONV_BUDGET_WAIVED},
        {-1, false, true, 0, 1, CONV_BUDGET_CONFLICT},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = policy(0, 2.0, 0);
        p.budget.io_throttle = c[i].offer;
        p.budget.abort_on_conflict = c[i].abort_pol;
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        struct tick_out o = {0};
        drive_stuck(&cv, 30000, 10000, c[i].grant, &o, NULL, NULL);
        CHECK(o.io_bps == 0, "case %zu: io throttle without consent", i);
        CHECK(o.conflict == 1, "case %zu: conflict reported %d times", i, o.conflict);
        CHECK(o.waived == c[i].want_waived, "case %zu: waived %d", i, o.waived);
        CHECK(o.aborted == c[i].want_abort, "case %zu: aborted %d", i, o.aborted);
        CHECK(conv_budget_verdict(&cv) == c[i].verdict, "case %zu: verdict %s", i,
              conv_budget_verdict_name(conv_budget_verdict(&cv)));
        if (c[i].want_waived)
            CHECK(o.mirror_bps == p.budget.rate_max_bps, "case %zu: waived at %llu", i,
                  (unsigned long long)o.mirror_bps);
    }
}

/* Proves: a mirror held at or below the guest's write rate is a conflict
 * even when its remaining reads 0 between iterations (QEMU never declares
 * it READY); a guest outside its budget even at the minimum rate is a
 * conflict too, waived at once without offering the io throttle (the copy
 * is not what hurts it). */
static void t_conflict_kinds(void)
{
    struct conv_policy p = policy(0, 2.0, 0);
    p.budget.rate_start_bps = 4u * MIB;
    p.budget.rate_max_bps = 4u * MIB; /* at its maximum: binding */
    struct conv cv;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    struct tick_out o = {0};
    uint64_t seq = 0;
    for (uint64_t t = 0; t <= 10000; t += 250) {
        if (t % 1000 == 0) {
            struct conv_impact m = imp(++seq, 10, 2.0, 100); /* inside; writes 5 MiB/s */
            (void)!conv_set_impact(&cv, &m);
        }
        struct mig_sample s = mirror_sample(t, 0); /* remaining reads 0 */
        tick(&cv, &s, &o);
    }
    CHECK(o.conflict == 1 && o.consent_io == 1, "slow mirror: conflict %d, consent %d", o.conflict,
          o.consent_io);
    p = policy(0, 2.0, 0);
    p.budget.rate_start_bps = p.budget.rate_min_bps;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    memset(&o, 0, sizeof(o));
    seq = 0;
    for (uint64_t t = 0; t <= 10000; t += 250) {
        if (t % 1000 == 0) {
            struct conv_impact m = imp(++seq, 0.5, 8.0, 100); /* usage 3, writes little */
            (void)!conv_set_impact(&cv, &m);
        }
        struct mig_sample s = mirror_sample(t, 512u * MIB - t * 1000);
        tick(&cv, &s, &o);
    }
    CHECK(o.conflict == 1 && o.waived == 1 && o.consent_io == 0,
          "at the floor: conflict %d, waived %d, consent %d", o.conflict, o.waived, o.consent_io);
}

/* Proves: a mirror that drains is no conflict even when the budget holds
 * the rate down; a guest inside its budget (usage 0.1) sees the rate climb
 * well past what the mirror manages (16 MiB/s here): the budget is not
 * what holds it. */
static void t_no_conflict(void)
{
    struct conv_policy p = policy(80, 2.0, 0);
    struct conv cv;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    struct tick_out o = {0};
    uint64_t rem = 1000u * MIB, seq = 0;
    for (uint64_t t = 0; t <= 30000; t += 250) {
        if (t % 1000 == 0) {
            struct conv_impact m = imp(++seq, 10, 2.2, 100);
            (void)!conv_set_impact(&cv, &m);
        }
        struct mig_sample s = mirror_sample(t, rem);
        tick(&cv, &s, &o);
        rem = rem > 4u * MIB ? rem - 4u * MIB : 0;
    }
    CHECK(o.conflict == 0 && o.consent_io == 0, "conflict on a draining mirror");
    CHECK(conv_budget_verdict(&cv) == CONV_BUDGET_WITHIN, "verdict %s",
          conv_budget_verdict_name(conv_budget_verdict(&cv)));
    CHECK(o.mirror_bps >= 3u * 16u * MIB, "rate %.1f MiB/s, under 3x the mirror's 16",
          (double)o.mirror_bps / MIB);
    CHECK(o.bw_bps == 0, "bandwidth steered though steer is mirror only");
}

enum bw_mode { BW_UNANSWERED, BW_GRANT, BW_REFUSE, BW_YIELD };

/* Runs a late migration whose max-bandwidth the budget holds down (the
 * guest is hurt: 3x its p99) through 30 s with consent answered per mode. */
static void bw_run(enum bw_mode mode)
{
    struct conv_policy p = policy(0, 2.0, 0);
    p.budget.steer = CONV_STEER_BANDWIDTH;
    p.budget.yield_to_ladder = mode == BW_YIELD;
    p.adaptive.bw_cap_bps = 512u * MIB;
    p.adaptive.deadline_ms = 40000;
    struct conv cv;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    uint64_t seq = 0, low = UINT64_MAX, high = 0;
    bool rung = false, asked_bw = false, asked_throttle = false, aborted = false;
    int conflict = 0, conflict_before_ask = 0;
    for (uint64_t t = 0; t <= 30000; t += 500) {
        if (t % 1000 == 0) {
            struct conv_impact m = imp(++seq, 10, 6.0, 100); /* 3x: violated */
            (void)!conv_set_impact(&cv, &m);
        }
        struct mig_sample s;
        memset(&s, 0, sizeof(s));
        s.t_ms = t;
        s.phase = MIG_PHASE_ACTIVE;
        s.ram_total = 1u << 30;
        s.ram_remaining = 300u * MIB;
        s.ram_transferred = t * 1000;
        s.dirty_sync_count = 1;
        s.setting_max_bw_bps = cv.bw_set_bps ? cv.bw_set_bps : 16u * MIB;
        struct est_out e;
        memset(&e, 0, sizeof(e));
        e.bw_bps = (double)s.setting_max_bw_bps;
        e.ram_remaining = s.ram_remaining;
        e.ram_total = s.ram_total;
        e.t_ms = t;
        struct conv_action a[CONV_ACTIONS_MAX];
        size_t n = 0;
        REQUIRE(conv_tick(&cv, &s, &e, t, a, CONV_ACTIONS_MAX, &n) == 0, "tick");
        for (size_t i = 0; i < n; i++) {
            if (a[i].kind == CONV_ACT_SET_BANDWIDTH && a[i].step == CONV_STEP_BANDWIDTH &&
                a[i].bw_bps == p.adaptive.bw_cap_bps) {
                rung = true;
            } else if (a[i].kind == CONV_ACT_SET_BANDWIDTH) {
                CHECK(!rung, "budget lowered max-bandwidth after the bandwidth rung");
                if (a[i].bw_bps < low)
                    low = a[i].bw_bps;
                if (a[i].bw_bps > high)
                    high = a[i].bw_bps;
            }
            if (a[i].kind == CONV_ACT_REPORT_BUDGET && a[i].budget == CONV_BUDGET_CONFLICT) {
                conflict++;
                if (!asked_bw)
                    conflict_before_ask++;
                CHECK(strlen(a[i].reason) > 0, "conflict without a reason");
            }
            if (a[i].kind == CONV_ACT_REQUEST_CONSENT && a[i].step == CONV_STEP_BANDWIDTH) {
                CHECK(!asked_bw, "bandwidth consent asked twice");
                asked_bw = true;
                CHECK(strstr(a[i].reason, "budget") != NULL, "consent reason: %s",
                      a[i].reason);
                if (mode == BW_GRANT)
                    CHECK(conv_consent(&cv, CONV_STEP_BANDWIDTH, true) == 0, "grant");
                if (mode == BW_REFUSE)
                    CHECK(conv_consent(&cv, CONV_STEP_BANDWIDTH, false) == 0, "refuse");
            }
            if (a[i].kind == CONV_ACT_REQUEST_CONSENT && a[i].step == CONV_STEP_THROTTLE) {
                asked_throttle = true;
                CHECK(conv_consent(&cv, CONV_STEP_THROTTLE, false) == 0, "refuse throttle");
            }
            if (a[i].kind == CONV_ACT_ABORT)
                aborted = true;
            CHECK(a[i].kind != CONV_ACT_SET_MIRROR_SPEED, "mirror speed without disks");
        }
    }
    CHECK(low <= p.budget.rate_start_bps / 2, "budget did not back off (lowest %llu)",
          (unsigned long long)low);
    CHECK(high <= p.budget.rate_start_bps, "budget raised a violated guest's rate to %llu",
          (unsigned long long)high);
    switch (mode) {
    case BW_UNANSWERED:
        CHECK(asked_bw && conflict_before_ask >= 1, "asked %d, conflict %d", asked_bw,
              conflict_before_ask);
        CHECK(!rung, "bandwidth rung raised past the budget without consent");
        CHECK(!asked_throttle && !aborted, "ladder went on while consent was pending");
        break;
    case BW_GRANT:
        CHECK(asked_bw && conflict >= 2, "asked %d, conflict reported %d times", asked_bw,
              conflict);
        CHECK(rung, "granted bandwidth rung did not act");
        break;
    case BW_REFUSE:
        CHECK(asked_bw && conflict >= 1, "asked %d, conflict reported %d times", asked_bw,
              conflict);
        CHECK(!rung, "refused bandwidth rung acted");
        CHECK(asked_throttle, "ladder did not go on to throttle");
        /* postcopy unavailable, pause refused? pause asked and pending:
         * the guest stays within its budget, no abort before the deadline */
        CHECK(!aborted, "aborted before the deadline");
        CHECK(conv_budget_verdict(&cv) == CONV_BUDGET_CONFLICT ||
                  conv_budget_verdict(&cv) == CONV_BUDGET_VIOLATED,
              "verdict %s", conv_budget_verdict_name(conv_budget_verdict(&cv)));
        break;
    case BW_YIELD:
        CHECK(!asked_bw, "consent asked though the operator let the budget yield");
        CHECK(rung && conflict == 1, "rung %d, conflict reported %d times", rung, conflict);
        break;
    }
}

/* Proves: steering max-bandwidth (memory phase) follows the budget; the
 * ladder's BANDWIDTH rung, which would raise it past the budget, reports
 * budget_conflict and waits for consent (unanswered: neither raises nor
 * climbs on); granted it acts and the budget no longer lowers it. */
static void t_bandwidth(void)
{
    bw_run(BW_UNANSWERED);
    bw_run(BW_GRANT);
}

/* Proves: a refused bandwidth rung is skipped for the next (throttle, with
 * its own consent) and the rate stays within the budget; the operator's
 * yield_to_ladder lets the rung act without consent, reported. */
static void t_bandwidth_refuse_yield(void)
{
    bw_run(BW_REFUSE);
    bw_run(BW_YIELD);
}

/* Proves: with every rung refused, a late migration held by the budget
 * stays within it until the deadline (said once), then aborts there. */
static void t_bandwidth_hold_to_deadline(void)
{
    struct conv_policy p = policy(0, 2.0, 0);
    p.budget.steer = CONV_STEER_BANDWIDTH;
    p.adaptive.bw_cap_bps = 512u * MIB;
    p.adaptive.deadline_ms = 20000;
    p.adaptive.n_ladder = 1; /* bandwidth only */
    struct conv cv;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    CHECK(conv_consent(&cv, CONV_STEP_BANDWIDTH, false) == 0, "refuse ahead");
    uint64_t seq = 0, abort_t = 0;
    int held = 0;
    for (uint64_t t = 0; t <= 25000 && !abort_t; t += 500) {
        struct conv_impact m = imp(++seq, 10, 3.0, 100); /* 1.5x: inside */
        (void)!conv_set_impact(&cv, &m);
        struct mig_sample s;
        memset(&s, 0, sizeof(s));
        s.t_ms = t;
        s.phase = MIG_PHASE_ACTIVE;
        s.ram_total = 1u << 30;
        s.ram_remaining = 900u * MIB;
        s.dirty_sync_count = 1;
        s.setting_max_bw_bps = cv.bw_set_bps ? cv.bw_set_bps : 16u * MIB;
        struct est_out e;
        memset(&e, 0, sizeof(e));
        e.bw_bps = 2.0 * MIB;
        e.ram_remaining = s.ram_remaining;
        e.ram_total = s.ram_total;
        e.t_ms = t;
        struct conv_action a[CONV_ACTIONS_MAX];
        size_t n = 0;
        REQUIRE(conv_tick(&cv, &s, &e, t, a, CONV_ACTIONS_MAX, &n) == 0, "tick");
        for (size_t i = 0; i < n; i++) {
            if (a[i].kind == CONV_ACT_REPORT_BUDGET && a[i].budget == CONV_BUDGET_CONFLICT &&
                strstr(a[i].reason, "until the deadline"))
                held++;
            if (a[i].kind == CONV_ACT_ABORT)
                abort_t = t;
            CHECK(!(a[i].kind == CONV_ACT_SET_BANDWIDTH && a[i].bw_bps == p.adaptive.bw_cap_bps),
                  "refused rung raised max-bandwidth");
        }
    }
    CHECK(held == 1, "hold-to-deadline reported %d times", held);
    CHECK(abort_t == p.adaptive.deadline_ms, "aborted at %llu ms, deadline %llu ms",
          (unsigned long long)abort_t, (unsigned long long)p.adaptive.deadline_ms);
}

/* Proves: a READY mirror that only trickles (the guest's writes, held
 * down by a budget) does not push the ETA of the memory copy out: its
 * rest goes at the link rate at switchover, not at the trickle rate. */
static void t_eta_trickle(void)
{
    struct est e;
    struct est_params ep;
    memset(&ep, 0, sizeof(ep));
    est_init(&e, &ep);
    for (uint64_t t = 0; t <= 6000; t += 250) { /* mirror phase, 100 MiB/s */
        struct mig_sample s = mirror_sample(t, 0);
        uint64_t done = t * 100u * MIB / 1000u;
        s.disk_total = 512u * MIB;
        s.disk_done = done < s.disk_total ? done : s.disk_total;
        REQUIRE(est_update(&e, &s) == 0, "update %llu", (unsigned long long)t);
    }
    for (uint64_t t = 6250; t <= 30000; t += 250) { /* memory at 100 MiB/s, disk trickles */
        struct mig_sample s;
        memset(&s, 0, sizeof(s));
        s.t_ms = t;
        s.phase = MIG_PHASE_ACTIVE;
        s.ram_total = 256u * MIB;
        s.ram_transferred = (t - 6000) * 100u * MIB / 1000u;
        s.ram_remaining =
            s.ram_transferred + 8u * MIB < s.ram_total ? s.ram_total - s.ram_transferred : 8u * MIB;
        s.bw_bps = 100u * MIB;
        s.dirty_sync_count = 1 + (t - 6000) / 3000;
        s.disk_total = 512u * MIB + 2u * MIB;                   /* written since READY */
        s.disk_done = 512u * MIB + ((t - 6000) / 1000) * 4096u; /* 4 KiB/s trickle */
        REQUIRE(est_update(&e, &s) == 0, "update %llu", (unsigned long long)t);
    }
    struct est_out o;
    est_get(&e, &o);
    CHECK(o.eta_known && o.eta_ms < 60000, "ETA %s%llu ms with a trickling READY mirror",
          o.eta_known ? "" : "(unknown) ", (unsigned long long)o.eta_ms);
}

/* Proves: the memory copy's first rate counts from when memory starts
 * moving, not from the start of a disk mirror that ran 20 s before it
 * (that read as a link of a few KiB/s, and the adaptive policy, judging
 * itself late at the first ACTIVE sample, aborted the migration). */
static void t_rate_after_mirror(void)
{
    struct est e;
    struct est_params ep;
    memset(&ep, 0, sizeof(ep));
    est_init(&e, &ep);
    struct conv_policy p = policy(80, 2.0, 0);
    p.adaptive.deadline_ms = 400000;
    struct conv cv;
    struct ferr err;
    REQUIRE(conv_init(&cv, &p, &err) == 0, "init: %s", err.msg);
    struct tick_out o;
    memset(&o, 0, sizeof(o));
    for (uint64_t t = 0; t <= 20000; t += 1000) { /* mirror phase, 50 MiB/s */
        struct mig_sample s = mirror_sample(t, 1024u * MIB - t * 50u * MIB / 1000u);
        REQUIRE(est_update(&e, &s) == 0, "update %llu", (unsigned long long)t);
    }
    struct mig_sample s;
    memset(&s, 0, sizeof(s));
    s.t_ms = 20250; /* READY; memory moved 40 MiB in its first 250 ms */
    s.phase = MIG_PHASE_ACTIVE;
    s.ram_total = 256u * MIB;
    s.ram_transferred = 40u * MIB;
    s.ram_remaining = s.ram_total - s.ram_transferred;
    s.disk_total = s.disk_done = 1024u * MIB;
    REQUIRE(est_update(&e, &s) == 0, "first ACTIVE sample");
    struct est_out eo;
    est_get(&e, &eo);
    CHECK(eo.bw_bps > 100.0 * MIB, "first memory rate %.2f MiB/s, want ~160",
          eo.bw_bps / MIB);
    struct conv_action a[CONV_ACTIONS_MAX];
    size_t n = 0;
    REQUIRE(conv_tick(&cv, &s, &eo, s.t_ms, a, CONV_ACTIONS_MAX, &n) == 0, "tick");
    for (size_t i = 0; i < n; i++)
        CHECK(a[i].kind != CONV_ACT_ABORT, "aborted: %s", a[i].reason);
}

/* Proves: invalid budgets are rejected with the field named, and a budget
 * is refused outside the adaptive policy. */
static void t_invalid(void)
{
    struct conv cv;
    struct ferr e;
    struct conv_policy p = policy(0, 0, 0);
    CHECK(conv_init(&cv, &p, &e) == FERR_INVAL, "budget without criteria accepted");
    p = policy(101, 0, 0);
    CHECK(conv_init(&cv, &p, &e) == FERR_INVAL, "101 %% accepted");
    p = policy(0, 1.0, 0);
    CHECK(conv_init(&cv, &p, &e) == FERR_INVAL && strcmp(e.field, "max_p99_latency_ratio") == 0,
          "ratio 1.0 accepted");
    p = policy(80, 0, 0);
    p.budget.rate_start_bps = p.budget.rate_max_bps * 2;
    CHECK(conv_init(&cv, &p, &e) == FERR_INVAL, "start above max accepted");
    p = policy(80, 0, 0);
    p.budget.steer = 0;
    CHECK(conv_init(&cv, &p, &e) == FERR_INVAL, "steer 0 accepted");
    p = policy(80, 0, 0);
    p.kind = CONV_NOVA;
    CHECK(conv_init(&cv, &p, &e) == FERR_INVAL, "budget under nova accepted");
    p = policy(80, 0, 0);
    p.adaptive.ladder[0] = CONV_STEP_IO_THROTTLE;
    CHECK(conv_init(&cv, &p, &e) == FERR_INVAL, "io_throttle in the memory ladder accepted");
    p = policy(80, 2.0, 0);
    CHECK(conv_init(&cv, &p, &e) == 0, "a valid budget refused: %s", e.msg);
    CHECK(strcmp(conv_step_name(CONV_STEP_IO_THROTTLE), "io_throttle") == 0, "step name");
    CHECK(strcmp(conv_budget_verdict_name(CONV_BUDGET_CONFLICT), "budget_conflict") == 0,
          "verdict name");
}

/* Proves: the throughput criterion's steps count the usage above the
 * guest's own noise floor (its baseline's low-quartile window): a reading
 * just above that floor is far below the aim for the copy (x4, not the x1.36
 * the whole usage would give), one above the aim is cut harder; without a
 * floor, with the floor at or above the baseline, or when the p99
 * criterion sets the usage, the steps are as before; a floor over 0.5 is
 * counted as 0.5. */
static void t_floor(void)
{
    static const struct {
        double ratio;      /* p99 criterion, 0: throughput only */
        double low_mibps;  /* baseline low-quartile window, of 10; 0 unknown */
        double mibps;      /* now */
        double p99_ms;     /* now (base 2 ms) */
        double lo, hi;     /* new rate / start rate */
    } c[] = {
        {0, 9.2, 9.1, 2.0, 3.20, 3.22},   /* u 0.45, floor 0.4: (0.35/0.05)^0.6 */
        {0, 0, 9.1, 2.0, 1.35, 1.36},     /* no floor: (0.75/0.45)^0.6 */
        {0, 9.2, 8.2, 2.0, 0.80, 0.81},   /* u 0.9: (0.35/0.5)^0.6 */
        {0, 0, 8.2, 2.0, 0.89, 0.90},     /* no floor: (0.75/0.9)^0.6 */
        {0, 10.5, 9.1, 2.0, 1.35, 1.36},  /* floor above the baseline: none */
        {0, 8.0, 9.1, 2.0, 4.0, 4.0},     /* floor 1.0 counted 0.5: u below it, x4 */
        {0, 8.0, 8.6, 2.0, 1.14, 1.15},   /* floor 0.5, u 0.7: (0.25/0.2)^0.6 */
        {2.0, 9.2, 9.5, 3.0, 1.27, 1.28}, /* p99 sets u 0.5: (0.75/0.5)^0.6 */
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = policy(80, c[i].ratio, 0);
        p.budget.rate_start_bps = 16 * MIB;
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        struct tick_out o = {0};
        struct mig_sample s = mirror_sample(0, 1000u * MIB);
        tick(&cv, &s, &o);
        /* a long migration whose account is spent (mean usage at the aim):
         * the aim is BUDGET_AIM's 0.75, the floor alone is tested */
        cv.usage_n = 1000;
        cv.usage_sum = 750;
        struct conv_impact m = imp(1, c[i].mibps, c[i].p99_ms, 100);
        m.base_low_bps = c[i].low_mibps * MIB;
        REQUIRE(conv_set_impact(&cv, &m) == 0, "set impact");
        s = mirror_sample(1000, (1000u - 16u) * MIB);
        tick(&cv, &s, &o);
        double f = (double)cv.rate_bps / (double)(16 * MIB);
        CHECK(f >= c[i].lo - 1e-3 && f <= c[i].hi + 1e-3,
              "case %zu: rate x%.3f not in [%.2f, %.2f]", i, f, c[i].lo, c[i].hi);
    }
}

/* Proves: while its 3-interval window still holds the interval the last
 * cut answered, a reading no worse holds the rate, and a worse one is
 * judged on the rate now in force — the copy's share of the usage scaled
 * by the newest interval's copy over the window's mean (1.6 over 32,32,64:
 * 1.2, cut x0.625, not halved as a fresh 1.6 would be); once the window
 * has moved past it a reading outside cuts as a fresh one. */
static void t_cut_scaled(void)
{
    static const struct {
        double u;          /* the window's usage (p99 criterion) */
        double want_mib;   /* the rate after it */
    } step[] = {
        {0.75, 64}, {0.75, 64}, {0.75, 64}, /* the window fills at the aim */
        {1.5, 32},                          /* outside: cut x0.5 */
        {1.4, 32},  /* no worse, the window holds the cut interval: held */
        {1.6, 20},  /* worse: window 32,32,64 scales it to 1.2, x0.75/1.2 */
        {1.5, 20}, {1.5, 20}, /* no worse than 1.6: held */
        {1.5, 10},  /* past the cut interval: a fresh cut, x0.5 */
    };
    struct conv_policy p = policy(0, 2.0, 0);
    p.budget.rate_start_bps = 64 * MIB;
    p.budget.io_throttle = false;
    p.budget.conflict_ms = 1000000; /* here: the rate only */
    struct conv cv;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    struct tick_out o = {0};
    uint64_t done = 0, t = 0;
    struct mig_sample s = mirror_sample(t, 0);
    s.disk_total = 1ull << 40;
    tick(&cv, &s, &o);
    for (size_t i = 0; i < sizeof(step) / sizeof(step[0]); i++) {
        t += 1000;
        done += cv.rate_bps; /* the copy moved its rate in the interval */
        struct conv_impact m = imp(i + 1, 10, 2.0 * (1.0 + step[i].u), 100);
        m.window = 3;
        REQUIRE(conv_set_impact(&cv, &m) == 0, "set impact");
        s = mirror_sample(t, 0);
        s.disk_total = 1ull << 40;
        s.disk_done = done;
        tick(&cv, &s, &o);
        CHECK(fabs((double)cv.rate_bps / MIB - step[i].want_mib) < 0.01,
              "measurement %zu (usage %.2f): %.2f MiB/s, want %.2f", i + 1, step[i].u,
              (double)cv.rate_bps / MIB, step[i].want_mib);
    }
}

/* Drives n measurements (3-interval windows, one a second) of a mirror
 * that moves its rate, the guest's usage (p99 criterion) given by use()
 * of the copy rate in force; the rates after each in rates[]. */
static int drive_ri(struct conv *cv, double (*use)(double mibps), int n, double *rates,
                    struct tick_out *o)
{
    int ri_at = -1; /* the measurement that learned it, -1 none */
    uint64_t done = 0, t = 0;
    struct mig_sample s = mirror_sample(t, 0);
    s.disk_total = 1ull << 40;
    tick(cv, &s, o);
    for (int i = 0; i < n; i++) {
        t += 1000;
        double mibps = (double)cv->rate_bps / MIB;
        done += cv->rate_bps; /* the copy moved its rate in the interval */
        struct conv_impact m = imp((uint64_t)i + 1, 10, 2.0 * (1.0 + use(mibps)), 100);
        m.window = 3;
        CHECK(conv_set_impact(cv, &m) == 0, "set impact");
        s = mirror_sample(t, 0);
        s.disk_total = 1ull << 40;
        s.disk_done = done;
        tick(cv, &s, o);
        rates[i] = (double)cv->rate_bps / MIB;
        if (ri_at < 0 && cv->ri)
            ri_at = i;
    }
    return ri_at;
}

static double use_fixed(double mibps)
{
    (void)mibps;
    return 1.3; /* the migration's own cost, whatever the rate */
}

static double use_rate(double mibps)
{
    return mibps / 4.0; /* the copy hurts: usage 1 at 4 MiB/s */
}

static double use_rate_fixed(double mibps)
{
    return 1.1 + mibps / 16.0; /* a fixed cost and the rate's share on top */
}

/* Proves: a guest whose usage does not fall when the copy is cut to less
 * than half (here 1.3 at every rate, outside its 2x budget) is seen as a
 * rate-independent cost once two readings at the lower rates match the one
 * at the higher: the budget says so (REPORT_BUDGET "rate_independent: ..."),
 * goes back to that higher rate and cuts no lower, still counting the
 * guest outside its budget (verdict violated) — where it used to cut to its
 * 1 MiB/s floor and creep there. A guest the rate does hurt (usage ∝ rate)
 * is cut to its edge as before, nothing learned; one with a fixed cost and
 * the rate's share on top is held where the rate's share stays inside
 * BUDGET_RI_ROOM (0.25) of the fixed cost. */
static void t_rate_independent(void)
{
    struct conv_policy p = policy(0, 2.0, 0);
    p.budget.rate_start_bps = 8 * MIB;
    p.budget.io_throttle = false;
    p.budget.conflict_ms = 1000000; /* here: the rate only */
    struct conv cv;
    double rates[40];
    struct tick_out o = {0};
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    int learned_at = drive_ri(&cv, use_fixed, 40, rates, &o);
    double lo = 1e9, lo_after = 1e9;
    for (int i = 0; i < 40; i++) {
        if (rates[i] < lo)
            lo = rates[i];
        if (learned_at >= 0 && i >= learned_at && rates[i] < lo_after)
            lo_after = rates[i];
    }
    CHECK(o.rate_indep == 1, "rate_independent reported %d times", o.rate_indep);
    CHECK(cv.ri && fabs(cv.ri_usage - 1.3) < 0.01 && cv.ri_bps == 8 * MIB,
          "learned %d at usage %.2f, %.1f MiB/s", cv.ri, cv.ri_usage, (double)cv.ri_bps / MIB);
    CHECK(learned_at >= 0 && learned_at <= 15 && rates[learned_at] >= 8.0 - 1e-6,
          "learned at measurement %d", learned_at);
    CHECK(lo_after >= 8.0 - 1e-6, "cut to %.2f MiB/s after learning", lo_after);
    CHECK(lo > 1.0 + 1e-6, "down to the 1 MiB/s floor before learning (%.2f)", lo);
    CHECK(rates[39] >= 8.0 - 1e-6, "ends at %.2f MiB/s", rates[39]);
    CHECK(conv_budget_verdict(&cv) == CONV_BUDGET_VIOLATED, "verdict %s",
          conv_budget_verdict_name(conv_budget_verdict(&cv)));
    CHECK(cv.violations >= 30, "violations %llu", (unsigned long long)cv.violations);

    struct tick_out o2 = {0};
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    drive_ri(&cv, use_rate, 40, rates, &o2);
    CHECK(!cv.ri && o2.rate_indep == 0, "learned a rate-independent cost from a rate-bound guest");
    CHECK(rates[39] >= 2.0 && rates[39] <= 4.0, "rate-bound guest ends at %.2f MiB/s", rates[39]);

    struct tick_out o3 = {0};
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    drive_ri(&cv, use_rate_fixed, 40, rates, &o3);
    double u_end = use_rate_fixed(rates[39]);
    CHECK(cv.ri && o3.rate_indep >= 1, "fixed cost not learned");
    CHECK(u_end <= cv.ri_usage + 0.25 + 1e-6 && rates[39] >= 1.5,
          "ends at %.2f MiB/s (usage %.2f over a learned %.2f)", rates[39], u_end, cv.ri_usage);
}

int main(void)
{
    test_run("budget: usage of one measurement", t_usage);
    test_run("budget: a rate-independent cost is learned, not cut for", t_rate_independent);
    test_run("budget: rate steered by one measurement, within bounds", t_steer);
    test_run("budget: steps above the guest's own noise floor", t_floor);
    test_run("budget: a worse reading after a cut is judged on the rate in force",
             t_cut_scaled);
    test_run("budget: closed loop: quiet to the cap, busy to the edge, back off, caps",
             t_loop);
    test_run("budget: closed loop: impossible budget reported and waived", t_loop_impossible);
    test_run("budget: no cut on a window from before the copy", t_early_window);
    test_run("budget: the start judged on the copy's own intervals", t_early_ramp);
    test_run("budget: the aim follows the migration's account", t_account);
    test_run("budget: the account absorbs a few windows outside; room climbs", t_absorb);
    test_run("budget: no climb on a newest interval outside", t_last_interval);
    test_run("budget: the guest's own readings do not bind", t_early_no_conflict);
    test_run("budget: back to a violation's rate slowly", t_near_edge);
    test_run("budget: a violation's rate is the copy that hurt", t_ceiling_hurt);
    test_run("budget: before the copy moved is only before it first moved", t_early_once);
    test_run("budget: one cut per bad interval, not one per overlapping window", t_dead_time);
    test_run("budget: a guest deaf to the copy rate is a conflict, not cut to the floor",
             t_deaf);
    test_run("budget: conflict reported, io throttle only after consent", t_conflict_grant);
    test_run("budget: unanswered, refused or not offered io throttle", t_conflict_refuse);
    test_run("budget: slow mirror and guest hurt at the floor are conflicts", t_conflict_kinds);
    test_run("budget: draining mirror is no conflict; room climbs to the max", t_no_conflict);
    test_run("budget: bandwidth rung past the budget needs consent", t_bandwidth);
    test_run("budget: bandwidth rung refused: next rung; yield_to_ladder", t_bandwidth_refuse_yield);
    test_run("budget: ladder refused: within the budget until the deadline",
             t_bandwidth_hold_to_deadline);
    test_run("budget: a trickling READY mirror does not push the ETA out", t_eta_trickle);
    test_run("budget: memory's first rate counts from READY, not the mirror's start",
             t_rate_after_mirror);
    test_run("budget: invalid budgets rejected", t_invalid);
    return test_done();
}

/* Adaptive policy: smallest sufficient downtime never above the maximum;
 * ladder climbed in the operator's order; gated rungs wait for consent and
 * are never emitted before it; refused rungs skipped; abort when exhausted
 * or late. */
#include <string.h>

#include "../lib/test.h"
#include "core/conv.h"
#include "util/ferr.h"

#define MIB 1048576.0

static struct mig_sample smp(uint64_t t_ms)
{
    struct mig_sample s;
    memset(&s, 0, sizeof(s));
    s.t_ms = t_ms;
    s.phase = MIG_PHASE_ACTIVE;
    s.ram_total = 1 << 30;
    s.ram_transferred = t_ms * 100000;
    s.ram_remaining = 200 << 20;
    s.dirty_sync_count = 1 + t_ms / 2000;
    s.setting_max_bw_bps = (uint64_t)(100 * MIB); /* below the ladder's cap */
    return s;
}

/* A model output: bandwidth r, dirty d (MiB/s), dirty set level (MiB). */
static struct est_out model(uint64_t t_ms, double r, double d, double level)
{
    struct est_out o;
    memset(&o, 0, sizeof(o));
    o.bw_bps = r * MIB;
    o.dirty_bps = d * MIB;
    o.dirty_measured = 1;
    o.ratio = d / r;
    o.level_bytes = (uint64_t)(level * MIB);
    o.ram_remaining = (uint64_t)(level * MIB);
    o.ram_total = 1 << 30;
    o.t_ms = t_ms;
    o.granularity_ms = 50;
    o.verdict = d >= r ? EST_VERDICT_CANNOT : EST_VERDICT_CONVERGING;
    return o;
}

struct rec {
    enum conv_act_kind kind;
    enum conv_step step;
    uint64_t t_ms, downtime_ms;
};

/* Ticks every 500 ms from 0 to end_ms; consent answers given at given times
 * (t, step, grant); returns the actions. */
static size_t drive(struct conv *c, uint64_t end_ms, double r, double d, double level,
                    const int (*answers)[3], size_t n_ans, struct rec *out, size_t max)
{
    size_t n = 0;
    for (uint64_t t = 0; t <= end_ms; t += 500) {
        for (size_t i = 0; i < n_ans; i++)
            if ((uint64_t)answers[i][0] == t)
                (void)!conv_consent(c, (enum conv_step)answers[i][1], answers[i][2]);
        struct mig_sample s = smp(t);
        struct est_out o = model(t, r, d, level);
        struct conv_action a[CONV_ACTIONS_MAX];
        size_t k = 0;
        if (conv_tick(c, &s, &o, t, a, CONV_ACTIONS_MAX, &k) != 0)
            return n;
        for (size_t j = 0; j < k && n < max; j++) {
            out[n].kind = a[j].kind;
            out[n].step = a[j].step;
            out[n].t_ms = t;
            out[n].downtime_ms = a[j].downtime_ms;
            n++;
        }
    }
    return n;
}

static struct conv_policy adaptive(void)
{
    struct conv_policy p;
    conv_policy_default(&p, CONV_ADAPTIVE);
    p.adaptive.deadline_ms = 600000;
    p.adaptive.downtime_start_ms = 100;
    p.adaptive.downtime_max_ms = 1000;
    p.adaptive.bw_cap_bps = (uint64_t)(400 * MIB);
    p.adaptive.postcopy_available = true;
    p.adaptive.settle_ms = 5000;
    p.adaptive.settle_periods = 2;
    return p;
}

/* Proves: when a limit within the maximum finishes in time, the controller
 * sets the smallest such limit (a 10 % smaller one would be too slow), and
 * escalates nothing; it never exceeds the maximum whatever the dirty rate. */
static void t_downtime(void)
{
    static const struct {
        double r, d, level;
        int escalate;
    } c[] = {{100, 150, 50, 0}, {100, 150, 80, 0}, {100, 40, 500, 0}, {100, 300, 900, 1}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = adaptive();
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        struct rec r[256];
        size_t n = drive(&cv, 20000, c[i].r, c[i].d, c[i].level, NULL, 0, r, 256);
        uint64_t last = 0;
        int esc = 0;
        for (size_t j = 0; j < n; j++) {
            if (r[j].kind == CONV_ACT_SET_DOWNTIME) {
                CHECK(r[j].downtime_ms <= 1000, "case %zu: %llu ms > max", i,
                      (unsigned long long)r[j].downtime_ms);
                CHECK(r[j].downtime_ms >= last, "case %zu: lowered", i);
                last = r[j].downtime_ms;
            } else if (r[j].kind != CONV_ACT_REPORT_STALL) {
                esc = 1;
            }
        }
        CHECK(esc == c[i].escalate, "case %zu: escalated %d", i, esc);
        if (!c[i].escalate && last > 100) {
            struct est_out o = model(20000, c[i].r, c[i].d, c[i].level);
            uint64_t eta;
            REQUIRE(est_predict(&o, last * 9 / 10, &eta, NULL) == 0, "predict");
            CHECK(eta == EST_ETA_INFINITE || eta > 600000 - 20000,
                  "case %zu: %llu ms was not the smallest", i, (unsigned long long)last);
        }
    }
}

/* Proves: with dirty rate far above bandwidth the ladder is climbed in the
 * operator's order: bandwidth (not gated) → throttle (consent requested,
 * SET_THROTTLE only after the grant) → post-copy (refused: skipped, never
 * emitted) → pause (granted: emitted); nothing follows the pause. */
static void t_ladder(void)
{
    struct conv_policy p = adaptive();
    struct conv cv;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    static const int ans[][3] = {{20000, CONV_STEP_THROTTLE, 1},
                                 {40000, CONV_STEP_POSTCOPY, 0},
                                 {50000, CONV_STEP_PAUSE, 1}};
    struct rec r[256];
    size_t n = drive(&cv, 120000, 100, 300, 900, ans, 3, r, 256);
    uint64_t t_bw = 0, t_req_thr = 0, t_thr = 0, t_req_pc = 0, t_req_pause = 0, t_pause = 0;
    int postcopy = 0, after_pause = 0;
    for (size_t j = 0; j < n; j++) {
        if (t_pause && r[j].kind != CONV_ACT_REPORT_STALL)
            after_pause++;
        switch (r[j].kind) {
        case CONV_ACT_SET_BANDWIDTH: t_bw = r[j].t_ms; break;
        case CONV_ACT_SET_THROTTLE: t_thr = r[j].t_ms; break;
        case CONV_ACT_START_POSTCOPY: postcopy++; break;
        case CONV_ACT_PAUSE_GUEST: t_pause = r[j].t_ms; break;
        case CONV_ACT_REQUEST_CONSENT:
            if (r[j].step == CONV_STEP_THROTTLE) t_req_thr = r[j].t_ms;
            if (r[j].step == CONV_STEP_POSTCOPY) t_req_pc = r[j].t_ms;
            if (r[j].step == CONV_STEP_PAUSE) t_req_pause = r[j].t_ms;
            break;
        case CONV_ACT_ABORT: CHECK(0, "aborted at %llu", (unsigned long long)r[j].t_ms); break;
        default: break;
        }
    }
    CHECK(t_bw == 0, "bandwidth first, at tick 0 (%llu)", (unsigned long long)t_bw);
    CHECK(t_req_thr > t_bw && t_req_thr < 20000, "throttle consent asked at %llu",
          (unsigned long long)t_req_thr);
    CHECK(t_thr == 20000, "throttle at %llu, consent came at 20000", (unsigned long long)t_thr);
    CHECK(t_req_pc > t_thr && t_req_pc < 40000, "post-copy asked at %llu",
          (unsigned long long)t_req_pc);
    CHECK(postcopy == 0, "refused post-copy emitted");
    CHECK(t_req_pause >= 40000 && t_req_pause < 50000, "pause asked at %llu",
          (unsigned long long)t_req_pause);
    CHECK(t_pause == 50000, "pause at %llu", (unsigned long long)t_pause);
    CHECK(after_pause == 0, "%d actions after the pause", after_pause);
}

/* Proves: all rungs refused → abort naming the exhausted ladder; the
 * deadline passing aborts a migration that is otherwise left alone. */
static void t_abort(void)
{
    struct conv_policy p = adaptive();
    p.adaptive.bw_cap_bps = 0; /* bandwidth rung not applicable */
    struct conv cv;
    REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
    static const int ans[][3] = {{0, CONV_STEP_THROTTLE, 0}, {0, CONV_STEP_POSTCOPY, 0},
                                 {0, CONV_STEP_PAUSE, 0}};
    struct rec r[64];
    size_t n = drive(&cv, 10000, 100, 300, 900, ans, 3, r, 64);
    int aborts = 0, intrusive = 0;
    for (size_t j = 0; j < n; j++) {
        if (r[j].kind == CONV_ACT_ABORT)
            aborts++;
        if (r[j].kind == CONV_ACT_SET_THROTTLE || r[j].kind == CONV_ACT_START_POSTCOPY ||
            r[j].kind == CONV_ACT_PAUSE_GUEST)
            intrusive++;
    }
    CHECK(aborts == 1 && intrusive == 0, "aborts %d intrusive %d", aborts, intrusive);

    struct conv_policy q = adaptive();
    q.adaptive.deadline_ms = 8000;
    REQUIRE(conv_init(&cv, &q, NULL) == 0, "init");
    n = drive(&cv, 10000, 100, 10, 50, NULL, 0, r, 64); /* converging but slow tick */
    int ab_at = -1;
    for (size_t j = 0; j < n; j++)
        if (r[j].kind == CONV_ACT_ABORT)
            ab_at = (int)r[j].t_ms;
    CHECK(ab_at == 8000, "deadline abort at %d", ab_at);
}

/* A pass-1 model output: no measured rate; bandwidth r MiB/s, remaining
 * rem MiB of which the share nz is expected non-zero, optional hint h
 * MiB/s (0: none). */
static struct est_out pass1(uint64_t t_ms, double r, double rem, double nz, double h)
{
    struct est_out o;
    memset(&o, 0, sizeof(o));
    o.bw_bps = r * MIB;
    o.ram_remaining = (uint64_t)(rem * MIB);
    o.ram_total = 1 << 30;
    o.nonzero_share = nz;
    o.t_ms = t_ms;
    o.since_sync_ms = t_ms;
    o.granularity_ms = 50;
    o.spread = 0.25;
    o.verdict = EST_VERDICT_UNKNOWN;
    if (h > 0) {
        o.dirty_hinted = 1;
        o.dirty_bps = h * MIB;
        o.hint_ws_bytes = 256ull << 20;
    } else {
        o.dirty_bps = 0.1 * o.bw_bps;
    }
    o.ratio = o.dirty_bps / o.bw_bps;
    return o;
}

/* Proves: in pass 1 "late" counts only the non-zero pages still to send
 * (zero pages cost 9 bytes on the wire): 1 GiB left at 100 MiB/s is 10.2 s
 * raw; with half of it zero pages a 8 s deadline is not late (nothing
 * escalates), with none it is (the first rung, bandwidth, acts). */
static void t_pass1_late(void)
{
    static const struct {
        double nz;
        uint64_t deadline_ms;
        int escalate;
    } c[] = {{1.0, 8000, 1}, {0.5, 8000, 0}, {0.5, 4000, 1}, {0.2, 4000, 0}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = adaptive();
        p.adaptive.deadline_ms = c[i].deadline_ms;
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        struct mig_sample s = smp(500);
        s.dirty_sync_count = 1;
        s.setting_max_bw_bps = (uint64_t)(100 * MIB);
        struct est_out o = pass1(500, 100, 1024, c[i].nz, 0);
        struct conv_action a[CONV_ACTIONS_MAX];
        size_t n = 0;
        REQUIRE(conv_tick(&cv, &s, &o, 500, a, CONV_ACTIONS_MAX, &n) == 0, "tick");
        int esc = 0;
        for (size_t j = 0; j < n; j++)
            if (a[j].kind == CONV_ACT_SET_BANDWIDTH)
                esc = 1;
        CHECK(esc == c[i].escalate, "case %zu: escalated %d", i, esc);
    }
}

/* Proves: in pass 1 with a dirty-rate hint, adaptive announces (but does
 * not set) the limit it will need once the rate is measured, through
 * conv_future_downtime: one step, from the next tick, within [start,
 * max - headroom] and rising with the hint; none without a hint, none once
 * the rate is measured, never above max - headroom however busy the guest. */
static void t_planned_raise(void)
{
    static const struct {
        double hint;   /* MiB/s, 0 none */
        int measured;  /* dirty rate measured (pass 1 over) */
        int want;      /* steps announced */
    } c[] = {{0, 0, 0}, {5, 0, 1}, {40, 0, 1}, {95, 0, 1}, {400, 0, 1}, {40, 1, 0}};
    uint64_t prev = 0;
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = adaptive();
        p.adaptive.deadline_ms = 30000;
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        struct mig_sample s = smp(2000);
        s.dirty_sync_count = 1;
        struct est_out o = c[i].measured ? model(2000, 100, c[i].hint, 200)
                                         : pass1(2000, 100, 600, 1.0, c[i].hint);
        struct conv_action a[CONV_ACTIONS_MAX];
        size_t n = 0;
        REQUIRE(conv_tick(&cv, &s, &o, 2000, a, CONV_ACTIONS_MAX, &n) == 0, "tick");
        for (size_t j = 0; j < n; j++)
            CHECK(a[j].kind != CONV_ACT_SET_DOWNTIME || a[j].downtime_ms <= 950,
                  "case %zu: set %llu ms", i, (unsigned long long)a[j].downtime_ms);
        struct est_sched_step st[EST_SCHED_MAX];
        size_t k = 99;
        REQUIRE(conv_future_downtime(&cv, st, EST_SCHED_MAX, &k) == 0, "future");
        if (c[i].measured || c[i].hint == 0) {
            CHECK(k == 0, "case %zu: %zu steps announced", i, k);
            continue;
        }
        /* a quiet guest may need no raise at all */
        CHECK(k <= (size_t)c[i].want, "case %zu: %zu steps", i, k);
        if (k == 1) {
            CHECK(st[0].t_ms == 2001, "case %zu: step at %llu", i,
                  (unsigned long long)st[0].t_ms);
            CHECK(st[0].downtime_ms > 100 && st[0].downtime_ms <= 950,
                  "case %zu: planned %llu ms", i, (unsigned long long)st[0].downtime_ms);
            CHECK(st[0].downtime_ms >= prev, "case %zu: plan fell with a busier guest", i);
            prev = st[0].downtime_ms;
        }
        if (c[i].hint >= 400) /* saturates any working set: needs the top */
            CHECK(k == 1 && st[0].downtime_ms == 950, "case %zu: busy guest, plan %llu", i,
                  k ? (unsigned long long)st[0].downtime_ms : 0ull);
    }
}

/* Proves: the ladder is climbed in whatever order the operator gives — the
 * first escalation emitted is the first applicable rung of that order, and
 * non-applicable rungs (post-copy not negotiated, bandwidth already at the
 * cap) are skipped without an action. */
static void t_ladder_orders(void)
{
    static const struct {
        enum conv_step order[CONV_STEP__COUNT];
        size_t n;
        bool postcopy_available;
        uint64_t max_bw; /* setting_max_bw_bps in the samples */
        int want;        /* first escalation action */
    } c[] = {
        {{CONV_STEP_PAUSE, CONV_STEP_BANDWIDTH}, 2, true, 0, CONV_ACT_PAUSE_GUEST},
        {{CONV_STEP_THROTTLE, CONV_STEP_PAUSE}, 2, true, 0, CONV_ACT_SET_THROTTLE},
        {{CONV_STEP_POSTCOPY, CONV_STEP_THROTTLE}, 2, false, 0, CONV_ACT_SET_THROTTLE},
        {{CONV_STEP_POSTCOPY, CONV_STEP_THROTTLE}, 2, true, 0, CONV_ACT_START_POSTCOPY},
        {{CONV_STEP_BANDWIDTH, CONV_STEP_PAUSE}, 2, true, (uint64_t)(400 * MIB),
         CONV_ACT_PAUSE_GUEST},
        {{CONV_STEP_BANDWIDTH, CONV_STEP_PAUSE}, 2, true, (uint64_t)(100 * MIB),
         CONV_ACT_SET_BANDWIDTH},
        /* max-bandwidth 0 is QEMU's "no limit": the cap would lower it */
        {{CONV_STEP_BANDWIDTH, CONV_STEP_PAUSE}, 2, true, 0, CONV_ACT_PAUSE_GUEST},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = adaptive();
        memset(p.consent_required, 0, sizeof(p.consent_required));
        memcpy(p.adaptive.ladder, c[i].order, sizeof(c[i].order));
        p.adaptive.n_ladder = c[i].n;
        p.adaptive.postcopy_available = c[i].postcopy_available;
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        int first = -1;
        for (uint64_t t = 0; t <= 5000 && first < 0; t += 500) {
            struct mig_sample s = smp(t);
            s.setting_max_bw_bps = c[i].max_bw;
            struct est_out o = model(t, 100, 300, 900);
            struct conv_action a[CONV_ACTIONS_MAX];
            size_t n = 0;
            REQUIRE(conv_tick(&cv, &s, &o, t, a, CONV_ACTIONS_MAX, &n) == 0, "tick");
            for (size_t j = 0; j < n && first < 0; j++)
                if (a[j].kind != CONV_ACT_SET_DOWNTIME && a[j].kind != CONV_ACT_REPORT_STALL)
                    first = (int)a[j].kind;
        }
        CHECK(first == c[i].want, "case %zu: first %s want %s", i,
              first < 0 ? "none" : conv_act_name((enum conv_act_kind)first),
              conv_act_name((enum conv_act_kind)c[i].want));
    }
}

/* Proves: the limit set never exceeds the operator's maximum, including when
 * the maximum is below start + headroom (then start, itself <= max, is the
 * ceiling) and when the guest needs far more. */
static void t_max_edges(void)
{
    static const struct {
        uint64_t start, max, headroom;
    } c[] = {{100, 120, 50}, {100, 100, 50}, {50, 2000, 0}, {100, 300, 300}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = adaptive();
        p.adaptive.downtime_start_ms = c[i].start;
        p.adaptive.downtime_max_ms = c[i].max;
        p.adaptive.headroom_ms = c[i].headroom;
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        struct rec r[256];
        size_t n = drive(&cv, 20000, 100, 95, 900, NULL, 0, r, 256);
        uint64_t hi = 0;
        for (size_t j = 0; j < n; j++)
            if (r[j].kind == CONV_ACT_SET_DOWNTIME && r[j].downtime_ms > hi)
                hi = r[j].downtime_ms;
        CHECK(hi > 0 && hi <= c[i].max, "case %zu: highest %llu ms, max %llu", i,
              (unsigned long long)hi, (unsigned long long)c[i].max);
        uint64_t top = c[i].max > c[i].headroom ? c[i].max - c[i].headroom : 0;
        if (top < c[i].start)
            top = c[i].start;
        CHECK(hi <= top, "case %zu: highest %llu above max - headroom %llu", i,
              (unsigned long long)hi, (unsigned long long)top);
    }
}

/* Proves: the highest limit set keeps a margin for bandwidth jitter (QEMU
 * switches over on its last ~100 ms bandwidth window and sends the rest at
 * the link rate of the moment): (max - headroom) x (1 - 6 x jitter), the
 * margin between 15 % and 50 %; a guest that needs more gets exactly that
 * ceiling, never more. */
static void t_jitter_margin(void)
{
    static const struct {
        double jitter;
        uint64_t want; /* highest limit for a guest that needs the maximum */
    } c[] = {{0.01, 807}, {0.05, 665}, {0.2, 475}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct conv_policy p = adaptive(); /* max 1000, headroom 50 */
        memset(p.consent_required, 0, sizeof(p.consent_required));
        struct conv cv;
        REQUIRE(conv_init(&cv, &p, NULL) == 0, "init");
        uint64_t hi = 0;
        for (uint64_t t = 0; t <= 5000; t += 500) {
            struct mig_sample s = smp(t);
            struct est_out o = model(t, 100, 300, 900);
            o.bw_jitter = c[i].jitter;
            struct conv_action a[CONV_ACTIONS_MAX];
            size_t n = 0;
            REQUIRE(conv_tick(&cv, &s, &o, t, a, CONV_ACTIONS_MAX, &n) == 0, "tick");
            for (size_t j = 0; j < n; j++)
                if (a[j].kind == CONV_ACT_SET_DOWNTIME && a[j].downtime_ms > hi)
                    hi = a[j].downtime_ms;
        }
        CHECK(hi == c[i].want, "case %zu: highest %llu ms, want %llu", i,
              (unsigned long long)hi, (unsigned long long)c[i].want);
    }
}

/* Proves: invalid adaptive policies are rejected. */
static void t_invalid(void)
{
    struct conv_policy p = adaptive();
    struct conv cv;
    p.adaptive.downtime_start_ms = 2000; /* > max */
    CHECK(conv_init(&cv, &p, NULL) == FERR_INVAL, "start > max accepted");
    p = adaptive();
    p.adaptive.ladder[1] = CONV_STEP_BANDWIDTH; /* repeated */
    CHECK(conv_init(&cv, &p, NULL) == FERR_INVAL, "repeated rung accepted");
    p = adaptive();
    CHECK(conv_consent(&cv, (enum conv_step)9, true) == FERR_INVAL, "bad step");
}

int main(void)
{
    test_run("adaptive: smallest sufficient downtime, never above max", t_downtime);
    test_run("adaptive: ladder order, consent gating, refusal skips", t_ladder);
    test_run("adaptive: abort when exhausted or past the deadline", t_abort);
    test_run("adaptive: invalid policies rejected", t_invalid);
    test_run("adaptive: pass-1 lateness discounts zero pages", t_pass1_late);
    test_run("adaptive: planned raise announced for the ETA, within max", t_planned_raise);
    test_run("adaptive: ladder follows the operator's order, skips n/a rungs",
             t_ladder_orders);
    test_run("adaptive: never above the maximum at the edges", t_max_edges);
    test_run("adaptive: margin for bandwidth jitter under the maximum", t_jitter_margin);
    return test_done();
}

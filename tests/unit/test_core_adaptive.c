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
    return test_done();
}

/* Schedule policy (oVirt style): steps fire at the right memory iteration,
 * in order, once; gated steps wait for consent; refused steps are skipped. */
#include <string.h>

#include "../lib/test.h"
#include "core/conv.h"

static struct mig_sample at_iter(uint64_t i)
{
    struct mig_sample s;
    memset(&s, 0, sizeof(s));
    s.t_ms = i * 1000;
    s.phase = MIG_PHASE_ACTIVE;
    s.ram_total = 1 << 30;
    s.ram_transferred = i * 100000000ull;
    s.ram_remaining = (uint64_t)(1 << 29) / (i + 1);
    s.dirty_sync_count = i;
    return s;
}

/* Drives iterations 1..n; records per action kind the iteration it fired. */
static void drive(struct conv *c, uint64_t n, int consent_at, bool grant, int fired[][2],
                  size_t *nf)
{
    *nf = 0;
    for (uint64_t i = 1; i <= n; i++) {
        if ((int)i == consent_at)
            (void)!conv_consent(c, CONV_STEP_POSTCOPY, grant);
        struct mig_sample s = at_iter(i);
        struct conv_action a[CONV_ACTIONS_MAX];
        size_t k = 0;
        if (conv_tick(c, &s, NULL, s.t_ms, a, CONV_ACTIONS_MAX, &k) != 0)
            return;
        for (size_t j = 0; j < k; j++) {
            if (a[j].kind == CONV_ACT_REPORT_STALL)
                continue;
            fired[*nf][0] = (int)a[j].kind;
            fired[*nf][1] = a[j].kind == CONV_ACT_SET_DOWNTIME ? (int)a[j].downtime_ms
                                                               : (int)i;
            if (a[j].kind != CONV_ACT_SET_DOWNTIME)
                fired[*nf][1] = (int)i;
            (*nf)++;
        }
    }
}

static struct conv_policy sched(bool gated)
{
    struct conv_policy p;
    conv_policy_default(&p, CONV_SCHEDULE);
    struct conv_sched_entry e[] = {
        {0, CONV_SCHED_SET_DOWNTIME, 100}, {2, CONV_SCHED_SET_DOWNTIME, 200},
        {4, CONV_SCHED_SET_DOWNTIME, 400}, {6, CONV_SCHED_POSTCOPY, 0},
        {8, CONV_SCHED_ABORT, 0},
    };
    memcpy(p.schedule.e, e, sizeof(e));
    p.schedule.n = 5;
    p.consent_required[CONV_STEP_POSTCOPY] = gated;
    return p;
}

/* Proves: each step fires on the first tick whose dirty_sync_count exceeds
 * its iteration (init at the first tick), in order, exactly once. */
static void t_fires_in_order(void)
{
    struct conv_policy p = sched(false);
    struct conv c;
    REQUIRE(conv_init(&c, &p, NULL) == 0, "init");
    int f[32][2];
    size_t n;
    drive(&c, 12, -1, true, f, &n);
    static const int want[][2] = {{CONV_ACT_SET_DOWNTIME, 100}, {CONV_ACT_SET_DOWNTIME, 200},
                                  {CONV_ACT_SET_DOWNTIME, 400}, {CONV_ACT_START_POSTCOPY, 7},
                                  {CONV_ACT_ABORT, 9}};
    CHECK(n == 5, "%zu actions", n);
    for (size_t i = 0; i < n && i < 5; i++)
        CHECK(f[i][0] == want[i][0] && f[i][1] == want[i][1], "action %zu: %s %d", i,
              conv_act_name((enum conv_act_kind)f[i][0]), f[i][1]);
}

/* Proves: the downtime steps fire at iterations 1, 3 and 5 (after 0, 2, 4). */
static void t_iteration_of_each(void)
{
    struct conv_policy p = sched(false);
    struct conv c;
    REQUIRE(conv_init(&c, &p, NULL) == 0, "init");
    static const uint64_t want_iter[] = {1, 3, 5};
    size_t got = 0;
    for (uint64_t i = 1; i <= 6; i++) {
        struct mig_sample s = at_iter(i);
        struct conv_action a[CONV_ACTIONS_MAX];
        size_t k = 0;
        REQUIRE(conv_tick(&c, &s, NULL, s.t_ms, a, CONV_ACTIONS_MAX, &k) == 0, "tick");
        for (size_t j = 0; j < k; j++)
            if (a[j].kind == CONV_ACT_SET_DOWNTIME) {
                REQUIRE(got < 3, "extra");
                CHECK(i == want_iter[got], "downtime %zu at iteration %llu", got,
                      (unsigned long long)i);
                got++;
            }
    }
    CHECK(got == 3, "got %zu", got);
}

/* Proves: a gated post-copy step is requested and not emitted before
 * consent; with consent at iteration 10 it fires then and the abort follows;
 * refused, it is skipped and the abort fires. */
static void t_gated(void)
{
    for (int grant = 0; grant < 2; grant++) {
        struct conv_policy p = sched(true);
        struct conv c;
        REQUIRE(conv_init(&c, &p, NULL) == 0, "init");
        int f[32][2];
        size_t n;
        drive(&c, 12, 10, grant, f, &n);
        int req = -1, pc = -1, ab = -1;
        for (size_t i = 0; i < n; i++) {
            if (f[i][0] == CONV_ACT_REQUEST_CONSENT)
                req = f[i][1];
            if (f[i][0] == CONV_ACT_START_POSTCOPY)
                pc = f[i][1];
            if (f[i][0] == CONV_ACT_ABORT)
                ab = f[i][1];
        }
        CHECK(req == 7, "grant %d: consent requested at %d", grant, req);
        CHECK(pc == (grant ? 10 : -1), "grant %d: postcopy at %d", grant, pc);
        CHECK(ab == 10, "grant %d: abort at %d", grant, ab);
    }
}

int main(void)
{
    test_run("schedule: steps fire in order, once", t_fires_in_order);
    test_run("schedule: after iteration N means dirty_sync_count > N", t_iteration_of_each);
    test_run("schedule: gated step waits for consent, refused is skipped", t_gated);
    return test_done();
}

/* Nova policy: the downtime step schedule and completion timeout must match
 * nova/virt/libvirt/migration.py downtime_steps() and driver.py
 * _live_migration_data_gb()/_live_migration_monitor() exactly. Expected
 * values were produced by running Nova's Python code (Python 3 floats) on
 * the same inputs; the 3 GiB/400 ms/30 s case is also Nova's docstring. */
#include <string.h>

#include "core/conv.h"
#include "../lib/test.h"
#include "util/ferr.h"

#define MI 1048576ull
#define GI 1073741824ull

struct nova_case {
    const char *what;
    uint64_t ram_mib;
    uint64_t disks[3];
    size_t n_disks;
    uint32_t downtime, steps, delay, timeout;
    size_t n;
    struct conv_nova_step want[12];
    uint64_t want_timeout_s;
};

static const struct nova_case cases[] = {
    {"512 MiB RAM counts as the 2 GiB minimum; defaults", 512, {0}, 0, 500, 10, 75, 800, 11,
     {{0, 50}, {150, 95}, {300, 140}, {450, 185}, {600, 230}, {750, 275}, {900, 320},
      {1050, 365}, {1200, 410}, {1350, 455}, {1500, 500}}, 1600},
    {"4 GiB RAM scales the delay", 4096, {0}, 0, 500, 10, 75, 800, 11,
     {{0, 50}, {300, 95}, {600, 140}, {900, 185}, {1200, 230}, {1500, 275}, {1800, 320},
      {2100, 365}, {2400, 410}, {2700, 455}, {3000, 500}}, 3200},
    {"Nova docstring: 3 GiB, 400 ms, 10 steps, 30 s", 3072, {0}, 0, 400, 10, 30, 800, 11,
     {{0, 40}, {90, 76}, {180, 112}, {270, 148}, {360, 184}, {450, 220}, {540, 256},
      {630, 292}, {720, 328}, {810, 364}, {900, 400}}, 2400},
    {"1 GiB disk counts as 2 GiB; 1.5 GiB RAM as 2; truncation of 500/3", 1536, {1 * GI},
     1, 500, 3, 10, 0, 4, {{0, 166}, {40, 277}, {80, 388}, {120, 500}}, 0},
    {"fractional GiB disks, odd downtime: float then int()", 8192,
     {10 * GI + 123456789, 512 * MI}, 2, 777, 7, 33, 800, 8,
     {{0, 111}, {663, 206}, {1326, 301}, {1989, 396}, {2652, 491}, {3315, 586},
      {3978, 681}, {4641, 777}}, 16091},
    {"config minimums: 100 ms, 3 steps, 10 s", 2048, {3 * GI}, 1, 100, 3, 10, 150, 4,
     {{0, 33}, {50, 55}, {100, 77}, {150, 100}}, 750},
};

static struct conv_policy nova_policy(const struct nova_case *k)
{
    struct conv_policy p;
    conv_policy_default(&p, CONV_NOVA);
    p.nova.ram_mib = k->ram_mib;
    p.nova.n_disks = k->n_disks;
    for (size_t i = 0; i < k->n_disks; i++)
        p.nova.disk_bytes[i] = k->disks[i];
    p.nova.downtime_ms = k->downtime;
    p.nova.downtime_steps = k->steps;
    p.nova.downtime_delay_s = k->delay;
    p.nova.completion_timeout_s = k->timeout;
    return p;
}

/* Proves: conv_nova_plan reproduces Nova's generator value by value. */
static void t_plan_table(void)
{
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const struct nova_case *k = &cases[c];
        struct conv_policy p = nova_policy(k);
        struct conv_nova_step st[32];
        size_t n = 0;
        uint64_t to = 99;
        int rc = conv_nova_plan(&p.nova, st, 32, &n, &to);
        CHECK(rc == 0, "%s: rc %d", k->what, rc);
        CHECK(n == k->n, "%s: %zu steps, want %zu", k->what, n, k->n);
        for (size_t i = 0; i < n && i < k->n; i++)
            CHECK(st[i].t_s == k->want[i].t_s && st[i].downtime_ms == k->want[i].downtime_ms,
                  "%s: step %zu is (%llu, %llu), want (%llu, %llu)", k->what, i,
                  (unsigned long long)st[i].t_s, (unsigned long long)st[i].downtime_ms,
                  (unsigned long long)k->want[i].t_s,
                  (unsigned long long)k->want[i].downtime_ms);
        CHECK(to == k->want_timeout_s, "%s: timeout %llu, want %llu", k->what,
              (unsigned long long)to, (unsigned long long)k->want_timeout_s);
    }
}

/* Proves: values below Nova's oslo.config minimums are rejected, naming the
 * option; the minimums themselves are accepted. */
static void t_minimums(void)
{
    static const struct {
        uint32_t dt, steps, delay;
        const char *field; /* NULL: accepted */
    } m[] = {
        {99, 10, 75, "live_migration_downtime"},
        {100, 10, 75, NULL},
        {500, 2, 75, "live_migration_downtime_steps"},
        {500, 3, 75, NULL},
        {500, 10, 9, "live_migration_downtime_delay"},
        {500, 10, 10, NULL},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        struct conv_policy p;
        conv_policy_default(&p, CONV_NOVA);
        p.nova.ram_mib = 1024;
        p.nova.downtime_ms = m[i].dt;
        p.nova.downtime_steps = m[i].steps;
        p.nova.downtime_delay_s = m[i].delay;
        struct conv c;
        struct ferr e;
        ferr_clear(&e);
        int rc = conv_init(&c, &p, &e);
        if (m[i].field) {
            CHECK(rc == FERR_INVAL, "case %zu accepted", i);
            CHECK(strcmp(e.field, m[i].field) == 0, "case %zu field '%s'", i, e.field);
        } else {
            CHECK(rc == 0, "case %zu rejected: %s", i, e.msg);
        }
    }
}

static struct mig_sample active_at(uint64_t t_ms)
{
    struct mig_sample s;
    memset(&s, 0, sizeof(s));
    s.t_ms = t_ms;
    s.phase = MIG_PHASE_ACTIVE;
    s.ram_total = 2 * GI;
    s.ram_transferred = t_ms * 1000; /* moving: no stall report */
    s.ram_remaining = GI;
    s.dirty_sync_count = 1 + t_ms / 5000;
    return s;
}

/* Proves: driven once per second, the controller sets each step's downtime
 * on the first tick strictly after the step time (Nova: elapsed > t), never
 * repeats a value, and aborts just after the completion timeout. */
static void t_ticks_abort(void)
{
    const struct nova_case *k = &cases[0]; /* 2 GiB: steps every 150 s, 1600 s */
    struct conv_policy p = nova_policy(k);
    struct conv c;
    REQUIRE(conv_init(&c, &p, NULL) == 0, "init");
    size_t next = 0;
    int aborted_at = -1;
    for (uint64_t t = 0; t <= 1700; t++) {
        struct mig_sample s = active_at(t * 1000);
        struct conv_action a[CONV_ACTIONS_MAX];
        size_t n = 0;
        REQUIRE(conv_tick(&c, &s, NULL, t * 1000, a, CONV_ACTIONS_MAX, &n) == 0, "tick");
        for (size_t i = 0; i < n; i++) {
            if (a[i].kind == CONV_ACT_SET_DOWNTIME) {
                REQUIRE(next < k->n, "extra downtime at %llu s", (unsigned long long)t);
                CHECK(a[i].downtime_ms == k->want[next].downtime_ms, "value at %llu s",
                      (unsigned long long)t);
                CHECK(t == k->want[next].t_s + 1, "step %zu fired at %llu s, want %llu s",
                      next, (unsigned long long)t, (unsigned long long)k->want[next].t_s + 1);
                next++;
            } else if (a[i].kind == CONV_ACT_ABORT) {
                CHECK(aborted_at < 0, "second abort");
                aborted_at = (int)t;
            } else if (a[i].kind != CONV_ACT_REPORT_STALL) { /* flat remaining: stall ok */
                CHECK(0, "unexpected action %s", conv_act_name(a[i].kind));
            }
        }
    }
    CHECK(next == k->n, "only %zu of %zu steps", next, k->n);
    CHECK(aborted_at == 1601, "abort at %d s, want 1601 s", aborted_at);
}

/* Proves: force_complete after the timeout starts post-copy when permitted,
 * pauses the guest otherwise, and does nothing while already in post-copy. */
static void t_force_complete(void)
{
    static const struct {
        bool permit;
        bool in_postcopy;
        int want; /* action kind or -1 */
    } fc[] = {
        {true, false, CONV_ACT_START_POSTCOPY},
        {false, false, CONV_ACT_PAUSE_GUEST},
        {true, true, -1},
    };
    for (size_t i = 0; i < sizeof(fc) / sizeof(fc[0]); i++) {
        struct conv_policy p = nova_policy(&cases[0]);
        p.nova.timeout_action = CONV_TIMEOUT_FORCE_COMPLETE;
        p.nova.permit_post_copy = fc[i].permit;
        struct conv c;
        REQUIRE(conv_init(&c, &p, NULL) == 0, "init");
        int got = -1;
        for (uint64_t t = 1590; t <= 1610; t++) {
            struct mig_sample s = active_at(t * 1000);
            if (fc[i].in_postcopy)
                s.phase = MIG_PHASE_POSTCOPY;
            struct conv_action a[CONV_ACTIONS_MAX];
            size_t n = 0;
            REQUIRE(conv_tick(&c, &s, NULL, t * 1000, a, CONV_ACTIONS_MAX, &n) == 0, "tick");
            for (size_t j = 0; j < n; j++) {
                if (a[j].kind == CONV_ACT_START_POSTCOPY || a[j].kind == CONV_ACT_PAUSE_GUEST ||
                    a[j].kind == CONV_ACT_ABORT) {
                    CHECK(got == -1, "case %zu: second completion action", i);
                    CHECK(t == 1601, "case %zu: fired at %llu s", i, (unsigned long long)t);
                    got = (int)a[j].kind;
                }
            }
        }
        CHECK(got == fc[i].want, "case %zu: got %d want %d", i, got, fc[i].want);
    }
}

/* Proves: a gated pause (consent required) is requested, not emitted, and
 * emitted only after consent is granted. */
static void t_force_complete_consent(void)
{
    struct conv_policy p = nova_policy(&cases[0]);
    p.nova.timeout_action = CONV_TIMEOUT_FORCE_COMPLETE;
    p.consent_required[CONV_STEP_PAUSE] = true;
    struct conv c;
    REQUIRE(conv_init(&c, &p, NULL) == 0, "init");
    int requested = 0, paused_at = -1;
    for (uint64_t t = 1600; t <= 1620; t++) {
        if (t == 1610)
            REQUIRE(conv_consent(&c, CONV_STEP_PAUSE, true) == 0, "consent");
        struct mig_sample s = active_at(t * 1000);
        struct conv_action a[CONV_ACTIONS_MAX];
        size_t n = 0;
        REQUIRE(conv_tick(&c, &s, NULL, t * 1000, a, CONV_ACTIONS_MAX, &n) == 0, "tick");
        for (size_t j = 0; j < n; j++) {
            if (a[j].kind == CONV_ACT_REQUEST_CONSENT && a[j].step == CONV_STEP_PAUSE)
                requested++;
            if (a[j].kind == CONV_ACT_PAUSE_GUEST)
                paused_at = (int)t;
        }
    }
    CHECK(requested == 1, "consent requested %d times", requested);
    CHECK(paused_at == 1610, "paused at %d, want 1610 (first tick after consent)", paused_at);
}

/* Proves: the future schedule handed to the estimator lists the steps not
 * yet applied, at the ms they will be applied. */
static void t_future(void)
{
    struct conv_policy p = nova_policy(&cases[2]);
    struct conv c;
    REQUIRE(conv_init(&c, &p, NULL) == 0, "init");
    struct est_sched_step sch[32];
    size_t n = 0;
    REQUIRE(conv_future_downtime(&c, sch, 32, &n) == 0, "future");
    CHECK(n == 11, "n %zu", n);
    CHECK(sch[1].t_ms == 90001 && sch[1].downtime_ms == 76, "step 1 (%llu, %llu)",
          (unsigned long long)sch[1].t_ms, (unsigned long long)sch[1].downtime_ms);
}

int main(void)
{
    test_run("nova: schedule table matches Nova's generator", t_plan_table);
    test_run("nova: oslo.config minimums rejected", t_minimums);
    test_run("nova: steps fire after their time, abort after timeout", t_ticks_abort);
    test_run("nova: force_complete → post-copy or pause", t_force_complete);
    test_run("nova: gated force_complete waits for consent", t_force_complete_consent);
    test_run("nova: future downtime schedule for the estimator", t_future);
    return test_done();
}

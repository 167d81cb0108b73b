/* Properties of the QEMU 7.2 pre-copy model (src/sim/precopy.c) that can
 * fail: timing of an idle guest, non-convergence without a controller, the
 * auto-converge staircase, the switchover rule, post-copy, pause, and
 * determinism. */
#include "sim/precopy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../lib/test.h"

#define WIRE_PAGE ((double)(PRECOPY_PAGE_SIZE + PRECOPY_PAGE_HDR))

#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * MIB)

static struct precopy M; /* ~6 KiB: keep it off the stack */

static int run_until(struct precopy *m, double max_ms)
{
    while (!precopy_done(m) && m->t_ms < max_ms)
        precopy_step(m);
    return precopy_done(m);
}

/* An idle 4 GiB guest over 1 GiB/s finishes in 4 s + switchover costs (the
 * tail that fits the downtime goes at link rate, so never much less); with
 * half its RAM zero pages it takes about half as long. */
static void t_idle_time(void)
{
    struct precopy_workload wl;
    struct precopy_params par;
    struct precopy_obs o;
    double lb;
    precopy_workload_default(&wl, (uint64_t)(4 * GIB));
    precopy_params_default(&par, 1 * GIB);
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    REQUIRE(run_until(&M, 600000), "idle guest did not finish");
    precopy_observe(&M, &o);
    lb = 4 * GIB * WIRE_PAGE / PRECOPY_PAGE_SIZE / (1 * GIB) * 1000.0;
    CHECK(o.state == PRECOPY_COMPLETED, "state %d", o.state);
    CHECK(o.total_ms >= lb && o.total_ms <= lb * 1.03 + 150, "total %.0f ms, bound %.0f",
          o.total_ms, lb);
    /* QEMU stops as soon as what is left fits bw x limit, even in pass 1. */
    CHECK(o.downtime_ms <= par.downtime_limit_ms + par.device_ms + 1, "downtime %.1f ms",
          o.downtime_ms);
    CHECK(o.dirty_sync_count <= 3, "%llu syncs for an idle guest",
          (unsigned long long)o.dirty_sync_count);

    wl.zero_frac = 0.5;
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    REQUIRE(run_until(&M, 600000), "idle guest with zero pages did not finish");
    precopy_observe(&M, &o);
    CHECK(o.total_ms >= lb * 0.5 && o.total_ms <= lb * 0.5 * 1.05 + 150,
          "total %.0f ms with half zero pages, bound %.0f", o.total_ms, lb * 0.5);
    CHECK(fabs((double)o.duplicate_pages - 0.5 * 4 * GIB / 4096) < 64, "%llu zero pages sent",
          (unsigned long long)o.duplicate_pages);
}

/* A max-bandwidth cap below the link sets the pace of the bulk pass. */
static void t_bandwidth_cap(void)
{
    struct precopy_workload wl;
    struct precopy_params par;
    struct precopy_obs o;
    precopy_workload_default(&wl, (uint64_t)(1 * GIB));
    precopy_params_default(&par, 1 * GIB);
    par.max_bw_bps = 128 * MIB;
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    REQUIRE(run_until(&M, 600000), "did not finish");
    precopy_observe(&M, &o);
    /* The last <= 300 ms worth goes unthrottled during the downtime. */
    CHECK(o.total_ms > 7650 && o.total_ms < 8300, "1 GiB at 128 MiB/s took %.0f ms", o.total_ms);
}

/* Dirtying faster than the link over a working set larger than bw x
 * downtime never converges under QEMU defaults (no controller), however
 * long it runs; the bitmap keeps being synced. */
static void t_no_convergence(void)
{
    struct precopy_workload wl;
    struct precopy_params par;
    struct precopy_obs o;
    precopy_workload_default(&wl, (uint64_t)(8 * GIB));
    wl.ws_bytes = (uint64_t)(4 * GIB);
    wl.dirty_bps = 1.2 * 512 * MIB;
    precopy_params_default(&par, 512 * MIB);
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    CHECK(!run_until(&M, 3600.0 * 1000), "converged at %.0f ms", M.end_ms);
    precopy_observe(&M, &o);
    CHECK(o.state == PRECOPY_ACTIVE, "state %d", o.state);
    CHECK(o.dirty_sync_count > 20, "only %llu syncs in an hour",
          (unsigned long long)o.dirty_sync_count);
    CHECK(o.ram_remaining > 300 * 512 * MIB / 1000.0, "remaining %llu is below bw x downtime",
          (unsigned long long)o.ram_remaining);
    CHECK(o.throttle_pct == 0, "throttle %u without auto-converge", o.throttle_pct);
}

/* Auto-converge starts at 20 % and climbs by 10 up to the maximum; the
 * staircase never skips a step; and it makes the same guest converge. */
static void t_auto_converge_steps(void)
{
    struct precopy_workload wl;
    struct precopy_params par;
    uint32_t last = 0, seen[100] = {0};
    int bad_step = 0;
    precopy_workload_default(&wl, (uint64_t)(8 * GIB));
    wl.ws_bytes = (uint64_t)(4 * GIB);
    wl.dirty_bps = 3.0 * 512 * MIB;
    precopy_params_default(&par, 512 * MIB);
    par.auto_converge = 1;
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    while (!precopy_done(&M) && M.t_ms < 3600.0 * 1000) {
        precopy_step(&M);
        if (M.throttle != last) {
            if (!((last == 0 && M.throttle == 20) || M.throttle == last + 10 ||
                  (M.throttle == 99 && last == 90)))
                bad_step = 1;
            last = M.throttle;
            seen[last] = 1;
        }
    }
    CHECK(!bad_step, "throttle moved off the 20,30,...,99 staircase");
    CHECK(seen[20] && seen[30] && seen[40], "staircase 20,30,40 not all seen");
    CHECK(precopy_done(&M) && M.state == PRECOPY_COMPLETED, "auto-converge did not converge");
    CHECK(M.downtime_ms <= 300 + par.device_ms + 1, "downtime %.0f ms", M.downtime_ms);
}

/* Switchover happens only when pending <= measured bw x downtime limit:
 * for every tick that ends the run, pending at the switchover sync was
 * below the threshold; and with a tiny limit a busy guest does not stop. */
static void t_switchover_rule(void)
{
    static const double rates[] = {0.1, 0.3, 0.5, 0.7, 0.9};
    struct precopy_workload wl;
    struct precopy_params par;
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        double thr = 0;
        precopy_workload_default(&wl, (uint64_t)(2 * GIB));
        wl.ws_bytes = (uint64_t)(1 * GIB);
        wl.dirty_bps = rates[i] * 256 * MIB;
        precopy_params_default(&par, 256 * MIB);
        REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
        while (!precopy_done(&M) && M.t_ms < 3600.0 * 1000) {
            thr = M.threshold;
            precopy_step(&M);
        }
        REQUIRE(precopy_done(&M), "rate %.1f did not converge", rates[i]);
        /* The final stop sends what the last sync found, at link rate: */
        CHECK((M.downtime_ms - par.device_ms) / 1000.0 * par.link_bps <=
                  thr * WIRE_PAGE / PRECOPY_PAGE_SIZE + 1,
              "rate %.1f: rest %.0f bytes above threshold %.0f", rates[i],
              (M.downtime_ms - par.device_ms) / 1000.0 * par.link_bps, thr);
        CHECK(M.downtime_ms <= par.downtime_limit_ms + par.device_ms + 1,
              "rate %.1f: downtime %.0f", rates[i], M.downtime_ms);
    }
    /* A lower limit means more passes and a shorter stop: */
    {
        static const uint32_t limits[] = {20, 300, 2000};
        double down[3];
        uint64_t syncs[3];
        for (int i = 0; i < 3; i++) {
            precopy_workload_default(&wl, (uint64_t)(2 * GIB));
            wl.ws_bytes = (uint64_t)(1 * GIB);
            wl.dirty_bps = 0.7 * 256 * MIB;
            precopy_params_default(&par, 256 * MIB);
            par.downtime_limit_ms = limits[i];
            REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
            REQUIRE(run_until(&M, 3600000), "limit %u did not converge", limits[i]);
            down[i] = M.downtime_ms;
            syncs[i] = M.sync_count;
        }
        CHECK(down[0] < down[1] && down[1] < down[2], "downtimes %.0f %.0f %.0f", down[0], down[1],
              down[2]);
        CHECK(syncs[0] > syncs[1] && syncs[1] > syncs[2], "syncs %llu %llu %llu",
              (unsigned long long)syncs[0], (unsigned long long)syncs[1],
              (unsigned long long)syncs[2]);
    }
}

/* Post-copy: the downtime is the switch cost only; the rest is pulled at
 * link rate; a pause makes a non-converging guest finish. */
static void t_postcopy_and_pause(void)
{
    struct precopy_workload wl;
    struct precopy_params par;
    struct precopy_obs o;
    precopy_workload_default(&wl, (uint64_t)(8 * GIB));
    wl.ws_bytes = (uint64_t)(4 * GIB);
    wl.dirty_bps = 2.0 * 512 * MIB;
    precopy_params_default(&par, 512 * MIB);
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    CHECK(precopy_start_postcopy(&M) == FERR_STATE, "post-copy without the capability");
    par.postcopy_ram = 1;
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    run_until(&M, 30000);
    REQUIRE(precopy_start_postcopy(&M) == 0, "start post-copy");
    REQUIRE(run_until(&M, 600000), "post-copy did not finish");
    precopy_observe(&M, &o);
    CHECK(o.downtime_ms < par.device_ms + 10, "post-copy downtime %.1f ms", o.downtime_ms);
    CHECK(o.postcopy_ms > 1000 && o.postcopy_ms < 10000, "post-copy phase %.0f ms", o.postcopy_ms);

    par.postcopy_ram = 0;
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    run_until(&M, 30000);
    REQUIRE(precopy_pause(&M) == 0, "pause");
    REQUIRE(run_until(&M, 600000), "paused guest did not finish");
    precopy_observe(&M, &o);
    CHECK(o.paused_ms > 0 && o.paused_ms < 10000, "paused %.0f ms", o.paused_ms);
    CHECK(o.downtime_ms <= 300 + par.device_ms + 1, "downtime %.0f", o.downtime_ms);
    CHECK(precopy_abort(&M) == FERR_STATE, "abort after completion");
}

/* Same seed, same run; another seed, another run (with noise on). */
static void t_determinism(void)
{
    struct precopy_workload wl;
    struct precopy_params par;
    struct precopy_obs a, b, c;
    precopy_workload_default(&wl, (uint64_t)(4 * GIB));
    wl.ws_bytes = (uint64_t)(1 * GIB);
    wl.dirty_bps = 0.6 * 256 * MIB;
    wl.noise = 0.2;
    wl.profile = PRECOPY_BURSTY;
    wl.burst_period_ms = 7000;
    precopy_params_default(&par, 256 * MIB);
    par.seed = 42;
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    run_until(&M, 3600000);
    precopy_observe(&M, &a);
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    run_until(&M, 3600000);
    precopy_observe(&M, &b);
    par.seed = 43;
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    run_until(&M, 3600000);
    precopy_observe(&M, &c);
    CHECK(memcmp(&a, &b, sizeof(a)) == 0, "same seed differs: %.3f vs %.3f ms", a.total_ms,
          b.total_ms);
    CHECK(a.ram_transferred != c.ram_transferred, "seed has no effect");
}

/* Bad input is refused with the field named. */
static void t_bad_input(void)
{
    struct precopy_workload wl;
    struct precopy_params par;
    struct ferr e;
    precopy_workload_default(&wl, (uint64_t)(1 * GIB));
    precopy_params_default(&par, 1 * GIB);
    wl.ws_bytes = (uint64_t)(2 * GIB);
    CHECK(precopy_init(&M, &wl, &par, &e) == FERR_INVAL && strcmp(e.field, "ws_bytes") == 0,
          "ws > ram accepted");
    wl.ws_bytes = 0;
    par.link_bps = 0;
    CHECK(precopy_init(&M, &wl, &par, &e) == FERR_INVAL && strcmp(e.field, "link_bps") == 0,
          "link 0 accepted");
}

/* calc-dirty-rate as the agent would poll it: no hint before the first 1 s
 * window closes; then, for a steady guest writing w = 200 MiB/s uniformly
 * over a 1 GiB working set of 4 GiB, the distinct-page rate over 1 s,
 * H (1 - e^(-w/H)) = 181 MiB/s, within sampling noise (2048 sampled pages:
 * ~10 % per window; the mean of 30 windows within 6 %); an idle guest
 * reads 1 page/s ("measured zero", since 0 means unknown). */
static void t_dirty_rate_hint(void)
{
    struct precopy_workload wl;
    struct precopy_params par;
    struct precopy_obs o;
    precopy_workload_default(&wl, (uint64_t)(4 * GIB));
    wl.ws_bytes = (uint64_t)GIB;
    wl.dirty_bps = 200 * MIB;
    precopy_params_default(&par, 10 * MIB); /* slow link: stays in pre-copy */
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    while (M.t_ms < 950)
        precopy_step(&M);
    precopy_observe(&M, &o);
    CHECK(o.dirty_rate_hint_pps == 0, "hint %llu before 1 s",
          (unsigned long long)o.dirty_rate_hint_pps);
    double sum = 0;
    int n = 0;
    uint64_t last = 0;
    while (M.t_ms < 31000 && !precopy_done(&M)) {
        precopy_step(&M);
        precopy_observe(&M, &o);
        if (o.dirty_rate_hint_pps && o.dirty_rate_hint_pps != last) {
            sum += (double)o.dirty_rate_hint_pps * PRECOPY_PAGE_SIZE;
            n++;
        }
        last = o.dirty_rate_hint_pps;
    }
    double want = GIB * (1 - exp(-200 * MIB / GIB));
    REQUIRE(n >= 20, "only %d hint windows", n);
    CHECK(fabs(sum / n - want) < 0.06 * want, "mean hint %.1f MiB/s, want %.1f", sum / n / MIB,
          want / MIB);

    precopy_workload_default(&wl, (uint64_t)(4 * GIB));
    REQUIRE(precopy_init(&M, &wl, &par, NULL) == 0, "init");
    while (M.t_ms < 2500)
        precopy_step(&M);
    precopy_observe(&M, &o);
    CHECK(o.dirty_rate_hint_pps == 1, "idle hint %llu", (unsigned long long)o.dirty_rate_hint_pps);
}

int main(void)
{
    test_run("sim precopy: idle guest takes RAM/bandwidth, zero pages are cheap", t_idle_time);
    test_run("sim precopy: max-bandwidth caps the pass", t_bandwidth_cap);
    test_run("sim precopy: dirty > bw never converges under QEMU defaults", t_no_convergence);
    test_run("sim precopy: auto-converge 20 then +10 steps, converges", t_auto_converge_steps);
    test_run("sim precopy: switchover only when pending <= bw x downtime", t_switchover_rule);
    test_run("sim precopy: post-copy and pause finish a busy guest", t_postcopy_and_pause);
    test_run("sim precopy: determinism by seed", t_determinism);
    test_run("sim precopy: bad input refused", t_bad_input);
    test_run("sim precopy: calc-dirty-rate hint", t_dirty_rate_hint);
    return test_done();
}

/* Estimator: progress monotone, 100 only on completion, ETA accuracy on a
 * synthetic QEMU-7.2-like pre-copy, verdicts. */
#include <math.h>
#include <string.h>

#include "../lib/pcgen.h"
#include "../lib/test.h"
#include "core/estimator.h"
#include "util/ferr.h"

#define MIB 1048576.0

/* Proves: on a geometric pre-copy (D/R = 0.75, so pass 1 is the first 25 %
 * of the run), every ETA after the first sync is within 10 % of the true
 * remaining time (+1 s: four sample intervals, the tail of tiny syncs); the interval contains the
 * truth; ETA is 0 at completion. */
static void t_eta_geometric(void)
{
    static const double ratio[] = {0.75, 0.5, 0.3};
    for (size_t k = 0; k < sizeof(ratio) / sizeof(ratio[0]); k++) {
        struct pcgen g;
        pcgen_init(&g, 1024 * MIB, 1024 * MIB, 100 * MIB, ratio[k] * 100 * MIB, 300);
        struct mig_sample tr[4000];
        size_t n = 0;
        while (n < 4000) {
            pcgen_step(&g, &tr[n]);
            n++;
            if (g.done)
                break;
        }
        REQUIRE(g.done, "trace did not finish");
        uint64_t end = tr[n - 1].t_ms;
        struct est e;
        struct est_params ep = {0};
        ep.granularity_ms = 5; /* the generator checks every 10 ms */
        est_init(&e, &ep);
        int checked = 0, inside = 0;
        for (size_t i = 0; i < n; i++) {
            REQUIRE(est_update(&e, &tr[i]) == 0, "update %zu", i);
            struct est_out o;
            est_get(&e, &o);
            if (tr[i].dirty_sync_count < 2 || tr[i].phase != MIG_PHASE_ACTIVE)
                continue;
            double truth = (double)(end - tr[i].t_ms);
            CHECK(o.eta_known, "ratio %.2f: eta unknown at %llu", ratio[k],
                  (unsigned long long)tr[i].t_ms);
            CHECK(fabs((double)o.eta_ms - truth) <= 0.10 * truth + 1000,
                  "ratio %.2f: eta %llu ms vs truth %.0f ms at %llu ms", ratio[k],
                  (unsigned long long)o.eta_ms, truth, (unsigned long long)tr[i].t_ms);
            checked++;
            if ((double)o.eta_low_ms <= truth + 500 && (double)o.eta_high_ms + 500 >= truth)
                inside++;
        }
        CHECK(checked > 5, "only %d checked", checked);
        CHECK(inside >= checked * 9 / 10, "interval held %d of %d", inside, checked);
        struct est_out o;
        est_get(&e, &o);
        CHECK(o.eta_ms == 0 && o.progress_pct == 100.0, "end: eta %llu pct %f",
              (unsigned long long)o.eta_ms, o.progress_pct);
        CHECK(o.verdict == EST_VERDICT_DONE, "verdict %s", est_verdict_name(o.verdict));
    }
}

/* Proves: progress never decreases under a sawtooth remaining, a RAM total
 * that changes (balloon/hotplug) and a disk phase, and it stays below 100
 * until the completed sample. */
static void t_progress_monotone(void)
{
    struct est e;
    est_init(&e, NULL);
    double prev = 0;
    uint64_t tx = 0, disk = 0;
    for (uint64_t i = 0; i < 400; i++) {
        struct mig_sample s;
        memset(&s, 0, sizeof(s));
        s.t_ms = i * 250;
        s.phase = i == 399 ? MIG_PHASE_COMPLETED : MIG_PHASE_ACTIVE;
        s.disk_total = 512 * 1048576ull;
        disk = disk + 16 * 1048576ull > s.disk_total ? s.disk_total : disk + 16 * 1048576ull;
        s.disk_done = disk;
        s.ram_total = (i < 200 ? 1024 : 1536) * 1048576ull; /* total grows */
        tx += 20 * 1048576ull;
        s.ram_transferred = tx;
        s.ram_remaining = (uint64_t)((300 - (i % 20) * 14) * 1048576.0); /* sawtooth */
        s.dirty_sync_count = 1 + i / 20;
        s.dirty_pages_rate = i > 20 ? 10000 : 0;
        s.page_size = 4096;
        s.setting_downtime_ms = 300;
        REQUIRE(est_update(&e, &s) == 0, "update");
        struct est_out o;
        est_get(&e, &o);
        CHECK(o.progress_pct >= prev, "went back at %llu: %f < %f", (unsigned long long)i,
              o.progress_pct, prev);
        if (s.phase != MIG_PHASE_COMPLETED)
            CHECK(o.progress_pct < 100.0, "100 before completion at %llu", (unsigned long long)i);
        else
            CHECK(o.progress_pct == 100.0, "not 100 at completion");
        prev = o.progress_pct;
    }
    CHECK(prev == 100.0, "final %f", prev);
}

/* Proves: the verdict after a few sync periods is converging when D < R,
 * needs-X with X = level/R (working set + the residual below the
 * threshold, ~2.3 s here) when D >= R but X fits the max, cannot when it
 * does not; and a future schedule that reaches X turns needs-X into
 * converging with a finite ETA. */
static void t_verdicts(void)
{
    static const struct {
        const char *what;
        double w_mib, r_mib, d_mib;
        uint64_t max_ms;
        int sched; /* add a schedule step to 2600 ms at +60 s */
        enum est_verdict want;
        uint64_t need_lo, need_hi;
    } v[] = {
        {"D < R converges", 1024, 100, 40, 2000, 0, EST_VERDICT_CONVERGING, 0, 0},
        {"D > R, 200 MiB set → needs ~2 s", 200, 100, 150, 5000, 0, EST_VERDICT_NEEDS_DOWNTIME,
         2000, 2500},
        {"D > R, 200 MiB set, max 1 s → cannot", 200, 100, 150, 1000, 0, EST_VERDICT_CANNOT, 2000,
         2500},
        {"D > R but the schedule reaches 2.6 s", 200, 100, 150, 5000, 1, EST_VERDICT_CONVERGING, 0,
         0},
    };
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
        struct pcgen g;
        pcgen_init(&g, 1024 * MIB, v[k].w_mib * MIB, v[k].r_mib * MIB, v[k].d_mib * MIB, 300);
        struct est_params p = {0};
        p.granularity_ms = 5;
        p.max_downtime_ms = v[k].max_ms;
        struct est e;
        est_init(&e, &p);
        if (v[k].sched) {
            struct est_sched_step st = {60000, 2600};
            REQUIRE(est_set_schedule(&e, &st, 1) == 0, "sched");
        }
        struct mig_sample s;
        for (int i = 0; i < 160 && !g.done; i++) { /* 40 s */
            pcgen_step(&g, &s);
            REQUIRE(est_update(&e, &s) == 0, "update");
        }
        struct est_out o;
        est_get(&e, &o);
        if (v[k].want == EST_VERDICT_CONVERGING && g.done)
            continue; /* finished already: converged */
        CHECK(o.verdict == v[k].want, "%s: verdict %s (ratio %.2f)", v[k].what,
              est_verdict_name(o.verdict), o.ratio);
        if (v[k].need_hi)
            CHECK(o.needs_downtime_ms >= v[k].need_lo && o.needs_downtime_ms <= v[k].need_hi,
                  "%s: needs %llu ms", v[k].what, (unsigned long long)o.needs_downtime_ms);
        if (v[k].want == EST_VERDICT_CONVERGING)
            CHECK(o.eta_known && o.eta_ms != EST_ETA_INFINITE, "%s: eta", v[k].what);
        else
            CHECK(o.eta_ms == EST_ETA_INFINITE, "%s: eta finite", v[k].what);
    }
}

/* A pass-1 sample: 1 GiB RAM, 100 MiB/s, remaining falling at that rate
 * from t = 0, no zero pages, QEMU publishing no dirty rate yet. */
static struct mig_sample pass1_at(uint64_t t_ms, double hint_mibps)
{
    struct mig_sample s;
    memset(&s, 0, sizeof(s));
    s.t_ms = t_ms;
    s.phase = MIG_PHASE_ACTIVE;
    s.ram_total = 1u << 30;
    s.ram_transferred = (uint64_t)(100 * MIB * (double)t_ms / 1000.0);
    s.ram_remaining = s.ram_total - s.ram_transferred;
    s.ram_normal = s.ram_transferred / 4096;
    s.page_size = 4096;
    s.bw_bps = (uint64_t)(100 * MIB);
    s.dirty_sync_count = 1;
    s.setting_downtime_ms = 300;
    s.dirty_rate_hint_pps = (uint64_t)(hint_mibps * 256);
    return s;
}

/* Proves: in pass 1 the estimator uses the dirty-rate hint when there is
 * one — the time-weighted mean of the hints seen (10 then 30 MiB/s for
 * equal times reads 20), flagged dirty_hinted, with the assumed working set
 * published — and the prior otherwise; the verdict stays unknown; a busier
 * hint never gives a shorter ETA; a hint that dirties more than the
 * assumed working set every second means no pass makes progress (ETA
 * infinite at this limit). */
static void t_hint_pass1(void)
{
    static const double hints[] = {0, 1, 10, 40, 80, 300};
    uint64_t prev_eta = 0;
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
        struct est e;
        est_init(&e, NULL);
        for (uint64_t t = 250; t <= 3000; t += 250) {
            struct mig_sample s = pass1_at(t, t < 1000 ? 0 : hints[i]);
            REQUIRE(est_update(&e, &s) == 0, "update");
        }
        struct est_out o;
        est_get(&e, &o);
        CHECK(o.verdict == EST_VERDICT_UNKNOWN && !o.dirty_measured, "case %zu: verdict %s", i,
              est_verdict_name(o.verdict));
        CHECK(o.dirty_hinted == (hints[i] > 0), "case %zu: hinted %d", i, o.dirty_hinted);
        if (hints[i] > 0) {
            CHECK(fabs(o.dirty_bps - hints[i] * MIB) < 0.01 * hints[i] * MIB,
                  "case %zu: dirty %.0f", i, o.dirty_bps);
            CHECK(o.hint_ws_bytes == (uint64_t)fmax(0.25 * (1u << 30), o.dirty_bps),
                  "case %zu: ws %llu", i, (unsigned long long)o.hint_ws_bytes);
        } else {
            CHECK(fabs(o.dirty_bps - 0.1 * o.bw_bps) < 1, "case %zu: prior %.0f", i, o.dirty_bps);
        }
        /* 300 MiB/s over a 1 s window dirties more than the assumed
         * working set each second: every pass re-sends all of it */
        if (hints[i] >= 300) {
            CHECK(o.eta_ms == EST_ETA_INFINITE, "case %zu: ETA %llu", i,
                  (unsigned long long)o.eta_ms);
            continue;
        }
        REQUIRE(o.eta_known && o.eta_ms != EST_ETA_INFINITE, "case %zu: no ETA", i);
        if (i >= 2)
            CHECK(o.eta_ms >= prev_eta, "case %zu: ETA %llu < %llu with a quieter guest", i,
                  (unsigned long long)o.eta_ms, (unsigned long long)prev_eta);
        if (i >= 1)
            prev_eta = o.eta_ms;
    }
    /* time-weighted mean: 10 MiB/s for 1 s, then 30 MiB/s for 1 s */
    struct est e;
    est_init(&e, NULL);
    for (uint64_t t = 1000; t <= 3000; t += 250) {
        struct mig_sample s = pass1_at(t, t <= 2000 ? 10 : 30);
        REQUIRE(est_update(&e, &s) == 0, "update");
    }
    struct est_out o;
    est_get(&e, &o);
    CHECK(fabs(o.dirty_bps - 20 * MIB) < 0.6 * MIB, "mean hint %.2f MiB/s", o.dirty_bps / MIB);
}

/* Proves: a saturated working set as real QEMU shows it — the dirty set
 * found at each sync stays at 64 MiB while the published dirty rate reads
 * 1 % below the bandwidth — ends "cannot" (the geometric model alone called
 * it converging in hundreds of passes); the same trace with the dirty set
 * shrinking by 20 % per sync stays converging. */
static void t_stuck_level(void)
{
    for (int shrink = 0; shrink < 2; shrink++) {
        struct est e;
        est_init(&e, NULL);
        double r = 8 * MIB, level = 64 * MIB, v = 256 * MIB, tx = 0;
        uint64_t sync = 1, t = 0;
        struct est_out o;
        memset(&o, 0, sizeof(o));
        for (int i = 0; i < 400 && sync < 7; i++) {
            t += 250;
            v -= r * 0.25;
            tx += r * 0.25;
            if (v < r * 0.3) {
                sync++;
                v += level;
                if (shrink)
                    level *= 0.8;
            }
            struct mig_sample s;
            memset(&s, 0, sizeof(s));
            s.t_ms = t;
            s.phase = MIG_PHASE_ACTIVE;
            s.ram_total = 256u << 20;
            s.ram_transferred = (uint64_t)tx;
            s.ram_remaining = (uint64_t)v;
            s.ram_normal = (uint64_t)tx / 4096;
            s.page_size = 4096;
            s.bw_bps = (uint64_t)r;
            s.dirty_sync_count = sync;
            s.dirty_pages_rate = sync > 1 ? (uint64_t)(0.99 * r / 4096) : 0;
            s.setting_downtime_ms = 300;
            REQUIRE(est_update(&e, &s) == 0, "update");
            est_get(&e, &o);
        }
        if (shrink)
            CHECK(o.verdict == EST_VERDICT_CONVERGING && !o.level_stuck, "shrinking: %s",
                  est_verdict_name(o.verdict));
        else
            CHECK(o.verdict == EST_VERDICT_CANNOT && o.level_stuck && o.eta_ms == EST_ETA_INFINITE,
                  "flat: %s stuck %d", est_verdict_name(o.verdict), o.level_stuck);
    }
}

/* Proves: bad input is refused and changes nothing. */
static void t_errors(void)
{
    struct est e;
    est_init(&e, NULL);
    struct mig_sample s;
    memset(&s, 0, sizeof(s));
    s.t_ms = 1000;
    s.phase = MIG_PHASE_ACTIVE;
    s.ram_total = 100;
    REQUIRE(est_update(&e, &s) == 0, "first");
    s.t_ms = 999;
    CHECK(est_update(&e, &s) == FERR_INVAL, "time went back accepted");
    s.t_ms = 2000;
    s.phase = (enum mig_phase)77;
    CHECK(est_update(&e, &s) == FERR_INVAL, "bad phase accepted");
    struct est_out o;
    est_get(&e, &o);
    CHECK(o.t_ms == 1000, "state changed: %llu", (unsigned long long)o.t_ms);
    struct est_sched_step st[2] = {{5, 1}, {4, 1}};
    CHECK(est_set_schedule(&e, st, 2) == FERR_INVAL, "unsorted accepted");
    CHECK(est_set_schedule(&e, st, EST_SCHED_MAX + 1) == FERR_TOOBIG, "oversize accepted");
    uint64_t eta;
    struct est_out none;
    memset(&none, 0, sizeof(none));
    CHECK(est_predict(&none, 300, &eta, NULL) == FERR_STATE, "predict without bw");
}

int main(void)
{
    test_run("estimator: ETA within 10% on geometric pre-copy", t_eta_geometric);
    test_run("estimator: progress monotone, 100 only at completion", t_progress_monotone);
    test_run("estimator: verdicts converging / needs-X / cannot / scheduled", t_verdicts);
    test_run("estimator: bad input refused", t_errors);
    test_run("estimator: pass-1 dirty-rate hint", t_hint_pass1);
    test_run("estimator: a dirty set that stopped shrinking cannot converge", t_stuck_level);
    return test_done();
}

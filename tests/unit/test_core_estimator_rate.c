/* Estimator, pass 1: the bandwidth R is what the pass moved over the last
 * second or more, not QEMU's last 100 ms window (its mbps). On a busy host
 * one window reads half the cap while the pass goes on at the cap; taking
 * that window for R doubled the ETA for one sample (lab, bench/
 * lab_calibration). Table: a 256 MiB guest (all pages non-zero, idle as its
 * dirty-rate hint says) sent
 * at 64 MiB/s, samples every 250 ms whose window rate dips as the case
 * says; the ETA at every sample from 1.25 s on (one sample a second
 * older exists) must stay within 10 % of the
 * time really left. And when max-bandwidth changes, the rate follows the
 * new cap within two samples after a second. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../lib/test.h"
#include "core/estimator.h"

#define MIB 1048576.0

struct rate_case {
    const char *name;
    unsigned dip_every; /* every n-th sample's window reads dip_frac of the
                           rate (0: none) */
    unsigned dip_first; /* first dipped sample */
    double dip_frac;    /* window rate / true rate on a dipped sample */
    double lost_frac;   /* share of a 250 ms interval's bytes lost with a dip */
};

static const struct rate_case cases[] = {
    {"steady windows", 0, 0, 1.0, 0},
    {"one window at half the cap", 1000, 6, 0.5, 0.2},
    {"every other window at 45 %", 2, 1, 0.45, 0.2},
    {"every third window at 10 %", 3, 2, 0.1, 0.3},
};

static void run_case(const struct rate_case *c)
{
    const double m = 256 * MIB, r = 64 * MIB;
    struct est e;
    est_init(&e, NULL);
    double tx = 0, worst = 0;
    uint64_t worst_t = 0;
    /* the true finish: the pass moves r x (1 - lost) on dipped intervals */
    double t_end = 0;
    {
        double x = 0;
        for (unsigned k = 1; x < m && k < 100000; k++) {
            int dip = c->dip_every && k >= c->dip_first && (k - c->dip_first) % c->dip_every == 0;
            double step = r * 0.25 * (dip ? 1 - c->lost_frac : 1);
            if (x + step >= m) {
                t_end = (k - 1) * 0.25 + (m - x) / (step / 0.25);
                break;
            }
            x += step;
        }
    }
    for (unsigned k = 1; tx < m - 1 && k < 100000; k++) {
        int dip = c->dip_every && k >= c->dip_first && (k - c->dip_first) % c->dip_every == 0;
        tx += r * 0.25 * (dip ? 1 - c->lost_frac : 1);
        if (tx >= m)
            break;
        struct mig_sample s;
        struct est_out o;
        memset(&s, 0, sizeof(s));
        s.t_ms = k * 250;
        s.phase = MIG_PHASE_ACTIVE;
        s.ram_total = (uint64_t)m;
        s.ram_transferred = (uint64_t)tx;
        s.ram_remaining = (uint64_t)(m - tx);
        s.ram_normal = (uint64_t)(tx / 4096);
        s.page_size = 4096;
        s.bw_bps = (uint64_t)(r * (dip ? c->dip_frac : 1));
        s.dirty_sync_count = 1;
        s.setting_downtime_ms = 300;
        s.setting_max_bw_bps = (uint64_t)r;
        s.dirty_rate_hint_pps = 1; /* idle guest, measured so */
        REQUIRE(est_update(&e, &s) == 0, "est_update at %u", k);
        est_get(&e, &o);
        if (s.t_ms < 1250)
            continue; /* from the first sample with one a second older */
        double left = t_end * 1000.0 - (double)s.t_ms;
        if (left < 500)
            break; /* the pass-1 tail: the sync and the switchover */
        REQUIRE(o.eta_known && o.eta_ms != EST_ETA_INFINITE, "no ETA at %llu ms",
                (unsigned long long)s.t_ms);
        double err = fabs((double)o.eta_ms - left) / left;
        if (err > worst) {
            worst = err;
            worst_t = s.t_ms;
        }
    }
    printf("  worst ETA error %.1f %% at %llu ms\n", worst * 100, (unsigned long long)worst_t);
    CHECK(worst <= 0.10, "ETA off by %.1f %% at %llu ms", worst * 100, (unsigned long long)worst_t);
}

static void t_dips(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        printf("  case: %s\n", cases[i].name);
        run_case(&cases[i]);
    }
}

/* max-bandwidth raised from 32 to 128 MiB/s mid-pass: R follows. */
static void t_cap_change(void)
{
    const double m = 4096 * MIB;
    struct est e;
    struct est_out o;
    est_init(&e, NULL);
    double tx = 0;
    for (unsigned k = 1; k <= 40; k++) {
        double r = k <= 20 ? 32 * MIB : 128 * MIB;
        tx += r * 0.25;
        struct mig_sample s;
        memset(&s, 0, sizeof(s));
        s.t_ms = k * 250;
        s.phase = MIG_PHASE_ACTIVE;
        s.ram_total = (uint64_t)m;
        s.ram_transferred = (uint64_t)tx;
        s.ram_remaining = (uint64_t)(m - tx);
        s.ram_normal = (uint64_t)(tx / 4096);
        s.page_size = 4096;
        s.bw_bps = (uint64_t)r;
        s.dirty_sync_count = 1;
        s.setting_downtime_ms = 300;
        s.setting_max_bw_bps = (uint64_t)r;
        REQUIRE(est_update(&e, &s) == 0, "est_update");
        est_get(&e, &o);
        if (k == 20)
            CHECK(fabs(o.bw_bps - 32 * MIB) < 0.02 * 32 * MIB, "R %.1f MiB/s before the raise",
                  o.bw_bps / MIB);
        if (k == 21)
            CHECK(fabs(o.bw_bps - 128 * MIB) < 0.02 * 128 * MIB,
                  "R %.1f MiB/s right after the raise (the window's, the ring restarted)",
                  o.bw_bps / MIB);
        if (k >= 26)
            CHECK(fabs(o.bw_bps - 128 * MIB) < 0.02 * 128 * MIB, "R %.1f MiB/s at sample %u",
                  o.bw_bps / MIB, k);
    }
}

int main(void)
{
    test_run("estimator rate: pass-1 R over >= 1 s, not one dipped window", t_dips);
    test_run("estimator rate: R follows a max-bandwidth change", t_cap_change);
    return test_done();
}

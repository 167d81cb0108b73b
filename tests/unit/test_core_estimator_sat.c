/* Estimator with a working set (distinct pages saturate: what a pass of T
 * seconds dirties is H (1 - e^(-wT/H))): the predictor follows the curve
 * pass by pass, so a guest whose passes shrink towards a high short-window
 * rate is not taken to finish early; the census re-reads' working-set fit
 * pairs the latest re-read with one about a quarter of its age, so a noisy
 * first read (250 ms, a few sampled pages) is not taken for a working set,
 * while a real bend is. */
#include <math.h>
#include <string.h>

#include "../lib/test.h"
#include "core/estimator.h"
#include "util/ferr.h"

#define MIB 1048576.0

/* Time-stepped pre-copy (10 ms steps) from a sync at level v0: the guest
 * writes at w bytes/s uniformly over a working set h; pending drains at r;
 * QEMU syncs when pending is one 50 ms burst below r x limit, and switches
 * over when what the sync found is below r x limit. Returns seconds to the
 * end, or -1 after 2000 s. */
static double ref_finish(double v0, double r, double h, double w, double limit_s)
{
    const double dt = 0.01, thr = r * limit_s, floor_b = thr - r * 0.05;
    double p = v0, log = 0, t = 0;
    for (int i = 0; i < 200000; i++) {
        if (p <= floor_b) {
            p += log;
            log = 0;
            if (p <= thr)
                return t + p / r;
        }
        log += (h - log) * (1.0 - exp(-w * dt / h));
        p -= r * dt;
        if (p < 0)
            p = 0;
        t += dt;
    }
    return -1;
}

/* est_out after a sync at level v with the fitted curve (h, w). */
static void out_at_sync(struct est_out *o, double v, double r, double h, double w)
{
    memset(o, 0, sizeof(*o));
    o->bw_bps = r;
    o->dirty_measured = 1;
    o->dirty_bps = h * (1.0 - exp(-w * (v / r) / h)) / (v / r);
    o->ratio = o->dirty_bps / r;
    o->ram_total = (uint64_t)(8192 * MIB);
    o->ram_remaining = (uint64_t)v;
    o->level_bytes = (uint64_t)v;
    o->granularity_ms = 50;
    o->sat_ws_bytes = h;
    o->sat_w_bps = w;
    o->t_ms = 60000;
    o->phase = MIG_PHASE_ACTIVE;
}

static void t_sat_passes(void)
{
    /* busy guests (w up to 0.9 R): the passes shrink, each dirties at a
     * rate closer to w than the last; the ETA follows them */
    static const double wr[] = {0.3, 0.6, 0.8, 0.9};
    for (size_t i = 0; i < sizeof(wr) / sizeof(wr[0]); i++) {
        double r = 100 * MIB, h = 2048 * MIB, w = wr[i] * r, v = 1536 * MIB;
        struct est_out o;
        uint64_t eta = 0;
        out_at_sync(&o, v, r, h, w);
        double ref = ref_finish(v, r, h, w, 0.3);
        REQUIRE(ref > 0, "reference finishes (w/R %.1f)", wr[i]);
        REQUIRE(est_predict(&o, 300, &eta, NULL) == 0, "predict");
        REQUIRE(eta != EST_ETA_INFINITE, "finite ETA (w/R %.1f)", wr[i]);
        double err = fabs((double)eta / 1000.0 - ref) / ref;
        CHECK(err < 0.05, "w/R %.1f: ETA %.1f s vs %.1f s (%.1f %%)", wr[i], (double)eta / 1000.0,
              ref, err * 100);
    }
}

static void t_sat_monotone(void)
{
    /* a faster writer never finishes sooner; a larger working set neither */
    double r = 100 * MIB, v = 1024 * MIB;
    uint64_t prev = 0;
    for (int k = 1; k <= 9; k++) {
        struct est_out o;
        uint64_t eta = 0;
        out_at_sync(&o, v, r, 2048 * MIB, 0.1 * k * r);
        REQUIRE(est_predict(&o, 300, &eta, NULL) == 0, "predict");
        CHECK(eta >= prev, "w/R 0.%d: ETA %llu ms >= %llu ms", k, (unsigned long long)eta,
              (unsigned long long)prev);
        prev = eta;
    }
    prev = 0;
    for (int k = 1; k <= 8; k++) {
        struct est_out o;
        uint64_t eta = 0;
        out_at_sync(&o, v, r, 256 * MIB * k, 0.7 * r);
        REQUIRE(est_predict(&o, 300, &eta, NULL) == 0, "predict");
        CHECK(eta + 1 >= prev, "H %d MiB: ETA %llu ms >= %llu ms", 256 * k,
              (unsigned long long)eta, (unsigned long long)prev);
        prev = eta;
    }
}

/* Pass 1 of a 8 GiB guest at 100 MiB/s with the census re-reads at 0.25,
 * 0.5, 1, 2 ... s: distinct(T) = h (1 - e^(-wT/h)) (h 0: a line at w),
 * the first read multiplied by first_mul (its sampling error). Returns the
 * working set the estimator assumes after 33 s. */
static double pass1_ws(double h, double w, double first_mul)
{
    struct est e;
    struct est_out o;
    double r = 100 * MIB, m = 8192 * MIB;
    uint64_t next = 250, cen_ms = 0, cen_b = 0;
    est_init(&e, NULL);
    for (uint64_t t = 250; t <= 33000; t += 250) {
        struct mig_sample s;
        memset(&s, 0, sizeof(s));
        s.t_ms = t;
        s.phase = MIG_PHASE_ACTIVE;
        s.ram_total = (uint64_t)m;
        s.ram_transferred = (uint64_t)(r * (double)t / 1000.0);
        s.ram_remaining = (uint64_t)(m - r * (double)t / 1000.0);
        s.ram_normal = s.ram_transferred / 4096;
        s.page_size = 4096;
        s.bw_bps = (uint64_t)r;
        s.dirty_sync_count = 1;
        s.setting_downtime_ms = 300;
        if (t >= next) {
            double ts = (double)t / 1000.0;
            double d = h > 0 ? h * (1.0 - exp(-w * ts / h)) : w * ts;
            if (t == 250)
                d *= first_mul;
            cen_ms = t;
            cen_b = (uint64_t)d;
            next = 2 * t;
        }
        s.census_dirty_ms = cen_ms;
        s.census_dirty_bytes = cen_b;
        if (est_update(&e, &s) != 0) {
            CHECK(0, "update at %llu ms", (unsigned long long)t);
            return -1;
        }
    }
    est_get(&e, &o);
    CHECK(o.dirty_census, "rate from the census re-reads");
    return (double)o.hint_ws_bytes;
}

static void t_census_fit(void)
{
    /* a steady writer (a line) whose first read came out 5x too high: no
     * working set below what it has already written */
    double w = 30 * MIB, ws = pass1_ws(0, w, 5.0);
    CHECK(ws >= 0.95 * w * 32.0, "linear writer: working set %.0f MiB >= written %.0f MiB",
          ws / MIB, w * 32.0 / MIB);
    /* a real working set of 512 MiB written at 200 MiB/s: found */
    ws = pass1_ws(512 * MIB, 200 * MIB, 1.0);
    CHECK(fabs(ws - 512 * MIB) < 0.15 * 512 * MIB, "working set %.0f MiB ~ 512 MiB", ws / MIB);
    /* the same with a noisy first read: still found */
    ws = pass1_ws(512 * MIB, 200 * MIB, 0.5);
    CHECK(fabs(ws - 512 * MIB) < 0.15 * 512 * MIB, "noisy first read: %.0f MiB ~ 512 MiB",
          ws / MIB);
}

int main(void)
{
    test_run("estimator sat: pass-by-pass ETA on a saturating dirty curve", t_sat_passes);
    test_run("estimator sat: ETA monotone in write rate and working set", t_sat_monotone);
    test_run("estimator sat: census re-read fit ignores a noisy first read", t_census_fit);
    return test_done();
}

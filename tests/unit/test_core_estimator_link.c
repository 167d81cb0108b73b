/* Estimator, final stage: QEMU 7.2 lifts max-bandwidth at switchover
 * (migration_completion sets the rate limit to INT64_MAX), so on a capped
 * move what is pending then goes at the link's rate, not the cap's. Told
 * the link rate (est_params.link_bps), the estimator times the final stage
 * at it. Proven on simulated capped moves (ferry-sim's model sends the
 * final stage at the link rate, as QEMU does): a table of workloads under a
 * cap of 1/16 of the link; at every sample from 25 % of the run on, the
 * ETA of the estimator told the link is nearer the time really left than
 * the one that is not (both fed the very same samples), and its median
 * error over those samples is under 10 %. Also: the predicted pause near
 * the end is the link's, the controller's what-if (est_predict) keeps the
 * cap, a link below the measured rate changes nothing, and bad values read
 * as unknown. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/test.h"
#include "core/estimator.h"
#include "sim/run.h"

#define MIB 1048576.0
#define MAX_PTS 4000

struct link_case {
    const char *name;
    double ram_gib;
    double ws_mib;     /* working set */
    double dirty_mibs; /* page-write rate, MiB/s */
    double zero_frac;
};

static const struct link_case cases[] = {
    {"idle 1 GiB", 1, 0, 0, 0.3},
    {"16 MiB/s over 128 MiB", 1, 128, 16, 0.3},
    {"4 MiB/s over 256 MiB", 2, 256, 4, 0.5},
};

struct pts {
    struct est plain; /* not told the link */
    size_t n;
    double t[MAX_PTS], eta_link[MAX_PTS], eta_plain[MAX_PTS];
    double pause_link, pause_plain; /* predicted at the last active sample, ms */
};

static void on_sample(void *ud, const struct mig_sample *s, const struct est_out *e)
{
    struct pts *p = ud;
    struct est_out o;
    if (est_update(&p->plain, s) != 0)
        return;
    est_get(&p->plain, &o);
    if (s->phase != MIG_PHASE_ACTIVE || p->n >= MAX_PTS || !e->eta_known || !o.eta_known ||
        e->eta_ms == EST_ETA_INFINITE || o.eta_ms == EST_ETA_INFINITE)
        return;
    p->t[p->n] = (double)s->t_ms;
    p->eta_link[p->n] = (double)e->eta_ms;
    p->eta_plain[p->n] = (double)o.eta_ms;
    p->pause_link = (double)e->predicted_downtime_ms;
    p->pause_plain = (double)o.predicted_downtime_ms;
    p->n++;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void t_sim_moves(void)
{
    static struct pts p;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct link_case *c = &cases[i];
        struct sim_scenario sc;
        struct sim_result r;
        sim_scenario_default(&sc, c->ram_gib, 1024, SIM_POL_QEMU);
        sc.wl.ws_bytes = (uint64_t)(c->ws_mib * MIB);
        sc.wl.dirty_bps = c->dirty_mibs * MIB;
        sc.wl.zero_frac = c->zero_frac;
        sc.par.max_bw_bps = 64 * MIB; /* 1/16 of the link */
        sc.census = 1;
        memset(&p, 0, sizeof(p));
        est_init(&p.plain, NULL);
        /* the plain estimator gets the same census as the sim's own */
        uint64_t cnz, prof[EST_CENSUS_BUCKETS];
        double cerr;
        struct precopy m;
        REQUIRE(precopy_init(&m, &sc.wl, &sc.par, NULL) == 0, "%s: model", c->name);
        sim_census(&sc, &m, &cnz, &cerr, NULL, prof);
        est_set_census(&p.plain, cnz, sc.wl.ram_bytes, cerr);
        REQUIRE(est_set_census_profile(&p.plain, prof, EST_CENSUS_BUCKETS) == 0, "profile");
        REQUIRE(sim_run(&sc, &r, on_sample, NULL, &p, NULL) == 0, "%s: run", c->name);
        REQUIRE(r.completed, "%s: completed", c->name);
        REQUIRE(p.n >= 8, "%s: %zu asks", c->name, p.n);
        static double err[MAX_PTS], errp[MAX_PTS];
        size_t ne = 0;
        for (size_t k = 0; k < p.n; k++) {
            double left = r.total_ms - p.t[k];
            if (p.t[k] < 0.25 * r.total_ms || left <= 0)
                continue;
            errp[ne] = fabs(p.eta_plain[k] - left) / left * 100.0;
            err[ne++] = fabs(p.eta_link[k] - left) / left * 100.0;
        }
        qsort(err, ne, sizeof(err[0]), cmp_d);
        qsort(errp, ne, sizeof(errp[0]), cmp_d);
        double med = ne ? err[ne / 2] : 100, medp = ne ? errp[ne / 2] : 100;
        printf("  %s: %.2f s, %zu asks from 25 %%: median |err| %.1f %% told the link, %.1f %% "
               "not; pause at the end %.0f ms told, %.0f ms not (sim %.0f ms)\n",
               c->name, r.total_ms / 1000, ne, med, medp, p.pause_link, p.pause_plain,
               r.downtime_ms);
        CHECK(ne > 0 && med < 10.0, "%s: median error %.1f %%", c->name, med);
        CHECK(med < medp, "%s: median %.1f %% told the link, %.1f %% not", c->name, med, medp);
        CHECK(p.pause_link < p.pause_plain / 4 + 1, "%s: pause %.0f ms told, %.0f ms not", c->name,
              p.pause_link, p.pause_plain);
    }
}

/* Pass 1 of an idle 256 MiB guest (every page non-zero, calc-dirty-rate
 * 1 page/s) capped at 32 MiB/s, 2 s in: 192 MiB left; the last sample's
 * phase as given (24 MiB left when it is past switchover). */
static void feed_steady(struct est *e, enum mig_phase last_phase)
{
    const double r = 32 * MIB;
    double tx = 0;
    for (unsigned k = 1; k <= 8; k++) {
        struct mig_sample s;
        memset(&s, 0, sizeof(s));
        tx += r * 0.25;
        s.t_ms = k * 250;
        s.phase = k == 8 ? last_phase : MIG_PHASE_ACTIVE;
        s.ram_total = (uint64_t)(256 * MIB);
        s.ram_transferred = (uint64_t)tx;
        s.dirty_sync_count = 1;
        s.ram_remaining =
            s.phase == MIG_PHASE_ACTIVE ? (uint64_t)(256 * MIB - tx) : (uint64_t)(24 * MIB);
        s.ram_normal = (uint64_t)(tx / 4096);
        s.dirty_rate_hint_pps = 1;
        s.page_size = 4096;
        s.bw_bps = (uint64_t)r;
        s.setting_downtime_ms = 300;
        s.setting_max_bw_bps = (uint64_t)r;
        REQUIRE(est_update(e, &s) == 0, "est_update");
    }
}

static void t_properties(void)
{
    struct est a, b;
    struct est_out oa, ob;
    struct est_params pl;
    memset(&pl, 0, sizeof(pl));
    pl.link_bps = 512 * MIB;
    est_init(&a, NULL);
    est_init(&b, &pl);
    feed_steady(&a, MIG_PHASE_ACTIVE);
    feed_steady(&b, MIG_PHASE_ACTIVE);
    est_get(&a, &oa);
    est_get(&b, &ob);
    REQUIRE(oa.eta_known && ob.eta_known, "ETA known");
    CHECK(ob.link_bps == 512 * MIB && oa.link_bps == 0, "link published");
    CHECK(ob.predicted_downtime_ms * 8 <= oa.predicted_downtime_ms + 8,
          "pause %llu ms told the link (16x R), %llu ms not",
          (unsigned long long)ob.predicted_downtime_ms,
          (unsigned long long)oa.predicted_downtime_ms);
    CHECK(ob.eta_ms < oa.eta_ms, "ETA %llu ms told, %llu not", (unsigned long long)ob.eta_ms,
          (unsigned long long)oa.eta_ms);
    /* the controller's what-if keeps the final stage at R */
    uint64_t ea, eb, pa, pb;
    REQUIRE(est_predict(&oa, 300, &ea, &pa) == 0 && est_predict(&ob, 300, &eb, &pb) == 0,
            "est_predict");
    CHECK(ea == eb && pa == pb, "what-if %llu/%llu vs %llu/%llu", (unsigned long long)ea,
          (unsigned long long)pa, (unsigned long long)eb, (unsigned long long)pb);
    /* a link below the measured rate: the final stage at R */
    struct est c;
    est_init(&c, NULL);
    est_set_link(&c, 8 * MIB);
    feed_steady(&c, MIG_PHASE_ACTIVE);
    struct est_out oc;
    est_get(&c, &oc);
    CHECK(oc.eta_ms == oa.eta_ms, "slow link: %llu ms vs %llu", (unsigned long long)oc.eta_ms,
          (unsigned long long)oa.eta_ms);
    /* bad values read as unknown */
    const double bad[] = {-1, NAN, INFINITY, 0};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct est d;
        pl.link_bps = bad[i];
        est_init(&d, &pl);
        CHECK(d.p.link_bps == 0, "params link %g kept", bad[i]);
        est_set_link(&d, bad[i]);
        CHECK(d.p.link_bps == 0, "est_set_link %g kept", bad[i]);
    }
    /* past switchover (device phase) the rest goes at the link rate */
    struct est f;
    pl.link_bps = 512 * MIB;
    est_init(&f, &pl);
    feed_steady(&f, MIG_PHASE_DEVICE);
    struct est_out of;
    est_get(&f, &of);
    CHECK(of.eta_known && of.eta_ms <= 48, "device phase ETA %llu ms",
          (unsigned long long)of.eta_ms);
}

int main(void)
{
    test_run("estimator link: capped simulated moves, final stage at the link rate", t_sim_moves);
    test_run("estimator link: pause, what-if, slow link, bad values, device phase", t_properties);
    return test_done();
}

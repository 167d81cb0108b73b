/* Estimator hints from an earlier migration of the same instance
 * (est_params.hint_nonzero_bytes, hint_dirty_set_bytes, hint_dirty_bps):
 * what they fix in pass 1, that stale ones are ignored, and that the
 * estimator publishes them for the next migration. */
#include <math.h>
#include <string.h>

#include "../lib/test.h"
#include "core/estimator.h"
#include "util/ferr.h"

#define MIB 1048576.0
#define PAGE 4096.0

/* A pass-1-first pre-copy like the lab's guests: RAM is nz bytes of data
 * followed by zero pages, which the scan passes at zr bytes/s of RAM
 * (9 bytes each on the wire); data goes at r bytes/s. The guest dirties
 * d bytes/s of distinct pages, capped at ws, which join the bitmap at a
 * sync (when what is dirty drops below r * 300 ms); switchover when the
 * synced amount is below that. Samples every 250 ms, steps of 10 ms. */
struct gen {
    double m, nz, zr, r, d, ws;
    double scan;    /* pass 1 cursor, bytes of RAM */
    double v;       /* dirty bytes after pass 1 */
    double dirtied; /* since the last sync, bytes */
    double tx, normal, dup;
    uint64_t t_ms, sync;
    int done;
    double end_ms;
};

static void gen_init(struct gen *g, double m, double nz, double r, double d, double ws)
{
    memset(g, 0, sizeof(*g));
    g->m = m;
    g->nz = nz;
    g->zr = 2e6 * PAGE; /* ferry-sim scan_pps; the lab scans zeros ~free */
    g->r = r;
    g->d = d;
    g->ws = ws;
    g->sync = 1;
}

static void gen_sample(struct gen *g, struct mig_sample *s)
{
    const double thr = g->r * 0.3;
    for (int i = 0; i < 25 && !g->done; i++) {
        double dt = 0.010;
        g->t_ms += 10;
        g->dirtied = fmin(g->dirtied + g->d * dt, g->ws);
        if (g->sync == 1) { /* pass 1 */
            double step = g->scan < g->nz ? g->r * dt : g->zr * dt;
            if (g->scan < g->nz && g->scan + step > g->nz)
                step = g->nz - g->scan;
            if (g->scan < g->nz) {
                g->tx += step;
                g->normal += step / PAGE;
            } else {
                g->tx += step / PAGE * 9;
                g->dup += step / PAGE;
            }
            g->scan = fmin(g->scan + step, g->m);
            if (g->scan < g->m)
                continue;
            g->v = 0;
        } else {
            double send = fmin(g->r * dt, g->v);
            g->v -= send;
            g->tx += send;
            g->normal += send / PAGE;
        }
        if (g->v < thr) {
            g->v += g->dirtied;
            g->dirtied = 0;
            g->sync++;
            if (g->v <= thr) {
                g->end_ms = (double)g->t_ms + g->v / g->r * 1000.0;
                g->done = 1;
            }
        }
    }
    memset(s, 0, sizeof(*s));
    s->t_ms = g->t_ms;
    s->phase = g->done ? MIG_PHASE_COMPLETED : MIG_PHASE_ACTIVE;
    s->ram_total = (uint64_t)g->m;
    s->ram_transferred = (uint64_t)g->tx;
    s->ram_remaining = (uint64_t)(g->sync == 1 ? g->m - g->scan : g->v);
    s->ram_duplicate = (uint64_t)g->dup;
    s->ram_normal = (uint64_t)g->normal;
    s->bw_bps = (uint64_t)g->r;
    s->dirty_sync_count = g->sync;
    s->dirty_pages_rate = g->sync > 1 ? (uint64_t)(g->d / PAGE) : 0;
    s->setting_downtime_ms = 300;
}

/* Runs the generator to the end; returns the total time, ms. */
static double gen_total_ms(double m, double nz, double r, double d, double ws)
{
    struct gen g;
    struct mig_sample s;
    gen_init(&g, m, nz, r, d, ws);
    while (!g.done && g.t_ms < 600000)
        gen_sample(&g, &s);
    return g.end_ms;
}

/* Replays the same migration through an estimator with params p; returns
 * the absolute % error of the ETA at the first sample at or after frac of
 * the total time, and the final estimate in *fin (may be NULL). */
static double eta_err(const struct est_params *p, double m, double nz, double r, double d,
                      double ws, double frac, struct est_out *fin)
{
    double total = gen_total_ms(m, nz, r, d, ws), err = -1;
    struct gen g;
    struct mig_sample s;
    struct est e;
    struct est_out o;
    est_init(&e, p);
    gen_init(&g, m, nz, r, d, ws);
    while (!g.done && g.t_ms < 600000) {
        gen_sample(&g, &s);
        if (est_update(&e, &s) != 0)
            return 1e9;
        est_get(&e, &o);
        if (err < 0 && (double)s.t_ms >= frac * total && s.phase == MIG_PHASE_ACTIVE) {
            double left = total - (double)s.t_ms;
            err = o.eta_known && o.eta_ms != EST_ETA_INFINITE
                      ? fabs((double)o.eta_ms - left) / left * 100.0
                      : 1e9;
        }
    }
    if (fin)
        *fin = o;
    return err;
}

/* The lab's case: half the RAM zero pages at the end of the scan. Without
 * the hint pass 1 looks twice as long as it is; with it the ETA is right. */
static void t_nonzero_hint(void)
{
    static const struct {
        double m_mib, nz_mib, r_mibs, d_mibs, ws_mib;
    } cases[] = {
        {256, 128, 64, 0, 64},   /* idle */
        {256, 128, 32, 0, 64},   /* idle, slower link */
        {1024, 300, 100, 2, 64}, /* light writer */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double m = cases[i].m_mib * MIB, nz = cases[i].nz_mib * MIB, r = cases[i].r_mibs * MIB;
        double d = cases[i].d_mibs * MIB, ws = cases[i].ws_mib * MIB;
        struct est_params p;
        memset(&p, 0, sizeof(p));
        double none25 = eta_err(&p, m, nz, r, d, ws, 0.25, NULL);
        p.hint_nonzero_bytes = (uint64_t)nz;
        p.hint_dirty_bps = d > 0 ? d : 1;
        double h25 = eta_err(&p, m, nz, r, d, ws, 0.25, NULL);
        double h50 = eta_err(&p, m, nz, r, d, ws, 0.50, NULL);
        CHECK(none25 > 40, "case %zu: without hints pass 1 should look long (%.1f %%)", i, none25);
        CHECK(h25 <= 10 && h50 <= 10, "case %zu: hinted ETA error %.1f %% / %.1f %%", i, h25, h50);
    }
}

/* A hint below what pass 1 has already sent in full is stale: the
 * estimate is then the one without hints. */
static void t_stale_nonzero_hint(void)
{
    double m = 256 * MIB, nz = 128 * MIB, r = 64 * MIB;
    struct est_params p;
    memset(&p, 0, sizeof(p));
    struct gen g;
    struct mig_sample s;
    struct est a, b;
    struct est_out oa, ob;
    est_init(&a, &p);
    p.hint_nonzero_bytes = (uint64_t)(8 * MIB);
    est_init(&b, &p);
    gen_init(&g, m, nz, r, 0, 0);
    for (int k = 0; k < 4; k++) { /* 1 s: 64 MiB sent */
        gen_sample(&g, &s);
        REQUIRE(est_update(&a, &s) == 0 && est_update(&b, &s) == 0, "update");
    }
    est_get(&a, &oa);
    est_get(&b, &ob);
    CHECK(!ob.nonzero_hinted, "stale hint used");
    CHECK(oa.eta_ms == ob.eta_ms, "stale hint changed the ETA: %llu vs %llu",
          (unsigned long long)ob.eta_ms, (unsigned long long)oa.eta_ms);
}

/* est_set_hints after est_init is the same as the params; the estimator
 * publishes, at the end, what the next migration should be hinted with. */
static void t_set_and_publish(void)
{
    double m = 256 * MIB, nz = 128 * MIB, r = 32 * MIB, d = 4 * MIB, ws = 64 * MIB;
    struct est_params p;
    memset(&p, 0, sizeof(p));
    p.hint_nonzero_bytes = (uint64_t)nz;
    p.hint_dirty_bps = d;
    struct est a, b;
    est_init(&a, &p);
    est_init(&b, NULL);
    est_set_hints(&b, (uint64_t)nz, 0, d);
    struct gen g;
    struct mig_sample s;
    struct est_out oa, ob;
    gen_init(&g, m, nz, r, d, ws);
    int same = 1;
    while (!g.done) {
        gen_sample(&g, &s);
        REQUIRE(est_update(&a, &s) == 0 && est_update(&b, &s) == 0, "update");
        est_get(&a, &oa);
        est_get(&b, &ob);
        same = same && oa.eta_ms == ob.eta_ms;
    }
    CHECK(same, "est_set_hints differs from est_params");
    struct est_out fin;
    eta_err(NULL, m, nz, r, d, ws, 0.25, &fin);
    CHECK(fabs(fin.pass1_dirty_bps - d) < 0.05 * d, "pass1_dirty_bps %.0f, want ~%.0f",
          fin.pass1_dirty_bps, d);
    eta_err(NULL, m, nz, r, 0, ws, 0.25, &fin);
    CHECK(fin.pass1_dirty_bps > 0 && fin.pass1_dirty_bps < 0.01 * MIB,
          "idle guest: pass1_dirty_bps %.0f, want a small positive rate", fin.pass1_dirty_bps);
    /* without a rate hint the set found is no known working set */
    CHECK(fin.dirty_set_bytes == 0, "dirty_set_bytes %llu without saturation evidence",
          (unsigned long long)fin.dirty_set_bytes);
}

/* The earlier migration's pass-1 rate beats the prior (rho 0.1) for a
 * writer busy enough to matter. */
static void t_dirty_rate_hint(void)
{
    double m = 512 * MIB, nz = 512 * MIB, r = 64 * MIB, d = 24 * MIB, ws = 256 * MIB;
    struct est_params p;
    memset(&p, 0, sizeof(p));
    p.hint_nonzero_bytes = (uint64_t)nz;
    double prior = eta_err(&p, m, nz, r, d, ws, 0.25, NULL);
    p.hint_dirty_bps = d;
    double hinted = eta_err(&p, m, nz, r, d, ws, 0.25, NULL);
    CHECK(hinted <= 10 && hinted < prior, "ETA error at 25 %%: hinted %.1f %%, prior %.1f %%",
          hinted, prior);
}

int main(void)
{
    test_run("estimator hints: non-zero RAM fixes pass 1 with zero pages at the end",
             t_nonzero_hint);
    test_run("estimator hints: a stale non-zero hint is ignored", t_stale_nonzero_hint);
    test_run("estimator hints: est_set_hints == params; the next hints are published",
             t_set_and_publish);
    test_run("estimator hints: an earlier pass-1 dirty rate beats the prior", t_dirty_rate_hint);
    return test_done();
}

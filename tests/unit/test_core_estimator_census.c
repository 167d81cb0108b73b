/* Estimator with a pre-migration memory census (est_params.census_*,
 * est_set_census): the count of non-zero RAM taken at t0 fixes the pass-1
 * ETA wherever the zero pages lie; progress stays monotone and the ETA
 * reaches 0 at completion; a census wrong by -20 % / +20 % degrades the
 * ETA gracefully (bounded error, never worse than the estimate without
 * census by more than the census's own error); an exceeded census is
 * dropped; its standard error widens the interval. */
#include <math.h>
#include <string.h>

#include "../lib/test.h"
#include "core/estimator.h"
#include "util/ferr.h"

#define MIB 1048576.0
#define PAGE 4096.0
#define CHUNK MIB /* layout granularity of zero / non-zero RAM */

enum layout { ZERO_TAIL = 0, ZERO_HEAD, ZERO_INTERLEAVED, LAYOUT__COUNT };
static const char *const layout_name[LAYOUT__COUNT] = {"zero pages last", "zero pages first",
                                                       "interleaved"};

/* A QEMU-like pre-copy: RAM m bytes, nz of them non-zero in the given
 * layout; pass 1 sends non-zero pages at r bytes/s and scans zero pages at
 * zr bytes/s of RAM (9 bytes each on the wire). The guest dirties d
 * bytes/s of distinct pages capped at ws; they join the bitmap at a sync
 * (when what is dirty drops below r x 300 ms); switchover when the synced
 * amount is below that. Samples every 250 ms, steps of 10 ms. */
struct gen {
    double m, nz, zr, r, d, ws;
    enum layout lay;
    double scan, v, dirtied, tx, normal, dup, end_ms;
    uint64_t t_ms, sync;
    int done;
    int curve;         /* census re-reads on (agent's census_tick) */
    uint64_t cen_next; /* next re-read at, ms */
    uint64_t cen_ms;   /* last re-read at, ms */
    double cen_bytes;  /* written since t0 then, bytes */
    int no_rate_hint;  /* no calc-dirty-rate result */
};

static int is_zero(const struct gen *g, double pos)
{
    switch (g->lay) {
    case ZERO_TAIL:
        return pos >= g->nz;
    case ZERO_HEAD:
        return pos < g->m - g->nz;
    case ZERO_INTERLEAVED:
    default: {
        /* chunk k is non-zero when floor((k+1) f) > floor(k f), f = nz/m */
        double k = floor(pos / CHUNK), f = g->nz / g->m;
        return floor((k + 1) * f) <= floor(k * f);
    }
    }
}

static void gen_init(struct gen *g, enum layout lay, double m, double nz, double r, double d,
                     double ws)
{
    memset(g, 0, sizeof(*g));
    g->lay = lay;
    g->m = m;
    g->nz = nz;
    g->zr = 2e6 * PAGE;
    g->r = r;
    g->d = d;
    g->ws = ws;
    g->sync = 1;
    g->cen_next = 250;
}

static void gen_sample(struct gen *g, struct mig_sample *s)
{
    const double thr = g->r * 0.3;
    for (int i = 0; i < 25 && !g->done; i++) {
        const double dt = 0.010;
        g->t_ms += 10;
        g->dirtied = fmin(g->dirtied + g->d * dt, g->ws);
        if (g->sync == 1) { /* pass 1: walk the chunks in address order */
            double left_s = dt;
            while (left_s > 1e-12 && g->scan < g->m) {
                int z = is_zero(g, g->scan);
                double rate = z ? g->zr : g->r;
                double to_end = (floor(g->scan / CHUNK) + 1) * CHUNK - g->scan;
                double step = fmin(rate * left_s, fmin(to_end, g->m - g->scan));
                if (z) {
                    g->tx += step / PAGE * 9;
                    g->dup += step / PAGE;
                } else {
                    g->tx += step;
                    g->normal += step / PAGE;
                }
                g->scan += step;
                left_s -= step / rate;
            }
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
    if (g->curve && g->sync == 1 && g->t_ms >= g->cen_next) {
        /* what the census re-read finds: distinct pages written since t0
         * (the generator's writer fills its set at d, then rewrites it) */
        g->cen_bytes = fmin(g->d * (double)g->t_ms / 1000.0, g->ws);
        g->cen_ms = g->t_ms;
        g->cen_next = 2 * g->t_ms;
    }
    memset(s, 0, sizeof(*s));
    s->t_ms = g->t_ms;
    s->census_dirty_bytes = (uint64_t)g->cen_bytes;
    s->census_dirty_ms = g->cen_ms;
    s->phase = g->done ? MIG_PHASE_COMPLETED : MIG_PHASE_ACTIVE;
    s->ram_total = (uint64_t)g->m;
    s->ram_transferred = (uint64_t)g->tx;
    s->ram_remaining = (uint64_t)(g->sync == 1 ? g->m - g->scan : g->v);
    s->ram_duplicate = (uint64_t)g->dup;
    s->ram_normal = (uint64_t)g->normal;
    s->bw_bps = (uint64_t)g->r;
    s->dirty_sync_count = g->sync;
    s->dirty_pages_rate = g->sync > 1 ? (uint64_t)(g->d / PAGE) : 0;
    /* calc-dirty-rate: distinct pages over 1 s, from 1 s on */
    if (!g->no_rate_hint && g->t_ms >= 1000)
        s->dirty_rate_hint_pps = g->d > 0 ? (uint64_t)(fmin(g->d, g->ws) / PAGE) : 1;
    s->setting_downtime_ms = 300;
}

struct kase {
    double m_mib, nz_mib, r_mibs, d_mibs, ws_mib;
};

static const struct kase cases[] = {
    {256, 128, 64, 0, 64},   /* the lab's idle guest */
    {256, 128, 32, 1, 64},   /* light writer, slower link */
    {1024, 300, 100, 2, 64}, /* mostly zero */
    {512, 448, 64, 4, 128},  /* mostly data */
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

struct run {
    double total_ms;
    double err[2];     /* abs % ETA error at 25 %, 50 % of the total */
    int monotone;      /* progress never went back */
    int final_zero;    /* ETA 0 and progress 100 at completion */
    int census_used;   /* nonzero_census was set at the 25 % ask */
    uint64_t width_25; /* eta_high - eta_low at the 25 % ask, ms */
};

/* Runs case k with layout lay through an estimator given a census of
 * nz x bias (0: no census) with relative error rel, with its profile when
 * profile is set, and its re-reads (the written-since-census curve);
 * fills *out. */
static void run_case(const struct kase *k, enum layout lay, double bias, double rel, int profile,
                     struct run *out)
{
    double m = k->m_mib * MIB, nz = k->nz_mib * MIB, r = k->r_mibs * MIB, d = k->d_mibs * MIB;
    double ws = k->ws_mib * MIB, prev = 0;
    const double fr[2] = {0.25, 0.50};
    struct gen g;
    struct mig_sample s;
    struct est e;
    struct est_out o;
    memset(out, 0, sizeof(*out));
    gen_init(&g, lay, m, nz, r, d, ws);
    while (!g.done && g.t_ms < 600000)
        gen_sample(&g, &s);
    out->total_ms = g.end_ms;
    out->err[0] = out->err[1] = -1;
    out->monotone = 1;
    est_init(&e, NULL);
    gen_init(&g, lay, m, nz, r, d, ws);
    g.curve = bias > 0; /* the agent re-reads its census sample */
    if (bias > 0) {
        /* the census: total and profile, both off by bias */
        uint64_t prof[EST_CENSUS_BUCKETS] = {0};
        double bs = m / EST_CENSUS_BUCKETS;
        for (double pos = 0; pos < m; pos += CHUNK)
            if (!is_zero(&g, pos))
                prof[(int)(pos / bs)] += (uint64_t)(CHUNK * bias);
        est_set_census(&e, (uint64_t)(nz * bias), (uint64_t)m, rel);
        if (profile)
            REQUIRE(est_set_census_profile(&e, prof, EST_CENSUS_BUCKETS) == 0, "profile");
    }
    memset(&o, 0, sizeof(o));
    while (!g.done && g.t_ms < 600000) {
        gen_sample(&g, &s);
        if (est_update(&e, &s) != 0)
            return;
        est_get(&e, &o);
        if (o.progress_pct < prev)
            out->monotone = 0;
        prev = o.progress_pct;
        for (int f = 0; f < 2; f++) {
            if (out->err[f] >= 0 || (double)s.t_ms < fr[f] * out->total_ms ||
                s.phase != MIG_PHASE_ACTIVE)
                continue;
            double left = out->total_ms - (double)s.t_ms;
            out->err[f] = o.eta_known && o.eta_ms != EST_ETA_INFINITE
                              ? fabs((double)o.eta_ms - left) / left * 100.0
                              : 1e9;
            if (f == 0) {
                out->census_used = o.nonzero_census;
                out->width_25 =
                    o.eta_high_ms == EST_ETA_INFINITE ? UINT64_MAX : o.eta_high_ms - o.eta_low_ms;
            }
        }
    }
    out->final_zero = g.done && o.eta_known && o.eta_ms == 0 && o.progress_pct == 100.0;
}

/* With an honest census the ETA is within 10 % at 25 % and 50 % of the
 * run, whatever the layout; without it, zero pages at the end make pass 1
 * look far longer than it is. */
static void t_census_fixes_pass1(void)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int l = 0; l < LAYOUT__COUNT; l++) {
            struct run with, without, count_only;
            run_case(&cases[i], (enum layout)l, 1.0, 0.005, 1, &with);
            run_case(&cases[i], (enum layout)l, 1.0, 0.005, 0, &count_only);
            run_case(&cases[i], (enum layout)l, 0, 0, 1, &without);
            CHECK(with.census_used, "case %zu %s: census not used", i, layout_name[l]);
            CHECK(count_only.err[0] >= 0 && count_only.err[0] <= 10 && count_only.err[1] >= 0 &&
                      count_only.err[1] <= 10,
                  "case %zu %s: census count alone: ETA error %.1f %% / %.1f %%", i, layout_name[l],
                  count_only.err[0], count_only.err[1]);
            CHECK(with.err[0] >= 0 && with.err[0] <= 10 && with.err[1] >= 0 && with.err[1] <= 10,
                  "case %zu %s: census ETA error %.1f %% / %.1f %% (without %.1f / %.1f)", i,
                  layout_name[l], with.err[0], with.err[1], without.err[0], without.err[1]);
            if (l == ZERO_TAIL && cases[i].nz_mib < 0.6 * cases[i].m_mib)
                CHECK(without.err[0] > 40,
                      "case %zu: without census pass 1 should look long (%.1f)", i, without.err[0]);
        }
}

/* Properties under every census (none, honest, -20 %, +20 %): progress
 * never goes back; at completion the ETA is 0 and progress 100. */
static void t_properties(void)
{
    static const double bias[] = {0, 1.0, 0.8, 1.2};
    for (size_t i = 0; i < NCASES; i++)
        for (int l = 0; l < LAYOUT__COUNT; l++)
            for (size_t b = 0; b < sizeof(bias) / sizeof(bias[0]); b++) {
                for (int prof = 0; prof < 2; prof++) {
                    struct run x;
                    run_case(&cases[i], (enum layout)l, bias[b], 0.01, prof, &x);
                    CHECK(x.monotone, "case %zu %s bias %.1f profile %d: progress went back", i,
                          layout_name[l], bias[b], prof);
                    CHECK(x.final_zero,
                          "case %zu %s bias %.1f profile %d: ETA/progress not 0/100 at the end", i,
                          layout_name[l], bias[b], prof);
                }
            }
}

/* A census off by 20 % either way: the ETA error at 25 % and 50 % stays
 * within 30 % (the census error plus the dirty-rate model's own), and an
 * overcount never makes it worse than no census at all. */
static void t_wrong_census_graceful(void)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int l = 0; l < LAYOUT__COUNT; l++) {
            struct run lo, hi, none;
            run_case(&cases[i], (enum layout)l, 0.8, 0.005, 1, &lo);
            run_case(&cases[i], (enum layout)l, 1.2, 0.005, 1, &hi);
            run_case(&cases[i], (enum layout)l, 0, 0, 1, &none);
            for (int f = 0; f < 2; f++) {
                CHECK(lo.err[f] >= 0 && lo.err[f] <= 30, "case %zu %s census -20 %%: %.1f %% at %s",
                      i, layout_name[l], lo.err[f], f ? "50 %" : "25 %");
                CHECK(hi.err[f] >= 0 && hi.err[f] <= 30, "case %zu %s census +20 %%: %.1f %% at %s",
                      i, layout_name[l], hi.err[f], f ? "50 %" : "25 %");
                CHECK(hi.err[f] <= none.err[f] + 1.0,
                      "case %zu %s census +20 %%: %.1f %% worse than none %.1f %%", i,
                      layout_name[l], hi.err[f], none.err[f]);
            }
        }
}

/* A census below what pass 1 has already sent in full is dropped: the
 * estimate is then the one without census. est_set_census equals the
 * params. */
static void t_exceeded_and_setter(void)
{
    double m = 256 * MIB, nz = 128 * MIB, r = 64 * MIB;
    struct est_params p;
    struct gen g;
    struct mig_sample s;
    struct est a, b, c;
    struct est_out oa, ob, oc;
    memset(&p, 0, sizeof(p));
    est_init(&a, &p);
    est_init(&b, &p);
    est_set_census(&b, (uint64_t)(8 * MIB), (uint64_t)m, 0);
    p.census_nonzero_bytes = (uint64_t)nz;
    p.census_ram_bytes = (uint64_t)m;
    est_init(&c, &p);
    gen_init(&g, ZERO_TAIL, m, nz, r, 0, 0);
    int same = 1;
    struct est d;
    est_init(&d, NULL);
    est_set_census(&d, (uint64_t)nz, (uint64_t)m, 0);
    while (!g.done) {
        struct est_out od;
        gen_sample(&g, &s);
        REQUIRE(est_update(&a, &s) == 0 && est_update(&b, &s) == 0 && est_update(&c, &s) == 0 &&
                    est_update(&d, &s) == 0,
                "update");
        est_get(&c, &oc);
        est_get(&d, &od);
        same = same && oc.eta_ms == od.eta_ms && oc.progress_pct == od.progress_pct;
        if (s.t_ms == 1000) { /* 1 s: 64 MiB sent, past the 8 MiB census */
            est_get(&a, &oa);
            est_get(&b, &ob);
            CHECK(!ob.nonzero_census, "exceeded census still used");
            CHECK(oa.eta_ms == ob.eta_ms, "exceeded census changed the ETA: %llu vs %llu",
                  (unsigned long long)ob.eta_ms, (unsigned long long)oa.eta_ms);
            CHECK(oc.nonzero_census && oc.pass1_left_bytes == (uint64_t)(nz - s.ram_normal * PAGE),
                  "census left %llu", (unsigned long long)oc.pass1_left_bytes);
        }
    }
    CHECK(same, "est_set_census differs from est_params");
}

/* RAM outside the census (ROMs) counts as non-zero; the census's standard
 * error widens the pass-1 interval. */
static void t_uncovered_and_interval(void)
{
    double m = 256 * MIB, nz = 128 * MIB, r = 64 * MIB;
    struct gen g;
    struct mig_sample s;
    struct est a, b;
    struct est_out oa, ob;
    est_init(&a, NULL);
    est_init(&b, NULL);
    est_set_census(&a, (uint64_t)(nz - 2 * MIB), (uint64_t)(m - 2 * MIB), 0);
    est_set_census(&b, (uint64_t)nz, (uint64_t)m, 0);
    gen_init(&g, ZERO_TAIL, m, nz, r, 0, 0);
    gen_sample(&g, &s);
    REQUIRE(est_update(&a, &s) == 0 && est_update(&b, &s) == 0, "update");
    est_get(&a, &oa);
    est_get(&b, &ob);
    CHECK(oa.pass1_left_bytes == ob.pass1_left_bytes, "uncovered RAM: %llu vs %llu",
          (unsigned long long)oa.pass1_left_bytes, (unsigned long long)ob.pass1_left_bytes);
    struct run tight, wide;
    run_case(&cases[0], ZERO_TAIL, 1.0, 0.0, 1, &tight);
    run_case(&cases[0], ZERO_TAIL, 1.0, 0.2, 1, &wide);
    CHECK(wide.width_25 > tight.width_25, "interval %llu ms with 20 %% census error, %llu without",
          (unsigned long long)wide.width_25, (unsigned long long)tight.width_25);
    CHECK(fabs(wide.err[0] - tight.err[0]) < 1e-9, "census error moved the ETA itself");
}

/* The census re-reads (census_dirty_*): a writer whose set is far below
 * the share of RAM the pass-1 model assumes (25 %) fills it within the
 * pass; from the curve distinct(T) the estimator fits the set, and the
 * ETA is right where the count alone (and the 1 s calc-dirty-rate rate)
 * overestimates the first sync. An idle guest's flat curve is a rate of
 * 0 from 250 ms on, before calc-dirty-rate answers. */
static void t_dirty_curve(void)
{
    static const struct kase busy[] = {
        {512, 448, 64, 24, 32},  /* small hot set, busy */
        {1024, 900, 64, 16, 24}, /* bigger guest: its set fills in 1.5 s */
    };
    for (size_t i = 0; i < sizeof(busy) / sizeof(busy[0]); i++) {
        const struct kase *k = &busy[i];
        double err[2][2];
        for (int curve = 0; curve < 2; curve++) {
            double m = k->m_mib * MIB, nz = k->nz_mib * MIB, r = k->r_mibs * MIB;
            double d = k->d_mibs * MIB, ws = k->ws_mib * MIB, total;
            struct gen g;
            struct mig_sample s;
            struct est e;
            struct est_out o;
            gen_init(&g, ZERO_TAIL, m, nz, r, d, ws);
            while (!g.done && g.t_ms < 600000)
                gen_sample(&g, &s);
            total = g.end_ms;
            est_init(&e, NULL);
            est_set_census(&e, (uint64_t)nz, (uint64_t)m, 0.005);
            gen_init(&g, ZERO_TAIL, m, nz, r, d, ws);
            g.curve = curve;
            err[curve][0] = err[curve][1] = -1;
            while (!g.done && g.t_ms < 600000) {
                gen_sample(&g, &s);
                REQUIRE(est_update(&e, &s) == 0, "update");
                est_get(&e, &o);
                for (int f = 0; f < 2; f++) {
                    double at = (f ? 0.5 : 0.25) * total, left = total - (double)s.t_ms;
                    if (err[curve][f] >= 0 || (double)s.t_ms < at || s.phase != MIG_PHASE_ACTIVE)
                        continue;
                    err[curve][f] = o.eta_known ? fabs((double)o.eta_ms - left) / left * 100 : 1e9;
                    if (curve)
                        CHECK(o.dirty_census, "case %zu: census curve not used", i);
                }
            }
        }
        CHECK(err[1][0] <= 10 && err[1][1] <= 10, "case %zu: with the curve %.1f / %.1f %%", i,
              err[1][0], err[1][1]);
        CHECK(err[1][0] < err[0][0] && err[0][0] > 15,
              "case %zu: count alone %.1f %% should be clearly worse than the curve %.1f %%", i,
              err[0][0], err[1][0]);
    }
    /* idle: the flat curve says 0 before calc-dirty-rate answers */
    {
        struct gen g;
        struct mig_sample s;
        struct est a, b;
        struct est_out oa, ob;
        double m = 256 * MIB, nz = 128 * MIB, r = 32 * MIB;
        est_init(&a, NULL);
        est_init(&b, NULL);
        est_set_census(&a, (uint64_t)nz, (uint64_t)m, 0);
        est_set_census(&b, (uint64_t)nz, (uint64_t)m, 0);
        gen_init(&g, ZERO_TAIL, m, nz, r, 0, 0);
        g.curve = 1;
        while (g.t_ms < 750) {
            gen_sample(&g, &s);
            REQUIRE(est_update(&a, &s) == 0, "update");
            s.census_dirty_bytes = s.census_dirty_ms = 0;
            REQUIRE(est_update(&b, &s) == 0, "update");
        }
        est_get(&a, &oa);
        est_get(&b, &ob);
        double left = (nz - (double)s.ram_normal * PAGE) / r * 1000.0;
        CHECK(oa.dirty_census && oa.dirty_bps == 0, "idle curve: rate %.0f", oa.dirty_bps);
        CHECK(fabs((double)oa.eta_ms - left) <= 0.05 * left && ob.eta_ms > oa.eta_ms,
              "idle at 0.75 s: ETA %llu ms with the curve, %llu without, pass 1 left %.0f ms",
              (unsigned long long)oa.eta_ms, (unsigned long long)ob.eta_ms, left);
    }
}

int main(void)
{
    test_run("estimator census: fixes the pass-1 ETA wherever the zero pages lie",
             t_census_fixes_pass1);
    test_run("estimator census: progress monotone, ETA 0 at completion", t_properties);
    test_run("estimator census: -20 % / +20 % degrade gracefully", t_wrong_census_graceful);
    test_run("estimator census: an exceeded census is dropped; setter == params",
             t_exceeded_and_setter);
    test_run("estimator census: uncovered RAM non-zero; error widens the interval",
             t_uncovered_and_interval);
    test_run("estimator census: the written-since-census curve gives rate and working set",
             t_dirty_curve);
    return test_done();
}

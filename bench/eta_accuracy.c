/* eta_accuracy — how good is the estimator's ETA (core/estimator.h)? Runs
 * the standard scenario set (src/sim/matrix.h) in the simulator under QEMU
 * defaults (the estimator alone) and under the adaptive controller, and for
 * every run that completes takes the ETA given at the first sample at or
 * after 10 %, 25 % and 50 % of the run's total time. Reports the median
 * absolute percentage error against the time that was really left, beside
 * a naive baseline measured on the same samples: remaining / current
 * bandwidth (what query-migrate alone would suggest). An ETA that is
 * unknown or infinite for a run that did complete counts as 100 % error.
 * Then the same figures on the converging real-QEMU traces of
 * tests/fixtures/traces (lab recordings; few and short, so reported per
 * trace beside the naive baseline, not as a median).
 * The first migrations are also run with the agent's memory census
 * (sim_scenario.census: count, profile and its re-reads, honest, off by
 * -20 % and +20 %, and the count without re-reads): the same runs, the
 * census changes only what the estimator knows (checked: same total).
 * Also the share of asks whose true time left lies inside the estimator's
 * interval [eta_low_ms, eta_high_ms] (coverage), with and without census.
 * The census column is also given on two halves of the matrix (held_out():
 * estimator constants are chosen on one half, the other is held out and is
 * the figure to report) and beside the same runs without the forecast of
 * the controller's own actions (sim_scenario.no_forecast), with how many
 * asks got a forecast ETA and how many of those wait for consent.
 * Writes bench/out/eta_accuracy.json. */
#include "core/trace.h"
#include "sim/matrix.h"
#include "sim/precopy.h"
#include "sim/run.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 100000
#define NFRAC 3
#define NPOL 3

static const double fracs[NFRAC] = {0.10, 0.25, 0.50};
static const enum sim_policy pols[NPOL] = {SIM_POL_ADAPTIVE, SIM_POL_QEMU, SIM_POL_NOVA};

struct rec {
    uint64_t t_ms;
    int known;       /* estimator ETA meaningful and finite */
    double eta_ms;   /* estimator, ms */
    double naive_ms; /* remaining / bw, ms; < 0 when bw unknown */
    double low_ms;   /* estimator interval [low, high], ms; high < 0: infinite */
    double high_ms;
    uint64_t sync; /* dirty_sync_count: 1 while in the bulk (first) pass */
    int fc;        /* the ETA came from the forecast (est_out.eta_forecast) */
    int cw;        /* ... which passed a consent request */
};

struct recorder {
    struct rec *r;
    size_t n;
    uint64_t nonzero;   /* last sample: ram_total - ram_duplicate x page, bytes */
    uint64_t dirty_set; /* last estimate's dirty_set_bytes */
    double dirty_bps;   /* last estimate's pass1_dirty_bps */
};

static void on_sample(void *ud, const struct mig_sample *s, const struct est_out *e)
{
    struct recorder *rc = ud;
    struct rec *x;
    if (rc->n >= MAX_SAMPLES)
        return;
    x = &rc->r[rc->n++];
    x->t_ms = s->t_ms;
    x->sync = s->dirty_sync_count;
    x->fc = e->eta_forecast;
    x->cw = e->eta_consent_wait;
    x->known = e->eta_known && e->eta_ms != EST_ETA_INFINITE;
    x->eta_ms = (double)e->eta_ms;
    x->low_ms = e->eta_low_ms == EST_ETA_INFINITE ? -1 : (double)e->eta_low_ms;
    x->high_ms = e->eta_high_ms == EST_ETA_INFINITE ? -1 : (double)e->eta_high_ms;
    x->naive_ms = s->bw_bps > 0 ? (double)s->ram_remaining / (double)s->bw_bps * 1000.0 : -1;
    uint64_t dup = s->ram_duplicate * mig_sample_page_bytes(s);
    rc->nonzero = s->ram_total > dup ? s->ram_total - dup : 0;
    rc->dirty_set = e->dirty_set_bytes;
    rc->dirty_bps = e->pass1_dirty_bps;
}

/* Absolute % errors of run rc (total_ms) at each of fracs into a[f] (NAN
 * when the run was too short to be asked there); counts unknown ETAs. */
static int g_cover[NFRAC]; /* last run_errors: time left inside [low, high] (-1 not asked) */
static int g_fc[NFRAC], g_cw[NFRAC]; /* last run_errors: forecast ETA, consent wait */
static void run_errors(const struct recorder *rc, double total_ms, double a[NFRAC], double b[NFRAC],
                       uint64_t sync[NFRAC], size_t unknown[NFRAC])
{
    for (int f = 0; f < NFRAC; f++) {
        double at = fracs[f] * total_ms, left;
        size_t k = 0;
        a[f] = b[f] = NAN;
        g_cover[f] = -1;
        g_fc[f] = g_cw[f] = 0;
        while (k < rc->n && (double)rc->r[k].t_ms < at)
            k++;
        if (k >= rc->n || (double)rc->r[k].t_ms >= total_ms)
            continue; /* run too short to be asked at this point */
        left = total_ms - (double)rc->r[k].t_ms;
        g_fc[f] = rc->r[k].fc;
        g_cw[f] = rc->r[k].cw;
        g_cover[f] = rc->r[k].known && rc->r[k].low_ms >= 0 && rc->r[k].low_ms <= left &&
                     (rc->r[k].high_ms < 0 || left <= rc->r[k].high_ms);
        if (rc->r[k].known) {
            a[f] = fabs(rc->r[k].eta_ms - left) / left * 100.0;
        } else {
            a[f] = 100.0;
            if (unknown)
                unknown[f]++;
        }
        b[f] = rc->r[k].naive_ms >= 0 ? fabs(rc->r[k].naive_ms - left) / left * 100.0 : 100.0;
        sync[f] = rc->r[k].sync;
    }
}

/* 1 when scenario i is in the held-out half: a multiplicative hash of the
 * index (Knuth), so the halves mix every factor of the matrix; index
 * parity would not (odd bursty and phase-change scenarios all have the
 * small working set, even ones the large). */
static int held_out(size_t i)
{
    return (int)((((uint64_t)i * 2654435761u) & 0xffffffffu) >> 16 & 1u);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Lab traces: replays tests/fixtures/traces/NAME.csv through a fresh
 * estimator and returns the absolute % error of its ETA and of the naive
 * remaining/bw at the first sample at or after frac of the total time in
 * *est_ape / *naive_ape. Returns 0, or -1 when the trace is missing or did
 * not complete. */
static int lab_trace(const char *name, double frac, double *est_ape, double *naive_ape)
{
    static struct mig_sample rows[4096];
    static char buf[1 << 20];
    char path[256];
    size_t n = 0, len;
    FILE *f;
    snprintf(path, sizeof(path), "tests/fixtures/traces/%s.csv", name);
    f = fopen(path, "rb");
    if (!f)
        return -1;
    len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (trace_parse(buf, len, rows, 4096, &n, NULL) != 0 || n < 2 ||
        rows[n - 1].phase != MIG_PHASE_COMPLETED)
        return -1;
    double total = (double)rows[n - 1].t_ms;
    struct est e;
    est_init(&e, NULL);
    for (size_t i = 0; i < n; i++) {
        struct est_out o;
        if (est_update(&e, &rows[i]) != 0)
            return -1;
        if ((double)rows[i].t_ms < frac * total || rows[i].phase != MIG_PHASE_ACTIVE)
            continue;
        est_get(&e, &o);
        double left = total - (double)rows[i].t_ms;
        *est_ape = o.eta_known && o.eta_ms != EST_ETA_INFINITE
                       ? fabs((double)o.eta_ms - left) / left * 100.0
                       : 100.0;
        *naive_ape =
            rows[i].bw_bps > 0
                ? fabs((double)rows[i].ram_remaining / (double)rows[i].bw_bps * 1000.0 - left) /
                      left * 100.0
                : 100.0;
        return 0;
    }
    return -1;
}

int main(void)
{
    static struct rec recs[MAX_SAMPLES];
    static double ape[NPOL][NFRAC][512], nape[NPOL][NFRAC][512];
    static double ape1[NPOL][1536], apel[NPOL][1536]; /* all fractions: pass 1 / later */
    size_t n1[NPOL] = {0}, nl[NPOL] = {0};
    double mape1[NPOL], mapel[NPOL];
    size_t napes[NPOL][NFRAC] = {{0}}, unknown[NPOL][NFRAC] = {{0}}, runs[NPOL] = {0};
    double mape[NPOL][NFRAC], nmape[NPOL][NFRAC], t0 = now_s();
    /* repeat migrations: with hints / the same runs without */
    static double rape[NPOL][NFRAC][512], rold[NPOL][NFRAC][512], r1[NPOL][1536];
    size_t nr[NPOL][NFRAC] = {{0}}, rruns[NPOL] = {0}, nr1[NPOL] = {0};
    double rmape[NPOL][NFRAC], romape[NPOL][NFRAC], rmape1[NPOL];
    /* first migration with the pre-migration census (honest, and off by
     * -20 % / +20 %), on the very runs of the "estimator" column */
#define NCEN 4 /* honest, -20 %, +20 %, honest count without its re-reads */
    static const double cen_bias[NCEN] = {1.0, 0.8, 1.2, 1.0};
    static double cape[NCEN][NPOL][NFRAC][512], c1[NPOL][1536];
    size_t nc[NCEN][NPOL][NFRAC] = {{{0}}}, nc1[NPOL] = {0};
    double cmape[NCEN][NPOL][NFRAC], cmape1[NPOL], cen_err_max = 0, cen_relerr_med;
    static double cen_relerr[NPOL * 512];
    /* the census first move on two halves of the matrix: [0] where the
     * estimator's constants are chosen, [1] held out (held_out()), and the
     * same runs without the forecast (core/forecast.h) as its baseline */
    static double hold[2][NPOL][NFRAC][512], nofc[NPOL][NFRAC][512];
    size_t nhold[2][NPOL][NFRAC] = {{{0}}}, nnofc[NPOL][NFRAC] = {{0}};
    double mhold[2][NPOL][NFRAC], mnofc[NPOL][NFRAC];
    size_t fc_wait[NPOL][NFRAC] = {{0}}, fc_on[NPOL][NFRAC] = {{0}};
    size_t ncen_relerr = 0;
    size_t n = sim_matrix_count();
    /* interval coverage: asks whose true time left is inside [low, high] */
    size_t cov_n[NPOL][NFRAC] = {{0}}, cov_in[NPOL][NFRAC] = {{0}};
    size_t ccov_n[NPOL][NFRAC] = {{0}}, ccov_in[NPOL][NFRAC] = {{0}};
    struct utsname u;
    char mach[256];
    FILE *js;

    if (uname(&u) != 0)
        memset(&u, 0, sizeof(u));
    snprintf(mach, sizeof(mach), "%s %s %s, %ld cpus", u.sysname, u.release, u.machine,
             sysconf(_SC_NPROCESSORS_ONLN));
    for (int p = 0; p < NPOL; p++) {
        for (size_t i = 0; i < n && i < 512; i++) {
            struct sim_scenario sc;
            struct sim_result r, r2;
            struct recorder rc = {recs, 0, 0, 0, 0}, rc2;
            struct ferr e;
            double a[NFRAC], b[NFRAC], a2[NFRAC], b2[NFRAC], a3[NFRAC], b3[NFRAC];
            uint64_t sy[NFRAC] = {0}, sy2[NFRAC] = {0};
            if (sim_matrix_get(i, pols[p], &sc) < 0 ||
                sim_run(&sc, &r, on_sample, NULL, &rc, &e) < 0) {
                fprintf(stderr, "eta_accuracy: scenario %zu: %s\n", i, e.msg);
                return 1;
            }
            if (!r.completed)
                continue;
            runs[p]++;
            run_errors(&rc, r.total_ms, a, b, sy, unknown[p]);
            for (int f = 0; f < NFRAC; f++)
                if (g_cover[f] >= 0) {
                    cov_n[p][f]++;
                    cov_in[p][f] += (size_t)g_cover[f];
                }
            /* the same run with a census at t0 (its draw leaves the run
             * unchanged: same samples, same total) */
            for (int c = 0; c < NCEN; c++) {
                double ac[NFRAC], bc[NFRAC];
                uint64_t syc[NFRAC] = {0};
                struct sim_result rcen;
                sc.census = 1;
                sc.census_bias = cen_bias[c];
                sc.census_count_only = c == 3;
                rc2 = (struct recorder){recs, 0, 0, 0, 0};
                if (sim_run(&sc, &rcen, on_sample, NULL, &rc2, &e) < 0)
                    return 1;
                if (rcen.total_ms != r.total_ms) {
                    fprintf(stderr, "eta_accuracy: scenario %zu: census changed the run\n", i);
                    return 1;
                }
                run_errors(&rc2, rcen.total_ms, ac, bc, syc, NULL);
                if (c == 0)
                    for (int f = 0; f < NFRAC; f++) {
                        if (g_cover[f] >= 0 && !isnan(a[f])) {
                            ccov_n[p][f]++;
                            ccov_in[p][f] += (size_t)g_cover[f];
                        }
                        if (!isnan(ac[f]) && !isnan(a[f])) {
                            hold[held_out(i)][p][f][nhold[held_out(i)][p][f]++] = ac[f];
                            fc_on[p][f] += (size_t)g_fc[f];
                            fc_wait[p][f] += (size_t)g_cw[f];
                        }
                    }
                if (c == 0 && pols[p] != SIM_POL_QEMU) {
                    /* the same run, the estimator's ETA alone */
                    double an[NFRAC], bn[NFRAC];
                    uint64_t syn[NFRAC] = {0};
                    struct sim_result rn;
                    sc.no_forecast = 1;
                    rc2 = (struct recorder){recs, 0, 0, 0, 0};
                    if (sim_run(&sc, &rn, on_sample, NULL, &rc2, &e) < 0)
                        return 1;
                    sc.no_forecast = 0;
                    run_errors(&rc2, rn.total_ms, an, bn, syn, NULL);
                    for (int f = 0; f < NFRAC; f++)
                        if (!isnan(an[f]) && !isnan(a[f]))
                            nofc[p][f][nnofc[p][f]++] = an[f];
                }
                for (int f = 0; f < NFRAC; f++) {
                    if (isnan(ac[f]) || isnan(a[f]))
                        continue;
                    cape[c][p][f][nc[c][p][f]++] = ac[f];
                    if (c == 0 && syc[f] <= 1)
                        c1[p][nc1[p]++ % 1536] = ac[f];
                }
                if (c == 0) {
                    struct precopy m0;
                    uint64_t cnz, tnz;
                    double rel;
                    if (precopy_init(&m0, &sc.wl, &sc.par, &e) == 0) {
                        sim_census(&sc, &m0, &cnz, &rel, &tnz, NULL);
                        double err = tnz ? fabs((double)cnz - (double)tnz) / (double)tnz : 0;
                        if (err > cen_err_max)
                            cen_err_max = err;
                        if (sc.wl.zero_frac > 0) /* else nothing to sample: s.e. 0 */
                            cen_relerr[ncen_relerr++] = rel * 100.0;
                    }
                }
            }
            sc.census = 0;
            sc.census_bias = 0;
            sc.census_count_only = 0;
            /* the same guest migrated again (other noise): with the first
             * migration's figures as hints, and without (the old estimator
             * on the very same run) */
            uint64_t h_nz = rc.nonzero, h_ws = rc.dirty_set;
            sc.par.seed += 7919;
            sc.hint_nonzero_bytes = h_nz;
            sc.hint_dirty_set_bytes = h_ws;
            sc.hint_dirty_bps = rc.dirty_bps;
            rc2 = (struct recorder){recs, 0, 0, 0, 0};
            if (sim_run(&sc, &r2, on_sample, NULL, &rc2, &e) < 0)
                return 1;
            run_errors(&rc2, r2.total_ms, a2, b2, sy2, NULL);
            sc.hint_nonzero_bytes = sc.hint_dirty_set_bytes = 0;
            sc.hint_dirty_bps = 0;
            rc2 = (struct recorder){recs, 0, 0, 0, 0};
            if (sim_run(&sc, &r2, on_sample, NULL, &rc2, &e) < 0)
                return 1;
            run_errors(&rc2, r2.total_ms, a3, b3, sy2, NULL);
            if (r2.completed) {
                rruns[p]++;
                for (int f = 0; f < NFRAC; f++)
                    if (!isnan(a2[f]) && !isnan(a3[f])) {
                        rape[p][f][nr[p][f]] = a2[f];
                        rold[p][f][nr[p][f]] = a3[f];
                        nr[p][f]++;
                        if (sy2[f] <= 1)
                            r1[p][nr1[p]++ % 1536] = a2[f];
                    }
            }
            for (int f = 0; f < NFRAC; f++) {
                if (isnan(a[f]))
                    continue;
                if (getenv("ETA_DEBUG") && f == 1)
                    fprintf(stderr, "dbg %s %zu %s sync=%llu err=%.1f repeat=%.1f old=%.1f\n",
                            sim_policy_name(pols[p]), i, sc.name, (unsigned long long)sy[f], a[f],
                            a2[f], a3[f]);
                if (sy[f] <= 1)
                    ape1[p][n1[p]++ % 1536] = a[f];
                else
                    apel[p][nl[p]++ % 1536] = a[f];
                ape[p][f][napes[p][f]] = a[f];
                nape[p][f][napes[p][f]] = b[f];
                napes[p][f]++;
            }
        }
        if (n1[p] > 1536)
            n1[p] = 1536;
        if (nl[p] > 1536)
            nl[p] = 1536;
        if (nr1[p] > 1536)
            nr1[p] = 1536;
        mape1[p] = median(ape1[p], n1[p]);
        mapel[p] = median(apel[p], nl[p]);
        rmape1[p] = median(r1[p], nr1[p]);
        if (nc1[p] > 1536)
            nc1[p] = 1536;
        cmape1[p] = median(c1[p], nc1[p]);
        for (int c = 0; c < NCEN; c++)
            for (int f = 0; f < NFRAC; f++)
                cmape[c][p][f] = median(cape[c][p][f], nc[c][p][f]);
        for (int f = 0; f < NFRAC; f++) {
            for (int h = 0; h < 2; h++)
                mhold[h][p][f] = median(hold[h][p][f], nhold[h][p][f]);
            mnofc[p][f] = nnofc[p][f] ? median(nofc[p][f], nnofc[p][f]) : NAN;
        }
        for (int f = 0; f < NFRAC; f++) {
            mape[p][f] = median(ape[p][f], napes[p][f]);
            nmape[p][f] = median(nape[p][f], napes[p][f]);
            rmape[p][f] = median(rape[p][f], nr[p][f]);
            romape[p][f] = median(rold[p][f], nr[p][f]);
        }
    }

    printf("eta_accuracy (simulation): %zu scenarios on %s (%.1f s wall)\n", n, mach, now_s() - t0);
    printf("median absolute %% error of the ETA given at a fraction of the total time\n");
    printf("%-9s %5s %6s %14s %14s %9s %6s\n", "policy", "runs", "at", "estimator_%",
           "naive_rem/bw_%", "unknown", "asked");
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            printf("%-9s %5zu %5.0f%% %14.1f %14.1f %9zu %6zu\n", sim_policy_name(pols[p]), runs[p],
                   fracs[f] * 100, mape[p][f], nmape[p][f], unknown[p][f], napes[p][f]);
    cen_relerr_med = median(cen_relerr, ncen_relerr);
    printf("first migration with the pre-migration census (same runs as above; sampled census "
           "error: median %.2f %% relative s.e. where there are zero pages, max |error| %.2f %%)\n",
           cen_relerr_med, cen_err_max * 100.0);
    printf("%-9s %6s %12s %12s %14s %14s %14s %6s\n", "policy", "at", "census_%", "no_census_%",
           "count_only_%", "census-20%_%", "census+20%_%", "asked");
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            printf("%-9s %5.0f%% %12.1f %12.1f %14.1f %14.1f %14.1f %6zu\n",
                   sim_policy_name(pols[p]), fracs[f] * 100, cmape[0][p][f], mape[p][f],
                   cmape[3][p][f], cmape[1][p][f], cmape[2][p][f], nc[0][p][f]);
    for (int p = 0; p < NPOL; p++)
        printf("%s: census, asked in the bulk pass %.1f %% (%zu asks)\n", sim_policy_name(pols[p]),
               cmape1[p], nc1[p]);
    printf("the census column on two halves of the matrix, and without the forecast of the "
           "controller's own actions (core/forecast.h; same runs).\nHeld out: the scenarios whose "
           "index hashes to 1 (Knuth multiplicative hash, bit 16: 194 of 384, every factor "
           "mixed). Estimator constants are chosen on the other half only; the forecast adds "
           "none fitted to the matrix (its constants are QEMU's or fixed beforehand). Report "
           "the held-out column.\n");
    printf("%-9s %6s %10s %10s %10s %14s %10s %12s\n", "policy", "at", "census_%", "tune_%",
           "held_out_%", "no_forecast_%", "forecast", "consent_wait");
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            printf("%-9s %5.0f%% %10.1f %10.1f %10.1f %14.1f %10zu %12zu\n",
                   sim_policy_name(pols[p]), fracs[f] * 100, cmape[0][p][f], mhold[0][p][f],
                   mhold[1][p][f], pols[p] == SIM_POL_QEMU ? cmape[0][p][f] : mnofc[p][f],
                   fc_on[p][f], fc_wait[p][f]);
    printf("ETA interval [low, high]: share of asks whose true time left is inside it\n");
    printf("%-9s %6s %14s %14s\n", "policy", "at", "census_in_%", "no_census_in_%");
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            printf("%-9s %5.0f%% %14.1f %14.1f\n", sim_policy_name(pols[p]), fracs[f] * 100,
                   ccov_n[p][f] ? 100.0 * (double)ccov_in[p][f] / (double)ccov_n[p][f] : 0.0,
                   cov_n[p][f] ? 100.0 * (double)cov_in[p][f] / (double)cov_n[p][f] : 0.0);
    printf("repeat migration of each scenario (other noise seed) with the first one's hints "
           "(nonzero_bytes, dirty_set_bytes, dirty_bps), beside the same runs without hints\n");
    printf("%-9s %5s %6s %14s %14s %6s\n", "policy", "runs", "at", "hinted_%", "no_hints_%",
           "asked");
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            printf("%-9s %5zu %5.0f%% %14.1f %14.1f %6zu\n", sim_policy_name(pols[p]), rruns[p],
                   fracs[f] * 100, rmape[p][f], romape[p][f], nr[p][f]);
    for (int p = 0; p < NPOL; p++)
        printf("%s: hinted repeat, asked in the bulk pass %.1f %% (%zu asks)\n",
               sim_policy_name(pols[p]), rmape1[p], nr1[p]);
    for (int p = 0; p < NPOL; p++)
        printf("%s: estimator error when asked in the bulk pass %.1f %% (%zu asks), after it "
               "%.1f %% (%zu asks)\n",
               sim_policy_name(pols[p]), mape1[p], n1[p], mapel[p], nl[p]);

    static const char *const lab[] = {"idle_64m", "rate1000_64m", "rate4000_64m", "rate1000_16m",
                                      "phase_max_to_0_16m"};
    double lab_est[5][2], lab_naive[5][2];
    int lab_ok[5][2];
    printf(
        "lab traces (real QEMU 7.2 TCG, tests/fixtures/traces): abs %% error at 25 %% / 50 %%\n");
    printf("%-22s %12s %12s %12s %12s\n", "trace", "est_25%", "naive_25%", "est_50%", "naive_50%");
    for (int t = 0; t < 5; t++) {
        for (int f = 0; f < 2; f++)
            lab_ok[t][f] = lab_trace(lab[t], f ? 0.5 : 0.25, &lab_est[t][f], &lab_naive[t][f]) == 0;
        printf("%-22s", lab[t]);
        for (int f = 0; f < 2; f++) {
            if (lab_ok[t][f])
                printf(" %12.1f %12.1f", lab_est[t][f], lab_naive[t][f]);
            else
                printf(" %12s %12s", "-", "-");
        }
        printf("\n");
    }

    js = fopen("bench/out/eta_accuracy.json", "w");
    if (!js) {
        perror("eta_accuracy: bench/out/eta_accuracy.json");
        return 1;
    }
    fprintf(js, "{\"machine\":\"%s\",\"figures\":{", mach);
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            fprintf(js, "%s\"%s_eta_mape_at_%.0fpct\":%.2f,\"%s_eta_unknown_at_%.0fpct\":%zu",
                    p || f ? "," : "", sim_policy_name(pols[p]), fracs[f] * 100, mape[p][f],
                    sim_policy_name(pols[p]), fracs[f] * 100, unknown[p][f]);
    fprintf(js,
            ",\"adaptive_eta_mape_in_bulk_pass\":%.2f,\"adaptive_eta_mape_after_bulk_pass\":%.2f"
            ",\"completed_runs_adaptive\":%zu,\"completed_runs_qemu\":%zu",
            mape1[0], mapel[0], runs[0], runs[1]);
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            fprintf(js,
                    ",\"%s_census_eta_mape_at_%.0fpct\":%.2f"
                    ",\"%s_census_minus20pct_eta_mape_at_%.0fpct\":%.2f"
                    ",\"%s_census_plus20pct_eta_mape_at_%.0fpct\":%.2f"
                    ",\"%s_census_count_only_eta_mape_at_%.0fpct\":%.2f",
                    sim_policy_name(pols[p]), fracs[f] * 100, cmape[0][p][f],
                    sim_policy_name(pols[p]), fracs[f] * 100, cmape[1][p][f],
                    sim_policy_name(pols[p]), fracs[f] * 100, cmape[2][p][f],
                    sim_policy_name(pols[p]), fracs[f] * 100, cmape[3][p][f]);
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            fprintf(js,
                    ",\"%s_census_interval_coverage_at_%.0fpct\":%.2f"
                    ",\"%s_interval_coverage_at_%.0fpct\":%.2f",
                    sim_policy_name(pols[p]), fracs[f] * 100,
                    ccov_n[p][f] ? 100.0 * (double)ccov_in[p][f] / (double)ccov_n[p][f] : 0.0,
                    sim_policy_name(pols[p]), fracs[f] * 100,
                    cov_n[p][f] ? 100.0 * (double)cov_in[p][f] / (double)cov_n[p][f] : 0.0);
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            fprintf(js,
                    ",\"%s_census_tune_half_eta_mape_at_%.0fpct\":%.2f"
                    ",\"%s_census_held_out_eta_mape_at_%.0fpct\":%.2f",
                    sim_policy_name(pols[p]), fracs[f] * 100, mhold[0][p][f],
                    sim_policy_name(pols[p]), fracs[f] * 100, mhold[1][p][f]);
    fprintf(js, ",\"census_rel_se_median_pct\":%.3f,\"census_abs_err_max_pct\":%.3f",
            cen_relerr_med, cen_err_max * 100.0);
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            fprintf(js, ",\"%s_repeat_hinted_eta_mape_at_%.0fpct\":%.2f", sim_policy_name(pols[p]),
                    fracs[f] * 100, rmape[p][f]);
    for (int t = 0; t < 5; t++)
        for (int f = 0; f < 2; f++)
            if (lab_ok[t][f])
                fprintf(js, ",\"lab_%s_eta_ape_at_%dpct\":%.2f", lab[t], f ? 50 : 25,
                        lab_est[t][f]);
    fprintf(js, "},\"baselines\":{");
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            fprintf(js, "%s\"%s_naive_eta_mape_at_%.0fpct\":%.2f", p || f ? "," : "",
                    sim_policy_name(pols[p]), fracs[f] * 100, nmape[p][f]);
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            fprintf(js, ",\"%s_repeat_no_hints_eta_mape_at_%.0fpct\":%.2f",
                    sim_policy_name(pols[p]), fracs[f] * 100, romape[p][f]);
    for (int p = 0; p < NPOL; p++)
        for (int f = 0; f < NFRAC; f++)
            if (pols[p] != SIM_POL_QEMU)
                fprintf(js, ",\"%s_census_no_forecast_eta_mape_at_%.0fpct\":%.2f",
                        sim_policy_name(pols[p]), fracs[f] * 100, mnofc[p][f]);
    for (int t = 0; t < 5; t++)
        for (int f = 0; f < 2; f++)
            if (lab_ok[t][f])
                fprintf(js, ",\"lab_%s_naive_eta_ape_at_%dpct\":%.2f", lab[t], f ? 50 : 25,
                        lab_naive[t][f]);
    fprintf(js, "}}\n");
    return fclose(js) == 0 ? 0 : 1;
}

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
#define NPOL 2

static const double fracs[NFRAC] = {0.10, 0.25, 0.50};
static const enum sim_policy pols[NPOL] = {SIM_POL_ADAPTIVE, SIM_POL_QEMU};

struct rec {
    uint64_t t_ms;
    int known;       /* estimator ETA meaningful and finite */
    double eta_ms;   /* estimator, ms */
    double naive_ms; /* remaining / bw, ms; < 0 when bw unknown */
    uint64_t sync;   /* dirty_sync_count: 1 while in the bulk (first) pass */
};

struct recorder {
    struct rec *r;
    size_t n;
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
    x->known = e->eta_known && e->eta_ms != EST_ETA_INFINITE;
    x->eta_ms = (double)e->eta_ms;
    x->naive_ms = s->bw_bps > 0 ? (double)s->ram_remaining / (double)s->bw_bps * 1000.0 : -1;
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
    size_t n = sim_matrix_count();
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
            struct sim_result r;
            struct recorder rc = {recs, 0};
            struct ferr e;
            if (sim_matrix_get(i, pols[p], &sc) < 0 ||
                sim_run(&sc, &r, on_sample, NULL, &rc, &e) < 0) {
                fprintf(stderr, "eta_accuracy: scenario %zu: %s\n", i, e.msg);
                return 1;
            }
            if (!r.completed)
                continue;
            runs[p]++;
            for (int f = 0; f < NFRAC; f++) {
                double at = fracs[f] * r.total_ms, left, a, b;
                size_t k = 0;
                while (k < rc.n && (double)recs[k].t_ms < at)
                    k++;
                if (k >= rc.n || (double)recs[k].t_ms >= r.total_ms)
                    continue; /* run too short to be asked at this point */
                left = r.total_ms - (double)recs[k].t_ms;
                if (recs[k].known) {
                    a = fabs(recs[k].eta_ms - left) / left * 100.0;
                } else {
                    a = 100.0;
                    unknown[p][f]++;
                }
                if (getenv("ETA_DEBUG") && f == 1)
                    fprintf(stderr, "dbg %s %zu sync=%llu left=%.0f eta=%.0f err=%+.1f\n",
                            sim_policy_name(pols[p]), i, (unsigned long long)recs[k].sync,
                            left / 1000, recs[k].eta_ms / 1000,
                            (recs[k].eta_ms - left) / left * 100.0);
                b = recs[k].naive_ms >= 0 ? fabs(recs[k].naive_ms - left) / left * 100.0 : 100.0;
                if (recs[k].sync <= 1)
                    ape1[p][n1[p]++ % 1536] = a;
                else
                    apel[p][nl[p]++ % 1536] = a;
                ape[p][f][napes[p][f]] = a;
                nape[p][f][napes[p][f]] = b;
                napes[p][f]++;
            }
        }
        if (n1[p] > 1536)
            n1[p] = 1536;
        if (nl[p] > 1536)
            nl[p] = 1536;
        mape1[p] = median(ape1[p], n1[p]);
        mapel[p] = median(apel[p], nl[p]);
        for (int f = 0; f < NFRAC; f++) {
            mape[p][f] = median(ape[p][f], napes[p][f]);
            nmape[p][f] = median(nape[p][f], napes[p][f]);
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
    for (int t = 0; t < 5; t++)
        for (int f = 0; f < 2; f++)
            if (lab_ok[t][f])
                fprintf(js, ",\"lab_%s_naive_eta_ape_at_%dpct\":%.2f", lab[t], f ? 50 : 25,
                        lab_naive[t][f]);
    fprintf(js, "}}\n");
    return fclose(js) == 0 ? 0 : 1;
}

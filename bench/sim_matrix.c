/* sim_matrix — the standard scenario set (src/sim/matrix.h, 384 scenarios:
 * RAM 1-64 GiB, dirty rate 0-150 % of the link, working sets, bursts, phase
 * changes) under four policies: QEMU defaults (300 ms, no controller), Nova
 * defaults, an oVirt-like schedule and Ferry's adaptive controller. Prints a
 * table per policy and the adaptive targets; writes bench/out/sim_matrix.json. */
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

#define NPOL SIM_POL__COUNT
#define MAXS 512

static const enum sim_policy order[NPOL] = {SIM_POL_ADAPTIVE, SIM_POL_NOVA, SIM_POL_QEMU,
                                            SIM_POL_SCHEDULE};

static struct sim_result res[NPOL][MAXS];
static double limit_ms[NPOL]; /* the downtime ceiling each policy sets itself */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Returns the q-quantile (0..1, nearest rank) of v[0..n), sorting v; 0 if n is 0. */
static double quantile(double *v, size_t n, double q)
{
    size_t k;
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_d);
    k = (size_t)ceil(q * (double)n);
    if (k > 0)
        k--;
    return v[k < n ? k : n - 1];
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void machine(char *buf, size_t cap)
{
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof(u));
    snprintf(buf, cap, "%s %s %s, %ld cpus", u.sysname, u.release, u.machine,
             sysconf(_SC_NPROCESSORS_ONLN));
}

int main(void)
{
    static double tmp[MAXS], tmp2[MAXS];
    size_t n = sim_matrix_count(), viol_complete = 0, both = 0, slower = 0;
    double t0 = now_s(), wall[NPOL] = {0};
    double comp_pct[NPOL], dt_max[NPOL], dt_p95[NPOL], tb_med[NPOL], tb_p95[NPOL];
    double ratio_med = 0, med_ratio = 0, worst_ratio = 0;
    char mach[256], first_viol[64] = "";
    FILE *js;
    int ok1, ok2, ok3;

    if (n > MAXS) {
        fprintf(stderr, "sim_matrix: %zu scenarios > %d\n", n, MAXS);
        return 1;
    }
    machine(mach, sizeof(mach));
    for (int p = 0; p < NPOL; p++) {
        double tp = now_s();
        for (size_t i = 0; i < n; i++) {
            struct sim_scenario sc;
            struct ferr e;
            if (sim_matrix_get(i, order[p], &sc) < 0 ||
                sim_run(&sc, &res[p][i], NULL, NULL, NULL, &e) < 0) {
                fprintf(stderr, "sim_matrix: scenario %zu: %s\n", i, e.msg);
                return 1;
            }
            if (i == 0) {
                if (order[p] == SIM_POL_ADAPTIVE)
                    limit_ms[p] = (double)sc.conv.adaptive.downtime_max_ms;
                else if (order[p] == SIM_POL_NOVA)
                    limit_ms[p] = sc.conv.nova.downtime_ms;
                else if (order[p] == SIM_POL_SCHEDULE)
                    limit_ms[p] = 500;
                else
                    limit_ms[p] = sc.par.downtime_limit_ms;
            }
        }
        wall[p] = now_s() - tp;
    }

    for (int p = 0; p < NPOL; p++) {
        size_t c = 0, k = 0;
        for (size_t i = 0; i < n; i++) {
            if (!res[p][i].completed)
                continue;
            tmp[c] = res[p][i].guest_stop_ms;
            tmp2[k++] = res[p][i].total_ms / res[p][i].lower_bound_ms;
            c++;
        }
        comp_pct[p] = 100.0 * (double)c / (double)n;
        dt_p95[p] = quantile(tmp, c, 0.95);
        dt_max[p] = c ? tmp[c - 1] : 0;
        tb_med[p] = quantile(tmp2, k, 0.5);
        tb_p95[p] = quantile(tmp2, k, 0.95);
    }

    /* Target 1: adaptive completes whatever any policy completes. */
    for (size_t i = 0; i < n; i++) {
        int any = 0;
        for (int p = 1; p < NPOL; p++)
            any |= res[p][i].completed;
        if (any && !res[0][i].completed) {
            struct sim_scenario sc;
            if (!viol_complete && sim_matrix_get(i, SIM_POL_ADAPTIVE, &sc) == 0)
                snprintf(first_viol, sizeof(first_viol), "%s", sc.name);
            viol_complete++;
        }
    }
    /* Target 3: no slower than Nova where both complete. */
    {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (!res[0][i].completed || !res[1][i].completed)
                continue;
            tmp[k] = res[0][i].total_ms;
            tmp2[k] = res[1][i].total_ms;
            k++;
            if (res[0][i].total_ms > 1.05 * res[1][i].total_ms)
                slower++;
        }
        both = k;
        if (k) {
            double ma = quantile(tmp, k, 0.5), mn = quantile(tmp2, k, 0.5);
            ratio_med = ma / mn;
        }
        k = 0;
        for (size_t i = 0; i < n; i++) {
            if (res[0][i].completed && res[1][i].completed) {
                tmp[k] = res[0][i].total_ms / res[1][i].total_ms;
                k++;
            }
        }
        med_ratio = quantile(tmp, k, 0.5);
        worst_ratio = k ? tmp[k - 1] : 0;
    }
    ok1 = viol_complete == 0;
    ok2 = dt_max[0] <= limit_ms[0];
    ok3 = both > 0 && ratio_med <= 1.0 && med_ratio <= 1.0;

    printf("sim_matrix: %zu scenarios x %d policies on %s (%.1f s wall)\n", n, NPOL, mach,
           now_s() - t0);
    printf("%-9s %8s %9s %12s %12s %12s %12s %7s\n", "policy", "complete", "limit_ms",
           "stop_max_ms", "stop_p95_ms", "time/lb_med", "time/lb_p95", "wall_s");
    for (int p = 0; p < NPOL; p++)
        printf("%-9s %7.1f%% %9.0f %12.0f %12.0f %12.2f %12.2f %7.2f\n", sim_policy_name(order[p]),
               comp_pct[p], limit_ms[p], dt_max[p], dt_p95[p], tb_med[p], tb_p95[p], wall[p]);
    printf("%-9s %8s %8s %8s %8s %8s %8s\n", "policy", "precopy", "postcopy", "paused", "throttled",
           "aborted", "timeout");
    for (int p = 0; p < NPOL; p++) {
        size_t pre = 0, post = 0, pau = 0, thr = 0, ab = 0, to = 0;
        for (size_t i = 0; i < n; i++) {
            const struct sim_result *x = &res[p][i];
            post += x->completed && x->postcopy_ms > 0;
            pau += x->completed && x->paused_ms > 0;
            pre += x->completed && x->postcopy_ms <= 0 && x->paused_ms <= 0;
            thr += x->max_throttle > 0;
            ab += x->aborted;
            to += x->timed_out;
        }
        printf("%-9s %8zu %8zu %8zu %8zu %8zu %8zu\n", sim_policy_name(order[p]), pre, post, pau,
               thr, ab, to);
    }
    printf("(stop = guest-visible stop: switchover downtime + any controller pause; lb = "
           "non-zero RAM / bandwidth)\n");
    printf("target adaptive completes all any policy completes: %s (%zu misses%s%s)\n",
           ok1 ? "MET" : "MISSED", viol_complete, viol_complete ? ", first " : "", first_viol);
    printf("target adaptive stop never above its maximum %.0f ms: %s (max %.0f ms)\n", limit_ms[0],
           ok2 ? "MET" : "MISSED", dt_max[0]);
    printf("target adaptive no slower than nova (%zu both complete): %s (median time ratio "
           "%.3f, median per-scenario ratio %.3f, worst %.2f, %zu slower by > 5%%)\n",
           both, ok3 ? "MET" : "MISSED", ratio_med, med_ratio, worst_ratio, slower);

    js = fopen("bench/out/sim_matrix.json", "w");
    if (!js) {
        perror("sim_matrix: bench/out/sim_matrix.json");
        return 1;
    }
    fprintf(js, "{\"machine\":\"%s\",\"figures\":{", mach);
    fprintf(js,
            "\"scenarios\":%zu,\"adaptive_completion_pct\":%.2f,\"adaptive_stop_max_ms\":%.1f,"
            "\"adaptive_stop_p95_ms\":%.1f,\"adaptive_time_over_bound_median\":%.3f,"
            "\"adaptive_time_over_bound_p95\":%.3f,\"adaptive_misses_vs_any_policy\":%zu,"
            "\"adaptive_over_nova_median_time_ratio\":%.4f,"
            "\"adaptive_over_nova_median_per_scenario_ratio\":%.4f,"
            "\"adaptive_slower_than_nova_by_5pct_count\":%zu,\"targets_met\":%d,"
            "\"wall_s\":%.2f},\"baselines\":{",
            n, comp_pct[0], dt_max[0], dt_p95[0], tb_med[0], tb_p95[0], viol_complete, ratio_med,
            med_ratio, slower, ok1 + ok2 + ok3, now_s() - t0);
    for (int p = 1; p < NPOL; p++)
        fprintf(js,
                "%s\"%s_completion_pct\":%.2f,\"%s_stop_max_ms\":%.1f,\"%s_stop_p95_ms\":%.1f,"
                "\"%s_time_over_bound_median\":%.3f,\"%s_time_over_bound_p95\":%.3f",
                p > 1 ? "," : "", sim_policy_name(order[p]), comp_pct[p], sim_policy_name(order[p]),
                dt_max[p], sim_policy_name(order[p]), dt_p95[p], sim_policy_name(order[p]),
                tb_med[p], sim_policy_name(order[p]), tb_p95[p]);
    fprintf(js, "}}\n");
    if (fclose(js) != 0)
        return 1;
    return 0;
}

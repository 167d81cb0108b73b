/* ferry-sim — run one simulated migration scenario through the QEMU 7.2
 * pre-copy model and the core's estimator and controller; print progress
 * and a summary (or JSON), optionally write a trace CSV (core/trace.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/trace.h"
#include "sim/matrix.h"
#include "sim/run.h"

#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * MIB)

struct cli {
    int json, quiet;
    double progress_s; /* print a progress line every this many s */
    double next_print_ms;
    FILE *trace;
    int trace_err;
};

static void usage(FILE *f)
{
    fputs("usage: ferry-sim [options]\n"
          "  --ram-gib N          guest RAM, GiB (4)\n"
          "  --ws-gib N           working set, GiB (1)\n"
          "  --ws-off-gib N       working set start, GiB (0)\n"
          "  --dirty-mibps N      page-write rate, MiB/s (100)\n"
          "  --bw-mibps N         link bandwidth, MiB/s (1024)\n"
          "  --max-bw-mibps N     migrate max-bandwidth, MiB/s (0 = unlimited)\n"
          "  --zero-frac F        fraction of RAM that is zero pages (0)\n"
          "  --burst-period-s N --burst-duty F --burst-low F   bursty dirtying\n"
          "  --phase-at-s N --phase-dirty-mibps N --phase-ws-gib N --phase-ws-off-gib N\n"
          "  --noise F            relative noise on dirty rate and link (0)\n"
          "  --seed N             RNG seed (1)\n"
          "  --policy P           qemu | nova | schedule | adaptive (adaptive)\n"
          "  --downtime-ms N      QEMU downtime-limit at start (300)\n"
          "  --downtime-max-ms N  adaptive: maximum downtime (2000)\n"
          "  --deadline-s N       adaptive: deadline (max(120, 3 x lower bound))\n"
          "  --auto-converge      enable QEMU auto-converge from the start\n"
          "  --no-postcopy        postcopy-ram capability off\n"
          "  --consent C          grant | refuse | after:SECONDS (grant)\n"
          "  --device-ms N        switchover device-state cost (20)\n"
          "  --max-s N            give up after N simulated seconds (7200)\n"
          "  --progress-s N       progress line period, s (5)\n"
          "  --json               print the summary as JSON\n"
          "  --trace FILE         write every sample as trace CSV\n"
          "  --quiet              no progress lines\n"
          "  --matrix I           run scenario I of the benchmark set instead (with --policy,\n"
          "                       --consent and the output options)\n",
          f);
}

static int num(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    double d;
    if (!v) {
        fprintf(stderr, "ferry-sim: %s needs a value\n", opt);
        return -1;
    }
    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "ferry-sim: %s: '%s' is not a number in %g..%g\n", opt, v, lo, hi);
        return -1;
    }
    *out = d;
    return 0;
}

static void on_sample(void *ud, const struct mig_sample *s, const struct est_out *e)
{
    struct cli *c = ud;
    if (c->trace && !c->trace_err) {
        char line[TRACE_LINE_MAX + 2];
        size_t n;
        if (trace_format_row(s, line, sizeof(line), &n) < 0 || fwrite(line, 1, n, c->trace) != n)
            c->trace_err = 1;
    }
    if (c->quiet || c->json)
        return;
    if ((double)s->t_ms < c->next_print_ms && !mig_phase_is_terminal(s->phase))
        return;
    c->next_print_ms = (double)s->t_ms + c->progress_s * 1000.0;
    printf("t=%7.1fs %-9s %5.1f%% rem=%8.1fMiB bw=%7.1fMiB/s dirty=%7.1fMiB/s iter=%-4llu "
           "thr=%2u%% limit=%llums",
           (double)s->t_ms / 1000.0, mig_phase_name(s->phase), e->progress_pct,
           (double)s->ram_remaining / MIB, (double)s->bw_bps / MIB, e->dirty_bps / MIB,
           (unsigned long long)s->dirty_sync_count, s->throttle_pct,
           (unsigned long long)s->setting_downtime_ms);
    if (e->eta_known && e->eta_ms != EST_ETA_INFINITE)
        printf(" eta=%.1fs", (double)e->eta_ms / 1000.0);
    else
        printf(" eta=?");
    printf(" %s\n", est_verdict_name(e->verdict));
}

static void on_action(void *ud, uint64_t now_ms, const struct conv_action *a)
{
    struct cli *c = ud;
    if (c->quiet || c->json)
        return;
    printf("t=%7.1fs action %s", (double)now_ms / 1000.0, conv_act_name(a->kind));
    switch (a->kind) {
    case CONV_ACT_SET_DOWNTIME:
        printf(" %llums", (unsigned long long)a->downtime_ms);
        break;
    case CONV_ACT_SET_BANDWIDTH:
        printf(" %.1fMiB/s", (double)a->bw_bps / MIB);
        break;
    case CONV_ACT_SET_THROTTLE:
        printf(" auto-converge=%d %u+%u..%u%%", a->auto_converge, a->throttle_initial_pct,
               a->throttle_increment_pct, a->throttle_max_pct);
        break;
    case CONV_ACT_REQUEST_CONSENT:
        printf(" step=%s", conv_step_name(a->step));
        break;
    default:
        break;
    }
    if (a->reason[0])
        printf(" (%s)", a->reason);
    putchar('\n');
}

int main(int argc, char **argv)
{
    double ram_gib = 4, ws_gib = 1, ws_off_gib = 0, dirty = 100, bw = 1024, max_bw = 0;
    double zero = 0, bper = 0, bduty = 0.5, blow = 0.1, phase_at = -1, phase_dirty = -1;
    double phase_ws = -1, phase_off = -1, noise = 0, seed = 1, downtime = 300, dmax = 0;
    double deadline = 0, device = 20, max_s = 7200, matrix = -1, v;
    int auto_conv = 0, postcopy = 1, rc;
    const char *policy = "adaptive", *consent = "grant", *trace_path = NULL;
    enum sim_policy pol;
    struct sim_scenario sc;
    struct sim_result r;
    struct ferr err;
    struct cli cli;

    memset(&cli, 0, sizeof(cli));
    cli.progress_s = 5;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *a = i + 1 < argc ? argv[i + 1] : NULL;
        double *dst = NULL, lo = 0, hi = 1e9;
        if (!strcmp(o, "--json")) {
            cli.json = 1;
            continue;
        } else if (!strcmp(o, "--quiet")) {
            cli.quiet = 1;
            continue;
        } else if (!strcmp(o, "--auto-converge")) {
            auto_conv = 1;
            continue;
        } else if (!strcmp(o, "--no-postcopy")) {
            postcopy = 0;
            continue;
        } else if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(o, "--policy") || !strcmp(o, "--consent") || !strcmp(o, "--trace")) {
            if (!a) {
                fprintf(stderr, "ferry-sim: %s needs a value\n", o);
                return 2;
            }
            if (!strcmp(o, "--policy"))
                policy = a;
            else if (!strcmp(o, "--consent"))
                consent = a;
            else
                trace_path = a;
            i++;
            continue;
        }
        if (!strcmp(o, "--ram-gib"))
            dst = &ram_gib, lo = 0.0625, hi = 4096;
        else if (!strcmp(o, "--ws-gib"))
            dst = &ws_gib, hi = 4096;
        else if (!strcmp(o, "--ws-off-gib"))
            dst = &ws_off_gib, hi = 4096;
        else if (!strcmp(o, "--dirty-mibps"))
            dst = &dirty, hi = 1e6;
        else if (!strcmp(o, "--bw-mibps"))
            dst = &bw, lo = 1, hi = 1e6;
        else if (!strcmp(o, "--max-bw-mibps"))
            dst = &max_bw, hi = 1e6;
        else if (!strcmp(o, "--zero-frac"))
            dst = &zero, hi = 1;
        else if (!strcmp(o, "--burst-period-s"))
            dst = &bper, lo = 0.05, hi = 86400;
        else if (!strcmp(o, "--burst-duty"))
            dst = &bduty, hi = 1;
        else if (!strcmp(o, "--burst-low"))
            dst = &blow, hi = 1;
        else if (!strcmp(o, "--phase-at-s"))
            dst = &phase_at, hi = 1e6;
        else if (!strcmp(o, "--phase-dirty-mibps"))
            dst = &phase_dirty, hi = 1e6;
        else if (!strcmp(o, "--phase-ws-gib"))
            dst = &phase_ws, hi = 4096;
        else if (!strcmp(o, "--phase-ws-off-gib"))
            dst = &phase_off, hi = 4096;
        else if (!strcmp(o, "--noise"))
            dst = &noise, hi = 0.5;
        else if (!strcmp(o, "--seed"))
            dst = &seed, hi = 4e18;
        else if (!strcmp(o, "--downtime-ms"))
            dst = &downtime, lo = 1, hi = 2000000;
        else if (!strcmp(o, "--downtime-max-ms"))
            dst = &dmax, lo = 1, hi = 2000000;
        else if (!strcmp(o, "--deadline-s"))
            dst = &deadline, lo = 1, hi = 1e7;
        else if (!strcmp(o, "--device-ms"))
            dst = &device, hi = 1e6;
        else if (!strcmp(o, "--max-s"))
            dst = &max_s, lo = 1, hi = 1e7;
        else if (!strcmp(o, "--matrix"))
            dst = &matrix, hi = 1e6;
        else if (!strcmp(o, "--progress-s"))
            dst = &cli.progress_s, lo = 0.25, hi = 1e6;
        if (!dst) {
            fprintf(stderr, "ferry-sim: unknown option %s\n", o);
            usage(stderr);
            return 2;
        }
        if (num(o, a, lo, hi, &v) < 0)
            return 2;
        *dst = v;
        i++;
    }
    if (sim_policy_parse(policy, &pol) < 0) {
        fprintf(stderr, "ferry-sim: --policy: '%s' is not qemu, nova, schedule or adaptive\n",
                policy);
        return 2;
    }

    sim_scenario_default(&sc, ram_gib, bw, SIM_POL_QEMU);
    sc.wl.ws_bytes = (uint64_t)(ws_gib * GIB);
    sc.wl.ws_off_bytes = (uint64_t)(ws_off_gib * GIB);
    sc.wl.dirty_bps = dirty * MIB;
    sc.wl.zero_frac = zero;
    sc.wl.noise = noise;
    if (bper > 0) {
        sc.wl.profile = PRECOPY_BURSTY;
        sc.wl.burst_period_ms = (uint32_t)(bper * 1000);
        sc.wl.burst_duty = bduty;
        sc.wl.burst_low_frac = blow;
    }
    if (phase_at >= 0) {
        sc.wl.phase_at_ms = (int64_t)(phase_at * 1000);
        sc.wl.phase_dirty_bps = (phase_dirty >= 0 ? phase_dirty : dirty) * MIB;
        sc.wl.phase_ws_bytes = (uint64_t)((phase_ws >= 0 ? phase_ws : ws_gib) * GIB);
        sc.wl.phase_ws_off_bytes =
            (uint64_t)((phase_off >= 0 ? phase_off : ws_off_gib + ws_gib) * GIB);
        if (sc.wl.phase_ws_off_bytes + sc.wl.phase_ws_bytes > sc.wl.ram_bytes)
            sc.wl.phase_ws_off_bytes = 0;
    }
    sc.par.max_bw_bps = max_bw * MIB;
    sc.par.downtime_limit_ms = (uint32_t)downtime;
    sc.par.auto_converge = auto_conv;
    sc.par.postcopy_ram = postcopy;
    sc.par.device_ms = (uint32_t)device;
    sc.par.seed = (uint64_t)seed;
    sc.max_ms = (uint64_t)(max_s * 1000);
    sim_scenario_set_policy(&sc, pol);
    if (matrix >= 0) {
        if (sim_matrix_get((size_t)matrix, pol, &sc) < 0) {
            fprintf(stderr, "ferry-sim: --matrix: 0..%zu\n", sim_matrix_count() - 1);
            return 2;
        }
        if (!cli.json)
            printf("scenario %zu: %s\n", (size_t)matrix, sc.name);
    }
    if (pol == SIM_POL_ADAPTIVE) {
        if (dmax > 0)
            sc.conv.adaptive.downtime_max_ms = (uint64_t)dmax;
        if (deadline > 0)
            sc.conv.adaptive.deadline_ms = (uint64_t)(deadline * 1000);
    }
    if (!strcmp(consent, "grant")) {
        sc.consent = SIM_CONSENT_GRANT;
    } else if (!strcmp(consent, "refuse")) {
        sc.consent = SIM_CONSENT_REFUSE;
    } else if (!strncmp(consent, "after:", 6) && num("--consent", consent + 6, 0, 1e6, &v) == 0) {
        sc.consent = SIM_CONSENT_AFTER;
        sc.consent_after_ms = (uint64_t)(v * 1000);
    } else {
        fprintf(stderr, "ferry-sim: --consent: grant, refuse or after:SECONDS\n");
        return 2;
    }

    if (trace_path) {
        char hdr[TRACE_LINE_MAX + 2];
        size_t n;
        cli.trace = fopen(trace_path, "w");
        if (!cli.trace) {
            fprintf(stderr, "ferry-sim: --trace %s: %s\n", trace_path, strerror(errno));
            return 1;
        }
        if (trace_format_header(hdr, sizeof(hdr), &n) < 0 || fwrite(hdr, 1, n, cli.trace) != n)
            cli.trace_err = 1;
    }
    ferr_clear(&err);
    rc = sim_run(&sc, &r, on_sample, on_action, &cli, &err);
    if (cli.trace && (fclose(cli.trace) != 0 || cli.trace_err)) {
        fprintf(stderr, "ferry-sim: --trace %s: write failed\n", trace_path);
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "ferry-sim: invalid scenario: %s: %s\n", err.field, err.msg);
        return 2;
    }
    if (cli.json) {
        printf("{\"policy\":\"%s\",\"completed\":%s,\"aborted\":%s,\"timed_out\":%s,"
               "\"total_time_s\":%.3f,\"lower_bound_s\":%.3f,\"downtime_ms\":%.1f,"
               "\"paused_ms\":%.1f,\"guest_stop_ms\":%.1f,\"postcopy_s\":%.3f,"
               "\"iterations\":%llu,\"bytes_sent\":%llu,\"max_throttle_pct\":%u,"
               "\"final_downtime_limit_ms\":%llu,\"failed_actions\":%u}\n",
               sim_policy_name(pol), r.completed ? "true" : "false", r.aborted ? "true" : "false",
               r.timed_out ? "true" : "false", r.total_ms / 1000.0, r.lower_bound_ms / 1000.0,
               r.downtime_ms, r.paused_ms, r.guest_stop_ms, r.postcopy_ms / 1000.0,
               (unsigned long long)r.iterations, (unsigned long long)r.bytes_sent, r.max_throttle,
               (unsigned long long)r.final_downtime_limit_ms, r.n_failed_actions);
    } else {
        printf("summary: policy=%s %s total=%.1fs (lower bound %.1fs) downtime=%.0fms "
               "paused=%.0fms postcopy=%.1fs iterations=%llu sent=%.1fMiB max-throttle=%u%%\n",
               sim_policy_name(pol),
               r.completed ? "completed"
               : r.aborted ? "aborted"
                           : "timed-out",
               r.total_ms / 1000.0, r.lower_bound_ms / 1000.0, r.downtime_ms, r.paused_ms,
               r.postcopy_ms / 1000.0, (unsigned long long)r.iterations, (double)r.bytes_sent / MIB,
               r.max_throttle);
    }
    return r.completed ? 0 : 3;
}

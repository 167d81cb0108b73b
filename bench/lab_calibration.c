/* lab_calibration — ETA accuracy on real lab migrations, and ferry-sim
 * calibrated against the same runs.
 *
 * One 256 MiB lab guest (memload, 64 MiB working set) is moved back and
 * forth between two ferry-agents (tests/lib/lab), once per run, with the
 * dirty rate changed between moves through memload's console ("rate R") and
 * the bandwidth cap set per migration. Every run must converge. Per run the
 * bench records:
 *   - the agent's live estimate: GET /v1/migrations/ID every 100 ms, kept
 *     with the t_ms of the sample it was computed from (last_sample);
 *   - every 250 ms sample: GET /v1/migrations/ID/trace (core trace CSV);
 *   - QEMU's total-time, downtime, dirty-sync-count, non-zero RAM
 *     (ram_total - ram_duplicate x 4096 at completion), and memload's real
 *     write rate over the move (pages_dirtied_total before and after).
 * After the move the guest checks its whole working set (verify).
 *
 * Part 1 (bench/out/lab_eta.json): at the first sample at or after 10, 25
 * and 50 % of QEMU's total time, |ETA - time really left| / time left, for
 * (a) the agent's live estimate, (b) the estimator (core/estimator.h)
 * replayed offline over the recorded samples, and the baseline
 * ram_remaining / bw_bps of the same sample. Unknown ETA counts as 100 %.
 * Median over runs per point.
 *
 * Each move starts with the agent's memory census (docs/AGENT.md); every
 * run is also replayed with the census and no hints (a first move), with
 * neither (the baseline; the samples' census re-reads removed) and with
 * the hints alone, and the census is compared with QEMU's count.
 *
 * Part 2 (bench/out/sim_calibration.json): each run's workload in ferry-sim
 * through src/sim/lab_match.h (RAM = the run's ram_total, working set
 * 64 MiB, zero fraction from the run's non-zero RAM, memload's sequential
 * rate mapped to the model's uniform write rate, same cap and downtime
 * limit); simulated vs real total time, iterations and downtime. Baseline:
 * the unmatched mapping (model write rate = memload's nominal rate).
 *
 * Environment: BUILD (default build); FERRY_CAL_RUNS, comma-separated
 * RATE@CAP_MIBS (default below: 9 workloads, each twice, interleaved);
 * FERRY_CAL_LINK_MIBS, the loopback link rate the simulator assumes after
 * switchover (default 1024); FERRY_CAL_TRACE_DIR, when set, receives each
 * run's samples as runN_rR_capC.csv (core trace format) for overlays, and
 * beside each runN_rR_capC.census (QEMU's total-time and the census) so the
 * replays can be redone offline. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../tests/lib/benchenv.h"
#include "../tests/lib/lab.h"
#include "core/estimator.h"
#include "core/sample.h"
#include "core/trace.h"
#include "sim/lab_match.h"
#include "sim/run.h"
#include "util/ferr.h"
#include "util/httpc.h"
#include "util/xalloc.h"

#define MEM_MIB 256
#define WS_MIB 64
#define DOWNTIME_MS 300
#define MAX_RUNS 24
#define MAX_SAMPLES 4000 /* 250 ms samples of one run (1000 s) */
#define MAX_LIVE 10000   /* live estimates of one run */
#define POLL_MS 100      /* GET period while migrating, ms */
#define MIG_TIMEOUT_S 90 /* one move, s: it must converge */
#define SETTLE_MS 1000   /* after a rate change, before migrating, ms */
#define NFRAC 3
#define DEFAULT_RUNS                                                                               \
    "0@32,0@64,1000@32,1000@64,2000@32,2000@64,4000@32,4000@64,8000@64,"                           \
    "0@32,0@64,1000@32,1000@64,2000@32,2000@64,4000@32,4000@64,8000@64"

static const double fracs[NFRAC] = {0.10, 0.25, 0.50};

struct live_est {
    uint64_t t_ms; /* t_ms of the sample the estimate was made from */
    int known;     /* eta_ms present and finite */
    double eta_ms; /* ms */
};

struct run {
    unsigned rate;          /* memload rate asked, pages/s */
    unsigned cap_mibs;      /* max-bandwidth, MiB/s */
    bool ok;                /* converged, destination intact */
    char why[300];          /* why not ok */
    double total_ms;        /* QEMU total-time, ms */
    double migrate_t_ms;    /* agent clock (ms after the request) when `migrate` was
                               sent: QEMU's total-time counts from there; 0 unknown */
    double end_ms;          /* the move's end on the samples' clock: migrate_t_ms +
                               total_ms, ms (part 1's reference) */
    double link_bps;        /* link rate the agent gave the estimator (earlier moves'
                               final stages), bytes/s; 0 none */
    double final_bps;       /* this move's final stage as the agent measured it, bytes/s */
    double downtime_ms;     /* QEMU downtime, ms */
    double setup_ms;        /* QEMU setup-time, ms (not in the model) */
    uint64_t iterations;    /* dirty-sync-count at completion */
    uint64_t ram_total;     /* bytes */
    uint64_t nonzero;       /* ram_total - ram_duplicate x 4096, bytes */
    uint64_t sent;          /* ram_transferred, bytes */
    double rate_meas_pps;   /* memload's real write rate over the move, pages/s; < 0 unknown */
    struct mig_sample *smp; /* recorded samples */
    size_t ns;              /* in smp */
    bool from_trace;        /* samples came from /trace (else ?samples=1) */
    struct live_est *live;  /* live estimates */
    size_t nl;              /* in live */
    /* part 1 */
    bool asked[NFRAC];                     /* the run had a sample at this point */
    uint64_t at_ms[NFRAC];                 /* t_ms of that sample */
    double left_ms[NFRAC];                 /* time really left, ms */
    double e_live[NFRAC];                  /* % error of the live estimate (<0: none recorded) */
    double e_replay[NFRAC];                /* % error of the replayed estimator */
    double e_naive[NFRAC];                 /* % error of remaining / bw */
    double e_nohint[NFRAC];                /* % error of the replayed estimator without the
                                              previous migration's hints (the old one) */
    bool hinted;                           /* the move had hints from the previous one */
    double e_cen_first[NFRAC];             /* % error of the replay with the census and
                                              no hints: the first move of a guest */
    double e_hint_only[NFRAC];             /* the replay with the hints, no census */
    bool census;                           /* the agent took a census before migrate */
    uint64_t cen_nz, cen_ram;              /* its non-zero bytes and RAM covered, bytes */
    double cen_err;                        /* its relative standard error */
    uint64_t cen_prof[EST_CENSUS_BUCKETS]; /* its profile, bytes per slice */
    uint32_t cen_np;                       /* slices */
    double cen_wall_us, cen_cpu_us;        /* its cost */
    uint64_t dirty_set;                    /* replay's est_out.dirty_set_bytes at the end */
    uint64_t hint_nz;                      /* hints sent with this move (the request's
                                              "hints"), bytes; 0: none */
    uint64_t hint_ws;                      /* the same for the dirty set, bytes */
    uint64_t live_set;                     /* last live estimate's dirty_set_bytes */
    double hint_d;                         /* hint sent: pass-1 dirty rate, bytes/s */
    double live_d;                         /* last live estimate's pass1_dirty_bps */
    double eta_live[NFRAC], eta_replay[NFRAC], eta_naive[NFRAC]; /* ms, < 0 unknown */
    bool live_exact[NFRAC]; /* live estimate from that very sample */
    bool bulk[NFRAC];       /* that sample was in the bulk pass (dirty_sync_count <= 1) */
    /* part 2 */
    bool sim_ok; /* the sim completed */
    double sim_total_ms, sim_downtime_ms, sim_write_pps, sim_period_s;
    uint64_t sim_iterations;
    bool base_ok; /* unmatched mapping completed */
    double base_total_ms;
    uint64_t base_iterations;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return (uint64_t)json_integer_value(v);
    if (json_is_real(v) && json_real_value(v) >= 0)
        return (uint64_t)json_real_value(v);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorted in place); NAN when n is 0. */
static double median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof(*v), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double pct_err(double got, double want)
{
    return want > 0 ? fabs(got - want) / want * 100.0 : NAN;
}

static json_t *num(double v)
{
    return isfinite(v) ? json_real(round(v * 1000.0) / 1000.0) : json_null();
}

/* --- the lab part --------------------------------------------------------- */

/* memload's pages_dirtied_total through the console "status" command. */
static int guest_dirtied(const struct lab_agent *a, const char *name, uint64_t *pages)
{
    struct ferr e = {0};
    char *rest = NULL;
    if (lab_console_expect(a, name, "status", 0, "FERRY-STATUS ", LAB_CMD_TIMEOUT_MS, &rest, &e) !=
        0)
        return -1;
    json_t *j = json_loads(rest, 0, NULL);
    free(rest);
    if (!j)
        return -1;
    *pages = jnum(j, "pages_dirtied_total");
    json_decref(j);
    return 0;
}

static int guest_rate(const struct lab_agent *a, const char *name, unsigned rate, struct ferr *e)
{
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "rate %u", rate);
    return lab_console_expect(a, name, cmd, 0, "FERRY-ACK ", LAB_CMD_TIMEOUT_MS, NULL, e);
}

static void sample_from_json(json_t *j, struct mig_sample *s)
{
    memset(s, 0, sizeof(*s));
    s->t_ms = jnum(j, "t_ms");
    const char *ph = json_string_value(json_object_get(j, "phase"));
    if (!ph || mig_phase_parse(ph, strlen(ph), &s->phase) != 0)
        s->phase = MIG_PHASE_SETUP;
    s->ram_total = jnum(j, "ram_total");
    s->ram_transferred = jnum(j, "ram_transferred");
    s->ram_remaining = jnum(j, "ram_remaining");
    s->ram_duplicate = jnum(j, "ram_duplicate");
    s->dirty_pages_rate = jnum(j, "dirty_pages_rate");
    s->bw_bps = jnum(j, "bw_bps");
    s->dirty_sync_count = jnum(j, "dirty_sync_count");
    s->throttle_pct = (uint32_t)jnum(j, "throttle_pct");
    s->expected_downtime_ms = jnum(j, "expected_downtime_ms");
}

/* Fetches the run's samples: the trace CSV, or ?samples=1 when the agent
 * has no trace endpoint. */
static int fetch_samples(const struct lab_agent *a, const char *id, struct run *r, struct ferr *e)
{
    char path[160];
    struct httpc_resp resp;
    r->smp = xcalloc(MAX_SAMPLES, sizeof(*r->smp));
    snprintf(path, sizeof(path), "/v1/migrations/%s/trace", id);
    if (httpc_request(a->url, "GET", path, NULL, NULL, LAB_HTTP_TIMEOUT_MS, &resp, e) == 0) {
        int st = resp.status, rc = -1;
        if (st == 200)
            rc = trace_parse(resp.body, resp.len, r->smp, MAX_SAMPLES, &r->ns, e);
        httpc_resp_free(&resp);
        if (rc == 0) {
            r->from_trace = true;
            return 0;
        }
    }
    snprintf(path, sizeof(path), "/v1/migrations/%s?samples=1", id);
    int status = 0;
    json_t *out = NULL;
    if (lab_api(a, "GET", path, NULL, &status, &out, e) != 0 || status != 200 || !out) {
        json_decref(out);
        return -1;
    }
    json_t *arr = json_object_get(out, "samples");
    r->ns = 0;
    for (size_t i = 0; i < json_array_size(arr) && r->ns < MAX_SAMPLES; i++)
        sample_from_json(json_array_get(arr, i), &r->smp[r->ns++]);
    json_decref(out);
    return 0;
}

/* lab_migrate_start with the request's "hints" from r (when it has any):
 * what a coordinator would pass from the instance's previous migration. */
static int start_move(const struct lab_agent *src, const struct lab_agent *dst, const char *name,
                      json_t *lim, const struct run *r, char *id, size_t n, struct ferr *e)
{
    if (!r->hint_nz && !r->hint_ws && !(r->hint_d > 0))
        return lab_migrate_start(src, dst, name, lim, id, n, e);
    char uri[160];
    int rc = lab_prepare_incoming(src, dst, name, uri, sizeof(uri), e);
    if (rc != 0)
        return rc;
    json_t *b = json_pack("{s:s, s:s, s:s, s:O, s:{s:I, s:I, s:I}}", "instance", name, "dest_uri",
                          uri, "dest_agent", dst->url, "limits", lim, "hints", "nonzero_bytes",
                          (json_int_t)r->hint_nz, "dirty_set_bytes", (json_int_t)r->hint_ws,
                          "dirty_bps", (json_int_t)ceil(r->hint_d));
    int st = 0;
    json_t *o = NULL;
    rc = lab_api(src, "POST", "/v1/migrations", b, &st, &o, e);
    json_decref(b);
    const char *mid = json_string_value(json_object_get(o, "id"));
    if (rc == 0 && (st != 202 || !mid)) {
        char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
        rc = ferr_set(e, FERR_PEER, "migration", "POST /v1/migrations: status %d %.150s", st,
                      txt ? txt : "");
        free(txt);
    }
    if (rc == 0)
        snprintf(id, n, "%s", mid);
    json_decref(o);
    if (rc != 0) {
        char path[128];
        struct ferr e2;
        snprintf(path, sizeof(path), "/v1/instances/%s", name);
        if (lab_api(dst, "DELETE", path, NULL, &st, NULL, &e2) != 0) {
        }
    }
    return rc;
}

/* Moves guest name from src to dst at the run's rate and cap. */
static void lab_run(const struct lab_agent *src, const struct lab_agent *dst, const char *name,
                    struct run *r)
{
    struct ferr e = {0};
    char id[128], path[160];
    json_t *out = NULL;
    int status = 0;
    r->rate_meas_pps = -1;
    if (guest_rate(src, name, r->rate, &e) != 0) {
        snprintf(r->why, sizeof(r->why), "rate %u: %s", r->rate, e.msg);
        return;
    }
    sleep_ms(SETTLE_MS);
    uint64_t p0 = 0, p1 = 0;
    bool have_p0 = guest_dirtied(src, name, &p0) == 0;
    double t0 = now_s();
    json_t *lim = json_pack("{s:i, s:I, s:i}", "downtime_ms", DOWNTIME_MS, "max_bandwidth_bps",
                            (json_int_t)r->cap_mibs << 20, "completion_timeout_s", MIG_TIMEOUT_S);
    int rc = start_move(src, dst, name, lim, r, id, sizeof(id), &e);
    json_decref(lim);
    if (rc != 0) {
        snprintf(r->why, sizeof(r->why), "migrate: %s", e.msg);
        return;
    }
    r->live = xcalloc(MAX_LIVE, sizeof(*r->live));
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    const char *st = NULL;
    for (;;) {
        json_decref(out);
        out = NULL;
        if (lab_api(src, "GET", path, NULL, &status, &out, &e) != 0 || status != 200 || !out) {
            snprintf(r->why, sizeof(r->why), "GET %.150s: %d %.100s", path, status, e.msg);
            json_decref(out);
            return;
        }
        st = json_string_value(json_object_get(out, "state"));
        json_t *est = json_object_get(out, "estimate");
        json_t *ls = json_object_get(out, "last_sample");
        uint64_t t = jnum(ls, "t_ms");
        if (est && ls && (r->nl == 0 || r->live[r->nl - 1].t_ms != t) && r->nl < MAX_LIVE) {
            json_t *eta = json_object_get(est, "eta_ms");
            struct live_est *x = &r->live[r->nl++];
            x->t_ms = t;
            x->known = json_is_number(eta);
            x->eta_ms = x->known ? json_number_value(eta) : -1;
            r->live_set = jnum(est, "dirty_set_bytes");
            json_t *pd = json_object_get(est, "pass1_dirty_bps");
            r->live_d = json_is_number(pd) ? json_number_value(pd) : 0;
        }
        if (st && (strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
                   strcmp(st, "cancelled") == 0))
            break;
        if (now_s() - t0 > MIG_TIMEOUT_S + 60) {
            snprintf(r->why, sizeof(r->why), "not terminal after %d s", MIG_TIMEOUT_S + 60);
            json_decref(out);
            return;
        }
        sleep_ms(POLL_MS);
    }
    if (strcmp(st, "succeeded") != 0) {
        const char *err = json_string_value(json_object_get(out, "error"));
        snprintf(r->why, sizeof(r->why), "%s: %.200s", st, err ? err : "");
        json_decref(out);
        return;
    }
    json_t *cen = json_object_get(out, "census");
    const char *cst = json_string_value(json_object_get(cen, "state"));
    if (cst && strcmp(cst, "taken") == 0) {
        json_t *pr = json_object_get(cen, "profile"), *re = json_object_get(cen, "rel_err");
        r->census = true;
        r->cen_nz = jnum(cen, "nonzero_bytes");
        r->cen_ram = jnum(cen, "ram_bytes");
        r->cen_err = json_is_number(re) ? json_number_value(re) : 0;
        r->cen_wall_us = (double)jnum(cen, "wall_us");
        r->cen_cpu_us = (double)jnum(cen, "cpu_us");
        for (size_t i = 0; i < json_array_size(pr) && i < EST_CENSUS_BUCKETS; i++)
            r->cen_prof[r->cen_np++] = (uint64_t)json_integer_value(json_array_get(pr, i));
    }
    json_t *res = json_object_get(out, "result");
    r->total_ms = (double)jnum(res, "total_time_ms");
    r->final_bps = (double)jnum(res, "final_stage_bps");
    json_t *fs = json_object_get(out, "final_stage");
    r->migrate_t_ms = (double)jnum(fs, "migrate_t_ms");
    r->link_bps = (double)jnum(fs, "link_bps");
    r->end_ms = r->migrate_t_ms + r->total_ms;
    r->downtime_ms = (double)jnum(res, "downtime_ms");
    r->setup_ms = (double)jnum(res, "setup_time_ms");
    r->iterations = jnum(res, "iterations");
    r->sent = jnum(res, "ram_transferred");
    json_t *ls = json_object_get(out, "last_sample");
    r->ram_total = jnum(ls, "ram_total");
    uint64_t dup = jnum(ls, "ram_duplicate") * 4096u;
    r->nonzero = r->ram_total > dup ? r->ram_total - dup : 0;
    json_decref(out);
    if (fetch_samples(src, id, r, &e) != 0 || r->ns == 0) {
        snprintf(r->why, sizeof(r->why), "samples: %s", e.msg);
        return;
    }
    if (have_p0 && guest_dirtied(dst, name, &p1) == 0 && p1 >= p0)
        r->rate_meas_pps = (double)(p1 - p0) / (now_s() - t0);
    struct lab_integrity li;
    if (lab_verify(dst, name, &li, &e) != 0) {
        snprintf(r->why, sizeof(r->why), "verify: %s", e.msg);
        return;
    }
    if (!li.ok) {
        snprintf(r->why, sizeof(r->why), "guest memory corrupted: %lld bad pages", li.bad_pages);
        return;
    }
    if (!lab_instance_wait_gone(src, name, 20000)) {
        snprintf(r->why, sizeof(r->why), "source instance still listed");
        return;
    }
    r->ok = true;
}

/* Writes r's samples to dir/runI_KEY.csv in the core trace format. */
static void dump_trace(const char *dir, int i, const struct run *r, const char *key)
{
    char *path = xasprintf("%s/run%d_%s.csv", dir, i, key);
    FILE *f = fopen(path, "w");
    char line[TRACE_LINE_MAX + 2];
    size_t len;
    if (f && trace_format_header(line, sizeof(line), &len) == 0)
        fputs(line, f);
    for (size_t k = 0; f && k < r->ns; k++)
        if (trace_format_row(&r->smp[k], line, sizeof(line), &len) == 0)
            fputs(line, f);
    if (!f || fclose(f) != 0)
        fprintf(stderr, "lab_calibration: cannot write %s\n", path);
    free(path);
    /* what an offline replay needs besides the samples: QEMU's total-time
     * and the census (count, RAM covered, s.e., profile) */
    path = xasprintf("%s/run%d_%s.census", dir, i, key);
    f = fopen(path, "w");
    if (f) {
        fprintf(f,
                "total_ms %.0f\nmigrate_t_ms %.0f\nlink_bps %.0f\nfinal_bps %.0f\ndowntime_ms "
                "%.0f\ncensus %d\nnonzero_bytes %llu\nram_bytes %llu\nrel_err %.6f\n"
                "profile",
                r->total_ms, r->migrate_t_ms, r->link_bps, r->final_bps, r->downtime_ms,
                r->census ? 1 : 0, (unsigned long long)r->cen_nz, (unsigned long long)r->cen_ram,
                r->cen_err);
        for (size_t k = 0; k < r->cen_np; k++)
            fprintf(f, " %llu", (unsigned long long)r->cen_prof[k]);
        fputc('\n', f);
    }
    if (!f || fclose(f) != 0)
        fprintf(stderr, "lab_calibration: cannot write %s\n", path);
    free(path);
}

/* --- part 1: ETA accuracy -------------------------------------------------- */

/* Replays r's samples through an estimator made with params p; returns the
 * absolute % error of its ETA at each fraction in err[] (100 when unknown,
 * untouched when the run was not asked there) and its final
 * dirty_set_bytes in *set. */
/* Feeds sample s to est; without_curve drops the census re-reads it
 * carries (census_dirty_*), for the replays without the census. */
static int feed(struct est *est, const struct mig_sample *s, bool without_curve)
{
    struct mig_sample c = *s;
    if (without_curve)
        c.census_dirty_bytes = c.census_dirty_ms = 0;
    return est_update(est, &c);
}

static void eta_replay(const struct run *r, const struct est_params *p, double err[NFRAC],
                       uint64_t *set)
{
    struct est est;
    struct est_out o;
    size_t k = 0;
    bool nc = !p || !p->census_nonzero_bytes; /* a replay without the census */
    est_init(&est, p);
    for (int f = 0; f < NFRAC; f++) {
        double at = fracs[f] * r->end_ms;
        while (k < r->ns && (double)r->smp[k].t_ms < at)
            if (feed(&est, &r->smp[k++], nc) != 0)
                return;
        if (k >= r->ns || (double)r->smp[k].t_ms >= r->end_ms ||
            r->smp[k].phase != MIG_PHASE_ACTIVE)
            continue;
        if (feed(&est, &r->smp[k++], nc) != 0)
            return;
        est_get(&est, &o);
        double left = r->end_ms - (double)r->smp[k - 1].t_ms;
        err[f] =
            o.eta_known && o.eta_ms != EST_ETA_INFINITE ? pct_err((double)o.eta_ms, left) : 100.0;
    }
    while (k < r->ns)
        if (feed(&est, &r->smp[k++], nc) != 0)
            return;
    est_get(&est, &o);
    *set = o.dirty_set_bytes;
}

/* The census the agent took before the move, as estimator params. */
static void census_params(const struct run *r, struct est_params *ep)
{
    if (!r->census)
        return;
    ep->census_nonzero_bytes = r->cen_nz;
    ep->census_ram_bytes = r->cen_ram;
    ep->census_err = r->cen_err;
    ep->census_nprofile = r->cen_np;
    memcpy(ep->census_profile, r->cen_prof, sizeof(ep->census_profile));
}

/* The replay gets what the live agent got with the move: its census and
 * the hints (r->hint_*, from the previous move of the same guest).
 * e_nohint is the same replay with neither (the baseline: a first move
 * without census), e_cen_first with the census alone (a first move),
 * e_hint_only with the hints alone (the estimator before the census). */
static void eta_errors(struct run *r)
{
    struct est est;
    struct est_params ep, ec, eh;
    memset(&ep, 0, sizeof(ep));
    ep.link_bps = r->link_bps; /* the host's, in every replay */
    ep.hint_nonzero_bytes = r->hint_nz;
    ep.hint_dirty_set_bytes = r->hint_ws;
    ep.hint_dirty_bps = r->hint_d;
    eh = ep;
    census_params(r, &ep);
    memset(&ec, 0, sizeof(ec));
    ec.link_bps = r->link_bps;
    census_params(r, &ec);
    r->hinted = r->hint_nz || r->hint_ws || r->hint_d > 0;
    uint64_t unused = 0;
    for (int f = 0; f < NFRAC; f++)
        r->e_nohint[f] = r->e_cen_first[f] = r->e_hint_only[f] = NAN;
    struct est_params en;
    memset(&en, 0, sizeof(en));
    en.link_bps = r->link_bps;
    eta_replay(r, &en, r->e_nohint, &unused);
    eta_replay(r, &ec, r->e_cen_first, &unused);
    eta_replay(r, &eh, r->e_hint_only, &unused);
    eta_replay(r, &ep, r->e_replay, &r->dirty_set);
    est_init(&est, &ep);
    size_t k = 0;
    for (int f = 0; f < NFRAC; f++) {
        double at = fracs[f] * r->end_ms;
        r->asked[f] = false;
        /* replay up to and including the first sample at or after `at` */
        while (k < r->ns && (double)r->smp[k].t_ms < at) {
            if (est_update(&est, &r->smp[k]) != 0)
                return;
            k++;
        }
        if (k >= r->ns || (double)r->smp[k].t_ms >= r->end_ms ||
            r->smp[k].phase != MIG_PHASE_ACTIVE)
            continue;
        const struct mig_sample *s = &r->smp[k];
        if (est_update(&est, s) != 0)
            return;
        k++;
        struct est_out o;
        est_get(&est, &o);
        r->asked[f] = true;
        r->at_ms[f] = s->t_ms;
        r->bulk[f] = s->dirty_sync_count <= 1;
        double left = r->end_ms - (double)s->t_ms;
        r->left_ms[f] = left;
        bool known = o.eta_known && o.eta_ms != EST_ETA_INFINITE;
        r->eta_replay[f] = known ? (double)o.eta_ms : -1;
        r->e_replay[f] = known ? pct_err((double)o.eta_ms, left) : 100.0;
        r->eta_naive[f] = s->bw_bps > 0 ? (double)s->ram_remaining / (double)s->bw_bps * 1e3 : -1;
        r->e_naive[f] = r->eta_naive[f] >= 0 ? pct_err(r->eta_naive[f], left) : 100.0;
        /* live: the estimate made from this very sample, else the first
         * one polled at or after it */
        r->e_live[f] = -1;
        r->eta_live[f] = -1;
        for (size_t i = 0; i < r->nl; i++) {
            if (r->live[i].t_ms < s->t_ms)
                continue;
            double l = r->end_ms - (double)r->live[i].t_ms;
            if (l <= 0)
                break;
            r->live_exact[f] = r->live[i].t_ms == s->t_ms;
            r->eta_live[f] = r->live[i].known ? r->live[i].eta_ms : -1;
            r->e_live[f] = r->live[i].known ? pct_err(r->live[i].eta_ms, l) : 100.0;
            break;
        }
    }
}

/* --- part 2: the simulator ------------------------------------------------- */

static void sim_errors(struct run *r, double link_bps)
{
    struct lab_match_in in = {
        .ram_bytes = r->ram_total,
        .ws_bytes = (uint64_t)WS_MIB << 20,
        .nonzero_bytes = r->nonzero,
        .seq_pps = r->rate_meas_pps >= 0 ? r->rate_meas_pps : (double)r->rate,
        .max_bw_bps = (double)((uint64_t)r->cap_mibs << 20),
        .link_bps = link_bps,
        .downtime_limit_ms = DOWNTIME_MS,
        .sequential = 1,
    };
    struct sim_scenario sc;
    struct sim_result sr;
    struct lab_match_out mo;
    struct ferr e = {0};
    if (lab_match_run(&in, &sc, &sr, &mo, &e) == 0 && sr.completed) {
        r->sim_ok = true;
        r->sim_total_ms = sr.total_ms;
        r->sim_downtime_ms = sr.downtime_ms;
        r->sim_iterations = sr.iterations;
        r->sim_write_pps = mo.write_pps;
        r->sim_period_s = mo.period_s;
    } else if (e.msg[0]) {
        fprintf(stderr, "lab_calibration: sim: %s\n", e.msg);
    }
    in.sequential = 0;
    in.seq_pps = (double)r->rate;
    if (lab_match_run(&in, &sc, &sr, NULL, &e) == 0 && sr.completed) {
        r->base_ok = true;
        r->base_total_ms = sr.total_ms;
        r->base_iterations = sr.iterations;
    }
}

/* --- report ---------------------------------------------------------------- */

static char *run_key(const struct run *r)
{
    return xasprintf("r%u_cap%u", r->rate, r->cap_mibs);
}

static int write_json(const char *path, json_t *doc)
{
    int rc = json_dump_file(doc, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (rc != 0)
        fprintf(stderr, "lab_calibration: cannot write %s\n", path);
    return rc;
}

static void fmt_eta(char *buf, size_t n, double ms)
{
    if (ms < 0)
        snprintf(buf, n, "?");
    else
        snprintf(buf, n, "%.2f", ms / 1000.0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *v = getenv("FERRY_CAL_LINK_MIBS");
    double link_bps = (v && strtod(v, NULL) > 0 ? strtod(v, NULL) : 1024.0) * 1048576.0;
    v = getenv("FERRY_CAL_RUNS");
    char spec[512];
    snprintf(spec, sizeof(spec), "%s", v && *v ? v : DEFAULT_RUNS);
    static struct run runs[MAX_RUNS];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(spec, ",", &save); t && n < MAX_RUNS;
         t = strtok_r(NULL, ",", &save)) {
        char *at = strchr(t, '@');
        memset(&runs[n], 0, sizeof(runs[n]));
        runs[n].rate = (unsigned)strtoul(t, NULL, 10);
        runs[n].cap_mibs = at ? (unsigned)strtoul(at + 1, NULL, 10) : 64;
        if (runs[n].cap_mibs == 0) {
            fprintf(stderr, "lab_calibration: bad run '%s' (RATE@CAP_MIBS)\n", t);
            return 2;
        }
        n++;
    }
    char mach[512];
    bench_machine_tcg(mach, sizeof(mach));
    printf("lab_calibration: %d MiB guest, memload ws %d MiB, downtime-limit %d ms, %d moves of "
           "one guest between two agents\nmachine: %s\n",
           MEM_MIB, WS_MIB, DOWNTIME_MS, n, mach);

    double t_start = now_s();
    struct lab lab;
    struct ferr e = {0};
    if (lab_start(&lab, 2, &e) != 0) {
        fprintf(stderr, "lab_calibration: lab: %s\n", e.msg);
        return 1;
    }
    const char *name = "cal";
    char cl[200];
    snprintf(cl, sizeof(cl),
             "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=%d ferry.rate=%u",
             WS_MIB, n ? runs[0].rate : 0);
    if (lab_launch_guest(&lab.agents[0], name, MEM_MIB, cl, LAB_BOOT_TIMEOUT_MS, &e) != 0) {
        fprintf(stderr, "lab_calibration: launch: %s\n", e.msg);
        lab_stop(&lab);
        return 1;
    }
    fprintf(stderr, "lab_calibration: guest ready (%.0f s)\n", now_s() - t_start);
    int cur = 0, bad = 0;
    const struct run *prev = NULL; /* last converged move: the next one's hints */
    for (int i = 0; i < n; i++) {
        struct run *r = &runs[i];
        if (prev) { /* the instance's history, as a coordinator would keep it */
            r->hint_nz = prev->nonzero;
            r->hint_ws = prev->live_set;
            r->hint_d = prev->live_d;
        }
        lab_run(&lab.agents[cur], &lab.agents[1 - cur], name, r);
        if (r->ok)
            prev = r;
        fprintf(stderr,
                "lab_calibration: move %d rate %u cap %u: %s total %.2f s (%.0f s so far)\n", i + 1,
                r->rate, r->cap_mibs, r->ok ? "ok" : r->why, r->total_ms / 1000.0,
                now_s() - t_start);
        if (!r->ok) {
            bad = 1;
            if (r->total_ms <= 0)
                break; /* the guest may be lost: stop here */
        }
        cur = 1 - cur;
    }
    lab_stop(&lab);

    /* part 1 */
    static double a_live[NFRAC][MAX_RUNS], a_rep[NFRAC][MAX_RUNS], a_nai[NFRAC][MAX_RUNS];
    size_t na[NFRAC] = {0}, nlive[NFRAC] = {0}, exact[NFRAC] = {0};
    size_t unk_live[NFRAC] = {0}, unk_rep[NFRAC] = {0};
    static double e_bulk[NFRAC * MAX_RUNS], e_after[NFRAC * MAX_RUNS];
    size_t n_bulk = 0, n_after = 0;
    int nok = 0, ntrace = 0, align_bad = 0;
    static double a_old[NFRAC][MAX_RUNS], a_h[2][NFRAC][MAX_RUNS]; /* [hinted] */
    size_t nh[2][NFRAC] = {{0}};
    static double a_cf[NFRAC][MAX_RUNS], a_ho[NFRAC][MAX_RUNS], c_acc[MAX_RUNS], c_wall[MAX_RUNS],
        c_cpu[MAX_RUNS], c_rel[MAX_RUNS];
    size_t ncen = 0;
    printf("\nPart 1 — ETA at a fraction of the total time (s; error %% vs time really left)\n");
    printf("%-14s %6s %5s %7s %7s %14s %14s %14s %8s %8s %8s\n", "run", "total", "at", "t", "left",
           "live", "replay", "naive", "no_hint", "cen_1st", "hint_only");
    for (int i = 0; i < n; i++) {
        struct run *r = &runs[i];
        if (!r->ok)
            continue;
        nok++;
        ntrace += r->from_trace;
        /* QEMU's total-time vs the agent's sample clock: the last active
         * sample must come before it */
        for (size_t k = 0; k < r->ns; k++)
            if (r->smp[k].phase == MIG_PHASE_ACTIVE && (double)r->smp[k].t_ms > r->end_ms) {
                align_bad++;
                break;
            }
        eta_errors(r);
        if (r->census && r->nonzero > 0) {
            /* the census against QEMU's own count at the end (memload's
             * set is written before the move, so they should agree) */
            double cz = (double)r->cen_nz +
                        (r->ram_total > r->cen_ram ? (double)(r->ram_total - r->cen_ram) : 0);
            c_acc[ncen] = pct_err(cz, (double)r->nonzero);
            c_wall[ncen] = r->cen_wall_us / 1e3;
            c_cpu[ncen] = r->cen_cpu_us / 1e3;
            c_rel[ncen] = r->cen_err * 100.0;
            ncen++;
        }
        char *key = run_key(r);
        if (getenv("FERRY_CAL_TRACE_DIR") && *getenv("FERRY_CAL_TRACE_DIR"))
            dump_trace(getenv("FERRY_CAL_TRACE_DIR"), i + 1, r, key);
        for (int f = 0; f < NFRAC; f++) {
            if (!r->asked[f])
                continue;
            char a[16], b[16], c[16];
            fmt_eta(a, sizeof(a), r->eta_live[f]);
            fmt_eta(b, sizeof(b), r->eta_replay[f]);
            fmt_eta(c, sizeof(c), r->eta_naive[f]);
            printf("%-14s %6.2f %4.0f%% %7.2f %7.2f %6s %6.1f%% %6s %6.1f%% %6s %6.1f%% %7.1f%% "
                   "%7.1f%% %7.1f%%\n",
                   key, r->end_ms / 1e3, fracs[f] * 100, (double)r->at_ms[f] / 1e3,
                   r->left_ms[f] / 1e3, a, r->e_live[f], b, r->e_replay[f], c, r->e_naive[f],
                   r->e_nohint[f], r->e_cen_first[f], r->e_hint_only[f]);
            a_cf[f][na[f]] = isnan(r->e_cen_first[f]) ? 100.0 : r->e_cen_first[f];
            a_ho[f][na[f]] = isnan(r->e_hint_only[f]) ? 100.0 : r->e_hint_only[f];
            a_old[f][na[f]] = r->e_nohint[f];
            a_h[r->hinted][f][nh[r->hinted][f]++] = r->e_replay[f];
            if (r->bulk[f])
                e_bulk[n_bulk++] = r->e_replay[f];
            else
                e_after[n_after++] = r->e_replay[f];
            a_rep[f][na[f]] = r->e_replay[f];
            a_nai[f][na[f]] = r->e_naive[f];
            na[f]++;
            unk_rep[f] += r->eta_replay[f] < 0;
            if (r->e_live[f] >= 0) {
                a_live[f][nlive[f]++] = r->e_live[f];
                unk_live[f] += r->eta_live[f] < 0;
                exact[f] += r->live_exact[f];
            }
        }
        free(key);
    }
    double m_live[NFRAC], m_rep[NFRAC], m_nai[NFRAC], m_old[NFRAC], m_h[2][NFRAC];
    double m_cf[NFRAC], m_ho[NFRAC];
    printf("\nmedian absolute %% error over %d converged runs (unknown ETA = 100 %%)\n", nok);
    printf("%5s %6s %10s %10s %14s %12s\n", "at", "asked", "live_%", "replay_%", "naive_rem/bw_%",
           "unknown l/r");
    for (int f = 0; f < NFRAC; f++) {
        m_live[f] = median(a_live[f], nlive[f]);
        m_rep[f] = median(a_rep[f], na[f]);
        m_nai[f] = median(a_nai[f], na[f]);
        m_old[f] = median(a_old[f], na[f]);
        m_h[0][f] = median(a_h[0][f], nh[0][f]);
        m_h[1][f] = median(a_h[1][f], nh[1][f]);
        m_cf[f] = median(a_cf[f], na[f]);
        m_ho[f] = median(a_ho[f], na[f]);
        printf("%4.0f%% %6zu %10.1f %10.1f %14.1f %6zu/%zu\n", fracs[f] * 100, na[f], m_live[f],
               m_rep[f], m_nai[f], unk_live[f], unk_rep[f]);
    }
    printf("replay with the previous move's hints (non-zero RAM, dirty set) vs the same replay "
           "without (the old estimator)\n%5s %10s %10s %12s %12s\n",
           "at", "hinted_%", "no_hint_%", "first_move_%", "later_moves_%");
    for (int f = 0; f < NFRAC; f++)
        printf("%4.0f%% %10.1f %10.1f %5.1f (%2zu) %6.1f (%2zu)\n", fracs[f] * 100, m_rep[f],
               m_old[f], m_h[0][f], nh[0][f], m_h[1][f], nh[1][f]);
    printf("first move of a guest (no history): every run replayed with the agent's census and no "
           "hints, beside the same replay without census (baseline); hints alone for reference\n"
           "%5s %6s %12s %14s %12s\n",
           "at", "asked", "census_%", "no_census_%", "hints_only_%");
    for (int f = 0; f < NFRAC; f++)
        printf("%4.0f%% %6zu %12.1f %14.1f %12.1f\n", fracs[f] * 100, na[f], m_cf[f], m_old[f],
               m_ho[f]);
    double m_cacc = median(c_acc, ncen), m_cwall = median(c_wall, ncen),
           m_ccpu = median(c_cpu, ncen), m_crel = median(c_rel, ncen);
    printf("census: %zu of %d runs; |census - QEMU's non-zero RAM| median %.2f %%; its stated "
           "s.e. median %.2f %%; cost median %.1f ms wall, %.1f ms CPU\n",
           ncen, nok, m_cacc, m_crel, m_cwall, m_ccpu);
    bool cmet = nok >= 10 && m_cf[1] <= 10.0 && m_cf[2] <= 10.0;
    printf("target: first-move ETA (census) median error <= 10 %% at 25 %% and 50 %% on >= 10 "
           "runs: %s\n",
           cmet ? "met" : "NOT met");
    bool rmet = nok >= 10 && m_rep[1] <= 10.0 && m_rep[2] <= 10.0;
    printf("target: replayed ETA median error <= 10 %% at 25 %% and 50 %% on >= 10 runs: %s\n",
           rmet ? "met" : "NOT met");
    bool met = nok > 0;
    for (int f = 1; f < NFRAC; f++)
        met = met && isfinite(m_live[f]) && m_live[f] <= 10.0;
    printf("target: live ETA error <= 10 %% from 25 %% of the run on: %s\n",
           met ? "met" : "NOT met");
    double m_bulk = median(e_bulk, n_bulk), m_after = median(e_after, n_after);
    printf("estimator (replay) asked in the bulk pass: %.1f %% (%zu asks), after it: %.1f %% "
           "(%zu asks)\n",
           m_bulk, n_bulk, m_after, n_after);
    {
        static double fb[MAX_RUNS], off[MAX_RUNS];
        size_t nfb = 0, nlink = 0, noff = 0;
        for (int i = 0; i < n; i++) {
            if (!runs[i].ok)
                continue;
            if (runs[i].final_bps > 0)
                fb[nfb++] = runs[i].final_bps / 1048576.0;
            nlink += runs[i].link_bps > 0;
            off[noff++] = runs[i].migrate_t_ms;
        }
        printf("final stage (RAM sent after the stop / QEMU downtime, the agent's measure): median "
               "%.0f MiB/s over %zu moves; a link rate from earlier moves was given to the "
               "estimator on %zu of %d; `migrate` sent median %.0f ms after the request (the "
               "samples' t0; the reference end is that + QEMU's total-time)\n",
               median(fb, nfb), nfb, nlink, nok, median(off, noff));
    }
    printf("samples from /trace: %d of %d runs; live estimate of the exact sample: %zu/%zu/%zu; "
           "runs whose active samples pass QEMU's total-time: %d\n",
           ntrace, nok, exact[0], exact[1], exact[2], align_bad);

    json_t *fig = json_object(), *base = json_object();
    json_object_set_new(fig, "converged_runs", json_integer(nok));
    json_object_set_new(fig, "runs", json_integer(n));
    for (int f = 0; f < NFRAC; f++) {
        char k[64];
        snprintf(k, sizeof(k), "live_eta_mape_at_%.0fpct", fracs[f] * 100);
        json_object_set_new(fig, k, num(m_live[f]));
        snprintf(k, sizeof(k), "replay_eta_mape_at_%.0fpct", fracs[f] * 100);
        json_object_set_new(fig, k, num(m_rep[f]));
        snprintf(k, sizeof(k), "eta_asked_at_%.0fpct", fracs[f] * 100);
        json_object_set_new(fig, k, json_integer((json_int_t)na[f]));
        snprintf(k, sizeof(k), "live_eta_unknown_at_%.0fpct", fracs[f] * 100);
        json_object_set_new(fig, k, json_integer((json_int_t)unk_live[f]));
        snprintf(k, sizeof(k), "naive_eta_mape_at_%.0fpct", fracs[f] * 100);
        json_object_set_new(base, k, num(m_nai[f]));
        snprintf(k, sizeof(k), "no_hint_replay_eta_mape_at_%.0fpct", fracs[f] * 100);
        json_object_set_new(base, k, num(m_old[f]));
        snprintf(k, sizeof(k), "first_move_replay_eta_mape_at_%.0fpct", fracs[f] * 100);
        json_object_set_new(fig, k, num(m_h[0][f]));
        snprintf(k, sizeof(k), "later_moves_replay_eta_mape_at_%.0fpct", fracs[f] * 100);
        json_object_set_new(fig, k, num(m_h[1][f]));
        snprintf(k, sizeof(k), "census_first_move_replay_eta_mape_at_%.0fpct", fracs[f] * 100);
        json_object_set_new(fig, k, num(m_cf[f]));
        snprintf(k, sizeof(k), "hints_only_replay_eta_mape_at_%.0fpct", fracs[f] * 100);
        json_object_set_new(base, k, num(m_ho[f]));
    }
    json_object_set_new(fig, "census_runs", json_integer((json_int_t)ncen));
    json_object_set_new(fig, "census_abs_err_vs_qemu_median_pct", num(m_cacc));
    json_object_set_new(fig, "census_stated_se_median_pct", num(m_crel));
    json_object_set_new(fig, "census_wall_median_ms", num(m_cwall));
    json_object_set_new(fig, "census_cpu_median_ms", num(m_ccpu));
    json_object_set_new(fig, "target_census_first_move_eta_le_10pct_at_25_50pct_met",
                        json_boolean(cmet));
    json_object_set_new(fig, "target_live_eta_le_10pct_from_25pct_met", json_boolean(met));
    json_object_set_new(fig, "target_replay_eta_le_10pct_at_25_50pct_met", json_boolean(rmet));
    json_object_set_new(fig, "replay_eta_mape_in_bulk_pass", num(m_bulk));
    json_object_set_new(fig, "replay_eta_mape_after_bulk_pass", num(m_after));
    json_object_set_new(fig, "asks_in_bulk_pass", json_integer((json_int_t)n_bulk));
    json_object_set_new(fig, "asks_after_bulk_pass", json_integer((json_int_t)n_after));
    for (int i = 0; i < n; i++) {
        struct run *r = &runs[i];
        if (!r->ok)
            continue;
        char *key = run_key(r), k[96];
        snprintf(k, sizeof(k), "run%d_%s_total_time_s", i + 1, key);
        json_object_set_new(fig, k, num(r->total_ms / 1e3));
        for (int f = 0; f < NFRAC; f++) {
            if (!r->asked[f])
                continue;
            snprintf(k, sizeof(k), "run%d_%s_live_eta_err_pct_at_%.0fpct", i + 1, key,
                     fracs[f] * 100);
            json_object_set_new(fig, k, r->e_live[f] >= 0 ? num(r->e_live[f]) : json_null());
            snprintf(k, sizeof(k), "run%d_%s_replay_eta_err_pct_at_%.0fpct", i + 1, key,
                     fracs[f] * 100);
            json_object_set_new(fig, k, num(r->e_replay[f]));
            snprintf(k, sizeof(k), "run%d_%s_naive_eta_err_pct_at_%.0fpct", i + 1, key,
                     fracs[f] * 100);
            json_object_set_new(base, k, num(r->e_naive[f]));
        }
        free(key);
    }
    mkdir("bench/out", 0755);
    if (write_json("bench/out/lab_eta.json", json_pack("{s:s, s:o, s:o}", "machine", mach,
                                                       "figures", fig, "baselines", base)) != 0)
        bad = 1;

    /* part 2 */
    static double s_tot[MAX_RUNS], s_it[MAX_RUNS], b_tot[MAX_RUNS], b_it[MAX_RUNS];
    static double setups[MAX_RUNS];
    size_t ns = 0, nb = 0, nsetup = 0;
    printf("\nPart 2 — ferry-sim vs lab, same workloads (link after switchover %.0f MiB/s)\n",
           link_bps / 1048576.0);
    printf("%-14s %6s %6s %5s %8s %8s %6s %5s %5s %6s %6s %8s %6s %5s\n", "run", "pps", "nz_MiB",
           "per_s", "lab_s", "sim_s", "err%", "lab_i", "sim_i", "lab_dt", "sim_dt", "base_s",
           "err%", "bas_i");
    fig = json_object();
    base = json_object();
    for (int i = 0; i < n; i++) {
        struct run *r = &runs[i];
        if (!r->ok)
            continue;
        sim_errors(r, link_bps);
        char *key = run_key(r), k[96];
        double et = r->sim_ok ? (r->sim_total_ms - r->total_ms) / r->total_ms * 100 : NAN;
        double bt = r->base_ok ? (r->base_total_ms - r->total_ms) / r->total_ms * 100 : NAN;
        printf("%-14s %6.0f %6.1f %5.2f %8.2f %8.2f %+6.1f %5llu %5llu %6.0f %6.0f %8.2f %+6.1f "
               "%5llu\n",
               key, r->rate_meas_pps, (double)r->nonzero / 1048576.0, r->sim_period_s,
               r->total_ms / 1e3, r->sim_total_ms / 1e3, et, (unsigned long long)r->iterations,
               (unsigned long long)r->sim_iterations, r->downtime_ms, r->sim_downtime_ms,
               r->base_total_ms / 1e3, bt, (unsigned long long)r->base_iterations);
        if (r->sim_ok) {
            s_tot[ns] = fabs(et);
            s_it[ns] = pct_err((double)r->sim_iterations, (double)r->iterations);
            ns++;
        }
        if (r->base_ok) {
            b_tot[nb] = fabs(bt);
            b_it[nb] = pct_err((double)r->base_iterations, (double)r->iterations);
            nb++;
        }
#define PUT(o, suffix, val)                                                                        \
    do {                                                                                           \
        snprintf(k, sizeof(k), "run%d_%s_%s", i + 1, key, suffix);                                 \
        json_object_set_new(o, k, val);                                                            \
    } while (0)
        PUT(fig, "lab_total_time_s", num(r->total_ms / 1e3));
        PUT(fig, "sim_total_time_s", r->sim_ok ? num(r->sim_total_ms / 1e3) : json_null());
        PUT(fig, "total_time_err_pct", num(et));
        PUT(fig, "lab_iterations", json_integer((json_int_t)r->iterations));
        PUT(fig, "sim_iterations", json_integer((json_int_t)r->sim_iterations));
        PUT(fig, "lab_downtime_ms", num(r->downtime_ms));
        PUT(fig, "lab_setup_time_ms", num(r->setup_ms));
        setups[nsetup++] = r->setup_ms;
        PUT(fig, "sim_downtime_ms", num(r->sim_downtime_ms));
        PUT(fig, "lab_nonzero_ram_bytes", json_integer((json_int_t)r->nonzero));
        PUT(fig, "lab_write_rate_pps", num(r->rate_meas_pps));
        PUT(fig, "sim_write_rate_pps", num(r->sim_write_pps));
        PUT(base, "sim_total_time_s", r->base_ok ? num(r->base_total_ms / 1e3) : json_null());
        PUT(base, "total_time_err_pct", num(bt));
        PUT(base, "sim_iterations", json_integer((json_int_t)r->base_iterations));
#undef PUT
        free(key);
    }
    /* per workload: the lab's median and spread over repeats beside the
     * simulator's median */
    static double w_t[MAX_RUNS], w_i[MAX_RUNS];
    size_t nw = 0, n_within = 0;
    printf("\nper workload: lab median [min..max] over repeats, sim median; 'in' = sim within "
           "the lab spread +-15 %%\n");
    printf("%-14s %4s %8s %15s %8s %7s %3s %6s %7s %6s %7s\n", "workload", "reps", "lab_s",
           "lab_range_s", "sim_s", "err%", "in", "lab_i", "i_range", "sim_i", "err%");
    for (int i = 0; i < n; i++) {
        struct run *r = &runs[i];
        bool first = r->ok && r->sim_ok;
        for (int j = 0; j < i && first; j++)
            if (runs[j].ok && runs[j].sim_ok && runs[j].rate == r->rate &&
                runs[j].cap_mibs == r->cap_mibs)
                first = false;
        if (!first)
            continue;
        double lt[MAX_RUNS], li[MAX_RUNS], st[MAX_RUNS], si[MAX_RUNS];
        size_t m = 0;
        for (int j = i; j < n; j++)
            if (runs[j].ok && runs[j].sim_ok && runs[j].rate == r->rate &&
                runs[j].cap_mibs == r->cap_mibs) {
                lt[m] = runs[j].total_ms / 1e3;
                li[m] = (double)runs[j].iterations;
                st[m] = runs[j].sim_total_ms / 1e3;
                si[m] = (double)runs[j].sim_iterations;
                m++;
            }
        double ml = median(lt, m), mli = median(li, m), ms = median(st, m), msi = median(si, m);
        double et = (ms - ml) / ml * 100, ei = (msi - mli) / mli * 100;
        bool in = ms >= lt[0] * 0.85 && ms <= lt[m - 1] * 1.15;
        n_within += in;
        w_t[nw] = fabs(et);
        w_i[nw] = fabs(ei);
        nw++;
        char *key = run_key(r), k[96], range[40], irange[24];
        snprintf(range, sizeof(range), "%.2f..%.2f", lt[0], lt[m - 1]);
        snprintf(irange, sizeof(irange), "%.0f..%.0f", li[0], li[m - 1]);
        printf("%-14s %4zu %8.2f %15s %8.2f %+7.1f %3s %6.1f %7s %6.1f %+7.1f\n", key, m, ml, range,
               ms, et, in ? "yes" : "NO", mli, irange, msi, ei);
#define PUT(suffix, val)                                                                           \
    do {                                                                                           \
        snprintf(k, sizeof(k), "%s_%s", key, suffix);                                              \
        json_object_set_new(fig, k, val);                                                          \
    } while (0)
        PUT("repeats", json_integer((json_int_t)m));
        PUT("lab_total_time_s", num(ml));
        PUT("lab_total_time_min_s", num(lt[0]));
        PUT("lab_total_time_max_s", num(lt[m - 1]));
        PUT("sim_total_time_s", num(ms));
        PUT("total_time_err_pct", num(et));
        PUT("sim_within_lab_spread_15pct", json_boolean(in));
        PUT("lab_iterations", num(mli));
        PUT("sim_iterations", num(msi));
        PUT("iterations_err_pct", num(ei));
#undef PUT
        free(key);
    }
    double wmt = median(w_t, nw), wmi = median(w_i, nw);
    printf("per workload median abs error: total time %.1f %%, iterations %.1f %%; sim within the "
           "lab spread +-15 %%: %zu of %zu workloads\n",
           wmt, wmi, n_within, nw);
    json_object_set_new(fig, "workload_total_time_mape_pct", num(wmt));
    json_object_set_new(fig, "workload_iterations_mape_pct", num(wmi));
    json_object_set_new(fig, "workloads_within_lab_spread", json_integer((json_int_t)n_within));
    json_object_set_new(fig, "workloads", json_integer((json_int_t)nw));

    double mt = median(s_tot, ns), mi = median(s_it, ns), bmt = median(b_tot, nb),
           bmi = median(b_it, nb);
    printf("per run median abs error: total time %.1f %%, iterations %.1f %% (%zu runs); unmatched "
           "mapping (write rate = nominal rate): %.1f %%, %.1f %%\n",
           mt, mi, ns, bmt, bmi);
    double msetup = median(setups, nsetup);
    printf("lab setup-time (QEMU, inside total-time, not modelled): median %.0f ms\n", msetup);
    json_object_set_new(fig, "lab_setup_time_median_ms", num(msetup));
    json_object_set_new(fig, "sim_total_time_mape_pct", num(mt));
    json_object_set_new(fig, "sim_iterations_mape_pct", num(mi));
    json_object_set_new(fig, "runs_compared", json_integer((json_int_t)ns));
    json_object_set_new(fig, "link_bytes_per_s", num(link_bps));
    json_object_set_new(base, "unmatched_sim_total_time_mape_pct", num(bmt));
    json_object_set_new(base, "unmatched_sim_iterations_mape_pct", num(bmi));
    if (write_json(
            "bench/out/sim_calibration.json",
            json_pack("{s:s, s:o, s:o}", "machine", mach, "figures", fig, "baselines", base)) != 0)
        bad = 1;
    printf("wrote bench/out/lab_eta.json and bench/out/sim_calibration.json (%.0f s)\n",
           now_s() - t_start);
    for (int i = 0; i < n; i++) {
        free(runs[i].smp);
        free(runs[i].live);
    }
    return bad;
}

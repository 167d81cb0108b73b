/* impact_disk — what a non-shared disk migration does to the guest's own
 * disk, three ways, in one run (issue: "customers feel the disk copy").
 *
 * A lab guest (two ferry-agents on loopback, QEMU TCG) runs diskload:
 * sequential 4 KiB O_DIRECT writes (queue depth 1) on its virtio disk at a steady rate near
 * what the disk sustains under TCG (measured first: FERRY_BENCH_LOAD_PCT %
 * of the flat-out rate). Its disk (FERRY_BENCH_DISK_MIB) is migrated with
 * the memory, host to host and back:
 *   unthrottled  mirror speed 0 (no cap): the seed's problem;
 *   fixed-low    mirror speed FERRY_BENCH_LOW_MIBS MiB/s, the operator's
 *                usual remedy;
 *   adaptive     the adaptive policy with the impact budget
 *                {"min_throughput_pct": 80, "max_p99_latency_ratio": 2.0}
 *                steering the mirror speed.
 * Before each migration the guest runs FERRY_BENCH_BASE_S seconds
 * undisturbed: that window is the baseline, for diskload's own figures
 * and for the agent's (query-blockstats, latency histogram).
 *
 * Figures per way: guest throughput retained (% of baseline, requests/s
 * from diskload's console lines, and bytes/s from query-blockstats), p99
 * latency ratio (diskload: mean of its per-second p99 during ÷ baseline;
 * agent: p99 of the histogram over the whole migration ÷ baseline), total
 * migration time (request to destination confirmed), downtime, and for
 * adaptive the budget's verdict. Output: a table and
 * bench/out/impact_disk.json. Needs the lab image (make lab), disks under
 * /var/tmp. Environment: BUILD, FERRY_BENCH_DISK_MIB (1024),
 * FERRY_BENCH_LOAD_PCT (80), FERRY_BENCH_LOW_MIBS (16), FERRY_BENCH_BASE_S
 * (10), FERRY_BENCH_TIMEOUT_S (per migration, 400). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../tests/lib/benchenv.h"
#include "../tests/lib/lab.h"
#include "util/ferr.h"

#define GUEST_MIB 128
#define CONSOLE_POLL_MS 500
#define MAX_LINES 4096
#define WAYS 4
#define BURST_MS 5000       /* adaptive-bursty: busy / quiet phase length */
#define BURST_CMD_MS 3000   /* its rate command's answer, ms */

static const char *const way_names[WAYS] = {"unthrottled", "fixed-low", "adaptive",
                                            "adaptive-bursty"};

/* One FERRY-DISK line: requests/s and latency p99 (us) of one second. */
struct dl_line {
    double iops, p99_us;
};

struct way_result {
    bool ok;
    char state[32], error[320];
    double total_s, downtime_ms;
    double dl_base_iops, dl_during_iops, dl_base_p99, dl_during_p99; /* diskload */
    unsigned n_base, n_during;
    double ag_retained_pct, ag_p99_ratio; /* agent (query-blockstats); < 0 unknown */
    double ag_base_p99_us, ag_during_p99_us;
    char verdict[32];
    long long violations, judged;
    int speed_changes;              /* set_mirror_speed events */
    double speed_min, speed_max;    /* their values, MiB/s */
    double disk_mib;                /* bytes the mirror copied, MiB */
};

static struct lab L;

/* The 1-minute load average (the machine is shared: the noise). */
static double loadavg(void)
{
    double v = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static double now_s(void)
{
    return (double)lab_now_ms() / 1000.0;
}

static double jnum(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : -1;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Appends the console text of name on a since *off to the line parser;
 * *off advances. Lines FERRY-DISK {...} go to lines (at most MAX_LINES). */
struct console_acc {
    char part[1024]; /* incomplete last line */
    size_t part_len;
    struct dl_line lines[MAX_LINES];
    size_t n;
};

static void acc_line(struct console_acc *c, const char *line)
{
    const char *p = strstr(line, "FERRY-DISK {");
    if (!p || c->n >= MAX_LINES)
        return;
    json_t *j = json_loads(p + 11, 0, NULL);
    if (!j)
        return;
    double r = jnum(j, "read_iops"), w = jnum(j, "write_iops"), p99 = jnum(j, "lat_p99_us");
    if (r >= 0 && w >= 0 && p99 >= 0) {
        c->lines[c->n].iops = r + w;
        c->lines[c->n].p99_us = p99;
        c->n++;
    }
    json_decref(j);
}

static int console_read(const struct lab_agent *a, const char *name, uint64_t *off,
                        struct console_acc *c)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/instances/%s/console?since=%llu", name,
             (unsigned long long)*off);
    json_t *o = NULL;
    int st = 0;
    struct ferr e = {0};
    if (lab_api(a, "GET", path, NULL, &st, &o, &e) != 0 || st != 200) {
        json_decref(o);
        return -1;
    }
    const char *t = jstr(o, "text");
    json_t *nx = json_object_get(o, "next");
    if (json_is_integer(nx))
        *off = (uint64_t)json_integer_value(nx);
    for (const char *p = t; *p; p++) {
        if (*p == '\n') {
            c->part[c->part_len] = '\0';
            acc_line(c, c->part);
            c->part_len = 0;
        } else if (c->part_len + 1 < sizeof(c->part)) {
            c->part[c->part_len++] = *p;
        }
    }
    json_decref(o);
    return 0;
}

static void sleep_ms(unsigned ms)
{
    usleep(ms * 1000u);
}

/* Sends a diskload command and waits for its FERRY-ACK. */
static int dl_cmd(const struct lab_agent *a, const char *name, const char *cmd)
{
    struct ferr e = {0};
    char *rest = NULL;
    int rc = lab_console_expect(a, name, cmd, 0, "FERRY-ACK", LAB_CMD_TIMEOUT_MS, &rest, &e);
    free(rest);
    if (rc != 0)
        fprintf(stderr, "impact_disk: '%s' on %s: %s\n", cmd, a->name, e.msg);
    return rc;
}

/* Mean iops and mean p99 of lines[from, to). */
static void line_means(const struct console_acc *c, size_t from, size_t to, double *iops,
                       double *p99)
{
    double si = 0, sp = 0;
    size_t n = 0;
    for (size_t i = from; i < to && i < c->n; i++, n++) {
        si += c->lines[i].iops;
        sp += c->lines[i].p99_us;
    }
    *iops = n ? si / (double)n : 0;
    *p99 = n ? sp / (double)n : 0;
}

/* Flat-out request rate of the guest's disk: median of 5 seconds at max. */
static double measure_capacity(const struct lab_agent *a, const char *name)
{
    uint64_t off = 0;
    struct ferr e = {0};
    static struct console_acc c;
    memset(&c, 0, sizeof(c));
    if (lab_console_offset(a, name, &off, &e) != 0 || dl_cmd(a, name, "rate max") != 0)
        return -1;
    sleep_ms(1500);
    if (lab_console_offset(a, name, &off, &e) != 0)
        return -1;
    uint64_t deadline = lab_now_ms() + 20000;
    while (c.n < 7 && lab_now_ms() < deadline) {
        sleep_ms(CONSOLE_POLL_MS);
        if (console_read(a, name, &off, &c) != 0)
            return -1;
    }
    if (c.n < 3)
        return -1;
    double v[MAX_LINES];
    size_t n = c.n;
    for (size_t i = 0; i < n; i++)
        v[i] = c.lines[i].iops;
    for (size_t i = 1; i < n; i++) /* insertion sort */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

/* adaptive-bursty: diskload busy at busy_rate for BURST_MS, then quiet
 * (1 request/s) for BURST_MS, from t_begin on; commands go to s's console
 * until one is not answered (the guest moved on at switchover). */
static void burst_step(const struct lab_agent *s, const char *name, unsigned busy_rate,
                       uint64_t t_begin, int *phase, bool *gone)
{
    if (!busy_rate || *gone)
        return;
    int ph = (int)(((lab_now_ms() - t_begin) / BURST_MS) % 2); /* 0 busy, 1 quiet */
    if (ph == *phase)
        return;
    char cmd[32], *rest = NULL;
    snprintf(cmd, sizeof(cmd), "rate %u", ph == 0 ? busy_rate : 1u);
    struct ferr e = {0};
    if (lab_console_expect(s, name, cmd, 0, "FERRY-ACK", BURST_CMD_MS, &rest, &e) != 0)
        *gone = true;
    free(rest);
    *phase = ph;
}

/* One migration of name from s to d the given way (busy_rate: the
 * adaptive-bursty way's busy rate, requests/s). */
static void run_way(int way, const struct lab_agent *s, const struct lab_agent *d, const char *name,
                    unsigned base_s, unsigned low_mibs, unsigned timeout_s, unsigned busy_rate,
                    struct way_result *r)
{
    memset(r, 0, sizeof(*r));
    r->ag_retained_pct = r->ag_p99_ratio = -1;
    static struct console_acc c;
    memset(&c, 0, sizeof(c));
    uint64_t off = 0;
    struct ferr e = {0};
    if (lab_console_offset(s, name, &off, &e) != 0) {
        snprintf(r->error, sizeof(r->error), "console: %s", e.msg);
        return;
    }
    /* baseline: the guest undisturbed */
    uint64_t t_begin = lab_now_ms(), until = t_begin + base_s * 1000u;
    int phase = -1;
    bool gone = false;
    if (way != 3)
        busy_rate = 0;
    while (lab_now_ms() < until) {
        burst_step(s, name, busy_rate, t_begin, &phase, &gone);
        sleep_ms(CONSOLE_POLL_MS);
        (void)console_read(s, name, &off, &c);
    }
    size_t n_base = c.n;
    json_t *lim = NULL, *pol = NULL;
    if (way == 0)
        lim = json_pack("{s:I, s:I}", "mirror_speed_bps", (json_int_t)0, "max_bandwidth_bps",
                        (json_int_t)(256 << 20));
    else if (way == 1)
        lim = json_pack("{s:I, s:I}", "mirror_speed_bps", (json_int_t)low_mibs << 20,
                        "max_bandwidth_bps", (json_int_t)(256 << 20));
    else if (way == 3) {
        /* a bursty guest is judged on latency only: a busy baseline with a
         * quiet now would read as lost throughput (docs/CONTROLLER.md) */
        lim = json_pack("{s:I}", "max_bandwidth_bps", (json_int_t)(256 << 20));
        pol = json_pack("{s:s, s:i, s:[s], s:{s:f, s:s, s:I, s:I, s:I, s:i, s:b, s:s}}", "kind",
                        "adaptive", "deadline_s", (int)timeout_s, "ladder", "bandwidth",
                        "budget", "max_p99_latency_ratio", 2.0, "steer", "mirror",
                        "min_rate_bps", (json_int_t)(1 << 20), "max_rate_bps",
                        (json_int_t)(512 << 20), "start_rate_bps", (json_int_t)(8 << 20),
                        "baseline_s", (int)base_s, "io_throttle", 0, "on_conflict", "waive");
    } else {
        lim = json_pack("{s:I}", "max_bandwidth_bps", (json_int_t)(256 << 20));
        /* no one answers consent here: on a conflict the budget gives way
         * (io_throttle off, on_conflict waive) rather than wait */
        pol = json_pack("{s:s, s:i, s:[s], s:{s:i, s:f, s:s, s:I, s:I, s:I, s:i, s:b, s:s}}",
                        "kind", "adaptive", "deadline_s", (int)timeout_s, "ladder", "bandwidth",
                        "budget", "min_throughput_pct", 80, "max_p99_latency_ratio", 2.0,
                        "steer", "mirror", "min_rate_bps", (json_int_t)(1 << 20),
                        "max_rate_bps", (json_int_t)(512 << 20), "start_rate_bps",
                        (json_int_t)(8 << 20), "baseline_s", (int)base_s, "io_throttle", 0,
                        "on_conflict", "waive");
    }
    char id[64];
    double t0 = now_s();
    int rc = lab_migrate_start_storage_policy(s, d, name, lim, pol, id, sizeof(id), &e);
    json_decref(lim);
    json_decref(pol);
    if (rc != 0) {
        snprintf(r->error, sizeof(r->error), "start: %s", e.msg);
        return;
    }
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    json_t *last = NULL;
    uint64_t deadline = lab_now_ms() + timeout_s * 1000u;
    bool over = false;
    while (!over && lab_now_ms() < deadline) {
        burst_step(s, name, busy_rate, t_begin, &phase, &gone);
        sleep_ms(CONSOLE_POLL_MS);
        (void)console_read(s, name, &off, &c); /* the guest runs here until switchover */
        json_t *m = NULL;
        int st = 0;
        if (lab_api(s, "GET", path, NULL, &st, &m, &e) == 0 && st == 200 && m) {
            const char *state = jstr(m, "state");
            over = strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
                   strcmp(state, "cancelled") == 0;
            json_decref(last);
            last = m;
        } else {
            json_decref(m);
        }
    }
    r->total_s = now_s() - t0;
    if (!over) { /* not finished in time: cancel, the guest stays on s */
        char cpath[160];
        snprintf(cpath, sizeof(cpath), "/v1/migrations/%s/cancel", id);
        int cst = 0;
        json_t *fin = NULL;
        if (lab_api(s, "POST", cpath, NULL, &cst, NULL, &e) == 0 &&
            lab_migration_wait(s, id, 60000, &fin, &e) == 0) {
            json_decref(last);
            last = fin;
        }
    }
    if (!last) {
        snprintf(r->error, sizeof(r->error), "no migration record");
        return;
    }
    snprintf(r->state, sizeof(r->state), "%s", jstr(last, "state"));
    snprintf(r->error, sizeof(r->error), "%s", jstr(last, "error"));
    r->ok = over && strcmp(r->state, "succeeded") == 0;
    r->downtime_ms = jnum(json_object_get(last, "result"), "downtime_ms");
    const json_t *imp = json_object_get(last, "impact");
    r->ag_retained_pct = jnum(imp, "throughput_retained_pct");
    r->ag_p99_ratio = jnum(imp, "p99_latency_ratio");
    r->ag_base_p99_us = jnum(json_object_get(imp, "baseline"), "p99_latency_us");
    r->ag_during_p99_us = jnum(json_object_get(imp, "during"), "p99_latency_us");
    const json_t *b = json_object_get(last, "budget");
    snprintf(r->verdict, sizeof(r->verdict), "%s", b ? jstr(b, "verdict") : "-");
    r->violations = b ? (long long)jnum(b, "violations") : 0;
    const json_t *evs = json_object_get(last, "events");
    r->speed_min = 1e18;
    for (size_t i = 0; i < json_array_size(evs); i++) {
        const json_t *x = json_array_get(evs, i);
        if (strcmp(jstr(x, "action"), "set_mirror_speed") != 0)
            continue;
        double v = jnum(x, "value") / 1048576.0;
        r->speed_changes++;
        r->speed_min = v < r->speed_min ? v : r->speed_min;
        r->speed_max = v > r->speed_max ? v : r->speed_max;
    }
    if (!r->speed_changes)
        r->speed_min = 0;
    r->disk_mib = jnum(json_object_get(last, "last_sample"), "disk_done") / 1048576.0;
    r->judged = b ? (long long)jnum(b, "judged") : 0;
    json_decref(last);
    if (!over)
        snprintf(r->error, sizeof(r->error), "not finished in %u s", timeout_s);
    r->n_base = (unsigned)n_base;
    r->n_during = (unsigned)(c.n - n_base);
    line_means(&c, 0, n_base, &r->dl_base_iops, &r->dl_base_p99);
    line_means(&c, n_base, c.n, &r->dl_during_iops, &r->dl_during_p99);
}

static unsigned env_u(const char *k, unsigned dflt)
{
    const char *v = getenv(k);
    unsigned long x = v && *v ? strtoul(v, NULL, 10) : 0;
    return x ? (unsigned)x : dflt;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned disk_mib = env_u("FERRY_BENCH_DISK_MIB", 1024);
    unsigned load_pct = env_u("FERRY_BENCH_LOAD_PCT", 80);
    unsigned low_mibs = env_u("FERRY_BENCH_LOW_MIBS", 16);
    unsigned base_s = env_u("FERRY_BENCH_BASE_S", 10);
    unsigned timeout_s = env_u("FERRY_BENCH_TIMEOUT_S", 400);
    char mach[512];
    bench_machine_tcg(mach, sizeof(mach));
    printf("impact_disk: %u MiB guest, %u MiB raw disk migrated with the memory (NBD + "
           "blockdev-mirror), diskload sequential 4 KiB O_DIRECT writes at %u %% of flat out; "
           "baseline %u s before each migration\nmachine: %s\n",
           GUEST_MIB, disk_mib, load_pct, base_s, mach);
    double t_start = now_s(), load0 = loadavg();
    char disk_dir[64] = "/var/tmp/ferry-bimpact-XXXXXX";
    if (!mkdtemp(disk_dir)) {
        fprintf(stderr, "impact_disk: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char img[128];
    snprintf(img, sizeof(img), "%s/g.raw", disk_dir);
    /* written through, not sparse: the mirror copies every byte (a sparse
     * image would be skipped as zeroes) */
    int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    static uint64_t chunk[1 << 17]; /* 1 MiB */
    bool wrote = fd >= 0;
    for (unsigned i = 0; wrote && i < disk_mib; i++) {
        for (size_t k = 0; k < sizeof(chunk) / 8; k++)
            chunk[k] = ((uint64_t)i << 32 | k) * 0x9E3779B97F4A7C15ull;
        wrote = write(fd, chunk, sizeof(chunk)) == (ssize_t)sizeof(chunk);
    }
    if (!wrote) {
        fprintf(stderr, "impact_disk: %s: %s\n", img, strerror(errno));
        return 1;
    }
    close(fd);
    struct ferr e = {0};
    int rc = 1;
    if (lab_start(&L, 2, &e) != 0) {
        fprintf(stderr, "impact_disk: lab: %s\n", e.msg);
        goto out;
    }
    const char *name = "bi";
    char cmdline[256];
    snprintf(cmdline, sizeof(cmdline),
             "console=ttyS0 quiet panic=-1 ferry.workload=diskload ferry.disk_mode=write "
             "ferry.disk_rate=100 ferry.disk_span_mib=%u",
             disk_mib < 64 ? disk_mib : 64);
    json_t *disks = json_pack("[{s:s, s:s, s:s}]", "id", "vda", "path", img, "format", "raw");
    rc = lab_launch_guest_disks(&L.agents[0], name, GUEST_MIB, cmdline, disks, 1,
                                LAB_BOOT_TIMEOUT_MS, &e);
    json_decref(disks);
    if (rc != 0) {
        fprintf(stderr, "impact_disk: launch: %s\n", e.msg);
        goto out;
    }
    double cap = measure_capacity(&L.agents[0], name);
    if (cap <= 0) {
        fprintf(stderr, "impact_disk: could not measure the disk's flat-out rate\n");
        rc = 1;
        goto out;
    }
    unsigned rate = (unsigned)(cap * load_pct / 100.0);
    if (rate < 10)
        rate = 10;
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rate %u", rate);
    printf("flat out: %.0f requests/s; load: %u requests/s (%u %%)\n", cap, rate, load_pct);
    if (dl_cmd(&L.agents[0], name, cmd) != 0) {
        rc = 1;
        goto out;
    }
    struct way_result res[WAYS];
    memset(res, 0, sizeof(res));
    int at = 0; /* the agent the guest runs on */
    for (int w = 0; w < WAYS; w++) {
        const struct lab_agent *s = &L.agents[at], *d = &L.agents[1 - at];
        printf("-- %s: %s -> %s\n", way_names[w], s->name, d->name);
        run_way(w, s, d, name, base_s, low_mibs, timeout_s, rate, &res[w]);
        struct way_result *r = &res[w];
        printf("   %s in %.1f s %s\n", r->state[0] ? r->state : "error", r->total_s, r->error);
        if (r->speed_changes)
            printf("   budget: %d mirror speed changes, %.1f .. %.1f MiB/s; %lld of %lld "
                   "measurements outside; %.0f MiB mirrored, %.1f MiB/s on average\n",
                   r->speed_changes, r->speed_min, r->speed_max, r->violations, r->judged,
                   r->disk_mib, r->total_s > 0 ? r->disk_mib / r->total_s : 0);
        if (r->ok)
            at = 1 - at;
        else if (strcmp(r->state, "cancelled") != 0 && strcmp(r->state, "failed") != 0)
            break; /* the guest's whereabouts are unknown */
    }
    printf("\n%-15s %10s %10s %10s %10s %9s %9s %10s %16s\n", "way", "retained%", "retained%",
           "p99 ratio", "p99 ratio", "time s", "vs unthr", "downtime", "budget verdict");
    printf("%-15s %10s %10s %10s %10s %9s %9s %10s %16s\n", "", "diskload", "blockstats",
           "diskload", "blockstats", "", "", "ms", "");
    json_t *fig = json_object(), *base = json_object();
    for (int w = 0; w < WAYS; w++) {
        struct way_result *r = &res[w];
        if (!r->ok) {
            printf("%-15s did not finish (%s after %.0f s: %s)\n", way_names[w], r->state,
                   r->total_s, r->error);
            continue;
        }
        double ret = r->dl_base_iops > 0 ? 100.0 * r->dl_during_iops / r->dl_base_iops : -1;
        double p99 = r->dl_base_p99 > 0 ? r->dl_during_p99 / r->dl_base_p99 : -1;
        double vs = res[0].ok && res[0].total_s > 0 ? r->total_s / res[0].total_s : -1;
        printf("%-15s %10.1f %10.1f %10.2f %10.2f %9.1f %9.2f %10.0f %16s\n", way_names[w], ret,
               r->ag_retained_pct, p99, r->ag_p99_ratio, r->total_s, vs, r->downtime_ms,
               w >= 2 ? r->verdict : "-");
        char k[96];
        const char *key = w == 0   ? "unthrottled"
                          : w == 1 ? "fixed_low"
                          : w == 2 ? "adaptive"
                                   : "adaptive_bursty";
        json_t *dst = w >= 2 ? fig : base;
        snprintf(k, sizeof(k), "%s_retained_pct_diskload", key);
        json_object_set_new(dst, k, json_real(ret));
        snprintf(k, sizeof(k), "%s_retained_pct_blockstats", key);
        json_object_set_new(dst, k, json_real(r->ag_retained_pct));
        snprintf(k, sizeof(k), "%s_p99_ratio_diskload", key);
        json_object_set_new(dst, k, json_real(p99));
        snprintf(k, sizeof(k), "%s_p99_ratio_blockstats", key);
        json_object_set_new(dst, k, json_real(r->ag_p99_ratio));
        snprintf(k, sizeof(k), "%s_total_time_s", key);
        json_object_set_new(dst, k, json_real(r->total_s));
        snprintf(k, sizeof(k), "%s_downtime_ms", key);
        json_object_set_new(dst, k, json_real(r->downtime_ms));
        if (w == 2) {
            json_object_set_new(fig, "adaptive_time_vs_unthrottled", json_real(vs));
            json_object_set_new(fig, "adaptive_budget_violations", json_integer(r->violations));
            json_object_set_new(fig, "adaptive_budget_judged", json_integer(r->judged));
        }
        if (w == 3) {
            json_object_set_new(fig, "adaptive_bursty_time_vs_adaptive",
                                json_real(res[2].ok && res[2].total_s > 0
                                              ? r->total_s / res[2].total_s
                                              : -1));
            json_object_set_new(fig, "adaptive_bursty_speed_max_mibs", json_real(r->speed_max));
            json_object_set_new(fig, "adaptive_bursty_mean_mibs",
                                json_real(r->total_s > 0 ? r->disk_mib / r->total_s : 0));
            json_object_set_new(fig, "adaptive_bursty_budget_violations",
                                json_integer(r->violations));
        }
    }
    printf("(retained: guest requests/s during the migration as %% of the %u s before it; "
           "p99 ratio: diskload's mean per-second p99, blockstats' histogram p99 over the "
           "whole period, during / before; adaptive-bursty: diskload busy at the load rate "
           "%u s, quiet %u s, before and during, budget p99 x 2 only, its 'vs unthr' against "
           "the steady unthrottled row)\n",
           base_s, BURST_MS / 1000, BURST_MS / 1000);
    if (res[0].ok && res[2].ok && res[0].dl_base_iops > 0 && res[2].dl_base_iops > 0) {
        double a_ret = 100.0 * res[2].dl_during_iops / res[2].dl_base_iops;
        double u_ret = 100.0 * res[0].dl_during_iops / res[0].dl_base_iops;
        double vs = res[2].total_s / res[0].total_s;
        bool met = a_ret >= 80.0 && u_ret < 80.0 && vs <= 1.5;
        printf("target (adaptive >= 80 %% where unthrottled is not, within 1.5x its time): %s "
               "(adaptive %.1f %%, unthrottled %.1f %%, %.2fx)\n",
               met ? "met" : "NOT met", a_ret, u_ret, vs);
        json_object_set_new(fig, "target_met", json_boolean(met));
    }
    double load1 = loadavg();
    printf("load average (1 min): %.1f at the start, %.1f at the end\n", load0, load1);
    json_object_set_new(base, "loadavg_1m_start", json_real(load0));
    json_object_set_new(base, "loadavg_1m_end", json_real(load1));
    json_object_set_new(base, "disk_flat_out_iops", json_real(cap));
    json_object_set_new(base, "load_iops", json_integer(rate));
    json_t *doc = json_pack("{s:s, s:o, s:o}", "machine", mach, "figures", fig, "baselines", base);
    mkdir("bench/out", 0755);
    if (json_dump_file(doc, "bench/out/impact_disk.json", JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
        fprintf(stderr, "impact_disk: cannot write bench/out/impact_disk.json\n");
    json_decref(doc);
    printf("wrote bench/out/impact_disk.json (%.0f s)\n", now_s() - t_start);
    rc = res[0].ok && res[2].ok ? 0 : 1; /* a fixed low speed may never finish: a figure */
out:
    lab_stop(&L);
    unlink(img);
    rmdir(disk_dir);
    return rc;
}

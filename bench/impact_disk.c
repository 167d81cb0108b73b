/* impact_disk — what a non-shared disk migration does to the guest's own
 * disk, three ways, in one run (issue: "customers feel the disk copy").
 *
 * A lab guest (two ferry-agents on loopback, QEMU TCG) runs diskload:
 * sequential 4 KiB O_DIRECT writes (queue depth 1) on its virtio disk at a steady rate near
 * what the disk sustains under TCG (measured first: FERRY_BENCH_LOAD_PCT %
 * of the flat-out rate). Its disk (FERRY_BENCH_DISK_MIB) is migrated with
 * the memory, host to host and back, one row per migration:
 *   unthrottled  mirror speed 0 (no cap): the seed's problem;
 *   adaptive     the adaptive policy with the impact budget
 *                {"min_throughput_pct": 80, "steer": "both"} — the
 *                target's own criterion; FERRY_BENCH_BUDGET_P99_RATIO
 *                adds "max_p99_latency_ratio" — steering the mirror
 *                speed, then the memory copy's max-bandwidth;
 *   no copy      no migration: a baseline and then a window as long as
 *                the unthrottled rows' median time, nothing copied — the
 *                guest's own drift, the noise floor of "kept %";
 *                these three take turns FERRY_BENCH_REPEAT (3) times each;
 *   fixed        the trade-off curve: one migration at each mirror speed of
 *                FERRY_BENCH_CURVE_MIBS (160,128,96,48,32 MiB/s), the
 *                slowest being the operator's usual remedy;
 *   adaptive-bursty  the budget (latency only) with diskload 5 s busy,
 *                5 s quiet.
 * Before each migration the guest runs FERRY_BENCH_BASE_S seconds
 * undisturbed: that window is the baseline, for diskload's own figures
 * and for the agent's (query-blockstats, latency histogram).
 *
 * Figures per row: guest throughput retained (% of baseline, requests/s
 * from diskload's console lines, and bytes/s from query-blockstats), p99
 * latency ratio (diskload: mean of its per-second p99 during ÷ baseline;
 * agent: p99 of the histogram over the whole migration ÷ baseline), total
 * migration time (request to destination confirmed), downtime, and for
 * adaptive the budget's verdict and rate steps; then the spread of the
 * repeated rows (median [min .. max]), the curve with the fastest speed
 * that kept 80 %, and the target on the medians. Output: a table and
 * bench/out/impact_disk.json. Needs the lab image (make lab), disks under
 * /var/tmp. The disk is 2 GiB of data by default: ~10 s unthrottled here,
 * so the budget's controller (1 s measurements over a 3 s window) has ten
 * or so readings to steer by — a 1 GiB copy was over in ~5 s, before a
 * feedback loop could say anything (real disks take minutes).
 * Environment: BUILD, FERRY_BENCH_DISK_MIB (2048),
 * FERRY_BENCH_LOAD_PCT (80), FERRY_BENCH_REPEAT (3), FERRY_BENCH_CURVE_MIBS,
 * FERRY_BENCH_BUDGET_P99_RATIO (0: throughput only; e.g. 2.0),
 * FERRY_BENCH_MIRROR_BUF_BYTES (every row's limits.mirror_buf_bytes, 0),
 * FERRY_BENCH_IOTHREAD (1: the guest's disk on an iothread of its own,
 * spec "iothread"; 0, the default: on QEMU's main loop),
 * FERRY_LAB_INCOMING_NICE (the receiving QEMU's nice; 19 as root, else 0),
 * FERRY_BENCH_BASE_S (10), FERRY_BENCH_TIMEOUT_S (per migration, 400). */
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
#define CAP_SECONDS 10      /* flat-out seconds read, after the first 3 (the
                               guest's disk is slower just after boot: read
                               from 1.5 s on, 7 seconds' median once set the
                               load so far below what the disk takes that
                               even the unthrottled copy cost it nothing);
                               their median is the disk's capacity */
#define SETTLE_MAX_S 30     /* before a row's baseline: wait at most this */
#define SETTLE_RUN 3        /* ... for the mean of this many seconds, the
                               newest, at */
#define SETTLE_PCT 95       /* ... this % of the load rate or more (a mean:
                               the paced guest's seconds swing +-10 %, and
                               "each of 3 in a row" kept a run waiting the
                               full 30 s before most rows) */
#define BURST_MS 5000       /* adaptive-bursty: busy / quiet phase length */
#define BURST_CMD_MS 3000   /* its rate command's answer, ms */
#define MAX_REPEAT 5        /* FERRY_BENCH_REPEAT at most */
#define MAX_CURVE 8         /* FERRY_BENCH_CURVE_MIBS entries at most */
#define MAX_ROWS (3 * MAX_REPEAT + MAX_CURVE + 2)

/* What one row does: the way, and the mirror speed of a fixed row. */
enum way { WAY_UNTHR, WAY_FIXED, WAY_ADAPTIVE, WAY_BURSTY, WAY_NONE };
static const char *const way_names[] = {"unthrottled", "fixed", "adaptive", "adaptive-bursty",
                                        "no copy"};

struct row {
    enum way way;
    unsigned speed_mibs; /* WAY_FIXED: mirror speed, MiB/s */
    unsigned rep;        /* 1.. among the rows of its way and speed */
};

/* One FERRY-DISK line: requests/s and latency p99 (us) of one second. */
struct dl_line {
    double iops, p99_us;
};

struct way_result {
    bool ok;
    char state[32], error[320];
    double total_s, downtime_ms;
    double settle_s;                /* waited before the baseline */
    bool settled;                   /* ... and the guest was back at its rate */
    double dl_base_iops, dl_during_iops, dl_base_p99, dl_during_p99; /* diskload */
    unsigned n_base, n_during;
    double ag_retained_pct, ag_p99_ratio; /* agent (query-blockstats); < 0 unknown */
    double ag_base_p99_us, ag_during_p99_us;
    char verdict[32];
    long long violations, judged;
    int speed_changes;              /* set_mirror_speed events */
    double speed_min, speed_max;    /* their values, MiB/s */
    double disk_mib;                /* bytes the mirror copied, MiB */
    char trace[2048];               /* the controller's rate steps,
                                       "MiB/s@s(usage)" */
};

static struct lab L;

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
    sleep_ms(3000); /* past the first seconds after boot, slower */
    if (lab_console_offset(a, name, &off, &e) != 0)
        return -1;
    uint64_t deadline = lab_now_ms() + 25000;
    while (c.n < CAP_SECONDS && lab_now_ms() < deadline) {
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
static double p99_ratio; /* the adaptive budget's max_p99_latency_ratio, 0 none */
static unsigned long mirror_buf; /* limits.mirror_buf_bytes of every row, 0 QEMU's */
static int disk_iothread;        /* the guest's disk on its own iothread */
static unsigned load_rate;      /* diskload's paced rate, requests/s */
static double none_s = 10;      /* a no-copy row's "during" window, s: the
                                   unthrottled rows' median time so far */

/* diskload's figures of a row: lines [0, n_base) the baseline, the rest
 * "during". */
static void dl_figures(struct way_result *r, const struct console_acc *c, size_t n_base)
{
    r->n_base = (unsigned)n_base;
    r->n_during = (unsigned)(c->n - n_base);
    line_means(c, 0, n_base, &r->dl_base_iops, &r->dl_base_p99);
    line_means(c, n_base, c->n, &r->dl_during_iops, &r->dl_during_p99);
}

static void run_way(enum way way, const struct lab_agent *s, const struct lab_agent *d,
                    const char *name, unsigned base_s, unsigned speed_mibs, unsigned timeout_s,
                    unsigned busy_rate, struct way_result *r)
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
    /* settle: the previous row's copy leaves the guest slow for seconds
     * (its new host's writes, the old image freed); a baseline taken then
     * charged the next row with it — wait until the guest runs at its load
     * rate again (the newest SETTLE_RUN seconds' mean at SETTLE_PCT %), at
     * most SETTLE_MAX_S */
    uint64_t t_settle = lab_now_ms(), settle_end = t_settle + SETTLE_MAX_S * 1000u;
    bool back = !load_rate;
    while (!back && lab_now_ms() < settle_end) {
        sleep_ms(CONSOLE_POLL_MS);
        (void)console_read(s, name, &off, &c);
        double iops = 0, p99 = 0;
        if (c.n >= SETTLE_RUN) {
            line_means(&c, c.n - SETTLE_RUN, c.n, &iops, &p99);
            back = iops * 100.0 >= (double)load_rate * SETTLE_PCT;
        }
    }
    r->settle_s = (double)(lab_now_ms() - t_settle) / 1000.0;
    r->settled = back;
    c.n = 0; /* the baseline starts here */
    /* baseline: the guest undisturbed */
    uint64_t t_begin = lab_now_ms(), until = t_begin + base_s * 1000u;
    int phase = -1;
    bool gone = false;
    if (way != WAY_BURSTY)
        busy_rate = 0;
    while (lab_now_ms() < until) {
        burst_step(s, name, busy_rate, t_begin, &phase, &gone);
        sleep_ms(CONSOLE_POLL_MS);
        (void)console_read(s, name, &off, &c);
    }
    size_t n_base = c.n;
    if (way == WAY_NONE) {
        /* no migration: the same two windows, nothing copied — what the
         * guest's own drift from its baseline reads as */
        double t0 = now_s();
        uint64_t end = lab_now_ms() + (uint64_t)(none_s * 1000.0);
        while (lab_now_ms() < end) {
            sleep_ms(CONSOLE_POLL_MS);
            (void)console_read(s, name, &off, &c);
        }
        r->total_s = now_s() - t0;
        r->ok = true;
        snprintf(r->state, sizeof(r->state), "held");
        dl_figures(r, &c, n_base);
        return;
    }
    json_t *lim = NULL, *pol = NULL;
    if (way == WAY_UNTHR)
        lim = json_pack("{s:I, s:I}", "mirror_speed_bps", (json_int_t)0, "max_bandwidth_bps",
                        (json_int_t)(256 << 20));
    else if (way == WAY_FIXED)
        lim = json_pack("{s:I, s:I}", "mirror_speed_bps", (json_int_t)speed_mibs << 20,
                        "max_bandwidth_bps", (json_int_t)(256 << 20));
    else if (way == WAY_BURSTY) {
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
         * (io_throttle off, on_conflict waive) rather than wait; the
         * mirror and then the memory copy share the budget (steer both) */
        json_t *bud = json_pack("{s:i, s:s, s:I, s:I, s:I, s:i, s:b, s:s}", "min_throughput_pct",
                                80, "steer", "both", "min_rate_bps", (json_int_t)(1 << 20),
                                "max_rate_bps", (json_int_t)(512 << 20), "start_rate_bps",
                                (json_int_t)(8 << 20), "baseline_s", (int)base_s,
                                "io_throttle", 0, "on_conflict", "waive");
        if (p99_ratio > 1.0)
            json_object_set_new(bud, "max_p99_latency_ratio", json_real(p99_ratio));
        pol = json_pack("{s:s, s:i, s:[s], s:o}", "kind", "adaptive", "deadline_s",
                        (int)timeout_s, "ladder", "bandwidth", "budget", bud);
    }
    if (mirror_buf)
        json_object_set_new(lim, "mirror_buf_bytes", json_integer((json_int_t)mirror_buf));
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
        bool bw = strcmp(jstr(x, "action"), "set_bandwidth") == 0;
        if (strcmp(jstr(x, "action"), "set_mirror_speed") != 0 && !bw)
            continue;
        double v = jnum(x, "value") / 1048576.0;
        /* the budget's reading behind the step: "budget: usage U aim A ..." */
        const char *why = strstr(jstr(x, "reason"), "usage ");
        double u = -1;
        if (why && sscanf(why, "usage %lf", &u) != 1)
            u = -1;
        size_t tl = strlen(r->trace);
        if (tl + 40 < sizeof(r->trace))
            snprintf(r->trace + tl, sizeof(r->trace) - tl, "%s%s%.0f@%.1f", tl ? " " : "",
                     bw ? "bw " : "", v, jnum(x, "t_ms") / 1000.0);
        tl = strlen(r->trace);
        if (u >= 0 && tl + 16 < sizeof(r->trace))
            snprintf(r->trace + tl, sizeof(r->trace) - tl, "(%.2f)", u);
        if (bw)
            continue; /* the memory copy's steps: in the trace only */
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
    dl_figures(r, &c, n_base);
}

enum bstat {
    STAT_KEPT,
    STAT_P99,
    STAT_TIME,
    STAT_MIBS,
    STAT_AG_KEPT,
    STAT_AG_P99,
    STAT_DOWN,
    STAT_LOST,
    STAT__COUNT
};

/* One figure of a finished row (< 0 unknown). */
static double stat_of(const struct way_result *r, int st)
{
    switch (st) {
    case STAT_KEPT:
        return r->dl_base_iops > 0 ? 100.0 * r->dl_during_iops / r->dl_base_iops : -1;
    case STAT_P99:
        return r->dl_base_p99 > 0 ? r->dl_during_p99 / r->dl_base_p99 : -1;
    case STAT_TIME:
        return r->total_s;
    case STAT_MIBS:
        return r->total_s > 0 ? r->disk_mib / r->total_s : -1;
    case STAT_AG_KEPT:
        return r->ag_retained_pct;
    case STAT_AG_P99:
        return r->ag_p99_ratio;
    case STAT_DOWN:
        return r->downtime_ms;
    case STAT_LOST: /* the guest's work lost, in seconds of its baseline rate;
                       negative when it did more than in its baseline; NAN: not known */
        return r->dl_base_iops > 0 ? (1.0 - r->dl_during_iops / r->dl_base_iops) * r->total_s : NAN;
    default:
        return -1;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The figure st of the finished rows of way (and speed) into v, sorted;
 * returns how many. */
static unsigned way_values(const struct way_result *res, const struct row *rows, size_t n,
                           enum way w, unsigned speed, int st, double v[MAX_ROWS])
{
    unsigned k = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].way != w || rows[i].speed_mibs != speed || !res[i].ok)
            continue;
        double x = stat_of(&res[i], st);
        if (st == STAT_LOST ? !isnan(x) : x >= 0) /* -1 (lost: NAN): not known */
            v[k++] = x;
    }
    qsort(v, k, sizeof(v[0]), cmp_double);
    return k;
}

/* The median of a figure over the finished rows of way; -1 without any. */
static double way_median(const struct way_result *res, const struct row *rows, size_t n,
                         enum way w, unsigned speed, int st)
{
    double v[MAX_ROWS];
    unsigned k = way_values(res, rows, n, w, speed, st, v);
    if (!k)
        return st == STAT_LOST ? NAN : -1;
    return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

/* "median [min .. max]" of a figure into out; returns the rows counted. */
static unsigned way_spread(const struct way_result *res, const struct row *rows, size_t n,
                           enum way w, unsigned speed, int st, char *out, size_t cap)
{
    double v[MAX_ROWS];
    unsigned k = way_values(res, rows, n, w, speed, st, v);
    if (!k)
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.2f [%.2f .. %.2f]", way_median(res, rows, n, w, speed, st), v[0],
                 v[k - 1]);
    return k;
}

static void row_label(const struct row *r, char *out, size_t cap)
{
    if (r->way == WAY_FIXED)
        snprintf(out, cap, "fixed %u MiB/s", r->speed_mibs);
    else if (r->way == WAY_BURSTY)
        snprintf(out, cap, "%s", way_names[r->way]);
    else
        snprintf(out, cap, "%s #%u", way_names[r->way], r->rep);
}

/* Parses "16,48,96" (MiB/s, each 1..4096) into v, at most MAX_CURVE;
 * returns how many, 0 on a bad list. */
static size_t parse_curve(const char *s, unsigned v[MAX_CURVE])
{
    size_t n = 0;
    while (*s) {
        char *end = NULL;
        unsigned long x = strtoul(s, &end, 10);
        if (end == s || x < 1 || x > 4096 || n >= MAX_CURVE)
            return 0;
        v[n++] = (unsigned)x;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return 0;
    }
    return n;
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
    unsigned disk_mib = env_u("FERRY_BENCH_DISK_MIB", 2048);
    unsigned load_pct = env_u("FERRY_BENCH_LOAD_PCT", 80);
    unsigned repeat = env_u("FERRY_BENCH_REPEAT", 3);
    const char *pr = getenv("FERRY_BENCH_BUDGET_P99_RATIO");
    if (pr && *pr) {
        char *end = NULL;
        p99_ratio = strtod(pr, &end);
        if (*end || !(p99_ratio == 0 || (p99_ratio > 1.0 && p99_ratio <= 100))) {
            fprintf(stderr, "impact_disk: FERRY_BENCH_BUDGET_P99_RATIO: 0 (not judged) or "
                            "1 < ratio <= 100\n");
            return 2;
        }
    }
    if (repeat > MAX_REPEAT)
        repeat = MAX_REPEAT;
    const char *mb = getenv("FERRY_BENCH_MIRROR_BUF_BYTES");
    if (mb && *mb) {
        char *end = NULL;
        mirror_buf = strtoul(mb, &end, 10);
        if (*end || (mirror_buf != 0 && (mirror_buf < 65536 || mirror_buf > (1ul << 28)))) {
            fprintf(stderr, "impact_disk: FERRY_BENCH_MIRROR_BUF_BYTES: 0 (QEMU's default) or "
                            "65536 .. 268435456\n");
            return 2;
        }
    }
    const char *iot = getenv("FERRY_BENCH_IOTHREAD");
    if (iot && *iot) {
        if (strcmp(iot, "0") != 0 && strcmp(iot, "1") != 0) {
            fprintf(stderr, "impact_disk: FERRY_BENCH_IOTHREAD: 0 (QEMU's main loop) or 1 (the "
                            "disk on an iothread of its own)\n");
            return 2;
        }
        disk_iothread = iot[0] == '1';
    }
    const char *curve_env = getenv("FERRY_BENCH_CURVE_MIBS");
    unsigned curve[MAX_CURVE];
    size_t n_curve = parse_curve(curve_env && *curve_env ? curve_env : "160,128,96,48,32", curve);
    if (!n_curve) {
        fprintf(stderr, "impact_disk: FERRY_BENCH_CURVE_MIBS: a list of 1..%d speeds "
                        "(1..4096 MiB/s), e.g. 160,96,48,16\n", MAX_CURVE);
        return 2;
    }
    const char *nice = bench_incoming_nice();
    unsigned base_s = env_u("FERRY_BENCH_BASE_S", 10);
    unsigned timeout_s = env_u("FERRY_BENCH_TIMEOUT_S", 400);
    char mach[512];
    bench_machine_tcg(mach, sizeof(mach));
    printf("impact_disk: %u MiB guest, %u MiB raw disk migrated with the memory (NBD + "
           "blockdev-mirror), diskload sequential 4 KiB O_DIRECT writes at %u %% of flat out; "
           "baseline %u s before each migration; unthrottled, adaptive and no copy %u times each, "
           "fixed speeds %s MiB/s; adaptive budget: throughput >= 80 %%, p99 <= %.1fx "
           "(0: not judged), steer both; mirror buf-size %lu (0: QEMU's 16 MiB); receiving QEMU at "
           "nice %s; guest disk %s\nmachine: %s\n",
           GUEST_MIB, disk_mib, load_pct, base_s, repeat,
           curve_env && *curve_env ? curve_env : "160,128,96,48,32", p99_ratio, mirror_buf, nice,
           disk_iothread ? "on an iothread of its own" : "on QEMU's main loop", mach);
    double t_start = now_s(), load0 = bench_loadavg1();
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
    /* on the disk before the guest starts: the kernel's writeback of the
     * image would otherwise compete with the first rows' guest and mirror */
    if (wrote && fsync(fd) != 0)
        wrote = false;
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
    json_t *disks = json_pack("[{s:s, s:s, s:s, s:b}]", "id", "vda", "path", img, "format", "raw",
                              "iothread", disk_iothread);
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
    load_rate = rate;
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rate %u", rate);
    printf("flat out: %.0f requests/s; load: %u requests/s (%u %%)\n", cap, rate, load_pct);
    if (dl_cmd(&L.agents[0], name, cmd) != 0) {
        rc = 1;
        goto out;
    }
    /* the rows: unthrottled, adaptive and no copy in turn, repeat times,
     * the order rotated by one each time (U A N, A N U, N U A: until then
     * every adaptive row came right after an unthrottled copy) (the
     * same guest, workload and disk, so each adaptive row has an
     * unthrottled neighbour); then the curve, fixed speeds from fast to
     * slow; then the bursty guest */
    struct row rows[MAX_ROWS];
    size_t n_rows = 0;
    static const enum way turn[3] = {WAY_UNTHR, WAY_ADAPTIVE, WAY_NONE};
    for (unsigned k = 1; k <= repeat; k++)
        for (unsigned j = 0; j < 3; j++) /* rotated each time: no way always
                                            follows the same one */
            rows[n_rows++] = (struct row){turn[(j + k - 1) % 3], 0, k};
    for (size_t i = 0; i < n_curve; i++)
        rows[n_rows++] = (struct row){WAY_FIXED, curve[i], 1};
    rows[n_rows++] = (struct row){WAY_BURSTY, 0, 1};
    static struct way_result res[MAX_ROWS];
    memset(res, 0, sizeof(res));
    int at = 0; /* the agent the guest runs on */
    size_t ran = 0;
    for (size_t i = 0; i < n_rows; i++, ran++) {
        const struct lab_agent *s = &L.agents[at], *d = &L.agents[1 - at];
        char label[48];
        row_label(&rows[i], label, sizeof(label));
        printf("-- %s: %s -> %s (load %.1f)\n", label, s->name, d->name, bench_loadavg1());
        run_way(rows[i].way, s, d, name, base_s, rows[i].speed_mibs, timeout_s, rate, &res[i]);
        struct way_result *r = &res[i];
        printf("   %s in %.1f s %s(%s %.1f s before the baseline)\n",
               r->state[0] ? r->state : "error", r->total_s, r->error,
               r->settled ? "settled in" : "NOT settled after", r->settle_s);
        if (r->speed_changes)
            printf("   budget: %d mirror speed changes, %.1f .. %.1f MiB/s; %lld of %lld "
                   "measurements outside; %.0f MiB mirrored, %.1f MiB/s on average\n",
                   r->speed_changes, r->speed_min, r->speed_max, r->violations, r->judged,
                   r->disk_mib, r->total_s > 0 ? r->disk_mib / r->total_s : 0);
        if (r->trace[0])
            printf("   rate steps MiB/s@s(usage read) (bw: max-bandwidth): %s\n", r->trace);
        if (r->ok && rows[i].way == WAY_UNTHR) {
            double t = way_median(res, rows, i + 1, WAY_UNTHR, 0, STAT_TIME);
            if (t > 0)
                none_s = t;
        }
        if (r->ok) {
            if (rows[i].way != WAY_NONE)
                at = 1 - at; /* the guest moved */
        } else if (strcmp(r->state, "cancelled") != 0 && strcmp(r->state, "failed") != 0) {
            ran++;
            break; /* the guest's whereabouts are unknown */
        }
    }
    printf("\n%-20s %10s %10s %10s %10s %8s %8s %8s %9s %7s %16s\n", "row", "kept %", "kept %",
           "p99 ratio", "p99 ratio", "time s", "vs unthr", "MiB/s", "downtime", "lost",
           "budget verdict");
    printf("%-20s %10s %10s %10s %10s %8s %8s %8s %9s %7s %16s\n", "", "diskload", "blockstats",
           "diskload", "blockstats", "", "median", "mean", "ms", "s", "");
    json_t *fig = json_object(), *base = json_object();
    double t_unthr = way_median(res, rows, ran, WAY_UNTHR, 0, STAT_TIME);
    for (size_t i = 0; i < ran; i++) {
        struct way_result *r = &res[i];
        char label[48];
        row_label(&rows[i], label, sizeof(label));
        if (!r->ok) {
            printf("%-20s did not finish (%s after %.0f s: %s)\n", label, r->state, r->total_s,
                   r->error);
            continue;
        }
        double vs = t_unthr > 0 ? r->total_s / t_unthr : -1;
        printf("%-20s %10.1f %10.1f %10.2f %10.2f %8.1f %8.2f %8.1f %9.0f %7.1f %16s\n", label,
               stat_of(r, STAT_KEPT), r->ag_retained_pct, stat_of(r, STAT_P99), r->ag_p99_ratio,
               r->total_s, vs, stat_of(r, STAT_MIBS), r->downtime_ms, stat_of(r, STAT_LOST),
               rows[i].way >= WAY_ADAPTIVE ? r->verdict : "-");
    }
    printf("(kept: guest requests/s during the migration as %% of the %u s before it; "
           "p99 ratio: diskload's mean per-second p99, blockstats' histogram p99 over the "
           "whole period, during / before; MiB/s: disk bytes mirrored / time; vs unthr: "
           "against the median unthrottled time; lost: (1 - kept) x time, the guest's work "
           "lost in seconds of its baseline; adaptive-bursty: diskload busy at the "
           "load rate %u s, quiet %u s, before and during, budget p99 x 2 only)\n",
           base_s, BURST_MS / 1000, BURST_MS / 1000);

    /* spread of the repeated rows: median [min .. max] */
    printf("\n%-12s %4s %24s %24s %24s %24s\n", "way", "n", "kept % (diskload)",
           "p99 ratio (diskload)", "time s", "lost s");
    static const enum way rep_ways[] = {WAY_UNTHR, WAY_ADAPTIVE, WAY_NONE};
    for (size_t k = 0; k < 3; k++) {
        enum way w = rep_ways[k];
        char c1[32], c2[32], c3[32], c4[32];
        unsigned n = way_spread(res, rows, ran, w, 0, STAT_KEPT, c1, sizeof(c1));
        (void)way_spread(res, rows, ran, w, 0, STAT_P99, c2, sizeof(c2));
        (void)way_spread(res, rows, ran, w, 0, STAT_TIME, c3, sizeof(c3));
        (void)way_spread(res, rows, ran, w, 0, STAT_LOST, c4, sizeof(c4));
        printf("%-12s %4u %24s %24s %24s %24s\n", way_names[w], n, c1, c2, c3, c4);
        const char *key = w == WAY_UNTHR ? "unthrottled" : w == WAY_NONE ? "no_copy" : "adaptive";
        json_t *dst = w == WAY_ADAPTIVE ? fig : base;
        static const char *const stat_keys[] = {
            "retained_pct_diskload",   "p99_ratio_diskload",   "total_time_s", "mean_mirror_mibs",
            "retained_pct_blockstats", "p99_ratio_blockstats", "downtime_ms",  "lost_guest_s"};
        for (int st = 0; st < STAT__COUNT; st++) {
            char jk[96];
            snprintf(jk, sizeof(jk), "%s_%s", key, stat_keys[st]);
            double med = way_median(res, rows, ran, w, 0, st);
            json_object_set_new(dst, jk, isnan(med) ? json_null() : json_real(med));
        }
    }

    /* the trade-off curve: what a constant mirror speed costs the guest */
    printf("\ntrade-off (one migration per speed; unthrottled: the median of its rows):\n");
    printf("%12s %10s %10s %8s %10s %7s\n", "mirror MiB/s", "kept %", "p99 ratio", "time s",
           "vs unthr", "lost s");
    double best_speed = -1, best_time = -1;
    for (size_t i = 0; i < ran; i++) {
        if (rows[i].way != WAY_FIXED || !res[i].ok)
            continue;
        double kept = stat_of(&res[i], STAT_KEPT);
        printf("%12u %10.1f %10.2f %8.1f %10.2f %7.1f\n", rows[i].speed_mibs, kept,
               stat_of(&res[i], STAT_P99), res[i].total_s,
               t_unthr > 0 ? res[i].total_s / t_unthr : -1, stat_of(&res[i], STAT_LOST));
        char jk[96];
        snprintf(jk, sizeof(jk), "curve_%u_mibs_retained_pct_diskload", rows[i].speed_mibs);
        json_object_set_new(base, jk, json_real(kept));
        snprintf(jk, sizeof(jk), "curve_%u_mibs_p99_ratio_diskload", rows[i].speed_mibs);
        json_object_set_new(base, jk, json_real(stat_of(&res[i], STAT_P99)));
        snprintf(jk, sizeof(jk), "curve_%u_mibs_total_time_s", rows[i].speed_mibs);
        json_object_set_new(base, jk, json_real(res[i].total_s));
        if (kept >= 80.0 && rows[i].speed_mibs > best_speed) {
            best_speed = rows[i].speed_mibs;
            best_time = res[i].total_s;
        }
    }
    double u_kept = way_median(res, rows, ran, WAY_UNTHR, 0, STAT_KEPT);
    double u_lost = way_median(res, rows, ran, WAY_UNTHR, 0, STAT_LOST);
    printf("%12s %10.1f %10.2f %8.1f %10.2f %7.1f\n", "unthrottled", u_kept,
           way_median(res, rows, ran, WAY_UNTHR, 0, STAT_P99), t_unthr, t_unthr > 0 ? 1.0 : -1,
           u_lost);
    if (best_speed > 0 && t_unthr > 0)
        printf("fastest fixed speed keeping >= 80 %%: %.0f MiB/s, %.1f s = %.2fx the unthrottled "
               "time (1.5x allowed)\n",
               best_speed, best_time, best_time / t_unthr);
    else
        printf("no fixed speed of the curve kept >= 80 %%\n");
    /* kept = 1 - lost / time: a copy that costs the guest what the
     * unthrottled rows cost it, whatever its speed, keeps this much in
     * 1.5x their time; below 80 such a copy cannot meet both of the
     * target's bounds at any speed */
    bool have_loss = !isnan(u_lost) && t_unthr > 0;
    double same_loss = have_loss ? 100.0 * (1.0 - u_lost / (1.5 * t_unthr)) : NAN;
    if (have_loss)
        printf("a copy losing what the unthrottled rows lost (%.1f s) keeps %.1f %% in 1.5x "
               "their time\n",
               u_lost, same_loss);
    json_object_set_new(base, "same_loss_kept_pct_at_1_5x",
                        have_loss ? json_real(same_loss) : json_null());
    json_object_set_new(base, "curve_fastest_80pct_mibs", json_real(best_speed));
    json_object_set_new(base, "curve_fastest_80pct_time_vs_unthrottled",
                        json_real(best_time > 0 && t_unthr > 0 ? best_time / t_unthr : -1));

    for (size_t i = 0; i < ran; i++) {
        struct way_result *r = &res[i];
        if (rows[i].way != WAY_BURSTY || !r->ok)
            continue;
        double t_ad = way_median(res, rows, ran, WAY_ADAPTIVE, 0, STAT_TIME);
        json_object_set_new(fig, "adaptive_bursty_retained_pct_diskload",
                            json_real(stat_of(r, STAT_KEPT)));
        json_object_set_new(fig, "adaptive_bursty_p99_ratio_diskload",
                            json_real(stat_of(r, STAT_P99)));
        json_object_set_new(fig, "adaptive_bursty_total_time_s", json_real(r->total_s));
        json_object_set_new(fig, "adaptive_bursty_time_vs_adaptive",
                            json_real(t_ad > 0 ? r->total_s / t_ad : -1));
        json_object_set_new(fig, "adaptive_bursty_speed_max_mibs", json_real(r->speed_max));
        json_object_set_new(fig, "adaptive_bursty_mean_mibs", json_real(stat_of(r, STAT_MIBS)));
        json_object_set_new(fig, "adaptive_bursty_budget_violations",
                            json_integer(r->violations));
    }
    char nk[32];
    if (way_spread(res, rows, ran, WAY_NONE, 0, STAT_KEPT, nk, sizeof(nk)))
        printf("noise floor: with nothing copied, the guest kept %s %% over the same windows\n",
               nk);
    double a_kept = way_median(res, rows, ran, WAY_ADAPTIVE, 0, STAT_KEPT);
    double a_time = way_median(res, rows, ran, WAY_ADAPTIVE, 0, STAT_TIME);
    if (a_kept >= 0 && u_kept >= 0 && a_time > 0 && t_unthr > 0) {
        double vs = a_time / t_unthr;
        bool met = a_kept >= 80.0 && u_kept < 80.0 && vs <= 1.5;
        printf("target (adaptive >= 80 %% where unthrottled is not, within 1.5x its time; "
               "medians of %u runs each): %s (adaptive %.1f %%, unthrottled %.1f %%, %.2fx)\n",
               repeat, met ? "met" : "NOT met", a_kept, u_kept, vs);
        json_object_set_new(fig, "adaptive_time_vs_unthrottled", json_real(vs));
        json_object_set_new(fig, "target_met", json_boolean(met));
    }
    long long viol = 0, judged = 0;
    for (size_t i = 0; i < ran; i++)
        if (rows[i].way == WAY_ADAPTIVE) {
            viol += res[i].violations;
            judged += res[i].judged;
        }
    json_object_set_new(fig, "adaptive_budget_violations", json_integer(viol));
    json_object_set_new(fig, "adaptive_budget_judged", json_integer(judged));
    double load1 = bench_loadavg1();
    printf("load average (1 min): %.1f at the start, %.1f at the end\n", load0, load1);
    json_object_set_new(base, "loadavg_1m_start", json_real(load0));
    json_object_set_new(base, "loadavg_1m_end", json_real(load1));
    json_object_set_new(base, "disk_flat_out_iops", json_real(cap));
    json_object_set_new(base, "disk_mib", json_integer(disk_mib));
    json_object_set_new(base, "mirror_buf_bytes", json_integer((json_int_t)mirror_buf));
    json_object_set_new(base, "disk_iothread", json_boolean(disk_iothread));
    json_object_set_new(base, "load_iops", json_integer(rate));
    json_t *doc = json_pack("{s:s, s:o, s:o}", "machine", mach, "figures", fig, "baselines", base);
    mkdir("bench/out", 0755);
    if (json_dump_file(doc, "bench/out/impact_disk.json", JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
        fprintf(stderr, "impact_disk: cannot write bench/out/impact_disk.json\n");
    json_decref(doc);
    printf("wrote bench/out/impact_disk.json (%.0f s)\n", now_s() - t_start);
    /* a fixed low speed may never finish: a figure */
    rc = way_median(res, rows, ran, WAY_UNTHR, 0, STAT_TIME) > 0 &&
                 way_median(res, rows, ran, WAY_ADAPTIVE, 0, STAT_TIME) > 0
             ? 0
             : 1;
out:
    lab_stop(&L);
    unlink(img);
    rmdir(disk_dir);
    return rc;
}

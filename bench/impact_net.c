/* bench/impact_net — the shared-network scenario of issue 6 (part 5): a
 * guest whose disk is an NBD export on a storage host reached over the
 * same shaped link as its memory-only migration. How much does the
 * migration hurt the guest's disk latency, five ways, in one run:
 *
 *   unthrottled  max-bandwidth 0 (no cap): the migration takes the link
 *   fixed        max-bandwidth fixed low (FERRY_BENCH_FIXED_BPS)
 *   fixed_paced  the same, the agent pacing the migration socket at it
 *                (limits.pacing: SO_MAX_PACING_RATE instead of QEMU's
 *                100 ms bursts)
 *   adaptive     the adaptive policy with an impact budget (p99 latency ratio
 *                and throughput floor) steering max-bandwidth
 *   adaptive_paced  the same with limits.pacing
 *
 * The lab (tests/lib/netlab): hosts src, dst and sto in network namespaces
 * behind one bridge, every host's link shaped with tc tbf (rate
 * FERRY_BENCH_LINK_MBIT, queue FERRY_BENCH_QUEUE_MS). qemu-nbd on sto
 * serves a raw image; ferry-agents on src and dst; one guest (memload +
 * diskload, its vda QEMU's NBD client) migrates src -> dst -> src -> ...,
 * one row per migration. Before each migration the guest's own per-second
 * reports (diskload's FERRY-DISK lines: IOPS, p99 latency) over
 * FERRY_BENCH_BASE_S seconds are that row's baseline; the reports printed
 * while the migration runs are its "during" figures. After each migration
 * the guest's memory and disk are verified on the destination (a bad page
 * or block fails the row).
 *
 * Output: a table on stdout and bench/out/impact_net.json. Needs root
 * (namespaces, tc): without it the bench says why, writes the JSON with
 * "skipped" and exits 0. Exit status 1 when a migration or verify failed.
 * FERRY_LAB_INCOMING_NICE (19 unless set): the receiving QEMU's CPU nice
 * until it owns the guest (docs/LAB.md). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../tests/lib/benchenv.h"
#include "../tests/lib/lab.h"
#include "../tests/lib/netlab.h"

#define GUEST "g1"
#define GUEST_MIB 256
#define DISK_MIB 64
#define NBD_PORT 10809
#define POLL_MS 250
#define LINES_MAX 1024      /* FERRY-DISK reports kept per row */
#define CONSOLE_CHUNK 65536 /* bytes of partial console line kept */
#define ROWS_MAX 12         /* the five rows and up to 7 sweep rows */
#define SWEEP_MAX 7
#define SETTLE_S 3          /* after the previous row's verify (64 MiB read over the link) */
#define P99_BOUND 2.0       /* a second is "over" when its p99 exceeds this x the baseline */
#define WARMUP_S 10         /* after boot, before the first baseline (the fill, boot noise) */

static const char *const CMDLINE =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload,diskload ferry.ws_mib=32 "
    "ferry.rate=250 ferry.disk_rate=200 ferry.disk_mode=randrw ferry.disk_span_mib=64";

/* One diskload report. */
struct disk_line {
    uint64_t arrival_ms; /* when the bench read it */
    double t_s;          /* guest's own time stamp */
    double iops;         /* read + write requests/s */
    double p99_us;       /* interval p99 latency, us */
    double p50_us;       /* interval p50 latency, us */
};

/* Follows one instance's console on one agent: new text since `next`. */
struct follower {
    const struct lab_agent *a;
    uint64_t next;             /* console offset to read from */
    char part[CONSOLE_CHUNK];  /* an incomplete last line */
    size_t plen;               /* bytes in part */
};

struct series {
    struct disk_line v[LINES_MAX];
    int n;
};

/* Figures of the guest's reports in one time window. */
struct window {
    int n;             /* per-second reports */
    double p99_med_us; /* median of the per-second p99 latencies */
    double p99_mean_us;/* their mean */
    double p99_max_us; /* the worst second */
    double p50_med_us; /* median of the per-second p50 latencies */
    double iops;       /* mean requests/s */
    double over_pct;   /* share of seconds whose p99 exceeds the bound, % */
};

struct row {
    char name[24];           /* unthrottled, fixed, ..., paced_<MB/s> (sweep) */
    int fixed;               /* max-bandwidth at rate_bps (else 0 = no cap) */
    int paced;               /* limits.pacing */
    int adaptive;            /* the adaptive policy with the impact budget */
    double rate_bps;         /* fixed rows: max-bandwidth, bytes/s */
    int ran;                 /* the migration was attempted */
    int ok;                  /* succeeded and verified */
    char error[256];         /* why not */
    struct window base;      /* the baseline before the migration */
    struct window dur;       /* while it ran */
    double total_s;          /* QEMU total-time */
    double wall_s;           /* POST .. terminal */
    long long downtime_ms;
    double ram_mib;          /* ram_transferred */
    double final_bw_mibs;    /* the migration's last max-bandwidth, MiB/s (0 = none) */
    long long base_drops;    /* packets the source's uplink dropped in the baseline */
    long long drops;         /* ... while the migration ran */
    double agent_p99_ratio;  /* the agent's own impact.p99_latency_ratio (blockstats), -1 none */
    double agent_tput_pct;   /* impact.throughput_retained_pct, -1 none */
    char verdict[32];        /* budget.verdict at the end, "" without a budget */
    long long violations;    /* budget.violations */
    char bw_trace[512];      /* max-bandwidth steps the controller made, MiB/s at s */
    long long paced_after_ms; /* paced row: when the socket got its pacing rate, -1 never */
    double base_wait_ms;     /* source QEMU's threads: ms per s runnable but waiting for
                                a CPU, in the baseline (-1 unknown) */
    double wait_ms;          /* ... while the migration ran */
    double base_run_ms;      /* source QEMU's threads: ms per s on a CPU, baseline */
    double run_ms;           /* ... while the migration ran */
    double dst_run_ms;       /* destination QEMU's threads, ms per s on a CPU while it
                                received (-1 unknown) */
    char judged[2048];       /* adaptive rows: every budget measurement the bench saw,
                                "t_s:usage:MiB/s:p99_ms" (the rate after it; p99 of the
                                agent's window) */
};

static uint64_t now_ms(void)
{
    return lab_now_ms();
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double env_num(const char *k, double def)
{
    const char *v = getenv(k);
    if (!v || !v[0])
        return def;
    char *end = NULL;
    double d = strtod(v, &end);
    return (end && *end == '\0' && d >= 0) ? d : def;
}

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : -1;
}

/* Parses one "FERRY-DISK {...}" line into d. */
static int parse_disk(const char *line, struct disk_line *d)
{
    const char *p = strstr(line, "FERRY-DISK {");
    if (!p)
        return -1;
    json_t *o = json_loads(p + strlen("FERRY-DISK "), JSON_DISABLE_EOF_CHECK, NULL);
    if (!o)
        return -1;
    d->t_s = jnum(o, "t_s");
    d->iops = jnum(o, "read_iops") + jnum(o, "write_iops");
    d->p99_us = jnum(o, "lat_p99_us");
    d->p50_us = jnum(o, "lat_p50_us");
    json_decref(o);
    return d->t_s >= 0 && d->p99_us >= 0 ? 0 : -1;
}

/* Reads the console text that arrived since the last call and appends
 * each complete FERRY-DISK report to s (arrival = now). A vanished
 * instance is not an error (the guest moved). */
static void follow(struct follower *f, struct series *s)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/instances/%s/console?since=%llu", GUEST,
             (unsigned long long)f->next);
    int st = 0;
    json_t *o = NULL;
    struct ferr e = {0};
    if (lab_api(f->a, "GET", path, NULL, &st, &o, &e) != 0 || st != 200) {
        json_decref(o);
        return;
    }
    const char *text = json_string_value(json_object_get(o, "text"));
    json_t *nx = json_object_get(o, "next");
    if (json_is_integer(nx))
        f->next = (uint64_t)json_integer_value(nx);
    uint64_t t = now_ms();
    for (const char *p = text ? text : ""; *p; p++) {
        if (*p != '\n') {
            if (f->plen + 1 < sizeof(f->part))
                f->part[f->plen++] = *p;
            continue;
        }
        f->part[f->plen] = '\0';
        struct disk_line d;
        if (s->n < LINES_MAX && parse_disk(f->part, &d) == 0) {
            d.arrival_ms = t;
            s->v[s->n++] = d;
        }
        f->plen = 0;
    }
    json_decref(o);
}

/* Starts following from the current end of the console. */
static int follow_start(struct follower *f, const struct lab_agent *a)
{
    memset(f, 0, sizeof(*f));
    f->a = a;
    struct ferr e = {0};
    return lab_console_offset(a, GUEST, &f->next, &e);
}

static int cmp_dbl(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(double *v, int n)
{
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof(double), cmp_dbl);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The reports that arrived in [from_ms, to_ms]; over_pct counts seconds
 * whose p99 exceeds bound_us (0: not counted). */
static void summarize(const struct series *s, uint64_t from_ms, uint64_t to_ms, double bound_us,
                      struct window *w)
{
    static double p99[LINES_MAX], p50[LINES_MAX];
    double sum = 0, iops = 0, mx = 0;
    int k = 0, over = 0;
    for (int i = 0; i < s->n; i++) {
        const struct disk_line *d = &s->v[i];
        if (d->arrival_ms < from_ms || d->arrival_ms > to_ms)
            continue;
        p99[k] = d->p99_us;
        p50[k] = d->p50_us;
        sum += d->p99_us;
        iops += d->iops;
        if (d->p99_us > mx)
            mx = d->p99_us;
        if (bound_us > 0 && d->p99_us > bound_us)
            over++;
        k++;
    }
    memset(w, 0, sizeof(*w));
    w->n = k;
    if (!k)
        return;
    w->p99_mean_us = sum / k;
    w->p99_max_us = mx;
    w->iops = iops / k;
    w->over_pct = 100.0 * over / k;
    w->p99_med_us = median(p99, k);
    w->p50_med_us = median(p50, k);
}

/* The guest's memory and disk on a after a migration: memload verify and
 * diskload verify (no bad, no stale block). 0 when both are intact. */
static int verify_guest(const struct lab_agent *a, char *err, size_t n)
{
    struct lab_integrity li;
    struct ferr e = {0};
    if (lab_verify(a, GUEST, &li, &e) != 0 || !li.ok) {
        snprintf(err, n, "memory verify on %s: ok %d bad %lld %.160s", a->name, li.ok,
                 li.bad_pages, e.msg);
        return -1;
    }
    char *rest = NULL;
    if (lab_console_expect(a, GUEST, "diskload verify", 0, "FERRY-DISK-RESULT ",
                           LAB_CMD_TIMEOUT_MS, &rest, &e) != 0) {
        snprintf(err, n, "disk verify on %s: %.160s", a->name, e.msg);
        return -1;
    }
    json_t *r = json_loads(rest, 0, NULL);
    free(rest);
    int ok = r && json_is_true(json_object_get(r, "ok")) && jnum(r, "bad_blocks") == 0 &&
             jnum(r, "stale_blocks") == 0;
    if (!ok)
        snprintf(err, n, "disk verify on %s: ok false, bad %.0f stale %.0f", a->name,
                 r ? jnum(r, "bad_blocks") : -1, r ? jnum(r, "stale_blocks") : -1);
    json_decref(r);
    return ok ? 0 : -1;
}

/* The policy of the adaptive row: adaptive with an impact budget (p99
 * latency ratio and throughput floor from the environment) steering
 * max-bandwidth between 1 MiB/s and max_bytes (bytes/s: what the link can
 * carry for the migration), starting at start_bps. */
static json_t *adaptive_policy(double max_bytes, double start_bps, double base_s)
{
    double ratio = env_num("FERRY_BENCH_BUDGET_P99_RATIO", 2.0);
    double pct = env_num("FERRY_BENCH_BUDGET_TPUT_PCT", 80);
    int deadline = (int)env_num("FERRY_BENCH_DEADLINE_S", 180);
    /* the bandwidth rung (max_bandwidth_bps) past what the budget allows is
     * a consent step (docs/CONTROLLER.md) and nobody answers here: when the
     * budget and the deadline conflict the row reports budget_conflict and
     * stays within the budget until the deadline */
    return json_pack("{s:s, s:i, s:I, s:{s:f, s:i, s:s, s:I, s:I, s:I, s:i}}", "kind", "adaptive",
                     "deadline_s", deadline, "max_bandwidth_bps", (json_int_t)max_bytes,
                     "budget", "max_p99_latency_ratio", ratio,
                     "min_throughput_pct", (int)pct, "steer", "bandwidth", "min_rate_bps",
                     (json_int_t)(1 << 20), "max_rate_bps", (json_int_t)max_bytes,
                     "start_rate_bps", (json_int_t)start_bps, "baseline_s", (int)base_s);
}

/* Appends the budget's newest measurement (when budget.judged moved
 * past *seen) to r->judged: seconds since the request, usage, the rate
 * after it (MiB/s) and the agent's window p99 (ms). */
static void note_judged(struct row *r, json_t *m, uint64_t t_post, long long *seen)
{
    json_t *b = json_object_get(m, "budget");
    long long j = (long long)jnum(b, "judged");
    if (!b || j <= *seen)
        return;
    *seen = j;
    json_t *now = json_object_get(json_object_get(m, "impact"), "now");
    size_t used = strlen(r->judged);
    if (used + 40 >= sizeof(r->judged))
        return;
    snprintf(r->judged + used, sizeof(r->judged) - used, "%s%.1f:%.2f:%.1f:%.1f", used ? " " : "",
             (double)(now_ms() - t_post) / 1000.0, jnum(b, "usage"),
             jnum(b, "rate_bps") / 1048576.0, jnum(now, "p99_latency_us") / 1000.0);
}

/* CPU time of one process's threads, followed per thread (their
 * schedstat: ns on a CPU, ns runnable but waiting for one): at each
 * cpu_track_poll the time each thread gained since the previous poll is
 * added, so threads that exit (the source QEMU at the end, its worker
 * threads) or start do not make the sums jump. */
#define TRACK_TIDS 256
struct cpu_track {
    pid_t pid;
    int n;                      /* threads in the last poll */
    int tid[TRACK_TIDS];
    double run[TRACK_TIDS], wait[TRACK_TIDS]; /* their totals then, ms */
    double run_ms, wait_ms;     /* gained since the first poll, ms */
    uint64_t t0_ms, t_ms;       /* first and last poll that saw the process */
};

static void cpu_track_poll(struct cpu_track *c)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)c->pid);
    DIR *d = c->pid > 0 ? opendir(dir) : NULL;
    if (!d)
        return;
    int n = 0, tid[TRACK_TIDS];
    double run[TRACK_TIDS], wait[TRACK_TIDS];
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < TRACK_TIDS) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char path[128];
        snprintf(path, sizeof(path), "%s/%.20s/schedstat", dir, de->d_name);
        FILE *f = fopen(path, "re");
        unsigned long long r = 0, w = 0;
        if (f && fscanf(f, "%llu %llu", &r, &w) == 2) {
            tid[n] = (int)strtol(de->d_name, NULL, 10);
            run[n] = (double)r / 1e6;
            wait[n] = (double)w / 1e6;
            n++;
        }
        if (f)
            fclose(f);
    }
    closedir(d);
    if (n == 0)
        return;
    uint64_t t = now_ms();
    if (!c->t0_ms)
        c->t0_ms = t;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c->n; k++)
            if (c->tid[k] == tid[i] && run[i] >= c->run[k] && wait[i] >= c->wait[k]) {
                c->run_ms += run[i] - c->run[k];
                c->wait_ms += wait[i] - c->wait[k];
                break;
            }
    memcpy(c->tid, tid, sizeof(int) * (size_t)n);
    memcpy(c->run, run, sizeof(double) * (size_t)n);
    memcpy(c->wait, wait, sizeof(double) * (size_t)n);
    c->n = n;
    c->t_ms = t;
}

/* ms per s between two snapshots of a track (the later one b), -1
 * without both. */
static double cpu_rate(const struct cpu_track *a, const struct cpu_track *b, int wait)
{
    if (!a->t_ms || !b->t_ms || b->t_ms <= a->t_ms)
        return -1;
    double d = wait ? b->wait_ms - a->wait_ms : b->run_ms - a->run_ms;
    return d * 1000.0 / (double)(b->t_ms - a->t_ms);
}

/* FERRY_BENCH_TRACE: a per-poll trace of one row to
 * bench/out/impact_net_trace.txt, to see where the guest's latency goes
 * (docs/BENCH.md impact_net "Trace"). The source QEMU's threads are summed
 * by kind: the main loop (the thread whose id is the pid), vCPU and
 * migration threads where QEMU names them ("CPU ...", "live_migration":
 * -name debug-threads=on), the rest. */
#define TK_KINDS 4
static FILE *trace_f; /* FERRY_BENCH_TRACE set: the trace file */
struct thread_kinds {
    double run[TK_KINDS], wait[TK_KINDS]; /* totals of the live threads, ms */
    double agent_run;                     /* the source agent's CPU, ms */
};

static int thread_kind(const char *comm)
{
    if (strncmp(comm, "CPU ", 4) == 0)
        return 1;
    if (strncmp(comm, "live_migration", 14) == 0)
        return 2;
    return 3;
}

static double schedstat_ms(const char *path, double *wait_ms)
{
    FILE *f = fopen(path, "re");
    unsigned long long r = 0, w = 0;
    int ok = f && fscanf(f, "%llu %llu", &r, &w) == 2;
    if (f)
        fclose(f);
    if (wait_ms)
        *wait_ms = ok ? (double)w / 1e6 : 0;
    return ok ? (double)r / 1e6 : 0;
}

static void kinds_poll(pid_t qemu, pid_t agent, struct thread_kinds *k)
{
    memset(k, 0, sizeof(*k));
    char dir[64], path[160];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)qemu);
    DIR *d = qemu > 0 ? opendir(dir) : NULL;
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d)) != NULL && n++ < TRACK_TIDS) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char comm[32] = "";
        snprintf(path, sizeof(path), "%s/%.20s/comm", dir, de->d_name);
        FILE *f = fopen(path, "re");
        if (f) {
            if (!fgets(comm, sizeof(comm), f))
                comm[0] = '\0';
            fclose(f);
        }
        snprintf(path, sizeof(path), "%s/%.20s/schedstat", dir, de->d_name);
        double w = 0, r = schedstat_ms(path, &w);
        int kd = strtol(de->d_name, NULL, 10) == (long)qemu ? 0 : thread_kind(comm);
        k->run[kd] += r;
        k->wait[kd] += w;
    }
    if (d)
        closedir(d);
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)agent);
    k->agent_run = agent > 0 ? schedstat_ms(path, NULL) : 0;
}

/* One trace line: ms gained per kind since prev (negative: a thread left). */
static void kinds_line(FILE *f, const char *row, double t_s, const struct thread_kinds *a,
                       const struct thread_kinds *b)
{
    fprintf(f, "%s cpu %.2f", row, t_s);
    for (int i = 0; i < TK_KINDS; i++)
        fprintf(f, " %.1f/%.1f", b->run[i] - a->run[i], b->wait[i] - a->wait[i]);
    fprintf(f, " agent %.1f\n", b->agent_run - a->agent_run);
}

/* FERRY_BENCH_TRACE: every sample the source agent took of migration id. */
static void trace_samples(const struct row *r, const struct lab_agent *src, const char *id)
{
    if (!trace_f)
        return;
    char path[160];
    snprintf(path, sizeof(path), "/v1/migrations/%s?samples=1", id);
    int st = 0;
    json_t *ms = NULL;
    struct ferr e = {0};
    if (lab_api(src, "GET", path, NULL, &st, &ms, &e) == 0 && st == 200) {
        json_t *a = json_object_get(ms, "samples");
        for (size_t i = 0; i < json_array_size(a); i++) {
            json_t *x = json_array_get(a, i);
            const char *ph = json_string_value(json_object_get(x, "phase"));
            fprintf(trace_f,
                    "%s sample %.2f ram_mib %.2f zero_pages %.0f sync %.0f p99_us %.0f bw %.0f "
                    "%s\n",
                    r->name, jnum(x, "t_ms") / 1000.0, jnum(x, "ram_transferred") / 1048576.0,
                    jnum(x, "ram_duplicate"), jnum(x, "dirty_sync_count"),
                    jnum(x, "guest_p99_us"), jnum(x, "bw_bps"), ph ? ph : "?");
        }
    }
    json_decref(ms);
}

/* FERRY_BENCH_TRACE: diskload's own seconds, T s after the request. */
static void trace_guest(const struct row *r, const struct series *s, uint64_t t_post)
{
    for (int i = 0; trace_f && i < s->n; i++)
        fprintf(trace_f, "%s guest %.2f p99_us %.0f p50_us %.0f iops %.0f\n", r->name,
                (double)((int64_t)s->v[i].arrival_ms - (int64_t)t_post) / 1000.0, s->v[i].p99_us,
                s->v[i].p50_us, s->v[i].iops);
    if (trace_f)
        fflush(trace_f);
}

static long long drops_now(const struct netlab *nl, int host)
{
    uint64_t d = 0;
    struct ferr e = {0};
    return netlab_uplink_drops(nl, host, &d, &e) == 0 ? (long long)d : -1;
}

static void run_row(struct row *r, const struct netlab *nl, int src_host,
                    const struct lab_agent *src, const struct lab_agent *dst, const json_t *limits,
                    const json_t *policy, double base_s, int timeout_s)
{
    r->ran = 1;
    struct series *s = calloc(1, sizeof(*s));
    struct follower *fs = calloc(1, sizeof(*fs)), *fd = calloc(1, sizeof(*fd));
    struct cpu_track *sc = calloc(1, sizeof(*sc)), *dc = calloc(1, sizeof(*dc));
    if (!s || !fs || !fd || !sc || !dc) {
        snprintf(r->error, sizeof(r->error), "out of memory");
        goto out;
    }
    if (follow_start(fs, src) != 0) {
        snprintf(r->error, sizeof(r->error), "no console on %s", src->name);
        goto out;
    }
    /* settle (the previous row's verify read the disk over the link), then
     * the baseline: the guest's reports for base_s before the migration */
    sleep_ms(SETTLE_S * 1000);
    struct ferr pe = {0};
    sc->pid = 0;
    if (lab_instance_pid(src, GUEST, &sc->pid, NULL, 0, &pe) != 0)
        sc->pid = 0;
    cpu_track_poll(sc);
    struct cpu_track c0 = *sc, c1;
    long long d0 = drops_now(nl, src_host);
    uint64_t b0 = now_ms();
    struct thread_kinds tk0, tk1;
    kinds_poll(sc->pid, src->pid, &tk0);
    while (now_ms() - b0 < (uint64_t)(base_s * 1000)) {
        sleep_ms(POLL_MS);
        follow(fs, s);
        cpu_track_poll(sc);
        if (trace_f) {
            kinds_poll(sc->pid, src->pid, &tk1);
            kinds_line(trace_f, r->name, (double)((int64_t)now_ms() - (int64_t)b0) / 1000.0 - base_s,
                       &tk0, &tk1);
            tk0 = tk1;
        }
    }
    uint64_t t_post = now_ms();
    cpu_track_poll(sc);
    c1 = *sc;
    long long d1 = drops_now(nl, src_host);
    r->base_drops = d0 >= 0 && d1 >= 0 ? d1 - d0 : -1;
    summarize(s, b0 + 1, t_post, 0, &r->base);
    char id[64];
    struct ferr e = {0};
    int rc = policy ? lab_migrate_start_policy(src, dst, GUEST, limits, policy, id, sizeof(id), &e)
                    : lab_migrate_start(src, dst, GUEST, limits, id, sizeof(id), &e);
    if (rc != 0) {
        snprintf(r->error, sizeof(r->error), "start: %.200s", e.msg);
        goto out;
    }
    /* the destination instance exists once prepared: follow it from 0 */
    memset(fd, 0, sizeof(*fd));
    fd->a = dst;
    char path[160];
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    json_t *m = NULL;
    const char *state = "";
    long long judged = 0;
    uint64_t deadline = t_post + (uint64_t)timeout_s * 1000;
    while (now_ms() < deadline) {
        sleep_ms(POLL_MS);
        follow(fs, s);
        follow(fd, s);
        cpu_track_poll(sc); /* the source QEMU quits at the end: its last poll stays */
        if (trace_f) {
            kinds_poll(sc->pid, src->pid, &tk1);
            kinds_line(trace_f, r->name, (double)(now_ms() - t_post) / 1000.0, &tk0, &tk1);
            tk0 = tk1;
        }
        if (!dc->pid && lab_instance_pid(dst, GUEST, &dc->pid, NULL, 0, &pe) != 0)
            dc->pid = 0;
        cpu_track_poll(dc);
        int st = 0;
        json_decref(m);
        m = NULL;
        if (lab_api(src, "GET", path, NULL, &st, &m, &e) != 0 || st != 200)
            continue;
        state = json_string_value(json_object_get(m, "state"));
        state = state ? state : "";
        note_judged(r, m, t_post, &judged);
        if (!strcmp(state, "succeeded") || !strcmp(state, "failed") ||
            !strcmp(state, "cancelled"))
            break;
    }
    uint64_t t_end = now_ms();
    long long d2 = drops_now(nl, src_host);
    r->drops = d1 >= 0 && d2 >= 0 ? d2 - d1 : -1;
    r->wall_s = (double)(t_end - t_post) / 1000.0;
    r->base_wait_ms = cpu_rate(&c0, &c1, 1);
    r->base_run_ms = cpu_rate(&c0, &c1, 0);
    r->wait_ms = cpu_rate(&c1, sc, 1);
    r->run_ms = cpu_rate(&c1, sc, 0);
    struct cpu_track dz = {.t_ms = dc->t0_ms}; /* the destination from its first poll */
    r->dst_run_ms = cpu_rate(&dz, dc, 0);
    if (strcmp(state, "succeeded") != 0) {
        trace_samples(r, src, id);
        trace_guest(r, s, t_post);
        const char *err = json_string_value(json_object_get(m, "error"));
        snprintf(r->error, sizeof(r->error), "migration %s (%s)", state[0] ? state : "timed out",
                 err ? err : "");
        if (!state[0] || !strcmp(state, "running")) {
            snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", id);
            int st = 0;
            if (lab_api(src, "POST", path, NULL, &st, NULL, &e) != 0) {
            }
        }
        json_decref(m);
        goto out;
    }
    json_t *res = json_object_get(m, "result");
    r->total_s = jnum(res, "total_time_ms") / 1000.0;
    r->downtime_ms = (long long)jnum(res, "downtime_ms");
    r->ram_mib = jnum(res, "ram_transferred") / 1048576.0;
    r->final_bw_mibs = jnum(json_object_get(m, "limits"), "max_bandwidth_bps") / 1048576.0;
    json_t *pc = json_object_get(m, "pacing");
    if (json_is_true(json_object_get(pc, "active")))
        r->paced_after_ms = (long long)jnum(pc, "since_ms");
    json_t *imp = json_object_get(m, "impact");
    r->agent_p99_ratio = jnum(imp, "p99_latency_ratio");
    r->agent_tput_pct = jnum(imp, "throughput_retained_pct");
    json_t *bud = json_object_get(m, "budget");
    const char *v = json_string_value(json_object_get(bud, "verdict"));
    snprintf(r->verdict, sizeof(r->verdict), "%s", v ? v : "");
    r->violations = (long long)jnum(bud, "violations");
    json_t *evs = json_object_get(m, "events");
    size_t used = 0;
    for (size_t i = 0; i < json_array_size(evs) && used + 24 < sizeof(r->bw_trace); i++) {
        json_t *ev = json_array_get(evs, i);
        const char *act = json_string_value(json_object_get(ev, "action"));
        if (!act || strcmp(act, "set_bandwidth") != 0)
            continue;
        int w = snprintf(r->bw_trace + used, sizeof(r->bw_trace) - used, "%s%.1f@%.0fs",
                         used ? " " : "", jnum(ev, "value") / 1048576.0,
                         jnum(ev, "t_ms") / 1000.0);
        if (w > 0)
            used += (size_t)w;
    }
    json_decref(m);
    trace_samples(r, src, id);
    /* the report covering the switchover comes from the destination */
    uint64_t tail = now_ms() + 1200;
    while (now_ms() < tail) {
        sleep_ms(POLL_MS);
        follow(fd, s);
    }
    /* during: reports printed after the request (arrived > POLL_MS after
     * it) until 1.2 s after the end was seen */
    summarize(s, t_post + POLL_MS + 1, t_end + 1200, P99_BOUND * r->base.p99_med_us, &r->dur);
    trace_guest(r, s, t_post);
    if (verify_guest(dst, r->error, sizeof(r->error)) == 0)
        r->ok = 1;
out:
    free(s);
    free(fs);
    free(fd);
    free(sc);
    free(dc);
}

/* The rows to run, in order: FERRY_BENCH_ROWS (comma-separated names of
 * the five rows; all five when unset), then one fixed paced row per rate
 * in FERRY_BENCH_SWEEP_BPS (comma-separated bytes/s, at most SWEEP_MAX),
 * named paced_<MB/s>. Returns the count, or -1 with why (n bytes) for an
 * unknown name or a bad rate. */
static int make_rows(struct row *rows, double fixed_bps, char *why, size_t n)
{
    static const struct {
        const char *name;
        int fixed, paced, adaptive;
    } kinds[] = {{"unthrottled", 0, 0, 0},
                 {"fixed", 1, 0, 0},
                 {"fixed_paced", 1, 1, 0},
                 {"adaptive", 0, 0, 1},
                 {"adaptive_paced", 0, 1, 1}};
    const size_t nk = sizeof(kinds) / sizeof(kinds[0]);
    const char *sel = getenv("FERRY_BENCH_ROWS");
    int k = 0;
    for (size_t i = 0; i < nk; i++) {
        if (sel && sel[0]) {
            size_t len = strlen(kinds[i].name);
            const char *p = sel;
            int found = 0;
            while (!found && (p = strstr(p, kinds[i].name)) != NULL) {
                found = (p == sel || p[-1] == ',') && (p[len] == ',' || p[len] == '\0');
                p += len;
            }
            if (!found)
                continue;
        }
        memset(&rows[k], 0, sizeof(rows[k]));
        snprintf(rows[k].name, sizeof(rows[k].name), "%s", kinds[i].name);
        rows[k].fixed = kinds[i].fixed;
        rows[k].paced = kinds[i].paced;
        rows[k].adaptive = kinds[i].adaptive;
        rows[k].rate_bps = fixed_bps;
        rows[k].paced_after_ms = -1;
        k++;
    }
    /* every name in FERRY_BENCH_ROWS must be one of the five */
    for (const char *p = sel ? sel : ""; *p;) {
        size_t len = strcspn(p, ",");
        int known = 0;
        for (size_t i = 0; i < nk; i++)
            known |= len == strlen(kinds[i].name) && strncmp(p, kinds[i].name, len) == 0;
        if (!known) {
            snprintf(why, n, "FERRY_BENCH_ROWS: unknown row \"%.*s\"", (int)(len > 40 ? 40 : len),
                     p);
            return -1;
        }
        p += len + (p[len] == ',');
    }
    const char *sw = getenv("FERRY_BENCH_SWEEP_BPS");
    for (const char *p = sw ? sw : ""; *p;) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ',') || v < 65536 || v > 1e10 || k >= ROWS_MAX ||
            k >= (int)nk + SWEEP_MAX) {
            snprintf(why, n, "FERRY_BENCH_SWEEP_BPS: bad or too many rates (at most %d, each "
                     ">= 65536 bytes/s) at \"%.40s\"", SWEEP_MAX, p);
            return -1;
        }
        memset(&rows[k], 0, sizeof(rows[k]));
        snprintf(rows[k].name, sizeof(rows[k].name), "paced_%.1f", v / 1e6);
        rows[k].fixed = rows[k].paced = 1;
        rows[k].rate_bps = v;
        rows[k].paced_after_ms = -1;
        k++;
        p = *end ? end + 1 : end;
    }
    if (k == 0) {
        snprintf(why, n, "no rows to run (FERRY_BENCH_ROWS)");
        return -1;
    }
    return k;
}

static json_t *num(double v, int have)
{
    return have ? json_real(v) : json_null();
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    double link_mbit = env_num("FERRY_BENCH_LINK_MBIT", 100);
    double queue_ms = env_num("FERRY_BENCH_QUEUE_MS", 20);
    double fixed_bps = env_num("FERRY_BENCH_FIXED_BPS", link_mbit * 1e6 / 8 / 4);
    double base_s = env_num("FERRY_BENCH_BASE_S", 8);
    /* the adaptive rows' ceiling: what the link carries for the migration
     * beside the guest's storage. QEMU's max-bandwidth and the pacing rate
     * count payload: on the wire the migration takes 4.6 % more (66 bytes
     * of Ethernet/IP/TCP headers per 1448), and the guest's NBD traffic
     * shares the source's uplink (~0.3 MB/s of 12.5). At 80 % the wire is
     * ~86 % busy; the tbf queue drains at the idle share of the link, so
     * any jitter of the paced flow queues the guest's requests for
     * burst / (1 - busy): at 90 % (96.5 % busy, run of 20:00) the
     * budget's window p99 reached 10 ms two seconds after each climb to
     * the ceiling */
    double max_pct = env_num("FERRY_BENCH_MAX_PCT", 80);
    if (max_pct <= 0 || max_pct > 100)
        max_pct = 80;
    double max_bps = link_mbit * 1e6 / 8 * max_pct / 100.0;
    int timeout_s = (int)env_num("FERRY_BENCH_TIMEOUT_S", 240);
    char mach[512];
    bench_machine_tcg(mach, sizeof(mach));
    mkdir("bench/out", 0755);
    if (getenv("FERRY_BENCH_TRACE") && getenv("FERRY_BENCH_TRACE")[0])
        trace_f = fopen("bench/out/impact_net_trace.txt", "we");
    char why[160];
    if (!netlab_available(why, sizeof(why))) {
        printf("impact_net: skipped: %s\n", why);
        json_t *doc = json_pack("{s:s, s:{}, s:{}, s:s}", "machine", mach, "figures", "baselines",
                                "skipped", why);
        int w = json_dump_file(doc, "bench/out/impact_net.json", JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(doc);
        return w == 0 ? 0 : 1;
    }
    struct ferr e = {0};
    char build[LAB_PATH_MAX], lab_dir[LAB_PATH_MAX];
    if (netlab_paths(build, lab_dir, sizeof(build), &e) != 0) {
        fprintf(stderr, "impact_net: %s\n", e.msg);
        return 1;
    }
    static struct row rows[ROWS_MAX];
    char why_rows[160];
    int n_rows = make_rows(rows, fixed_bps, why_rows, sizeof(why_rows));
    if (n_rows < 0) {
        fprintf(stderr, "impact_net: %s\n", why_rows);
        return 2;
    }
    const char *nice = bench_incoming_nice(); /* root here: 19 unless set */
    uint64_t t_start = now_ms();
    double load0[1] = {0}, load1[1] = {0};
    if (getloadavg(load0, 1) != 1)
        load0[0] = -1;
    printf("impact_net: link %.0f Mbit/s per host (tc tbf, queue %.0f ms), fixed row %.1f MiB/s, "
           "adaptive rows up to %.1f MiB/s (%.0f %% of the link), baseline %.0f s per row, "
           "receiving QEMU at nice %s\nmachine: %s\n",
           link_mbit, queue_ms, fixed_bps / 1048576.0, max_bps / 1048576.0, max_pct, base_s, nice,
           mach);
    struct netlab nl;
    const char *names[] = {"src", "dst", "sto"};
    if (netlab_create(&nl, 3, names, &e) != 0) {
        fprintf(stderr, "impact_net: netlab: %s\n", e.msg);
        return 1;
    }
    struct netlab_shape sh = {.rate_bps = (uint64_t)(link_mbit * 1e6),
                              .queue_ms = (unsigned)queue_ms};
    char img[LAB_PATH_MAX + 16];
    snprintf(img, sizeof(img), "%s/disk.raw", nl.tmp);
    int fdisk = open(img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fdisk >= 0 && ftruncate(fdisk, (off_t)DISK_MIB << 20) == 0;
    if (fdisk >= 0)
        close(fdisk);
    if (!ok)
        snprintf(e.msg, sizeof(e.msg), "create %.160s: %.60s", img, strerror(errno));
    for (int i = 0; ok && i < nl.n; i++)
        ok = netlab_shape(&nl, i, &sh, &e) == 0;
    ok = ok && netlab_enter(&nl, &e) == 0;
    pid_t nbd = 0;
    ok = ok && netlab_nbd_serve(&nl, 2, img, "disk", NBD_PORT, &nbd, &e) == 0;
    struct lab_agent ag[2];
    int port = 20000 + (int)(getpid() % 10000);
    ok = ok && netlab_start_agent(&nl, 0, build, lab_dir, port, &ag[0], &e) == 0 &&
         netlab_start_agent(&nl, 1, build, lab_dir, port, &ag[1], &e) == 0;
    json_t *disks = json_pack("[{s:s, s:{s:s, s:i, s:s}}]", "id", "vda", "nbd", "host",
                              nl.hosts[2].addr, "port", NBD_PORT, "export", "disk");
    ok = ok && lab_launch_guest_disks(&ag[0], GUEST, GUEST_MIB, CMDLINE, disks, 2,
                                      LAB_BOOT_TIMEOUT_MS, &e) == 0;
    json_decref(disks);
    if (!ok) {
        fprintf(stderr, "impact_net: setup: %s\n", e.msg);
        netlab_destroy(&nl);
        return 1;
    }
    sleep_ms(WARMUP_S * 1000);
    int cur = 0, failed = 0;
    for (int i = 0; i < n_rows; i++) {
        struct row *r = &rows[i];
        json_t *lim = json_pack("{s:I, s:I, s:b}", "downtime_ms", (json_int_t)300,
                                "max_bandwidth_bps",
                                (json_int_t)(r->fixed ? (json_int_t)r->rate_bps : 0), "pacing",
                                r->paced);
        json_t *pol = NULL;
        if (r->adaptive) { /* starts where the fixed row stays; the budget moves it */
            pol = adaptive_policy(max_bps, fixed_bps, base_s);
            json_object_set_new(lim, "max_bandwidth_bps", json_integer((json_int_t)fixed_bps));
        }
        run_row(r, &nl, cur, &ag[cur], &ag[1 - cur], lim, pol, base_s, timeout_s);
        json_decref(lim);
        json_decref(pol);
        if (!r->ok) {
            failed = 1;
            fprintf(stderr, "impact_net: %s: %s\n", r->name, r->error);
            /* the guest is wherever it runs now; go on only if it moved */
            json_t *o = NULL;
            if (lab_instance(&ag[1 - cur], GUEST, &o, &e) == 0)
                cur = 1 - cur;
            json_decref(o);
            continue;
        }
        cur = 1 - cur;
    }
    printf("\n%-14s %9s %9s %9s %9s %7s %7s %9s %9s %7s %8s %8s %7s %7s %6s\n", "row",
           "base_p99", "p99_med", "p99_mean", "p99_max", "p99_x", "over2x", "base_iops", "iops",
           "iops_%", "total_s", "down_ms", "ram_MiB", "MiB/s", "drops");
    json_t *fig = json_object(), *base = json_object();
    for (int i = 0; i < n_rows; i++) {
        struct row *r = &rows[i];
        char k[96];
        if (!r->ran || !r->ok) {
            printf("%-14s %s\n", r->name, r->error[0] ? r->error : "not run");
            continue;
        }
        double ratio = r->base.p99_med_us > 0 ? r->dur.p99_med_us / r->base.p99_med_us : 0;
        double ret = r->base.iops > 0 ? 100.0 * r->dur.iops / r->base.iops : 0;
        double mibs = r->total_s > 0 ? r->ram_mib / r->total_s : 0;
        printf("%-14s %7.0fus %7.0fus %7.0fus %7.0fus %6.1fx %6.0f%% %9.1f %9.1f %6.0f%% %8.1f "
               "%8lld %7.1f %7.1f %6lld\n",
               r->name, r->base.p99_med_us, r->dur.p99_med_us, r->dur.p99_mean_us,
               r->dur.p99_max_us, ratio, r->dur.over_pct, r->base.iops, r->dur.iops, ret,
               r->total_s, r->downtime_ms, r->ram_mib, mibs, r->drops);
        struct {
            const char *k;
            double v;
            int have;
        } f[] = {
            {"p99_median_us", r->dur.p99_med_us, 1},
            {"p99_mean_us", r->dur.p99_mean_us, 1},
            {"p99_max_us", r->dur.p99_max_us, 1},
            {"p99_ratio", ratio, r->base.p99_med_us > 0},
            {"seconds_over_2x_pct", r->dur.over_pct, 1},
            {"p50_median_us", r->dur.p50_med_us, 1},
            {"iops", r->dur.iops, 1},
            {"iops_retained_pct", ret, r->base.iops > 0},
            {"total_time_s", r->total_s, 1},
            {"wall_time_s", r->wall_s, 1},
            {"downtime_ms", (double)r->downtime_ms, 1},
            {"ram_mib", r->ram_mib, 1},
            {"uplink_drops", (double)r->drops, r->drops >= 0},
            {"reports", r->dur.n, 1},
            {"paced_after_ms", (double)r->paced_after_ms, r->paced_after_ms >= 0},
            {"agent_p99_ratio", r->agent_p99_ratio, r->agent_p99_ratio >= 0},
            {"agent_throughput_retained_pct", r->agent_tput_pct, r->agent_tput_pct >= 0},
            {"qemu_wait_ms_per_s", r->wait_ms, r->wait_ms >= 0},
            {"qemu_cpu_ms_per_s", r->run_ms, r->run_ms >= 0},
            {"dst_qemu_cpu_ms_per_s", r->dst_run_ms, r->dst_run_ms >= 0},
        },
          b[] = {
              {"p99_median_us", r->base.p99_med_us, 1},
              {"p99_mean_us", r->base.p99_mean_us, 1},
              {"p50_median_us", r->base.p50_med_us, 1},
              {"iops", r->base.iops, 1},
              {"uplink_drops", (double)r->base_drops, r->base_drops >= 0},
              {"reports", r->base.n, 1},
              {"qemu_wait_ms_per_s", r->base_wait_ms, r->base_wait_ms >= 0},
              {"qemu_cpu_ms_per_s", r->base_run_ms, r->base_run_ms >= 0},
          };
        for (size_t j = 0; j < sizeof(f) / sizeof(f[0]); j++) {
            snprintf(k, sizeof(k), "%.23s_%s", r->name, f[j].k);
            json_object_set_new(fig, k, num(f[j].v, f[j].have));
        }
        if (r->verdict[0]) {
            snprintf(k, sizeof(k), "%.23s_budget_verdict", r->name);
            json_object_set_new(fig, k, json_string(r->verdict));
            snprintf(k, sizeof(k), "%.23s_budget_violations", r->name);
            json_object_set_new(fig, k, json_integer(r->violations));
            snprintf(k, sizeof(k), "%.23s_bandwidth_steps", r->name);
            json_object_set_new(fig, k, json_string(r->bw_trace));
            snprintf(k, sizeof(k), "%.23s_budget_measurements", r->name);
            json_object_set_new(fig, k, json_string(r->judged));
        }
        for (size_t j = 0; j < sizeof(b) / sizeof(b[0]); j++) {
            snprintf(k, sizeof(k), "%.23s_base_%s", r->name, b[j].k);
            json_object_set_new(base, k, num(b[j].v, b[j].have));
        }
    }
    for (int i = 0; i < n_rows; i++) {
        const struct row *r = &rows[i];
        if (!r->ran || !r->ok)
            continue;
        printf("%-12s agent's view (blockstats): p99 ratio %.1fx, throughput %.0f%%", r->name,
               r->agent_p99_ratio, r->agent_tput_pct);
        if (r->paced_after_ms >= 0)
            printf("; socket paced from %lld ms", r->paced_after_ms);
        printf("; source QEMU waited for a CPU %.0f ms/s (base %.0f), ran %.0f ms/s (base %.0f), "
               "destination QEMU ran %.0f ms/s",
               r->wait_ms, r->base_wait_ms, r->run_ms, r->base_run_ms, r->dst_run_ms);
        if (r->verdict[0])
            printf("; budget %s, %lld violations; max-bandwidth MiB/s@s: %s", r->verdict,
                   r->violations, r->bw_trace[0] ? r->bw_trace : "(unchanged)");
        printf("\n");
    }
    if (getloadavg(load1, 1) != 1)
        load1[0] = -1;
    printf("load average (1 min) %.2f at the start, %.2f at the end\n", load0[0], load1[0]);
    json_object_set_new(fig, "loadavg_1m_start", json_real(load0[0]));
    json_object_set_new(fig, "loadavg_1m_end", json_real(load1[0]));
    json_object_set_new(fig, "link_mbit", json_real(link_mbit));
    json_object_set_new(fig, "queue_ms", json_real(queue_ms));
    json_object_set_new(fig, "fixed_bw_bps", json_real(fixed_bps));
    json_object_set_new(fig, "adaptive_max_bps", json_real(max_bps));
    netlab_destroy(&nl);
    json_t *doc = json_pack("{s:s, s:o, s:o}", "machine", mach, "figures", fig, "baselines", base);
    if (json_dump_file(doc, "bench/out/impact_net.json", JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        fprintf(stderr, "impact_net: cannot write bench/out/impact_net.json\n");
        failed = 1;
    }
    json_decref(doc);
    printf("diskload's per-second p99 latency: median (p99_med, base_p99), mean and worst of the "
           "seconds;\np99_x: p99_med / base_p99; over2x: seconds with p99 > 2x base_p99; total_s: "
           "QEMU total-time;\ndrops: packets the migration source's uplink (tbf) dropped while it "
           "ran\nwrote bench/out/impact_net.json (%.0f s)\n",
           (double)(now_ms() - t_start) / 1000.0);
    return failed;
}

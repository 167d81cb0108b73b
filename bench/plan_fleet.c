/* plan_fleet — a rolling maintenance of 1,000 simulated hosts through the
 * real ferryd executor (issue 5, docs/BENCH.md).
 *
 * What it answers: can ferryd's plan executor and migration orchestration
 * drive a whole fleet — every host drained (every guest live-migrated),
 * maintained, rebooted, health-checked and returned — and at what cost;
 * how the plan's makespan compares with the planner's estimate and its
 * lower bound; whether any step gets stuck. Baselines in the same run: the
 * planner's own estimate and lower bound for the same fleet, and the same
 * benchmark on a 100-host fleet (scaling of ferryd's CPU and memory).
 *
 * How: the real ferryd binary on a fresh SQLite store in a temporary
 * directory (127.0.0.1). A child process runs src/sim/fleet.c: N simulated
 * agents, each on its own loopback address, registering and heartbeating
 * like ferry-agent (label fleet=sim), serving the agent API ferryd drives
 * (incoming, migrations, maintenance with reboot, health-check command),
 * with migration durations from the QEMU pre-copy model played back at
 * FERRY_BENCH_FLEET_SCALE real seconds per simulated second. The bench
 * runs with ferryd's admission caps off (max_migrations* = 0: the plan's
 * own concurrency limits are the only ones) and creates one plan over label fleet=sim (max_down = hosts / groups,
 * per_source = per_destination = FERRY_BENCH_FLEET_PER_SOURCE (1), action with reboot, a health-check
 * command) and polls the plan's summary (GET /v1/plans/ID?hosts_limit=0)
 * every 2 s until it completes, timing each poll (p50/p99/max); every 10 s
 * it walks the host list in pages of 500 (hosts_offset/hosts_limit): a
 * host whose step has not changed for FERRY_BENCH_FLEET_STUCK_S is
 * reported as stuck. After the plan: ferryd's CPU time (utime + stime) and
 * peak RSS (VmHWM) from /proc, the events in its store by type, migrations
 * per wall second, and the 1-minute load average at the start and end.
 *
 * Environment: BUILD (build), FERRY_BENCH_FLEET_HOSTS (1000),
 * FERRY_BENCH_FLEET_BASE_HOSTS (100; 0 = no baseline run),
 * FERRY_BENCH_FLEET_GROUPS (5), FERRY_BENCH_FLEET_SCALE_MILLI (100 = 0.1),
 * FERRY_BENCH_FLEET_TIMEOUT_S (900 per run), FERRY_BENCH_FLEET_STUCK_S (120),
 * FERRY_BENCH_FLEET_HEARTBEAT_MS (10000, ferryd's default),
 * FERRY_BENCH_FLEET_DB_DISK (0: the store on tmpfs; 1: in /tmp).
 * Prints a table and writes bench/out/plan_fleet.json. Exit 1 when a plan
 * did not complete. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/lib/benchenv.h"
#include "../tests/lib/ferryd.h"

#include "sim/fleet.h"
#include "util/httpc.h"
#include "util/xalloc.h"

#define POLL_MS 2000         /* plan summary poll period, ms */
#define PAGE_EVERY_MS 10000  /* host-list walk (stuck detection) period, ms */
#define PAGE_HOSTS 500       /* hosts per page of the walk */
#define HTTP_TIMEOUT_MS 60000 /* one request to ferryd */
#define STUCK_MAX 8          /* stuck hosts listed */

static pid_t daemon_pid, fleet_pid;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int api(const char *url, const char *token, const char *method, const char *path,
               const json_t *body, json_t **out)
{
    struct ferr e = {0};
    int status = 0;
    json_t *o = NULL;
    if (httpc_json(url, method, path, body, token, HTTP_TIMEOUT_MS, &status, &o, &e) != 0) {
        fprintf(stderr, "plan_fleet: %s %s: %s\n", method, path, e.msg);
        return -1;
    }
    if (out)
        *out = o;
    else
        json_decref(o);
    return status;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* utime + stime of pid, s; peak RSS (VmHWM), MiB. */
static void proc_usage(pid_t pid, double *cpu_s, double *rss_mib)
{
    char path[64], buf[4096];
    *cpu_s = *rss_mib = -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) ==
                     2)
            *cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    while (f && fgets(buf, sizeof(buf), f)) {
        unsigned long kib = 0;
        if (sscanf(buf, "VmHWM: %lu kB", &kib) == 1)
            *rss_mib = (double)kib / 1024.0;
    }
    if (f)
        fclose(f);
}

struct run {
    long hosts, max_down;
    /* planner (creation) */
    long groups, moves, instances;
    double estimate_s, makespan_est_s, lower_bound_s; /* simulated */
    /* measured */
    int completed;
    char state[32];
    double wall_s;          /* plan created → completed, real */
    double makespan_sim_s;  /* wall_s / scale */
    double register_s;      /* fleet start → every host up */
    double ferryd_cpu_s, ferryd_rss_mib, fleet_cpu_s;
    long events_total, events_plan, events_migration, events_host;
    long migrations_succeeded, reboots, checks;
    double sim_mig_mean_s;
    int stuck;
    char stuck_msg[STUCK_MAX][160];
    /* the bench's own API polls (real ms) */
    long polls, pages;
    double poll_p50_ms, poll_p99_ms, poll_max_ms, page_p99_ms;
    double load_start, load_end; /* 1-minute load average */
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of v[0..n) (sorted in place); 0 when n is 0. */
static double quantile(double *v, long n, double q)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    long k = (long)(q * (double)(n - 1) + 0.5);
    return v[k < n ? k : n - 1];
}

/* Counts the store's events by kind (read-only, ferryd stopped). */
static void count_events(const char *db, struct run *r)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h, "SELECT type, count(*) FROM events GROUP BY type", -1, &st, NULL) !=
            SQLITE_OK) {
        fprintf(stderr, "plan_fleet: cannot read events: %s\n", h ? sqlite3_errmsg(h) : "?");
        sqlite3_close(h);
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        long n = (long)sqlite3_column_int64(st, 1);
        r->events_total += n;
        if (t && strncmp(t, "plan.", 5) == 0)
            r->events_plan += n;
        else if (t && strncmp(t, "migration.", 10) == 0)
            r->events_migration += n;
        else if (t && strncmp(t, "host.", 5) == 0)
            r->events_host += n;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
}

static long per_source = 1; /* the plan's concurrency.per_source (and per_destination) */

static int run_one(long hosts, long groups, double scale, long timeout_s, long stuck_s,
                   long heartbeat_ms, const char *db_dir, struct run *r)
{
    memset(r, 0, sizeof(*r));
    r->hosts = hosts;
    r->max_down = hosts / groups > 0 ? hosts / groups : 1;
    char dir[] = "/tmp/ferry-planfleet-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    char conf[128], logp[128], tokp[128], db[128], summary[128], url[64], admin[300] = "",
         agent[300] = "";
    int port = ferryd_free_port(), fport = ferryd_free_port();
    snprintf(conf, sizeof(conf), "%s/ferryd.conf", dir);
    snprintf(logp, sizeof(logp), "%s/ferryd.log", dir);
    snprintf(tokp, sizeof(tokp), "%s/admin.token", dir);
    char dbdir[] = "/dev/shm/ferry-planfleet-db-XXXXXX";
    if (db_dir[0] && !mkdtemp(dbdir))
        return -1;
    snprintf(db, sizeof(db), "%s/ferryd.db", db_dir[0] ? dbdir : dir);
    snprintf(summary, sizeof(summary), "%s/fleet.json", dir);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "listen = 127.0.0.1:%d\ndb = %s\nbootstrap_token_file = %s\n"
            "heartbeat_interval_ms = %d\nheartbeat_missed = 6\nlog_level = warn\n"
            "max_migrations = 0\nmax_migrations_per_source = 0\nmax_migrations_per_destination = 0\n",
            port, db, tokp, (int)heartbeat_ms);
    fclose(f);
    if (ferryd_conf_add_token(conf, logp, "simfleet", "infra", "agent", agent,
                              sizeof(agent)) != 0)
        return -1;
    daemon_pid = ferryd_spawn(conf, logp);
    if (daemon_pid < 0 || ferryd_wait_health(url, &daemon_pid, FERRYD_T_START_TIMEOUT_MS) != 0 ||
        ferryd_read_line(tokp, admin, sizeof(admin)) != 0) {
        fprintf(stderr, "plan_fleet: ferryd did not start (log %s)\n", logp);
        return -1;
    }
    /* the simulated fleet */
    int64_t t_fleet = mono_ms();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char flog[160];
        snprintf(flog, sizeof(flog), "%s/fleet.log", dir);
        if (!freopen(flog, "a", stderr))
            _exit(127);
        struct fleet_opts o;
        fleet_opts_default(&o);
        o.coordinator = url;
        o.token = agent;
        o.label = "fleet=sim";
        o.summary_path = summary;
        o.hosts = (uint32_t)hosts;
        o.port = fport;
        o.time_scale = scale;
        struct ferr e = {0};
        int rc = fleet_run(&o, &e);
        if (rc != 0)
            fprintf(stderr, "fleet: %s\n", e.msg);
        _exit(rc ? 1 : 0);
    }
    setpgid(pid, pid);
    fleet_pid = pid;
    /* every host up (each registration carries its guests) */
    long up = 0;
    while (mono_ms() - t_fleet < 120000 && up < hosts) {
        json_t *o = NULL;
        up = 0;
        if (api(url, admin, "GET", "/v1/hosts", NULL, &o) == 200) {
            size_t i;
            json_t *h;
            json_array_foreach(json_object_get(o, "hosts"), i, h)
            {
                up += strcmp(jstr(h, "state"), "up") == 0;
                r->instances += (long)json_array_size(json_object_get(h, "instances"));
            }
            if (up < hosts)
                r->instances = 0;
        }
        json_decref(o);
        if (up < hosts)
            ferryd_sleep_ms(3000);
    }
    r->register_s = (double)(mono_ms() - t_fleet) / 1000.0;
    if (up < hosts) {
        fprintf(stderr, "plan_fleet: only %ld of %ld hosts up after 120 s\n", up, hosts);
        return -1;
    }
    /* the plan */
    json_t *b = json_pack("{s:s, s:i, s:{s:i, s:i, s:i}, s:{s:s, s:b, s:i}, s:{s:i, s:s}}",
                          "label", "fleet=sim", "max_down", (int)r->max_down, "concurrency",
                          "per_source", (int)per_source, "per_destination", (int)per_source,
                          "cluster", 0, "action",
                          "command", "sim-patch && reboot", "reboot", 1, "timeout_s", 600,
                          "health_check", "timeout_s", 120, "command", "sim-check"),
           *o = NULL;
    int64_t t0 = mono_ms();
    r->load_start = bench_loadavg1();
    int st = api(url, admin, "POST", "/v1/plans", b, &o);
    json_decref(b);
    if (st != 201) {
        fprintf(stderr, "plan_fleet: POST /v1/plans: %d %s\n", st,
                jstr(json_object_get(o, "error"), "message"));
        json_decref(o);
        return -1;
    }
    char id[80];
    snprintf(id, sizeof(id), "%s", jstr(o, "id"));
    r->groups = (long)json_integer_value(json_object_get(o, "groups"));
    r->moves = (long)json_integer_value(json_object_get(o, "moves"));
    r->estimate_s = (double)json_integer_value(json_object_get(o, "estimate_ms")) / 1000.0;
    json_decref(o);
    char path[128];
    snprintf(path, sizeof(path), "/v1/plans/%s", id);
    if (api(url, admin, "GET", path, NULL, &o) == 200) {
        const json_t *d = json_object_get(o, "plan");
        r->makespan_est_s = (double)json_integer_value(json_object_get(d, "makespan_ms")) / 1000.0;
        r->lower_bound_s =
            (double)json_integer_value(json_object_get(d, "lower_bound_ms")) / 1000.0;
    }
    json_decref(o);
    fprintf(stderr, "  %ld hosts, %ld guests: plan %s, %ld groups, %ld moves, estimate %.0f s "
                    "(simulated)\n",
            hosts, r->instances, id, r->groups, r->moves, r->estimate_s);
    /* poll the summary (hosts_limit=0) every POLL_MS; every PAGE_EVERY_MS
       walk the host list in pages of PAGE_HOSTS: a host whose step does not
       change for stuck_s is stuck */
    char **step = xcalloc((size_t)hosts + 1, sizeof(char *));
    int64_t *since = xcalloc((size_t)hosts + 1, sizeof(int64_t));
    long lat_cap = timeout_s * 1000 / POLL_MS + 16, page_cap = lat_cap;
    double *lat = xcalloc((size_t)lat_cap, sizeof(double)),
           *plat = xcalloc((size_t)page_cap, sizeof(double));
    int64_t last_print = 0, last_walk = 0;
    char sum_path[160];
    snprintf(sum_path, sizeof(sum_path), "%s?hosts_limit=0", path);
    while (mono_ms() - t0 < timeout_s * 1000) {
        o = NULL;
        int64_t q0 = mono_ms();
        int qst = api(url, admin, "GET", sum_path, NULL, &o);
        if (r->polls < lat_cap)
            lat[r->polls++] = (double)(mono_ms() - q0);
        if (qst == 200) {
            snprintf(r->state, sizeof(r->state), "%s", jstr(o, "state"));
            int64_t now = mono_ms();
            if (now - last_walk >= PAGE_EVERY_MS) {
                last_walk = now;
                r->stuck = 0;
                for (long off = 0; off < hosts; off += PAGE_HOSTS) {
                    char pp[200];
                    json_t *pg = NULL;
                    snprintf(pp, sizeof(pp), "%s?hosts_offset=%ld&hosts_limit=%d", path, off,
                             PAGE_HOSTS);
                    int64_t p0 = mono_ms();
                    int pst = api(url, admin, "GET", pp, NULL, &pg);
                    if (r->pages < page_cap)
                        plat[r->pages++] = (double)(mono_ms() - p0);
                    size_t i;
                    json_t *x;
                    if (pst == 200)
                        json_array_foreach(json_object_get(pg, "hosts"), i, x)
                        {
                            long k = off + (long)i;
                            if (k >= hosts)
                                break;
                            char cur[64];
                            snprintf(cur, sizeof(cur), "%s/%s", jstr(x, "step"), jstr(x, "state"));
                            if (!step[k] || strcmp(step[k], cur) != 0) {
                                free(step[k]);
                                step[k] = xstrdup(cur);
                                since[k] = now;
                            } else if (strcmp(jstr(x, "step"), "pending") != 0 &&
                                       strcmp(jstr(x, "step"), "returned") != 0 &&
                                       now - since[k] > stuck_s * 1000) {
                                if (r->stuck < STUCK_MAX)
                                    snprintf(r->stuck_msg[r->stuck], sizeof(r->stuck_msg[0]),
                                             "%s at %s for %.0f s", jstr(x, "host"), cur,
                                             (double)(now - since[k]) / 1000.0);
                                r->stuck++;
                            }
                        }
                    json_decref(pg);
                }
            }
            if (now - last_print > 15000) {
                fprintf(stderr, "  %5.0f s  %-9s %5.1f %%  group %lld  returned %lld  stuck %d  "
                                "poll %.0f ms\n",
                        (double)(now - t0) / 1000.0, r->state,
                        json_number_value(json_object_get(o, "progress_pct")),
                        (long long)json_integer_value(json_object_get(o, "current_group")),
                        (long long)json_integer_value(
                            json_object_get(json_object_get(o, "hosts_by_step"), "returned")),
                        r->stuck, lat[r->polls - 1]);
                last_print = now;
            }
        }
        json_decref(o);
        if (!strcmp(r->state, "completed") || !strcmp(r->state, "paused") ||
            !strcmp(r->state, "aborted"))
            break;
        int64_t spent = mono_ms() - q0;
        if (spent < POLL_MS)
            ferryd_sleep_ms((int)(POLL_MS - spent));
    }
    r->poll_max_ms = r->polls ? quantile(lat, r->polls, 1.0) : 0;
    r->poll_p50_ms = quantile(lat, r->polls, 0.5);
    r->poll_p99_ms = quantile(lat, r->polls, 0.99);
    r->page_p99_ms = quantile(plat, r->pages, 0.99);
    free(lat);
    free(plat);
    for (long i = 0; i < hosts; i++)
        free(step[i]);
    free(step);
    free(since);
    r->load_end = bench_loadavg1();
    r->completed = strcmp(r->state, "completed") == 0;
    r->wall_s = (double)(mono_ms() - t0) / 1000.0;
    r->makespan_sim_s = r->wall_s / scale;
    proc_usage(daemon_pid, &r->ferryd_cpu_s, &r->ferryd_rss_mib);
    double frss = 0;
    proc_usage(fleet_pid, &r->fleet_cpu_s, &frss);
    ferryd_kill(&fleet_pid, SIGTERM, 10000);
    ferryd_kill(&daemon_pid, SIGTERM, 10000);
    count_events(db, r);
    json_t *fs = json_load_file(summary, 0, NULL);
    r->migrations_succeeded = (long)json_integer_value(json_object_get(fs, "migrations_succeeded"));
    r->reboots = (long)json_integer_value(json_object_get(fs, "reboots"));
    r->checks = (long)json_integer_value(json_object_get(fs, "checks"));
    r->sim_mig_mean_s = json_number_value(json_object_get(fs, "sim_migration_ms_mean")) / 1000.0;
    json_decref(fs);
    if (db_dir[0]) {
        char *cmd = xasprintf("rm -rf '%s'", dbdir);
        if (system(cmd) != 0)
            fprintf(stderr, "plan_fleet: could not remove %s\n", dbdir);
        free(cmd);
    }
    fprintf(stderr,
            "  %ld hosts: %s in %.1f s (simulated %.0f s; planner estimate %.0f s, lower bound "
            "%.0f s), %.2f migrations/s, ferryd CPU %.1f s, peak RSS %.1f MiB, %ld events, "
            "%d stuck, summary poll p99 %.0f ms, load %.1f → %.1f\n",
            hosts, r->state, r->wall_s, r->makespan_sim_s, r->estimate_s, r->lower_bound_s,
            r->wall_s > 0 ? (double)r->migrations_succeeded / r->wall_s : 0, r->ferryd_cpu_s,
            r->ferryd_rss_mib, r->events_total, r->stuck, r->poll_p99_ms, r->load_start,
            r->load_end);
    if (r->completed) {
        char *cmd = xasprintf("rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "plan_fleet: could not remove %s\n", dir);
        free(cmd);
    } else {
        fprintf(stderr, "plan_fleet: plan %s ended %s; logs kept in %s\n", id, r->state, dir);
    }
    return 0;
}

static void print_run(const char *what, const struct run *r)
{
    printf("%-22s %6ld %7ld %4ld %6ld %8.1f %9.0f %9.0f %9.0f %6.2f %6.2f %6.2f %7.1f %7.1f "
           "%7.0f %8ld %6d %9.1f  %s\n",
           what, r->hosts, r->instances, r->groups, r->moves, r->wall_s, r->makespan_sim_s,
           r->estimate_s, r->lower_bound_s, r->estimate_s > 0 ? r->makespan_sim_s / r->estimate_s : 0,
           r->lower_bound_s > 0 ? r->makespan_sim_s / r->lower_bound_s : 0,
           r->wall_s > 0 ? (double)r->migrations_succeeded / r->wall_s : 0, r->ferryd_cpu_s,
           r->ferryd_rss_mib, r->poll_p99_ms, r->events_total, r->stuck, r->load_end, r->state);
}

static void json_run(FILE *f, const char *prefix, const struct run *r)
{
    fprintf(f,
            "\"%shosts\":%ld,\"%sinstances\":%ld,\"%sgroups\":%ld,\"%smigrations_planned\":%ld,"
            "\"%smigrations_succeeded\":%ld,\"%sreboots\":%ld,\"%shealth_checks\":%ld,"
            "\"%scompleted\":%d,\"%swall_s\":%.1f,\"%smakespan_sim_s\":%.0f,"
            "\"%splanner_estimate_sim_s\":%.0f,\"%splanner_makespan_sim_s\":%.0f,"
            "\"%slower_bound_sim_s\":%.0f,\"%smakespan_over_estimate\":%.3f,"
            "\"%smakespan_over_lower_bound\":%.3f,\"%sferryd_cpu_s\":%.1f,"
            "\"%sferryd_peak_rss_mib\":%.1f,\"%sfleet_cpu_s\":%.1f,\"%sevents\":%ld,"
            "\"%sevents_plan\":%ld,\"%sevents_migration\":%ld,\"%sevents_host\":%ld,"
            "\"%sstuck_hosts\":%d,\"%sregister_s\":%.1f,\"%ssim_migration_mean_s\":%.1f,"
            "\"%smigrations_per_s\":%.2f,\"%ssummary_polls\":%ld,\"%ssummary_poll_p50_ms\":%.0f,"
            "\"%ssummary_poll_p99_ms\":%.0f,\"%ssummary_poll_max_ms\":%.0f,"
            "\"%shost_page_p99_ms\":%.0f,\"%sload_1m_start\":%.2f,\"%sload_1m_end\":%.2f",
            prefix, r->hosts, prefix, r->instances, prefix, r->groups, prefix, r->moves, prefix,
            r->migrations_succeeded, prefix, r->reboots, prefix, r->checks, prefix, r->completed,
            prefix, r->wall_s, prefix, r->makespan_sim_s, prefix, r->estimate_s, prefix,
            r->makespan_est_s, prefix, r->lower_bound_s, prefix,
            r->estimate_s > 0 ? r->makespan_sim_s / r->estimate_s : 0, prefix,
            r->lower_bound_s > 0 ? r->makespan_sim_s / r->lower_bound_s : 0, prefix,
            r->ferryd_cpu_s, prefix, r->ferryd_rss_mib, prefix, r->fleet_cpu_s, prefix,
            r->events_total, prefix, r->events_plan, prefix, r->events_migration, prefix,
            r->events_host, prefix, r->stuck, prefix, r->register_s, prefix, r->sim_mig_mean_s,
            prefix, r->wall_s > 0 ? (double)r->migrations_succeeded / r->wall_s : 0, prefix,
            r->polls, prefix, r->poll_p50_ms, prefix, r->poll_p99_ms, prefix, r->poll_max_ms,
            prefix, r->page_p99_ms, prefix, r->load_start, prefix, r->load_end);
}

int main(void)
{
    long hosts = bench_env_long("FERRY_BENCH_FLEET_HOSTS", 1000, 2, FLEET_HOSTS_MAX);
    long base_hosts = bench_env_long("FERRY_BENCH_FLEET_BASE_HOSTS", 100, 0, FLEET_HOSTS_MAX);
    long groups = bench_env_long("FERRY_BENCH_FLEET_GROUPS", 5, 1, 1000);
    long scale_milli = bench_env_long("FERRY_BENCH_FLEET_SCALE_MILLI", 100, 1, 1000);
    long timeout_s = bench_env_long("FERRY_BENCH_FLEET_TIMEOUT_S", 900, 30, 7200);
    long stuck_s = bench_env_long("FERRY_BENCH_FLEET_STUCK_S", 120, 10, 7200);
    long heartbeat_ms = bench_env_long("FERRY_BENCH_FLEET_HEARTBEAT_MS", 10000, 1000, 60000);
    per_source = bench_env_long("FERRY_BENCH_FLEET_PER_SOURCE", 1, 1, 64);
    /* the store on tmpfs by default: fsync is then free, and the figures are
       ferryd's own work (FERRY_BENCH_FLEET_DB_DISK=1: the store in /tmp) */
    const char *db_dir = bench_env_long("FERRY_BENCH_FLEET_DB_DISK", 0, 0, 1) ? "" : "/dev/shm";
    double scale = (double)scale_milli / 1000.0;
    if (ferryd_guard(&daemon_pid) != 0 || ferryd_guard(&fleet_pid) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    char mach[256];
    bench_machine(mach, sizeof(mach));
    printf("plan_fleet: rolling maintenance of simulated hosts through the real ferryd\n"
           "(executor, migration orchestration, SQLite store); simulated agents in one process,\n"
           "pre-copy model durations played back at %.3f real s per simulated s; %ld groups\n"
           "(max_down = hosts / groups), per_source = per_destination = %ld, action + reboot +\n"
           "health-check command; heartbeat (and re-registration) every %ld ms; store %s\n"
           "machine: %s\n\n",
           scale, groups, per_source, heartbeat_ms, db_dir[0] ? "on tmpfs (/dev/shm)" : "in /tmp",
           mach);
    struct run base, full;
    int have_base = 0, rc = 0;
    if (base_hosts > 0) {
        fprintf(stderr, "baseline run: %ld hosts\n", base_hosts);
        if (run_one(base_hosts, groups, scale, timeout_s, stuck_s, heartbeat_ms, db_dir, &base) == 0)
            have_base = 1;
        else
            rc = 1;
        ferryd_kill(&fleet_pid, SIGKILL, 10000);
        ferryd_kill(&daemon_pid, SIGKILL, 10000);
    }
    fprintf(stderr, "run: %ld hosts\n", hosts);
    if (run_one(hosts, groups, scale, timeout_s, stuck_s, heartbeat_ms, db_dir, &full) != 0) {
        ferryd_kill(&fleet_pid, SIGKILL, 10000);
        ferryd_kill(&daemon_pid, SIGKILL, 10000);
        fprintf(stderr, "plan_fleet: the %ld-host run failed to start\n", hosts);
        return 1;
    }
    printf("%-22s %6s %7s %4s %6s %8s %9s %9s %9s %6s %6s %6s %7s %7s %7s %8s %6s %9s  %s\n",
           "run", "hosts", "guests", "grps", "moves", "wall_s", "span_sim", "est_sim", "lb_sim",
           "span/e", "span/lb", "mig/s", "cpu_s", "rss_MiB", "p99_ms", "events", "stuck", "load_1m",
           "state");
    if (have_base)
        print_run("baseline (small fleet)", &base);
    print_run("fleet", &full);
    printf("\nsimulated seconds (_sim) = wall / %.3f; est = planner estimate (migrations under the\n"
           "limits + 30 s per group for action, reboot and check); lb = planner lower bound of the\n"
           "migration time alone; time compressed %.0fx (simulated agents only: ferryd, its\n"
           "store, API and HTTP run in real time). mig/s = migrations succeeded per wall second;\n"
           "p99_ms = the bench's summary polls (GET /v1/plans/ID?hosts_limit=0, every %d ms;\n"
           "p50 %.0f ms, max %.0f ms; host-list pages of %d every %d s: p99 %.0f ms); load_1m at\n"
           "the end (%.1f at the start). fleet: %ld migrations succeeded, %ld reboots, %ld health\n"
           "checks, mean simulated migration %.1f s; events: %ld plan.*, %ld migration.*, %ld host.*\n",
           scale, 1.0 / scale, POLL_MS, full.poll_p50_ms, full.poll_max_ms, PAGE_HOSTS,
           PAGE_EVERY_MS / 1000, full.page_p99_ms, full.load_start, full.migrations_succeeded,
           full.reboots, full.checks, full.sim_mig_mean_s, full.events_plan,
           full.events_migration, full.events_host);
    for (int i = 0; i < full.stuck && i < STUCK_MAX; i++)
        printf("stuck: %s\n", full.stuck_msg[i]);
    if (have_base && base.ferryd_cpu_s > 0)
        printf("scaling: %.1fx hosts -> %.1fx ferryd CPU, %.1fx peak RSS, %.1fx wall\n",
               (double)full.hosts / (double)base.hosts, full.ferryd_cpu_s / base.ferryd_cpu_s,
               full.ferryd_rss_mib / base.ferryd_rss_mib, full.wall_s / base.wall_s);
    if (system("mkdir -p bench/out") != 0)
        fprintf(stderr, "plan_fleet: cannot create bench/out\n");
    FILE *f = fopen("bench/out/plan_fleet.json", "w");
    if (f) {
        fprintf(f, "{\"machine\":\"%s\",\"figures\":{\"time_scale\":%.3f,\"heartbeat_ms\":%ld,"
                   "\"store_on_tmpfs\":%d,",
                mach, scale, heartbeat_ms, db_dir[0] != 0);
        json_run(f, "", &full);
        fprintf(f, "},\"baselines\":{");
        if (have_base)
            json_run(f, "small_", &base);
        fprintf(f, "}}\n");
        fclose(f);
    }
    if (!full.completed || (have_base && !base.completed))
        rc = 1;
    return rc;
}

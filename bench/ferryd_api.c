/* ferryd_api — API read latency of ferryd with 10,000 migration records
 * while 50 of them are running and their progress is being written.
 *
 * What it answers: how fast does ferryd answer the reads operators,
 * dashboards and tenants make all day (show one migration, list a page)
 * when its store holds 10,000 records and migrations are in progress, under
 * 64 concurrent clients; target p99 < 10 ms.
 *
 * How: the records are inserted straight through the store API
 * (store_migration_insert, one transaction) into a fresh SQLite file in a
 * temporary directory; the newest ACTIVE of them are running migrations
 * whose source hosts point at an agent endpoint this benchmark serves (a
 * libevent HTTP server in a thread, answering GET /v1/migrations/AID with a
 * running agent record whose progress advances with time). The real ferryd
 * binary is started on that file (127.0.0.1, an ephemeral port) with a
 * bootstrap admin token and a project member's token: it resumes the
 * running migrations and polls their source agent every 500 ms, writing
 * each answer through its own progress path (store update plus a
 * migration.progress event at most once a second per migration; the
 * answers of one window group-committed in one transaction) — the write
 * load a busy ferryd carries. wrk (Debian
 * package) drives five runs with the same settings (2 threads, 64
 * connections), all while the progress writes go on:
 *   - baseline: GET /v1/health (no store, no policy), admin token;
 *   - show: GET /v1/migrations/ID, IDs drawn at random by a wrk Lua script;
 *   - list: GET /v1/migrations?limit=50 (admin: every record visible; the
 *     page is the newest records, i.e. the running ones);
 *   - member list: the same as a member of one project of 20 (the policy
 *     filters: the page is that project's 50 newest of 10,000);
 *   - member list, ?project=: the same with the project filter in SQL.
 * Then the same five again at a fixed offered rate (FERRY_BENCH_API_RATE
 * requests/s in total, default 2000): a wrk Lua delay() paces each of the
 * 64 connections to rate/64 requests/s. wrk is closed-loop in both: at
 * saturation latency is the clients divided by the throughput (queueing),
 * so that row reads as capacity; the paced row is the latency a client sees
 * at a stated load. wrk does not correct coordinated omission: a stalled
 * answer delays that connection's next request instead of counting the
 * requests that were due meanwhile, so the paced p99 can read low during a
 * stall (the achieved rate below the offered one shows it).
 * The target figure (p99 < 10 ms) is the paced run's p99 of the four
 * reads; the saturation verdict is printed beside it.
 * Beside wrk's latency it prints ferryd's own p99 handling time (the
 * bucket of its ferry_api_request_duration_seconds histogram, scraped from
 * /metrics before and after each run, that holds the 99th percentile):
 * what the handlers took, against what the client saw — the difference is
 * waiting (socket, scheduler, wrk itself).
 * Beside latency it reports ferryd's CPU time per request (utime + stime
 * over the run, from /proc, divided by the requests answered) and the
 * progress writes ferryd made (the sum of the rows' revisions) and the
 * transactions it committed for them (its /metrics, when it counts them).
 * Prints a table and writes bench/out/ferryd_api.json. Environment:
 * BUILD (where ferryd is, default build), FERRY_BENCH_API_RECORDS (10000),
 * FERRY_BENCH_API_ACTIVE (50), FERRY_BENCH_API_DURATION_S (10, per run; ten
 * runs), FERRY_BENCH_API_CONNS (64), FERRY_BENCH_API_RATE (2000),
 * FERRY_BENCH_API_THREADS (ferryd's read_threads; unset: its default). */
#include <errno.h>
#include <math.h>
#include <event2/buffer.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/lib/benchenv.h"
#include "../tests/lib/ferryd.h"
#include "../tests/lib/standin.h"

#include "coord/store.h"
#include "util/httpc.h"

#define PROJECTS 20 /* record i belongs to project-(i % 20) */
#define HOSTS 40    /* record i moves host-(i % 40) → host-((i + 1) % 40) */

static pid_t daemon_pid;
static char dir[64];

/* Inserts HOSTS hosts whose agent is at agent_url and n migration records
 * (ids mig-bench-00000 …, created a minute apart) in one transaction: the
 * newest `active` are running (agent migration id agent-mig-NNNNN), the
 * others finished. Returns 0 or -1 with a message on stderr. */
static int fill_store(const char *db, long n, long active, const char *agent_url)
{
    struct store *st = NULL;
    struct ferr e = {0};
    if (store_open(db, &st, &e) != 0 || store_tx_begin(st, &e) != 0) {
        fprintf(stderr, "ferryd_api: store: %s\n", e.msg);
        store_close(st);
        return -1;
    }
    for (int h = 0; h < HOSTS; h++) {
        struct store_host sh = {0};
        snprintf(sh.name, sizeof(sh.name), "host-%02d", h);
        snprintf(sh.url, sizeof(sh.url), "%s", agent_url);
        sh.ram_mib = 262144;
        sh.vcpus = 64;
        snprintf(sh.state, sizeof(sh.state), "up");
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        sh.last_heartbeat_ms = sh.registered_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        int created = 0;
        if (store_host_register(st, &sh, NULL, 0, &created, &e) != 0) {
            fprintf(stderr, "ferryd_api: host %s: %s\n", sh.name, e.msg);
            store_close(st);
            return -1;
        }
    }
    static const char *const states[] = {"succeeded", "succeeded", "succeeded", "failed",
                                         "cancelled"};
    int64_t t0 = 1767225600000; /* 2026-01-01, ms since epoch */
    char detail[128];
    for (long i = 0; i < n; i++) {
        struct store_migration m = {0};
        snprintf(m.id, sizeof(m.id), "mig-bench-%05ld", i);
        snprintf(m.instance, sizeof(m.instance), "vm-%05ld", i);
        snprintf(m.source, sizeof(m.source), "host-%02ld", i % 40);
        snprintf(m.destination, sizeof(m.destination), "host-%02ld", (i + 1) % 40);
        bool running = i >= n - active;
        snprintf(m.state, sizeof(m.state), "%s", running ? "running" : states[i % 5]);
        snprintf(m.phase, sizeof(m.phase), "%s", running ? "running" : "completed");
        snprintf(m.user, sizeof(m.user), "user%ld", i % 7);
        snprintf(m.project, sizeof(m.project), "project-%02ld", i % PROJECTS);
        m.policy_json = "{\"name\":\"default\"}";
        m.limits_json = "{\"downtime_ms\":300,\"max_bandwidth_bps\":1073741824}";
        m.mem_total_bytes = (uint64_t)(1 + i % 16) << 30;
        m.progress_pct = running ? 0.0 : 100.0;
        m.eta_ms = m.eta_low_ms = m.eta_high_ms = -1;
        m.downtime_ms = running ? -1 : 20 + i % 200;
        if (running) {
            snprintf(detail, sizeof(detail), "{\"agent_migration\":\"agent-mig-%05ld\"}", i);
            m.detail_json = detail;
        }
        m.created_ms = t0 + i * 60000;
        m.updated_ms = m.created_ms + 30000;
        if (store_migration_insert(st, &m, &e) != 0) {
            fprintf(stderr, "ferryd_api: insert %s: %s\n", m.id, e.msg);
            store_close(st);
            return -1;
        }
    }
    int rc = store_tx_commit(st, &e);
    if (rc)
        fprintf(stderr, "ferryd_api: commit: %s\n", e.msg);
    store_close(st);
    return rc ? -1 : 0;
}

/* ---- the agent endpoint ferryd polls --------------------------------------- */

static struct standin agent;

/* GET /v1/migrations/AID: a running agent record. Progress advances 1 % per
 * 4 s and stays below 100 % (the migrations never finish during the run);
 * the figures differ at every poll, as a live migration's do. */
static void agent_body(struct evbuffer *b, const char *aid, double t_s, void *arg)
{
    (void)arg;
    double pct = t_s / 4.0 > 99.0 ? 99.0 : t_s / 4.0;
    long long total = 8LL << 30, rem = (long long)((double)total * (1.0 - pct / 100.0));
    long long eta = (long long)((100.0 - pct) * 4000.0);
    evbuffer_add_printf(b,
                        "{\"id\":\"%s\",\"state\":\"running\",\"estimate\":{\"progress_pct\":%.3f,"
                        "\"eta_ms\":%lld,\"eta_low_ms\":%lld,\"eta_high_ms\":%lld},"
                        "\"last_sample\":{\"ram_total\":%lld,\"ram_remaining\":%lld,"
                        "\"throttle_pct\":%d,\"dirty_pages_rate\":%ld},\"stalls\":[]}",
                        aid, pct, eta, eta * 8 / 10, eta * 12 / 10, total, rem, (int)pct / 10,
                        20000L + (long)(t_s * 100) % 5000);
}

/* ferryd's CPU time so far (utime + stime), µs; -1 when unreadable. */
static double daemon_cpu_us(void)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)daemon_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t got = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[got] = '\0';
    const char *p = strrchr(buf, ')'); /* after the command name */
    unsigned long ut = 0, stt = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
        return -1;
    return (double)(ut + stt) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* Progress writes ferryd made: the sum of the migration rows' revisions
 * (each store update raises one by one), read through a second connection. */
static long progress_writes(const char *db)
{
    sqlite3 *d = NULL;
    sqlite3_stmt *st = NULL;
    long n = -1;
    if (sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(d, "SELECT sum(rev) FROM migrations", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(d);
    return n;
}

/* ferryd's committed orchestration transactions so far (/metrics
 * ferry_store_commits_total, progress + lifecycle); -1 when it does not
 * count them (an older ferryd). */
static double daemon_commits(const char *url)
{
    struct httpc_resp r = {0};
    struct ferr e = {0};
    if (httpc_request(url, "GET", "/metrics", NULL, NULL, 10000, &r, &e) != 0)
        return -1;
    double sum = -1;
    static const char *const names[] = {"ferry_store_commits_total{kind=\"progress\"} ",
                                        "ferry_store_commits_total{kind=\"lifecycle\"} "};
    for (size_t i = 0; r.body && i < 2; i++) {
        const char *p = strstr(r.body, names[i]);
        if (p)
            sum = (sum < 0 ? 0 : sum) + strtod(p + strlen(names[i]), NULL);
    }
    httpc_resp_free(&r);
    return sum;
}

/* ferryd's own latency histogram of one route class (GET, status 200):
 * ferry_api_request_duration_seconds from /metrics — the time from the
 * handler's start to its reply queued, on the loop or a read thread. */
#define HIST_MAX 20
struct api_hist {
    int n;               /* buckets read */
    double le[HIST_MAX]; /* upper bounds, s (+Inf as HUGE_VAL) */
    double cnt[HIST_MAX]; /* cumulative counts */
};

static int api_hist(const char *url, const char *route, struct api_hist *h)
{
    struct httpc_resp r = {0};
    struct ferr e = {0};
    memset(h, 0, sizeof(*h));
    if (httpc_request(url, "GET", "/metrics", NULL, NULL, 10000, &r, &e) != 0)
        return -1;
    char prefix[160];
    snprintf(prefix, sizeof(prefix),
             "ferry_api_request_duration_seconds_bucket{route=\"%s\",method=\"GET\","
             "status=\"200\",le=\"",
             route);
    for (const char *p = r.body ? strstr(r.body, prefix) : NULL; p && h->n < HIST_MAX;
         p = strstr(p + 1, prefix)) {
        const char *v = p + strlen(prefix);
        double le = strncmp(v, "+Inf", 4) == 0 ? HUGE_VAL : strtod(v, NULL);
        const char *c = strstr(v, "} ");
        if (!c)
            break;
        h->le[h->n] = le;
        h->cnt[h->n++] = strtod(c + 2, NULL);
    }
    httpc_resp_free(&r);
    return 0; /* no series yet: no such request answered so far */
}

/* The upper bound (ms) of the bucket holding quantile q of the requests
 * counted between a and b (a without buckets: none before); -1 when none
 * or unknown, HUGE_VAL past the last finite bound. */
static double hist_q_ms(const struct api_hist *a, const struct api_hist *b, double q)
{
    if (b->n == 0 || (a->n != 0 && a->n != b->n))
        return -1;
    double total = b->cnt[b->n - 1] - (a->n ? a->cnt[a->n - 1] : 0);
    if (total <= 0)
        return -1;
    for (int i = 0; i < b->n; i++)
        if (b->cnt[i] - (a->n ? a->cnt[i] : 0) >= q * total)
            return b->le[i] * 1000.0;
    return -1;
}

/* One wrk run's figures. */
struct wrk_result {
    double p50_ms, p90_ms, p99_ms; /* latency percentiles, ms */
    double rps;            /* requests/s */
    long requests;         /* completed requests */
    long non2xx;           /* answers other than 2xx/3xx */
    long sock_errors;      /* connect+read+write+timeout */
    double cpu_us_per_req; /* ferryd CPU (user + system) per answered request, µs */
    double net_us_per_req; /* ... less the background (progress) CPU of the same time, µs */
    double own_p99_ms;     /* ferryd's own handling time, p99 bucket's upper bound, ms;
                              -1 unknown */
};

static double bg_cpu_us_per_s; /* ferryd's CPU without requests (progress writes), µs/s */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "1.23ms" / "456.00us" / "1.02s" → ms. */
static double parse_dur_ms(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (strncmp(end, "us", 2) == 0)
        return v / 1000.0;
    if (strncmp(end, "ms", 2) == 0)
        return v;
    if (strncmp(end, "s", 1) == 0)
        return v * 1000.0;
    if (strncmp(end, "m", 1) == 0)
        return v * 60000.0;
    return -1;
}

/* Runs wrk against url+path (script: optional Lua file) and parses its
 * --latency report. Returns 0, or -1 when wrk did not run or its output
 * lacked the figures (printed to stderr). */
static int run_wrk(const char *url, const char *path, const char *script, const char *token,
                   long conns, long dur_s, struct wrk_result *r)
{
    char route[48] = "";
    if (strncmp(path, "/v1/health", 10) == 0)
        snprintf(route, sizeof(route), "health");
    else if (strncmp(path, "/v1/migrations/", 15) == 0)
        snprintf(route, sizeof(route), "migrations_item");
    else
        snprintf(route, sizeof(route), "migrations");
    struct api_hist h0, h1;
    int hist_ok = api_hist(url, route, &h0) == 0;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "wrk -t2 -c%ld -d%lds --timeout 30s --latency %s%s -H 'Authorization: Bearer %s' "
             "'%s%s' 2>&1",
             conns, dur_s, script ? "-s " : "", script ? script : "", token, url, path);
    double cpu0 = daemon_cpu_us(), w0 = mono_s();
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    memset(r, 0, sizeof(*r));
    r->p50_ms = r->p90_ms = r->p99_ms = r->rps = -1;
    char line[512];
    int in_dist = 0;
    while (fgets(line, sizeof(line), p)) {
        char a[64], b[64];
        long x1, x2, x3, x4;
        if (strstr(line, "Latency Distribution"))
            in_dist = 1;
        else if (in_dist && sscanf(line, " %63s %63s", a, b) == 2) {
            if (strcmp(a, "50%") == 0)
                r->p50_ms = parse_dur_ms(b);
            else if (strcmp(a, "90%") == 0)
                r->p90_ms = parse_dur_ms(b);
            else if (strcmp(a, "99%") == 0) {
                r->p99_ms = parse_dur_ms(b);
                in_dist = 0;
            }
        }
        if (sscanf(line, " %ld requests in", &x1) == 1)
            r->requests = x1;
        if (sscanf(line, "Requests/sec: %lf", &r->rps) == 1)
            continue;
        if (sscanf(line, " Non-2xx or 3xx responses: %ld", &x1) == 1)
            r->non2xx = x1;
        if (sscanf(line, " Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &x1, &x2,
                   &x3, &x4) == 4)
            r->sock_errors = x1 + x2 + x3 + x4;
    }
    int st = pclose(p);
    double cpu1 = daemon_cpu_us(), w1 = mono_s();
    r->own_p99_ms = hist_ok && api_hist(url, route, &h1) == 0 ? hist_q_ms(&h0, &h1, 0.99) : -1;
    r->cpu_us_per_req = cpu0 >= 0 && cpu1 >= 0 && r->requests > 0
                            ? (cpu1 - cpu0) / (double)r->requests
                            : -1;
    r->net_us_per_req = r->cpu_us_per_req >= 0
                            ? (cpu1 - cpu0 - bg_cpu_us_per_s * (w1 - w0)) / (double)r->requests
                            : -1;
    if (st != 0 || r->p50_ms < 0 || r->p99_ms < 0 || r->rps < 0) {
        fprintf(stderr, "ferryd_api: wrk failed or printed no figures (%s)\n", cmd);
        return -1;
    }
    return 0;
}

/* Writes the figures of r as ,"NAME_..." members; latencies are null when
 * no request completed (wrk then prints 0, which would read as fast). */
static void json_row(FILE *f, const char *name, const struct wrk_result *r)
{
    if (r->requests > 0)
        fprintf(f, ",\"%s_p50_ms\":%.3f,\"%s_p99_ms\":%.3f", name, r->p50_ms, name, r->p99_ms);
    else
        fprintf(f, ",\"%s_p50_ms\":null,\"%s_p99_ms\":null", name, name);
    if (r->own_p99_ms >= 0 && r->own_p99_ms < 1e9)
        fprintf(f, ",\"%s_ferryd_own_p99_le_ms\":%.3f", name, r->own_p99_ms);
    else
        fprintf(f, ",\"%s_ferryd_own_p99_le_ms\":null", name);
    fprintf(f, ",\"%s_requests_per_s\":%.1f,\"%s_requests\":%ld,\"%s_non2xx\":%ld,"
            "\"%s_socket_errors\":%ld,\"%s_ferryd_cpu_us_per_request\":%.1f,"
            "\"%s_ferryd_net_cpu_us_per_request\":%.1f",
            name, r->rps, name, r->requests, name, r->non2xx, name, r->sock_errors, name,
            r->cpu_us_per_req, name, r->net_us_per_req);
}

int main(void)
{
    long records = bench_env_long("FERRY_BENCH_API_RECORDS", 10000, 100, 100000);
    long active = bench_env_long("FERRY_BENCH_API_ACTIVE", 50, 0, 1000);
    long dur_s = bench_env_long("FERRY_BENCH_API_DURATION_S", 10, 1, 60);
    long conns = bench_env_long("FERRY_BENCH_API_CONNS", 64, 1, 1000);
    long rate = bench_env_long("FERRY_BENCH_API_RATE", 2000, 10, 1000000);
    long threads = bench_env_long("FERRY_BENCH_API_THREADS", -1, -1, 64);
    if (active > records)
        active = records;
    if (system("command -v wrk >/dev/null 2>&1") != 0) {
        fprintf(stderr, "ferryd_api: wrk not found (apt-get install wrk; make deps does it)\n");
        return 1;
    }
    snprintf(dir, sizeof(dir), "/tmp/ferry-bench-api-XXXXXX");
    if (ferryd_tmpdir(dir) != 0 || ferryd_guard(&daemon_pid) != 0) {
        perror("mkdtemp");
        return 1;
    }
    char db[128], conf[128], logpath[128], tokpath[128], lua[128], lua_paced[128],
        lua_show_paced[128], url[64];
    snprintf(db, sizeof(db), "%s/ferryd.db", dir);
    snprintf(conf, sizeof(conf), "%s/ferryd.conf", dir);
    snprintf(logpath, sizeof(logpath), "%s/ferryd.log", dir);
    snprintf(tokpath, sizeof(tokpath), "%s/admin.token", dir);
    snprintf(lua, sizeof(lua), "%s/show.lua", dir);
    snprintf(lua_paced, sizeof(lua_paced), "%s/paced.lua", dir);
    snprintf(lua_show_paced, sizeof(lua_show_paced), "%s/show_paced.lua", dir);

    if (standin_start(&agent, agent_body, NULL) != 0) {
        fprintf(stderr, "ferryd_api: cannot start the agent endpoint\n");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (fill_store(db, records, active, agent.url) != 0)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double fill_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    int port = ferryd_free_port();
    FILE *f = fopen(conf, "w");
    if (port < 0 || !f)
        return 1;
    /* Heartbeats: none come from the agent endpoint; an hour's grace keeps
     * the hosts up (a down source would stop the polls). */
    fprintf(f,
            "listen = 127.0.0.1:%d\ndb = %s\nbootstrap_token_file = %s\nlog_level = warn\n"
            "heartbeat_interval_ms = 3600000\n",
            port, db, tokpath);
    if (threads >= 0)
        fprintf(f, "read_threads = %ld\n", threads);
    fclose(f);
    /* Pacing: each connection waits conns/rate s after an answer before its
     * next request (wrk's delay(), ms), so the offered total is ~rate. */
    double delay_ms = (double)conns * 1000.0 / (double)rate;
    for (int v = 0; v < 3; v++) {
        f = fopen(v == 0 ? lua : v == 1 ? lua_paced : lua_show_paced, "w");
        if (!f)
            return 1;
        if (v != 1)
            fprintf(f,
                    "math.randomseed(42)\n"
                    "request = function()\n"
                    "  return wrk.format(\"GET\", string.format(\"/v1/migrations/mig-bench-%%05d\", "
                    "math.random(0, %ld)))\n"
                    "end\n",
                    records - 1);
        if (v != 0)
            fprintf(f, "delay = function()\n  return %.3f\nend\n", delay_ms);
        fclose(f);
    }
    const char *tenant_project = "project-03";
    char member[300];
    if (ferryd_conf_add_token(conf, logpath, "tenant", tenant_project, "member", member,
                              sizeof(member)) != 0) {
        fprintf(stderr, "ferryd_api: cannot add the member token (log: %s)\n", logpath);
        return 1;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    daemon_pid = ferryd_spawn(conf, logpath);
    if (daemon_pid < 0 || ferryd_wait_health(url, &daemon_pid, FERRYD_T_START_TIMEOUT_MS) != 0) {
        fprintf(stderr, "ferryd_api: ferryd did not start (log: %s)\n", logpath);
        return 1;
    }
    char token[300] = "";
    if (ferryd_read_line(tokpath, token, sizeof(token)) != 0) {
        fprintf(stderr, "ferryd_api: no bootstrap token in %s\n", tokpath);
        return 1;
    }

    char member_path[128];
    snprintf(member_path, sizeof(member_path), "/v1/migrations?limit=50&project=%s",
             tenant_project);
    /* ferryd's own CPU while nothing but the progress writes runs (after a
     * second for the polls to settle). */
    ferryd_sleep_ms(1000);
    double bc0 = daemon_cpu_us(), bw0 = mono_s();
    ferryd_sleep_ms(3000);
    double bc1 = daemon_cpu_us(), bw1 = mono_s();
    bg_cpu_us_per_s = bc0 >= 0 && bc1 >= bc0 ? (bc1 - bc0) / (bw1 - bw0) : 0;
    double load0 = bench_loadavg1();
    long writes0 = progress_writes(db), polls0 = standin_polls(&agent);
    double commits0 = daemon_commits(url);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* [0] saturation (closed loop, as fast as ferryd answers), [1] paced to
     * rate requests/s in total. */
    struct wrk_result health[2], show[2], list[2], mlist[2], mlistp[2];
    for (int v = 0; v < 2; v++)
        if (run_wrk(url, "/v1/health", v ? lua_paced : NULL, token, conns, dur_s, &health[v]) != 0 ||
            run_wrk(url, "/v1/migrations/mig-bench-00000", v ? lua_show_paced : lua, token, conns,
                    dur_s, &show[v]) != 0 ||
            run_wrk(url, "/v1/migrations?limit=50", v ? lua_paced : NULL, token, conns, dur_s,
                    &list[v]) != 0 ||
            run_wrk(url, "/v1/migrations?limit=50", v ? lua_paced : NULL, member, conns, dur_s,
                    &mlist[v]) != 0 ||
            run_wrk(url, member_path, v ? lua_paced : NULL, member, conns, dur_s, &mlistp[v]) != 0)
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double run_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    char threads_txt[32] = "its default";
    if (threads >= 0)
        snprintf(threads_txt, sizeof(threads_txt), "%ld", threads);
    long writes = progress_writes(db) - writes0;
    double commits1 = daemon_commits(url);
    double commits_per_s = commits0 >= 0 && commits1 >= commits0 ? (commits1 - commits0) / run_s : -1;
    double load1 = bench_loadavg1();
    long polls = standin_polls(&agent) - polls0;
    ferryd_kill(&daemon_pid, SIGKILL, 0);
    standin_stop(&agent);

    char mach[384];
    bench_machine(mach, sizeof(mach));
    printf("ferryd API read latency: %ld migration records (inserted in %.2f s), %ld of them "
           "running,\nwrk -t2 -c%ld -d%lds, 127.0.0.1; ferryd read_threads: %s\nmachine: %s\n",
           records, fill_s, active, conns, dur_s, threads_txt, mach);
    printf("progress written meanwhile: %ld agent polls answered, %ld store updates by ferryd "
           "(%.1f/s, %.2f/s per running migration)\n",
           polls, writes, (double)writes / run_s, active ? (double)writes / run_s / (double)active : 0.0);
    if (commits_per_s >= 0)
        printf("transactions committed for them: %.1f/s (%.1f updates a transaction)\n",
               commits_per_s, commits_per_s > 0 ? (double)writes / run_s / commits_per_s : 0.0);
    else
        printf("transactions committed for them: not counted by this ferryd (one an update)\n");
    printf("ferryd CPU without requests (the progress writes): %.1f ms/s\n",
           bg_cpu_us_per_s / 1000.0);
    printf("load average (1 min) before / after the runs: %.2f / %.2f on %ld cpus — latency "
           "under other load is queueing for the CPU; CPU per request is not\n",
           load0, load1, sysconf(_SC_NPROCESSORS_ONLN));
    char mrow[160];
    snprintf(mrow, sizeof(mrow), "GET /v1/migrations?limit=50&project=%s", tenant_project);
    for (int v = 0; v < 2; v++) {
        if (v == 0)
            printf("\nsaturation: closed loop, every connection sends its next request as soon as "
                   "the answer is in (latency ≈ %ld / requests/s: a capacity figure)\n",
                   conns);
        else
            printf("\npaced: %ld requests/s offered in total (each connection waits %.1f ms after an "
                   "answer; wrk does not correct coordinated omission — see the achieved rate)\n",
                   rate, delay_ms);
        printf("| request | token | p50 ms | p90 ms | p99 ms | ferryd's own p99 ms ≤ | requests/s | "
               "ferryd CPU µs/request (net) | requests | non-2xx | socket errors |\n");
        printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        const struct {
            const char *name, *who;
            const struct wrk_result *r;
        } rows[] = {{"GET /v1/health (baseline)", "admin", &health[v]},
                    {"GET /v1/migrations/ID (random)", "admin", &show[v]},
                    {"GET /v1/migrations?limit=50", "admin", &list[v]},
                    {"GET /v1/migrations?limit=50", "member", &mlist[v]},
                    {mrow, "member", &mlistp[v]}};
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            const struct wrk_result *r = rows[i].r;
            char own[16] = "n/a";
            if (r->own_p99_ms >= 1e9)
                snprintf(own, sizeof(own), "> 2500");
            else if (r->own_p99_ms >= 0)
                snprintf(own, sizeof(own), "%g", r->own_p99_ms);
            if (r->requests > 0)
                printf("| %s | %s | %.2f | %.2f | %.2f | %s | %.0f | %.0f (%.0f) | %ld | %ld | "
                       "%ld |\n",
                       rows[i].name, rows[i].who, r->p50_ms, r->p90_ms, r->p99_ms, own,
                       r->rps, r->cpu_us_per_req, r->net_us_per_req, r->requests, r->non2xx,
                       r->sock_errors);
            else
                printf("| %s | %s | none completed | | | | 0 | | 0 | %ld | %ld |\n", rows[i].name,
                       rows[i].who, r->non2xx, r->sock_errors);
        }
    }
    static const char *const tnames[] = {"show", "list", "member list", "member list ?project="};
    for (int v = 1; v >= 0; v--) {
        const struct wrk_result *targets[] = {&show[v], &list[v], &mlist[v], &mlistp[v]};
        if (v)
            printf("\nTARGET FIGURE — p99 < 10 ms at %ld requests/s offered over %ld connections "
                   "(health baseline p99 %.2f ms):",
                   rate, conns, health[v].p99_ms);
        else
            printf("saturation, for comparison — p99 < 10 ms (health baseline p99 %.2f ms):",
                   health[v].p99_ms);
        for (size_t i = 0; i < 4; i++)
            printf("%s %s %s (%.2f)", i ? "," : "", tnames[i],
                   targets[i]->requests > 0 && targets[i]->p99_ms < 10 ? "met" : "NOT met",
                   targets[i]->p99_ms);
        printf("\n");
    }

    if (system("mkdir -p bench/out") != 0)
        return 1;
    f = fopen("bench/out/ferryd_api.json", "w");
    if (!f)
        return 1;
    fprintf(f, "{\"machine\":\"%s\",\"figures\":{\"records\":%ld,\"running\":%ld,"
            "\"connections\":%ld,\"duration_s\":%ld,\"store_fill_s\":%.3f,"
            "\"progress_updates_per_s\":%.1f,\"ferryd_background_cpu_ms_per_s\":%.2f,"
            "\"loadavg1_before\":%.2f,\"loadavg1_after\":%.2f",
            mach, records, active, conns, dur_s, fill_s, (double)writes / run_s,
            bg_cpu_us_per_s / 1000.0, load0, load1);
    if (commits_per_s >= 0)
        fprintf(f, ",\"commits_per_s\":%.2f", commits_per_s);
    else
        fprintf(f, ",\"commits_per_s\":null");
    fprintf(f, ",\"offered_requests_per_s\":%ld", rate);
    json_row(f, "show", &show[0]);
    json_row(f, "list50", &list[0]);
    json_row(f, "member_list50", &mlist[0]);
    json_row(f, "member_list50_project", &mlistp[0]);
    json_row(f, "paced_show", &show[1]);
    json_row(f, "paced_list50", &list[1]);
    json_row(f, "paced_member_list50", &mlist[1]);
    json_row(f, "paced_member_list50_project", &mlistp[1]);
    fprintf(f, "},\"baselines\":{\"records\":%ld", records);
    json_row(f, "health", &health[0]);
    json_row(f, "paced_health", &health[1]);
    fprintf(f, "}}\n");
    fclose(f);
    for (int v = 0; v < 2; v++)
        if (show[v].non2xx || list[v].non2xx || health[v].non2xx || mlist[v].non2xx ||
            mlistp[v].non2xx)
            return 1;
    return 0;
}

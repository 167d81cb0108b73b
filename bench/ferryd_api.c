/* ferryd_api — API read latency of ferryd with 10,000 migration records.
 *
 * What it answers: how fast does ferryd answer the reads operators and
 * dashboards make all day (show one migration, list a page) when its store
 * holds 10,000 records, under 64 concurrent clients; target p99 < 10 ms.
 *
 * How: the records are inserted straight through the store API
 * (store_migration_insert, one transaction) into a fresh SQLite file in a
 * temporary directory, then the real ferryd binary is started on that file
 * (127.0.0.1, an ephemeral port) with a bootstrap admin token. wrk (Debian
 * package) drives three 10 s runs with the same settings (2 threads, 64
 * connections, admin bearer token):
 *   - baseline: GET /v1/health (no store, no policy);
 *   - show: GET /v1/migrations/ID, IDs drawn at random by a wrk Lua script;
 *   - list: GET /v1/migrations?limit=50.
 * Prints a table and writes bench/out/ferryd_api.json. Environment:
 * BUILD (where ferryd is, default build), FERRY_BENCH_API_RECORDS (10000),
 * FERRY_BENCH_API_DURATION_S (10), FERRY_BENCH_API_CONNS (64). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coord/store.h"
#include "util/httpc.h"

static pid_t daemon_pid;
static char dir[64];

static long env_long(const char *name, long def, long min, long max)
{
    const char *v = getenv(name);
    if (!v || !v[0])
        return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < min || x > max) {
        fprintf(stderr, "ferryd_api: %s must be %ld … %ld\n", name, min, max);
        exit(2);
    }
    return x;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void kill_daemon(void)
{
    if (daemon_pid > 0) {
        kill(-daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = 0;
    }
}

static void cleanup(void)
{
    kill_daemon();
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "ferryd_api: could not remove %s\n", dir);
    }
}

static void on_fatal(int sig)
{
    if (daemon_pid > 0)
        kill(-daemon_pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A free loopback TCP port (bound then released). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Inserts n finished migration records (ids mig-bench-00000 …) in one
 * transaction. Returns 0 or -1 with a message on stderr. */
static int fill_store(const char *db, long n)
{
    struct store *st = NULL;
    struct ferr e = {0};
    if (store_open(db, &st, &e) != 0 || store_tx_begin(st, &e) != 0) {
        fprintf(stderr, "ferryd_api: store: %s\n", e.msg);
        store_close(st);
        return -1;
    }
    static const char *const states[] = {"succeeded", "succeeded", "succeeded", "failed",
                                         "cancelled"};
    int64_t t0 = 1767225600000; /* 2026-01-01, ms since epoch */
    for (long i = 0; i < n; i++) {
        struct store_migration m = {0};
        snprintf(m.id, sizeof(m.id), "mig-bench-%05ld", i);
        snprintf(m.instance, sizeof(m.instance), "vm-%05ld", i);
        snprintf(m.source, sizeof(m.source), "host-%02ld", i % 40);
        snprintf(m.destination, sizeof(m.destination), "host-%02ld", (i + 1) % 40);
        snprintf(m.state, sizeof(m.state), "%s", states[i % 5]);
        snprintf(m.phase, sizeof(m.phase), "%s", "completed");
        snprintf(m.user, sizeof(m.user), "user%ld", i % 7);
        snprintf(m.project, sizeof(m.project), "project-%02ld", i % 20);
        m.policy_json = "{\"name\":\"default\"}";
        m.limits_json = "{\"downtime_ms\":300,\"max_bandwidth_bps\":1073741824}";
        m.mem_total_bytes = (uint64_t)(1 + i % 16) << 30;
        m.progress_pct = 100.0;
        m.eta_ms = m.eta_low_ms = m.eta_high_ms = -1;
        m.downtime_ms = 20 + i % 200;
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

static const char *ferryd_bin(void)
{
    static char path[256];
    const char *b = getenv("BUILD");
    snprintf(path, sizeof(path), "%s/ferryd", b && b[0] ? b : "build");
    return path;
}

/* Starts ferryd with conf, stderr to logpath; waits ≤ 10 s for /v1/health. */
static int start_daemon(const char *conf, const char *logpath, const char *url)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!freopen(logpath, "a", stderr))
            _exit(127);
        execl(ferryd_bin(), "ferryd", "--config", conf, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    daemon_pid = pid;
    for (int i = 0; i < 200; i++) {
        struct httpc_resp r = {0};
        struct ferr e = {0};
        if (httpc_request(url, "GET", "/v1/health", NULL, NULL, 1000, &r, &e) == 0) {
            int ok = r.status == 200;
            httpc_resp_free(&r);
            if (ok)
                return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            daemon_pid = 0;
            return -1;
        }
        sleep_ms(50);
    }
    return -1;
}

/* One wrk run's figures. */
struct wrk_result {
    double p50_ms, p99_ms; /* latency percentiles, ms */
    double rps;            /* requests/s */
    long requests;         /* completed requests */
    long non2xx;           /* answers other than 2xx/3xx */
    long sock_errors;      /* connect+read+write+timeout */
};

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
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "wrk -t2 -c%ld -d%lds --timeout 30s --latency %s%s -H 'Authorization: Bearer %s' "
             "'%s%s' 2>&1",
             conns, dur_s, script ? "-s " : "", script ? script : "", token, url, path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    memset(r, 0, sizeof(*r));
    r->p50_ms = r->p99_ms = r->rps = -1;
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
    fprintf(f, ",\"%s_requests_per_s\":%.1f,\"%s_requests\":%ld,\"%s_non2xx\":%ld,"
            "\"%s_socket_errors\":%ld",
            name, r->rps, name, r->requests, name, r->non2xx, name, r->sock_errors);
}

static void machine(char *out, size_t n)
{
    struct utsname u;
    char model[128] = "unknown cpu";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f)) {
            char *c = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && c) {
                snprintf(model, sizeof(model), "%s", c + 2);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        }
        fclose(f);
    }
    if (uname(&u) != 0)
        memset(&u, 0, sizeof(u));
    snprintf(out, n, "%s %s %s, %ld cpus, %s", u.sysname, u.release, u.machine,
             sysconf(_SC_NPROCESSORS_ONLN), model);
}

int main(void)
{
    long records = env_long("FERRY_BENCH_API_RECORDS", 10000, 1, 100000);
    long dur_s = env_long("FERRY_BENCH_API_DURATION_S", 10, 1, 60);
    long conns = env_long("FERRY_BENCH_API_CONNS", 64, 1, 1000);
    if (system("command -v wrk >/dev/null 2>&1") != 0) {
        fprintf(stderr, "ferryd_api: wrk not found (apt-get install wrk; make deps does it)\n");
        return 1;
    }
    snprintf(dir, sizeof(dir), "/tmp/ferry-bench-api-XXXXXX");
    if (!mkdtemp(dir)) {
        dir[0] = '\0';
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    signal(SIGINT, on_fatal);
    signal(SIGTERM, on_fatal);
    char db[128], conf[128], logpath[128], tokpath[128], lua[128], url[64];
    snprintf(db, sizeof(db), "%s/ferryd.db", dir);
    snprintf(conf, sizeof(conf), "%s/ferryd.conf", dir);
    snprintf(logpath, sizeof(logpath), "%s/ferryd.log", dir);
    snprintf(tokpath, sizeof(tokpath), "%s/admin.token", dir);
    snprintf(lua, sizeof(lua), "%s/show.lua", dir);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (fill_store(db, records) != 0)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double fill_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    int port = free_port();
    FILE *f = fopen(conf, "w");
    if (port < 0 || !f)
        return 1;
    fprintf(f, "listen = 127.0.0.1:%d\ndb = %s\nbootstrap_token_file = %s\nlog_level = warn\n", port,
            db, tokpath);
    fclose(f);
    f = fopen(lua, "w");
    if (!f)
        return 1;
    fprintf(f,
            "math.randomseed(42)\n"
            "request = function()\n"
            "  return wrk.format(\"GET\", string.format(\"/v1/migrations/mig-bench-%%05d\", "
            "math.random(0, %ld)))\n"
            "end\n",
            records - 1);
    fclose(f);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    if (start_daemon(conf, logpath, url) != 0) {
        fprintf(stderr, "ferryd_api: ferryd did not start (log: %s)\n", logpath);
        return 1;
    }
    char token[300] = "";
    f = fopen(tokpath, "r");
    if (!f || !fgets(token, sizeof(token), f)) {
        fprintf(stderr, "ferryd_api: no bootstrap token in %s\n", tokpath);
        return 1;
    }
    fclose(f);
    token[strcspn(token, "\r\n")] = '\0';

    struct wrk_result health, show, list;
    if (run_wrk(url, "/v1/health", NULL, token, conns, dur_s, &health) != 0 ||
        run_wrk(url, "/v1/migrations/mig-bench-00000", lua, token, conns, dur_s, &show) != 0 ||
        run_wrk(url, "/v1/migrations?limit=50", NULL, token, conns, dur_s, &list) != 0)
        return 1;
    kill_daemon();

    char mach[384];
    machine(mach, sizeof(mach));
    printf("ferryd API read latency: %ld migration records (inserted in %.2f s), wrk -t2 -c%ld "
           "-d%lds, admin token, 127.0.0.1\nmachine: %s\n\n",
           records, fill_s, conns, dur_s, mach);
    printf("| request | p50 ms | p99 ms | requests/s | requests | non-2xx | socket errors |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    const struct {
        const char *name;
        const struct wrk_result *r;
    } rows[] = {{"GET /v1/health (baseline)", &health},
                {"GET /v1/migrations/ID (random)", &show},
                {"GET /v1/migrations?limit=50", &list}};
    for (size_t i = 0; i < 3; i++) {
        const struct wrk_result *r = rows[i].r;
        if (r->requests > 0)
            printf("| %s | %.2f | %.2f | %.0f | %ld | %ld | %ld |\n", rows[i].name, r->p50_ms,
                   r->p99_ms, r->rps, r->requests, r->non2xx, r->sock_errors);
        else
            printf("| %s | none completed | | 0 | 0 | %ld | %ld |\n", rows[i].name, r->non2xx,
                   r->sock_errors);
    }
    printf("\ntarget p99 < 10 ms: show %s, list %s\n",
           show.requests > 0 && show.p99_ms < 10 ? "met" : "NOT met",
           list.requests > 0 && list.p99_ms < 10 ? "met" : "NOT met");

    if (system("mkdir -p bench/out") != 0)
        return 1;
    f = fopen("bench/out/ferryd_api.json", "w");
    if (!f)
        return 1;
    fprintf(f, "{\"machine\":\"%s\",\"figures\":{\"records\":%ld,\"connections\":%ld,"
            "\"duration_s\":%ld,\"store_fill_s\":%.3f",
            mach, records, conns, dur_s, fill_s);
    json_row(f, "show", &show);
    json_row(f, "list50", &list);
    fprintf(f, "},\"baselines\":{\"records\":%ld", records);
    json_row(f, "health", &health);
    fprintf(f, "}}\n");
    fclose(f);
    return (show.non2xx || list.non2xx || health.non2xx) ? 1 : 0;
}

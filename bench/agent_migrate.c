/* agent_migrate — live migration of a lab guest through two ferry-agents,
 * beside plain QEMU driven by a minimal QMP script, in the same run.
 *
 * Rows: a 256 MiB guest running memload with a 64 MiB working set, idle
 * (rate 0) and three dirty rates; bandwidth capped (64 MiB/s) so loopback is
 * not the limit; downtime limit 300 ms. Each row is migrated once by ferry
 * (POST /v1/migrations on the source agent) and once by the baseline (this
 * program starts two QEMUs with the very argv the agent builds, spec_argv,
 * and runs migrate-incoming / migrate-set-capabilities /
 * migrate-set-parameters / migrate / query-migrate at 4 Hz itself).
 *
 * Figures per row: total time (QEMU's total-time), QEMU-reported downtime,
 * bytes sent (ram.transferred), non-zero RAM and the time ratio
 * total ÷ (non-zero RAM ÷ bandwidth). Non-zero RAM is computed the same way
 * for both sides from the last query-migrate before completion:
 * ram.total − ram.duplicate × page size (duplicate pages are the zero
 * pages QEMU sends as a flag). Plus the source agent's CPU time (utime +
 * stime from /proc/PID/stat) over the wall time of its migrations, as a
 * percentage of one core.
 *
 * Output: a table on stdout and bench/out/agent_migrate.json.
 * Environment: BUILD (default build), FERRY_BENCH_RATES (comma-separated
 * pages/s, default "0,1000,4000,12000"), FERRY_BENCH_BW_MIBS (default 64),
 * FERRY_BENCH_TIMEOUT_S (per migration, default 45). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/lib/benchenv.h"
#include "../tests/lib/guestcon.h"
#include "../tests/lib/lab.h"
#include "../tests/lib/labqemu.h"
#include "agent/spec.h"
#include "qmp/qmp_sync.h"
#include "util/ferr.h"
#include "util/httpc.h"
#include "util/xalloc.h"

#define MEM_MIB 256
#define WS_MIB 64
#define DOWNTIME_MS 300
#define MAX_ROWS 8
#define BOOT_TIMEOUT_MS 180000 /* TCG boot + working-set fill, ms */
#define POLL_MS 250            /* query-migrate period of the baseline, ms (4 Hz) */
#define QMP_TIMEOUT_MS 10000   /* one QMP command, ms */
#define QEMU_BIN "qemu-system-x86_64"

/* One migration's outcome, the same fields for ferry and the baseline. */
struct mig_result {
    bool ok;                /* completed (and, for ferry, destination confirmed) */
    bool timed_out;         /* did not converge within the timeout */
    char why[400];          /* why not ok */
    double total_time_s;    /* QEMU total-time, s */
    double downtime_ms;     /* QEMU-reported downtime, ms */
    uint64_t bytes_sent;    /* ram.transferred, bytes */
    uint64_t nonzero_bytes; /* ram.total - ram.duplicate * page size, bytes */
    uint64_t iterations;    /* dirty-sync-count */
    double wall_s;          /* wall time of the whole migration request, s */
    double agent_cpu_s;     /* source agent utime+stime over the migration, s */
};

struct row {
    char rate[16];           /* memload rate: pages/s, "0" = idle */
    char key[16];            /* figure name prefix: idle, r1000, ... */
    struct mig_result ferry; /* through the agents */
    struct mig_result base;  /* plain QEMU + QMP script */
};

static char lab_dir[1024]; /* absolute $BUILD/lab */
static uint64_t bw_bps;    /* max-bandwidth, bytes/s */
static unsigned timeout_s; /* per migration, s */

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

static char *guest_cmdline(const char *rate)
{
    return xasprintf("console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=%d "
                     "ferry.rate=%s",
                     WS_MIB, rate);
}

/* The instance spec both sides run, as the JSON the agent API takes. */
static json_t *spec_json(const char *name, const char *rate)
{
    char *cl = guest_cmdline(rate);
    json_t *j = json_pack("{s:s, s:i, s:s}", "name", name, "memory_mib", MEM_MIB, "cmdline", cl);
    free(cl);
    return j;
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

/* --- baseline: plain QEMU + a minimal QMP script ------------------------ */

struct bq {
    pid_t pid; /* QEMU, 0 when not running */
    char *qmp; /* QMP socket path */
    char *ser; /* serial socket path */
};

/* Starts QEMU with spec_argv for spec in dir (role names the sockets). */
static int bq_start(struct bq *q, const struct inst_spec *spec, const char *dir, const char *role,
                    bool incoming)
{
    memset(q, 0, sizeof(*q));
    q->qmp = xasprintf("%s/%s-qmp.sock", dir, role);
    q->ser = xasprintf("%s/%s-ser.sock", dir, role);
    char *log = xasprintf("%s/%s-qemu.log", dir, role);
    char **argv = spec_argv(spec, QEMU_BIN, q->qmp, q->ser, incoming);
    pid_t pid = labq_exec_logged(argv, log);
    int rc = pid < 0 ? (int)pid : 0;
    spec_argv_free(argv);
    free(log);
    q->pid = pid > 0 ? pid : 0;
    return rc;
}

static void bq_stop(struct bq *q)
{
    if (q->pid > 0) {
        kill(q->pid, SIGKILL);
        waitpid(q->pid, NULL, 0);
        q->pid = 0;
    }
    if (q->qmp)
        unlink(q->qmp);
    if (q->ser)
        unlink(q->ser);
    free(q->qmp);
    free(q->ser);
    q->qmp = q->ser = NULL;
}

/* Opens QMP at path, retrying while QEMU creates the socket. */
static int qmp_open_retry(struct qmp_sync *s, const char *path, struct ferr *e)
{
    int rc = -1;
    for (int k = 0; k < 100; k++) {
        rc = qmp_sync_open(s, path, 5000, e);
        if (rc == 0)
            return 0;
        sleep_ms(100);
    }
    return rc;
}

/* Boots a source guest at rate and migrates it to a fresh -incoming defer
 * QEMU with the same argv, exactly as a minimal operator script would. */
static void baseline_row(const char *rate, struct mig_result *r)
{
    memset(r, 0, sizeof(*r));
    char dir[] = "/tmp/ferry-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        snprintf(r->why, sizeof(r->why), "mkdtemp: %s", strerror(errno));
        return;
    }
    struct inst_spec spec;
    struct ferr e = {0};
    char *k = xasprintf("%s/vmlinuz", lab_dir), *i = xasprintf("%s/initrd.img", lab_dir);
    json_t *sj = spec_json("bench", rate);
    int rc = spec_from_json(sj, k, i, &spec, &e);
    json_decref(sj);
    free(k);
    free(i);
    if (rc != 0) {
        snprintf(r->why, sizeof(r->why), "spec: %s", e.msg);
        rmdir(dir);
        return;
    }
    struct bq src = {0}, dst = {0};
    struct qmp_sync qs = {0}, qd = {0};
    bool qs_open = false, qd_open = false;
    struct guestcon con = {.fd = -1};
    char *ready = NULL, *uri = NULL;
    json_t *ret = NULL;

    if ((rc = bq_start(&src, &spec, dir, "src", false)) < 0) {
        snprintf(r->why, sizeof(r->why), "start source QEMU: %d", rc);
        goto out;
    }
    if ((rc = guestcon_open(&con, src.ser, 10000)) < 0 ||
        (rc = guestcon_expect(&con, "FERRY-READY ", BOOT_TIMEOUT_MS, &ready)) < 0) {
        snprintf(r->why, sizeof(r->why), "source guest not ready: %d", rc);
        goto out;
    }
    if ((rc = bq_start(&dst, &spec, dir, "dst", true)) < 0) {
        snprintf(r->why, sizeof(r->why), "start destination QEMU: %d", rc);
        goto out;
    }
    if ((rc = qmp_open_retry(&qs, src.qmp, &e)) < 0) {
        snprintf(r->why, sizeof(r->why), "source QMP: %s", e.msg);
        goto out;
    }
    qs_open = true;
    if ((rc = qmp_open_retry(&qd, dst.qmp, &e)) < 0) {
        snprintf(r->why, sizeof(r->why), "destination QMP: %s", e.msg);
        goto out;
    }
    qd_open = true;
    rc = qmp_sync_cmd(&qd, "migrate-incoming", json_pack("{s:s}", "uri", "tcp:127.0.0.1:0"), NULL,
                      QMP_TIMEOUT_MS, &e);
    if (rc == 0)
        rc = qmp_sync_cmd(&qd, "query-migrate", NULL, &ret, QMP_TIMEOUT_MS, &e);
    if (rc == 0) {
        json_t *sa = json_array_get(json_object_get(ret, "socket-address"), 0);
        const char *port = json_string_value(json_object_get(sa, "port"));
        if (port)
            uri = xasprintf("tcp:127.0.0.1:%s", port);
        json_decref(ret);
        ret = NULL;
    }
    if (rc != 0 || !uri) {
        snprintf(r->why, sizeof(r->why), "destination incoming: %s", rc ? e.msg : "no port");
        goto out;
    }
    /* The same capabilities and parameters the agent sets (migration.c). */
    rc = qmp_sync_cmd(&qs, "migrate-set-capabilities",
                      json_pack("{s:[{s:s, s:b}, {s:s, s:b}]}", "capabilities", "capability",
                                "events", "state", 1, "capability", "auto-converge", "state", 0),
                      NULL, QMP_TIMEOUT_MS, &e);
    if (rc == 0)
        rc = qmp_sync_cmd(&qs, "migrate-set-parameters",
                          json_pack("{s:I, s:I}", "downtime-limit", (json_int_t)DOWNTIME_MS,
                                    "max-bandwidth", (json_int_t)bw_bps),
                          NULL, QMP_TIMEOUT_MS, &e);
    double t0 = now_s();
    if (rc == 0)
        rc = qmp_sync_cmd(&qs, "migrate", json_pack("{s:s}", "uri", uri), NULL, QMP_TIMEOUT_MS, &e);
    if (rc != 0) {
        snprintf(r->why, sizeof(r->why), "migrate: %s", e.msg);
        goto out;
    }
    bool cancelled = false;
    for (;;) {
        rc = qmp_sync_cmd(&qs, "query-migrate", NULL, &ret, QMP_TIMEOUT_MS, &e);
        if (rc != 0) {
            snprintf(r->why, sizeof(r->why), "query-migrate: %s", e.msg);
            goto out;
        }
        const char *st = json_string_value(json_object_get(ret, "status"));
        json_t *ram = json_object_get(ret, "ram");
        if (ram) {
            uint64_t ps = jnum(ram, "page-size") ? jnum(ram, "page-size") : 4096;
            uint64_t tot = jnum(ram, "total"), dup = jnum(ram, "duplicate") * ps;
            r->nonzero_bytes = tot > dup ? tot - dup : 0;
            r->bytes_sent = jnum(ram, "transferred");
            r->iterations = jnum(ram, "dirty-sync-count");
        }
        if (st && strcmp(st, "completed") == 0) {
            r->total_time_s = (double)jnum(ret, "total-time") / 1000.0;
            r->downtime_ms = (double)jnum(ret, "downtime");
            r->ok = true;
            break;
        }
        if (st && (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0)) {
            const char *d = json_string_value(json_object_get(ret, "error-desc"));
            if (cancelled) {
                r->timed_out = true;
                snprintf(r->why, sizeof(r->why), "no convergence in %u s; cancelled", timeout_s);
            } else {
                snprintf(r->why, sizeof(r->why), "QEMU: %s %.200s", st, d ? d : "");
            }
            break;
        }
        json_decref(ret);
        ret = NULL;
        if (!cancelled && now_s() - t0 > timeout_s) {
            cancelled = true;
            if (qmp_sync_cmd(&qs, "migrate_cancel", NULL, NULL, QMP_TIMEOUT_MS, &e) != 0)
                fprintf(stderr, "agent_migrate: migrate_cancel: %s\n", e.msg);
        }
        sleep_ms(POLL_MS);
    }
    json_decref(ret);
    ret = NULL;
    r->wall_s = now_s() - t0;
    if (r->ok) {
        /* The destination must run the guest (invariant 1, checked not
         * assumed): query-status there says running. */
        bool running = false;
        for (int t = 0; t < 40 && !running; t++) {
            if (qmp_sync_cmd(&qd, "query-status", NULL, &ret, QMP_TIMEOUT_MS, &e) == 0) {
                const char *s = json_string_value(json_object_get(ret, "status"));
                running = s && strcmp(s, "running") == 0;
                json_decref(ret);
                ret = NULL;
            }
            if (!running)
                sleep_ms(100);
        }
        if (!running) {
            r->ok = false;
            snprintf(r->why, sizeof(r->why), "destination not running after completion");
        }
    }
out:
    free(ready);
    free(uri);
    guestcon_close(&con);
    if (qs_open)
        qmp_sync_close(&qs);
    if (qd_open)
        qmp_sync_close(&qd);
    bq_stop(&dst);
    bq_stop(&src);
    spec_free(&spec);
    char *p = xasprintf("%s/src-qemu.log", dir);
    unlink(p);
    free(p);
    p = xasprintf("%s/dst-qemu.log", dir);
    unlink(p);
    free(p);
    rmdir(dir);
}

/* --- ferry: two agents from tests/lib/lab ------------------------------- */

/* utime + stime of pid, s; negative when unreadable. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name, which ends at the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void delete_instance(const struct lab_agent *a, const char *name)
{
    struct ferr e = {0};
    char *path = xasprintf("/v1/instances/%s", name);
    int status = 0;
    if (lab_api(a, "DELETE", path, NULL, &status, NULL, &e) == 0 && status < 300)
        (void)lab_instance_wait_gone(a, name, 20000);
    free(path);
}

/* Launches guest name at rate on the lab's first agent, migrates it to the
 * second through the agents' API, polling the migration at 4 Hz, checks the
 * guest's memory on the destination, and removes it again. */
static void ferry_row(struct lab *lab, const char *name, const char *rate, struct mig_result *r)
{
    memset(r, 0, sizeof(*r));
    const struct lab_agent *src = &lab->agents[0], *dst = &lab->agents[1];
    struct ferr e = {0};
    char uri[128], *cl = guest_cmdline(rate), *path = NULL;
    json_t *body = NULL, *out = NULL;
    int status = 0;
    int rc = lab_launch_guest(src, name, MEM_MIB, cl, LAB_BOOT_TIMEOUT_MS, &e);
    free(cl);
    if (rc != 0) {
        snprintf(r->why, sizeof(r->why), "launch: %s", e.msg);
        return;
    }
    if ((rc = lab_prepare_incoming(src, dst, name, uri, sizeof(uri), &e)) != 0) {
        snprintf(r->why, sizeof(r->why), "prepare destination: %s", e.msg);
        goto out;
    }
    body =
        json_pack("{s:s, s:s, s:s, s:{s:i, s:I, s:I}}", "instance", name, "dest_uri", uri,
                  "dest_agent", dst->url, "limits", "downtime_ms", DOWNTIME_MS, "max_bandwidth_bps",
                  (json_int_t)bw_bps, "completion_timeout_s", (json_int_t)timeout_s);
    double cpu0 = proc_cpu_s(src->pid), t0 = now_s();
    rc = lab_api(src, "POST", "/v1/migrations", body, &status, &out, &e);
    const char *id = out ? json_string_value(json_object_get(out, "id")) : NULL;
    if (rc != 0 || status >= 300 || !id) {
        snprintf(r->why, sizeof(r->why), "POST /v1/migrations: %d %s", status,
                 rc ? e.msg : "no id");
        goto out;
    }
    path = xasprintf("/v1/migrations/%s", id);
    json_decref(out);
    out = NULL;
    const char *st = NULL;
    for (;;) {
        sleep_ms(POLL_MS);
        json_decref(out);
        out = NULL;
        rc = lab_api(src, "GET", path, NULL, &status, &out, &e);
        if (rc != 0 || status != 200 || !out) {
            snprintf(r->why, sizeof(r->why), "GET %s: %d %s", path, status, rc ? e.msg : "");
            goto out;
        }
        st = json_string_value(json_object_get(out, "state"));
        if (st && (strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
                   strcmp(st, "cancelled") == 0))
            break;
        if (now_s() - t0 > timeout_s + 60.0) {
            snprintf(r->why, sizeof(r->why), "migration not terminal after %u s", timeout_s + 60);
            goto out;
        }
    }
    r->wall_s = now_s() - t0;
    double cpu1 = proc_cpu_s(src->pid);
    r->agent_cpu_s = cpu0 >= 0 && cpu1 >= cpu0 ? cpu1 - cpu0 : -1;
    json_t *ls = json_object_get(out, "last_sample");
    uint64_t tot = jnum(ls, "ram_total"), dup = jnum(ls, "ram_duplicate") * 4096u;
    r->nonzero_bytes = tot > dup ? tot - dup : 0;
    r->bytes_sent = jnum(ls, "ram_transferred");
    r->iterations = jnum(ls, "dirty_sync_count");
    if (strcmp(st, "succeeded") != 0) {
        const char *err = json_string_value(json_object_get(out, "error"));
        r->timed_out = err && strstr(err, "timeout") != NULL;
        snprintf(r->why, sizeof(r->why), "%s: %.200s", st, err ? err : "");
        goto out;
    }
    json_t *res = json_object_get(out, "result");
    r->total_time_s = (double)jnum(res, "total_time_ms") / 1000.0;
    r->downtime_ms = (double)jnum(res, "downtime_ms");
    r->bytes_sent = jnum(res, "ram_transferred");
    r->iterations = jnum(res, "iterations");
    struct lab_integrity li;
    if (lab_verify(dst, name, &li, &e) != 0) {
        snprintf(r->why, sizeof(r->why), "verify on destination: %s", e.msg);
        goto out;
    }
    if (!li.ok) {
        snprintf(r->why, sizeof(r->why), "guest memory corrupted: %lld bad pages", li.bad_pages);
        goto out;
    }
    r->ok = true;
out:
    json_decref(body);
    json_decref(out);
    free(path);
    delete_instance(dst, name);
    delete_instance(src, name);
}

/* --- report -------------------------------------------------------------- */

static double time_ratio(const struct mig_result *r)
{
    if (!r->ok || !r->nonzero_bytes)
        return -1;
    return r->total_time_s / ((double)r->nonzero_bytes / (double)bw_bps);
}

static json_t *num_or_null(bool have, double v)
{
    return have ? json_real(v) : json_null();
}

/* Adds the row's figures, prefixed with key, to o. */
static void put_row(json_t *o, const char *key, const struct mig_result *r, bool with_cpu)
{
    char k[96];
#define PUT(suffix, val)                                                                           \
    do {                                                                                           \
        snprintf(k, sizeof(k), "%s_%s", key, suffix);                                              \
        json_object_set_new(o, k, val);                                                            \
    } while (0)
    PUT("converged", json_boolean(r->ok));
    PUT("total_time_s", num_or_null(r->ok, r->total_time_s));
    PUT("downtime_ms", num_or_null(r->ok, r->downtime_ms));
    PUT("bytes_sent", json_integer((json_int_t)r->bytes_sent));
    PUT("nonzero_ram_bytes", json_integer((json_int_t)r->nonzero_bytes));
    PUT("time_ratio", num_or_null(r->ok, time_ratio(r)));
    PUT("iterations", json_integer((json_int_t)r->iterations));
    if (with_cpu)
        PUT("agent_cpu_pct_of_core",
            num_or_null(r->agent_cpu_s >= 0 && r->wall_s > 0, 100.0 * r->agent_cpu_s / r->wall_s));
#undef PUT
}

static void print_line(const char *who, const struct row *rw, const struct mig_result *r,
                       bool with_cpu)
{
    if (!r->ok) {
        printf("%-6s %-9s %s\n", rw->key, who,
               r->timed_out ? "did not converge (timeout)" : r->why);
        return;
    }
    char cpu[32] = "";
    if (with_cpu && r->wall_s > 0 && r->agent_cpu_s >= 0)
        snprintf(cpu, sizeof(cpu), "%6.2f", 100.0 * r->agent_cpu_s / r->wall_s);
    printf("%-6s %-9s %8.2f %9.0f %9.1f %9.1f %6.2f %5llu %7s\n", rw->key, who, r->total_time_s,
           r->downtime_ms, (double)r->bytes_sent / 1048576.0, (double)r->nonzero_bytes / 1048576.0,
           time_ratio(r), (unsigned long long)r->iterations, cpu);
}

/* Absolute path of rel (relative to the cwd) into out. */
static void abs_path(const char *rel, char *out, size_t n)
{
    if (rel[0] == '/') {
        snprintf(out, n, "%s", rel);
        return;
    }
    char cwd[768];
    if (!getcwd(cwd, sizeof(cwd)))
        cwd[0] = '\0';
    snprintf(out, n, "%s/%s", cwd, rel);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *build = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    char tmp[900];
    snprintf(tmp, sizeof(tmp), "%s/lab/vmlinuz", build);
    struct stat sb;
    snprintf(tmp, sizeof(tmp), "%s/lab", stat(tmp, &sb) == 0 ? build : "build");
    abs_path(tmp, lab_dir, sizeof(lab_dir));
    const char *v = getenv("FERRY_BENCH_BW_MIBS");
    bw_bps = (v && strtoull(v, NULL, 10) ? strtoull(v, NULL, 10) : 64ull) << 20;
    v = getenv("FERRY_BENCH_TIMEOUT_S");
    timeout_s = v && strtoul(v, NULL, 10) ? (unsigned)strtoul(v, NULL, 10) : 45u;
    v = getenv("FERRY_BENCH_RATES");
    char rates[128];
    snprintf(rates, sizeof(rates), "%s", v && *v ? v : "0,1000,4000,12000");

    struct row rows[MAX_ROWS];
    int nrows = 0;
    for (char *save = NULL, *t = strtok_r(rates, ",", &save); t && nrows < MAX_ROWS;
         t = strtok_r(NULL, ",", &save)) {
        struct row *rw = &rows[nrows++];
        memset(rw, 0, sizeof(*rw));
        snprintf(rw->rate, sizeof(rw->rate), "%s", t);
        if (strcmp(t, "0") == 0)
            snprintf(rw->key, sizeof(rw->key), "idle");
        else
            snprintf(rw->key, sizeof(rw->key), "r%s", t);
    }
    char mach[512];
    bench_machine_tcg(mach, sizeof(mach));
    printf("agent_migrate: %d MiB guest, memload ws %d MiB, max-bandwidth %llu MiB/s, "
           "downtime-limit %d ms, timeout %u s\nmachine: %s\n",
           MEM_MIB, WS_MIB, (unsigned long long)(bw_bps >> 20), DOWNTIME_MS, timeout_s, mach);

    struct lab lab;
    struct ferr e = {0};
    double t_start = now_s();
    if (lab_start(&lab, 2, &e) != 0) {
        fprintf(stderr, "agent_migrate: lab: %s\n", e.msg);
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < nrows; i++) {
        char name[32];
        snprintf(name, sizeof(name), "bench-%s", rows[i].key);
        ferry_row(&lab, name, rows[i].rate, &rows[i].ferry);
        baseline_row(rows[i].rate, &rows[i].base);
        fprintf(stderr, "agent_migrate: %s done (%.0f s so far)\n", rows[i].key, now_s() - t_start);
        if ((!rows[i].ferry.ok && !rows[i].ferry.timed_out) ||
            (!rows[i].base.ok && !rows[i].base.timed_out))
            bad = 1;
    }
    lab_stop(&lab);

    double cpu_s = 0, wall_s = 0;
    for (int i = 0; i < nrows; i++)
        if (rows[i].ferry.agent_cpu_s >= 0 && rows[i].ferry.wall_s > 0) {
            cpu_s += rows[i].ferry.agent_cpu_s;
            wall_s += rows[i].ferry.wall_s;
        }
    double cpu_pct = wall_s > 0 ? 100.0 * cpu_s / wall_s : -1;

    printf("\n%-6s %-9s %8s %9s %9s %9s %6s %5s %7s\n", "row", "by", "total_s", "downtm_ms",
           "sent_MiB", "nz_MiB", "ratio", "iters", "cpu_%");
    for (int i = 0; i < nrows; i++) {
        print_line("ferry", &rows[i], &rows[i].ferry, true);
        print_line("qemu+qmp", &rows[i], &rows[i].base, false);
    }
    printf("ratio = total time / (non-zero RAM / bandwidth); non-zero RAM = ram.total - "
           "ram.duplicate x 4 KiB at completion\n");
    double idle_ratio =
        nrows > 0 && strcmp(rows[0].key, "idle") == 0 ? time_ratio(&rows[0].ferry) : -1;
    if (idle_ratio >= 0)
        printf("idle time ratio (ferry): %.2f (target <= 1.25: %s)\n", idle_ratio,
               idle_ratio <= 1.25 ? "met" : "MISSED");
    printf("source agent CPU while migrating (4 Hz sampling + 4 Hz API polls): %.2f %% of one "
           "core over %.1f s (target < 2 %%: %s)\n",
           cpu_pct, wall_s, cpu_pct >= 0 && cpu_pct < 2.0 ? "met" : "MISSED");

    json_t *fig = json_object(), *base = json_object();
    json_object_set_new(fig, "bandwidth_cap_bytes_per_s", json_integer((json_int_t)bw_bps));
    json_object_set_new(fig, "downtime_limit_ms", json_integer(DOWNTIME_MS));
    json_object_set_new(fig, "guest_memory_mib", json_integer(MEM_MIB));
    json_object_set_new(fig, "working_set_mib", json_integer(WS_MIB));
    for (int i = 0; i < nrows; i++) {
        put_row(fig, rows[i].key, &rows[i].ferry, true);
        put_row(base, rows[i].key, &rows[i].base, false);
    }
    json_object_set_new(fig, "agent_cpu_pct_of_core", num_or_null(cpu_pct >= 0, cpu_pct));
    json_object_set_new(fig, "agent_cpu_measured_wall_s", json_real(wall_s));
    json_t *doc = json_pack("{s:s, s:o, s:o}", "machine", mach, "figures", fig, "baselines", base);
    mkdir("bench/out", 0755);
    if (json_dump_file(doc, "bench/out/agent_migrate.json",
                       JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) != 0) {
        fprintf(stderr, "agent_migrate: cannot write bench/out/agent_migrate.json\n");
        bad = 1;
    }
    json_decref(doc);
    printf("wrote bench/out/agent_migrate.json (%.0f s)\n", now_s() - t_start);
    return bad;
}

/* Integration: live migration between two real ferry-agents on loopback
 * (tests/lib/lab), with real QEMU guests running the lab's memload
 * integrity workload. Proves DESIGN.md invariants 1 and 2 end to end:
 *  - round trips A→B→A…: after every move the guest's memory is intact,
 *    the same process kept running (memload's progress never went back),
 *    the source QEMU is gone and its agent forgets it, downtime was measured;
 *  - cancel mid-flight: source runs on unchanged, destination cleaned up,
 *    and a later migration still succeeds;
 *  - destination QEMU killed mid-flight: failed with a reason, source runs;
 *  - a workload that never converges: the completion timeout aborts it,
 *    source runs, destination cleaned;
 *  - as root, the agents run with --incoming-nice: the incoming QEMU runs
 *    at that nice until it owns the guest, then every thread is back at
 *    the agent's own; a bad --incoming-nice is refused.
 * Every wait is bounded. Needs the lab image (make lab) and root-free QEMU. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/lab.h"
#include "../lib/test.h"

#define GUEST_MIB 256
#define WS_MIB 64
#define MIG_TIMEOUT_MS 120000  /* one migration, fast limits */
#define SLOW_BPS (8ll << 20)   /* bytes/s: keeps a migration in flight for seconds */
#define FAST_BPS (256ll << 20) /* bytes/s */
#define GONE_TIMEOUT_MS 10000  /* a QEMU or instance disappearing, ms */
#define ROUND_TRIPS 5
#define INCOMING_NICE 10 /* the agents' --incoming-nice, as root */

static struct lab L;
static int lab_ok;
static int niced; /* the agents run with --incoming-nice INCOMING_NICE */

/* The lowest and highest nice over the threads of pid (from
 * /proc/PID/task/TID/stat); returns the threads read, 0 when none. */
static int thread_nice(pid_t pid, int *lo, int *hi)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    int n = 0;
    *lo = 100;
    *hi = -100;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && n < 1024) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char sp[384], buf[1024];
        snprintf(sp, sizeof(sp), "%s/%s/stat", path, de->d_name);
        FILE *f = fopen(sp, "r");
        size_t k = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[k] = '\0';
        /* after the command's closing parenthesis: state is field 3, nice 19 */
        char *p = strrchr(buf, ')');
        int field = 2, nice = 0;
        for (char *t = p ? strtok(p + 1, " ") : NULL; t; t = strtok(NULL, " "))
            if (++field == 19) {
                nice = atoi(t);
                break;
            }
        if (field != 19)
            continue;
        *lo = nice < *lo ? nice : *lo;
        *hi = nice > *hi ? nice : *hi;
        n++;
    }
    if (d)
        closedir(d);
    return n;
}
static const char *const CMDLINE_2000 =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=64 ferry.rate=2000";
static const char *const CMDLINE_MAX =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=64 ferry.rate=max";

static json_t *limits(long long bps, long long downtime_ms, long long timeout_s)
{
    json_t *l = json_pack("{s:I, s:I}", "max_bandwidth_bps", (json_int_t)bps, "downtime_ms",
                          (json_int_t)downtime_ms);
    if (timeout_s)
        json_object_set_new(l, "completion_timeout_s", json_integer(timeout_s));
    return l;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Memload's progress as one number: it only grows while the same guest
 * process runs (a rebooted guest starts again at pass 2, cursor 0). */
static long long progress(const struct lab_integrity *r)
{
    return r->pass * (r->pages > 0 ? r->pages : 1) + r->cursor;
}

/* Checks the guest on a verifies intact; fills *r. Returns 1 when intact. */
static int intact(const struct lab_agent *a, const char *name, struct lab_integrity *r)
{
    struct ferr e = {0};
    int rc = lab_verify(a, name, r, &e);
    CHECK(rc == 0, "verify %s on %s: %s", name, a->name, e.msg);
    if (rc != 0)
        return 0;
    CHECK(r->ok == 1 && r->bad_pages == 0, "%s on %s: ok=%d bad_pages=%lld of %lld", name, a->name,
          r->ok, r->bad_pages, r->pages);
    return r->ok == 1 && r->bad_pages == 0;
}

/* Makes sure a guest called name runs on agent a with cmdline; launches it
 * when missing (a previous case may have lost it). Returns 1 when it runs. */
static int ensure_guest(const struct lab_agent *a, const char *name, const char *cmdline)
{
    struct ferr e = {0};
    pid_t pid;
    char st[32];
    if (lab_instance_pid(a, name, &pid, st, sizeof(st), &e) == 0 && strcmp(st, "running") == 0)
        return 1;
    int rc = lab_launch_guest(a, name, GUEST_MIB, cmdline, LAB_BOOT_TIMEOUT_MS, &e);
    CHECK(rc == 0, "launch %s on %s: %s", name, a->name, e.msg);
    return rc == 0;
}

/* Source side after a failed/cancelled migration: same pid, running, and
 * memory intact. */
static void check_source_runs_on(const struct lab_agent *a, const char *name, pid_t pid_before)
{
    struct ferr e = {0};
    pid_t pid = 0;
    char st[32] = "";
    int rc = lab_instance_pid(a, name, &pid, st, sizeof(st), &e);
    CHECK(rc == 0, "GET %s on source: %s", name, e.msg);
    CHECK(pid == pid_before && lab_pid_alive(pid), "source pid %d, was %d", (int)pid,
          (int)pid_before);
    /* the agent polls QEMU's run state once a second: allow it to catch up */
    for (int i = 0; i < 30 && rc == 0 && strcmp(st, "running") != 0; i++) {
        usleep(200000);
        rc = lab_instance_pid(a, name, &pid, st, sizeof(st), &e);
    }
    CHECK(strcmp(st, "running") == 0, "source state '%s', want running", st);
    struct lab_integrity r;
    intact(a, name, &r);
}

/* Destination side after a failed/cancelled migration: its QEMU (dest_pid,
 * 0 when unknown) dies and the agent forgets the instance. */
static void check_dest_cleaned(const struct lab_agent *d, const char *name, pid_t dest_pid)
{
    CHECK(lab_instance_wait_gone(d, name, GONE_TIMEOUT_MS), "destination still lists %s", name);
    if (dest_pid > 0)
        CHECK(lab_pid_wait_gone(dest_pid, GONE_TIMEOUT_MS), "destination QEMU %d still alive",
              (int)dest_pid);
}

static void t_round_trips(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    const char *name = "rt";
    if (!ensure_guest(&L.agents[0], name, CMDLINE_2000))
        return;
    json_t *lim = limits(FAST_BPS, 300, 0);
    struct lab_integrity before;
    REQUIRE(intact(&L.agents[0], name, &before), "guest not intact before the first move");
    int measured[2] = {0, 0}; /* per source agent: earlier moves whose final stage was told */
    for (int i = 0; i < 2 * ROUND_TRIPS; i++) {
        const struct lab_agent *s = &L.agents[i % 2], *d = &L.agents[(i + 1) % 2];
        struct ferr e = {0};
        pid_t src_pid = 0;
        int rc = lab_instance_pid(s, name, &src_pid, NULL, 0, &e);
        CHECK(rc == 0, "move %d: GET source: %s", i + 1, e.msg);
        json_t *m = NULL;
        rc = lab_migrate(s, d, name, lim, MIG_TIMEOUT_MS, &m, &e);
        CHECK(rc == 0, "move %d %s->%s: %s", i + 1, s->name, d->name, e.msg);
        if (rc != 0)
            break;
        const char *state = jstr(m, "state");
        CHECK(strcmp(state, "succeeded") == 0, "move %d: state %s error '%s'", i + 1, state,
              jstr(m, "error"));
        long long downtime = (long long)json_integer_value(
            json_object_get(json_object_get(m, "result"), "downtime_ms"));
        CHECK(downtime > 0, "move %d: downtime_ms %lld", i + 1, downtime);
        long long total = (long long)json_integer_value(
            json_object_get(json_object_get(m, "result"), "total_time_ms"));
        /* the final stage (docs/AGENT.md): when `migrate` went, the link
         * rate handed to the estimator from this agent's earlier moves to
         * that host, and this move's own measure */
        json_t *fs = json_object_get(m, "final_stage");
        long long mig_t = (long long)json_integer_value(json_object_get(fs, "migrate_t_ms"));
        long long link = (long long)json_integer_value(json_object_get(fs, "link_bps"));
        long long link_moves = (long long)json_integer_value(json_object_get(fs, "link_moves"));
        long long fin = (long long)json_integer_value(
            json_object_get(json_object_get(m, "result"), "final_stage_bps"));
        CHECK(fs && mig_t > 0 && mig_t < 60000, "move %d: final_stage.migrate_t_ms %lld", i + 1,
              mig_t);
        CHECK((link > 0) == (link_moves > 0) && link_moves <= measured[i % 2] &&
                  (measured[i % 2] == 0 || link_moves > 0),
              "move %d: link_bps %lld from %lld moves, %d earlier moves measured", i + 1, link,
              link_moves, measured[i % 2]);
        CHECK(fin == 0 || fin > (1 << 20), "move %d: final_stage_bps %lld", i + 1, fin);
        measured[i % 2] += fin > 0;
        int ok = strcmp(state, "succeeded") == 0;
        json_decref(m);
        if (!ok)
            break;
        CHECK(lab_pid_wait_gone(src_pid, GONE_TIMEOUT_MS), "move %d: source QEMU %d alive", i + 1,
              (int)src_pid);
        CHECK(lab_instance_wait_gone(s, name, GONE_TIMEOUT_MS),
              "move %d: source agent still lists %s", i + 1, name);
        struct lab_integrity after;
        if (!intact(d, name, &after))
            break;
        CHECK(progress(&after) >= progress(&before),
              "move %d: memload went back from pass %lld cursor %lld to pass %lld cursor %lld "
              "(guest restarted?)",
              i + 1, before.pass, before.cursor, after.pass, after.cursor);
        printf("  move %d %s->%s: total %lld ms, downtime %lld ms, final stage %.0f MiB/s (link "
               "given %.0f MiB/s), pass %lld cursor %lld -> pass %lld cursor %lld\n",
               i + 1, s->name, d->name, total, downtime, (double)fin / 1048576.0,
               (double)link / 1048576.0, before.pass, before.cursor, after.pass, after.cursor);
        before = after;
    }
    json_decref(lim);
}

/* Starts a slow migration of name from s to d (the guest launched on s
 * when missing) and waits until 4 MiB went over (a failed CHECK when it
 * does not). Returns 1 with *src_pid (the source's QEMU) and id (n bytes)
 * filled once the migration started; 0 after a failed check otherwise. */
static int start_in_flight(const struct lab_agent *s, const struct lab_agent *d,
                           const char *name, pid_t *src_pid, char *id, size_t n)
{
    if (!ensure_guest(s, name, CMDLINE_2000))
        return 0;
    struct ferr e = {0};
    int rc = lab_instance_pid(s, name, src_pid, NULL, 0, &e);
    CHECK(rc == 0, "%s", e.msg);
    if (rc != 0)
        return 0;
    json_t *lim = limits(SLOW_BPS, 300, 0);
    rc = lab_migrate_start(s, d, name, lim, id, n, &e);
    json_decref(lim);
    CHECK(rc == 0, "start: %s", e.msg);
    if (rc != 0)
        return 0;
    rc = lab_migration_wait_transferred(s, id, 4u << 20, 30000, &e);
    CHECK(rc == 0, "not in flight: %s", e.msg);
    return 1;
}

static void t_cancel(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    const char *name = "rt";
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    pid_t src_pid = 0, dest_pid = 0;
    char id[64];
    if (!start_in_flight(s, d, name, &src_pid, id, sizeof(id)))
        return;
    struct ferr e = {0};
    int rc;
    CHECK(lab_instance_pid(d, name, &dest_pid, NULL, 0, &e) == 0, "GET dest: %s", e.msg);
    int lo = 0, hi = 0;
    if (niced) {
        /* the incoming copy runs at the agent's --incoming-nice, every thread */
        CHECK(thread_nice(dest_pid, &lo, &hi) > 0, "no threads of the incoming QEMU %d",
              (int)dest_pid);
        CHECK(lo == INCOMING_NICE && hi == INCOMING_NICE,
              "incoming QEMU threads at nice %d..%d, want %d", lo, hi, INCOMING_NICE);
    }
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", id);
    int st = 0;
    rc = lab_api(s, "POST", path, NULL, &st, NULL, &e);
    CHECK(rc == 0 && st == 202, "cancel: rc %d status %d %s", rc, st, e.msg);
    json_t *m = NULL;
    rc = lab_migration_wait(s, id, 30000, &m, &e);
    REQUIRE(rc == 0, "after cancel: %s", e.msg);
    CHECK(strcmp(jstr(m, "state"), "cancelled") == 0, "state %s error '%s'", jstr(m, "state"),
          jstr(m, "error"));
    json_decref(m);
    check_source_runs_on(s, name, src_pid);
    check_dest_cleaned(d, name, dest_pid);
    /* and the guest can still move afterwards */
    json_t *lim = limits(FAST_BPS, 300, 0);
    rc = lab_migrate(s, d, name, lim, MIG_TIMEOUT_MS, &m, &e);
    json_decref(lim);
    REQUIRE(rc == 0, "migration after cancel: %s", e.msg);
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "migration after cancel: %s '%s'",
          jstr(m, "state"), jstr(m, "error"));
    json_decref(m);
    struct lab_integrity r;
    intact(d, name, &r);
    pid_t now_pid = 0;
    if (niced && lab_instance_pid(d, name, &now_pid, NULL, 0, &e) == 0) {
        /* it owns the guest now: back at the agent's own priority (0) */
        CHECK(thread_nice(now_pid, &lo, &hi) > 0, "no threads of the guest's QEMU %d",
              (int)now_pid);
        CHECK(lo == 0 && hi == 0, "the guest's QEMU threads at nice %d..%d after takeover, "
              "want 0", lo, hi);
    }
    /* bring it home for the next case */
    lim = limits(FAST_BPS, 300, 0);
    rc = lab_migrate(d, s, name, lim, MIG_TIMEOUT_MS, &m, &e);
    json_decref(lim);
    CHECK(rc == 0 && strcmp(jstr(m, "state"), "succeeded") == 0, "move back: %s %s", e.msg,
          rc == 0 ? jstr(m, "state") : "");
    json_decref(m);
}

static void t_dest_killed(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    const char *name = "rt";
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    pid_t src_pid = 0, dest_pid = 0;
    char id[64];
    if (!start_in_flight(s, d, name, &src_pid, id, sizeof(id)))
        return;
    struct ferr e = {0};
    int rc;
    rc = lab_instance_pid(d, name, &dest_pid, NULL, 0, &e);
    CHECK(rc == 0 && dest_pid > 0, "dest pid: %s", e.msg);
    if (dest_pid > 0)
        CHECK(kill(dest_pid, SIGKILL) == 0, "kill %d", (int)dest_pid);
    json_t *m = NULL;
    rc = lab_migration_wait(s, id, 60000, &m, &e);
    REQUIRE(rc == 0, "after kill: %s", e.msg);
    CHECK(strcmp(jstr(m, "state"), "failed") == 0, "state %s", jstr(m, "state"));
    CHECK(jstr(m, "error")[0] != '\0', "failed without an error");
    json_decref(m);
    check_source_runs_on(s, name, src_pid);
    check_dest_cleaned(d, name, dest_pid);
}

static void t_no_convergence(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    const char *name = "hot";
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    /* the round-trip guest is not needed any more: free its memory and CPU */
    struct ferr e = {0};
    int st = 0;
    if (lab_api(s, "DELETE", "/v1/instances/rt", NULL, &st, NULL, &e) != 0) {
    }
    if (!ensure_guest(s, name, CMDLINE_MAX))
        return;
    pid_t src_pid = 0, dest_pid = 0;
    REQUIRE(lab_instance_pid(s, name, &src_pid, NULL, 0, &e) == 0, "%s", e.msg);
    json_t *lim = limits(SLOW_BPS, 50, 8);
    char id[64];
    int rc = lab_migrate_start(s, d, name, lim, id, sizeof(id), &e);
    json_decref(lim);
    REQUIRE(rc == 0, "start: %s", e.msg);
    if (lab_instance_pid(d, name, &dest_pid, NULL, 0, &e) != 0)
        dest_pid = 0;
    json_t *m = NULL;
    rc = lab_migration_wait(s, id, 60000, &m, &e);
    REQUIRE(rc == 0, "wait: %s", e.msg);
    const char *err = jstr(m, "error");
    CHECK(strcmp(jstr(m, "state"), "failed") == 0, "state %s error '%s'", jstr(m, "state"), err);
    CHECK(strstr(err, "completion timeout") != NULL, "error '%s'", err);
    long long elapsed = (long long)json_integer_value(json_object_get(m, "elapsed_ms"));
    CHECK(elapsed >= 8000 && elapsed < 30000, "elapsed_ms %lld for an 8 s timeout", elapsed);
    json_decref(m);
    check_source_runs_on(s, name, src_pid);
    check_dest_cleaned(d, name, dest_pid);
}

/* ferry-agent refuses an --incoming-nice outside 0..19: exit 2, no start. */
static void t_bad_nice(void)
{
    static const char *const bad[] = {"20", "-1", "5x", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char bin[LAB_PATH_MAX + 16], dir[] = "/tmp/ferry-nice-XXXXXX";
        snprintf(bin, sizeof(bin), "%s/ferry-agent", L.build[0] ? L.build : "build");
        REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
        pid_t pid = fork();
        if (pid == 0) {
            int nul = open("/dev/null", O_WRONLY);
            if (nul >= 0)
                dup2(nul, 2);
            execl(bin, "ferry-agent", "--listen", "127.0.0.1:1", "--state-dir", dir,
                  "--incoming-nice", bad[i], (char *)NULL);
            _exit(127);
        }
        int status = 0;
        REQUIRE(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2, "--incoming-nice '%s': status %d",
              bad[i], status);
        rmdir(dir);
    }
}

int main(void)
{
    struct ferr e = {0};
    uint64_t t0 = lab_now_ms();
    if (geteuid() == 0) {
        char v[8];
        snprintf(v, sizeof(v), "%d", INCOMING_NICE);
        setenv("FERRY_LAB_INCOMING_NICE", v, 1);
        niced = 1;
    } else {
        printf("note: not root: the --incoming-nice checks are skipped (restoring a QEMU's "
               "priority at takeover needs root or RLIMIT_NICE)\n");
    }
    lab_ok = lab_start(&L, 2, &e) == 0;
    if (!lab_ok)
        printf("FAIL lab start: %s\n", e.msg);
    test_run("agent migrate: 5 round trips keep the guest intact and running", t_round_trips);
    test_run("agent migrate: cancel mid-flight leaves the source running", t_cancel);
    test_run("agent migrate: a bad --incoming-nice is refused", t_bad_nice);
    test_run("agent migrate: destination QEMU killed mid-flight fails cleanly", t_dest_killed);
    test_run("agent migrate: non-converging guest aborted by the completion timeout",
             t_no_convergence);
    lab_stop(&L);
    fprintf(stderr, "test_agent_migrate: %.1f s\n", (double)(lab_now_ms() - t0) / 1000.0);
    return lab_ok ? test_done() : 1;
}

/* Integration: the guest-impact budget on real lab migrations with a disk
 * (two ferry-agents, tests/lib/lab; the guest runs diskload, sequential
 * 4 KiB O_DIRECT writes on its virtio disk).
 *  - steady workload, budget {min_throughput_pct 80, p99 ratio 3}: the
 *    migration succeeds; the impact report has a baseline and the figures
 *    during it from query-blockstats with latency histograms; the samples
 *    carry the guest's disk figures; the budget judged measurements,
 *    steered the mirror speed and stayed inside (judged with generous
 *    bounds: at least 60 % of the baseline throughput kept, no conflict);
 *    the disk verifies on the destination;
 *  - impossible budget (the copy may not exceed 1 MiB/s, the guest writes
 *    several MiB/s): budget_conflict is reported and consent for the
 *    io_throttle step is requested; nothing is capped before the grant;
 *    granted, the guest's writes are capped (its own console shows it);
 *    cancelled, the cap is lifted (the guest writes at its rate again) and
 *    the source runs on with its disk intact;
 *  - the same with the destination QEMU killed mid-mirror: failed, cap
 *    lifted, source intact.
 * Every wait is bounded. Needs the lab image (make lab); disks under
 * /var/tmp. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/lab.h"
#include "../lib/test.h"

#define GUEST_MIB 128
#define DISK_MIB 64
#define STEADY_IOPS 300 /* requests/s of the steady workload */
#define HEAVY_IOPS 1500 /* requests/s of the workload no copy may follow */
#define CAPPED_IOPS 400 /* a capped guest stays below this (cap <= 512 KiB/s) */
#define MIG_TIMEOUT_MS 150000
#define WAIT_MS 60000

static struct lab L;
static int lab_ok;
static char disk_dir[64];
static const char *const NAME = "ib";

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static double jnum(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : -1;
}

static int mig_get(const struct lab_agent *s, const char *id, json_t **m)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    struct ferr e = {0};
    int st = 0;
    *m = NULL;
    return lab_api(s, "GET", path, NULL, &st, m, &e) == 0 && st == 200 && *m ? 0 : -1;
}

static int dl_cmd(const struct lab_agent *a, const char *cmd)
{
    struct ferr e = {0};
    char *rest = NULL;
    int rc = lab_console_expect(a, NAME, cmd, 0, "FERRY-ACK", LAB_CMD_TIMEOUT_MS, &rest, &e);
    free(rest);
    CHECK(rc == 0, "'%s' on %s: %s", cmd, a->name, e.msg);
    return rc;
}

/* Median write requests/s of the guest's next n FERRY-DISK lines on a. */
static double guest_iops(const struct lab_agent *a, int n)
{
    struct ferr e = {0};
    uint64_t off = 0;
    if (lab_console_offset(a, NAME, &off, &e) != 0)
        return -1;
    double v[16];
    int k = 0;
    for (int i = 0; i < n && i < 16; i++) {
        char *rest = NULL;
        /* "FERRY-DISK " with the space: not -RESULT, -STATUS, -CHECKSUM */
        if (lab_console_expect(a, NAME, NULL, off, "FERRY-DISK ", 10000, &rest, &e) != 0)
            break;
        json_t *j = json_loads(rest, 0, NULL);
        free(rest);
        if (!j)
            continue;
        v[k++] = jnum(j, "write_iops");
        json_decref(j);
        if (lab_console_offset(a, NAME, &off, &e) != 0)
            break;
    }
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return k ? v[k / 2] : -1;
}

static json_t *disk_verify(const struct lab_agent *a)
{
    struct ferr e = {0};
    char *rest = NULL;
    int rc = lab_console_expect(a, NAME, "verify", 0, "FERRY-DISK-RESULT ", LAB_CMD_TIMEOUT_MS,
                                &rest, &e);
    CHECK(rc == 0, "diskload verify on %s: %s", a->name, e.msg);
    json_t *r = rc == 0 ? json_loads(rest, 0, NULL) : NULL;
    free(rest);
    CHECK(r && json_is_true(json_object_get(r, "ok")), "disk verify on %s not ok", a->name);
    return r;
}

/* Where the guest runs now: 0 or 1; -1 when on neither. */
static int where(void)
{
    for (int i = 0; i < 2; i++) {
        struct ferr e = {0};
        char st[32] = "";
        pid_t pid = 0;
        if (lab_instance_pid(&L.agents[i], NAME, &pid, st, sizeof(st), &e) == 0 &&
            strcmp(st, "running") == 0)
            return i;
    }
    return -1;
}

/* Counts the agent events with action act (and, when step is not NULL,
 * that step) in the migration record m. */
static int count_events(const json_t *m, const char *act, const char *step)
{
    int n = 0;
    const json_t *ev = json_object_get(m, "events");
    for (size_t i = 0; i < json_array_size(ev); i++) {
        const json_t *x = json_array_get(ev, i);
        if (strcmp(jstr(x, "action"), act) == 0 && (!step || strcmp(jstr(x, "step"), step) == 0))
            n++;
    }
    return n;
}

static void t_steady(void)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return;
    }
    int at = where();
    REQUIRE(at >= 0, "guest not running");
    const struct lab_agent *s = &L.agents[at], *d = &L.agents[1 - at];
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "rate %d", STEADY_IOPS);
    if (dl_cmd(s, cmd) != 0)
        return;
    sleep(6); /* the baseline window: the guest undisturbed */
    json_t *pol = json_pack("{s:s, s:i, s:[s], s:{s:i, s:f, s:i, s:I, s:I}}", "kind", "adaptive",
                            "deadline_s", 3600, "ladder", "bandwidth", "budget",
                            "min_throughput_pct", 80, "max_p99_latency_ratio", 3.0, "baseline_s", 5,
                            "start_rate_bps", (json_int_t)(8 << 20), "max_rate_bps",
                            (json_int_t)(32 << 20));
    json_t *lim = json_pack("{s:I}", "max_bandwidth_bps", (json_int_t)(256 << 20));
    char id[64];
    struct ferr e = {0};
    int rc = lab_migrate_start_storage_policy(s, d, NAME, lim, pol, id, sizeof(id), &e);
    json_decref(pol);
    json_decref(lim);
    REQUIRE(rc == 0, "start: %s", e.msg);
    json_t *m = NULL;
    REQUIRE(lab_migration_wait(s, id, MIG_TIMEOUT_MS, &m, &e) == 0, "wait: %s", e.msg);
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "state %s error '%s'", jstr(m, "state"),
          jstr(m, "error"));
    const json_t *imp = json_object_get(m, "impact"), *b = json_object_get(m, "budget");
    const json_t *base = json_object_get(imp, "baseline"), *dur = json_object_get(imp, "during");
    CHECK(json_is_object(base) && json_is_object(dur), "impact has no baseline or during");
    CHECK(jnum(base, "iops") > STEADY_IOPS / 2 && jnum(base, "seconds") >= 3,
          "baseline %.0f requests/s over %.1f s", jnum(base, "iops"), jnum(base, "seconds"));
    CHECK(strcmp(jstr(imp, "latency_basis"), "histogram") == 0 &&
              jnum(base, "p99_latency_us") > 0 && jnum(dur, "p99_latency_us") > 0 &&
              jnum(base, "p50_latency_us") <= jnum(base, "p99_latency_us"),
          "no latency histogram: basis %s", jstr(imp, "latency_basis"));
    const json_t *pc = json_object_get(m, "pacing");
    CHECK(json_is_object(pc) && strcmp(jstr(pc, "by"), "budget") == 0,
          "a budget did not turn pacing on by default (pacing by '%s')", jstr(pc, "by"));
    double kept = jnum(imp, "throughput_retained_pct");
    CHECK(kept >= 60.0, "guest kept %.1f %% of its throughput", kept);
    CHECK(jnum(b, "judged") >= 2, "budget judged %.0f measurements", jnum(b, "judged"));
    /* the account the aim follows: the mean of the judged usages, at most
     * the worst of them, which only a guest outside its budget exceeds 1 by */
    double mu = jnum(b, "mean_usage");
    CHECK(mu >= 0 && (mu <= 1.0 || jnum(b, "violations") > 0),
          "mean usage %.2f with %.0f violations", mu, jnum(b, "violations"));
    const char *v = jstr(b, "verdict");
    CHECK(strcmp(v, "budget_conflict") != 0 && strcmp(v, "waived") != 0 &&
              strcmp(v, "io_throttled") != 0,
          "verdict %s on a steady workload", v);
    CHECK(count_events(m, "set_mirror_speed", NULL) >= 1 &&
              count_events(m, "report_budget", NULL) == 0,
          "mirror speed steered %d times, budget reports %d",
          count_events(m, "set_mirror_speed", NULL), count_events(m, "report_budget", NULL));
    const json_t *evs = json_object_get(m, "events");
    for (size_t i = 0; i < json_array_size(evs); i++) { /* the budget's steps, for a failure */
        const json_t *x = json_array_get(evs, i);
        const char *act = jstr(x, "action");
        if (strcmp(act, "set_mirror_speed") == 0 || strcmp(act, "report_budget") == 0 ||
            strcmp(act, "set_bandwidth") == 0)
            printf("# %.1f s %s %.1f MiB/s %s\n", jnum(x, "t_ms") / 1000.0, act,
                   jnum(x, "value") / 1048576.0, jstr(x, "reason"));
    }
    printf("# steady: kept %.1f %%, p99 %.0f -> %.0f us, %0.f of %.0f measurements outside, "
           "verdict %s\n",
           kept, jnum(base, "p99_latency_us"), jnum(dur, "p99_latency_us"), jnum(b, "violations"),
           jnum(b, "judged"), v);
    json_decref(m);
    /* the samples carry the guest's disk figures */
    char path[160];
    snprintf(path, sizeof(path), "/v1/migrations/%s?samples=1", id);
    int st = 0;
    rc = lab_api(s, "GET", path, NULL, &st, &m, &e);
    double best = 0;
    const json_t *smp = json_object_get(m, "samples");
    for (size_t i = 0; rc == 0 && i < json_array_size(smp); i++)
        if (jnum(json_array_get(smp, i), "guest_disk_bps") > best)
            best = jnum(json_array_get(smp, i), "guest_disk_bps");
    CHECK(best > 0, "no sample carries guest_disk_bps");
    json_decref(m);
    json_decref(disk_verify(d));
}

/* Starts a migration the budget cannot allow to converge and waits for its
 * io_throttle consent request; grants it and waits until the guest is
 * capped. Returns 1 with id filled and *capped_iops the guest's write rate
 * under the cap, 0 after a failed check. */
static int start_conflict(const struct lab_agent *s, const struct lab_agent *d, char *id, size_t n,
                          double *capped_iops)
{
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "rate %d", HEAVY_IOPS);
    if (dl_cmd(s, cmd) != 0)
        return 0;
    sleep(4);
    json_t *pol =
        json_pack("{s:s, s:i, s:[s], s:{s:f, s:I, s:I, s:I, s:i, s:i}}", "kind", "adaptive",
                  "deadline_s", 300, "ladder", "bandwidth", "budget", "max_p99_latency_ms", 10000.0,
                  "min_rate_bps", (json_int_t)(256 << 10), "max_rate_bps", (json_int_t)(1 << 20),
                  "start_rate_bps", (json_int_t)(1 << 20), "conflict_ms", 2000, "baseline_s", 3);
    struct ferr e = {0};
    int rc = lab_migrate_start_storage_policy(s, d, NAME, NULL, pol, id, n, &e);
    json_decref(pol);
    CHECK(rc == 0, "start: %s", e.msg);
    if (rc != 0)
        return 0;
    /* budget_conflict, then the consent request; no cap before the grant */
    uint64_t deadline = lab_now_ms() + WAIT_MS;
    int asked = 0;
    json_t *m = NULL;
    while (!asked && lab_now_ms() < deadline) {
        usleep(300000);
        json_decref(m);
        if (mig_get(s, id, &m) != 0) {
            m = NULL;
            continue;
        }
        const json_t *cp = json_object_get(m, "consent_pending");
        for (size_t i = 0; i < json_array_size(cp); i++)
            if (strcmp(json_string_value(json_array_get(cp, i)), "io_throttle") == 0)
                asked = 1;
        if (strcmp(jstr(m, "state"), "running") != 0)
            break;
    }
    CHECK(asked, "no io_throttle consent request (state %s)", m ? jstr(m, "state") : "?");
    CHECK(m && strcmp(jstr(json_object_get(m, "budget"), "verdict"), "budget_conflict") == 0 &&
              count_events(m, "report_budget", NULL) >= 1,
          "verdict %s, report_budget events %d",
          m ? jstr(json_object_get(m, "budget"), "verdict") : "?",
          m ? count_events(m, "report_budget", NULL) : -1);
    CHECK(m && count_events(m, "set_io_throttle", NULL) == 0 &&
              json_is_null(json_object_get(json_object_get(m, "impact"), "io_throttle")),
          "guest capped before consent");
    json_decref(m);
    if (!asked)
        return 0;
    char path[160];
    snprintf(path, sizeof(path), "/v1/migrations/%s/consent", id);
    json_t *b = json_pack("{s:s, s:b}", "step", "io_throttle", "granted", 1);
    int st = 0;
    rc = lab_api(s, "POST", path, b, &st, NULL, &e);
    json_decref(b);
    CHECK(rc == 0 && st == 200, "consent: status %d %s", st, e.msg);
    /* the cap is set and the guest feels it */
    int capped = 0;
    deadline = lab_now_ms() + WAIT_MS;
    while (!capped && lab_now_ms() < deadline) {
        usleep(300000);
        if (mig_get(s, id, &m) != 0)
            continue;
        capped = json_is_object(json_object_get(json_object_get(m, "impact"), "io_throttle"));
        json_decref(m);
    }
    CHECK(capped, "no io throttle after the grant");
    double iops = guest_iops(s, 3);
    CHECK(iops >= 0 && iops < CAPPED_IOPS, "capped guest still writes %.0f requests/s", iops);
    *capped_iops = iops;
    printf("# io throttle: guest writes %.0f requests/s under the cap (asked %d)\n", iops,
           HEAVY_IOPS);
    return capped;
}

/* After the migration ended: the cap is lifted, the guest writes at its
 * rate again (at least twice what it managed under the cap: on a loaded
 * machine it may not reach HEAVY_IOPS), its disk verifies. */
static void check_lifted(const struct lab_agent *s, const char *id, double capped)
{
    double want = 2.0 * capped > 200.0 ? 2.0 * capped : 200.0;
    json_t *m = NULL;
    int lifted = 0;
    uint64_t deadline = lab_now_ms() + 15000;
    while (!lifted && lab_now_ms() < deadline) {
        usleep(300000);
        if (mig_get(s, id, &m) != 0)
            continue;
        lifted = json_is_true(json_object_get(
            json_object_get(json_object_get(m, "impact"), "io_throttle"), "lifted"));
        json_decref(m);
    }
    CHECK(lifted, "io throttle not lifted");
    double iops = 0;
    for (int i = 0; i < 4 && iops < want; i++)
        iops = guest_iops(s, 3);
    CHECK(iops >= want, "guest still capped after the end: %.0f requests/s (%.0f under the cap)",
          iops, capped);
    printf("# after the end: guest writes %.0f requests/s again\n", iops);
    json_decref(disk_verify(s));
}

/* The start of a conflict case: the lab up, the guest found (*s its host,
 * *d the other agent) and a conflicting migration started
 * (start_conflict). Returns 1, or 0 after a failed check. */
static int conflict_case(const struct lab_agent **s, const struct lab_agent **d, char *id,
                         size_t n, double *capped)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return 0;
    }
    int at = where();
    CHECK(at >= 0, "guest not running");
    if (at < 0)
        return 0;
    *s = &L.agents[at];
    *d = &L.agents[1 - at];
    return start_conflict(*s, *d, id, n, capped);
}

static void t_conflict_cancel(void)
{
    const struct lab_agent *s, *d;
    char id[64];
    double capped = 0;
    if (!conflict_case(&s, &d, id, sizeof(id), &capped))
        return;
    char path[160];
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", id);
    struct ferr e = {0};
    int st = 0;
    CHECK(lab_api(s, "POST", path, NULL, &st, NULL, &e) == 0 && st == 202, "cancel: %d %s", st,
          e.msg);
    json_t *m = NULL;
    REQUIRE(lab_migration_wait(s, id, 30000, &m, &e) == 0, "after cancel: %s", e.msg);
    CHECK(strcmp(jstr(m, "state"), "cancelled") == 0, "state %s", jstr(m, "state"));
    json_decref(m);
    check_lifted(s, id, capped);
}

static void t_conflict_dest_killed(void)
{
    const struct lab_agent *s, *d;
    char id[64];
    double capped = 0;
    if (!conflict_case(&s, &d, id, sizeof(id), &capped))
        return;
    struct ferr e = {0};
    pid_t dpid = 0;
    CHECK(lab_instance_pid(d, NAME, &dpid, NULL, 0, &e) == 0 && dpid > 0 &&
              kill(dpid, SIGKILL) == 0,
          "kill the destination QEMU: %s", e.msg);
    json_t *m = NULL;
    REQUIRE(lab_migration_wait(s, id, 60000, &m, &e) == 0, "after kill: %s", e.msg);
    CHECK(strcmp(jstr(m, "state"), "failed") == 0, "state %s error '%s'", jstr(m, "state"),
          jstr(m, "error"));
    json_decref(m);
    check_lifted(s, id, capped);
}

int main(void)
{
    uint64_t t_start = lab_now_ms();
    snprintf(disk_dir, sizeof(disk_dir), "/var/tmp/ferry-aimp-XXXXXX");
    if (!mkdtemp(disk_dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", disk_dir, strerror(errno));
        return 1;
    }
    char img[128];
    snprintf(img, sizeof(img), "%s/ib.raw", disk_dir);
    int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int made = fd >= 0 && ftruncate(fd, (off_t)DISK_MIB << 20) == 0;
    if (fd >= 0)
        close(fd);
    struct ferr e = {0};
    lab_ok = made && lab_start(&L, 2, &e) == 0;
    if (lab_ok) {
        json_t *disks = json_pack("[{s:s, s:s, s:s}]", "id", "vda", "path", img, "format", "raw");
        lab_ok = lab_launch_guest_disks(&L.agents[0], NAME, GUEST_MIB,
                                        "console=ttyS0 quiet panic=-1 ferry.workload=diskload "
                                        "ferry.disk_mode=write ferry.disk_rate=300 "
                                        "ferry.disk_span_mib=64",
                                        disks, 1, LAB_BOOT_TIMEOUT_MS, &e) == 0;
        json_decref(disks);
    }
    if (!lab_ok)
        fprintf(stderr, "# lab: %s\n", e.msg);
    test_run("impact budget: steady workload stays inside, report complete", t_steady);
    test_run("impact budget: impossible budget -> conflict, io throttle with consent, lifted "
             "on cancel",
             t_conflict_cancel);
    test_run("impact budget: io throttle lifted when the destination dies mid-mirror",
             t_conflict_dest_killed);
    lab_stop(&L);
    unlink(img);
    rmdir(disk_dir);
    printf("# test_agent_impact: %.1f s\n", (double)(lab_now_ms() - t_start) / 1000.0);
    return test_done();
}

/* Integration: non-shared storage migration between two real ferry-agents
 * (tests/lib/lab), with lab guests running memload and diskload together:
 * diskload writes its virtio disk with O_DIRECT during the whole mirror,
 * so a lost or stale write shows up in its verify.
 *  - success: the destination creates its copy, the source mirrors to it
 *    over NBD, memory follows with pause-before-switchover; on the
 *    destination diskload's verify is ok, the checksum it reads equals the
 *    one recomputed from the destination's image file, memory is intact,
 *    the source QEMU is gone, disk bytes were counted in the samples;
 *  - cancel mid-mirror (mirror speed low, changed once with PATCH): the
 *    source runs on and verifies, its mirror and NBD node are gone, the
 *    destination's QEMU and disk copy are gone;
 *  - destination QEMU killed mid-mirror: failed with a reason, the same;
 *  - cancel while memory migrates (every mirror READY): the same;
 *  - cancel right after the request (set-up steps): the same;
 *  - after all of them the same guest migrates with its disk (QEMU kept
 *    no job or NBD node that would clash); then, after one more cancelled
 *    storage migration, a memory-only one of the same QEMU completes
 *    (pause-before-switchover is not left on);
 *  - a qcow2 disk arrives as a qcow2 copy with its data intact;
 *  - a disk on its own iothread: cancelled mid-mirror, then copied, intact,
 *    the destination QEMU with the same iothread.
 * Every wait is bounded. Needs the lab image (make lab); disks live under
 * /var/tmp (cache.direct needs O_DIRECT; tmpfs has none). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/lab.h"
#include "../lib/labqemu.h"
#include "../lib/test.h"

#define GUEST_MIB 256
#define DISK_MIB 64
#define MIG_TIMEOUT_MS 150000     /* one migration with its disk */
#define SLOW_MIRROR_BPS (2 << 20) /* bytes/s: a 64 MiB mirror takes ~30 s */
#define GONE_TIMEOUT_MS 15000     /* a QEMU, instance or file disappearing */

static struct lab L;
static int lab_ok;
static char disk_dir[64]; /* the source disks; removed at the end */
static const char *const CMDLINE =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload,diskload ferry.ws_mib=32 "
    "ferry.rate=1000 ferry.disk_rate=200 ferry.disk_span_mib=64";

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* Launches name on a with a fresh raw DISK_MIB disk in disk_dir, the disk
 * on an iothread of its own when iothread. */
static int launch_disk(const struct lab_agent *a, const char *name, int iothread)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s.raw", disk_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)DISK_MIB << 20) == 0, "create %s: %s", path,
          strerror(errno));
    if (fd >= 0)
        close(fd);
    json_t *disks = json_pack("[{s:s, s:s, s:s, s:b}]", "id", "vda", "path", path, "format", "raw",
                              "iothread", iothread);
    struct ferr e = {0};
    int rc = lab_launch_guest_disks(a, name, GUEST_MIB, CMDLINE, disks, 2, LAB_BOOT_TIMEOUT_MS, &e);
    json_decref(disks);
    CHECK(rc == 0, "launch %s: %s", name, e.msg);
    return rc == 0;
}

static int launch(const struct lab_agent *a, const char *name)
{
    return launch_disk(a, name, 0);
}

/* Whether QEMU pid's command line holds arg. */
static int qemu_has_arg(pid_t pid, const char *arg)
{
    char p[64], buf[8192];
    snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(p, "rb");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        if (strcmp(buf + i, arg) == 0)
            return 1;
    }
    return 0;
}

/* diskload's verify on name at a: returns the parsed FERRY-DISK-RESULT
 * (caller decrefs) after checking ok, no bad and no stale block. */
static json_t *disk_verify(const struct lab_agent *a, const char *name)
{
    struct ferr e = {0};
    char *rest = NULL;
    int rc = lab_console_expect(a, name, "diskload verify", 0, "FERRY-DISK-RESULT ",
                                LAB_CMD_TIMEOUT_MS, &rest, &e);
    CHECK(rc == 0, "diskload verify on %s: %s", a->name, e.msg);
    if (rc != 0)
        return NULL;
    json_t *r = json_loads(rest, 0, NULL);
    free(rest);
    CHECK(r != NULL, "FERRY-DISK-RESULT not JSON");
    if (!r)
        return NULL;
    CHECK(json_is_true(json_object_get(r, "ok")) && jint(r, "bad_blocks") == 0 &&
              jint(r, "stale_blocks") == 0,
          "disk verify on %s: ok=%d bad=%lld stale=%lld first_bad=%lld", a->name,
          json_is_true(json_object_get(r, "ok")), jint(r, "bad_blocks"), jint(r, "stale_blocks"),
          jint(r, "first_bad"));
    return r;
}

static void mem_intact(const struct lab_agent *a, const char *name)
{
    struct lab_integrity r;
    struct ferr e = {0};
    int rc = lab_verify(a, name, &r, &e);
    CHECK(rc == 0, "memload verify on %s: %s", a->name, e.msg);
    CHECK(rc != 0 || (r.ok == 1 && r.bad_pages == 0), "memory on %s: ok=%d bad=%lld", a->name, r.ok,
          r.bad_pages);
}

/* The migration object's storage.disks[0]. */
static json_t *disk0(json_t *m)
{
    return json_array_get(json_object_get(json_object_get(m, "storage"), "disks"), 0);
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

/* Waits until the mirror of id has copied at least bytes. */
static int wait_mirrored(const struct lab_agent *s, const char *id, long long bytes)
{
    uint64_t deadline = lab_now_ms() + 60000;
    while (lab_now_ms() < deadline) {
        json_t *m;
        if (mig_get(s, id, &m) == 0) {
            long long off = jint(disk0(m), "offset");
            const char *st = jstr(m, "state");
            int over = strcmp(st, "running") != 0 && strcmp(st, "starting") != 0;
            json_decref(m);
            if (off >= bytes)
                return 1;
            if (over)
                return 0;
        }
        usleep(200000);
    }
    return 0;
}

/* After a failed or cancelled migration: the source's mirror job and NBD
 * node are gone (the agent's view of QEMU's block jobs and nodes). */
static void check_source_storage_restored(const struct lab_agent *s, const char *id)
{
    uint64_t deadline = lab_now_ms() + GONE_TIMEOUT_MS;
    char phase[32] = "";
    int job = 1, node = 1;
    while (lab_now_ms() < deadline) {
        json_t *m;
        if (mig_get(s, id, &m) == 0) {
            snprintf(phase, sizeof(phase), "%s", jstr(json_object_get(m, "storage"), "phase"));
            job = json_is_true(json_object_get(disk0(m), "job_active"));
            node = json_is_true(json_object_get(disk0(m), "nbd_node"));
            json_decref(m);
            if (strcmp(phase, "restored") == 0)
                break;
        }
        usleep(200000);
    }
    CHECK(strcmp(phase, "restored") == 0 && !job && !node,
          "source storage phase '%s' job_active %d nbd_node %d", phase, job, node);
}

static void check_source_runs(const struct lab_agent *s, const char *name, pid_t pid_before)
{
    struct ferr e = {0};
    pid_t pid = 0;
    char st[32] = "";
    int rc = lab_instance_pid(s, name, &pid, st, sizeof(st), &e);
    for (int i = 0; i < 30 && rc == 0 && strcmp(st, "running") != 0; i++) {
        usleep(200000);
        rc = lab_instance_pid(s, name, &pid, st, sizeof(st), &e);
    }
    CHECK(rc == 0 && pid == pid_before && lab_pid_alive(pid) && strcmp(st, "running") == 0,
          "source: rc %d pid %d (was %d) state '%s'", rc, (int)pid, (int)pid_before, st);
    json_decref(disk_verify(s, name));
    mem_intact(s, name);
}

static void check_dest_cleaned(const struct lab_agent *d, const char *name, pid_t dest_pid,
                               const char *copy)
{
    CHECK(lab_instance_wait_gone(d, name, GONE_TIMEOUT_MS), "destination still lists %s", name);
    CHECK(dest_pid > 0 && lab_pid_wait_gone(dest_pid, GONE_TIMEOUT_MS),
          "destination QEMU %d still alive", (int)dest_pid);
    int gone = 0;
    for (int i = 0; i < 50 && !gone; i++) {
        gone = access(copy, F_OK) != 0;
        if (!gone)
            usleep(100000);
    }
    CHECK(gone, "destination disk copy %s still there", copy);
}

/* Starts a slow storage migration of name and waits until its mirror is
 * under way; *dest_pid and copy (the destination's image path) filled. */
static int start_slow(const char *name, char *id, size_t n, pid_t *dest_pid, char *copy, size_t cn)
{
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    struct ferr e = {0};
    json_t *lim = json_pack("{s:I}", "mirror_speed_bps", (json_int_t)SLOW_MIRROR_BPS);
    int rc = lab_migrate_start_storage(s, d, name, lim, id, n, &e);
    json_decref(lim);
    CHECK(rc == 0, "start: %s", e.msg);
    if (rc != 0)
        return 0;
    json_t *di = NULL;
    rc = lab_instance(d, name, &di, &e);
    CHECK(rc == 0, "GET destination: %s", e.msg);
    *dest_pid = rc == 0 ? (pid_t)jint(di, "pid") : 0;
    json_t *dd = json_array_get(json_object_get(json_object_get(di, "spec"), "disks"), 0);
    snprintf(copy, cn, "%s", jstr(dd, "path"));
    CHECK(strncmp(copy, d->state_dir, strlen(d->state_dir)) == 0 && access(copy, F_OK) == 0,
          "destination copy '%s' not in its state dir", copy);
    json_decref(di);
    CHECK(wait_mirrored(s, id, 4 << 20), "mirror of %s not under way", id);
    return 1;
}

/* Makes sure name runs on s, launching it when it does not; its QEMU pid
 * into *pid. Returns 1, or 0 after a failed check. */
static int ensure_running(const struct lab_agent *s, const char *name, pid_t *pid)
{
    struct ferr e = {0};
    char st[32] = "";
    if (lab_instance_pid(s, name, pid, st, sizeof(st), &e) == 0 && strcmp(st, "running") == 0)
        return 1;
    if (!launch(s, name))
        return 0;
    int rc = lab_instance_pid(s, name, pid, NULL, 0, &e);
    CHECK(rc == 0, "%s", e.msg);
    return rc == 0;
}

/* Cancels migration id on s (202) and waits for it to end, cancelled.
 * Returns 1 once it ended (the checks on the way recorded), 0 after a
 * failed check when it did not end. */
static int cancel_to_cancelled(const struct lab_agent *s, const char *id)
{
    struct ferr e = {0};
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", id);
    int sc = 0;
    int rc = lab_api(s, "POST", path, NULL, &sc, NULL, &e);
    CHECK(rc == 0 && sc == 202, "cancel: rc %d status %d %s", rc, sc, e.msg);
    json_t *m = NULL;
    rc = lab_migration_wait(s, id, 30000, &m, &e);
    CHECK(rc == 0, "after cancel: %s", e.msg);
    if (rc != 0)
        return 0;
    CHECK(strcmp(jstr(m, "state"), "cancelled") == 0, "state %s error '%s'", jstr(m, "state"),
          jstr(m, "error"));
    json_decref(m);
    return 1;
}

static void t_success(void)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return;
    }
    const char *name = "dk";
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    if (!launch(s, name))
        return;
    struct ferr e = {0};
    pid_t src_pid = 0;
    REQUIRE(lab_instance_pid(s, name, &src_pid, NULL, 0, &e) == 0, "%s", e.msg);
    /* 16 MiB/s: the mirror takes ~4 s, under ~800 O_DIRECT guest writes */
    json_t *lim = json_pack("{s:I, s:I}", "max_bandwidth_bps", (json_int_t)(256 << 20),
                            "mirror_speed_bps", (json_int_t)(16 << 20));
    char id[64];
    uint64_t t0 = lab_now_ms();
    int rc = lab_migrate_start_storage(s, d, name, lim, id, sizeof(id), &e);
    json_decref(lim);
    REQUIRE(rc == 0, "start: %s", e.msg);
    json_t *m = NULL;
    rc = lab_migration_wait(s, id, MIG_TIMEOUT_MS, &m, &e);
    REQUIRE(rc == 0, "wait: %s", e.msg);
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "state %s error '%s'", jstr(m, "state"),
          jstr(m, "error"));
    json_t *stg = json_object_get(m, "storage");
    CHECK(strcmp(jstr(stg, "phase"), "done") == 0 && jint(stg, "ready_ms") > 0,
          "storage phase '%s' ready_ms %lld", jstr(stg, "phase"), jint(stg, "ready_ms"));
    printf("# success: %.1f s (disks READY at %.1f s), downtime %lld ms\n",
           (double)(lab_now_ms() - t0) / 1000.0, (double)jint(stg, "ready_ms") / 1000.0,
           jint(json_object_get(m, "result"), "downtime_ms"));
    json_decref(m);
    /* disk bytes counted in the samples */
    char path[160];
    snprintf(path, sizeof(path), "/v1/migrations/%s?samples=1", id);
    int st = 0;
    rc = lab_api(s, "GET", path, NULL, &st, &m, &e);
    long long max_total = 0;
    json_t *smp = json_object_get(m, "samples");
    for (size_t i = 0; rc == 0 && i < json_array_size(smp); i++) {
        json_t *x = json_array_get(smp, i);
        if (jint(x, "disk_total") > max_total)
            max_total = jint(x, "disk_total");
    }
    CHECK(max_total >= (long long)DISK_MIB << 20, "samples' disk_total at most %lld", max_total);
    json_decref(m);
    /* the guest on the destination: its disk and memory */
    CHECK(lab_pid_wait_gone(src_pid, GONE_TIMEOUT_MS), "source QEMU %d still alive", (int)src_pid);
    CHECK(lab_instance_wait_gone(s, name, GONE_TIMEOUT_MS), "source agent still lists %s", name);
    json_decref(disk_verify(d, name));
    mem_intact(d, name);
    /* the checksum the guest reads is what the destination's image holds */
    char *ack = NULL;
    rc =
        lab_console_expect(d, name, "diskload pause", 0, "FERRY-ACK", LAB_CMD_TIMEOUT_MS, &ack, &e);
    free(ack);
    CHECK(rc == 0, "diskload pause: %s", e.msg);
    json_t *r = disk_verify(d, name);
    json_t *di = NULL;
    rc = lab_instance(d, name, &di, &e);
    CHECK(rc == 0, "GET destination: %s", e.msg);
    const char *copy =
        jstr(json_array_get(json_object_get(json_object_get(di, "spec"), "disks"), 0), "path");
    uint64_t h = 0;
    int hr = labq_disk_checksum(copy, (uint64_t)DISK_MIB << 20, &h);
    char hs[32];
    snprintf(hs, sizeof(hs), "%016llx", (unsigned long long)h);
    CHECK(hr == 0 && r && strcmp(hs, jstr(r, "checksum")) == 0,
          "guest checksum %s, destination image %s (%s: %d)", r ? jstr(r, "checksum") : "?", hs,
          copy, hr);
    json_decref(r);
    CHECK(strcmp(jstr(di, "storage"), "copy") == 0 && !json_object_get(di, "nbd"),
          "destination still serves NBD after completion (storage '%s')", jstr(di, "storage"));
    json_decref(di);
    snprintf(path, sizeof(path), "/v1/instances/%s", name);
    if (lab_api(d, "DELETE", path, NULL, &st, NULL, &e) != 0) {
    }
}

static void t_cancel_mid_mirror(void)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return;
    }
    const char *name = "dc";
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    if (!launch(s, name))
        return;
    struct ferr e = {0};
    pid_t src_pid = 0, dest_pid = 0;
    REQUIRE(lab_instance_pid(s, name, &src_pid, NULL, 0, &e) == 0, "%s", e.msg);
    char id[64], copy[512];
    if (!start_slow(name, id, sizeof(id), &dest_pid, copy, sizeof(copy)))
        return;
    /* the mirror speed can change mid-flight */
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    json_t *b = json_pack("{s:I}", "mirror_speed_bps", (json_int_t)(SLOW_MIRROR_BPS * 2));
    json_t *m = NULL;
    int st = 0;
    int rc = lab_api(s, "PATCH", path, b, &st, &m, &e);
    json_decref(b);
    CHECK(rc == 0 && st == 200 &&
              jint(json_object_get(m, "limits"), "mirror_speed_bps") == SLOW_MIRROR_BPS * 2,
          "PATCH mirror_speed_bps: rc %d status %d", rc, st);
    json_decref(m);
    b = json_pack("{s:s}", "mirror_speed_bps", "fast");
    rc = lab_api(s, "PATCH", path, b, &st, NULL, &e);
    json_decref(b);
    CHECK(rc == 0 && st == 400, "PATCH with a bad speed: status %d", st);
    json_t *cur = NULL;
    CHECK(mig_get(s, id, &cur) == 0 && strcmp(jstr(cur, "qemu_status"), "") == 0 &&
              strcmp(jstr(json_object_get(cur, "storage"), "phase"), "mirroring") == 0,
          "not mid-mirror: qemu_status '%s' phase '%s'", jstr(cur, "qemu_status"),
          jstr(json_object_get(cur, "storage"), "phase"));
    json_decref(cur);
    if (!cancel_to_cancelled(s, id))
        return;
    check_source_storage_restored(s, id);
    check_dest_cleaned(d, name, dest_pid, copy);
    check_source_runs(s, name, src_pid);
}

static void t_dest_killed(void)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return;
    }
    const char *name = "dc"; /* still on the source after the cancel */
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    struct ferr e = {0};
    pid_t src_pid = 0, dest_pid = 0;
    if (!ensure_running(s, name, &src_pid))
        return;
    char id[64], copy[512];
    if (!start_slow(name, id, sizeof(id), &dest_pid, copy, sizeof(copy)))
        return;
    CHECK(dest_pid > 0 && kill(dest_pid, SIGKILL) == 0, "kill %d", (int)dest_pid);
    json_t *m = NULL;
    int rc = lab_migration_wait(s, id, 60000, &m, &e);
    REQUIRE(rc == 0, "after kill: %s", e.msg);
    CHECK(strcmp(jstr(m, "state"), "failed") == 0 && jstr(m, "error")[0], "state %s error '%s'",
          jstr(m, "state"), jstr(m, "error"));
    printf("# destination killed: %s\n", jstr(m, "error"));
    json_decref(m);
    check_source_storage_restored(s, id);
    check_dest_cleaned(d, name, dest_pid, copy);
    check_source_runs(s, name, src_pid);
}

static void t_cancel_memory_phase(void)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return;
    }
    const char *name = "dc";
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    struct ferr e = {0};
    pid_t src_pid = 0, dest_pid = 0;
    if (!ensure_running(s, name, &src_pid))
        return;
    /* disks mirror at full speed, memory crawls: cancel lands while QEMU
     * migrates memory with every mirror READY */
    json_t *lim = json_pack("{s:I}", "max_bandwidth_bps", (json_int_t)(4 << 20));
    char id[64];
    int rc = lab_migrate_start_storage(s, d, name, lim, id, sizeof(id), &e);
    json_decref(lim);
    REQUIRE(rc == 0, "start: %s", e.msg);
    json_t *di = NULL;
    rc = lab_instance(d, name, &di, &e);
    CHECK(rc == 0, "GET destination: %s", e.msg);
    dest_pid = rc == 0 ? (pid_t)jint(di, "pid") : 0;
    char copy[512];
    snprintf(
        copy, sizeof(copy), "%s",
        jstr(json_array_get(json_object_get(json_object_get(di, "spec"), "disks"), 0), "path"));
    json_decref(di);
    rc = lab_migration_wait_transferred(s, id, 2u << 20, 60000, &e);
    CHECK(rc == 0, "memory not in flight: %s", e.msg);
    json_t *m = NULL;
    CHECK(mig_get(s, id, &m) == 0 &&
              strcmp(jstr(json_object_get(m, "storage"), "phase"), "ready") == 0 &&
              strcmp(jstr(m, "qemu_status"), "active") == 0,
          "not in the memory phase: phase '%s' qemu_status '%s'",
          jstr(json_object_get(m, "storage"), "phase"), jstr(m, "qemu_status"));
    json_decref(m);
    if (!cancel_to_cancelled(s, id))
        return;
    check_source_storage_restored(s, id);
    check_dest_cleaned(d, name, dest_pid, copy);
    check_source_runs(s, name, src_pid);
}

/* Cancel right after the request, while the agent is still setting up
 * (capabilities, asking the destination, adding the NBD node): whichever
 * step it lands in, the source ends with no job and no NBD node. */
static void t_cancel_at_once(void)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return;
    }
    const char *name = "dc";
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    struct ferr e = {0};
    pid_t src_pid = 0;
    if (!ensure_running(s, name, &src_pid))
        return;
    json_t *lim = json_pack("{s:I}", "mirror_speed_bps", (json_int_t)SLOW_MIRROR_BPS);
    char id[64];
    int rc = lab_migrate_start_storage(s, d, name, lim, id, sizeof(id), &e);
    json_decref(lim);
    REQUIRE(rc == 0, "start: %s", e.msg);
    if (!cancel_to_cancelled(s, id))
        return;
    check_source_storage_restored(s, id);
    CHECK(lab_instance_wait_gone(d, name, GONE_TIMEOUT_MS), "destination still lists %s", name);
    char copy[600];
    snprintf(copy, sizeof(copy), "%s/disks/%s.vda.raw", d->state_dir, name);
    int gone = 0;
    for (int i = 0; i < 50 && !gone; i++) {
        gone = access(copy, F_OK) != 0;
        if (!gone)
            usleep(100000);
    }
    CHECK(gone, "destination disk copy %s still there", copy);
    check_source_runs(s, name, src_pid);
}

/* After the failures above the same guest migrates with its disk: QEMU
 * itself holds no leftover job "mirror-vda" or node "nbd-vda" (either
 * would make blockdev-mirror or blockdev-add refuse). */
static void t_after_failures(void)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return;
    }
    const char *name = "dc";
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    struct ferr e = {0};
    pid_t src_pid = 0;
    char st[32] = "";
    if (lab_instance_pid(s, name, &src_pid, st, sizeof(st), &e) != 0)
        return test_skip("no guest left from the previous cases");
    char id[64];
    int rc = lab_migrate_start_storage(s, d, name, NULL, id, sizeof(id), &e);
    REQUIRE(rc == 0, "start: %s", e.msg);
    json_t *m = NULL;
    rc = lab_migration_wait(s, id, MIG_TIMEOUT_MS, &m, &e);
    REQUIRE(rc == 0, "wait: %s", e.msg);
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "state %s error '%s'", jstr(m, "state"),
          jstr(m, "error"));
    json_decref(m);
    CHECK(lab_pid_wait_gone(src_pid, GONE_TIMEOUT_MS), "source QEMU %d still alive", (int)src_pid);
    json_decref(disk_verify(d, name));
    mem_intact(d, name);
    /* a cancelled storage migration, then a memory-only one (shared disk:
     * both QEMUs open the destination's image) from the same QEMU: it must
     * not wait at pre-switchover for a mirror that is not there */
    pid_t dpid = 0;
    REQUIRE(lab_instance_pid(d, name, &dpid, NULL, 0, &e) == 0, "%s", e.msg);
    rc = lab_migrate_start_storage(d, s, name, NULL, id, sizeof(id), &e);
    REQUIRE(rc == 0, "start back: %s", e.msg);
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", id);
    int sc = 0;
    rc = lab_api(d, "POST", path, NULL, &sc, NULL, &e);
    CHECK(rc == 0 && sc == 202, "cancel: rc %d status %d", rc, sc);
    rc = lab_migration_wait(d, id, 30000, &m, &e);
    REQUIRE(rc == 0, "after cancel: %s", e.msg);
    json_decref(m);
    CHECK(lab_instance_wait_gone(s, name, GONE_TIMEOUT_MS), "source agent still lists %s", name);
    rc = lab_migrate(d, s, name, NULL, 60000, &m, &e);
    REQUIRE(rc == 0, "shared migration: %s", e.msg);
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "shared migration: state %s error '%s'",
          jstr(m, "state"), jstr(m, "error"));
    json_decref(m);
    json_decref(disk_verify(s, name));
    mem_intact(s, name);
    snprintf(path, sizeof(path), "/v1/instances/%s", name);
    if (lab_api(s, "DELETE", path, NULL, &sc, NULL, &e) != 0) {
    }
}

/* Migrates name from s to d with its disk under limits lim (taken), waits
 * for the end and checks: succeeded, the source QEMU src_pid gone,
 * diskload's verify ok on d. Returns 1 when it succeeded. */
static int migrate_disk_ok(const struct lab_agent *s, const struct lab_agent *d, const char *name,
                           json_t *lim, pid_t src_pid)
{
    struct ferr e = {0};
    char id[64];
    int rc = lab_migrate_start_storage(s, d, name, lim, id, sizeof(id), &e);
    json_decref(lim);
    CHECK(rc == 0, "start: %s", e.msg);
    if (rc != 0)
        return 0;
    json_t *m = NULL;
    rc = lab_migration_wait(s, id, MIG_TIMEOUT_MS, &m, &e);
    CHECK(rc == 0, "wait: %s", e.msg);
    if (rc != 0)
        return 0;
    int ok = strcmp(jstr(m, "state"), "succeeded") == 0;
    CHECK(ok, "state %s error '%s'", jstr(m, "state"), jstr(m, "error"));
    json_decref(m);
    CHECK(lab_pid_wait_gone(src_pid, GONE_TIMEOUT_MS), "source QEMU %d still alive", (int)src_pid);
    json_decref(disk_verify(d, name));
    return ok;
}

/* A qcow2 disk: the destination makes a qcow2 copy (qemu-img) of the same
 * virtual size and the guest's data arrives intact. */
static void t_qcow2(void)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return;
    }
    const char *name = "dq";
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    char path[128], cmd[256];
    snprintf(path, sizeof(path), "%s/%s.qcow2", disk_dir, name);
    snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 %s %dM", path, DISK_MIB);
    if (system(cmd) != 0)
        return test_skip("qemu-img create failed");
    json_t *disks = json_pack("[{s:s, s:s, s:s}]", "id", "vda", "path", path, "format", "qcow2");
    struct ferr e = {0};
    int rc = lab_launch_guest_disks(s, name, GUEST_MIB, CMDLINE, disks, 2, LAB_BOOT_TIMEOUT_MS, &e);
    json_decref(disks);
    REQUIRE(rc == 0, "launch: %s", e.msg);
    pid_t src_pid = 0;
    REQUIRE(lab_instance_pid(s, name, &src_pid, NULL, 0, &e) == 0, "%s", e.msg);
    if (!migrate_disk_ok(s, d, name, json_pack("{s:I}", "mirror_speed_bps", (json_int_t)(32 << 20)),
                         src_pid))
        return;
    json_t *di = NULL;
    rc = lab_instance(d, name, &di, &e);
    CHECK(rc == 0, "GET destination: %s", e.msg);
    json_t *dd = json_array_get(json_object_get(json_object_get(di, "spec"), "disks"), 0);
    char magic[4] = {0};
    FILE *f = fopen(jstr(dd, "path"), "rb");
    size_t got = f ? fread(magic, 1, 4, f) : 0;
    if (f)
        fclose(f);
    CHECK(strcmp(jstr(dd, "format"), "qcow2") == 0 && got == 4 && memcmp(magic, "QFI\xfb", 4) == 0,
          "destination copy %s is not qcow2", jstr(dd, "path"));
    CHECK(jint(json_object_get(di, "disk_sizes"), "vda") == (long long)DISK_MIB << 20,
          "destination virtual size %lld", jint(json_object_get(di, "disk_sizes"), "vda"));
    json_decref(di);
    snprintf(path, sizeof(path), "/v1/instances/%s", name);
    int st = 0;
    if (lab_api(d, "DELETE", path, NULL, &st, NULL, &e) != 0) {
    }
}

/* A disk on its own iothread (the guest's requests and the mirror off
 * QEMU's main loop): a cancel mid-mirror restores the source, then the
 * copy completes with the disk and memory intact, and the destination's
 * QEMU has the same iothread. */
static void t_iothread(void)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return;
    }
    const char *name = "dt";
    const char *dev = "virtio-blk-pci,drive=d-vda,id=vda,iothread=iot-vda";
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    if (!launch_disk(s, name, 1))
        return;
    struct ferr e = {0};
    pid_t src_pid = 0, dest_pid = 0;
    REQUIRE(lab_instance_pid(s, name, &src_pid, NULL, 0, &e) == 0, "%s", e.msg);
    CHECK(qemu_has_arg(src_pid, "iothread,id=iot-vda") && qemu_has_arg(src_pid, dev),
          "source QEMU %d without the disk's iothread", (int)src_pid);
    char id[64], copy[512];
    if (!start_slow(name, id, sizeof(id), &dest_pid, copy, sizeof(copy)))
        return;
    CHECK(qemu_has_arg(dest_pid, dev), "incoming QEMU %d without the disk's iothread",
          (int)dest_pid);
    if (!cancel_to_cancelled(s, id))
        return;
    check_source_storage_restored(s, id);
    check_dest_cleaned(d, name, dest_pid, copy);
    check_source_runs(s, name, src_pid);
    if (!migrate_disk_ok(s, d, name,
                         json_pack("{s:I, s:I}", "max_bandwidth_bps", (json_int_t)(256 << 20),
                                   "mirror_speed_bps", (json_int_t)(16 << 20)),
                         src_pid))
        return;
    mem_intact(d, name);
    json_t *di = NULL;
    int rc = lab_instance(d, name, &di, &e);
    CHECK(rc == 0, "GET destination: %s", e.msg);
    dest_pid = rc == 0 ? (pid_t)jint(di, "pid") : 0;
    json_t *dd = json_array_get(json_object_get(json_object_get(di, "spec"), "disks"), 0);
    CHECK(json_is_true(json_object_get(dd, "iothread")), "destination spec lost the iothread");
    CHECK(qemu_has_arg(dest_pid, dev), "destination QEMU %d without the disk's iothread",
          (int)dest_pid);
    json_decref(di);
    char path[128];
    snprintf(path, sizeof(path), "/v1/instances/%s", name);
    int st = 0;
    if (lab_api(d, "DELETE", path, NULL, &st, NULL, &e) != 0) {
    }
}

/* Bad disk specs and storage requests are refused naming the field, and
 * nothing is left behind. */
static void t_validation(void)
{
    if (!lab_ok) {
        CHECK(0, "lab did not start: a setup failure is a failure");
        return;
    }
    const struct lab_agent *a = &L.agents[1];
    static const struct {
        const char *disks; /* JSON */
        const char *extra; /* JSON object merged into the body, or NULL */
        const char *path;  /* endpoint */
        const char *field; /* expected error field */
    } cases[] = {
        {"[{\"id\":\"vda\",\"path\":\"rel.raw\"}]", NULL, "/v1/instances", "disks"},
        {"[{\"id\":\"vda\",\"path\":\"/a,b.raw\"}]", NULL, "/v1/instances", "disks"},
        {"[{\"id\":\"1da\",\"path\":\"/a.raw\"}]", NULL, "/v1/instances", "disks"},
        {"[{\"id\":\"vDa\",\"path\":\"/a.raw\"}]", NULL, "/v1/instances", "disks"},
        {"[{\"id\":\"vda\",\"path\":\"/a.raw\",\"format\":\"vmdk\"}]", NULL, "/v1/instances",
         "disks"},
        {"[{\"id\":\"vda\",\"path\":\"/a.raw\",\"cache\":\"none\"}]", NULL, "/v1/instances",
         "cache"},
        {"[{\"id\":\"vda\",\"path\":\"/a.raw\"},{\"id\":\"vda\",\"path\":\"/b.raw\"}]", NULL,
         "/v1/instances", "disks"},
        {"[{\"id\":\"a\",\"path\":\"/a\"},{\"id\":\"b\",\"path\":\"/b\"},{\"id\":\"c\",\"path\":"
         "\"/c\"},{\"id\":\"d\",\"path\":\"/d\"},{\"id\":\"e\",\"path\":\"/e\"}]",
         NULL, "/v1/instances", "disks"},
        {"[{\"id\":\"vda\",\"path\":\"/nonexistent/a.raw\"}]", NULL, "/v1/instances", "disks"},
        {"[{\"id\":\"vda\",\"path\":\"/a.raw\"}]", "{\"storage\":\"copy\"}", "/v1/incoming",
         "disk_sizes"},
        {"[{\"id\":\"vda\",\"path\":\"/a.raw\"}]",
         "{\"storage\":\"copy\",\"disk_sizes\":{\"vda\":1000}}", "/v1/incoming", "disk_sizes"},
        {"[{\"id\":\"vda\",\"path\":\"/a.raw\"}]",
         "{\"storage\":\"copy\",\"disk_sizes\":{\"vda\":1048576,\"vdb\":1048576}}", "/v1/incoming",
         "disk_sizes"},
        {"[{\"id\":\"vda\",\"path\":\"/a.raw\"}]", "{\"storage\":\"nfs\"}", "/v1/incoming",
         "storage"},
        {"[{\"id\":\"vda\",\"path\":\"/a.raw\"}]", "{\"disk_sizes\":{\"vda\":1048576}}",
         "/v1/incoming", "disk_sizes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *b = json_pack("{s:s}", "name", "bad");
        json_object_set_new(b, "disks", json_loads(cases[i].disks, 0, NULL));
        if (cases[i].extra) {
            json_t *x = json_loads(cases[i].extra, 0, NULL);
            json_object_update(b, x);
            json_decref(x);
        }
        struct ferr e = {0};
        int st = 0;
        json_t *o = NULL;
        int rc = lab_api(a, "POST", cases[i].path, b, &st, &o, &e);
        json_decref(b);
        const char *field = jstr(json_object_get(o, "error"), "field");
        CHECK(rc == 0 && st == 400 && strcmp(field, cases[i].field) == 0,
              "case %zu: status %d field '%s', want 400 '%s'", i, st, field, cases[i].field);
        json_decref(o);
    }
    size_t n = 1;
    struct ferr e = {0};
    CHECK(lab_instance_count(a, &n, &e) == 0 && n == 0, "%zu instances left", n);
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/disks/bad.vda.raw", a->state_dir);
    CHECK(access(dir, F_OK) != 0, "%s left behind", dir);
}

int main(void)
{
    snprintf(disk_dir, sizeof(disk_dir), "/var/tmp/ferry-adisk-XXXXXX");
    if (!mkdtemp(disk_dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", disk_dir, strerror(errno));
        return 1;
    }
    struct ferr e = {0};
    lab_ok = lab_start(&L, 2, &e) == 0;
    if (!lab_ok)
        fprintf(stderr, "# lab: %s\n", e.msg);
    test_run("disk specs and storage requests validated", t_validation);
    test_run("storage copy: disk and memory intact on the destination", t_success);
    test_run("cancel mid-mirror: source restored, destination cleaned", t_cancel_mid_mirror);
    test_run("destination killed mid-mirror: failed, source restored", t_dest_killed);
    test_run("cancel while memory migrates: source restored", t_cancel_memory_phase);
    test_run("cancel at once: source restored", t_cancel_at_once);
    test_run("after every failure the guest still migrates with its disk", t_after_failures);
    test_run("qcow2 disk: qcow2 copy, data intact", t_qcow2);
    test_run("disk on its own iothread: cancel restores, copy intact", t_iothread);
    lab_stop(&L);
    char p[128];
    const char *names[] = {"dk.raw", "dc.raw", "dq.qcow2", "dt.raw"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/%s", disk_dir, names[i]);
        unlink(p);
    }
    rmdir(disk_dir);
    return test_done();
}

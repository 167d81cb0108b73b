/* Integration: the shared-network scenario of issue 6 (part 5) in network
 * namespaces (tests/lib/netlab): three lab hosts "src", "dst" and "sto"
 * behind one bridge, every host's link shaped with tc tbf. The storage
 * host serves the guest's disk as an NBD export (qemu-nbd); the guest runs
 * on the source (ferry-agent inside the source namespace), its virtio disk
 * QEMU's NBD client to the storage host, running memload and diskload; a
 * memory-only migration (both QEMUs open the same export) moves it to the
 * destination over the same shaped link.
 *  - the lab itself: hosts reach each other only through the hub, every
 *    link carries a tbf of the asked rate, and destroying the lab leaves
 *    the caller's namespace exactly as it was (same interfaces, no lab
 *    namespace left);
 *  - the migration succeeds; on the destination memload's verify is ok,
 *    diskload's verify is ok (no bad, no stale block) and the checksum it
 *    reads equals the one recomputed from the image file the storage host
 *    serves; the source QEMU is gone; the migration stream crossed the
 *    source's shaped link (its eth0 sent at least ram_transferred bytes),
 *    and so did the guest's disk traffic before it; the agent's impact
 *    measurement saw the NBD disk's I/O (baseline IOPS);
 *  - back to the source with `ferry migrate --pacing` (limits.pacing): the
 *    agent paces QEMU's migration socket at max-bandwidth (pacing active at
 *    that rate), the guest's memory intact;
 *  - an NBD disk refuses a non-shared ("copy") storage migration with a
 *    clear error, changing nothing: the guest keeps running on the source.
 * Needs root (network namespaces, tc): skips with the reason otherwise.
 * Every wait is bounded. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/lab.h"
#include "../lib/labqemu.h"
#include "../lib/netlab.h"
#include "../lib/test.h"

#define GUEST_MIB 256
#define DISK_MIB 32
#define NBD_PORT 10809
#define LINK_BPS 200000000ull /* 200 Mbit/s on every host's link */
#define LINK_QUEUE_MS 20
#define MIG_TIMEOUT_MS 120000
#define GONE_TIMEOUT_MS 15000
#define PACED_BPS (8 << 20) /* bytes/s: the paced migration back takes ~17 s */

static const char *const CMDLINE =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload,diskload ferry.ws_mib=32 "
    "ferry.rate=1000 ferry.disk_rate=100 ferry.disk_span_mib=32";

/* The interface names of the calling thread's namespace, sorted by the
 * kernel's listing order, joined with spaces into out (n bytes). */
static void iface_list(char *out, size_t n)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/thread-self/net/dev", "r");
    if (!f)
        return;
    char line[512];
    size_t used = 0;
    while (fgets(line, sizeof(line), f)) {
        char *c = strchr(line, ':');
        if (!c)
            continue;
        *c = '\0';
        char *nm = line;
        while (*nm == ' ')
            nm++;
        int w = snprintf(out + used, n - used, "%s ", nm);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    fclose(f);
}

static int ns_exists(const char *name)
{
    char p[96];
    snprintf(p, sizeof(p), "/run/netns/%s", name);
    return access(p, F_OK) == 0;
}

/* Output of a tc/ip command, for the shape check. */
static int run_out(const char *cmdline, char *out, size_t n)
{
    FILE *p = popen(cmdline, "r");
    if (!p)
        return -1;
    size_t len = fread(out, 1, n - 1, p);
    out[len] = '\0';
    return pclose(p);
}

static void t_lab(void)
{
    char why[160];
    if (!netlab_available(why, sizeof(why))) {
        test_skip("%s", why);
        return;
    }
    char before[1024], after[1024];
    iface_list(before, sizeof(before));
    struct stat home_before, home_after;
    REQUIRE(stat("/proc/thread-self/ns/net", &home_before) == 0, "stat own netns");
    struct netlab nl;
    struct ferr e = {0};
    const char *names[] = {"src", "dst", "sto"};
    REQUIRE(netlab_create(&nl, 3, names, &e) == 0, "netlab_create: %s", e.msg);
    char hub[NETLAB_NS_MAX], src_ns[NETLAB_NS_MAX];
    snprintf(hub, sizeof(hub), "%s", nl.hub);
    snprintf(src_ns, sizeof(src_ns), "%s", nl.hosts[0].ns);
    CHECK(ns_exists(hub) && ns_exists(src_ns), "namespaces %s, %s not created", hub, src_ns);
    struct netlab_shape sh = {.rate_bps = LINK_BPS, .queue_ms = LINK_QUEUE_MS, .delay_us = 0};
    for (int i = 0; i < nl.n; i++)
        CHECK(netlab_shape(&nl, i, &sh, &e) == 0, "shape %s: %s", nl.hosts[i].name, e.msg);
    char out[2048], c[256];
    snprintf(c, sizeof(c), "tc -n %s qdisc show dev eth0; tc -n %s qdisc show dev h1", src_ns, hub);
    run_out(c, out, sizeof(out));
    CHECK(strstr(out, "tbf") && strstr(out, "rate 200Mbit"), "no tbf at 200Mbit: %s", out);
    /* the hosts reach each other through the hub: ping from src to sto
     * (busybox-static is a lab dependency) */
    snprintf(c, sizeof(c), "ip netns exec %s busybox ping -c 1 -W 2 %s >/dev/null 2>&1", src_ns,
             nl.hosts[2].addr);
    CHECK(system(c) == 0, "src cannot reach sto at %s", nl.hosts[2].addr);
    /* a bad shape is refused and names the field */
    struct netlab_shape bad = {.rate_bps = 0, .queue_ms = 20};
    CHECK(netlab_shape(&nl, 0, &bad, &e) == FERR_INVAL && strcmp(e.field, "rate_bps") == 0,
          "rate 0 accepted (field '%s')", e.field);
    /* the caller's namespace is untouched even while entered and left */
    REQUIRE(netlab_enter(&nl, &e) == 0, "enter: %s", e.msg);
    char inside[1024];
    iface_list(inside, sizeof(inside));
    CHECK(strstr(inside, "br0") != NULL, "hub has no br0: %s", inside);
    netlab_destroy(&nl);
    REQUIRE(stat("/proc/thread-self/ns/net", &home_after) == 0, "stat own netns");
    CHECK(home_before.st_ino == home_after.st_ino, "the thread did not return to its netns");
    iface_list(after, sizeof(after));
    CHECK(strcmp(before, after) == 0, "host interfaces changed: '%s' -> '%s'", before, after);
    CHECK(!ns_exists(hub) && !ns_exists(src_ns), "namespaces left after destroy");
}

static void t_shared_migration(void)
{
    char why[160];
    if (!netlab_available(why, sizeof(why))) {
        test_skip("%s", why);
        return;
    }
    struct ferr e = {0};
    char build[LAB_PATH_MAX], lab_dir[LAB_PATH_MAX];
    REQUIRE(netlab_paths(build, lab_dir, sizeof(build), &e) == 0, "%s", e.msg);
    struct netlab nl;
    const char *names[] = {"src", "dst", "sto"};
    REQUIRE(netlab_create(&nl, 3, names, &e) == 0, "netlab_create: %s", e.msg);
    struct netlab_shape sh = {.rate_bps = LINK_BPS, .queue_ms = LINK_QUEUE_MS, .delay_us = 0};
    int ok = 1;
    for (int i = 0; i < nl.n && ok; i++) {
        ok = netlab_shape(&nl, i, &sh, &e) == 0;
        CHECK(ok, "shape %s: %s", nl.hosts[i].name, e.msg);
    }
    char img[LAB_PATH_MAX + 16];
    snprintf(img, sizeof(img), "%s/disk.raw", nl.tmp);
    int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (ok) {
        ok = fd >= 0 && ftruncate(fd, (off_t)DISK_MIB << 20) == 0;
        CHECK(ok, "create %s: %s", img, strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    if (ok) {
        ok = netlab_enter(&nl, &e) == 0;
        CHECK(ok, "enter: %s", e.msg);
    }
    pid_t nbd = 0;
    if (ok) {
        ok = netlab_nbd_serve(&nl, 2, img, "disk", NBD_PORT, &nbd, &e) == 0;
        CHECK(ok, "NBD server: %s", e.msg);
    }
    struct lab_agent s, d;
    int port = 20000 + (int)(getpid() % 10000);
    if (ok) {
        ok = netlab_start_agent(&nl, 0, build, lab_dir, port, &s, &e) == 0 &&
             netlab_start_agent(&nl, 1, build, lab_dir, port, &d, &e) == 0;
        CHECK(ok, "agents: %s", e.msg);
    }
    if (!ok) {
        netlab_destroy(&nl);
        return;
    }
    const char *name = "nb";
    json_t *disks = json_pack("[{s:s, s:{s:s, s:i, s:s}}]", "id", "vda", "nbd", "host",
                              nl.hosts[2].addr, "port", NBD_PORT, "export", "disk");
    int rc =
        lab_launch_guest_disks(&s, name, GUEST_MIB, CMDLINE, disks, 2, LAB_BOOT_TIMEOUT_MS, &e);
    json_decref(disks);
    if (rc != 0) {
        CHECK(0, "launch on NBD: %s", e.msg);
        netlab_destroy(&nl);
        return;
    }
    /* the guest's disk I/O crosses the network: the storage host sends */
    uint64_t sto_tx0 = 0, sto_rx0 = 0, sto_tx1 = 0, sto_rx1 = 0;
    CHECK(netlab_link_bytes(&nl, 2, &sto_tx0, &sto_rx0, &e) == 0, "%s", e.msg);
    char *line = NULL;
    uint64_t off = 0;
    CHECK(lab_console_offset(&s, name, &off, &e) == 0, "%s", e.msg);
    rc = lab_console_expect(&s, name, NULL, off, "FERRY-DISK ", 10000, &line, &e);
    CHECK(rc == 0, "no FERRY-DISK report: %s", e.msg);
    free(line);
    CHECK(netlab_link_bytes(&nl, 2, &sto_tx1, &sto_rx1, &e) == 0, "%s", e.msg);
    CHECK(sto_tx1 > sto_tx0 && sto_rx1 > sto_rx0,
          "no disk traffic on the storage link (tx %llu -> %llu)", (unsigned long long)sto_tx0,
          (unsigned long long)sto_tx1);

    /* non-shared storage is refused for a disk on network storage */
    char id[64];
    rc = lab_migrate_start_storage(&s, &d, name, NULL, id, sizeof(id), &e);
    CHECK(rc != 0 && strstr(e.msg, "network storage") != NULL,
          "copy migration of an NBD disk: rc %d '%s'", rc, e.msg);
    CHECK(lab_instance_wait_gone(&d, name, GONE_TIMEOUT_MS), "destination kept %s", name);

    pid_t src_pid = 0;
    char state[32];
    CHECK(lab_instance_pid(&s, name, &src_pid, state, sizeof(state), &e) == 0 &&
              strcmp(state, "running") == 0,
          "source not running after the refusal: %s %s", state, e.msg);
    uint64_t tx0 = 0, rx0 = 0, tx1 = 0, rx1 = 0;
    CHECK(netlab_link_bytes(&nl, 0, &tx0, &rx0, &e) == 0, "%s", e.msg);
    json_t *lim =
        json_pack("{s:I, s:I}", "downtime_ms", (json_int_t)300, "max_bandwidth_bps", (json_int_t)0);
    json_t *m = NULL;
    uint64_t t0 = lab_now_ms();
    rc = lab_migrate(&s, &d, name, lim, MIG_TIMEOUT_MS, &m, &e);
    json_decref(lim);
    CHECK(rc == 0, "migrate: %s", e.msg);
    CHECK(netlab_link_bytes(&nl, 0, &tx1, &rx1, &e) == 0, "%s", e.msg);
    if (rc == 0) {
        json_t *res = json_object_get(m, "result");
        long long ram = lab_jint(res, "ram_transferred", -1);
        CHECK(strcmp(lab_jstr(m, "state"), "succeeded") == 0, "state %s error '%s'",
              lab_jstr(m, "state"), lab_jstr(m, "error"));
        CHECK(ram > 0 && tx1 - tx0 >= (uint64_t)ram, "source link sent %llu bytes, migration %lld",
              (unsigned long long)(tx1 - tx0), ram);
        /* the agent measured the guest's NBD-backed disk (query-blockstats
         * works for any backend; the baseline here starts at boot, before
         * the latency histogram was on, so its basis may be the mean) */
        json_t *imp = json_object_get(m, "impact");
        json_t *bl = json_object_get(imp, "baseline");
        json_t *iops = json_object_get(bl, "iops");
        CHECK(json_is_number(iops) && json_number_value(iops) > 10,
              "the agent's impact baseline shows no disk I/O on the NBD disk");
        printf("# migrated in %.1f s (QEMU total %lld ms, downtime %lld ms), %lld RAM bytes; "
               "source link sent %.1f MiB\n",
               (double)(lab_now_ms() - t0) / 1000.0, lab_jint(res, "total_time_ms", -1),
               lab_jint(res, "downtime_ms", -1), ram, (double)(tx1 - tx0) / 1048576.0);
    }
    json_decref(m);
    CHECK(lab_pid_wait_gone(src_pid, GONE_TIMEOUT_MS), "source QEMU %d still alive", (int)src_pid);
    /* memory and disk intact on the destination */
    struct lab_integrity li;
    rc = lab_verify(&d, name, &li, &e);
    CHECK(rc == 0 && li.ok, "memload verify on the destination: rc %d ok %d bad %lld (%s)", rc,
          li.ok, li.bad_pages, e.msg);
    char *ack = NULL;
    rc = lab_console_expect(&d, name, "diskload pause", 0, "FERRY-ACK", LAB_CMD_TIMEOUT_MS, &ack,
                            &e);
    free(ack);
    CHECK(rc == 0, "diskload pause: %s", e.msg);
    char *rest = NULL;
    rc = lab_console_expect(&d, name, "diskload verify", 0, "FERRY-DISK-RESULT ",
                            LAB_CMD_TIMEOUT_MS, &rest, &e);
    CHECK(rc == 0, "diskload verify: %s", e.msg);
    json_t *r = rest ? json_loads(rest, 0, NULL) : NULL;
    free(rest);
    CHECK(r && json_is_true(json_object_get(r, "ok")) && lab_jint(r, "bad_blocks", -1) == 0 &&
              lab_jint(r, "stale_blocks", -1) == 0,
          "disk verify: ok=%d bad=%lld stale=%lld", r && json_is_true(json_object_get(r, "ok")),
          lab_jint(r, "bad_blocks", -1), lab_jint(r, "stale_blocks", -1));
    uint64_t h = 0;
    int hr = labq_disk_checksum(img, (uint64_t)DISK_MIB << 20, &h);
    char hs[32];
    snprintf(hs, sizeof(hs), "%016llx", (unsigned long long)h);
    CHECK(hr == 0 && r && strcmp(hs, lab_jstr(r, "checksum")) == 0,
          "guest checksum %s, image on the storage host %s (%d)", r ? lab_jstr(r, "checksum") : "?",
          hs, hr);
    json_decref(r);

    /* back to the source, the agent pacing QEMU's migration socket at the
     * bandwidth cap (limits.pacing): in force, and the guest intact */
    rc = lab_console_expect(&d, name, "diskload resume", 0, "FERRY-ACK", LAB_CMD_TIMEOUT_MS, &ack,
                            &e);
    free(ack);
    CHECK(rc == 0, "diskload resume: %s", e.msg);
    /* through the CLI (agent-direct, --pacing), run from the hub like the
     * test itself; --json prints the final migration object */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "timeout %d %s/ferry migrate --from %s --to %s %s --bandwidth %d --downtime 300 "
             "--pacing --json --quiet",
             MIG_TIMEOUT_MS / 1000, build, d.url, s.url, name, PACED_BPS);
    static char cli_out[1 << 20];
    int cli_rc = run_out(cmd, cli_out, sizeof(cli_out));
    m = json_loads(cli_out, JSON_DISABLE_EOF_CHECK, NULL);
    rc = cli_rc == 0 && m ? 0 : -1;
    CHECK(rc == 0, "ferry migrate --pacing: status %d, output '%.200s'", cli_rc, cli_out);
    if (rc == 0) {
        json_t *pc = json_object_get(m, "pacing");
        CHECK(strcmp(lab_jstr(m, "state"), "succeeded") == 0, "paced: state %s error '%s'",
              lab_jstr(m, "state"), lab_jstr(m, "error"));
        CHECK(json_is_true(json_object_get(pc, "active")) &&
                  lab_jint(pc, "rate_bps", -1) == PACED_BPS,
              "socket pacing not in force: %s", lab_jstr(pc, "note"));
        printf("# paced migration: %.1f s QEMU total, pacing from %lld ms\n",
               (double)lab_jint(json_object_get(m, "result"), "total_time_ms", -1) / 1000.0,
               lab_jint(pc, "since_ms", -1));
    }
    json_decref(m);
    rc = lab_verify(&s, name, &li, &e);
    CHECK(rc == 0 && li.ok, "memload verify after the paced migration: rc %d ok %d (%s)", rc,
          li.ok, e.msg);
    netlab_destroy(&nl);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_run("netlab: namespaces, shaping, cleanup", t_lab);
    test_run("netlab: memory-only migration, disk on NBD over the shaped link", t_shared_migration);
    return test_done();
}

/* Integration: the lab guest's disk workload diskload (lab/guest/diskload.c)
 * on a raw virtio disk under plain QEMU (cache=none, so its O_DIRECT
 * requests reach the image file). Proves what the impact measurements and
 * the disk migration tests build on: it reports throughput and ordered
 * latency percentiles every second, holds a target rate, its fill pattern
 * is what the image file really holds (checksum recomputed on the host),
 * verify passes on an intact disk and fails on a flipped byte and on a
 * stale block (a lost write), and a plain migration with a shared disk
 * keeps the disk intact.
 *
 * Guest files: $BUILD/lab/{vmlinuz,initrd.img} (BUILD defaults to build;
 * build/lab when $BUILD/lab has none, as under SANITIZE=1). Disk images
 * live in a private directory under /var/tmp (cache=none needs O_DIRECT,
 * which tmpfs refuses). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/guestcon.h"
#include "../lib/labqemu.h"
#include "../lib/test.h"
#include "util/ferr.h"
#include "util/xalloc.h"

#define BOOT_TIMEOUT_MS 180000 /* TCG boot + 64 MiB fill; ~4 s measured */
#define CMD_TIMEOUT_MS 60000   /* one command's answer, verify included */
#define LINE_TIMEOUT_MS 5000   /* one FERRY-DISK line (one a second) */
#define SPAN_MIB 64
#define DISK_MIB 80
#define BS 4096
#define RATE_IOPS 100

static char lab_dir[LABQ_PATH_MAX];
static char disk_dir[64]; /* holds disk.img, removed at the end */

/* Starts the lab guest (labq_spawn) with the raw image disk as a virtio
 * disk with cache=none; with incoming non-zero it waits for
 * "-incoming defer". */
static int guest_spawn(struct labq *g, const char *params, const char *disk, int incoming)
{
    char *drive = xasprintf("file=%s,format=raw,if=virtio,cache=none", disk);
    const char *extra[] = {"-drive", drive, incoming ? "-incoming" : NULL, "defer", NULL};
    int rc = labq_spawn(g, lab_dir, params, extra);
    free(drive);
    return rc;
}

/* Boots diskload on disk with extra parameters, connects the console and
 * waits for its FERRY-DISK-CHECKSUM (the boot fill) and FERRY-READY. On 0,
 * *sum_out is the rest of the checksum line (caller frees). On failure g
 * is stopped. */
static int guest_boot(struct labq *g, const char *extra, const char *disk, char **sum_out)
{
    *sum_out = NULL;
    char *params = xasprintf("ferry.workload=diskload ferry.disk_span_mib=%d ferry.disk_bs=%d %s",
                             SPAN_MIB, BS, extra);
    int rc = guest_spawn(g, params, disk, 0);
    free(params);
    if (rc < 0)
        return rc;
    rc = guestcon_open(&g->con, g->ser_path, 10000);
    if (rc == 0) {
        g->con.log = stderr;
        char *ready = NULL;
        rc = guestcon_expect(&g->con, "FERRY-DISK-CHECKSUM ", BOOT_TIMEOUT_MS, sum_out);
        if (rc == 0)
            rc = guestcon_expect(&g->con, "FERRY-READY ", BOOT_TIMEOUT_MS, &ready);
        if (rc == 0 && !strstr(ready, "\"workload\":\"diskload\""))
            rc = FERR_PEER;
        free(ready);
    }
    if (rc < 0) {
        fprintf(stderr, "guest_boot: rc %d; qemu output follows\n", rc);
        labq_dump_log(g);
        free(*sum_out);
        *sum_out = NULL;
        labq_stop(g);
    }
    return rc;
}

/* Creates an empty raw image of DISK_MIB in disk_dir with qemu-img (the
 * tool operators use). Returns the path (caller frees) or NULL. */
static char *disk_create(const char *name)
{
    char *path = xasprintf("%s/%s", disk_dir, name);
    char *cmd = xasprintf("qemu-img create -q -f raw '%s' %dM", path, DISK_MIB);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0 || !labq_file_exists(path)) {
        /* qemu-img makes a sparse file of size 0 blocks: file_exists
         * checks st_size, which is DISK_MIB. */
        fprintf(stderr, "qemu-img create failed: %d\n", rc);
        free(path);
        return NULL;
    }
    return path;
}

/* One console command and the rest of its answer line (caller frees), or
 * NULL with a failed check. */
static char *cmd(struct labq *g, const char *line, const char *prefix)
{
    char *res = NULL;
    int rc = guestcon_command(&g->con, line, prefix, CMD_TIMEOUT_MS, &res);
    CHECK(rc == 0, "no answer %s to '%s': %d", prefix, line, rc);
    return rc == 0 ? res : NULL;
}

/* Reads n FERRY-DISK lines (after discarding one: the interval a command
 * cut) and returns the mean of read_iops + write_iops; checks each line's
 * percentiles are ordered and, when busy, that it did I/O. Negative when
 * the lines did not come. */
static double disk_lines(struct labq *g, int n, int busy)
{
    char *line = NULL;
    if (guestcon_expect(&g->con, "FERRY-DISK {", LINE_TIMEOUT_MS, &line) < 0)
        return -1;
    free(line);
    double sum = 0;
    for (int k = 0; k < n; k++) {
        if (guestcon_expect(&g->con, "FERRY-DISK {", LINE_TIMEOUT_MS, &line) < 0)
            return -1;
        double iops = labq_json_num(line, "read_iops", -1) + labq_json_num(line, "write_iops", -1);
        double mibps =
            labq_json_num(line, "read_mibps", -1) + labq_json_num(line, "write_mibps", -1);
        double p50 = labq_json_num(line, "lat_p50_us", -1),
               p99 = labq_json_num(line, "lat_p99_us", -1);
        double mx = labq_json_num(line, "lat_max_us", -1);
        CHECK(labq_json_num(line, "t_s", -1) > 0, "t_s: %s", line);
        CHECK(p50 >= 0 && p50 <= p99 && p99 <= mx, "percentiles out of order: %s", line);
        if (busy) {
            CHECK(iops > 0 && mibps > 0 && p50 > 0, "no I/O in the interval: %s", line);
            double want = iops * BS / 1048576.0;
            CHECK(mibps > want * 0.99 - 0.002 && mibps < want * 1.01 + 0.002,
                  "MiB/s %.3f does not match IOPS %.1f at %d-byte blocks", mibps, iops, BS);
        }
        sum += iops;
        free(line);
    }
    return sum / n;
}

/* Reports, rate, integrity: see the file comment. */
static void t_diskload_reports_and_verifies(void)
{
    struct labq g;
    char *sum = NULL, *res = NULL;
    char *disk = disk_create("disk.img");
    REQUIRE(disk, "no disk image");
    int rc = guest_boot(&g, "ferry.disk_mode=randrw ferry.disk_read_pct=70 ferry.disk_rate=max",
                        disk, &sum);
    if (rc < 0) {
        unlink(disk);
        free(disk);
    }
    REQUIRE(rc == 0, "guest did not become ready: %d", rc);
    CHECK(labq_json_num(sum, "blocks", -1) == SPAN_MIB * (1048576 / BS), "CHECKSUM: %s", sum);
    free(sum);

    /* Flat out: throughput, percentiles. */
    double max_iops = disk_lines(&g, 2, 1);
    CHECK(max_iops > 0, "no FERRY-DISK lines at rate max");

    /* Rate-limited run: mean over 3 whole seconds within 30 % of target. */
    char line[64];
    snprintf(line, sizeof(line), "rate %d", RATE_IOPS);
    free(cmd(&g, line, "FERRY-ACK "));
    double iops = disk_lines(&g, 3, 1);
    fprintf(stderr, "diskload: flat out %.0f IOPS, rate %d -> %.1f IOPS\n", max_iops, RATE_IOPS,
            iops);
    CHECK(iops > RATE_IOPS * 0.7 && iops < RATE_IOPS * 1.3, "rate %d IOPS, measured %.1f",
          RATE_IOPS, iops);

    /* Fill while paused: the image file holds exactly that pattern. */
    free(cmd(&g, "pause", "FERRY-ACK "));
    sum = cmd(&g, "fill", "FERRY-DISK-CHECKSUM ");
    char want[32] = "", got[32] = "";
    labq_json_str(sum, "checksum", want, sizeof(want));
    uint64_t h = 0;
    rc = labq_disk_checksum(disk, (uint64_t)SPAN_MIB << 20, &h);
    CHECK(rc == 0, "reading the image: %d", rc);
    snprintf(got, sizeof(got), "%016" PRIx64, h);
    CHECK(want[0] && strcmp(want, got) == 0, "guest fill checksum %s, image file %s", want, got);
    free(sum);
    res = cmd(&g, "verify", "FERRY-DISK-RESULT ");
    CHECK(labq_json_bool(res, "ok") == 1 && labq_json_num(res, "bad_blocks", -1) == 0, "verify: %s",
          res);
    labq_json_str(res, "checksum", got, sizeof(got));
    CHECK(strcmp(want, got) == 0, "verify read checksum %s, fill %s", got, want);
    free(res);

    /* Writes since the fill are tracked: still intact after a busy while. */
    free(cmd(&g, "resume", "FERRY-ACK "));
    CHECK(disk_lines(&g, 1, 1) > 0, "no I/O after resume");
    free(cmd(&g, "pause", "FERRY-ACK "));
    res = cmd(&g, "status", "FERRY-DISK-STATUS ");
    CHECK(labq_json_num(res, "writes_total", 0) > 0 && labq_json_num(res, "read_bad", -1) == 0,
          "status: %s", res);
    free(res);
    res = cmd(&g, "verify", "FERRY-DISK-RESULT ");
    CHECK(labq_json_bool(res, "ok") == 1, "verify after writes: %s", res);
    free(res);

    /* A stale block (the previous generation: a lost write) is caught. */
    res = cmd(&g, "corrupt stale", "FERRY-DISK-CORRUPTED ");
    double blk = labq_json_num(res, "block", -1);
    free(res);
    res = cmd(&g, "verify", "FERRY-DISK-RESULT ");
    CHECK(labq_json_bool(res, "ok") == 0 && labq_json_num(res, "bad_blocks", -1) == 1 &&
              labq_json_num(res, "stale_blocks", -1) == 1 &&
              labq_json_num(res, "first_bad", -2) == blk,
          "stale block %.0f, verify: %s", blk, res);
    free(res);

    /* A flipped byte after a fresh fill is caught too. */
    free(cmd(&g, "fill", "FERRY-DISK-CHECKSUM "));
    res = cmd(&g, "corrupt", "FERRY-DISK-CORRUPTED ");
    blk = labq_json_num(res, "block", -1);
    free(res);
    res = cmd(&g, "verify", "FERRY-DISK-RESULT ");
    CHECK(labq_json_bool(res, "ok") == 0 && labq_json_num(res, "bad_blocks", -1) >= 1 &&
              labq_json_num(res, "stale_blocks", -1) == 0 &&
              labq_json_num(res, "first_bad", -2) == blk,
          "corrupted block %.0f, verify: %s", blk, res);
    free(res);

    /* Paused: the FERRY-DISK lines go on, with no I/O. */
    CHECK(disk_lines(&g, 1, 0) == 0, "paused guest did I/O");
    labq_stop(&g);
    unlink(disk);
    free(disk);
}

/* memload and diskload together (ferry.workload=memload,diskload): both
 * report READY, a bare command reaches memload (the first), a command
 * prefixed "diskload " reaches diskload, and both verify intact. */
static void t_combined_workloads(void)
{
    struct labq g;
    char *disk = disk_create("both.img");
    REQUIRE(disk, "no disk image");
    char *params = xasprintf("ferry.workload=memload,diskload ferry.ws_mib=32 ferry.rate=1000 "
                             "ferry.disk_span_mib=%d ferry.disk_rate=%d",
                             SPAN_MIB, RATE_IOPS);
    int rc = guest_spawn(&g, params, disk, 0);
    free(params);
    if (rc == 0)
        rc = guestcon_open(&g.con, g.ser_path, 10000);
    int ready_mem = 0, ready_disk = 0;
    if (rc == 0) {
        g.con.log = stderr;
        while (rc == 0 && !(ready_mem && ready_disk)) {
            char *r = NULL;
            rc = guestcon_expect(&g.con, "FERRY-READY ", BOOT_TIMEOUT_MS, &r);
            if (rc == 0) {
                ready_mem |= strstr(r, "\"workload\":\"memload\"") != NULL;
                ready_disk |= strstr(r, "\"workload\":\"diskload\"") != NULL;
            }
            free(r);
        }
    }
    if (rc < 0)
        labq_dump_log(&g);
    CHECK(rc == 0 && ready_mem && ready_disk, "READY: memload %d, diskload %d, rc %d", ready_mem,
          ready_disk, rc);
    if (rc == 0) {
        char *res = cmd(&g, "verify", "FERRY-RESULT ");
        CHECK(labq_json_bool(res, "ok") == 1 && labq_json_num(res, "pages", -1) == 32 * 256,
              "memload verify: %s", res);
        free(res);
        res = cmd(&g, "diskload verify", "FERRY-DISK-RESULT ");
        CHECK(labq_json_bool(res, "ok") == 1 &&
                  labq_json_num(res, "blocks", -1) == SPAN_MIB * (1048576 / BS),
              "diskload verify: %s", res);
        free(res);
        CHECK(disk_lines(&g, 1, 1) > 0, "diskload not running beside memload");
    }
    labq_stop(&g);
    unlink(disk);
    free(disk);
}

/* A plain QEMU migration with a shared disk (both QEMUs open the same raw
 * file, cache=none) while diskload writes at 200 IOPS: on the destination
 * the workload goes on (its write count is past the source's) and verify
 * finds every block as the workload last wrote it. */
static void t_diskload_shared_disk_migration(void)
{
    struct labq src, dst;
    struct guestcon qs = {.fd = -1}, qd = {.fd = -1}, con = {.fd = -1};
    char *sum = NULL, *res = NULL, *uri = NULL;
    int reached_end = 0;
    memset(&dst, 0, sizeof(dst));
    dst.con.fd = -1;
    char *disk = disk_create("shared.img");
    REQUIRE(disk, "no disk image");
    char extra[64];
    snprintf(extra, sizeof(extra), "ferry.disk_rate=%d", RATE_IOPS);
    int rc = guest_boot(&src, extra, disk, &sum);
    free(sum);
    if (rc < 0) {
        unlink(disk);
        free(disk);
    }
    REQUIRE(rc == 0, "source did not become ready: %d", rc);
    char *params = xasprintf("ferry.workload=diskload ferry.disk_span_mib=%d ferry.disk_bs=%d %s",
                             SPAN_MIB, BS, extra);
    rc = guest_spawn(&dst, params, disk, 1);
    free(params);
    if (rc < 0) {
        CHECK(0, "destination did not start: %d", rc);
        goto out;
    }
    uri = xasprintf("unix:%s/mig.sock", dst.dir);
    if ((rc = labq_qmp_open(&src, &qs, CMD_TIMEOUT_MS)) < 0 ||
        (rc = labq_qmp_open(&dst, &qd, CMD_TIMEOUT_MS)) < 0) {
        CHECK(0, "QMP connection: %d", rc);
        goto out;
    }
    rc = labq_qmp_uri(&qd, "migrate-incoming", uri, CMD_TIMEOUT_MS);
    if (rc < 0) {
        CHECK(0, "migrate-incoming: %d", rc);
        goto out;
    }
    double writes_before = -1, writes_after = -1;
    res = cmd(&src, "status", "FERRY-DISK-STATUS ");
    writes_before = labq_json_num(res, "writes_total", -1);
    free(res);
    res = NULL;
    rc = labq_qmp_uri(&qs, "migrate", uri, CMD_TIMEOUT_MS);
    if (rc < 0) {
        CHECK(0, "migrate: %d", rc);
        goto out;
    }
    char why[400];
    rc = labq_migrate_wait(&qs, 300, CMD_TIMEOUT_MS, why, sizeof(why)); /* 300 x 200 ms */
    if (rc != 0) {
        CHECK(0, "%s", why);
        goto out;
    }
    rc = guestcon_open(&con, dst.ser_path, 10000);
    if (rc < 0) {
        CHECK(0, "destination console: %d", rc);
        goto out;
    }
    con.log = stderr;
    /* The workload runs on: a FERRY-DISK line with I/O on the destination. */
    rc = guestcon_expect(&con, "FERRY-DISK {", LINE_TIMEOUT_MS * 2, &res);
    CHECK(rc == 0, "no FERRY-DISK line on the destination: %d", rc);
    free(res);
    res = NULL;
    rc = guestcon_command(&con, "status", "FERRY-DISK-STATUS ", CMD_TIMEOUT_MS, &res);
    CHECK(rc == 0, "no status on the destination: %d", rc);
    writes_after = labq_json_num(res, "writes_total", -1);
    CHECK(labq_json_num(res, "read_bad", -1) == 0 && labq_json_num(res, "io_errors", -1) == 0,
          "destination status: %s", res);
    free(res);
    res = NULL;
    CHECK(writes_before > 0 && writes_after > writes_before,
          "not the same workload going on: %.0f -> %.0f writes", writes_before, writes_after);
    rc = guestcon_command(&con, "verify", "FERRY-DISK-RESULT ", CMD_TIMEOUT_MS, &res);
    CHECK(rc == 0, "no verify on the destination: %d", rc);
    CHECK(labq_json_bool(res, "ok") == 1 &&
              labq_json_num(res, "blocks", -1) == SPAN_MIB * (1048576 / BS),
          "verify after migration: %s", res);
    free(res);
    res = NULL;
    reached_end = 1;
out:
    if (!reached_end)
        labq_dump_log(&dst);
    free(res);
    free(uri);
    guestcon_close(&con);
    guestcon_close(&qs);
    guestcon_close(&qd);
    labq_stop(&dst);
    labq_stop(&src);
    unlink(disk);
    free(disk);
}

int main(void)
{
    /* A missing image is a failure of each case that boots a guest. */
    if (labq_find_dir(lab_dir, sizeof(lab_dir)) < 0)
        fprintf(stderr, "no lab guest image in %s\n", lab_dir);
    signal(SIGPIPE, SIG_IGN);
    snprintf(disk_dir, sizeof(disk_dir), "/var/tmp/ferry-disk-XXXXXX");
    if (!mkdtemp(disk_dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", disk_dir, strerror(errno));
        return 1;
    }
    test_run("lab disk: diskload reports, holds its rate, fill matches the image, verify "
             "catches stale and corrupt blocks",
             t_diskload_reports_and_verifies);
    test_run("lab disk: diskload's disk stays intact across a plain migration with a shared disk",
             t_diskload_shared_disk_migration);
    test_run("lab disk: memload and diskload run together, commands routed by name",
             t_combined_workloads);
    rmdir(disk_dir);
    return test_done();
}

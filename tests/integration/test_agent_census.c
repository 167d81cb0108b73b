/* Integration: the pre-migration memory census (agent/census.h) on a real
 * lab guest (256 MiB, memload with a 64 MiB working set it fills with
 * non-zero data at boot).
 *  - census of the running QEMU: non-zero RAM at least what memload
 *    touched, within 4 stated standard errors (+ 1 MiB) of an exact count
 *    (every present page read in full), and not faulting the guest's
 *    untouched memory in;
 *  - a migration through the agents carries the census (GET shows it
 *    "taken") and it agrees with QEMU's own count of non-zero pages at the
 *    end (ram_total - ram_duplicate x page) within 3 %;
 *  - its re-reads during pass 1 (census_tick) find what memload wrote
 *    (2000 pages/s) within 0.5..1.5x;
 *  - on the destination, where every zero page arrived mapped to the
 *    kernel's zero page, a second census agrees with the first.
 * The maps parser has its own table-driven cases. Needs root (pagemap
 * frame numbers and process_vm_readv on the agents' QEMUs). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../lib/lab.h"
#include "../lib/test.h"
#include "agent/census.h"

#define GUEST_MIB 256
#define WS_MIB 64
#define MIB (1024.0 * 1024.0)

static struct lab L;
static int lab_ok;
static struct census first; /* census on the source, for the destination case */
static int have_first;

/* Exact count of the mapping's non-zero pages: pagemap, then every present
 * page read (pages not present read as zero and are not touched). */
static int exact_nonzero(pid_t pid, uint64_t start, uint64_t len, uint64_t *pages)
{
    char path[64];
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t n = len / (uint64_t)pg, nz = 0;
    uint64_t *pm = malloc(n * sizeof(uint64_t));
    unsigned char *buf = malloc((size_t)pg);
    int rc = -1;
    snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd >= 0 && pm && buf &&
        pread(fd, pm, n * sizeof(uint64_t), (off_t)(start / (uint64_t)pg * sizeof(uint64_t))) ==
            (ssize_t)(n * sizeof(uint64_t))) {
        rc = 0;
        for (uint64_t i = 0; i < n && rc == 0; i++) {
            if (!(pm[i] >> 63 & 1))
                continue;
            struct iovec l = {buf, (size_t)pg},
                         r = {(void *)(uintptr_t)(start + i * pg), (size_t)pg};
            if (process_vm_readv(pid, &l, 1, &r, 1, 0) != pg) {
                rc = -1;
                break;
            }
            for (long k = 0; k < pg; k++)
                if (buf[k]) {
                    nz++;
                    break;
                }
        }
    }
    if (fd >= 0)
        close(fd);
    free(pm);
    free(buf);
    *pages = nz;
    return rc;
}

/* Table-driven: the maps parser picks the right mapping or none. */
static void t_maps_pick(void)
{
    static const struct {
        const char *maps;
        uint64_t ram;
        int found;
        uint64_t start, len;
    } cases[] = {
        /* QEMU-like: RAM (256 MiB + 8 KiB) among heap, code, PROT_NONE, TCG buffer */
        {"5609ae074000-5609ae47b000 r--p 00000000 fe:00 10977303   /usr/bin/qemu\n"
         "5609ed2f9000-5609ee1ed000 rw-p 00000000 00:00 0          [heap]\n"
         "7f055871c000-7f055c000000 ---p 00000000 00:00 0 \n"
         "7f055fe00000-7f056fe02000 rw-p 00000000 00:00 0 \n"
         "7f0578000000-7f05b7fff000 rwxp 00000000 00:00 0 \n",
         256ull << 20, 1, 0x7f055fe00000ull, (256ull << 20) + 8192},
        /* too small, too large (beyond the 2 MiB slack), file-backed: none */
        {"1000-2000 rw-p 00000000 00:00 0\n"
         "10000000-20300000 rw-p 00000000 00:00 0\n"
         "30000000-40000000 rw-s 00000000 00:05 7 /memfd:pc.ram (deleted)\n",
         256ull << 20, 0, 0, 0},
        /* two candidates: the smaller wins; a malformed line is skipped */
        {"zz-yy rw-p 0 0 0\n"
         "10000000-20100000 rw-p 00000000 00:00 0\n"
         "30000000-40001000 rw-p 00000000 00:00 0\n",
         256ull << 20, 1, 0x30000000ull, (256ull << 20) + 4096},
        /* no trailing newline, no fields after inode */
        {"40000000-50000000 rw-p 00000000 00:00 0", 256ull << 20, 1, 0x40000000ull, 256ull << 20},
        /* empty */
        {"", 4096, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t s = 1, l = 2;
        int rc = census_maps_pick(cases[i].maps, strlen(cases[i].maps), cases[i].ram, &s, &l);
        if (cases[i].found)
            CHECK(rc == 0 && s == cases[i].start && l == cases[i].len,
                  "case %zu: rc %d start %llx len %llu", i, rc, (unsigned long long)s,
                  (unsigned long long)l);
        else
            CHECK(rc == FERR_NOTFOUND && s == 1 && l == 2, "case %zu: rc %d", i, rc);
    }
}

static void t_source_census(void)
{
    struct ferr e = {0};
    pid_t pid = 0;
    char st[32];
    if (!lab_ok)
        return test_skip("no lab");
    if (geteuid() != 0)
        return test_skip("the census reads another process's pagemap and memory: run as root");
    REQUIRE(lab_instance_pid(&L.agents[0], "c1", &pid, st, sizeof(st), &e) == 0 && pid > 0,
            "pid: %s", e.msg);
    struct census a, b;
    REQUIRE(census_take(pid, (uint64_t)GUEST_MIB << 20, &a, &e) == 0, "census: %s", e.msg);
    uint64_t exact = 0;
    REQUIRE(exact_nonzero(pid, a.map_start, a.ram_bytes, &exact) == 0, "exact count");
    REQUIRE(census_take(pid, (uint64_t)GUEST_MIB << 20, &b, &e) == 0, "census 2: %s", e.msg);
    double got = (double)a.nonzero_bytes, want = (double)exact * (double)a.page_bytes;
    fprintf(stderr,
            "  census %.2f MiB (s.e. %.3f %%), exact %.2f MiB, candidates %llu, untouched %llu, "
            "zero-mapped %llu, sampled %llu (%llu zero), pagemap %llu B, %.1f ms wall, %.1f ms "
            "CPU\n",
            got / MIB, a.rel_err * 100, want / MIB, (unsigned long long)a.candidate_pages,
            (unsigned long long)a.untouched_pages, (unsigned long long)a.zero_mapped_pages,
            (unsigned long long)a.sampled_pages, (unsigned long long)a.sampled_zero,
            (unsigned long long)a.pagemap_bytes, a.wall_us / 1e3, a.cpu_us / 1e3);
    CHECK(a.ram_bytes >= (uint64_t)GUEST_MIB << 20 &&
              a.ram_bytes - ((uint64_t)GUEST_MIB << 20) <= CENSUS_SLACK_BYTES,
          "mapping of %llu bytes", (unsigned long long)a.ram_bytes);
    CHECK(got >= WS_MIB * MIB, "census %.1f MiB below memload's %d MiB working set", got / MIB,
          WS_MIB);
    CHECK(fabs(got - want) <= 4 * a.rel_err * got + MIB,
          "census %.2f MiB vs exact %.2f MiB (s.e. %.3f %%)", got / MIB, want / MIB,
          a.rel_err * 100);
    CHECK(a.nprofile == EST_CENSUS_BUCKETS, "profile of %u slices", a.nprofile);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < a.nprofile; i++)
        sum += a.profile[i];
    CHECK(llabs((long long)sum - (long long)a.nonzero_bytes) <= (long long)(a.nprofile * 4096),
          "profile sums to %llu, census %llu", (unsigned long long)sum,
          (unsigned long long)a.nonzero_bytes);
    /* reading only present pages: the guest's untouched memory stays so */
    CHECK(a.untouched_pages > 0 && b.untouched_pages + 256 >= a.untouched_pages,
          "untouched pages %llu then %llu", (unsigned long long)a.untouched_pages,
          (unsigned long long)b.untouched_pages);
    census_free(&b);
    first = a; /* keeps a's sample: freed by the destination case */
    have_first = 1;
}

static void t_migration_carries_census(void)
{
    struct ferr e = {0};
    json_t *m = NULL;
    if (!lab_ok)
        return test_skip("no lab");
    if (geteuid() != 0)
        return test_skip("the agent's census needs root here");
    /* memload writes its set sequentially at 2000 pages/s during the move */
    REQUIRE(lab_console_expect(&L.agents[0], "c1", "rate 2000", 0, "FERRY-ACK ", LAB_CMD_TIMEOUT_MS,
                               NULL, &e) == 0,
            "rate: %s", e.msg);
    json_t *lim = json_pack("{s:I, s:I}", "max_bandwidth_bps", (json_int_t)(64ll << 20),
                            "downtime_ms", (json_int_t)300);
    int rc = lab_migrate(&L.agents[0], &L.agents[1], "c1", lim, 120000, &m, &e);
    json_decref(lim);
    REQUIRE(rc == 0 && m, "migrate: %s", e.msg);
    json_t *c = json_object_get(m, "census"), *ls = json_object_get(m, "last_sample");
    const char *st = json_string_value(json_object_get(c, "state"));
    CHECK(st && strcmp(st, "taken") == 0, "census state %s", st ? st : "(none)");
    double cz = (double)json_integer_value(json_object_get(c, "nonzero_bytes"));
    double cram = (double)json_integer_value(json_object_get(c, "ram_bytes"));
    double tot = (double)json_integer_value(json_object_get(ls, "ram_total"));
    double dup = (double)json_integer_value(json_object_get(ls, "ram_duplicate")) * 4096.0;
    double qemu_nz = tot - dup, est = cz + (tot > cram ? tot - cram : 0);
    fprintf(stderr, "  census %.2f MiB (+%.2f MiB outside it) vs QEMU's non-zero %.2f MiB\n",
            cz / MIB, (tot - cram) / MIB, qemu_nz / MIB);
    CHECK(qemu_nz > 0 && fabs(est - qemu_nz) <= 0.03 * qemu_nz, "census %.2f MiB vs QEMU %.2f MiB",
          est / MIB, qemu_nz / MIB);
    /* its re-reads during pass 1 saw memload's writes: 2000 x 4 KiB/s
     * over dirty_ms (memload's own pacing under TCG: within 0.5..1.5x,
     * + 1 MiB for the kernel's own writes) */
    double dms = (double)json_integer_value(json_object_get(c, "dirty_ms"));
    double db = (double)json_integer_value(json_object_get(c, "dirty_bytes"));
    double want = 2000.0 * 4096.0 * dms / 1000.0;
    fprintf(stderr, "  census re-reads %lld: %.2f MiB written in %.0f ms (memload: %.2f MiB)\n",
            (long long)json_integer_value(json_object_get(c, "resamples")), db / MIB, dms,
            want / MIB);
    CHECK(json_integer_value(json_object_get(c, "resamples")) >= 1 && dms >= 250,
          "no census re-read during pass 1");
    CHECK(db >= 0.5 * want && db <= 1.5 * want + MIB, "re-read found %.2f MiB, memload wrote %.2f",
          db / MIB, want / MIB);
    json_decref(m);
}

static void t_destination_census(void)
{
    struct ferr e = {0};
    pid_t pid = 0;
    char st[32];
    if (!lab_ok || !have_first)
        return test_skip("no source census");
    REQUIRE(lab_instance_pid(&L.agents[1], "c1", &pid, st, sizeof(st), &e) == 0 && pid > 0,
            "pid: %s", e.msg);
    struct census d;
    REQUIRE(census_take(pid, (uint64_t)GUEST_MIB << 20, &d, &e) == 0, "census: %s", e.msg);
    fprintf(stderr, "  destination census %.2f MiB (zero-mapped %llu, untouched %llu)\n",
            (double)d.nonzero_bytes / MIB, (unsigned long long)d.zero_mapped_pages,
            (unsigned long long)d.untouched_pages);
    double a = (double)first.nonzero_bytes, b = (double)d.nonzero_bytes;
    CHECK(fabs(a - b) <= 0.03 * a + MIB, "destination %.2f MiB vs source %.2f MiB", b / MIB,
          a / MIB);
    census_free(&d);
}

int main(void)
{
    struct ferr e = {0};
    uint64_t t0 = lab_now_ms();
    test_run("census: /proc/PID/maps pick", t_maps_pick);
    lab_ok = lab_start(&L, 2, &e) == 0;
    if (!lab_ok)
        printf("FAIL lab start: %s\n", e.msg);
    if (lab_ok &&
        lab_launch_guest(&L.agents[0], "c1", GUEST_MIB,
                         "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=64 "
                         "ferry.rate=0",
                         LAB_BOOT_TIMEOUT_MS, &e) != 0) {
        printf("FAIL launch: %s\n", e.msg);
        lab_ok = 0;
    }
    test_run("census: running guest, against an exact count, guest untouched", t_source_census);
    test_run("census: a migration carries it and QEMU agrees", t_migration_carries_census);
    test_run("census: on the destination (zero pages mapped) it agrees", t_destination_census);
    lab_stop(&L);
    if (have_first)
        census_free(&first);
    fprintf(stderr, "test_agent_census: %.1f s\n", (double)(lab_now_ms() - t0) / 1000.0);
    return lab_ok ? test_done() : 1;
}

/* census — pre-migration count of non-zero guest RAM. See census.h. */
#include "agent/census.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "util/xalloc.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAP (1ull << 62)
#define PM_PFN_MASK ((1ull << 55) - 1)
#define LINE_MAX_BYTES 512
#define READ_BATCH 128 /* pages per process_vm_readv */

/* --- /proc/PID/maps ------------------------------------------------------ */

/* Parses lowercase/uppercase hex at p[*i..end) up to a non-hex byte;
 * returns 0 with *v, or -1 when there are no digits or it overflows. */
static int hex_at(const char *p, size_t end, size_t *i, uint64_t *v)
{
    uint64_t x = 0;
    size_t n = 0;
    while (*i < end) {
        char c = p[*i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            break;
        if (x >> 60)
            return -1;
        x = x << 4 | d;
        (*i)++;
        n++;
    }
    if (!n)
        return -1;
    *v = x;
    return 0;
}

/* Skips one space-separated field at p[*i..end); returns its length. */
static size_t skip_field(const char *p, size_t end, size_t *i)
{
    size_t s;
    while (*i < end && p[*i] == ' ')
        (*i)++;
    s = *i;
    while (*i < end && p[*i] != ' ')
        (*i)++;
    return *i - s;
}

int census_maps_pick(const char *buf, size_t len, uint64_t ram_bytes, uint64_t *start,
                     uint64_t *length)
{
    uint64_t best_len = UINT64_MAX, best_start = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t eol = pos;
        while (eol < len && buf[eol] != '\n')
            eol++;
        size_t i = pos;
        uint64_t a, b;
        if (eol - pos <= LINE_MAX_BYTES && hex_at(buf, eol, &i, &a) == 0 && i < eol &&
            buf[i] == '-' && (i++, hex_at(buf, eol, &i, &b) == 0) && b > a && i < eol &&
            buf[i] == ' ') {
            size_t perm = i + 1;
            if (perm + 4 <= eol && buf[perm] == 'r' && buf[perm + 1] == 'w') {
                size_t j = perm;
                (void)skip_field(buf, eol, &j); /* perms */
                (void)skip_field(buf, eol, &j); /* offset */
                (void)skip_field(buf, eol, &j); /* dev */
                size_t inode = skip_field(buf, eol, &j);
                size_t path = skip_field(buf, eol, &j);
                uint64_t l = b - a;
                if (inode && path == 0 && l >= ram_bytes && l - ram_bytes <= CENSUS_SLACK_BYTES &&
                    l < best_len) {
                    best_len = l;
                    best_start = a;
                }
            }
        }
        pos = eol + 1;
    }
    if (best_len == UINT64_MAX)
        return FERR_NOTFOUND;
    *start = best_start;
    *length = best_len;
    return 0;
}

/* --- helpers --------------------------------------------------------------- */

static uint64_t mono_us(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Frame number behind address p of this process; 0 when hidden (no
 * CAP_SYS_ADMIN), not present or on any failure. */
static uint64_t self_pfn(const volatile void *p, long pg)
{
    uint64_t v = 0, pfn = 0;
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (pread(fd, &v, sizeof(v), (off_t)((uintptr_t)p / (uintptr_t)pg * sizeof(v))) ==
            (ssize_t)sizeof(v) &&
        (v & PM_PRESENT))
        pfn = v & PM_PFN_MASK;
    close(fd);
    return pfn;
}

/* Frame numbers of the kernel's shared zero page and of the first frame
 * of its huge zero page (transparent huge pages: QEMU asks for them on
 * guest RAM, and a read fault there maps the huge zero page), from read
 * faults on fresh anonymous memory of this process. 0 when unknown. */
static void zero_pfns(long pg, uint64_t *zpfn, uint64_t *hzpfn)
{
    const size_t huge = 2u << 20;
    *zpfn = *hzpfn = 0;
    volatile const char *p = mmap(NULL, (size_t)pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
        (void)p[0];
        *zpfn = self_pfn(p, pg);
        munmap((void *)(uintptr_t)p, (size_t)pg);
    }
    char *r = mmap(NULL, 2 * huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED)
        return;
    volatile const char *h = (const char *)(((uintptr_t)r + huge - 1) & ~(uintptr_t)(huge - 1));
    (void)madvise((void *)(uintptr_t)h, huge, MADV_HUGEPAGE);
    (void)h[0];
    uint64_t a = self_pfn(h, pg), b = self_pfn(h + pg, pg);
    if (a && b == a + 1 && a != *zpfn && (a & ((huge / (size_t)pg) - 1)) == 0)
        *hzpfn = a;
    munmap(r, 2 * huge);
}

/* 64-bit hash of a page's content (word-wise multiply-xorshift: a change
 * anywhere changes it but for a 2^-64 chance). */
static uint64_t page_hash(const unsigned char *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n / 8; i++) {
        h ^= w[i] + 0x7F4A7C159E3779B9ull + (h << 6) + (h >> 2);
        h *= 0xBF58476D1CE4E5B9ull;
    }
    return h ^ (h >> 31);
}

static int all_zero(const unsigned char *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i])
            return 0;
    return 1;
}

/* Reads the pages at addrs[0..n) of pid into buf and counts the ones read
 * (a prefix: a partial read stops at a failed page) into *read and, when
 * zero is not NULL, the all-zero ones into *zero; hash[i] (when hash is
 * not NULL) gets page i's content hash. Returns 0 or -errno. */
static int read_pages(pid_t pid, const uint64_t *addrs, size_t n, size_t pg, unsigned char *buf,
                      uint64_t *read, uint64_t *zero, uint64_t *hash)
{
    struct iovec loc[READ_BATCH], rem[READ_BATCH];
    for (size_t i = 0; i < n; i++) {
        loc[i].iov_base = buf + i * pg;
        loc[i].iov_len = pg;
        rem[i].iov_base = (void *)(uintptr_t)addrs[i];
        rem[i].iov_len = pg;
    }
    ssize_t got = process_vm_readv(pid, loc, n, rem, n, 0);
    if (got < 0)
        return -errno;
    size_t full = (size_t)got / pg; /* a partial read stops at a failed page */
    for (size_t i = 0; i < full; i++) {
        if (zero && all_zero(buf + i * pg, pg))
            (*zero)++;
        if (hash)
            hash[i] = page_hash(buf + i * pg, pg);
    }
    *read += full;
    return 0;
}

int census_take(pid_t pid, uint64_t ram_bytes, struct census *out, struct ferr *e)
{
    char path[64];
    uint64_t t0 = mono_us(CLOCK_MONOTONIC), c0 = mono_us(CLOCK_THREAD_CPUTIME_ID);
    long pgl = sysconf(_SC_PAGESIZE);
    size_t pg = pgl > 0 ? (size_t)pgl : 4096;
    int fd, rc = 0;
    memset(out, 0, sizeof(*out));
    if (pid <= 0 || ram_bytes == 0)
        return ferr_set(e, FERR_INVAL, "pid", "no QEMU process or RAM size");

    /* 1. the mapping */
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ferr_set(e, -errno, "", "open %s: %s", path, strerror(errno));
    char *maps = xmalloc(CENSUS_MAPS_MAX);
    size_t mlen = 0;
    for (;;) {
        ssize_t r = read(fd, maps + mlen, CENSUS_MAPS_MAX - mlen);
        if (r <= 0)
            break;
        mlen += (size_t)r;
        if (mlen == CENSUS_MAPS_MAX)
            break;
    }
    close(fd);
    rc = census_maps_pick(maps, mlen, ram_bytes, &out->map_start, &out->ram_bytes);
    free(maps);
    if (rc != 0)
        return ferr_set(e, FERR_NOTFOUND, "",
                        "no anonymous rw mapping of %llu..%llu bytes in QEMU (pid %d)",
                        (unsigned long long)ram_bytes,
                        (unsigned long long)(ram_bytes + CENSUS_SLACK_BYTES), (int)pid);
    out->page_bytes = pg;
    out->pages = out->ram_bytes / pg;

    /* 2. + 3. pagemap and samples, slice by slice */
    snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ferr_set(e, -errno, "", "open %s: %s", path, strerror(errno));
    uint64_t zpfn, hzpfn;
    zero_pfns((long)pg, &zpfn, &hzpfn);
    const uint64_t hmask = ~(uint64_t)((2u << 20) / pg - 1);
    const uint64_t nb = out->pages >= EST_CENSUS_BUCKETS ? EST_CENSUS_BUCKETS : 1;
    const size_t ent_cap = CENSUS_PAGEMAP_MAX / EST_CENSUS_BUCKETS / sizeof(uint64_t);
    const size_t per_slice = CENSUS_SAMPLE_PAGES / EST_CENSUS_BUCKETS;
    uint64_t *ent = xmalloc(ent_cap * sizeof(uint64_t));
    uint64_t *addrs = xmalloc(per_slice * sizeof(uint64_t));
    out->smp_addr = xmalloc(CENSUS_SAMPLE_PAGES * sizeof(uint64_t));
    out->smp_hash = xmalloc(CENSUS_SAMPLE_PAGES * sizeof(uint64_t));
    out->smp_weight = xmalloc(CENSUS_SAMPLE_PAGES * sizeof(float));
    out->t0_us = mono_us(CLOCK_MONOTONIC);
    unsigned char *buf = xmalloc(READ_BATCH * pg);
    double est = 0, var = 0;
    for (uint64_t b = 0; b < nb && rc == 0; b++) {
        uint64_t p0 = out->pages * b / nb, p1 = out->pages * (b + 1) / nb, np = p1 - p0;
        /* which pages of the slice to look at: all, or evenly spaced
         * pieces of 512 pages when the slice's pagemap exceeds its share */
        uint64_t pieces = np <= ent_cap ? 1 : ent_cap / 512;
        uint64_t piece_len = pieces == 1 ? np : 512;
        uint64_t seen = 0, cand = 0, cand_present = 0, swapped = 0, untouched = 0, zmap = 0;
        size_t n_ent = 0;
        for (uint64_t k = 0; k < pieces; k++) {
            uint64_t q0 = p0 + (pieces == 1 ? 0 : (np - piece_len) * k / (pieces - 1));
            off_t off = (off_t)((out->map_start / pg + q0) * sizeof(uint64_t));
            ssize_t r = pread(fd, ent + n_ent, piece_len * sizeof(uint64_t), off);
            if (r < 0) {
                rc = ferr_set(e, -errno, "", "read %s: %s", path, strerror(errno));
                break;
            }
            out->pagemap_bytes += (uint64_t)r;
            size_t got = (size_t)r / sizeof(uint64_t);
            for (size_t j = 0; j < got; j++) {
                uint64_t v = ent[n_ent + j];
                if (v & PM_SWAP) {
                    swapped++;
                    cand++;
                    ent[n_ent + j] = 0; /* not readable without swapping in */
                } else if (!(v & PM_PRESENT)) {
                    untouched++;
                    ent[n_ent + j] = 0;
                } else if ((zpfn && (v & PM_PFN_MASK) == zpfn) ||
                           (hzpfn && ((v & PM_PFN_MASK) & hmask) == hzpfn)) {
                    zmap++;
                    ent[n_ent + j] = 0;
                } else {
                    cand++;
                    cand_present++;
                    ent[n_ent + j] = (q0 + j) + 1; /* page index + 1: a readable candidate */
                }
            }
            n_ent += got;
            seen += got;
        }
        if (rc != 0 || seen == 0)
            break;
        /* evenly spaced present candidates of the slice */
        uint64_t k_want = cand_present < per_slice ? cand_present : per_slice, n_addr = 0, idx = 0;
        for (size_t j = 0; j < n_ent && n_addr < k_want; j++) {
            if (!ent[j])
                continue;
            if (idx++ * k_want / cand_present == n_addr)
                addrs[n_addr++] = out->map_start + (ent[j] - 1) * pg;
        }
        uint64_t rd = 0, zr = 0, first = out->n_smp;
        for (uint64_t j = 0; j < n_addr && rc == 0; j += READ_BATCH) {
            size_t n = n_addr - j < READ_BATCH ? (size_t)(n_addr - j) : READ_BATCH;
            uint64_t rd0 = rd;
            int r = read_pages(pid, addrs + j, n, pg, buf, &rd, &zr, out->smp_hash + out->n_smp);
            if (r < 0)
                rc = ferr_set(e, r, "", "process_vm_readv on pid %d: %s", (int)pid, strerror(-r));
            for (uint64_t i = 0; r == 0 && i < rd - rd0; i++) /* keep what was read */
                out->smp_addr[out->n_smp++] = addrs[j + i];
        }
        /* scale the slice's counts from the pages seen to all of it */
        double scale = (double)np / (double)seen;
        double p = rd ? (double)zr / (double)rd : 0;
        double nzp = ((double)cand_present * (1 - p) + (double)swapped) * scale;
        double cp = (double)cand_present * scale;
        double sd = rd > 1 && cp > 1
                        ? sqrt(p * (1 - p) / (double)rd * fmax(1 - ((double)rd - 1) / (cp - 1), 0))
                        : 0;
        var += cp * cp * sd * sd;
        for (uint64_t i = first; i < out->n_smp; i++) /* pages each sampled one stands for */
            out->smp_weight[i] = (float)(cp / (double)rd);
        est += nzp;
        out->profile[b] = (uint64_t)(nzp * (double)pg);
        out->untouched_pages += (uint64_t)((double)untouched * scale);
        out->zero_mapped_pages += (uint64_t)((double)zmap * scale);
        out->candidate_pages += (uint64_t)((double)cand * scale);
        out->swapped_pages += (uint64_t)((double)swapped * scale);
        out->sampled_pages += rd;
        out->sampled_zero += zr;
        if (pieces > 1)
            out->pagemap_scaled = 1;
    }
    close(fd);
    free(ent);
    free(addrs);
    free(buf);
    if (rc != 0) {
        census_drop_sample(out);
        return rc;
    }
    out->next_ms = 250;
    out->nprofile = (uint32_t)nb;
    out->nonzero_bytes = (uint64_t)(est * (double)pg);
    out->rel_err = est > 0 ? sqrt(var) / est : 0;
    out->wall_us = mono_us(CLOCK_MONOTONIC) - t0;
    out->cpu_us = mono_us(CLOCK_THREAD_CPUTIME_ID) - c0;
    return 0;
}

int census_tick(pid_t pid, struct census *c)
{
    if (!c->n_smp)
        return 0;
    uint64_t t1 = mono_us(CLOCK_MONOTONIC), t_ms = (t1 - c->t0_us) / 1000u;
    if (t_ms < c->next_ms)
        return 0;
    size_t pg = c->page_bytes ? (size_t)c->page_bytes : 4096;
    unsigned char *buf = xmalloc(READ_BATCH * pg);
    uint64_t hash[READ_BATCH];
    double changed = 0;
    int rc = 0;
    for (uint32_t j = 0; j < c->n_smp && rc == 0; j += READ_BATCH) {
        size_t n = c->n_smp - j < READ_BATCH ? (size_t)(c->n_smp - j) : READ_BATCH;
        uint64_t rd = 0;
        rc = read_pages(pid, c->smp_addr + j, n, pg, buf, &rd, NULL, hash);
        for (uint64_t i = 0; rc == 0 && i < rd; i++)
            if (hash[i] != c->smp_hash[j + i])
                changed += c->smp_weight[j + i];
    }
    free(buf);
    if (rc != 0)
        return rc;
    c->dirty_bytes = (uint64_t)(changed * (double)pg);
    c->dirty_ms = t_ms ? t_ms : 1;
    c->next_ms = 2 * t_ms;
    c->resamples++;
    c->resample_us += mono_us(CLOCK_MONOTONIC) - t1;
    return 1;
}

void census_drop_sample(struct census *c)
{
    free(c->smp_addr);
    free(c->smp_hash);
    free(c->smp_weight);
    c->smp_addr = c->smp_hash = NULL;
    c->smp_weight = NULL;
    c->n_smp = 0;
}

void census_free(struct census *c)
{
    if (c)
        census_drop_sample(c);
}

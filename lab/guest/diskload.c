/* diskload — the lab guest's disk workload: it stands for the customer's
 * application whose experience a migration must not spoil.
 *
 * Reads and writes blocks of a virtio disk (default /dev/vda) with O_DIRECT
 * (the page cache must not hide the disk), one request at a time (queue
 * depth 1), sequentially or at random, at a target rate or flat out, and
 * prints its own throughput and latency percentiles every second. Every
 * block it writes carries a header (magic, block index, generation, epoch)
 * and a body derived from them; the workload keeps each block's generation
 * in memory, so `verify` can prove every block of the span holds exactly
 * what was written last — a lost or stale write is caught. Built statically
 * into the lab initramfs.
 *
 * Parameters come from the kernel command line (/proc/cmdline); arguments
 * of the same form override them (for running on a host):
 *   ferry.disk_dev=PATH        device or file (default /dev/vda)
 *   ferry.disk_bs=B            block size, bytes, power of two 512..1048576 (4096)
 *   ferry.disk_mode=M          read|write|rw|randread|randwrite|randrw (randrw)
 *   ferry.disk_read_pct=P      share of reads in rw/randrw, 0..100 (70)
 *   ferry.disk_rate=R          requests/s (IOPS); "<N>mibps" = MiB/s;
 *                              "max" = flat out; 0 = idle (100)
 *   ferry.disk_span_mib=S      MiB of the device used from offset 0 (64),
 *                              clamped to the device; at most
 *                              DISK_BLOCKS_MAX blocks
 *
 * Block layout (64-bit little-endian words, words = bs / 8): w0 = MAGIC,
 * w1 = block index, w2 = generation, w3 = epoch, w[k >= 4] =
 * seed(epoch, index, gen) ^ (k * WL_GOLDEN). A fill starts a new epoch and sets
 * every block to generation 1; each write of block i by the workload
 * increments gen[i]. Untouched (zero) or foreign data never verifies.
 *
 * Serial protocol: one command per line on stdin, one machine line per
 * event on stdout, each starting with "FERRY-" and written at once. See
 * docs/LAB.md, section diskload.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmdin.h"
#include "wl.h"

#define MAGIC 0x4b53445952524546ull /* "FERRYDSK" as little-endian bytes */
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
#define BS_DEFAULT 4096
#define BS_MIN 512
#define BS_MAX (1u << 20)
#define SPAN_MIB_DEFAULT 64
#define DISK_BLOCKS_MAX (1u << 21) /* 8 GiB at 4 KiB; gen array 8 MiB */
#define RATE_DEFAULT 100           /* requests/s */
#define RATE_MAX 10000000          /* requests/s, sanity cap */
#define CHUNK_BYTES (1u << 20)     /* fill/verify I/O size */
/* Latency histogram: values < 16 us exact, above that 16 linear
 * sub-buckets per power of two (bucket width <= 1/16 of its lower bound). */
#define HIST_SUB 16
#define HIST_BUCKETS (HIST_SUB + 40 * HIST_SUB)

enum mode { M_READ, M_WRITE, M_RW, M_RANDREAD, M_RANDWRITE, M_RANDRW };
static const char *const mode_names[] = {"read", "write", "rw", "randread", "randwrite", "randrw"};

struct interval {
    uint64_t reads, writes;      /* requests completed */
    uint64_t hist[HIST_BUCKETS]; /* latency histogram, see HIST_SUB */
    uint64_t n;                  /* requests in hist */
    uint64_t max_us;             /* largest latency, us */
};

struct diskload {
    char dev[128];         /* device path */
    int fd;                /* open device */
    int direct;            /* non-zero: opened with O_DIRECT */
    size_t bs;             /* block size, bytes */
    size_t words;          /* uint64 words per block */
    unsigned span_mib;     /* requested span, MiB */
    uint64_t blocks;       /* blocks in the span */
    uint32_t *gen;         /* per block: generation last written */
    uint32_t epoch;        /* fill epoch (1 = the boot fill) */
    enum mode mode;        /* access pattern */
    unsigned read_pct;     /* share of reads, % */
    int rate_max;          /* non-zero: flat out */
    uint64_t rate;         /* requests/s when !rate_max; 0 = idle */
    int paused;            /* non-zero: no requests */
    uint64_t seq;          /* next block of a sequential mode */
    uint64_t rng;          /* xorshift64* state */
    int64_t last_written;  /* block written last, -1 = none since fill */
    uint64_t *buf;         /* one block, aligned */
    uint64_t *chunk;       /* CHUNK_BYTES, aligned */
    struct timespec t0;    /* workload start */
    struct timespec t_ref; /* start of the current rate window */
    uint64_t n_ref;        /* requests issued in the rate window */
    struct timespec t_iv;  /* start of the current report interval */
    struct interval iv;    /* the current report interval */
    uint64_t reads_total;  /* requests since start */
    uint64_t writes_total; /* requests since start */
    uint64_t read_bad;     /* workload reads that did not match */
    uint64_t io_errors;    /* failed requests */
    struct cmdin in;       /* console commands (cmdin.h) */
};

static uint64_t block_seed(uint32_t epoch, uint64_t idx, uint32_t gen)
{
    return wl_mix64(((uint64_t)epoch << 32 | gen) * 0x100000001B3ull ^ wl_mix64(idx));
}

static void block_fill(uint64_t *w, size_t words, uint64_t idx, uint32_t gen, uint32_t epoch)
{
    uint64_t s = block_seed(epoch, idx, gen);
    w[0] = MAGIC;
    w[1] = idx;
    w[2] = gen;
    w[3] = epoch;
    for (size_t k = 4; k < words; k++)
        w[k] = s ^ (k * WL_GOLDEN);
}

/* 0: block holds (idx, gen, epoch) word for word; 1: stale (a right block
 * of this epoch, older generation); 2: anything else. */
static int block_check(const uint64_t *w, size_t words, uint64_t idx, uint32_t gen, uint32_t epoch)
{
    if (w[0] != MAGIC || w[1] != idx || w[3] != epoch)
        return 2;
    if (w[2] != gen)
        return w[2] < gen ? 1 : 2;
    uint64_t s = block_seed(epoch, idx, gen);
    for (size_t k = 4; k < words; k++)
        if (w[k] != (s ^ (k * WL_GOLDEN)))
            return 2;
    return 0;
}

/* The span checksum: FNV-1a over the span's 64-bit little-endian words in
 * order (one multiply per word; a host can recompute it from the image). */
static uint64_t fnv_words(uint64_t h, const uint64_t *w, size_t words)
{
    for (size_t k = 0; k < words; k++) {
        h ^= w[k];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t rng_next(struct diskload *d)
{
    uint64_t x = d->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    d->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---- latency histogram ---------------------------------------------------- */

static unsigned hist_index(uint64_t us)
{
    if (us < HIST_SUB)
        return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us); /* >= 4 */
    unsigned sub = (unsigned)(us >> (e - 4)) & (HIST_SUB - 1);
    unsigned i = HIST_SUB + (e - 4) * HIST_SUB + sub;
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

/* Upper bound (inclusive) of bucket i, us. */
static uint64_t hist_upper(unsigned i)
{
    if (i < HIST_SUB)
        return i;
    unsigned e = (i - HIST_SUB) / HIST_SUB + 4, sub = (i - HIST_SUB) % HIST_SUB;
    uint64_t lo = (uint64_t)(HIST_SUB + sub) << (e - 4);
    return lo + ((uint64_t)1 << (e - 4)) - 1;
}

/* The q-quantile (0 < q <= 1) of the interval: the upper bound of the
 * bucket holding the ceil(q * n)-th smallest value, clamped to the
 * interval's maximum. Never below the true value; above it by less than
 * 1/16 (6.25 %) of it. */
static uint64_t hist_quantile(const struct interval *iv, double q)
{
    if (iv->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)iv->n + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t c = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        c += iv->hist[i];
        if (c >= rank) {
            uint64_t v = hist_upper(i);
            return v < iv->max_us ? v : iv->max_us;
        }
    }
    return iv->max_us;
}

/* ---- parameters ------------------------------------------------------------ */

/* Parses "max", "<N>mibps" or a decimal request rate. Returns 0 or -1. */
static int parse_rate(const struct diskload *d, const char *s, int *is_max, uint64_t *rate)
{
    if (strcmp(s, "max") == 0) {
        *is_max = 1;
        *rate = 0;
        return 0;
    }
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v > RATE_MAX)
        return -1;
    if (strcmp(end, "mibps") == 0) {
        v = v * (1ull << 20) / d->bs;
        if (v > RATE_MAX)
            return -1;
    } else if (*end != '\0') {
        return -1;
    }
    *is_max = 0;
    *rate = v;
    return 0;
}

static int parse_u(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Applies one key=value parameter; ignores keys that are not ours and
 * values out of range (the default stays). The rate is parsed after bs is
 * known, so rate_arg keeps the raw value. */
static void apply_param(struct diskload *d, const char *arg, const char **rate_arg)
{
    unsigned long v;
    if (strncmp(arg, "ferry.disk_dev=", 15) == 0) {
        if (strlen(arg + 15) < sizeof(d->dev) && arg[15] == '/')
            snprintf(d->dev, sizeof(d->dev), "%s", arg + 15);
    } else if (strncmp(arg, "ferry.disk_bs=", 14) == 0) {
        if (parse_u(arg + 14, BS_MIN, BS_MAX, &v) == 0 && (v & (v - 1)) == 0)
            d->bs = v;
    } else if (strncmp(arg, "ferry.disk_mode=", 16) == 0) {
        for (unsigned i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
            if (strcmp(arg + 16, mode_names[i]) == 0)
                d->mode = (enum mode)i;
    } else if (strncmp(arg, "ferry.disk_read_pct=", 20) == 0) {
        if (parse_u(arg + 20, 0, 100, &v) == 0)
            d->read_pct = (unsigned)v;
    } else if (strncmp(arg, "ferry.disk_rate=", 16) == 0) {
        *rate_arg = arg + 16;
    } else if (strncmp(arg, "ferry.disk_span_mib=", 20) == 0) {
        if (parse_u(arg + 20, 1, 1ul << 20, &v) == 0)
            d->span_mib = (unsigned)v;
    }
}

struct param_ctx {
    struct diskload *d;
    const char **rate_arg;
};

static void on_param(void *ctx, char *word)
{
    struct param_ctx *c = ctx;
    apply_param(c->d, word, c->rate_arg);
}

static void read_cmdline(struct diskload *d, char *buf, size_t cap, const char **rate_arg)
{
    struct param_ctx c = {d, rate_arg};
    wl_cmdline_each(buf, cap, on_param, &c);
}

static void rate_str(const struct diskload *d, char *buf, size_t n)
{
    if (d->rate_max)
        snprintf(buf, n, "\"max\"");
    else
        snprintf(buf, n, "%" PRIu64, d->rate);
}

static void rate_reset(struct diskload *d)
{
    wl_now(&d->t_ref);
    d->n_ref = 0;
}

/* ---- I/O -------------------------------------------------------------------- */

static int pio(int write_op, int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = write_op ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
                             : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO;
        done += (size_t)r;
    }
    return 0;
}

/* Writes the whole span with a new epoch, every block at generation 1, in
 * CHUNK_BYTES requests, then prints FERRY-DISK-CHECKSUM. Returns 0 or
 * -errno (the gens are then reset but the disk partly written). */
static int do_fill(struct diskload *d)
{
    struct timespec t1, t2;
    wl_now(&t1);
    d->epoch++;
    uint64_t per = CHUNK_BYTES / d->bs, h = FNV_OFFSET;
    int rc = 0;
    for (uint64_t b = 0; b < d->blocks && rc == 0; b += per) {
        uint64_t n = d->blocks - b < per ? d->blocks - b : per;
        for (uint64_t k = 0; k < n; k++) {
            d->gen[b + k] = 1;
            block_fill(d->chunk + k * d->words, d->words, b + k, 1, d->epoch);
        }
        h = fnv_words(h, d->chunk, n * d->words);
        rc = pio(1, d->fd, d->chunk, n * d->bs, b * d->bs);
    }
    if (rc == 0)
        rc = fdatasync(d->fd) < 0 ? -errno : 0;
    wl_now(&t2);
    d->last_written = -1;
    d->seq = 0;
    if (rc < 0) {
        d->io_errors++;
        wl_emit("FERRY-ERROR {\"workload\":\"diskload\",\"cmd\":\"fill\",\"error\":\"%s\"}",
             strerror(-rc));
        return rc;
    }
    wl_emit("FERRY-DISK-CHECKSUM {\"epoch\":%u,\"blocks\":%" PRIu64 ",\"bs\":%zu,"
         "\"checksum\":\"%016" PRIx64 "\",\"fill_ms\":%.0f}",
         d->epoch, d->blocks, d->bs, h, wl_ts_diff(&t2, &t1) * 1000.0);
    return 0;
}

/* Reads the whole span and checks every block against its generation. */
static void do_verify(struct diskload *d)
{
    struct timespec t1, t2;
    wl_now(&t1);
    uint64_t per = CHUNK_BYTES / d->bs, h = FNV_OFFSET, bad = 0, stale = 0;
    long long first_bad = -1;
    int rc = 0;
    for (uint64_t b = 0; b < d->blocks && rc == 0; b += per) {
        uint64_t n = d->blocks - b < per ? d->blocks - b : per;
        rc = pio(0, d->fd, d->chunk, n * d->bs, b * d->bs);
        if (rc < 0)
            break;
        h = fnv_words(h, d->chunk, n * d->words);
        for (uint64_t k = 0; k < n; k++) {
            int c = block_check(d->chunk + k * d->words, d->words, b + k, d->gen[b + k], d->epoch);
            if (c != 0) {
                bad++;
                stale += c == 1;
                if (first_bad < 0)
                    first_bad = (long long)(b + k);
            }
        }
    }
    wl_now(&t2);
    if (rc < 0) {
        d->io_errors++;
        wl_emit("FERRY-ERROR {\"workload\":\"diskload\",\"cmd\":\"verify\",\"error\":\"%s\"}",
             strerror(-rc));
    } else {
        wl_emit("FERRY-DISK-RESULT {\"workload\":\"diskload\",\"ok\":%s,\"blocks\":%" PRIu64
             ",\"bad_blocks\":%" PRIu64 ",\"stale_blocks\":%" PRIu64 ",\"first_bad\":%lld,"
             "\"epoch\":%u,\"checksum\":\"%016" PRIx64 "\",\"verify_ms\":%.0f}",
             bad == 0 ? "true" : "false", d->blocks, bad, stale, first_bad, d->epoch, h,
             wl_ts_diff(&t2, &t1) * 1000.0);
    }
    rate_reset(d); /* the verify pause is not a debt to catch up */
}

/* Damages one block behind the workload's back: the block written last
 * (block blocks/2 when none since the fill). "corrupt" flips one body byte;
 * "corrupt stale" writes the block's previous generation (a lost write). */
static void do_corrupt(struct diskload *d, int stale)
{
    uint64_t i = d->last_written >= 0 ? (uint64_t)d->last_written : d->blocks / 2;
    int rc;
    if (stale) {
        block_fill(d->buf, d->words, i, d->gen[i] - 1, d->epoch);
    } else {
        rc = pio(0, d->fd, d->buf, d->bs, i * d->bs);
        if (rc < 0)
            goto fail;
        ((unsigned char *)d->buf)[d->bs / 2 + 3] ^= 0x5a;
    }
    rc = pio(1, d->fd, d->buf, d->bs, i * d->bs);
    if (rc == 0)
        rc = fdatasync(d->fd) < 0 ? -errno : 0;
    if (rc == 0) {
        wl_emit("FERRY-DISK-CORRUPTED {\"block\":%" PRIu64 ",\"kind\":\"%s\"}", i,
             stale ? "stale" : "byte");
        return;
    }
fail:
    wl_emit("FERRY-ERROR {\"workload\":\"diskload\",\"cmd\":\"corrupt\",\"error\":\"%s\"}",
         strerror(-rc));
}

static void do_status(struct diskload *d)
{
    char r[32];
    rate_str(d, r, sizeof(r));
    struct timespec t;
    wl_now(&t);
    wl_emit("FERRY-DISK-STATUS {\"workload\":\"diskload\",\"t_s\":%.2f,\"reads_total\":%" PRIu64
         ",\"writes_total\":%" PRIu64 ",\"read_bad\":%" PRIu64 ",\"io_errors\":%" PRIu64
         ",\"rate\":%s,\"paused\":%s,\"mode\":\"%s\",\"read_pct\":%u,\"bs\":%zu,"
         "\"blocks\":%" PRIu64 ",\"epoch\":%u}",
         wl_ts_diff(&t, &d->t0), d->reads_total, d->writes_total, d->read_bad, d->io_errors, r,
         d->paused ? "true" : "false", mode_names[d->mode], d->read_pct, d->bs, d->blocks,
         d->epoch);
}

/* One request of the workload, timed. */
static void do_request(struct diskload *d)
{
    int rnd = d->mode >= M_RANDREAD;
    int is_read;
    switch (d->mode) {
    case M_READ:
    case M_RANDREAD:
        is_read = 1;
        break;
    case M_WRITE:
    case M_RANDWRITE:
        is_read = 0;
        break;
    default:
        is_read = rng_next(d) % 100 < d->read_pct;
        break;
    }
    uint64_t i;
    if (rnd) {
        i = rng_next(d) % d->blocks;
    } else {
        i = d->seq;
        d->seq = (d->seq + 1) % d->blocks;
    }
    if (!is_read)
        block_fill(d->buf, d->words, i, d->gen[i] + 1, d->epoch);
    struct timespec t1, t2;
    wl_now(&t1);
    int rc = pio(!is_read, d->fd, d->buf, d->bs, i * d->bs);
    wl_now(&t2);
    d->n_ref++;
    if (rc < 0) {
        if (d->io_errors++ == 0)
            wl_emit("FERRY-ERROR {\"workload\":\"diskload\",\"error\":\"%s at block %" PRIu64 "\"}",
                 strerror(-rc), i);
        return;
    }
    uint64_t us =
        (uint64_t)((t2.tv_sec - t1.tv_sec) * 1000000ll + (t2.tv_nsec - t1.tv_nsec) / 1000);
    d->iv.hist[hist_index(us)]++;
    d->iv.n++;
    if (us > d->iv.max_us)
        d->iv.max_us = us;
    if (is_read) {
        d->iv.reads++;
        d->reads_total++;
        if (block_check(d->buf, d->words, i, d->gen[i], d->epoch) != 0 && d->read_bad++ == 0)
            wl_emit("FERRY-ERROR {\"workload\":\"diskload\",\"error\":\"read mismatch at block "
                 "%" PRIu64 "\"}",
                 i);
    } else {
        d->gen[i]++;
        d->last_written = (int64_t)i;
        d->iv.writes++;
        d->writes_total++;
    }
}

/* Prints the FERRY-DISK line of the interval when a second has passed. */
static void report(struct diskload *d)
{
    struct timespec t;
    wl_now(&t);
    double dt = wl_ts_diff(&t, &d->t_iv);
    if (dt < 1.0)
        return;
    double mib = (double)d->bs / (1 << 20);
    wl_emit("FERRY-DISK {\"t_s\":%.2f,\"read_iops\":%.1f,\"write_iops\":%.1f,\"read_mibps\":%.3f,"
         "\"write_mibps\":%.3f,\"lat_p50_us\":%" PRIu64 ",\"lat_p99_us\":%" PRIu64
         ",\"lat_max_us\":%" PRIu64 "}",
         wl_ts_diff(&t, &d->t0), (double)d->iv.reads / dt, (double)d->iv.writes / dt,
         (double)d->iv.reads * mib / dt, (double)d->iv.writes * mib / dt,
         hist_quantile(&d->iv, 0.50), hist_quantile(&d->iv, 0.99), d->iv.max_us);
    memset(&d->iv, 0, sizeof(d->iv));
    d->t_iv = t;
}

static void handle_command(struct diskload *d, char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = '\0';
    while (*line == ' ' || *line == '\t' || *line == '\r')
        line++;
    if (*line == '\0')
        return;
    char r[32];
    if (strcmp(line, "verify") == 0) {
        do_verify(d);
    } else if (strcmp(line, "fill") == 0) {
        do_fill(d);
        rate_reset(d);
    } else if (strcmp(line, "status") == 0) {
        do_status(d);
    } else if (strcmp(line, "corrupt") == 0) {
        do_corrupt(d, 0);
    } else if (strcmp(line, "corrupt stale") == 0) {
        do_corrupt(d, 1);
    } else if (strcmp(line, "pause") == 0) {
        d->paused = 1;
        wl_emit("FERRY-ACK {\"cmd\":\"pause\"}");
    } else if (strcmp(line, "resume") == 0) {
        d->paused = 0;
        rate_reset(d);
        wl_emit("FERRY-ACK {\"cmd\":\"resume\"}");
    } else if (strncmp(line, "rate ", 5) == 0) {
        int is_max;
        uint64_t v;
        if (parse_rate(d, line + 5, &is_max, &v) == 0) {
            d->rate_max = is_max;
            d->rate = v;
            rate_reset(d);
            rate_str(d, r, sizeof(r));
            wl_emit("FERRY-ACK {\"cmd\":\"rate\",\"rate\":%s}", r);
        } else {
            wl_emit("FERRY-ERROR {\"cmd\":\"rate\",\"error\":\"rate must be max, N or Nmibps\"}");
        }
    } else {
        wl_emit("FERRY-ERROR {\"error\":\"unknown command\"}");
    }
}

static void on_command(void *ctx, char *line)
{
    handle_command(ctx, line);
}

/* Runs the console commands stdin has (cmdin_poll). */
static void poll_commands(struct diskload *d, int timeout_ms)
{
    cmdin_poll(&d->in, timeout_ms, on_command, d);
}

static int open_dev(struct diskload *d, uint64_t *size)
{
    d->direct = 1;
    d->fd = open(d->dev, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (d->fd < 0 && errno == EINVAL) { /* a file system without O_DIRECT (host runs) */
        d->direct = 0;
        d->fd = open(d->dev, O_RDWR | O_CLOEXEC);
    }
    if (d->fd < 0)
        return -errno;
    struct stat st;
    if (fstat(d->fd, &st) < 0)
        return -errno;
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(d->fd, BLKGETSIZE64, size) < 0)
            return -errno;
    } else {
        *size = (uint64_t)st.st_size;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct diskload d;
    static char cmdline[4096];
    const char *rate_arg = NULL;
    snprintf(d.dev, sizeof(d.dev), "/dev/vda");
    d.bs = BS_DEFAULT;
    d.span_mib = SPAN_MIB_DEFAULT;
    d.mode = M_RANDRW;
    d.read_pct = 70;
    d.rate = RATE_DEFAULT;
    d.rng = 0x853c49e6748fea9bull;
    d.in.open = 1;
    signal(SIGPIPE, SIG_IGN);
    read_cmdline(&d, cmdline, sizeof(cmdline), &rate_arg);
    for (int a = 1; a < argc; a++)
        apply_param(&d, argv[a], &rate_arg);
    d.words = d.bs / sizeof(uint64_t);
    if (rate_arg) {
        int is_max;
        uint64_t v;
        if (parse_rate(&d, rate_arg, &is_max, &v) == 0) {
            d.rate_max = is_max;
            d.rate = v;
        }
    }

    uint64_t size = 0;
    int rc = open_dev(&d, &size);
    if (rc < 0) {
        wl_emit("FERRY-ERROR {\"workload\":\"diskload\",\"error\":\"cannot open %s: %s\"}", d.dev,
             strerror(-rc));
        return 1;
    }
    uint64_t want = (uint64_t)d.span_mib << 20;
    d.blocks = (want < size ? want : size) / d.bs;
    if (d.blocks > DISK_BLOCKS_MAX)
        d.blocks = DISK_BLOCKS_MAX;
    if (d.blocks == 0) {
        wl_emit("FERRY-ERROR {\"workload\":\"diskload\",\"error\":\"%s holds no %zu-byte block\"}",
             d.dev, d.bs);
        return 1;
    }
    size_t chunk = CHUNK_BYTES > d.bs ? CHUNK_BYTES : d.bs;
    d.gen = calloc(d.blocks, sizeof(*d.gen));
    if (!d.gen || posix_memalign((void **)&d.buf, 4096, d.bs) != 0 ||
        posix_memalign((void **)&d.chunk, 4096, chunk) != 0) {
        wl_emit("FERRY-ERROR {\"workload\":\"diskload\",\"error\":\"out of memory\"}");
        return 1;
    }

    wl_now(&d.t0);
    if (do_fill(&d) < 0)
        return 1;
    char r[32];
    rate_str(&d, r, sizeof(r));
    wl_emit("FERRY-READY {\"workload\":\"diskload\",\"dev\":\"%s\",\"direct\":%s,\"bs\":%zu,"
         "\"blocks\":%" PRIu64 ",\"span_mib\":%.3f,\"mode\":\"%s\",\"read_pct\":%u,\"rate\":%s}",
         d.dev, d.direct ? "true" : "false", d.bs, d.blocks, (double)(d.blocks * d.bs) / (1 << 20),
         mode_names[d.mode], d.read_pct, r);
    rate_reset(&d);
    d.t_iv = d.t_ref;

    for (;;) {
        report(&d);
        if (d.paused || (!d.rate_max && d.rate == 0)) {
            poll_commands(&d, 200);
            continue;
        }
        if (!d.rate_max) {
            /* Request k of the rate window is due at k / rate seconds. */
            struct timespec t;
            wl_now(&t);
            double ahead = (double)d.n_ref / (double)d.rate - wl_ts_diff(&t, &d.t_ref);
            if (ahead > 0) {
                int ms = (int)(ahead * 1000.0) + 1;
                poll_commands(&d, ms > 200 ? 200 : ms); /* a command wakes it */
                continue;
            }
            if (ahead < -1.0)
                rate_reset(&d); /* fell a second behind: don't burst to catch up */
        }
        do_request(&d);
        poll_commands(&d, 0);
    }
}

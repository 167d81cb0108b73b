/* memload — the lab guest's memory workload.
 *
 * Keeps a working set of W MiB and dirties it at a chosen rate, in an order
 * that lets it prove, at any instant, that every word of every page holds
 * exactly what it last wrote (in the spirit of QEMU's
 * tests/qtest/migration-test.c). Built statically into the lab initramfs.
 *
 * Parameters come from the kernel command line (/proc/cmdline); arguments
 * of the same form override them (for running on a host):
 *   ferry.ws_mib=W     working set, MiB (default 64)
 *   ferry.rate=R       pages dirtied per second; "max" = flat out;
 *                      0 = fill once then idle (default 1000)
 *
 * Memory layout. The set is N pages. Pass p writes pages 0..N-1 in order;
 * page i in pass p holds word 0 = p, word 1 = i, word w >= 2 =
 * seed(p, i) ^ (w * golden). With the cursor (p, c) — pass p has written
 * pages [0, c) — pages [0, c) hold pass p and [c, N) hold pass p-1. The
 * initial fill is pass 1, so untouched (zero) memory never verifies.
 *
 * Serial protocol: one command per line on stdin, one machine line per
 * event on stdout, each starting with "FERRY-" and flushed at once. See
 * docs/LAB.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cmdin.h"
#include "wl.h"

#define WS_MIB_DEFAULT 64
#define WS_MIB_MAX (1u << 20) /* 1 TiB: a sanity cap on the parameter */
#define RATE_DEFAULT 1000     /* pages/s */
#define RATE_MAX_BATCH 256    /* pages written between command polls */
#define BATCHES_PER_S 100     /* rate-limited batches per second */

struct memload {
    uint64_t *mem;          /* working set */
    size_t page_bytes;      /* bytes per page */
    size_t words;           /* uint64 words per page */
    size_t pages;           /* N */
    unsigned ws_mib;        /* working set, MiB */
    uint64_t pass;          /* p: pass being written */
    size_t cursor;          /* c: pages of pass p written */
    uint64_t dirtied_total; /* pages written since start, fill included */
    int rate_max;           /* non-zero: flat out */
    uint64_t rate;          /* pages/s when !rate_max; 0 = idle */
    int paused;             /* non-zero: no dirtying */
    struct timespec t_ref;  /* start of the current rate window */
    uint64_t n_ref;         /* pages written in the current rate window */
    struct timespec t_meas; /* start of the measured-rate interval */
    uint64_t n_meas;        /* dirtied_total at t_meas */
    double rate_measured;   /* pages/s over the last completed interval */
    struct cmdin in;       /* console commands (cmdin.h) */
};

static uint64_t page_seed(uint64_t pass, uint64_t page)
{
    return wl_mix64(pass * 0x100000001B3ull ^ wl_mix64(page));
}

static void page_write(struct memload *m, size_t i, uint64_t pass)
{
    uint64_t *w = m->mem + i * m->words;
    uint64_t s = page_seed(pass, i);
    w[0] = pass;
    w[1] = i;
    for (size_t k = 2; k < m->words; k++)
        w[k] = s ^ (k * WL_GOLDEN);
}

/* Returns non-zero when page i holds exactly pass `pass`. */
static int page_ok(const struct memload *m, size_t i, uint64_t pass)
{
    const uint64_t *w = m->mem + i * m->words;
    uint64_t s = page_seed(pass, i);
    if (w[0] != pass || w[1] != i)
        return 0;
    for (size_t k = 2; k < m->words; k++)
        if (w[k] != (s ^ (k * WL_GOLDEN)))
            return 0;
    return 1;
}

static void rate_reset(struct memload *m)
{
    wl_now(&m->t_ref);
    m->n_ref = 0;
}

static void rate_str(const struct memload *m, char *buf, size_t n)
{
    if (m->rate_max)
        snprintf(buf, n, "\"max\"");
    else
        snprintf(buf, n, "%" PRIu64, m->rate);
}

/* Parses "max" or a decimal page rate. Returns 0 or -1 on bad input. */
static int parse_rate(const char *s, int *is_max, uint64_t *rate)
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
    if (errno || *end != '\0' || v > 100000000ull)
        return -1;
    *is_max = 0;
    *rate = v;
    return 0;
}

/* Applies one key=value parameter; ignores keys that are not ours. */
static void apply_param(struct memload *m, const char *arg)
{
    if (strncmp(arg, "ferry.ws_mib=", 13) == 0) {
        char *end;
        unsigned long v = strtoul(arg + 13, &end, 10);
        if (*end == '\0' && v >= 1 && v <= WS_MIB_MAX)
            m->ws_mib = (unsigned)v;
    } else if (strncmp(arg, "ferry.rate=", 11) == 0) {
        int is_max;
        uint64_t r;
        if (parse_rate(arg + 11, &is_max, &r) == 0) {
            m->rate_max = is_max;
            m->rate = r;
        }
    }
}

static void on_param(void *ctx, char *word)
{
    apply_param(ctx, word);
}

static void read_cmdline(struct memload *m)
{
    char buf[4096];
    wl_cmdline_each(buf, sizeof(buf), on_param, m);
}

static void do_verify(struct memload *m)
{
    size_t bad = 0;
    long long first_bad = -1;
    for (size_t i = 0; i < m->pages; i++) {
        uint64_t want = i < m->cursor ? m->pass : m->pass - 1;
        if (!page_ok(m, i, want)) {
            if (first_bad < 0)
                first_bad = (long long)i;
            bad++;
        }
    }
    wl_emit("FERRY-RESULT {\"workload\":\"memload\",\"ok\":%s,\"pages\":%zu,"
         "\"bad_pages\":%zu,\"first_bad\":%lld,\"pass\":%" PRIu64 ",\"cursor\":%zu,\"ws_mib\":%u}",
         bad == 0 ? "true" : "false", m->pages, bad, first_bad, m->pass, m->cursor, m->ws_mib);
    rate_reset(m); /* the verify pause is not a debt to catch up */
}

static void do_status(struct memload *m)
{
    char r[32];
    rate_str(m, r, sizeof(r));
    wl_emit("FERRY-STATUS {\"workload\":\"memload\",\"pass\":%" PRIu64 ",\"cursor\":%zu,"
         "\"pages\":%zu,\"pages_dirtied_total\":%" PRIu64 ",\"rate\":%s,"
         "\"rate_measured\":%.0f,\"paused\":%s,\"ws_mib\":%u}",
         m->pass, m->cursor, m->pages, m->dirtied_total, r, m->rate_measured,
         m->paused ? "true" : "false", m->ws_mib);
}

/* Flips one byte in the page written last, the one the workload rewrites
 * last (a full pass from now), so a prompt verify must see it. */
static void do_corrupt(struct memload *m)
{
    size_t i = m->cursor > 0 ? m->cursor - 1 : m->pages - 1;
    unsigned char *p = (unsigned char *)(m->mem + i * m->words);
    p[m->page_bytes / 2 + 3] ^= 0x5a;
    wl_emit("FERRY-CORRUPTED page=%zu", i);
}

static void handle_command(struct memload *m, char *line)
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
        do_verify(m);
    } else if (strcmp(line, "status") == 0) {
        do_status(m);
    } else if (strcmp(line, "corrupt") == 0) {
        do_corrupt(m);
    } else if (strcmp(line, "pause") == 0) {
        m->paused = 1;
        wl_emit("FERRY-ACK {\"cmd\":\"pause\"}");
    } else if (strcmp(line, "resume") == 0) {
        m->paused = 0;
        rate_reset(m);
        wl_emit("FERRY-ACK {\"cmd\":\"resume\"}");
    } else if (strncmp(line, "rate ", 5) == 0) {
        int is_max;
        uint64_t v;
        if (parse_rate(line + 5, &is_max, &v) == 0) {
            m->rate_max = is_max;
            m->rate = v;
            rate_reset(m);
            rate_str(m, r, sizeof(r));
            wl_emit("FERRY-ACK {\"cmd\":\"rate\",\"rate\":%s}", r);
        } else {
            wl_emit("FERRY-ERROR {\"cmd\":\"rate\",\"error\":\"rate must be max or 0..100000000\"}");
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
static void poll_commands(struct memload *m, int timeout_ms)
{
    cmdin_poll(&m->in, timeout_ms, on_command, m);
}

static void dirty_pages(struct memload *m, size_t count)
{
    for (size_t k = 0; k < count; k++) {
        page_write(m, m->cursor, m->pass);
        m->cursor++;
        if (m->cursor == m->pages) {
            m->cursor = 0;
            m->pass++;
        }
    }
    m->dirtied_total += count;
    m->n_ref += count;
}

static void measure(struct memload *m)
{
    struct timespec t;
    wl_now(&t);
    double dt = wl_ts_diff(&t, &m->t_meas);
    if (dt >= 1.0) {
        m->rate_measured = (double)(m->dirtied_total - m->n_meas) / dt;
        m->t_meas = t;
        m->n_meas = m->dirtied_total;
    }
}

int main(int argc, char **argv)
{
    static struct memload m;
    m.ws_mib = WS_MIB_DEFAULT;
    m.rate = RATE_DEFAULT;
    m.in.open = 1;
    signal(SIGPIPE, SIG_IGN);
    read_cmdline(&m);
    for (int a = 1; a < argc; a++)
        apply_param(&m, argv[a]);

    long ps = sysconf(_SC_PAGESIZE);
    m.page_bytes = ps > 0 ? (size_t)ps : 4096;
    m.words = m.page_bytes / sizeof(uint64_t);
    m.pages = ((size_t)m.ws_mib << 20) / m.page_bytes;
    m.mem = mmap(NULL, m.pages * m.page_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
    if (m.mem == MAP_FAILED) {
        wl_emit("FERRY-ERROR {\"workload\":\"memload\",\"error\":\"cannot map %u MiB\"}", m.ws_mib);
        return 1;
    }

    /* Fill: pass 1 over every page, then pass 2 begins at cursor 0. */
    struct timespec t_fill;
    wl_now(&t_fill);
    m.pass = 1;
    for (size_t i = 0; i < m.pages; i++)
        page_write(&m, i, 1);
    m.dirtied_total = m.pages;
    m.pass = 2;
    m.cursor = 0;

    char r[32];
    rate_str(&m, r, sizeof(r));
    rate_reset(&m);
    wl_emit("FERRY-READY {\"workload\":\"memload\",\"ws_mib\":%u,\"pages\":%zu,\"rate\":%s,"
         "\"fill_ms\":%.0f}",
         m.ws_mib, m.pages, r, wl_ts_diff(&m.t_ref, &t_fill) * 1000.0);
    wl_now(&m.t_meas);
    m.n_meas = m.dirtied_total;

    for (;;) {
        measure(&m);
        if (m.paused || (!m.rate_max && m.rate == 0)) {
            poll_commands(&m, 200);
            continue;
        }
        if (m.rate_max) {
            dirty_pages(&m, RATE_MAX_BATCH);
            poll_commands(&m, 0);
            continue;
        }
        /* Rate-limited: small batches, each due at n_ref / rate seconds. */
        uint64_t batch = m.rate / BATCHES_PER_S;
        if (batch < 1)
            batch = 1;
        if (batch > RATE_MAX_BATCH)
            batch = RATE_MAX_BATCH;
        struct timespec t;
        wl_now(&t);
        double due = (double)m.n_ref / (double)m.rate;
        double ahead = due - wl_ts_diff(&t, &m.t_ref);
        if (ahead > 0) {
            int ms = (int)(ahead * 1000.0) + 1;
            if (ms > 200)
                ms = 200;
            poll_commands(&m, ms); /* sleeps, but a command wakes it */
            continue;
        }
        if (ahead < -1.0)
            rate_reset(&m); /* fell a second behind: don't burst to catch up */
        dirty_pages(&m, (size_t)batch);
        poll_commands(&m, 0);
    }
}

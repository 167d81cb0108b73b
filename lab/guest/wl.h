/* wl — what the lab guest's workloads (memload.c, diskload.c) share
 * besides the console command reader (cmdin.h): machine lines on stdout,
 * the seed mixer their patterns derive from, monotonic time, and the
 * kernel command line split into words. Header-only: each workload is one
 * static binary built from one .c file (lab/build.sh). */
#ifndef FERRY_LAB_WL_H
#define FERRY_LAB_WL_H
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define WL_GOLDEN 0x9E3779B97F4A7C15ull /* 2^64 / golden ratio */
#define WL_LINE_MAX 768                 /* bytes of one machine line, newline included */

static void wl_emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes one formatted line (cut to WL_LINE_MAX - 2 bytes, newline added)
 * to stdout at once: no stdio buffering, so the host reads it whole. */
static void wl_emit(const char *fmt, ...)
{
    char line[WL_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = write(1, line + off, (size_t)n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

/* splitmix64's finaliser: a well-mixed 64-bit value from x. */
static uint64_t wl_mix64(uint64_t x)
{
    x += WL_GOLDEN;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* a - b, seconds. */
static double wl_ts_diff(const struct timespec *a, const struct timespec *b)
{
    return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

/* CLOCK_MONOTONIC now into *t. */
static void wl_now(struct timespec *t)
{
    clock_gettime(CLOCK_MONOTONIC, t);
}

/* Reads /proc/cmdline into buf (cap bytes, NUL-terminated; longer is cut)
 * and calls fn(ctx, word) for each blank-separated word, in order; the
 * words are NUL-terminated in place and stay valid while buf does. Does
 * nothing when /proc/cmdline cannot be read. */
static void wl_cmdline_each(char *buf, size_t cap, void (*fn)(void *ctx, char *word), void *ctx)
{
    FILE *f = fopen("/proc/cmdline", "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = buf;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        char *tok = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n')
            p++;
        if (*p)
            *p++ = '\0';
        if (*tok)
            fn(ctx, tok);
    }
}

#endif

/* progress — pure rendering of a migration's progress line and summary. */
#include "cli/progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A growing line inside a caller's buffer; never overflows. */
struct line {
    char *buf;  /* caller's buffer */
    size_t cap; /* bytes in buf */
    size_t len; /* bytes used, < cap */
};

static void line_add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_add(struct line *l, const char *fmt, ...)
{
    if (l->len + 1 >= l->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    l->len += (size_t)n < l->cap - l->len ? (size_t)n : l->cap - l->len - 1;
}

/* Number member k of o as a double; false when absent, null or not a number. */
static bool num(const json_t *o, const char *k, double *v)
{
    const json_t *x = json_object_get(o, k);
    if (!json_is_number(x))
        return false;
    *v = json_number_value(x);
    return isfinite(*v);
}

size_t progress_fmt_duration(long long ms, char *out, size_t cap)
{
    int n;
    if (cap == 0)
        return 0;
    if (ms < 0) {
        n = snprintf(out, cap, "?");
    } else {
        long long s = (ms + 500) / 1000;
        if (s < 60)
            n = snprintf(out, cap, "%llds", s);
        else if (s < 3600)
            n = snprintf(out, cap, "%lldm%02llds", s / 60, s % 60);
        else
            n = snprintf(out, cap, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    }
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t progress_fmt_bytes(double bytes, char *out, size_t cap)
{
    int n;
    if (cap == 0)
        return 0;
    if (!isfinite(bytes) || bytes < 0)
        n = snprintf(out, cap, "?");
    else if (bytes < 1024)
        n = snprintf(out, cap, "%.0f B", bytes);
    else if (bytes < 1048576.0)
        n = snprintf(out, cap, "%.1f KiB", bytes / 1024.0);
    else if (bytes < 1073741824.0)
        n = snprintf(out, cap, "%.1f MiB", bytes / 1048576.0);
    else
        n = snprintf(out, cap, "%.2f GiB", bytes / 1073741824.0);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Percentage done, or -1 when the record cannot tell. */
static double pct_of(const json_t *m)
{
    const json_t *p = json_object_get(m, "progress");
    double v, total, rem;
    if (num(p, "pct", &v))
        return v < 0 ? 0 : v > 100 ? 100 : v;
    const json_t *mem = json_object_get(p, "memory");
    if (num(mem, "total_bytes", &total) && num(mem, "remaining_bytes", &rem) && total > 0) {
        v = 100.0 * (total - rem) / total;
        return v < 0 ? 0 : v > 100 ? 100 : v;
    }
    const char *st = json_string_value(json_object_get(m, "state"));
    if (st && strcmp(st, "succeeded") == 0)
        return 100;
    return -1;
}

enum { SEG_STATE, SEG_ETA, SEG_INTERVAL, SEG_BW, SEG_DIRTY, SEG_LEFT, SEG__COUNT };

size_t progress_render(const json_t *m, int width, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    out[0] = '\0';
    if (width < 1 || cap < 2)
        return 0;
    size_t w = (size_t)width < cap - 1 ? (size_t)width : cap - 1;

    /* the name, cut with "..." */
    char name[PROGRESS_NAME_MAX + 1];
    const char *inst = json_string_value(json_object_get(m, "instance"));
    if (!inst || !inst[0])
        inst = "?";
    size_t nl = strlen(inst);
    if (nl > PROGRESS_NAME_MAX)
        snprintf(name, sizeof(name), "%.*s...", PROGRESS_NAME_MAX - 3, inst);
    else
        snprintf(name, sizeof(name), "%s", inst);

    double pct = pct_of(m);
    char pcts[16];
    if (pct < 0)
        snprintf(pcts, sizeof(pcts), "    ?%%");
    else
        snprintf(pcts, sizeof(pcts), "%5.1f%%", pct);

    /* the optional segments, each with its leading two spaces */
    char seg[SEG__COUNT][64];
    memset(seg, 0, sizeof(seg));
    const char *st = json_string_value(json_object_get(m, "state"));
    const char *ph = json_string_value(json_object_get(m, "phase"));
    if (st && ph && ph[0] && strcmp(st, ph) != 0)
        snprintf(seg[SEG_STATE], sizeof(seg[0]), "  %.20s/%.24s", st, ph);
    else if (st || ph)
        snprintf(seg[SEG_STATE], sizeof(seg[0]), "  %.24s", st ? st : ph);
    const json_t *eta = json_object_get(m, "eta");
    double ems, lo, hi;
    char d1[16], d2[16];
    if (num(eta, "ms", &ems)) {
        progress_fmt_duration((long long)ems, d1, sizeof(d1));
        snprintf(seg[SEG_ETA], sizeof(seg[0]), "  eta %s", d1);
        if (num(eta, "low_ms", &lo) && num(eta, "high_ms", &hi)) {
            progress_fmt_duration((long long)lo, d1, sizeof(d1));
            progress_fmt_duration((long long)hi, d2, sizeof(d2));
            snprintf(seg[SEG_INTERVAL], sizeof(seg[0]), " (%s-%s)", d1, d2);
        }
    } else if (!st || (strcmp(st, "succeeded") != 0 && strcmp(st, "failed") != 0 &&
                       strcmp(st, "cancelled") != 0)) {
        snprintf(seg[SEG_ETA], sizeof(seg[0]), "  eta ?");
    }
    const json_t *prog = json_object_get(m, "progress");
    double bw, dirty, left;
    char b[24];
    if (num(prog, "bandwidth_bps", &bw) || num(m, "bandwidth_bps", &bw)) {
        progress_fmt_bytes(bw, b, sizeof(b));
        snprintf(seg[SEG_BW], sizeof(seg[0]), "  bw %s/s", b);
    }
    if (num(json_object_get(m, "guest_impact"), "dirty_pages_rate", &dirty) && dirty >= 0)
        snprintf(seg[SEG_DIRTY], sizeof(seg[0]), "  dirty %.0f p/s", dirty);
    if (num(json_object_get(prog, "memory"), "remaining_bytes", &left) && left >= 0) {
        progress_fmt_bytes(left, b, sizeof(b));
        snprintf(seg[SEG_LEFT], sizeof(seg[0]), "  left %s", b);
    }

    /* drop segments from the end until the bar gets its minimum */
    size_t head = strlen(name) + 2 + 2 + strlen(pcts); /* "NAME [" + "] " + pct */
    size_t tail = 0;
    int keep = SEG__COUNT;
    for (int i = 0; i < SEG__COUNT; i++)
        tail += strlen(seg[i]);
    while (keep > 0 && head + tail + PROGRESS_BAR_MIN > w) {
        keep--;
        tail -= strlen(seg[keep]);
    }
    bool with_bar = head + tail + PROGRESS_BAR_MIN <= w;
    size_t barw = 0;
    if (with_bar) {
        barw = w - head - tail;
        if (barw > PROGRESS_BAR_MAX)
            barw = PROGRESS_BAR_MAX;
    }

    struct line l = {out, w + 1 < cap ? w + 1 : cap, 0};
    if (with_bar) {
        char bar[PROGRESS_BAR_MAX + 1];
        size_t fill = pct < 0 ? 0 : (size_t)(pct / 100.0 * (double)barw + 1e-9);
        for (size_t i = 0; i < barw; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[barw] = '\0';
        line_add(&l, "%s [%s] %s", name, bar, pcts);
    } else {
        line_add(&l, "%s %s", name, pcts);
    }
    for (int i = 0; i < keep; i++)
        line_add(&l, "%s", seg[i]);
    return l.len;
}

size_t progress_summary(const json_t *m, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    struct line l = {out, cap, 0};
    out[0] = '\0';
    const char *st = json_string_value(json_object_get(m, "state"));
    const char *id = json_string_value(json_object_get(m, "id"));
    const char *inst = json_string_value(json_object_get(m, "instance"));
    line_add(&l, "migration %s (%s) %s", id ? id : "?", inst ? inst : "?", st ? st : "?");
    const json_t *res = json_object_get(m, "result");
    double v;
    char b[24];
    bool any = false;
    if (num(res, "total_time_ms", &v)) {
        line_add(&l, ": total %.1f s", v / 1000.0);
        any = true;
    }
    if (num(res, "downtime_ms", &v) || num(m, "downtime_ms", &v)) {
        line_add(&l, "%s downtime %.0f ms", any ? "," : ":", v);
        any = true;
    }
    if (num(res, "ram_transferred", &v)) {
        progress_fmt_bytes(v, b, sizeof(b));
        line_add(&l, "%s sent %s", any ? "," : ":", b);
        any = true;
    }
    if (num(res, "iterations", &v)) {
        line_add(&l, "%s %.0f passes", any ? "," : ":", v);
        any = true;
    }
    const char *err = json_string_value(json_object_get(m, "last_error"));
    if (err && err[0])
        line_add(&l, "%s %s", any ? ";" : ":", err);
    return l.len;
}

/* trace — CSV traces of struct mig_sample: bounds-checked parser and
 * canonical writer. Parses from a memory buffer through an explicit cursor;
 * never reads past len. */
#include "core/trace.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum col {
    C_T_MS = 0, C_PHASE, C_RAM_TOTAL, C_RAM_TRANSFERRED, C_RAM_REMAINING,
    C_RAM_DUPLICATE, C_RAM_NORMAL, C_DIRTY_PAGES_RATE, C_PAGE_SIZE, C_BW_BPS,
    C_DIRTY_SYNC_COUNT, C_THROTTLE_PCT, C_POSTCOPY_REQUESTS, C_DISK_TOTAL,
    C_DISK_DONE, C_SETTING_DOWNTIME_MS, C_SETTING_MAX_BW_BPS,
    C_EXPECTED_DOWNTIME_MS, C_DIRTY_RATE_HINT_PPS, C_CENSUS_DIRTY_BYTES,
    C_CENSUS_DIRTY_MS, C__COUNT
};

static const char *const col_names[C__COUNT] = {
    "t_ms", "phase", "ram_total", "ram_transferred", "ram_remaining",
    "ram_duplicate", "ram_normal", "dirty_pages_rate", "page_size", "bw_bps",
    "dirty_sync_count", "throttle_pct", "postcopy_requests", "disk_total",
    "disk_done", "setting_downtime_ms", "setting_max_bw_bps",
    "expected_downtime_ms", "dirty_rate_hint_pps", "census_dirty_bytes",
    "census_dirty_ms",
};

static int col_lookup(const char *p, size_t n)
{
    for (int i = 0; i < C__COUNT; i++)
        if (strlen(col_names[i]) == n && memcmp(col_names[i], p, n) == 0)
            return i;
    return -1;
}

static int parse_u64(const char *p, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static void set_field(struct mig_sample *s, int col, uint64_t v)
{
    switch (col) {
    case C_T_MS: s->t_ms = v; break;
    case C_RAM_TOTAL: s->ram_total = v; break;
    case C_RAM_TRANSFERRED: s->ram_transferred = v; break;
    case C_RAM_REMAINING: s->ram_remaining = v; break;
    case C_RAM_DUPLICATE: s->ram_duplicate = v; break;
    case C_RAM_NORMAL: s->ram_normal = v; break;
    case C_DIRTY_PAGES_RATE: s->dirty_pages_rate = v; break;
    case C_PAGE_SIZE: s->page_size = v; break;
    case C_BW_BPS: s->bw_bps = v; break;
    case C_DIRTY_SYNC_COUNT: s->dirty_sync_count = v; break;
    case C_THROTTLE_PCT: s->throttle_pct = (uint32_t)v; break;
    case C_POSTCOPY_REQUESTS: s->postcopy_requests = v; break;
    case C_DISK_TOTAL: s->disk_total = v; break;
    case C_DISK_DONE: s->disk_done = v; break;
    case C_SETTING_DOWNTIME_MS: s->setting_downtime_ms = v; break;
    case C_SETTING_MAX_BW_BPS: s->setting_max_bw_bps = v; break;
    case C_EXPECTED_DOWNTIME_MS: s->expected_downtime_ms = v; break;
    case C_DIRTY_RATE_HINT_PPS: s->dirty_rate_hint_pps = v; break;
    case C_CENSUS_DIRTY_BYTES: s->census_dirty_bytes = v; break;
    case C_CENSUS_DIRTY_MS: s->census_dirty_ms = v; break;
    default: break;
    }
}

int trace_parse(const char *buf, size_t len, struct mig_sample *out, size_t max_rows,
                size_t *n_rows, struct ferr *err)
{
    int cols[C__COUNT];
    int ncols = 0;
    size_t rows = 0;
    size_t lineno = 0;
    size_t pos = 0;
    uint64_t last_t = 0;

    if (n_rows)
        *n_rows = 0;
    if ((!buf && len) || !n_rows || (!out && max_rows))
        return ferr_set(err, FERR_INVAL, "", "trace_parse: bad arguments");
    if (max_rows > TRACE_ROWS_MAX)
        max_rows = TRACE_ROWS_MAX;

    while (pos < len) {
        size_t start = pos;
        while (pos < len && buf[pos] != '\n')
            pos++;
        size_t end = pos;
        if (pos < len)
            pos++; /* consume '\n' */
        lineno++;
        if (end > start && buf[end - 1] == '\r')
            end--;
        size_t n = end - start;
        if (n > TRACE_LINE_MAX)
            return ferr_set(err, FERR_TOOBIG, "", "line %zu: longer than %d bytes",
                            lineno, TRACE_LINE_MAX);
        const char *line = buf + start;
        if (n == 0 || line[0] == '#')
            continue;

        if (ncols == 0) { /* header */
            int seen[C__COUNT] = {0};
            size_t i = 0;
            for (;;) {
                size_t f0 = i;
                while (i < n && line[i] != ',')
                    i++;
                int c = col_lookup(line + f0, i - f0);
                if (c < 0)
                    return ferr_set(err, FERR_INVAL, "header",
                                    "line %zu: unknown column '%.*s'", lineno,
                                    (int)((i - f0) > 64 ? 64 : (i - f0)), line + f0);
                if (seen[c])
                    return ferr_set(err, FERR_INVAL, col_names[c],
                                    "line %zu: column '%s' repeated", lineno,
                                    col_names[c]);
                seen[c] = 1;
                cols[ncols++] = c;
                if (i >= n)
                    break;
                i++; /* ',' */
            }
            if (!seen[C_T_MS] || !seen[C_PHASE])
                return ferr_set(err, FERR_INVAL, seen[C_T_MS] ? "phase" : "t_ms",
                                "line %zu: header lacks required column '%s'",
                                lineno, seen[C_T_MS] ? "phase" : "t_ms");
            continue;
        }

        if (rows >= max_rows)
            return ferr_set(err, FERR_TOOBIG, "", "line %zu: more than %zu rows",
                            lineno, max_rows);
        struct mig_sample s;
        memset(&s, 0, sizeof(s));
        size_t i = 0;
        int k = 0;
        for (;;) {
            size_t f0 = i;
            while (i < n && line[i] != ',')
                i++;
            if (k >= ncols)
                return ferr_set(err, FERR_INVAL, "", "line %zu: more than %d fields",
                                lineno, ncols);
            int c = cols[k];
            if (c == C_PHASE) {
                enum mig_phase ph;
                if (mig_phase_parse(line + f0, i - f0, &ph) != 0)
                    return ferr_set(err, FERR_INVAL, "phase",
                                    "line %zu: unknown phase '%.*s'", lineno,
                                    (int)((i - f0) > 32 ? 32 : (i - f0)), line + f0);
                s.phase = ph;
            } else {
                uint64_t v;
                uint64_t max = c == C_THROTTLE_PCT ? 100 : UINT64_MAX;
                if (parse_u64(line + f0, i - f0, max, &v) != 0)
                    return ferr_set(err, FERR_INVAL, col_names[c],
                                    "line %zu: column '%s' is not an unsigned "
                                    "decimal in range", lineno, col_names[c]);
                set_field(&s, c, v);
            }
            k++;
            if (i >= n)
                break;
            i++;
        }
        if (k != ncols)
            return ferr_set(err, FERR_INVAL, "", "line %zu: %d fields, header has %d",
                            lineno, k, ncols);
        if (rows > 0 && s.t_ms < last_t)
            return ferr_set(err, FERR_INVAL, "t_ms", "line %zu: t_ms goes backwards",
                            lineno);
        last_t = s.t_ms;
        out[rows++] = s;
        *n_rows = rows;
    }
    if (ncols == 0)
        return ferr_set(err, FERR_INVAL, "header", "line %zu: no header line",
                        lineno);
    return 0;
}

int trace_format_header(char *buf, size_t cap, size_t *n)
{
    int w = snprintf(buf, cap, "%s\n", TRACE_COLUMNS);
    if (w < 0 || (size_t)w >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return FERR_TOOBIG;
    }
    if (n)
        *n = (size_t)w;
    return 0;
}

int trace_format_row(const struct mig_sample *s, char *buf, size_t cap, size_t *n)
{
    if ((unsigned)s->phase >= MIG_PHASE__COUNT)
        return FERR_INVAL;
    int w = snprintf(buf, cap,
                     "%llu,%s,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%u,"
                     "%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n",
                     (unsigned long long)s->t_ms, mig_phase_name(s->phase),
                     (unsigned long long)s->ram_total,
                     (unsigned long long)s->ram_transferred,
                     (unsigned long long)s->ram_remaining,
                     (unsigned long long)s->ram_duplicate,
                     (unsigned long long)s->ram_normal,
                     (unsigned long long)s->dirty_pages_rate,
                     (unsigned long long)s->page_size, (unsigned long long)s->bw_bps,
                     (unsigned long long)s->dirty_sync_count, s->throttle_pct,
                     (unsigned long long)s->postcopy_requests,
                     (unsigned long long)s->disk_total,
                     (unsigned long long)s->disk_done,
                     (unsigned long long)s->setting_downtime_ms,
                     (unsigned long long)s->setting_max_bw_bps,
                     (unsigned long long)s->expected_downtime_ms,
                     (unsigned long long)s->dirty_rate_hint_pps,
                     (unsigned long long)s->census_dirty_bytes,
                     (unsigned long long)s->census_dirty_ms);
    if (w < 0 || (size_t)w >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return FERR_TOOBIG;
    }
    if (n)
        *n = (size_t)w;
    return 0;
}

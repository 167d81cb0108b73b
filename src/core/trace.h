/* trace — the CSV format of recorded migration traces (one struct
 * mig_sample per row), shared by the agent's recorder, ferry-sim and tests.
 *
 * Format (tests/fixtures/traces/NAME.csv):
 *   - UTF-8/ASCII text, lines end in LF or CRLF; at most TRACE_LINE_MAX
 *     bytes per line.
 *   - Lines starting with '#' and empty lines are comments.
 *   - The first other line is the header: comma-separated column names,
 *     each a field of struct mig_sample (t_ms, phase, ram_total, ...), in any
 *     order, each at most once. t_ms and phase are required; a missing column
 *     reads as 0.
 *   - Each following line is one sample: the same number of fields; numbers
 *     are unsigned decimal (no sign, no spaces, fits the field); phase is a
 *     name accepted by mig_phase_parse ("active", "postcopy-active", ...).
 *   - t_ms never decreases from row to row.
 * trace_format_header() / trace_format_row() write the canonical form (all
 * columns, in TRACE_COLUMNS order). Columns added later go at the end
 * (dirty_rate_hint_pps, 2026-11; census_dirty_bytes and census_dirty_ms,
 * 2026-11); files written before them lack the columns and read them as 0
 * ("unknown").
 */
#ifndef FERRY_CORE_TRACE_H
#define FERRY_CORE_TRACE_H
#include <stddef.h>

#include "core/sample.h"
#include "util/ferr.h"

#define TRACE_LINE_MAX 1024       /* bytes per line, excluding the newline */
#define TRACE_ROWS_MAX 1000000    /* hard cap on rows whatever max_rows says */
#define TRACE_COLUMNS                                                          \
    "t_ms,phase,ram_total,ram_transferred,ram_remaining,ram_duplicate,"        \
    "ram_normal,dirty_pages_rate,page_size,bw_bps,dirty_sync_count,"           \
    "throttle_pct,postcopy_requests,disk_total,disk_done,"                     \
    "setting_downtime_ms,setting_max_bw_bps,expected_downtime_ms,"            \
    "dirty_rate_hint_pps,census_dirty_bytes,census_dirty_ms"

/* Parses buf[0..len) (borrowed; need not be NUL-terminated) into
 * out[0..*n_rows). Returns 0; FERR_INVAL for malformed input with err->msg
 * naming the line number ("line 7: ...") and err->field the column;
 * FERR_TOOBIG when a line exceeds TRACE_LINE_MAX or there are more rows than
 * max_rows (or TRACE_ROWS_MAX). On error *n_rows holds the rows parsed
 * before the bad line and out[0..*n_rows) is valid. err may be NULL. */
int trace_parse(const char *buf, size_t len, struct mig_sample *out, size_t max_rows,
                size_t *n_rows, struct ferr *err) __attribute__((warn_unused_result));

/* Writes the canonical header line (with '\n', NUL-terminated) to buf of
 * cap bytes; *n gets its length without the NUL. Returns 0 or FERR_TOOBIG
 * (buf then holds an empty string when cap > 0). */
int trace_format_header(char *buf, size_t cap, size_t *n)
    __attribute__((warn_unused_result));

/* Writes s as one canonical row (with '\n', NUL-terminated). Returns 0,
 * FERR_TOOBIG when cap is too small, FERR_INVAL when s->phase is out of
 * range. */
int trace_format_row(const struct mig_sample *s, char *buf, size_t cap, size_t *n)
    __attribute__((warn_unused_result));

#endif

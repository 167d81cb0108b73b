/* progress — the text of a migration's progress line and its closing
 * summary, rendered from ferryd's migration record (docs/FERRYD.md,
 * "Migration record"). Pure: no I/O, no clock; the output is plain ASCII,
 * so its byte count is its column count. */
#ifndef FERRY_CLI_PROGRESS_H
#define FERRY_CLI_PROGRESS_H
#include <jansson.h>
#include <stddef.h>

#define PROGRESS_NAME_MAX 24 /* columns: instance name before truncation ("...") */
#define PROGRESS_BAR_MIN 10  /* columns: narrowest bar drawn */
#define PROGRESS_BAR_MAX 50  /* columns: widest bar drawn */

/* Renders one progress line of migration m (borrowed; any member may be
 * missing or null) into out, at most width columns and cap - 1 bytes,
 * NUL-terminated, no newline:
 *
 *   db-1 [##########..........]  50.0%  running  eta 1m05s (52s-1m30s)
 *        bw 112.0 MiB/s  dirty 1200 p/s  left 512.0 MiB
 *
 * (one line). The name is cut to PROGRESS_NAME_MAX columns with "...";
 * pct comes from progress.pct, else from progress.memory, "?" when
 * neither; state is followed by "/phase" when they differ; bandwidth is
 * progress.bandwidth_bps (else bandwidth_bps); dirty is
 * guest_impact.dirty_pages_rate. Fields are dropped from the end (left,
 * dirty, bw, eta interval, eta, state) until the bar gets
 * PROGRESS_BAR_MIN columns, then the bar goes; the name and percentage
 * are always there (cut when width is tiny). Returns the length written;
 * width < 1 or cap < 2 writes "" and returns 0. */
size_t progress_render(const json_t *m, int width, char *out, size_t cap);

/* Formats a duration of ms milliseconds for people: "0s", "42s", "3m07s",
 * "2h05m" (seconds rounded, then truncated to the shown unit), "?" when
 * ms < 0. Returns the length written (out NUL-terminated, cut to cap). */
size_t progress_fmt_duration(long long ms, char *out, size_t cap);

/* Formats a byte count: "512 B", "1.5 KiB", "512.0 MiB", "1.25 GiB". */
size_t progress_fmt_bytes(double bytes, char *out, size_t cap);

/* Renders the closing summary of migration m into out (cap bytes, one
 * line, no newline): "migration ID (INSTANCE) succeeded: total 12.3 s,
 * downtime 45 ms, sent 1.20 GiB, 5 passes" from its result; for other
 * states the state and last_error. Returns the length written. */
size_t progress_summary(const json_t *m, char *out, size_t cap);

#endif

/* Trace CSV parser: good input parses, bad input fails with the line
 * number and column, caps hold, canonical output round-trips. */
#include <string.h>

#include "../lib/test.h"
#include "core/trace.h"

/* Proves: each malformed input fails with the expected code and names its
 * line; a valid subset-of-columns trace with comments and CRLF parses. */
static void t_cases(void)
{
    static const struct {
        const char *in;
        int rc;
        size_t rows;
        const char *msg_has;
    } c[] = {
        {"# c\nt_ms,phase,ram_remaining\r\n0,active,10\r\n\n5,postcopy-active,3\n", 0, 2, ""},
        {"t_ms,phase\n10,active\n5,active\n", FERR_INVAL, 1, "line 3"},
        {"t_ms,phase,nope\n", FERR_INVAL, 0, "line 1"},
        {"t_ms,ram_total\n", FERR_INVAL, 0, "phase"},
        {"t_ms,phase\n1,active,2\n", FERR_INVAL, 0, "line 2"},
        {"t_ms,phase\n1\n", FERR_INVAL, 0, "line 2"},
        {"t_ms,phase\n-1,active\n", FERR_INVAL, 0, "line 2"},
        {"t_ms,phase\n99999999999999999999,active\n", FERR_INVAL, 0, "line 2"},
        {"t_ms,phase\n1,warp\n", FERR_INVAL, 0, "phase"},
        {"t_ms,phase,throttle_pct\n1,active,101\n", FERR_INVAL, 0, "throttle_pct"},
        {"# only a comment\n", FERR_INVAL, 0, "no header"},
        {"t_ms,phase\n1,active\n2,active\n3,active\n", FERR_TOOBIG, 2, "line 4"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct mig_sample rows[2];
        size_t n = 99;
        struct ferr e;
        ferr_clear(&e);
        int rc = trace_parse(c[i].in, strlen(c[i].in), rows, 2, &n, &e);
        CHECK(rc == c[i].rc, "case %zu: rc %d want %d (%s)", i, rc, c[i].rc, e.msg);
        CHECK(n == c[i].rows, "case %zu: %zu rows", i, n);
        CHECK(strstr(e.msg, c[i].msg_has) || strstr(e.field, c[i].msg_has),
              "case %zu: message '%s' field '%s' lacks '%s'", i, e.msg, e.field, c[i].msg_has);
    }
}

/* Proves: a line over TRACE_LINE_MAX is refused as too big. */
static void t_line_cap(void)
{
    static char buf[TRACE_LINE_MAX + 64];
    memcpy(buf, "t_ms,phase\n", 11);
    memset(buf + 11, '1', sizeof(buf) - 11);
    struct mig_sample rows[1];
    size_t n;
    CHECK(trace_parse(buf, sizeof(buf), rows, 1, &n, NULL) == FERR_TOOBIG, "long line");
}

/* Proves: canonical format → parse gives back the same samples. */
static void t_round_trip(void)
{
    struct mig_sample s[2];
    memset(s, 0, sizeof(s));
    s[0].t_ms = 250; s[0].phase = MIG_PHASE_ACTIVE; s[0].ram_total = 1ull << 40;
    s[0].bw_bps = 123456789; s[0].throttle_pct = 40; s[0].expected_downtime_ms = 77;
    s[0].dirty_rate_hint_pps = 2560;
    s[0].census_dirty_bytes = 1ull << 30;
    s[0].census_dirty_ms = 1500;
    s[1] = s[0]; s[1].t_ms = 500; s[1].phase = MIG_PHASE_COMPLETED; s[1].disk_done = 5;
    char buf[2048];
    size_t len, w;
    REQUIRE(trace_format_header(buf, sizeof(buf), &len) == 0, "header");
    for (int i = 0; i < 2; i++) {
        REQUIRE(trace_format_row(&s[i], buf + len, sizeof(buf) - len, &w) == 0, "row");
        len += w;
    }
    struct mig_sample back[2];
    size_t n;
    REQUIRE(trace_parse(buf, len, back, 2, &n, NULL) == 0 && n == 2, "parse");
    CHECK(memcmp(s, back, sizeof(s)) == 0, "round trip differs");
    CHECK(trace_format_row(&s[0], buf, 10, &w) == FERR_TOOBIG, "small buffer");
}

/* Proves: a file written before dirty_rate_hint_pps existed (the old
 * canonical header, without the trailing column) still parses, the hint
 * reading 0 (unknown); the new canonical header ends with the column. */
static void t_old_header(void)
{
    static const char old[] =
        "t_ms,phase,ram_total,ram_transferred,ram_remaining,ram_duplicate,"
        "ram_normal,dirty_pages_rate,page_size,bw_bps,dirty_sync_count,"
        "throttle_pct,postcopy_requests,disk_total,disk_done,"
        "setting_downtime_ms,setting_max_bw_bps,expected_downtime_ms\n"
        "250,active,1000,10,990,1,2,3,4096,40,1,0,0,0,0,300,0,7\n";
    struct mig_sample r[1];
    size_t n = 0;
    char hdr[1024];
    REQUIRE(trace_parse(old, sizeof(old) - 1, r, 1, &n, NULL) == 0 && n == 1, "old file");
    CHECK(r[0].dirty_rate_hint_pps == 0 && r[0].expected_downtime_ms == 7 &&
              r[0].dirty_pages_rate == 3,
          "old row: hint %llu", (unsigned long long)r[0].dirty_rate_hint_pps);
    REQUIRE(trace_format_header(hdr, sizeof(hdr), NULL) == 0, "header");
    CHECK(strstr(hdr, ",expected_downtime_ms,dirty_rate_hint_pps,census_dirty_bytes,"
                      "census_dirty_ms\n") != NULL,
          "header %s", hdr);
}

int main(void)
{
    test_run("trace: old files without dirty_rate_hint_pps parse", t_old_header);
    test_run("trace: errors name the line, valid subsets parse", t_cases);
    test_run("trace: line length cap", t_line_cap);
    test_run("trace: canonical round trip", t_round_trip);
    return test_done();
}

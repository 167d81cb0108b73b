/* Unit: progress_render, progress_fmt_duration and progress_summary, from
 * tables. Proves: the line never exceeds its width (40/80/200) or buffer;
 * the percentage and bar fill follow progress.pct (0 %, mid, 100 %) or,
 * without it, progress.memory; missing fields render as "?" or are left
 * out, never as garbage; long instance names are cut with "..."; the ETA
 * and its interval are shown in s / min / h; narrow widths drop the
 * low-priority fields first and keep name and percentage. */
#include <string.h>

#include "../lib/test.h"
#include "cli/progress.h"

struct render_case {
    const char *what;
    const char *json;     /* the migration record */
    int width;            /* columns */
    const char *want[4];  /* substrings that must appear */
    const char *avoid[3]; /* substrings that must not appear */
    int bar_fill;         /* '#' expected in the bar, -1: don't check */
};

#define MID                                                                                        \
    "{\"id\":\"m1\",\"instance\":\"db-1\",\"state\":\"running\",\"phase\":\"running\","            \
    "\"progress\":{\"pct\":50,\"memory\":{\"total_bytes\":1073741824,"                             \
    "\"remaining_bytes\":536870912},\"bandwidth_bps\":117440512},"                                 \
    "\"eta\":{\"ms\":65000,\"low_ms\":52000,\"high_ms\":90000},"                                   \
    "\"guest_impact\":{\"throttle_pct\":0,\"dirty_pages_rate\":1200}}"

static const struct render_case CASES[] = {
    {"0 %: empty bar, eta unknown",
     "{\"instance\":\"a\",\"state\":\"requested\","
     "\"phase\":\"queued\",\"progress\":{\"pct\":0},\"eta\":null}",
     80,
     {"a [", "  0.0%", "requested/queued", "eta ?"},
     {"#", "(null)", NULL},
     0},
    {"mid at 80: everything fits",
     MID,
     80,
     {"db-1 [", " 50.0%", "eta 1m05s (52s-1m30s)", "bw 112.0 MiB/s"},
     {"(null)", NULL, NULL},
     -1},
    {"mid at 200: dirty and left shown, bar capped",
     MID,
     200,
     {"dirty 1200 p/s", "left 512.0 MiB", "running", "eta 1m05s"},
     {"running/", NULL, NULL},
     PROGRESS_BAR_MAX / 2},
    {"mid at 40: low-priority fields dropped, name and pct kept",
     MID,
     40,
     {"db-1", "50.0%"},
     {"dirty", "left", NULL},
     -1},
    {"100 %: full bar",
     "{\"instance\":\"x\",\"state\":\"succeeded\",\"progress\":{\"pct\":100},"
     "\"eta\":null}",
     80,
     {"100.0%", "succeeded"},
     {"eta", "(null)", NULL},
     -2},
    {"missing everything: ? and no garbage",
     "{}",
     80,
     {"? [", "    ?%", "eta ?"},
     {"(null)", "nan", "#"},
     0},
    {"pct from memory when pct absent",
     "{\"instance\":\"v\",\"state\":\"running\","
     "\"progress\":{\"memory\":{\"total_bytes\":1000,\"remaining_bytes\":250}}}",
     80,
     {" 75.0%", "left 250 B"},
     {NULL, NULL, NULL},
     -1},
    {"long name cut with ...",
     "{\"instance\":\"a-very-long-instance-name-that-goes-on-and-on\","
     "\"state\":\"running\",\"progress\":{\"pct\":10}}",
     80,
     {"a-very-long-instance-...", "10.0%"},
     {"goes-on", NULL, NULL},
     -1},
    {"ETA in hours, interval in minutes",
     "{\"instance\":\"h\",\"state\":\"running\","
     "\"progress\":{\"pct\":1},\"eta\":{\"ms\":7500000,\"low_ms\":3000000,\"high_ms\":9000000}}",
     80,
     {"eta 2h05m (50m00s-2h30m)"},
     {NULL, NULL, NULL},
     -1},
    {"ETA in seconds",
     "{\"instance\":\"s\",\"state\":\"running\",\"progress\":{\"pct\":99},"
     "\"eta\":{\"ms\":4400,\"low_ms\":3000,\"high_ms\":6000}}",
     80,
     {"eta 4s (3s-6s)"},
     {NULL, NULL, NULL},
     -1},
    {"pct over 100 clamped",
     "{\"instance\":\"c\",\"progress\":{\"pct\":250}}",
     80,
     {"100.0%"},
     {"250", NULL, NULL},
     -2},
    {"wrong types ignored",
     "{\"instance\":7,\"state\":[],\"progress\":{\"pct\":\"x\"},"
     "\"eta\":{\"ms\":\"soon\"}}",
     80,
     {"?", "    ?%"},
     {"(null)", "soon", NULL},
     0},
};

/* Counts '#' between the first '[' and the next ']'; -1 when no bar. */
static int bar_fill(const char *s, int *bar_len)
{
    const char *a = strchr(s, '['), *b = a ? strchr(a, ']') : NULL;
    if (!a || !b)
        return -1;
    int n = 0;
    for (const char *p = a + 1; p < b; p++)
        n += *p == '#';
    *bar_len = (int)(b - a - 1);
    return n;
}

static void t_render_table(void)
{
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const struct render_case *c = &CASES[i];
        json_error_t je;
        json_t *m = json_loads(c->json, 0, &je);
        REQUIRE(m, "case %zu: bad fixture: %s", i, je.text);
        char out[512];
        size_t n = progress_render(m, c->width, out, sizeof(out));
        CHECK(n == strlen(out), "%s: returned %zu for a %zu-byte line", c->what, n, strlen(out));
        CHECK((int)n <= c->width, "%s: %zu columns > width %d: '%s'", c->what, n, c->width, out);
        CHECK(!strchr(out, '\n') && !strchr(out, '\r'), "%s: line breaks in '%s'", c->what, out);
        for (int k = 0; k < 4 && c->want[k]; k++)
            CHECK(strstr(out, c->want[k]), "%s: '%s' missing in '%s'", c->what, c->want[k], out);
        for (int k = 0; k < 3 && c->avoid[k]; k++)
            CHECK(!strstr(out, c->avoid[k]), "%s: '%s' present in '%s'", c->what, c->avoid[k], out);
        int len = 0, fill = bar_fill(out, &len);
        if (c->bar_fill == -2)
            CHECK(fill == len && len >= PROGRESS_BAR_MIN, "%s: bar not full: '%s'", c->what, out);
        else if (c->bar_fill >= 0)
            CHECK(fill == c->bar_fill, "%s: %d '#' in the bar, want %d: '%s'", c->what, fill,
                  c->bar_fill, out);
        json_decref(m);
    }
}

/* The mid record at many widths: never over the width, the bar fills half. */
static void t_render_widths(void)
{
    json_t *m = json_loads(MID, 0, NULL);
    REQUIRE(m, "fixture");
    static const int widths[] = {1, 5, 12, 20, 40, 60, 80, 120, 200, 400};
    for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
        char out[512];
        size_t n = progress_render(m, widths[i], out, sizeof(out));
        CHECK((int)n <= widths[i], "width %d: %zu columns '%s'", widths[i], n, out);
        CHECK(n > 0, "width %d: empty", widths[i]);
        int len = 0, fill = bar_fill(out, &len);
        if (fill >= 0) {
            CHECK(len >= PROGRESS_BAR_MIN && len <= PROGRESS_BAR_MAX, "width %d: bar %d", widths[i],
                  len);
            CHECK(fill == len / 2, "width %d: fill %d of %d at 50%%", widths[i], fill, len);
        }
        if (widths[i] >= 40)
            CHECK(fill >= 0, "width %d: no bar: '%s'", widths[i], out);
    }
    /* a buffer smaller than the width bounds the output */
    char small[16];
    size_t n = progress_render(m, 80, small, sizeof(small));
    CHECK(n == strlen(small) && n <= 15, "cap 16: %zu bytes", n);
    CHECK(progress_render(m, 0, small, sizeof(small)) == 0 && small[0] == '\0', "width 0");
    json_decref(m);
}

static void t_duration(void)
{
    static const struct {
        long long ms;
        const char *want;
    } T[] = {{-1, "?"},           {0, "0s"},          {499, "0s"},        {500, "1s"},
             {42000, "42s"},      {59499, "59s"},     {59500, "1m00s"},   {65000, "1m05s"},
             {3599000, "59m59s"}, {3600000, "1h00m"}, {7500000, "2h05m"}, {360000000, "100h00m"}};
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        char out[32];
        progress_fmt_duration(T[i].ms, out, sizeof(out));
        CHECK(strcmp(out, T[i].want) == 0, "%lld ms: '%s', want '%s'", T[i].ms, out, T[i].want);
    }
    char tiny[3];
    CHECK(progress_fmt_duration(3599000, tiny, sizeof(tiny)) == 2 && strcmp(tiny, "59") == 0,
          "cut to cap: '%s'", tiny);
}

static void t_summary(void)
{
    static const struct {
        const char *json, *want[3];
    } T[] = {
        {"{\"id\":\"m1\",\"instance\":\"db\",\"state\":\"succeeded\",\"result\":{\"total_time_ms\":"
         "12300,\"downtime_ms\":45,\"ram_transferred\":1288490189,\"iterations\":5}}",
         {"migration m1 (db) succeeded: total 12.3 s", "downtime 45 ms",
          "sent 1.20 GiB, 5 passes"}},
        {"{\"id\":\"m2\",\"instance\":\"db\",\"state\":\"failed\",\"result\":null,"
         "\"last_error\":\"agent lost the migration\"}",
         {"migration m2 (db) failed: agent lost the migration", NULL, NULL}},
        {"{}", {"migration ? (?) ?", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        json_t *m = json_loads(T[i].json, 0, NULL);
        REQUIRE(m, "fixture %zu", i);
        char out[256];
        progress_summary(m, out, sizeof(out));
        for (int k = 0; k < 3 && T[i].want[k]; k++)
            CHECK(strstr(out, T[i].want[k]), "case %zu: '%s' missing in '%s'", i, T[i].want[k],
                  out);
        json_decref(m);
    }
}

int main(void)
{
    test_run("progress: table (0 %, mid, 100 %, missing fields, long names, ETA units)",
             t_render_table);
    test_run("progress: widths 1..400 never overflow; bar half full at 50 %", t_render_widths);
    test_run("progress: durations in s / min / h", t_duration);
    test_run("progress: summary from result or last_error", t_summary);
    return test_done();
}

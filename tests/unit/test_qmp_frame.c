/* Unit tests for src/qmp/qmp_frame: the line framer under its hard cap and
 * the classification of QMP messages. Table-driven. */
#include <stdlib.h>
#include <string.h>

#include "../lib/test.h"
#include "qmp/qmp_frame.h"
#include "util/ferr.h"

#define MAX_LINES 16

struct collect {
    int n;                     /* lines seen */
    char lines[MAX_LINES][64]; /* copies of the first MAX_LINES lines */
    size_t lens[MAX_LINES];    /* their lengths, bytes */
    int stop_after;            /* return 7 from the cb after this many lines; 0 = never */
};

static int collect_cb(void *arg, const char *line, size_t len)
{
    struct collect *c = arg;
    if (c->n < MAX_LINES) {
        size_t k = len < sizeof(c->lines[0]) - 1 ? len : sizeof(c->lines[0]) - 1;
        memcpy(c->lines[c->n], line, k);
        c->lines[c->n][k] = '\0';
        c->lens[c->n] = len;
    }
    c->n++;
    return (c->stop_after && c->n >= c->stop_after) ? 7 : 0;
}

/* How the input is cut into chunks before feeding. */
enum split { WHOLE, BYTEWISE, HALVES };

struct frame_case {
    const char *name;
    const char *input;
    enum split split;
    size_t line_max;     /* 0 = default */
    int want_rc;         /* result of the last feed */
    int want_n;          /* lines delivered */
    const char *want[4]; /* expected lines, in order */
    size_t want_pending; /* bytes left buffered */
};

static const struct frame_case frame_cases[] = {
    {"LF line", "{\"a\":1}\n", WHOLE, 0, 0, 1, {"{\"a\":1}"}, 0},
    {"CRLF line strips both", "{\"a\":1}\r\n", WHOLE, 0, 0, 1, {"{\"a\":1}"}, 0},
    {"many lines in one chunk", "a\r\nb\nc\r\n", WHOLE, 0, 0, 3, {"a", "b", "c"}, 0},
    {"byte-by-byte CRLF", "ab\r\ncd\r\n", BYTEWISE, 0, 0, 2, {"ab", "cd"}, 0},
    {"line split across halves", "hello world\r\n", HALVES, 0, 0, 1, {"hello world"}, 0},
    {"partial line stays buffered", "done\npart", WHOLE, 0, 0, 1, {"done"}, 4},
    {"empty lines skipped", "\n\r\nx\n\n", WHOLE, 0, 0, 1, {"x"}, 0},
    {"only one CR stripped", "x\r\r\n", WHOLE, 0, 0, 1, {"x\r"}, 0},
    {"line exactly at cap (LF)", "abcd\n", WHOLE, 4, 0, 1, {"abcd"}, 0},
    {"line exactly at cap (CRLF, bytewise)", "abcd\r\n", BYTEWISE, 4, 0, 1, {"abcd"}, 0},
    {"line one over cap with LF", "abcde\n", WHOLE, 4, FERR_TOOBIG, 0, {0}, 0},
    {"oversize partial line without newline", "abcdef", BYTEWISE, 4, FERR_TOOBIG, 0, {0}, 0},
    {"oversize across chunks", "ab\nabcdefgh\nok\n", HALVES, 4, FERR_TOOBIG, 1, {"ab"}, 0},
    {"CR slack does not admit one more byte", "abcd\rx\n", BYTEWISE, 4, FERR_TOOBIG, 0, {0}, 0},
};

static const struct frame_case *cur_frame;

static void t_frame_case(void)
{
    const struct frame_case *tc = cur_frame;
    struct qmp_framer f;
    struct collect c = {0};
    qmp_framer_init(&f, tc->line_max);
    size_t len = strlen(tc->input);
    int rc = 0;
    if (tc->split == WHOLE) {
        rc = qmp_framer_feed(&f, tc->input, len, collect_cb, &c);
    } else if (tc->split == HALVES) {
        rc = qmp_framer_feed(&f, tc->input, len / 2, collect_cb, &c);
        if (rc == 0)
            rc = qmp_framer_feed(&f, tc->input + len / 2, len - len / 2, collect_cb, &c);
    } else {
        for (size_t i = 0; i < len && rc == 0; i++)
            rc = qmp_framer_feed(&f, tc->input + i, 1, collect_cb, &c);
    }
    CHECK(rc == tc->want_rc, "%s: rc %d, want %d", tc->name, rc, tc->want_rc);
    CHECK(c.n == tc->want_n, "%s: %d lines, want %d", tc->name, c.n, tc->want_n);
    for (int i = 0; i < tc->want_n && i < c.n && i < 4; i++)
        CHECK(strcmp(c.lines[i], tc->want[i]) == 0, "%s: line %d is '%s', want '%s'", tc->name, i,
              c.lines[i], tc->want[i]);
    CHECK(qmp_framer_pending(&f) == tc->want_pending, "%s: pending %zu, want %zu", tc->name,
          qmp_framer_pending(&f), tc->want_pending);
    CHECK(f.cap <= f.line_max + 2, "%s: buffer grew to %zu past the cap", tc->name, f.cap);
    if (tc->want_rc == FERR_TOOBIG) {
        /* the error state is sticky: a valid line afterwards is refused */
        int n0 = c.n;
        CHECK(qmp_framer_feed(&f, "ok\n", 3, collect_cb, &c) == FERR_TOOBIG,
              "%s: framer left its error state", tc->name);
        CHECK(c.n == n0, "%s: cb called after the error", tc->name);
    }
    qmp_framer_free(&f);
}

/* A 1 MiB cap holds: 2 MiB with no newline is refused and never buffered
 * beyond the cap. */
static void t_default_cap_bounds_memory(void)
{
    struct qmp_framer f;
    struct collect c = {0};
    qmp_framer_init(&f, 0);
    CHECK(f.line_max == QMP_LINE_MAX, "default cap %zu", f.line_max);
    char *chunk = malloc(64 * 1024);
    REQUIRE(chunk, "malloc");
    memset(chunk, 'x', 64 * 1024);
    int rc = 0, feeds = 0;
    while (rc == 0 && feeds < 32) {
        rc = qmp_framer_feed(&f, chunk, 64 * 1024, collect_cb, &c);
        feeds++;
        CHECK(f.cap <= QMP_LINE_MAX + 2, "cap grew to %zu", f.cap);
    }
    CHECK(rc == FERR_TOOBIG, "rc %d after %d feeds", rc, feeds);
    CHECK(feeds == 17, "refused after %d x 64 KiB, want 17 (first byte past 1 MiB + CR slack)",
          feeds);
    CHECK(c.n == 0, "no line may be delivered");
    free(chunk);
    qmp_framer_free(&f);
}

/* A non-zero return from the line cb stops feeding and is passed through. */
static void t_cb_stop(void)
{
    struct qmp_framer f;
    struct collect c = {.stop_after = 2};
    qmp_framer_init(&f, 0);
    int rc = qmp_framer_feed(&f, "a\nb\nc\nd\n", 8, collect_cb, &c);
    CHECK(rc == 7, "rc %d, want the cb's 7", rc);
    CHECK(c.n == 2, "%d lines delivered, want 2", c.n);
    qmp_framer_free(&f);
}

struct parse_case {
    const char *name;
    const char *line;
    enum qmp_msg_kind kind;
    long long id;    /* -1: no integer id expected */
    const char *str; /* error class or event name to expect, or NULL */
};

static const struct parse_case parse_cases[] = {
    {"greeting from QEMU 7.2",
     "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
     "\"package\": \"Debian 1:7.2+dfsg-7\"}, \"capabilities\": [\"oob\"]}}",
     QMP_MSG_GREETING, -1, NULL},
    {"return with id", "{\"return\": {}, \"id\": 3}", QMP_MSG_RETURN, 3, NULL},
    {"return without id", "{\"return\": [1,2]}", QMP_MSG_RETURN, -1, NULL},
    {"return with string id", "{\"return\": 1, \"id\": \"x\"}", QMP_MSG_RETURN, -1, NULL},
    {"error with id",
     "{\"id\": 9, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command foo has "
     "not been found\"}}",
     QMP_MSG_ERROR, 9, "CommandNotFound"},
    {"event with data",
     "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 12}, \"event\": "
     "\"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}",
     QMP_MSG_EVENT, -1, "SHUTDOWN"},
    {"event without data",
     "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}", QMP_MSG_EVENT,
     -1, "STOP"},
    /* invalid */
    {"not JSON", "{\"return\": ", QMP_MSG_INVALID, -1, NULL},
    {"trailing garbage", "{\"return\": {}} x", QMP_MSG_INVALID, -1, NULL},
    {"array, not object", "[1,2,3]", QMP_MSG_INVALID, -1, NULL},
    {"no known member", "{\"foo\": 1}", QMP_MSG_INVALID, -1, NULL},
    {"two kinds at once", "{\"return\": {}, \"event\": \"STOP\"}", QMP_MSG_INVALID, -1, NULL},
    {"duplicate keys", "{\"return\": 1, \"return\": 2}", QMP_MSG_INVALID, -1, NULL},
    {"greeting without version", "{\"QMP\": {\"capabilities\": []}}", QMP_MSG_INVALID, -1, NULL},
    {"greeting major is a string",
     "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": \"7\"}}, "
     "\"capabilities\": []}}",
     QMP_MSG_INVALID, -1, NULL},
    {"greeting capabilities not array",
     "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, "
     "\"capabilities\": {}}}",
     QMP_MSG_INVALID, -1, NULL},
    {"error without desc", "{\"error\": {\"class\": \"GenericError\"}, \"id\": 1}", QMP_MSG_INVALID,
     -1, NULL},
    {"error is a string", "{\"error\": \"bad\", \"id\": 1}", QMP_MSG_INVALID, -1, NULL},
    {"event without timestamp", "{\"event\": \"STOP\"}", QMP_MSG_INVALID, -1, NULL},
    {"event name not string",
     "{\"event\": 5, \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}", QMP_MSG_INVALID, -1,
     NULL},
    {"event data not object",
     "{\"event\": \"X\", \"data\": 1, \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}",
     QMP_MSG_INVALID, -1, NULL},
    {"event timestamp seconds is real",
     "{\"event\": \"X\", \"timestamp\": {\"seconds\": 1.5, \"microseconds\": 2}}", QMP_MSG_INVALID,
     -1, NULL},
    {"NUL escape in string", "{\"return\": \"a\\u0000b\"}", QMP_MSG_INVALID, -1, NULL},
};

static const struct parse_case *cur_parse;

static void t_parse_case(void)
{
    const struct parse_case *tc = cur_parse;
    struct qmp_msg m;
    int rc = qmp_msg_parse(tc->line, strlen(tc->line), &m);
    CHECK(m.kind == tc->kind, "%s: kind %s, want %s (%s)", tc->name, qmp_msg_kind_name(m.kind),
          qmp_msg_kind_name(tc->kind), m.reason);
    CHECK((rc == 0) == (tc->kind != QMP_MSG_INVALID), "%s: rc %d", tc->name, rc);
    if (tc->kind == QMP_MSG_INVALID)
        CHECK(m.reason[0] != '\0', "%s: invalid without a reason", tc->name);
    if (tc->id >= 0)
        CHECK(m.has_int_id && m.int_id == (uint64_t)tc->id, "%s: id %d/%llu, want %lld", tc->name,
              m.has_int_id, (unsigned long long)m.int_id, tc->id);
    else
        CHECK(!m.has_int_id, "%s: unexpected integer id", tc->name);
    if (tc->str && tc->kind == QMP_MSG_ERROR)
        CHECK(m.err_class && strcmp(m.err_class, tc->str) == 0 && m.err_desc, "%s: class %s",
              tc->name, m.err_class ? m.err_class : "(null)");
    if (tc->str && tc->kind == QMP_MSG_EVENT)
        CHECK(m.event && strcmp(m.event, tc->str) == 0, "%s: event %s", tc->name,
              m.event ? m.event : "(null)");
    qmp_msg_free(&m);
}

/* Field values of each kind are extracted, not only the kind. */
static void t_parse_fields(void)
{
    struct qmp_msg m;
    const char *g = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 3, \"minor\": 2, \"major\": "
                    "7}, \"package\": \"\"}, \"capabilities\": []}}";
    REQUIRE(qmp_msg_parse(g, strlen(g), &m) == 0, "greeting: %s", m.reason);
    CHECK(m.ver_major == 7 && m.ver_minor == 2 && m.ver_micro == 3, "version %d.%d.%d", m.ver_major,
          m.ver_minor, m.ver_micro);
    qmp_msg_free(&m);
    const char *e = "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1700000001, "
                    "\"microseconds\": 999999}, \"data\": {\"k\": 1}}";
    REQUIRE(qmp_msg_parse(e, strlen(e), &m) == 0, "event: %s", m.reason);
    CHECK(m.ts_sec == 1700000001 && m.ts_usec == 999999, "ts %lld.%lld", (long long)m.ts_sec,
          (long long)m.ts_usec);
    CHECK(json_integer_value(json_object_get(m.value, "k")) == 1, "data.k");
    qmp_msg_free(&m);
    const char *r = "{\"return\": {\"status\": \"running\"}, \"id\": 42}";
    REQUIRE(qmp_msg_parse(r, strlen(r), &m) == 0, "return: %s", m.reason);
    CHECK(strcmp(json_string_value(json_object_get(m.value, "status")), "running") == 0,
          "return value");
    qmp_msg_free(&m);
    qmp_msg_free(&m); /* freeing twice is safe */
    CHECK(m.root == NULL, "cleared");
}

/* Nesting over QMP_JSON_DEPTH_MAX is refused before jansson parses it;
 * nesting at the cap is accepted; brackets inside strings do not count. */
static void t_parse_depth(void)
{
    char buf[512];
    struct qmp_msg m;
    size_t n = 0;
    n += (size_t)snprintf(buf, sizeof(buf), "{\"return\": ");
    for (int i = 0; i < QMP_JSON_DEPTH_MAX - 1; i++)
        buf[n++] = '[';
    for (int i = 0; i < QMP_JSON_DEPTH_MAX - 1; i++)
        buf[n++] = ']';
    buf[n++] = '}';
    CHECK(qmp_msg_parse(buf, n, &m) == 0, "at the cap: %s", m.reason);
    qmp_msg_free(&m);
    n = 0;
    n += (size_t)snprintf(buf, sizeof(buf), "{\"return\": ");
    for (int i = 0; i < QMP_JSON_DEPTH_MAX; i++)
        buf[n++] = '[';
    for (int i = 0; i < QMP_JSON_DEPTH_MAX; i++)
        buf[n++] = ']';
    buf[n++] = '}';
    CHECK(qmp_msg_parse(buf, n, &m) == FERR_PEER && strstr(m.reason, "deeper"),
          "over the cap accepted: %s", m.reason);
    qmp_msg_free(&m);
    char s[400];
    n = (size_t)snprintf(s, sizeof(s), "{\"return\": \"");
    for (int i = 0; i < 100; i++)
        s[n++] = '[';
    n += (size_t)snprintf(s + n, sizeof(s) - n, "\\\"[\"}");
    CHECK(qmp_msg_parse(s, n, &m) == 0, "brackets in a string: %s", m.reason);
    qmp_msg_free(&m);
}

int main(void)
{
    char name[160];
    for (size_t i = 0; i < sizeof(frame_cases) / sizeof(frame_cases[0]); i++) {
        cur_frame = &frame_cases[i];
        snprintf(name, sizeof(name), "framer: %s", frame_cases[i].name);
        test_run(name, t_frame_case);
    }
    test_run("framer: default 1 MiB cap refuses a 2 MiB line, memory bounded",
             t_default_cap_bounds_memory);
    test_run("framer: non-zero from the line cb stops the feed", t_cb_stop);
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        cur_parse = &parse_cases[i];
        snprintf(name, sizeof(name), "parse: %s -> %s", parse_cases[i].name,
                 qmp_msg_kind_name(parse_cases[i].kind));
        test_run(name, t_parse_case);
    }
    test_run("parse: version, timestamp, data and return value are extracted", t_parse_fields);
    test_run("parse: JSON depth cap enforced, strings do not count", t_parse_depth);
    return test_done();
}

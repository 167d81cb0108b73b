#include "qmp/qmp_frame.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/ferr.h"
#include "util/xalloc.h"

#define FRAMER_LINE_MAX_LIMIT (SIZE_MAX / 4) /* keeps line_max + 2 from overflowing */

void qmp_framer_init(struct qmp_framer *f, size_t line_max)
{
    memset(f, 0, sizeof(*f));
    if (line_max == 0)
        line_max = QMP_LINE_MAX;
    if (line_max > FRAMER_LINE_MAX_LIMIT)
        line_max = FRAMER_LINE_MAX_LIMIT;
    f->line_max = line_max;
}

void qmp_framer_free(struct qmp_framer *f)
{
    free(f->buf);
    f->buf = NULL;
    f->len = 0;
    f->cap = 0;
}

size_t qmp_framer_pending(const struct qmp_framer *f)
{
    return f->len;
}

/* Enters the sticky oversize state and drops what was buffered. */
static int framer_toobig(struct qmp_framer *f)
{
    qmp_framer_free(f);
    f->err = FERR_TOOBIG;
    return FERR_TOOBIG;
}

/* True when a buffered prefix of n bytes already proves the line is over
 * the cap. One byte of slack is allowed for the '\r' of a "\r\n" ending. */
static int framer_over(const struct qmp_framer *f, size_t n, char last)
{
    if (n > f->line_max + 1)
        return 1;
    return n == f->line_max + 1 && last != '\r';
}

/* Appends n bytes to the partial line; the caller has checked the cap. */
static void framer_append(struct qmp_framer *f, const char *p, size_t n)
{
    size_t need = f->len + n;
    if (need > f->cap) {
        size_t ncap = f->cap ? f->cap : 256;
        while (ncap < need)
            ncap *= 2;
        if (ncap > f->line_max + 2)
            ncap = f->line_max + 2;
        f->buf = xrealloc(f->buf, ncap);
        f->cap = ncap;
    }
    memcpy(f->buf + f->len, p, n);
    f->len = need;
}

int qmp_framer_feed(struct qmp_framer *f, const char *data, size_t len, qmp_line_cb cb, void *arg)
{
    if (f->err)
        return f->err;
    size_t off = 0;
    while (off < len) {
        const char *p = data + off;
        size_t left = len - off;
        const char *nl = memchr(p, '\n', left);
        if (!nl) {
            if (framer_over(f, f->len + left, p[left - 1]))
                return framer_toobig(f);
            framer_append(f, p, left);
            return 0;
        }
        size_t seg = (size_t)(nl - p);
        const char *line;
        size_t llen;
        if (f->len == 0) {
            line = p;
            llen = seg;
        } else {
            if (f->len + seg > f->line_max + 1)
                return framer_toobig(f);
            framer_append(f, p, seg);
            line = f->buf;
            llen = f->len;
        }
        if (llen > 0 && line[llen - 1] == '\r')
            llen--;
        if (llen > f->line_max)
            return framer_toobig(f);
        f->len = 0; /* buf stays valid for cb: nothing is appended meanwhile */
        off += seg + 1;
        if (llen > 0) {
            int r = cb(arg, line, llen);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

/* ---- message parser ---- */

/* Returns 0 when the JSON text nests at most max deep, scanning bytes
 * outside strings; never reads past len. */
static int depth_ok(const char *s, size_t len, int max)
{
    int depth = 0, in_str = 0, esc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return -1;
        } else if (c == ']' || c == '}') {
            if (depth > 0)
                depth--;
        }
    }
    return 0;
}

static int invalid(struct qmp_msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int invalid(struct qmp_msg *m, const char *fmt, ...)
{
    m->kind = QMP_MSG_INVALID;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->reason, sizeof(m->reason), fmt, ap);
    va_end(ap);
    return FERR_PEER;
}

/* Reads integer member key of obj into *out within [lo, hi]. */
static int get_int(json_t *obj, const char *key, long long lo, long long hi, long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return -1;
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int parse_greeting(struct qmp_msg *m, json_t *qmp)
{
    if (!json_is_object(qmp))
        return invalid(m, "greeting: \"QMP\" is not an object");
    json_t *ver = json_object_get(qmp, "version");
    json_t *qemu = json_object_get(ver, "qemu");
    if (!json_is_object(ver) || !json_is_object(qemu))
        return invalid(m, "greeting: missing version.qemu object");
    long long maj, min, mic;
    if (get_int(qemu, "major", 0, INT_MAX, &maj) || get_int(qemu, "minor", 0, INT_MAX, &min) ||
        get_int(qemu, "micro", 0, INT_MAX, &mic))
        return invalid(m, "greeting: version.qemu needs integer major, minor, micro");
    if (!json_is_array(json_object_get(qmp, "capabilities")))
        return invalid(m, "greeting: \"capabilities\" is not an array");
    m->kind = QMP_MSG_GREETING;
    m->value = qmp;
    m->ver_major = (int)maj;
    m->ver_minor = (int)min;
    m->ver_micro = (int)mic;
    return 0;
}

static void take_id(struct qmp_msg *m, json_t *root)
{
    m->id = json_object_get(root, "id");
    if (json_is_integer(m->id) && json_integer_value(m->id) >= 0) {
        m->has_int_id = 1;
        m->int_id = (uint64_t)json_integer_value(m->id);
    }
}

static int parse_error(struct qmp_msg *m, json_t *root, json_t *e)
{
    if (!json_is_object(e))
        return invalid(m, "error: \"error\" is not an object");
    json_t *cls = json_object_get(e, "class");
    json_t *desc = json_object_get(e, "desc");
    if (!json_is_string(cls) || !json_is_string(desc))
        return invalid(m, "error: needs string \"class\" and \"desc\"");
    m->kind = QMP_MSG_ERROR;
    m->err_class = json_string_value(cls);
    m->err_desc = json_string_value(desc);
    take_id(m, root);
    return 0;
}

static int parse_event(struct qmp_msg *m, json_t *root, json_t *name)
{
    if (!json_is_string(name) || json_string_length(name) == 0)
        return invalid(m, "event: \"event\" is not a non-empty string");
    json_t *ts = json_object_get(root, "timestamp");
    long long sec, usec;
    if (!json_is_object(ts))
        return invalid(m, "event: missing \"timestamp\" object");
    if (get_int(ts, "seconds", LLONG_MIN, LLONG_MAX, &sec) ||
        get_int(ts, "microseconds", LLONG_MIN, LLONG_MAX, &usec))
        return invalid(m, "event: timestamp needs integer seconds and microseconds");
    json_t *data = json_object_get(root, "data");
    if (data && !json_is_object(data))
        return invalid(m, "event: \"data\" is not an object");
    m->kind = QMP_MSG_EVENT;
    m->event = json_string_value(name);
    m->value = data;
    m->ts_sec = sec;
    m->ts_usec = usec;
    return 0;
}

int qmp_msg_parse(const char *line, size_t len, struct qmp_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->ver_major = m->ver_minor = m->ver_micro = -1;
    if (depth_ok(line, len, QMP_JSON_DEPTH_MAX) != 0)
        return invalid(m, "JSON nests deeper than the cap");
    json_error_t jerr;
    m->root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!m->root)
        return invalid(m, "not JSON: %s", jerr.text);
    if (!json_is_object(m->root))
        return invalid(m, "not a JSON object");
    json_t *q = json_object_get(m->root, "QMP");
    json_t *r = json_object_get(m->root, "return");
    json_t *e = json_object_get(m->root, "error");
    json_t *ev = json_object_get(m->root, "event");
    int kinds = !!q + !!r + !!e + !!ev;
    if (kinds == 0)
        return invalid(m, "none of QMP, return, error, event");
    if (kinds > 1)
        return invalid(m, "more than one of QMP, return, error, event");
    if (q)
        return parse_greeting(m, q);
    if (e)
        return parse_error(m, m->root, e);
    if (ev)
        return parse_event(m, m->root, ev);
    m->kind = QMP_MSG_RETURN;
    m->value = r;
    take_id(m, m->root);
    return 0;
}

void qmp_msg_free(struct qmp_msg *m)
{
    json_decref(m->root);
    memset(m, 0, sizeof(*m));
}

const char *qmp_msg_kind_name(enum qmp_msg_kind kind)
{
    switch (kind) {
    case QMP_MSG_GREETING:
        return "greeting";
    case QMP_MSG_RETURN:
        return "return";
    case QMP_MSG_ERROR:
        return "error";
    case QMP_MSG_EVENT:
        return "event";
    case QMP_MSG_INVALID:
        break;
    }
    return "invalid";
}

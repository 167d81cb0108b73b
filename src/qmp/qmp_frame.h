/* qmp_frame — pure QMP framing and message classification, no I/O.
 *
 * A QMP peer (QEMU) writes one JSON object per line, each ending in "\r\n"
 * (QEMU) or "\n". The framer cuts an arbitrary byte stream into lines under
 * a hard cap; the parser turns one line into a classified message:
 * greeting, command return, command error, asynchronous event, or invalid.
 * Everything here is fed from outside the process, so every buffer is
 * bounded: line length (QMP_LINE_MAX, per framer) and JSON nesting depth
 * (QMP_JSON_DEPTH_MAX), checked before jansson sees the bytes. */
#ifndef FERRY_QMP_FRAME_H
#define FERRY_QMP_FRAME_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define QMP_LINE_MAX (1u << 20) /* bytes per line, terminator excluded */
#define QMP_JSON_DEPTH_MAX 64   /* nested arrays/objects per message */
#define QMP_REASON_MAX 128      /* bytes of an invalid message's reason */

/* A line framer. Fields are private to qmp_frame.c; the caller owns the
 * struct (stack or embedded) and releases it with qmp_framer_free(). */
struct qmp_framer {
    char *buf;       /* the incomplete line so far; heap, NULL when empty */
    size_t len;      /* bytes used in buf */
    size_t cap;      /* bytes allocated for buf; never above line_max + 2 */
    size_t line_max; /* longest accepted line, bytes, terminator excluded */
    int err;         /* 0, or FERR_TOOBIG once a line went over line_max */
};

/* Called once per complete line. line points at len bytes, the terminator
 * ("\n" or "\r\n") stripped; it is NOT NUL-terminated and is borrowed only
 * for the duration of the call. Empty lines are not reported. Returning
 * non-zero stops qmp_framer_feed() at once, which returns that value and
 * discards the rest of the chunk (for a caller that is closing). */
typedef int (*qmp_line_cb)(void *arg, const char *line, size_t len);

/* Prepares f with a cap of line_max bytes per line (0 selects QMP_LINE_MAX).
 * Allocates nothing until a partial line must be kept. */
void qmp_framer_init(struct qmp_framer *f, size_t line_max);

/* Releases the memory f holds; f may be initialised again afterwards. */
void qmp_framer_free(struct qmp_framer *f);

/* Feeds len bytes of stream data (any split: partial lines, many lines)
 * and calls cb for each line they complete, in order. Returns 0 when the
 * whole chunk was consumed; FERR_TOOBIG when a line exceeded the cap — the
 * framer then stays in that error state, keeps no more than the cap, and
 * every later feed returns FERR_TOOBIG without calling cb; or the non-zero
 * value cb returned. Lines completed before the oversize one were
 * delivered. */
int qmp_framer_feed(struct qmp_framer *f, const char *data, size_t len, qmp_line_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Returns the bytes of the incomplete line f currently holds. */
size_t qmp_framer_pending(const struct qmp_framer *f);

enum qmp_msg_kind {
    QMP_MSG_INVALID = 0, /* not a QMP message; reason says why */
    QMP_MSG_GREETING,    /* {"QMP": {"version": ..., "capabilities": [...]}} */
    QMP_MSG_RETURN,      /* {"return": value, "id": ...} */
    QMP_MSG_ERROR,       /* {"error": {"class", "desc"}, "id": ...} */
    QMP_MSG_EVENT,       /* {"event", "data", "timestamp": {seconds, microseconds}} */
};

/* One parsed line. Every pointer is borrowed from root and valid until
 * qmp_msg_free(); the struct owns root's reference. */
struct qmp_msg {
    enum qmp_msg_kind kind;
    json_t *root;                /* the whole object (owned); NULL when not JSON */
    json_t *id;                  /* the "id" member of a return/error, NULL if absent */
    int has_int_id;              /* 1 when id is a JSON integer ≥ 0 */
    uint64_t int_id;             /* id's value when has_int_id */
    json_t *value;               /* return: the value; event: data (NULL when absent);
                                    greeting: the "QMP" object */
    const char *err_class;       /* error: QEMU's class, e.g. "CommandNotFound" */
    const char *err_desc;        /* error: QEMU's human-readable description */
    const char *event;           /* event: its name, e.g. "STOP" */
    int64_t ts_sec;              /* event: timestamp, seconds since the Unix epoch */
    int64_t ts_usec;             /* event: timestamp, microseconds part (0..999999) */
    int ver_major;               /* greeting: QEMU version, -1 when absent */
    int ver_minor;               /* greeting */
    int ver_micro;               /* greeting */
    char reason[QMP_REASON_MAX]; /* invalid: one sentence saying why */
};

/* Parses one line (len bytes, no terminator needed, need not be
 * NUL-terminated) into out. Always fills out: kind is QMP_MSG_INVALID with
 * a reason when the line is not valid JSON, nests deeper than
 * QMP_JSON_DEPTH_MAX, is not an object, or lacks/mistypes the members its
 * kind requires (extra members are tolerated, as QMP allows). Returns 0 for
 * a valid message and FERR_PEER for an invalid one. The caller releases out
 * with qmp_msg_free() in both cases. */
int qmp_msg_parse(const char *line, size_t len, struct qmp_msg *out)
    __attribute__((warn_unused_result));

/* Drops out's reference to the parsed JSON and clears it. Safe on a
 * cleared or already-freed message. */
void qmp_msg_free(struct qmp_msg *out);

/* Returns a short name for kind ("greeting", "return", ...). */
const char *qmp_msg_kind_name(enum qmp_msg_kind kind);

#endif

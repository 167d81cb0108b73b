/* qmp_conn — an asynchronous QMP client on a libevent event_base.
 *
 * Life cycle (libuv-handle style): the caller owns the struct qmp_conn
 * memory; qmp_conn_connect() (or qmp_conn_open_fd()) starts it; the
 * connection reads QEMU's greeting, sends qmp_capabilities and then calls
 * on_ready. Commands carry integer ids matched to their replies (in any
 * order); events go to subscribers. The connection ends on peer hang-up, an
 * oversize line, garbage from the peer, a handshake timeout, or
 * qmp_conn_close(). From then on, from the event loop and never from inside
 * qmp_conn_close(): every pending command's callback fires exactly once with
 * FERR_CLOSED (in the order the commands were issued), then on_close fires
 * exactly once with the reason. Only after on_close may the caller free the
 * struct. Nothing fires after on_close.
 *
 * Writes go through libevent's writev(): the process must ignore SIGPIPE
 * (signal(SIGPIPE, SIG_IGN)), or a peer that vanishes mid-write kills it. */
#ifndef FERRY_QMP_CONN_H
#define FERRY_QMP_CONN_H
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>

#include "qmp/qmp_frame.h"
#include "util/ferr.h"

#define QMP_CONN_PENDING_MAX 64        /* commands in flight per connection */
#define QMP_CONN_SUBS_MAX 64           /* event subscriptions per connection */
#define QMP_CONN_HANDSHAKE_MS 10000    /* greeting + qmp_capabilities deadline, ms */
#define QMP_CONN_OUTBUF_MAX (4u << 20) /* unsent bytes before commands are refused */

struct qmp_conn;

/* The handshake finished; commands may be sent from now on. */
typedef void (*qmp_ready_cb)(struct qmp_conn *c, void *arg);
/* The connection ended. why->code: 0 after qmp_conn_close(); FERR_CLOSED
 * when the peer hung up (EOF, ECONNRESET or EPIPE); FERR_TOOBIG for a line over the cap; FERR_PEER
 * for garbage or a refused handshake; FERR_TIMEOUT for a handshake that did not finish in time;
 * -errno for a socket error. why is borrowed for the call. The caller may free c from here on (even
 * inside this callback). */
typedef void (*qmp_close_cb)(struct qmp_conn *c, const struct ferr *why, void *arg);
/* A command finished. err is NULL on success, with ret the "return" value
 * (borrowed: json_incref it to keep it past the call). Otherwise ret is NULL
 * and err->code is FERR_PEER (QEMU's error: err->field holds the class,
 * err->msg "Class: desc"), FERR_TIMEOUT or FERR_CLOSED. */
typedef void (*qmp_cmd_cb)(struct qmp_conn *c, const struct ferr *err, json_t *ret, void *arg);
/* An event arrived; ev (borrowed for the call) has kind QMP_MSG_EVENT and
 * ev->event, ev->value (data, may be NULL), ev->ts_sec, ev->ts_usec. */
typedef void (*qmp_event_cb)(struct qmp_conn *c, const struct qmp_msg *ev, void *arg);

struct qmp_conn_opts {
    size_t line_max;       /* longest accepted line, bytes; 0 = QMP_LINE_MAX */
    unsigned pending_max;  /* commands in flight; 0 = QMP_CONN_PENDING_MAX */
    unsigned handshake_ms; /* deadline for greeting + capabilities, ms; 0 = default */
    qmp_ready_cb on_ready; /* may be NULL */
    qmp_close_cb on_close; /* required */
    void *arg;             /* passed to on_ready and on_close */
};

enum qmp_conn_state {
    QMP_CONN_HANDSHAKE = 1, /* waiting for greeting / capabilities reply */
    QMP_CONN_READY,         /* commands accepted */
    QMP_CONN_CLOSING,       /* ended; the deferred close has not run yet */
    QMP_CONN_CLOSED,        /* on_close has fired */
};

struct qmp_pending; /* private to qmp_conn.c */
struct qmp_sub;     /* private to qmp_conn.c */

/* Fields are private to qmp_conn.c: use the functions below. */
struct qmp_conn {
    struct event_base *base;   /* borrowed; must outlive the connection */
    struct bufferevent *bev;   /* owned; NULL once closing */
    struct event *hs_timer;    /* handshake deadline, owned */
    struct event *close_ev;    /* deferred close, owned */
    struct qmp_framer framer;  /* incoming line framing */
    struct qmp_conn_opts opts; /* copy, defaults applied */
    enum qmp_conn_state state;
    uint64_t next_id;                    /* id of the next command sent */
    uint64_t caps_id;                    /* id used for qmp_capabilities */
    struct qmp_pending *pending;         /* commands in flight, oldest first */
    unsigned npending;                   /* length of pending */
    struct qmp_sub *subs;                /* subscriptions, in registration order */
    unsigned nsubs;                      /* live entries of subs */
    unsigned dispatching;                /* depth of event dispatch (deferred unlink) */
    int ver_major, ver_minor, ver_micro; /* QEMU version from greeting; -1 before */
    struct ferr why;                     /* reason the connection ended */
};

/* Connects to the QMP unix socket at path (non-blocking socket) on base and
 * starts the handshake. Returns 0, after which on_close fires exactly once
 * eventually; or a negative code (-errno from socket/connect, e.g.
 * -ENOENT or -ECONNREFUSED; FERR_INVAL for a path too long or opts without
 * on_close) with err filled, no callback ever fires and c needs no close. */
int qmp_conn_connect(struct qmp_conn *c, struct event_base *base, const char *path,
                     const struct qmp_conn_opts *opts, struct ferr *err)
    __attribute__((warn_unused_result));

/* Like qmp_conn_connect() over an already connected stream socket fd (a
 * socketpair end, an adopted socket). On success the connection owns fd and
 * closes it; on failure the caller still owns it. */
int qmp_conn_open_fd(struct qmp_conn *c, struct event_base *base, int fd,
                     const struct qmp_conn_opts *opts, struct ferr *err)
    __attribute__((warn_unused_result));

/* Sends {"execute": name, "arguments": args, "id": N}. Takes ownership of
 * args (a JSON object, or NULL for none) in every case, success or not.
 * timeout_ms > 0 bounds the wait for the reply (then cb gets FERR_TIMEOUT and
 * a late reply is dropped); 0 waits for ever. Returns 0 and cb fires exactly
 * once later (never from inside this call); or FERR_STATE (handshake not
 * finished, or closing), FERR_TOOBIG (pending_max commands in flight, or over
 * QMP_CONN_OUTBUF_MAX bytes not yet taken by the peer) or
 * FERR_INVAL (empty name, args not an object), and cb never fires. */
int qmp_conn_cmd(struct qmp_conn *c, const char *name, json_t *args, qmp_cmd_cb cb, void *arg,
                 unsigned timeout_ms) __attribute__((warn_unused_result));

/* Registers cb for events named event (copied; NULL = every event). A
 * callback registered twice fires twice. Returns 0, FERR_TOOBIG over
 * QMP_CONN_SUBS_MAX, or FERR_STATE when closing. */
int qmp_conn_subscribe(struct qmp_conn *c, const char *event, qmp_event_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Removes every subscription with this cb and arg; safe inside an event
 * callback (a removed subscription gets no further events). */
void qmp_conn_unsubscribe(struct qmp_conn *c, qmp_event_cb cb, void *arg);

/* Ends the connection: closes the socket at once and schedules the deferred
 * close (pending commands get FERR_CLOSED, then on_close with code 0). Safe
 * from inside any of the connection's callbacks; a no-op when already
 * closing or closed. The event loop must keep running until on_close. */
void qmp_conn_close(struct qmp_conn *c);

/* Returns the connection's state. */
enum qmp_conn_state qmp_conn_state(const struct qmp_conn *c);

/* Returns the number of commands waiting for a reply. */
unsigned qmp_conn_pending(const struct qmp_conn *c);

#endif

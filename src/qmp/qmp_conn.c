#include "qmp/qmp_conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

#define COMP "qmp"

struct qmp_pending {
    struct qmp_pending *next;
    struct qmp_conn *conn; /* back pointer for the timer */
    uint64_t id;           /* id sent with the command */
    char *name;            /* command name, owned, for logs */
    qmp_cmd_cb cb;
    void *arg;
    struct event *timer; /* owned; NULL when no timeout */
};

struct qmp_sub {
    struct qmp_sub *next;
    char *event; /* owned; NULL = every event */
    qmp_event_cb cb;
    void *arg;
    int removed; /* unlinked lazily while dispatching */
};

static void pending_free(struct qmp_pending *p)
{
    if (p->timer)
        event_free(p->timer);
    free(p->name);
    free(p);
}

/* Unlinks p from c's pending list. */
static void pending_unlink(struct qmp_conn *c, struct qmp_pending *p)
{
    for (struct qmp_pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            c->npending--;
            return;
        }
    }
}

static void subs_purge(struct qmp_conn *c, int all)
{
    struct qmp_sub **pp = &c->subs;
    while (*pp) {
        struct qmp_sub *s = *pp;
        if (all || s->removed) {
            *pp = s->next;
            free(s->event);
            free(s);
        } else {
            pp = &s->next;
        }
    }
}

/* Runs from the loop after the connection ended: fails pending commands,
 * then reports on_close. c must not be touched after on_close. */
static void close_deferred(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct qmp_conn *c = arg;
    struct ferr closed;
    ferr_set(&closed, FERR_CLOSED, "", "QMP connection closed before the reply: %s", c->why.msg);
    while (c->pending) {
        struct qmp_pending *p = c->pending;
        pending_unlink(c, p);
        p->cb(c, &closed, NULL, p->arg);
        pending_free(p);
    }
    subs_purge(c, 1);
    c->nsubs = 0;
    qmp_framer_free(&c->framer);
    event_free(c->hs_timer);
    c->hs_timer = NULL;
    event_free(c->close_ev); /* safe: a non-persistent event inside its own callback */
    c->close_ev = NULL;
    c->state = QMP_CONN_CLOSED;
    struct ferr why = c->why;
    qmp_close_cb on_close = c->opts.on_close;
    void *carg = c->opts.arg;
    on_close(c, &why, carg);
}

/* Ends the connection with a reason (first reason wins). */
static void conn_end(struct qmp_conn *c, int code, const char *what, const char *detail)
{
    if (c->state >= QMP_CONN_CLOSING)
        return;
    c->state = QMP_CONN_CLOSING;
    ferr_set(&c->why, code, "", "%s%s", what, detail ? detail : "");
    if (code != 0)
        log_info(COMP, "msg=\"connection ended\" code=%s reason=\"%s\"", ferr_code_name(code),
                 c->why.msg);
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    event_del(c->hs_timer);
    for (struct qmp_pending *p = c->pending; p; p = p->next)
        if (p->timer)
            event_del(p->timer);
    struct timeval now = {0, 0};
    event_add(c->close_ev, &now);
}

static int send_cmd(struct qmp_conn *c, uint64_t id, const char *name, json_t *args)
{
    json_t *msg = json_pack("{s:s, s:I}", "execute", name, "id", (json_int_t)id);
    if (!msg) {
        json_decref(args);
        return FERR_INVAL;
    }
    if (args)
        json_object_set_new(msg, "arguments", args);
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!s)
        return FERR_INVAL;
    int rc = bufferevent_write(c->bev, s, strlen(s));
    if (rc == 0)
        rc = bufferevent_write(c->bev, "\n", 1);
    free(s);
    return rc == 0 ? 0 : FERR_CLOSED;
}

static struct qmp_pending *pending_find(struct qmp_conn *c, uint64_t id)
{
    for (struct qmp_pending *p = c->pending; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static void deliver_reply(struct qmp_conn *c, const struct qmp_msg *m)
{
    if (!m->has_int_id) {
        log_warn(COMP, "msg=\"reply without a usable id dropped\" kind=%s",
                 qmp_msg_kind_name(m->kind));
        return;
    }
    struct qmp_pending *p = pending_find(c, m->int_id);
    if (!p) {
        log_debug(COMP, "msg=\"reply for no pending command (late after timeout?)\" id=%llu",
                  (unsigned long long)m->int_id);
        return;
    }
    pending_unlink(c, p);
    if (m->kind == QMP_MSG_RETURN) {
        p->cb(c, NULL, m->value, p->arg);
    } else {
        struct ferr e;
        ferr_set(&e, FERR_PEER, m->err_class, "%s: %s", m->err_class, m->err_desc);
        p->cb(c, &e, NULL, p->arg);
    }
    pending_free(p);
}

static void deliver_event(struct qmp_conn *c, const struct qmp_msg *m)
{
    c->dispatching++;
    for (struct qmp_sub *s = c->subs; s && c->state < QMP_CONN_CLOSING; s = s->next) {
        if (s->removed)
            continue;
        if (s->event && strcmp(s->event, m->event) != 0)
            continue;
        s->cb(c, m, s->arg);
    }
    if (--c->dispatching == 0 && c->state < QMP_CONN_CLOSING)
        subs_purge(c, 0);
}

static void handshake_step(struct qmp_conn *c, const struct qmp_msg *m)
{
    if (m->kind == QMP_MSG_GREETING && c->caps_id == 0) {
        c->ver_major = m->ver_major;
        c->ver_minor = m->ver_minor;
        c->ver_micro = m->ver_micro;
        c->caps_id = c->next_id++;
        if (send_cmd(c, c->caps_id, "qmp_capabilities", NULL) != 0)
            conn_end(c, FERR_CLOSED, "could not send qmp_capabilities", NULL);
        return;
    }
    if (c->caps_id != 0 && m->has_int_id && m->int_id == c->caps_id) {
        if (m->kind == QMP_MSG_ERROR) {
            conn_end(c, FERR_PEER, "qmp_capabilities refused: ", m->err_desc);
            return;
        }
        c->state = QMP_CONN_READY;
        event_del(c->hs_timer);
        log_debug(COMP, "msg=\"ready\" qemu=%d.%d.%d", c->ver_major, c->ver_minor, c->ver_micro);
        if (c->opts.on_ready)
            c->opts.on_ready(c, c->opts.arg);
        return;
    }
    if (m->kind == QMP_MSG_EVENT) {
        deliver_event(c, m);
        return;
    }
    conn_end(c, FERR_PEER, "unexpected message during the handshake: ", qmp_msg_kind_name(m->kind));
}

/* Framer callback: one complete line from the peer. */
static int on_line(void *arg, const char *line, size_t len)
{
    struct qmp_conn *c = arg;
    struct qmp_msg m;
    if (qmp_msg_parse(line, len, &m) != 0) {
        conn_end(c, FERR_PEER, "peer sent garbage: ", m.reason);
        qmp_msg_free(&m);
        return 1;
    }
    if (c->state == QMP_CONN_HANDSHAKE) {
        handshake_step(c, &m);
    } else if (m.kind == QMP_MSG_EVENT) {
        deliver_event(c, &m);
    } else if (m.kind == QMP_MSG_RETURN || m.kind == QMP_MSG_ERROR) {
        deliver_reply(c, &m);
    } else {
        conn_end(c, FERR_PEER, "unexpected greeting after the handshake", NULL);
    }
    qmp_msg_free(&m);
    return c->state >= QMP_CONN_CLOSING ? 1 : 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct qmp_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->state < QMP_CONN_CLOSING && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v[8];
        int n = evbuffer_peek(in, -1, NULL, v, 8);
        if (n > 8)
            n = 8;
        size_t used = 0;
        int rc = 0;
        for (int i = 0; i < n && rc == 0; i++) {
            rc = qmp_framer_feed(&c->framer, v[i].iov_base, v[i].iov_len, on_line, c);
            used += v[i].iov_len;
        }
        if (rc == FERR_TOOBIG) {
            char detail[64];
            snprintf(detail, sizeof(detail), "%zu bytes", c->framer.line_max);
            conn_end(c, FERR_TOOBIG, "peer sent a line over the cap of ", detail);
            return;
        }
        if (rc != 0 || c->state >= QMP_CONN_CLOSING)
            return; /* closed from a callback: the buffer is gone */
        evbuffer_drain(in, used);
    }
}

static void on_bev_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct qmp_conn *c = arg;
    if (what & BEV_EVENT_EOF) {
        conn_end(c, FERR_CLOSED, "peer hung up", NULL);
    } else if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        /* QEMU exiting (quit, failed incoming migration) often resets the
         * socket instead of a clean EOF: that is a hang-up too. */
        if (e == ECONNRESET || e == EPIPE)
            conn_end(c, FERR_CLOSED, "peer hung up (", e == EPIPE ? "broken pipe)" : "reset)");
        else
            conn_end(c, e ? -e : FERR_CLOSED, "socket error: ", strerror(e));
    }
}

static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct qmp_conn *c = arg;
    conn_end(c, FERR_TIMEOUT, "QMP handshake did not finish in time", NULL);
}

static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct qmp_pending *p = arg;
    struct qmp_conn *c = p->conn;
    pending_unlink(c, p);
    struct ferr e;
    ferr_set(&e, FERR_TIMEOUT, "", "QMP command %s got no reply in time", p->name);
    log_warn(COMP, "msg=\"command timed out\" cmd=%s id=%llu", p->name, (unsigned long long)p->id);
    p->cb(c, &e, NULL, p->arg);
    pending_free(p);
}

int qmp_conn_open_fd(struct qmp_conn *c, struct event_base *base, int fd,
                     const struct qmp_conn_opts *opts, struct ferr *err)
{
    memset(c, 0, sizeof(*c));
    if (!opts || !opts->on_close)
        return ferr_set(err, FERR_INVAL, "on_close", "a close callback is required");
    c->opts = *opts;
    if (c->opts.pending_max == 0)
        c->opts.pending_max = QMP_CONN_PENDING_MAX;
    if (c->opts.handshake_ms == 0)
        c->opts.handshake_ms = QMP_CONN_HANDSHAKE_MS;
    c->base = base;
    c->next_id = 1;
    c->ver_major = c->ver_minor = c->ver_micro = -1;
    evutil_make_socket_nonblocking(fd);
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
        return ferr_set(err, FERR_INVAL, "", "bufferevent_socket_new failed");
    c->hs_timer = evtimer_new(base, on_handshake_timeout, c);
    c->close_ev = evtimer_new(base, close_deferred, c);
    if (!c->hs_timer || !c->close_ev)
        abort(); /* libevent allocation failure: out of memory */
    qmp_framer_init(&c->framer, c->opts.line_max);
    c->opts.line_max = c->framer.line_max;
    bufferevent_setcb(c->bev, on_read, NULL, on_bev_event, c);
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0) {
        bufferevent_setfd(c->bev, -1); /* the caller keeps fd */
        bufferevent_free(c->bev);
        event_free(c->hs_timer);
        event_free(c->close_ev);
        memset(c, 0, sizeof(*c));
        return ferr_set(err, FERR_INVAL, "", "bufferevent_enable failed");
    }
    struct timeval tv = {c->opts.handshake_ms / 1000, (c->opts.handshake_ms % 1000) * 1000};
    event_add(c->hs_timer, &tv);
    c->state = QMP_CONN_HANDSHAKE;
    return 0;
}

int qmp_conn_connect(struct qmp_conn *c, struct event_base *base, const char *path,
                     const struct qmp_conn_opts *opts, struct ferr *err)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    if (plen == 0 || plen >= sizeof(sa.sun_path))
        return ferr_set(err, FERR_INVAL, "path", "QMP socket path must be 1..%zu bytes",
                        sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, plen);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ferr_set(err, -errno, "", "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return ferr_set(err, -e, "path", "connect %s: %s", path, strerror(e));
    }
    int rc = qmp_conn_open_fd(c, base, fd, opts, err);
    if (rc != 0)
        close(fd);
    return rc;
}

int qmp_conn_cmd(struct qmp_conn *c, const char *name, json_t *args, qmp_cmd_cb cb, void *arg,
                 unsigned timeout_ms)
{
    if (c->state != QMP_CONN_READY) {
        json_decref(args);
        return FERR_STATE;
    }
    if (!name || !*name || !cb || (args && !json_is_object(args))) {
        json_decref(args);
        return FERR_INVAL;
    }
    if (c->npending >= c->opts.pending_max ||
        evbuffer_get_length(bufferevent_get_output(c->bev)) > QMP_CONN_OUTBUF_MAX) {
        json_decref(args);
        return FERR_TOOBIG;
    }
    struct qmp_pending *p = xcalloc(1, sizeof(*p));
    p->conn = c;
    p->id = c->next_id++;
    p->name = xstrdup(name);
    p->cb = cb;
    p->arg = arg;
    if (send_cmd(c, p->id, name, args) != 0) {
        pending_free(p);
        return FERR_INVAL;
    }
    if (timeout_ms > 0) {
        p->timer = evtimer_new(c->base, on_cmd_timeout, p);
        if (!p->timer)
            abort();
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        event_add(p->timer, &tv);
    }
    struct qmp_pending **pp = &c->pending;
    while (*pp)
        pp = &(*pp)->next;
    *pp = p;
    c->npending++;
    return 0;
}

int qmp_conn_subscribe(struct qmp_conn *c, const char *event, qmp_event_cb cb, void *arg)
{
    if (c->state >= QMP_CONN_CLOSING || c->state == 0)
        return FERR_STATE;
    if (!cb)
        return FERR_INVAL;
    if (c->nsubs >= QMP_CONN_SUBS_MAX)
        return FERR_TOOBIG;
    struct qmp_sub *s = xcalloc(1, sizeof(*s));
    s->event = event ? xstrdup(event) : NULL;
    s->cb = cb;
    s->arg = arg;
    struct qmp_sub **pp = &c->subs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    c->nsubs++;
    return 0;
}

void qmp_conn_unsubscribe(struct qmp_conn *c, qmp_event_cb cb, void *arg)
{
    for (struct qmp_sub *s = c->subs; s; s = s->next) {
        if (!s->removed && s->cb == cb && s->arg == arg) {
            s->removed = 1;
            c->nsubs--;
        }
    }
    if (c->dispatching == 0)
        subs_purge(c, 0);
}

void qmp_conn_close(struct qmp_conn *c)
{
    if (c->state == 0 || c->state >= QMP_CONN_CLOSING)
        return;
    conn_end(c, 0, "closed by the caller", NULL);
}

enum qmp_conn_state qmp_conn_state(const struct qmp_conn *c)
{
    return c->state;
}

unsigned qmp_conn_pending(const struct qmp_conn *c)
{
    return c->npending;
}

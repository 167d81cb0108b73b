/* Unit tests for src/qmp/qmp_conn against a scripted fake QMP peer: the
 * other end of a socketpair, driven from the same event_base. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/test.h"
#include "qmp/qmp_conn.h"

#define GREETING                                                                                   \
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "              \
    "\"package\": \"Debian 1:7.2+dfsg-7\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define MAXC 16

struct peer;
/* Called by the fake peer for every command it receives (capabilities
 * included, unless auto_caps). */
typedef void (*peer_cmd_fn)(struct peer *p, const char *execute, json_int_t id);

struct peer {
    int fd;               /* fake QEMU's end; -1 once hung up */
    struct event *ev;     /* read watcher */
    char buf[8192];       /* partial incoming line */
    size_t len;           /* bytes in buf */
    int auto_caps;        /* answer qmp_capabilities itself */
    peer_cmd_fn on_cmd;   /* script for other commands */
    int ncmds;            /* commands received (capabilities excluded) */
    json_int_t ids[MAXC]; /* their ids */
    char names[MAXC][32]; /* their names */
};

struct result {
    int calls;      /* times the cb fired */
    int code;       /* err code, 0 on success */
    char field[64]; /* err field (QMP class) */
    char msg[256];  /* err message */
    char ret[256];  /* dumped return value */
    int order;      /* global sequence number of the (last) call */
};

struct world {
    struct event_base *base;
    struct qmp_conn *conn; /* heap: freed in on_close (proves free-after-close) */
    struct peer peer;
    int ready;       /* on_ready calls */
    int closed;      /* on_close calls */
    struct ferr why; /* reason given to on_close */
    int seq;         /* sequence of callbacks */
    struct result r[MAXC];
    int cmds_before_close; /* command cbs fired before on_close */
    int cb_after_close;    /* any callback after on_close: a defect */
    char events[MAXC][32]; /* names seen by the catch-all subscriber */
    int nevents;
    int named_events; /* calls to the subscriber for "Y" only */
    void (*after_ready)(struct world *w);
};

static struct world W;

static void peer_send(struct peer *p, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n && p->fd >= 0) {
        ssize_t k = write(p->fd, s + off, n - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        off += (size_t)k;
    }
}

static void peer_hangup(struct peer *p)
{
    if (p->fd >= 0) {
        event_del(p->ev);
        close(p->fd);
        p->fd = -1;
    }
}

static void peer_reply(struct peer *p, json_int_t id, const char *ret_json)
{
    char line[512];
    snprintf(line, sizeof(line), "{\"return\": %s, \"id\": %lld}\r\n", ret_json, (long long)id);
    peer_send(p, line);
}

static void peer_line(struct peer *p, const char *line)
{
    json_t *j = json_loads(line, 0, NULL);
    const char *ex = json_string_value(json_object_get(j, "execute"));
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    if (ex && p->auto_caps && strcmp(ex, "qmp_capabilities") == 0) {
        peer_reply(p, id, "{}");
    } else if (ex) {
        if (p->ncmds < MAXC) {
            p->ids[p->ncmds] = id;
            snprintf(p->names[p->ncmds], sizeof(p->names[0]), "%s", ex);
        }
        p->ncmds++;
        if (p->on_cmd)
            p->on_cmd(p, ex, id);
    }
    json_decref(j);
}

static void peer_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct peer *p = arg;
    ssize_t k = read(fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
    if (k <= 0) {
        peer_hangup(p);
        return;
    }
    p->len += (size_t)k;
    char *nl;
    while (p->fd >= 0 && (nl = memchr(p->buf, '\n', p->len))) {
        *nl = '\0';
        peer_line(p, p->buf);
        size_t used = (size_t)(nl - p->buf) + 1;
        memmove(p->buf, p->buf + used, p->len - used);
        p->len -= used;
    }
}

static void on_ready(struct qmp_conn *c, void *arg)
{
    (void)c;
    struct world *w = arg;
    if (w->closed)
        w->cb_after_close++;
    w->ready++;
    if (w->after_ready)
        w->after_ready(w);
}

static void on_close(struct qmp_conn *c, const struct ferr *why, void *arg)
{
    struct world *w = arg;
    if (w->closed)
        w->cb_after_close++;
    w->closed++;
    w->why = *why;
    w->seq++;
    free(c); /* allowed from inside on_close */
    w->conn = NULL;
    event_base_loopbreak(w->base);
}

static void cmd_cb(struct qmp_conn *c, const struct ferr *err, json_t *ret, void *arg)
{
    (void)c;
    struct result *r = arg;
    if (W.closed)
        W.cb_after_close++;
    else
        W.cmds_before_close++;
    r->calls++;
    r->order = ++W.seq;
    r->code = err ? err->code : 0;
    if (err) {
        snprintf(r->field, sizeof(r->field), "%s", err->field);
        snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
    }
    if (ret) {
        char *s = json_dumps(ret, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(r->ret, sizeof(r->ret), "%s", s ? s : "");
        free(s);
    }
}

static void ev_all(struct qmp_conn *c, const struct qmp_msg *ev, void *arg)
{
    (void)c;
    (void)arg;
    if (W.closed)
        W.cb_after_close++;
    if (W.nevents < MAXC)
        snprintf(W.events[W.nevents], sizeof(W.events[0]), "%s", ev->event);
    W.nevents++;
}

static void ev_named(struct qmp_conn *c, const struct qmp_msg *ev, void *arg)
{
    (void)c;
    (void)arg;
    if (strcmp(ev->event, "Y") == 0)
        W.named_events++;
    else
        W.named_events += 100; /* wrong event delivered */
}

/* Sets up a world: socketpair, connection, peer. */
static int world_start(const struct qmp_conn_opts *extra, int send_greeting)
{
    memset(&W, 0, sizeof(W));
    W.base = event_base_new();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    W.peer.fd = sv[1];
    W.peer.auto_caps = 1;
    W.peer.ev = event_new(W.base, sv[1], EV_READ | EV_PERSIST, peer_on_read, &W.peer);
    event_add(W.peer.ev, NULL);
    struct qmp_conn_opts o = {0};
    if (extra)
        o = *extra;
    o.on_ready = on_ready;
    o.on_close = on_close;
    o.arg = &W;
    W.conn = calloc(1, sizeof(*W.conn));
    struct ferr e;
    if (qmp_conn_open_fd(W.conn, W.base, sv[0], &o, &e) != 0) {
        close(sv[0]);
        return -1;
    }
    if (send_greeting)
        peer_send(&W.peer, GREETING);
    return 0;
}

/* Runs the loop until on_close or ms elapse. */
static void world_run(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(W.base, &tv);
    event_base_dispatch(W.base);
}

static void world_end(void)
{
    if (W.conn) {
        qmp_conn_close(W.conn);
        world_run(1000);
    }
    peer_hangup(&W.peer);
    event_free(W.peer.ev);
    event_base_free(W.base);
}

/* ---- handshake ---- */

static void hs_after_ready(struct world *w)
{
    CHECK(qmp_conn_cmd(w->conn, "query-status", NULL, cmd_cb, &w->r[0], 0) == 0, "cmd");
}

static void hs_on_cmd(struct peer *p, const char *ex, json_int_t id)
{
    CHECK(strcmp(ex, "query-status") == 0, "peer got %s", ex);
    peer_reply(p, id, "{\"status\": \"running\", \"running\": true}");
}

static void hs_closer(struct qmp_conn *c, const struct ferr *err, json_t *ret, void *arg)
{
    cmd_cb(c, err, ret, arg);
    qmp_conn_close(c);
}

static void t_handshake(void)
{
    REQUIRE(world_start(NULL, 1) == 0, "start");
    W.peer.auto_caps = 0;
    world_run(300);
    /* the peer, not auto-answering, must have seen exactly qmp_capabilities */
    CHECK(W.peer.ncmds == 1 && strcmp(W.peer.names[0], "qmp_capabilities") == 0,
          "peer saw %d commands, first %s", W.peer.ncmds, W.peer.names[0]);
    CHECK(W.ready == 0, "ready before the capabilities reply");
    CHECK(qmp_conn_cmd(W.conn, "query-status", NULL, cmd_cb, &W.r[1], 0) == FERR_STATE,
          "command accepted before ready");
    CHECK(W.conn->ver_major == 7 && W.conn->ver_minor == 2, "version %d.%d", W.conn->ver_major,
          W.conn->ver_minor);
    W.after_ready = hs_after_ready;
    W.peer.on_cmd = hs_on_cmd;
    peer_reply(&W.peer, W.peer.ids[0], "{}");
    world_run(300);
    CHECK(W.ready == 1, "ready fired %d times", W.ready);
    CHECK(W.r[0].calls == 1 && W.r[0].code == 0, "query-status calls %d code %d", W.r[0].calls,
          W.r[0].code);
    CHECK(strstr(W.r[0].ret, "\"running\"") != NULL, "ret %s", W.r[0].ret);
    CHECK(W.r[1].calls == 0, "refused command's cb fired");
    world_end();
    CHECK(W.closed == 1 && W.why.code == 0, "closed %d code %d", W.closed, W.why.code);
    CHECK(W.cb_after_close == 0, "callbacks after on_close");
}

/* ---- partial lines: the greeting and a reply dribble in byte by byte ---- */

static void slow_after_ready(struct world *w)
{
    CHECK(qmp_conn_cmd(w->conn, "query-name", NULL, cmd_cb, &w->r[0], 0) == 0, "cmd");
}

static char dribble_line[128]; /* sent one byte per millisecond */
static size_t dribble_off;
static struct event *dribble_ev;

static void dribble_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    char one[2] = {dribble_line[dribble_off], 0};
    if (one[0] == '\0') {
        event_del(dribble_ev);
        return;
    }
    dribble_off++;
    peer_send(&W.peer, one);
}

static void slow_on_cmd(struct peer *p, const char *ex, json_int_t id)
{
    (void)ex;
    (void)p;
    snprintf(dribble_line, sizeof(dribble_line),
             "{\"return\": {\"name\": \"vm\\r\\n1\"}, \"id\": %lld}\r\n", (long long)id);
    dribble_off = 0;
    dribble_ev = event_new(W.base, -1, EV_PERSIST, dribble_tick, NULL);
    struct timeval ms = {0, 1000};
    event_add(dribble_ev, &ms);
}

static void t_partial_lines(void)
{
    REQUIRE(world_start(NULL, 0) == 0, "start");
    W.after_ready = slow_after_ready;
    W.peer.on_cmd = slow_on_cmd;
    for (size_t i = 0; GREETING[i]; i++) {
        char one[2] = {GREETING[i], 0};
        peer_send(&W.peer, one);
        event_base_loop(W.base, EVLOOP_NONBLOCK);
    }
    world_run(1000);
    CHECK(W.ready == 1, "ready %d", W.ready);
    CHECK(W.r[0].calls == 1 && strcmp(W.r[0].ret, "{\"name\":\"vm\\r\\n1\"}") == 0,
          "calls %d ret %s", W.r[0].calls, W.r[0].ret);
    CHECK(dribble_off > 40, "reply was not dribbled (%zu bytes)", dribble_off);
    if (dribble_ev)
        event_free(dribble_ev);
    dribble_ev = NULL;
    world_end();
}

/* ---- events interleaved with out-of-order replies and an error ---- */

static void ooo_after_ready(struct world *w)
{
    CHECK(qmp_conn_subscribe(w->conn, NULL, ev_all, NULL) == 0, "sub all");
    CHECK(qmp_conn_subscribe(w->conn, "Y", ev_named, NULL) == 0, "sub Y");
    for (int i = 0; i < 3; i++)
        CHECK(qmp_conn_cmd(w->conn, "c", json_pack("{s:i}", "n", i), cmd_cb, &w->r[i], 0) == 0,
              "cmd %d", i);
}

static void ooo_on_cmd(struct peer *p, const char *ex, json_int_t id)
{
    (void)ex;
    (void)id;
    if (p->ncmds < 3)
        return;
    char line[256];
    peer_send(p, "{\"event\": \"X\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n"
                 "{\"return\": \"third\", \"id\": ");
    snprintf(line, sizeof(line),
             "%lld}\r\n{\"event\": \"Y\", \"data\": {}, \"timestamp\": {\"seconds\": 1, "
             "\"microseconds\": 3}}\n",
             (long long)p->ids[2]);
    peer_send(p, line);
    peer_reply(p, p->ids[0], "\"first\"");
    snprintf(line, sizeof(line),
             "{\"id\": %lld, \"error\": {\"class\": \"GenericError\", \"desc\": \"boom\"}}\r\n",
             (long long)p->ids[1]);
    peer_send(p, line);
}

static void t_out_of_order(void)
{
    REQUIRE(world_start(NULL, 1) == 0, "start");
    W.after_ready = ooo_after_ready;
    W.peer.on_cmd = ooo_on_cmd;
    world_run(500);
    CHECK(W.r[0].calls == 1 && strcmp(W.r[0].ret, "\"first\"") == 0, "r0 %d %s", W.r[0].calls,
          W.r[0].ret);
    CHECK(W.r[2].calls == 1 && strcmp(W.r[2].ret, "\"third\"") == 0, "r2 %d %s", W.r[2].calls,
          W.r[2].ret);
    CHECK(W.r[2].order < W.r[0].order && W.r[0].order < W.r[1].order, "order %d %d %d",
          W.r[0].order, W.r[1].order, W.r[2].order);
    CHECK(W.r[1].calls == 1 && W.r[1].code == FERR_PEER, "error reply code %d", W.r[1].code);
    CHECK(strcmp(W.r[1].field, "GenericError") == 0 && strstr(W.r[1].msg, "boom"),
          "class '%s' msg '%s'", W.r[1].field, W.r[1].msg);
    CHECK(W.nevents == 2 && strcmp(W.events[0], "X") == 0 && strcmp(W.events[1], "Y") == 0,
          "events %d", W.nevents);
    CHECK(W.named_events == 1, "named subscriber got %d", W.named_events);
    CHECK(qmp_conn_pending(W.conn) == 0, "pending %u", qmp_conn_pending(W.conn));
    world_end();
    CHECK(W.cb_after_close == 0, "callbacks after on_close");
}

/* ---- oversize line / garbage end the connection with a reason ---- */

static void issue_one(struct world *w)
{
    CHECK(qmp_conn_cmd(w->conn, "query-status", NULL, cmd_cb, &w->r[0], 0) == 0, "cmd");
}

static void big_on_cmd(struct peer *p, const char *ex, json_int_t id)
{
    (void)ex;
    (void)id;
    char big[3000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    peer_send(p, "{\"return\": \"");
    peer_send(p, big);
}

static void t_oversize(void)
{
    struct qmp_conn_opts o = {.line_max = 1024};
    REQUIRE(world_start(&o, 1) == 0, "start");
    W.after_ready = issue_one;
    W.peer.on_cmd = big_on_cmd;
    world_run(1000);
    CHECK(W.closed == 1 && W.why.code == FERR_TOOBIG, "closed %d code %d (%s)", W.closed,
          W.why.code, W.why.msg);
    CHECK(W.r[0].calls == 1 && W.r[0].code == FERR_CLOSED, "pending cb %d code %d", W.r[0].calls,
          W.r[0].code);
    CHECK(W.r[0].order < W.seq, "pending cb after on_close");
    world_end();
    CHECK(W.cb_after_close == 0, "callbacks after on_close");
}

static void garbage_on_cmd(struct peer *p, const char *ex, json_int_t id)
{
    (void)ex;
    (void)id;
    peer_send(p, "this is not json\r\n");
}

static void t_garbage(void)
{
    REQUIRE(world_start(NULL, 1) == 0, "start");
    W.after_ready = issue_one;
    W.peer.on_cmd = garbage_on_cmd;
    world_run(1000);
    CHECK(W.closed == 1 && W.why.code == FERR_PEER && strstr(W.why.msg, "garbage"),
          "closed %d code %d (%s)", W.closed, W.why.code, W.why.msg);
    CHECK(W.r[0].calls == 1 && W.r[0].code == FERR_CLOSED, "pending cb %d code %d", W.r[0].calls,
          W.r[0].code);
    world_end();
}

/* ---- hang-up with pending commands: each cb exactly once ---- */

static void three_cmds(struct world *w)
{
    for (int i = 0; i < 3; i++)
        CHECK(qmp_conn_cmd(w->conn, "x", NULL, cmd_cb, &w->r[i], 0) == 0, "cmd %d", i);
}

static void hangup_on_cmd(struct peer *p, const char *ex, json_int_t id)
{
    (void)ex;
    (void)id;
    if (p->ncmds == 3)
        peer_hangup(p);
}

static void t_hangup(void)
{
    REQUIRE(world_start(NULL, 1) == 0, "start");
    W.after_ready = three_cmds;
    W.peer.on_cmd = hangup_on_cmd;
    world_run(1000);
    CHECK(W.closed == 1 && W.why.code == FERR_CLOSED && strstr(W.why.msg, "hung up"),
          "closed %d code %d (%s)", W.closed, W.why.code, W.why.msg);
    for (int i = 0; i < 3; i++)
        CHECK(W.r[i].calls == 1 && W.r[i].code == FERR_CLOSED, "cmd %d calls %d code %d", i,
              W.r[i].calls, W.r[i].code);
    CHECK(W.r[0].order < W.r[1].order && W.r[1].order < W.r[2].order, "not in issue order");
    CHECK(W.cmds_before_close == 3, "%d cbs before on_close", W.cmds_before_close);
    world_end();
    CHECK(W.cb_after_close == 0, "callbacks after on_close");
}

/* A peer that exits with our command unread resets the socket
 * (ECONNRESET): still a hang-up, FERR_CLOSED, like QEMU after quit. */
static void reset_after_ready(struct world *w)
{
    event_del(w->peer.ev); /* the peer stops reading */
    CHECK(qmp_conn_cmd(w->conn, "quit", NULL, cmd_cb, &w->r[0], 0) == 0, "cmd");
}

static void reset_close_peer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    peer_hangup(&W.peer); /* closes with the command still unread */
}

static void t_reset(void)
{
    REQUIRE(world_start(NULL, 1) == 0, "start");
    W.after_ready = reset_after_ready;
    struct event *t = evtimer_new(W.base, reset_close_peer, NULL);
    struct timeval tv = {0, 100000};
    evtimer_add(t, &tv);
    world_run(1000);
    event_free(t);
    CHECK(W.closed == 1 && W.why.code == FERR_CLOSED && strstr(W.why.msg, "hung up"),
          "closed %d code %d (%s)", W.closed, W.why.code, W.why.msg);
    CHECK(W.r[0].calls == 1 && W.r[0].code == FERR_CLOSED, "cb %d code %d", W.r[0].calls,
          W.r[0].code);
    world_end();
}

/* ---- timeout: cb once with FERR_TIMEOUT, a late reply is dropped ---- */

static void timeout_after_ready(struct world *w)
{
    CHECK(qmp_conn_cmd(w->conn, "slow", NULL, cmd_cb, &w->r[0], 50) == 0, "cmd");
}

static void t_timeout(void)
{
    REQUIRE(world_start(NULL, 1) == 0, "start");
    W.after_ready = timeout_after_ready;
    world_run(300);
    CHECK(W.r[0].calls == 1 && W.r[0].code == FERR_TIMEOUT, "calls %d code %d", W.r[0].calls,
          W.r[0].code);
    CHECK(qmp_conn_pending(W.conn) == 0, "still pending");
    REQUIRE(W.peer.ncmds == 1, "peer saw %d", W.peer.ncmds);
    peer_reply(&W.peer, W.peer.ids[0], "{}"); /* late */
    world_run(100);
    CHECK(W.r[0].calls == 1, "late reply fired the cb again");
    CHECK(W.closed == 0, "late reply closed the connection");
    world_end();
    CHECK(W.r[0].calls == 1, "close fired a timed-out cb");
}

/* ---- close from inside a callback, caps, refused calls ---- */

static void closer_after_ready(struct world *w)
{
    CHECK(qmp_conn_cmd(w->conn, "a", NULL, hs_closer, &w->r[0], 0) == 0, "cmd a");
    CHECK(qmp_conn_cmd(w->conn, "b", NULL, cmd_cb, &w->r[1], 0) == 0, "cmd b");
}

static void closer_on_cmd(struct peer *p, const char *ex, json_int_t id)
{
    if (strcmp(ex, "a") == 0)
        peer_reply(p, id, "1");
}

static void t_close_in_callback(void)
{
    REQUIRE(world_start(NULL, 1) == 0, "start");
    W.after_ready = closer_after_ready;
    W.peer.on_cmd = closer_on_cmd;
    world_run(1000);
    CHECK(W.closed == 1 && W.why.code == 0, "closed %d code %d", W.closed, W.why.code);
    CHECK(W.r[0].calls == 1 && W.r[0].code == 0, "a: %d %d", W.r[0].calls, W.r[0].code);
    CHECK(W.r[1].calls == 1 && W.r[1].code == FERR_CLOSED, "b: %d %d", W.r[1].calls, W.r[1].code);
    world_end();
    CHECK(W.cb_after_close == 0, "callbacks after on_close");
}

static void caps_after_ready(struct world *w)
{
    for (int i = 0; i < 4; i++)
        CHECK(qmp_conn_cmd(w->conn, "x", NULL, cmd_cb, &w->r[i], 0) == 0, "cmd %d", i);
    CHECK(qmp_conn_cmd(w->conn, "x", json_object(), cmd_cb, &w->r[4], 0) == FERR_TOOBIG,
          "5th command over pending_max 4 accepted");
    CHECK(qmp_conn_cmd(w->conn, "x", json_integer(3), cmd_cb, &w->r[5], 0) == FERR_INVAL,
          "non-object args accepted");
    CHECK(qmp_conn_cmd(w->conn, "", NULL, cmd_cb, &w->r[5], 0) == FERR_INVAL, "empty name");
    qmp_conn_close(w->conn);
    CHECK(qmp_conn_cmd(w->conn, "x", NULL, cmd_cb, &w->r[6], 0) == FERR_STATE,
          "command accepted after close");
    CHECK(qmp_conn_subscribe(w->conn, NULL, ev_all, NULL) == FERR_STATE, "subscribe after close");
    CHECK(W.r[0].calls == 0, "close fired a cb synchronously");
    qmp_conn_close(w->conn); /* second close is a no-op */
}

static void t_caps_and_refusals(void)
{
    struct qmp_conn_opts o = {.pending_max = 4};
    REQUIRE(world_start(&o, 1) == 0, "start");
    W.after_ready = caps_after_ready;
    world_run(1000);
    CHECK(W.closed == 1, "closed %d", W.closed);
    for (int i = 0; i < 4; i++)
        CHECK(W.r[i].calls == 1 && W.r[i].code == FERR_CLOSED, "cmd %d: %d %d", i, W.r[i].calls,
              W.r[i].code);
    for (int i = 4; i < 7; i++)
        CHECK(W.r[i].calls == 0, "refused cmd %d fired its cb", i);
    world_end();
}

/* The unsent output is capped: a peer that stops reading cannot make the
 * client buffer without bound. */
static int outbuf_refused_at; /* command number refused with FERR_TOOBIG, 0 = none */

static void outbuf_after_ready(struct world *w)
{
    event_del(w->peer.ev); /* the peer stops reading */
    char *big = malloc(512 * 1024 + 1);
    memset(big, 'z', 512 * 1024);
    big[512 * 1024] = '\0';
    for (int i = 0; i < 40 && !outbuf_refused_at; i++) {
        int rc =
            qmp_conn_cmd(w->conn, "x", json_pack("{s:s}", "blob", big), cmd_cb, &w->r[i % MAXC], 0);
        if (rc == FERR_TOOBIG)
            outbuf_refused_at = i + 1;
        else
            CHECK(rc == 0, "cmd %d rc %d", i, rc);
    }
    free(big);
    qmp_conn_close(w->conn);
}

static void t_outbuf_cap(void)
{
    outbuf_refused_at = 0;
    REQUIRE(world_start(NULL, 1) == 0, "start");
    W.after_ready = outbuf_after_ready;
    world_run(2000);
    CHECK(outbuf_refused_at > 0 && outbuf_refused_at <= 12,
          "refused at command %d (512 KiB each, cap %u bytes)", outbuf_refused_at,
          QMP_CONN_OUTBUF_MAX);
    CHECK(W.closed == 1, "closed %d", W.closed);
    world_end();
}

static void t_handshake_timeout(void)
{
    struct qmp_conn_opts o = {.handshake_ms = 50};
    REQUIRE(world_start(&o, 0) == 0, "start");
    world_run(1000);
    CHECK(W.closed == 1 && W.why.code == FERR_TIMEOUT, "closed %d code %d", W.closed, W.why.code);
    CHECK(W.ready == 0, "ready without a greeting");
    world_end();
}

static void t_capabilities_refused(void)
{
    REQUIRE(world_start(NULL, 1) == 0, "start");
    W.peer.auto_caps = 0;
    world_run(200);
    REQUIRE(W.peer.ncmds == 1, "caps not sent");
    char line[256];
    snprintf(line, sizeof(line),
             "{\"id\": %lld, \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\n",
             (long long)W.peer.ids[0]);
    peer_send(&W.peer, line);
    world_run(500);
    CHECK(W.closed == 1 && W.why.code == FERR_PEER && W.ready == 0, "closed %d code %d ready %d",
          W.closed, W.why.code, W.ready);
    world_end();
}

static void t_connect_missing_path(void)
{
    struct event_base *b = event_base_new();
    struct qmp_conn c;
    struct qmp_conn_opts o = {.on_close = on_close};
    struct ferr e;
    int rc = qmp_conn_connect(&c, b, "/nonexistent/ferry-qmp.sock", &o, &e);
    CHECK(rc == -ENOENT, "rc %d (%s)", rc, e.msg);
    char longp[200];
    memset(longp, 'p', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    CHECK(qmp_conn_connect(&c, b, longp, &o, &e) == FERR_INVAL, "overlong path");
    event_base_free(b);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_run("conn: greeting, qmp_capabilities, then ready; command before ready refused",
             t_handshake);
    test_run("conn: greeting and reply fed byte by byte still parse", t_partial_lines);
    test_run("conn: out-of-order replies matched by id, error reply as FERR_PEER, events "
             "interleaved reach subscribers",
             t_out_of_order);
    test_run("conn: oversize line closes with FERR_TOOBIG, pending cb gets FERR_CLOSED",
             t_oversize);
    test_run("conn: garbage line closes with FERR_PEER", t_garbage);
    test_run("conn: peer hang-up fires each pending cb once with FERR_CLOSED, then on_close",
             t_hangup);
    test_run("conn: peer reset with unread data is a hang-up (FERR_CLOSED)", t_reset);
    test_run("conn: command timeout gives FERR_TIMEOUT once; late reply dropped", t_timeout);
    test_run("conn: close from inside a reply cb; other pending gets FERR_CLOSED; free in "
             "on_close",
             t_close_in_callback);
    test_run("conn: pending cap, bad args, calls after close are refused without cb",
             t_caps_and_refusals);
    test_run("conn: unsent output over QMP_CONN_OUTBUF_MAX refuses commands (FERR_TOOBIG)",
             t_outbuf_cap);
    test_run("conn: missing greeting ends with FERR_TIMEOUT", t_handshake_timeout);
    test_run("conn: refused qmp_capabilities ends with FERR_PEER", t_capabilities_refused);
    test_run("conn: connect to a missing socket fails synchronously with -ENOENT",
             t_connect_missing_path);
    return test_done();
}

/* sse — see sse.h. One poll timer serves every subscriber: each tick reads
 * one page of events after the lowest subscriber cursor and hands each
 * subscriber the events past its own cursor that it may see. */
#include "coord/sse.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord/auth.h"
#include "coord/coord.h"
#include "util/httpd.h"
#include "util/log.h"
#include "util/xalloc.h"

#define SSE_WRITE_TIMEOUT_S 30 /* a stream whose output does not move for this long is closed */

struct sse_sub {
    struct sse *hub;
    struct evhttp_request *req;    /* the open chunked reply; libevent owns it */
    struct evhttp_connection *con; /* its connection; libevent owns it */
    struct store_token who;        /* the subscriber's credentials */
    char roles_buf[STORE_ROLES_MAX + 1];
    const char *roles[AUTH_ROLES_MAX]; /* pointers into roles_buf */
    size_t nroles;
    int64_t cursor;        /* last seq considered (sent or filtered out) */
    int64_t last_write_ms; /* for heartbeats, ms since epoch */
    struct sse_sub *next;
};

struct sse {
    struct coord *c;      /* borrowed */
    struct event *tick;   /* poll timer */
    struct sse_sub *subs; /* open streams */
    size_t n;             /* entries in subs */
    uint64_t dropped;     /* slow subscribers dropped since start */
};

void sse_time_str(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char buf[24];
    gmtime_r(&s, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", buf, (int)(ms % 1000));
}

json_t *sse_time_json(int64_t ms)
{
    char t[32];
    sse_time_str(ms, t);
    return json_string(t);
}

json_t *sse_event_json(const struct store_event *ev)
{
    char t[32];
    json_error_t je;
    json_t *payload = json_loads(ev->payload ? ev->payload : "{}", 0, &je);
    if (!json_is_object(payload)) {
        json_decref(payload);
        payload = json_object();
    }
    sse_time_str(ev->time_ms, t);
    return json_pack("{s:I, s:s, s:s, s:s, s:o, s:i}", "seq", (json_int_t)ev->seq, "type", ev->type,
                     "time", t, "subject", ev->subject, "payload", payload, "version", ev->version);
}

bool sse_wants_stream(struct evhttp_request *req)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
    return a && strstr(a, "text/event-stream") != NULL;
}

static void reply_error(struct evhttp_request *req, int status, const char *code, const char *field,
                        const char *msg)
{
    httpd_reply_json(
        req, status,
        json_pack("{s:{s:s, s:s, s:s}}", "error", "code", code, "message", msg, "field", field));
}

static void sub_unlink(struct sse_sub *sub)
{
    struct sse *s = sub->hub;
    for (struct sse_sub **p = &s->subs; *p; p = &(*p)->next) {
        if (*p == sub) {
            *p = sub->next;
            s->n--;
            break;
        }
    }
}

/* The client went away: libevent frees the connection but only detaches
 * the request, whose reply was never ended; ending it now frees it (it
 * leaked, ~1 KiB per departed subscriber, before). */
static void on_close(struct evhttp_connection *con, void *arg)
{
    (void)con;
    struct sse_sub *sub = arg;
    if (!evhttp_request_get_connection(sub->req))
        evhttp_send_reply_end(sub->req);
    log_debug("sse", "msg=\"subscriber left\" user=%s cursor=%lld", sub->who.user,
              (long long)sub->cursor);
    sub_unlink(sub);
    free(sub);
}

static size_t sub_pending(const struct sse_sub *sub)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(sub->con);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void sub_write(struct sse_sub *sub, struct evbuffer *b, int64_t now_ms)
{
    evhttp_send_reply_chunk(sub->req, b);
    sub->last_write_ms = now_ms;
}

/* Ends sub's stream with comment (a full line of text) and frees it. */
static void sub_end(struct sse_sub *sub, const char *comment)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, ": %s\n\n", comment);
    evhttp_connection_set_closecb(sub->con, NULL, NULL);
    evhttp_send_reply_chunk(sub->req, b);
    evhttp_send_reply_end(sub->req);
    evbuffer_free(b);
    sub_unlink(sub);
    free(sub);
}

/* Returns the event as sub may see it (new reference), or NULL when the
 * policy hides it from sub. */
static json_t *visible(struct sse *s, struct sse_sub *sub, const struct store_event *ev)
{
    json_t *j = sse_event_json(ev);
    json_t *payload = json_object_get(j, "payload");
    const char *proj = json_string_value(json_object_get(payload, "project_id"));
    struct policy_subject subj = {sub->who.user, sub->who.project, sub->roles, sub->nroles};
    struct policy_kv kv[] = {{"project_id", proj}};
    struct policy_target tgt = {kv, 1};
    bool ok = false;
    if (policy_check(&s->c->pol, "events:read", &subj, &tgt, &ok) != 0 || !ok) {
        json_decref(j);
        return NULL;
    }
    if (strncmp(ev->type, "migration.", 10) == 0 &&
        (json_object_get(payload, "source") || json_object_get(payload, "destination"))) {
        bool hosts = false;
        if (policy_check(&s->c->pol, "migration:show_hosts", &subj, &tgt, &hosts) != 0 || !hosts) {
            json_object_del(payload, "source");
            json_object_del(payload, "destination");
        }
    }
    return j;
}

/* Hands sub the events of ev[0..n) past its cursor. Returns false when sub
 * was dropped (and freed) for a full output buffer. */
static bool sub_feed(struct sse *s, struct sse_sub *sub, const struct store_event *ev, size_t n,
                     int64_t now_ms)
{
    struct evbuffer *b = evbuffer_new();
    for (size_t i = 0; i < n; i++) {
        if (ev[i].seq <= sub->cursor)
            continue;
        sub->cursor = ev[i].seq;
        json_t *j = visible(s, sub, &ev[i]);
        if (!j)
            continue;
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        evbuffer_add_printf(b, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)ev[i].seq,
                            ev[i].type, text);
        free(text);
    }
    if (evbuffer_get_length(b))
        sub_write(sub, b, now_ms);
    evbuffer_free(b);
    if (sub_pending(sub) > SSE_OUTBUF_MAX) {
        char msg[128];
        snprintf(msg, sizeof(msg), "dropped: too slow; reconnect with Last-Event-ID: %lld",
                 (long long)sub->cursor);
        log_warn("sse", "msg=\"slow subscriber dropped\" user=%s cursor=%lld", sub->who.user,
                 (long long)sub->cursor);
        s->dropped++;
        sub_end(sub, msg);
        return false;
    }
    return true;
}

void sse_poll(struct sse *s)
{
    if (!s->subs)
        return;
    int64_t now = coord_now_ms(), last = 0, min = INT64_MAX;
    struct ferr e = {0};
    if (store_event_last_seq(s->c->st, &last, &e) != 0) {
        log_error("sse", "msg=\"cannot read the outbox\" err=\"%s\"", e.msg);
        return;
    }
    for (struct sse_sub *sub = s->subs; sub; sub = sub->next)
        if (sub->cursor < min)
            min = sub->cursor;
    if (min < last) {
        struct store_event *ev = NULL;
        size_t n = 0;
        if (store_events_since(s->c->st, min, STORE_EVENTS_PAGE, &ev, &n, &e) != 0) {
            log_error("sse", "msg=\"cannot read the outbox\" err=\"%s\"", e.msg);
            return;
        }
        struct sse_sub *next;
        for (struct sse_sub *sub = s->subs; sub; sub = next) {
            next = sub->next; /* sub may be freed */
            sub_feed(s, sub, ev, n, now);
        }
        store_events_free(ev, n);
    }
    for (struct sse_sub *sub = s->subs; sub; sub = sub->next) {
        if (now - sub->last_write_ms >= SSE_HEARTBEAT_MS) {
            struct evbuffer *b = evbuffer_new();
            evbuffer_add_printf(b, ": heartbeat %lld\n\n", (long long)sub->cursor);
            sub_write(sub, b, now);
            evbuffer_free(b);
        }
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sse_poll(arg);
}

struct sse *sse_new(struct coord *c)
{
    struct sse *s = xcalloc(1, sizeof(*s));
    s->c = c;
    s->tick = event_new(c->base, -1, EV_PERSIST, on_tick, s);
    struct timeval tv = {0, SSE_POLL_MS * 1000};
    event_add(s->tick, &tv);
    return s;
}

void sse_free(struct sse *s)
{
    if (!s)
        return;
    while (s->subs)
        sub_end(s->subs, "server stopping; reconnect with Last-Event-ID");
    event_free(s->tick);
    free(s);
}

size_t sse_subscribers(const struct sse *s)
{
    return s ? s->n : 0;
}

uint64_t sse_dropped(const struct sse *s)
{
    return s ? s->dropped : 0;
}

static int parse_seq(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 0)
        return -1;
    *out = x;
    return 0;
}

void sse_handle(struct sse *s, struct evhttp_request *req)
{
    struct store_token who;
    struct ferr e = {0};
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    int rc = auth_lookup(s->c->st, evhttp_find_header(in, "Authorization"), &who, &e);
    if (rc == FERR_NOTFOUND)
        return reply_error(req, 401, "unauthorised", "", "a valid bearer token is required");
    if (rc != 0)
        return httpd_reply_err(req, &e);
    int64_t since = 0;
    char q[32];
    const char *lei = evhttp_find_header(in, "Last-Event-ID");
    if (lei) {
        if (parse_seq(lei, &since) != 0)
            return reply_error(req, 400, "invalid", "Last-Event-ID",
                               "Last-Event-ID must be a non-negative integer");
    } else if (httpd_query(req, "since", q, sizeof(q)) == 0 && parse_seq(q, &since) != 0) {
        return reply_error(req, 400, "invalid", "since", "since must be a non-negative integer");
    }
    /* the subscription is the read decision (each event is then filtered
     * by events:read); its audit record is deferred like every read */
    char target[64];
    snprintf(target, sizeof(target), "events/stream?since=%lld", (long long)since);
    coord_audit_read(s->c, &who, "events:read", target, true);
    if (s->n >= s->c->cfg.sse_max_subscribers)
        return reply_error(req, 503, "unavailable", "",
                           "too many event stream subscribers; retry later");
    struct sse_sub *sub = xcalloc(1, sizeof(*sub));
    sub->hub = s;
    sub->req = req;
    sub->con = evhttp_request_get_connection(req);
    sub->who = who;
    snprintf(sub->roles_buf, sizeof(sub->roles_buf), "%s", who.roles);
    sub->nroles = auth_split_roles(sub->roles_buf, sub->roles, AUTH_ROLES_MAX);
    sub->cursor = since;
    sub->last_write_ms = coord_now_ms();
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(out, "Cache-Control", "no-cache");
    evhttp_add_header(out, "X-Accel-Buffering", "no");
    httpd_no_delay(req); /* each event leaves at once, not after the last one's ACK */
    evhttp_send_reply_start(req, 200, "OK");
    /* A stream is idle for long stretches: no read timeout; output that does
     * not move for SSE_WRITE_TIMEOUT_S closes it. */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(sub->con);
    struct timeval wtv = {SSE_WRITE_TIMEOUT_S, 0};
    if (bev)
        bufferevent_set_timeouts(bev, NULL, &wtv);
    evhttp_connection_set_closecb(sub->con, on_close, sub);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, ": ferry events from seq %lld\nretry: %d\n\n", (long long)since,
                        SSE_RETRY_MS);
    sub_write(sub, b, sub->last_write_ms);
    evbuffer_free(b);
    sub->next = s->subs;
    s->subs = sub;
    s->n++;
    log_info("sse", "msg=\"subscriber joined\" user=%s project=%s since=%lld subscribers=%zu",
             who.user, who.project, (long long)since, s->n);
    sse_poll(s); /* the backlog at once */
}

/* readers — see readers.h. One struct reader per thread: its event base,
 * its evhttp on a SO_REUSEPORT socket, a struct coord of its own (the
 * loop's configuration and policy, its own reader store handle, the loop's
 * read cache) and the requests it relays to the loop. */
#include "coord/readers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "coord/metrics.h"
#include "coord/migrations.h"
#include "coord/sse.h"
#include "util/httpd.h"
#include "util/log.h"
#include "util/xalloc.h"

#define RELAY_TIMEOUT_S                                                                            \
    120                            /* the loop's answer (or, on a stream, its next                 \
                                      heartbeat) must come within, s */
#define RELAY_BODY_MAX (64u << 20) /* bytes of one relayed answer that is not streamed */
#define RELAY_STREAM_WRITE_TIMEOUT_S                                                               \
    30 /* a relayed stream whose output does not move                                              \
          for this long is closed (as sse.c does) */

struct reader;

/* One request relayed to the event loop. */
struct relay {
    struct reader *r;
    struct evhttp_request *down;  /* the client's request (its thread's evhttp) */
    struct evhttp_connection *up; /* to the loop's listener; frees itself when done */
    struct evhttp_request *upreq; /* the relayed request, owned by up */
    struct evbuffer *body;        /* the answer so far (not streamed) */
    int streaming;                /* the answer is relayed chunk by chunk */
    int dropped;                  /* abandoned (drop): only waits to be freed */
    int too_big;                  /* the answer passed RELAY_BODY_MAX */
    struct relay *prev, *next;    /* r's relays in flight */
};

struct reader {
    unsigned idx;
    struct readers *pool;
    struct coord c; /* this thread's view: own base, http, st, mig */
    struct event_base *base;
    struct evhttp *http;
    int fd;      /* the SO_REUSEPORT listening socket */
    int wake[2]; /* pipe: a byte asks the thread to stop */
    struct event *wake_ev;
    pthread_t th;
    int started;          /* th runs */
    struct relay *relays; /* in flight */
};

struct readers {
    struct coord *c;   /* the event loop's; borrowed */
    struct metrics *m; /* borrowed, may be NULL */
    int loop_port;     /* the loop's private listener on 127.0.0.1 */
    unsigned n;
    struct reader r[]; /* n */
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- relaying to the event loop ------------------------------------------ */

static void relay_free(struct relay *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        f->r->relays = f->next;
    if (f->next)
        f->next->prev = f->prev;
    if (f->body)
        evbuffer_free(f->body);
    free(f);
}

static void reply_gateway(struct evhttp_request *req, const char *msg)
{
    httpd_reply_json(req, 502,
                     json_pack("{s:{s:s, s:s}}", "error", "code", "unavailable", "message", msg));
}

static bool hop_by_hop(const char *key)
{
    static const char *const hop[] = {
        "Connection",        "Keep-Alive", "Proxy-Connection", "TE",     "Trailer",
        "Transfer-Encoding", "Upgrade",    "Content-Length",   "Expect", NULL};
    for (size_t i = 0; hop[i]; i++)
        if (strcasecmp(key, hop[i]) == 0)
            return true;
    return false;
}

static void free_up_later_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evhttp_connection_free(arg);
}

/* Frees connection up from the next turn of the loop: never inside one of
 * its own callbacks. */
static void free_up_later(struct reader *r, struct evhttp_connection *up)
{
    struct timeval now = {0, 0};
    if (event_base_once(r->base, -1, EV_TIMEOUT, free_up_later_cb, up, &now) != 0)
        log_error("readers", "msg=\"cannot schedule a relay connection's release\"");
}

static void drop_later_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct relay *f = arg;
    evhttp_connection_free(f->up); /* frees upreq, calls no callback */
    relay_free(f);
}

/* Abandons relay f: its client is gone or ended; the loop's side is closed
 * from the next turn of the loop, and nothing reaches f->down any more. */
static void drop(struct relay *f)
{
    struct timeval now = {0, 0};
    f->dropped = 1;
    f->down = NULL;
    if (event_base_once(f->r->base, -1, EV_TIMEOUT, drop_later_cb, f, &now) != 0)
        log_error("readers", "msg=\"cannot schedule a relay's release\"");
}

/* The client of a relayed stream went away: libevent frees the connection
 * but only detaches the request, whose reply was never ended; ending it
 * now frees it (it leaked, ~1 KiB per departed client, before). */
static void on_down_close(struct evhttp_connection *con, void *arg)
{
    (void)con;
    struct relay *f = arg;
    if (f->down && !evhttp_request_get_connection(f->down))
        evhttp_send_reply_end(f->down);
    drop(f);
}

/* The loop's answer has headers: copy status and headers; a chunked answer
 * (an event stream) is relayed as it comes. */
static int on_up_headers(struct evhttp_request *upreq, void *arg)
{
    struct relay *f = arg;
    struct evkeyvalq *in = evhttp_request_get_input_headers(upreq);
    struct evkeyvalq *out = evhttp_request_get_output_headers(f->down);
    const char *te = evhttp_find_header(in, "Transfer-Encoding");
    for (struct evkeyval *h = in->tqh_first; h; h = h->next.tqe_next)
        if (!hop_by_hop(h->key))
            evhttp_add_header(out, h->key, h->value);
    if (te && strcasecmp(te, "chunked") == 0) {
        f->streaming = 1;
        httpd_no_delay(f->down); /* each event leaves at once */
        evhttp_send_reply_start(f->down, evhttp_request_get_response_code(upreq),
                                evhttp_request_get_response_code_line(upreq));
        struct evhttp_connection *dc = evhttp_request_get_connection(f->down);
        struct bufferevent *bev = dc ? evhttp_connection_get_bufferevent(dc) : NULL;
        struct timeval wtv = {RELAY_STREAM_WRITE_TIMEOUT_S, 0};
        if (bev)
            bufferevent_set_timeouts(bev, NULL, &wtv);
        if (dc)
            evhttp_connection_set_closecb(dc, on_down_close, f);
        evhttp_connection_set_timeout(f->up, RELAY_TIMEOUT_S);
    }
    return 0;
}

/* Part of the loop's answer arrived. */
static void on_up_chunk(struct evhttp_request *upreq, void *arg)
{
    struct relay *f = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(upreq);
    if (f->dropped) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (!f->streaming) {
        if (!f->too_big && evbuffer_get_length(f->body) + evbuffer_get_length(in) <= RELAY_BODY_MAX)
            evbuffer_add_buffer(f->body, in);
        else
            f->too_big = 1; /* answered 502 when done */
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    struct evhttp_connection *dc = evhttp_request_get_connection(f->down);
    struct bufferevent *bev = dc ? evhttp_connection_get_bufferevent(dc) : NULL;
    if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > SSE_OUTBUF_MAX) {
        /* The client does not keep up: drop it as the loop drops its own
         * slow subscribers (it resumes with Last-Event-ID). */
        log_warn("readers", "msg=\"relayed stream dropped: client too slow\" thread=%u", f->r->idx);
        evbuffer_drain(in, evbuffer_get_length(in));
        evhttp_connection_set_closecb(dc, NULL, NULL);
        evhttp_send_reply_end(f->down);
        drop(f);
        return;
    }
    evhttp_send_reply_chunk(f->down, in);
}

/* The loop's answer is complete (upreq NULL or status 0: no answer). */
static void on_up_done(struct evhttp_request *upreq, void *arg)
{
    struct relay *f = arg;
    if (f->dropped)
        return; /* drop_later_cb frees it */
    int status = upreq ? evhttp_request_get_response_code(upreq) : 0;
    if (f->streaming) {
        struct evhttp_connection *dc = evhttp_request_get_connection(f->down);
        if (dc)
            evhttp_connection_set_closecb(dc, NULL, NULL);
        evhttp_send_reply_end(f->down);
    } else if (status == 0) {
        reply_gateway(f->down, "the event loop did not answer");
    } else if (f->too_big || (upreq && evbuffer_get_length(evhttp_request_get_input_buffer(upreq)) +
                                               evbuffer_get_length(f->body) >
                                           RELAY_BODY_MAX)) {
        reply_gateway(f->down, "the answer is too large to relay");
    } else {
        if (upreq)
            evbuffer_add_buffer(f->body, evhttp_request_get_input_buffer(upreq));
        evhttp_send_reply(f->down, status, evhttp_request_get_response_code_line(upreq), f->body);
    }
    free_up_later(f->r, f->up);
    relay_free(f);
}

/* Relays req to the event loop's listener; the answer comes back through
 * the callbacks above. One new loopback connection per relayed request:
 * a kept-alive one can be closed by the loop just as a request goes out,
 * and a write (not idempotent) could then be neither retried nor answered
 * truthfully. */
static void relay(struct reader *r, struct evhttp_request *req)
{
    struct relay *f = xcalloc(1, sizeof(*f));
    f->r = r;
    f->down = req;
    f->body = evbuffer_new();
    f->up = evhttp_connection_base_new(r->base, NULL, "127.0.0.1", (ev_uint16_t)r->pool->loop_port);
    f->upreq = f->up ? evhttp_request_new(on_up_done, f) : NULL;
    if (!f->upreq) {
        if (f->up)
            evhttp_connection_free(f->up);
        evbuffer_free(f->body);
        free(f);
        return reply_gateway(req, "cannot reach the event loop");
    }
    evhttp_connection_set_timeout(f->up, RELAY_TIMEOUT_S);
    evhttp_request_set_header_cb(f->upreq, on_up_headers);
    evhttp_request_set_chunked_cb(f->upreq, on_up_chunk);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(f->upreq);
    for (struct evkeyval *h = in->tqh_first; h; h = h->next.tqe_next)
        if (!hop_by_hop(h->key))
            evhttp_add_header(out, h->key, h->value);
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (len || method == EVHTTP_REQ_POST || method == EVHTTP_REQ_PUT ||
        method == EVHTTP_REQ_PATCH) {
        char cl[24];
        snprintf(cl, sizeof(cl), "%zu", len);
        evhttp_add_header(out, "Content-Length", cl);
        evbuffer_add_buffer(evhttp_request_get_output_buffer(f->upreq), body);
    }
    f->next = r->relays;
    if (r->relays)
        r->relays->prev = f;
    r->relays = f;
    if (evhttp_make_request(f->up, f->upreq, method, evhttp_request_get_uri(req)) != 0) {
        /* make_request freed upreq */
        evhttp_connection_free(f->up);
        relay_free(f);
        reply_gateway(req, "cannot reach the event loop");
    }
}

/* ---- the thread ------------------------------------------------------------ */

/* True for the requests a read thread answers itself: GET of health, the
 * migration list and one migration, the host list, and the event list
 * (not the stream). */
static bool answered_here(struct evhttp_request *req, char *route)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET)
        return false;
    char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX];
    int n = httpd_path(req, seg);
    if (n < 2 || strcmp(seg[0], "v1") != 0)
        return false;
    const char *uri = evhttp_request_get_uri(req);
    metrics_route_class(uri ? uri : "", route);
    if (n == 2 && (strcmp(seg[1], "health") == 0 || strcmp(seg[1], "migrations") == 0 ||
                   strcmp(seg[1], "hosts") == 0))
        return true;
    if (n == 3 && strcmp(seg[1], "migrations") == 0)
        return true;
    return n == 2 && strcmp(seg[1], "events") == 0 && !sse_wants_stream(req);
}

static void reader_front(struct evhttp_request *req, void *arg)
{
    struct reader *r = arg;
    char route[48];
    if (!answered_here(req, route))
        return relay(r, req);
    double t0 = mono_s();
    /* One snapshot per request (auth, keys, rows agree) and one read lock. */
    bool tx = store_read_begin(r->c.st, NULL) == 0;
    coord_api_handle(req, &r->c);
    if (tx)
        store_read_end(r->c.st);
    if (r->pool->m)
        metrics_api_observe(r->pool->m, route, EVHTTP_REQ_GET,
                            evhttp_request_get_response_code(req), mono_s() - t0);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct reader *r = arg;
    char b[8];
    if (read(fd, b, sizeof(b)) >= 0)
        event_base_loopbreak(r->base);
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    event_base_dispatch(r->base);
    return NULL;
}

/* A listening socket on addr:port shared with the other threads. */
static int listen_shared(const char *addr, int port, int *out, struct ferr *e)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return ferr_set(e, FERR_INVAL, "listen", "%s is not an IPv4 address", addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1024) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return ferr_set(e, -err, "listen", "cannot listen on %s:%d: %s", addr, port, strerror(err));
    }
    *out = fd;
    return 0;
}

static void reader_free(struct reader *r)
{
    while (r->relays) {
        struct relay *f = r->relays;
        /* evhttp_free below frees the client's connection and calls its
         * close callback (on_down_close, set while a stream is relayed):
         * it must not reach f once f is freed here. */
        struct evhttp_connection *dc = f->down ? evhttp_request_get_connection(f->down) : NULL;
        if (dc)
            evhttp_connection_set_closecb(dc, NULL, NULL);
        if (f->up)
            evhttp_connection_free(f->up);
        relay_free(f);
    }
    if (r->http)
        evhttp_free(r->http);
    if (r->wake_ev)
        event_free(r->wake_ev);
    if (r->base)
        event_base_free(r->base);
    if (r->wake[0] >= 0)
        close(r->wake[0]);
    if (r->wake[1] >= 0)
        close(r->wake[1]);
    if (r->c.mig)
        coordmig_reader_free(&r->c);
    store_close(r->c.st);
}

void readers_stop(struct readers *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->n; i++)
        if (p->r[i].started && write(p->r[i].wake[1], "x", 1) != 1)
            log_error("readers", "msg=\"cannot wake a read thread\" thread=%u", i);
    for (unsigned i = 0; i < p->n; i++)
        if (p->r[i].started)
            pthread_join(p->r[i].th, NULL);
    for (unsigned i = 0; i < p->n; i++)
        reader_free(&p->r[i]);
    free(p);
}

int readers_start(struct coord *c, struct metrics *m, unsigned n, const char *addr, int port,
                  int loop_port, struct readers **out, struct ferr *e)
{
    *out = NULL;
    if (n < 1 || n > READERS_MAX)
        return ferr_set(e, FERR_INVAL, "read_threads", "read threads must be 1..%d", READERS_MAX);
    struct readers *p = xcalloc(1, sizeof(*p) + n * sizeof(p->r[0]));
    for (unsigned i = 0; i < n; i++)
        p->r[i].wake[0] = p->r[i].wake[1] = p->r[i].fd = -1;
    p->c = c;
    p->m = m;
    p->loop_port = loop_port;
    p->n = n;
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        struct reader *r = &p->r[i];
        r->idx = i;
        r->pool = p;
        r->c = *c; /* configuration and policy (read only), started_ms */
        r->c.st = NULL;
        r->c.mig = NULL;
        r->c.sweep = NULL;
        if ((rc = store_open_reader(c->cfg.db_path, c->st, &r->c.st, e)) != 0)
            break;
        coordmig_reader_init(&r->c, c);
        /* Changelist: evhttp switches a connection's read and write
         * interest several times a request; epoll then gets one call per
         * fd and loop turn instead of one per switch. */
        struct event_config *ec = event_config_new();
        if (ec)
            event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        r->base = ec ? event_base_new_with_config(ec) : NULL;
        if (ec)
            event_config_free(ec);
        r->http = r->base ? evhttp_new(r->base) : NULL;
        if (!r->http || pipe2(r->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
            rc = ferr_set(e, -ENOMEM, "read_threads", "cannot set up read thread %u", i);
            break;
        }
        r->c.base = r->base;
        r->c.http = r->http;
        httpd_apply_caps(r->http);
        evhttp_set_gencb(r->http, reader_front, r);
        if ((rc = listen_shared(addr, port, &r->fd, e)) != 0)
            break;
        if (port == 0) { /* an ephemeral port: the others share the first's */
            struct sockaddr_in sa;
            socklen_t slen = sizeof(sa);
            if (getsockname(r->fd, (struct sockaddr *)&sa, &slen) == 0)
                port = ntohs(sa.sin_port);
        }
        if (!evhttp_accept_socket_with_handle(r->http, r->fd)) {
            close(r->fd);
            rc = ferr_set(e, -ENOMEM, "listen", "cannot serve on %s:%d", addr, port);
            break;
        }
        r->wake_ev = event_new(r->base, r->wake[0], EV_READ | EV_PERSIST, on_wake, r);
        if (!r->wake_ev || event_add(r->wake_ev, NULL) != 0) {
            rc = ferr_set(e, -ENOMEM, "read_threads", "cannot set up read thread %u", i);
            break;
        }
    }
    for (unsigned i = 0; i < n && rc == 0; i++) {
        if (pthread_create(&p->r[i].th, NULL, reader_main, &p->r[i]) != 0) {
            rc = ferr_set(e, -EAGAIN, "read_threads", "cannot start read thread %u", i);
            break;
        }
        p->r[i].started = 1;
    }
    if (rc != 0) {
        readers_stop(p);
        return rc;
    }
    *out = p;
    return 0;
}

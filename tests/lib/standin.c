/* standin (test helper) — see standin.h. */
#include "standin.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static void on_request(struct evhttp_request *req, void *arg)
{
    struct standin *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    if (!uri || strncmp(uri, "/v1/migrations/agent-mig-", 25) != 0) {
        evhttp_send_error(req, 404, "Not Found");
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double t_s = (double)(now.tv_sec - s->t0.tv_sec) + (double)(now.tv_nsec - s->t0.tv_nsec) / 1e9;
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 500, "Internal Server Error");
        return;
    }
    s->body(b, strrchr(uri, '/') + 1, t_s, s->arg);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
    __atomic_add_fetch(&s->polls, 1, __ATOMIC_RELAXED);
}

/* Every 100 ms: leaves the loop once standin_stop asked (a plain
 * event_base needs no thread support that way). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct standin *s = arg;
    if (__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
        event_base_loopbreak(s->base);
}

static void *run(void *arg)
{
    struct standin *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

static void release(struct standin *s)
{
    if (s->http)
        evhttp_free(s->http);
    if (s->tick)
        event_free(s->tick);
    if (s->base)
        event_base_free(s->base);
    memset(s, 0, sizeof(*s));
}

int standin_start(struct standin *s, standin_body_fn body, void *arg)
{
    memset(s, 0, sizeof(*s));
    s->body = body;
    s->arg = arg;
    s->base = event_base_new();
    s->http = s->base ? evhttp_new(s->base) : NULL;
    struct evhttp_bound_socket *bs =
        s->http ? evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0) : NULL;
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    if (!bs || getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&a, &len) != 0)
        goto fail;
    evhttp_set_gencb(s->http, on_request, s);
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    clock_gettime(CLOCK_MONOTONIC, &s->t0);
    s->tick = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    struct timeval tv = {0, 100000};
    if (!s->tick || event_add(s->tick, &tv) != 0 || pthread_create(&s->thread, NULL, run, s) != 0)
        goto fail;
    s->running = 1;
    return 0;
fail:
    release(s);
    return -1;
}

long standin_polls(const struct standin *s)
{
    return __atomic_load_n(&s->polls, __ATOMIC_RELAXED);
}

void standin_stop(struct standin *s)
{
    if (!s->running)
        return;
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
    pthread_join(s->thread, NULL);
    release(s);
}

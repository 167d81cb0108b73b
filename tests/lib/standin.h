/* standin (test helper) — a stand-in for the agent API ferryd polls while
 * a migration runs, for ferryd tests and benchmarks that need many running
 * migrations without guests: a libevent HTTP server on 127.0.0.1 (an
 * ephemeral port) in a thread of its own, answering
 * GET /v1/migrations/agent-mig-* with 200 and a JSON body the caller
 * writes (anything else: 404).
 *
 *   static void body(struct evbuffer *b, const char *aid, double t_s, void *arg)
 *   { evbuffer_add_printf(b, "{\"id\":\"%s\",\"state\":\"running\", …}", aid); }
 *   struct standin S;
 *   standin_start(&S, body, NULL);        // S.url: the hosts' agent URL
 *   …
 *   standin_stop(&S);
 */
#ifndef FERRY_TESTS_STANDIN_H
#define FERRY_TESTS_STANDIN_H
#include <pthread.h>
#include <stddef.h>
#include <time.h>

struct evbuffer;
struct event_base;
struct event;
struct evhttp;

/* Writes the body of the answer for agent migration aid (the last path
 * segment, borrowed) t_s seconds after standin_start into b. Runs on the
 * server's thread. */
typedef void (*standin_body_fn)(struct evbuffer *b, const char *aid, double t_s, void *arg);

struct standin {
    char url[64];            /* "http://127.0.0.1:PORT" once started */
    struct event_base *base; /* the server's loop; NULL when not started */
    struct evhttp *http;     /* the HTTP server on base */
    struct event *tick;      /* every 100 ms: leaves the loop once stop is set */
    pthread_t thread;        /* runs the loop */
    int running;             /* thread started (standin_stop joins it) */
    int stop;                /* set atomically by standin_stop */
    long polls;              /* answers given, atomic */
    struct timespec t0;      /* CLOCK_MONOTONIC at start */
    standin_body_fn body;    /* writes each answer */
    void *arg;               /* passed to body */
};

/* Binds 127.0.0.1:0, fills s->url and starts the server's thread, which
 * answers with body(…, arg) (arg borrowed, must outlive standin_stop).
 * Returns 0, or -1 (s then holds nothing to stop; standin_stop is safe). */
int standin_start(struct standin *s, standin_body_fn body, void *arg)
    __attribute__((warn_unused_result));

/* Answers given so far (any thread). */
long standin_polls(const struct standin *s);

/* Leaves the loop (within 100 ms), joins the thread and frees the server.
 * Idempotent. */
void standin_stop(struct standin *s);

#endif

/* metrics — ferryd's Prometheus endpoint (GET /metrics, text exposition
 * format 0.0.4) and the front door of its HTTP server, which times every
 * request by route class and status. docs/METRICS.md lists every metric.
 *
 * Migration figures come from the event outbox: at each scrape the events
 * committed since the last one are folded in (progress → per-migration
 * gauges, stalled → counter, completed → downtime histogram, consent →
 * wait gauge and histogram). Counters start at 0 when ferryd starts, as
 * Prometheus expects. The writer helpers below are pure and tested alone. */
#ifndef FERRY_COORD_METRICS_H
#define FERRY_COORD_METRICS_H
#include <event2/buffer.h>
#include <event2/http.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_BUCKETS_MAX 16      /* finite bucket bounds of one histogram */
#define METRICS_API_SERIES 128      /* (route, method, status) latency series */
#define METRICS_MIGRATIONS 1024     /* running migrations tracked */
#define METRICS_SCRAPE_EVENTS 20000 /* events folded per scrape (more wait) */

struct coord;
struct sse;
struct webhooks;
struct metrics;

/* A cumulative histogram with fixed upper bounds (ascending). */
struct metrics_hist {
    double le[METRICS_BUCKETS_MAX];           /* upper bounds, in the metric's unit */
    size_t nb;                                /* bounds used */
    uint64_t counts[METRICS_BUCKETS_MAX + 1]; /* per bucket, last = +Inf */
    double sum;                               /* of observed values */
    uint64_t count;                           /* observations */
};

struct metrics_label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]* */
    const char *value; /* any text; escaped on output */
};

/* Sets h empty with bounds le[0..nb) (nb capped at METRICS_BUCKETS_MAX). */
void metrics_hist_init(struct metrics_hist *h, const double *le, size_t nb);

/* Counts v into h. */
void metrics_hist_observe(struct metrics_hist *h, double v);

/* Appends the escaped label value of in (\ → \\, " → \", newline → \n)
 * to b. */
void metrics_escape(struct evbuffer *b, const char *in);

/* Appends the `# HELP` and `# TYPE` lines of a family (help escaped:
 * \ and newline). */
void metrics_family(struct evbuffer *b, const char *name, const char *type, const char *help);

/* Appends one sample line `name{l1="v1",...} value` (no braces when n is
 * 0); value as the shortest of %.15g/%.17g that reads back exactly, or
 * +Inf/-Inf/NaN. */
void metrics_sample(struct evbuffer *b, const char *name, const struct metrics_label *l, size_t n,
                    double value);

/* Appends h as name_bucket{...,le="..."} lines, name_sum and name_count,
 * with labels l[0..n) (n < 8). */
void metrics_hist_write(struct evbuffer *b, const char *name, const struct metrics_label *l,
                        size_t n, const struct metrics_hist *h);

/* Creates the metrics state of c (borrowed, as are s and w, which may be
 * NULL); it starts folding events after the outbox's current last seq.
 * Free with metrics_free. */
struct metrics *metrics_new(struct coord *c, struct sse *s, struct webhooks *w);
void metrics_free(struct metrics *m);

/* The route class of a request path ("/v1/hosts/h1/heartbeat" →
 * "hosts_action"): resource name plus _item / _action by depth, so that
 * label values stay few whatever the ids. */
void metrics_route_class(const char *path, char out[48]);

/* Records one API request's latency (seconds) under route class (as
 * metrics_route_class gives it), method and status. Thread-safe: ferryd's
 * read threads record theirs here. */
void metrics_api_observe(struct metrics *m, const char *route, enum evhttp_cmd_type method,
                         int status, double seconds);

/* Sets the value of the ferry_api_read_threads gauge. */
void metrics_set_read_threads(struct metrics *m, unsigned n);

/* evhttp callback for every request (arg: struct metrics): serves GET
 * /metrics, hands event-stream requests to the SSE hub and everything else
 * to coord_api_handle, and records the handler's latency under route
 * class, method and status. */
void metrics_front(struct evhttp_request *req, void *arg);

#endif

/* metrics — see metrics.h. */
#include "coord/metrics.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord/coord.h"
#include "coord/migrations.h"
#include "coord/sse.h"
#include "coord/webhook.h"
#include "util/httpd.h"
#include "util/log.h"
#include "util/xalloc.h"

#define CONSENT_TRACKED 1024 /* open consent requests tracked for the wait histogram */
#define EVENT_TYPES 64       /* distinct event types counted */

struct api_series {
    char route[48];
    char method[8];
    int status;
    struct metrics_hist h; /* seconds */
};

struct consent_wait {
    char id[STORE_SUBJECT_MAX + 1]; /* the event subject, consent/ID */
    int64_t since_ms;
};

struct type_count {
    char type[STORE_IDENT_MAX + 1];
    uint64_t n;
};

struct metrics {
    struct coord *c;
    pthread_mutex_t api_lock; /* guards api and n_api: read threads record too */
    unsigned read_threads;    /* ferryd's read threads (metrics_set_read_threads) */
    struct sse *sse;
    struct webhooks *wh;
    struct api_series api[METRICS_API_SERIES];
    size_t n_api;
    int64_t cursor;               /* last event folded */
    uint64_t stalls;              /* migration.stalled since start */
    struct metrics_hist downtime; /* ms, migration.completed */
    struct metrics_hist consent;  /* seconds from request to answer */
    struct consent_wait waits[CONSENT_TRACKED];
    size_t n_waits;
    struct type_count types[EVENT_TYPES];
    size_t n_types;
};

static const double API_LE[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                0.05,   0.1,   0.25,   0.5,   1,    2.5};
static const double DOWNTIME_LE[] = {10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};
static const double CONSENT_LE[] = {1, 5, 15, 30, 60, 300, 900, 3600, 14400, 86400};

void metrics_hist_init(struct metrics_hist *h, const double *le, size_t nb)
{
    memset(h, 0, sizeof(*h));
    h->nb = nb < METRICS_BUCKETS_MAX ? nb : METRICS_BUCKETS_MAX;
    memcpy(h->le, le, h->nb * sizeof(*le));
}

void metrics_hist_observe(struct metrics_hist *h, double v)
{
    size_t i = 0;
    while (i < h->nb && v > h->le[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void metrics_escape(struct evbuffer *b, const char *in)
{
    for (const char *p = in; *p; p++) {
        if (*p == '\\')
            evbuffer_add(b, "\\\\", 2);
        else if (*p == '"')
            evbuffer_add(b, "\\\"", 2);
        else if (*p == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, p, 1);
    }
}

void metrics_family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            evbuffer_add(b, "\\\\", 2);
        else if (*p == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, p, 1);
    }
    evbuffer_add_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void value_str(double v, char out[40])
{
    if (isnan(v))
        snprintf(out, 40, "NaN");
    else if (isinf(v))
        snprintf(out, 40, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (snprintf(out, 40, "%.15g", v) > 0 && strtod(out, NULL) != v)
        snprintf(out, 40, "%.17g", v); /* shortest that reads back exactly */
}

static void labels(struct evbuffer *b, const struct metrics_label *l, size_t n, const char *le)
{
    if (!n && !le)
        return;
    evbuffer_add(b, "{", 1);
    for (size_t i = 0; i < n; i++) {
        evbuffer_add_printf(b, "%s%s=\"", i ? "," : "", l[i].name);
        metrics_escape(b, l[i].value ? l[i].value : "");
        evbuffer_add(b, "\"", 1);
    }
    if (le)
        evbuffer_add_printf(b, "%sle=\"%s\"", n ? "," : "", le);
    evbuffer_add(b, "}", 1);
}

void metrics_sample(struct evbuffer *b, const char *name, const struct metrics_label *l, size_t n,
                    double value)
{
    char v[40];
    value_str(value, v);
    evbuffer_add_printf(b, "%s", name);
    labels(b, l, n, NULL);
    evbuffer_add_printf(b, " %s\n", v);
}

void metrics_hist_write(struct evbuffer *b, const char *name, const struct metrics_label *l,
                        size_t n, const struct metrics_hist *h)
{
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i <= h->nb; i++) {
        cum += h->counts[i];
        if (i < h->nb)
            value_str(h->le[i], le);
        else
            snprintf(le, sizeof(le), "+Inf");
        evbuffer_add_printf(b, "%s_bucket", name);
        labels(b, l, n, le);
        evbuffer_add_printf(b, " %llu\n", (unsigned long long)cum);
    }
    char v[40];
    value_str(h->sum, v);
    evbuffer_add_printf(b, "%s_sum", name);
    labels(b, l, n, NULL);
    evbuffer_add_printf(b, " %s\n%s_count", v, name);
    labels(b, l, n, NULL);
    evbuffer_add_printf(b, " %llu\n", (unsigned long long)h->count);
}

struct metrics *metrics_new(struct coord *c, struct sse *s, struct webhooks *w)
{
    struct metrics *m = xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->api_lock, NULL);
    m->c = c;
    m->sse = s;
    m->wh = w;
    metrics_hist_init(&m->downtime, DOWNTIME_LE, sizeof(DOWNTIME_LE) / sizeof(DOWNTIME_LE[0]));
    metrics_hist_init(&m->consent, CONSENT_LE, sizeof(CONSENT_LE) / sizeof(CONSENT_LE[0]));
    struct ferr e = {0};
    if (store_event_last_seq(c->st, &m->cursor, &e) != 0)
        log_warn("metrics", "msg=\"cannot read the last event seq\" err=\"%s\"", e.msg);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m)
        pthread_mutex_destroy(&m->api_lock);
    free(m);
}

void metrics_set_read_threads(struct metrics *m, unsigned n)
{
    m->read_threads = n;
}

void metrics_route_class(const char *path, char out[48])
{
    static const char *const known[] = {"health",   "hosts", "instances", "events", "migrations",
                                        "consents", "plans", "policy",    NULL};
    char seg[3][24] = {"", "", ""};
    int n = 0;
    for (const char *p = path; *p && *p != '?';) {
        while (*p == '/')
            p++;
        if (!*p || *p == '?')
            break;
        size_t len = strcspn(p, "/?");
        if (n < 3)
            snprintf(seg[n], sizeof(seg[n]), "%.*s", (int)(len < 23 ? len : 23), p);
        n++;
        p += len;
    }
    if (n == 1 && strcmp(seg[0], "metrics") == 0) {
        snprintf(out, 48, "metrics");
        return;
    }
    if (n < 2 || strcmp(seg[0], "v1") != 0) {
        snprintf(out, 48, "other");
        return;
    }
    for (size_t i = 0; known[i]; i++) {
        if (strcmp(seg[1], known[i]) == 0) {
            snprintf(out, 48, "%s%s", known[i], n == 2 ? "" : n == 3 ? "_item" : "_action");
            return;
        }
    }
    snprintf(out, 48, "other");
}

static void record(struct metrics *m, const char *route, const char *method, int status,
                   double seconds)
{
    struct api_series *s = NULL;
    pthread_mutex_lock(&m->api_lock);
    for (size_t i = 0; i < m->n_api && !s; i++)
        if (m->api[i].status == status && strcmp(m->api[i].route, route) == 0 &&
            strcmp(m->api[i].method, method) == 0)
            s = &m->api[i];
    if (!s && m->n_api < METRICS_API_SERIES) {
        s = &m->api[m->n_api++];
        snprintf(s->route, sizeof(s->route), "%s", route);
        snprintf(s->method, sizeof(s->method), "%s", method);
        s->status = status;
        metrics_hist_init(&s->h, API_LE, sizeof(API_LE) / sizeof(API_LE[0]));
    }
    if (s) /* beyond the cap: dropped rather than unbounded */
        metrics_hist_observe(&s->h, seconds);
    pthread_mutex_unlock(&m->api_lock);
}

static void count_type(struct metrics *m, const char *type)
{
    for (size_t i = 0; i < m->n_types; i++) {
        if (strcmp(m->types[i].type, type) == 0) {
            m->types[i].n++;
            return;
        }
    }
    if (m->n_types < EVENT_TYPES) {
        snprintf(m->types[m->n_types].type, sizeof(m->types[0].type), "%s", type);
        m->types[m->n_types++].n = 1;
    }
}

static void fold_event(struct metrics *m, const struct store_event *ev)
{
    count_type(m, ev->type);
    if (strcmp(ev->type, "migration.stalled") == 0) {
        m->stalls++;
    } else if (strcmp(ev->type, "migration.completed") == 0) {
        json_error_t je;
        json_t *p = json_loads(ev->payload ? ev->payload : "{}", 0, &je);
        json_t *d = json_object_get(p, "downtime_ms");
        if (json_is_number(d))
            metrics_hist_observe(&m->downtime, json_number_value(d));
        json_decref(p);
    } else if (strcmp(ev->type, "migration.consent_requested") == 0) {
        if (m->n_waits < CONSENT_TRACKED) {
            snprintf(m->waits[m->n_waits].id, sizeof(m->waits[0].id), "%s", ev->subject);
            m->waits[m->n_waits++].since_ms = ev->time_ms;
        }
    } else if (strncmp(ev->type, "migration.consent_", 18) == 0) {
        for (size_t i = 0; i < m->n_waits; i++) {
            if (strcmp(m->waits[i].id, ev->subject) == 0) {
                metrics_hist_observe(&m->consent,
                                     (double)(ev->time_ms - m->waits[i].since_ms) / 1000.0);
                m->waits[i] = m->waits[--m->n_waits];
                break;
            }
        }
    }
}

/* Folds the events committed since the last scrape (bounded per scrape). */
static void fold(struct metrics *m)
{
    for (size_t done = 0; done < METRICS_SCRAPE_EVENTS;) {
        struct store_event *ev = NULL;
        size_t n = 0;
        struct ferr e = {0};
        if (store_events_since(m->c->st, m->cursor, STORE_EVENTS_PAGE, &ev, &n, &e) != 0) {
            log_error("metrics", "msg=\"cannot read the outbox\" err=\"%s\"", e.msg);
            return;
        }
        for (size_t i = 0; i < n; i++)
            fold_event(m, &ev[i]);
        if (n)
            m->cursor = ev[n - 1].seq;
        store_events_free(ev, n);
        if (n < STORE_EVENTS_PAGE)
            return;
        done += n;
    }
}

/* The per-migration rates the agent reports, from the record's detail
 * JSON: dirty pages/s and transfer bytes/s; -1 when absent. */
static void rates(const struct store_migration *mg, double *dirty_pps, double *bw_bps)
{
    *dirty_pps = *bw_bps = -1;
    if (!mg->detail_json)
        return;
    json_error_t je;
    json_t *d = json_loads(mg->detail_json, 0, &je);
    json_t *v = json_object_get(json_object_get(d, "guest_impact"), "dirty_pages_rate");
    if (!json_is_number(v))
        v = json_object_get(json_object_get(d, "dirty_rate"), "pages_per_s");
    if (json_is_number(v))
        *dirty_pps = json_number_value(v);
    v = json_object_get(d, "bandwidth_bps");
    if (json_is_number(v))
        *bw_bps = json_number_value(v);
    else if (json_is_number(v = json_object_get(d, "mbps")))
        *bw_bps = json_number_value(v) * 1e6 / 8; /* QEMU's mbps: megabits/s */
    json_decref(d);
}

static void migrations_section(struct metrics *m, struct evbuffer *b)
{
    static const char *const states[] = {"requested",  "queued",     "preparing", "running",
                                         "postcopy",   "completing", "cancelling", "unknown",
                                         "succeeded",  "failed",     "cancelled", NULL};
    struct store_migration *mg = NULL;
    size_t n = 0;
    struct ferr e = {0};
    if (store_migration_list(m->c->st, NULL, STORE_LIST_MAX, &mg, &n, &e) != 0) {
        log_error("metrics", "msg=\"cannot list migrations\" err=\"%s\"", e.msg);
        n = 0;
    }
    metrics_family(b, "ferry_migrations", "gauge", "Migrations in the store by state.");
    for (size_t s = 0; states[s]; s++) {
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++)
            cnt += strcmp(mg[i].state, states[s]) == 0;
        struct metrics_label l = {"state", states[s]};
        metrics_sample(b, "ferry_migrations", &l, 1, (double)cnt);
    }
    metrics_family(b, "ferry_migration_remaining_bytes", "gauge",
                   "Bytes left to copy (memory and disk) of each active migration.");
    size_t shown = 0;
    for (size_t i = 0; i < n && shown < METRICS_MIGRATIONS; i++) {
        if (strcmp(mg[i].state, "running") && strcmp(mg[i].state, "postcopy") &&
            strcmp(mg[i].state, "completing") && strcmp(mg[i].state, "preparing"))
            continue;
        shown++;
        struct metrics_label l[] = {{"id", mg[i].id}, {"instance", mg[i].instance}};
        metrics_sample(b, "ferry_migration_remaining_bytes", l, 2,
                       (double)(mg[i].mem_remaining_bytes + mg[i].disk_remaining_bytes));
    }
    const char *names[2] = {"ferry_migration_dirty_rate_pages_per_second",
                            "ferry_migration_bandwidth_bytes_per_second"};
    const char *helps[2] = {"Guest dirty page rate of each running migration (agent's measure).",
                            "Transfer rate of each running migration."};
    for (int k = 0; k < 2; k++) {
        metrics_family(b, names[k], "gauge", helps[k]);
        shown = 0;
        for (size_t i = 0; i < n && shown < METRICS_MIGRATIONS; i++) {
            if (strcmp(mg[i].state, "running") && strcmp(mg[i].state, "postcopy"))
                continue;
            shown++;
            double dirty, bw;
            rates(&mg[i], &dirty, &bw);
            double v = k == 0 ? dirty : bw;
            if (v < 0)
                continue;
            struct metrics_label l[] = {{"id", mg[i].id}, {"instance", mg[i].instance}};
            metrics_sample(b, names[k], l, 2, v);
        }
    }
    store_migrations_free(mg, n);
}

static void render(struct metrics *m, struct evbuffer *b)
{
    struct ferr e = {0};
    fold(m);
    migrations_section(m, b);
    metrics_family(b, "ferry_migration_downtime_milliseconds", "histogram",
                   "Downtime of completed migrations (migration.completed since ferryd started).");
    metrics_hist_write(b, "ferry_migration_downtime_milliseconds", NULL, 0, &m->downtime);
    metrics_family(b, "ferry_migration_stalls_total", "counter",
                   "migration.stalled events since ferryd started.");
    metrics_sample(b, "ferry_migration_stalls_total", NULL, 0, (double)m->stalls);
    metrics_family(b, "ferry_consent_waiting", "gauge",
                   "Consent requests asked and not answered yet (since ferryd started).");
    metrics_sample(b, "ferry_consent_waiting", NULL, 0, (double)m->n_waits);
    metrics_family(b, "ferry_consent_wait_seconds", "histogram",
                   "Time from a consent request to its answer or timeout.");
    metrics_hist_write(b, "ferry_consent_wait_seconds", NULL, 0, &m->consent);
    metrics_family(b, "ferry_api_request_duration_seconds", "histogram",
                   "Time ferryd took to handle an API request, by route class, method, status.");
    pthread_mutex_lock(&m->api_lock);
    for (size_t i = 0; i < m->n_api; i++) {
        char st[8];
        snprintf(st, sizeof(st), "%d", m->api[i].status);
        struct metrics_label l[] = {
            {"route", m->api[i].route}, {"method", m->api[i].method}, {"status", st}};
        metrics_hist_write(b, "ferry_api_request_duration_seconds", l, 3, &m->api[i].h);
    }
    pthread_mutex_unlock(&m->api_lock);
    metrics_family(b, "ferry_api_read_threads", "gauge",
                   "Threads answering reads beside the event loop (read_threads).");
    metrics_sample(b, "ferry_api_read_threads", NULL, 0, (double)m->read_threads);
    int64_t last = 0;
    if (store_event_last_seq(m->c->st, &last, &e) != 0)
        last = m->cursor;
    metrics_family(b, "ferry_events_last_seq", "gauge", "Sequence number of the newest event.");
    metrics_sample(b, "ferry_events_last_seq", NULL, 0, (double)last);
    metrics_family(b, "ferry_events_total", "counter",
                   "Events committed since ferryd started, by type.");
    for (size_t i = 0; i < m->n_types; i++) {
        struct metrics_label l = {"type", m->types[i].type};
        metrics_sample(b, "ferry_events_total", &l, 1, (double)m->types[i].n);
    }
    metrics_family(b, "ferry_sse_subscribers", "gauge", "Open Server-Sent Events streams.");
    metrics_sample(b, "ferry_sse_subscribers", NULL, 0, (double)sse_subscribers(m->sse));
    metrics_family(b, "ferry_sse_dropped_total", "counter",
                   "Event streams dropped for a full output buffer.");
    metrics_sample(b, "ferry_sse_dropped_total", NULL, 0, (double)sse_dropped(m->sse));
    struct coordmig_stats ms;
    coordmig_get_stats(m->c, &ms);
    metrics_family(b, "ferry_store_commits_total", "counter",
                   "Orchestration write transactions committed, by kind.");
    struct metrics_label kp = {"kind", "progress"}, kl = {"kind", "lifecycle"};
    metrics_sample(b, "ferry_store_commits_total", &kp, 1, (double)ms.progress_commits);
    metrics_sample(b, "ferry_store_commits_total", &kl, 1, (double)ms.lifecycle_commits);
    metrics_family(b, "ferry_progress_written_total", "counter",
                   "Progress answers written by the group commit.");
    metrics_sample(b, "ferry_progress_written_total", NULL, 0, (double)ms.progress_written);
    metrics_family(b, "ferry_progress_failed_total", "counter",
                   "Progress answers whose write failed (taken back alone, retried).");
    metrics_sample(b, "ferry_progress_failed_total", NULL, 0, (double)ms.progress_failed);
    metrics_family(b, "ferry_progress_dropped_total", "counter",
                   "Progress answers or events given up after repeated store failures.");
    metrics_sample(b, "ferry_progress_dropped_total", NULL, 0, (double)ms.progress_dropped);
    metrics_family(b, "ferry_progress_commit_failures_total", "counter",
                   "Progress group commits that failed as a whole (retried).");
    metrics_sample(b, "ferry_progress_commit_failures_total", NULL, 0,
                   (double)ms.progress_commit_failed);
    static const char *const wnames[] = {
        "ferry_webhook_deliveries_total", "ferry_webhook_failures_total",
        "ferry_webhook_dead_letters_total", "ferry_webhook_backlog_events"};
    static const char *const whelps[] = {
        "Events delivered (2xx) per endpoint since ferryd started.",
        "Failed delivery attempts (each retry counts) per endpoint.",
        "Events given up (dead letters) per endpoint since ferryd started.",
        "Events after the endpoint's cursor (not yet delivered or skipped)."};
    static const char *const wtypes[] = {"counter", "counter", "counter", "gauge"};
    for (int k = 0; k < 4; k++) {
        metrics_family(b, wnames[k], wtypes[k], whelps[k]);
        for (size_t i = 0; i < webhooks_count(m->wh); i++) {
            struct webhook_stats s;
            struct metrics_label l = {"endpoint", webhooks_stats(m->wh, i, &s)};
            double v = k == 0   ? (double)s.delivered
                       : k == 1 ? (double)s.failures
                       : k == 2 ? (double)s.dead_letters
                                : (double)(last > s.cursor ? last - s.cursor : 0);
            metrics_sample(b, wnames[k], &l, 1, v);
        }
    }
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    default:
        return "OTHER";
    }
}

void metrics_api_observe(struct metrics *m, const char *route, enum evhttp_cmd_type method,
                         int status, double seconds)
{
    record(m, route, method_name(method), status, seconds);
}

void metrics_front(struct evhttp_request *req, void *arg)
{
    struct metrics *m = arg;
    double t0 = mono_s();
    char route[48];
    const char *uri = evhttp_request_get_uri(req);
    bool get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;
    metrics_route_class(uri ? uri : "", route);
    if (strcmp(route, "metrics") == 0 && get) {
        struct evbuffer *b = evbuffer_new();
        render(m, b);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        httpd_no_delay(req); /* a multi-segment reply: see httpd.h */
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
    } else if (strcmp(route, "events") == 0 && get && m->sse && sse_wants_stream(req)) {
        snprintf(route, sizeof(route), "events_stream");
        sse_handle(m->sse, req);
    } else {
        coord_api_handle(req, m->c);
    }
    /* Every handler has replied (or started a stream) by now and libevent
     * frees req only once the reply is written, so its status is readable. */
    int status = evhttp_request_get_response_code(req);
    record(m, route, method_name(evhttp_request_get_command(req)), status, mono_s() - t0);
}

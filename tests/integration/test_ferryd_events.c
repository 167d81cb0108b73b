/* Integration: ferryd's event delivery and metrics, the real binary over
 * real HTTP on 127.0.0.1. Two webhook receivers run inside the test (tiny
 * HTTP servers on their own threads): "flaky" answers 500 to its first two
 * requests and 200 afterwards, "broken" always 500. Proves:
 *  - SSE: an admin's stream gets the events of registrations as they are
 *    committed, in seq order, `id`/`event`/`data` consistent; after a
 *    reconnect with Last-Event-ID it gets only newer events; a project
 *    member's stream does not get inventory events (events:read per event);
 *  - webhooks: the flaky endpoint receives every event in seq order, each
 *    signed with a valid X-Ferry-Signature (HMAC-SHA256 of the body) and
 *    X-Ferry-Event-Id equal to the body's seq, the first one three times
 *    (500, 500, 200); the broken endpoint's events become dead letters
 *    (webhook.dead_letter events naming it, tries = max) and delivery moves
 *    on; neither endpoint is sent events its filter excludes;
 *  - /metrics: every line is a comment or `name{labels} value`, and the
 *    webhook and API latency families are there with sensible values.
 *
 * ferryd runs in its own process group, is SIGKILLed when the test ends
 * (atexit, fatal signals) and dies with the test (PR_SET_PDEATHSIG). Every
 * wait is bounded; the whole test takes a few seconds. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/ferryd.h"
#include "../lib/test.h"
#include "coord/webhook.h"
#include "util/httpc.h"
#include "util/xalloc.h"

#define HTTP_TIMEOUT_MS 10000
#define MAX_TRIES 3
#define RECV_MAX 512 /* requests a receiver records */
#define SECRET_FLAKY "flaky-secret-0123456789"
#define SECRET_BROKEN "broken-secret-0123456789"

static struct ferryd D;
static char member[300];
static int up;

/* One request a receiver got. */
struct got {
    long long hdr_seq;  /* X-Ferry-Event-Id */
    long long body_seq; /* seq in the JSON body */
    char type[64];      /* type in the body */
    int sig_ok;         /* X-Ferry-Signature verified */
    int status;         /* what the receiver answered */
};

struct receiver {
    const char *secret;
    int fail_first; /* answer 500 to this many requests (-1: always) */
    int fd;
    int port;
    pthread_t th;
    pthread_mutex_t mu;
    struct got got[RECV_MAX];
    int n;
};

static atomic_int stop_receivers;
static struct receiver flaky = {.secret = SECRET_FLAKY, .fail_first = 2};
static struct receiver broken = {.secret = SECRET_BROKEN, .fail_first = -1};

static int listen_any(int *port_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port_out = ntohs(a.sin_port);
    return fd;
}

/* Reads one HTTP request (headers + Content-Length body, ≤ 64 KiB) from fd
 * within 5 s. Returns the total length, or -1. */
static int read_request(int fd, char *buf, size_t cap, char **body, size_t *blen)
{
    size_t n = 0;
    uint64_t t0 = lab_now_ms();
    char *hend = NULL;
    while (lab_now_ms() - t0 < 5000 && n < cap - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        if (!hend && (hend = strstr(buf, "\r\n\r\n")) != NULL)
            hend += 4;
        if (hend) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
            if ((size_t)(buf + n - hend) >= want) {
                *body = hend;
                *blen = want;
                return (int)n;
            }
        }
    }
    return -1;
}

static void header(const char *buf, const char *name, char *out, size_t n)
{
    char key[64];
    snprintf(key, sizeof(key), "\r\n%s:", name);
    const char *p = strcasestr(buf, key);
    out[0] = '\0';
    if (!p)
        return;
    p += strlen(key);
    while (*p == ' ')
        p++;
    size_t len = strcspn(p, "\r\n");
    snprintf(out, n, "%.*s", (int)len, p);
}

static void *receiver_main(void *arg)
{
    struct receiver *rv = arg;
    static __thread char buf[70000];
    while (!atomic_load(&stop_receivers)) {
        struct pollfd p = {rv->fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(rv->fd, NULL, NULL);
        if (c < 0)
            continue;
        char *body = NULL;
        size_t blen = 0;
        if (read_request(c, buf, sizeof(buf), &body, &blen) < 0) {
            close(c);
            continue;
        }
        char sig[128], id[32], want[WEBHOOK_SIG_HEX + 1];
        header(buf, "X-Ferry-Signature", sig, sizeof(sig));
        header(buf, "X-Ferry-Event-Id", id, sizeof(id));
        struct got g = {.hdr_seq = strtoll(id, NULL, 10), .body_seq = -1};
        if (webhook_hmac_hex(rv->secret, strlen(rv->secret), body, blen, want) == 0)
            g.sig_ok = strncmp(sig, "sha256=", 7) == 0 && strcmp(sig + 7, want) == 0;
        json_error_t je;
        json_t *j = json_loadb(body, blen, 0, &je);
        if (j) {
            g.body_seq = json_integer_value(json_object_get(j, "seq"));
            snprintf(g.type, sizeof(g.type), "%s",
                     json_string_value(json_object_get(j, "type")) ?: "");
        }
        json_decref(j);
        pthread_mutex_lock(&rv->mu);
        g.status = rv->fail_first < 0 || rv->n < rv->fail_first ? 500 : 200;
        if (rv->n < RECV_MAX)
            rv->got[rv->n++] = g;
        pthread_mutex_unlock(&rv->mu);
        char resp[128];
        int len =
            snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", g.status);
        ssize_t w = write(c, resp, (size_t)len);
        (void)w;
        close(c);
    }
    return NULL;
}

static int start_receiver(struct receiver *rv)
{
    pthread_mutex_init(&rv->mu, NULL);
    rv->fd = listen_any(&rv->port);
    return rv->fd < 0 ? -1 : pthread_create(&rv->th, NULL, receiver_main, rv);
}

static int api(const char *method, const char *path, const char *token, const json_t *body,
               json_t **out)
{
    return ferryd_api(&D, method, path, token, body, out);
}

static int register_host(const char *name)
{
    json_t *b = json_pack("{s:s, s:s, s:i, s:i, s:[{s:s, s:s, s:i}]}", "name", name, "agent_url",
                          "http://127.0.1.1:7001", "ram_mib", 4096, "vcpus", 2, "instances", "name",
                          name, "project_id", "p1", "memory_mib", 128);
    int st = api("POST", "/v1/hosts/register", D.admin, b, NULL);
    json_decref(b);
    return st;
}

/* An SSE stream read over a raw socket (HTTP/1.0: no chunked framing). */
struct stream {
    int fd;
    char buf[65536];
    size_t n;
};

static int stream_open(struct stream *s, const char *token, long long last_id)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)D.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    s->n = 0;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    char req[1024], lei[64] = "";
    if (last_id >= 0)
        snprintf(lei, sizeof(lei), "Last-Event-ID: %lld\r\n", last_id);
    int len = snprintf(req, sizeof(req),
                       "GET /v1/events HTTP/1.0\r\nAccept: text/event-stream\r\n"
                       "Authorization: Bearer %s\r\n%s\r\n",
                       token, lei);
    return write(s->fd, req, (size_t)len) == len ? 0 : -1;
}

static void stream_close(struct stream *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* Reads the stream for up to ms, or until it holds an event with id >=
 * until_id (when until_id > 0). */
static void stream_read(struct stream *s, int ms, long long until_id)
{
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < (uint64_t)ms && s->n < sizeof(s->buf) - 1) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 50) > 0) {
            ssize_t r = read(s->fd, s->buf + s->n, sizeof(s->buf) - 1 - s->n);
            if (r <= 0)
                return;
            s->n += (size_t)r;
            s->buf[s->n] = '\0';
        }
        if (until_id > 0) {
            char key[40];
            snprintf(key, sizeof(key), "\nid: %lld\n", until_id);
            const char *hit = strstr(s->buf, key);
            if (hit && strstr(hit + 1, "\n\n"))
                return;
        }
    }
}

/* Parses the stream's events: ids[] and types[] in order; checks that
 * every data line is JSON whose seq and type match id and event. Returns
 * the count (≤ max), or -1 on an inconsistent record. */
static int stream_events(const struct stream *s, long long *ids, char (*types)[64], int max)
{
    int n = 0;
    const char *body = strstr(s->buf, "\r\n\r\n");
    if (!body || !strstr(s->buf, "200"))
        return -1;
    for (const char *p = body; (p = strstr(p, "\nid: ")) != NULL && n < max; p++) {
        long long id = strtoll(p + 5, NULL, 10);
        const char *ev = strstr(p + 1, "\nevent: "), *data = strstr(p + 1, "\ndata: ");
        if (!ev || !data)
            return -1;
        char type[64];
        snprintf(type, sizeof(type), "%.*s", (int)strcspn(ev + 8, "\n"), ev + 8);
        json_error_t je;
        json_t *j = json_loadb(data + 7, strcspn(data + 7, "\n"), 0, &je);
        int ok = j && json_integer_value(json_object_get(j, "seq")) == id &&
                 strcmp(json_string_value(json_object_get(j, "type")) ?: "", type) == 0;
        json_decref(j);
        if (!ok)
            return -1;
        ids[n] = id;
        snprintf(types[n], 64, "%s", type);
        n++;
    }
    return n;
}

static void t_sse(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", D.log_path);
    struct stream s, m;
    REQUIRE(stream_open(&s, D.admin, -1) == 0, "cannot open the admin stream");
    REQUIRE(stream_open(&m, member, -1) == 0, "cannot open the member stream");
    stream_read(&s, 300, 0);
    CHECK(strstr(s.buf, "text/event-stream") != NULL, "content type: %.200s", s.buf);
    for (int i = 1; i <= 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "sse-h%d", i);
        CHECK(register_host(name) == 201, "register %s", name);
    }
    json_t *o = NULL;
    REQUIRE(api("GET", "/v1/events?since=0", D.admin, NULL, &o) == 200, "events list");
    json_t *all = json_object_get(o, "events");
    long long last = json_integer_value(json_object_get(o, "last_seq"));
    stream_read(&s, 5000, last);
    stream_read(&m, 300, 0);
    static long long ids[1024];
    static char types[1024][64];
    int n = stream_events(&s, ids, types, 1024);
    REQUIRE(n > 0, "no events on the admin stream: %.300s", s.buf);
    /* The stream may run ahead of the list: events committed after the list
     * was read (the broken endpoint's first dead letter comes ~100 ms after
     * the first registration) can arrive in the same read as the last one
     * listed. Up to last_seq the stream is the list, event for event; past
     * it, each event is the next one the outbox lists after last_seq. */
    json_t *later = NULL;
    REQUIRE(api("GET", "/v1/events?since=0", D.admin, NULL, &later) == 200, "events list again");
    json_t *after = json_object_get(later, "events");
    int upto = 0;
    while (upto < n && ids[upto] <= last)
        upto++;
    CHECK((size_t)upto == json_array_size(all), "stream had %d events up to seq %lld, outbox %zu",
          upto, last, json_array_size(all));
    CHECK(json_array_size(after) >= (size_t)n, "stream had %d events, outbox now %zu", n,
          json_array_size(after));
    int registered = 0;
    for (int i = 0; i < n; i++) {
        CHECK(i == 0 || ids[i] > ids[i - 1], "out of order at %d", i);
        json_t *x = json_array_get(i < upto ? all : after, (size_t)i);
        CHECK(x && json_integer_value(json_object_get(x, "seq")) == ids[i] &&
                  strcmp(json_string_value(json_object_get(x, "type")), types[i]) == 0,
              "event %d (seq %lld %s) differs from the outbox", i, ids[i], types[i]);
        registered += strcmp(types[i], "host.registered") == 0;
    }
    json_decref(later);
    CHECK(registered == 3, "%d host.registered on the stream", registered);
    long long member_ids[8];
    char member_types[8][64];
    CHECK(stream_events(&m, member_ids, member_types, 8) == 0,
          "a member saw inventory events: %.300s", m.buf);
    stream_close(&s);
    stream_close(&m);
    json_decref(o);

    /* resume: only events after the last one seen */
    long long seen = ids[n - 1];
    CHECK(register_host("sse-h4") == 201, "register sse-h4");
    REQUIRE(stream_open(&s, D.admin, seen) == 0, "cannot reopen the stream");
    REQUIRE(api("GET", "/v1/events?since=0", D.admin, NULL, &o) == 200, "events list");
    last = json_integer_value(json_object_get(o, "last_seq"));
    json_decref(o);
    stream_read(&s, 5000, last);
    n = stream_events(&s, ids, types, 1024);
    CHECK(n >= 1 && ids[0] == seen + 1, "after Last-Event-ID %lld the first was %lld (n %d)", seen,
          n > 0 ? ids[0] : -1, n);
    int h4 = 0;
    for (int i = 0; i < n; i++) {
        CHECK(ids[i] > seen, "old event %lld replayed", ids[i]);
        h4 += strcmp(types[i], "host.registered") == 0;
    }
    CHECK(h4 == 1, "sse-h4 registration seen %d times", h4);
    stream_close(&s);
}

/* Waits until rv holds at least n answered-200 requests or 10 s pass. */
static void wait_delivered(struct receiver *rv, int n)
{
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < 10000) {
        pthread_mutex_lock(&rv->mu);
        int ok = 0;
        for (int i = 0; i < rv->n; i++)
            ok += rv->got[i].status == 200;
        pthread_mutex_unlock(&rv->mu);
        if (ok >= n)
            return;
        ferryd_sleep_ms(50);
    }
}

static void t_webhooks(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", D.log_path);
    json_t *o = NULL;
    REQUIRE(api("GET", "/v1/events?since=0", D.admin, NULL, &o) == 200, "events list");
    json_t *all = json_object_get(o, "events");
    size_t host_events = 0;
    for (size_t i = 0; i < json_array_size(all); i++)
        host_events += strncmp(json_string_value(json_object_get(json_array_get(all, i), "type")),
                               "host.", 5) == 0;
    /* the flaky endpoint takes everything; wait for the outbox as listed */
    wait_delivered(&flaky, (int)json_array_size(all));
    pthread_mutex_lock(&flaky.mu);
    int n200 = 0;
    long long prev = 0;
    CHECK(flaky.n >= 3 && flaky.got[0].status == 500 && flaky.got[1].status == 500 &&
              flaky.got[2].status == 200,
          "first answers not 500, 500, 200");
    CHECK(flaky.n >= 3 && flaky.got[0].hdr_seq == flaky.got[1].hdr_seq &&
              flaky.got[1].hdr_seq == flaky.got[2].hdr_seq && flaky.got[0].hdr_seq == 1,
          "the retries were not of the first event");
    for (int i = 0; i < flaky.n; i++) {
        struct got *g = &flaky.got[i];
        CHECK(g->sig_ok, "request %d: bad signature", i);
        CHECK(g->hdr_seq == g->body_seq, "request %d: header id %lld, body seq %lld", i, g->hdr_seq,
              g->body_seq);
        if (g->status != 200)
            continue;
        CHECK(g->body_seq > prev, "delivery %d out of order (%lld after %lld)", i, g->body_seq,
              prev);
        prev = g->body_seq;
        if ((size_t)n200 < json_array_size(all))
            CHECK(g->body_seq ==
                      json_integer_value(json_object_get(json_array_get(all, (size_t)n200), "seq")),
                  "delivery %d is seq %lld, outbox has another", n200, g->body_seq);
        n200++;
    }
    CHECK((size_t)n200 >= json_array_size(all), "flaky got %d of %zu events", n200,
          json_array_size(all));
    pthread_mutex_unlock(&flaky.mu);
    json_decref(o);

    /* the broken endpoint (filter host.*): every host event dead-lettered after MAX_TRIES */
    uint64_t t0 = lab_now_ms();
    size_t dead = 0;
    char broken_url[64];
    snprintf(broken_url, sizeof(broken_url), "http://127.0.0.1:%d/hook", broken.port);
    while (lab_now_ms() - t0 < 15000) {
        o = NULL;
        if (api("GET", "/v1/events?since=0", D.admin, NULL, &o) != 200)
            break;
        dead = 0;
        json_t *x;
        size_t i;
        json_array_foreach(json_object_get(o, "events"), i, x)
        {
            json_t *p = json_object_get(x, "payload");
            if (strcmp(json_string_value(json_object_get(x, "type")), "webhook.dead_letter") == 0 &&
                strcmp(json_string_value(json_object_get(p, "endpoint")) ?: "", broken_url) == 0 &&
                json_integer_value(json_object_get(p, "tries")) == MAX_TRIES &&
                json_integer_value(json_object_get(p, "last_status")) == 500)
                dead++;
        }
        json_decref(o);
        if (dead >= host_events)
            break;
        ferryd_sleep_ms(100);
    }
    CHECK(dead >= host_events && host_events > 0, "%zu dead letters for %zu host events", dead,
          host_events);
    pthread_mutex_lock(&broken.mu);
    for (int i = 0; i < broken.n; i++) {
        CHECK(broken.got[i].sig_ok, "broken request %d: bad signature", i);
        CHECK(strncmp(broken.got[i].type, "host.", 5) == 0, "filter let %s through",
              broken.got[i].type);
    }
    CHECK((size_t)broken.n >= host_events * MAX_TRIES, "broken saw %d attempts for %zu events",
          broken.n, host_events);
    pthread_mutex_unlock(&broken.mu);
}

/* True when line is `name{labels} value` with well-formed labels. */
static int sample_ok(const char *line)
{
    const char *p = line;
    if (!(isalpha((unsigned char)*p) || *p == '_' || *p == ':'))
        return 0;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
        p++;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (!(isalpha((unsigned char)*p) || *p == '_'))
                return 0;
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            if (*p++ != '=' || *p++ != '"')
                return 0;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    p++;
                    if (*p != '\\' && *p != '"' && *p != 'n')
                        return 0;
                }
                p++;
            }
            if (*p++ != '"')
                return 0;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return 0;
        }
        p++;
    }
    if (*p++ != ' ')
        return 0;
    if (!strcmp(p, "+Inf") || !strcmp(p, "-Inf") || !strcmp(p, "NaN"))
        return 1;
    char *end;
    strtod(p, &end);
    return end != p && *end == '\0';
}

static void t_metrics(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", D.log_path);
    struct httpc_resp r;
    struct ferr e = {0};
    REQUIRE(httpc_request(D.url, "GET", "/metrics", NULL, NULL, HTTP_TIMEOUT_MS, &r, &e) == 0,
            "GET /metrics: %s", e.msg);
    CHECK(r.status == 200, "status %d", r.status);
    int lines = 0, bad = 0;
    char *save = NULL;
    for (char *l = strtok_r(r.body, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        lines++;
        if (l[0] == '#') {
            CHECK(strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0, "comment: %s", l);
            continue;
        }
        if (!sample_ok(l) && bad++ < 5)
            CHECK(0, "bad line: %s", l);
    }
    CHECK(lines > 50 && bad == 0, "%d lines, %d bad", lines, bad);
    httpc_resp_free(&r);
    REQUIRE(httpc_request(D.url, "GET", "/metrics", NULL, NULL, HTTP_TIMEOUT_MS, &r, &e) == 0,
            "GET /metrics again: %s", e.msg);
    char want[160];
    snprintf(want, sizeof(want),
             "ferry_webhook_dead_letters_total{endpoint=\"http://127.0.0.1:%d/hook\"} ",
             broken.port);
    const char *d = strstr(r.body, want);
    CHECK(d && strtod(d + strlen(want), NULL) >= 1, "dead letters of the broken endpoint");
    snprintf(want, sizeof(want),
             "ferry_webhook_failures_total{endpoint=\"http://127.0.0.1:%d/hook\"} ", flaky.port);
    d = strstr(r.body, want);
    CHECK(d && strtod(d + strlen(want), NULL) == 2, "flaky failures");
    CHECK(strstr(r.body, "ferry_api_request_duration_seconds_bucket{route=\"hosts_item\","
                         "method=\"POST\",status=\"201\",le=\"+Inf\"} 4") != NULL,
          "latency of the 4 registrations");
    CHECK(strstr(r.body, "ferry_migrations{state=\"running\"} 0") != NULL, "migrations by state");
    CHECK(strstr(r.body, "ferry_migrations{state=\"queued\"} 0") != NULL, "queued migrations");
    CHECK(strstr(r.body, "# TYPE ferry_migration_downtime_milliseconds histogram") != NULL,
          "downtime histogram");
    httpc_resp_free(&r);
}

/* Rows of the audit table matching action and a LIKE pattern on target,
 * read straight from ferryd's SQLite store (-1 on error). */
static int audit_rows(const char *action, const char *target_like)
{
    char path[LAB_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/ferryd.db", D.dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_busy_timeout(db, 2000) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM audit WHERE action = ?1 AND target LIKE ?2",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, action, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, target_like, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            n = sqlite3_column_int(q, 0);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

/* Waits (bounded) until audit_rows(action, like) >= want; returns the last count. */
static int audit_wait(const char *action, const char *like, int want)
{
    uint64_t t0 = lab_now_ms();
    int n = -1;
    while (lab_now_ms() - t0 < 5000 && (n = audit_rows(action, like)) < want)
        ferryd_sleep_ms(50);
    return n;
}

/* The read paths (event list, event stream, consent list, host list) each
 * leave one audit record per request, written by the deferred 100 ms flush
 * while ferryd runs; a denied read is recorded as such. */
static void t_read_audit(void)
{
    REQUIRE(up, "ferryd did not start");
    ferryd_sleep_ms(300); /* earlier reads reach the table with the next flush */
    int streams0 = audit_rows("events:read", "events/stream%");
    int lists0 = audit_rows("events:read", "events?since=%");
    int consents0 = audit_rows("consent:list", "consents");
    REQUIRE(streams0 >= 2, "the two streams of the SSE case left %d audit records", streams0);
    CHECK(api("GET", "/v1/events?since=1", member, NULL, NULL) == 200, "events as a member");
    CHECK(api("GET", "/v1/consents", member, NULL, NULL) == 200, "consents as a member");
    CHECK(api("GET", "/v1/hosts", member, NULL, NULL) == 403, "hosts as a member");
    struct stream s;
    REQUIRE(stream_open(&s, member, 1) == 0, "cannot open a stream");
    stream_close(&s);
    CHECK(audit_wait("events:read", "events?since=%", lists0 + 1) >= lists0 + 1,
          "event list read not audited");
    CHECK(audit_wait("consent:list", "consents", consents0 + 1) >= consents0 + 1,
          "consent list read not audited");
    CHECK(audit_wait("events:read", "events/stream?since=1", 1) >= 1, "stream not audited");
    CHECK(audit_wait("host:list", "hosts", 1) >= 1, "host list not audited");
    CHECK(audit_rows("events:read", "events/stream%") >= streams0 + 1, "stream records %d",
          audit_rows("events:read", "events/stream%"));
}

int main(void)
{
    struct ferr e = {0};
    signal(SIGPIPE, SIG_IGN);
    if (ferryd_init(&D, NULL, &e) != 0) {
        fprintf(stderr, "ferryd_init: %s\n", e.msg);
        return 1;
    }
    if (start_receiver(&flaky) != 0 || start_receiver(&broken) != 0) {
        fprintf(stderr, "cannot start the receivers\n");
        return 1;
    }
    if (ferryd_write_conf(&D,
                          "webhook = http://127.0.0.1:%d/hook %s\n"
                          "webhook = http://127.0.0.1:%d/hook %s host.*\n"
                          "webhook_max_tries = %d\nwebhook_backoff_base_ms = 50\n"
                          "webhook_backoff_cap_ms = 200\n",
                          flaky.port, SECRET_FLAKY, broken.port, SECRET_BROKEN, MAX_TRIES) != 0)
        return 1;
    up = ferryd_add_token(&D, "u1", "p1", "member", member, sizeof(member)) == 0 &&
         ferryd_start(&D) == 0;
    test_run("events: SSE in order, policy-filtered, Last-Event-ID resumes after the last seen",
             t_sse);
    test_run("events: webhooks signed, in order, retried (500, 500, 200); always-failing "
             "endpoint dead-lettered",
             t_webhooks);
    test_run("events: /metrics parses line by line; webhook and latency figures", t_metrics);
    test_run("events: event list, event stream, consent list and host list reads are audited "
             "(deferred flush)",
             t_read_audit);
    ferryd_stop(&D, SIGKILL);
    atomic_store(&stop_receivers, 1);
    pthread_join(flaky.th, NULL);
    pthread_join(broken.th, NULL);
    int rc = test_done();
    if (rc != 0)
        ferryd_tail_log(&D, 40);
    ferryd_fini(&D, rc == 0);
    return rc;
}

/* webhook — see webhook.h. Each endpoint is a small state machine driven by
 * one timer: idle (poll the outbox) → in flight (one POST) → delivered
 * (advance the cursor, go on at once) or failed (wait the backoff, retry,
 * or record a dead letter and go on). */
#include "coord/webhook.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord/coord.h"
#include "coord/sse.h"
#include "util/log.h"
#include "util/xalloc.h"

#define WEBHOOK_EVENT_VERSION 1 /* version of the webhook.dead_letter payload */

struct wh_ep {
    struct webhooks *w;
    const struct config_webhook *cfg; /* borrowed from the coord's config */
    char host[256];
    int port;
    char path[1024]; /* path and query sent in the request line */
    struct evhttp_connection *con;
    struct event *timer;
    int64_t cursor;  /* last seq delivered, skipped or given up (persisted) */
    int64_t cur_seq; /* event being delivered, 0 when none */
    char cur_type[STORE_IDENT_MAX + 1];
    char *cur_body;  /* its JSON body; owned */
    unsigned tries;  /* attempts of cur so far */
    int last_status; /* of the last attempt, 0 when no answer */
    bool inflight;   /* a request is out */
    struct webhook_stats stats;
};

struct webhooks {
    struct coord *c; /* borrowed */
    struct wh_ep *eps;
    size_t n;
    uint32_t rnd; /* xorshift state for jitter */
};

int webhook_hmac_hex(const void *key, size_t klen, const void *msg, size_t mlen,
                     char out[WEBHOOK_SIG_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    static const unsigned char empty[1];
    if (!HMAC(EVP_sha256(), key, (int)klen, mlen ? msg : empty, mlen, md, &len) || len != 32) {
        out[0] = '\0';
        return -EIO;
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * len] = '\0';
    return 0;
}

uint32_t webhook_backoff_ms(unsigned failures, uint32_t base_ms, uint32_t cap_ms, uint32_t rnd)
{
    uint64_t d = base_ms;
    for (unsigned i = 1; i < failures && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    uint64_t half = d / 2;
    return (uint32_t)(d - half + rnd % (half + 1)); /* [d - d/2, d] */
}

bool webhook_type_match(const char *filter, const char *type)
{
    if (!filter[0])
        return true;
    size_t tl = strlen(type);
    for (const char *p = filter; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0 && p[len - 1] == '*') {
            if (tl >= len - 1 && strncmp(type, p, len - 1) == 0)
                return true;
        } else if (len == tl && strncmp(type, p, len) == 0) {
            return true;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

static uint32_t next_rnd(struct webhooks *w)
{
    uint32_t x = w->rnd;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return w->rnd = x;
}

static void arm(struct wh_ep *ep, uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ep->timer, &tv);
}

static void save_cursor(struct wh_ep *ep)
{
    struct ferr e = {0};
    if (store_cursor_set(ep->w->c->st, ep->cfg->url, ep->cursor, coord_now_ms(), &e) != 0)
        log_error("webhook", "msg=\"cannot save the cursor\" url=%s err=\"%s\"", ep->cfg->url,
                  e.msg);
}

/* True for the dead letters about ep itself: sending them to ep would
 * only make more. */
static bool own_dead_letter(const struct wh_ep *ep, const struct store_event *ev)
{
    if (strcmp(ev->type, "webhook.dead_letter") != 0)
        return false;
    json_error_t je;
    json_t *p = json_loads(ev->payload ? ev->payload : "{}", 0, &je);
    const char *url = json_string_value(json_object_get(p, "endpoint"));
    bool own = url && strcmp(url, ep->cfg->url) == 0;
    json_decref(p);
    return own;
}

/* Picks the next event for ep past its cursor; false when none. */
static bool pick(struct wh_ep *ep)
{
    struct store_event *ev = NULL;
    size_t n = 0;
    struct ferr e = {0};
    if (store_events_since(ep->w->c->st, ep->cursor, WEBHOOK_BATCH, &ev, &n, &e) != 0) {
        log_error("webhook", "msg=\"cannot read the outbox\" err=\"%s\"", e.msg);
        return false;
    }
    int64_t start = ep->cursor;
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        if (!webhook_type_match(ep->cfg->types, ev[i].type) || own_dead_letter(ep, &ev[i])) {
            ep->cursor = ev[i].seq;
            continue;
        }
        json_t *j = sse_event_json(&ev[i]);
        ep->cur_body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        ep->cur_seq = ev[i].seq;
        snprintf(ep->cur_type, sizeof(ep->cur_type), "%s", ev[i].type);
        ep->tries = 0;
        found = true;
    }
    store_events_free(ev, n);
    if (ep->cursor != start)
        save_cursor(ep);
    return found;
}

static void on_done(struct evhttp_request *req, void *arg);

static void send_cur(struct wh_ep *ep)
{
    char sig[WEBHOOK_SIG_HEX + 1], hdr[WEBHOOK_SIG_HEX + 8], id[24];
    size_t len = strlen(ep->cur_body);
    if (webhook_hmac_hex(ep->cfg->secret, strlen(ep->cfg->secret), ep->cur_body, len, sig) != 0) {
        log_error("webhook", "msg=\"HMAC failed\" url=%s", ep->cfg->url);
        arm(ep, 1000);
        return;
    }
    snprintf(hdr, sizeof(hdr), "sha256=%s", sig);
    snprintf(id, sizeof(id), "%lld", (long long)ep->cur_seq);
    struct evhttp_request *req = evhttp_request_new(on_done, ep);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", ep->host);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "User-Agent", "ferryd");
    evhttp_add_header(h, "X-Ferry-Event-Id", id);
    evhttp_add_header(h, "X-Ferry-Event-Type", ep->cur_type);
    evhttp_add_header(h, "X-Ferry-Signature", hdr);
    evbuffer_add(evhttp_request_get_output_buffer(req), ep->cur_body, len);
    ep->tries++;
    ep->inflight = true;
    if (evhttp_make_request(ep->con, req, EVHTTP_REQ_POST, ep->path) != 0) {
        /* libevent has released req; count it as a failed attempt */
        ep->inflight = false;
        ep->stats.failures++;
        ep->last_status = 0;
        arm(ep, webhook_backoff_ms(ep->tries, ep->w->c->cfg.webhook_backoff_base_ms,
                                   ep->w->c->cfg.webhook_backoff_cap_ms, next_rnd(ep->w)));
    }
}

static void done_with_cur(struct wh_ep *ep)
{
    ep->cursor = ep->cur_seq;
    ep->cur_seq = 0;
    free(ep->cur_body);
    ep->cur_body = NULL;
    ep->tries = 0;
}

/* Records cur as a dead letter with its event, and the cursor past it, in
 * one transaction. */
static void dead_letter(struct wh_ep *ep)
{
    struct coord *c = ep->w->c;
    struct ferr e = {0};
    int64_t now = coord_now_ms();
    struct store_dead_letter d = {.event_seq = ep->cur_seq,
                                  .tries = (int)ep->tries,
                                  .last_status = ep->last_status,
                                  .time_ms = now};
    snprintf(d.endpoint, sizeof(d.endpoint), "%s", ep->cfg->url);
    if (ep->last_status)
        snprintf(d.last_error, sizeof(d.last_error), "HTTP status %d", ep->last_status);
    else
        snprintf(d.last_error, sizeof(d.last_error), "no answer (refused, reset or %d s timeout)",
                 WEBHOOK_TIMEOUT_S);
    json_t *p =
        json_pack("{s:s, s:I, s:s, s:i, s:i, s:s}", "endpoint", ep->cfg->url, "event_seq",
                  (json_int_t)ep->cur_seq, "event_type", ep->cur_type, "tries", (int)ep->tries,
                  "last_status", ep->last_status, "last_error", d.last_error);
    char *text = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    struct store_event ev = {.time_ms = now, .payload = text, .version = WEBHOOK_EVENT_VERSION};
    snprintf(ev.type, sizeof(ev.type), "webhook.dead_letter");
    snprintf(ev.subject, sizeof(ev.subject), "webhook/%.*s", (int)sizeof(ev.subject) - 9,
             ep->cfg->url);
    if (store_tx_begin(c->st, &e) != 0 || store_dead_letter_add(c->st, &d, &e) != 0 ||
        store_event_append(c->st, &ev, NULL, &e) != 0 ||
        store_cursor_set(c->st, ep->cfg->url, ep->cur_seq, now, &e) != 0 ||
        store_tx_commit(c->st, &e) != 0) {
        store_tx_rollback(c->st);
        log_error("webhook", "msg=\"cannot record the dead letter; retrying\" url=%s err=\"%s\"",
                  ep->cfg->url, e.msg);
        free(text);
        ep->tries--; /* try the delivery once more, then record again */
        return;
    }
    free(text);
    log_warn("webhook", "msg=\"dead letter\" url=%s seq=%lld tries=%u last_status=%d", ep->cfg->url,
             (long long)ep->cur_seq, ep->tries, ep->last_status);
    ep->stats.dead_letters++;
    done_with_cur(ep);
}

static void on_done(struct evhttp_request *req, void *arg)
{
    struct wh_ep *ep = arg;
    const struct config *cfg = &ep->w->c->cfg;
    ep->inflight = false;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    if (status >= 200 && status < 300) {
        ep->stats.delivered++;
        log_debug("webhook", "msg=\"delivered\" url=%s seq=%lld tries=%u", ep->cfg->url,
                  (long long)ep->cur_seq, ep->tries);
        done_with_cur(ep);
        save_cursor(ep);
        arm(ep, 0);
        return;
    }
    ep->stats.failures++;
    ep->last_status = status;
    if (ep->tries >= cfg->webhook_max_tries) {
        dead_letter(ep);
        arm(ep, 0);
        return;
    }
    uint32_t ms = webhook_backoff_ms(ep->tries, cfg->webhook_backoff_base_ms,
                                     cfg->webhook_backoff_cap_ms, next_rnd(ep->w));
    log_info("webhook",
             "msg=\"delivery failed; retrying\" url=%s seq=%lld status=%d try=%u "
             "retry_in_ms=%u",
             ep->cfg->url, (long long)ep->cur_seq, status, ep->tries, ms);
    arm(ep, ms);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct wh_ep *ep = arg;
    if (ep->inflight)
        return;
    if (!ep->cur_seq && !pick(ep)) {
        arm(ep, WEBHOOK_POLL_MS);
        return;
    }
    send_cur(ep);
}

static int parse_url(struct wh_ep *ep, struct ferr *e)
{
    struct evhttp_uri *u = evhttp_uri_parse(ep->cfg->url);
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    if (!host || !host[0] || !scheme || strcmp(scheme, "http") != 0) {
        evhttp_uri_free(u);
        return ferr_set(e, FERR_INVAL, "webhook", "cannot use webhook URL %s", ep->cfg->url);
    }
    const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
    snprintf(ep->host, sizeof(ep->host), "%s", host);
    ep->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    snprintf(ep->path, sizeof(ep->path), "%s%s%s", path && path[0] ? path : "/", query ? "?" : "",
             query ? query : "");
    evhttp_uri_free(u);
    return 0;
}

int webhooks_new(struct coord *c, struct webhooks **out, struct ferr *e)
{
    struct webhooks *w = xcalloc(1, sizeof(*w));
    int rc = 0;
    *out = NULL;
    w->c = c;
    w->rnd = (uint32_t)coord_now_ms() ^ ((uint32_t)getpid() << 16) ^ 0x9e3779b9u;
    if (!w->rnd)
        w->rnd = 1;
    w->n = c->cfg.n_webhooks;
    w->eps = xcalloc(w->n ? w->n : 1, sizeof(*w->eps));
    for (size_t i = 0; i < w->n; i++) {
        struct wh_ep *ep = &w->eps[i];
        ep->w = w;
        ep->cfg = &c->cfg.webhooks[i];
        if ((rc = parse_url(ep, e)) != 0)
            goto fail;
        rc = store_cursor_get(c->st, ep->cfg->url, &ep->cursor, e);
        if (rc == FERR_NOTFOUND) {
            if ((rc = store_event_last_seq(c->st, &ep->cursor, e)) != 0 ||
                (rc = store_cursor_set(c->st, ep->cfg->url, ep->cursor, coord_now_ms(), e)) != 0)
                goto fail;
        } else if (rc) {
            goto fail;
        }
        ep->con = evhttp_connection_base_new(c->base, NULL, ep->host, (ev_uint16_t)ep->port);
        evhttp_connection_set_timeout(ep->con, WEBHOOK_TIMEOUT_S);
        evhttp_connection_set_retries(ep->con, 0);
        evhttp_connection_set_max_headers_size(ep->con, WEBHOOK_REPLY_MAX);
        evhttp_connection_set_max_body_size(ep->con, WEBHOOK_REPLY_MAX);
        ep->timer = evtimer_new(c->base, on_timer, ep);
        arm(ep, 0);
        log_info("webhook", "msg=\"endpoint\" url=%s types=%s cursor=%lld", ep->cfg->url,
                 ep->cfg->types[0] ? ep->cfg->types : "*", (long long)ep->cursor);
    }
    *out = w;
    return 0;
fail:
    webhooks_free(w);
    return rc;
}

void webhooks_free(struct webhooks *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        struct wh_ep *ep = &w->eps[i];
        if (ep->timer)
            event_free(ep->timer);
        if (ep->con)
            evhttp_connection_free(ep->con); /* cancels a request in flight */
        free(ep->cur_body);
    }
    free(w->eps);
    free(w);
}

size_t webhooks_count(const struct webhooks *w)
{
    return w ? w->n : 0;
}

const char *webhooks_stats(const struct webhooks *w, size_t i, struct webhook_stats *out)
{
    const struct wh_ep *ep = &w->eps[i];
    *out = ep->stats;
    out->cursor = ep->cursor;
    return ep->cfg->url;
}

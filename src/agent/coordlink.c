/* coordlink — registration and heartbeats to ferryd (see coordlink.h). */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/coordlink.h"
#include "util/log.h"
#include "util/xalloc.h"

#define COORDLINK_MAX_REPLY (64u * 1024) /* bytes of ferryd's reply parsed */

struct coordlink {
    struct agent *ag;     /* borrowed */
    char host[128];       /* ferryd's address */
    int port;             /* ferryd's port */
    char url[200];        /* for messages */
    char *token;          /* bearer token presented to ferryd, owned */
    struct event *timer;  /* next registration */
    uint32_t interval_ms; /* heartbeat interval ferryd asks for */
    bool inflight;        /* a request is outstanding */
    bool registered;      /* the last registration succeeded */
    unsigned failures;    /* consecutive failures (logged on the first) */
    json_t *labels;       /* {"key": "value"} sent with every registration, owned */
    char *sent;           /* the last registration ferryd accepted (JSON), owned */
    char *pending;        /* the registration in flight (JSON), owned */
    unsigned beats;       /* heartbeats sent alone since the last registration */
};

static void arm(struct coordlink *l, uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(l->timer, &tv);
}

typedef void (*link_cb)(struct coordlink *l, int status, json_t *body);

struct link_req {
    struct coordlink *l;
    link_cb cb;
};

static void on_reply(struct evhttp_request *req, void *arg)
{
    struct link_req *r = arg;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    json_t *body = NULL;
    if (status) {
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(b);
        if (len > 0 && len <= COORDLINK_MAX_REPLY)
            body = json_loadb((const char *)evbuffer_pullup(b, (ev_ssize_t)len), len, 0, NULL);
    }
    r->l->inflight = false;
    r->cb(r->l, status, body);
    json_decref(body);
    free(r);
}

static int send_req(struct coordlink *l, const char *path, const json_t *body, link_cb cb)
{
    struct evhttp_connection *c =
        evhttp_connection_base_new(l->ag->base, NULL, l->host, (ev_uint16_t)l->port);
    if (!c)
        return -1;
    evhttp_connection_set_timeout(c, COORDLINK_TIMEOUT_S);
    evhttp_connection_set_retries(c, 0);
    evhttp_connection_free_on_completion(c);
    struct link_req *r = xcalloc(1, sizeof(*r));
    r->l = l;
    r->cb = cb;
    struct evhttp_request *req = evhttp_request_new(on_reply, r);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", l->host);
    evhttp_add_header(h, "Content-Type", "application/json");
    char *auth = xasprintf("Bearer %s", l->token);
    evhttp_add_header(h, "Authorization", auth);
    free(auth);
    char *text = json_dumps(body, JSON_COMPACT);
    if (text) {
        evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
        free(text);
    }
    if (evhttp_make_request(c, req, EVHTTP_REQ_POST, path) != 0) {
        free(r);
        evhttp_connection_free(c);
        return -1;
    }
    l->inflight = true;
    return 0;
}

static uint64_t mem_total_mib(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    unsigned long long kib = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib / 1024 ? kib / 1024 : 1;
}

/* The registration body: this host and the guests that run here. A guest
 * still waiting for an incoming migration belongs to its source until it
 * runs, so it is left out. */
static json_t *register_body(const struct coordlink *l)
{
    const struct agent *ag = l->ag;
    json_t *inst = json_array();
    for (const struct instance *in = ag->instances; in; in = in->next) {
        if (in->state == INST_INCOMING || in->state == INST_EXITED || in->destroying ||
            (in->incoming && in->state == INST_STARTING))
            continue;
        json_array_append_new(inst,
                              json_pack("{s:s, s:s, s:I, s:I}", "name", in->spec.name, "project_id",
                                        in->spec.project ? in->spec.project : "", "memory_mib",
                                        (json_int_t)in->spec.memory_mib, "vcpus",
                                        (json_int_t)(in->spec.vcpus ? in->spec.vcpus : 1)));
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    char *url = xasprintf("http://%s:%d", ag->listen_addr, ag->port);
    json_t *b = json_pack("{s:s, s:s, s:I, s:I, s:o}", "name", ag->name, "agent_url", url,
                          "ram_mib", (json_int_t)mem_total_mib(), "vcpus",
                          (json_int_t)(ncpu > 0 ? ncpu : 1), "instances", inst);
    if (json_object_size(l->labels))
        json_object_set(b, "labels", l->labels);
    free(url);
    return b;
}

static void failed(struct coordlink *l, const char *what, int status)
{
    if (l->failures++ == 0)
        log_warn("coordlink", "msg=\"%s failed\" coordinator=%s status=%d", what, l->url, status);
    l->registered = false;
    arm(l, COORDLINK_RETRY_MS < l->interval_ms ? COORDLINK_RETRY_MS : l->interval_ms);
}

static void on_heartbeat(struct coordlink *l, int status, json_t *body)
{
    if (status != 200) {
        failed(l, "heartbeat", status);
        return;
    }
    json_int_t iv = json_integer_value(json_object_get(body, "heartbeat_interval_ms"));
    if (iv >= 50 && iv <= 3600000)
        l->interval_ms = (uint32_t)iv;
    l->failures = 0;
    arm(l, l->interval_ms);
}

static void on_registered(struct coordlink *l, int status, json_t *body)
{
    (void)body;
    if (status != 200 && status != 201) {
        failed(l, "registration", status);
        return;
    }
    if (!l->registered || l->failures)
        log_info("coordlink", "msg=\"registered with the coordinator\" coordinator=%s name=%s",
                 l->url, l->ag->name);
    l->registered = true;
    free(l->sent);
    l->sent = l->pending;
    l->pending = NULL;
    char path[128];
    snprintf(path, sizeof(path), "/v1/hosts/%s/heartbeat", l->ag->name);
    json_t *b = json_object();
    if (send_req(l, path, b, on_heartbeat) != 0)
        failed(l, "heartbeat", 0);
    json_decref(b);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coordlink *l = arg;
    if (l->inflight) {
        arm(l, COORDLINK_RETRY_MS);
        return;
    }
    /* Register when ferryd may not know this host as it is (first time,
     * after a failure, or its guests, capacity or labels changed), and
     * anyway every COORDLINK_REREGISTER_EVERY + 1 intervals (ferryd's
     * instance list may have been changed by another host's registration,
     * e.g. a source still listing a guest that just left it); otherwise
     * only heartbeat: a registration rewrites the host's instance list in
     * ferryd's store, a heartbeat one row. */
    json_t *b = register_body(l);
    char *text = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
    if (l->registered && l->sent && text && strcmp(text, l->sent) == 0 &&
        l->beats < COORDLINK_REREGISTER_EVERY) {
        free(text);
        l->beats++;
        char path[128];
        snprintf(path, sizeof(path), "/v1/hosts/%s/heartbeat", l->ag->name);
        json_t *hb = json_object();
        if (send_req(l, path, hb, on_heartbeat) != 0)
            failed(l, "heartbeat", 0);
        json_decref(hb);
    } else {
        free(l->pending);
        l->pending = text;
        l->beats = 0;
        if (send_req(l, "/v1/hosts/register", b, on_registered) != 0)
            failed(l, "registration", 0);
    }
    json_decref(b);
}

static bool label_part_ok(const char *s, size_t len, bool key)
{
    if (len > 63 || (key && len == 0))
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if ((i == 0 && key && !alnum) ||
            (!alnum && ch != '_' && ch != '.' && ch != '-' && !(key && ch == '/')))
            return false;
    }
    return true;
}

/* The labels as {"key": "value"} (new object in *out) or why not. */
static int labels_parse(const char *const *labels, size_t n, json_t **out, struct ferr *e)
{
    *out = NULL;
    if (n > COORDLINK_LABELS_MAX)
        return ferr_set(e, FERR_TOOBIG, "label", "more than %d labels", COORDLINK_LABELS_MAX);
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(labels[i], '=');
        if (!eq || !label_part_ok(labels[i], (size_t)(eq - labels[i]), true) ||
            !label_part_ok(eq + 1, strlen(eq + 1), false)) {
            json_decref(o);
            return ferr_set(e, FERR_INVAL, "label",
                            "--label %.80s: KEY=VALUE, a key of [A-Za-z0-9_./-] (1..63), a value "
                            "of [A-Za-z0-9_.-] (0..63)",
                            labels[i]);
        }
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - labels[i]), labels[i]);
        if (json_object_get(o, key)) {
            json_decref(o);
            return ferr_set(e, FERR_INVAL, "label", "--label: key %s given twice", key);
        }
        json_object_set_new(o, key, json_string(eq + 1));
    }
    *out = o;
    return 0;
}

int coordlink_start(struct agent *ag, const char *url, const char *token_file,
                    const char *const *labels, size_t nlabels, struct coordlink **out,
                    struct ferr *e)
{
    *out = NULL;
    json_t *lab = NULL;
    int lrc = labels_parse(labels, nlabels, &lab, e);
    if (lrc != 0)
        return lrc;
    const char *p = url && strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
    const char *colon = p ? strrchr(p, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == p || (size_t)(colon - p) >= 128 || port <= 0 || port > 65535 ||
        (*end && strcmp(end, "/") != 0))
        lrc = ferr_set(e, FERR_INVAL, "coordinator", "--coordinator must be http://HOST:PORT");
    else if (!token_file)
        lrc = ferr_set(e, FERR_INVAL, "agent-token-file",
                       "--coordinator needs --agent-token-file");
    if (lrc != 0) {
        json_decref(lab);
        return lrc;
    }
    FILE *f = fopen(token_file, "r");
    char tok[300] = {0};
    char *r = f ? fgets(tok, sizeof(tok), f) : NULL;
    if (f)
        fclose(f);
    tok[strcspn(tok, "\r\n")] = '\0';
    if (!r || !tok[0] || strlen(tok) > 256) {
        json_decref(lab);
        return ferr_set(e, FERR_INVAL, "agent-token-file", "cannot read a token from %s",
                        token_file);
    }
    struct coordlink *l = xcalloc(1, sizeof(*l));
    l->ag = ag;
    memcpy(l->host, p, (size_t)(colon - p));
    l->port = (int)port;
    snprintf(l->url, sizeof(l->url), "%s", url);
    l->token = xstrdup(tok);
    l->interval_ms = COORDLINK_DEFAULT_INTERVAL_MS;
    l->labels = lab;
    l->timer = evtimer_new(ag->base, on_timer, l);
    arm(l, 0);
    *out = l;
    return 0;
}

void coordlink_free(struct coordlink *l)
{
    if (!l)
        return;
    event_free(l->timer);
    json_decref(l->labels);
    free(l->sent);
    free(l->pending);
    free(l->token);
    free(l);
}

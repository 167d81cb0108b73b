/* api — ferryd's HTTP/JSON API (/v1), first slice: health, bearer-token
 * authentication, host inventory (register, heartbeat, list), the event
 * outbox (GET /v1/events?since=SEQ). Every body is capped and validated
 * before anything changes; errors are {"error":{code,message,field}}.
 * Every authorisation decision goes to the audit table; every state change
 * is written together with its event in one store transaction. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord/consent.h"
#include "coord/auth.h"
#include "coord/coord.h"
#include "coord/hostreq.h"
#include "coord/migrations.h"
#include "coord/place.h"
#include "coord/plans.h"
#include "coord/sse.h"
#include "util/httpd.h"
#include "util/jsonin.h"
#include "util/log.h"
#include "util/xalloc.h"

#define EVENT_VERSION 1 /* version of the event payloads defined here */

/* ferryd's defaults for actions the core policy does not define yet; a
 * policy file may override them. */
static const char COORD_POLICY_DEFAULTS[] = "{\"agent\": \"role:agent\","
                                            " \"host:register\": \"rule:admin or rule:agent\","
                                            " \"host:heartbeat\": \"rule:admin or rule:agent\"}";

int64_t coord_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int coord_policy_load(struct coord *c, struct ferr *e)
{
    json_error_t je;
    json_t *merged = json_loads(COORD_POLICY_DEFAULTS, 0, &je);
    if (c->cfg.policy_file[0]) {
        json_t *file = json_load_file(c->cfg.policy_file, 0, &je);
        if (!file || !json_is_object(file)) {
            json_decref(file);
            json_decref(merged);
            return ferr_set(e, FERR_INVAL, "policy_file", "%s: %s", c->cfg.policy_file,
                            file ? "not a JSON object" : je.text);
        }
        json_object_update(merged, file); /* the file wins */
        json_decref(file);
    }
    char *text = json_dumps(merged, JSON_COMPACT);
    json_decref(merged);
    int rc = policy_load(&c->pol, text, strlen(text), e);
    free(text);
    return rc;
}

static void reply_err(struct evhttp_request *req, int code, const char *field, const char *msg)
{
    struct ferr e;
    ferr_set(&e, code, field, "%s", msg);
    httpd_reply_err(req, &e);
}

static void reply_status_err(struct evhttp_request *req, int status, const char *code,
                             const char *msg)
{
    httpd_reply_json(req, status,
                     json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

static void audit_fill(struct store_audit *a, const struct store_token *who, const char *action,
                       const char *target, bool allowed)
{
    memset(a, 0, sizeof(*a));
    a->time_ms = coord_now_ms();
    snprintf(a->subject, sizeof(a->subject), "%s@%s", who->user, who->project);
    snprintf(a->action, sizeof(a->action), "%s", action);
    snprintf(a->target, sizeof(a->target), "%s", target ? target : "");
    snprintf(a->decision, sizeof(a->decision), "%s", allowed ? "allow" : "deny");
}

void coord_audit_read(struct coord *c, const struct store_token *who, const char *action,
                      const char *target, bool allowed)
{
    struct store_audit a;
    struct ferr e = {0};
    audit_fill(&a, who, action, target, allowed);
    if (store_audit_defer(c->st, &a, &e) != 0)
        log_error("api", "msg=\"audit queue failed\" err=\"%s\"", e.msg);
    log_info("audit", "subject=%s action=%s target=%s decision=%s", a.subject, action,
             a.target[0] ? a.target : "-", a.decision);
}

/* Decides whether who may do action on the target described by
 * project_id (may be NULL) and target (for the audit, e.g. "host/h1"),
 * records the decision in the audit table — before the reply for writes,
 * through the deferred queue when read is true — and on a denial replies
 * 403. Returns true when allowed. */
static bool authorise(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                      const char *action, const char *project_id, const char *target, bool read)
{
    char roles_buf[STORE_ROLES_MAX + 1];
    const char *roles[AUTH_ROLES_MAX];
    snprintf(roles_buf, sizeof(roles_buf), "%s", who->roles);
    size_t nroles = auth_split_roles(roles_buf, roles, AUTH_ROLES_MAX);
    struct policy_subject subj = {who->user, who->project, roles, nroles};
    struct policy_kv kv[] = {{"project_id", project_id}};
    struct policy_target tgt = {kv, project_id ? 1 : 0};
    bool allowed = false;
    if (policy_check(&c->pol, action, &subj, &tgt, &allowed) != 0)
        allowed = false; /* no rule: deny */
    if (read) {
        coord_audit_read(c, who, action, target, allowed);
    } else {
        struct store_audit a;
        struct ferr e = {0};
        audit_fill(&a, who, action, target, allowed);
        if (store_audit_append(c->st, &a, &e) != 0)
            log_error("api", "msg=\"audit write failed\" err=\"%s\"", e.msg);
        log_info("audit", "subject=%s action=%s target=%s decision=%s", a.subject, action,
                 a.target[0] ? a.target : "-", a.decision);
    }
    if (!allowed)
        reply_status_err(req, 403, "forbidden", "the policy does not allow this action");
    return allowed;
}

static json_t *host_json(const struct store_host *h, const struct store_instance *inst, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        if (strcmp(inst[i].host, h->name) != 0)
            continue;
        json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:I}", "name", inst[i].name,
                                              "project_id", inst[i].project_id, "memory_mib",
                                              (json_int_t)inst[i].memory_mib, "vcpus",
                                              (json_int_t)inst[i].vcpus));
    }
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "name", h->name,
                     "agent_url", h->url, "ram_mib", (json_int_t)h->ram_mib, "vcpus",
                     (json_int_t)h->vcpus, "state", h->state, "last_heartbeat",
                     sse_time_json(h->last_heartbeat_ms), "registered",
                     sse_time_json(h->registered_ms), "labels", place_labels_json(h->labels),
                     "cordon", h->cordon[0] ? json_string(h->cordon) : json_null(), "maintenance",
                     h->maint[0] ? json_string(h->maint) : json_null(), "instances", list);
}

/* Appends event type about subject with payload (stolen) inside the open
 * transaction. */
static int emit(struct coord *c, const char *type, const char *subject, json_t *payload,
                int64_t now_ms, int64_t *seq, struct ferr *e)
{
    char *text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    struct store_event ev = {.time_ms = now_ms, .payload = text, .version = EVENT_VERSION};
    snprintf(ev.type, sizeof(ev.type), "%s", type);
    snprintf(ev.subject, sizeof(ev.subject), "%s", subject);
    int rc = store_event_append(c->st, &ev, seq, e);
    free(text);
    return rc;
}

static void get_health(struct coord *c, struct evhttp_request *req)
{
    struct ferr e = {0};
    int v = 0;
    if (store_schema_version(c->st, &v, &e) != 0)
        return httpd_reply_err(req, &e);
    httpd_reply_json(req, 200, json_pack("{s:s, s:i}", "status", "ok", "schema_version", v));
}

static void register_host(struct coord *c, struct evhttp_request *req,
                          const struct store_token *who)
{
    struct ferr e = {0};
    json_t *body = NULL;
    struct store_host h = {0}, old;
    struct store_instance *inst = NULL;
    size_t n = 0;
    int created = 0;
    int64_t now = coord_now_ms(), seq = 0;
    if (httpd_body_json(req, 0, &body, &e) != 0 || hostreq_register_parse(body, &h, &inst, &n, &e) != 0) {
        json_decref(body);
        return httpd_reply_err(req, &e);
    }
    json_decref(body);
    char target[STORE_SUBJECT_MAX + 1];
    snprintf(target, sizeof(target), "host/%s", h.name);
    if (!authorise(c, req, who, "host:register", NULL, target, false)) {
        free(inst);
        return;
    }
    snprintf(h.state, sizeof(h.state), "up");
    h.last_heartbeat_ms = now;
    int was_down = 0;
    if (store_tx_begin(c->st, &e) != 0)
        goto fail;
    if (store_host_get(c->st, h.name, &old, NULL) == 0)
        was_down = strcmp(old.state, "down") == 0;
    if (store_host_register(c->st, &h, inst, n, &created, &e) != 0 ||
        emit(c, "host.registered", target,
             json_pack("{s:s, s:s, s:I, s:I, s:I, s:b}", "host", h.name, "agent_url", h.url,
                       "ram_mib", (json_int_t)h.ram_mib, "vcpus", (json_int_t)h.vcpus, "instances",
                       (json_int_t)n, "new", created),
             now, &seq, &e) != 0 ||
        (was_down &&
         emit(c, "host.up", target, json_pack("{s:s}", "host", h.name), now, &seq, &e) != 0) ||
        store_tx_commit(c->st, &e) != 0)
        goto fail;
    log_info("api", "msg=\"host registered\" host=%s instances=%zu new=%d", h.name, n, created);
    struct store_host got;
    struct store_instance *list = NULL;
    size_t ln = 0;
    if (store_host_get(c->st, h.name, &got, &e) != 0 ||
        store_instance_list(c->st, h.name, &list, &ln, &e) != 0)
        goto fail;
    httpd_reply_json(req, created ? 201 : 200, host_json(&got, list, ln));
    free(list);
    free(inst);
    return;
fail:
    store_tx_rollback(c->st);
    free(inst);
    httpd_reply_err(req, &e);
}

static void heartbeat(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                      const char *name)
{
    struct ferr e = {0};
    json_t *body = NULL;
    if (hostreq_heartbeat_check(name, NULL, &e) != 0)
        return httpd_reply_err(req, &e);
    if (httpd_body_json(req, 1, &body, &e) != 0 || hostreq_heartbeat_check(name, body, &e) != 0) {
        json_decref(body);
        return httpd_reply_err(req, &e);
    }
    json_decref(body);
    char target[STORE_SUBJECT_MAX + 1];
    snprintf(target, sizeof(target), "host/%s", name);
    if (!authorise(c, req, who, "host:heartbeat", NULL, target, false))
        return;
    struct store_host h;
    int64_t now = coord_now_ms();
    if (store_tx_begin(c->st, &e) != 0)
        return httpd_reply_err(req, &e);
    if (store_host_get(c->st, name, &h, &e) != 0)
        goto fail;
    bool was_down = strcmp(h.state, "down") == 0;
    if (store_host_update(c->st, name, "up", now, &e) != 0 ||
        (was_down &&
         emit(c, "host.up", target, json_pack("{s:s}", "host", name), now, NULL, &e) != 0) ||
        store_tx_commit(c->st, &e) != 0)
        goto fail;
    if (was_down)
        log_info("api", "msg=\"host up again\" host=%s", name);
    httpd_reply_json(req, 200,
                     json_pack("{s:s, s:s, s:o, s:I}", "name", name, "state", "up",
                               "last_heartbeat", sse_time_json(now), "heartbeat_interval_ms",
                               (json_int_t)c->cfg.heartbeat_interval_ms));
    return;
fail:
    store_tx_rollback(c->st);
    httpd_reply_err(req, &e);
}

/* POST /v1/hosts/NAME/cordon {reason?} and /uncordon: an operator keeps a
 * host from being chosen as a migration destination (place.c), or lets it
 * be chosen again. A plan's own hold on a host (drain, maintenance) is
 * separate and not touched. */
static void cordon_host(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                        const char *name, bool on)
{
    static const char *const keys[] = {"reason", NULL};
    struct ferr e = {0};
    json_t *body = NULL;
    char *reason = NULL;
    if (!jsonin_name_ok(name))
        return reply_err(req, FERR_INVAL, "name", "host name must be of [A-Za-z0-9_.-]");
    if (httpd_body_json(req, 1, &body, &e) != 0 || jsonin_only_keys(body, on ? keys : keys + 1,
                                                                    &e) != 0 ||
        jsonin_str(body, "reason", 200, false, &reason, &e) != 0) {
        json_decref(body);
        return httpd_reply_err(req, &e);
    }
    json_decref(body);
    char target[STORE_SUBJECT_MAX + 1];
    snprintf(target, sizeof(target), "host/%s", name);
    if (!authorise(c, req, who, on ? "host:cordon" : "host:uncordon", NULL, target, false)) {
        free(reason);
        return;
    }
    char text[STORE_CORDON_MAX + 1] = "";
    if (on)
        snprintf(text, sizeof(text), "%s%s%s", who->user, reason && reason[0] ? ": " : "",
                 reason ? reason : "");
    free(reason);
    struct store_host h;
    int64_t now = coord_now_ms();
    if (store_tx_begin(c->st, &e) != 0)
        return httpd_reply_err(req, &e);
    if (store_host_set_cordon(c->st, name, text, NULL, &e) != 0 ||
        emit(c, on ? "host.cordoned" : "host.uncordoned", target,
             json_pack("{s:s, s:s, s:s}", "host", name, "by", who->user, "reason", text), now,
             NULL, &e) != 0 ||
        store_tx_commit(c->st, &e) != 0 || store_host_get(c->st, name, &h, &e) != 0) {
        store_tx_rollback(c->st);
        return httpd_reply_err(req, &e);
    }
    log_info("api", "msg=\"host %s\" host=%s by=%s", on ? "cordoned" : "uncordoned", name,
             who->user);
    struct store_instance *list = NULL;
    size_t ln = 0;
    if (store_instance_list(c->st, name, &list, &ln, &e) != 0)
        return httpd_reply_err(req, &e);
    httpd_reply_json(req, 200, host_json(&h, list, ln));
    free(list);
}

static void list_hosts(struct coord *c, struct evhttp_request *req, const struct store_token *who)
{
    struct ferr e = {0};
    struct store_host *hosts = NULL;
    struct store_instance *inst = NULL;
    size_t nh = 0, ni = 0;
    if (!authorise(c, req, who, "host:list", NULL, "hosts", true))
        return;
    if (store_host_list(c->st, &hosts, &nh, &e) != 0 ||
        store_instance_list(c->st, NULL, &inst, &ni, &e) != 0) {
        free(hosts);
        return httpd_reply_err(req, &e);
    }
    json_t *a = json_array();
    for (size_t i = 0; i < nh; i++)
        json_array_append_new(a, host_json(&hosts[i], inst, ni));
    free(hosts);
    free(inst);
    httpd_reply_json(req, 200, json_pack("{s:o}", "hosts", a));
}

static int query_i64(struct evhttp_request *req, const char *key, int64_t min, int64_t max,
                     int64_t *out, struct ferr *e)
{
    char buf[32];
    if (httpd_query(req, key, buf, sizeof(buf)) != 0)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || end == buf || *end || v < min || v > max)
        return ferr_set(e, FERR_INVAL, key, "%s must be an integer in %lld..%lld", key,
                        (long long)min, (long long)max);
    *out = v;
    return 0;
}

static void list_events(struct coord *c, struct evhttp_request *req, const struct store_token *who)
{
    struct ferr e = {0};
    int64_t since = 0, limit = STORE_EVENTS_PAGE, last = 0;
    if (query_i64(req, "since", 0, INT64_MAX, &since, &e) != 0 ||
        query_i64(req, "limit", 1, STORE_EVENTS_PAGE, &limit, &e) != 0)
        return httpd_reply_err(req, &e);
    struct store_event *ev = NULL;
    size_t n = 0;
    if (store_events_since(c->st, since, (size_t)limit, &ev, &n, &e) != 0 ||
        store_event_last_seq(c->st, &last, &e) != 0) {
        store_events_free(ev, n);
        return httpd_reply_err(req, &e);
    }
    /* Each event is checked against events:read; inventory events carry no
     * project, so only rule:admin sees them with the default policy. */
    char roles_buf[STORE_ROLES_MAX + 1];
    const char *roles[AUTH_ROLES_MAX];
    snprintf(roles_buf, sizeof(roles_buf), "%s", who->roles);
    size_t nroles = auth_split_roles(roles_buf, roles, AUTH_ROLES_MAX);
    struct policy_subject subj = {who->user, who->project, roles, nroles};
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        json_t *payload = json_loads(ev[i].payload ? ev[i].payload : "{}", 0, &je);
        const char *proj = json_string_value(json_object_get(payload, "project_id"));
        struct policy_kv kv[] = {{"project_id", proj}};
        struct policy_target tgt = {kv, 1};
        bool ok = false;
        if (policy_check(&c->pol, "events:read", &subj, &tgt, &ok) != 0 || !ok) {
            json_decref(payload);
            continue;
        }
        bool hosts = false; /* migration events name hosts only for migration:show_hosts */
        if (strncmp(ev[i].type, "migration.", 10) == 0 &&
            (policy_check(&c->pol, "migration:show_hosts", &subj, &tgt, &hosts) != 0 || !hosts)) {
            json_object_del(payload, "source");
            json_object_del(payload, "destination");
        }
        json_array_append_new(
            a, json_pack("{s:I, s:s, s:o, s:s, s:o, s:i}", "seq", (json_int_t)ev[i].seq, "type",
                         ev[i].type, "time", sse_time_json(ev[i].time_ms), "subject", ev[i].subject,
                         "payload", payload ? payload : json_object(), "version", ev[i].version));
    }
    int64_t next = n ? ev[n - 1].seq : since;
    store_events_free(ev, n);
    /* one read record per request (each event was filtered by events:read
     * above): deferred like every read decision */
    char target[64];
    snprintf(target, sizeof(target), "events?since=%lld", (long long)since);
    coord_audit_read(c, who, "events:read", target, true);
    httpd_reply_json(req, 200,
                     json_pack("{s:o, s:I, s:I}", "events", a, "next", (json_int_t)next, "last_seq",
                               (json_int_t)last));
}

int coord_sweep_hosts(struct coord *c, int64_t now_ms, int *marked, struct ferr *e)
{
    struct store_host *hosts = NULL;
    size_t n = 0;
    int cnt = 0, rc;
    int64_t window = (int64_t)c->cfg.heartbeat_interval_ms * c->cfg.heartbeat_missed;
    if (marked)
        *marked = 0;
    if ((rc = store_tx_begin(c->st, e)) != 0)
        return rc;
    if ((rc = store_host_list(c->st, &hosts, &n, e)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct store_host *h = &hosts[i];
        int64_t since = h->last_heartbeat_ms > c->started_ms ? h->last_heartbeat_ms : c->started_ms;
        if (strcmp(h->state, "up") != 0 || now_ms - since <= window)
            continue;
        char subject[STORE_SUBJECT_MAX + 1];
        snprintf(subject, sizeof(subject), "host/%s", h->name);
        if ((rc = store_host_update(c->st, h->name, "down", -1, e)) != 0 ||
            (rc = emit(c, "host.down", subject,
                       json_pack("{s:s, s:o, s:I}", "host", h->name, "last_heartbeat",
                                 sse_time_json(h->last_heartbeat_ms), "missed_beats",
                                 (json_int_t)((now_ms - h->last_heartbeat_ms) /
                                              (int64_t)c->cfg.heartbeat_interval_ms)),
                       now_ms, NULL, e)) != 0)
            goto fail;
        log_warn("inventory", "msg=\"host down: heartbeats missed\" host=%s silent_ms=%lld",
                 h->name, (long long)(now_ms - h->last_heartbeat_ms));
        cnt++;
    }
    if ((rc = store_tx_commit(c->st, e)) != 0)
        goto fail;
    free(hosts);
    if (marked)
        *marked = cnt;
    return 0;
fail:
    store_tx_rollback(c->st);
    free(hosts);
    return rc;
}

void coord_api_handle(struct evhttp_request *req, void *arg)
{
    struct coord *c = arg;
    char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX];
    int n = httpd_path(req, seg);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool get = method == EVHTTP_REQ_GET, post = method == EVHTTP_REQ_POST;
    if (n < 0)
        return reply_err(req, FERR_INVAL, "path", "malformed or overlong path");
    if (n < 2 || strcmp(seg[0], "v1") != 0)
        return reply_err(req, FERR_NOTFOUND, "path", "no such endpoint");
    const char *r = seg[1];
    if (n == 2 && strcmp(r, "health") == 0 && get)
        return get_health(c, req);
    struct store_token who;
    struct ferr e = {0};
    const char *authz = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    int rc = auth_lookup(c->st, authz, &who, &e);
    if (rc == FERR_NOTFOUND)
        return reply_status_err(req, 401, "unauthorised", "a valid bearer token is required");
    if (rc != 0)
        return httpd_reply_err(req, &e);
    if (n == 2 && strcmp(r, "hosts") == 0 && get)
        return list_hosts(c, req, &who);
    if (n == 3 && strcmp(r, "hosts") == 0 && strcmp(seg[2], "register") == 0 && post)
        return register_host(c, req, &who);
    if (n == 4 && strcmp(r, "hosts") == 0 && strcmp(seg[3], "heartbeat") == 0 && post)
        return heartbeat(c, req, &who, seg[2]);
    if (n == 4 && strcmp(r, "hosts") == 0 &&
        (strcmp(seg[3], "cordon") == 0 || strcmp(seg[3], "uncordon") == 0) && post)
        return cordon_host(c, req, &who, seg[2], strcmp(seg[3], "cordon") == 0);
    if (n == 2 && strcmp(r, "events") == 0 && get)
        return list_events(c, req, &who);
    if (n >= 2 && n <= 4 && strcmp(r, "migrations") == 0)
        return coordmig_handle(c, req, &who, seg, n);
    if (n >= 2 && n <= 4 && strcmp(r, "plans") == 0)
        return coordplans_handle(c, req, &who, seg, n);
    if (n >= 2 && n <= 4 && strcmp(r, "consents") == 0)
        return coordconsent_handle(c, req, &who, seg, n);
    reply_err(req, FERR_NOTFOUND, "path", "no such endpoint");
}

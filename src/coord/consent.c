/* consent — consent requests in ferryd (see consent.h, docs/FERRYD.md
 * "Consent"). */
#include "coord/consent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord/agentc.h"
#include "coord/auth.h"
#include "coord/migrations.h"
#include "coord/place.h"
#include "coord/sse.h"
#include "util/jsonin.h"
#include "util/log.h"
#include "util/xalloc.h"

#define EVENT_VERSION 1 /* payload version of the consent events */

/* ---- small helpers ------------------------------------------------------ */

static void reply_code(struct evhttp_request *req, int status, const char *code, const char *field,
                       const char *msg)
{
    httpd_reply_json(
        req, status,
        json_pack("{s:{s:s, s:s, s:s}}", "error", "code", code, "message", msg, "field", field));
}

static const char *detail_str(const struct store_consent *k, const char *key, char *buf, size_t n)
{
    json_t *d = k->detail_json ? json_loads(k->detail_json, 0, NULL) : NULL;
    const char *v = json_string_value(json_object_get(d, key));
    snprintf(buf, n, "%s", v ? v : "");
    json_decref(d);
    return buf;
}

/* Decides (and, when audit, records) whether who may do action on consent
 * k (target: its project, migration, instance). */
static bool decide(struct coord *c, const struct store_token *who, const char *action,
                   const struct store_consent *k, bool audit)
{
    char roles_buf[STORE_ROLES_MAX + 1], inst[STORE_NAME_MAX + 1];
    const char *roles[AUTH_ROLES_MAX];
    snprintf(roles_buf, sizeof(roles_buf), "%s", who->roles);
    size_t nroles = auth_split_roles(roles_buf, roles, AUTH_ROLES_MAX);
    struct policy_subject subj = {who->user, who->project, roles, nroles};
    detail_str(k, "instance", inst, sizeof(inst));
    struct policy_kv kv[] = {{"project_id", k->project},
                             {"migration", k->migration_id},
                             {"instance", inst},
                             {"consent", k->id}};
    struct policy_target tgt = {kv, 4};
    bool allowed = false;
    if (policy_check(&c->pol, action, &subj, &tgt, &allowed) != 0)
        allowed = false;
    if (!audit)
        return allowed;
    char target[STORE_SUBJECT_MAX + 1];
    snprintf(target, sizeof(target), "consent/%s", k->id);
    if (strcmp(action, "consent:show") == 0) {
        coord_audit_read(c, who, action, target, allowed); /* a read: deferred */
        return allowed;
    }
    struct store_audit a = {.time_ms = coord_now_ms()};
    snprintf(a.subject, sizeof(a.subject), "%s@%s", who->user, who->project);
    snprintf(a.action, sizeof(a.action), "%s", action);
    snprintf(a.target, sizeof(a.target), "%s", target);
    snprintf(a.decision, sizeof(a.decision), "%s", allowed ? "allow" : "deny");
    struct ferr e = {0};
    if (store_audit_append(c->st, &a, &e) != 0)
        log_error("api", "msg=\"audit write failed\" err=\"%s\"", e.msg);
    log_info("audit", "subject=%s action=%s target=%s decision=%s", a.subject, action, a.target,
             a.decision);
    return allowed;
}

/* Appends event type about consent k with extra (stolen, may be NULL) in
 * the payload, inside the caller's transaction. */
static int emit(struct coord *c, const char *type, const struct store_consent *k, json_t *extra,
                int64_t now_ms, struct ferr *e)
{
    char inst[STORE_NAME_MAX + 1];
    json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", k->migration_id, "consent", k->id,
                          "instance", detail_str(k, "instance", inst, sizeof(inst)), "project_id",
                          k->project, "step", k->step);
    if (extra) {
        json_object_update(p, extra);
        json_decref(extra);
    }
    char *text = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    struct store_event ev = {.time_ms = now_ms, .payload = text, .version = EVENT_VERSION};
    snprintf(ev.type, sizeof(ev.type), "%s", type);
    snprintf(ev.subject, sizeof(ev.subject), "consent/%s", k->id);
    int rc = store_event_append(c->st, &ev, NULL, e);
    free(text);
    return rc;
}

static json_t *consent_json(const struct store_consent *k)
{
    char inst[STORE_NAME_MAX + 1], act[16];
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", k->id, "migration_id", k->migration_id,
                  "instance", detail_str(k, "instance", inst, sizeof(inst)), "step", k->step,
                  "state", k->state, "project_id", k->project);
    json_object_set_new(o, "requested", sse_time_json(k->requested_ms));
    json_object_set_new(o, "deadline", sse_time_json(k->deadline_ms));
    json_object_set_new(o, "decided", k->decided_ms ? sse_time_json(k->decided_ms) : json_null());
    json_object_set_new(o, "decided_by", json_string(k->decided_by));
    json_object_set_new(o, "on_behalf", json_boolean(k->on_behalf));
    json_object_set_new(o, "reason", json_string(k->reason));
    detail_str(k, "timeout_action", act, sizeof(act));
    json_object_set_new(o, "timeout_action", act[0] ? json_string(act) : json_null());
    detail_str(k, "on_timeout", act, sizeof(act)); /* planned: override or configuration */
    json_object_set_new(o, "on_timeout", act[0] ? json_string(act) : json_null());
    json_t *d = k->detail_json ? json_loads(k->detail_json, 0, NULL) : NULL;
    json_t *ts = json_object_get(d, "timeout_s");
    json_object_set_new(o, "timeout_s", json_is_integer(ts) ? json_incref(ts) : json_null());
    json_decref(d);
    return o;
}

/* ---- forwarding answers to the agent ------------------------------------ */

static void on_forwarded(int status, json_t *body, const struct ferr *e, void *arg)
{
    char *cid = arg;
    const char *msg = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    if (status == 200)
        log_info("consent", "msg=\"answer delivered to the agent\" consent=%s", cid);
    else
        log_warn("consent",
                 "msg=\"answer not taken by the agent (retried while it still asks)\" consent=%s "
                 "status=%d err=\"%s\"",
                 cid, status, e ? e->msg : (msg ? msg : ""));
    free(cid);
}

static void forward(struct coord *c, const struct store_consent *k, bool granted)
{
    json_t *b = json_pack("{s:s, s:b}", "step", k->step, "granted", granted);
    struct ferr e = {0};
    char *cid = xstrdup(k->id);
    if (coordmig_agent_send(c, k->migration_id, "POST", "consent", b, on_forwarded, cid, &e) != 0) {
        log_warn("consent", "msg=\"answer not forwarded\" consent=%s err=\"%s\"", k->id, e.msg);
        free(cid);
    }
    json_decref(b);
}

/* The answer k carries for the agent: 1 grant, 0 refuse, -1 none yet. */
static int answer_of(const struct store_consent *k)
{
    if (strcmp(k->state, "granted") == 0)
        return 1;
    if (strcmp(k->state, "refused") == 0)
        return 0;
    return -1;
}

/* ---- observation and timeouts ------------------------------------------- */

static int new_id(char out[STORE_IDENT_MAX + 1], struct ferr *e)
{
    char tok[AUTH_TOKEN_LEN + 1];
    int rc = auth_token_new(tok, e);
    if (rc)
        return rc;
    snprintf(out, STORE_IDENT_MAX + 1, "con-%.16s", tok);
    return 0;
}

/* The consent override of migration id's create request ({timeout_s?,
 * timeout_action?}, new reference), or NULL when it has none. */
static json_t *migration_override(struct coord *c, const char *id)
{
    struct store_migration m;
    if (store_migration_get(c->st, id, &m, NULL) != 0)
        return NULL;
    json_t *d = m.detail_json ? json_loads(m.detail_json, 0, NULL) : NULL;
    store_migration_clear(&m);
    json_t *k = json_object_get(d, "consent");
    k = json_is_object(k) ? json_incref(k) : NULL;
    json_decref(d);
    return k;
}

void coordconsent_observe(struct coord *c, const char *id, const char *instance,
                          const char *project, const json_t *a)
{
    const json_t *pend = json_object_get(a, "consent_pending");
    if (json_array_size(pend) == 0)
        return;
    struct store_consent_filter f = {.migration_id = id};
    struct store_consent *k = NULL;
    size_t n = 0;
    struct ferr e = {0};
    if (store_consent_list(c->st, &f, 64, &k, &n, &e) != 0) {
        log_error("consent", "msg=\"cannot read consents\" id=%s err=\"%s\"", id, e.msg);
        return;
    }
    size_t i;
    json_t *sv;
    json_array_foreach(pend, i, sv)
    {
        const char *step = json_string_value(sv);
        if (!consent_step_ok(step))
            continue;
        const struct store_consent *have = NULL;
        for (size_t j = 0; j < n && !have; j++)
            if (strcmp(k[j].step, step) == 0)
                have = &k[j]; /* newest first */
        if (have) {
            int ans = answer_of(have);
            if (ans >= 0)
                forward(c, have, ans == 1); /* decided; the agent has not heard yet */
            continue;
        }
        int64_t now = coord_now_ms();
        uint32_t timeout_s = c->cfg.consent_timeout_s;
        const char *action = c->cfg.consent_timeout_action;
        json_t *ov = migration_override(c, id); /* the create request's, or NULL */
        json_t *ot = json_object_get(ov, "timeout_s"), *oa = json_object_get(ov, "timeout_action");
        if (json_is_integer(ot) && json_integer_value(ot) > 0)
            timeout_s = (uint32_t)json_integer_value(ot);
        if (json_is_string(oa))
            action = json_string_value(oa);
        struct store_consent r;
        memset(&r, 0, sizeof(r));
        if (new_id(r.id, &e) != 0)
            break;
        snprintf(r.migration_id, sizeof(r.migration_id), "%s", id);
        snprintf(r.step, sizeof(r.step), "%s", step);
        snprintf(r.state, sizeof(r.state), "pending");
        snprintf(r.project, sizeof(r.project), "%s", project);
        r.requested_ms = now;
        r.deadline_ms = now + (int64_t)timeout_s * 1000;
        json_t *d = json_pack("{s:s, s:s, s:I, s:s, s:b}", "instance", instance, "agent_migration",
                              json_string_value(json_object_get(a, "id"))
                                  ? json_string_value(json_object_get(a, "id"))
                                  : "",
                              "timeout_s", (json_int_t)timeout_s, "on_timeout", action,
                              "override", ov != NULL);
        json_decref(ov);
        r.detail_json = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        int rc = store_tx_begin(c->st, &e);
        if (rc == 0 && ((rc = store_consent_insert(c->st, &r, &e)) != 0 ||
                        (rc = emit(c, "migration.consent_requested", &r,
                                   json_pack("{s:o, s:I, s:s}", "deadline",
                                             sse_time_json(r.deadline_ms), "timeout_s",
                                             (json_int_t)timeout_s, "on_timeout", action),
                                   now, &e)) != 0 ||
                        (rc = store_tx_commit(c->st, &e)) != 0))
            store_tx_rollback(c->st);
        if (rc == 0)
            log_info("consent", "msg=\"consent requested\" consent=%s id=%s step=%s", r.id, id,
                     step);
        else
            log_error("consent", "msg=\"cannot record consent request\" id=%s err=\"%s\"", id,
                      e.msg);
        store_consent_clear(&r);
    }
    store_consents_free(k, n);
}

/* Writes k's new state with event type (+ extra, stolen) and optionally a
 * second event type2 (+ extra2, stolen) in one transaction. */
static int settle(struct coord *c, struct store_consent *k, const char *type, json_t *extra,
                  const char *type2, json_t *extra2, int64_t now, struct ferr *e)
{
    int rc = store_tx_begin(c->st, e);
    if (rc != 0) {
        json_decref(extra);
        json_decref(extra2);
        return rc;
    }
    if ((rc = store_consent_update(c->st, k, e)) != 0) {
        json_decref(extra);
        json_decref(extra2);
    } else if ((rc = emit(c, type, k, extra, now, e)) != 0) {
        json_decref(extra2);
    } else if (type2) {
        rc = emit(c, type2, k, extra2, now, e);
    } else {
        json_decref(extra2);
    }
    if (rc == 0)
        rc = store_tx_commit(c->st, e);
    if (rc != 0)
        store_tx_rollback(c->st);
    return rc;
}

static void set_detail(struct store_consent *k, const char *key, json_t *v)
{
    json_t *d = k->detail_json ? json_loads(k->detail_json, 0, NULL) : NULL;
    if (!json_is_object(d)) {
        json_decref(d);
        d = json_object();
    }
    json_object_set_new(d, key, v);
    free(k->detail_json);
    k->detail_json = json_dumps(d, JSON_COMPACT);
    json_decref(d);
}

static void time_out(struct coord *c, struct store_consent *k, int64_t now)
{
    enum consent_timeout_action act = CONSENT_TIMEOUT_WAIT;
    /* the action and timeout recorded with the request (the migration's
       override or the configuration then); older requests: the config */
    char planned[16];
    uint32_t timeout_s = c->cfg.consent_timeout_s;
    detail_str(k, "on_timeout", planned, sizeof(planned));
    json_t *kd = k->detail_json ? json_loads(k->detail_json, 0, NULL) : NULL;
    if (json_integer_value(json_object_get(kd, "timeout_s")) > 0)
        timeout_s = (uint32_t)json_integer_value(json_object_get(kd, "timeout_s"));
    json_decref(kd);
    if (consent_timeout_action_parse(planned[0] ? planned : c->cfg.consent_timeout_action, &act) !=
        0)
        act = CONSENT_TIMEOUT_WAIT;
    static const char *const names[] = {"wait", "proceed", "abort"};
    struct ferr e = {0};
    k->decided_ms = act == CONSENT_TIMEOUT_WAIT ? 0 : now;
    snprintf(k->decided_by, sizeof(k->decided_by), "%s",
             act == CONSENT_TIMEOUT_WAIT ? "" : "policy");
    snprintf(k->reason, sizeof(k->reason), "no answer within %u s; consent_timeout_action %s",
             timeout_s, names[act]);
    snprintf(k->state, sizeof(k->state), "%s",
             act == CONSENT_TIMEOUT_PROCEED ? "granted" : "expired");
    set_detail(k, "timeout_action", json_string(names[act]));
    json_t *x = json_pack("{s:s, s:s}", "action", names[act], "reason", k->reason);
    int rc = act == CONSENT_TIMEOUT_PROCEED
                 ? settle(c, k, "migration.consent_expired", x, "migration.consent_granted",
                          json_pack("{s:s, s:b, s:s}", "by", "policy", "on_behalf", 0, "reason",
                                    k->reason),
                          now, &e)
                 : settle(c, k, "migration.consent_expired", x, NULL, NULL, now, &e);
    if (rc != 0) {
        log_error("consent", "msg=\"cannot record timeout\" consent=%s err=\"%s\"", k->id, e.msg);
        return;
    }
    log_info("consent", "msg=\"consent timed out\" consent=%s id=%s action=%s", k->id,
             k->migration_id, names[act]);
    if (act == CONSENT_TIMEOUT_PROCEED) {
        forward(c, k, true);
    } else if (act == CONSENT_TIMEOUT_ABORT) {
        if (coordmig_cancel(c, k->migration_id, "policy", NULL, &e) != 0)
            log_warn("consent", "msg=\"timeout abort: cannot cancel\" id=%s err=\"%s\"",
                     k->migration_id, e.msg);
    }
}

void coordconsent_tick(struct coord *c, int64_t now_ms)
{
    struct store_consent_filter f = {.state = "pending"};
    struct store_consent *k = NULL;
    size_t n = 0;
    struct ferr e = {0};
    if (store_consent_list(c->st, &f, STORE_LIST_MAX, &k, &n, &e) != 0) {
        log_error("consent", "msg=\"cannot read consents\" err=\"%s\"", e.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct store_migration m;
        bool ended = true;
        if (store_migration_get(c->st, k[i].migration_id, &m, NULL) == 0) {
            ended = place_state_terminal(m.state);
            store_migration_clear(&m);
        }
        if (ended) {
            snprintf(k[i].state, sizeof(k[i].state), "expired");
            snprintf(k[i].reason, sizeof(k[i].reason), "the migration ended before an answer");
            k[i].decided_ms = now_ms;
            snprintf(k[i].decided_by, sizeof(k[i].decided_by), "policy");
            if (settle(c, &k[i], "migration.consent_expired",
                       json_pack("{s:s, s:s}", "action", "none", "reason", k[i].reason), NULL, NULL,
                       now_ms, &e) != 0)
                log_error("consent", "msg=\"cannot expire\" consent=%s err=\"%s\"", k[i].id, e.msg);
        } else if (now_ms >= k[i].deadline_ms) {
            time_out(c, &k[i], now_ms);
        }
    }
    store_consents_free(k, n);
}

/* ---- API ----------------------------------------------------------------- */

/* Loads consent id visible to who (consent:show), else replies 404. */
static bool load_visible(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                         const char *id, struct store_consent *k)
{
    memset(k, 0, sizeof(*k));
    if (strlen(id) > STORE_IDENT_MAX || store_consent_get(c->st, id, k, NULL) != 0) {
        reply_code(req, 404, "not_found", "id", "no such consent request");
        return false;
    }
    if (!decide(c, who, "consent:show", k, true)) {
        store_consent_clear(k);
        reply_code(req, 404, "not_found", "id", "no such consent request");
        return false;
    }
    return true;
}

static void list(struct coord *c, struct evhttp_request *req, const struct store_token *who)
{
    struct ferr e = {0};
    char qs[2][STORE_IDENT_MAX + 2];
    static const char *const keys[] = {"state", "migration"};
    const char *vals[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++)
        if (httpd_query(req, keys[i], qs[i], sizeof(qs[i])) == 0)
            vals[i] = qs[i];
    if (consent_filter_check(vals[0], vals[1], &e) != 0)
        return httpd_reply_err(req, &e);
    struct store_consent_filter f = {.state = vals[0], .migration_id = vals[1]};
    struct store_consent *k = NULL;
    size_t n = 0;
    if (store_consent_list(c->st, &f, STORE_LIST_MAX, &k, &n, &e) != 0)
        return httpd_reply_err(req, &e);
    json_t *a = json_array();
    for (size_t i = 0, shown = 0; i < n && shown < CONSENT_LIST_MAX; i++) {
        if (!decide(c, who, "consent:list", &k[i], false))
            continue;
        json_array_append_new(a, consent_json(&k[i]));
        shown++;
    }
    store_consents_free(k, n);
    coord_audit_read(c, who, "consent:list", "consents", true); /* a read: deferred */
    httpd_reply_json(req, 200, json_pack("{s:o}", "consents", a));
}

static void answer(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                   const char *id, bool granted)
{
    struct ferr e = {0};
    json_t *body = NULL;
    struct consent_decision d;
    if (httpd_body_json(req, 1, &body, &e) != 0 || consent_decision_parse(body, &d, &e) != 0) {
        json_decref(body);
        return httpd_reply_err(req, &e);
    }
    json_decref(body);
    struct store_consent k;
    if (!load_visible(c, req, who, id, &k))
        return;
    /* A member of the owning project answers for themselves; anyone else
     * only on behalf of the owner (docs/POLICY.md "Consent"). */
    bool member = who->project[0] && strcmp(who->project, k.project) == 0;
    bool ok = decide(c, who, member ? "consent:grant" : "consent:grant_on_behalf", &k, true);
    if (!ok) {
        store_consent_clear(&k);
        return reply_code(req, 403, "forbidden", "", "the policy does not allow this action");
    }
    bool open = strcmp(k.state, "pending") == 0 ||
                (strcmp(k.state, "expired") == 0 && k.decided_by[0] == '\0');
    if (!open) {
        char msg[256];
        snprintf(msg, sizeof(msg), "the consent request is %s%s%s already", k.state,
                 k.decided_by[0] ? " by " : "", k.decided_by);
        store_consent_clear(&k);
        return reply_code(req, 409, "conflict", "state", msg);
    }
    int64_t now = coord_now_ms();
    snprintf(k.state, sizeof(k.state), "%s", granted ? "granted" : "refused");
    snprintf(k.decided_by, sizeof(k.decided_by), "%s", who->user);
    k.decided_ms = now;
    k.on_behalf = !member;
    snprintf(k.reason, sizeof(k.reason), "%s", d.reason);
    if (!member)
        set_detail(&k, "on_behalf_project", json_string(who->project));
    json_t *x =
        json_pack("{s:s, s:b, s:s}", "by", who->user, "on_behalf", !member, "reason", d.reason);
    if (settle(c, &k, granted ? "migration.consent_granted" : "migration.consent_refused", x, NULL,
               NULL, now, &e) != 0) {
        store_consent_clear(&k);
        return reply_code(req, 500, "internal", "", "cannot record the answer");
    }
    log_info("consent", "msg=\"consent %s\" consent=%s id=%s step=%s by=%s@%s on_behalf=%d",
             granted ? "granted" : "refused", k.id, k.migration_id, k.step, who->user, who->project,
             (int)!member);
    forward(c, &k, granted);
    httpd_reply_json(req, 200, consent_json(&k));
    store_consent_clear(&k);
}

void coordconsent_handle(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                         char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX], int n)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool get = method == EVHTTP_REQ_GET, post = method == EVHTTP_REQ_POST;
    if (n == 2 && get)
        return list(c, req, who);
    if (n == 3 && get) {
        struct store_consent k;
        if (!load_visible(c, req, who, seg[2], &k))
            return;
        httpd_reply_json(req, 200, consent_json(&k));
        store_consent_clear(&k);
        return;
    }
    if (n == 4 && post && strcmp(seg[3], "grant") == 0)
        return answer(c, req, who, seg[2], true);
    if (n == 4 && post && strcmp(seg[3], "refuse") == 0)
        return answer(c, req, who, seg[2], false);
    reply_code(req, 404, "not_found", "path", "no such endpoint");
}

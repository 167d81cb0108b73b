/* plans — rolling-maintenance plans (see plans.h, docs/PLANS.md).
 *
 * A plan's hosts walk, group after group:
 *
 *   pending → draining → drained → maintaining → checking → returned
 *
 * Every step is written with its event in one transaction. The executor
 * holds nothing but the requests in flight: which migration of a host's
 * instance is running, failed or was cancelled is read from the migrations
 * table each tick (the newest migration of the instance out of the host
 * since its drain started), so a ferryd crash loses nothing. Migrations are
 * created through ferryd's own API (POST /v1/migrations with the planner's
 * destination), so they get the same checks, records and events as any
 * other. */
#include "coord/plans.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord/agentc.h"
#include "coord/auth.h"
#include "coord/place.h"
#include "coord/plankick.h"
#include "coord/sse.h"
#include "core/planner.h"
#include "util/jsonin.h"
#include "util/log.h"
#include "util/xalloc.h"

#define TICK_MS 1000             /* executor tick, ms */
#define REQ_TIMEOUT_S 10         /* one HTTP request, s */
#define EVENT_VERSION 1          /* payload version of the plan.* events */
#define BACKOFF_BASE_MS 5000     /* first retry of a failed migration after, ms */
#define BACKOFF_CAP_MS 120000    /* longest retry delay, ms */
#define ACTION_DEFAULT_S 600     /* maintenance action timeout, s */
#define HEALTH_DEFAULT_S 120     /* health check: host back within, s */
#define DEFERRAL_DEFAULT_S 300   /* tenant deferral, s */
#define RETRIES_DEFAULT 3        /* failed migrations retried this often */
#define COMMAND_MAX 4096         /* bytes of a maintenance command */
#define HOSTS_MAX 4096           /* target hosts in one request */
#define HOSTS_PAGE_DEFAULT 100   /* hosts in GET /v1/plans/ID when hosts_limit is not given */
#define HOSTS_PAGE_MAX 1000      /* hosts_limit at most */
#define INFLIGHT_MAX 256         /* executor requests in flight */
#define STARTS_PER_TICK 32       /* migrations the executor asks for in one tick */
#define KICK_DELAY_MS 20         /* a kick runs this late, gathering the endings of one burst, ms */
#define PLAN_VCPU_OVERCOMMIT_MAX 16.0 /* vCPUs per physical CPU a plan may allow */
#define PLAN_RAM_OVERCOMMIT_MAX 4.0   /* guest RAM per host RAM a plan may allow */
#define CHECK_GRACE_MS 15000         /* beyond the command's own timeout, ms */
#define CHECK_OUTPUT_MAX 512          /* bytes of a health check's output kept in an alert */

struct preq; /* one request in flight */

struct coordplans {
    struct coord *c;                 /* borrowed */
    struct event *tick;              /* TICK_MS timer */
    char token[AUTH_TOKEN_LEN + 1];  /* ferryd's own admin token (this process) */
    char self_url[96];               /* http://ADDR:PORT of ferryd's API */
    char inflight[INFLIGHT_MAX][96]; /* keys of requests in flight, "" = free */
    /* of an in-flight migration request (key "mig:INSTANCE"): its source and
       destination, counted against the limits until ferryd's answer */
    char inflight_src[INFLIGHT_MAX][STORE_NAME_MAX + 1];
    char inflight_dst[INFLIGHT_MAX][STORE_NAME_MAX + 1];
    int starts;                      /* migrations asked for in this tick */
    struct event *kick;              /* one-shot KICK_DELAY_MS timer: a kicked pass */
    bool kick_armed;                 /* kick is pending */
    struct plan_kick ks;             /* hosts named since the last kicked pass */
};

/* ferryd runs one coordinator per process; the API handler reaches the
 * executor through this pointer (struct coord has no slot for it). */
static struct coordplans *g_plans;

struct preq {
    struct coordplans *cp;
    int slot;                          /* index in cp->inflight */
    char plan[STORE_IDENT_MAX + 1];
    char host[STORE_NAME_MAX + 1];
    char instance[STORE_NAME_MAX + 1]; /* "" for host requests */
};

/* ---- small helpers ------------------------------------------------------ */

static void reply_code(struct evhttp_request *req, int status, const char *code, const char *field,
                       const char *msg)
{
    httpd_reply_json(
        req, status,
        json_pack("{s:{s:s, s:s, s:s}}", "error", "code", code, "message", msg, "field", field));
}

static json_t *load_obj(const char *text)
{
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    return o;
}

/* Replaces *slot (owned JSON text) with the dump of o (borrowed). */
static void set_text(char **slot, const json_t *o)
{
    free(*slot);
    *slot = json_dumps(o, JSON_COMPACT);
}

static bool authorise(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                      const char *action, const char *target)
{
    char roles_buf[STORE_ROLES_MAX + 1];
    const char *roles[AUTH_ROLES_MAX];
    snprintf(roles_buf, sizeof(roles_buf), "%s", who->roles);
    size_t nroles = auth_split_roles(roles_buf, roles, AUTH_ROLES_MAX);
    struct policy_subject subj = {who->user, who->project, roles, nroles};
    struct policy_kv kv[] = {{"plan", target}};
    struct policy_target tgt = {kv, 1};
    bool allowed = false;
    if (policy_check(&c->pol, action, &subj, &tgt, &allowed) != 0)
        allowed = false;
    struct store_audit a = {.time_ms = coord_now_ms()};
    snprintf(a.subject, sizeof(a.subject), "%s@%s", who->user, who->project);
    snprintf(a.action, sizeof(a.action), "%s", action);
    snprintf(a.target, sizeof(a.target), "plan/%s", target ? target : "");
    snprintf(a.decision, sizeof(a.decision), "%s", allowed ? "allow" : "deny");
    struct ferr e = {0};
    if (store_audit_append(c->st, &a, &e) != 0)
        log_error("api", "msg=\"audit write failed\" err=\"%s\"", e.msg);
    log_info("audit", "subject=%s action=%s target=%s decision=%s", a.subject, action, a.target,
             a.decision);
    if (!allowed)
        reply_code(req, 403, "forbidden", "", "the policy does not allow this action");
    return allowed;
}

/* Appends event type about plan id with payload (stolen; "id" added)
 * inside the open transaction. */
static int emit(struct coord *c, const char *type, const char *id, json_t *payload, int64_t now,
                struct ferr *e)
{
    json_object_set_new(payload, "id", json_string(id));
    char *text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    struct store_event ev = {.time_ms = now, .payload = text, .version = EVENT_VERSION};
    snprintf(ev.type, sizeof(ev.type), "%s", type);
    snprintf(ev.subject, sizeof(ev.subject), "plan/%s", id);
    int rc = store_event_append(c->st, &ev, NULL, e);
    free(text);
    return rc;
}

/* Writes plan p and host h (either may be NULL) and, when type is not
 * NULL, its event with payload (stolen) in one transaction. */
static int commit_step(struct coord *c, struct store_plan *p, struct store_plan_host *h,
                       const char *type, json_t *payload)
{
    struct ferr e = {0};
    int64_t now = coord_now_ms();
    const char *id = p ? p->id : h->plan_id;
    if (p)
        p->updated_ms = now;
    int rc = store_tx_begin(c->st, &e);
    if (rc == 0 && p)
        rc = store_plan_update(c->st, p, &e);
    if (rc == 0 && h)
        rc = store_plan_host_update(c->st, h, &e);
    if (rc == 0 && h) {
        /* The plan holds a host (no migration chooses it as destination)
         * from its drain until it returned or the plan let go of it. */
        bool holds = strcmp(h->step, "pending") != 0 && strcmp(h->step, "returned") != 0 &&
                     strcmp(h->state, "aborted") != 0;
        rc = store_host_set_cordon(c->st, h->host, NULL, holds ? h->plan_id : "", &e);
        if (rc == FERR_NOTFOUND)
            rc = 0; /* a host no longer registered holds nothing */
    }
    if (rc == 0 && type) {
        rc = emit(c, type, id, payload, now, &e);
        payload = NULL;
    }
    if (rc == 0)
        rc = store_tx_commit(c->st, &e);
    if (rc != 0) {
        store_tx_rollback(c->st);
        log_error("plan", "msg=\"cannot record step\" plan=%s err=\"%s\"", id, e.msg);
    }
    json_decref(payload);
    return rc;
}

static int slot_find(struct coordplans *cp, const char *key)
{
    for (int i = 0; i < INFLIGHT_MAX; i++)
        if (strcmp(cp->inflight[i], key) == 0)
            return i;
    return -1;
}

/* Claims a slot for key; NULL when key is in flight already or no slot is free. */
static struct preq *preq_new(struct coordplans *cp, const char *key, const char *plan,
                             const char *host, const char *instance)
{
    if (slot_find(cp, key) >= 0)
        return NULL;
    int s = slot_find(cp, "");
    if (s < 0)
        return NULL;
    snprintf(cp->inflight[s], sizeof(cp->inflight[s]), "%s", key);
    struct preq *r = xcalloc(1, sizeof(*r));
    r->cp = cp;
    r->slot = s;
    snprintf(r->plan, sizeof(r->plan), "%s", plan);
    snprintf(r->host, sizeof(r->host), "%s", host);
    snprintf(r->instance, sizeof(r->instance), "%s", instance ? instance : "");
    return r;
}

static void preq_done(struct preq *r)
{
    if (g_plans == r->cp) {
        r->cp->inflight[r->slot][0] = '\0';
        r->cp->inflight_src[r->slot][0] = r->cp->inflight_dst[r->slot][0] = '\0';
    }
    free(r);
}

/* Fetches host name of plan into *out (detail owned by the caller). */
static int plan_host_get(struct coord *c, const char *plan, const char *name,
                         struct store_plan_host *out)
{
    struct ferr e = {0};
    int rc = store_plan_host_get(c->st, plan, name, out, &e);
    return rc == 0 ? 0 : rc == FERR_NOTFOUND ? FERR_NOTFOUND : -EIO;
}

static bool plan_active(const char *state)
{
    return strcmp(state, "running") == 0 || strcmp(state, "paused") == 0 ||
           strcmp(state, "aborting") == 0;
}

/* ---- the request body ----------------------------------------------------- */

static const char *const PLAN_KEYS[] = {"hosts",           "label",           "max_down",
                                        "concurrency",     "policy",          "action",
                                        "health_check",    "deferral_deadline_s", "max_retries",
                                        "vcpu_overcommit", "ram_overcommit",  NULL};
static const char *const CONC_KEYS[] = {"per_source", "per_destination", "cluster", NULL};
static const char *const ACTION_KEYS[] = {"command", "reboot", "timeout_s", NULL};
static const char *const HEALTH_KEYS[] = {"timeout_s", "command", NULL};

/* Reads obj[key] as a number in (0, max] into *out (left as is when the
 * key is absent). */
static int ratio_get(const json_t *obj, const char *key, double max, double *out, struct ferr *e)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    double d = json_number_value(v);
    if (!json_is_number(v) || !(d > 0) || d > max)
        return ferr_set(e, FERR_INVAL, key, "%s must be a number in (0, %g]", key, max);
    *out = d;
    return 0;
}

/* Validates body and returns the normalised spec (every default filled in)
 * in *spec (caller decrefs); e names the first bad field. */
static int parse_spec(const json_t *body, const struct store_host *hosts, size_t nh, json_t **spec,
                      struct ferr *e)
{
    int rc;
    uint64_t max_down = 1, per_src = 1, per_dst = 1, cluster = 0, act_to = ACTION_DEFAULT_S,
             health_to = HEALTH_DEFAULT_S, defer = DEFERRAL_DEFAULT_S, retries = RETRIES_DEFAULT;
    bool reboot = false;
    double vcpu_oc = 1.0, ram_oc = 1.0;
    char *label = NULL, *command = NULL, *hc_command = NULL;
    char lkey[PLACE_LABEL_KEY_MAX + 1] = "", lval[PLACE_LABEL_VAL_MAX + 1] = "";
    json_t *targets = json_array();
    *spec = NULL;
    if ((rc = jsonin_only_keys(body, PLAN_KEYS, e)) != 0 ||
        (rc = jsonin_u64(body, "max_down", 1, HOSTS_MAX, false, &max_down, e)) != 0 ||
        (rc = jsonin_u64(body, "deferral_deadline_s", 0, 7 * 86400, false, &defer, e)) != 0 ||
        (rc = jsonin_u64(body, "max_retries", 0, 100, false, &retries, e)) != 0 ||
        (rc = jsonin_str(body, "label", PLACE_LABEL_KEY_MAX + PLACE_LABEL_VAL_MAX + 1, false,
                         &label, e)) != 0 ||
        (rc = ratio_get(body, "vcpu_overcommit", PLAN_VCPU_OVERCOMMIT_MAX, &vcpu_oc, e)) != 0 ||
        (rc = ratio_get(body, "ram_overcommit", PLAN_RAM_OVERCOMMIT_MAX, &ram_oc, e)) != 0)
        goto out;
    const json_t *conc = json_object_get(body, "concurrency");
    if (conc && !json_is_object(conc)) {
        rc = ferr_set(e, FERR_INVAL, "concurrency", "concurrency must be an object");
        goto out;
    }
    if (conc && ((rc = jsonin_only_keys(conc, CONC_KEYS, e)) != 0 ||
                 (rc = jsonin_u64(conc, "per_source", 1, 64, false, &per_src, e)) != 0 ||
                 (rc = jsonin_u64(conc, "per_destination", 1, 64, false, &per_dst, e)) != 0 ||
                 (rc = jsonin_u64(conc, "cluster", 0, 4096, false, &cluster, e)) != 0)) {
        char f[FERR_FIELD_MAX];
        snprintf(f, sizeof(f), "concurrency.%.40s", e->field);
        snprintf(e->field, sizeof(e->field), "%s", f);
        goto out;
    }
    const json_t *act = json_object_get(body, "action");
    if (!json_is_object(act)) {
        rc = ferr_set(e, FERR_INVAL, "action", "action {command, reboot} is required");
        goto out;
    }
    if ((rc = jsonin_only_keys(act, ACTION_KEYS, e)) != 0 ||
        (rc = jsonin_str(act, "command", COMMAND_MAX, true, &command, e)) != 0 ||
        (rc = jsonin_bool(act, "reboot", false, &reboot, e)) != 0 ||
        (rc = jsonin_u64(act, "timeout_s", 1, 86400, false, &act_to, e)) != 0) {
        char f[FERR_FIELD_MAX];
        snprintf(f, sizeof(f), "action.%.40s", e->field);
        snprintf(e->field, sizeof(e->field), "%s", f);
        goto out;
    }
    const json_t *hc = json_object_get(body, "health_check");
    if (hc && !json_is_object(hc)) {
        rc = ferr_set(e, FERR_INVAL, "health_check",
                      "health_check must be {timeout_s: 1..86400, command?}");
        goto out;
    }
    if (hc && ((rc = jsonin_only_keys(hc, HEALTH_KEYS, e)) != 0 ||
               (rc = jsonin_u64(hc, "timeout_s", 1, 86400, false, &health_to, e)) != 0 ||
               (rc = jsonin_str(hc, "command", COMMAND_MAX, false, &hc_command, e)) != 0)) {
        char f[FERR_FIELD_MAX];
        snprintf(f, sizeof(f), "health_check.%.40s", e->field);
        snprintf(e->field, sizeof(e->field), "%s", f);
        goto out;
    }
    if (hc_command && !hc_command[0]) {
        rc = ferr_set(e, FERR_INVAL, "health_check.command", "the command must not be empty");
        goto out;
    }
    const json_t *pol = json_object_get(body, "policy");
    if (pol && !json_is_object(pol)) {
        rc = ferr_set(e, FERR_INVAL, "policy", "policy must be an object");
        goto out;
    }
    const json_t *hl = json_object_get(body, "hosts");
    if (hl && label) {
        rc = ferr_set(e, FERR_INVAL, "label", "give hosts or label, not both");
        goto out;
    }
    if (label) {
        bool all = strcmp(label, "all") == 0;
        if (!all && (rc = place_selector_parse(label, "label", lkey, lval, e)) != 0)
            goto out;
        for (size_t i = 0; i < nh; i++)
            if (all || place_labels_match(hosts[i].labels, lkey, lval))
                json_array_append_new(targets, json_string(hosts[i].name));
        if (json_array_size(targets) == 0) {
            rc = ferr_set(e, FERR_NOTFOUND, "label", "no registered host carries the label %s",
                          label);
            goto out;
        }
    } else {
        if (!json_is_array(hl) || json_array_size(hl) == 0 || json_array_size(hl) > HOSTS_MAX) {
            rc = ferr_set(e, FERR_INVAL, "hosts", "hosts must be a non-empty array of host names");
            goto out;
        }
        for (size_t i = 0; i < json_array_size(hl); i++) {
            const char *n = json_string_value(json_array_get(hl, i));
            size_t k = nh;
            for (size_t j = 0; n && j < nh; j++)
                if (strcmp(hosts[j].name, n) == 0)
                    k = j;
            char f[32];
            snprintf(f, sizeof(f), "hosts[%zu]", i);
            if (!n || k == nh) {
                rc = ferr_set(e, n ? FERR_NOTFOUND : FERR_INVAL, f, "not a registered host");
                goto out;
            }
            for (size_t j = 0; j < json_array_size(targets); j++)
                if (strcmp(json_string_value(json_array_get(targets, j)), n) == 0) {
                    rc = ferr_set(e, FERR_INVAL, f, "host %s is listed twice", n);
                    goto out;
                }
            json_array_append_new(targets, json_string(n));
        }
    }
    if (json_array_size(targets) == 0) {
        rc = ferr_set(e, FERR_INVAL, "hosts", "no target host");
        goto out;
    }
    *spec = json_pack(
        "{s:O, s:I, s:{s:I, s:I, s:I}, s:O, s:{s:s, s:b, s:I}, s:{s:I, s:s?}, s:I, s:I, s:f, s:f}",
        "hosts", targets, "max_down", (json_int_t)max_down, "concurrency", "per_source",
        (json_int_t)per_src, "per_destination", (json_int_t)per_dst, "cluster",
        (json_int_t)cluster, "policy", pol ? pol : json_null(), "action", "command", command,
        "reboot", reboot, "timeout_s", (json_int_t)act_to, "health_check", "timeout_s",
        (json_int_t)health_to, "command", hc_command, "deferral_deadline_s", (json_int_t)defer,
        "max_retries", (json_int_t)retries, "vcpu_overcommit", vcpu_oc, "ram_overcommit", ram_oc);
    if (label)
        json_object_set_new(*spec, "label", json_string(label));
out:
    json_decref(targets);
    free(label);
    free(command);
    free(hc_command);
    return rc;
}

static int64_t spec_int(const json_t *spec, const char *a, const char *b)
{
    const json_t *v = json_object_get(spec, a);
    if (b)
        v = json_object_get(v, b);
    return json_integer_value(v);
}

/* ---- POST /v1/plans ------------------------------------------------------- */

static void create(struct coord *c, struct evhttp_request *req, const struct store_token *who)
{
    struct ferr e = {0};
    json_t *body = NULL, *spec = NULL;
    struct store_host *hosts = NULL;
    struct store_instance *inst = NULL;
    struct store_plan *plist = NULL;
    struct store_plan_host *ph = NULL;
    struct plan_host *hin = NULL;
    struct plan_instance *iin = NULL;
    struct plan pl = {0};
    bool computed = false;
    size_t nh = 0, ni = 0, np = 0;
    if (httpd_body_json(req, 0, &body, &e) != 0)
        return httpd_reply_err(req, &e);
    if (!authorise(c, req, who, "plan:create", "new")) {
        json_decref(body);
        return;
    }
    if (store_host_list(c->st, &hosts, &nh, &e) != 0 ||
        store_instance_list(c->st, NULL, &inst, &ni, &e) != 0 ||
        parse_spec(body, hosts, nh, &spec, &e) != 0 || store_plan_list(c->st, &plist, &np, &e) != 0)
        goto err;
    for (size_t i = 0; i < np; i++)
        if (plan_active(plist[i].state)) {
            char msg[256];
            snprintf(msg, sizeof(msg), "plan %s is %s; one plan runs at a time", plist[i].id,
                     plist[i].state);
            reply_code(req, 409, "conflict", "hosts", msg);
            goto out;
        }
    /* The pure planner: groups, destinations, or reasons. */
    const json_t *targets = json_object_get(spec, "hosts");
    hin = xcalloc(nh ? nh : 1, sizeof(*hin));
    for (size_t i = 0; i < nh; i++) {
        hin[i].name = hosts[i].name;
        hin[i].ram_mib = hosts[i].ram_mib;
        hin[i].vcpus = hosts[i].vcpus;
        hin[i].up = strcmp(hosts[i].state, "up") == 0;
        hin[i].cordoned = hosts[i].cordon[0] != '\0';
        for (size_t j = 0; j < json_array_size(targets); j++)
            if (strcmp(json_string_value(json_array_get(targets, j)), hosts[i].name) == 0)
                hin[i].target = 1;
    }
    iin = xcalloc(ni ? ni : 1, sizeof(*iin));
    for (size_t i = 0; i < ni; i++) {
        for (size_t j = 0; j < nh; j++)
            if (strcmp(inst[i].host, hosts[j].name) == 0)
                iin[i].host = (uint32_t)j;
        iin[i].ram_mib = inst[i].memory_mib;
        iin[i].vcpus = inst[i].vcpus;
    }
    struct plan_input in = {hin, nh, iin, ni, {0}};
    in.opts.max_down = (uint32_t)spec_int(spec, "max_down", NULL);
    in.opts.conc_per_source = (uint32_t)spec_int(spec, "concurrency", "per_source");
    in.opts.conc_per_dest = (uint32_t)spec_int(spec, "concurrency", "per_destination");
    in.opts.conc_cluster = (uint32_t)spec_int(spec, "concurrency", "cluster");
    in.opts.host_action_ms = 30000;
    in.opts.vcpu_overcommit = json_real_value(json_object_get(spec, "vcpu_overcommit"));
    in.opts.ram_overcommit = json_real_value(json_object_get(spec, "ram_overcommit"));
    if (plan_compute(&in, &pl, &e) != 0)
        goto err;
    computed = true;
    if (pl.n_unplaced) {
        json_t *un = json_array();
        for (size_t i = 0; i < pl.n_unplaced; i++)
            json_array_append_new(un, json_pack("{s:s, s:s, s:s}", "instance",
                                                inst[pl.unplaced[i].inst].name, "host",
                                                hosts[pl.unplaced[i].host].name, "reason",
                                                plan_reason_name(pl.unplaced[i].reason)));
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "%zu instance(s) cannot be placed; nothing was started (see unplaced)",
                 pl.n_unplaced);
        httpd_reply_json(req, 409,
                         json_pack("{s:{s:s, s:s, s:s}, s:o}", "error", "code", "unplaceable",
                                   "message", msg, "field", "hosts", "unplaced", un));
        goto out;
    }
    struct store_plan p;
    memset(&p, 0, sizeof(p));
    char tok[AUTH_TOKEN_LEN + 1];
    if (auth_token_new(tok, &e) != 0)
        goto err;
    snprintf(p.id, sizeof(p.id), "plan-%.12s", tok);
    snprintf(p.state, sizeof(p.state), "running");
    snprintf(p.user, sizeof(p.user), "%s", who->user);
    snprintf(p.project, sizeof(p.project), "%s", who->project);
    p.created_ms = p.updated_ms = coord_now_ms();
    p.spec_json = json_dumps(spec, JSON_COMPACT);
    json_t *detail = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "groups", (json_int_t)pl.n_groups,
                               "moves", (json_int_t)pl.n_moves, "makespan_ms",
                               (json_int_t)pl.makespan_ms, "estimate_ms", (json_int_t)pl.total_ms,
                               "moved_twice", (json_int_t)pl.n_moved_twice, "lower_bound_ms",
                               (json_int_t)pl.lower_bound_ms);
    p.detail_json = json_dumps(detail, JSON_COMPACT);
    json_decref(detail);
    size_t nt = 0;
    ph = xcalloc(nh ? nh : 1, sizeof(*ph));
    json_t *groups = json_array();
    for (size_t g = 0; g < pl.n_groups; g++) {
        json_t *gl = json_array();
        for (uint32_t k = pl.group_first[g]; k < pl.group_first[g + 1]; k++) {
            uint32_t h = pl.group_hosts[k];
            struct store_plan_host *x = &ph[nt++];
            snprintf(x->plan_id, sizeof(x->plan_id), "%s", p.id);
            snprintf(x->host, sizeof(x->host), "%s", hosts[h].name);
            x->group_no = (int)g;
            snprintf(x->step, sizeof(x->step), "pending");
            snprintf(x->state, sizeof(x->state), "ok");
            json_t *moves = json_object();
            for (uint32_t m = 0; m < pl.host_move_count[h]; m++) {
                const struct plan_move *mv = &pl.moves[pl.host_move_first[h] + m];
                json_object_set_new(moves, inst[mv->inst].name, json_string(hosts[mv->dst].name));
            }
            json_t *d = json_pack("{s:o, s:I}", "moves", moves, "planned_moves",
                                  (json_int_t)pl.host_move_count[h]);
            x->detail_json = json_dumps(d, JSON_COMPACT);
            json_decref(d);
            json_array_append_new(gl, json_string(hosts[h].name));
        }
        json_array_append_new(groups, gl);
    }
    int64_t now = p.created_ms;
    int rc = store_tx_begin(c->st, &e);
    if (rc == 0)
        rc = store_plan_insert(c->st, &p, ph, nt, &e);
    if (rc == 0)
        rc = emit(c, "plan.created", p.id,
                  json_pack("{s:o, s:I, s:I, s:s}", "groups", groups, "moves",
                            (json_int_t)pl.n_moves, "estimate_ms", (json_int_t)pl.total_ms, "user",
                            who->user),
                  now, &e);
    else
        json_decref(groups);
    if (rc == 0)
        rc = store_tx_commit(c->st, &e);
    if (rc != 0)
        store_tx_rollback(c->st);
    for (size_t i = 0; i < nt; i++)
        free(ph[i].detail_json);
    if (rc != 0) {
        store_plan_clear(&p);
        goto err;
    }
    log_info("plan", "msg=\"plan created\" id=%s hosts=%zu groups=%zu moves=%zu user=%s", p.id, nt,
             pl.n_groups, pl.n_moves, who->user);
    httpd_reply_json(req, 201,
                     json_pack("{s:s, s:s, s:I, s:I, s:I}", "id", p.id, "state", p.state, "groups",
                               (json_int_t)pl.n_groups, "moves", (json_int_t)pl.n_moves,
                               "estimate_ms", (json_int_t)pl.total_ms));
    store_plan_clear(&p);
    goto out;
err:
    httpd_reply_err(req, &e);
out:
    if (computed)
        plan_free(&pl);
    json_decref(body);
    json_decref(spec);
    free(hosts);
    free(inst);
    free(hin);
    free(iin);
    free(ph);
    store_plans_free(plist, np);
}

/* ---- the executor ----------------------------------------------------------- */

/* Concurrency: active migrations per source, per destination, in all. */
struct load {
    struct store_migration *act; /* active migrations */
    size_t n;
    size_t started; /* started this tick, counted in cluster */
};

static size_t count_host(const struct load *l, const char *host, bool as_source)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(as_source ? l->act[i].source : l->act[i].destination, host) == 0)
            k++;
    return k;
}

/* Counts the executor's migration requests still unanswered (their
 * records may not exist yet) as active, unless their record is listed. */
static void load_add_inflight(const struct coordplans *cp, struct load *l)
{
    size_t listed = l->n;
    for (int s = 0; s < INFLIGHT_MAX; s++) {
        if (strncmp(cp->inflight[s], "mig:", 4) != 0)
            continue;
        const char *inst = cp->inflight[s] + 4;
        bool found = false;
        for (size_t i = 0; i < listed && !found; i++)
            found = strcmp(l->act[i].instance, inst) == 0;
        if (found)
            continue;
        l->act = xrealloc(l->act, (l->n + 1) * sizeof(*l->act));
        memset(&l->act[l->n], 0, sizeof(l->act[l->n]));
        snprintf(l->act[l->n].instance, sizeof(l->act[l->n].instance), "%s", inst);
        snprintf(l->act[l->n].source, sizeof(l->act[l->n].source), "%s", cp->inflight_src[s]);
        snprintf(l->act[l->n].destination, sizeof(l->act[l->n].destination), "%s",
                 cp->inflight_dst[s]);
        l->n++;
    }
}

static void on_mig_created(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct preq *r = arg;
    struct coord *c = r->cp->c;
    struct store_plan_host h;
    if (plan_host_get(c, r->plan, r->host, &h) == 0) {
        json_t *d = load_obj(h.detail_json);
        const char *efield = json_string_value(
            json_object_get(json_object_get(body, "error"), "field"));
        if (status == 0 || (status == 409 && efield && strcmp(efield, "instance") == 0)) {
            /* No answer (ferryd busy: the request may still have created the
             * record, which the next tick finds in the migrations table), or
             * a migration of the instance exists already: not a failed
             * attempt. */
            log_info("plan", "msg=\"migration request unanswered or already running\" plan=%s "
                             "instance=%s status=%d",
                     r->plan, r->instance, status);
        } else if (status == 202) {
            json_t *migs = json_object_get(d, "migrations");
            if (!json_is_array(migs)) {
                migs = json_array();
                json_object_set_new(d, "migrations", migs);
            }
            json_array_append_new(migs, json_string(json_string_value(json_object_get(body, "id"))));
        } else {
            /* Refused before any record existed: counts as a failed attempt. */
            json_t *errs = json_object_get(d, "refused");
            if (!json_is_object(errs)) {
                errs = json_object();
                json_object_set_new(d, "refused", errs);
            }
            json_t *one = json_object_get(errs, r->instance);
            json_int_t k = json_integer_value(json_object_get(one, "count")) + 1;
            const char *msg = json_string_value(
                json_object_get(json_object_get(body, "error"), "message"));
            json_object_set_new(errs, r->instance,
                                json_pack("{s:I, s:I, s:s}", "count", k, "at_ms",
                                          (json_int_t)coord_now_ms(), "error",
                                          msg ? msg : (e ? e->msg : "refused")));
            log_warn("plan", "msg=\"migration refused\" plan=%s instance=%s status=%d err=\"%s\"",
                     r->plan, r->instance, status, msg ? msg : (e ? e->msg : ""));
        }
        set_text(&h.detail_json, d);
        json_decref(d);
        (void)commit_step(c, NULL, &h, NULL, NULL);
        free(h.detail_json);
    }
    preq_done(r);
}

static void start_migration(struct coordplans *cp, const struct store_plan *p, const json_t *spec,
                            const struct store_plan_host *h, const char *instance, const char *dst)
{
    char key[96];
    snprintf(key, sizeof(key), "mig:%s", instance);
    struct preq *r = preq_new(cp, key, p->id, h->host, instance);
    if (!r)
        return;
    snprintf(cp->inflight_src[r->slot], sizeof(cp->inflight_src[0]), "%s", h->host);
    snprintf(cp->inflight_dst[r->slot], sizeof(cp->inflight_dst[0]), "%s", dst ? dst : "");
    json_t *b = json_pack("{s:s}", "instance", instance);
    if (dst && dst[0])
        json_object_set_new(b, "destination", json_string(dst));
    const json_t *pol = json_object_get(spec, "policy");
    if (json_is_object(pol))
        json_object_set(b, "policy", (json_t *)pol);
    static const char *const ratios[] = {"vcpu_overcommit", "ram_overcommit"};
    for (int i = 0; i < 2; i++) {
        double v = json_number_value(json_object_get(spec, ratios[i]));
        if (v > 0 && v != 1.0)
            json_object_set_new(b, ratios[i], json_real(v));
    }
    log_info("plan", "msg=\"migrating\" plan=%s host=%s instance=%s destination=%s", p->id, h->host,
             instance, dst ? dst : "(placed)");
    agentc_request(cp->c->base, cp->self_url, cp->token, "POST", "/v1/migrations", b,
                   REQ_TIMEOUT_S, on_mig_created, r);
    json_decref(b);
}

/* Pauses plan p with an alert (a step failed, or a host is unhealthy). */
static void alert(struct coord *c, struct store_plan *p, struct store_plan_host *h,
                  const char *reason)
{
    log_warn("plan", "msg=\"plan stopped: alert\" plan=%s host=%s reason=\"%s\"", p->id,
             h ? h->host : "-", reason);
    snprintf(p->state, sizeof(p->state), "paused");
    snprintf(p->last_error, sizeof(p->last_error), "%s", reason);
    (void)commit_step(c, p, h, "plan.alert",
                      json_pack("{s:s, s:s, s:s}", "host", h ? h->host : "", "reason", reason,
                                "state", p->state));
}

static int64_t backoff_ms(int64_t failures)
{
    int64_t d = BACKOFF_BASE_MS;
    for (int64_t i = 1; i < failures && d < BACKOFF_CAP_MS; i++)
        d *= 2;
    return d < BACKOFF_CAP_MS ? d : BACKOFF_CAP_MS;
}

/* One tick of a draining host: starts what may start, notices what ended.
 * Returns true when the host holds none of its guests any more. */
static bool drain(struct coordplans *cp, struct store_plan *p, const json_t *spec,
                  struct store_plan_host *h, struct load *l, bool *stopped)
{
    struct coord *c = cp->c;
    struct ferr e = {0};
    struct store_instance *inst = NULL;
    struct store_deferral *dfr = NULL;
    size_t ni = 0, nd = 0;
    int64_t now = coord_now_ms();
    bool empty = true;
    if (store_instance_list(c->st, h->host, &inst, &ni, &e) != 0 ||
        store_deferral_list(c->st, p->id, &dfr, &nd, &e) != 0) {
        free(inst);
        return false;
    }
    json_t *d = load_obj(h->detail_json);
    const json_t *moves = json_object_get(d, "moves");
    int64_t per_src = spec_int(spec, "concurrency", "per_source"),
            per_dst = spec_int(spec, "concurrency", "per_destination"),
            cluster = spec_int(spec, "concurrency", "cluster"),
            retries = spec_int(spec, "max_retries", NULL),
            defer_ms = spec_int(spec, "deferral_deadline_s", NULL) * 1000;
    for (size_t i = 0; i < ni && !*stopped; i++) {
        const char *name = inst[i].name;
        struct store_migration_filter f = {.instance = name};
        struct store_migration *m = NULL;
        size_t nm = 0;
        if (store_migration_list(c->st, &f, 100, &m, &nm, &e) != 0) {
            empty = false;
            continue;
        }
        /* m[0] is the newest. Ours: out of this host since the drain began. */
        bool ours = nm && m[0].created_ms >= h->started_ms && strcmp(m[0].source, h->host) == 0;
        int64_t failures = 0;
        for (size_t k = 0; k < nm; k++)
            if (m[k].created_ms >= h->started_ms && strcmp(m[k].source, h->host) == 0 &&
                strcmp(m[k].state, "failed") == 0)
                failures++;
        failures += json_integer_value(
            json_object_get(json_object_get(json_object_get(d, "refused"), name), "count"));
        int64_t last_fail_ms = json_integer_value(
            json_object_get(json_object_get(json_object_get(d, "refused"), name), "at_ms"));
        if (ours && strcmp(m[0].state, "succeeded") == 0) {
            store_migrations_free(m, nm);
            continue; /* moved; the registration catches up */
        }
        empty = false;
        if (nm && !place_state_terminal(m[0].state)) {
            store_migrations_free(m, nm); /* running (ours or adopted after a crash) */
            continue;
        }
        if (ours && strcmp(m[0].state, "failed") == 0 && m[0].updated_ms > last_fail_ms)
            last_fail_ms = m[0].updated_ms;
        if (ours && strcmp(m[0].state, "cancelled") == 0) {
            const struct store_deferral *df = NULL;
            for (size_t k = 0; k < nd; k++)
                if (strcmp(dfr[k].instance, name) == 0)
                    df = &dfr[k];
            if (!df || df->created_ms < m[0].updated_ms) {
                struct store_deferral nd1 = {.until_ms = now + defer_ms, .created_ms = now};
                snprintf(nd1.instance, sizeof(nd1.instance), "%s", name);
                snprintf(nd1.plan_id, sizeof(nd1.plan_id), "%s", p->id);
                snprintf(nd1.by_user, sizeof(nd1.by_user), "%s",
                         m[0].last_error[0] ? "tenant" : "tenant");
                int rc = store_tx_begin(c->st, &e);
                if (rc == 0)
                    rc = store_deferral_put(c->st, &nd1, &e);
                if (rc == 0)
                    rc = emit(c, "plan.deferred", p->id,
                              json_pack("{s:s, s:s, s:s, s:o}", "host", h->host, "instance", name,
                                        "project_id", inst[i].project_id, "until",
                                        sse_time_json(nd1.until_ms)),
                              now, &e);
                if (rc == 0)
                    rc = store_tx_commit(c->st, &e);
                if (rc != 0)
                    store_tx_rollback(c->st);
                log_info("plan", "msg=\"tenant cancel: deferred\" plan=%s instance=%s until_ms=%lld",
                         p->id, name, (long long)nd1.until_ms);
                store_migrations_free(m, nm);
                continue;
            }
            if (now < df->until_ms) {
                store_migrations_free(m, nm);
                continue;
            }
        }
        store_migrations_free(m, nm);
        if (failures > retries) {
            char why[STORE_ERROR_MAX + 1];
            snprintf(why, sizeof(why),
                     "instance %s could not be migrated off %s after %lld attempts", name,
                     h->host, (long long)failures);
            snprintf(h->state, sizeof(h->state), "failed");
            alert(c, p, h, why);
            *stopped = true;
            break;
        }
        if (failures && now < last_fail_ms + backoff_ms(failures))
            continue;
        const char *dst = json_string_value(json_object_get(moves, name));
        if ((int64_t)count_host(l, h->host, true) >= per_src ||
            (dst && (int64_t)count_host(l, dst, false) >= per_dst) ||
            (cluster && (int64_t)(l->n + l->started) >= cluster) ||
            cp->starts >= STARTS_PER_TICK)
            continue;
        cp->starts++;
        start_migration(cp, p, spec, h, name, dst);
        /* count it until the next tick reloads the active list */
        l->act = xrealloc(l->act, (l->n + 1) * sizeof(*l->act));
        memset(&l->act[l->n], 0, sizeof(l->act[l->n]));
        snprintf(l->act[l->n].source, sizeof(l->act[l->n].source), "%s", h->host);
        snprintf(l->act[l->n].destination, sizeof(l->act[l->n].destination), "%s",
                 dst ? dst : "");
        l->n++;
    }
    json_decref(d);
    free(inst);
    free(dfr);
    return empty;
}

static void on_maint_posted(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct preq *r = arg;
    (void)body;
    if (status != 202 && status != 200)
        log_warn("plan", "msg=\"maintenance request not accepted\" plan=%s host=%s status=%d err=\"%s\"",
                 r->plan, r->host, status, e ? e->msg : "");
    preq_done(r);
}

static void on_maint_polled(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct preq *r = arg;
    struct coord *c = r->cp->c;
    (void)e;
    struct store_plan p;
    struct store_plan_host h;
    struct ferr fe = {0};
    if (status != 200 || store_plan_get(c->st, r->plan, &p, &fe) != 0) {
        preq_done(r); /* restarting, or gone: ask again next tick */
        return;
    }
    if (plan_host_get(c, r->plan, r->host, &h) != 0 || strcmp(h.step, "maintaining") != 0) {
        store_plan_clear(&p);
        preq_done(r);
        return;
    }
    json_t *spec = load_obj(p.spec_json), *d = load_obj(h.detail_json);
    char want[160];
    snprintf(want, sizeof(want), "%s/%s", p.id, h.host);
    const char *id = json_string_value(json_object_get(body, "id"));
    const char *st = json_string_value(json_object_get(body, "state"));
    int64_t now = coord_now_ms();
    if (!id || strcmp(id, want) != 0) {
        /* The agent has not seen our request (ferryd crashed before it went out). */
        json_object_del(d, "action_posted");
        set_text(&h.detail_json, d);
        (void)commit_step(c, NULL, &h, NULL, NULL);
    } else if (st && strcmp(st, "running") != 0) {
        bool reboot = json_is_true(json_object_get(json_object_get(spec, "action"), "reboot"));
        int64_t fin = json_integer_value(json_object_get(body, "finished_ms"));
        int64_t boot = json_integer_value(json_object_get(body, "agent_started_ms"));
        if (strcmp(st, "succeeded") != 0) {
            char why[300];
            snprintf(why, sizeof(why), "maintenance action on %s %s (exit status %lld)", h.host, st,
                     (long long)json_integer_value(json_object_get(body, "exit_status")));
            snprintf(h.state, sizeof(h.state), "failed");
            json_object_set(d, "action", body);
            set_text(&h.detail_json, d);
            alert(c, &p, &h, why);
        } else if (!reboot || boot >= fin) {
            json_object_set(d, "action", body);
            json_object_set_new(d, "action_done_ms", json_integer(now));
            set_text(&h.detail_json, d);
            snprintf(h.step, sizeof(h.step), "checking");
            (void)commit_step(c, NULL, &h, "plan.host_maintained",
                              json_pack("{s:s, s:I, s:b}", "host", h.host, "exit_status",
                                        json_integer_value(json_object_get(body, "exit_status")),
                                        "restarted", reboot));
        }
    }
    json_decref(spec);
    json_decref(d);
    free(h.detail_json);
    store_plan_clear(&p);
    preq_done(r);
}

/* Marks host h of plan id returned (its event in the same transaction). */
static void host_returned(struct coord *c, const char *plan, struct store_plan_host *h)
{
    int64_t now = coord_now_ms();
    snprintf(h->step, sizeof(h->step), "returned");
    h->finished_ms = now;
    (void)commit_step(c, NULL, h, "plan.host_returned",
                      json_pack("{s:s, s:I}", "host", h->host, "duration_ms",
                                (json_int_t)(now - h->started_ms)));
    log_info("plan", "msg=\"host returned\" plan=%s host=%s duration_ms=%lld", plan, h->host,
             (long long)(now - h->started_ms));
}

/* The agent answered /v1/health: once its host is up with a heartbeat
 * after the action, the host is back; without a health-check command it
 * has returned, with one the command runs next (step_host). */
static void on_health(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct preq *r = arg;
    struct coord *c = r->cp->c;
    (void)body;
    (void)e;
    struct store_plan p;
    struct store_plan_host h;
    struct store_host sh;
    struct ferr fe = {0};
    if (status == 200 && store_plan_get(c->st, r->plan, &p, &fe) == 0) {
        if (plan_host_get(c, r->plan, r->host, &h) == 0) {
            json_t *d = load_obj(h.detail_json), *spec = load_obj(p.spec_json);
            int64_t done = json_integer_value(json_object_get(d, "action_done_ms"));
            if (strcmp(h.step, "checking") == 0 && store_host_get(c->st, h.host, &sh, &fe) == 0 &&
                strcmp(sh.state, "up") == 0 && sh.last_heartbeat_ms >= done) {
                if (json_string_value(
                        json_object_get(json_object_get(spec, "health_check"), "command"))) {
                    json_object_set_new(d, "back_ms", json_integer(coord_now_ms()));
                    set_text(&h.detail_json, d);
                    (void)commit_step(c, NULL, &h, NULL, NULL);
                } else {
                    host_returned(c, r->plan, &h);
                }
            }
            json_decref(d);
            json_decref(spec);
            free(h.detail_json);
        }
        store_plan_clear(&p);
    }
    preq_done(r);
}

/* The id of the current health-check run of host h of plan (attempts
 * count up on resume, so the agent never answers an older run). */
static void check_id(const char *plan, const char *host, const json_t *d, char *out, size_t n)
{
    snprintf(out, n, "%s/%s/check-%lld", plan, host,
             (long long)json_integer_value(json_object_get(d, "check_attempt")));
}

/* The agent's record of the health-check command: succeeded → returned;
 * failed or timed out → the host fails and the plan pauses with an alert
 * carrying the exit status and the start of the command's output. */
static void on_check_polled(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct preq *r = arg;
    struct coord *c = r->cp->c;
    (void)e;
    struct store_plan p;
    struct store_plan_host h;
    struct ferr fe = {0};
    if (status != 200 || store_plan_get(c->st, r->plan, &p, &fe) != 0) {
        preq_done(r);
        return;
    }
    if (plan_host_get(c, r->plan, r->host, &h) != 0 || strcmp(h.step, "checking") != 0 ||
        strcmp(p.state, "running") != 0) {
        store_plan_clear(&p);
        preq_done(r);
        return;
    }
    json_t *d = load_obj(h.detail_json);
    char want[200];
    check_id(p.id, h.host, d, want, sizeof(want));
    const char *id = json_string_value(json_object_get(body, "id"));
    const char *st = json_string_value(json_object_get(body, "state"));
    if (!id || strcmp(id, want) != 0) {
        json_object_del(d, "check_posted"); /* the agent never saw it: ask again */
        set_text(&h.detail_json, d);
        (void)commit_step(c, NULL, &h, NULL, NULL);
    } else if (st && strcmp(st, "running") != 0) {
        json_t *rec = json_deep_copy(body);
        const char *out = json_string_value(json_object_get(body, "output"));
        json_object_set_new(rec, "output",
                            json_stringn(out ? out : "", out ? strnlen(out, CHECK_OUTPUT_MAX) : 0));
        json_object_set_new(d, "check", rec);
        set_text(&h.detail_json, d);
        if (strcmp(st, "succeeded") == 0) {
            host_returned(c, p.id, &h);
        } else {
            char why[STORE_ERROR_MAX + 1];
            char snippet[160];
            snprintf(snippet, sizeof(snippet), "%s", out ? out : "");
            for (char *q = snippet; *q; q++)
                if ((unsigned char)*q < 0x20)
                    *q = ' ';
            snprintf(why, sizeof(why), "%s failed its health check: %s (exit status %lld): %s",
                     h.host, st, (long long)json_integer_value(json_object_get(body, "exit_status")),
                     snippet[0] ? snippet : "no output");
            snprintf(h.state, sizeof(h.state), "failed");
            alert(c, &p, &h, why);
        }
    }
    json_decref(d);
    free(h.detail_json);
    store_plan_clear(&p);
    preq_done(r);
}

/* Asks the agent of host for method path (body borrowed) with cb. */
static void agent_req(struct coordplans *cp, const char *key, const struct store_plan *p,
                      const struct store_plan_host *h, const char *method, const char *path,
                      const json_t *body, agentc_cb cb)
{
    struct store_host sh;
    struct ferr e = {0};
    if (store_host_get(cp->c->st, h->host, &sh, &e) != 0)
        return;
    struct preq *r = preq_new(cp, key, p->id, h->host, NULL);
    if (r)
        agentc_request(cp->c->base, sh.url, NULL, method, path, body, REQ_TIMEOUT_S, cb, r);
}

/* Moves host h of running plan p one step if it can. */
static void step_host(struct coordplans *cp, struct store_plan *p, const json_t *spec,
                      struct store_plan_host *h, struct load *l, bool *stopped)
{
    struct coord *c = cp->c;
    int64_t now = coord_now_ms();
    char key[96];
    if (strcmp(h->state, "ok") != 0)
        return;
    json_t *d = load_obj(h->detail_json);
    if (strcmp(h->step, "pending") == 0) {
        snprintf(h->step, sizeof(h->step), "draining");
        h->started_ms = now;
        (void)commit_step(c, NULL, h, "plan.host_draining",
                          json_pack("{s:s, s:i, s:I}", "host", h->host, "group", h->group_no,
                                    "planned_moves",
                                    json_integer_value(json_object_get(d, "planned_moves"))));
    } else if (strcmp(h->step, "draining") == 0) {
        if (drain(cp, p, spec, h, l, stopped) && !*stopped) {
            snprintf(h->step, sizeof(h->step), "drained");
            json_object_set_new(d, "drained_ms", json_integer(now));
            set_text(&h->detail_json, d);
            (void)commit_step(c, NULL, h, "plan.host_drained",
                              json_pack("{s:s, s:I}", "host", h->host, "drain_ms",
                                        (json_int_t)(now - h->started_ms)));
        }
    } else if (strcmp(h->step, "drained") == 0) {
        snprintf(h->step, sizeof(h->step), "maintaining");
        json_object_set_new(d, "action_started_ms", json_integer(now));
        set_text(&h->detail_json, d);
        (void)commit_step(c, NULL, h, "plan.host_maintaining",
                          json_pack("{s:s, s:s}", "host", h->host, "command",
                                    json_string_value(json_object_get(
                                        json_object_get(spec, "action"), "command"))));
    } else if (strcmp(h->step, "maintaining") == 0) {
        const json_t *act = json_object_get(spec, "action");
        int64_t started = json_integer_value(json_object_get(d, "action_started_ms"));
        int64_t limit = (json_integer_value(json_object_get(act, "timeout_s")) +
                         spec_int(spec, "health_check", "timeout_s")) * 1000;
        if (now - started > limit) {
            snprintf(h->state, sizeof(h->state), "failed");
            char why[200];
            snprintf(why, sizeof(why), "maintenance of %s did not finish within %lld s", h->host,
                     (long long)(limit / 1000));
            alert(c, p, h, why);
            *stopped = true;
        } else if (!json_is_true(json_object_get(d, "action_posted"))) {
            char id[160];
            snprintf(id, sizeof(id), "%s/%s", p->id, h->host);
            json_t *b = json_pack("{s:s, s:O, s:O, s:O}", "id", id, "command",
                                  json_object_get(act, "command"), "restart",
                                  json_object_get(act, "reboot"), "timeout_s",
                                  json_object_get(act, "timeout_s"));
            json_object_set_new(d, "action_posted", json_true());
            set_text(&h->detail_json, d);
            if (commit_step(c, NULL, h, NULL, NULL) == 0) {
                snprintf(key, sizeof(key), "maint:%s", h->host);
                agent_req(cp, key, p, h, "POST", "/v1/maintenance", b, on_maint_posted);
            }
            json_decref(b);
        } else {
            snprintf(key, sizeof(key), "poll:%s", h->host);
            agent_req(cp, key, p, h, "GET", "/v1/maintenance", NULL, on_maint_polled);
        }
    } else if (strcmp(h->step, "checking") == 0) {
        int64_t done = json_integer_value(json_object_get(d, "action_done_ms"));
        int64_t back = json_integer_value(json_object_get(d, "back_ms"));
        int64_t hto_ms = spec_int(spec, "health_check", "timeout_s") * 1000;
        const json_t *hc = json_object_get(spec, "health_check");
        const char *cmd = json_string_value(json_object_get(hc, "command"));
        if ((!back && now - done > hto_ms) || (back && now - back > hto_ms + CHECK_GRACE_MS)) {
            snprintf(h->state, sizeof(h->state), "failed");
            char why[200];
            snprintf(why, sizeof(why), back ? "%s: its health-check command did not end in time"
                                            : "%s did not pass its health check (agent up, "
                                              "heartbeat after the action) in time",
                     h->host);
            alert(c, p, h, why);
            *stopped = true;
        } else if (!back || !cmd) {
            snprintf(key, sizeof(key), "health:%s", h->host);
            agent_req(cp, key, p, h, "GET", "/v1/health", NULL, on_health);
        } else if (!json_is_true(json_object_get(d, "check_posted"))) {
            char id[200];
            check_id(p->id, h->host, d, id, sizeof(id));
            json_t *b = json_pack("{s:s, s:s, s:b, s:I}", "id", id, "command", cmd, "restart", 0,
                                  "timeout_s", (json_int_t)(hto_ms / 1000));
            json_object_set_new(d, "check_posted", json_true());
            set_text(&h->detail_json, d);
            if (commit_step(c, NULL, h, NULL, NULL) == 0) {
                snprintf(key, sizeof(key), "maint:%s", h->host);
                agent_req(cp, key, p, h, "POST", "/v1/maintenance", b, on_maint_posted);
            }
            json_decref(b);
        } else {
            snprintf(key, sizeof(key), "poll:%s", h->host);
            agent_req(cp, key, p, h, "GET", "/v1/maintenance", NULL, on_check_polled);
        }
    }
    json_decref(d);
}

/* Aborting: cancels the plan's running migrations; once none runs, states
 * every host's condition and ends the plan. */
static void step_abort(struct coordplans *cp, struct store_plan *p, struct store_plan_host *hs,
                       size_t nh, const struct load *l)
{
    struct coord *c = cp->c;
    bool busy = false;
    for (size_t i = 0; i < nh; i++)
        for (size_t k = 0; k < l->n; k++) {
            const struct store_migration *m = &l->act[k];
            if (strcmp(m->source, hs[i].host) != 0 || !hs[i].started_ms ||
                m->created_ms < hs[i].started_ms)
                continue;
            busy = true;
            char key[96], path[128];
            snprintf(key, sizeof(key), "cancel:%s", m->id);
            snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", m->id);
            struct preq *r = preq_new(cp, key, p->id, hs[i].host, NULL);
            if (r)
                agentc_request(c->base, cp->self_url, cp->token, "POST", path, NULL,
                               REQ_TIMEOUT_S, on_maint_posted, r);
        }
    if (busy)
        return;
    json_t *cond = json_array();
    for (size_t i = 0; i < nh; i++) {
        struct store_plan_host *h = &hs[i];
        const char *what = "not started: in service, untouched";
        if (strcmp(h->step, "returned") == 0)
            what = "maintained and returned to service";
        else if (strcmp(h->step, "draining") == 0)
            what = "partly drained; the guests left on it keep running there";
        else if (strcmp(h->step, "drained") == 0)
            what = "drained, not maintained; empty";
        else if (strcmp(h->step, "maintaining") == 0)
            what = "drained; its maintenance action may still be running";
        else if (strcmp(h->step, "checking") == 0)
            what = "drained and maintained; health check not passed yet";
        json_array_append_new(cond, json_pack("{s:s, s:s, s:s}", "host", h->host, "step", h->step,
                                              "condition", what));
        if (strcmp(h->step, "returned") != 0 && strcmp(h->state, "ok") == 0) {
            snprintf(h->state, sizeof(h->state), "aborted");
            h->finished_ms = coord_now_ms();
            (void)commit_step(c, NULL, h, NULL, NULL);
        }
    }
    for (size_t i = 0; i < nh; i++) { /* the plan lets go of every host */
        struct ferr e = {0};
        if (store_host_set_cordon(c->st, hs[i].host, NULL, "", &e) != 0 && e.code != FERR_NOTFOUND)
            log_warn("plan", "msg=\"cannot release host\" host=%s err=\"%s\"", hs[i].host, e.msg);
    }
    snprintf(p->state, sizeof(p->state), "aborted");
    (void)commit_step(c, p, NULL, "plan.aborted", json_pack("{s:o}", "hosts", cond));
    log_info("plan", "msg=\"plan aborted\" plan=%s", p->id);
}

/* One pass over running or aborting plan p. only == NULL: the tick's full
 * pass (every host of the current group stepped; the group's end and the
 * plan's end noticed). only != NULL: a kicked pass — only the draining hosts
 * it concerns are stepped (plankick_wants), nothing else. */
static void step_plan(struct coordplans *cp, struct store_plan *p, const struct plan_kick *only)
{
    struct coord *c = cp->c;
    struct ferr e = {0};
    struct store_plan_host *hs = NULL;
    size_t nh = 0;
    struct load l = {0};
    struct store_migration_filter f = {.active_only = 1};
    if (only && strcmp(p->state, "running") != 0)
        return;
    if (store_plan_host_list(c->st, p->id, &hs, &nh, &e) != 0 ||
        store_migration_list(c->st, &f, STORE_LIST_MAX, &l.act, &l.n, &e) != 0) {
        log_error("plan", "msg=\"cannot read plan\" plan=%s err=\"%s\"", p->id, e.msg);
        goto out;
    }
    if (strcmp(p->state, "aborting") == 0) {
        step_abort(cp, p, hs, nh, &l);
        goto out;
    }
    load_add_inflight(cp, &l);
    json_t *spec = load_obj(p->spec_json);
    bool stopped = false, group_done = true, any = false;
    for (size_t i = 0; i < nh && !stopped; i++) {
        if (hs[i].group_no != p->current_group)
            continue;
        any = true;
        if (only) {
            if (strcmp(hs[i].step, "draining") != 0 || strcmp(hs[i].state, "ok") != 0)
                continue;
            json_t *d = load_obj(hs[i].detail_json);
            bool wants = plankick_wants(only, hs[i].host, json_object_get(d, "moves"));
            json_decref(d);
            if (!wants)
                continue;
        }
        step_host(cp, p, spec, &hs[i], &l, &stopped);
        if (strcmp(hs[i].step, "returned") != 0)
            group_done = false;
    }
    json_decref(spec);
    if (stopped || only)
        goto out;
    if (!any) {
        snprintf(p->state, sizeof(p->state), "completed");
        int64_t dur = coord_now_ms() - p->created_ms;
        (void)commit_step(c, p, NULL, "plan.completed",
                          json_pack("{s:I, s:I}", "hosts", (json_int_t)nh, "duration_ms",
                                    (json_int_t)dur));
        log_info("plan", "msg=\"plan completed\" plan=%s duration_ms=%lld", p->id, (long long)dur);
    } else if (group_done) {
        p->current_group++;
        (void)commit_step(c, p, NULL, "plan.group_done",
                          json_pack("{s:i}", "group", p->current_group - 1));
    }
out:
    store_plan_hosts_free(hs, nh);
    store_migrations_free(l.act, l.n);
}

/* Steps every running (or aborting) plan: the full pass when only is NULL,
 * else a kicked pass (step_plan). */
static void pass(struct coordplans *cp, const struct plan_kick *only)
{
    struct store_plan *ps = NULL;
    size_t n = 0;
    struct ferr e = {0};
    cp->starts = 0;
    if (store_plan_list(cp->c->st, &ps, &n, &e) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ps[i].state, "running") == 0 || strcmp(ps[i].state, "aborting") == 0)
            step_plan(cp, &ps[i], only);
    store_plans_free(ps, n);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coordplans *cp = arg;
    plankick_clear(&cp->ks); /* the full pass covers what was kicked */
    pass(cp, NULL);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coordplans *cp = arg;
    struct plan_kick k = cp->ks;
    cp->kick_armed = false;
    plankick_clear(&cp->ks);
    if (!plankick_empty(&k))
        pass(cp, &k);
}

void coordplans_kick(struct coord *c, const char *source, const char *destination)
{
    struct coordplans *cp = g_plans;
    if (!cp || cp->c != c)
        return;
    plankick_add(&cp->ks, source);
    plankick_add(&cp->ks, destination);
    if (!cp->kick_armed) {
        struct timeval tv = {0, KICK_DELAY_MS * 1000};
        event_add(cp->kick, &tv);
        cp->kick_armed = true;
    }
}

/* ---- GET, pause, resume, abort -------------------------------------------------- */

static double host_pct(const struct store_plan_host *h, const json_t *d, size_t left)
{
    if (strcmp(h->step, "returned") == 0)
        return 100;
    if (strcmp(h->step, "checking") == 0)
        return 90;
    if (strcmp(h->step, "maintaining") == 0)
        return 70;
    if (strcmp(h->step, "drained") == 0)
        return 60;
    if (strcmp(h->step, "draining") == 0) {
        int64_t planned = json_integer_value(json_object_get(d, "planned_moves"));
        if (planned <= 0)
            return 60;
        double done = (double)(planned - (int64_t)left);
        return done < 0 ? 0 : 60.0 * done / (double)planned;
    }
    return 0;
}

/* Renders plan p: the summary (state, spec, planner figures, progress_pct,
 * eta, hosts_total, hosts_by_step) and hosts[off, off + lim) of the plan's
 * host list with their migrations (full) — lim 0: the summary alone. The
 * page's bounds go in hosts_page {offset, limit, total} when lim > 0. */
static json_t *plan_json(struct coord *c, const struct store_plan *p, bool full, size_t off,
                         size_t lim)
{
    json_t *spec = load_obj(p->spec_json), *det = load_obj(p->detail_json);
    json_t *o = json_pack("{s:s, s:s, s:i, s:o, s:o, s:s, s:o, s:O}", "id", p->id, "state",
                          p->state, "current_group", p->current_group, "created",
                          sse_time_json(p->created_ms), "updated", sse_time_json(p->updated_ms),
                          "last_error", p->last_error, "spec", json_incref(spec), "plan", det);
    struct store_plan_host *hs = NULL;
    size_t nh = 0;
    struct ferr e = {0};
    if (store_plan_host_list(c->st, p->id, &hs, &nh, &e) != 0)
        goto out;
    json_t *ha = json_array(), *migs = json_array(), *by_step = json_object();
    double sum = 0;
    int64_t now = coord_now_ms(), done_ms = 0, mig_eta = 0;
    size_t done_n = 0;
    int ngroups = 0;
    for (size_t i = 0; i < nh; i++) {
        const struct store_plan_host *h = &hs[i];
        json_t *d = load_obj(h->detail_json);
        struct store_instance *inst = NULL;
        size_t left = 0;
        if (strcmp(h->step, "draining") == 0 &&
            store_instance_list(c->st, h->host, &inst, &left, &e) == 0)
            free(inst);
        double pct = host_pct(h, d, left);
        sum += pct;
        json_object_set_new(by_step, h->step,
                            json_integer(json_integer_value(json_object_get(by_step, h->step)) + 1));
        if (h->group_no + 1 > ngroups)
            ngroups = h->group_no + 1;
        if (strcmp(h->step, "returned") == 0) {
            done_ms += h->finished_ms - h->started_ms;
            done_n++;
        }
        if (i < off || i - off >= lim) { /* outside the page: counted, not listed */
            json_decref(d);
            continue;
        }
        int64_t dur = h->started_ms ? (h->finished_ms ? h->finished_ms : now) - h->started_ms : 0;
        json_t *x = json_pack("{s:s, s:i, s:s, s:s, s:f, s:I}", "host", h->host, "group",
                              h->group_no, "step", h->step, "state", h->state, "pct", pct,
                              "duration_ms", (json_int_t)dur);
        int64_t dr = json_integer_value(json_object_get(d, "drained_ms"));
        if (dr)
            json_object_set_new(x, "drain_ms", json_integer(dr - h->started_ms));
        const json_t *act = json_object_get(d, "action");
        if (act)
            json_object_set(x, "action", (json_t *)act);
        const json_t *chk = json_object_get(d, "check");
        if (chk)
            json_object_set(x, "check", (json_t *)chk);
        const json_t *ml = json_object_get(d, "migrations");
        for (size_t k = 0; full && k < json_array_size(ml); k++) {
            struct store_migration m;
            if (store_migration_get(c->st, json_string_value(json_array_get(ml, k)), &m, &e) != 0)
                continue;
            json_t *res = m.detail_json ? json_loads(m.detail_json, 0, NULL) : NULL;
            const json_t *r = json_object_get(res, "result");
            json_t *mj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:I, s:I, s:O}", "id", m.id,
                                   "instance", m.instance, "source", m.source, "destination",
                                   m.destination, "state", m.state, "pct", m.progress_pct,
                                   "eta_ms", (json_int_t)m.eta_ms, "downtime_ms",
                                   (json_int_t)m.downtime_ms, "result", r ? r : json_null());
            /* the guest's own disk during the move (agent impact report) */
            const json_t *gi = json_object_get(res, "guest_impact");
            const json_t *gd = json_object_get(gi, "disk");
            json_object_set_new(
                mj, "guest_impact",
                json_is_object(gd)
                    ? json_pack("{s:O?, s:O?, s:O?, s:O?}", "throughput_retained_pct",
                                json_object_get(gd, "throughput_retained_pct"),
                                "p99_latency_ratio", json_object_get(gd, "p99_latency_ratio"),
                                "cpu_throttle_ms", json_object_get(gi, "cpu_throttle_ms"),
                                "budget_verdict",
                                json_object_get(json_object_get(gi, "budget"), "verdict"))
                    : json_null());
            json_array_append_new(migs, mj);
            if (!place_state_terminal(m.state) && m.eta_ms > mig_eta)
                mig_eta = m.eta_ms;
            json_decref(res);
            store_migration_clear(&m);
        }
        json_array_append_new(ha, x);
        json_decref(d);
    }
    json_object_set_new(o, "hosts_total", json_integer((json_int_t)nh));
    json_object_set_new(o, "hosts_by_step", by_step);
    if (lim) {
        json_object_set_new(o, "hosts", ha);
        json_object_set_new(o, "hosts_page", json_pack("{s:I, s:I, s:I}", "offset", (json_int_t)off,
                                                       "limit", (json_int_t)lim, "total",
                                                       (json_int_t)nh));
    } else {
        json_decref(ha);
    }
    if (full && lim)
        json_object_set_new(o, "migrations", migs);
    else
        json_decref(migs);
    double pct = nh ? sum / (double)nh : 100;
    json_object_set_new(o, "progress_pct", json_real(pct));
    /* ETA: groups left × measured (or planned) group length, at least what
     * the running migrations still need. */
    json_t *eta = json_null();
    if (plan_active(p->state)) {
        int64_t per_group =
            done_n ? done_ms / (int64_t)done_n
                   : (ngroups ? json_integer_value(json_object_get(det, "estimate_ms")) / ngroups
                              : 0);
        int64_t left_groups = ngroups - p->current_group;
        int64_t cur_left = per_group;
        for (size_t i = 0; i < nh; i++)
            if (hs[i].group_no == p->current_group && hs[i].started_ms &&
                per_group - (now - hs[i].started_ms) < cur_left)
                cur_left = per_group - (now - hs[i].started_ms);
        if (cur_left < mig_eta)
            cur_left = mig_eta;
        if (cur_left < 0)
            cur_left = 0;
        int64_t ms = left_groups > 0 ? (left_groups - 1) * per_group + cur_left : 0;
        json_decref(eta);
        eta = json_pack("{s:I, s:s}", "ms", (json_int_t)ms, "basis",
                        done_n ? "measured host durations" : "planner estimate");
    }
    json_object_set_new(o, "eta", eta);
    store_plan_hosts_free(hs, nh);
out:
    json_decref(spec);
    json_decref(det);
    return o;
}

static void list(struct coord *c, struct evhttp_request *req, const struct store_token *who)
{
    struct store_plan *ps = NULL;
    size_t n = 0;
    struct ferr e = {0};
    if (!authorise(c, req, who, "plan:list", "*"))
        return;
    if (store_plan_list(c->st, &ps, &n, &e) != 0)
        return httpd_reply_err(req, &e);
    json_t *a = json_array();
    for (size_t i = 0; i < n && i < 1000; i++)
        json_array_append_new(a, plan_json(c, &ps[i], false, 0, 0)); /* summaries */
    store_plans_free(ps, n);
    httpd_reply_json(req, 200, json_pack("{s:o}", "plans", a));
}

static bool load(struct coord *c, struct evhttp_request *req, const char *id, struct store_plan *p)
{
    struct ferr e = {0};
    if (strlen(id) > STORE_IDENT_MAX || store_plan_get(c->st, id, p, &e) != 0) {
        reply_code(req, 404, "not_found", "id", "no such plan");
        return false;
    }
    return true;
}

/* Reads query parameter key of req as an integer in [min, max] into *out
 * (left as is when absent). On a bad value replies 400 naming key and
 * returns false. */
static bool query_size(struct evhttp_request *req, const char *key, long min, long max,
                       size_t *out)
{
    char buf[32];
    if (httpd_query(req, key, buf, sizeof(buf)) != 0)
        return true;
    char *end = NULL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (!buf[0] || *end || errno || v < min || v > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s must be an integer %ld..%ld", key, min, max);
        reply_code(req, 400, "invalid", key, msg);
        return false;
    }
    *out = (size_t)v;
    return true;
}

static void show(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                 const char *id)
{
    struct store_plan p;
    size_t off = 0, lim = HOSTS_PAGE_DEFAULT;
    if (!query_size(req, "hosts_offset", 0, HOSTS_MAX, &off) ||
        !query_size(req, "hosts_limit", 0, HOSTS_PAGE_MAX, &lim) ||
        !authorise(c, req, who, "plan:show", id) || !load(c, req, id, &p))
        return;
    httpd_reply_json(req, 200, plan_json(c, &p, true, off, lim));
    store_plan_clear(&p);
}

static void act(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                const char *id, const char *what)
{
    char action[32];
    snprintf(action, sizeof(action), "plan:%s", what);
    struct store_plan p;
    if (!authorise(c, req, who, action, id) || !load(c, req, id, &p))
        return;
    const char *from = NULL, *to = NULL;
    if (strcmp(what, "pause") == 0 && strcmp(p.state, "running") == 0)
        from = "running", to = "paused";
    else if (strcmp(what, "resume") == 0 && strcmp(p.state, "paused") == 0)
        from = "paused", to = "running";
    else if (strcmp(what, "abort") == 0 &&
             (strcmp(p.state, "running") == 0 || strcmp(p.state, "paused") == 0))
        from = p.state, to = "aborting";
    if (!to) {
        char msg[128];
        snprintf(msg, sizeof(msg), "a plan in state %s cannot be %s", p.state,
                 strcmp(what, "pause") == 0    ? "paused"
                 : strcmp(what, "resume") == 0 ? "resumed"
                                               : "aborted");
        store_plan_clear(&p);
        return reply_code(req, 409, "conflict", "state", msg);
    }
    char ev[40];
    snprintf(ev, sizeof(ev), "plan.%s", strcmp(what, "abort") == 0 ? "aborting"
                                        : strcmp(what, "pause") == 0 ? "paused"
                                                                     : "resumed");
    json_t *payload = json_pack("{s:s, s:s}", "by", who->user, "from", from);
    snprintf(p.state, sizeof(p.state), "%s", to);
    if (strcmp(what, "resume") == 0) {
        /* a resume after an alert gives the failed host(s) a fresh start */
        p.last_error[0] = '\0';
        struct store_plan_host *hs = NULL;
        size_t nh = 0;
        struct ferr e = {0};
        if (store_plan_host_list(c->st, p.id, &hs, &nh, &e) == 0)
            for (size_t i = 0; i < nh; i++)
                if (strcmp(hs[i].state, "failed") == 0) {
                    snprintf(hs[i].state, sizeof(hs[i].state), "ok");
                    if (strcmp(hs[i].step, "draining") == 0)
                        hs[i].started_ms = coord_now_ms(); /* retries counted afresh */
                    if (strcmp(hs[i].step, "maintaining") == 0 ||
                        strcmp(hs[i].step, "checking") == 0) {
                        json_t *d = load_obj(hs[i].detail_json);
                        json_object_set_new(d, "action_started_ms", json_integer(coord_now_ms()));
                        json_object_set_new(d, "action_done_ms", json_integer(coord_now_ms()));
                        json_object_del(d, "back_ms");
                        json_object_del(d, "check_posted");
                        json_object_set_new(
                            d, "check_attempt",
                            json_integer(json_integer_value(json_object_get(d, "check_attempt")) +
                                         1));
                        set_text(&hs[i].detail_json, d);
                        json_decref(d);
                    }
                    (void)commit_step(c, NULL, &hs[i], NULL, NULL);
                }
        store_plan_hosts_free(hs, nh);
    }
    int rc = commit_step(c, &p, NULL, ev, payload);
    if (rc != 0) {
        store_plan_clear(&p);
        return reply_code(req, 500, "internal", "", "cannot record the change");
    }
    log_info("plan", "msg=\"plan %s\" plan=%s by=%s", what, p.id, who->user);
    httpd_reply_json(req, 202, plan_json(c, &p, false, 0, 0));
    store_plan_clear(&p);
}

void coordplans_handle(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                       char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX], int n)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (n == 2 && m == EVHTTP_REQ_POST)
        return create(c, req, who);
    if (n == 2 && m == EVHTTP_REQ_GET)
        return list(c, req, who);
    if (n == 3 && m == EVHTTP_REQ_GET)
        return show(c, req, who, seg[2]);
    if (n == 4 && m == EVHTTP_REQ_POST &&
        (strcmp(seg[3], "pause") == 0 || strcmp(seg[3], "resume") == 0 ||
         strcmp(seg[3], "abort") == 0))
        return act(c, req, who, seg[2], seg[3]);
    reply_code(req, 404, "not_found", "path", "no such endpoint");
}

int coordplans_start(struct coord *c, struct ferr *e)
{
    struct coordplans *cp = xcalloc(1, sizeof(*cp));
    cp->c = c;
    int rc = auth_token_create(c->st, "ferryd-plans", "admin", "admin", coord_now_ms(), cp->token,
                               e);
    if (rc) {
        free(cp);
        return rc;
    }
    const char *addr = strcmp(c->cfg.listen_addr, "0.0.0.0") == 0 ? "127.0.0.1"
                                                                  : c->cfg.listen_addr;
    snprintf(cp->self_url, sizeof(cp->self_url), "http://%s:%d", addr, c->cfg.listen_port);
    cp->tick = event_new(c->base, -1, EV_PERSIST, on_tick, cp);
    cp->kick = evtimer_new(c->base, on_kick, cp);
    struct timeval tv = {TICK_MS / 1000, (TICK_MS % 1000) * 1000};
    event_add(cp->tick, &tv);
    g_plans = cp;
    return 0;
}

void coordplans_stop(struct coord *c)
{
    (void)c;
    if (!g_plans)
        return;
    event_free(g_plans->tick);
    event_free(g_plans->kick);
    free(g_plans);
    g_plans = NULL;
}

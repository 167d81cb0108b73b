/* migrations — the /v1/migrations API and their orchestration through the
 * agents (see migrations.h, docs/FERRYD.md "Migrations").
 *
 * Each non-terminal migration has an in-memory `struct orch` walking the
 * steps below on a 250 ms tick, one agent request in flight at a time:
 *
 *   queued → get_spec (source) → post_incoming (destination) →
 *   wait_incoming (destination, until incoming_uri) → start_source (source
 *   POST /v1/migrations) → poll (source record every 500 ms) → done
 *
 * The store holds the truth: every transition goes through migstate_next
 * and is written with its event in one transaction; the orch only holds
 * what is in flight. A restarted ferryd rebuilds the orchs from the store.
 *
 * Group commit: a poll answer that changes nothing but the figures (no
 * transition, no stall/budget/consent event) is not written at once; it
 * waits in its orch (the newest answer, at most one migration.progress
 * event) and every waiting answer is written in ONE transaction at most
 * PROGRESS_COMMIT_MS after the first of them arrived — each migration's
 * row and event between a savepoint and its release, so a failing one is
 * taken back alone. A transition (persist) never waits: it writes the
 * waiting answers first in its own transaction, so a migration's events
 * keep their order, and commits before anything acts on it. kill -9 loses
 * at most the answers of the last window, never a transition or a seq. */
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "coord/agentc.h"
#include "coord/auth.h"
#include "coord/consent.h"
#include "coord/migcache.h"
#include "coord/migrations.h"
#include "coord/place.h"
#include "coord/plans.h"
#include "coord/sse.h"
#include "core/admit.h"
#include "core/migstate.h"
#include "util/jsonin.h"
#include "util/log.h"
#include "util/xalloc.h"

#define TICK_MS 250             /* orchestration tick, ms */
#define POLL_MS 500             /* source agent's migration record poll, ms (2 Hz) */
#define UNKNOWN_POLL_MS 2000    /* poll period while the source is unreachable, ms */
#define AGENT_TIMEOUT_S 10      /* one agent request, s */
#define INCOMING_WAIT_MS 120000 /* destination until incoming_uri, ms */
#define UNKNOWN_AFTER_MS 30000  /* source silent this long → unknown, ms */
#define LIST_PAGE_MAX 1000      /* records in one GET /v1/migrations */
#define LIST_PAGE_DEFAULT 50    /* ... when the request names no limit */
#define LIST_SCAN_BATCH 1000    /* rows read per query after the first while filling a page */
#define AUDIT_FLUSH_MS 100      /* deferred (read) audit records are written this often */
#define EVENT_VERSION 1         /* payload version of the migration events */
#define PROGRESS_COMMIT_MS 200  /* waiting progress is committed at most this late, ms */
#define PENDING_TRIES_MAX 3     /* a waiting answer whose own write failed this often is dropped */

enum ostep {
    OS_QUEUED = 0,    /* requested, not admitted */
    OS_GET_SPEC,      /* GET source /v1/instances/NAME */
    OS_POST_INCOMING, /* POST destination /v1/incoming */
    OS_WAIT_INCOMING, /* GET destination /v1/instances/NAME until incoming_uri */
    OS_START_SOURCE,  /* POST source /v1/migrations */
    OS_POLL,          /* GET source /v1/migrations/AID */
    OS_CANCEL_SOURCE, /* POST source /v1/migrations/AID/cancel */
    OS_CLEAN_DEST,    /* DELETE destination /v1/instances/NAME */
    OS_DONE,          /* terminal: freed at the next tick */
};

static const char *const STEP_PHASE[] = {
    "queued",  "prepare_destination", "prepare_destination", "wait_incoming", "start_source",
    "running", "cancelling",          "clean_destination",   "done"};

struct orch {
    struct coord *c;                   /* borrowed */
    struct orch *next;                 /* coordmig list */
    char id[STORE_IDENT_MAX + 1];      /* migration id */
    char instance[STORE_NAME_MAX + 1]; /* instance migrated */
    char project[STORE_IDENT_MAX + 1]; /* its owner project */
    char source[STORE_NAME_MAX + 1];   /* host names */
    char destination[STORE_NAME_MAX + 1];
    enum migstate st;                    /* last known core state */
    bool unknown;                        /* stored as "unknown" (source unreachable) */
    bool queued;                         /* stored as "queued": waits for admission */
    bool admitted;                       /* the admission let it start (OS_QUEUED) */
    int64_t created_ms;                  /* its place in the admission queue, ms */
    enum ostep step;                     /* next thing to do */
    enum migstate after_clean;           /* state to record once the destination is
                                            cleaned (cancelled), or FAILED/none */
    char agent_mig[STORE_IDENT_MAX + 1]; /* the source agent's migration id, "" before */
    char phase[STORE_IDENT_MAX + 1];     /* what is stored as phase */
    json_t *policy;                      /* for the source agent; owned or NULL */
    json_t *limits;                      /* same */
    json_t *spec;                        /* the source instance's spec; owned or NULL */
    bool inflight;                       /* one agent request outstanding */
    bool incoming_posted;                /* the destination may hold a guest of ours */
    int64_t next_ms;                     /* next step not before, ms since epoch */
    int64_t deadline_ms;                 /* wait_incoming gives up at */
    int64_t last_answer_ms;              /* last answer from the source agent */
    int64_t last_progress_ms;            /* last migration.progress event */
    size_t stalls_seen;                  /* stalls of the agent's record reported */
    size_t budget_seen;                  /* report_budget events of the agent's record
                                            reported as migration.budget */
    bool cancel_sent;                    /* the cancel went to the source agent */
    bool adopt_tried;                    /* looked for the agent's migration after a 409 */
    /* progress waiting for the group commit (see the top of the file) */
    json_t *pend_body;    /* the newest agent record not yet written; owned, NULL: none */
    json_t *pend_extra;   /* its migration.progress payload; owned, NULL: no event */
    int pend_tries;       /* its writes that failed */
    bool pend_in_tx;      /* written in the open transaction, not committed yet */
};

struct coordmig {
    struct event *tick;  /* TICK_MS timer */
    struct event *audit; /* AUDIT_FLUSH_MS timer: writes the deferred audit records */
    int audit_wake_fd;       /* eventfd the read threads' records wake early; -1 none */
    struct event *audit_now; /* its read event: the same flush, at once */
    struct orch *list;   /* live orchestrations */
    char *agent_token;   /* bearer token presented to the agents; owned, NULL none */
    int64_t consent_ms;  /* last consent timeout check, ms since epoch */
    struct migcache *cache; /* rendered records for show and list; owned (a read
                               thread's coordmig borrows the loop's) */
    struct event *commit;   /* one-shot PROGRESS_COMMIT_MS timer: the group commit */
    bool commit_armed;      /* it is pending */
    size_t npending;        /* orchs with waiting progress */
    struct coordmig_stats stats;
    /* The projects that own migrations (visible_projects), as of the
     * store's insert mark projects_mark; per thread. */
    char (*projects)[STORE_IDENT_MAX + 1]; /* LIST_PROJECTS_PROBE entries, NULL until used */
    size_t nprojects;
    int projects_complete; /* all of them (else more than LIST_PROJECTS_PROBE) */
    int64_t projects_mark; /* -1: not read yet */
};

#define AGENT_TOKEN_MAX 256 /* bytes of the agent token file's token */
#define CONSENT_CHECK_MS 1000 /* consent timeouts are checked this often, ms */

/* ---- small helpers ---------------------------------------------------- */

static int state_of(const char *name, enum migstate *out)
{
    for (int i = 0; i < MIGSTATE__COUNT; i++)
        if (strcmp(migstate_name((enum migstate)i), name) == 0) {
            *out = (enum migstate)i;
            return 0;
        }
    return -1;
}

static json_t *json_load_or_null(const char *text)
{
    return text ? json_loads(text, 0, NULL) : NULL;
}

static void reply_code(struct evhttp_request *req, int status, const char *code, const char *field,
                       const char *msg)
{
    httpd_reply_json(
        req, status,
        json_pack("{s:{s:s, s:s, s:s}}", "error", "code", code, "message", msg, "field", field));
}

static void reply_not_found(struct evhttp_request *req, const char *field)
{
    reply_code(req, 404, "not_found", field, "no such migration or instance");
}

/* Decides (and audits) whether who may do action on the migration or
 * instance described by project/instance/id/host. Does not reply. The
 * records of read decisions (show, list) are deferred to the 100 ms flush
 * (docs/FERRYD.md, "Audit"); those of writes are durable before the reply. */
static bool decide(struct coord *c, const struct store_token *who, const char *action,
                   const char *project, const char *instance, const char *id, const char *host,
                   bool audit)
{
    char roles_buf[STORE_ROLES_MAX + 1];
    const char *roles[AUTH_ROLES_MAX];
    snprintf(roles_buf, sizeof(roles_buf), "%s", who->roles);
    size_t nroles = auth_split_roles(roles_buf, roles, AUTH_ROLES_MAX);
    struct policy_subject subj = {who->user, who->project, roles, nroles};
    struct policy_kv kv[] = {
        {"project_id", project}, {"instance", instance}, {"migration", id}, {"host", host}};
    struct policy_target tgt = {kv, 4};
    bool allowed = false;
    if (policy_check(&c->pol, action, &subj, &tgt, &allowed) != 0)
        allowed = false;
    if (!audit)
        return allowed;
    struct store_audit a = {.time_ms = coord_now_ms()};
    snprintf(a.subject, sizeof(a.subject), "%s@%s", who->user, who->project);
    snprintf(a.action, sizeof(a.action), "%s", action);
    if (id)
        snprintf(a.target, sizeof(a.target), "migration/%s", id);
    else if (instance)
        snprintf(a.target, sizeof(a.target), "instance/%s", instance);
    else
        snprintf(a.target, sizeof(a.target), "migrations");
    snprintf(a.decision, sizeof(a.decision), "%s", allowed ? "allow" : "deny");
    struct ferr e = {0};
    bool read = strcmp(action, "migration:show") == 0 || strcmp(action, "migration:list") == 0;
    if ((read ? store_audit_defer(c->st, &a, &e) : store_audit_append(c->st, &a, &e)) != 0)
        log_error("api", "msg=\"audit write failed\" err=\"%s\"", e.msg);
    log_info("audit", "subject=%s action=%s target=%s decision=%s", a.subject, action, a.target,
             a.decision);
    return allowed;
}

/* Appends event type for migration m-like identity with extra (stolen,
 * may be NULL) merged into the payload, inside the open transaction. */
static int emit(struct coord *c, const char *type, const char *id, const char *instance,
                const char *project, const char *source, const char *destination, json_t *extra,
                int64_t now_ms, struct ferr *e)
{
    json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", id, "instance", instance, "project_id",
                          project, "source", source, "destination", destination);
    if (extra) {
        json_object_update(p, extra);
        json_decref(extra);
    }
    char *text = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    struct store_event ev = {.time_ms = now_ms, .payload = text, .version = EVENT_VERSION};
    snprintf(ev.type, sizeof(ev.type), "%s", type);
    snprintf(ev.subject, sizeof(ev.subject), "migration/%s", id);
    int rc = store_event_append(c->st, &ev, NULL, e);
    free(text);
    return rc;
}

/* ---- the record as the API shows it ----------------------------------- */

static json_t *ms_or_null(int64_t v)
{
    return v < 0 ? json_null() : json_integer((json_int_t)v);
}

/* The record as show and list answer it: a pure function of the row m
 * and show_hosts. The read cache (migcache.h) keeps its text per (id,
 * created_ms, rev) and relies on that: a field taken from anywhere else (an
 * orch's in-memory state, another table, the clock) would be served stale;
 * put it into the row (then every change raises rev) instead. */
static json_t *rec_json(const struct store_migration *m, bool show_hosts)
{
    json_t *detail = json_load_or_null(m->detail_json);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", m->id, "instance", m->instance,
                          "project_id", m->project, "state", m->state, "phase", m->phase);
    if (show_hosts) {
        json_object_set_new(o, "source", json_string(m->source));
        json_object_set_new(o, "destination",
                            m->destination[0] ? json_string(m->destination) : json_null());
    }
    json_t *pol = json_load_or_null(m->policy_json), *lim = json_load_or_null(m->limits_json);
    json_object_set_new(o, "policy", pol ? pol : json_null());
    json_object_set_new(o, "limits", lim ? lim : json_null());
    json_t *rl = detail ? json_object_get(detail, "requested_limits") : NULL;
    json_object_set(o, "requested_limits", rl ? rl : json_null());
    json_object_set_new(o, "progress",
                        json_pack("{s:f, s:{s:I, s:I}, s:{s:I, s:I}}", "pct", m->progress_pct,
                                  "memory", "total_bytes", (json_int_t)m->mem_total_bytes,
                                  "remaining_bytes", (json_int_t)m->mem_remaining_bytes, "disk",
                                  "total_bytes", (json_int_t)m->disk_total_bytes, "remaining_bytes",
                                  (json_int_t)m->disk_remaining_bytes));
    json_object_set_new(o, "eta",
                        m->eta_ms < 0 ? json_null()
                                      : json_pack("{s:I, s:o, s:o}", "ms", (json_int_t)m->eta_ms,
                                                  "low_ms", ms_or_null(m->eta_low_ms), "high_ms",
                                                  ms_or_null(m->eta_high_ms)));
    json_object_set_new(o, "downtime_ms", ms_or_null(m->downtime_ms));
    json_t *gi = detail ? json_object_get(detail, "guest_impact") : NULL;
    if (gi)
        json_object_set(o, "guest_impact", gi);
    else
        json_object_set_new(o, "guest_impact",
                            json_pack("{s:i, s:i}", "throttle_pct", 0, "dirty_pages_rate", 0));
    json_t *stalls = detail ? json_object_get(detail, "stalls") : NULL;
    json_object_set_new(o, "stalls", json_integer(json_integer_value(stalls)));
    json_t *res = detail ? json_object_get(detail, "result") : NULL;
    json_object_set(o, "result", res ? res : json_null());
    json_object_set_new(o, "started_by",
                        json_pack("{s:s, s:s}", "user", m->user, "project", m->project));
    json_object_set_new(o, "created", sse_time_json(m->created_ms));
    json_object_set_new(o, "updated", sse_time_json(m->updated_ms));
    json_object_set_new(o, "last_error", json_string(m->last_error));
    json_t *k = detail ? json_object_get(detail, "consent") : NULL;
    json_object_set(o, "consent", json_is_object(k) ? k : json_null()); /* the override */
    json_decref(detail);
    return o;
}

/* ---- persistence of one orchestration step ---------------------------- */

/* The guest's side of the agent's record a (borrowed): the newest
 * sample's CPU throttle and dirty rate, and — when the agent measured the
 * guest's disk — its "disk" impact report (baseline vs during: throughput,
 * latency p50/p99, retained %, p99 ratio, CPU throttle time, io throttle)
 * and the impact budget's state. Returns a new object. */
static json_t *guest_impact(const json_t *a, const json_t *s)
{
    json_t *gi = json_pack("{s:I, s:I}", "throttle_pct",
                           json_integer_value(json_object_get(s, "throttle_pct")),
                           "dirty_pages_rate",
                           json_integer_value(json_object_get(s, "dirty_pages_rate")));
    const json_t *imp = json_object_get(a, "impact");
    if (json_is_object(imp)) {
        static const char *const keys[] = {"baseline",      "during",
                                           "throughput_retained_pct", "p99_latency_ratio",
                                           "latency_basis", "cpu_throttle_ms",
                                           "io_throttle",   NULL};
        json_t *d = json_object();
        for (int i = 0; keys[i]; i++) {
            json_t *v = json_object_get(imp, keys[i]);
            if (v)
                json_object_set_new(d, keys[i], json_deep_copy(v));
        }
        json_object_set_new(gi, "disk", d);
        json_object_set(gi, "cpu_throttle_ms", json_object_get(imp, "cpu_throttle_ms"));
    }
    const json_t *b = json_object_get(a, "budget");
    if (json_is_object(b))
        json_object_set_new(gi, "budget", json_deep_copy(b));
    return gi;
}

/* Copies the figures of the agent's migration record (borrowed, may be
 * NULL) into m and its detail. */
static void absorb_agent(struct store_migration *m, json_t *detail, const json_t *a,
                         const struct orch *o)
{
    json_object_set_new(detail, "agent_migration", json_string(o->agent_mig));
    json_object_set_new(detail, "stalls", json_integer((json_int_t)o->stalls_seen));
    json_object_set_new(detail, "budget_events", json_integer((json_int_t)o->budget_seen));
    if (!a)
        return;
    const json_t *s = json_object_get(a, "last_sample");
    uint64_t total = (uint64_t)json_integer_value(json_object_get(s, "ram_total"));
    uint64_t rem = (uint64_t)json_integer_value(json_object_get(s, "ram_remaining"));
    if (total) {
        m->mem_total_bytes = total;
        m->mem_remaining_bytes = rem;
    }
    const json_t *est = json_object_get(a, "estimate");
    double pct = -1;
    if (est) {
        pct = json_number_value(json_object_get(est, "progress_pct"));
        const json_t *eta = json_object_get(est, "eta_ms");
        m->eta_ms = json_is_integer(eta) ? json_integer_value(eta) : -1;
        eta = json_object_get(est, "eta_low_ms");
        m->eta_low_ms = json_is_integer(eta) ? json_integer_value(eta) : -1;
        eta = json_object_get(est, "eta_high_ms");
        m->eta_high_ms = json_is_integer(eta) ? json_integer_value(eta) : -1;
    } else if (total && rem <= total) {
        pct = 100.0 * (double)(total - rem) / (double)total;
    }
    if (pct >= 0 && pct <= 100 && pct >= m->progress_pct)
        m->progress_pct = pct; /* never backwards */
    json_object_set_new(detail, "guest_impact", guest_impact(a, s));
    const json_t *res = json_object_get(a, "result");
    if (json_is_object(res)) {
        json_object_set(detail, "result", (json_t *)res);
        m->downtime_ms = json_integer_value(json_object_get(res, "downtime_ms"));
    }
    const char *ast = json_string_value(json_object_get(a, "state"));
    if (ast)
        json_object_set_new(detail, "agent_state", json_string(ast));
}

/* Writes o's state (or "unknown", "queued"), phase, destination, the agent
 * figures (a, borrowed, may be NULL) and error (may be NULL) into its row,
 * inside the open transaction; now is the row's updated_ms. */
static int write_row(struct orch *o, const json_t *a, const char *error, int64_t now,
                     struct ferr *e)
{
    struct coord *c = o->c;
    struct store_migration m;
    int rc = store_migration_get(c->st, o->id, &m, e);
    if (rc)
        return rc;
    json_t *detail = json_load_or_null(m.detail_json);
    if (!json_is_object(detail)) {
        json_decref(detail);
        detail = json_object();
    }
    absorb_agent(&m, detail, a, o);
    if (o->unknown)
        json_object_set_new(detail, "last_state", json_string(migstate_name(o->st)));
    snprintf(m.state, sizeof(m.state), "%s",
             o->unknown ? "unknown" : o->queued ? "queued" : migstate_name(o->st));
    snprintf(m.phase, sizeof(m.phase), "%s", o->phase);
    snprintf(m.destination, sizeof(m.destination), "%s", o->destination);
    if (error)
        snprintf(m.last_error, sizeof(m.last_error), "%s", error);
    m.updated_ms = now;
    free(m.detail_json);
    m.detail_json = json_dumps(detail, JSON_COMPACT);
    json_decref(detail);
    rc = store_migration_update(c->st, &m, e);
    store_migration_clear(&m);
    return rc;
}

static void pending_clear(struct orch *o)
{
    if (!o->pend_body)
        return;
    json_decref(o->pend_body);
    json_decref(o->pend_extra);
    o->pend_body = o->pend_extra = NULL;
    o->pend_tries = 0;
    o->pend_in_tx = false;
    o->c->mig->npending--;
}

/* Writes every waiting progress answer into the open transaction (rows'
 * updated_ms and events' time: now, the commit's time, so event times
 * follow seq order as for every other write), each
 * between a savepoint and its release: one whose write fails is taken back
 * alone (rows and event: no seq is used) and waits for the next commit, or
 * is dropped — logged and counted — after PENDING_TRIES_MAX failures. The
 * ones written are marked pend_in_tx; pending_done settles them after the
 * commit (or its failure). */
static void pending_write(struct coord *c, int64_t now)
{
    if (c->mig->npending == 0)
        return;
    for (struct orch *o = c->mig->list; o; o = o->next) {
        if (!o->pend_body || o->pend_in_tx)
            continue;
        struct ferr e = {0};
        int rc = store_tx_mark(c->st, &e);
        if (rc == 0)
            rc = write_row(o, o->pend_body, NULL, now, &e);
        if (rc == 0 && o->pend_extra) {
            rc = emit(c, "migration.progress", o->id, o->instance, o->project, o->source,
                      o->destination, json_incref(o->pend_extra), now, &e);
        }
        if (rc == 0)
            rc = store_tx_release(c->st, &e);
        if (rc == 0) {
            o->pend_in_tx = true;
            continue;
        }
        store_tx_undo(c->st);
        c->mig->stats.progress_failed++;
        if (++o->pend_tries >= PENDING_TRIES_MAX) {
            log_error("migrate",
                      "msg=\"progress dropped: its write failed %d times\" id=%s err=\"%s\"",
                      o->pend_tries, o->id, e.msg);
            c->mig->stats.progress_dropped++;
            pending_clear(o);
        } else {
            log_warn("migrate", "msg=\"progress write failed; retried at the next commit\" id=%s "
                     "err=\"%s\"", o->id, e.msg);
        }
    }
}

/* After the transaction of pending_write: committed (ok) clears what it
 * wrote; else (the transaction as a whole failed, e.g. the store busy) the
 * answers wait for the next commit — as long as it takes: one per orch. */
static void pending_done(struct coord *c, bool ok)
{
    if (c->mig->npending == 0)
        return;
    size_t n = 0;
    for (struct orch *o = c->mig->list; o; o = o->next) {
        if (!o->pend_in_tx)
            continue;
        if (ok) {
            n++;
            pending_clear(o);
        } else {
            o->pend_in_tx = false; /* waits for the next commit */
        }
    }
    c->mig->stats.progress_written += n;
}

static void arm_commit(struct coord *c)
{
    if (c->mig->commit_armed || !c->mig->commit)
        return;
    struct timeval tv = {0, PROGRESS_COMMIT_MS * 1000};
    event_add(c->mig->commit, &tv);
    c->mig->commit_armed = true;
}

/* The group commit: every waiting progress answer in one transaction. */
static void commit_pending(struct coord *c)
{
    if (c->mig->npending == 0)
        return;
    struct ferr e = {0};
    int rc = store_tx_begin(c->st, &e);
    if (rc == 0) {
        pending_write(c, coord_now_ms());
        rc = store_tx_commit(c->st, &e);
    }
    pending_done(c, rc == 0);
    if (rc == 0) {
        c->mig->stats.progress_commits++;
    } else {
        c->mig->stats.progress_commit_failed++;
        log_error("migrate", "msg=\"progress group commit failed; retried\" waiting=%zu err=\"%s\"",
                  c->mig->npending, e.msg);
    }
    if (c->mig->npending)
        arm_commit(c); /* failed ones: the next window */
}

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord *c = arg;
    c->mig->commit_armed = false;
    commit_pending(c);
}

/* Queues the agent's record a (borrowed) of o and, when extra (stolen) is
 * not NULL, its migration.progress event for the group commit. An answer
 * waiting already is replaced by the newer one (its figures are absolute);
 * when both carry an event the waiting ones are committed first, so no
 * event is lost (unless that commit fails: then the newer event is dropped
 * and counted, the older one waits). */
static void pending_add(struct orch *o, const json_t *a, json_t *extra)
{
    struct coord *c = o->c;
    if (o->pend_extra && extra) {
        commit_pending(c);
        if (o->pend_extra) { /* still waiting: the store fails; the older event stays */
            json_decref(extra);
            extra = NULL;
            c->mig->stats.progress_dropped++;
        }
    }
    if (!o->pend_body) {
        c->mig->npending++;
        o->pend_tries = 0;
    } else {
        json_decref(o->pend_body);
    }
    o->pend_body = json_deep_copy(a);
    if (extra)
        o->pend_extra = extra;
    arm_commit(c);
}

/* Writes o's row as write_row does and, when ev_type is not NULL, the
 * event with extra (stolen) — in one transaction, committed before this
 * returns. Progress waiting for the group commit (every migration's) is
 * written first in the same transaction, so events keep their order. */
static int persist(struct orch *o, const json_t *a, const char *error, const char *ev_type,
                   json_t *extra)
{
    struct coord *c = o->c;
    struct ferr e = {0};
    int64_t now = coord_now_ms();
    int rc;
    if ((rc = store_tx_begin(c->st, &e)) != 0)
        goto out;
    pending_write(c, now);
    if ((rc = write_row(o, a, error, now, &e)) != 0 ||
        (ev_type && (rc = emit(c, ev_type, o->id, o->instance, o->project, o->source,
                               o->destination, extra, now, &e)) != 0)) {
        extra = NULL;
        store_tx_rollback(c->st);
        pending_done(c, false);
        goto out;
    }
    extra = NULL;
    rc = store_tx_commit(c->st, &e);
    pending_done(c, rc == 0);
    if (rc == 0)
        c->mig->stats.lifecycle_commits++;
out:
    json_decref(extra);
    if (rc)
        log_error("migrate", "msg=\"cannot record migration\" id=%s err=\"%s\"", o->id, e.msg);
    return rc;
}

static void set_phase(struct orch *o, const char *phase)
{
    snprintf(o->phase, sizeof(o->phase), "%s", phase);
}

/* Applies ev through the state machine; returns 0 when legal. */
static int advance(struct orch *o, enum migstate_event ev)
{
    enum migstate nx;
    int rc = migstate_next(o->st, ev, &nx);
    if (rc == 0) {
        log_info("migrate", "msg=\"transition\" id=%s from=%s event=%s to=%s", o->id,
                 migstate_name(o->st), migstate_event_name(ev), migstate_name(nx));
        o->st = nx;
    }
    return rc;
}

static void finish(struct orch *o)
{
    o->step = OS_DONE;
    set_phase(o, "done");
    coordplans_kick(o->c, o->source, o->destination); /* a plan may start its next guest */
}

static void clean_dest_then(struct orch *o, enum migstate after);

/* Records a failure (with its event) and cleans the destination when this
 * orchestration may have prepared one that the agent will not clean. */
static void fail(struct orch *o, const char *why, bool clean_dest)
{
    enum migstate last = o->st;
    if (advance(o, MIGEV_FAIL) != 0) { /* terminal already: nothing left to do */
        finish(o);
        return;
    }
    o->unknown = false;
    set_phase(o, "done");
    log_warn("migrate", "msg=\"migration failed\" id=%s err=\"%s\"", o->id, why);
    (void)persist(o, NULL, why, "migration.failed",
                  json_pack("{s:s, s:s}", "error", why, "last_state", migstate_name(last)));
    if (clean_dest && o->incoming_posted)
        clean_dest_then(o, MIGSTATE_FAILED);
    else
        finish(o);
}

/* ---- agent requests ---------------------------------------------------- */

static char *host_url(struct coord *c, const char *host)
{
    struct store_host h;
    if (store_host_get(c->st, host, &h, NULL) != 0)
        return NULL;
    return xstrdup(h.url);
}

static bool host_down(struct coord *c, const char *host)
{
    struct store_host h;
    return store_host_get(c->st, host, &h, NULL) == 0 && strcmp(h.state, "down") == 0;
}

/* Sends a request to host's agent for o; cb gets o. Fails the migration
 * when the host is unknown. */
static void agent_send(struct orch *o, const char *host, const char *method, const char *path,
                       const json_t *body, agentc_cb cb)
{
    char *url = host_url(o->c, host);
    if (!url) {
        char why[STORE_ERROR_MAX + 1];
        snprintf(why, sizeof(why), "host %s is no longer registered", host);
        fail(o, why, false);
        return;
    }
    o->inflight = true;
    agentc_request(o->c->base, url, o->c->mig->agent_token, method, path, body, AGENT_TIMEOUT_S,
                   cb, o);
    free(url);
}

/* The reason of a refused agent request, for last_error: the agent's own
 * message, or for a 401 what to do about it. */
static void agent_why(char *buf, size_t n, const char *what, int status, const json_t *body,
                      const struct ferr *e)
{
    const char *msg = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    if (status == 401)
        snprintf(buf, n,
                 "%s: the agent refused ferryd's credentials (401 unauthorised); set "
                 "agent_token_file in ferryd's configuration to the agents' --token-file token",
                 what);
    else
        snprintf(buf, n, "%s (%d): %s", what, status, e ? e->msg : (msg ? msg : "no detail"));
}

static void on_cleaned(int status, json_t *body, const struct ferr *e, void *arg)
{
    (void)body;
    struct orch *o = arg;
    o->inflight = false;
    if (status != 202 && status != 404)
        log_warn("migrate", "msg=\"destination cleanup incomplete\" id=%s status=%d err=\"%s\"",
                 o->id, status, e ? e->msg : "");
    o->incoming_posted = false;
    if (o->after_clean == MIGSTATE_CANCELLED && advance(o, MIGEV_CANCELLED) == 0) {
        set_phase(o, "done");
        (void)persist(o, NULL, NULL, "migration.cancelled", NULL);
    }
    finish(o);
}

static void clean_dest_then(struct orch *o, enum migstate after)
{
    o->after_clean = after;
    o->step = OS_CLEAN_DEST;
    o->next_ms = 0;
}

static void do_clean_dest(struct orch *o)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/instances/%s", o->instance);
    agent_send(o, o->destination, "DELETE", path, NULL, on_cleaned);
}

/* A cancel arrived while the destination was being prepared (no agent
 * migration yet): clean the destination, then record cancelled. */
static bool cancelled_while_preparing(struct orch *o)
{
    if (o->st != MIGSTATE_CANCELLING || o->agent_mig[0])
        return false;
    if (o->incoming_posted)
        clean_dest_then(o, MIGSTATE_CANCELLED);
    else
        on_cleaned(202, NULL, NULL, o);
    return true;
}

static void on_started(int status, json_t *body, const struct ferr *e, void *arg);
static void step(struct orch *o);

/* The source refused with 409: after a ferryd crash between the agent's
 * 202 and ferryd's commit, the migration exists already on the agent.
 * Adopt the agent's unfinished migration of this instance, if any. */
static void on_source_list(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct orch *o = arg;
    o->inflight = false;
    size_t i;
    json_t *m, *found = NULL;
    json_array_foreach(json_object_get(body, "migrations"), i, m)
    {
        const char *st = json_string_value(json_object_get(m, "state"));
        const char *in = json_string_value(json_object_get(m, "instance"));
        if (!found && st && in && strcmp(in, o->instance) == 0 && strcmp(st, "succeeded") != 0 &&
            strcmp(st, "failed") != 0 && strcmp(st, "cancelled") != 0)
            found = m;
    }
    if (status == 200 && found) {
        log_info("migrate",
                 "msg=\"adopting the source agent's migration\" id=%s agent_migration=%s", o->id,
                 json_string_value(json_object_get(found, "id")));
        on_started(202, found, NULL, o);
        return;
    }
    on_started(409, NULL, e, o); /* no such migration: the refusal stands */
}

static void on_started(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct orch *o = arg;
    o->inflight = false;
    const char *aid = json_string_value(json_object_get(body, "id"));
    if (status == 409 && body && !o->adopt_tried) {
        o->adopt_tried = true;
        agent_send(o, o->source, "GET", "/v1/migrations", NULL, on_source_list);
        return;
    }
    if (status != 202 || !aid) {
        if (cancelled_while_preparing(o))
            return;
        char why[STORE_ERROR_MAX + 1];
        agent_why(why, sizeof(why), "the source agent refused the migration", status, body, e);
        fail(o, why, true);
        return;
    }
    snprintf(o->agent_mig, sizeof(o->agent_mig), "%s", aid);
    o->last_answer_ms = coord_now_ms();
    o->step = OS_POLL;
    o->next_ms = coord_now_ms() + POLL_MS;
    if (o->st == MIGSTATE_CANCELLING) { /* cancelled meanwhile: forward it now */
        o->step = OS_CANCEL_SOURCE;
        o->next_ms = 0;
        (void)persist(o, body, NULL, "migration.started",
                      json_pack("{s:s}", "agent_migration", aid));
        return;
    }
    if (advance(o, MIGEV_PREPARED) != 0)
        return;
    set_phase(o, "running");
    (void)persist(o, body, NULL, "migration.started", json_pack("{s:s}", "agent_migration", aid));
}

static void on_incoming_state(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct orch *o = arg;
    o->inflight = false;
    if (cancelled_while_preparing(o))
        return;
    const char *uri = json_string_value(json_object_get(body, "incoming_uri"));
    const char *err = json_string_value(json_object_get(body, "last_error"));
    if (status == 200 && err && err[0]) {
        char why[STORE_ERROR_MAX + 1];
        snprintf(why, sizeof(why), "the destination could not prepare: %s", err);
        fail(o, why, true);
        return;
    }
    if (status == 200 && uri && uri[0]) {
        o->step = OS_START_SOURCE;
        o->next_ms = 0;
        json_object_set_new(o->spec ? o->spec : (o->spec = json_object()), "_dest_uri",
                            json_string(uri));
        set_phase(o, "start_source");
        step(o); /* at once, not at the next tick */
        return;
    }
    if (coord_now_ms() > o->deadline_ms) {
        char why[STORE_ERROR_MAX + 1];
        snprintf(why, sizeof(why), "the destination did not listen within %d s (%s)",
                 INCOMING_WAIT_MS / 1000, e ? e->msg : "no incoming_uri");
        fail(o, why, true);
        return;
    }
    o->next_ms = coord_now_ms() + POLL_MS;
}

static void on_incoming_posted(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct orch *o = arg;
    o->inflight = false;
    if (status == 202 || status == 409) /* 409: prepared already (ferryd restarted) */
        o->incoming_posted = true;
    if (cancelled_while_preparing(o))
        return;
    if (status != 202 && status != 409) {
        char why[STORE_ERROR_MAX + 1];
        agent_why(why, sizeof(why), "the destination refused the incoming guest", status, body, e);
        fail(o, why, true);
        return;
    }
    o->step = OS_WAIT_INCOMING;
    o->deadline_ms = coord_now_ms() + INCOMING_WAIT_MS;
    o->next_ms = coord_now_ms(); /* first look at the next tick, then every POLL_MS */
    set_phase(o, "wait_incoming");
    (void)persist(o, NULL, NULL, NULL, NULL);
}

static void on_spec(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct orch *o = arg;
    o->inflight = false;
    if (cancelled_while_preparing(o))
        return;
    json_t *spec = json_object_get(body, "spec");
    if (status != 200 || !json_is_object(spec)) {
        char why[STORE_ERROR_MAX + 1], what[128];
        snprintf(what, sizeof(what), "cannot read instance %s on the source", o->instance);
        agent_why(why, sizeof(why), what, status, body, e);
        fail(o, why, false);
        return;
    }
    json_decref(o->spec);
    o->spec = json_deep_copy(spec);
    o->step = OS_POST_INCOMING;
    o->next_ms = 0;
    step(o); /* at once, not at the next tick */
}

/* ---- mirroring the source agent's record ----------------------------- */

/* The agent's impact budget verdicts (its "report_budget" events: the
 * budget and convergence conflict, the budget is waived, ...) become
 * migration.budget events, each once. */
static void report_budget(struct orch *o, const json_t *a)
{
    const json_t *evs = json_object_get(a, "events");
    size_t k = 0;
    for (size_t i = 0; i < json_array_size(evs); i++) {
        const json_t *x = json_array_get(evs, i);
        const char *act = json_string_value(json_object_get(x, "action"));
        if (!act || strcmp(act, "report_budget") != 0)
            continue;
        if (k++ < o->budget_seen)
            continue;
        o->budget_seen = k;
        const char *v = json_string_value(json_object_get(x, "verdict"));
        const char *r = json_string_value(json_object_get(x, "reason"));
        (void)persist(o, a, NULL, "migration.budget",
                      json_pack("{s:s, s:s, s:I}", "verdict", v ? v : "", "reason", r ? r : "",
                                "t_ms", json_integer_value(json_object_get(x, "t_ms"))));
    }
}

static void report_stalls(struct orch *o, const json_t *a)
{
    const json_t *st = json_object_get(a, "stalls");
    size_t n = json_array_size(st);
    for (size_t i = o->stalls_seen; i < n; i++) {
        const json_t *s = json_array_get(st, i);
        o->stalls_seen = i + 1;
        (void)persist(o, a, NULL, "migration.stalled",
                      json_pack("{s:s, s:s, s:I}", "stall",
                                json_string_value(json_object_get(s, "stall"))
                                    ? json_string_value(json_object_get(s, "stall"))
                                    : "",
                                "reason",
                                json_string_value(json_object_get(s, "reason"))
                                    ? json_string_value(json_object_get(s, "reason"))
                                    : "",
                                "t_ms", json_integer_value(json_object_get(s, "t_ms"))));
    }
}

static void leave_unknown(struct orch *o)
{
    if (!o->unknown)
        return;
    o->unknown = false;
    log_info("migrate", "msg=\"source agent answers again; reconciling\" id=%s", o->id);
}

static void on_poll(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct orch *o = arg;
    int64_t now = coord_now_ms();
    o->inflight = false;
    o->next_ms = now + (o->unknown ? UNKNOWN_POLL_MS : POLL_MS);
    if (status == 0) {
        if (!o->unknown && now - o->last_answer_ms > UNKNOWN_AFTER_MS) {
            o->unknown = true;
            set_phase(o, "source_unreachable");
            (void)persist(o, NULL, e ? e->msg : "source agent unreachable", "migration.unknown",
                          json_pack("{s:s}", "last_state", migstate_name(o->st)));
        }
        return;
    }
    o->last_answer_ms = now;
    if (status == 404) {
        leave_unknown(o);
        fail(o, "the source agent lost the migration", false);
        return;
    }
    const char *ast = json_string_value(json_object_get(body, "state"));
    if (status != 200 || !ast)
        return; /* try again at the next poll */
    enum migstate st0 = o->st;
    bool unknown0 = o->unknown;
    size_t stalls0 = o->stalls_seen, budget0 = o->budget_seen;
    bool ended = !strcmp(ast, "succeeded") || !strcmp(ast, "failed") || !strcmp(ast, "cancelled");
    if (o->unknown && !ended && host_down(o->c, o->source))
        return; /* unknown until the host is back (it re-registers) or the outcome is known */
    leave_unknown(o);
    report_stalls(o, body);
    report_budget(o, body);
    coordconsent_observe(o->c, o->id, o->instance, o->project, body);
    set_phase(o, ast);
    const char *aerr = json_string_value(json_object_get(body, "error"));
    if (strcmp(ast, "succeeded") == 0) {
        if (o->st != MIGSTATE_COMPLETING)
            (void)advance(o, MIGEV_COMPLETED);
        if (advance(o, MIGEV_DEST_CONFIRMED) != 0) {
            fail(o, "the agent reports success in an impossible state", false);
            return;
        }
        const json_t *res = json_object_get(body, "result");
        if (o->last_progress_ms == 0) {
            /* Finished between two polls: consumers still get one progress
             * event (100 %) before the completion, as for longer ones. */
            (void)persist(o, body, NULL, "migration.progress",
                          json_pack("{s:f, s:I, s:I, s:s}", "pct", 100.0, "remaining_bytes",
                                    (json_int_t)0, "eta_ms", (json_int_t)0, "phase", ast));
        }
        set_phase(o, "done");
        json_t *done = json_pack("{s:I, s:I}", "downtime_ms",
                                 json_integer_value(json_object_get(res, "downtime_ms")),
                                 "total_time_ms",
                                 json_integer_value(json_object_get(res, "total_time_ms")));
        const json_t *imp = json_object_get(body, "impact");
        if (json_is_object(imp)) { /* the guest's disk: the impact report in brief */
            const json_t *bv = json_object_get(json_object_get(body, "budget"), "verdict");
            json_object_set_new(
                done, "guest_impact",
                json_pack("{s:O?, s:O?, s:O?, s:O?}", "throughput_retained_pct",
                          json_object_get(imp, "throughput_retained_pct"), "p99_latency_ratio",
                          json_object_get(imp, "p99_latency_ratio"), "cpu_throttle_ms",
                          json_object_get(imp, "cpu_throttle_ms"), "budget_verdict", bv));
        }
        (void)persist(o, body, NULL, "migration.completed", done);
        /* The guest runs on the destination: say so in the inventory now,
         * not only at the agents' next registrations (placement, and a
         * plan draining the destination next, read it). */
        struct ferr me = {0};
        if (store_instance_move(o->c->st, o->instance, o->destination, &me) != 0)
            log_warn("migrate", "msg=\"cannot move the instance in the inventory\" id=%s err=\"%s\"",
                     o->id, me.msg);
        finish(o);
        return;
    }
    if (strcmp(ast, "failed") == 0) {
        char why[STORE_ERROR_MAX + 1];
        snprintf(why, sizeof(why), "%s",
                 aerr && aerr[0] ? aerr : "the source agent reports failure");
        (void)persist(o, body, NULL, NULL, NULL);
        fail(o, why, false); /* the agent cleaned the destination */
        return;
    }
    if (strcmp(ast, "cancelled") == 0) {
        if (o->st != MIGSTATE_CANCELLING && advance(o, MIGEV_CANCEL) != 0) {
            fail(o, "cancelled by the agent in a state that cannot be cancelled", false);
            return;
        }
        (void)advance(o, MIGEV_CANCELLED);
        set_phase(o, "done");
        (void)persist(o, body, aerr && aerr[0] ? aerr : NULL, "migration.cancelled", NULL);
        finish(o);
        return;
    }
    if (strcmp(ast, "postcopy") == 0 && o->st != MIGSTATE_POSTCOPY)
        (void)advance(o, MIGEV_POSTCOPY);
    else if (strcmp(ast, "confirming") == 0 && o->st != MIGSTATE_COMPLETING)
        (void)advance(o, MIGEV_COMPLETED);
    else if (strcmp(ast, "cancelling") == 0 && o->st != MIGSTATE_CANCELLING)
        (void)advance(o, MIGEV_CANCEL);
    double rate = o->c->cfg.progress_events_per_s > 0 ? o->c->cfg.progress_events_per_s : 1;
    const char *ev = NULL;
    json_t *extra = NULL;
    if ((o->st == MIGSTATE_RUNNING || o->st == MIGSTATE_POSTCOPY) &&
        (double)(now - o->last_progress_ms) >= 1000.0 / rate) {
        const json_t *est = json_object_get(body, "estimate");
        const json_t *s = json_object_get(body, "last_sample");
        const json_t *eta = json_object_get(est, "eta_ms");
        ev = "migration.progress";
        extra = json_pack(
            "{s:f, s:I, s:o, s:s}", "pct", json_number_value(json_object_get(est, "progress_pct")),
            "remaining_bytes", json_integer_value(json_object_get(s, "ram_remaining")), "eta_ms",
            json_is_integer(eta) ? json_integer(json_integer_value(eta)) : json_null(), "phase",
            ast);
        o->last_progress_ms = now;
    }
    (void)ev;
    if (o->st == st0 && !unknown0 && o->stalls_seen == stalls0 && o->budget_seen == budget0)
        pending_add(o, body, extra); /* figures only: the group commit */
    else
        (void)persist(o, body, NULL, ev, extra); /* a transition: now */
}

static void on_cancel_sent(int status, json_t *body, const struct ferr *e, void *arg)
{
    (void)body;
    struct orch *o = arg;
    o->inflight = false;
    if (status != 202)
        log_warn("migrate",
                 "msg=\"source agent did not take the cancel\" id=%s status=%d err=\"%s\"", o->id,
                 status, e ? e->msg : "");
    o->step = OS_POLL; /* the agent's record decides the outcome */
    o->next_ms = coord_now_ms() + POLL_MS;
}

/* ---- the tick ---------------------------------------------------------- */

/* A source host marked down (missed heartbeats) moves a running
 * migration to unknown at once, even with a request to it in flight. */
static void check_source_host(struct orch *o)
{
    if (o->step == OS_QUEUED || o->step == OS_DONE || o->step == OS_CLEAN_DEST || o->unknown ||
        !host_down(o->c, o->source))
        return;
    o->unknown = true;
    set_phase(o, "source_host_down");
    log_warn("migrate", "msg=\"source host down; migration state unknown\" id=%s host=%s", o->id,
             o->source);
    (void)persist(o, NULL, "the source host is down (missed heartbeats)", "migration.unknown",
                  json_pack("{s:s}", "last_state", migstate_name(o->st)));
}

/* True when policy (borrowed, may be NULL) may switch to post-copy:
 * permit_post_copy, or a schedule entry with action postcopy. */
static bool policy_permits_postcopy(const json_t *policy)
{
    if (json_is_true(json_object_get(policy, "permit_post_copy")))
        return true;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(policy, "entries"), i, x)
    {
        const char *act = json_string_value(json_object_get(x, "action"));
        if (act && strcmp(act, "postcopy") == 0)
            return true;
    }
    return false;
}

static void step(struct orch *o)
{
    struct coord *c = o->c;
    char path[192];
    int64_t now = coord_now_ms();
    if (o->unknown && !o->agent_mig[0]) {
        if (host_down(c, o->source))
            return; /* wait for the host to come back */
        o->unknown = false;
        fail(o, "the source host was down while the destination was being prepared", true);
        return;
    }
    switch (o->step) {
    case OS_QUEUED: {
        if (!o->admitted)
            return; /* admit_queued decides, in FIFO order */
        if (o->st == MIGSTATE_REQUESTED && advance(o, MIGEV_ADMIT) != 0)
            return;
        bool was_queued = o->queued;
        o->queued = false;
        o->step = OS_GET_SPEC;
        set_phase(o, STEP_PHASE[OS_GET_SPEC]);
        (void)persist(o, NULL, NULL, was_queued ? "migration.admitted" : NULL,
                      was_queued ? json_pack("{s:I}", "queued_ms", (json_int_t)(now - o->created_ms))
                                 : NULL);
    }
        /* fall through */
    case OS_GET_SPEC:
        snprintf(path, sizeof(path), "/v1/instances/%s", o->instance);
        agent_send(o, o->source, "GET", path, NULL, on_spec);
        break;
    case OS_POST_INCOMING: {
        /* a policy that may switch to post-copy needs postcopy-ram on the
           destination too (docs/AGENT.md "Post-copy") */
        json_t *b = json_deep_copy(o->spec);
        json_object_del(b, "_dest_uri");
        if (policy_permits_postcopy(o->policy))
            json_object_set_new(b, "postcopy", json_true());
        agent_send(o, o->destination, "POST", "/v1/incoming", b, on_incoming_posted);
        json_decref(b);
        break;
    }
    case OS_WAIT_INCOMING:
        snprintf(path, sizeof(path), "/v1/instances/%s", o->instance);
        agent_send(o, o->destination, "GET", path, NULL, on_incoming_state);
        break;
    case OS_START_SOURCE: {
        char *durl = host_url(c, o->destination);
        json_t *b = json_pack("{s:s, s:s, s:s}", "instance", o->instance, "dest_uri",
                              json_string_value(json_object_get(o->spec, "_dest_uri")),
                              "dest_agent", durl ? durl : "");
        free(durl);
        if (o->limits)
            json_object_set(b, "limits", o->limits);
        if (o->policy)
            json_object_set(b, "policy", o->policy);
        agent_send(o, o->source, "POST", "/v1/migrations", b, on_started);
        json_decref(b);
        break;
    }
    case OS_POLL:
        if (o->st == MIGSTATE_CANCELLING && o->agent_mig[0] && !o->unknown && !o->cancel_sent) {
            o->step = OS_CANCEL_SOURCE;
            return step(o);
        }
        snprintf(path, sizeof(path), "/v1/migrations/%s", o->agent_mig);
        agent_send(o, o->source, "GET", path, NULL, on_poll);
        break;
    case OS_CANCEL_SOURCE:
        set_phase(o, "cancelling");
        o->cancel_sent = true;
        snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", o->agent_mig);
        agent_send(o, o->source, "POST", path, NULL, on_cancel_sent);
        break;
    case OS_CLEAN_DEST:
        do_clean_dest(o);
        break;
    case OS_DONE:
        break;
    }
    (void)now;
}

static void orch_free(struct orch *o)
{
    pending_clear(o);
    json_decref(o->policy);
    json_decref(o->limits);
    json_decref(o->spec);
    free(o);
}

static int cmp_queue(const void *a, const void *b)
{
    const struct orch *x = *(const struct orch *const *)a, *y = *(const struct orch *const *)b;
    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Admission (src/core/admit): every migration past OS_QUEUED and not done
 * is in flight (plan migrations too: they are created through the same
 * API); the ones in OS_QUEUED not yet admitted are the queue, oldest
 * first. Those the caps let start are marked admitted (step() starts them);
 * one that has to wait is recorded "queued" once, with migration.queued
 * {reason}. */
static void admit_queued(struct coord *c)
{
    size_t nr = 0, nq = 0;
    for (struct orch *o = c->mig->list; o; o = o->next) {
        if (o->step == OS_DONE)
            continue;
        if (o->step == OS_QUEUED && !o->admitted)
            nq++;
        else
            nr++;
    }
    if (nq == 0)
        return;
    struct admit_mig *run = xcalloc(nr ? nr : 1, sizeof(*run)), *q = xcalloc(nq, sizeof(*q));
    struct orch **qo = xcalloc(nq, sizeof(*qo));
    enum admit_why *why = xcalloc(nq, sizeof(*why));
    size_t ir = 0, iq = 0;
    for (struct orch *o = c->mig->list; o; o = o->next) {
        if (o->step == OS_DONE)
            continue;
        if (o->step == OS_QUEUED && !o->admitted) {
            qo[iq++] = o;
        } else {
            run[ir].source = o->source;
            run[ir].dest = o->destination;
            ir++;
        }
    }
    qsort(qo, nq, sizeof(*qo), cmp_queue);
    for (size_t i = 0; i < nq; i++) {
        q[i].source = qo[i]->source;
        q[i].dest = qo[i]->destination;
    }
    struct admit_caps caps = {c->cfg.max_migrations, c->cfg.max_migrations_per_source,
                              c->cfg.max_migrations_per_dest};
    if (admit_decide(&caps, run, nr, q, nq, why) != 0) {
        log_error("migrate", "msg=\"admission refused its input\" in_flight=%zu queued=%zu", nr,
                  nq);
    } else {
        for (size_t i = 0; i < nq; i++) {
            struct orch *o = qo[i];
            if (why[i] == ADMIT_GO) {
                o->admitted = true;
                if (o->queued)
                    log_info("migrate", "msg=\"admitted from the queue\" id=%s", o->id);
                continue;
            }
            if (o->queued)
                continue; /* recorded already */
            o->queued = true;
            set_phase(o, "queued");
            log_info("migrate", "msg=\"migration queued\" id=%s reason=\"%s\"", o->id,
                     admit_why_text(why[i]));
            if (persist(o, NULL, NULL, "migration.queued",
                        json_pack("{s:s}", "reason", admit_why_text(why[i]))) != 0)
                o->queued = false; /* not durable: try again at the next tick */
        }
    }
    free(run);
    free(q);
    free(qo);
    free(why);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord *c = arg;
    int64_t now = coord_now_ms();
    if (now - c->mig->consent_ms >= CONSENT_CHECK_MS) {
        c->mig->consent_ms = now;
        coordconsent_tick(c, now);
    }
    admit_queued(c);
    struct orch **pp = &c->mig->list;
    while (*pp) {
        struct orch *o = *pp;
        if (o->step == OS_DONE && !o->inflight) {
            *pp = o->next;
            orch_free(o);
            continue;
        }
        check_source_host(o);
        if (!o->inflight && now >= o->next_ms)
            step(o);
        pp = &o->next;
    }
}

static struct orch *orch_find(struct coord *c, const char *id)
{
    for (struct orch *o = c->mig->list; o; o = o->next)
        if (strcmp(o->id, id) == 0)
            return o;
    return NULL;
}

/* Builds the orchestration of a stored, non-terminal migration. */
static struct orch *orch_from(struct coord *c, const struct store_migration *m)
{
    struct orch *o = xcalloc(1, sizeof(*o));
    o->c = c;
    snprintf(o->id, sizeof(o->id), "%s", m->id);
    snprintf(o->instance, sizeof(o->instance), "%s", m->instance);
    snprintf(o->project, sizeof(o->project), "%s", m->project);
    snprintf(o->source, sizeof(o->source), "%s", m->source);
    snprintf(o->destination, sizeof(o->destination), "%s", m->destination);
    snprintf(o->phase, sizeof(o->phase), "%s", m->phase);
    o->policy = json_load_or_null(m->policy_json);
    o->limits = json_load_or_null(m->limits_json);
    json_t *d = json_load_or_null(m->detail_json);
    const char *aid = json_string_value(json_object_get(d, "agent_migration"));
    snprintf(o->agent_mig, sizeof(o->agent_mig), "%s", aid ? aid : "");
    o->stalls_seen = (size_t)json_integer_value(json_object_get(d, "stalls"));
    o->budget_seen = (size_t)json_integer_value(json_object_get(d, "budget_events"));
    const char *st = m->state;
    o->created_ms = m->created_ms;
    if (strcmp(st, "queued") == 0) {
        o->queued = true;
        st = migstate_name(MIGSTATE_REQUESTED);
    } else if (strcmp(st, "unknown") == 0) {
        o->unknown = true;
        st = json_string_value(json_object_get(d, "last_state"));
    }
    if (!st || state_of(st, &o->st) != 0)
        o->st = MIGSTATE_RUNNING;
    json_decref(d);
    o->last_answer_ms = coord_now_ms();
    if (o->st == MIGSTATE_REQUESTED)
        o->step = OS_QUEUED;
    else if (o->agent_mig[0])
        o->step = OS_POLL;
    else if (o->st == MIGSTATE_CANCELLING) {
        o->incoming_posted = true;
        o->step = OS_CLEAN_DEST;
        o->after_clean = MIGSTATE_CANCELLED;
    } else {
        o->step = OS_GET_SPEC; /* preparing again: POST /v1/incoming tolerates 409 */
    }
    o->next = c->mig->list;
    c->mig->list = o;
    return o;
}

/* Reads the agent token file (one token, surrounding white space ignored)
 * into *out (caller frees). */
static int read_agent_token(const char *path, char **out, struct ferr *e)
{
    char buf[AGENT_TOKEN_MAX + 2];
    FILE *f = fopen(path, "r");
    if (!f)
        return ferr_set(e, -errno, "agent_token_file", "cannot open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = buf;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    size_t len = strcspn(p, " \t\r\n");
    if (n > AGENT_TOKEN_MAX || len == 0 || p[len + strspn(p + len, " \t\r\n")] != '\0')
        return ferr_set(e, FERR_INVAL, "agent_token_file",
                        "%s must hold one token of 1..%d printable bytes", path, AGENT_TOKEN_MAX);
    p[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
            return ferr_set(e, FERR_INVAL, "agent_token_file",
                            "%s must hold one token of printable bytes", path);
    *out = xstrdup(p);
    return 0;
}

static void on_audit_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct coord *c = arg;
    if (fd >= 0) { /* the wake eventfd: empty it, then flush */
        uint64_t n;
        ssize_t r = read(fd, &n, sizeof(n));
        (void)r;
    }
    struct ferr e = {0};
    if (store_audit_flush(c->st, NULL, &e) != 0)
        log_error("api", "msg=\"audit flush failed\" err=\"%s\"", e.msg);
}

int coordmig_start(struct coord *c, struct ferr *e)
{
    c->mig = xcalloc(1, sizeof(*c->mig));
    c->mig->cache = migcache_new(0, 0);
    c->mig->projects_mark = -1;
    c->mig->audit_wake_fd = -1;
    if (c->cfg.agent_token_file[0]) {
        int trc = read_agent_token(c->cfg.agent_token_file, &c->mig->agent_token, e);
        if (trc)
            return trc;
    }
    struct store_migration_filter f = {.active_only = 1};
    struct store_migration *m = NULL;
    size_t n = 0;
    int rc = store_migration_list(c->st, &f, STORE_LIST_MAX, &m, &n, e);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct orch *o = orch_from(c, &m[i]);
        log_info("migrate", "msg=\"resuming migration\" id=%s state=%s step=%d", o->id, m[i].state,
                 (int)o->step);
    }
    store_migrations_free(m, n);
    c->mig->tick = event_new(c->base, -1, EV_PERSIST, on_tick, c);
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(c->mig->tick, &tv);
    c->mig->commit = event_new(c->base, -1, 0, on_commit, c);
    c->mig->audit = event_new(c->base, -1, EV_PERSIST, on_audit_flush, c);
    struct timeval atv = {0, AUDIT_FLUSH_MS * 1000};
    event_add(c->mig->audit, &atv);
    /* Read threads can queue records faster than one flush per
     * AUDIT_FLUSH_MS writes them (tens of thousands of reads a second): the
     * queue passing STORE_AUDIT_HIGH wakes this flush at once, so a read
     * thread seldom waits for room (store_audit_defer). */
    c->mig->audit_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->mig->audit_wake_fd >= 0) {
        c->mig->audit_now =
            event_new(c->base, c->mig->audit_wake_fd, EV_READ | EV_PERSIST, on_audit_flush, c);
        event_add(c->mig->audit_now, NULL);
        store_audit_set_wake(c->st, c->mig->audit_wake_fd);
    } else {
        log_warn("api", "msg=\"no eventfd for the audit flush; the timer alone flushes\" err=\"%s\"",
                 strerror(errno));
    }
    return 0;
}

void coordmig_reader_init(struct coord *r, const struct coord *c)
{
    r->mig = xcalloc(1, sizeof(*r->mig));
    r->mig->cache = c->mig->cache; /* thread-safe (migcache.h) */
    r->mig->audit_wake_fd = -1;
    r->mig->projects_mark = -1;
}

void coordmig_reader_free(struct coord *r)
{
    free(r->mig->projects);
    free(r->mig);
    r->mig = NULL;
}

void coordmig_get_stats(const struct coord *c, struct coordmig_stats *out)
{
    if (c->mig)
        *out = c->mig->stats;
    else
        memset(out, 0, sizeof(*out));
}

void coordmig_stop(struct coord *c)
{
    if (!c->mig)
        return;
    if (c->mig->tick)
        event_free(c->mig->tick);
    commit_pending(c); /* a clean stop loses no progress */
    if (c->mig->commit)
        event_free(c->mig->commit);
    if (c->mig->audit_now) {
        store_audit_set_wake(c->st, -1);
        event_free(c->mig->audit_now);
        c->mig->audit_now = NULL;
    }
    if (c->mig->audit_wake_fd >= 0)
        close(c->mig->audit_wake_fd);
    c->mig->audit_wake_fd = -1;
    if (c->mig->audit) {
        event_free(c->mig->audit);
        on_audit_flush(-1, 0, c); /* and store_close flushes what comes after */
    }
    while (c->mig->list) {
        struct orch *o = c->mig->list;
        c->mig->list = o->next;
        orch_free(o); /* requests in flight die with the event base */
    }
    free(c->mig->agent_token);
    migcache_free(c->mig->cache);
    free(c->mig->projects);
    free(c->mig);
    c->mig = NULL;
}

/* ---- API ---------------------------------------------------------------- */

static int new_id(char out[STORE_IDENT_MAX + 1], struct ferr *e)
{
    char tok[AUTH_TOKEN_LEN + 1];
    int rc = auth_token_new(tok, e);
    if (rc)
        return rc;
    snprintf(out, STORE_IDENT_MAX + 1, "mig-%.16s", tok);
    return 0;
}

/* Reads what placing instance in (borrowed) needs: the candidate hosts,
 * the instances and the active migrations that count on them (every active
 * migration of in itself is among *act, for the "in progress" check). With
 * a destination named, only that host is a candidate and only what counts
 * on it is read (its instances, the active migrations from or to it and
 * their instances, in's own active migrations): indexed lookups, where
 * listing every instance of a 1,000-host fleet per request made a plan's
 * migration requests cost O(fleet) each. Without one (ferryd places), the
 * whole fleet. On 0 the caller frees *hosts, *inst (free) and *act
 * (store_migrations_free); the destination may be unknown (*nh 0). */
static int load_placement(struct coord *c, const struct store_instance *in, const char *dest,
                          struct store_host **hosts, size_t *nh, struct store_instance **inst,
                          size_t *ni, struct store_migration **act, size_t *na, struct ferr *e)
{
    *hosts = NULL;
    *inst = NULL;
    *act = NULL;
    *nh = *ni = *na = 0;
    struct store_migration_filter f = {.active_only = 1};
    if (!dest || !dest[0]) {
        if (store_host_list(c->st, hosts, nh, e) != 0 ||
            store_instance_list(c->st, NULL, inst, ni, e) != 0 ||
            store_migration_list(c->st, &f, STORE_LIST_MAX, act, na, e) != 0)
            return -EIO;
        return 0;
    }
    struct store_host h;
    struct ferr ge = {0};
    if (store_host_get(c->st, dest, &h, &ge) == 0) {
        *hosts = xcalloc(1, sizeof(**hosts));
        (*hosts)[0] = h;
        *nh = 1;
    } else if (ge.code != FERR_NOTFOUND && ge.code != FERR_INVAL) {
        *e = ge;
        return -EIO;
    }
    struct store_migration *mine = NULL;
    size_t nmine = 0;
    f.host = dest;
    if (*nh && (store_instance_list(c->st, dest, inst, ni, e) != 0 ||
                store_migration_list(c->st, &f, STORE_LIST_MAX, act, na, e) != 0))
        return -EIO;
    struct store_migration_filter fi = {.active_only = 1, .instance = in->name};
    if (store_migration_list(c->st, &fi, STORE_LIST_MAX, &mine, &nmine, e) != 0)
        return -EIO;
    /* the instances of migrations heading to dest count there (place_account) */
    for (size_t k = 0; k < *na; k++) {
        struct store_instance x;
        if (strcmp((*act)[k].destination, dest) != 0 ||
            store_instance_get(c->st, (*act)[k].instance, &x, NULL) != 0 ||
            strcmp(x.host, dest) == 0) /* registered there: listed already */
            continue;
        *inst = xrealloc(*inst, (*ni + 1) * sizeof(**inst));
        (*inst)[(*ni)++] = x;
    }
    size_t listed = *na;
    for (size_t j = 0; j < nmine; j++) {
        bool dup = false;
        for (size_t k = 0; k < listed && !dup; k++)
            dup = strcmp((*act)[k].id, mine[j].id) == 0;
        if (dup) {
            store_migration_clear(&mine[j]);
            continue;
        }
        *act = xrealloc(*act, (*na + 1) * sizeof(**act));
        (*act)[(*na)++] = mine[j]; /* its pointers now belong to *act */
    }
    free(mine);
    return 0;
}

static void create(struct coord *c, struct evhttp_request *req, const struct store_token *who)
{
    struct ferr e = {0};
    json_t *body = NULL;
    struct migreq r = {0};
    if (httpd_body_json(req, 0, &body, &e) != 0 || migreq_parse(body, &r, &e) != 0) {
        json_decref(body);
        return httpd_reply_err(req, &e);
    }
    json_decref(body);
    if (r.consent_timeout_s > c->cfg.consent_timeout_max_s) {
        char msg[128];
        snprintf(msg, sizeof(msg), "consent.timeout_s must be 1..%u (consent_timeout_max_s)",
                 c->cfg.consent_timeout_max_s);
        reply_code(req, 400, "invalid", "consent.timeout_s", msg);
        migreq_free(&r);
        return;
    }
    struct store_instance *inst = NULL, *in = NULL, one;
    struct store_host *hosts = NULL;
    struct store_migration *act = NULL, m;
    struct place_host *ph = NULL;
    size_t ni = 0, nh = 0, na = 0;
    memset(&m, 0, sizeof(m));
    int grc = store_instance_get(c->st, r.instance, &one, &e);
    if (grc == FERR_NOTFOUND || grc == FERR_INVAL) {
        reply_not_found(req, "instance");
        goto out;
    }
    if (grc != 0)
        goto err;
    in = &one;
    if (!decide(c, who, "migration:show", in->project_id, in->name, NULL, in->host, false)) {
        (void)decide(c, who, "migration:create", in->project_id, in->name, NULL, in->host, true);
        reply_not_found(req, "instance"); /* not theirs: it does not exist for them */
        goto out;
    }
    if (!decide(c, who, "migration:create", in->project_id, in->name, NULL, in->host, true)) {
        reply_code(req, 403, "forbidden", "", "the policy does not allow this action");
        goto out;
    }
    if (load_placement(c, in, r.destination, &hosts, &nh, &inst, &ni, &act, &na, &e) != 0)
        goto err;
    for (size_t i = 0; i < na; i++)
        if (strcmp(act[i].instance, in->name) == 0) {
            reply_code(req, 409, "conflict", "instance",
                       "the instance has a migration in progress already");
            goto out;
        }
    ph = xcalloc(nh ? nh : 1, sizeof(*ph));
    for (size_t i = 0; i < nh; i++) {
        ph[i].name = hosts[i].name;
        ph[i].up = strcmp(hosts[i].state, "up") == 0;
        ph[i].ram_mib = hosts[i].ram_mib;
        ph[i].vcpus = hosts[i].vcpus;
        if (r.ram_overcommit > 0)
            ph[i].ram_mib = (uint64_t)((double)hosts[i].ram_mib * r.ram_overcommit + 1e-6);
        if (r.vcpu_overcommit > 0)
            ph[i].vcpus = (uint32_t)((double)hosts[i].vcpus * r.vcpu_overcommit + 1e-6);
        ph[i].cordoned = hosts[i].cordon[0] || hosts[i].maint[0];
    }
    place_account(ph, nh, inst, ni, act, na);
    size_t chosen = nh;
    if (r.destination[0]) {
        if (strcmp(r.destination, in->host) == 0) {
            reply_code(req, 400, "invalid", "destination",
                       "the destination is the instance's current host");
            goto out;
        }
        for (size_t i = 0; i < nh; i++)
            if (strcmp(ph[i].name, r.destination) == 0)
                chosen = i;
        if (chosen == nh) {
            reply_code(req, 404, "not_found", "destination", "no such host");
            goto out;
        }
        const char *why = NULL;
        if (!place_fits(&ph[chosen], in->host, in->memory_mib, in->vcpus, &why)) {
            char msg[160];
            snprintf(msg, sizeof(msg), "destination %s cannot take the instance: %s", r.destination,
                     why);
            reply_code(req, 409, "conflict", "destination", msg);
            goto out;
        }
    } else if (place_choose(ph, nh, in->host, in->memory_mib, in->vcpus, &chosen, &e) != 0) {
        goto err;
    }
    int64_t now = coord_now_ms();
    if (new_id(m.id, &e) != 0)
        goto err;
    snprintf(m.instance, sizeof(m.instance), "%.*s", (int)sizeof(m.instance) - 1, in->name);
    snprintf(m.source, sizeof(m.source), "%.*s", (int)sizeof(m.source) - 1, in->host);
    snprintf(m.destination, sizeof(m.destination), "%s", ph[chosen].name);
    snprintf(m.state, sizeof(m.state), "%s", migstate_name(MIGSTATE_REQUESTED));
    snprintf(m.phase, sizeof(m.phase), "queued");
    snprintf(m.user, sizeof(m.user), "%s", who->user);
    snprintf(m.project, sizeof(m.project), "%.*s", (int)sizeof(m.project) - 1, in->project_id);
    m.policy_json = r.policy ? json_dumps(r.policy, JSON_COMPACT) : NULL;
    m.limits_json = r.limits ? json_dumps(r.limits, JSON_COMPACT) : NULL;
    json_t *d0 = json_pack("{s:s, s:I, s:I}", "started_by_project", who->project, "memory_mib",
                           (json_int_t)in->memory_mib, "vcpus", (json_int_t)in->vcpus);
    if (r.consent_timeout_s || r.consent_action[0]) { /* the request's consent override */
        json_t *k = json_object();
        if (r.consent_timeout_s)
            json_object_set_new(k, "timeout_s", json_integer(r.consent_timeout_s));
        if (r.consent_action[0])
            json_object_set_new(k, "timeout_action", json_string(r.consent_action));
        json_object_set_new(d0, "consent", k);
    }
    m.detail_json = json_dumps(d0, JSON_COMPACT);
    json_decref(d0);
    m.eta_ms = m.eta_low_ms = m.eta_high_ms = m.downtime_ms = -1;
    m.created_ms = m.updated_ms = now;
    if (store_tx_begin(c->st, &e) != 0)
        goto err;
    if (store_migration_insert(c->st, &m, &e) != 0 ||
        emit(c, "migration.requested", m.id, m.instance, m.project, m.source, m.destination,
             json_pack("{s:s, s:b}", "user", who->user, "placed", !r.destination[0]), now,
             &e) != 0 ||
        store_tx_commit(c->st, &e) != 0) {
        store_tx_rollback(c->st);
        goto err;
    }
    log_info("migrate",
             "msg=\"migration requested\" id=%s instance=%s source=%s destination=%s "
             "user=%s",
             m.id, m.instance, m.source, m.destination, who->user);
    struct orch *no = orch_from(c, &m);
    admit_queued(c); /* start it now when the caps allow, not at the next tick */
    if (no->admitted && !no->inflight)
        step(no);
    httpd_reply_json(req, 202,
                     rec_json(&m, decide(c, who, "migration:show_hosts", m.project, m.instance,
                                         m.id, m.source, false)));
    goto out;
err:
    httpd_reply_err(req, &e);
out:
    store_migration_clear(&m);
    migreq_free(&r);
    free(inst);
    free(hosts);
    free(ph);
    store_migrations_free(act, na);
}

/* One action's decisions for one subject within a request. When the
 * policy reads neither the instance, the migration nor the host of the
 * target (policy_uses_target_key), a decision depends on the project alone
 * and is taken once per project; otherwise once per record. */
#define MEMO_MAX 32 /* projects remembered per request and action */
struct decide_memo {
    const char *action;
    bool by_project; /* decisions depend on the project alone */
    size_t n;        /* projects remembered */
    size_t last;     /* index of the last one answered */
    char project[MEMO_MAX][STORE_IDENT_MAX + 1];
    uint32_t hash[MEMO_MAX]; /* of project[i] */
    bool allowed[MEMO_MAX];
    char roles_buf[STORE_ROLES_MAX + 1]; /* the subject, split once (as decide does) */
    const char *roles[AUTH_ROLES_MAX];
    struct policy_subject subj;
};

static void memo_init(struct coord *c, const struct store_token *who, struct decide_memo *dm,
                      const char *action)
{
    dm->action = action;
    dm->n = dm->last = 0;
    dm->by_project = !policy_uses_target_key(&c->pol, action, "instance") &&
                     !policy_uses_target_key(&c->pol, action, "migration") &&
                     !policy_uses_target_key(&c->pol, action, "host");
    snprintf(dm->roles_buf, sizeof(dm->roles_buf), "%s", who->roles);
    size_t nroles = auth_split_roles(dm->roles_buf, dm->roles, AUTH_ROLES_MAX);
    dm->subj = (struct policy_subject){who->user, who->project, dm->roles, nroles};
}

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Decides dm's action on the record of project (instance, id, host may be
 * NULL only when dm->by_project). */
static bool memo_decide_on(struct coord *c, const struct store_token *who, struct decide_memo *dm,
                           const char *project, const char *instance, const char *id,
                           const char *host)
{
    (void)who; /* dm->subj is who, split at memo_init */
    uint32_t h = 0;
    if (dm->by_project) {
        if (dm->n && strcmp(dm->project[dm->last], project) == 0)
            return dm->allowed[dm->last];
        h = str_hash(project);
        for (size_t i = 0; i < dm->n; i++)
            if (dm->hash[i] == h && strcmp(dm->project[i], project) == 0) {
                dm->last = i;
                return dm->allowed[i];
            }
    }
    /* As decide(c, who, action, project, instance, id, host, false). */
    struct policy_kv kv[] = {
        {"project_id", project}, {"instance", instance}, {"migration", id}, {"host", host}};
    struct policy_target tgt = {kv, 4};
    bool ok = false;
    if (policy_check(&c->pol, dm->action, &dm->subj, &tgt, &ok) != 0)
        ok = false;
    size_t len = strlen(project);
    if (dm->by_project && dm->n < MEMO_MAX && len <= STORE_IDENT_MAX) {
        memcpy(dm->project[dm->n], project, len + 1);
        dm->hash[dm->n] = h;
        dm->allowed[dm->n] = ok;
        dm->last = dm->n++;
    }
    return ok;
}

static bool memo_decide(struct coord *c, const struct store_token *who, struct decide_memo *dm,
                        const struct store_migration_key *k)
{
    return memo_decide_on(c, who, dm, k->project, k->instance, k->id, k->source);
}

/* The reply body of a list: one growing buffer handed to libevent at the
 * end without a copy. */
struct page {
    char *p;
    size_t len, cap; /* bytes */
};

static void page_add(struct page *pg, const char *s, size_t n)
{
    if (pg->len + n > pg->cap) {
        size_t cap = pg->cap * 2 > pg->len + n ? pg->cap * 2 : pg->len + n + 4096;
        pg->p = xrealloc(pg->p, cap);
        pg->cap = cap;
    }
    memcpy(pg->p + pg->len, s, n);
    pg->len += n;
}

static void page_free_cb(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

/* Renders m (with host names when hosts) as the API shows it: a new string
 * (caller frees) or NULL. */
static char *render(const struct store_migration *m, bool hosts)
{
    json_t *o = rec_json(m, hosts);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static void page_sink(void *arg, const char *text, size_t len)
{
    page_add(arg, text, len);
}

/* Appends sep and the record of key k (rendered with host names when
 * hosts) to pg: from the cache when it holds k's revision, else read from
 * the store, rendered and cached. Returns -1 when the record is gone. */
static int render_cached(struct coord *c, const struct store_migration_key *k, bool hosts,
                         const char *sep, struct page *pg)
{
    size_t at = pg->len;
    page_add(pg, sep, strlen(sep));
    if (migcache_read(c->mig->cache, k->id, k->created_ms, k->rev, hosts, page_sink, pg))
        return 0;
    struct store_migration m;
    struct ferr e = {0};
    if (store_migration_get(c->st, k->id, &m, &e) != 0) {
        pg->len = at;
        return -1;
    }
    char *text = render(&m, hosts);
    if (!text) {
        store_migration_clear(&m);
        pg->len = at;
        return -1;
    }
    size_t len = strlen(text);
    page_add(pg, text, len);
    migcache_put(c->mig->cache, m.id, m.created_ms, m.rev, hosts, text, len); /* takes text */
    store_migration_clear(&m);
    return 0;
}

/* When every decision of see depends on the project alone and the
 * projects that own migrations are few enough to list, the projects the
 * caller may see: 0 when none, 1 with its name in one (the scan can then
 * use the project index), 2 when several or unknown. */
#define LIST_PROJECTS_PROBE 256 /* projects listed at most to narrow a scan */
static int visible_projects(struct coord *c, const struct store_token *who,
                            struct decide_memo *see, char one[STORE_IDENT_MAX + 1])
{
    if (!see->by_project)
        return 2;
    /* The list of projects changes only with an insert: read it again only
     * when the store's insert mark moved. */
    struct coordmig *cm = c->mig;
    int64_t mark = 0;
    struct ferr e = {0};
    if (store_migration_insert_mark(c->st, &mark, &e) != 0)
        return 2;
    if (mark != cm->projects_mark) {
        if (!cm->projects)
            cm->projects = xmalloc(LIST_PROJECTS_PROBE * sizeof(*cm->projects));
        cm->projects_mark = -1;
        if (store_migration_projects(c->st, LIST_PROJECTS_PROBE, cm->projects, &cm->nprojects,
                                     &cm->projects_complete, &e) != 0)
            return 2;
        cm->projects_mark = mark;
    }
    if (!cm->projects_complete)
        return 2;
    int visible = 0;
    for (size_t i = 0; i < cm->nprojects && visible < 2; i++)
        if (memo_decide_on(c, who, see, cm->projects[i], NULL, NULL, NULL)) {
            if (!visible)
                memcpy(one, cm->projects[i], strlen(cm->projects[i]) + 1);
            visible++;
        }
    return visible;
}

/* GET /v1/migrations: filters (state, instance, host, project) in SQL,
 * newest first (created time, then id), limit (default 50, 1..1000), cursor
 * ?after=ID (alias ?marker=ID: the "next" of the previous page). The policy
 * is applied per row; rows are read in batches until the page is full or the
 * list ends, so a short page means the end. "next" is the id of the page's
 * last record when the page is full (the next page may then be empty). */
static void list(struct coord *c, struct evhttp_request *req, const struct store_token *who)
{
    struct ferr e = {0};
    char qs[4][STORE_NAME_MAX + 2];
    static const char *const keys[] = {"state", "instance", "host", "project"};
    const char *vals[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        if (httpd_query(req, keys[i], qs[i], sizeof(qs[i])) != 0)
            continue;
        if (strlen(qs[i]) > STORE_IDENT_MAX || !qs[i][0])
            return reply_code(req, 400, "invalid", keys[i], "filter value too long or empty");
        vals[i] = qs[i];
    }
    size_t limit = LIST_PAGE_DEFAULT;
    char lim[32];
    if (httpd_query(req, "limit", lim, sizeof(lim)) == 0) {
        char *end = NULL;
        errno = 0;
        long v = strtol(lim, &end, 10);
        if (!lim[0] || *end || errno || v < 1 || v > LIST_PAGE_MAX)
            return reply_code(req, 400, "invalid", "limit", "limit must be an integer 1..1000");
        limit = (size_t)v;
    }
    char after[STORE_IDENT_MAX + 2] = "";
    const char *ak = "after";
    if (httpd_query(req, "after", after, sizeof(after)) != 0) {
        ak = "marker";
        if (httpd_query(req, "marker", after, sizeof(after)) != 0)
            after[0] = '\0', ak = NULL;
    }
    struct store_migration_filter f = {vals[0], vals[1], vals[2], vals[3], 0, NULL, 0};
    if (ak) {
        struct store_migration cur;
        if (!after[0] || strlen(after) > STORE_IDENT_MAX ||
            store_migration_get(c->st, after, &cur, &e) != 0)
            return reply_code(req, 400, "invalid", ak, "no such migration to continue after");
        bool vis = decide(c, who, "migration:list", cur.project, cur.instance, cur.id, cur.source,
                          false);
        f.after_created_ms = cur.created_ms;
        store_migration_clear(&cur);
        if (!vis)
            return reply_code(req, 400, "invalid", ak, "no such migration to continue after");
        f.after_id = after;
    }
    struct decide_memo see, hosts;
    memo_init(c, who, &see, "migration:list");
    memo_init(c, who, &hosts, "migration:show_hosts");
    static const char head[] = "{\"migrations\":[", tail_null[] = "],\"next\":null}\n";
    size_t guess = (limit < 64 ? limit : 64) * 1024 + 64; /* bytes; grows as needed */
    struct page pg = {xmalloc(guess), 0, guess};
    page_add(&pg, head, sizeof(head) - 1);
    size_t shown = 0, batch = limit, cap = limit;
    struct store_migration_key *k = xmalloc(cap * sizeof(*k));
    bool more = false, narrowed = vals[3] != NULL;
    /* Decisions by project alone need neither instance nor source: the key
     * columns then come from an index alone. */
    int slim = see.by_project && hosts.by_project;
    char last[STORE_IDENT_MAX + 1] = "", cursor[STORE_IDENT_MAX + 1];
    char only[STORE_IDENT_MAX + 1];
    bool none = false;
    /* A caller who may not see every project (the decision for a project
     * nobody has — "\x01" is not a valid name — is no) is narrowed before
     * the first read rather than after a first page of mostly hidden rows:
     * a member of one project reads that project's rows alone, through the
     * project index. Who may see any project scans everything at once. */
    if (!narrowed && see.by_project && !memo_decide_on(c, who, &see, "\x01", NULL, NULL, NULL)) {
        narrowed = true;
        int vis = visible_projects(c, who, &see, only);
        if (vis == 0)
            none = true;
        else if (vis == 1)
            f.project = only;
    }
    for (; !none;) {
        size_t n = 0;
        if (store_migration_list_keys(c->st, &f, batch, slim, k, &n, &e) != 0) {
            free(k);
            free(pg.p);
            return httpd_reply_err(req, &e);
        }
        size_t i = 0;
        for (; i < n && shown < limit; i++) {
            if (!memo_decide(c, who, &see, &k[i]))
                continue;
            bool hosts_ok = memo_decide(c, who, &hosts, &k[i]);
            if (vals[2] && !hosts_ok)
                continue; /* filtering by a host one may not see would leak it */
            if (render_cached(c, &k[i], hosts_ok, shown ? "," : "", &pg) != 0)
                continue; /* gone since the key was read */
            memcpy(last, k[i].id, strlen(k[i].id) + 1);
            shown++;
        }
        bool end = n < batch;
        if (n > 0) {
            memcpy(cursor, k[n - 1].id, strlen(k[n - 1].id) + 1);
            f.after_created_ms = k[n - 1].created_ms;
        }
        if (shown == limit) {
            more = i < n || !end;
            break;
        }
        if (end)
            break;
        f.after_id = cursor;
        batch = LIST_SCAN_BATCH;
        if (!narrowed) {
            /* The first rows did not fill the page: most are hidden from the
             * caller (a member of one project among many). When the policy
             * lets them see a single project, read only its rows. */
            narrowed = true;
            int vis = visible_projects(c, who, &see, only);
            if (vis == 0)
                break;
            if (vis == 1) {
                f.project = only;
                batch = limit - shown + 1;
            }
        }
        if (cap < batch) {
            cap = batch;
            k = xrealloc(k, cap * sizeof(*k));
        }
    }
    free(k);
    (void)decide(c, who, "migration:list", who->project, NULL, NULL, NULL, true);
    if (more) {
        json_t *nx = json_string(last);
        char *t = nx ? json_dumps(nx, JSON_ENCODE_ANY) : NULL;
        static const char nk[] = "],\"next\":";
        page_add(&pg, nk, sizeof(nk) - 1);
        page_add(&pg, t ? t : "null", t ? strlen(t) : 4);
        page_add(&pg, "}\n", 2);
        free(t);
        json_decref(nx);
    } else {
        page_add(&pg, tail_null, sizeof(tail_null) - 1);
    }
    struct evbuffer *body = evbuffer_new();
    if (evbuffer_add_reference(body, pg.p, pg.len, page_free_cb, NULL) != 0)
        free(pg.p);
    httpd_reply_buf(req, 200, body);
}

/* Loads migration id visible to who (else replies 404 and returns false). */
static bool load_visible(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                         const char *id, struct store_migration *m)
{
    struct ferr e = {0};
    if (strlen(id) > STORE_IDENT_MAX || store_migration_get(c->st, id, m, &e) != 0) {
        memset(m, 0, sizeof(*m));
        reply_not_found(req, "id");
        return false;
    }
    if (!decide(c, who, "migration:show", m->project, m->instance, m->id, m->source, true)) {
        store_migration_clear(m);
        reply_not_found(req, "id");
        return false;
    }
    return true;
}

static void show(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                 const char *id)
{
    struct store_migration m;
    if (!load_visible(c, req, who, id, &m))
        return;
    bool hosts_ok =
        decide(c, who, "migration:show_hosts", m.project, m.instance, m.id, m.source, false);
    struct page pg = {xmalloc(2048), 0, 2048};
    if (!migcache_read(c->mig->cache, m.id, m.created_ms, m.rev, hosts_ok, page_sink, &pg)) {
        char *text = render(&m, hosts_ok);
        if (!text) {
            free(pg.p);
            httpd_reply_json(req, 200, rec_json(&m, hosts_ok));
            store_migration_clear(&m);
            return;
        }
        size_t len = strlen(text);
        page_add(&pg, text, len);
        migcache_put(c->mig->cache, m.id, m.created_ms, m.rev, hosts_ok, text, len);
    }
    page_add(&pg, "\n", 1);
    struct evbuffer *body = evbuffer_new();
    if (evbuffer_add_reference(body, pg.p, pg.len, page_free_cb, NULL) != 0)
        free(pg.p);
    httpd_reply_buf(req, 200, body);
    store_migration_clear(&m);
}

static void reply_record(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                         const char *id, int status)
{
    struct store_migration m;
    struct ferr e = {0};
    if (store_migration_get(c->st, id, &m, &e) != 0)
        return httpd_reply_err(req, &e);
    bool hosts_ok =
        decide(c, who, "migration:show_hosts", m.project, m.instance, m.id, m.source, false);
    httpd_reply_json(req, status, rec_json(&m, hosts_ok));
    store_migration_clear(&m);
}

static bool empty_body(struct evhttp_request *req)
{
    struct ferr e = {0};
    json_t *body = NULL;
    static const char *const keys[] = {NULL};
    if (httpd_body_json(req, 1, &body, &e) != 0 || jsonin_only_keys(body, keys, &e) != 0) {
        json_decref(body);
        httpd_reply_err(req, &e);
        return false;
    }
    json_decref(body);
    return true;
}

int coordmig_cancel(struct coord *c, const char *id, const char *by, const char *stored_state,
                    struct ferr *e)
{
    struct orch *o = c->mig ? orch_find(c, id) : NULL;
    if (!o || o->step == OS_DONE)
        return ferr_set(e, FERR_STATE, "state", "the migration has ended (%s); nothing to cancel",
                        o ? migstate_name(o->st) : (stored_state ? stored_state : "ended"));
    if (o->unknown)
        return ferr_set(e, FERR_STATE, "state",
                        "the source agent is unreachable (state unknown); cancel when it is "
                        "back");
    enum migstate before = o->st;
    if (advance(o, MIGEV_CANCEL) != 0)
        return ferr_set(e, FERR_STATE, "state", "a migration in state %s cannot be cancelled%s",
                        migstate_name(before),
                        before == MIGSTATE_POSTCOPY || before == MIGSTATE_COMPLETING
                            ? ": the guest already runs on the destination"
                            : "");
    int rc;
    if (o->st == MIGSTATE_CANCELLED) { /* still queued: nothing to undo */
        o->queued = false;
        set_phase(o, "done");
        rc = persist(o, NULL, NULL, "migration.cancelled", json_pack("{s:s}", "by", by));
        finish(o);
    } else {
        set_phase(o, o->agent_mig[0] ? "cancel_requested" : o->phase);
        rc = persist(o, NULL, NULL, NULL, NULL);
        if (o->agent_mig[0] && !o->inflight && o->step == OS_POLL) {
            o->step = OS_CANCEL_SOURCE;
            o->next_ms = 0;
        } else if (!o->agent_mig[0] && !o->inflight) {
            (void)cancelled_while_preparing(o);
        }
    }
    if (rc != 0) {
        o->st = before; /* not durable: as if it never happened */
        return ferr_set(e, -EIO, "", "cannot record the cancel");
    }
    return 0;
}

int coordmig_agent_send(struct coord *c, const char *id, const char *method, const char *suffix,
                        const json_t *body, agentc_cb cb, void *arg, struct ferr *e)
{
    struct orch *o = c->mig ? orch_find(c, id) : NULL;
    if (!o || o->step == OS_DONE || !o->agent_mig[0])
        return ferr_set(e, FERR_STATE, "state",
                        "the migration is not running on its source agent (not started yet, or "
                        "ended)");
    if (o->unknown)
        return ferr_set(e, FERR_STATE, "state",
                        "the source agent is unreachable (state unknown); try again when it is "
                        "back");
    char *url = host_url(c, o->source);
    if (!url)
        return ferr_set(e, FERR_STATE, "state", "host %s is no longer registered", o->source);
    char path[192];
    snprintf(path, sizeof(path), "/v1/migrations/%s/%s", o->agent_mig, suffix);
    agentc_request(c->base, url, c->mig->agent_token, method, path, body, AGENT_TIMEOUT_S, cb, arg);
    free(url);
    return 0;
}

static void cancel(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                   const char *id)
{
    struct store_migration m;
    if (!empty_body(req) || !load_visible(c, req, who, id, &m))
        return;
    bool ok = decide(c, who, "migration:cancel", m.project, m.instance, m.id, m.source, true);
    store_migration_clear(&m);
    if (!ok)
        return reply_code(req, 403, "forbidden", "", "the policy does not allow this action");
    struct ferr e = {0};
    if (coordmig_cancel(c, id, who->user, m.state, &e) != 0)
        return reply_code(req, e.code == FERR_STATE ? 409 : 500,
                          e.code == FERR_STATE ? "conflict" : "internal", e.field, e.msg);
    log_info("migrate", "msg=\"cancel requested\" id=%s by=%s@%s", id, who->user, who->project);
    reply_record(c, req, who, id, 202);
}

/* A request forwarded to the source agent; the API reply waits for it. */
struct fwd {
    struct coord *c;
    struct evhttp_request *req; /* the API request, answered from the callback */
    struct store_token who;     /* the caller */
    char id[STORE_IDENT_MAX + 1];
    json_t *lim;                /* PATCH limits: the validated body; owned, NULL for force */
};

/* Writes the agent's acceptance of a forwarded request into the record
 * (detail, and for limits the record's limits) with its event, in one
 * transaction. */
static int record_forwarded(struct fwd *f, const json_t *agent)
{
    struct coord *c = f->c;
    struct ferr e = {0};
    struct store_migration m;
    int64_t now = coord_now_ms();
    if (store_tx_begin(c->st, &e) != 0)
        return -1;
    if (store_migration_get(c->st, f->id, &m, &e) != 0) {
        store_tx_rollback(c->st);
        return -1;
    }
    json_t *detail = json_load_or_null(m.detail_json);
    if (!json_is_object(detail)) {
        json_decref(detail);
        detail = json_object();
    }
    json_t *extra;
    const char *type;
    if (f->lim) {
        json_t *rl = json_deep_copy(f->lim);
        json_object_set_new(rl, "requested_at", sse_time_json(now));
        json_object_set_new(rl, "requested_by", json_string(f->who.user));
        json_object_set_new(rl, "applied", json_true());
        json_object_set_new(detail, "requested_limits", rl);
        json_t *lim = json_load_or_null(m.limits_json);
        if (!json_is_object(lim)) {
            json_decref(lim);
            lim = json_object();
        }
        json_object_update(lim, f->lim);
        free(m.limits_json);
        m.limits_json = json_dumps(lim, JSON_COMPACT);
        json_decref(lim);
        type = "migration.limits_changed";
        extra = json_deep_copy(f->lim);
        json_object_set_new(extra, "by", json_string(f->who.user));
    } else {
        const char *how = json_string_value(json_object_get(agent, "force_complete"));
        json_object_set_new(detail, "force_complete",
                            json_pack("{s:s, s:s, s:o}", "by", f->who.user, "how",
                                      how ? how : "", "at", sse_time_json(now)));
        type = "migration.force_completed";
        extra = json_pack("{s:s, s:s}", "by", f->who.user, "how", how ? how : "");
    }
    free(m.detail_json);
    m.detail_json = json_dumps(detail, JSON_COMPACT);
    json_decref(detail);
    m.updated_ms = now;
    int rc = store_migration_update(c->st, &m, &e);
    if (rc == 0)
        rc = emit(c, type, m.id, m.instance, m.project, m.source, m.destination, extra, now, &e);
    else
        json_decref(extra);
    store_migration_clear(&m);
    if (rc != 0 || store_tx_commit(c->st, &e) != 0) {
        store_tx_rollback(c->st);
        log_error("migrate", "msg=\"cannot record forwarded request\" id=%s err=\"%s\"", f->id,
                  e.msg);
        return -1;
    }
    return 0;
}

static void on_forwarded(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct fwd *f = arg;
    const char *msg = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    const char *field = json_string_value(json_object_get(json_object_get(body, "error"), "field"));
    if (status == 200 || status == 202) {
        if (record_forwarded(f, body) != 0)
            reply_code(f->req, 500, "internal", "", "the agent applied it; recording failed");
        else
            reply_record(f->c, f->req, &f->who, f->id, 202);
        log_info("migrate", "msg=\"%s forwarded\" id=%s by=%s@%s", f->lim ? "limits" : "force-complete",
                 f->id, f->who.user, f->who.project);
    } else if (status == 0) {
        char why[300];
        snprintf(why, sizeof(why), "the source agent did not answer: %s", e ? e->msg : "");
        reply_code(f->req, 502, "peer_failed", "", why);
    } else {
        char why[400];
        snprintf(why, sizeof(why), "the source agent refused (%d): %s", status,
                 msg ? msg : "no detail");
        int st = status == 409 || status == 400 ? status : 502;
        reply_code(f->req, st, st == 409 ? "conflict" : st == 400 ? "invalid" : "peer_failed",
                   field ? field : "", why);
    }
    json_decref(f->lim);
    free(f);
}

/* Forwards suffix (force-complete, limits) to the source agent; replies
 * from the callback, or now when the migration cannot take it. */
static void forward(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                    const char *id, const char *method, const char *suffix, json_t *lim)
{
    struct fwd *f = xcalloc(1, sizeof(*f));
    f->c = c;
    f->req = req;
    f->who = *who;
    snprintf(f->id, sizeof(f->id), "%s", id);
    f->lim = lim;
    struct ferr e = {0};
    json_t *body = lim ? json_incref(lim) : json_object();
    int rc = coordmig_agent_send(c, id, method, suffix, body, on_forwarded, f, &e);
    json_decref(body);
    if (rc != 0) {
        json_decref(f->lim);
        free(f);
        reply_code(req, 409, "conflict", e.field, e.msg);
    }
}

static void force_complete(struct coord *c, struct evhttp_request *req,
                           const struct store_token *who, const char *id)
{
    struct store_migration m;
    if (!empty_body(req) || !load_visible(c, req, who, id, &m))
        return;
    bool ok =
        decide(c, who, "migration:force_complete", m.project, m.instance, m.id, m.source, true);
    bool ended = place_state_terminal(m.state);
    store_migration_clear(&m);
    if (!ok)
        return reply_code(req, 403, "forbidden", "", "the policy does not allow this action");
    if (ended)
        return reply_code(req, 409, "conflict", "state", "the migration has ended");
    forward(c, req, who, id, "POST", "force-complete", NULL);
}

static void patch_limits(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                         const char *id)
{
    struct ferr e = {0};
    json_t *body = NULL, *lim = NULL;
    if (httpd_body_json(req, 0, &body, &e) != 0 || migreq_limits_patch(body, &lim, &e) != 0) {
        json_decref(body);
        return httpd_reply_err(req, &e);
    }
    json_decref(body);
    struct store_migration m;
    if (!load_visible(c, req, who, id, &m)) {
        json_decref(lim);
        return;
    }
    bool ok =
        decide(c, who, "migration:update_limits", m.project, m.instance, m.id, m.source, true);
    bool ended = place_state_terminal(m.state);
    store_migration_clear(&m);
    if (!ok || ended) {
        json_decref(lim);
        return ok ? reply_code(req, 409, "conflict", "state", "the migration has ended")
                  : reply_code(req, 403, "forbidden", "", "the policy does not allow this action");
    }
    forward(c, req, who, id, "PATCH", "limits", lim);
}

void coordmig_handle(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                     char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX], int n)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool get = method == EVHTTP_REQ_GET, post = method == EVHTTP_REQ_POST;
    if (n == 2 && post)
        return create(c, req, who);
    if (n == 2 && get)
        return list(c, req, who);
    if (n == 3 && get)
        return show(c, req, who, seg[2]);
    if (n == 4 && post && strcmp(seg[3], "cancel") == 0)
        return cancel(c, req, who, seg[2]);
    if (n == 4 && post && strcmp(seg[3], "force-complete") == 0)
        return force_complete(c, req, who, seg[2]);
    if (n == 4 && method == EVHTTP_REQ_PATCH && strcmp(seg[3], "limits") == 0)
        return patch_limits(c, req, who, seg[2]);
    reply_code(req, 404, "not_found", "path", "no such endpoint");
}

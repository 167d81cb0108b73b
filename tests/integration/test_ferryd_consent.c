/* Integration: consent, force-complete, limits and agent tokens through
 * ferryd. The real ferryd on 127.0.0.1, two real ferry-agents registered
 * with it (tests/lib/lab), a lab guest running memload at full speed over
 * a 64 MiB working set (it never converges at 8 MiB/s), project p1.
 *
 * Proves, end to end:
 *  - grant: under policy adaptive with the throttle rung gated, ferryd
 *    records the agent's consent request (GET /v1/consents as the owner),
 *    the agent's samples show no throttle while it waits; a member of
 *    another project gets 404 (show, grant, list); the owner grants
 *    (recorded, not on behalf) → the throttle happens (throttle_pct > 1 in
 *    the samples); limits PATCH and force-complete (pause) are forwarded
 *    → the migration succeeds, memory intact; the consent events are in
 *    the outbox, visible to the owner only;
 *  - refuse: an admin refuses on behalf (recorded as such), a second answer
 *    is 409, force-complete is refused (409) while the pause step lacks its
 *    consent, the pause is refused too → the migration ends without any
 *    throttle or pause, the source guest runs on intact;
 *  - post-copy (root only): the post-copy rung waits for its consent (no
 *    post-copy sample before), the grant → phase postcopy → succeeded;
 *  - timeout: consent_timeout_s = 2 with action abort → expired, decided
 *    by "policy", the migration is cancelled;
 *  - override: a create request's consent {timeout_s 2, timeout_action
 *    proceed} wins over the configured 600 s wait (granted by "policy",
 *    the throttle follows); above consent_timeout_max_s → 400;
 *  - tokens: agents started with --token-file re-adopt the migrated-in
 *    guest (running, registered again), refuse a ferryd without the token
 *    (the migration fails naming agent_token_file) and work with it.
 * Bounded: every wait has a deadline. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/ferryd.h"
#include "../lib/lab.h"
#include "../lib/test.h"
#include "util/httpc.h"
#include "util/xalloc.h"

#define HEARTBEAT_MS 500      /* ferryd's heartbeat interval in this test */
#define HTTP_TIMEOUT_MS 15000 /* one request to ferryd */
#define GUEST_MIB 256
#define SLOW_BPS (32ll << 20)  /* bytes/s: the guest dirties far more */
#define CONSENT_WAIT_MS 120000 /* until the controller asks, ms */
#define STEP_WAIT_MS 90000     /* until a granted step shows in the samples, ms */
#define END_WAIT_MS 120000     /* until a migration ends, ms */
#define AGENT_SECRET "s3cr3t-agent-token-0123456789abcdef"

static const char *const CMDLINE =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=64 ferry.rate=max";

static struct lab L;
static struct ferryd D;
static int ready;
static char secret_path[LAB_PATH_MAX + 32];
static char alice[300], bob[300];
static int agents_have_token; /* agents run with --token-file */

static int api(const char *method, const char *path, const char *token, const json_t *body,
               json_t **out)
{
    return ferryd_api(&D, method, path, token, body, out);
}

/* A request to agent a, with the agents' token once they require it. */
static int agent_api(const struct lab_agent *a, const char *method, const char *path,
                     const json_t *body, json_t **out)
{
    char base[96];
    struct ferr e = {0};
    int status = 0;
    json_t *o = NULL;
    snprintf(base, sizeof(base), "http://%s:%d", a->addr, a->port);
    if (httpc_json(base, method, path, body, agents_have_token ? AGENT_SECRET : NULL,
                   HTTP_TIMEOUT_MS, &status, &o, &e) != 0)
        return -1;
    if (out)
        *out = o;
    else
        json_decref(o);
    return status;
}

static const char *jstr(const json_t *o, const char *k)
{
    return ferryd_jstr(o, k);
}

static const char *err_msg(const json_t *o)
{
    return jstr(json_object_get(o, "error"), "message");
}

static int write_conf(int with_agent_token, int timeout_s, const char *action)
{
    char extra[LAB_PATH_MAX + 64] = "";
    if (with_agent_token)
        snprintf(extra, sizeof(extra), "agent_token_file = %s\n", secret_path);
    return ferryd_write_conf(&D,
                             "heartbeat_interval_ms = %d\nheartbeat_missed = 10\n"
                             "consent_timeout_s = %d\nconsent_timeout_action = %s\n"
                             "consent_timeout_max_s = 3600\n%s",
                             HEARTBEAT_MS, timeout_s, action, extra);
}

static int restart_daemon(int with_agent_token, int timeout_s, const char *action)
{
    ferryd_stop(&D, SIGTERM);
    if (write_conf(with_agent_token, timeout_s, action) != 0)
        return -1;
    return ferryd_start(&D);
}

/* Restarts lab agent i registered with ferryd, optionally requiring the
 * agents' token (--token-file); its guests are re-adopted. */
static int relaunch_agent(int i, int with_token)
{
    return ferryd_relaunch_agent(&D, &L, i, with_token ? secret_path : NULL);
}

static int g1_at;                    /* lab host index the guest runs on */
static const char *inst_name = "g1"; /* the guest migrated */

/* Bit i set: g1 is registered on lab host i (up). */
static int g1_hosts(void)
{
    json_t *o = NULL;
    int found = 0;
    if (api("GET", "/v1/hosts", D.admin, NULL, &o) != 200) {
        json_decref(o);
        return -1;
    }
    size_t i, j;
    json_t *h, *in;
    json_array_foreach(json_object_get(o, "hosts"), i, h)
    {
        json_array_foreach(json_object_get(h, "instances"), j, in)
        {
            if (strcmp(jstr(in, "name"), inst_name) == 0 && strcmp(jstr(h, "state"), "up") == 0)
                found |= strcmp(jstr(h, "name"), L.agents[0].name) == 0 ? 1 : 2;
        }
    }
    json_decref(o);
    return found;
}

/* Waits until g1 is registered on host only. */
static int wait_g1_on(int host, int timeout_ms)
{
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < (uint64_t)timeout_ms) {
        if (g1_hosts() == (1 << host))
            return 0;
        ferryd_sleep_ms(200);
    }
    return -1;
}

static int wait_terminal(const char *id, int timeout_ms, json_t **out)
{
    return ferryd_wait_terminal(&D, D.admin, id, timeout_ms, out);
}

/* Starts a migration of g1 from its host to the other one; *src receives
 * the source index. */
static json_t *mig_consent; /* consent override for start_mig, or NULL */

static int start_mig(json_t *policy, long long bps, char *id, size_t n, int *src)
{
    *src = g1_at;
    if (wait_g1_on(g1_at, 20000) != 0)
        return -1;
    json_t *b = json_pack("{s:s, s:s, s:{s:I}}", "instance", inst_name, "destination",
                          L.agents[1 - *src].name, "limits", "max_bandwidth_bps", (json_int_t)bps),
           *o = NULL;
    if (policy)
        json_object_set_new(b, "policy", policy);
    if (mig_consent)
        json_object_set(b, "consent", mig_consent);
    int st = api("POST", "/v1/migrations", D.admin, b, &o);
    json_decref(b);
    snprintf(id, n, "%s", jstr(o, "id"));
    if (st != 202)
        fprintf(stderr, "POST /v1/migrations: %d %s\n", st, err_msg(o));
    json_decref(o);
    return st == 202 ? 0 : -1;
}

/* The pending consent request of migration id for step, as seen by the
 * owner; its id into cid. */
static int wait_consent(const char *id, const char *step, char *cid, size_t n, int timeout_ms)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/consents?migration=%s&state=pending", id);
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < (uint64_t)timeout_ms) {
        json_t *o = NULL, *k;
        size_t i;
        int found = 0;
        if (api("GET", path, alice, NULL, &o) == 200)
            json_array_foreach(json_object_get(o, "consents"), i, k)
            {
                if (!found && strcmp(jstr(k, "step"), step) == 0) {
                    snprintf(cid, n, "%s", jstr(k, "id"));
                    found = 1;
                }
            }
        json_decref(o);
        if (found)
            return 0;
        json_t *m = NULL;
        char mp[128];
        snprintf(mp, sizeof(mp), "/v1/migrations/%s", id);
        int ended = api("GET", mp, D.admin, NULL, &m) == 200 &&
                    (!strcmp(jstr(m, "state"), "succeeded") ||
                     !strcmp(jstr(m, "state"), "failed") || !strcmp(jstr(m, "state"), "cancelled"));
        if (ended)
            fprintf(stderr, "migration %s ended (%s: %s) before asking for %s\n", id,
                    jstr(m, "state"), jstr(m, "last_error"), step);
        json_decref(m);
        if (ended)
            return -1;
        ferryd_sleep_ms(250);
    }
    return -1;
}

/* What the source agent's samples of its newest migration of g1 show. */
struct seen {
    long long max_throttle; /* highest throttle_pct, % */
    int postcopy;           /* samples in phase postcopy */
    int paused;             /* a pause_guest event */
    int throttled;          /* a set_throttle event */
    size_t samples;
    char state[32]; /* the agent's migration state */
};

static int agent_seen(int src, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    json_t *o = NULL, *m;
    size_t i;
    char aid[64] = "";
    if (agent_api(&L.agents[src], "GET", "/v1/migrations", NULL, &o) != 200) {
        json_decref(o);
        return -1;
    }
    json_array_foreach(json_object_get(o, "migrations"), i, m)
    {
        if (!aid[0] && strcmp(jstr(m, "instance"), inst_name) == 0)
            snprintf(aid, sizeof(aid), "%s", jstr(m, "id"));
    }
    json_decref(o);
    if (!aid[0])
        return -1;
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s?samples=1", aid);
    o = NULL;
    if (agent_api(&L.agents[src], "GET", path, NULL, &o) != 200) {
        json_decref(o);
        return -1;
    }
    snprintf(s->state, sizeof(s->state), "%s", jstr(o, "state"));
    json_t *sm = json_object_get(o, "samples");
    s->samples = json_array_size(sm);
    json_array_foreach(sm, i, m)
    {
        long long t = json_integer_value(json_object_get(m, "throttle_pct"));
        if (t > s->max_throttle)
            s->max_throttle = t;
        s->postcopy += strcmp(jstr(m, "phase"), "postcopy") == 0;
    }
    json_array_foreach(json_object_get(o, "events"), i, m)
    {
        s->paused |= strcmp(jstr(m, "action"), "pause_guest") == 0;
        s->throttled |= strcmp(jstr(m, "action"), "set_throttle") == 0;
    }
    json_decref(o);
    return 0;
}

static int answer(const char *cid, const char *verb, const char *token, json_t **out)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/consents/%s/%s", cid, verb);
    json_t *b = json_pack("{s:s}", "reason", "integration test");
    int st = api("POST", path, token, b, out);
    json_decref(b);
    return st;
}

static void intact_on(int host)
{
    struct lab_integrity r;
    struct ferr e = {0};
    int rc = lab_verify(&L.agents[host], "g1", &r, &e);
    CHECK(rc == 0, "verify on %s: %s", L.agents[host].name, e.msg);
    if (rc == 0)
        CHECK(r.ok && r.bad_pages == 0 && r.pages > 0, "integrity on %s: ok %d bad %lld of %lld",
              L.agents[host].name, r.ok, r.bad_pages, r.pages);
}

/* Events of subject consent/CID visible to token: their types, in order,
 * joined by ','. */
static void consent_events(const char *cid, const char *token, char *out, size_t n)
{
    json_t *o = NULL, *ev;
    size_t i;
    char subject[96];
    snprintf(subject, sizeof(subject), "consent/%s", cid);
    out[0] = '\0';
    long long since = 0;
    for (int page = 0; page < 200; page++) { /* pages of ≤ 1000 events */
        char path[64];
        snprintf(path, sizeof(path), "/v1/events?since=%lld", since);
        o = NULL;
        if (api("GET", path, token, NULL, &o) != 200) {
            json_decref(o);
            return;
        }
        json_array_foreach(json_object_get(o, "events"), i, ev)
        {
            if (strcmp(jstr(ev, "subject"), subject) == 0) {
                size_t l = strlen(out);
                snprintf(out + l, n - l, "%s%s", l ? "," : "", jstr(ev, "type"));
            }
        }
        long long next = json_integer_value(json_object_get(o, "next"));
        int more = json_array_size(json_object_get(o, "events")) > 0 && next > since;
        json_decref(o);
        if (!more)
            return;
        since = next;
    }
}

static json_t *gated_policy(const char *const *ladder, size_t nl, const char *const *gated,
                            size_t ng, int postcopy)
{
    json_t *p = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i}", "kind", "adaptive", "deadline_s",
                          600, "downtime_max_ms", 300, "settle_ms", 3000, "settle_max_ms", 60000,
                          "stall_min_ms", 3000, "stall_periods", 1);
    json_t *l = json_array(), *g = json_array();
    for (size_t i = 0; i < nl; i++)
        json_array_append_new(l, json_string(ladder[i]));
    for (size_t i = 0; i < ng; i++)
        json_array_append_new(g, json_string(gated[i]));
    json_object_set_new(p, "ladder", l);
    json_object_set_new(p, "consent_required", g);
    if (postcopy)
        json_object_set_new(p, "permit_post_copy", json_true());
    return p;
}

/* Starts a migration at SLOW_BPS whose policy gates (consent required)
 * the first n rungs of ladder, and waits for ferryd's consent request for
 * throttle: id and cid (idn, cidn bytes) and *src filled. Returns 1, or 0
 * after a failed check. */
static int start_gated(const char *const *ladder, int n, char *id, size_t idn, char *cid,
                       size_t cidn, int *src)
{
    int rc = start_mig(gated_policy(ladder, n, ladder, n, 0), SLOW_BPS, id, idn, src);
    CHECK(rc == 0, "start");
    if (rc != 0)
        return 0;
    rc = wait_consent(id, "throttle", cid, cidn, CONSENT_WAIT_MS);
    CHECK(rc == 0, "no throttle consent request in ferryd");
    return rc == 0;
}

static void t_grant(void)
{
    if (!ready)
        { CHECK(0, "lab or ferryd did not start: a setup failure is a failure"); return; }
    static const char *const ladder[] = {"throttle"};
    char id[80], cid[80], path[160];
    int src;
    if (!start_gated(ladder, 1, id, sizeof(id), cid, sizeof(cid), &src))
        return;
    json_t *o = NULL;
    snprintf(path, sizeof(path), "/v1/consents/%s", cid);
    REQUIRE(api("GET", path, alice, NULL, &o) == 200, "owner GET consent");
    CHECK(strcmp(jstr(o, "state"), "pending") == 0 && strcmp(jstr(o, "migration_id"), id) == 0 &&
              strcmp(jstr(o, "instance"), "g1") == 0 && strcmp(jstr(o, "project_id"), "p1") == 0,
          "consent record: state %s migration %s", jstr(o, "state"), jstr(o, "migration_id"));
    json_decref(o);
    /* another project: it does not exist for them */
    CHECK(api("GET", path, bob, NULL, NULL) == 404, "other project GET consent not 404");
    CHECK(answer(cid, "grant", bob, NULL) == 404, "other project grant not 404");
    o = NULL;
    CHECK(api("GET", "/v1/consents", bob, NULL, &o) == 200 &&
              json_array_size(json_object_get(o, "consents")) == 0,
          "other project lists consents");
    json_decref(o);
    /* the agent waits: no throttle while the request is open */
    ferryd_sleep_ms(3000);
    struct seen s;
    REQUIRE(agent_seen(src, &s) == 0, "agent samples");
    CHECK(strcmp(s.state, "running") == 0, "agent state %s while waiting", s.state);
    CHECK(s.max_throttle <= 1 && !s.throttled,
          "throttle before the grant: %lld %% (set_throttle %d) in %zu samples", s.max_throttle,
          s.throttled, s.samples);
    long long before = s.max_throttle;
    /* the owner grants */
    o = NULL;
    int st = answer(cid, "grant", alice, &o);
    CHECK(st == 200 && strcmp(jstr(o, "state"), "granted") == 0 &&
              strcmp(jstr(o, "decided_by"), "alice") == 0 &&
              json_is_false(json_object_get(o, "on_behalf")),
          "grant: %d state %s by %s", st, jstr(o, "state"), jstr(o, "decided_by"));
    json_decref(o);
    CHECK(answer(cid, "refuse", alice, NULL) == 409, "second answer not 409");
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < STEP_WAIT_MS) {
        if (agent_seen(src, &s) == 0 && (s.max_throttle > 1 || strcmp(s.state, "running") != 0))
            break;
        ferryd_sleep_ms(500);
    }
    CHECK(s.throttled && s.max_throttle > 1, "no throttle after the grant: %lld %% (was %lld)",
          s.max_throttle, before);
    printf("  throttle after the grant: %lld %% (before: %lld %%)\n", s.max_throttle, before);
    /* limits and force-complete are forwarded to the agent */
    snprintf(path, sizeof(path), "/v1/migrations/%s/limits", id);
    json_t *lim = json_pack("{s:I, s:i}", "max_bandwidth_bps", (json_int_t)(64ll << 20),
                            "downtime_max_ms", 500);
    o = NULL;
    st = api("PATCH", path, D.admin, lim, &o);
    json_decref(lim);
    if (st != 409) /* 409: it finished meanwhile */
        CHECK(st == 202 &&
                  json_is_true(json_object_get(json_object_get(o, "requested_limits"), "applied")),
              "limits: %d %s", st, err_msg(o));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/migrations/%s/force-complete", id);
    o = NULL;
    st = api("POST", path, D.admin, NULL, &o);
    CHECK(st == 202 || st == 409, "force-complete: %d %s", st, err_msg(o));
    json_decref(o);
    json_t *m = NULL;
    REQUIRE(wait_terminal(id, END_WAIT_MS, &m) == 0, "migration did not end");
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "state %s (%s)", jstr(m, "state"),
          jstr(m, "last_error"));
    if (strcmp(jstr(m, "state"), "succeeded") == 0)
        g1_at = 1 - src;
    json_decref(m);
    char evs[512];
    consent_events(cid, alice, evs, sizeof(evs));
    CHECK(strcmp(evs, "migration.consent_requested,migration.consent_granted") == 0,
          "owner's consent events: %s", evs);
    consent_events(cid, bob, evs, sizeof(evs));
    CHECK(evs[0] == '\0', "other project sees consent events: %s", evs);
    intact_on(1 - src);
}

static void t_refuse(void)
{
    if (!ready)
        { CHECK(0, "lab or ferryd did not start: a setup failure is a failure"); return; }
    static const char *const ladder[] = {"throttle", "pause"};
    char id[80], cid[80], cid2[80], path[160];
    int src;
    if (!start_gated(ladder, 2, id, sizeof(id), cid, sizeof(cid), &src))
        return;
    json_t *o = NULL;
    int st = answer(cid, "refuse", D.admin, &o);
    CHECK(st == 200 && strcmp(jstr(o, "state"), "refused") == 0 &&
              strcmp(jstr(o, "decided_by"), "admin") == 0 &&
              json_is_true(json_object_get(o, "on_behalf")),
          "refuse on behalf: %d state %s by %s", st, jstr(o, "state"), jstr(o, "decided_by"));
    json_decref(o);
    CHECK(answer(cid, "grant", alice, NULL) == 409, "grant after refusal not 409");
    int asked = wait_consent(id, "pause", cid2, sizeof(cid2), CONSENT_WAIT_MS) == 0;
    CHECK(asked, "no pause consent request after the throttle refusal");
    if (asked) {
        snprintf(path, sizeof(path), "/v1/migrations/%s/force-complete", id);
        o = NULL;
        st = api("POST", path, D.admin, NULL, &o);
        CHECK(st == 409 && strstr(err_msg(o), "consent"),
              "force-complete without the pause consent: %d %s", st, err_msg(o));
        json_decref(o);
        CHECK(answer(cid2, "refuse", alice, NULL) == 200, "refuse pause");
    }
    json_t *m = NULL;
    if (wait_terminal(id, 60000, &m) != 0) { /* the ladder is exhausted: end it */
        snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", id);
        CHECK(api("POST", path, D.admin, NULL, NULL) == 202, "cancel");
        REQUIRE(wait_terminal(id, END_WAIT_MS, &m) == 0, "migration did not end");
    }
    CHECK(strcmp(jstr(m, "state"), "succeeded") != 0, "refused migration %s", jstr(m, "state"));
    json_decref(m);
    struct seen s;
    REQUIRE(agent_seen(src, &s) == 0, "agent samples");
    CHECK(s.max_throttle <= 1 && !s.throttled && !s.paused,
          "a refused step happened: throttle %lld %% set_throttle %d pause %d in %zu samples",
          s.max_throttle, s.throttled, s.paused, s.samples);
    intact_on(src);
}

static void t_postcopy(void)
{
    if (!ready)
        { CHECK(0, "lab or ferryd did not start: a setup failure is a failure"); return; }
    if (!test_is_root())
        return test_skip("post-copy needs userfaultfd: run as root (the throttle cases cover "
                         "consent without it)");
    static const char *const ladder[] = {"postcopy"};
    char id[80], cid[80];
    int src;
    REQUIRE(start_mig(gated_policy(ladder, 1, ladder, 1, 1), SLOW_BPS, id, sizeof(id), &src) == 0,
            "start");
    REQUIRE(wait_consent(id, "postcopy", cid, sizeof(cid), CONSENT_WAIT_MS) == 0,
            "no post-copy consent request");
    ferryd_sleep_ms(2000);
    struct seen s;
    REQUIRE(agent_seen(src, &s) == 0, "agent samples");
    CHECK(s.postcopy == 0 && strcmp(s.state, "running") == 0,
          "post-copy before the grant: %d samples, state %s", s.postcopy, s.state);
    CHECK(answer(cid, "grant", alice, NULL) == 200, "grant post-copy");
    json_t *m = NULL;
    REQUIRE(wait_terminal(id, END_WAIT_MS, &m) == 0, "migration did not end");
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "state %s (%s)", jstr(m, "state"),
          jstr(m, "last_error"));
    if (strcmp(jstr(m, "state"), "succeeded") == 0)
        g1_at = 1 - src;
    json_decref(m);
    REQUIRE(agent_seen(src, &s) == 0, "agent samples");
    CHECK(s.postcopy > 0, "no post-copy sample after the grant (%zu samples)", s.samples);
    intact_on(1 - src);
}

static void t_timeout(void)
{
    if (!ready)
        { CHECK(0, "lab or ferryd did not start: a setup failure is a failure"); return; }
    REQUIRE(restart_daemon(0, 2, "abort") == 0, "ferryd restart");
    static const char *const ladder[] = {"throttle"};
    char id[80], cid[80], path[160];
    int src;
    if (!start_gated(ladder, 1, id, sizeof(id), cid, sizeof(cid), &src))
        return;
    json_t *m = NULL;
    REQUIRE(wait_terminal(id, 60000, &m) == 0, "migration not ended by the timeout");
    CHECK(strcmp(jstr(m, "state"), "cancelled") == 0, "state %s (%s)", jstr(m, "state"),
          jstr(m, "last_error"));
    json_decref(m);
    json_t *o = NULL;
    snprintf(path, sizeof(path), "/v1/consents/%s", cid);
    REQUIRE(api("GET", path, alice, NULL, &o) == 200, "GET consent");
    CHECK(strcmp(jstr(o, "state"), "expired") == 0 &&
              strcmp(jstr(o, "decided_by"), "policy") == 0 &&
              strcmp(jstr(o, "timeout_action"), "abort") == 0,
          "timed out consent: state %s by %s action %s", jstr(o, "state"), jstr(o, "decided_by"),
          jstr(o, "timeout_action"));
    json_decref(o);
    struct seen s;
    REQUIRE(agent_seen(src, &s) == 0, "agent samples");
    CHECK(s.max_throttle <= 1 && !s.throttled, "throttle without consent: %lld %%", s.max_throttle);
    intact_on(src);
}

/* A per-migration consent override: the configuration says wait 600 s,
 * the create request says 2 s then proceed. An override above
 * consent_timeout_max_s (3600 here) or with an unknown action is refused
 * (400 naming the field, nothing created). The request records the
 * override (timeout_s 2, on_timeout proceed), times out after ~2 s and is
 * granted by "policy" (migration.consent_expired then
 * migration.consent_granted), the grant reaches the agent (a throttle
 * sample follows); cancelling then leaves the source intact. */
static void t_override(void)
{
    if (!ready)
        { CHECK(0, "lab or ferryd did not start: a setup failure is a failure"); return; }
    REQUIRE(restart_daemon(0, 600, "wait") == 0, "ferryd restart");
    static const char *const ladder[] = {"throttle"};
    char id[80], cid[80], path[160];
    int src;
    json_t *o = NULL;
    json_t *b = json_pack("{s:s, s:{s:i}}", "instance", inst_name, "consent", "timeout_s", 7200);
    CHECK(api("POST", "/v1/migrations", D.admin, b, &o) == 400 &&
              strcmp(jstr(json_object_get(o, "error"), "field"), "consent.timeout_s") == 0,
          "override above consent_timeout_max_s: %s", err_msg(o));
    json_decref(o);
    json_decref(b);
    o = NULL;
    b = json_pack("{s:s, s:{s:s}}", "instance", inst_name, "consent", "timeout_action", "later");
    CHECK(api("POST", "/v1/migrations", D.admin, b, &o) == 400 &&
              strcmp(jstr(json_object_get(o, "error"), "field"), "consent.timeout_action") == 0,
          "unknown action: %s", err_msg(o));
    json_decref(o);
    json_decref(b);
    o = NULL;
    REQUIRE(api("GET", "/v1/migrations?state=requested", D.admin, NULL, &o) == 200, "list");
    CHECK(json_array_size(json_object_get(o, "migrations")) == 0, "a refused create left a record");
    json_decref(o);
    mig_consent = json_pack("{s:i, s:s}", "timeout_s", 2, "timeout_action", "proceed");
    int started = start_mig(gated_policy(ladder, 1, ladder, 1, 0), SLOW_BPS, id, sizeof(id), &src);
    json_decref(mig_consent);
    mig_consent = NULL;
    REQUIRE(started == 0, "start");
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    o = NULL;
    REQUIRE(api("GET", path, D.admin, NULL, &o) == 200, "show");
    json_t *k = json_object_get(o, "consent");
    CHECK(json_integer_value(json_object_get(k, "timeout_s")) == 2 &&
              strcmp(jstr(k, "timeout_action"), "proceed") == 0,
          "the record does not show the override");
    json_decref(o);
    REQUIRE(wait_consent(id, "throttle", cid, sizeof(cid), CONSENT_WAIT_MS) == 0,
            "no consent request");
    snprintf(path, sizeof(path), "/v1/consents/%s", cid);
    uint64_t t0 = lab_now_ms();
    int granted = 0;
    while (!granted && lab_now_ms() - t0 < 30000) {
        o = NULL;
        if (api("GET", path, alice, NULL, &o) == 200) {
            CHECK(json_integer_value(json_object_get(o, "timeout_s")) == 2 &&
                      strcmp(jstr(o, "on_timeout"), "proceed") == 0,
                  "request: timeout_s %lld on_timeout %s",
                  (long long)json_integer_value(json_object_get(o, "timeout_s")),
                  jstr(o, "on_timeout"));
            granted = strcmp(jstr(o, "state"), "granted") == 0 &&
                      strcmp(jstr(o, "decided_by"), "policy") == 0 &&
                      strcmp(jstr(o, "timeout_action"), "proceed") == 0;
        }
        json_decref(o);
        if (!granted)
            ferryd_sleep_ms(250);
    }
    CHECK(granted, "the 2 s override did not grant by policy within 30 s");
    char evs[256];
    consent_events(cid, alice, evs, sizeof(evs));
    CHECK(strstr(evs, "migration.consent_expired") && strstr(evs, "migration.consent_granted"),
          "consent events: %s", evs);
    /* the policy's grant reached the agent: it throttles */
    struct seen s = {0};
    t0 = lab_now_ms();
    while (lab_now_ms() - t0 < STEP_WAIT_MS && agent_seen(src, &s) == 0 && !s.throttled)
        ferryd_sleep_ms(500);
    CHECK(s.throttled, "no throttle after the policy's grant (max %lld %%)", s.max_throttle);
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", id);
    CHECK(api("POST", path, D.admin, NULL, NULL) == 202, "cancel");
    json_t *m = NULL;
    REQUIRE(wait_terminal(id, END_WAIT_MS, &m) == 0, "migration did not end");
    CHECK(strcmp(jstr(m, "state"), "cancelled") == 0 || strcmp(jstr(m, "state"), "succeeded") == 0,
          "state %s (%s)", jstr(m, "state"), jstr(m, "last_error"));
    if (strcmp(jstr(m, "state"), "succeeded") == 0)
        g1_at = 1 - src;
    json_decref(m);
    intact_on(g1_at);
}

static void t_tokens(void)
{
    if (!ready)
        { CHECK(0, "lab or ferryd did not start: a setup failure is a failure"); return; }
    REQUIRE(restart_daemon(0, 600, "wait") == 0, "ferryd restart");
    agents_have_token = 1;
    REQUIRE(relaunch_agent(0, 1) == 0 && relaunch_agent(1, 1) == 0, "agents with --token-file");
    CHECK(agent_api(&L.agents[0], "GET", "/v1/health", NULL, NULL) == 200, "agent with token");
    agents_have_token = 0;
    CHECK(agent_api(&L.agents[0], "GET", "/v1/health", NULL, NULL) == 401,
          "agent without token not 401");
    agents_have_token = 1;
    /* g1 (it arrived by migration) was re-adopted by the restarted agent as
       a running guest and registered again */
    json_t *gi = NULL;
    char gpath[96];
    snprintf(gpath, sizeof(gpath), "/v1/instances/%s", inst_name);
    uint64_t tr = lab_now_ms();
    int run = 0;
    while (!run && lab_now_ms() - tr < 20000) {
        gi = NULL;
        run = agent_api(&L.agents[g1_at], "GET", gpath, NULL, &gi) == 200 &&
              strcmp(jstr(gi, "state"), "running") == 0;
        json_decref(gi);
        if (!run)
            ferryd_sleep_ms(200);
    }
    CHECK(run, "g1 not re-adopted as running by the agent with --token-file");
    CHECK(wait_g1_on(g1_at, 20000) == 0, "g1 not registered again after the agents' restart");
    /* a fresh guest (g2) launched with the token */
    json_t *spec = json_pack("{s:s, s:s, s:I, s:I, s:s}", "name", "g2", "project", "p1",
                             "memory_mib", (json_int_t)128, "vcpus", (json_int_t)1, "cmdline",
                             "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=16 "
                             "ferry.rate=1000");
    int lst = agent_api(&L.agents[0], "POST", "/v1/instances", spec, NULL);
    json_decref(spec);
    REQUIRE(lst == 202 || lst == 200, "launch g2 with the token: %d", lst);
    inst_name = "g2";
    g1_at = 0;
    REQUIRE(wait_g1_on(0, 60000) == 0, "g2 not registered on host1");
    char id[80];
    int src;
    REQUIRE(start_mig(NULL, 0, id, sizeof(id), &src) == 0, "start without the agent token");
    json_t *m = NULL;
    REQUIRE(wait_terminal(id, 60000, &m) == 0, "migration without the token did not end");
    CHECK(strcmp(jstr(m, "state"), "failed") == 0 && strstr(jstr(m, "last_error"), "401") &&
              strstr(jstr(m, "last_error"), "agent_token_file"),
          "without the token: state %s error '%s'", jstr(m, "state"), jstr(m, "last_error"));
    json_decref(m);
    REQUIRE(restart_daemon(1, 600, "wait") == 0, "ferryd restart with agent_token_file");
    REQUIRE(start_mig(NULL, 0, id, sizeof(id), &src) == 0, "start with the agent token");
    /* A guest that does not converge is paused to complete; force-complete
     * answers 409 until the migration runs — and for good once it has ended
     * by itself (g2 dirties 1,000 pages/s and a migration starts at once, so
     * it can finish before the first try). */
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s/force-complete", id);
    uint64_t t0 = lab_now_ms();
    int st = 0;
    m = NULL;
    while (lab_now_ms() - t0 < 60000 && (st = api("POST", path, D.admin, NULL, NULL)) == 409 &&
           wait_terminal(id, 1, &m) != 0)
        ferryd_sleep_ms(500);
    CHECK(st == 202 || m, "force-complete with the token: %d, and the migration still runs", st);
    if (!m)
        REQUIRE(wait_terminal(id, END_WAIT_MS, &m) == 0, "migration with the token did not end");
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "with the token: state %s (%s)",
          jstr(m, "state"), jstr(m, "last_error"));
    if (strcmp(jstr(m, "state"), "succeeded") == 0)
        g1_at = 1 - src;
    json_decref(m);
}

static int setup(void)
{
    struct ferr e = {0};
    if (lab_start(&L, 2, &e) != 0 || ferryd_init(&D, &L, &e) != 0) {
        fprintf(stderr, "lab: %s\n", e.msg);
        return -1;
    }
    snprintf(secret_path, sizeof(secret_path), "%s/agents-api.token", D.dir);
    if (write_conf(0, 600, "wait") != 0)
        return -1;
    if (ferryd_agent_token(&D) != 0 ||
        ferryd_add_token(&D, "alice", "p1", "member", alice, sizeof(alice)) != 0 ||
        ferryd_add_token(&D, "bob", "p2", "member", bob, sizeof(bob)) != 0)
        return -1;
    FILE *f = fopen(secret_path, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", AGENT_SECRET);
    fclose(f);
    if (ferryd_start(&D) != 0)
        return -1;
    if (relaunch_agent(0, 0) != 0 || relaunch_agent(1, 0) != 0)
        return -1;
    if (lab_post_instance(&L.agents[0], "g1", "p1", GUEST_MIB, CMDLINE, NULL, &e) != 0) {
        fprintf(stderr, "launch g1: %s\n", e.msg);
        return -1;
    }
    if (lab_console_expect(&L.agents[0], "g1", NULL, 0, "FERRY-READY ", LAB_BOOT_TIMEOUT_MS, NULL,
                           &e) != 0) {
        fprintf(stderr, "g1 boot: %s\n", e.msg);
        return -1;
    }
    return wait_g1_on(0, 15000);
}

int main(void)
{
    ready = setup() == 0;
    test_run("ferryd consent: request recorded, no throttle before the owner's grant, then "
             "throttle; other project 404; limits + force-complete forwarded; succeeds intact",
             t_grant);
    test_run("ferryd consent: refused on behalf (recorded), force-complete 409 without consent, "
             "no refused step ever happens, source intact",
             t_refuse);
    test_run("ferryd consent: post-copy waits for its grant, then post-copy, succeeds intact",
             t_postcopy);
    test_run("ferryd consent: timeout with action abort → expired by policy, migration cancelled",
             t_timeout);
    test_run("ferryd consent: per-migration override (2 s, proceed) over the configured 600 s "
             "wait → granted by policy, throttle follows; over the maximum → 400",
             t_override);
    test_run("ferryd tokens: agents with --token-file refuse ferryd without agent_token_file "
             "(clear error), accept it with",
             t_tokens);
    int rc = test_done();
    if (rc != 0 && D.log_path[0])
        ferryd_tail_log(&D, 60);
    ferryd_fini(&D, 0);
    lab_stop(&L);
    return rc;
}

/* Integration: ferryd runs real migrations. The real ferryd binary on
 * 127.0.0.1 and two real ferry-agents (tests/lib/lab) started with
 * --coordinator, a lab guest running memload in project p1.
 *
 * Proves: the agents register themselves (capacity, the guest with its
 * project); POST /v1/migrations as admin without a destination places the
 * guest on the other host and the migration succeeds; memload finds every
 * page intact on the destination; the record is complete (state, phase,
 * progress 100 %, downtime, QEMU's result, no error); the migration's
 * events come in lifecycle order and the whole outbox has no seq gap;
 * a member of another project gets 404 (show, cancel), a member of the
 * owning project sees the record without host names and may not cancel
 * (403) nor create (403); a limits change is forwarded to the agent
 * (202, applied) and a member may not force-complete (403); a member holding migration_canceller cancels a second
 * migration → cancelled, and the guest runs on at the source, intact; a
 * frozen source agent makes its host down and the migration unknown until
 * it thaws; kill -9 of ferryd mid-migration is resumed after a restart;
 * admission with max_migrations_per_source = 1: a second migration from
 * the same host waits "queued" (cancellable, kept across kill -9 of ferryd)
 * and starts only after the first completed; an agent restarted with
 * --token-file re-adopts its migrated-in guests as running guests and
 * registers them again.
 * Bounded: every wait has a deadline (< 4 min in all on the lab machine). */
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
#define GUEST_MIB 128
#define MIGRATE_TIMEOUT_MS 90000
#define SLOW_BPS (2ll << 20)   /* bytes/s: keeps the second migration in flight */
#define FIRST_BPS (16ll << 20) /* bytes/s: the first one lasts a few seconds */
#define DOWN_BPS (8ll << 20)   /* bytes/s: outlasts the source host going down */
#define AGENT_SECRET "agent-api-secret-0123456789abcdef"

static const char *const CMDLINE =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=32 ferry.rate=1000";

static const char *const CMDLINE2 =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=16 ferry.rate=1000";

static struct lab L;
static struct ferryd D;
static int ready;
static char p1_member[300], p1_canceller[300], p2_member[300];
static char mig1[80];

static int api(const char *method, const char *path, const char *token, const json_t *body,
               json_t **out)
{
    return ferryd_api(&D, method, path, token, body, out);
}

static const char *jstr(const json_t *o, const char *k)
{
    return ferryd_jstr(o, k);
}

/* The host name an instance is registered on in ferryd, "" when none. */
static void instance_host(const char *inst, char *out, size_t n)
{
    json_t *o = NULL;
    out[0] = '\0';
    if (api("GET", "/v1/hosts", D.admin, NULL, &o) != 200) {
        json_decref(o);
        return;
    }
    size_t i, j;
    json_t *h, *in;
    json_array_foreach(json_object_get(o, "hosts"), i, h)
    {
        json_array_foreach(json_object_get(h, "instances"), j, in)
        {
            if (strcmp(jstr(in, "name"), inst) == 0 && strcmp(jstr(h, "state"), "up") == 0)
                snprintf(out, n, "%s", jstr(h, "name"));
        }
    }
    json_decref(o);
}

static int wait_instance_on(const char *inst, const char *host, int timeout_ms)
{
    uint64_t t0 = lab_now_ms();
    char got[64];
    while (lab_now_ms() - t0 < (uint64_t)timeout_ms) {
        instance_host(inst, got, sizeof(got));
        if (strcmp(got, host) == 0)
            return 0;
        ferryd_sleep_ms(200);
    }
    return -1;
}

static int wait_terminal(const char *id, int timeout_ms, json_t **out)
{
    return ferryd_wait_terminal(&D, D.admin, id, timeout_ms, out);
}

static int wait_state(const char *id, const char *state, int timeout_ms)
{
    return ferryd_wait_state(&D, D.admin, id, state, timeout_ms);
}

static void t_register(void)
{
    if (!ready)
        { CHECK(0, "lab or ferryd did not start: a setup failure is a failure"); return; }
    CHECK(wait_instance_on("g1", "host1", 10000) == 0, "g1 not registered on host1");
    json_t *o = NULL;
    REQUIRE(api("GET", "/v1/hosts", D.admin, NULL, &o) == 200, "GET /v1/hosts");
    size_t i, n_up = 0;
    json_t *h;
    json_array_foreach(json_object_get(o, "hosts"), i, h)
    {
        if (strcmp(jstr(h, "state"), "up") == 0 &&
            json_integer_value(json_object_get(h, "ram_mib")) > 0 &&
            json_integer_value(json_object_get(h, "vcpus")) > 0)
            n_up++;
        json_t *in;
        size_t j;
        json_array_foreach(json_object_get(h, "instances"), j, in)
        {
            if (strcmp(jstr(in, "name"), "g1") == 0)
                CHECK(strcmp(jstr(in, "project_id"), "p1") == 0 &&
                          json_integer_value(json_object_get(in, "memory_mib")) == GUEST_MIB,
                      "g1 registered with project '%s'", jstr(in, "project_id"));
        }
    }
    CHECK(n_up == 2, "%zu hosts up with capacity", n_up);
    json_decref(o);
}

static void t_migrate(void)
{
    if (!ready)
        { CHECK(0, "lab or ferryd did not start: a setup failure is a failure"); return; }
    json_t *b = json_pack("{s:s}", "instance", "g1"), *o = NULL;
    CHECK(api("POST", "/v1/migrations", p2_member, b, NULL) == 404, "other project creates");
    CHECK(api("POST", "/v1/migrations", p1_member, b, NULL) == 403, "member creates");
    json_t *bad = json_pack("{s:s, s:{s:i}}", "instance", "g1", "limits", "downtime_ms", 0);
    CHECK(api("POST", "/v1/migrations", D.admin, bad, &o) == 400 &&
              strcmp(jstr(json_object_get(o, "error"), "field"), "limits.downtime_ms") == 0,
          "bad limits not refused by field");
    json_decref(o);
    json_decref(bad);
    o = NULL;
    /* a bandwidth cap keeps it running for a few polls (progress events) */
    json_object_set_new(b, "limits",
                        json_pack("{s:I}", "max_bandwidth_bps", (json_int_t)FIRST_BPS));
    int st = api("POST", "/v1/migrations", D.admin, b, &o);
    json_decref(b);
    REQUIRE(st == 202, "POST /v1/migrations: %d", st);
    snprintf(mig1, sizeof(mig1), "%s", jstr(o, "id"));
    CHECK(strcmp(jstr(o, "state"), "requested") == 0, "created in state %s", jstr(o, "state"));
    CHECK(strcmp(jstr(o, "destination"), "host2") == 0, "placed on '%s'", jstr(o, "destination"));
    json_decref(o);
    b = json_pack("{s:s}", "instance", "g1");
    CHECK(api("POST", "/v1/migrations", D.admin, b, NULL) == 409, "second migration of g1");
    json_decref(b);

    json_t *m = NULL;
    REQUIRE(wait_terminal(mig1, MIGRATE_TIMEOUT_MS, &m) == 0, "migration %s did not end", mig1);
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "state %s error %s", jstr(m, "state"),
          jstr(m, "last_error"));
    CHECK(strcmp(jstr(m, "source"), "host1") == 0 && strcmp(jstr(m, "destination"), "host2") == 0,
          "hosts %s → %s", jstr(m, "source"), jstr(m, "destination"));
    static const char *const fields[] = {
        "id",           "instance",         "project_id", "state",   "phase",
        "policy",       "limits",           "progress",   "eta",     "downtime_ms",
        "guest_impact", "result",           "started_by", "created", "updated",
        "last_error",   "requested_limits", "stalls",     NULL};
    for (int i = 0; fields[i]; i++)
        CHECK(json_object_get(m, fields[i]) != NULL, "record lacks %s", fields[i]);
    const json_t *pr = json_object_get(m, "progress");
    CHECK(json_number_value(json_object_get(pr, "pct")) >= 99.9, "progress %.1f",
          json_number_value(json_object_get(pr, "pct")));
    CHECK(json_integer_value(json_object_get(json_object_get(pr, "memory"), "total_bytes")) > 0,
          "memory total unknown");
    CHECK(json_is_integer(json_object_get(m, "downtime_ms")), "downtime not recorded");
    CHECK(json_is_object(json_object_get(m, "result")) &&
              json_integer_value(json_object_get(json_object_get(m, "result"), "ram_transferred")) >
                  0,
          "no QEMU result");
    CHECK(strcmp(jstr(m, "last_error"), "") == 0, "error '%s'", jstr(m, "last_error"));
    CHECK(strcmp(jstr(json_object_get(m, "started_by"), "user"), "admin") == 0, "started_by");
    /* the agent's impact report reaches the record (a guest without a disk:
       no disk figures, the CPU throttle time all the same) */
    const json_t *gi = json_object_get(m, "guest_impact");
    CHECK(json_is_integer(json_object_get(gi, "cpu_throttle_ms")) &&
              json_is_object(json_object_get(gi, "disk")) &&
              json_is_null(json_object_get(json_object_get(gi, "disk"), "baseline")),
          "guest_impact without the agent's impact report");
    json_decref(m);

    struct lab_integrity r;
    struct ferr e = {0};
    REQUIRE(lab_verify(&L.agents[1], "g1", &r, &e) == 0, "verify on host2: %s", e.msg);
    CHECK(r.ok && r.bad_pages == 0 && r.pages > 0, "integrity: ok %d bad %lld of %lld", r.ok,
          r.bad_pages, r.pages);
}

static void t_events(void)
{
    if (!ready || !mig1[0])
        return test_skip("no migration");
    json_t *o = NULL;
    REQUIRE(api("GET", "/v1/events?since=0", D.admin, NULL, &o) == 200, "GET /v1/events");
    size_t i;
    json_t *ev;
    long long prev = 0;
    int k = 0;
    static const char *const want[] = {"migration.requested", "migration.started",
                                       "migration.completed"};
    char subject[128];
    snprintf(subject, sizeof(subject), "migration/%s", mig1);
    int progress = 0;
    json_array_foreach(json_object_get(o, "events"), i, ev)
    {
        long long seq = json_integer_value(json_object_get(ev, "seq"));
        CHECK(seq == prev + 1, "seq gap: %lld after %lld", seq, prev);
        prev = seq;
        if (strcmp(jstr(ev, "subject"), subject) != 0)
            continue;
        const char *t = jstr(ev, "type");
        if (strcmp(t, "migration.progress") == 0) {
            CHECK(k == 2, "progress outside running (after %d lifecycle events)", k);
            progress++;
            continue;
        }
        if (k < 3 && strcmp(t, want[k]) == 0)
            k++;
        else if (strcmp(t, "migration.stalled") != 0)
            CHECK(0, "unexpected %s at seq %lld (after %d lifecycle events)", t, seq, k);
    }
    CHECK(k == 3, "lifecycle events seen: %d of 3", k);
    CHECK(progress >= 1, "no migration.progress event");
    json_decref(o);
}

static void t_visibility(void)
{
    if (!ready || !mig1[0])
        return test_skip("no migration");
    char path[128];
    json_t *o = NULL;
    snprintf(path, sizeof(path), "/v1/migrations/%s", mig1);
    CHECK(api("GET", path, p2_member, NULL, NULL) == 404, "other project sees it");
    REQUIRE(api("GET", path, p1_member, NULL, &o) == 200, "owner cannot see it");
    CHECK(!json_object_get(o, "source") && !json_object_get(o, "destination"),
          "host names shown to a member");
    CHECK(json_object_get(o, "progress") && json_object_get(o, "eta"), "progress/eta hidden");
    json_decref(o);
    o = NULL;
    REQUIRE(api("GET", "/v1/migrations", p2_member, NULL, &o) == 200, "list as p2");
    CHECK(json_array_size(json_object_get(o, "migrations")) == 0, "p2 lists p1's migration");
    json_decref(o);
    o = NULL;
    REQUIRE(api("GET", "/v1/migrations?instance=g1", p1_member, NULL, &o) == 200, "list as p1");
    CHECK(json_array_size(json_object_get(o, "migrations")) == 1, "p1 lists %zu",
          json_array_size(json_object_get(o, "migrations")));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", mig1);
    CHECK(api("POST", path, p2_member, NULL, NULL) == 404, "other project cancels: not 404");
    o = NULL;
    REQUIRE(api("GET", "/v1/events?since=0", p1_member, NULL, &o) == 200, "events as p1");
    size_t i, seen = 0;
    json_t *ev;
    json_array_foreach(json_object_get(o, "events"), i, ev)
    {
        const json_t *p = json_object_get(ev, "payload");
        if (strncmp(jstr(ev, "type"), "migration.", 10) != 0) {
            CHECK(0, "member sees %s", jstr(ev, "type"));
            continue;
        }
        seen++;
        CHECK(!json_object_get(p, "source") && !json_object_get(p, "destination"),
              "host names in %s for a member", jstr(ev, "type"));
    }
    CHECK(seen >= 3, "member sees %zu migration events", seen);
    json_decref(o);
    o = NULL;
    REQUIRE(api("GET", "/v1/events?since=0", p2_member, NULL, &o) == 200, "events as p2");
    CHECK(json_array_size(json_object_get(o, "events")) == 0, "p2 sees %zu events",
          json_array_size(json_object_get(o, "events")));
    json_decref(o);
    CHECK(api("POST", path, D.admin, NULL, NULL) == 409, "cancel of a finished migration");
}

static void t_cancel(void)
{
    if (!ready || !mig1[0])
        return test_skip("no migration");
    REQUIRE(wait_instance_on("g1", "host2", 10000) == 0, "g1 not re-registered on host2");
    json_t *b = json_pack("{s:s, s:s, s:{s:I}}", "instance", "g1", "destination", "host1", "limits",
                          "max_bandwidth_bps", (json_int_t)SLOW_BPS),
           *o = NULL;
    int st = api("POST", "/v1/migrations", D.admin, b, &o);
    json_decref(b);
    REQUIRE(st == 202, "second POST: %d", st);
    char id[80], path[128];
    snprintf(id, sizeof(id), "%s", jstr(o, "id"));
    json_decref(o);
    REQUIRE(wait_state(id, "running", 30000) == 0, "second migration never running");
    snprintf(path, sizeof(path), "/v1/migrations/%s/limits", id);
    json_t *lim = json_pack("{s:I}", "max_bandwidth_bps", (json_int_t)(64ll << 20));
    o = NULL;
    /* forwarded to the source agent (the cap stays low: SLOW_BPS again) */
    json_object_set_new(lim, "max_bandwidth_bps", json_integer((json_int_t)SLOW_BPS));
    /* ferryd says "running" once it has started the source agent, which
     * answers 409 until QEMU's migration has begun: retry that, bounded. */
    for (int tries = 0; tries < 75; tries++) {
        json_decref(o);
        o = NULL;
        st = api("PATCH", path, D.admin, lim, &o);
        if (st != 409)
            break;
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(st == 202 && json_is_true(json_object_get(json_object_get(o, "requested_limits"),
                                                    "applied")),
          "limits change: %d %s", st, jstr(json_object_get(o, "error"), "message"));
    json_decref(o);
    json_decref(lim);
    snprintf(path, sizeof(path), "/v1/migrations/%s/force-complete", id);
    CHECK(api("POST", path, p1_member, NULL, NULL) == 403, "member force-completes");
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", id);
    CHECK(api("POST", path, p1_member, NULL, NULL) == 403, "member without the role cancels");
    o = NULL;
    st = api("POST", path, p1_canceller, NULL, &o);
    CHECK(st == 202, "canceller: %d %s", st, jstr(json_object_get(o, "error"), "message"));
    json_decref(o);
    json_t *m = NULL;
    REQUIRE(wait_terminal(id, 60000, &m) == 0, "cancelled migration did not end");
    CHECK(strcmp(jstr(m, "state"), "cancelled") == 0, "state %s (%s)", jstr(m, "state"),
          jstr(m, "last_error"));
    json_decref(m);
    char state[32] = "";
    pid_t pid = 0;
    struct ferr e = {0};
    CHECK(lab_instance_pid(&L.agents[1], "g1", &pid, state, sizeof(state), &e) == 0 &&
              strcmp(state, "running") == 0,
          "source guest state '%s' %s", state, e.msg);
    struct lab_integrity r;
    REQUIRE(lab_verify(&L.agents[1], "g1", &r, &e) == 0, "verify on host2: %s", e.msg);
    CHECK(r.ok && r.bad_pages == 0, "integrity after cancel: ok %d bad %lld", r.ok, r.bad_pages);
    o = NULL;
    REQUIRE(api("GET", "/v1/events?since=0", D.admin, NULL, &o) == 200, "events");
    size_t i;
    json_t *ev;
    int cancelled = 0;
    json_array_foreach(json_object_get(o, "events"), i, ev)
    {
        if (strstr(jstr(ev, "subject"), id) && strcmp(jstr(ev, "type"), "migration.cancelled") == 0)
            cancelled++;
    }
    CHECK(cancelled == 1, "%d migration.cancelled events", cancelled);
    json_decref(o);
}

static int count_type(const char *id, const char *type)
{
    json_t *o = NULL, *ev;
    size_t i;
    int n = 0;
    if (api("GET", "/v1/events?since=0", D.admin, NULL, &o) != 200) {
        json_decref(o);
        return -1;
    }
    json_array_foreach(json_object_get(o, "events"), i, ev)
    {
        if (strstr(jstr(ev, "subject"), id) && strcmp(jstr(ev, "type"), type) == 0)
            n++;
    }
    json_decref(o);
    return n;
}

/* POSTs a migration of inst limited to bps bytes/s as the admin, to dest
 * (NULL: ferryd places it); its id into id (n bytes, "" when none) and,
 * when out is non-NULL, the reply into *out (caller decrefs). Returns the
 * HTTP status. */
static int create(const char *inst, const char *dest, long long bps, char *id, size_t n,
                  json_t **out)
{
    json_t *b = json_pack("{s:s, s:{s:I}}", "instance", inst, "limits", "max_bandwidth_bps",
                          (json_int_t)bps);
    if (dest)
        json_object_set_new(b, "destination", json_string(dest));
    json_t *o = NULL;
    int st = api("POST", "/v1/migrations", D.admin, b, &o);
    json_decref(b);
    snprintf(id, n, "%s", jstr(o, "id"));
    if (out)
        *out = o;
    else
        json_decref(o);
    return st;
}

/* The source agent freezes (SIGSTOP): its host misses heartbeats, goes
 * down, and the running migration becomes unknown (cancel refused); when
 * the agent thaws, its record decides: the migration (QEMU carried on
 * meanwhile) is recorded succeeded and the guest is intact on host1. */
static void t_host_down(void)
{
    if (!ready || !mig1[0])
        return test_skip("no migration");
    REQUIRE(wait_instance_on("g1", "host2", 10000) == 0, "g1 not on host2");
    json_t *o = NULL;
    char id[80], path[128];
    int st = create("g1", NULL, DOWN_BPS, id, sizeof(id), &o);
    REQUIRE(st == 202, "POST: %d", st);
    CHECK(strcmp(jstr(o, "destination"), "host1") == 0, "placed on %s", jstr(o, "destination"));
    json_decref(o);
    REQUIRE(wait_state(id, "running", 30000) == 0, "never running");
    pid_t agent = L.agents[1].pid;
    kill(agent, SIGSTOP);
    int unknown = wait_state(id, "unknown", 20000);
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", id);
    int cancel_st = unknown == 0 ? api("POST", path, D.admin, NULL, NULL) : 0;
    kill(agent, SIGCONT);
    CHECK(unknown == 0, "migration did not become unknown with its source host down");
    CHECK(cancel_st == 409, "cancel while unknown: %d", cancel_st);
    json_t *m = NULL;
    REQUIRE(wait_terminal(id, 60000, &m) == 0, "not reconciled after the agent came back");
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "reconciled to %s (%s)", jstr(m, "state"),
          jstr(m, "last_error"));
    json_decref(m);
    CHECK(count_type(id, "migration.unknown") == 1, "migration.unknown events: %d",
          count_type(id, "migration.unknown"));
    CHECK(count_type(id, "migration.completed") == 1, "migration.completed events: %d",
          count_type(id, "migration.completed"));
    struct lab_integrity r;
    struct ferr e = {0};
    REQUIRE(lab_verify(&L.agents[0], "g1", &r, &e) == 0, "verify on host1: %s", e.msg);
    CHECK(r.ok && r.bad_pages == 0, "integrity: ok %d bad %lld", r.ok, r.bad_pages);
}

/* kill -9 ferryd while a migration runs, start it again: it resumes
 * polling from the store, the outcome is recorded once, and the outbox
 * still has no seq gap. */
static void t_restart(void)
{
    if (!ready || !mig1[0])
        return test_skip("no migration");
    REQUIRE(wait_instance_on("g1", "host1", 10000) == 0, "g1 not on host1");
    char id[80];
    int st = create("g1", NULL, DOWN_BPS, id, sizeof(id), NULL);
    REQUIRE(st == 202, "POST: %d", st);
    REQUIRE(wait_state(id, "running", 30000) == 0, "never running");
    ferryd_stop(&D, SIGKILL);
    REQUIRE(ferryd_start(&D) == 0, "ferryd did not restart");
    json_t *m = NULL;
    REQUIRE(wait_terminal(id, 60000, &m) == 0, "not finished after the restart");
    CHECK(strcmp(jstr(m, "state"), "succeeded") == 0, "state %s (%s)", jstr(m, "state"),
          jstr(m, "last_error"));
    json_decref(m);
    CHECK(count_type(id, "migration.started") == 1, "started %d times",
          count_type(id, "migration.started"));
    CHECK(count_type(id, "migration.completed") == 1, "completed %d times",
          count_type(id, "migration.completed"));
    json_t *o = NULL;
    REQUIRE(api("GET", "/v1/events?since=0", D.admin, NULL, &o) == 200, "events");
    size_t i;
    json_t *ev;
    long long prev = 0;
    json_array_foreach(json_object_get(o, "events"), i, ev)
    {
        long long seq = json_integer_value(json_object_get(ev, "seq"));
        CHECK(seq == prev + 1, "seq gap: %lld after %lld", seq, prev);
        prev = seq;
    }
    json_decref(o);
    struct lab_integrity r;
    struct ferr e = {0};
    REQUIRE(lab_verify(&L.agents[1], "g1", &r, &e) == 0, "verify on host2: %s", e.msg);
    CHECK(r.ok && r.bad_pages == 0, "integrity: ok %d bad %lld", r.ok, r.bad_pages);
}

/* Number of events of type about migration id, and the seq of the last
 * one into *seq (0 when none). */
static int find_event(const char *id, const char *type, long long *seq)
{
    json_t *o = NULL, *ev;
    size_t i;
    int n = 0;
    *seq = 0;
    if (api("GET", "/v1/events?since=0", D.admin, NULL, &o) != 200) {
        json_decref(o);
        return -1;
    }
    char subject[128];
    snprintf(subject, sizeof(subject), "migration/%s", id);
    json_array_foreach(json_object_get(o, "events"), i, ev)
    {
        if (strcmp(jstr(ev, "subject"), subject) == 0 && strcmp(jstr(ev, "type"), type) == 0) {
            n++;
            *seq = json_integer_value(json_object_get(ev, "seq"));
        }
    }
    json_decref(o);
    return n;
}

/* Admission: with max_migrations_per_source = 1, a second migration from
 * the same host is accepted (202) and waits as "queued" (show, list
 * filter, migration.queued naming the cap); a queued migration can be
 * cancelled (cancelled at once, nothing touched); created again it queues
 * again; kill -9 of ferryd while it waits: after the restart it is still
 * queued (the queue is the store) and the first one goes on; once the
 * first completes the second is admitted (migration.admitted after the
 * first's migration.completed) and succeeds, both guests intact. */
static void t_queue(void)
{
    if (!ready || !mig1[0])
        return test_skip("no migration");
    struct ferr e = {0};
    REQUIRE(lab_console_expect(&L.agents[1], "g2", NULL, 0, "FERRY-READY ", LAB_BOOT_TIMEOUT_MS,
                               NULL, &e) == 0,
            "g2 boot: %s", e.msg);
    REQUIRE(wait_instance_on("g1", "host2", 10000) == 0, "g1 not on host2");
    REQUIRE(wait_instance_on("g2", "host2", 20000) == 0, "g2 not registered on host2");
    char a[80], b[80], b0[80], path[160];
    json_t *o = NULL;
    REQUIRE(create("g1", "host1", DOWN_BPS, a, sizeof(a), NULL) == 202, "first create");
    REQUIRE(create("g2", "host1", FIRST_BPS, b0, sizeof(b0), NULL) == 202, "second create");
    CHECK(ferryd_wait_state(&D, D.admin, b0, "queued", 5000) == 0, "second not queued");
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", b0);
    CHECK(api("POST", path, D.admin, NULL, &o) == 202 && strcmp(jstr(o, "state"), "cancelled") == 0,
          "cancel while queued: %s", jstr(o, "state"));
    json_decref(o);
    o = NULL;
    REQUIRE(create("g2", "host1", FIRST_BPS, b, sizeof(b), NULL) == 202, "second create again");
    REQUIRE(ferryd_wait_state(&D, D.admin, b, "queued", 5000) == 0, "not queued again");
    snprintf(path, sizeof(path), "/v1/migrations/%s", b);
    REQUIRE(api("GET", path, D.admin, NULL, &o) == 200, "show queued");
    CHECK(strcmp(jstr(o, "phase"), "queued") == 0, "phase %s", jstr(o, "phase"));
    json_decref(o);
    o = NULL;
    REQUIRE(api("GET", "/v1/migrations?state=queued", D.admin, NULL, &o) == 200, "list queued");
    json_t *lst = json_object_get(o, "migrations");
    CHECK(json_array_size(lst) == 1 && strcmp(jstr(json_array_get(lst, 0), "id"), b) == 0,
          "list state=queued: %zu", json_array_size(lst));
    json_decref(o);
    o = NULL;
    REQUIRE(api("GET", "/v1/events?since=0", D.admin, NULL, &o) == 200, "events");
    size_t i;
    json_t *ev;
    int reason_ok = 0;
    json_array_foreach(json_object_get(o, "events"), i, ev)
    {
        if (strcmp(jstr(ev, "type"), "migration.queued") == 0 && strstr(jstr(ev, "subject"), b))
            reason_ok = strstr(jstr(json_object_get(ev, "payload"), "reason"),
                               "max_migrations_per_source") != NULL;
    }
    CHECK(reason_ok, "no migration.queued naming the per-source cap");
    json_decref(o);
    /* the queue survives a crash */
    ferryd_stop(&D, SIGKILL);
    REQUIRE(ferryd_start(&D) == 0, "ferryd did not restart");
    snprintf(path, sizeof(path), "/v1/migrations/%s", a);
    o = NULL;
    REQUIRE(api("GET", path, D.admin, NULL, &o) == 200, "first after restart");
    const char *sa = jstr(o, "state");
    int first_done = !strcmp(sa, "succeeded") || !strcmp(sa, "failed");
    json_decref(o);
    o = NULL;
    snprintf(path, sizeof(path), "/v1/migrations/%s", b);
    REQUIRE(api("GET", path, D.admin, NULL, &o) == 200, "second after restart");
    CHECK(first_done || strcmp(jstr(o, "state"), "queued") == 0,
          "second after the restart: %s while the first runs", jstr(o, "state"));
    json_decref(o);
    json_t *ma = NULL, *mb = NULL;
    REQUIRE(ferryd_wait_terminal(&D, D.admin, a, MIGRATE_TIMEOUT_MS, &ma) == 0, "first did not end");
    CHECK(strcmp(jstr(ma, "state"), "succeeded") == 0, "first: %s (%s)", jstr(ma, "state"),
          jstr(ma, "last_error"));
    json_decref(ma);
    REQUIRE(ferryd_wait_terminal(&D, D.admin, b, MIGRATE_TIMEOUT_MS, &mb) == 0,
            "second did not end");
    CHECK(strcmp(jstr(mb, "state"), "succeeded") == 0, "second: %s (%s)", jstr(mb, "state"),
          jstr(mb, "last_error"));
    json_decref(mb);
    long long completed = 0, admitted = 0, started = 0, queued = 0;
    CHECK(find_event(a, "migration.completed", &completed) == 1, "first completed events");
    CHECK(find_event(b, "migration.queued", &queued) == 1, "second queued events");
    CHECK(find_event(b, "migration.admitted", &admitted) == 1, "second admitted events");
    CHECK(find_event(b, "migration.started", &started) == 1, "second started events");
    CHECK(queued < completed && completed < admitted && admitted < started,
          "order: queued %lld, first completed %lld, admitted %lld, started %lld", queued,
          completed, admitted, started);
    CHECK(find_event(b0, "migration.started", &started) == 0, "the cancelled one started");
    struct lab_integrity r;
    REQUIRE(lab_verify(&L.agents[0], "g1", &r, &e) == 0, "verify g1: %s", e.msg);
    CHECK(r.ok && r.bad_pages == 0, "g1 integrity: ok %d bad %lld", r.ok, r.bad_pages);
    REQUIRE(lab_verify(&L.agents[0], "g2", &r, &e) == 0, "verify g2: %s", e.msg);
    CHECK(r.ok && r.bad_pages == 0, "g2 integrity: ok %d bad %lld", r.ok, r.bad_pages);
}

/* GET /v1/instances/NAME on agent a with bearer token tok: its state and
 * pid. Returns the HTTP status (-1 when the request failed). */
static int agent_instance(const struct lab_agent *a, const char *tok, const char *name,
                          char *state, size_t n, long long *pid)
{
    char path[96];
    struct ferr e = {0};
    int st = 0;
    json_t *o = NULL;
    snprintf(path, sizeof(path), "/v1/instances/%s", name);
    if (httpc_json(a->url, "GET", path, NULL, tok, LAB_HTTP_TIMEOUT_MS, &st, &o, &e) != 0)
        return -1;
    snprintf(state, n, "%s", jstr(o, "state"));
    *pid = json_integer_value(json_object_get(o, "pid"));
    json_decref(o);
    return st;
}

/* Polls host1's agent (with AGENT_SECRET) every 200 ms for up to 20 s
 * until instance name is running; its last state and pid in state (n
 * bytes) and *pid. Returns 1 when it ran. */
static int wait_running_with_token(const char *name, char *state, size_t n, long long *pid)
{
    uint64_t t0 = lab_now_ms();
    int ok = 0;
    while (!ok && lab_now_ms() - t0 < 20000) {
        ok = agent_instance(&L.agents[0], AGENT_SECRET, name, state, n, pid) == 200 &&
             strcmp(state, "running") == 0;
        if (!ok)
            ferryd_sleep_ms(200);
    }
    return ok;
}

/* Re-adoption: host1's agent is restarted with --coordinator and a
 * --token-file of its own. Both guests there arrived by migration (their
 * QEMU was started with -incoming): the new agent adopts them as running
 * guests (same QEMU pid, state running — not as incoming destinations),
 * registers them with ferryd again, and answers only with the token;
 * restarted once more without the token, memory is intact in both. */
static void t_readopt(void)
{
    if (!ready || !mig1[0])
        return test_skip("no migration");
    REQUIRE(wait_instance_on("g1", "host1", 10000) == 0, "g1 not on host1");
    REQUIRE(wait_instance_on("g2", "host1", 10000) == 0, "g2 not on host1");
    char st[32], secret_path[LAB_PATH_MAX + 32];
    long long pid1 = 0, pid2 = 0, p = 0;
    REQUIRE(agent_instance(&L.agents[0], NULL, "g1", st, sizeof(st), &pid1) == 200 &&
                strcmp(st, "running") == 0,
            "g1 before: %s", st);
    REQUIRE(agent_instance(&L.agents[0], NULL, "g2", st, sizeof(st), &pid2) == 200, "g2 before");
    snprintf(secret_path, sizeof(secret_path), "%s/agent-api.token", D.dir);
    FILE *f = fopen(secret_path, "w");
    REQUIRE(f, "token file");
    fprintf(f, "%s\n", AGENT_SECRET);
    fclose(f);
    REQUIRE(ferryd_relaunch_agent(&D, &L, 0, secret_path) == 0, "relaunch with --token-file");
    CHECK(agent_instance(&L.agents[0], NULL, "g1", st, sizeof(st), &p) == 401, "no token: not 401");
    int ok = wait_running_with_token("g1", st, sizeof(st), &p);
    CHECK(ok && p == pid1, "g1 after the restart: state %s pid %lld (was %lld)", st, p, pid1);
    ok = wait_running_with_token("g2", st, sizeof(st), &p);
    CHECK(ok && p == pid2, "g2 after the restart: state %s pid %lld (was %lld)", st, p, pid2);
    CHECK(lab_pid_alive((pid_t)pid1) && lab_pid_alive((pid_t)pid2), "a QEMU died");
    /* registered again: ferryd sees both on host1 after the agent's restart */
    json_t *o = NULL;
    REQUIRE(api("GET", "/v1/events?since=0", D.admin, NULL, &o) == 200, "events");
    long long last = json_integer_value(json_object_get(o, "last_seq"));
    json_decref(o);
    int seen = 0;
    uint64_t t0 = lab_now_ms();
    while (seen == 0 && lab_now_ms() - t0 < 10000) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/events?since=%lld", last);
        o = NULL;
        if (api("GET", path, D.admin, NULL, &o) == 200) {
            size_t i;
            json_t *ev;
            json_array_foreach(json_object_get(o, "events"), i, ev)
            {
                const json_t *pl = json_object_get(ev, "payload");
                if (strcmp(jstr(ev, "type"), "host.registered") == 0 &&
                    strcmp(jstr(pl, "host"), "host1") == 0 &&
                    json_integer_value(json_object_get(pl, "instances")) >= 2)
                    seen = 1;
            }
        }
        json_decref(o);
        if (!seen)
            ferryd_sleep_ms(200);
    }
    CHECK(seen, "host1 did not register its two guests again");
    CHECK(wait_instance_on("g1", "host1", 5000) == 0 && wait_instance_on("g2", "host1", 5000) == 0,
          "guests not registered on host1");
    REQUIRE(ferryd_relaunch_agent(&D, &L, 0, NULL) == 0, "relaunch without the token");
    struct lab_integrity r;
    struct ferr e = {0};
    REQUIRE(lab_verify(&L.agents[0], "g1", &r, &e) == 0, "verify g1: %s", e.msg);
    CHECK(r.ok && r.bad_pages == 0, "g1 integrity: ok %d bad %lld", r.ok, r.bad_pages);
    REQUIRE(lab_verify(&L.agents[0], "g2", &r, &e) == 0, "verify g2: %s", e.msg);
    CHECK(r.ok && r.bad_pages == 0, "g2 integrity: ok %d bad %lld", r.ok, r.bad_pages);
}

static int setup(void)
{
    struct ferr e = {0};
    if (lab_start(&L, 2, &e) != 0 || ferryd_init(&D, &L, &e) != 0) {
        fprintf(stderr, "lab: %s\n", e.msg);
        return -1;
    }
    if (ferryd_write_conf(&D,
                          "heartbeat_interval_ms = %d\nheartbeat_missed = 6\n"
                          "max_migrations_per_source = 1\nmax_migrations_per_destination = 2\n",
                          HEARTBEAT_MS) != 0)
        return -1;
    if (ferryd_agent_token(&D) != 0 ||
        ferryd_add_token(&D, "alice", "p1", "member", p1_member, sizeof(p1_member)) != 0 ||
        ferryd_add_token(&D, "carol", "p1", "member,migration_canceller", p1_canceller,
                         sizeof(p1_canceller)) != 0 ||
        ferryd_add_token(&D, "bob", "p2", "member", p2_member, sizeof(p2_member)) != 0)
        return -1;
    if (ferryd_start(&D) != 0)
        return -1;
    if (ferryd_relaunch_agent(&D, &L, 0, NULL) != 0 || ferryd_relaunch_agent(&D, &L, 1, NULL) != 0)
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
    /* g2 (for the admission case) boots meanwhile on host2 */
    if (lab_post_instance(&L.agents[1], "g2", "p1", GUEST_MIB, CMDLINE2, NULL, &e) != 0) {
        fprintf(stderr, "launch g2: %s\n", e.msg);
        return -1;
    }
    return 0;
}

int main(void)
{
    ready = setup() == 0;
    test_run("ferryd+agents: agents register capacity and the guest with its project", t_register);
    test_run("ferryd+agents: admin migrates g1 (placed), succeeds, record complete, intact",
             t_migrate);
    test_run("ferryd+agents: lifecycle events in order, outbox seq without gaps", t_events);
    test_run("ferryd+agents: other project 404, owner sees it without host names", t_visibility);
    test_run("ferryd+agents: limits forwarded; member 403; canceller cancels, source runs",
             t_cancel);
    test_run("ferryd+agents: source host down → unknown (cancel 409), reconciled when back",
             t_host_down);
    test_run("ferryd+agents: kill -9 ferryd mid-migration, restart resumes it, outcome once",
             t_restart);
    test_run("ferryd+agents: per-source cap 1 → second migration queued (cancellable, survives "
             "kill -9), admitted after the first completes, both succeed",
             t_queue);
    test_run("ferryd+agents: agent restarted with --token-file re-adopts its migrated-in guests "
             "(running, same QEMU), registers them again, intact",
             t_readopt);
    int rc = test_done();
    if (rc != 0 && D.log_path[0])
        ferryd_tail_log(&D, 40);
    ferryd_fini(&D, 0);
    lab_stop(&L);
    return rc;
}

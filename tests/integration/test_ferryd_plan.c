/* Integration: rolling maintenance plans (issue 5, docs/PLANS.md) end to
 * end. The real ferryd on 127.0.0.1, three real ferry-agents on
 * 127.0.1.1-3 registered with it, three 128 MiB memload guests, one per
 * host.
 *
 * Proves: a plan over all three hosts (max_down 1, a harmless command with
 * reboot: each agent re-execs itself and re-adopts its guests) completes:
 * every host returned, each guest moved off its host by a succeeded
 * migration and intact where it runs (exactly one running copy), the
 * plan's events come in order (created, per host draining → drained →
 * maintaining → maintained → returned, one host at a time, group_done per
 * group, completed last) and the outbox has no seq gap; kill -9 of ferryd
 * while a host drains and again while one is maintained, restarted on the
 * same DB each time, resumes the plan to completion with each step
 * recorded once; pause holds the plan between steps, resume
 * continues it, abort ends it with every guest running (intact) and each
 * host's condition stated; an instance too big for any other host makes
 * POST /v1/plans answer 409 unplaceable naming it, and nothing starts; a
 * host failing its health check pauses the plan with plan.alert naming it
 * and no further host is drained; a tenant cancel of a plan migration
 * becomes plan.deferred and the instance moves after the deadline; the
 * plan's hosts are chosen by label (the agents register with --label), a
 * host is held by the plan (not a destination) only while drained or
 * maintained, and the plan's health-check command runs after each return
 * (its failure pauses the plan with its exit status and output, a resume
 * runs it again); an operator's cordon keeps a host from being any
 * migration's destination; the plan's host list is paged (hosts_offset,
 * hosts_limit; bad values 400 naming the parameter, nothing changed) and
 * GET /v1/plans lists summaries.
 * Bounded: every wait has a deadline. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/ferryd.h"
#include "../lib/lab.h"
#include "../lib/test.h"
#include "util/httpc.h"
#include "util/xalloc.h"

#define HEARTBEAT_MS 500       /* ferryd's heartbeat interval in this test */
#define GUEST_MIB 128          /* guest RAM, MiB */
#define NGUESTS 3              /* guests, one per host at the start */
#define PLAN_TIMEOUT_MS 100000 /* one whole plan, ms */
#define HUGE_MIB 1000000       /* the unplaceable instance, MiB (no lab host has it) */

static const char *const CMDLINE =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=24 ferry.rate=500";
static const char *const GUESTS[NGUESTS] = {"g1", "g2", "g3"};
static const char *const HOSTS[NGUESTS] = {"host1", "host2", "host3"};

static struct lab L;
static int ready;
static struct ferryd D;
static char tenant_tok[300];

/* Restarts lab agent i registering with ferryd, with the labels the plan
 * cases select by (zone=lab on all, rack=r2 on the third, r1 elsewhere). */
static int relaunch_agent(int i)
{
    const char *extra[] = {"--label", "zone=lab", "--label", i == 2 ? "rack=r2" : "rack=r1", NULL};
    return ferryd_relaunch_agent_args(&D, &L, i, NULL, extra);
}

/* Every event of the outbox (all pages), as one array (caller decrefs);
 * NULL on failure. */
static json_t *all_events(void)
{
    json_t *all = json_array();
    long long since = 0;
    for (int page = 0; page < 100; page++) {
        char path[80];
        json_t *o = NULL;
        snprintf(path, sizeof(path), "/v1/events?since=%lld&limit=1000", since);
        if (ferryd_api(&D, "GET", path, D.admin, NULL, &o) != 200) {
            json_decref(o);
            json_decref(all);
            return NULL;
        }
        json_t *evs = json_object_get(o, "events");
        size_t n = json_array_size(evs);
        json_array_extend(all, evs);
        since = json_integer_value(json_object_get(o, "next"));
        json_decref(o);
        if (n == 0)
            return all;
    }
    return all;
}

/* Checks that the outbox's seq runs 1, 2, 3 … without a gap. */
static void check_seq(const json_t *evs)
{
    size_t i;
    json_t *ev;
    long long prev = 0;
    int gaps = 0;
    json_array_foreach(evs, i, ev)
    {
        long long seq = json_integer_value(json_object_get(ev, "seq"));
        if (seq != prev + 1 && gaps++ < 3)
            CHECK(0, "seq gap: %lld after %lld", seq, prev);
        prev = seq;
    }
}

/* The agent index where instance name runs ("running" on that agent), -1
 * when none; *copies counts the agents where it runs. */
static int where(const char *name, int *copies)
{
    int at = -1;
    *copies = 0;
    for (int i = 0; i < L.n; i++) {
        char state[32] = "";
        pid_t pid = 0;
        struct ferr e = {0};
        if (lab_instance_pid(&L.agents[i], name, &pid, state, sizeof(state), &e) == 0 &&
            strcmp(state, "running") == 0) {
            at = i;
            (*copies)++;
        }
    }
    return at;
}

/* Every guest runs on exactly one agent and memload finds every page
 * intact there. at[] (may be NULL) receives each guest's agent index. */
static void check_guests(int at[NGUESTS])
{
    for (int g = 0; g < NGUESTS; g++) {
        int copies = 0, a = -1;
        uint64_t t0 = lab_now_ms();
        while (lab_now_ms() - t0 < 15000 && ((a = where(GUESTS[g], &copies)) < 0 || copies != 1))
            ferryd_sleep_ms(250);
        if (at)
            at[g] = a;
        CHECK(a >= 0 && copies == 1, "%s runs on %d agents", GUESTS[g], copies);
        if (a < 0)
            continue;
        struct lab_integrity r;
        struct ferr e = {0};
        int rc = lab_verify(&L.agents[a], GUESTS[g], &r, &e);
        CHECK(rc == 0, "verify %s on %s: %s", GUESTS[g], L.agents[a].name, e.msg);
        if (rc == 0)
            CHECK(r.ok && r.bad_pages == 0 && r.pages > 0, "%s on %s: ok %d bad %lld of %lld",
                  GUESTS[g], L.agents[a].name, r.ok, r.bad_pages, r.pages);
    }
}

/* Hosts up in ferryd and guests registered on them; 0 when all three
 * hosts are up with the three guests among them within timeout_ms. */
static int wait_registered(int timeout_ms)
{
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < (uint64_t)timeout_ms) {
        json_t *o = NULL;
        int up = 0, found = 0;
        if (ferryd_api(&D, "GET", "/v1/hosts", D.admin, NULL, &o) == 200) {
            size_t i, j;
            json_t *h, *in;
            json_array_foreach(json_object_get(o, "hosts"), i, h)
            {
                if (strcmp(ferryd_jstr(h, "state"), "up") != 0)
                    continue;
                for (int k = 0; k < NGUESTS; k++)
                    if (strcmp(ferryd_jstr(h, "name"), HOSTS[k]) == 0)
                        up++;
                json_array_foreach(json_object_get(h, "instances"), j, in)
                {
                    for (int k = 0; k < NGUESTS; k++)
                        if (strcmp(ferryd_jstr(in, "name"), GUESTS[k]) == 0)
                            found++;
                }
            }
        }
        json_decref(o);
        if (up == NGUESTS && found == NGUESTS)
            return 0;
        ferryd_sleep_ms(200);
    }
    return -1;
}

static json_t *get_plan(const char *id)
{
    char path[128];
    json_t *o = NULL;
    snprintf(path, sizeof(path), "/v1/plans/%s", id);
    if (ferryd_api(&D, "GET", path, D.admin, NULL, &o) != 200) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Polls the plan until its state is one of the comma-separated states;
 * returns the plan (caller decrefs) or NULL at the deadline. */
static json_t *wait_plan(const char *id, const char *states, int timeout_ms)
{
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < (uint64_t)timeout_ms) {
        json_t *p = get_plan(id);
        if (p) {
            char want[128];
            snprintf(want, sizeof(want), ",%s,", states);
            char st[48];
            snprintf(st, sizeof(st), ",%s,", ferryd_jstr(p, "state"));
            if (strstr(want, st))
                return p;
            json_decref(p);
        }
        ferryd_sleep_ms(300);
    }
    return NULL;
}

/* POSTs plan body b (takes ownership) as the admin; id (n bytes)
 * receives the new plan's id. Returns 0 on 201 with an id, else -1 (the
 * status and error on stderr). */
static int post_plan(json_t *b, char *id, size_t n)
{
    json_t *o = NULL;
    int st = ferryd_api(&D, "POST", "/v1/plans", D.admin, b, &o);
    json_decref(b);
    id[0] = '\0';
    if (st == 201)
        snprintf(id, n, "%s", ferryd_jstr(o, "id"));
    else
        fprintf(stderr, "POST /v1/plans: %d %s\n", st,
                ferryd_jstr(json_object_get(o, "error"), "message"));
    json_decref(o);
    return st == 201 && id[0] ? 0 : -1;
}

/* POSTs a plan over every host labelled zone=lab (host1..3; max_down 1,
 * reboot) whose action prints "ferry-maint-TAG" (into the agent's log) and
 * whose health-check command prints "ferry-check-TAG"; id receives its id. */
static int create_plan(const char *tag, char *id, size_t n)
{
    char cmd[96], check[96];
    snprintf(cmd, sizeof(cmd), "sleep 1; echo ferry-maint-%s", tag);
    snprintf(check, sizeof(check), "test -d /proc && echo ferry-check-%s", tag);
    json_t *b = json_pack("{s:s, s:i, s:{s:s, s:b, s:i}, s:{s:i, s:s}}", "label", "zone=lab",
                          "max_down", 1, "action", "command", cmd, "reboot", 1, "timeout_s", 60,
                          "health_check", "timeout_s", 60, "command", check);
    return post_plan(b, id, n);
}

/* The action tagged tag ran exactly once on every host: one line
 * "ferry-maint-TAG" in each agent's log, and the agent's maintenance
 * record is the plan's (id PLAN/HOST, or PLAN/HOST/check-N: the health
 * check that ran after it), succeeded. */
static void check_actions(const char *id, const char *tag)
{
    char want[64];
    snprintf(want, sizeof(want), "ferry-maint-%s", tag);
    for (int i = 0; i < L.n; i++) {
        FILE *f = fopen(L.agents[i].log_path, "r");
        char line[512];
        int n = 0;
        while (f && fgets(line, sizeof(line), f)) {
            line[strcspn(line, "\r\n")] = '\0';
            n += strcmp(line, want) == 0;
        }
        if (f)
            fclose(f);
        CHECK(n == 1, "%s: the action ran %d times", L.agents[i].name, n);
        int st = 0;
        json_t *o = NULL;
        struct ferr e = {0};
        char rid[160];
        snprintf(rid, sizeof(rid), "%s/%s", id, L.agents[i].name);
        /* the last record is the action's, or the health check's after it */
        char chk[180];
        snprintf(chk, sizeof(chk), "%s/check-", rid);
        CHECK(lab_api(&L.agents[i], "GET", "/v1/maintenance", NULL, &st, &o, &e) == 0 &&
                  st == 200 &&
                  (strcmp(ferryd_jstr(o, "id"), rid) == 0 ||
                   strncmp(ferryd_jstr(o, "id"), chk, strlen(chk)) == 0) &&
                  strcmp(ferryd_jstr(o, "state"), "succeeded") == 0,
              "%s: maintenance %d id '%s' state '%s' %s", L.agents[i].name, st,
              ferryd_jstr(o, "id"), ferryd_jstr(o, "state"), e.msg);
        json_decref(o);
    }
    /* the plan keeps each action's record, with its captured output */
    json_t *p = get_plan(id);
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(p, "hosts"), i, h)
    {
        const json_t *a = json_object_get(h, "action");
        char rid[160];
        snprintf(rid, sizeof(rid), "%s/%s", id, ferryd_jstr(h, "host"));
        CHECK(!strcmp(ferryd_jstr(a, "id"), rid) && !strcmp(ferryd_jstr(a, "state"), "succeeded") &&
                  strstr(ferryd_jstr(a, "output"), want),
              "%s: action record id '%s' state '%s' output '%s'", ferryd_jstr(h, "host"),
              ferryd_jstr(a, "id"), ferryd_jstr(a, "state"), ferryd_jstr(a, "output"));
    }
    json_decref(p);
}

/* The plan's events: each step once per host, in order, one host at a
 * time (max_down 1), created first and completed last. */
static void check_plan_events(const char *id, const json_t *evs)
{
    static const char *const steps[] = {"plan.host_draining", "plan.host_drained",
                                        "plan.host_maintaining", "plan.host_maintained",
                                        "plan.host_returned"};
    char subject[128];
    snprintf(subject, sizeof(subject), "plan/%s", id);
    size_t i;
    json_t *ev;
    int n = 0, created = 0, completed = 0, group_done = 0, host_done = 0, k = 0;
    char cur[64] = "";
    json_array_foreach(evs, i, ev)
    {
        if (strcmp(ferryd_jstr(ev, "subject"), subject) != 0)
            continue;
        const char *t = ferryd_jstr(ev, "type");
        const char *host = ferryd_jstr(json_object_get(ev, "payload"), "host");
        n++;
        if (strcmp(t, "plan.created") == 0) {
            CHECK(n == 1, "plan.created is event %d of the plan", n);
            created++;
        } else if (strcmp(t, "plan.completed") == 0) {
            completed++;
        } else if (strcmp(t, "plan.group_done") == 0) {
            CHECK(k == 0 && !cur[0], "group_done while %s is at step %d", cur, k);
            group_done++;
        } else if (strncmp(t, "plan.host_", 10) == 0) {
            CHECK(!completed, "%s after plan.completed", t);
            if (k == 0 && strcmp(t, steps[0]) == 0)
                snprintf(cur, sizeof(cur), "%s", host);
            CHECK(strcmp(t, steps[k]) == 0 && strcmp(host, cur) == 0,
                  "%s of %s where %s of %s was due", t, host, steps[k], cur);
            if (strcmp(t, steps[k]) == 0 && strcmp(host, cur) == 0 && ++k == 5) {
                host_done++;
                k = 0;
                cur[0] = '\0';
            }
        } else if (strcmp(t, "plan.resumed") != 0 && strcmp(t, "plan.paused") != 0) {
            CHECK(0, "unexpected %s in the plan's events", t);
        }
    }
    CHECK(created == 1 && completed == 1, "created %d, completed %d", created, completed);
    CHECK(host_done == NGUESTS, "%d hosts went through every step", host_done);
    CHECK(group_done == NGUESTS, "%d plan.group_done (max_down 1: one per host)", group_done);
}

/* Every host of the plan returned (state ok) and each guest left its
 * starting host by a succeeded migration of the plan. */
static void check_plan_done(const json_t *p, const int start[NGUESTS])
{
    CHECK(strcmp(ferryd_jstr(p, "state"), "completed") == 0, "plan %s (%s)",
          ferryd_jstr(p, "state"), ferryd_jstr(p, "last_error"));
    size_t i;
    json_t *h, *m;
    int returned = 0;
    json_array_foreach(json_object_get(p, "hosts"), i, h)
    {
        CHECK(strcmp(ferryd_jstr(h, "step"), "returned") == 0 &&
                  strcmp(ferryd_jstr(h, "state"), "ok") == 0,
              "%s: %s/%s", ferryd_jstr(h, "host"), ferryd_jstr(h, "step"), ferryd_jstr(h, "state"));
        returned += strcmp(ferryd_jstr(h, "step"), "returned") == 0;
    }
    CHECK(returned == NGUESTS, "%d hosts returned", returned);
    for (int g = 0; g < NGUESTS; g++) {
        int moved = 0, failed = 0;
        json_array_foreach(json_object_get(p, "migrations"), i, m)
        {
            if (strcmp(ferryd_jstr(m, "instance"), GUESTS[g]) != 0)
                continue;
            if (strcmp(ferryd_jstr(m, "state"), "succeeded") != 0)
                failed++;
            else if (start[g] >= 0 && strcmp(ferryd_jstr(m, "source"), HOSTS[start[g]]) == 0)
                moved++;
        }
        CHECK(moved >= 1, "%s: no succeeded migration off its host %s", GUESTS[g],
              start[g] >= 0 ? HOSTS[start[g]] : "?");
        CHECK(failed == 0, "%s: %d migrations not succeeded", GUESTS[g], failed);
    }
}

/* The host list of a plan is paged: hosts_limit=0 is the summary alone
 * (hosts_total, hosts_by_step), hosts_offset/limit give that slice of the
 * full list (and only its hosts' migrations), past the end is empty; bad
 * paging parameters answer 400 naming the parameter and change nothing;
 * GET /v1/plans lists summaries. full is the plan as GET /v1/plans/ID
 * (default page) answered after it ended. */
static void check_paging(const char *id, const json_t *full)
{
    char path[200];
    json_t *o = NULL;
    const json_t *fh = json_object_get(full, "hosts");
    CHECK(json_array_size(fh) == NGUESTS &&
              json_integer_value(json_object_get(full, "hosts_total")) == NGUESTS,
          "default page: %zu hosts of %lld", json_array_size(fh),
          (long long)json_integer_value(json_object_get(full, "hosts_total")));
    snprintf(path, sizeof(path), "/v1/plans/%s?hosts_limit=0", id);
    if (ferryd_api(&D, "GET", path, D.admin, NULL, &o) == 200) {
        CHECK(!json_object_get(o, "hosts") && !json_object_get(o, "migrations"),
              "hosts_limit=0 listed hosts or migrations");
        CHECK(json_integer_value(json_object_get(o, "hosts_total")) == NGUESTS &&
                  json_integer_value(json_object_get(json_object_get(o, "hosts_by_step"),
                                                     "returned")) == NGUESTS,
              "summary: hosts_total %lld, returned %lld",
              (long long)json_integer_value(json_object_get(o, "hosts_total")),
              (long long)json_integer_value(
                  json_object_get(json_object_get(o, "hosts_by_step"), "returned")));
        CHECK(json_real_value(json_object_get(o, "progress_pct")) == 100.0,
              "summary progress %.1f", json_real_value(json_object_get(o, "progress_pct")));
    } else {
        CHECK(0, "GET %s failed", path);
    }
    json_decref(o);
    o = NULL;
    snprintf(path, sizeof(path), "/v1/plans/%s?hosts_offset=1&hosts_limit=1", id);
    if (ferryd_api(&D, "GET", path, D.admin, NULL, &o) == 200) {
        const json_t *h = json_object_get(o, "hosts"), *pg = json_object_get(o, "hosts_page");
        const char *want = ferryd_jstr(json_array_get(fh, 1), "host");
        CHECK(json_array_size(h) == 1 && !strcmp(ferryd_jstr(json_array_get(h, 0), "host"), want),
              "page [1, 2): %zu hosts, first %s (want %s)", json_array_size(h),
              ferryd_jstr(json_array_get(h, 0), "host"), want);
        CHECK(json_integer_value(json_object_get(pg, "offset")) == 1 &&
                  json_integer_value(json_object_get(pg, "limit")) == 1 &&
                  json_integer_value(json_object_get(pg, "total")) == NGUESTS,
              "hosts_page wrong");
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(o, "migrations"), i, m)
            CHECK(!strcmp(ferryd_jstr(m, "source"), want), "page lists migration %s from %s",
                  ferryd_jstr(m, "id"), ferryd_jstr(m, "source"));
    } else {
        CHECK(0, "GET %s failed", path);
    }
    json_decref(o);
    o = NULL;
    snprintf(path, sizeof(path), "/v1/plans/%s?hosts_offset=7&hosts_limit=5", id);
    CHECK(ferryd_api(&D, "GET", path, D.admin, NULL, &o) == 200 &&
              json_array_size(json_object_get(o, "hosts")) == 0,
          "a page past the end is not empty");
    json_decref(o);
    static const char *const bad[][2] = {
        {"hosts_limit=abc", "hosts_limit"}, {"hosts_limit=-1", "hosts_limit"},
        {"hosts_limit=1001", "hosts_limit"}, {"hosts_limit=", "hosts_limit"},
        {"hosts_offset=x", "hosts_offset"}, {"hosts_offset=99999", "hosts_offset"},
        {"hosts_offset=1&hosts_limit=2x", "hosts_limit"}};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        o = NULL;
        snprintf(path, sizeof(path), "/v1/plans/%s?%s", id, bad[k][0]);
        int st = ferryd_api(&D, "GET", path, D.admin, NULL, &o);
        const json_t *er = json_object_get(o, "error");
        CHECK(st == 400 && !strcmp(ferryd_jstr(er, "code"), "invalid") &&
                  !strcmp(ferryd_jstr(er, "field"), bad[k][1]) && ferryd_jstr(er, "message")[0],
              "?%s: %d field '%s'", bad[k][0], st, ferryd_jstr(er, "field"));
        json_decref(o);
    }
    json_t *after = get_plan(id);
    CHECK(after && !strcmp(ferryd_jstr(after, "updated"), ferryd_jstr(full, "updated")) &&
              !strcmp(ferryd_jstr(after, "state"), ferryd_jstr(full, "state")),
          "bad paging requests changed the plan");
    json_decref(after);
    o = NULL;
    if (ferryd_api(&D, "GET", "/v1/plans", D.admin, NULL, &o) == 200) {
        size_t i, seen = 0;
        json_t *x;
        json_array_foreach(json_object_get(o, "plans"), i, x)
        {
            CHECK(!json_object_get(x, "hosts"), "GET /v1/plans lists the hosts of %s",
                  ferryd_jstr(x, "id"));
            if (!strcmp(ferryd_jstr(x, "id"), id))
                seen = (size_t)json_integer_value(json_object_get(x, "hosts_total"));
        }
        CHECK(seen == NGUESTS, "GET /v1/plans: %s with %zu hosts_total", id, seen);
    } else {
        CHECK(0, "GET /v1/plans failed");
    }
    json_decref(o);
}

/* The start of every case: a failed check, and 0, when the lab or ferryd
 * did not start or the hosts and guests are not registered within 15 s;
 * else 1. */
static int case_ready(void)
{
    if (!ready) {
        CHECK(0, "lab or ferryd did not start: a setup failure is a failure");
        return 0;
    }
    int rc = wait_registered(15000);
    CHECK(rc == 0, "hosts and guests not registered");
    return rc == 0;
}

/* at[g]: the index of the host guest g runs on now (where). */
static void guests_where(int at[NGUESTS])
{
    for (int g = 0; g < NGUESTS; g++) {
        int copies = 0;
        at[g] = where(GUESTS[g], &copies);
    }
}

static void t_plan(void)
{
    if (!case_ready())
        return;
    int start[NGUESTS];
    check_guests(start);
    char id[80];
    uint64_t t0 = lab_now_ms();
    REQUIRE(create_plan("plan", id, sizeof(id)) == 0, "plan not created");
    /* while it runs: a host being drained or maintained is held by the
     * plan (GET /v1/hosts "maintenance": ID), and only that one (max_down 1) */
    json_t *p = NULL;
    int held_seen = 0;
    while (lab_now_ms() - t0 < PLAN_TIMEOUT_MS && !p) {
        json_t *o = NULL;
        if (ferryd_api(&D, "GET", "/v1/hosts", D.admin, NULL, &o) == 200) {
            size_t i;
            json_t *h;
            int held = 0;
            json_array_foreach(json_object_get(o, "hosts"), i, h) held +=
                strcmp(ferryd_jstr(h, "maintenance"), id) == 0;
            CHECK(held <= 1, "%d hosts held by the plan at once", held);
            held_seen += held;
        }
        json_decref(o);
        p = wait_plan(id, "completed,aborted,paused", 300);
    }
    REQUIRE(p, "plan %s did not end within %d s", id, PLAN_TIMEOUT_MS / 1000);
    fprintf(stderr, "  plan %s: %s in %.1f s\n", id, ferryd_jstr(p, "state"),
            (double)(lab_now_ms() - t0) / 1000.0);
    CHECK(held_seen > 0, "no host was ever shown held by the plan");
    json_t *targets = json_object_get(json_object_get(p, "spec"), "hosts");
    CHECK(json_array_size(targets) == NGUESTS, "label zone=lab chose %zu hosts",
          json_array_size(targets));
    check_plan_done(p, start);
    check_paging(id, p);
    /* the health-check command ran on each host after its return */
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(p, "hosts"), i, h)
    {
        const json_t *ck = json_object_get(h, "check");
        CHECK(strcmp(ferryd_jstr(ck, "state"), "succeeded") == 0 &&
                  strstr(ferryd_jstr(ck, "output"), "ferry-check-plan") != NULL,
              "%s: health check %s output '%s'", ferryd_jstr(h, "host"), ferryd_jstr(ck, "state"),
              ferryd_jstr(ck, "output"));
    }
    json_decref(p);
    json_t *o = NULL;
    REQUIRE(ferryd_api(&D, "GET", "/v1/hosts", D.admin, NULL, &o) == 200, "GET /v1/hosts");
    json_array_foreach(json_object_get(o, "hosts"), i, h)
        CHECK(json_is_null(json_object_get(h, "maintenance")), "%s still held by %s after the plan",
              ferryd_jstr(h, "name"), ferryd_jstr(h, "maintenance"));
    json_decref(o);
    check_guests(NULL);
    json_t *evs = all_events();
    REQUIRE(evs, "GET /v1/events");
    check_seq(evs);
    check_plan_events(id, evs);
    json_decref(evs);
    check_actions(id, "plan");
}

/* Returns the step of the first host of the plan's group 0 that is past
 * pending, "" when none. */
static void first_active_step(const json_t *p, char *out, size_t n)
{
    size_t i;
    json_t *h;
    out[0] = '\0';
    json_array_foreach(json_object_get(p, "hosts"), i, h)
    {
        const char *s = ferryd_jstr(h, "step");
        if (strcmp(s, "pending") != 0 && strcmp(s, "returned") != 0)
            snprintf(out, n, "%s", s);
    }
}

static void t_crash(void)
{
    if (!case_ready())
        return;
    int start[NGUESTS];
    guests_where(start);
    char id[80];
    REQUIRE(create_plan("crash", id, sizeof(id)) == 0, "plan not created");
    /* first while a host drains (its migration possibly in flight), then
     * while one is being maintained (its action's answer lost) */
    static const char *const at[] = {"draining", "maintaining"};
    for (int k = 0; k < 2; k++) {
        char step[32] = "";
        uint64_t t0 = lab_now_ms();
        while (lab_now_ms() - t0 < 40000) {
            json_t *p = get_plan(id);
            if (p)
                first_active_step(p, step, sizeof(step));
            json_decref(p);
            if (!strcmp(step, at[k]))
                break;
            ferryd_sleep_ms(50);
        }
        REQUIRE(!strcmp(step, at[k]), "no host reached %s (step '%s')", at[k], step);
        fprintf(stderr, "  kill -9 ferryd with a host %s\n", step);
        ferryd_stop(&D, SIGKILL);
        REQUIRE(ferryd_start(&D) == 0, "ferryd did not restart");
    }
    json_t *p = wait_plan(id, "completed,aborted,paused", PLAN_TIMEOUT_MS);
    REQUIRE(p, "plan %s did not end after the restart", id);
    check_plan_done(p, start);
    json_decref(p);
    check_guests(NULL);
    json_t *evs = all_events();
    REQUIRE(evs, "GET /v1/events");
    check_seq(evs);
    check_plan_events(id, evs);
    json_decref(evs);
    check_actions(id, "crash");
}

static int act(const char *id, const char *what, json_t **out)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/plans/%s/%s", id, what);
    return ferryd_api(&D, "POST", path, D.admin, NULL, out);
}

/* The steps of every host, "host1=draining,host2=pending,…". */
static void steps_of(const json_t *p, char *out, size_t n)
{
    size_t i, off = 0;
    json_t *h;
    out[0] = '\0';
    json_array_foreach(json_object_get(p, "hosts"), i, h)
    {
        int w = snprintf(out + off, n - off, "%s=%s/%s,", ferryd_jstr(h, "host"),
                         ferryd_jstr(h, "step"), ferryd_jstr(h, "state"));
        if (w < 0 || (size_t)w >= n - off)
            break;
        off += (size_t)w;
    }
}

static void t_pause_abort(void)
{
    if (!case_ready())
        return;
    char id[80], before[256], after[256];
    REQUIRE(create_plan("abort", id, sizeof(id)) == 0, "plan not created");
    json_t *o = NULL;
    int st = act(id, "pause", &o);
    CHECK(st == 202 && strcmp(ferryd_jstr(o, "state"), "paused") == 0, "pause: %d %s", st,
          ferryd_jstr(o, "state"));
    json_decref(o);
    o = NULL;
    CHECK(act(id, "pause", NULL) == 409, "pause of a paused plan not 409");
    ferryd_sleep_ms(1500); /* a tick that was under way when the pause came ends */
    json_t *p = get_plan(id);
    REQUIRE(p, "GET plan");
    steps_of(p, before, sizeof(before));
    json_decref(p);
    ferryd_sleep_ms(4000); /* four executor ticks */
    p = get_plan(id);
    REQUIRE(p, "GET plan");
    steps_of(p, after, sizeof(after));
    CHECK(strcmp(ferryd_jstr(p, "state"), "paused") == 0, "state %s while paused",
          ferryd_jstr(p, "state"));
    CHECK(strcmp(before, after) == 0, "steps moved while paused: %s → %s", before, after);
    json_decref(p);
    st = act(id, "resume", &o);
    CHECK(st == 202 && strcmp(ferryd_jstr(o, "state"), "running") == 0, "resume: %d %s", st,
          ferryd_jstr(o, "state"));
    json_decref(o);
    o = NULL;
    /* resumed: a host gets to maintaining (it drained after the resume) */
    uint64_t t0 = lab_now_ms();
    char step[32] = "";
    while (lab_now_ms() - t0 < 40000) {
        p = get_plan(id);
        if (p)
            first_active_step(p, step, sizeof(step));
        json_decref(p);
        if (!strcmp(step, "maintaining") || !strcmp(step, "checking"))
            break;
        ferryd_sleep_ms(200);
    }
    CHECK(!strcmp(step, "maintaining") || !strcmp(step, "checking"),
          "no step past draining after the resume ('%s')", step);
    st = act(id, "abort", &o);
    CHECK(st == 202, "abort: %d", st);
    json_decref(o);
    p = wait_plan(id, "aborted", 60000);
    REQUIRE(p, "plan not aborted within 60 s");
    size_t i;
    json_t *h;
    int aborted = 0;
    json_array_foreach(json_object_get(p, "hosts"), i, h)
    {
        const char *hs = ferryd_jstr(h, "state"), *hstep = ferryd_jstr(h, "step");
        CHECK(!strcmp(hs, "aborted") || (!strcmp(hstep, "returned") && !strcmp(hs, "ok")),
              "%s: %s/%s after abort", ferryd_jstr(h, "host"), hstep, hs);
        aborted += !strcmp(hs, "aborted");
    }
    CHECK(aborted >= 1, "no host marked aborted");
    json_decref(p);
    CHECK(act(id, "resume", NULL) == 409, "resume of an aborted plan not 409");
    json_t *evs = all_events();
    REQUIRE(evs, "GET /v1/events");
    check_seq(evs);
    char subject[128];
    snprintf(subject, sizeof(subject), "plan/%s", id);
    int n_aborted = 0;
    json_t *ev;
    json_array_foreach(evs, i, ev)
    {
        if (strcmp(ferryd_jstr(ev, "subject"), subject) != 0 ||
            strcmp(ferryd_jstr(ev, "type"), "plan.aborted") != 0)
            continue;
        n_aborted++;
        json_t *hs = json_object_get(json_object_get(ev, "payload"), "hosts");
        CHECK(json_array_size(hs) == NGUESTS, "plan.aborted states %zu hosts", json_array_size(hs));
        size_t j;
        json_t *x;
        json_array_foreach(hs, j, x)
            CHECK(ferryd_jstr(x, "condition")[0], "%s: no condition", ferryd_jstr(x, "host"));
    }
    CHECK(n_aborted == 1, "%d plan.aborted events", n_aborted);
    json_decref(evs);
    check_guests(NULL);
}

/* POSTs a plan over host1..3 (max_down 1, reboot) with command cmd, the
 * health check timeout and the deferral deadline given; id receives its
 * id. */
static int create_plan_x(const char *cmd, const char *check, int health_s, int defer_s, char *id,
                         size_t n)
{
    json_t *b = json_pack("{s:[s,s,s], s:i, s:{s:s, s:b, s:i}, s:{s:i}, s:i}", "hosts", HOSTS[0],
                          HOSTS[1], HOSTS[2], "max_down", 1, "action", "command", cmd, "reboot", 1,
                          "timeout_s", 60, "health_check", "timeout_s", health_s,
                          "deferral_deadline_s", defer_s);
    if (check)
        json_object_set_new(json_object_get(b, "health_check"), "command", json_string(check));
    return post_plan(b, id, n);
}

static int agent_index(const char *name)
{
    for (int i = 0; i < L.n; i++)
        if (strcmp(L.agents[i].name, name) == 0)
            return i;
    return -1;
}

/* The plan's alerts so far: count, and the host and reason of the last
 * one; fails the case for any plan event after the last alert. */
static int alerts_of(const char *id, char *host, size_t hn, char *reason, size_t rn)
{
    json_t *evs = all_events();
    if (!evs)
        return -1;
    check_seq(evs);
    char subject[128];
    snprintf(subject, sizeof(subject), "plan/%s", id);
    int alerts = 0;
    const char *after = NULL;
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev)
    {
        if (strcmp(ferryd_jstr(ev, "subject"), subject) != 0)
            continue;
        const json_t *pl = json_object_get(ev, "payload");
        if (strcmp(ferryd_jstr(ev, "type"), "plan.alert") == 0) {
            alerts++;
            after = NULL;
            snprintf(host, hn, "%s", ferryd_jstr(pl, "host"));
            snprintf(reason, rn, "%s", ferryd_jstr(pl, "reason"));
        } else if (alerts && strcmp(ferryd_jstr(ev, "type"), "plan.resumed") != 0 &&
                   strcmp(ferryd_jstr(ev, "type"), "plan.host_returned") != 0 &&
                   strcmp(ferryd_jstr(ev, "type"), "plan.group_done") != 0 &&
                   strcmp(ferryd_jstr(ev, "type"), "plan.host_draining") != 0 &&
                   strcmp(ferryd_jstr(ev, "type"), "plan.host_drained") != 0 &&
                   strcmp(ferryd_jstr(ev, "type"), "plan.host_maintaining") != 0 &&
                   strcmp(ferryd_jstr(ev, "type"), "plan.host_maintained") != 0) {
            after = ferryd_jstr(ev, "type");
        }
    }
    CHECK(after == NULL, "%s after the last plan.alert", after ? after : "");
    json_decref(evs);
    return alerts;
}

/* The plan (paused) stays as it is for three executor ticks; returns the
 * host that failed (one), checking its step. */
static void check_held(const char *id, const char *step, char *bad, size_t n)
{
    json_t *p = get_plan(id);
    REQUIRE(p, "GET plan");
    char before[256], after[256];
    size_t i;
    json_t *h;
    int nfailed = 0;
    bad[0] = '\0';
    json_array_foreach(json_object_get(p, "hosts"), i, h)
    {
        if (strcmp(ferryd_jstr(h, "state"), "failed") == 0) {
            nfailed++;
            snprintf(bad, n, "%s", ferryd_jstr(h, "host"));
            CHECK(strcmp(ferryd_jstr(h, "step"), step) == 0, "%s failed at step %s, not %s", bad,
                  ferryd_jstr(h, "step"), step);
        }
    }
    CHECK(nfailed == 1, "%d hosts failed", nfailed);
    steps_of(p, before, sizeof(before));
    json_decref(p);
    ferryd_sleep_ms(3000); /* three executor ticks: nothing moves while paused */
    p = get_plan(id);
    REQUIRE(p, "GET plan");
    steps_of(p, after, sizeof(after));
    CHECK(strcmp(before, after) == 0, "steps moved after the alert: %s → %s", before, after);
    CHECK(strcmp(ferryd_jstr(p, "state"), "paused") == 0, "state %s after the alert",
          ferryd_jstr(p, "state"));
    json_decref(p);
}

/* Two health-check failures in one plan. The plan's health-check command
 * fails (exit 3, printing "ferry-unhealthy") the first time it runs: the
 * first host fails at "checking", the plan pauses with plan.alert carrying
 * the exit status and the output, nothing moves; resume runs the check
 * again (it passes) and the host returns. Then the next host maintained
 * gets a bad agent token file before its agent re-execs: the agent answers
 * /v1/health but never registers again, so the host is not back within
 * the health timeout (4 s): a second alert, that host failed, the last one
 * still pending, every guest intact. */
static void t_health(void)
{
    if (!case_ready())
        return;
    char m1[LAB_PATH_MAX + 32], m2[LAB_PATH_MAX + 32], cmd[3 * LAB_PATH_MAX + 200],
        check[LAB_PATH_MAX + 160], id[80], bad[64], reason[1100], host[64];
    snprintf(m1, sizeof(m1), "%s/hc1", D.dir);
    snprintf(m2, sizeof(m2), "%s/hcfail", D.dir);
    snprintf(check, sizeof(check),
             "if mkdir '%s' 2>/dev/null; then echo ferry-unhealthy; exit 3; fi; echo ferry-healthy",
             m1);
    snprintf(cmd, sizeof(cmd),
             "sleep 1; if [ -d '%s' ] && mkdir '%s' 2>/dev/null; then echo bogus > '%s'; fi; "
             "echo ferry-maint-health",
             m1, m2, D.agent_tok_path);
    REQUIRE(create_plan_x(cmd, check, 4, 300, id, sizeof(id)) == 0, "plan not created");
    /* 1: the command fails */
    json_t *p = wait_plan(id, "completed,aborted,paused", 60000);
    REQUIRE(p, "plan %s did not stop within 60 s", id);
    CHECK(strcmp(ferryd_jstr(p, "state"), "paused") == 0, "plan %s, not paused",
          ferryd_jstr(p, "state"));
    CHECK(strstr(ferryd_jstr(p, "last_error"), "health check") &&
              strstr(ferryd_jstr(p, "last_error"), "exit status 3") &&
              strstr(ferryd_jstr(p, "last_error"), "ferry-unhealthy"),
          "last_error '%s'", ferryd_jstr(p, "last_error"));
    json_decref(p);
    check_held(id, "checking", bad, sizeof(bad));
    CHECK(alerts_of(id, host, sizeof(host), reason, sizeof(reason)) == 1, "not one alert");
    CHECK(strcmp(host, bad) == 0 && strstr(reason, "ferry-unhealthy"), "alert %s: %s", host,
          reason);
    p = get_plan(id);
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(p, "hosts"), i,
                       h) if (strcmp(ferryd_jstr(h, "host"), bad) == 0)
    {
        const json_t *ck = json_object_get(h, "check");
        CHECK(strcmp(ferryd_jstr(ck, "state"), "failed") == 0 &&
                  json_integer_value(json_object_get(ck, "exit_status")) == 3 &&
                  strstr(ferryd_jstr(ck, "output"), "ferry-unhealthy"),
              "check record of %s: %s", bad, ferryd_jstr(ck, "state"));
    }
    json_decref(p);
    /* 2: resume: the check runs again, passes; the next host is not back */
    json_t *o = NULL;
    int st = act(id, "resume", &o);
    CHECK(st == 202, "resume: %d", st);
    json_decref(o);
    char first[64];
    snprintf(first, sizeof(first), "%s", bad);
    p = wait_plan(id, "completed,aborted,paused", 60000);
    /* the token file is only read at an agent's start: restore it now */
    FILE *f = fopen(D.agent_tok_path, "w");
    if (f) {
        fprintf(f, "%s\n", D.agent_tok);
        fclose(f);
    }
    REQUIRE(p, "plan %s did not stop again within 60 s", id);
    CHECK(strcmp(ferryd_jstr(p, "state"), "paused") == 0, "plan %s, not paused",
          ferryd_jstr(p, "state"));
    CHECK(strstr(ferryd_jstr(p, "last_error"), "health check") != NULL, "last_error '%s'",
          ferryd_jstr(p, "last_error"));
    int returned = 0, pending = 0;
    json_array_foreach(json_object_get(p, "hosts"), i, h)
    {
        if (strcmp(ferryd_jstr(h, "host"), first) == 0) {
            CHECK(strcmp(ferryd_jstr(h, "step"), "returned") == 0, "%s at %s after the resume",
                  first, ferryd_jstr(h, "step"));
            CHECK(strcmp(ferryd_jstr(json_object_get(h, "check"), "state"), "succeeded") == 0,
                  "%s: the second check %s", first,
                  ferryd_jstr(json_object_get(h, "check"), "state"));
        }
        returned += strcmp(ferryd_jstr(h, "step"), "returned") == 0;
        pending += strcmp(ferryd_jstr(h, "step"), "pending") == 0 &&
                   strcmp(ferryd_jstr(h, "state"), "ok") == 0;
    }
    CHECK(returned == 1 && pending == 1, "%d returned, %d pending", returned, pending);
    json_decref(p);
    check_held(id, "checking", bad, sizeof(bad));
    CHECK(strcmp(bad, first) != 0, "the same host failed twice");
    CHECK(alerts_of(id, host, sizeof(host), reason, sizeof(reason)) == 2, "not two alerts");
    CHECK(strcmp(host, bad) == 0 && strstr(reason, "health check") && strstr(reason, bad),
          "plan.alert host '%s' reason '%s'", host, reason);
    check_guests(NULL);
    /* clean up: the failed agent restarts with the good token; the plan ends */
    int a = agent_index(bad);
    REQUIRE(a >= 0, "no agent named '%s'", bad);
    REQUIRE(relaunch_agent(a) == 0, "agent %s did not restart", bad);
    st = act(id, "abort", &o);
    CHECK(st == 202, "abort of the paused plan: %d", st);
    json_decref(o);
    p = wait_plan(id, "aborted", 30000);
    CHECK(p != NULL, "plan not aborted within 30 s");
    json_decref(p);
    CHECK(wait_registered(15000) == 0, "hosts and guests not registered after the restart");
}

/* A tenant (member of p1 with migration_canceller) cancels the plan's
 * first migration: plan.deferred, and the instance is migrated again after
 * the deadline (5 s); the plan completes; every guest intact. */
static void t_deferral(void)
{
    if (!case_ready())
        return;
    int start[NGUESTS];
    guests_where(start);
    char id[80], mid[80] = "", inst[64] = "";
    REQUIRE(create_plan_x("sleep 1; echo ferry-maint-defer", NULL, 60, 5, id, sizeof(id)) == 0,
            "plan not created");
    uint64_t t0 = lab_now_ms();
    int st = 0;
    while (lab_now_ms() - t0 < 40000 && !mid[0]) {
        json_t *p = get_plan(id);
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(p, "migrations"), i, m)
        {
            const char *ms = ferryd_jstr(m, "state");
            if (!mid[0] && strcmp(ms, "succeeded") && strcmp(ms, "failed") &&
                strcmp(ms, "cancelled")) {
                snprintf(mid, sizeof(mid), "%s", ferryd_jstr(m, "id"));
                snprintf(inst, sizeof(inst), "%s", ferryd_jstr(m, "instance"));
            }
        }
        json_decref(p);
        if (!mid[0])
            ferryd_sleep_ms(20);
    }
    REQUIRE(mid[0], "no running migration of the plan seen");
    char path[160];
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", mid);
    json_t *o = NULL;
    st = ferryd_api(&D, "POST", path, tenant_tok, NULL, &o);
    CHECK(st == 202 || st == 200, "tenant cancel of %s: %d %s", mid, st,
          ferryd_jstr(json_object_get(o, "error"), "message"));
    json_decref(o);
    /* plan.deferred for that instance */
    char subject[128];
    snprintf(subject, sizeof(subject), "plan/%s", id);
    int deferred = 0;
    uint64_t t_def = 0;
    t0 = lab_now_ms();
    while (lab_now_ms() - t0 < 20000 && !deferred) {
        json_t *evs = all_events();
        size_t i;
        json_t *ev;
        json_array_foreach(evs, i, ev)
        {
            const json_t *pl = json_object_get(ev, "payload");
            if (!strcmp(ferryd_jstr(ev, "subject"), subject) &&
                !strcmp(ferryd_jstr(ev, "type"), "plan.deferred"))
                CHECK(deferred++ == 0 && !strcmp(ferryd_jstr(pl, "instance"), inst) &&
                          !strcmp(ferryd_jstr(pl, "project_id"), "p1") &&
                          json_object_get(pl, "until"),
                      "plan.deferred #%d instance '%s' project '%s'", deferred,
                      ferryd_jstr(pl, "instance"), ferryd_jstr(pl, "project_id"));
        }
        json_decref(evs);
        if (!deferred)
            ferryd_sleep_ms(100);
    }
    t_def = lab_now_ms();
    REQUIRE(deferred == 1, "%d plan.deferred events for %s", deferred, inst);
    /* no new migration of inst before the deadline; one after it */
    uint64_t t_new = 0;
    while (lab_now_ms() - t_def < 30000 && !t_new) {
        json_t *p = get_plan(id);
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(p, "migrations"), i, m)
        {
            if (!strcmp(ferryd_jstr(m, "instance"), inst) && strcmp(ferryd_jstr(m, "id"), mid) != 0)
                t_new = lab_now_ms();
        }
        json_decref(p);
        if (!t_new)
            ferryd_sleep_ms(100);
    }
    CHECK(t_new, "%s not migrated again within 30 s of the deferral", inst);
    CHECK(!t_new || t_new - t_def >= 3500, "%s migrated again %.1f s after the deferral (5 s)",
          inst, (double)(t_new - t_def) / 1000.0);
    json_t *p = wait_plan(id, "completed,aborted,paused", PLAN_TIMEOUT_MS);
    REQUIRE(p, "plan %s did not end", id);
    CHECK(strcmp(ferryd_jstr(p, "state"), "completed") == 0, "plan %s (%s)",
          ferryd_jstr(p, "state"), ferryd_jstr(p, "last_error"));
    size_t i;
    json_t *m;
    int cancelled = 0, moved = 0;
    json_array_foreach(json_object_get(p, "migrations"), i, m)
    {
        if (strcmp(ferryd_jstr(m, "instance"), inst) != 0)
            continue;
        cancelled +=
            !strcmp(ferryd_jstr(m, "id"), mid) && !strcmp(ferryd_jstr(m, "state"), "cancelled");
        moved +=
            strcmp(ferryd_jstr(m, "id"), mid) != 0 && !strcmp(ferryd_jstr(m, "state"), "succeeded");
    }
    CHECK(cancelled == 1, "the cancelled migration %s is not recorded cancelled", mid);
    CHECK(moved >= 1, "%s: no succeeded migration after the deferral", inst);
    json_decref(p);
    (void)start;
    check_guests(NULL);
    json_t *evs = all_events();
    REQUIRE(evs, "GET /v1/events");
    check_seq(evs);
    json_decref(evs);
}

/* Registers the fake host "hostx" holding an instance too big for any lab
 * host (through ferryd's register API with the agent token). */
static int register_fake(void)
{
    json_t *b = json_pack("{s:s, s:s, s:I, s:i, s:[{s:s, s:s, s:I, s:i}]}", "name", "hostx",
                          "agent_url", "http://127.0.0.1:9", "ram_mib", (json_int_t)(2 * HUGE_MIB),
                          "vcpus", 64, "instances", "name", "huge", "project_id", "p1",
                          "memory_mib", (json_int_t)HUGE_MIB, "vcpus", 1);
    int st = ferryd_api(&D, "POST", "/v1/hosts/register", D.agent_tok, b, NULL);
    json_decref(b);
    return st == 200 || st == 201 ? 0 : -1;
}

static size_t count_of(const char *path, const char *key)
{
    json_t *o = NULL;
    size_t n = (size_t)-1;
    if (ferryd_api(&D, "GET", path, D.admin, NULL, &o) == 200)
        n = json_array_size(json_object_get(o, key));
    json_decref(o);
    return n;
}

static void t_unplaceable(void)
{
    if (!case_ready())
        return;
    size_t plans0 = count_of("/v1/plans", "plans"),
           migs0 = count_of("/v1/migrations", "migrations");
    json_t *ev0 = all_events();
    REQUIRE(ev0, "events");
    size_t nev0 = json_array_size(ev0);
    json_decref(ev0);
    REQUIRE(register_fake() == 0, "fake host not registered");
    json_t *b = json_pack("{s:s, s:{s:s, s:b}}", "label", "all", "action", "command", "true",
                          "reboot", 1),
           *o = NULL;
    int st = ferryd_api(&D, "POST", "/v1/plans", D.admin, b, &o);
    json_decref(b);
    CHECK(st == 409, "POST /v1/plans: %d", st);
    CHECK(strcmp(ferryd_jstr(json_object_get(o, "error"), "code"), "unplaceable") == 0, "code '%s'",
          ferryd_jstr(json_object_get(o, "error"), "code"));
    json_t *un = json_object_get(o, "unplaced");
    CHECK(json_array_size(un) == 1, "%zu unplaced", json_array_size(un));
    json_t *u = json_array_get(un, 0);
    CHECK(strcmp(ferryd_jstr(u, "instance"), "huge") == 0 &&
              strcmp(ferryd_jstr(u, "host"), "hostx") == 0 &&
              strcmp(ferryd_jstr(u, "reason"), "too_big") == 0,
          "unplaced %s on %s: %s", ferryd_jstr(u, "instance"), ferryd_jstr(u, "host"),
          ferryd_jstr(u, "reason"));
    json_decref(o);
    /* nothing started: no plan, no migration, no plan.* event, hosts up */
    ferryd_sleep_ms(1500);
    CHECK(count_of("/v1/plans", "plans") == plans0, "a plan was stored");
    CHECK(count_of("/v1/migrations", "migrations") == migs0, "a migration was created");
    json_t *evs = all_events();
    REQUIRE(evs, "events");
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev)
    {
        if (i >= nev0)
            CHECK(strncmp(ferryd_jstr(ev, "type"), "plan.", 5) != 0 &&
                      strncmp(ferryd_jstr(ev, "type"), "migration.", 10) != 0,
                  "%s after the refused plan", ferryd_jstr(ev, "type"));
    }
    json_decref(evs);
    CHECK(wait_registered(1000) == 0, "lab hosts not all up with their guests");
}

static int setup(void)
{
    struct ferr e = {0};
    if (lab_start(&L, NGUESTS, &e) != 0) {
        fprintf(stderr, "lab: %s\n", e.msg);
        return -1;
    }
    if (ferryd_init(&D, &L, &e) != 0) {
        fprintf(stderr, "ferryd: %s\n", e.msg);
        return -1;
    }
    if (ferryd_write_conf(&D, "heartbeat_interval_ms = %d\nheartbeat_missed = 6\n", HEARTBEAT_MS) !=
            0 ||
        ferryd_agent_token(&D) != 0 ||
        ferryd_add_token(&D, "tenant1", "p1", "member,migration_canceller", tenant_tok,
                         sizeof(tenant_tok)) != 0 ||
        ferryd_start(&D) != 0)
        return -1;
    for (int i = 0; i < NGUESTS; i++)
        if (relaunch_agent(i) != 0)
            return -1;
    for (int g = 0; g < NGUESTS; g++) {
        if (lab_post_instance(&L.agents[g], GUESTS[g], "p1", GUEST_MIB, CMDLINE, NULL, &e) != 0) {
            fprintf(stderr, "launch %s: %s\n", GUESTS[g], e.msg);
            return -1;
        }
    }
    for (int g = 0; g < NGUESTS; g++)
        if (lab_console_expect(&L.agents[g], GUESTS[g], NULL, 0, "FERRY-READY ",
                               LAB_BOOT_TIMEOUT_MS, NULL, &e) != 0) {
            fprintf(stderr, "%s boot: %s\n", GUESTS[g], e.msg);
            return -1;
        }
    return 0;
}

/* Runs the CLI with args (a shell fragment) against ferryd with the D.admin
 * token; its stdout into out; returns its exit status. */
static int cli(const char *args, char *out, size_t n)
{
    char *cmd = xasprintf("'%s' %s --url '%s' --token-file '%s' 2>&1", ferryd_bin("ferry"), args,
                          D.url, D.admin_path);
    FILE *p = popen(cmd, "r");
    free(cmd);
    size_t k = 0;
    out[0] = '\0';
    if (!p)
        return -1;
    while (k + 1 < n) {
        size_t r = fread(out + k, 1, n - 1 - k, p);
        if (r == 0)
            break;
        k += r;
    }
    out[k] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const json_t *host_of(const json_t *hosts, const char *name)
{
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(hosts, "hosts"), i,
                       h) if (strcmp(ferryd_jstr(h, "name"), name) == 0) return h;
    return NULL;
}

/* Labels: the lab agents registered with --label (zone=lab, rack=r1|r2)
 * and GET /v1/hosts and `ferry host list` show them; bad labels in a
 * registration are refused naming the field and change nothing; a plan
 * selects hosts by KEY=VALUE (a selector nothing carries: 404; a bad
 * selector: 400); the overcommit ratios are validated. Cordon: a tenant may
 * not cordon (403); `ferry host cordon` keeps a host from being a
 * migration destination (named destination: 409; automatic placement with
 * every other host cordoned: refused, no migration created); uncordon lifts
 * it; host.cordoned / host.uncordoned events. No migration runs. */
static void t_labels_cordon(void)
{
    if (!case_ready())
        return;
    json_t *o = NULL;
    REQUIRE(ferryd_api(&D, "GET", "/v1/hosts", D.admin, NULL, &o) == 200, "GET /v1/hosts");
    for (int k = 0; k < NGUESTS; k++) {
        const json_t *lb = json_object_get(host_of(o, HOSTS[k]), "labels");
        CHECK(!strcmp(ferryd_jstr(lb, "zone"), "lab") &&
                  !strcmp(ferryd_jstr(lb, "rack"), k == 2 ? "r2" : "r1") &&
                  json_object_size(lb) == 2,
              "%s labels zone=%s rack=%s", HOSTS[k], ferryd_jstr(lb, "zone"),
              ferryd_jstr(lb, "rack"));
    }
    json_decref(o);
    char out[8192];
    CHECK(cli("host list", out, sizeof(out)) == 0 && strstr(out, "rack=r2,zone=lab"),
          "ferry host list: %s", out);
    /* bad labels: refused, the host as it was */
    static const char *const bad_labels[] = {"{\"zone\": 3}", "{\"-x\": \"a\"}",
                                             "{\"zone\": \"a,b\"}", NULL};
    for (int k = 0; bad_labels[k]; k++) {
        json_t *b = json_pack("{s:s, s:s, s:I, s:i, s:o}", "name", "hostl", "agent_url",
                              "http://127.0.0.1:9", "ram_mib", (json_int_t)4096, "vcpus", 4,
                              "labels", json_loads(bad_labels[k], 0, NULL));
        int st = ferryd_api(&D, "POST", "/v1/hosts/register", D.agent_tok, b, &o);
        CHECK(st == 400 && !strncmp(ferryd_jstr(json_object_get(o, "error"), "field"), "labels", 6),
              "labels %s: %d field '%s'", bad_labels[k], st,
              ferryd_jstr(json_object_get(o, "error"), "field"));
        json_decref(o);
        json_decref(b);
    }
    REQUIRE(ferryd_api(&D, "GET", "/v1/hosts", D.admin, NULL, &o) == 200, "GET /v1/hosts");
    CHECK(host_of(o, "hostl") == NULL, "a refused registration stored host hostl");
    json_decref(o);
    /* plan selectors and ratios */
    static const struct {
        const char *body;
        int status;
        const char *field;
    } bad_plans[] = {
        {"{\"label\": \"rack=r9\", \"action\": {\"command\": \"true\"}}", 404, "label"},
        {"{\"label\": \"rack\", \"action\": {\"command\": \"true\"}}", 400, "label"},
        {"{\"label\": \"ra ck=r1\", \"action\": {\"command\": \"true\"}}", 400, "label"},
        {"{\"label\": \"all\", \"vcpu_overcommit\": 0, \"action\": {\"command\": \"true\"}}", 400,
         "vcpu_overcommit"},
        {"{\"label\": \"all\", \"vcpu_overcommit\": 17, \"action\": {\"command\": \"true\"}}", 400,
         "vcpu_overcommit"},
        {"{\"label\": \"all\", \"ram_overcommit\": \"2\", \"action\": {\"command\": \"true\"}}",
         400, "ram_overcommit"},
        {"{\"label\": \"all\", \"health_check\": {\"command\": \"\"}, \"action\": {\"command\": "
         "\"true\"}}",
         400, "health_check.command"},
    };
    size_t plans0 = count_of("/v1/plans", "plans");
    for (size_t k = 0; k < sizeof(bad_plans) / sizeof(bad_plans[0]); k++) {
        json_t *b = json_loads(bad_plans[k].body, 0, NULL);
        int st = ferryd_api(&D, "POST", "/v1/plans", D.admin, b, &o);
        CHECK(st == bad_plans[k].status &&
                  !strcmp(ferryd_jstr(json_object_get(o, "error"), "field"), bad_plans[k].field),
              "%s: %d field '%s'", bad_plans[k].body, st,
              ferryd_jstr(json_object_get(o, "error"), "field"));
        json_decref(o);
        json_decref(b);
    }
    CHECK(count_of("/v1/plans", "plans") == plans0, "a refused plan was stored");
    /* cordon */
    char path[128];
    snprintf(path, sizeof(path), "/v1/hosts/%s/cordon", HOSTS[1]);
    CHECK(ferryd_api(&D, "POST", path, tenant_tok, NULL, NULL) == 403, "a tenant cordoned a host");
    int copies = 0, at = where(GUESTS[0], &copies);
    REQUIRE(at >= 0, "%s does not run", GUESTS[0]);
    int x = (at + 1) % NGUESTS, y = (at + 2) % NGUESTS;
    char args[160];
    snprintf(args, sizeof(args), "host cordon %s --reason 'disk swap'", HOSTS[x]);
    CHECK(cli(args, out, sizeof(out)) == 0, "ferry %s: %s", args, out);
    REQUIRE(ferryd_api(&D, "GET", "/v1/hosts", D.admin, NULL, &o) == 200, "GET /v1/hosts");
    CHECK(strstr(ferryd_jstr(host_of(o, HOSTS[x]), "cordon"), "disk swap") != NULL, "cordon '%s'",
          ferryd_jstr(host_of(o, HOSTS[x]), "cordon"));
    json_decref(o);
    size_t migs0 = count_of("/v1/migrations", "migrations");
    json_t *b = json_pack("{s:s, s:s}", "instance", GUESTS[0], "destination", HOSTS[x]);
    int st = ferryd_api(&D, "POST", "/v1/migrations", D.admin, b, &o);
    CHECK(st == 409 && strstr(ferryd_jstr(json_object_get(o, "error"), "message"), "cordoned"),
          "migration to the cordoned %s: %d %s", HOSTS[x], st,
          ferryd_jstr(json_object_get(o, "error"), "message"));
    json_decref(o);
    json_decref(b);
    snprintf(path, sizeof(path), "/v1/hosts/%s/cordon", HOSTS[y]);
    CHECK(ferryd_api(&D, "POST", path, D.admin, NULL, NULL) == 200, "cordon %s", HOSTS[y]);
    b = json_pack("{s:s}", "instance", GUESTS[0]);
    st = ferryd_api(&D, "POST", "/v1/migrations", D.admin, b, &o);
    CHECK(st == 409 && !strcmp(ferryd_jstr(json_object_get(o, "error"), "field"), "destination"),
          "placement with every other host cordoned: %d %s", st,
          ferryd_jstr(json_object_get(o, "error"), "message"));
    json_decref(o);
    json_decref(b);
    CHECK(count_of("/v1/migrations", "migrations") == migs0, "a migration was created");
    snprintf(args, sizeof(args), "host uncordon %s", HOSTS[x]);
    CHECK(cli(args, out, sizeof(out)) == 0, "ferry %s: %s", args, out);
    snprintf(path, sizeof(path), "/v1/hosts/%s/uncordon", HOSTS[y]);
    CHECK(ferryd_api(&D, "POST", path, D.admin, NULL, NULL) == 200, "uncordon %s", HOSTS[y]);
    REQUIRE(ferryd_api(&D, "GET", "/v1/hosts", D.admin, NULL, &o) == 200, "GET /v1/hosts");
    for (int k = 0; k < NGUESTS; k++)
        CHECK(json_is_null(json_object_get(host_of(o, HOSTS[k]), "cordon")), "%s still cordoned",
              HOSTS[k]);
    json_decref(o);
    json_t *evs = all_events();
    REQUIRE(evs, "events");
    int cordoned = 0, uncordoned = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev)
    {
        cordoned += !strcmp(ferryd_jstr(ev, "type"), "host.cordoned");
        uncordoned += !strcmp(ferryd_jstr(ev, "type"), "host.uncordoned");
    }
    CHECK(cordoned == 2 && uncordoned == 2, "%d host.cordoned, %d host.uncordoned", cordoned,
          uncordoned);
    json_decref(evs);
}

int main(void)
{
    uint64_t t0 = lab_now_ms();
    ready = setup() == 0;
    fprintf(stderr, "  setup %.1f s\n", (double)(lab_now_ms() - t0) / 1000.0);
    test_run("plan: 3 hosts, max_down 1, reboot: completes, guests moved and intact, events "
             "in order",
             t_plan);
    test_run("plan: kill -9 ferryd mid-drain and mid-maintenance, restarts on the same DB "
             "resume it to completion, each step once",
             t_crash);
    test_run("plan: pause holds the steps, resume continues, abort states every host",
             t_pause_abort);
    test_run("plan: a host failing its health check pauses the plan with plan.alert, no "
             "further host taken down, guests intact",
             t_health);
    test_run("plan: a tenant cancel becomes a deferral, the instance moves after the deadline, "
             "the plan completes",
             t_deferral);
    test_run("hosts: labels registered and shown, plans select by label, ratios validated; "
             "cordon keeps a host from being a destination",
             t_labels_cordon);
    test_run("plan: an instance too big for any other host → 409 unplaceable, nothing starts",
             t_unplaceable);
    int rc = test_done();
    if (rc != 0 && D.log_path[0]) {
        char *cmd = xasprintf("grep -i 'plan' '%s' | tail -40 >&2", D.log_path);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot show the log\n");
        free(cmd);
    }
    fprintf(stderr, "  total %.1f s\n", (double)(lab_now_ms() - t0) / 1000.0);
    lab_stop(&L);
    return rc;
}

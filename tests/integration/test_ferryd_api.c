/* Integration: the real ferryd binary over real HTTP on 127.0.0.1, with a
 * temp config, store and bootstrap token. Proves: 401 without (or with a
 * wrong) token; agents register and heartbeat, admins list hosts, agents
 * may not; a host that stops heartbeating is marked down with a host.down
 * event and comes back up with host.up; bad input gets a 4xx naming the
 * field and changes nothing; after kill -9 and a restart every host and
 * event is still there and the event seq continues without a gap.
 *
 * ferryd runs in its own process group, is SIGKILLed when the test ends
 * (atexit, fatal signals) and dies with the test (PR_SET_PDEATHSIG). */
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
#include "../lib/test.h"
#include "util/httpc.h"
#include "util/xalloc.h"

#define HEARTBEAT_MS 200 /* configured heartbeat interval */
#define MISSED 2         /* configured missed beats before down */
#define HTTP_TIMEOUT_MS 10000

static struct ferryd D;
static char agent[300];
static int up;

static int api(const char *method, const char *path, const char *token, const json_t *body,
               json_t **out)
{
    return ferryd_api(&D, method, path, token, body, out);
}

/* A registration of host name with one instance "g-NAME" of project p1. */
static json_t *register_body(const char *name)
{
    char iname[64];
    snprintf(iname, sizeof(iname), "g-%s", name);
    return json_pack("{s:s, s:s, s:i, s:i, s:[{s:s, s:s, s:i, s:i}]}", "name", name, "agent_url",
                     "http://127.0.1.1:7001", "ram_mib", 8192, "vcpus", 4, "instances", "name",
                     iname, "project_id", "p1", "memory_mib", 256, "vcpus", 1);
}

/* GET /v1/hosts as admin; returns the state of host name ("" if absent). */
static void host_state(const char *name, char *state, size_t n)
{
    json_t *o = NULL;
    snprintf(state, n, "%s", "");
    if (api("GET", "/v1/hosts", D.admin, NULL, &o) != 200 || !o)
        return;
    json_t *h;
    size_t i;
    json_array_foreach(json_object_get(o, "hosts"), i, h)
    {
        if (strcmp(json_string_value(json_object_get(h, "name")), name) == 0)
            snprintf(state, n, "%s", json_string_value(json_object_get(h, "state")));
    }
    json_decref(o);
}

/* Every event since 0 as admin (one page is enough here). */
static json_t *events(void)
{
    json_t *o = NULL;
    if (api("GET", "/v1/events?since=0", D.admin, NULL, &o) != 200) {
        json_decref(o);
        return NULL;
    }
    json_t *ev = json_incref(json_object_get(o, "events"));
    json_decref(o);
    return ev;
}

static int count_events(const json_t *ev, const char *type, const char *subject)
{
    int n = 0;
    size_t i;
    json_t *x;
    json_array_foreach(ev, i, x)
    {
        if (strcmp(json_string_value(json_object_get(x, "type")), type) == 0 &&
            strcmp(json_string_value(json_object_get(x, "subject")), subject) == 0)
            n++;
    }
    return n;
}

static void t_auth(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", D.log_path);
    CHECK(api("GET", "/v1/health", NULL, NULL, NULL) == 200, "health needs no token");
    CHECK(api("GET", "/v1/hosts", NULL, NULL, NULL) == 401, "no token");
    CHECK(api("GET", "/v1/hosts", "wrong", NULL, NULL) == 401, "wrong token");
    CHECK(api("GET", "/v1/events", NULL, NULL, NULL) == 401, "events without token");
    json_t *b = register_body("hx");
    CHECK(api("POST", "/v1/hosts/register", NULL, b, NULL) == 401, "register without token");
    json_decref(b);
    CHECK(api("GET", "/v1/hosts", D.admin, NULL, NULL) == 200, "admin token refused");
}

static void t_inventory(void)
{
    REQUIRE(up, "ferryd did not start");
    json_t *b = register_body("h1"), *o = NULL;
    CHECK(api("POST", "/v1/hosts/register", agent, b, &o) == 201, "first register not 201");
    CHECK(o && strcmp(json_string_value(json_object_get(o, "state")), "up") == 0, "state");
    json_decref(o);
    CHECK(api("POST", "/v1/hosts/register", agent, b, NULL) == 200, "re-register not 200");
    json_decref(b);
    CHECK(api("POST", "/v1/hosts/h1/heartbeat", agent, NULL, NULL) == 200, "heartbeat");
    CHECK(api("POST", "/v1/hosts/nope/heartbeat", agent, NULL, NULL) == 404,
          "heartbeat of an unknown host");
    CHECK(api("GET", "/v1/hosts", agent, NULL, NULL) == 403, "agent may list hosts");
    REQUIRE(api("GET", "/v1/hosts", D.admin, NULL, &o) == 200 && o, "list");
    json_t *h = json_array_get(json_object_get(o, "hosts"), 0);
    json_t *in = json_array_get(json_object_get(h, "instances"), 0);
    CHECK(h && strcmp(json_string_value(json_object_get(h, "name")), "h1") == 0 &&
              json_integer_value(json_object_get(h, "ram_mib")) == 8192 &&
              strcmp(json_string_value(json_object_get(h, "agent_url")), "http://127.0.1.1:7001") ==
                  0,
          "host h1 as listed");
    CHECK(in && strcmp(json_string_value(json_object_get(in, "name")), "g-h1") == 0 &&
              strcmp(json_string_value(json_object_get(in, "project_id")), "p1") == 0,
          "instance of h1 as listed");
    json_decref(o);
    json_t *ev = events();
    CHECK(ev && count_events(ev, "host.registered", "host/h1") == 2, "host.registered events");
    json_decref(ev);
}

static void t_down(void)
{
    REQUIRE(up, "ferryd did not start");
    json_t *b = register_body("h2");
    REQUIRE(api("POST", "/v1/hosts/register", agent, b, NULL) == 201, "register h2");
    json_decref(b);
    char st[16];
    host_state("h2", st, sizeof(st));
    CHECK(strcmp(st, "up") == 0, "h2 registered as %s", st);
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < 10000) {
        host_state("h2", st, sizeof(st));
        if (strcmp(st, "down") == 0)
            break;
        ferryd_sleep_ms(50);
    }
    uint64_t took = lab_now_ms() - t0;
    CHECK(strcmp(st, "down") == 0, "h2 still %s after 10 s of silence", st);
    CHECK(took >= (uint64_t)HEARTBEAT_MS * MISSED - 50, "marked down after only %llu ms",
          (unsigned long long)took);
    json_t *ev = events();
    CHECK(ev && count_events(ev, "host.down", "host/h2") == 1, "one host.down event for h2");
    json_decref(ev);
    CHECK(api("POST", "/v1/hosts/h2/heartbeat", agent, NULL, NULL) == 200, "heartbeat h2");
    host_state("h2", st, sizeof(st));
    CHECK(strcmp(st, "up") == 0, "h2 after heartbeat: %s", st);
    ev = events();
    CHECK(ev && count_events(ev, "host.up", "host/h2") == 1, "host.up event for h2");
    json_decref(ev);
}

/* Each row: a bad request and the status and field it must be refused with. */
static void t_bad_input(void)
{
    REQUIRE(up, "ferryd did not start");
    static const struct {
        const char *path;
        const char *body;
        int status;
        const char *field;
    } cases[] = {
        {"/v1/hosts/register", "{\"agent_url\":\"http://a:1\",\"ram_mib\":1,\"vcpus\":1}", 400,
         "name"},
        {"/v1/hosts/register",
         "{\"name\":\"../x\",\"agent_url\":\"http://a:1\",\"ram_mib\":1,\"vcpus\":1}", 400, "name"},
        {"/v1/hosts/register",
         "{\"name\":\"hb\",\"agent_url\":\"ftp://a\",\"ram_mib\":1,\"vcpus\":1}", 400, "agent_url"},
        {"/v1/hosts/register",
         "{\"name\":\"hb\",\"agent_url\":\"http://a:1\",\"ram_mib\":\"x\",\"vcpus\":1}", 400,
         "ram_mib"},
        {"/v1/hosts/register",
         "{\"name\":\"hb\",\"agent_url\":\"http://a:1\",\"ram_mib\":1,\"vcpus\":0}", 400, "vcpus"},
        {"/v1/hosts/register",
         "{\"name\":\"hb\",\"agent_url\":\"http://a:1\",\"ram_mib\":1,\"vcpus\":1,\"x\":1}", 400,
         "x"},
        {"/v1/hosts/register",
         "{\"name\":\"hb\",\"agent_url\":\"http://a:1\",\"ram_mib\":1,\"vcpus\":1,"
         "\"instances\":{}}",
         400, "instances"},
        {"/v1/hosts/register",
         "{\"name\":\"hb\",\"agent_url\":\"http://a:1\",\"ram_mib\":1,\"vcpus\":1,"
         "\"instances\":[{\"name\":\"g\",\"project_id\":\"p\",\"memory_mib\":0}]}",
         400, "instances[0].memory_mib"},
        {"/v1/hosts/register",
         "{\"name\":\"hb\",\"agent_url\":\"http://a:1\",\"ram_mib\":1,\"vcpus\":1,"
         "\"instances\":[{\"name\":\"g\",\"project_id\":\"p\",\"memory_mib\":1},"
         "{\"name\":\"g\",\"project_id\":\"p\",\"memory_mib\":1}]}",
         400, "instances[1].name"},
        {"/v1/hosts/register", "[1]", 400, NULL},
        {"/v1/hosts/register", "{\"name\":", 400, NULL},
        {"/v1/hosts/h1/heartbeat", "{\"x\":1}", 400, "x"},
        {"/v1/hosts/bad!name/heartbeat", "{}", 400, "name"},
    };
    json_t *before = events();
    REQUIRE(before, "events");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct httpc_resp r;
        struct ferr e = {0};
        REQUIRE(httpc_request(D.url, "POST", cases[i].path, cases[i].body, agent, HTTP_TIMEOUT_MS, &r,
                              &e) == 0,
                "case %zu: %s", i, e.msg);
        json_error_t je;
        json_t *o = json_loads(r.body, 0, &je);
        const char *field =
            json_string_value(json_object_get(json_object_get(o, "error"), "field"));
        CHECK(r.status == cases[i].status, "case %zu (%s): status %d body %s", i, cases[i].body,
              r.status, r.body);
        CHECK(!cases[i].field || (field && strcmp(field, cases[i].field) == 0),
              "case %zu: field %s, want %s", i, field ? field : "(none)", cases[i].field);
        json_decref(o);
        httpc_resp_free(&r);
    }
    CHECK(api("GET", "/v1/events?since=-1", D.admin, NULL, NULL) == 400, "since=-1");
    CHECK(api("GET", "/v1/events?since=abc", D.admin, NULL, NULL) == 400, "since=abc");
    /* Oversize body: 413 (or the connection cut while still sending). */
    size_t big = (1u << 20) + 100;
    char *body = xmalloc(big + 1);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    body[big] = '\0';
    struct httpc_resp r;
    struct ferr e = {0};
    if (httpc_request(D.url, "POST", "/v1/hosts/register", body, agent, HTTP_TIMEOUT_MS, &r, &e) ==
        0) {
        CHECK(r.status == 413, "oversize body: status %d", r.status);
        httpc_resp_free(&r);
    }
    free(body);
    char st[16];
    host_state("hb", st, sizeof(st));
    CHECK(st[0] == '\0', "a refused host was stored (%s)", st);
    json_t *after = events();
    CHECK(after && json_array_size(after) == json_array_size(before),
          "refused input wrote events: %zu -> %zu", json_array_size(before),
          json_array_size(after));
    json_decref(before);
    json_decref(after);
}

static void t_kill9(void)
{
    REQUIRE(up, "ferryd did not start");
    json_t *before = events(), *o = NULL;
    REQUIRE(before && json_array_size(before) > 0, "no events before the kill");
    json_int_t last = json_integer_value(
        json_object_get(json_array_get(before, json_array_size(before) - 1), "seq"));
    ferryd_stop(&D, SIGKILL);
    up = ferryd_start(&D) == 0;
    REQUIRE(up, "ferryd did not restart (log %s)", D.log_path);
    char st[16];
    host_state("h1", st, sizeof(st));
    CHECK(st[0] != '\0', "h1 lost in the crash");
    host_state("h2", st, sizeof(st));
    CHECK(st[0] != '\0', "h2 lost in the crash");
    json_t *after = events();
    REQUIRE(after, "events after restart");
    CHECK(json_array_size(after) >= json_array_size(before), "events lost: %zu -> %zu",
          json_array_size(before), json_array_size(after));
    json_t *b = register_body("h3");
    CHECK(api("POST", "/v1/hosts/register", agent, b, NULL) == 201, "register h3");
    json_decref(b);
    json_decref(after);
    after = events();
    size_t n = json_array_size(after);
    for (size_t i = 0; i < n; i++) {
        json_int_t s = json_integer_value(json_object_get(json_array_get(after, i), "seq"));
        CHECK(s == (json_int_t)i + 1, "event %zu has seq %lld (gap)", i, (long long)s);
    }
    json_t *h3 = NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(after, i);
        if (strcmp(json_string_value(json_object_get(x, "subject")), "host/h3") == 0)
            h3 = x;
    }
    CHECK(h3 && json_integer_value(json_object_get(h3, "seq")) > last,
          "h3's event does not follow the last seq %lld", (long long)last);
    /* Old events are intact, byte for byte. */
    for (size_t i = 0; i < json_array_size(before); i++)
        CHECK(json_equal(json_array_get(before, i), json_array_get(after, i)),
              "event %zu changed across the restart", i);
    json_decref(before);
    json_decref(after);
    json_decref(o);
}

int main(void)
{
    struct ferr e = {0};
    if (ferryd_init(&D, NULL, &e) != 0) {
        fprintf(stderr, "ferryd_init: %s\n", e.msg);
        return 1;
    }
    if (ferryd_write_conf(&D, "heartbeat_interval_ms = %d\nheartbeat_missed = %d\n",
                          HEARTBEAT_MS, MISSED) != 0)
        return 1;
    up = ferryd_add_token(&D, "agent1", "infra", "agent", agent, sizeof(agent)) == 0 &&
         ferryd_start(&D) == 0;
    test_run("ferryd: 401 without or with a wrong token; health is open", t_auth);
    test_run("ferryd: register, heartbeat, list (admin yes, agent 403)", t_inventory);
    test_run("ferryd: silent host marked down (host.down), heartbeat brings it up", t_down);
    test_run("ferryd: bad input gets 4xx naming the field and changes nothing", t_bad_input);
    test_run("ferryd: kill -9 and restart keeps hosts and events, seq gapless", t_kill9);
    int rc = test_done();
    if (rc != 0)
        ferryd_tail_log(&D, 30);
    ferryd_fini(&D, rc == 0);
    return rc;
}

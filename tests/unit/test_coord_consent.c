/* Unit: consent requests in ferryd without daemons. Proves: the store's
 * consent rows round-trip every column, an update changes the decision
 * (state, decided_ms/by, on_behalf, reason, detail) and an unknown id is
 * FERR_NOTFOUND; bad state/step/text is refused naming the field and
 * stores nothing; list filters by migration, state and project, newest
 * first, with its limit. The pure validators: decision bodies, list
 * filters, timeout actions and steps, from tables; the config keys
 * consent_timeout_s, consent_timeout_action and agent_token_file with
 * their defaults and bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/storefix.h"
#include "../lib/test.h"
#include "coord/config.h"
#include "coord/consent.h"
#include "coord/store.h"
#include "util/xalloc.h"

static char dir[64];

static struct store_consent mk(const char *id, const char *mig, const char *step, const char *state,
                               const char *proj, int64_t t)
{
    struct store_consent c;
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.migration_id, sizeof(c.migration_id), "%s", mig);
    snprintf(c.step, sizeof(c.step), "%s", step);
    snprintf(c.state, sizeof(c.state), "%s", state);
    snprintf(c.project, sizeof(c.project), "%s", proj);
    c.requested_ms = t;
    c.deadline_ms = t + 600000;
    return c;
}

static void t_rows(void)
{
    struct store *st = storefix_open(dir, "c.db");
    REQUIRE(st, "no store");
    struct ferr e = {0};
    struct store_consent c = mk("con-1", "mig-1", "throttle", "pending", "p1", 1000);
    c.detail_json = "{\"instance\":\"g1\"}";
    REQUIRE(store_consent_insert(st, &c, &e) == 0, "insert: %s", e.msg);
    CHECK(store_consent_insert(st, &c, &e) == FERR_EXISTS, "duplicate id accepted");
    struct store_consent g;
    REQUIRE(store_consent_get(st, "con-1", &g, &e) == 0, "get: %s", e.msg);
    CHECK(strcmp(g.migration_id, "mig-1") == 0 && strcmp(g.step, "throttle") == 0 &&
              strcmp(g.state, "pending") == 0 && strcmp(g.project, "p1") == 0 &&
              g.requested_ms == 1000 && g.deadline_ms == 601000 && g.decided_ms == 0 &&
              g.decided_by[0] == '\0' && g.on_behalf == 0 && g.detail_json &&
              strstr(g.detail_json, "g1"),
          "round trip: %s %s %s", g.migration_id, g.step, g.state);
    snprintf(g.state, sizeof(g.state), "granted");
    snprintf(g.decided_by, sizeof(g.decided_by), "admin");
    snprintf(g.reason, sizeof(g.reason), "tonight is fine");
    g.decided_ms = 2000;
    g.on_behalf = 1;
    REQUIRE(store_consent_update(st, &g, &e) == 0, "update: %s", e.msg);
    store_consent_clear(&g);
    REQUIRE(store_consent_get(st, "con-1", &g, &e) == 0, "get 2: %s", e.msg);
    CHECK(strcmp(g.state, "granted") == 0 && strcmp(g.decided_by, "admin") == 0 &&
              g.decided_ms == 2000 && g.on_behalf == 1 && strcmp(g.reason, "tonight is fine") == 0,
          "update lost: %s by %s", g.state, g.decided_by);
    store_consent_clear(&g);
    struct store_consent u = mk("con-none", "mig-1", "pause", "refused", "p1", 1);
    CHECK(store_consent_update(st, &u, &e) == FERR_NOTFOUND, "update of an unknown id");
    CHECK(store_consent_get(st, "con-none", &g, &e) == FERR_NOTFOUND, "get of an unknown id");
    static const struct {
        const char *state, *step, *proj, *field;
    } bad[] = {
        {"maybe", "throttle", "p1", "state"},
        {"pending", "warp", "p1", "step"},
        {"pending", "throttle", "p\x01", "project"},
        {"", "throttle", "p1", "state"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct store_consent b = mk("con-bad", "mig-1", bad[i].step, bad[i].state, bad[i].proj, 5);
        memset(&e, 0, sizeof(e));
        CHECK(store_consent_insert(st, &b, &e) != 0 && strcmp(e.field, bad[i].field) == 0,
              "bad %zu: field '%s', want '%s'", i, e.field, bad[i].field);
    }
    struct store_consent b = mk("con-bad", "mig-1", "pause", "pending", "p1", 5);
    b.detail_json = "{not json";
    CHECK(store_consent_insert(st, &b, &e) != 0 && strcmp(e.field, "detail") == 0,
          "bad detail: field '%s'", e.field);
    CHECK(store_consent_get(st, "con-bad", &g, &e) == FERR_NOTFOUND, "a bad row was stored");
    store_close(st);
}

static void t_list(void)
{
    struct store *st = storefix_open(dir, "l.db");
    REQUIRE(st, "no store");
    struct ferr e = {0};
    struct store_consent rows[] = {
        mk("c1", "m1", "throttle", "granted", "p1", 100),
        mk("c2", "m1", "pause", "pending", "p1", 200),
        mk("c3", "m2", "postcopy", "pending", "p2", 300),
        mk("c4", "m3", "throttle", "expired", "p1", 400),
    };
    for (size_t i = 0; i < 4; i++)
        REQUIRE(store_consent_insert(st, &rows[i], &e) == 0, "insert %zu: %s", i, e.msg);
    static const struct {
        const char *mig, *state, *proj, *want; /* ids newest first */
        size_t limit;
    } cases[] = {
        {NULL, NULL, NULL, "c4,c3,c2,c1", 100},
        {"m1", NULL, NULL, "c2,c1", 100},
        {NULL, "pending", NULL, "c3,c2", 100},
        {NULL, NULL, "p1", "c4,c2,c1", 100},
        {"m1", "pending", "p1", "c2", 100},
        {NULL, NULL, NULL, "c4,c3", 2},
        {"m9", NULL, NULL, "", 100},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct store_consent_filter f = {cases[i].mig, cases[i].state, cases[i].proj};
        struct store_consent *out = NULL;
        size_t n = 0;
        REQUIRE(store_consent_list(st, &f, cases[i].limit, &out, &n, &e) == 0, "list: %s", e.msg);
        char got[512] = "";
        for (size_t j = 0; j < n; j++) {
            size_t l = strlen(got);
            snprintf(got + l, sizeof(got) - l, "%s%s", j ? "," : "", out[j].id);
        }
        CHECK(strcmp(got, cases[i].want) == 0, "case %zu: got '%s', want '%s'", i, got,
              cases[i].want);
        store_consents_free(out, n);
    }
    store_close(st);
}

static void t_validators(void)
{
    static const struct {
        const char *body; /* NULL: empty body */
        int ok;
        const char *field;
    } dec[] = {
        {NULL, 1, ""},
        {"{}", 1, ""},
        {"{\"reason\":\"fine\"}", 1, ""},
        {"{\"reason\":7}", 0, "reason"},
        {"{\"reason\":\"a\\u0007b\"}", 0, "reason"},
        {"{\"granted\":true}", 0, "granted"},
        {"[1]", 0, "body"},
    };
    for (size_t i = 0; i < sizeof(dec) / sizeof(dec[0]); i++) {
        json_t *b = dec[i].body ? json_loads(dec[i].body, JSON_DECODE_ANY, NULL) : NULL;
        struct consent_decision d;
        struct ferr e = {0};
        int rc = consent_decision_parse(b, &d, &e);
        CHECK((rc == 0) == dec[i].ok && (dec[i].ok || strcmp(e.field, dec[i].field) == 0),
              "decision %zu (%s): rc %d field '%s'", i, dec[i].body ? dec[i].body : "(empty)", rc,
              e.field);
        json_decref(b);
    }
    char big[CONSENT_REASON_MAX + 40];
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    json_t *b = json_pack("{s:s}", "reason", big);
    struct consent_decision d;
    struct ferr e = {0};
    CHECK(consent_decision_parse(b, &d, &e) != 0 && strcmp(e.field, "reason") == 0,
          "oversize reason accepted");
    json_decref(b);
    static const struct {
        const char *state, *mig;
        int ok;
    } flt[] = {{NULL, NULL, 1},    {"pending", "mig-1", 1}, {"expired", NULL, 1},
               {"bogus", NULL, 0}, {NULL, "", 0},           {NULL, "a\nb", 0}};
    for (size_t i = 0; i < sizeof(flt) / sizeof(flt[0]); i++) {
        memset(&e, 0, sizeof(e));
        CHECK((consent_filter_check(flt[i].state, flt[i].mig, &e) == 0) == flt[i].ok, "filter %zu",
              i);
    }
    enum consent_timeout_action a;
    CHECK(consent_timeout_action_parse("wait", &a) == 0 && a == CONSENT_TIMEOUT_WAIT, "wait");
    CHECK(consent_timeout_action_parse("proceed", &a) == 0 && a == CONSENT_TIMEOUT_PROCEED,
          "proceed");
    CHECK(consent_timeout_action_parse("abort", &a) == 0 && a == CONSENT_TIMEOUT_ABORT, "abort");
    CHECK(consent_timeout_action_parse("Abort", &a) != 0, "case-insensitive action");
    CHECK(consent_step_ok("throttle") && consent_step_ok("pause") && !consent_step_ok("warp") &&
              !consent_step_ok(NULL),
          "steps");
}

static void t_config(void)
{
    struct config c;
    struct ferr e = {0};
    config_defaults(&c);
    CHECK(c.consent_timeout_s == 600 && strcmp(c.consent_timeout_action, "wait") == 0 &&
              c.agent_token_file[0] == '\0',
          "defaults: %u %s '%s'", c.consent_timeout_s, c.consent_timeout_action,
          c.agent_token_file);
    const char *ok = "consent_timeout_s = 5\nconsent_timeout_action = abort\n"
                     "agent_token_file = /etc/ferry/agent.token\n";
    REQUIRE(config_parse(&c, ok, strlen(ok), &e) == 0, "parse: %s", e.msg);
    CHECK(c.consent_timeout_s == 5 && strcmp(c.consent_timeout_action, "abort") == 0 &&
              strcmp(c.agent_token_file, "/etc/ferry/agent.token") == 0,
          "values not applied");
    static const char *const bad[] = {"consent_timeout_s = 0\n", "consent_timeout_s = 604801\n",
                                      "consent_timeout_s = -1\n",
                                      "consent_timeout_action = later\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        config_defaults(&c);
        memset(&e, 0, sizeof(e));
        CHECK(config_parse(&c, bad[i], strlen(bad[i]), &e) != 0 && e.field[0], "accepted: %s",
              bad[i]);
    }
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ferry-consent-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    test_run("store: consent rows round-trip, update the decision, refuse bad input by field",
             t_rows);
    test_run("store: consent list filters (migration, state, project), newest first, limit",
             t_list);
    test_run("consent: decision bodies, list filters, timeout actions and steps validated",
             t_validators);
    test_run("config: consent_timeout_s, consent_timeout_action, agent_token_file", t_config);
    int rc = test_done();
    test_rm_rf(dir);
    return rc;
}

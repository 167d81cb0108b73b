/* Policy engine: the default RBAC matrix, the rule language (precedence,
 * checks, templates), parser errors with positions, cycles and caps. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/test.h"
#include "core/policy.h"
#include "util/ferr.h"
#include "util/xalloc.h"

/* ---- helpers -------------------------------------------------------------- */

/* Loads {name: text} (one rule) over the defaults. */
static int load_one(struct policy *p, const char *name, const char *text, struct ferr *e)
{
    json_t *o = json_object();
    json_object_set_new(o, name, json_string(text));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int rc = policy_load(p, s, strlen(s), e);
    free(s);
    return rc;
}

/* Loads a single rule and evaluates it for subj/tgt; returns -1 on a load
 * or check failure, else 0/1. */
static int eval_one(const char *text, const struct policy_subject *subj,
                    const struct policy_target *tgt)
{
    struct policy p;
    struct ferr e;
    if (load_one(&p, "t", text, &e) != 0) {
        printf("# load '%s': %s\n", text, e.msg);
        return -1;
    }
    bool ok = false;
    int rc = policy_check(&p, "t", subj, tgt, &ok);
    policy_free(&p);
    return rc ? -1 : ok;
}

static const char *const R_ADMIN[] = {"admin"};
static const char *const R_MEMBER[] = {"member"};
static const char *const R_CANCEL[] = {"member", "migration_canceller"};
static const char *const R_READER[] = {"reader"};

enum { S_ADMIN, S_OWN, S_OTHER, S_CANCEL, S_READER, S_ANON, S__N };
static const struct policy_subject SUBJ[S__N] = {
    [S_ADMIN] = {"uadm", "ops", R_ADMIN, 1}, [S_OWN] = {"u1", "p1", R_MEMBER, 1},
    [S_OTHER] = {"u2", "p2", R_MEMBER, 1},   [S_CANCEL] = {"u3", "p1", R_CANCEL, 2},
    [S_READER] = {"u4", "p1", R_READER, 1},  [S_ANON] = {NULL, NULL, NULL, 0},
};
static const char *const SUBJ_NAME[S__N] = {"admin",     "own member", "other member",
                                            "canceller", "reader",     "nobody"};

static const struct policy_kv KV_MIG[] = {
    {"project_id", "p1"}, {"user_id", "u1"}, {"instance", "i1"}, {"migration", "m1"}};
static const struct policy_target T_MIG = {KV_MIG, 4};
static const struct policy_kv KV_HOST[] = {{"host", "h1"}};
static const struct policy_target T_HOST = {KV_HOST, 1}; /* no project: hosts, plans */

/* ---- defaults ------------------------------------------------------------- */

/* Proves: the built-in defaults give the issue's matrix for every subject
 * kind on a migration owned by project p1 — admins do everything, members
 * of p1 see (list/show/events) but not host names, only the canceller role
 * cancels, owners answer consent for themselves and only admins on behalf,
 * plans and hosts are admin-only, other projects and the anonymous see
 * nothing. */
static void t_default_matrix(void)
{
    static const struct {
        const char *action;
        const struct policy_target *tgt;
        int allow[S__N]; /* admin, own, other, canceller, reader, nobody */
    } c[] = {
        {"migration:create", &T_MIG, {1, 0, 0, 0, 0, 0}},
        {"migration:list", &T_MIG, {1, 1, 0, 1, 1, 0}},
        {"migration:show", &T_MIG, {1, 1, 0, 1, 1, 0}},
        {"migration:show_hosts", &T_MIG, {1, 0, 0, 0, 0, 0}},
        {"migration:cancel", &T_MIG, {1, 0, 0, 1, 0, 0}},
        {"migration:force_complete", &T_MIG, {1, 0, 0, 0, 0, 0}},
        {"migration:update_limits", &T_MIG, {1, 0, 0, 0, 0, 0}},
        {"consent:list", &T_MIG, {1, 1, 0, 1, 1, 0}},
        {"consent:show", &T_MIG, {1, 1, 0, 1, 1, 0}},
        {"consent:grant", &T_MIG, {0, 1, 0, 1, 1, 0}},
        {"consent:grant_on_behalf", &T_MIG, {1, 0, 0, 0, 0, 0}},
        {"plan:create", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"plan:list", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"plan:show", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"plan:update", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"plan:delete", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"plan:start", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"plan:pause", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"plan:resume", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"plan:abort", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"host:list", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"host:cordon", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"host:uncordon", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"host:show", &T_HOST, {1, 0, 0, 0, 0, 0}},
        {"instance:list", &T_MIG, {1, 1, 0, 1, 1, 0}},
        {"instance:show", &T_MIG, {1, 1, 0, 1, 1, 0}},
        {"events:read", &T_MIG, {1, 1, 0, 1, 1, 0}},
        {"events:read", &T_HOST, {1, 0, 0, 0, 0, 0}}, /* host/plan events */
        {"policy:show", &T_HOST, {1, 0, 0, 0, 0, 0}},
    };
    struct policy p;
    struct ferr e;
    REQUIRE(policy_load(&p, NULL, 0, &e) == 0, "defaults: %s", e.msg);
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        for (int s = 0; s < S__N; s++) {
            bool ok = !c[i].allow[s];
            int rc = policy_check(&p, c[i].action, &SUBJ[s], c[i].tgt, &ok);
            CHECK(rc == 0, "%s: rc %d", c[i].action, rc);
            CHECK(ok == (bool)c[i].allow[s], "%s as %s: %s, want %s", c[i].action, SUBJ_NAME[s],
                  ok ? "allowed" : "denied", c[i].allow[s] ? "allowed" : "denied");
        }
    }
    /* The table above names every default action (aliases aside). */
    for (size_t d = 0; d < policy_default_count(); d++) {
        const char *name, *text, *desc;
        REQUIRE(policy_default_at(d, &name, &text, &desc) == 0, "default %zu", d);
        CHECK(desc && desc[0], "%s has no description", name);
        if (!strchr(name, ':'))
            continue;
        bool found = false;
        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
            found |= strcmp(c[i].action, name) == 0;
        CHECK(found, "default action %s is not in the matrix", name);
    }
    const char *n, *t, *dd;
    CHECK(policy_default_at(policy_default_count(), &n, &t, &dd) == FERR_NOTFOUND, "range");
    policy_free(&p);
}

/* Proves: an unknown action fails with FERR_NOTFOUND and reports denied,
 * even for an admin. */
static void t_unknown_action(void)
{
    struct policy p;
    struct ferr e;
    REQUIRE(policy_load(&p, NULL, 0, &e) == 0, "%s", e.msg);
    bool ok = true;
    CHECK(policy_check(&p, "migration:explode", &SUBJ[S_ADMIN], &T_MIG, &ok) == FERR_NOTFOUND,
          "unknown action");
    CHECK(!ok, "unknown action allowed");
    ok = true;
    CHECK(policy_check(&p, "", &SUBJ[S_ADMIN], &T_MIG, &ok) == FERR_NOTFOUND && !ok, "empty");
    ok = true;
    CHECK(policy_check(&p, NULL, &SUBJ[S_ADMIN], &T_MIG, &ok) == FERR_NOTFOUND && !ok, "NULL");
    policy_free(&p);
}

/* Proves: etc/policy.json, the shipped policy file, holds exactly the
 * built-in defaults (it cannot drift from the code), and loading it marks
 * every rule as coming from the file. */
static void t_etc_file_is_defaults(void)
{
    FILE *f = fopen("etc/policy.json", "rb");
    REQUIRE(f, "etc/policy.json missing (tests run from the repository root)");
    char *buf = xmalloc(1 << 16);
    size_t n = fread(buf, 1, 1 << 16, f);
    fclose(f);
    struct policy p;
    struct ferr e;
    int rc = policy_load(&p, buf, n, &e);
    free(buf);
    REQUIRE(rc == 0, "etc/policy.json: %s", e.msg);
    CHECK(policy_count(&p) == policy_default_count(), "%zu rules, %zu defaults", policy_count(&p),
          policy_default_count());
    for (size_t i = 0; i < policy_count(&p); i++) {
        const char *name, *text;
        bool dflt;
        REQUIRE(policy_rule_at(&p, i, &name, &text, &dflt) == 0, "rule %zu", i);
        CHECK(!dflt, "%s not from the file", name);
        bool found = false;
        for (size_t d = 0; d < policy_default_count(); d++) {
            const char *dn, *dt, *dd;
            REQUIRE(policy_default_at(d, &dn, &dt, &dd) == 0, "default %zu", d);
            if (strcmp(dn, name) == 0) {
                found = true;
                CHECK(strcmp(dt, text) == 0, "%s: file '%s', default '%s'", name, text, dt);
            }
        }
        CHECK(found, "%s is not a default", name);
    }
    policy_free(&p);
}

/* Proves: a file overrides single rules and the rest stay default;
 * redefining the alias "admin" changes every default that references it
 * (names resolve at load, like oslo.policy); host names can be opened to
 * owners; the iteration is sorted and flags defaults. */
static void t_overrides(void)
{
    const char *js = "{\"admin\": \"role:admin or role:cloud_admin\","
                     " \"migration:show_hosts\": \"rule:admin_or_owner\"}";
    struct policy p;
    struct ferr e;
    REQUIRE(policy_load(&p, js, strlen(js), &e) == 0, "%s", e.msg);
    static const char *const rc_roles[] = {"Cloud_Admin"};
    struct policy_subject ca = {"x", "ops", rc_roles, 1};
    bool ok = false;
    CHECK(policy_check(&p, "plan:start", &ca, &T_HOST, &ok) == 0 && ok, "cloud_admin denied");
    CHECK(policy_check(&p, "migration:show_hosts", &SUBJ[S_OWN], &T_MIG, &ok) == 0 && ok,
          "owner cannot see hosts after override");
    CHECK(policy_check(&p, "migration:show_hosts", &SUBJ[S_OTHER], &T_MIG, &ok) == 0 && !ok,
          "other project sees hosts");
    CHECK(policy_check(&p, "migration:create", &SUBJ[S_OWN], &T_MIG, &ok) == 0 && !ok,
          "default changed");
    size_t nfile = 0;
    const char *prev = "";
    for (size_t i = 0; i < policy_count(&p); i++) {
        const char *name, *text;
        bool dflt;
        REQUIRE(policy_rule_at(&p, i, &name, &text, &dflt) == 0, "rule %zu", i);
        CHECK(strcmp(prev, name) < 0, "not sorted: %s after %s", name, prev);
        prev = name;
        nfile += !dflt;
    }
    CHECK(nfile == 2, "%zu rules from the file", nfile);
    const char *a, *b;
    bool c;
    CHECK(policy_rule_at(&p, policy_count(&p), &a, &b, &c) == FERR_NOTFOUND, "range");
    policy_free(&p);
}

/* ---- language ------------------------------------------------------------- */

/* Proves: `not` binds tighter than `and`, `and` tighter than `or`,
 * parentheses override, keywords are case-insensitive, parentheses glue to
 * words like oslo.policy's tokeniser. Each case differs between the right
 * and a wrong precedence. */
static void t_precedence(void)
{
    static const struct {
        const char *rule;
        int want;
    } c[] = {
        {"@", 1},
        {"!", 0},
        {"! and ! or @", 1}, /* (F and F) or T; wrong: F and (F or T) = F */
        {"@ or @ and !", 1}, /* T or (T and F); wrong: (T or T) and F = F */
        {"not @ or @", 1},   /* (not T) or T; wrong: not (T or T) = F */
        {"not @ and !", 0},  /* (not T) and F; wrong: not (T and F) = T */
        {"not ! and @", 1},  /* (not F) and T */
        {"not (@ or @)", 0},
        {"(@ or @) and !", 0},
        {"not not @", 1},
        {"NOT ! AnD @ Or !", 1},
        {"((@))", 1},
        {"(!) or (not (!))", 1},
        {"@ and @ and @ and !", 0},
        {"! or ! or ! or @", 1},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        int got = eval_one(c[i].rule, &SUBJ[S_OWN], &T_MIG);
        CHECK(got == c[i].want, "'%s' = %d, want %d", c[i].rule, got, c[i].want);
    }
}

/* Proves: each check kind compares what it should — roles
 * case-insensitively, subject keys exactly, quoted literals, templates with
 * surrounding text and %%, %(X)s without the target. prefix — and that a
 * missing or empty target value, or an empty subject value, never matches
 * (an unscoped token cannot match an object without a project). */
static void t_checks(void)
{
    static const char *const roles[] = {"Member", "Ops-Team"};
    static const struct policy_subject s = {"u1", "p1", roles, 2};
    static const struct policy_kv kv[] = {
        {"project_id", "p1"}, {"user_id", "u1"}, {"plan", "drain-7"}, {"role", "ops-team"},
        {"empty", ""},        {"nullv", NULL},   {"pct", "50%"}};
    struct policy_target t = {kv, 7};
    static const struct policy_subject blank = {"", "", NULL, 0};
    static const struct {
        const char *rule;
        const struct policy_subject *s;
        int want;
    } c[] = {
        {"role:member", &s, 1},
        {"role:MEMBER", &s, 1},
        {"role:admin", &s, 0},
        {"role:%(target.role)s", &s, 1},
        {"role:mem", &s, 0},
        {"user_id:%(target.user_id)s", &s, 1},
        {"user_id:u1", &s, 1},
        {"user_id:U1", &s, 0},
        {"project_id:%(target.project_id)s", &s, 1},
        {"project_id:%(project_id)s", &s, 1},
        {"project_id:p", &s, 0},
        {"project_id:p1x", &s, 0},
        {"project_id:%(target.missing)s", &s, 0},
        {"project_id:%(target.empty)s", &s, 0},
        {"project_id:%(target.nullv)s", &s, 0},
        {"'drain-7':%(target.plan)s", &s, 1},
        {"\"drain-7\":%(target.plan)s", &s, 1},
        {"'drain-8':%(target.plan)s", &s, 0},
        {"'drain':%(target.plan)s", &s, 0},
        {"'drain-%(x)s':%(target.plan)s", &s, 0}, /* literal is not a template */
        {"'a:b':a:b", &s, 1},
        {"'p-p1':p-%(target.project_id)s", &s, 1},
        {"'p1-u1':%(target.project_id)s-%(target.user_id)s", &s, 1},
        {"'50%':%(target.pct)s", &s, 1},
        {"'50%':50%%", &s, 1},
        {"'':%(target.plan)s", &s, 0},
        {"project_id:%(target.project_id)s", &blank, 0},
        {"user_id:%(target.user_id)s", &blank, 0},
        {"project_id:%(target.project_id)s", &SUBJ[S_ANON], 0},
        {"role:admin", &SUBJ[S_ANON], 0},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        int got = eval_one(c[i].rule, c[i].s, &t);
        CHECK(got == c[i].want, "'%s' = %d, want %d", c[i].rule, got, c[i].want);
    }
    /* No target at all: placeholders fail, literals still work. */
    CHECK(eval_one("project_id:%(target.project_id)s", &s, NULL) == 0, "NULL target");
    CHECK(eval_one("project_id:p1", &s, NULL) == 1, "literal, NULL target");
    CHECK(eval_one("role:member", NULL, NULL) == 0, "NULL subject");
}

/* Proves: every syntax mistake fails the load with FERR_INVAL (or
 * FERR_TOOBIG for nesting), names the rule in field, and says the 1-based
 * column where it went wrong; the failed load leaves the policy empty. */
static void t_parse_errors(void)
{
    static const struct {
        const char *rule;
        int code;
        const char *msg; /* substring of e.msg after "rule 'r': " */
    } c[] = {
        {"", FERR_INVAL, "column 1: empty rule"},
        {"   ", FERR_INVAL, "column 1: empty rule"},
        {"role:admin or", FERR_INVAL, "column 14: expected a check, found the end of the rule"},
        {"and @", FERR_INVAL, "column 1: expected a check, found 'and'"},
        {"@ or or @", FERR_INVAL, "column 6: expected a check, found 'or'"},
        {"(role:admin", FERR_INVAL,
         "column 12: expected ')' for the '(' at column 1, found the end of the rule"},
        {"( @ or (! and @ )", FERR_INVAL, "expected ')' for the '(' at column 1"},
        {"role:admin)", FERR_INVAL, "column 11: unexpected ')'"},
        {"()", FERR_INVAL, "column 2: expected a check, found ')'"},
        {"role:a role:b", FERR_INVAL, "column 8: unexpected a check"},
        {"@ not @", FERR_INVAL, "column 3: unexpected 'not'"},
        {"admin", FERR_INVAL, "column 1: not a check"},
        {"@ or admin", FERR_INVAL, "column 6: not a check"},
        {"http:foo", FERR_INVAL, "column 1: unknown check kind"},
        {"is_admin:True", FERR_INVAL, "column 1: unknown check kind"},
        {"role:", FERR_INVAL, "column 6: empty match"},
        {"rule:", FERR_INVAL, "column 6: bad rule name"},
        {"rule:a/b", FERR_INVAL, "column 6: bad rule name"},
        {"rule:nosuch", FERR_INVAL, "column 1: undefined rule 'nosuch'"},
        {"@ and rule:nosuch", FERR_INVAL, "column 7: undefined rule 'nosuch'"},
        {"project_id:%(target.project_id", FERR_INVAL, "column 12: unterminated placeholder"},
        {"project_id:%(target.project_id)", FERR_INVAL, "column 12: unterminated placeholder"},
        {"project_id:%()s", FERR_INVAL, "column 12: unterminated placeholder"},
        {"project_id:%(target.)s", FERR_INVAL, "column 12: empty key"},
        {"project_id:%(a b)s", FERR_INVAL, "unterminated placeholder"},
        {"project_id:%(a/b)s", FERR_INVAL, "column 15: bad character"},
        {"project_id:50%", FERR_INVAL, "column 14: '%' must start"},
        {"project_id:%d", FERR_INVAL, "column 12: '%' must start"},
        {"'abc:%(target.x)s", FERR_INVAL, "column 1: unterminated quoted literal"},
        {"'abc'%(target.x)s", FERR_INVAL, "column 6: expected ':' after the quoted literal"},
        {"'abc'", FERR_INVAL, "column 6: expected ':'"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct policy p;
        struct ferr e;
        ferr_clear(&e);
        int rc = load_one(&p, "r", c[i].rule, &e);
        CHECK(rc == c[i].code, "'%s': rc %d want %d (%s)", c[i].rule, rc, c[i].code, e.msg);
        CHECK(strcmp(e.field, "r") == 0, "'%s': field '%s'", c[i].rule, e.field);
        CHECK(strncmp(e.msg, "rule 'r': ", 10) == 0 && strstr(e.msg, c[i].msg),
              "'%s': message '%s', want '%s'", c[i].rule, e.msg, c[i].msg);
        CHECK(policy_count(&p) == 0, "'%s': failed load left %zu rules", c[i].rule,
              policy_count(&p));
        policy_free(&p);
    }
}

/* Proves: the file itself is validated — not an object, malformed, a
 * non-string rule, a bad or over-long name — each a clear FERR_INVAL. */
static void t_file_errors(void)
{
    static const struct {
        const char *js;
        int code;
        const char *field, *msg;
    } c[] = {
        {"[]", FERR_INVAL, "body", "must be a JSON object"},
        {"{\"a\": ", FERR_INVAL, "body", "malformed JSON"},
        {"{\"a\": \"@\", \"a\": \"!\"}", FERR_INVAL, "body", "malformed JSON"},
        {"{\"a\": 1}", FERR_INVAL, "a", "must be a JSON string"},
        {"{\"a\": [\"role:x\"]}", FERR_INVAL, "a", "must be a JSON string"},
        {"{\"a b\": \"@\"}", FERR_INVAL, "", "rule name 'a b'"},
        {"{\"\": \"@\"}", FERR_INVAL, "", "rule name ''"},
        {"{\"x\": \"@\", "
         "\"a123456789012345678901234567890123456789012345678901234567890123\": \"@\"}",
         FERR_INVAL, "", "must be 1..63"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct policy p;
        struct ferr e;
        ferr_clear(&e);
        int rc = policy_load(&p, c[i].js, strlen(c[i].js), &e);
        CHECK(rc == c[i].code, "%s: rc %d (%s)", c[i].js, rc, e.msg);
        CHECK(strcmp(e.field, c[i].field) == 0, "%s: field '%s'", c[i].js, e.field);
        CHECK(strstr(e.msg, c[i].msg), "%s: message '%s'", c[i].js, e.msg);
        CHECK(policy_count(&p) == 0, "failed load left rules");
        policy_free(&p);
    }
    /* 63 characters is a legal name. */
    struct policy p;
    struct ferr e;
    const char *n63 = "a12345678901234567890123456789012345678901234567890123456789012";
    REQUIRE(strlen(n63) == 63, "len");
    CHECK(load_one(&p, n63, "@", &e) == 0, "63-char name: %s", e.msg);
    policy_free(&p);
}

/* Proves: reference cycles are rejected at load, naming the path — a
 * self-reference, a three-rule loop, and a loop through a redefined default
 * alias — while a diamond (two paths to one rule) is fine. */
static void t_cycles(void)
{
    static const struct {
        const char *js;
        const char *msg;
    } c[] = {
        {"{\"a\": \"rule:a\"}", "reference cycle a -> a"},
        {"{\"a\": \"@ and rule:b\", \"b\": \"rule:c\", \"c\": \"not rule:a\"}",
         "reference cycle a -> b -> c -> a"},
        {"{\"admin\": \"role:admin or rule:admin_or_owner\"}",
         "reference cycle admin -> admin_or_owner -> admin"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct policy p;
        struct ferr e;
        ferr_clear(&e);
        int rc = policy_load(&p, c[i].js, strlen(c[i].js), &e);
        CHECK(rc == FERR_INVAL, "%s: rc %d", c[i].js, rc);
        CHECK(strstr(e.msg, c[i].msg), "%s: '%s', want '%s'", c[i].js, e.msg, c[i].msg);
        CHECK(e.field[0], "%s: no field", c[i].js);
        policy_free(&p);
    }
    const char *diamond = "{\"a\": \"rule:b and rule:c\", \"b\": \"rule:d\", \"c\": \"rule:d\","
                          " \"d\": \"role:member\"}";
    struct policy p;
    struct ferr e;
    REQUIRE(policy_load(&p, diamond, strlen(diamond), &e) == 0, "diamond: %s", e.msg);
    bool ok = false;
    CHECK(policy_check(&p, "a", &SUBJ[S_OWN], &T_MIG, &ok) == 0 && ok, "diamond denied");
    CHECK(policy_check(&p, "a", &SUBJ[S_READER], &T_MIG, &ok) == 0 && !ok, "diamond allowed");
    policy_free(&p);
}

/* Builds a rule "(((...@...)))" of depth d. */
static char *nested(int d)
{
    char *s = xmalloc((size_t)d * 2 + 2);
    int n = 0;
    for (int i = 0; i < d; i++)
        s[n++] = '(';
    s[n++] = '@';
    for (int i = 0; i < d; i++)
        s[n++] = ')';
    s[n] = '\0';
    return s;
}

/* Builds a chain of n rules r00 → r01 → … → r(n-1) = "@" as JSON. */
static char *chain(int n)
{
    json_t *o = json_object();
    for (int i = 0; i < n; i++) {
        char name[16], text[32];
        snprintf(name, sizeof(name), "r%02d", i);
        if (i + 1 < n)
            snprintf(text, sizeof(text), "rule:r%02d", i + 1);
        else
            snprintf(text, sizeof(text), "@");
        json_object_set_new(o, name, json_string(text));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* Proves: each hard cap holds exactly at its limit and fails one past it
 * with FERR_TOOBIG — rule text 4096 bytes, nesting 32 (parentheses and
 * `not` alike), 256 rules, 16 chained references, 1 MiB file. */
static void t_caps(void)
{
    struct policy p;
    struct ferr e;
    /* rule length: "@ or @ or ..." padded with spaces to exactly n bytes */
    for (size_t n = POLICY_MAX_RULE_BYTES; n <= POLICY_MAX_RULE_BYTES + 1; n++) {
        char *r = xmalloc(n + 1);
        memset(r, ' ', n);
        r[0] = '@';
        r[n] = '\0';
        int rc = load_one(&p, "long", r, &e);
        if (n == POLICY_MAX_RULE_BYTES)
            CHECK(rc == 0, "%zu bytes: %s", n, e.msg);
        else
            CHECK(rc == FERR_TOOBIG && strcmp(e.field, "long") == 0, "%zu bytes: rc %d", n, rc);
        policy_free(&p);
        free(r);
    }
    /* nesting */
    char *r = nested(POLICY_MAX_DEPTH);
    CHECK(load_one(&p, "deep", r, &e) == 0, "depth 32: %s", e.msg);
    policy_free(&p);
    free(r);
    r = nested(POLICY_MAX_DEPTH + 1);
    CHECK(load_one(&p, "deep", r, &e) == FERR_TOOBIG && strstr(e.msg, "column 33: nesting"),
          "depth 33: %s", e.msg);
    policy_free(&p);
    free(r);
    char nots[200] = "";
    for (int i = 0; i < POLICY_MAX_DEPTH; i++)
        strncat(nots, "not ", sizeof(nots) - strlen(nots) - 1);
    strncat(nots, "@", sizeof(nots) - strlen(nots) - 1);
    CHECK(load_one(&p, "nots", nots, &e) == 0, "32 nots: %s", e.msg);
    bool ok = false;
    CHECK(policy_check(&p, "nots", &SUBJ[S_OWN], NULL, &ok) == 0 && ok, "32 nots = @");
    policy_free(&p);
    memmove(nots + 4, nots, strlen(nots) + 1);
    memcpy(nots, "not ", 4);
    CHECK(load_one(&p, "nots", nots, &e) == FERR_TOOBIG, "33 nots: %s", e.msg);
    policy_free(&p);
    /* rule count */
    for (int n = POLICY_MAX_RULES; n <= POLICY_MAX_RULES + 1; n++) {
        json_t *o = json_object();
        for (int i = 0; i < n; i++) {
            char name[16];
            snprintf(name, sizeof(name), "x%d", i);
            json_object_set_new(o, name, json_string("@"));
        }
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        int rc = policy_load(&p, s, strlen(s), &e);
        if (n == POLICY_MAX_RULES)
            CHECK(rc == 0 && policy_count(&p) == (size_t)n + policy_default_count(),
                  "256 rules: rc %d %s", rc, e.msg);
        else
            CHECK(rc == FERR_TOOBIG && strstr(e.msg, "257 rules"), "257 rules: %s", e.msg);
        policy_free(&p);
        free(s);
    }
    /* reference chain: 17 rules = 16 references ok, 18 rules fail */
    char *js = chain(POLICY_MAX_REF_DEPTH + 1);
    CHECK(policy_load(&p, js, strlen(js), &e) == 0, "16 references: %s", e.msg);
    CHECK(policy_check(&p, "r00", &SUBJ[S_OWN], NULL, &ok) == 0 && ok, "chain end @");
    policy_free(&p);
    free(js);
    js = chain(POLICY_MAX_REF_DEPTH + 2);
    CHECK(policy_load(&p, js, strlen(js), &e) == FERR_TOOBIG &&
              strstr(e.msg, "nested deeper than 16"),
          "17 references: %s", e.msg);
    policy_free(&p);
    free(js);
    /* file size */
    size_t big = POLICY_MAX_FILE_BYTES + 1;
    char *f = xmalloc(big);
    memset(f, ' ', big);
    f[0] = '{';
    f[big - 1] = '}';
    CHECK(policy_load(&p, f, big, &e) == FERR_TOOBIG, "1 MiB + 1: %s", e.msg);
    policy_free(&p);
    free(f);
}

/* Proves: evaluation is linear, not exponential: 16 levels of rules that
 * each reference the next one 300 times (300^16 paths without the per-call
 * memo) are decided, both ways, and the verdict is right. */
static void t_fanout(void)
{
    json_t *o = json_object();
    for (int i = 0; i <= 16; i++) {
        char name[16], *text;
        snprintf(name, sizeof(name), "f%02d", i);
        if (i < 16) {
            size_t cap = 300 * 12 + 1, at = 0;
            text = xmalloc(cap);
            text[0] = '\0';
            for (int k = 0; k < 300; k++)
                at += (size_t)snprintf(text + at, cap - at, "%srule:f%02d", k ? " or " : "", i + 1);
        } else {
            text = xstrdup("role:reader");
        }
        json_object_set_new(o, name, json_string(text));
        free(text);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct policy p;
    struct ferr e;
    REQUIRE(policy_load(&p, s, strlen(s), &e) == 0, "%s", e.msg);
    free(s);
    bool ok = true;
    CHECK(policy_check(&p, "f00", &SUBJ[S_OWN], NULL, &ok) == 0 && !ok, "member allowed");
    CHECK(policy_check(&p, "f00", &SUBJ[S_READER], NULL, &ok) == 0 && ok, "reader denied");
    policy_free(&p);
}

/* policy_uses_target_key: which target keys a decision may depend on,
 * through references, in every check kind; unknown actions say yes. The
 * migration list takes one decision per project on the strength of it, so
 * a missed key would let one record's decision stand for another's. */
static void t_uses_key(void)
{
    static const struct {
        const char *text; /* rule "t" (may reference the defaults) */
        const char *key;
        bool uses;
    } cases[] = {
        {"rule:admin_or_owner", "project_id", true},
        {"rule:admin_or_owner", "instance", false},
        {"rule:admin_or_owner", "host", false},
        {"rule:admin", "project_id", false},
        {"@", "migration", false},
        {"project_id:%(target.project_id)s", "project_id", true},
        {"project_id:%(project_id)s", "project_id", true},
        {"user_id:%(target.user_id)s", "user_id", true},
        {"user_id:%(target.user_id)s", "user", false},
        {"role:ops-%(host)s", "host", true},
        {"'%(target.instance)s':vm-1", "instance", false}, /* the literal side is no template */
        {"'vm-1':%(target.instance)s", "instance", true},
        {"'%%(host)s':x", "host", false},
        {"not (rule:admin or 'x':%(target.migration)s)", "migration", true},
        {"rule:admin and ('a':%(target.migrationx)s)", "migration", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy p;
        struct ferr e;
        REQUIRE(load_one(&p, "t", cases[i].text, &e) == 0, "load '%s': %s", cases[i].text, e.msg);
        bool got = policy_uses_target_key(&p, "t", cases[i].key);
        CHECK(got == cases[i].uses, "'%s' uses %s: %d, want %d", cases[i].text, cases[i].key, got,
              cases[i].uses);
        CHECK(policy_uses_target_key(&p, "no:such-action", cases[i].key),
              "unknown action must say yes");
        policy_free(&p);
    }
    /* Through two levels of aliases defined in the file. */
    const char *file = "{\"a\": \"rule:b\", \"b\": \"rule:c or @\", \"c\": \"'x':%(target.host)s\"}";
    struct policy p;
    struct ferr e;
    REQUIRE(policy_load(&p, file, strlen(file), &e) == 0, "load: %s", e.msg);
    CHECK(policy_uses_target_key(&p, "a", "host"), "a -> b -> c reads host");
    CHECK(!policy_uses_target_key(&p, "a", "instance"), "a does not read instance");
    CHECK(!policy_uses_target_key(&p, "migration:list", "instance") &&
              policy_uses_target_key(&p, "migration:list", "project_id"),
          "default migration:list reads the project alone");
    policy_free(&p);
}

int main(void)
{
    test_run("policy: default matrix of subjects x actions x own/other project", t_default_matrix);
    test_run("policy: unknown action is NOTFOUND and denied", t_unknown_action);
    test_run("policy: etc/policy.json equals the built-in defaults", t_etc_file_is_defaults);
    test_run("policy: file overrides and alias redefinition", t_overrides);
    test_run("policy: not > and > or precedence", t_precedence);
    test_run("policy: check kinds and templates", t_checks);
    test_run("policy: parse errors name rule and column", t_parse_errors);
    test_run("policy: file errors", t_file_errors);
    test_run("policy: reference cycles rejected at load", t_cycles);
    test_run("policy: caps at and past their limit", t_caps);
    test_run("policy: evaluation memoised (no exponential blow-up)", t_fanout);
    test_run("policy: which target keys a decision may read (per-project reuse)", t_uses_key);
    return test_done();
}

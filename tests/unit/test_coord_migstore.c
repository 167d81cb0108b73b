/* Unit: the store's migration rows (store_migration_insert/update/list) on
 * a real SQLite store. Proves: update replaces the mutable columns and
 * keeps identity (instance, source, user, project, created); an unknown id
 * is FERR_NOTFOUND; a bad field is refused naming it and changes nothing;
 * list filters by state, instance, host (source or destination), project
 * and active-only, newest first, and honours its limit. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/storefix.h"
#include "../lib/test.h"
#include "coord/store.h"
#include "core/migstate.h"
#include "util/xalloc.h"

static char dir[64];

static struct store_migration mk(const char *id, const char *inst, const char *src, const char *dst,
                                 const char *state, const char *proj, int64_t created)
{
    struct store_migration m;
    memset(&m, 0, sizeof(m));
    snprintf(m.id, sizeof(m.id), "%s", id);
    snprintf(m.instance, sizeof(m.instance), "%s", inst);
    snprintf(m.source, sizeof(m.source), "%s", src);
    snprintf(m.destination, sizeof(m.destination), "%s", dst);
    snprintf(m.state, sizeof(m.state), "%s", state);
    snprintf(m.phase, sizeof(m.phase), "queued");
    snprintf(m.user, sizeof(m.user), "admin");
    snprintf(m.project, sizeof(m.project), "%s", proj);
    m.eta_ms = m.eta_low_ms = m.eta_high_ms = m.downtime_ms = -1;
    m.created_ms = m.updated_ms = created;
    return m;
}

static void t_update(void)
{
    struct store *st = storefix_open(dir, "u.db");
    REQUIRE(st, "no store");
    struct ferr e = {0};
    struct store_migration m = mk("m1", "vm1", "h1", "h2", "requested", "p1", 1000);
    m.detail_json = "{\"a\":1}";
    REQUIRE(store_migration_insert(st, &m, &e) == 0, "insert: %s", e.msg);
    struct store_migration u = mk("m1", "ignored", "ignored", "h3", "running", "ignored", 5);
    snprintf(u.phase, sizeof(u.phase), "running");
    u.progress_pct = 42.5;
    u.mem_total_bytes = 1000;
    u.mem_remaining_bytes = 575;
    u.eta_ms = 1234;
    u.updated_ms = 2000;
    u.detail_json = "{\"agent_migration\":\"m-h1-1\"}";
    snprintf(u.last_error, sizeof(u.last_error), "none yet");
    REQUIRE(store_migration_update(st, &u, &e) == 0, "update: %s", e.msg);
    struct store_migration g;
    REQUIRE(store_migration_get(st, "m1", &g, &e) == 0, "get: %s", e.msg);
    CHECK(strcmp(g.state, "running") == 0 && strcmp(g.destination, "h3") == 0 &&
              g.progress_pct == 42.5 && g.mem_remaining_bytes == 575 && g.eta_ms == 1234 &&
              g.updated_ms == 2000 && strcmp(g.last_error, "none yet") == 0,
          "mutable columns not replaced: %s %s %.1f", g.state, g.destination, g.progress_pct);
    CHECK(strcmp(g.instance, "vm1") == 0 && strcmp(g.source, "h1") == 0 &&
              strcmp(g.project, "p1") == 0 && g.created_ms == 1000,
          "identity changed: %s %s %s %lld", g.instance, g.source, g.project,
          (long long)g.created_ms);
    CHECK(g.detail_json && strstr(g.detail_json, "m-h1-1"), "detail %s",
          g.detail_json ? g.detail_json : "(null)");
    store_migration_clear(&g);
    struct store_migration x = mk("nope", "vm1", "h1", "h2", "running", "p1", 1);
    CHECK(store_migration_update(st, &x, &e) == FERR_NOTFOUND, "unknown id updated");
    struct store_migration bad = u;
    bad.progress_pct = 101;
    CHECK(store_migration_update(st, &bad, &e) == FERR_INVAL &&
              strcmp(e.field, "progress_pct") == 0,
          "progress 101 accepted (field %s)", e.field);
    bad = u;
    bad.detail_json = "{not json";
    CHECK(store_migration_update(st, &bad, &e) == FERR_INVAL && strcmp(e.field, "detail") == 0,
          "bad detail accepted (field %s)", e.field);
    REQUIRE(store_migration_get(st, "m1", &g, &e) == 0, "get: %s", e.msg);
    CHECK(g.progress_pct == 42.5, "a refused update changed the row");
    store_migration_clear(&g);
    store_close(st);
}

static size_t count(struct store *st, const struct store_migration_filter *f, size_t limit,
                    const char *first)
{
    struct store_migration *m = NULL;
    size_t n = 0;
    struct ferr e = {0};
    if (store_migration_list(st, f, limit, &m, &n, &e) != 0) {
        test__fail(__FILE__, __LINE__, "list", "%s", e.msg);
        return 999;
    }
    if (first && n > 0 && strcmp(m[0].id, first) != 0)
        test__fail(__FILE__, __LINE__, "order", "first %s, want %s", m[0].id, first);
    store_migrations_free(m, n);
    return n;
}

static void t_list(void)
{
    struct store *st = storefix_open(dir, "l.db");
    REQUIRE(st, "no store");
    struct ferr e = {0};
    struct store_migration rows[] = {
        mk("a", "vm1", "h1", "h2", "succeeded", "p1", 10),
        mk("b", "vm1", "h2", "h1", "running", "p1", 20),
        mk("c", "vm2", "h3", "h2", "failed", "p2", 30),
        mk("d", "vm3", "h3", "", "requested", "p2", 40),
        mk("e", "vm4", "h1", "h3", "unknown", "p1", 50),
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        REQUIRE(store_migration_insert(st, &rows[i], &e) == 0, "insert %zu: %s", i, e.msg);
    struct store_migration_filter f = {0};
    CHECK(count(st, NULL, 100, "e") == 5, "all");
    CHECK(count(st, &f, 2, "e") == 2, "limit");
    f.state = "running";
    CHECK(count(st, &f, 100, "b") == 1, "state");
    f = (struct store_migration_filter){.instance = "vm1"};
    CHECK(count(st, &f, 100, "b") == 2, "instance");
    f = (struct store_migration_filter){.host = "h2"};
    CHECK(count(st, &f, 100, "c") == 3, "host as source or destination");
    f = (struct store_migration_filter){.project = "p2"};
    CHECK(count(st, &f, 100, "d") == 2, "project");
    f = (struct store_migration_filter){.active_only = 1};
    CHECK(count(st, &f, 100, "e") == 3, "active only (unknown counts as active)");
    f = (struct store_migration_filter){.project = "p1", .active_only = 1, .host = "h1"};
    CHECK(count(st, &f, 100, "e") == 2, "combined");
    f = (struct store_migration_filter){.state = ""};
    CHECK(count(st, &f, 100, NULL) == 5, "empty filter means any");
    store_close(st);
    /* active_only is exactly "not succeeded, failed or cancelled" for every
       state ferryd stores (the state machine's, queued, unknown) */
    st = storefix_open(dir, "l2.db");
    REQUIRE(st, "no store");
    static const char *const extra[] = {"queued", "unknown"};
    char id[16];
    size_t want = 0, k = 0;
    for (int i = 0; i < MIGSTATE__COUNT + 2; i++) {
        const char *name = i < MIGSTATE__COUNT ? migstate_name((enum migstate)i)
                                               : extra[i - MIGSTATE__COUNT];
        bool term = !strcmp(name, "succeeded") || !strcmp(name, "failed") ||
                    !strcmp(name, "cancelled");
        want += !term;
        snprintf(id, sizeof(id), "m%02d", i);
        struct store_migration r = mk(id, "vm", "h1", "h2", name, "p1", 10 + i);
        REQUIRE(store_migration_insert(st, &r, &e) == 0, "insert %s: %s", name, e.msg);
        k++;
    }
    f = (struct store_migration_filter){.active_only = 1};
    CHECK(count(st, &f, 100, NULL) == want, "active over every state: want %zu of %zu", want, k);
    f = (struct store_migration_filter){.active_only = 1, .host = "h2"};
    CHECK(count(st, &f, 100, NULL) == want, "active to h2: want %zu", want);
    store_close(st);
}

/* The key-column list matches the full list row for row (filters and the
 * cursor included); rev starts at 0 and each update raises it by one; the
 * distinct projects come in byte order, capped with "complete" false. */
static void t_keys(void)
{
    struct store *st = storefix_open(dir, "k.db");
    REQUIRE(st, "no store");
    struct ferr e = {0};
    char id[16], proj[16];
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "m%02d", i);
        snprintf(proj, sizeof(proj), "p%d", i % 4);
        struct store_migration m = mk(id, "vm", i % 2 ? "h1" : "h2", "h3", "running", proj,
                                      100 + i / 3); /* ties broken by id */
        REQUIRE(store_migration_insert(st, &m, &e) == 0, "insert: %s", e.msg);
    }
    struct store_migration_filter fs[] = {
        {0},
        {.project = "p2"},
        {.host = "h1"},
        {.after_id = "m17", .after_created_ms = 105},
        {.project = "p1", .after_id = "m13", .after_created_ms = 104},
    };
    for (size_t k = 0; k < sizeof(fs) / sizeof(fs[0]); k++) {
        struct store_migration *m = NULL;
        size_t n = 0, nk = 0;
        struct store_migration_key keys[40];
        REQUIRE(store_migration_list(st, &fs[k], 40, &m, &n, &e) == 0, "list: %s", e.msg);
        CHECK(store_migration_list_keys(st, &fs[k], 40, 0, keys, &nk, &e) == 0, "keys: %s", e.msg);
        CHECK(nk == n && n > 0, "filter %zu: %zu keys, %zu rows", k, nk, n);
        for (size_t i = 0; i < n && i < nk; i++)
            CHECK(strcmp(keys[i].id, m[i].id) == 0 && strcmp(keys[i].project, m[i].project) == 0 &&
                      strcmp(keys[i].source, m[i].source) == 0 &&
                      strcmp(keys[i].instance, m[i].instance) == 0 &&
                      keys[i].created_ms == m[i].created_ms && keys[i].rev == m[i].rev &&
                      m[i].rev == 0,
                  "filter %zu row %zu: %s vs %s", k, i, keys[i].id, m[i].id);
        struct store_migration_key slim[40];
        size_t ns = 0;
        CHECK(store_migration_list_keys(st, &fs[k], 40, 1, slim, &ns, &e) == 0, "slim: %s",
              e.msg);
        CHECK(ns == n, "filter %zu: %zu slim keys, %zu rows", k, ns, n);
        for (size_t i = 0; i < n && i < ns; i++)
            CHECK(strcmp(slim[i].id, m[i].id) == 0 && strcmp(slim[i].project, m[i].project) == 0 &&
                      !slim[i].instance[0] && !slim[i].source[0] &&
                      slim[i].created_ms == m[i].created_ms && slim[i].rev == m[i].rev,
                  "filter %zu slim row %zu: %s vs %s", k, i, slim[i].id, m[i].id);
        store_migrations_free(m, n);
    }
    struct store_migration_key one[3];
    size_t nk = 0;
    CHECK(store_migration_list_keys(st, NULL, 3, 0, one, &nk, &e) == 0 && nk == 3 &&
              strcmp(one[0].id, "m29") == 0,
          "limit 3: %zu, first %s", nk, nk ? one[0].id : "-");
    for (int u = 1; u <= 3; u++) {
        struct store_migration m;
        REQUIRE(store_migration_get(st, "m29", &m, &e) == 0, "get: %s", e.msg);
        m.progress_pct = u;
        int rc = store_migration_update(st, &m, &e);
        store_migration_clear(&m);
        REQUIRE(rc == 0, "update: %s", e.msg);
        REQUIRE(store_migration_list_keys(st, NULL, 1, 1, one, &nk, &e) == 0, "keys: %s", e.msg);
        CHECK(one[0].rev == u, "rev %lld after %d updates", (long long)one[0].rev, u);
    }
    char projects[8][STORE_IDENT_MAX + 1];
    size_t np = 0;
    int complete = 0;
    CHECK(store_migration_projects(st, 8, projects, &np, &complete, &e) == 0 && np == 4 &&
              complete && strcmp(projects[0], "p0") == 0 && strcmp(projects[3], "p3") == 0,
          "projects: %zu complete %d", np, complete);
    CHECK(store_migration_projects(st, 3, projects, &np, &complete, &e) == 0 && np == 3 &&
              !complete,
          "capped projects: %zu complete %d", np, complete);
    CHECK(store_migration_projects(st, 4, projects, &np, &complete, &e) == 0 && np == 4 &&
              complete,
          "exactly 4: %zu complete %d", np, complete);
    store_close(st);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ferry-migstore-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    test_run("store: migration update replaces mutable columns, keeps identity, refuses bad input",
             t_update);
    test_run("store: migration list filters (state, instance, host, project, active), newest first",
             t_list);
    test_run("store: key-column list equals the full list; rev per update; distinct projects",
             t_keys);
    int rc = test_done();
    test_rm_rf(dir);
    return rc;
}

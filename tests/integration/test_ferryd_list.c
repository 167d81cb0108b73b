/* Integration: GET /v1/migrations (paged list) and GET /v1/migrations/ID of
 * the real ferryd over real HTTP, on a store filled through the store API
 * (records of three projects), while a second store connection changes
 * records the way progress does. ferryd renders records from a cache
 * validated by each row's revision (docs/FERRYD.md, "Read cache"); this
 * proves the cache never changes an answer:
 *   - pages of every size walk every record once, newest first, and "next"
 *     is null only at the end;
 *   - a record changed by store_migration_update (another connection) or by
 *     a plain SQL UPDATE (the v8 trigger raises its revision) appears
 *     changed in the very next list and show, while others stay as they were;
 *   - after an admin's reads cached every record with host names, a project
 *     member still sees only their project's records, without "source" and
 *     "destination", gets 404 for other projects' records, cannot page from
 *     or filter by what they may not see; and the admin still gets the hosts.
 *
 * ferryd runs through tests/lib/ferryd (own process group, killed when the
 * test ends). */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/ferryd.h"
#include "../lib/storefix.h"
#include "../lib/test.h"
#include "coord/store.h"

#define RECORDS 120           /* migration records stored */
#define PROJECTS 3            /* p0, p1, p2: record i belongs to p(i % 3) */
#define ID_PREFIX "mig-list-" /* record i's id: the prefix and i in 3 digits */
#define T0_MS 1767225600000LL /* created time of record 0, ms since epoch */

static struct ferryd D;
static char db[LAB_PATH_MAX + 32];
static char member[FERRYD_T_TOKEN_MAX], stranger[FERRYD_T_TOKEN_MAX];
static const char *admin = D.admin;
static int up;

static int api(const char *method, const char *path, const char *token, json_t **out)
{
    return ferryd_api(&D, method, path, token, NULL, out);
}

static void rec_id(char *out, size_t n, int i)
{
    snprintf(out, n, "%s%03d", ID_PREFIX, i);
}

/* Two records per created time: the id orders them (descending). */
static int fill_store(void)
{
    const struct storefix_recs r = {.id_prefix = ID_PREFIX, .n = RECORDS, .projects = PROJECTS,
                                    .failed_every = 2, .per_second = 2, .t0_ms = T0_MS};
    return storefix_fill(db, &r);
}

/* Index of record id "mig-list-NNN", or -1. */
static int index_of(const char *id)
{
    int i;
    char tail;
    if (!id || sscanf(id, "mig-list-%3d%c", &i, &tail) != 1 || i < 0 || i >= RECORDS)
        return -1;
    return i;
}

/* Walks every page of GET /v1/migrations?limit=LIMIT{extra} as token;
 * seen[i] counts record i; *hosts_shown counts records carrying "source".
 * Checks the order (newest first) and that only the last page has a null
 * "next". Returns the number of records, or -1. */
static int walk(const char *token, int limit, const char *extra, int seen[RECORDS],
                int *hosts_shown)
{
    char after[80] = "";
    int total = 0, prev = RECORDS, pages = 0;
    *hosts_shown = 0;
    memset(seen, 0, sizeof(int) * RECORDS);
    for (;;) {
        char path[256];
        snprintf(path, sizeof(path), "/v1/migrations?limit=%d%s%s%s", limit, extra,
                 after[0] ? "&after=" : "", after);
        json_t *o = NULL;
        int st = api("GET", path, token, &o);
        if (st != 200 || ++pages > RECORDS + 2) {
            fprintf(stderr, "GET %s: %d\n", path, st);
            json_decref(o);
            return -1;
        }
        json_t *a = json_object_get(o, "migrations"), *r;
        size_t i;
        json_array_foreach(a, i, r)
        {
            int k = index_of(json_string_value(json_object_get(r, "id")));
            if (k < 0 || k >= prev) {
                fprintf(stderr, "out of order: %d after %d\n", k, prev);
                json_decref(o);
                return -1;
            }
            prev = k;
            seen[k]++;
            total++;
            if (json_object_get(r, "source") || json_object_get(r, "destination"))
                (*hosts_shown)++;
        }
        const char *next = json_string_value(json_object_get(o, "next"));
        if (!next) {
            json_decref(o);
            return total;
        }
        if (json_array_size(a) != (size_t)limit) {
            fprintf(stderr, "short page (%zu) with next %s\n", json_array_size(a), next);
            json_decref(o);
            return -1;
        }
        snprintf(after, sizeof(after), "%s", next);
        json_decref(o);
    }
}

static void t_pages(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", D.log_path);
    static const int sizes[] = {1, 7, 50, 120, 1000};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        int seen[RECORDS], hosts;
        for (int pass = 0; pass < 2; pass++) { /* the second pass reads the cache */
            int n = walk(admin, sizes[s], "", seen, &hosts);
            CHECK(n == RECORDS, "limit %d pass %d: %d records", sizes[s], pass, n);
            int once = 0;
            for (int i = 0; i < RECORDS; i++)
                once += seen[i] == 1;
            CHECK(once == RECORDS, "limit %d: %d of %d records seen exactly once", sizes[s], once,
                  RECORDS);
            CHECK(hosts == RECORDS, "limit %d: admin saw hosts on %d records", sizes[s], hosts);
        }
    }
    json_t *o = NULL;
    REQUIRE(api("GET", "/v1/migrations?limit=5&project=p1", admin, &o) == 200, "project filter");
    json_t *r;
    size_t i;
    int ok = 0;
    json_array_foreach(json_object_get(o, "migrations"), i, r) ok +=
        strcmp(json_string_value(json_object_get(r, "project_id")), "p1") == 0;
    CHECK(ok == 5, "project filter: %d of 5 records of p1", ok);
    json_decref(o);
}

/* Reads record id as token: show's pct and phase, and the same from the
 * first list page that holds it (limit 1000). Returns 0 when both agree. */
static int read_both(const char *token, const char *id, double *pct, char *phase, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    json_t *o = NULL;
    if (api("GET", path, token, &o) != 200) {
        json_decref(o);
        return -1;
    }
    *pct = json_number_value(json_object_get(json_object_get(o, "progress"), "pct"));
    snprintf(phase, n, "%s", json_string_value(json_object_get(o, "phase")));
    char *shown = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    int rc = -1;
    if (api("GET", "/v1/migrations?limit=1000", token, &o) == 200) {
        json_t *r;
        size_t i;
        json_array_foreach(json_object_get(o, "migrations"), i, r)
        {
            if (strcmp(json_string_value(json_object_get(r, "id")), id) != 0)
                continue;
            char *listed = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
            rc = listed && shown && strcmp(listed, shown) == 0 ? 0 : -1;
            if (rc)
                fprintf(stderr, "show and list differ:\n%s\n%s\n", shown, listed);
            free(listed);
        }
    }
    json_decref(o);
    free(shown);
    return rc;
}

static void t_changes(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", D.log_path);
    char id[32], other[32], phase[64];
    rec_id(id, sizeof(id), 42);
    rec_id(other, sizeof(other), 43);
    double pct = 0, opct = 0;
    char ophase[64];
    REQUIRE(read_both(admin, id, &pct, phase, sizeof(phase)) == 0, "first read");
    REQUIRE(read_both(admin, other, &opct, ophase, sizeof(ophase)) == 0, "first read other");
    CHECK(pct == 100.0 && strcmp(phase, "completed") == 0, "before: %.1f %s", pct, phase);

    /* Another connection changes record 42 the way progress ingestion does. */
    struct store *st = NULL;
    struct ferr e = {0};
    REQUIRE(store_open(db, &st, &e) == 0, "second connection: %s", e.msg);
    for (int step = 1; step <= 3; step++) {
        struct store_migration m;
        REQUIRE(store_migration_get(st, id, &m, &e) == 0, "get: %s", e.msg);
        int64_t rev = m.rev;
        m.progress_pct = 10.0 * step;
        snprintf(m.phase, sizeof(m.phase), "step-%d", step);
        m.updated_ms += 1; /* well within one ms of the last change: rev tells them apart */
        int rc = store_migration_update(st, &m, &e);
        store_migration_clear(&m);
        REQUIRE(rc == 0, "update: %s", e.msg);
        REQUIRE(store_migration_get(st, id, &m, &e) == 0, "get: %s", e.msg);
        CHECK(m.rev == rev + 1, "rev %lld after %lld", (long long)m.rev, (long long)rev);
        store_migration_clear(&m);
        char want[16];
        snprintf(want, sizeof(want), "step-%d", step);
        CHECK(read_both(admin, id, &pct, phase, sizeof(phase)) == 0, "read %d", step);
        CHECK(pct == 10.0 * step && strcmp(phase, want) == 0, "after update %d: %.1f %s", step, pct,
              phase);
    }
    store_close(st);

    /* A plain SQL UPDATE that does not touch rev: the v8 trigger raises it. */
    sqlite3 *raw = NULL;
    REQUIRE(sqlite3_open(db, &raw) == SQLITE_OK, "sqlite3_open");
    sqlite3_busy_timeout(raw, 5000);
    char sql[160];
    snprintf(sql, sizeof(sql), "UPDATE migrations SET phase = 'by-sql' WHERE id = '%s'", id);
    CHECK(sqlite3_exec(raw, sql, NULL, NULL, NULL) == SQLITE_OK, "raw update: %s",
          sqlite3_errmsg(raw));
    sqlite3_close(raw);
    CHECK(read_both(admin, id, &pct, phase, sizeof(phase)) == 0 && strcmp(phase, "by-sql") == 0,
          "after the SQL update: %s", phase);

    double opct2 = 0;
    char ophase2[64];
    CHECK(read_both(admin, other, &opct2, ophase2, sizeof(ophase2)) == 0 && opct2 == opct &&
              strcmp(ophase2, ophase) == 0,
          "unchanged record changed: %.1f %s", opct2, ophase2);
}

static void t_policy(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", D.log_path);
    int seen[RECORDS], hosts;
    /* The admin's reads put every record, with host names, in the cache. */
    REQUIRE(walk(admin, 1000, "", seen, &hosts) == RECORDS && hosts == RECORDS, "admin walk");
    static const int sizes[] = {1, 9, 50};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        int n = walk(member, sizes[s], "", seen, &hosts);
        int own = 0, foreign = 0;
        for (int i = 0; i < RECORDS; i++) {
            if (i % PROJECTS == 1)
                own += seen[i] == 1;
            else
                foreign += seen[i];
        }
        CHECK(n == RECORDS / PROJECTS && own == RECORDS / PROJECTS && foreign == 0,
              "member, limit %d: %d records, %d own once, %d foreign", sizes[s], n, own, foreign);
        CHECK(hosts == 0, "member, limit %d: host names on %d records", sizes[s], hosts);
    }
    for (int i = 0; i < 6; i++) {
        char path[128], id[32];
        rec_id(id, sizeof(id), i);
        snprintf(path, sizeof(path), "/v1/migrations/%s", id);
        json_t *o = NULL;
        int st = api("GET", path, member, &o);
        if (i % PROJECTS == 1)
            CHECK(st == 200 && !json_object_get(o, "source") &&
                      !json_object_get(o, "destination") && json_object_get(o, "progress"),
                  "member shows own %s: %d", id, st);
        else
            CHECK(st == 404, "member shows foreign %s: %d", id, st);
        json_decref(o);
        /* Continuing after a record one may not see is refused like a
         * missing one. */
        snprintf(path, sizeof(path), "/v1/migrations?after=%s", id);
        st = api("GET", path, member, NULL);
        CHECK(st == (i % PROJECTS == 1 ? 200 : 400), "member after %s: %d", id, st);
    }
    /* Filtering by a host the member may not see yields nothing. */
    json_t *o = NULL;
    CHECK(api("GET", "/v1/migrations?host=host-1", member, &o) == 200 &&
              json_array_size(json_object_get(o, "migrations")) == 0,
          "member filtered by host got records");
    json_decref(o);
    /* A member of a project without records: every page is empty. */
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        CHECK(walk(stranger, sizes[s], "", seen, &hosts) == 0, "p9 member saw records (limit %d)",
              sizes[s]);
    }
    /* And the admin still gets the hosts after the member's reads. */
    CHECK(walk(admin, 50, "", seen, &hosts) == RECORDS && hosts == RECORDS,
          "admin after member: %d with hosts", hosts);
}

/* A policy file whose list rule reads the host (per-record decisions: no
 * reuse per project, no narrowing, instance and source read with the keys):
 * a member of p1 sees the p1 records whose source is host-1, and hosts only
 * on those (show_hosts granted per host). Ferryd restarts with the file, so
 * its cache starts empty; the admin reads first to fill it. */
static void t_host_policy(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", D.log_path);
    char path[LAB_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/policy.json", D.dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f, "cannot write %s", path);
    fprintf(f, "{\"migration:list\": \"rule:admin or (rule:owner and 'host-1':%%(target.host)s)\","
               " \"migration:show_hosts\": \"rule:admin or 'host-1':%%(target.host)s\"}\n");
    fclose(f);
    REQUIRE(ferryd_write_conf(&D, "policy_file = %s\n", path) == 0 && ferryd_restart(&D) == 0,
            "restart with the policy file");
    int seen[RECORDS], hosts;
    REQUIRE(walk(admin, 1000, "", seen, &hosts) == RECORDS && hosts == RECORDS, "admin walk");
    /* Record i: project p(i % 3), source host-(i % 4). */
    int want = 0;
    for (int i = 0; i < RECORDS; i++)
        want += i % PROJECTS == 1 && i % 4 == 1;
    static const int sizes[] = {1, 4, 50};
    for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        int n = walk(member, sizes[z], "", seen, &hosts);
        int good = 0, bad = 0;
        for (int i = 0; i < RECORDS; i++) {
            if (i % PROJECTS == 1 && i % 4 == 1)
                good += seen[i] == 1;
            else
                bad += seen[i];
        }
        CHECK(n == want && good == want && bad == 0 && hosts == want,
              "limit %d: %d records (%d wanted once, %d others), hosts on %d", sizes[z], n, good,
              bad, hosts);
    }
    /* Show follows the same rules for one record of each kind. */
    json_t *o = NULL;
    char id[32], p[96];
    rec_id(id, sizeof(id), 13); /* p1, host-1 */
    snprintf(p, sizeof(p), "/v1/migrations/%s", id);
    CHECK(api("GET", p, member, &o) == 200 && json_object_get(o, "source"), "show own host-1");
    json_decref(o);
    rec_id(id, sizeof(id), 10); /* p1, host-2: listed no more, shown (show is owner's) */
    snprintf(p, sizeof(p), "/v1/migrations/%s", id);
    o = NULL;
    CHECK(api("GET", p, member, &o) == 200 && !json_object_get(o, "source"),
          "show own host-2 without hosts");
    json_decref(o);
    REQUIRE(ferryd_write_conf(&D, NULL) == 0 && ferryd_restart(&D) == 0, "restart without");
}

int main(void)
{
    struct ferr e = {0};
    if (ferryd_init(&D, NULL, &e) != 0) {
        fprintf(stderr, "ferryd_init: %s\n", e.msg);
        return 1;
    }
    snprintf(db, sizeof(db), "%s/ferryd.db", D.dir);
    up = ferryd_write_conf(&D, NULL) == 0 && fill_store() == 0 &&
         ferryd_add_token(&D, "alice", "p1", "member", member, sizeof(member)) == 0 &&
         ferryd_add_token(&D, "bob", "p9", "member", stranger, sizeof(stranger)) == 0 &&
         ferryd_start(&D) == 0;
    test_run("ferryd list: every page size walks every record once, newest first", t_pages);
    test_run("ferryd list: a changed record (store update, plain SQL) is changed in the next "
             "list and show; others not",
             t_changes);
    test_run("ferryd list: after the admin's cached reads a member sees only their project, no "
             "hosts, 404 for others",
             t_policy);
    test_run("ferryd list: a policy reading the host is decided per record (member: own "
             "project on host-1 only, hosts there)",
             t_host_policy);
    int rc = test_done();
    if (rc != 0)
        ferryd_tail_log(&D, 30);
    ferryd_fini(&D, rc == 0);
    return rc;
}

/* Unit: the coordinator's store (src/coord/store*.c) on real SQLite files
 * in a temp dir. Proves: the schema is created at the code's version in
 * WAL mode; reopening changes nothing; a v1 store written by an older
 * ferryd (the frozen v1 DDL below) is migrated forward keeping its rows; a
 * store newer than the code is refused and left untouched; a state change
 * and its event commit or vanish together and event seqs have no gaps;
 * every text field has a cap and bad input names its field; a reader
 * handle sees the writer's commits, cannot write, and its deferred audit
 * records — deferred from several threads, five times the queue's size,
 * while the writer flushes — all reach the writer's table exactly once
 * (the readers wait for room); with nobody flushing, a reader's record is
 * dropped and counted after its wait. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/eventfd.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/test.h"
#include "coord/auth.h"
#include "coord/store.h"
#include "util/xalloc.h"

static char dir[64];
static int nfile;

static char *new_path(void)
{
    return xasprintf("%s/s%d.db", dir, nfile++);
}

/* Runs sql on path with plain SQLite; returns the first column of the
 * first row as a new string ("" when none). */
static char *raw(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char *out = xstrdup("");
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return out;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
            free(out);
            out = xstrdup((const char *)sqlite3_column_text(st, 0));
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out;
}

static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static struct store_host host(const char *name, const char *state)
{
    struct store_host h = {0};
    snprintf(h.name, sizeof(h.name), "%s", name);
    snprintf(h.url, sizeof(h.url), "http://127.0.1.1:7001");
    h.ram_mib = 4096;
    h.vcpus = 4;
    snprintf(h.state, sizeof(h.state), "%s", state);
    h.last_heartbeat_ms = 1000;
    return h;
}

static struct store_event event(const char *type, const char *subject, const char *payload)
{
    struct store_event ev = {.time_ms = 2000, .version = 1};
    snprintf(ev.type, sizeof(ev.type), "%s", type);
    snprintf(ev.subject, sizeof(ev.subject), "%s", subject);
    ev.payload = (char *)payload;
    return ev;
}

static void t_create(void)
{
    char *p = new_path();
    struct store *st = NULL;
    struct ferr e = {0};
    int v = 0;
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    CHECK(store_schema_version(st, &v, &e) == 0 && v == STORE_SCHEMA_VERSION, "version %d", v);
    store_close(st);
    char *mode = raw(p, "PRAGMA journal_mode");
    CHECK(strcmp(mode, "wal") == 0, "journal_mode %s", mode);
    char *tables = raw(p, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
                          "WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name)");
    CHECK(strcmp(tables, "audit,consents,cursors,dead_letters,deferrals,events,hosts,instances,migrations,plan_hosts,plans,schema_version,tokens") == 0,
          "tables %s", tables);
    free(mode);
    free(tables);
    free(p);
}

static void t_reopen(void)
{
    char *p = new_path();
    struct store *st = NULL;
    struct ferr e = {0};
    struct store_host h = host("h1", "up");
    struct store_event ev = event("host.registered", "host/h1", "{\"a\":1}");
    int64_t seq = 0;
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    REQUIRE(store_host_register(st, &h, NULL, 0, NULL, &e) == 0, "register: %s", e.msg);
    REQUIRE(store_event_append(st, &ev, &seq, &e) == 0 && seq == 1, "append: %s", e.msg);
    store_close(st);
    for (int i = 0; i < 2; i++) {
        REQUIRE(store_open(p, &st, &e) == 0, "reopen %d: %s", i, e.msg);
        struct store_host got;
        int64_t last = 0;
        CHECK(store_host_get(st, "h1", &got, &e) == 0 && got.ram_mib == 4096, "host lost");
        CHECK(store_event_last_seq(st, &last, &e) == 0 && last == 1, "last seq %lld",
              (long long)last);
        store_close(st);
    }
    char *rows = raw(p, "SELECT count(*) || ':' || max(version) FROM schema_version");
    char want[16];
    snprintf(want, sizeof(want), "1:%d", STORE_SCHEMA_VERSION);
    CHECK(strcmp(rows, want) == 0, "schema_version rows:version = %s", rows);
    free(rows);
    free(p);
}

/* The v1 schema exactly as ferryd v1 created it (frozen). */
static const char V1_DDL[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version (version) VALUES (1);"
    "CREATE TABLE hosts (name TEXT PRIMARY KEY, url TEXT NOT NULL,"
    " ram_mib INTEGER NOT NULL, vcpus INTEGER NOT NULL, state TEXT NOT NULL,"
    " last_heartbeat_ms INTEGER NOT NULL, registered_ms INTEGER NOT NULL);"
    "CREATE TABLE instances (name TEXT PRIMARY KEY,"
    " host TEXT NOT NULL REFERENCES hosts(name), project_id TEXT NOT NULL,"
    " memory_mib INTEGER NOT NULL, vcpus INTEGER NOT NULL);"
    "CREATE TABLE tokens (hash TEXT PRIMARY KEY, user TEXT NOT NULL,"
    " project TEXT NOT NULL, roles TEXT NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL, subject TEXT NOT NULL, payload TEXT NOT NULL,"
    " version INTEGER NOT NULL);"
    "INSERT INTO hosts VALUES ('old1', 'http://127.0.1.9:7001', 2048, 2, 'up', 5, 5);"
    "INSERT INTO instances VALUES ('g9', 'old1', 'p9', 256, 1);"
    "INSERT INTO events (type, time_ms, subject, payload, version)"
    " VALUES ('host.registered', 5, 'host/old1', '{}', 1);";

static void t_migrate_from_v1(void)
{
    char *p = new_path();
    REQUIRE(raw_exec(p, V1_DDL) == 0, "cannot write the v1 fixture");
    struct store *st = NULL;
    struct ferr e = {0};
    int v = 0;
    REQUIRE(store_open(p, &st, &e) == 0, "open v1: %s", e.msg);
    CHECK(store_schema_version(st, &v, &e) == 0 && v == STORE_SCHEMA_VERSION, "version after migration %d", v);
    struct store_host h;
    CHECK(store_host_get(st, "old1", &h, &e) == 0 && h.vcpus == 2, "v1 host lost: %s", e.msg);
    struct store_instance *in = NULL;
    size_t n = 0;
    CHECK(store_instance_list(st, "old1", &in, &n, &e) == 0 && n == 1 &&
              strcmp(in[0].project_id, "p9") == 0,
          "v1 instance lost");
    free(in);
    /* v2 tables work, and the event seq continues from v1's. */
    struct store_migration m = {0}, got = {0};
    snprintf(m.id, sizeof(m.id), "m1");
    snprintf(m.instance, sizeof(m.instance), "g9");
    snprintf(m.source, sizeof(m.source), "old1");
    snprintf(m.state, sizeof(m.state), "queued");
    snprintf(m.user, sizeof(m.user), "alice");
    snprintf(m.project, sizeof(m.project), "p9");
    m.limits_json = "{\"downtime_ms\":300}";
    m.eta_ms = m.eta_low_ms = m.eta_high_ms = m.downtime_ms = -1;
    CHECK(store_migration_insert(st, &m, &e) == 0, "migration insert: %s", e.msg);
    CHECK(store_migration_get(st, "m1", &got, &e) == 0 && got.limits_json &&
              strcmp(got.limits_json, "{\"downtime_ms\":300}") == 0 && got.policy_json == NULL &&
              got.eta_ms == -1,
          "migration round trip");
    store_migration_clear(&got);
    struct store_audit a = {.time_ms = 1};
    snprintf(a.subject, sizeof(a.subject), "alice@p9");
    snprintf(a.action, sizeof(a.action), "migration:create");
    snprintf(a.decision, sizeof(a.decision), "allow");
    int64_t cnt = 0;
    CHECK(store_audit_append(st, &a, &e) == 0 && store_audit_count(st, &cnt, &e) == 0 && cnt == 1,
          "audit: %s", e.msg);
    struct store_event ev = event("host.down", "host/old1", NULL);
    int64_t seq = 0;
    CHECK(store_event_append(st, &ev, &seq, &e) == 0 && seq == 2, "seq after v1: %lld",
          (long long)seq);
    store_close(st);
    free(p);
}

static void t_newer_refused(void)
{
    char *p = new_path();
    REQUIRE(raw_exec(p, "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                        "INSERT INTO schema_version VALUES (999);"
                        "CREATE TABLE future (x);") == 0,
            "fixture");
    struct store *st = NULL;
    struct ferr e = {0};
    int rc = store_open(p, &st, &e);
    CHECK(rc == FERR_STATE && st == NULL, "rc %d", rc);
    CHECK(strstr(e.msg, "newer") != NULL, "message: %s", e.msg);
    char *v = raw(p, "SELECT version FROM schema_version");
    char *mode = raw(p, "PRAGMA journal_mode");
    char *tables = raw(p, "SELECT count(*) FROM sqlite_master WHERE type='table'");
    CHECK(strcmp(v, "999") == 0 && strcmp(mode, "delete") == 0 && strcmp(tables, "2") == 0,
          "store touched: version %s mode %s tables %s", v, mode, tables);
    free(v);
    free(mode);
    free(tables);
    free(p);
}

/* Labels come with each registration; the operator's cordon and the plan's
 * hold are set apart and survive re-registration; unknown host refused. */
static void t_cordon_labels(void)
{
    char *p = new_path();
    struct store *st = NULL;
    struct ferr e = {0};
    struct store_host h = host("h1", "up"), got;
    snprintf(h.labels, sizeof(h.labels), "rack=r1,zone=a");
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    REQUIRE(store_host_register(st, &h, NULL, 0, NULL, &e) == 0, "register: %s", e.msg);
    CHECK(store_host_set_cordon(st, "h1", "admin: disk", NULL, &e) == 0, "cordon: %s", e.msg);
    CHECK(store_host_set_cordon(st, "h1", NULL, "plan-x", &e) == 0, "hold: %s", e.msg);
    snprintf(h.labels, sizeof(h.labels), "zone=b");
    REQUIRE(store_host_register(st, &h, NULL, 0, NULL, &e) == 0, "register again: %s", e.msg);
    CHECK(store_host_get(st, "h1", &got, &e) == 0 && !strcmp(got.labels, "zone=b") &&
              !strcmp(got.cordon, "admin: disk") && !strcmp(got.maint, "plan-x"),
          "labels '%s' cordon '%s' maint '%s'", got.labels, got.cordon, got.maint);
    CHECK(store_host_set_cordon(st, "h1", "", "", &e) == 0, "lift: %s", e.msg);
    CHECK(store_host_get(st, "h1", &got, &e) == 0 && !got.cordon[0] && !got.maint[0],
          "not lifted: '%s' '%s'", got.cordon, got.maint);
    CHECK(store_host_set_cordon(st, "nope", "x", NULL, &e) == FERR_NOTFOUND, "unknown host");
    /* a succeeded migration moves the instance's row at once */
    struct store_host h2 = host("h2", "up");
    struct store_instance in = {.memory_mib = 128, .vcpus = 1};
    snprintf(in.name, sizeof(in.name), "g1");
    snprintf(in.project_id, sizeof(in.project_id), "p1");
    REQUIRE(store_host_register(st, &h, &in, 1, NULL, &e) == 0, "register g1: %s", e.msg);
    REQUIRE(store_host_register(st, &h2, NULL, 0, NULL, &e) == 0, "register h2: %s", e.msg);
    CHECK(store_instance_move(st, "g1", "h2", &e) == 0, "move: %s", e.msg);
    struct store_instance *il = NULL;
    size_t ni = 0;
    CHECK(store_instance_list(st, "h2", &il, &ni, &e) == 0 && ni == 1 && !strcmp(il[0].name, "g1"),
          "g1 not on h2 (%zu)", ni);
    free(il);
    /* one instance by name, wherever it runs; the per-host list is exact */
    struct store_instance one;
    CHECK(store_instance_get(st, "g1", &one, &e) == 0 && !strcmp(one.host, "h2") &&
              one.memory_mib == 128 && one.vcpus == 1 && !strcmp(one.project_id, "p1"),
          "get g1: %s host %s", e.msg, one.host);
    CHECK(store_instance_get(st, "nope", &one, &e) == FERR_NOTFOUND, "got an unknown instance");
    CHECK(store_instance_get(st, "../x", &one, &e) == FERR_INVAL, "got a bad name");
    il = NULL;
    CHECK(store_instance_list(st, "h1", &il, &ni, &e) == 0 && ni == 0, "h1 lists %zu", ni);
    free(il);
    il = NULL;
    CHECK(store_instance_list(st, NULL, &il, &ni, &e) == 0 && ni == 1, "all lists %zu", ni);
    free(il);
    CHECK(store_instance_move(st, "g1", "nohost", &e) == FERR_NOTFOUND, "moved to an unknown host");
    CHECK(store_instance_move(st, "nope", "h2", &e) == FERR_NOTFOUND, "moved an unknown instance");
    char big[STORE_CORDON_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK(store_host_set_cordon(st, "h1", big, NULL, &e) == FERR_TOOBIG, "oversize reason");
    CHECK(store_host_get(st, "h1", &got, &e) == 0 && !got.cordon[0], "oversize reason stored");
    store_close(st);
    unlink(p);
    free(p);
}

static void t_atomic_event(void)
{
    char *p = new_path();
    struct store *st = NULL;
    struct ferr e = {0};
    struct store_host h = host("h1", "up"), got;
    int64_t seq = 0, last = 0;
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    REQUIRE(store_host_register(st, &h, NULL, 0, NULL, &e) == 0, "register: %s", e.msg);
    struct store_event reg = event("host.registered", "host/h1", NULL);
    REQUIRE(store_event_append(st, &reg, &seq, &e) == 0 && seq == 1, "first event");
    /* Rolled back: neither the state change nor its event remain. */
    struct store_event down = event("host.down", "host/h1", "{\"host\":\"h1\"}");
    REQUIRE(store_tx_begin(st, &e) == 0, "begin: %s", e.msg);
    CHECK(store_tx_begin(st, &e) == FERR_STATE, "nested begin allowed");
    CHECK(store_host_update(st, "h1", "down", -1, &e) == 0, "update: %s", e.msg);
    CHECK(store_event_append(st, &down, &seq, &e) == 0 && seq == 2, "append in tx");
    store_tx_rollback(st);
    CHECK(store_host_get(st, "h1", &got, &e) == 0 && strcmp(got.state, "up") == 0,
          "state change survived the rollback: %s", got.state);
    CHECK(store_event_last_seq(st, &last, &e) == 0 && last == 1,
          "event survived the rollback: last %lld", (long long)last);
    CHECK(store_tx_commit(st, &e) == FERR_STATE, "commit without a transaction");
    /* Committed: both, and the seq continues without a gap. */
    REQUIRE(store_tx_begin(st, &e) == 0, "begin: %s", e.msg);
    CHECK(store_host_update(st, "h1", "down", -1, &e) == 0, "update: %s", e.msg);
    CHECK(store_event_append(st, &down, &seq, &e) == 0 && seq == 2, "seq after rollback %lld",
          (long long)seq);
    CHECK(store_tx_commit(st, &e) == 0, "commit: %s", e.msg);
    store_close(st);
    REQUIRE(store_open(p, &st, &e) == 0, "reopen: %s", e.msg);
    CHECK(store_host_get(st, "h1", &got, &e) == 0 && strcmp(got.state, "down") == 0,
          "committed state lost");
    for (int i = 0; i < 20; i++) {
        struct store_event x = event("test.tick", "test", NULL);
        REQUIRE(store_event_append(st, &x, NULL, &e) == 0, "append: %s", e.msg);
    }
    struct store_event *evs = NULL;
    size_t n = 0;
    REQUIRE(store_events_since(st, 0, 0, &evs, &n, &e) == 0, "since: %s", e.msg);
    CHECK(n == 22, "events %zu", n);
    for (size_t i = 0; i < n; i++)
        CHECK(evs[i].seq == (int64_t)i + 1, "seq[%zu] = %lld", i, (long long)evs[i].seq);
    CHECK(n >= 2 && strcmp(evs[1].payload, "{\"host\":\"h1\"}") == 0 &&
              strcmp(evs[0].payload, "{}") == 0,
          "payloads");
    store_events_free(evs, n);
    REQUIRE(store_events_since(st, 20, 5, &evs, &n, &e) == 0, "since 20: %s", e.msg);
    CHECK(n == 2 && evs[0].seq == 21, "since 20 gave %zu", n);
    store_events_free(evs, n);
    store_close(st);
    free(p);
}

/* Group commit: items of one transaction each between a savepoint and its
 * release; a failing item is taken back alone, the others commit in one
 * transaction with gapless seqs in item order; a batch rolled back leaves
 * nothing, and writing it again gives each event once. */
static void t_group_commit(void)
{
    char *p = new_path();
    struct store *st = NULL;
    struct ferr e = {0};
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    const char *names[] = {"h1", "h2", "nope", "h4", "h5"};
    for (int i = 0; i < 5; i++) {
        if (i == 2)
            continue;
        struct store_host h = host(names[i], "up");
        REQUIRE(store_host_register(st, &h, NULL, 0, NULL, &e) == 0, "register: %s", e.msg);
    }
    CHECK(store_tx_mark(st, &e) == FERR_STATE, "savepoint outside a transaction");
    /* A batch rolled back as a whole: nothing remains. */
    REQUIRE(store_tx_begin(st, &e) == 0, "begin: %s", e.msg);
    for (int i = 0; i < 2; i++) {
        char subj[32];
        snprintf(subj, sizeof(subj), "host/%s", names[i]);
        struct store_event ev = event("host.down", subj, NULL);
        CHECK(store_tx_mark(st, &e) == 0, "mark: %s", e.msg);
        CHECK(store_tx_mark(st, &e) == FERR_STATE, "nested savepoint allowed");
        CHECK(store_host_update(st, names[i], "down", -1, &e) == 0 &&
                  store_event_append(st, &ev, NULL, &e) == 0 && store_tx_release(st, &e) == 0,
              "item %d: %s", i, e.msg);
    }
    store_tx_rollback(st);
    int64_t last = -1;
    CHECK(store_event_last_seq(st, &last, &e) == 0 && last == 0, "rolled-back batch left seq %lld",
          (long long)last);
    uint64_t c0 = store_commits(st);
    /* The batch again, with item 2 failing (unknown host): taken back alone. */
    REQUIRE(store_tx_begin(st, &e) == 0, "begin: %s", e.msg);
    int failed = 0;
    for (int i = 0; i < 5; i++) {
        char subj[32];
        snprintf(subj, sizeof(subj), "host/%s", names[i]);
        struct store_event ev = event("host.down", subj, NULL);
        REQUIRE(store_tx_mark(st, &e) == 0, "mark %d: %s", i, e.msg);
        /* the event first, so the failing item has appended one */
        int rc = store_event_append(st, &ev, NULL, &e);
        if (rc == 0)
            rc = store_host_update(st, names[i], "down", -1, &e);
        if (rc) {
            failed++;
            CHECK(rc == FERR_NOTFOUND && i == 2, "item %d failed: %s", i, e.msg);
            store_tx_undo(st);
        } else {
            CHECK(store_tx_release(st, &e) == 0, "release %d: %s", i, e.msg);
        }
    }
    CHECK(store_tx_commit(st, &e) == 0, "commit: %s", e.msg);
    CHECK(failed == 1, "%d items failed", failed);
    CHECK(store_commits(st) == c0 + 1, "%llu transactions for one batch",
          (unsigned long long)(store_commits(st) - c0));
    store_close(st);
    st = NULL;
    REQUIRE(store_open(p, &st, &e) == 0, "reopen: %s", e.msg);
    struct store_event *evs = NULL;
    size_t n = 0;
    REQUIRE(store_events_since(st, 0, 0, &evs, &n, &e) == 0, "since: %s", e.msg);
    const char *want[] = {"host/h1", "host/h2", "host/h4", "host/h5"};
    CHECK(n == 4, "events %zu", n);
    for (size_t i = 0; i < n && i < 4; i++)
        CHECK(evs[i].seq == (int64_t)i + 1 && strcmp(evs[i].subject, want[i]) == 0,
              "event %zu: seq %lld %s", i, (long long)evs[i].seq, evs[i].subject);
    store_events_free(evs, n);
    struct store_host got;
    CHECK(store_host_get(st, "h4", &got, &e) == 0 && strcmp(got.state, "down") == 0,
          "h4 not committed: %s", got.state);
    /* the seq goes on without a gap after the taken-back item */
    struct store_event x = event("test.tick", "test", NULL);
    int64_t seq = 0;
    CHECK(store_event_append(st, &x, &seq, &e) == 0 && seq == 5, "next seq %lld",
          (long long)seq);
    store_close(st);
    unlink(p);
    free(p);
}

static void t_register_instances(void)
{
    char *p = new_path();
    struct store *st = NULL;
    struct ferr e = {0};
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    struct store_host a = host("a", "up"), b = host("b", "up");
    struct store_instance in[2] = {{.name = "g1", .project_id = "p1", .memory_mib = 256},
                                   {.name = "g2", .project_id = "p2", .memory_mib = 512}};
    int created = -1;
    CHECK(store_host_register(st, &a, in, 2, &created, &e) == 0 && created == 1, "a: %s", e.msg);
    CHECK(store_host_register(st, &a, in, 1, &created, &e) == 0 && created == 0, "a again: %s",
          e.msg);
    CHECK(store_host_register(st, &b, &in[0], 1, &created, &e) == 0, "b: %s", e.msg);
    struct store_instance *l = NULL;
    size_t n = 9;
    CHECK(store_instance_list(st, "a", &l, &n, &e) == 0 && n == 0, "a still has %zu", n);
    free(l);
    CHECK(store_instance_list(st, NULL, &l, &n, &e) == 0 && n == 1 && strcmp(l[0].host, "b") == 0,
          "g1 did not move to b");
    free(l);
    struct store_instance dup[2] = {{.name = "g3", .project_id = "p"},
                                    {.name = "g3", .project_id = "p"}};
    CHECK(store_host_register(st, &a, dup, 2, NULL, &e) == FERR_INVAL &&
              strcmp(e.field, "instances[1].name") == 0,
          "duplicate instance: field %s", e.field);
    store_close(st);
    free(p);
}

static void t_tokens(void)
{
    char *p = new_path();
    struct store *st = NULL;
    struct ferr e = {0};
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    char tok[AUTH_TOKEN_LEN + 1], hash[STORE_HASH_HEX + 1];
    REQUIRE(auth_token_create(st, "alice", "p1", "member,migration_canceller", 7, tok, &e) == 0,
            "create: %s", e.msg);
    CHECK(strlen(tok) == AUTH_TOKEN_LEN, "token length %zu", strlen(tok));
    char *hdr = xasprintf("Bearer %s", tok);
    struct store_token t;
    CHECK(auth_lookup(st, hdr, &t, &e) == 0 && strcmp(t.user, "alice") == 0 &&
              strcmp(t.roles, "member,migration_canceller") == 0,
          "lookup: %s", e.msg);
    free(hdr);
    CHECK(auth_lookup(st, "Bearer nope", &t, &e) == FERR_NOTFOUND, "unknown token found");
    CHECK(auth_lookup(st, NULL, &t, &e) == FERR_NOTFOUND, "no header accepted");
    char *stored = raw(p, "SELECT group_concat(hash) FROM tokens");
    CHECK(strstr(stored, tok) == NULL, "token stored in clear");
    free(stored);
    auth_hash("abc", hash);
    CHECK(strcmp(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
          "sha256(abc) = %s", hash);
    struct store_token dup = t;
    CHECK(store_token_add(st, &dup, &e) == FERR_EXISTS, "duplicate hash accepted");
    CHECK(auth_token_create(st, "bad user", "p", "x", 1, tok, &e) == FERR_INVAL &&
              strcmp(e.field, "user") == 0,
          "bad user: %s", e.field);
    CHECK(auth_token_create(st, "u", "p", "a,b c", 1, tok, &e) == FERR_INVAL &&
              strcmp(e.field, "roles") == 0,
          "bad role: %s", e.field);
    store_close(st);
    free(p);
}

#define AUDIT_THREADS 4
#define AUDIT_PER_THREAD 5000 /* 4 × 5000 > STORE_AUDIT_BUFFER: the readers must wait */
static int audit_done;        /* deferring threads finished */

static void *audit_deferrer(void *arg)
{
    struct store *rd = arg;
    struct store_audit a = {.time_ms = 1};
    snprintf(a.subject, sizeof(a.subject), "u@p");
    snprintf(a.action, sizeof(a.action), "migration:show");
    snprintf(a.decision, sizeof(a.decision), "allow");
    for (int i = 0; i < AUDIT_PER_THREAD; i++) {
        snprintf(a.target, sizeof(a.target), "migration/%p-%d", arg, i);
        if (store_audit_defer(rd, &a, NULL) != 0) {
            __atomic_add_fetch(&audit_done, 1, __ATOMIC_RELAXED);
            return arg; /* failure */
        }
    }
    __atomic_add_fetch(&audit_done, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void t_reader(void)
{
    char *p = new_path();
    struct store *st = NULL, *rd[AUDIT_THREADS] = {NULL};
    struct ferr e = {0};
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    for (int i = 0; i < AUDIT_THREADS; i++)
        REQUIRE(store_open_reader(p, st, &rd[i], &e) == 0, "reader %d: %s", i, e.msg);
    struct store_host h = host("h1", "up"), got;
    REQUIRE(store_host_register(st, &h, NULL, 0, NULL, &e) == 0, "register: %s", e.msg);
    CHECK(store_host_get(rd[0], "h1", &got, &e) == 0, "reader does not see the commit: %s", e.msg);
    struct store_host h2 = host("h2", "up");
    CHECK(store_host_register(rd[0], &h2, NULL, 0, NULL, &e) != 0, "a reader wrote");
    CHECK(store_host_get(st, "h2", &got, NULL) == FERR_NOTFOUND, "h2 stored through a reader");
    /* Four threads defer through their readers while this one flushes. */
    pthread_t th[AUDIT_THREADS];
    for (int i = 0; i < AUDIT_THREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, audit_deferrer, rd[i]) == 0, "thread %d", i);
    size_t flushed = 0, n;
    __atomic_store_n(&audit_done, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < 100000 && __atomic_load_n(&audit_done, __ATOMIC_RELAXED) < AUDIT_THREADS;
         i++) {
        CHECK(store_audit_flush(st, &n, &e) == 0, "flush: %s", e.msg);
        flushed += n;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    int failed = 0;
    for (int i = 0; i < AUDIT_THREADS; i++) {
        void *r = NULL;
        pthread_join(th[i], &r);
        failed += r != NULL;
    }
    CHECK(failed == 0, "%d threads failed to defer", failed);
    CHECK(store_audit_flush(rd[0], &n, &e) == 0 && n == 0, "a reader flushed %zu", n);
    int64_t count = 0;
    CHECK(store_audit_count(st, &count, &e) == 0 && count == AUDIT_THREADS * AUDIT_PER_THREAD,
          "audit rows %lld, want %d (flushed %zu during the deferrals)", (long long)count,
          AUDIT_THREADS * AUDIT_PER_THREAD, flushed);
    char *distinct = raw(p, "SELECT count(DISTINCT target) FROM audit");
    CHECK(strtol(distinct, NULL, 10) == AUDIT_THREADS * AUDIT_PER_THREAD, "distinct targets %s", distinct);
    free(distinct);
    CHECK(store_audit_dropped(rd[1]) == 0 && store_audit_dropped(st) == 0, "records dropped");
    /* Nobody flushes: a full queue makes a reader wait STORE_AUDIT_WAIT_MS,
     * then its record is dropped and counted. */
    struct store_audit a = {.time_ms = 1};
    snprintf(a.subject, sizeof(a.subject), "u@p");
    snprintf(a.action, sizeof(a.action), "migration:list");
    snprintf(a.decision, sizeof(a.decision), "allow");
    int bad = 0;
    for (int i = 0; i < STORE_AUDIT_BUFFER; i++)
        bad += store_audit_defer(st, &a, NULL) != 0;
    CHECK(bad == 0, "%d records refused", bad);
    CHECK(store_audit_defer(rd[2], &a, NULL) == 0 && store_audit_dropped(st) == 1,
          "dropped %llu after a full queue's wait", (unsigned long long)store_audit_dropped(st));
    for (int i = 0; i < AUDIT_THREADS; i++)
        store_close(rd[i]);
    store_close(st);
    /* A reader needs the writer's schema: a fresh file has none. */
    char *q = new_path();
    struct store *w2 = NULL;
    REQUIRE(store_open(p, &w2, &e) == 0, "reopen: %s", e.msg);
    CHECK(store_open_reader(q, w2, &rd[0], &e) != 0 && rd[0] == NULL,
          "a reader opened a store without schema");
    store_close(w2);
    free(q);
    free(p);
}

/* The wake descriptor: written once when the queue reaches
 * STORE_AUDIT_HIGH (from a reader's thread), not again until a flush, and
 * again after it; never below the mark; off with -1. */
static void t_audit_wake(void)
{
    char *p = new_path();
    struct store *st = NULL, *rd = NULL;
    struct ferr e = {0};
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    REQUIRE(store_open_reader(p, st, &rd, &e) == 0, "reader: %s", e.msg);
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    REQUIRE(fd >= 0, "eventfd: %s", strerror(errno));
    store_audit_set_wake(st, fd);
    struct store_audit a = {.time_ms = 1};
    snprintf(a.subject, sizeof(a.subject), "u@p");
    snprintf(a.action, sizeof(a.action), "migration:show");
    snprintf(a.decision, sizeof(a.decision), "allow");
    uint64_t n = 0;
    for (int round = 0; round < 2; round++) {
        int bad = 0;
        for (int i = 0; i < STORE_AUDIT_HIGH - 1; i++)
            bad += store_audit_defer(rd, &a, NULL) != 0;
        CHECK(bad == 0, "round %d: %d records refused", round, bad);
        CHECK(read(fd, &n, sizeof(n)) < 0 && errno == EAGAIN,
              "round %d: woken below the mark (%d queued)", round, STORE_AUDIT_HIGH - 1);
        for (int i = 0; i < 3; i++)
            bad += store_audit_defer(rd, &a, NULL) != 0;
        n = 0;
        CHECK(bad == 0 && read(fd, &n, sizeof(n)) == (ssize_t)sizeof(n) && n == 1,
              "round %d: at the mark the wake counter reads %llu, want 1 (once)", round,
              (unsigned long long)n);
        size_t flushed = 0;
        CHECK(store_audit_flush(st, &flushed, &e) == 0 && flushed == STORE_AUDIT_HIGH + 2,
              "round %d: flushed %zu: %s", round, flushed, e.msg);
    }
    store_audit_set_wake(st, -1);
    for (int i = 0; i < STORE_AUDIT_HIGH + 1; i++)
        (void)!store_audit_defer(rd, &a, NULL);
    CHECK(read(fd, &n, sizeof(n)) < 0 && errno == EAGAIN, "woken after store_audit_set_wake(-1)");
    int64_t count = 0;
    CHECK(store_audit_count(st, &count, &e) == 0 && count == 3 * STORE_AUDIT_HIGH + 5,
          "audit rows %lld, want %d", (long long)count, 3 * STORE_AUDIT_HIGH + 5);
    close(fd);
    store_close(rd);
    store_close(st);
    free(p);
}

/* Each row: one bad input and the field and code it must be refused with. */
static void t_caps(void)
{
    char *p = new_path();
    struct store *st = NULL;
    struct ferr e = {0};
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    char big[STORE_JSON_MAX + 16];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '1';
    big[sizeof(big) - 1] = '\0';
    struct store_host h;
    int rc;

    h = host("h1", "up");
    memset(h.name, 'a', sizeof(h.name));
    rc = store_host_register(st, &h, NULL, 0, NULL, &e);
    CHECK(rc == FERR_INVAL && strcmp(e.field, "name") == 0, "unterminated name: %d %s", rc,
          e.field);
    h = host("-h", "up");
    rc = store_host_register(st, &h, NULL, 0, NULL, &e);
    CHECK(rc == FERR_INVAL && strcmp(e.field, "name") == 0, "name -h: %d", rc);
    h = host("h1", "up");
    memset(h.url, 'u', sizeof(h.url));
    rc = store_host_register(st, &h, NULL, 0, NULL, &e);
    CHECK(rc == FERR_TOOBIG && strcmp(e.field, "agent_url") == 0, "url: %d %s", rc, e.field);
    h = host("h1", "sideways");
    rc = store_host_register(st, &h, NULL, 0, NULL, &e);
    CHECK(rc == FERR_INVAL && strcmp(e.field, "state") == 0, "state: %d", rc);
    h = host("h1", "up");
    struct store_instance in = {.name = "g1", .project_id = "p\n1"};
    rc = store_host_register(st, &h, &in, 1, NULL, &e);
    CHECK(rc == FERR_INVAL && strcmp(e.field, "instances[0].project_id") == 0,
          "control char: %d %s", rc, e.field);

    struct store_event ev = event("t", "s", big);
    rc = store_event_append(st, &ev, NULL, &e);
    CHECK(rc == FERR_TOOBIG && strcmp(e.field, "payload") == 0, "big payload: %d", rc);
    ev = event("t", "s", "{not json");
    rc = store_event_append(st, &ev, NULL, &e);
    CHECK(rc == FERR_INVAL && strcmp(e.field, "payload") == 0, "bad payload: %d", rc);
    ev = event("", "s", NULL);
    rc = store_event_append(st, &ev, NULL, &e);
    CHECK(rc == FERR_INVAL && strcmp(e.field, "type") == 0, "empty type: %d", rc);
    ev = event("t", "s", NULL);
    memset(ev.subject, 's', sizeof(ev.subject));
    rc = store_event_append(st, &ev, NULL, &e);
    CHECK(rc == FERR_TOOBIG && strcmp(e.field, "subject") == 0, "subject: %d", rc);
    ev = event("t", "s", NULL);
    ev.version = 0;
    rc = store_event_append(st, &ev, NULL, &e);
    CHECK(rc == FERR_INVAL && strcmp(e.field, "version") == 0, "version 0: %d", rc);

    struct store_token t = {.hash = "ABC"};
    rc = store_token_add(st, &t, &e);
    CHECK(rc == FERR_INVAL && strcmp(e.field, "hash") == 0, "hash: %d", rc);
    struct store_migration m = {.id = "m",
                                .instance = "g",
                                .source = "h",
                                .state = "queued",
                                .user = "u",
                                .project = "p",
                                .progress_pct = 101};
    rc = store_migration_insert(st, &m, &e);
    CHECK(rc == FERR_INVAL && strcmp(e.field, "progress_pct") == 0, "progress: %d", rc);
    m.progress_pct = 0;
    m.policy_json = big;
    rc = store_migration_insert(st, &m, &e);
    CHECK(rc == FERR_TOOBIG && strcmp(e.field, "policy") == 0, "policy: %d", rc);

    int64_t last = -1;
    struct store_host *hl = NULL;
    size_t nh = 9;
    CHECK(store_event_last_seq(st, &last, &e) == 0 && last == 0, "refused input stored events");
    CHECK(store_host_list(st, &hl, &nh, &e) == 0 && nh == 0, "refused input stored hosts");
    free(hl);
    CHECK(store_host_update(st, "nope", "up", 1, &e) == FERR_NOTFOUND, "update unknown host");
    store_close(st);
    free(p);
}

/* A plan host by (plan, host): the row the list holds, with its detail;
 * an unknown host or plan is FERR_NOTFOUND, a bad name FERR_INVAL. */
static void t_plan_host_get(void)
{
    char *p = new_path();
    struct store *st = NULL;
    struct ferr e = {0};
    REQUIRE(store_open(p, &st, &e) == 0, "open: %s", e.msg);
    struct store_plan pl;
    memset(&pl, 0, sizeof(pl));
    snprintf(pl.id, sizeof(pl.id), "plan-1");
    snprintf(pl.state, sizeof(pl.state), "running");
    snprintf(pl.user, sizeof(pl.user), "admin");
    snprintf(pl.project, sizeof(pl.project), "admin");
    pl.spec_json = "{}";
    pl.created_ms = pl.updated_ms = 1;
    struct store_plan_host h[2];
    memset(h, 0, sizeof(h));
    for (int i = 0; i < 2; i++) {
        snprintf(h[i].plan_id, sizeof(h[i].plan_id), "plan-1");
        snprintf(h[i].host, sizeof(h[i].host), "h%d", i + 1);
        snprintf(h[i].step, sizeof(h[i].step), i ? "draining" : "pending");
        snprintf(h[i].state, sizeof(h[i].state), "ok");
        h[i].group_no = i;
        h[i].started_ms = 100 * i;
        h[i].detail_json = i ? "{\"moves\":{\"g\":\"h1\"}}" : NULL;
    }
    REQUIRE(store_plan_insert(st, &pl, h, 2, &e) == 0, "insert: %s", e.msg);
    struct store_plan_host got;
    CHECK(store_plan_host_get(st, "plan-1", "h2", &got, &e) == 0 && !strcmp(got.host, "h2") &&
              !strcmp(got.step, "draining") && got.group_no == 1 && got.started_ms == 100 &&
              got.detail_json && strstr(got.detail_json, "moves"),
          "get h2: %s", e.msg);
    free(got.detail_json);
    CHECK(store_plan_host_get(st, "plan-1", "h1", &got, &e) == 0 && !got.detail_json &&
              !strcmp(got.step, "pending"),
          "get h1: %s", e.msg);
    free(got.detail_json);
    CHECK(store_plan_host_get(st, "plan-1", "h3", &got, &e) == FERR_NOTFOUND, "unknown host");
    CHECK(store_plan_host_get(st, "plan-2", "h1", &got, &e) == FERR_NOTFOUND, "unknown plan");
    CHECK(store_plan_host_get(st, "plan-1", "../h", &got, &e) == FERR_INVAL, "bad host name");
    store_close(st);
    free(p);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ferry-store-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_run("store: new store has every table at the code's version, WAL", t_create);
    test_run("store: reopening is idempotent (rows, version row, seq)", t_reopen);
    test_run("store: a v1 store migrates forward keeping its rows", t_migrate_from_v1);
    test_run("store: a newer schema is refused and left untouched", t_newer_refused);
    test_run("store: state change + event roll back together; seqs gapless", t_atomic_event);
    test_run("store: group commit — items by savepoint, one failing taken back alone, one "
             "transaction, gapless seqs",
             t_group_commit);
    test_run("store: register replaces and moves instances; duplicates refused",
             t_register_instances);
    test_run("store: tokens stored hashed, looked up by SHA-256", t_tokens);
    test_run("store: labels from registration; cordon and plan hold kept apart; instance move",
             t_cordon_labels);
    test_run("store: caps and bad input name the field and store nothing", t_caps);
    test_run("store: a plan host fetched by plan and name; unknown or bad names refused",
             t_plan_host_get);
    test_run("store: a reader sees commits, cannot write; audit deferred by 4 threads through "
             "readers (5x the queue) while the writer flushes reaches the table once each; "
             "unflushed, a reader's record is dropped after its wait",
             t_reader);
    test_run("store: the audit wake descriptor is written once when the queue reaches its "
             "mark, again after a flush, never below it or when turned off",
             t_audit_wake);
    test_rm_rf(dir);
    return test_done();
}

/* store_sqlite — the SQLite backend of the store (store.h). All of ferryd's
 * SQL lives here. WAL journal, synchronous=FULL (a commit is on disk before
 * it returns), foreign keys on, schema versioned in table schema_version
 * and upgraded by the forward migrations below, in one transaction at open. */
#include <errno.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/store_impl.h"
#include "core/migstate.h"
#include "util/log.h"
#include "util/xalloc.h"

#define BUSY_TIMEOUT_MS 5000 /* wait for another connection's lock, ms */
#define READER_MMAP_BYTES "268435456" /* a reader's memory-mapped window of the file, bytes */

/* Statements of the hot paths, prepared once (SQLITE_PREPARE_PERSISTENT)
 * and reset after each use; finalised at close. */
enum {
    C_TOKEN,
    C_MIG_GET,
    C_AUDIT,
    C_HOST_GET,
    C_MIG_UPDATE,
    C_MIG_PROJECTS,
    C_MIG_MARK,
    C_READ_BEGIN,
    C_READ_END,
    C_N
};

/* The migration list statements, one per shape of the WHERE clause: bit i
 * (0..3) for the filters state, instance, host, project, bit 4 active_only,
 * bit 5 the cursor; [0] reads whole rows, [1] the key columns, [2] the key
 * columns an index holds (slim). */
#define LIST_SHAPES 64

struct sq {
    sqlite3 *db;
    sqlite3_stmt *cache[C_N];
    sqlite3_stmt *list[3][LIST_SHAPES]; /* prepared on first use, persistent */
};

/* Forward migrations: MIGRATIONS[v-1] takes a store from version v-1 to v.
 * Never edit a released step; append a new one and raise
 * STORE_SCHEMA_VERSION. */
static const char *const MIGRATIONS[] = {
    /* v1: inventory, tokens, event outbox */
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version (version) VALUES (0);"
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
    " version INTEGER NOT NULL);",
    /* v2: migrations, audit log, instance-by-host index */
    "CREATE TABLE migrations (id TEXT PRIMARY KEY, instance TEXT NOT NULL,"
    " source TEXT NOT NULL, destination TEXT NOT NULL, state TEXT NOT NULL,"
    " phase TEXT NOT NULL, policy TEXT, limits TEXT,"
    " mem_total_bytes INTEGER NOT NULL DEFAULT 0, mem_remaining_bytes INTEGER NOT NULL DEFAULT 0,"
    " disk_total_bytes INTEGER NOT NULL DEFAULT 0,"
    " disk_remaining_bytes INTEGER NOT NULL DEFAULT 0,"
    " progress_pct REAL NOT NULL DEFAULT 0, eta_ms INTEGER NOT NULL DEFAULT -1,"
    " eta_low_ms INTEGER NOT NULL DEFAULT -1, eta_high_ms INTEGER NOT NULL DEFAULT -1,"
    " downtime_ms INTEGER NOT NULL DEFAULT -1, user TEXT NOT NULL, project TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " last_error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX migrations_instance ON migrations(instance);"
    "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL,"
    " subject TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,"
    " decision TEXT NOT NULL);"
    "CREATE INDEX instances_host ON instances(host);",
    /* v3: delivery cursors of event consumers (webhooks), dead letters */
    "CREATE TABLE cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " endpoint TEXT NOT NULL, event_seq INTEGER NOT NULL, tries INTEGER NOT NULL,"
    " last_status INTEGER NOT NULL, last_error TEXT NOT NULL, time_ms INTEGER NOT NULL);",
    /* v4: a migration's orchestration detail (agent migration id, result,
       stalls seen, guest impact, requested limits) as one JSON text */
    "ALTER TABLE migrations ADD COLUMN detail TEXT;"
    "CREATE INDEX migrations_state ON migrations(state);",
    /* v5: consent requests for intrusive steps (pending until the owner, or
       an operator acting for them, decides; the policy settles a timeout) */
    "CREATE TABLE consents (id TEXT PRIMARY KEY, migration_id TEXT NOT NULL,"
    " step TEXT NOT NULL, state TEXT NOT NULL, project TEXT NOT NULL,"
    " requested_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,"
    " decided_ms INTEGER NOT NULL DEFAULT 0, decided_by TEXT NOT NULL DEFAULT '',"
    " on_behalf INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '',"
    " detail TEXT);"
    "CREATE INDEX consents_migration ON consents(migration_id);"
    "CREATE INDEX consents_state ON consents(state);",
    /* v6: rolling-maintenance plans, each target host's progress through
       drain/maintain/return, and tenant deferrals of a drain */
    "CREATE TABLE plans (id TEXT PRIMARY KEY, state TEXT NOT NULL, spec TEXT NOT NULL,"
    " user TEXT NOT NULL, project TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, current_group INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT NOT NULL DEFAULT '', detail TEXT);"
    "CREATE TABLE plan_hosts (plan_id TEXT NOT NULL REFERENCES plans(id),"
    " host TEXT NOT NULL, group_no INTEGER NOT NULL, step TEXT NOT NULL,"
    " state TEXT NOT NULL, started_ms INTEGER NOT NULL DEFAULT 0,"
    " finished_ms INTEGER NOT NULL DEFAULT 0, detail TEXT,"
    " PRIMARY KEY (plan_id, host));"
    "CREATE TABLE deferrals (instance TEXT NOT NULL, plan_id TEXT NOT NULL,"
    " until_ms INTEGER NOT NULL, by_user TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " PRIMARY KEY (instance, plan_id));",
    /* v7: the migration list's order (created time, then id) from an index,
       so a page costs a range scan instead of a sort of every row */
    "CREATE INDEX migrations_created ON migrations(created_ms, id);",
    /* v8: a revision per migration row, raised by every change (ferryd's
       list renders records from a cache validated by id and revision; the
       trigger raises it for an UPDATE that does not), and the list order
       per project from an index (a tenant's page is a range scan) */
    "ALTER TABLE migrations ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;"
    "CREATE TRIGGER migrations_rev AFTER UPDATE ON migrations FOR EACH ROW"
    " WHEN NEW.rev = OLD.rev BEGIN"
    " UPDATE migrations SET rev = OLD.rev + 1 WHERE rowid = NEW.rowid; END;"
    "CREATE INDEX migrations_project ON migrations(project, created_ms, id);",
    /* v9: the list's key columns (id, project, created_ms, rev) from the
       order indexes alone, without a table lookup per row (2-3x faster per
       page); they replace the v7 and v8 order indexes */
    "DROP INDEX migrations_created;"
    "DROP INDEX migrations_project;"
    "CREATE INDEX migrations_created_keys ON migrations(created_ms, id, project, rev);"
    "CREATE INDEX migrations_project_keys ON migrations(project, created_ms, id, rev);",
    /* v10: host labels (from registration), an operator's cordon and the
       plan that drains or maintains a host (neither is a destination) */
    "ALTER TABLE hosts ADD COLUMN labels TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE hosts ADD COLUMN cordon TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE hosts ADD COLUMN maint TEXT NOT NULL DEFAULT '';",
};

_Static_assert(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]) == STORE_SCHEMA_VERSION,
               "one migration per schema version");

static int db_err(struct sq *s, struct ferr *e, const char *what)
{
    int c = sqlite3_extended_errcode(s->db);
    if ((c & 0xff) == SQLITE_CONSTRAINT)
        return ferr_set(e, FERR_EXISTS, "", "%s: %s", what, sqlite3_errmsg(s->db));
    return ferr_set(e, -EIO, "", "store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int exec(struct sq *s, const char *sql, struct ferr *e)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = ferr_set(e, -EIO, "", "store: %s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static int prep(struct sq *s, const char *sql, sqlite3_stmt **st, struct ferr *e)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return db_err(s, e, "prepare");
    }
    return 0;
}

/* Returns in *st the cached statement slot (preparing it on first use);
 * release it with done(). */
static int cached(struct sq *s, int slot, const char *sql, sqlite3_stmt **st, struct ferr *e)
{
    if (!s->cache[slot] && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                              &s->cache[slot], NULL) != SQLITE_OK) {
        s->cache[slot] = NULL;
        *st = NULL;
        return db_err(s, e, "prepare");
    }
    *st = s->cache[slot];
    return 0;
}

/* Releases a cached statement for its next use. */
static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Fills out (a struct of the caller's type) from the current row of st. */
typedef void (*row_fill)(sqlite3_stmt *st, void *out);

/* Steps st — a lookup with its key bound — once: on a row calls
 * fill(st, out) and returns 0; without one returns FERR_NOTFOUND naming
 * field, "no WHAT KEY" ("unknown WHAT" when key is NULL); on an error the
 * database's message about op. Then releases st: reset for its next use
 * when it is a cached statement (is_cached), finalised otherwise. */
static int get_row(struct sq *s, sqlite3_stmt *st, int is_cached, row_fill fill, void *out,
                   const char *field, const char *what, const char *key, const char *op,
                   struct ferr *e)
{
    int rc = 0, r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        fill(st, out);
    else if (r == SQLITE_DONE && key)
        rc = ferr_set(e, FERR_NOTFOUND, field, "no %s %s", what, key);
    else if (r == SQLITE_DONE)
        rc = ferr_set(e, FERR_NOTFOUND, field, "unknown %s", what);
    else
        rc = db_err(s, e, op);
    if (is_cached)
        done(st);
    else
        sqlite3_finalize(st);
    return rc;
}

/* Steps st once expecting SQLITE_DONE, finalises it. */
static int run(struct sq *s, sqlite3_stmt *st, const char *what, struct ferr *e)
{
    int r = sqlite3_step(st);
    int rc = r == SQLITE_DONE ? 0 : db_err(s, e, what);
    sqlite3_finalize(st);
    return rc;
}

/* Copies column i as text into dst[0..n), truncated like snprintf. */
static void col_text(sqlite3_stmt *st, int i, char *dst, size_t n)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    size_t len = t ? strnlen(t, n - 1) : 0;
    if (len)
        memcpy(dst, t, len);
    dst[len] = '\0';
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static int read_version(struct sq *s, int *version, struct ferr *e)
{
    sqlite3_stmt *st;
    *version = 0;
    int rc = prep(s,
                  "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                  "name='schema_version'",
                  &st, e);
    if (rc)
        return rc;
    int has = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    if (!has)
        return 0;
    if ((rc = prep(s, "SELECT max(version) FROM schema_version", &st, e)) != 0)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int sq_schema_version(void *impl, int *version, struct ferr *e)
{
    return read_version(impl, version, e);
}

static int migrate(struct sq *s, struct ferr *e)
{
    int rc, v;
    if ((rc = exec(s, "BEGIN IMMEDIATE", e)) != 0)
        return rc;
    if ((rc = read_version(s, &v, e)) != 0)
        goto fail;
    if (v > STORE_SCHEMA_VERSION) {
        rc = ferr_set(e, FERR_STATE, "db",
                      "store schema version %d is newer than this ferryd (%d); refusing to "
                      "open it",
                      v, STORE_SCHEMA_VERSION);
        goto fail;
    }
    for (int to = v + 1; to <= STORE_SCHEMA_VERSION; to++) {
        if ((rc = exec(s, MIGRATIONS[to - 1], e)) != 0)
            goto fail;
        char sql[64];
        snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", to);
        if ((rc = exec(s, sql, e)) != 0)
            goto fail;
        log_info("store", "msg=\"schema migrated\" from=%d to=%d", to - 1, to);
    }
    if ((rc = exec(s, "COMMIT", e)) != 0)
        goto fail;
    return 0;
fail:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void sq_close(void *impl)
{
    struct sq *s = impl;
    if (!s)
        return;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < C_N; i++)
        sqlite3_finalize(s->cache[i]);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < LIST_SHAPES; i++)
            sqlite3_finalize(s->list[k][i]);
    sqlite3_close_v2(s->db);
    free(s);
}

static int sq_tx_begin(void *impl, struct ferr *e)
{
    struct sq *s = impl;
    if (!sqlite3_get_autocommit(s->db))
        return ferr_set(e, FERR_STATE, "", "a store transaction is open already");
    return exec(s, "BEGIN IMMEDIATE", e);
}

static int sq_tx_commit(void *impl, struct ferr *e)
{
    struct sq *s = impl;
    if (sqlite3_get_autocommit(s->db))
        return ferr_set(e, FERR_STATE, "", "no store transaction is open");
    int rc = exec(s, "COMMIT", e);
    if (rc)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* A read transaction: one snapshot, one WAL read lock for every statement
 * until sq_read_end (cached statements: no parse per request). */
static int sq_read_begin(void *impl, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    if (!sqlite3_get_autocommit(s->db))
        return ferr_set(e, FERR_STATE, "", "a store transaction is open already");
    int rc = cached(s, C_READ_BEGIN, "BEGIN", &st, e);
    if (rc)
        return rc;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(s, e, "begin read");
    done(st);
    return rc;
}

static void sq_read_end(void *impl)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    if (sqlite3_get_autocommit(s->db))
        return;
    if (cached(s, C_READ_END, "COMMIT", &st, NULL) == 0) {
        int r = sqlite3_step(st);
        done(st);
        if (r == SQLITE_DONE)
            return;
    }
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static void sq_tx_rollback(void *impl)
{
    struct sq *s = impl;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int sq_tx_mark(void *impl, struct ferr *e)
{
    struct sq *s = impl;
    if (sqlite3_get_autocommit(s->db))
        return ferr_set(e, FERR_STATE, "", "no store transaction is open");
    return exec(s, "SAVEPOINT item", e);
}

static int sq_tx_release(void *impl, struct ferr *e)
{
    struct sq *s = impl;
    return exec(s, "RELEASE item", e);
}

static void sq_tx_undo(void *impl)
{
    struct sq *s = impl;
    if (sqlite3_exec(s->db, "ROLLBACK TO item", NULL, NULL, NULL) == SQLITE_OK)
        sqlite3_exec(s->db, "RELEASE item", NULL, NULL, NULL);
}

static int sq_host_register(void *impl, const struct store_host *h,
                            const struct store_instance *inst, size_t n, int *created,
                            struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc, exists = 0;
    if ((rc = exec(s, "SAVEPOINT host_register", e)) != 0)
        return rc;
    if ((rc = prep(s, "SELECT 1 FROM hosts WHERE name = ?", &st, e)) != 0)
        goto fail;
    bind_text(st, 1, h->name);
    exists = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if ((rc = prep(s,
                   "INSERT INTO hosts (name, url, ram_mib, vcpus, state, last_heartbeat_ms,"
                   " registered_ms, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO"
                   " UPDATE SET url = excluded.url, ram_mib = excluded.ram_mib,"
                   " vcpus = excluded.vcpus, state = excluded.state,"
                   " last_heartbeat_ms = excluded.last_heartbeat_ms, labels = excluded.labels",
                   &st, e)) != 0)
        goto fail;
    bind_text(st, 1, h->name);
    bind_text(st, 2, h->url);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)h->ram_mib);
    sqlite3_bind_int64(st, 4, h->vcpus);
    bind_text(st, 5, h->state);
    sqlite3_bind_int64(st, 6, h->last_heartbeat_ms);
    sqlite3_bind_int64(st, 7, h->last_heartbeat_ms);
    bind_text(st, 8, h->labels);
    if ((rc = run(s, st, "upsert host", e)) != 0)
        goto fail;
    if ((rc = prep(s, "DELETE FROM instances WHERE host = ?", &st, e)) != 0)
        goto fail;
    bind_text(st, 1, h->name);
    if ((rc = run(s, st, "delete instances", e)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if ((rc = prep(s,
                       "INSERT OR REPLACE INTO instances (name, host, project_id, memory_mib,"
                       " vcpus) VALUES (?, ?, ?, ?, ?)",
                       &st, e)) != 0)
            goto fail;
        bind_text(st, 1, inst[i].name);
        bind_text(st, 2, h->name);
        bind_text(st, 3, inst[i].project_id);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)inst[i].memory_mib);
        sqlite3_bind_int64(st, 5, inst[i].vcpus);
        if ((rc = run(s, st, "insert instance", e)) != 0)
            goto fail;
    }
    if ((rc = exec(s, "RELEASE host_register", e)) != 0)
        goto fail;
    if (created)
        *created = !exists;
    return 0;
fail:
    sqlite3_exec(s->db, "ROLLBACK TO host_register; RELEASE host_register", NULL, NULL, NULL);
    return rc;
}

#define HOST_COLS                                                                               \
    "name, url, ram_mib, vcpus, state, last_heartbeat_ms, registered_ms, labels, cordon, maint"

static void host_row(sqlite3_stmt *st, void *out)
{
    struct store_host *h = out;
    memset(h, 0, sizeof(*h));
    col_text(st, 0, h->name, sizeof(h->name));
    col_text(st, 1, h->url, sizeof(h->url));
    h->ram_mib = (uint64_t)sqlite3_column_int64(st, 2);
    h->vcpus = (uint32_t)sqlite3_column_int64(st, 3);
    col_text(st, 4, h->state, sizeof(h->state));
    h->last_heartbeat_ms = sqlite3_column_int64(st, 5);
    h->registered_ms = sqlite3_column_int64(st, 6);
    col_text(st, 7, h->labels, sizeof(h->labels));
    col_text(st, 8, h->cordon, sizeof(h->cordon));
    col_text(st, 9, h->maint, sizeof(h->maint));
}

static int sq_host_get(void *impl, const char *name, struct store_host *out, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = cached(s, C_HOST_GET, "SELECT " HOST_COLS " FROM hosts WHERE name = ?", &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, name);
    return get_row(s, st, 1, host_row, out, "name", "host", name, "get host", e);
}

static int sq_host_update(void *impl, const char *name, const char *state, int64_t heartbeat_ms,
                          struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "UPDATE hosts SET state = ?, last_heartbeat_ms = CASE WHEN ? >= 0 THEN ? "
                  "ELSE last_heartbeat_ms END WHERE name = ?",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, state);
    sqlite3_bind_int64(st, 2, heartbeat_ms);
    sqlite3_bind_int64(st, 3, heartbeat_ms);
    bind_text(st, 4, name);
    if ((rc = run(s, st, "update host", e)) != 0)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return ferr_set(e, FERR_NOTFOUND, "name", "no host %s", name);
    return 0;
}

static int sq_host_set_cordon(void *impl, const char *name, const char *cordon,
                              const char *maint, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "UPDATE hosts SET cordon = coalesce(?, cordon), maint = coalesce(?, maint)"
                  " WHERE name = ?",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, cordon);
    bind_text(st, 2, maint);
    bind_text(st, 3, name);
    if ((rc = run(s, st, "cordon host", e)) != 0)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return ferr_set(e, FERR_NOTFOUND, "name", "no host %s", name);
    return 0;
}

static int sq_instance_move(void *impl, const char *name, const char *host, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "UPDATE instances SET host = ?1 WHERE name = ?2"
                  " AND EXISTS (SELECT 1 FROM hosts WHERE name = ?1)",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, host);
    bind_text(st, 2, name);
    if ((rc = run(s, st, "move instance", e)) != 0)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return ferr_set(e, FERR_NOTFOUND, "instance", "no instance %s or no host %s", name, host);
    return 0;
}

/* Runs a SELECT and collects up to STORE_LIST_MAX rows of size sz through
 * fill into a growing array. */
static int collect(struct sq *s, sqlite3_stmt *st, size_t sz, void (*fill)(sqlite3_stmt *, void *),
                   void **out, size_t *n, struct ferr *e)
{
    size_t cap = 0, cnt = 0;
    char *arr = NULL;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == STORE_LIST_MAX)
            break;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            arr = xrealloc(arr, cap * sz);
        }
        fill(st, arr + cnt * sz);
        cnt++;
    }
    if (r != SQLITE_ROW && r != SQLITE_DONE) {
        int rc = db_err(s, e, "list");
        sqlite3_finalize(st);
        free(arr);
        return rc;
    }
    sqlite3_finalize(st);
    *out = arr;
    *n = cnt;
    return 0;
}

static void host_fill(sqlite3_stmt *st, void *p)
{
    host_row(st, p);
}

static int sq_host_list(void *impl, struct store_host **out, size_t *n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    *out = NULL;
    *n = 0;
    int rc = prep(s, "SELECT " HOST_COLS " FROM hosts ORDER BY name", &st, e);
    return rc ? rc : collect(s, st, sizeof(**out), host_fill, (void **)out, n, e);
}

static void inst_fill(sqlite3_stmt *st, void *p);

static int sq_instance_get(void *impl, const char *name, struct store_instance *out,
                           struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT name, host, project_id, memory_mib, vcpus FROM instances WHERE name = ?1",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, name);
    return get_row(s, st, 0, inst_fill, out, "instance", "instance", name, "get instance", e);
}

static void inst_fill(sqlite3_stmt *st, void *p)
{
    struct store_instance *in = p;
    memset(in, 0, sizeof(*in));
    col_text(st, 0, in->name, sizeof(in->name));
    col_text(st, 1, in->host, sizeof(in->host));
    col_text(st, 2, in->project_id, sizeof(in->project_id));
    in->memory_mib = (uint64_t)sqlite3_column_int64(st, 3);
    in->vcpus = (uint32_t)sqlite3_column_int64(st, 4);
}

static int sq_instance_list(void *impl, const char *host, struct store_instance **out, size_t *n,
                            struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    *out = NULL;
    *n = 0;
    /* Two statements, not "?1 IS NULL OR host = ?1": that form cannot use
       instances_host, and a per-host list scanned every instance (the plan
       executor lists each draining host's guests every pass). */
    int rc = prep(s,
                  host ? "SELECT name, host, project_id, memory_mib, vcpus FROM instances"
                         " WHERE host = ?1 ORDER BY name"
                       : "SELECT name, host, project_id, memory_mib, vcpus FROM instances"
                         " ORDER BY name",
                  &st, e);
    if (rc)
        return rc;
    if (host)
        bind_text(st, 1, host);
    return collect(s, st, sizeof(**out), inst_fill, (void **)out, n, e);
}

static int sq_event_append(void *impl, const struct store_event *ev, int64_t *seq, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "INSERT INTO events (type, time_ms, subject, payload, version)"
                  " VALUES (?, ?, ?, ?, ?)",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, ev->type);
    sqlite3_bind_int64(st, 2, ev->time_ms);
    bind_text(st, 3, ev->subject);
    bind_text(st, 4, ev->payload ? ev->payload : "{}");
    sqlite3_bind_int(st, 5, ev->version);
    if ((rc = run(s, st, "append event", e)) != 0)
        return rc;
    if (seq)
        *seq = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static void event_fill(sqlite3_stmt *st, void *p)
{
    struct store_event *ev = p;
    memset(ev, 0, sizeof(*ev));
    ev->seq = sqlite3_column_int64(st, 0);
    col_text(st, 1, ev->type, sizeof(ev->type));
    ev->time_ms = sqlite3_column_int64(st, 2);
    col_text(st, 3, ev->subject, sizeof(ev->subject));
    ev->payload = col_dup(st, 4);
    ev->version = sqlite3_column_int(st, 5);
}

static int sq_events_since(void *impl, int64_t since, size_t limit, struct store_event **out,
                           size_t *n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    *out = NULL;
    *n = 0;
    int rc = prep(s,
                  "SELECT seq, type, time_ms, subject, payload, version FROM events"
                  " WHERE seq > ? ORDER BY seq LIMIT ?",
                  &st, e);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, since);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    return collect(s, st, sizeof(**out), event_fill, (void **)out, n, e);
}

static int sq_event_last_seq(void *impl, int64_t *seq, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT coalesce(max(seq), 0) FROM events", &st, e);
    if (rc)
        return rc;
    *seq = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return 0;
}

static int sq_token_add(void *impl, const struct store_token *t, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "INSERT INTO tokens (hash, user, project, roles, created_ms)"
                  " VALUES (?, ?, ?, ?, ?)",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, t->hash);
    bind_text(st, 2, t->user);
    bind_text(st, 3, t->project);
    bind_text(st, 4, t->roles);
    sqlite3_bind_int64(st, 5, t->created_ms);
    return run(s, st, "add token", e);
}

static void token_row(sqlite3_stmt *st, void *v)
{
    struct store_token *out = v;
    memset(out, 0, sizeof(*out));
    col_text(st, 0, out->hash, sizeof(out->hash));
    col_text(st, 1, out->user, sizeof(out->user));
    col_text(st, 2, out->project, sizeof(out->project));
    col_text(st, 3, out->roles, sizeof(out->roles));
    out->created_ms = sqlite3_column_int64(st, 4);
}

static int sq_token_lookup(void *impl, const char *hash, struct store_token *out, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = cached(s, C_TOKEN,
                    "SELECT hash, user, project, roles, created_ms FROM tokens WHERE hash = ?", &st,
                    e);
    if (rc)
        return rc;
    bind_text(st, 1, hash);
    return get_row(s, st, 1, token_row, out, "token", "token", NULL, "lookup token", e);
}

/* Inserts one audit row with the cached statement. */
static int audit_insert(struct sq *s, const struct store_audit *a, struct ferr *e)
{
    sqlite3_stmt *st;
    int rc = cached(s, C_AUDIT,
                    "INSERT INTO audit (time_ms, subject, action, target, decision)"
                    " VALUES (?, ?, ?, ?, ?)",
                    &st, e);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, a->time_ms);
    bind_text(st, 2, a->subject);
    bind_text(st, 3, a->action);
    bind_text(st, 4, a->target);
    bind_text(st, 5, a->decision);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(s, e, "append audit");
    done(st);
    return rc;
}

static int sq_audit_append(void *impl, const struct store_audit *a, struct ferr *e)
{
    return audit_insert(impl, a, e);
}

static int sq_audit_append_many(void *impl, const struct store_audit *a, size_t n, struct ferr *e)
{
    struct sq *s = impl;
    if (!sqlite3_get_autocommit(s->db))
        return ferr_set(e, FERR_STATE, "", "a store transaction is open");
    int rc = exec(s, "BEGIN IMMEDIATE", e);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = audit_insert(s, &a[i], e);
    if (rc == 0)
        rc = exec(s, "COMMIT", e);
    if (rc)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sq_audit_count(void *impl, int64_t *n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT count(*) FROM audit", &st, e);
    if (rc)
        return rc;
    *n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return 0;
}

static void cursor_row(sqlite3_stmt *st, void *seq)
{
    *(int64_t *)seq = sqlite3_column_int64(st, 0);
}

static int sq_cursor_get(void *impl, const char *name, int64_t *seq, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT seq FROM cursors WHERE name = ?", &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, name);
    return get_row(s, st, 0, cursor_row, seq, "name", "cursor for", name, "read cursor", e);
}

static int sq_cursor_set(void *impl, const char *name, int64_t seq, int64_t now_ms,
                         struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "INSERT OR REPLACE INTO cursors (name, seq, updated_ms) VALUES (?, ?, ?)",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, now_ms);
    return run(s, st, "set cursor", e);
}

static int sq_dead_letter_add(void *impl, const struct store_dead_letter *d, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "INSERT INTO dead_letters (endpoint, event_seq, tries, last_status, last_error,"
                  " time_ms) VALUES (?, ?, ?, ?, ?, ?)",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, d->endpoint);
    sqlite3_bind_int64(st, 2, d->event_seq);
    sqlite3_bind_int(st, 3, d->tries);
    sqlite3_bind_int(st, 4, d->last_status);
    bind_text(st, 5, d->last_error);
    sqlite3_bind_int64(st, 6, d->time_ms);
    return run(s, st, "add dead letter", e);
}

static int sq_dead_letter_count(void *impl, int64_t *n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT count(*) FROM dead_letters", &st, e);
    if (rc)
        return rc;
    *n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return 0;
}

#define MIG_COLS                                                                                   \
    "id, instance, source, destination, state, phase, policy, limits, mem_total_bytes,"            \
    " mem_remaining_bytes, disk_total_bytes, disk_remaining_bytes, progress_pct, eta_ms,"          \
    " eta_low_ms, eta_high_ms, downtime_ms, user, project, created_ms, updated_ms, last_error,"    \
    " detail"

static int sq_migration_insert(void *impl, const struct store_migration *m, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "INSERT INTO migrations (" MIG_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                  " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, m->id);
    bind_text(st, 2, m->instance);
    bind_text(st, 3, m->source);
    bind_text(st, 4, m->destination);
    bind_text(st, 5, m->state);
    bind_text(st, 6, m->phase);
    bind_text(st, 7, m->policy_json);
    bind_text(st, 8, m->limits_json);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)m->mem_total_bytes);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)m->mem_remaining_bytes);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)m->disk_total_bytes);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)m->disk_remaining_bytes);
    sqlite3_bind_double(st, 13, m->progress_pct);
    sqlite3_bind_int64(st, 14, m->eta_ms);
    sqlite3_bind_int64(st, 15, m->eta_low_ms);
    sqlite3_bind_int64(st, 16, m->eta_high_ms);
    sqlite3_bind_int64(st, 17, m->downtime_ms);
    bind_text(st, 18, m->user);
    bind_text(st, 19, m->project);
    sqlite3_bind_int64(st, 20, m->created_ms);
    sqlite3_bind_int64(st, 21, m->updated_ms);
    bind_text(st, 22, m->last_error);
    bind_text(st, 23, m->detail_json);
    return run(s, st, "insert migration", e);
}

static int sq_migration_update(void *impl, const struct store_migration *m, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = cached(s, C_MIG_UPDATE,
                  "UPDATE migrations SET destination = ?, state = ?, phase = ?, policy = ?,"
                  " limits = ?, mem_total_bytes = ?, mem_remaining_bytes = ?,"
                  " disk_total_bytes = ?, disk_remaining_bytes = ?, progress_pct = ?,"
                  " eta_ms = ?, eta_low_ms = ?, eta_high_ms = ?, downtime_ms = ?,"
                  " updated_ms = ?, last_error = ?, detail = ?, rev = rev + 1 WHERE id = ?",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, m->destination);
    bind_text(st, 2, m->state);
    bind_text(st, 3, m->phase);
    bind_text(st, 4, m->policy_json);
    bind_text(st, 5, m->limits_json);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)m->mem_total_bytes);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)m->mem_remaining_bytes);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)m->disk_total_bytes);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)m->disk_remaining_bytes);
    sqlite3_bind_double(st, 10, m->progress_pct);
    sqlite3_bind_int64(st, 11, m->eta_ms);
    sqlite3_bind_int64(st, 12, m->eta_low_ms);
    sqlite3_bind_int64(st, 13, m->eta_high_ms);
    sqlite3_bind_int64(st, 14, m->downtime_ms);
    sqlite3_bind_int64(st, 15, m->updated_ms);
    bind_text(st, 16, m->last_error);
    bind_text(st, 17, m->detail_json);
    bind_text(st, 18, m->id);
    int r = sqlite3_step(st);
    rc = r == SQLITE_DONE ? 0 : db_err(s, e, "update migration");
    done(st);
    if (rc)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return ferr_set(e, FERR_NOTFOUND, "id", "no migration %s", m->id);
    return 0;
}

static void mig_row(sqlite3_stmt *st, void *out);

static int sq_migration_get(void *impl, const char *id, struct store_migration *m, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = cached(s, C_MIG_GET, "SELECT " MIG_COLS ", rev FROM migrations WHERE id = ?", &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, id);
    return get_row(s, st, 1, mig_row, m, "id", "migration", id, "get migration", e);
}

static void mig_row(sqlite3_stmt *st, void *out)
{
    struct store_migration *m = out;
    memset(m, 0, sizeof(*m));
    col_text(st, 0, m->id, sizeof(m->id));
    col_text(st, 1, m->instance, sizeof(m->instance));
    col_text(st, 2, m->source, sizeof(m->source));
    col_text(st, 3, m->destination, sizeof(m->destination));
    col_text(st, 4, m->state, sizeof(m->state));
    col_text(st, 5, m->phase, sizeof(m->phase));
    m->policy_json = col_dup(st, 6);
    m->limits_json = col_dup(st, 7);
    m->mem_total_bytes = (uint64_t)sqlite3_column_int64(st, 8);
    m->mem_remaining_bytes = (uint64_t)sqlite3_column_int64(st, 9);
    m->disk_total_bytes = (uint64_t)sqlite3_column_int64(st, 10);
    m->disk_remaining_bytes = (uint64_t)sqlite3_column_int64(st, 11);
    m->progress_pct = sqlite3_column_double(st, 12);
    m->eta_ms = sqlite3_column_int64(st, 13);
    m->eta_low_ms = sqlite3_column_int64(st, 14);
    m->eta_high_ms = sqlite3_column_int64(st, 15);
    m->downtime_ms = sqlite3_column_int64(st, 16);
    col_text(st, 17, m->user, sizeof(m->user));
    col_text(st, 18, m->project, sizeof(m->project));
    m->created_ms = sqlite3_column_int64(st, 19);
    m->updated_ms = sqlite3_column_int64(st, 20);
    col_text(st, 21, m->last_error, sizeof(m->last_error));
    m->detail_json = col_dup(st, 22);
    m->rev = sqlite3_column_int64(st, 23);
}

/* Returns in *st the list statement of the shape of f (prepared on first
 * use and kept), its parameters bound; keys 0 selects whole rows, 1 the key
 * columns, 2 those an index holds. The caller resets it with done(). */
static int list_stmt(struct sq *s, const struct store_migration_filter *f, size_t limit, int keys,
                     sqlite3_stmt **st, struct ferr *e)
{
    const char *v[4] = {f->state, f->instance, f->host, f->project};
    int shape = 0;
    for (int i = 0; i < 4; i++)
        if (v[i] && v[i][0])
            shape |= 1 << i;
    if (f->active_only)
        shape |= 1 << 4;
    bool cursor = f->after_id && f->after_id[0];
    if (cursor)
        shape |= 1 << 5;
    sqlite3_stmt **slot = &s->list[keys][shape];
    if (!*slot) {
        /* Only the filters given go into the WHERE clause, so SQLite can use
         * the indexes on state, instance and project; the order (created_ms,
         * id) comes from an index (v7, v8). Whole rows: the inner query
         * orders only (rowid, created_ms, id) — sorting the full rows (JSON
         * texts included) of every match cost ~10 ms per page with 10,000
         * records. */
        char sql[1024];
        int len = keys == 2 ? snprintf(sql, sizeof(sql),
                                       "SELECT id, '', '', project, created_ms, rev"
                                       " FROM migrations WHERE 1")
                  : keys ? snprintf(sql, sizeof(sql),
                                    "SELECT id, instance, source, project, created_ms, rev"
                                    " FROM migrations WHERE 1")
                         : snprintf(sql, sizeof(sql),
                                  "SELECT " MIG_COLS ", rev FROM migrations WHERE rowid IN"
                                  " (SELECT rowid FROM migrations WHERE 1");
        static const char *const cond[4] = {" AND state = ?1", " AND instance = ?2",
                                            " AND (source = ?3 OR destination = ?3)",
                                            " AND project = ?4"};
        for (int i = 0; i < 4; i++)
            if (shape & (1 << i))
                len += snprintf(sql + len, sizeof(sql) - (size_t)len, "%s", cond[i]);
        if (f->active_only) {
            /* every non-terminal state ferryd stores, as an IN list the
               migrations_state index serves: "NOT IN (terminal)" cannot use
               it and read every migration ever recorded (the plan executor
               and each migration request list the active ones) */
            len += snprintf(sql + len, sizeof(sql) - (size_t)len, " AND state IN (");
            for (int k = 0; k < MIGSTATE__COUNT; k++)
                if (!migstate_is_terminal((enum migstate)k))
                    len += snprintf(sql + len, sizeof(sql) - (size_t)len, "'%s', ",
                                    migstate_name((enum migstate)k));
            len += snprintf(sql + len, sizeof(sql) - (size_t)len, "'queued', 'unknown')");
        }
        if (cursor)
            len += snprintf(sql + len, sizeof(sql) - (size_t)len,
                            " AND (created_ms, id) < (?5, ?6)"); /* an index range */
        snprintf(sql + len, sizeof(sql) - (size_t)len, "%s",
                 keys ? " ORDER BY created_ms DESC, id DESC LIMIT ?7"
                      : " ORDER BY created_ms DESC, id DESC LIMIT ?7)"
                        " ORDER BY created_ms DESC, id DESC");
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
            SQLITE_OK) {
            *slot = NULL;
            *st = NULL;
            return db_err(s, e, "prepare");
        }
    }
    *st = *slot;
    for (int i = 0; i < 4; i++)
        if (shape & (1 << i))
            sqlite3_bind_text(*st, i + 1, v[i], -1, SQLITE_STATIC);
    if (cursor) {
        sqlite3_bind_int64(*st, 5, f->after_created_ms);
        sqlite3_bind_text(*st, 6, f->after_id, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(*st, 7, (sqlite3_int64)limit);
    return 0;
}

static int sq_migration_list(void *impl, const struct store_migration_filter *f, size_t limit,
                             struct store_migration **out, size_t *n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = list_stmt(s, f, limit, 0, &st, e);
    if (rc)
        return rc;
    size_t cap = 16, cnt = 0;
    struct store_migration *a = xcalloc(cap, sizeof(*a));
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap *= 2;
            a = xrealloc(a, cap * sizeof(*a));
        }
        mig_row(st, &a[cnt++]);
    }
    if (r != SQLITE_DONE) {
        rc = db_err(s, e, "list migrations");
        done(st);
        store_migrations_free(a, cnt);
        return rc;
    }
    done(st);
    *out = a;
    *n = cnt;
    return 0;
}

static int sq_migration_projects(void *impl, size_t max, char (*out)[STORE_IDENT_MAX + 1],
                                 size_t *n, int *complete, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    /* One index seek per project (a skip scan of migrations_project), not a
     * scan of every row. */
    int rc = cached(s, C_MIG_PROJECTS,
                    "WITH RECURSIVE p(x) AS (SELECT min(project) FROM migrations UNION ALL"
                    " SELECT (SELECT min(project) FROM migrations WHERE project > p.x) FROM p"
                    " WHERE x IS NOT NULL) SELECT x FROM p WHERE x IS NOT NULL LIMIT ?1",
                    &st, e);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)max + 1);
    size_t cnt = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW && cnt < max)
        col_text(st, 0, out[cnt++], STORE_IDENT_MAX + 1);
    *complete = r == SQLITE_DONE;
    if (r != SQLITE_DONE && r != SQLITE_ROW) {
        rc = db_err(s, e, "list projects");
        done(st);
        return rc;
    }
    done(st);
    *n = cnt;
    return 0;
}

static int sq_migration_insert_mark(void *impl, int64_t *mark, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = cached(s, C_MIG_MARK, "SELECT coalesce(max(rowid), 0) FROM migrations", &st, e);
    if (rc)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *mark = sqlite3_column_int64(st, 0);
    else
        rc = db_err(s, e, "migration mark");
    done(st);
    return rc;
}

static int sq_migration_list_keys(void *impl, const struct store_migration_filter *f,
                                  size_t limit, int slim, struct store_migration_key *out,
                                  size_t *n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = list_stmt(s, f, limit, slim ? 2 : 1, &st, e);
    if (rc)
        return rc;
    size_t cnt = 0;
    int r = SQLITE_DONE;
    while (cnt < limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_migration_key *k = &out[cnt++];
        col_text(st, 0, k->id, sizeof(k->id));
        col_text(st, 1, k->instance, sizeof(k->instance));
        col_text(st, 2, k->source, sizeof(k->source));
        col_text(st, 3, k->project, sizeof(k->project));
        k->created_ms = sqlite3_column_int64(st, 4);
        k->rev = sqlite3_column_int64(st, 5);
    }
    if (cnt < limit && r != SQLITE_DONE) {
        rc = db_err(s, e, "list migrations");
        done(st);
        return rc;
    }
    done(st);
    *n = cnt;
    return 0;
}

#define CONSENT_COLS                                                                               \
    "id, migration_id, step, state, project, requested_ms, deadline_ms, decided_ms, decided_by,"   \
    " on_behalf, reason, detail"

static void consent_binds(sqlite3_stmt *st, const struct store_consent *c)
{
    bind_text(st, 1, c->id);
    bind_text(st, 2, c->migration_id);
    bind_text(st, 3, c->step);
    bind_text(st, 4, c->state);
    bind_text(st, 5, c->project);
    sqlite3_bind_int64(st, 6, c->requested_ms);
    sqlite3_bind_int64(st, 7, c->deadline_ms);
    sqlite3_bind_int64(st, 8, c->decided_ms);
    bind_text(st, 9, c->decided_by);
    sqlite3_bind_int(st, 10, c->on_behalf ? 1 : 0);
    bind_text(st, 11, c->reason);
    bind_text(st, 12, c->detail_json);
}

static void consent_row(sqlite3_stmt *st, void *out)
{
    struct store_consent *c = out;
    memset(c, 0, sizeof(*c));
    col_text(st, 0, c->id, sizeof(c->id));
    col_text(st, 1, c->migration_id, sizeof(c->migration_id));
    col_text(st, 2, c->step, sizeof(c->step));
    col_text(st, 3, c->state, sizeof(c->state));
    col_text(st, 4, c->project, sizeof(c->project));
    c->requested_ms = sqlite3_column_int64(st, 5);
    c->deadline_ms = sqlite3_column_int64(st, 6);
    c->decided_ms = sqlite3_column_int64(st, 7);
    col_text(st, 8, c->decided_by, sizeof(c->decided_by));
    c->on_behalf = sqlite3_column_int(st, 9);
    col_text(st, 10, c->reason, sizeof(c->reason));
    c->detail_json = col_dup(st, 11);
}

static int sq_consent_insert(void *impl, const struct store_consent *c, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "INSERT INTO consents (" CONSENT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                  " ?, ?)",
                  &st, e);
    if (rc)
        return rc;
    consent_binds(st, c);
    return run(s, st, "insert consent", e);
}

static int sq_consent_update(void *impl, const struct store_consent *c, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "UPDATE consents SET state = ?4, deadline_ms = ?7, decided_ms = ?8,"
                  " decided_by = ?9, on_behalf = ?10, reason = ?11, detail = ?12 WHERE id = ?1",
                  &st, e);
    if (rc)
        return rc;
    consent_binds(st, c);
    if ((rc = run(s, st, "update consent", e)) != 0)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return ferr_set(e, FERR_NOTFOUND, "id", "no consent %s", c->id);
    return 0;
}

static int sq_consent_get(void *impl, const char *id, struct store_consent *out, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT " CONSENT_COLS " FROM consents WHERE id = ?", &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, id);
    return get_row(s, st, 0, consent_row, out, "id", "consent", id, "get consent", e);
}

static int sq_consent_list(void *impl, const struct store_consent_filter *f, size_t limit,
                           struct store_consent **out, size_t *n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "SELECT " CONSENT_COLS " FROM consents WHERE (?1 IS NULL OR migration_id = ?1)"
                  " AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR project = ?3)"
                  " ORDER BY requested_ms DESC, id DESC LIMIT ?4",
                  &st, e);
    if (rc)
        return rc;
    const char *v[3] = {f->migration_id, f->state, f->project};
    for (int i = 0; i < 3; i++)
        if (v[i] && v[i][0])
            bind_text(st, i + 1, v[i]);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
    size_t cap = 16, cnt = 0;
    struct store_consent *a = xcalloc(cap, sizeof(*a));
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap *= 2;
            a = xrealloc(a, cap * sizeof(*a));
        }
        consent_row(st, &a[cnt++]);
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        store_consents_free(a, cnt);
        return db_err(s, e, "list consents");
    }
    *out = a;
    *n = cnt;
    return 0;
}

/* ---- maintenance plans (v6) ---------------------------------------------- */

#define PLAN_COLS                                                                                  \
    "id, state, spec, user, project, created_ms, updated_ms, current_group, last_error, detail"
#define PLAN_HOST_COLS "plan_id, host, group_no, step, state, started_ms, finished_ms, detail"

static int plan_host_insert(struct sq *s, const struct store_plan_host *h, struct ferr *e)
{
    sqlite3_stmt *st;
    int rc = prep(s, "INSERT INTO plan_hosts (" PLAN_HOST_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, h->plan_id);
    bind_text(st, 2, h->host);
    sqlite3_bind_int(st, 3, h->group_no);
    bind_text(st, 4, h->step);
    bind_text(st, 5, h->state);
    sqlite3_bind_int64(st, 6, h->started_ms);
    sqlite3_bind_int64(st, 7, h->finished_ms);
    bind_text(st, 8, h->detail_json);
    return run(s, st, "insert plan host", e);
}

static int sq_plan_insert(void *impl, const struct store_plan *p, const struct store_plan_host *h,
                          size_t n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc;
    if ((rc = exec(s, "SAVEPOINT plan_insert", e)) != 0)
        return rc;
    if ((rc = prep(s, "INSERT INTO plans (" PLAN_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   &st, e)) != 0)
        goto fail;
    bind_text(st, 1, p->id);
    bind_text(st, 2, p->state);
    bind_text(st, 3, p->spec_json);
    bind_text(st, 4, p->user);
    bind_text(st, 5, p->project);
    sqlite3_bind_int64(st, 6, p->created_ms);
    sqlite3_bind_int64(st, 7, p->updated_ms);
    sqlite3_bind_int(st, 8, p->current_group);
    bind_text(st, 9, p->last_error);
    bind_text(st, 10, p->detail_json);
    if ((rc = run(s, st, "insert plan", e)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if ((rc = plan_host_insert(s, &h[i], e)) != 0)
            goto fail;
    if ((rc = exec(s, "RELEASE plan_insert", e)) != 0)
        goto fail;
    return 0;
fail:
    sqlite3_exec(s->db, "ROLLBACK TO plan_insert; RELEASE plan_insert", NULL, NULL, NULL);
    return rc;
}

static void plan_fill(sqlite3_stmt *st, void *v)
{
    struct store_plan *p = v;
    memset(p, 0, sizeof(*p));
    col_text(st, 0, p->id, sizeof(p->id));
    col_text(st, 1, p->state, sizeof(p->state));
    p->spec_json = col_dup(st, 2);
    col_text(st, 3, p->user, sizeof(p->user));
    col_text(st, 4, p->project, sizeof(p->project));
    p->created_ms = sqlite3_column_int64(st, 5);
    p->updated_ms = sqlite3_column_int64(st, 6);
    p->current_group = sqlite3_column_int(st, 7);
    col_text(st, 8, p->last_error, sizeof(p->last_error));
    p->detail_json = col_dup(st, 9);
}

static int sq_plan_get(void *impl, const char *id, struct store_plan *out, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT " PLAN_COLS " FROM plans WHERE id = ?", &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, id);
    return get_row(s, st, 0, plan_fill, out, "id", "plan", id, "get plan", e);
}

/* Runs st (an UPDATE) and turns "no row changed" into FERR_NOTFOUND. */
static int run_update(struct sq *s, sqlite3_stmt *st, const char *what, const char *key,
                      struct ferr *e)
{
    int rc = run(s, st, what, e);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = ferr_set(e, FERR_NOTFOUND, "id", "%s: no such %s", what, key);
    return rc;
}

static int sq_plan_update(void *impl, const struct store_plan *p, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "UPDATE plans SET state = ?, updated_ms = ?, current_group = ?, last_error = ?,"
                  " detail = ? WHERE id = ?",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, p->state);
    sqlite3_bind_int64(st, 2, p->updated_ms);
    sqlite3_bind_int(st, 3, p->current_group);
    bind_text(st, 4, p->last_error);
    bind_text(st, 5, p->detail_json);
    bind_text(st, 6, p->id);
    return run_update(s, st, "update plan", p->id, e);
}

static int sq_plan_list(void *impl, struct store_plan **out, size_t *n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT " PLAN_COLS " FROM plans ORDER BY created_ms DESC, id DESC", &st, e);
    return rc ? rc : collect(s, st, sizeof(**out), plan_fill, (void **)out, n, e);
}

static void plan_host_fill(sqlite3_stmt *st, void *v)
{
    struct store_plan_host *h = v;
    memset(h, 0, sizeof(*h));
    col_text(st, 0, h->plan_id, sizeof(h->plan_id));
    col_text(st, 1, h->host, sizeof(h->host));
    h->group_no = sqlite3_column_int(st, 2);
    col_text(st, 3, h->step, sizeof(h->step));
    col_text(st, 4, h->state, sizeof(h->state));
    h->started_ms = sqlite3_column_int64(st, 5);
    h->finished_ms = sqlite3_column_int64(st, 6);
    h->detail_json = col_dup(st, 7);
}

static int sq_plan_host_list(void *impl, const char *plan_id, struct store_plan_host **out,
                             size_t *n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "SELECT " PLAN_HOST_COLS " FROM plan_hosts WHERE plan_id = ?"
                  " ORDER BY group_no, host",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, plan_id);
    return collect(s, st, sizeof(**out), plan_host_fill, (void **)out, n, e);
}

static int sq_plan_host_get(void *impl, const char *plan_id, const char *host,
                            struct store_plan_host *out, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT " PLAN_HOST_COLS " FROM plan_hosts WHERE plan_id = ?1 AND host = ?2",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, plan_id);
    bind_text(st, 2, host);
    char key[160];
    snprintf(key, sizeof(key), "%s in plan %s", host, plan_id);
    return get_row(s, st, 0, plan_host_fill, out, "host", "host", key, "get plan host", e);
}

static int sq_plan_host_update(void *impl, const struct store_plan_host *h, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "UPDATE plan_hosts SET step = ?, state = ?, started_ms = ?, finished_ms = ?,"
                  " detail = ? WHERE plan_id = ? AND host = ?",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, h->step);
    bind_text(st, 2, h->state);
    sqlite3_bind_int64(st, 3, h->started_ms);
    sqlite3_bind_int64(st, 4, h->finished_ms);
    bind_text(st, 5, h->detail_json);
    bind_text(st, 6, h->plan_id);
    bind_text(st, 7, h->host);
    return run_update(s, st, "update plan host", h->host, e);
}

static int sq_deferral_put(void *impl, const struct store_deferral *d, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "INSERT OR REPLACE INTO deferrals (instance, plan_id, until_ms, by_user,"
                  " created_ms) VALUES (?, ?, ?, ?, ?)",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, d->instance);
    bind_text(st, 2, d->plan_id);
    sqlite3_bind_int64(st, 3, d->until_ms);
    bind_text(st, 4, d->by_user);
    sqlite3_bind_int64(st, 5, d->created_ms);
    return run(s, st, "put deferral", e);
}

static void deferral_fill(sqlite3_stmt *st, void *v)
{
    struct store_deferral *d = v;
    memset(d, 0, sizeof(*d));
    col_text(st, 0, d->instance, sizeof(d->instance));
    col_text(st, 1, d->plan_id, sizeof(d->plan_id));
    d->until_ms = sqlite3_column_int64(st, 2);
    col_text(st, 3, d->by_user, sizeof(d->by_user));
    d->created_ms = sqlite3_column_int64(st, 4);
}

static int sq_deferral_list(void *impl, const char *plan_id, struct store_deferral **out,
                            size_t *n, struct ferr *e)
{
    struct sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s,
                  "SELECT instance, plan_id, until_ms, by_user, created_ms FROM deferrals"
                  " WHERE plan_id = ? ORDER BY instance",
                  &st, e);
    if (rc)
        return rc;
    bind_text(st, 1, plan_id);
    return collect(s, st, sizeof(**out), deferral_fill, (void **)out, n, e);
}

static const struct store_ops SQLITE_OPS = {
    .close = sq_close,
    .schema_version = sq_schema_version,
    .tx_begin = sq_tx_begin,
    .tx_commit = sq_tx_commit,
    .tx_rollback = sq_tx_rollback,
    .read_begin = sq_read_begin,
    .read_end = sq_read_end,
    .tx_mark = sq_tx_mark,
    .tx_release = sq_tx_release,
    .tx_undo = sq_tx_undo,
    .host_register = sq_host_register,
    .host_get = sq_host_get,
    .host_update = sq_host_update,
    .host_set_cordon = sq_host_set_cordon,
    .instance_move = sq_instance_move,
    .host_list = sq_host_list,
    .instance_list = sq_instance_list,
    .instance_get = sq_instance_get,
    .event_append = sq_event_append,
    .events_since = sq_events_since,
    .event_last_seq = sq_event_last_seq,
    .token_add = sq_token_add,
    .token_lookup = sq_token_lookup,
    .audit_append = sq_audit_append,
    .audit_append_many = sq_audit_append_many,
    .audit_count = sq_audit_count,
    .migration_insert = sq_migration_insert,
    .migration_get = sq_migration_get,
    .migration_update = sq_migration_update,
    .migration_list = sq_migration_list,
    .migration_list_keys = sq_migration_list_keys,
    .migration_projects = sq_migration_projects,
    .migration_insert_mark = sq_migration_insert_mark,
    .cursor_get = sq_cursor_get,
    .cursor_set = sq_cursor_set,
    .dead_letter_add = sq_dead_letter_add,
    .dead_letter_count = sq_dead_letter_count,
    .consent_insert = sq_consent_insert,
    .consent_get = sq_consent_get,
    .consent_update = sq_consent_update,
    .consent_list = sq_consent_list,
    .plan_insert = sq_plan_insert,
    .plan_get = sq_plan_get,
    .plan_update = sq_plan_update,
    .plan_list = sq_plan_list,
    .plan_host_list = sq_plan_host_list,
    .plan_host_get = sq_plan_host_get,
    .plan_host_update = sq_plan_host_update,
    .deferral_put = sq_deferral_put,
    .deferral_list = sq_deferral_list,
};

/* One PRAGMA whose single-row answer must equal want (NULL: ignore it). */
static int pragma(struct sq *s, const char *sql, const char *want, struct ferr *e)
{
    sqlite3_stmt *st;
    int rc = prep(s, sql, &st, e);
    if (rc)
        return rc;
    int r = sqlite3_step(st);
    if (want && (r != SQLITE_ROW || !sqlite3_column_text(st, 0) ||
                 strcmp((const char *)sqlite3_column_text(st, 0), want) != 0))
        rc = ferr_set(e, -EIO, "db", "store: %s did not give %s", sql, want);
    else if (r != SQLITE_ROW && r != SQLITE_DONE)
        rc = db_err(s, e, sql);
    sqlite3_finalize(st);
    return rc;
}

int store__sqlite_open_reader(const char *path, const struct store_ops **ops, void **impl,
                              struct ferr *e)
{
    struct sq *s = xcalloc(1, sizeof(*s));
    int rc, v;
    /* NOMUTEX: a reader handle is used by one thread too; WAL lets it read
     * while the writer's connection commits. query_only makes any write
     * through it fail (SQLITE_READONLY) instead of taking the write lock. */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = ferr_set(e, -EIO, "db", "cannot open store %s: %s", path,
                      s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    /* mmap: pages of the database file are read in place, not copied with
     * pread — the page cache of a reader is dropped whenever the writer
     * commits (every ~200 ms on a busy ferryd), so without it each request
     * read its pages again. */
    if ((rc = exec(s, "PRAGMA query_only=1; PRAGMA mmap_size=" READER_MMAP_BYTES, e)) != 0 ||
        (rc = read_version(s, &v, e)) != 0)
        goto fail;
    if (v != STORE_SCHEMA_VERSION) {
        rc = ferr_set(e, FERR_STATE, "db",
                      "store schema version %d, this ferryd reads %d (open the writer first)", v,
                      STORE_SCHEMA_VERSION);
        goto fail;
    }
    *ops = &SQLITE_OPS;
    *impl = s;
    return 0;
fail:
    sqlite3_close_v2(s->db);
    free(s);
    return rc;
}

int store__sqlite_open(const char *path, const struct store_ops **ops, void **impl, struct ferr *e)
{
    /* No memory statistics: with them every SQLite allocation takes one
     * process-wide mutex, which ferryd's read threads then contend for.
     * Only possible before SQLite initialises (the first open of the
     * process, on one thread); later calls change nothing. */
    static int configured;
    if (!configured) {
        configured = 1;
        (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    }
    struct sq *s = xcalloc(1, sizeof(*s));
    int rc, v;
    /* NOMUTEX: a store handle is used from one thread (store.h), so SQLite's
     * per-call connection mutex is pure cost. */
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) !=
        SQLITE_OK) {
        rc = ferr_set(e, -EIO, "db", "cannot open store %s: %s", path,
                      s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    /* Refuse a newer schema before touching the file in any way. */
    if ((rc = read_version(s, &v, e)) != 0)
        goto fail;
    if (v > STORE_SCHEMA_VERSION) {
        rc = ferr_set(e, FERR_STATE, "db",
                      "store schema version %d is newer than this ferryd (%d); refusing to "
                      "open it",
                      v, STORE_SCHEMA_VERSION);
        goto fail;
    }
    if ((rc = pragma(s, "PRAGMA journal_mode=WAL", "wal", e)) != 0 ||
        (rc = exec(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", e)) != 0 ||
        (rc = migrate(s, e)) != 0)
        goto fail;
    *ops = &SQLITE_OPS;
    *impl = s;
    return 0;
fail:
    sqlite3_close_v2(s->db);
    free(s);
    return rc;
}

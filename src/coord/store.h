/* store — ferryd's durable state behind a narrow interface: hosts,
 * instances, migrations, API tokens, the event outbox and the audit log.
 *
 * The interface is backend-neutral: store.c checks every input against the
 * caps below and dispatches through a table of operations (store_impl.h);
 * the SQL lives only in the backend (store_sqlite.c today; a PostgreSQL
 * backend implements the same table). Nothing here knows the clock: every
 * time is passed in by the caller, in milliseconds since the Unix epoch.
 *
 * Durability: a function returns 0 only after its change is committed (or,
 * inside store_tx_begin/commit, after the commit). Several changes — a state
 * change and the event describing it — become atomic by wrapping them in
 * store_tx_begin ... store_tx_commit; store_tx_rollback leaves none of them.
 * Every function returns 0 or a negative FERR_* code with e filled (e may
 * be NULL).
 *
 * Threads: a handle is used by one thread at a time — the one that opened
 * it, or one it was handed to — with a single exception: store_audit_defer
 * and store_audit_dropped may be called from any thread (the deferred
 * queue has its own lock). ferryd's event loop owns the writer handle
 * (store_open); each of its read threads owns a reader handle
 * (store_open_reader), a separate connection that SQLite's WAL lets read
 * while the writer commits. */
#ifndef FERRY_COORD_STORE_H
#define FERRY_COORD_STORE_H
#include <stddef.h>
#include <stdint.h>

#include "util/ferr.h"

#define STORE_SCHEMA_VERSION 10 /* the version this code creates and understands */
#define STORE_NAME_MAX 63      /* bytes: host, instance names ([A-Za-z0-9_.-]) */
#define STORE_URL_MAX 255      /* bytes: agent URL */
#define STORE_IDENT_MAX 64     /* bytes: user, project, state, phase, event type */
#define STORE_ROLES_MAX 255    /* bytes: comma-separated role list */
#define STORE_SUBJECT_MAX 255  /* bytes: event/audit subject and target */
#define STORE_ERROR_MAX 1023   /* bytes: a migration's last error */
#define STORE_JSON_MAX 65536   /* bytes: one JSON text (payload, policy, limits) */
#define STORE_HASH_HEX 64      /* chars: SHA-256 in hex */
#define STORE_EVENTS_PAGE 1000 /* events returned by one store_events_since */
#define STORE_LIST_MAX 100000  /* rows returned by one list call */
#define STORE_LABELS_MAX 1023  /* bytes: a host's labels, "k=v,k=v" */
#define STORE_CORDON_MAX 255   /* bytes: an operator's cordon reason */

struct store;

struct store_host {
    char name[STORE_NAME_MAX + 1];
    char url[STORE_URL_MAX + 1];     /* agent base URL, "http://ADDR:PORT" */
    uint64_t ram_mib;                /* capacity, MiB */
    uint32_t vcpus;                  /* capacity, vCPUs */
    char state[STORE_IDENT_MAX + 1]; /* "up" or "down" */
    int64_t last_heartbeat_ms;       /* ms since epoch */
    int64_t registered_ms;           /* first registration, ms since epoch */
    char labels[STORE_LABELS_MAX + 1]; /* "k=v,k=v" sorted by key, "" = none
                                          (written by registration) */
    char cordon[STORE_CORDON_MAX + 1]; /* operator's cordon reason, "" = not
                                          cordoned (kept by registration) */
    char maint[STORE_IDENT_MAX + 1];   /* id of the plan draining or
                                          maintaining it, "" = none (kept by
                                          registration) */
};

struct store_instance {
    char name[STORE_NAME_MAX + 1];
    char host[STORE_NAME_MAX + 1];        /* host it runs on */
    char project_id[STORE_IDENT_MAX + 1]; /* owner project */
    uint64_t memory_mib;                  /* MiB */
    uint32_t vcpus;
};

struct store_token {
    char hash[STORE_HASH_HEX + 1]; /* SHA-256 of the token, lower-case hex */
    char user[STORE_IDENT_MAX + 1];
    char project[STORE_IDENT_MAX + 1];
    char roles[STORE_ROLES_MAX + 1]; /* comma-separated, e.g. "admin,agent" */
    int64_t created_ms;
};

struct store_event {
    int64_t seq;                         /* assigned by the store, 1, 2, ... no gaps */
    char type[STORE_IDENT_MAX + 1];      /* e.g. "host.down" */
    int64_t time_ms;                     /* ms since epoch */
    char subject[STORE_SUBJECT_MAX + 1]; /* e.g. "host/h1" */
    char *payload;                       /* JSON text; owned by the array from
                                            store_events_since, borrowed on append */
    int version;                         /* payload schema version, >= 1 */
};

struct store_audit {
    int64_t time_ms;
    char subject[STORE_SUBJECT_MAX + 1]; /* "user@project" */
    char action[STORE_IDENT_MAX + 1];    /* e.g. "host:register" */
    char target[STORE_SUBJECT_MAX + 1];  /* e.g. "host/h1" */
    char decision[STORE_IDENT_MAX + 1];  /* "allow" or "deny" */
};

struct store_migration {
    char id[STORE_IDENT_MAX + 1];
    char instance[STORE_NAME_MAX + 1];
    char source[STORE_NAME_MAX + 1];
    char destination[STORE_NAME_MAX + 1]; /* "" while not placed */
    char state[STORE_IDENT_MAX + 1];
    char phase[STORE_IDENT_MAX + 1];
    char *policy_json; /* JSON text or NULL; owned after get */
    char *limits_json; /* JSON text or NULL; owned after get */
    uint64_t mem_total_bytes;
    uint64_t mem_remaining_bytes;
    uint64_t disk_total_bytes;
    uint64_t disk_remaining_bytes;
    double progress_pct; /* 0..100 */
    int64_t eta_ms;      /* -1 when unknown */
    int64_t eta_low_ms;  /* interval, -1 when unknown */
    int64_t eta_high_ms;
    int64_t downtime_ms;            /* achieved, -1 when not known yet */
    char user[STORE_IDENT_MAX + 1]; /* who started it */
    char project[STORE_IDENT_MAX + 1];
    int64_t created_ms;
    int64_t updated_ms;
    char last_error[STORE_ERROR_MAX + 1];
    char *detail_json; /* v4: JSON text or NULL (agent migration id, result,
                          stalls, guest impact...); owned after get */
    int64_t rev;       /* v8: revision, raised by every change of the row (read
                          only: insert starts it at 0, update raises it) */
};

/* What the paged migration list needs of one row to decide its visibility
 * and to find its rendering in ferryd's cache (store_migration_list_keys). */
struct store_migration_key {
    char id[STORE_IDENT_MAX + 1];
    char instance[STORE_NAME_MAX + 1];
    char source[STORE_NAME_MAX + 1];
    char project[STORE_IDENT_MAX + 1];
    int64_t created_ms; /* ms since epoch; the list order with id */
    int64_t rev;        /* the row's revision (struct store_migration.rev) */
};

/* Equality filters of store_migration_list; NULL or "" means any. host
 * matches the source or the destination. */
struct store_migration_filter {
    const char *state;
    const char *instance;
    const char *host;
    const char *project;
    int active_only; /* non-zero: only states other than succeeded, failed, cancelled */
    /* Cursor: when after_id is not NULL/"", only the rows after
     * (after_created_ms, after_id) in the list order (created_ms, then id,
     * both descending). */
    const char *after_id;
    int64_t after_created_ms;
};

/* Opens (creating when absent) the store at location — a file path for the
 * SQLite backend. Sets WAL mode and synchronous=FULL, then applies every
 * forward schema migration up to STORE_SCHEMA_VERSION in one transaction.
 * Refuses (FERR_STATE) a store whose schema is newer than this code, and
 * changes nothing in it. On 0, *out is the handle (close with store_close);
 * on failure *out is NULL. */
int store_open(const char *location, struct store **out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Opens a reader handle on the store at location, which writer (the
 * handle of store_open, borrowed: close the reader first) has opened and
 * brought to STORE_SCHEMA_VERSION; FERR_STATE on another version. Every
 * read works on it and sees what the writer has committed; a write fails
 * with an error (the connection is query-only). Audit records deferred on it (store_audit_defer) go
 * to writer's queue, flushed by the writer's thread. On 0, *out is the
 * handle (close with store_close); on failure *out is NULL. */
int store_open_reader(const char *location, struct store *writer, struct store **out,
                      struct ferr *e) __attribute__((warn_unused_result));

/* Closes st (rolling back an open transaction, then flushing the queued
 * audit records) and frees it; NULL is fine. */
void store_close(struct store *st);

/* Returns the schema version the store holds into *version. */
int store_schema_version(struct store *st, int *version, struct ferr *e)
    __attribute__((warn_unused_result));

/* Opens a read transaction: every read until store_read_end sees one
 * snapshot of the store, and SQLite takes its read lock once instead of
 * once per statement. Meant for reader handles (one request of a read
 * thread); a write inside fails on a reader. FERR_STATE when a
 * transaction is open. */
int store_read_begin(struct store *st, struct ferr *e) __attribute__((warn_unused_result));

/* Ends the read transaction; a no-op without one. */
void store_read_end(struct store *st);

/* Starts a write transaction (FERR_STATE when one is open already). */
int store_tx_begin(struct store *st, struct ferr *e) __attribute__((warn_unused_result));
/* Commits it durably; on failure the transaction is rolled back. */
int store_tx_commit(struct store *st, struct ferr *e) __attribute__((warn_unused_result));
/* Rolls it back; safe (a no-op) without an open transaction. */
void store_tx_rollback(struct store *st);

/* Group commit: several independent items (one migration's progress each)
 * share one transaction, each between store_tx_mark and store_tx_release;
 * store_tx_undo takes back that one item alone (its rows and its events:
 * the outbox stays gapless) and the others still commit. store_tx_mark
 * opens a savepoint inside the open transaction (FERR_STATE without one,
 * or when a savepoint is open already — they do not nest);
 * store_tx_release keeps the item's changes in the transaction (they are
 * durable only with store_tx_commit); store_tx_undo is a no-op without an
 * open savepoint. store_tx_commit and store_tx_rollback close an open
 * savepoint with the transaction. */
int store_tx_mark(struct store *st, struct ferr *e) __attribute__((warn_unused_result));
int store_tx_release(struct store *st, struct ferr *e) __attribute__((warn_unused_result));
void store_tx_undo(struct store *st);

/* Transactions committed through store_tx_commit since open (each is one
 * durable write: one fdatasync of the WAL with synchronous=FULL). */
uint64_t store_commits(const struct store *st);

/* Inserts or updates host h (state, last heartbeat and capacity from h;
 * registered_ms kept from the first registration) and replaces the host's
 * instances with inst[0..n) (each inst[i].host is ignored and set to
 * h->name). Atomic on its own, or part of an open transaction. *created is
 * set to 1 when the host was new (may be NULL). FERR_INVAL names the bad
 * field ("name", "agent_url", "instances[3].name"...). An instance name
 * registered under another host moves to this one. */
int store_host_register(struct store *st, const struct store_host *h,
                        const struct store_instance *inst, size_t n, int *created, struct ferr *e)
    __attribute__((warn_unused_result));

/* Fetches host name into *out; FERR_NOTFOUND when unknown. */
int store_host_get(struct store *st, const char *name, struct store_host *out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Sets host name's state ("up"/"down") and, when heartbeat_ms >= 0, its
 * last heartbeat. FERR_NOTFOUND when unknown. */
int store_host_update(struct store *st, const char *name, const char *state, int64_t heartbeat_ms,
                      struct ferr *e) __attribute__((warn_unused_result));

/* Sets host name's operator cordon (cordon: reason, "" to lift it) and/or
 * the plan holding it (maint: plan id, "" to release); a NULL argument
 * leaves that field as it is. FERR_NOTFOUND when unknown, FERR_TOOBIG over
 * STORE_CORDON_MAX / STORE_IDENT_MAX; nothing changes on failure. */
int store_host_set_cordon(struct store *st, const char *name, const char *cordon,
                          const char *maint, struct ferr *e) __attribute__((warn_unused_result));

/* Records that instance name now runs on host (a migration succeeded):
 * its row moves there until the agents' next registrations say more.
 * FERR_NOTFOUND when the instance or the host is unknown; nothing changes
 * on failure. */
int store_instance_move(struct store *st, const char *name, const char *host, struct ferr *e)
    __attribute__((warn_unused_result));

/* Lists every host ordered by name: *out (caller frees with free()), *n. */
int store_host_list(struct store *st, struct store_host **out, size_t *n, struct ferr *e)
    __attribute__((warn_unused_result));

/* Lists the instances of host (every host when host is NULL) ordered by
 * name: *out (caller frees with free()), *n. */
int store_instance_list(struct store *st, const char *host, struct store_instance **out, size_t *n,
                        struct ferr *e) __attribute__((warn_unused_result));

/* Fetches instance name (on whichever host) into *out; FERR_NOTFOUND when
 * unknown, FERR_INVAL for a bad name. One indexed lookup: the migrations API
 * uses it instead of listing every instance per request. */
int store_instance_get(struct store *st, const char *name, struct store_instance *out,
                       struct ferr *e) __attribute__((warn_unused_result));

/* Appends ev (seq ignored, payload borrowed JSON text or NULL for {}) to the
 * outbox; *seq (may be NULL) receives its sequence number. Inside a
 * transaction the event commits or vanishes with it, and sequence numbers
 * stay gapless either way. */
int store_event_append(struct store *st, const struct store_event *ev, int64_t *seq, struct ferr *e)
    __attribute__((warn_unused_result));

/* Returns up to limit (capped at STORE_EVENTS_PAGE) events with seq > since
 * in seq order: *out (caller frees with store_events_free), *n. */
int store_events_since(struct store *st, int64_t since, size_t limit, struct store_event **out,
                       size_t *n, struct ferr *e) __attribute__((warn_unused_result));

/* Frees an array from store_events_since (and each payload). */
void store_events_free(struct store_event *ev, size_t n);

/* Highest event seq (0 when none) into *seq. */
int store_event_last_seq(struct store *st, int64_t *seq, struct ferr *e)
    __attribute__((warn_unused_result));

/* Stores token t (by its hash only). FERR_EXISTS when the hash is known. */
int store_token_add(struct store *st, const struct store_token *t, struct ferr *e)
    __attribute__((warn_unused_result));

/* Looks a token up by hash (64 lower-case hex chars); FERR_NOTFOUND. */
int store_token_lookup(struct store *st, const char *hash, struct store_token *out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Appends one audit record. */
int store_audit_append(struct store *st, const struct store_audit *a, struct ferr *e)
    __attribute__((warn_unused_result));

#define STORE_AUDIT_BUFFER 4096 /* deferred audit records held in memory at most */
#define STORE_AUDIT_WAIT_MS 1000 /* a reader's wait for room in a full queue, ms */

/* Queues one audit record in memory (a copy) for the next
 * store_audit_flush: for read decisions, whose record may be lost on a
 * crash (ferryd flushes every 100 ms, and at once when the queue passes
 * STORE_AUDIT_HIGH: store_audit_set_wake). Callable from any thread; on a
 * reader handle the record joins its writer's queue. Never writes. When
 * STORE_AUDIT_BUFFER records wait already: through a reader handle it
 * waits for the writer's next flush (back-pressure on the reads: no record
 * lost), at most STORE_AUDIT_WAIT_MS; on the writer's handle, or after
 * that wait, the record is dropped, counted (store_audit_dropped) and a
 * warning logged. FERR_INVAL on a bad record. */
int store_audit_defer(struct store *st, const struct store_audit *a, struct ferr *e)
    __attribute__((warn_unused_result));

/* Writes every queued audit record in one transaction; *flushed (may be
 * NULL) receives how many. With a transaction open it writes nothing and
 * returns 0 (the records wait for the next flush); on a store error the
 * records stay queued. Records deferred meanwhile by other threads wait
 * for the next flush. A no-op on a reader handle. */
int store_audit_flush(struct store *st, size_t *flushed, struct ferr *e)
    __attribute__((warn_unused_result));

#define STORE_AUDIT_HIGH (STORE_AUDIT_BUFFER / 4) /* queued records that wake the writer early */

/* Gives the writer handle a descriptor (e.g. an eventfd) that
 * store_audit_defer writes 1 to, from whichever thread, when the queue
 * reaches STORE_AUDIT_HIGH records — once per flush — so that the writer's
 * loop flushes at once instead of at its next timer, before readers have
 * to wait for room. -1 (the default) turns it off. The descriptor stays
 * the caller's; it must be non-blocking. */
void store_audit_set_wake(struct store *st, int fd);

/* Deferred audit records dropped because the queue was full, since open. */
uint64_t store_audit_dropped(const struct store *st);

/* Number of audit records into *n (queued ones are flushed first). */
int store_audit_count(struct store *st, int64_t *n, struct ferr *e)
    __attribute__((warn_unused_result));

/* Inserts migration m (JSON fields borrowed). FERR_EXISTS on a known id. */
int store_migration_insert(struct store *st, const struct store_migration *m, struct ferr *e)
    __attribute__((warn_unused_result));

/* Fetches migration id into *out (release with store_migration_clear);
 * FERR_NOTFOUND when unknown. */
int store_migration_get(struct store *st, const char *id, struct store_migration *out,
                        struct ferr *e) __attribute__((warn_unused_result));

/* Frees what a fetched migration owns (its JSON texts); m stays usable. */
void store_migration_clear(struct store_migration *m);

/* Replaces every mutable column of migration m->id (all but id, instance,
 * source, user, project, created_ms) with m's values (JSON borrowed).
 * FERR_NOTFOUND when unknown; input checked as for insert. */
int store_migration_update(struct store *st, const struct store_migration *m, struct ferr *e)
    __attribute__((warn_unused_result));

/* Lists the migrations matching f (NULL: all), newest first, at most limit
 * (capped at STORE_LIST_MAX): *out (caller frees with
 * store_migrations_free), *n. */
int store_migration_list(struct store *st, const struct store_migration_filter *f, size_t limit,
                         struct store_migration **out, size_t *n, struct ferr *e)
    __attribute__((warn_unused_result));

/* Like store_migration_list, but reads only the key columns of each row
 * into out[0..limit) (caller-owned, limit capped at STORE_LIST_MAX); *n
 * rows were written. With slim non-zero, instance and source are left ""
 * and the rows come from an index alone (schema v9: no table lookup per
 * row) when the filters allow. Meant for pages whose records are rendered
 * from a cache validated by (id, rev). */
int store_migration_list_keys(struct store *st, const struct store_migration_filter *f,
                              size_t limit, int slim, struct store_migration_key *out, size_t *n,
                              struct ferr *e) __attribute__((warn_unused_result));

/* Reads the distinct projects that own migrations, in byte order, into
 * out[0..max) (caller-owned); *n were written, *complete is non-zero when
 * that is all of them (else there are more than max). Costs one index seek
 * per project. */
int store_migration_projects(struct store *st, size_t max, char (*out)[STORE_IDENT_MAX + 1],
                             size_t *n, int *complete, struct ferr *e)
    __attribute__((warn_unused_result));

/* A number that changes whenever a migration is inserted, into *mark —
 * the highest row number (rows are never deleted and a row's project never
 * changes), so store_migration_projects answers the same while the mark
 * stays. One index seek. */
int store_migration_insert_mark(struct store *st, int64_t *mark, struct ferr *e)
    __attribute__((warn_unused_result));

/* Frees an array from store_migration_list (and what each element owns). */
void store_migrations_free(struct store_migration *m, size_t n);

/* A delivery that was given up (webhooks): which event, where, why. */
struct store_dead_letter {
    char endpoint[STORE_URL_MAX + 1];    /* consumer name, e.g. the webhook URL */
    int64_t event_seq;                   /* the event not delivered */
    int tries;                           /* attempts made */
    int last_status;                     /* last HTTP status, 0 when no answer */
    char last_error[STORE_ERROR_MAX + 1]; /* last failure, for people */
    int64_t time_ms;                     /* when it was given up, ms since epoch */
};

/* Reads the delivery cursor of consumer name (1..255 bytes, e.g. a webhook
 * URL): the last event seq it has been handed, into *seq. FERR_NOTFOUND
 * when the consumer has no cursor yet. */
int store_cursor_get(struct store *st, const char *name, int64_t *seq, struct ferr *e)
    __attribute__((warn_unused_result));

/* Sets (inserts or replaces) the cursor of consumer name to seq (>= 0). */
int store_cursor_set(struct store *st, const char *name, int64_t seq, int64_t now_ms,
                     struct ferr *e) __attribute__((warn_unused_result));

/* Records a dead letter (d borrowed). */
int store_dead_letter_add(struct store *st, const struct store_dead_letter *d, struct ferr *e)
    __attribute__((warn_unused_result));

/* Number of dead letters recorded into *n. */
int store_dead_letter_count(struct store *st, int64_t *n, struct ferr *e)
    __attribute__((warn_unused_result));

/* ---- consent requests (v5) ---------------------------------------------- */

/* A consent request for one intrusive step of a migration. */
struct store_consent {
    char id[STORE_IDENT_MAX + 1];           /* "con-..." */
    char migration_id[STORE_IDENT_MAX + 1]; /* the migration asking */
    char step[STORE_IDENT_MAX + 1];         /* bandwidth, throttle, postcopy, pause */
    char state[STORE_IDENT_MAX + 1];        /* pending, granted, refused, expired */
    char project[STORE_IDENT_MAX + 1];      /* owner project of the instance */
    int64_t requested_ms;                   /* ms since epoch */
    int64_t deadline_ms;                    /* timeout at, ms since epoch */
    int64_t decided_ms;                     /* ms since epoch, 0 while pending */
    char decided_by[STORE_IDENT_MAX + 1];   /* user, or "policy"; "" while pending */
    int on_behalf;                          /* non-zero: answered by an operator for
                                               the owner */
    char reason[STORE_ERROR_MAX + 1];       /* free text */
    char *detail_json;                      /* JSON text or NULL; owned after get */
};

/* Equality filters of store_consent_list; NULL or "" means any. */
struct store_consent_filter {
    const char *migration_id;
    const char *state;
    const char *project;
};

/* Inserts c (detail borrowed). FERR_EXISTS on a known id; FERR_INVAL names
 * a bad field (state must be one of the four, step one of the four). */
int store_consent_insert(struct store *st, const struct store_consent *c, struct ferr *e)
    __attribute__((warn_unused_result));

/* Fetches consent id into *out (release with store_consent_clear);
 * FERR_NOTFOUND when unknown. */
int store_consent_get(struct store *st, const char *id, struct store_consent *out,
                      struct ferr *e) __attribute__((warn_unused_result));

/* Replaces state, decided_ms, decided_by, on_behalf, reason, deadline_ms
 * and detail of consent c->id. FERR_NOTFOUND when unknown. */
int store_consent_update(struct store *st, const struct store_consent *c, struct ferr *e)
    __attribute__((warn_unused_result));

/* Lists the consents matching f (NULL: all), newest first, at most limit
 * (capped at STORE_LIST_MAX): *out (free with store_consents_free), *n. */
int store_consent_list(struct store *st, const struct store_consent_filter *f, size_t limit,
                       struct store_consent **out, size_t *n, struct ferr *e)
    __attribute__((warn_unused_result));

/* Frees what a fetched consent owns; c stays usable. */
void store_consent_clear(struct store_consent *c);

/* Frees an array from store_consent_list. */
void store_consents_free(struct store_consent *c, size_t n);

/* ---- maintenance plans (v6) --------------------------------------------- */

/* A rolling-maintenance plan (src/coord/plans.c, docs/PLANS.md). */
struct store_plan {
    char id[STORE_IDENT_MAX + 1];      /* "plan-..." */
    char state[STORE_IDENT_MAX + 1];   /* running, paused, aborting, aborted, failed, completed */
    char *spec_json;                   /* the request as accepted (JSON); owned after get */
    char user[STORE_IDENT_MAX + 1];    /* who created it */
    char project[STORE_IDENT_MAX + 1];
    int64_t created_ms;                /* ms since epoch */
    int64_t updated_ms;                /* ms since epoch */
    int current_group;                 /* position of the group being worked on */
    char last_error[STORE_ERROR_MAX + 1];
    char *detail_json;                 /* JSON text or NULL; owned after get */
};

/* One target host of a plan: its group and where it is in drain → maintain → return. */
struct store_plan_host {
    char plan_id[STORE_IDENT_MAX + 1];
    char host[STORE_NAME_MAX + 1];
    int group_no;                   /* position of its group in the plan */
    char step[STORE_IDENT_MAX + 1]; /* pending, draining, drained, maintaining, checking, returned */
    char state[STORE_IDENT_MAX + 1]; /* ok, failed, aborted */
    int64_t started_ms;             /* drain started, ms since epoch, 0 before */
    int64_t finished_ms;            /* returned (or stopped), ms since epoch, 0 before */
    char *detail_json;              /* JSON text or NULL (planned moves, step times);
                                       owned after get/list */
};

/* A tenant's deferral of a plan's migration of instance until until_ms. */
struct store_deferral {
    char instance[STORE_NAME_MAX + 1];
    char plan_id[STORE_IDENT_MAX + 1];
    int64_t until_ms;                  /* the plan retries after, ms since epoch */
    char by_user[STORE_IDENT_MAX + 1]; /* who cancelled */
    int64_t created_ms;                /* ms since epoch */
};

/* Inserts plan p and its hosts h[0..n) (JSON borrowed) atomically (also
 * inside an open transaction). FERR_EXISTS on a known id. */
int store_plan_insert(struct store *st, const struct store_plan *p, const struct store_plan_host *h,
                      size_t n, struct ferr *e) __attribute__((warn_unused_result));

/* Fetches plan id into *out (release with store_plan_clear); FERR_NOTFOUND. */
int store_plan_get(struct store *st, const char *id, struct store_plan *out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Replaces state, updated_ms, current_group, last_error and detail of plan
 * p->id. FERR_NOTFOUND when unknown. */
int store_plan_update(struct store *st, const struct store_plan *p, struct ferr *e)
    __attribute__((warn_unused_result));

/* Lists plans, newest first, at most STORE_LIST_MAX: *out (free with
 * store_plans_free), *n. */
int store_plan_list(struct store *st, struct store_plan **out, size_t *n, struct ferr *e)
    __attribute__((warn_unused_result));

/* Frees what a fetched plan owns; p stays usable. */
void store_plan_clear(struct store_plan *p);

/* Frees an array from store_plan_list. */
void store_plans_free(struct store_plan *p, size_t n);

/* Lists the hosts of plan_id ordered by group, then host name: *out (free
 * with store_plan_hosts_free), *n. */
int store_plan_host_list(struct store *st, const char *plan_id, struct store_plan_host **out,
                         size_t *n, struct ferr *e) __attribute__((warn_unused_result));

/* Fetches host of plan plan_id into *out (its detail owned by the caller:
 * free(out->detail_json)); FERR_NOTFOUND when the plan has no such host.
 * One primary-key lookup (the executor's callbacks use it instead of
 * listing the plan's hosts). */
int store_plan_host_get(struct store *st, const char *plan_id, const char *host,
                        struct store_plan_host *out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Replaces step, state, started_ms, finished_ms and detail of host
 * h->host in plan h->plan_id. FERR_NOTFOUND when unknown. */
int store_plan_host_update(struct store *st, const struct store_plan_host *h, struct ferr *e)
    __attribute__((warn_unused_result));

/* Frees an array from store_plan_host_list. */
void store_plan_hosts_free(struct store_plan_host *h, size_t n);

/* Inserts or replaces the deferral of (d->instance, d->plan_id). */
int store_deferral_put(struct store *st, const struct store_deferral *d, struct ferr *e)
    __attribute__((warn_unused_result));

/* Lists the deferrals of plan_id ordered by instance: *out (caller frees
 * with free()), *n. */
int store_deferral_list(struct store *st, const char *plan_id, struct store_deferral **out,
                        size_t *n, struct ferr *e) __attribute__((warn_unused_result));

#endif

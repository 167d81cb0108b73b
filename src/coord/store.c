/* store — input checks and dispatch to the backend (see store.h). Every
 * text that reaches a backend has passed one of the checks here, so caps
 * and name rules hold whatever the backend. */
#include "coord/store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coord/store_impl.h"
#include "util/jsonin.h"
#include "util/log.h"
#include "util/xalloc.h"

struct store {
    const struct store_ops *ops; /* backend operations */
    void *impl;                  /* backend state */
    struct store *writer;        /* reader handles: where deferred audit goes; else NULL */
    pthread_mutex_t alock;       /* guards abuf, an, adropped (store_audit_defer is
                                    called by reader threads) */
    pthread_cond_t aspace;       /* signalled when a flush empties abuf */
    struct store_audit *abuf;    /* deferred audit records (STORE_AUDIT_BUFFER) */
    size_t an;                   /* how many wait in abuf */
    uint64_t adropped;           /* dropped because abuf was full */
    int awake_fd;                /* written to when an reaches STORE_AUDIT_HIGH; -1: none */
    int awoken;                  /* awake_fd written since the last flush */
    uint64_t commits;            /* store_tx_commit that succeeded */
    int marked;                  /* a savepoint (store_tx_mark) is open */
};

/* A text that must fit in a fixed array of size cap+1, without control
 * characters; empty allowed when empty_ok. */
static int check_text(const char *s, size_t cap, int empty_ok, const char *field, struct ferr *e)
{
    if (!s)
        return ferr_set(e, FERR_INVAL, field, "%s is required", field);
    size_t len = strnlen(s, cap + 1);
    if (len > cap)
        return ferr_set(e, FERR_TOOBIG, field, "%s exceeds %zu bytes", field, cap);
    if (len == 0 && !empty_ok)
        return ferr_set(e, FERR_INVAL, field, "%s must not be empty", field);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return ferr_set(e, FERR_INVAL, field, "%s holds a control character", field);
    return 0;
}

static int check_name(const char *s, const char *field, struct ferr *e)
{
    if (!s || strnlen(s, STORE_NAME_MAX + 1) > STORE_NAME_MAX || !jsonin_name_ok(s))
        return ferr_set(e, FERR_INVAL, field,
                        "%s must be 1..63 characters of [A-Za-z0-9_.-], not starting with . or -",
                        field);
    return 0;
}

static int check_json(const char *s, const char *field, struct ferr *e)
{
    if (!s)
        return 0;
    size_t len = strnlen(s, STORE_JSON_MAX + 1);
    if (len > STORE_JSON_MAX)
        return ferr_set(e, FERR_TOOBIG, field, "%s exceeds %d bytes", field, STORE_JSON_MAX);
    json_error_t je;
    json_t *v = json_loadb(s, len, JSON_DECODE_ANY, &je);
    if (!v)
        return ferr_set(e, FERR_INVAL, field, "%s is not JSON: %s", field, je.text);
    json_decref(v);
    return 0;
}

static int check_state(const char *s, struct ferr *e)
{
    if (!s || (strcmp(s, "up") != 0 && strcmp(s, "down") != 0))
        return ferr_set(e, FERR_INVAL, "state", "host state must be up or down");
    return 0;
}

static void store_audit_init(struct store *st)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&st->alock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->aspace, &ca);
    pthread_condattr_destroy(&ca);
    st->awake_fd = -1;
}

void store_audit_set_wake(struct store *st, int fd)
{
    pthread_mutex_lock(&st->alock);
    st->awake_fd = fd;
    st->awoken = 0;
    pthread_mutex_unlock(&st->alock);
}

int store_open(const char *location, struct store **out, struct ferr *e)
{
    *out = NULL;
    if (!location || !location[0])
        return ferr_set(e, FERR_INVAL, "db", "no store location given");
    if (strncmp(location, "postgresql://", 13) == 0 || strncmp(location, "postgres://", 11) == 0)
        return ferr_set(e, FERR_INVAL, "db", "the PostgreSQL backend is not built yet");
    struct store *st = xcalloc(1, sizeof(*st));
    int rc = store__sqlite_open(location, &st->ops, &st->impl, e);
    if (rc != 0) {
        free(st);
        return rc;
    }
    store_audit_init(st);
    *out = st;
    return 0;
}

int store_open_reader(const char *location, struct store *writer, struct store **out,
                      struct ferr *e)
{
    *out = NULL;
    if (!location || !location[0] || !writer)
        return ferr_set(e, FERR_INVAL, "db", "no store location or writer given");
    struct store *st = xcalloc(1, sizeof(*st));
    int rc = store__sqlite_open_reader(location, &st->ops, &st->impl, e);
    if (rc != 0) {
        free(st);
        return rc;
    }
    store_audit_init(st);
    st->writer = writer;
    *out = st;
    return 0;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    st->ops->tx_rollback(st->impl);
    struct ferr e = {0};
    size_t n = st->an;
    if (store_audit_flush(st, NULL, &e) != 0)
        log_error("store", "msg=\"audit records lost at close\" count=%zu err=\"%s\"", n, e.msg);
    st->ops->close(st->impl);
    pthread_mutex_destroy(&st->alock);
    pthread_cond_destroy(&st->aspace);
    free(st->abuf);
    free(st);
}

int store_schema_version(struct store *st, int *version, struct ferr *e)
{
    return st->ops->schema_version(st->impl, version, e);
}

int store_read_begin(struct store *st, struct ferr *e)
{
    return st->ops->read_begin(st->impl, e);
}

void store_read_end(struct store *st)
{
    st->ops->read_end(st->impl);
}

int store_tx_begin(struct store *st, struct ferr *e)
{
    return st->ops->tx_begin(st->impl, e);
}

int store_tx_commit(struct store *st, struct ferr *e)
{
    st->marked = 0;
    int rc = st->ops->tx_commit(st->impl, e);
    if (rc == 0)
        st->commits++;
    return rc;
}

void store_tx_rollback(struct store *st)
{
    st->marked = 0;
    st->ops->tx_rollback(st->impl);
}

int store_tx_mark(struct store *st, struct ferr *e)
{
    if (st->marked)
        return ferr_set(e, FERR_STATE, "", "a store savepoint is open already");
    int rc = st->ops->tx_mark(st->impl, e);
    if (rc == 0)
        st->marked = 1;
    return rc;
}

int store_tx_release(struct store *st, struct ferr *e)
{
    if (!st->marked)
        return ferr_set(e, FERR_STATE, "", "no store savepoint is open");
    int rc = st->ops->tx_release(st->impl, e);
    if (rc == 0)
        st->marked = 0;
    return rc;
}

void store_tx_undo(struct store *st)
{
    if (!st->marked)
        return;
    st->marked = 0;
    st->ops->tx_undo(st->impl);
}

uint64_t store_commits(const struct store *st)
{
    return st->commits;
}

int store_host_register(struct store *st, const struct store_host *h,
                        const struct store_instance *inst, size_t n, int *created, struct ferr *e)
{
    int rc;
    if ((rc = check_name(h->name, "name", e)) != 0 ||
        (rc = check_text(h->url, STORE_URL_MAX, 0, "agent_url", e)) != 0 ||
        (rc = check_state(h->state, e)) != 0 ||
        (rc = check_text(h->labels, STORE_LABELS_MAX, 1, "labels", e)) != 0)
        return rc;
    if (n > STORE_LIST_MAX)
        return ferr_set(e, FERR_TOOBIG, "instances", "more than %d instances", STORE_LIST_MAX);
    for (size_t i = 0; i < n; i++) {
        char f[48];
        snprintf(f, sizeof(f), "instances[%zu].name", i);
        if ((rc = check_name(inst[i].name, f, e)) != 0)
            return rc;
        snprintf(f, sizeof(f), "instances[%zu].project_id", i);
        if ((rc = check_text(inst[i].project_id, STORE_IDENT_MAX, 0, f, e)) != 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(inst[i].name, inst[j].name) == 0) {
                snprintf(f, sizeof(f), "instances[%zu].name", i);
                return ferr_set(e, FERR_INVAL, f, "instance %s is listed twice", inst[i].name);
            }
    }
    return st->ops->host_register(st->impl, h, inst, n, created, e);
}

int store_host_get(struct store *st, const char *name, struct store_host *out, struct ferr *e)
{
    int rc = check_name(name, "name", e);
    return rc ? rc : st->ops->host_get(st->impl, name, out, e);
}

int store_host_update(struct store *st, const char *name, const char *state, int64_t heartbeat_ms,
                      struct ferr *e)
{
    int rc;
    if ((rc = check_name(name, "name", e)) != 0 || (rc = check_state(state, e)) != 0)
        return rc;
    return st->ops->host_update(st->impl, name, state, heartbeat_ms, e);
}

int store_host_set_cordon(struct store *st, const char *name, const char *cordon,
                          const char *maint, struct ferr *e)
{
    int rc;
    if ((rc = check_name(name, "name", e)) != 0 ||
        (cordon && (rc = check_text(cordon, STORE_CORDON_MAX, 1, "reason", e)) != 0) ||
        (maint && (rc = check_text(maint, STORE_IDENT_MAX, 1, "maint", e)) != 0))
        return rc;
    return st->ops->host_set_cordon(st->impl, name, cordon, maint, e);
}

int store_instance_move(struct store *st, const char *name, const char *host, struct ferr *e)
{
    int rc;
    if ((rc = check_name(name, "instance", e)) != 0 || (rc = check_name(host, "host", e)) != 0)
        return rc;
    return st->ops->instance_move(st->impl, name, host, e);
}

int store_host_list(struct store *st, struct store_host **out, size_t *n, struct ferr *e)
{
    return st->ops->host_list(st->impl, out, n, e);
}

int store_instance_list(struct store *st, const char *host, struct store_instance **out, size_t *n,
                        struct ferr *e)
{
    int rc = host ? check_name(host, "host", e) : 0;
    return rc ? rc : st->ops->instance_list(st->impl, host, out, n, e);
}

int store_instance_get(struct store *st, const char *name, struct store_instance *out,
                       struct ferr *e)
{
    int rc = check_name(name, "instance", e);
    return rc ? rc : st->ops->instance_get(st->impl, name, out, e);
}

int store_event_append(struct store *st, const struct store_event *ev, int64_t *seq, struct ferr *e)
{
    int rc;
    if ((rc = check_text(ev->type, STORE_IDENT_MAX, 0, "type", e)) != 0 ||
        (rc = check_text(ev->subject, STORE_SUBJECT_MAX, 0, "subject", e)) != 0 ||
        (rc = check_json(ev->payload, "payload", e)) != 0)
        return rc;
    if (ev->version < 1)
        return ferr_set(e, FERR_INVAL, "version", "event version must be >= 1");
    return st->ops->event_append(st->impl, ev, seq, e);
}

int store_events_since(struct store *st, int64_t since, size_t limit, struct store_event **out,
                       size_t *n, struct ferr *e)
{
    if (since < 0)
        return ferr_set(e, FERR_INVAL, "since", "since must be >= 0");
    if (limit == 0 || limit > STORE_EVENTS_PAGE)
        limit = STORE_EVENTS_PAGE;
    return st->ops->events_since(st->impl, since, limit, out, n, e);
}

void store_events_free(struct store_event *ev, size_t n)
{
    if (!ev)
        return;
    for (size_t i = 0; i < n; i++)
        free(ev[i].payload);
    free(ev);
}

int store_event_last_seq(struct store *st, int64_t *seq, struct ferr *e)
{
    return st->ops->event_last_seq(st->impl, seq, e);
}

static int check_hash(const char *h, struct ferr *e)
{
    if (!h || strnlen(h, STORE_HASH_HEX + 1) != STORE_HASH_HEX)
        return ferr_set(e, FERR_INVAL, "hash", "token hash must be 64 hex characters");
    for (size_t i = 0; i < STORE_HASH_HEX; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return ferr_set(e, FERR_INVAL, "hash", "token hash must be lower-case hex");
    return 0;
}

int store_token_add(struct store *st, const struct store_token *t, struct ferr *e)
{
    int rc;
    if ((rc = check_hash(t->hash, e)) != 0 ||
        (rc = check_text(t->user, STORE_IDENT_MAX, 0, "user", e)) != 0 ||
        (rc = check_text(t->project, STORE_IDENT_MAX, 0, "project", e)) != 0 ||
        (rc = check_text(t->roles, STORE_ROLES_MAX, 1, "roles", e)) != 0)
        return rc;
    return st->ops->token_add(st->impl, t, e);
}

int store_token_lookup(struct store *st, const char *hash, struct store_token *out, struct ferr *e)
{
    int rc = check_hash(hash, e);
    return rc ? rc : st->ops->token_lookup(st->impl, hash, out, e);
}

int store_audit_append(struct store *st, const struct store_audit *a, struct ferr *e)
{
    int rc;
    if ((rc = check_text(a->subject, STORE_SUBJECT_MAX, 0, "subject", e)) != 0 ||
        (rc = check_text(a->action, STORE_IDENT_MAX, 0, "action", e)) != 0 ||
        (rc = check_text(a->target, STORE_SUBJECT_MAX, 1, "target", e)) != 0 ||
        (rc = check_text(a->decision, STORE_IDENT_MAX, 0, "decision", e)) != 0)
        return rc;
    return st->ops->audit_append(st->impl, a, e);
}

int store_audit_defer(struct store *st, const struct store_audit *a, struct ferr *e)
{
    int rc;
    if ((rc = check_text(a->subject, STORE_SUBJECT_MAX, 0, "subject", e)) != 0 ||
        (rc = check_text(a->action, STORE_IDENT_MAX, 0, "action", e)) != 0 ||
        (rc = check_text(a->target, STORE_SUBJECT_MAX, 1, "target", e)) != 0 ||
        (rc = check_text(a->decision, STORE_IDENT_MAX, 0, "decision", e)) != 0)
        return rc;
    bool wait = st->writer != NULL; /* a read thread may wait; the writer's
                                       own thread flushes, so it must not */
    if (st->writer)
        st = st->writer; /* a reader's records are the writer's to write */
    uint64_t dropped = 0;
    pthread_mutex_lock(&st->alock);
    if (st->an == STORE_AUDIT_BUFFER && wait) {
        /* Back-pressure: the read waits for the next flush rather than
         * lose its record, up to STORE_AUDIT_WAIT_MS (a writer that cannot
         * write must not stop every read). */
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += STORE_AUDIT_WAIT_MS / 1000;
        dl.tv_nsec += (long)(STORE_AUDIT_WAIT_MS % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        while (st->an == STORE_AUDIT_BUFFER &&
               pthread_cond_timedwait(&st->aspace, &st->alock, &dl) == 0)
            ;
    }
    if (st->an == STORE_AUDIT_BUFFER) {
        dropped = ++st->adropped;
    } else {
        if (!st->abuf)
            st->abuf = xcalloc(STORE_AUDIT_BUFFER, sizeof(*st->abuf));
        st->abuf[st->an++] = *a;
    }
    int wake = -1;
    if (st->an >= STORE_AUDIT_HIGH && st->awake_fd >= 0 && !st->awoken) {
        wake = st->awake_fd;
        st->awoken = 1;
    }
    pthread_mutex_unlock(&st->alock);
    if (wake >= 0) {
        uint64_t one = 1; /* an eventfd's counter; a full one already wakes */
        ssize_t w = write(wake, &one, sizeof(one));
        (void)w;
    }
    if (dropped % 1000 == 1)
        log_warn("store", "msg=\"audit queue full, record dropped\" dropped=%llu",
                 (unsigned long long)dropped);
    return 0;
}

int store_audit_flush(struct store *st, size_t *flushed, struct ferr *e)
{
    if (flushed)
        *flushed = 0;
    if (st->writer)
        return 0; /* a reader holds no records */
    /* Take the queue out under the lock and write it without: readers keep
     * queueing into a fresh buffer meanwhile and never wait for the disk. */
    pthread_mutex_lock(&st->alock);
    struct store_audit *buf = st->abuf;
    size_t n = st->an;
    st->abuf = NULL;
    st->an = 0;
    st->awoken = 0;
    pthread_cond_broadcast(&st->aspace);
    pthread_mutex_unlock(&st->alock);
    if (n == 0) {
        pthread_mutex_lock(&st->alock);
        if (!st->abuf)
            st->abuf = buf;
        else
            free(buf);
        pthread_mutex_unlock(&st->alock);
        return 0;
    }
    int rc = st->ops->audit_append_many(st->impl, buf, n, e);
    if (rc == 0) {
        if (flushed)
            *flushed = n;
        n = 0;
    }
    /* Put back what was not written (in front: the order stays), and keep
     * the larger buffer. Records beyond the bound are dropped and counted. */
    pthread_mutex_lock(&st->alock);
    if (n) {
        size_t keep = st->an < STORE_AUDIT_BUFFER - n ? st->an : STORE_AUDIT_BUFFER - n;
        if (st->abuf)
            memcpy(buf + n, st->abuf, keep * sizeof(*buf));
        st->adropped += st->an - keep;
        n += keep;
        free(st->abuf);
        st->abuf = buf;
        st->an = n;
    } else if (!st->abuf) {
        st->abuf = buf;
    } else {
        free(buf);
    }
    pthread_mutex_unlock(&st->alock);
    if (rc == FERR_STATE)
        return 0; /* a transaction is open: next time */
    return rc;
}

uint64_t store_audit_dropped(const struct store *st)
{
    if (st->writer)
        st = st->writer;
    pthread_mutex_lock((pthread_mutex_t *)&st->alock);
    uint64_t n = st->adropped;
    pthread_mutex_unlock((pthread_mutex_t *)&st->alock);
    return n;
}

int store_audit_count(struct store *st, int64_t *n, struct ferr *e)
{
    int rc = store_audit_flush(st, NULL, e);
    return rc ? rc : st->ops->audit_count(st->impl, n, e);
}

static int check_migration(const struct store_migration *m, struct ferr *e)
{
    int rc;
    if ((rc = check_text(m->id, STORE_IDENT_MAX, 0, "id", e)) != 0 ||
        (rc = check_name(m->instance, "instance", e)) != 0 ||
        (rc = check_name(m->source, "source", e)) != 0 ||
        (m->destination[0] && (rc = check_name(m->destination, "destination", e)) != 0) ||
        (rc = check_text(m->state, STORE_IDENT_MAX, 0, "state", e)) != 0 ||
        (rc = check_text(m->phase, STORE_IDENT_MAX, 1, "phase", e)) != 0 ||
        (rc = check_json(m->policy_json, "policy", e)) != 0 ||
        (rc = check_json(m->limits_json, "limits", e)) != 0 ||
        (rc = check_json(m->detail_json, "detail", e)) != 0 ||
        (rc = check_text(m->user, STORE_IDENT_MAX, 0, "user", e)) != 0 ||
        (rc = check_text(m->project, STORE_IDENT_MAX, 0, "project", e)) != 0 ||
        (rc = check_text(m->last_error, STORE_ERROR_MAX, 1, "last_error", e)) != 0)
        return rc;
    if (!(m->progress_pct >= 0.0 && m->progress_pct <= 100.0))
        return ferr_set(e, FERR_INVAL, "progress_pct", "progress must be 0..100");
    return 0;
}

int store_migration_insert(struct store *st, const struct store_migration *m, struct ferr *e)
{
    int rc = check_migration(m, e);
    return rc ? rc : st->ops->migration_insert(st->impl, m, e);
}

int store_migration_update(struct store *st, const struct store_migration *m, struct ferr *e)
{
    int rc = check_migration(m, e);
    return rc ? rc : st->ops->migration_update(st->impl, m, e);
}

int store_migration_get(struct store *st, const char *id, struct store_migration *out,
                        struct ferr *e)
{
    int rc = check_text(id, STORE_IDENT_MAX, 0, "id", e);
    return rc ? rc : st->ops->migration_get(st->impl, id, out, e);
}

int store_migration_list(struct store *st, const struct store_migration_filter *f, size_t limit,
                         struct store_migration **out, size_t *n, struct ferr *e)
{
    static const struct store_migration_filter none = {0};
    *out = NULL;
    *n = 0;
    if (limit > STORE_LIST_MAX)
        limit = STORE_LIST_MAX;
    if (f && f->after_id && f->after_id[0]) {
        int rc = check_text(f->after_id, STORE_IDENT_MAX, 0, "after", e);
        if (rc)
            return rc;
    }
    return st->ops->migration_list(st->impl, f ? f : &none, limit, out, n, e);
}

int store_migration_list_keys(struct store *st, const struct store_migration_filter *f,
                              size_t limit, int slim, struct store_migration_key *out, size_t *n,
                              struct ferr *e)
{
    static const struct store_migration_filter none = {0};
    *n = 0;
    if (limit > STORE_LIST_MAX)
        limit = STORE_LIST_MAX;
    if (f && f->after_id && f->after_id[0]) {
        int rc = check_text(f->after_id, STORE_IDENT_MAX, 0, "after", e);
        if (rc)
            return rc;
    }
    return st->ops->migration_list_keys(st->impl, f ? f : &none, limit, slim, out, n, e);
}

int store_migration_projects(struct store *st, size_t max, char (*out)[STORE_IDENT_MAX + 1],
                             size_t *n, int *complete, struct ferr *e)
{
    *n = 0;
    *complete = 0;
    if (max > STORE_LIST_MAX)
        max = STORE_LIST_MAX;
    return st->ops->migration_projects(st->impl, max, out, n, complete, e);
}

int store_migration_insert_mark(struct store *st, int64_t *mark, struct ferr *e)
{
    *mark = 0;
    return st->ops->migration_insert_mark(st->impl, mark, e);
}

void store_migration_clear(struct store_migration *m)
{
    free(m->policy_json);
    free(m->limits_json);
    free(m->detail_json);
    m->policy_json = m->limits_json = m->detail_json = NULL;
}

void store_migrations_free(struct store_migration *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++)
        store_migration_clear(&m[i]);
    free(m);
}

int store_cursor_get(struct store *st, const char *name, int64_t *seq, struct ferr *e)
{
    int rc = check_text(name, STORE_URL_MAX, 0, "name", e);
    return rc ? rc : st->ops->cursor_get(st->impl, name, seq, e);
}

int store_cursor_set(struct store *st, const char *name, int64_t seq, int64_t now_ms,
                     struct ferr *e)
{
    int rc = check_text(name, STORE_URL_MAX, 0, "name", e);
    if (rc)
        return rc;
    if (seq < 0)
        return ferr_set(e, FERR_INVAL, "seq", "seq must be >= 0");
    return st->ops->cursor_set(st->impl, name, seq, now_ms, e);
}

int store_dead_letter_add(struct store *st, const struct store_dead_letter *d, struct ferr *e)
{
    int rc;
    if ((rc = check_text(d->endpoint, STORE_URL_MAX, 0, "endpoint", e)) != 0 ||
        (rc = check_text(d->last_error, STORE_ERROR_MAX, 1, "last_error", e)) != 0)
        return rc;
    if (d->event_seq < 1 || d->tries < 0)
        return ferr_set(e, FERR_INVAL, "event_seq", "event_seq must be >= 1, tries >= 0");
    return st->ops->dead_letter_add(st->impl, d, e);
}

int store_dead_letter_count(struct store *st, int64_t *n, struct ferr *e)
{
    return st->ops->dead_letter_count(st->impl, n, e);
}

/* ---- consent requests ---------------------------------------------------- */

static int one_of(const char *s, const char *const *set)
{
    for (size_t i = 0; set[i]; i++)
        if (strcmp(s, set[i]) == 0)
            return 1;
    return 0;
}

static int check_consent(const struct store_consent *c, struct ferr *e)
{
    static const char *const states[] = {"pending", "granted", "refused", "expired", NULL};
    static const char *const steps[] = {"bandwidth", "throttle", "postcopy", "pause", "io_throttle", NULL};
    int rc;
    if ((rc = check_text(c->id, STORE_IDENT_MAX, 0, "id", e)) != 0 ||
        (rc = check_text(c->migration_id, STORE_IDENT_MAX, 0, "migration_id", e)) != 0 ||
        (rc = check_text(c->project, STORE_IDENT_MAX, 1, "project", e)) != 0 ||
        (rc = check_text(c->decided_by, STORE_IDENT_MAX, 1, "decided_by", e)) != 0 ||
        (rc = check_text(c->reason, STORE_ERROR_MAX, 1, "reason", e)) != 0 ||
        (rc = check_json(c->detail_json, "detail", e)) != 0)
        return rc;
    if (!one_of(c->state, states))
        return ferr_set(e, FERR_INVAL, "state", "state must be pending, granted, refused or expired");
    if (!one_of(c->step, steps))
        return ferr_set(e, FERR_INVAL, "step", "step must be bandwidth, throttle, postcopy, pause or io_throttle");
    return 0;
}

int store_consent_insert(struct store *st, const struct store_consent *c, struct ferr *e)
{
    int rc = check_consent(c, e);
    return rc ? rc : st->ops->consent_insert(st->impl, c, e);
}

int store_consent_get(struct store *st, const char *id, struct store_consent *out, struct ferr *e)
{
    int rc = check_text(id, STORE_IDENT_MAX, 0, "id", e);
    return rc ? rc : st->ops->consent_get(st->impl, id, out, e);
}

int store_consent_update(struct store *st, const struct store_consent *c, struct ferr *e)
{
    int rc = check_consent(c, e);
    return rc ? rc : st->ops->consent_update(st->impl, c, e);
}

int store_consent_list(struct store *st, const struct store_consent_filter *f, size_t limit,
                       struct store_consent **out, size_t *n, struct ferr *e)
{
    static const struct store_consent_filter none = {0};
    *out = NULL;
    *n = 0;
    if (limit > STORE_LIST_MAX)
        limit = STORE_LIST_MAX;
    return st->ops->consent_list(st->impl, f ? f : &none, limit, out, n, e);
}

void store_consent_clear(struct store_consent *c)
{
    free(c->detail_json);
    c->detail_json = NULL;
}

void store_consents_free(struct store_consent *c, size_t n)
{
    for (size_t i = 0; c && i < n; i++)
        store_consent_clear(&c[i]);
    free(c);
}

/* ---- maintenance plans ---------------------------------------------------- */

static int check_plan(const struct store_plan *p, struct ferr *e)
{
    int rc;
    if ((rc = check_text(p->id, STORE_IDENT_MAX, 0, "id", e)) != 0 ||
        (rc = check_text(p->state, STORE_IDENT_MAX, 0, "state", e)) != 0 ||
        (rc = check_json(p->spec_json, "spec", e)) != 0 ||
        (rc = check_text(p->user, STORE_IDENT_MAX, 0, "user", e)) != 0 ||
        (rc = check_text(p->project, STORE_IDENT_MAX, 1, "project", e)) != 0 ||
        (rc = check_text(p->last_error, STORE_ERROR_MAX, 1, "last_error", e)) != 0 ||
        (rc = check_json(p->detail_json, "detail", e)) != 0)
        return rc;
    if (!p->spec_json)
        return ferr_set(e, FERR_INVAL, "spec", "spec is required");
    if (p->current_group < 0)
        return ferr_set(e, FERR_INVAL, "current_group", "current_group must be >= 0");
    return 0;
}

static int check_plan_host(const struct store_plan_host *h, struct ferr *e)
{
    int rc;
    if ((rc = check_text(h->plan_id, STORE_IDENT_MAX, 0, "plan_id", e)) != 0 ||
        (rc = check_name(h->host, "host", e)) != 0 ||
        (rc = check_text(h->step, STORE_IDENT_MAX, 0, "step", e)) != 0 ||
        (rc = check_text(h->state, STORE_IDENT_MAX, 0, "state", e)) != 0 ||
        (rc = check_json(h->detail_json, "detail", e)) != 0)
        return rc;
    if (h->group_no < 0)
        return ferr_set(e, FERR_INVAL, "group_no", "group_no must be >= 0");
    return 0;
}

int store_plan_insert(struct store *st, const struct store_plan *p, const struct store_plan_host *h,
                      size_t n, struct ferr *e)
{
    int rc = check_plan(p, e);
    if (rc)
        return rc;
    if (n > STORE_LIST_MAX)
        return ferr_set(e, FERR_TOOBIG, "hosts", "more than %d hosts", STORE_LIST_MAX);
    for (size_t i = 0; i < n; i++) {
        if ((rc = check_plan_host(&h[i], e)) != 0)
            return rc;
        if (strcmp(h[i].plan_id, p->id) != 0)
            return ferr_set(e, FERR_INVAL, "plan_id", "host %s belongs to another plan", h[i].host);
    }
    return st->ops->plan_insert(st->impl, p, h, n, e);
}

int store_plan_get(struct store *st, const char *id, struct store_plan *out, struct ferr *e)
{
    int rc = check_text(id, STORE_IDENT_MAX, 0, "id", e);
    return rc ? rc : st->ops->plan_get(st->impl, id, out, e);
}

int store_plan_update(struct store *st, const struct store_plan *p, struct ferr *e)
{
    int rc = check_plan(p, e);
    return rc ? rc : st->ops->plan_update(st->impl, p, e);
}

int store_plan_list(struct store *st, struct store_plan **out, size_t *n, struct ferr *e)
{
    *out = NULL;
    *n = 0;
    return st->ops->plan_list(st->impl, out, n, e);
}

void store_plan_clear(struct store_plan *p)
{
    free(p->spec_json);
    free(p->detail_json);
    p->spec_json = p->detail_json = NULL;
}

void store_plans_free(struct store_plan *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++)
        store_plan_clear(&p[i]);
    free(p);
}

int store_plan_host_list(struct store *st, const char *plan_id, struct store_plan_host **out,
                         size_t *n, struct ferr *e)
{
    *out = NULL;
    *n = 0;
    int rc = check_text(plan_id, STORE_IDENT_MAX, 0, "plan_id", e);
    return rc ? rc : st->ops->plan_host_list(st->impl, plan_id, out, n, e);
}

int store_plan_host_get(struct store *st, const char *plan_id, const char *host,
                        struct store_plan_host *out, struct ferr *e)
{
    int rc;
    if ((rc = check_text(plan_id, STORE_IDENT_MAX, 0, "plan_id", e)) != 0 ||
        (rc = check_name(host, "host", e)) != 0)
        return rc;
    return st->ops->plan_host_get(st->impl, plan_id, host, out, e);
}

int store_plan_host_update(struct store *st, const struct store_plan_host *h, struct ferr *e)
{
    int rc = check_plan_host(h, e);
    return rc ? rc : st->ops->plan_host_update(st->impl, h, e);
}

void store_plan_hosts_free(struct store_plan_host *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++) {
        free(h[i].detail_json);
        h[i].detail_json = NULL;
    }
    free(h);
}

int store_deferral_put(struct store *st, const struct store_deferral *d, struct ferr *e)
{
    int rc;
    if ((rc = check_name(d->instance, "instance", e)) != 0 ||
        (rc = check_text(d->plan_id, STORE_IDENT_MAX, 0, "plan_id", e)) != 0 ||
        (rc = check_text(d->by_user, STORE_IDENT_MAX, 0, "by_user", e)) != 0)
        return rc;
    return st->ops->deferral_put(st->impl, d, e);
}

int store_deferral_list(struct store *st, const char *plan_id, struct store_deferral **out,
                        size_t *n, struct ferr *e)
{
    *out = NULL;
    *n = 0;
    int rc = check_text(plan_id, STORE_IDENT_MAX, 0, "plan_id", e);
    return rc ? rc : st->ops->deferral_list(st->impl, plan_id, out, n, e);
}

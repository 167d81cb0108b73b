/* store_impl — the table of operations a store backend provides (private to
 * src/coord/store*.c). store.c has already validated every input against the
 * caps of store.h when an operation is called; the backend only stores. */
#ifndef FERRY_COORD_STORE_IMPL_H
#define FERRY_COORD_STORE_IMPL_H
#include "coord/store.h"

struct store_ops {
    void (*close)(void *impl);
    int (*schema_version)(void *impl, int *version, struct ferr *e);
    int (*tx_begin)(void *impl, struct ferr *e);
    int (*tx_commit)(void *impl, struct ferr *e);
    void (*tx_rollback)(void *impl);
    int (*read_begin)(void *impl, struct ferr *e);
    void (*read_end)(void *impl);
    /* Savepoints inside the open transaction (store_tx_mark...). */
    int (*tx_mark)(void *impl, struct ferr *e);
    int (*tx_release)(void *impl, struct ferr *e);
    void (*tx_undo)(void *impl);
    int (*host_register)(void *impl, const struct store_host *h, const struct store_instance *inst,
                         size_t n, int *created, struct ferr *e);
    int (*host_get)(void *impl, const char *name, struct store_host *out, struct ferr *e);
    int (*host_update)(void *impl, const char *name, const char *state, int64_t heartbeat_ms,
                       struct ferr *e);
    int (*host_set_cordon)(void *impl, const char *name, const char *cordon, const char *maint,
                           struct ferr *e);
    int (*instance_move)(void *impl, const char *name, const char *host, struct ferr *e);
    int (*host_list)(void *impl, struct store_host **out, size_t *n, struct ferr *e);
    int (*instance_list)(void *impl, const char *host, struct store_instance **out, size_t *n,
                         struct ferr *e);
    int (*instance_get)(void *impl, const char *name, struct store_instance *out, struct ferr *e);
    int (*event_append)(void *impl, const struct store_event *ev, int64_t *seq, struct ferr *e);
    int (*events_since)(void *impl, int64_t since, size_t limit, struct store_event **out,
                        size_t *n, struct ferr *e);
    int (*event_last_seq)(void *impl, int64_t *seq, struct ferr *e);
    int (*token_add)(void *impl, const struct store_token *t, struct ferr *e);
    int (*token_lookup)(void *impl, const char *hash, struct store_token *out, struct ferr *e);
    int (*audit_append)(void *impl, const struct store_audit *a, struct ferr *e);
    /* Appends a[0..n) in one transaction of its own (FERR_STATE when a
     * transaction is open). */
    int (*audit_append_many)(void *impl, const struct store_audit *a, size_t n, struct ferr *e);
    int (*audit_count)(void *impl, int64_t *n, struct ferr *e);
    int (*migration_insert)(void *impl, const struct store_migration *m, struct ferr *e);
    int (*migration_get)(void *impl, const char *id, struct store_migration *out, struct ferr *e);
    int (*migration_update)(void *impl, const struct store_migration *m, struct ferr *e);
    int (*migration_list)(void *impl, const struct store_migration_filter *f, size_t limit,
                          struct store_migration **out, size_t *n, struct ferr *e);
    int (*migration_list_keys)(void *impl, const struct store_migration_filter *f, size_t limit,
                               int slim, struct store_migration_key *out, size_t *n,
                               struct ferr *e);
    int (*migration_projects)(void *impl, size_t max, char (*out)[STORE_IDENT_MAX + 1], size_t *n,
                              int *complete, struct ferr *e);
    int (*migration_insert_mark)(void *impl, int64_t *mark, struct ferr *e);
    int (*cursor_get)(void *impl, const char *name, int64_t *seq, struct ferr *e);
    int (*cursor_set)(void *impl, const char *name, int64_t seq, int64_t now_ms, struct ferr *e);
    int (*dead_letter_add)(void *impl, const struct store_dead_letter *d, struct ferr *e);
    int (*dead_letter_count)(void *impl, int64_t *n, struct ferr *e);
    int (*consent_insert)(void *impl, const struct store_consent *c, struct ferr *e);
    int (*consent_get)(void *impl, const char *id, struct store_consent *out, struct ferr *e);
    int (*consent_update)(void *impl, const struct store_consent *c, struct ferr *e);
    int (*consent_list)(void *impl, const struct store_consent_filter *f, size_t limit,
                        struct store_consent **out, size_t *n, struct ferr *e);
    int (*plan_insert)(void *impl, const struct store_plan *p, const struct store_plan_host *h,
                       size_t n, struct ferr *e);
    int (*plan_get)(void *impl, const char *id, struct store_plan *out, struct ferr *e);
    int (*plan_update)(void *impl, const struct store_plan *p, struct ferr *e);
    int (*plan_list)(void *impl, struct store_plan **out, size_t *n, struct ferr *e);
    int (*plan_host_list)(void *impl, const char *plan_id, struct store_plan_host **out, size_t *n,
                          struct ferr *e);
    int (*plan_host_get)(void *impl, const char *plan_id, const char *host,
                         struct store_plan_host *out, struct ferr *e);
    int (*plan_host_update)(void *impl, const struct store_plan_host *h, struct ferr *e);
    int (*deferral_put)(void *impl, const struct store_deferral *d, struct ferr *e);
    int (*deferral_list)(void *impl, const char *plan_id, struct store_deferral **out, size_t *n,
                         struct ferr *e);
};

/* Opens the SQLite backend at path (see store_open). */
int store__sqlite_open(const char *path, const struct store_ops **ops, void **impl, struct ferr *e);

/* Opens a read-only connection to the SQLite store at path, which must
 * hold STORE_SCHEMA_VERSION already (see store_open_reader). */
int store__sqlite_open_reader(const char *path, const struct store_ops **ops, void **impl,
                              struct ferr *e);

#endif

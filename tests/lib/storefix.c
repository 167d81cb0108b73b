/* storefix (test helper) — see storefix.h. */
#include "storefix.h"

#include <stdio.h>
#include <stdlib.h>

#include "test.h"
#include "util/xalloc.h"

struct store *storefix_open(const char *dir, const char *leaf)
{
    char *p = xasprintf("%s/%s", dir, leaf);
    struct store *st = NULL;
    struct ferr e = {0};
    if (store_open(p, &st, &e) != 0)
        test__fail(__FILE__, __LINE__, "store_open", "%s", e.msg);
    free(p);
    return st;
}

int storefix_fill(const char *path, const struct storefix_recs *r)
{
    struct store *st = NULL;
    struct ferr e = {0};
    if (store_open(path, &st, &e) != 0 || store_tx_begin(st, &e) != 0) {
        fprintf(stderr, "store: %s\n", e.msg);
        store_close(st);
        return -1;
    }
    for (int i = 0; i < r->n; i++) {
        struct store_migration m = {0};
        snprintf(m.id, sizeof(m.id), "%s%03d", r->id_prefix, i);
        snprintf(m.instance, sizeof(m.instance), "vm-%03d", i);
        snprintf(m.source, sizeof(m.source), "host-%d", i % 4);
        snprintf(m.destination, sizeof(m.destination), "host-%d", (i + 1) % 4);
        snprintf(m.state, sizeof(m.state), "%s", i % r->failed_every ? "succeeded" : "failed");
        snprintf(m.phase, sizeof(m.phase), "completed");
        snprintf(m.user, sizeof(m.user), "u%d", i % 5);
        snprintf(m.project, sizeof(m.project), "p%d", i % r->projects);
        m.policy_json = "{\"name\":\"default\"}";
        m.limits_json = "{\"downtime_ms\":300}";
        m.mem_total_bytes = 1u << 30;
        m.progress_pct = 100.0;
        m.eta_ms = m.eta_low_ms = m.eta_high_ms = -1;
        m.downtime_ms = 20 + i;
        m.created_ms = r->t0_ms + (long long)(i / r->per_second) * 1000;
        m.updated_ms = m.created_ms + 500;
        if (store_migration_insert(st, &m, &e) != 0) {
            fprintf(stderr, "insert: %s\n", e.msg);
            store_close(st);
            return -1;
        }
    }
    int rc = store_tx_commit(st, &e);
    store_close(st);
    return rc;
}

/* coord — ferryd's shared state and the entry points main.c wires into the
 * event loop: the API handler and the heartbeat sweep. */
#ifndef FERRY_COORD_COORD_H
#define FERRY_COORD_COORD_H
#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

#include "coord/config.h"
#include "coord/store.h"
#include "core/policy.h"

struct coordmig; /* migrations.c */

struct coord {
    struct config cfg;       /* loaded configuration */
    struct store *st;        /* the durable store; owned */
    struct policy pol;       /* loaded policy (file over defaults) */
    struct event_base *base; /* borrowed */
    struct evhttp *http;     /* borrowed */
    struct event *sweep;     /* heartbeat sweep timer */
    int64_t started_ms;      /* when this process started serving, ms since epoch */
    struct coordmig *mig;    /* migrations orchestration (migrations.c); owned */
};

/* Loads the policy of c->cfg.policy_file (or the defaults when "") into
 * c->pol, adding ferryd's own defaults for the actions the core engine
 * does not name yet (host:register, host:heartbeat). */
int coord_policy_load(struct coord *c, struct ferr *e) __attribute__((warn_unused_result));

/* evhttp callback for every request; arg is the struct coord. */
void coord_api_handle(struct evhttp_request *req, void *arg);

/* Marks down every host whose last heartbeat is older than
 * heartbeat_interval_ms × heartbeat_missed at now_ms, each with a
 * host.down event in the same transaction. A heartbeat older than
 * c->started_ms counts as sent at started_ms: while ferryd itself was down
 * no agent could reach it, so a restart grants every host a full window. *marked (may be NULL)
 * receives how many. */
int coord_sweep_hosts(struct coord *c, int64_t now_ms, int *marked, struct ferr *e)
    __attribute__((warn_unused_result));

/* Records the read decision of who (action on target, allowed or not) in
 * the audit table through the deferred queue (store_audit_defer: written
 * by the 100 ms flush, may be lost in a crash; docs/FERRYD.md "Audit of
 * reads") and logs it under comp=audit. Never blocks on the disk. */
void coord_audit_read(struct coord *c, const struct store_token *who, const char *action,
                      const char *target, bool allowed);

/* Wall-clock milliseconds since the Unix epoch. */
int64_t coord_now_ms(void);

#endif

/* migrations — ferryd's migrations: the /v1/migrations API and the
 * orchestration that carries each migration out through the agents' API
 * (docs/FERRYD.md "Migrations"). Runs on ferryd's event loop; every state
 * change is decided by the core state machine (core/migstate) and written
 * with its event in one store transaction. */
#ifndef FERRY_COORD_MIGRATIONS_H
#define FERRY_COORD_MIGRATIONS_H
#include <event2/http.h>
#include <stdbool.h>

#include "coord/coord.h"
#include "util/httpd.h"

/* Starts orchestration on c's loop: loads every non-terminal migration
 * from the store (a restarted ferryd resumes them) and starts the tick
 * timer. Call once after c->base and c->st are ready. */
int coordmig_start(struct coord *c, struct ferr *e) __attribute__((warn_unused_result));

/* Stops the timer and frees the in-memory orchestration state (the store
 * keeps everything; a later coordmig_start resumes). */
void coordmig_stop(struct coord *c);

/* Serves /v1/migrations[/ID[/ACTION]] for the authenticated who (seg and
 * n from httpd_path). Always replies. */
void coordmig_handle(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                     char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX], int n);

#endif

/* plans — ferryd's rolling-maintenance plans: the /v1/plans API and the
 * executor that drains, maintains and returns each group of hosts
 * (docs/PLANS.md). The executor keeps all of its state in the store (plans,
 * plan_hosts, deferrals, and the migrations it created), so a restarted
 * ferryd resumes a plan where it was. */
#ifndef FERRY_COORD_PLANS_H
#define FERRY_COORD_PLANS_H
#include <event2/http.h>

#include "coord/coord.h"
#include "util/httpd.h"

/* Starts the executor on c's loop (a 1 s timer) and creates ferryd's own
 * admin token with which the executor asks ferryd's migrations API for its
 * migrations (one token per process start, user "ferryd-plans"). Call once
 * after coordmig_start. */
int coordplans_start(struct coord *c, struct ferr *e) __attribute__((warn_unused_result));

/* Tells the executor that a migration from source to destination (either
 * may be NULL) ended: within KICK_DELAY_MS (20 ms, gathering a burst) the
 * draining hosts it concerns are stepped — the source starts its next guest,
 * hosts waiting for the destination's slot start theirs — instead of at the
 * next 1 s tick (src/coord/plankick.h). No-op before coordplans_start. */
void coordplans_kick(struct coord *c, const char *source, const char *destination);

/* Stops the timer and frees the in-memory state (requests still in flight
 * are forgotten; the store keeps the plans). */
void coordplans_stop(struct coord *c);

/* Serves /v1/plans[/ID[/ACTION]] for the authenticated who. Always replies. */
void coordplans_handle(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                       char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX], int n);

#endif

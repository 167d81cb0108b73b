/* consent — consent requests for intrusive steps (docs/FERRYD.md
 * "Consent"): ferryd sees a step in the source agent's `consent_pending`,
 * records a request (table consents) with the event
 * migration.consent_requested in one transaction, serves /v1/consents, and
 * forwards each answer to the agent's POST /v1/migrations/ID/consent. The
 * agent's controller performs a gated step only after the grant reached it.
 * A request not answered by its deadline is settled by the configured
 * consent_timeout_action: wait (recorded expired, still answerable),
 * proceed (granted by "policy") or abort (the migration is cancelled).
 *
 * The parsing helpers at the top are pure (no store, no clock): the API and
 * the fuzz target share them. */
#ifndef FERRY_COORD_CONSENT_H
#define FERRY_COORD_CONSENT_H
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "coord/coord.h"
#include "coord/store.h"
#include "util/ferr.h"
#include "util/httpd.h"

#define CONSENT_REASON_MAX 1023 /* bytes of a decision's reason */
#define CONSENT_LIST_MAX 1000   /* requests in one GET /v1/consents */

enum consent_timeout_action {
    CONSENT_TIMEOUT_WAIT = 0, /* record expired, keep waiting for an answer */
    CONSENT_TIMEOUT_PROCEED,  /* grant, recorded as decided by "policy" */
    CONSENT_TIMEOUT_ABORT,    /* cancel the migration */
};

/* A validated grant/refuse body: `{}` or `{"reason": "..."}`. */
struct consent_decision {
    char reason[CONSENT_REASON_MAX + 1]; /* "" when none given */
};

/* Parses a grant/refuse body (borrowed; NULL means an empty body) into
 * *out. Unknown keys, a non-string or oversize reason, control characters
 * in it, or a body that is not an object fail with FERR_INVAL/FERR_TOOBIG
 * naming the field; *out is then zeroed. */
int consent_decision_parse(const json_t *body, struct consent_decision *out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Returns true when step is one of bandwidth, throttle, postcopy, pause. */
bool consent_step_ok(const char *step);

/* Maps "wait", "proceed", "abort" to *out; -1 for anything else. */
int consent_timeout_action_parse(const char *s, enum consent_timeout_action *out)
    __attribute__((warn_unused_result));

/* Validates the query filters of GET /v1/consents (each may be NULL):
 * state one of pending/granted/refused/expired, migration 1..64 bytes
 * without control characters. FERR_INVAL names the filter. */
int consent_filter_check(const char *state, const char *migration, struct ferr *e)
    __attribute__((warn_unused_result));

/* Reads the source agent's migration record a (borrowed) of migration id:
 * each step in its consent_pending without a request yet gets one (pending,
 * deadline now + consent_timeout_s) with its migration.consent_requested
 * event in one transaction; a step already answered in the store whose
 * answer has not reached the agent is forwarded again. Never fails: store
 * errors are logged and retried at the next poll. */
void coordconsent_observe(struct coord *c, const char *id, const char *instance,
                          const char *project, const json_t *a);

/* Settles the pending requests whose deadline is before now_ms with the
 * configured action, and expires the pending requests of migrations that
 * have ended (reason "the migration ended"). Called once per second. */
void coordconsent_tick(struct coord *c, int64_t now_ms);

/* Serves GET /v1/consents, GET /v1/consents/ID, POST
 * /v1/consents/ID/grant and /refuse for the authenticated who. Always
 * replies. */
void coordconsent_handle(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                         char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX], int n);

#endif

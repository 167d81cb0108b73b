/* migrations — ferryd's migrations: the /v1/migrations API and the
 * orchestration that carries each migration out through the agents' API
 * (docs/FERRYD.md "Migrations"). Runs on ferryd's event loop; every state
 * change is decided by the core state machine (core/migstate) and written
 * with its event in one store transaction. */
#ifndef FERRY_COORD_MIGRATIONS_H
#define FERRY_COORD_MIGRATIONS_H
#include <event2/http.h>
#include <stdbool.h>

#include "coord/agentc.h"
#include "coord/coord.h"
#include "util/httpd.h"

/* Starts orchestration on c's loop: loads every non-terminal migration
 * from the store (a restarted ferryd resumes them) and starts the tick
 * timer. Call once after c->base and c->st are ready. */
int coordmig_start(struct coord *c, struct ferr *e) __attribute__((warn_unused_result));

/* Stops the timer and frees the in-memory orchestration state (the store
 * keeps everything; a later coordmig_start resumes). */
void coordmig_stop(struct coord *c);

/* The writes of the orchestration since start: group commits of progress
 * (docs/FERRYD.md "Durability of progress"), the answers they wrote, the
 * answers whose own write failed (taken back alone, retried), dropped after
 * repeated failures, group commits that failed as a whole (retried), and
 * the transactions of transitions (lifecycle), each committed at once. */
struct coordmig_stats {
    uint64_t progress_commits;
    uint64_t progress_written;
    uint64_t progress_failed;
    uint64_t progress_dropped;
    uint64_t progress_commit_failed;
    uint64_t lifecycle_commits;
};
void coordmig_get_stats(const struct coord *c, struct coordmig_stats *out);

/* Prepares r, the struct coord of a read thread (cfg, pol and its reader
 * store set), to answer show and list (coordmig_handle with GET) from c's
 * read cache, which it borrows: free r with coordmig_reader_free before
 * coordmig_stop(c). r orchestrates nothing and must not be handed writes. */
void coordmig_reader_init(struct coord *r, const struct coord *c);
void coordmig_reader_free(struct coord *r);

/* Cancels migration id on behalf of by (a user name, or "policy"), as
 * POST /v1/migrations/ID/cancel does after its policy check: recorded
 * durably (state cancelling, or cancelled while still queued), then carried
 * out by the orchestration. stored_state (may be NULL) names the state in
 * messages when no orchestration is live. Returns 0, FERR_STATE (field
 * "state") when the state forbids it, or -EIO when it cannot be recorded
 * (nothing changed). */
int coordmig_cancel(struct coord *c, const char *id, const char *by, const char *stored_state,
                    struct ferr *e) __attribute__((warn_unused_result));

/* Sends method /v1/migrations/AID/suffix (body borrowed, may be NULL) to the
 * source agent of migration id, where AID is the agent's migration id, with
 * ferryd's agent token. Returns 0 (cb is then called once with arg), or
 * FERR_STATE when the migration has no live agent migration (cb not
 * called). */
int coordmig_agent_send(struct coord *c, const char *id, const char *method, const char *suffix,
                        const json_t *body, agentc_cb cb, void *arg, struct ferr *e)
    __attribute__((warn_unused_result));

/* Serves /v1/migrations[/ID[/ACTION]] for the authenticated who (seg and
 * n from httpd_path). Always replies. */
void coordmig_handle(struct coord *c, struct evhttp_request *req, const struct store_token *who,
                     char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX], int n);

#endif

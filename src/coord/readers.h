/* readers — ferryd's read threads: the API's public listener served by N
 * threads, each with its own event loop, its own reader connection to the
 * store (store_open_reader) and the loop's shared read cache, so that reads
 * use more than one core while everything that changes state stays on the
 * one event loop thread (docs/FERRYD.md, "Read threads").
 *
 * Every thread accepts on its own SO_REUSEPORT socket bound to the public
 * address (the kernel spreads connections over them). A thread answers the
 * reads that touch nothing but the store itself — GET /v1/health,
 * /v1/migrations, /v1/migrations/ID, /v1/hosts and /v1/events when it is
 * not an event stream — through the same handlers as the loop
 * (coord_api_handle), so authentication, policy, 404-not-403 and the audit
 * record of each decision are the same; the audit record goes to the
 * writer's deferred queue (store_audit_defer) like the loop's own reads.
 * Every other request (writes, SSE, /metrics, plans, consents) is relayed
 * unchanged to the event loop's private listener on 127.0.0.1 and its
 * answer relayed back, streamed for SSE. */
#ifndef FERRY_COORD_READERS_H
#define FERRY_COORD_READERS_H
#include "coord/coord.h"
#include "util/ferr.h"

#define READERS_MAX 64 /* read threads at most */

struct metrics;
struct readers;

/* Starts n (1..READERS_MAX) read threads serving addr:port (IPv4 literal)
 * for c, relaying what they do not answer to the event loop's listener at
 * 127.0.0.1:loop_port. Opens the reader store handles and binds every
 * socket before any thread starts, so a busy port or an unreadable store
 * fails here (nothing left running). c's cache (coordmig_start) and policy
 * must be ready and outlive the threads; m (borrowed, may be NULL) gets
 * the threads' request latencies. On 0, *out is the pool (stop with
 * readers_stop). */
int readers_start(struct coord *c, struct metrics *m, unsigned n, const char *addr, int port,
                  int loop_port, struct readers **out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Stops every thread (its connections close, relayed requests in flight
 * are dropped), joins them, closes their store handles and frees r. NULL
 * is fine. Call before coordmig_stop(c). */
void readers_stop(struct readers *r);

#endif

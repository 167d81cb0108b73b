/* sse — the event outbox as Server-Sent Events: GET /v1/events with
 * `Accept: text/event-stream`. Each subscriber gets the events it may see
 * (policy action events:read per event, target = the event's project; host
 * names of migration events only with migration:show_hosts), in seq order,
 * as `id: SEQ` / `event: TYPE` / `data: JSON` records, resuming after
 * `Last-Event-ID` (or `?since=`). New events are found by polling the store
 * every SSE_POLL_MS (one query for all subscribers) or at once after
 * sse_poll. Caps: SSE_MAX_SUBSCRIBERS streams; a subscriber whose unsent
 * output exceeds SSE_OUTBUF_MAX is dropped with a final comment and resumes
 * with Last-Event-ID. docs/EVENTS.md describes the protocol. */
#ifndef FERRY_COORD_SSE_H
#define FERRY_COORD_SSE_H
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "coord/store.h"

#define SSE_MAX_SUBSCRIBERS 64    /* concurrent streams */
#define SSE_OUTBUF_MAX (1u << 20) /* bytes of unsent output before a drop */
#define SSE_POLL_MS 200           /* store poll period, ms */
#define SSE_HEARTBEAT_MS 15000    /* comment line period on an idle stream, ms */
#define SSE_RETRY_MS 2000         /* reconnect delay suggested to clients, ms */

struct coord;
struct sse;

/* Returns the public JSON of ev, {seq, type, time, subject, payload,
 * version} (a payload that is not JSON becomes {}). New reference. */
json_t *sse_event_json(const struct store_event *ev);

/* Writes ms (since the epoch) as RFC 3339 UTC with milliseconds into out. */
void sse_time_str(int64_t ms, char out[32]);

/* ms (since the epoch) as a JSON string, RFC 3339 UTC with milliseconds
 * (sse_time_str): the form of every time in ferryd's API. New reference. */
json_t *sse_time_json(int64_t ms);

/* True when the request's Accept header names text/event-stream. */
bool sse_wants_stream(struct evhttp_request *req);

/* Creates the SSE hub for c (borrowed; must outlive it) and starts its poll
 * timer on c->base. Caller frees with sse_free. Never fails. */
struct sse *sse_new(struct coord *c);

/* Ends every stream (with a final comment) and frees s; NULL is fine. */
void sse_free(struct sse *s);

/* Serves GET /v1/events as a stream: authenticates (401), parses
 * Last-Event-ID / since (400 naming the field), refuses beyond
 * SSE_MAX_SUBSCRIBERS (503), then starts a chunked 200 reply that stays
 * open until the client leaves, is dropped, or s is freed. */
void sse_handle(struct sse *s, struct evhttp_request *req);

/* Pushes committed events to every subscriber now (the store's write path
 * may call it; the poll timer does otherwise). */
void sse_poll(struct sse *s);

/* Current subscriber count. */
size_t sse_subscribers(const struct sse *s);

/* Subscribers dropped for a full output buffer since start. */
uint64_t sse_dropped(const struct sse *s);

#endif

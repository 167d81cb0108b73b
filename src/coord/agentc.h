/* agentc — ferryd's non-blocking HTTP/JSON client for the agents' API, on
 * ferryd's libevent loop. One request per connection; replies over
 * AGENTC_MAX_REPLY bytes are treated as no JSON. Built on util/httpa. */
#ifndef FERRY_COORD_AGENTC_H
#define FERRY_COORD_AGENTC_H
#include <event2/event.h>
#include <jansson.h>

#include "util/ferr.h"
#include "util/httpa.h"

#define AGENTC_MAX_REPLY HTTPA_MAX_REPLY /* bytes of an agent's reply parsed */

/* Called once per request: status 0 with e filled when the agent did not
 * answer (connect, timeout); else the HTTP status and the parsed body
 * (borrowed for the call, NULL when not JSON) with e NULL. */
typedef void (*agentc_cb)(int status, json_t *body, const struct ferr *e, void *arg);

/* Sends method (GET, POST, PATCH or DELETE) path (with body, borrowed,
 * may be NULL) to the agent at url ("http://HOST:PORT") with token (may be
 * NULL or "": no Authorization header) and a timeout_s. cb is
 * always called exactly once, possibly before this returns (bad URL). */
void agentc_request(struct event_base *base, const char *url, const char *token, const char *method,
                    const char *path, const json_t *body, int timeout_s, agentc_cb cb, void *arg);

#endif

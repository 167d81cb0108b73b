/* httpa — a non-blocking HTTP/JSON client on a libevent loop, for requests
 * between Ferry's daemons (ferryd to agents, agent to agent). One request
 * per connection; replies over HTTPA_MAX_REPLY bytes are treated as no
 * JSON. */
#ifndef FERRY_UTIL_HTTPA_H
#define FERRY_UTIL_HTTPA_H
#include <event2/event.h>
#include <jansson.h>

#include "util/ferr.h"

#define HTTPA_MAX_REPLY (1u << 20) /* bytes of a reply parsed */

/* Called once per request: status 0 with e filled when the peer did not
 * answer (bad URL, connect, timeout); else the HTTP status and the parsed
 * body (borrowed for the call, NULL when not JSON) with e NULL. */
typedef void (*httpa_cb)(int status, json_t *body, const struct ferr *e, void *arg);

/* Sends method (GET, POST, PATCH or DELETE) path (with body, borrowed,
 * may be NULL) to url ("http://HOST:PORT"; the scheme may be left out)
 * with token (NULL or "": no Authorization header) and a timeout_s. A bad
 * URL is reported with url_field as the error's field. cb is always called
 * exactly once, possibly before this returns. */
void httpa_request(struct event_base *base, const char *url, const char *url_field,
                   const char *token, const char *method, const char *path, const json_t *body,
                   int timeout_s, httpa_cb cb, void *arg);

#endif

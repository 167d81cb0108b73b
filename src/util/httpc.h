/* httpc — a small blocking HTTP/1.1 client for the CLI, tests and
 * benchmarks (one request per connection, capped response). Daemons use
 * libevent's asynchronous client instead. */
#ifndef FERRY_UTIL_HTTPC_H
#define FERRY_UTIL_HTTPC_H
#include <jansson.h>
#include <stddef.h>

#include "util/ferr.h"

#define HTTPC_MAX_RESPONSE (16u << 20) /* bytes of one response */

struct httpc_resp {
    int status;   /* HTTP status code */
    char *body;   /* NUL-terminated body; owned, freed by httpc_resp_free */
    size_t len;   /* bytes in body */
};

/* Sends method path to the server at url_base ("http://HOST:PORT", IPv4
 * literal or name) with an optional body (JSON text, may be NULL) and an
 * optional bearer token, and waits at most timeout_ms for the whole
 * response. On success fills *r (caller calls httpc_resp_free); on failure
 * (connect, timeout, malformed or oversize response) returns negative with
 * e filled, and *r holds nothing to free. */
int httpc_request(const char *url_base, const char *method, const char *path, const char *body,
                  const char *token, int timeout_ms, struct httpc_resp *r, struct ferr *e)
    __attribute__((warn_unused_result));

/* Like httpc_request with a JSON body (borrowed, may be NULL) and a JSON
 * reply: *out receives the parsed reply (new reference) or NULL when the
 * body is not JSON; *status the HTTP status. */
int httpc_json(const char *url_base, const char *method, const char *path, const json_t *body,
               const char *token, int timeout_ms, int *status, json_t **out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Releases what r holds. */
void httpc_resp_free(struct httpc_resp *r);

#endif

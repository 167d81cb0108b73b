/* httpd — small helpers around libevent's evhttp for JSON APIs: capped
 * request bodies, JSON replies, and errors in the project's shape
 * {"error":{"code","message","field"}}. */
#ifndef FERRY_UTIL_HTTPD_H
#define FERRY_UTIL_HTTPD_H
#include <event2/http.h>
#include <jansson.h>
#include <stddef.h>

#include "util/ferr.h"

#define HTTPD_MAX_BODY (1u << 20)  /* bytes accepted in one request body */
#define HTTPD_MAX_HEADERS 8192     /* bytes of request headers */
#define HTTPD_MAX_SEGS 8           /* path segments a route may have */
#define HTTPD_SEG_MAX 64           /* bytes in one path segment */

/* Applies the caps above to server h (body, headers, timeout 30 s). */
void httpd_apply_caps(struct evhttp *h);

/* Sets TCP_NODELAY on the request's connection, so the last segment of a
 * reply goes out at once: otherwise a reply longer than one segment (a list
 * page) waits for the client's delayed ACK (~40 ms on Linux) before its tail
 * is sent (Nagle). httpd_reply_json and httpd_reply_buf call it; one
 * setsockopt per reply. */
void httpd_no_delay(struct evhttp_request *req);

/* Sends status with body serialised as JSON (TCP_NODELAY set); takes
 * ownership of body. */
void httpd_reply_json(struct evhttp_request *req, int status, json_t *body);

/* Sends status with body (JSON text the caller composed, ending in a
 * newline like httpd_reply_json's) as application/json (TCP_NODELAY set);
 * takes ownership of body and frees it. */
void httpd_reply_buf(struct evhttp_request *req, int status, struct evbuffer *body);

/* Sends the error e with the HTTP status that its code maps to (400, 404,
 * 409, 413, 502, 504, 500). */
void httpd_reply_err(struct evhttp_request *req, const struct ferr *e);

/* Returns the HTTP status for a ferr code. */
int httpd_status_for(int code);

/* Reads the request body as one JSON object under the caps of jsonin.
 * On success *out is a new reference (caller decrefs); on failure e says
 * why and *out is NULL. An empty body yields an empty object when
 * empty_ok is non-zero. */
int httpd_body_json(struct evhttp_request *req, int empty_ok, json_t **out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Splits the request path (without query) into at most HTTPD_MAX_SEGS
 * segments of at most HTTPD_SEG_MAX-1 bytes, percent-decoding none.
 * Returns the count, or -1 when the path is too long or malformed. */
int httpd_path(struct evhttp_request *req, char segs[HTTPD_MAX_SEGS][HTTPD_SEG_MAX]);

/* Looks up query parameter key; returns a borrowed string valid until the
 * request completes... copied into buf (size n) here for safety. Returns 0
 * when found, -1 otherwise. */
int httpd_query(struct evhttp_request *req, const char *key, char *buf, size_t n);

#endif

#include "util/httpd.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/jsonin.h"
#include "util/xalloc.h"

void httpd_apply_caps(struct evhttp *h)
{
    evhttp_set_max_body_size(h, HTTPD_MAX_BODY);
    evhttp_set_max_headers_size(h, HTTPD_MAX_HEADERS);
    evhttp_set_timeout(h, 30);
    evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                      EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH);
}

void httpd_no_delay(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    int one = 1;
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void httpd_reply_json(struct evhttp_request *req, int status, json_t *body)
{
    httpd_no_delay(req);
    struct evbuffer *buf = evbuffer_new();
    char *text = json_dumps(body, JSON_COMPACT);
    if (text) {
        evbuffer_add(buf, text, strlen(text));
        evbuffer_add(buf, "\n", 1);
        free(text);
    }
    json_decref(body);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    const char *reason = status < 300 ? "OK" : "Error";
    evhttp_send_reply(req, status, reason, buf);
    evbuffer_free(buf);
}

void httpd_reply_buf(struct evhttp_request *req, int status, struct evbuffer *body)
{
    httpd_no_delay(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_send_reply(req, status, status < 300 ? "OK" : "Error", body);
    evbuffer_free(body);
}

int httpd_status_for(int code)
{
    switch (code) {
    case FERR_INVAL: return 400;
    case FERR_TOOBIG: return 413;
    case FERR_NOTFOUND: return 404;
    case FERR_STATE: return 409;
    case FERR_EXISTS: return 409;
    case FERR_PEER: return 502;
    case FERR_TIMEOUT: return 504;
    default: return 500;
    }
}

void httpd_reply_err(struct evhttp_request *req, const struct ferr *e)
{
    json_t *err = json_pack("{s:s, s:s, s:s?}", "code", ferr_code_name(e->code), "message",
                            e->msg[0] ? e->msg : "error", "field",
                            e->field[0] ? e->field : NULL);
    httpd_reply_json(req, httpd_status_for(e->code), json_pack("{s:o}", "error", err));
}

int httpd_body_json(struct evhttp_request *req, int empty_ok, json_t **out, struct ferr *e)
{
    *out = NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len == 0 && empty_ok) {
        *out = json_object();
        return 0;
    }
    if (len > JSONIN_MAX_BYTES)
        return ferr_set(e, FERR_TOOBIG, "body", "body exceeds %u bytes", JSONIN_MAX_BYTES);
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    return jsonin_parse_object(p ? p : "", len, JSONIN_MAX_BYTES, JSONIN_MAX_DEPTH, out, e);
}

int httpd_path(struct evhttp_request *req, char segs[HTTPD_MAX_SEGS][HTTPD_SEG_MAX])
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (!path || path[0] != '/')
        return -1;
    int n = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n >= HTTPD_MAX_SEGS || len >= HTTPD_SEG_MAX)
            return -1;
        memcpy(segs[n], p, len);
        segs[n][len] = '\0';
        n++;
        p += len;
    }
    return n;
}

int httpd_query(struct evhttp_request *req, const char *key, char *buf, size_t n)
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *q = u ? evhttp_uri_get_query(u) : NULL;
    if (!q)
        return -1;
    struct evkeyvalq kv;
    if (evhttp_parse_query_str(q, &kv) != 0)
        return -1;
    const char *v = evhttp_find_header(&kv, key);
    int rc = -1;
    if (v && strlen(v) < n) {
        memcpy(buf, v, strlen(v) + 1);
        rc = 0;
    }
    evhttp_clear_headers(&kv);
    return rc;
}

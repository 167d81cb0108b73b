/* httpa — see httpa.h. */
#include "util/httpa.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

struct httpa_req {
    httpa_cb cb;   /* caller's callback */
    void *arg;     /* caller's context */
    char url[256]; /* for messages */
};

static void on_done(struct evhttp_request *req, void *arg)
{
    struct httpa_req *r = arg;
    if (!req || evhttp_request_get_response_code(req) == 0) {
        struct ferr e = {0};
        ferr_set(&e, FERR_PEER, "", "no answer from %s", r->url);
        r->cb(0, NULL, &e, r->arg);
        free(r);
        return;
    }
    int status = evhttp_request_get_response_code(req);
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(b);
    json_t *body = NULL;
    if (len > 0 && len <= HTTPA_MAX_REPLY) {
        const char *p = (const char *)evbuffer_pullup(b, (ev_ssize_t)len);
        body = json_loadb(p, len, 0, NULL);
    }
    r->cb(status, body, NULL, r->arg);
    json_decref(body);
    free(r);
}

void httpa_request(struct event_base *base, const char *url, const char *url_field,
                   const char *token, const char *method, const char *path, const json_t *body,
                   int timeout_s, httpa_cb cb, void *arg)
{
    struct ferr e = {0};
    char host[128];
    const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    const char *colon = strrchr(p, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || (size_t)(colon - p) >= sizeof(host) || colon == p || port <= 0 || port > 65535 ||
        (*end && *end != '/')) {
        ferr_set(&e, FERR_INVAL, url_field, "bad agent URL '%.100s'", url);
        cb(0, NULL, &e, arg);
        return;
    }
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    struct evhttp_connection *c = evhttp_connection_base_new(base, NULL, host, (ev_uint16_t)port);
    if (!c) {
        ferr_set(&e, FERR_PEER, "", "cannot reach %s", url);
        cb(0, NULL, &e, arg);
        return;
    }
    evhttp_connection_set_timeout(c, timeout_s);
    evhttp_connection_set_retries(c, 0);
    evhttp_connection_free_on_completion(c);
    struct httpa_req *r = xcalloc(1, sizeof(*r));
    r->cb = cb;
    r->arg = arg;
    snprintf(r->url, sizeof(r->url), "%s", url);
    struct evhttp_request *req = evhttp_request_new(on_done, r);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Content-Type", "application/json");
    if (token && token[0]) {
        char *auth = xasprintf("Bearer %s", token);
        evhttp_add_header(h, "Authorization", auth);
        free(auth);
    }
    if (body) {
        char *text = json_dumps(body, JSON_COMPACT);
        if (text) {
            /* libevent adds Content-Length by itself for POST and PUT only */
            char len[24];
            snprintf(len, sizeof(len), "%zu", strlen(text));
            evhttp_add_header(h, "Content-Length", len);
            evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
            free(text);
        }
    }
    enum evhttp_cmd_type t = EVHTTP_REQ_GET;
    if (strcmp(method, "POST") == 0)
        t = EVHTTP_REQ_POST;
    else if (strcmp(method, "DELETE") == 0)
        t = EVHTTP_REQ_DELETE;
    else if (strcmp(method, "PATCH") == 0)
        t = EVHTTP_REQ_PATCH;
    if (evhttp_make_request(c, req, t, path) != 0) {
        /* libevent freed req; the connection is ours to free */
        free(r);
        evhttp_connection_free(c);
        ferr_set(&e, FERR_PEER, "", "cannot send to %s", url);
        cb(0, NULL, &e, arg);
    }
}

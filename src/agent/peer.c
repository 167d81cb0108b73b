/* peer — non-blocking HTTP requests from this agent to another agent
 * (destination confirmation and cleanup), on the agent's event loop. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "util/xalloc.h"

#define PEER_MAX_REPLY (1u << 20) /* bytes of a peer's reply we parse */

struct peer_req {
    peer_cb cb;  /* caller's callback */
    void *arg;   /* caller's context */
    char url[200]; /* for messages */
};

static void on_done(struct evhttp_request *req, void *arg)
{
    struct peer_req *pr = arg;
    struct ferr e = {0};
    if (!req || evhttp_request_get_response_code(req) == 0) {
        ferr_set(&e, FERR_PEER, "", "no answer from the agent at %s", pr->url);
        pr->cb(0, NULL, &e, pr->arg);
        free(pr);
        return;
    }
    int status = evhttp_request_get_response_code(req);
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(b);
    json_t *body = NULL;
    if (len > 0 && len <= PEER_MAX_REPLY) {
        const char *p = (const char *)evbuffer_pullup(b, (ev_ssize_t)len);
        body = json_loadb(p, len, 0, NULL);
    }
    pr->cb(status, body, NULL, pr->arg);
    json_decref(body);
    free(pr);
}

void peer_request(struct agent *ag, const char *url, const char *method, const char *path,
                  const json_t *body, int timeout_s, peer_cb cb, void *arg)
{
    struct ferr e = {0};
    char host[128];
    int port = 0;
    const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    const char *colon = strrchr(p, ':');
    if (!colon || (size_t)(colon - p) >= sizeof(host) || (port = (int)strtol(colon + 1, NULL, 10)) <= 0 ||
        port > 65535) {
        ferr_set(&e, FERR_INVAL, "dest_agent", "bad agent URL '%.100s'", url);
        cb(0, NULL, &e, arg);
        return;
    }
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    struct evhttp_connection *c = evhttp_connection_base_new(ag->base, NULL, host, (ev_uint16_t)port);
    if (!c) {
        ferr_set(&e, FERR_PEER, "", "cannot reach %s", url);
        cb(0, NULL, &e, arg);
        return;
    }
    evhttp_connection_set_timeout(c, timeout_s);
    evhttp_connection_set_retries(c, 0);
    evhttp_connection_free_on_completion(c);
    struct peer_req *pr = xcalloc(1, sizeof(*pr));
    pr->cb = cb;
    pr->arg = arg;
    snprintf(pr->url, sizeof(pr->url), "%s", url);
    struct evhttp_request *req = evhttp_request_new(on_done, pr);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Content-Type", "application/json");
    if (ag->token) {
        char *auth = xasprintf("Bearer %s", ag->token);
        evhttp_add_header(h, "Authorization", auth);
        free(auth);
    }
    if (body) {
        char *text = json_dumps(body, JSON_COMPACT);
        if (text) {
            evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
            free(text);
        }
    }
    enum evhttp_cmd_type t = EVHTTP_REQ_GET;
    if (strcmp(method, "POST") == 0)
        t = EVHTTP_REQ_POST;
    else if (strcmp(method, "DELETE") == 0)
        t = EVHTTP_REQ_DELETE;
    if (evhttp_make_request(c, req, t, path) != 0) {
        /* libevent frees req on failure; the connection is freed on completion */
        ferr_set(&e, FERR_PEER, "", "cannot send to %s", url);
        free(pr);
        evhttp_connection_free(c);
        cb(0, NULL, &e, arg);
    }
}

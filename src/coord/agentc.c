/* agentc — non-blocking requests from ferryd to agents (see agentc.h). */
#include "coord/agentc.h"

#include "util/httpa.h"

void agentc_request(struct event_base *base, const char *url, const char *token, const char *method,
                    const char *path, const json_t *body, int timeout_s, agentc_cb cb, void *arg)
{
    httpa_request(base, url, "agent_url", token, method, path, body, timeout_s, cb, arg);
}
